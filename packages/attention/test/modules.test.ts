import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { ModuleError, memory, mul, sum, tidy, valueAndGrad, type Module, type Tensor } from '@ring-linear/core';
import {
  KVCache,
  LinearAttention,
  SoftmaxAttention,
  decayRates,
  headSlopes,
  layerSchedule,
  softmaxLayerIndices,
  type LinearAttentionConfig,
  type SoftmaxAttentionConfig,
} from '../src/index.js';
import { SEED, dot, expectClose, finiteDiff, read, rngFor, t, type Rng } from './helpers.js';

console.log(`module tests: seed ${SEED} (ATTN_SEED=${SEED} reproduces)`);

// ---------------------------------------------------------------------------------------------
// Float64 reference layers written from MODEL_SPEC §2-3

type Weights = Map<string, Float64Array>;

/** Gives every parameter random values (norm weights around 1) and returns them by name. */
function randomize(m: Module, rng: Rng): Weights {
  const out: Weights = new Map();
  for (const [name, p] of m.namedParameters()) {
    const norm = name.endsWith('layernorm.weight') || name.startsWith('g_norm');
    const vals = norm ? Float64Array.from({ length: p.size }, () => Math.fround(1 + 0.3 * rng.normal())) : rng.array(p.size, 0.3);
    p.assign(t(vals, p.shape));
    out.set(name, vals);
  }
  return out;
}

/** y[r] = W x[r] (+ b): x [rows, in], W [out, in]. */
function linear(x: Float64Array, W: Float64Array, inF: number, outF: number, b?: Float64Array): Float64Array {
  const rows = x.length / inF;
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let acc = b ? b[o]! : 0;
      for (let i = 0; i < inF; i++) acc += W[o * inF + i]! * x[r * inF + i]!;
      y[r * outF + o] = acc;
    }
  }
  return y;
}

/** RMSNorm over consecutive groups of `size`, times weight (indexed within `wSize` channels). */
function rmsGroups(x: Float64Array, size: number, w: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let g = 0; g < x.length / size; g++) {
    let ss = 0;
    for (let j = 0; j < size; j++) ss += x[g * size + j]! ** 2;
    const inv = 1 / Math.sqrt(ss / size + eps);
    for (let j = 0; j < size; j++) y[g * size + j] = x[g * size + j]! * inv * w[(g * size + j) % w.length]!;
  }
  return y;
}

/** NeoX partial RoPE with the fp32 angle convention on [T, H, D] rows at the given positions. */
function ropeRows(x: Float64Array, T: number, H: number, D: number, rot: number, theta: number, pos: (t: number) => number): Float64Array {
  const y = x.slice();
  const half = rot / 2;
  for (let tt = 0; tt < T; tt++) {
    for (let i = 0; i < half; i++) {
      const inv = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / rot)));
      const ang = Math.fround(pos(tt) * inv);
      const c = Math.cos(ang);
      const s = Math.sin(ang);
      for (let h = 0; h < H; h++) {
        const o = (tt * H + h) * D;
        y[o + i] = x[o + i]! * c - x[o + i + half]! * s;
        y[o + i + half] = x[o + i + half]! * c + x[o + i]! * s;
      }
    }
  }
  return y;
}

interface RefCfg {
  hidden: number;
  H: number;
  Hkv: number;
  D: number;
  rot: number;
  theta: number;
  eps: number;
}

