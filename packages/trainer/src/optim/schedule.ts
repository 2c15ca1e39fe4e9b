/**
 * Learning-rate schedules, as pure functions of the optimizer step (0-based: lr(0) is the rate of
 * the first update). Each is described by a JSON spec, saved in checkpoints, so a resumed run
 * checks it continues the same schedule.
 *
 * Warmup (every schedule): lr = peak * (step + 1) / warmupSteps for step < warmupSteps (linear,
 * the first update already moves), then the schedule's own shape:
 *
 *   constant   peak
 *   cosine     min + (peak - min) * (1 + cos(pi * p)) / 2,  p = (step - warmup) / (total - warmup)
 *   wsd        warmup-stable-decay: peak until the last `decaySteps`, then down toward min along
 *              a 'linear', 'cosine' or 'sqrt' (1 - sqrt(p)) shape, p = (step - decay start) /
 *              decaySteps (min is reached at totalSteps, one past the last update, as cosine)
 *   wsm        warmup-stable-merge (the report's choice): peak to the end, no decay; the decay is
 *              emulated afterwards by averaging checkpoints of the stable phase with weights
 *              from wsmMergeWeights() (see mergeCheckpoints)
 *
 * WSM weights. Merging checkpoints theta_1..theta_n (theta_n the latest) with weights c_j gives
 * theta_1 plus every later update u_s (between theta_{s-1} and theta_s) times
 * w_s = sum_{j >= s} c_j: a merge replays the window's updates with learning-rate multipliers
 * w_s. Choosing w_s = f((s - 1) / n) for a decay shape f (f(0) = 1, f(1) = 0) gives
 * c_j = f((j - 1) / n) - f(j / n), which sums to 1. A linear f gives the plain average.
 * (Tian et al., "WSM: Decay-Free Learning Rate Schedule via Checkpoint Merging for LLM
 * Pre-training", 2025; the Ring-linear report trains with WSM.)
 */
import { TrainerConfigError } from '../errors.js';

export type DecayShape = 'linear' | 'cosine' | 'sqrt';

export type ScheduleSpec =
  | { readonly kind: 'constant'; readonly peakLr: number; readonly warmupSteps: number }
  | { readonly kind: 'cosine'; readonly peakLr: number; readonly warmupSteps: number; readonly totalSteps: number; readonly minLr: number }
  | {
      readonly kind: 'wsd';
      readonly peakLr: number;
      readonly warmupSteps: number;
      readonly totalSteps: number;
      readonly decaySteps: number;
      readonly minLr: number;
      readonly decayShape: DecayShape;
    }
  | {
      readonly kind: 'wsm';
      readonly peakLr: number;
      readonly warmupSteps: number;
      readonly totalSteps: number;
      /** Steps between the checkpoints that are merged. */
      readonly mergeEvery: number;
      /** How many checkpoints are merged (the last ones, ending at the final step). */
      readonly mergeCount: number;
      readonly decayShape: DecayShape;
    };

export interface Schedule {
  readonly spec: ScheduleSpec;
  /** Learning rate of update `step` (0-based). */
  lr(step: number): number;
}

