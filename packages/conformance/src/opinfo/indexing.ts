/**
 * OpInfo records for the indexing ops (core ops/indexing.ts): gather, takeAlongAxis, scatterAdd,
 * scatterAddAlongAxis, oneHot, embedding, topk, cumsum.
 *
 * The index rule every backend must follow (it cannot check indices before running): an index
 * into a length-n axis is valid in [-n, n), negative ones wrap; gathers read 0 for invalid
 * indices, scatters skip them; oneHot accepts [0, depth) only. Samples mix valid, negative and
 * invalid indices, and repeated ones for the scatters (which must accumulate). topk must be
 * stable (ties to the lower index) with NaN ranked above every number.
 */
import { DTYPES, FLOAT_DTYPES, sizeOf, type DType } from '@ring-linear/core';
import type { ErrorInput, HostTensor, OpInfo, SampleInput, SampleRng } from './types.js';
import { host, unflatten } from '../host.js';
import { specialsTensor } from '../samples.js';
import { buildHost, disposedCase, flatIndex, normAxis, randomOf } from './shape.js';

const ADDABLE: readonly DType[] = [...FLOAT_DTYPES, 'i32'];
const ORDERED: readonly DType[] = [...FLOAT_DTYPES, 'i32', 'u8'];

/** The index rule: the wrapped index, or -1 when outside [-n, n). */
const wrapIndex = (i: number, n: number) => (i >= -n && i < n ? (i < 0 ? i + n : i) : -1);

/** i32 indices uniform in [lo, hi) (include values outside [-n, n) to exercise the rule). */
const indices = (rng: SampleRng, shape: readonly number[], lo: number, hi: number): HostTensor =>
  host(shape, 'i32', Array.from({ length: sizeOf(shape) }, () => rng.int(lo, hi)));

const i32 = (shape: readonly number[], values: readonly number[]): HostTensor => host(shape, 'i32', values);

const GRAD_MAX = 200;
const gradGuard = (inputs: readonly HostTensor[]) => (inputs.reduce((s, h) => s + h.values.length, 0) > GRAD_MAX ? { noGrad: true } : {});

/**
 * tfjs gather with this suite's index rule: wrap negatives, gather at a safe index, then put 0
 * where the index was invalid (tf.where, so no -0 from multiplying by 0).
 */
function tfGatherMasked(tf: any, x: any, idx: any, axis: number): any {
  const n = x.shape[axis];
  const wrapped = tf.where(tf.less(idx, 0), tf.add(idx, tf.scalar(n, 'int32')), idx);
  const valid = tf.logicalAnd(tf.greaterEqual(wrapped, tf.scalar(0, 'int32')), tf.less(wrapped, tf.scalar(n, 'int32')));
  const safe = tf.where(valid, wrapped, tf.zerosLike(wrapped));
  const g = tf.gather(x, safe, axis);
  const maskShape = [...Array(axis).fill(1), ...idx.shape, ...Array(x.rank - axis - 1).fill(1)];
  const mask = tf.broadcastTo(tf.reshape(valid, maskShape), g.shape);
  return tf.where(mask, g, tf.zerosLike(g));
}

// ---------------------------------------------------------------------------------------------
// gather

function gatherRef(x: HostTensor, idx: HostTensor, axis: number): HostTensor {
  const k = idx.shape.length;
  const shape = [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)];
  return buildHost(shape, x.dtype, (c) => {
    const t = wrapIndex(idx.values[flatIndex(c.slice(axis, axis + k), idx.shape)]!, x.shape[axis]!);
    return t < 0 ? 0 : x.values[flatIndex([...c.slice(0, axis), t, ...c.slice(axis + k)], x.shape)]!;
  });
}

