/**
 * OpInfo records for the nn ops (core ops/nn.ts): softmax, logSoftmax, rmsNorm, crossEntropy.
 * All compute in f32 or wider whatever the storage dtype (MODEL_SPEC §1, §7); the references
 * below compute in float64 from the inputs' exact values.
 */
import { FLOAT_DTYPES, sizeOf, type DType } from '@ring-linear/core';
import type { ErrorInput, HostTensor, OpInfo, SampleInput, SampleRng } from './types.js';
import { host } from '../host.js';

/** [outer, len, inner] around an axis: element (o, k, i) is at (o*len + k)*inner + i. */
function around(shape: readonly number[], axis: number): { outer: number; len: number; inner: number } {
  return { outer: sizeOf(shape.slice(0, axis)), len: shape[axis]!, inner: sizeOf(shape.slice(axis + 1)) };
}

const axisOf = (attrs: Record<string, unknown>, rank: number): number => {
  const a = (attrs.axis as number | undefined) ?? -1;
  return a < 0 ? a + rank : a;
};

/** Whether a dtype has infinities (E4M3FN has none). */
const hasInf = (d: DType) => d !== 'f8e4m3';

// ---------------------------------------------------------------------------------------------
// softmax, logSoftmax

/** Per slice along the axis: max, log of the sum of exp(x - max), in float64. */
function softmaxParts(x: HostTensor, axis: number, each: (idx: number, v: number, m: number, logSum: number) => void): void {
  const { outer, len, inner } = around(x.shape, axis);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (k: number) => (o * len + k) * inner + i;
      let m = -Infinity;
      for (let k = 0; k < len; k++) m = Math.max(m, x.values[at(k)]!);
      let s = 0;
      for (let k = 0; k < len; k++) s += Math.exp(x.values[at(k)]! - m);
      const ls = Math.log(s);
      for (let k = 0; k < len; k++) each(at(k), x.values[at(k)]!, m, ls);
    }
  }
}

const SOFTMAX_CASES: readonly { shape: number[]; axis?: number; desc?: string; large?: boolean }[] = [
  { shape: [7], desc: 'default axis' },
  { shape: [3, 5], axis: -1 },
  { shape: [3, 5], axis: 0, desc: 'leading axis' },
  { shape: [2, 1, 4], axis: 1, desc: 'size-1 axis' },
  { shape: [2, 3, 5], axis: -2, desc: 'middle axis, negative' },
  { shape: [4, 1], axis: 0, desc: 'size-1 trailing dim' },
  { shape: [1, 1], desc: 'one element' },
  { shape: [2, 0, 3], axis: 2, desc: 'empty' },
  { shape: [17, 129], axis: -1, desc: 'larger', large: true },
];

function softmaxSamples(rng: SampleRng, dtype: DType): SampleInput[] {
  const out: SampleInput[] = SOFTMAX_CASES.map((c) => ({
    inputs: [rng.tensor(c.shape, dtype, { scale: 2 })],
    attrs: c.axis === undefined ? {} : { axis: c.axis },
    ...(c.desc ? { desc: c.desc } : {}),
    ...(c.large ? { noGrad: true } : {}),
  }));
  // exp(100) overflows f32: only a max-subtracting implementation gets these right.
  out.push({ inputs: [rng.tensor([3, 6], dtype, { lo: 95, hi: 105 })], attrs: { axis: -1 }, desc: 'large values (stability)' });
  out.push({ inputs: [rng.tensor([4, 5], dtype, { lo: -105, hi: -95 })], attrs: { axis: 0 }, desc: 'large negative values (stability)' });
  if (hasInf(dtype)) {
    // Masked entries (attention masks): -inf gives probability 0 (log-probability -inf).
    const x = rng.tensor([3, 5], dtype, { scale: 2 });
    const vals = Float64Array.from(x.values);
    vals[1] = -Infinity;
    vals[7] = -Infinity;
    vals[8] = -Infinity;
    out.push({ inputs: [host([3, 5], dtype, vals)], attrs: { axis: -1 }, desc: 'masked (-inf) entries', noGrad: true });
  }
  return out;
}

