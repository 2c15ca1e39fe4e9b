/**
 * Lightning (linear) attention vs softmax attention, forward: H = 16 heads of D = 128, batch 1,
 * T = 512 .. 16384 (MODEL_SPEC §2-3; issue 4's benchmark), on the CPU backend or (--backend webgpu)
 * on @ring-linear/backend-webgpu. Prints a table of time per token, writes the JSON results, and
 * (unless --no-docs) rewrites the "Attention" section of docs/benchmarks.md and the plot
 * docs/attention-cpu.svg, or, for WebGPU, the section's WebGPU block and docs/attention-webgpu.svg.
 *
 *   cd tools/bench && node --conditions=@ring-linear/source --import tsx src/attention.ts
 *     [--backend cpu|webgpu] [--min-t 512] [--max-t 16384] [--softmax-max-t 4096] [--repeat 3]
 *     [--budget-s N] [--small] [--no-docs] [--json <path>]
 *   ... src/attention.ts --docs-from <json> [--commit <sha>]   the docs from an earlier run's JSON
 *                                                              (e.g. one made by a bundle on the GPU host)
 *
 * Lightning attention costs O(T) (a D x D state per head), softmax attention O(T^2) (every key per
 * query); on one JavaScript thread softmax attention past --softmax-max-t takes too long to time,
 * so those rows are left out (and said so). On WebGPU both run at every T (--softmax-max-t
 * defaults to --max-t): each timed run enqueues one forward and waits for the GPU with
 * `backend.synchronize()` (nothing read back); median of up to --repeat (default 10) runs after two
 * warm-ups. On a software adapter (SwiftShader) the numbers only prove that the bench runs: the
 * docs are not written from such a report.
 *
 * --budget-s N: no larger T is started once N seconds have passed, or when the next T's predicted
 * time (the last T's runs scaled by 2 for lightning, 4 for softmax) would pass N; the JSON is
 * rewritten after every T, so a run killed from outside keeps what it measured.
 *
 * --small (a smoke test, e.g. on SwiftShader, where one forward of 16 heads at T = 512 takes
 * seconds): H = 2 heads, T = 128 .. 256 unless --min-t / --max-t say otherwise.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import '@ring-linear/backend-cpu';
import { dispose, tensor, type Tensor } from '@ring-linear/core';
import { decayRates, lightningAttention, softmaxAttention } from '@ring-linear/attention';
import { measure, toResult, type Bench, type BenchResult, type DeviceInfo, type RunOptions } from './framework.js';
import { cpuName, environment } from './device.js';
import {
  TimeBudget,
  allowSoftwareDocs,
  gpuF32PeakGflops,
  initWebGpu,
  parseBackend,
  parseBudget,
  scriptContext,
  writeSection,
  type WebGpuHandle,
} from './docs.js';

const { fromSource: FROM_SOURCE, repoRoot: REPO_ROOT } = scriptContext(import.meta.url, 'attention.ts');
/** Heads: 16 (the benchmark); --small uses 2 for smoke tests on a software adapter. Set once per run or report. */
let H = 16;
const D = 128;
const CHUNK = 64;

