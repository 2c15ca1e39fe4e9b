/**
 * OpInfo records for the reductions (core ops/reduce.ts): sum, mean, max, min, logsumexp over
 * axes (keepDims, all axes, negative axes, size-1 and empty dims) and argmax/argmin (ties go to
 * the lowest index; NaN counts as the extreme).
 */
import { FLOAT_DTYPES, isFloatDType, type DType } from '@ring-linear/core';
import type { ErrorInput, HostTensor, OpInfo, SampleInput, SampleRng } from './types.js';
import { normAxes, reduceHost, reductionGroups } from '../host.js';
import { fillFrom, specialsTensor } from '../samples.js';

const SUMMABLE: readonly DType[] = [...FLOAT_DTYPES, 'i32'];
const ORDERED: readonly DType[] = [...FLOAT_DTYPES, 'i32', 'u8'];
type TensorOpts = Parameters<SampleRng['tensor']>[2];

interface ReduceCase {
  readonly shape: number[];
  readonly axes?: number[] | null;
  readonly keepDims?: boolean;
  readonly desc?: string;
  /** Reduces over an empty axis (only sum allows it). */
  readonly emptyAxis?: boolean;
  readonly large?: boolean;
}

const REDUCE_CASES: readonly ReduceCase[] = [
  { shape: [7], axes: null, desc: 'all axes' },
  { shape: [3, 5], axes: [1] },
  { shape: [3, 5], axes: [0], keepDims: true, desc: 'leading axis, keepDims' },
  { shape: [2, 3, 4], axes: [0, 2], desc: 'non-adjacent axes' },
  { shape: [2, 3, 4], axes: [-1], desc: 'negative axis' },
  { shape: [2, 3, 4], keepDims: true, desc: 'all axes (default), keepDims' },
  { shape: [], axes: null, desc: 'scalar' },
  { shape: [1, 5, 1], axes: [0, 2], desc: 'size-1 axes' },
  { shape: [2, 3, 4], axes: [], desc: 'no axes (identity)' },
  { shape: [0, 3], axes: [1], desc: 'empty kept dim' },
  { shape: [4, 0], axes: [1], desc: 'empty reduced axis', emptyAxis: true },
  { shape: [37, 129], axes: [1], desc: 'larger, trailing axis', large: true },
  { shape: [129, 33], axes: [0], desc: 'larger, leading axis', large: true },
];

function attrsOf(c: ReduceCase): Record<string, unknown> {
  const a: Record<string, unknown> = {};
  if (c.axes !== undefined) a.axes = c.axes;
  if (c.keepDims !== undefined) a.keepDims = c.keepDims;
  return a;
}

function valueOpts(dtype: DType): TensorOpts {
  return dtype === 'u8' ? { lo: 0, hi: 200 } : dtype === 'i32' ? { lo: -100, hi: 100 } : {};
}

function reduceSamples(rng: SampleRng, dtype: DType, allowEmptyAxis: boolean, opts: TensorOpts = valueOpts(dtype)): SampleInput[] {
  return REDUCE_CASES.filter((c) => allowEmptyAxis || !c.emptyAxis).map((c) => ({
    inputs: [rng.tensor(c.shape, dtype, opts)],
    attrs: attrsOf(c),
    ...(c.desc ? { desc: c.desc } : {}),
    ...(c.large ? { noGrad: true } : {}),
  }));
}

/** Reference reduction: axes from attrs (default all), keepDims (default false). */
function reduceRef(f: (vals: number[], positions: number[]) => number, dtype?: (x: HostTensor) => DType) {
  return ([x]: readonly HostTensor[], attrs: Record<string, unknown>): HostTensor[] => [
    reduceHost(x!, normAxes(attrs.axes, x!.shape.length), attrs.keepDims === true, f, dtype?.(x!) ?? x!.dtype),
  ];
}

/** Per output element: the reduced values through g (|x| for sums, ...). */
function reduceMagnitude(g: (vals: number[]) => number) {
  return ([x]: readonly HostTensor[], attrs: Record<string, unknown>): Float64Array[] => {
    const { groups } = reductionGroups(x!, normAxes(attrs.axes, x!.shape.length));
    return [Float64Array.from(groups, g)];
  };
}

const sumAbs = (v: number[]) => v.reduce((s, x) => s + Math.abs(x), 0);
const nanMax = (v: number[]) => (v.some((x) => x !== x) ? NaN : Math.max(...v));
const nanMin = (v: number[]) => (v.some((x) => x !== x) ? NaN : Math.min(...v));

function tfAxes(attrs: Record<string, unknown>): number[] | null {
  return (attrs.axes as number[] | null | undefined) ?? null;
}

