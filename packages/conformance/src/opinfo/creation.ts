/**
 * OpInfo records for the creation ops (core ops/creation.ts): arange, causalMask, randomUniform,
 * randomNormal, and dropout (a function built from a uniform draw and where, run through `call`).
 *
 * The random ops are counter-based (core rng/philox.ts): a sample fixes the Philox key and
 * counter in its attrs, so the reference below recomputes every draw from the Philox4x32-10 block
 * function (checked against the Random123 known answers in core's tests) and the spec's formulas:
 * uniform draws must agree bit for bit, normal draws to float rounding. `check` adds distribution
 * statistics on a large sample.
 */
import { FLOAT_DTYPES, Generator, dropout, isLowPrecisionFloat, philox4x32, sizeOf, type DType } from '@ring-linear/core';
import type { ErrorInput, OpInfo, SampleInput, SampleRng } from './types.js';
import { roundToDtypeValue } from '../host.js';

// ---------------------------------------------------------------------------------------------
// arange

const arangeCount = (start: number, stop: number, step: number) => Math.max(0, Math.ceil((stop - start) / step));

const arangeInfo: OpInfo = {
  op: 'arange',
  dtypes: [...FLOAT_DTYPES, 'i32'],
  samples: (rng, dtype) => {
    const ranges: { start: number; stop: number; step?: number; desc?: string }[] = [
      { start: 0, stop: 7, desc: 'default step' },
      { start: 2, stop: 9, step: 3 },
      { start: 10, stop: 0, step: -3, desc: 'negative step' },
      { start: 5, stop: 2, desc: 'empty (stop < start)' },
      { start: 2, stop: 5, step: -1, desc: 'empty (wrong direction)' },
      { start: -4, stop: -3, desc: 'one element' },
      { start: 0, stop: 300, step: 1, desc: 'larger (integers beyond 8-bit significands)' },
    ];
    if (dtype !== 'i32') {
      ranges.push({ start: 1, stop: 1.3, step: 0.1, desc: 'float steps: (1.3 - 1) / 0.1 > 3 gives 4 elements' });
      ranges.push({ start: 3, stop: -4, step: -2.5, desc: 'fractional negative step' });
      const start = Math.round(rng.uniform(-50, 50) * 4) / 4;
      const step = (rng.next() < 0.5 ? -1 : 1) * (0.125 + rng.int(0, 40) / 8);
      ranges.push({ start, stop: start + step * rng.int(1, 40) - step / 2, step, desc: 'random' });
    } else {
      const start = rng.int(-1000, 1000);
      const step = (rng.next() < 0.5 ? -1 : 1) * rng.int(1, 9);
      ranges.push({ start, stop: start + step * rng.int(1, 40) + 0.5 * Math.sign(step), step, desc: 'random, fractional stop' });
      ranges.push({ start: 2147483640, stop: 2147483647, step: 3, desc: 'near the i32 limit' });
    }
    return ranges.map(({ desc, ...r }) => ({ inputs: [], attrs: { ...r, dtype }, ...(desc ? { desc } : {}) }));
  },
  reference: (_inputs, attrs) => {
    const start = attrs.start as number;
    const stop = attrs.stop as number;
    const step = (attrs.step as number | undefined) ?? 1;
    const dtype = (attrs.dtype as DType | undefined) ?? 'f32';
    const n = arangeCount(start, stop, step);
    return [{ shape: [n], dtype, values: Float64Array.from({ length: n }, (_, i) => start + i * step) }];
  },
  tfjs: (tf, _inputs, attrs) => {
    // tfjs accumulates steps and reverses direction for step 1: only integer ranges in the step's direction.
    const { start, stop } = attrs as { start: number; stop: number };
    const step = (attrs.step as number | undefined) ?? 1;
    if (!Number.isInteger(start) || !Number.isInteger(step) || arangeCount(start, stop, step) === 0) return null;
    return tf.range(start, stop, step, 'float32');
  },
  errors: () => [
    { inputs: [], attrs: { start: 0, stop: 5, step: 0 }, error: 'AttrError', message: /arange: step must be non-zero, got 0/, desc: 'zero step' },
    { inputs: [], attrs: { start: 0, stop: Infinity }, error: 'AttrError', message: /arange: expected finite start, stop and step, got start=0 stop=Infinity step=1/, desc: 'infinite stop' },
    { inputs: [], attrs: { start: 0.5, stop: 3, dtype: 'i32' }, error: 'AttrError', message: /arange: dtype i32 needs integer start and step, got start=0.5 step=1/, desc: 'fractional start for i32' },
    { inputs: [], attrs: { start: 2147483640, stop: 2147483650, dtype: 'i32' }, error: 'AttrError', message: /do not fit in i32/, desc: 'i32 overflow' },
    { inputs: [], attrs: { start: 0, stop: 3, dtype: 'bool' }, error: 'DTypeError', message: /arange: dtype must be one of f32\|f16\|bf16\|f8e4m3\|f8e5m2\|i32, got bool/, desc: 'bool dtype' },
    { inputs: [], attrs: { start: 0, stop: 2 ** 40 }, error: 'AttrError', message: /arange: at most 2147483647 elements/, desc: 'too many elements' },
    { inputs: [], attrs: { start: 0 }, error: 'AttrError', message: /arange: attribute 'stop' is required/, desc: 'missing stop' },
  ],
};

