/**
 * Gradient accumulation over micro-batches: gradients are widened to f32 and summed, so a step of
 * k micro-batches updates with the sum of their gradients (the trainer scales each micro-batch's
 * loss so that sum is the gradient of the whole step's mean loss). The running sums are kept out of
 * any scope and replaced on every add, so memory holds one set of f32 gradients however many
 * micro-batches there are.
 */
import { add, cast, keep, noGrad, shapesEqual, tidy, describeShape, type Tensor } from '@ring-linear/core';
import { TrainerConfigError } from '../errors.js';

export class GradientAccumulator {
  #sums: Tensor[] | null = null;
  #count = 0;

  /** Micro-batches added since the last take(). */
  get count(): number {
    return this.#count;
  }

  /** Adds one micro-batch's gradients (any float dtype). `consume` disposes them afterwards. */
  add(grads: readonly Tensor[], options: { consume?: boolean } = {}): void {
    const prev = this.#sums;
    if (prev && prev.length !== grads.length) {
      throw new TrainerConfigError(`GradientAccumulator.add: expected ${prev.length} gradients (as the first micro-batch), got ${grads.length}`);
    }
    grads.forEach((g, i) => {
      if (prev && !shapesEqual(prev[i]!.shape, g.shape)) {
        throw new TrainerConfigError(`GradientAccumulator.add: gradient ${i} has shape ${describeShape(g.shape)}, the first micro-batch's ${describeShape(prev[i]!.shape)}`);
      }
    });
    const next = noGrad(() =>
      tidy(() => grads.map((g, i) => {
        const g32 = g.dtype === 'f32' ? g : cast(g, 'f32');
        return prev ? add(prev[i]!, g32) : g32 === g ? cast(g, 'f32') : g32;
      })),
    );
    for (const t of next) keep(t);
    if (prev) for (const t of prev) t.dispose();
    if (options.consume) for (const g of grads) g.dispose();
    this.#sums = next;
    this.#count++;
  }

  /** The summed f32 gradients (ownership passes to the caller); resets the accumulator. */
  take(): Tensor[] {
    if (!this.#sums) throw new TrainerConfigError('GradientAccumulator.take: no gradients were added');
    const out = this.#sums;
    this.#sums = null;
    this.#count = 0;
    return out;
  }

  /** Drops any pending sums. */
  reset(): void {
    if (this.#sums) for (const t of this.#sums) t.dispose();
    this.#sums = null;
    this.#count = 0;
  }
}
