/**
 * RingLinearConfig: the Hugging Face `config.json` of the BailingMoeLinearV2 architecture
 * (MODEL_SPEC §1-5), field names as there, plus two additions for custom hybrids and serving
 * conventions:
 *
 *   layer_types       explicit per-layer attention kinds ('linear' | 'softmax'; the Qwen3-Next
 *                     spellings 'linear_attention' | 'full_attention' are accepted), overriding
 *                     layer_group_size
 *   mlp_types         explicit per-layer MLP kinds ('dense' | 'moe'), overriding first_k_dense_replace
 *   decay_convention  the layer index used in the decay factor (MODEL_SPEC §2): 'hf' (l - 1, the
 *                     Hugging Face reference, default), 'clamped' (max(0, l - 1)), 'serving' (l,
 *                     SGLang / vLLM)
 *
 * parseConfig() validates every field and the relations between them and throws ONE ConfigError
 * listing every problem. Fields it does not know (auto_map, transformers_version, ...) are kept in
 * `extra` and written back by configToJson(), so a config.json round-trips.
 */
import { DECAY_CONVENTIONS, layerSchedule, type AttentionKind, type DecayConvention } from '@ring-linear/attention';
import type { DType } from '@ring-linear/core';
import { ConfigError } from './errors.js';

export type LayerType = AttentionKind;
export type MlpType = 'dense' | 'moe';
export type ScoreFunction = 'sigmoid' | 'softmax';
/** The `torch_dtype` spellings of a config.json. */
export type TorchDType = 'float32' | 'bfloat16' | 'float16';

export interface RingLinearConfig {
  readonly model_type: string;
  readonly architectures: readonly string[];
  readonly vocab_size: number;
  readonly hidden_size: number;
  readonly num_hidden_layers: number;
  readonly num_attention_heads: number;
  readonly num_key_value_heads: number;
  readonly head_dim: number;
  /** M + 1: M linear-attention layers then one softmax layer (MODEL_SPEC §1). */
  readonly layer_group_size: number;
  /** Explicit per-layer attention kinds (custom hybrids); null: from layer_group_size. */
  readonly layer_types: readonly LayerType[] | null;
  /** Dense SwiGLU size of the layers before first_k_dense_replace (null when no layer is dense). */
  readonly intermediate_size: number | null;
  readonly first_k_dense_replace: number;
  /** Explicit per-layer MLP kinds; null: dense for l < first_k_dense_replace, else MoE. */
  readonly mlp_types: readonly MlpType[] | null;
  /** Routed experts E (null when no layer is MoE). */
  readonly num_experts: number | null;
  readonly num_experts_per_tok: number | null;
  readonly moe_intermediate_size: number | null;
  readonly num_shared_experts: number;
  /** Size of one shared expert; null: moe_intermediate_size. */
  readonly moe_shared_expert_intermediate_size: number | null;
  readonly n_group: number;
  readonly topk_group: number;
  readonly routed_scaling_factor: number;
  readonly norm_topk_prob: boolean;
  readonly score_function: ScoreFunction;
  /** Groups of the linear layers' output RMSNorm over H*D channels. */
  readonly group_norm_size: number;
  readonly partial_rotary_factor: number;
  readonly rope_theta: number;
  readonly use_qk_norm: boolean;
  readonly use_qkv_bias: boolean;
  /** Bias on the attention output projection `dense`. */
  readonly use_bias: boolean;
  readonly linear_silu: boolean;
  readonly max_position_embeddings: number;
  readonly rms_norm_eps: number;
  readonly tie_word_embeddings: boolean;
  readonly initializer_range: number;
  readonly bos_token_id: number | null;
  readonly eos_token_id: number | readonly number[] | null;
  readonly pad_token_id: number | null;
  /** Multi-token-prediction layers of the checkpoint (not built; their weights are skipped on load). */
  readonly num_nextn_predict_layers: number;
  readonly torch_dtype: TorchDType | null;
  readonly decay_convention: DecayConvention;
  /** Fields this package does not interpret, kept for the round trip. */
  readonly extra: Readonly<Record<string, unknown>>;
}