// ---------------------------------------------------------------------------------------------
// causalMask

const causalMaskInfo: OpInfo = {
  op: 'causalMask',
  dtypes: ['bool'],
  samples: (rng) => {
    const cases: [number, number, number | undefined, string?][] = [
      [1, 1, undefined, 'one element'],
      [4, 4, undefined, 'square, default offset'],
      [3, 7, 4, 'decode-style: keys include a cache of 4'],
      [5, 2, 0, 'more queries than keys'],
      [3, 5, -2, 'negative offset'],
      [2, 3, 10, 'offset beyond the keys (all visible)'],
      [3, 4, -10, 'offset before the keys (none visible)'],
      [0, 4, 0, 'no queries'],
      [4, 0, 1, 'no keys'],
      [rng.int(1, 40), rng.int(1, 40), rng.int(-10, 30), 'random'],
      [33, 65, 32, 'larger'],
    ];
    return cases.map(([rows, cols, offset, desc]) => ({
      inputs: [],
      attrs: offset === undefined ? { rows, cols } : { rows, cols, offset },
      ...(desc ? { desc } : {}),
    }));
  },
  reference: (_inputs, attrs) => {
    const { rows, cols } = attrs as { rows: number; cols: number };
    const offset = (attrs.offset as number | undefined) ?? 0;
    const v = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) v[i * cols + j] = j <= i + offset ? 1 : 0;
    return [{ shape: [rows, cols], dtype: 'bool', values: v }];
  },
  exact: true,
  errors: () => [
    { inputs: [], attrs: { rows: -1, cols: 3 }, error: 'AttrError', message: /causalMask: attribute 'rows' expected an integer >= 0, got -1/, desc: 'negative rows' },
    { inputs: [], attrs: { rows: 2, cols: 1.5 }, error: 'AttrError', message: /causalMask: attribute 'cols' expected an integer, got 1.5/, desc: 'fractional cols' },
    { inputs: [], attrs: { rows: 2, cols: 2, offset: 0.5 }, error: 'AttrError', message: /attribute 'offset' expected an integer, got 0.5/, desc: 'fractional offset' },
    { inputs: [], attrs: { rows: 2, cols: 2, offset: 2 ** 40 }, error: 'AttrError', message: /causalMask: \|offset\| must be <= /, desc: 'offset out of range' },
    { inputs: [], attrs: { rows: 100000, cols: 100000 }, error: 'AttrError', message: /causalMask: at most 2147483647 elements/, desc: 'too many elements' },
    { inputs: [], attrs: { cols: 2 }, error: 'AttrError', message: /causalMask: attribute 'rows' is required/, desc: 'missing rows' },
  ],
};

// ---------------------------------------------------------------------------------------------
// Random ops

interface Counters {
  key0: number;
  key1: number;
  counterLo: number;
  counterHi: number;
}

const ZERO_COUNTERS: Counters = { key0: 0, key1: 0, counterLo: 0, counterHi: 0 };

const u32 = (rng: SampleRng) => Math.floor(rng.next() * 2 ** 32);

/** Philox x0, x1 of element i (counter = offset + i as 64 bits, c2 = c3 = 0). */
function philoxAt(c: Counters, i: number): [number, number] {
  const lo = c.counterLo + i;
  const x = philox4x32(lo % 2 ** 32, (c.counterHi + Math.floor(lo / 2 ** 32)) % 2 ** 32, 0, 0, c.key0, c.key1);
  return [x[0]!, x[1]!];
}

