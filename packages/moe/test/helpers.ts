/**
 * Test helpers: a seeded RNG (the seed is printed; MOE_SEED reproduces a run), host arrays, and the
 * float64 references written from MODEL_SPEC §4 as naive per-token loops.
 *
 * Selection in the references mirrors the spec's fp32 rounding points (logits, scores, biased
 * scores and group scores are f32 values; ties are exact ties of those f32 values), so references
 * and kernels choose the same experts; every value that flows into an output is float64.
 */
import { expect } from 'vitest';
import { tensor, type DType, type Tensor } from '@ring-linear/core';

const envSeed = Number(process.env.MOE_SEED);
export const SEED = process.env.MOE_SEED && Number.isFinite(envSeed) ? envSeed >>> 0 : (Date.now() ^ (process.pid << 10)) >>> 0;
console.log(`moe tests: seed ${SEED} (reproduce with MOE_SEED=${SEED})`);

/** mulberry32 (small, fast, good enough for test data). */
export function makeRng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(Math.max(next(), 1e-12))) * Math.cos(2 * Math.PI * next());
  return {
    next,
    normal,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo)),
    /** f32-representable normal values times scale (never all zero). */
    array(n: number, scale = 1): Float64Array {
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = Math.fround(normal() * scale);
      if (n > 0 && a.every((v) => v === 0)) a[0] = Math.fround(scale);
      return a;
    },
    permutation(n: number): number[] {
      const p = Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [p[i], p[j]] = [p[j]!, p[i]!];
      }
      return p;
    },
  };
}
export type Rng = ReturnType<typeof makeRng>;

/** A test-local rng derived from the run seed and a label. */
export function rngFor(label: string): Rng {
  let h = SEED ^ 0x9e3779b9;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
  return makeRng(h >>> 0);
}

export function t(values: ArrayLike<number>, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  return dtype === 'i32' ? tensor(Int32Array.from(values), shape, 'i32') : tensor(Float32Array.from(values), shape, dtype);
}

export function read(x: Tensor): Float64Array {
  return Float64Array.from(x.dataSync());
}

/** |actual - expected| <= atol + rtol * max|expected| elementwise (outputs of sums cancel). */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, what: string, atol = 0): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    if (!Number.isFinite(a)) throw new Error(`${what}: element ${i} is ${a} (expected ${expected[i]}); seed ${SEED}`);
    const err = Math.abs(a - expected[i]!);
    if (err > worst) {
      worst = err;
      at = i;
    }
  }
  const tol = atol + rtol * scale;
  if (worst > tol) {
    throw new Error(`${what}: max error ${worst.toExponential(3)} at ${at} (got ${actual[at]}, expected ${expected[at]}) > ${tol.toExponential(3)}; seed ${SEED}`);
  }
}

