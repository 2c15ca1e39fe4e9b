/**
 * Hugging Face checkpoints: safetensors files (single `model.safetensors`, or shards listed in
 * `model.safetensors.index.json`) mapped onto a model's parameters by name (MODEL_SPEC §6).
 *
 * Loading streams: headers of every shard are read and validated first (nothing else), the names
 * and shapes are matched against the model (strict by default: every missing, unexpected and
 * mis-shaped name in one error), and only then the tensors are read one at a time at their
 * offsets into temporaries on the parameters' backend (converted to the parameter dtype, checked
 * for NaN/Inf). The parameters are assigned only after every read succeeded, so a failure
 * anywhere leaves the model exactly as it was (loadPretrained, whose model is new and disposed on
 * failure, assigns as it reads instead: device memory then peaks at the model plus one tensor).
 * At no point is a whole file in one JS buffer: the largest host buffer is one tensor.
 *
 * Writing is atomic: every file (shards, index, config.json) is written to a temporary file in
 * the same folder, fsynced, and renamed over its final name only when all of them are complete.
 */
import {
  DTypeError,
  bytesPerElement,
  cast,
  findBackend,
  fromBytes,
  init,
  isFloatDType,
  noGrad,
  shapesEqual,
  tidy,
  type DType,
  type Module,
  type Parameter,
  type Tensor,
} from '@ring-linear/core';
import { configToJsonText, parseConfig, dtypeOfConfig, type RingLinearConfig } from './config.js';
import { CheckpointMismatchError, SafetensorsError } from './errors.js';
import { nodeFs, toFolder, type ByteSource, type CheckpointFolder } from './io.js';
import { RingLinearForCausalLM, type RingLinearModelOptions } from './model.js';
import {
  buildSafetensorsHeader,
  countNonFinite,
  headerSizeOf,
  parseSafetensorsHeader,
  type SafetensorsEntry,
  type SafetensorsHeader,
} from './safetensors.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
export const CONFIG_FILE = 'config.json';

/** Reads and validates a safetensors header from a source (reads only the header bytes). */
export async function readSafetensorsHeader(source: ByteSource): Promise<SafetensorsHeader> {
  const prefix = source.size >= 8 ? await source.read(0, 8) : new Uint8Array(0);
  const n = headerSizeOf(source.name, prefix, source.size);
  return parseSafetensorsHeader(source.name, await source.read(8, n), source.size);
}

/** Raw bytes of one tensor (one read at its offset). */
export async function readTensorBytes(source: ByteSource, entry: SafetensorsEntry): Promise<Uint8Array> {
  return source.read(entry.begin, entry.end - entry.begin);
}

// ---------------------------------------------------------------------------------------------
// Locating the tensors of a folder

export interface CheckpointTensor {
  readonly entry: SafetensorsEntry;
  /** Index into `files`. */
  readonly file: number;
}

export interface CheckpointIndex {
  /** Files in the folder that hold tensors (model.safetensors, or the shards). */
  readonly files: readonly string[];
  readonly tensors: ReadonlyMap<string, CheckpointTensor>;
  /** Open sources, one per file; close them with closeCheckpoint(). */
  readonly sources: readonly ByteSource[];
  readonly sharded: boolean;
}

