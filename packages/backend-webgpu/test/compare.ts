/** Runs an op on the CPU and on WebGPU with the same input bytes and compares the outputs. */
import { expect } from 'vitest';
import { runOp, setBackend, tensor, type DType, type Tensor } from '@ring-linear/core';
import type { WebGpuBackend } from '../src/backend.js';
import { copyTo, cpu, mismatches, randomValues } from './helpers.js';

/** Tolerance per output dtype: ulps of the storage format (GPU transcendentals are a few f32 ulps off). */
export const TOL: Record<DType, [number, number]> = {
  f32: [1e-6, 1e-5],
  f16: [1e-6, 2 ** -10],
  bf16: [1e-6, 2 ** -7],
  f8e4m3: [2 ** -9, 2 ** -3],
  f8e5m2: [2 ** -16, 2 ** -2],
  i32: [0, 0],
  u8: [0, 0],
  bool: [0, 0],
};

export async function compareOp(
  gpu: WebGpuBackend,
  op: string,
  inputs: Tensor[],
  attrs?: Record<string, unknown>,
  tol?: [number, number] | ((dtype: DType) => [number, number]),
): Promise<void> {
  // Explicit copies on each backend: the reference must run on the CPU whatever the current backend is.
  const cpuBackend = await cpu();
  const cIn = await Promise.all(inputs.map((t) => copyTo(t, cpuBackend)));
  await setBackend('cpu');
  const want = runOp(op, cIn, attrs);
  expect(want.every((t) => t.backend === 'cpu')).toBe(true);
  const gIn = await Promise.all(inputs.map((t) => copyTo(t, gpu)));
  // Ops without inputs (fill, arange, random) run on the current backend.
  await setBackend('webgpu');
  let got: Tensor[];
  try {
    got = runOp(op, gIn, attrs);
  } finally {
    await setBackend('cpu');
  }
  const what = `${op}(${inputs.map((t) => `${t.dtype}[${t.shape}]`).join(', ')}${attrs ? ` ${JSON.stringify(attrs)}` : ''})`;
  expect(got.length, what).toBe(want.length);
  for (let k = 0; k < want.length; k++) {
    const w = want[k]!;
    const g = got[k]!;
    expect(g.shape, what).toEqual(w.shape);
    expect(g.dtype, what).toEqual(w.dtype);
    expect(g.backend, what).toBe('webgpu');
    const [atol, rtol] = typeof tol === 'function' ? tol(w.dtype) : tol ?? TOL[w.dtype];
    const bad = mismatches(await g.data(), await w.data(), atol, rtol);
    expect(bad, `${what} output ${k}`).toEqual([]);
    g.dispose();
    w.dispose();
  }
  for (const t of gIn) t.dispose();
  for (const t of cIn) t.dispose();
}

export function rand(r: () => number, shape: number[], dtype: DType, opts: { positive?: boolean; scale?: number } = {}): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(randomValues(r, n, dtype, opts), shape, dtype);
}
