/**
 * OpInfo records of the FP8 ops for the conformance suite (@ring-linear/conformance): samples over
 * every layout, both FP8 formats, power-of-two scales, odd sizes, partial edge tiles and blocks,
 * size-1 dims, ties, saturation and NaN/inf/all-zero blocks; float64 references written from
 * MODEL_SPEC §8 (the quantizers' references reproduce the rule's f32 division, so they are checked
 * exactly); error inputs.
 *
 *   import '@ring-linear/backend-cpu';
 *   import { fp8OpInfos } from '@ring-linear/fp8/opinfo';
 *   await runConformance({ backend: 'webgpu', opInfos: fp8OpInfos });
 *
 * Importing this module defines the ops.
 */
import { roundToDtype, type DType } from '@ring-linear/core';
import type { ErrorInput, HostTensor, OpInfo, SampleInput, SampleRng } from '@ring-linear/conformance';
import { FP8_BLOCK, SCALE_TINY, fp8Max, pow2Ceil, scalesShape, type Fp8DType, type Fp8Layout } from './formats.js';
import './ops/index.js';

const f = Math.fround;
/** v as `dtype` stores it (round to nearest even). */
const roundTo = (dtype: DType, v: number) => (dtype === 'f32' ? f(v) : roundToDtype(dtype as 'bf16', v));
const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);
const cdiv = (a: number, b: number) => Math.ceil(a / b);

function host(shape: readonly number[], dtype: DType, values: ArrayLike<number>): HostTensor {
  return { shape: [...shape], dtype, values: Float64Array.from(values) };
}

// ---------------------------------------------------------------------------------------------
// Host references (float64, with the f32 roundings the definitions name)

/** Flat scale index of element i of a tensor of `shape` in `layout`. */
function scaleIndex(shape: readonly number[], layout: Fp8Layout, i: number): number {
  const r = shape.length;
  if (layout === 'tensor') return 0;
  const K = shape[r - 1]!;
  if (layout === 'row') return Math.floor(i / K);
  if (layout === 'tile1x128') return Math.floor(i / K) * cdiv(K, FP8_BLOCK) + Math.floor((i % K) / FP8_BLOCK);
  const N = shape[r - 2]!;
  const row = Math.floor(i / K);
  return (Math.floor(row / N) * cdiv(N, FP8_BLOCK) + Math.floor((row % N) / FP8_BLOCK)) * cdiv(K, FP8_BLOCK) + Math.floor((i % K) / FP8_BLOCK);
}

/** The scale rule: max(fl32(amax / max), 2^-126), optionally a power of two up; NaN propagates. */
function refScale(amax: number, dtype: Fp8DType, pow2: boolean): number {
  if (Number.isNaN(amax)) return NaN;
  const s = Math.max(f(amax / fp8Max(dtype)), SCALE_TINY);
  return pow2 && Number.isFinite(s) ? pow2Ceil(s) : s;
}

/** Value of RNE_fp8(fl32(x / s)), saturating. */
const quantValue = (x: number, s: number, dtype: Fp8DType) => roundToDtype(dtype, f(x / s), true);

function refScales(x: ArrayLike<number>, shape: readonly number[], layout: Fp8Layout, dtype: Fp8DType, pow2: boolean): Float64Array {
  const amax = new Float64Array(prod(scalesShape(shape, layout)));
  for (let i = 0; i < x.length; i++) {
    const g = scaleIndex(shape, layout, i);
    const a = Math.abs(x[i]!);
    amax[g] = Number.isNaN(a) || Number.isNaN(amax[g]!) ? NaN : Math.max(amax[g]!, a);
  }
  return amax.map((a) => refScale(a, dtype, pow2));
}

/** [data, scales] of the dynamic quantizer. */
function refQuantize(x: ArrayLike<number>, shape: readonly number[], layout: Fp8Layout, dtype: Fp8DType, pow2: boolean): HostTensor[] {
  const s = refScales(x, shape, layout, dtype, pow2);
  const q = Float64Array.from({ length: x.length }, (_, i) => quantValue(x[i]!, s[scaleIndex(shape, layout, i)]!, dtype));
  return [host(shape, dtype, q), host(scalesShape(shape, layout), 'f32', s)];
}