/** qkv projection, QK-norm and RoPE for ONE sequence x [T, hidden]; q [T,H,D], k/v [T,Hkv,D]. */
function projectRef(x: Float64Array, w: Weights, c: RefCfg, pos0: number) {
  const T = x.length / c.hidden;
  const width = (c.H + 2 * c.Hkv) * c.D;
  const qkv = linear(x, w.get('query_key_value.weight')!, c.hidden, width, w.get('query_key_value.bias'));
  const q = new Float64Array(T * c.H * c.D);
  const k = new Float64Array(T * c.Hkv * c.D);
  const v = new Float64Array(T * c.Hkv * c.D);
  for (let tt = 0; tt < T; tt++) {
    const row = qkv.subarray(tt * width, (tt + 1) * width);
    q.set(row.subarray(0, c.H * c.D), tt * c.H * c.D);
    k.set(row.subarray(c.H * c.D, (c.H + c.Hkv) * c.D), tt * c.Hkv * c.D);
    v.set(row.subarray((c.H + c.Hkv) * c.D), tt * c.Hkv * c.D);
  }
  const qn = rmsGroups(q, c.D, w.get('query_layernorm.weight')!, Math.fround(c.eps));
  const kn = rmsGroups(k, c.D, w.get('key_layernorm.weight')!, Math.fround(c.eps));
  return {
    T,
    q: ropeRows(qn, T, c.H, c.D, c.rot, c.theta, (tt) => pos0 + tt),
    k: ropeRows(kn, T, c.Hkv, c.D, c.rot, c.theta, (tt) => pos0 + tt),
    v,
  };
}

/** MODEL_SPEC §2 for one sequence (fresh state): returns [T, hidden]. */
function linearLayerRef(x: Float64Array, w: Weights, c: RefCfg, a: Float64Array, groups: number): Float64Array {
  const { T, q, k, v } = projectRef(x, w, c, 0);
  const { H, D } = c;
  const s = 1 / Math.sqrt(D);
  const o = new Float64Array(T * H * D);
  for (let h = 0; h < H; h++) {
    const S = new Float64Array(D * D);
    const lambda = Math.exp(-a[h]!);
    for (let tt = 0; tt < T; tt++) {
      const b = (tt * H + h) * D;
      for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) S[i * D + j] = lambda * S[i * D + j]! + k[b + i]! * v[b + j]!;
      for (let j = 0; j < D; j++) {
        let acc = 0;
        for (let i = 0; i < D; i++) acc += s * q[b + i]! * S[i * D + j]!;
        o[b + j] = acc;
      }
    }
  }
  const HD = H * D;
  const normed = rmsGroups(o, HD / groups, w.get('g_norm.weight')!, Math.fround(c.eps));
  const gate = linear(x, w.get('g_proj.weight')!, c.hidden, HD);
  const gated = normed.map((n, i) => n / (1 + Math.exp(-gate[i]!)));
  return linear(gated, w.get('dense.weight')!, HD, c.hidden, w.get('dense.bias'));
}

/** MODEL_SPEC §3 for one sequence: causal GQA softmax attention; returns [T, hidden]. */
function softmaxLayerRef(x: Float64Array, w: Weights, c: RefCfg): Float64Array {
  const { T, q, k, v } = projectRef(x, w, c, 0);
  const { H, Hkv, D } = c;
  const G = H / Hkv;
  const o = new Float64Array(T * H * D);
  for (let h = 0; h < H; h++) {
    const hk = Math.floor(h / G);
    for (let i = 0; i < T; i++) {
      const sc: number[] = [];
      for (let j = 0; j <= i; j++) {
        let d = 0;
        for (let e = 0; e < D; e++) d += q[(i * H + h) * D + e]! * k[(j * Hkv + hk) * D + e]!;
        sc.push(d / Math.sqrt(D));
      }
      const m = Math.max(...sc);
      const p = sc.map((z) => Math.exp(z - m));
      const zsum = p.reduce((u, w2) => u + w2, 0);
      for (let e = 0; e < D; e++) {
        let acc = 0;
        p.forEach((pj, j) => (acc += pj * v[(j * Hkv + hk) * D + e]!));
        o[(i * H + h) * D + e] = acc / zsum;
      }
    }
  }
  return linear(o, w.get('dense.weight')!, H * D, c.hidden, w.get('dense.bias'));
}

