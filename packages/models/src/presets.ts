/**
 * Presets: the two published Ring-linear models (MODEL_SPEC §5) and small models of the same
 * structure for tests and demos (hybrid schedule, a dense first layer, MoE with expert groups and
 * a shared expert, byte-level vocabulary).
 *
 * Ring-flash-linear-2.0 assumptions (MODEL_SPEC §5 marks them): expert size 1024 (the value that
 * reproduces the report's parameter counts; the same as Ling-flash-2.0, from which it was
 * converted), n_group / topk_group 8 / 4 and routed_scaling_factor 2.5 as Ring-mini,
 * group_norm_size 8 (not published; keeps 4 heads a group), partial_rotary_factor 0.5 and
 * rope_theta 1e6 as Ring-mini, eos / pad 156892.
 */
import { parseConfig, type RingLinearConfig, type RingLinearConfigInput } from './config.js';
import { ConfigError } from './errors.js';

/** Specials of the byte-level vocabulary of the small presets (ids 0..255 are the bytes). */
export const BYTE_VOCAB = { bos: 256, eos: 257, pad: 258, size: 259 } as const;

const RING_COMMON = {
  architectures: ['BailingMoeLinearV2ForCausalLM'],
  model_type: 'bailing_moe_linear',
  vocab_size: 157184,
  head_dim: 128,
  num_experts: 256,
  num_experts_per_tok: 8,
  num_shared_experts: 1,
  n_group: 8,
  topk_group: 4,
  routed_scaling_factor: 2.5,
  norm_topk_prob: true,
  score_function: 'sigmoid',
  first_k_dense_replace: 1,
  partial_rotary_factor: 0.5,
  rope_theta: 1e6,
  use_qk_norm: true,
  use_qkv_bias: false,
  use_bias: false,
  linear_silu: false,
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
  eos_token_id: 156892,
  pad_token_id: 156892,
  torch_dtype: 'bfloat16',
} as const;

const SMALL_COMMON = {
  architectures: ['BailingMoeLinearV2ForCausalLM'],
  model_type: 'bailing_moe_linear',
  vocab_size: BYTE_VOCAB.size,
  bos_token_id: BYTE_VOCAB.bos,
  eos_token_id: BYTE_VOCAB.eos,
  pad_token_id: BYTE_VOCAB.pad,
  num_shared_experts: 1,
  routed_scaling_factor: 2.5,
  norm_topk_prob: true,
  score_function: 'sigmoid',
  first_k_dense_replace: 1,
  partial_rotary_factor: 0.5,
  // A smaller theta than the large models so RoPE turns noticeably over a short demo context.
  rope_theta: 10000,
  use_qk_norm: true,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
  torch_dtype: 'float32',
} as const;

const PRESET_FIELDS = {
  /** Ring-mini-linear-2.0: 16.4B total, 1.6B active, 957M non-embedding active. */
  'ring-mini-linear-2.0': {
    ...RING_COMMON,
    num_hidden_layers: 20,
    hidden_size: 2048,
    num_attention_heads: 16,
    num_key_value_heads: 4,
    layer_group_size: 5,
    intermediate_size: 5120,
    moe_intermediate_size: 512,
    moe_shared_expert_intermediate_size: 512,
    group_norm_size: 4,
  },
  /** Ring-flash-linear-2.0: 104.2B total, 7.4B active, 6.1B non-embedding active (see the file comment). */
  'ring-flash-linear-2.0': {
    ...RING_COMMON,
    num_hidden_layers: 32,
    hidden_size: 4096,
    num_attention_heads: 32,
    num_key_value_heads: 4,
    layer_group_size: 8,
    intermediate_size: 9216,
    moe_intermediate_size: 1024,
    moe_shared_expert_intermediate_size: 1024,
    group_norm_size: 8,
  },
  /** About 1.6M parameters: layers linear, linear, linear, softmax; 16 experts in 4 groups. */
  tiny: {
    ...SMALL_COMMON,
    num_hidden_layers: 4,
    hidden_size: 128,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 32,
    layer_group_size: 4,
    intermediate_size: 256,
    num_experts: 16,
    num_experts_per_tok: 4,
    n_group: 4,
    topk_group: 2,
    moe_intermediate_size: 64,
    moe_shared_expert_intermediate_size: 64,
    group_norm_size: 2,
    max_position_embeddings: 2048,
  },
  /** About 14M parameters: 8 layers, softmax at 3 and 7; 32 experts in 8 groups. */
  small: {
    ...SMALL_COMMON,
    num_hidden_layers: 8,
    hidden_size: 256,
    num_attention_heads: 8,
    num_key_value_heads: 2,
    head_dim: 32,
    layer_group_size: 4,
    intermediate_size: 768,
    num_experts: 32,
    num_experts_per_tok: 4,
    n_group: 8,
    topk_group: 4,
    moe_intermediate_size: 64,
    moe_shared_expert_intermediate_size: 128,
    group_norm_size: 4,
    max_position_embeddings: 4096,
  },
} as const satisfies Record<string, RingLinearConfigInput>;

export type PresetName = keyof typeof PRESET_FIELDS;

export const PRESET_NAMES = Object.keys(PRESET_FIELDS) as PresetName[];

/** A preset's config (validated). Unknown names get a ConfigError listing the presets. */
export function preset(name: PresetName | string): RingLinearConfig {
  const fields = (PRESET_FIELDS as Record<string, RingLinearConfigInput>)[name];
  if (!fields) throw new ConfigError([`unknown preset '${name}'; presets: ${PRESET_NAMES.join(', ')}`]);
  return parseConfig(fields, `preset '${name}'`);
}
