// Test helpers: a seeded host RNG (fast, unlike drawing through a backend), random weights for a
// model with float64 copies of the exact stored values, and comparisons.
import { roundToDtype, tensor, type Module, type Tensor } from '@ring-linear/core';

export function seedFromEnv(fallback: number): number {
  const env = typeof process !== 'undefined' ? process.env.RING_LINEAR_SEED : undefined;
  return env ? Number(env) : fallback;
}

/** mulberry32: a small, fast, seeded PRNG (uniform in [0, 1)). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function normalSampler(rand: () => number): () => number {
  return () => {
    const u = Math.max(rand(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  };
}

/**
 * Fills every parameter with random values chosen by its role (so activations stay O(1) and every
 * piece matters: norm weights near but not at 1, a nonzero expert bias), rounded to the
 * parameter's dtype. Returns the exact stored values as float64, by every name (tied included).
 */
export function randomizeModel(model: Module, seed: number, options: { roundTo?: 'bf16' } = {}): Map<string, Float64Array> {
  const normal = normalSampler(rng(seed));
  const host = new Map<string, Float64Array>();
  for (const [name, p] of model.namedParameters()) {
    const n = p.size;
    const vals = new Float64Array(n);
    const fanIn = p.shape.length === 2 ? p.shape[1]! : 1;
    for (let i = 0; i < n; i++) {
      let v: number;
      if (name.endsWith('word_embeddings.weight')) v = normal();
      else if (name.endsWith('expert_bias')) v = 0.05 * normal();
      else if (p.rank === 1) v = 1 + 0.2 * normal(); // RMSNorm / g_norm / QK-norm weights
      else v = normal() / Math.sqrt(fanIn);
      const dt = options.roundTo && !name.includes('.mlp.gate.') ? options.roundTo : null;
      v = Math.fround(v);
      if (dt) v = roundToDtype(dt, v);
      if (p.dtype !== 'f32') v = roundToDtype(p.dtype as 'bf16', v);
      vals[i] = v;
    }
    p.assign(tensor(Float32Array.from(vals), p.shape, p.dtype, undefined));
    host.set(name, vals);
  }
  // Second names of shared parameters (a tied lm_head).
  for (const [prefix, m] of model.namedModules()) {
    for (const [n, p] of m.namedOwnParameters()) {
      const full = prefix ? `${prefix}.${n}` : n;
      if (!host.has(full)) host.set(full, host.get(model.namedParameters().find(([, q]) => q === p)![0])!);
    }
  }
  return host;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function values(t: Tensor): Float32Array {
  return t.dataSync() as Float32Array;
}

/** Bit patterns of a tensor's storage. */
export async function bits(t: Tensor): Promise<Uint8Array> {
  return t.bytes();
}