const gatherInfo: OpInfo = {
  op: 'gather',
  dtypes: DTYPES,
  samples: (rng, dtype) => {
    const cases: { x: number[]; idx: number[]; axis?: number; valid?: boolean; desc?: string }[] = [
      { x: [7], idx: [5], valid: true, desc: 'valid indices' },
      { x: [5, 3], idx: [2, 4], desc: 'default axis 0; negative and invalid indices' },
      { x: [4, 5, 3], idx: [6], axis: 1, desc: 'repeated indices' },
      { x: [4, 5, 3], idx: [2, 1, 3], axis: -1, desc: 'negative axis, rank-3 indices' },
      { x: [3, 1, 2], idx: [], axis: 1, desc: 'scalar index: the axis disappears' },
      { x: [3, 4], idx: [0], axis: 1, desc: 'no indices' },
      { x: [2, 0, 3], idx: [4], axis: 1, desc: 'empty axis: every index invalid' },
      { x: [40, 16], idx: [25], axis: 0, desc: 'larger, row gather' },
    ];
    return cases.map(({ x: xs, idx, axis, valid, desc }): SampleInput => {
      const n = xs[normAxis(axis ?? 0, xs.length)]!;
      const inputs = [randomOf(rng, xs, dtype), valid ? indices(rng, idx, 0, n) : indices(rng, idx, -n - 2, n + 2)];
      return { inputs, attrs: axis === undefined ? {} : { axis }, ...(desc ? { desc } : {}), ...gradGuard(inputs) };
    });
  },
  reference: ([x, idx], attrs) => [gatherRef(x!, idx!, normAxis((attrs.axis as number | undefined) ?? 0, x!.shape.length))],
  tfjs: (tf, [x, idx], attrs) => tfGatherMasked(tf, x, idx, normAxis((attrs.axis as number | undefined) ?? 0, x.rank)),
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([2, 2], 'f32'), rng.tensor([2], 'f32')], error: 'DTypeError', message: /gather: input 'indices' must have dtype i32, got f32/, desc: 'float indices' },
    { inputs: [rng.tensor([2, 2], 'f32'), i32([1], [0])], attrs: { axis: 2 }, error: 'AttrError', message: /gather: axis must be an integer in \[-2, 1\] for a rank-2 tensor, got 2/, desc: 'axis out of range' },
    { inputs: [rng.tensor([], 'f32'), i32([1], [0])], error: 'ShapeError', message: /gather: 'x' must have rank >= 1 to work along an axis, got a scalar/, desc: 'scalar x' },
    { inputs: [rng.tensor([2, 2], 'f32')], error: 'AttrError', message: /gather: expected 2 input tensor\(s\) \(x, indices\), got 1/, desc: 'missing indices' },
    disposedCase(rng, { axis: 0 }),
  ],
};

// ---------------------------------------------------------------------------------------------
// takeAlongAxis / scatterAddAlongAxis

const takeRef = (x: HostTensor, idx: HostTensor, axis: number): HostTensor =>
  buildHost(idx.shape, x.dtype, (c) => {
    const t = wrapIndex(idx.values[flatIndex(c, idx.shape)]!, x.shape[axis]!);
    return t < 0 ? 0 : x.values[flatIndex(c.map((v, d) => (d === axis ? t : v)), x.shape)]!;
  });

const ALONG_CASES: { x: number[]; k: number; axis: number; desc?: string }[] = [
  { x: [7], k: 9, axis: 0, desc: 'rank 1, more indices than entries' },
  { x: [3, 5], k: 2, axis: 1 },
  { x: [3, 5], k: 4, axis: 0 },
  { x: [2, 5, 3], k: 1, axis: -2, desc: 'negative axis, size-1 index axis' },
  { x: [2, 1, 3], k: 0, axis: 2, desc: 'no indices' },
  { x: [16, 24], k: 8, axis: 1, desc: 'larger (router-like)' },
];

function alongSamples(rng: SampleRng, dtype: DType, withUpdates: boolean): SampleInput[] {
  return ALONG_CASES.map(({ x: xs, k, axis, desc }) => {
    const ax = normAxis(axis, xs.length);
    const n = xs[ax]!;
    const ishape = xs.map((d, i) => (i === ax ? k : d));
    const inputs = [randomOf(rng, xs, dtype), indices(rng, ishape, -n - 1, n + 1)];
    if (withUpdates) inputs.push(randomOf(rng, ishape, dtype));
    return { inputs, attrs: { axis }, ...(desc ? { desc } : {}), ...gradGuard(inputs) };
  });
}

