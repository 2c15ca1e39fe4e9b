// nn ops on the CPU backend: softmax, logSoftmax, rmsNorm, crossEntropy.
//
// Oracles: float64 formulas written here from the definitions (MODEL_SPEC §1 for RMSNorm), applied
// to the inputs' exact stored values; gradients against central finite differences of those
// float64 formulas. Each op's kernel and its composite (called directly) are both checked.
import { describe, expect, it } from 'vitest';
import {
  AttrError,
  DTypeError,
  FLOAT_DTYPES,
  ShapeError,
  crossEntropy,
  getOpDef,
  logSoftmax,
  memory,
  mul,
  rmsNorm,
  roundToDtype,
  softmax,
  sum,
  tensor,
  tidy,
  validateAttrs,
  valueAndGrad,
  type DType,
  type Tensor,
} from '@ring-linear/core';
import '../src/index.js';

const SEED = Number(process.env.TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`ops-nn.test.ts: TEST_SEED=${SEED}`);

// ---------------------------------------------------------------------------------------------
// Helpers: seeded data, float64 references, comparison

function rng(seed: number): { u: () => number; n: () => number; int: (lo: number, hi: number) => number } {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const n = () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  return { u, n, int: (lo, hi) => lo + Math.floor(u() * (hi - lo)) };
}
const R = rng(SEED);

const sizeOf = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);

/** A random tensor of `dtype` (normal * scale, never all zero) and its exact stored values. */
function rand(shape: number[], dtype: DType = 'f32', scale = 1): { t: Tensor; v: Float64Array } {
  const vals = Array.from({ length: sizeOf(shape) }, () => R.n() * scale);
  if (vals.length > 0 && vals.every((x) => roundToDtypeAny(dtype, x) === 0)) vals[0] = scale;
  const t = tensor(vals, shape, dtype);
  return { t, v: Float64Array.from(t.dataSync()) };
}

function roundToDtypeAny(dtype: DType, x: number): number {
  return dtype === 'f32' ? Math.fround(x) : roundToDtype(dtype as 'bf16', x);
}

/** Significand bits of each float dtype (for one-ulp relative tolerances). */
const MBITS: Record<string, number> = { f32: 23, f16: 10, bf16: 7, f8e4m3: 3, f8e5m2: 2 };
/** Smallest positive subnormal of each float dtype (absolute tolerance floor). */
const TINY: Record<string, number> = { f32: 1e-30, f16: 2 ** -24, bf16: 1e-30, f8e4m3: 2 ** -9, f8e5m2: 2 ** -16 };

/** Expects |a - e| <= atol + rtol * |e| everywhere (NaN only where e is NaN); reports the worst index. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number, what = ''): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e) || Number.isNaN(a)) {
      if (Number.isNaN(e) !== Number.isNaN(a)) return void expect.fail(`${what}: index ${i}: got ${a}, expected ${e}`);
      continue;
    }
    if (a === e) continue;
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (excess > worstExcess || (excess > 0 && worst < 0)) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) expect.fail(`${what}: index ${worst}: got ${actual[worst]}, expected ${expected[worst]} (atol ${atol}, rtol ${rtol})`);
}

/** Tolerance for a kernel that computes in float64 and rounds once to `dtype`: one ulp. */
const once = (dtype: DType) => ({ atol: TINY[dtype]!, rtol: 2 ** -MBITS[dtype]! });

/** Runs an op's composite directly (as a backend without the kernel would). */
function composite(op: string, inputs: Tensor[], attrs: Record<string, unknown>): Tensor {
  const def = getOpDef(op)!;
  let a = validateAttrs(def, attrs);
  if (def.normalize) a = def.normalize(inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })), a);
  return tidy(() => def.composite!(inputs, a)[0]!);
}

/** [outer, len, inner] around an axis. */
function around(shape: readonly number[], axis: number) {
  return { outer: sizeOf(shape.slice(0, axis)), len: shape[axis]!, inner: sizeOf(shape.slice(axis + 1)) };
}

function softmaxRef(x: ArrayLike<number>, shape: readonly number[], axis: number, logOut: boolean): Float64Array {
  const ax = axis < 0 ? axis + shape.length : axis;
  const { outer, len, inner } = around(shape, ax);
  const y = new Float64Array(x.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (k: number) => (o * len + k) * inner + i;
      let m = -Infinity;
      for (let k = 0; k < len; k++) m = Math.max(m, x[at(k)]!);
      let s = 0;
      for (let k = 0; k < len; k++) s += Math.exp(x[at(k)]! - m);
      for (let k = 0; k < len; k++) y[at(k)] = logOut ? x[at(k)]! - m - Math.log(s) : Math.exp(x[at(k)]! - m) / s;
    }
  }
  return y;
}