/** tfjs only normalizes the last axis: move the axis there and back. */
function tfAlongAxis(tf: any, x: any, axis: number, f: (t: any) => any): any {
  const rank = x.shape.length;
  if (axis === rank - 1) return f(x);
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[axis] = rank - 1;
  perm[rank - 1] = axis;
  return tf.transpose(f(tf.transpose(x, perm)), perm);
}

function softmaxErrors(op: string): (rng: SampleRng) => ErrorInput[] {
  return (rng) => [
    { inputs: [rng.tensor([2, 3], 'i32')], error: 'DTypeError', message: new RegExp(`${op}: input 'x' must have dtype f32\\|.*got i32`), desc: 'i32 input' },
    { inputs: [rng.tensor([2, 3], 'f32')], attrs: { axis: 2 }, error: 'AttrError', message: new RegExp(`${op}: axis must be an integer in \\[-2, 1\\] for a rank-2 tensor, got 2`), desc: 'axis out of range' },
    { inputs: [rng.tensor([2, 3], 'f32')], attrs: { axis: 0.5 }, error: 'AttrError', message: new RegExp(`${op}: attribute 'axis' expected an integer, got 0.5`), desc: 'fractional axis' },
    { inputs: [rng.tensor([], 'f32')], error: 'ShapeError', message: new RegExp(`${op}: 'x' must have rank >= 1, got a scalar`), desc: 'scalar input' },
    { inputs: [rng.tensor([3], 'f32')], attrs: { axes: [0] }, error: 'AttrError', message: new RegExp(`${op}: unknown attribute 'axes'`), desc: 'unknown attribute' },
    { inputs: [rng.tensor([3], 'f32')], disposed: [0], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed input' },
  ];
}

const softmaxInfo: OpInfo = {
  op: 'softmax',
  dtypes: FLOAT_DTYPES,
  samples: softmaxSamples,
  reference: ([x], attrs) => {
    const y = new Float64Array(x!.values.length);
    softmaxParts(x!, axisOf(attrs, x!.shape.length), (idx, v, m, ls) => (y[idx] = Math.exp(v - m - ls)));
    return [{ shape: x!.shape, dtype: x!.dtype, values: y }];
  },
  tfjs: (tf, [x], attrs) => tfAlongAxis(tf, x, axisOf(attrs, x.shape.length), (t) => tf.softmax(t)),
  grad: true,
  errors: softmaxErrors('softmax'),
};

const logSoftmaxInfo: OpInfo = {
  op: 'logSoftmax',
  dtypes: FLOAT_DTYPES,
  samples: softmaxSamples,
  reference: ([x], attrs) => {
    const y = new Float64Array(x!.values.length);
    softmaxParts(x!, axisOf(attrs, x!.shape.length), (idx, v, m, ls) => (y[idx] = v - m - ls));
    return [{ shape: x!.shape, dtype: x!.dtype, values: y }];
  },
  // y = x - lse: where the two nearly cancel, f32 rounding of both parts sets the error.
  magnitude: ([x], attrs) => {
    const mag = new Float64Array(x!.values.length);
    softmaxParts(x!, axisOf(attrs, x!.shape.length), (idx, v, m, ls) => (mag[idx] = Math.abs(v) + Math.abs(m + ls)));
    return [mag];
  },
  tfjs: (tf, [x], attrs) => tfAlongAxis(tf, x, axisOf(attrs, x.shape.length), (t) => tf.logSoftmax(t)),
  grad: true,
  errors: softmaxErrors('logSoftmax'),
};

// ---------------------------------------------------------------------------------------------
// rmsNorm

const RMS_CASES: readonly { shape: number[]; eps?: number; desc?: string; large?: boolean }[] = [
  { shape: [5], desc: 'one row, default eps' },
  { shape: [3, 7], eps: 1e-6 },
  { shape: [2, 1, 9], eps: 1e-2, desc: 'size-1 dim' },
  { shape: [1, 1], desc: 'one element' },
  { shape: [4, 2, 3], eps: 0.5, desc: 'large eps' },
  { shape: [0, 6], desc: 'no rows' },
  { shape: [16, 128], desc: 'larger', large: true },
];

const rmsNormInfo: OpInfo = {
  op: 'rmsNorm',
  dtypes: FLOAT_DTYPES,
  samples: (rng, dtype) => {
    const out: SampleInput[] = RMS_CASES.map((c) => ({
      inputs: [rng.tensor(c.shape, dtype, { scale: 1.5 }), rng.tensor([c.shape[c.shape.length - 1]!], dtype)],
      attrs: c.eps === undefined ? {} : { eps: c.eps },
      ...(c.desc ? { desc: c.desc } : {}),
      ...(c.large ? { noGrad: true } : {}),
    }));
    // The weight may have another float dtype (compute is f32 either way).
    const other: DType = dtype === 'f32' ? 'bf16' : 'f32';
    out.push({ inputs: [rng.tensor([3, 8], dtype), rng.tensor([8], other)], attrs: { eps: 1e-5 }, desc: `weight in ${other}` });
    // Sums of squares beyond f16 / fp8 range (every value is exact in every float dtype): the
    // f32 computation must not overflow.
    out.push({
      inputs: [host([2, 4], dtype, [224, -192, 112, 1, 2, 3, -160, 0.5]), rng.tensor([4], dtype)],
      desc: 'sum of squares overflows low-precision storage',
    });
    return out;
  },
  reference: ([x, w], attrs) => {
    const eps = Math.fround((attrs.eps as number | undefined) ?? 1e-6);
    const d = x!.shape[x!.shape.length - 1]!;
    const y = new Float64Array(x!.values.length);
    for (let r = 0; r < y.length / d; r++) {
      let ss = 0;
      for (let j = 0; j < d; j++) ss += x!.values[r * d + j]! ** 2;
      const inv = 1 / Math.sqrt(ss / d + eps);
      for (let j = 0; j < d; j++) y[r * d + j] = w!.values[j]! * x!.values[r * d + j]! * inv;
    }
    return [{ shape: x!.shape, dtype: x!.dtype, values: y }];
  },
  tfjs: (tf, [x, w], attrs) => {
    const eps = Math.fround((attrs.eps as number | undefined) ?? 1e-6);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), w);
  },
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor([2], 'f32')], error: 'ShapeError', message: /rmsNorm: 'weight' must have shape \[3\] \(the last dim of x \[2, 3\]\), got \[2\]/, desc: 'weight length' },
    { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor([1, 3], 'f32')], error: 'ShapeError', message: /rmsNorm: 'weight' must have shape \[3\].*got \[1, 3\]/, desc: 'weight rank' },
    { inputs: [rng.tensor([], 'f32'), rng.tensor([1], 'f32')], error: 'ShapeError', message: /rmsNorm: 'x' must have rank >= 1, got a scalar/, desc: 'scalar x' },
    { inputs: [rng.tensor([2, 0], 'f32'), rng.tensor([0], 'f32')], error: 'ShapeError', message: /rmsNorm: the last dim of 'x' must be >= 1, got shape \[2, 0\]/, desc: 'empty last dim' },
    { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor([3], 'f32')], attrs: { eps: -1e-6 }, error: 'AttrError', message: /rmsNorm: attribute 'eps' expected a finite number >= 0, got -0.000001/, desc: 'negative eps' },
    { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor([3], 'f32')], attrs: { eps: NaN }, error: 'AttrError', message: /'eps' expected a finite number >= 0, got NaN/, desc: 'NaN eps' },
    { inputs: [rng.tensor([2, 3], 'i32'), rng.tensor([3], 'f32')], error: 'DTypeError', message: /rmsNorm: input 'x' must have dtype .*got i32/, desc: 'i32 x' },
    { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor([3], 'u8')], error: 'DTypeError', message: /rmsNorm: input 'weight' must have dtype .*got u8/, desc: 'u8 weight' },
    { inputs: [rng.tensor([2, 3], 'f32')], error: 'AttrError', message: /rmsNorm: expected 2 input tensor\(s\) \(x, weight\), got 1/, desc: 'missing weight' },
    { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor([3], 'f32')], disposed: [1], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed weight' },
  ],
};