/** The reference applied per batch entry / packed sequence. */
function perSequence(x: Float64Array, hidden: number, bounds: number[], f: (xs: Float64Array) => Float64Array): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i + 1 < bounds.length; i++) {
    const seg = x.subarray(bounds[i]! * hidden, bounds[i + 1]! * hidden);
    y.set(f(seg), bounds[i]! * hidden);
  }
  return y;
}

/** [B, T, hidden] rows t0..t0+n-1 of every batch entry. */
function timeSlice(x: Float64Array, B: number, T: number, hidden: number, t0: number, n: number): Float64Array {
  const out = new Float64Array(B * n * hidden);
  for (let b = 0; b < B; b++) out.set(x.subarray((b * T + t0) * hidden, (b * T + t0 + n) * hidden), b * n * hidden);
  return out;
}

function placeTime(dst: Float64Array, piece: Float64Array, B: number, T: number, hidden: number, t0: number): void {
  const n = piece.length / (B * hidden);
  for (let b = 0; b < B; b++) dst.set(piece.subarray(b * n * hidden, (b + 1) * n * hidden), (b * T + t0) * hidden);
}

/** Decay rates straight from the MODEL_SPEC formula (float64), for a power-of-two head count. */
function specDecay(H: number, l: number, L: number): Float64Array {
  return Float64Array.from({ length: H }, (_, i) => 2 ** (-(2 ** -(Math.log2(H) - 3)) * (i + 1)) * (1 - (l - 1) / (L - 1) + 1e-5));
}

// ---------------------------------------------------------------------------------------------

const LIN: LinearAttentionConfig = {
  hiddenSize: 12, numHeads: 2, headDim: 8, partialRotaryFactor: 0.5, ropeTheta: 1e4, groupNormSize: 2,
  layerIdx: 1, numLayers: 4, chunkSize: 4, useQkvBias: true,
};
const LIN_REF: RefCfg = { hidden: 12, H: 2, Hkv: 2, D: 8, rot: 4, theta: 1e4, eps: 1e-6 };
const SM: SoftmaxAttentionConfig = { hiddenSize: 12, numHeads: 4, numKvHeads: 2, headDim: 4, partialRotaryFactor: 0.5, ropeTheta: 1e6 };
const SM_REF: RefCfg = { hidden: 12, H: 4, Hkv: 2, D: 4, rot: 2, theta: 1e6, eps: 1e-6 };