function rmsNormRef(x: ArrayLike<number>, w: ArrayLike<number>, d: number, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  const e = Math.fround(eps);
  for (let r = 0; r < x.length / d; r++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += x[r * d + j]! ** 2;
    const inv = 1 / Math.sqrt(ss / d + e);
    for (let j = 0; j < d; j++) y[r * d + j] = w[j]! * x[r * d + j]! * inv;
  }
  return y;
}

/** Per-token losses (0 where skipped) and the counted flags. */
function crossEntropyRef(
  logits: ArrayLike<number>, targets: ArrayLike<number>, vocab: number, ignoreIndex: number,
): { losses: Float64Array; counted: boolean[] } {
  const n = targets.length;
  const losses = new Float64Array(n);
  const counted: boolean[] = [];
  for (let t = 0; t < n; t++) {
    const tgt = targets[t]!;
    const ok = tgt >= 0 && tgt < vocab && tgt !== ignoreIndex;
    counted.push(ok);
    if (!ok) continue;
    let m = -Infinity;
    for (let k = 0; k < vocab; k++) m = Math.max(m, logits[t * vocab + k]!);
    let s = 0;
    for (let k = 0; k < vocab; k++) s += Math.exp(logits[t * vocab + k]! - m);
    losses[t] = m + Math.log(s) - logits[t * vocab + tgt]!;
  }
  return { losses, counted };
}

function reduceLosses(losses: Float64Array, counted: boolean[], reduction: string): Float64Array {
  if (reduction === 'none') return losses;
  const total = losses.reduce((a, b) => a + b, 0);
  const count = counted.filter(Boolean).length;
  return Float64Array.of(reduction === 'sum' ? total : count > 0 ? total / count : 0);
}

/** Central finite differences of L(x) = sum(w * f(x)) in float64. */
function fdGrad(f: (x: Float64Array) => Float64Array, x: Float64Array, w: ArrayLike<number>, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  const L = (xx: Float64Array) => f(xx).reduce((acc, v, i) => acc + v * w[i]!, 0);
  for (let i = 0; i < x.length; i++) {
    const xp = Float64Array.from(x);
    const xm = Float64Array.from(x);
    xp[i] = x[i]! + h;
    xm[i] = x[i]! - h;
    g[i] = (L(xp) - L(xm)) / (2 * h);
  }
  return g;
}

const SHAPES_AXES: [number[], number][] = [
  [[7], -1],
  [[3, 5], -1],
  [[3, 5], 0],
  [[2, 1, 4], 1],
  [[2, 3, 5], -2],
  [[4, 1], -1],
  [[1, 1], 0],
  [[2, 3, 5], 0],
];

// ---------------------------------------------------------------------------------------------

