/**
 * Exact f32 arithmetic on bit patterns for the FP8 kernels (MODEL_SPEC §8), so quantizer codes and
 * scales equal the CPU's bit for bit on every GPU:
 *
 *   - WGSL promises only 2.5 ulp for f32 division, and GPUs may flush subnormals; the scale rule
 *     and the quotients x / scale must be IEEE divisions rounded to nearest even. rl_div_exact
 *     gets a 26-bit quotient from an approximate f32 division, corrects it with the exact integer
 *     remainder (a few steps at most), and rounds it once (normal or subnormal result).
 *   - fp8 value x f32 scale (dequantization) is exact in integers: an FP8 significand has at most
 *     4 bits, so the product of significands fits in 28 bits; rl_mul_fp8_exact rounds it once.
 *
 * The CPU computes these in float64 and rounds to f32 (Math.fround / a Float32Array store). For a
 * quotient or product of two f32 values that double rounding equals one correct rounding (float64
 * has more than 2 x 24 + 2 bits), so both backends produce the correctly rounded f32 result.
 */
export const EXACT_WGSL = /* wgsl */ `
// RNE(sig * 2^e2) as positive f32 bits, sig != 0; sticky: nonzero bits below sig were dropped.
// Normal and subnormal results; overflow gives +inf.
fn rl_pack_f32(sig: u32, e2: i32, sticky: bool) -> u32 {
  let p = i32(firstLeadingBit(sig));
  let E = p + e2;
  if (E > 127) { return 0x7f800000u; }
  // Bits to drop: down to 24 significant bits (normal) or to the 2^-149 unit (subnormal).
  let normal = E >= -126;
  let drop = select(-149 - e2, p - 23, normal);
  var kept: u32;
  if (drop <= 0) {
    kept = sig << u32(-drop);
  } else if (drop >= 32) {
    kept = 0u; // below 2^-150: rounds to zero (sig < 2^32 <= half of 2^drop)
  } else {
    kept = sig >> u32(drop);
    let rem = sig & ((1u << u32(drop)) - 1u);
    let half = 1u << u32(drop - 1);
    if (rem > half || (rem == half && (sticky || (kept & 1u) == 1u))) { kept = kept + 1u; }
  }
  // kept includes the implicit bit for normal results; a carry to 2^24 bumps the exponent.
  var bits = kept;
  if (normal) { bits = (u32(E + 126) << 23u) + kept; }
  return min(bits, 0x7f800000u);
}

// |a| as (significand with its leading bit at 23, exponent) for finite nonzero f32 bits.
struct RlNorm { sig: u32, e2: i32 }
fn rl_norm(a: u32) -> RlNorm {
  let e = (a >> 23u) & 0xffu;
  let m = a & 0x7fffffu;
  if (e == 0u) {
    let p = firstLeadingBit(m);
    return RlNorm(m << (23u - p), -149 - i32(23u - p));
  }
  return RlNorm(m | 0x800000u, i32(e) - 150);
}

// IEEE f32 division a / b (bits), round to nearest even; NaN results are 0x7fc00000.
fn rl_div_exact(a: u32, b: u32) -> u32 {
  let sign = (a ^ b) & 0x80000000u;
  let aa = a & 0x7fffffffu;
  let ab = b & 0x7fffffffu;
  if (aa > 0x7f800000u || ab > 0x7f800000u) { return 0x7fc00000u; }
  if (aa == 0x7f800000u) {
    if (ab == 0x7f800000u) { return 0x7fc00000u; }
    return sign | 0x7f800000u;
  }
  if (ab == 0x7f800000u) { return sign; }
  if (ab == 0u) {
    if (aa == 0u) { return 0x7fc00000u; }
    return sign | 0x7f800000u;
  }
  if (aa == 0u) { return sign; }
  let na = rl_norm(aa);
  let nb = rl_norm(ab);
  // Q = floor(ma 2^25 / mb) in [2^24, 2^26): from an approximate quotient, corrected with the
  // exact remainder r = ma 2^25 - Q mb (computed modulo 2^32; |r| < 2^28 so the i32 is exact).
  let qf = f32(na.sig) / f32(nb.sig);
  var q = u32(qf * 33554432.0);
  var r = bitcast<i32>((na.sig << 25u) - q * nb.sig);
  let mb = i32(nb.sig);
  for (var it = 0; it < 64 && r < 0; it++) { q = q - 1u; r = r + mb; }
  for (var it = 0; it < 64 && r >= mb; it++) { q = q + 1u; r = r - mb; }
  return sign | rl_pack_f32(q, na.e2 - nb.e2 - 25, r != 0);
}

// An FP8 code's value (E4M3FN: e4m3 true; E5M2: false) times f32 bits s, rounded once to f32.
fn rl_mul_fp8_exact(code: u32, e4m3: bool, s: u32) -> u32 {
  let sign = ((code & 0x80u) << 24u) ^ (s & 0x80000000u);
  let as_ = s & 0x7fffffffu;
  var sig: u32;
  var e2: i32;
  var isInf = false;
  if (e4m3) {
    let e = (code >> 3u) & 15u;
    let m = code & 7u;
    if (e == 15u && m == 7u) { return 0x7fc00000u; }
    sig = select(8u + m, m, e == 0u);
    e2 = select(i32(e) - 10, -9, e == 0u);
  } else {
    let e = (code >> 2u) & 31u;
    let m = code & 3u;
    if (e == 31u) {
      if (m != 0u) { return 0x7fc00000u; }
      isInf = true;
    }
    sig = select(4u + m, m, e == 0u);
    e2 = select(i32(e) - 17, -16, e == 0u);
  }
  if (as_ > 0x7f800000u) { return 0x7fc00000u; }
  if (isInf) {
    if (as_ == 0u) { return 0x7fc00000u; }
    return sign | 0x7f800000u;
  }
  if (as_ == 0x7f800000u) {
    if (sig == 0u) { return 0x7fc00000u; }
    return sign | 0x7f800000u;
  }
  if (sig == 0u || as_ == 0u) { return sign; }
  let ns = rl_norm(as_);
  return sign | rl_pack_f32(sig * ns.sig, e2 + ns.e2, false);
}

// The scale rule (MODEL_SPEC §8): max(fl32(amax / fp8_max), 2^-126), optionally rounded up to a
// power of two; NaN stays NaN, +inf stays +inf. amax: f32 bits of a non-negative value or NaN.
fn fp8_scale_bits(amax: u32, maxBits: u32, pow2: bool) -> u32 {
  let s = rl_div_exact(amax, maxBits);
  if ((s & 0x7fffffffu) > 0x7f800000u) { return s; }
  var c = select(s, 0x00800000u, s < 0x00800000u);
  if (pow2 && c != 0x7f800000u && (c & 0x7fffffu) != 0u) { c = ((c >> 23u) + 1u) << 23u; }
  return c;
}
`;

/** f32 bits of an FP8 format's largest finite value (448 for E4M3, 57344 for E5M2). */
export function fp8MaxBits(dtype: 'f8e4m3' | 'f8e5m2'): number {
  return dtype === 'f8e4m3' ? 0x43e00000 : 0x47600000;
}

/** WGSL: the saturating FP8 code of f32 bits `u`. */
export function encodeFp8Expr(dtype: 'f8e4m3' | 'f8e5m2', u: string): string {
  return dtype === 'f8e4m3' ? `rl_enc_e4m3(${u}, true)` : `rl_enc_e5m2(${u}, true)`;
}
