/**
 * Float-float ("double f32") arithmetic for the router (MODEL_SPEC §4), so WebGPU chooses the same
 * experts as the CPU. The CPU computes each logit as a float64 dot product rounded once to f32, and
 * the scores as float64 sigmoid / softmax rounded once; expert choice compares those f32 values. A
 * plain f32 dot product over 2048 inputs is off by many f32 ulps, enough to swap near-tied experts
 * in a noticeable fraction of tokens. Here values are carried as hi + lo pairs of f32 (about 44-48
 * significant bits) and rounded to f32 once, so the results are the CPU's f32 values except where
 * the exact value lies within about 2^-40 (relative) of an f32 rounding boundary.
 *
 * Building blocks (Dekker / Knuth / Ogita-Rump-Oishi):
 *   two_sum      a + b = s + e exactly (intermediates opaque: no optimizer can re-associate them)
 *   two_prod     a * b = p + e exactly: p is kept rounded (an opaque XOR with a runtime zero stops
 *                compilers from fusing a * b into a later add), e from a 12 + 12 bit split whose
 *                partial products are exact in f32 (so fused multiply-adds give the same values)
 *   ff_add, ff_mul, ff_div, ff_exp_neg (exp of a non-positive argument: 2^n times a float-float in
 *   [0.7, 1.42], so nothing underflows), ff_round_scaled (one rounding of q * 2^n, subnormals too).
 *
 * Every kernel using this library sets FF_ZERO from a uniform word that holds 0.
 */