function transposed(x: ArrayLike<number>, R: number, C: number): Float64Array {
  const y = new Float64Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) y[c * R + r] = x[r * C + c]!;
  return y;
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** RMSNorm of rows of length d (f64, eps as f32), each result rounded to f32. */
function refRmsNorm(x: ArrayLike<number>, w: ArrayLike<number>, d: number, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += x[r * d + j]! ** 2;
    const inv = 1 / Math.sqrt(ss / d + f(eps));
    for (let j = 0; j < d; j++) y[r * d + j] = f(w[j]! * x[r * d + j]! * inv);
  }
  return y;
}

/** The block-scaled GEMM on codes (values) and scales, float64: sum_t (sum_k qa qb) sa sb. */
function refGemm(
  qa: ArrayLike<number>, sa: ArrayLike<number>, qb: ArrayLike<number>, sb: ArrayLike<number>, bOff: number, sbOff: number,
  M: number, N: number, K: number, bRowsPerScale: number, out: Float64Array, mag?: Float64Array, rows?: [number, number],
): void {
  const T = cdiv(K, FP8_BLOCK);
  const [r0, r1] = rows ?? [0, M];
  for (let m = r0; m < r1; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      let am = 0;
      for (let t = 0; t < T; t++) {
        const s = sa[m * T + t]! * sb[sbOff + Math.floor(n / bRowsPerScale) * T + t]!;
        let p = 0;
        let pm = 0;
        for (let k = t * FP8_BLOCK; k < Math.min(K, (t + 1) * FP8_BLOCK); k++) {
          const v = qa[m * K + k]! * qb[bOff + n * K + k]!;
          p += v;
          pm += Math.abs(v);
        }
        acc += p * s;
        am += pm * Math.abs(s);
      }
      out[m * N + n] += acc;
      if (mag) mag[m * N + n] += am;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sample helpers

const FP8: readonly Fp8DType[] = ['f8e4m3', 'f8e5m2'];

/** Values with outliers (a few 20x): tiles with very different amax. */
function act(rng: SampleRng, shape: readonly number[], dtype: DType, scale = 1): HostTensor {
  const t = rng.tensor(shape, dtype, { scale });
  return host(shape, dtype, t.values.map((x) => (rng.next() < 0.02 ? roundTo(dtype, x * 20) : x)));
}

/** Positive f32 scales (log-normal around `scale`). */
function scalesOf(rng: SampleRng, shape: readonly number[], scale = 0.05): HostTensor {
  return rng.tensor(shape, 'f32', { positive: true, scale });
}

/** Codes of an FP8 format as values, spread over its range (never all zero). */
function codes(rng: SampleRng, shape: readonly number[], dtype: Fp8DType): HostTensor {
  const max = fp8Max(dtype);
  const vals = Array.from({ length: prod(shape) }, () => roundToDtype(dtype, rng.normal() * max * 0.2 * (rng.next() < 0.1 ? 0.01 : 1), true));
  if (!vals.some((v) => v !== 0)) vals[0] = 1;
  return host(shape, dtype, vals);
}

const QUANT_CASES: readonly { shape: number[]; layout: Fp8Layout; desc: string }[] = [
  { shape: [1, 1], layout: 'tile1x128', desc: 'one element' },
  { shape: [3, 130], layout: 'tile1x128', desc: 'partial edge tile (2 of 128)' },
  { shape: [2, 3, 257], layout: 'tile1x128', desc: 'batch dims, 3 tiles' },
  { shape: [5, 7], layout: 'row', desc: 'per row' },
  { shape: [2, 300], layout: 'row', desc: 'long rows' },
  { shape: [7], layout: 'tensor', desc: 'per tensor, rank 1' },
  { shape: [3, 129], layout: 'tensor', desc: 'per tensor, rank 2' },
  { shape: [130, 131], layout: 'block128x128', desc: 'four blocks, partial edges' },
  { shape: [2, 5, 3], layout: 'block128x128', desc: 'stacked small blocks' },
];

function quantErrors(): ErrorInput[] {
  const x = host([2, 3], 'f32', [1, 2, 3, 4, 5, 6]);
  return [
    { inputs: [host([2], 'i32', [1, 2])], attrs: {}, error: 'DTypeError', message: /input 'x' must have dtype f32\|bf16\|f16, got i32/ },
    { inputs: [x], attrs: { dtype: 'bf16' }, error: 'AttrError', message: /attribute 'dtype' expected an FP8 dtype/ },
    { inputs: [x], attrs: { layout: 'block' }, error: 'AttrError', message: /attribute 'layout' expected one of/ },
    { inputs: [host([3], 'f32', [1, 2, 3])], attrs: { layout: 'block128x128' }, error: 'ShapeError', message: /layout 'block128x128' needs 'x' of rank >= 2/ },
    { inputs: [host([0], 'f32', [])], attrs: { layout: 'tensor' }, error: 'ShapeError', message: /to hold at least one element/ },
    { inputs: [x], disposed: [0], error: 'DisposedTensorError', message: /was disposed/ },
  ];
}

// ---------------------------------------------------------------------------------------------
// Records

const fp8Quantize: OpInfo = {
  op: 'fp8Quantize',
  dtypes: ['f32', 'bf16', 'f16'],
  exact: true,
  samples: (rng, dtype) => {
    const out: SampleInput[] = [];
    for (const c of QUANT_CASES) {
      for (const q of FP8) {
        out.push({ inputs: [act(rng, c.shape, dtype, 2)], attrs: { dtype: q, layout: c.layout, pow2Scale: false }, desc: `${c.desc}, ${q}` });
      }
      out.push({ inputs: [act(rng, c.shape, dtype, 1e-3)], attrs: { dtype: 'f8e4m3', layout: c.layout, pow2Scale: true }, desc: `${c.desc}, pow2 scales` });
    }
    // Specials: a NaN tile, an inf tile, an all-zero tile with -0, ties at scale 1 (amax 448).
    const special = [448, 1.0625, 1.1875, 2 ** -10, 3 * 2 ** -10, 432, -1.0625, 232, ...new Array<number>(120).fill(0.5)];
    const rows = [
      special,
      [NaN, ...new Array<number>(127).fill(1)],
      [Infinity, -3, ...new Array<number>(126).fill(1)],
      [0, -0, ...new Array<number>(126).fill(0)],
    ];
    out.push({ inputs: [host([4, 128], dtype, rows.flat().map((v) => roundTo(dtype, v)))], attrs: { dtype: 'f8e4m3', layout: 'tile1x128' }, desc: 'ties at scale 1, NaN, inf and all-zero tiles', noGrad: true });
    return out;
  },
  reference: ([x], a) => refQuantize(x!.values, x!.shape, a.layout as Fp8Layout, a.dtype as Fp8DType, a.pow2Scale === true),
  errors: quantErrors,
};

const fp8QuantizeWithScales: OpInfo = {
  op: 'fp8QuantizeWithScales',
  dtypes: ['f32', 'bf16'],
  exact: true,
  samples: (rng, dtype) => {
    const out: SampleInput[] = [];
    for (const c of QUANT_CASES) {
      for (const q of FP8) {
        // Scales around amax / (4 * max): many values saturate.
        const s = scalesOf(rng, scalesShape(c.shape, c.layout), q === 'f8e4m3' ? 2 / 448 : 2 / 57344);
        out.push({ inputs: [act(rng, c.shape, dtype, 2), s], attrs: { dtype: q, layout: c.layout }, desc: `${c.desc}, ${q}, saturating` });
      }
    }
    const sp = [1, 500, -500, 464, 465, Infinity, -Infinity, NaN, 0.3, -0];
    out.push({ inputs: [host([1, sp.length], dtype, sp), host([1, 1], 'f32', [1])], attrs: { dtype: 'f8e4m3', layout: 'row' }, desc: 'saturation at 448, +-inf, NaN, -0' });
    return out;
  },
  reference: ([x, s], a) => {
    const layout = a.layout as Fp8Layout;
    const dtype = a.dtype as Fp8DType;
    return [host(x!.shape, dtype, x!.values.map((v, i) => quantValue(v, s!.values[scaleIndex(x!.shape, layout, i)]!, dtype)))];
  },
  errors: () => [
    { inputs: [host([2, 3], 'f32', [1, 2, 3, 4, 5, 6]), host([3], 'f32', [1, 1, 1])], attrs: { layout: 'row' }, error: 'ShapeError', message: /'scales' must have shape \[2, 1\]/ },
    { inputs: [host([2, 3], 'f32', [1, 2, 3, 4, 5, 6]), host([2, 1], 'bf16', [1, 1])], attrs: { layout: 'row' }, error: 'DTypeError', message: /input 'scales' must have dtype f32/ },
  ],
};

const fp8Dequantize: OpInfo = {
  op: 'fp8Dequantize',
  dtypes: ['f8e4m3', 'f8e5m2'],
  exact: true,
  samples: (rng, dtype) =>
    QUANT_CASES.flatMap((c) => [
      { inputs: [codes(rng, c.shape, dtype as Fp8DType), scalesOf(rng, scalesShape(c.shape, c.layout))], attrs: { layout: c.layout }, desc: c.desc },
      { inputs: [codes(rng, c.shape, dtype as Fp8DType), scalesOf(rng, scalesShape(c.shape, c.layout))], attrs: { layout: c.layout, outDtype: 'bf16' }, desc: `${c.desc}, bf16 out` },
    ]),
  reference: ([q, s], a) => {
    const layout = a.layout as Fp8Layout;
    return [host(q!.shape, (a.outDtype as DType | undefined) ?? 'f32', q!.values.map((v, i) => f(v * s!.values[scaleIndex(q!.shape, layout, i)]!)))];
  },
  errors: () => [
    { inputs: [host([2, 3], 'f32', [1, 2, 3, 4, 5, 6]), host([2, 1], 'f32', [1, 1])], attrs: { layout: 'row' }, error: 'DTypeError', message: /input 'data' must have dtype f8e4m3\|f8e5m2, got f32/ },
    { inputs: [host([2, 3], 'f8e4m3', [1, 2, 3, 4, 5, 6]), host([2, 1], 'f32', [1, 1])], attrs: { layout: 'row', outDtype: 'i32' }, error: 'AttrError', message: /'outDtype' expected one of/ },
  ],
};

const fp8QuantTranspose: OpInfo = {
  op: 'fp8QuantTranspose',
  dtypes: ['f32', 'bf16'],
  exact: true,
  samples: (rng, dtype) =>
    ([[1, 1], [3, 130], [129, 5], [130, 257]] as const).flatMap(([M, K]) =>
      FP8.map((q, i) => ({ inputs: [act(rng, [M, K], dtype, 2)], attrs: { dtype: q, pow2Scale: i === 1 }, desc: `[${M}, ${K}] ${q}${i === 1 ? ' pow2' : ''}` })),
    ),
  reference: ([x], a) => {
    const [M, K] = [x!.shape[0]!, x!.shape[1]!];
    const [dtype, pow2] = [a.dtype as Fp8DType, a.pow2Scale === true];
    return [...refQuantize(x!.values, [M, K], 'tile1x128', dtype, pow2), ...refQuantize(transposed(x!.values, M, K), [K, M], 'tile1x128', dtype, pow2)];
  },
  errors: () => [
    { inputs: [host([2, 2, 2], 'f32', [1, 2, 3, 4, 5, 6, 7, 8])], attrs: {}, error: 'ShapeError', message: /'x' must have rank 2 \[M, K\]/ },
  ],
};

/** Quantized outputs of the fused ops: codes within one step, scales to f32 (the default tolerances). */
const fp8RmsNormQuant: OpInfo = {
  op: 'fp8RmsNormQuant',
  dtypes: ['f32', 'bf16'],
  samples: (rng, dtype) =>
    ([[1, 1], [3, 127], [4, 300], [2, 3, 128]] as const).flatMap((shape) =>
      FP8.map((q, i) => {
        const D = shape[shape.length - 1]!;
        const w = rng.tensor([D], 'f32', { positive: true, scale: 1 });
        return { inputs: [act(rng, shape, dtype, 2), w], attrs: { eps: 1e-5, dtype: q, pow2Scale: i === 1 }, desc: `${JSON.stringify(shape)} ${q}` };
      }),
    ),
  reference: ([x, w], a) => {
    const D = x!.shape[x!.shape.length - 1]!;
    const y = refRmsNorm(x!.values, w!.values, D, a.eps as number);
    return refQuantize(y, x!.shape, 'tile1x128', a.dtype as Fp8DType, a.pow2Scale === true);
  },
  errors: () => [
    { inputs: [host([2, 3], 'f32', [1, 2, 3, 4, 5, 6]), host([2], 'f32', [1, 1])], attrs: {}, error: 'ShapeError', message: /'weight' must have shape \[3\]/ },
    { inputs: [host([2, 3], 'f32', [1, 2, 3, 4, 5, 6]), host([3], 'f32', [1, 1, 1])], attrs: { eps: -1 }, error: 'AttrError', message: /'eps' expected a finite number >= 0/ },
  ],
};

function refSwiglu(gu: ArrayLike<number>, rows: number, I: number): Float64Array {
  const h = new Float64Array(rows * I);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < I; j++) {
      const g = gu[r * 2 * I + j]!;
      h[r * I + j] = f(g * sigmoid(g) * gu[r * 2 * I + I + j]!);
    }
  }
  return h;
}