function reduceErrors(op: string, okDtype: DType, badDtype: DType, emptyAxisError: boolean): (rng: SampleRng) => ErrorInput[] {
  return (rng) => {
    const errs: ErrorInput[] = [
      { inputs: [rng.tensor([2, 3], okDtype)], attrs: { axes: [2] }, error: 'AttrError', message: new RegExp(`${op}: axis must be an integer in \\[-2, 1\\] for a rank-2 tensor, got 2`), desc: 'axis out of range' },
      { inputs: [rng.tensor([2, 3], okDtype)], attrs: { axes: [0, -2] }, error: 'AttrError', message: new RegExp(`${op}: duplicate axes`), desc: 'duplicate axes' },
      { inputs: [rng.tensor([2, 3], okDtype)], attrs: { axes: 'rows' }, error: 'AttrError', message: new RegExp(`${op}: attribute 'axes' expected an array of integers`), desc: 'axes not a list' },
      { inputs: [rng.tensor([2, 3], okDtype)], attrs: { keepDims: 1 }, error: 'AttrError', message: new RegExp(`${op}: attribute 'keepDims' expected a boolean`), desc: 'keepDims not a boolean' },
      { inputs: [rng.tensor([2, 3], badDtype)], error: 'DTypeError', message: new RegExp(`${op}: input 'x' must have dtype .*got ${badDtype}`), desc: `${badDtype} input` },
      { inputs: [rng.tensor([2, 3], okDtype)], disposed: [0], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed input' },
    ];
    if (emptyAxisError) {
      errs.push({ inputs: [rng.tensor([4, 0], okDtype)], attrs: { axes: [1] }, error: 'ShapeError', message: new RegExp(`${op}: cannot reduce over an empty axis`), desc: 'empty axis' });
    }
    return errs;
  };
}

const sumInfo: OpInfo = {
  op: 'sum',
  dtypes: SUMMABLE,
  samples: (rng, dtype) => reduceSamples(rng, dtype, true),
  reference: reduceRef((v) => v.reduce((s, x) => s + x, 0)),
  magnitude: reduceMagnitude(sumAbs),
  tfjs: (tf, [x], attrs) => tf.sum(x, tfAxes(attrs), attrs.keepDims === true),
  grad: true,
  errors: reduceErrors('sum', 'f32', 'bool', false),
};

const meanInfo: OpInfo = {
  op: 'mean',
  dtypes: FLOAT_DTYPES,
  samples: (rng, dtype) => reduceSamples(rng, dtype, false),
  reference: reduceRef((v) => v.reduce((s, x) => s + x, 0) / v.length),
  magnitude: reduceMagnitude((v) => sumAbs(v) / Math.max(1, v.length)),
  tfjs: (tf, [x], attrs) => tf.mean(x, tfAxes(attrs), attrs.keepDims === true),
  grad: true,
  errors: reduceErrors('mean', 'f32', 'i32', true),
};

/** max/min: exact (they pick an element); NaN propagates; ties share the gradient (not checked). */
function extremumInfo(op: 'max' | 'min'): OpInfo {
  const pick = op === 'max' ? nanMax : nanMin;
  return {
    op,
    dtypes: ORDERED,
    samples: (rng, dtype) => {
      const out = reduceSamples(rng, dtype, false);
      out.push({ inputs: [rng.tensor([4, 9], dtype, { int: true, lo: 0, hi: 3 })], attrs: { axes: [1] }, desc: 'ties', noGrad: true });
      if (isFloatDType(dtype)) {
        out.push({
          inputs: [fillFrom(rng, [3, 4], dtype, [NaN, 1, -2, 0.5, 3, -1, 2, 0.25, -0.5, 1.5, -3, 0.75])],
          attrs: { axes: [1] },
          desc: 'NaN propagates',
          noGrad: true,
        });
      }
      return out;
    },
    reference: reduceRef(pick),
    tfjs: (tf, [x], attrs) => (op === 'max' ? tf.max : tf.min)(x, tfAxes(attrs), attrs.keepDims === true),
    exact: true,
    grad: true,
    errors: reduceErrors(op, 'f32', 'bool', true),
  };
}

const logsumexpInfo: OpInfo = {
  op: 'logsumexp',
  dtypes: FLOAT_DTYPES,
  samples: (rng, dtype) => [
    ...reduceSamples(rng, dtype, false, { scale: 2 }),
    // exp(100) overflows f32: only a max-subtracting implementation gets these right.
    { inputs: [rng.tensor([3, 6], dtype, { lo: 95, hi: 105 })], attrs: { axes: [1] }, desc: 'large values (stability)' },
    { inputs: [rng.tensor([3, 6], dtype, { lo: -105, hi: -95 })], attrs: { axes: [0] }, desc: 'large negative values (stability)' },
  ],
  reference: reduceRef((v) => {
    const m = Math.max(...v);
    return m + Math.log(v.reduce((s, x) => s + Math.exp(x - m), 0));
  }),
  // The result is about max + log(n): f32 rounding of both parts scales with their size.
  magnitude: reduceMagnitude((v) => Math.max(...v.map(Math.abs)) + Math.log(Math.max(1, v.length))),
  tfjs: (tf, [x], attrs) => tf.logSumExp(x, tfAxes(attrs), attrs.keepDims === true),
  grad: true,
  errors: reduceErrors('logsumexp', 'f32', 'i32', true),
};

// ---------------------------------------------------------------------------------------------
// argmax / argmin

const ARG_CASES: readonly { shape: number[]; axis?: number; keepDims?: boolean; desc?: string }[] = [
  { shape: [7], desc: 'default axis (-1)' },
  { shape: [3, 5], axis: 1 },
  { shape: [3, 5], axis: 0, keepDims: true, desc: 'leading axis, keepDims' },
  { shape: [2, 3, 4], axis: 1, desc: 'middle axis' },
  { shape: [2, 3, 4], axis: -1, desc: 'negative axis' },
  { shape: [1, 6], axis: 0, desc: 'size-1 axis' },
  { shape: [0, 4], axis: 1, desc: 'empty kept dim' },
  { shape: [5, 200], axis: 1, desc: 'larger' },
];

function argInfo(op: 'argmax' | 'argmin'): OpInfo {
  const better = op === 'argmax' ? (a: number, b: number) => a > b : (a: number, b: number) => a < b;
  return {
    op,
    dtypes: ORDERED,
    samples: (rng, dtype) => {
      const opts = valueOpts(dtype);
      const out: SampleInput[] = ARG_CASES.map(({ shape, axis, keepDims, desc }) => ({
        inputs: [rng.tensor(shape, dtype, opts)],
        attrs: { ...(axis !== undefined ? { axis } : {}), ...(keepDims !== undefined ? { keepDims } : {}) },
        ...(desc ? { desc } : {}),
      }));
      // Few distinct values: ties everywhere; the lowest index must win.
      out.push({ inputs: [rng.tensor([6, 9], dtype, { int: true, lo: 0, hi: 3 })], attrs: { axis: 1 }, desc: 'ties (lowest index wins)' });
      out.push({ inputs: [rng.tensor([9, 6], dtype, { int: true, lo: 0, hi: 2 })], attrs: { axis: 0 }, desc: 'ties along the leading axis' });
      if (isFloatDType(dtype)) {
        out.push({ inputs: [fillFrom(rng, [3, 4], dtype, [NaN, 1, -2, 0.5, 3, -1, 2, 0.25, -0.5, NaN, -3, 0.75])], attrs: { axis: 1 }, desc: 'NaN counts as the extreme' });
        out.push({ inputs: [specialsTensor(dtype, [-Infinity, 1, Infinity, -5, Infinity, -Infinity])], attrs: { axis: 0 }, desc: 'infinities' });
      }
      return out;
    },
    reference: ([x], attrs) => {
      const rank = x!.shape.length;
      const axis = (((attrs.axis as number | undefined) ?? -1) + rank) % rank;
      return [
        reduceHost(
          x!,
          [axis],
          attrs.keepDims === true,
          (vals, pos) => {
            let best = 0;
            for (let i = 0; i < vals.length; i++) {
              if (vals[i] !== vals[i]) return pos[i]!; // the first NaN wins
              if (better(vals[i]!, vals[best]!)) best = i;
            }
            return pos[best]!;
          },
          'i32',
        ),
      ];
    },
    tfjs: (tf, [x], attrs) => {
      // tfjs has no NaN rule for argmax: decline those samples.
      if (tf.any(tf.isNaN(x)).dataSync()[0]) return null;
      const rank = x.shape.length;
      const axis = (((attrs.axis as number | undefined) ?? -1) + rank) % rank;
      const r = (op === 'argmax' ? tf.argMax : tf.argMin)(x, axis);
      if (attrs.keepDims !== true) return r;
      const shape = [...x.shape];
      shape[axis] = 1;
      return tf.reshape(r, shape);
    },
    exact: true,
    errors: (rng) => [
      { inputs: [rng.tensor([2, 3], 'f32')], attrs: { axis: 2 }, error: 'AttrError', message: new RegExp(`${op}: axis must be an integer in \\[-2, 1\\] for a rank-2 tensor, got 2`), desc: 'axis out of range' },
      { inputs: [rng.tensor([3, 0], 'f32')], attrs: { axis: 1 }, error: 'ShapeError', message: new RegExp(`${op}: axis 1 of shape \\[3, 0\\] is empty`), desc: 'empty axis' },
      { inputs: [rng.tensor([3], 'bool')], error: 'DTypeError', message: new RegExp(`${op}: input 'x' must have dtype .*got bool`), desc: 'bool input' },
      { inputs: [rng.tensor([3], 'f32')], attrs: { axis: 0.5 }, error: 'AttrError', message: new RegExp(`${op}: attribute 'axis' expected an integer, got 0.5`), desc: 'fractional axis' },
      { inputs: [rng.tensor([3], 'f32')], attrs: { axes: [0] }, error: 'AttrError', message: new RegExp(`${op}: unknown attribute 'axes'`), desc: 'unknown attribute' },
      { inputs: [rng.tensor([3], 'i32')], disposed: [0], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed input' },
    ],
  };
}

export const reduceOpInfos: OpInfo[] = [
  sumInfo,
  meanInfo,
  extremumInfo('max'),
  extremumInfo('min'),
  logsumexpInfo,
  argInfo('argmax'),
  argInfo('argmin'),
];