// ---------------------------------------------------------------------------------------------
// crossEntropy

const CE_CASES: readonly { shape: number[]; skips: boolean; desc?: string; large?: boolean }[] = [
  { shape: [6, 11], skips: true, desc: 'ignored and out-of-range targets' },
  { shape: [2, 5, 7], skips: true, desc: 'batch x time' },
  { shape: [1, 1], skips: false, desc: 'one class' },
  { shape: [9], skips: false, desc: 'one token (scalar target)' },
  { shape: [3, 1, 4], skips: true, desc: 'size-1 dim' },
  { shape: [0, 5], skips: false, desc: 'no tokens' },
  { shape: [4, 1000], skips: true, desc: 'larger vocabulary', large: true },
  { shape: [64, 33], skips: true, desc: 'more tokens', large: true },
];

/** Targets in [0, V), with some ignored (-100) and some out of range (skipped too) when asked. */
function ceTargets(rng: SampleRng, lead: readonly number[], vocab: number, skips: boolean): HostTensor {
  const n = sizeOf(lead);
  const vals = Array.from({ length: n }, (_, i) => {
    if (skips && i % 5 === 1) return -100;
    if (skips && i % 7 === 3) return i % 2 ? vocab + rng.int(0, 3) : -1 - rng.int(0, 3);
    return rng.int(0, vocab);
  });
  return host(lead, 'i32', vals);
}

