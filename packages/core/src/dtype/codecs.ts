/**
 * Bit-exact conversions between float32 and the low-precision float formats used for storage:
 *
 *   f16     IEEE 754 binary16        1 sign, 5 exponent (bias 15),  10 mantissa bits; has inf/NaN
 *   bf16    bfloat16                 1 sign, 8 exponent (bias 127),  7 mantissa bits; has inf/NaN
 *   f8e4m3  OCP FP8 E4M3 ("E4M3FN")  1 sign, 4 exponent (bias 7),    3 mantissa bits; NO infinities,
 *                                    NaN only at S.1111.111, so the top binade reaches 448
 *   f8e5m2  OCP FP8 E5M2             1 sign, 5 exponent (bias 15),   2 mantissa bits; IEEE-like
 *                                    (exponent 11111 = inf when mantissa is 0, else NaN), max 57344
 *
 * References: IEEE 754-2019 §4.3.1 (roundTiesToEven), §7.4 (overflow); "OCP 8-bit Floating Point
 * Specification (OFP8) rev. 1.0" §4 (encodings, special values) and §5 (conversion / saturation).
 *
 * Conversions are defined FROM float32: every input is first rounded to f32 (storing it in a
 * Float32Array does exactly `Math.fround`), then rounded once, to nearest with ties to even, to
 * the target. Converting from the float64 value directly could give a different answer than
 * f64 -> f32 -> target (double rounding), and the reference implementations (PyTorch, CUDA
 * intrinsics) all start from f32, so this is the definition we match.
 *
 * Overflow (a value whose correctly rounded result lies past the largest finite value):
 *   non-saturating (default; what PyTorch's `tensor.to(dtype)` does):
 *     f16, bf16, E5M2 -> +-inf (IEEE 754 §7.4);  E4M3FN -> NaN (it has no inf; OCP §5);
 *     +-inf inputs behave the same way (E4M3FN: inf -> NaN).
 *   saturating (`saturate = true`; what a quantizer wants, OCP §5 "saturation mode"):
 *     the input is clamped to +-max finite first, so overflow and +-inf give +-max.
 * NaN inputs always give a NaN code carrying the input's sign bit:
 *   f16 0x7E00, bf16 0x7FC0, E4M3FN 0x7F, E5M2 0x7F (sign bit 0x8000 / 0x80 added when negative).
 *
 * Pure TypeScript, no Node APIs: this module also runs in browsers.
 */

/** Largest finite E4M3FN value: S.1111.110 = 2^8 * 1.75. */
export const E4M3_MAX = 448;
/** Largest finite E5M2 value: S.11110.11 = 2^15 * 1.75. */
export const E5M2_MAX = 57344;

export type LowPrecisionFloat = 'f16' | 'bf16' | 'f8e4m3' | 'f8e5m2';

// ---------------------------------------------------------------------------------------------
// Scratch space for reinterpreting a float32 as its bit pattern (and back). Typed arrays use the
// platform's byte order for both views, so the aliasing is endian-independent.
// ---------------------------------------------------------------------------------------------
const SCRATCH_F32 = new Float32Array(1);
const SCRATCH_U32 = new Uint32Array(SCRATCH_F32.buffer);

