/**
 * One training run as `demo` and `train` do it: documents -> held-out split -> packed rows ->
 * Trainer (schedule, AdamW, precision) with a progress bar, metrics JSONL and atomic step
 * checkpoints in the run folder -> an SVG loss plot. The run folder:
 *
 *   <out>/step-00000200/   model.safetensors + config.json (a Hugging Face model folder),
 *                          optimizer.safetensors, trainer_state.json
 *   <out>/metrics.jsonl    one line per step
 *   <out>/loss.svg         the loss curve (train, and eval when there is held-out data)
 */
import path from 'node:path';
import type { Module } from '@ring-linear/core';
import type { RingLinearForCausalLM } from '@ring-linear/models';
import {
  PackedDataset,
  Trainer,
  constantSchedule,
  cosineSchedule,
  latestTrainingCheckpoint,
  packDocuments,
  splitDocuments,
  writeLossPlot,
  wsdSchedule,
  wsmSchedule,
  type Precision,
  type Schedule,
  type StepMetrics,
  type TokenizedDocument,
  type TrainerState,
} from '@ring-linear/trainer';
import type { OutStream } from './io.js';

export const SCHEDULES = ['cosine', 'constant', 'wsd', 'wsm'] as const;
export type ScheduleName = (typeof SCHEDULES)[number];

export interface RunOptions {
  readonly model: RingLinearForCausalLM;
  readonly documents: readonly TokenizedDocument[];
  readonly out: string;
  readonly steps: number;
  readonly seqLen: number;
  readonly rows: number;
  readonly gradAccumulation?: number;
  readonly peakLr: number;
  readonly minLr?: number;
  readonly warmupSteps: number;
  readonly schedule?: ScheduleName;
  readonly weightDecay?: number;
  readonly maxGradNorm?: number | null;
  readonly precision?: Precision;
  /** Seed of the data order and held-out split. */
  readonly seed: number;
  /** Documents held out for the evaluation loss (0: none). */
  readonly evalDocuments: number;
  readonly evalEvery?: number;
  readonly saveEvery: number;
  readonly keepLast?: number;
  readonly resume?: boolean;
  /** Progress stream (null: none). */
  readonly progress: OutStream | null;
  readonly padId: number;
}

export interface RunResult {
  readonly metrics: readonly StepMetrics[];
  readonly checkpoint: string | null;
  readonly metricsFile: string;
  readonly plotFile: string;
  readonly resumedFrom: TrainerState | null;
  readonly trainRows: number;
  readonly trainTokens: number;
  readonly evalLoss: number | null;
  readonly seconds: number;
  readonly trainer: Trainer;
}

export function makeSchedule(name: ScheduleName, o: { peakLr: number; minLr: number; warmupSteps: number; totalSteps: number }): Schedule {
  switch (name) {
    case 'constant':
      return constantSchedule({ peakLr: o.peakLr, warmupSteps: o.warmupSteps });
    case 'wsd':
      return wsdSchedule({ peakLr: o.peakLr, warmupSteps: o.warmupSteps, totalSteps: o.totalSteps, minLr: o.minLr });
    case 'wsm':
      return wsmSchedule({ peakLr: o.peakLr, warmupSteps: o.warmupSteps, totalSteps: o.totalSteps });
    default:
      return cosineSchedule({ peakLr: o.peakLr, warmupSteps: o.warmupSteps, totalSteps: o.totalSteps, minLr: o.minLr });
  }
}

/** Packs the data and trains (see the file comment). */
export async function runTraining(o: RunOptions): Promise<RunResult> {
  const t0 = Date.now();
  const { train, eval: held } = o.evalDocuments > 0 ? splitDocuments(o.documents, { evalDocuments: o.evalDocuments, seed: o.seed }) : { train: [...o.documents], eval: [] };
  const trainRows = packDocuments(train, { seqLen: o.seqLen, padId: o.padId });
  const evalRows = held.length ? packDocuments(held, { seqLen: o.seqLen, padId: o.padId }) : null;
  const metricsFile = path.join(o.out, 'metrics.jsonl');
  const plotFile = path.join(o.out, 'loss.svg');
  const trainer = new Trainer({
    model: o.model as Module,
    train: new PackedDataset(trainRows, { seed: o.seed }),
    eval: evalRows ? new PackedDataset(evalRows, { shuffle: false }) : null,
    totalSteps: o.steps,
    rowsPerMicroBatch: o.rows,
    gradAccumulation: o.gradAccumulation ?? 1,
    schedule: makeSchedule(o.schedule ?? 'cosine', { peakLr: o.peakLr, minLr: o.minLr ?? o.peakLr / 10, warmupSteps: o.warmupSteps, totalSteps: o.steps }),
    optimizer: { lr: o.peakLr, weightDecay: o.weightDecay ?? 0.01 },
    maxGradNorm: o.maxGradNorm === undefined ? 1 : o.maxGradNorm,
    precision: o.precision ?? 'f32',
    checkpoint: { dir: o.out, every: o.saveEvery, keepLast: o.keepLast ?? 3 },
    metrics: { path: metricsFile },
    progress: o.progress ? { stream: o.progress, label: 'train' } : false,
    ...(o.evalEvery ? { evalEvery: o.evalEvery } : {}),
  });
  const resumedFrom = o.resume ? await trainer.resume() : null;
  const metrics = trainer.step < trainer.totalSteps ? await trainer.fit() : [];
  await writeLossPlot(metricsFile, plotFile, { title: 'ring-linear: training loss' });
  const checkpoint = await latestTrainingCheckpoint(o.out);
  const evalLoss = [...metrics].reverse().find((m) => m.evalLoss !== undefined)?.evalLoss ?? null;
  return {
    metrics,
    checkpoint,
    metricsFile,
    plotFile,
    resumedFrom,
    trainRows: trainRows.numRows,
    trainTokens: trainRows.countedTokens,
    evalLoss,
    seconds: (Date.now() - t0) / 1000,
    trainer,
  };
}

/** Mean loss of the first and the last `n` steps (a single step is noisy). */
export function lossDrop(metrics: readonly StepMetrics[], n = 5): { first: number; last: number } | null {
  if (metrics.length === 0) return null;
  const k = Math.max(1, Math.min(n, Math.floor(metrics.length / 2)));
  const mean = (xs: readonly StepMetrics[]) => xs.reduce((a, m) => a + m.loss, 0) / xs.length;
  return { first: mean(metrics.slice(0, k)), last: mean(metrics.slice(-k)) };
}

/**
 * The loss curve as one line of block characters (the mean of each of `width` buckets of steps,
 * scaled between the lowest and highest bucket), e.g. "█▇▆▅▄▃▃▂▂▁▁▁".
 */
export function sparkline(values: readonly number[], width = 48): string {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return '';
  const n = Math.min(width, finite.length);
  const buckets = Array.from({ length: n }, (_, b) => {
    const lo = Math.floor((b * finite.length) / n);
    const hi = Math.max(lo + 1, Math.floor(((b + 1) * finite.length) / n));
    const part = finite.slice(lo, hi);
    return part.reduce((a, v) => a + v, 0) / part.length;
  });
  const min = Math.min(...buckets);
  const max = Math.max(...buckets);
  const bars = '▁▂▃▄▅▆▇█';
  return buckets.map((v) => bars[max > min ? Math.round(((v - min) / (max - min)) * (bars.length - 1)) : 0]).join('');
}
