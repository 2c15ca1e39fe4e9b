// Exhaustive tests for the bit-exact float codecs in src/dtype/codecs.ts.
//
// The oracles used here are independent of the implementation:
//   - a float64 formula for every code's value (sign * 2^(e-bias) * (1 + m/2^mbits), subnormals,
//     specials), written below from the format definitions (IEEE 754 §3.4, OCP OFP8 §4);
//   - PyTorch's own decode table and casts (fixtures/codecs, see its README.md);
//   - for rounding, the midpoints between neighbouring representable values, computed in float64,
//     together with the float32 neighbours on either side (IEEE 754 §4.3.1 roundTiesToEven).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  E4M3_MAX,
  E5M2_MAX,
  bf16BitsToF32,
  decodeToF32,
  e4m3ToF32,
  e5m2ToF32,
  encodeF32,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToE4M3,
  f32ToE5M2,
  f32ToF16Bits,
  roundToDtype,
  type LowPrecisionFloat,
} from '../src/dtype/codecs.js';

// ---------------------------------------------------------------------------------------------
// Format descriptions and the reference value formula
// ---------------------------------------------------------------------------------------------

interface Fmt {
  dtype: LowPrecisionFloat;
  ebits: number;
  mbits: number;
  bias: number;
  /** IEEE-style specials (all-ones exponent = inf/NaN); false = OCP E4M3FN (only S.1111.111 is NaN). */
  ieee: boolean;
  /** Number of codes (2^8 or 2^16). */
  size: number;
  /** The public scalar encoder (non-saturating for f16/bf16, which take no flag). */
  encodeScalar: (x: number, saturate: boolean) => number;
  decodeScalar: (code: number) => number;
  /** PyTorch cast file and its element width in bytes. */
  castFile: string;
  /** Largest finite value, as given by the spec / exports (checked against the formula). */
  maxValue: number;
}

const FORMATS: Fmt[] = [
  {
    dtype: 'f16',
    ebits: 5,
    mbits: 10,
    bias: 15,
    ieee: true,
    size: 1 << 16,
    encodeScalar: (x) => f32ToF16Bits(x),
    decodeScalar: f16BitsToF32,
    castFile: 'f16_cast.bin',
    maxValue: 65504,
  },
  {
    dtype: 'bf16',
    ebits: 8,
    mbits: 7,
    bias: 127,
    ieee: true,
    size: 1 << 16,
    encodeScalar: (x) => f32ToBf16Bits(x),
    decodeScalar: bf16BitsToF32,
    castFile: 'bf16_cast.bin',
    maxValue: (2 - 2 ** -7) * 2 ** 127,
  },
  {
    dtype: 'f8e4m3',
    ebits: 4,
    mbits: 3,
    bias: 7,
    ieee: false,
    size: 256,
    encodeScalar: (x, sat) => f32ToE4M3(x, sat),
    decodeScalar: e4m3ToF32,
    castFile: 'e4m3fn_cast.bin',
    maxValue: E4M3_MAX,
  },
  {
    dtype: 'f8e5m2',
    ebits: 5,
    mbits: 2,
    bias: 15,
    ieee: true,
    size: 256,
    encodeScalar: (x, sat) => f32ToE5M2(x, sat),
    decodeScalar: e5m2ToF32,
    castFile: 'e5m2_cast.bin',
    maxValue: E5M2_MAX,
  },
];

const signBit = (f: Fmt): number => 1 << (f.ebits + f.mbits);
const expField = (f: Fmt, code: number): number => (code >>> f.mbits) & ((1 << f.ebits) - 1);
const mantField = (f: Fmt, code: number): number => code & ((1 << f.mbits) - 1);

/**
 * Value of a magnitude code read as a plain binary float, ignoring special encodings, so the code
 * just past the largest finite one gives the "next value" the format would have had
 * (2^16 for f16, 480 for E4M3FN).
 */
function rawMagnitude(f: Fmt, mag: number): number {
  const e = expField(f, mag);
  const m = mantField(f, mag);
  return e === 0 ? 2 ** (1 - f.bias) * (m / 2 ** f.mbits) : 2 ** (e - f.bias) * (1 + m / 2 ** f.mbits);
}

/** Reference decoder in float64. */
function refDecode(f: Fmt, code: number): number {
  const neg = (code & signBit(f)) !== 0;
  const e = expField(f, code);
  const m = mantField(f, code);
  const eAll = (1 << f.ebits) - 1;
  const mAll = (1 << f.mbits) - 1;
  let v: number;
  if (f.ieee && e === eAll) v = m === 0 ? Infinity : NaN;
  else if (!f.ieee && e === eAll && m === mAll) v = NaN;
  else v = rawMagnitude(f, code & (signBit(f) - 1));
  return neg ? -v : v;
}