function num(what: string, v: unknown, min: number, integer = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
    throw new TrainerConfigError(`schedule: '${what}' must be ${integer ? 'an integer' : 'a finite number'} >= ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function shapeOf(v: unknown): DecayShape {
  if (v === 'linear' || v === 'cosine' || v === 'sqrt') return v;
  throw new TrainerConfigError(`schedule: 'decayShape' must be 'linear', 'cosine' or 'sqrt', got ${JSON.stringify(v)}`);
}

/** The decay multiplier f(p) for progress p in [0, 1]: 1 at p = 0, 0 at p = 1. */
export function decayMultiplier(shape: DecayShape, p: number): number {
  const x = Math.min(1, Math.max(0, p));
  switch (shape) {
    case 'linear':
      return 1 - x;
    case 'cosine':
      return 0.5 * (1 + Math.cos(Math.PI * x));
    case 'sqrt':
      return 1 - Math.sqrt(x);
  }
}

function checkStep(step: number): number {
  if (!Number.isInteger(step) || step < 0) throw new TrainerConfigError(`schedule.lr: step must be an integer >= 0, got ${step}`);
  return step;
}

function warm(step: number, peak: number, warmupSteps: number): number | null {
  return step < warmupSteps ? (peak * (step + 1)) / warmupSteps : null;
}

export interface ConstantScheduleOptions {
  readonly peakLr: number;
  readonly warmupSteps?: number;
}

/** Linear warmup, then constant. */
export function constantSchedule(o: ConstantScheduleOptions): Schedule {
  const spec = { kind: 'constant', peakLr: num('peakLr', o.peakLr, 0), warmupSteps: num('warmupSteps', o.warmupSteps ?? 0, 0, true) } as const;
  return { spec, lr: (step) => warm(checkStep(step), spec.peakLr, spec.warmupSteps) ?? spec.peakLr };
}

export interface CosineScheduleOptions {
  readonly peakLr: number;
  readonly warmupSteps?: number;
  readonly totalSteps: number;
  /** Floor of the decay (default 0). */
  readonly minLr?: number;
}

/** Linear warmup, then cosine decay from peak to minLr at totalSteps (minLr afterwards). */
export function cosineSchedule(o: CosineScheduleOptions): Schedule {
  const spec = {
    kind: 'cosine',
    peakLr: num('peakLr', o.peakLr, 0),
    warmupSteps: num('warmupSteps', o.warmupSteps ?? 0, 0, true),
    totalSteps: num('totalSteps', o.totalSteps, 1, true),
    minLr: num('minLr', o.minLr ?? 0, 0),
  } as const;
  if (spec.warmupSteps > spec.totalSteps) throw new TrainerConfigError(`schedule: warmupSteps (${spec.warmupSteps}) exceeds totalSteps (${spec.totalSteps})`);
  const span = Math.max(1, spec.totalSteps - spec.warmupSteps);
  return {
    spec,
    lr(step) {
      const w = warm(checkStep(step), spec.peakLr, spec.warmupSteps);
      if (w !== null) return w;
      const p = (step - spec.warmupSteps) / span;
      return spec.minLr + (spec.peakLr - spec.minLr) * decayMultiplier('cosine', p);
    },
  };
}

export interface WsdScheduleOptions {
  readonly peakLr: number;
  readonly warmupSteps?: number;
  readonly totalSteps: number;
  /** Length of the final decay (default: 10% of totalSteps, at least 1). */
  readonly decaySteps?: number;
  readonly minLr?: number;
  /** Default 'linear'. */
  readonly decayShape?: DecayShape;
}

/** Warmup-stable-decay: warmup, peak, then decay over the last decaySteps to minLr. */
export function wsdSchedule(o: WsdScheduleOptions): Schedule {
  const totalSteps = num('totalSteps', o.totalSteps, 1, true);
  const spec = {
    kind: 'wsd',
    peakLr: num('peakLr', o.peakLr, 0),
    warmupSteps: num('warmupSteps', o.warmupSteps ?? 0, 0, true),
    totalSteps,
    decaySteps: num('decaySteps', o.decaySteps ?? Math.max(1, Math.round(totalSteps * 0.1)), 1, true),
    minLr: num('minLr', o.minLr ?? 0, 0),
    decayShape: shapeOf(o.decayShape ?? 'linear'),
  } as const;
  if (spec.warmupSteps + spec.decaySteps > spec.totalSteps) {
    throw new TrainerConfigError(`schedule: warmupSteps (${spec.warmupSteps}) + decaySteps (${spec.decaySteps}) exceed totalSteps (${spec.totalSteps})`);
  }
  const decayStart = spec.totalSteps - spec.decaySteps;
  return {
    spec,
    lr(step) {
      const w = warm(checkStep(step), spec.peakLr, spec.warmupSteps);
      if (w !== null) return w;
      if (step < decayStart) return spec.peakLr;
      // As cosine: p runs from 0 at the decay's first update to 1 at totalSteps (one past the
      // last update, so no update is wasted at lr = minLr = 0).
      const p = (step - decayStart) / spec.decaySteps;
      return spec.minLr + (spec.peakLr - spec.minLr) * decayMultiplier(spec.decayShape, p);
    },
  };
}

export interface WsmScheduleOptions {
  readonly peakLr: number;
  readonly warmupSteps?: number;
  readonly totalSteps: number;
  /** Steps between merged checkpoints (default: totalSteps / 10, at least 1). */
  readonly mergeEvery?: number;
  /** Number of checkpoints merged (default 5). */
  readonly mergeCount?: number;
  /** The decay the merge emulates (default 'linear': a plain average). */
  readonly decayShape?: DecayShape;
}

export interface WsmSchedule extends Schedule {
  readonly spec: Extract<ScheduleSpec, { kind: 'wsm' }>;
  /** Steps whose checkpoints the final merge averages, oldest first (the last is totalSteps). */
  mergeSteps(): number[];
  /** The merge weights, in the order of mergeSteps() (sum 1). */
  mergeWeights(): number[];
}

/** Warmup-stable-merge: warmup, then peak to the end; decay is replaced by checkpoint merging. */
export function wsmSchedule(o: WsmScheduleOptions): WsmSchedule {
  const totalSteps = num('totalSteps', o.totalSteps, 1, true);
  const spec = {
    kind: 'wsm',
    peakLr: num('peakLr', o.peakLr, 0),
    warmupSteps: num('warmupSteps', o.warmupSteps ?? 0, 0, true),
    totalSteps,
    mergeEvery: num('mergeEvery', o.mergeEvery ?? Math.max(1, Math.floor(totalSteps / 10)), 1, true),
    mergeCount: num('mergeCount', o.mergeCount ?? 5, 1, true),
    decayShape: shapeOf(o.decayShape ?? 'linear'),
  } as const;
  if ((spec.mergeCount - 1) * spec.mergeEvery >= spec.totalSteps) {
    throw new TrainerConfigError(
      `schedule: ${spec.mergeCount} checkpoints ${spec.mergeEvery} steps apart do not fit in ${spec.totalSteps} steps (the first would be at step <= 0)`,
    );
  }
  return {
    spec,
    lr: (step) => warm(checkStep(step), spec.peakLr, spec.warmupSteps) ?? spec.peakLr,
    mergeSteps: () => Array.from({ length: spec.mergeCount }, (_, j) => spec.totalSteps - (spec.mergeCount - 1 - j) * spec.mergeEvery),
    mergeWeights: () => wsmMergeWeights(spec.mergeCount, spec.decayShape),
  };
}

/**
 * Weights for merging n checkpoints (oldest first) so the merge emulates a decay of the given shape
 * over the window (see the file comment): c_j = f((j-1)/n) - f(j/n). Sum 1; 'linear' is uniform.
 */
export function wsmMergeWeights(n: number, shape: DecayShape = 'linear'): number[] {
  num('n', n, 1, true);
  shapeOf(shape);
  return Array.from({ length: n }, (_, i) => decayMultiplier(shape, i / n) - decayMultiplier(shape, (i + 1) / n));
}

/** The schedule a spec describes (e.g. from a checkpoint's trainer state). */
export function scheduleFromSpec(spec: ScheduleSpec): Schedule {
  if (!spec || typeof spec !== 'object') throw new TrainerConfigError(`schedule: expected a spec object, got ${JSON.stringify(spec)}`);
  switch (spec.kind) {
    case 'constant':
      return constantSchedule(spec);
    case 'cosine':
      return cosineSchedule(spec);
    case 'wsd':
      return wsdSchedule(spec);
    case 'wsm':
      return wsmSchedule(spec);
    default:
      throw new TrainerConfigError(`schedule: unknown kind ${JSON.stringify((spec as { kind?: unknown }).kind)} (expected constant, cosine, wsd or wsm)`);
  }
}
