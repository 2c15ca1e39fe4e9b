// Indexing ops on the CPU backend: gather/indexSelect, takeAlongAxis, scatterAdd,
// scatterAddAlongAxis, oneHot, embedding, topk, cumsum. Values against naive float64 references
// written here (every supported dtype, odd sizes, size-1 and empty dims, negative and invalid
// indices); gradients against central differences of a float64 re-implementation of
// sum(op(x) * w); every error case with its class and message.
import { describe, expect, it } from 'vitest';
import {
  AttrError, DTypeError, ShapeError, DTYPES, FLOAT_DTYPES, add, cumsum, embedding, gather, getOpDef, indexSelect,
  isLowPrecisionFloat, memory, mul, oneHot, roundToDtype, runOp, scatterAdd, scatterAddAlongAxis, sum, takeAlongAxis,
  tensor, tidy, topk, valueAndGrad, type DType, type Tensor,
} from '@ring-linear/core';
import '../src/index.js';

// ---------------------------------------------------------------------------------------------
// Seeded randomness (the seed is printed so a failure can be replayed with SEED=...)

const SEED = Number(process.env.SEED ?? Date.now() % 1_000_000);
console.log(`ops-indexing.test.ts seed: ${SEED}`);
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

/**
 * f32 values that are a shuffled 0.25-spaced ladder: at least 0.25 apart, so finite differences
 * (steps of 1e-3) never reorder them (topk's gradient is only defined away from ties).
 */
function distinct(shape: number[]): Host {
  const n = size(shape);
  const values = Float64Array.from({ length: n }, (_, i) => (i - n / 2) * 0.25 + 0.125);
  for (let i = n - 1; i > 0; i--) {
    const j = randInt(0, i + 1);
    [values[i], values[j]] = [values[j]!, values[i]!];
  }
  return { shape, dtype: 'f32', values };
}

/** Random i32 indices in [lo, hi). */
function ints(shape: number[], lo: number, hi: number): Host {
  const values = new Float64Array(size(shape));
  for (let i = 0; i < values.length; i++) values[i] = randInt(lo, hi);
  return { shape, dtype: 'i32', values };
}
const fixed = (shape: number[], vals: number[], dtype: DType = 'i32'): Host => ({ shape, dtype, values: Float64Array.from(vals) });

const toTensor = (h: Host): Tensor => tensor(Array.from(h.values), h.shape, h.dtype);

function coords(i: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return c;
}
const flat = (c: readonly number[], shape: readonly number[]) => c.reduce((acc, v, d) => acc * shape[d]! + v, 0);

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

/** Relative tolerance of one rounding to the dtype (results are computed wide and rounded once). */
const RTOL: Partial<Record<DType, number>> = { f32: 2e-7, f16: 1e-3, bf16: 8e-3, f8e4m3: 0.07, f8e5m2: 0.13, i32: 0 };

async function expectClose(t: Tensor, want: Host): Promise<void> {
  expect(t.shape).toEqual(want.shape);
  expect(t.dtype).toBe(want.dtype);
  const got = await t.data();
  const rtol = RTOL[want.dtype] ?? 0;
  for (let i = 0; i < want.values.length; i++) {
    const w = want.values[i]!;
    expect(Math.abs(got[i]! - w), `element ${i}: got ${got[i]}, want ${w}`).toBeLessThanOrEqual(rtol * Math.abs(w) + (rtol ? 1e-6 : 0));
  }
}

// ---------------------------------------------------------------------------------------------
// References (float64, naive)

/** The index rule: valid in [-n, n), negative wrap; -1 marks invalid. */
const wrapIndex = (i: number, n: number) => (i >= -n && i < n ? (i < 0 ? i + n : i) : -1);

function gatherRef(x: Host, idx: Host, axis: number): Host {
  const ir = idx.shape.length;
  const shape = [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)];
  return build(shape, x.dtype, (c) => {
    const t = wrapIndex(idx.values[flat(c.slice(axis, axis + ir), idx.shape)]!, x.shape[axis]!);
    if (t < 0) return 0;
    return x.values[flat([...c.slice(0, axis), t, ...c.slice(axis + ir)], x.shape)]!;
  });
}

