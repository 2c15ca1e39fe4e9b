/**
 * GPU step `fp8gemm`: the block-scaled FP8 GEMMs of @ring-linear/backend-cuda (src/ops/fp8_gemm.ts:
 * cuBLASLt block scaling, the own mma.sync kernel, the grouped kernel).
 *
 * 1. The OpInfo records of fp8Gemm and fp8GroupedGemm (@ring-linear/fp8/opinfo) against the CPU.
 * 2. Kernel vs composite (core.withKernelsDisabled) at the timed 4096 shape and odd shapes, for the
 *    default path (cuBLASLt where it takes the problem) and the own kernel (RING_LINEAR_FP8GEMM=own),
 *    every FP8 pairing, both b layouts, f32/bf16/f16 out; at 8192 cuBLASLt vs the own kernel (the
 *    composite's [64, 8192, 8192] f32 tile products are too big); grouped vs composite on an odd
 *    problem (empty experts, rows in no segment) and, at the Ring-mini shape, vs fp8Gemm per expert
 *    on a few experts' rows. Each case prints the path it took, the max error relative to the
 *    largest reference value and the worst element.
 * 3. Timings (CUDA events, median): fp8Gemm at M=N=K=4096 and 8192, bf16 out, both b layouts, both
 *    paths; the grouped kernel at Ring-mini's MoE shapes (4096 tokens x top-8 = 32768 rows, 256
 *    experts, hidden 2048, expert intermediate 512: gate/up N=1024 K=2048, down N=2048 K=512) with
 *    the same pseudo-random balanced routing as torch_fp8gemm.py. TFLOP/s and the fraction of the
 *    H100 SXM dense FP8 peak (1979), torch ratios from torch_fp8gemm.py (torch._scaled_mm blockwise;
 *    its tensorwise times as extra rows).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as core from '@ring-linear/core';
import { runConformance, formatSummary } from '@ring-linear/conformance';
import { fp8GemmRaw, fp8GroupedGemmRaw } from '@ring-linear/fp8';
import { fp8OpInfos } from '@ring-linear/fp8/opinfo';
import { cudaBackend, formatBench, log, outDir, timeGpu, values, withTorchTimes, type Args, type BenchRow } from '../common.js';

const FP8_PEAK_TFLOPS = 1979;
type Fp8 = 'f8e4m3' | 'f8e5m2';
type Out = 'f32' | 'bf16' | 'f16';
type Layout = 'block128x128' | 'tile1x128';
const cdiv = (a: number, b: number) => Math.ceil(a / b);

/** Expert of each of `rows` routed rows: the LCG torch_fp8gemm.py uses too (balanced in expectation). */
export function routeCounts(rows: number, experts: number): number[] {
  const counts = new Array<number>(experts).fill(0);
  let x = 12345;
  for (let i = 0; i < rows; i++) {
    x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;
    counts[(x >>> 16) % experts]!++;
  }
  return counts;
}