const takeAlongAxisInfo: OpInfo = {
  op: 'takeAlongAxis',
  dtypes: DTYPES,
  samples: (rng, dtype) => alongSamples(rng, dtype, false),
  reference: ([x, idx], attrs) => [takeRef(x!, idx!, normAxis(attrs.axis as number, x!.shape.length))],
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([2, 3], 'f32'), i32([2], [0, 1])], attrs: { axis: 1 }, error: 'ShapeError', message: /takeAlongAxis: 'indices' must have the rank of x \[2, 3\] and its sizes on every axis but 1, got \[2\]/, desc: 'rank differs' },
    { inputs: [rng.tensor([2, 3], 'f32'), i32([3, 1], [0, 1, 2])], attrs: { axis: 1 }, error: 'ShapeError', message: /takeAlongAxis: 'indices' must have .* on every axis but 1, got \[3, 1\]/, desc: 'other dim differs' },
    { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor([2, 1], 'f32')], attrs: { axis: 1 }, error: 'DTypeError', message: /takeAlongAxis: input 'indices' must have dtype i32, got f32/, desc: 'float indices' },
    { inputs: [rng.tensor([], 'f32'), i32([], [0])], attrs: { axis: 0 }, error: 'ShapeError', message: /takeAlongAxis: 'x' must have rank >= 1/, desc: 'scalar x' },
    disposedCase(rng, { axis: 0 }),
  ],
};

/** Adds in float64 (i32: wrapping adds, as an int32 add does). */
const addAs = (dtype: DType) => (a: number, b: number) => (dtype === 'i32' ? (a + b) | 0 : a + b);

function scatterAlongRef(x: HostTensor, idx: HostTensor, upd: HostTensor, axis: number): { out: HostTensor; mag: Float64Array } {
  const out = Float64Array.from(x.values);
  const mag = Float64Array.from(x.values, Math.abs);
  const add = addAs(x.dtype);
  for (let i = 0; i < upd.values.length; i++) {
    const t = wrapIndex(idx.values[i]!, x.shape[axis]!);
    if (t < 0) continue;
    const o = flatIndex(unflatten(i, upd.shape).map((v, d) => (d === axis ? t : v)), x.shape);
    out[o] = add(out[o]!, upd.values[i]!);
    mag[o] += Math.abs(upd.values[i]!);
  }
  return { out: { shape: x.shape, dtype: x.dtype, values: out }, mag };
}

const scatterErrorsCommon = (op: string, rng: SampleRng, idx: HostTensor, axis: number): ErrorInput[] => [
  { inputs: [rng.tensor([2, 3], 'f32'), idx, rng.tensor([2, 1], 'bf16')], attrs: { axis }, error: 'DTypeError', message: new RegExp(`${op}: 'x' and 'updates' must have the same dtype, got f32 and bf16`), desc: 'dtypes differ' },
  { inputs: [rng.tensor([2, 3], 'u8'), idx, rng.tensor([2, 1], 'u8')], attrs: { axis }, error: 'DTypeError', message: new RegExp(`${op}: input 'x' must have dtype f32\\|f16\\|bf16\\|f8e4m3\\|f8e5m2\\|i32, got u8`), desc: 'u8 x' },
  { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor(idx.shape, 'f32'), rng.tensor([2, 1], 'f32')], attrs: { axis }, error: 'DTypeError', message: new RegExp(`${op}: input 'indices' must have dtype i32, got f32`), desc: 'float indices' },
  { inputs: [rng.tensor([2, 3], 'f32'), idx, rng.tensor([2, 1], 'f32')], attrs: { axis: 2 }, error: 'AttrError', message: new RegExp(`${op}: axis must be an integer in \\[-2, 1\\]`), desc: 'axis out of range' },
];

const scatterAddAlongAxisInfo: OpInfo = {
  op: 'scatterAddAlongAxis',
  dtypes: ADDABLE,
  samples: (rng, dtype) => alongSamples(rng, dtype, true),
  reference: ([x, idx, upd], attrs) => [scatterAlongRef(x!, idx!, upd!, normAxis(attrs.axis as number, x!.shape.length)).out],
  magnitude: ([x, idx, upd], attrs) => [scatterAlongRef(x!, idx!, upd!, normAxis(attrs.axis as number, x!.shape.length)).mag],
  grad: true,
  errors: (rng) => [
    ...scatterErrorsCommon('scatterAddAlongAxis', rng, i32([2, 1], [0, 2]), 1),
    { inputs: [rng.tensor([2, 3], 'f32'), i32([2, 1], [0, 1]), rng.tensor([3, 1], 'f32')], attrs: { axis: 1 }, error: 'ShapeError', message: /scatterAddAlongAxis: 'updates' must have the shape of 'indices' \[2, 1\], got \[3, 1\]/, desc: 'updates shape differs' },
    { inputs: [rng.tensor([2, 3], 'f32'), i32([1, 2], [0, 1]), rng.tensor([1, 2], 'f32')], attrs: { axis: 0 }, error: 'ShapeError', message: /scatterAddAlongAxis: 'indices' must have the rank of x \[2, 3\] and its sizes on every axis but 0, got \[1, 2\]/, desc: 'indices shape differs' },
    disposedCase(rng, { axis: 0 }),
  ],
};

