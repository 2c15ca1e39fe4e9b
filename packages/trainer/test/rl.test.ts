/**
 * RL with aligned rollouts on small-number addition (byte-level tokenizer, reward 1 for the exact
 * sum followed by EOS): a tiny hybrid is warm-started by a short supervised run (so some answers
 * are right and groups carry signal), then GRPO raises the expected reward; the train/rollout
 * log-prob gap logged every step stays within the sampler's alignment bound (1e-5).
 *
 * The learning run uses a fixed seed (3): on the CPU backend it is deterministic, and an RL curve
 * from a random seed would make a flaky test. The other checks use fresh seeds.
 */
import '@ring-linear/backend-cpu';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { manualSeed, memory } from '@ring-linear/core';
import { ByteTokenizer } from '@ring-linear/models';
import {
  GRPOTrainer,
  PackedDataset,
  ROLLOUT_LOGPROB_BOUND,
  TaskRandom,
  Trainer,
  TrainerConfigError,
  additionTask,
  constantSchedule,
  packDocuments,
  readMetrics,
  taskDocuments,
  type RLItem,
} from '../src/index.js';
import { SEED, tempDir, tinyConfig, tinyModel } from './helpers.js';

const tok = new ByteTokenizer();
const task = additionTask({ maxOperand: 4 });
const allItems: RLItem[] = [];
for (let a = 0; a <= 4; a++) for (let b = 0; b <= 4; b++) allItems.push({ prompt: `${a}+${b}=`, answer: String(a + b) });

function warmStarted(seed: number) {
  manualSeed(seed);
  const model = tinyModel({ config: tinyConfig({ max_position_embeddings: 64 }) });
  const items = task.prompts(400, new TaskRandom(123));
  const docs = taskDocuments(items.map((i) => ({ prompt: i.prompt as string, answer: i.answer })), tok);
  return { model, docs };
}

describe('addition task', () => {
  it('rewards exactly the sum followed by EOS', () => {
    const item = { prompt: '3+4=', answer: '7' };
    expect(task.reward(item, { text: '7', tokens: [55, 257], finishReason: 'eos' })).toBe(1);
    expect(task.reward(item, { text: '7', tokens: [55], finishReason: 'length' })).toBe(0);
    expect(task.reward(item, { text: '77', tokens: [55, 55, 257], finishReason: 'eos' })).toBe(0);
    const drawn = task.prompts(50, new TaskRandom(SEED));
    for (const it of drawn) {
      const [a, b] = (it.prompt as string).slice(0, -1).split('+').map(Number);
      expect(a! + b!).toBe(Number(it.answer));
      expect(a).toBeLessThanOrEqual(4);
    }
    expect(task.prompts(5, new TaskRandom(SEED))).toEqual(drawn.slice(0, 5));
  });
});