const takeAlongAxisRef = (x: Host, idx: Host, axis: number): Host =>
  build([...idx.shape], x.dtype, (c) => {
    const t = wrapIndex(idx.values[flat(c, idx.shape)]!, x.shape[axis]!);
    return t < 0 ? 0 : x.values[flat(c.map((v, d) => (d === axis ? t : v)), x.shape)]!;
  });

/**
 * Sums in float64 (i32: wrapping adds), rounded once to the dtype. f32 results stay unrounded:
 * expectClose allows one f32 rounding, and the gradient checks difference these references, which
 * must stay smooth (rounding to f32 would put steps of 1e-7 into the finite differences).
 */
function finish(acc: Float64Array, shape: number[], dtype: DType): Host {
  return { shape, dtype, values: dtype === 'f32' ? acc : acc.map((v) => toDtype(v, dtype)) };
}

function scatterAddRef(x: Host, axis: number, idx: Host, upd: Host): Host {
  const acc = Float64Array.from(x.values);
  for (let i = 0; i < upd.values.length; i++) {
    const c = coords(i, upd.shape);
    const t = wrapIndex(idx.values[c[axis]!]!, x.shape[axis]!);
    if (t < 0) continue;
    const o = flat(c.map((v, d) => (d === axis ? t : v)), x.shape);
    acc[o] = x.dtype === 'i32' ? (acc[o]! + upd.values[i]!) | 0 : acc[o]! + upd.values[i]!;
  }
  return finish(acc, [...x.shape], x.dtype);
}

function scatterAddAlongAxisRef(x: Host, idx: Host, upd: Host, axis: number): Host {
  const acc = Float64Array.from(x.values);
  for (let i = 0; i < upd.values.length; i++) {
    const c = coords(i, upd.shape);
    const t = wrapIndex(idx.values[i]!, x.shape[axis]!);
    if (t < 0) continue;
    const o = flat(c.map((v, d) => (d === axis ? t : v)), x.shape);
    acc[o] = x.dtype === 'i32' ? (acc[o]! + upd.values[i]!) | 0 : acc[o]! + upd.values[i]!;
  }
  return finish(acc, [...x.shape], x.dtype);
}

const oneHotRef = (idx: Host, depth: number, dtype: DType): Host =>
  build([...idx.shape, depth], dtype, (c) => (idx.values[flat(c.slice(0, -1), idx.shape)] === c[c.length - 1] ? 1 : 0));

/**
 * topk by repeated selection: scan in index order and keep the first strictly better candidate,
 * so ties go to the lower index. NaN ranks above every number.
 */
function topkRef(x: Host, k: number, axis: number, largest: boolean): [Host, Host] {
  const n = x.shape[axis]!;
  const shape = x.shape.map((d, i) => (i === axis ? k : d));
  const vals = new Float64Array(size(shape));
  const idxs = new Float64Array(size(shape));
  const rank = (v: number) => (Number.isNaN(v) ? Infinity : v);
  const better = (a: number, b: number) => {
    // is a strictly before b in the output order?
    if (Number.isNaN(a) || Number.isNaN(b)) return largest ? Number.isNaN(a) && !Number.isNaN(b) : Number.isNaN(b) && !Number.isNaN(a);
    return largest ? rank(a) > rank(b) : rank(a) < rank(b);
  };
  // Iterate over rows: every coordinate of `shape` with axis coordinate 0 names a row.
  const rowShape = x.shape.map((d, i) => (i === axis ? 1 : d));
  for (let r = 0; r < size(rowShape); r++) {
    const rc = coords(r, rowShape);
    const at = (j: number) => flat(rc.map((v, d) => (d === axis ? j : v)), x.shape);
    const taken = new Set<number>();
    for (let s = 0; s < k; s++) {
      let best = -1;
      for (let j = 0; j < n; j++) {
        if (taken.has(j)) continue;
        if (best < 0 || better(x.values[at(j)]!, x.values[at(best)]!)) best = j;
      }
      taken.add(best);
      const oc = flat(rc.map((v, d) => (d === axis ? s : v)), shape);
      vals[oc] = x.values[at(best)]!;
      idxs[oc] = best;
    }
  }
  return [{ shape, dtype: x.dtype, values: vals }, { shape, dtype: 'i32', values: idxs }];
}

