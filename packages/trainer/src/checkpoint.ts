/**
 * Training checkpoints: everything a run needs to continue exactly, in one step folder.
 *
 *   <root>/step-00000100/
 *     model.safetensors, config.json   the model in the Hugging Face layout (@ring-linear/models
 *                                      writer; loadable on its own by loadPretrained)
 *     optimizer.safetensors            AdamW moments (exp_avg.<name>, exp_avg_sq.<name>) and f32
 *                                      master weights (master.<name>) of low-precision parameters
 *     trainer_state.json               step, schedule spec, data position, RNG states, loss scale,
 *                                      optimizer settings, precision, model config, user fields
 *
 * Atomic: the folder is written as `<root>/.tmp-step-...` (every file fsynced), the temporary
 * folder fsynced, then renamed to its final name and the root fsynced. A crash at any point leaves
 * either no new folder or a complete one; earlier checkpoints are untouched (older ones beyond
 * keepLast are removed only after the new one is in place). Leftover temporary folders of a
 * crashed save are ignored by readers and removed by the next save. One writer per root.
 */
import { getDefaultGenerator, type DType, type GeneratorState, type Module, type Tensor } from '@ring-linear/core';
import {
  RingLinearForCausalLM,
  configToJson,
  loadCheckpoint,
  loadSafetensors,
  nodeFileSource,
  saveCheckpoint,
  saveSafetensors,
} from '@ring-linear/models';
import { TrainingCheckpointError } from './errors.js';
import { nodeModules, syncDirectory, writeFileSynced } from './node.js';
import type { AdamW, AdamWHyperparameters } from './optim/adamw.js';
import type { ScheduleSpec } from './optim/schedule.js';
import type { DataPosition } from './data/pack.js';
import type { LossScalerState, Precision } from './precision.js';

export const TRAINER_STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_FORMAT = 'ring-linear-trainer-state';
export const TRAINER_STATE_VERSION = 1;

/** Where the data stream was, and which data it was (to notice a resume on other data). */
export interface DataState {
  readonly position: DataPosition;
  readonly seed: number;
  readonly seqLen: number;
  readonly numRows: number;
  readonly fingerprint: string;
}

export interface TrainerState {
  readonly format: typeof TRAINER_STATE_FORMAT;
  readonly version: number;
  /** Optimizer steps completed. */
  readonly step: number;
  /** Targets trained on so far. */
  readonly tokensSeen: number;
  readonly schedule: ScheduleSpec | null;
  readonly data: DataState | null;
  /** The default generator's state, and any named generators of the run. */
  readonly rng: { readonly default: GeneratorState; readonly named?: Readonly<Record<string, GeneratorState>> };
  readonly lossScaler: LossScalerState | null;
  readonly optimizer: AdamWHyperparameters;
  readonly precision: Precision;
  /** config.json fields of the model (null for models without a config). */
  readonly modelConfig: Readonly<Record<string, unknown>> | null;
  readonly savedAt: string;
  /** Anything else the caller wants back on resume (JSON). */
  readonly user?: Readonly<Record<string, unknown>>;
}

/** The parts of TrainerState the caller provides (the rest is filled in on save). */
export type TrainerStateInput = Omit<TrainerState, 'format' | 'version' | 'optimizer' | 'modelConfig' | 'savedAt' | 'rng'> & {
  readonly rng?: TrainerState['rng'];
};

/** Stages of a save, reported to onStage (used by tests to inject a crash at each point). */
export type CheckpointStage = 'model' | 'optimizer' | 'state' | 'rename' | 'prune';

export interface SaveTrainingCheckpointOptions {
  readonly model: Module;
  readonly optimizer: AdamW;
  readonly state: TrainerStateInput;
  /** Keep this many newest step folders (default 3; 0 keeps all). */
  readonly keepLast?: number;
  /** Dtype of the model weights written (default: the parameters' own). */
  readonly modelDtype?: DType;
  /** Called before each stage of the write; throwing aborts the save (the previous checkpoints stay). */
  readonly onStage?: (stage: CheckpointStage, tempPath: string) => void | Promise<void>;
}

export interface SavedCheckpoint {
  readonly path: string;
  readonly step: number;
  /** Older step folders removed by keepLast. */
  readonly removed: readonly string[];
}

