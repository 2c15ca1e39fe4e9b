/**
 * OpInfo records for the elementwise ops (core ops/elementwise.ts): unary math, binary
 * arithmetic with broadcasting, comparisons, logical ops. where/cast/copy/clip/stopGradient are
 * in basic.ts. References are float64 formulas of the op's documented semantics.
 */
import { DTYPES, FLOAT_DTYPES, type DType } from '@ring-linear/core';
import type { ErrorInput, OpInfo, SampleInput, SampleRng } from './types.js';
import { mapBroadcast, mapUnary } from '../host.js';
import { BINARY_SHAPES, UNARY_SHAPES, fillFrom, representableValues } from '../samples.js';

const FLOATS = FLOAT_DTYPES;
const SIGNED: readonly DType[] = [...FLOAT_DTYPES, 'i32'];
const NUMERIC: readonly DType[] = [...FLOAT_DTYPES, 'i32', 'u8'];

type TensorOpts = Parameters<SampleRng['tensor']>[2];

/** Round half to even (the `round` op). */
function roundHalfEven(x: number): number {
  if (Math.abs(x % 1) === 0.5) return 2 * Math.round(x / 2);
  return Math.round(x);
}
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

// ---------------------------------------------------------------------------------------------
// Unary

interface UnarySpec {
  readonly dtypes: readonly DType[];
  readonly f: (x: number) => number;
  /** Input values (default: normal * 2). */
  readonly domain?: (dtype: DType) => TensorOpts;
  /** Extra samples (ties, exact zeros, integers). */
  readonly extra?: (rng: SampleRng, dtype: DType) => SampleInput[];
  readonly tfjs?: (tf: any, x: any) => any;
  /**
   * false: no finite-difference check. For step functions (floor, ceil, round) a random f32 input
   * within the step of a jump would make the central difference huge, so they are left out.
   */
  readonly grad?: boolean;
}

/** Zeros and small integers: the kinks of abs/relu/sign (no gradient check there). */
const kinks = (rng: SampleRng, dtype: DType): SampleInput[] => [
  { inputs: [fillFrom(rng, [2, 5], dtype, dtype === 'u8' ? [0, 1, 2, 3, 0] : [0, 1, -1, 2, -2])], desc: 'zeros and integers', noGrad: true },
];

const halfTies = (rng: SampleRng, dtype: DType): SampleInput[] => [
  {
    inputs: [fillFrom(rng, [3, 4], dtype, representableValues(dtype, [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -3, 0, 2, 1.25, -0.75]))],
    desc: 'halves (ties) and integers',
    noGrad: true,
  },
];