function cumsumRef(x: Host, axis: number, exclusive: boolean, reverse: boolean): Host {
  const n = x.shape[axis]!;
  const acc = new Float64Array(x.values.length);
  for (let i = 0; i < acc.length; i++) {
    const c = coords(i, x.shape);
    let s = 0;
    for (let j = 0; j < n; j++) {
      const inRange = reverse ? (exclusive ? j > c[axis]! : j >= c[axis]!) : exclusive ? j < c[axis]! : j <= c[axis]!;
      if (!inRange) continue;
      const v = x.values[flat(c.map((q, d) => (d === axis ? j : q)), x.shape)]!;
      s = x.dtype === 'i32' ? (s + v) | 0 : s + v;
    }
    acc[i] = s;
  }
  return finish(acc, [...x.shape], x.dtype);
}

// ---------------------------------------------------------------------------------------------
// Gradient check: autograd of L = sum_k sum(outs_k * w_k) vs central differences of the float64 L

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

/** `wrt`: which inputs are differentiated (the others, e.g. indices, are held fixed). */
async function checkGrad(
  inputs: Host[],
  wrt: number[],
  op: (xs: Tensor[]) => Tensor[],
  ref: (xs: Host[]) => Host[],
  tol = 1e-4,
): Promise<void> {
  const outs = ref(inputs);
  const ws = outs.map((o) => host(o.shape, 'f32'));
  const loss = (xs: Host[]) => ref(xs).reduce((acc, o, k) => acc + o.values.reduce((a, v, i) => a + v * ws[k]!.values[i]!, 0), 0);
  const ts = inputs.map(toTensor);
  const watched = wrt.map((j) => ts[j]!);
  const before = memory().tensors;
  const { value, grads } = valueAndGrad(() => {
    const ys = op(ts);
    return ys.map((y, k) => sum(mul(y, toTensor(ws[k]!)))).reduce((a, b) => add(a, b));
  }, watched);
  expect(memory().tensors).toBe(before + 1 + grads.length);
  expect(await value.item()).toBeCloseTo(loss(inputs), 3);
  for (const [gi, j] of wrt.entries()) {
    const fd = fdGrad((v) => loss(inputs.map((h, i) => (i === j ? { ...h, values: v } : h))), inputs[j]!.values);
    const g = await grads[gi]!.data();
    expect(grads[gi]!.shape).toEqual(inputs[j]!.shape);
    for (let i = 0; i < fd.length; i++) expect(Math.abs(g[i]! - fd[i]!), `input ${j} element ${i}`).toBeLessThanOrEqual(tol * (1 + Math.abs(fd[i]!)));
  }
  value.dispose();
  grads.forEach((g) => g.dispose());
  ts.forEach((t) => t.dispose());
}

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

const ADDABLE: DType[] = [...FLOAT_DTYPES, 'i32'];
const ORDERED: DType[] = [...FLOAT_DTYPES, 'i32', 'u8'];

// ---------------------------------------------------------------------------------------------

describe('gather / indexSelect', () => {
  for (const dtype of DTYPES) {
    it(`matches the formula, negative indices wrap, invalid ones read 0 (${dtype})`, async () => {
      const cases: { x: number[]; idx: number[]; axis: number }[] = [
        { x: [7], idx: [5], axis: 0 },
        { x: [5, 3], idx: [2, 4], axis: 0 },
        { x: [4, 5, 3], idx: [6], axis: 1 },
        { x: [4, 5, 3], idx: [2, 1, 3], axis: 2 },
        { x: [3, 1, 2], idx: [], axis: 1 }, // scalar index: the axis disappears
        { x: [3, 4], idx: [0], axis: 1 },
        { x: [2, 0, 3], idx: [4], axis: 1 }, // empty axis: every index is invalid
      ];
      for (const { x: xs, idx: is, axis } of cases) {
        const x = host(xs, dtype);
        const n = xs[axis]!;
        const idx = ints(is, -n - 2, n + 2);
        await expectExact(gather(toTensor(x), toTensor(idx), axis), gatherRef(x, idx, axis));
      }
      const x = host([3, 4], dtype);
      const idx = fixed([5], [3, -1, -4, 4, -5]);
      const y = indexSelect(toTensor(x), -1, toTensor(idx));
      const want = gatherRef(x, idx, 1);
      await expectExact(y, want);
      // columns 3 and 4 of the output are zero (index 4 and -5 are outside [-4, 4))
      expect(want.values[3]).toBe(0);
      expect(want.values[4]).toBe(0);
    });
  }
  it('gradient scatters dy back, accumulating duplicates and skipping invalid indices', async () => {
    const idx = fixed([2, 3], [1, -1, 1, 7, 0, 1]);
    await checkGrad([host([4, 5, 2], 'f32'), idx], [0], ([x, i]) => [gather(x!, i!, 1)], ([x, i]) => [gatherRef(x!, i!, 1)]);
    await checkGrad([host([6], 'f32'), ints([4], -6, 6)], [0], ([x, i]) => [gather(x!, i!)], ([x, i]) => [gatherRef(x!, i!, 0)]);
  });
  it('errors', () => {
    const x = tensor([[1, 2], [3, 4]]);
    expectError(() => gather(x, tensor([0, 1])), DTypeError, /gather: input 'indices' must have dtype i32, got f32/);
    expectError(() => gather(x, tensor([0], [1], 'i32'), 2), AttrError, /gather: axis must be an integer in \[-2, 1\] for a rank-2 tensor, got 2/);
    expectError(() => gather(tensor(1), tensor([0], [1], 'i32')), ShapeError, /gather: 'x' must have rank >= 1 to work along an axis, got a scalar/);
    expectError(() => indexSelect(x, 0, tensor([[0]], [1, 1], 'i32')), ShapeError, /indexSelect: 'indices' must have rank 1, got shape \[1, 1\]/);
  });
});

