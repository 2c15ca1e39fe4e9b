/**
 * The chunked lightning attention kernels (kernels/lightning.cuh, src/ops/lightning.ts) through the
 * CUDA backend's host side: the mock driver plus JavaScript models of the kernels
 * (test/mock/emu_lightning.ts). The OpInfo records of lightningAttention and
 * lightningAttentionBackward (@ring-linear/attention/opinfo; small odd head sizes: the general
 * passes) run against the CPU with gradients; then the tensor-core path's planning (head dims 64
 * and 128, several chunks and super-chunks with a partial tail, batch 2, packed sequences) and the
 * general path at a tensor-core shape, against float64 recurrences written here. The device code
 * itself is checked on the GPU machine (tools/gpu/steps/lightning.ts).
 */
import { describe, expect, it } from 'vitest';
import { buildMockCuda } from './mock/build.js';
import { installEmulator } from './mock/emulator.js';
import { randoms } from './mock/random.js';
import './mock/emu_lightning.js';

const built = await buildMockCuda();
const skip = 'skip' in built ? built.skip : null;
if (skip) console.log(`[backend-cuda] emulated lightning skipped: ${skip}`);

const OPS = ['lightningAttention', 'lightningAttentionBackward'];

async function setup() {
  const core = await import('@ring-linear/core');
  await import('@ring-linear/backend-cpu');
  await import('../src/index.js');
  const attention = await import('@ring-linear/attention');
  const koffi = ((await import('koffi')) as any).default;
  await core.initBackend('cpu');
  const b = (await core.initBackend('cuda')) as import('../src/backend.js').CudaBackend;
  const { launches } = installEmulator(b, koffi);
  return { core, attention, b, launches };
}

/** max |got - want| / (max |want| + tiny): errors relative to the tensor's scale. */
function relErr(got: ArrayLike<number>, want: Float64Array): number {
  let e = 0;
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    e = Math.max(e, Math.abs(got[i]! - want[i]!));
    m = Math.max(m, Math.abs(want[i]!));
  }
  return e / (m + 1e-30);
}

interface Problem {
  B: number; T: number; H: number; D: number; Dv: number;
  q: Float64Array; k: Float64Array; v: Float64Array; a: Float64Array; s0: Float64Array; dO: Float64Array; dF: Float64Array;
  scale: number; cu: number[] | null;
}

/** Values as the given dtype stores them (so the float64 reference sees the kernel's inputs). */
function quantize(core: typeof import('@ring-linear/core'), dt: 'f32' | 'bf16' | 'f16', x: Float64Array): Float64Array {
  if (dt === 'f32') return Float64Array.from(Float32Array.from(x));
  return Float64Array.from(core.decodeToF32(dt, core.encodeF32(dt, x) as Uint16Array));
}

/**
 * MODEL_SPEC §2 as a recurrence in float64: S_t = lambda S_{t-1} + k_t^T v_t, o_t = s q_t S_t,
 * per sequence (cu: packed, state reset per sequence); and its backward (dLoss/dS carried back).
 */
function reference(p: Problem) {
  const { B, T, H, D, Dv, scale: s } = p;
  const seqs: [number, number, number][] = p.cu ? p.cu.slice(0, -1).map((x, i) => [0, x, p.cu![i + 1]!]) : Array.from({ length: B }, (_, b) => [b, 0, T]);
  const o = new Float64Array(B * T * H * Dv);
  const fin = new Float64Array(p.s0.length);
  const dq = new Float64Array(p.q.length), dk = new Float64Array(p.k.length), dv = new Float64Array(p.v.length);
  const ds0 = new Float64Array(p.s0.length);
  const DD = D * Dv;
  seqs.forEach(([b, t0, t1], n) => {
    for (let h = 0; h < H; h++) {
      const lam = Math.exp(-Math.fround(p.a[h]!));
      const at = (t: number, X: number) => ((b * T + t) * H + h) * X;
      const S = p.s0.slice((n * H + h) * DD, (n * H + h + 1) * DD);
      const states: Float64Array[] = [];
      for (let t = t0; t < t1; t++) {
        for (let d = 0; d < D; d++) for (let e = 0; e < Dv; e++) S[d * Dv + e] = lam * S[d * Dv + e]! + p.k[at(t, D) + d]! * p.v[at(t, Dv) + e]!;
        states.push(S.slice());
        for (let e = 0; e < Dv; e++) {
          let acc = 0;
          for (let d = 0; d < D; d++) acc += p.q[at(t, D) + d]! * S[d * Dv + e]!;
          o[at(t, Dv) + e] = s * acc;
        }
      }
      fin.set(S, (n * H + h) * DD);
      const Gr = p.dF.slice((n * H + h) * DD, (n * H + h + 1) * DD);
      for (let t = t1 - 1; t >= t0; t--) {
        const St = states[t - t0]!;
        for (let d = 0; d < D; d++) for (let e = 0; e < Dv; e++) Gr[d * Dv + e]! += s * p.q[at(t, D) + d]! * p.dO[at(t, Dv) + e]!;
        for (let d = 0; d < D; d++) {
          let aq = 0, ak = 0;
          for (let e = 0; e < Dv; e++) {
            aq += p.dO[at(t, Dv) + e]! * St[d * Dv + e]!;
            ak += Gr[d * Dv + e]! * p.v[at(t, Dv) + e]!;
          }
          dq[at(t, D) + d] = s * aq;
          dk[at(t, D) + d] = ak;
        }
        for (let e = 0; e < Dv; e++) {
          let av = 0;
          for (let d = 0; d < D; d++) av += p.k[at(t, D) + d]! * Gr[d * Dv + e]!;
          dv[at(t, Dv) + e] = av;
        }
        for (let x = 0; x < DD; x++) Gr[x]! *= lam;
      }
      ds0.set(Gr, (n * H + h) * DD);
    }
  });
  return { o, fin, dq, dk, dv, ds0 };
}

