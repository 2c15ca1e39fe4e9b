/**
 * Shape ops that move data: transpose/permute, slice, concat, split, pad, flip, tile.
 * Every one returns a new contiguous tensor (reshape is the only view, see shape_basic.ts) and
 * works for every dtype; kernels copy raw storage codes, so they are exact.
 *
 * Error classes: an attribute that does not fit the input (a perm that is not a permutation, a
 * slice past the end, split sizes that do not add up, negative padding) is an AttrError; tensors
 * whose shapes do not fit together (concat pieces, a rank-0 input where an axis is needed) give a
 * ShapeError; mixed dtypes give a DTypeError. Messages say what was expected and what came.
 */
import { defineOp, type TensorMeta } from '../op.js';
import { runOp, runOp1, tensor } from '../engine.js';
import { normalizeAxes, normalizeAxis } from '../shape.js';
import { AttrError, ShapeError, describeShape } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { broadcastTo, reshape } from './shape_basic.js';
import { assertSameDType } from './util.js';

/** Normalizes the axis of an op that works along one axis; rank-0 inputs have none (ShapeError). */
export function axisOf(op: string, x: TensorMeta, axis: number, what = 'x'): number {
  if (x.shape.length === 0) throw new ShapeError(`${op}: '${what}' must have rank >= 1 to work along an axis, got a scalar (shape [])`);
  return normalizeAxis(op, axis, x.shape.length);
}

const list = (xs: readonly number[]) => `[${xs.join(', ')}]`;

// ---------------------------------------------------------------------------------------------
// transpose / permute

interface TransposeAttrs extends Record<string, unknown> {
  /** Output dim i is input dim perm[i]; null = reversed dims. */
  perm: number[] | null;
}

/** The inverse of a permutation: inv[perm[i]] = i. */
export function inversePermutation(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

defineOp<TransposeAttrs>({
  name: 'transpose',
  doc: 'permutes dimensions: output dim i is input dim perm[i] (default: reversed); a copy',
  inputs: [{ name: 'x' }],
  attrs: { perm: { kind: 'ints', default: null } },
  normalize: ([x], a) => {
    const r = x!.shape.length;
    const perm = a.perm ?? Array.from({ length: r }, (_, i) => r - 1 - i);
    if (perm.length !== r) {
      throw new AttrError(`transpose: perm must have one entry per dimension of ${describeShape(x!.shape)} (${r}), got ${list(perm)}`);
    }
    const norm = perm.map((p) => (p < 0 ? p + r : p));
    const seen = new Set(norm);
    if (seen.size !== r || norm.some((p) => p < 0 || p >= r)) {
      throw new AttrError(`transpose: perm must be a permutation of 0..${r - 1} (negative entries count from the end), got ${list(perm)}`);
    }
    return { perm: norm };
  },
  infer: ([x], a) => [{ shape: a.perm!.map((p) => x!.shape[p]!), dtype: x!.dtype }],
  grad: ({ dys: [dy], attrs }) => [transpose(dy!, inversePermutation(attrs.perm!))],
});

/** Permutes dimensions (output dim i is input dim perm[i]); default reverses them. A copy. */
export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  return runOp1('transpose', [x], { perm: perm ? [...perm] : null });
}

/** Alias of transpose with a required permutation (PyTorch's name). */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  return transpose(x, perm);
}

// ---------------------------------------------------------------------------------------------
// slice

interface SliceAttrs extends Record<string, unknown> {
  begin: number[];
  size: number[];
}

