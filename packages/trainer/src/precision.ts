/**
 * Training precision.
 *
 *   'f32'   parameters, compute and optimizer state in f32.
 *   'bf16'  bf16 compute with f32 master weights: the model's parameters are cast to bf16 (the
 *           router, the final norm and the lm_head stay f32, MODEL_SPEC §7), so the forward and
 *           backward run in bf16; the gradients come back in bf16 and are widened to f32 for
 *           accumulation, clipping and the update; AdamW updates the f32 masters and writes them
 *           back rounded once to bf16. bf16 has f32's exponent range, so no loss scaling.
 *   'f16'   as bf16 with f16 storage, plus a dynamic loss scale: f16's range (max 65504, smallest
 *           normal 6.1e-5) lets small gradients underflow, so the loss is multiplied by a scale
 *           before the backward and the gradients divided by it; a step whose gradients overflow
 *           is skipped and the scale halved, and after `growthInterval` clean steps it doubles.
 *   'fp8'   FP8 linear layers (@ring-linear/fp8, the blockwise recipe of MODEL_SPEC §8): the
 *           attention and dense-MLP projections quantize their inputs per 1x128 tile and their
 *           f32 master weights per 128x128 block at every forward, GEMM in FP8 with f32
 *           accumulation. Each tile carries its own scale, so the values never leave FP8's range
 *           and no loss scaling is needed. The lm_head stays f32.
 */
import { Parameter, copy, noGrad, type DType, type Module, type Tensor } from '@ring-linear/core';
import { toFp8, type Fp8Recipe, Fp8Linear } from '@ring-linear/fp8';
import { TrainerConfigError } from './errors.js';

export type Precision = 'f32' | 'bf16' | 'f16' | 'fp8';

export const PRECISIONS: readonly Precision[] = ['f32', 'bf16', 'f16', 'fp8'];

/** Whether a precision needs loss scaling (only f16: bf16 has f32's range, FP8 tiles carry scales). */
export function needsLossScaling(precision: Precision): boolean {
  return precision === 'f16';
}

/**
 * Casts a model to a low-precision compute dtype through its own to() (which keeps the parts that
 * must stay f32), and returns f32 masters of every trainable parameter whose dtype changed, taken
 * BEFORE the cast, so no bits are lost. Pass them to AdamW (options.masters).
 */
export function toMixedPrecision(model: Module, dtype: 'bf16' | 'f16'): Map<Parameter, Tensor> {
  if (dtype !== 'bf16' && dtype !== 'f16') throw new TrainerConfigError(`toMixedPrecision: dtype must be 'bf16' or 'f16', got ${String(dtype)}`);
  const before = new Map<Parameter, Tensor>();
  for (const p of model.parameters()) {
    if (p.requiresGrad && p.dtype === 'f32') before.set(p, noGrad(() => copy(p)));
  }
  model.to(dtype as DType);
  const masters = new Map<Parameter, Tensor>();
  for (const [p, m] of before) {
    if (p.dtype === 'f32') m.dispose(); // kept in f32 by the model (router, final norm, lm_head)
    else masters.set(p, m);
  }
  return masters;
}

export interface Fp8TrainingOptions extends Fp8Recipe {
  /** Which Linear layers to convert (default: all but lm_head and the MoE experts, as the model zoo does). */
  readonly filter?: (name: string) => boolean;
}

/**
 * Converts a model's Linear layers to FP8 (sharing the f32 master weights, so an optimizer built
 * before or after keeps working). A model that already has FP8 layers is left alone. Returns the
 * names converted.
 */
export function enableFp8Training(model: Module, options: Fp8TrainingOptions = {}): string[] {
  if (model.modules().some((m) => m instanceof Fp8Linear)) return [];
  const filter = options.filter ?? ((name: string) => name !== 'lm_head' && !name.includes('.mlp.experts.') && !name.includes('.mlp.shared_experts.'));
  return toFp8(model, { fp8Dtype: options.fp8Dtype, gradDtype: options.gradDtype, pow2Scale: options.pow2Scale, filter: (name) => filter(name) });
}

export interface LossScalerOptions {
  /** Starting scale (default 2^16, as PyTorch's GradScaler). */
  readonly initialScale?: number;
  /** Multiplier after growthInterval clean steps (default 2). */
  readonly growthFactor?: number;
  /** Multiplier after an overflow (default 0.5). */
  readonly backoffFactor?: number;
  /** Clean steps before growing (default 2000). */
  readonly growthInterval?: number;
  /** The scale never goes below this (default 1). */
  readonly minScale?: number;
}

export interface LossScalerState {
  readonly scale: number;
  readonly cleanSteps: number;
  readonly skippedSteps: number;
}

/** Dynamic loss scaling for f16 training (see the file comment). */
export class DynamicLossScaler {
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  readonly minScale: number;
  #scale: number;
  #clean = 0;
  #skipped = 0;

  constructor(options: LossScalerOptions = {}) {
    const pos = (what: string, v: number, min = 0) => {
      if (!(typeof v === 'number' && Number.isFinite(v) && v > min)) throw new TrainerConfigError(`DynamicLossScaler: '${what}' must be a finite number > ${min}, got ${v}`);
      return v;
    };
    this.#scale = pos('initialScale', options.initialScale ?? 65536);
    this.growthFactor = pos('growthFactor', options.growthFactor ?? 2, 1);
    this.backoffFactor = pos('backoffFactor', options.backoffFactor ?? 0.5);
    if (this.backoffFactor >= 1) throw new TrainerConfigError(`DynamicLossScaler: 'backoffFactor' must be < 1, got ${this.backoffFactor}`);
    this.growthInterval = pos('growthInterval', options.growthInterval ?? 2000);
    if (!Number.isInteger(this.growthInterval)) throw new TrainerConfigError(`DynamicLossScaler: 'growthInterval' must be an integer, got ${this.growthInterval}`);
    this.minScale = pos('minScale', options.minScale ?? 1);
  }

  get scale(): number {
    return this.#scale;
  }

  /** Steps skipped because of overflow so far. */
  get skippedSteps(): number {
    return this.#skipped;
  }

  /** Records a step's outcome: false (non-finite gradients) backs off, true counts toward growth. */
  update(finite: boolean): void {
    if (!finite) {
      this.#scale = Math.max(this.minScale, this.#scale * this.backoffFactor);
      this.#clean = 0;
      this.#skipped++;
      return;
    }
    this.#clean++;
    if (this.#clean >= this.growthInterval) {
      this.#scale *= this.growthFactor;
      this.#clean = 0;
    }
  }

  state(): LossScalerState {
    return { scale: this.#scale, cleanSteps: this.#clean, skippedSteps: this.#skipped };
  }

  setState(s: LossScalerState): this {
    const ok = s && Number.isFinite(s.scale) && s.scale > 0 && Number.isInteger(s.cleanSteps) && s.cleanSteps >= 0 && Number.isInteger(s.skippedSteps) && s.skippedSteps >= 0;
    if (!ok) throw new TrainerConfigError(`DynamicLossScaler.setState: expected { scale > 0, cleanSteps, skippedSteps }, got ${JSON.stringify(s)}`);
    this.#scale = s.scale;
    this.#clean = s.cleanSteps;
    this.#skipped = s.skippedSteps;
    return this;
  }
}
