/**
 * The MoE kernels (kernels/moe.cuh, src/ops/moe.ts) through the CUDA backend's host side: the mock
 * driver plus the JavaScript models of the kernels (test/mock/emu_moe.ts). The OpInfo records of
 * @ring-linear/moe's ops and fp8's routerGemm run against the CPU; then shapes the records do not
 * reach, against float64 formulas written here: the router at a Ring-mini-like configuration
 * (group limit, top-8), a dispatch plan over several chunks with ids outside [0, E), permute and
 * combine on the vector and scalar paths, and the tensor-core grouped GEMMs with several tiles,
 * empty and one-row experts, both weight layouts and offsets that leave rows outside every expert.
 * The device code itself is checked on the GPU machine (tools/gpu/steps/moe.ts).
 */
import { describe, expect, it } from 'vitest';
import { buildMockCuda } from './mock/build.js';
import { installEmulator } from './mock/emulator.js';
import { randoms } from './mock/random.js';
import './mock/emu_moe.js';

const built = await buildMockCuda();
const skip = 'skip' in built ? built.skip : null;
if (skip) console.log(`[backend-cuda] emulated MoE skipped: ${skip}`);

const OPS = ['moeRouter', 'moeDispatchPlan', 'moePermute', 'moeCombine', 'groupedMatmul', 'groupedMatmulAtB'];

async function setup() {
  const core = await import('@ring-linear/core');
  await import('@ring-linear/backend-cpu');
  await import('../src/index.js');
  const moe = await import('@ring-linear/moe');
  const fp8 = await import('@ring-linear/fp8');
  const koffi = ((await import('koffi')) as any).default;
  await core.initBackend('cpu');
  const b = (await core.initBackend('cuda')) as import('../src/backend.js').CudaBackend;
  const { launches } = installEmulator(b, koffi);
  return { core, moe, fp8, b, launches };
}

const f = Math.fround;
const SEED = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);

/** Max |got - want| / (1 + |want|) and where. */
function maxErr(got: ArrayLike<number>, want: ArrayLike<number>): { err: number; at: number } {
  let err = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!));
    if (!(e <= err)) { err = e; at = i; }
  }
  return { err, at };
}