/** Opens a folder's safetensors files and validates every header (no tensor data is read). */
export async function openCheckpoint(folderOrPath: string | CheckpointFolder): Promise<CheckpointIndex> {
  const folder = await toFolder(folderOrPath);
  let files: string[];
  let weightMap: Record<string, string> | null = null;
  if (await folder.exists(INDEX_FILE)) {
    const where = `${folder.name}/${INDEX_FILE}`;
    let index: unknown;
    try {
      index = JSON.parse(await folder.readText(INDEX_FILE));
    } catch (err) {
      throw new SafetensorsError(where, `not valid JSON: ${(err as Error).message}`);
    }
    const wm = (index as { weight_map?: unknown } | null)?.weight_map;
    if (!wm || typeof wm !== 'object' || Array.isArray(wm) || !Object.values(wm).every((v) => typeof v === 'string')) {
      throw new SafetensorsError(where, "expected { \"weight_map\": { tensor name: shard file } }");
    }
    weightMap = wm as Record<string, string>;
    files = [...new Set(Object.values(weightMap))];
    const absent: string[] = [];
    for (const f of files) if (f.includes('/') || f.includes('\\') || !(await folder.exists(f))) absent.push(f);
    if (absent.length) throw new SafetensorsError(where, `shard file(s) missing or outside the folder: ${absent.join(', ')}`);
  } else if (await folder.exists(SINGLE_FILE)) {
    files = [SINGLE_FILE];
  } else {
    throw new SafetensorsError(folder.name, `no ${SINGLE_FILE} or ${INDEX_FILE} in the folder`);
  }
  const sources: ByteSource[] = [];
  try {
    const tensors = new Map<string, CheckpointTensor>();
    const problems: string[] = [];
    for (let i = 0; i < files.length; i++) {
      const src = await folder.open(files[i]!);
      sources.push(src);
      const header = await readSafetensorsHeader(src);
      for (const entry of header.entries) {
        const prev = tensors.get(entry.name);
        if (prev) problems.push(`'${entry.name}' is in both ${files[prev.file]} and ${files[i]}`);
        else tensors.set(entry.name, { entry, file: i });
        if (weightMap && weightMap[entry.name] !== files[i]) {
          problems.push(`'${entry.name}' is in ${files[i]} but the index ${weightMap[entry.name] === undefined ? 'does not list it' : `says ${weightMap[entry.name]}`}`);
        }
      }
    }
    if (weightMap) for (const name of Object.keys(weightMap)) if (!tensors.has(name)) problems.push(`the index lists '${name}' in ${weightMap[name]}, which does not hold it`);
    if (problems.length) throw new SafetensorsError(folder.name, `inconsistent checkpoint:\n  - ${problems.join('\n  - ')}`);
    return { files, tensors, sources, sharded: weightMap !== null };
  } catch (err) {
    await Promise.all(sources.map((s) => s.close()));
    throw err;
  }
}

export async function closeCheckpoint(index: CheckpointIndex): Promise<void> {
  await Promise.all(index.sources.map((s) => s.close()));
}

// ---------------------------------------------------------------------------------------------
// Loading into a model

/** Why a checkpoint name is skipped (MODEL_SPEC §6): multi-token-prediction layers and decay buffers. */
export function ignoredCheckpointName(name: string): string | null {
  if (name.startsWith('model.mtp')) return 'multi-token-prediction layer (not part of the causal LM)';
  if (/(^|\.)slopes?$/.test(name) || /\.slope[^.]*$/.test(name)) return 'decay slope buffer (the decay rates are computed from the config)';
  if (name.endsWith('.rotary_emb.inv_freq')) return 'RoPE inverse-frequency buffer (computed from the config)';
  return null;
}

export interface LoadCheckpointOptions {
  /** Require an exact match of names and shapes (default true). Non-strict loads what matches. */
  readonly strict?: boolean;
  /** Refuse tensors holding NaN or infinity (default true). */
  readonly checkFinite?: boolean;
  /** Called with one line per skipped name group (mtp layers, slope buffers). Default: none. */
  readonly onNote?: (note: string) => void;
  /**
   * true (default): read every tensor into a temporary and assign only when all reads succeeded,
   * so a failure leaves the model untouched; peak memory is the model plus a second copy of its
   * weights. false: assign each tensor as soon as it is read (peak: the model plus one tensor);
   * a failure then leaves the model partly loaded, so use it only for a model that is thrown
   * away on failure (loadPretrained does). Names, shapes and headers are checked before any read
   * either way.
   */
  readonly transactional?: boolean;
}

export interface LoadCheckpointReport {
  /** Parameter names loaded. */
  readonly loaded: readonly string[];
  /** Checkpoint names skipped on purpose, with the reason. */
  readonly ignored: readonly { readonly name: string; readonly reason: string }[];
  /** Short notes (e.g. "ignored 1520 tensors of model.mtp.*"). */
  readonly notes: readonly string[];
  /** Non-strict only: model parameters the checkpoint lacks, and checkpoint names the model lacks. */
  readonly missing: readonly string[];
  readonly unexpected: readonly string[];
  /** Non-strict only: names whose shapes differ (not loaded). */
  readonly mismatched: readonly { readonly name: string; readonly expected: string; readonly got: string }[];
  /** Checkpoint tensors converted to the parameter dtype (e.g. bf16 -> f32). */
  readonly converted: number;
  readonly bytesRead: number;
}

function describeParam(p: Tensor): string {
  return `[${p.shape.join(', ')}] ${p.dtype}`;
}

