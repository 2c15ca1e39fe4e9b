/**
 * matmul through cuBLASLt. f32 (TF32 only when the backend's `tf32` is on), f16 and bf16 run
 * natively with f32 accumulation and one rounding of the result. FP8 inputs are upcast to bf16
 * (exact: every E4M3/E5M2 value is a bf16 value), multiplied into an f32 result and rounded once
 * to the FP8 output. Batch dims broadcast: a batch operand of size 1 gets stride 0; a rank-2
 * right operand under a batched left one folds the batch into M; anything else is materialized.
 */
import { broadcastShapes, bytesPerElement, sizeOf, stridesOf, type DType, type TensorInfo } from '@ring-linear/core';
import type { CudaBackend } from '../backend.js';
import type { Block } from '../memory/allocator.js';
import { castKernelName, moduleSpec } from '../kernels/sources.js';
import type { GemmProblem } from '../runtime/cublaslt.js';
import { blocksFor, ptr, register, stridedCopy, vecWidth, width, type Ctx } from './common.js';
import { broadcastStrides } from './strides.js';

export interface MatmulGeometry {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly batch: number;
  /** Batch shape of the output. */
  readonly batchShape: number[];
  /** Per operand: 'full' (one matrix per batch), 'single' (broadcast: stride 0) or 'expand' (needs a copy). */
  readonly aMode: 'full' | 'single' | 'expand';
  readonly bMode: 'full' | 'single' | 'expand';
  /** b is one matrix and a not transposed: fold a's batch into M (one plain GEMM). */
  readonly foldM: boolean;
}

export function matmulGeometry(aShape: readonly number[], bShape: readonly number[], transposeA: boolean, transposeB: boolean): MatmulGeometry {
  const ra = aShape.length;
  const rb = bShape.length;
  const m = aShape[transposeA ? ra - 1 : ra - 2]!;
  const k = aShape[transposeA ? ra - 2 : ra - 1]!;
  const n = bShape[transposeB ? rb - 2 : rb - 1]!;
  const aBatch = aShape.slice(0, -2);
  const bBatch = bShape.slice(0, -2);
  const batchShape = broadcastShapes('matmul (batch dims)', aBatch, bBatch);
  const batch = sizeOf(batchShape);
  const mode = (bs: readonly number[]) => (sizeOf(bs) === batch ? 'full' : sizeOf(bs) === 1 ? 'single' : 'expand');
  const aMode = mode(aBatch);
  const bMode = mode(bBatch);
  const foldM = batch > 1 && aMode === 'full' && bMode === 'single' && !transposeA;
  return { m, n, k, batch, batchShape, aMode, bMode, foldM };
}

const GEMM_NATIVE: readonly DType[] = ['f32', 'f16', 'bf16'];

register('matmul', ({ backend: b, inputs: [a, c], outputs: [y], attrs }: Ctx<{ transposeA: boolean; transposeB: boolean }>) => {
  const { transposeA, transposeB } = attrs;
  const g = matmulGeometry(a!.shape, c!.shape, transposeA, transposeB);
  if (g.k === 0) {
    b.memset(ptr(y!), 0, width(y!.dtype) as 1 | 2 | 4, y!.size);
    return;
  }
  const temps: Block[] = [];
  try {
    try {
      gemm(false);
    } catch (err) {
      // A zero batch stride (broadcast operand) that cuBLASLt turns down: copy it out and retry.
      if (g.batch === 1 || (g.aMode !== 'single' && g.bMode !== 'single') || !/cuBLASLt/.test((err as Error).message)) throw err;
      gemm(true);
    }
  } finally {
    // Stream order makes the scratch reusable as soon as its last use is enqueued.
    for (const t of temps) b.releaseTemp(t);
  }

  function gemm(expandSingles: boolean): void {
    const operand = (t: TensorInfo, mode0: MatmulGeometry['aMode'], rows: number, cols: number) => {
      const mode = expandSingles && mode0 === 'single' ? 'expand' : mode0;
      let p = ptr(t);
      let dtype = t.dtype;
      if (mode === 'expand') {
        // Materialize the broadcast batch so every batch has its own matrix.
        const shape = [...g.batchShape, rows, cols];
        const tmp = b.temp(sizeOf(shape) * bytesPerElement(dtype));
        temps.push(tmp);
        stridedCopy(b, width(dtype), p, tmp.ptr, shape, broadcastStrides(t.shape, shape), stridesOf(shape));
        p = tmp.ptr;
      }
      if (!GEMM_NATIVE.includes(dtype)) {
        const count = (mode === 'expand' ? g.batch : sizeOf(t.shape.slice(0, -2))) * rows * cols;
        const tmp = b.temp(count * 2);
        temps.push(tmp);
        castRaw(b, dtype, 'bf16', p, tmp.ptr, count);
        p = tmp.ptr;
        dtype = 'bf16';
      }
      return { p, dtype, mode: mode === 'expand' ? ('full' as const) : mode };
    };
    const A = operand(a!, g.aMode, transposeA ? g.k : g.m, transposeA ? g.m : g.k);
    const B = operand(c!, g.bMode, transposeB ? g.n : g.k, transposeB ? g.k : g.n);
    const outNative = GEMM_NATIVE.includes(y!.dtype);
    let out = ptr(y!);
    let outTmp: Block | null = null;
    if (!outNative) {
      outTmp = b.temp(y!.size * 4);
      temps.push(outTmp);
      out = outTmp.ptr;
    }
    const foldM = g.foldM && !expandSingles;
    const batch = foldM ? 1 : g.batch;
    const m = foldM ? g.m * g.batch : g.m;
    const problem: GemmProblem = {
      dtype: A.dtype as 'f32' | 'f16' | 'bf16',
      outDType: outNative ? (y!.dtype as 'f32' | 'f16' | 'bf16') : 'f32',
      transposeA,
      transposeB,
      m,
      n: g.n,
      k: g.k,
      batch,
      strideA: A.mode === 'single' ? 0 : g.m * g.k,
      strideB: B.mode === 'single' ? 0 : g.k * g.n,
      strideC: g.m * g.n,
      tf32: b.tf32,
    };
    const ws = b.gemmWorkspace();
    b.rt.cublasLt.matmul(problem, A.p, B.p, out, ws, b.workspaceBytes, b.stream);
    if (outTmp) castRaw(b, 'f32', y!.dtype, out, ptr(y!), y!.size);
  }
});

/** Elementwise dtype conversion between raw device buffers (non-saturating, like cast). */
export function castRaw(b: CudaBackend, from: DType, to: DType, src: number, dst: number, n: number): void {
  const vec = vecWidth(bytesPerElement(from), bytesPerElement(to));
  b.kernel(moduleSpec('cast', from), castKernelName(from, to)).launch([blocksFor(Math.ceil(n / vec)), 1, 1], [256, 1, 1], [src, dst, n, 0]);
}
