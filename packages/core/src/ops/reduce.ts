/**
 * Reductions over axes: sum, mean, max, min, logsumexp, argmax, argmin.
 * Low-precision inputs accumulate in f32 (or wider) and round once to the output dtype.
 */
import { defineOp, type TensorMeta } from '../op.js';
import { FLOAT_DTYPES, type DType } from '../dtype/dtype.js';
import { runOp1 } from '../engine.js';
import { normalizeAxes, normalizeAxis, sizeOf } from '../shape.js';
import { ShapeError, describeShape } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { broadcastTo, reshape } from './shape_basic.js';
import { div, equal, exp, mul, sub, cast } from './elementwise.js';

export interface ReduceAttrs extends Record<string, unknown> {
  /** Axes to reduce (normalized, sorted); null in the API means all. */
  axes: number[];
  keepDims: boolean;
}

export interface ReduceOptions {
  keepDims?: boolean;
}

function reducedShape(shape: readonly number[], axes: readonly number[], keepDims: boolean): number[] {
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}

const reduceAttrs = { axes: { kind: 'ints', default: null }, keepDims: { kind: 'bool', default: false } } as const;

function normalizeReduce(op: string, allowEmpty: boolean) {
  return ([x]: readonly TensorMeta[], a: ReduceAttrs): ReduceAttrs => {
    const axes = normalizeAxes(op, a.axes, x!.shape.length);
    if (!allowEmpty && axes.some((ax) => x!.shape[ax] === 0)) {
      throw new ShapeError(`${op}: cannot reduce over an empty axis (shape ${describeShape(x!.shape)}, axes [${axes.join(', ')}])`);
    }
    return { axes, keepDims: a.keepDims };
  };
}

/** The reduced output broadcast back to the input's shape (for gradients). */
function expandBack(y: Tensor, x: Tensor, attrs: ReduceAttrs): Tensor {
  const kept = reducedShape(x.shape, attrs.axes, true);
  return broadcastTo(reshape(y, kept), x.shape);
}

const SUMMABLE: readonly DType[] = [...FLOAT_DTYPES, 'i32'];
const ORDERED: readonly DType[] = [...FLOAT_DTYPES, 'i32', 'u8'];

defineOp<ReduceAttrs>({
  name: 'sum',
  doc: 'sum over axes (f32 accumulation for floats, exact for i32 within range)',
  inputs: [{ name: 'x', dtypes: SUMMABLE }],
  attrs: reduceAttrs,
  normalize: normalizeReduce('sum', true),
  infer: ([x], a) => [{ shape: reducedShape(x!.shape, a.axes, a.keepDims), dtype: x!.dtype }],
  grad: ({ inputs: [x], dys: [dy], attrs }) => [expandBack(dy!, x!, attrs)],
});

defineOp<ReduceAttrs>({
  name: 'mean',
  doc: 'mean over axes',
  inputs: [{ name: 'x', dtypes: FLOAT_DTYPES }],
  attrs: reduceAttrs,
  normalize: normalizeReduce('mean', false),
  infer: ([x], a) => [{ shape: reducedShape(x!.shape, a.axes, a.keepDims), dtype: x!.dtype }],
  grad: ({ inputs: [x], dys: [dy], attrs }) => {
    const n = sizeOf(attrs.axes.map((ax) => x!.shape[ax]!));
    return [div(expandBack(dy!, x!, attrs), n)];
  },
});

for (const name of ['max', 'min'] as const) {
  defineOp<ReduceAttrs>({
    name,
    doc: `${name} over axes (NaN propagates); the gradient is shared equally among tied extrema`,
    inputs: [{ name: 'x', dtypes: ORDERED }],
    attrs: reduceAttrs,
    normalize: normalizeReduce(name, false),
    infer: ([x], a) => [{ shape: reducedShape(x!.shape, a.axes, a.keepDims), dtype: x!.dtype }],
    grad: ({ inputs: [x], outputs: [y], dys: [dy], attrs }) => {
      const mask = cast(equal(x!, expandBack(y!, x!, attrs)), x!.dtype);
      const count = runOp1('sum', [mask], { axes: attrs.axes, keepDims: true });
      return [mul(expandBack(dy!, x!, attrs), div(mask, broadcastTo(count, x!.shape)))];
    },
  });
}

defineOp<ReduceAttrs>({
  name: 'logsumexp',
  doc: 'log(sum(exp(x))) over axes, computed stably (max subtracted first)',
  inputs: [{ name: 'x', dtypes: FLOAT_DTYPES }],
  attrs: reduceAttrs,
  normalize: normalizeReduce('logsumexp', false),
  infer: ([x], a) => [{ shape: reducedShape(x!.shape, a.axes, a.keepDims), dtype: x!.dtype }],
  grad: ({ inputs: [x], outputs: [y], dys: [dy], attrs }) => [
    mul(expandBack(dy!, x!, attrs), exp(sub(x!, expandBack(y!, x!, attrs)))),
  ],
  composite: ([x], attrs) => {
    const m = runOp1('max', [x!], { axes: attrs.axes, keepDims: true });
    const s = runOp1('sum', [exp(sub(x!, m))], { axes: attrs.axes, keepDims: true });
    const r = runOp1('add', [runOp1('log', [s]), m]);
    return [reshape(r, reducedShape(x!.shape, attrs.axes, attrs.keepDims))];
  },
});

export interface ArgReduceAttrs extends Record<string, unknown> {
  axis: number;
  keepDims: boolean;
}
for (const name of ['argmax', 'argmin'] as const) {
  defineOp<ArgReduceAttrs>({
    name,
    doc: `index (i32) of the ${name === 'argmax' ? 'largest' : 'smallest'} value along an axis; ties go to the lowest index; NaN counts as the extreme`,
    inputs: [{ name: 'x', dtypes: ORDERED }],
    attrs: { axis: { kind: 'int', default: -1 }, keepDims: { kind: 'bool', default: false } },
    normalize: ([x], a) => {
      const axis = normalizeAxis(name, a.axis, x!.shape.length);
      if (x!.shape[axis] === 0) throw new ShapeError(`${name}: axis ${axis} of shape ${describeShape(x!.shape)} is empty`);
      return { axis, keepDims: a.keepDims };
    },
    infer: ([x], a) => [{ shape: reducedShape(x!.shape, [a.axis], a.keepDims), dtype: 'i32' }],
    nonDifferentiable: true,
  });
}

type Axes = number | readonly number[] | null;
const reducer = (name: string) => (x: Tensor, axes: Axes = null, options: ReduceOptions = {}) =>
  runOp1(name, [x], { axes: axes === null ? null : typeof axes === 'number' ? [axes] : [...axes], keepDims: options.keepDims ?? false });

export const sum = reducer('sum');
export const mean = reducer('mean');
export const max = reducer('max');
export const min = reducer('min');
export const logsumexp = reducer('logsumexp');
export const argmax = (x: Tensor, axis = -1, options: ReduceOptions = {}) => runOp1('argmax', [x], { axis, keepDims: options.keepDims ?? false });
export const argmin = (x: Tensor, axis = -1, options: ReduceOptions = {}) => runOp1('argmin', [x], { axis, keepDims: options.keepDims ?? false });
