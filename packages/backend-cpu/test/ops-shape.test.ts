// Shape ops on the CPU backend: transpose/permute, slice/sliceAxis, concat, split, pad, flip, tile.
// Values against naive coordinate-by-coordinate references written here (every dtype, odd sizes,
// size-1 and empty dims); gradients against central differences of a float64 re-implementation
// of sum(op(x) * w); every error case with its class and message.
import { describe, expect, it } from 'vitest';
import {
  AttrError, DTypeError, ShapeError, DTYPES, concat, flip, getOpDef, memory, mul, pad, permute, roundToDtype, runOp,
  slice, sliceAxis, split, sum, tensor, tidy, tile, transpose, valueAndGrad, isLowPrecisionFloat, add,
  type DType, type Tensor,
} from '@ring-linear/core';
import '../src/index.js';

// ---------------------------------------------------------------------------------------------
// Seeded randomness (the seed is printed so a failure can be replayed with SEED=...)

const SEED = Number(process.env.SEED ?? Date.now() % 1_000_000);
console.log(`ops-shape.test.ts seed: ${SEED}`);
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(SEED);
const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
const randInt = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo));

interface Host {
  shape: number[];
  dtype: DType;
  values: Float64Array;
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** A value as the dtype stores it (what a cast of the number gives). */
function toDtype(v: number, dtype: DType): number {
  if (dtype === 'f32') return Math.fround(v);
  if (isLowPrecisionFloat(dtype)) return roundToDtype(dtype, v);
  if (dtype === 'bool') return v !== 0 ? 1 : 0;
  const t = Number.isFinite(v) ? Math.trunc(v) : 0;
  return dtype === 'u8' ? ((t % 256) + 256) % 256 : t | 0;
}

/** Random values representable in the dtype, never all zero. */
function host(shape: number[], dtype: DType): Host {
  const n = size(shape);
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (dtype === 'bool') values[i] = rand() < 0.5 ? 1 : 0;
    else if (dtype === 'u8') values[i] = randInt(0, 256);
    else if (dtype === 'i32') values[i] = randInt(-1000, 1000);
    else values[i] = toDtype(normal() * 2, dtype);
  }
  if (n > 0 && values.every((v) => v === 0)) values[0] = 1;
  return { shape, dtype, values };
}

const toTensor = (h: Host): Tensor => tensor(Array.from(h.values), h.shape, h.dtype);

/** Flat index -> coordinates, and back. */
function coords(i: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return c;
}
const flat = (c: readonly number[], shape: readonly number[]) => c.reduce((acc, v, d) => acc * shape[d]! + v, 0);

/** Builds an output by asking, per output coordinate, for a value. */
function build(shape: number[], dtype: DType, at: (c: number[]) => number): Host {
  const values = new Float64Array(size(shape));
  for (let i = 0; i < values.length; i++) values[i] = at(coords(i, shape));
  return { shape, dtype, values };
}

async function expectExact(t: Tensor, want: Host): Promise<void> {
  expect(t.shape).toEqual(want.shape);
  expect(t.dtype).toBe(want.dtype);
  expect(Array.from(await t.data())).toEqual(Array.from(want.values));
}

// ---------------------------------------------------------------------------------------------
// References: naive coordinate formulas

const transposeRef = (x: Host, perm: number[]): Host =>
  build(perm.map((p) => x.shape[p]!), x.dtype, (c) => {
    const src = new Array<number>(perm.length);
    perm.forEach((p, i) => (src[p] = c[i]!));
    return x.values[flat(src, x.shape)]!;
  });

const sliceRef = (x: Host, begin: number[], sz: number[]): Host =>
  build(sz, x.dtype, (c) => x.values[flat(c.map((v, d) => v + begin[d]!), x.shape)]!);

function concatRef(xs: Host[], axis: number): Host {
  const shape = [...xs[0]!.shape];
  shape[axis] = xs.reduce((a, x) => a + x.shape[axis]!, 0);
  return build(shape, xs[0]!.dtype, (c) => {
    let k = c[axis]!;
    for (const x of xs) {
      if (k < x.shape[axis]!) return x.values[flat(c.map((v, d) => (d === axis ? k : v)), x.shape)]!;
      k -= x.shape[axis]!;
    }
    throw new Error('unreachable');
  });
}