// ---------------------------------------------------------------------------------------------
// scatterAdd (index_add)

function scatterAddRef(x: HostTensor, axis: number, idx: HostTensor, upd: HostTensor): { out: HostTensor; mag: Float64Array } {
  const out = Float64Array.from(x.values);
  const mag = Float64Array.from(x.values, Math.abs);
  const add = addAs(x.dtype);
  // Update order: flat order, so for each destination the updates come in increasing j.
  for (let i = 0; i < upd.values.length; i++) {
    const c = unflatten(i, upd.shape);
    const t = wrapIndex(idx.values[c[axis]!]!, x.shape[axis]!);
    if (t < 0) continue;
    const o = flatIndex(c.map((v, d) => (d === axis ? t : v)), x.shape);
    out[o] = add(out[o]!, upd.values[i]!);
    mag[o] += Math.abs(upd.values[i]!);
  }
  return { out: { shape: x.shape, dtype: x.dtype, values: out }, mag };
}

const scatterAddInfo: OpInfo = {
  op: 'scatterAdd',
  dtypes: ADDABLE,
  samples: (rng, dtype) => {
    const cases: { x: number[]; m: number; axis: number; desc?: string }[] = [
      { x: [6], m: 9, axis: 0, desc: 'repeated and invalid indices' },
      { x: [5, 3], m: 7, axis: 0 },
      { x: [3, 4, 2], m: 5, axis: 1 },
      { x: [2, 1, 5], m: 3, axis: -1, desc: 'negative axis' },
      { x: [4, 3], m: 0, axis: 0, desc: 'no updates' },
      { x: [32, 16], m: 48, axis: 0, desc: 'larger (embedding-gradient-like)' },
    ];
    return cases.map(({ x: xs, m, axis, desc }) => {
      const ax = normAxis(axis, xs.length);
      const n = xs[ax]!;
      const inputs = [randomOf(rng, xs, dtype), indices(rng, [m], -n - 2, n + 2), randomOf(rng, xs.map((d, i) => (i === ax ? m : d)), dtype)];
      return { inputs, attrs: { axis }, ...(desc ? { desc } : {}), ...gradGuard(inputs) };
    });
  },
  reference: ([x, idx, upd], attrs) => [scatterAddRef(x!, normAxis(attrs.axis as number, x!.shape.length), idx!, upd!).out],
  magnitude: ([x, idx, upd], attrs) => [scatterAddRef(x!, normAxis(attrs.axis as number, x!.shape.length), idx!, upd!).mag],
  grad: true,
  errors: (rng) => [
    ...scatterErrorsCommon('scatterAdd', rng, i32([1], [0]), 1),
    { inputs: [rng.tensor([2, 3], 'f32'), i32([1, 2], [0, 1]), rng.tensor([2, 3], 'f32')], attrs: { axis: 0 }, error: 'ShapeError', message: /scatterAdd: 'indices' must have rank 1, got shape \[1, 2\]/, desc: 'indices not 1-D' },
    { inputs: [rng.tensor([2, 3], 'f32'), i32([2], [0, 1]), rng.tensor([1, 3], 'f32')], attrs: { axis: 0 }, error: 'ShapeError', message: /scatterAdd: 'updates' must have shape \[2, 3\] \(x \[2, 3\] with axis 0 replaced by the 2 indices\), got \[1, 3\]/, desc: 'updates shape differs' },
    disposedCase(rng, { axis: 0 }),
  ],
};

// ---------------------------------------------------------------------------------------------
// oneHot

