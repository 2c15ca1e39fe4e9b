/**
 * Reductions: sum, mean, max, min, logsumexp, argmax, argmin. Every reduction is run as a
 * reduction over the middle axis of a [outer, R, inner] view (see kernels/reduce.cuh): the
 * reduced axes are merged into R when they are adjacent (size-1 dims ignored), otherwise the
 * input is first permuted (kept axes, then reduced ones) into scratch memory.
 */
import { bytesPerElement, stridesOf, type DType, type TensorInfo } from '@ring-linear/core';
import type { CudaBackend } from '../backend.js';
import { accumulatorBytes, moduleSpec, REDUCE_OPS, reduceKernelName, type ReduceOp } from '../kernels/sources.js';
import { ptr, register, stridedCopy, width, type Ctx } from './common.js';

export interface ReductionView {
  readonly outer: number;
  readonly R: number;
  readonly inner: number;
  /** When the reduced axes are not adjacent: the permutation that brings them last. */
  readonly perm: number[] | null;
}

/** How to see `shape` reduced over `axes` as [outer, R, inner] (pure; unit-tested). */
export function reductionView(shape: readonly number[], axes: readonly number[]): ReductionView {
  const red = new Set(axes);
  // Ignore size-1 dims: they change nothing about the order of elements.
  const dims = shape.map((d, i) => ({ d, i, r: red.has(i) })).filter((x) => x.d !== 1);
  const firstR = dims.findIndex((x) => x.r);
  if (firstR < 0) {
    return { outer: dims.reduce((a, x) => a * x.d, 1), R: 1, inner: 1, perm: null };
  }
  let lastR = firstR;
  while (lastR + 1 < dims.length && dims[lastR + 1]!.r) lastR++;
  const contiguous = !dims.slice(lastR + 1).some((x) => x.r);
  const prod = (xs: typeof dims) => xs.reduce((a, x) => a * x.d, 1);
  if (contiguous) {
    return { outer: prod(dims.slice(0, firstR)), R: prod(dims.slice(firstR, lastR + 1)), inner: prod(dims.slice(lastR + 1)), perm: null };
  }
  const kept = shape.map((_, i) => i).filter((i) => !red.has(i));
  const reduced = shape.map((_, i) => i).filter((i) => red.has(i));
  return {
    outer: kept.reduce((a, i) => a * shape[i]!, 1),
    R: reduced.reduce((a, i) => a * shape[i]!, 1),
    inner: 1,
    perm: [...kept, ...reduced],
  };
}

/** Kernel launch geometry for a reduction (pure; unit-tested). */
export interface ReducePlan {
  readonly kind: 'warp' | 'block';
  readonly tx: number;
  readonly ty: number;
  readonly colBlocks: number;
  /** Chunks of R (gridDim.y); > 1 means partial states + a final pass. */
  readonly chunks: number;
  readonly chunk: number;
}

export function planReduction(outer: number, R: number, inner: number, sms: number): ReducePlan {
  if (inner === 1 && R <= 1024 && (outer >= sms * 8 || R <= 256)) {
    return { kind: 'warp', tx: 32, ty: 8, colBlocks: 1, chunks: 1, chunk: Math.max(R, 1) };
  }
  const tx = inner === 1 ? 1 : Math.min(32, 2 ** Math.ceil(Math.log2(inner)));
  const ty = 256 / tx;
  const colBlocks = Math.ceil(inner / tx);
  const blocks = outer * colBlocks;
  // Enough blocks to fill the device (8 per SM), each chunk at least 8 rows of lanes.
  const want = Math.ceil((sms * 8) / Math.max(1, blocks));
  const maxChunks = Math.max(1, Math.ceil(R / (ty * 8)));
  let chunks = Math.max(1, Math.min(want, maxChunks, 65535));
  // Chunks are multiples of 16 elements so the row kernel can use 16-byte vector loads.
  const chunk = Math.max(16, Math.ceil(R / chunks / 16) * 16);
  chunks = Math.max(1, Math.ceil(R / chunk));
  return { kind: 'block', tx, ty, colBlocks, chunks, chunk };
}

/** Reduces x (already in [outer, R, inner] order) into y with one of the generated kernels. */
export function runReduction(b: CudaBackend, op: ReduceOp, dtype: DType, xPtr: number, yPtr: number, outer: number, R: number, inner: number): void {
  const spec = moduleSpec('reduce', dtype);
  const plan = planReduction(outer, R, inner, b.device.multiprocessors);
  if (plan.kind === 'warp') {
    b.kernel(spec, reduceKernelName(op, dtype, 'warp')).launch([Math.ceil(outer / 8), 1, 1], [32, 8, 1], [xPtr, yPtr, outer, R]);
    return;
  }
  const grid: [number, number, number] = [outer * plan.colBlocks, plan.chunks, 1];
  if (plan.chunks === 1) {
    b.kernel(spec, reduceKernelName(op, dtype, 'block')).launch(grid, [plan.tx, plan.ty, 1], [xPtr, yPtr, 0, outer, R, inner, plan.chunk]);
    return;
  }
  const M = outer * inner;
  const partial = b.temp(plan.chunks * M * accumulatorBytes(op, dtype));
  b.kernel(spec, reduceKernelName(op, dtype, 'block')).launch(grid, [plan.tx, plan.ty, 1], [xPtr, yPtr, partial.ptr, outer, R, inner, plan.chunk]);
  b.kernel(spec, reduceKernelName(op, dtype, 'final')).launch1D(M, [partial.ptr, yPtr, M, plan.chunks, R]);
  b.releaseTemp(partial);
}

function reduceOp(op: ReduceOp) {
  return ({ backend: b, inputs: [x], outputs: [y], attrs }: Ctx<{ axes?: number[]; axis?: number }>) => {
    const axes = attrs.axes ?? [attrs.axis!];
    const v = reductionView(x!.shape, axes);
    if (!v.perm) {
      runReduction(b, op, x!.dtype, ptr(x!), ptr(y!), v.outer, v.R, v.inner);
      return;
    }
    const t = permuted(b, x!, v.perm);
    runReduction(b, op, x!.dtype, t.ptr, ptr(y!), v.outer, v.R, 1);
    b.releaseTemp(t);
  };
}

/** x permuted into scratch memory (contiguous in the new order). */
function permuted(b: CudaBackend, x: TensorInfo, perm: readonly number[]) {
  const t = b.temp(x.size * bytesPerElement(x.dtype));
  const xs = stridesOf(x.shape);
  const shape = perm.map((p) => x.shape[p]!);
  stridedCopy(b, width(x.dtype), ptr(x), t.ptr, shape, perm.map((p) => xs[p]!), stridesOf(shape));
  return t;
}

for (const op of REDUCE_OPS) register(op, reduceOp(op));
