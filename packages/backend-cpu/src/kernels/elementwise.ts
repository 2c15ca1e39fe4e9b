/** Elementwise kernels: unary, binary with broadcasting, comparisons, logical, where, cast, clip, copy. */
import type { TensorInfo } from '@ring-linear/core';
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

/**
 * y = op(x) over f32 arrays, one loop per op (monomorphic, see F32_BINARY); each formula is the
 * one UNARY_FNS gives. Returns false for ops without a loop here.
 */
function f32Unary(op: string, x: Float32Array, y: Float32Array, n: number): boolean {
  switch (op) {
    case 'neg':
      for (let i = 0; i < n; i++) y[i] = -x[i]!;
      return true;
    case 'abs':
      for (let i = 0; i < n; i++) y[i] = Math.abs(x[i]!);
      return true;
    case 'square':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        y[i] = v * v;
      }
      return true;
    case 'relu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        y[i] = v > 0 ? v : v !== v ? NaN : 0;
      }
      return true;
    case 'exp':
      for (let i = 0; i < n; i++) y[i] = Math.exp(x[i]!);
      return true;
    case 'log':
      for (let i = 0; i < n; i++) y[i] = Math.log(x[i]!);
      return true;
    case 'sqrt':
      for (let i = 0; i < n; i++) y[i] = Math.sqrt(x[i]!);
      return true;
    case 'rsqrt':
      for (let i = 0; i < n; i++) y[i] = 1 / Math.sqrt(x[i]!);
      return true;
    case 'reciprocal':
      for (let i = 0; i < n; i++) y[i] = 1 / x[i]!;
      return true;
    case 'sigmoid':
      for (let i = 0; i < n; i++) y[i] = 1 / (1 + Math.exp(-x[i]!));
      return true;
    case 'silu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        y[i] = v * (1 / (1 + Math.exp(-v)));
      }
      return true;
    case 'tanh':
      for (let i = 0; i < n; i++) y[i] = Math.tanh(x[i]!);
      return true;
    default:
      return false;
  }
}