const RANDOM_SHAPES: readonly { shape: number[]; desc: string; counterNearWrap?: boolean; stats?: boolean }[] = [
  { shape: [], desc: 'scalar' },
  { shape: [1], desc: 'one element' },
  { shape: [7], desc: 'odd size' },
  { shape: [3, 1, 5], desc: 'size-1 dim' },
  { shape: [2, 0, 3], desc: 'empty' },
  { shape: [9, 11], desc: 'counter crosses 2^32', counterNearWrap: true },
  { shape: [250, 400], desc: 'statistics (10^5 draws)', stats: true },
];

function randomSamples(rng: SampleRng, dtype: DType, params: (rng: SampleRng) => Record<string, unknown>[]): SampleInput[] {
  const out: SampleInput[] = [];
  const ps = params(rng);
  RANDOM_SHAPES.forEach((c, k) => {
    const counters: Counters = {
      key0: u32(rng),
      key1: u32(rng),
      counterLo: c.counterNearWrap ? 2 ** 32 - 50 : u32(rng),
      counterHi: c.counterNearWrap ? 2 ** 32 - 1 : u32(rng),
    };
    out.push({ inputs: [], attrs: { shape: c.shape, dtype, ...ps[k % ps.length], ...counters }, desc: c.desc });
  });
  return out;
}

const isStats = (s: SampleInput) => s.desc?.startsWith('statistics') === true;

/** Mean and variance of a host tensor's values. */
function moments(v: Float64Array): { mean: number; variance: number } {
  let s = 0;
  let s2 = 0;
  for (const x of v) {
    s += x;
    s2 += x * x;
  }
  const mean = s / v.length;
  return { mean, variance: s2 / v.length - mean * mean };
}

/** Rounding to a low-precision dtype moves values by up to half a step (relative 2^-(m+1)). */
function quantization(dtype: DType): number {
  const mbits: Record<string, number> = { f32: 23, f16: 10, bf16: 7, f8e4m3: 3, f8e5m2: 2 };
  return isLowPrecisionFloat(dtype) || dtype === 'f32' ? 2 ** -(mbits[dtype]! + 1) : 0;
}

const randomUniformInfo: OpInfo = {
  op: 'randomUniform',
  dtypes: FLOAT_DTYPES,
  samples: (rng, dtype) => randomSamples(rng, dtype, (r) => [{}, { low: -2.5, high: 7.25 }, { low: r.uniform(-3, 0), high: r.uniform(0.5, 4) }, { low: 1, high: 1 }]),
  reference: (_inputs, attrs) => {
    const a = attrs as unknown as Counters & { shape: number[]; dtype: DType; low?: number; high?: number };
    const low = Math.fround(a.low ?? 0);
    const d = Math.fround(Math.fround(a.high ?? 1) - low);
    const n = sizeOf(a.shape);
    // u = (x0 >>> 8) * 2^-24; value = f32(low + f32(d * u)), then the runner rounds to the dtype.
    const v = Float64Array.from({ length: n }, (_, i) => Math.fround(low + Math.fround(d * (philoxAt(a, i)[0] >>> 8) * 2 ** -24)));
    return [{ shape: a.shape, dtype: a.dtype, values: v }];
  },
  check: ([y], sample) => {
    const a = sample.attrs as { low?: number; high?: number; dtype: DType };
    const low = a.low ?? 0;
    const high = a.high ?? 1;
    const q = quantization(a.dtype);
    // Every draw in [low, high) (high itself can appear once rounded to a low-precision dtype).
    const lo = roundToDtypeValue(a.dtype, Math.fround(low));
    const hi = roundToDtypeValue(a.dtype, Math.fround(high));
    const hiOk = (v: number) => (isLowPrecisionFloat(a.dtype) ? v <= hi : v < hi || low === high);
    for (const v of y!.values) {
      if (!(v >= lo && hiOk(v))) throw new Error(`draw ${v} outside [${low}, ${high})`);
    }
    if (!isStats(sample)) return;
    const n = y!.values.length;
    const w = high - low;
    const { mean, variance } = moments(y!.values);
    const scale = Math.max(Math.abs(low), Math.abs(high));
    const meanTol = 6 * w * Math.sqrt(1 / 12 / n) + q * scale;
    const varTol = 6 * w * w * Math.sqrt(1 / 180 / n) + 2 * q * scale * scale;
    if (Math.abs(mean - (low + high) / 2) > meanTol) throw new Error(`mean ${mean}, expected ${(low + high) / 2} +- ${meanTol}`);
    if (Math.abs(variance - (w * w) / 12) > varTol) throw new Error(`variance ${variance}, expected ${(w * w) / 12} +- ${varTol}`);
  },
  errors: () => [
    { inputs: [], attrs: { shape: [2], low: 1, high: 0, ...ZERO_COUNTERS }, error: 'AttrError', message: /randomUniform: expected finite low <= high, got low=1 high=0/, desc: 'low > high' },
    { inputs: [], attrs: { shape: [2], high: Infinity, ...ZERO_COUNTERS }, error: 'AttrError', message: /randomUniform: expected finite low <= high/, desc: 'infinite high' },
    { inputs: [], attrs: { shape: [2], dtype: 'i32', ...ZERO_COUNTERS }, error: 'DTypeError', message: /randomUniform: dtype must be a float dtype .*got i32/, desc: 'integer dtype' },
    ...counterErrors('randomUniform'),
  ],
};