describe('takeAlongAxis / scatterAddAlongAxis', () => {
  for (const dtype of DTYPES) {
    it(`takeAlongAxis matches the formula (${dtype})`, async () => {
      const cases: { x: number[]; k: number; axis: number }[] = [
        { x: [7], k: 4, axis: 0 },
        { x: [3, 5], k: 2, axis: 1 },
        { x: [3, 5], k: 6, axis: 0 },
        { x: [2, 5, 3], k: 1, axis: 1 },
        { x: [2, 1, 3], k: 0, axis: 2 },
      ];
      for (const { x: xs, k, axis } of cases) {
        const x = host(xs, dtype);
        const n = xs[axis]!;
        const idx = ints(xs.map((d, i) => (i === axis ? k : d)), -n - 1, n + 1);
        await expectExact(takeAlongAxis(toTensor(x), toTensor(idx), axis), takeAlongAxisRef(x, idx, axis));
      }
    });
  }
  for (const dtype of ADDABLE) {
    it(`scatterAddAlongAxis matches the formula; duplicates add, invalid indices are ignored (${dtype})`, async () => {
      const cases: { x: number[]; k: number; axis: number }[] = [
        { x: [7], k: 9, axis: 0 },
        { x: [3, 5], k: 4, axis: 1 },
        { x: [4, 3], k: 2, axis: 0 },
        { x: [2, 5, 3], k: 3, axis: 1 },
        { x: [2, 3], k: 0, axis: 1 },
      ];
      for (const { x: xs, k, axis } of cases) {
        const x = host(xs, dtype);
        const n = xs[axis]!;
        const shape = xs.map((d, i) => (i === axis ? k : d));
        const idx = ints(shape, -n - 1, n + 1);
        const upd = host(shape, dtype);
        await expectClose(scatterAddAlongAxis(toTensor(x), toTensor(idx), toTensor(upd), axis), scatterAddAlongAxisRef(x, idx, upd, axis));
      }
    });
  }
  it('gradients: takeAlongAxis -> scatter, scatterAddAlongAxis -> identity and take', async () => {
    const idx = fixed([3, 2], [0, 0, -1, 4, 2, 1]);
    await checkGrad([host([3, 4], 'f32'), idx], [0], ([x, i]) => [takeAlongAxis(x!, i!, 1)], ([x, i]) => [takeAlongAxisRef(x!, i!, 1)]);
    const idx2 = fixed([2, 3], [0, 2, 2, -3, 5, 1]);
    await checkGrad(
      [host([3, 3], 'f32'), idx2, host([2, 3], 'f32')],
      [0, 2],
      ([x, i, u]) => [scatterAddAlongAxis(x!, i!, u!, 0)],
      ([x, i, u]) => [scatterAddAlongAxisRef(x!, i!, u!, 0)],
    );
  });
  it('errors', () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]]);
    const i = (vals: number[], shape: number[]) => tensor(vals, shape, 'i32');
    expectError(() => takeAlongAxis(x, i([0, 1], [2]), 1), ShapeError, /takeAlongAxis: 'indices' must have the rank of x \[2, 3\] and its sizes on every axis but 1, got \[2\]/);
    expectError(() => takeAlongAxis(x, i([0, 1, 0], [3, 1]), 1), ShapeError, /on every axis but 1, got \[3, 1\]/);
    expectError(() => takeAlongAxis(x, tensor([[0], [1]]), 1), DTypeError, /takeAlongAxis: input 'indices' must have dtype i32, got f32/);
    expectError(() => scatterAddAlongAxis(x, i([0, 1], [2, 1]), tensor([[1], [2], [3]]), 1), ShapeError, /scatterAddAlongAxis: 'updates' must have the shape of 'indices' \[2, 1\], got \[3, 1\]/);
    expectError(() => scatterAddAlongAxis(x, i([0, 1], [1, 2]), tensor([[1, 2]]), 0), ShapeError, /scatterAddAlongAxis: 'indices' must have the rank of x \[2, 3\] and its sizes on every axis but 0, got \[1, 2\]/);
    expectError(() => scatterAddAlongAxis(x, i([0, 1], [2, 1]), tensor([[1], [2]], [2, 1], 'bf16'), 1), DTypeError, /scatterAddAlongAxis: 'x' and 'updates' must have the same dtype, got f32 and bf16/);
    expectError(() => scatterAddAlongAxis(tensor([1, 0], [2], 'u8'), i([0], [1]), tensor([1], [1], 'u8'), 0), DTypeError, /scatterAddAlongAxis: input 'x' must have dtype f32\|f16\|bf16\|f8e4m3\|f8e5m2\|i32, got u8/);
  });
});

