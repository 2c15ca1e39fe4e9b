/**
 * Test helpers: small models of the real architecture (built with a seeded generator), seeds that
 * are printed, and a float64 log-softmax reference.
 */
import '@ring-linear/backend-cpu';
import { Generator } from '@ring-linear/core';
import { ByteTokenizer, RingLinearForCausalLM, configToJson, createConfig, preset, type RingLinearConfigInput } from '@ring-linear/models';

/** A fresh seed, printed so a failure can be replayed. */
export function newSeed(label: string): number {
  const seed = (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) >>> 0;
  console.log(`[${label}] seed ${seed}`);
  return seed;
}

/** mulberry32: small seeded uniform generator in [0, 1). */
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

/**
 * The 'tiny' preset (layers linear, linear, linear, softmax; dense layer 0, MoE after; byte
 * vocabulary 259) with a larger init range so the next-token distributions are far from uniform.
 */
export function tinyModel(seed: number, overrides: RingLinearConfigInput = {}): RingLinearForCausalLM {
  const config = createConfig({ ...configToJson(preset('tiny')), initializer_range: 0.15, ...overrides });
  return new RingLinearForCausalLM(config, { generator: new Generator(seed) });
}

/** A very small hybrid (linear layer with a dense MLP, softmax layer with MoE) for long loops. */
export function microModel(seed: number, overrides: RingLinearConfigInput = {}): RingLinearForCausalLM {
  return tinyModel(seed, {
    hidden_size: 32,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 16,
    num_hidden_layers: 2,
    layer_group_size: 2,
    intermediate_size: 32,
    num_experts: 4,
    num_experts_per_tok: 2,
    n_group: 2,
    topk_group: 1,
    moe_intermediate_size: 16,
    moe_shared_expert_intermediate_size: 16,
    group_norm_size: 1,
    ...overrides,
  });
}

export const byteTokenizer = new ByteTokenizer();

/** log-softmax of one row in float64. */
export function logSoftmax64(row: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]!);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i]! - m);
  const lse = m + Math.log(s);
  return Float64Array.from(row, (v) => v - lse);
}

/** Random token ids in [0, 256) (bytes) of length n. */
export function randomIds(r: () => number, n: number): number[] {
  return Array.from({ length: n }, () => Math.floor(r() * 256));
}
