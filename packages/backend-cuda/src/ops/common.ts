/** Shared helpers for the CUDA op kernels. */
import {
  bytesPerElement,
  encodeF32,
  registerKernel,
  stridesOf,
  type DType,
  type Kernel as CoreKernel,
  type KernelContext,
  type TensorInfo,
} from '@ring-linear/core';
import type { CudaBackend, CudaBuffer } from '../backend.js';
import { moduleSpec, type Width } from '../kernels/sources.js';
import { coalesce, encodeStrides, type StridedPlan } from './strides.js';

export type Ctx<A = any> = KernelContext<A, CudaBackend>;

export function register(op: string, kernel: (ctx: Ctx<any>) => void, dtypes?: readonly DType[]): void {
  registerKernel({ op, backend: 'cuda', kernel: kernel as CoreKernel, ...(dtypes ? { dtypes } : {}) });
}

export const ptr = (t: TensorInfo): number => (t.buffer as CudaBuffer).ptr;
export const width = (d: DType): Width => bytesPerElement(d) as Width;

/** Elements per 16-byte vector for a kernel reading `inBytes` and writing `outBytes` elements. */
export const vecWidth = (inBytes: number, outBytes: number) => 16 / Math.max(inBytes, outBytes);

/** Blocks for a grid-stride kernel over `n` items of work per thread-iteration. */
export function blocksFor(n: number, threads = 256, max = 1 << 20): number {
  return Math.max(1, Math.min(max, Math.ceil(n / threads)));
}

const stridesScratch = new Uint8Array(360);

/** The Strides struct for a plan (a shared scratch buffer: the launch copies it). */
export function stridesArg(plan: StridedPlan, n: number): Uint8Array {
  return encodeStrides(plan, n, stridesScratch);
}

/**
 * Raw element copy dst[plan offsets 1] = src[plan offsets 0] over the plan's iteration shape
 * (exact for every dtype). Used by every data-movement op.
 */
export function stridedCopy(b: CudaBackend, elemBytes: Width, src: number, dst: number, shape: readonly number[], srcStrides: readonly number[], dstStrides: readonly number[], srcOffset = 0, dstOffset = 0): void {
  const n = shape.reduce((a, d) => a * d, 1);
  if (n === 0) return;
  const plan = coalesce(shape, [srcStrides, dstStrides], [srcOffset, dstOffset]);
  // A plain contiguous copy is a DMA, no kernel.
  if (plan.shape.length <= 1 && (plan.shape.length === 0 || (plan.strides[0]![0] === 1 && plan.strides[1]![0] === 1))) {
    b.rt.driver.copyDtoDAsync(dst + dstOffset * elemBytes, src + srcOffset * elemBytes, n * elemBytes, b.stream);
    return;
  }
  b.kernel(moduleSpec('misc'), `strided_copy_w${elemBytes}`).launch1D(n, [src, dst, n, stridesArg(plan, n)]);
}

export const contiguousStrides = (shape: readonly number[]) => stridesOf(shape);

/**
 * Raw bits of `value` stored in `dtype` as `cast` (and the CPU's storeNumbers) define it: floats
 * round to nearest even (non-saturating), integers truncate toward zero and wrap (NaN/inf -> 0),
 * bool is value != 0.
 */
export function encodeScalar(value: number, dtype: DType): number {
  switch (dtype) {
    case 'f32': {
      const f = new Float32Array([value]);
      return new Uint32Array(f.buffer)[0]!;
    }
    case 'f16':
    case 'bf16':
    case 'f8e4m3':
    case 'f8e5m2':
      return encodeF32(dtype, [value])[0]!;
    case 'i32':
      return (Number.isFinite(value) ? Math.trunc(value) : 0) >>> 0;
    case 'u8':
      return (Number.isFinite(value) ? Math.trunc(value) : 0) & 0xff;
    case 'bool':
      return value !== 0 ? 1 : 0;
  }
}

/** Fills a tensor with one value (a memset of its raw bits). */
export function fillTensor(b: CudaBackend, y: TensorInfo, value: number): void {
  const w = width(y.dtype) as 1 | 2 | 4;
  b.memset(ptr(y), encodeScalar(value, y.dtype), w, y.size);
}