/**
 * Loads a checkpoint folder into `model` by parameter name. See the file comment for the order of
 * checks; on any error nothing is assigned. Tensor dtypes may differ from the parameters' (float
 * to float: converted, rounding to nearest even where narrower); shapes must match.
 */
export async function loadCheckpoint(
  model: Module,
  folder: string | CheckpointFolder | CheckpointIndex,
  options: LoadCheckpointOptions = {},
): Promise<LoadCheckpointReport> {
  const strict = options.strict ?? true;
  const checkFinite = options.checkFinite ?? true;
  const transactional = options.transactional ?? true;
  const ownIndex = !(typeof folder === 'object' && 'tensors' in folder && 'sources' in folder);
  const index = ownIndex ? await openCheckpoint(folder as string | CheckpointFolder) : (folder as CheckpointIndex);
  const temps = new Map<string, Tensor>();
  try {
    // Every name a parameter has (a tied lm_head is the embedding Parameter under a second name).
    const byName = new Map<string, Parameter>();
    for (const [prefix, m] of model.namedModules()) {
      for (const [n, p] of m.namedOwnParameters()) byName.set(prefix ? `${prefix}.${n}` : n, p);
    }
    const firstNames = model.namedParameters();

    const ignored: { name: string; reason: string }[] = [];
    const unexpected: string[] = [];
    const mismatched: { name: string; expected: string; got: string }[] = [];
    const plan: { name: string; param: Parameter; at: CheckpointTensor }[] = [];
    const covered = new Set<Parameter>();
    for (const [name, at] of index.tensors) {
      const reason = ignoredCheckpointName(name);
      if (reason) {
        ignored.push({ name, reason });
        continue;
      }
      const param = byName.get(name);
      if (!param) {
        unexpected.push(name);
        continue;
      }
      const e = at.entry;
      const got = `[${e.shape.join(', ')}] ${e.dtype}`;
      if (!shapesEqual(e.shape, param.shape)) mismatched.push({ name, expected: describeParam(param), got });
      else if (e.dtype !== param.dtype && !(isFloatDType(e.dtype) && isFloatDType(param.dtype))) {
        mismatched.push({ name, expected: describeParam(param), got: `${got} (cannot convert)` });
      } else if (covered.has(param)) {
        ignored.push({ name, reason: 'second name of a tied parameter (loaded under its first name)' });
      } else {
        covered.add(param);
        plan.push({ name, param, at });
      }
    }
    const mismatchedParams = new Set(mismatched.map((m) => byName.get(m.name)));
    const missing = firstNames.filter(([, p]) => !covered.has(p) && !mismatchedParams.has(p)).map(([n]) => n);
    if (strict && (missing.length || unexpected.length || mismatched.length)) throw new CheckpointMismatchError(missing, unexpected, mismatched);

    // Read in file order (sequential I/O), one tensor at a time.
    plan.sort((a, b) => a.at.file - b.at.file || a.at.entry.begin - b.at.entry.begin);
    let bytesRead = 0;
    let converted = 0;
    for (const { name, param, at } of plan) {
      const src = index.sources[at.file]!;
      const bytes = await readTensorBytes(src, at.entry);
      bytesRead += bytes.byteLength;
      if (checkFinite) {
        const bad = countNonFinite(bytes, at.entry.dtype);
        if (bad > 0) throw new SafetensorsError(src.name, `tensor '${name}' holds ${bad} non-finite value(s) (NaN/Inf); refusing to load it`);
      }
      const backend = findBackend(param.backend);
      const raw = fromBytes(bytes, at.entry.shape, at.entry.dtype, backend);
      let t = raw;
      if (raw.dtype !== param.dtype) {
        t = noGrad(() => cast(raw, param.dtype));
        raw.dispose();
        converted++;
      }
      if (transactional) temps.set(name, t);
      else param.assign(t);
    }

    // Every read succeeded: assign (zero-copy; each parameter takes its temporary's storage).
    for (const { name, param } of plan) {
      const t = temps.get(name);
      if (!t) continue;
      temps.delete(name);
      param.assign(t);
    }
    const notes = summarizeIgnored(ignored);
    for (const n of notes) options.onNote?.(n);
    return { loaded: plan.map((p) => p.name), ignored, notes, missing: strict ? [] : missing, unexpected: strict ? [] : unexpected, mismatched: strict ? [] : mismatched, converted, bytesRead };
  } finally {
    for (const t of temps.values()) t.dispose();
    if (ownIndex) await closeCheckpoint(index);
  }
}

