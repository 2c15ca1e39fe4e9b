/**
 * Generation behaviour on a real (tiny) model: streaming events, stop conditions (EOS, stop strings
 * across token boundaries, max tokens), cancellation, seeded reproducibility, the memory report and
 * cleanup.
 */
import { describe, expect, it } from 'vitest';
import { manualSeed, memory } from '@ring-linear/core';
import { DecodeSession, GenerationAbortedError, Sampler, type SamplerTokenizer, type TokenEvent } from '../src/index.js';
import { newSeed, randomIds, rng, tinyModel } from './helpers.js';

/** A test tokenizer whose every token is two letters, so stop strings can start mid-token. */
const twoLetters: SamplerTokenizer = {
  encode: (text: string) => Array.from({ length: Math.ceil(text.length / 2) }, (_, i) => (text.charCodeAt(2 * i) * 7 + (text.charCodeAt(2 * i + 1) || 0)) % 256),
  decode: (ids) => Array.from(ids, (i) => String.fromCharCode(97 + (i % 26), 97 + ((i * 7 + 3) % 26))).join(''),
  eosTokenId: null,
};

describe('generation', () => {
  const seed = newSeed('generate');
  const r = rng(seed);
  const model = tinyModel(seed);
  const sampler = new Sampler(model, { tokenizer: twoLetters });
  const prompt = randomIds(r, 6);

  it('streams one event per token; texts, log-probs and the end agree with generate()', async () => {
    const opts = { temperature: 1, maxTokens: 9, seed: 5, topLogprobs: 2, ignoreEos: true };
    const events: TokenEvent[] = [];
    for await (const ev of sampler.stream(prompt, opts)) events.push(ev);
    const res = await sampler.generate(prompt, opts);
    expect(events.map((e) => e.index)).toEqual([...Array(9).keys()]);
    expect(events.map((e) => e.token)).toEqual(res.tokens);
    expect(events.map((e) => e.logprob)).toEqual(res.logprobs);
    expect(events.map((e) => e.text).join('')).toBe(res.text);
    expect(res.text).toBe(twoLetters.decode(res.tokens));
    expect(events.slice(0, -1).every((e) => e.finishReason === null)).toBe(true);
    expect(events.at(-1)!.finishReason).toBe('length');
    expect(res.finishReason).toBe('length');
    events.forEach((e) => {
      expect(e.topLogprobs!.length).toBe(2);
      expect(e.topLogprobs![0]!.logprob).toBeGreaterThanOrEqual(e.topLogprobs![1]!.logprob);
      expect(e.logprob).toBeLessThanOrEqual(e.topLogprobs![0]!.logprob);
      expect(e.logprob).toBeLessThan(0);
    });
  });

  it('stops on a stop string that spans tokens; the text ends before it', async () => {
    const greedy = { temperature: 0, maxTokens: 12, ignoreEos: true };
    const free = await sampler.generate(prompt, greedy);
    // Three letters starting mid-token (odd offset): they span two tokens.
    const stop = free.text.slice(5, 8);
    const at = free.text.indexOf(stop);
    const res = await sampler.generate(prompt, { ...greedy, stop: ['zzzzzzzz', stop] });
    expect(res.finishReason).toBe('stop');
    expect(res.stopString).toBe(stop);
    expect(res.text).toBe(free.text.slice(0, at));
    // The token that completed the stop string is the last one generated.
    expect(res.tokens).toEqual(free.tokens.slice(0, Math.ceil((at + stop.length) / 2)));
    const kept = await sampler.generate(prompt, { ...greedy, stop, includeStopString: true });
    expect(kept.text).toBe(free.text.slice(0, at + stop.length));
  });

  it('stops on EOS (default from the config, or given ids); ignoreEos runs to maxTokens', async () => {
    const greedy = { temperature: 0, maxTokens: 10, ignoreEos: true };
    const free = await sampler.generate(prompt, greedy);
    const eos = free.tokens[3]!;
    const cut = free.tokens.indexOf(eos);
    const res = await sampler.generate(prompt, { ...greedy, ignoreEos: false, eosTokenIds: eos });
    expect(res.finishReason).toBe('eos');
    expect(res.tokens).toEqual(free.tokens.slice(0, cut + 1));
    expect(res.text).toBe(twoLetters.decode(free.tokens.slice(0, cut))); // EOS adds no text
    const ignored = await sampler.generate(prompt, { ...greedy, eosTokenIds: eos });
    expect(ignored.tokens).toEqual(free.tokens);
    // The tiny preset's EOS (257) is the default stop id.
    expect(model.config.eos_token_id).toBe(257);
  });

  it('is reproducible from a seed, and from manualSeed when no seed is given', async () => {
    const opts = { temperature: 1.2, topP: 0.97, maxTokens: 16, ignoreEos: true };
    const a = await sampler.generate(prompt, { ...opts, seed: 1234n });
    const b = await sampler.generate(prompt, { ...opts, seed: 1234 });
    const c = await sampler.generate(prompt, { ...opts, seed: 1235 });
    expect(b.tokens).toEqual(a.tokens);
    expect(b.logprobs).toEqual(a.logprobs);
    expect(c.tokens).not.toEqual(a.tokens);
    manualSeed(77);
    const d = await sampler.generate(prompt, opts);
    manualSeed(77);
    const e = await sampler.generate(prompt, opts);
    expect(e.tokens).toEqual(d.tokens);
  });

  it('AbortSignal: already aborted throws before any work; aborting mid-stream or from a timer ends it with the partial results', async () => {
    const base = memory().tensors;
    const ac0 = new AbortController();
    ac0.abort();
    expect(() => sampler.stream(prompt, { signal: ac0.signal })).toThrow(GenerationAbortedError);

    const ac = new AbortController();
    const seen: TokenEvent[] = [];
    let caught: unknown = null;
    try {
      for await (const ev of sampler.stream(prompt, { maxTokens: 50, seed: 1, ignoreEos: true, signal: ac.signal })) {
        seen.push(ev);
        if (seen.length === 3) ac.abort(new Error('enough'));
      }
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(GenerationAbortedError);
    const partial = (caught as GenerationAbortedError).partial[0]!;
    expect(partial.finishReason).toBe('abort');
    expect(partial.tokens).toEqual(seen.map((e) => e.token));
    expect(((caught as GenerationAbortedError).cause as Error).message).toBe('enough');

    const timer = new AbortController();
    setTimeout(() => timer.abort(), 50);
    const t0 = performance.now();
    await expect(sampler.generateBatch([prompt, randomIds(r, 3)], { maxTokens: 400, ignoreEos: true, signal: timer.signal })).rejects.toThrow(GenerationAbortedError);
    expect(performance.now() - t0).toBeLessThan(20_000);
    // Every cache was freed.
    expect(memory().tensors).toBe(base);
  });

  it('breaking out of the stream frees the caches', async () => {
    const base = memory();
    let n = 0;
    for await (const _ of sampler.streamBatch([prompt, prompt.slice(1)], { maxTokens: 30, ignoreEos: true })) if (++n === 5) break;
    expect(memory().tensors).toBe(base.tensors);
    expect(memory().bytes).toBe(base.bytes);
  });
});

describe('memory report', () => {
  const seed = newSeed('memory report');
  const model = tinyModel(seed);
  const c = model.config;

  it('linear states are constant per sequence; KV bytes follow the tokens (used) and the doubling capacity (allocated)', () => {
    const H = c.num_attention_heads;
    const D = c.head_dim;
    const Hkv = c.num_key_value_heads;
    const kinds = model.layerKinds.map((k) => k.attention);
    const nLinear = kinds.filter((k) => k === 'linear').length;
    const nSoftmax = kinds.length - nLinear;
    const perLinear = H * D * D * 4; // f32 [H, D, D]
    const perToken = 2 * Hkv * D * 4; // f32 k and v rows, every softmax layer
    for (const B of [1, 3]) {
      const s = new DecodeSession(model, B, { initialKvCapacity: 8 });
      s.prefill(Array.from({ length: B }, (_, b) => [1 + b, 2, 3, 4, 5, 6, 7, 8, 9, 10])).dispose();
      let m = s.memory();
      expect(m.tokens).toBe(10);
      expect(m.linearStateBytes).toBe(nLinear * perLinear);
      expect(m.kvCacheUsedBytes).toBe(nSoftmax * 10 * perToken);
      expect(m.kvCacheBytes).toBe(nSoftmax * 16 * perToken); // capacity 8 -> 16
      expect(m.totalBytes).toBe(m.linearStateBytes + m.kvCacheBytes);
      expect(m.layers.map((l) => l.kind)).toEqual(kinds);
      for (let t = 0; t < 7; t++) s.step(Array(B).fill(t)).dispose();
      m = s.memory();
      expect(m.tokens).toBe(17);
      expect(m.linearStateBytes).toBe(nLinear * perLinear);
      expect(m.kvCacheUsedBytes).toBe(nSoftmax * 17 * perToken);
      expect(m.kvCacheBytes).toBe(nSoftmax * 32 * perToken);
      s.dispose();
    }
  });
});
