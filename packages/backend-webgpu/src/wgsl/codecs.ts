/**
 * The WGSL codec library: decode/encode of f16, bf16, f8e4m3 (E4M3FN) and f8e5m2 codes to and
 * from f32 bit patterns, written with integer operations only, so the results match core's
 * codecs (packages/core/src/dtype/codecs.ts) bit for bit on every GPU: round to nearest even,
 * the saturating and non-saturating overflow rules, NaN codes. Working on bit patterns (u32)
 * rather than f32 values also keeps f32 subnormals intact on GPUs that flush them in arithmetic.
 *
 * Encoders take the f32 bit pattern `u` and `sat` (true: clamp to +-max finite, as core's
 * `saturate`). Decoders return f32 bit patterns; NaN codes of f16 and the fp8 formats decode to
 * the canonical positive NaN 0x7FC00000 (the value core's lookup tables hold), bf16 NaNs keep
 * their payload (core shifts the bits).
 */
export const CODECS_WGSL = /* wgsl */ `
// ---- minifloat codecs (bit-exact with core/src/dtype/codecs.ts) ----

// Rounds |x| (f32 bits a, sign clear, not NaN; +inf allowed) to a format with mbits mantissa bits
// and exponent bias 'bias', ties to even; returns exponent<<mbits | mantissa, unclipped at the top.
fn rl_round_mag(a: u32, mbits: u32, bias: u32) -> u32 {
  let e = a >> 23u;
  let shift = 23u - mbits;
  if (e >= 128u - bias) {
    let rounded = a + ((1u << (shift - 1u)) - 1u) + ((a >> shift) & 1u);
    return (rounded >> shift) - ((127u - bias) << mbits);
  }
  let ee = select(e, 1u, e == 0u);
  let sig = select((a & 0x7fffffu) | 0x800000u, a, e == 0u);
  let s = 151u - bias - mbits - ee;
  if (s > 24u) { return 0u; }
  let q = sig >> s;
  let rem = sig & ((1u << s) - 1u);
  let half = 1u << (s - 1u);
  return select(q, q + 1u, rem > half || (rem == half && (q & 1u) == 1u));
}

fn rl_enc_f16(u: u32, sat: bool) -> u32 {
  let sign = (u >> 16u) & 0x8000u;
  let a = u & 0x7fffffffu;
  if (a > 0x7f800000u) { return sign | 0x7e00u; }
  let mag = rl_round_mag(a, 10u, 15u);
  return sign | select(mag, select(0x7c00u, 0x7bffu, sat), mag > 0x7bffu);
}

fn rl_enc_bf16(u: u32, sat: bool) -> u32 {
  let sign = (u >> 16u) & 0x8000u;
  let a = u & 0x7fffffffu;
  if (a > 0x7f800000u) { return sign | 0x7fc0u; }
  let mag = (a + 0x7fffu + ((a >> 16u) & 1u)) >> 16u;
  return sign | select(mag, 0x7f7fu, sat && mag > 0x7f7fu);
}

fn rl_enc_e4m3(u: u32, sat: bool) -> u32 {
  let sign = (u >> 24u) & 0x80u;
  let a = u & 0x7fffffffu;
  if (a > 0x7f800000u) { return sign | 0x7fu; }
  let mag = rl_round_mag(a, 3u, 7u);
  return sign | select(mag, select(0x7fu, 0x7eu, sat), mag > 0x7eu);
}

fn rl_enc_e5m2(u: u32, sat: bool) -> u32 {
  let sign = (u >> 24u) & 0x80u;
  let a = u & 0x7fffffffu;
  if (a > 0x7f800000u) { return sign | 0x7fu; }
  let mag = rl_round_mag(a, 2u, 15u);
  return sign | select(mag, select(0x7cu, 0x7bu, sat), mag > 0x7bu);
}

// Value of a code with ebits exponent / mbits mantissa bits as f32 bits. ieee: the all-ones
// exponent is inf/NaN; otherwise (E4M3FN) only all-ones exponent and mantissa is NaN.
fn rl_dec_minifloat(code: u32, ebits: u32, mbits: u32, bias: u32, ieee: bool) -> u32 {
  let sign = ((code >> (ebits + mbits)) & 1u) << 31u;
  let emax = (1u << ebits) - 1u;
  let mmax = (1u << mbits) - 1u;
  let e = (code >> mbits) & emax;
  let m = code & mmax;
  if (e == emax) {
    if (ieee) {
      if (m == 0u) { return sign | 0x7f800000u; }
      return 0x7fc00000u;
    }
    if (m == mmax) { return 0x7fc00000u; }
  }
  if (e == 0u) {
    if (m == 0u) { return sign; }
    // m * 2^(1-bias-mbits): normalize the leading one of m into the implicit bit.
    let p = firstLeadingBit(m);
    return sign | ((p + 128u - bias - mbits) << 23u) | ((m << (23u - p)) & 0x7fffffu);
  }
  return sign | ((e + 127u - bias) << 23u) | (m << (23u - mbits));
}

fn rl_dec_f16(h: u32) -> u32 { return rl_dec_minifloat(h & 0xffffu, 5u, 10u, 15u, true); }
fn rl_dec_bf16(h: u32) -> u32 { return (h & 0xffffu) << 16u; }
fn rl_dec_e4m3(c: u32) -> u32 { return rl_dec_minifloat(c & 0xffu, 4u, 3u, 7u, false); }
fn rl_dec_e5m2(c: u32) -> u32 { return rl_dec_minifloat(c & 0xffu, 5u, 2u, 15u, true); }

// ---- f32 helpers that must not depend on IEEE special-value support in the compiler ----

fn rl_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn rl_isinf(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }
// NaN and inf cannot be constant expressions in WGSL; private variables keep them runtime values.
var<private> RL_NAN_BITS: u32 = 0x7fc00000u;
var<private> RL_INF_BITS: u32 = 0x7f800000u;
fn rl_nan() -> f32 { return bitcast<f32>(RL_NAN_BITS); }
fn rl_inf() -> f32 { return bitcast<f32>(RL_INF_BITS); }

// Round-to-nearest-even conversion of an integer to f32 bits (WGSL leaves the rounding of
// i32 -> f32 to the implementation; this is exact and matches Math.fround).
fn rl_u32_to_f32_bits(v: u32) -> u32 {
  if (v == 0u) { return 0u; }
  let p = firstLeadingBit(v);
  if (p <= 23u) { return ((p + 127u) << 23u) | ((v << (23u - p)) & 0x7fffffu); }
  let sh = p - 23u;
  var q = v >> sh;
  let rem = v & ((1u << sh) - 1u);
  let half = 1u << (sh - 1u);
  if (rem > half || (rem == half && (q & 1u) == 1u)) { q = q + 1u; }
  // q may have carried to 2^24: adding the shifted pattern handles the exponent bump.
  return ((p + 127u) << 23u) + (q - 0x800000u);
}

fn rl_i32_to_f32_bits(v: i32) -> u32 {
  let sign = select(0u, 0x80000000u, v < 0);
  let mag = select(u32(v), 0u - u32(v), v < 0);
  return sign | rl_u32_to_f32_bits(mag);
}

// f32 (bits) -> integer, truncating toward zero and wrapping modulo 2^32 (NaN and +-inf give 0):
// what core's CPU backend does (Math.trunc, then the Int32Array / Uint8Array store).
fn rl_f32_bits_to_wrapped_u32(u: u32) -> u32 {
  let a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) { return 0u; }
  let e = a >> 23u;
  if (e < 127u) { return 0u; }
  let sig = (a & 0x7fffffu) | 0x800000u;
  var mag: u32;
  if (e <= 150u) { mag = sig >> (150u - e); }
  else if (e - 150u >= 32u) { mag = 0u; }
  else { mag = sig << (e - 150u); }
  return select(mag, 0u - mag, (u & 0x80000000u) != 0u);
}
`;
