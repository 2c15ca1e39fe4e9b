/**
 * Reinforcement learning with verifiable rewards, GRPO-style (Shao et al., DeepSeekMath 2024),
 * with the importance ratio taken against the SAMPLER's own log-probabilities, as the Ring-linear
 * report does once training and inference are aligned (MODEL_SPEC §7):
 *
 *   rollouts   for each of P prompts, G completions drawn by @ring-linear/sampler at temperature
 *              1 with no filters (so the tokens come from exactly the distribution whose log-probs
 *              the sampler reports); the model runs in eval mode (MoE loads of rollouts are not
 *              balancing input)
 *   rewards    r from the task's verifier; advantages within each group A = (r - mean) / (std +
 *              1e-6) ('group-norm', default) or r - mean ('group-mean'); groups whose advantages
 *              are all zero carry no signal and are left out of the loss
 *   objective  per completion token t, with log pi_train from the training forward (packed rows,
 *              the same kernels) and log pi_rollout from the sampler:
 *                ratio_t = exp(log pi_train - log pi_rollout)
 *                L = - sum_t min(ratio_t A, clip(ratio_t, 1 - eps_low, 1 + eps_high) A) / #tokens
 *              (token-level mean over the step, the clipped surrogate of PPO)
 *   alignment  before the first update of a step pi_train and pi_rollout describe the same
 *              weights, so |log pi_train - log pi_rollout| is pure training/inference mismatch: it
 *              is logged every step (mean and max) and compared with the sampler's alignment bound
 *              (1e-5, what the sampler's tests guarantee on the CPU backend)
 *
 * With ppoEpochs > 1 the same rollouts are reused for further updates (the ratio then moves away
 * from 1 and the clip matters). Each update: clipping of the global gradient norm, AdamW, then the
 * MoE auxiliary-loss-free bias update with the training forwards' loads.
 */
import {
  clip,
  dispose,
  exp,
  findBackend,
  keep,
  logSoftmax,

  minimum,
  mul,
  neg,
  reshape,
  stopGradient,
  sub,
  sum,
  takeAlongAxis,
  tensor,
  valueAndGrad,
  type Tensor,
} from '@ring-linear/core';
import type { RingLinearForCausalLM } from '@ring-linear/models';
import { MoE } from '@ring-linear/moe';
import { Sampler, type GenerationResult, type SamplerTokenizer } from '@ring-linear/sampler';
import { TrainerConfigError } from '../errors.js';
import { AdamW, NO_DECAY, type AdamWOptions } from '../optim/adamw.js';
import { clipGradNorm, globalNorm } from '../optim/clip.js';
import { constantSchedule, type Schedule } from '../optim/schedule.js';
import { MetricsWriter } from '../observe/metrics.js';
import { ProgressReporter, type ProgressOptions } from '../observe/progress.js';
import { TaskRandom } from '../tasks.js';
import type { RLItem, RLTask } from './tasks.js';

/**
 * The sampler's training-inference alignment bound on log-probabilities: the largest
 * |sampler log-prob - trainer log-softmax| its tests accept for sampled tokens (CPU backend).
 */
export const ROLLOUT_LOGPROB_BOUND = 1e-5;

export type AdvantageMode = 'group-norm' | 'group-mean';

export interface GRPOOptions {
  readonly model: RingLinearForCausalLM;
  /** Encodes prompts and decodes completions for the verifier (e.g. ByteTokenizer). */
  readonly tokenizer: SamplerTokenizer;
  readonly task: RLTask;
  /** RL steps of the run. */
  readonly totalSteps: number;
  /** Prompts per step (default 8). */
  readonly promptsPerStep?: number;
  /** Completions per prompt, the group (default 8). */
  readonly groupSize?: number;
  /** Longest completion (default 8). */
  readonly maxTokens?: number;
  /** AdamW settings (default lr 1e-3, no decay on norms/biases/embeddings). */
  readonly optimizer?: AdamWOptions;
  readonly schedule?: Schedule;
  /** PPO clip range: ratio kept in [1 - clipLow, 1 + clipHigh] (defaults 0.2 and clipLow). */
  readonly clipLow?: number;
  readonly clipHigh?: number;
  /** Updates per batch of rollouts (default 1). */
  readonly ppoEpochs?: number;
  readonly advantage?: AdvantageMode;
  /** Global-norm clip (default 1; null: none). */
  readonly maxGradNorm?: number | null;
  /** Seed of the prompt draws and the sampler (default 0). */
  readonly seed?: number;
  /** The alignment bound compared with the logged gap (default ROLLOUT_LOGPROB_BOUND). */
  readonly logprobGapBound?: number;
  readonly metrics?: { readonly path: string } | null;
  /** Progress display (default false). */
  readonly progress?: boolean | ProgressOptions;
}