/** Largest finite magnitude code, from the format definition. */
function maxMag(f: Fmt): number {
  const mAll = (1 << f.mbits) - 1;
  return f.ieee ? (((1 << f.ebits) - 2) << f.mbits) | mAll : (((1 << f.ebits) - 1) << f.mbits) | (mAll - 1);
}

/**
 * Magnitude code written on non-saturating overflow: the code just past the max, which is +inf
 * for the IEEE-like formats and the NaN S.1111.111 for E4M3FN.
 */
const overflowMag = (f: Fmt): number => maxMag(f) + 1;

const isNaNCode = (f: Fmt, code: number): boolean => Number.isNaN(refDecode(f, code));

/**
 * Scalar encode in either mode. f16 and bf16 have only the non-saturating scalar; saturation is
 * derived from it here (rounding is monotone and +-max is representable, so clamping before
 * rounding equals replacing an infinite result with +-max).
 */
function scalarEncode(f: Fmt, x: number, sat: boolean): number {
  const code = f.encodeScalar(x, sat);
  if (sat && (f.dtype === 'f16' || f.dtype === 'bf16') && (code & (signBit(f) - 1)) === overflowMag(f)) {
    return (code & signBit(f)) | maxMag(f);
  }
  return code;
}

/** Same value, treating every NaN as equal and keeping -0 apart from +0. */
const sameValue = (a: number, b: number): boolean => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));

const hex = (v: number, width = 4): string => '0x' + v.toString(16).padStart(width, '0');

/** Collects mismatches and renders the first few for the assertion message. */
class Mismatches {
  count = 0;
  private readonly examples: string[] = [];
  constructor(private readonly label: string) {}
  add(what: string): void {
    this.count++;
    if (this.examples.length < 8) this.examples.push(what);
  }
  message(): string {
    return `${this.label}: ${this.count} mismatches${this.examples.length ? '\n  ' + this.examples.join('\n  ') : ''}`;
  }
}

// ---------------------------------------------------------------------------------------------
// float32 bit helpers
// ---------------------------------------------------------------------------------------------

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
const bitsOf = (x: number): number => ((F32[0] = x), U32[0]!);
const fromBits = (u: number): number => ((U32[0] = u >>> 0), F32[0]!);
/** Next float32 above / below a positive finite float32. */
const nextUp = (x: number): number => fromBits(bitsOf(x) + 1);
const nextDown = (x: number): number => fromBits(bitsOf(x) - 1);
/** Largest float32 strictly below / smallest strictly above a positive float64 (Math.fround rounds to nearest). */
const f32Below = (m: number): number => (Math.fround(m) < m ? Math.fround(m) : nextDown(Math.fround(m)));
const f32Above = (m: number): number => (Math.fround(m) > m ? Math.fround(m) : nextUp(Math.fround(m)));

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(`./fixtures/codecs/${name}`, import.meta.url)));
}

/** Little-endian uint32 / uint16 words of a fixture, independent of the platform's byte order. */
function readLE(name: string, width: 1 | 2 | 4): number[] {
  const bytes = fixture(name);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / width;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = width === 1 ? view.getUint8(i) : width === 2 ? view.getUint16(2 * i, true) : view.getUint32(4 * i, true);
  return out;
}

const INPUT_BITS = Uint32Array.from(readLE('inputs_f32.bin', 4));
const INPUTS = new Float32Array(INPUT_BITS.buffer);
const castWidth = (f: Fmt): 1 | 2 => (f.size === 256 ? 1 : 2);

// ---------------------------------------------------------------------------------------------
// Seeded randomness (fresh seed per run; set CODEC_SEED to replay one)
// ---------------------------------------------------------------------------------------------

const SEED = process.env['CODEC_SEED'] !== undefined ? Number(process.env['CODEC_SEED']) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
console.log(`codecs.test.ts: random seed ${SEED} (replay with CODEC_SEED=${SEED})`);