const fp8SwigluQuant: OpInfo = {
  op: 'fp8SwigluQuant',
  dtypes: ['f32', 'bf16'],
  samples: (rng, dtype) =>
    ([[1, 2], [3, 260], [2, 3, 200]] as const).flatMap((shape) =>
      FP8.map((q, i) => ({ inputs: [act(rng, shape, dtype, 2)], attrs: { dtype: q, pow2Scale: i === 1 }, desc: `${JSON.stringify(shape)} ${q}` })),
    ),
  reference: ([gu], a) => {
    const I = gu!.shape[gu!.shape.length - 1]! / 2;
    const rows = gu!.values.length / (2 * I);
    const shape = [...gu!.shape.slice(0, -1), I];
    return refQuantize(refSwiglu(gu!.values, rows, I), shape, 'tile1x128', a.dtype as Fp8DType, a.pow2Scale === true);
  },
  errors: () => [
    { inputs: [host([2, 3], 'f32', [1, 2, 3, 4, 5, 6])], attrs: {}, error: 'ShapeError', message: /must be even/ },
  ],
};

const fp8SwigluBackwardQuant: OpInfo = {
  op: 'fp8SwigluBackwardQuant',
  dtypes: ['f32', 'bf16'],
  samples: (rng, dtype) =>
    ([[1, 1], [3, 130], [130, 64]] as const).flatMap(([M, I]) =>
      FP8.map((q, i) => ({
        inputs: [act(rng, [M, 2 * I], dtype, 2), rng.tensor([M, I], dtype, { scale: 0.1 })],
        attrs: { dtype: q, pow2Scale: i === 1 },
        desc: `[${M}, 2x${I}] ${q}`,
      })),
    ),
  reference: ([gu, dh], a) => {
    const [M, C] = [gu!.shape[0]!, gu!.shape[1]!];
    const I = C / 2;
    const d = new Float64Array(M * C);
    for (let m = 0; m < M; m++) {
      for (let j = 0; j < I; j++) {
        const g = gu!.values[m * C + j]!;
        const u = gu!.values[m * C + I + j]!;
        const s = sigmoid(g);
        const dhv = dh!.values[m * I + j]!;
        d[m * C + j] = f(dhv * u * (s + g * s * (1 - s)));
        d[m * C + I + j] = f(dhv * g * s);
      }
    }
    const [dtype, pow2] = [a.dtype as Fp8DType, a.pow2Scale === true];
    return [...refQuantize(d, [M, C], 'tile1x128', dtype, pow2), ...refQuantize(transposed(d, M, C), [C, M], 'tile1x128', dtype, pow2)];
  },
  errors: () => [
    { inputs: [host([2, 2], 'f32', [1, 2, 3, 4]), host([2, 2], 'f32', [1, 2, 3, 4])], attrs: {}, error: 'ShapeError', message: /'dh' must have shape \[2, 1\]/ },
  ],
};