const oneHotRef = (idx: HostTensor, depth: number, dtype: DType): HostTensor =>
  buildHost([...idx.shape, depth], dtype, (c) => (idx.values[flatIndex(c.slice(0, -1), idx.shape)] === c[c.length - 1] ? 1 : 0));

const oneHotInfo: OpInfo = {
  op: 'oneHot',
  // The record's dtype is the output dtype (attribute); the indices are always i32.
  dtypes: DTYPES,
  samples: (rng, dtype) => {
    const cases: { shape: number[]; depth: number; desc?: string }[] = [
      { shape: [7], depth: 5, desc: 'indices outside [0, depth) give zero rows' },
      { shape: [2, 3], depth: 4 },
      { shape: [], depth: 3, desc: 'scalar index' },
      { shape: [4], depth: 1, desc: 'depth 1' },
      { shape: [3], depth: 0, desc: 'depth 0' },
      { shape: [0], depth: 2, desc: 'no indices' },
      { shape: [37], depth: 64, desc: 'larger' },
    ];
    return cases.map(({ shape, depth, desc }) => ({ inputs: [indices(rng, shape, -2, depth + 2)], attrs: { depth, dtype }, ...(desc ? { desc } : {}) }));
  },
  reference: ([idx], attrs) => [oneHotRef(idx!, attrs.depth as number, attrs.dtype as DType)],
  // tfjs's oneHot needs depth >= 2 and indices of rank >= 1.
  tfjs: (tf, [idx], attrs) => (idx.rank === 0 || (attrs.depth as number) < 2 ? null : tf.oneHot(idx, attrs.depth, 1, 0, 'float32')),
  exact: true,
  errors: (rng) => [
    { inputs: [i32([2], [0, 1])], attrs: { depth: -1 }, error: 'AttrError', message: /oneHot: attribute 'depth' expected an integer >= 0, got -1/, desc: 'negative depth' },
    { inputs: [i32([2], [0, 1])], attrs: {}, error: 'AttrError', message: /oneHot: attribute 'depth' is required/, desc: 'missing depth' },
    { inputs: [i32([2], [0, 1])], attrs: { depth: 3, dtype: 'f64' }, error: 'AttrError', message: /oneHot: attribute 'dtype' expected a dtype/, desc: 'unknown dtype' },
    { inputs: [rng.tensor([2], 'f32')], attrs: { depth: 3 }, error: 'DTypeError', message: /oneHot: input 'indices' must have dtype i32, got f32/, desc: 'float indices' },
    { inputs: [i32([2], [0, 1])], attrs: { depth: 3 }, disposed: [0], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed input' },
  ],
};

// ---------------------------------------------------------------------------------------------
// embedding

const embeddingInfo: OpInfo = {
  op: 'embedding',
  dtypes: FLOAT_DTYPES,
  samples: (rng, dtype) => {
    const cases: { ids: number[]; v: number; d: number; desc?: string }[] = [
      { ids: [5], v: 6, d: 5, desc: 'negative ids wrap, invalid ids give zero rows' },
      { ids: [2, 3], v: 4, d: 3 },
      { ids: [], v: 3, d: 4, desc: 'scalar id' },
      { ids: [0], v: 3, d: 2, desc: 'no ids' },
      { ids: [3], v: 1, d: 1, desc: 'one row of one' },
      { ids: [4, 9], v: 33, d: 16, desc: 'larger' },
    ];
    return cases.map(({ ids, v, d, desc }) => {
      const inputs = [indices(rng, ids, -v - 2, v + 2), randomOf(rng, [v, d], dtype)];
      return { inputs, ...(desc ? { desc } : {}), ...gradGuard(inputs) };
    });
  },
  reference: ([ids, w]) => [gatherRef(w!, ids!, 0)],
  tfjs: (tf, [ids, w]) => tfGatherMasked(tf, w, ids, 0),
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [i32([2], [0, 1]), rng.tensor([3], 'f32')], error: 'ShapeError', message: /embedding: 'weight' must have rank 2 \[V, D\], got shape \[3\]/, desc: 'weight not 2-D' },
    { inputs: [i32([2], [0, 1]), rng.tensor([2, 2], 'i32')], error: 'DTypeError', message: /embedding: input 'weight' must have dtype f32\|f16\|bf16\|f8e4m3\|f8e5m2, got i32/, desc: 'integer weight' },
    { inputs: [rng.tensor([2], 'f32'), rng.tensor([2, 2], 'f32')], error: 'DTypeError', message: /embedding: input 'ids' must have dtype i32, got f32/, desc: 'float ids' },
    { inputs: [i32([2], [0, 1]), rng.tensor([2, 2], 'f32')], disposed: [1], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed weight' },
  ],
};

