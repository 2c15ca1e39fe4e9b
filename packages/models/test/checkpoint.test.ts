import '@ring-linear/backend-cpu';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispose, init, tensor, type Tensor } from '@ring-linear/core';
import {
  CheckpointMismatchError,
  RingLinearForCausalLM,
  SafetensorsError,
  configToJson,
  createConfig,
  loadCheckpoint,
  loadConfig,
  loadPretrained,
  memoryFolder,
  nodeFolder,
  nodeFileSource,
  preset,
  readSafetensorsHeader,
  saveCheckpoint,
  saveSafetensors,
  type CheckpointFolder,
  type RingLinearConfig,
} from '../src/index.js';
import { randomizeModel, seedFromEnv } from './helpers.js';

const SEED = seedFromEnv(31337);
console.log(`checkpoint tests: seed ${SEED}`);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ring-linear-ckpt-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const newDir = () => path.join(root, `ckpt-${dirCount++}`);

/** A smaller relative of the tiny preset (fast save/load), same structure. */
const CONFIG: RingLinearConfig = createConfig({
  ...configToJson(preset('tiny')),
  hidden_size: 64,
  head_dim: 16,
  intermediate_size: 96,
  moe_intermediate_size: 32,
  moe_shared_expert_intermediate_size: 32,
  num_experts: 8,
  n_group: 4,
  topk_group: 2,
  num_experts_per_tok: 2,
});

function emptyModel(config = CONFIG, dtype: 'f32' | 'bf16' = 'f32'): RingLinearForCausalLM {
  return init.skipInit(() => new RingLinearForCausalLM(config, { dtype }));
}

function randomModel(seed: number, options: { roundTo?: 'bf16'; config?: RingLinearConfig } = {}): RingLinearForCausalLM {
  const m = emptyModel(options.config ?? CONFIG);
  randomizeModel(m, seed, options);
  return m;
}

const TOKENS = Array.from({ length: 9 }, (_, i) => (i * 37 + 11) % 259);

function logits(model: RingLinearForCausalLM): Float32Array {
  const ids = tensor(Int32Array.from(TOKENS), [1, TOKENS.length], 'i32');
  const out = model.forward(ids);
  const v = out.logits!.dataSync() as Float32Array;
  dispose([ids, out]);
  return v;
}

async function snapshot(model: RingLinearForCausalLM): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const [n, p] of model.namedParameters()) out.set(n, Buffer.from(await p.bytes()));
  return out;
}

async function expectSameBits(a: Map<string, Buffer>, b: Map<string, Buffer>): Promise<void> {
  expect([...a.keys()]).toEqual([...b.keys()]);
  for (const [n, bytes] of a) expect(bytes.equals(b.get(n)!), n).toBe(true);
}

/** A folder wrapper that records every read (offset, length) per file. */
function spyFolder(inner: CheckpointFolder, reads: { file: string; length: number; size: number }[]): CheckpointFolder {
  return {
    name: inner.name,
    exists: (f) => inner.exists(f),
    readText: (f) => inner.readText(f),
    async open(f) {
      const src = await inner.open(f);
      return { name: src.name, size: src.size, close: () => src.close(), read: (o, n) => (reads.push({ file: f, length: n, size: src.size }), src.read(o, n)) };
    },
  };
}