for (const [op, fn] of Object.entries(UNARY_FNS)) {
  register(op, ({ inputs: [x], outputs: [y] }) => {
    const xv = values(x!);
    const yv = outValues(y!);
    const n = y!.size;
    if (!(xv instanceof Float32Array && yv instanceof Float32Array && f32Unary(op, xv, yv, n))) {
      for (let i = 0; i < n; i++) yv[i] = fn(xv[i]!);
    }
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

// ---------------------------------------------------------------------------------------------
// Broadcasting without index maps

/**
 * A strided walk over a broadcast output: `counts` are the extents of the output's dims after
 * dropping size-1 dims and merging neighbours that every operand walks contiguously (so [M, N] op
 * [M, N] is one dim of M*N, [M, N] op [N] two dims with the second operand's outer stride 0);
 * `strides[k][d]` is operand k's element stride along merged dim d (0 where it broadcasts). The
 * output is contiguous. Elements are visited in row-major output order, as an index map would.
 */
export interface BroadcastPlan {
  counts: number[];
  strides: number[][];
}

export function broadcastPlan(shapes: readonly (readonly number[])[], out: readonly number[]): BroadcastPlan {
  const rank = out.length;
  const strides = shapes.map((shape) => {
    const s = new Array<number>(rank).fill(0);
    let acc = 1;
    for (let i = shape.length - 1; i >= 0; i--) {
      const d = rank - shape.length + i;
      s[d] = shape[i] === 1 ? 0 : acc;
      acc *= shape[i]!;
    }
    return s;
  });
  const counts: number[] = [];
  const merged: number[][] = shapes.map(() => []);
  for (let d = 0; d < rank; d++) {
    const n = out[d]!;
    if (n === 1) continue;
    const last = counts.length - 1;
    // Merge into the previous dim when every operand steps through both as through one.
    if (last >= 0 && strides.every((s, k) => merged[k]![last] === s[d]! * n)) {
      counts[last]! *= n;
      strides.forEach((s, k) => (merged[k]![last] = s[d]!));
    } else {
      counts.push(n);
      strides.forEach((s, k) => merged[k]!.push(s[d]!));
    }
  }
  return { counts, strides: merged };
}

/**
 * Calls run(offsets, n) for each innermost run of a plan: `offsets[k]` is operand k's first
 * element of the run (the output's is `outOffset`); the run's strides are the plan's last ones.
 */
export function forEachRun(plan: BroadcastPlan, run: (offsets: number[], outOffset: number, n: number) => void): void {
  const { counts, strides } = plan;
  const r = counts.length;
  const k = strides.length;
  const offs = new Array<number>(k).fill(0);
  if (r === 0) {
    run(offs, 0, 1);
    return;
  }
  const inner = counts[r - 1]!;
  if (inner === 0) return;
  const outer = counts.slice(0, r - 1);
  if (outer.some((c) => c === 0)) return;
  const idx = new Array<number>(r - 1).fill(0);
  let o = 0;
  for (;;) {
    run(offs, o, inner);
    o += inner;
    let d = r - 2;
    for (; d >= 0; d--) {
      idx[d]!++;
      for (let j = 0; j < k; j++) offs[j]! += strides[j]![d]!;
      if (idx[d]! < outer[d]!) break;
      for (let j = 0; j < k; j++) offs[j]! -= strides[j]![d]! * outer[d]!;
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

/** Runs f over broadcast inputs into an output array (any element types; f called per element). */
export function broadcastLoop(
  a: TensorInfo, av: ArrayLike<number>, b: TensorInfo, bv: ArrayLike<number>, out: TensorInfo, ov: { [i: number]: number },
  f: (x: number, y: number) => number,
): void {
  const plan = broadcastPlan([a.shape, b.shape], out.shape);
  const last = plan.counts.length - 1;
  const sa = last >= 0 ? plan.strides[0]![last]! : 0;
  const sb = last >= 0 ? plan.strides[1]![last]! : 0;
  forEachRun(plan, ([ao, bo], oo, n) => {
    let ia = ao!;
    let ib = bo!;
    for (let i = oo; i < oo + n; i++) {
      ov[i] = f(av[ia]!, bv[ib]!);
      ia += sa;
      ib += sb;
    }
  });
}

/**
 * The f32 arithmetic ops with a loop of their own: one loop per op keeps each loop's feedback
 * monomorphic (an op passed as a function is a megamorphic call per element, ~10x slower). Each
 * formula is the one BINARY_FNS gives (the same bits).
 */
const F32_BINARY = new Set(['add', 'sub', 'mul', 'div', 'maximum', 'minimum']);

/** o[oo + i] = op(a[ia + i*sa], b[ib + i*sb]) for i < n, all f32 arrays. */
function f32BinaryRun(
  op: string, a: Float32Array, ia: number, sa: number, b: Float32Array, ib: number, sb: number,
  o: Float32Array, oo: number, n: number,
): void {
  const end = oo + n;
  switch (op) {
    case 'add':
      for (let i = oo; i < end; i++, ia += sa, ib += sb) o[i] = a[ia]! + b[ib]!;
      return;
    case 'sub':
      for (let i = oo; i < end; i++, ia += sa, ib += sb) o[i] = a[ia]! - b[ib]!;
      return;
    case 'mul':
      for (let i = oo; i < end; i++, ia += sa, ib += sb) o[i] = a[ia]! * b[ib]!;
      return;
    case 'div':
      for (let i = oo; i < end; i++, ia += sa, ib += sb) o[i] = a[ia]! / b[ib]!;
      return;
    case 'maximum':
      for (let i = oo; i < end; i++, ia += sa, ib += sb) {
        const x = a[ia]!, y = b[ib]!;
        o[i] = x !== x || y !== y ? NaN : x > y ? x : y;
      }
      return;
    case 'minimum':
      for (let i = oo; i < end; i++, ia += sa, ib += sb) {
        const x = a[ia]!, y = b[ib]!;
        o[i] = x !== x || y !== y ? NaN : x < y ? x : y;
      }
      return;
    default:
      throw new Error(`f32BinaryRun: no loop for '${op}'`);
  }
}

for (const [op, fn] of Object.entries(BINARY_FNS)) {
  register(op, ({ inputs: [a, b], outputs: [y] }) => {
    const av = values(a!);
    const bv = values(b!);
    const yv = outValues(y!);
    if (F32_BINARY.has(op) && av instanceof Float32Array && bv instanceof Float32Array && yv instanceof Float32Array) {
      const plan = broadcastPlan([a!.shape, b!.shape], y!.shape);
      const last = plan.counts.length - 1;
      const sa = last >= 0 ? plan.strides[0]![last]! : 0;
      const sb = last >= 0 ? plan.strides[1]![last]! : 0;
      if (plan.counts.length <= 1) f32BinaryRun(op, av, 0, sa, bv, 0, sb, yv, 0, y!.size);
      else forEachRun(plan, ([ao, bo], oo, n) => f32BinaryRun(op, av, ao!, sa, bv, bo!, sb, yv, oo, n));
    } else {
      const f = (a!.dtype === 'i32' && intBinary(op)) || (a!.dtype === 'u8' && op === 'div' ? intBinary(op)! : fn);
      broadcastLoop(a!, av, b!, bv, y!, yv, f);
    }
    commit(y!, yv);
  });
}

register('where', ({ inputs: [c, a, b], outputs: [y] }) => {
  const cv = values(c!);
  // Copy raw codes when no conversion is needed (exact for every dtype).
  const yr = raw(y!);
  const ar = raw(a!);
  const br = raw(b!);
  const plan = broadcastPlan([c!.shape, a!.shape, b!.shape], y!.shape);
  const last = plan.counts.length - 1;
  const [sc, sa, sb] = plan.strides.map((s) => (last >= 0 ? s[last]! : 0)) as [number, number, number];
  forEachRun(plan, ([co, ao, bo], oo, n) => {
    let ic = co!, ia = ao!, ib = bo!;
    for (let i = oo; i < oo + n; i++, ic += sc, ia += sa, ib += sb) yr[i] = cv[ic] ? ar[ia]! : br[ib]!;
  });
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