/** What parseConfig accepts: any subset of the fields (the required ones must be there). */
export type RingLinearConfigInput = { -readonly [K in keyof RingLinearConfig]?: RingLinearConfig[K] | undefined } & Record<string, unknown>;

const LAYER_TYPE_ALIASES: Readonly<Record<string, LayerType>> = {
  linear: 'linear',
  softmax: 'softmax',
  linear_attention: 'linear',
  full_attention: 'softmax',
};

export const TORCH_DTYPES: Readonly<Record<TorchDType, DType>> = { float32: 'f32', bfloat16: 'bf16', float16: 'f16' };

/** Field order of configToJson (the rest of `extra` follows). */
const FIELD_ORDER: readonly (keyof RingLinearConfig)[] = [
  'architectures', 'model_type', 'vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads',
  'num_key_value_heads', 'head_dim', 'layer_group_size', 'layer_types', 'intermediate_size', 'first_k_dense_replace',
  'mlp_types', 'num_experts', 'num_experts_per_tok', 'moe_intermediate_size', 'num_shared_experts',
  'moe_shared_expert_intermediate_size', 'n_group', 'topk_group', 'routed_scaling_factor', 'norm_topk_prob',
  'score_function', 'group_norm_size', 'partial_rotary_factor', 'rope_theta', 'use_qk_norm', 'use_qkv_bias', 'use_bias',
  'linear_silu', 'max_position_embeddings', 'rms_norm_eps', 'tie_word_embeddings', 'initializer_range', 'bos_token_id',
  'eos_token_id', 'pad_token_id', 'num_nextn_predict_layers', 'torch_dtype', 'decay_convention',
];

const KNOWN = new Set<string>(FIELD_ORDER);

/**
 * Defaults of the optional fields (those of the Hugging Face / SGLang BailingMoeLinear config
 * classes where they have one). The sizes that define a model (vocab_size, hidden_size,
 * num_hidden_layers, num_attention_heads, and the dense / MoE sizes the layer kinds need) have no
 * default: a config without them is an error rather than silently Ring-mini sized.
 */
export const CONFIG_DEFAULTS = {
  model_type: 'bailing_moe_linear',
  architectures: ['BailingMoeLinearV2ForCausalLM'],
  layer_group_size: 1,
  first_k_dense_replace: 1,
  num_shared_experts: 0,
  n_group: 1,
  routed_scaling_factor: 1,
  norm_topk_prob: true,
  score_function: 'sigmoid',
  group_norm_size: 1,
  partial_rotary_factor: 0.5,
  rope_theta: 600000,
  use_qk_norm: true,
  use_qkv_bias: false,
  use_bias: false,
  linear_silu: false,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
  initializer_range: 0.02,
  num_nextn_predict_layers: 0,
  decay_convention: 'hf',
} as const;

type Json = Record<string, unknown>;

/** Collects problems while reading fields, so all of them are reported together. */
class Reader {
  readonly problems: string[] = [];
  constructor(readonly json: Json) {}

  has(name: string): boolean {
    return this.json[name] !== undefined && this.json[name] !== null;
  }

  private typeName(v: unknown): string {
    return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? `the string ${JSON.stringify(v)}` : `${JSON.stringify(v)}`;
  }