function randomValues(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

interface State {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  decay: Tensor;
}

function setupInputs(T: number): State {
  const shape = [1, T, H, D];
  return {
    q: tensor(randomValues(T * H * D, 11), shape),
    k: tensor(randomValues(T * H * D, 12), shape),
    v: tensor(randomValues(T * H * D, 13), shape),
    decay: tensor(decayRates(H, 1, 20), [H]),
  };
}

/** Floating-point work the chunked kernel does: per chunk of L, QK^T and (.)V over L x L, Q S and the state update. */
function lightningFlops(T: number): number {
  let f = 0;
  for (let c0 = 0; c0 < T; c0 += CHUNK) {
    const L = Math.min(CHUNK, T - c0);
    f += 2 * L * L * D * 2 + 2 * L * D * D * 2;
  }
  return f * H;
}

/** Causal softmax attention: T (T + 1) / 2 query-key pairs, 2D flops for the score and 2D for P V each. */
const softmaxFlops = (T: number) => ((T * (T + 1)) / 2) * 4 * D * H;

/**
 * One forward of `kind` over the inputs of one T (made once per T and shared by both kinds);
 * `finish` waits for asynchronous backends (WebGPU: synchronize).
 */
function bench(kind: 'lightning' | 'softmax', T: number, state: State, backend: string, finish?: () => Promise<void>): Bench<State> {
  return {
    name: `${kind}Attention fwd T=${T} H=${H} D=${D}`,
    op: kind === 'lightning' ? 'lightningAttention' : 'softmaxAttention',
    shapes: [[1, T, H, D], [1, T, H, D], [1, T, H, D]],
    dtype: 'f32',
    backend,
    flops: kind === 'lightning' ? lightningFlops(T) : softmaxFlops(T),
    bytes: 4 * T * H * D * 4,
    setup: () => state,
    run: ({ q, k, v, decay }) => {
      if (kind === 'lightning') {
        const r = lightningAttention(q, k, v, { decay, chunkSize: CHUNK });
        dispose([r.out, r.finalState]);
      } else {
        softmaxAttention(q, k, v).dispose();
      }
      return finish?.();
    },
  };
}

interface Row {
  T: number;
  lightning: BenchResult | null;
  softmax: BenchResult | null;
}

const perToken = (r: BenchResult | null, T: number) => (r ? (r.medianMs * 1000) / T : null);
const f = (x: number | null, d = 1) => (x === null ? '-' : x >= 100 ? x.toFixed(0) : x >= 1 || x === 0 ? x.toFixed(d) : x.toPrecision(2));

/** Median, with the fastest run in parentheses when there were several. */
const ms = (r: BenchResult | null) => (r === null ? '-' : r.samplesMs.length > 1 ? `${f(r.medianMs)} (${f(r.minMs)})` : f(r.medianMs));

/** The table; with `peakGflops` (a GPU's ceiling) each kind also gets its share of that peak. */
function table(rows: readonly Row[], peakGflops: number | null = null): string {
  const pct = (r: BenchResult | null) => (r?.gflops == null || peakGflops === null ? '-' : `${((100 * r.gflops) / peakGflops).toFixed(1)}%`);
  const withPeak = peakGflops !== null;
  const lines = withPeak
    ? [
        '| T | lightning ms (min) | lightning µs/token | lightning GFLOP/s | lightning % of peak | softmax ms (min) | softmax µs/token | softmax GFLOP/s | softmax % of peak | softmax / lightning |',
        '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ]
    : [
        '| T | lightning ms (min) | lightning µs/token | lightning GFLOP/s | softmax ms (min) | softmax µs/token | softmax GFLOP/s | softmax / lightning |',
        '|---:|---:|---:|---:|---:|---:|---:|---:|',
      ];
  for (const r of rows) {
    const ratio = r.lightning && r.softmax ? `${(r.softmax.medianMs / r.lightning.medianMs).toFixed(2)}x` : '-';
    const l = `${ms(r.lightning)} | ${f(perToken(r.lightning, r.T))} | ${f(r.lightning?.gflops ?? null, 2)}${withPeak ? ` | ${pct(r.lightning)}` : ''}`;
    const sm = `${ms(r.softmax)} | ${f(perToken(r.softmax, r.T))} | ${f(r.softmax?.gflops ?? null, 2)}${withPeak ? ` | ${pct(r.softmax)}` : ''}`;
    lines.push(`| ${r.T} | ${l} | ${sm} | ${ratio} |`);
  }
  return lines.join('\n');
}

/** A log-log line chart of microseconds per token against T. */
function svg(rows: readonly Row[], title: string): string {
  const W = 640;
  const Hh = 400;
  const m = { l: 70, r: 20, t: 40, b: 50 };
  const series = [
    { name: 'lightning attention (linear, O(T))', color: '#1f77b4', pts: rows.flatMap((r) => (r.lightning ? [[r.T, perToken(r.lightning, r.T)!]] : [])) },
    { name: 'softmax attention (flash, O(T²))', color: '#d62728', pts: rows.flatMap((r) => (r.softmax ? [[r.T, perToken(r.softmax, r.T)!]] : [])) },
  ];
  const xs = rows.map((r) => r.T);
  const ys = series.flatMap((s) => s.pts.map((p) => p[1]!));
  const x0 = Math.log2(Math.min(...xs));
  const x1 = Math.log2(Math.max(...xs));
  const y0 = Math.floor(Math.log10(Math.min(...ys)));
  const y1 = Math.ceil(Math.log10(Math.max(...ys)));
  const X = (t: number) => m.l + ((Math.log2(t) - x0) / Math.max(x1 - x0, 1e-9)) * (W - m.l - m.r);
  const Y = (v: number) => Hh - m.b - ((Math.log10(v) - y0) / Math.max(y1 - y0, 1e-9)) * (Hh - m.t - m.b);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" viewBox="0 0 ${W} ${Hh}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${Hh}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${title}</text>`,
  ];
  for (const t of xs) {
    out.push(`<line x1="${X(t)}" y1="${m.t}" x2="${X(t)}" y2="${Hh - m.b}" stroke="#eee"/>`);
    out.push(`<text x="${X(t)}" y="${Hh - m.b + 16}" text-anchor="middle">${t}</text>`);
  }
  for (let e = y0; e <= y1; e++) {
    const v = 10 ** e;
    out.push(`<line x1="${m.l}" y1="${Y(v)}" x2="${W - m.r}" y2="${Y(v)}" stroke="#eee"/>`);
    out.push(`<text x="${m.l - 6}" y="${Y(v) + 4}" text-anchor="end">${v >= 1000 ? `${v / 1000} ms` : `${v} µs`}</text>`);
  }
  out.push(`<line x1="${m.l}" y1="${Hh - m.b}" x2="${W - m.r}" y2="${Hh - m.b}" stroke="black"/>`);
  out.push(`<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${Hh - m.b}" stroke="black"/>`);
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${Hh - 12}" text-anchor="middle">sequence length T (log scale)</text>`);
  out.push(`<text x="16" y="${(m.t + Hh - m.b) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(m.t + Hh - m.b) / 2})">time per token (log scale)</text>`);
  series.forEach((s, i) => {
    if (!s.pts.length) return;
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${s.pts.map(([t, v]) => `${X(t!).toFixed(1)},${Y(v!).toFixed(1)}`).join(' ')}"/>`);
    for (const [t, v] of s.pts) out.push(`<circle cx="${X(t!).toFixed(1)}" cy="${Y(v!).toFixed(1)}" r="3" fill="${s.color}"/>`);
    out.push(`<rect x="${m.l + 12}" y="${m.t + 8 + i * 18}" width="14" height="3" fill="${s.color}"/>`);
    out.push(`<text x="${m.l + 32}" y="${m.t + 13 + i * 18}">${s.name}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

const MARKERS = {
  begin: '<!-- attention-bench:begin (written by tools/bench/src/attention.ts) -->',
  end: '<!-- attention-bench:end -->',
  // The WebGPU rows: a block inside the Attention section, written by --backend webgpu runs.
  gpuBegin: '<!-- attention-bench-webgpu:begin -->',
  gpuEnd: '<!-- attention-bench-webgpu:end -->',
  heading: '## Attention',
};

interface Report {
  date: string;
  command: string;
  /** 'cpu' (older reports have no field) or 'webgpu'. */
  backend?: string;
  /** WebGPU: the adapter is a CPU implementation (SwiftShader): timings only prove the bench runs. */
  software?: boolean;
  environment: Record<string, string>;
  device: { name: string };
  /** The ceiling the GFLOP/s are compared with (WebGPU on a known GPU), or null. */
  peak?: { gflops: number; source: string } | null;
  loadAverage: [number, number];
  /** Heads (older reports: 16). */
  heads?: number;
  /** Timed runs: most per kind and T, fewest (WebGPU), warm-ups (WebGPU). Older reports: 3. */
  repeat?: number;
  minRepeat?: number;
  warmup?: number;
  budgetS?: number | null;
  /** Why larger T were not run (the time budget), or null. */
  stopped?: string | null;
  /** False while the run goes on (the JSON is rewritten after every T). */
  complete?: boolean;
  /** The error that ended the run early (the rows before it are kept), or null. */
  error?: string | null;
  rows: Row[];
}

/** The command that reproduces a run: its flags without the output-only ones. */
function flagsOf(report: Report): string {
  const m = /\s(?:src\/attention\.ts|attention\.mjs)(.*)$/.exec(report.command);
  return (m?.[1] ?? '').replace(/\s--no-docs/g, '').replace(/\s--(json|commit|docs-from) \S+/g, '');
}

function reproduce(report: Report, bundled: boolean): string {
  const flags = flagsOf(report);
  if (!bundled) return `\`cd tools/bench && node --conditions=@ring-linear/source --import tsx src/attention.ts${flags}\``;
  return (
    '`bash tools/bench/scripts/gpu-webgpu-prepare.sh` on the dev machine (it bundles this bench with esbuild), then ' +
    `\`bash .carry/webgpu-bench/run.sh\` on the GPU host (Node and Dawn unpacked there), which runs \`node attention.mjs${flags}\``
  );
}

/** The CPU section (everything but the WebGPU block). */
function cpuSection(report: Report, tableText: string, commit: string): string {
  const [load0, load1] = report.loadAverage;
  const repeat = report.repeat ?? 3;
  const skipped = report.rows.filter((r) => !r.softmax).map((r) => r.T);
  return [
    '## Attention',
    '',
    `Lightning (linear) attention vs causal softmax attention, forward only, on the CPU backend (\`@ring-linear/backend-cpu\`:`,
    `chunked lightning kernel with chunk ${CHUNK}, flash-style softmax kernel), f32, H=${H} heads, D=${D}, batch 1.`,
    'Time per token = median wall time of one forward over T tokens / T. Lightning attention keeps a D x D state per head,',
    'so its time per token stays flat as T grows; softmax attention reads every earlier key, so its time per token grows',
    'linearly with T (quadratic total).',
    '',
    `- machine: ${report.device.name}; Node ${report.environment.node}; ${report.date.slice(0, 10)}; commit ${commit}`,
    `- load average (1 min) ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end: the machine was shared with other jobs, so absolute times are noisy; the growth with T is the point`,
    `- runs: lightning attention median of ${repeat} timed runs at every T (fastest in parentheses); softmax attention ${repeat} runs up to T = 2048, one run above; one untimed warm-up for T <= 2048`,
    '- times per token are of the median run; the plot shows the same',
    ...(skipped.length ? [`- softmax attention is not timed for T = ${skipped.join(', ')}: a single-threaded JavaScript forward there takes tens of minutes (quadratic cost); pass --softmax-max-t to include it`] : []),
    ...(report.stopped ? [`- ${report.stopped}`] : []),
    `- command: \`${report.command}\``,
    '',
    tableText,
    '',
    '![attention time per token vs T](attention-cpu.svg)',
    '',
    'WebGPU: the same forwards on `@ring-linear/backend-webgpu` (`--backend webgpu`), in the block below.',
  ].join('\n');
}

/** The WebGPU block of the Attention section (inside its markers). */
function gpuSection(report: Report, tableText: string, commit: string, bundled: boolean): string {
  const [load0, load1] = report.loadAverage;
  const rows = report.rows;
  const both = rows.filter((r) => r.lightning && r.softmax);
  const first = both[0];
  const last = both[both.length - 1];
  const growth = (kind: 'lightning' | 'softmax') =>
    first && last ? `${(perToken(last[kind], last.T)! / perToken(first[kind], first.T)!).toFixed(2)}x` : '-';
  const best = (kind: 'lightning' | 'softmax') => Math.max(0, ...rows.map((r) => r[kind]?.gflops ?? 0));
  const peak = report.peak ?? null;
  const ofPeak = (g: number) => (peak ? ` (${((100 * g) / peak.gflops).toFixed(1)}% of the ceiling)` : '');
  const lines = [
    '### Attention on WebGPU',
    '',
    `The same forwards (f32, H=${H}, D=${D}, batch 1) on \`@ring-linear/backend-webgpu\`: the chunked lightning kernel (three`,
    `dispatches: per-chunk states, a scan over the chunks, the chunk outputs with the chunk's score matrix in workgroup memory;`,
    `chunks of ${CHUNK} tokens on a GPU) and the flash-style softmax kernel (a workgroup per block of queries walks the key tiles`,
    'with an online softmax; no T x T matrix is stored). Each timed run enqueues one forward and waits for the GPU',
    '(`backend.synchronize()`, nothing read back); the inputs are made once per T, outside the timing.',
    `GFLOP/s count the arithmetic of the algorithm (lightning: QK^T, (.)V, Q S and the state update per chunk of ${CHUNK};`,
    'softmax: 4D flops per causal query-key pair), the same counts as the CPU table.',
    peak
      ? `"% of peak" is against ${(peak.gflops / 1000).toFixed(0)} TFLOP/s, the card's f32 rate without tensor cores (${peak.source}; the WGSL kernels use plain f32 FMAs: WebGPU has no tensor-core access).`
      : '"% of peak": no ceiling is known for this adapter.',
    '',
    `- device: ${report.device.name}; Node ${report.environment.node}; ${report.date.slice(0, 10)}; commit ${commit}`,
    `- load average (1 min) ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end (host CPU)`,
    `- runs: median of up to ${report.repeat ?? 10} timed runs (at least ${report.minRepeat ?? 3}; fewer past about a second of runs) after ${report.warmup ?? 2} untimed warm-ups, per kind and T; fastest in parentheses`,
    ...(report.stopped ? [`- ${report.stopped}: larger T were not run`] : []),
    ...(report.error ? [`- the run ended with an error, ${report.error}: the rows are those measured before it`] : []),
    ...(report.complete === false ? ['- the run did not finish (killed from outside): the rows are those measured before'] : []),
    `- command: ${reproduce(report, bundled)}`,
    '',
    tableText,
    '',
    '![attention on WebGPU: time per token vs T](attention-webgpu.svg)',
  ];
  if (first && last && first !== last) {
    lines.push(
      '',
      `From T = ${first.T} to T = ${last.T} the time per token grows ${growth('lightning')} for lightning attention and ${growth('softmax')} for softmax`,
      `attention; at T = ${last.T} softmax attention takes ${(last.softmax!.medianMs / last.lightning!.medianMs).toFixed(2)}x the time of lightning attention.`,
      `Best rates: lightning ${f(best('lightning'), 2)} GFLOP/s${ofPeak(best('lightning'))}, softmax ${f(best('softmax'), 2)} GFLOP/s${ofPeak(best('softmax'))}.`,
    );
  }
  return lines.join('\n');
}

function writeDocs(report: Report, commit: string, bundled: boolean): string[] {
  const file = path.join(REPO_ROOT, 'docs', 'benchmarks.md');
  const gpu = (report.backend ?? 'cpu') === 'webgpu';
  const svgFile = path.join(REPO_ROOT, 'docs', gpu ? 'attention-webgpu.svg' : 'attention-cpu.svg');
  const title = gpu
    ? `Attention forward on WebGPU (${report.device.name}), H=${H}, D=${D}, batch 1`
    : `Attention forward on CPU, H=${H}, D=${D}, batch 1 (backend-cpu)`;
  fs.mkdirSync(path.dirname(svgFile), { recursive: true });
  fs.writeFileSync(svgFile, svg(report.rows, title));
  if (gpu) writeSection(file, MARKERS, null, gpuSection(report, table(report.rows, report.peak?.gflops ?? null), commit, bundled));
  else writeSection(file, MARKERS, cpuSection(report, table(report.rows), commit));
  return [file, svgFile];
}

interface RunValues {
  backend?: string;
  small?: boolean;
  'min-t'?: string;
  'max-t'?: string;
  'softmax-max-t'?: string;
  repeat?: string;
  'budget-s'?: string;
}

async function run(values: RunValues, jsonOut: string): Promise<Report> {
  const backendName = parseBackend(values.backend);
  const gpuRun = backendName === 'webgpu';
  const budget = new TimeBudget(parseBudget(values['budget-s']));
  const small = values.small === true;
  H = small ? 2 : 16;
  const minT = Number(values['min-t'] ?? (small ? 128 : 512));
  const maxT = Number(values['max-t'] ?? (small ? 256 : 16384));
  const softmaxMaxT = Number(values['softmax-max-t'] ?? (gpuRun ? maxT : 4096));
  const repeat = Number(values.repeat ?? (gpuRun ? 10 : 3));
  const minRepeat = Math.min(3, repeat);
  const warmup = 2;
  for (const [name, v] of [['--min-t', minT], ['--max-t', maxT], ['--softmax-max-t', softmaxMaxT], ['--repeat', repeat]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} expected a positive integer, got ${v}`);
  }
  let webgpu: WebGpuHandle | null = null;
  let device: DeviceInfo = { name: cpuName() };
  let peak: Report['peak'] = null;
  if (gpuRun) {
    webgpu = await initWebGpu();
    device = { name: webgpu.device };
    peak = webgpu.software ? null : gpuF32PeakGflops(webgpu.device);
  }
  const load0 = os.loadavg()[0]!;
  const argv = process.argv.slice(2).join(' ');
  const report: Report = {
    date: new Date().toISOString(),
    command: FROM_SOURCE ? `cd tools/bench && node --conditions=@ring-linear/source --import tsx src/attention.ts${argv ? ` ${argv}` : ''}` : `node attention.mjs${argv ? ` ${argv}` : ''}`,
    ...(gpuRun ? { backend: 'webgpu', software: webgpu!.software } : {}),
    environment: environment(),
    device: { name: device.name },
    peak,
    loadAverage: [load0, load0],
    heads: H,
    repeat,
    ...(gpuRun ? { minRepeat, warmup } : {}),
    budgetS: budget.limitS,
    stopped: null,
    complete: false,
    error: null,
    rows: [],
  };
  const save = () => {
    report.loadAverage = [load0, os.loadavg()[0]!];
    report.stopped = budget.stopped;
    fs.mkdirSync(path.dirname(jsonOut), { recursive: true });
    fs.writeFileSync(jsonOut, `${JSON.stringify(report, null, 2)}\n`);
  };
  try {
    for (let T = minT; T <= maxT; T *= 2) {
      const prev = report.rows[report.rows.length - 1];
      // The next T's runs predicted from the last T's: lightning work doubles, softmax work quadruples.
      const predictedS = prev
        ? ((warmup + minRepeat) * (2 * (prev.lightning?.medianMs ?? 0) + 4 * (prev.softmax?.medianMs ?? 0))) / 1000
        : 0;
      if (!budget.allows(`T = ${T}`, predictedS)) break;
      const row: Row = { T, lightning: null, softmax: null };
      let state: State;
      try {
        state = setupInputs(T);
      } catch (err) {
        report.error = `T = ${T}: ${(err as Error).message}`;
        break;
      }
      try {
        for (const kind of ['lightning', 'softmax'] as const) {
          if (kind === 'softmax' && T > softmaxMaxT) continue;
          const b = bench(kind, T, state, backendName, webgpu ? webgpu.synchronize : undefined);
          process.stderr.write(`${b.name} ... `);
          let opts: RunOptions;
          if (gpuRun) {
            // Two warm-ups (pipelines compiled, buffers pooled), then runs until about a second is spent.
            opts = { repeat, minRepeat, warmup, budgetMs: 1000 };
          } else {
            // One untimed warm-up at the small sizes only (the kernels are hot by then); softmax
            // attention past 2048 tokens is timed once (minutes per run), lightning attention always
            // `repeat` times.
            const small = T <= 2048;
            const runs = small || kind === 'lightning' ? repeat : 1;
            opts = { repeat: runs, minRepeat: runs, warmup: small ? 1 : 0, budgetMs: 0 };
          }
          let ours;
          try {
            ({ ours } = await measure(b, opts));
          } catch (err) {
            // A failure at one size (e.g. a buffer over the device's limits) ends the sweep; what
            // was measured so far is kept and the error is reported with it.
            report.error = `${b.name}: ${(err as Error).message}`;
            process.stderr.write(`FAILED\n${(err as Error).stack ?? String(err)}\n`);
            break;
          }
          const r = toResult(b, device, ours, null);
          row[kind] = r;
          process.stderr.write(`${r.medianMs >= 10 ? r.medianMs.toFixed(0) : r.medianMs.toPrecision(3)} ms (${ours.samplesMs.length} run(s))\n`);
        }
      } finally {
        dispose([state.q, state.k, state.v, state.decay]);
      }
      if (row.lightning || row.softmax) report.rows.push(row);
      save();
      if (report.error) break;
    }
  } finally {
    await webgpu?.dispose();
  }
  report.complete = true;
  save();
  return report;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      backend: { type: 'string' },
      small: { type: 'boolean' },
      'min-t': { type: 'string' },
      'max-t': { type: 'string' },
      'softmax-max-t': { type: 'string' },
      repeat: { type: 'string' },
      'budget-s': { type: 'string' },
      'no-docs': { type: 'boolean' },
      json: { type: 'string' },
      'docs-from': { type: 'string' },
      commit: { type: 'string' },
    },
    strict: true,
  });
  const from = values['docs-from'];
  let report: Report;
  if (from) {
    report = JSON.parse(fs.readFileSync(path.resolve(from), 'utf8')) as Report;
    H = report.heads ?? 16;
  } else {
    const out = values.json ? path.resolve(values.json) : path.join(REPO_ROOT, 'runs', 'bench', `attention-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    report = await run(values, out);
    console.log(`JSON: ${out}`);
  }
  const gpu = (report.backend ?? 'cpu') === 'webgpu';
  console.log(`\n${report.device.name}${report.software ? ' (software adapter)' : ''}\n${table(report.rows, gpu ? (report.peak?.gflops ?? null) : null)}`);
  if (report.stopped) console.log(report.stopped);
  if (report.error) {
    console.log(`error: ${report.error}`);
    process.exitCode = 1;
  }
  if (values['no-docs']) return;
  if (!report.rows.length) {
    console.log('docs not written: the report has no rows');
  } else if (report.software && !allowSoftwareDocs()) {
    console.log("docs not written: a software adapter's timings only prove that the bench runs");
  } else {
    // A run on another host (a bundle, no git there) names its commit with --commit.
    const commit = values.commit ?? (report.environment.commit !== 'unknown' ? report.environment.commit : environment().commit);
    const bundled = !report.command.includes('src/attention.ts');
    console.log(`wrote ${writeDocs(report, commit, bundled).join(' and ')}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
