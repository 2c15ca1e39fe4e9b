/**
 * Sampling strategies over random logits: each filter selects the documented set (compared with
 * a full-sort float64 reference), the draw follows the kept distribution, penalties follow their
 * formulas, and bad logits are refused.
 */
import { describe, expect, it } from 'vitest';
import { philox4x32 } from '@ring-linear/core';
import {
  DEFAULT_SAMPLING,
  DescendingOrder,
  InvalidLogitsError,
  SequenceRandom,
  TokenHistory,
  applyPenalties,
  argmax,
  distribution,
  drawFrom,
  minPSet,
  sampleToken,
  topKSet,
  topPSet,
  type SamplingParams,
} from '../src/index.js';
import { newSeed, rng } from './helpers.js';

/** Random logits: normal-ish values, some repeated (ties), sometimes -Infinity entries. */
function randomLogits(r: () => number, n: number, scale = 3): Float32Array {
  const z = new Float32Array(n);
  for (let i = 0; i < n; i++) z[i] = Math.fround((r() + r() + r() - 1.5) * scale);
  // Ties: copy a few values onto other ids.
  for (let t = 0; t < Math.floor(n / 10); t++) z[Math.floor(r() * n)] = z[Math.floor(r() * n)]!;
  if (r() < 0.3 && n > 2) z[Math.floor(r() * n)] = -Infinity;
  return z;
}

/** Ids sorted by value descending, ties by id ascending (the documented order), via a full sort. */
function sortedDesc(values: ArrayLike<number>, ids: number[]): number[] {
  return [...ids].sort((a, b) => (values[b]! - values[a]! !== 0 ? values[b]! - values[a]! : a - b));
}

/** Reference of steps 2-5 (temperature, top-k, top-p, min-p) in float64 with full sorts. */
function referenceKept(z: Float32Array, p: SamplingParams): { ids: number[]; w: Float64Array } {
  const s = Float64Array.from(z, (v) => v / p.temperature);
  const m = Math.max(...s);
  const w = Float64Array.from(s, (v) => Math.exp(v - m));
  let ids = [...w.keys()].filter((i) => w[i]! > 0);
  if (p.topK > 0 && p.topK < ids.length) ids = sortedDesc(w, ids).slice(0, p.topK);
  if (p.topP < 1) {
    ids.sort((a, b) => a - b);
    const total = ids.reduce((t, i) => t + w[i]!, 0);
    const keep: number[] = [];
    let before = 0;
    for (const i of sortedDesc(w, ids)) {
      if (!(before < p.topP)) break;
      keep.push(i);
      before += w[i]! / total;
    }
    ids = keep;
  }
  if (p.minP > 0) {
    const wmax = Math.max(...ids.map((i) => w[i]!));
    ids = ids.filter((i) => w[i]! >= p.minP * wmax);
  }
  return { ids: ids.sort((a, b) => a - b), w };
}