// ---------------------------------------------------------------------------------------------
// topk

/**
 * Selection sort over a row, scanning in index order and replacing the candidate only when
 * strictly better: ties go to the lower index. NaN ranks above every number.
 */
function topkRef(x: HostTensor, k: number, axis: number, largest: boolean): HostTensor[] {
  const n = x.shape[axis]!;
  const shape = x.shape.map((d, i) => (i === axis ? k : d));
  const vals = new Float64Array(sizeOf(shape));
  const idxs = new Float64Array(sizeOf(shape));
  const before = (a: number, b: number): boolean => {
    const na = Number.isNaN(a);
    const nb = Number.isNaN(b);
    if (na || nb) return largest ? na && !nb : nb && !na;
    return largest ? a > b : a < b;
  };
  const rowShape = x.shape.map((d, i) => (i === axis ? 1 : d));
  for (let r = 0; r < sizeOf(rowShape); r++) {
    const rc = unflatten(r, rowShape);
    const at = (j: number) => x.values[flatIndex(rc.map((v, d) => (d === axis ? j : v)), x.shape)]!;
    const taken = new Uint8Array(n);
    for (let s = 0; s < k; s++) {
      let best = -1;
      for (let j = 0; j < n; j++) if (!taken[j] && (best < 0 || before(at(j), at(best)))) best = j;
      taken[best] = 1;
      const o = flatIndex(rc.map((v, d) => (d === axis ? s : v)), shape);
      vals[o] = at(best);
      idxs[o] = best;
    }
  }
  return [
    { shape, dtype: x.dtype, values: vals },
    { shape, dtype: 'i32', values: idxs },
  ];
}

/** Distinct values (a shuffled ladder of step 0.25, exact in f32): no ties, so gradients exist. */
function ladder(rng: SampleRng, shape: readonly number[]): HostTensor {
  const n = sizeOf(shape);
  const vals = Array.from({ length: n }, (_, i) => (i - Math.floor(n / 2)) * 0.25);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    [vals[i], vals[j]] = [vals[j]!, vals[i]!];
  }
  return host(shape, 'f32', vals);
}

