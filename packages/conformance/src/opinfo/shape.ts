/**
 * OpInfo records for the data-movement shape ops (core ops/shape.ts): transpose, slice, concat,
 * split, pad, flip, tile. Every dtype; scalars, size-1 and empty dims, odd sizes; compared bit for
 * bit (exact). References are coordinate-by-coordinate float64 formulas.
 */
import { DTYPES, sizeOf, type DType } from '@ring-linear/core';
import type { ErrorInput, HostTensor, OpInfo, SampleRng } from './types.js';
import { unflatten } from '../host.js';

// ---------------------------------------------------------------------------------------------
// Shared helpers (indexing.ts uses them too)

/** Row-major flat index of a coordinate. */
export function flatIndex(c: readonly number[], shape: readonly number[]): number {
  let f = 0;
  for (let d = 0; d < shape.length; d++) f = f * shape[d]! + c[d]!;
  return f;
}

/** A host tensor whose element at each coordinate is `at(coordinate)`. */
export function buildHost(shape: readonly number[], dtype: DType, at: (c: number[]) => number): HostTensor {
  const values = new Float64Array(sizeOf(shape));
  for (let i = 0; i < values.length; i++) values[i] = at(unflatten(i, shape));
  return { shape: [...shape], dtype, values };
}

/** Values that exercise every dtype (ints small, u8 non-negative). */
export function randomOf(rng: SampleRng, shape: readonly number[], dtype: DType): HostTensor {
  return rng.tensor(shape, dtype, dtype === 'u8' ? { lo: 0, hi: 250 } : dtype === 'i32' ? { lo: -1000, hi: 1000 } : {});
}

/** Error input: the op on a disposed tensor. */
export function disposedCase(rng: SampleRng, attrs: Record<string, unknown>, shape: readonly number[] = [2, 3]): ErrorInput {
  return { inputs: [rng.tensor(shape, 'f32')], attrs, disposed: [0], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed input' };
}

/** The normalized axis of a possibly negative axis. */
export const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** Samples larger than this many elements skip the finite-difference check (time). */
const GRAD_MAX = 200;
const gradGuard = (inputs: readonly HostTensor[]) => (inputs.reduce((s, h) => s + h.values.length, 0) > GRAD_MAX ? { noGrad: true } : {});

// ---------------------------------------------------------------------------------------------
// transpose

const transposeRef = (x: HostTensor, perm: readonly number[]): HostTensor =>
  buildHost(perm.map((p) => x.shape[p]!), x.dtype, (c) => {
    const src = new Array<number>(perm.length);
    perm.forEach((p, i) => (src[p] = c[i]!));
    return x.values[flatIndex(src, x.shape)]!;
  });

const transposeInfo: OpInfo = {
  op: 'transpose',
  dtypes: DTYPES,
  samples: (rng, dtype) => {
    const cases: { shape: number[]; perm?: number[] | null; desc?: string }[] = [
      { shape: [3, 5], perm: [1, 0] },
      { shape: [3, 5], perm: null, desc: 'default: reversed dims' },
      { shape: [2, 3, 5], perm: [2, 0, 1] },
      { shape: [2, 3, 5], perm: [1, 0, 2], desc: 'innermost dim stays' },
      { shape: [2, 3, 5], perm: [0, -1, -2], desc: 'negative entries' },
      { shape: [1, 7, 1, 3], perm: [3, 1, 0, 2], desc: 'size-1 dims' },
      { shape: [2, 1, 3, 4, 3], perm: [4, 2, 0, 3, 1], desc: 'rank 5' },
      { shape: [4, 0, 3], perm: [2, 1, 0], desc: 'empty' },
      { shape: [7], perm: [0] },
      { shape: [], perm: [], desc: 'scalar' },
      { shape: [33, 65], perm: [1, 0], desc: 'larger' },
    ];
    return cases.map(({ shape, perm, desc }) => {
      const inputs = [randomOf(rng, shape, dtype)];
      return { inputs, attrs: perm === undefined ? {} : { perm }, ...(desc ? { desc } : {}), ...gradGuard(inputs) };
    });
  },
  reference: ([x], attrs) => {
    const r = x!.shape.length;
    const perm = ((attrs.perm as number[] | null | undefined) ?? x!.shape.map((_, i) => r - 1 - i)).map((p) => normAxis(p, r));
    return [transposeRef(x!, perm)];
  },
  tfjs: (tf, [x], attrs) => {
    const perm = attrs.perm as number[] | null | undefined;
    return tf.transpose(x, perm ? perm.map((p) => normAxis(p, x.rank)) : undefined);
  },
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([1, 3], 'f32')], attrs: { perm: [0] }, error: 'AttrError', message: /transpose: perm must have one entry per dimension of \[1, 3\] \(2\), got \[0\]/, desc: 'perm too short' },
    { inputs: [rng.tensor([1, 3], 'f32')], attrs: { perm: [1, 1] }, error: 'AttrError', message: /transpose: perm must be a permutation of 0\.\.1 .*got \[1, 1\]/, desc: 'repeated entry' },
    { inputs: [rng.tensor([1, 3], 'f32')], attrs: { perm: [0, 2] }, error: 'AttrError', message: /transpose: perm must be a permutation of 0\.\.1/, desc: 'entry out of range' },
    { inputs: [rng.tensor([1, 3], 'f32')], attrs: { perm: 'reverse' }, error: 'AttrError', message: /transpose: attribute 'perm' expected an array of integers/, desc: 'perm not a list' },
    disposedCase(rng, { perm: [1, 0] }),
  ],
};

