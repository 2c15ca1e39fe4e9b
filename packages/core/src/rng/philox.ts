/**
 * Counter-based random numbers: Philox4x32-10 (J. K. Salmon, M. A. Moraes, R. O. Dror, D. E. Shaw,
 * "Parallel random numbers: as easy as 1, 2, 3", SC'11), as in the Random123 library.
 *
 * Every backend (CPU here, WGSL and CUDA elsewhere) implements the SAME function, so a seed gives
 * the same numbers everywhere: uniform draws bit for bit, normal draws to float rounding.
 *
 * ## The block function
 * Counter c = (c0, c1, c2, c3), key k = (k0, k1), all u32. Ten rounds; before every round but the
 * first the key is bumped: k0 += 0x9E3779B9, k1 += 0xBB67AE85 (mod 2^32). One round:
 * ```
 *   (hi0, lo0) = 0xD2511F53 * c0        (full 64-bit product, split in 32-bit halves)
 *   (hi1, lo1) = 0xCD9E8D57 * c2
 *   c' = (hi1 ^ c1 ^ k0,  lo1,  hi0 ^ c3 ^ k1,  lo0)
 * ```
 * The output is the counter after ten rounds, x = (x0, x1, x2, x3). Known answers (Random123 KAT):
 * counter 0, key 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
 *
 * ## How a random op uses it
 * A `Generator` holds a 64-bit key (the seed) and a 64-bit counter offset. A random op with N
 * elements takes attrs {key0, key1, counterLo, counterHi} (u32 numbers: key = seed, low word first;
 * counter = the current offset) and the generator then advances its offset by N. Element i (flat,
 * row-major) uses the counter (offset + i) as a 64-bit number: c0 = its low word, c1 = its high
 * word, c2 = c3 = 0; key (key0, key1). Only x0 (uniform) or x0, x1 (normal) are used.
 *
 * - uniform:  u = (x0 >>> 8) * 2^-24                 exactly representable in f32, in [0, 1)
 *             value = low + (high - low) * u, in f32 arithmetic with each operation rounded
 *             separately (low and high first rounded to f32; d = f32(high - low); p = f32(d * u);
 *             value = f32(low + p)). No fused multiply-add: CUDA writes __fadd_rn(low,
 *             __fmul_rn(__fsub_rn(high, low), u)); WGSL must keep the operations separate too.
 *             With the defaults (0, 1) the value is u itself.
 * - normal:   u1 = ((x0 >>> 8) + 1) * 2^-24            in (0, 1]   (never 0, so log is finite)
 *             u2 = (x1 >>> 8) * 2^-24                  in [0, 1)
 *             z  = sqrt(-2 ln u1) * cos(2 pi u2)        (Box-Muller, first output only)
 *             value = mean + std * z, rounded to f32 (the CPU computes in float64 and rounds
 *             once; GPUs compute in f32, so normal draws agree to float rounding).
 * - The f32 value is then rounded (nearest even) to the output dtype when that is f16, bf16 or
 *   fp8; a rounded uniform draw can therefore equal `high` in low-precision dtypes.
 *
 * The 64-bit counter offset wraps modulo 2^64 (2^64 draws are out of reach in practice).
 */
import { AttrError } from '../errors.js';

export const PHILOX_M0 = 0xd2511f53;
export const PHILOX_M1 = 0xcd9e8d57;
export const PHILOX_W0 = 0x9e3779b9;
export const PHILOX_W1 = 0xbb67ae85;
/** 2^-24: the spacing of the 24-bit uniform grid. */
export const PHILOX_UNIT = 1 / 16777216;

const TWO32 = 4294967296;

/** The high 32 bits of the 64-bit product of two u32 (16-bit halves keep every step exact, see mulHiSplit). */
export function mulHi32(a: number, b: number): number {
  return mulHiSplit(a & 0xffff, a >>> 16, b) >>> 0;
}

/**
 * The high word of (mh 2^16 + ml) * x for 16-bit halves ml, mh and a u32 x (or its int32 bit
 * pattern), as an int32 bit pattern. With t = ml xl, m1 = mh xl + hi16(t), m2 = ml xh + lo16(m1):
 * M x = (mh xh + hi16(m1) + hi16(m2)) 2^32 + (lo16(m2) 2^16 + lo16(t)). Every partial result is
 * below 2^32, so its low 32 bits (Math.imul, `| 0`) are the value itself: all int32 arithmetic, no
 * doubles, Math.floor or division (the old form's cost).
 */