describe.skipIf(!!skip)('MoE kernels on the CUDA host side (mock driver + kernel models)', () => {
  it('registers CUDA kernels for the MoE ops and routerGemm', async () => {
    const { core } = await setup();
    for (const op of [...OPS, 'routerGemm']) expect(core.getKernel(op, 'cuda'), op).toBeDefined();
  });

  it('passes the OpInfo records of the MoE ops and routerGemm against the CPU', async () => {
    const { moeOpInfos } = await import('@ring-linear/moe/opinfo');
    const { fp8OpInfos } = await import('@ring-linear/fp8/opinfo');
    const { runConformance } = await import('@ring-linear/conformance');
    const { launches } = await setup();
    const r = await runConformance({
      backend: 'cuda', reference: 'cpu', opInfos: [...moeOpInfos, ...fp8OpInfos], ops: [...OPS, 'routerGemm'], seed: SEED, grad: false, tfjs: false, log: null, maxMessages: 3,
    });
    const bad = r.cases.filter((c) => c.status === 'failed' || c.status === 'unexpected-pass');
    if (bad.length) console.log(r.summary);
    console.log(`[backend-cuda] emulated MoE conformance: ${r.counts.passed} passed, ${r.counts.failed} failed, seed ${SEED}`);
    expect(bad.map((c) => `${c.id}: ${c.messages[0]}`)).toEqual([]);
    expect(r.counts.passed).toBeGreaterThan(0);
    const ran = [...launches.keys()];
    for (const k of ['moe_route_f32', 'moe_plan_walk', 'moe_plan_scan', 'moe_permute_v2', 'moe_combine_f32_f32_v1', 'moe_gmm_simple_bf16', 'moe_gmm_atb_simple_f16']) {
      expect(ran).toContain(k);
    }
  }, 600_000);

  it('router: group-limited top-8 of 32 experts (Ring-mini routing), softmax and unnormalized variants, against float64', async () => {
    const { core, moe, launches } = await setup();
    console.log(`[backend-cuda] MoE router seed ${SEED}`);
    const cases = [
      { N: 37, H: 24, E: 32, K: 8, nGroup: 8, topkGroup: 4, soft: false, norm: true, scale: 2.5, xd: 'bf16', wd: 'bf16' },
      { N: 5, H: 9, E: 40, K: 3, nGroup: 1, topkGroup: 1, soft: true, norm: false, scale: 1, xd: 'f32', wd: 'f32' },
      { N: 70, H: 16, E: 12, K: 4, nGroup: 4, topkGroup: 3, soft: false, norm: true, scale: 1, xd: 'f16', wd: 'f32' },
    ] as const;
    for (const c of cases) {
      const xv = randoms(SEED + 1, c.N * c.H), wv = randoms(SEED + 2, c.E * c.H).map((v) => 0.6 * v), bv = randoms(SEED + 3, c.E).map((v) => 0.05 * v);
      const x = core.tensor(Float32Array.from(xv), [c.N, c.H], c.xd);
      const w = core.tensor(Float32Array.from(wv), [c.E, c.H], c.wd);
      const bias = core.tensor(Float32Array.from(bv), [c.E], 'f32');
      const xs = (await x.data()) as Float32Array, ws = (await w.data()) as Float32Array;
      const got = moe.moeRouter(x, w, bias, { topK: c.K, nGroup: c.nGroup, topkGroup: c.topkGroup, scoreFunction: c.soft ? 'softmax' : 'sigmoid', normTopkProb: c.norm, routedScalingFactor: c.scale });
      const gi = (await got.indices.data()) as Int32Array, gw = (await got.weights.data()) as Float32Array, gs = (await got.scores.data()) as Float32Array;
      const size = c.E / c.nGroup;
      let scoreErr = 0;
      for (let n = 0; n < c.N; n++) {
        const logits = Array.from({ length: c.E }, (_, j) => {
          let acc = 0;
          for (let h = 0; h < c.H; h++) acc += xs[n * c.H + h]! * ws[j * c.H + h]!;
          return acc;
        });
        const mx = Math.max(...logits);
        const z = logits.reduce((p, l) => p + Math.exp(l - mx), 0);
        const s = logits.map((l) => (c.soft ? Math.exp(l - mx) / z : 1 / (1 + Math.exp(-l))));
        let b = s.map((v, j) => v + bv[j]!);
        if (c.topkGroup < c.nGroup) {
          const gsc = Array.from({ length: c.nGroup }, (_, g) => {
            const vals = b.slice(g * size, (g + 1) * size).sort((p, q) => q - p);
            return vals[0]! + vals[1]!;
          });
          const kept = new Set(gsc.map((v, g) => [v, g] as const).sort((p, q) => q[0] - p[0] || p[1] - q[1]).slice(0, c.topkGroup).map(([, g]) => g));
          b = b.map((v, j) => (kept.has(Math.floor(j / size)) ? v : 0));
        }
        const idx = b.map((v, j) => [v, j] as const).sort((p, q) => q[0] - p[0] || p[1] - q[1]).slice(0, c.K).map(([, j]) => j);
        expect(Array.from(gi.subarray(n * c.K, (n + 1) * c.K)), `indices of token ${n} (${JSON.stringify(c)})`).toEqual(idx);
        const sel = idx.map((j) => s[j]!);
        const tot = sel.reduce((p, q) => p + q, 0);
        const want = sel.map((v) => (c.norm ? v / (tot + 1e-20) : v) * c.scale);
        const e = maxErr(gw.subarray(n * c.K, (n + 1) * c.K), want);
        expect(e.err, `weights of token ${n}`).toBeLessThan(1e-5);
        scoreErr = Math.max(scoreErr, maxErr(gs.subarray(n * c.E, (n + 1) * c.E), s).err);
      }
      expect(scoreErr).toBeLessThan(1e-5);
    }
    expect([...launches.keys()]).toEqual(expect.arrayContaining(['moe_route_f32']));
  }, 120_000);

  it('dispatch plan over several chunks (ids outside [0, E) last), permute and combine on vector and scalar paths', async () => {
    const { core, moe, launches } = await setup();
    const N = 301, K = 4, E = 13;
    const r = randoms(SEED + 5, N * K);
    // Mostly valid ids, some out of range on both sides; duplicates within a token allowed here.
    const ids = Array.from(r, (v) => Math.floor((v + 1) * 0.5 * (E + 2)) - 1);
    const plan = moe.moeDispatchPlan(core.tensor(Int32Array.from(ids), [N, K], 'i32'), E);
    const bucket = (v: number) => (v >= 0 && v < E ? v : E);
    const order = ids.map((_, j) => j).sort((a, c) => bucket(ids[a]!) - bucket(ids[c]!) || a - c);
    expect(Array.from((await plan.rowToSlot.data()) as Int32Array)).toEqual(order);
    const s2r = new Array<number>(N * K);
    order.forEach((j, row) => (s2r[j] = row));
    expect(Array.from((await plan.slotToRow.data()) as Int32Array)).toEqual(s2r);
    const counts = Array.from({ length: E }, (_, e) => ids.filter((v) => v === e).length);
    expect(Array.from((await plan.tokensPerExpert.data()) as Int32Array)).toEqual(counts);
    const offs = [0];
    for (const c of counts) offs.push(offs[offs.length - 1]! + c);
    expect(Array.from((await plan.offsets.data()) as Int32Array)).toEqual(offs);

    for (const [H, dt] of [[24, 'bf16'], [13, 'bf16'], [8, 'f32'], [5, 'f32']] as const) {
      const xv = randoms(SEED + 6 + H, N * H);
      const x = core.tensor(Float32Array.from(xv), [N, H], dt);
      const xs = (await x.data()) as Float32Array;
      const xp = (await moe.moePermute(x, plan.rowToSlot, plan.slotToRow).data()) as Float32Array;
      const wantXp = order.flatMap((j) => Array.from(xs.subarray(Math.floor(j / K) * H, (Math.floor(j / K) + 1) * H)));
      expect(Array.from(xp), `permute H=${H} ${dt}`).toEqual(wantXp);
      const ypv = randoms(SEED + 7 + H, N * K * H);
      const yp = core.tensor(Float32Array.from(ypv), [N * K, H], dt);
      const yps = (await yp.data()) as Float32Array;
      const wv = randoms(SEED + 8, N * K).map((v) => Math.abs(v));
      const y = (await moe.moeCombine(yp, core.tensor(Float32Array.from(wv), [N, K], 'f32'), plan.slotToRow, plan.rowToSlot).data()) as Float32Array;
      const want = new Float64Array(N * H);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) for (let c = 0; c < H; c++) want[n * H + c] += f(wv[n * K + k]!) * yps[s2r[n * K + k]! * H + c]!;
      const e = maxErr(y, want);
      expect(e.err, `combine H=${H} ${dt} at ${e.at}`).toBeLessThan(dt === 'f32' ? 1e-6 : 8e-3);
    }
    const ran = [...launches.keys()];
    for (const k of ['moe_permute_v16', 'moe_permute_v2', 'moe_permute_v4', 'moe_combine_bf16_f32_v8', 'moe_combine_bf16_f32_v1', 'moe_combine_f32_f32_v4']) expect(ran).toContain(k);
  }, 120_000);

  it('tensor-core grouped GEMM: several tiles, empty / one-row experts, stacked and list weights, both layouts, rows outside every expert', async () => {
    const { core, moe, launches } = await setup();
    const cases = [
      { counts: [130, 0, 1, 40], lead: 0, tail: 0, inD: 24, out: 136, stacked: true, tB: true },
      { counts: [3, 200, 0], lead: 0, tail: 0, inD: 40, out: 16, stacked: false, tB: true },
      { counts: [9, 0, 140], lead: 2, tail: 3, inD: 16, out: 24, stacked: true, tB: false },
      { counts: [1, 5], lead: 0, tail: 4, inD: 8, out: 8, stacked: false, tB: false },
    ];
    // Many experts with 0-3 rows each: the v2 A^T B kernel takes several experts per block.
    cases.push({ counts: Array.from(randoms(SEED + 30, 2200), (v) => Math.floor((v + 1) * 2)), lead: 0, tail: 0, inD: 8, out: 16, stacked: true, tB: true });
    for (const ver of ['v2', 'v1', 'v3', 'v4', 'v5']) {
      process.env.RING_LINEAR_CUDA_MOE_GMM = ver;
      for (const c of cases) {
        const E = c.counts.length;
        const R = c.lead + c.counts.reduce((a, b) => a + b, 0) + c.tail;
        const offs = [c.lead];
        for (const n of c.counts) offs.push(offs[offs.length - 1]! + n);
        const xv = randoms(SEED + 20 + R, R * c.inD);
        const x = core.tensor(Float32Array.from(xv), [R, c.inD], 'bf16');
        const wShape = c.tB ? [c.out, c.inD] : [c.inD, c.out];
        const wAll = randoms(SEED + 21 + R, E * c.inD * c.out).map((v) => 0.5 * v);
        const weights = c.stacked
          ? core.tensor(Float32Array.from(wAll), [E, ...wShape], 'bf16')
          : Array.from({ length: E }, (_, e) => core.tensor(Float32Array.from(wAll.subarray(e * c.inD * c.out, (e + 1) * c.inD * c.out)), wShape, 'bf16'));
        const offsets = core.tensor(Int32Array.from(offs), [E + 1], 'i32');
        const y = (await moe.groupedMatmul(x, weights, offsets, { transposeB: c.tB }).data()) as Float32Array;
        const xs = (await x.data()) as Float32Array;
        const wsAll = c.stacked
          ? ((await (weights as any).data()) as Float32Array)
          : Float32Array.from((await Promise.all((weights as any[]).map((w) => w.data()))).flatMap((a) => Array.from(a as Float32Array)));
        const want = new Float64Array(R * c.out);
        for (let e = 0; e < E; e++) {
          const w = wsAll.subarray(e * c.inD * c.out);
          for (let r = offs[e]!; r < offs[e + 1]!; r++) {
            for (let j = 0; j < c.out; j++) {
              let s = 0;
              for (let k = 0; k < c.inD; k++) s += xs[r * c.inD + k]! * (c.tB ? w[j * c.inD + k]! : w[k * c.out + j]!);
              want[r * c.out + j] = s;
            }
          }
        }
        const e = maxErr(y, want);
        expect(e.err, `grouped ${ver} ${JSON.stringify(c).slice(0, 200)} at ${e.at}: got ${y[e.at]}, want ${want[e.at]}`).toBeLessThan(8e-3);

        // The weight gradient's grouped A^T B over the same segments.
        const q = c.out;
        const bv = randoms(SEED + 22 + R, R * q);
        const bt = core.tensor(Float32Array.from(bv), [R, q], 'bf16');
        const bs = (await bt.data()) as Float32Array;
        const outs = moe.groupedMatmulAtB(x, bt, offsets, { separate: !c.stacked });
        const got = c.stacked
          ? ((await outs[0]!.data()) as Float32Array)
          : Float32Array.from((await Promise.all(outs.map((o) => o.data()))).flatMap((a) => Array.from(a as Float32Array)));
        const wantAtB = new Float64Array(E * c.inD * q);
        for (let ex = 0; ex < E; ex++) {
          for (let r = offs[ex]!; r < offs[ex + 1]!; r++) {
            for (let p = 0; p < c.inD; p++) for (let j = 0; j < q; j++) wantAtB[(ex * c.inD + p) * q + j] += xs[r * c.inD + p]! * bs[r * q + j]!;
          }
        }
        const e2 = maxErr(got, wantAtB);
        expect(e2.err, `grouped AtB ${ver} ${JSON.stringify(c).slice(0, 200)} at ${e2.at}`).toBeLessThan(8e-3);
      }
    }
    delete process.env.RING_LINEAR_CUDA_MOE_GMM;
    const ran = [...launches.keys()];
    for (const k of ['moe_gmm_tiles', 'moe_gmm_zero_bf16', 'moe_gmm_bf16_tb1_v2', 'moe_gmm_bf16_tb0_v2', 'moe_gmm_atb_bf16_v2', 'moe_gmm_bf16_tb1_v1', 'moe_gmm_atb_bf16_v1', 'moe_gmm_bf16_tb0_v3', 'moe_gmm_bf16_tb1_v4', 'moe_gmm_bf16_tb0_v5']) expect(ran).toContain(k);
  }, 300_000);

  it('grouped GEMMs over one offsets tensor build its tile list once (gate, up, down) and free it with the offsets', async () => {
    const { core, moe, b, launches } = await setup();
    const counts = [70, 0, 131, 5];
    const offs = [0];
    for (const n of counts) offs.push(offs[offs.length - 1]! + n);
    const R = offs[offs.length - 1]!, H = 16, I = 24;
    const x = core.tensor(Float32Array.from(randoms(SEED + 40, R * H)), [R, H], 'bf16');
    const wg = Array.from({ length: 4 }, (_, e) => core.tensor(Float32Array.from(randoms(SEED + 41 + e, I * H)), [I, H], 'bf16'));
    const wd = Array.from({ length: 4 }, (_, e) => core.tensor(Float32Array.from(randoms(SEED + 51 + e, H * I)), [H, I], 'bf16'));
    const inUse0 = b.allocatorStats().bytesInUse;
    const offsets = core.tensor(Int32Array.from(offs), [5], 'i32');
    const tiles0 = launches.get('moe_gmm_tiles') ?? 0;
    const g = moe.groupedMatmul(x, wg, offsets);
    const u = moe.groupedMatmul(x, wg, offsets);
    const gu = core.mul(g, u);
    const y = moe.groupedMatmul(gu, wd, offsets);
    expect(launches.get('moe_gmm_tiles')! - tiles0).toBe(1);
    // Same values as with a fresh offsets tensor (whose tile list is built again).
    const fresh = core.tensor(Int32Array.from(offs), [5], 'i32');
    const y2 = moe.groupedMatmul(gu, wd, fresh);
    expect(launches.get('moe_gmm_tiles')! - tiles0).toBe(2);
    expect(Array.from((await y.data()) as Float32Array)).toEqual(Array.from((await y2.data()) as Float32Array));
    // A write into the offsets buffer drops its tile list: the next GEMM builds it again.
    b.write((offsets as any).storage.buffer, Int32Array.from(offs));
    const y3 = moe.groupedMatmul(gu, wd, offsets);
    expect(launches.get('moe_gmm_tiles')! - tiles0).toBe(3);
    expect(Array.from((await y3.data()) as Float32Array)).toEqual(Array.from((await y.data()) as Float32Array));
    core.dispose([g, u, gu, y, y2, y3, offsets, fresh]);
    expect(b.allocatorStats().bytesInUse).toBe(inUse0); // the tile lists went with their offsets
    core.dispose([x, ...wg, ...wd]);
  });
});
