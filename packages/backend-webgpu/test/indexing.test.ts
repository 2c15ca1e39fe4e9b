// Indexing ops against the CPU backend: valid, negative (wrapping) and invalid indices,
// repeated scatter destinations, topk ties and NaN, cumsum in both directions.
import { describe, it } from 'vitest';
import { tensor, type DType } from '@ring-linear/core';
import { newSeed, rng, webgpu } from './helpers.js';
import { compareOp, rand } from './compare.js';

const { gpu, reason } = await webgpu();
const exact: [number, number] = [0, 0];
const DT: DType[] = ['f32', 'bf16', 'f8e4m3', 'i32', 'u8', 'bool'];

/** Indices in [-n - 2, n + 2): mostly valid, some negative, some invalid. */
function indices(r: () => number, shape: number[], n: number) {
  const size = shape.reduce((a, b) => a * b, 1);
  return tensor(Array.from({ length: size }, () => Math.floor(r() * (2 * n + 4)) - n - 2), shape, 'i32');
}

const sumTol = (d: DType): [number, number] => (d === 'f32' ? [1e-5, 1e-5] : d === 'i32' ? [0, 0] : [1e-3, d === 'bf16' ? 2 ** -7 : 2 ** -10]);

describe.skipIf(!gpu)(`indexing ops vs CPU (${gpu?.capabilities.device ?? reason})`, () => {
  it('gather, embedding, takeAlongAxis, oneHot', async () => {
    const r = rng(newSeed('gather'));
    for (const dt of DT) {
      const x = rand(r, [4, 6, 3], dt);
      await compareOp(gpu!, 'gather', [x, indices(r, [2, 5], 6)], { axis: 1 }, exact);
      await compareOp(gpu!, 'gather', [x, indices(r, [7], 4)], { axis: 0 }, exact);
      await compareOp(gpu!, 'takeAlongAxis', [x, indices(r, [4, 9, 3], 6)], { axis: 1 }, exact);
    }
    await compareOp(gpu!, 'embedding', [indices(r, [3, 5], 10), rand(r, [10, 7], 'bf16')], undefined, exact);
    for (const dt of ['f32', 'f16', 'i32', 'u8', 'bool'] as DType[]) {
      await compareOp(gpu!, 'oneHot', [indices(r, [3, 4], 5)], { depth: 5, dtype: dt }, exact);
    }
  });

  it('scatterAdd and scatterAddAlongAxis (repeats accumulate, invalid indices skipped)', async () => {
    const r = rng(newSeed('scatter'));
    for (const dt of ['f32', 'bf16', 'f16', 'i32'] as DType[]) {
      const x = rand(r, [3, 5, 4], dt);
      await compareOp(gpu!, 'scatterAdd', [x, indices(r, [9], 5), rand(r, [3, 9, 4], dt)], { axis: 1 }, sumTol);
      await compareOp(gpu!, 'scatterAdd', [rand(r, [50, 3], dt), indices(r, [300], 50), rand(r, [300, 3], dt)], { axis: 0 }, sumTol);
      await compareOp(gpu!, 'scatterAddAlongAxis', [x, indices(r, [3, 7, 4], 5), rand(r, [3, 7, 4], dt)], { axis: 1 }, sumTol);
    }
  });

  it('topk: sorted, stable ties, NaN first (largest) or last (smallest)', async () => {
    const r = rng(newSeed('topk'));
    for (const dt of ['f32', 'bf16', 'i32', 'u8'] as DType[]) {
      for (const largest of [true, false]) {
        await compareOp(gpu!, 'topk', [rand(r, [5, 40], dt)], { k: 7, axis: 1, largest }, exact);
        await compareOp(gpu!, 'topk', [rand(r, [6, 3, 2], dt)], { k: 6, axis: 0, largest }, exact);
      }
    }
    const x = tensor([1, NaN, 3, 3, -0, 0, NaN, -Infinity, 3, 1, 2, 0], [2, 6], 'f32');
    for (const largest of [true, false]) await compareOp(gpu!, 'topk', [x], { k: 6, axis: 1, largest }, exact);
    await compareOp(gpu!, 'topk', [x], { k: 0, axis: 1, largest: true }, exact);
  });

  it('cumsum: inclusive/exclusive, forward/reverse, per-line and per-workgroup schedules', async () => {
    const r = rng(newSeed('cumsum'));
    for (const dt of ['f32', 'bf16', 'i32'] as DType[]) {
      for (const exclusive of [false, true]) {
        for (const reverse of [false, true]) {
          await compareOp(gpu!, 'cumsum', [rand(r, [4, 9, 3], dt)], { axis: 1, exclusive, reverse }, sumTol);
          await compareOp(gpu!, 'cumsum', [rand(r, [2, 3000], dt)], { axis: 1, exclusive, reverse }, (d) => (d === 'f32' ? [1e-3, 1e-4] : sumTol(d)));
        }
      }
    }
  });
});
