/**
 * Elementwise kernels from a table of WGSL expressions: unary math, binary arithmetic with
 * broadcasting, comparisons, logical ops, where, cast, clip, copy.
 *
 * Semantics follow the CPU reference (backend-cpu/src/kernels/elementwise.ts): floats compute in
 * f32 and round once to the output dtype; i32 wraps; u8 wraps modulo 256; integer division
 * truncates and division by zero gives 0. IEEE special cases (log of a negative number, 1/0, NaN
 * in max/min) are spelled out with bit tests, because WGSL lets compilers assume there are no
 * NaNs or infinities and leaves several of these cases undefined.
 */
import type { DType, TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../backend.js';
import { computeType, decodeBitsExpr, encodeBitsExpr } from '../wgsl/access.js';
import { runMap } from './map.js';
import { f32Bits, register, type WebGpuKernel } from './util.js';

type Kind = 'f32' | 'i32' | 'u32';

// x is the input value. Float expressions may use the rl_* helpers of the codec library.
const UNARY: Record<string, Partial<Record<Kind, string>>> = {
  neg: { f32: '-v0', i32: '0 - v0' },
  abs: { f32: 'abs(v0)', i32: 'select(v0, 0 - v0, v0 < 0)' },
  sign: { f32: 'select(select(v0, -1.0, v0 < 0.0), 1.0, v0 > 0.0)', i32: 'select(select(0, -1, v0 < 0), 1, v0 > 0)' },
  square: { f32: 'v0 * v0', i32: 'v0 * v0' },
  relu: { f32: 'select(select(0.0, v0, rl_isnan(v0)), v0, v0 > 0.0)', i32: 'select(0, v0, v0 > 0)' },
  exp: { f32: 'ew_exp(v0)' },
  log: { f32: 'ew_log(v0)' },
  sqrt: { f32: 'ew_sqrt(v0)' },
  rsqrt: { f32: 'ew_rsqrt(v0)' },
  reciprocal: { f32: 'ew_div(1.0, v0)' },
  sigmoid: { f32: 'ew_sigmoid(v0)' },
  silu: { f32: 'v0 * ew_sigmoid(v0)' },
  tanh: { f32: 'ew_tanh(v0)' },
  sin: { f32: 'ew_sin(v0)' },
  cos: { f32: 'ew_cos(v0)' },
  floor: { f32: 'floor(v0)' },
  ceil: { f32: 'ceil(v0)' },
  round: { f32: 'round(v0)' },
  logicalNot: { u32: 'select(1u, 0u, v0 != 0u)' },
};

// Comparisons and logical ops produce 0/1 (bool, compute type u32).
const NAN2 = '(rl_isnan(v0) || rl_isnan(v1))';
const BINARY: Record<string, Partial<Record<Kind, string>>> = {
  add: { f32: 'v0 + v1', i32: 'v0 + v1', u32: 'v0 + v1' },
  sub: { f32: 'v0 - v1', i32: 'v0 - v1', u32: 'v0 - v1' },
  mul: { f32: 'v0 * v1', i32: 'v0 * v1', u32: 'v0 * v1' },
  div: { f32: 'ew_div(v0, v1)', i32: 'select(v0 / v1, 0, v1 == 0)', u32: 'select(v0 / v1, 0u, v1 == 0u)' },
  pow: { f32: 'ew_pow(v0, v1)' },
  maximum: {
    f32: `select(select(v1, v0, v0 > v1), rl_nan(), ${NAN2})`,
    i32: 'select(v1, v0, v0 > v1)',
    u32: 'select(v1, v0, v0 > v1)',
  },
  minimum: {
    f32: `select(select(v1, v0, v0 < v1), rl_nan(), ${NAN2})`,
    i32: 'select(v1, v0, v0 < v1)',
    u32: 'select(v1, v0, v0 < v1)',
  },
};

const CMP: Record<string, { f32: string; int: string }> = {
  equal: { f32: `select(u32(v0 == v1), 0u, ${NAN2})`, int: 'u32(v0 == v1)' },
  notEqual: { f32: `select(u32(v0 != v1), 1u, ${NAN2})`, int: 'u32(v0 != v1)' },
  less: { f32: `select(u32(v0 < v1), 0u, ${NAN2})`, int: 'u32(v0 < v1)' },
  lessEqual: { f32: `select(u32(v0 <= v1), 0u, ${NAN2})`, int: 'u32(v0 <= v1)' },
  greater: { f32: `select(u32(v0 > v1), 0u, ${NAN2})`, int: 'u32(v0 > v1)' },
  greaterEqual: { f32: `select(u32(v0 >= v1), 0u, ${NAN2})`, int: 'u32(v0 >= v1)' },
};

const LOGICAL: Record<string, string> = {
  logicalAnd: 'u32(v0 != 0u && v1 != 0u)',
  logicalOr: 'u32(v0 != 0u || v1 != 0u)',
  logicalXor: 'u32((v0 != 0u) != (v1 != 0u))',
};

/** Float helpers with the special cases the CPU (IEEE double, then f32) gives. */
export const EW_HELPERS = /* wgsl */ `
fn ew_signed_inf(x: f32) -> f32 { return select(rl_inf(), -rl_inf(), (bitcast<u32>(x) & 0x80000000u) != 0u); }
fn ew_exp(x: f32) -> f32 {
  if (rl_isnan(x)) { return x; }
  if (x > 88.72284) { return rl_inf(); }
  if (x < -103.97208) { return 0.0; }
  return exp(x);
}
fn ew_log(x: f32) -> f32 {
  if (rl_isnan(x) || x < 0.0) { return rl_nan(); }
  if (x == 0.0) { return -rl_inf(); }
  if (rl_isinf(x)) { return x; }
  return ew_log_pos(x);
}
// ln(x) for finite x > 0 (Cephes logf: x = 2^e m, m in [sqrt(1/2), sqrt(2)), a polynomial in
// m - 1, ln 2 in two parts). About 1 ulp everywhere, including next to 1, where WGSL's builtin
// only promises 2^-21 absolute error.
fn ew_log_pos(x0: f32) -> f32 {
  let bits = bitcast<u32>(x0);
  var e: f32;
  var frac: u32;
  if ((bits & 0x7f800000u) == 0u) {
    // Subnormal (normalized with integer operations: GPUs may flush subnormal arithmetic).
    let mnt = bits & 0x7fffffu;
    let p = firstLeadingBit(mnt);
    e = f32(i32(p) - 148);
    frac = (mnt << (23u - p)) & 0x7fffffu;
  } else {
    e = f32(i32((bits >> 23u) & 0xffu) - 126);
    frac = bits & 0x7fffffu;
  }
  let m = bitcast<f32>(frac | 0x3f000000u);
  var x: f32;
  if (m < 0.70710678118654752) { e = e - 1.0; x = m + m - 1.0; } else { x = m - 1.0; }
  let z = x * x;
  var y = ((((((((7.0376836292e-2 * x - 1.1514610310e-1) * x + 1.1676998740e-1) * x - 1.2420140846e-1) * x
    + 1.4249322787e-1) * x - 1.6668057665e-1) * x + 2.0000714765e-1) * x - 2.4999993993e-1) * x + 3.3333331174e-1) * x * z;
  y = y + e * -2.12194440e-4;
  y = y - 0.5 * z;
  return (x + y) + e * 0.693359375;
}
fn ew_sqrt(x: f32) -> f32 {
  if (rl_isnan(x) || x < 0.0) { return rl_nan(); }
  if (x == 0.0 || rl_isinf(x)) { return x; }
  return sqrt(x);
}
fn ew_rsqrt(x: f32) -> f32 {
  if (rl_isnan(x) || x < 0.0) { return rl_nan(); }
  if (x == 0.0) { return ew_signed_inf(x); }
  if (rl_isinf(x)) { return 0.0; }
  return 1.0 / sqrt(x);
}
fn ew_div(a: f32, b: f32) -> f32 {
  if (rl_isnan(a) || rl_isnan(b)) { return rl_nan(); }
  if (b == 0.0) {
    if (a == 0.0) { return rl_nan(); }
    let neg = ((bitcast<u32>(a) ^ bitcast<u32>(b)) & 0x80000000u) != 0u;
    return select(rl_inf(), -rl_inf(), neg);
  }
  if (rl_isinf(b)) {
    if (rl_isinf(a)) { return rl_nan(); }
    return bitcast<f32>((bitcast<u32>(a) ^ bitcast<u32>(b)) & 0x80000000u);
  }
  return a / b;
}
fn ew_sigmoid(x: f32) -> f32 {
  if (rl_isnan(x)) { return x; }
  return 1.0 / (1.0 + ew_exp(-x));
}
fn ew_tanh(x: f32) -> f32 {
  if (rl_isnan(x)) { return x; }
  if (abs(x) > 10.0) { return sign(x); }
  if (abs(x) < 0.3) {
    // Taylor series (the next term is below f32 precision here): the exp form below would
    // lose relative accuracy to cancellation near 0.
    let z = x * x;
    return x * (1.0 + z * (-0.33333334 + z * (0.13333334 + z * (-0.053968254 + z * (0.021869488 + z * -0.0088632358)))));
  }
  // sign(x) (1 - t) / (1 + t) with t = e^(-2|x|) <= 0.55: no cancellation, no overflow.
  let t = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - t) / (1.0 + t);
}
// sin and cos (Cephes sinf/cosf: reduction by pi/4 in three parts, minimax polynomials on
// [-pi/4, pi/4]); about 1 ulp for |x| < 8192, where WGSL's builtins only promise 2^-11 absolute
// error on [-pi, pi]. Accuracy degrades for huge |x| (no Payne-Hanek reduction).
fn ew_sin_poly(x: f32, z: f32) -> f32 { return ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * x + x; }
fn ew_cos_poly(z: f32) -> f32 { return ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z - 0.5 * z + 1.0; }
fn ew_trig(x0: f32, cosine: bool) -> f32 {
  if (rl_isnan(x0) || rl_isinf(x0)) { return rl_nan(); }
  var sgn = 1.0;
  var x = abs(x0);
  if (!cosine && x0 < 0.0) { sgn = -1.0; }
  var y = floor(x * 1.27323954473516);
  if (fract(y * 0.5) != 0.0) { y = y + 1.0; }
  var j = u32(y - 8.0 * floor(y * 0.125));
  if (j > 3u) { sgn = -sgn; j = j - 4u; }
  if (cosine && j > 1u) { sgn = -sgn; }
  let r = ((x - y * 0.78515625) - y * 2.4187564849853515625e-4) - y * 3.77489497744594108e-8;
  let z = r * r;
  let useCos = (j == 1u || j == 2u) != cosine;
  return sgn * select(ew_sin_poly(r, z), ew_cos_poly(z), useCos);
}
fn ew_sin(x: f32) -> f32 { return ew_trig(x, false); }
fn ew_cos(x: f32) -> f32 { return ew_trig(x, true); }
fn ew_is_odd_int(b: f32) -> bool {
  if (abs(b) >= 16777216.0) { return false; }
  return floor(b) == b && (i32(b) & 1) == 1;
}
// Math.pow semantics (IEEE pow with the JS exceptions: pow(x, 0) = 1, pow(1, NaN) = NaN).
fn ew_pow(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (rl_isnan(a) || rl_isnan(b)) { return rl_nan(); }
  let ab = abs(a);
  if (rl_isinf(b)) {
    if (ab == 1.0) { return rl_nan(); }
    if ((ab > 1.0) == (b > 0.0)) { return rl_inf(); }
    return 0.0;
  }
  let odd = ew_is_odd_int(b);
  let intb = floor(b) == b;
  if (a == 0.0 || rl_isinf(a)) {
    // |a|^b is 0 or inf; the sign follows a for odd integer b.
    let mag = select(0.0, rl_inf(), (a == 0.0) == (b < 0.0));
    let neg = odd && (bitcast<u32>(a) & 0x80000000u) != 0u;
    return select(mag, -mag, neg);
  }
  if (a < 0.0 && !intb) { return rl_nan(); }
  var r: f32;
  if (b == 1.0) { r = ab; }
  else if (b == 2.0) { r = ab * ab; }
  else if (b == 0.5) { r = sqrt(ab); }
  else if (b == -1.0) { r = 1.0 / ab; }
  else {
    let l = b * log2(ab);
    if (l > 128.0) { r = rl_inf(); }
    else if (l < -150.0) { r = 0.0; }
    else { r = exp2(l); }
  }
  return select(r, -r, a < 0.0 && odd);
}
`;

function kindOf(d: DType): Kind {
  return computeType(d);
}

function unaryKernel(op: string): WebGpuKernel {
  return ({ backend, inputs: [x], outputs: [y] }) => {
    const expr = UNARY[op]![kindOf(x!.dtype)];
    if (!expr) throw new Error(`webgpu: ${op} has no expression for ${x!.dtype}`);
    runMap(backend, { key: op, inputs: [x!], output: y!, expr, helpers: EW_HELPERS });
  };
}

function binaryKernel(op: string): WebGpuKernel {
  return ({ backend, inputs: [a, b], outputs: [y] }) => {
    const k = kindOf(a!.dtype);
    let expr: string | undefined;
    if (op in BINARY) expr = BINARY[op]![k];
    else if (op in CMP) expr = k === 'f32' ? CMP[op]!.f32 : CMP[op]!.int;
    else expr = LOGICAL[op];
    if (!expr) throw new Error(`webgpu: ${op} has no expression for ${a!.dtype}`);
    runMap(backend, { key: op, inputs: [a!, b!], output: y!, expr, helpers: EW_HELPERS });
  };
}

for (const op of Object.keys(UNARY)) register(op, unaryKernel(op));
for (const op of [...Object.keys(BINARY), ...Object.keys(CMP), ...Object.keys(LOGICAL)]) register(op, binaryKernel(op));

register('where', ({ backend, inputs: [c, a, b], outputs: [y] }) => {
  // Storage codes pass through untouched (exact for every dtype).
  runMap(backend, { key: 'where', inputs: [c!, a!, b!], output: y!, expr: 'select(v2, v1, v0 != 0u)', rawIn: true, rawOut: true });
});

/** WGSL expression converting code `c` of dtype `from` into a code of dtype `to` (as core's cast). */
export function castCodeExpr(from: DType, to: DType, c: string, sat: boolean, opts: WebGpuBackend['accessOptions']): string {
  const fFloat = computeType(from) === 'f32';
  const tFloat = computeType(to) === 'f32';
  const satS = sat ? 'true' : 'false';
  // Same-dtype float casts still decode and encode: that canonicalizes NaN codes and, when
  // saturating, clamps infinities, as the CPU's cast does.
  if (from === to && !fFloat) return c;
  if (fFloat) {
    const bits = decodeBitsExpr(from, c, opts);
    if (tFloat) return encodeBitsExpr(to, bits, satS);
    if (to === 'bool') return `u32((${bits} & 0x7fffffffu) != 0u)`;
    if (to === 'i32') return `rl_f32_bits_to_wrapped_u32(${bits})`;
    return `(rl_f32_bits_to_wrapped_u32(${bits}) & 0xffu)`; // u8
  }
  // from an integer or bool code
  const asI32 = from === 'i32' ? `bitcast<i32>(${c})` : `i32(${c})`;
  if (tFloat) return encodeBitsExpr(to, `rl_i32_to_f32_bits(${asI32})`, satS);
  if (to === 'bool') return `u32(${c} != 0u)`;
  if (to === 'i32') return c; // u8/bool codes are their values
  return `(${c} & 0xffu)`; // i32 -> u8 wraps; bool -> u8
}

register('cast', ({ backend, inputs: [x], outputs: [y], attrs }) => {
  const sat = Boolean((attrs as { saturate?: boolean }).saturate);
  const expr = castCodeExpr(x!.dtype, y!.dtype, 'v0', sat, backend.accessOptions);
  runMap(backend, { key: `cast${sat ? 's' : ''}`, inputs: [x!], output: y!, expr, rawIn: true, rawOut: true });
});

register('copy', ({ backend, inputs: [x], outputs: [y] }) => {
  backend.copyWords(x!.buffer, y!.buffer, x!.size === 0 ? 0 : y!.buffer.byteLength);
});

register('clip', ({ backend, inputs: [x], outputs: [y], attrs }) => {
  const { min, max } = attrs as { min: number; max: number };
  const d = x!.dtype;
  if (computeType(d) === 'f32') {
    runMap(backend, {
      key: 'clip',
      inputs: [x!],
      output: y!,
      expr: 'select(select(v0, bitcast<f32>(p1), v0 > bitcast<f32>(p1)), bitcast<f32>(p0), v0 < bitcast<f32>(p0))',
      params: [f32Bits(min), f32Bits(max)],
    });
    return;
  }
  // Integers: compare against ceil(min) / floor(max) exactly (flags cover bounds outside the
  // i32 range) and store them as the CPU does (wrapped to the dtype).
  const lo = Math.ceil(min);
  const hi = Math.floor(max);
  const I32_MIN = -2147483648;
  const I32_MAX = 2147483647;
  const loAll = lo > I32_MAX ? 1 : 0; // every value is below lo
  const hiAll = hi < I32_MIN ? 1 : 0; // every value is above hi
  const loCmp = Math.min(Math.max(lo, I32_MIN), I32_MAX);
  const hiCmp = Math.min(Math.max(hi, I32_MIN), I32_MAX);
  const wrap = (v: number) => (Number.isFinite(v) ? Number(BigInt.asIntN(32, BigInt(v))) : 0);
  const toV = d === 'i32' ? (v: string) => `bitcast<i32>(${v})` : (v: string) => `(${v} & 0xffu)`;
  const xv = d === 'i32' ? 'v0' : 'i32(v0)';
  runMap(backend, {
    key: 'clip',
    inputs: [x!],
    output: y!,
    expr:
      `select(select(v0, ${toV('p3')}, p5 != 0u || ${xv} > bitcast<i32>(p1)), ${toV('p2')}, p4 != 0u || ${xv} < bitcast<i32>(p0))`,
    params: [loCmp >>> 0, hiCmp >>> 0, wrap(lo) >>> 0, wrap(hi) >>> 0, loAll, hiAll],
  });
});

/** Storage code of `value` in `dtype`, as core's cast of a number gives (fill, pad). */
export function hostCode(value: number, dtype: DType): number {
  switch (dtype) {
    case 'f32':
      return f32Bits(value);
    case 'i32':
      return Number.isFinite(value) ? Number(BigInt.asIntN(32, BigInt(Math.trunc(value)))) >>> 0 : 0;
    case 'u8':
      return Number.isFinite(value) ? Number(BigInt.asUintN(8, BigInt(Math.trunc(value)))) : 0;
    case 'bool':
      return value !== 0 ? 1 : 0;
    default:
      return -1; // low-precision floats: the caller encodes with core's codec
  }
}

export function isMapInput(t: TensorInfo): boolean {
  return t.size > 0;
}