export interface RLStepMetrics {
  readonly step: number;
  /** Mean reward of the step's rollouts. */
  readonly meanReward: number;
  readonly loss: number;
  readonly lr: number;
  readonly gradNorm: number;
  /** Mean and max |log pi_train - log pi_rollout| over the completion tokens, before any update. */
  readonly logprobGapMean: number;
  readonly logprobGapMax: number;
  /** logprobGapMax <= the alignment bound. */
  readonly gapWithinBound: boolean;
  /** Fraction of tokens whose ratio was clipped (over all epochs). */
  readonly clipFraction: number;
  readonly completionTokens: number;
  readonly meanCompletionLength: number;
  /** Groups with any signal (not all rewards equal). */
  readonly activeGroups: number;
  /** True when no group had signal (no update was made). */
  readonly skipped: boolean;
  readonly stepMs: number;
}

/** One completion of a step: its prompt, the sampler's result, the verifier's reward, the advantage. */
export interface Rollout {
  readonly item: RLItem;
  /** Index of the prompt (its group) in the step. */
  readonly group: number;
  readonly result: GenerationResult;
  readonly reward: number;
  advantage: number;
}

function intAtLeast(what: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new TrainerConfigError(`GRPOTrainer: '${what}' must be an integer >= ${min}, got ${v}`);
  return v;
}

export class GRPOTrainer {
  readonly model: RingLinearForCausalLM;
  readonly optimizer: AdamW;
  readonly schedule: Schedule;
  readonly sampler: Sampler;
  readonly task: RLTask;
  readonly totalSteps: number;
  readonly promptsPerStep: number;
  readonly groupSize: number;
  readonly maxTokens: number;
  readonly clipLow: number;
  readonly clipHigh: number;
  readonly ppoEpochs: number;
  readonly advantage: AdvantageMode;
  readonly maxGradNorm: number | null;
  readonly seed: number;
  readonly logprobGapBound: number;
  readonly #metrics: MetricsWriter | null;
  readonly #progress: boolean | ProgressOptions;
  readonly #moes: MoE[];
  #step = 0;
  #lastRollouts: readonly Rollout[] = [];