// ---------------------------------------------------------------------------------------------
// slice

const sliceRef = (x: HostTensor, begin: readonly number[], size: readonly number[]): HostTensor =>
  buildHost(size, x.dtype, (c) => x.values[flatIndex(c.map((v, d) => v + begin[d]!), x.shape)]!);

/** Full-rank begin and size from the op's attrs (missing entries: 0 and -1; -1 = to the end). */
function sliceBox(shape: readonly number[], begin: readonly number[], size: readonly number[]): { begin: number[]; size: number[] } {
  const b = shape.map((_, d) => begin[d] ?? 0);
  const s = shape.map((dim, d) => {
    const v = size[d] ?? -1;
    return v === -1 ? dim - b[d]! : v;
  });
  return { begin: b, size: s };
}

const sliceInfo: OpInfo = {
  op: 'slice',
  dtypes: DTYPES,
  samples: (rng, dtype) => {
    const cases: { shape: number[]; begin: number[]; size: number[]; desc?: string }[] = [
      { shape: [7], begin: [2], size: [3] },
      { shape: [5, 7], begin: [1, 2], size: [3, -1], desc: 'size -1: to the end' },
      { shape: [5, 7], begin: [4], size: [1], desc: 'shorter lists cover leading dims' },
      { shape: [3, 1, 9], begin: [0, 0, 8], size: [-1, 1, 1], desc: 'size-1 dims' },
      { shape: [3, 4, 5], begin: [1, 1, 1], size: [0, 2, 3], desc: 'empty result' },
      { shape: [3, 4, 5], begin: [3, 4, 5], size: [-1, -1, -1], desc: 'begin at the end' },
      { shape: [2, 3, 4, 5], begin: [1, 0, 2, 1], size: [1, 3, 2, 3], desc: 'rank 4' },
      { shape: [], begin: [], size: [], desc: 'scalar' },
      { shape: [31, 67], begin: [3, 5], size: [17, 41], desc: 'larger' },
    ];
    return cases.map(({ shape, begin, size, desc }) => {
      const inputs = [randomOf(rng, shape, dtype)];
      return { inputs, attrs: { begin, size }, ...(desc ? { desc } : {}), ...gradGuard(inputs) };
    });
  },
  reference: ([x], attrs) => {
    const { begin, size } = sliceBox(x!.shape, attrs.begin as number[], attrs.size as number[]);
    return [sliceRef(x!, begin, size)];
  },
  tfjs: (tf, [x], attrs) => (x.rank === 0 ? null : tf.slice(x, attrs.begin, attrs.size)), // tfjs has no scalar slice
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([2, 3], 'f32')], attrs: { begin: [0, 0, 0], size: [1] }, error: 'AttrError', message: /slice: begin and size may have at most 2 entries for shape \[2, 3\]/, desc: 'lists longer than the rank' },
    { inputs: [rng.tensor([2, 3], 'f32')], attrs: { begin: [3], size: [-1] }, error: 'AttrError', message: /slice: begin\[0\] must be in \[0, 2\] for shape \[2, 3\], got 3/, desc: 'begin past the end' },
    { inputs: [rng.tensor([2, 3], 'f32')], attrs: { begin: [0, -1], size: [1, 1] }, error: 'AttrError', message: /slice: begin\[1\] must be in \[0, 3\].*got -1/, desc: 'negative begin' },
    { inputs: [rng.tensor([2, 3], 'f32')], attrs: { begin: [0, 1], size: [1, 3] }, error: 'AttrError', message: /slice: size\[1\] must be -1 or in \[0, 2\] \(begin 1, dimension 3 of shape \[2, 3\]\), got 3/, desc: 'size past the end' },
    { inputs: [rng.tensor([2, 3], 'f32')], attrs: { begin: [0], size: [-2] }, error: 'AttrError', message: /slice: size\[0\] must be -1 or in \[0, 2\].*got -2/, desc: 'size below -1' },
    { inputs: [rng.tensor([2, 3], 'f32')], attrs: { begin: [0] }, error: 'AttrError', message: /slice: attribute 'size' is required/, desc: 'missing size' },
    disposedCase(rng, { begin: [0], size: [1] }),
  ],
};

