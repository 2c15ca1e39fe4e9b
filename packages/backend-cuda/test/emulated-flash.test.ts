/**
 * The flash attention kernels (kernels/flash.cuh, host side in src/ops/attention.ts) through the
 * CUDA backend's host side: the mock driver plus JavaScript models of the kernels
 * (test/mock/emu_flash.ts). The OpInfo records of softmaxAttention and softmaxAttentionBackward
 * run against the CPU (their small head dims take split-K forward and the general backward
 * kernels); then the tensor-core shapes (D = Dv in {64, 128}, bf16 / f16) against float64 formulas
 * written here: several query and key tiles, tails, GQA, causal and not, kvLen / kvOffset, packed
 * sequences; the routing (decode-sized Tq to split-K); the tensor-core decode kernel (split
 * partials and their combine); and the general backward (odd head dims,
 * f32). The device code itself is checked on the GPU machine (tools/gpu/steps/flash.ts).
 */
import { describe, expect, it } from 'vitest';
import type { DType } from '@ring-linear/core';
import { buildMockCuda } from './mock/build.js';
import { installEmulator } from './mock/emulator.js';
import { randoms as randoms64 } from './mock/random.js';
import './mock/emu_flash.js';

const built = await buildMockCuda();
const skip = 'skip' in built ? built.skip : null;
if (skip) console.log(`[backend-cuda] emulated flash attention skipped: ${skip}`);

const OPS = ['softmaxAttention', 'softmaxAttentionBackward'];

async function setup() {
  const core = await import('@ring-linear/core');
  await import('@ring-linear/backend-cpu');
  await import('../src/index.js');
  const attention = await import('@ring-linear/attention');
  const koffi = ((await import('koffi')) as any).default;
  await core.initBackend('cpu');
  const b = (await core.initBackend('cuda')) as import('../src/backend.js').CudaBackend;
  const { launches } = installEmulator(b, koffi);
  return { core, attention, b, launches };
}

/** Uniform values in [-1, 1) as f32. */
const randoms = (seed: number, n: number): Float32Array => Float32Array.from(randoms64(seed, n));

interface Case {
  B: number; Tq: number; Tk: number; H: number; Hkv: number; D: number; Dv: number;
  causal: boolean; scale: number; kvLen?: number; kvOffset?: number; cuSeqlens?: number[];
}

/** Segments of a case: queries [q0, q0 + nq) against keys [k0, k0 + nk), query 0 at position off. */
function segments(c: Case): { q0: number; nq: number; k0: number; nk: number; off: number }[] {
  if (c.cuSeqlens) return c.cuSeqlens.slice(0, -1).map((s, i) => ({ q0: s, nq: c.cuSeqlens![i + 1]! - s, k0: s, nk: c.cuSeqlens![i + 1]! - s, off: 0 }));
  const nk = c.kvLen ?? c.Tk;
  return [{ q0: 0, nq: c.Tq, k0: 0, nk, off: c.kvOffset ?? Math.max(nk - c.Tq, 0) }];
}

/** Probabilities of query (b, i, h) over keys [k0, k0 + hi) and the log-sum-exp, float64 (MODEL_SPEC §3). */
function probs(c: Case, Q: Float32Array, K: Float32Array, b: number, h: number, i: number, k0: number, hi: number) {
  const hk = Math.floor(h / (c.H / c.Hkv));
  const s: number[] = [];
  for (let j = 0; j < hi; j++) {
    let d = 0;
    for (let x = 0; x < c.D; x++) d += Q[((b * c.Tq + i) * c.H + h) * c.D + x]! * K[((b * c.Tk + k0 + j) * c.Hkv + hk) * c.D + x]!;
    s.push(c.scale * d);
  }
  const m = Math.max(...s);
  const z = s.reduce((u, w) => u + Math.exp(w - m), 0);
  return { p: s.map((w) => Math.exp(w - m) / z), lse: m + Math.log(z), hk };
}

function forwardRef(c: Case, Q: Float32Array, K: Float32Array, V: Float32Array) {
  const out = new Float64Array(c.B * c.Tq * c.H * c.Dv), lse = new Float64Array(c.B * c.H * c.Tq);
  for (const g of segments(c)) {
    for (let b = 0; b < c.B; b++) {
      for (let h = 0; h < c.H; h++) {
        for (let i = 0; i < g.nq; i++) {
          const hi = c.causal ? Math.min(g.nk, g.off + i + 1) : g.nk;
          const { p, lse: l, hk } = probs(c, Q, K, b, h, g.q0 + i, g.k0, hi);
          lse[(b * c.H + h) * c.Tq + g.q0 + i] = l;
          for (let e = 0; e < c.Dv; e++) {
            let o = 0;
            p.forEach((w, j) => { o += w * V[((b * c.Tk + g.k0 + j) * c.Hkv + hk) * c.Dv + e]!; });
            out[((b * c.Tq + g.q0 + i) * c.H + h) * c.Dv + e] = o;
          }
        }
      }
    }
  }
  return { out, lse };
}

