// Matmul against the CPU backend: vec4 and scalar load paths, all transpose variants, batch
// broadcasting, odd sizes and size-1 dims, every float dtype.
import { describe, it } from 'vitest';
import { FLOAT_DTYPES, type DType } from '@ring-linear/core';
import { newSeed, rng, webgpu } from './helpers.js';
import { compareOp, rand } from './compare.js';

const { gpu, reason } = await webgpu();

// f32 sums of K products: the GPU's order and fma differ from the CPU's float64 accumulation.
const tol = (dtype: DType): [number, number] =>
  dtype === 'f32' ? [1e-4, 1e-4] : dtype === 'bf16' ? [1e-3, 2 ** -7] : dtype === 'f16' ? [1e-3, 2 ** -10] : [2 ** -6, 2 ** -2];

function shapes(M: number, N: number, K: number, tA: boolean, tB: boolean, ba: number[] = [], bb: number[] = []) {
  return { a: [...ba, ...(tA ? [K, M] : [M, K])], b: [...bb, ...(tB ? [N, K] : [K, N])] };
}

describe.skipIf(!gpu)(`matmul vs CPU (${gpu?.capabilities.device ?? reason})`, () => {
  it('f32: every transpose variant, vec4 and scalar paths, odd sizes', async () => {
    const r = rng(newSeed('matmul f32'));
    // Odd sizes (scalar loads, edge tiles), multiples of 4 and of the tile (vec4 loads, no bounds
    // checks), size-1 dims.
    const sizes: [number, number, number][] = [[37, 45, 29], [64, 32, 16], [5, 1, 1]];
    for (const [M, N, K] of sizes) {
      for (const tA of M === 5 ? [false] : [false, true]) {
        for (const tB of M === 5 ? [true] : [false, true]) {
          const s = shapes(M, N, K, tA, tB);
          await compareOp(gpu!, 'matmul', [rand(r, s.a, 'f32'), rand(r, s.b, 'f32')], { transposeA: tA, transposeB: tB }, tol);
        }
      }
    }
  });

  it('batched with broadcast batch dims', async () => {
    const r = rng(newSeed('matmul batch'));
    const cases: [number[], number[]][] = [[[3], [3]], [[2, 1], [1, 4]], [[], [5]], [[4, 2], [2]]];
    for (const [ba, bb] of cases) {
      for (const [tA, tB] of [[false, false], [true, true]] as [boolean, boolean][]) {
        const s = shapes(9, 12, 8, tA, tB, ba, bb);
        await compareOp(gpu!, 'matmul', [rand(r, s.a, 'f32'), rand(r, s.b, 'f32')], { transposeA: tA, transposeB: tB }, tol);
      }
    }
  });

  it('low-precision dtypes (decoded on load, f32 accumulation, one rounding)', async () => {
    const r = rng(newSeed('matmul lowp'));
    // bf16 and f8e4m3 here (the conformance suite runs every float dtype).
    for (const dtype of FLOAT_DTYPES.filter((d) => d === 'bf16' || d === 'f8e4m3')) {
      const s = shapes(13, 10, 7, false, true, [2]);
      await compareOp(gpu!, 'matmul', [rand(r, s.a, dtype), rand(r, s.b, dtype)], { transposeA: false, transposeB: true }, tol);
    }
  });

  it('empty inner dimension gives zeros', async () => {
    const r = rng(newSeed('matmul K=0'));
    await compareOp(gpu!, 'matmul', [rand(r, [3, 0], 'f32'), rand(r, [0, 4], 'f32')], { transposeA: false, transposeB: false });
  });
});