describe('scatterAdd (index_add)', () => {
  for (const dtype of ADDABLE) {
    it(`matches the formula; duplicates accumulate, invalid indices are ignored (${dtype})`, async () => {
      const cases: { x: number[]; m: number; axis: number }[] = [
        { x: [6], m: 9, axis: 0 },
        { x: [5, 3], m: 7, axis: 0 },
        { x: [3, 4, 2], m: 5, axis: 1 },
        { x: [2, 1, 5], m: 3, axis: 2 },
        { x: [4, 3], m: 0, axis: 0 },
      ];
      for (const { x: xs, m, axis } of cases) {
        const x = host(xs, dtype);
        const n = xs[axis]!;
        const idx = ints([m], -n - 2, n + 2);
        const upd = host(xs.map((d, i) => (i === axis ? m : d)), dtype);
        await expectClose(scatterAdd(toTensor(x), axis, toTensor(idx), toTensor(upd)), scatterAddRef(x, axis, idx, upd));
      }
    });
  }
  it('accumulates in float64 and rounds once; i32 wraps', async () => {
    // In f32, 1e8 + 1 rounds back to 1e8, so sequential f32 adds would lose the 1.
    const y = scatterAdd(tensor([1e8, 0]), 0, tensor([0, 0, 1], [3], 'i32'), tensor([1, -1e8, 5]));
    expect(Array.from(await y.data())).toEqual([1, 5]);
    const z = scatterAdd(tensor([2147483647], [1], 'i32'), 0, tensor([0, 0], [2], 'i32'), tensor([1, 1], [2], 'i32'));
    expect(Array.from(await z.data())).toEqual([-2147483647]);
  });
  it('gradients: x gets dy, updates get gather(dy)', async () => {
    const idx = fixed([5], [2, 0, 2, -1, 9]);
    await checkGrad(
      [host([3, 4], 'f32'), idx, host([3, 5], 'f32')],
      [0, 2],
      ([x, i, u]) => [scatterAdd(x!, 1, i!, u!)],
      ([x, i, u]) => [scatterAddRef(x!, 1, i!, u!)],
    );
  });
  it('errors', () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]]);
    const i = (vals: number[], shape: number[]) => tensor(vals, shape, 'i32');
    expectError(() => scatterAdd(x, 0, i([0, 1], [1, 2]), tensor([[1, 2, 3], [1, 2, 3]])), ShapeError, /scatterAdd: 'indices' must have rank 1, got shape \[1, 2\]/);
    expectError(() => scatterAdd(x, 0, i([0, 1], [2]), tensor([[1, 2, 3]])), ShapeError, /scatterAdd: 'updates' must have shape \[2, 3\] \(x \[2, 3\] with axis 0 replaced by the 2 indices\), got \[1, 3\]/);
    expectError(() => scatterAdd(x, 1, i([0], [1]), tensor([[1], [2]], [2, 1], 'i32')), DTypeError, /scatterAdd: 'x' and 'updates' must have the same dtype, got f32 and i32/);
    expectError(() => scatterAdd(tensor([true]), 0, i([0], [1]), tensor([true])), DTypeError, /scatterAdd: input 'x' must have dtype .*got bool/);
    expectError(() => scatterAdd(x, 0, tensor([0]), tensor([[1, 2, 3]])), DTypeError, /scatterAdd: input 'indices' must have dtype i32, got f32/);
    expectError(() => scatterAdd(x, -3, i([0], [1]), tensor([[1, 2, 3]])), AttrError, /scatterAdd: axis must be an integer in \[-2, 1\]/);
  });
});