function summarizeIgnored(ignored: readonly { name: string; reason: string }[]): string[] {
  const byReason = new Map<string, number>();
  for (const i of ignored) byReason.set(i.reason, (byReason.get(i.reason) ?? 0) + 1);
  return [...byReason].map(([reason, n]) => `ignored ${n} checkpoint tensor${n === 1 ? '' : 's'}: ${reason}`);
}

/** Reads every tensor of one safetensors source into a name -> Tensor map (small files, tools). */
export async function loadSafetensors(source: ByteSource, options: { checkFinite?: boolean } = {}): Promise<Map<string, Tensor>> {
  const header = await readSafetensorsHeader(source);
  const out = new Map<string, Tensor>();
  try {
    for (const e of header.entries) {
      const bytes = await readTensorBytes(source, e);
      if (options.checkFinite ?? true) {
        const bad = countNonFinite(bytes, e.dtype);
        if (bad > 0) throw new SafetensorsError(source.name, `tensor '${e.name}' holds ${bad} non-finite value(s) (NaN/Inf)`);
      }
      out.set(e.name, fromBytes(bytes, e.shape, e.dtype));
    }
    return out;
  } catch (err) {
    for (const t of out.values()) t.dispose();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

/** A tensor to write: its name and values (cast to `dtype` on the way out when given). */
interface OutTensor {
  readonly name: string;
  readonly tensor: Tensor;
  readonly dtype: DType;
}

/** Bytes of `t` in `dtype` (one tensor at a time; a cast runs on the tensor's backend). */
async function tensorBytes(t: Tensor, dtype: DType): Promise<Uint8Array> {
  if (t.dtype === dtype) return t.bytes();
  if (!isFloatDType(t.dtype) || !isFloatDType(dtype)) throw new DTypeError(`saveCheckpoint: cannot write ${t.dtype} tensor as ${dtype}`);
  const c = noGrad(() => tidy(() => cast(t, dtype)));
  try {
    return await c.bytes();
  } finally {
    c.dispose();
  }
}

/** The complete bytes of a safetensors file, in memory (browsers, small tensors). */
export async function serializeSafetensors(
  tensors: ReadonlyMap<string, Tensor> | readonly [string, Tensor][],
  metadata: Readonly<Record<string, string>> = { format: 'pt' },
): Promise<Uint8Array> {
  const list = [...(tensors instanceof Map ? tensors.entries() : tensors)] as [string, Tensor][];
  const header = buildSafetensorsHeader(list.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })), metadata);
  const out = new Uint8Array(header.fileSize);
  out.set(header.bytes, 0);
  for (let i = 0; i < list.length; i++) out.set(await list[i]![1].bytes(), header.offsets[i]!);
  return out;
}