/** mulberry32: small, fast, good enough to spread test inputs. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

// =============================================================================================
// Tests
// =============================================================================================

describe('format constants', () => {
  it('max values follow from the format definitions', () => {
    for (const f of FORMATS) expect(rawMagnitude(f, maxMag(f)), f.dtype).toBe(f.maxValue);
    expect(E4M3_MAX).toBe(448);
    expect(E5M2_MAX).toBe(57344);
    expect(FORMATS[0]!.maxValue).toBe(65504);
    expect(FORMATS[1]!.maxValue).toBe(3.3895313892515355e38);
  });
});

describe('1. FP8: every code', () => {
  const table = JSON.parse(readFileSync(new URL('./fixtures/codecs/fp8_decode.json', import.meta.url), 'utf8')) as Record<
    string,
    (number | string | null)[]
  >;
  const fromJson = (v: number | string | null): number => (v === null ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : (v as number));

  for (const [f, key] of [
    [FORMATS[2]!, 'e4m3fn'],
    [FORMATS[3]!, 'e5m2'],
  ] as const) {
    it(`${f.dtype}: decode of all 256 codes equals PyTorch's table and the reference formula`, () => {
      const expected = table[key]!.map(fromJson);
      expect(expected).toHaveLength(256);
      const bad = new Mismatches(`${f.dtype} decode`);
      for (let c = 0; c < 256; c++) {
        const got = f.decodeScalar(c);
        if (!sameValue(got, expected[c]!)) bad.add(`code ${hex(c, 2)}: got ${got}, PyTorch ${expected[c]}`);
        if (!sameValue(refDecode(f, c), expected[c]!)) bad.add(`code ${hex(c, 2)}: formula ${refDecode(f, c)}, PyTorch ${expected[c]}`);
      }
      expect(bad.count, bad.message()).toBe(0);
      // The table really contains the special codes we think it does.
      expect(Object.is(expected[0x80], -0)).toBe(true);
      expect(expected.filter(Number.isNaN)).toHaveLength(f.ieee ? 6 : 2);
    });

    it(`${f.dtype}: decode -> encode gives back every non-NaN code, in both modes`, () => {
      const bad = new Mismatches(`${f.dtype} round trip`);
      let checked = 0;
      for (const sat of [false, true]) {
        for (let c = 0; c < 256; c++) {
          const v = f.decodeScalar(c);
          if (Number.isNaN(v)) continue;
          // Saturating mode clamps infinities to +-max by definition.
          const want = sat && !Number.isFinite(v) ? (c & 0x80) | maxMag(f) : c;
          const got = f.encodeScalar(v, sat);
          checked++;
          if (got !== want) bad.add(`sat=${sat} code ${hex(c, 2)} (${v}) -> ${hex(got, 2)}, want ${hex(want, 2)}`);
        }
      }
      expect(bad.count, bad.message()).toBe(0);
      expect(checked).toBe(f.ieee ? 2 * 250 : 2 * 254);
      expect(f.encodeScalar(0, false)).toBe(0x00);
      expect(f.encodeScalar(-0, false)).toBe(0x80);
      expect(f.encodeScalar(-0, true)).toBe(0x80);
    });
  }
});

describe('2. f16 / bf16: every 16-bit code', () => {
  for (const f of FORMATS.slice(0, 2)) {
    it(`${f.dtype}: decode of all 65,536 codes equals the float64 formula`, () => {
      const bad = new Mismatches(`${f.dtype} decode`);
      for (let c = 0; c < 65536; c++) {
        const got = f.decodeScalar(c);
        const want = refDecode(f, c);
        if (!sameValue(got, want)) bad.add(`code ${hex(c)}: got ${got}, want ${want}`);
      }
      expect(bad.count, bad.message()).toBe(0);
    });

    it(`${f.dtype}: decode -> encode gives back every non-NaN code (scalar and bulk, both modes)`, () => {
      const bad = new Mismatches(`${f.dtype} round trip`);
      const values: number[] = [];
      const codes: number[] = [];
      for (let c = 0; c < 65536; c++) {
        const v = f.decodeScalar(c);
        if (Number.isNaN(v)) continue;
        values.push(v);
        codes.push(c);
        const got = f.encodeScalar(v, false);
        if (got !== c) bad.add(`code ${hex(c)} (${v}) -> ${hex(got)}`);
      }
      expect(codes).toHaveLength(65536 - 2 * ((1 << f.mbits) - 1));
      for (const sat of [false, true]) {
        const out = encodeF32(f.dtype, Float32Array.from(values), undefined, sat);
        for (let i = 0; i < codes.length; i++) {
          const c = codes[i]!;
          const want = sat && !Number.isFinite(values[i]!) ? (c & 0x8000) | maxMag(f) : c;
          if (out[i] !== want) bad.add(`bulk sat=${sat} code ${hex(c)} -> ${hex(out[i]!)}, want ${hex(want)}`);
        }
      }
      expect(bad.count, bad.message()).toBe(0);
    });
  }

  it('f16 decode agrees with Float16Array when the runtime has one', () => {
    const F16 = (globalThis as { Float16Array?: new (buf: ArrayBuffer) => ArrayLike<number> }).Float16Array;
    if (F16 === undefined) return; // Node 20 has none; the formula above is the oracle then.
    const bits = new Uint16Array(65536).map((_, i) => i);
    const native = new F16(bits.buffer);
    const ours = decodeToF32('f16', bits);
    for (let c = 0; c < 65536; c++) expect(sameValue(ours[c]!, native[c]!), hex(c)).toBe(true);
  });
});

describe('3. rounding at every boundary between neighbouring values', () => {
  /**
   * For each pair of adjacent finite magnitudes (a = code k, b = code k+1), including the largest
   * finite value against the overflow threshold (b = the value the code past max would have had),
   * build the float64 midpoint m and the float32 values one ulp either side of it, and say what
   * each must round to. Mirrored to the negative side.
   */
  function boundaryCases(f: Fmt, sat: boolean): { inputs: Float32Array; want: number[]; ties: number } {
    const inputs: number[] = [];
    const want: number[] = [];
    const top = maxMag(f);
    const resolve = (mag: number): number => (mag > top ? (sat ? top : overflowMag(f)) : mag);
    let ties = 0;
    for (let k = 0; k <= top; k++) {
      const a = rawMagnitude(f, k);
      const b = rawMagnitude(f, k + 1);
      const m = (a + b) / 2;
      // The float32 values just below and just above m (m itself excluded), and what they round to.
      const cases: [number, number][] = [
        [f32Below(m), k],
        [f32Above(m), k + 1],
      ];
      // The midpoint of two values of these formats needs one more mantissa bit than the format
      // has, so it always fits in float32 (asserted below); test the tie itself when it does.
      if (Math.fround(m) === m) {
        ties++;
        // Ties go to the even code: the one whose mantissa LSB (= code LSB) is 0.
        cases.push([m, k % 2 === 0 ? k : k + 1]);
      }
      for (const [x, mag] of cases) {
        inputs.push(x, -x);
        want.push(resolve(mag), signBit(f) | resolve(mag));
      }
    }
    return { inputs: Float32Array.from(inputs), want, ties };
  }

  for (const f of FORMATS) {
    for (const sat of [false, true]) {
      it(`${f.dtype} ${sat ? 'saturating' : 'non-saturating'}: below -> lower, above -> upper, tie -> even`, () => {
        const { inputs, want, ties } = boundaryCases(f, sat);
        const pairs = maxMag(f) + 1;
        // Every midpoint is a float32, so every pair contributes a tie.
        expect(ties).toBe(pairs);
        expect(inputs.length).toBe(pairs * 6);

        const bad = new Mismatches(`${f.dtype} sat=${sat} boundaries`);
        const bulkBits = encodeF32(f.dtype, inputs, undefined, sat);
        const bulkValues = encodeF32(f.dtype, Array.from(inputs), undefined, sat);
        for (let i = 0; i < inputs.length; i++) {
          const x = inputs[i]!;
          const w = want[i]!;
          const s = scalarEncode(f, x, sat);
          if (s !== w) bad.add(`scalar ${x} (f32 ${hex(bitsOf(x), 8)}) -> ${hex(s)}, want ${hex(w)}`);
          if (bulkBits[i] !== w) bad.add(`bulk(Float32Array) ${x} -> ${hex(bulkBits[i]!)}, want ${hex(w)}`);
          if (bulkValues[i] !== w) bad.add(`bulk(number[]) ${x} -> ${hex(bulkValues[i]!)}, want ${hex(w)}`);
        }
        expect(bad.count, bad.message()).toBe(0);
      });
    }

    it(`${f.dtype}: the overflow threshold behaves as specified`, () => {
      const top = maxMag(f);
      const max = rawMagnitude(f, top);
      const threshold = (max + rawMagnitude(f, top + 1)) / 2; // midpoint between max and the next step
      const inf = f.ieee ? overflowMag(f) : -1;
      for (const sign of [1, -1]) {
        const sb = sign < 0 ? signBit(f) : 0;
        // Just below the threshold: max in both modes.
        expect(scalarEncode(f, sign * nextDown(threshold), false)).toBe(sb | top);
        expect(scalarEncode(f, sign * nextDown(threshold), true)).toBe(sb | top);
        // Beyond: saturating gives max, non-saturating NaN (E4M3FN) or inf (the others).
        const beyond = sign * nextUp(threshold);
        expect(scalarEncode(f, beyond, true)).toBe(sb | top);
        const nonSat = scalarEncode(f, beyond, false);
        if (f.ieee) expect(nonSat).toBe(sb | inf);
        else expect(nonSat).toBe(sb | 0x7f);
        // Infinity in: saturating -> max; non-saturating -> inf, or NaN for E4M3FN.
        expect(scalarEncode(f, sign * Infinity, true)).toBe(sb | top);
        expect(scalarEncode(f, sign * Infinity, false)).toBe(f.ieee ? sb | inf : sb | 0x7f);
        // roundToDtype in the same terms.
        expect(roundToDtype(f.dtype, sign * nextUp(threshold), true)).toBe(sign * max);
        const r = roundToDtype(f.dtype, sign * nextUp(threshold), false);
        if (f.ieee) expect(r).toBe(sign * Infinity);
        else expect(r).toBeNaN();
      }
      // The exact tie at the threshold goes to the even code: 448 for E4M3FN (0x7E is even),
      // but the overflow code for the IEEE formats (their max has an all-ones mantissa).
      if (!f.ieee) {
        expect(threshold).toBe(464);
        expect(f32ToE4M3(464)).toBe(0x7e);
        expect(f32ToE4M3(-464)).toBe(0xfe);
      } else {
        expect(scalarEncode(f, threshold, false)).toBe(inf);
        expect(scalarEncode(f, threshold, true)).toBe(top);
      }
    });
  }
});

