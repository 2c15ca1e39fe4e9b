/**
 * The conformance suite on the CUDA backend's host side: the mock driver (host memory, the mock
 * cuBLASLt computes real GEMMs) plus a JavaScript model of each kernel (test/mock/emulator.ts).
 * Every op's argument planning, temporaries, strides and launch geometry is thereby checked by
 * value against the CPU reference, on a machine without a GPU. Gradient and tfjs checks are off
 * (they exercise the same kernels again, slowly, through the model).
 */
import { describe, expect, it } from 'vitest';
import { buildMockCuda } from './mock/build.js';
import { installEmulator } from './mock/emulator.js';

const built = await buildMockCuda();
const skip = 'skip' in built ? built.skip : null;
if (skip) console.log(`[backend-cuda] emulated conformance skipped: ${skip}`);

describe.skipIf(!!skip)('conformance of the CUDA host side (mock driver + kernel model)', () => {
  it('passes for every op and dtype', async () => {
    const core = await import('@ring-linear/core');
    await import('@ring-linear/backend-cpu');
    await import('../src/index.js');
    const { runConformance } = await import('@ring-linear/conformance');
    const koffi = ((await import('koffi')) as any).default;
    await core.initBackend('cpu');
    const b = (await core.initBackend('cuda')) as import('../src/backend.js').CudaBackend;
    const { launches } = installEmulator(b, koffi);
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    const r = await runConformance({ backend: 'cuda', reference: 'cpu', seed, grad: false, tfjs: false, log: null, maxMessages: 3 });
    const bad = r.cases.filter((c) => c.status === 'failed' || c.status === 'unexpected-pass');
    if (bad.length) console.log(r.summary);
    console.log(`[backend-cuda] emulated conformance: ${r.counts.passed} passed, ${r.counts.failed} failed, seed ${seed}, ${launches.size} distinct kernels`);
    expect(bad.map((c) => `${c.id}: ${c.messages[0]}`)).toEqual([]);
    expect(launches.size).toBeGreaterThan(100);
  }, 600_000);
});
