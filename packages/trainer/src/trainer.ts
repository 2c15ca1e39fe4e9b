/**
 * The training loop: packed batches -> forward/backward (micro-batches accumulated) -> clipping
 * -> AdamW under a schedule -> MoE bias update -> metrics, progress, evaluation, checkpoints.
 *
 * Loss. Each micro-batch contributes sum(cross-entropy over its counted targets) / N, N the
 * counted targets of the whole step, so the accumulated gradient is that of the step's mean loss
 * however the tokens fall into micro-batches (and the MoE auxiliary loss, when the model computes
 * one, is averaged over the micro-batches).
 *
 * Exact resume. A checkpoint holds the weights, the optimizer moments and f32 masters, the step
 * (hence the schedule), the data position and the default generator's state; MoE pending loads
 * are empty at a step boundary. On the CPU backend a resumed run therefore computes the same bits
 * as one that never stopped (tested).
 *
 * Host reads. One read per step of the loss and the gradient norm (for logging and, in f16, the
 * overflow check), and of the MoE loads on logging steps; everything else stays on the device.
 */
import {
  Module,
  add,
  findBackend,
  getDefaultGenerator,
  mul,
  noGrad,
  stopGradient,
  keep,
  tensor,
  tidy,
  valueAndGrad,
  type Backend,
  type DType,
  type Parameter,
  type Tensor,
} from '@ring-linear/core';
import { RingLinearForCausalLM } from '@ring-linear/models';
import { MoE, readLoadStatistics } from '@ring-linear/moe';
import { DataError, TrainerConfigError, TrainingCheckpointError } from './errors.js';
import { AdamW, NO_DECAY, type AdamWOptions } from './optim/adamw.js';
import { clipGradNorm, globalNorm } from './optim/clip.js';
import { GradientAccumulator } from './optim/accumulate.js';
import { constantSchedule, type Schedule } from './optim/schedule.js';
import {
  DynamicLossScaler,
  PRECISIONS,
  enableFp8Training,
  needsLossScaling,
  toMixedPrecision,
  type Fp8TrainingOptions,
  type LossScalerOptions,
  type Precision,
} from './precision.js';
import { PackedDataset, type Batch } from './data/pack.js';
import {
  TRAINER_STATE_FILE,
  latestTrainingCheckpoint,
  loadTrainingCheckpoint,
  readTrainerState,
  saveTrainingCheckpoint,
  type CheckpointStage,
  type SavedCheckpoint,
  type TrainerState,
} from './checkpoint.js';
import { nodeModules } from './node.js';
import { MetricsWriter, type MetricsRecord } from './observe/metrics.js';
import { ProgressReporter, type ProgressOptions } from './observe/progress.js';

/** A batch as tensors, for loss functions. */
export interface BatchTensors {
  /** i32 [1, length]: the rows of the micro-batch laid end to end. */
  readonly inputIds: Tensor;
  /** i32 [1, length], IGNORE_INDEX where nothing is predicted. */
  readonly targets: Tensor;
  /** Document offsets over the packed row (pass to the model as cuSeqlens). */
  readonly cuSeqlens: Int32Array;
  readonly batch: Batch;
}

export interface LossOutput {
  /** SUM of the per-token cross-entropy over the counted targets (f32 scalar). */
  readonly loss: Tensor;
  /** An auxiliary loss to add as is (e.g. the MoE balance loss), or null. */
  readonly auxLoss?: Tensor | null;
}

/** Computes a micro-batch's loss; the default serves RingLinearForCausalLM. */
export type LossFn = (model: Module, batch: BatchTensors, options: { readonly withAuxLoss: boolean }) => LossOutput;

/** The causal LM's loss: summed cross-entropy over packed rows (logits never materialized for output). */
export const causalLMLoss: LossFn = (model, b, { withAuxLoss }) => {
  if (!(model instanceof RingLinearForCausalLM)) {
    throw new TrainerConfigError(`Trainer: the default loss needs a RingLinearForCausalLM; give options.lossFn for a ${model.constructor.name}`);
  }
  const out = model.forward(b.inputIds, { targets: b.targets, cuSeqlens: b.cuSeqlens, reduction: 'sum', logits: 'none', withAuxLoss });
  return { loss: out.loss!, auxLoss: out.auxLoss };
};

