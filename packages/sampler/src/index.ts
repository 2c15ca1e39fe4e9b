/**
 * @ring-linear/sampler: sampling from ring-linear models. Caches (KV cache per softmax layer,
 * constant-size f32 state per linear layer) with memory reported per sequence; prefill and decode
 * through the model's own forward (the training kernels); batches of prompts of different lengths;
 * greedy, temperature, top-k, top-p, min-p and repetition / presence / frequency penalties with
 * seeded Philox draws; log-probs under the unmodified distribution; stop on EOS, stop strings and
 * max tokens; cancellation with AbortSignal; a streaming AsyncIterable and a one-shot generate().
 */
export * from './errors.js';
export * from './types.js';
export * from './strategies.js';
export * from './options.js';
export * from './rng.js';
export * from './text.js';
export * from './session.js';
export * from './generate.js';
