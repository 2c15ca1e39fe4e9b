/**
 * Bad input: typed errors with what was expected and what came, thrown before any model work
 * (the model's forward is counted and must not have run).
 */
import { describe, expect, it } from 'vitest';
import { memory } from '@ring-linear/core';
import {
  ContextLengthError,
  DecodeSession,
  PromptError,
  Sampler,
  SamplingOptionsError,
  resolveSamplingOptions,
  type GenerateOptions,
} from '../src/index.js';
import { byteTokenizer, microModel, newSeed } from './helpers.js';

describe('bad input', () => {
  const seed = newSeed('errors');
  const model = microModel(seed, { max_position_embeddings: 64 });
  let forwards = 0;
  const forward = model.forward.bind(model);
  model.forward = ((ids, options) => {
    forwards++;
    return forward(ids, options);
  }) as typeof model.forward;
  const sampler = new Sampler(model);
  const withText = new Sampler(model, { tokenizer: byteTokenizer });

  /** Expects `fn` to throw `type` matching `message` without running the model or leaving tensors. */
  async function rejects(fn: () => unknown, type: new (...a: never[]) => Error, message: RegExp): Promise<Error> {
    const before = forwards;
    const tensors = memory().tensors;
    let err: unknown = null;
    try {
      await fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(type);
    expect((err as Error).message).toMatch(message);
    expect(forwards).toBe(before);
    expect(memory().tensors).toBe(tensors);
    return err as Error;
  }

  it('empty prompts', async () => {
    await rejects(() => sampler.generate([]), PromptError, /prompt 0 is empty/);
    await rejects(() => withText.generate(''), PromptError, /prompt 0 is empty/);
    await rejects(() => sampler.generateBatch([]), PromptError, /at least one prompt, got an empty list/);
    await rejects(() => sampler.generateBatch([[1, 2], []]), PromptError, /prompt 1 is empty/);
  });

  it('token ids outside the vocabulary, non-integers, text without a tokenizer', async () => {
    await rejects(() => sampler.generate([1, 259, 2]), PromptError, /integers in \[0, 259\).*got 259 at 1/);
    await rejects(() => sampler.generate([-1]), PromptError, /got -1 at 0/);
    await rejects(() => sampler.generate([1.5]), PromptError, /got 1.5 at 0/);
    await rejects(() => sampler.generate(Int32Array.from([3, 1000])), PromptError, /got 1000 at 1/);
    await rejects(() => sampler.generate('hello'), PromptError, /prompt 0 is text but the Sampler has no tokenizer/);
    await rejects(() => sampler.stream([1, 2], { eosTokenIds: [300] }), SamplingOptionsError, /eosTokenIds must be ids in \[0, 259\)/);
  });

  it('contradictory or out-of-range options, all listed in one error', async () => {
    const cases: [GenerateOptions, RegExp][] = [
      [{ topP: 0 }, /topP must be in \(0, 1\] \(1: off\), got 0/],
      [{ topP: 1.5 }, /topP must be in \(0, 1\].*got 1.5/],
      [{ topP: -0.1 }, /topP must be in \(0, 1\].*got -0.1/],
      [{ temperature: -1 }, /temperature must be a finite number >= 0 \(0: greedy\), got -1/],
      [{ temperature: Infinity }, /temperature .* got Infinity/],
      [{ topK: -1 }, /topK must be an integer >= 0 \(0: off\), got -1/],
      [{ topK: 2.5 }, /topK .* got 2.5/],
      [{ minP: 1.1 }, /minP must be in \[0, 1\].*got 1.1/],
      [{ repetitionPenalty: 0 }, /repetitionPenalty must be a finite number > 0/],
      [{ presencePenalty: NaN }, /presencePenalty must be a finite number/],
      [{ maxTokens: 0 }, /maxTokens must be an integer >= 1, got 0/],
      [{ topLogprobs: -2 }, /topLogprobs must be an integer in \[0, 259\]/],
      [{ seed: 1.5 }, /seed must be a safe integer or a bigint/],
      [{ seed: [1, 2] }, /expected one seed per prompt \(1\), got 2/],
      [{ stop: 'x' }, /stop strings .* need a tokenizer/],
      [{ stop: [''] as string[] }, /stop strings must be non-empty strings/],
      [{ prefillChunkSize: 0 }, /prefillChunkSize must be an integer >= 1/],
    ];
    for (const [opts, msg] of cases) await rejects(() => sampler.stream([1, 2, 3], opts), SamplingOptionsError, msg);
    const err = (await rejects(() => sampler.generate([1], { topP: 0, temperature: -1, topK: -1 }), SamplingOptionsError, /3 problems/)) as SamplingOptionsError;
    expect(err.problems.length).toBe(3);
    expect(() => resolveSamplingOptions({ minP: -0.5 })).toThrow(SamplingOptionsError);
    expect(resolveSamplingOptions({ temperature: 0 }).temperature).toBe(0);
  });

  it('context beyond max_position_embeddings', async () => {
    const long = Array.from({ length: 64 }, (_, i) => i);
    const e1 = (await rejects(() => sampler.generate(long), ContextLengthError, /prompt 0 has 64 tokens; max_position_embeddings is 64/)) as ContextLengthError;
    expect([e1.needed, e1.limit]).toEqual([65, 64]);
    const e2 = (await rejects(() => sampler.generateBatch([[1], long.slice(0, 60)], { maxTokens: 5 }), ContextLengthError, /prompt 1 \(60 tokens\) \+ maxTokens \(5\) = 65 positions exceed max_position_embeddings \(64\); at most 4/)) as ContextLengthError;
    expect([e2.sequence, e2.needed, e2.limit]).toEqual([1, 65, 64]);
    // Without maxTokens the default fits the room left.
    const ok = await sampler.generate(long.slice(0, 60), { ignoreEos: true });
    expect(ok.tokens.length).toBe(4);
    // DecodeSession refuses steps past the limit too.
    const s = new DecodeSession(model, 1);
    s.prefill([long.slice(0, 63)]).dispose();
    s.step([1]).dispose();
    expect(() => s.step([1])).toThrow(ContextLengthError);
    expect(() => s.step([1, 2])).toThrow(/expected 1 rows \(the batch\), got 2/);
    s.dispose();
  });
});