// ---------------------------------------------------------------------------------------------
// concat / split

function concatRef(xs: readonly HostTensor[], axis: number): HostTensor {
  const shape = [...xs[0]!.shape];
  shape[axis] = xs.reduce((a, x) => a + x.shape[axis]!, 0);
  return buildHost(shape, xs[0]!.dtype, (c) => {
    let k = c[axis]!;
    for (const x of xs) {
      if (k < x.shape[axis]!) return x.values[flatIndex(c.map((v, d) => (d === axis ? k : v)), x.shape)]!;
      k -= x.shape[axis]!;
    }
    throw new RangeError('concatRef: coordinate past the end');
  });
}

const concatInfo: OpInfo = {
  op: 'concat',
  dtypes: DTYPES,
  samples: (rng, dtype) => {
    const cases: { shapes: number[][]; axis?: number; desc?: string }[] = [
      { shapes: [[3], [5], [1]], axis: 0 },
      { shapes: [[2, 3], [2, 1], [2, 4]], axis: 1 },
      { shapes: [[2, 3], [5, 3]], desc: 'default axis 0' },
      { shapes: [[2, 3, 5], [2, 2, 5], [2, 0, 5], [2, 1, 5]], axis: 1, desc: 'an empty piece' },
      { shapes: [[1, 3, 2], [1, 3, 3]], axis: -1, desc: 'negative axis' },
      { shapes: [[4, 3]], axis: 1, desc: 'one input' },
      { shapes: [[0, 3], [0, 3]], axis: 0, desc: 'all empty' },
      { shapes: [[9, 40], [9, 27]], axis: 1, desc: 'larger' },
    ];
    return cases.map(({ shapes, axis, desc }) => {
      const inputs = shapes.map((s) => randomOf(rng, s, dtype));
      return { inputs, attrs: axis === undefined ? {} : { axis }, ...(desc ? { desc } : {}), ...gradGuard(inputs) };
    });
  },
  reference: (xs, attrs) => [concatRef(xs, normAxis((attrs.axis as number | undefined) ?? 0, xs[0]!.shape.length))],
  tfjs: (tf, xs, attrs) => tf.concat(xs, (attrs.axis as number | undefined) ?? 0),
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([1, 3], 'f32'), rng.tensor([1, 2], 'f32')], attrs: { axis: 0 }, error: 'ShapeError', message: /concat: input 1 has shape \[1, 2\]; expected rank 2 and the sizes of input 0 \[1, 3\] on every axis but 0/, desc: 'other dims differ' },
    { inputs: [rng.tensor([1, 3], 'f32'), rng.tensor([3], 'f32')], attrs: { axis: 0 }, error: 'ShapeError', message: /concat: input 1 has shape \[3\]; expected rank 2/, desc: 'ranks differ' },
    { inputs: [rng.tensor([1, 3], 'f32'), rng.tensor([1, 3], 'bf16')], attrs: { axis: 0 }, error: 'DTypeError', message: /concat: input 0 and input 1 must have the same dtype, got f32 and bf16/, desc: 'dtypes differ' },
    { inputs: [], attrs: { axis: 0 }, error: 'AttrError', message: /concat: expected at least 1 input tensors, got 0/, desc: 'no inputs' },
    { inputs: [rng.tensor([1, 3], 'f32')], attrs: { axis: 2 }, error: 'AttrError', message: /concat: axis must be an integer in \[-2, 1\] for a rank-2 tensor, got 2/, desc: 'axis out of range' },
    { inputs: [rng.tensor([], 'f32'), rng.tensor([], 'f32')], attrs: { axis: 0 }, error: 'ShapeError', message: /concat: 'input 0' must have rank >= 1/, desc: 'scalars' },
    disposedCase(rng, { axis: 0 }),
  ],
};