describe('filters select the documented sets', () => {
  const seed = newSeed('filters');
  const r = rng(seed);

  it('top-k: the k largest, ties to the lower id', () => {
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + Math.floor(r() * 300);
      const z = randomLogits(r, n);
      const k = Math.floor(r() * (n + 2));
      const got = Array.from(topKSet(z, k));
      const want = sortedDesc(z, [...z.keys()]).slice(0, k).sort((a, b) => a - b);
      expect(got).toEqual(want);
      // Set property: every kept value >= every dropped value.
      const kept = new Set(got);
      const minKept = Math.min(...got.map((i) => z[i]!));
      for (let i = 0; i < n; i++) if (!kept.has(i)) expect(z[i]!).toBeLessThanOrEqual(minKept);
    }
  });

  it('top-p: the smallest most-likely-first prefix of mass >= p', () => {
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + Math.floor(r() * 300);
      const z = randomLogits(r, n);
      const p = trial % 10 === 0 ? 1e-6 : trial % 10 === 1 ? 0.999999 : r();
      const m = Math.max(...z);
      const w = Float64Array.from(z, (v) => Math.exp(v - m));
      const alive = [...w.keys()].filter((i) => w[i]! > 0);
      const got = Array.from(topPSet(w, p, Int32Array.from(alive)));
      expect(got).toEqual(referenceKept(z, { ...DEFAULT_SAMPLING, topP: p }).ids);
      // Mass >= p (up to rounding), and dropping the least likely kept token falls below p.
      const total = alive.reduce((t, i) => t + w[i]!, 0);
      const mass = got.reduce((t, i) => t + w[i]! / total, 0);
      expect(mass).toBeGreaterThanOrEqual(Math.min(p, 1) - 1e-12);
      const least = Math.min(...got.map((i) => w[i]! / total));
      expect(mass - least).toBeLessThan(p + 1e-12);
      expect(got.length).toBeGreaterThanOrEqual(1);
    }
  });

  it('min-p: p_i >= minP * p_max', () => {
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + Math.floor(r() * 300);
      const z = randomLogits(r, n);
      const minP = trial % 7 === 0 ? 1 : r();
      const m = Math.max(...z);
      const w = Float64Array.from(z, (v) => Math.exp(v - m));
      const got = Array.from(minPSet(w, minP));
      // Reference on normalized probabilities.
      const total = w.reduce((a, b) => a + b, 0);
      const prob = Array.from(w, (v) => v / total);
      const pmax = Math.max(...prob);
      // Membership wherever p_i is not within rounding of the bound.
      const kept = new Set(got);
      for (let i = 0; i < n; i++) {
        const bound = minP * pmax;
        if (w[i] === 0) expect(kept.has(i)).toBe(minP === 0);
        else if (Math.abs(prob[i]! - bound) > 1e-12 * pmax) expect(kept.has(i)).toBe(prob[i]! > bound);
      }
      expect(got).toContain(argmax(z));
    }
  });

  it('the whole pipeline (temperature, top-k, top-p, min-p) keeps the reference set', () => {
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + Math.floor(r() * 200);
      const z = randomLogits(r, n);
      const p: SamplingParams = {
        ...DEFAULT_SAMPLING,
        temperature: 0.1 + 2 * r(),
        topK: r() < 0.5 ? Math.floor(r() * n) : 0,
        topP: r() < 0.5 ? 0.05 + 0.95 * r() : 1,
        minP: r() < 0.5 ? 0.3 * r() : 0,
      };
      const d = distribution(z, p);
      if (d.kind !== 'sample') throw new Error('expected a sampling distribution');
      const ref = referenceKept(z, p);
      expect(Array.from(d.ids)).toEqual(ref.ids);
      for (const i of ref.ids) expect(d.weights[i]).toBe(ref.w[i]);
    }
  });

  it('DescendingOrder pops every id once, most likely first, ties by id', () => {
    for (let trial = 0; trial < 50; trial++) {
      const n = 1 + Math.floor(r() * 100);
      const z = randomLogits(r, n, 1);
      const order = new DescendingOrder(z, Int32Array.from(z.keys()));
      const popped: number[] = [];
      for (let i = order.pop(); i >= 0; i = order.pop()) popped.push(i);
      expect(popped).toEqual(sortedDesc(z, [...z.keys()]));
    }
  });
});

describe('the draw', () => {
  const seed = newSeed('draw');
  const r = rng(seed);

  it('follows the kept distribution: a sweep of u gives each id its probability mass', () => {
    for (let trial = 0; trial < 20; trial++) {
      const n = 2 + Math.floor(r() * 40);
      const z = randomLogits(r, n, 2);
      const params = { ...DEFAULT_SAMPLING, temperature: 0.5 + r(), topK: r() < 0.5 ? 1 + Math.floor(r() * n) : 0, topP: r() < 0.5 ? 0.5 + 0.5 * r() : 1 };
      const d = distribution(z, params);
      if (d.kind !== 'sample') throw new Error('expected sampling');
      const N = 1 << 14;
      const counts = new Map<number, number>();
      for (let j = 0; j < N; j++) {
        const t = drawFrom(d, (j + 0.5) / N);
        counts.set(t, (counts.get(t) ?? 0) + 1);
      }
      const total = Array.from(d.ids).reduce((t, i) => t + d.weights[i]!, 0);
      for (const [t] of counts) expect(d.ids).toContain(t);
      for (const i of d.ids) {
        // Inverse CDF on a uniform grid of N points: each id's share is within 1/N of its mass.
        expect(Math.abs((counts.get(i) ?? 0) / N - d.weights[i]! / total)).toBeLessThanOrEqual(1 / N + 1e-12);
      }
    }
  });

  it('walks the kept ids in ascending id order (documented tie-free inverse CDF)', () => {
    const z = Float32Array.from([0, Math.log(3), -Infinity, 0]); // weights 1/3, 1, 0, 1/3 (after max)
    const d = distribution(z, DEFAULT_SAMPLING);
    if (d.kind !== 'sample') throw new Error('expected sampling');
    expect(Array.from(d.ids)).toEqual([0, 1, 3]);
    // Masses 0.2, 0.6, 0.2 in id order 0, 1, 3.
    expect(drawFrom(d, 0)).toBe(0);
    expect(drawFrom(d, 0.19)).toBe(0);
    expect(drawFrom(d, 0.21)).toBe(1);
    expect(drawFrom(d, 0.79)).toBe(1);
    expect(drawFrom(d, 0.81)).toBe(3);
    expect(drawFrom(d, 1 - 2 ** -24)).toBe(3);
  });

  it('temperature 0 is greedy: the argmax after penalties, ties to the lower id, whatever the filters', () => {
    const z = Float32Array.from([1, 5, 5, -2]);
    for (const u of [0, 0.5, 0.99]) {
      expect(sampleToken(z, { ...DEFAULT_SAMPLING, temperature: 0, topK: 3, topP: 0.1, minP: 0.5 }, u)).toBe(1);
    }
    const h = new TokenHistory([1]);
    expect(sampleToken(z, { ...DEFAULT_SAMPLING, temperature: 0, repetitionPenalty: 2 }, 0, h)).toBe(2);
  });

  it('top-k 1 and tiny top-p always give the argmax; min-p 1 a maximal id', () => {
    for (let trial = 0; trial < 50; trial++) {
      const z = randomLogits(r, 50);
      const best = argmax(z);
      expect(sampleToken(z, { ...DEFAULT_SAMPLING, topK: 1 }, r())).toBe(best);
      expect(sampleToken(z, { ...DEFAULT_SAMPLING, topP: 1e-9 }, r())).toBe(best);
      // minP 1 keeps exactly the ids tied at the maximum.
      expect(z[sampleToken(z, { ...DEFAULT_SAMPLING, minP: 1 }, r())]).toBe(z[best]);
    }
  });
});