describe('softmax / logSoftmax', () => {
  for (const [op, fn, logOut] of [['softmax', softmax, false], ['logSoftmax', logSoftmax, true]] as const) {
    for (const dtype of FLOAT_DTYPES) {
      it(`${op} ${dtype}: kernel and composite match float64 over shapes and axes`, () => {
        for (const [shape, axis] of SHAPES_AXES) {
          const { t, v } = rand(shape, dtype, 2);
          const ref = softmaxRef(v, shape, axis, logOut);
          const y = fn(t, axis);
          expect(y.dtype).toBe(dtype);
          expect(y.shape).toEqual(shape);
          const tol = once(dtype);
          // logSoftmax near 0 loses relative precision to the absolute error of x - lse.
          const atol = logOut ? Math.max(tol.atol, 4e-7 * 4) : tol.atol;
          expectClose(y.dataSync(), ref, atol, tol.rtol, `${op} kernel ${dtype} [${shape}] axis ${axis}`);
          const c = composite(op, [t], { axis });
          expect(c.dtype).toBe(dtype);
          // The composite works in f32: a few f32 ulps before its final rounding.
          expectClose(c.dataSync(), ref, Math.max(atol, 2e-6), Math.max(tol.rtol, 4e-6), `${op} composite ${dtype} [${shape}] axis ${axis}`);
        }
      });
    }

    it(`${op} is stable for large logits and exact on masked (-inf) entries`, () => {
      const vals = [1000, 1001, 999.5, -Infinity, 1002];
      const y = fn(tensor(vals, [1, 5]), -1).dataSync();
      const shifted = softmaxRef(vals.map((x) => x - 1000), [1, 5], -1, logOut);
      expectClose(y, shifted, 1e-6, 1e-6, `${op} large`);
      expect(y[3]).toBe(logOut ? -Infinity : 0);
      const c = composite(op, [tensor(vals, [1, 5])], { axis: -1 }).dataSync();
      expectClose(c, shifted, 1e-6, 1e-6, `${op} composite large`);
      expect(c[3]).toBe(logOut ? -Infinity : 0);
      // An all -inf slice has no distribution: NaN, in the kernel and the composite alike.
      const masked = tensor([-Infinity, -Infinity, 0, 1], [2, 2]);
      const k = fn(masked, -1).dataSync();
      const cm = composite(op, [masked], { axis: -1 }).dataSync();
      expect(Number.isNaN(k[0]!) && Number.isNaN(k[1]!) && Number.isNaN(cm[0]!) && Number.isNaN(cm[1]!)).toBe(true);
      expect(Number.isFinite(k[2]!) && Number.isFinite(cm[3]!)).toBe(true);
    });

    it(`${op} gradient (kernel path and composite path) matches finite differences`, () => {
      for (const [shape, axis] of SHAPES_AXES) {
        const { t, v } = rand(shape, 'f32', 1.5);
        const { t: w, v: wv } = rand(shape, 'f32');
        const expected = fdGrad((x) => softmaxRef(x, shape, axis, logOut), v, wv);
        const before = memory().tensors;
        const { value, grads } = valueAndGrad(() => sum(mul(fn(t, axis), w)), [t]);
        expect(memory().tensors).toBe(before + 2);
        expectClose(grads[0]!.dataSync(), expected, 2e-5, 1e-4, `${op} grad [${shape}] axis ${axis}`);
        const viaComposite = valueAndGrad(() => sum(mul(composite(op, [t], { axis }), w)), [t]);
        expectClose(viaComposite.grads[0]!.dataSync(), expected, 2e-5, 1e-4, `${op} composite grad [${shape}] axis ${axis}`);
        for (const x of [value, ...grads, viaComposite.value, ...viaComposite.grads]) x.dispose();
      }
    });

    it(`${op} gradient of a bf16 input is computed in f32 and returned as bf16`, () => {
      const { t, v } = rand([3, 6], 'bf16');
      const { t: w, v: wv } = rand([3, 6], 'bf16');
      const expected = fdGrad((x) => softmaxRef(x, [3, 6], -1, logOut), v, wv);
      const { grads } = valueAndGrad(() => sum(mul(fn(t), w)), [t]);
      expect(grads[0]!.dtype).toBe('bf16');
      // The loss path in bf16 (y rounded, y*w rounded) costs a few bf16 ulps.
      expectClose(grads[0]!.dataSync(), expected, 0.03, 0.03, `${op} bf16 grad`);
    });

    it(`${op} rejects bad input with typed errors`, () => {
      expect(() => fn(tensor([1, 2], [2], 'i32'))).toThrow(DTypeError);
      expect(() => fn(tensor([1, 2], [2], 'i32'))).toThrow(new RegExp(`${op}: input 'x' must have dtype f32\\|.*got i32`));
      expect(() => fn(tensor([[1, 2]]), 2)).toThrow(AttrError);
      expect(() => fn(tensor([[1, 2]]), 2)).toThrow(/axis must be an integer in \[-2, 1\].*got 2/);
      expect(() => fn(tensor(3))).toThrow(ShapeError);
      expect(() => fn(tensor(3))).toThrow(/must have rank >= 1, got a scalar/);
    });
  }

  it('empty tensors go through kernel and composite', () => {
    const x = tensor([], [2, 0, 3]);
    expect(softmax(x, 1).shape).toEqual([2, 0, 3]);
    expect(composite('logSoftmax', [x], { axis: 1 }).shape).toEqual([2, 0, 3]);
  });
});

