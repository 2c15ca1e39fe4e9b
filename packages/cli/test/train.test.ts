// `train` on a config.json of a micro hybrid (fast): checkpoints every few steps, train_args.json,
// --resume continuing with the saved settings and landing on the same losses as an uninterrupted
// run, bf16 and fp8 precision, text data files; then `merge` of the step folders, checked against
// a float64 average computed here, and loaded in `generate`.
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { configToJson, createConfig, loadSafetensors, nodeFileSource } from '@ring-linear/models';
import { demoModelConfig } from '../src/index.js';
import { cli, tempDir } from './helpers.js';

/** The demo's layer schedule at hidden 32: a few milliseconds a step. */
function microConfig(): Record<string, unknown> {
  return configToJson(
    createConfig({
      ...configToJson(demoModelConfig()),
      num_hidden_layers: 2,
      layer_types: ['linear', 'softmax'],
      mlp_types: ['dense', 'moe'],
      hidden_size: 32,
      head_dim: 16,
      intermediate_size: 64,
      moe_intermediate_size: 16,
      moe_shared_expert_intermediate_size: 16,
      max_position_embeddings: 128,
    }),
  );
}

/** Every tensor of a safetensors file (the file is closed again). */
async function readTensors(file: string) {
  const source = await nodeFileSource(file);
  try {
    return await loadSafetensors(source);
  } finally {
    await source.close();
  }
}

const COMMON = ['--demo-corpus', '--config', 'micro.json', '--batch', '2', '--seq-len', '32', '--schedule', 'constant', '--lr', '0.003', '--warmup', '0', '--quiet'];