describe('4. PyTorch casts of 28,014 float32 inputs', () => {
  it('the fixture has the documented size', () => {
    expect(INPUTS.length).toBe(28014);
    for (const f of FORMATS) expect(fixture(f.castFile).byteLength, f.castFile).toBe(28014 * castWidth(f));
  });

  for (const f of FORMATS) {
    const expected = readLE(f.castFile, castWidth(f));

    it(`${f.dtype} non-saturating: every input matches (NaN codes compared by "is NaN")`, () => {
      const bad = new Mismatches(`${f.dtype} vs PyTorch (${f.castFile})`);
      const bulk = encodeF32(f.dtype, INPUTS);
      for (let i = 0; i < INPUTS.length; i++) {
        const want = expected[i]!;
        for (const [how, got] of [
          ['scalar', scalarEncode(f, INPUTS[i]!, false)],
          ['bulk', bulk[i]!],
        ] as const) {
          const ok = isNaNCode(f, want) ? isNaNCode(f, got) : got === want;
          if (!ok) bad.add(`${how} #${i} x=${INPUTS[i]} (${hex(INPUT_BITS[i]!, 8)}): got ${hex(got)}, PyTorch ${hex(want)}`);
        }
      }
      expect(bad.count, bad.message()).toBe(0);
    });

    it(`${f.dtype} saturating: matches PyTorch's cast of the input clamped to +-max`, () => {
      // PyTorch's cast of clamp(x): the file's entry for x when clamping changes nothing, else
      // the file's entry for the input +-max itself where the vectors contain it, else the
      // max code (+-max is representable, so any correct cast maps it to its own code).
      const indexOf = new Map<number, number>();
      for (let i = 0; i < INPUTS.length; i++) if (!indexOf.has(INPUT_BITS[i]!)) indexOf.set(INPUT_BITS[i]!, i);
      const max = f.maxValue;
      const castOfClamped = (x: number, i: number): number => {
        if (Number.isNaN(x) || Math.abs(x) <= max) return expected[i]!;
        const j = indexOf.get(bitsOf(Math.sign(x) * max));
        return j !== undefined ? expected[j]! : (x < 0 ? signBit(f) : 0) | maxMag(f);
      };
      const bad = new Mismatches(`${f.dtype} saturating vs PyTorch (${f.castFile})`);
      const bulk = encodeF32(f.dtype, INPUTS, undefined, true);
      let clamped = 0;
      for (let i = 0; i < INPUTS.length; i++) {
        const x = INPUTS[i]!;
        if (Math.abs(x) > max) clamped++;
        const want = castOfClamped(x, i);
        const clampedX = Number.isNaN(x) ? x : Math.min(max, Math.max(-max, x));
        for (const [how, got] of [
          ['scalar', scalarEncode(f, x, true)],
          ['scalar(clamped input)', scalarEncode(f, clampedX, true)],
          ['bulk', bulk[i]!],
        ] as const) {
          const ok = isNaNCode(f, want) ? isNaNCode(f, got) : got === want;
          if (!ok) bad.add(`${how} #${i} x=${x}: got ${hex(got)}, want ${hex(want)}`);
        }
      }
      expect(bad.count, bad.message()).toBe(0);
      expect(clamped, 'the vectors include values beyond the range').toBeGreaterThan(0);
    });
  }
});