export function expectSameBits(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) throw new Error(`${what}: element ${i} is ${actual[i]}, expected exactly ${expected[i]}; seed ${SEED}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Router reference (MODEL_SPEC §4)

export interface RouterSettings {
  readonly topK: number;
  readonly nGroup?: number;
  readonly topkGroup?: number;
  readonly scoreFunction?: 'sigmoid' | 'softmax';
  readonly normTopkProb?: boolean;
  readonly routedScalingFactor?: number;
}

export interface RefRouting {
  /** [N*K] chosen experts, best first. */
  readonly indices: number[];
  /** [N*K] routing weights (float64). */
  readonly weights: Float64Array;
  /** [N*E] unbiased scores (float64). */
  readonly scores: Float64Array;
}

const f = Math.fround;

/** Descending with ties to the lower index: the k best positions of vals. */
function topIndices(vals: readonly number[], k: number): number[] {
  return vals
    .map((v, i) => [v, i] as const)
    .sort((a, b) => (b[0] !== a[0] ? b[0] - a[0] : a[1] - b[1]))
    .slice(0, k)
    .map(([, i]) => i);
}

/**
 * The router for one token, written from the spec as plainly as possible: x [H], w [E*H] row-major,
 * bias [E]. Returns chosen experts, their weights, all scores.
 */
export function routeToken(x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number>, e: number, r: RouterSettings) {
  const h = x.length;
  const nGroup = r.nGroup ?? 1;
  const topkGroup = r.topkGroup ?? nGroup;
  const logits: number[] = [];
  for (let j = 0; j < e; j++) {
    let acc = 0;
    for (let c = 0; c < h; c++) acc += x[c]! * w[j * h + c]!;
    logits.push(acc);
  }
  // Float64 scores (outputs) and their f32 counterparts (selection).
  let scores: number[];
  let scores32: number[];
  if ((r.scoreFunction ?? 'sigmoid') === 'sigmoid') {
    scores = logits.map((l) => 1 / (1 + Math.exp(-l)));
    scores32 = logits.map((l) => f(1 / (1 + Math.exp(-f(l)))));
  } else {
    const soft = (ls: number[]) => {
      const m = Math.max(...ls);
      const ex = ls.map((l) => Math.exp(l - m));
      const s = ex.reduce((a, b) => a + b, 0);
      return ex.map((v) => v / s);
    };
    scores = soft(logits);
    scores32 = soft(logits.map(f)).map(f);
  }
  let biased = scores32.map((s, j) => f(s + bias[j]!));
  if (topkGroup < nGroup) {
    const size = e / nGroup;
    const groupScores: number[] = [];
    for (let g = 0; g < nGroup; g++) {
      const vals = biased.slice(g * size, (g + 1) * size).sort((a, b) => b - a);
      groupScores.push(size >= 2 ? f(vals[0]! + vals[1]!) : vals[0]!);
    }
    const kept = new Set(topIndices(groupScores, topkGroup));
    biased = biased.map((v, j) => (kept.has(Math.floor(j / size)) ? v : 0)); // 0.0, as the reference
  }
  const idx = topIndices(biased, r.topK);
  let wts = idx.map((j) => scores[j]!);
  if (r.normTopkProb ?? true) {
    const s = wts.reduce((a, b) => a + b, 0);
    wts = wts.map((v) => v / (s + 1e-20));
  }
  wts = wts.map((v) => v * (r.routedScalingFactor ?? 1));
  return { indices: idx, weights: wts, scores };
}

/** The router over N tokens (x [N*H] row-major). */
export function refRouter(x: ArrayLike<number>, n: number, w: ArrayLike<number>, bias: ArrayLike<number>, e: number, r: RouterSettings): RefRouting {
  const h = x.length / Math.max(n, 1);
  const indices: number[] = [];
  const weights: number[] = [];
  const scores: number[] = [];
  for (let t = 0; t < n; t++) {
    const out = routeToken(Array.prototype.slice.call(x, t * h, (t + 1) * h), w, bias, e, r);
    indices.push(...out.indices);
    weights.push(...out.weights);
    scores.push(...out.scores);
  }
  return { indices, weights: Float64Array.from(weights), scores: Float64Array.from(scores) };
}

// ---------------------------------------------------------------------------------------------
// Whole MoE reference

export interface RefExpert {
  /** [I*H], [I*H], [H*I] row-major (the Linear layout [out, in]). */
  readonly gate: ArrayLike<number>;
  readonly up: ArrayLike<number>;
  readonly down: ArrayLike<number>;
}

/** down(silu(gate x) * up x) in float64 for one token x [H]. */
export function refSwiGLU(x: ArrayLike<number>, ex: RefExpert, inter: number): Float64Array {
  const h = x.length;
  const act = new Float64Array(inter);
  for (let i = 0; i < inter; i++) {
    let g = 0;
    let u = 0;
    for (let c = 0; c < h; c++) {
      g += ex.gate[i * h + c]! * x[c]!;
      u += ex.up[i * h + c]! * x[c]!;
    }
    act[i] = (g / (1 + Math.exp(-g))) * u;
  }
  const y = new Float64Array(h);
  for (let c = 0; c < h; c++) {
    let s = 0;
    for (let i = 0; i < inter; i++) s += ex.down[c * inter + i]! * act[i]!;
    y[c] = s;
  }
  return y;
}

export interface RefMoEParams {
  readonly hidden: number;
  readonly experts: number;
  readonly inter: number;
  readonly sharedInter: number;
  readonly gateWeight: ArrayLike<number>;
  readonly bias: ArrayLike<number>;
  readonly routed: readonly RefExpert[];
  readonly shared: RefExpert | null;
  readonly router: RouterSettings;
}

/** y[t] = sum_k w_k Expert_{idx_k}(x_t) + Shared(x_t), token by token, float64 (MODEL_SPEC §4). */
export function refMoE(x: ArrayLike<number>, n: number, p: RefMoEParams): { y: Float64Array; indices: number[] } {
  const h = p.hidden;
  const y = new Float64Array(n * h);
  const indices: number[] = [];
  for (let t = 0; t < n; t++) {
    const xt = Array.prototype.slice.call(x, t * h, (t + 1) * h) as number[];
    const r = routeToken(xt, p.gateWeight, p.bias, p.experts, p.router);
    indices.push(...r.indices);
    r.indices.forEach((e, k) => {
      const ye = refSwiGLU(xt, p.routed[e]!, p.inter);
      for (let c = 0; c < h; c++) y[t * h + c] += r.weights[k]! * ye[c]!;
    });
    if (p.shared) {
      const ys = refSwiGLU(xt, p.shared, p.sharedInter);
      for (let c = 0; c < h; c++) y[t * h + c] += ys[c]!;
    }
  }
  return { y, indices };
}
