/**
 * The `moe` step: the MoE kernels of @ring-linear/backend-cuda (kernels/moe.cuh, src/ops/moe.ts) on
 * the GPU.
 *
 *  1. The OpInfo records of @ring-linear/moe's ops and fp8's routerGemm against the CPU.
 *  2. Kernel vs composite on CUDA at Ring-mini shapes (4096 tokens, hidden 2048, 256 experts,
 *     top-8, n_group 8 / topk_group 4, moe_intermediate_size 512) and at odd ones (empty and
 *     one-row experts, tails, rows outside every expert, scalar paths), each case in its own
 *     try/catch; the first bad element is printed.
 *  3. Timings (bf16) with the ratio to torch_moe.py (same names): GEMMs as TFLOP/s and a fraction
 *     of the 989 TFLOP/s bf16 peak of an H100 SXM; the data movement as GB/s and a fraction of the
 *     copy bandwidth measured here; the composites (what ran before these kernels) for comparison.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as core from '@ring-linear/core';
import { runConformance, formatSummary } from '@ring-linear/conformance';
import { moeRouter, moeDispatchPlan, moePermute, moeCombine, groupedMatmul, groupedMatmulAtB } from '@ring-linear/moe';
import { moeOpInfos } from '@ring-linear/moe/opinfo';
import { routerGemm } from '@ring-linear/fp8';
import { fp8OpInfos } from '@ring-linear/fp8/opinfo';
import { cudaBackend, formatBench, log, outDir, timeGpu, values, withTorchTimes, type Args, type BenchRow } from '../common.js';

const OPS = ['moeRouter', 'moeDispatchPlan', 'moePermute', 'moeCombine', 'groupedMatmul', 'groupedMatmulAtB', 'routerGemm'];
const PEAK_BF16 = 989;
/** Versions of the tiled grouped GEMMs (src/ops/moe.ts moeGmmVersion). */
const GMM_VERSIONS = ['v1', 'v2', 'v3', 'v4', 'v5'] as const;

const keepAll = (ts: core.Tensor[]): core.Tensor[] => ts.map((t) => core.keep(t));

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** max |a - b| / max |b|, with the worst element. */
function worst(got: Float32Array, want: Float32Array): { err: number; at: number; g: number; w: number } {
  let e = 0, at = 0, m = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= e)) { e = d; at = i; }
    m = Math.max(m, Math.abs(want[i]!));
  }
  return { err: e / Math.max(m, 1e-30), at, g: got[at]!, w: want[at]! };
}

