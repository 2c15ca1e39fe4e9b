/**
 * Checkpoint merging: the weighted average of several checkpoints of one model, the "merge" of
 * warmup-stable-merge (WSM; see optim/schedule.ts for the weights that emulate a decay).
 *
 *   merged[name] = sum_i w_i * theta_i[name] / sum_i w_i
 *
 * accumulated per element in float64 and rounded once to the tensor's dtype. Inputs are model
 * folders (a training step folder is one; single-file or sharded safetensors) or in-memory state
 * dicts; folders are read one tensor at a time. Every input must hold the same names, shapes and
 * dtypes (a mismatch lists every difference).
 */
import { decodeBytes, encodeHost, fromBytes, isFloatDType, shapesEqual, type DType, type Tensor } from '@ring-linear/core';
import { closeCheckpoint, openCheckpoint, readTensorBytes, saveSafetensors, type CheckpointIndex } from '@ring-linear/models';
import { TrainerConfigError, TrainingCheckpointError } from './errors.js';
import { nodeModules, writeFileAtomic } from './node.js';

export type MergeInput = string | ReadonlyMap<string, Tensor>;

export interface MergeCheckpointsOptions {
  /** Write the merged model here (model.safetensors, and config.json copied from the first folder input). */
  readonly out?: string;
  /** Dtype of the merged float tensors (default: the inputs'). */
  readonly dtype?: DType;
}

interface Source {
  readonly label: string;
  readonly names: string[];
  meta(name: string): { shape: readonly number[]; dtype: DType };
  values(name: string): Promise<Float32Array | Int32Array | Uint8Array>;
  close(): Promise<void>;
}

async function openSource(input: MergeInput, i: number): Promise<Source> {
  if (typeof input === 'string') {
    let index: CheckpointIndex;
    try {
      index = await openCheckpoint(input);
    } catch (err) {
      throw new TrainingCheckpointError(input, `cannot open for merging: ${(err as Error).message}`);
    }
    return {
      label: input,
      names: [...index.tensors.keys()],
      meta: (n) => {
        const e = index.tensors.get(n)!.entry;
        return { shape: e.shape, dtype: e.dtype };
      },
      values: async (n) => {
        const at = index.tensors.get(n)!;
        return decodeBytes(await readTensorBytes(index.sources[at.file]!, at.entry), at.entry.dtype);
      },
      close: () => closeCheckpoint(index),
    };
  }
  if (!(input instanceof Map)) throw new TrainerConfigError(`mergeCheckpoints: input ${i} must be a folder path or a Map of tensors`);
  return {
    label: `state dict ${i}`,
    names: [...input.keys()],
    meta: (n) => {
      const t = input.get(n)!;
      return { shape: t.shape, dtype: t.dtype };
    },
    values: (n) => input.get(n)!.data(),
    close: async () => {},
  };
}

/**
 * Merges checkpoints with weights (normalized by their sum). Returns the merged tensors (the
 * caller disposes them); with options.out also writes them as a model folder.
 */
export async function mergeCheckpoints(inputs: readonly MergeInput[], weights: readonly number[], options: MergeCheckpointsOptions = {}): Promise<Map<string, Tensor>> {
  if (inputs.length === 0) throw new TrainerConfigError('mergeCheckpoints: no checkpoints given');
  if (weights.length !== inputs.length) throw new TrainerConfigError(`mergeCheckpoints: ${inputs.length} checkpoints but ${weights.length} weights`);
  weights.forEach((w, i) => {
    if (typeof w !== 'number' || !Number.isFinite(w)) throw new TrainerConfigError(`mergeCheckpoints: weight ${i} must be a finite number, got ${w}`);
  });
  const total = weights.reduce((a, b) => a + b, 0);
  if (Math.abs(total) < 1e-12) throw new TrainerConfigError(`mergeCheckpoints: the weights sum to ${total}; they must have a non-zero sum (they are normalized by it)`);
  if (options.dtype && !isFloatDType(options.dtype)) throw new TrainerConfigError(`mergeCheckpoints: dtype must be a float dtype, got ${options.dtype}`);
  const norm = weights.map((w) => w / total);

  const sources: Source[] = [];
  const out = new Map<string, Tensor>();
  try {
    for (let i = 0; i < inputs.length; i++) sources.push(await openSource(inputs[i]!, i));
    const first = sources[0]!;
    const problems: string[] = [];
    const names = [...first.names].sort();
    for (const s of sources.slice(1)) {
      const have = new Set(s.names);
      const missing = names.filter((n) => !have.has(n));
      const extra = s.names.filter((n) => !first.names.includes(n));
      if (missing.length) problems.push(`${s.label} lacks ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', ...' : ''}`);
      if (extra.length) problems.push(`${s.label} has extra ${extra.slice(0, 10).join(', ')}${extra.length > 10 ? ', ...' : ''}`);
      for (const n of names) {
        if (!have.has(n)) continue;
        const a = first.meta(n);
        const b = s.meta(n);
        if (!shapesEqual(a.shape, b.shape) || a.dtype !== b.dtype) {
          problems.push(`'${n}': ${first.label} has [${a.shape.join(', ')}] ${a.dtype}, ${s.label} has [${b.shape.join(', ')}] ${b.dtype}`);
        }
      }
    }
    if (problems.length) throw new TrainingCheckpointError(first.label, 'the checkpoints to merge do not match', problems);

    for (const n of names) {
      const { shape, dtype } = first.meta(n);
      if (!isFloatDType(dtype)) {
        // Integer/bool tensors cannot be averaged: they must agree, and are copied.
        const v0 = await first.values(n);
        for (const s of sources.slice(1)) {
          const v = await s.values(n);
          if (v.length !== v0.length || v.some((x, k) => x !== v0[k])) throw new TrainingCheckpointError(s.label, `'${n}' is ${dtype} and differs from ${first.label}; integer tensors are not averaged`);
        }
        out.set(n, fromBytes(encodeHost(v0, dtype), shape, dtype));
        continue;
      }
      let acc: Float64Array | null = null;
      for (let i = 0; i < sources.length; i++) {
        const v = await sources[i]!.values(n);
        acc ??= new Float64Array(v.length);
        const w = norm[i]!;
        for (let k = 0; k < v.length; k++) acc[k]! += w * v[k]!;
      }
      const outDtype = options.dtype ?? dtype;
      out.set(n, fromBytes(encodeHost(acc!, outDtype), shape, outDtype));
    }
    if (options.out) await writeMerged(options.out, out, inputs, norm);
    return out;
  } catch (err) {
    for (const t of out.values()) t.dispose();
    throw err;
  } finally {
    await Promise.all(sources.map((s) => s.close()));
  }
}

async function writeMerged(dir: string, tensors: Map<string, Tensor>, inputs: readonly MergeInput[], weights: readonly number[]): Promise<void> {
  const { fs, path } = await nodeModules();
  await fs.mkdir(dir, { recursive: true });
  const folders = inputs.filter((i): i is string => typeof i === 'string');
  const metadata = {
    format: 'pt',
    merged_from: JSON.stringify(inputs.map((i, k) => (typeof i === 'string' ? path.basename(i) : `state dict ${k}`))),
    merge_weights: JSON.stringify(weights),
  };
  await saveSafetensors(path.join(dir, 'model.safetensors'), tensors, { metadata });
  if (folders.length) {
    try {
      const config = await fs.readFile(path.join(folders[0]!, 'config.json'), 'utf8');
      await writeFileAtomic(path.join(dir, 'config.json'), config);
    } catch {
      // A folder without config.json (a bare safetensors folder): nothing to copy.
    }
  }
}
