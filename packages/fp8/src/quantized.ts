/**
 * QuantizedTensor: FP8 data + f32 dequantization scales + the layout that maps one to the other.
 *
 * It is a plain frozen object (not a class instance), so `tidy()` keeps its tensors when it is
 * returned from a scope and `dispose(q)` frees both, like any other container of tensors.
 */
import { RingLinearError, ShapeError, describeShape, transpose, type DType, type Tensor } from '@ring-linear/core';
import { isFp8DType, scalesShape, type Fp8DType, type Fp8Layout } from './formats.js';
import { dequantizeRaw, quantTransposeRaw, quantizeRaw, type QuantizeOptions } from './ops/quantize.js';

export interface QuantizedTensor {
  /** FP8 codes, the shape of the original tensor (nothing padded). */
  readonly data: Tensor;
  /** f32 dequantization multipliers, shape `scalesShape(shape, layout)`. */
  readonly scales: Tensor;
  readonly layout: Fp8Layout;
  /** The FP8 format of `data`. */
  readonly dtype: Fp8DType;
  /** The original (and the data's) shape. */
  readonly shape: readonly number[];
  /** Whether the scales were rounded up to powers of two (then dequantization is exact in f32). */
  readonly pow2Scale: boolean;
}

/** Wraps existing data and scales (checked against each other) as a QuantizedTensor. */
export function quantizedTensor(data: Tensor, scales: Tensor, layout: Fp8Layout, pow2Scale = false): QuantizedTensor {
  if (!isFp8DType(data.dtype)) throw new RingLinearError(`quantizedTensor: data must have an FP8 dtype (f8e4m3 | f8e5m2), got ${data.dtype}`);
  const want = scalesShape(data.shape, layout);
  if (scales.dtype !== 'f32' || scales.shape.length !== want.length || scales.shape.some((d, i) => d !== want[i])) {
    throw new ShapeError(
      `quantizedTensor: layout '${layout}' of data ${describeShape(data.shape)} needs f32 scales ${describeShape(want)}, got ${describeShape(scales.shape)} ${scales.dtype}`,
    );
  }
  return Object.freeze({ data, scales, layout, dtype: data.dtype as Fp8DType, shape: data.shape, pow2Scale });
}

/** Quantizes x with dynamic (amax) scales; see formats.ts for the rule. */
export function quantize(x: Tensor, options: QuantizeOptions = {}): QuantizedTensor {
  const [data, scales] = quantizeRaw(x, options);
  return Object.freeze({
    data,
    scales,
    layout: options.layout ?? 'tile1x128',
    dtype: data.dtype as Fp8DType,
    shape: data.shape,
    pow2Scale: options.pow2Scale ?? false,
  });
}

/** The values q * scale, rounded once to `outDtype` (default f32). */
export function dequantize(q: QuantizedTensor, outDtype: DType = 'f32'): Tensor {
  return dequantizeRaw(q.data, q.scales, q.layout, outDtype);
}

/** Both 1x128 tile quantizations of a matrix x [M, K] from one read: of x (tiles along K) and of x^T (along M). */
export function quantTranspose(x: Tensor, options: { dtype?: Fp8DType; pow2Scale?: boolean } = {}): { x: QuantizedTensor; xT: QuantizedTensor } {
  const [d, s, dT, sT] = quantTransposeRaw(x, options);
  const pow2Scale = options.pow2Scale ?? false;
  return { x: quantizedTensor(d, s, 'tile1x128', pow2Scale), xT: quantizedTensor(dT, sT, 'tile1x128', pow2Scale) };
}

/**
 * The quantization of the transposed matrix, for layouts where that is a pure transpose of data
 * and scales: per-tensor, and 128x128 blocks (a block of W is a block of W^T). So a weight
 * quantized once serves both the forward GEMM (W) and the data-gradient GEMM (W^T).
 */
export function transposeQuantized(q: QuantizedTensor): QuantizedTensor {
  if (q.shape.length !== 2) throw new ShapeError(`transposeQuantized: expected a matrix, got shape ${describeShape(q.shape)}`);
  if (q.layout === 'tensor') return quantizedTensor(transpose(q.data), transpose(q.scales), 'tensor', q.pow2Scale);
  if (q.layout === 'block128x128') return quantizedTensor(transpose(q.data), transpose(q.scales), 'block128x128', q.pow2Scale);
  throw new RingLinearError(
    `transposeQuantized: layout '${q.layout}' is not transpose-symmetric (tiles run along the last dim); quantize x^T itself, or use quantTranspose`,
  );
}
