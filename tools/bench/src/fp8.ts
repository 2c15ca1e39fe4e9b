/**
 * Each fused FP8 op (@ring-linear/fp8) against its unfused composite on the CPU backend: time
 * (median, the two sides interleaved as the framework does), tensor bytes moved, and the ratios.
 * Prints a table, writes the JSON results and (unless --no-docs) rewrites the "FP8" section of
 * docs/benchmarks.md.
 *
 *   cd tools/bench && node --conditions=@ring-linear/source --import tsx src/fp8.ts
 *     [--repeat 5] [--filter text] [--small] [--no-docs] [--json <path>] [--backend cpu|webgpu]
 *     [--budget-s N]   no further op is started once N seconds have passed (the JSON says so; it is
 *                      rewritten after every op, so a run killed from outside keeps what it measured)
 *   ... src/fp8.ts --docs-from <json>     rewrites the docs section from an earlier run's JSON
 *                                         (e.g. one made by a bundle on another host)
 *
 * --backend webgpu runs both sides on @ring-linear/backend-webgpu (Dawn through the `webgpu`
 * package, or SwiftShader without a GPU): each timed run ends with `backend.synchronize()` (the GPU
 * finished; nothing read back), bytes are counted by wrapping the WebGPU kernels the same way, and
 * the results go to a WebGPU block inside the FP8 section (a CPU run keeps that block, and a
 * WebGPU run keeps the CPU table). On a software adapter (SwiftShader) the numbers only prove that
 * the bench runs: the docs are not written.
 *
 * Bytes moved are counted, not estimated: every CPU kernel is wrapped for one untimed run of each
 * side, adding the bytes of the tensors it reads and writes (inputs + outputs; reshape views launch
 * nothing and move nothing). That is the traffic between kernels, what a fusion saves on a GPU; a
 * kernel's private scratch inside one launch is not counted. The composite side is the op run with
 * its own kernel switched off (withKernelsDisabled), i.e. the unfused ops each with its CPU kernel.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import '@ring-linear/backend-cpu';
import {
  bytesPerElement,
  dispose,
  disposeBackend,
  getKernel,
  initBackend,
  listKernels,
  registerKernel,
  setBackend,
  tensor,
  withKernelsDisabled,
  type DType,
  type KernelRegistration,
  type Tensor,
  type TensorInfo,
} from '@ring-linear/core';
import {
  fp8GemmRaw,
  fp8GroupedGemmRaw,
  fp8Linear,
  groupRmsNormGateQuant,
  quantTransposeRaw,
  quantizeRaw,
  rmsNormQuant,
  routerGemm,
  swigluBackwardQuant,
  swigluQuant,
} from '@ring-linear/fp8';
import { measure, toResult, type Bench, type BenchResult } from './framework.js';
import { cpuName, environment } from './device.js';
import { TimeBudget, allowSoftwareDocs, parseBudget, scriptContext } from './docs.js';

// From source: the repository root; from a bundle (another host): the working directory.
const { repoRoot: REPO_ROOT } = scriptContext(import.meta.url, 'fp8.ts');

function randomValues(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

const rand = (shape: number[], seed: number, dtype: DType = 'f32', scale = 1) =>
  tensor(randomValues(shape.reduce((a, b) => a * b, 1), seed, scale), shape, dtype);

/** One fused op: how to make its inputs and run it (returning every output, to be freed). */
interface Case {
  op: string;
  desc: string;
  shapes: number[][];
  dtype: string;
  /** Floating-point work of the fused op (GEMMs), where it is meaningful. */
  flops?: number;
  setup(): Tensor[];
  run(inputs: Tensor[]): Tensor[];
}