function splitRef(x: Host, sizes: number[], axis: number): Host[] {
  let start = 0;
  return sizes.map((s) => {
    const b = x.shape.map((_, d) => (d === axis ? start : 0));
    const sz = x.shape.map((dim, d) => (d === axis ? s : dim));
    start += s;
    return sliceRef(x, b, sz);
  });
}

const padRef = (x: Host, p: [number, number][], value: number): Host =>
  build(x.shape.map((d, i) => d + p[i]![0] + p[i]![1]), x.dtype, (c) => {
    const src = c.map((v, d) => v - p[d]![0]);
    return src.every((v, d) => v >= 0 && v < x.shape[d]!) ? x.values[flat(src, x.shape)]! : toDtype(value, x.dtype);
  });

const flipRef = (x: Host, axes: number[]): Host =>
  build([...x.shape], x.dtype, (c) => x.values[flat(c.map((v, d) => (axes.includes(d) ? x.shape[d]! - 1 - v : v)), x.shape)]!);

const tileRef = (x: Host, reps: number[]): Host =>
  build(x.shape.map((d, i) => d * reps[i]!), x.dtype, (c) => x.values[flat(c.map((v, d) => v % x.shape[d]!), x.shape)]!);

// ---------------------------------------------------------------------------------------------
// Gradient check: d/dx sum(op(x) * w) by autograd vs central differences of the float64 reference

function fdGrad(f: (x: Float64Array) => number, x: Float64Array, eps = 1e-3): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const xp = Float64Array.from(x);
    const xm = Float64Array.from(x);
    xp[i]! += eps;
    xm[i]! -= eps;
    g[i] = (f(xp) - f(xm)) / (2 * eps);
  }
  return g;
}

/**
 * Checks autograd's gradient of L = sum_k sum(outs_k * w_k) w.r.t. every input against central
 * differences of the same L computed with `ref` in float64. All inputs f32.
 */
async function checkGrad(
  inputs: Host[],
  op: (xs: Tensor[]) => Tensor[],
  ref: (xs: Host[]) => Host[],
  tol = 1e-4,
): Promise<void> {
  const outs = ref(inputs);
  const ws = outs.map((o) => host(o.shape, 'f32'));
  const loss = (xs: Host[]) => ref(xs).reduce((acc, o, k) => acc + o.values.reduce((a, v, i) => a + v * ws[k]!.values[i]!, 0), 0);
  const ts = inputs.map(toTensor);
  const before = memory().tensors;
  const { value, grads } = valueAndGrad(() => {
    const ys = op(ts);
    return ys.map((y, k) => sum(mul(y, toTensor(ws[k]!)))).reduce((a, b) => add(a, b));
  }, ts);
  expect(memory().tensors).toBe(before + 1 + grads.length);
  expect(await value.item()).toBeCloseTo(loss(inputs), 3);
  for (let j = 0; j < inputs.length; j++) {
    const fd = fdGrad((v) => loss(inputs.map((h, i) => (i === j ? { ...h, values: v } : h))), inputs[j]!.values);
    const g = await grads[j]!.data();
    expect(grads[j]!.shape).toEqual(inputs[j]!.shape);
    for (let i = 0; i < fd.length; i++) expect(Math.abs(g[i]! - fd[i]!)).toBeLessThanOrEqual(tol * (1 + Math.abs(fd[i]!)));
  }
  value.dispose();
  grads.forEach((g) => g.dispose());
  ts.forEach((t) => t.dispose());
}