/** Per token: loss (0 when skipped), whether counted, and |lse| + |logit[target]| (error scale). */
function ceTokens(logits: HostTensor, targets: HostTensor, ignoreIndex: number) {
  const vocab = logits.shape[logits.shape.length - 1]!;
  const n = targets.values.length;
  const loss = new Float64Array(n);
  const mag = new Float64Array(n);
  let count = 0;
  for (let t = 0; t < n; t++) {
    const tgt = targets.values[t]!;
    if (!(tgt >= 0 && tgt < vocab && tgt !== ignoreIndex)) continue;
    count++;
    let m = -Infinity;
    for (let k = 0; k < vocab; k++) m = Math.max(m, logits.values[t * vocab + k]!);
    let s = 0;
    for (let k = 0; k < vocab; k++) s += Math.exp(logits.values[t * vocab + k]! - m);
    const lse = m + Math.log(s);
    const picked = logits.values[t * vocab + tgt]!;
    loss[t] = lse - picked;
    mag[t] = Math.abs(lse) + Math.abs(picked);
  }
  return { loss, mag, count };
}

function ceReduce(v: Float64Array, count: number, reduction: string): Float64Array {
  if (reduction === 'none') return v;
  const total = v.reduce((a, b) => a + b, 0);
  return Float64Array.of(reduction === 'sum' ? total : count > 0 ? total / count : 0);
}

const ceAttrs = (attrs: Record<string, unknown>) => ({
  ignoreIndex: (attrs.ignoreIndex as number | undefined) ?? -100,
  reduction: (attrs.reduction as string | undefined) ?? 'mean',
});

