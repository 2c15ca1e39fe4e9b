/**
 * Prefill + decode through the caches against the trainer-side forward (the model's full-sequence
 * forward without caches, as the trainer runs it): logits at every position, greedy = argmax of
 * full forwards, and the training-inference alignment of the sampled tokens' log-probs
 * (MODEL_SPEC §7). CPU backend, f32.
 *
 * Tolerances (CPU f32): logits of incremental decode vs the full forward max |diff| <= 1e-4
 * (different but equivalent summation orders: recurrent lightning step vs chunked kernel, KV-cache
 * attention vs one causal pass; measured ~1e-6); sampled tokens' log-probs <= 1e-5 (the bound).
 */
import { describe, expect, it } from 'vitest';
import { dispose, logSoftmax, tensor, type Tensor } from '@ring-linear/core';
import type { RingLinearForCausalLM } from '@ring-linear/models';
import { DecodeSession, Sampler } from '../src/index.js';
import { newSeed, randomIds, rng, tinyModel } from './helpers.js';

const LOGITS_TOL = 1e-4;
const LOGPROB_TOL = 1e-5;

/** The trainer-side forward: logits [B, T, V] of whole sequences, no cache. */
function fullLogits(model: RingLinearForCausalLM, rows: number[][]): Float32Array {
  const T = rows[0]!.length;
  const ids = tensor(Int32Array.from(rows.flat()), [rows.length, T], 'i32');
  const out = model.forward(ids).logits!;
  const v = out.dataSync() as Float32Array;
  dispose([ids, out]);
  return v;
}