import type { TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../../backend.js';
import type { TensorDecl } from '../../wgsl/access.js';
import { f32Bits } from '../util.js';

/** WGSL literal of the f32 nearest to x (as a bit pattern: no decimal parsing involved). */
export const f32Lit = (x: number): string => `bitcast<f32>(0x${(f32Bits(x) >>> 0).toString(16)}u)`;

/** [hi, lo] f32 literals of x (a float64): hi = fl32(x), lo = fl32(x - hi). */
export function ffLit(x: number): string {
  const hi = Math.fround(x);
  return `vec2<f32>(${f32Lit(hi)}, ${f32Lit(x - hi)})`;
}

/** ln 2 in three f32 parts, the first two of 16 significant bits (n * part is exact for |n| < 256). */
function ln2Parts(): [number, number, number] {
  const trunc16 = (x: number) => {
    const b = f32Bits(x) & 0xffffff00;
    const f = new Float32Array(new Uint32Array([b >>> 0]).buffer);
    return f[0]!;
  };
  const c1 = trunc16(Math.LN2);
  const c2 = trunc16(Math.LN2 - c1);
  return [c1, c2, Math.fround(Math.LN2 - c1 - c2)];
}

const FACT_TERMS = 13;

function expHorner(): string {
  // exp(r) = sum_k r^k / k!, |r| <= ln2/2 + a little: 13 terms bring the truncation below 2^-50.
  let fact = 1;
  const inv: number[] = [];
  for (let k = 0; k <= FACT_TERMS; k++) {
    if (k > 0) fact *= k;
    inv.push(1 / fact);
  }
  const lines = [`  var p = ${ffLit(inv[FACT_TERMS]!)};`];
  for (let k = FACT_TERMS - 1; k >= 0; k--) lines.push(`  p = ff_add(ff_mul(p, r), ${ffLit(inv[k]!)});`);
  return lines.join('\n');
}

const [LN2_1, LN2_2, LN2_3] = ln2Parts();

export const FF_WGSL = /* wgsl */ `
var<private> FF_ZERO: u32;
// x rounded to f32 and opaque to the optimizer (FF_ZERO is a runtime 0).
fn ff_keep(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) ^ FF_ZERO); }
fn ff_keep4(x: vec4<f32>) -> vec4<f32> { return bitcast<vec4<f32>>(bitcast<vec4<u32>>(x) ^ vec4<u32>(FF_ZERO)); }
// The sums are opaque too: with a constant operand (1 + e), optimizers have been seen to
// simplify (1 + e) - 1 to e, which erases the rounding error these formulas compute.
fn two_sum(a: f32, b: f32) -> vec2<f32> {
  let s = ff_keep(a + b);
  let bb = ff_keep(s - a);
  return vec2<f32>(s, (a - ff_keep(s - bb)) + (b - bb));
}
fn fast_two_sum(a: f32, b: f32) -> vec2<f32> {
  let s = ff_keep(a + b);
  return vec2<f32>(s, b - ff_keep(s - a));
}
// a = hi + lo with hi rounded to 12 significant bits (|lo| <= 2^11 units: at most 11 bits), the
// Veltkamp split done on the bit pattern.
fn ff_split(a: f32) -> vec2<f32> {
  let h = bitcast<f32>((bitcast<u32>(a) + 0x800u) & 0xfffff000u);
  return vec2<f32>(h, a - h);
}
fn two_prod(a: f32, b: f32) -> vec2<f32> {
  let p = ff_keep(a * b);
  let sa = ff_split(a);
  let sb = ff_split(b);
  let e1 = ff_keep(sa.x * sb.x - p);
  let e2 = ff_keep(e1 + sa.x * sb.y);
  return vec2<f32>(p, ff_keep(e2 + sa.y * sb.x) + sa.y * sb.y);
}
fn ff_add(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let s = two_sum(a.x, b.x);
  let t = two_sum(a.y, b.y);
  let r = fast_two_sum(s.x, s.y + t.x);
  return fast_two_sum(r.x, r.y + t.y);
}
fn ff_mul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let p = two_prod(a.x, b.x);
  return fast_two_sum(p.x, p.y + (a.x * b.y + a.y * b.x));
}
fn ff_mul_f(a: vec2<f32>, b: f32) -> vec2<f32> {
  let p = two_prod(a.x, b);
  return fast_two_sum(p.x, p.y + a.y * b);
}
fn ff_div(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let q1 = a.x / b.x;
  let r1 = ff_add(a, -ff_mul_f(b, q1));
  let q2 = r1.x / b.x;
  let r2 = ff_add(r1, -ff_mul_f(b, q2));
  let q3 = r2.x / b.x;
  return ff_add(fast_two_sum(q1, q2), vec2<f32>(q3, 0.0));
}
fn ff_scale(a: vec2<f32>, n: i32) -> vec2<f32> { return vec2<f32>(ldexp(a.x, n), ldexp(a.y, n)); }

// exp(a) = m * 2^n for a = a.x + a.y <= 0; m = 0 when exp(a) < 2^-152 (a.x < -106).
struct FfExp { m: vec2<f32>, n: i32 }
fn ff_exp_neg(a: vec2<f32>) -> FfExp {
  if (a.x < -106.0) { return FfExp(vec2<f32>(0.0), 0); }
  let n = i32(round(a.x * 1.4426950408889634));
  let nf = f32(n);
  // r = a - n ln2 with ln2 in three parts (the first two products exact).
  var r = two_sum(a.x, -nf * ${f32Lit(LN2_1)});
  r = ff_add(r, vec2<f32>(-nf * ${f32Lit(LN2_2)}, 0.0));
  r = ff_add(r, vec2<f32>(ff_keep(-nf * ${f32Lit(LN2_3)}), 0.0));
  r = ff_add(r, vec2<f32>(a.y, 0.0));
${expHorner()}
  return FfExp(p, n);
}

// f32 bits of RNE(q * 2^n) for a positive float-float q (normal or subnormal result).
fn ff_round_scaled(q: vec2<f32>, n: i32) -> u32 {
  if (q.x <= 0.0) { return 0u; }
  let qb = bitcast<u32>(q.x);
  let E = i32((qb >> 23u) & 0xffu) - 127 + n;
  if (E >= -125) {
    // Rounding at 24 bits does not depend on the power of two: add, then move the exponent.
    return bitcast<u32>(bitcast<i32>(bitcast<u32>(q.x + q.y)) + n * 8388608);
  }
  // Subnormal: round the 24-bit significand at the 2^-149 unit (q.y breaks exact ties).
  let M = (qb & 0x7fffffu) | 0x800000u;
  let sh = -126 - E;
  if (sh <= 0) { return M; }
  if (sh >= 25) { return 0u; }
  var kept = M >> u32(sh);
  let rem = M & ((1u << u32(sh)) - 1u);
  let half = 1u << u32(sh - 1);
  if (rem > half || (rem == half && (q.y > 0.0 || (q.y == 0.0 && (kept & 1u) == 1u)))) { kept = kept + 1u; }
  return kept;
}

// f32 bits of sigmoid(l) = 1 / (1 + exp(-l)), correctly rounded but for ~2^-40 ties.
fn ff_sigmoid_bits(l: f32) -> u32 {
  let lb = bitcast<u32>(l);
  if ((lb & 0x7fffffffu) > 0x7f800000u) { return 0x7fc00000u; }
  let neg = (lb & 0x80000000u) != 0u;
  let a = bitcast<f32>(lb & 0x7fffffffu);
  if (a > 105.0) { return select(0x3f800000u, 0u, neg); }
  let ex = ff_exp_neg(vec2<f32>(-a, 0.0)); // exp(-|l|)
  if (!neg) {
    if (ex.n < -60) { return 0x3f800000u; }
    let q = ff_div(vec2<f32>(1.0, 0.0), ff_add(vec2<f32>(1.0, 0.0), ff_scale(ex.m, ex.n)));
    return bitcast<u32>(q.x + q.y);
  }
  // l < 0: exp(l) / (1 + exp(l)), kept as m 2^n until the final rounding.
  var d = vec2<f32>(1.0, 0.0);
  if (ex.n >= -60) { d = ff_add(d, ff_scale(ex.m, ex.n)); }
  return ff_round_scaled(ff_div(ex.m, d), ex.n);
}
`;

/** Side of the square tile (and workgroup) of the precise GEMM. */
export function preciseTile(backend: WebGpuBackend): number {
  return backend.isSoftware ? 8 : 16;
}

/**
 * y [M, E] f32 = x [M, H] @ w [E, H]^T, each element a float-float dot product (sequential over H)
 * rounded once: the CPU's logits (float64, rounded once) but for rare rounding-boundary cases.
 * Low-precision inputs are decoded on load (no f32 copies). One output per invocation.
 */
export function runPreciseLogits(backend: WebGpuBackend, x: TensorInfo, w: TensorInfo, y: TensorInfo['buffer'], M: number, E: number, H: number): void {
  if (M === 0 || E === 0) return;
  const T = preciseTile(backend);
  const prog = backend.program(`moe_precise_logits${T}|${x.dtype}|${w.dtype}`, () => ({
    tensors: [
      { name: 'x', dtype: x.dtype, access: 'read' },
      { name: 'w', dtype: w.dtype, access: 'read' },
      { name: 'y', dtype: 'f32', access: 'write' },
    ] as TensorDecl[],
    uniformWords: 4,
    workgroupSize: [T, T, 1] as const,
    helpers: `${FF_WGSL}
var<workgroup> Xs: array<array<f32, ${T}>, ${T}>;
var<workgroup> Ws: array<array<f32, ${T}>, ${T}>;`,
    body: `FF_ZERO = u(3u);
let M = u(0u); let E = u(1u); let H = u(2u);
let tx = lid3.x; let ty = lid3.y;
let m = wid.y * ${T}u + ty;
let e = wid.x * ${T}u + tx;
let we = wid.x * ${T}u + ty; // the expert row this invocation loads
var hi = 0.0; var lo = 0.0; var naive = 0.0;
for (var k0 = 0u; k0 < H; k0 += ${T}u) {
  let k = k0 + tx;
  var xv = 0.0;
  if (m < M && k < H) { xv = x_ld(m * H + k); }
  var wv = 0.0;
  if (we < E && k < H) { wv = w_ld(we * H + k); }
  Xs[ty][tx] = xv;
  Ws[ty][tx] = wv;
  workgroupBarrier();
  for (var kk = 0u; kk < ${T}u; kk++) {
    let a = Xs[ty][kk];
    let b = Ws[tx][kk];
    let p = two_prod(a, b);
    let s = two_sum(hi, p.x);
    hi = s.x;
    lo = lo + (s.y + p.y);
    naive = naive + a * b;
  }
  workgroupBarrier();
}
if (m < M && e < E) {
  // Non-finite inputs poison the float-float terms with NaN: the plain sum says inf or NaN.
  var r = hi + lo;
  if (rl_isnan(r) && !rl_isnan(naive)) { r = naive; }
  y_st(m * E + e, r);
}`,
  }));
  backend.dispatch(prog, [x.buffer, w.buffer, y], new Uint32Array([M, E, H, 0]), [Math.ceil(E / T), Math.ceil(M / T)], 'routerLogits');
}
