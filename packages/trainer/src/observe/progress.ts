/**
 * Progress display: on a TTY one line redrawn in place (a bar, step, loss, tokens/s, ETA); on
 * anything else (CI logs, files, pipes) plain lines every `every` steps, which stay readable.
 */

/** What a progress stream needs (process.stderr fits). */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface ProgressOptions {
  /** Default: process.stderr where there is one. */
  readonly stream?: ProgressStream;
  /** Force the TTY (in-place) or plain-line mode (default: the stream's isTTY). */
  readonly tty?: boolean;
  /** Plain mode: a line every this many steps (default: about 20 lines a run), and at the last step. */
  readonly every?: number;
  /** Shown before the numbers (default 'train'). */
  readonly label?: string;
}

export interface ProgressUpdate {
  readonly step: number;
  readonly loss: number;
  readonly tokensPerSecond: number;
  readonly lr?: number;
  /** Extra "key value" pairs for the line (e.g. reward, eval loss). */
  readonly extra?: Readonly<Record<string, number | string>>;
}

/** "1h02m", "3m05s", "12s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

function fmt(v: number | string): string {
  if (typeof v === 'string') return v;
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toFixed(4);
}

function defaultStream(): ProgressStream | null {
  const p = (globalThis as { process?: { stderr?: ProgressStream } }).process;
  return p?.stderr ?? null;
}

export class ProgressReporter {
  readonly totalSteps: number;
  readonly tty: boolean;
  readonly every: number;
  readonly label: string;
  readonly #stream: ProgressStream | null;
  readonly #startedAt = Date.now();
  #firstStep: number | null = null;
  #lastLineLength = 0;

  constructor(totalSteps: number, options: ProgressOptions = {}) {
    this.totalSteps = totalSteps;
    this.#stream = options.stream ?? defaultStream();
    this.tty = options.tty ?? Boolean(this.#stream?.isTTY);
    this.every = Math.max(1, Math.floor(options.every ?? Math.max(1, Math.round(totalSteps / 20))));
    this.label = options.label ?? 'train';
  }

  /** Seconds left at the pace since the first update. */
  eta(step: number): number {
    if (this.#firstStep === null || step <= this.#firstStep) return NaN;
    const perStep = (Date.now() - this.#startedAt) / 1000 / (step - this.#firstStep);
    return perStep * Math.max(0, this.totalSteps - step);
  }

  /** The text of a line for an update (without bar or control characters). */
  line(u: ProgressUpdate): string {
    const parts = [`${this.label} step ${u.step}/${this.totalSteps}`, `loss ${fmt(u.loss)}`];
    if (u.lr !== undefined) parts.push(`lr ${fmt(u.lr)}`);
    parts.push(`${Math.round(u.tokensPerSecond)} tok/s`);
    for (const [k, v] of Object.entries(u.extra ?? {})) parts.push(`${k} ${fmt(v)}`);
    parts.push(`eta ${formatDuration(this.eta(u.step))}`);
    return parts.join(' | ');
  }

  update(u: ProgressUpdate): void {
    if (this.#firstStep === null) this.#firstStep = u.step - 1;
    if (!this.#stream) return;
    const text = this.line(u);
    if (this.tty) {
      const width = 20;
      const filled = Math.round((width * Math.min(u.step, this.totalSteps)) / Math.max(1, this.totalSteps));
      const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] `;
      let full = bar + text;
      const cols = this.#stream.columns;
      if (cols && full.length > cols - 1) full = full.slice(0, cols - 1);
      this.#stream.write(`\r${full}\x1b[K`);
      this.#lastLineLength = full.length;
    } else if (u.step % this.every === 0 || u.step === this.totalSteps) {
      this.#stream.write(`${text}\n`);
    }
  }

  /** A line of its own (eval results, checkpoints), not overwritten by the bar. */
  note(text: string): void {
    if (!this.#stream) return;
    if (this.tty && this.#lastLineLength > 0) this.#stream.write('\r\x1b[K');
    this.#stream.write(`${text}\n`);
    this.#lastLineLength = 0;
  }

  /** Ends the in-place line. */
  finish(): void {
    if (this.#stream && this.tty && this.#lastLineLength > 0) this.#stream.write('\n');
    this.#lastLineLength = 0;
  }
}