export interface CheckpointOptions {
  /** Root folder of the step folders. */
  readonly dir: string;
  /** Save every this many steps (and at the last step). */
  readonly every?: number;
  /** Also save at exactly these steps (e.g. a WSM schedule's mergeSteps()). */
  readonly steps?: readonly number[];
  /** Newest step folders kept (default 3; 0 keeps all). */
  readonly keepLast?: number;
  /** Dtype of the saved model weights (default: the parameters'). */
  readonly modelDtype?: DType;
  /** Save at the last step even when it is not a multiple of `every` (default true). */
  readonly atEnd?: boolean;
  /** Test hook: called before each stage of every save (throw to simulate a crash). */
  readonly onStage?: (stage: CheckpointStage, tempPath: string) => void | Promise<void>;
}

export interface TrainerOptions {
  readonly model: Module;
  readonly train: PackedDataset;
  /** Held-out rows for evaluation (loss averaged over all of them). */
  readonly eval?: PackedDataset | null;
  /** Optimizer steps of the run. */
  readonly totalSteps: number;
  /** Rows per micro-batch (default 1). */
  readonly rowsPerMicroBatch?: number;
  /** Micro-batches accumulated per optimizer step (default 1). */
  readonly gradAccumulation?: number;
  /** Learning-rate schedule (default: constant at optimizer.lr). */
  readonly schedule?: Schedule;
  /** AdamW settings; groups default to [NO_DECAY]. */
  readonly optimizer?: AdamWOptions;
  /** Global-norm clip (default 1.0; null: no clipping). */
  readonly maxGradNorm?: number | null;
  /** 'f32' (default), 'bf16', 'f16' (with dynamic loss scaling) or 'fp8' (FP8 linear layers). */
  readonly precision?: Precision;
  readonly fp8?: Fp8TrainingOptions;
  readonly lossScaler?: LossScalerOptions;
  /** MoE: rate of the auxiliary-loss-free bias update (default: the layers' own), whether to add the aux loss (default true when the model computes one), how often load statistics are logged (default every metrics record). */
  readonly moe?: { readonly biasUpdateRate?: number; readonly auxLoss?: boolean; readonly logLoadsEvery?: number };
  readonly checkpoint?: CheckpointOptions | null;
  /** Metrics JSONL file, written every `every` steps (default 1). */
  readonly metrics?: { readonly path: string; readonly every?: number } | null;
  /** Progress display (default true: a bar on a TTY, lines otherwise); false for none. */
  readonly progress?: boolean | ProgressOptions;
  /** Evaluate every this many steps (and at the end) when `eval` is given (default: at the end only). */
  readonly evalEvery?: number;
  /** Rows per evaluation batch (default rowsPerMicroBatch). */
  readonly evalRows?: number;
  readonly lossFn?: LossFn;
  /** Called with every step's metrics. */
  readonly onStep?: (m: StepMetrics) => void | Promise<void>;
}

/** Statistics of one MoE layer's load in a step. */
export interface MoELoadLog {
  readonly layer: string;
  readonly maxOverMean: number;
  readonly minOverMean: number;
  readonly idleExperts: number;
}

export interface StepMetrics extends MetricsRecord {
  readonly step: number;
  /** Mean cross-entropy of the step's counted targets. */
  readonly loss: number;
  readonly auxLoss?: number;
  readonly lr: number;
  /** Global gradient norm before clipping (of the unscaled gradients). */
  readonly gradNorm: number;
  readonly tokens: number;
  readonly tokensSeen: number;
  readonly tokensPerSecond: number;
  readonly stepMs: number;
  readonly lossScale?: number;
  /** True when the step was skipped (f16 overflow). */
  readonly skipped?: boolean;
  readonly evalLoss?: number;
  readonly moe?: readonly MoELoadLog[];
}

function positiveInt(what: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new TrainerConfigError(`Trainer: '${what}' must be an integer >= 1, got ${v}`);
  return v;
}

export class Trainer {
  readonly model: Module;
  readonly optimizer: AdamW;
  readonly schedule: Schedule;
  readonly train: PackedDataset;
  readonly evalData: PackedDataset | null;
  readonly precision: Precision;
  readonly totalSteps: number;
  readonly rowsPerMicroBatch: number;
  readonly gradAccumulation: number;
  readonly maxGradNorm: number | null;
  readonly lossScaler: DynamicLossScaler | null;
  readonly fp8Layers: readonly string[];
  readonly #options: TrainerOptions;
  readonly #lossFn: LossFn;
  readonly #moes: readonly { name: string; moe: MoE }[];
  readonly #metrics: MetricsWriter | null;
  /** Where the model's parameters live (the batches are made there). */
  readonly #backend: Backend;
  #step = 0;
  #tokensSeen = 0;
  #lastEvalLoss: number | undefined;