function mulHiSplit(ml: number, mh: number, x: number): number {
  const xl = x & 0xffff;
  const xh = x >>> 16;
  const t = Math.imul(ml, xl);
  const m1 = (Math.imul(mh, xl) + (t >>> 16)) | 0;
  const m2 = (Math.imul(ml, xh) + (m1 & 0xffff)) | 0;
  return (Math.imul(mh, xh) + (m1 >>> 16) + (m2 >>> 16)) | 0;
}

/**
 * Philox4x32-10 of counter (c0..c3) under key (k0, k1); writes x0..x3 into `out` (u32 values).
 * Inputs are taken modulo 2^32.
 */
export function philox4x32(
  c0: number, c1: number, c2: number, c3: number, k0: number, k1: number,
  out: Uint32Array | number[] = new Uint32Array(4),
): Uint32Array | number[] {
  // int32 arithmetic on the words' bit patterns (XOR and Math.imul need no unsigned conversion);
  // `| 0` takes an input modulo 2^32 (ToInt32), as `>>> 0` does.
  // Constants as function locals: an exported module constant is loaded from its module cell at
  // every use instead of being folded into the code.
  const M0 = 0xd2511f53, M1 = 0xcd9e8d57, W0 = 0x9e3779b9, W1 = 0xbb67ae85; // PHILOX_*
  const M0_LO = M0 & 0xffff, M0_HI = M0 >>> 16, M1_LO = M1 & 0xffff, M1_HI = M1 >>> 16;
  let x0 = c0 | 0;
  let x1 = c1 | 0;
  let x2 = c2 | 0;
  let x3 = c3 | 0;
  let key0 = k0 | 0;
  let key1 = k1 | 0;
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      key0 = (key0 + W0) | 0;
      key1 = (key1 + W1) | 0;
    }
    // hi0 = mulHiSplit(M0_LO, M0_HI, x0), written out.
    let xl = x0 & 0xffff;
    let xh = x0 >>> 16;
    let t = Math.imul(M0_LO, xl);
    let m1 = (Math.imul(M0_HI, xl) + (t >>> 16)) | 0;
    let m2 = (Math.imul(M0_LO, xh) + (m1 & 0xffff)) | 0;
    const hi0 = (Math.imul(M0_HI, xh) + (m1 >>> 16) + (m2 >>> 16)) | 0;
    const lo0 = Math.imul(M0, x0);
    xl = x2 & 0xffff;
    xh = x2 >>> 16;
    t = Math.imul(M1_LO, xl);
    m1 = (Math.imul(M1_HI, xl) + (t >>> 16)) | 0;
    m2 = (Math.imul(M1_LO, xh) + (m1 & 0xffff)) | 0;
    const hi1 = (Math.imul(M1_HI, xh) + (m1 >>> 16) + (m2 >>> 16)) | 0;
    const lo1 = Math.imul(M1, x2);
    x0 = hi1 ^ x1 ^ key0;
    x1 = lo1;
    x2 = hi0 ^ x3 ^ key1;
    x3 = lo0;
  }
  out[0] = x0 >>> 0;
  out[1] = x1 >>> 0;
  out[2] = x2 >>> 0;
  out[3] = x3 >>> 0;
  return out;
}

/** The attributes every random op takes: the key and the counter offset of its first element. */
export interface PhiloxAttrs {
  key0: number;
  key1: number;
  counterLo: number;
  counterHi: number;
}

/** Attribute schema fragment for random ops (u32 words). */
export const PHILOX_ATTR_SPECS = {
  key0: { kind: 'int', min: 0, max: 0xffffffff },
  key1: { kind: 'int', min: 0, max: 0xffffffff },
  counterLo: { kind: 'int', min: 0, max: 0xffffffff },
  counterHi: { kind: 'int', min: 0, max: 0xffffffff },
} as const;

/** Philox output x0, x1 (u32) for element i of a random op (counter = offset + i as 64 bits). */
function block(a: PhiloxAttrs, i: number, out: Uint32Array): Uint32Array {
  const s = a.counterLo + i; // exact: < 2^32 + 2^53
  const c0 = s % TWO32;
  const c1 = (a.counterHi + Math.floor(s / TWO32)) % TWO32;
  philox4x32(c0, c1, 0, 0, a.key0, a.key1, out);
  return out;
}

/** The uniform u in [0, 1) of element i (before scaling to [low, high)). */
export function philoxUnitUniform(a: PhiloxAttrs, i: number, scratch = new Uint32Array(4)): number {
  return (block(a, i, scratch)[0]! >>> 8) * PHILOX_UNIT;
}