const topkInfo: OpInfo = {
  op: 'topk',
  dtypes: ORDERED,
  samples: (rng, dtype) => {
    const cases: { shape: number[]; k: number; axis?: number; largest?: boolean; desc?: string }[] = [
      { shape: [9], k: 4, desc: 'default: last axis, largest' },
      { shape: [5, 7], k: 3, axis: 1, largest: true },
      { shape: [5, 7], k: 2, axis: 0, largest: false, desc: 'smallest, leading axis' },
      { shape: [3, 6, 2], k: 6, axis: -2, desc: 'k = n, middle axis' },
      { shape: [3, 6, 2], k: 0, axis: 1, desc: 'k = 0' },
      { shape: [4, 1], k: 1, axis: 1, desc: 'one entry per row' },
      { shape: [7, 16], k: 4, axis: -1, desc: 'router-like: 7 tokens, 16 experts' },
      { shape: [3, 67], k: 5, axis: 1, desc: 'k much smaller than n' },
      { shape: [67, 2], k: 3, axis: 0, largest: false, desc: 'k much smaller than n, smallest, leading axis' },
    ];
    const out: SampleInput[] = cases.map(({ shape, k, axis, largest, desc }) => {
      // f32 gets distinct values (the gradient check needs no ties); the others' small integer
      // or low-precision values are full of ties, which must go to the lower index.
      const x = dtype === 'f32' ? ladder(rng, shape) : rng.tensor(shape, dtype);
      const attrs: Record<string, unknown> = { k };
      if (axis !== undefined) attrs.axis = axis;
      if (largest !== undefined) attrs.largest = largest;
      return { inputs: [x], attrs, ...(desc ? { desc } : {}) };
    });
    // Explicit ties (every value three times) in both directions.
    const tied = host([2, 9], 'f32', [3, 1, 3, 2, 1, 3, 2, 2, 1, 5, 5, 4, 4, 5, 4, 6, 6, 6]);
    const tiedIn = dtype === 'f32' ? tied : { ...tied, dtype };
    out.push({ inputs: [tiedIn], attrs: { k: 5 }, desc: 'ties go to the lower index', noGrad: true });
    out.push({ inputs: [tiedIn], attrs: { k: 7, largest: false }, desc: 'ties go to the lower index (smallest)', noGrad: true });
    if (FLOAT_DTYPES.includes(dtype)) {
      const specials = specialsTensor(dtype, [1, NaN, 5, NaN, -Infinity, Infinity, -0, 0, 2, 2, -3]);
      const n = specials.shape[0]!;
      out.push({ inputs: [specials], attrs: { k: n }, desc: 'NaN first (largest), -0 ties +0, infinities', noGrad: true });
      out.push({ inputs: [specials], attrs: { k: n, largest: false }, desc: 'NaN last (smallest)', noGrad: true });
    }
    return out;
  },
  reference: ([x], attrs) =>
    topkRef(x!, attrs.k as number, normAxis((attrs.axis as number | undefined) ?? -1, x!.shape.length), (attrs.largest as boolean | undefined) ?? true),
  tfjs: (tf, [x], attrs) => {
    // tfjs's topk is last-axis, largest-first and stable; its comparator is undefined for NaN
    // and infinities (inf - inf), so those samples are declined.
    if (!tf.all(tf.isFinite(x)).dataSync()[0]) return null;
    const axis = normAxis((attrs.axis as number | undefined) ?? -1, x.rank);
    const largest = (attrs.largest as boolean | undefined) ?? true;
    const perm = [...Array(x.rank).keys()].filter((d) => d !== axis).concat(axis);
    const inv = perm.map((_, i) => perm.indexOf(i));
    const moved = tf.transpose(x, perm);
    const r = tf.topk(largest ? moved : tf.neg(moved), attrs.k as number, true);
    const values = largest ? r.values : tf.neg(r.values);
    return [tf.transpose(values, inv), tf.transpose(r.indices, inv)];
  },
  exact: true,
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([1, 3], 'f32')], attrs: { k: 4 }, error: 'AttrError', message: /topk: k must be in \[0, 3\] \(axis 1 of \[1, 3\]\), got 4/, desc: 'k > n' },
    { inputs: [rng.tensor([1, 3], 'f32')], attrs: { k: -1 }, error: 'AttrError', message: /topk: k must be in \[0, 3\].*got -1/, desc: 'negative k' },
    { inputs: [rng.tensor([1, 3], 'f32')], attrs: { k: 2, axis: 0 }, error: 'AttrError', message: /topk: k must be in \[0, 1\] \(axis 0 of \[1, 3\]\), got 2/, desc: 'k > n on another axis' },
    { inputs: [rng.tensor([1, 3], 'f32')], attrs: { k: 1.5 }, error: 'AttrError', message: /topk: attribute 'k' expected an integer, got 1.5/, desc: 'fractional k' },
    { inputs: [rng.tensor([1, 3], 'f32')], attrs: { k: 1, axis: 2 }, error: 'AttrError', message: /topk: axis must be an integer in \[-2, 1\]/, desc: 'axis out of range' },
    { inputs: [rng.tensor([1, 3], 'f32')], attrs: { k: 1, largest: 'yes' }, error: 'AttrError', message: /topk: attribute 'largest' expected a boolean/, desc: 'largest not a boolean' },
    { inputs: [rng.tensor([3], 'bool')], attrs: { k: 1 }, error: 'DTypeError', message: /topk: input 'x' must have dtype .*got bool/, desc: 'bool input' },
    { inputs: [rng.tensor([], 'f32')], attrs: { k: 1 }, error: 'ShapeError', message: /topk: 'x' must have rank >= 1/, desc: 'scalar' },
    disposedCase(rng, { k: 1 }),
  ],
};

// ---------------------------------------------------------------------------------------------
// cumsum

