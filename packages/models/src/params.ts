/**
 * Shapes and parameter counts from a config alone: no weights are allocated, so the full-size
 * presets (16B and 104B parameters) are described instantly.
 *
 * describeModel(config) lists every parameter RingLinearForCausalLM would have, with the same
 * dotted names (the Hugging Face checkpoint names, MODEL_SPEC §6), shapes and dtypes, in module
 * order. countParameters(config) sums them:
 *
 *   total                 every parameter once (a tied lm_head is the embedding, counted once)
 *   active                what one token uses: everything except the routed experts it is not
 *                         sent to, i.e. per MoE layer num_experts_per_tok of the num_experts
 *                         routed experts, plus the shared expert(s), the router (gate weight and
 *                         expert_bias), attention, dense MLPs, every RMSNorm, the embedding and
 *                         the lm_head
 *   nonEmbeddingActive    active minus the input embedding and the lm_head (both "embeddings"
 *                         in the report's sense; a tied pair is subtracted once)
 *
 * With this accounting Ring-mini-linear-2.0 gives 16,423,448,320 / 1,600,777,984 / 956,952,320
 * and Ring-flash-linear-2.0 104,181,665,536 / 7,444,238,080 / 6,156,586,752 (see
 * formatParamCount for how the report prints them).
 */
import { bytesPerElement, type DType } from '@ring-linear/core';
import { layerTypesOf, mlpTypesOf, sharedExpertSizeOf, type LayerType, type MlpType, type RingLinearConfig } from './config.js';

export type ParameterGroup =
  | 'embedding'
  | 'norm'
  | 'attention'
  | 'dense_mlp'
  | 'router'
  | 'routed_expert'
  | 'shared_expert'
  | 'final_norm'
  | 'lm_head';

export interface ParameterInfo {
  /** Dotted checkpoint name, e.g. "model.layers.3.mlp.experts.7.up_proj.weight". */
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly size: number;
  readonly group: ParameterGroup;
  /** Decoder layer index, or null for embedding / final norm / lm_head. */
  readonly layer: number | null;
  /** Routed expert index (group 'routed_expert'), else null. */
  readonly expert: number | null;
}

export interface DescribeModelOptions {
  /** Parameter dtype of the model (default f32); the router, final norm and lm_head stay f32. */
  readonly dtype?: DType;
}

export interface LayerDescription {
  readonly index: number;
  readonly attention: LayerType;
  readonly mlp: MlpType;
  readonly parameters: number;
  readonly activeParameters: number;
}

export interface ModelDescription {
  readonly parameters: readonly ParameterInfo[];
  readonly layers: readonly LayerDescription[];
  readonly counts: ParameterCounts;
  /** Bytes of all parameters in their dtypes. */
  readonly bytes: number;
}

export interface ParameterCounts {
  readonly total: number;
  readonly active: number;
  readonly nonEmbeddingActive: number;
  readonly embedding: number;
  /** 0 when tied to the embedding. */
  readonly lmHead: number;
  readonly attention: number;
  readonly denseMlp: number;
  readonly routedExperts: number;
  /** The routed experts one token uses (num_experts_per_tok per MoE layer). */
  readonly activeRoutedExperts: number;
  readonly sharedExperts: number;
  readonly router: number;
  /** Every RMSNorm weight, the final norm included (QK-norms and g_norm count as attention). */
  readonly norms: number;
}

/** Every parameter of RingLinearForCausalLM for this config (names, shapes, dtypes), without allocating. */
export function describeParameters(config: RingLinearConfig, options: DescribeModelOptions = {}): ParameterInfo[] {
  const dt = options.dtype ?? 'f32';
  const out: ParameterInfo[] = [];
  const add = (name: string, shape: number[], group: ParameterGroup, layer: number | null, dtype: DType = dt, expert: number | null = null) => {
    out.push({ name, shape, dtype, size: shape.reduce((a, b) => a * b, 1), group, layer, expert });
  };
  const c = config;
  const h = c.hidden_size;
  const H = c.num_attention_heads;
  const Hkv = c.num_key_value_heads;
  const D = c.head_dim;
  const HD = H * D;
  const kinds = layerTypesOf(c);
  const mlps = mlpTypesOf(c);
  add('model.word_embeddings.weight', [c.vocab_size, h], 'embedding', null);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    add(`${p}.input_layernorm.weight`, [h], 'norm', l);
    const a = `${p}.attention`;
    const qkvRows = kinds[l] === 'linear' ? 3 * HD : (H + 2 * Hkv) * D;
    add(`${a}.query_key_value.weight`, [qkvRows, h], 'attention', l);
    if (c.use_qkv_bias) add(`${a}.query_key_value.bias`, [qkvRows], 'attention', l);
    add(`${a}.dense.weight`, [h, HD], 'attention', l);
    if (c.use_bias) add(`${a}.dense.bias`, [h], 'attention', l);
    if (kinds[l] === 'linear') {
      add(`${a}.g_proj.weight`, [HD, h], 'attention', l);
      add(`${a}.g_norm.weight`, [HD], 'attention', l);
    }
    if (c.use_qk_norm) {
      add(`${a}.query_layernorm.weight`, [D], 'attention', l);
      add(`${a}.key_layernorm.weight`, [D], 'attention', l);
    }
    add(`${p}.post_attention_layernorm.weight`, [h], 'norm', l);
    const m = `${p}.mlp`;
    if (mlps[l] === 'dense') {
      const i = c.intermediate_size!;
      add(`${m}.gate_proj.weight`, [i, h], 'dense_mlp', l);
      add(`${m}.up_proj.weight`, [i, h], 'dense_mlp', l);
      add(`${m}.down_proj.weight`, [h, i], 'dense_mlp', l);
    } else {
      const E = c.num_experts!;
      const i = c.moe_intermediate_size!;
      add(`${m}.gate.weight`, [E, h], 'router', l, 'f32');
      add(`${m}.gate.expert_bias`, [E], 'router', l, 'f32');
      for (let e = 0; e < E; e++) {
        add(`${m}.experts.${e}.gate_proj.weight`, [i, h], 'routed_expert', l, dt, e);
        add(`${m}.experts.${e}.up_proj.weight`, [i, h], 'routed_expert', l, dt, e);
        add(`${m}.experts.${e}.down_proj.weight`, [h, i], 'routed_expert', l, dt, e);
      }
      const s = sharedExpertSizeOf(c);
      if (s > 0) {
        add(`${m}.shared_experts.gate_proj.weight`, [s, h], 'shared_expert', l);
        add(`${m}.shared_experts.up_proj.weight`, [s, h], 'shared_expert', l);
        add(`${m}.shared_experts.down_proj.weight`, [h, s], 'shared_expert', l);
      }
    }
  }
  add('model.norm.weight', [h], 'final_norm', null, 'f32');
  // A tied lm_head is the embedding Parameter itself: listed once, under the embedding's name.
  if (!c.tie_word_embeddings) add('lm_head.weight', [c.vocab_size, h], 'lm_head', null, 'f32');
  return out;
}