  /** An integer >= min; `required` reports absence, otherwise absence gives `fallback`. */
  int(name: string, opts: { min?: number; fallback?: number | null; required?: boolean }): number | null {
    const v = this.json[name];
    if (v === undefined || v === null) {
      if (opts.required) this.problems.push(`${name} is required (an integer >= ${opts.min ?? 0})`);
      return opts.fallback ?? null;
    }
    const min = opts.min ?? 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      this.problems.push(`${name} must be an integer >= ${min}, got ${this.typeName(v)}`);
      return null;
    }
    return v;
  }

  num(name: string, opts: { fallback: number; positive?: boolean; max?: number }): number {
    const v = this.json[name];
    if (v === undefined || v === null) return opts.fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || (opts.positive && !(v > 0)) || (opts.max !== undefined && v > opts.max)) {
      const range = opts.positive ? (opts.max !== undefined ? ` in (0, ${opts.max}]` : ' > 0') : '';
      this.problems.push(`${name} must be a finite number${range}, got ${this.typeName(v)}`);
      return opts.fallback;
    }
    return v;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.json[name];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') {
      this.problems.push(`${name} must be true or false, got ${this.typeName(v)}`);
      return fallback;
    }
    return v;
  }

  oneOf<T extends string>(name: string, values: readonly T[], fallback: T): T {
    const v = this.json[name];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
      this.problems.push(`${name} must be one of ${values.map((x) => `'${x}'`).join(', ')}, got ${this.typeName(v)}`);
      return fallback;
    }
    return v as T;
  }

  /** A per-layer list of kinds (with aliases); null when absent. */
  kinds<T extends string>(name: string, aliases: Readonly<Record<string, T>>, layers: number | null): T[] | null {
    const v = this.json[name];
    if (v === undefined || v === null) return null;
    if (!Array.isArray(v)) {
      this.problems.push(`${name} must be an array with one entry per layer, got ${this.typeName(v)}`);
      return null;
    }
    const out: T[] = [];
    const bad: string[] = [];
    v.forEach((k, i) => {
      const kind = typeof k === 'string' ? aliases[k] : undefined;
      if (kind === undefined) bad.push(`[${i}] = ${JSON.stringify(k)}`);
      else out.push(kind);
    });
    if (bad.length) {
      this.problems.push(`${name} entries must be ${Object.keys(aliases).map((x) => `'${x}'`).join(' | ')}; bad: ${bad.join(', ')}`);
      return null;
    }
    if (layers !== null && out.length !== layers) {
      this.problems.push(`${name} has ${out.length} entries, num_hidden_layers is ${layers}`);
      return null;
    }
    return out;
  }
}

function parseJsonText(text: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`not valid JSON: ${(err as Error).message}`]);
  }
  return asObject(value);
}

function asObject(value: unknown): Json {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError([`expected a JSON object, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`]);
  }
  return value as Json;
}

/**
 * Parses and validates a config (config.json text or its parsed object; a RingLinearConfig
 * works too). Throws one ConfigError listing every problem: mistyped or out-of-range fields,
 * heads that do not divide, group sizes, topk_group > n_group, per-layer lists of the wrong
 * length, token ids outside the vocabulary, ...
 */