const crossEntropyInfo: OpInfo = {
  op: 'crossEntropy',
  dtypes: FLOAT_DTYPES,
  samples: (rng, dtype) => {
    const out: SampleInput[] = [];
    for (const c of CE_CASES) {
      const vocab = c.shape[c.shape.length - 1]!;
      const lead = c.shape.slice(0, -1);
      for (const reduction of ['mean', 'sum', 'none'] as const) {
        out.push({
          inputs: [rng.tensor(c.shape, dtype, { scale: 2 }), ceTargets(rng, lead, vocab, c.skips)],
          attrs: reduction === 'mean' ? {} : { reduction },
          desc: `${c.desc ?? `[${c.shape}]`}, ${reduction}`,
          ...(c.large ? { noGrad: true } : {}),
        });
      }
    }
    // ignoreIndex inside the vocabulary; all tokens skipped ('mean' of nothing is 0).
    out.push({ inputs: [rng.tensor([5, 4], dtype), host([5], 'i32', [0, 2, 0, 3, 1])], attrs: { ignoreIndex: 0 }, desc: 'ignoreIndex 0' });
    out.push({ inputs: [rng.tensor([3, 4], dtype), host([3], 'i32', [-100, 9, -2])], desc: 'every token skipped, mean = 0' });
    out.push({ inputs: [rng.tensor([3, 6], dtype, { lo: 95, hi: 105 }), host([3], 'i32', [5, 0, 2])], attrs: { reduction: 'none' }, desc: 'large logits (stability)' });
    return out;
  },
  reference: ([logits, targets], attrs) => {
    const { ignoreIndex, reduction } = ceAttrs(attrs);
    const { loss, count } = ceTokens(logits!, targets!, ignoreIndex);
    return [{ shape: reduction === 'none' ? targets!.shape : [], dtype: 'f32', values: ceReduce(loss, count, reduction) }];
  },
  magnitude: ([logits, targets], attrs) => {
    const { ignoreIndex, reduction } = ceAttrs(attrs);
    const { mag, count } = ceTokens(logits!, targets!, ignoreIndex);
    return [ceReduce(mag, count, reduction)];
  },
  tfjs: (tf, [logits, targets], attrs) => {
    const { ignoreIndex, reduction } = ceAttrs(attrs);
    const vocab = logits.shape[logits.shape.length - 1];
    if (vocab < 2) return null; // tf.oneHot needs a depth >= 2
    const lead = targets.shape;
    const l2 = tf.reshape(logits, [-1, vocab]);
    const t1 = tf.reshape(targets, [-1]);
    const counted = tf.logicalAnd(tf.logicalAnd(tf.greaterEqual(t1, 0), tf.less(t1, vocab)), tf.notEqual(t1, ignoreIndex));
    const picked = tf.sum(tf.mul(l2, tf.oneHot(tf.where(counted, t1, tf.zerosLike(t1)), vocab)), -1);
    const loss = tf.where(counted, tf.sub(tf.logSumExp(l2, -1), picked), tf.zerosLike(picked));
    if (reduction === 'none') return tf.reshape(loss, lead);
    const total = tf.sum(loss);
    return reduction === 'sum' ? total : tf.div(total, tf.maximum(tf.sum(tf.cast(counted, 'float32')), 1));
  },
  grad: { inputs: [0] },
  errors: (rng) => [
    { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor([2], 'f32')], error: 'DTypeError', message: /crossEntropy: input 'targets' must have dtype i32, got f32/, desc: 'float targets' },
    { inputs: [rng.tensor([2, 3], 'i32'), host([2], 'i32', [0, 1])], error: 'DTypeError', message: /crossEntropy: input 'logits' must have dtype .*got i32/, desc: 'integer logits' },
    { inputs: [rng.tensor([2, 3], 'f32'), host([3], 'i32', [0, 1, 2])], error: 'ShapeError', message: /'targets' must have the shape of logits without its last dim, \[2\], got \[3\]/, desc: 'targets shape' },
    { inputs: [rng.tensor([2, 3], 'f32'), host([2, 1], 'i32', [0, 1])], error: 'ShapeError', message: /'targets' must have the shape of logits without its last dim, \[2\], got \[2, 1\]/, desc: 'targets rank' },
    { inputs: [rng.tensor([2, 0], 'f32'), host([2], 'i32', [0, 0])], error: 'ShapeError', message: /crossEntropy: 'logits' must have a class dimension >= 1, got shape \[2, 0\]/, desc: 'no classes' },
    { inputs: [rng.tensor([], 'f32'), host([], 'i32', [0])], error: 'ShapeError', message: /crossEntropy: 'logits' must have rank >= 1/, desc: 'scalar logits' },
    { inputs: [rng.tensor([2, 3], 'f32'), host([2], 'i32', [0, 1])], attrs: { reduction: 'avg' }, error: 'AttrError', message: /attribute 'reduction' expected one of 'mean', 'sum', 'none', got 'avg'/, desc: 'unknown reduction' },
    { inputs: [rng.tensor([2, 3], 'f32'), host([2], 'i32', [0, 1])], attrs: { ignoreIndex: 0.5 }, error: 'AttrError', message: /attribute 'ignoreIndex' expected an integer, got 0.5/, desc: 'fractional ignoreIndex' },
    { inputs: [rng.tensor([2, 3], 'f32'), host([2], 'i32', [0, 1])], disposed: [1], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed targets' },
  ],
};

export const nnOpInfos: OpInfo[] = [softmaxInfo, logSoftmaxInfo, rmsNormInfo, crossEntropyInfo];
