/**
 * Finding and loading models for the commands. A <model> argument may be:
 *   - a model folder in the Hugging Face layout (config.json + model.safetensors or shards)
 *   - a training step folder (step-00000100/: the same, plus optimizer and trainer state)
 *   - a training run root (its newest step folder is taken)
 *   - an FP8 blockwise folder written by `ring-linear quantize` (dequantized on load)
 *   - a preset name (random weights; for trying the commands without a checkpoint)
 * The tokenizer is the folder's tokenizer.json (with tokenizer_config.json and its chat
 * template), else the byte-level tokenizer when the vocabulary is the byte-level one.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { manualSeed, type DType } from '@ring-linear/core';
import {
  BYTE_VOCAB,
  ByteTokenizer,
  CONFIG_FILE,
  PRESET_NAMES,
  RingLinearForCausalLM,
  loadConfig,
  loadPretrained,
  loadTokenizer,
  parseConfig,
  preset,
  type RingLinearConfig,
  type TextTokenizer,
} from '@ring-linear/models';
import { latestTrainingCheckpoint } from '@ring-linear/trainer';
import { CliError } from './errors.js';
import { fp8QuantizationOf, loadFp8Checkpoint } from './fp8-checkpoint.js';

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

export interface ResolvedModel {
  /** The folder the weights come from (a step folder for a run root); null for a preset. */
  readonly folder: string | null;
  /** What the argument was taken as. */
  readonly kind: 'folder' | 'run' | 'preset';
  /** The training run folder when a run was named (its tokenizer files live there). */
  readonly root: string | null;
  readonly config: RingLinearConfig;
}

/** Resolves a <model> argument (see the file comment) without reading any weights. */
export async function resolveModel(arg: string, cwd: string): Promise<ResolvedModel> {
  const p = path.resolve(cwd, arg);
  if (await isDir(p)) {
    if (await isFile(path.join(p, CONFIG_FILE))) return { folder: p, kind: 'folder', root: null, config: await loadConfig(p) };
    const latest = await latestTrainingCheckpoint(p);
    if (latest) return { folder: latest, kind: 'run', root: p, config: await loadConfig(latest) };
    throw new CliError(`${arg}: the folder has no ${CONFIG_FILE} and no training step folders (step-*); expected a model folder or a training run`);
  }
  if ((PRESET_NAMES as readonly string[]).includes(arg)) return { folder: null, kind: 'preset', root: null, config: preset(arg) };
  if (await isFile(p)) {
    throw new CliError(`${arg}: expected a model FOLDER (config.json + safetensors) or a training run folder, got a file`);
  }
  throw new CliError(`${arg}: no such folder (nor a preset: ${PRESET_NAMES.join(', ')})`);
}

/** Reads a config from a preset name or a config.json path (for `train` and `params`). */
export async function configFromArg(arg: string, cwd: string): Promise<{ config: RingLinearConfig; source: string }> {
  if ((PRESET_NAMES as readonly string[]).includes(arg)) return { config: preset(arg), source: `preset '${arg}'` };
  const p = path.resolve(cwd, arg);
  if (await isDir(p)) {
    if (await isFile(path.join(p, CONFIG_FILE))) return { config: await loadConfig(p), source: path.join(p, CONFIG_FILE) };
    const latest = await latestTrainingCheckpoint(p);
    if (latest) return { config: await loadConfig(latest), source: path.join(latest, CONFIG_FILE) };
    throw new CliError(`${arg}: the folder has no ${CONFIG_FILE}`);
  }
  if (!(await isFile(p))) {
    throw new CliError(`${arg}: not a preset (${PRESET_NAMES.join(', ')}) and no such file`);
  }
  const { readFile } = await import('node:fs/promises');
  return { config: parseConfig(await readFile(p, 'utf8'), arg), source: p };
}

/**
 * The tokenizer of a model: `explicit` (a folder with tokenizer.json), else tokenizer.json in the
 * model folder or its training run folder, else byte level for the byte-level vocabulary.
 */
export async function tokenizerFor(model: { folder: string | null; root?: string | null; config: RingLinearConfig }, explicit?: string): Promise<TextTokenizer> {
  const { folder, config } = model;
  if (explicit) return loadTokenizer(explicit);
  for (const dir of [folder, model.root ?? null]) {
    if (dir && (await isFile(path.join(dir, 'tokenizer.json')))) return loadTokenizer(dir);
  }
  if (config.vocab_size === BYTE_VOCAB.size) return new ByteTokenizer();
  throw new CliError(
    `${folder ?? 'the model'} has no tokenizer.json and its vocabulary (${config.vocab_size}) is not the byte-level one (${BYTE_VOCAB.size}); give --tokenizer <folder with tokenizer.json>`,
  );
}

export interface LoadedModel {
  readonly model: RingLinearForCausalLM;
  readonly config: RingLinearConfig;
  readonly folder: string | null;
  readonly root: string | null;
  readonly kind: ResolvedModel['kind'];
  readonly fp8: boolean;
}

/** Builds and loads the model a <model> argument names, in `dtype`, on the current backend. */
export async function loadModel(arg: string, cwd: string, dtype: DType = 'f32'): Promise<LoadedModel> {
  const r = await resolveModel(arg, cwd);
  const base = { config: r.config, folder: r.folder, root: r.root, kind: r.kind };
  if (!r.folder) {
    // A preset without a checkpoint: random weights, the same ones every time (seed 0).
    manualSeed(0);
    return { ...base, model: new RingLinearForCausalLM(r.config, { dtype }), fp8: false };
  }
  if (fp8QuantizationOf(r.config)) return { ...base, model: await loadFp8Checkpoint(r.folder, r.config, dtype), fp8: true };
  const { model } = await loadPretrained(r.folder, { dtype });
  return { ...base, model, fp8: false };
}