const UNARY: Record<string, UnarySpec> = {
  neg: { dtypes: SIGNED, f: (x) => -x, tfjs: (tf, x) => tf.neg(x), extra: kinks },
  abs: { dtypes: SIGNED, f: Math.abs, tfjs: (tf, x) => tf.abs(x), extra: kinks },
  sign: { dtypes: SIGNED, f: (x) => (x > 0 ? 1 : x < 0 ? -1 : x), tfjs: (tf, x) => tf.sign(x), extra: kinks },
  square: { dtypes: SIGNED, f: (x) => x * x, tfjs: (tf, x) => tf.square(x), extra: kinks },
  relu: { dtypes: SIGNED, f: (x) => (x > 0 ? x : x !== x ? NaN : 0), tfjs: (tf, x) => tf.relu(x), extra: kinks },
  exp: { dtypes: FLOATS, f: Math.exp, domain: () => ({ scale: 1.5 }), tfjs: (tf, x) => tf.exp(x) },
  log: { dtypes: FLOATS, f: Math.log, domain: () => ({ positive: true }), tfjs: (tf, x) => tf.log(x) },
  sqrt: { dtypes: FLOATS, f: Math.sqrt, domain: () => ({ positive: true }), tfjs: (tf, x) => tf.sqrt(x) },
  rsqrt: { dtypes: FLOATS, f: (x) => 1 / Math.sqrt(x), domain: () => ({ positive: true }), tfjs: (tf, x) => tf.rsqrt(x) },
  reciprocal: { dtypes: FLOATS, f: (x) => 1 / x, domain: () => ({ minAbs: 0.25 }), tfjs: (tf, x) => tf.reciprocal(x) },
  sigmoid: { dtypes: FLOATS, f: sigmoid, domain: () => ({ scale: 3 }), tfjs: (tf, x) => tf.sigmoid(x) },
  silu: { dtypes: FLOATS, f: (x) => x * sigmoid(x), domain: () => ({ scale: 3 }), tfjs: (tf, x) => tf.mul(x, tf.sigmoid(x)) },
  tanh: { dtypes: FLOATS, f: Math.tanh, domain: () => ({ scale: 2 }), tfjs: (tf, x) => tf.tanh(x) },
  sin: { dtypes: FLOATS, f: Math.sin, domain: () => ({ lo: -4, hi: 4 }), tfjs: (tf, x) => tf.sin(x) },
  cos: { dtypes: FLOATS, f: Math.cos, domain: () => ({ lo: -4, hi: 4 }), tfjs: (tf, x) => tf.cos(x) },
  floor: { dtypes: FLOATS, f: Math.floor, domain: () => ({ scale: 3 }), tfjs: (tf, x) => tf.floor(x), extra: halfTies, grad: false },
  ceil: { dtypes: FLOATS, f: Math.ceil, domain: () => ({ scale: 3 }), tfjs: (tf, x) => tf.ceil(x), extra: halfTies, grad: false },
  round: { dtypes: FLOATS, f: roundHalfEven, domain: () => ({ scale: 3 }), tfjs: (tf, x) => tf.round(x), extra: halfTies, grad: false },
  logicalNot: { dtypes: ['bool'], f: (x) => (x ? 0 : 1), grad: false },
};

/** Integer inputs keep squares and negations far from overflow. */
function intOpts(dtype: DType): TensorOpts {
  return dtype === 'u8' ? { lo: 0, hi: 16 } : { lo: -40, hi: 40 };
}