/** The trainer-side log-probs: log-softmax of the full forward's logits (same op as training). */
function fullLogprobs(model: RingLinearForCausalLM, row: number[]): Float32Array {
  const ids = tensor(Int32Array.from(row), [1, row.length], 'i32');
  const logits = model.forward(ids).logits!;
  const lp = logSoftmax(logits, -1);
  const v = lp.dataSync() as Float32Array;
  dispose([ids, logits, lp]);
  return v;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const take = (t: Tensor) => {
  const v = t.dataSync() as Float32Array;
  t.dispose();
  return v;
};

describe('incremental decode = full-sequence forward', () => {
  const seed = newSeed('decode');
  const r = rng(seed);
  const model = tinyModel(seed);
  const V = model.config.vocab_size;

  it('logits at every position: token by token, prefill + steps, segmented prefill, batch of 2', () => {
    const T = 37;
    const rows = [randomIds(r, T), randomIds(r, T)];
    const full = fullLogits(model, rows);
    const fullRow = (b: number, t: number) => full.subarray((b * T + t) * V, (b * T + t + 1) * V);
    let worst = 0;

    // (a) one sequence, every position through a decode step (first token as a 1-token prefill).
    {
      const s = new DecodeSession(model, 1);
      worst = Math.max(worst, maxAbsDiff(take(s.prefill([rows[0]!.slice(0, 1)])), fullRow(0, 0)));
      for (let t = 1; t < T; t++) worst = Math.max(worst, maxAbsDiff(take(s.step([rows[0]![t]!])), fullRow(0, t)));
      expect(s.length).toBe(T);
      s.dispose();
    }
    // (b) batch of 2: a 20-token prefill (chunked kernel, all logits) then decode steps.
    // (c) the same with the prefill split in segments of 9 (chunked kernel from a carried state).
    for (const chunk of [512, 9]) {
      const P = 20;
      const s = new DecodeSession(model, 2, { prefillChunkSize: chunk });
      const pre = take(s.prefill(rows.map((x) => x.slice(0, P)), { logits: 'all' }));
      for (let b = 0; b < 2; b++) {
        for (let t = 0; t < P; t++) worst = Math.max(worst, maxAbsDiff(pre.subarray((b * P + t) * V, (b * P + t + 1) * V), fullRow(b, t)));
      }
      for (let t = P; t < T; t++) {
        const step = take(s.step(rows.map((x) => x[t]!)));
        for (let b = 0; b < 2; b++) worst = Math.max(worst, maxAbsDiff(step.subarray(b * V, (b + 1) * V), fullRow(b, t)));
      }
      s.dispose();
    }
    console.log(`[decode] max |incremental - full| logits over ${T} positions: ${worst.toExponential(3)} (tolerance ${LOGITS_TOL})`);
    expect(worst).toBeLessThanOrEqual(LOGITS_TOL);
    expect(worst).toBeGreaterThanOrEqual(0);
  });

  it('greedy generation equals the argmax of full forwards at every step', async () => {
    const prompt = randomIds(r, 11);
    const sampler = new Sampler(model);
    const res = await sampler.generate(prompt, { temperature: 0, maxTokens: 24, ignoreEos: true });
    expect(res.tokens.length).toBe(24);
    const seq = [...prompt, ...res.tokens];
    const full = fullLogits(model, [seq.slice(0, -1)]);
    for (let i = 0; i < res.tokens.length; i++) {
      const row = full.subarray((prompt.length - 1 + i) * V, (prompt.length + i) * V);
      let best = 0;
      for (let v = 1; v < V; v++) if (row[v]! > row[best]!) best = v;
      expect(res.tokens[i]).toBe(best);
    }
  });
});

describe('training-inference alignment (MODEL_SPEC §7)', () => {
  const seed = newSeed('alignment');
  const r = rng(seed);
  const model = tinyModel(seed);
  const V = model.config.vocab_size;

  it("sampled tokens' log-probs equal the trainer forward's log-softmax (max |diff| <= 1e-5), top alternatives too", async () => {
    // Prompts of three lengths (two share one, so they decode as a batched group), sampled with
    // filters and penalties: the reported log-probs are under the UNMODIFIED distribution.
    const prompts = [randomIds(r, 5), randomIds(r, 13), randomIds(r, 13), randomIds(r, 2)];
    const sampler = new Sampler(model);
    const results = await sampler.generateBatch(prompts, {
      temperature: 0.9,
      topK: 40,
      topP: 0.95,
      minP: 0.01,
      repetitionPenalty: 1.1,
      presencePenalty: 0.2,
      frequencyPenalty: 0.1,
      maxTokens: 20,
      ignoreEos: true,
      topLogprobs: 3,
      seed: BigInt(seed),
    });
    let worst = 0;
    let count = 0;
    for (const res of results) {
      const p = res.promptTokens.length;
      const seq = [...res.promptTokens, ...res.tokens];
      const lp = fullLogprobs(model, seq.slice(0, -1));
      res.tokens.forEach((tok, i) => {
        const row = lp.subarray((p - 1 + i) * V, (p + i) * V);
        worst = Math.max(worst, Math.abs(res.logprobs[i]! - row[tok]!));
        count++;
        // Top alternatives: the 3 largest of the trainer's row (values within the bound).
        const order = [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b).slice(0, 3);
        const top = res.topLogprobs![i]!;
        top.forEach((t, j) => {
          expect(Math.abs(t.logprob - row[t.token]!)).toBeLessThanOrEqual(LOGPROB_TOL);
          expect(Math.abs(t.logprob - row[order[j]!]!)).toBeLessThanOrEqual(LOGPROB_TOL);
        });
        // Every reported value is an f32.
        expect(Math.fround(res.logprobs[i]!)).toBe(res.logprobs[i]);
      });
    }
    console.log(`[alignment] max |sampler logprob - trainer logprob| over ${count} sampled tokens: ${worst.toExponential(3)} (bound ${LOGPROB_TOL})`);
    expect(count).toBe(80);
    expect(worst).toBeLessThanOrEqual(LOGPROB_TOL);
  });
});

describe('batching', () => {
  const seed = newSeed('batching');
  const r = rng(seed);
  const model = tinyModel(seed);

  it('a batch of prompts of different lengths gives each prompt what it gets alone (sampled and greedy)', async () => {
    // Lengths 7, 3, 7, 12, 3: three groups, two of them batched.
    const prompts = [randomIds(r, 7), randomIds(r, 3), randomIds(r, 7), randomIds(r, 12), randomIds(r, 3)];
    const seeds = prompts.map((_, i) => seed * 10 + i);
    const sampler = new Sampler(model);
    for (const opts of [
      { temperature: 0.8, topK: 20, maxTokens: 12, ignoreEos: true },
      { temperature: 0, maxTokens: 12, ignoreEos: true },
    ]) {
      const batch = await sampler.generateBatch(prompts, { ...opts, seed: seeds });
      for (let i = 0; i < prompts.length; i++) {
        const alone = await sampler.generate(prompts[i]!, { ...opts, seed: seeds[i]! });
        expect(batch[i]!.sequence).toBe(i);
        expect(batch[i]!.tokens).toEqual(alone.tokens);
        expect(maxAbsDiff(batch[i]!.logprobs, alone.logprobs)).toBeLessThanOrEqual(LOGPROB_TOL);
      }
    }
  });

  it('sequences that end early leave the rest of their group unchanged (caches compacted)', async () => {
    const prompts = [randomIds(r, 6), randomIds(r, 6), randomIds(r, 6)];
    const sampler = new Sampler(model);
    const greedy = { temperature: 0, maxTokens: 10, ignoreEos: true };
    const alone = await Promise.all(prompts.map((p) => sampler.generate(p, greedy)));
    // An EOS id that sequence 1 draws at step 2: it stops there, the others when they draw it (or at 10).
    const eosId = alone[1]!.tokens[2]!;
    const batch = await sampler.generateBatch(prompts, { ...greedy, ignoreEos: false, eosTokenIds: [eosId] });
    batch.forEach((b, i) => {
      const cut = alone[i]!.tokens.indexOf(eosId);
      const want = cut >= 0 ? alone[i]!.tokens.slice(0, cut + 1) : alone[i]!.tokens;
      expect(b.tokens).toEqual(want);
      expect(b.finishReason).toBe(cut >= 0 ? 'eos' : 'length');
    });
    expect(batch[1]!.tokens.length).toBeLessThanOrEqual(3);
  });
});