/** The error is thrown with this class and a message matching `re`. */
function expectError(fn: () => unknown, cls: new (...a: any[]) => Error, re: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${cls.name} matching ${re}`).toBeInstanceOf(cls);
  expect((err as Error).message).toMatch(re);
}

// ---------------------------------------------------------------------------------------------

describe('transpose / permute', () => {
  const cases: { shape: number[]; perm?: number[] }[] = [
    { shape: [3, 5], perm: [1, 0] },
    { shape: [3, 5] },
    { shape: [2, 3, 5], perm: [2, 0, 1] },
    { shape: [2, 3, 5], perm: [0, 2, 1] },
    { shape: [2, 3, 5], perm: [1, 0, 2] }, // innermost stays: contiguous runs
    { shape: [1, 7, 1, 3], perm: [3, 1, 0, 2] },
    { shape: [2, 1, 3, 4, 2], perm: [4, 2, 0, 3, 1] },
    { shape: [4, 0, 3], perm: [2, 1, 0] },
    { shape: [5] },
    { shape: [] },
    { shape: [40, 33], perm: [1, 0] }, // larger than one 32 x 32 tile of the blocked copy
    { shape: [2, 37, 70], perm: [2, 0, 1] },
  ];
  for (const dtype of DTYPES) {
    it(`matches the coordinate formula (${dtype})`, async () => {
      for (const { shape, perm } of cases) {
        const x = host(shape, dtype);
        const p = perm ?? shape.map((_, i) => shape.length - 1 - i);
        await expectExact(transpose(toTensor(x), perm), transposeRef(x, p));
      }
    });
  }
  it('negative perm entries count from the end; permute is an alias; op name is transpose', async () => {
    const x = host([2, 3, 4], 'f32');
    const want = transposeRef(x, [2, 0, 1]);
    await expectExact(transpose(toTensor(x), [-1, 0, -2]), want);
    await expectExact(permute(toTensor(x), [2, 0, 1]), want);
    await expectExact(runOp('transpose', [toTensor(x)], { perm: [2, 0, 1] })[0]!, want);
  });
  it('gradient is the inverse permutation', async () => {
    await checkGrad([host([2, 3, 4], 'f32')], ([x]) => [transpose(x!, [1, 2, 0])], ([x]) => [transposeRef(x!, [1, 2, 0])]);
    await checkGrad([host([3, 5], 'f32')], ([x]) => [transpose(x!)], ([x]) => [transposeRef(x!, [1, 0])]);
  });
  it('errors', () => {
    const x = tensor([[1, 2, 3]]);
    expectError(() => transpose(x, [0]), AttrError, /transpose: perm must have one entry per dimension of \[1, 3\] \(2\), got \[0\]/);
    expectError(() => transpose(x, [0, 0]), AttrError, /transpose: perm must be a permutation of 0\.\.1.*got \[0, 0\]/);
    expectError(() => transpose(x, [0, 2]), AttrError, /permutation of 0\.\.1/);
    expectError(() => transpose(x, [0.5, 1]), AttrError, /transpose: attribute 'perm' expected an array of integers/);
  });
});

describe('slice / sliceAxis', () => {
  for (const dtype of DTYPES) {
    it(`matches the coordinate formula (${dtype})`, async () => {
      const cases: { shape: number[]; begin: number[]; size: number[]; want: number[] }[] = [
        { shape: [7], begin: [2], size: [3], want: [3] },
        { shape: [5, 7], begin: [1, 2], size: [3, -1], want: [3, 5] },
        { shape: [5, 7], begin: [4], size: [1], want: [1, 7] }, // shorter lists cover leading dims
        { shape: [3, 1, 9], begin: [0, 0, 8], size: [-1, 1, 1], want: [3, 1, 1] },
        { shape: [3, 4, 5], begin: [1, 1, 1], size: [0, 2, 3], want: [0, 2, 3] },
        { shape: [3, 4, 5], begin: [3, 4, 5], size: [-1, -1, -1], want: [0, 0, 0] },
        { shape: [2, 3, 4, 5], begin: [1, 0, 2, 1], size: [1, 3, 2, 3], want: [1, 3, 2, 3] },
        { shape: [], begin: [], size: [], want: [] },
      ];
      for (const c of cases) {
        const x = host(c.shape, dtype);
        const y = slice(toTensor(x), c.begin, c.size);
        const begin = c.shape.map((_, d) => c.begin[d] ?? 0);
        await expectExact(y, sliceRef(x, begin, c.want));
      }
      const x = host([4, 6], dtype);
      await expectExact(sliceAxis(toTensor(x), 1, 1, 4), sliceRef(x, [0, 1], [4, 3]));
      await expectExact(sliceAxis(toTensor(x), -1, -3), sliceRef(x, [0, 3], [4, 3]));
      await expectExact(sliceAxis(toTensor(x), 0, 2, -1), sliceRef(x, [2, 0], [1, 6]));
      await expectExact(sliceAxis(toTensor(x), 0, 2, 2), sliceRef(x, [2, 0], [0, 6]));
    });
  }
  it('gradient pads dy with zeros', async () => {
    await checkGrad([host([4, 5, 3], 'f32')], ([x]) => [slice(x!, [1, 2], [2, -1])], ([x]) => [sliceRef(x!, [1, 2, 0], [2, 3, 3])]);
    await checkGrad([host([6], 'f32')], ([x]) => [sliceAxis(x!, 0, 1, 4)], ([x]) => [sliceRef(x!, [1], [3])]);
  });
  it('errors', () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]]);
    expectError(() => slice(x, [0, 0, 0], [1]), AttrError, /slice: begin and size may have at most 2 entries for shape \[2, 3\]/);
    expectError(() => slice(x, [3], [-1]), AttrError, /slice: begin\[0\] must be in \[0, 2\] for shape \[2, 3\], got 3/);
    expectError(() => slice(x, [-1], [1]), AttrError, /slice: begin\[0\] must be in \[0, 2\].*got -1/);
    expectError(() => slice(x, [0, 1], [1, 3]), AttrError, /slice: size\[1\] must be -1 or in \[0, 2\] \(begin 1, dimension 3/);
    expectError(() => slice(x, [0], [-2]), AttrError, /slice: size\[0\] must be -1 or in \[0, 2\].*got -2/);
    expectError(() => sliceAxis(x, 2, 0, 1), AttrError, /sliceAxis: axis must be an integer in \[-2, 1\] for a rank-2 tensor, got 2/);
    expectError(() => sliceAxis(x, 1, 0, 4), AttrError, /sliceAxis: end must be an integer in \[-3, 3\] for axis 1 of \[2, 3\], got 4/);
    expectError(() => sliceAxis(x, 1, -4), AttrError, /sliceAxis: start must be an integer in \[-3, 3\]/);
    expectError(() => sliceAxis(x, 1, 2, 1), AttrError, /sliceAxis: end \(1\) must not come before start \(2\)/);
    expectError(() => sliceAxis(tensor(3), 0, 0), ShapeError, /sliceAxis: 'x' must have rank >= 1/);
  });
});

describe('concat / split', () => {
  for (const dtype of DTYPES) {
    it(`matches the coordinate formula (${dtype})`, async () => {
      const cases: { shapes: number[][]; axis: number }[] = [
        { shapes: [[3], [5], [1]], axis: 0 },
        { shapes: [[2, 3], [2, 1], [2, 4]], axis: 1 },
        { shapes: [[2, 3], [5, 3]], axis: 0 },
        { shapes: [[2, 3, 5], [2, 2, 5], [2, 0, 5], [2, 1, 5]], axis: 1 },
        { shapes: [[1, 3, 2], [1, 3, 3]], axis: -1 },
        { shapes: [[4, 3]], axis: 1 },
        { shapes: [[0, 3], [0, 3]], axis: 0 },
      ];
      for (const { shapes, axis } of cases) {
        const xs = shapes.map((s) => host(s, dtype));
        const ax = axis < 0 ? axis + shapes[0]!.length : axis;
        await expectExact(concat(xs.map(toTensor), axis), concatRef(xs, ax));
      }
      const x = host([3, 7, 2], dtype);
      const pieces = split(toTensor(x), [2, 0, 4, 1], 1);
      const want = splitRef(x, [2, 0, 4, 1], 1);
      expect(pieces.length).toBe(4);
      for (let i = 0; i < 4; i++) await expectExact(pieces[i]!, want[i]!);
      const thirds = split(toTensor(x), 3, 0);
      const wantThirds = splitRef(x, [1, 1, 1], 0);
      for (let i = 0; i < 3; i++) await expectExact(thirds[i]!, wantThirds[i]!);
      const rest = split(toTensor(x), [1, -1], -1);
      const wantRest = splitRef(x, [1, 1], 2);
      for (let i = 0; i < 2; i++) await expectExact(rest[i]!, wantRest[i]!);
      const whole = split(toTensor(x), 1, 1);
      await expectExact(whole[0]!, x);
    });
  }
  it('split then concat round-trips; runOp returns every piece', async () => {
    const x = host([5, 9], 'bf16');
    const pieces = runOp('split', [toTensor(x)], { sizes: [4, -1, 2], axis: 1 });
    expect(pieces.map((p) => p.shape)).toEqual([[5, 4], [5, 3], [5, 2]]);
    await expectExact(concat(pieces, 1), x);
  });
  it('gradients: concat -> split, split -> concat (also with unused pieces)', async () => {
    const shapes = [[2, 3], [2, 1], [2, 4]];
    await checkGrad(shapes.map((s) => host(s, 'f32')), (xs) => [concat(xs, 1)], (xs) => [concatRef(xs, 1)]);
    await checkGrad([host([3, 7], 'f32')], ([x]) => split(x!, [2, 1, 4], 1), ([x]) => splitRef(x!, [2, 1, 4], 1));
    // Only the middle piece reaches the loss: the others' gradients are zeros.
    await checkGrad([host([6, 2], 'f32')], ([x]) => [split(x!, 3, 0)[1]!], ([x]) => [splitRef(x!, [2, 2, 2], 0)[1]!]);
  });
  it('errors', () => {
    const a = tensor([[1, 2, 3]]);
    expectError(() => concat([a, tensor([[1, 2]])], 0), ShapeError, /concat: input 1 has shape \[1, 2\]; expected rank 2 and the sizes of input 0 \[1, 3\] on every axis but 0/);
    expectError(() => concat([a, tensor([1, 2, 3])], 0), ShapeError, /concat: input 1 has shape \[3\]; expected rank 2/);
    expectError(() => concat([a, tensor([[1, 2, 3]], [1, 3], 'i32')]), DTypeError, /concat: input 0 and input 1 must have the same dtype, got f32 and i32/);
    expectError(() => concat([]), AttrError, /concat: expected at least 1 input tensors, got 0/);
    expectError(() => concat([a], 2), AttrError, /concat: axis must be an integer in \[-2, 1\] for a rank-2 tensor, got 2/);
    expectError(() => concat([tensor(1), tensor(2)]), ShapeError, /concat: 'input 0' must have rank >= 1/);
    const x = tensor([[1, 2, 3, 4, 5]]);
    expectError(() => split(x, 2, 1), AttrError, /split: axis 1 of \[1, 5\] has length 5, which does not divide into 2 equal pieces/);
    expectError(() => split(x, 0, 1), AttrError, /split: count must be an integer >= 1, got 0/);
    expectError(() => split(x, [2, 2], 1), AttrError, /split: sizes \[2, 2\] must add up to 5 \(axis 1 of \[1, 5\]\), got 4/);
    expectError(() => split(x, [4, -1, 3], 1), AttrError, /must add up to 5 .* or less with a -1, got 7/);
    expectError(() => split(x, [-1, -1], 1), AttrError, /split: sizes must be a non-empty list of sizes >= 0 with at most one -1, got \[-1, -1\]/);
    expectError(() => split(x, [], 1), AttrError, /non-empty list/);
    expectError(() => split(x, [5], 3), AttrError, /split: axis must be an integer in \[-2, 1\]/);
  });
});

describe('pad', () => {
  for (const dtype of DTYPES) {
    it(`matches the coordinate formula (${dtype})`, async () => {
      const cases: { shape: number[]; p: [number, number][]; value: number }[] = [
        { shape: [5], p: [[2, 3]], value: 0 },
        { shape: [3, 4], p: [[1, 0], [0, 2]], value: 7 },
        { shape: [2, 1, 3], p: [[0, 0], [2, 1], [1, 1]], value: -2.5 },
        { shape: [0, 3], p: [[1, 1], [0, 1]], value: 1 },
        { shape: [2, 3], p: [[0, 0], [0, 0]], value: 3 },
        { shape: [], p: [], value: 4 },
      ];
      for (const { shape, p, value } of cases) {
        const x = host(shape, dtype);
        await expectExact(pad(toTensor(x), p, value), padRef(x, p, value));
      }
    });
  }
  it('gradient slices dy', async () => {
    const p: [number, number][] = [[1, 2], [0, 3], [2, 0]];
    await checkGrad([host([2, 3, 2], 'f32')], ([x]) => [pad(x!, p, 1.5)], ([x]) => [padRef(x!, p, 1.5)]);
  });
  it('errors (one pair per dimension is required)', () => {
    const x = tensor([[1, 2], [3, 4]]);
    expectError(() => pad(x, [[1, 1]]), AttrError, /pad: paddings must be 2 pairs \[before, after\] of integers >= 0 \(one per dimension of \[2, 2\]\), got \[\[1,1\]\]/);
    expectError(() => pad(x, [[1, 1], [0, -1]]), AttrError, /pad: paddings must be 2 pairs/);
    expectError(() => pad(x, [[1, 1], [0, 1.5]]), AttrError, /pad: paddings must be 2 pairs/);
    expectError(() => pad(x, [[1, 1], [0, 1, 2]] as unknown as [number, number][]), AttrError, /pad: paddings must be 2 pairs/);
    expectError(() => runOp('pad', [x], { paddings: [[0, 0], [0, 0]], value: 'a' }), AttrError, /pad: attribute 'value' expected a number/);
  });
});

describe('flip / tile', () => {
  for (const dtype of DTYPES) {
    it(`match the coordinate formulas (${dtype})`, async () => {
      const flips: { shape: number[]; axes: number[] }[] = [
        { shape: [7], axes: [0] },
        { shape: [3, 5], axes: [1] },
        { shape: [3, 5], axes: [0] },
        { shape: [2, 3, 4], axes: [0, 2] },
        { shape: [2, 1, 3], axes: [0, 1, 2] },
        { shape: [4, 0], axes: [0] },
        { shape: [3, 2], axes: [] },
      ];
      for (const { shape, axes } of flips) {
        const x = host(shape, dtype);
        await expectExact(flip(toTensor(x), axes), flipRef(x, axes));
      }
      const x = host([3, 4], dtype);
      await expectExact(flip(toTensor(x), -1), flipRef(x, [1]));
      const tiles: { shape: number[]; reps: number[] }[] = [
        { shape: [3], reps: [4] },
        { shape: [2, 3], reps: [2, 3] },
        { shape: [2, 1, 3], reps: [1, 5, 2] },
        { shape: [2, 3], reps: [0, 2] },
        { shape: [], reps: [] },
      ];
      for (const { shape, reps } of tiles) {
        const x = host(shape, dtype);
        await expectExact(tile(toTensor(x), reps), tileRef(x, reps));
      }
    });
  }
  it('composites agree with the kernels', async () => {
    const x = host([3, 2, 5], 'f16');
    const flipDef = getOpDef('flip')!;
    const tileDef = getOpDef('tile')!;
    const [f] = tidy(() => flipDef.composite!([toTensor(x)], { axes: [0, 2] }));
    await expectExact(f!, flipRef(x, [0, 2]));
    const [t] = tidy(() => tileDef.composite!([toTensor(x)], { reps: [2, 1, 3] }));
    await expectExact(t!, tileRef(x, [2, 1, 3]));
  });
  it('gradients', async () => {
    await checkGrad([host([3, 4, 2], 'f32')], ([x]) => [flip(x!, [0, 2])], ([x]) => [flipRef(x!, [0, 2])]);
    await checkGrad([host([2, 3], 'f32')], ([x]) => [tile(x!, [3, 2])], ([x]) => [tileRef(x!, [3, 2])]);
    await checkGrad([host([2, 1, 3], 'f32')], ([x]) => [tile(x!, [1, 4, 1])], ([x]) => [tileRef(x!, [1, 4, 1])]);
  });
  it('errors', () => {
    const x = tensor([[1, 2], [3, 4]]);
    expectError(() => flip(x, [0, 0]), AttrError, /flip: duplicate axes in \[0,0\]/);
    expectError(() => flip(x, 2), AttrError, /flip: axis must be an integer in \[-2, 1\] for a rank-2 tensor, got 2/);
    expectError(() => tile(x, [2]), AttrError, /tile: reps must have one count >= 0 per dimension of \[2, 2\] \(2\), got \[2\]/);
    expectError(() => tile(x, [2, -1]), AttrError, /tile: reps must have one count >= 0/);
  });
});

describe('memory', () => {
  it('no leaks through forward and backward of the shape ops', () => {
    const x = tensor(Array.from({ length: 24 }, (_, i) => i - 11.5), [2, 3, 4]);
    const before = memory();
    const grads = tidy(() => {
      const { grads } = valueAndGrad(() => {
        const a = transpose(x, [2, 0, 1]);
        const b = slice(a, [1], [2]);
        const c = concat([b, flip(b, 0)], 1);
        const [d, e] = split(c, 2, 1);
        return add(sum(mul(tile(pad(d!, [[0, 1], [1, 0], [0, 0]]), [1, 1, 2]), 2)), sum(e!));
      }, [x]);
      return grads;
    });
    expect(memory().tensors).toBe(before.tensors + 1);
    expect(grads[0]!.shape).toEqual([2, 3, 4]);
    grads[0]!.dispose();
    expect(memory().tensors).toBe(before.tensors);
    expect(memory().bytes).toBe(before.bytes);
  });
});