defineOp<SliceAttrs>({
  name: 'slice',
  doc: 'a box of x: begin[d] .. begin[d]+size[d] per dim (size -1 = to the end; missing trailing entries take whole dims); a copy',
  inputs: [{ name: 'x' }],
  attrs: { begin: { kind: 'ints' }, size: { kind: 'ints' } },
  normalize: ([x], a) => {
    const shape = x!.shape;
    const r = shape.length;
    if (a.begin.length > r || a.size.length > r) {
      throw new AttrError(
        `slice: begin and size may have at most ${r} entries for shape ${describeShape(shape)}, got begin ${list(a.begin)}, size ${list(a.size)}`,
      );
    }
    const begin: number[] = [];
    const size: number[] = [];
    for (let d = 0; d < r; d++) {
      const dim = shape[d]!;
      const b = a.begin[d] ?? 0;
      if (b < 0 || b > dim) {
        throw new AttrError(`slice: begin[${d}] must be in [0, ${dim}] for shape ${describeShape(shape)}, got ${b}`);
      }
      let s = a.size[d] ?? -1;
      if (s === -1) s = dim - b;
      else if (s < 0 || b + s > dim) {
        throw new AttrError(
          `slice: size[${d}] must be -1 or in [0, ${dim - b}] (begin ${b}, dimension ${dim} of shape ${describeShape(shape)}), got ${s}`,
        );
      }
      begin.push(b);
      size.push(s);
    }
    return { begin, size };
  },
  infer: ([x], a) => [{ shape: a.size, dtype: x!.dtype }],
  // The slice's gradient is dy placed back in a zero tensor of x's shape.
  grad: ({ inputs: [x], dys: [dy], attrs }) => [
    pad(dy!, attrs.begin.map((b, d) => [b, x!.shape[d]! - b - attrs.size[d]!] as [number, number])),
  ],
});

/**
 * x[begin[0] : begin[0]+size[0], ...]. `size[d] = -1` takes the rest of dim d. Lists shorter than
 * the rank cover the leading dims; the remaining dims are taken whole. Begins are not negative.
 */
export function slice(x: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
  return runOp1('slice', [x], { begin: [...begin], size: [...size] });
}

/**
 * x[..., start:end, ...] along one axis, Python-style ends: negative start/end count from the end
 * of the axis; `end` defaults to the axis length. Out-of-range ends are an AttrError (no clamping).
 */
export function sliceAxis(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const ax = axisOf('sliceAxis', x, axis);
  const n = x.shape[ax]!;
  const wrap = (v: number, name: string) => {
    if (!Number.isInteger(v) || v < -n || v > n) {
      throw new AttrError(`sliceAxis: ${name} must be an integer in [${-n}, ${n}] for axis ${ax} of ${describeShape(x.shape)}, got ${v}`);
    }
    return v < 0 ? v + n : v;
  };
  const s = wrap(start, 'start');
  const e = wrap(end ?? n, 'end');
  if (e < s) throw new AttrError(`sliceAxis: end (${end}) must not come before start (${start}) on an axis of length ${n}`);
  const begin = x.shape.map((_, d) => (d === ax ? s : 0));
  const size = x.shape.map((dim, d) => (d === ax ? e - s : dim));
  return slice(x, begin, size);
}

// ---------------------------------------------------------------------------------------------
// concat / split

interface AxisAttrs extends Record<string, unknown> {
  axis: number;
}

defineOp<AxisAttrs>({
  name: 'concat',
  doc: 'joins tensors along an axis (same dtype and rank, equal sizes on the other axes; empty pieces allowed)',
  inputs: [],
  variadic: { minInputs: 1 },
  attrs: { axis: { kind: 'int', default: 0 } },
  normalize: (metas, a) => ({ axis: axisOf('concat', metas[0]!, a.axis, 'input 0') }),
  infer: (metas, { axis }) => {
    const dtype = assertSameDType('concat', metas);
    const s0 = metas[0]!.shape;
    let total = 0;
    metas.forEach((m, i) => {
      const ok = m.shape.length === s0.length && m.shape.every((d, j) => j === axis || d === s0[j]);
      if (!ok) {
        throw new ShapeError(
          `concat: input ${i} has shape ${describeShape(m.shape)}; expected rank ${s0.length} and the sizes of input 0 ` +
            `${describeShape(s0)} on every axis but ${axis}`,
        );
      }
      total += m.shape[axis]!;
    });
    return [{ shape: s0.map((d, j) => (j === axis ? total : d)), dtype }];
  },
  grad: ({ inputs, dys: [dy], attrs }) => split(dy!, inputs.map((t) => t.shape[attrs.axis]!), attrs.axis),
});

