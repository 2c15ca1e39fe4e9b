// SampleRng (seeded, dtype-exact, never all zeros) and the tolerance comparison.
import { describe, expect, it } from 'vitest';
import { DTYPES, roundToDtype, isLowPrecisionFloat } from '@ring-linear/core';
import { compareValues, createSampleRng, deriveSeed, DEFAULT_TOLERANCES, isRepresentable } from '../src/index.js';

describe('SampleRng', () => {
  it('is deterministic per seed and differs between seeds', () => {
    const a = createSampleRng(42);
    const b = createSampleRng(42);
    const c = createSampleRng(43);
    const xs = Array.from({ length: 8 }, () => a.nextU32());
    expect(Array.from({ length: 8 }, () => b.nextU32())).toEqual(xs);
    expect(Array.from({ length: 8 }, () => c.nextU32())).not.toEqual(xs);
    expect(deriveSeed(1, 'add', 'f32')).not.toBe(deriveSeed(1, 'add', 'f16'));
    expect(deriveSeed(1, 'add', 'f32')).toBe(deriveSeed(1, 'add', 'f32'));
  });

  it('uniform, normal and int have the right ranges and moments', () => {
    const r = createSampleRng(7);
    const n = 20000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const v = r.normal();
      s += v;
      s2 += v * v;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.03); // sd of the mean: 1/sqrt(n) = 0.007
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.05);
    const ints = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const u = r.uniform(-2, 3);
      expect(u).toBeGreaterThanOrEqual(-2);
      expect(u).toBeLessThan(3);
      ints.add(r.int(-3, 4));
    }
    expect([...ints].sort((x, y) => x - y)).toEqual([-3, -2, -1, 0, 1, 2, 3]);
  });

  it('tensor() values are exactly representable in every dtype', () => {
    const r = createSampleRng(11);
    for (const dt of DTYPES) {
      const t = r.tensor([7, 13], dt, { scale: 30 });
      expect(t.shape).toEqual([7, 13]);
      for (const v of t.values) expect(isRepresentable(dt, v), `${dt} ${v}`).toBe(true);
      if (isLowPrecisionFloat(dt)) for (const v of t.values) expect(roundToDtype(dt as 'f16', v)).toBe(v);
    }
  });

  it('tensor() is never all zeros, and honours positive / minAbs / int', () => {
    const r = createSampleRng(5);
    const z = r.tensor([10], 'u8', { lo: 0, hi: 1 });
    expect(z.values.some((v) => v !== 0)).toBe(true);
    const tiny = r.tensor([10], 'f8e4m3', { scale: 1e-6 }); // every draw flushes to 0 in e4m3
    expect(tiny.values.some((v) => v !== 0)).toBe(true);
    for (const v of r.tensor([200], 'f8e4m3', { positive: true }).values) expect(v).toBeGreaterThan(0);
    for (const v of r.tensor([200], 'bf16', { minAbs: 0.5 }).values) expect(Math.abs(v)).toBeGreaterThanOrEqual(0.5);
    for (const v of r.tensor([200], 'f32', { int: true, lo: -2, hi: 3 }).values) expect([-2, -1, 0, 1, 2]).toContain(v);
    const bools = r.tensor([100], 'bool').values;
    expect(bools.some((v) => v === 1) && bools.some((v) => v === 0)).toBe(true);
  });
});

describe('compareValues', () => {
  const f32 = { tolerance: DEFAULT_TOLERANCES.f32 };
  it('NaN matches NaN only; infinities match exactly', () => {
    expect(compareValues([NaN, Infinity, -Infinity], [NaN, Infinity, -Infinity], f32).ok).toBe(true);
    expect(compareValues([1], [NaN], f32).ok).toBe(false);
    expect(compareValues([NaN], [1], f32).ok).toBe(false);
    expect(compareValues([Infinity], [-Infinity], f32).ok).toBe(false);
    expect(compareValues([3.4e38], [Infinity], f32).ok).toBe(false);
  });
  it('relative and absolute parts, the worst element and its error', () => {
    const c = compareValues([1, 100.002, 1e-7], [1, 100, 0], f32);
    expect(c.ok).toBe(false);
    expect(c.bad).toBe(1);
    expect(c.worst).toBe(1);
    expect(c.maxAbs).toBeCloseTo(0.002, 9);
    expect(compareValues([100.0005], [100], f32).ok).toBe(true);
  });
  it('magnitude widens the allowance where sums cancel', () => {
    expect(compareValues([1e-4], [0], f32).ok).toBe(false);
    expect(compareValues([1e-4], [0], { ...f32, magnitude: Float64Array.of(100) }).ok).toBe(true);
  });
  it('exact comparison distinguishes -0 from 0', () => {
    expect(compareValues([-0], [0], { ...f32, exact: true }).ok).toBe(false);
    expect(compareValues([-0], [0], f32).ok).toBe(true);
    expect(compareValues([2], [2], { tolerance: DEFAULT_TOLERANCES.i32 }).ok).toBe(true);
    expect(compareValues([3], [2], { tolerance: DEFAULT_TOLERANCES.i32 }).ok).toBe(false);
  });
});