export async function fp8gemm(a: Args): Promise<number> {
  const out = outDir(a);
  const b = await cudaBackend();
  const seed = a.seed !== undefined ? Number(a.seed) : Math.floor(Math.random() * 2 ** 31);
  const small = a.small === true;
  const t0 = performance.now();
  let failed = 0;
  const lines: string[] = [];
  const say = (s: string) => {
    lines.push(s);
    log(s);
  };

  // Which path each call took: count cuBLASLt's FP8 calls.
  const lt = b.rt.cublasLt;
  let ltCalls = 0;
  const ltFp8 = lt.fp8Matmul.bind(lt);
  lt.fp8Matmul = (...args: Parameters<typeof lt.fp8Matmul>) => {
    ltCalls++;
    ltFp8(...args);
  };
  // Paths: 'auto' (cuBLASLt where it takes the problem, else the own kernel), 'own' (always the
  // own kernel); the own kernel's MMA: 'sync' (mma.sync) or 'wg' (wgmma, the sm_90a default).
  type Path = 'auto-sync' | 'own-sync' | 'own-wg';
  const setPath = (path: Path) => {
    const prev = [process.env.RING_LINEAR_FP8GEMM, process.env.RING_LINEAR_FP8GEMM_MMA];
    if (path.startsWith('own')) process.env.RING_LINEAR_FP8GEMM = 'own';
    else delete process.env.RING_LINEAR_FP8GEMM;
    process.env.RING_LINEAR_FP8GEMM_MMA = path.endsWith('wg') ? 'wg' : 'sync';
    return () => {
      if (prev[0] === undefined) delete process.env.RING_LINEAR_FP8GEMM;
      else process.env.RING_LINEAR_FP8GEMM = prev[0];
      if (prev[1] === undefined) delete process.env.RING_LINEAR_FP8GEMM_MMA;
      else process.env.RING_LINEAR_FP8GEMM_MMA = prev[1];
    };
  };
  const withPath = <T>(path: Path, fn: () => T): T => {
    const restore = setPath(path);
    try {
      return fn();
    } finally {
      restore();
    }
  };
  const OPS = ['fp8Gemm', 'fp8GroupedGemm'];
  // (Awaited inside the path: the env vars are read at every launch.) The wgmma variant is opt-in
  // and expected to miss the records' f32-accumulation tolerance (Hopper's FP8 wgmma precision);
  // its result is reported, not counted as a failure.
  const conformance = async (path: Path) => {
    const restore = setPath(path);
    let conf: Awaited<ReturnType<typeof runConformance>>;
    try {
      conf = await runConformance({ backend: 'cuda', reference: 'cpu', opInfos: fp8OpInfos, ops: OPS, seed, tfjs: false, grad: false, log: null, maxMessages: 4 });
    } finally {
      restore();
    }
    const text = formatSummary(conf);
    writeFileSync(join(out, `fp8gemm-conformance-${path}.txt`), text + '\n');
    log(text);
    say(`conformance (${path}${path === 'own-wg' ? ', opt-in, not counted' : ''}): ${conf.counts.passed} passed, ${conf.counts.failed} failed`);
    if (!conf.ok && path !== 'own-wg') failed++;
  };

  const gen = new core.Generator(seed);
  const fp8 = (shape: number[], d: Fp8) => core.keep(core.tidy(() => core.cast(core.randomNormal(shape, { generator: gen, std: 8 }), d)));
  const scales = (shape: number[], base: number) => core.keep(core.randomUniform(shape, { generator: gen, low: 0.5 * base, high: 1.5 * base }));
  const checks: { name: string; ok: boolean; detail: string }[] = [];
  /** max |got - want| / max |want| and the worst element. */
  const compare = async (got: core.Tensor, want: core.Tensor, N: number) => {
    const [g, w] = [await values(core.tidy(() => core.cast(got, 'f32'))), await values(core.tidy(() => core.cast(want, 'f32')))];
    let e = 0, at = 0, m = 0, nonFinite = 0;
    for (let i = 0; i < w.length; i++) {
      if (!Number.isFinite(g[i]!)) nonFinite++;
      const d = Math.abs(g[i]! - w[i]!);
      if (!(d <= e)) {
        e = d;
        at = i;
      }
      m = Math.max(m, Math.abs(w[i]!));
    }
    return { rel: e / Math.max(m, 1e-30), detail: `worst [${Math.floor(at / N)}, ${at % N}] got ${g[at]} want ${w[at]}${nonFinite ? `, ${nonFinite} non-finite` : ''}` };
  };
  // Hopper's wgmma sums FP8 products with fewer than f32's bits (cuBLASLt: ~3e-4 of the largest
  // value in run 2); both results are rounded to the output dtype separately, so they may be one
  // unit in the last place apart (2^-7 of the value for bf16, 2^-10 for f16). A wrong layout or
  // scale is O(1).
  const tolOf = (o: Out) => 1e-3 + (o === 'f32' ? 0 : o === 'bf16' ? 2 ** -7 : 2 ** -10);
  const record = (name: string, rel: number, tol: number, detail: string) => {
    checks.push({ name, ok: rel <= tol, detail: `max rel err ${rel.toExponential(2)} (tol ${tol.toExponential(1)}); ${detail}` });
    const c = checks[checks.length - 1]!;
    say(`${c.ok ? 'ok  ' : 'BAD '} ${c.name}: ${c.detail}`);
  };
  const gemmCase = async (M: number, N: number, K: number, da: Fp8, db: Fp8, o: Out, layout: Layout, paths: Path[]) => {
    const KT = cdiv(K, 128);
    const A = fp8([M, K], da), B = fp8([N, K], db);
    const SA = scales([M, KT], 1e-2), SB = scales([layout === 'block128x128' ? cdiv(N, 128) : N, KT], 1e-2);
    const run = () => fp8GemmRaw(A, SA, B, SB, { bLayout: layout, outDtype: o });
    const desc = `fp8Gemm ${da}x${db} [${M},${K}]x[${N},${K}]^T ${layout} -> ${o}`;
    try {
      const ref = core.keep(core.withKernelsDisabled(['fp8Gemm'], () => core.tidy(run)));
      // f32 out: the error against the terms' magnitude (sum of |products| * scales, the composite
      // on |codes|), the measure of the records' f32-accumulation contract (1e-5).
      const magT = o === 'f32'
        ? core.keep(core.withKernelsDisabled(['fp8Gemm'], () => core.tidy(() => {
          const absOf = (x: core.Tensor, d: Fp8) => core.cast(core.abs(core.cast(x, 'f32')), d);
          return fp8GemmRaw(absOf(A, da), SA, absOf(B, db), SB, { bLayout: layout, outDtype: 'f32' });
        })))
        : null;
      const mag = magT ? await values(magT) : null;
      if (magT) core.dispose(magT);
      const refV = mag ? await values(ref) : null;
      for (const path of paths) {
        const before = ltCalls;
        const y = core.keep(withPath(path, () => core.tidy(run)));
        await y.data();
        const took = ltCalls > before ? 'cuBLASLt' : path.endsWith('wg') ? 'own wgmma kernel' : 'own mma.sync kernel';
        const r = await compare(y, ref, N);
        record(`${desc} [${path}: ${took}] vs composite`, r.rel, tolOf(o), r.detail);
        if (mag && refV) {
          const g = await values(y);
          let w = 0;
          for (let i = 0; i < g.length; i++) w = Math.max(w, Math.abs(g[i]! - refV[i]!) / (mag[i]! + 1e-30));
          const line = `${desc} [${path}: ${took}]: max |err| / magnitude of the terms ${w.toExponential(2)} (f32-accumulation contract: 1e-5)`;
          // The default own kernel must meet it (2e-5: two approximations); cuBLASLt and wgmma are reported.
          if (took === 'own mma.sync kernel') record(`${desc} [${path}: ${took}] error / magnitude`, w, 2e-5, 'vs the composite');
          else say(`info ${line}`);
        }
        if (path.startsWith('own') && ltCalls > before) record(`${desc} forced own path`, 1, 0, 'cuBLASLt ran');
        core.dispose(y);
      }
      core.dispose(ref);
    } catch (err) {
      record(`${desc} [${paths.join(', ')}]`, Infinity, 0, `threw ${(err as Error).message.split('\n')[0]}`);
    } finally {
      core.dispose([A, B, SA, SB]);
    }
  };
  const S = small ? 512 : 4096;
  const odd: [number, number, number, Fp8, Fp8, Out, Layout][] = [
    [128, 144, 272, 'f8e4m3', 'f8e4m3', 'f32', 'block128x128'], // KT = 3: block-scale rows padded to 4
    [64, 4096, 384, 'f8e4m3', 'f8e4m3', 'bf16', 'block128x128'],
    [992, 1040, 1024, 'f8e4m3', 'f8e5m2', 'bf16', 'block128x128'],
    [336, 272, 400, 'f8e5m2', 'f8e4m3', 'f16', 'tile1x128'],
    [16, 256, 2048, 'f8e4m3', 'f8e4m3', 'f32', 'tile1x128'],
    [999, 256, 512, 'f8e4m3', 'f8e4m3', 'bf16', 'block128x128'], // M % 16 != 0
    [1, 256, 2048, 'f8e4m3', 'f8e4m3', 'f32', 'tile1x128'],
    [257, 160, 1000, 'f8e4m3', 'f8e4m3', 'bf16', 'block128x128'], // K % 16 = 8: own kernel, plain loads
    [300, 200, 640, 'f8e5m2', 'f8e5m2', 'f32', 'tile1x128'], // E5M2 x E5M2: own kernel
    [2048, 4096, 2048, 'f8e4m3', 'f8e4m3', 'f32', 'tile1x128'],
  ];

  // Grouped: odd problems vs the composite, then the Ring-mini shape vs the fp8Gemm composite per expert.
  const groupedCase = async (path: Path, M: number, N: number, K: number, offsets: number[], da: Fp8, o: Out, expertsToCheck: number[] | null) => {
    const E = offsets.length - 1, KT = cdiv(K, 128), NB = cdiv(N, 128);
    const A = fp8([M, K], da), B = fp8([E, N, K], 'f8e4m3');
    const SA = scales([M, KT], 1e-2), SB = scales([E, NB, KT], 1e-2);
    const off = core.keep(core.tensor(Int32Array.from(offsets), [E + 1], 'i32', b));
    const desc = `fp8GroupedGemm [${path}] ${da} M=${M} N=${N} K=${K} E=${E} -> ${o}`;
    try {
      const y = core.keep(withPath(path, () => core.tidy(() => fp8GroupedGemmRaw(A, SA, B, SB, off, { outDtype: o }))));
      if (!expertsToCheck) {
        const ref = core.keep(core.withKernelsDisabled(['fp8GroupedGemm', 'fp8Gemm'], () => core.tidy(() => fp8GroupedGemmRaw(A, SA, B, SB, off, { outDtype: o }))));
        const r = await compare(y, ref, N);
        record(`${desc} vs composite (offsets ${JSON.stringify(offsets)})`, r.rel, tolOf(o), r.detail);
        core.dispose(ref);
      } else {
        let worst = 0, detail = '';
        for (const e of expertsToCheck) {
          const [r0, r1] = [offsets[e]!, offsets[e + 1]!];
          if (r1 <= r0) continue;
          const part = core.keep(core.tidy(() => core.sliceAxis(y, 0, r0, r1)));
          // The composite of fp8Gemm on this expert's rows (independent of both kernels).
          const want = core.keep(core.withKernelsDisabled(['fp8Gemm'], () => core.tidy(() => fp8GemmRaw(core.sliceAxis(A, 0, r0, r1), core.sliceAxis(SA, 0, r0, r1),
            core.reshape(core.sliceAxis(B, 0, e, e + 1), [N, K]), core.reshape(core.sliceAxis(SB, 0, e, e + 1), [NB, KT]), { outDtype: o }))));
          const r = await compare(part, want, N);
          if (r.rel >= worst) {
            worst = r.rel;
            detail = `expert ${e} (rows ${r0}..${r1 - 1}): ${r.detail}`;
          }
          core.dispose([part, want]);
        }
        record(`${desc} vs the fp8Gemm composite per expert (experts ${expertsToCheck.join(',')})`, worst, tolOf(o), detail);
      }
      core.dispose(y);
    } catch (err) {
      record(desc, Infinity, 0, `threw ${(err as Error).message.split('\n')[0]}`);
    } finally {
      core.dispose([A, B, SA, SB, off]);
    }
  };
  const TOKENS = small ? 512 : 4096, TOPK = 8, EXPERTS = 256, HIDDEN = 2048, INTER = 512;
  const ROWS = TOKENS * TOPK;
  const counts = routeCounts(ROWS, EXPERTS);
  const offsets = [0];
  for (const c of counts) offsets.push(offsets[offsets.length - 1]! + c);
  say(`routing: ${ROWS} rows over ${EXPERTS} experts, ${Math.min(...counts)}..${Math.max(...counts)} rows an expert`);
  const groupedChecks = async (path: Path) => {
    await groupedCase(path, 1000, 200, 272, [10, 10, 300, 301, 301, 700, 990], 'f8e4m3', 'bf16', null);
    await groupedCase(path, 777, 384, 640, [0, 129, 129, 500, 777], 'f8e5m2', 'f32', null);
    await groupedCase(path, ROWS, 2 * INTER, HIDDEN, offsets, 'f8e4m3', 'bf16', [0, 1, 100, 255]);
  };

  const rows: BenchRow[] = [];
  const flopRow = (name: string, what: string, flops: number, fn: () => void, reps: number, check: string) => {
    try {
      const tm = timeGpu(b, fn, reps);
      const tflops = flops / (tm.ms * 1e-3) / 1e12;
      rows.push({ name, what: `${what}; ${((100 * tflops) / FP8_PEAK_TFLOPS).toFixed(0)}% of FP8 peak`, ...tm, flops, tflops, check });
    } catch (err) {
      say(`timing ${name} threw ${(err as Error).message.split('\n')[0]}`);
      failed++;
    }
  };
  const gemmTimings = (paths: Path[], sizes: number[]) => {
    for (const Sz of sizes) {
      const KT = Sz / 128;
      const A = fp8([Sz, Sz], 'f8e4m3'), B = fp8([Sz, Sz], 'f8e4m3');
      const SA = scales([Sz, KT], 1e-2);
      const SBb = scales([KT, KT], 1e-2), SBt = scales([Sz, KT], 1e-2);
      for (const layout of ['block', 'tile'] as const) {
        const SB = layout === 'block' ? SBb : SBt;
        const bLayout: Layout = layout === 'block' ? 'block128x128' : 'tile1x128';
        for (const path of paths) {
          const before = ltCalls;
          withPath(path, () => core.tidy(() => void fp8GemmRaw(A, SA, B, SB, { bLayout, outDtype: 'bf16' })));
          const took = ltCalls > before ? 'cuBLASLt' : path.endsWith('wg') ? 'own wgmma kernel' : 'own mma.sync kernel';
          const name = `fp8gemm_${path === 'auto-sync' ? '' : path === 'own-wg' ? 'own_wg_' : 'own_'}${Sz}_${layout}_bf16`;
          flopRow(name, `fp8Gemm ${Sz}^3 e4m3, b ${bLayout}, bf16 out, ${took}`, 2 * Sz ** 3,
            () => withPath(path, () => void fp8GemmRaw(A, SA, B, SB, { bLayout, outDtype: 'bf16' })), Sz >= 8192 ? 20 : 50, 'checked at 4096 above');
        }
      }
      core.dispose([A, B, SA, SBb, SBt]);
    }
  };
  const groupedTimings = (path: Path) => {
    for (const [label, N, K] of [['gate_up', 2 * INTER, HIDDEN], ['down', HIDDEN, INTER]] as const) {
      const KT = cdiv(K, 128), NB = cdiv(N, 128);
      const A = fp8([ROWS, K], 'f8e4m3'), B = fp8([EXPERTS, N, K], 'f8e4m3');
      const SA = scales([ROWS, KT], 1e-2), SB = scales([EXPERTS, NB, KT], 1e-2);
      const off = core.keep(core.tensor(Int32Array.from(offsets), [EXPERTS + 1], 'i32', b));
      flopRow(`grouped_${path === 'own-wg' ? 'wg_' : ''}${label}`, `fp8GroupedGemm ${ROWS} rows, ${EXPERTS} experts, N=${N} K=${K}, bf16 out, ${path === 'own-wg' ? 'wgmma' : 'mma.sync'}`,
        2 * ROWS * N * K, () => withPath(path, () => void fp8GroupedGemmRaw(A, SA, B, SB, off, { outDtype: 'bf16' })), 20, 'vs composite per expert above');
      core.dispose([A, B, SA, SB, off]);
    }
  };

  // Phase 1: cuBLASLt and the mma.sync kernels. Phase 2: the wgmma kernels (newest; a fault there
  // poisons the process, so they come last).
  await conformance('auto-sync');
  await conformance('own-sync');
  await gemmCase(S, S, S, 'f8e4m3', 'f8e4m3', 'bf16', 'block128x128', ['auto-sync', 'own-sync']);
  await gemmCase(S, S, S, 'f8e4m3', 'f8e4m3', 'bf16', 'tile1x128', ['auto-sync', 'own-sync']);
  for (const [M, N, K, da, db, o, l] of small ? odd.slice(0, 3) : odd) await gemmCase(M, N, K, da, db, o, l, ['auto-sync', 'own-sync']);
  await groupedChecks('own-sync');
  for (const [key, why] of lt.fp8Rejections) say(`cuBLASLt turned down ${key}: ${why.split('\n')[0]}`);
  gemmTimings(['auto-sync'], small ? [512] : [4096, 8192]);
  gemmTimings(['own-sync'], small ? [512] : [4096, 8192]);
  groupedTimings('own-sync');
  const torchFile = typeof a.torch === 'string' ? a.torch : join(out, 'torch_fp8gemm.json');
  const torchName = (name: string) => name.replace(/^fp8gemm_own_(wg_)?/, 'fp8gemm_').replace(/^grouped_wg_/, 'grouped_');
  const writeTable = (final: boolean) => {
    withTorchTimes(rows, torchFile, () => {}, torchName);
    const table = formatBench(b.capabilities.device, rows);
    writeFileSync(join(out, 'fp8gemm.txt'), [table, ...rows.map((r) => `${r.name}: ${r.what}`), ...lines, ...(final ? [] : ['(phase 1 only)'])].join('\n') + '\n');
  };
  writeTable(false);

  await conformance('own-wg');
  await gemmCase(S, S, S, 'f8e4m3', 'f8e4m3', 'bf16', 'block128x128', ['own-wg']);
  await gemmCase(S, S, S, 'f8e4m3', 'f8e4m3', 'bf16', 'tile1x128', ['own-wg']);
  for (const [M, N, K, da, db, o, l] of small ? odd.slice(0, 3) : odd) await gemmCase(M, N, K, da, db, o, l, ['own-wg']);
  await groupedChecks('own-wg');
  const badChecks = checks.filter((c) => !c.ok).length;
  say(`checks: ${checks.length - badChecks} of ${checks.length} ok`);
  if (badChecks) failed++;
  gemmTimings(['own-wg'], small ? [512] : [4096, 8192]);
  groupedTimings('own-wg');

  const torch = withTorchTimes(rows, torchFile, log, torchName);
  for (const n of torch.notes ?? []) say(`torch: ${n}`);
  // torch's tensorwise-scaled and other reference times, as rows of their own.
  for (const [name, t] of Object.entries(torch.benchmarks ?? {})) {
    const m = /^torch_(tensorwise|grouped_rowwise)_(.*)$/.exec(name);
    if (!m || !(t.ms > 0)) continue;
    const sz = /^(\d+)$/.exec(m[2]!) ? Number(m[2]) : 0;
    const flops = sz ? 2 * sz ** 3 : m[2] === 'gate_up' ? 2 * ROWS * 2 * INTER * HIDDEN : 2 * ROWS * HIDDEN * INTER;
    const tflops = flops / (t.ms * 1e-3) / 1e12;
    rows.push({ name, what: `PyTorch ${m[1]} reference; ${((100 * tflops) / FP8_PEAK_TFLOPS).toFixed(0)}% of FP8 peak`, ms: t.ms, msMin: t.ms, flops, tflops, check: 'torch' });
  }
  const target = rows.find((r) => r.name === `fp8gemm_8192_block_bf16`);
  if (target?.vsTorch !== undefined) say(`target fp8Gemm 8192 (block, bf16) >= 80% of torch._scaled_mm: ${(100 * target.vsTorch).toFixed(0)}% -> ${target.vsTorch >= 0.8 ? 'met' : 'MISSED'}`);

  const result = {
    device: b.capabilities.device, seed, torchDevice: torch.device, torchVersion: torch.torch, torchNotes: torch.notes, secs: (performance.now() - t0) / 1000,
    checks, rows,
  };
  writeFileSync(join(out, 'fp8gemm.json'), JSON.stringify(result, null, 1));
  const table = formatBench(result.device, rows);
  writeFileSync(join(out, 'fp8gemm.txt'), [table, ...rows.map((r) => `${r.name}: ${r.what}`), ...lines].join('\n') + '\n');
  log(`fp8gemm: ${checks.length - badChecks}/${checks.length} checks ok (seed ${seed}), ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  log(table);
  return failed ? 1 : 0;
}
