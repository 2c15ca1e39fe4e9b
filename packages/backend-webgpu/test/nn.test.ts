// nn and creation ops against the CPU backend; random uniform draws bit for bit.
import { describe, it } from 'vitest';
import { tensor, type DType } from '@ring-linear/core';
import { newSeed, rng, webgpu } from './helpers.js';
import { compareOp, rand } from './compare.js';

const { gpu, reason } = await webgpu();
// Computed in f32 on the GPU (float64 on the CPU), rounded once to the storage dtype.
const tol = (d: DType): [number, number] => (d === 'f32' ? [1e-6, 1e-5] : d === 'bf16' ? [1e-6, 2 ** -7] : d === 'f16' ? [1e-6, 2 ** -10] : [2 ** -9, 2 ** -2]);

describe.skipIf(!gpu)(`nn and creation ops vs CPU (${gpu?.capabilities.device ?? reason})`, () => {
  it('softmax and logSoftmax along the last and inner axes, every float dtype', async () => {
    const r = rng(newSeed('softmax'));
    for (const op of ['softmax', 'logSoftmax']) {
      for (const dt of ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2'] as DType[]) {
        await compareOp(gpu!, op, [rand(r, [5, 37], dt, { scale: 3 })], { axis: -1 }, tol);
        await compareOp(gpu!, op, [rand(r, [3, 300, 2], dt, { scale: 3 })], { axis: 1 }, tol);
      }
      // -inf entries, an all -inf row, a row with +inf, a row with NaN
      const x = tensor([1, -Infinity, 2, 0, -Infinity, -Infinity, -Infinity, -Infinity, 1, Infinity, 2, 3, 1, NaN, 2, 3], [4, 4], 'f32');
      await compareOp(gpu!, op, [x], { axis: 1 }, tol);
    }
  });

  it('rmsNorm with mixed x / weight dtypes', async () => {
    const r = rng(newSeed('rmsNorm'));
    for (const [dx, dw] of [['f32', 'f32'], ['bf16', 'f32'], ['f16', 'bf16'], ['f32', 'f8e4m3']] as [DType, DType][]) {
      await compareOp(gpu!, 'rmsNorm', [rand(r, [6, 300], dx), rand(r, [300], dw)], { eps: 1e-5 }, tol);
      await compareOp(gpu!, 'rmsNorm', [rand(r, [2, 3, 7], dx), rand(r, [7], dw)], { eps: 1e-6 }, tol);
    }
  });

  it('crossEntropy: every reduction, ignored and out-of-range targets', async () => {
    const r = rng(newSeed('crossEntropy'));
    for (const dt of ['f32', 'bf16'] as DType[]) {
      const logits = rand(r, [2, 5, 40], dt, { scale: 2 });
      const targets = tensor([3, -100, 39, 40, 0, 7, -1, 12, 5, 5], [2, 5], 'i32');
      for (const reduction of ['none', 'sum', 'mean']) {
        await compareOp(gpu!, 'crossEntropy', [logits, targets], { ignoreIndex: -100, reduction }, [1e-5, 1e-5]);
      }
      const allIgnored = tensor([-100, -100], [2], 'i32');
      await compareOp(gpu!, 'crossEntropy', [rand(r, [2, 7], dt), allIgnored], { ignoreIndex: -100, reduction: 'mean' }, [0, 0]);
    }
  });

  it('arange and causalMask', async () => {
    for (const dt of ['f32', 'bf16', 'i32'] as DType[]) {
      await compareOp(gpu!, 'arange', [], { start: dt === 'i32' ? -3 : -1.5, stop: 40, step: dt === 'i32' ? 3 : 0.7, dtype: dt }, [0, 0]);
    }
    for (const offset of [0, 3, -2]) await compareOp(gpu!, 'causalMask', [], { rows: 5, cols: 9, offset }, [0, 0]);
  });

  it('randomUniform matches the CPU bit for bit; randomNormal to float rounding', async () => {
    const seed = newSeed('philox');
    const r = rng(seed);
    const key = () => Math.floor(r() * 2 ** 32);
    for (const dt of ['f32', 'bf16', 'f8e4m3'] as DType[]) {
      const philox = { key0: key(), key1: key(), counterLo: 0xffffff00 + Math.floor(r() * 200), counterHi: key() };
      await compareOp(gpu!, 'randomUniform', [], { shape: [37, 11], dtype: dt, low: -2.5, high: 7.25, ...philox }, [0, 0]);
      await compareOp(gpu!, 'randomNormal', [], { shape: [501], dtype: dt, mean: 0.5, std: 2, ...philox }, dt === 'f32' ? [2e-5, 2e-5] : tol(dt));
    }
  });
});