describe('5. bulk codecs equal the scalar ones', () => {
  // 28,014 vector inputs + random bit patterns (every class of float32: NaNs, infinities,
  // denormals) + random float64 values over 2^-30..2^20 that are not float32s (the fround step).
  const rand = rng(SEED);
  const randomBits = new Uint32Array(40000).map(() => (rand() * 2 ** 32) >>> 0);
  const randomF64 = Array.from({ length: 40000 }, () => (rand() < 0.5 ? -1 : 1) * 2 ** (rand() * 50 - 30) * (1 + rand()));
  const f32Inputs = new Float32Array(INPUTS.length + randomBits.length);
  f32Inputs.set(INPUTS);
  new Uint32Array(f32Inputs.buffer).set(randomBits, INPUTS.length);

  for (const f of FORMATS) {
    for (const sat of [false, true]) {
      it(`${f.dtype} sat=${sat}: Float32Array, number[], Float64Array and offset views`, () => {
        const bad = new Mismatches(`${f.dtype} sat=${sat} bulk vs scalar`);
        const check = (how: string, xs: ArrayLike<number>, got: ArrayLike<number>): void => {
          expect(got.length, how).toBe(xs.length);
          for (let i = 0; i < xs.length; i++) {
            const want = scalarEncode(f, xs[i]!, sat);
            const g = got[i]!;
            // NaN signs through a JS number are engine-specific; NaN codes compare by "is NaN".
            const ok = isNaNCode(f, want) ? isNaNCode(f, g) : g === want;
            if (!ok) bad.add(`${how} #${i} x=${xs[i]}: bulk ${hex(g)}, scalar ${hex(want)}`);
          }
        };
        check('Float32Array', f32Inputs, encodeF32(f.dtype, f32Inputs, undefined, sat));
        check('number[]', randomF64, encodeF32(f.dtype, randomF64, undefined, sat));
        const f64 = Float64Array.from(randomF64);
        check('Float64Array', f64, encodeF32(f.dtype, f64, undefined, sat));
        // A view that starts at an odd element, written into a larger caller-provided dst.
        const view = f32Inputs.subarray(3, 20003);
        const dst = f.size === 256 ? new Uint8Array(view.length + 5) : new Uint16Array(view.length + 5);
        dst.fill(0xab);
        const ret = encodeF32(f.dtype, view, dst, sat);
        expect(ret).toBe(dst);
        check('subarray view', view, dst.subarray(0, view.length));
        expect(Array.from(dst.subarray(view.length)), 'dst tail untouched').toEqual([0xab, 0xab, 0xab, 0xab, 0xab]);
        // roundToDtype is decode(encode(x)).
        for (let i = 0; i < f32Inputs.length; i += 7) {
          const x = f32Inputs[i]!;
          const r = roundToDtype(f.dtype, x, sat);
          const want = f.decodeScalar(scalarEncode(f, x, sat));
          if (!sameValue(r, want)) bad.add(`roundToDtype(${x}) = ${r}, want ${want}`);
        }
        expect(bad.count, bad.message()).toBe(0);
      });
    }

    it(`${f.dtype}: decodeToF32 over all ${f.size} codes equals the scalar decoder`, () => {
      const codes = f.size === 256 ? new Uint8Array(256) : new Uint16Array(65536);
      for (let c = 0; c < f.size; c++) codes[c] = c;
      const out = decodeToF32(f.dtype, codes);
      const into = new Float32Array(f.size + 3).fill(7);
      expect(decodeToF32(f.dtype, codes, into)).toBe(into);
      const bad = new Mismatches(`${f.dtype} decodeToF32`);
      for (let c = 0; c < f.size; c++) {
        const want = f.decodeScalar(c);
        if (!sameValue(out[c]!, want)) bad.add(`${hex(c)}: ${out[c]} vs ${want}`);
        if (!sameValue(into[c]!, want)) bad.add(`${hex(c)} (dst): ${into[c]} vs ${want}`);
      }
      expect(bad.count, bad.message()).toBe(0);
      expect(Array.from(into.subarray(f.size))).toEqual([7, 7, 7]);
    });
  }

  it('rejects mismatched storage arrays', () => {
    expect(() => encodeF32('f16', [1, 2], new Uint8Array(2))).toThrow(TypeError);
    expect(() => encodeF32('f8e4m3', [1, 2], new Uint16Array(2))).toThrow(TypeError);
    expect(() => encodeF32('bf16', [1, 2], new Uint16Array(1))).toThrow(RangeError);
    expect(() => decodeToF32('f16', new Uint8Array(2))).toThrow(TypeError);
    expect(() => decodeToF32('f8e5m2', new Uint8Array(4), new Float32Array(3))).toThrow(RangeError);
    expect(() => encodeF32('f32' as LowPrecisionFloat, [1])).toThrow(TypeError);
  });
});

