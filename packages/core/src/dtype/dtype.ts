/**
 * Data types. Storage dtype and compute dtype are distinct: f16, bf16 and the fp8 formats are
 * storage formats computed in f32 with f32 accumulation (DESIGN.md, core contracts).
 */
export type DType = 'f32' | 'f16' | 'bf16' | 'f8e4m3' | 'f8e5m2' | 'i32' | 'u8' | 'bool';

export const DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2', 'i32', 'u8', 'bool'];
export const FLOAT_DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2'];
export const LOW_PRECISION_FLOAT_DTYPES: readonly DType[] = ['f16', 'bf16', 'f8e4m3', 'f8e5m2'];
export const INT_DTYPES: readonly DType[] = ['i32', 'u8'];
/** Dtypes that hold numbers arithmetic applies to (everything but bool). */
export const NUMERIC_DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2', 'i32', 'u8'];

const BYTES: Record<DType, number> = {
  f32: 4, f16: 2, bf16: 2, f8e4m3: 1, f8e5m2: 1, i32: 4, u8: 1, bool: 1,
};

export function isDType(x: unknown): x is DType {
  return typeof x === 'string' && (DTYPES as readonly string[]).includes(x);
}

export function bytesPerElement(dtype: DType): number {
  return BYTES[dtype];
}

export function isFloatDType(dtype: DType): boolean {
  return FLOAT_DTYPES.includes(dtype);
}

export function isLowPrecisionFloat(dtype: DType): dtype is 'f16' | 'bf16' | 'f8e4m3' | 'f8e5m2' {
  return LOW_PRECISION_FLOAT_DTYPES.includes(dtype);
}

export function isIntDType(dtype: DType): boolean {
  return dtype === 'i32' || dtype === 'u8';
}

/** The typed array that holds a dtype's raw storage (codes for low-precision floats). */
export type StorageArray = Float32Array | Int32Array | Uint16Array | Uint8Array;

export function storageArrayFor(dtype: DType, buffer: ArrayBufferLike, byteOffset: number, length: number): StorageArray {
  switch (dtype) {
    case 'f32': return new Float32Array(buffer, byteOffset, length);
    case 'i32': return new Int32Array(buffer, byteOffset, length);
    case 'f16': case 'bf16': return new Uint16Array(buffer, byteOffset, length);
    case 'f8e4m3': case 'f8e5m2': case 'u8': case 'bool': return new Uint8Array(buffer, byteOffset, length);
  }
}

export function allocStorageArray(dtype: DType, length: number): StorageArray {
  return storageArrayFor(dtype, new ArrayBuffer(length * bytesPerElement(dtype)), 0, length);
}

/** What `await t.data()` returns: numbers in the dtype's natural JS view (floats decoded to f32). */
export type DataArray = Float32Array | Int32Array | Uint8Array;
