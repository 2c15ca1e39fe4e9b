/**
 * Load balancing (MODEL_SPEC §4; DeepSeek-V3, arXiv 2412.19437, §2.1.2):
 *
 * - Auxiliary-loss-free: after each step, expert_bias_i += u * sign(mean_load - load_i), so an
 *   overloaded expert's biased score drops and it is chosen less (the bias never touches the
 *   weights, only the choice). u is a small rate (1e-3 by default).
 * - Sequence-wise auxiliary loss (optional, a small alpha): for each sequence of T tokens,
 *     f_i = E / (K T) * #{t : i in topK(t)},   P_i = 1/T sum_t s_{i,t} / sum_j s_{j,t},
 *     L = alpha * sum_i f_i P_i            averaged over the sequences.
 *   f is a count (no gradient); the gradient flows through the scores s.
 * - Load statistics for logging: tokens per expert and max/mean imbalance.
 */
import {
  AttrError,
  DTypeError,
  Parameter,
  ShapeError,
  add,
  cast,
  describeShape,
  div,
  mean,
  mul,
  noGrad,
  oneHot,
  reshape,
  sign,
  sub,
  sum,
  tidy,
  type Tensor,
} from '@ring-linear/core';

/** The default bias update rate u (DeepSeek-V3 uses 1e-3 for most of training). */
export const DEFAULT_BIAS_UPDATE_RATE = 1e-3;

/**
 * The auxiliary-loss-free update, in place: bias += rate * sign(mean(load) - load). `load` is the
 * step's tokens per expert [E] (any numeric dtype; the dispatch plan's i32 counts, summed over the
 * step's micro-batches). Experts at exactly the mean load keep their bias. Not recorded for
 * autograd. `bias` keeps its dtype (f32 for the router).
 */
export function updateExpertBias(bias: Parameter, load: Tensor, rate = DEFAULT_BIAS_UPDATE_RATE): void {
  if (!(bias instanceof Parameter)) throw new AttrError(`updateExpertBias: 'bias' must be a Parameter (it is updated in place), got ${bias}`);
  if (!Number.isFinite(rate) || rate < 0) throw new AttrError(`updateExpertBias: 'rate' must be a finite number >= 0, got ${rate}`);
  if (load.rank !== 1 || load.shape[0] !== bias.shape[0]) {
    throw new ShapeError(`updateExpertBias: 'load' must have shape [${bias.shape[0]}] (one count per expert), got ${describeShape(load.shape)}`);
  }
  const next = noGrad(() =>
    tidy(() => {
      const l = cast(load, 'f32');
      const b = add(cast(bias, 'f32'), mul(sign(sub(mean(l), l)), rate));
      return b.dtype === bias.dtype ? b : cast(b, bias.dtype);
    }),
  );
  bias.assign(next);
}

export interface SequenceAuxLossOptions {
  /** Number of experts E (the last dim of scores). */
  readonly numExperts?: number;
  /** Coefficient alpha (default 1: the bare balance term). */
  readonly alpha?: number;
}

/**
 * Sequence-wise balance loss (DeepSeek-V3 eq. 17-20) for B sequences of T tokens: `scores`
 * [B, T, E] (the router's unbiased scores, f32) and `indices` [B, T, K] (the chosen experts; a
 * rank-2 [T, E] / [T, K] pair is one sequence). Returns a scalar f32: alpha * mean over sequences
 * of sum_i f_i P_i. The gradient flows into the scores only.
 */
export function sequenceAuxLoss(scores: Tensor, indices: Tensor, options: SequenceAuxLossOptions = {}): Tensor {
  const alpha = options.alpha ?? 1;
  if (!Number.isFinite(alpha)) throw new AttrError(`sequenceAuxLoss: 'alpha' must be a finite number, got ${alpha}`);
  const s3 = scores.rank === 2 ? reshape(scores, [1, ...scores.shape]) : scores;
  const i3 = indices.rank === 2 ? reshape(indices, [1, ...indices.shape]) : indices;
  if (s3.rank !== 3 || i3.rank !== 3 || s3.shape[0] !== i3.shape[0] || s3.shape[1] !== i3.shape[1]) {
    throw new ShapeError(
      `sequenceAuxLoss: expected scores [B, T, E] and indices [B, T, K] (or [T, E] and [T, K]), got ${describeShape(scores.shape)} and ${describeShape(indices.shape)}`,
    );
  }
  if (indices.dtype !== 'i32') throw new DTypeError(`sequenceAuxLoss: 'indices' must have dtype i32, got ${indices.dtype}`);
  const [, t, e] = s3.shape as [number, number, number];
  const k = i3.shape[2]!;
  if (options.numExperts !== undefined && options.numExperts !== e) {
    throw new ShapeError(`sequenceAuxLoss: scores have ${e} experts, numExperts says ${options.numExperts}`);
  }
  // f [B, E]: how often each expert was chosen in each sequence, times E / (K T). No gradient.
  const chosen = noGrad(() => sum(oneHot(i3, e, 'f32'), [1, 2]));
  const f = mul(chosen, e / (k * t));
  const sf = s3.dtype === 'f32' ? s3 : cast(s3, 'f32');
  const p = mean(div(sf, sum(sf, -1, { keepDims: true })), 1); // [B, E]
  return mul(mean(sum(mul(f, p), -1)), alpha);
}

export interface LoadStatistics {
  /** Token assignments per expert (each token counts once per chosen expert). */
  readonly tokensPerExpert: readonly number[];
  /** Sum over experts (tokens x topK). */
  readonly total: number;
  readonly mean: number;
  readonly max: number;
  readonly min: number;
  /** max / mean: 1 is perfect balance; E / K when every token goes to the same K experts. */
  readonly maxOverMean: number;
  /** min / mean (0 when an expert got nothing). */
  readonly minOverMean: number;
  /** Experts that got no tokens. */
  readonly idleExperts: number;
}

/** Statistics of one step's load (tokens per expert, as host numbers). */
export function loadStatistics(tokensPerExpert: ArrayLike<number>): LoadStatistics {
  const counts = Array.from(tokensPerExpert, Number);
  if (counts.length === 0) throw new ShapeError('loadStatistics: expected one count per expert, got none');
  const total = counts.reduce((a, b) => a + b, 0);
  const avg = total / counts.length;
  const max = Math.max(...counts);
  const min = Math.min(...counts);
  return {
    tokensPerExpert: counts,
    total,
    mean: avg,
    max,
    min,
    maxOverMean: avg > 0 ? max / avg : 0,
    minOverMean: avg > 0 ? min / avg : 0,
    idleExperts: counts.filter((c) => c === 0).length,
  };
}

/** Reads a load tensor [E] back (async, any backend) and returns its statistics. */
export async function readLoadStatistics(load: Tensor): Promise<LoadStatistics> {
  if (load.rank !== 1) throw new ShapeError(`readLoadStatistics: 'load' must have rank 1 [experts], got ${describeShape(load.shape)}`);
  return loadStatistics(await load.data());
}
