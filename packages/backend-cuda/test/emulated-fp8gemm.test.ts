/**
 * fp8Gemm and fp8GroupedGemm (src/ops/fp8_gemm.ts) through the CUDA backend's host side: the mock
 * driver, whose cuBLASLt computes FP8 GEMMs with the block-scale modes from the layouts and scale
 * pointers it is given (test/mock/mockcuda.c), plus the JavaScript model of kernels/fp8gemm.cuh
 * (test/mock/emu_fp8gemm.ts). The OpInfo records (@ring-linear/fp8/opinfo) run against the CPU;
 * then shapes that reach the cuBLASLt mapping (scale transposes, padded block-scale rows, both b
 * layouts, every output dtype) and the own kernel (forced with RING_LINEAR_FP8GEMM=own, E5M2 x
 * E5M2, unaligned K), and grouped problems with empty experts, several row tiles per expert and
 * rows in no segment, against float64 formulas written here. The device code itself is checked on
 * the GPU machine (tools/gpu/steps/fp8gemm.ts).
 */
import { describe, expect, it } from 'vitest';
import { buildMockCuda } from './mock/build.js';
import { installEmulator } from './mock/emulator.js';
import { uniforms } from './mock/random.js';
import './mock/emu_fp8gemm.js';

const built = await buildMockCuda();
const skip = 'skip' in built ? built.skip : null;
if (skip) console.log(`[backend-cuda] emulated fp8 GEMM skipped: ${skip}`);

const OPS = ['fp8Gemm', 'fp8GroupedGemm'];
type Fp8 = 'f8e4m3' | 'f8e5m2';
type Out = 'f32' | 'bf16' | 'f16';

async function setup() {
  const core = await import('@ring-linear/core');
  await import('@ring-linear/backend-cpu');
  await import('../src/index.js');
  const fp8 = await import('@ring-linear/fp8');
  const { fp8GemmCalls } = await import('../src/ops/fp8_gemm.js');
  const koffi = ((await import('koffi')) as any).default;
  await core.initBackend('cpu');
  const b = (await core.initBackend('cuda')) as import('../src/backend.js').CudaBackend;
  const { launches } = installEmulator(b, koffi);
  return { core, fp8, b, launches, calls: fp8GemmCalls };
}

/** Finite FP8 values (decoded random codes, NaN/inf codes skipped) and positive scales. */
function fp8Values(core: typeof import('@ring-linear/core'), seed: number, n: number, d: Fp8): Float32Array {
  const u = uniforms(seed, n);
  const bytes = Uint8Array.from(u, (x) => {
    const c = Math.floor(x * 256);
    // E4M3: 0x7f/0xff are NaN (exponent kept even, below 15); E5M2: exponent 31 is inf/NaN (kept in 12..17).
    return d === 'f8e4m3' ? c & 0xf7 : (c & 0x83) | ((12 + ((c >> 2) % 6)) << 2);
  });
  return core.decodeToF32(d, bytes);
}
const scalesOf = (seed: number, n: number, base: number) => Float32Array.from(uniforms(seed, n), (x) => Math.fround(base * (0.5 + x)));

/** float64 y = sum_t (sum_k a b) sa sb, and the magnitude (the same with |terms|). */
function reference(A: Float32Array, SA: Float32Array, B: Float32Array, SB: Float32Array, M: number, N: number, K: number, blockB: boolean, rows?: [number, number]) {
  const KT = Math.ceil(K / 128);
  const y = new Float64Array(M * N), mag = new Float64Array(M * N);
  for (let m = rows ? rows[0] : 0; m < (rows ? rows[1] : M); m++) {
    for (let n = 0; n < N; n++) {
      for (let t = 0; t < KT; t++) {
        const s = SA[m * KT + t]! * SB[(blockB ? Math.floor(n / 128) : n) * KT + t]!;
        for (let k = t * 128; k < Math.min(K, t * 128 + 128); k++) {
          const p = A[m * K + k]! * B[n * K + k]! * s;
          y[m * N + n] += p;
          mag[m * N + n] += Math.abs(p);
        }
      }
    }
  }
  return { y, mag };
}

