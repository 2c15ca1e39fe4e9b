/**
 * Global-norm gradient clipping (as torch.nn.utils.clip_grad_norm_): the L2 norm over all
 * gradients together, computed in f32; when it exceeds maxNorm every gradient is multiplied by
 * maxNorm / (norm + 1e-6). Everything stays on the device: the norm is a tensor, read only by
 * whoever logs it.
 */
import { add, cast, div, minimum, mul, noGrad, sqrt, square, sum, tidy, type Tensor } from '@ring-linear/core';
import { TrainerConfigError } from '../errors.js';

const f32 = (g: Tensor): Tensor => (g.dtype === 'f32' ? g : cast(g, 'f32'));

/** sqrt(sum_i sum(g_i^2)) as an f32 scalar tensor (summed in the order given). */
export function globalNorm(grads: readonly Tensor[]): Tensor {
  if (grads.length === 0) throw new TrainerConfigError('globalNorm: expected at least one gradient, got none');
  return noGrad(() =>
    tidy(() => {
      let total: Tensor | null = null;
      for (const g of grads) {
        const s = sum(square(f32(g)));
        total = total ? add(total, s) : s;
      }
      return sqrt(total!);
    }),
  );
}

export interface ClipResult {
  /** The clipped gradients (new f32 tensors); the inputs are left alone. */
  readonly grads: Tensor[];
  /** The global norm BEFORE clipping (f32 scalar). */
  readonly norm: Tensor;
}

/**
 * Scales the gradients so their global norm is at most `maxNorm`. Returns new f32 tensors and the
 * norm before clipping. A non-finite norm makes the gradients non-finite (as PyTorch without
 * error_if_nonfinite); the trainer's loss scaler checks for that first.
 */
export function clipGradNorm(grads: readonly Tensor[], maxNorm: number): ClipResult {
  if (!(typeof maxNorm === 'number' && maxNorm > 0 && Number.isFinite(maxNorm))) {
    throw new TrainerConfigError(`clipGradNorm: maxNorm must be a finite number > 0, got ${maxNorm}`);
  }
  return noGrad(() =>
    tidy(() => {
      const norm = globalNorm(grads);
      // coef = min(1, maxNorm / (norm + 1e-6)), computed on the device.
      const coef = minimum(div(maxNorm, add(norm, 1e-6)), 1);
      return { grads: grads.map((g) => mul(f32(g), coef)), norm };
    }),
  );
}
