/**
 * OpInfo records for the basic ops everything else is built from: where, cast, copy,
 * stopGradient, clip (core ops/elementwise.ts) and fill, reshape, broadcastTo
 * (core ops/shape_basic.ts). Data movement is compared bit for bit (-0 stays -0).
 */
import { DTYPES, FLOAT_DTYPES, broadcastIndexMap, isFloatDType, sizeOf, type DType } from '@ring-linear/core';
import type { ErrorInput, OpInfo, SampleInput, SampleRng } from './types.js';
import { host, mapBroadcast, roundToDtypeValue } from '../host.js';
import { specialsTensor } from '../samples.js';

const NUMERIC: readonly DType[] = [...FLOAT_DTYPES, 'i32', 'u8'];
type TensorOpts = Parameters<SampleRng['tensor']>[2];

const isInt = (d: DType) => d === 'i32' || d === 'u8';
const isFp8 = (d: DType) => d === 'f8e4m3' || d === 'f8e5m2';

/** Values for a dtype: floats normal * scale, integers in a small range, bools coin flips. */
function valuesOpts(dtype: DType, scale = 2): TensorOpts {
  if (dtype === 'u8') return { lo: 0, hi: 40 };
  if (dtype === 'i32') return { lo: -40, hi: 40 };
  if (dtype === 'bool') return {};
  return { scale };
}

/** NaN, infinities, signed zeros and extremes: whichever the dtype can hold. */
const FLOAT_SPECIALS = [NaN, Infinity, -Infinity, -0, 0, 1, -1.5, 448, -57344, 65504, 3.3895313892515355e38, 2 ** -9, -(2 ** -16), 2 ** -24];

const disposedInput = (rng: SampleRng, dtype: DType = 'f32'): ErrorInput => ({
  inputs: [rng.tensor([2, 3], dtype)],
  disposed: [0],
  error: 'DisposedTensorError',
  message: /was disposed/,
  desc: 'disposed input',
});

// ---------------------------------------------------------------------------------------------
// where

const WHERE_SHAPES: readonly { c: number[]; a: number[]; b: number[]; desc: string }[] = [
  { c: [4, 5], a: [4, 5], b: [4, 5], desc: 'same shapes' },
  { c: [3, 1], a: [1, 4], b: [], desc: 'all three broadcast' },
  { c: [], a: [2, 3], b: [2, 3], desc: 'scalar condition' },
  { c: [5], a: [3, 1], b: [1, 5], desc: 'rank mismatch' },
  { c: [0, 2], a: [1, 2], b: [0, 2], desc: 'empty' },
  { c: [9, 70], a: [9, 70], b: [70], desc: 'larger' },
];

const whereInfo: OpInfo = {
  op: 'where',
  dtypes: DTYPES,
  samples: (rng, dtype) => {
    const out: SampleInput[] = WHERE_SHAPES.map(({ c, a, b, desc }) => ({
      inputs: [rng.tensor(c, 'bool'), rng.tensor(a, dtype, valuesOpts(dtype)), rng.tensor(b, dtype, valuesOpts(dtype))],
      desc,
      ...(desc === 'larger' ? { noGrad: true } : {}),
    }));
    if (isFloatDType(dtype)) {
      const sp = specialsTensor(dtype, FLOAT_SPECIALS);
      out.push({ inputs: [rng.tensor(sp.shape, 'bool'), sp, rng.tensor(sp.shape, dtype)], desc: 'special values are copied bit for bit', noGrad: true });
    }
    return out;
  },
  reference: ([c, a, b]) => [mapBroadcast([c!, a!, b!], (cv, av, bv) => (cv ? av : bv), a!.dtype)],
  tfjs: (tf, [c, a, b]) => tf.where(c, a, b),
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([3], 'f32'), rng.tensor([3], 'f32'), rng.tensor([3], 'f32')], error: 'DTypeError', message: /where: input 'cond' must have dtype bool, got f32/, desc: 'float condition' },
    { inputs: [rng.tensor([3], 'bool'), rng.tensor([3], 'f32'), rng.tensor([3], 'i32')], error: 'DTypeError', message: /where: 'a' and 'b' must have the same dtype, got f32 and i32/, desc: 'dtype mismatch' },
    { inputs: [rng.tensor([2, 3], 'bool'), rng.tensor([3], 'f32'), rng.tensor([4], 'f32')], error: 'ShapeError', message: /where: shapes .* do not broadcast/, desc: 'shape mismatch' },
    { inputs: [rng.tensor([3], 'bool'), rng.tensor([3], 'f32'), rng.tensor([3], 'f32')], disposed: [2], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed input' },
    { inputs: [rng.tensor([3], 'bool'), rng.tensor([3], 'f32')], error: 'AttrError', message: /where: expected 3 input tensor\(s\)/, desc: 'two inputs' },
  ],
};