function tempName(file: string): string {
  return `.${file}.tmp-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

/** Writes one safetensors file to `tmpPath` (streaming: one tensor in host memory at a time), fsynced. */
async function writeSafetensorsFile(tmpPath: string, tensors: readonly OutTensor[], metadata: Readonly<Record<string, string>>): Promise<number> {
  const { fs } = await nodeFs();
  const header = buildSafetensorsHeader(tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.tensor.shape })), metadata);
  const handle = await fs.open(tmpPath, 'wx');
  try {
    await handle.write(header.bytes, 0, header.bytes.byteLength, 0);
    for (let i = 0; i < tensors.length; i++) {
      const { tensor, dtype } = tensors[i]!;
      const bytes = await tensorBytes(tensor, dtype);
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, header.offsets[i]! + done);
        done += bytesWritten;
      }
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return header.fileSize;
}

async function writeTextFile(tmpPath: string, text: string): Promise<void> {
  const { fs } = await nodeFs();
  const handle = await fs.open(tmpPath, 'wx');
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface SaveSafetensorsOptions {
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Writes tensors to one safetensors file atomically (temp file in the same folder, fsync, rename). Node.js. */
export async function saveSafetensors(
  filePath: string,
  tensors: ReadonlyMap<string, Tensor> | readonly [string, Tensor][],
  options: SaveSafetensorsOptions = {},
): Promise<void> {
  const { fs, path } = await nodeFs();
  const list = [...(tensors instanceof Map ? tensors.entries() : tensors)] as [string, Tensor][];
  const tmp = path.join(path.dirname(filePath), tempName(path.basename(filePath)));
  try {
    await writeSafetensorsFile(tmp, list.map(([name, tensor]) => ({ name, tensor, dtype: tensor.dtype })), options.metadata ?? { format: 'pt' });
    await fs.rename(tmp, filePath);
    await syncDir(path.dirname(filePath));
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

async function syncDir(dir: string): Promise<void> {
  const { fs } = await nodeFs();
  // Makes the renames durable; not every platform can open a directory, which is harmless.
  try {
    const h = await fs.open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    /* directory fsync unsupported here */
  }
}

export interface SaveCheckpointOptions {
  /**
   * Dtype of the written float tensors (default: each parameter's own dtype). The router
   * (mlp.gate.weight, mlp.gate.expert_bias) stays f32 as in the Hugging Face layout (MODEL_SPEC §6).
   */
  readonly dtype?: DType;
  /**
   * Largest shard in bytes (default 5e9, as Hugging Face's "5GB"). A checkpoint that fits in one
   * shard is written as a single model.safetensors unless `sharded` is true.
   */
  readonly maxShardSize?: number;
  /** Always write shards and an index, even when everything fits in one file. */
  readonly sharded?: boolean;
  /** The config to write as config.json (default: the model's config when it has one). */
  readonly config?: RingLinearConfig | null;
  /** Extra safetensors metadata (format: 'pt' is always written). */
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface SaveCheckpointReport {
  readonly files: readonly string[];
  readonly tensors: number;
  /** Bytes of tensor data written. */
  readonly totalSize: number;
}

const ROUTER = /\.mlp\.gate\.(weight|expert_bias)$/;

/** Shard file name as Hugging Face writes it: model-00001-of-00003.safetensors. */
export function shardFileName(i: number, n: number): string {
  const pad = (x: number) => String(x).padStart(5, '0');
  return `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
}

/**
 * Saves a model's parameters (and config.json) into a folder in the Hugging Face layout. Node.js.
 * Atomic: all files are written to temporaries first and renamed into place only when every one
 * is complete; checkpoint files of an earlier save that the new one supersedes (a single file vs
 * shards, old shards) are removed afterwards, as save_pretrained does. A tied lm_head is not
 * written (Hugging Face omits it).
 */
export async function saveCheckpoint(model: Module, dir: string, options: SaveCheckpointOptions = {}): Promise<SaveCheckpointReport> {
  const { fs, path } = await nodeFs();
  await fs.mkdir(dir, { recursive: true });
  const sd = model.stateDict();
  const config = options.config !== undefined ? options.config : model instanceof RingLinearForCausalLM ? model.config : null;
  try {
    const seen = new Set<Tensor['storage']>();
    const out: OutTensor[] = [];
    for (const [name, t] of sd) {
      // A parameter under two names (tied embeddings) is written once, under its first name.
      if (seen.has(t.storage)) continue;
      seen.add(t.storage);
      const dtype = options.dtype && isFloatDType(t.dtype) && !ROUTER.test(name) ? options.dtype : t.dtype;
      out.push({ name, tensor: t, dtype });
    }
    const maxShard = options.maxShardSize ?? 5e9;
    if (!(maxShard > 0)) throw new DTypeError(`saveCheckpoint: maxShardSize must be > 0, got ${maxShard}`);
    const sizeOf = (t: OutTensor) => t.tensor.size * bytesPerElement(t.dtype);
    const shards: OutTensor[][] = [];
    let current: OutTensor[] = [];
    let currentSize = 0;
    for (const t of out) {
      const s = sizeOf(t);
      if (current.length && currentSize + s > maxShard) {
        shards.push(current);
        current = [];
        currentSize = 0;
      }
      current.push(t);
      currentSize += s;
    }
    if (current.length || shards.length === 0) shards.push(current);
    const sharded = options.sharded || shards.length > 1;
    const names = sharded ? shards.map((_, i) => shardFileName(i, shards.length)) : [SINGLE_FILE];
    const metadata = { format: 'pt', ...(options.metadata ?? {}) };

    const pending: { tmp: string; final: string }[] = [];
    const totalSize = out.reduce((a, t) => a + sizeOf(t), 0);
    try {
      for (let i = 0; i < names.length; i++) {
        const tmp = path.join(dir, tempName(names[i]!));
        pending.push({ tmp, final: path.join(dir, names[i]!) });
        await writeSafetensorsFile(tmp, shards[i]!, metadata);
      }
      if (sharded) {
        const weightMap: Record<string, string> = {};
        shards.forEach((s, i) => s.forEach((t) => (weightMap[t.name] = names[i]!)));
        const tmp = path.join(dir, tempName(INDEX_FILE));
        pending.push({ tmp, final: path.join(dir, INDEX_FILE) });
        await writeTextFile(tmp, `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)}\n`);
      }
      if (config) {
        const tmp = path.join(dir, tempName(CONFIG_FILE));
        pending.push({ tmp, final: path.join(dir, CONFIG_FILE) });
        await writeTextFile(tmp, configToJsonText(config));
      }
    } catch (err) {
      await Promise.all(pending.map((p) => fs.rm(p.tmp, { force: true })));
      throw err;
    }
    // Stale files of an earlier save in the other layout, found before the renames.
    const stale = await staleCheckpointFiles(dir, new Set(names), sharded);
    // The index goes last among the tensor files, so a reader never sees an index without its shards.
    for (const p of pending) await fs.rename(p.tmp, p.final);
    for (const f of stale) await fs.rm(path.join(dir, f), { force: true });
    await syncDir(dir);
    return { files: [...names, ...(sharded ? [INDEX_FILE] : []), ...(config ? [CONFIG_FILE] : [])], tensors: out.length, totalSize };
  } finally {
    for (const t of sd.values()) t.dispose();
  }
}

