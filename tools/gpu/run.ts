/**
 * The GPU machine entry (bundled by tools/gpu/build.mjs into .carry/gpu/run.mjs):
 *
 *   node run.mjs info                         availability, device, libraries
 *   node run.mjs precompile --out DIR         compile every kernel module (parallel NVRTC), report failures
 *   node run.mjs conformance --out DIR [--ops a,b] [--seed N]
 *                                             the conformance suite against 'cuda', in child processes
 *                                             per chunk of ops (a kernel that faults poisons only its
 *                                             chunk, which is then re-run op by op for diagnostics)
 *   node run.mjs bench --out DIR [--torch FILE]
 *                                             CUDA benchmarks; with the PyTorch numbers of the same
 *                                             run (tools/gpu/torch_bench.py) as ratios
 *   node run.mjs fp8 --out DIR [--torch FILE] [--seed N] [--ops a,b] [--small]
 *                                             the FP8 kernels: @ring-linear/fp8's OpInfo records
 *                                             against the CPU, byte checks at vector-path sizes
 *                                             (CUDA == CPU; fused == composite on CUDA), then
 *                                             timings at [8192, 8192] (torch_bench.py --fp8 ratios);
 *                                             byte checks and timings for both kernel versions
 *                                             (v2, the default, and v1: RING_LINEAR_CUDA_FP8_KERNELS)
 *   node run.mjs attn --out DIR [--torch FILE] [--seed N] [--small]
 *                                             the decode attention kernels: the OpInfo records of
 *                                             lightningAttentionStep and softmaxAttention against the
 *                                             CPU, kernel vs composite on CUDA at the timed shapes and
 *                                             odd ones, then timings of the lightning step (B = 1, 64)
 *                                             and softmax decode (B = 1, 64; context 4096, 32768)
 *                                             with torch_bench.py --attn ratios
 *
 * Results go to DIR as JSON and text; the last thing printed is a short table.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as core from '@ring-linear/core';
import '@ring-linear/backend-cpu';
import { allModuleSpecs, captureGraph, cudaAvailability, devicePointer, type CudaAvailability } from '@ring-linear/backend-cuda';
import { parseArgs, log, outDir, cudaBackend, withTorchTimes, timeGpu, values, relErr, formatBench, outBytes, firstDiff, relMaxErr, type Args, type BenchRow } from './common.js';
import { STEPS } from './steps/index.js';
import { ALL_OP_INFOS, formatSummary, runConformance, type CaseResult, type ConformanceResult } from '@ring-linear/conformance';
import { groupRmsNormGateQuant, quantTransposeRaw, quantizeRaw, rmsNormQuant, swigluBackwardQuant, swigluQuant } from '@ring-linear/fp8';
import { fp8OpInfos } from '@ring-linear/fp8/opinfo';
import { groupRmsNormGate, lightningAttentionStep, softmaxAttentionWithLse } from '@ring-linear/attention';
import { attentionOpInfos } from '@ring-linear/attention/opinfo';

async function info(): Promise<CudaAvailability> {
  const a = await cudaAvailability();
  log(`node ${process.version}; ${a.reason}`);
  if (a.available) {
    log(`libraries: ${JSON.stringify(a.libraries)}; NVRTC ${a.nvrtcVersion}; include ${a.includeDir}`);
    for (const d of a.devices ?? []) log(`device ${d.ordinal}: ${d.name}, sm_${d.computeCapability.join('')}, ${d.multiprocessors} SMs, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB`);
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// precompile

async function precompile(a: Args): Promise<number> {
  const out = outDir(a);
  const b = await cudaBackend();
  const t0 = performance.now();
  const failures: { module: string; error: string }[] = [];
  const n = await b.precompile(Number(a.parallel ?? 16), (module, err) => failures.push({ module, error: err.message }));
  const ms = performance.now() - t0;
  const total = allModuleSpecs().length;
  log(`precompile: ${total} modules for ${b.arch}, ${n} compiled now (others from the cache at ${b.diskCache.dir}), ${failures.length} failed, ${(ms / 1000).toFixed(1)} s`);
  for (const f of failures) log(`MODULE FAILED ${f.module}:\n${f.error}`);
  writeFileSync(join(out, 'precompile.json'), JSON.stringify({ arch: b.arch, modules: total, compiled: n, ms, failures }, null, 1));
  await core.disposeBackend('cuda');
  return failures.length ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// conformance

const CUDA_FAULT = /CUDA error|CUDA_ERROR|illegal|misaligned|launch failure/i;

async function conformanceWorker(a: Args): Promise<number> {
  const ops = String(a.ops).split(',');
  await cudaBackend();
  const r = await runConformance({ backend: 'cuda', reference: 'cpu', ops, seed: Number(a.seed), log: null });
  const { summary: _s, ...rest } = r;
  writeFileSync(String(a.json), JSON.stringify(rest));
  return 0;
}

function runWorker(ops: string[], seed: number, json: string, timeoutMs = 240_000): { cases: CaseResult[]; device: string; notes: string[]; crashed: string | null } {
  const self = fileURLToPath(import.meta.url);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [self, 'conformance-worker', '--ops', ops.join(','), '--seed', String(seed), '--json', json], {
    encoding: 'utf8',
    timeout: Math.round(Math.max(10_000, timeoutMs)),
    killSignal: 'SIGKILL',
    maxBuffer: 1 << 26,
  });
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  if (r.status !== 0 || !existsSync(json)) {
    const why = r.error ? r.error.message : `exit ${r.status} signal ${r.signal}`;
    return { cases: [], device: '?', notes: [], crashed: `${why} after ${secs} s: ${(r.stderr || r.stdout || '').split('\n').slice(-15).join('\n')}` };
  }
  const res = JSON.parse(readFileSync(json, 'utf8')) as Omit<ConformanceResult, 'summary'>;
  return { cases: [...res.cases], device: res.device, notes: [...res.notes], crashed: null };
}

async function conformance(a: Args): Promise<number> {
  const out = outDir(a);
  const seed = a.seed !== undefined ? Number(a.seed) : Math.floor(Math.random() * 2 ** 31);
  let ops = [...new Set(ALL_OP_INFOS.map((i) => i.op))];
  if (typeof a.ops === 'string') {
    const want = new Set(a.ops.split(','));
    ops = ops.filter((o) => want.has(o));
  }
  log(`conformance: ${ops.length} ops against 'cuda', seed ${seed} (reproduce one op: --ops NAME --seed ${seed})`);
  const chunkSize = Number(a.chunk ?? 10);
  const cases: CaseResult[] = [];
  const notes: string[] = [];
  let device = '?';
  const t0 = performance.now();
  // A time budget (seconds) for the whole step: no chunk starts or runs past it.
  const deadline = t0 + 1000 * Number(a.budget ?? 1e6);
  const left = () => deadline - performance.now();
  for (let i = 0; i < ops.length; i += chunkSize) {
    const chunk = ops.slice(i, i + chunkSize);
    if (left() < 5000) {
      notes.push(`time budget spent: not run: ${ops.slice(i).join(', ')}`);
      log(`  time budget spent; ${ops.length - i} ops not run`);
      break;
    }
    const res = runWorker(chunk, seed, join(out, `conformance-chunk-${i}.json`), left());
    const faulted = res.crashed !== null || res.cases.some((c) => c.messages.some((m) => CUDA_FAULT.test(m)));
    if (faulted && chunk.length > 1) {
      log(`  chunk ${chunk.join(',')}: ${res.crashed ? `crashed (${res.crashed.split('\n')[0]})` : 'a CUDA fault'}; re-running its ops one by one`);
      for (const op of chunk) {
        if (left() < 5000) {
          notes.push(`time budget spent: not run: ${op}`);
          continue;
        }
        const one = runWorker([op], seed, join(out, `conformance-op-${op}.json`), left());
        if (one.crashed) {
          notes.push(`${op}: worker crashed: ${one.crashed}`);
          cases.push({ id: `${op} [crash]`, op, dtype: 'f32', status: 'failed', samples: 0, checks: 0, checksByKind: { reference: 0, check: 0, referenceBackend: 0, tfjs: 0, composite: 0, grad: 0, errors: 0 }, messages: [one.crashed], seed, ms: 0 });
        } else {
          cases.push(...one.cases);
          device = one.device;
        }
      }
    } else if (res.crashed) {
      notes.push(`${chunk[0]}: worker crashed: ${res.crashed}`);
      cases.push({ id: `${chunk[0]} [crash]`, op: chunk[0]!, dtype: 'f32', status: 'failed', samples: 0, checks: 0, checksByKind: { reference: 0, check: 0, referenceBackend: 0, tfjs: 0, composite: 0, grad: 0, errors: 0 }, messages: [res.crashed], seed, ms: 0 });
    } else {
      cases.push(...res.cases);
      notes.push(...res.notes);
      device = res.device;
    }
    const done = Math.min(ops.length, i + chunkSize);
    const failed = cases.filter((c) => c.status === 'failed' || c.status === 'unexpected-pass').length;
    log(`  ${done}/${ops.length} ops, ${cases.length} cases, ${failed} failing, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const counts = { passed: 0, failed: 0, xfail: 0, 'unexpected-pass': 0 };
  for (const c of cases) counts[c.status]++;
  const merged = { backend: 'cuda', device, reference: 'cpu', seed, tfjs: true, cases, counts, ok: counts.failed === 0 && counts['unexpected-pass'] === 0, ms: performance.now() - t0, notes };
  const summary = formatSummary(merged);
  writeFileSync(join(out, 'conformance.json'), JSON.stringify(merged, null, 1));
  writeFileSync(join(out, 'conformance.txt'), summary + '\n');
  log(summary);
  return merged.ok ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// bench

async function bench(a: Args): Promise<number> {
  const out = outDir(a);
  const b = await cudaBackend();
  const gen = new core.Generator(1234);
  const rows: BenchRow[] = [];
  const rnd = (shape: number[], dtype: core.DType = 'f32') => core.keep(core.randomNormal(shape, { dtype, generator: gen }));
  // --small: tiny sizes, to check the benchmark code itself (e.g. on the mock driver).
  const small = a.small === true;
  const E27 = small ? 2 ** 14 : 2 ** 27;
  const E28 = small ? 2 ** 15 : 2 ** 28;
  const SQ = small ? 256 : 16384;
  const p2 = (n: number) => `2^${Math.log2(n)}`;
  const t0 = performance.now();

  // Copy bandwidth (device to device, 1 GiB): the ceiling for memory-bound kernels.
  const copyBytes = small ? 2 ** 20 : 2 ** 30;
  const src = b.allocate(copyBytes);
  const dst = b.allocate(copyBytes);
  b.memset(src.ptr, 0x3f800000, 4, copyBytes / 4);
  const copy = timeGpu(b, () => b.copy(src, 0, dst, 0, copyBytes), 20);
  const copyGbps = (2 * copyBytes) / (copy.ms * 1e-3) / 1e9;
  rows.push({ name: small ? 'copy_1MiB' : 'copy_1GiB', what: `device-to-device copy, ${copyBytes} bytes`, ...copy, bytes: 2 * copyBytes, gbps: copyGbps, ofCopy: 1, check: 'n/a' });
  b.free(src);
  b.free(dst);

  // GEMMs (bf16, f32 accumulation): check sampled entries against float64 dot products.
  for (const n of small ? [64, 128] : [4096, 8192]) {
    const A = rnd([n, n], 'bf16');
    const B = rnd([n, n], 'bf16');
    const C = core.keep(core.matmul(A, B));
    let worst = 0;
    for (let s = 0; s < 6; s++) {
      const i = Math.floor(Math.random() * n);
      const j = Math.floor(Math.random() * n);
      const ar = await values(core.slice(A, [i, 0], [1, n]));
      const bc = await values(core.slice(B, [0, j], [n, 1]));
      const c = (await values(core.slice(C, [i, j], [1, 1])))[0]!;
      let want = 0;
      for (let k = 0; k < n; k++) want += ar[k]! * bc[k]!;
      worst = Math.max(worst, Math.abs(c - want) / Math.sqrt(n)); // |error| relative to the sum's scale
    }
    const tm = timeGpu(b, () => core.matmul(A, B), n === 8192 ? 20 : 30);
    const flops = 2 * n ** 3;
    rows.push({ name: `gemm_bf16_${n}`, what: `bf16 matmul ${n}x${n}x${n}`, ...tm, flops, tflops: flops / (tm.ms * 1e-3) / 1e12, check: `max |err|/sqrt(K) ${worst.toExponential(2)} ${worst < 0.02 ? 'ok' : 'BAD'}` });
    core.dispose([A, B, C]);
  }

  // Memory-bound elementwise ops and reductions: fraction of the copy bandwidth.
  const memRow = async (name: string, what: string, bytes: number, fn: () => core.Tensor, check: () => Promise<string>) => {
    const c = await check();
    const tm = timeGpu(b, () => void fn(), 20);
    const gbps = bytes / (tm.ms * 1e-3) / 1e9;
    rows.push({ name, what, ...tm, bytes, gbps, ofCopy: gbps / copyGbps, check: c });
  };
  const sampleCheck = async (x: core.Tensor[], y: core.Tensor, f: (...v: number[]) => number, tol: number) => {
    const n = y.size;
    let worst = 0;
    for (const start of [0, Math.floor(n / 2), n - 4096]) {
      const xs = await Promise.all(x.map((t) => values(core.slice(core.reshape(t, [n]), [start], [4096]))));
      const ys = await values(core.slice(core.reshape(y, [n]), [start], [4096]));
      for (let i = 0; i < 4096; i++) worst = Math.max(worst, relErr(ys[i]!, f(...xs.map((v) => v[i]!))));
    }
    y.dispose();
    return `max rel err ${worst.toExponential(2)} ${worst <= tol ? 'ok' : 'BAD'}`;
  };

  {
    const n = E27;
    const x = rnd([n]);
    const y = rnd([n]);
    await memRow(`add_f32_${p2(n)}`, `f32 add, ${p2(n)} elements`, 3 * 4 * n, () => core.add(x, y), () => sampleCheck([x, y], core.add(x, y), (p, q) => p + q, 1e-6));
    await memRow(`exp_f32_${p2(n)}`, `f32 exp, ${p2(n)} elements`, 2 * 4 * n, () => core.exp(x), () => sampleCheck([x], core.exp(x), Math.exp, 1e-6));
    // Full reduction, checked against a float64 sum of the whole input.
    await memRow(`sum_f32_${p2(n)}`, `f32 sum of ${p2(n)} elements to a scalar`, 4 * n, () => core.sum(x), async () => {
      const got = (await values(core.sum(x)))[0]!;
      const xv = await values(x);
      let want = 0;
      for (let i = 0; i < n; i++) want += xv[i]!;
      const err = Math.abs(got - want) / Math.sqrt(n);
      return `|err|/sqrt(n) ${err.toExponential(2)} ${err < 1e-3 ? 'ok' : 'BAD'}`;
    });
    core.dispose([x, y]);
  }
  {
    const n = E28;
    const x = rnd([n], 'bf16');
    const y = rnd([n], 'bf16');
    await memRow(`add_bf16_${p2(n)}`, `bf16 add, ${p2(n)} elements`, 3 * 2 * n, () => core.add(x, y), () => sampleCheck([x, y], core.add(x, y), (p, q) => p + q, 2 ** -8));
    core.dispose([x, y]);
  }
  {
    const r = SQ;
    const x = rnd([r, r]);
    const rowCheck = (axis: number) => async () => {
      const got = await values(core.sum(x, axis));
      let worst = 0;
      for (const k of [0, 77, r - 1]) {
        const v = await values(axis === 1 ? core.slice(x, [k, 0], [1, r]) : core.slice(x, [0, k], [r, 1]));
        let want = 0;
        for (const e of v) want += e;
        worst = Math.max(worst, Math.abs(got[k]! - want) / Math.sqrt(r));
      }
      return `|err|/sqrt(n) ${worst.toExponential(2)} ${worst < 1e-4 ? 'ok' : 'BAD'}`;
    };
    await memRow(`sum_rows_f32_${r}^2`, `f32 sum over the last axis of [${r}, ${r}]`, 4 * r * r, () => core.sum(x, 1), rowCheck(1));
    await memRow(`sum_cols_f32_${r}^2`, `f32 sum over the first axis of [${r}, ${r}]`, 4 * r * r, () => core.sum(x, 0), rowCheck(0));
    core.dispose(x);
  }
  for (const [rowsN, cols, dt] of small ? ([[64, 1024, 'bf16'], [32, 512, 'f32']] as const) : ([[8192, 32768, 'bf16'], [4096, 4096, 'f32']] as const)) {
    const x = rnd([rowsN, cols], dt);
    await memRow(`softmax_${dt}_${rowsN}x${cols}`, `${dt} softmax over the last axis of [${rowsN}, ${cols}]`, 2 * core.bytesPerElement(dt) * rowsN * cols, () => core.softmax(x), async () => {
      const y = await values(core.slice(core.softmax(x), [3, 0], [1, cols]));
      const v = await values(core.slice(x, [3, 0], [1, cols]));
      const m = Math.max(...v);
      let s = 0;
      for (const e of v) s += Math.exp(e - m);
      // Per element, relative to the exact probability: bf16 output rounding is at most 2^-9
      // relative (2^-8 allows the f32 work before it); f32 allows a few ulps of exp and the sum.
      let worst = 0;
      for (let i = 0; i < cols; i++) {
        const p = Math.exp(v[i]! - m) / s;
        worst = Math.max(worst, Math.abs(y[i]! - p) / Math.max(p, 1e-30));
      }
      return `max rel err ${worst.toExponential(2)} ${worst < (dt === 'f32' ? 1e-5 : 2 ** -8) ? 'ok' : 'BAD'}`;
    });
    core.dispose(x);
  }

  // Launch overhead: a tiny add through the whole engine, a bare kernel launch, and a graph replay.
  {
    const x = core.keep(core.tensor(new Float32Array(8).fill(1), [8], 'f32', b));
    const y = core.keep(core.tensor(new Float32Array(8).fill(2), [8], 'f32', b));
    const N = small ? 200 : 5000;
    for (let i = 0; i < 200; i++) core.tidy(() => core.add(x, y));
    b.synchronizeBlocking();
    let w = performance.now();
    for (let i = 0; i < N; i++) core.tidy(() => core.add(x, y));
    b.synchronizeBlocking();
    const eagerUs = ((performance.now() - w) * 1000) / N;
    rows.push({ name: 'launch_add_eager', what: 'tiny add through the engine (wall time per op)', ms: eagerUs / 1000, msMin: eagerUs / 1000, check: 'n/a' });
    const k = b.kernel(allModuleSpecs().find((s) => s.key === 'binary.f32')!, 'binary_add_f32_contig');
    const out = b.allocate(32);
    const xp = devicePointer(x);
    const yp = devicePointer(y);
    w = performance.now();
    for (let i = 0; i < N; i++) k.launch([1, 1, 1], [256, 1, 1], [xp, yp, out.ptr, 8]);
    b.synchronizeBlocking();
    const rawUs = ((performance.now() - w) * 1000) / N;
    rows.push({ name: 'launch_kernel_raw', what: 'bare cuLaunchKernel from JS (wall time per launch)', ms: rawUs / 1000, msMin: rawUs / 1000, check: 'n/a' });
    b.free(out);
    const OPS = 100;
    const { graph, result } = captureGraph(() => {
      let z = x;
      for (let i = 0; i < OPS; i++) z = core.add(z, y);
      return z;
    });
    graph.launch();
    const got = await values(result);
    const g = timeGpu(b, () => graph.launch(), 50, 5);
    rows.push({ name: 'launch_add_graph', what: `tiny add replayed in a CUDA graph of ${OPS} ops (GPU time per op)`, ms: g.ms / OPS, msMin: g.msMin / OPS, check: got[0] === 1 + 2 * OPS ? 'ok' : `BAD (${got[0]})` });
    graph.dispose();
    core.dispose([x, y, result]);
  }

  // PyTorch numbers from the same run.
  const torch = withTorchTimes(rows, typeof a.torch === 'string' ? a.torch : join(out, 'torch.json'), log);
  const result = { device: b.capabilities.device, torchDevice: torch.device, torchVersion: torch.torch, node: process.version, secs: (performance.now() - t0) / 1000, rows, allocator: b.allocatorStats() };
  writeFileSync(join(out, 'bench.json'), JSON.stringify(result, null, 1));
  const table = formatBench(result.device, rows);
  writeFileSync(join(out, 'bench.txt'), table + '\n');
  log(table);
  return rows.some((r) => r.check.includes('BAD')) ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// fp8

type Fp8KernelVersion = 'v1' | 'v2' | 'v3' | 'v3x';
/**
 * The FP8 kernel versions checked and timed (backend-cuda RING_LINEAR_CUDA_FP8_KERNELS), the default
 * first: v3 (v3's tile kernel, v2's others), v3x (v3's quant+transpose, RMSNorm and SwiGLU kernels
 * too), v2, v1.
 */
