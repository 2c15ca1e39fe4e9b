/** Typed views over tensor storage for CPU kernels: decode to f32 for compute, encode results. */
import {
  decodeToF32,
  encodeF32,
  isLowPrecisionFloat,
  storageArrayFor,
  type DType,
  type Kernel,
  type KernelContext,
  type StorageArray,
  type TensorInfo,
  registerKernel,
} from '@ring-linear/core';
import type { CpuBackend, CpuBuffer } from './backend.js';

export type CpuKernel<A = any> = (ctx: KernelContext<A, CpuBackend>) => void;

/** The raw storage array of a tensor (codes for f16/bf16/fp8). */
export function raw(info: TensorInfo): StorageArray {
  const b = info.buffer as CpuBuffer;
  return storageArrayFor(info.dtype, b.bytes.buffer, b.bytes.byteOffset, info.size);
}

/**
 * Values as numbers: floats as Float32Array (a view for f32, a decoded copy for low precision),
 * i32 as Int32Array, u8/bool as Uint8Array (views).
 */
export function values(info: TensorInfo): Float32Array | Int32Array | Uint8Array {
  const r = raw(info);
  if (isLowPrecisionFloat(info.dtype)) return decodeToF32(info.dtype as 'f16', r as Uint16Array);
  return r as Float32Array | Int32Array | Uint8Array;
}

/**
 * A writable array for an output's values. For f32/i32/u8/bool it is the storage itself; for
 * low-precision floats a Float32Array that `commit` encodes (rounding once, RNE).
 */
export function outValues(info: TensorInfo): Float32Array | Int32Array | Uint8Array {
  if (isLowPrecisionFloat(info.dtype)) return new Float32Array(info.size);
  return raw(info) as Float32Array | Int32Array | Uint8Array;
}

export function commit(info: TensorInfo, vals: ArrayLike<number>, saturate = false): void {
  if (!isLowPrecisionFloat(info.dtype)) return;
  encodeF32(info.dtype as 'f16', vals, raw(info) as Uint16Array, saturate);
}

/** Writes arbitrary numbers into an output of any dtype (conversion as `cast` defines it). */
export function storeNumbers(info: TensorInfo, vals: ArrayLike<number>, saturate = false): void {
  const r = raw(info);
  if (isLowPrecisionFloat(info.dtype)) {
    encodeF32(info.dtype as 'f16', vals, r as Uint16Array, saturate);
  } else if (info.dtype === 'bool') {
    for (let i = 0; i < vals.length; i++) r[i] = vals[i] !== 0 ? 1 : 0;
  } else if (info.dtype === 'i32' || info.dtype === 'u8') {
    // Truncate toward zero; NaN/inf -> 0; then wrap (the typed array's ToInt32/ToUint8).
    for (let i = 0; i < vals.length; i++) {
      const v = vals[i]!;
      r[i] = Number.isFinite(v) ? Math.trunc(v) : 0;
    }
  } else {
    (r as Float32Array).set(vals);
  }
}

export const isFloat = (d: DType) => d === 'f32' || isLowPrecisionFloat(d);

export function register(op: string, kernel: CpuKernel, dtypes?: readonly DType[]): void {
  registerKernel({ op, backend: 'cpu', kernel: kernel as Kernel, ...(dtypes ? { dtypes } : {}) });
}