describe('6. special values', () => {
  it('+-0 keep their sign through every codec and mode', () => {
    for (const f of FORMATS) {
      for (const sat of [false, true]) {
        expect(scalarEncode(f, 0, sat), f.dtype).toBe(0);
        expect(scalarEncode(f, -0, sat), f.dtype).toBe(signBit(f));
        expect(Array.from(encodeF32(f.dtype, new Float32Array([0, -0]), undefined, sat))).toEqual([0, signBit(f)]);
        expect(Array.from(encodeF32(f.dtype, [0, -0], undefined, sat))).toEqual([0, signBit(f)]);
        expect(Object.is(roundToDtype(f.dtype, -0, sat), -0)).toBe(true);
        expect(Object.is(roundToDtype(f.dtype, 0, sat), 0)).toBe(true);
      }
      expect(Object.is(f.decodeScalar(signBit(f)), -0)).toBe(true);
      expect(Object.is(f.decodeScalar(0), 0)).toBe(true);
    }
  });

  it('tiny inputs: below half the smallest subnormal -> signed zero, exactly half -> zero (even)', () => {
    for (const f of FORMATS) {
      const tiny = rawMagnitude(f, 1); // smallest subnormal
      const half = tiny / 2;
      expect(Math.fround(half), f.dtype).toBe(half);
      for (const s of [1, -1]) {
        const sb = s < 0 ? signBit(f) : 0;
        expect(scalarEncode(f, s * half, false), `${f.dtype} ${s}*half`).toBe(sb);
        expect(scalarEncode(f, s * nextDown(half), false)).toBe(sb);
        expect(scalarEncode(f, s * nextUp(half), false)).toBe(sb | 1);
        expect(scalarEncode(f, s * tiny, false)).toBe(sb | 1);
        expect(scalarEncode(f, s * 1.5 * tiny, false), `${f.dtype} 1.5*tiny ties to code 2`).toBe(sb | 2);
        expect(scalarEncode(f, s * 2.5 * tiny, false), `${f.dtype} 2.5*tiny ties to code 2`).toBe(sb | 2);
        // Denormal float32 inputs: the smallest and the largest.
        const minDenorm = fromBits(1);
        const maxDenorm = fromBits(0x007fffff);
        expect(scalarEncode(f, s * minDenorm, false)).toBe(sb);
        const wantMax = f.dtype === 'bf16' ? sb | 0x0080 : sb; // bf16: rounds up to 2^-126, its smallest normal
        expect(scalarEncode(f, s * maxDenorm, false), `${f.dtype} largest f32 denormal`).toBe(wantMax);
      }
    }
    // bf16 shares float32's exponent range: f32 denormals that are multiples of 2^-133 are exact.
    expect(f32ToBf16Bits(2 ** -133)).toBe(0x0001);
    expect(f32ToBf16Bits(2 ** -130 + 2 ** -133)).toBe(0x0009);
    expect(bf16BitsToF32(0x0009)).toBe(2 ** -130 + 2 ** -133);
    expect(f32ToBf16Bits(fromBits(0x00008000))).toBe(0x0000); // tie between 0 and 1 -> 0
    expect(f32ToBf16Bits(fromBits(0x00018000))).toBe(0x0002); // tie between 1 and 2 -> 2
    // The largest subnormal of each format rounds up into the smallest normal when it should.
    expect(f32ToF16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400); // tie between 0x03FF (odd) and 0x0400
    expect(f32ToE4M3(2 ** -6 - 2 ** -10)).toBe(0x08);
    expect(f32ToE5M2(2 ** -14 - 2 ** -17)).toBe(0x04);
  });

  it('NaN inputs give NaN codes; bulk Float32Array input keeps the sign bit exactly', () => {
    const nanBits = [0x7fc00000, 0x7f800001, 0x7fffffff, 0x7fbfffff, 0x7f80ffff, 0x7fc0dead, 0xffc00000, 0xff800001, 0xffffffff];
    const nans = new Float32Array(Uint32Array.from(nanBits).buffer);
    const canonical: Record<LowPrecisionFloat, number> = { f16: 0x7e00, bf16: 0x7fc0, f8e4m3: 0x7f, f8e5m2: 0x7f };
    for (const f of FORMATS) {
      for (const sat of [false, true]) {
        const bulk = encodeF32(f.dtype, nans, undefined, sat);
        for (let i = 0; i < nanBits.length; i++) {
          const neg = nanBits[i]! >>> 31 === 1;
          expect(bulk[i], `${f.dtype} ${hex(nanBits[i]!, 8)}`).toBe((neg ? signBit(f) : 0) | canonical[f.dtype]);
          // Through a JS number the NaN's sign is up to the engine; it must still be a NaN code.
          expect(isNaNCode(f, scalarEncode(f, nans[i]!, sat)), `${f.dtype} scalar ${hex(nanBits[i]!, 8)}`).toBe(true);
          expect(roundToDtype(f.dtype, nans[i]!, sat)).toBeNaN();
        }
      }
      expect(isNaNCode(f, scalarEncode(f, NaN, false))).toBe(true);
    }
    // Signalling NaNs whose payload sits only in the low bits would round to inf with the naive
    // bf16 bit trick; they must stay NaN.
    expect(f32ToBf16Bits(fromBits(0x7f800001))).not.toBe(0x7f80);
    // bf16 decode keeps payload bits in bulk (a plain shift into the f32 pattern).
    const out = decodeToF32('bf16', Uint16Array.of(0x7fc1, 0xff81));
    expect(Array.from(new Uint32Array(out.buffer))).toEqual([0x7fc10000, 0xff810000]);
  });

  it('infinities', () => {
    expect(f32ToF16Bits(Infinity)).toBe(0x7c00);
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00);
    expect(f32ToBf16Bits(Infinity)).toBe(0x7f80);
    expect(f32ToBf16Bits(-Infinity)).toBe(0xff80);
    expect(f32ToE5M2(Infinity)).toBe(0x7c);
    expect(f32ToE5M2(-Infinity)).toBe(0xfc);
    expect(f32ToE5M2(-Infinity, true)).toBe(0xfb);
    expect(f32ToE4M3(Infinity)).toBe(0x7f);
    expect(f32ToE4M3(-Infinity)).toBe(0xff);
    expect(f32ToE4M3(Infinity, true)).toBe(0x7e);
    expect(f32ToE4M3(-Infinity, true)).toBe(0xfe);
    expect(Array.from(encodeF32('f16', [Infinity, -Infinity], undefined, true))).toEqual([0x7bff, 0xfbff]);
    expect(Array.from(encodeF32('bf16', [Infinity, -Infinity], undefined, true))).toEqual([0x7f7f, 0xff7f]);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(e5m2ToF32(0x7c)).toBe(Infinity);
  });

  it('inputs are rounded to float32 first (no rounding straight from float64)', () => {
    // 1 + 2^-11 is the f16 tie between 1 (0x3C00, even) and 1 + 2^-10. A float64 slightly above
    // it rounds to that tie in float32, which then goes to the even code; rounding the float64
    // directly would give 0x3C01.
    const x = 1 + 2 ** -11 + 2 ** -40;
    expect(Math.fround(x)).toBe(1 + 2 ** -11);
    expect(f32ToF16Bits(x)).toBe(0x3c00);
    expect(encodeF32('f16', [x])[0]).toBe(0x3c00);
    expect(encodeF32('f16', Float64Array.of(x))[0]).toBe(0x3c00);
    expect(roundToDtype('f16', x)).toBe(1);
    // Same for E4M3: 1.0625 is the tie between 1 (0x38) and 1.125 (0x39).
    expect(f32ToE4M3(1.0625 + 2 ** -40)).toBe(0x38);
    expect(f32ToE4M3(1.0625 + 2 ** -20)).toBe(0x39);
    // Values beyond float32's range become +-inf before the cast.
    expect(f32ToE5M2(1e39, true)).toBe(0x7b);
    expect(f32ToBf16Bits(1e39)).toBe(0x7f80);
  });

  it('decoders use only the low 8 / 16 bits of their argument', () => {
    expect(e4m3ToF32(0x138)).toBe(1);
    expect(e5m2ToF32(0x13c)).toBe(1);
    expect(f16BitsToF32(0x13c00)).toBe(1);
    expect(bf16BitsToF32(0x13f80)).toBe(1);
  });
});