function splitSizes(dim: number, sizes: readonly number[]): number[] {
  const known = sizes.reduce((p, s) => (s === -1 ? p : p + s), 0);
  return sizes.map((s) => (s === -1 ? dim - known : s));
}

function splitRef(x: HostTensor, sizes: readonly number[], axis: number): HostTensor[] {
  let start = 0;
  return sizes.map((s) => {
    const begin = x.shape.map((_, d) => (d === axis ? start : 0));
    const size = x.shape.map((dim, d) => (d === axis ? s : dim));
    start += s;
    return sliceRef(x, begin, size);
  });
}

const splitInfo: OpInfo = {
  op: 'split',
  dtypes: DTYPES,
  samples: (rng, dtype) => {
    const cases: { shape: number[]; sizes: number[]; axis?: number; desc?: string }[] = [
      { shape: [9], sizes: [2, 3, 4] },
      { shape: [3, 7, 2], sizes: [2, 0, 4, 1], axis: 1, desc: 'an empty piece' },
      { shape: [3, 7, 2], sizes: [1, 1, 1], desc: 'default axis 0' },
      { shape: [5, 9], sizes: [4, -1, 2], axis: -1, desc: '-1 takes the rest, negative axis' },
      { shape: [4, 3], sizes: [3], axis: 1, desc: 'one piece' },
      { shape: [0, 4], sizes: [1, 3], axis: 1, desc: 'empty input' },
      { shape: [6, 50], sizes: [17, 33], axis: 1, desc: 'larger' },
    ];
    return cases.map(({ shape, sizes, axis, desc }) => {
      const inputs = [randomOf(rng, shape, dtype)];
      return { inputs, attrs: axis === undefined ? { sizes } : { sizes, axis }, ...(desc ? { desc } : {}), ...gradGuard(inputs) };
    });
  },
  reference: ([x], attrs) => {
    const axis = normAxis((attrs.axis as number | undefined) ?? 0, x!.shape.length);
    return splitRef(x!, splitSizes(x!.shape[axis]!, attrs.sizes as number[]), axis);
  },
  tfjs: (tf, [x], attrs) => {
    const axis = normAxis((attrs.axis as number | undefined) ?? 0, x.rank);
    // tfjs cannot make empty pieces: the oracle declines those samples.
    const sizes = splitSizes(x.shape[axis], attrs.sizes as number[]);
    return sizes.includes(0) ? null : tf.split(x, sizes, axis);
  },
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([1, 5], 'f32')], attrs: { sizes: [2, 2], axis: 1 }, error: 'AttrError', message: /split: sizes \[2, 2\] must add up to 5 \(axis 1 of \[1, 5\]\), got 4/, desc: 'sizes too small' },
    { inputs: [rng.tensor([1, 5], 'f32')], attrs: { sizes: [4, -1, 3], axis: 1 }, error: 'AttrError', message: /split: sizes \[4, -1, 3\] must add up to 5 .*or less with a -1, got 7/, desc: 'sizes too large with -1' },
    { inputs: [rng.tensor([1, 5], 'f32')], attrs: { sizes: [-1, -1], axis: 1 }, error: 'AttrError', message: /split: sizes must be a non-empty list of sizes >= 0 with at most one -1, got \[-1, -1\]/, desc: 'two -1' },
    { inputs: [rng.tensor([1, 5], 'f32')], attrs: { sizes: [], axis: 1 }, error: 'AttrError', message: /split: sizes must be a non-empty list/, desc: 'no pieces' },
    { inputs: [rng.tensor([1, 5], 'f32')], attrs: { sizes: [5], axis: 2 }, error: 'AttrError', message: /split: axis must be an integer in \[-2, 1\]/, desc: 'axis out of range' },
    { inputs: [rng.tensor([], 'f32')], attrs: { sizes: [1] }, error: 'ShapeError', message: /split: 'x' must have rank >= 1/, desc: 'scalar' },
    disposedCase(rng, { sizes: [1, 1] }),
  ],
};