describe('oneHot', () => {
  for (const dtype of DTYPES) {
    it(`matches the formula; indices outside [0, depth) give zero rows (${dtype})`, async () => {
      for (const [shape, depth] of [[[7], 5], [[2, 3], 4], [[], 3], [[4], 1], [[3], 0], [[0], 2]] as [number[], number][]) {
        const idx = ints(shape, -2, depth + 2);
        await expectExact(oneHot(toTensor(idx), depth, dtype), oneHotRef(idx, depth, dtype));
      }
    });
  }
  it('defaults to f32; -1 gives an all-zero row; the composite agrees with the kernel', async () => {
    const idx = fixed([4], [2, -1, 0, 3]);
    expect(await oneHot(toTensor(idx), 3).array()).toEqual([[0, 0, 1], [0, 0, 0], [1, 0, 0], [0, 0, 0]]);
    for (const dtype of ['f32', 'bf16', 'u8', 'bool'] as DType[]) {
      const i2 = ints([3, 5], -1, 7);
      const [y] = tidy(() => getOpDef('oneHot')!.composite!([toTensor(i2)], { depth: 6, dtype }));
      await expectExact(y!, oneHotRef(i2, 6, dtype));
    }
  });
  it('errors', () => {
    const idx = tensor([0, 1], [2], 'i32');
    expectError(() => oneHot(idx, -1), AttrError, /oneHot: attribute 'depth' expected an integer >= 0, got -1/);
    expectError(() => oneHot(idx, 2.5), AttrError, /oneHot: attribute 'depth' expected an integer, got 2.5/);
    expectError(() => oneHot(tensor([0, 1]), 3), DTypeError, /oneHot: input 'indices' must have dtype i32, got f32/);
    expectError(() => oneHot(idx, 3, 'x' as DType), AttrError, /oneHot: attribute 'dtype' expected a dtype/);
  });
});

describe('embedding', () => {
  for (const dtype of FLOAT_DTYPES) {
    it(`picks rows; ids in [-V, V) wrap, others give zero rows (${dtype})`, async () => {
      for (const ids of [[5], [2, 3], [], [0], [1, 1, 4]]) {
        const w = host([6, 5], dtype);
        const id = ints(ids, -8, 8);
        await expectExact(embedding(toTensor(id), toTensor(w)), gatherRef(w, id, 0));
      }
      const w = host([4, 3], dtype);
      const id = fixed([2, 2], [1, 3, 3, 9]);
      const [c] = tidy(() => getOpDef('embedding')!.composite!([toTensor(id), toTensor(w)], {}));
      await expectExact(c!, gatherRef(w, id, 0));
    });
  }
  it('gradient goes to the weight rows (accumulated for repeated ids), none to the ids', async () => {
    const ids = fixed([2, 3], [1, 4, 1, -1, 7, 0]);
    await checkGrad([ids, host([5, 3], 'f32')], [1], ([i, w]) => [embedding(i!, w!)], ([i, w]) => [gatherRef(w!, i!, 0)]);
  });
  it('errors', () => {
    const ids = tensor([0, 1], [2], 'i32');
    expectError(() => embedding(ids, tensor([1, 2, 3])), ShapeError, /embedding: 'weight' must have rank 2 \[V, D\], got shape \[3\]/);
    expectError(() => embedding(ids, tensor([[1, 2]], [1, 2], 'i32')), DTypeError, /embedding: input 'weight' must have dtype f32\|f16\|bf16\|f8e4m3\|f8e5m2, got i32/);
    expectError(() => embedding(tensor([0, 1]), tensor([[1, 2]])), DTypeError, /embedding: input 'ids' must have dtype i32, got f32/);
  });
});