describe.skipIf(!!skip)('chunked lightning attention on the CUDA host side (mock driver + kernel models)', () => {
  it('registers CUDA kernels for lightningAttention and lightningAttentionBackward', async () => {
    const { core } = await setup();
    for (const op of OPS) expect(core.getKernel(op, 'cuda'), op).toBeDefined();
  });

  it('passes the OpInfo records of both ops against the CPU (gradients, kernel vs composite, errors)', async () => {
    const { attentionOpInfos } = await import('@ring-linear/attention/opinfo');
    const { runConformance } = await import('@ring-linear/conformance');
    const { launches } = await setup();
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    const r = await runConformance({ backend: 'cuda', reference: 'cpu', opInfos: attentionOpInfos, ops: OPS, seed, grad: true, tfjs: false, log: null, maxMessages: 3 });
    const bad = r.cases.filter((c) => c.status === 'failed' || c.status === 'unexpected-pass');
    if (bad.length) console.log(r.summary);
    console.log(`[backend-cuda] emulated lightning conformance: ${r.counts.passed} passed, ${r.counts.failed} failed, seed ${seed}`);
    expect(bad.map((c) => `${c.id}: ${c.messages[0]}`)).toEqual([]);
    expect(r.counts.passed).toBeGreaterThan(0);
    const ran = [...launches.keys()];
    for (const dt of ['f32', 'bf16', 'f16']) {
      for (const dir of ['fwd', 'rev']) {
        expect(ran).toContain(`lt_state_gen_${dt}_${dir}`);
        expect(ran).toContain(`lt_chunk_gen_${dt}_${dir}`);
      }
    }
    expect(ran).toContain('lt_scan_f32_fwd');
    expect(ran).toContain('lt_scan_bf16_rev');
  }, 600_000);

  const cases = [
    { dt: 'bf16', B: 1, T: 300, H: 2, D: 64, cu: null, tol: 2e-2, kernel: 'lt_chunk_bf16_d64_w8' },
    { dt: 'f16', B: 2, T: 70, H: 1, D: 128, cu: null, tol: 4e-3, kernel: 'lt_chunk_f16_d128_w8' },
    { dt: 'bf16', B: 1, T: 330, H: 1, D: 64, cu: [0, 5, 261, 330], tol: 2e-2, kernel: 'lt_chunk_bf16_d64_w4', warps: '4' },
    { dt: 'f16', B: 1, T: 200, H: 1, D: 128, cu: null, tol: 4e-3, kernel: 'lt_chunk_f16_d128_w16', warps: '16' },
    { dt: 'f32', B: 1, T: 150, H: 1, D: 64, cu: null, tol: 1e-5, kernel: 'lt_chunk_gen_f32' },
    { dt: 'bf16', B: 1, T: 90, H: 1, D: 64, cu: null, tol: 2e-2, kernel: 'lt_chunk_gen_bf16', env: 'general' },
  ] as const;
  for (const c of cases) {
    it(`${c.dt} B${c.B} T${c.T} H${c.H} D${c.D}${c.cu ? ` packed ${JSON.stringify(c.cu)}` : ''}${'env' in c ? ' (general path forced)' : ''}${'warps' in c ? ` (${c.warps} warps)` : ''}: forward and backward against float64`, async () => {
      const { core, attention, launches } = await setup();
      const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
      console.log(`[backend-cuda] lightning ${c.dt} T${c.T} D${c.D} seed ${seed}`);
      const { B, T, H, D } = c;
      const Dv = D;
      const N = c.cu ? c.cu.length - 1 : B;
      const dt = c.dt;
      const p: Problem = {
        B, T, H, D, Dv, scale: 1 / Math.sqrt(D), cu: c.cu ? [...c.cu] : null,
        q: quantize(core, dt, randoms(seed + 1, B * T * H * D)), k: quantize(core, dt, randoms(seed + 2, B * T * H * D)),
        v: quantize(core, dt, randoms(seed + 3, B * T * H * Dv)), dO: quantize(core, dt, randoms(seed + 4, B * T * H * Dv)),
        // Slow and fast decay: states that span many chunks and states that forget within one.
        a: Float64Array.from({ length: H }, (_, h) => Math.fround([0.01, 0.7][h % 2]!)),
        s0: Float64Array.from(Float32Array.from(randoms(seed + 5, N * H * D * Dv).map((x) => 0.5 * x))),
        dF: Float64Array.from(Float32Array.from(randoms(seed + 6, N * H * D * Dv).map((x) => 0.5 * x))),
      };
      const want = reference(p);
      const prev = process.env.RING_LINEAR_CUDA_LIGHTNING;
      if ('env' in c) process.env.RING_LINEAR_CUDA_LIGHTNING = c.env;
      if ('warps' in c) process.env.RING_LINEAR_LIGHTNING_WARPS = c.warps;
      try {
        const t = (x: Float64Array, shape: number[], d: 'f32' | 'bf16' | 'f16') => core.cast(core.tensor(Float32Array.from(x), shape, 'f32'), d);
        const q = t(p.q, [B, T, H, D], dt), k = t(p.k, [B, T, H, D], dt), v = t(p.v, [B, T, H, Dv], dt), dO = t(p.dO, [B, T, H, Dv], dt);
        const decay = t(p.a, [H], 'f32'), s0 = t(p.s0, [N, H, D, Dv], 'f32'), dF = t(p.dF, [N, H, D, Dv], 'f32');
        const attrs = { scale: p.scale, chunkSize: 64, cuSeqlens: p.cu };
        const before = launches.get(`${c.kernel}_fwd`) ?? 0;
        const [o, fin] = core.runOp('lightningAttention', [q, k, v, decay, s0], attrs);
        const [dq, dk, dv, ds0] = core.runOp('lightningAttentionBackward', [q, k, v, decay, s0, dO, dF], attrs);
        const got = async (x: import('@ring-linear/core').Tensor) => (await core.cast(x, 'f32').data()) as Float32Array;
        const errs = {
          out: relErr(await got(o!), want.o), finalState: relErr(await got(fin!), want.fin),
          dq: relErr(await got(dq!), want.dq), dk: relErr(await got(dk!), want.dk), dv: relErr(await got(dv!), want.dv),
          dInitialState: relErr(await got(ds0!), want.ds0),
        };
        console.log(`[backend-cuda] lightning ${c.dt} T${c.T} D${c.D}: ${Object.entries(errs).map(([n, e]) => `${n} ${e.toExponential(2)}`).join(', ')}`);
        for (const [n, e] of Object.entries(errs)) expect(e, n).toBeLessThan(c.tol);
        // The states are f32 sums of rounded 16-bit products: tighter than the 16-bit outputs.
        expect(errs.finalState).toBeLessThan(c.dt === 'f32' ? 1e-5 : 5e-3);
        expect(launches.get(`${c.kernel}_fwd`) ?? 0).toBeGreaterThan(before);
        expect(launches.get(`${c.kernel}_rev`) ?? 0).toBeGreaterThan(0);
        void attention;
      } finally {
        if (prev === undefined) delete process.env.RING_LINEAR_CUDA_LIGHTNING;
        else process.env.RING_LINEAR_CUDA_LIGHTNING = prev;
        delete process.env.RING_LINEAR_LIGHTNING_WARPS;
      }
    }, 300_000);
  }

  it('plans super-chunks: the longest P that still gives the output pass a block per SM', async () => {
    const { lightningPlan, superChunk } = await import('../src/ops/lightning.js');
    expect(superChunk(16384, 16, 1, 132)).toBe(2048);
    expect(superChunk(65536, 16, 1, 132)).toBe(8192);
    expect(superChunk(16384, 16, 2, 132)).toBe(4096);
    expect(superChunk(100, 16, 1, 132)).toBe(256);
    const p = lightningPlan('bf16', 1, 330, 4, 128, 128, [0, 5, 261, 330], 132, 232448);
    expect(p.mma).toBe(true);
    expect(p.segments.map((s) => [s.t0, s.Tseg, s.G, s.slotBase])).toEqual([[0, 5, 1, 0], [5, 256, 1, 1], [261, 69, 1, 2]]);
    expect(lightningPlan('bf16', 2, 10, 4, 128, 64, null, 132, 232448).mma).toBe(false);
    expect(lightningPlan('f32', 2, 10, 4, 128, 128, null, 132, 232448).mma).toBe(false);
    expect(lightningPlan('f16', 2, 10, 4, 128, 128, null, 132, 99 * 1024).mma).toBe(false);
    const g = lightningPlan('f32', 3, 130, 4, 7, 5, null, 132, 232448);
    expect([g.P, g.slots, g.segments[0]!.G]).toEqual([64, 9, 3]);
  });
});