const fp8GroupRmsNormGateQuant: OpInfo = {
  op: 'fp8GroupRmsNormGateQuant',
  dtypes: ['f32', 'bf16'],
  samples: (rng, dtype) =>
    ([[1, 4, 1], [3, 256, 4], [5, 96, 3], [2, 130, 2]] as const).flatMap(([R, C, groups]) =>
      FP8.map((q, i) => ({
        inputs: [act(rng, [R, C], dtype, 2), rng.tensor([R, C], dtype, { scale: 2 }), rng.tensor([C], 'f32', { positive: true, scale: 1 })],
        attrs: { groups, eps: 1e-6, dtype: q, pow2Scale: i === 1 },
        desc: `[${R}, ${C}] in ${groups} groups, ${q}`,
      })),
    ),
  reference: ([o, gate, w], a) => {
    const C = o!.shape[o!.shape.length - 1]!;
    const groups = a.groups as number;
    const size = C / groups;
    const n = refRmsNorm(o!.values, new Float64Array(size).fill(1), size, a.eps as number);
    const y = n.map((v, i) => f(v * w!.values[i % C]! * sigmoid(gate!.values[i]!)));
    return refQuantize(y, o!.shape, 'tile1x128', a.dtype as Fp8DType, a.pow2Scale === true);
  },
  errors: () => [
    {
      inputs: [host([2, 3], 'f32', [1, 2, 3, 4, 5, 6]), host([2, 3], 'f32', [1, 2, 3, 4, 5, 6]), host([3], 'f32', [1, 1, 1])],
      attrs: { groups: 2 }, error: 'ShapeError', message: /do not divide into 2 equal groups/,
    },
    {
      inputs: [host([2, 3], 'f32', [1, 2, 3, 4, 5, 6]), host([3], 'f32', [1, 2, 3]), host([3], 'f32', [1, 1, 1])],
      attrs: {}, error: 'ShapeError', message: /'gate' must have shape \[2, 3\]/,
    },
  ],
};