export function parseConfig(input: string | object, source = 'config'): RingLinearConfig {
  let json: Json;
  try {
    json = typeof input === 'string' ? parseJsonText(input) : asObject(input);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(err.problems, source);
    throw err;
  }
  // A parsed config passed back in: flatten its extras so they are not nested twice.
  if (json.extra !== undefined && typeof json.extra === 'object' && json.extra !== null && !Array.isArray(json.extra)) {
    json = { ...(json.extra as Json), ...json };
    delete json.extra;
  }
  const r = new Reader(json);
  const d = CONFIG_DEFAULTS;

  const modelType = typeof json.model_type === 'string' ? json.model_type : d.model_type;
  let architectures: string[] = [...d.architectures];
  if (json.architectures !== undefined && json.architectures !== null) {
    if (!Array.isArray(json.architectures) || !json.architectures.every((a) => typeof a === 'string')) {
      r.problems.push(`architectures must be an array of strings, got ${JSON.stringify(json.architectures)}`);
    } else architectures = [...(json.architectures as string[])];
  }

  const vocab = r.int('vocab_size', { min: 1, required: true });
  const hidden = r.int('hidden_size', { min: 1, required: true });
  const layers = r.int('num_hidden_layers', { min: 1, required: true });
  const heads = r.int('num_attention_heads', { min: 1, required: true });
  const kvHeads = r.int('num_key_value_heads', { min: 1, fallback: heads });
  let headDim = r.int('head_dim', { min: 1 });
  if (headDim === null && !r.has('head_dim') && hidden !== null && heads !== null) {
    if (hidden % heads !== 0) r.problems.push(`head_dim is absent and hidden_size (${hidden}) is not a multiple of num_attention_heads (${heads})`);
    else headDim = hidden / heads;
  }
  const groupSize = r.int('layer_group_size', { min: 1, fallback: d.layer_group_size });
  const layerTypes = r.kinds('layer_types', LAYER_TYPE_ALIASES, layers);
  const firstDense = r.int('first_k_dense_replace', { min: 0, fallback: d.first_k_dense_replace });
  const mlpTypes = r.kinds<MlpType>('mlp_types', { dense: 'dense', moe: 'moe' }, layers);

  // Which MLP kinds occur decides which sizes are required.
  let kinds: MlpType[] = [];
  if (layers !== null) {
    if (mlpTypes) kinds = mlpTypes;
    else if (firstDense !== null) kinds = Array.from({ length: layers }, (_, l) => (l < firstDense ? 'dense' : 'moe'));
  }
  if (!mlpTypes && layers !== null && firstDense !== null && firstDense > layers) {
    r.problems.push(`first_k_dense_replace (${firstDense}) is larger than num_hidden_layers (${layers})`);
  }
  const anyDense = kinds.includes('dense');
  const anyMoe = kinds.includes('moe');
  const intermediate = r.int('intermediate_size', { min: 1, required: anyDense });
  const experts = r.int('num_experts', { min: 1, required: anyMoe });
  const perTok = r.int('num_experts_per_tok', { min: 1, required: anyMoe });
  const moeInter = r.int('moe_intermediate_size', { min: 1, required: anyMoe });
  const shared = r.int('num_shared_experts', { min: 0, fallback: d.num_shared_experts }) ?? 0;
  const sharedInter = r.int('moe_shared_expert_intermediate_size', { min: 1 });
  const nGroup = r.int('n_group', { min: 1, fallback: d.n_group });
  const topkGroup = r.int('topk_group', { min: 1, fallback: nGroup });
  const scaling = r.num('routed_scaling_factor', { fallback: d.routed_scaling_factor, positive: true });
  const normTopk = r.bool('norm_topk_prob', d.norm_topk_prob);
  const scoreFunction = r.oneOf<ScoreFunction>('score_function', ['sigmoid', 'softmax'], d.score_function);
  const groupNorm = r.int('group_norm_size', { min: 1, fallback: d.group_norm_size });
  const rotaryFactor = r.num('partial_rotary_factor', { fallback: d.partial_rotary_factor, positive: true, max: 1 });
  const ropeTheta = r.num('rope_theta', { fallback: d.rope_theta, positive: true });
  const eps = r.num('rms_norm_eps', { fallback: d.rms_norm_eps, positive: true });
  const initRange = r.num('initializer_range', { fallback: d.initializer_range, positive: true });
  const maxPos = r.int('max_position_embeddings', { min: 1, fallback: d.max_position_embeddings }) ?? d.max_position_embeddings;
  const bos = r.int('bos_token_id', { min: 0 });
  const pad = r.int('pad_token_id', { min: 0 });
  let eos: number | number[] | null = null;
  if (Array.isArray(json.eos_token_id)) {
    const ids = json.eos_token_id as unknown[];
    if (ids.length === 0 || !ids.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) {
      r.problems.push(`eos_token_id must be an integer >= 0 or a non-empty array of them, got ${JSON.stringify(json.eos_token_id)}`);
    } else eos = ids as number[];
  } else eos = r.int('eos_token_id', { min: 0 });
  const useQkNorm = r.bool('use_qk_norm', d.use_qk_norm);
  const useQkvBias = r.bool('use_qkv_bias', d.use_qkv_bias);
  const useBias = r.bool('use_bias', d.use_bias);
  const linearSilu = r.bool('linear_silu', d.linear_silu);
  const tie = r.bool('tie_word_embeddings', d.tie_word_embeddings);
  const mtp = r.int('num_nextn_predict_layers', { min: 0, fallback: d.num_nextn_predict_layers }) ?? 0;
  let torchDType: TorchDType | null = null;
  if (r.has('torch_dtype')) torchDType = r.oneOf<TorchDType>('torch_dtype', ['float32', 'bfloat16', 'float16'], 'float32');
  const decayConvention = r.oneOf<DecayConvention>('decay_convention', DECAY_CONVENTIONS, d.decay_convention);
  if (r.has('rope_scaling')) {
    r.problems.push(`rope_scaling ${JSON.stringify(json.rope_scaling)} is not supported (Ring-linear models use plain RoPE; rope_scaling must be null or absent)`);
  }

  // Relations between fields.
  const p = r.problems;
  if (heads !== null && kvHeads !== null && heads % kvHeads !== 0) {
    p.push(`num_attention_heads (${heads}) is not a multiple of num_key_value_heads (${kvHeads}) (grouped-query attention shares each k/v head among H/H_kv query heads)`);
  }
  if (headDim !== null) {
    const rotary = Math.floor(headDim * rotaryFactor);
    if (rotary < 2 || rotary % 2 !== 0) {
      p.push(`rotary dim int(head_dim * partial_rotary_factor) = int(${headDim} * ${rotaryFactor}) = ${rotary} must be an even number >= 2 (NeoX RoPE rotates pairs)`);
    }
  }
  if (heads !== null && headDim !== null && groupNorm !== null && (heads * headDim) % groupNorm !== 0) {
    p.push(`group_norm_size (${groupNorm}) does not divide num_attention_heads * head_dim = ${heads * headDim} channels`);
  }
  if (experts !== null) {
    if (perTok !== null && perTok > experts) p.push(`num_experts_per_tok (${perTok}) is larger than num_experts (${experts})`);
    if (nGroup !== null && experts % nGroup !== 0) p.push(`num_experts (${experts}) is not a multiple of n_group (${nGroup})`);
    if (nGroup !== null && topkGroup !== null && topkGroup > nGroup) p.push(`topk_group (${topkGroup}) is larger than n_group (${nGroup})`);
    else if (nGroup !== null && topkGroup !== null && perTok !== null && experts % nGroup === 0 && perTok <= experts) {
      const allowed = topkGroup * (experts / nGroup);
      if (perTok > allowed) {
        p.push(`num_experts_per_tok (${perTok}) is larger than the ${allowed} experts that topk_group (${topkGroup}) of n_group (${nGroup}) groups of ${experts / nGroup} hold`);
      }
    }
  }
  for (const [name, id] of [['bos_token_id', bos], ['pad_token_id', pad]] as const) {
    if (id !== null && vocab !== null && id >= vocab) p.push(`${name} (${id}) is outside the vocabulary [0, ${vocab})`);
  }
  for (const id of Array.isArray(eos) ? eos : eos === null ? [] : [eos]) {
    if (vocab !== null && id >= vocab) p.push(`eos_token_id (${id}) is outside the vocabulary [0, ${vocab})`);
  }

  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) if (!KNOWN.has(k)) extra[k] = v;

  if (p.length) throw new ConfigError(p, source);

  return {
    model_type: modelType,
    architectures,
    vocab_size: vocab!,
    hidden_size: hidden!,
    num_hidden_layers: layers!,
    num_attention_heads: heads!,
    num_key_value_heads: kvHeads!,
    head_dim: headDim!,
    layer_group_size: groupSize!,
    layer_types: layerTypes,
    intermediate_size: intermediate,
    first_k_dense_replace: firstDense!,
    mlp_types: mlpTypes,
    num_experts: experts,
    num_experts_per_tok: perTok,
    moe_intermediate_size: moeInter,
    num_shared_experts: shared,
    moe_shared_expert_intermediate_size: sharedInter,
    n_group: nGroup!,
    topk_group: topkGroup!,
    routed_scaling_factor: scaling,
    norm_topk_prob: normTopk,
    score_function: scoreFunction,
    group_norm_size: groupNorm!,
    partial_rotary_factor: rotaryFactor,
    rope_theta: ropeTheta,
    use_qk_norm: useQkNorm,
    use_qkv_bias: useQkvBias,
    use_bias: useBias,
    linear_silu: linearSilu,
    max_position_embeddings: maxPos,
    rms_norm_eps: eps,
    tie_word_embeddings: tie,
    initializer_range: initRange,
    bos_token_id: bos,
    eos_token_id: eos,
    pad_token_id: pad,
    num_nextn_predict_layers: mtp,
    torch_dtype: torchDType,
    decay_convention: decayConvention,
    extra,
  };
}

