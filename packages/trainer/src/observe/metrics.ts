/**
 * Metrics as JSON Lines: one object per step ({"step": 12, "loss": 3.41, ...}), appended as the
 * run goes, so a crashed run keeps what it logged. On resume, records after the resumed step (from
 * the part of the crashed run that is being redone) are dropped first, so the file reads as one
 * run.
 */
import { DataError } from '../errors.js';
import { nodeModules, writeFileAtomic } from '../node.js';

export type MetricsRecord = Readonly<Record<string, unknown>> & { readonly step: number };

export class MetricsWriter {
  readonly path: string;
  #ready: Promise<void> | null = null;

  constructor(path: string) {
    this.path = path;
  }

  private async ensureDir(): Promise<void> {
    this.#ready ??= (async () => {
      const { fs, path } = await nodeModules();
      await fs.mkdir(path.dirname(this.path), { recursive: true });
    })();
    return this.#ready;
  }

  /** Appends one record (a line of JSON). */
  async write(record: MetricsRecord): Promise<void> {
    await this.ensureDir();
    const { fs } = await nodeModules();
    await fs.appendFile(this.path, `${JSON.stringify(record)}\n`, 'utf8');
  }

  /** Drops records with step > `step` (atomic rewrite); a missing file is fine. */
  async truncateAfter(step: number): Promise<void> {
    let records: MetricsRecord[];
    try {
      records = await readMetrics(this.path);
    } catch (err) {
      if (err instanceof DataError && /cannot read/.test(err.message)) return;
      throw err;
    }
    const kept = records.filter((r) => r.step <= step);
    if (kept.length === records.length) return;
    await writeFileAtomic(this.path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }
}

/** Reads a metrics JSONL file (blank lines skipped; a malformed line is a DataError naming it). */
export async function readMetrics(file: string): Promise<MetricsRecord[]> {
  const { fs } = await nodeModules();
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new DataError(`cannot read: ${(err as Error).message}`, file);
  }
  const out: MetricsRecord[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch (err) {
      throw new DataError(`not valid JSON: ${(err as Error).message}`, file, i + 1);
    }
    if (!r || typeof r !== 'object' || typeof (r as { step?: unknown }).step !== 'number') {
      throw new DataError('expected an object with a numeric "step"', file, i + 1);
    }
    out.push(r as MetricsRecord);
  });
  return out;
}