const routerGemm: OpInfo = {
  op: 'routerGemm',
  dtypes: ['f32', 'bf16', 'f16'],
  grad: true,
  samples: (rng, dtype) =>
    ([[1, 7, 3], [5, 64, 16], [2, 3, 33, 9]] as const).map((s) => {
      const H = s[s.length - 2]!;
      const E = s[s.length - 1]!;
      const lead = s.slice(0, -2);
      return { inputs: [rng.tensor([...lead, H], dtype), rng.tensor([E, H], dtype, { scale: 0.1 })], desc: `[${[...lead, H]}] x [${E}, ${H}]^T` };
    }),
  reference: ([x, w]) => {
    const [E, H] = [w!.shape[0]!, w!.shape[1]!];
    const M = x!.values.length / H;
    const y = new Float64Array(M * E);
    for (let m = 0; m < M; m++) for (let e = 0; e < E; e++) for (let k = 0; k < H; k++) y[m * E + e] += x!.values[m * H + k]! * w!.values[e * H + k]!;
    return [host([...x!.shape.slice(0, -1), E], 'f32', y)];
  },
  magnitude: ([x, w]) => {
    const [E, H] = [w!.shape[0]!, w!.shape[1]!];
    const M = x!.values.length / H;
    const y = new Float64Array(M * E);
    for (let m = 0; m < M; m++) for (let e = 0; e < E; e++) for (let k = 0; k < H; k++) y[m * E + e] += Math.abs(x!.values[m * H + k]! * w!.values[e * H + k]!);
    return [y];
  },
  errors: () => [
    { inputs: [host([2, 3], 'f32', [1, 2, 3, 4, 5, 6]), host([2, 2], 'f32', [1, 2, 3, 4])], attrs: {}, error: 'ShapeError', message: /'w' must have shape \[E, 3\]/ },
    { inputs: [host([1, 3], 'i32', [1, 2, 3]), host([2, 3], 'f32', [1, 2, 3, 4, 5, 6])], attrs: {}, error: 'DTypeError', message: /input 'x' must have dtype/ },
  ],
};