const VERSIONS: readonly Fp8KernelVersion[] = ['v3', 'v3x', 'v2', 'v1'];

async function fp8(a: Args): Promise<number> {
  const out = outDir(a);
  const b = await cudaBackend();
  const cpu = core.findBackend('cpu');
  const seed = a.seed !== undefined ? Number(a.seed) : Math.floor(Math.random() * 2 ** 31);
  const small = a.small === true;
  const t0 = performance.now();
  let failed = 0;

  // 0. Every module compiled in parallel first (a disk-cache hit after the precompile step): the
  //    FP8 modules are large, and compiling them one at a time on first use costs minutes.
  {
    const fails: string[] = [];
    const specs = allModuleSpecs();
    const n = await b.modules.precompile(specs, Number(a.parallel ?? 16), (key, err) => fails.push(`${key}: ${err.message}`));
    log(`fp8: ${specs.length} modules ready, ${n} compiled now, ${fails.length} failed, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    for (const f of fails) log(`MODULE FAILED ${f}`);
    if (fails.length) failed++;
  }

  // 1. The OpInfo records (quantizers exact; fused ops within a step of the CPU; kernel vs
  //    composite; errors). Gradients are off: fp8Linear has no CUDA kernel, and through its
  //    composite the quantizers have no gradient (docs/fp8.md).
  const ops = typeof a.ops === 'string' ? a.ops.split(',') : undefined;
  const conf = await runConformance({ backend: 'cuda', reference: 'cpu', opInfos: fp8OpInfos, ...(ops ? { ops } : {}), seed, tfjs: false, grad: false, log: null, maxMessages: 4 });
  // groupRmsNormGate (@ring-linear/attention) shares its kernel with fp8GroupRmsNormGateQuant.
  const gateOps = ops ? ops.filter((o) => o === 'groupRmsNormGate') : ['groupRmsNormGate'];
  const gateConf = gateOps.length
    ? await runConformance({ backend: 'cuda', reference: 'cpu', opInfos: attentionOpInfos, ops: gateOps, seed, tfjs: false, grad: false, log: null, maxMessages: 4 })
    : null;
  const confText = formatSummary(conf) + (gateConf ? `\n${formatSummary(gateConf)}` : '');
  writeFileSync(join(out, 'fp8-conformance.txt'), confText + '\n');
  log(confText);
  if (!conf.ok || (gateConf && !gateConf.ok)) failed++;

  // 2. Byte checks at sizes that take the kernels' vector paths (rows a multiple of 8 long),
  //    with a partial tile, and rows as long as the timed ones (8192: RMSNorm with 1024 threads):
  //    CUDA == CPU for the quantizers; fused == composite on CUDA.
  const checks: { name: string; ok: boolean; detail: string }[] = [];
  const gen = new core.Generator(seed);
  // Host data: normal values (Box-Muller over a seeded mulberry32), the same bytes on both backends.
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 2 ** 32;
  };
  const host = (shape: number[], scale = 1) =>
    Float32Array.from({ length: shape.reduce((p, q) => p * q, 1) }, () => scale * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()));
  const on = (vals: Float32Array, shape: number[], dtype: core.DType, be: core.Backend) => core.tensor(vals, shape, dtype, be);
  const checkOne = (name: string, diffs: (string | null)[]) => {
    const bad = diffs.map((d, i) => (d ? `output ${i}: ${d}` : null)).filter(Boolean);
    checks.push({ name, ok: bad.length === 0, detail: bad.join('; ') || 'byte-equal' });
  };
  // Both kernel versions (backend-cuda src/ops/fp8.ts reads RING_LINEAR_CUDA_FP8_KERNELS at every
  // launch): v2, the default, and v1, the fallback; the composites' kernels are the same for both.
  const envBefore = process.env.RING_LINEAR_CUDA_FP8_KERNELS;
  const setVersion = (v: Fp8KernelVersion) => {
    process.env.RING_LINEAR_CUDA_FP8_KERNELS = v;
  };
  for (const version of VERSIONS)
  // (v3 takes rows of 128k for tiles and SwiGLU, RMSNorm rows of 8k up to 8192 in registers, and
  // routes the rest to v2: [136, 1000], [9, 1001], [16, 12288] and [8, 16384] check that routing;
  // [64, 8192] has RMSNorm rows of 4 chunks a thread.)
  for (const [M, K] of small ? ([[32, 256], [9, 136]] as const) : ([[256, 1024], [136, 1000], [64, 8192], [9, 1001], [16, 12288], [8, 16384]] as const)) {
    setVersion(version);
    const check = (name: string, diffs: (string | null)[]) => checkOne(`[${version}] ${name}`, diffs);
    for (const dt of ['f32', 'bf16'] as const) {
      const xv = host([M, K], 3);
      const xs = [on(xv, [M, K], dt, cpu), on(xv, [M, K], dt, b)];
      for (const [q, pow2] of [['f8e4m3', false], ['f8e5m2', true]] as const) {
        for (const layout of ['tile1x128', 'block128x128', 'row', 'tensor'] as const) {
          const [c, g] = [await outBytes(() => quantizeRaw(xs[0]!, { dtype: q, layout, pow2Scale: pow2 })), await outBytes(() => quantizeRaw(xs[1]!, { dtype: q, layout, pow2Scale: pow2 }))];
          check(`quantize ${layout} ${dt} [${M}, ${K}] ${q}${pow2 ? ' pow2' : ''}: cuda == cpu`, c.map((cb, i) => firstDiff(cb, g[i]!)));
        }
        const [c, g] = [await outBytes(() => quantTransposeRaw(xs[0]!, { dtype: q, pow2Scale: pow2 })), await outBytes(() => quantTransposeRaw(xs[1]!, { dtype: q, pow2Scale: pow2 }))];
        check(`quantTranspose ${dt} [${M}, ${K}] ${q}: cuda == cpu`, c.map((cb, i) => firstDiff(cb, g[i]!)));
        const w = on(host([K]).map((e) => 0.5 + Math.abs(e)), [K], 'f32', b);
        const rms = () => rmsNormQuant(xs[1]!, w, { eps: 1e-5, dtype: q, pow2Scale: pow2 });
        const [fr, cr] = [await outBytes(rms), await core.withKernelsDisabled(['fp8RmsNormQuant'], () => outBytes(rms))];
        check(`rmsNormQuant ${dt} [${M}, ${K}] ${q}: fused == composite on cuda`, fr.map((fb, i) => firstDiff(fb, cr[i]!)));
        const gu = on(host([M, 2 * K], 2), [M, 2 * K], dt, b);
        const sw = () => swigluQuant(gu, { dtype: q, pow2Scale: pow2 });
        const [fs, cs] = [await outBytes(sw), await core.withKernelsDisabled(['fp8SwigluQuant'], () => outBytes(sw))];
        check(`swigluQuant ${dt} [${M}, ${2 * K}] ${q}: fused == composite on cuda`, fs.map((fb, i) => firstDiff(fb, cs[i]!)));
        core.dispose([w, gu]);
      }
      core.dispose(xs);
    }
  }
  const guarded = async (name: string, fn: () => Promise<(string | null)[]>) => {
    try {
      checkOne(name, await fn());
    } catch (err) {
      checkOne(name, [`threw ${(err as Error).message.split('\n')[0]}`]);
    }
  };
  // RMSNorm+quant v3 with blocks that loop over several rows (the grid is the resident blocks:
  // more rows than that), fused == composite on CUDA.
  setVersion(VERSIONS[0]!);
  for (const [R, D] of small ? ([[300, 1024]] as const) : ([[2000, 1024], [1500, 8192]] as const)) {
    for (const dt of ['f32', 'bf16'] as const) {
      const xr = on(host([R, D], 3), [R, D], dt, b);
      const wr = on(host([D]).map((e) => 0.5 + Math.abs(e)), [D], 'f32', b);
      for (const [q, pow2] of [['f8e4m3', false], ['f8e5m2', true]] as const) {
        const run = () => rmsNormQuant(xr, wr, { eps: 1e-5, dtype: q, pow2Scale: pow2 });
        await guarded(`[${VERSIONS[0]}] rmsNormQuant ${dt} [${R}, ${D}] ${q} (several rows a block): fused == composite on cuda`, async () => {
          const [f, c] = [await outBytes(run), await core.withKernelsDisabled(['fp8RmsNormQuant'], () => outBytes(run))];
          return f.map((fb, i) => firstDiff(fb, c[i]!));
        });
      }
      core.dispose([xr, wr]);
    }
  }

  // Quotients on FP8 rounding ties: v3 divides by one reciprocal per group with corrections
  // (backend-cuda kernels/fp8.cuh Fp8Divider), which must give the IEEE quotient x / scale exactly;
  // an error of one f32 ulp shows only where x / scale lies at or next to a midpoint between two
  // FP8 values. Rows of 1x128 tiles (f32): element 0 sets the tile's amax (scales from 2^-60 to
  // 2^60), the others are fl32(m * scale) moved by -2..2 ulps for random midpoints m.
  for (const q of ['f8e4m3', 'f8e5m2'] as const) {
    const codes = core.decodeToF32(q, Uint8Array.from({ length: 127 }, (_, i) => i));
    const vals = [...codes].filter((v) => Number.isFinite(v)).sort((p2, q2) => p2 - q2);
    const mids = vals.slice(1).map((v, i) => (v + vals[i]!) / 2);
    const fmax = vals[vals.length - 1]!;
    const [R, K] = small ? [8, 256] : [256, 1024];
    const xv = new Float32Array(R * K);
    const bits = new Uint32Array(xv.buffer);
    for (let t = 0; t < (R * K) / 128; t++) {
      const amax = Math.fround(2 ** (120 * uniform() - 60));
      const scale = Math.max(Math.fround(amax / fmax), 2 ** -126);
      xv[t * 128] = uniform() < 0.5 ? amax : -amax;
      for (let j = 1; j < 128; j++) {
        const i = t * 128 + j;
        xv[i] = Math.fround(mids[Math.floor(uniform() * mids.length)]! * scale);
        if (Math.abs(xv[i]!) > amax) xv[i] = amax;
        bits[i] = bits[i]! + Math.floor(5 * uniform()) - 2;
        if (uniform() < 0.5) xv[i] = -xv[i]!;
      }
    }
    const xs = [on(xv, [R, K], 'f32', cpu), on(xv, [R, K], 'f32', b)];
    const want = await outBytes(() => quantizeRaw(xs[0]!, { dtype: q, layout: 'tile1x128' }));
    const wantT = await outBytes(() => quantTransposeRaw(xs[0]!, { dtype: q }));
    for (const version of VERSIONS) {
      setVersion(version);
      await guarded(`[${version}] quantize tile1x128 f32 [${R}, ${K}] ${q}, quotients at FP8 ties: cuda == cpu`, async () =>
        (await outBytes(() => quantizeRaw(xs[1]!, { dtype: q, layout: 'tile1x128' }))).map((g, i) => firstDiff(want[i]!, g)));
      await guarded(`[${version}] quantTranspose f32 [${R}, ${K}] ${q}, quotients at FP8 ties: cuda == cpu`, async () =>
        (await outBytes(() => quantTransposeRaw(xs[1]!, { dtype: q }))).map((g, i) => firstDiff(wantT[i]!, g)));
    }
    core.dispose(xs);
  }

  // The fused kernels of the fp8fused module (one version): fused == composite on CUDA, at shapes of
  // the model (groups of 512 channels) and others of the register path (groups of 256k channels,
  // rows up to 8192; 768: a group with an empty virtual warp), group batches (groups of 1 channel),
  // groups spread over warps (one group of 8192), rows too long to stage (12000) and not a multiple
  // of 8 (1000), and
  // gateUp halves that are not multiples of 128 (1000) or 8 (131). groupRmsNormGate is not
  // quantized and its composite reduces differently (mean of squares): max error against the
  // composite and the CPU, relative to the largest |y|.
  setVersion(VERSIONS[0]!);
  const gateShapes: [number, number, number][] = small ? [[9, 640, 4], [3, 640, 640]] : [[64, 2048, 4], [7, 4096, 2], [3, 768, 1], [33, 2048, 16], [17, 1000, 8], [5, 8192, 1], [4, 640, 640], [3, 12000, 3]];
  for (const dt of ['f32', 'bf16'] as const) {
    for (const [R, C, groups] of gateShapes) {
      const [ov, gv, wv] = [host([R, C], 2), host([R, C], 2), host([C]).map((e) => 0.5 + Math.abs(e))];
      const o = on(ov, [R, C], dt, b);
      const g = on(gv, [R, C], dt, b);
      const w = on(wv, [C], 'f32', b);
      for (const [q, pow2] of [['f8e4m3', false], ['f8e5m2', true]] as const) {
        const run = () => groupRmsNormGateQuant(o, g, w, { groups, eps: 1e-6, dtype: q, pow2Scale: pow2 });
        await guarded(`groupRmsNormGateQuant ${dt} [${R}, ${C}] / ${groups} ${q}: fused == composite on cuda`, async () => {
          const [f, c] = [await outBytes(run), await core.withKernelsDisabled(['fp8GroupRmsNormGateQuant'], () => outBytes(run))];
          return f.map((fb, i) => firstDiff(fb, c[i]!));
        });
      }
      await guarded(`groupRmsNormGate ${dt} [${R}, ${C}] / ${groups}: kernel vs composite and cpu`, async () => {
        // (the weight in o's dtype, as the model keeps it)
        const wd = on(wv, [C], dt, b);
        const ys = [groupRmsNormGate(o, g, wd, { groups }), core.withKernelsDisabled(['groupRmsNormGate'], () => groupRmsNormGate(o, g, wd, { groups }))];
        const [oc, gc, wc] = [on(ov, [R, C], dt, cpu), on(gv, [R, C], dt, cpu), on(wv, [C], dt, cpu)];
        const yc = groupRmsNormGate(oc, gc, wc, { groups });
        const [yk, yComp, yCpu] = [await values(ys[0]!), await values(ys[1]!), await values(yc)];
        const [eComp, eCpu] = [relMaxErr(yk, yComp), relMaxErr(yk, yCpu)];
        core.dispose([wd, ...ys, oc, gc, wc, yc]);
        const tol = dt === 'f32' ? 2e-6 : 8e-3;
        return [eComp <= tol && eCpu <= tol ? null : `max error ${eComp.toExponential(2)} vs composite, ${eCpu.toExponential(2)} vs cpu (tolerance ${tol})`];
      });
      core.dispose([o, g, w]);
    }
  }
  for (const [M, I] of small ? ([[9, 68]] as const) : ([[256, 1024], [136, 1000], [130, 131], [64, 4096]] as const)) {
    for (const dt of ['f32', 'bf16'] as const) {
      const gu = on(host([M, 2 * I], 3), [M, 2 * I], dt, b);
      const dh = on(host([M, I], 0.3), [M, I], dt, b);
      for (const [q, pow2] of [['f8e4m3', false], ['f8e5m2', true]] as const) {
        const run = () => swigluBackwardQuant(gu, dh, { dtype: q, pow2Scale: pow2 });
        await guarded(`swigluBackwardQuant ${dt} [${M}, 2x${I}] ${q}: fused == composite on cuda`, async () => {
          const [f, c] = [await outBytes(run), await core.withKernelsDisabled(['fp8SwigluBackwardQuant'], () => outBytes(run))];
          return f.map((fb, i) => firstDiff(fb, c[i]!));
        });
      }
      core.dispose([gu, dh]);
    }
  }
  for (const c of checks) log(`${c.ok ? 'ok  ' : 'BAD '} ${c.name}${c.ok ? '' : `: ${c.detail}`}`);
  const badChecks = checks.filter((c) => !c.ok).length;
  log(`byte checks: ${checks.length - badChecks} of ${checks.length} ok`);
  if (badChecks) failed++;

  // 3. Timings at [8192, 8192] (bf16 unless named), as a fraction of the copy bandwidth measured
  //    here and as a ratio to torch_bench.py --fp8 (eager PyTorch: amax per tile, scale, cast).
  const S = small ? 512 : 8192;
  const sq = `${S}^2`;
  const copyBytes = small ? 2 ** 20 : 2 ** 30;
  const src = b.allocate(copyBytes);
  const dst = b.allocate(copyBytes);
  b.memset(src.ptr, 0x3f800000, 4, copyBytes / 4);
  const copy = timeGpu(b, () => b.copy(src, 0, dst, 0, copyBytes), 20);
  b.free(src);
  b.free(dst);
  const copyGbps = (2 * copyBytes) / (copy.ms * 1e-3) / 1e9;
  const rows: BenchRow[] = [{ name: small ? 'copy_1MiB' : 'copy_1GiB', what: 'device-to-device copy', ...copy, bytes: 2 * copyBytes, gbps: copyGbps, ofCopy: 1, check: 'n/a' }];
  const n = S * S;
  const T = n / 128;
  const rnd = (shape: number[], dtype: core.DType) => core.keep(core.randomNormal(shape, { dtype, generator: gen }));
  const x = rnd([S, S], 'bf16');
  const xf = rnd([S, S], 'f32');
  const w = core.keep(core.add(core.abs(rnd([S], 'f32')), 0.5));
  const gu = rnd([S, 2 * S], 'bf16');
  const cases: [string, string, number, () => unknown][] = [
    [`fp8_tile_bf16_${sq}`, '1x128 tiles, bf16 -> E4M3', 2 * n + n + 4 * T, () => quantizeRaw(x, { layout: 'tile1x128' })],
    [`fp8_tile_f32_${sq}`, '1x128 tiles, f32 -> E4M3', 4 * n + n + 4 * T, () => quantizeRaw(xf, { layout: 'tile1x128' })],
    [`fp8_block_bf16_${sq}`, '128x128 blocks, bf16 -> E4M3', 2 * n + n + (4 * n) / 16384, () => quantizeRaw(x, { layout: 'block128x128' })],
    [`fp8_row_bf16_${sq}`, 'per row, bf16 -> E4M3', 2 * n + n + 4 * S, () => quantizeRaw(x, { layout: 'row' })],
    [`fp8_tensor_bf16_${sq}`, 'per tensor (amax pass + quantize pass), bf16 -> E4M3', 2 * n + n, () => quantizeRaw(x, { layout: 'tensor' })],
    [`fp8_qt_bf16_${sq}`, 'quant+transpose, bf16 -> E4M3 x and x^T tiles', 2 * n + 2 * n + 8 * T, () => quantTransposeRaw(x)],
    [`fp8_rmsq_bf16_${sq}`, 'RMSNorm (f32 weight) + 1x128 quant, bf16', 2 * n + 4 * S + n + 4 * T, () => rmsNormQuant(x, w)],
    [`fp8_swigluq_bf16_${sq}`, `SwiGLU of [${S}, ${2 * S}] + 1x128 quant, bf16`, 4 * n + n + 4 * T, () => swigluQuant(gu)],
  ];
  // Rows of the default version under the names torch_bench.py uses; the others with a `_v1` /
  // `_v2` suffix.
  for (const version of VERSIONS) {
    setVersion(version);
    for (const [name, what, bytes, fn] of cases) {
      const tm = timeGpu(b, () => void fn(), 20);
      const gbps = bytes / (tm.ms * 1e-3) / 1e9;
      rows.push({ name: version === VERSIONS[0] ? name : `${name}_${version}`, what: `${what} (${version} kernels)`, ...tm, bytes, gbps, ofCopy: gbps / copyGbps, check: 'bytes checked above' });
    }
  }
  // The fused kernels of the fp8fused module (one version), at the model's shapes: the SwiGLU
  // backward of an [S, 2S] gate_up projection; the attention output gate of T = 4S tokens x 2048
  // channels (16 heads x 128) in 4 groups, quantized and not.
  setVersion(VERSIONS[0]!);
  core.dispose([x, xf, w, gu]);
  {
    const gub = rnd([S, 2 * S], 'bf16');
    const dh = rnd([S, S], 'bf16');
    const Tt = small ? 256 : 4 * S, Cc = 2048;
    const o = rnd([Tt, Cc], 'bf16');
    const g = rnd([Tt, Cc], 'bf16');
    const wg = core.keep(core.add(core.abs(rnd([Cc], 'f32')), 0.5));
    const wgb = core.keep(core.cast(wg, 'bf16'));
    const ng = Tt * Cc;
    const fused: [string, string, number, () => unknown][] = [
      [`fp8_swiglubwdq_bf16_${S}x${2 * S}`, `SwiGLU backward of [${S}, ${2 * S}] + dh [${S}, ${S}] -> quant+transpose of d[g|u], bf16 -> E4M3`, 6 * n + 4 * n + 16 * T,
        () => swigluBackwardQuant(gub, dh)],
      [`fp8_groupgateq_bf16_${Tt}x${Cc}_g4`, `group RMSNorm (4 groups) * w * sigmoid(gate) + 1x128 quant, bf16 -> E4M3`, 2 * ng + 2 * ng + ng + (4 * ng) / 128 + 4 * Cc,
        () => groupRmsNormGateQuant(o, g, wg, { groups: 4 })],
      [`gate_bf16_${Tt}x${Cc}_g4`, 'groupRmsNormGate (4 groups), bf16 in and out', 6 * ng + 2 * Cc, () => groupRmsNormGate(o, g, wgb, { groups: 4 })],
    ];
    for (const [name, what, bytes, fn] of fused) {
      try {
        const tm = timeGpu(b, () => void fn(), 20);
        const gbps = bytes / (tm.ms * 1e-3) / 1e9;
        rows.push({ name, what, ...tm, bytes, gbps, ofCopy: gbps / copyGbps, check: 'checked above' });
      } catch (err) {
        log(`timing ${name} failed: ${(err as Error).message}`);
        failed++;
      }
    }
    core.dispose([gub, dh, o, g, wg, wgb]);
  }
  if (envBefore === undefined) delete process.env.RING_LINEAR_CUDA_FP8_KERNELS;
  else process.env.RING_LINEAR_CUDA_FP8_KERNELS = envBefore;

  const torch = withTorchTimes(rows, typeof a.torch === 'string' ? a.torch : join(out, 'torch_fp8.json'), log, (name) => name.replace(/_v[0-9]$/, ''));
  const result = {
    device: b.capabilities.device, seed, torchDevice: torch.device, torchVersion: torch.torch, secs: (performance.now() - t0) / 1000,
    conformance: { counts: conf.counts, ok: conf.ok }, gateConformance: gateConf ? { counts: gateConf.counts, ok: gateConf.ok } : null, checks, rows,
  };
  writeFileSync(join(out, 'fp8.json'), JSON.stringify(result, null, 1));
  const table = formatBench(result.device, rows);
  writeFileSync(join(out, 'fp8.txt'), table + '\n');
  log(`fp8: conformance ${conf.counts.passed + (gateConf?.counts.passed ?? 0)} passed, ${conf.counts.failed + (gateConf?.counts.failed ?? 0)} failed; byte checks ${checks.length - badChecks}/${checks.length} ok (seed ${seed})`);
  log(table);
  return failed ? 1 : 0;
}


// ---------------------------------------------------------------------------------------------
// attn: the decode attention kernels (backend-cuda kernels/attention.cuh)

// rope: its kernel (kernels/attention.cuh) is checked here too.
const ATTN_OPS = ['lightningAttentionStep', 'softmaxAttention', 'rope'];

async function attn(a: Args): Promise<number> {
  const out = outDir(a);
  const b = await cudaBackend();
  const seed = a.seed !== undefined ? Number(a.seed) : Math.floor(Math.random() * 2 ** 31);
  const small = a.small === true;
  const t0 = performance.now();
  let failed = 0;

  // 1. The OpInfo records of the ops (float64 references; kernel vs composite; errors).
  //    Gradients are off: the backward ops run their composites on this backend.
  const conf = await runConformance({ backend: 'cuda', reference: 'cpu', opInfos: attentionOpInfos, ops: ATTN_OPS, seed, tfjs: false, grad: false, log: null, maxMessages: 4 });
  const confText = formatSummary(conf);
  writeFileSync(join(out, 'attn-conformance.txt'), confText + '\n');
  log(confText);
  if (!conf.ok) failed++;

  // 2. Kernel vs composite on CUDA at the timed shapes and at odd ones (D not a multiple of 4,
  //    several token passes, packed sequences): max |diff| / max |composite| within tol (f32 1e-5,
  //    bf16/f16 two steps of their rounding).
  const gen = new core.Generator(seed);
  const rnd = (shape: number[], dtype: core.DType) => core.keep(core.randomNormal(shape, { dtype, generator: gen }));
  const checks: { name: string; ok: boolean; detail: string }[] = [];
  const tolOf = (dt: core.DType) => (dt === 'f32' ? 1e-5 : dt === 'bf16' ? 2 * 2 ** -8 : 2 * 2 ** -11);
  const compare = async (name: string, dt: core.DType, fn: () => core.Tensor[], op: string) => {
    const fused = core.tidy(fn);
    const comp = core.withKernelsDisabled([op], () => core.tidy(fn));
    const errs: number[] = [];
    for (let i = 0; i < fused.length; i++) {
      const [f32a, f32b] = [core.cast(fused[i]!, 'f32'), core.cast(comp[i]!, 'f32')];
      errs.push(relMaxErr(await values(f32a), await values(f32b)));
      core.dispose([f32a, f32b]);
    }
    core.dispose([...fused, ...comp]);
    const tol = tolOf(dt);
    checks.push({ name, ok: errs.every((e) => e <= tol), detail: `max rel err ${errs.map((e) => e.toExponential(2)).join(', ')} (tol ${tol.toExponential(1)})` });
  };
  const H = 16;
  const Hkv = 4;
  const D = 128;
  const lightningShapes: [number, number, number, number, number][] = small
    ? [[2, 1, 2, 128, 128], [1, 5, 3, 99, 67]]
    : [[64, 1, H, D, D], [1, 1, H, D, D], [3, 5, 3, 99, 67], [2, 2, 5, 64, 130]];
  for (const dt of ['f32', 'bf16', 'f16'] as const) {
    for (const [B, T, Hh, Dk, Dv] of lightningShapes) {
      if (dt === 'f16' && B > 8) continue;
      const q = rnd([B, T, Hh, Dk], dt), k = rnd([B, T, Hh, Dk], dt), v = rnd([B, T, Hh, Dv], dt);
      const decay = core.keep(core.tensor(Float32Array.from({ length: Hh }, (_, h) => 0.05 + (0.95 * h) / Math.max(1, Hh - 1)), [Hh], 'f32', b));
      const state = rnd([B, Hh, Dk, Dv], 'f32');
      await compare(`lightningAttentionStep ${dt} B${B} T${T} H${Hh} D${Dk} Dv${Dv}: kernel vs composite`, dt, () => {
        const r = lightningAttentionStep(q, k, v, { decay, state });
        return [r.out, r.state];
      }, 'lightningAttentionStep');
      core.dispose([q, k, v, decay, state]);
    }
  }
  const softmaxShapes: { B: number; Tq: number; Tk: number; H: number; Hkv: number; D: number; Dv: number; opts: Record<string, unknown> }[] = small
    ? [{ B: 1, Tq: 1, Tk: 300, H: 4, Hkv: 1, D: 128, Dv: 128, opts: {} }]
    : [
        { B: 1, Tq: 1, Tk: 4096, H, Hkv, D, Dv: D, opts: {} },
        { B: 4, Tq: 3, Tk: 5000, H, Hkv, D, Dv: D, opts: { kvLen: 4321 } },
        { B: 2, Tq: 2, Tk: 777, H: 6, Hkv: 2, D: 99, Dv: 67, opts: { causal: false } },
        { B: 1, Tq: 300, Tk: 300, H: 4, Hkv: 2, D: 64, Dv: 64, opts: { cuSeqlens: [0, 100, 101, 300] } },
        // 16 rows (4 queries x 4 heads of a group), causal, splits where the first rows see no key.
        { B: 2, Tq: 4, Tk: 300, H, Hkv, D, Dv: D, opts: { kvLen: 290, kvOffset: 62 } },
        { B: 3, Tq: 1, Tk: 1000, H: 8, Hkv: 2, D: 64, Dv: 64, opts: { kvLen: 999 } },
        // One group: 313 splits, more than the combine's batch of 256 weights (and not a multiple of 4).
        { B: 1, Tq: 1, Tk: 40000, H: 4, Hkv: 1, D, Dv: D, opts: {} },
      ];
  // 16-bit decode shapes run twice: the tensor-core decode kernel (flash.cuh flash_decode, the
  // default) and the CUDA-core split kernel (RING_LINEAR_CUDA_DECODE=split).
  for (const dt of ['f32', 'bf16', 'f16'] as const) {
    for (const c of softmaxShapes) {
      for (const kernel of dt === 'f32' ? ['default'] : ['default', 'split']) {
        if (kernel === 'split') process.env.RING_LINEAR_CUDA_DECODE = 'split';
        const q = rnd([c.B, c.Tq, c.H, c.D], dt), k = rnd([c.B, c.Tk, c.Hkv, c.D], dt), v = rnd([c.B, c.Tk, c.Hkv, c.Dv], dt);
        await compare(`softmaxAttention ${dt}${kernel === 'split' ? ' [split]' : ''} B${c.B} Tq${c.Tq} Tk${c.Tk} H${c.H}/${c.Hkv} D${c.D} Dv${c.Dv} ${JSON.stringify(c.opts)}: kernel vs composite`, dt, () => {
          const r = softmaxAttentionWithLse(q, k, v, c.opts);
          return [r.out, r.lse];
        }, 'softmaxAttention');
        core.dispose([q, k, v]);
        delete process.env.RING_LINEAR_CUDA_DECODE;
      }
    }
  }
  for (const c of checks) log(`${c.ok ? 'ok  ' : 'BAD '} ${c.name}: ${c.detail}`);
  const badChecks = checks.filter((c) => !c.ok).length;
  log(`kernel vs composite: ${checks.length - badChecks} of ${checks.length} ok`);
  if (badChecks) failed++;

  // 3. Timings (bf16 activations, f32 lightning state), GB/s as a fraction of the copy bandwidth
  //    measured here, and the ratio to torch_bench.py --attn (same shapes, same card).
  const copyBytes = small ? 2 ** 20 : 2 ** 30;
  const src = b.allocate(copyBytes);
  const dst = b.allocate(copyBytes);
  b.memset(src.ptr, 0x3f800000, 4, copyBytes / 4);
  const copy = timeGpu(b, () => b.copy(src, 0, dst, 0, copyBytes), 20);
  b.free(src);
  b.free(dst);
  const copyGbps = (2 * copyBytes) / (copy.ms * 1e-3) / 1e9;
  const rows: BenchRow[] = [{ name: small ? 'copy_1MiB' : 'copy_1GiB', what: 'device-to-device copy', ...copy, bytes: 2 * copyBytes, gbps: copyGbps, ofCopy: 1, check: 'n/a' }];
  const row = (name: string, what: string, bytes: number, fn: () => void, reps: number, check: string) => {
    const tm = timeGpu(b, fn, reps);
    const gbps = bytes / (tm.ms * 1e-3) / 1e9;
    rows.push({ name, what, ...tm, bytes, gbps, ofCopy: gbps / copyGbps, check });
  };
  const Dt = small ? 32 : D;
  for (const B of [1, 64]) {
    const q = rnd([B, 1, H, Dt], 'bf16'), k = rnd([B, 1, H, Dt], 'bf16'), v = rnd([B, 1, H, Dt], 'bf16');
    const decay = core.keep(core.tensor(Float32Array.from({ length: H }, (_, h) => 0.05 + (0.95 * h) / (H - 1)), [H], 'f32', b));
    const state = rnd([B, H, Dt, Dt], 'f32');
    // State read + written once; q, k, v read and o written (bf16).
    const bytes = 2 * 4 * B * H * Dt * Dt + 4 * 2 * B * H * Dt;
    // (timeGpu runs each call in a tidy scope, which frees the outputs.)
    row(`lstep_bf16_B${B}`, `lightning step, B=${B} H=${H} D=Dv=${Dt}, f32 state`, bytes, () => void lightningAttentionStep(q, k, v, { decay, state }), 50, 'vs composite above');
    core.dispose([q, k, v, decay, state]);
  }
  for (const B of [1, 64]) {
    for (const ctx of small ? [512] : [4096, 32768]) {
      const q = rnd([B, 1, H, Dt], 'bf16'), k = rnd([B, ctx, Hkv, Dt], 'bf16'), v = rnd([B, ctx, Hkv, Dt], 'bf16');
      // K and V read once; q read, out written (bf16), lse written (f32).
      const bytes = 2 * 2 * B * ctx * Hkv * Dt + 2 * 2 * B * H * Dt + 4 * B * H;
      row(`sdpa_decode_B${B}_ctx${ctx}`, `softmax decode, B=${B} ctx=${ctx} H=${H}/${Hkv} D=${Dt} bf16`, bytes, () => void softmaxAttentionWithLse(q, k, v), 20, 'vs composite above');
      // Split count at batch 1 (4 groups): blocks in all, default 528 (4 a SM).
      for (const target of B === 1 && !small ? [264, 1056] : []) {
        process.env.RING_LINEAR_CUDA_DECODE_BLOCKS = String(target);
        row(`sdpa_decode_B${B}_ctx${ctx}_blocks${target}`, `softmax decode, ${target} blocks`, bytes, () => void softmaxAttentionWithLse(q, k, v), 20, 'vs composite above');
        delete process.env.RING_LINEAR_CUDA_DECODE_BLOCKS;
      }
      process.env.RING_LINEAR_CUDA_DECODE = 'split';
      row(`sdpa_decode_split_B${B}_ctx${ctx}`, `softmax decode, CUDA-core split kernel, B=${B} ctx=${ctx}`, bytes, () => void softmaxAttentionWithLse(q, k, v), 20, 'vs composite above');
      delete process.env.RING_LINEAR_CUDA_DECODE;
      core.dispose([q, k, v]);
    }
  }

  const torch = withTorchTimes(rows, typeof a.torch === 'string' ? a.torch : join(out, 'torch_attn.json'), log);
  for (const n of torch.notes ?? []) log(`torch: ${n}`);
  const result = {
    device: b.capabilities.device, seed, torchDevice: torch.device, torchVersion: torch.torch, torchNotes: torch.notes, secs: (performance.now() - t0) / 1000,
    conformance: { counts: conf.counts, ok: conf.ok }, checks, rows,
  };
  writeFileSync(join(out, 'attn.json'), JSON.stringify(result, null, 1));
  const table = formatBench(result.device, rows);
  writeFileSync(join(out, 'attn.txt'), table + '\n');
  log(`attn: conformance ${conf.counts.passed} passed, ${conf.counts.failed} failed; kernel vs composite ${checks.length - badChecks}/${checks.length} ok (seed ${seed})`);
  log(table);
  return failed ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------

const { cmd, args } = parseArgs(process.argv.slice(2));
const commands: Record<string, (a: Args) => Promise<number>> = {
  info: async () => ((await info()).available ? 0 : 1),
  precompile,
  conformance,
  'conformance-worker': conformanceWorker,
  bench,
  fp8,
  attn,
  ...STEPS,
};
const run = commands[cmd];
if (!run) {
  log('usage: node run.mjs info | precompile | conformance [--ops a,b] [--seed N] | bench [--torch FILE] | fp8 [--torch FILE] [--seed N] | attn [--torch FILE] [--seed N]   (all take --out DIR)');
  process.exitCode = 2;
} else {
  try {
    process.exitCode = await run(args);
  } catch (err) {
    console.error(`${cmd} failed: ${(err as Error).stack ?? err}`);
    process.exitCode = 1;
  }
}