describe('penalties', () => {
  it('repetition divides positive and multiplies negative logits of seen ids; presence/frequency subtract per generated count', () => {
    const z = Float64Array.from([2, -2, 3, -1, 0.5, 4]);
    const h = new TokenHistory([0, 1]); // prompt
    h.add(2);
    h.add(2);
    h.add(3);
    applyPenalties(z, h, { ...DEFAULT_SAMPLING, repetitionPenalty: 1.5, presencePenalty: 0.25, frequencyPenalty: 0.5 });
    expect(z[0]).toBe(2 / 1.5); // prompt id: repetition only
    expect(z[1]).toBe(-2 * 1.5);
    expect(z[2]).toBe(3 / 1.5 - 0.25 - 0.5 * 2); // generated twice
    expect(z[3]).toBe(-1 * 1.5 - 0.25 - 0.5 * 1);
    expect(z[4]).toBe(0.5); // unseen: untouched
    expect(z[5]).toBe(4);
  });

  it('a strong repetition penalty changes the greedy choice away from seen ids', () => {
    const z = Float32Array.from([3, 2.9, 1]);
    expect(sampleToken(z, { ...DEFAULT_SAMPLING, temperature: 0 }, 0, new TokenHistory([0]))).toBe(0);
    expect(sampleToken(z, { ...DEFAULT_SAMPLING, temperature: 0, repetitionPenalty: 1.2 }, 0, new TokenHistory([0]))).toBe(1);
    const h = new TokenHistory();
    h.add(0);
    expect(sampleToken(z, { ...DEFAULT_SAMPLING, temperature: 0, frequencyPenalty: 0.2 }, 0, h)).toBe(1);
  });
});

describe('bad logits and seeded draws', () => {
  it('NaN, +Infinity and all -Infinity are InvalidLogitsError', () => {
    expect(() => sampleToken(Float32Array.from([0, NaN]), DEFAULT_SAMPLING, 0.5)).toThrow(InvalidLogitsError);
    expect(() => sampleToken(Float32Array.from([0, Infinity]), DEFAULT_SAMPLING, 0.5)).toThrow(/finite values or -Infinity, got Infinity at id 1/);
    expect(() => sampleToken(Float32Array.from([-Infinity, -Infinity]), DEFAULT_SAMPLING, 0.5)).toThrow(InvalidLogitsError);
    expect(() => sampleToken(Float32Array.from([-Infinity, -Infinity]), { ...DEFAULT_SAMPLING, temperature: 0 }, 0.5)).toThrow(InvalidLogitsError);
  });

  it('the uniform of step t of sequence i is Philox4x32-10 at counter (t, i) under key = seed', () => {
    const seed = 0x1234567890abn;
    const a = new SequenceRandom(seed, 3);
    for (const t of [0, 1, 2, 1000, 2 ** 31]) {
      const x = philox4x32(t, 3, 0, 0, Number(seed & 0xffffffffn), Number(seed >> 32n));
      expect(a.uniform(t)).toBe((x[0]! >>> 8) / 2 ** 24);
    }
    // Same (seed, sequence, step) -> same number, in any order; other sequences differ.
    const b = new SequenceRandom(seed, 3);
    expect([5, 1, 5].map((t) => b.uniform(t))).toEqual([a.uniform(5), a.uniform(1), a.uniform(5)]);
    expect(new SequenceRandom(seed, 4).uniform(5)).not.toBe(a.uniform(5));
    expect(new SequenceRandom(seed + 1n, 3).uniform(5)).not.toBe(a.uniform(5));
  });
});
