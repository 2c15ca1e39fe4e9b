// Creation ops on the CPU backend: arange, causalMask, randomUniform, randomNormal, dropout.
//
// Oracles: NumPy's documented arange semantics (with known answers such as the length of
// arange(1, 1.3, 0.1)), the mask definition j <= i + offset, and for the random ops the Philox
// block function (itself checked against the Random123 known answers in core/test/philox.test.ts)
// evaluated element by element here, plus distribution statistics.
import { describe, expect, it } from 'vitest';
import {
  AttrError,
  DTypeError,
  FLOAT_DTYPES,
  Generator,
  ShapeError,
  arange,
  causalMask,
  dropout,
  getDefaultGenerator,
  getOpDef,
  manualSeed,
  memory,
  mul,
  philox4x32,
  randomNormal,
  randomUniform,
  roundToDtype,
  sum,
  tensor,
  tidy,
  validateAttrs,
  valueAndGrad,
  type DType,
  type Tensor,
} from '@ring-linear/core';
import '../src/index.js';

const SEED = Number(process.env.TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`ops-creation.test.ts: TEST_SEED=${SEED}`);

function rng(seed: number): { u: () => number; int: (lo: number, hi: number) => number } {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return { u, int: (lo, hi) => lo + Math.floor(u() * (hi - lo)) };
}
const R = rng(SEED);

const round = (dtype: DType, x: number) => (dtype === 'f32' ? Math.fround(x) : roundToDtype(dtype as 'bf16', x));

function composite(op: string, attrs: Record<string, unknown>): Tensor {
  const def = getOpDef(op)!;
  let a = validateAttrs(def, attrs);
  if (def.normalize) a = def.normalize([], a);
  return tidy(() => def.composite!([], a)[0]!);
}

/** The uniform u in [0, 1) of element i of a draw that started at 64-bit counter `offset`. */
function unitUniformAt(key: bigint, offset: bigint, i: number): number {
  const c = offset + BigInt(i);
  const k0 = Number(key & 0xffffffffn);
  const k1 = Number((key >> 32n) & 0xffffffffn);
  const x = philox4x32(Number(c & 0xffffffffn), Number((c >> 32n) & 0xffffffffn), 0, 0, k0, k1);
  return (x[0]! >>> 8) / 2 ** 24;
}

function normalAt(key: bigint, offset: bigint, i: number): number {
  const c = offset + BigInt(i);
  const x = philox4x32(Number(c & 0xffffffffn), Number(c >> 32n), 0, 0, Number(key & 0xffffffffn), Number(key >> 32n));
  const u1 = ((x[0]! >>> 8) + 1) / 2 ** 24;
  const u2 = (x[1]! >>> 8) / 2 ** 24;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

function moments(v: ArrayLike<number>): { mean: number; variance: number } {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < v.length; i++) {
    s += v[i]!;
    s2 += v[i]! * v[i]!;
  }
  const mean = s / v.length;
  return { mean, variance: s2 / v.length - mean * mean };
}

// ---------------------------------------------------------------------------------------------