describe('topk', () => {
  for (const dtype of ORDERED) {
    it(`matches selection order, sorted, ties to the lower index (${dtype})`, async () => {
      const cases: { shape: number[]; k: number; axis: number; largest: boolean }[] = [
        { shape: [9], k: 4, axis: -1, largest: true },
        { shape: [5, 7], k: 3, axis: 1, largest: true },
        { shape: [5, 7], k: 2, axis: 0, largest: false },
        { shape: [3, 6, 2], k: 6, axis: 1, largest: true },
        { shape: [3, 6, 2], k: 0, axis: 1, largest: false },
        { shape: [4, 1], k: 1, axis: 1, largest: true },
        { shape: [7, 16], k: 4, axis: -1, largest: true }, // router-like: 7 tokens, 16 experts
        { shape: [3, 67], k: 5, axis: 1, largest: true }, // k << n: the partial-selection path
        { shape: [67, 2], k: 3, axis: 0, largest: false },
      ];
      for (const { shape, k, axis, largest } of cases) {
        const x = host(shape, dtype);
        // Force ties: copy some values onto others.
        for (let i = 1; i < x.values.length; i += 3) x.values[i] = x.values[i - 1]!;
        const ax = axis < 0 ? axis + shape.length : axis;
        const [wv, wi] = topkRef(x, k, ax, largest);
        const { values, indices } = topk(toTensor(x), k, { axis, largest });
        await expectExact(values, wv);
        await expectExact(indices, wi);
      }
    });
  }
  it('small k of a long row (partial selection) with ties and NaN', async () => {
    const pool = [1, 2, 2, 3, -1, NaN, 0, -0, 5, 5];
    for (const largest of [true, false]) {
      const x: Host = { shape: [3, 83], dtype: 'f32', values: Float64Array.from({ length: 3 * 83 }, () => pool[randInt(0, pool.length)]!) };
      for (const k of [1, 4, 10]) {
        const [wv, wi] = topkRef(x, k, 1, largest);
        const { values, indices } = topk(toTensor(x), k, { largest });
        await expectExact(values, wv);
        await expectExact(indices, wi);
      }
    }
  });
  it('explicit ties, NaN above everything, -0 ties +0', async () => {
    const t = topk(tensor([1, 3, 3, 2, 3]), 3);
    expect(Array.from(await t.indices.data())).toEqual([1, 2, 4]);
    const s = topk(tensor([2, 1, 3, 1, 1]), 3, { largest: false });
    expect(Array.from(await s.indices.data())).toEqual([1, 3, 4]);
    const x = tensor([1, NaN, 5, NaN, -Infinity, Infinity]);
    const hi = topk(x, 6);
    expect(Array.from(await hi.indices.data())).toEqual([1, 3, 5, 2, 0, 4]);
    expect(Array.from(await hi.values.data())).toEqual([NaN, NaN, Infinity, 5, 1, -Infinity]);
    const lo = topk(x, 6, { largest: false });
    expect(Array.from(await lo.indices.data())).toEqual([4, 0, 2, 5, 1, 3]);
    const z = topk(tensor([0, -0, 0]), 3);
    expect(Array.from(await z.indices.data())).toEqual([0, 1, 2]);
    const zl = topk(tensor([-0, 0]), 2, { largest: false });
    expect(Array.from(await zl.indices.data())).toEqual([0, 1]);
  });
  it('gradient flows through values to the selected positions', async () => {
    await checkGrad([distinct([3, 7])], [0], ([x]) => [topk(x!, 3).values], ([x]) => [topkRef(x!, 3, 1, true)[0]]);
    await checkGrad([distinct([5, 2])], [0], ([x]) => [topk(x!, 2, { axis: 0, largest: false }).values], ([x]) => [topkRef(x!, 2, 0, false)[0]]);
  });
  it('errors', () => {
    const x = tensor([[1, 2, 3]]);
    expectError(() => topk(x, 4), AttrError, /topk: k must be in \[0, 3\] \(axis 1 of \[1, 3\]\), got 4/);
    expectError(() => topk(x, -1), AttrError, /topk: k must be in \[0, 3\].*got -1/);
    expectError(() => topk(x, 2, { axis: 0 }), AttrError, /topk: k must be in \[0, 1\] \(axis 0 of \[1, 3\]\), got 2/);
    expectError(() => topk(x, 1.5), AttrError, /topk: attribute 'k' expected an integer, got 1.5/);
    expectError(() => topk(x, 1, { axis: 2 }), AttrError, /topk: axis must be an integer in \[-2, 1\]/);
    expectError(() => topk(tensor([true, false]), 1), DTypeError, /topk: input 'x' must have dtype .*got bool/);
    expectError(() => topk(tensor(1), 1), ShapeError, /topk: 'x' must have rank >= 1/);
  });
});