// ---------------------------------------------------------------------------------------------
// pad

const padRef = (x: HostTensor, p: readonly (readonly [number, number])[], value: number): HostTensor =>
  buildHost(x.shape.map((d, i) => d + p[i]![0] + p[i]![1]), x.dtype, (c) => {
    const src = c.map((v, d) => v - p[d]![0]);
    // The pad value unrounded: the runner rounds the reference to the dtype as a cast would.
    return src.every((v, d) => v >= 0 && v < x.shape[d]!) ? x.values[flatIndex(src, x.shape)]! : value;
  });

const padInfo: OpInfo = {
  op: 'pad',
  dtypes: DTYPES,
  samples: (rng, dtype) => {
    const cases: { shape: number[]; paddings: [number, number][]; value?: number; desc?: string }[] = [
      { shape: [5], paddings: [[2, 3]], desc: 'default value 0' },
      { shape: [3, 4], paddings: [[1, 0], [0, 2]], value: 7 },
      { shape: [2, 1, 3], paddings: [[0, 0], [2, 1], [1, 1]], value: -2.5, desc: 'value rounded as a cast would (u8 wraps)' },
      { shape: [0, 3], paddings: [[1, 1], [0, 1]], value: 1, desc: 'empty input' },
      { shape: [2, 3], paddings: [[0, 0], [0, 0]], value: 3, desc: 'no padding' },
      { shape: [], paddings: [], value: 4, desc: 'scalar' },
      { shape: [1, 1], paddings: [[0, 0], [0, 0]], value: 0.3, desc: 'value not representable' },
      { shape: [13, 29], paddings: [[3, 4], [5, 6]], value: 1.5, desc: 'larger' },
    ];
    return cases.map(({ shape, paddings, value, desc }) => {
      const inputs = [randomOf(rng, shape, dtype)];
      return { inputs, attrs: value === undefined ? { paddings } : { paddings, value }, ...(desc ? { desc } : {}), ...gradGuard(inputs) };
    });
  },
  reference: ([x], attrs) => [padRef(x!, attrs.paddings as [number, number][], (attrs.value as number | undefined) ?? 0)],
  tfjs: (tf, [x], attrs) => (x.rank === 0 ? null : tf.pad(x, attrs.paddings, (attrs.value as number | undefined) ?? 0)), // no scalar pad in tfjs
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([2, 2], 'f32')], attrs: { paddings: [[1, 1]] }, error: 'AttrError', message: /pad: paddings must be 2 pairs \[before, after\] of integers >= 0 \(one per dimension of \[2, 2\]\), got \[\[1,1\]\]/, desc: 'fewer pairs than dims' },
    { inputs: [rng.tensor([2, 2], 'f32')], attrs: { paddings: [[1, 1], [0, -1]] }, error: 'AttrError', message: /pad: paddings must be 2 pairs/, desc: 'negative padding' },
    { inputs: [rng.tensor([2, 2], 'f32')], attrs: { paddings: [[1, 1], [0, 1.5]] }, error: 'AttrError', message: /pad: paddings must be 2 pairs/, desc: 'fractional padding' },
    { inputs: [rng.tensor([2, 2], 'f32')], attrs: { paddings: [[1, 1], [0, 1, 2]] }, error: 'AttrError', message: /pad: paddings must be 2 pairs/, desc: 'a triple' },
    { inputs: [rng.tensor([2, 2], 'f32')], attrs: { paddings: [[0, 0], [0, 0]], value: 'a' }, error: 'AttrError', message: /pad: attribute 'value' expected a number, got 'a'/, desc: 'value not a number' },
    disposedCase(rng, { paddings: [[0, 0], [1, 1]] }),
  ],
};

// ---------------------------------------------------------------------------------------------
// flip / tile

const flipRef = (x: HostTensor, axes: readonly number[]): HostTensor =>
  buildHost(x.shape, x.dtype, (c) => x.values[flatIndex(c.map((v, d) => (axes.includes(d) ? x.shape[d]! - 1 - v : v)), x.shape)]!);