async function staleCheckpointFiles(dir: string, keep: ReadonlySet<string>, sharded: boolean): Promise<string[]> {
  const { fs } = await nodeFs();
  const entries = await fs.readdir(dir);
  const shardPattern = /^model-\d{5}-of-\d{5}\.safetensors$/;
  return entries.filter((f) => {
    if (keep.has(f)) return false;
    if (shardPattern.test(f)) return true;
    if (f === SINGLE_FILE) return sharded;
    if (f === INDEX_FILE) return !sharded;
    return false;
  });
}

// ---------------------------------------------------------------------------------------------
// Config + weights in one call

export interface LoadPretrainedOptions extends LoadCheckpointOptions, Omit<RingLinearModelOptions, 'dtype'> {
  /**
   * Parameter dtype of the built model (default f32, the CPU-friendly choice; 'auto' takes the
   * config's torch_dtype). Checkpoint tensors are converted to it.
   */
  readonly dtype?: DType | 'auto';
}

export interface Pretrained {
  readonly model: RingLinearForCausalLM;
  readonly config: RingLinearConfig;
  readonly report: LoadCheckpointReport;
}

/** Reads and validates a folder's config.json. */
export async function loadConfig(folderOrPath: string | CheckpointFolder): Promise<RingLinearConfig> {
  const folder = await toFolder(folderOrPath);
  if (!(await folder.exists(CONFIG_FILE))) throw new SafetensorsError(folder.name, `no ${CONFIG_FILE} in the folder`);
  return parseConfig(await folder.readText(CONFIG_FILE), `${folder.name}/${CONFIG_FILE}`);
}

/**
 * Builds the model a folder's config.json describes and loads its weights: headers and names are
 * validated before any weight is read, and the model is built without random initialization.
 */
export async function loadPretrained(folderOrPath: string | CheckpointFolder, options: LoadPretrainedOptions = {}): Promise<Pretrained> {
  const folder = await toFolder(folderOrPath);
  const config = await loadConfig(folder);
  const index = await openCheckpoint(folder);
  let model: RingLinearForCausalLM | null = null;
  try {
    const dtype = options.dtype === 'auto' ? dtypeOfConfig(config) : (options.dtype ?? 'f32');
    // No random draws: every weight is about to be overwritten.
    model = init.skipInit(() => new RingLinearForCausalLM(config, { ...options, dtype }));
    // The model is new and is disposed if anything fails, so tensors can be assigned as they are
    // read: peak memory is the model plus one tensor, not two copies of the weights.
    const report = await loadCheckpoint(model, index, { transactional: false, ...options });
    return { model, config, report };
  } catch (err) {
    model?.dispose();
    throw err;
  } finally {
    await closeCheckpoint(index);
  }
}
