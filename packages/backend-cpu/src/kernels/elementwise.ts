/** Elementwise kernels: unary, binary with broadcasting, comparisons, logical, where, cast, clip, copy. */
import { broadcastIndexMap, shapesEqual, type TensorInfo } from '@ring-linear/core';
import { commit, isFloat, outValues, raw, register, storeNumbers, values } from '../util.js';

/** Round half to even (banker's rounding), as the `round` op defines. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 ? 2 * Math.round(x / 2) : r;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export const UNARY_FNS: Record<string, (x: number) => number> = {
  neg: (x) => -x,
  abs: Math.abs,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : x),
  square: (x) => x * x,
  relu: (x) => (x > 0 ? x : x !== x ? NaN : 0),
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  reciprocal: (x) => 1 / x,
  sigmoid,
  silu: (x) => x * sigmoid(x),
  tanh: Math.tanh,
  sin: Math.sin,
  cos: Math.cos,
  floor: Math.floor,
  ceil: Math.ceil,
  round: roundHalfEven,
  logicalNot: (x) => (x ? 0 : 1),
};

for (const [op, fn] of Object.entries(UNARY_FNS)) {
  register(op, ({ inputs: [x], outputs: [y] }) => {
    const xv = values(x!);
    const yv = outValues(y!);
    const n = y!.size;
    for (let i = 0; i < n; i++) yv[i] = fn(xv[i]!);
    commit(y!, yv);
  });
}

/** i32 multiply/divide need integer semantics that plain doubles do not give. */
function intBinary(op: string): ((a: number, b: number) => number) | null {
  switch (op) {
    case 'mul': return Math.imul;
    case 'div': return (a, b) => (b === 0 ? 0 : Math.trunc(a / b));
    default: return null;
  }
}

export const BINARY_FNS: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: Math.pow,
  maximum: (a, b) => (a !== a || b !== b ? NaN : a > b ? a : b),
  minimum: (a, b) => (a !== a || b !== b ? NaN : a < b ? a : b),
  equal: (a, b) => +(a === b),
  notEqual: (a, b) => +(a !== b),
  less: (a, b) => +(a < b),
  lessEqual: (a, b) => +(a <= b),
  greater: (a, b) => +(a > b),
  greaterEqual: (a, b) => +(a >= b),
  logicalAnd: (a, b) => +(a !== 0 && b !== 0),
  logicalOr: (a, b) => +(a !== 0 || b !== 0),
  logicalXor: (a, b) => +((a !== 0) !== (b !== 0)),
};

/** Runs f over broadcast inputs into an output array. */
export function broadcastLoop(
  a: TensorInfo, av: ArrayLike<number>, b: TensorInfo, bv: ArrayLike<number>, out: TensorInfo, ov: { [i: number]: number },
  f: (x: number, y: number) => number,
): void {
  const n = out.size;
  if (shapesEqual(a.shape, out.shape) && shapesEqual(b.shape, out.shape)) {
    for (let i = 0; i < n; i++) ov[i] = f(av[i]!, bv[i]!);
  } else if (shapesEqual(a.shape, out.shape) && b.size === 1) {
    const s = bv[0]!;
    for (let i = 0; i < n; i++) ov[i] = f(av[i]!, s);
  } else if (shapesEqual(b.shape, out.shape) && a.size === 1) {
    const s = av[0]!;
    for (let i = 0; i < n; i++) ov[i] = f(s, bv[i]!);
  } else {
    const ma = broadcastIndexMap(a.shape, out.shape);
    const mb = broadcastIndexMap(b.shape, out.shape);
    for (let i = 0; i < n; i++) ov[i] = f(av[ma[i]!]!, bv[mb[i]!]!);
  }
}

for (const [op, fn] of Object.entries(BINARY_FNS)) {
  register(op, ({ inputs: [a, b], outputs: [y] }) => {
    const f = (a!.dtype === 'i32' && intBinary(op)) || (a!.dtype === 'u8' && op === 'div' ? intBinary(op)! : fn);
    const yv = outValues(y!);
    broadcastLoop(a!, values(a!), b!, values(b!), y!, yv, f);
    commit(y!, yv);
  });
}

register('where', ({ inputs: [c, a, b], outputs: [y] }) => {
  const n = y!.size;
  const cv = values(c!);
  const mc = broadcastIndexMap(c!.shape, y!.shape);
  const ma = broadcastIndexMap(a!.shape, y!.shape);
  const mb = broadcastIndexMap(b!.shape, y!.shape);
  // Copy raw codes when no conversion is needed (exact for every dtype).
  const yr = raw(y!);
  const ar = raw(a!);
  const br = raw(b!);
  for (let i = 0; i < n; i++) yr[i] = cv[mc[i]!] ? ar[ma[i]!]! : br[mb[i]!]!;
});

register('cast', ({ inputs: [x], outputs: [y], attrs }) => {
  storeNumbers(y!, values(x!), (attrs as { saturate: boolean }).saturate);
});

register('copy', ({ inputs: [x], outputs: [y] }) => {
  raw(y!).set(raw(x!) as never);
});

register('clip', ({ inputs: [x], outputs: [y], attrs }) => {
  const { min, max } = attrs as { min: number; max: number };
  const xv = values(x!);
  const yv = outValues(y!);
  const lo = isFloat(x!.dtype) ? min : Math.ceil(min);
  const hi = isFloat(x!.dtype) ? max : Math.floor(max);
  for (let i = 0; i < y!.size; i++) {
    const v = xv[i]!;
    yv[i] = v < lo ? lo : v > hi ? hi : v;
  }
  commit(y!, yv);
});