describe('rmsNorm', () => {
  const CASES: [number[], number][] = [[[5], 1e-6], [[3, 7], 1e-6], [[2, 1, 9], 1e-2], [[1, 1], 1e-6], [[4, 2, 3], 0.5]];
  const WEIGHT_DTYPES = (xd: DType): DType[] => [...new Set<DType>([xd, 'f32', 'bf16'])];

  for (const dtype of FLOAT_DTYPES) {
    it(`${dtype} x, weights of several dtypes: kernel and composite match float64`, () => {
      for (const [shape, eps] of CASES) {
        for (const wd of WEIGHT_DTYPES(dtype)) {
          const d = shape[shape.length - 1]!;
          const { t: x, v: xv } = rand(shape, dtype, 1.7);
          const { t: w, v: wv } = rand([d], wd);
          const ref = rmsNormRef(xv, wv, d, eps);
          const y = rmsNorm(x, w, eps);
          expect(y.dtype).toBe(dtype);
          const tol = once(dtype);
          expectClose(y.dataSync(), ref, tol.atol, tol.rtol, `rmsNorm kernel x ${dtype} w ${wd} [${shape}]`);
          const c = composite('rmsNorm', [x, w], { eps });
          expect(c.dtype).toBe(dtype);
          expectClose(c.dataSync(), ref, Math.max(tol.atol, 1e-6), Math.max(tol.rtol, 4e-6), `rmsNorm composite x ${dtype} w ${wd} [${shape}]`);
        }
      }
    });
  }

  it('computes in f32 even for fp8 storage (a row whose squares overflow e4m3)', () => {
    // 448^2 overflows every fp8 format; the f32 computation is unaffected.
    const x = tensor([448, -448, 224, 1], [1, 4], 'f8e4m3');
    const w = tensor([1, 1, 1, 1], [4], 'f8e4m3');
    const ref = rmsNormRef([448, -448, 224, 1], [1, 1, 1, 1], 4, 1e-6).map((v) => roundToDtype('f8e4m3', v));
    expect(Array.from(rmsNorm(x, w).dataSync())).toEqual(Array.from(ref));
  });

  it('gradients for x and weight (kernel and composite paths) match finite differences', () => {
    for (const [shape, eps] of CASES) {
      const d = shape[shape.length - 1]!;
      const { t: x, v: xv } = rand(shape, 'f32');
      const { t: w, v: wv } = rand([d], 'f32');
      const { t: gy, v: gv } = rand(shape, 'f32');
      const dx = fdGrad((xx) => rmsNormRef(xx, wv, d, eps), xv, gv);
      const dw = fdGrad((ww) => rmsNormRef(xv, ww, d, eps), wv, gv);
      for (const path of ['kernel', 'composite'] as const) {
        const f = () => sum(mul(path === 'kernel' ? rmsNorm(x, w, eps) : composite('rmsNorm', [x, w], { eps }), gy));
        const before = memory().tensors;
        const { value, grads } = valueAndGrad(f, [x, w]);
        expect(memory().tensors).toBe(before + 3);
        expectClose(grads[0]!.dataSync(), dx, 5e-5, 2e-4, `rmsNorm ${path} dx [${shape}]`);
        expectClose(grads[1]!.dataSync(), dw, 5e-5, 2e-4, `rmsNorm ${path} dw [${shape}]`);
        for (const g of [value, ...grads]) g.dispose();
      }
    }
  });

  it('gradients keep the input dtypes (bf16 x, f32 weight)', () => {
    const { t: x, v: xv } = rand([3, 8], 'bf16');
    const { t: w, v: wv } = rand([8], 'f32');
    const ones = new Float64Array(24).fill(1);
    const { grads } = valueAndGrad(() => sum(rmsNorm(x, w)), [x, w]);
    expect(grads[0]!.dtype).toBe('bf16');
    expect(grads[1]!.dtype).toBe('f32');
    expectClose(grads[0]!.dataSync(), fdGrad((xx) => rmsNormRef(xx, wv, 8, 1e-6), xv, ones), 1e-2, 2 ** -7, 'bf16 dx');
    // Output of bf16 x is bf16, so dw sees the rounded y only through dy = 1: dw is f32-accurate.
    expectClose(grads[1]!.dataSync(), fdGrad((ww) => rmsNormRef(xv, ww, 8, 1e-6), wv, ones), 1e-5, 1e-4, 'f32 dw');
  });

  it('rejects bad input with typed errors', () => {
    const x = tensor([[1, 2, 3]]);
    expect(() => rmsNorm(x, tensor([1, 2]))).toThrow(ShapeError);
    expect(() => rmsNorm(x, tensor([1, 2]))).toThrow(/'weight' must have shape \[3\] \(the last dim of x \[1, 3\]\), got \[2\]/);
    expect(() => rmsNorm(x, tensor([[1, 2, 3]]))).toThrow(/got \[1, 3\]/);
    expect(() => rmsNorm(tensor(2), tensor([1]))).toThrow(/rmsNorm: 'x' must have rank >= 1/);
    expect(() => rmsNorm(tensor([], [2, 0]), tensor([], [0]))).toThrow(/last dim of 'x' must be >= 1/);
    expect(() => rmsNorm(x, tensor([1, 2, 3]), -1)).toThrow(AttrError);
    expect(() => rmsNorm(x, tensor([1, 2, 3]), NaN)).toThrow(/'eps' expected a finite number >= 0, got NaN/);
    expect(() => rmsNorm(tensor([1, 2], [2], 'i32'), tensor([1, 2]))).toThrow(DTypeError);
    expect(() => rmsNorm(x, tensor([1, 2, 3], [3], 'i32'))).toThrow(/input 'weight' must have dtype .*got i32/);
  });
});