/** Joins tensors along `axis` (default 0). */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs)) throw new AttrError(`concat: expected an array of tensors, got ${typeof xs}`);
  return runOp1('concat', xs, { axis });
}

interface SplitAttrs extends Record<string, unknown> {
  /** Piece sizes along the axis; one entry may be -1 (the rest). */
  sizes: number[];
  axis: number;
}

defineOp<SplitAttrs>({
  name: 'split',
  doc: 'cuts x into pieces along an axis (sizes sum to the axis length; one may be -1 = the rest)',
  inputs: [{ name: 'x' }],
  attrs: { sizes: { kind: 'ints' }, axis: { kind: 'int', default: 0 } },
  normalize: ([x], a) => {
    const axis = axisOf('split', x!, a.axis);
    const dim = x!.shape[axis]!;
    const free = a.sizes.filter((s) => s === -1).length;
    if (a.sizes.length === 0 || free > 1 || a.sizes.some((s) => s < -1)) {
      throw new AttrError(`split: sizes must be a non-empty list of sizes >= 0 with at most one -1, got ${list(a.sizes)}`);
    }
    const known = a.sizes.reduce((p, s) => (s === -1 ? p : p + s), 0);
    const bad = free ? known > dim : known !== dim;
    if (bad) {
      throw new AttrError(
        `split: sizes ${list(a.sizes)} must add up to ${dim} (axis ${axis} of ${describeShape(x!.shape)})${free ? ' or less with a -1' : ''}, got ${known}`,
      );
    }
    return { sizes: a.sizes.map((s) => (s === -1 ? dim - known : s)), axis };
  },
  infer: ([x], { sizes, axis }) => sizes.map((s) => ({ shape: x!.shape.map((d, j) => (j === axis ? s : d)), dtype: x!.dtype })),
  grad: ({ dys, attrs }) => [concat(dys, attrs.axis)],
});

/**
 * Splits x along `axis` (default 0): into `count` equal pieces (the axis length must divide), or
 * into pieces of the given sizes (one may be -1 = the rest).
 */
export function split(x: Tensor, sizesOrCount: number | readonly number[], axis = 0): Tensor[] {
  let sizes: number[];
  if (typeof sizesOrCount === 'number') {
    const count = sizesOrCount;
    const ax = axisOf('split', x, axis);
    const dim = x.shape[ax]!;
    if (!Number.isInteger(count) || count < 1) throw new AttrError(`split: count must be an integer >= 1, got ${count}`);
    if (dim % count !== 0) {
      throw new AttrError(`split: axis ${ax} of ${describeShape(x.shape)} has length ${dim}, which does not divide into ${count} equal pieces`);
    }
    sizes = new Array<number>(count).fill(dim / count);
  } else {
    sizes = [...sizesOrCount];
  }
  return runOp('split', [x], { sizes, axis });
}

// ---------------------------------------------------------------------------------------------
// pad

interface PadAttrs extends Record<string, unknown> {
  /** One [before, after] pair per dimension. */
  paddings: [number, number][];
  value: number;
}

defineOp<PadAttrs>({
  name: 'pad',
  doc: 'constant padding: one [before, after] pair (non-negative) per dimension; the value is rounded to the dtype as a cast would',
  inputs: [{ name: 'x' }],
  attrs: { paddings: { kind: 'any' }, value: { kind: 'number', default: 0 } },
  normalize: ([x], a) => {
    const r = x!.shape.length;
    const p = a.paddings as unknown;
    const pairOk = (q: unknown) =>
      Array.isArray(q) && q.length === 2 && q.every((v) => Number.isInteger(v) && (v as number) >= 0);
    if (!Array.isArray(p) || p.length !== r || !p.every(pairOk)) {
      throw new AttrError(
        `pad: paddings must be ${r} pairs [before, after] of integers >= 0 (one per dimension of ${describeShape(x!.shape)}), got ${JSON.stringify(p)}`,
      );
    }
    return { paddings: (p as [number, number][]).map(([b, e]) => [b, e] as [number, number]), value: a.value };
  },
  infer: ([x], a) => [{ shape: x!.shape.map((d, i) => d + a.paddings[i]![0] + a.paddings[i]![1]), dtype: x!.dtype }],
  grad: ({ inputs: [x], dys: [dy], attrs }) => [slice(dy!, attrs.paddings.map(([b]) => b), [...x!.shape])],
});