  constructor(options: TrainerOptions) {
    this.#options = options;
    const { model, train } = options;
    if (!(model instanceof Module)) throw new TrainerConfigError('Trainer: options.model must be a Module');
    if (!(train instanceof PackedDataset)) throw new TrainerConfigError('Trainer: options.train must be a PackedDataset (packDocuments + new PackedDataset)');
    this.model = model;
    this.train = train;
    this.evalData = options.eval ?? null;
    this.totalSteps = positiveInt('totalSteps', options.totalSteps);
    this.rowsPerMicroBatch = positiveInt('rowsPerMicroBatch', options.rowsPerMicroBatch ?? 1);
    this.gradAccumulation = positiveInt('gradAccumulation', options.gradAccumulation ?? 1);
    const clip = options.maxGradNorm === undefined ? 1 : options.maxGradNorm;
    if (clip !== null && !(clip > 0 && Number.isFinite(clip))) throw new TrainerConfigError(`Trainer: 'maxGradNorm' must be a finite number > 0 or null, got ${clip}`);
    this.maxGradNorm = clip;
    this.precision = options.precision ?? 'f32';
    if (!PRECISIONS.includes(this.precision)) throw new TrainerConfigError(`Trainer: 'precision' must be one of ${PRECISIONS.join(', ')}, got ${String(this.precision)}`);
    this.#lossFn = options.lossFn ?? causalLMLoss;
    if (!options.lossFn && !(model instanceof RingLinearForCausalLM)) {
      throw new TrainerConfigError(`Trainer: a ${model.constructor.name} needs options.lossFn (the default loss is the causal LM's)`);
    }
    this.checkDataFitsModel();
    if (options.checkpoint) {
      const c = options.checkpoint;
      if (c.every === undefined && !c.steps?.length) throw new TrainerConfigError("Trainer: 'checkpoint' needs 'every' or 'steps' (when to save)");
      if (c.every !== undefined) positiveInt('checkpoint.every', c.every);
      for (const s of c.steps ?? []) positiveInt('checkpoint.steps[]', s);
      if (typeof options.checkpoint.dir !== 'string' || !options.checkpoint.dir) throw new TrainerConfigError("Trainer: 'checkpoint.dir' must be a folder path");
    }
    if (options.evalEvery !== undefined) positiveInt('evalEvery', options.evalEvery);
    if (options.evalRows !== undefined) positiveInt('evalRows', options.evalRows);
    const first = model.parameters()[0];
    if (!first) throw new TrainerConfigError('Trainer: the model has no parameters');
    this.#backend = findBackend(first.backend);

    // Precision first: the optimizer must see the final parameter dtypes and take the f32 masters.
    let masters: Map<Parameter, Tensor> | undefined;
    let fp8Layers: string[] = [];
    if (this.precision === 'bf16' || this.precision === 'f16') masters = toMixedPrecision(model, this.precision);
    else if (this.precision === 'fp8') fp8Layers = enableFp8Training(model, options.fp8);
    this.fp8Layers = fp8Layers;
    this.lossScaler = needsLossScaling(this.precision) ? new DynamicLossScaler(options.lossScaler) : null;
    const opt = options.optimizer ?? {};
    this.optimizer = new AdamW(model.namedParameters(), { ...opt, groups: opt.groups ?? [NO_DECAY], ...(masters ? { masters } : {}) });
    this.schedule = options.schedule ?? constantSchedule({ peakLr: this.optimizer.defaults.lr });
    this.#moes = model.namedModules().filter((e): e is [string, MoE] => e[1] instanceof MoE).map(([name, moe]) => ({ name, moe }));
    this.#metrics = options.metrics ? new MetricsWriter(options.metrics.path) : null;
  }

