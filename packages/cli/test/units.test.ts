// Pieces of the command: the demo corpus (seeded, only its own words), the loss sparkline, the
// flag reader's conversions, and generation from a preset name (seeded random weights).
import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { manualSeed, noGrad, tensor } from '@ring-linear/core';
import { ByteTokenizer, RingLinearForCausalLM, preset } from '@ring-linear/models';
import { cli } from './helpers.js';
import { COMMANDS, CorpusRandom, FlagReader, UsageError, corpusWords, demoCorpus, parseCommandArgs, sparkline, story } from '../src/index.js';

describe('demo corpus', () => {
  it('is the same for a seed, different for another, and uses only its own words', () => {
    const a = demoCorpus({ seed: 3, stories: 50 });
    expect(demoCorpus({ seed: 3, stories: 50 })).toEqual(a);
    expect(demoCorpus({ seed: 4, stories: 50 })).not.toEqual(a);
    expect(new Set(a).size).toBeGreaterThan(40); // varied
    const words = corpusWords();
    for (const s of a) {
      expect(s).toMatch(/^[A-Z][^\n]*\.$/);
      for (const w of s.split(/[^A-Za-z]+/).filter(Boolean)) expect(words.has(w.toLowerCase()), `${w} in "${s}"`).toBe(true);
      expect(s.split('. ').length).toBeGreaterThanOrEqual(4);
    }
    expect(() => demoCorpus({ stories: 0 })).toThrow(/stories must be an integer >= 1, got 0/);
  });

  it('a story names one character and refers back to it with the right pronoun', () => {
    const rng = new CorpusRandom(11);
    const pronoun: Record<string, string> = { Mia: 'She', Lena: 'She', Ava: 'She', Tom: 'He', Sam: 'He', Ben: 'He' };
    let withPronoun = 0;
    for (let i = 0; i < 60; i++) {
      const s = story(rng);
      const name = /^[^,]+, (\w+) went to the \w+\. /.exec(s)![1]!;
      const second = s.split('. ')[1]!.split(' ')[0]!;
      if (second === 'She' || second === 'He') {
        expect(second, s).toBe(pronoun[name]);
        withPronoun++;
      }
    }
    expect(withPronoun).toBeGreaterThan(30);
    const r = new CorpusRandom(5);
    const xs = Array.from({ length: 1000 }, () => r.next());
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((p, q) => p + q, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
  });
});

describe('sparkline', () => {
  it('a falling curve goes from the highest bar to the lowest, one bar per bucket', () => {
    const falling = Array.from({ length: 200 }, (_, i) => 5 * Math.exp(-i / 40) + 0.3);
    const line = sparkline(falling, 40);
    expect([...line]).toHaveLength(40);
    expect(line[0]).toBe('█');
    expect(line.at(-1)).toBe('▁');
    const levels = [...line].map((c) => '▁▂▃▄▅▆▇█'.indexOf(c));
    for (let i = 1; i < levels.length; i++) expect(levels[i]!).toBeLessThanOrEqual(levels[i - 1]!);
    expect(sparkline([2, 2, 2])).toBe('▁▁▁');
    expect(sparkline([1, 3], 48)).toBe('▁█');
    expect(sparkline([])).toBe('');
  });
});

describe('flag reader', () => {
  const spec = COMMANDS.find((c) => c.spec.name === 'generate')!.spec;
  const read = (...argv: string[]) => new FlagReader(spec, parseCommandArgs(spec, ['model', ...argv]));

  it('converts values and keeps the last of a repeated single-value flag', () => {
    const f = read('--temperature', '0.25', '--top-k', '7', '--stop', 'a', '--stop', 'b', '--seed=3', '--seed', '4');
    expect(f.number('temperature', { min: 0 })).toBe(0.25);
    expect(f.int('top-k', { min: 0 })).toBe(7);
    expect(f.strings('stop')).toEqual(['a', 'b']);
    expect(f.int('seed', { min: 0 })).toBe(4);
    expect(f.int('max-tokens', { min: 1, fallback: 9 })).toBe(9);
    expect(f.has('top-p')).toBe(false);
  });

  it('rejects what does not convert, with the flag and the value', () => {
    expect(() => read('--top-k', '2.5').int('top-k', { min: 0 })).toThrow(UsageError);
    expect(() => read('--top-k', '2.5').int('top-k', { min: 0 })).toThrow("ring-linear generate: --top-k: expected an integer >= 0, got '2.5'");
    expect(() => read('--temperature', 'hot').number('temperature', { min: 0 })).toThrow("--temperature: expected a number >= 0, got 'hot'");
    expect(() => read('--temperature', '').number('temperature', { min: 0 })).toThrow("got ''");
    expect(() => read('--dtype', 'f64').oneOf('dtype', ['f32', 'bf16', 'f16'])).toThrow("--dtype: expected one of f32, bf16, f16, got 'f64'");
  });
});

describe('generate with a preset name', () => {
  it('random weights drawn from seed 0: greedy tokens equal a greedy loop over a model built the same way', async () => {
    const r = await cli(['generate', 'tiny', 'abc', '--temperature', '0', '--max-tokens', '4', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const got = r.json().results[0].tokens;
    manualSeed(0);
    const model = new RingLinearForCausalLM(preset('tiny'));
    model.eval();
    const ids = new ByteTokenizer().encode('abc');
    const want: number[] = [];
    for (let i = 0; i < 4; i++) {
      const logits = noGrad(() => model.forward(tensor(Int32Array.from(ids), [1, ids.length], 'i32'), { logits: 'last' }).logits!);
      const v = (await logits.data()) as Float32Array;
      logits.dispose();
      let best = 0;
      for (let j = 1; j < v.length; j++) if (v[j]! > v[best]!) best = j;
      ids.push(best);
      want.push(best);
      if (best === 257) break;
    }
    model.dispose();
    expect(got).toEqual(want);
  }, 60_000);
});
