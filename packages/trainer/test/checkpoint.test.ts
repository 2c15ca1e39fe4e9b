/**
 * Training checkpoints: layout, keepLast, loading back bit for bit, a crash injected at every stage
 * of a save leaving the previous checkpoint intact, leftovers of a hard crash ignored and cleaned,
 * clear errors for a different model config and for broken files; checkpoint merging equal to the
 * weighted average computed in float64.
 */
import '@ring-linear/backend-cpu';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dispose, init, manualSeed, tensor, type Tensor } from '@ring-linear/core';
import { loadCheckpoint, saveCheckpoint } from '@ring-linear/models';
import {
  AdamW,
  TrainerConfigError,
  TrainingCheckpointError,
  latestTrainingCheckpoint,
  listTrainingCheckpoints,
  loadTrainingCheckpoint,
  mergeCheckpoints,
  saveTrainingCheckpoint,
  type CheckpointStage,
  type TrainerStateInput,
} from '../src/index.js';
import { SEED, closeTo, makeRng, tempDir, tinyConfig, tinyModel } from './helpers.js';

const rng = makeRng(SEED ^ 0xc4e2);

function stateAt(step: number): TrainerStateInput {
  return { step, tokensSeen: step * 100, schedule: null, data: null, lossScaler: null, precision: 'f32', user: { note: `s${step}` } };
}

/** A model and optimizer after one update with random gradients (non-trivial moments). */
function trainedPair(seed: number) {
  manualSeed(seed);
  const model = tinyModel();
  const opt = new AdamW(model.namedParameters(), { lr: 1e-2 });
  stepRandom(opt);
  return { model, opt };
}

function stepRandom(opt: AdamW): void {
  const grads = opt.parameters.map((p) => tensor(Float32Array.from(rng.array(p.size)), [...p.shape]));
  opt.step(grads);
  dispose(grads);
}

async function snapshot(model: { stateDict(): Map<string, Tensor> }, opt: AdamW): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  const sds = [model.stateDict(), opt.stateDict()];
  for (const [i, sd] of sds.entries()) for (const [k, t] of sd) out.set(`${i}:${k}`, Array.from(await t.data()));
  for (const sd of sds) dispose([...sd.values()]);
  return out;
}

