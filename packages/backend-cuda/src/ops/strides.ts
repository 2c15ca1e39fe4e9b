/**
 * Host-side index planning for strided kernels: coalescing dimensions, broadcast strides and the
 * by-value `Strides` struct of kernels/common.cuh (int rank, int idx32, i64 shape[8],
 * i64 stride[4][8], i64 offset[4]; 360 bytes, 8-aligned). Pure functions, unit-tested.
 */
import { BackendError, stridesOf } from '@ring-linear/core';

export const MAX_RANK = 8;
export const MAX_OPERANDS = 4;
export const STRIDES_BYTES = 8 + 8 * MAX_RANK + 8 * MAX_RANK * MAX_OPERANDS + 8 * MAX_OPERANDS;

export interface StridedPlan {
  /** Iteration shape (innermost last) after coalescing. */
  readonly shape: number[];
  /** Per operand, element strides over `shape`. */
  readonly strides: number[][];
  /** Per operand, the element offset of index 0. */
  readonly offsets: number[];
}

/** Strides of an input of shape `inp` read as if broadcast to `out` (0 on broadcast dims). */
export function broadcastStrides(inp: readonly number[], out: readonly number[]): number[] {
  const s = stridesOf(inp);
  const lead = out.length - inp.length;
  return out.map((d, i) => (i < lead || inp[i - lead] === 1 ? 0 : s[i - lead]!));
}

/**
 * Drops size-1 dims and merges neighbours that every operand walks contiguously
 * (stride[d] == stride[d+1] * shape[d+1]), so e.g. [B, T, D] + [D] becomes [B*T, D] + [1, D].
 */
export function coalesce(shape: readonly number[], strides: readonly (readonly number[])[], offsets?: readonly number[]): StridedPlan {
  const dims: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, k) => st[k]![last] === s[d]! * shape[d]!)) {
      dims[last] = dims[last]! * shape[d]!;
      strides.forEach((s, k) => (st[k]![last] = s[d]!));
    } else {
      dims.push(shape[d]!);
      strides.forEach((s, k) => st[k]!.push(s[d]!));
    }
  }
  return { shape: dims, strides: st, offsets: offsets ? [...offsets] : strides.map(() => 0) };
}

/**
 * Whether every index and offset the kernel computes fits in a signed 32-bit int (with room for
 * the grid-stride increment: n stays below 2^30).
 */
export function fitsInt32(plan: StridedPlan, n: number): boolean {
  if (n >= 2 ** 30) return false;
  for (let k = 0; k < plan.strides.length; k++) {
    let lo = plan.offsets[k]!;
    let hi = plan.offsets[k]!;
    plan.shape.forEach((d, i) => {
      const span = (d - 1) * plan.strides[k]![i]!;
      if (span > 0) hi += span;
      else lo += span;
    });
    if (lo < -0x80000000 || hi > 0x7fffffff) return false;
  }
  return true;
}

/** The Strides struct bytes for a plan. */
export function encodeStrides(plan: StridedPlan, n: number, out = new Uint8Array(STRIDES_BYTES)): Uint8Array {
  const rank = plan.shape.length;
  if (rank > MAX_RANK) throw new BackendError(`cuda: strided kernels handle at most ${MAX_RANK} dimensions after merging, got ${rank}`);
  if (plan.strides.length > MAX_OPERANDS) throw new BackendError(`cuda: strided kernels take at most ${MAX_OPERANDS} operands`);
  out.fill(0);
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  dv.setInt32(0, rank, true);
  dv.setInt32(4, fitsInt32(plan, n) ? 1 : 0, true);
  const i64 = (at: number, v: number) => {
    dv.setBigInt64(at, BigInt(v), true);
  };
  for (let d = 0; d < rank; d++) i64(8 + 8 * d, plan.shape[d]!);
  for (let k = 0; k < plan.strides.length; k++) {
    for (let d = 0; d < rank; d++) i64(8 + 8 * MAX_RANK + 8 * (k * MAX_RANK + d), plan.strides[k]![d]!);
  }
  for (let k = 0; k < plan.offsets.length; k++) i64(8 + 8 * MAX_RANK + 8 * MAX_RANK * MAX_OPERANDS + 8 * k, plan.offsets[k]!);
  return out;
}

/** Host reference of what the kernel computes: the operand offsets of flat index i. */
export function offsetsAt(plan: StridedPlan, i: number): number[] {
  const off = [...plan.offsets];
  for (let d = plan.shape.length - 1; d >= 0; d--) {
    const dim = plan.shape[d]!;
    const r = i % dim;
    i = Math.floor(i / dim);
    plan.strides.forEach((s, k) => (off[k]! += r * s[d]!));
  }
  return off;
}