/** Counts from a parameter list (see the file comment for what 'active' means). */
function countFrom(config: RingLinearConfig, params: readonly ParameterInfo[]): ParameterCounts {
  const sum = (g: ParameterGroup) => params.reduce((a, p) => (p.group === g ? a + p.size : a), 0);
  const total = params.reduce((a, p) => a + p.size, 0);
  const routed = sum('routed_expert');
  const moeLayers = mlpTypesOf(config).filter((k) => k === 'moe').length;
  // Every routed expert has the same size, so one token's share is exactly K / E of them.
  const activeRouted = moeLayers > 0 ? (routed / (moeLayers * config.num_experts!)) * config.num_experts_per_tok! * moeLayers : 0;
  const embedding = sum('embedding');
  const lmHead = sum('lm_head');
  const active = total - routed + activeRouted;
  return {
    total,
    active,
    nonEmbeddingActive: active - embedding - lmHead,
    embedding,
    lmHead,
    attention: sum('attention'),
    denseMlp: sum('dense_mlp'),
    routedExperts: routed,
    activeRoutedExperts: activeRouted,
    sharedExperts: sum('shared_expert'),
    router: sum('router'),
    norms: sum('norm') + sum('final_norm'),
  };
}

/** Total, active and non-embedding active parameter counts (and a breakdown) from the config alone. */
export function countParameters(config: RingLinearConfig): ParameterCounts {
  return countFrom(config, describeParameters(config));
}

/**
 * The model without its weights: every parameter (name, shape, dtype), the layer kinds with their
 * counts, the totals and the bytes. Instant for the full-size presets.
 */
export function describeModel(config: RingLinearConfig, options: DescribeModelOptions = {}): ModelDescription {
  const params = describeParameters(config, options);
  const kinds = layerTypesOf(config);
  const mlps = mlpTypesOf(config);
  const layers: LayerDescription[] = kinds.map((attention, index) => {
    const mine = params.filter((p) => p.layer === index);
    const size = mine.reduce((a, p) => a + p.size, 0);
    const routed = mine.reduce((a, p) => (p.group === 'routed_expert' ? a + p.size : a), 0);
    const active = mlps[index] === 'moe' ? size - routed + (routed / config.num_experts!) * config.num_experts_per_tok! : size;
    return { index, attention, mlp: mlps[index]!, parameters: size, activeParameters: active };
  });
  return {
    parameters: params,
    layers,
    counts: countFrom(config, params),
    bytes: params.reduce((a, p) => a + p.size * bytesPerElement(p.dtype), 0),
  };
}

export interface FormatParamCountOptions {
  /** 'B' (1e9), 'M' (1e6), 'K' (1e3), or 'auto' (default: B from 1e9, M from 1e6, K from 1e3). */
  readonly unit?: 'B' | 'M' | 'K' | 'auto';
  /** Digits after the decimal point (default 1). */
  readonly decimals?: number;
  /**
   * 'nearest' (default; halves away from zero) or 'down' (truncation toward zero, how the Ling
   * team's model cards print several counts, e.g. Ling-flash-2.0's 4.865B non-embedding active
   * as "4.8B").
   */
  readonly rounding?: 'nearest' | 'down';
}

/** A parameter count as the report prints it, e.g. formatParamCount(16423448320) === '16.4B'. */
export function formatParamCount(n: number, options: FormatParamCountOptions = {}): string {
  const decimals = options.decimals ?? 1;
  let unit = options.unit ?? 'auto';
  if (unit === 'auto') unit = Math.abs(n) >= 1e9 ? 'B' : Math.abs(n) >= 1e6 ? 'M' : 'K';
  const scale = unit === 'B' ? 1e9 : unit === 'M' ? 1e6 : 1e3;
  const f = 10 ** decimals;
  // Integer arithmetic on n / (scale / f) avoids binary-fraction surprises at exact halves.
  const q = n / (scale / f);
  const r = (options.rounding ?? 'nearest') === 'down' ? Math.trunc(q) : Math.sign(q) * Math.floor(Math.abs(q) + 0.5);
  return `${(r / f).toFixed(decimals)}${unit}`;
}