// ---------------------------------------------------------------------------------------------
// cast

/** Values around every format's overflow point, subnormals and rounding ties (RNE). */
const CAST_FLOAT_SPECIALS = [
  NaN, Infinity, -Infinity, -0, 0, 1, -1, 0.5, -2.5, 3.7, -3.7, 255.9, 256, 300, -300,
  240, 448, -448, 464, 480, -500, 57344, 61440, -65504, 65520, 1e5, 3.3895313892515355e38,
  2 ** -9, 2 ** -10, 3 * 2 ** -10, 2 ** -16, 2 ** -17, 2 ** -24, 2 ** -25, 1e-40,
  1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1.0625, 1.1875,
];
const CAST_INT_SPECIALS = [0, 1, -1, 127, 255, 256, -5, 1000, 65520, 1000000, 16777217, -16777217, 2147483647, -2147483648];

/**
 * The cast's documented semantics (round to nearest even from f32; trunc and wrap to ints;
 * x != 0 to bool). To f32 the value is left unrounded: the runner rounds outputs to f32, and the
 * gradient check differentiates this reference (a rounded identity has no useful derivative).
 */
function castValue(v: number, to: DType, saturate: boolean): number {
  return to === 'f32' ? v : roundToDtypeValue(to, v, saturate);
}

function castSamples(rng: SampleRng, from: DType): SampleInput[] {
  const out: SampleInput[] = [];
  for (const to of DTYPES) {
    const sats = isFp8(to) ? [false, true] : [false];
    for (const saturate of sats) {
      const attrs = { dtype: to, saturate };
      const random =
        from === 'bool' ? rng.tensor([5, 7], 'bool') : isInt(from) ? rng.tensor([5, 7], from, from === 'u8' ? { lo: 0, hi: 256 } : { lo: -300, hi: 300 }) : rng.tensor([5, 7], from, { scale: 40 });
      out.push({ inputs: [random], attrs, desc: `to ${to}${saturate ? ', saturating' : ''}`, ...(from === 'f32' && to === 'f32' ? {} : { noGrad: true }) });
      if (from === 'bool') continue;
      // Out-of-range float -> int conversions are unspecified (only NaN -> 0 and the u8 wrap are).
      let cands = isInt(from) ? CAST_INT_SPECIALS : CAST_FLOAT_SPECIALS;
      if (isInt(to)) cands = cands.filter((v) => v !== v || (Number.isFinite(v) && Math.abs(v) < 2 ** 31));
      const sp = specialsTensor(from, cands);
      out.push({ inputs: [sp], attrs, desc: `specials to ${to}${saturate ? ', saturating' : ''}`, noGrad: true });
    }
  }
  out.push({ inputs: [rng.tensor([0, 3], from)], attrs: { dtype: 'f32' }, desc: 'empty' });
  return out;
}

const castInfo: OpInfo = {
  op: 'cast',
  dtypes: DTYPES,
  samples: castSamples,
  reference: ([x], attrs) => {
    const to = attrs.dtype as DType;
    const saturate = attrs.saturate === true;
    const vals = Float64Array.from(x!.values, (v) => castValue(v, to, saturate));
    return [{ shape: x!.shape, dtype: to, values: vals }];
  },
  tfjs: (tf, [x], attrs) => {
    const to = { f32: 'float32', i32: 'int32', bool: 'bool' }[attrs.dtype as string];
    return to ? tf.cast(x, to) : null;
  },
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([3], 'f32')], attrs: { dtype: 'f64' }, error: 'AttrError', message: /cast: attribute 'dtype' expected a dtype .*got 'f64'/, desc: 'unknown dtype' },
    { inputs: [rng.tensor([3], 'f32')], attrs: {}, error: 'AttrError', message: /cast: attribute 'dtype' is required/, desc: 'missing dtype' },
    { inputs: [rng.tensor([3], 'f32')], attrs: { dtype: 'f16', saturate: 1 }, error: 'AttrError', message: /cast: attribute 'saturate' expected a boolean, got 1/, desc: 'saturate not a boolean' },
    { inputs: [rng.tensor([3], 'f32')], attrs: { dtype: 'f16', round: 'up' }, error: 'AttrError', message: /cast: unknown attribute 'round'/, desc: 'unknown attribute' },
    { ...disposedInput(rng), attrs: { dtype: 'i32' } },
  ],
};