export async function moe(a: Args): Promise<number> {
  const out = outDir(a);
  const b = await cudaBackend();
  const seed = a.seed !== undefined ? Number(a.seed) : Math.floor(Math.random() * 2 ** 31);
  const small = a.small === true;
  const t0 = performance.now();
  let failed = 0;

  // 1. OpInfo records (float64 references, kernel vs composite, error inputs); no gradients.
  const conf = await runConformance({ backend: 'cuda', reference: 'cpu', opInfos: [...moeOpInfos, ...fp8OpInfos], ops: OPS, seed, tfjs: false, grad: false, log: null, maxMessages: 4 });
  const confText = formatSummary(conf);
  writeFileSync(join(out, 'moe-conformance.txt'), confText + '\n');
  log(confText);
  if (!conf.ok) failed++;

  // 2. Kernel vs composite.
  const gen = new core.Generator(seed);
  const rnd = (shape: number[], dtype: core.DType, std = 1) => core.keep(core.tidy(() => core.cast(core.randomNormal(shape, { std, generator: gen }), dtype)));
  const ints = (shape: number[], dtype: core.DType, lo: number, hi: number, div = 1) =>
    core.keep(core.tidy(() => core.cast(core.div(core.floor(core.randomUniform(shape, { low: lo, high: hi + 1, generator: gen })), div), dtype)));
  const checks: Check[] = [];
  const tol16 = 2 * 2 ** -8;
  const check = async (name: string, fn: () => Promise<{ ok: boolean; detail: string }>) => {
    try {
      const r = await fn();
      checks.push({ name, ...r });
      log(`${r.ok ? 'ok  ' : 'BAD '} ${name}: ${r.detail}`);
    } catch (err) {
      checks.push({ name, ok: false, detail: `threw ${(err as Error).message.split('\n')[0]}` });
      log(`BAD  ${name}: threw ${(err as Error).stack ?? (err as Error).message}`);
    }
  };
  /** Every output of fn through the kernel and through the composite, as f32 arrays. */
  const both = async (op: string | string[], fn: () => core.Tensor[]) => {
    const fused = core.tidy(() => fn().map((t) => core.cast(t, 'f32')));
    const comp = core.withKernelsDisabled(Array.isArray(op) ? op : [op], () => core.tidy(() => fn().map((t) => core.cast(t, 'f32'))));
    const r = { fused: await Promise.all(fused.map(values)), comp: await Promise.all(comp.map(values)) };
    core.dispose([...fused, ...comp]);
    return r;
  };
  const closeAll = async (op: string, fn: () => core.Tensor[], tol: number) => {
    const { fused, comp } = await both(op, fn);
    const ws = fused.map((f, i) => worst(f, comp[i]!));
    return {
      ok: ws.every((w) => w.err <= tol),
      detail: ws.map((w, i) => `out${i} max rel err ${w.err.toExponential(2)} (at ${w.at}: ${w.g} vs ${w.w})`).join('; ') + ` (tol ${tol.toExponential(1)})`,
    };
  };
  /** The grouped GEMM kernels of both versions (RING_LINEAR_CUDA_MOE_GMM) against one composite run. */
  const closeVersions = async (op: string, fn: () => core.Tensor[], tol: number) => {
    const comp = core.withKernelsDisabled([op], () => core.tidy(() => fn().map((t) => core.cast(t, 'f32'))));
    const want = await Promise.all(comp.map(values));
    core.dispose(comp);
    let ok = true;
    const parts: string[] = [];
    for (const ver of GMM_VERSIONS) {
      process.env.RING_LINEAR_CUDA_MOE_GMM = ver;
      try {
        const fused = core.tidy(() => fn().map((t) => core.cast(t, 'f32')));
        const got = await Promise.all(fused.map(values));
        core.dispose(fused);
        const ws = got.map((g, i) => worst(g, want[i]!));
        ok &&= ws.every((w) => w.err <= tol);
        parts.push(`${ver}: ` + ws.map((w, i) => `out${i} ${w.err.toExponential(2)}${w.err > tol ? ` (worst at ${w.at}: ${w.g} vs ${w.w})` : ''}`).join(', '));
      } finally {
        delete process.env.RING_LINEAR_CUDA_MOE_GMM;
      }
    }
    return { ok, detail: `max rel err ${parts.join('; ')} (tol ${tol.toExponential(1)})` };
  };
  const exactAll = async (op: string, fn: () => core.Tensor[]) => {
    const { fused, comp } = await both(op, fn);
    const diffs: string[] = [];
    fused.forEach((f, i) => {
      const c = comp[i]!;
      let n = 0, first = -1;
      for (let j = 0; j < c.length; j++) if (f[j] !== c[j] && !(f[j] !== f[j] && c[j] !== c[j])) { n++; if (first < 0) first = j; }
      if (n) diffs.push(`out${i}: ${n} of ${c.length} differ, first at ${first} (${f[first]} vs ${c[first]})`);
    });
    return { ok: diffs.length === 0, detail: diffs.length ? diffs.join('; ') : `exact (${fused.map((f) => f.length).join(', ')} elements)` };
  };

  const N = small ? 256 : 4096, H = 2048, E = 256, K = 8, NG = 8, TG = 4, I = 512;
  const routing = { topK: K, nGroup: NG, topkGroup: TG, routedScalingFactor: 2.5 };

  // Router, random data: the GEMMs sum in different orders, so near-ties may choose differently;
  // count the tokens whose chosen experts differ (expected: none or a handful).
  const x = rnd([N, H], 'bf16');
  const wg = rnd([E, H], 'bf16', H ** -0.5);
  const bias = rnd([E], 'f32', 0.01);
  await check(`moeRouter bf16 N${N} H${H} E${E} top${K} groups ${NG}/${TG}, random: kernel vs composite`, async () => {
    const { fused, comp } = await both('moeRouter', () => {
      const r = moeRouter(x, wg, bias, routing);
      return [r.weights, r.indices, r.scores];
    });
    let diffTokens = 0, firstTok = -1;
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) if (fused[1]![n * K + k] !== comp[1]![n * K + k]) { diffTokens++; if (firstTok < 0) firstTok = n; break; }
    }
    const ws = worst(fused[0]!, comp[0]!), ss = worst(fused[2]!, comp[2]!);
    const ok = diffTokens <= Math.ceil(N * 0.002) && ss.err <= 1e-5 && (diffTokens > 0 || ws.err <= 1e-5);
    const at = firstTok >= 0 ? `; first differing token ${firstTok}: ${Array.from(fused[1]!.subarray(firstTok * K, firstTok * K + K))} vs ${Array.from(comp[1]!.subarray(firstTok * K, firstTok * K + K))}` : '';
    return { ok, detail: `${diffTokens} of ${N} tokens choose differently${at}; weights max rel err ${ws.err.toExponential(2)}; scores ${ss.err.toExponential(2)}` };
  });
  // Integer data: exact logits in any summation order, many exact ties: identical selections.
  const routerCases = [
    { n: N, h: H, e: E, opts: routing, desc: 'Ring-mini' },
    { n: 33, h: 40, e: 24, opts: { topK: 5, nGroup: 4, topkGroup: 2 }, desc: 'odd, groups 4/2' },
    { n: 19, h: 8, e: 40, opts: { topK: 3, scoreFunction: 'softmax' as const, normTopkProb: false }, desc: 'softmax, unnormalized, no groups' },
    { n: 7, h: 3, e: 6, opts: { topK: 2, nGroup: 6, topkGroup: 3 }, desc: 'groups of one expert' },
    { n: 5, h: 16, e: 600, opts: { topK: 20, nGroup: 10, topkGroup: 3, routedScalingFactor: 0.5 }, desc: '600 experts, top-20' },
  ];
  for (const c of routerCases) {
    await check(`moeRouter integer data N${c.n} H${c.h} E${c.e} ${c.desc}: exact ties, kernel vs composite`, async () => {
      const xi = ints([c.n, c.h], 'bf16', -2, 2), wi = ints([c.e, c.h], 'bf16', -3, 3, 8), bi = ints([c.e], 'f32', -2, 2, 64);
      const { fused, comp } = await both('moeRouter', () => {
        const r = moeRouter(xi, wi, bi, c.opts);
        return [r.weights, r.indices, r.scores];
      });
      core.dispose([xi, wi, bi]);
      let bad = -1;
      for (let j = 0; j < comp[1]!.length && bad < 0; j++) if (fused[1]![j] !== comp[1]![j]) bad = j;
      const ws = worst(fused[0]!, comp[0]!), ss = worst(fused[2]!, comp[2]!);
      const k = c.opts.topK;
      const tok = Math.floor(bad / k);
      return {
        ok: bad < 0 && ws.err <= 1e-6 && ss.err <= 1e-6,
        detail: (bad < 0 ? 'indices identical' : `indices differ at token ${tok}: ${Array.from(fused[1]!.subarray(tok * k, tok * k + k))} vs ${Array.from(comp[1]!.subarray(tok * k, tok * k + k))}`) +
          `; weights max rel err ${ws.err.toExponential(2)}; scores ${ss.err.toExponential(2)}`,
      };
    });
  }
  await check(`routerGemm bf16 [${N}, ${H}] x [${E}, ${H}]: kernel vs composite`, () => closeAll('routerGemm', () => [routerGemm(x, wg)], 1e-5));
  await check('routerGemm f32 x, bf16 w, [2, 3, 7] x [9, 7] (widened, odd)', async () => {
    const xs = rnd([2, 3, 7], 'f32'), w = rnd([9, 7], 'bf16');
    const r = await closeAll('routerGemm', () => [routerGemm(xs, w)], 1e-5);
    core.dispose([xs, w]);
    return r;
  });

  // The routing of the timed shapes (kernel), then the plan, permute, combine.
  const [rw, ridx] = keepAll(core.tidy(() => {
    const r = moeRouter(x, wg, bias, routing);
    return [r.weights, r.indices];
  })) as [core.Tensor, core.Tensor];
  await check(`moeDispatchPlan N${N} K${K} E${E}: kernel vs composite`, () => exactAll('moeDispatchPlan', () => {
    const p = moeDispatchPlan(ridx, E);
    return [p.slotToRow, p.rowToSlot, p.offsets, p.tokensPerExpert];
  }));
  const planCases: { n: number; k: number; e: number; desc: string; ids?: number[] }[] = [
    { n: 1, k: 1, e: 1, desc: 'one slot' },
    { n: 3000, k: 3, e: 7, desc: 'several chunks, few experts' },
    { n: 10, k: 2, e: 4, desc: 'ids outside [0, E)', ids: [2, -1, 0, 5, 2, 0, 9, 1, 3, 3, -7, 4, 1, 1, 0, 0, 2, 2, 3, 8] },
    { n: 200, k: 8, e: 4000, desc: 'more experts than slots' },
  ];
  for (const c of planCases) {
    await check(`moeDispatchPlan ${c.desc} (N${c.n} K${c.k} E${c.e}): kernel vs composite`, async () => {
      const ids = c.ids
        ? core.keep(core.tensor(Int32Array.from(c.ids), [c.n, c.k], 'i32', b))
        : ints([c.n, c.k], 'i32', 0, c.e - 1);
      const r = await exactAll('moeDispatchPlan', () => {
        const p = moeDispatchPlan(ids, c.e);
        return [p.slotToRow, p.rowToSlot, p.offsets, p.tokensPerExpert];
      });
      core.dispose(ids);
      return r;
    });
  }
  const plan = moeDispatchPlan(ridx, E);
  keepAll([plan.slotToRow, plan.rowToSlot, plan.offsets, plan.tokensPerExpert]);
  await check(`moePermute bf16 [${N}, ${H}] -> [${N * K}, ${H}]: kernel vs composite`, () => exactAll('moePermute', () => [moePermute(x, plan.rowToSlot, plan.slotToRow)]));
  const rows = N * K;
  const yp = rnd([rows, H], 'bf16');
  await check(`moeCombine bf16 [${rows}, ${H}] -> [${N}, ${H}]: kernel vs composite`, () => closeAll('moeCombine', () => [moeCombine(yp, rw, plan.slotToRow, plan.rowToSlot)], tol16));
  for (const [h, dt] of [[13, 'bf16'], [5, 'f32'], [24, 'f16'], [2048, 'f32']] as const) {
    await check(`moePermute + moeCombine ${dt} H${h} (N 37, K 3): kernel vs composite`, async () => {
      const ids = ints([37, 3], 'i32', 0, 9);
      const p = keepAll(core.tidy(() => {
        const q = moeDispatchPlan(ids, 10);
        return [q.slotToRow, q.rowToSlot];
      }));
      const xs = rnd([37, h], dt), ys = rnd([111, h], dt), w = rnd([37, 3], 'bf16');
      const r1 = await exactAll('moePermute', () => [moePermute(xs, p[1]!, p[0]!)]);
      const r2 = await closeAll('moeCombine', () => [moeCombine(ys, w, p[0]!, p[1]!)], dt === 'f32' ? 1e-6 : dt === 'bf16' ? tol16 : 2 * 2 ** -11);
      core.dispose([ids, ...p, xs, ys, w]);
      return { ok: r1.ok && r2.ok, detail: `permute ${r1.detail}; combine ${r2.detail}` };
    });
  }

  // Grouped GEMMs, odd shapes first (a CUDA fault poisons the process: the big ones last).
  const offsetsOf = (counts: number[], lead = 0) => {
    const o = [lead];
    for (const c of counts) o.push(o[o.length - 1]! + c);
    return o;
  };
  const gemmCases = [
    { counts: [0, 1, 300, 0, 17, 129], lead: 0, tail: 0, inD: 72, outD: 40, stacked: true, tB: true, dt: 'bf16' as const },
    { counts: [5, 0, 260], lead: 3, tail: 7, inD: 2048, outD: 1024, stacked: false, tB: true, dt: 'bf16' as const },
    { counts: [130, 1, 0, 64], lead: 0, tail: 2, inD: 64, outD: 136, stacked: true, tB: false, dt: 'f16' as const },
    { counts: [9, 0, 4], lead: 1, tail: 0, inD: 7, outD: 9, stacked: false, tB: true, dt: 'bf16' as const },
    { counts: [9, 3], lead: 0, tail: 0, inD: 16, outD: 12, stacked: true, tB: false, dt: 'f32' as const },
    // 0-3 rows for each of 2200 experts: v2's A^T B runs several experts per block.
    { counts: Array.from({ length: 2200 }, (_, i) => (i * 7919) % 4), lead: 0, tail: 5, inD: 16, outD: 24, stacked: true, tB: true, dt: 'bf16' as const },
  ];
  for (const c of gemmCases) {
    const name = `${c.dt} counts [${c.counts.length > 8 ? `${c.counts.slice(0, 8)},... (${c.counts.length} experts)` : c.counts}] lead ${c.lead} tail ${c.tail} in ${c.inD} out ${c.outD} ${c.stacked ? 'stacked' : 'list'} transposeB ${c.tB}`;
    const R = c.lead + c.counts.reduce((p, q) => p + q, 0) + c.tail;
    const Ec = c.counts.length;
    const xs = rnd([R, c.inD], c.dt);
    const off = core.keep(core.tensor(Int32Array.from(offsetsOf(c.counts, c.lead)), [Ec + 1], 'i32', b));
    const wShape = c.tB ? [c.outD, c.inD] : [c.inD, c.outD];
    const ws = c.stacked ? [rnd([Ec, ...wShape], c.dt, 0.3)] : Array.from({ length: Ec }, () => rnd(wShape, c.dt, 0.3));
    const tol = c.dt === 'f32' ? 1e-5 : c.dt === 'bf16' ? tol16 : 2 * 2 ** -11;
    await check(`groupedMatmul ${name}: kernel vs composite`, () => closeVersions('groupedMatmul', () => [groupedMatmul(xs, c.stacked ? ws[0]! : ws, off, { transposeB: c.tB })], tol));
    const dy = rnd([R, c.outD], c.dt);
    await check(`groupedMatmulAtB ${name.replace(/ (stacked|list) transposeB \w+/, '')} ${c.stacked ? 'stacked' : 'separate'}: kernel vs composite`, () =>
      closeVersions('groupedMatmulAtB', () => groupedMatmulAtB(dy, xs, off, { separate: !c.stacked }), tol));
    core.dispose([xs, off, ...ws, dy]);
  }
  // The Ring-mini expert GEMMs on the routing above.
  const xp = core.keep(moePermute(x, plan.rowToSlot, plan.slotToRow));
  const wGateUp = rnd([E, 2 * I, H], 'bf16', H ** -0.5);
  const wDown = rnd([E, H, I], 'bf16', I ** -0.5);
  const hMid = rnd([rows, I], 'bf16');
  const dGateUp = rnd([rows, 2 * I], 'bf16');
  await check(`groupedMatmul gate/up bf16 [${rows}, ${H}] x [${E}, ${2 * I}, ${H}]^T: kernel vs composite`, () =>
    closeVersions('groupedMatmul', () => [groupedMatmul(xp, wGateUp, plan.offsets)], tol16));
  await check(`groupedMatmul down bf16 [${rows}, ${I}] x [${E}, ${H}, ${I}]^T: kernel vs composite`, () =>
    closeVersions('groupedMatmul', () => [groupedMatmul(hMid, wDown, plan.offsets)], tol16));
  await check(`groupedMatmulAtB gate/up weight gradient bf16 [${rows}, ${2 * I}]^T [${rows}, ${H}] -> [${E}, ${2 * I}, ${H}]: kernel vs composite`, () =>
    closeVersions('groupedMatmulAtB', () => groupedMatmulAtB(dGateUp, xp, plan.offsets), tol16));

  const badChecks = checks.filter((c) => !c.ok).length;
  log(`kernel vs composite: ${checks.length - badChecks} of ${checks.length} ok`);
  if (badChecks) failed++;

  // 3. Timings.
  const copyBytes = small ? 2 ** 20 : 2 ** 30;
  const src = b.allocate(copyBytes);
  const dst = b.allocate(copyBytes);
  b.memset(src.ptr, 0x3f800000, 4, copyBytes / 4);
  const copy = timeGpu(b, () => b.copy(src, 0, dst, 0, copyBytes), 20);
  b.free(src);
  b.free(dst);
  const copyGbps = (2 * copyBytes) / (copy.ms * 1e-3) / 1e9;
  const benchRows: BenchRow[] = [{ name: small ? 'copy_1MiB' : 'copy_1GiB', what: 'device-to-device copy', ...copy, bytes: 2 * copyBytes, gbps: copyGbps, ofCopy: 1, check: 'n/a' }];
  const ok = (prefix: string) => (checks.filter((c) => c.name.startsWith(prefix)).every((c) => c.ok) ? 'checked above' : 'FAILED above');
  const memRow = (name: string, what: string, bytes: number, fn: () => void, reps: number, chk: string) => {
    try {
      const tm = timeGpu(b, fn, reps);
      const gbps = bytes / (tm.ms * 1e-3) / 1e9;
      benchRows.push({ name, what, ...tm, bytes, gbps, ofCopy: gbps / copyGbps, check: chk });
    } catch (err) {
      log(`timing ${name} threw ${(err as Error).message}`);
      failed++;
    }
  };
  const flopRow = (name: string, what: string, flops: number, fn: () => void, reps: number, chk: string) => {
    try {
      const tm = timeGpu(b, fn, reps);
      const tflops = flops / (tm.ms * 1e-3) / 1e12;
      benchRows.push({ name, what, ...tm, flops, tflops, check: `${((100 * tflops) / PEAK_BF16).toFixed(1)}% of ${PEAK_BF16} TFLOP/s; ${chk}` });
    } catch (err) {
      log(`timing ${name} threw ${(err as Error).message}`);
      failed++;
    }
  };
  const gemmFlops = 2 * N * H * E;
  flopRow('router_gemm_bf16', `routerGemm fp32 logits [${N}, ${H}] x [${E}, ${H}]^T (bf16 in, f32 out)`, gemmFlops, () => void routerGemm(x, wg), 50, ok('routerGemm'));
  flopRow('router_bf16', `moeRouter N${N} E${E} top-${K} groups ${NG}/${TG} (GEMM + selection)`, gemmFlops, () => void moeRouter(x, wg, bias, routing), 50, ok('moeRouter'));
  flopRow('router_bf16_composite', 'moeRouter composite (the previous CUDA path)', gemmFlops,
    () => void core.withKernelsDisabled(['moeRouter'], () => moeRouter(x, wg, bias, routing)), 20, 'composite');
  const permBytes = 2 * rows * H * 2 + 4 * 4 * rows;
  memRow('plan_permute_bf16', `moeDispatchPlan + moePermute: ${rows} rows of ${H} bf16`, permBytes, () => {
    const p = moeDispatchPlan(ridx, E);
    moePermute(x, p.rowToSlot, p.slotToRow);
  }, 50, `${ok('moeDispatchPlan')}, ${ok('moePermute')}`);
  memRow('plan_permute_bf16_composite', 'the composites of both', permBytes, () => core.withKernelsDisabled(['moeDispatchPlan', 'moePermute'], () => {
    const p = moeDispatchPlan(ridx, E);
    moePermute(x, p.rowToSlot, p.slotToRow);
  }), 10, 'composite');
  flopRow('gmm_gateup_bf16', `groupedMatmul [${rows}, ${H}] x [${E}, ${2 * I}, ${H}]^T`, 2 * rows * H * 2 * I, () => void groupedMatmul(xp, wGateUp, plan.offsets), 20, ok('groupedMatmul'));
  flopRow('gmm_down_bf16', `groupedMatmul [${rows}, ${I}] x [${E}, ${H}, ${I}]^T`, 2 * rows * I * H, () => void groupedMatmul(hMid, wDown, plan.offsets), 20, ok('groupedMatmul'));
  flopRow('gmm_atb_gateup_bf16', `groupedMatmulAtB [${rows}, ${2 * I}]^T [${rows}, ${H}] -> [${E}, ${2 * I}, ${H}]`, 2 * rows * H * 2 * I,
    () => void groupedMatmulAtB(dGateUp, xp, plan.offsets), 20, ok('groupedMatmulAtB'));
  flopRow('gmm_gateup_bf16_composite', 'groupedMatmul composite (E masked matmuls; useful FLOPs)', 2 * rows * H * 2 * I,
    () => void core.withKernelsDisabled(['groupedMatmul'], () => groupedMatmul(xp, wGateUp, plan.offsets)), 3, 'composite');
  memRow('combine_bf16', `moeCombine [${rows}, ${H}] -> [${N}, ${H}] bf16, f32 weights`, rows * H * 2 + N * H * 2 + rows * 8, () => void moeCombine(yp, rw, plan.slotToRow, plan.rowToSlot), 50, ok('moeCombine'));
  memRow('combine_bf16_composite', 'moeCombine composite', rows * H * 2 + N * H * 2 + rows * 8,
    () => void core.withKernelsDisabled(['moeCombine'], () => moeCombine(yp, rw, plan.slotToRow, plan.rowToSlot)), 10, 'composite');
  // The other versions of the tiled kernels (src/kernels/families/moe.ts MOE_GMM_VERSIONS: stages,
  // k step, staged stores, skipped tail rows; A^T B experts per block, staged stores, skipped k steps).
  for (const ver of GMM_VERSIONS) {
    process.env.RING_LINEAR_CUDA_MOE_GMM = ver;
    flopRow(`gmm_gateup_bf16_${ver}`, `the same, kernel version ${ver}`, 2 * rows * H * 2 * I, () => void groupedMatmul(xp, wGateUp, plan.offsets), 20, ok('groupedMatmul'));
    flopRow(`gmm_down_bf16_${ver}`, `the same, ${ver}`, 2 * rows * I * H, () => void groupedMatmul(hMid, wDown, plan.offsets), 20, ok('groupedMatmul'));
    flopRow(`gmm_atb_gateup_bf16_${ver}`, `the same, ${ver}`, 2 * rows * H * 2 * I, () => void groupedMatmulAtB(dGateUp, xp, plan.offsets), 20, ok('groupedMatmulAtB'));
    delete process.env.RING_LINEAR_CUDA_MOE_GMM;
  }
  // The same timings against torch's per-expert loop (torch_moe.py's *_loop).
  for (const n of ['gmm_gateup_bf16', 'gmm_down_bf16', 'gmm_atb_gateup_bf16']) {
    const r = benchRows.find((q) => q.name === n);
    if (r) benchRows.push({ ...r, name: `${n}_loop`, what: `${r.what} (torch: per-expert loop)`, check: 'same timing as above' });
  }

  const torch = withTorchTimes(benchRows, typeof a.torch === 'string' ? a.torch : join(out, 'torch_moe.json'), log,
    (name) => name.replace(/_(composite|v[1-5])$/, ''));
  for (const n of torch.notes ?? []) log(`torch: ${n}`);
  core.dispose([x, wg, bias, rw, ridx, plan.slotToRow, plan.rowToSlot, plan.offsets, plan.tokensPerExpert, yp, xp, wGateUp, wDown, hMid, dGateUp]);
  const result = {
    device: b.capabilities.device, seed, torchDevice: torch.device, torchVersion: torch.torch, torchNotes: torch.notes, secs: (performance.now() - t0) / 1000,
    conformance: { counts: conf.counts, ok: conf.ok }, checks, rows: benchRows,
  };
  writeFileSync(join(out, 'moe.json'), JSON.stringify(result, null, 1));
  const table = formatBench(result.device, benchRows);
  writeFileSync(join(out, 'moe.txt'), [table, '', ...checks.map((c) => `${c.ok ? 'ok  ' : 'BAD '} ${c.name}: ${c.detail}`), ...(torch.notes ?? []).map((n) => `torch: ${n}`)].join('\n') + '\n');
  log(`moe: conformance ${conf.counts.passed} passed, ${conf.counts.failed} failed; kernel vs composite ${checks.length - badChecks}/${checks.length} ok (seed ${seed})`);
  log(table);
  return failed ? 1 : 0;
}