describe('checkpoint save and load', () => {
  it('save -> load into a fresh model round-trips every tensor bit-exactly; config.json round-trips', async () => {
    const a = randomModel(SEED);
    const dir = newDir();
    const rep = await saveCheckpoint(a, dir);
    expect(rep.files).toEqual(['model.safetensors', 'config.json']);
    expect(await loadConfig(dir)).toEqual(a.config);
    const b = emptyModel();
    const report = await loadCheckpoint(b, dir);
    expect(report.loaded).toHaveLength(a.namedParameters().length);
    expect(report.converted).toBe(0);
    await expectSameBits(await snapshot(a), await snapshot(b));
    expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
    a.dispose();
    b.dispose();
  });

  it('a bf16 sharded checkpoint in the Hugging Face layout loads and gives the same logits as the in-memory model', async () => {
    const a = randomModel(SEED + 1, { roundTo: 'bf16' }); // values exactly representable in bf16 (router aside)
    const want = logits(a);
    const dir = newDir();
    const rep = await saveCheckpoint(a, dir, { dtype: 'bf16', maxShardSize: 400_000 });
    expect(rep.files.length).toBeGreaterThan(3);
    expect(rep.files).toContain('model.safetensors.index.json');
    expect(rep.files[0]).toBe(`model-00001-of-${String(rep.files.length - 2).padStart(5, '0')}.safetensors`);
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(index.weight_map).sort()).toEqual(a.namedParameters().map(([n]) => n).sort());
    expect(index.metadata.total_size).toBe(rep.totalSize);
    // Weights bf16, the router f32 (MODEL_SPEC §6).
    const formats = new Map<string, string>();
    for (const f of new Set(Object.values(index.weight_map) as string[])) {
      const src = await nodeFileSource(path.join(dir, f));
      for (const e of (await readSafetensorsHeader(src)).entries) formats.set(e.name, e.format);
      await src.close();
    }
    expect(formats.get('model.layers.1.mlp.gate.weight')).toBe('F32');
    expect(formats.get('model.layers.1.mlp.gate.expert_bias')).toBe('F32');
    expect(formats.get('model.layers.1.mlp.experts.3.up_proj.weight')).toBe('BF16');
    expect(formats.get('lm_head.weight')).toBe('BF16');
    // Load into an f32 model (bf16 -> f32 is exact) and into a bf16 model.
    const { model: b, report } = await loadPretrained(dir);
    expect(report.converted).toBeGreaterThan(0);
    expect(Buffer.from(logits(b).buffer).equals(Buffer.from(want.buffer))).toBe(true);
    const { model: d } = await loadPretrained(dir, { dtype: 'bf16' });
    expect(d.model.word_embeddings.weight.dtype).toBe('bf16');
    expect(d.lm_head.weight.dtype).toBe('f32');
    const ref = emptyModel(CONFIG, 'bf16');
    randomizeModel(ref, SEED + 1, { roundTo: 'bf16' });
    expect(Buffer.from(logits(d).buffer).equals(Buffer.from(logits(ref).buffer))).toBe(true);
    for (const m of [a, b, d, ref]) m.dispose();
  });

  it('F8_E4M3 / F16 tensors load into f32 parameters as their exactly decoded values', async () => {
    const { cast, noGrad, tidy } = await import('@ring-linear/core');
    const a = randomModel(SEED + 12);
    for (const dtype of ['f8e4m3', 'f16'] as const) {
      const dir = newDir();
      await saveCheckpoint(a, dir, { dtype });
      const src = await nodeFileSource(path.join(dir, 'model.safetensors'));
      const formats = new Set((await readSafetensorsHeader(src)).entries.map((e) => e.format));
      await src.close();
      expect(formats).toEqual(new Set([dtype === 'f16' ? 'F16' : 'F8_E4M3', 'F32'])); // router stays F32
      const { model: b, report } = await loadPretrained(dir);
      expect(report.converted).toBeGreaterThan(0);
      for (const [name, p] of a.namedParameters()) {
        const q = b.namedParameters().find(([n]) => n === name)![1];
        const rounded = noGrad(() => tidy(() => cast(cast(p, dtype), 'f32')));
        const want = /\.mlp\.gate\./.test(name) ? p.dataSync() : rounded.dataSync();
        rounded.dispose();
        expect(Buffer.from(q.dataSync().buffer).equals(Buffer.from((want as Float32Array).buffer)), name).toBe(true);
      }
      b.dispose();
    }
    a.dispose();
  });

  it('loads from memory (ArrayBuffers, fetch Responses, Blobs) through the same parser', async () => {
    const a = randomModel(SEED + 2);
    const dir = newDir();
    await saveCheckpoint(a, dir, { maxShardSize: 300_000 });
    const files: Record<string, ArrayBuffer | Response | Blob | string> = {};
    fs.readdirSync(dir).forEach((f, i) => {
      const bytes = fs.readFileSync(path.join(dir, f));
      const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      files[f] = f.endsWith('.json') ? bytes.toString('utf8') : i % 3 === 0 ? ab : i % 3 === 1 ? new Response(ab) : new Blob([ab]);
    });
    const { model: b } = await loadPretrained(memoryFolder(files));
    await expectSameBits(await snapshot(a), await snapshot(b));
    a.dispose();
    b.dispose();
  });

  it('streams: reads headers first, then one tensor at a time, never a whole file', async () => {
    const a = randomModel(SEED + 3);
    const dir = newDir();
    await saveCheckpoint(a, dir);
    const reads: { file: string; length: number; size: number }[] = [];
    const b = emptyModel();
    await loadCheckpoint(b, spyFolder(await nodeFolder(dir), reads));
    const largest = Math.max(...a.parameters().map((p) => p.byteLength));
    expect(reads.length).toBe(2 + a.parameters().length);
    expect(Math.max(...reads.map((r) => r.length))).toBe(largest);
    expect(reads.every((r) => r.length < r.size / 4)).toBe(true);
    a.dispose();
    b.dispose();
  });

  it('device memory while loading: two copies (transactional) vs the model plus one tensor (loadPretrained)', async () => {
    const a = randomModel(SEED + 11);
    const dir = newDir();
    await saveCheckpoint(a, dir);
    const modelBytes = a.parameters().reduce((s, p) => s + p.byteLength, 0);
    const largest = Math.max(...a.parameters().map((p) => p.byteLength));
    const { memory } = await import('@ring-linear/core');
    const peakDuring = async (load: (f: CheckpointFolder) => Promise<unknown>) => {
      const base = memory().bytes;
      let peak = 0;
      const inner = await nodeFolder(dir);
      const folder: CheckpointFolder = { ...inner, open: async (f) => {
        const src = await inner.open(f);
        return { ...src, read: async (o, n) => ((peak = Math.max(peak, memory().bytes - base)), src.read(o, n)) };
      } };
      await load(folder);
      return peak;
    };
    const b = emptyModel();
    const transactional = await peakDuring((f) => loadCheckpoint(b, f));
    let loaded: RingLinearForCausalLM | null = null;
    const streaming = await peakDuring(async (f) => (loaded = (await loadPretrained(f)).model));
    console.log(`model ${modelBytes} B: extra device bytes while loading, transactional ${transactional}, loadPretrained ${streaming - modelBytes}`);
    expect(transactional).toBeGreaterThan(0.9 * modelBytes);
    expect(streaming - modelBytes).toBeLessThanOrEqual(largest);
    await expectSameBits(await snapshot(a), await snapshot(loaded!));
    a.dispose();
    b.dispose();
    loaded!.dispose();
  });

  it('strict: missing, unexpected and mis-shaped tensors in one error, nothing loaded; mtp and slope tensors ignored with a note', async () => {
    const a = randomModel(SEED + 4);
    const dir = newDir();
    const sd = a.stateDict();
    const extra: [string, Tensor][] = [];
    for (const [n, t] of sd) {
      if (n === 'model.layers.2.attention.dense.weight') continue; // missing
      if (n === 'model.layers.0.input_layernorm.weight') extra.push([n, tensor(new Float32Array(63).fill(1), [63])]); // mis-shaped
      else extra.push([n, t]);
    }
    extra.push(['model.layers.9.attention.dense.weight', tensor(new Float32Array(4), [2, 2])]); // unexpected
    extra.push(['model.mtp.layers.0.eh_proj.weight', tensor(new Float32Array(4), [2, 2])]);
    extra.push(['model.mtp.layers.0.enorm.weight', tensor(new Float32Array(2), [2])]);
    extra.push(['model.layers.0.attention.slope', tensor(new Float32Array(4), [4])]);
    fs.mkdirSync(dir, { recursive: true });
    await saveSafetensors(path.join(dir, 'model.safetensors'), extra);
    const b = randomModel(SEED + 5);
    const before = await snapshot(b);
    let err: CheckpointMismatchError | null = null;
    try {
      await loadCheckpoint(b, dir);
    } catch (e) {
      err = e as CheckpointMismatchError;
    }
    expect(err).toBeInstanceOf(CheckpointMismatchError);
    expect(err!.missing).toEqual(['model.layers.2.attention.dense.weight']);
    expect(err!.unexpected).toEqual(['model.layers.9.attention.dense.weight']);
    expect(err!.mismatched).toEqual([{ name: 'model.layers.0.input_layernorm.weight', expected: '[64] f32', got: '[63] f32' }]);
    expect(err!.message).toMatch(/nothing was loaded: missing 1: model\.layers\.2\.attention\.dense\.weight; unexpected 1: .*; mis-shaped 1: model\.layers\.0\.input_layernorm\.weight \(model \[64\] f32, checkpoint \[63\] f32\)/);
    await expectSameBits(before, await snapshot(b));
    // Non-strict loads what matches and lists the rest; the mtp and slope tensors are notes.
    const notes: string[] = [];
    const report = await loadCheckpoint(b, dir, { strict: false, onNote: (n) => notes.push(n) });
    expect(report.missing).toEqual(['model.layers.2.attention.dense.weight']);
    expect(report.mismatched.map((m) => m.name)).toEqual(['model.layers.0.input_layernorm.weight']);
    expect(report.unexpected).toEqual(['model.layers.9.attention.dense.weight']);
    expect(notes).toEqual([
      'ignored 2 checkpoint tensors: multi-token-prediction layer (not part of the causal LM)',
      'ignored 1 checkpoint tensor: decay slope buffer (the decay rates are computed from the config)',
    ]);
    expect(Buffer.from(await b.model.layers.at(3).attention.dense.weight.bytes()).equals(Buffer.from(await a.model.layers.at(3).attention.dense.weight.bytes()))).toBe(true);
    dispose([sd, extra]);
    a.dispose();
    b.dispose();
  });

  it('a truncated shard, a NaN, a missing shard or an inconsistent index: clear error, model unchanged', async () => {
    const a = randomModel(SEED + 6);
    const dir = newDir();
    const rep = await saveCheckpoint(a, dir, { maxShardSize: 200_000 });
    const shards = rep.files.filter((f) => f.startsWith('model-'));
    expect(shards.length).toBeGreaterThan(2);
    const b = randomModel(SEED + 7);
    const before = await snapshot(b);
    const last = path.join(dir, shards[shards.length - 1]!);
    const original = fs.readFileSync(last);
    // Truncated: the last shard loses its final bytes (headers of every shard are checked first).
    fs.writeFileSync(last, original.subarray(0, original.byteLength - 10));
    await expect(loadCheckpoint(b, dir)).rejects.toThrow(/truncated: the tensors end at byte \d+ but the file has \d+ bytes/);
    await expectSameBits(before, await snapshot(b));
    // A NaN in the last tensor of the last shard: found while reading, after earlier tensors were read.
    const nan = Buffer.from(original);
    new DataView(nan.buffer, nan.byteOffset).setFloat32(nan.byteLength - 4, NaN, true);
    fs.writeFileSync(last, nan);
    await expect(loadCheckpoint(b, dir)).rejects.toThrow(/holds 1 non-finite value\(s\) \(NaN\/Inf\); refusing to load it/);
    await expectSameBits(before, await snapshot(b));
    // loadPretrained (assigning as it reads) disposes its half-loaded model: nothing leaks.
    const { memory } = await import('@ring-linear/core');
    const live = memory().tensors;
    await expect(loadPretrained(dir)).rejects.toThrow(/non-finite/);
    expect(memory().tensors).toBe(live);
    fs.writeFileSync(last, original);
    // Index inconsistent with the shards.
    const indexPath = path.join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
    const name = Object.keys(index.weight_map)[0]!;
    index.weight_map[name] = shards[1];
    fs.writeFileSync(indexPath, JSON.stringify(index));
    await expect(loadCheckpoint(b, dir)).rejects.toThrow(new RegExp(`'${name.replace(/\./g, '\\.')}' is in ${shards[0]} but the index says ${shards[1]}`));
    index.weight_map[name] = 'model-00009-of-00009.safetensors';
    fs.writeFileSync(indexPath, JSON.stringify(index));
    await expect(loadCheckpoint(b, dir)).rejects.toThrow(/shard file\(s\) missing or outside the folder: model-00009-of-00009\.safetensors/);
    fs.writeFileSync(indexPath, '{"weight_map": 3}');
    await expect(loadCheckpoint(b, dir)).rejects.toThrow(SafetensorsError);
    await expectSameBits(before, await snapshot(b));
    await expect(loadCheckpoint(b, newDir())).rejects.toThrow(/no model\.safetensors or model\.safetensors\.index\.json/);
    a.dispose();
    b.dispose();
  });

  it('the writer is atomic: a failed save leaves the previous checkpoint intact and no temporaries; a new layout removes the stale one', async () => {
    const a = randomModel(SEED + 8);
    const dir = newDir();
    await saveCheckpoint(a, dir, { maxShardSize: 200_000 });
    const listing = fs.readdirSync(dir).sort();
    const bytes = new Map(listing.map((f) => [f, fs.readFileSync(path.join(dir, f))]));
    // Asking for an integer dtype fails on the first float tensor, after temporaries were opened.
    await expect(saveCheckpoint(a, dir, { dtype: 'i32', maxShardSize: 200_000 })).rejects.toThrow(/cannot write f32 tensor as i32/);
    expect(fs.readdirSync(dir).sort()).toEqual(listing);
    for (const [f, b] of bytes) expect(fs.readFileSync(path.join(dir, f)).equals(b)).toBe(true);
    // Re-saving as a single file replaces the shards and the index.
    await saveCheckpoint(a, dir);
    expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
    // Fewer shards than before: the old extra shards go.
    await saveCheckpoint(a, dir, { maxShardSize: 100_000 });
    const many = fs.readdirSync(dir).filter((f) => f.startsWith('model-')).length;
    await saveCheckpoint(a, dir, { maxShardSize: 400_000 });
    const fewer = fs.readdirSync(dir).filter((f) => f.startsWith('model-'));
    expect(fewer.length).toBeLessThan(many);
    expect(fs.readdirSync(dir)).not.toContain('model.safetensors');
    const b = emptyModel();
    await loadCheckpoint(b, dir);
    await expectSameBits(await snapshot(a), await snapshot(b));
    a.dispose();
    b.dispose();
  });

  it('a tied model writes the embedding once and loads it back under both names', async () => {
    const tied = createConfig({ ...configToJson(CONFIG), tie_word_embeddings: true });
    const a = randomModel(SEED + 9, { config: tied });
    const dir = newDir();
    await saveCheckpoint(a, dir);
    const src = await nodeFileSource(path.join(dir, 'model.safetensors'));
    const names = (await readSafetensorsHeader(src)).entries.map((e) => e.name);
    await src.close();
    expect(names).toContain('model.word_embeddings.weight');
    expect(names).not.toContain('lm_head.weight');
    const { model: b } = await loadPretrained(dir);
    expect(b.lm_head.weight).toBe(b.model.word_embeddings.weight);
    expect(Buffer.from(logits(b).buffer).equals(Buffer.from(logits(a).buffer))).toBe(true);
    a.dispose();
    b.dispose();
  });

});
