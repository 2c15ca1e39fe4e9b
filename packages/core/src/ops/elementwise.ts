/**
 * Elementwise ops: unary math, binary arithmetic with NumPy broadcasting, comparisons, logical
 * ops, where, cast, clip. Low-precision float inputs are computed in f32 and rounded once to the
 * output dtype. Binary ops need equal dtypes (cast explicitly); a JS number operand takes the
 * tensor operand's dtype.
 */
import { defineOp, type GradFn, type OpDef, type TensorMeta } from '../op.js';
import { DTYPES, FLOAT_DTYPES, isFloatDType, type DType } from '../dtype/dtype.js';
import { runOp1 } from '../engine.js';
import { broadcastShapes, broadcastShapesN } from '../shape.js';
import { AttrError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { asTensor, assertSameDType, reduceToShape } from './util.js';

const FLOATS = FLOAT_DTYPES;
const SIGNED = [...FLOAT_DTYPES, 'i32'] as const satisfies readonly DType[];
const NUMERIC = [...FLOAT_DTYPES, 'i32', 'u8'] as const satisfies readonly DType[];

// ---------------------------------------------------------------------------------------------
// Unary

/** Names of the unary elementwise ops (each is its own op with its own kernel). */
export const UNARY_OPS = [
  'neg', 'abs', 'sign', 'square', 'relu', 'exp', 'log', 'sqrt', 'rsqrt', 'reciprocal',
  'sigmoid', 'silu', 'tanh', 'sin', 'cos', 'floor', 'ceil', 'round', 'logicalNot',
] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

const u = (name: string) => (x: Tensor) => runOp1(name, [x]);
const nul: GradFn<{}> = () => [null];

const UNARY_SPEC: Record<UnaryOp, { dtypes: readonly DType[]; grad?: GradFn<{}>; doc: string }> = {
  neg: { dtypes: SIGNED, doc: '-x', grad: ({ dys }) => [neg(dys[0]!)] },
  abs: { dtypes: SIGNED, doc: '|x|', grad: ({ inputs, dys }) => [mul(dys[0]!, sign(inputs[0]!))] },
  sign: { dtypes: SIGNED, doc: 'sign(x) in {-1, 0, 1}', grad: nul },
  square: { dtypes: SIGNED, doc: 'x^2', grad: ({ inputs, dys }) => [mul(dys[0]!, mul(inputs[0]!, 2))] },
  relu: { dtypes: SIGNED, doc: 'max(x, 0)', grad: ({ inputs, dys }) => [where(greater(inputs[0]!, 0), dys[0]!, 0)] },
  exp: { dtypes: FLOATS, doc: 'e^x', grad: ({ outputs, dys }) => [mul(dys[0]!, outputs[0]!)] },
  log: { dtypes: FLOATS, doc: 'natural log', grad: ({ inputs, dys }) => [div(dys[0]!, inputs[0]!)] },
  sqrt: { dtypes: FLOATS, doc: 'sqrt(x)', grad: ({ outputs, dys }) => [div(mul(dys[0]!, 0.5), outputs[0]!)] },
  rsqrt: {
    dtypes: FLOATS,
    doc: '1/sqrt(x)',
    // d/dx x^-1/2 = -1/2 x^-3/2 = -1/2 y^3
    grad: ({ outputs, dys }) => [mul(dys[0]!, mul(pow(outputs[0]!, 3), -0.5))],
  },
  reciprocal: { dtypes: FLOATS, doc: '1/x', grad: ({ outputs, dys }) => [neg(mul(dys[0]!, square(outputs[0]!)))] },
  sigmoid: {
    dtypes: FLOATS,
    doc: '1/(1+e^-x)',
    grad: ({ outputs, dys }) => [mul(dys[0]!, mul(outputs[0]!, sub(1, outputs[0]!)))],
  },
  silu: {
    dtypes: FLOATS,
    doc: 'x * sigmoid(x)',
    // d/dx x s(x) = s + x s (1 - s)
    grad: ({ inputs, dys }) => {
      const x = inputs[0]!;
      const s = sigmoid(x);
      return [mul(dys[0]!, add(s, mul(mul(x, s), sub(1, s))))];
    },
  },
  tanh: { dtypes: FLOATS, doc: 'tanh(x)', grad: ({ outputs, dys }) => [mul(dys[0]!, sub(1, square(outputs[0]!)))] },
  sin: { dtypes: FLOATS, doc: 'sin(x)', grad: ({ inputs, dys }) => [mul(dys[0]!, cos(inputs[0]!))] },
  cos: { dtypes: FLOATS, doc: 'cos(x)', grad: ({ inputs, dys }) => [neg(mul(dys[0]!, sin(inputs[0]!)))] },
  floor: { dtypes: FLOATS, doc: 'floor(x)', grad: nul },
  ceil: { dtypes: FLOATS, doc: 'ceil(x)', grad: nul },
  round: { dtypes: FLOATS, doc: 'round half to even', grad: nul },
  logicalNot: { dtypes: ['bool'], doc: '!x' },
};

for (const name of UNARY_OPS) {
  const spec = UNARY_SPEC[name];
  defineOp<{}>({
    name,
    doc: spec.doc,
    inputs: [{ name: 'x', dtypes: spec.dtypes }],
    infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
    ...(spec.grad ? { grad: spec.grad } : { nonDifferentiable: true }),
  });
}

export const neg = u('neg');
export const abs = u('abs');
export const sign = u('sign');
export const square = u('square');
export const relu = u('relu');
export const exp = u('exp');
export const log = u('log');
export const sqrt = u('sqrt');
export const rsqrt = u('rsqrt');
export const reciprocal = u('reciprocal');
export const sigmoid = u('sigmoid');
export const silu = u('silu');
export const tanh = u('tanh');
export const sin = u('sin');
export const cos = u('cos');
export const floor = u('floor');
export const ceil = u('ceil');
export const round = u('round');
export const logicalNot = u('logicalNot');

// ---------------------------------------------------------------------------------------------
// Binary (broadcasting)

export const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'] as const;
export const COMPARISON_OPS = ['equal', 'notEqual', 'less', 'lessEqual', 'greater', 'greaterEqual'] as const;
export const LOGICAL_OPS = ['logicalAnd', 'logicalOr', 'logicalXor'] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

type Operand = Tensor | number;

const binaryInfer = (op: string, outDType?: DType) => (metas: readonly TensorMeta[]): TensorMeta[] => {
  const dt = assertSameDType(op, metas, ['a', 'b']);
  return [{ shape: broadcastShapes(op, metas[0]!.shape, metas[1]!.shape), dtype: outDType ?? dt }];
};

const BINARY_SPEC: Record<BinaryOp, { dtypes: readonly DType[]; doc: string; grad: GradFn<{}> }> = {
  add: {
    dtypes: NUMERIC,
    doc: 'a + b',
    grad: ({ inputs: [a, b], dys: [dy] }) => [reduceToShape(dy!, a!.shape), reduceToShape(dy!, b!.shape)],
  },
  sub: {
    dtypes: NUMERIC,
    doc: 'a - b',
    grad: ({ inputs: [a, b], dys: [dy] }) => [reduceToShape(dy!, a!.shape), reduceToShape(neg(dy!), b!.shape)],
  },
  mul: {
    dtypes: NUMERIC,
    doc: 'a * b',
    grad: ({ inputs: [a, b], dys: [dy] }) => [reduceToShape(mul(dy!, b!), a!.shape), reduceToShape(mul(dy!, a!), b!.shape)],
  },
  div: {
    dtypes: NUMERIC,
    doc: 'a / b (integer dtypes: truncated toward zero; division by zero gives 0)',
    grad: ({ inputs: [a, b], outputs: [y], dys: [dy] }) => [
      reduceToShape(div(dy!, b!), a!.shape),
      reduceToShape(neg(div(mul(dy!, y!), b!)), b!.shape),
    ],
  },
  pow: {
    dtypes: FLOATS,
    doc: 'a ^ b',
    grad: ({ inputs: [a, b], outputs: [y], dys: [dy] }) => [
      // d/da a^b = b a^(b-1); d/db a^b = a^b ln a (taken as 0 where a <= 0, as the limit for a = 0)
      reduceToShape(mul(dy!, mul(b!, pow(a!, sub(b!, 1)))), a!.shape),
      reduceToShape(mul(dy!, mul(y!, where(greater(a!, 0), log(where(greater(a!, 0), a!, 1)), 0))), b!.shape),
    ],
  },
  maximum: {
    dtypes: NUMERIC,
    doc: 'max(a, b) (the gradient goes to a on ties)',
    grad: ({ inputs: [a, b], dys: [dy] }) => {
      const m = greaterEqual(a!, b!);
      return [reduceToShape(where(m, dy!, 0), a!.shape), reduceToShape(where(m, 0, dy!), b!.shape)];
    },
  },
  minimum: {
    dtypes: NUMERIC,
    doc: 'min(a, b) (the gradient goes to a on ties)',
    grad: ({ inputs: [a, b], dys: [dy] }) => {
      const m = lessEqual(a!, b!);
      return [reduceToShape(where(m, dy!, 0), a!.shape), reduceToShape(where(m, 0, dy!), b!.shape)];
    },
  },
};

for (const name of BINARY_OPS) {
  const spec = BINARY_SPEC[name];
  defineOp<{}>({
    name,
    doc: spec.doc,
    inputs: [{ name: 'a', dtypes: spec.dtypes }, { name: 'b', dtypes: spec.dtypes }],
    infer: binaryInfer(name),
    grad: spec.grad,
  });
}
for (const name of COMPARISON_OPS) {
  defineOp<{}>({
    name,
    doc: `elementwise ${name}, bool result`,
    inputs: [{ name: 'a', dtypes: DTYPES }, { name: 'b', dtypes: DTYPES }],
    infer: binaryInfer(name, 'bool'),
    nonDifferentiable: true,
  });
}
for (const name of LOGICAL_OPS) {
  defineOp<{}>({
    name,
    doc: `elementwise ${name} of bools`,
    inputs: [{ name: 'a', dtypes: ['bool'] }, { name: 'b', dtypes: ['bool'] }],
    infer: binaryInfer(name, 'bool'),
    nonDifferentiable: true,
  });
}

const binary = (name: string) => (a: Operand, b: Operand) => {
  const ta = asTensor(a, b);
  const tb = asTensor(b, ta);
  return runOp1(name, [ta, tb]);
};

export const add = binary('add');
export const sub = binary('sub');
export const mul = binary('mul');
export const div = binary('div');
export const pow = binary('pow');
export const maximum = binary('maximum');
export const minimum = binary('minimum');
export const equal = binary('equal');
export const notEqual = binary('notEqual');
export const less = binary('less');
export const lessEqual = binary('lessEqual');
export const greater = binary('greater');
export const greaterEqual = binary('greaterEqual');
export const logicalAnd = (a: Tensor | boolean, b: Tensor | boolean) => runOp1('logicalAnd', [asTensor(a, b), asTensor(b, a)]);
export const logicalOr = (a: Tensor | boolean, b: Tensor | boolean) => runOp1('logicalOr', [asTensor(a, b), asTensor(b, a)]);
export const logicalXor = (a: Tensor | boolean, b: Tensor | boolean) => runOp1('logicalXor', [asTensor(a, b), asTensor(b, a)]);

// ---------------------------------------------------------------------------------------------
// where, cast, clip

defineOp<{}>({
  name: 'where',
  doc: 'cond ? a : b, broadcasting all three',
  inputs: [{ name: 'cond', dtypes: ['bool'] }, { name: 'a' }, { name: 'b' }],
  infer: (metas) => {
    const dt = assertSameDType('where', metas.slice(1), ['a', 'b']);
    return [{ shape: broadcastShapesN('where', metas.map((m) => m.shape)), dtype: dt }];
  },
  grad: ({ inputs: [c, a, b], dys: [dy] }) => [
    null,
    reduceToShape(where(c!, dy!, 0), a!.shape),
    reduceToShape(where(c!, 0, dy!), b!.shape),
  ],
});

/** cond ? a : b; a number operand takes the other operand's dtype. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const ta = asTensor(a, b);
  const tb = asTensor(b, ta);
  return runOp1('where', [cond, ta, tb]);
}

interface CastAttrs extends Record<string, unknown> {
  dtype: DType;
  saturate: boolean;
}
defineOp<CastAttrs>({
  name: 'cast',
  doc: 'dtype conversion: floats round to nearest even; float->int truncates toward zero (NaN -> 0) and wraps for u8; ' +
    'to bool: x != 0. fp8 targets: saturate=false follows PyTorch (E4M3 overflow -> NaN, E5M2 -> inf), saturate=true clamps to +-max',
  inputs: [{ name: 'x' }],
  attrs: { dtype: { kind: 'dtype' }, saturate: { kind: 'bool', default: false } },
  infer: ([x], a) => [{ shape: x!.shape, dtype: a.dtype }],
  grad: ({ inputs: [x], dys: [dy] }) => [isFloatDType(x!.dtype) ? cast(dy!, x!.dtype) : null],
});

export function cast(x: Tensor, dtype: DType, options: { saturate?: boolean } = {}): Tensor {
  if (x.dtype === dtype) return runOp1('copy', [x]);
  return runOp1('cast', [x], { dtype, saturate: options.saturate ?? false });
}

defineOp<{}>({
  name: 'copy',
  doc: 'a new tensor with the same values (a fresh storage)',
  inputs: [{ name: 'x' }],
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  grad: ({ dys: [dy] }) => [dy!],
});

/** A copy with its own storage (also cuts nothing from autograd; see stopGradient). */
export const copy = (x: Tensor) => runOp1('copy', [x]);

defineOp<{}>({
  name: 'stopGradient',
  doc: 'identity whose gradient is zero',
  inputs: [{ name: 'x' }],
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  view: true,
  nonDifferentiable: true,
});
export const stopGradient = (x: Tensor) => runOp1('stopGradient', [x]);

interface ClipAttrs extends Record<string, unknown> {
  min: number;
  max: number;
}
defineOp<ClipAttrs>({
  name: 'clip',
  doc: 'min(max(x, min), max); NaN stays NaN',
  inputs: [{ name: 'x', dtypes: NUMERIC }],
  attrs: { min: { kind: 'number' }, max: { kind: 'number' } },
  normalize: (_m, a) => {
    if (!(a.min <= a.max)) throw new AttrError(`clip: expected min <= max, got min=${a.min} max=${a.max}`);
    return a;
  },
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  grad: ({ inputs: [x], dys: [dy], attrs }) => [
    where(logicalAnd(greaterEqual(x!, attrs.min), lessEqual(x!, attrs.max)), dy!, 0),
  ],
});
export const clip = (x: Tensor, min: number, max: number) => runOp1('clip', [x], { min, max });

export type { OpDef };
