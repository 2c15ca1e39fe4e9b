/** Helpers shared by the WGSL kernels: registration, grids, shape arithmetic. */
import { registerKernel, type DType, type Kernel, type KernelContext, type TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../backend.js';

export type WebGpuKernel<A = any> = (ctx: KernelContext<A, WebGpuBackend>) => void;

export function register(op: string, kernel: WebGpuKernel, dtypes?: readonly DType[]): void {
  registerKernel({ op, backend: 'webgpu', kernel: kernel as Kernel, ...(dtypes ? { dtypes } : {}) });
}

/** Workgroup grid for `threads` invocations of `wgSize`: [x, y] with x <= 65535. */
export function grid1d(threads: number, wgSize: number, maxPerDim = 65535): [number, number] {
  const groups = Math.max(1, Math.ceil(threads / wgSize));
  if (groups <= maxPerDim) return [groups, 1];
  const gy = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / gy), gy];
}

/** WGSL: the linear invocation index of a grid1d dispatch. */
export const LINEAR_ID = (wgSize: number) => `(gid.x + gid.y * nwg.x * ${wgSize}u)`;
/** WGSL: the linear workgroup index of a grid1d dispatch (one workgroup per item). */
export const LINEAR_WG = '(wid.x + wid.y * nwg.x)';

export const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

/** Strides of `inShape` as seen from an output of rank `rank` (0 where it broadcasts). */
export function broadcastStrides(inShape: readonly number[], outShape: readonly number[]): number[] {
  const rank = outShape.length;
  const st = new Array<number>(rank).fill(0);
  let acc = 1;
  for (let i = inShape.length - 1; i >= 0; i--) {
    const d = inShape[i]!;
    const o = i + rank - inShape.length;
    st[o] = d === 1 && outShape[o] !== 1 ? 0 : acc;
    acc *= d;
  }
  return st;
}

/**
 * Merges adjacent output dims where every input's strides continue contiguously (and drops size-1
 * dims), so index arithmetic in kernels runs over as few dims as possible.
 */
export function collapseDims(outShape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const shape: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (let d = 0; d < outShape.length; d++) {
    const n = outShape[d]!;
    if (n === 1) continue;
    const last = shape.length - 1;
    if (last >= 0 && strides.every((s, j) => st[j]![last] === s[d]! * n)) {
      shape[last] = shape[last]! * n;
      strides.forEach((s, j) => (st[j]![last] = s[d]!));
    } else {
      shape.push(n);
      strides.forEach((s, j) => st[j]!.push(s[d]!));
    }
  }
  return { shape, strides: st };
}

/** [outer, n, inner] view of a shape around `axis`. */
export function axisView(shape: readonly number[], axis: number): [number, number, number] {
  return [prod(shape.slice(0, axis)), shape[axis]!, prod(shape.slice(axis + 1))];
}

/** f32 bits of a JS number (rounded to f32). */
export function f32Bits(x: number): number {
  F32[0] = x;
  return U32[0]!;
}
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

export const isFloat = (d: DType) => d !== 'i32' && d !== 'u8' && d !== 'bool';

/** Key fragment of a tensor's dtype for pipeline keys. */
export const dk = (t: TensorInfo) => t.dtype;
