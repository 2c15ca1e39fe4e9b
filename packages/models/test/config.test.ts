import { describe, expect, it } from 'vitest';
import {
  CONFIG_DEFAULTS,
  ConfigError,
  PRESET_NAMES,
  configToJson,
  configToJsonText,
  createConfig,
  layerTypesOf,
  mlpTypesOf,
  parseConfig,
  preset,
  rotaryDimOf,
} from '../src/index.js';

/** A config.json as the Hugging Face Ring-mini-linear-2.0 folder would hold it (extra fields included). */
const HF_MINI_JSON = `{
  "architectures": ["BailingMoeLinearV2ForCausalLM"],
  "auto_map": {
    "AutoConfig": "configuration_bailing_moe_linear_v2.BailingMoeLinearV2Config",
    "AutoModelForCausalLM": "modeling_bailing_moe_linear_v2.BailingMoeLinearV2ForCausalLM"
  },
  "model_type": "bailing_moe_linear",
  "embedding_dropout": 0.0,
  "first_k_dense_replace": 1,
  "group_norm_size": 4,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "intermediate_size": 5120,
  "layer_group_size": 5,
  "linear_silu": false,
  "max_position_embeddings": 131072,
  "moe_intermediate_size": 512,
  "moe_shared_expert_intermediate_size": 512,
  "n_group": 8,
  "norm_topk_prob": true,
  "num_attention_heads": 16,
  "num_experts": 256,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 20,
  "num_key_value_heads": 4,
  "num_shared_experts": 1,
  "eos_token_id": 156892,
  "pad_token_id": 156892,
  "partial_rotary_factor": 0.5,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000,
  "routed_scaling_factor": 2.5,
  "score_function": "sigmoid",
  "tie_word_embeddings": false,
  "topk_group": 4,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.56.1",
  "use_cache": true,
  "use_qk_norm": true,
  "use_qkv_bias": false,
  "vocab_size": 157184,
  "num_nextn_predict_layers": 1
}`;