  constructor(options: GRPOOptions) {
    const o = options;
    this.model = o.model;
    this.task = o.task;
    if (!o.task || typeof o.task.prompts !== 'function' || typeof o.task.reward !== 'function') {
      throw new TrainerConfigError('GRPOTrainer: options.task must have prompts(count, random) and reward(item, completion)');
    }
    this.totalSteps = intAtLeast('totalSteps', o.totalSteps, 1);
    this.promptsPerStep = intAtLeast('promptsPerStep', o.promptsPerStep ?? 8, 1);
    this.groupSize = intAtLeast('groupSize', o.groupSize ?? 8, 2);
    this.maxTokens = intAtLeast('maxTokens', o.maxTokens ?? 8, 1);
    this.ppoEpochs = intAtLeast('ppoEpochs', o.ppoEpochs ?? 1, 1);
    this.clipLow = o.clipLow ?? 0.2;
    this.clipHigh = o.clipHigh ?? this.clipLow;
    for (const [k, v] of [['clipLow', this.clipLow], ['clipHigh', this.clipHigh]] as const) {
      if (!(v > 0 && v < 1)) throw new TrainerConfigError(`GRPOTrainer: '${k}' must be in (0, 1), got ${v}`);
    }
    this.advantage = o.advantage ?? 'group-norm';
    if (this.advantage !== 'group-norm' && this.advantage !== 'group-mean') {
      throw new TrainerConfigError(`GRPOTrainer: 'advantage' must be 'group-norm' or 'group-mean', got ${String(this.advantage)}`);
    }
    const clipNorm = o.maxGradNorm === undefined ? 1 : o.maxGradNorm;
    if (clipNorm !== null && !(clipNorm > 0)) throw new TrainerConfigError(`GRPOTrainer: 'maxGradNorm' must be > 0 or null, got ${clipNorm}`);
    this.maxGradNorm = clipNorm;
    this.seed = o.seed ?? 0;
    if (!Number.isSafeInteger(this.seed) || this.seed < 0) throw new TrainerConfigError(`GRPOTrainer: 'seed' must be a non-negative safe integer, got ${this.seed}`);
    this.logprobGapBound = o.logprobGapBound ?? ROLLOUT_LOGPROB_BOUND;
    const limit = this.model.config.max_position_embeddings;
    if (this.maxTokens >= limit) throw new TrainerConfigError(`GRPOTrainer: maxTokens ${this.maxTokens} leaves no room for a prompt within max_position_embeddings ${limit}`);
    const opt = o.optimizer ?? {};
    this.optimizer = new AdamW(this.model.namedParameters(), { lr: 1e-3, weightDecay: 0, ...opt, groups: opt.groups ?? [NO_DECAY] });
    this.schedule = o.schedule ?? constantSchedule({ peakLr: this.optimizer.defaults.lr });
    this.sampler = new Sampler(this.model, { tokenizer: o.tokenizer });
    this.#metrics = o.metrics ? new MetricsWriter(o.metrics.path) : null;
    this.#progress = o.progress ?? false;
    this.#moes = this.model.modules().filter((m): m is MoE => m instanceof MoE);
  }

  get step(): number {
    return this.#step;
  }

  /** The rollouts of the most recent step (for inspection and logging). */
  get lastRollouts(): readonly Rollout[] {
    return this.#lastRollouts;
  }

  /** Draws completions for the items (the model in eval mode), G per item unless `groupSize` is given. */
  async rollouts(items: readonly RLItem[], options: { groupSize?: number; seed?: number; temperature?: number } = {}): Promise<GenerationResult[]> {
    const g = options.groupSize ?? this.groupSize;
    const prompts = items.flatMap((it) => Array.from({ length: g }, () => it.prompt));
    const wasTraining = this.model.training;
    this.model.eval();
    try {
      return await this.sampler.generateBatch(prompts, {
        temperature: options.temperature ?? 1,
        maxTokens: this.maxTokens,
        seed: options.seed ?? this.seed * 1_000_003 + this.#step,
      });
    } finally {
      this.model.train(wasTraining);
    }
  }

  /**
   * Mean reward on fixed items: `samples` completions each at temperature 1 with a fixed seed
   * (the expected reward of the policy, estimated), or the greedy completion (samples 0).
   */
  async evaluate(items: readonly RLItem[], options: { samples?: number; seed?: number } = {}): Promise<number> {
    const samples = options.samples ?? 8;
    if (!Number.isInteger(samples) || samples < 0) throw new TrainerConfigError(`GRPOTrainer.evaluate: samples must be an integer >= 0, got ${samples}`);
    const greedy = samples === 0;
    const g = greedy ? 1 : samples;
    const results = await this.rollouts(items, { groupSize: g, temperature: greedy ? 0 : 1, seed: options.seed ?? 0 });
    let total = 0;
    results.forEach((r, k) => (total += this.task.reward(items[Math.floor(k / g)]!, completionOf(r))));
    return total / results.length;
  }

