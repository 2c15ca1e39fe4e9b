/**
 * The demo's model and training recipe: a custom hybrid small enough to train on two CPU cores in
 * a few minutes, with every part of the Ring-linear architecture present (MODEL_SPEC §1):
 *
 *   layer 0   linear attention (lightning, gated, group RMSNorm)   dense SwiGLU MLP
 *   layer 1   softmax attention (GQA, partial RoPE, QK-norm)       MoE: 4 experts, top 2, shared
 *   layer 2   linear attention                                      MoE
 *   layer 3   softmax attention                                     MoE
 *
 * byte-level vocabulary (259), hidden 64, 2 heads of 32. 217K parameters, most of them in
 * the embedding and the lm_head. No Node.js imports: the browser playground uses it too.
 */
import { configToJson, createConfig, layerTypesOf, mlpTypesOf, preset, type RingLinearConfig } from '@ring-linear/models';

/** The demo's model config (see the file comment). */
export function demoModelConfig(): RingLinearConfig {
  const hidden = 64;
  return createConfig({
    ...configToJson(preset('tiny')),
    num_hidden_layers: 4,
    layer_types: ['linear', 'softmax', 'linear', 'softmax'],
    mlp_types: ['dense', 'moe', 'moe', 'moe'],
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
    max_position_embeddings: 512,
  });
}

/** The demo's training recipe (defaults of `ring-linear demo`). */
export const DEMO_RECIPE = {
  steps: 300,
  seqLen: 128,
  rows: 4,
  peakLr: 8e-3,
  minLr: 8e-4,
  warmupSteps: 10,
  weightDecay: 0.01,
  seed: 1,
  /** Stories held out for the evaluation loss. */
  evalStories: 24,
} as const;

/**
 * A config's layer schedule in words: each layer for small models ("linear+dense, softmax+moe"),
 * counts for large ones ("16 linear + 4 softmax attention; 1 dense + 19 MoE").
 */
export function describeLayers(config: RingLinearConfig): string {
  const kinds = layerTypesOf(config);
  const mlps = mlpTypesOf(config);
  if (kinds.length <= 8) return kinds.map((k, i) => `${k}+${mlps[i]}`).join(', ');
  const n = <T>(xs: readonly T[], v: T) => xs.filter((x) => x === v).length;
  return `${n(kinds, 'linear')} linear + ${n(kinds, 'softmax')} softmax attention; ${n(mlps, 'dense')} dense + ${n(mlps, 'moe')} MoE`;
}
