/**
 * Creation ops: arange, causalMask, and the random ops randomUniform and randomNormal (plus
 * dropout, built from a uniform draw and where). (fill/full/zeros/ones live in shape_basic.ts.)
 *
 * Random ops are counter-based (rng/philox.ts): each takes its Philox key and counter offset as
 * attributes, drawn from a Generator, so the same seed gives the same numbers on every backend.
 */
import { defineOp } from '../op.js';
import { FLOAT_DTYPES, isFloatDType, type DType } from '../dtype/dtype.js';
import { runOp1, tidy } from '../engine.js';
import { assertValidShape, sizeOf, type Shape } from '../shape.js';
import { AttrError, DTypeError, describeShape } from '../errors.js';
import { Tensor } from '../tensor.js';
import { Generator, getDefaultGenerator, PHILOX_ATTR_SPECS, type PhiloxAttrs } from '../rng/philox.js';
import { cast, greaterEqual, lessEqual, mul, where } from './elementwise.js';
import { reshape } from './shape_basic.js';

const I32_MIN = -2147483648;
const I32_MAX = 2147483647;
/** Largest element count a creation op makes (keeps flat indices exact in i32 on every backend). */
const MAX_ELEMENTS = I32_MAX;

// ---------------------------------------------------------------------------------------------
// arange

export interface ArangeAttrs extends Record<string, unknown> {
  start: number;
  stop: number;
  step: number;
  dtype: DType;
}

const ARANGE_DTYPES: readonly DType[] = [...FLOAT_DTYPES, 'i32'];

/** Number of elements of arange(start, stop, step): max(0, ceil((stop - start) / step)) (NumPy). */
export function arangeSize(start: number, stop: number, step: number): number {
  return Math.max(0, Math.ceil((stop - start) / step));
}

defineOp<ArangeAttrs>({
  name: 'arange',
  doc: 'values start + i*step for i in [0, ceil((stop - start) / step)) (NumPy semantics), computed in float64 and ' +
    'rounded to the dtype; i32 needs integer start/step and values in int32 range',
  inputs: [],
  attrs: {
    start: { kind: 'number' },
    stop: { kind: 'number' },
    step: { kind: 'number', default: 1 },
    dtype: { kind: 'dtype', default: 'f32' },
  },
  normalize: (_m, a) => {
    const { start, stop, step, dtype } = a;
    if (![start, stop, step].every(Number.isFinite)) {
      throw new AttrError(`arange: expected finite start, stop and step, got start=${start} stop=${stop} step=${step}`);
    }
    if (step === 0) throw new AttrError('arange: step must be non-zero, got 0');
    if (!ARANGE_DTYPES.includes(dtype)) throw new DTypeError(`arange: dtype must be one of ${ARANGE_DTYPES.join('|')}, got ${dtype}`);
    const n = arangeSize(start, stop, step);
    if (n > MAX_ELEMENTS) throw new AttrError(`arange: at most ${MAX_ELEMENTS} elements, got ${n} (start=${start} stop=${stop} step=${step})`);
    if (dtype === 'i32') {
      if (!Number.isInteger(start) || !Number.isInteger(step)) {
        throw new AttrError(`arange: dtype i32 needs integer start and step, got start=${start} step=${step}`);
      }
      const last = n > 0 ? start + (n - 1) * step : start;
      if (start < I32_MIN || start > I32_MAX || last < I32_MIN || last > I32_MAX) {
        throw new AttrError(`arange: values from ${start} to ${last} do not fit in i32`);
      }
    }
    return a;
  },
  infer: (_m, a) => [{ shape: [arangeSize(a.start, a.stop, a.step)], dtype: a.dtype }],
  nonDifferentiable: true,
});

/**
 * Evenly spaced values, NumPy style: `arange(stop)` is [0, stop); `arange(start, stop, step)`.
 * dtype f32 (default), another float dtype, or i32 (integer start and step).
 */
export function arange(start: number, stop?: number, step = 1, dtype: DType = 'f32'): Tensor {
  if (stop === undefined) return runOp1('arange', [], { start: 0, stop: start, step, dtype });
  return runOp1('arange', [], { start, stop, step, dtype });
}