/**
 * Builds a config from fields (the required ones plus any overrides), validated as parseConfig:
 * `createConfig({ ...configToJson(preset('tiny')), num_hidden_layers: 6 })`.
 */
export function createConfig(fields: RingLinearConfigInput): RingLinearConfig {
  return parseConfig(fields);
}

/**
 * The config as a config.json object: the known fields in a fixed order, then the extras. Null
 * optional fields (layer_types, mlp_types, the shared-expert size, ...) are omitted, as the
 * Hugging Face files omit them; parseConfig(configToJson(c)) equals c.
 */
export function configToJson(config: RingLinearConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of FIELD_ORDER) {
    const v = config[k];
    if (v === null || v === undefined) continue;
    out[k] = Array.isArray(v) ? [...v] : v;
  }
  for (const [k, v] of Object.entries(config.extra)) if (!(k in out)) out[k] = v;
  return out;
}

/** config.json text (2-space indent, trailing newline), as written next to a checkpoint. */
export function configToJsonText(config: RingLinearConfig): string {
  return `${JSON.stringify(configToJson(config), null, 2)}\n`;
}

/** The attention kind of every layer: layer_types, else the group schedule (MODEL_SPEC §1). */
export function layerTypesOf(config: RingLinearConfig): LayerType[] {
  if (config.layer_types) return [...config.layer_types];
  return layerSchedule({ numLayers: config.num_hidden_layers, layerGroupSize: config.layer_group_size });
}

