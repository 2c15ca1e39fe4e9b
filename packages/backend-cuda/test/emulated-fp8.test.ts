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

  it('passes the fp8 OpInfo records against the CPU (kernel vs composite included)', async () => {
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
    const r = await runConformance({
      backend: 'cuda', reference: 'cpu', opInfos: fp8OpInfos, ops: FP8_KERNELS, seed, grad: false, tfjs: false, log: null, maxMessages: 3,
    });
    const bad = r.cases.filter((c) => c.status === 'failed' || c.status === 'unexpected-pass');
    if (bad.length) console.log(r.summary);
    console.log(`[backend-cuda] emulated fp8 conformance: ${r.counts.passed} passed, ${r.counts.failed} failed, seed ${seed}`);
    expect(bad.map((c) => `${c.id}: ${c.messages[0]}`)).toEqual([]);
    // Every fp8 kernel family ran, for both formats and the inputs the records use.
    const ran = [...launches.keys()].filter((k) => k.startsWith('fp8_'));
    for (const kind of ['tiles', 'rows', 'tensor', 'blocks', 'transpose', 'swiglu']) {
      for (const fmt of ['e4m3', 'e5m2']) {
        for (const dt of ['f32', 'bf16']) expect(ran, `${kind} ${dt} ${fmt}`).toContain(`fp8_${kind}_${dt}_${fmt}`);
      }
    }
    expect(ran).toContain('fp8_amax_f32');
    expect(ran).toContain('fp8_rmsnorm_bf16_f32_e4m3');
    expect(ran).toContain('fp8_rmsnorm_f32_f32_e5m2');
  }, 600_000);
});