// ---------------------------------------------------------------------------------------------
// copy, stopGradient

function identitySamples(rng: SampleRng, dtype: DType): SampleInput[] {
  const out: SampleInput[] = [[], [1], [7], [3, 5], [2, 0, 3], [5, 67]].map((shape) => ({
    inputs: [rng.tensor(shape, dtype, valuesOpts(dtype))],
    ...(sizeOf(shape) > 100 ? { noGrad: true, desc: 'larger' } : {}),
  }));
  if (isFloatDType(dtype)) out.push({ inputs: [specialsTensor(dtype, FLOAT_SPECIALS)], desc: 'special values bit for bit', noGrad: true });
  return out;
}

const copyInfo: OpInfo = {
  op: 'copy',
  dtypes: DTYPES,
  samples: identitySamples,
  reference: ([x]) => [x!],
  tfjs: (tf, [x]) => tf.clone(x),
  exact: true,
  grad: true,
  errors: (rng) => [disposedInput(rng), { inputs: [rng.tensor([3], 'f32')], attrs: { dtype: 'f16' }, error: 'AttrError', message: /copy: unknown attribute 'dtype'/, desc: 'unknown attribute' }],
};

// The gradient of stopGradient is zero by definition (the engine does not record it), which no
// finite difference of the identity can check; its values are.
const stopGradientInfo: OpInfo = {
  op: 'stopGradient',
  dtypes: DTYPES,
  samples: identitySamples,
  reference: ([x]) => [x!],
  tfjs: (tf, [x]) => tf.clone(x),
  exact: true,
  errors: (rng) => [disposedInput(rng, 'bf16')],
};

// ---------------------------------------------------------------------------------------------
// clip

const clipInfo: OpInfo = {
  op: 'clip',
  dtypes: NUMERIC,
  samples: (rng, dtype) => {
    if (isInt(dtype)) {
      const opts = valuesOpts(dtype);
      const bounds = dtype === 'u8' ? [{ min: 2, max: 9.5 }, { min: -3, max: 300 }, { min: 10, max: 30 }] : [{ min: -2.5, max: 3.7 }, { min: -10, max: 10 }, { min: -7.5, max: -1.5 }];
      return [
        ...bounds.map((attrs) => ({ inputs: [rng.tensor([3, 5], dtype, opts)], attrs, desc: 'fractional bounds round inward for integers' })),
        { inputs: [rng.tensor([0, 2], dtype, opts)], attrs: { min: 0, max: 5 }, desc: 'empty' },
      ];
    }
    const out: SampleInput[] = [
      { inputs: [rng.tensor([3, 5], dtype)], attrs: { min: -0.75, max: 1.25 } },
      { inputs: [rng.tensor([7], dtype)], attrs: { min: -0.3, max: 0.9 }, desc: 'bounds not representable in the dtype' },
      { inputs: [rng.tensor([], dtype)], attrs: { min: -0.5, max: 0.5 } },
      { inputs: [rng.tensor([2, 4], dtype)], attrs: { min: 0.5, max: 0.5 }, desc: 'min == max' },
      { inputs: [rng.tensor([4, 33], dtype, { scale: 3 })], attrs: { min: -1e9, max: 1e9 }, desc: 'nothing clipped', noGrad: true },
      { inputs: [rng.tensor([2, 0], dtype)], attrs: { min: 0, max: 1 }, desc: 'empty' },
      { inputs: [specialsTensor(dtype, [NaN, Infinity, -Infinity, -0, 2, -2, 0.25])], attrs: { min: -1, max: 1 }, desc: 'NaN stays NaN, infinities clip', noGrad: true },
    ];
    return out;
  },
  reference: ([x], attrs) => {
    let lo = attrs.min as number;
    let hi = attrs.max as number;
    if (isInt(x!.dtype)) {
      lo = Math.ceil(lo);
      hi = Math.floor(hi);
    }
    const vals = Float64Array.from(x!.values, (v) => (v !== v ? NaN : v < lo ? lo : v > hi ? hi : v));
    return [{ shape: x!.shape, dtype: x!.dtype, values: vals }];
  },
  tfjs: (tf, [x], attrs) => tf.clipByValue(x, attrs.min, attrs.max),
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([3], 'f32')], attrs: { min: 2, max: 1 }, error: 'AttrError', message: /clip: expected min <= max, got min=2 max=1/, desc: 'min > max' },
    { inputs: [rng.tensor([3], 'f32')], attrs: { min: 0 }, error: 'AttrError', message: /clip: attribute 'max' is required/, desc: 'missing max' },
    { inputs: [rng.tensor([3], 'f32')], attrs: { min: 'a', max: 1 }, error: 'AttrError', message: /clip: attribute 'min' expected a number, got 'a'/, desc: 'min not a number' },
    { inputs: [rng.tensor([3], 'bool')], attrs: { min: 0, max: 1 }, error: 'DTypeError', message: /clip: input 'x' must have dtype .*got bool/, desc: 'bool input' },
    { ...disposedInput(rng), attrs: { min: 0, max: 1 } },
  ],
};