  /** One RL step: rollouts, rewards, advantages, ppoEpochs clipped-surrogate updates. */
  async trainStep(): Promise<RLStepMetrics> {
    const t0 = Date.now();
    const step = this.#step;
    const lr = this.schedule.lr(step);
    const items = this.task.prompts(this.promptsPerStep, new TaskRandom(this.seed * 7919 + step));
    const results = await this.rollouts(items);
    const rollouts: Rollout[] = results.map((result, k) => {
      const group = Math.floor(k / this.groupSize);
      return { item: items[group]!, group, result, reward: this.task.reward(items[group]!, completionOf(result)), advantage: 0 };
    });
    let active = 0;
    for (let gi = 0; gi < items.length; gi++) {
      const grp = rollouts.slice(gi * this.groupSize, (gi + 1) * this.groupSize);
      const mean = grp.reduce((a, r) => a + r.reward, 0) / grp.length;
      const std = Math.sqrt(grp.reduce((a, r) => a + (r.reward - mean) ** 2, 0) / grp.length);
      if (std === 0) continue; // no signal in this group
      active++;
      for (const r of grp) r.advantage = this.advantage === 'group-norm' ? (r.reward - mean) / (std + 1e-6) : r.reward - mean;
    }
    this.#lastRollouts = rollouts;
    const meanReward = rollouts.reduce((a, r) => a + r.reward, 0) / rollouts.length;
    const completionTokens = rollouts.reduce((a, r) => a + r.result.tokens.length, 0);

    // The packed training batch: every rollout (the gap is measured on all of them), the loss
    // weighted by the advantages (zero for groups without signal).
    const batch = packRollouts(rollouts);
    let gapMean = 0;
    let gapMax = 0;
    let clipped = 0;
    let counted = 0;
    let lossValue = 0;
    let gradNorm = 0;
    const skipped = active === 0;
    const params = this.optimizer.parameters;
    // On the model's backend.
    const backend = findBackend(params[0]!.backend);
    const ids = tensor(batch.inputIds, [1, batch.length], 'i32', backend);
    const targets = tensor(batch.targetIds, [1, batch.length], 'i32', backend);
    const rolloutLp = tensor(batch.rolloutLogprobs, [batch.length], 'f32', backend);
    const adv = tensor(batch.advantages, [batch.length], 'f32', backend);
    const mask = tensor(batch.mask, [batch.length], 'f32', backend);
    const nTokens = Math.max(1, batch.completionTokens);
    try {
      for (let epoch = 0; epoch < this.ppoEpochs; epoch++) {
        let trainLp: Tensor | null = null;
        let ratioT: Tensor | null = null;
        const { value, grads } = valueAndGrad(() => {
          const out = this.model.forward(ids, { cuSeqlens: batch.cuSeqlens, logits: 'all' });
          const lp = logSoftmax(out.logits!, -1); // f32, MODEL_SPEC §7
          const taken = reshape(takeAlongAxis(lp, reshape(targets, [1, batch.length, 1]), 2), [batch.length]);
          trainLp = keep(stopGradient(taken));
          const ratio = exp(mul(sub(taken, rolloutLp), mask)); // 1 at non-completion positions
          ratioT = keep(stopGradient(ratio));
          const s1 = mul(ratio, adv);
          const s2 = mul(clip(ratio, 1 - this.clipLow, 1 + this.clipHigh), adv);
          return mul(neg(sum(mul(minimum(s1, s2), mask))), 1 / nTokens);
        }, params);
        try {
          lossValue = (await value.data())[0]!;
          const lpv = await (trainLp as unknown as Tensor).data();
          const rv = await (ratioT as unknown as Tensor).data();
          for (let i = 0; i < batch.length; i++) {
            if (!batch.mask[i]) continue;
            if (epoch === 0) {
              const d = Math.abs(lpv[i]! - batch.rolloutLogprobs[i]!);
              gapMean += d;
              gapMax = Math.max(gapMax, d);
            }
            if (rv[i]! < 1 - this.clipLow || rv[i]! > 1 + this.clipHigh) clipped++;
            counted++;
          }
          if (!skipped) {
            let g = grads;
            let normT: Tensor;
            if (this.maxGradNorm !== null) {
              const r = clipGradNorm(grads, this.maxGradNorm);
              g = r.grads;
              normT = r.norm;
            } else normT = globalNorm(grads);
            gradNorm = (await normT.data())[0]!;
            normT.dispose();
            this.optimizer.step(g, { lr });
            if (g !== grads) dispose(g);
          }
          for (const moe of this.#moes) if (moe.pendingLoad) moe.updateExpertBias();
        } finally {
          value.dispose();
          dispose(grads);
          (trainLp as Tensor | null)?.dispose();
          (ratioT as Tensor | null)?.dispose();
        }
      }
    } finally {
      dispose([ids, targets, rolloutLp, adv, mask]);
    }
    gapMean /= Math.max(1, batch.completionTokens);
    this.#step = step + 1;
    return {
      step: this.#step,
      meanReward,
      loss: lossValue,
      lr,
      gradNorm,
      logprobGapMean: gapMean,
      logprobGapMax: gapMax,
      gapWithinBound: gapMax <= this.logprobGapBound,
      clipFraction: counted ? clipped / counted : 0,
      completionTokens,
      meanCompletionLength: completionTokens / rollouts.length,
      activeGroups: active,
      skipped,
      stepMs: Date.now() - t0,
    };
  }

  /** Runs to totalSteps (or `steps` more), logging metrics and progress. */
  async fit(options: { readonly steps?: number } = {}): Promise<RLStepMetrics[]> {
    const until = options.steps !== undefined ? Math.min(this.totalSteps, this.#step + intAtLeast('steps', options.steps, 1)) : this.totalSteps;
    const p = this.#progress === false ? null : new ProgressReporter(this.totalSteps, { label: 'rl', ...(typeof this.#progress === 'object' ? this.#progress : {}) });
    const out: RLStepMetrics[] = [];
    try {
      while (this.#step < until) {
        const m = await this.trainStep();
        out.push(m);
        await this.#metrics?.write(m as unknown as RLStepMetrics & Record<string, unknown>);
        p?.update({
          step: m.step,
          loss: m.loss,
          lr: m.lr,
          tokensPerSecond: (m.completionTokens * 1000) / Math.max(1, m.stepMs),
          extra: { reward: m.meanReward, gap: m.logprobGapMax },
        });
      }
    } finally {
      p?.finish();
    }
    return out;
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

/** The completion as the verifier sees it. */
function completionOf(r: GenerationResult): { text: string; tokens: readonly number[]; finishReason: string | null } {
  return { text: r.text, tokens: r.tokens, finishReason: r.finishReason };
}

interface PackedRollouts {
  readonly inputIds: Int32Array;
  readonly targetIds: Int32Array;
  readonly rolloutLogprobs: Float32Array;
  readonly advantages: Float32Array;
  readonly mask: Float32Array;
  readonly cuSeqlens: Int32Array;
  readonly length: number;
  readonly completionTokens: number;
}

/**
 * Rollouts as one packed row: sequence k is prompt + completion without its last token (inputs),
 * targets shifted by one; positions whose target is a completion token carry its rollout log-prob,
 * its advantage, and mask 1.
 */
function packRollouts(rollouts: readonly Rollout[]): PackedRollouts {
  let length = 0;
  for (const r of rollouts) length += r.result.promptTokens.length + r.result.tokens.length - 1;
  const inputIds = new Int32Array(length);
  const targetIds = new Int32Array(length);
  const lp = new Float32Array(length);
  const adv = new Float32Array(length);
  const mask = new Float32Array(length);
  const cu = [0];
  let at = 0;
  let completion = 0;
  for (const r of rollouts) {
    const seq = [...r.result.promptTokens, ...r.result.tokens];
    const p = r.result.promptTokens.length;
    for (let i = 0; i < seq.length - 1; i++) {
      inputIds[at + i] = seq[i]!;
      targetIds[at + i] = seq[i + 1]!;
      const j = i + 1 - p; // index of the target among the completion tokens
      if (j >= 0) {
        lp[at + i] = r.result.logprobs[j]!;
        adv[at + i] = r.advantage;
        mask[at + i] = 1;
        completion++;
      }
    }
    at += seq.length - 1;
    cu.push(at);
  }
  return { inputIds, targetIds, rolloutLogprobs: lp, advantages: adv, mask, cuSeqlens: Int32Array.from(cu), length, completionTokens: completion };
}