describe('cumsum', () => {
  for (const dtype of ADDABLE) {
    it(`matches the formula for every exclusive/reverse combination (${dtype})`, async () => {
      const cases: { shape: number[]; axis: number }[] = [
        { shape: [9], axis: 0 },
        { shape: [4, 7], axis: 1 },
        { shape: [4, 7], axis: -2 },
        { shape: [3, 5, 2], axis: 1 },
        { shape: [2, 1, 3], axis: 1 },
        { shape: [2, 0], axis: 1 },
      ];
      for (const { shape, axis } of cases) {
        const x = host(shape, dtype);
        const ax = axis < 0 ? axis + shape.length : axis;
        for (const exclusive of [false, true]) {
          for (const reverse of [false, true]) {
            await expectClose(cumsum(toTensor(x), axis, { exclusive, reverse }), cumsumRef(x, ax, exclusive, reverse));
          }
        }
      }
    });
  }
  it('accumulates in float64 (f32) and wraps (i32)', async () => {
    expect(Array.from(await cumsum(tensor([1e8, 1, -1e8]), 0).data())).toEqual([1e8, 1e8, 1]);
    expect(Array.from(await cumsum(tensor([2147483647, 1, 1], [3], 'i32'), 0).data())).toEqual([2147483647, -2147483648, -2147483647]);
  });
  it('gradient is the cumsum run the other way', async () => {
    for (const exclusive of [false, true]) {
      for (const reverse of [false, true]) {
        await checkGrad([host([3, 5], 'f32')], [0], ([x]) => [cumsum(x!, 1, { exclusive, reverse })], ([x]) => [cumsumRef(x!, 1, exclusive, reverse)]);
      }
    }
  });
  it('errors', () => {
    expectError(() => cumsum(tensor([1, 2], [2], 'u8'), 0), DTypeError, /cumsum: input 'x' must have dtype f32\|f16\|bf16\|f8e4m3\|f8e5m2\|i32, got u8/);
    expectError(() => cumsum(tensor([1, 2]), 1), AttrError, /cumsum: axis must be an integer in \[-1, 0\] for a rank-1 tensor, got 1/);
    expectError(() => cumsum(tensor(2), 0), ShapeError, /cumsum: 'x' must have rank >= 1/);
    expectError(() => runOp('cumsum', [tensor([1, 2])], {}), AttrError, /cumsum: attribute 'axis' is required/);
  });
});

describe('memory', () => {
  it('no leaks through forward and backward of the indexing ops', () => {
    const w = tensor(Array.from({ length: 20 }, (_, i) => Math.sin(i)), [5, 4]);
    const ids = tensor([1, 3, 3, 0, 4, 2], [2, 3], 'i32');
    const before = memory();
    const grads = tidy(() => {
      const { grads } = valueAndGrad(() => {
        const e = embedding(ids, w); // [2, 3, 4]
        const { values, indices } = topk(e, 2, { axis: 2 });
        const t = takeAlongAxis(e, indices, 2);
        const g = gather(cumsum(add(values, t), 1, { reverse: true }), tensor([1, 0], [2], 'i32'), 2);
        return sum(scatterAdd(g, 0, tensor([1, 1], [2], 'i32'), g));
      }, [w]);
      return grads;
    });
    expect(memory().tensors).toBe(before.tensors + 1);
    grads[0]!.dispose();
    expect(memory().tensors).toBe(before.tensors);
    expect(memory().bytes).toBe(before.bytes);
  });
});
