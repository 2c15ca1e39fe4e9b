/**
 * @ring-linear/attention: lightning (linear) attention with per-head decay, softmax GQA attention,
 * partial RoPE, the group-norm gate and QK-norm (ops with composites; backends register fused
 * kernels by op name), the LinearAttention / SoftmaxAttention modules with their decode caches, the
 * decay rates and the layer schedule (MODEL_SPEC §1-3).
 */
export * from './ops/index.js';
export * from './decay.js';
export * from './schedule.js';
export * from './cache.js';
export * from './modules.js';
