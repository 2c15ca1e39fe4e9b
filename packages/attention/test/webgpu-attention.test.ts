/**
 * Issue 4's checks on the WebGPU backend (Dawn; SwiftShader on machines without a GPU):
 *   - chunked lightning attention == the recurrent step == the float64 quadratic formula with the
 *     decay mask, for odd T, chunk-boundary T, T below a chunk, one token, packed sequences, and a
 *     long sequence with strong decay (finite, equal to the recurrence);
 *   - flash softmax attention vs full float64 score rows (GQA, several key tiles, a KV-cache
 *     buffer whose spare rows hold NaN that must never be read);
 *   - prefill then decode == one pass, through the LinearAttention and SoftmaxAttention modules
 *     on WebGPU (fp32 state), and the modules' outputs == the CPU backend's;
 *   - gradients of every fused op on WebGPU (through the WGSL backward kernels) vs the CPU's;
 *   - the 64 x 64 tiles GPUs use, forced on SwiftShader (RING_LINEAR_WEBGPU_ATTENTION_TILES=big).
 * Skipped, with the reason printed, where there is no WebGPU adapter.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import '@ring-linear/backend-cpu';
import {
  add,
  dispose,
  findBackend,
  mul,
  setBackend,
  sum,
  tensor,
  toBackend,
  valueAndGrad,
  type Module,
  type Tensor,
} from '@ring-linear/core';
import { optionalBackendReason } from '@ring-linear/conformance';
import {
  LinearAttention,
  SoftmaxAttention,
  groupRmsNormGate,
  lightningAttention,
  lightningAttentionStep,
  rope,
  softmaxAttentionWithLse,
} from '../src/index.js';
import { SEED, expectClose, linearQuadraticRef, linearRecurrentRef, rngFor, softmaxRef, type LinearRefInput, type Rng } from './helpers.js';

// Pipelines compile slowly on SwiftShader (a CPU Vulkan): one test can take tens of seconds.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const reason = await optionalBackendReason('webgpu', () => import('@ring-linear/backend-webgpu'), 'attention webgpu');
console.log(`attention WebGPU tests: seed ${SEED} (ATTN_SEED=${SEED} reproduces)`);

/** A host array as an f32 tensor on a backend. */
const on = (backend: 'cpu' | 'webgpu', values: ArrayLike<number>, shape: readonly number[], dtype: 'f32' | 'i32' = 'f32') =>
  tensor(dtype === 'i32' ? Int32Array.from(values) : Float32Array.from(values), shape, dtype, findBackend(backend));
const gpu = (values: ArrayLike<number>, shape: readonly number[], dtype: 'f32' | 'i32' = 'f32') => on('webgpu', values, shape, dtype);
const read = async (x: Tensor) => Float64Array.from(await x.data());

/** f32 compute on the GPU: errors relative to the largest magnitude of the result. */
const RTOL = 2e-5;

interface LinearCase {
  name: string;
  B: number;
  T: number;
  H: number;
  D: number;
  Dv: number;
  C?: number;
  cu?: number[];
  decay?: [number, number];
}

function linearInput(c: LinearCase, label: string): LinearRefInput {
  const rng = rngFor(label);
  const N = c.cu ? c.cu.length - 1 : c.B;
  const [lo, hi] = c.decay ?? [0.02, 1.5];
  return {
    B: c.B, T: c.T, H: c.H, D: c.D, Dv: c.Dv,
    q: rng.array(c.B * c.T * c.H * c.D),
    k: rng.array(c.B * c.T * c.H * c.D),
    v: rng.array(c.B * c.T * c.H * c.Dv),
    decay: Float64Array.from({ length: c.H }, () => Math.fround(rng.uniform(lo, hi))),
    s0: rng.array(N * c.H * c.D * c.Dv, 0.5),
    scale: 1 / Math.sqrt(c.D),
    cuSeqlens: c.cu ?? null,
  };
}

