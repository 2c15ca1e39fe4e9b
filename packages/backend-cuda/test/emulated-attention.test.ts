/**
 * The decode-path attention kernels (kernels/attention.cuh, src/ops/attention.ts) through the CUDA
 * backend's host side: the mock driver plus the JavaScript model of the kernels
 * (test/mock/emulator.ts). The OpInfo records of lightningAttentionStep, softmaxAttention and rope
 * (@ring-linear/attention/opinfo) run against the CPU (float64 references, kernel vs composite,
 * error inputs); then shapes the records do not reach (row chunks and several token passes of the
 * lightning step, scalar paths, several column tiles and splits of softmax attention) against
 * float64 formulas written here. The device code itself is checked on the GPU machine
 * (tools/gpu/run.ts, step attn).
 */
import { describe, expect, it } from 'vitest';
import { buildMockCuda } from './mock/build.js';
import { installEmulator } from './mock/emulator.js';
import { randoms } from './mock/random.js';

const built = await buildMockCuda();
const skip = 'skip' in built ? built.skip : null;
if (skip) console.log(`[backend-cuda] emulated attention skipped: ${skip}`);

const OPS = ['lightningAttentionStep', 'softmaxAttention', 'rope'];
const SEED_ROPE = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);

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

function maxErr(got: Float32Array, want: Float64Array): number {
  let e = 0;
  for (let i = 0; i < want.length; i++) e = Math.max(e, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  return e;
}

describe.skipIf(!!skip)('decode attention on the CUDA host side (mock driver + kernel model)', () => {
  it('registers CUDA kernels for lightningAttentionStep and softmaxAttention', async () => {
    const { core } = await setup();
    for (const op of OPS) expect(core.getKernel(op, 'cuda'), op).toBeDefined();
  });

  it('passes the OpInfo records of both ops against the CPU (kernel vs composite, errors)', async () => {
    const { attentionOpInfos } = await import('@ring-linear/attention/opinfo');
    const { runConformance } = await import('@ring-linear/conformance');
    const { launches } = await setup();
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    const r = await runConformance({ backend: 'cuda', reference: 'cpu', opInfos: attentionOpInfos, ops: OPS, seed, grad: false, tfjs: false, log: null, maxMessages: 3 });
    const bad = r.cases.filter((c) => c.status === 'failed' || c.status === 'unexpected-pass');
    if (bad.length) console.log(r.summary);
    console.log(`[backend-cuda] emulated attention conformance: ${r.counts.passed} passed, ${r.counts.failed} failed, seed ${seed}`);
    expect(bad.map((c) => `${c.id}: ${c.messages[0]}`)).toEqual([]);
    expect(r.counts.passed).toBeGreaterThan(0);
    const ran = [...launches.keys()];
    for (const dt of ['f32', 'bf16', 'f16']) {
      expect(ran).toContain(`attn_lightning_step_${dt}_v4`);
      expect(ran).toContain(`attn_softmax_split_${dt}_d4_v4`);
      expect(ran).toContain(`attn_softmax_split_${dt}_d1_v1`);
      expect(ran).toContain(`attn_softmax_combine_${dt}`);
      expect(ran).toContain(`attn_rope_${dt}`);
    }
  }, 600_000);

  it('rope is one launch: a decode-shaped call (B=3, one token, partial rotation) against float64, then the inverse undoes it', async () => {
    const { core, launches } = await setup();
    await import('@ring-linear/attention');
    const [B, H, D, rot, theta] = [3, 5, 12, 8, 1e6];
    console.log(`[backend-cuda] rope seed ${SEED_ROPE}`);
    const xs = Float32Array.from(randoms(SEED_ROPE, B * H * D));
    const pos = [40000, 7, 123457]; // per-batch positions: large angles too
    const x = core.tensor(xs, [B, 1, H, D], 'f32');
    const p = core.tensor(Int32Array.from(pos), [B, 1], 'i32');
    const before = launches.get('attn_rope_f32') ?? 0;
    const total0 = [...launches.values()].reduce((a, c) => a + c, 0);
    const y = core.runOp1('rope', [x, p], { rotaryDim: rot, theta });
    expect([...launches.values()].reduce((a, c) => a + c, 0) - total0).toBe(1);
    expect(launches.get('attn_rope_f32')).toBe(before + 1);
    const got = await y.data();
    const half = rot / 2;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const o = (b * H + h) * D;
        for (let i = 0; i < half; i++) {
          const inv = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / rot))));
          const a = Math.fround(pos[b]! * inv);
          const [c, sn] = [Math.cos(a), Math.sin(a)];
          expect(got[o + i]).toBeCloseTo(xs[o + i]! * c - xs[o + i + half]! * sn, 5);
          expect(got[o + i + half]).toBeCloseTo(xs[o + i + half]! * c + xs[o + i]! * sn, 5);
        }
        for (let d = rot; d < D; d++) expect(got[o + d]).toBe(xs[o + d]);
      }
    }
    const back = await core.runOp1('rope', [y, p], { rotaryDim: rot, theta, inverse: true }).data();
    for (let i = 0; i < xs.length; i++) expect(back[i]).toBeCloseTo(xs[i]!, 5);
  });

  it('KV cache appends of every sequence go through one 2-D copy (copyRows), growth included', async () => {
    const { core, b } = await setup();
    const { KVCache } = await import('@ring-linear/attention');
    const calls = { rows: 0 };
    const orig = b.copyRows.bind(b);
    b.copyRows = (...a: Parameters<typeof b.copyRows>) => { calls.rows++; orig(...a); };
    try {
      const cache = new KVCache({ initialCapacity: 4 });
      const [B, Hkv, D] = [3, 2, 5];
      const chunk = (n: number) => Float32Array.from(randoms(SEED_ROPE + n, B * n * Hkv * D), (v) => Math.round(64 * v));
      const k1 = chunk(2), k2 = chunk(1);
      const t1 = core.tensor(k1, [B, 2, Hkv, D], 'f32'), t2 = core.tensor(k2, [B, 1, Hkv, D], 'f32');
      cache.append(t1, t1);
      cache.append(t2, t2);
      cache.append(t1, t1); // 5 tokens > capacity 4: the cache grows, copying the 3 it has
      const keys = (await cache.keys.data()) as Float32Array;
      const cap = cache.keys.shape[1]!;
      expect(cap).toBe(8);
      const row = Hkv * D;
      const tokens = (s: number, from: number, n: number) => Array.from(keys.subarray((s * cap + from) * row, (s * cap + from + n) * row));
      for (let s = 0; s < B; s++) {
        const first = Array.from(k1.subarray(s * 2 * row, (s + 1) * 2 * row));
        expect(tokens(s, 0, 2)).toEqual(first);
        expect(tokens(s, 2, 1)).toEqual(Array.from(k2.subarray(s * row, (s + 1) * row)));
        expect(tokens(s, 3, 2)).toEqual(first);
      }
      core.dispose([t1, t2]);
      cache.dispose();
      expect(calls.rows).toBe(2 * 3 + 2); // k and v per append, and the copy of the old rows when it grew
    } finally {
      b.copyRows = orig;
    }
  });

  it('lightning step: row chunks, several passes of tokens, scalar columns, against float64', async () => {
    const { core, attention, launches } = await setup();
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    console.log(`[backend-cuda] lightning step seed ${seed}`);
    for (const [B, T, H, D, Dv] of [[1, 6, 2, 20, 6], [2, 1, 1, 9, 36]] as const) {
      const qv = randoms(seed + 1, B * T * H * D), kv = randoms(seed + 2, B * T * H * D), vv = randoms(seed + 3, B * T * H * Dv);
      const a = Float64Array.from({ length: H }, (_, h) => 0.05 + 0.3 * h);
      const s0 = randoms(seed + 4, B * H * D * Dv);
      const scale = 0.37;
      // MODEL_SPEC §2: S_t = exp(-a_h) S_{t-1} + k_t^T v_t, o_t = s q_t S_t.
      const wantO = new Float64Array(B * T * H * Dv);
      const wantS = Float64Array.from(s0);
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < H; h++) {
          const lam = Math.exp(-a[h]!);
          const base = (b * H + h) * D * Dv;
          for (let t = 0; t < T; t++) {
            const qi = ((b * T + t) * H + h) * D, vi = ((b * T + t) * H + h) * Dv;
            for (let d = 0; d < D; d++) for (let e = 0; e < Dv; e++) wantS[base + d * Dv + e] = lam * wantS[base + d * Dv + e]! + kv[qi + d]! * vv[vi + e]!;
            for (let e = 0; e < Dv; e++) {
              let o = 0;
              for (let d = 0; d < D; d++) o += qv[qi + d]! * wantS[base + d * Dv + e]!;
              wantO[vi + e] = scale * o;
            }
          }
        }
      }
      const t = (v: Float64Array, shape: number[]) => core.tensor(Float32Array.from(v), shape, 'f32');
      const before = launches.get('attn_lightning_combine_f32') ?? 0;
      const { out, state } = attention.lightningAttentionStep(t(qv, [B, T, H, D]), t(kv, [B, T, H, D]), t(vv, [B, T, H, Dv]), {
        decay: t(a, [H]), state: t(s0, [B, H, D, Dv]), scale,
      });
      expect(maxErr(await out.data() as Float32Array, wantO), `out B${B} T${T} H${H} D${D} Dv${Dv}`).toBeLessThan(1e-5);
      expect(maxErr(await state.data() as Float32Array, wantS), `state B${B} T${T} H${H} D${D} Dv${Dv}`).toBeLessThan(1e-5);
      // Few heads: the rows are split over blocks and the partial outputs combined.
      expect(launches.get('attn_lightning_combine_f32') ?? 0).toBeGreaterThan(before);
    }
    expect([...launches.keys()]).toContain('attn_lightning_step_f32_v1');
  }, 120_000);

  it('softmax attention: several splits and column tiles, scalar and vector loads, causal and not, against float64', async () => {
    const { core, attention, launches } = await setup();
    const seed = Number(process.env.RING_LINEAR_SEED ?? Date.now() % 2 ** 31);
    console.log(`[backend-cuda] softmax attention seed ${seed}`);
    const cases = [
      { B: 1, Tq: 2, Tk: 140, H: 4, Hkv: 2, D: 8, Dv: 130, causal: true, kvLen: 133 },
      { B: 2, Tq: 1, Tk: 70, H: 3, Hkv: 1, D: 5, Dv: 8, causal: false, kvLen: 70 },
    ];
    for (const c of cases) {
      const qv = randoms(seed + 11, c.B * c.Tq * c.H * c.D), kv = randoms(seed + 12, c.B * c.Tk * c.Hkv * c.D);
      const vv = randoms(seed + 13, c.B * c.Tk * c.Hkv * c.Dv);
      const scale = 1 / Math.sqrt(c.D);
      const offset = c.kvLen - c.Tq;
      const G = c.H / c.Hkv;
      const wantO = new Float64Array(c.B * c.Tq * c.H * c.Dv);
      const wantL = new Float64Array(c.B * c.H * c.Tq);
      for (let b = 0; b < c.B; b++) {
        for (let i = 0; i < c.Tq; i++) {
          for (let h = 0; h < c.H; h++) {
            const hk = Math.floor(h / G);
            const hi = c.causal ? Math.min(c.kvLen, offset + i + 1) : c.kvLen;
            const s: number[] = [];
            for (let j = 0; j < hi; j++) {
              let d = 0;
              for (let x = 0; x < c.D; x++) d += qv[((b * c.Tq + i) * c.H + h) * c.D + x]! * kv[((b * c.Tk + j) * c.Hkv + hk) * c.D + x]!;
              s.push(scale * d);
            }
            const m = Math.max(...s);
            const z = s.reduce((u, w) => u + Math.exp(w - m), 0);
            wantL[(b * c.H + h) * c.Tq + i] = m + Math.log(z);
            for (let e = 0; e < c.Dv; e++) {
              let o = 0;
              s.forEach((w, j) => { o += Math.exp(w - m) * vv[((b * c.Tk + j) * c.Hkv + hk) * c.Dv + e]!; });
              wantO[((b * c.Tq + i) * c.H + h) * c.Dv + e] = o / z;
            }
          }
        }
      }
      const t = (v: Float64Array, shape: number[]) => core.tensor(Float32Array.from(v), shape, 'f32');
      const { out, lse } = attention.softmaxAttentionWithLse(t(qv, [c.B, c.Tq, c.H, c.D]), t(kv, [c.B, c.Tk, c.Hkv, c.D]), t(vv, [c.B, c.Tk, c.Hkv, c.Dv]), {
        causal: c.causal, kvLen: c.kvLen,
      });
      expect(maxErr(await out.data() as Float32Array, wantO), `out ${JSON.stringify(c)}`).toBeLessThan(2e-6);
      expect(maxErr(await lse.data() as Float32Array, wantL), `lse ${JSON.stringify(c)}`).toBeLessThan(2e-6);
    }
    const ran = [...launches.keys()];
    expect(ran).toContain('attn_softmax_split_f32_d4_v1');
    expect(ran).toContain('attn_softmax_split_f32_d1_v4');
  }, 120_000);
});
