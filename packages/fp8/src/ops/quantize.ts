/**
 * Quantizer ops (MODEL_SPEC §8; the scale rule is in formats.ts):
 *
 *   fp8Quantize(x)                 -> [data, scales]      dynamic scales from each block's amax
 *   fp8QuantizeWithScales(x, s)    -> data                given scales (static / delayed scaling)
 *   fp8Dequantize(data, scales)    -> data * scales       f32 (or bf16/f16), one rounding
 *   fp8QuantTranspose(x [M, K])    -> [q, s, qT, sT]      1x128 tiles of x (along K) and of x^T
 *                                                         (along M) from one read of x
 *
 * Quantized outputs are codes: no gradient is defined through them (a gradient that reaches one
 * is a GradientError, never a silent zero). Training goes through fp8Linear, whose backward is the
 * blockwise recipe.
 */
import { ShapeError, defineOp, describeShape, runOp, runOp1, transpose, cast, mul, type DType, type Tensor } from '@ring-linear/core';
import {
  FP8_DTYPES,
  FP8_LAYOUTS,
  HIGH_PRECISION_DTYPES,
  scalesShape,
  type Fp8DType,
  type Fp8Layout,
} from '../formats.js';
import {
  checkFp8Attr,
  checkOutDType,
  checkQuantizable,
  checkScales,
  expandScales,
  f32,
  quantizeComposite,
  quantizeWithScalesComposite,
} from './common.js';

export interface QuantizeAttrs extends Record<string, unknown> {
  dtype: Fp8DType;
  layout: Fp8Layout;
  pow2Scale: boolean;
}

const dtypeAttr = { kind: 'dtype', default: 'f8e4m3' } as const;
const layoutAttr = { kind: 'enum', values: FP8_LAYOUTS, default: 'tile1x128' } as const;
const pow2Attr = { kind: 'bool', default: false } as const;

defineOp<QuantizeAttrs>({
  name: 'fp8Quantize',
  doc:
    'FP8 quantization with dynamic scales: per block (layout tensor | row | tile1x128 | block128x128) ' +
    'scale = max(fl32(amax / fp8_max), 2^-126) (optionally rounded up to a power of two), ' +
    'data = RNE(fl32(x / scale)) saturated; outputs [data (x shape, fp8), scales (f32)]',
  inputs: [{ name: 'x', dtypes: HIGH_PRECISION_DTYPES }],
  attrs: { dtype: dtypeAttr, layout: layoutAttr, pow2Scale: pow2Attr },
  normalize: (_m, a) => ({ ...a, dtype: checkFp8Attr('fp8Quantize', 'dtype', a.dtype) }),
  infer: ([x], a) => {
    checkQuantizable('fp8Quantize', 'x', x!.shape, a.layout);
    return [
      { shape: x!.shape, dtype: a.dtype },
      { shape: scalesShape(x!.shape, a.layout), dtype: 'f32' },
    ];
  },
  composite: ([x], a) => quantizeComposite(x!, a.dtype, a.layout, a.pow2Scale),
});

export interface QuantizeWithScalesAttrs extends Record<string, unknown> {
  dtype: Fp8DType;
  layout: Fp8Layout;
}

defineOp<QuantizeWithScalesAttrs>({
  name: 'fp8QuantizeWithScales',
  doc: 'FP8 quantization with given f32 scales (one per block of the layout): RNE(fl32(x / scale)) saturated to +-fp8_max',
  inputs: [{ name: 'x', dtypes: HIGH_PRECISION_DTYPES }, { name: 'scales', dtypes: ['f32'] }],
  attrs: { dtype: dtypeAttr, layout: layoutAttr },
  normalize: (_m, a) => ({ ...a, dtype: checkFp8Attr('fp8QuantizeWithScales', 'dtype', a.dtype) }),
  infer: ([x, s], a) => {
    checkQuantizable('fp8QuantizeWithScales', 'x', x!.shape, a.layout);
    checkScales('fp8QuantizeWithScales', 'scales', s!, x!.shape, a.layout);
    return [{ shape: x!.shape, dtype: a.dtype }];
  },
  composite: ([x, s], a) => [quantizeWithScalesComposite(f32(x!), s!, a.dtype, a.layout)],
});

export interface DequantizeAttrs extends Record<string, unknown> {
  layout: Fp8Layout;
  outDtype: DType;
}