describe('ring-linear train', () => {
  let dir = '';

  beforeAll(async () => {
    dir = await tempDir();
    await writeFile(join(dir, 'micro.json'), JSON.stringify(microConfig()));
  });

  it('writes step checkpoints, metrics, a plot and train_args.json', async () => {
    const r = await cli(['train', ...COMMON, '--steps', '6', '--save-every', '2', '--keep', '0', '--out', 'run', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const j = r.json();
    expect(j.stepsRun).toBe(6);
    expect(j.resumedFromStep).toBeNull();
    expect((await readdir(join(dir, 'run'))).sort()).toEqual(['loss.svg', 'metrics.jsonl', 'step-00000002', 'step-00000004', 'step-00000006', 'train_args.json']);
    expect(j.checkpoint).toBe(join(dir, 'run', 'step-00000006'));
    const args = JSON.parse(await readFile(join(dir, 'run', 'train_args.json'), 'utf8'));
    expect(args).toMatchObject({ steps: 6, batch: 2, seqLen: 32, lr: 0.003, schedule: 'constant', precision: 'f32', demoCorpus: true, saveEvery: 2, keep: 0 });
    expect(args.config.hidden_size).toBe(32);
    const metrics = (await readFile(join(dir, 'run', 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(metrics.at(-1).evalLoss).toBeGreaterThan(0);
  }, 120_000);

  it('--resume continues with the saved settings and computes what an uninterrupted run computes', async () => {
    const resumed = await cli(['train', '--resume', '--out', 'run', '--steps', '9', '--json'], { cwd: dir });
    expect(resumed.code, resumed.stderr).toBe(0);
    const j = resumed.json();
    expect(j.resumedFromStep).toBe(6);
    expect(j.stepsRun).toBe(3);
    const straight = await cli(['train', ...COMMON, '--steps', '9', '--save-every', '2', '--keep', '0', '--out', 'straight', '--json'], { cwd: dir });
    expect(straight.code, straight.stderr).toBe(0);
    const read = async (run: string) => (await readFile(join(dir, run, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    const a = await read('run');
    const b = await read('straight');
    expect(a.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Exact resume on the CPU backend: the same bits.
    expect(a.map((m) => m.loss)).toEqual(b.map((m) => m.loss));
    // Already at the last step: nothing to do, said so.
    const again = await cli(['train', '--resume', '--out', 'run', '--steps', '9'], { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('nothing to do: the run is already at step 9');
    // A resume on other data is refused with what differs.
    const other = await cli(['train', '--resume', '--out', 'run', '--steps', '12', '--seq-len', '16'], { cwd: dir });
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/does not continue this run[\s\S]*data/);
    const none = await cli(['train', '--resume', '--out', 'micro.json'], { cwd: dir });
    expect(none.code).toBe(1);
  }, 180_000);

  it('bf16 and fp8 precision train and their checkpoints load in generate', async () => {
    for (const precision of ['bf16', 'fp8']) {
      const out = `run-${precision}`;
      const r = await cli(['train', ...COMMON, '--steps', '3', '--precision', precision, '--out', out, '--json'], { cwd: dir });
      expect(r.code, `${precision}: ${r.stderr}`).toBe(0);
      const j = r.json();
      expect(j.loss.last, precision).toBeLessThan(j.loss.first);
      const g = await cli(['generate', out, 'One day', '--max-tokens', '4', '--seed', '1', '--json'], { cwd: dir });
      expect(g.code, g.stderr).toBe(0);
      expect(g.json().results[0].tokens).toHaveLength(4);
    }
  }, 180_000);

  it('text data files, split at a separator, with a text progress and summary', async () => {
    const text = Array.from({ length: 40 }, (_, i) => `story ${i}: the cat sat on the mat and the dog ran to the park.`).join('\n---\n');
    await writeFile(join(dir, 'stories.txt'), text);
    const r = await cli(['train', 'stories.txt', '--separator', '\n---\n', '--config', 'micro.json', '--steps', '4', '--batch', '2', '--seq-len', '32', '--out', 'txt-run'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('training ');
    expect(r.stdout).toContain('data: stories.txt: 40 documents, 1 held out');
    expect(r.stdout).toMatch(/loss \d\.\d{4} -> \d\.\d{4}, held-out loss \d\.\d{4} \(4 steps/);
    expect(r.stdout).toContain('checkpoint  txt-run/step-00000004');
    expect(r.stdout).toContain('loss plot   txt-run/loss.svg');
    expect(r.stderr).toContain('train step 4/4');
  }, 120_000);
});

describe('ring-linear merge', () => {
  it('averages the newest step folders of a run (uniform and weighted) and the result loads', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'micro.json'), JSON.stringify(microConfig()));
    const t = await cli(['train', ...COMMON, '--steps', '6', '--save-every', '2', '--keep', '0', '--eval-fraction', '0', '--out', 'run'], { cwd: dir });
    expect(t.code, t.stderr).toBe(0);
    const steps = ['step-00000002', 'step-00000004', 'step-00000006'].map((s) => join(dir, 'run', s));
    const inputs = await Promise.all(steps.map((s) => readTensors(join(s, 'model.safetensors'))));

    const check = async (out: string, weights: number[]) => {
      const merged = await readTensors(join(dir, out, 'model.safetensors'));
      expect([...merged.keys()].sort()).toEqual([...inputs[0]!.keys()].sort());
      const total = weights.reduce((a, b) => a + b, 0);
      for (const [name, m] of merged) {
        const got = (await m.data()) as Float32Array;
        const vals = await Promise.all(inputs.map((i) => i.get(name)!.data() as Promise<Float32Array>));
        for (let k = 0; k < got.length; k++) {
          let acc = 0;
          for (let i = 0; i < vals.length; i++) acc += (weights[i]! / total) * vals[i]![k]!;
          if (got[k] !== Math.fround(acc)) throw new Error(`${out} ${name}[${k}]: ${got[k]} != ${Math.fround(acc)}`);
        }
      }
      expect(JSON.parse(await readFile(join(dir, out, 'config.json'), 'utf8')).hidden_size).toBe(32);
      const g = await cli(['generate', out, 'Then', '--max-tokens', '3', '--temperature', '0', '--json'], { cwd: dir });
      expect(g.code, g.stderr).toBe(0);
    };

    const uniform = await cli(['merge', 'run', '--last', '3', '--out', 'merged', '--json'], { cwd: dir });
    expect(uniform.code, uniform.stderr).toBe(0);
    expect(uniform.json().inputs).toEqual(steps);
    for (const w of uniform.json().weights) expect(w).toBeCloseTo(1 / 3, 12);
    await check('merged', [1, 1, 1]);

    const weighted = await cli(['merge', ...steps, '--weights', '1,2,5', '--out', 'weighted'], { cwd: dir });
    expect(weighted.code, weighted.stderr).toBe(0);
    expect(weighted.stdout).toContain('merged 3 checkpoints');
    expect(weighted.stdout).toContain('0.6250  run/step-00000006');
    await check('weighted', [1, 2, 5]);

    // --last larger than the run: says how many there are.
    const tooMany = await cli(['merge', 'run', '--last', '5', '--out', 'x'], { cwd: dir });
    expect(tooMany.code).toBe(1);
    expect(tooMany.stderr).toContain('--last 5 but the run has 3 step folders (2, 4, 6)');
  }, 180_000);
});