/** The folder name of a step: step-00000100. */
export function stepFolderName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

const STEP_DIR = /^step-(\d{8,})$/;
const TEMP_DIR = /^\.tmp-step-/;

function modelConfigOf(model: Module): Record<string, unknown> | null {
  return model instanceof RingLinearForCausalLM ? configToJson(model.config) : null;
}

/** Writes a checkpoint for `state.step` under `root` (see the file comment). Node.js. */
export async function saveTrainingCheckpoint(root: string, options: SaveTrainingCheckpointOptions): Promise<SavedCheckpoint> {
  const { fs, path } = await nodeModules();
  const { model, optimizer, state } = options;
  const step = state.step;
  if (!Number.isInteger(step) || step < 0) throw new TrainingCheckpointError(root, `the step must be an integer >= 0, got ${step}`);
  const keepLast = options.keepLast ?? 3;
  if (!Number.isInteger(keepLast) || keepLast < 0) throw new TrainingCheckpointError(root, `keepLast must be an integer >= 0, got ${keepLast}`);
  await fs.mkdir(root, { recursive: true });
  // Leftovers of a crashed save (one writer per root, so none is in progress).
  for (const e of await fs.readdir(root)) if (TEMP_DIR.test(e)) await fs.rm(path.join(root, e), { recursive: true, force: true });

  const name = stepFolderName(step);
  const tmp = path.join(root, `.tmp-${name}-${Math.random().toString(36).slice(2, 10)}`);
  const final = path.join(root, name);
  const full: TrainerState = {
    format: TRAINER_STATE_FORMAT,
    version: TRAINER_STATE_VERSION,
    ...state,
    rng: state.rng ?? { default: getDefaultGenerator().state() },
    optimizer: optimizer.hyperparameters(),
    modelConfig: modelConfigOf(model),
    savedAt: new Date().toISOString(),
  };
  await fs.mkdir(tmp);
  try {
    await options.onStage?.('model', tmp);
    await saveCheckpoint(model, tmp, options.modelDtype ? { dtype: options.modelDtype } : {});
    await options.onStage?.('optimizer', tmp);
    const sd = optimizer.stateDict();
    try {
      await saveSafetensors(path.join(tmp, OPTIMIZER_FILE), sd, { metadata: { format: 'pt', step: String(step) } });
    } finally {
      for (const t of sd.values()) t.dispose();
    }
    await options.onStage?.('state', tmp);
    await writeFileSynced(path.join(tmp, TRAINER_STATE_FILE), `${JSON.stringify(full, null, 2)}\n`);
    await syncDirectory(tmp);
    await options.onStage?.('rename', tmp);
    let displaced: string | null = null;
    if (await exists(final)) {
      // Re-saving a step: move the old folder aside first (rename cannot replace a folder).
      displaced = path.join(root, `.tmp-step-old-${name}-${Math.random().toString(36).slice(2, 10)}`);
      await fs.rename(final, displaced);
    }
    await fs.rename(tmp, final);
    await syncDirectory(root);
    if (displaced) await fs.rm(displaced, { recursive: true, force: true });
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
  const removed: string[] = [];
  if (keepLast > 0) {
    await options.onStage?.('prune', final);
    const all = await listTrainingCheckpoints(root);
    const others = all.filter((c) => c.path !== final);
    const excess = others.length + 1 - keepLast;
    for (const c of others.slice(0, Math.max(0, excess))) {
      await fs.rm(c.path, { recursive: true, force: true });
      removed.push(c.path);
    }
  }
  return { path: final, step, removed };
}

async function exists(p: string): Promise<boolean> {
  const { fs } = await nodeModules();
  try {
    await fs.stat(p);
    return true;
  } catch {
    return false;
  }
}

/** Complete step folders under `root`, oldest first (temporary folders are ignored). */
export async function listTrainingCheckpoints(root: string): Promise<{ step: number; path: string }[]> {
  const { fs, path } = await nodeModules();
  let entries: string[];
  try {
    entries = await fs.readdir(root);
  } catch {
    return [];
  }
  const out: { step: number; path: string }[] = [];
  for (const e of entries) {
    const m = STEP_DIR.exec(e);
    if (!m) continue;
    const p = path.join(root, e);
    if (await exists(path.join(p, TRAINER_STATE_FILE))) out.push({ step: Number(m[1]), path: p });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The newest complete checkpoint under `root`, or null. */
export async function latestTrainingCheckpoint(root: string): Promise<string | null> {
  const all = await listTrainingCheckpoints(root);
  return all.length ? all[all.length - 1]!.path : null;
}

/** Reads and validates a checkpoint's trainer_state.json. */
export async function readTrainerState(checkpoint: string): Promise<TrainerState> {
  const { fs, path } = await nodeModules();
  const file = path.join(checkpoint, TRAINER_STATE_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new TrainingCheckpointError(checkpoint, `not a training checkpoint (cannot read ${TRAINER_STATE_FILE}: ${(err as Error).message})`);
  }
  let s: TrainerState;
  try {
    s = JSON.parse(text) as TrainerState;
  } catch (err) {
    throw new TrainingCheckpointError(file, `not valid JSON: ${(err as Error).message}`);
  }
  const problems: string[] = [];
  if (!s || typeof s !== 'object') problems.push('expected a JSON object');
  else {
    if (s.format !== TRAINER_STATE_FORMAT) problems.push(`format must be '${TRAINER_STATE_FORMAT}', got ${JSON.stringify(s.format)}`);
    if (s.version !== TRAINER_STATE_VERSION) problems.push(`version must be ${TRAINER_STATE_VERSION}, got ${JSON.stringify(s.version)}`);
    if (!Number.isInteger(s.step) || s.step < 0) problems.push(`step must be an integer >= 0, got ${JSON.stringify(s.step)}`);
    if (!s.optimizer || !Array.isArray(s.optimizer.params)) problems.push('optimizer settings are missing');
    if (!s.rng || !s.rng.default) problems.push('rng.default is missing');
  }
  if (problems.length) throw new TrainingCheckpointError(file, 'malformed trainer state', problems);
  return s;
}

/** Differences between a saved config.json object and a model's, one line per field. */
export function configDifferences(saved: Readonly<Record<string, unknown>> | null, current: Readonly<Record<string, unknown>> | null): string[] {
  if (!saved || !current) return saved === current ? [] : [`model config: checkpoint ${saved ? 'has one' : 'has none'}, model ${current ? 'has one' : 'has none'}`];
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(current)])];
  const out: string[] = [];
  for (const k of keys) {
    const a = JSON.stringify(saved[k]);
    const b = JSON.stringify(current[k]);
    if (a !== b) out.push(`${k}: checkpoint ${a ?? '(absent)'}, model ${b ?? '(absent)'}`);
  }
  return out;
}

