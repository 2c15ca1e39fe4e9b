// Data-movement ops against the CPU backend: exact for every dtype (codes are copied).
import { describe, it } from 'vitest';
import type { DType } from '@ring-linear/core';
import { newSeed, rng, webgpu } from './helpers.js';
import { compareOp, rand } from './compare.js';

const { gpu, reason } = await webgpu();
const ALL: DType[] = ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2', 'i32', 'u8', 'bool'];
const exact: [number, number] = [0, 0];

describe.skipIf(!gpu)(`shape ops vs CPU (${gpu?.capabilities.device ?? reason})`, () => {
  it('transpose, slice, split, pad, flip, tile, concat for every dtype', async () => {
    const r = rng(newSeed('shape ops'));
    for (const dt of ALL) {
      const x = rand(r, [3, 5, 7], dt);
      await compareOp(gpu!, 'transpose', [x], { perm: [2, 0, 1] }, exact);
      await compareOp(gpu!, 'transpose', [rand(r, [1, 6, 1, 9], dt)], { perm: [3, 1, 0, 2] }, exact);
      await compareOp(gpu!, 'slice', [x], { begin: [1, 0, 2], size: [2, -1, 3] }, exact);
      await compareOp(gpu!, 'split', [x], { sizes: [2, -1, 3], axis: 2 }, exact);
      await compareOp(gpu!, 'pad', [x], { paddings: [[1, 0], [0, 2], [3, 1]], value: 2.5 }, exact);
      await compareOp(gpu!, 'flip', [x], { axes: [0, 2] }, exact);
      await compareOp(gpu!, 'tile', [rand(r, [2, 3], dt)], { reps: [3, 2] }, exact);
      await compareOp(gpu!, 'concat', [rand(r, [3, 1, 7], dt), x, rand(r, [3, 0, 7], dt), rand(r, [3, 2, 7], dt)], { axis: 1 }, exact);
      await compareOp(gpu!, 'concat', [rand(r, [5], dt), rand(r, [3], dt)], { axis: 0 }, exact);
    }
  });

  it('rank-0, size-1 and long rows', async () => {
    const r = rng(newSeed('shape edge'));
    await compareOp(gpu!, 'transpose', [rand(r, [], 'f32')], { perm: [] }, exact);
    await compareOp(gpu!, 'slice', [rand(r, [1000, 3], 'bf16')], { begin: [17, 1], size: [900, 2] }, exact);
    await compareOp(gpu!, 'pad', [rand(r, [0, 2], 'u8')], { paddings: [[2, 1], [0, 1]], value: 7 }, exact);
    await compareOp(gpu!, 'transpose', [rand(r, [2, 3, 4, 5, 6, 7, 2], 'f32')], { perm: [6, 5, 4, 3, 2, 1, 0] }, exact);
  });
});