const GEMM_CASES: readonly [number, number, number][] = [[1, 1, 1], [3, 5, 129], [1, 130, 200], [17, 140, 300]];

function gemmMagnitudeAndRef(ins: readonly HostTensor[], a: Record<string, unknown>): { y: Float64Array; mag: Float64Array; N: number; M: number } {
  const [qa, sa, qb, sb] = ins;
  const [M, K] = [qa!.shape[0]!, qa!.shape[1]!];
  const N = qb!.shape[0]!;
  const y = new Float64Array(M * N);
  const mag = new Float64Array(M * N);
  refGemm(qa!.values, sa!.values, qb!.values, sb!.values, 0, 0, M, N, K, a.bLayout === 'tile1x128' ? 1 : FP8_BLOCK, y, mag);
  return { y, mag, M, N };
}

const fp8Gemm: OpInfo = {
  op: 'fp8Gemm',
  dtypes: ['f8e4m3', 'f8e5m2'],
  samples: (rng, dtype) =>
    GEMM_CASES.flatMap(([M, N, K]) => {
      const KT = cdiv(K, FP8_BLOCK);
      const a = () => [codes(rng, [M, K], dtype as Fp8DType), scalesOf(rng, [M, KT])];
      return [
        { inputs: [...a(), codes(rng, [N, K], 'f8e4m3'), scalesOf(rng, [cdiv(N, FP8_BLOCK), KT], 1e-3)], attrs: { bLayout: 'block128x128' }, desc: `[${M}, ${K}] x [${N}, ${K}]^T blocks` },
        { inputs: [...a(), codes(rng, [N, K], 'f8e5m2'), scalesOf(rng, [N, KT], 1e-5)], attrs: { bLayout: 'tile1x128', outDtype: 'bf16' }, desc: `[${M}, ${K}] x [${N}, ${K}]^T tiles, bf16 out` },
      ];
    }),
  reference: (ins, a) => {
    const { y, M, N } = gemmMagnitudeAndRef(ins, a);
    return [host([M, N], (a.outDtype as DType | undefined) ?? 'f32', y)];
  },
  magnitude: (ins, a) => [gemmMagnitudeAndRef(ins, a).mag],
  errors: () => [
    {
      inputs: [host([2, 3], 'f8e4m3', [1, 2, 3, 4, 5, 6]), host([2, 1], 'f32', [1, 1]), host([4, 3], 'f8e4m3', new Array(12).fill(1)), host([4, 1], 'f32', [1, 1, 1, 1])],
      attrs: {}, error: 'ShapeError', message: /'bScales' must have shape \[1, 1\]/,
    },
    {
      inputs: [host([2, 3], 'f32', [1, 2, 3, 4, 5, 6]), host([2, 1], 'f32', [1, 1]), host([4, 3], 'f8e4m3', new Array(12).fill(1)), host([1, 1], 'f32', [1])],
      attrs: {}, error: 'DTypeError', message: /input 'a' must have dtype f8e4m3\|f8e5m2/,
    },
    {
      inputs: [host([2, 3], 'f8e4m3', [1, 2, 3, 4, 5, 6]), host([2, 1], 'f32', [1, 1]), host([4, 2], 'f8e4m3', new Array(8).fill(1)), host([1, 1], 'f32', [1])],
      attrs: {}, error: 'ShapeError', message: /must share K/,
    },
  ],
};