// ---------------------------------------------------------------------------------------------
// causalMask

export interface CausalMaskAttrs extends Record<string, unknown> {
  rows: number;
  cols: number;
  offset: number;
}

defineOp<CausalMaskAttrs>({
  name: 'causalMask',
  doc: 'bool [rows, cols], true where j <= i + offset (query i may attend to key j); offset = number of cached ' +
    'keys before the first query',
  inputs: [],
  attrs: {
    rows: { kind: 'int', min: 0 },
    cols: { kind: 'int', min: 0 },
    offset: { kind: 'int', default: 0 },
  },
  normalize: (_m, a) => {
    if (a.rows * a.cols > MAX_ELEMENTS) {
      throw new AttrError(`causalMask: at most ${MAX_ELEMENTS} elements, got rows=${a.rows} x cols=${a.cols}`);
    }
    const lim = I32_MAX - Math.max(a.rows, a.cols);
    if (Math.abs(a.offset) > lim) throw new AttrError(`causalMask: |offset| must be <= ${lim}, got ${a.offset}`);
    return a;
  },
  infer: (_m, a) => [{ shape: [a.rows, a.cols], dtype: 'bool' }],
  nonDifferentiable: true,
  // j <= i + offset, with i a column [rows, 1] and j a row [1, cols] (broadcast).
  composite: (_inputs, { rows, cols, offset }) => {
    const i = reshape(arange(offset, offset + rows, 1, 'i32'), [rows, 1]);
    const j = reshape(arange(0, cols, 1, 'i32'), [1, cols]);
    return [lessEqual(j, i)];
  },
});

export interface CausalMaskOptions {
  /** Keys before the first query (cache length when decoding). Default 0. */
  offset?: number;
}

/** bool [rows, cols]: true where key j is visible to query i (j <= i + offset). */
export function causalMask(rows: number, cols: number, options: CausalMaskOptions = {}): Tensor {
  return runOp1('causalMask', [], { rows, cols, offset: options.offset ?? 0 });
}

// ---------------------------------------------------------------------------------------------
// Random ops

export interface RandomUniformAttrs extends PhiloxAttrs, Record<string, unknown> {
  shape: number[];
  dtype: DType;
  low: number;
  high: number;
}

export interface RandomNormalAttrs extends PhiloxAttrs, Record<string, unknown> {
  shape: number[];
  dtype: DType;
  mean: number;
  std: number;
}

function checkRandomShapeDType(op: string, shape: unknown, dtype: DType): void {
  assertValidShape(shape, op);
  if (sizeOf(shape) > MAX_ELEMENTS) throw new AttrError(`${op}: at most ${MAX_ELEMENTS} elements, got shape ${describeShape(shape)}`);
  if (!isFloatDType(dtype)) throw new DTypeError(`${op}: dtype must be a float dtype (${FLOAT_DTYPES.join('|')}), got ${dtype}`);
}

defineOp<RandomUniformAttrs>({
  name: 'randomUniform',
  doc: 'uniform draws in [low, high) from Philox4x32-10 (rng/philox.ts defines the bits), f32 then rounded to the dtype',
  inputs: [],
  attrs: {
    shape: { kind: 'ints' },
    dtype: { kind: 'dtype', default: 'f32' },
    low: { kind: 'number', default: 0 },
    high: { kind: 'number', default: 1 },
    ...PHILOX_ATTR_SPECS,
  },
  normalize: (_m, a) => {
    checkRandomShapeDType('randomUniform', a.shape, a.dtype);
    if (!Number.isFinite(a.low) || !Number.isFinite(a.high) || !(a.low <= a.high)) {
      throw new AttrError(`randomUniform: expected finite low <= high, got low=${a.low} high=${a.high}`);
    }
    return a;
  },
  infer: (_m, a) => [{ shape: a.shape, dtype: a.dtype }],
  nonDifferentiable: true,
});