describe('LinearAttention module', () => {
  it('parameters carry the checkpoint names (MODEL_SPEC §6) and shapes', () => {
    const m = new LinearAttention({ ...LIN, useQkvBias: false });
    expect(m.namedParameters().map(([n, p]) => `${n} ${p.shape.join('x')}`)).toEqual([
      'query_key_value.weight 48x12',
      'dense.weight 12x16',
      'g_proj.weight 16x12',
      'g_norm.weight 16',
      'query_layernorm.weight 8',
      'key_layernorm.weight 8',
    ]);
    expectClose(read(m.decay), specDecay(2, 1, 4), 1e-7, 'decay rates');
    m.dispose();
  });

  it('forward (batch 2) vs the float64 layer from MODEL_SPEC; packed sequences vs per-sequence', () => {
    const rng = rngFor('linear module fwd');
    const m = new LinearAttention(LIN);
    const w = randomize(m, rng);
    const a = read(m.decay);
    const [B, T] = [2, 11];
    const x = rng.array(B * T * 12);
    const ref = perSequence(x, 12, [0, T, 2 * T], (xs) => linearLayerRef(xs, w, LIN_REF, a, 2));
    tidy(() => {
      expectClose(read(m.forward(t(x, [B, T, 12]))), ref, 2e-5, 'LinearAttention forward');
      const cu = [0, 4, 5, 13, 22];
      const xp = rng.array(22 * 12);
      const refp = perSequence(xp, 12, cu, (xs) => linearLayerRef(xs, w, LIN_REF, a, 2));
      expectClose(read(m.forward(t(xp, [1, 22, 12]), { cuSeqlens: cu })), refp, 2e-5, 'LinearAttention packed forward');
    });
    m.dispose();
  });

  it('prefill then decode with a LinearAttentionState == one full pass; memory flat over decode steps', () => {
    const rng = rngFor('linear module decode');
    const m = new LinearAttention(LIN);
    randomize(m, rng);
    const [B, T] = [2, 21];
    const x = rng.array(B * T * 12);
    tidy(() => {
      const full = read(m.forward(t(x, [B, T, 12])));
      const state = m.createState(B);
      const got = new Float64Array(full.length);
      let pos = 0;
      for (const n of [10, 1, 1, 3, 1, 5]) {
        placeTime(got, read(m.forward(t(timeSlice(x, B, T, 12, pos, n), [B, n, 12]), { state })), B, T, 12, pos);
        pos += n;
      }
      expect(state.position).toBe(T);
      expectClose(got, full, 2e-5, 'prefill + decode vs full pass');
      // Flat memory: many more single-token steps change no counters.
      const one = t(timeSlice(x, B, T, 12, 0, 1), [B, 1, 12]);
      const step = () => m.forward(one, { state }).dispose();
      step();
      const before = memory();
      for (let i = 0; i < 100; i++) step();
      const after = memory();
      expect(after.tensors).toBe(before.tensors);
      expect(after.bytes).toBe(before.bytes);
      state.dispose();
    });
    m.dispose();
  });

  it('gradient w.r.t. the input vs finite differences of the float64 layer', () => {
    const rng = rngFor('linear module grad');
    const cfg = { ...LIN, hiddenSize: 6, numHeads: 2, headDim: 4, groupNormSize: 1, partialRotaryFactor: 1 };
    const refCfg = { ...LIN_REF, hidden: 6, D: 4, rot: 4 };
    const m = new LinearAttention(cfg);
    const w = randomize(m, rng);
    const a = read(m.decay);
    const x = rng.array(6 * 6);
    const wy = rng.array(6 * 6);
    const fd = finiteDiff(() => dot(linearLayerRef(x, w, refCfg, a, 1), wy), x);
    tidy(() => {
      const xt = t(x, [1, 6, 6]);
      const g = valueAndGrad(() => sum(mul(m.forward(xt), t(wy, [1, 6, 6]))), [xt]).grads[0]!;
      expectClose(read(g), fd, 1e-4, 'dx');
    });
    m.dispose();
  });

  it('bad configs get clear errors', () => {
    expect(() => new LinearAttention({ ...LIN, groupNormSize: 3 })).toThrow(ModuleError);
    expect(() => new LinearAttention({ ...LIN, groupNormSize: 3 })).toThrow(/16 channels do not divide into groupNormSize = 3/);
    expect(() => new LinearAttention({ ...LIN, rotaryDim: 5 })).toThrow(/rotary dim must be a positive even number <= headDim \(8\), got 5/);
    expect(() => new LinearAttention({ ...LIN, rotaryDim: 10 })).toThrow(/got 10/);
    const m = new LinearAttention(LIN);
    tidy(() => {
      expect(() => m.forward(t(new Float64Array(2 * 3 * 7).fill(1), [2, 3, 7]))).toThrow(/expected x \[batch, time, 12\], got \[2, 3, 7\]/);
      const state = m.createState(3);
      expect(() => m.forward(t(new Float64Array(2 * 3 * 12).fill(1), [2, 3, 12]), { state })).toThrow(/the state holds 3 sequences, x has batch 2/);
      state.dispose();
    });
    m.dispose();
  });
});