describe('training checkpoints', () => {
  it('writes the step folder, loads back bit for bit, and keeps the last N', async () => {
    const root = await tempDir();
    const { model, opt } = trainedPair(1);
    const saved = await saveTrainingCheckpoint(root, { model, optimizer: opt, state: stateAt(1), keepLast: 2 });
    expect(saved.path).toBe(join(root, 'step-00000001'));
    expect((await readdir(saved.path)).sort()).toEqual(['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json']);
    const state = JSON.parse(await readFile(join(saved.path, 'trainer_state.json'), 'utf8'));
    expect(state).toMatchObject({ format: 'ring-linear-trainer-state', version: 1, step: 1, tokensSeen: 100, precision: 'f32', user: { note: 's1' } });
    expect(state.modelConfig.hidden_size).toBe(32);
    expect(state.optimizer.stepCount).toBe(1);

    const want = await snapshot(model, opt);
    const other = trainedPair(2);
    const loaded = await loadTrainingCheckpoint(saved.path, { model: other.model, optimizer: other.opt });
    expect(loaded.step).toBe(1);
    expect(other.opt.stepCount).toBe(1);
    expect(await snapshot(other.model, other.opt)).toEqual(want);

    for (const s of [2, 3, 4]) {
      stepRandom(opt);
      const r = await saveTrainingCheckpoint(root, { model, optimizer: opt, state: stateAt(s), keepLast: 2 });
      if (s >= 3) expect(r.removed.length).toBe(1);
    }
    expect((await listTrainingCheckpoints(root)).map((c) => c.step)).toEqual([3, 4]);
    expect(await latestTrainingCheckpoint(root)).toBe(join(root, 'step-00000004'));
    model.dispose();
    other.model.dispose();
    opt.dispose();
    other.opt.dispose();
  });

  it('a crash at any stage of a save leaves the previous checkpoint intact and loadable', async () => {
    const root = await tempDir();
    const { model, opt } = trainedPair(3);
    const first = await saveTrainingCheckpoint(root, { model, optimizer: opt, state: stateAt(5) });
    const want = await snapshot(model, opt);
    const firstFiles = new Map<string, Buffer>();
    for (const f of await readdir(first.path)) firstFiles.set(f, await readFile(join(first.path, f)));
    stepRandom(opt); // the state moves on; the failed saves below try to write it
    for (const stage of ['model', 'optimizer', 'state', 'rename'] as CheckpointStage[]) {
      const onStage = (s: CheckpointStage) => {
        if (s === stage) throw new Error(`injected crash at ${stage}`);
      };
      await expect(saveTrainingCheckpoint(root, { model, optimizer: opt, state: stateAt(6), onStage })).rejects.toThrow(`injected crash at ${stage}`);
      expect((await listTrainingCheckpoints(root)).map((c) => c.step), stage).toEqual([5]);
      expect((await readdir(root)).filter((e) => e.startsWith('.tmp')), stage).toEqual([]);
    }
    for (const [f, bytes] of firstFiles) expect((await readFile(join(first.path, f))).equals(bytes), f).toBe(true);
    const other = trainedPair(4);
    await loadTrainingCheckpoint(first.path, { model: other.model, optimizer: other.opt });
    expect(await snapshot(other.model, other.opt)).toEqual(want);

    // A hard crash (the process died mid-write) leaves a temporary folder: ignored, then cleaned.
    const junk = join(root, '.tmp-step-00000006-dead');
    await mkdir(junk);
    await writeFile(join(junk, 'model.safetensors'), 'partial');
    expect(await latestTrainingCheckpoint(root)).toBe(first.path);
    await saveTrainingCheckpoint(root, { model, optimizer: opt, state: stateAt(6) });
    expect((await readdir(root)).sort()).toEqual(['step-00000005', 'step-00000006']);
    for (const m of [model, other.model]) m.dispose();
    opt.dispose();
    other.opt.dispose();
  });

  it('refuses a checkpoint of a different model config, listing the differences, and broken files', async () => {
    const root = await tempDir();
    const { model, opt } = trainedPair(5);
    const saved = await saveTrainingCheckpoint(root, { model, optimizer: opt, state: stateAt(1) });
    const wide = tinyModel({ config: tinyConfig({ hidden_size: 48, num_experts: 8 }) });
    const wideOpt = new AdamW(wide.namedParameters());
    const before = await snapshot(wide, wideOpt);
    const err = await loadTrainingCheckpoint(saved.path, { model: wide, optimizer: wideOpt }).catch((e) => e);
    expect(err).toBeInstanceOf(TrainingCheckpointError);
    expect(err.message).toMatch(/different model config/);
    expect(err.differences).toContain('hidden_size: checkpoint 32, model 48');
    expect(err.differences).toContain('num_experts: checkpoint 4, model 8');
    expect(await snapshot(wide, wideOpt)).toEqual(before);

    // A state file that is not JSON, one of another format, a missing optimizer file.
    const copy = async (name: string, edit: (dir: string) => Promise<void>) => {
      const d = join(root, name);
      await mkdir(d);
      for (const f of await readdir(saved.path)) await writeFile(join(d, f), await readFile(join(saved.path, f)));
      await edit(d);
      return d;
    };
    const other = trainedPair(6);
    const notJson = await copy('a', (d) => writeFile(join(d, 'trainer_state.json'), '{"format": '));
    await expect(loadTrainingCheckpoint(notJson, { model: other.model, optimizer: other.opt })).rejects.toThrow(/trainer_state\.json: not valid JSON/);
    const wrongFormat = await copy('b', (d) => writeFile(join(d, 'trainer_state.json'), '{"format": "x", "version": 9, "step": -1}'));
    await expect(loadTrainingCheckpoint(wrongFormat, { model: other.model, optimizer: other.opt })).rejects.toThrow(/malformed trainer state[\s\S]*format must be 'ring-linear-trainer-state'[\s\S]*step must be an integer/);
    const noOpt = await copy('c', async (d) => {
      const { rm } = await import('node:fs/promises');
      await rm(join(d, 'optimizer.safetensors'));
    });
    await expect(loadTrainingCheckpoint(noOpt, { model: other.model, optimizer: other.opt })).rejects.toThrow(/cannot open optimizer\.safetensors/);
    await expect(loadTrainingCheckpoint(join(root, 'nothing'), { model: other.model, optimizer: other.opt })).rejects.toThrow(/not a training checkpoint/);
    for (const m of [model, wide, other.model]) m.dispose();
    for (const o of [opt, wideOpt, other.opt]) o.dispose();
  });
});