/**
 * Constant padding. `paddings` has exactly one [before, after] pair per dimension, in dimension
 * order (unlike PyTorch's F.pad, which lists the last dims first and may omit leading ones).
 */
export function pad(x: Tensor, paddings: readonly (readonly [number, number])[], value = 0): Tensor {
  return runOp1('pad', [x], { paddings: paddings.map((q) => (Array.isArray(q) ? [...q] : q)), value });
}

// ---------------------------------------------------------------------------------------------
// flip / tile

interface FlipAttrs extends Record<string, unknown> {
  axes: number[];
}

defineOp<FlipAttrs>({
  name: 'flip',
  doc: 'reverses the order of elements along the given axes',
  inputs: [{ name: 'x' }],
  attrs: { axes: { kind: 'ints' } },
  normalize: ([x], a) => ({ axes: normalizeAxes('flip', a.axes, x!.shape.length) }),
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  grad: ({ dys: [dy], attrs }) => [flip(dy!, attrs.axes)],
  // Fallback: one gather per axis with a reversed index list written from the host.
  composite: ([x], { axes }) => {
    let y = x!;
    for (const ax of axes) {
      const n = y.shape[ax]!;
      const rev = tensor(Int32Array.from({ length: n }, (_, i) => n - 1 - i), [n], 'i32', y.live('flip').backend);
      y = runOp1('gather', [y, rev], { axis: ax });
    }
    return [axes.length ? y : runOp1('copy', [y])];
  },
});

/** Reverses x along the given axes (a number or a list; negative axes count from the end). */
export function flip(x: Tensor, axes: number | readonly number[]): Tensor {
  return runOp1('flip', [x], { axes: typeof axes === 'number' ? [axes] : [...axes] });
}

interface TileAttrs extends Record<string, unknown> {
  reps: number[];
}

defineOp<TileAttrs>({
  name: 'tile',
  doc: 'repeats x reps[d] times along each dim d (one rep count >= 0 per dimension)',
  inputs: [{ name: 'x' }],
  attrs: { reps: { kind: 'ints' } },
  normalize: ([x], a) => {
    if (a.reps.length !== x!.shape.length || a.reps.some((r) => r < 0)) {
      throw new AttrError(
        `tile: reps must have one count >= 0 per dimension of ${describeShape(x!.shape)} (${x!.shape.length}), got ${list(a.reps)}`,
      );
    }
    return a;
  },
  infer: ([x], a) => [{ shape: x!.shape.map((d, i) => d * a.reps[i]!), dtype: x!.dtype }],
  grad: ({ inputs: [x], dys: [dy], attrs }) => {
    // dy viewed as [r0, d0, r1, d1, ...]: summing the rep axes gives x's gradient.
    const split2 = x!.shape.flatMap((d, i) => [attrs.reps[i]!, d]);
    const repAxes = x!.shape.map((_, i) => 2 * i);
    const s = runOp1('sum', [reshape(dy!, split2)], { axes: repAxes, keepDims: false });
    return [reshape(s, x!.shape)];
  },
  // Exact fallback: [d0, d1] -> [1, d0, 1, d1] -> broadcast [r0, d0, r1, d1] -> [r0 d0, r1 d1].
  composite: ([x], { reps }) => {
    const inter = x!.shape.flatMap((d) => [1, d]);
    const wide = x!.shape.flatMap((d, i) => [reps[i]!, d]);
    const out = x!.shape.map((d, i) => d * reps[i]!);
    return [reshape(broadcastTo(reshape(x!, inter), wide), out)];
  },
});

/** Repeats x `reps[d]` times along each dimension d (reps has one entry per dimension). */
export function tile(x: Tensor, reps: readonly number[]): Tensor {
  return runOp1('tile', [x], { reps: [...reps] });
}