describe('SoftmaxAttention module', () => {
  it('parameters carry the checkpoint names', () => {
    const m = new SoftmaxAttention(SM);
    expect(m.namedParameters().map(([n, p]) => `${n} ${p.shape.join('x')}`)).toEqual([
      'query_key_value.weight 32x12',
      'dense.weight 12x16',
      'query_layernorm.weight 4',
      'key_layernorm.weight 4',
    ]);
    m.dispose();
  });

  it('forward vs the float64 layer; packed sequences vs per-sequence', () => {
    const rng = rngFor('softmax module fwd');
    const m = new SoftmaxAttention(SM);
    const w = randomize(m, rng);
    const [B, T] = [2, 9];
    const x = rng.array(B * T * 12);
    tidy(() => {
      const ref = perSequence(x, 12, [0, T, 2 * T], (xs) => softmaxLayerRef(xs, w, SM_REF));
      expectClose(read(m.forward(t(x, [B, T, 12]))), ref, 2e-5, 'SoftmaxAttention forward');
      const cu = [0, 6, 7, 15];
      const xp = rng.array(15 * 12);
      const refp = perSequence(xp, 12, cu, (xs) => softmaxLayerRef(xs, w, SM_REF));
      expectClose(read(m.forward(t(xp, [1, 15, 12]), { cuSeqlens: cu })), refp, 2e-5, 'SoftmaxAttention packed forward');
    });
    m.dispose();
  });

  it('prefill then decode with a KVCache == one full pass; the cache grows by doubling', () => {
    const rng = rngFor('softmax module decode');
    const m = new SoftmaxAttention(SM);
    randomize(m, rng);
    const [B, T] = [2, 40];
    const x = rng.array(B * T * 12);
    tidy(() => {
      const full = read(m.forward(t(x, [B, T, 12])));
      const cache = m.createCache(4);
      const got = new Float64Array(full.length);
      let pos = 0;
      const steps = [5, ...new Array<number>(30).fill(1), 2, 3];
      for (const n of steps) {
        placeTime(got, read(m.forward(t(timeSlice(x, B, T, 12, pos, n), [B, n, 12]), { cache })), B, T, 12, pos);
        pos += n;
      }
      expect(pos).toBe(T);
      expect(cache.length).toBe(T);
      expectClose(got, full, 2e-5, 'prefill + decode vs full pass');
      // 8 (the 5-token prefill) -> 16 -> 32 -> 64: four allocations for 40 tokens, not one per token.
      expect(cache.capacity).toBe(64);
      expect(cache.reallocations).toBe(4);
      cache.dispose();
    });
    m.dispose();
  });

  it('gradient w.r.t. the input vs finite differences of the float64 layer', () => {
    const rng = rngFor('softmax module grad');
    const m = new SoftmaxAttention(SM);
    const w = randomize(m, rng);
    const x = rng.array(5 * 12);
    const wy = rng.array(5 * 12);
    const fd = finiteDiff(() => dot(softmaxLayerRef(x, w, SM_REF), wy), x);
    tidy(() => {
      const xt = t(x, [1, 5, 12]);
      const g = valueAndGrad(() => sum(mul(m.forward(xt), t(wy, [1, 5, 12]))), [xt]).grads[0]!;
      expectClose(read(g), fd, 1e-4, 'dx');
    });
    m.dispose();
  });

  it('bad configs: head counts that do not divide', () => {
    expect(() => new SoftmaxAttention({ ...SM, numKvHeads: 3 })).toThrow(ModuleError);
    expect(() => new SoftmaxAttention({ ...SM, numKvHeads: 3 })).toThrow(/numHeads \(4\) must be a multiple of numKvHeads \(3\)/);
  });
});