const fp8GroupedGemm: OpInfo = {
  op: 'fp8GroupedGemm',
  dtypes: ['f8e4m3', 'f8e5m2'],
  samples: (rng, dtype) =>
    ([
      [11, 130, 200, [0, 3, 3, 4, 9], 'empty expert, rows in no segment'],
      [5, 7, 129, [0, 5], 'one expert'],
      [6, 3, 64, [0, 1, 2, 3, 4, 5, 6], 'one row each'],
    ] as const).map(([M, N, K, offsets, desc]) => {
      const E = offsets.length - 1;
      const KT = cdiv(K, FP8_BLOCK);
      return {
        inputs: [
          codes(rng, [M, K], dtype as Fp8DType), scalesOf(rng, [M, KT]),
          codes(rng, [E, N, K], 'f8e4m3'), scalesOf(rng, [E, cdiv(N, FP8_BLOCK), KT], 1e-3),
          host([E + 1], 'i32', offsets),
        ],
        desc,
      };
    }),
  reference: ([qa, sa, qb, sb, off]) => {
    const [M, K] = [qa!.shape[0]!, qa!.shape[1]!];
    const [E, N] = [qb!.shape[0]!, qb!.shape[1]!];
    const KT = cdiv(K, FP8_BLOCK);
    const y = new Float64Array(M * N);
    for (let e = 0; e < E; e++) {
      const r0 = Math.max(0, off!.values[e]!);
      const r1 = Math.min(M, off!.values[e + 1]!);
      if (r1 > r0) refGemm(qa!.values, sa!.values, qb!.values, sb!.values, e * N * K, e * cdiv(N, FP8_BLOCK) * KT, M, N, K, FP8_BLOCK, y, undefined, [r0, r1]);
    }
    return [host([M, N], 'f32', y)];
  },
  magnitude: ([qa, sa, qb, sb, off]) => {
    const [M, K] = [qa!.shape[0]!, qa!.shape[1]!];
    const [E, N] = [qb!.shape[0]!, qb!.shape[1]!];
    const KT = cdiv(K, FP8_BLOCK);
    const y = new Float64Array(M * N);
    const mag = new Float64Array(M * N);
    for (let e = 0; e < E; e++) {
      const r0 = Math.max(0, off!.values[e]!);
      const r1 = Math.min(M, off!.values[e + 1]!);
      if (r1 > r0) refGemm(qa!.values, sa!.values, qb!.values, sb!.values, e * N * K, e * cdiv(N, FP8_BLOCK) * KT, M, N, K, FP8_BLOCK, y, mag, [r0, r1]);
    }
    return [mag];
  },
  errors: () => [
    {
      inputs: [host([4, 8], 'f8e4m3', new Array(32).fill(1)), host([4, 1], 'f32', [1, 1, 1, 1]), host([2, 3, 8], 'f8e4m3', new Array(48).fill(1)), host([2, 1, 1], 'f32', [1, 1]), host([2], 'i32', [0, 4])],
      attrs: {}, error: 'ShapeError', message: /'offsets' must have shape \[3\]/,
    },
  ],
};