defineOp<RandomNormalAttrs>({
  name: 'randomNormal',
  doc: 'normal draws mean + std * z, z by Box-Muller from Philox4x32-10 (rng/philox.ts defines it), f32 then rounded to the dtype',
  inputs: [],
  attrs: {
    shape: { kind: 'ints' },
    dtype: { kind: 'dtype', default: 'f32' },
    mean: { kind: 'number', default: 0 },
    std: { kind: 'number', default: 1 },
    ...PHILOX_ATTR_SPECS,
  },
  normalize: (_m, a) => {
    checkRandomShapeDType('randomNormal', a.shape, a.dtype);
    if (!Number.isFinite(a.mean) || !Number.isFinite(a.std) || !(a.std >= 0)) {
      throw new AttrError(`randomNormal: expected finite mean and finite std >= 0, got mean=${a.mean} std=${a.std}`);
    }
    return a;
  },
  infer: (_m, a) => [{ shape: a.shape, dtype: a.dtype }],
  nonDifferentiable: true,
});

function generatorOf(op: string, g: Generator | undefined): Generator {
  if (g === undefined) return getDefaultGenerator();
  if (!(g instanceof Generator)) throw new AttrError(`${op}: option 'generator' must be a Generator, got ${typeof g}`);
  return g;
}

/**
 * Runs a random op with the generator's next counters; the generator advances only when the op
 * was accepted (a rejected call leaves the stream where it was).
 */
function withCounters(op: string, g: Generator | undefined, shape: Shape, attrs: Record<string, unknown>): Tensor {
  const gen = generatorOf(op, g);
  assertValidShape(shape, op);
  const out = runOp1(op, [], { shape: [...shape], ...attrs, ...gen.peek() });
  gen.advance(out.size);
  return out;
}

export interface RandomUniformOptions {
  low?: number;
  high?: number;
  dtype?: DType;
  generator?: Generator;
}

/** Uniform draws in [low, high) (default [0, 1)), f32 unless `dtype` says otherwise. */
export function randomUniform(shape: Shape, options: RandomUniformOptions = {}): Tensor {
  return withCounters('randomUniform', options.generator, shape, {
    low: options.low ?? 0,
    high: options.high ?? 1,
    dtype: options.dtype ?? 'f32',
  });
}

export interface RandomNormalOptions {
  mean?: number;
  std?: number;
  dtype?: DType;
  generator?: Generator;
}

/** Normal draws with the given mean and standard deviation (default 0, 1). */
export function randomNormal(shape: Shape, options: RandomNormalOptions = {}): Tensor {
  return withCounters('randomNormal', options.generator, shape, {
    mean: options.mean ?? 0,
    std: options.std ?? 1,
    dtype: options.dtype ?? 'f32',
  });
}

export interface DropoutOptions {
  generator?: Generator;
}

/**
 * Inverted dropout: each element is kept with probability 1 - p and scaled by 1/(1 - p), else 0.
 * The keep mask is `u >= p` for a uniform draw u in [0, 1) (f32; p is rounded to f32), made once
 * and used through `where`, so the gradient sees the same mask. p = 1 gives zeros. The scaling is
 * done in f32 for low-precision x (one rounding to x's dtype). p = 0 returns a copy of x and draws
 * nothing.
 */
export function dropout(x: Tensor, p: number, options: DropoutOptions = {}): Tensor {
  if (!(x instanceof Tensor)) throw new DTypeError(`dropout: x must be a Tensor, got ${typeof x}`);
  x.live('dropout: x'); // DisposedTensorError before anything is drawn
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new AttrError(`dropout: p must be a number in [0, 1], got ${p}`);
  if (!isFloatDType(x.dtype)) throw new DTypeError(`dropout: x must have a float dtype (${FLOAT_DTYPES.join('|')}), got ${x.dtype}`);
  const gen = generatorOf('dropout', options.generator);
  if (p === 0) return runOp1('copy', [x]);
  return tidy(() => {
    const keepMask = greaterEqual(randomUniform(x.shape, { generator: gen }), p);
    const scale = p < 1 ? 1 / (1 - p) : 0;
    const xf = x.dtype === 'f32' ? x : cast(x, 'f32');
    const y = where(keepMask, mul(xf, scale), 0);
    return x.dtype === 'f32' ? y : cast(y, x.dtype);
  });
}