describe('arange', () => {
  it('follows NumPy: arange(stop), (start, stop, step), negative and fractional steps', () => {
    expect(Array.from(arange(5).dataSync())).toEqual([0, 1, 2, 3, 4]);
    expect(arange(5).dtype).toBe('f32');
    expect(Array.from(arange(2, 9, 3).dataSync())).toEqual([2, 5, 8]);
    expect(Array.from(arange(3, -4, -2.5).dataSync())).toEqual([3, 0.5, -2]);
    // The classic float case: (1.3 - 1) / 0.1 = 3.0000000000000004, so NumPy gives 4 elements.
    const a = arange(1, 1.3, 0.1);
    expect(a.shape).toEqual([4]);
    expect(Array.from(a.dataSync())).toEqual([1, 1.1, 1.2000000000000002, 1.3000000000000003].map(Math.fround));
    expect(arange(0, 1, 0.1).shape).toEqual([10]);
    expect(arange(5, 2).shape).toEqual([0]);
    expect(arange(2, 5, -1).shape).toEqual([0]);
    expect(arange(0).shape).toEqual([0]);
  });

  it('random ranges: values start + i*step rounded once to each dtype', () => {
    for (let t = 0; t < 20; t++) {
      const start = Math.round((R.u() - 0.5) * 200) / 4;
      const step = (R.u() < 0.5 ? -1 : 1) * (0.25 + Math.floor(R.u() * 40) / 8);
      const n = R.int(0, 50);
      const stop = start + step * n - step / 2; // n elements, with the stop between two steps
      for (const dtype of FLOAT_DTYPES) {
        const y = arange(start, stop, step, dtype);
        expect(y.dtype).toBe(dtype);
        expect(y.shape).toEqual([n]);
        expect(Array.from(y.dataSync())).toEqual(Array.from({ length: n }, (_, i) => round(dtype, start + i * step)));
      }
    }
    // Integers above 256 are not all representable in bf16: 257 rounds to 256 (ties to even).
    expect(Array.from(arange(255, 260, 1, 'bf16').dataSync())).toEqual([255, 256, 256, 258, 260]);
  });

  it('i32: integer ranges', () => {
    const y = arange(-3, 4, 2, 'i32');
    expect(y.dtype).toBe('i32');
    expect(Array.from(y.dataSync())).toEqual([-3, -1, 1, 3]);
    expect(Array.from(arange(10, 0, -3, 'i32').dataSync())).toEqual([10, 7, 4, 1]);
    // A fractional stop is fine: only start and step must be integers.
    expect(Array.from(arange(0, 2.5, 1, 'i32').dataSync())).toEqual([0, 1, 2]);
    expect(Array.from(arange(2147483640, 2147483647, 3, 'i32').dataSync())).toEqual([2147483640, 2147483643, 2147483646]);
  });

  it('rejects bad arguments with typed errors', () => {
    expect(() => arange(0, 5, 0)).toThrow(AttrError);
    expect(() => arange(0, 5, 0)).toThrow(/arange: step must be non-zero, got 0/);
    expect(() => arange(0, Infinity)).toThrow(/expected finite start, stop and step, got start=0 stop=Infinity step=1/);
    expect(() => arange(NaN)).toThrow(AttrError);
    expect(() => arange(0.5, 3, 1, 'i32')).toThrow(/dtype i32 needs integer start and step, got start=0.5 step=1/);
    expect(() => arange(0, 3, 0.5, 'i32')).toThrow(AttrError);
    expect(() => arange(0, 3, 1, 'bool')).toThrow(DTypeError);
    expect(() => arange(0, 3, 1, 'bool')).toThrow(/arange: dtype must be one of f32\|f16\|bf16\|f8e4m3\|f8e5m2\|i32, got bool/);
    expect(() => arange(0, 3, 1, 'x' as DType)).toThrow(/attribute 'dtype' expected a dtype/);
    expect(() => arange(0, 2 ** 40)).toThrow(/at most 2147483647 elements, got 1099511627776/);
    expect(() => arange(2147483640, 2147483650, 1, 'i32')).toThrow(/do not fit in i32/);
  });
});

