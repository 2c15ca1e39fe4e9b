/**
 * `init`: the initializers (initializers.ts) plus the weight-initialization rule the model zoo uses.
 *
 *   model.apply(init.initWeights({ std: config.initializer_range }));
 */
import type { Generator } from '../rng/philox.js';
import { normal_, zeros_ } from './initializers.js';
import { Embedding, Linear } from './layers.js';
import type { Module } from './module.js';

export * from './initializers.js';

export interface InitWeightsOptions {
  /** Standard deviation of the normal draws (Hugging Face `initializer_range`; default 0.02). */
  readonly std?: number;
  readonly generator?: Generator;
}

/**
 * The Hugging Face `_init_weights` rule, for Module.apply(): Linear and Embedding weights ~ N(0, std^2),
 * Linear biases 0. RMSNorm weights keep their ones. Modules of other kinds (attention, MoE) are left
 * to rules of their own packages, which apply() runs alongside this one.
 */
export function initWeights(options: InitWeightsOptions = {}): (m: Module) => void {
  const std = options.std ?? 0.02;
  const generator = options.generator;
  return (m) => {
    if (m instanceof Linear) {
      normal_(m.weight, { std, generator });
      if (m.bias) zeros_(m.bias);
    } else if (m instanceof Embedding) {
      normal_(m.weight, { std, generator });
    }
  };
}