function unaryErrors(op: string, dtypes: readonly DType[]): (rng: SampleRng) => ErrorInput[] {
  const bad: DType = dtypes.includes('bool') ? 'f32' : dtypes.includes('i32') ? 'bool' : 'i32';
  const ok = dtypes[0]!;
  return (rng) => [
    { inputs: [rng.tensor([2, 3], bad)], error: 'DTypeError', message: new RegExp(`${op}: input 'x' must have dtype .*got ${bad}`), desc: `${bad} input` },
    { inputs: [rng.tensor([2, 3], ok)], disposed: [0], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed input' },
    { inputs: [rng.tensor([3], ok)], attrs: { axis: 1 }, error: 'AttrError', message: new RegExp(`${op}: unknown attribute 'axis'`), desc: 'unknown attribute' },
    { inputs: [rng.tensor([3], ok), rng.tensor([3], ok)], error: 'AttrError', message: /expected 1 input tensor\(s\)/, desc: 'two inputs' },
  ];
}

function unaryInfo(op: string, spec: UnarySpec): OpInfo {
  return {
    op,
    dtypes: spec.dtypes,
    samples: (rng, dtype) => {
      const opts: TensorOpts = dtype === 'bool' ? {} : dtype === 'i32' || dtype === 'u8' ? intOpts(dtype) : (spec.domain?.(dtype) ?? { scale: 2 });
      const out: SampleInput[] = UNARY_SHAPES.map((shape) => ({
        inputs: [rng.tensor(shape, dtype, opts)],
        // Finite differences on the larger shape would only repeat the small ones, slowly.
        ...(shape.length === 2 && shape[1]! > 50 ? { noGrad: true, desc: 'larger' } : {}),
      }));
      if (spec.extra && dtype !== 'bool') out.push(...spec.extra(rng, dtype));
      return out;
    },
    reference: ([x]) => [mapUnary(x!, spec.f)],
    ...(spec.tfjs ? { tfjs: (tf: any, [x]: any[]) => spec.tfjs!(tf, x) } : {}),
    grad: spec.grad ?? true,
    errors: unaryErrors(op, spec.dtypes),
  };
}

// ---------------------------------------------------------------------------------------------
// Binary arithmetic

interface BinarySpec {
  readonly dtypes: readonly DType[];
  readonly f: (a: number, b: number, dtype: DType) => number;
  /** Values of a and b for a dtype. */
  readonly domains?: (dtype: DType) => [TensorOpts, TensorOpts];
  readonly extra?: (rng: SampleRng, dtype: DType) => SampleInput[];
  readonly tfjs: (tf: any, a: any, b: any) => any;
}

const isIntDT = (d: DType) => d === 'i32' || d === 'u8';

const BINARY: Record<string, BinarySpec> = {
  add: {
    dtypes: NUMERIC,
    f: (a, b) => a + b,
    domains: (d) => (d === 'u8' ? [{ lo: 0, hi: 100 }, { lo: 0, hi: 100 }] : d === 'i32' ? [{ lo: -1000, hi: 1000 }, { lo: -1000, hi: 1000 }] : [{}, {}]),
    tfjs: (tf, a, b) => tf.add(a, b),
  },
  sub: {
    dtypes: NUMERIC,
    f: (a, b) => a - b,
    // u8: a >= b everywhere, so no sample depends on wrap-around.
    domains: (d) => (d === 'u8' ? [{ lo: 10, hi: 30 }, { lo: 0, hi: 10 }] : d === 'i32' ? [{ lo: -1000, hi: 1000 }, { lo: -1000, hi: 1000 }] : [{}, {}]),
    tfjs: (tf, a, b) => tf.sub(a, b),
  },
  mul: {
    dtypes: NUMERIC,
    f: (a, b) => a * b,
    domains: (d) => (d === 'u8' ? [{ lo: 0, hi: 16 }, { lo: 0, hi: 16 }] : d === 'i32' ? [{ lo: -300, hi: 300 }, { lo: -300, hi: 300 }] : [{}, {}]),
    tfjs: (tf, a, b) => tf.mul(a, b),
  },
  div: {
    dtypes: NUMERIC,
    // Integer division truncates toward zero; division by zero gives 0 (the op's doc).
    f: (a, b, d) => (isIntDT(d) ? (b === 0 ? 0 : Math.trunc(a / b)) : a / b),
    domains: (d) =>
      d === 'u8' ? [{ lo: 0, hi: 200 }, { lo: 1, hi: 12 }] : d === 'i32' ? [{ lo: -500, hi: 500 }, { lo: 1, hi: 12 }] : [{}, { minAbs: 0.5 }],
    extra: (rng, d) =>
      isIntDT(d)
        ? [
            {
              inputs: [rng.tensor([3, 4], d, d === 'u8' ? { lo: 0, hi: 50 } : { lo: -50, hi: 50 }), fillFrom(rng, [4], d, d === 'u8' ? [0, 3, 7, 1] : [0, -3, 7, -1])],
              desc: 'integer division: truncation toward zero, x / 0 = 0',
            },
          ]
        : [],
    tfjs: (tf, a, b) => tf.div(a, b),
  },
  pow: {
    dtypes: FLOATS,
    f: Math.pow,
    domains: () => [{ positive: true }, { lo: -2, hi: 2 }],
    extra: (rng, d) => [
      { inputs: [rng.tensor([2, 5], d, { positive: true }), fillFrom(rng, [5], d, [0, 1, 2, 3, -1])], desc: 'integer exponents' },
    ],
    tfjs: (tf, a, b) => tf.pow(a, b),
  },
  maximum: {
    dtypes: NUMERIC,
    f: (a, b) => (a !== a || b !== b ? NaN : Math.max(a, b)),
    extra: (rng, d) => [
      { inputs: [rng.tensor([4, 5], d, { int: true, lo: 0, hi: 4 }), rng.tensor([5], d, { int: true, lo: 0, hi: 4 })], desc: 'ties', noGrad: true },
    ],
    tfjs: (tf, a, b) => tf.maximum(a, b),
  },
  minimum: {
    dtypes: NUMERIC,
    f: (a, b) => (a !== a || b !== b ? NaN : Math.min(a, b)),
    extra: (rng, d) => [
      { inputs: [rng.tensor([4, 5], d, { int: true, lo: 0, hi: 4 }), rng.tensor([5], d, { int: true, lo: 0, hi: 4 })], desc: 'ties', noGrad: true },
    ],
    tfjs: (tf, a, b) => tf.minimum(a, b),
  },
};

function binarySamples(rng: SampleRng, dtype: DType, optsA: TensorOpts, optsB: TensorOpts): SampleInput[] {
  return BINARY_SHAPES.map(({ a, b, desc }) => ({
    inputs: [rng.tensor(a, dtype, optsA), rng.tensor(b, dtype, optsB)],
    desc,
    ...(desc.startsWith('larger') ? { noGrad: true } : {}),
  }));
}

function binaryErrors(op: string, dtypes: readonly DType[]): (rng: SampleRng) => ErrorInput[] {
  const dt = dtypes[0]!;
  const other: DType = dtypes.includes('i32') ? (dt === 'f32' ? 'i32' : 'f32') : dt === 'f32' ? 'f16' : 'f32';
  const errs = (rng: SampleRng): ErrorInput[] => [
    {
      inputs: [rng.tensor([2, 3], dt), rng.tensor([4], dt)],
      error: 'ShapeError',
      message: new RegExp(`${op}: shapes \\[2, 3\\] and \\[4\\] do not broadcast`),
      desc: 'shape mismatch',
    },
    {
      inputs: [rng.tensor([3], dt), rng.tensor([3], other)],
      error: 'DTypeError',
      message: new RegExp(`${op}: 'a' and 'b' must have the same dtype, got ${dt} and ${other}`),
      desc: 'dtype mismatch',
    },
    { inputs: [rng.tensor([3], dt), rng.tensor([3], dt)], disposed: [1], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed input' },
    { inputs: [rng.tensor([3], dt), rng.tensor([3], dt)], attrs: { alpha: 2 }, error: 'AttrError', message: new RegExp(`${op}: unknown attribute 'alpha'`), desc: 'unknown attribute' },
    { inputs: [rng.tensor([3], dt)], error: 'AttrError', message: /expected 2 input tensor\(s\) \(a, b\), got 1/, desc: 'one input' },
  ];
  if (!dtypes.includes('bool')) {
    return (rng) => [
      ...errs(rng),
      { inputs: [rng.tensor([3], 'bool'), rng.tensor([3], 'bool')], error: 'DTypeError', message: new RegExp(`${op}: input 'a' must have dtype`), desc: 'bool inputs' },
    ];
  }
  return errs;
}

function binaryInfo(op: string, spec: BinarySpec): OpInfo {
  return {
    op,
    dtypes: spec.dtypes,
    samples: (rng, dtype) => {
      const [oa, ob] = spec.domains?.(dtype) ?? [isIntDT(dtype) ? intOpts(dtype) : {}, isIntDT(dtype) ? intOpts(dtype) : {}];
      return [...binarySamples(rng, dtype, oa, ob), ...(spec.extra?.(rng, dtype) ?? [])];
    },
    reference: ([a, b]) => [mapBroadcast([a!, b!], (x, y) => spec.f(x, y, a!.dtype), a!.dtype)],
    tfjs: (tf, [a, b]) => spec.tfjs(tf, a, b),
    grad: true,
    errors: binaryErrors(op, spec.dtypes),
  };
}

// ---------------------------------------------------------------------------------------------
// Comparisons and logical ops (bool results, exact)

const COMPARE: Record<string, { f: (a: number, b: number) => boolean; tfjs: (tf: any, a: any, b: any) => any }> = {
  equal: { f: (a, b) => a === b, tfjs: (tf, a, b) => tf.equal(a, b) },
  notEqual: { f: (a, b) => a !== b, tfjs: (tf, a, b) => tf.notEqual(a, b) },
  less: { f: (a, b) => a < b, tfjs: (tf, a, b) => tf.less(a, b) },
  lessEqual: { f: (a, b) => a <= b, tfjs: (tf, a, b) => tf.lessEqual(a, b) },
  greater: { f: (a, b) => a > b, tfjs: (tf, a, b) => tf.greater(a, b) },
  greaterEqual: { f: (a, b) => a >= b, tfjs: (tf, a, b) => tf.greaterEqual(a, b) },
};

/** Comparison inputs: half the samples draw from a few integers so that ties (a == b) are common. */
function comparisonSamples(rng: SampleRng, dtype: DType): SampleInput[] {
  const tieOpts: TensorOpts = dtype === 'bool' ? {} : { int: true, lo: dtype === 'u8' ? 0 : -2, hi: 3 };
  const randOpts: TensorOpts = dtype === 'bool' ? {} : isIntDT(dtype) ? intOpts(dtype) : {};
  return BINARY_SHAPES.map(({ a, b, desc }, i) => {
    const opts = i % 2 === 0 ? tieOpts : randOpts;
    return { inputs: [rng.tensor(a, dtype, opts), rng.tensor(b, dtype, opts)], desc: `${desc}${i % 2 === 0 ? ', many ties' : ''}` };
  });
}

function comparisonInfo(op: string): OpInfo {
  const spec = COMPARE[op]!;
  return {
    op,
    dtypes: DTYPES,
    samples: comparisonSamples,
    reference: ([a, b]) => [mapBroadcast([a!, b!], (x, y) => (spec.f(x, y) ? 1 : 0), 'bool')],
    tfjs: (tf, [a, b]) => spec.tfjs(tf, a, b),
    exact: true,
    errors: (rng) => [
      { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor([3, 2], 'f32')], error: 'ShapeError', message: new RegExp(`${op}: shapes \\[2, 3\\] and \\[3, 2\\] do not broadcast`), desc: 'shape mismatch' },
      { inputs: [rng.tensor([3], 'f32'), rng.tensor([3], 'bf16')], error: 'DTypeError', message: new RegExp(`${op}: 'a' and 'b' must have the same dtype, got f32 and bf16`), desc: 'dtype mismatch' },
      { inputs: [rng.tensor([3], 'i32'), rng.tensor([3], 'i32')], disposed: [0], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed input' },
    ],
  };
}

const LOGICAL: Record<string, (a: boolean, b: boolean) => boolean> = {
  logicalAnd: (a, b) => a && b,
  logicalOr: (a, b) => a || b,
  logicalXor: (a, b) => a !== b,
};

function logicalInfo(op: string): OpInfo {
  const f = LOGICAL[op]!;
  return {
    op,
    dtypes: ['bool'],
    samples: (rng) => BINARY_SHAPES.map(({ a, b, desc }) => ({ inputs: [rng.tensor(a, 'bool'), rng.tensor(b, 'bool')], desc })),
    reference: ([a, b]) => [mapBroadcast([a!, b!], (x, y) => (f(x !== 0, y !== 0) ? 1 : 0), 'bool')],
    // No tfjs oracle: it runs for f32 cases only. Bool results are compared exactly.
    exact: true,
    errors: (rng) => [
      { inputs: [rng.tensor([3], 'f32'), rng.tensor([3], 'f32')], error: 'DTypeError', message: new RegExp(`${op}: input 'a' must have dtype bool, got f32`), desc: 'f32 inputs' },
      { inputs: [rng.tensor([2, 3], 'bool'), rng.tensor([2], 'bool')], error: 'ShapeError', message: /do not broadcast/, desc: 'shape mismatch' },
      { inputs: [rng.tensor([3], 'bool'), rng.tensor([3], 'bool')], disposed: [0], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed input' },
    ],
  };
}

export const elementwiseOpInfos: OpInfo[] = [
  ...Object.entries(UNARY).map(([op, spec]) => unaryInfo(op, spec)),
  ...Object.entries(BINARY).map(([op, spec]) => binaryInfo(op, spec)),
  ...Object.keys(COMPARE).map(comparisonInfo),
  ...Object.keys(LOGICAL).map(logicalInfo),
];
