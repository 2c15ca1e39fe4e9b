// The shared-memory fallback of the workgroup reductions (adapters without subgroups): a second
// backend on its own device with subgroups turned off, against the CPU backend.
import { afterAll, describe, it } from 'vitest';
import { tensor, type DType } from '@ring-linear/core';
import { createWebGpuBackend, type WebGpuBackend } from '../src/index.js';
import { newSeed, rng, webgpu } from './helpers.js';
import { compareOp, rand } from './compare.js';

const { gpu, reason } = await webgpu();
let plain: WebGpuBackend | null = null;
let device: GPUDevice | null = null;
if (gpu) {
  device = await (await gpu.gpu!.requestAdapter())!.requestDevice({
    requiredLimits: { maxStorageBufferBindingSize: gpu.limits.maxStorageBufferBindingSize, maxBufferSize: gpu.limits.maxBufferSize },
  });
  plain = await createWebGpuBackend({ device, subgroups: false });
}
const tol = (d: DType): [number, number] => (d === 'f32' ? [1e-4, 1e-4] : d === 'i32' ? [0, 0] : [1e-3, 2 ** -7]);

describe.skipIf(!gpu)(`workgroup reductions without subgroups (${gpu?.capabilities.device ?? reason})`, () => {
  afterAll(async () => {
    await plain?.dispose();
    device?.destroy();
  });

  it('uses the fallback', async () => {
    if (plain!.hasSubgroups) throw new Error('subgroups should be off');
  });

  it('reductions, softmax, rmsNorm, crossEntropy, topk, cumsum match the CPU', async () => {
    const r = rng(newSeed('no subgroups'));
    const b = plain!;
    for (const op of ['sum', 'max', 'logsumexp', 'mean']) {
      await compareOp(b, op, [rand(r, [7, 300], 'f32', { scale: 3 })], { axes: [1], keepDims: false }, tol);
      await compareOp(b, op, [rand(r, [70000], 'bf16')], { axes: null, keepDims: false }, tol);
    }
    await compareOp(b, 'argmax', [rand(r, [5, 200], 'i32')], { axis: 1, keepDims: false }, [0, 0]);
    await compareOp(b, 'argmin', [tensor([3, NaN, 1, 1, 0, 0, 2, NaN], [2, 4], 'f32')], { axis: 1, keepDims: false }, [0, 0]);
    await compareOp(b, 'softmax', [rand(r, [4, 333], 'f32', { scale: 4 })], { axis: -1 }, [1e-6, 1e-5]);
    await compareOp(b, 'logSoftmax', [rand(r, [3, 100, 2], 'bf16')], { axis: 1 }, tol);
    await compareOp(b, 'rmsNorm', [rand(r, [5, 129], 'f32'), rand(r, [129], 'f32')], { eps: 1e-6 }, [1e-6, 1e-5]);
    await compareOp(b, 'crossEntropy', [rand(r, [6, 50], 'f32'), tensor([1, 2, -100, 49, 0, 7], [6], 'i32')], { ignoreIndex: -100, reduction: 'mean' }, [1e-5, 1e-5]);
    await compareOp(b, 'topk', [rand(r, [4, 90], 'f32')], { k: 5, axis: 1, largest: true }, [0, 0]);
  });
});