/** Bits of Math.fround(x). */
function f32Bits(x: number): number {
  SCRATCH_F32[0] = x;
  return SCRATCH_U32[0]!;
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/**
 * Rounds a non-negative, non-NaN float32 (its bit pattern `a`, sign bit clear; +inf allowed) to the
 * nearest value of a binary format with `mbits` stored mantissa bits and exponent bias `bias`,
 * ties to even (IEEE 754 §4.3.1), and returns that value's magnitude code
 * (exponent field << mbits | mantissa). The exponent range is NOT clipped at the top: a result
 * past the format's largest finite value comes back as a code larger than the format's maximum,
 * and the caller decides what overflow means.
 *
 * Requires 1 <= mbits <= 22 and a target whose smallest normal is >= 2^-126 (true for all four
 * formats; bf16 shares f32's exponent range exactly).
 */
function roundMagnitude(a: number, mbits: number, bias: number): number {
  const exp = a >>> 23; // biased f32 exponent, 0..255 (255 = inf, which lands past the top)
  const shift = 23 - mbits; // f32 mantissa bits that are dropped for a normal result

  if (exp >= 128 - bias) {
    // |x| >= 2^(1-bias): the result is normal (or overflows). Round the f32 bit pattern itself:
    // adding (half - 1) plus the kept LSB rounds to nearest, ties to even, and a mantissa carry
    // propagates into the exponent field for free (which is exactly the right result, including
    // stepping past the top binade). Then re-bias the exponent from 127 to `bias`.
    const rounded = a + ((1 << (shift - 1)) - 1) + ((a >>> shift) & 1);
    return (rounded >>> shift) - ((127 - bias) << mbits);
  }

  // |x| < 2^(1-bias): the result is subnormal in the target (or zero, or the smallest normal if
  // it rounds up). Its code is |x| / 2^(1-bias-mbits) rounded to an integer. With
  // |x| = significand * 2^(e-150) (e = biased exponent, 1 for f32 subnormals), that is
  // significand >> s with s = 151 - bias - mbits - e, rounded to nearest even.
  const e = exp === 0 ? 1 : exp;
  const significand = exp === 0 ? a : (a & 0x7fffff) | 0x800000;
  const s = 151 - bias - mbits - e; // >= 24 - mbits >= 1 on this branch
  if (s > 24) return 0; // significand < 2^24, so |x| < half the smallest subnormal: rounds to 0
  const q = significand >>> s;
  const rem = significand & ((1 << s) - 1);
  const half = 1 << (s - 1);
  return rem > half || (rem === half && (q & 1) === 1) ? q + 1 : q;
}

// Per-format encoders from f32 bits `u` (uint32). Each returns the full code, sign included.
// +-inf needs no case of its own: its pattern rounds past the top like any overflowing value,
// so it takes the overflow path (inf, NaN for E4M3FN, or +-max when saturating).

/** f16: 1.5.10, bias 15. */
function encF16(u: number, saturate: boolean): number {
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00; // NaN -> canonical quiet NaN
  const mag = roundMagnitude(a, 10, 15);
  return sign | (mag > 0x7bff ? (saturate ? 0x7bff : 0x7c00) : mag);
}

/** bf16: 1.8.7, bias 127 — the top half of an f32, rounded. */
function encBf16(u: number, saturate: boolean): number {
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7fc0; // NaN -> quiet NaN (a payload could round to inf)
  // Same exponent layout as f32, so rounding the bit pattern at bit 16 is the whole job;
  // subnormals and the carry into +inf fall out of the integer addition.
  const mag = (a + 0x7fff + ((a >>> 16) & 1)) >>> 16;
  return sign | (saturate && mag > 0x7f7f ? 0x7f7f : mag);
}

/** E4M3FN: 1.4.3, bias 7, no inf; 0x7F/0xFF are the only NaNs, so 0x7E (448) is the max. */
function encE4M3(u: number, saturate: boolean): number {
  const sign = (u >>> 24) & 0x80;
  const a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7f;
  const mag = roundMagnitude(a, 3, 7);
  // No inf in E4M3FN, so overflow is NaN unless saturating (OCP §5).
  // Anything that rounds past 448 (|x| > 464; 464 itself is a tie and goes to the even 448).
  return sign | (mag > 0x7e ? (saturate ? 0x7e : 0x7f) : mag);
}

/** E5M2: 1.5.2, bias 15, IEEE-like: 0x7C = inf, 0x7D..0x7F = NaN, 0x7B (57344) is the max. */
function encE5M2(u: number, saturate: boolean): number {
  const sign = (u >>> 24) & 0x80;
  const a = u & 0x7fffffff;
  // NaN code 0x7F (all ones), the byte PyTorch writes; any of 0x7D..0x7F would be a valid NaN.
  if (a > 0x7f800000) return sign | 0x7f;
  const mag = roundMagnitude(a, 2, 15);
  return sign | (mag > 0x7b ? (saturate ? 0x7b : 0x7c) : mag);
}

/** IEEE binary16 bits of Math.fround(x), round to nearest even; overflow -> +-inf. */
export function f32ToF16Bits(x: number): number {
  return encF16(f32Bits(x), false);
}

/** bfloat16 bits of Math.fround(x), round to nearest even; overflow -> +-inf; NaN -> 0x7FC0|sign. */
export function f32ToBf16Bits(x: number): number {
  return encBf16(f32Bits(x), false);
}

/**
 * E4M3FN code of Math.fround(x), round to nearest even.
 * saturate=false (default, like PyTorch's cast): results past 448 and +-inf -> NaN (0x7F / 0xFF).
 * saturate=true: clamp to +-448 first (+-inf -> +-448). NaN -> NaN code in both modes.
 */
export function f32ToE4M3(x: number, saturate = false): number {
  return encE4M3(f32Bits(x), saturate);
}

/**
 * E5M2 code of Math.fround(x), round to nearest even.
 * saturate=false (default): overflow -> +-inf (0x7C / 0xFC); saturate=true: clamp to +-57344.
 * NaN -> 0x7F | sign.
 */
export function f32ToE5M2(x: number, saturate = false): number {
  return encE5M2(f32Bits(x), saturate);
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/**
 * Value of a code in a binary format with `ebits` exponent and `mbits` mantissa bits.
 * `ieee`: the all-ones exponent means inf (mantissa 0) / NaN (IEEE 754 §3.4; OCP E5M2).
 * Otherwise (OCP E4M3FN) only the all-ones exponent AND mantissa is NaN; the rest are finite.
 * Every value of these formats is exactly representable as a float32.
 */
function decodeFields(code: number, ebits: number, mbits: number, bias: number, ieee: boolean): number {
  const sign = (code >>> (ebits + mbits)) & 1 ? -1 : 1;
  const eMax = (1 << ebits) - 1;
  const mMax = (1 << mbits) - 1;
  const e = (code >>> mbits) & eMax;
  const m = code & mMax;
  if (e === eMax) {
    if (ieee) return m === 0 ? sign * Infinity : NaN;
    if (m === mMax) return NaN;
  }
  // Subnormal (e = 0): m * 2^(1-bias-mbits); normal: (2^mbits + m) * 2^(e-bias-mbits).
  // sign * 0 keeps the sign of zero.
  return e === 0 ? sign * m * 2 ** (1 - bias - mbits) : sign * ((1 << mbits) + m) * 2 ** (e - bias - mbits);
}

// Lookup tables, built on first use: 256 entries per FP8 format, 65,536 for f16.
let lutE4M3: Float32Array | undefined;
let lutE5M2: Float32Array | undefined;
let lutF16: Float32Array | undefined;

function buildLut(size: number, ebits: number, mbits: number, bias: number, ieee: boolean): Float32Array {
  const lut = new Float32Array(size);
  for (let c = 0; c < size; c++) lut[c] = decodeFields(c, ebits, mbits, bias, ieee);
  return lut;
}

function getLutE4M3(): Float32Array {
  return (lutE4M3 ??= buildLut(256, 4, 3, 7, false));
}
function getLutE5M2(): Float32Array {
  return (lutE5M2 ??= buildLut(256, 5, 2, 15, true));
}
function getLutF16(): Float32Array {
  return (lutF16 ??= buildLut(65536, 5, 10, 15, true));
}

/** Value of IEEE binary16 bits (low 16 bits of `bits`). */
export function f16BitsToF32(bits: number): number {
  return getLutF16()[bits & 0xffff]!;
}

/** Value of bfloat16 bits (low 16 bits of `bits`): they are the top half of the f32 pattern. */
export function bf16BitsToF32(bits: number): number {
  SCRATCH_U32[0] = (bits & 0xffff) << 16;
  return SCRATCH_F32[0]!;
}

/** Value of an E4M3FN code (low 8 bits); NaN for 0x7F / 0xFF. */
export function e4m3ToF32(code: number): number {
  return getLutE4M3()[code & 0xff]!;
}

/** Value of an E5M2 code (low 8 bits); +-inf for 0x7C / 0xFC, NaN for 0x7D..0x7F / 0xFD..0xFF. */
export function e5m2ToF32(code: number): number {
  return getLutE5M2()[code & 0xff]!;
}

// ---------------------------------------------------------------------------------------------
// Bulk codecs
// ---------------------------------------------------------------------------------------------

type Encoder = (u: number, saturate: boolean) => number;

function encoderFor(dtype: LowPrecisionFloat): Encoder {
  switch (dtype) {
    case 'f16':
      return encF16;
    case 'bf16':
      return encBf16;
    case 'f8e4m3':
      return encE4M3;
    case 'f8e5m2':
      return encE5M2;
    default:
      throw new TypeError(`unknown low-precision dtype: ${String(dtype)}`);
  }
}

function isDtype(dtype: unknown): dtype is LowPrecisionFloat {
  return dtype === 'f16' || dtype === 'bf16' || dtype === 'f8e4m3' || dtype === 'f8e5m2';
}

function is16Bit(dtype: LowPrecisionFloat): boolean {
  return dtype === 'f16' || dtype === 'bf16';
}

// One loop per format, each calling its encoder directly so the JIT can inline it (a single loop
// calling through a function-valued parameter would see four targets and inline none).
// `bits` holds f32 bit patterns.

function encodeF16Loop(bits: Uint32Array, dst: Uint16Array, n: number, sat: boolean): void {
  for (let i = 0; i < n; i++) dst[i] = encF16(bits[i]!, sat);
}
function encodeE4M3Loop(bits: Uint32Array, dst: Uint8Array, n: number, sat: boolean): void {
  for (let i = 0; i < n; i++) dst[i] = encE4M3(bits[i]!, sat);
}
function encodeE5M2Loop(bits: Uint32Array, dst: Uint8Array, n: number, sat: boolean): void {
  for (let i = 0; i < n; i++) dst[i] = encE5M2(bits[i]!, sat);
}
function encodeBf16Loop(bits: Uint32Array, dst: Uint16Array, n: number, sat: boolean): void {
  if (sat) {
    for (let i = 0; i < n; i++) dst[i] = encBf16(bits[i]!, true);
    return;
  }
  // The hottest path: plain integer rounding on the f32 pattern, sign included.
  // u + 0x7fff + lsb stays below 2^32 for every non-NaN pattern (at most 0xff807fff, for -inf).
  for (let i = 0; i < n; i++) {
    const u = bits[i]!;
    dst[i] = (u & 0x7fffffff) > 0x7f800000 ? ((u >>> 16) & 0x8000) | 0x7fc0 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
}

/** Encodes f32 bit patterns; `dst` has already been checked to be the right array type. */
function encodeBits(dtype: LowPrecisionFloat, bits: Uint32Array, dst: Uint16Array | Uint8Array, n: number, sat: boolean): void {
  switch (dtype) {
    case 'f16':
      return encodeF16Loop(bits, dst as Uint16Array, n, sat);
    case 'bf16':
      return encodeBf16Loop(bits, dst as Uint16Array, n, sat);
    case 'f8e4m3':
      return encodeE4M3Loop(bits, dst as Uint8Array, n, sat);
    case 'f8e5m2':
      return encodeE5M2Loop(bits, dst as Uint8Array, n, sat);
  }
}

/** Chunk size for sources that are not Float32Arrays: they are rounded to f32 in blocks first. */
const CHUNK = 4096;
let chunkF32: Float32Array | undefined;

/**
 * Encodes float32 values (each rounded with Math.fround first) to `dtype`: f16/bf16 bits in a
 * Uint16Array, FP8 codes in a Uint8Array. Writes into `dst` when given (it must be the matching
 * array type and at least src.length long), else allocates one. `saturate` clamps to +-max finite
 * of the format before rounding (all four formats); the default is the IEEE / PyTorch overflow
 * behaviour described at the top of this file.
 *
 * A Float32Array source is read through a Uint32Array view of its bits (no float round trip, and
 * NaN signs are kept exactly).
 */
export function encodeF32(
  dtype: LowPrecisionFloat,
  src: ArrayLike<number>,
  dst?: Uint16Array | Uint8Array,
  saturate = false,
): Uint16Array | Uint8Array {
  if (!isDtype(dtype)) throw new TypeError(`unknown low-precision dtype: ${String(dtype)}`);
  const n = src.length;
  const wide = is16Bit(dtype);
  let out: Uint16Array | Uint8Array;
  if (dst === undefined) {
    out = wide ? new Uint16Array(n) : new Uint8Array(n);
  } else {
    if (wide ? !(dst instanceof Uint16Array) : !(dst instanceof Uint8Array)) {
      throw new TypeError(`encodeF32(${dtype}): dst must be a ${wide ? 'Uint16Array' : 'Uint8Array'}`);
    }
    if (dst.length < n) throw new RangeError(`encodeF32(${dtype}): dst has ${dst.length} elements, need ${n}`);
    out = dst;
  }

  if (src instanceof Float32Array) {
    encodeBits(dtype, new Uint32Array(src.buffer, src.byteOffset, n), out, n, saturate);
  } else {
    // Any other array-like (number[], Float64Array, ...): round blocks of it to f32 (that is
    // the Math.fround step) in a scratch Float32Array, then run the same bit loops.
    const f32 = (chunkF32 ??= new Float32Array(CHUNK));
    const bits = new Uint32Array(f32.buffer);
    for (let start = 0; start < n; start += CHUNK) {
      const len = Math.min(CHUNK, n - start);
      for (let i = 0; i < len; i++) f32[i] = src[start + i]!;
      encodeBits(dtype, bits, out.subarray(start, start + len), len, saturate);
    }
  }
  return out;
}

/**
 * Decodes f16/bf16 bits (Uint16Array) or FP8 codes (Uint8Array) to float32. Writes into `dst`
 * when given (at least src.length long), else allocates one. f16 and FP8 go through lookup
 * tables; bf16 is a 16-bit shift into the f32 pattern (NaN payloads are kept bit for bit).
 */
export function decodeToF32(dtype: LowPrecisionFloat, src: Uint16Array | Uint8Array, dst?: Float32Array): Float32Array {
  const n = src.length;
  const wide = is16Bit(dtype);
  if (wide ? !(src instanceof Uint16Array) : !(src instanceof Uint8Array)) {
    throw new TypeError(`decodeToF32(${dtype}): src must be a ${wide ? 'Uint16Array' : 'Uint8Array'}`);
  }
  let out: Float32Array;
  if (dst === undefined) {
    out = new Float32Array(n);
  } else {
    if (dst.length < n) throw new RangeError(`decodeToF32(${dtype}): dst has ${dst.length} elements, need ${n}`);
    out = dst;
  }

  switch (dtype) {
    case 'bf16': {
      const outBits = new Uint32Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) outBits[i] = src[i]! << 16;
      break;
    }
    case 'f16':
      lookupLoop(getLutF16(), src, out, n);
      break;
    case 'f8e4m3':
      lookupLoop(getLutE4M3(), src, out, n);
      break;
    case 'f8e5m2':
      lookupLoop(getLutE5M2(), src, out, n);
      break;
    default:
      throw new TypeError(`unknown low-precision dtype: ${String(dtype)}`);
  }
  return out;
}

function lookupLoop(lut: Float32Array, src: Uint16Array | Uint8Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = lut[src[i]!]!;
}

/** Math.fround(x) rounded to `dtype` and back: decode(encode(x)). */
export function roundToDtype(dtype: LowPrecisionFloat, x: number, saturate = false): number {
  const code = encoderFor(dtype)(f32Bits(x), saturate);
  switch (dtype) {
    case 'f16':
      return getLutF16()[code]!;
    case 'bf16':
      return bf16BitsToF32(code);
    case 'f8e4m3':
      return getLutE4M3()[code]!;
    default:
      return getLutE5M2()[code]!;
  }
}