describe('mergeCheckpoints', () => {
  it('equals the float64 weighted average (normalized by the weight sum), in memory and from folders', async () => {
    const shapes = [[3, 5], [1], [2, 1, 3]];
    const inputs = [0, 1, 2].map(() => {
      const m = new Map<string, Tensor>();
      shapes.forEach((s, i) => m.set(`t${i}`, tensor(Float32Array.from(rng.array(s.reduce((a, b) => a * b, 1))), s)));
      m.set('half', tensor(Float32Array.from(rng.array(4)), [4], 'bf16'));
      return m;
    });
    const weights = [0.5, 2, 1.5];
    const merged = await mergeCheckpoints(inputs, weights);
    for (const [name, t] of merged) {
      const vals = await Promise.all(inputs.map((m) => m.get(name)!.data()));
      const ref = vals[0]!.map((_, k) => vals.reduce((a, v, i) => a + (weights[i]! / 4) * v[k]!, 0));
      expect(t.dtype).toBe(inputs[0]!.get(name)!.dtype);
      // f32: rounded once (half an ulp); bf16: half a bf16 ulp.
      closeTo(await t.data(), ref, t.dtype === 'bf16' ? 2 ** -8 : 2 ** -24, 1e-30, name);
    }
    dispose([...merged.values()]);

    // Folders: three perturbed copies of a model, merged to a folder that loads as a model.
    const root = await tempDir();
    const dirs: string[] = [];
    const models = [11, 12, 13].map((s) => {
      manualSeed(s);
      return tinyModel();
    });
    for (const [i, m] of models.entries()) {
      dirs.push(join(root, `ckpt${i}`));
      await saveCheckpoint(m, dirs[i]!);
    }
    const out = join(root, 'merged');
    const w = [1, 1, 2];
    dispose([...(await mergeCheckpoints(dirs, w, { out })).values()]);
    const target = init.skipInit(() => tinyModel());
    await loadCheckpoint(target, out);
    const sds = models.map((m) => m.stateDict());
    for (const [name, t] of target.stateDict()) {
      const vals = sds.map((sd) => sd.get(name)!.dataSync());
      const ref = Array.from(vals[0]!, (_, k) => vals.reduce((a, v, i) => a + (w[i]! / 4) * v[k]!, 0));
      closeTo(t.dataSync(), ref, 2 ** -24, 1e-30, name);
      t.dispose();
    }
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).hidden_size).toBe(32);
    for (const sd of sds) dispose([...sd.values()]);
    for (const m of [...models, target]) m.dispose();
    for (const m of inputs) dispose([...m.values()]);
  });

  it('refuses inputs that do not match and bad weights', async () => {
    const a = new Map([['w', tensor([1, 2, 3])], ['b', tensor([1])]]);
    const b = new Map([['w', tensor([1, 2], [2])], ['c', tensor([1])]]);
    const err = await mergeCheckpoints([a, b], [1, 1]).catch((e) => e);
    expect(err).toBeInstanceOf(TrainingCheckpointError);
    expect(err.message).toMatch(/do not match/);
    expect(err.differences.join('\n')).toMatch(/lacks b[\s\S]*extra c[\s\S]*'w': state dict 0 has \[3\] f32, state dict 1 has \[2\] f32/);
    await expect(mergeCheckpoints([a, a], [1])).rejects.toThrow(/2 checkpoints but 1 weights/);
    await expect(mergeCheckpoints([a, a], [1, -1])).rejects.toThrow(/non-zero sum/);
    await expect(mergeCheckpoints([a], [Number.NaN])).rejects.toThrow(TrainerConfigError);
    await expect(mergeCheckpoints(['/nonexistent/folder'], [1])).rejects.toThrow(/cannot open for merging/);
    dispose([...a.values(), ...b.values()]);
  });
});