function linearTensors(x: LinearRefInput, backend: 'cpu' | 'webgpu' = 'webgpu') {
  const N = x.s0.length / (x.H * x.D * x.Dv);
  return {
    q: on(backend, x.q, [x.B, x.T, x.H, x.D]),
    k: on(backend, x.k, [x.B, x.T, x.H, x.D]),
    v: on(backend, x.v, [x.B, x.T, x.H, x.Dv]),
    decay: on(backend, x.decay, [x.H]),
    s0: on(backend, x.s0, [N, x.H, x.D, x.Dv]),
  };
}

describe.skipIf(reason !== null)(`attention on WebGPU${reason ? ` (skipped: ${reason})` : ''}`, () => {
  afterAll(async () => {
    await setBackend('cpu');
  });

  describe('lightningAttention: chunked (WGSL) == recurrent step (WGSL) == float64 quadratic formula', () => {
    const cases: LinearCase[] = [
      { name: 'odd T (37), chunk 16, batch 2', B: 2, T: 37, H: 3, D: 8, Dv: 5, C: 16 },
      { name: 'chunk-boundary T (32 = 2 chunks of 16)', B: 1, T: 32, H: 2, D: 4, Dv: 4, C: 16 },
      { name: 'T (5) below the default chunk', B: 3, T: 5, H: 1, D: 6, Dv: 3 },
      { name: 'one token, chunk 1', B: 2, T: 1, H: 2, D: 3, Dv: 2, C: 1 },
      { name: 'packed sequences [0, 7, 23, 24, 40], chunk 8', B: 1, T: 40, H: 2, D: 5, Dv: 4, C: 8, cu: [0, 7, 23, 24, 40] },
      { name: 'T (70) over several kernel chunks, default chunk size', B: 1, T: 70, H: 2, D: 3, Dv: 3 },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const x = linearInput(c, `webgpu fwd ${c.name}`);
        const quad = linearQuadraticRef(x);
        const { q, k, v, decay, s0 } = linearTensors(x);
        const fused = lightningAttention(q, k, v, { decay, initialState: s0, cuSeqlens: c.cu ?? null, ...(c.C ? { chunkSize: c.C } : {}) });
        expect(fused.out.backend).toBe('webgpu');
        expect(fused.finalState.dtype).toBe('f32');
        expectClose(await read(fused.out), quad.out, RTOL, `${c.name}: chunked out`);
        expectClose(await read(fused.finalState), quad.state, RTOL, `${c.name}: chunked final state`);
        const made: Tensor[] = [fused.out, fused.finalState];
        if (!c.cu) {
          const step = lightningAttentionStep(q, k, v, { decay, state: s0 });
          expectClose(await read(step.out), quad.out, RTOL, `${c.name}: recurrent out`);
          expectClose(await read(step.state), quad.state, RTOL, `${c.name}: recurrent state`);
          made.push(step.out, step.state);
        }
        dispose([...made, q, k, v, decay, s0]);
      });
    }

    it('T = 8192 with strong decay (a = 25) stays finite and equals the recurrence', async () => {
      const c: LinearCase = { name: 'long', B: 1, T: 8192, H: 2, D: 2, Dv: 3, decay: [0.5, 0.5] };
      const x = linearInput(c, 'webgpu long decay');
      x.decay[0] = 25;
      const rec = linearRecurrentRef(x);
      const { q, k, v, decay, s0 } = linearTensors(x);
      const r = lightningAttention(q, k, v, { decay, initialState: s0 });
      const out = await read(r.out);
      expect(out.every(Number.isFinite)).toBe(true);
      expectClose(out, rec.out, RTOL, 'long out');
      expectClose(await read(r.finalState), rec.state, RTOL, 'long final state');
      dispose([r.out, r.finalState, q, k, v, decay, s0]);
    });
  });

  describe('softmaxAttention (flash, WGSL) vs full float64 score rows', () => {
    const cases = [
      { name: 'GQA 4/2, causal, batch 2', B: 2, Tq: 19, Tk: 19, H: 4, Hkv: 2, D: 8, Dv: 6, attrs: {} },
      { name: 'keys over several tiles (Tk = 150), not causal', B: 1, Tq: 3, Tk: 150, H: 2, Hkv: 1, D: 4, Dv: 3, attrs: { causal: false, scale: 1.5 } },
      { name: 'packed [0, 40, 41, 75]', B: 1, Tq: 75, Tk: 75, H: 2, Hkv: 2, D: 3, Dv: 3, attrs: { cuSeqlens: [0, 40, 41, 75] } },
      { name: 'decode 2 queries against a cache of 80 holding 70 (spare rows NaN)', B: 2, Tq: 2, Tk: 80, H: 2, Hkv: 1, D: 4, Dv: 4, attrs: { kvLen: 70 } },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const rng = rngFor(`webgpu softmax ${c.name}`);
        const q = rng.array(c.B * c.Tq * c.H * c.D);
        const k = rng.array(c.B * c.Tk * c.Hkv * c.D);
        const v = rng.array(c.B * c.Tk * c.Hkv * c.Dv);
        const kvLen = (c.attrs as { kvLen?: number }).kvLen;
        if (kvLen !== undefined) {
          // Rows past kvLen are unspecified in a cache: poison them.
          for (let b = 0; b < c.B; b++) {
            for (let j = kvLen; j < c.Tk; j++) {
              k.fill(NaN, ((b * c.Tk + j) * c.Hkv) * c.D, ((b * c.Tk + j + 1) * c.Hkv) * c.D);
              v.fill(NaN, ((b * c.Tk + j) * c.Hkv) * c.Dv, ((b * c.Tk + j + 1) * c.Hkv) * c.Dv);
            }
          }
        }
        const a = c.attrs as { scale?: number; causal?: boolean; cuSeqlens?: number[]; kvLen?: number };
        const want = softmaxRef({ B: c.B, Tq: c.Tq, Tk: c.Tk, H: c.H, Hkv: c.Hkv, D: c.D, Dv: c.Dv, q, k, v, scale: a.scale ?? 1 / Math.sqrt(c.D), causal: a.causal ?? true, cuSeqlens: a.cuSeqlens ?? null, ...(kvLen !== undefined ? { kvLen } : {}) });
        const [tq, tk, tv] = [gpu(q, [c.B, c.Tq, c.H, c.D]), gpu(k, [c.B, c.Tk, c.Hkv, c.D]), gpu(v, [c.B, c.Tk, c.Hkv, c.Dv])];
        const { out, lse } = softmaxAttentionWithLse(tq, tk, tv, a);
        expectClose(await read(out), want.out, RTOL, `${c.name}: out`);
        expectClose(await read(lse), want.lse, RTOL, `${c.name}: lse`);
        dispose([out, lse, tq, tk, tv]);
      });
    }
  });

  describe('prefill then decode == one pass, through the modules on WebGPU; == the CPU backend', () => {
    /** A module on each backend with the same random weights. */
    async function twins<M extends Module>(make: () => M, rng: Rng): Promise<[M, M]> {
      await setBackend('cpu');
      const cpuM = make();
      for (const [name, p] of cpuM.namedParameters()) {
        const norm = name.endsWith('layernorm.weight') || name.startsWith('g_norm');
        const vals = norm ? Float64Array.from({ length: p.size }, () => Math.fround(1 + 0.3 * rng.normal())) : rng.array(p.size, 0.3);
        p.assign(on('cpu', vals, p.shape));
      }
      await setBackend('webgpu');
      const gpuM = make();
      const cpuParams = new Map(cpuM.namedParameters());
      for (const [name, p] of gpuM.namedParameters()) p.assign(await toBackend(cpuParams.get(name)!, 'webgpu'));
      await setBackend('cpu');
      return [cpuM, gpuM];
    }

    /** Rows [t0, t0 + n) of every batch entry of x [B, T, W]. */
    const rows = (x: Float64Array, B: number, T: number, W: number, t0: number, n: number) => {
      const out = new Float64Array(B * n * W);
      for (let b = 0; b < B; b++) out.set(x.subarray((b * T + t0) * W, (b * T + t0 + n) * W), b * n * W);
      return out;
    };
    const place = (dst: Float64Array, piece: Float64Array, B: number, T: number, W: number, t0: number) => {
      const n = piece.length / (B * W);
      for (let b = 0; b < B; b++) dst.set(piece.subarray(b * n * W, (b + 1) * n * W), (b * T + t0) * W);
    };

    it('LinearAttention: prefill 10, then decode (recurrent step) and a second chunked call', async () => {
      const rng = rngFor('webgpu linear module');
      const cfg = { hiddenSize: 12, numHeads: 2, headDim: 8, partialRotaryFactor: 0.5, ropeTheta: 1e4, groupNormSize: 2, layerIdx: 1, numLayers: 4, chunkSize: 4 };
      const [cpuM, gpuM] = await twins(() => new LinearAttention(cfg), rng);
      const [B, T, W] = [2, 23, 12];
      const x = rng.array(B * T * W);
      const want = await read(cpuM.forward(on('cpu', x, [B, T, W])));
      const fullIn = gpu(x, [B, T, W]);
      const full = gpuM.forward(fullIn);
      const fullV = await read(full);
      expectClose(fullV, want, RTOL, 'one pass on WebGPU vs the CPU backend');
      const state = gpuM.createState(B);
      expect(state.state.backend).toBe('webgpu');
      const got = new Float64Array(fullV.length);
      let pos = 0;
      // 10: chunked prefill; 1, 1, 3: recurrent steps; 8: chunked again from the carried state.
      for (const n of [10, 1, 1, 3, 8]) {
        const xi = gpu(rows(x, B, T, W, pos, n), [B, n, W]);
        const y = gpuM.forward(xi, { state });
        place(got, await read(y), B, T, W, pos);
        dispose([xi, y]);
        pos += n;
      }
      expect(state.position).toBe(T);
      expect(state.state.dtype).toBe('f32');
      expectClose(got, fullV, RTOL, 'prefill + decode vs one pass');
      dispose([fullIn, full]);
      state.dispose();
      cpuM.dispose();
      gpuM.dispose();
    });

    it('SoftmaxAttention: prefill 5, then decode against a growing KV cache', async () => {
      const rng = rngFor('webgpu softmax module');
      const cfg = { hiddenSize: 12, numHeads: 4, numKvHeads: 2, headDim: 4, partialRotaryFactor: 0.5, ropeTheta: 1e6 };
      const [cpuM, gpuM] = await twins(() => new SoftmaxAttention(cfg), rng);
      const [B, T, W] = [2, 20, 12];
      const x = rng.array(B * T * W);
      const want = await read(cpuM.forward(on('cpu', x, [B, T, W])));
      const fullIn = gpu(x, [B, T, W]);
      const full = gpuM.forward(fullIn);
      const fullV = await read(full);
      expectClose(fullV, want, RTOL, 'one pass on WebGPU vs the CPU backend');
      const cache = gpuM.createCache(4);
      const got = new Float64Array(fullV.length);
      let pos = 0;
      for (const n of [5, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 3, 1]) {
        const xi = gpu(rows(x, B, T, W, pos, n), [B, n, W]);
        const y = gpuM.forward(xi, { cache });
        place(got, await read(y), B, T, W, pos);
        dispose([xi, y]);
        pos += n;
      }
      expect(pos).toBe(T);
      expect(cache.length).toBe(T);
      expect(cache.keys.backend).toBe('webgpu');
      expectClose(got, fullV, RTOL, 'prefill + decode vs one pass');
      dispose([fullIn, full]);
      cache.dispose();
      cpuM.dispose();
      gpuM.dispose();
    });
  });

  describe('gradients on WebGPU (WGSL backward kernels) vs the CPU backend', () => {
    /**
     * Gradients of sum(f(inputs) * weights) with respect to the float inputs, on both backends.
     * `f` returns the outputs to weight; `diff` the indices of the inputs to differentiate.
     */
    async function compareGrads(label: string, inputs: { values: Float64Array; shape: number[]; dtype?: 'f32' | 'i32' }[], diff: number[], f: (xs: Tensor[]) => Tensor[], rtol = 1e-4): Promise<void> {
      const run = async (backend: 'cpu' | 'webgpu') => {
        const xs = inputs.map((i) => on(backend, i.values, i.shape, i.dtype));
        const outShapes = f(xs).map((o) => {
          const s = o.shape;
          o.dispose();
          return s;
        });
        const wRng = rngFor(`${label} weights`);
        const ws = outShapes.map((s) => on(backend, wRng.array(s.reduce((a, b) => a * b, 1)), s));
        const { value, grads } = valueAndGrad(() => {
          const outs = f(xs);
          let total: Tensor | null = null;
          outs.forEach((o, k) => {
            const term = sum(mul(o, ws[k]!));
            total = total ? add(total, term) : term;
          });
          return total!;
        }, diff.map((i) => xs[i]!));
        const vals = await Promise.all(grads.map(read));
        dispose([value, ...grads, ...xs, ...ws]);
        return vals;
      };
      const want = await run('cpu');
      const got = await run('webgpu');
      diff.forEach((idx, g) => expectClose(got[g]!, want[g]!, rtol, `${label}: gradient of input ${idx}`, 1e-6));
    }

    it('lightningAttention (q, k, v, initial state; packed) and lightningAttentionStep', async () => {
      const rng = rngFor('webgpu lightning grads');
      const [T, H, D, Dv] = [21, 2, 4, 3];
      const cu = [0, 9, 10, 21];
      const decay = [0.3, 1.1];
      const ins = (B: number, N: number) => [
        { values: rng.array(B * T * H * D), shape: [B, T, H, D] },
        { values: rng.array(B * T * H * D), shape: [B, T, H, D] },
        { values: rng.array(B * T * H * Dv), shape: [B, T, H, Dv] },
        { values: Float64Array.from(decay), shape: [H] },
        { values: rng.array(N * H * D * Dv, 0.5), shape: [N, H, D, Dv] },
      ];
      const packed = ins(1, 3);
      await compareGrads('lightning packed', packed, [0, 1, 2, 4], ([q, k, v, a, s0]) => {
        const r = lightningAttention(q!, k!, v!, { decay: a!, initialState: s0!, cuSeqlens: cu, chunkSize: 4 });
        return [r.out, r.finalState];
      });
      const batched = ins(2, 2);
      await compareGrads('lightning step', batched, [0, 1, 2, 4], ([q, k, v, a, s0]) => {
        const r = lightningAttentionStep(q!, k!, v!, { decay: a!, state: s0! });
        return [r.out, r.state];
      });
    });

    it('softmaxAttention with lse (GQA, causal, decode against a cache, packed)', async () => {
      const rng = rngFor('webgpu softmax grads');
      const mk = (B: number, Tq: number, Tk: number, H: number, Hkv: number, D: number, Dv: number) => [
        { values: rng.array(B * Tq * H * D), shape: [B, Tq, H, D] },
        { values: rng.array(B * Tk * Hkv * D), shape: [B, Tk, Hkv, D] },
        { values: rng.array(B * Tk * Hkv * Dv), shape: [B, Tk, Hkv, Dv] },
      ];
      const both = (a: object) => ([q, k, v]: Tensor[]) => {
        const r = softmaxAttentionWithLse(q!, k!, v!, a);
        return [r.out, r.lse];
      };
      await compareGrads('softmax GQA', mk(2, 37, 37, 4, 2, 5, 3), [0, 1, 2], both({}));
      await compareGrads('softmax cache', mk(1, 3, 45, 2, 1, 4, 4), [0, 1, 2], both({ kvLen: 40 }));
      await compareGrads('softmax packed', mk(1, 40, 40, 2, 1, 3, 3), [0, 1, 2], both({ cuSeqlens: [0, 17, 18, 40] }));
    });

    it('rope (gradient = inverse rotation) and groupRmsNormGate', async () => {
      const rng = rngFor('webgpu rope gate grads');
      const pos = { values: Float64Array.from([5, 6, 7, 70000]), shape: [4], dtype: 'i32' as const };
      await compareGrads('rope', [{ values: rng.array(2 * 4 * 3 * 8), shape: [2, 4, 3, 8] }, pos], [0], ([x, p]) => [rope(x!, { positions: p!, rotaryDim: 6, theta: 1e4 })]);
      await compareGrads(
        'groupRmsNormGate',
        [{ values: rng.array(3 * 12), shape: [3, 12] }, { values: rng.array(3 * 12, 2), shape: [3, 12] }, { values: rng.array(12), shape: [12] }],
        [0, 1, 2],
        ([o, g, w]) => [groupRmsNormGate(o!, g!, w!, { groups: 3 })],
      );
    });
  });

  describe('the GPU tiles (64 x 64, 256 invocations) forced on this adapter', () => {
    it('lightning and softmax attention forward and backward vs the CPU backend', async () => {
      const prev = process.env.RING_LINEAR_WEBGPU_ATTENTION_TILES;
      process.env.RING_LINEAR_WEBGPU_ATTENTION_TILES = 'big';
      try {
        const rng = rngFor('webgpu big tiles');
        // T = 130: chunks / query blocks of 64, 64 and 2; head dims past one 16-wide k step.
        const [T, H, D] = [130, 2, 20];
        const lin = linearInput({ name: 'big', B: 1, T, H, D, Dv: 18 }, 'webgpu big lightning');
        const quad = linearQuadraticRef(lin);
        const lt = linearTensors(lin);
        const r = lightningAttention(lt.q, lt.k, lt.v, { decay: lt.decay, initialState: lt.s0 });
        expectClose(await read(r.out), quad.out, RTOL, 'big tiles: lightning out');
        expectClose(await read(r.finalState), quad.state, RTOL, 'big tiles: lightning state');
        dispose([r.out, r.finalState, ...Object.values(lt)]);

        const q = rng.array(T * H * D);
        const k = rng.array(T * D);
        const v = rng.array(T * D);
        const want = softmaxRef({ B: 1, Tq: T, Tk: T, H, Hkv: 1, D, Dv: D, q, k, v, scale: 1 / Math.sqrt(D), causal: true });
        const [tq, tk, tv] = [gpu(q, [1, T, H, D]), gpu(k, [1, T, 1, D]), gpu(v, [1, T, 1, D])];
        const s = softmaxAttentionWithLse(tq, tk, tv);
        expectClose(await read(s.out), want.out, RTOL, 'big tiles: softmax out');
        expectClose(await read(s.lse), want.lse, RTOL, 'big tiles: softmax lse');
        dispose([s.out, s.lse, tq, tk, tv]);

        // Backward kernels with the same tiles, against the CPU's gradients.
        const grad = async (backend: 'cpu' | 'webgpu') => {
          const xs = [on(backend, lin.q, [1, T, H, D]), on(backend, lin.k, [1, T, H, D]), on(backend, lin.v, [1, T, H, 18]), on(backend, lin.decay, [H])];
          const sk = [on(backend, q, [1, T, H, D]), on(backend, k, [1, T, 1, D]), on(backend, v, [1, T, 1, D])];
          const g1 = valueAndGrad(() => sum(mul(lightningAttention(xs[0]!, xs[1]!, xs[2]!, { decay: xs[3]! }).out, xs[2]!)), xs.slice(0, 3));
          const g2 = valueAndGrad(() => sum(mul(softmaxAttentionWithLse(sk[0]!, sk[1]!, sk[2]!).out, sk[0]!)), sk);
          const vals = await Promise.all([...g1.grads, ...g2.grads].map(read));
          dispose([g1.value, g2.value, ...g1.grads, ...g2.grads, ...xs, ...sk]);
          return vals;
        };
        const want2 = await grad('cpu');
        const got2 = await grad('webgpu');
        got2.forEach((g, i) => expectClose(g, want2[i]!, 1e-4, `big tiles: gradient ${i}`, 1e-6));
      } finally {
        if (prev === undefined) delete process.env.RING_LINEAR_WEBGPU_ATTENTION_TILES;
        else process.env.RING_LINEAR_WEBGPU_ATTENTION_TILES = prev;
      }
    });
  });
});
