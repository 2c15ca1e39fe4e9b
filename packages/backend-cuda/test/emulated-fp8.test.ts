/**
 * The OpInfo records (@ring-linear/fp8/opinfo) of the FP8 ops that have CUDA kernels through the
 * CUDA backend's host side: the mock driver plus the JavaScript model of kernels/fp8.cuh (test/mock/emulator.ts). Checks each
 * fp8 kernel's argument planning and launch geometry by value against the CPU kernels (the
 * quantizers exactly: codes and scales), the fused kernels against their composites on 'cuda'
 * (which run the emulated rmsNorm / silu / mul kernels and the emulated quantizer), and error
 * inputs. (The other FP8 ops run composites of core ops, which emulated.test.ts covers; their
 * GEMMs are slow in the model.) The fused kernels of the fp8fused module (SwiGLU backward, group
 * RMSNorm gate with and without quantization; models in test/mock/emu_fp8fused.ts) also run at
 * shapes that exercise their host planning, against the composite and a float64 formula. The device
 * code itself is checked on the GPU machine (tools/gpu/run.ts, step fp8).
 */
import { describe, expect, it } from 'vitest';
import { buildMockCuda } from './mock/build.js';
import { installEmulator } from './mock/emulator.js';
import { randoms } from './mock/random.js';
import './mock/emu_fp8fused.js';

const built = await buildMockCuda();
const skip = 'skip' in built ? built.skip : null;
if (skip) console.log(`[backend-cuda] emulated fp8 conformance skipped: ${skip}`);

async function setup() {
  const core = await import('@ring-linear/core');
  await import('@ring-linear/backend-cpu');
  await import('../src/index.js');
  const fp8 = await import('@ring-linear/fp8');
  const attention = await import('@ring-linear/attention');
  const koffi = ((await import('koffi')) as any).default;
  await core.initBackend('cpu');
  const b = (await core.initBackend('cuda')) as import('../src/backend.js').CudaBackend;
  const { launches } = installEmulator(b, koffi);
  return { core, fp8, attention, b, launches };
}

const FP8_KERNELS = ['fp8Quantize', 'fp8QuantTranspose', 'fp8RmsNormQuant', 'fp8SwigluQuant', 'fp8SwigluBackwardQuant', 'fp8GroupRmsNormGateQuant'];