describe('crossEntropy', () => {
  /** Targets in [0, V) with some ignored (-100) and some out of range. */
  function targetsFor(n: number, vocab: number, withSkips: boolean): number[] {
    return Array.from({ length: n }, (_, i) => {
      if (withSkips && i % 5 === 1) return -100;
      if (withSkips && i % 7 === 3) return i % 2 ? vocab : -3; // out of range: skipped
      return R.int(0, vocab);
    });
  }

  const CASES: { shape: number[]; skips: boolean }[] = [
    { shape: [6, 11], skips: true },
    { shape: [2, 5, 7], skips: true },
    { shape: [1, 1], skips: false },
    { shape: [9], skips: false }, // a single token: targets are a scalar
    { shape: [3, 1, 4], skips: true },
    { shape: [13, 2], skips: true },
  ];

  for (const dtype of FLOAT_DTYPES) {
    it(`${dtype} logits: kernel and composite match float64 for every reduction`, () => {
      for (const { shape, skips } of CASES) {
        const vocab = shape[shape.length - 1]!;
        const lead = shape.slice(0, -1);
        const { t: logits, v: lv } = rand(shape, dtype, 2);
        const tv = targetsFor(sizeOf(lead), vocab, skips);
        const targets = tensor(tv, lead, 'i32');
        const { losses, counted } = crossEntropyRef(lv, tv, vocab, -100);
        for (const reduction of ['mean', 'sum', 'none'] as const) {
          const ref = reduceLosses(losses, counted, reduction);
          const y = crossEntropy(logits, targets, { reduction });
          expect(y.dtype).toBe('f32');
          expect(y.shape).toEqual(reduction === 'none' ? lead : []);
          expectClose(y.dataSync(), ref, 1e-6, 2e-7, `crossEntropy kernel ${dtype} [${shape}] ${reduction}`);
          const c = composite('crossEntropy', [logits, targets], { reduction, ignoreIndex: -100 });
          expectClose(c.dataSync(), ref, 4e-6, 4e-6, `crossEntropy composite ${dtype} [${shape}] ${reduction}`);
        }
      }
    });
  }

  it('ignoreIndex inside the vocabulary, and mean over zero counted tokens is 0', () => {
    const { t: logits, v: lv } = rand([5, 4], 'f32');
    const tv = [0, 2, 0, 3, 1];
    const targets = tensor(tv, [5], 'i32');
    const { losses, counted } = crossEntropyRef(lv, tv, 4, 0);
    expect(counted).toEqual([false, true, false, true, true]);
    const y = crossEntropy(logits, targets, { ignoreIndex: 0 }).dataSync();
    expectClose(y, reduceLosses(losses, counted, 'mean'), 1e-6, 1e-6, 'ignoreIndex 0');
    const none = tensor([-100, 7, -1], [3], 'i32');
    const l3 = rand([3, 4], 'f32').t;
    for (const reduction of ['mean', 'sum'] as const) {
      expect(Array.from(crossEntropy(l3, none, { reduction }).dataSync())).toEqual([0]);
      expect(Array.from(composite('crossEntropy', [l3, none], { reduction, ignoreIndex: -100 }).dataSync())).toEqual([0]);
    }
    expect(Array.from(crossEntropy(l3, none, { reduction: 'none' }).dataSync())).toEqual([0, 0, 0]);
    // No tokens at all.
    expect(Array.from(crossEntropy(tensor([], [0, 4]), tensor([], [0], 'i32')).dataSync())).toEqual([0]);
  });

  it('is stable for large logits', () => {
    const lv = [1e4, 1e4 + 1, 1e4 - 2, 1e4 + 0.5];
    const y = crossEntropy(tensor(lv, [1, 4]), tensor([1], [1], 'i32')).dataSync();
    const ref = crossEntropyRef(lv.map((x) => x - 1e4), [1], 4, -100).losses;
    expectClose(y, ref, 1e-6, 1e-6, 'large logits');
  });

  it('gradient for logits (kernel and composite paths) matches finite differences; skipped rows are exactly 0', () => {
    for (const { shape, skips } of CASES) {
      const vocab = shape[shape.length - 1]!;
      const lead = shape.slice(0, -1);
      const { t: logits, v: lv } = rand(shape, 'f32', 1.5);
      const tv = targetsFor(sizeOf(lead), vocab, skips);
      const targets = tensor(tv, lead, 'i32');
      for (const reduction of ['mean', 'sum', 'none'] as const) {
        const n = reduction === 'none' ? sizeOf(lead) : 1;
        const { t: gy, v: gv } = rand(reduction === 'none' ? lead : [], 'f32');
        const expected = fdGrad((x) => {
          const { losses, counted } = crossEntropyRef(x, tv, vocab, -100);
          return reduceLosses(losses, counted, reduction);
        }, lv, gv.length === n ? gv : [gv[0]!]);
        for (const path of ['kernel', 'composite'] as const) {
          const f = () =>
            sum(mul(path === 'kernel'
              ? crossEntropy(logits, targets, { reduction })
              : composite('crossEntropy', [logits, targets], { reduction, ignoreIndex: -100 }), gy));
          const before = memory().tensors;
          const { value, grads } = valueAndGrad(f, [logits]);
          expect(memory().tensors).toBe(before + 2);
          const g = grads[0]!.dataSync();
          expectClose(g, expected, 2e-5, 1e-4, `crossEntropy ${path} grad [${shape}] ${reduction}`);
          tv.forEach((tgt, row) => {
            if (tgt >= 0 && tgt < vocab) return;
            for (let k = 0; k < vocab; k++) expect(g[row * vocab + k]).toBe(0);
          });
          for (const x of [value, ...grads]) x.dispose();
        }
      }
    }
  });

  it('gradient of bf16 logits comes back in bf16', () => {
    const { t: logits, v: lv } = rand([4, 6], 'bf16');
    const tv = [1, 5, -100, 0];
    const { grads } = valueAndGrad(() => crossEntropy(logits, tensor(tv, [4], 'i32')), [logits]);
    expect(grads[0]!.dtype).toBe('bf16');
    const expected = fdGrad((x) => {
      const { losses, counted } = crossEntropyRef(x, tv, 6, -100);
      return reduceLosses(losses, counted, 'mean');
    }, lv, [1]);
    expectClose(grads[0]!.dataSync(), expected, 1e-3, 2 ** -7, 'bf16 grad');
  });

  it('rejects bad input with typed errors', () => {
    const logits = tensor([[1, 2, 3], [4, 5, 6]]);
    expect(() => crossEntropy(logits, tensor([0, 1]))).toThrow(DTypeError);
    expect(() => crossEntropy(logits, tensor([0, 1]))).toThrow(/crossEntropy: input 'targets' must have dtype i32, got f32/);
    expect(() => crossEntropy(logits, tensor([0, 1, 2], [3], 'i32'))).toThrow(ShapeError);
    expect(() => crossEntropy(logits, tensor([0, 1, 2], [3], 'i32'))).toThrow(
      /'targets' must have the shape of logits without its last dim, \[2\], got \[3\]/,
    );
    expect(() => crossEntropy(tensor([], [2, 0]), tensor([0, 0], [2], 'i32'))).toThrow(/class dimension >= 1, got shape \[2, 0\]/);
    expect(() => crossEntropy(tensor(1), tensor(0, [], 'i32'))).toThrow(/'logits' must have rank >= 1/);
    expect(() => crossEntropy(logits, tensor([0, 1], [2], 'i32'), { reduction: 'avg' as never })).toThrow(AttrError);
    expect(() => crossEntropy(logits, tensor([0, 1], [2], 'i32'), { reduction: 'avg' as never })).toThrow(
      /attribute 'reduction' expected one of 'mean', 'sum', 'none', got 'avg'/,
    );
    expect(() => crossEntropy(logits, tensor([0, 1], [2], 'i32'), { ignoreIndex: 0.5 })).toThrow(/'ignoreIndex' expected an integer/);
    expect(() => crossEntropy(tensor([1, 2], [2], 'i32'), tensor(0, [], 'i32'))).toThrow(/input 'logits' must have dtype/);
  });
});
