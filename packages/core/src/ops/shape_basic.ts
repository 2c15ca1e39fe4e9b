/** reshape (zero-copy view), broadcastTo (copy) and fill (creation): used by everything else. */
import { defineOp } from '../op.js';
import { DTYPES, type DType } from '../dtype/dtype.js';
import { runOp1 } from '../engine.js';
import { assertValidShape, sizeOf, type Shape } from '../shape.js';
import { AttrError, ShapeError, describeShape } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { reduceToShape } from './util.js';

interface ReshapeAttrs extends Record<string, unknown> {
  shape: number[];
}
defineOp<ReshapeAttrs>({
  name: 'reshape',
  doc: 'same data, new shape (zero-copy: shares storage); one dimension may be -1',
  inputs: [{ name: 'x' }],
  attrs: { shape: { kind: 'ints' } },
  normalize: ([x], a) => {
    const shape = a.shape;
    if (!Array.isArray(shape)) throw new AttrError(`reshape: expected a shape, got ${JSON.stringify(shape)}`);
    const size = sizeOf(x!.shape);
    const free = shape.filter((d) => d === -1).length;
    if (free > 1 || shape.some((d) => d < -1)) throw new AttrError(`reshape: at most one -1 and no other negative sizes, got ${describeShape(shape)}`);
    const known = sizeOf(shape.filter((d) => d !== -1));
    let out = shape;
    if (free === 1) {
      if (known === 0 || size % known !== 0) {
        throw new ShapeError(`reshape: cannot reshape ${describeShape(x!.shape)} (${size} elements) to ${describeShape(shape)}`);
      }
      out = shape.map((d) => (d === -1 ? size / known : d));
    }
    if (sizeOf(out) !== size) {
      throw new ShapeError(`reshape: cannot reshape ${describeShape(x!.shape)} (${size} elements) to ${describeShape(shape)} (${sizeOf(out)} elements)`);
    }
    return { shape: out };
  },
  infer: ([x], a) => [{ shape: a.shape, dtype: x!.dtype }],
  view: true,
  grad: ({ inputs: [x], dys: [dy] }) => [reshape(dy!, x!.shape)],
});

export function reshape(x: Tensor, shape: Shape): Tensor {
  return runOp1('reshape', [x], { shape: [...shape] });
}

/** Inserts a size-1 dimension at `axis`. */
export function expandDims(x: Tensor, axis = 0): Tensor {
  const r = x.rank + 1;
  const ax = axis < 0 ? axis + r : axis;
  if (!Number.isInteger(ax) || ax < 0 || ax >= r) throw new AttrError(`expandDims: axis must be in [${-r}, ${r - 1}], got ${axis}`);
  const s = [...x.shape];
  s.splice(ax, 0, 1);
  return reshape(x, s);
}

/** Removes size-1 dimensions (all of them, or the given axes, which must have size 1). */
export function squeeze(x: Tensor, axes?: readonly number[]): Tensor {
  const drop = new Set((axes ?? x.shape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0)).map((a) => (a < 0 ? a + x.rank : a)));
  for (const a of drop) {
    if (x.shape[a] !== 1) throw new ShapeError(`squeeze: axis ${a} of ${describeShape(x.shape)} has size ${x.shape[a]}, not 1`);
  }
  return reshape(x, x.shape.filter((_, i) => !drop.has(i)));
}

interface BroadcastAttrs extends Record<string, unknown> {
  shape: number[];
}
defineOp<BroadcastAttrs>({
  name: 'broadcastTo',
  doc: 'NumPy broadcast to a shape (a copy)',
  inputs: [{ name: 'x' }],
  attrs: { shape: { kind: 'ints' } },
  normalize: ([x], a) => {
    assertValidShape(a.shape, 'broadcastTo');
    const xs = x!.shape;
    const ok = xs.length <= a.shape.length && xs.every((d, i) => d === 1 || d === a.shape[a.shape.length - xs.length + i]);
    if (!ok) throw new ShapeError(`broadcastTo: shape ${describeShape(xs)} does not broadcast to ${describeShape(a.shape)}`);
    return a;
  },
  infer: ([x], a) => [{ shape: a.shape, dtype: x!.dtype }],
  grad: ({ inputs: [x], dys: [dy] }) => [reduceToShape(dy!, x!.shape)],
});

export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  return runOp1('broadcastTo', [x], { shape: [...shape] });
}

interface FillAttrs extends Record<string, unknown> {
  shape: number[];
  dtype: DType;
  value: number;
}
defineOp<FillAttrs>({
  name: 'fill',
  doc: 'a tensor of one value (the value is rounded to the dtype as a cast would)',
  inputs: [],
  attrs: { shape: { kind: 'ints' }, dtype: { kind: 'dtype', default: 'f32' }, value: { kind: 'number' } },
  normalize: (_m, a) => {
    assertValidShape(a.shape, 'fill');
    return a;
  },
  infer: (_m, a) => [{ shape: a.shape, dtype: a.dtype }],
  nonDifferentiable: true,
});

export function full(shape: Shape, value: number | boolean, dtype: DType = typeof value === 'boolean' ? 'bool' : 'f32'): Tensor {
  return runOp1('fill', [], { shape: [...shape], dtype, value: Number(value) });
}
export const zeros = (shape: Shape, dtype: DType = 'f32') => full(shape, 0, dtype);
export const ones = (shape: Shape, dtype: DType = 'f32') => full(shape, 1, dtype);
export const zerosLike = (x: Tensor) => full(x.shape, 0, x.dtype);
export const onesLike = (x: Tensor) => full(x.shape, 1, x.dtype);
export { DTYPES };