/** dq, dk, dv with dS = P (dP - rowsum(dO O) + dLse), O and lse as given (the op's definition). */
function backwardRef(c: Case, Q: Float32Array, K: Float32Array, V: Float32Array, O: Float32Array, L: Float32Array, dO: Float32Array, dL: Float32Array) {
  const dq = new Float64Array(Q.length), dk = new Float64Array(K.length), dv = new Float64Array(V.length);
  for (const g of segments(c)) {
    for (let b = 0; b < c.B; b++) {
      for (let h = 0; h < c.H; h++) {
        const hk = Math.floor(h / (c.H / c.Hkv));
        for (let i = g.q0; i < g.q0 + g.nq; i++) {
          const hi = c.causal ? Math.min(g.nk, g.off + (i - g.q0) + 1) : g.nk;
          const oi = ((b * c.Tq + i) * c.H + h) * c.Dv, qi = ((b * c.Tq + i) * c.H + h) * c.D, li = (b * c.H + h) * c.Tq + i;
          let delta = 0;
          for (let e = 0; e < c.Dv; e++) delta += dO[oi + e]! * O[oi + e]!;
          for (let j = 0; j < hi; j++) {
            const kj = ((b * c.Tk + g.k0 + j) * c.Hkv + hk) * c.D, vj = ((b * c.Tk + g.k0 + j) * c.Hkv + hk) * c.Dv;
            let s = 0, dp = 0;
            for (let x = 0; x < c.D; x++) s += Q[qi + x]! * K[kj + x]!;
            for (let e = 0; e < c.Dv; e++) dp += dO[oi + e]! * V[vj + e]!;
            const p = Math.exp(c.scale * s - L[li]!);
            const ds = p * (dp - delta + dL[li]!);
            for (let e = 0; e < c.Dv; e++) dv[vj + e] += p * dO[oi + e]!;
            for (let x = 0; x < c.D; x++) {
              dq[qi + x] += c.scale * ds * K[kj + x]!;
              dk[kj + x] += c.scale * ds * Q[qi + x]!;
            }
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

/** Largest |got - want| / (1 + |want|) and where. */
function worst(got: Float32Array, want: Float64Array): { err: number; at: number } {
  let err = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!));
    if (!(e <= err)) { err = e; at = i; }
  }
  return { err, at };
}

const TOL: Record<string, number> = { bf16: 2e-2, f16: 4e-3, f32: 2e-5 };

describe.skipIf(!!skip)('flash attention on the CUDA host side (mock driver + kernel models)', () => {
  it('registers CUDA kernels for softmaxAttention and softmaxAttentionBackward', async () => {
    const { core } = await setup();
    for (const op of OPS) expect(core.getKernel(op, 'cuda'), op).toBeDefined();
  });

  it('passes the OpInfo records of both ops against the CPU (split-K forward, general backward)', async () => {
    const { attentionOpInfos } = await import('@ring-linear/attention/opinfo');
    const { runConformance } = await import('@ring-linear/conformance');
    const { launches } = await setup();
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    const r = await runConformance({ backend: 'cuda', reference: 'cpu', opInfos: attentionOpInfos, ops: OPS, seed, grad: false, tfjs: false, log: null, maxMessages: 3 });
    const bad = r.cases.filter((x) => x.status === 'failed' || x.status === 'unexpected-pass');
    if (bad.length) console.log(r.summary);
    console.log(`[backend-cuda] emulated flash conformance: ${r.counts.passed} passed, ${r.counts.failed} failed, seed ${seed}`);
    expect(bad.map((x) => `${x.id}: ${x.messages[0]}`)).toEqual([]);
    expect(r.counts.passed).toBeGreaterThan(0);
    const ran = [...launches.keys()];
    for (const dt of ['f32', 'bf16', 'f16']) {
      expect(ran).toContain(`flash_bwd_prep_${dt}`);
      expect(ran).toContain(`flash_bwd_dq_general_${dt}`);
      expect(ran).toContain(`flash_bwd_dkv_general_${dt}`);
    }
  }, 600_000);

  const fwdCases: (Case & { dt: 'bf16' | 'f16' })[] = [
    { dt: 'bf16', B: 2, Tq: 150, Tk: 150, H: 4, Hkv: 2, D: 64, Dv: 64, causal: true, scale: 0.3 },
    { dt: 'f16', B: 1, Tq: 40, Tk: 200, H: 2, Hkv: 1, D: 128, Dv: 128, causal: true, scale: 0.2, kvLen: 190, kvOffset: 131 },
    { dt: 'bf16', B: 1, Tq: 20, Tk: 70, H: 3, Hkv: 3, D: 64, Dv: 64, causal: false, scale: 0.25 },
    { dt: 'f16', B: 1, Tq: 90, Tk: 90, H: 2, Hkv: 1, D: 64, Dv: 64, causal: true, scale: 0.3, cuSeqlens: [0, 17, 18, 90] },
    { dt: 'bf16', B: 1, Tq: 33, Tk: 33, H: 2, Hkv: 1, D: 128, Dv: 128, causal: false, scale: 0.1, cuSeqlens: [0, 33] },
  ];

  it('forward (mma.sync and both wgmma kernels): tensor-core shapes (tiles, tails, GQA, causal and not, kvLen / kvOffset, packed) against float64', async () => {
    const { core, attention, launches } = await setup();
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    console.log(`[backend-cuda] flash forward seed ${seed}`);
    for (const kind of ['mma', 'wgmma', 'wgmma1b'] as const) for (const c of fwdCases) {
      process.env.RING_LINEAR_CUDA_FLASH_FWD = kind;
      const q = core.tensor(randoms(seed + 1, c.B * c.Tq * c.H * c.D), [c.B, c.Tq, c.H, c.D], c.dt);
      const k = core.tensor(randoms(seed + 2, c.B * c.Tk * c.Hkv * c.D), [c.B, c.Tk, c.Hkv, c.D], c.dt);
      const v = core.tensor(randoms(seed + 3, c.B * c.Tk * c.Hkv * c.Dv), [c.B, c.Tk, c.Hkv, c.Dv], c.dt);
      const want = forwardRef(c, (await q.data()) as Float32Array, (await k.data()) as Float32Array, (await v.data()) as Float32Array);
      const name = kind === 'mma' ? `flash_fwd_${c.dt}_d${c.D}` : `flash_fwd_${kind === 'wgmma' ? 'wg' : 'wg1b'}_${c.dt}_d${c.D}`;
      const before = launches.get(name) ?? 0;
      const { out, lse } = attention.softmaxAttentionWithLse(q, k, v, {
        causal: c.causal, scale: c.scale, kvLen: c.kvLen, kvOffset: c.kvOffset, cuSeqlens: c.cuSeqlens ?? null,
      });
      expect(launches.get(name) ?? 0, `${name} ran for ${JSON.stringify(c)}`).toBe(before + (c.cuSeqlens ? c.cuSeqlens.length - 1 : 1));
      const o = worst((await out.data()) as Float32Array, want.out), l = worst((await lse.data()) as Float32Array, want.lse);
      expect(o.err, `out ${JSON.stringify(c)} worst at ${o.at}`).toBeLessThan(TOL[c.dt]!);
      expect(l.err, `lse ${JSON.stringify(c)} worst at ${l.at}`).toBeLessThan(1e-5);
    }
    delete process.env.RING_LINEAR_CUDA_FLASH_FWD;
  }, 120_000);

  it('forward routing: decode-sized queries, f32 and other head dims keep the split-K kernel', async () => {
    const { core, attention, launches } = await setup();
    const flashBefore = [...launches.entries()].filter(([n]) => n.startsWith('flash_fwd')).reduce((a, [, n]) => a + n, 0);
    const splitBefore = [...launches.entries()].filter(([n]) => n.startsWith('attn_softmax_split')).reduce((a, [, n]) => a + n, 0);
    const shapes: [string, number, number][] = [['bf16', 15, 64], ['f32', 32, 64], ['f16', 32, 96]];
    for (const [dt, Tq, D] of shapes) {
      const q = core.tensor(randoms(7, Tq * 2 * D), [1, Tq, 2, D], dt as 'bf16');
      const k = core.tensor(randoms(8, 40 * D), [1, 40, 1, D], dt as 'bf16');
      attention.softmaxAttention(q, k, k).dispose();
    }
    const flashAfter = [...launches.entries()].filter(([n]) => n.startsWith('flash_fwd')).reduce((a, [, n]) => a + n, 0);
    const splitAfter = [...launches.entries()].filter(([n]) => n.startsWith('attn_softmax_split')).reduce((a, [, n]) => a + n, 0);
    expect(flashAfter).toBe(flashBefore);
    expect(splitAfter - splitBefore).toBe(shapes.length);
  }, 60_000);

  // Decode shapes: the group's rows nq * G fit one 16-row tile, so the tensor-core decode kernel
  // writes the split partials that the CUDA-core combine merges. Several splits (long key ranges),
  // key counts off the 64-key tile, kvLen / kvOffset, causal rows with different visible ranges,
  // splits in which some rows see no key (queries at 62..65: the split from key 64 on is empty
  // for the first two), all 16 rows used (2 queries x 8 heads), batch > 1.
  const decodeCases: (Case & { dt: 'bf16' | 'f16' })[] = [
    { dt: 'bf16', B: 2, Tq: 1, Tk: 600, H: 8, Hkv: 2, D: 128, Dv: 128, causal: true, scale: 0.09 },
    { dt: 'f16', B: 1, Tq: 1, Tk: 401, H: 4, Hkv: 1, D: 64, Dv: 64, causal: false, scale: 0.2, kvLen: 333 },
    { dt: 'bf16', B: 2, Tq: 4, Tk: 300, H: 4, Hkv: 1, D: 64, Dv: 64, causal: true, scale: 0.15, kvLen: 290, kvOffset: 62 },
    { dt: 'f16', B: 1, Tq: 2, Tk: 130, H: 8, Hkv: 1, D: 128, Dv: 128, causal: true, scale: 0.1, kvOffset: 0 },
  ];

  it('decode forward (tensor-core split-K): partials merged by the combine, against float64; RING_LINEAR_CUDA_DECODE=split keeps the CUDA-core kernel', async () => {
    const { core, attention, launches } = await setup();
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    console.log(`[backend-cuda] flash decode seed ${seed}`);
    const count = (prefix: string) => [...launches.entries()].filter(([n]) => n.startsWith(prefix)).reduce((a, [, n]) => a + n, 0);
    for (const kernel of ['flash_decode', 'attn_softmax_split'] as const) for (const c of decodeCases) {
      if (kernel === 'attn_softmax_split') process.env.RING_LINEAR_CUDA_DECODE = 'split';
      const q = core.tensor(randoms(seed + 1, c.B * c.Tq * c.H * c.D), [c.B, c.Tq, c.H, c.D], c.dt);
      const k = core.tensor(randoms(seed + 2, c.B * c.Tk * c.Hkv * c.D), [c.B, c.Tk, c.Hkv, c.D], c.dt);
      const v = core.tensor(randoms(seed + 3, c.B * c.Tk * c.Hkv * c.Dv), [c.B, c.Tk, c.Hkv, c.Dv], c.dt);
      const want = forwardRef(c, (await q.data()) as Float32Array, (await k.data()) as Float32Array, (await v.data()) as Float32Array);
      const before = { dec: count('flash_decode'), split: count('attn_softmax_split'), comb: count('attn_softmax_combine') };
      const { out, lse } = attention.softmaxAttentionWithLse(q, k, v, { causal: c.causal, scale: c.scale, kvLen: c.kvLen, kvOffset: c.kvOffset });
      const ran = { dec: count('flash_decode') - before.dec, split: count('attn_softmax_split') - before.split, comb: count('attn_softmax_combine') - before.comb };
      expect(ran, `${kernel} for ${JSON.stringify(c)}`).toEqual(kernel === 'flash_decode' ? { dec: 1, split: 0, comb: 1 } : { dec: 0, split: 1, comb: 1 });
      const o = worst((await out.data()) as Float32Array, want.out), l = worst((await lse.data()) as Float32Array, want.lse);
      expect(o.err, `out ${kernel} ${JSON.stringify(c)} worst at ${o.at}`).toBeLessThan(TOL[c.dt]!);
      expect(l.err, `lse ${kernel} ${JSON.stringify(c)} worst at ${l.at}`).toBeLessThan(1e-5);
      for (const t of [q, k, v, out, lse]) t.dispose();
    }
    delete process.env.RING_LINEAR_CUDA_DECODE;
  }, 120_000);

  const bwdCases: (Case & { dt: 'bf16' | 'f16' | 'f32' })[] = [
    { dt: 'bf16', B: 2, Tq: 70, Tk: 70, H: 4, Hkv: 2, D: 64, Dv: 64, causal: true, scale: 0.3 },
    { dt: 'f16', B: 1, Tq: 30, Tk: 140, H: 2, Hkv: 1, D: 128, Dv: 128, causal: true, scale: 0.2, kvLen: 133, kvOffset: 100 },
    { dt: 'bf16', B: 1, Tq: 20, Tk: 70, H: 2, Hkv: 2, D: 64, Dv: 64, causal: false, scale: 0.25 },
    { dt: 'f16', B: 1, Tq: 80, Tk: 80, H: 2, Hkv: 1, D: 64, Dv: 64, causal: true, scale: 0.3, cuSeqlens: [0, 9, 10, 80] },
    { dt: 'bf16', B: 1, Tq: 3, Tk: 9, H: 2, Hkv: 1, D: 64, Dv: 64, causal: true, scale: 0.3, kvLen: 7 },
    { dt: 'bf16', B: 2, Tq: 9, Tk: 12, H: 3, Hkv: 1, D: 48, Dv: 20, causal: true, scale: 0.4, kvLen: 11 },
    { dt: 'f32', B: 1, Tq: 13, Tk: 13, H: 2, Hkv: 2, D: 24, Dv: 24, causal: true, scale: 0.5, cuSeqlens: [0, 6, 13] },
  ];

  it('backward: tensor-core and general kernels against float64 (dS with dLse, GQA sums, kvLen tail zeroed)', async () => {
    const { core, launches } = await setup();
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    console.log(`[backend-cuda] flash backward seed ${seed}`);
    for (const c of bwdCases) {
      const mk = (s: number, shape: number[], dt: DType = c.dt) => core.tensor(randoms(seed + s, shape.reduce((a, x) => a * x, 1)), shape, dt);
      const q = mk(1, [c.B, c.Tq, c.H, c.D]), k = mk(2, [c.B, c.Tk, c.Hkv, c.D]), v = mk(3, [c.B, c.Tk, c.Hkv, c.Dv]);
      const Q = (await q.data()) as Float32Array, K = (await k.data()) as Float32Array, V = (await v.data()) as Float32Array;
      const fw = forwardRef(c, Q, K, V);
      const out = core.tensor(Float32Array.from(fw.out), [c.B, c.Tq, c.H, c.Dv], c.dt), lse = core.tensor(Float32Array.from(fw.lse), [c.B, c.H, c.Tq], 'f32');
      const dOut = mk(4, [c.B, c.Tq, c.H, c.Dv]), dLse = mk(5, [c.B, c.H, c.Tq], 'f32');
      const want = backwardRef(c, Q, K, V, (await out.data()) as Float32Array, (await lse.data()) as Float32Array, (await dOut.data()) as Float32Array,
        (await dLse.data()) as Float32Array);
      const tc = c.dt !== 'f32' && c.D === c.Dv && (c.D === 64 || c.D === 128);
      const name = tc ? `flash_bwd_${c.dt}_d${c.D}` : `flash_bwd_dkv_general_${c.dt}`;
      const before = launches.get(name) ?? 0;
      const [dq, dk, dv] = core.runOp('softmaxAttentionBackward', [q, k, v, out, lse, dOut, dLse], {
        causal: c.causal, scale: c.scale, kvLen: c.kvLen, kvOffset: c.kvOffset, cuSeqlens: c.cuSeqlens ?? null,
      });
      expect(launches.get(name) ?? 0, `${name} ran for ${JSON.stringify(c)}`).toBeGreaterThan(before);
      for (const [label, got, w] of [['dq', dq!, want.dq], ['dk', dk!, want.dk], ['dv', dv!, want.dv]] as const) {
        const r = worst((await got.data()) as Float32Array, w);
        expect(r.err, `${label} ${JSON.stringify(c)} worst at ${r.at}`).toBeLessThan(TOL[c.dt]!);
      }
      if (c.kvLen !== undefined && c.kvLen < c.Tk) {
        // No query sees keys past kvLen: their gradients are exactly 0.
        const dkv = (await dk!.data()) as Float32Array;
        expect(dkv[dkv.length - 1]).toBe(0);
      }
    }
  }, 300_000);

  it('backward: head dims past the general kernels\' shared memory get a BackendError', async () => {
    const { core } = await setup();
    const q = core.tensor(randoms(1, 2000), [1, 1, 1, 2000], 'bf16');
    const v = core.tensor(randoms(2, 1100), [1, 1, 1, 1100], 'bf16');
    const lse = core.tensor([0.5], [1, 1, 1], 'f32');
    expect(() => core.runOp('softmaxAttentionBackward', [q, q, v, v, lse, v, lse], {})).toThrow(/D \+ Dv up to 3072, got 2000 \+ 1100/);
  });
});
