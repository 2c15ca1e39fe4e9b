/**
 * Test helpers: a seeded RNG (the seed is printed; TRAINER_SEED reproduces a run), temp folders,
 * and the small models the tests train (a shrunk hybrid preset: one linear-attention layer with a
 * dense MLP, one softmax layer with a 4-expert MoE, byte vocabulary).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { RingLinearForCausalLM, configToJson, createConfig, preset, type RingLinearConfig, type RingLinearModelOptions } from '@ring-linear/models';

const envSeed = Number(process.env.TRAINER_SEED);
export const SEED = process.env.TRAINER_SEED && Number.isFinite(envSeed) ? envSeed >>> 0 : (Date.now() ^ (process.pid << 10)) >>> 0;
console.log(`trainer tests: seed ${SEED} (reproduce with TRAINER_SEED=${SEED})`);

/** mulberry32. */
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
  };
}

const temps: string[] = [];
/** A fresh temp folder, removed after the file's tests. */
export async function tempDir(prefix = 'trainer-test-'): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  temps.push(d);
  return d;
}
afterAll(async () => {
  for (const d of temps.splice(0)) await rm(d, { recursive: true, force: true });
});

/** The tiny hybrid the tests use: layers linear+dense, softmax+MoE(4 experts, top 2); hidden `hidden`. */
export function tinyConfig(overrides: Record<string, unknown> = {}): RingLinearConfig {
  const hidden = (overrides.hidden_size as number | undefined) ?? 32;
  return createConfig({
    ...configToJson(preset('tiny')),
    num_hidden_layers: 2,
    layer_group_size: 2,
    hidden_size: hidden,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: hidden / 2,
    intermediate_size: 2 * hidden,
    num_experts: 4,
    num_experts_per_tok: 2,
    n_group: 2,
    topk_group: 1,
    moe_intermediate_size: hidden / 2,
    moe_shared_expert_intermediate_size: hidden / 2,
    group_norm_size: 1,
    max_position_embeddings: 256,
    ...overrides,
  });
}

export function tinyModel(options: RingLinearModelOptions & { config?: RingLinearConfig } = {}): RingLinearForCausalLM {
  return new RingLinearForCausalLM(options.config ?? tinyConfig(), options);
}

/** Float32 rounding of a float64 array. */
export const f32 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a, (v) => Math.fround(v));

/** max |a - b| / (atol + rtol |b|) <= 1 elementwise, with the worst index in the message. */
export function closeTo(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number, what = ''): void {
  if (a.length !== b.length) throw new Error(`${what}: length ${a.length} vs ${b.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const r = Math.abs(a[i]! - b[i]!) / (atol + rtol * Math.abs(b[i]!));
    if (!(r <= worst)) {
      worst = r;
      at = i;
    }
  }
  if (!(worst <= 1)) throw new Error(`${what}: mismatch at ${at}: got ${a[at]}, expected ${b[at]} (ratio ${worst})`);
}