describe.skipIf(!!skip)('FP8 ops on the CUDA host side (mock driver + kernel model)', () => {
  it('registers CUDA kernels for the quantizers and the fused quantizing ops', async () => {
    const core = await import('@ring-linear/core');
    await import('../src/index.js');
    for (const op of [...FP8_KERNELS, 'groupRmsNormGate']) expect(core.getKernel(op, 'cuda'), op).toBeDefined();
  });

  // v3 (the default) through the whole record set; v3x, v2 and v1 (RING_LINEAR_CUDA_FP8_KERNELS;
  // the kernel models compute the same values, so this checks the dispatch) through the fused
  // ops' records.
  const FUSED = ['fp8QuantTranspose', 'fp8RmsNormQuant', 'fp8SwigluQuant'];
  for (const [version, ops] of [['v3', FP8_KERNELS], ['v3x', FUSED], ['v2', FUSED], ['v1', FUSED]] as const) {
    it(`passes the fp8 OpInfo records against the CPU (kernel vs composite included), ${version} kernels`, async () => {
      const core = await import('@ring-linear/core');
      await import('@ring-linear/backend-cpu');
      await import('../src/index.js');
      const { fp8OpInfos } = await import('@ring-linear/fp8/opinfo');
      const { runConformance } = await import('@ring-linear/conformance');
      const koffi = ((await import('koffi')) as any).default;
      await core.initBackend('cpu');
      const b = (await core.initBackend('cuda')) as import('../src/backend.js').CudaBackend;
      const { launches } = installEmulator(b, koffi);
      const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
      const before = process.env.RING_LINEAR_CUDA_FP8_KERNELS;
      if (version === 'v3') delete process.env.RING_LINEAR_CUDA_FP8_KERNELS;
      else process.env.RING_LINEAR_CUDA_FP8_KERNELS = version;
      let r: Awaited<ReturnType<typeof runConformance>>;
      try {
        r = await runConformance({
          backend: 'cuda', reference: 'cpu', opInfos: fp8OpInfos, ops: [...ops], seed, grad: false, tfjs: false, log: null, maxMessages: 3,
        });
      } finally {
        if (before === undefined) delete process.env.RING_LINEAR_CUDA_FP8_KERNELS;
        else process.env.RING_LINEAR_CUDA_FP8_KERNELS = before;
      }
      const bad = r.cases.filter((c) => c.status === 'failed' || c.status === 'unexpected-pass');
      if (bad.length) console.log(r.summary);
      console.log(`[backend-cuda] emulated fp8 conformance (${version}): ${r.counts.passed} passed, ${r.counts.failed} failed, seed ${seed}`);
      expect(bad.map((c) => `${c.id}: ${c.messages[0]}`)).toEqual([]);
      // Every kernel family of this version ran, for both formats and the inputs the records use
      // (v3 runs v2's kernels for the layouts and shapes it has no kernel of its own for).
      const ran = [...launches.keys()].filter((k) => k.startsWith('fp8_'));
      for (const fmt of ['e4m3', 'e5m2']) {
        for (const dt of ['f32', 'bf16']) {
          if (version === 'v3') {
            for (const kind of ['tiles', 'rows', 'tensor', 'blocks', 'swiglu', 'transpose']) expect(ran, `${kind} ${dt} ${fmt}`).toContain(`fp8_${kind}_${dt}_${fmt}_v2`);
            expect(ran).toContain(`fp8_swiglu_bwd_${dt}_${dt}_${fmt}`);
            expect(ran).toContain(`fp8_group_gate_${dt}_${dt}_f32_${fmt}`);
          } else if (version === 'v3x') {
            expect(ran).toContain(`fp8_transpose_${dt}_${fmt}_v3`);
          } else {
            for (const kind of ['transpose', 'swiglu']) expect(ran, `${kind} ${dt} ${fmt}`).toContain(`fp8_${kind}_${dt}_${fmt}${version === 'v2' ? '_v2' : ''}`);
          }
        }
      }
      if (version === 'v3') {
        expect(ran).toContain('fp8_amax_f32');
        expect(ran).toContain('fp8_rmsnorm_bf16_f32_e4m3_v2');
        expect(ran.filter((k) => /^fp8_(transpose|rmsnorm|swiglu)_.*_v3$/.test(k))).toEqual([]);
      } else if (version === 'v3x') {
        expect(ran).toContain('fp8_rmsnorm_bf16_f32_e4m3_v3');
        expect(ran).toContain('fp8_rmsnorm_f32_f32_e5m2_v3');
      } else if (version === 'v2') {
        expect(ran).toContain('fp8_rmsnorm_bf16_f32_e4m3_v2');
        expect(ran.filter((k) => k.endsWith('_v3'))).toEqual([]);
      } else {
        expect(ran).toContain('fp8_rmsnorm_bf16_f32_e4m3');
        expect(ran.filter((k) => k.endsWith('_v2') || k.endsWith('_v3'))).toEqual([]);
      }
    }, 600_000);
  }

  it('passes the groupRmsNormGate OpInfo records against the CPU (kernel vs composite included)', async () => {
    const { launches } = await setup();
    const { attentionOpInfos } = await import('@ring-linear/attention/opinfo');
    const { runConformance } = await import('@ring-linear/conformance');
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    const r = await runConformance({ backend: 'cuda', reference: 'cpu', opInfos: attentionOpInfos, ops: ['groupRmsNormGate'], seed, grad: false, tfjs: false, log: null, maxMessages: 3 });
    const bad = r.cases.filter((c) => c.status === 'failed' || c.status === 'unexpected-pass');
    if (bad.length) console.log(r.summary);
    console.log(`[backend-cuda] emulated groupRmsNormGate conformance: ${r.counts.passed} passed, ${r.counts.failed} failed, seed ${seed}`);
    expect(bad.map((c) => `${c.id}: ${c.messages[0]}`)).toEqual([]);
    expect(r.counts.passed).toBeGreaterThan(0);
    for (const dt of ['f32', 'bf16', 'f16']) expect([...launches.keys()]).toContain(`group_rms_norm_gate_${dt}_${dt}`);
  }, 600_000);

  // Shapes past the records: many groups (several batches of the kernel's group table), few large
  // groups (virtual warps spread over warps), groups not a multiple of 8 channels, rows not a
  // multiple of 8 and too long to stage, several 128-row bands, and a half of gateUp that is not a
  // multiple of 128 (or of 8).
  it('fused kernels at planning shapes: byte-equal to their composites; groupRmsNormGate against float64', async () => {
    const { core, fp8, attention, launches } = await setup();
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    console.log(`[backend-cuda] fp8 fused planning shapes, seed ${seed}`);
    type T = import('@ring-linear/core').Tensor;
    const bytes = async (ts: T[]) => Promise.all(ts.map((t) => t.bytes()));
    const same = async (name: string, op: string, run: () => T[]) => {
      const fused = await bytes(run());
      const comp = await core.withKernelsDisabled([op], () => bytes(run()));
      expect(comp.length).toBe(fused.length);
      fused.forEach((b, i) => expect(Buffer.from(b).equals(Buffer.from(comp[i]!)), `${name}: output ${i}`).toBe(true));
    };
    const gateCases: [number, number, number, 'f32' | 'bf16'][] = [[2, 600, 300, 'bf16'], [3, 1040, 2, 'f32'], [2, 36, 4, 'bf16'], [1, 8202, 1, 'bf16']];
    for (const [R, C, groups, dt] of gateCases) {
      const o = core.tensor(Float32Array.from(randoms(seed + R * C, R * C), (v) => 3 * v), [R, C], dt);
      const g = core.tensor(Float32Array.from(randoms(seed + 7, R * C), (v) => 2 * v), [R, C], dt);
      const w = core.tensor(Float32Array.from(randoms(seed + 9, C), (v) => 0.5 + Math.abs(v)), [C], 'f32');
      await same(`fp8GroupRmsNormGateQuant [${R}, ${C}] / ${groups} ${dt}`, 'fp8GroupRmsNormGateQuant', () => fp8.groupRmsNormGateQuant(o, g, w, { groups, eps: 1e-5 }));
      // groupRmsNormGate against a float64 formula (MODEL_SPEC §2.5), weight in o's dtype.
      const wd = core.cast(w, dt);
      const [ov, gv, wv] = (await Promise.all([o.data(), g.data(), wd.data()])) as Float32Array[];
      const S = C / groups;
      const want = new Float64Array(R * C);
      for (let r = 0; r < R; r++) {
        for (let g0 = 0; g0 < C; g0 += S) {
          let ss = 0;
          for (let j = 0; j < S; j++) ss += ov![r * C + g0 + j]! ** 2;
          const inv = 1 / Math.sqrt(ss / S + Math.fround(1e-5));
          for (let j = 0; j < S; j++) want[r * C + g0 + j] = (ov![r * C + g0 + j]! * inv * wv![g0 + j]!) / (1 + Math.exp(-gv![r * C + g0 + j]!));
        }
      }
      const y = attention.groupRmsNormGate(o, g, wd, { groups, eps: 1e-5 });
      expect(y.dtype).toBe(dt);
      const got = (await y.data()) as Float32Array;
      let err = 0;
      for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i]! - want[i]!) / (1e-3 + Math.abs(want[i]!)));
      expect(err, `groupRmsNormGate [${R}, ${C}] / ${groups} ${dt}`).toBeLessThan(dt === 'f32' ? 1e-5 : 8e-3);
    }
    for (const [M, I, dt] of [[130, 200, 'bf16'], [5, 12, 'f32'], [3, 131, 'bf16']] as const) {
      const gu = core.tensor(Float32Array.from(randoms(seed + M * I, M * 2 * I), (v) => 3 * v), [M, 2 * I], dt);
      const dh = core.tensor(Float32Array.from(randoms(seed + 3, M * I), (v) => 0.2 * v), [M, I], dt === 'f32' ? 'bf16' : 'f32');
      for (const [dtype, pow2Scale] of [['f8e4m3', false], ['f8e5m2', true]] as const) {
        await same(`fp8SwigluBackwardQuant [${M}, 2x${I}] ${dt} ${dtype}`, 'fp8SwigluBackwardQuant', () => fp8.swigluBackwardQuant(gu, dh, { dtype, pow2Scale }));
      }
    }
    const ran = [...launches.keys()];
    for (const k of ['fp8_group_gate_bf16_bf16_f32_e4m3', 'fp8_group_gate_f32_f32_f32_e4m3', 'group_rms_norm_gate_bf16_bf16', 'group_rms_norm_gate_f32_f32',
      'fp8_swiglu_bwd_bf16_f32_e4m3', 'fp8_swiglu_bwd_f32_bf16_e5m2']) expect(ran).toContain(k);
  }, 600_000);

  // The v3 kernels at the shapes they take (rows of 128k for tiles and SwiGLU, RMSNorm rows in
  // registers, 2-byte quant+transpose with partial blocks) and the shapes routed to v2: codes and
  // scales equal to the CPU's.
  it('v3 kernels (v3x) and their routing to v2, against the CPU', async () => {
    const { core, fp8, launches } = await setup();
    const before = process.env.RING_LINEAR_CUDA_FP8_KERNELS;
    process.env.RING_LINEAR_CUDA_FP8_KERNELS = 'v3x';
    const cpu = core.findBackend('cpu')!;
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    console.log(`[backend-cuda] fp8 v3 shapes, seed ${seed}`);
    type T = import('@ring-linear/core').Tensor;
    const check = async (name: string, run: (dev: 'cuda' | 'cpu') => T[]) => {
      const got = await Promise.all(run('cuda').map((t) => t.bytes()));
      const want = await Promise.all(run('cpu').map((t) => t.bytes()));
      got.forEach((b, i) => expect(Buffer.from(b).equals(Buffer.from(want[i]!)), `${name}: output ${i}`).toBe(true));
    };
    const on = (v: Float64Array, shape: number[], dt: 'f32' | 'bf16', dev: 'cuda' | 'cpu', scale = 3) =>
      core.tensor(Float32Array.from(v, (e) => scale * e), shape, dt, dev === 'cpu' ? cpu : undefined);
    for (const dt of ['bf16', 'f32'] as const) {
      for (const [R, K] of [[3, 256], [2, 200]] as const) {
        const xv = randoms(seed + R * K, R * K);
        await check(`tiles ${dt} [${R}, ${K}]`, (d) => fp8.quantizeRaw(on(xv, [R, K], dt, d), { layout: 'tile1x128' }));
        await check(`swiglu ${dt} [${R}, ${K}]`, (d) => fp8.swigluQuant(on(xv, [R, K], dt, d), { dtype: 'f8e5m2', pow2Scale: true }));
      }
      for (const [R, D] of [[4, 1024], [3, 200], [2, 36], [2, 131]] as const) {
        const xv = randoms(seed + D, R * D), wv = randoms(seed + 1, D);
        await check(`rmsNormQuant ${dt} [${R}, ${D}]`, (d) => fp8.rmsNormQuant(on(xv, [R, D], dt, d), on(wv, [D], 'f32', d, 1)));
      }
      for (const [M, K] of [[130, 136], [5, 12]] as const) {
        const xv = randoms(seed + M, M * K);
        await check(`quantTranspose ${dt} [${M}, ${K}]`, (d) => fp8.quantTransposeRaw(on(xv, [M, K], dt, d)));
      }
    }
    if (before === undefined) delete process.env.RING_LINEAR_CUDA_FP8_KERNELS;
    else process.env.RING_LINEAR_CUDA_FP8_KERNELS = before;
    const ran = [...launches.keys()];
    for (const k of ['fp8_tiles_bf16_e4m3_v3', 'fp8_tiles_f32_e4m3_v3', 'fp8_tiles_bf16_e4m3_v2', 'fp8_swiglu_bf16_e5m2_v3', 'fp8_swiglu_bf16_e5m2_v2',
      'fp8_rmsnorm_bf16_f32_e4m3_v3', 'fp8_rmsnorm_bf16_f32_e4m3_v2', 'fp8_transpose_bf16_e4m3_v3', 'fp8_transpose_f32_e4m3_v3']) expect(ran).toContain(k);
  }, 600_000);

  it('v3 (the default) runs its tile kernel for rows of 128k and v2 for the rest', async () => {
    const { core, fp8, launches } = await setup();
    const cpu = core.findBackend('cpu')!;
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    const xv = Float32Array.from(randoms(seed, 3 * 384), (e) => 2 * e);
    for (const dt of ['bf16', 'f32'] as const) {
      const got = await Promise.all(fp8.quantizeRaw(core.tensor(xv, [3, 384], dt), { layout: 'tile1x128' }).map((t) => t.bytes()));
      const want = await Promise.all(fp8.quantizeRaw(core.tensor(xv, [3, 384], dt, cpu), { layout: 'tile1x128' }).map((t) => t.bytes()));
      got.forEach((g, i) => expect(Buffer.from(g).equals(Buffer.from(want[i]!)), `tiles ${dt} output ${i}, seed ${seed}`).toBe(true));
      const n0 = launches.get(`fp8_transpose_${dt}_e4m3_v2`) ?? 0;
      await Promise.all(fp8.quantTransposeRaw(core.tensor(xv, [3, 384], dt)).map((t) => t.bytes()));
      expect(launches.get(`fp8_transpose_${dt}_e4m3_v2`) ?? 0).toBe(n0 + 1);
      expect(launches.get(`fp8_tiles_${dt}_e4m3_v3`) ?? 0).toBeGreaterThan(0);
    }
  }, 120_000);
});