defineOp<DequantizeAttrs>({
  name: 'fp8Dequantize',
  doc: 'FP8 data times its block scales: fl32(decode(q) * scale), rounded once to outDtype (f32 | bf16 | f16)',
  inputs: [{ name: 'data', dtypes: FP8_DTYPES }, { name: 'scales', dtypes: ['f32'] }],
  attrs: { layout: layoutAttr, outDtype: { kind: 'dtype', default: 'f32' } },
  normalize: (_m, a) => ({ ...a, outDtype: checkOutDType('fp8Dequantize', a.outDtype) }),
  infer: ([q, s], a) => {
    checkQuantizable('fp8Dequantize', 'data', q!.shape, a.layout);
    checkScales('fp8Dequantize', 'scales', s!, q!.shape, a.layout);
    return [{ shape: q!.shape, dtype: a.outDtype }];
  },
  composite: ([q, s], a) => {
    const y = mul(cast(q!, 'f32'), expandScales(s!, a.layout, q!.shape));
    return [a.outDtype === 'f32' ? y : cast(y, a.outDtype)];
  },
});

export interface QuantTransposeAttrs extends Record<string, unknown> {
  dtype: Fp8DType;
  pow2Scale: boolean;
}

defineOp<QuantTransposeAttrs>({
  name: 'fp8QuantTranspose',
  doc:
    'x [M, K] -> [data [M, K], scales [M, ceil(K/128)], dataT [K, M], scalesT [K, ceil(M/128)]]: the 1x128 tile ' +
    'quantizations of x (tiles along K) and of x^T (tiles along M), from one read of x',
  inputs: [{ name: 'x', dtypes: HIGH_PRECISION_DTYPES }],
  attrs: { dtype: dtypeAttr, pow2Scale: pow2Attr },
  normalize: (_m, a) => ({ ...a, dtype: checkFp8Attr('fp8QuantTranspose', 'dtype', a.dtype) }),
  infer: ([x], a) => {
    const s = x!.shape;
    if (s.length !== 2 || s[0]! < 1 || s[1]! < 1) {
      throw new ShapeError(`fp8QuantTranspose: 'x' must have rank 2 [M, K] with M, K >= 1, got shape ${describeShape(s)}`);
    }
    const [M, K] = [s[0]!, s[1]!];
    return [
      { shape: [M, K], dtype: a.dtype },
      { shape: scalesShape([M, K], 'tile1x128'), dtype: 'f32' },
      { shape: [K, M], dtype: a.dtype },
      { shape: scalesShape([K, M], 'tile1x128'), dtype: 'f32' },
    ];
  },
  composite: ([x], a) => {
    const attrs = { dtype: a.dtype, layout: 'tile1x128', pow2Scale: a.pow2Scale };
    return [...runOp('fp8Quantize', [x!], attrs), ...runOp('fp8Quantize', [transpose(x!)], attrs)];
  },
});

// ---------------------------------------------------------------------------------------------
// User-facing functions

export interface QuantizeOptions {
  /** FP8 format (default 'f8e4m3'). */
  readonly dtype?: Fp8DType;
  /** Scale granularity (default 'tile1x128'). */
  readonly layout?: Fp8Layout;
  /** Round every scale up to a power of two (default false). */
  readonly pow2Scale?: boolean;
}

/** Dynamic-scale quantization: [data, scales] (see fp8Quantize). */
export function quantizeRaw(x: Tensor, options: QuantizeOptions = {}): [Tensor, Tensor] {
  const [data, scales] = runOp('fp8Quantize', [x], {
    dtype: options.dtype ?? 'f8e4m3',
    layout: options.layout ?? 'tile1x128',
    pow2Scale: options.pow2Scale ?? false,
  });
  return [data!, scales!];
}

/** Quantization with given scales (one per block of `layout`); returns the FP8 data. */
export function quantizeWithScales(x: Tensor, scales: Tensor, options: { dtype?: Fp8DType; layout?: Fp8Layout } = {}): Tensor {
  return runOp1('fp8QuantizeWithScales', [x, scales], { dtype: options.dtype ?? 'f8e4m3', layout: options.layout ?? 'tile1x128' });
}

/** data * scales, rounded once to `outDtype` (default f32). */
export function dequantizeRaw(data: Tensor, scales: Tensor, layout: Fp8Layout, outDtype: DType = 'f32'): Tensor {
  return runOp1('fp8Dequantize', [data, scales], { layout, outDtype });
}

/** [data, scales, dataT, scalesT]: 1x128 tile quantizations of x [M, K] and of x^T, from one read. */
export function quantTransposeRaw(x: Tensor, options: { dtype?: Fp8DType; pow2Scale?: boolean } = {}): [Tensor, Tensor, Tensor, Tensor] {
  const outs = runOp('fp8QuantTranspose', [x], { dtype: options.dtype ?? 'f8e4m3', pow2Scale: options.pow2Scale ?? false });
  return [outs[0]!, outs[1]!, outs[2]!, outs[3]!];
}
