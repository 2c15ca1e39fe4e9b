/**
 * Loss curves as SVG, written by hand (no dependency): axes with round tick values, one polyline
 * per series, an optional exponential-moving-average overlay, a legend. Non-finite points are
 * left out (a gap, not a spike to infinity).
 */
import { TrainerConfigError } from '../errors.js';
import { nodeModules, writeFileAtomic } from '../node.js';
import { readMetrics, type MetricsRecord } from './metrics.js';

export interface PlotSeries {
  readonly name: string;
  /** [x, y] pairs (x ascending). */
  readonly points: readonly (readonly [number, number])[];
  readonly color?: string;
}

export interface PlotOptions {
  readonly title?: string;
  readonly xLabel?: string;
  readonly yLabel?: string;
  /** Pixels (default 720 x 400). */
  readonly width?: number;
  readonly height?: number;
  /** Logarithmic y axis (all y must be > 0). */
  readonly logY?: boolean;
  /** Also draw an EMA of each series with this factor in [0, 1) (e.g. 0.9); raw points then faint. */
  readonly smooth?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round tick positions covering [lo, hi]: steps of 1, 2 or 5 times a power of ten. */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) return [];
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function label(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(1);
  return String(Number(v.toPrecision(6)));
}

/** Exponential moving average (bias-corrected, as TensorBoard's smoothing). */
export function ema(points: readonly (readonly [number, number])[], factor: number): [number, number][] {
  let acc = 0;
  let weight = 0;
  const out: [number, number][] = [];
  for (const [x, y] of points) {
    if (!Number.isFinite(y)) continue;
    acc = factor * acc + (1 - factor) * y;
    weight = factor * weight + (1 - factor);
    out.push([x, acc / weight]);
  }
  return out;
}

/** The SVG text of a plot of the series. */
export function lossCurveSvg(series: readonly PlotSeries[], options: PlotOptions = {}): string {
  const W = options.width ?? 720;
  const H = options.height ?? 400;
  const smooth = options.smooth;
  if (smooth !== undefined && !(smooth >= 0 && smooth < 1)) throw new TrainerConfigError(`lossCurveSvg: smooth must be in [0, 1), got ${smooth}`);
  const logY = options.logY ?? false;
  const ty = (y: number) => (logY ? Math.log10(y) : y);
  const finite = series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0)));
  const m = { l: 64, r: 16, t: options.title ? 36 : 16, b: 44 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  let x0 = Math.min(...finite.map((p) => p[0]));
  let x1 = Math.max(...finite.map((p) => p[0]));
  let y0 = Math.min(...finite.map((p) => ty(p[1])));
  let y1 = Math.max(...finite.map((p) => ty(p[1])));
  if (!finite.length) [x0, x1, y0, y1] = [0, 1, 0, 1];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const px = (x: number) => m.l + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number) => m.t + ph - ((ty(y) - y0) / (y1 - y0)) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  if (options.title) parts.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(options.title)}</text>`);
  // Grid and ticks.
  for (const t of niceTicks(x0, x1)) {
    const x = px(t).toFixed(1);
    parts.push(`<line x1="${x}" y1="${m.t}" x2="${x}" y2="${m.t + ph}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${x}" y="${m.t + ph + 16}" text-anchor="middle">${esc(label(t))}</text>`);
  }
  const yTicks = logY ? niceTicks(Math.ceil(y0), Math.floor(y1)).filter(Number.isInteger) : niceTicks(y0, y1);
  for (const t of yTicks) {
    const yv = logY ? 10 ** t : t;
    const y = py(yv).toFixed(1);
    parts.push(`<line x1="${m.l}" y1="${y}" x2="${m.l + pw}" y2="${y}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.l - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${esc(label(yv))}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
  if (options.xLabel) parts.push(`<text x="${m.l + pw / 2}" y="${H - 8}" text-anchor="middle">${esc(options.xLabel)}</text>`);
  if (options.yLabel) parts.push(`<text x="14" y="${m.t + ph / 2}" text-anchor="middle" transform="rotate(-90 14 ${m.t + ph / 2})">${esc(options.yLabel)}</text>`);
  // Lines: consecutive finite points; a non-finite point breaks the line.
  const polylines = (pts: readonly (readonly [number, number])[]): string[][] => {
    const runs: string[][] = [[]];
    for (const [x, y] of pts) {
      if (!Number.isFinite(x) || !Number.isFinite(y) || (logY && y <= 0)) {
        if (runs[runs.length - 1]!.length) runs.push([]);
        continue;
      }
      runs[runs.length - 1]!.push(`${px(x).toFixed(1)},${py(y).toFixed(1)}`);
    }
    return runs.filter((r) => r.length > 0);
  };
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const faint = smooth !== undefined && smooth > 0;
    for (const run of polylines(s.points)) {
      if (run.length === 1) parts.push(`<circle cx="${run[0]!.split(',')[0]}" cy="${run[0]!.split(',')[1]}" r="2" fill="${color}"/>`);
      else parts.push(`<polyline fill="none" stroke="${color}" stroke-width="${faint ? 1 : 1.5}"${faint ? ' stroke-opacity="0.3"' : ''} points="${run.join(' ')}"/>`);
    }
    if (faint) for (const run of polylines(ema(s.points, smooth!))) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${run.join(' ')}"/>`);
  });
  // Legend.
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const y = m.t + 14 + i * 16;
    parts.push(`<line x1="${m.l + pw - 120}" y1="${y}" x2="${m.l + pw - 100}" y2="${y}" stroke="${color}" stroke-width="2"/>`);
    parts.push(`<text x="${m.l + pw - 94}" y="${y}" dominant-baseline="middle">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

export interface WriteLossPlotOptions extends PlotOptions {
  /** Metric keys to plot against "step" (default ['loss', 'evalLoss'], those present). */
  readonly keys?: readonly string[];
}

/** Plots metrics (a JSONL file or records) to an SVG file (atomic write). Returns the SVG text. */
export async function writeLossPlot(metrics: string | readonly MetricsRecord[], outFile: string, options: WriteLossPlotOptions = {}): Promise<string> {
  const records = typeof metrics === 'string' ? await readMetrics(metrics) : metrics;
  const keys = options.keys ?? ['loss', 'evalLoss'];
  const series: PlotSeries[] = [];
  for (const k of keys) {
    const pts = records.filter((r) => typeof r[k] === 'number').map((r) => [r.step, r[k] as number] as const);
    if (pts.length) series.push({ name: k, points: pts });
  }
  const svg = lossCurveSvg(series, { title: 'loss', xLabel: 'step', yLabel: 'loss', smooth: 0.9, ...options });
  const { fs, path } = await nodeModules();
  await fs.mkdir(path.dirname(outFile), { recursive: true });
  await writeFileAtomic(outFile, svg);
  return svg;
}