const fp8Linear: OpInfo = {
  op: 'fp8Linear',
  dtypes: ['f32', 'bf16'],
  samples: (rng, dtype) =>
    ([[1, 1, 1], [5, 130, 7], [2, 3, 64, 129]] as const).flatMap((s) => {
      const [K, N] = [s[s.length - 2]!, s[s.length - 1]!];
      const lead = s.slice(0, -2);
      return [false, true].map((pow2Scale) => ({
        inputs: [act(rng, [...lead, K], dtype), rng.tensor([N, K], 'f32', { scale: 1 / Math.sqrt(K) })],
        attrs: { pow2Scale },
        desc: `[${[...lead, K]}] -> ${N}${pow2Scale ? ', pow2 scales' : ''}`,
      }));
    }),
  reference: ([x, w], a) => {
    const [N, K] = [w!.shape[0]!, w!.shape[1]!];
    const M = x!.values.length / K;
    const pow2 = a.pow2Scale === true;
    const dtype = ((a.dtype as Fp8DType | undefined) ?? 'f8e4m3');
    const [qa, sa] = refQuantize(x!.values, [M, K], 'tile1x128', dtype, pow2);
    const [qb, sb] = refQuantize(w!.values, [N, K], 'block128x128', dtype, pow2);
    const y = new Float64Array(M * N);
    refGemm(qa!.values, sa!.values, qb!.values, sb!.values, 0, 0, M, N, K, FP8_BLOCK, y);
    return [host([...x!.shape.slice(0, -1), N], x!.dtype, y)];
  },
  errors: () => [
    { inputs: [host([2, 3], 'f32', [1, 2, 3, 4, 5, 6]), host([2, 2], 'f32', [1, 2, 3, 4])], attrs: {}, error: 'ShapeError', message: /'x' must have shape \[\.\.\., 2\]/ },
    { inputs: [host([2, 3], 'f32', [1, 2, 3, 4, 5, 6]), host([1, 3], 'f32', [1, 2, 3])], attrs: { gradDtype: 'bf16' }, error: 'AttrError', message: /'gradDtype' expected an FP8 dtype/ },
  ],
};

/** Every FP8 op's record. */
export const fp8OpInfos: readonly OpInfo[] = [
  fp8Quantize,
  fp8QuantizeWithScales,
  fp8Dequantize,
  fp8QuantTranspose,
  fp8RmsNormQuant,
  fp8SwigluQuant,
  fp8SwigluBackwardQuant,
  fp8GroupRmsNormGateQuant,
  routerGemm,
  fp8Gemm,
  fp8GroupedGemm,
  fp8Linear,
];