describe('parseConfig', () => {
  it('reads a Hugging Face config.json; keeps unknown fields for the round trip', () => {
    const c = parseConfig(HF_MINI_JSON);
    expect(c.hidden_size).toBe(2048);
    expect(c.num_key_value_heads).toBe(4);
    expect(c.torch_dtype).toBe('bfloat16');
    expect(c.num_nextn_predict_layers).toBe(1);
    expect(c.decay_convention).toBe('hf');
    expect(c.extra.auto_map).toEqual({
      AutoConfig: 'configuration_bailing_moe_linear_v2.BailingMoeLinearV2Config',
      AutoModelForCausalLM: 'modeling_bailing_moe_linear_v2.BailingMoeLinearV2ForCausalLM',
    });
    expect(c.extra.transformers_version).toBe('4.56.1');
    expect(rotaryDimOf(c)).toBe(64);
    const kinds = layerTypesOf(c);
    expect(kinds.flatMap((k, i) => (k === 'softmax' ? [i] : []))).toEqual([4, 9, 14, 19]);
    expect(mlpTypesOf(c)).toEqual(['dense', ...Array(19).fill('moe')]);
  });

  it('round-trips: parse(toJson(c)) equals c, and every field of the file survives', () => {
    const c = parseConfig(HF_MINI_JSON);
    expect(parseConfig(configToJson(c))).toEqual(c);
    expect(parseConfig(configToJsonText(c))).toEqual(c);
    expect(parseConfig(c)).toEqual(c); // a parsed config passed back in
    const original = JSON.parse(HF_MINI_JSON) as Record<string, unknown>;
    const out = configToJson(c);
    for (const [k, v] of Object.entries(original)) {
      if (v === null) expect(out[k] ?? null).toBeNull(); // rope_scaling: null stays absent-or-null
      else expect(out[k]).toEqual(v);
    }
    expect(configToJsonText(c).endsWith('}\n')).toBe(true);
    for (const name of PRESET_NAMES) expect(parseConfig(configToJson(preset(name)))).toEqual(preset(name));
  });

  it('fills defaults for absent optional fields (and says which sizes are required)', () => {
    const c = createConfig({ vocab_size: 100, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 128, first_k_dense_replace: 2 });
    expect(c.num_key_value_heads).toBe(4);
    expect(c.head_dim).toBe(16);
    expect(c.layer_group_size).toBe(CONFIG_DEFAULTS.layer_group_size);
    expect(c.rope_theta).toBe(CONFIG_DEFAULTS.rope_theta);
    expect(c.partial_rotary_factor).toBe(0.5);
    expect(c.rms_norm_eps).toBe(1e-6);
    expect(c.num_experts).toBeNull();
    expect(mlpTypesOf(c)).toEqual(['dense', 'dense']);
    expect(layerTypesOf(c)).toEqual(['softmax', 'softmax']);
    let err: unknown;
    try {
      createConfig({ hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2, first_k_dense_replace: 1 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toContain('vocab_size is required (an integer >= 1)');
    expect(problems).toContain('intermediate_size is required (an integer >= 1)');
    expect(problems).toContain('num_experts is required (an integer >= 1)');
    expect(problems).toContain('moe_intermediate_size is required (an integer >= 1)');
  });

  it('one ConfigError lists every problem of an inconsistent config', () => {
    const bad = {
      ...configToJson(preset('tiny')),
      num_attention_heads: 6,
      num_key_value_heads: 4, // 6 % 4 != 0
      head_dim: 20,
      group_norm_size: 7, // 120 channels
      n_group: 5, // 16 experts
      topk_group: 6, // > n_group
      num_experts_per_tok: 17, // > num_experts
      layer_types: ['linear', 'softmax'], // 2 entries for 4 layers
      rms_norm_eps: -1,
      use_qk_norm: 'yes',
      eos_token_id: 300, // vocab 259
      score_function: 'relu',
      decay_convention: 'sglang',
      rope_scaling: { type: 'yarn', factor: 4 },
      partial_rotary_factor: 0.05, // rotary dim int(20 * 0.05) = 1
      first_k_dense_replace: -1,
    };
    let err: ConfigError | null = null;
    try {
      parseConfig(bad, 'my-config.json');
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const p = err!.problems;
    const expected = [
      /num_attention_heads \(6\) is not a multiple of num_key_value_heads \(4\)/,
      /group_norm_size \(7\) does not divide num_attention_heads \* head_dim = 120/,
      /num_experts \(16\) is not a multiple of n_group \(5\)/,
      /num_experts_per_tok \(17\) is larger than num_experts \(16\)/,
      /layer_types has 2 entries, num_hidden_layers is 4/,
      /rms_norm_eps must be a finite number > 0, got -1/,
      /use_qk_norm must be true or false, got the string "yes"/,
      /eos_token_id \(300\) is outside the vocabulary \[0, 259\)/,
      /score_function must be one of 'sigmoid', 'softmax', got the string "relu"/,
      /decay_convention must be one of 'hf', 'clamped', 'serving'/,
      /rope_scaling .* is not supported/,
      /rotary dim int\(head_dim \* partial_rotary_factor\) = int\(20 \* 0.05\) = 1/,
      /first_k_dense_replace must be an integer >= 0, got -1/,
    ];
    for (const re of expected) expect(p.some((x) => re.test(x)), `${re} in\n${p.join('\n')}`).toBe(true);
    expect(err!.message).toMatch(/^invalid my-config.json \(\d+ problems\):/);
    // topk_group > n_group is its own message (with n_group dividing the experts).
    expect(() => parseConfig({ ...configToJson(preset('tiny')), topk_group: 5 })).toThrow(/topk_group \(5\) is larger than n_group \(4\)/);
    expect(() => parseConfig({ ...configToJson(preset('tiny')), num_experts_per_tok: 9 })).toThrow(
      /num_experts_per_tok \(9\) is larger than the 8 experts that topk_group \(2\) of n_group \(4\) groups of 4 hold/,
    );
    expect(() => parseConfig({ ...configToJson(preset('tiny')), hidden_size: 100, head_dim: null, num_attention_heads: 3 })).toThrow(
      /head_dim is absent and hidden_size \(100\) is not a multiple of num_attention_heads \(3\)/,
    );
    expect(() => parseConfig({ ...configToJson(preset('tiny')), mlp_types: ['dense', 'moe', 'mlp', 'moe'] })).toThrow(/mlp_types entries .* bad: \[2\] = "mlp"/);
    expect(() => parseConfig({ ...configToJson(preset('tiny')), first_k_dense_replace: 9 })).toThrow(/first_k_dense_replace \(9\) is larger than num_hidden_layers \(4\)/);
  });

  it('rejects text that is not a JSON object, and unknown presets', () => {
    expect(() => parseConfig('{"vocab_size": 3,')).toThrow(/not valid JSON/);
    expect(() => parseConfig('[1, 2]')).toThrow(/expected a JSON object, got an array/);
    expect(() => preset('ring-huge')).toThrow(/unknown preset 'ring-huge'; presets: ring-mini-linear-2.0, ring-flash-linear-2.0, tiny, small/);
  });

  it('accepts the Qwen3-Next spellings of layer types and explicit MLP kinds', () => {
    const c = parseConfig({
      ...configToJson(preset('tiny')),
      layer_types: ['linear_attention', 'full_attention', 'linear', 'softmax'],
      mlp_types: ['moe', 'dense', 'moe', 'dense'],
    });
    expect(layerTypesOf(c)).toEqual(['linear', 'softmax', 'linear', 'softmax']);
    expect(mlpTypesOf(c)).toEqual(['moe', 'dense', 'moe', 'dense']);
    expect(configToJson(c).layer_types).toEqual(['linear', 'softmax', 'linear', 'softmax']);
  });

  it('presets have the MODEL_SPEC §5 structure; the small ones are byte-level hybrids with grouped MoE and a shared expert', () => {
    const mini = preset('ring-mini-linear-2.0');
    const flash = preset('ring-flash-linear-2.0');
    expect([mini.num_hidden_layers, mini.hidden_size, mini.layer_group_size, mini.group_norm_size]).toEqual([20, 2048, 5, 4]);
    expect([flash.num_hidden_layers, flash.hidden_size, flash.num_attention_heads, flash.layer_group_size, flash.moe_intermediate_size]).toEqual([32, 4096, 32, 8, 1024]);
    expect(layerTypesOf(flash).flatMap((k, i) => (k === 'softmax' ? [i] : []))).toEqual([7, 15, 23, 31]);
    for (const name of ['tiny', 'small']) {
      const c = preset(name);
      expect(c.vocab_size).toBe(259);
      expect([c.bos_token_id, c.eos_token_id, c.pad_token_id]).toEqual([256, 257, 258]);
      expect(layerTypesOf(c)).toContain('linear');
      expect(layerTypesOf(c)).toContain('softmax');
      expect(mlpTypesOf(c)[0]).toBe('dense');
      expect(mlpTypesOf(c).slice(1).every((k) => k === 'moe')).toBe(true);
      expect(c.n_group).toBeGreaterThan(1);
      expect(c.num_shared_experts).toBe(1);
    }
  });
});