describe('bf16 layers', () => {
  it('LinearAttention and SoftmaxAttention in bf16 follow the f32 layers within bf16 rounding; the state stays f32', () => {
    const rng = rngFor('bf16 modules');
    const lin = new LinearAttention(LIN);
    const gqa = new SoftmaxAttention(SM);
    randomize(lin, rng);
    randomize(gqa, rng);
    // A direction common to q and k in every head keeps q.k of a token with itself well away from 0.
    // At t = 0 the lightning output is (q0.k0) v0 and the group norm divides that scale out, leaving
    // its sign: with q0.k0 near 0, bf16 rounding could flip a whole row (the model's conditioning,
    // not a rounding error; it failed for 1 seed in ~40).
    const bias = lin.query_key_value.bias!;
    const bv = Float64Array.from(read(bias), (v, i) => (i < 2 * LIN.numHeads * LIN.headDim ? v + 2 : v));
    bias.assign(t(bv, bias.shape));
    const x = rng.array(2 * 9 * 12);
    tidy(() => {
      const want = read(gqa.forward(lin.forward(t(x, [2, 9, 12]))));
      lin.to('bf16');
      gqa.to('bf16');
      expect(lin.decay.dtype).toBe('f32');
      const state = lin.createState(2);
      const cache = gqa.createCache(4);
      const xb = t(x, [2, 9, 12], 'bf16');
      const y = gqa.forward(lin.forward(xb, { state }), { cache });
      expect(y.dtype).toBe('bf16');
      expect(state.state.dtype).toBe('f32');
      expect(cache.keys.dtype).toBe('bf16');
      // Each of a dozen bf16 roundings in a row adds up to 2^-8 relative error.
      expectClose(read(y), want, 0.08, 'bf16 layers vs f32 layers');
      state.dispose();
      cache.dispose();
    });
    lin.dispose();
    gqa.dispose();
  });
});

describe('KVCache', () => {
  it('a backend without device-to-device copy gets the rebuilt-buffer path, same contents', async () => {
    const rng = rngFor('kv cache no copy');
    const { getBackend } = await import('@ring-linear/core');
    const backend = getBackend() as { copy?: unknown };
    const withCopy = new KVCache({ initialCapacity: 2 });
    const without = new KVCache({ initialCapacity: 2 });
    tidy(() => {
      for (let i = 0; i < 5; i++) {
        const k = t(rng.array(2 * 2 * 1 * 3), [2, 2, 1, 3]);
        const v = t(rng.array(2 * 2 * 1 * 2), [2, 2, 1, 2]);
        withCopy.append(k, v);
        Object.defineProperty(backend, 'copy', { value: undefined, configurable: true, writable: true });
        try {
          without.append(k, v);
        } finally {
          delete backend.copy;
        }
      }
      expect(typeof backend.copy).toBe('function');
      expect(without.length).toBe(10);
      expect(without.capacity).toBe(withCopy.capacity);
      const valid = (c: KVCache, x: Tensor) => {
        const all = read(x);
        const row = x.shape[2]! * x.shape[3]!;
        return [0, 1].flatMap((b) => [...all.subarray(b * c.capacity * row, (b * c.capacity + c.length) * row)]);
      };
      expect(valid(without, without.keys)).toEqual(valid(withCopy, withCopy.keys));
      expect(valid(without, without.values)).toEqual(valid(withCopy, withCopy.values));
    });
    withCopy.dispose();
    without.dispose();
  });


  it('appends in place, keeps earlier rows, rejects mismatched shapes; tensor count stays at two buffers', () => {
    const rng = rngFor('kv cache');
    const cache = new KVCache({ initialCapacity: 2 });
    const rows: Float64Array[] = [];
    tidy(() => {
      const before = memory().tensors;
      for (let i = 0; i < 9; i++) {
        const kv = rng.array(2 * 1 * 3 * 4);
        rows.push(kv);
        tidy(() => cache.append(t(kv, [2, 1, 3, 4]), t(kv, [2, 1, 3, 4])));
        expect(memory().tensors).toBe(before + 2);
      }
      expect(cache.length).toBe(9);
      expect(cache.capacity).toBe(16);
      const k = read(cache.keys);
      for (let i = 0; i < 9; i++) {
        for (let b = 0; b < 2; b++) {
          expect([...k.subarray((b * 16 + i) * 12, (b * 16 + i + 1) * 12)]).toEqual([...rows[i]!.subarray(b * 12, (b + 1) * 12)]);
        }
      }
      expect(() => cache.append(t(rng.array(2 * 1 * 2 * 4), [2, 1, 2, 4]), t(rng.array(2 * 1 * 2 * 4), [2, 1, 2, 4]))).toThrow(/the cache holds k \[2, \*, 3, 4\]/);
    });
    cache.dispose();
  });
});