describe('GRPO with the sampler', () => {
  it('the mean reward rises over a short run, and the log-prob gap stays within the alignment bound', async () => {
    const { model, docs } = warmStarted(3);
    const sft = new Trainer({
      model,
      train: new PackedDataset(packDocuments(docs, { seqLen: 64 }), { seed: 1 }),
      totalSteps: 40,
      rowsPerMicroBatch: 2,
      schedule: constantSchedule({ peakLr: 1e-2, warmupSteps: 5 }),
      optimizer: { weightDecay: 0 },
      progress: false,
    });
    await sft.fit();
    sft.dispose();
    const rl = new GRPOTrainer({ model, tokenizer: tok, task, totalSteps: 40, promptsPerStep: 8, groupSize: 8, maxTokens: 4, optimizer: { lr: 3e-3 }, seed: 5 });
    // Expected reward over all 25 prompts, 8 samples each, same seed before and after.
    const before = await rl.evaluate(allItems, { samples: 8, seed: 77 });
    const steps = await rl.fit();
    const after = await rl.evaluate(allItems, { samples: 8, seed: 77 });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(steps.slice(0, 10).map((m) => m.meanReward));
    const last = mean(steps.slice(-10).map((m) => m.meanReward));
    const worstGap = Math.max(...steps.map((m) => m.logprobGapMax));
    console.log(
      `[rl] expected reward ${before.toFixed(3)} -> ${after.toFixed(3)}; per-step mean reward first 10 ${first.toFixed(3)}, last 10 ${last.toFixed(3)}; ` +
        `max |log pi_train - log pi_rollout| ${worstGap.toExponential(2)} (bound ${ROLLOUT_LOGPROB_BOUND})`,
    );
    expect(after).toBeGreaterThanOrEqual(before + 0.1);
    expect(last).toBeGreaterThan(first);
    expect(steps.every((m) => m.gapWithinBound && m.logprobGapMax <= ROLLOUT_LOGPROB_BOUND)).toBe(true);
    expect(steps.every((m) => m.logprobGapMean <= m.logprobGapMax)).toBe(true);
    rl.dispose();
    model.dispose();
  });

  it('advantages are group-normalized rewards; the first-epoch loss is -sum(A_t)/N; a second epoch clips', async () => {
    const { model } = warmStarted(SEED);
    // An untrained model: reward completions whose first token is even, so groups carry signal.
    const parity = { prompts: task.prompts, reward: (_: RLItem, c: { tokens: readonly number[] }) => (c.tokens[0]! % 2 === 0 ? 1 : 0) };
    const opts = { model, tokenizer: tok, task: parity, totalSteps: 1, promptsPerStep: 3, groupSize: 4, maxTokens: 3 };
    const one = new GRPOTrainer({ ...opts, seed: 12 });
    const m1 = await one.trainStep();
    const rs = one.lastRollouts;
    expect(rs).toHaveLength(12);
    let sumA = 0;
    let n = 0;
    for (let g = 0; g < 3; g++) {
      const grp = rs.slice(4 * g, 4 * g + 4);
      const mu = grp.reduce((a, r) => a + r.reward, 0) / 4;
      const sd = Math.sqrt(grp.reduce((a, r) => a + (r.reward - mu) ** 2, 0) / 4);
      for (const r of grp) {
        expect(r.group).toBe(g);
        expect(r.reward).toBe(r.result.tokens[0]! % 2 === 0 ? 1 : 0);
        expect(r.advantage).toBeCloseTo(sd === 0 ? 0 : (r.reward - mu) / (sd + 1e-6), 12);
        sumA += r.advantage * r.result.tokens.length;
        n += r.result.tokens.length;
      }
    }
    expect(m1.completionTokens).toBe(n);
    expect(m1.activeGroups).toBeGreaterThan(0);
    expect(m1.logprobGapMax).toBeLessThanOrEqual(ROLLOUT_LOGPROB_BOUND);
    // ratio = exp(gap), |gap| <= 1e-5: the clipped surrogate is -sum_t A_t / N to about 1e-5 |A|.
    expect(Math.abs(m1.loss - -sumA / n)).toBeLessThan(1e-4);
    expect(m1.clipFraction).toBe(0);
    // Two epochs with a large learning rate: the second epoch's ratios leave the clip range. More and
    // larger groups than above: with 3 groups of 4 every group drew one parity for some seeds
    // (TRAINER_SEED=525350635), leaving no advantage to clip.
    const two = new GRPOTrainer({ ...opts, promptsPerStep: 4, groupSize: 8, seed: 13, ppoEpochs: 2, optimizer: { lr: 0.05 } });
    const m2 = await two.trainStep();
    expect(m2.activeGroups).toBeGreaterThan(0);
    expect(m2.clipFraction).toBeGreaterThan(0);
    for (const t of [one, two]) t.dispose();
    model.dispose();
  });

  it('runs at flat memory and rejects bad settings', async () => {
    const { model } = warmStarted(SEED);
    const metricsPath = join(await tempDir(), 'rl.jsonl');
    const rl = new GRPOTrainer({ model, tokenizer: tok, task, totalSteps: 6, promptsPerStep: 2, groupSize: 2, maxTokens: 2, seed: 1, metrics: { path: metricsPath } });
    await rl.trainStep();
    const start = memory();
    await rl.fit();
    const end = memory();
    expect(end.tensors).toBe(start.tensors);
    expect(end.bytes).toBe(start.bytes);
    // Every fitted step is logged with its reward and train/rollout gap.
    const records = await readMetrics(metricsPath);
    expect(records.map((r) => r.step)).toEqual([2, 3, 4, 5, 6]);
    for (const r of records) {
      expect(r).toMatchObject({ meanReward: expect.any(Number), logprobGapMean: expect.any(Number), logprobGapMax: expect.any(Number), gapWithinBound: true });
    }
    const base = { model, tokenizer: tok, task, totalSteps: 1 };
    expect(() => new GRPOTrainer({ ...base, groupSize: 1 })).toThrow(/'groupSize' must be an integer >= 2, got 1/);
    expect(() => new GRPOTrainer({ ...base, clipLow: 1.5 })).toThrow(/'clipLow' must be in \(0, 1\)/);
    expect(() => new GRPOTrainer({ ...base, maxTokens: 64 })).toThrow(/leaves no room for a prompt/);
    expect(() => new GRPOTrainer({ ...base, task: {} as never })).toThrow(TrainerConfigError);
    await expect(rl.evaluate(allItems, { samples: -1 })).rejects.toThrow(/samples must be an integer >= 0/);
    rl.dispose();
    model.dispose();
  });
});