/** The MLP kind of every layer: mlp_types, else dense for l < first_k_dense_replace, else MoE. */
export function mlpTypesOf(config: RingLinearConfig): MlpType[] {
  if (config.mlp_types) return [...config.mlp_types];
  return Array.from({ length: config.num_hidden_layers }, (_, l) => (l < config.first_k_dense_replace ? 'dense' : 'moe'));
}

/** Channels of each head that RoPE rotates: int(head_dim * partial_rotary_factor). */
export function rotaryDimOf(config: RingLinearConfig): number {
  return Math.floor(config.head_dim * config.partial_rotary_factor);
}

/** Size of the (combined) shared expert: num_shared_experts * (shared size or moe_intermediate_size). */
export function sharedExpertSizeOf(config: RingLinearConfig): number {
  return config.num_shared_experts * (config.moe_shared_expert_intermediate_size ?? config.moe_intermediate_size ?? 0);
}

/**
 * Per-layer attention kinds for a linear:softmax ratio, as layer_group_size does it: `linearPerSoftmax`
 * linear layers then one softmax layer, repeated; trailing layers that do not fill a group are
 * softmax. hybridLayerTypes(20, 4) is Ring-mini's schedule; hybridLayerTypes(n, 0) is all softmax.
 */
export function hybridLayerTypes(numLayers: number, linearPerSoftmax: number): LayerType[] {
  if (!Number.isInteger(linearPerSoftmax) || linearPerSoftmax < 0) {
    throw new ConfigError([`hybridLayerTypes: linearPerSoftmax must be an integer >= 0, got ${linearPerSoftmax}`]);
  }
  if (!Number.isInteger(numLayers) || numLayers < 1) throw new ConfigError([`hybridLayerTypes: numLayers must be an integer >= 1, got ${numLayers}`]);
  return layerSchedule({ numLayers, layerGroupSize: linearPerSoftmax + 1 });
}

/** The parameter dtype a config.json's torch_dtype names (f32 when absent). */
export function dtypeOfConfig(config: RingLinearConfig): DType {
  return config.torch_dtype ? TORCH_DTYPES[config.torch_dtype] : 'f32';
}
