/**
 * Precision: bf16 compute with f32 masters (parameters are the masters rounded to bf16; the run
 * tracks the f32 one), f16 with dynamic loss scaling (an overflowing scale is backed off and its
 * steps skipped without touching the weights), FP8 linear layers (which layers, and a run that
 * tracks f32), and the loss scaler's rule.
 */
import '@ring-linear/backend-cpu';
import { describe, expect, it } from 'vitest';
import { manualSeed } from '@ring-linear/core';
import { Fp8Linear } from '@ring-linear/fp8';
import { ByteTokenizer } from '@ring-linear/models';
import {
  DynamicLossScaler,
  PackedDataset,
  Trainer,
  TrainerConfigError,
  constantSchedule,
  needsLossScaling,
  packDocuments,
  taskDocuments,
  taskExamples,
  type Precision,
  type TrainerOptions,
} from '../src/index.js';
import { tinyModel } from './helpers.js';

const tok = new ByteTokenizer();
const rows = packDocuments(taskDocuments(taskExamples('copy', { count: 120, length: 4, seed: 8 }), tok), { seqLen: 32 });

function run(precision: Precision, extra: Partial<TrainerOptions> = {}): Trainer {
  manualSeed(21);
  return new Trainer({
    model: tinyModel(),
    train: new PackedDataset(rows, { seed: 2 }),
    totalSteps: 12,
    rowsPerMicroBatch: 2,
    schedule: constantSchedule({ peakLr: 1e-2, warmupSteps: 2 }),
    optimizer: { weightDecay: 0 },
    precision,
    progress: false,
    ...extra,
  });
}

/** bf16 rounding (nearest even) of f32 values, by bit manipulation. */
function bf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] = ((u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) & 0xffff0000) >>> 0;
  return f[0]!;
}

describe('mixed precision', () => {
  it('bf16: compute in bf16, f32 masters, parameters equal to the masters rounded; tracks the f32 run', async () => {
    const f32 = run('f32');
    const b = run('bf16');
    const dtypes = new Map(b.model.namedParameters().map(([n, p]) => [n, p.dtype]));
    expect(dtypes.get('model.layers.0.attention.query_key_value.weight')).toBe('bf16');
    expect(dtypes.get('model.layers.1.mlp.experts.2.up_proj.weight')).toBe('bf16');
    // MODEL_SPEC §7: lm_head, the final norm and the router stay f32.
    expect(dtypes.get('lm_head.weight')).toBe('f32');
    expect(dtypes.get('model.norm.weight')).toBe('f32');
    expect(dtypes.get('model.layers.1.mlp.gate.weight')).toBe('f32');
    const mf = await f32.fit();
    const mb = await b.fit();
    b.optimizer.params.forEach(({ name, param }, i) => {
      const master = b.optimizer.master(i);
      expect(master.dtype, name).toBe('f32');
      if (param.dtype === 'bf16') expect(Array.from(param.dataSync()), name).toEqual(Array.from(master.dataSync(), bf16));
      else expect(master, name).toBe(param);
    });
    const last = (m: { loss: number }[]) => m[m.length - 1]!.loss;
    expect(last(mb)).toBeLessThan(mb[0]!.loss * 0.7);
    expect(Math.abs(last(mb) - last(mf)) / last(mf)).toBeLessThan(0.1);
    for (const t of [f32, b]) {
      t.dispose();
      t.model.dispose();
    }
  });

  it('f16: an overflowing loss scale is halved until the gradients are finite; skipped steps leave the weights alone', async () => {
    const t = run('f16', { lossScaler: { initialScale: 2 ** 20, growthInterval: 4 }, totalSteps: 14 });
    expect(t.lossScaler).not.toBeNull();
    const before = t.model.namedParameters().map(([, p]) => Array.from(p.dataSync()));
    const first = await t.trainStep();
    expect(first.skipped).toBe(true);
    expect(first.lossScale).toBe(2 ** 20);
    expect(t.model.namedParameters().map(([, p]) => Array.from(p.dataSync()))).toEqual(before);
    const rest = await t.fit();
    const all = [first, ...rest];
    const skipped = all.filter((m) => m.skipped).length;
    expect(skipped).toBeGreaterThan(1);
    // The scale each step used follows the rule: halve after a skip, double after 4 clean steps.
    let scale = 2 ** 20;
    let cleanRun = 0;
    for (const m of all) {
      expect(m.lossScale).toBe(scale);
      if (m.skipped) {
        scale /= 2;
        cleanRun = 0;
      } else if (++cleanRun === 4) {
        scale *= 2;
        cleanRun = 0;
      }
    }
    expect(t.lossScaler!.skippedSteps).toBe(skipped);
    const clean = all.filter((m) => !m.skipped);
    expect(clean.length).toBeGreaterThan(2);
    expect(Number.isFinite(clean[clean.length - 1]!.loss)).toBe(true);
    expect(clean[clean.length - 1]!.loss).toBeLessThan(all[0]!.loss);
    t.dispose();
    t.model.dispose();
  });

  it('fp8: attention and dense-MLP projections become Fp8Linear on the same master weights; the run tracks f32', async () => {
    const f32 = run('f32');
    const q = run('fp8');
    expect(q.fp8Layers).toEqual([
      'model.layers.0.attention.query_key_value',
      'model.layers.0.attention.dense',
      'model.layers.0.attention.g_proj',
      'model.layers.0.mlp.gate_proj',
      'model.layers.0.mlp.up_proj',
      'model.layers.0.mlp.down_proj',
      'model.layers.1.attention.query_key_value',
      'model.layers.1.attention.dense',
    ]);
    expect(q.model.modules().filter((m) => m instanceof Fp8Linear)).toHaveLength(8);
    expect(q.lossScaler).toBeNull();
    expect(q.model.parameters().every((p) => p.dtype === 'f32')).toBe(true);
    const mf = await f32.fit();
    const mq = await q.fit();
    const last = (m: { loss: number }[]) => m[m.length - 1]!.loss;
    expect(last(mq)).toBeLessThan(mq[0]!.loss * 0.7);
    expect(Math.abs(last(mq) - last(mf)) / last(mf)).toBeLessThan(0.1);
    for (const t of [f32, q]) {
      t.dispose();
      t.model.dispose();
    }
  });
});

describe('DynamicLossScaler', () => {
  it('backs off on overflow, grows after clean steps, round-trips its state', () => {
    const s = new DynamicLossScaler({ initialScale: 1024, growthInterval: 3, minScale: 256 });
    s.update(false);
    expect(s.scale).toBe(512);
    s.update(true);
    s.update(true);
    expect(s.scale).toBe(512);
    s.update(true);
    expect(s.scale).toBe(1024);
    s.update(false);
    s.update(false);
    s.update(false);
    expect(s.scale).toBe(256); // floor
    expect(s.skippedSteps).toBe(4);
    const copy = new DynamicLossScaler().setState(s.state());
    expect(copy.state()).toEqual(s.state());
    expect(() => new DynamicLossScaler({ backoffFactor: 1 })).toThrow(TrainerConfigError);
    expect(() => copy.setState({ scale: -1, cleanSteps: 0, skippedSteps: 0 })).toThrow(/expected \{ scale > 0/);
    expect(needsLossScaling('f16')).toBe(true);
    expect(['f32', 'bf16', 'fp8'].map((p) => needsLossScaling(p as Precision))).toEqual([false, false, false]);
  });
});
