/**
 * @ring-linear/trainer: training for ring-linear models. AdamW with f32 master weights and
 * parameter groups, global-norm clipping, gradient accumulation; schedules (constant, cosine,
 * warmup-stable-decay, warmup-stable-merge) and checkpoint merging; bf16 / f16 / FP8 training;
 * packed data with document boundaries; atomic checkpoints with exact resume; progress, JSONL
 * metrics and SVG loss curves; RL with rollouts from the sampler (GRPO-style, aligned log-probs).
 */
export * from './errors.js';
export * from './optim/adamw.js';
export * from './optim/clip.js';
export * from './optim/accumulate.js';
export * from './optim/schedule.js';
export * from './precision.js';
export * from './data/documents.js';
export * from './data/pack.js';
export * from './checkpoint.js';
export * from './merge.js';
export * from './observe/progress.js';
export * from './observe/metrics.js';
export * from './observe/plot.js';
export * from './trainer.js';
export * from './tasks.js';
export * from './rl/tasks.js';
export * from './rl/grpo.js';