/** Worst |got - want| / (step * |want| + 1e-5 * magnitude + tiny), where step is the output's rounding. */
function worst(got: Float32Array, want: Float64Array, mag: Float64Array, out: Out): number {
  const step = out === 'f32' ? 2 ** -23 : out === 'bf16' ? 2 ** -8 : 2 ** -11;
  let w = 0;
  for (let i = 0; i < want.length; i++) w = Math.max(w, Math.abs(got[i]! - want[i]!) / (step * Math.abs(want[i]!) + 1e-5 * mag[i]! + 1e-30));
  return w;
}

describe.skipIf(!!skip)('block-scaled FP8 GEMMs on the CUDA host side (mock driver + cuBLASLt mock + kernel model)', () => {
  it('registers CUDA kernels for fp8Gemm and fp8GroupedGemm', async () => {
    const { core } = await setup();
    for (const op of OPS) expect(core.getKernel(op, 'cuda'), op).toBeDefined();
  });

  it('passes the OpInfo records of both ops against the CPU (kernel vs composite, errors)', async () => {
    const { fp8OpInfos } = await import('@ring-linear/fp8/opinfo');
    const { runConformance } = await import('@ring-linear/conformance');
    const { launches } = await setup();
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    const r = await runConformance({ backend: 'cuda', reference: 'cpu', opInfos: fp8OpInfos, ops: OPS, seed, grad: false, tfjs: false, log: null, maxMessages: 3 });
    const bad = r.cases.filter((c) => c.status === 'failed' || c.status === 'unexpected-pass');
    if (bad.length) console.log(r.summary);
    console.log(`[backend-cuda] emulated fp8 GEMM conformance: ${r.counts.passed} passed, ${r.counts.failed} failed, seed ${seed}`);
    expect(bad.map((c) => `${c.id}: ${c.messages[0]}`)).toEqual([]);
    expect(r.counts.passed).toBeGreaterThan(0);
    const ran = [...launches.keys()];
    // The records' shapes (K not a multiple of 16) all take the own kernel (mma.sync by default).
    for (const k of ['fp8gemm_e4m3_e4m3_f32', 'fp8gemm_e5m2_e5m2_bf16', 'fp8gemm_grouped_e4m3_e4m3_f32', 'fp8gemm_grouped_e5m2_e4m3_f32']) expect(ran).toContain(k);
  }, 600_000);

  const gemmCases: { M: number; N: number; K: number; a: Fp8; b: Fp8; out: Out; layout: 'block128x128' | 'tile1x128' }[] = [
    // KT = 3: the block scales' rows are padded to 4 for cuBLASLt.
    { M: 7, N: 144, K: 272, a: 'f8e4m3', b: 'f8e4m3', out: 'bf16', layout: 'block128x128' },
    { M: 130, N: 32, K: 512, a: 'f8e4m3', b: 'f8e5m2', out: 'f32', layout: 'block128x128' },
    { M: 3, N: 272, K: 160, a: 'f8e5m2', b: 'f8e4m3', out: 'f16', layout: 'tile1x128' },
    { M: 1, N: 16, K: 16, a: 'f8e4m3', b: 'f8e4m3', out: 'f32', layout: 'tile1x128' },
  ];

  it('fp8Gemm through cuBLASLt: scale layouts, both b layouts, every output dtype, against float64', async () => {
    const { core, fp8, calls } = await setup();
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    console.log(`[backend-cuda] fp8Gemm cuBLASLt seed ${seed}`);
    for (const [i, c] of gemmCases.entries()) {
      const KT = Math.ceil(c.K / 128);
      const NB = c.layout === 'block128x128' ? Math.ceil(c.N / 128) : c.N;
      const A = fp8Values(core, seed + 10 * i, c.M * c.K, c.a), B = fp8Values(core, seed + 10 * i + 1, c.N * c.K, c.b);
      const SA = scalesOf(seed + 10 * i + 2, c.M * KT, 1e-2), SB = scalesOf(seed + 10 * i + 3, NB * KT, 1e-3);
      const before = calls.cublasLt;
      const y = fp8.fp8GemmRaw(core.tensor(A, [c.M, c.K], c.a), core.tensor(SA, [c.M, KT], 'f32'), core.tensor(B, [c.N, c.K], c.b), core.tensor(SB, [NB, KT], 'f32'), {
        bLayout: c.layout, outDtype: c.out,
      });
      expect(calls.cublasLt, `cuBLASLt took ${JSON.stringify(c)}`).toBe(before + 1);
      const { y: want, mag } = reference(A, SA, B, SB, c.M, c.N, c.K, c.layout === 'block128x128');
      expect(worst((await core.cast(y, 'f32').data()) as Float32Array, want, mag, c.out), JSON.stringify(c)).toBeLessThanOrEqual(1);
    }
  }, 120_000);

  it('fp8Gemm on the own kernels (mma.sync, and wgmma with RING_LINEAR_FP8GEMM_MMA=wg): forced (RING_LINEAR_FP8GEMM=own), E5M2 x E5M2, unaligned K, several tiles, against float64', async () => {
    const { core, fp8, calls, launches } = await setup();
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    console.log(`[backend-cuda] fp8Gemm own kernel seed ${seed}`);
    const cases = [
      ...gemmCases.map((c) => ({ ...c, force: true })),
      { M: 5, N: 48, K: 64, a: 'f8e5m2' as Fp8, b: 'f8e5m2' as Fp8, out: 'bf16' as Out, layout: 'block128x128' as const, force: false },
      { M: 140, N: 131, K: 135, a: 'f8e4m3' as Fp8, b: 'f8e4m3' as Fp8, out: 'f32' as Out, layout: 'tile1x128' as const, force: false },
    ];
    const prev = process.env.RING_LINEAR_FP8GEMM;
    try {
      for (const [i, c] of [...cases, ...cases].entries()) {
        // Second round: the wgmma kernels (the mock's device is an sm_90a).
        if (i >= cases.length) process.env.RING_LINEAR_FP8GEMM_MMA = 'wg';
        if (c.force) process.env.RING_LINEAR_FP8GEMM = 'own';
        else delete process.env.RING_LINEAR_FP8GEMM;
        const KT = Math.ceil(c.K / 128);
        const NB = c.layout === 'block128x128' ? Math.ceil(c.N / 128) : c.N;
        const A = fp8Values(core, seed + 10 * i, c.M * c.K, c.a), B = fp8Values(core, seed + 10 * i + 1, c.N * c.K, c.b);
        const SA = scalesOf(seed + 10 * i + 2, c.M * KT, 1e-2), SB = scalesOf(seed + 10 * i + 3, NB * KT, 1e-3);
        const [own, lt] = [calls.own, calls.cublasLt];
        const y = fp8.fp8GemmRaw(core.tensor(A, [c.M, c.K], c.a), core.tensor(SA, [c.M, KT], 'f32'), core.tensor(B, [c.N, c.K], c.b), core.tensor(SB, [NB, KT], 'f32'), {
          bLayout: c.layout, outDtype: c.out,
        });
        expect([calls.own - own, calls.cublasLt - lt], `own kernel took ${JSON.stringify(c)}`).toEqual([1, 0]);
        const { y: want, mag } = reference(A, SA, B, SB, c.M, c.N, c.K, c.layout === 'block128x128');
        expect(worst((await core.cast(y, 'f32').data()) as Float32Array, want, mag, c.out), JSON.stringify(c)).toBeLessThanOrEqual(1);
      }
    } finally {
      if (prev === undefined) delete process.env.RING_LINEAR_FP8GEMM;
      else process.env.RING_LINEAR_FP8GEMM = prev;
      delete process.env.RING_LINEAR_FP8GEMM_MMA;
    }
    expect([...launches.keys()]).toEqual(expect.arrayContaining([
      'fp8gemm_wg_e5m2_e5m2_bf16', 'fp8gemm_wg_e4m3_e4m3_f32', 'fp8gemm_wg_e5m2_e4m3_f16', 'fp8gemm_e5m2_e5m2_bf16', 'fp8gemm_e4m3_e4m3_f32', 'fp8gemm_e5m2_e4m3_f16',
    ]));
  }, 120_000);

  it('fp8GroupedGemm: empty experts, several row tiles per expert, rows in no segment, against float64', async () => {
    const { core, fp8, launches } = await setup();
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    console.log(`[backend-cuda] fp8GroupedGemm seed ${seed}`);
    const cases = [
      { M: 300, N: 136, K: 144, offsets: [5, 5, 200, 290], a: 'f8e4m3' as Fp8, b: 'f8e4m3' as Fp8, out: 'bf16' as Out },
      { M: 9, N: 20, K: 130, offsets: [0, 2, 2, 9], a: 'f8e5m2' as Fp8, b: 'f8e5m2' as Fp8, out: 'f32' as Out },
      { M: 4, N: 8, K: 32, offsets: [0, 0], a: 'f8e4m3' as Fp8, b: 'f8e5m2' as Fp8, out: 'f16' as Out },
    ];
    for (const [i, c] of [...cases, ...cases].entries()) {
      // Second round: the wgmma kernels (the mock's device is an sm_90a).
      if (i >= cases.length) process.env.RING_LINEAR_FP8GEMM_MMA = 'wg';
      const E = c.offsets.length - 1;
      const KT = Math.ceil(c.K / 128), NB = Math.ceil(c.N / 128);
      const A = fp8Values(core, seed + 10 * i, c.M * c.K, c.a), B = fp8Values(core, seed + 10 * i + 1, E * c.N * c.K, c.b);
      const SA = scalesOf(seed + 10 * i + 2, c.M * KT, 1e-2), SB = scalesOf(seed + 10 * i + 3, E * NB * KT, 1e-3);
      // The output buffer may hold old values: fill the pool with a result first so zeros are written, not found.
      core.dispose(core.full([c.M, c.N], 7, c.out));
      const y = fp8.fp8GroupedGemmRaw(core.tensor(A, [c.M, c.K], c.a), core.tensor(SA, [c.M, KT], 'f32'), core.tensor(B, [E, c.N, c.K], c.b),
        core.tensor(SB, [E, NB, KT], 'f32'), core.tensor(Int32Array.from(c.offsets), [E + 1], 'i32'), { outDtype: c.out });
      const want = new Float64Array(c.M * c.N), mag = new Float64Array(c.M * c.N);
      for (let e = 0; e < E; e++) {
        const r = reference(A, SA, B.subarray(e * c.N * c.K), SB.subarray(e * NB * KT), c.M, c.N, c.K, true, [c.offsets[e]!, c.offsets[e + 1]!]);
        for (let j = 0; j < want.length; j++) {
          want[j] += r.y[j]!;
          mag[j] += r.mag[j]!;
        }
      }
      const got = (await core.cast(y, 'f32').data()) as Float32Array;
      expect(worst(got, want, mag, c.out), JSON.stringify(c)).toBeLessThanOrEqual(1);
      // Rows in no segment are exact zeros.
      const zeroRows = [...Array(c.M).keys()].filter((r) => r < c.offsets[0]! || r >= c.offsets[E]!);
      for (const r of zeroRows) expect(Array.from(got.subarray(r * c.N, (r + 1) * c.N)).every((v) => v === 0), `row ${r} of ${JSON.stringify(c)}`).toBe(true);
    }
    delete process.env.RING_LINEAR_FP8GEMM_MMA;
    expect([...launches.keys()]).toEqual(expect.arrayContaining([
      'fp8gemm_grouped_e4m3_e4m3_bf16', 'fp8gemm_grouped_e5m2_e5m2_f32', 'fp8gemm_grouped_e4m3_e5m2_f16',
      'fp8gemm_grouped_wg_e4m3_e4m3_bf16', 'fp8gemm_grouped_wg_e5m2_e5m2_f32', 'fp8gemm_grouped_wg_e4m3_e5m2_f16',
    ]));
  }, 120_000);
});
