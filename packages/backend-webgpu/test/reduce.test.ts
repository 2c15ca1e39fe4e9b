// Reductions against the CPU backend: every schedule (workgroup per output, invocation per
// output, split rows), contiguous and strided axes, every accepted dtype, special values.
import { describe, it } from 'vitest';
import { getOpDef, tensor, type DType } from '@ring-linear/core';
import { newSeed, rng, webgpu } from './helpers.js';
import { compareOp, rand } from './compare.js';

const { gpu, reason } = await webgpu();

/** Sums of n terms: rounding grows with n (f32 accumulation on the GPU, f64 on the CPU). */
const sumTol = (dtype: DType): [number, number] => (dtype === 'f32' ? [1e-4, 1e-4] : dtype === 'i32' ? [0, 0] : [1e-3, dtype === 'bf16' ? 2 ** -7 : dtype === 'f16' ? 2 ** -10 : 2 ** -2]);

const CASES: { shape: number[]; axes: number[] | null; keepDims?: boolean }[] = [
  { shape: [7, 300], axes: [1] }, // workgroup per row
  { shape: [5, 9], axes: [1], keepDims: true }, // invocation per row (short)
  { shape: [300, 5], axes: [0] }, // column reduction
  { shape: [3, 4, 5, 6], axes: [0, 2] }, // strided kept and reduced dims
  { shape: [1, 1], axes: null },
  { shape: [70000], axes: null }, // split
  { shape: [6000, 3], axes: [0] },
];

describe.skipIf(!gpu)(`reductions vs CPU (${gpu?.capabilities.device ?? reason})`, () => {
  for (const op of ['sum', 'mean', 'max', 'min', 'logsumexp']) {
    it(`${op}: every accepted dtype and schedule`, async () => {
      const r = rng(newSeed(op));
      for (const dtype of getOpDef(op)!.inputs[0]!.dtypes!) {
        const cases = dtype === 'f32' || dtype === 'i32' ? CASES : CASES.slice(0, 4);
        for (const c of cases) {
          await compareOp(gpu!, op, [rand(r, c.shape, dtype, { scale: 3 })], { axes: c.axes, keepDims: c.keepDims ?? false }, sumTol);
        }
      }
    });
  }

  it('argmax / argmin: ties go to the lowest index, NaN wins', async () => {
    const r = rng(newSeed('argmax'));
    for (const op of ['argmax', 'argmin']) {
      for (const dtype of getOpDef(op)!.inputs[0]!.dtypes!) {
        const all = [[[7, 300], 1], [[300, 5], 0], [[4, 3, 5], 1], [[70000], 0]] as [number[], number][];
        for (const [shape, axis] of dtype === 'f32' || dtype === 'u8' ? all : all.slice(0, 2)) {
          await compareOp(gpu!, op, [rand(r, shape, dtype)], { axis, keepDims: false });
        }
      }
      // Ties and NaN: [3, 1, 3, NaN, 2, NaN] per row, in several positions.
      const x = tensor([3, 1, 3, 2, 3, 0, 1, 1, 1, NaN, 5, NaN, -Infinity, -Infinity, 0, 0], [4, 4], 'f32');
      await compareOp(gpu!, op, [x], { axis: 1, keepDims: true });
      await compareOp(gpu!, op, [x], { axis: 0, keepDims: false });
    }
  });

  it('special values: NaN propagates through max/min/sum, logsumexp of infinities', async () => {
    const x = tensor([1, NaN, 3, 4, -Infinity, -Infinity, -Infinity, -Infinity, Infinity, 1, 2, 3, -Infinity, 0, 1, 2], [4, 4], 'f32');
    for (const op of ['sum', 'max', 'min', 'logsumexp', 'mean']) await compareOp(gpu!, op, [x], { axes: [1], keepDims: false });
  });

  it('empty reductions (sum over a zero-length axis is 0)', async () => {
    await compareOp(gpu!, 'sum', [tensor([], [3, 0], 'f32')], { axes: [1], keepDims: false });
  });
});