function cases(small: boolean): Case[] {
  const T = small ? 256 : 2048; // tokens
  const Hd = small ? 512 : 2048; // hidden (Ring-mini: 2048)
  const I = small ? 256 : 512; // MoE intermediate (Ring-mini: 512)
  const E = 8;
  const Mg = small ? 128 : 256; // GEMM rows
  const Ng = small ? 256 : 1024;
  const Kg = small ? 512 : 2048;
  const q = () => ({ dtype: 'f8e4m3' as const });
  return [
    {
      op: 'fp8QuantTranspose', desc: `x [${T}, ${Hd}] -> 1x128 tiles of x and x^T`, shapes: [[T, Hd]], dtype: 'f32',
      setup: () => [rand([T, Hd], 1)],
      run: ([x]) => quantTransposeRaw(x!, q()),
    },
    {
      op: 'fp8RmsNormQuant', desc: `x [${T}, ${Hd}], weight [${Hd}]`, shapes: [[T, Hd], [Hd]], dtype: 'f32',
      setup: () => [rand([T, Hd], 2), rand([Hd], 3)],
      run: ([x, w]) => rmsNormQuant(x!, w!, q()),
    },
    {
      op: 'fp8SwigluQuant', desc: `gateUp [${T}, 2x${I}]`, shapes: [[T, 2 * I]], dtype: 'f32',
      setup: () => [rand([T, 2 * I], 4, 'f32', 3)],
      run: ([gu]) => swigluQuant(gu!, q()),
    },
    {
      op: 'fp8SwigluBackwardQuant', desc: `gateUp [${T}, 2x${I}], dh [${T}, ${I}] -> dy, dy^T`, shapes: [[T, 2 * I], [T, I]], dtype: 'f32',
      setup: () => [rand([T, 2 * I], 5, 'f32', 3), rand([T, I], 6, 'f32', 0.01)],
      run: ([gu, dh]) => swigluBackwardQuant(gu!, dh!, q()),
    },
    {
      op: 'fp8GroupRmsNormGateQuant', desc: `o, gate [${T}, ${Hd}], 4 groups`, shapes: [[T, Hd], [T, Hd], [Hd]], dtype: 'f32',
      setup: () => [rand([T, Hd], 7), rand([T, Hd], 8, 'f32', 3), rand([Hd], 9)],
      run: ([o, g, w]) => groupRmsNormGateQuant(o!, g!, w!, { groups: 4, dtype: 'f8e4m3' }),
    },
    {
      op: 'routerGemm', desc: `x bf16 [${Mg * 2}, ${Hd}] x w bf16 [256, ${Hd}]^T -> f32`, shapes: [[Mg * 2, Hd], [256, Hd]], dtype: 'bf16',
      flops: 2 * Mg * 2 * Hd * 256,
      setup: () => [rand([Mg * 2, Hd], 10, 'bf16'), rand([256, Hd], 11, 'bf16', 0.02)],
      run: ([x, w]) => [routerGemm(x!, w!)],
    },
    {
      op: 'fp8Gemm', desc: `[${Mg}, ${Kg}] x [${Ng}, ${Kg}]^T, E4M3, block scales`, shapes: [[Mg, Kg], [Ng, Kg]], dtype: 'f8e4m3',
      flops: 2 * Mg * Ng * Kg,
      setup: () => {
        const [a, sa] = quantizeRaw(rand([Mg, Kg], 12));
        const [b, sb] = quantizeRaw(rand([Ng, Kg], 13, 'f32', 0.02), { layout: 'block128x128' });
        return [a, sa, b, sb];
      },
      run: ([a, sa, b, sb]) => [fp8GemmRaw(a!, sa!, b!, sb!)],
    },
    {
      op: 'fp8GroupedGemm', desc: `[${Mg}, ${Kg / 2}] rows over ${E} experts [${E}, ${Ng / 4}, ${Kg / 2}]`, shapes: [[Mg, Kg / 2], [E, Ng / 4, Kg / 2]], dtype: 'f8e4m3',
      flops: 2 * Mg * (Ng / 4) * (Kg / 2),
      setup: () => {
        const [a, sa] = quantizeRaw(rand([Mg, Kg / 2], 14));
        const [b, sb] = quantizeRaw(rand([E, Ng / 4, Kg / 2], 15, 'f32', 0.02), { layout: 'block128x128' });
        const off = tensor(Int32Array.from({ length: E + 1 }, (_, e) => Math.round((e * Mg) / E)), [E + 1], 'i32');
        return [a, sa, b, sb, off];
      },
      run: ([a, sa, b, sb, off]) => [fp8GroupedGemmRaw(a!, sa!, b!, sb!, off!)],
    },
    {
      op: 'fp8Linear', desc: `forward x [${Mg}, ${Kg}], W [${Ng}, ${Kg}] f32 (quantize both + GEMM)`, shapes: [[Mg, Kg], [Ng, Kg]], dtype: 'f32',
      flops: 2 * Mg * Ng * Kg,
      setup: () => [rand([Mg, Kg], 16), rand([Ng, Kg], 17, 'f32', 0.02)],
      run: ([x, w]) => [fp8Linear(x!, w!)],
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Bytes moved: wrap every CPU kernel for one run

const infoBytes = (t: TensorInfo) => t.size * bytesPerElement(t.dtype);

function countTraffic(fn: () => void, backend = 'cpu'): { bytes: number; launches: number } {
  const originals: KernelRegistration[] = listKernels(backend).map((op) => getKernel(op, backend)!);
  let bytes = 0;
  let launches = 0;
  for (const reg of originals) {
    registerKernel({
      ...reg,
      kernel: (ctx) => {
        launches++;
        for (const t of ctx.inputs) bytes += infoBytes(t);
        for (const t of ctx.outputs) bytes += infoBytes(t);
        reg.kernel(ctx);
      },
    });
  }
  try {
    fn();
  } finally {
    for (const reg of originals) registerKernel(reg);
  }
  return { bytes, launches };
}

interface Row {
  c: Pick<Case, 'op' | 'desc'>;
  fused: BenchResult;
  fusedBytes: number;
  compositeBytes: number;
  compositeLaunches: number;
}

/** The side's work on `backend`; `finish` waits for asynchronous backends (WebGPU: synchronize). */
function bench(c: Case, backend = 'cpu', finish?: () => Promise<void>): Bench<Tensor[]> {
  const side = (composite: boolean) => ({
    setup: () => c.setup(),
    run: (ins: Tensor[]) => {
      const go = () => dispose(c.run(ins));
      if (composite) withKernelsDisabled([c.op], go);
      else go();
      return finish?.();
    },
    teardown: (ins: Tensor[]) => dispose(ins),
  });
  return {
    name: `${c.op} ${c.desc}`,
    op: c.op,
    shapes: c.shapes,
    dtype: c.dtype,
    backend,
    ...(c.flops ? { flops: c.flops } : {}),
    ...side(false),
    comparison: { name: `unfused composite (${backend})`, ...side(true) },
  };
}

const mb = (b: number) => (b / 2 ** 20).toFixed(b >= 10 * 2 ** 20 ? 0 : 1);
const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

function table(rows: readonly Row[]): string {
  const lines = [
    '| op | shapes | fused ms | composite ms | time ratio | fused MiB moved | composite MiB moved (kernels) | bytes ratio |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const f = r.fused;
    lines.push(
      `| ${r.c.op} | ${r.c.desc} | ${ms(f.medianMs)} | ${ms(f.comparisonMedianMs!)} | ${f.ratio!.toFixed(2)}x | ` +
        `${mb(r.fusedBytes)} | ${mb(r.compositeBytes)} (${r.compositeLaunches}) | ${(r.compositeBytes / r.fusedBytes).toFixed(2)}x |`,
    );
  }
  return lines.join('\n');
}

const BEGIN = '<!-- fp8-bench:begin (written by tools/bench/src/fp8.ts) -->';
const END = '<!-- fp8-bench:end -->';
// The WebGPU rows: a block inside the FP8 section, written by --backend webgpu runs.
const GPU_BEGIN = '<!-- fp8-bench-webgpu:begin -->';
const GPU_END = '<!-- fp8-bench-webgpu:end -->';

/** The text between two markers of `text` (exclusive), or null. */
function between(text: string, begin: string, end: string): string | null {
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  return a >= 0 && b > a ? text.slice(a + begin.length, b) : null;
}

/**
 * Replaces (or appends) the FP8 section of docs/benchmarks.md, leaving the rest alone. A CPU run
 * writes `section` and keeps the section's WebGPU block; a WebGPU run (`gpuBlock`) replaces only
 * that block and keeps the rest of the section.
 */
function writeDocs(section: string | null, gpuBlock?: string): string {
  const file = path.join(REPO_ROOT, 'docs', 'benchmarks.md');
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n';
  const old = between(text, BEGIN, END);
  const oldGpu = old === null ? null : between(old, GPU_BEGIN, GPU_END);
  const gpu = gpuBlock !== undefined ? `\n${gpuBlock}\n` : oldGpu;
  let body = section ?? (old === null ? '## FP8' : old.replace(/\n?<!-- fp8-bench-webgpu:begin -->[\s\S]*<!-- fp8-bench-webgpu:end -->/, '').replace(/^\n+|\n+$/g, ''));
  if (gpu !== null) body = `${body}\n\n${GPU_BEGIN}${gpu}${GPU_END}`;
  const block = `${BEGIN}\n${body}\n${END}`;
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) text = `${text.slice(0, a)}${block}${text.slice(b + END.length)}`;
  else text = `${text.replace(/\s*$/, '')}\n\n${block}\n`;
  fs.writeFileSync(file, text);
  return file;
}

interface Report {
  date: string;
  command: string;
  /** 'cpu' (the default: older reports have no field) or 'webgpu'. */
  backend?: string;
  /** WebGPU: the adapter is a CPU implementation (SwiftShader): timings only prove the bench runs. */
  software?: boolean;
  environment: Record<string, string>;
  device: { name: string };
  loadAverage: [number, number];
  repeat: number;
  budgetS?: number | null;
  /** Why the run stopped before the last op (the time budget), or null. */
  stopped?: string | null;
  /** False while the run goes on (the JSON is rewritten after every op). */
  complete?: boolean;
  results: (BenchResult & { fusedBytes: number; compositeBytes: number; compositeLaunches: number })[];
}

function rowsOf(report: Report): Row[] {
  return report.results.map((r) => ({
    c: { op: r.op, desc: r.name.slice(r.op.length + 1) },
    fused: r,
    fusedBytes: r.fusedBytes,
    compositeBytes: r.compositeBytes,
    compositeLaunches: r.compositeLaunches,
  }));
}

async function run(values: { repeat?: string; filter?: string; small?: boolean; backend?: string; 'budget-s'?: string }, save: (r: Report) => void): Promise<Report> {
  const repeat = Number(values.repeat ?? 5);
  const budget = new TimeBudget(parseBudget(values['budget-s']));
  const backendName = values.backend ?? 'cpu';
  if (backendName !== 'cpu' && backendName !== 'webgpu') throw new Error(`--backend expected 'cpu' or 'webgpu', got '${backendName}'`);
  let device = { name: cpuName() };
  let finish: (() => Promise<void>) | undefined;
  let software = false;
  if (backendName === 'webgpu') {
    // Registers the backend and its kernels; inputs are made on the current backend (rand()).
    await import('@ring-linear/backend-webgpu');
    const gpu = (await initBackend('webgpu')) as Awaited<ReturnType<typeof initBackend>> & { synchronize(): Promise<void>; isSoftware?: boolean };
    await setBackend('webgpu');
    device = { name: gpu.capabilities.device };
    software = gpu.isSoftware === true;
    finish = () => gpu.synchronize();
    if (software) process.stderr.write(`note: ${device.name} is a software adapter: the timings only prove that the bench runs\n`);
  }
  const load0 = os.loadavg()[0]!;
  const results: Report['results'] = [];
  const argv = process.argv.slice(2).join(' ');
  const report = (complete: boolean): Report => ({
    date: new Date().toISOString(),
    command: `cd tools/bench && node --conditions=@ring-linear/source --import tsx src/fp8.ts${argv ? ` ${argv}` : ''}`,
    ...(backendName === 'webgpu' ? { backend: 'webgpu', software } : {}),
    environment: environment(),
    device,
    loadAverage: [load0, os.loadavg()[0]!],
    repeat,
    budgetS: budget.limitS,
    stopped: budget.stopped,
    complete,
    results,
  });
  try {
    for (const c of cases(values.small ?? false)) {
      if (values.filter && !c.op.toLowerCase().includes(values.filter.toLowerCase())) continue;
      if (!budget.allows(c.op)) break;
      const b = bench(c, backendName, finish);
      process.stderr.write(`${b.name} ... `);
      const ins = c.setup();
      const fusedTraffic = countTraffic(() => dispose(c.run(ins)), backendName);
      const compTraffic = countTraffic(() => withKernelsDisabled([c.op], () => dispose(c.run(ins))), backendName);
      dispose(ins);
      const { ours, theirs } = await measure(b, { repeat, minRepeat: Math.min(3, repeat), warmup: 1, budgetMs: 2000 });
      const r = toResult(b, device, ours, theirs);
      results.push({ ...r, fusedBytes: fusedTraffic.bytes, compositeBytes: compTraffic.bytes, compositeLaunches: compTraffic.launches });
      process.stderr.write(`fused ${r.medianMs.toFixed(1)} ms, composite ${r.comparisonMedianMs!.toFixed(1)} ms (${ours.samplesMs.length} runs)\n`);
      save(report(false));
    }
  } finally {
    if (backendName === 'webgpu') {
      await setBackend('cpu');
      await disposeBackend('webgpu'); // Node.js: lets the process exit
    }
  }
  return report(true);
}

/** The command that reproduces a run: its flags without the output-only ones. */
function reproduce(report: Report, bundled: boolean): string {
  const flags = report.command.split(' src/fp8.ts')[1] ?? '';
  const kept = flags.replace(/\s--no-docs/g, '').replace(/\s--(json|commit) \S+/g, '');
  if (!bundled) return `\`cd tools/bench && node --conditions=@ring-linear/source --import tsx src/fp8.ts${kept}\``;
  return (
    '`npx esbuild tools/bench/src/fp8.ts --bundle --platform=node --format=esm --conditions=@ring-linear/source ' +
    `--outfile=fp8.mjs "--banner:js=import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);"\` on the dev machine, then \`node fp8.mjs${kept}\` on the host (it has no node_modules)`
  );
}

function section(report: Report, tableText: string, commit: string, bundled: boolean): string {
  const [load0, load1] = report.loadAverage;
  return [
    '## FP8',
    '',
    'Each fused FP8 op of `@ring-linear/fp8` against its unfused composite (the same op with its kernel switched off:',
    'the unfused ops, each with its own CPU kernel), forward, on the CPU backend. Both produce the same bytes (tested);',
    'the fusion saves writing and re-reading intermediates. Bytes moved are counted by wrapping every kernel for one',
    'run: the tensors each kernel reads and writes (the traffic between kernels, what a fusion saves on a GPU).',
    'time ratio = composite / fused (above 1: the fused kernel is faster); bytes ratio = composite / fused bytes.',
    '',
    `- machine: ${report.device.name}${bundled ? ' (the GPU test host, quiet)' : ''}, one thread; Node ${report.environment.node}; ${report.date.slice(0, 10)}; commit ${commit}`,
    `- load average (1 min) ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end`,
    `- runs: median of up to ${report.repeat} timed runs per side after one warm-up, the two sides interleaved`,
    `- command: ${reproduce(report, bundled)}`,
    '',
    tableText,
    '',
    'Reading the table: on a CPU these kernels are compute-bound in scalar JavaScript, so the time saved is the work',
    'of the intermediate ops (quantizing is the same work on both sides): the fusions with many intermediates',
    '(SwiGLU backward, the group-norm gate) run about 2x faster, the single-intermediate ones about 1.1x, and',
    '`fp8Linear` runs the same three kernels back to back on the CPU (1.00x; the saving is the intermediate codes,',
    '1.46x fewer bytes). `routerGemm` saves the f32 copies of its bf16 inputs (4.4x fewer bytes) but not time: the',
    'widening is free next to the GEMM. The bytes ratio is what a memory-bound GPU kernel gains. The GEMM rows',
    'compare the FP8 kernel with its composite (the tile products as one batched f32 matmul of the decoded codes,',
    'then scale and sum with core ops; the grouped composite runs every expert over all rows and masks, E times the',
    'work). On one JavaScript thread an FP8 GEMM is not faster than an f32 GEMM (both compute in f64 registers); FP8',
    'pays off on hardware with FP8 tensor cores (CUDA). WebGPU rows: `--backend webgpu` (below, once run on the GPU machine).',
  ].join('\n');
}

/** The WebGPU block of the FP8 section (inside its markers). */
function gpuSection(report: Report, tableText: string, commit: string, bundled: boolean): string {
  const [load0, load1] = report.loadAverage;
  return [
    '### FP8 on WebGPU',
    '',
    'The same fused-vs-composite pairs on `@ring-linear/backend-webgpu` (forward; both sides produce the same bytes on',
    'WebGPU, tested): each timed run enqueues the op and waits for the GPU (`backend.synchronize()`, no readback).',
    'Bytes moved are counted by wrapping every WebGPU kernel (the tensors each kernel reads and writes).',
    '',
    `- device: ${report.device.name}; Node ${report.environment.node}; ${report.date.slice(0, 10)}; commit ${commit}`,
    `- load average (1 min) ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end`,
    `- runs: median of up to ${report.repeat} timed runs per side after one warm-up, the two sides interleaved`,
    ...(report.stopped ? [`- ${report.stopped}: the ops after it were not run`] : []),
    `- command: ${reproduce(report, bundled)}`,
    '',
    tableText,
    '',
    'Reading the table: the quantizers and fused ops are memory-bound, so the bytes ratio bounds what the fusion can',
    'gain. `routerGemm` is not a plain f32 GEMM on WebGPU: it sums in float-float (about 20 flops per multiply-add)',
    'so the router sees the CPU\'s float64-accumulated logits; its composite is the plain f32 matmul. The GEMM rows',
    'decode FP8 codes to f32 in registers (WebGPU has no FP8 arithmetic); their gain is the 1-byte operand reads.',
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      repeat: { type: 'string' },
      filter: { type: 'string' },
      small: { type: 'boolean' },
      'no-docs': { type: 'boolean' },
      json: { type: 'string' },
      'docs-from': { type: 'string' },
      commit: { type: 'string' },
      backend: { type: 'string' },
      'budget-s': { type: 'string' },
    },
    strict: true,
  });
  const from = values['docs-from'];
  const out = values.json ? path.resolve(values.json) : path.join(REPO_ROOT, 'runs', 'bench', `fp8-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const save = (r: Report) => {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, `${JSON.stringify(r, null, 2)}\n`);
  };
  const report: Report = from ? (JSON.parse(fs.readFileSync(path.resolve(from), 'utf8')) as Report) : await run(values, save);
  const tableText = table(rowsOf(report));
  console.log(`\n${report.device.name}\n${tableText}`);
  if (report.stopped) console.log(report.stopped);
  if (!from) {
    save(report);
    console.log(`JSON: ${out}`);
  }
  if (report.software && !allowSoftwareDocs() && !values['no-docs'] && !values.filter) {
    console.log('docs not written: a software adapter\'s timings only prove that the bench runs');
  } else if (!values['no-docs'] && !values.filter) {
    // A run on another host (a bundle, no git there) names its commit with --commit.
    const commit = values.commit ?? (report.environment.commit !== 'unknown' ? report.environment.commit : environment().commit);
    const bundled = report.environment.commit === 'unknown';
    const file = (report.backend ?? 'cpu') === 'webgpu' ? writeDocs(null, gpuSection(report, tableText, commit, bundled)) : writeDocs(section(report, tableText, commit, bundled));
    console.log(`wrote ${file}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
