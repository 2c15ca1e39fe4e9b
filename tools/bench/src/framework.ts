/**
 * The benchmark framework: a Bench is one measured piece of work on one of our backends, optionally
 * paired with a Comparison (the same work on a reference implementation: tfjs, PyTorch, ...). Both
 * sides are warmed up and then timed alternately in the same process, so drift in machine load
 * hits both; the reported time is the median of the timed runs.
 *
 * A backend plugs in by providing a Suite (tools/bench/src/suites/): its device description and
 * its list of Benches. `run` must return only when the work is complete: for asynchronous backends
 * it awaits `backend.synchronize()` or a readback; CPU ops are synchronous.
 */

/** Per-iteration functions of one side of a measurement. */
export interface Timed<S> {
  /** Builds inputs (not timed). */
  setup(): S | Promise<S>;
  /** One timed iteration; resolves when the work is complete. */
  run(state: S): void | Promise<void>;
  /** Frees what setup made (not timed). */
  teardown?(state: S): void | Promise<void>;
}

/** The same work on a reference implementation, measured in the same process. */
export interface Comparison<S = any> extends Timed<S> {
  /** e.g. 'tfjs-backend-cpu 4.22.0'. */
  name: string;
}

export interface Bench<S = any> extends Timed<S> {
  /** Unique row name, matched by --filter, e.g. 'matmul f32 512x512x512'. */
  name: string;
  /** Op name, e.g. 'matmul'. */
  op: string;
  /** Input shapes, e.g. [[512, 512], [512, 512]]. */
  shapes: number[][];
  dtype: string;
  /** Our backend name ('cpu', 'webgpu', 'cuda'). */
  backend: string;
  /** Floating-point operations per run (2MNK for a matmul); omitted where it is not meaningful. */
  flops?: number;
  /** Minimum bytes moved per run: inputs read once plus outputs written once. */
  bytes?: number;
  comparison?: Comparison;
}

/** What a suite says about the hardware its backend runs on. */
export interface DeviceInfo {
  /** e.g. 'AMD EPYC (2 logical CPUs)' or 'NVIDIA H100 80GB HBM3'. */
  name: string;
  /** Peak GFLOP/s per dtype from the vendor's datasheet, when there is an official figure. */
  peakGflops?: Partial<Record<string, number>>;
  /** Peak memory bandwidth in GB/s (datasheet), when there is one. */
  peakGBps?: number;
  /** Printed under the table, e.g. why there is no ceiling. */
  note?: string;
}

export interface Suite {
  /** Backend name; --backend selects suites by it. */
  backend: string;
  /** Initializes the backend (and the comparison's) and describes the device. */
  init(): Promise<DeviceInfo>;
  benches(): Bench[];
  dispose?(): Promise<void>;
}

export interface RunOptions {
  /** Most timed runs per side. */
  repeat: number;
  /** Fewest timed runs per side, even past the time budget. */
  minRepeat: number;
  /** Untimed runs per side before timing. */
  warmup: number;
  /** Stop adding timed runs once a side has spent this long (ms). */
  budgetMs: number;
}

export interface SideResult {
  medianMs: number;
  minMs: number;
  samplesMs: number[];
}