const randomNormalInfo: OpInfo = {
  op: 'randomNormal',
  dtypes: FLOAT_DTYPES,
  samples: (rng, dtype) => randomSamples(rng, dtype, (r) => [{}, { mean: 3, std: 0.5 }, { mean: r.uniform(-2, 2), std: r.uniform(0.1, 3) }, { mean: -1.5, std: 0 }]),
  reference: (_inputs, attrs) => {
    const a = attrs as unknown as Counters & { shape: number[]; dtype: DType; mean?: number; std?: number };
    const n = sizeOf(a.shape);
    // Box-Muller on u1 = ((x0 >>> 8) + 1) * 2^-24 in (0, 1], u2 = (x1 >>> 8) * 2^-24; then rounded to f32.
    const v = Float64Array.from({ length: n }, (_, i) => {
      const [x0, x1] = philoxAt(a, i);
      const u1 = ((x0 >>> 8) + 1) * 2 ** -24;
      const u2 = (x1 >>> 8) * 2 ** -24;
      return Math.fround((a.mean ?? 0) + (a.std ?? 1) * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
    });
    return [{ shape: a.shape, dtype: a.dtype, values: v }];
  },
  check: ([y], sample) => {
    const a = sample.attrs as { mean?: number; std?: number; dtype: DType };
    const mu = a.mean ?? 0;
    const sd = a.std ?? 1;
    // |z| <= sqrt(-2 ln 2^-24) because u1 >= 2^-24.
    const zmax = Math.sqrt(-2 * Math.log(2 ** -24));
    const q = quantization(a.dtype);
    for (const v of y!.values) {
      if (!(Math.abs(v - mu) <= sd * zmax * (1 + 2 * q) + 2 * q * Math.abs(mu) + 1e-6)) throw new Error(`draw ${v} beyond ${zmax} standard deviations`);
    }
    if (!isStats(sample)) return;
    const n = y!.values.length;
    const { mean, variance } = moments(y!.values);
    const scale = Math.abs(mu) + 3 * sd;
    const meanTol = 6 * sd / Math.sqrt(n) + q * scale;
    const varTol = 6 * sd * sd * Math.sqrt(2 / n) + 2 * q * scale * scale;
    if (Math.abs(mean - mu) > meanTol) throw new Error(`mean ${mean}, expected ${mu} +- ${meanTol}`);
    if (Math.abs(variance - sd * sd) > varTol) throw new Error(`variance ${variance}, expected ${sd * sd} +- ${varTol}`);
  },
  errors: () => [
    { inputs: [], attrs: { shape: [2], std: -1, ...ZERO_COUNTERS }, error: 'AttrError', message: /randomNormal: expected finite mean and finite std >= 0, got mean=0 std=-1/, desc: 'negative std' },
    { inputs: [], attrs: { shape: [2], mean: NaN, ...ZERO_COUNTERS }, error: 'AttrError', message: /randomNormal: expected finite mean/, desc: 'NaN mean' },
    { inputs: [], attrs: { shape: [2], dtype: 'bool', ...ZERO_COUNTERS }, error: 'DTypeError', message: /randomNormal: dtype must be a float dtype .*got bool/, desc: 'bool dtype' },
    ...counterErrors('randomNormal'),
  ],
};

function counterErrors(op: string): ErrorInput[] {
  return [
    { inputs: [], attrs: { shape: [2], key1: 0, counterLo: 0, counterHi: 0 }, error: 'AttrError', message: new RegExp(`${op}: attribute 'key0' is required`), desc: 'missing key' },
    { inputs: [], attrs: { shape: [2], ...ZERO_COUNTERS, counterLo: 2 ** 32 }, error: 'AttrError', message: new RegExp(`${op}: attribute 'counterLo' expected an integer <= 4294967295, got 4294967296`), desc: 'counter word out of u32 range' },
    { inputs: [], attrs: { shape: [2], ...ZERO_COUNTERS, key1: -1 }, error: 'AttrError', message: new RegExp(`${op}: attribute 'key1' expected an integer >= 0, got -1`), desc: 'negative key word' },
    { inputs: [], attrs: { shape: [2, -1], ...ZERO_COUNTERS }, error: 'ShapeError', message: new RegExp(`${op}: expected a shape \\(array of non-negative integers\\), got \\[2,-1\\]`), desc: 'negative dim' },
  ];
}

// ---------------------------------------------------------------------------------------------
// dropout (a function: uniform draw + where, so it runs through `call`)

const dropoutInfo: OpInfo = {
  op: 'dropout',
  dtypes: FLOAT_DTYPES,
  call: ([x], attrs) => [dropout(x, attrs.p as number, { generator: new Generator(attrs.seed as number) })],
  samples: (rng, dtype) =>
    (
      [
        [[7], 0.5, 'odd size'],
        [[3, 1, 5], 0.1, 'size-1 dim'],
        [[], 0.3, 'scalar'],
        [[4, 6], 0, 'p = 0 (copy)'],
        [[4, 6], 1, 'p = 1 (zeros)'],
        [[2, 0, 3], 0.5, 'empty'],
        [[64, 33], rng.uniform(0.05, 0.95), 'larger, random p'],
      ] as const
    ).map(([shape, p, desc]) => ({
      inputs: [rng.tensor(shape, dtype, { minAbs: 0.25 })],
      attrs: { p, seed: u32(rng) },
      desc,
      ...(sizeOf(shape) > 100 ? { noGrad: true } : {}),
    })),
  // Keep element i when its uniform draw (key = seed, counter i) is >= p (p in f32); kept values
  // are scaled by 1/(1-p) in f32.
  reference: ([x], attrs) => {
    const p = attrs.p as number;
    const seed = attrs.seed as number;
    const scale = p < 1 ? Math.fround(1 / (1 - p)) : 0;
    const c: Counters = { key0: seed >>> 0, key1: 0, counterLo: 0, counterHi: 0 };
    const v = Float64Array.from(x!.values, (xi, i) => {
      if (p === 0) return xi;
      const u = (philoxAt(c, i)[0] >>> 8) * 2 ** -24;
      // x * scale in float64: the runner rounds it to the dtype (f32 first is the same value), and
      // the reference stays smooth for the finite-difference gradient check.
      return u >= Math.fround(p) ? xi * scale : 0;
    });
    return [{ shape: x!.shape, dtype: x!.dtype, values: v }];
  },
  grad: true,
  errors: (rng) => [
    { inputs: [rng.tensor([3], 'f32')], attrs: { p: 1.5, seed: 1 }, error: 'AttrError', message: /dropout: p must be a number in \[0, 1\], got 1.5/, desc: 'p > 1' },
    { inputs: [rng.tensor([3], 'f32')], attrs: { p: NaN, seed: 1 }, error: 'AttrError', message: /dropout: p must be a number in \[0, 1\], got NaN/, desc: 'NaN p' },
    { inputs: [rng.tensor([3], 'i32')], attrs: { p: 0.5, seed: 1 }, error: 'DTypeError', message: /dropout: x must have a float dtype .*got i32/, desc: 'integer x' },
    { inputs: [rng.tensor([3], 'f32')], attrs: { p: 0.5, seed: 1 }, disposed: [0], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed x' },
  ],
};

export const creationOpInfos: OpInfo[] = [arangeInfo, causalMaskInfo, randomUniformInfo, randomNormalInfo, dropoutInfo];