describe('causalMask', () => {
  const ref = (rows: number, cols: number, offset: number) => {
    const out: number[] = [];
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out.push(j <= i + offset ? 1 : 0);
    return out;
  };

  it('true where j <= i + offset, kernel and composite, over random sizes and offsets', () => {
    const cases: [number, number, number][] = [[1, 1, 0], [3, 3, 0], [4, 7, 3], [5, 2, 0], [3, 5, -2], [2, 3, 10], [3, 4, -10], [0, 4, 0], [4, 0, 1]];
    for (let t = 0; t < 15; t++) cases.push([R.int(1, 12), R.int(1, 12), R.int(-6, 12)]);
    for (const [rows, cols, offset] of cases) {
      const m = causalMask(rows, cols, { offset });
      expect(m.dtype).toBe('bool');
      expect(m.shape).toEqual([rows, cols]);
      const expected = ref(rows, cols, offset);
      expect(Array.from(m.dataSync()), `kernel ${rows}x${cols} offset ${offset}`).toEqual(expected);
      const c = composite('causalMask', { rows, cols, offset });
      expect(c.dtype).toBe('bool');
      expect(Array.from(c.dataSync()), `composite ${rows}x${cols} offset ${offset}`).toEqual(expected);
    }
    expect(causalMask(2, 2).dataSync()).toEqual(Uint8Array.of(1, 0, 1, 1));
  });

  it('rejects bad arguments with AttrError', () => {
    expect(() => causalMask(-1, 3)).toThrow(AttrError);
    expect(() => causalMask(-1, 3)).toThrow(/causalMask: attribute 'rows' expected an integer >= 0, got -1/);
    expect(() => causalMask(2, 1.5)).toThrow(/attribute 'cols' expected an integer, got 1.5/);
    expect(() => causalMask(2, 2, { offset: 0.5 })).toThrow(/attribute 'offset' expected an integer/);
    expect(() => causalMask(2, 2, { offset: 2 ** 40 })).toThrow(/\|offset\| must be <= /);
    expect(() => causalMask(100000, 100000)).toThrow(/at most 2147483647 elements/);
  });
});

