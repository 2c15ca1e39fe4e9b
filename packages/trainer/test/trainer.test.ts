/**
 * The Trainer on the tiny hybrid LM: resume equals the uninterrupted run bit for bit (f32, and
 * bf16 with accumulation and MoE balancing), flat memory over many steps, accumulation equal to
 * one big micro-batch, metrics JSONL (truncated on resume) and the SVG plot, and bad input.
 */
import '@ring-linear/backend-cpu';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Embedding, Linear, Module, crossEntropy, manualSeed, memory, reshape, type Tensor } from '@ring-linear/core';
import { ByteTokenizer } from '@ring-linear/models';
import {
  DataError,
  PackedDataset,
  Trainer,
  TrainerConfigError,
  TrainingCheckpointError,
  constantSchedule,
  cosineSchedule,
  packDocuments,
  readMetrics,
  taskDocuments,
  taskExamples,
  writeLossPlot,
  type Precision,
  type StepMetrics,
  type TrainerOptions,
} from '../src/index.js';
import { tempDir, tinyConfig, tinyModel } from './helpers.js';

const tok = new ByteTokenizer();
const docs = taskDocuments(taskExamples('copy', { count: 80, length: 4, seed: 3 }), tok);
const rows = packDocuments(docs, { seqLen: 32 });

function makeTrainer(seed: number, extra: Partial<TrainerOptions> = {}): Trainer {
  manualSeed(seed);
  const model = tinyModel();
  return new Trainer({
    model,
    train: new PackedDataset(rows, { seed: 9 }),
    totalSteps: 6,
    rowsPerMicroBatch: 2,
    schedule: cosineSchedule({ peakLr: 5e-3, warmupSteps: 2, totalSteps: 6 }),
    optimizer: { weightDecay: 0.1 },
    progress: false,
    ...extra,
  });
}

async function paramBytes(t: Trainer): Promise<number[][]> {
  const out: number[][] = [];
  for (const [, p] of t.model.namedParameters()) out.push(Array.from(await p.bytes()));
  return out;
}