// ---------------------------------------------------------------------------------------------
// fill

function fillValue(rng: SampleRng, dtype: DType, i: number): number {
  switch (dtype) {
    case 'bool':
      return [1, 0.5, -2, 1][i % 4]!;
    case 'u8':
      return [200, 3.9, 1, 255, -1][i % 5]!; // 3.9 -> 3, -1 wraps to 255 (as a cast would)
    case 'i32':
      return [7, -2.7, 123456, -1][i % 4]!;
    default: {
      // Not representable in general: the op rounds the value like a cast.
      const v = (rng.uniform(0.2, 3) * (i % 2 ? -1 : 1)) / 3;
      return i === 0 ? 1 / 3 : v;
    }
  }
}

const fillInfo: OpInfo = {
  op: 'fill',
  dtypes: DTYPES,
  samples: (rng, dtype) =>
    [[], [1], [3], [2, 5], [0, 4], [3, 1, 7], [40, 33]].map((shape, i) => ({
      inputs: [],
      attrs: { shape, dtype, value: fillValue(rng, dtype, i) },
    })),
  reference: (_inputs, attrs) => {
    const shape = attrs.shape as number[];
    const dtype = (attrs.dtype as DType | undefined) ?? 'f32';
    const v = roundToDtypeValue(dtype, attrs.value as number);
    return [host(shape, dtype, new Float64Array(sizeOf(shape)).fill(v))];
  },
  tfjs: (tf, _inputs, attrs) => tf.fill(attrs.shape, attrs.value, 'float32'),
  exact: true,
  errors: () => [
    { inputs: [], attrs: { shape: [-1, 2], dtype: 'f32', value: 1 }, error: 'ShapeError', message: /fill: expected a shape \(array of non-negative integers\), got \[-1,2\]/, desc: 'negative size' },
    { inputs: [], attrs: { shape: [2], dtype: 'f64', value: 1 }, error: 'AttrError', message: /fill: attribute 'dtype' expected a dtype/, desc: 'unknown dtype' },
    { inputs: [], attrs: { shape: [2], dtype: 'f32' }, error: 'AttrError', message: /fill: attribute 'value' is required/, desc: 'missing value' },
    { inputs: [], attrs: { shape: 'abc', value: 1 }, error: 'AttrError', message: /fill: attribute 'shape' expected an array of integers/, desc: 'shape not an array' },
  ],
};

// ---------------------------------------------------------------------------------------------
// reshape, broadcastTo

const RESHAPES: readonly { from: number[]; to: number[]; desc?: string }[] = [
  { from: [2, 3, 4], to: [6, 4] },
  { from: [2, 3, 4], to: [-1], desc: 'flatten with -1' },
  { from: [2, 3, 4], to: [4, -1, 2], desc: '-1 in the middle' },
  { from: [4, 6], to: [2, 2, 2, 3], desc: 'rank up' },
  { from: [], to: [1, 1], desc: 'scalar to [1, 1]' },
  { from: [1], to: [], desc: 'to a scalar' },
  { from: [5], to: [5, 1] },
  { from: [0, 3], to: [3, 0], desc: 'empty' },
  { from: [0, 3], to: [-1, 3], desc: 'empty with -1' },
];