describe('randomUniform / randomNormal', () => {
  it('uniform draws are the Philox stream of the generator, element by element, and the generator advances', () => {
    const g = new Generator(SEED);
    g.advance(0xfffffff0); // the draw crosses a 2^32 boundary of the counter
    const y = randomUniform([3, 7], { generator: g });
    expect(y.dtype).toBe('f32');
    expect(g.offset).toBe(0xfffffff0n + 21n);
    const v = y.dataSync();
    for (let i = 0; i < 21; i++) expect(v[i]).toBe(unitUniformAt(BigInt(SEED), 0xfffffff0n, i));
    // The next op continues where this one stopped: two draws equal one longer draw.
    const z = randomUniform([5], { generator: g }).dataSync();
    const h = new Generator(SEED).advance(0xfffffff0);
    const all = randomUniform([26], { generator: h }).dataSync();
    expect(Array.from(all)).toEqual([...v, ...z]);
  });

  it('same seed gives the same numbers, different seeds differ; manualSeed drives the default generator', () => {
    const a = randomUniform([64], { generator: new Generator(SEED) }).dataSync();
    const b = randomUniform([64], { generator: new Generator(SEED) }).dataSync();
    const c = randomUniform([64], { generator: new Generator(SEED + 1) }).dataSync();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a).filter((x, i) => x === c[i]).length).toBeLessThan(3);
    const saved = getDefaultGenerator().state();
    try {
      manualSeed(SEED);
      const d1 = randomNormal([10]).dataSync();
      const d2 = randomUniform([10]).dataSync();
      manualSeed(SEED);
      expect(Array.from(randomNormal([10]).dataSync())).toEqual(Array.from(d1));
      expect(Array.from(randomUniform([10]).dataSync())).toEqual(Array.from(d2));
      expect(Array.from(d2)).toEqual(Array.from({ length: 10 }, (_, i) => unitUniformAt(BigInt(SEED), 10n, i)));
    } finally {
      getDefaultGenerator().setState(saved);
    }
  });

  it('uniform [low, high): f32 arithmetic, range and moments over 10^5 draws', () => {
    const g = new Generator(SEED);
    const low = -2.5;
    const high = 7.25;
    const y = randomUniform([100, 1000], { low, high, generator: g }).dataSync();
    const d = Math.fround(high - low);
    for (let i = 0; i < 100; i++) expect(y[i]).toBe(Math.fround(low + Math.fround(d * unitUniformAt(BigInt(SEED), 0n, i))));
    let outside = 0;
    for (const v of y) if (!(v >= low && v < high)) outside++;
    expect(outside).toBe(0);
    const { mean, variance } = moments(y);
    const w = high - low;
    expect(Math.abs(mean - (low + high) / 2)).toBeLessThan(6 * w * Math.sqrt(1 / 12 / y.length));
    expect(Math.abs(variance - (w * w) / 12)).toBeLessThan(6 * w * w * Math.sqrt(1 / 180 / y.length));
  });

  it('normal: Box-Muller of the Philox stream, mean/std applied, moments over 10^5 draws', () => {
    const g = new Generator(SEED);
    const y = randomNormal([1000, 100], { mean: 3, std: 0.5, generator: g }).dataSync();
    for (let i = 0; i < 100; i++) expect(y[i]).toBe(Math.fround(3 + 0.5 * normalAt(BigInt(SEED), 0n, i)));
    const { mean, variance } = moments(y);
    expect(Math.abs(mean - 3)).toBeLessThan(6 * 0.5 / Math.sqrt(y.length));
    expect(Math.abs(variance - 0.25)).toBeLessThan(6 * 0.25 * Math.sqrt(2 / y.length));
    // std 0 gives the mean exactly.
    expect(Array.from(randomNormal([3], { mean: -1.5, std: 0, generator: g }).dataSync())).toEqual([-1.5, -1.5, -1.5]);
  });

  for (const dtype of FLOAT_DTYPES.filter((d) => d !== 'f32')) {
    it(`${dtype}: the f32 draw rounded once to the dtype`, () => {
      const u = randomUniform([5, 9], { dtype, low: -1, high: 3, generator: new Generator(SEED) });
      expect(u.dtype).toBe(dtype);
      const uf = randomUniform([5, 9], { low: -1, high: 3, generator: new Generator(SEED) }).dataSync();
      expect(Array.from(u.dataSync())).toEqual(Array.from(uf, (x) => round(dtype, x)));
      const n = randomNormal([45], { dtype, generator: new Generator(SEED) });
      const nf = randomNormal([45], { generator: new Generator(SEED) }).dataSync();
      expect(Array.from(n.dataSync())).toEqual(Array.from(nf, (x) => round(dtype, x)));
    });
  }

  it('size-1, scalar and empty shapes', () => {
    const g = new Generator(SEED);
    expect(randomUniform([], { generator: g }).shape).toEqual([]);
    expect(randomNormal([1, 1, 1], { generator: g }).shape).toEqual([1, 1, 1]);
    expect(g.offset).toBe(2n);
    expect(randomUniform([3, 0], { generator: g }).shape).toEqual([3, 0]);
    expect(g.offset).toBe(2n);
  });

  it('rejects bad arguments with typed errors, without advancing the generator', () => {
    const g = new Generator(SEED);
    expect(() => randomUniform([2], { low: 1, high: 0, generator: g })).toThrow(AttrError);
    expect(() => randomUniform([2], { low: 1, high: 0, generator: g })).toThrow(/expected finite low <= high, got low=1 high=0/);
    expect(() => randomUniform([2], { high: Infinity, generator: g })).toThrow(AttrError);
    expect(() => randomNormal([2], { std: -1, generator: g })).toThrow(/finite std >= 0, got mean=0 std=-1/);
    expect(() => randomUniform([2], { dtype: 'i32', generator: g })).toThrow(DTypeError);
    expect(() => randomNormal([2], { dtype: 'bool', generator: g })).toThrow(/randomNormal: dtype must be a float dtype .*got bool/);
    expect(() => randomUniform([2, -1], { generator: g })).toThrow(ShapeError);
    expect(() => randomUniform([2.5], { generator: g })).toThrow(/expected a shape \(array of non-negative integers\), got \[2.5\]/);
    expect(() => randomUniform([2], { generator: {} as Generator })).toThrow(/option 'generator' must be a Generator/);
    expect(g.offset).toBe(0n);
  });

  it('leaves no tensors behind', () => {
    const before = memory().tensors;
    tidy(() => {
      randomUniform([10]);
      randomNormal([10]);
    });
    expect(memory().tensors).toBe(before);
  });
});