describe('exact resume', () => {
  for (const precision of ['f32', 'bf16'] as Precision[]) {
    it(`${precision}: the resumed loss curve equals the uninterrupted one step for step, bit for bit`, async () => {
      const root = await tempDir();
      const extra: Partial<TrainerOptions> = precision === 'bf16' ? { precision, gradAccumulation: 2, rowsPerMicroBatch: 1 } : { precision };
      const a = makeTrainer(1, { ...extra, checkpoint: { dir: join(root, 'a'), every: 3, keepLast: 0 } });
      const full = await a.fit();
      expect(full.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
      // The run learns something (the loss is not stuck), and MoE loads were logged.
      expect(full[5]!.loss).toBeLessThan(full[0]!.loss);
      expect(full[0]!.moe?.[0]?.layer).toBe('model.layers.1.mlp');

      // A different initialization, then resume from step 3: everything comes from the checkpoint.
      const b = makeTrainer(2, extra);
      const state = await b.resume(join(root, 'a', 'step-00000003'));
      expect(state?.step).toBe(3);
      expect(b.step).toBe(3);
      const rest = await b.fit();
      expect(rest.map((m) => m.step)).toEqual([4, 5, 6]);
      for (let i = 0; i < 3; i++) {
        expect(rest[i]!.loss, `loss at step ${i + 4}`).toBe(full[i + 3]!.loss);
        expect(rest[i]!.gradNorm, `grad norm at step ${i + 4}`).toBe(full[i + 3]!.gradNorm);
        expect(rest[i]!.lr).toBe(full[i + 3]!.lr);
      }
      expect(await paramBytes(b)).toEqual(await paramBytes(a));
      // Resuming from the root picks its newest checkpoint (step 6: nothing left to do).
      const c = makeTrainer(3, extra);
      expect((await c.resume(join(root, 'a')))?.step).toBe(6);
      expect(await c.fit()).toEqual([]);
      for (const t of [a, b, c]) {
        t.dispose();
        t.model.dispose();
      }
    });
  }

  it('refuses to resume a different run: precision, schedule, data, model config', async () => {
    const root = await tempDir();
    const a = makeTrainer(1, { totalSteps: 2, checkpoint: { dir: root, every: 2 } });
    await a.fit();
    const ckpt = join(root, 'step-00000002');
    const expectRefusal = async (t: Trainer, re: RegExp) => {
      const err = await t.resume(ckpt).catch((e) => e);
      expect(err).toBeInstanceOf(TrainingCheckpointError);
      expect(err.message).toMatch(re);
      t.dispose();
      t.model.dispose();
    };
    await expectRefusal(makeTrainer(2, { precision: 'bf16' }), /precision: checkpoint f32, trainer bf16/);
    await expectRefusal(makeTrainer(2, { schedule: cosineSchedule({ peakLr: 1e-3, totalSteps: 6 }) }), /schedule: checkpoint/);
    const otherRows = packDocuments(docs.slice(1), { seqLen: 32 });
    await expectRefusal(makeTrainer(2, { train: new PackedDataset(otherRows, { seed: 9 }) }), /data: checkpoint \d+ rows of 32 \(fingerprint/);
    manualSeed(2);
    const wide = new Trainer({
      model: tinyModel({ config: tinyConfig({ hidden_size: 48 }) }),
      train: new PackedDataset(rows, { seed: 9 }),
      totalSteps: 6,
      rowsPerMicroBatch: 2,
      schedule: cosineSchedule({ peakLr: 5e-3, warmupSteps: 2, totalSteps: 6 }),
      progress: false,
    });
    await expectRefusal(wide, /different model config[\s\S]*hidden_size: checkpoint 32, model 48/);
    // An empty checkpoint root: nothing to resume.
    const fresh = makeTrainer(2);
    expect(await fresh.resume(await tempDir())).toBeNull();
    for (const t of [a, fresh]) {
      t.dispose();
      t.model.dispose();
    }
  });
});

describe('training loop', () => {
  it('runs at flat memory over many steps', async () => {
    const t = makeTrainer(4, { totalSteps: 24, gradAccumulation: 2, rowsPerMicroBatch: 1 });
    await t.fit({ steps: 3 });
    const start = memory();
    await t.fit();
    const end = memory();
    expect(end.tensors).toBe(start.tensors);
    expect(end.bytes).toBe(start.bytes);
    t.dispose();
    t.model.dispose();
  });

  it('gradient accumulation over micro-batches equals one micro-batch of all rows', async () => {
    // With eps 1 and lr 1, Adam's first update g / (|g| + 1) is nearly g itself: the parameters then
    // compare the gradients (with the default eps, the update is sign(g) for every element, which
    // turns the float rounding of cancelling tiny gradients into full-size differences).
    const same = { totalSteps: 1, maxGradNorm: null, optimizer: { eps: 1, weightDecay: 0 }, schedule: constantSchedule({ peakLr: 1 }) };
    const one = makeTrainer(5, { ...same, rowsPerMicroBatch: 4 });
    const four = makeTrainer(5, { ...same, rowsPerMicroBatch: 1, gradAccumulation: 4 });
    const [m1] = await one.fit();
    const [m4] = await four.fit();
    expect(m4!.tokens).toBe(m1!.tokens);
    expect(Math.abs(m4!.loss - m1!.loss)).toBeLessThan(1e-5 * m1!.loss);
    expect(Math.abs(m4!.gradNorm - m1!.gradNorm)).toBeLessThan(1e-4 * m1!.gradNorm);
    const pa = one.model.namedParameters();
    const pb = four.model.namedParameters();
    pa.forEach(([n, p], i) => {
      const a = p.dataSync();
      const b = pb[i]![1].dataSync();
      let worst = 0;
      for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k]! - b[k]!));
      expect(worst, n).toBeLessThan(1e-6);
    });
    for (const t of [one, four]) {
      t.dispose();
      t.model.dispose();
    }
  });

  it('writes metrics as JSONL (truncated on resume), evaluates, and plots the loss curve as SVG', async () => {
    const root = await tempDir();
    const metricsPath = join(root, 'metrics.jsonl');
    const evalRows = packDocuments(taskDocuments(taskExamples('copy', { count: 10, length: 4, seed: 99 }), tok), { seqLen: 32 });
    const opts = { metrics: { path: metricsPath }, eval: new PackedDataset(evalRows, { shuffle: false }), evalEvery: 3, checkpoint: { dir: join(root, 'ckpt'), every: 3 } };
    const a = makeTrainer(6, opts);
    await a.fit();
    const lines = (await readFile(metricsPath, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as StepMetrics);
    expect(lines.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(lines[2]!.evalLoss).toBeGreaterThan(0);
    expect(lines[5]!.evalLoss).toBeLessThan(lines[2]!.evalLoss!);
    expect(lines[0]).toMatchObject({ step: 1, tokens: expect.any(Number), tokensSeen: lines[0]!.tokens });
    expect(lines[0]!.moe![0]!.maxOverMean).toBeGreaterThanOrEqual(1);
    // The evaluation equals an independent mean over the held-out rows.
    const ev = await a.evaluate();
    expect(ev.tokens).toBe(evalRows.countedTokens);
    expect(ev.loss).toBeCloseTo(lines[5]!.evalLoss!, 6);

    // Resume from step 3 with the same metrics file: steps 4..6 are redone, not duplicated.
    const b = makeTrainer(7, opts);
    await b.resume(join(root, 'ckpt', 'step-00000003'));
    await b.fit();
    const after = await readMetrics(metricsPath);
    expect(after.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(after.map((r) => r.loss)).toEqual(lines.map((l) => l.loss));

    const svgPath = join(root, 'plots', 'loss.svg');
    const svg = await writeLossPlot(metricsPath, svgPath);
    expect(await readFile(svgPath, 'utf8')).toBe(svg);
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg.match(/<polyline/g)!.length).toBeGreaterThanOrEqual(3); // loss raw + smoothed, eval
    expect(svg).toContain('>evalLoss<');
    for (const t of [a, b]) {
      t.dispose();
      t.model.dispose();
    }
  });

  it('prints plain progress lines when the stream is not a TTY', async () => {
    const out: string[] = [];
    const t = makeTrainer(8, { totalSteps: 4, progress: { stream: { write: (s: string) => out.push(s), isTTY: false }, every: 2 } });
    await t.fit();
    const text = out.join('');
    expect(text.split('\n').filter(Boolean)).toHaveLength(2);
    expect(text).toMatch(/^train step 2\/4 \| loss \d+\.\d{4} \| lr [\d.e-]+ \| \d+ tok\/s \| eta \d+s\ntrain step 4\/4/);
    t.dispose();
    t.model.dispose();
  });
});

describe('other models and the MoE auxiliary loss', () => {
  it('a core-nn model with its own loss function trains, checkpoints and resumes exactly', async () => {
    class Bigram extends Module {
      readonly embed = new Embedding(259, 16);
      readonly head = new Linear(16, 259, { bias: true });
      forward(ids: Tensor): Tensor {
        return this.head.forward(this.embed.forward(ids));
      }
    }
    const lossFn = (m: Module, b: { inputIds: Tensor; targets: Tensor }) => {
      const logits = (m as Bigram).forward(b.inputIds);
      return { loss: crossEntropy(reshape(logits, [-1, 259]), reshape(b.targets, [-1]), { reduction: 'sum' }) };
    };
    const root = await tempDir();
    const make = (seed: number) => {
      manualSeed(seed);
      return new Trainer({ model: new Bigram(), lossFn, train: new PackedDataset(rows, { seed: 4 }), totalSteps: 8, rowsPerMicroBatch: 2, checkpoint: { dir: root, every: 4, keepLast: 0 }, optimizer: { lr: 0.05 }, progress: false });
    };
    const a = make(1);
    const full = await a.fit();
    expect(full[7]!.loss).toBeLessThan(full[0]!.loss);
    // The bias gets no weight decay (NO_DECAY), the weights do.
    expect(a.optimizer.params.map((p) => [p.name, p.group.weightDecay])).toEqual([
      ['embed.weight', 0],
      ['head.weight', 0.01],
      ['head.bias', 0],
    ]);
    const b = make(2);
    await b.resume(join(root, 'step-00000004'));
    const rest = await b.fit();
    expect(rest.map((m) => m.loss)).toEqual(full.slice(4).map((m) => m.loss));
    for (const t of [a, b]) {
      t.dispose();
      t.model.dispose();
    }
  });

  it('adds the MoE sequence-wise auxiliary loss when the model computes one, and logs it', async () => {
    manualSeed(3);
    const model = tinyModel({ seqAuxLossAlpha: 0.01 });
    const t = new Trainer({ model, train: new PackedDataset(rows, { seed: 9 }), totalSteps: 2, rowsPerMicroBatch: 1, gradAccumulation: 2, progress: false });
    const [m] = await t.fit();
    expect(m!.auxLoss).toBeGreaterThan(0);
    // DeepSeek-V3's balance loss is alpha * E * sum_i f_i P_i >= alpha (equality at uniform routing); small here.
    expect(m!.auxLoss!).toBeGreaterThanOrEqual(0.01 * (1 - 1e-6));
    expect(m!.auxLoss!).toBeLessThan(0.01 * 4);
    const off = new Trainer({ model, train: new PackedDataset(rows, { seed: 9 }), totalSteps: 1, moe: { auxLoss: false }, progress: false });
    const [m2] = await off.fit();
    expect(m2!.auxLoss).toBeUndefined();
    for (const x of [t, off]) x.dispose();
    model.dispose();
  });
});

describe('bad input', () => {
  it('sequence length above the model limit, tokens outside the vocabulary, bad settings', () => {
    manualSeed(1);
    const model = tinyModel();
    const long = packDocuments(docs, { seqLen: 300 });
    expect(() => new Trainer({ model, train: new PackedDataset(long), totalSteps: 1, progress: false })).toThrow(
      /the train data's sequence length 300 exceeds the model's limit \(max_position_embeddings 256\)/,
    );
    const big = packDocuments([Int32Array.of(1, 2, 400)], { seqLen: 4 });
    expect(() => new Trainer({ model, train: new PackedDataset(big), totalSteps: 1, progress: false })).toThrow(DataError);
    expect(() => new Trainer({ model, train: new PackedDataset(rows), totalSteps: 0 })).toThrow(/'totalSteps' must be an integer >= 1, got 0/);
    expect(() => new Trainer({ model, train: new PackedDataset(rows), totalSteps: 1, maxGradNorm: -1 })).toThrow(TrainerConfigError);
    expect(() => new Trainer({ model, train: new PackedDataset(rows), totalSteps: 1, precision: 'f64' as Precision })).toThrow(/precision' must be one of f32, bf16, f16, fp8/);
    expect(() => new Trainer({ model, train: rows as unknown as PackedDataset, totalSteps: 1 })).toThrow(/must be a PackedDataset/);
    class Plain extends Module {
      readonly proj = new Linear(2, 2);
      forward(x: Tensor) {
        return this.proj.forward(x);
      }
    }
    expect(() => new Trainer({ model: new Plain(), train: new PackedDataset(rows), totalSteps: 1 })).toThrow(/a Plain needs options\.lossFn/);
    model.dispose();
  });
});