/** Fills `out` with uniform draws in f32 for elements first..first+out.length-1 (see the header). */
export function philoxUniformF32(a: PhiloxAttrs, low: number, high: number, out: Float32Array, first = 0): Float32Array {
  const lo = Math.fround(low);
  return fillF32(a, first, out, false, lo, Math.fround(Math.fround(high) - lo));
}

/** Fills `out` with normal draws (Box-Muller, see the header), rounded once to f32. */
export function philoxNormalF32(a: PhiloxAttrs, mean: number, std: number, out: Float32Array, first = 0): Float32Array {
  return fillF32(a, first, out, true, mean, std);
}

/**
 * The loop of both fills, with the ten rounds written out in it (the same arithmetic as
 * philox4x32): one function the JIT compiles whole; per-element helper calls measured up to 2x
 * slower. Uniform: p = low, q = high - low (f32); normal: p = mean, q = std.
 */
function fillF32(a: PhiloxAttrs, first: number, out: Float32Array, normal: boolean, p: number, q: number): Float32Array {
  const M0 = 0xd2511f53, M1 = 0xcd9e8d57, W0 = 0x9e3779b9, W1 = 0xbb67ae85; // PHILOX_*
  const M0_LO = M0 & 0xffff, M0_HI = M0 >>> 16, M1_LO = M1 & 0xffff, M1_HI = M1 >>> 16;
  const UNIT = 1 / 16777216; // PHILOX_UNIT
  const k0 = a.key0 | 0;
  const k1 = a.key1 | 0;
  const twoPi = 2 * Math.PI;
  const n = out.length;
  // The 64-bit counter offset + first as two words (int32 bit patterns), stepped by one per element
  // with the carry into the high word (no double modulo: V8's is a C call per element).
  const start = a.counterLo + first; // exact below 2^53
  let c0 = start | 0; // ToInt32: modulo 2^32
  let c1 = (a.counterHi + Math.floor(start / TWO32)) | 0;
  for (let j = 0; j < n; j++) {
    let x0 = c0;
    let x1 = c1;
    c0 = (c0 + 1) | 0;
    if (c0 === 0) c1 = (c1 + 1) | 0;
    let x2 = 0;
    let x3 = 0;
    let key0 = k0;
    let key1 = k1;
    for (let r = 0; r < 10; r++) {
      if (r > 0) {
        key0 = (key0 + W0) | 0;
        key1 = (key1 + W1) | 0;
      }
      // hi0 = mulHiSplit(M0_LO, M0_HI, x0), written out.
      let xl = x0 & 0xffff;
      let xh = x0 >>> 16;
      let t = Math.imul(M0_LO, xl);
      let m1 = (Math.imul(M0_HI, xl) + (t >>> 16)) | 0;
      let m2 = (Math.imul(M0_LO, xh) + (m1 & 0xffff)) | 0;
      const hi0 = (Math.imul(M0_HI, xh) + (m1 >>> 16) + (m2 >>> 16)) | 0;
      const lo0 = Math.imul(M0, x0);
      xl = x2 & 0xffff;
      xh = x2 >>> 16;
      t = Math.imul(M1_LO, xl);
      m1 = (Math.imul(M1_HI, xl) + (t >>> 16)) | 0;
      m2 = (Math.imul(M1_LO, xh) + (m1 & 0xffff)) | 0;
      const hi1 = (Math.imul(M1_HI, xh) + (m1 >>> 16) + (m2 >>> 16)) | 0;
      const lo1 = Math.imul(M1, x2);
      x0 = hi1 ^ x1 ^ key0;
      x1 = lo1;
      x2 = hi0 ^ x3 ^ key1;
      x3 = lo0;
    }
    if (normal) {
      const u1 = ((x0 >>> 8) + 1) * UNIT;
      const u2 = (x1 >>> 8) * UNIT;
      out[j] = p + q * (Math.sqrt(-2 * Math.log(u1)) * Math.cos(twoPi * u2));
    } else {
      // Each f32 operation is done in float64 and rounded to f32; for +, - and * of f32 operands
      // that double rounding equals a single f32 rounding (53 >= 2*24 + 2), so this is exact f32.
      out[j] = p + Math.fround(q * ((x0 >>> 8) * UNIT)); // the store rounds the sum to f32
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Generators

const U64 = (1n << 64n) - 1n;

function seedToBigInt(seed: number | bigint, what: string): bigint {
  if (typeof seed === 'bigint') return BigInt.asUintN(64, seed);
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
    throw new AttrError(`${what}: expected a seed that is a safe integer or a bigint, got ${typeof seed === 'number' ? seed : typeof seed}`);
  }
  // Negative seeds wrap modulo 2^64 (two's complement), as for a bigint.
  return BigInt.asUintN(64, BigInt(seed));
}

/** A generator's state: key (the seed) and counter offset as u32 words, low word first. JSON-safe. */
export interface GeneratorState {
  readonly key: readonly [number, number];
  readonly offset: readonly [number, number];
}

const lo32 = (x: bigint) => Number(x & 0xffffffffn);
const hi32 = (x: bigint) => Number((x >> 32n) & 0xffffffffn);

/**
 * A Philox stream: a 64-bit key (from the seed) and a 64-bit counter offset. Random ops take their
 * counters from a generator (the default one unless given), which then advances past them, so
 * successive ops never reuse a counter and a seed reproduces the same sequence on every backend.
 */
export class Generator {
  #key: bigint;
  #offset = 0n;

  constructor(seed: number | bigint) {
    this.#key = seedToBigInt(seed, 'Generator');
  }

  /** The 64-bit key (the seed modulo 2^64). */
  get seed(): bigint {
    return this.#key;
  }

  /** Counters consumed so far (modulo 2^64). */
  get offset(): bigint {
    return this.#offset;
  }

  /** Re-seeds: new key, offset back to 0. */
  manualSeed(seed: number | bigint): this {
    this.#key = seedToBigInt(seed, 'manualSeed');
    this.#offset = 0n;
    return this;
  }

  /** The attrs for the next `count` elements, without advancing. */
  peek(): PhiloxAttrs {
    return { key0: lo32(this.#key), key1: hi32(this.#key), counterLo: lo32(this.#offset), counterHi: hi32(this.#offset) };
  }

  /** Moves the offset forward by `count` counters. */
  advance(count: number | bigint): this {
    const n = typeof count === 'bigint' ? count : Number.isSafeInteger(count) && count >= 0 ? BigInt(count) : -1n;
    if (n < 0n) throw new AttrError(`Generator.advance: expected a non-negative integer count, got ${count}`);
    this.#offset = (this.#offset + n) & U64;
    return this;
  }

  /** The attrs for the next `count` elements, then advances past them. */
  draw(count: number | bigint): PhiloxAttrs {
    const a = this.peek();
    this.advance(count);
    return a;
  }

  /** Key and offset as u32 words (for checkpoints). */
  state(): GeneratorState {
    return { key: [lo32(this.#key), hi32(this.#key)], offset: [lo32(this.#offset), hi32(this.#offset)] };
  }

  /** Restores a state from `state()`. */
  setState(state: GeneratorState): this {
    const word = (v: unknown, what: string): bigint => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new AttrError(`Generator.setState: ${what} must be a u32 integer, got ${JSON.stringify(v)}`);
      }
      return BigInt(v);
    };
    if (!state || !Array.isArray(state.key) || !Array.isArray(state.offset) || state.key.length !== 2 || state.offset.length !== 2) {
      throw new AttrError(`Generator.setState: expected { key: [lo, hi], offset: [lo, hi] }, got ${JSON.stringify(state)}`);
    }
    const key = word(state.key[0], 'key[0]') | (word(state.key[1], 'key[1]') << 32n);
    const offset = word(state.offset[0], 'offset[0]') | (word(state.offset[1], 'offset[1]') << 32n);
    this.#key = key;
    this.#offset = offset;
    return this;
  }

  /** An independent copy with the same key and offset. */
  clone(): Generator {
    return new Generator(this.#key).setState(this.state());
  }
}

/** The seed of the default generator before any manualSeed (fixed, so programs are reproducible). */
export const DEFAULT_SEED = 67280421310721n;

// The default generator lives on globalThis (like the op registries) so that every copy of this
// module draws from one stream.
const GEN_KEY = Symbol.for('@ring-linear/core/default-generator');
type GenHolder = typeof globalThis & { [GEN_KEY]?: Generator };

/** The generator random ops use when none is given. */
export function getDefaultGenerator(): Generator {
  return ((globalThis as GenHolder)[GEN_KEY] ??= new Generator(DEFAULT_SEED));
}

/** Seeds the default generator (offset back to 0); returns it. */
export function manualSeed(seed: number | bigint): Generator {
  return getDefaultGenerator().manualSeed(seed);
}