describe('dropout', () => {
  it('keeps u >= p scaled by 1/(1-p), zeroes the rest; the mask is the uniform draw of the same generator', () => {
    const p = 0.3;
    const shape = [40, 250];
    const xs = Array.from({ length: 10000 }, (_, i) => ((i % 17) - 8) / 4 || 0.125); // never 0
    const x = tensor(xs, shape);
    const g = new Generator(SEED);
    const u = randomUniform(shape, { generator: g.clone() }).dataSync();
    const y = dropout(x, p, { generator: g }).dataSync();
    expect(g.offset).toBe(10000n);
    const scale = Math.fround(1 / (1 - p));
    let kept = 0;
    for (let i = 0; i < y.length; i++) {
      const keep = u[i]! >= Math.fround(p);
      if (keep) kept++;
      const expected = keep ? Math.fround(Math.fround(xs[i]!) * scale) : 0;
      if (y[i] !== expected) expect.fail(`element ${i}: got ${y[i]}, expected ${expected} (u=${u[i]})`);
    }
    expect(Math.abs(kept / y.length - (1 - p))).toBeLessThan(6 * Math.sqrt(p * (1 - p) / y.length));
  });

  it('gradient uses the same mask: dx = mask * scale * dy', () => {
    const p = 0.45;
    const x = tensor(Array.from({ length: 37 }, (_, i) => i + 1), [37]);
    const w = tensor(Array.from({ length: 37 }, (_, i) => (i % 5) - 2.5), [37]);
    const g = new Generator(SEED);
    const before = memory().tensors;
    const { value, grads } = valueAndGrad(() => sum(mul(dropout(x, p, { generator: g }), w)), [x]);
    expect(memory().tensors).toBe(before + 2);
    const mask = randomUniform([37], { generator: new Generator(SEED) }).dataSync().map((u) => (u >= Math.fround(p) ? 1 : 0));
    expect(mask.some((m) => m === 0) && mask.some((m) => m === 1)).toBe(true);
    const scale = Math.fround(1 / (1 - p));
    const wv = w.dataSync();
    expect(Array.from(grads[0]!.dataSync())).toEqual(Array.from(mask, (m, i) => (m ? Math.fround(wv[i]! * scale) : 0)));
    const expectedValue = Array.from(mask).reduce((acc, m, i) => acc + (m ? Math.fround((i + 1) * scale) * wv[i]! : 0), 0);
    expect(value.dataSync()[0]).toBeCloseTo(expectedValue, 3);
  });

  it('p = 0 copies without drawing; p = 1 gives zeros; bf16 is scaled in f32 and rounded once', () => {
    const g = new Generator(SEED);
    const x = tensor([1, -2, 3]);
    expect(Array.from(dropout(x, 0, { generator: g }).dataSync())).toEqual([1, -2, 3]);
    expect(g.offset).toBe(0n);
    expect(Array.from(dropout(x, 1, { generator: g }).dataSync())).toEqual([0, 0, 0]);
    const xb = tensor([1.5, -2.25, 3.75, 0.1, 7, -0.3, 2, 9], [8], 'bf16');
    const xv = xb.dataSync();
    const u = randomUniform([8], { generator: new Generator(SEED + 3) }).dataSync();
    const y = dropout(xb, 0.1, { generator: new Generator(SEED + 3) });
    expect(y.dtype).toBe('bf16');
    const scale = Math.fround(1 / 0.9);
    expect(Array.from(y.dataSync())).toEqual(Array.from(xv, (v, i) => (u[i]! >= Math.fround(0.1) ? roundToDtype('bf16', Math.fround(v * scale)) : 0)));
  });

  it('rejects bad arguments with typed errors', () => {
    const x = tensor([1, 2]);
    expect(() => dropout(x, 1.5)).toThrow(AttrError);
    expect(() => dropout(x, -0.1)).toThrow(/dropout: p must be a number in \[0, 1\], got -0.1/);
    expect(() => dropout(x, NaN)).toThrow(AttrError);
    expect(() => dropout(tensor([1, 2], [2], 'i32'), 0.5)).toThrow(DTypeError);
    expect(() => dropout(tensor([1, 2], [2], 'i32'), 0.5)).toThrow(/x must have a float dtype .*got i32/);
  });
});