function resolveShape(from: readonly number[], to: readonly number[]): number[] {
  const known = to.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  return to.map((d) => (d === -1 ? sizeOf(from) / known : d));
}

const reshapeInfo: OpInfo = {
  op: 'reshape',
  dtypes: DTYPES,
  samples: (rng, dtype) => RESHAPES.map(({ from, to, desc }) => ({ inputs: [rng.tensor(from, dtype, valuesOpts(dtype))], attrs: { shape: to }, ...(desc ? { desc } : {}) })),
  reference: ([x], attrs) => [host(resolveShape(x!.shape, attrs.shape as number[]), x!.dtype, x!.values)],
  tfjs: (tf, [x], attrs) => tf.reshape(x, attrs.shape),
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([2, 3], 'f32')], attrs: { shape: [4, 2] }, error: 'ShapeError', message: /reshape: cannot reshape \[2, 3\] \(6 elements\) to \[4, 2\]/, desc: 'size mismatch' },
    { inputs: [rng.tensor([2, 3], 'f32')], attrs: { shape: [-1, -1] }, error: 'AttrError', message: /reshape: at most one -1/, desc: 'two -1' },
    { inputs: [rng.tensor([2, 3], 'f32')], attrs: { shape: [-1, 4] }, error: 'ShapeError', message: /reshape: cannot reshape \[2, 3\]/, desc: '-1 that does not divide' },
    { inputs: [rng.tensor([0, 3], 'f32')], attrs: { shape: [-1, 0] }, error: 'ShapeError', message: /reshape: cannot reshape \[0, 3\]/, desc: '-1 with a zero-size dim' },
    { inputs: [rng.tensor([6], 'f32')], attrs: {}, error: 'AttrError', message: /reshape: attribute 'shape' is required/, desc: 'missing shape' },
    { inputs: [rng.tensor([6], 'f32')], attrs: { shape: [6], axis: 0 }, error: 'AttrError', message: /reshape: unknown attribute 'axis'/, desc: 'unknown attribute' },
    { ...disposedInput(rng, 'i32'), attrs: { shape: [6] } },
  ],
};

const BROADCASTS: readonly { from: number[]; to: number[]; desc?: string }[] = [
  { from: [3, 1], to: [3, 4] },
  { from: [], to: [2, 3], desc: 'scalar' },
  { from: [4], to: [2, 3, 4], desc: 'new leading dims' },
  { from: [1, 1], to: [1, 1], desc: 'nothing to broadcast' },
  { from: [2, 1, 3], to: [2, 5, 3] },
  { from: [1, 5], to: [4, 1, 5], desc: 'leading dim, kept size-1 dim' },
  { from: [1], to: [0], desc: 'to empty' },
  { from: [3], to: [2, 0, 3], desc: 'to empty, rank up' },
  { from: [17, 1], to: [17, 40], desc: 'larger' },
];

const broadcastToInfo: OpInfo = {
  op: 'broadcastTo',
  dtypes: DTYPES,
  samples: (rng, dtype) => BROADCASTS.map(({ from, to, desc }) => ({ inputs: [rng.tensor(from, dtype, valuesOpts(dtype))], attrs: { shape: to }, ...(desc ? { desc } : {}) })),
  reference: ([x], attrs) => {
    const shape = attrs.shape as number[];
    const map = broadcastIndexMap(x!.shape, shape);
    return [host(shape, x!.dtype, Float64Array.from(map, (i) => x!.values[i]!))];
  },
  tfjs: (tf, [x], attrs) => tf.broadcastTo(x, attrs.shape),
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([3], 'f32')], attrs: { shape: [4] }, error: 'ShapeError', message: /broadcastTo: shape \[3\] does not broadcast to \[4\]/, desc: 'size mismatch' },
    { inputs: [rng.tensor([2, 3], 'f32')], attrs: { shape: [3] }, error: 'ShapeError', message: /broadcastTo: shape \[2, 3\] does not broadcast to \[3\]/, desc: 'rank down' },
    { inputs: [rng.tensor([2], 'f32')], attrs: { shape: [2, -1] }, error: 'ShapeError', message: /broadcastTo: expected a shape/, desc: 'negative size' },
    { ...disposedInput(rng, 'u8'), attrs: { shape: [2, 3] } },
  ],
};

export const basicOpInfos: OpInfo[] = [whereInfo, castInfo, copyInfo, stopGradientInfo, clipInfo, fillInfo, reshapeInfo, broadcastToInfo];