export interface BenchResult {
  name: string;
  op: string;
  shape: number[][];
  dtype: string;
  backend: string;
  device: string;
  medianMs: number;
  minMs: number;
  samplesMs: number[];
  gflops: number | null;
  gbps: number | null;
  /** Fractions of the device's datasheet peak (null when it has no official ceiling). */
  fractionOfPeakFlops: number | null;
  fractionOfPeakBandwidth: number | null;
  comparisonName: string | null;
  comparisonMedianMs: number | null;
  comparisonGflops: number | null;
  comparisonSamplesMs: number[] | null;
  /** comparison median / our median: above 1 means we are faster. */
  ratio: number | null;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function timeOnce<S>(side: Timed<S>, state: S): Promise<number> {
  const t0 = performance.now();
  await side.run(state);
  return performance.now() - t0;
}

/**
 * Measures a bench and its comparison: warm-up runs of each, then timed runs alternating ours and
 * theirs until `repeat` runs each, or until both spent `budgetMs` with at least `minRepeat` runs.
 */
export async function measure(bench: Bench, opts: RunOptions): Promise<{ ours: SideResult; theirs: SideResult | null }> {
  const cmp = bench.comparison;
  const ourState = await bench.setup();
  const theirState = cmp ? await cmp.setup() : undefined;
  try {
    for (let i = 0; i < opts.warmup; i++) {
      await bench.run(ourState);
      if (cmp) await cmp.run(theirState);
    }
    const ours: number[] = [];
    const theirs: number[] = [];
    let ourTotal = 0;
    let theirTotal = 0;
    while (ours.length < opts.repeat) {
      const enough = ours.length >= opts.minRepeat && ourTotal >= opts.budgetMs && (!cmp || theirTotal >= opts.budgetMs);
      if (enough) break;
      const t = await timeOnce(bench, ourState);
      ours.push(t);
      ourTotal += t;
      if (cmp) {
        const u = await timeOnce(cmp, theirState);
        theirs.push(u);
        theirTotal += u;
      }
    }
    const side = (xs: number[]): SideResult => ({ medianMs: median(xs), minMs: Math.min(...xs), samplesMs: xs });
    return { ours: side(ours), theirs: cmp ? side(theirs) : null };
  } finally {
    await bench.teardown?.(ourState);
    if (cmp) await cmp.teardown?.(theirState);
  }
}

export function toResult(bench: Bench, device: DeviceInfo, ours: SideResult, theirs: SideResult | null): BenchResult {
  const perSecond = (amount: number | undefined, ms: number) => (amount === undefined ? null : amount / (ms * 1e-3) / 1e9);
  const gflops = perSecond(bench.flops, ours.medianMs);
  const gbps = perSecond(bench.bytes, ours.medianMs);
  const peakFlops = device.peakGflops?.[bench.dtype];
  return {
    name: bench.name,
    op: bench.op,
    shape: bench.shapes,
    dtype: bench.dtype,
    backend: bench.backend,
    device: device.name,
    medianMs: ours.medianMs,
    minMs: ours.minMs,
    samplesMs: ours.samplesMs,
    gflops,
    gbps,
    fractionOfPeakFlops: gflops !== null && peakFlops ? gflops / peakFlops : null,
    fractionOfPeakBandwidth: gbps !== null && device.peakGBps ? gbps / device.peakGBps : null,
    comparisonName: bench.comparison?.name ?? null,
    comparisonMedianMs: theirs?.medianMs ?? null,
    comparisonGflops: theirs ? perSecond(bench.flops, theirs.medianMs) : null,
    comparisonSamplesMs: theirs?.samplesMs ?? null,
    ratio: theirs ? theirs.medianMs / ours.medianMs : null,
  };
}

// ---------------------------------------------------------------------------------------------
// Output

const fmt = (x: number | null, digits = 2): string => (x === null ? '-' : x >= 1000 ? x.toFixed(0) : x.toPrecision(Math.max(digits + 1, 3)));

/** A plain-text table (also valid Markdown). */
export function formatTable(results: readonly BenchResult[]): string {
  const header = ['bench', 'backend', 'median ms', 'GFLOP/s', 'GB/s', '%peak', 'comparison', 'their ms', 'their GFLOP/s', 'ratio'];
  const rows = results.map((r) => {
    const frac = r.fractionOfPeakFlops ?? r.fractionOfPeakBandwidth;
    return [
      r.name,
      r.backend,
      fmt(r.medianMs),
      fmt(r.gflops),
      fmt(r.gbps),
      frac === null ? '-' : `${(100 * frac).toFixed(1)}%`,
      r.comparisonName ?? '-',
      fmt(r.comparisonMedianMs),
      fmt(r.comparisonGflops),
      r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 || i === 1 || i === 6 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (i === 0 || i === 1 || i === 6 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), sep, ...rows.map(line)].join('\n');
}
