/**
 * The OpInfo records (@ring-linear/fp8/opinfo) of the FP8 ops that have CUDA kernels through the
 * CUDA backend's host side: the mock driver plus the JavaScript model of kernels/fp8.cuh (test/mock/emulator.ts). Checks each
 * fp8 kernel's argument planning and launch geometry by value against the CPU kernels (the
 * quantizers exactly: codes and scales), the fused kernels against their composites on 'cuda'
 * (which run the emulated rmsNorm / silu / mul kernels and the emulated quantizer), and error
 * inputs. (The other FP8 ops run composites of core ops, which emulated.test.ts covers; their
 * GEMMs are slow in the model.) The device code itself is checked on the GPU machine
 * (tools/gpu/run.ts, step fp8).
 */
import { describe, expect, it } from 'vitest';
import { buildMockCuda } from './mock/build.js';
import { installEmulator } from './mock/emulator.js';

const built = await buildMockCuda();
const skip = 'skip' in built ? built.skip : null;
if (skip) console.log(`[backend-cuda] emulated fp8 conformance skipped: ${skip}`);

const FP8_KERNELS = ['fp8Quantize', 'fp8QuantTranspose', 'fp8RmsNormQuant', 'fp8SwigluQuant'];

describe.skipIf(!!skip)('FP8 ops on the CUDA host side (mock driver + kernel model)', () => {
  it('registers CUDA kernels for the quantizers and the fused quantizing ops', async () => {
    const core = await import('@ring-linear/core');
    await import('../src/index.js');
    for (const op of FP8_KERNELS) expect(core.getKernel(op, 'cuda'), op).toBeDefined();
  });

  // v2 (the default) through the whole record set; v1 (RING_LINEAR_CUDA_FP8_KERNELS=v1, kept as
  // the fallback; the kernel model is the same, so this checks the dispatch) through the fused
  // ops' records.
  for (const [version, ops] of [['v2', FP8_KERNELS], ['v1', ['fp8QuantTranspose', 'fp8RmsNormQuant', 'fp8SwigluQuant']]] as const) {
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
      if (version === 'v1') process.env.RING_LINEAR_CUDA_FP8_KERNELS = 'v1';
      else delete process.env.RING_LINEAR_CUDA_FP8_KERNELS;
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
      // Every kernel family of this version ran, for both formats and the inputs the records use.
      const sfx = version === 'v2' ? '_v2' : '';
      const ran = [...launches.keys()].filter((k) => k.startsWith('fp8_'));
      const kinds = version === 'v2' ? ['tiles', 'rows', 'tensor', 'blocks', 'transpose', 'swiglu'] : ['transpose', 'swiglu'];
      for (const kind of kinds) {
        for (const fmt of ['e4m3', 'e5m2']) {
          for (const dt of ['f32', 'bf16']) expect(ran, `${kind} ${dt} ${fmt}`).toContain(`fp8_${kind}_${dt}_${fmt}${sfx}`);
        }
      }
      if (version === 'v2') {
        expect(ran).toContain('fp8_amax_f32');
        expect(ran).toContain('fp8_rmsnorm_bf16_f32_e4m3_v2');
        expect(ran).toContain('fp8_rmsnorm_f32_f32_e5m2_v2');
      } else {
        expect(ran).toContain('fp8_rmsnorm_bf16_f32_e4m3');
        expect(ran.filter((k) => k.endsWith('_v2'))).toEqual([]);
      }
    }, 600_000);
  }
});