// ---------------------------------------------------------------------------------------------

describe('decayRates (MODEL_SPEC §2)', () => {
  it('H = 16: slopes 2^(-0.5 (h + 1)); the per-layer factor in each convention', () => {
    const slopes = headSlopes(16);
    slopes.forEach((s, h) => expect(s).toBeCloseTo(2 ** (-0.5 * (h + 1)), 15));
    const L = 20;
    const factor = { hf: 1 + 1 / 19 + 1e-5, clamped: 1 + 1e-5, serving: 1 + 1e-5 };
    for (const convention of ['hf', 'clamped', 'serving'] as const) {
      const a = decayRates(16, 0, L, { convention });
      a.forEach((v, h) => expect(v).toBeCloseTo(Math.fround(slopes[h]! * factor[convention]), 6));
    }
    // Layer 7: hf uses l - 1 = 6, serving uses 7.
    expect(decayRates(16, 7, L)[0]).toBeCloseTo(2 ** -0.5 * (1 - 6 / 19 + 1e-5), 6);
    expect(decayRates(16, 7, L, { convention: 'serving' })[0]).toBeCloseTo(2 ** -0.5 * (1 - 7 / 19 + 1e-5), 6);
    // The last layer still decays (the 1e-5 keeps it positive under 'serving').
    expect(decayRates(16, 19, L, { convention: 'serving' })[0]).toBeGreaterThan(0);
    expect(decayRates(16, 5, L)).toBeInstanceOf(Float32Array);
  });

  it('non-power-of-two head counts: base(p) + base(2p)[0::2][:H-p]', () => {
    const base = (n: number) => Array.from({ length: n }, (_, i) => 2 ** (-(2 ** -(Math.log2(n) - 3)) * (i + 1)));
    const same = (got: number[], want: number[]) => {
      expect(got.length).toBe(want.length);
      got.forEach((g, i) => expect(Math.abs(g - want[i]!) / want[i]!).toBeLessThan(4e-15));
    };
    same(headSlopes(12), [...base(8), ...base(16).filter((_, i) => i % 2 === 0).slice(0, 4)]);
    same(headSlopes(6), [...base(4), base(8)[0]!, base(8)[2]!]);
    same(headSlopes(1), base(1));
    same(headSlopes(16), base(16));
    expect(() => decayRates(16, 20, 20)).toThrow(/layerIdx must be an integer in \[0, 19\]/);
    expect(() => decayRates(16, 0, 20, { convention: 'vllm' as never })).toThrow(/convention must be one of 'hf', 'clamped', 'serving'/);
  });
});

describe('layerSchedule (MODEL_SPEC §1)', () => {
  it('Ring-mini and Ring-flash softmax layers; trailing layers are softmax; explicit lists', () => {
    expect(softmaxLayerIndices(layerSchedule({ numLayers: 20, layerGroupSize: 5 }))).toEqual([4, 9, 14, 19]);
    expect(softmaxLayerIndices(layerSchedule({ numLayers: 32, layerGroupSize: 8 }))).toEqual([7, 15, 23, 31]);
    expect(layerSchedule({ numLayers: 7, layerGroupSize: 3 })).toEqual(['linear', 'linear', 'softmax', 'linear', 'linear', 'softmax', 'softmax']);
    expect(layerSchedule(['softmax', 'linear'])).toEqual(['softmax', 'linear']);
    expect(() => layerSchedule(['linear', 'mamba' as never])).toThrow(/entry 1 must be 'linear' or 'softmax', got "mamba"/);
    expect(() => layerSchedule({ numLayers: 4, layerGroupSize: 0 })).toThrow(/layerGroupSize must be an integer >= 1/);
  });
});

