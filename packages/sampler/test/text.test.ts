/**
 * Incremental detokenization (multi-byte characters over byte tokens) and stop strings matched
 * across token boundaries, against the whole-text answer.
 */
import { describe, expect, it } from 'vitest';
import { IncrementalDetokenizer, StopMatcher } from '../src/index.js';
import { byteTokenizer, newSeed, rng } from './helpers.js';

const TEXTS = ['plain ascii', 'naïve café', 'emoji 😀 and 中文 mixed', 'ünïcödé 𝄞 music', 'a\nb\tc'];

describe('IncrementalDetokenizer', () => {
  it('emits exactly the decoded text, holding back incomplete UTF-8 characters', () => {
    for (const text of TEXTS) {
      const ids = byteTokenizer.encode(text);
      const d = new IncrementalDetokenizer(byteTokenizer);
      const deltas = ids.map((id) => d.push(id));
      deltas.push(d.flush());
      expect(deltas.join('')).toBe(text);
      for (const delta of deltas) expect(delta).not.toContain('\uFFFD');
      // A 4-byte character arrives whole with its last byte.
      if (text.includes('😀')) expect(deltas).toContain('😀');
    }
  });

  it('leaves special tokens out by default, keeps them when asked', () => {
    const ids = [...byteTokenizer.encode('hi'), 257, ...byteTokenizer.encode('!')];
    const run = (skip: boolean) => {
      const d = new IncrementalDetokenizer(byteTokenizer, { skipSpecialTokens: skip });
      return ids.map((i) => d.push(i)).join('') + d.flush();
    };
    expect(run(true)).toBe('hi!');
    expect(run(false)).toBe('hi<|eos|>!');
  });

  it('flushes an incomplete character at the end as U+FFFD', () => {
    const d = new IncrementalDetokenizer(byteTokenizer);
    const bytes = byteTokenizer.encode('é'); // 2 bytes
    expect(d.push(bytes[0]!)).toBe('');
    expect(d.flush()).toBe('\uFFFD');
  });
});

describe('StopMatcher', () => {
  const seed = newSeed('stop strings');
  const r = rng(seed);

  /** Splits text into random pieces (as token texts would arrive). */
  const pieces = (text: string) => {
    const out: string[] = [];
    for (let i = 0; i < text.length; ) {
      const n = 1 + Math.floor(r() * 4);
      out.push(text.slice(i, i + n));
      i += n;
    }
    return out;
  };

  it('ends at the first piece after which the text holds a stop string, emitting exactly the text before it', () => {
    const alphabet = 'ab c\n';
    for (let trial = 0; trial < 500; trial++) {
      const text = Array.from({ length: 1 + Math.floor(r() * 30) }, () => alphabet[Math.floor(r() * alphabet.length)]).join('');
      const stops = Array.from({ length: 1 + Math.floor(r() * 3) }, () =>
        Array.from({ length: 1 + Math.floor(r() * 4) }, () => alphabet[Math.floor(r() * alphabet.length)]).join(''),
      );
      const include = r() < 0.3;
      const m = new StopMatcher(stops, { includeStopString: include });
      const split = pieces(text);
      let emitted = '';
      let stop: string | null = null;
      for (const p of split) {
        const res = m.push(p);
        emitted += res.text;
        if (res.stop) {
          stop = res.stop;
          break;
        }
      }
      if (!stop) emitted += m.flush();
      // Reference on whole prefixes: after each piece, the text so far is searched; the first piece
      // after which it holds a stop string ends it, cut at the earliest start (ties: listed first).
      let which: string | null = null;
      let at = -1;
      let sofar = '';
      for (const p of split) {
        sofar += p;
        for (const s of stops) {
          const i = sofar.indexOf(s);
          if (i >= 0 && (at < 0 || i < at)) {
            at = i;
            which = s;
          }
        }
        if (which !== null) break;
      }
      expect(stop).toBe(which);
      expect(emitted).toBe(which === null ? text : text.slice(0, at) + (include ? which : ''));
    }
  });

  it('holds back a possible stop prefix until it is decided', () => {
    const m = new StopMatcher(['</end>']);
    expect(m.push('hello </')).toEqual({ text: 'hello ', stop: null });
    expect(m.push('en')).toEqual({ text: '', stop: null });
    expect(m.push('x more')).toEqual({ text: '</enx more', stop: null });
    expect(m.push(' </e')).toEqual({ text: ' ', stop: null });
    expect(m.push('nd> tail')).toEqual({ text: '', stop: '</end>' });
  });
});