function cumsumRef(x: HostTensor, axis: number, exclusive: boolean, reverse: boolean): { out: HostTensor; mag: Float64Array } {
  const n = x.shape[axis]!;
  const out = new Float64Array(x.values.length);
  const mag = new Float64Array(x.values.length);
  const add = addAs(x.dtype);
  for (let i = 0; i < out.length; i++) {
    const c = unflatten(i, x.shape);
    const p = c[axis]!;
    let s = 0;
    let m = 0;
    // Terms in the order the running sum meets them.
    for (let step = 0; step < n; step++) {
      const j = reverse ? n - 1 - step : step;
      const inSum = reverse ? (exclusive ? j > p : j >= p) : exclusive ? j < p : j <= p;
      if (!inSum) continue;
      const v = x.values[flatIndex(c.map((q, d) => (d === axis ? j : q)), x.shape)]!;
      s = add(s, v);
      m += Math.abs(v);
    }
    out[i] = s;
    mag[i] = m;
  }
  return { out: { shape: x.shape, dtype: x.dtype, values: out }, mag };
}

const cumsumArgs = (x: HostTensor, attrs: Record<string, unknown>) =>
  [normAxis(attrs.axis as number, x.shape.length), attrs.exclusive === true, attrs.reverse === true] as const;

const cumsumInfo: OpInfo = {
  op: 'cumsum',
  dtypes: ADDABLE,
  samples: (rng, dtype) => {
    const cases: { shape: number[]; axis: number; exclusive?: boolean; reverse?: boolean; desc?: string }[] = [
      { shape: [9], axis: 0 },
      { shape: [4, 7], axis: 1, exclusive: true, desc: 'exclusive' },
      { shape: [4, 7], axis: -2, reverse: true, desc: 'reverse, negative axis' },
      { shape: [3, 5, 2], axis: 1, exclusive: true, reverse: true, desc: 'exclusive and reverse' },
      { shape: [2, 1, 3], axis: 1, desc: 'size-1 axis' },
      { shape: [2, 0], axis: 1, desc: 'empty' },
      { shape: [3, 300], axis: 1, desc: 'long axis' },
    ];
    return cases.map(({ shape, axis, exclusive, reverse, desc }) => {
      const inputs = [randomOf(rng, shape, dtype)];
      const attrs: Record<string, unknown> = { axis };
      if (exclusive !== undefined) attrs.exclusive = exclusive;
      if (reverse !== undefined) attrs.reverse = reverse;
      return { inputs, attrs, ...(desc ? { desc } : {}), ...gradGuard(inputs) };
    });
  },
  reference: ([x], attrs) => [cumsumRef(x!, ...cumsumArgs(x!, attrs)).out],
  magnitude: ([x], attrs) => [cumsumRef(x!, ...cumsumArgs(x!, attrs)).mag],
  // tfjs mishandles negative axes in cumsum: normalized first.
  tfjs: (tf, [x], attrs) => tf.cumsum(x, normAxis(attrs.axis as number, x.rank), attrs.exclusive === true, attrs.reverse === true),
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([2], 'u8')], attrs: { axis: 0 }, error: 'DTypeError', message: /cumsum: input 'x' must have dtype f32\|f16\|bf16\|f8e4m3\|f8e5m2\|i32, got u8/, desc: 'u8 input' },
    { inputs: [rng.tensor([2], 'f32')], attrs: { axis: 1 }, error: 'AttrError', message: /cumsum: axis must be an integer in \[-1, 0\] for a rank-1 tensor, got 1/, desc: 'axis out of range' },
    { inputs: [rng.tensor([], 'f32')], attrs: { axis: 0 }, error: 'ShapeError', message: /cumsum: 'x' must have rank >= 1/, desc: 'scalar' },
    { inputs: [rng.tensor([2], 'f32')], attrs: {}, error: 'AttrError', message: /cumsum: attribute 'axis' is required/, desc: 'missing axis' },
    { inputs: [rng.tensor([2], 'f32')], attrs: { axis: 0, exclusive: 1 }, error: 'AttrError', message: /cumsum: attribute 'exclusive' expected a boolean, got 1/, desc: 'exclusive not a boolean' },
    disposedCase(rng, { axis: 0 }),
  ],
};

export const indexingOpInfos: OpInfo[] = [
  gatherInfo,
  takeAlongAxisInfo,
  scatterAddInfo,
  scatterAddAlongAxisInfo,
  oneHotInfo,
  embeddingInfo,
  topkInfo,
  cumsumInfo,
];