  private checkDataFitsModel(): void {
    const model = this.model;
    if (!(model instanceof RingLinearForCausalLM)) return;
    const c = model.config;
    for (const [what, d] of [['train', this.train], ['eval', this.evalData]] as const) {
      if (!d) continue;
      if (d.seqLen > c.max_position_embeddings) {
        throw new TrainerConfigError(`Trainer: the ${what} data's sequence length ${d.seqLen} exceeds the model's limit (max_position_embeddings ${c.max_position_embeddings})`);
      }
      let maxId = -1;
      for (const v of d.rows.inputs) if (v > maxId) maxId = v;
      if (maxId >= c.vocab_size) throw new DataError(`Trainer: the ${what} data holds token id ${maxId}, outside the model's vocabulary (vocab_size ${c.vocab_size})`);
    }
  }

  /** Optimizer steps completed. */
  get step(): number {
    return this.#step;
  }

  get tokensSeen(): number {
    return this.#tokensSeen;
  }

  private batchTensors(b: Batch): BatchTensors {
    return {
      inputIds: tensor(b.inputIds, [1, b.length], 'i32', this.#backend),
      targets: tensor(b.targets, [1, b.length], 'i32', this.#backend),
      cuSeqlens: b.cuSeqlens,
      batch: b,
    };
  }

  /** One optimizer step over `gradAccumulation` micro-batches. */
  async trainStep(): Promise<StepMetrics> {
    const t0 = Date.now();
    const step = this.#step;
    const lr = this.schedule.lr(step);
    const batches = Array.from({ length: this.gradAccumulation }, () => this.train.nextBatch(this.rowsPerMicroBatch));
    const counted = batches.reduce((a, b) => a + b.countedTokens, 0);
    const denom = Math.max(1, counted);
    const scale = this.lossScaler?.scale ?? 1;
    const withAux = this.#options.moe?.auxLoss ?? true;
    const params = this.optimizer.parameters;
    const accumulator = new GradientAccumulator();
    const ceParts: Tensor[] = [];
    const auxParts: Tensor[] = [];
    try {
      for (const b of batches) {
        const bt = this.batchTensors(b);
        try {
          const { value, grads } = valueAndGrad(() => {
            const out = this.#lossFn(this.model, bt, { withAuxLoss: withAux });
            ceParts.push(keep(stopGradient(out.loss)));
            let total = mul(out.loss, scale / denom);
            if (withAux && out.auxLoss) {
              auxParts.push(keep(stopGradient(out.auxLoss)));
              total = add(total, mul(out.auxLoss, scale / this.gradAccumulation));
            }
            return total;
          }, params);
          value.dispose();
          accumulator.add(grads, { consume: true });
        } finally {
          bt.inputIds.dispose();
          bt.targets.dispose();
        }
      }
      let grads = accumulator.take();
      if (scale !== 1) {
        const unscaled = noGrad(() => tidy(() => grads.map((g) => mul(g, 1 / scale))));
        for (const g of grads) g.dispose();
        grads = unscaled;
      }
      let normT: Tensor;
      if (this.maxGradNorm !== null) {
        const r = clipGradNorm(grads, this.maxGradNorm);
        for (const g of grads) g.dispose();
        grads = r.grads;
        normT = r.norm;
      } else {
        normT = globalNorm(grads);
      }
      let gradNorm: number;
      try {
        gradNorm = (await normT.data())[0]!;
      } finally {
        normT.dispose();
      }
      const finite = Number.isFinite(gradNorm);
      let skipped = false;
      try {
        if (finite || !this.lossScaler) this.optimizer.step(grads, { lr });
        else skipped = true;
      } finally {
        for (const g of grads) g.dispose();
      }
      this.lossScaler?.update(finite);

      // MoE: the step's loads (all micro-batches), then the auxiliary-loss-free bias update.
      const logEvery = this.#options.moe?.logLoadsEvery ?? this.#options.metrics?.every ?? 1;
      const logLoads = this.#moes.length > 0 && (step + 1) % logEvery === 0;
      const loads = logLoads ? this.#moes.map(({ name, moe }) => ({ name, load: moe.pendingLoad ? stopGradient(moe.pendingLoad) : null })) : [];
      // A skipped step (f16 overflow) leaves every weight alone, the expert bias too: its loads
      // are dropped (a zero-rate update clears them).
      const rate = skipped ? 0 : this.#options.moe?.biasUpdateRate;
      for (const { moe } of this.#moes) if (moe.pendingLoad) moe.updateExpertBias(rate !== undefined ? { rate } : {});
      let moeLog: MoELoadLog[] | undefined;
      if (logLoads) {
        moeLog = [];
        for (const { name, load } of loads) {
          if (!load) continue;
          const s = await readLoadStatistics(load);
          load.dispose();
          moeLog.push({ layer: name, maxOverMean: s.maxOverMean, minOverMean: s.minOverMean, idleExperts: s.idleExperts });
        }
      }

      let ceSum = 0;
      for (const t of ceParts) ceSum += (await t.data())[0]!;
      let aux: number | undefined;
      if (auxParts.length) {
        aux = 0;
        for (const t of auxParts) aux += (await t.data())[0]! / this.gradAccumulation;
      }
      this.#step = step + 1;
      this.#tokensSeen += counted;
      const stepMs = Date.now() - t0;
      const tokens = batches.reduce((a, b) => a + b.length, 0);
      const metrics: StepMetrics = {
        step: this.#step,
        loss: ceSum / denom,
        ...(aux !== undefined ? { auxLoss: aux } : {}),
        lr,
        gradNorm,
        tokens: counted,
        tokensSeen: this.#tokensSeen,
        tokensPerSecond: (tokens * 1000) / Math.max(1, stepMs),
        stepMs,
        ...(this.lossScaler ? { lossScale: scale } : {}),
        ...(skipped ? { skipped } : {}),
        ...(moeLog ? { moe: moeLog } : {}),
      };
      return metrics;
    } finally {
      accumulator.reset();
      for (const t of [...ceParts, ...auxParts]) t.dispose();
    }
  }

  /** Mean cross-entropy over every evaluation row (no gradients, eval mode). */
  async evaluate(data: PackedDataset | null = this.evalData): Promise<{ loss: number; tokens: number }> {
    if (!data) throw new TrainerConfigError('Trainer.evaluate: no evaluation data (options.eval)');
    const rows = this.#options.evalRows ?? this.rowsPerMicroBatch;
    const wasTraining = this.model.training;
    this.model.eval();
    let sum = 0;
    let tokens = 0;
    try {
      for (const b of data.inOrder(rows)) {
        const bt = this.batchTensors(b);
        try {
          const l = noGrad(() => tidy(() => this.#lossFn(this.model, bt, { withAuxLoss: false }).loss));
          sum += (await l.data())[0]!;
          l.dispose();
          tokens += b.countedTokens;
        } finally {
          bt.inputIds.dispose();
          bt.targets.dispose();
        }
      }
    } finally {
      this.model.train(wasTraining);
    }
    return { loss: sum / Math.max(1, tokens), tokens };
  }

  /** The trainer state a checkpoint stores (see checkpoint.ts). */
  stateForCheckpoint(user?: Record<string, unknown>): Omit<TrainerState, 'format' | 'version' | 'optimizer' | 'modelConfig' | 'savedAt'> {
    const d = this.train;
    return {
      step: this.#step,
      tokensSeen: this.#tokensSeen,
      schedule: this.schedule.spec,
      data: { position: d.position, seed: d.seed, seqLen: d.seqLen, numRows: d.numRows, fingerprint: d.rows.fingerprint },
      rng: { default: getDefaultGenerator().state() },
      lossScaler: this.lossScaler?.state() ?? null,
      precision: this.precision,
      ...(user ? { user } : {}),
    };
  }

  /** Saves a checkpoint of the current step under options.checkpoint.dir. */
  async saveCheckpoint(user?: Record<string, unknown>): Promise<SavedCheckpoint> {
    const c = this.#options.checkpoint;
    if (!c) throw new TrainerConfigError('Trainer.saveCheckpoint: no checkpoint folder (options.checkpoint.dir)');
    return saveTrainingCheckpoint(c.dir, {
      model: this.model,
      optimizer: this.optimizer,
      state: this.stateForCheckpoint(user),
      ...(c.keepLast !== undefined ? { keepLast: c.keepLast } : {}),
      ...(c.modelDtype ? { modelDtype: c.modelDtype } : {}),
      ...(c.onStage ? { onStage: c.onStage } : {}),
    });
  }

  /**
   * Continues from a checkpoint: a step folder, or a root whose newest step folder is taken
   * (default: options.checkpoint.dir). Returns the state, or null when the root has no checkpoint
   * yet. Precision, schedule and data must be those of the checkpoint (TrainingCheckpointError
   * otherwise, listing what differs); the model config is checked by loadTrainingCheckpoint.
   */
  async resume(from?: string): Promise<TrainerState | null> {
    const target = from ?? this.#options.checkpoint?.dir;
    if (!target) throw new TrainerConfigError('Trainer.resume: give a checkpoint folder or options.checkpoint.dir');
    const path = (await isStepFolder(target)) ? target : await latestTrainingCheckpoint(target);
    if (!path) return null;
    const saved = await readTrainerState(path);
    const problems: string[] = [];
    if (saved.precision !== this.precision) problems.push(`precision: checkpoint ${saved.precision}, trainer ${this.precision}`);
    if (JSON.stringify(saved.schedule) !== JSON.stringify(this.schedule.spec)) {
      problems.push(`schedule: checkpoint ${JSON.stringify(saved.schedule)}, trainer ${JSON.stringify(this.schedule.spec)}`);
    }
    const d = this.train;
    if (saved.data) {
      if (saved.data.fingerprint !== d.rows.fingerprint || saved.data.seqLen !== d.seqLen || saved.data.numRows !== d.numRows) {
        problems.push(
          `data: checkpoint ${saved.data.numRows} rows of ${saved.data.seqLen} (fingerprint ${saved.data.fingerprint}), trainer ${d.numRows} rows of ${d.seqLen} (fingerprint ${d.rows.fingerprint})`,
        );
      }
      if (saved.data.seed !== d.seed) problems.push(`data seed: checkpoint ${saved.data.seed}, trainer ${d.seed}`);
    }
    if (saved.step > this.totalSteps) problems.push(`step: the checkpoint is at step ${saved.step}, beyond totalSteps ${this.totalSteps}`);
    if (problems.length) throw new TrainingCheckpointError(path, 'the checkpoint does not continue this run', problems);
    const state = await loadTrainingCheckpoint(path, { model: this.model, optimizer: this.optimizer });
    if (state.data) d.setPosition(state.data.position);
    getDefaultGenerator().setState(state.rng.default);
    if (this.lossScaler && state.lossScaler) this.lossScaler.setState(state.lossScaler);
    this.#step = state.step;
    this.#tokensSeen = state.tokensSeen;
    await this.#metrics?.truncateAfter(state.step);
    return state;
  }

  /**
   * Trains until totalSteps (or `steps` more steps), with evaluation, metrics, progress and
   * checkpoints as configured. Returns the metrics of the steps run.
   */
  async fit(options: { readonly steps?: number } = {}): Promise<StepMetrics[]> {
    const until = options.steps !== undefined ? Math.min(this.totalSteps, this.#step + positiveInt('steps', options.steps)) : this.totalSteps;
    const o = this.#options;
    const metricsEvery = o.metrics?.every ?? 1;
    const progress = o.progress === false ? null : new ProgressReporter(this.totalSteps, typeof o.progress === 'object' ? o.progress : {});
    const out: StepMetrics[] = [];
    try {
      while (this.#step < until) {
        let m = await this.trainStep();
        const last = this.#step === this.totalSteps;
        if (this.evalData && ((o.evalEvery && this.#step % o.evalEvery === 0) || last)) {
          const ev = await this.evaluate();
          this.#lastEvalLoss = ev.loss;
          m = { ...m, evalLoss: ev.loss };
          progress?.note(`eval step ${this.#step}: loss ${ev.loss.toFixed(4)} over ${ev.tokens} tokens`);
        }
        out.push(m);
        if (this.#metrics && (this.#step % metricsEvery === 0 || last || m.evalLoss !== undefined)) await this.#metrics.write(m);
        progress?.update({
          step: m.step,
          loss: m.loss,
          tokensPerSecond: m.tokensPerSecond,
          lr: m.lr,
          extra: this.#lastEvalLoss !== undefined ? { eval: this.#lastEvalLoss } : {},
        });
        await o.onStep?.(m);
        const c = o.checkpoint;
        if (c && ((c.every && this.#step % c.every === 0) || c.steps?.includes(this.#step) || (last && (c.atEnd ?? true)))) {
          const saved = await this.saveCheckpoint();
          progress?.note(`checkpoint step ${this.#step}: ${saved.path}`);
        }
      }
    } finally {
      progress?.finish();
    }
    return out;
  }

  /** Frees the optimizer state (the model belongs to the caller). */
  dispose(): void {
    this.optimizer.dispose();
  }
}

async function isStepFolder(dir: string): Promise<boolean> {
  const { fs, path } = await nodeModules();
  try {
    return (await fs.stat(path.join(dir, TRAINER_STATE_FILE))).isFile();
  } catch {
    return false;
  }
}