export interface LoadTrainingCheckpointOptions {
  readonly model: Module;
  readonly optimizer: AdamW;
}

/**
 * Loads a checkpoint folder into `model` and `optimizer` and returns its trainer state (the caller
 * restores data position, RNG, schedule and loss scale from it). Everything is checked before
 * anything changes: the model config (every differing field listed), the optimizer state against
 * the optimizer, and the weights against the model (loadCheckpoint is all-or-nothing).
 */
export async function loadTrainingCheckpoint(checkpoint: string, options: LoadTrainingCheckpointOptions): Promise<TrainerState> {
  const { path } = await nodeModules();
  const state = await readTrainerState(checkpoint);
  const diffs = configDifferences(state.modelConfig, modelConfigOf(options.model));
  if (diffs.length) throw new TrainingCheckpointError(checkpoint, 'the checkpoint was written for a different model config', diffs);
  const optFile = path.join(checkpoint, OPTIMIZER_FILE);
  let src;
  try {
    src = await nodeFileSource(optFile);
  } catch (err) {
    throw new TrainingCheckpointError(checkpoint, `cannot open ${OPTIMIZER_FILE}: ${(err as Error).message}`);
  }
  let tensors: Map<string, Tensor>;
  try {
    tensors = await loadSafetensors(src);
  } finally {
    await src.close();
  }
  try {
    const problems = options.optimizer.checkStateDict(tensors, state.optimizer);
    if (problems.length) throw new TrainingCheckpointError(optFile, 'the optimizer state does not match this optimizer; nothing was loaded', problems);
    await loadCheckpoint(options.model, checkpoint);
    options.optimizer.loadStateDict(tensors, state.optimizer, optFile);
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return state;
}