const flipInfo: OpInfo = {
  op: 'flip',
  dtypes: DTYPES,
  samples: (rng, dtype) => {
    const cases: { shape: number[]; axes: number[]; desc?: string }[] = [
      { shape: [7], axes: [0] },
      { shape: [3, 5], axes: [1], desc: 'innermost axis' },
      { shape: [3, 5], axes: [0], desc: 'outer axis' },
      { shape: [2, 3, 4], axes: [0, -1], desc: 'two axes, one negative' },
      { shape: [2, 1, 3], axes: [0, 1, 2], desc: 'all axes, size-1 dim' },
      { shape: [4, 0], axes: [0], desc: 'empty' },
      { shape: [3, 2], axes: [], desc: 'no axes (a copy)' },
      { shape: [], axes: [], desc: 'scalar' },
      { shape: [17, 23], axes: [0, 1], desc: 'larger' },
    ];
    return cases.map(({ shape, axes, desc }) => {
      const inputs = [randomOf(rng, shape, dtype)];
      return { inputs, attrs: { axes }, ...(desc ? { desc } : {}), ...gradGuard(inputs) };
    });
  },
  reference: ([x], attrs) => [flipRef(x!, (attrs.axes as number[]).map((a) => normAxis(a, x!.shape.length)))],
  tfjs: (tf, [x], attrs) => ((attrs.axes as number[]).length ? tf.reverse(x, attrs.axes) : tf.clone(x)),
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([2, 2], 'f32')], attrs: { axes: [0, -2] }, error: 'AttrError', message: /flip: duplicate axes/, desc: 'duplicate axes' },
    { inputs: [rng.tensor([2, 2], 'f32')], attrs: { axes: [2] }, error: 'AttrError', message: /flip: axis must be an integer in \[-2, 1\] for a rank-2 tensor, got 2/, desc: 'axis out of range' },
    { inputs: [rng.tensor([2, 2], 'f32')], attrs: {}, error: 'AttrError', message: /flip: attribute 'axes' is required/, desc: 'missing axes' },
    disposedCase(rng, { axes: [0] }),
  ],
};

const tileRef = (x: HostTensor, reps: readonly number[]): HostTensor =>
  buildHost(x.shape.map((d, i) => d * reps[i]!), x.dtype, (c) => x.values[flatIndex(c.map((v, d) => v % x.shape[d]!), x.shape)]!);

const tileInfo: OpInfo = {
  op: 'tile',
  dtypes: DTYPES,
  samples: (rng, dtype) => {
    const cases: { shape: number[]; reps: number[]; desc?: string }[] = [
      { shape: [3], reps: [4] },
      { shape: [2, 3], reps: [2, 3] },
      { shape: [2, 1, 3], reps: [1, 5, 2], desc: 'size-1 dim repeated' },
      { shape: [2, 3], reps: [0, 2], desc: 'zero reps: empty' },
      { shape: [3, 4], reps: [1, 1], desc: 'no repetition' },
      { shape: [], reps: [], desc: 'scalar' },
      { shape: [7, 9], reps: [3, 2], desc: 'larger' },
    ];
    return cases.map(({ shape, reps, desc }) => {
      const inputs = [randomOf(rng, shape, dtype)];
      return { inputs, attrs: { reps }, ...(desc ? { desc } : {}), ...gradGuard(inputs) };
    });
  },
  reference: ([x], attrs) => [tileRef(x!, attrs.reps as number[])],
  tfjs: (tf, [x], attrs) => (x.rank === 0 ? null : tf.tile(x, attrs.reps)), // no scalar tile in tfjs
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([2, 2], 'f32')], attrs: { reps: [2] }, error: 'AttrError', message: /tile: reps must have one count >= 0 per dimension of \[2, 2\] \(2\), got \[2\]/, desc: 'too few reps' },
    { inputs: [rng.tensor([2, 2], 'f32')], attrs: { reps: [2, -1] }, error: 'AttrError', message: /tile: reps must have one count >= 0/, desc: 'negative rep' },
    disposedCase(rng, { reps: [1, 1] }),
  ],
};

export const shapeOpInfos: OpInfo[] = [transposeInfo, sliceInfo, concatInfo, splitInfo, padInfo, flipInfo, tileInfo];
