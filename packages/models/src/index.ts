/**
 * @ring-linear/models: the Ring-linear model zoo. Configs with the Hugging Face config.json field
 * names (validated, with presets), parameter accounting from the config alone, the hybrid causal
 * LM built from the attention and MoE modules, Hugging Face safetensors checkpoints (streaming
 * reads, atomic writes, sharded), and tokenizers (tokenizer.json, chat templates, byte level).
 */
export * from './errors.js';
export * from './config.js';
export * from './presets.js';
export * from './params.js';
export * from './model.js';
export * from './safetensors.js';
export * from './io.js';
export * from './checkpoint.js';
export * from './tokenizer.js';
