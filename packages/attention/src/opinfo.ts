/**
 * OpInfo records of the attention ops, for the conformance suite (`@ring-linear/attention/opinfo`):
 *
 *   import { runConformance } from '@ring-linear/conformance';
 *   import { attentionOpInfos } from '@ring-linear/attention/opinfo';
 *   await runConformance({ backend: 'webgpu', opInfos: attentionOpInfos });
 *
 * Each record has samples for f32, bf16 and f16 (odd sizes, chunk-boundary and packed cases), a
 * float64 reference written from MODEL_SPEC §2-3 (the recurrence for lightning attention, full
 * score rows for softmax attention), the magnitudes of the summed terms (for the accumulation
 * tolerance), gradient checks and error inputs. Importing this module defines the ops.
 */
import { roundToDtype, type DType } from '@ring-linear/core';
import type { ErrorInput, HostTensor, OpInfo, SampleInput, SampleRng } from '@ring-linear/conformance';
import './ops/index.js';
import { ropeInvFreq } from './ops/rope.js';

const DTYPES: readonly DType[] = ['f32', 'bf16', 'f16'];

const hostT = (shape: readonly number[], dtype: DType, values: Float64Array): HostTensor => ({ shape: [...shape], dtype, values });
const absT = (h: HostTensor): HostTensor => ({ ...h, values: h.values.map(Math.abs) });

interface LinearAttrs {
  scale?: number;
  cuSeqlens?: number[] | null;
}

function segmentsOf(cu: readonly number[] | null | undefined, T: number): [number, number][] {
  if (!cu) return [[0, T]];
  return cu.slice(0, -1).map((s, i) => [s, cu[i + 1]!] as [number, number]);
}

// ---------------------------------------------------------------------------------------------
// Lightning attention: the recurrence in float64 (MODEL_SPEC §2 step 4)

function lightningForwardRef([q, k, v, decay, s0]: readonly HostTensor[], attrs: LinearAttrs): HostTensor[] {
  const [B, T, H, D] = q!.shape as [number, number, number, number];
  const Dv = v!.shape[3]!;
  const s = attrs.scale ?? 1 / Math.sqrt(D);
  const cu = attrs.cuSeqlens ?? null;
  const out = new Float64Array(B * T * H * Dv);
  const state = new Float64Array(s0!.values.length);
  for (let b = 0; b < B; b++) {
    segmentsOf(cu, T).forEach(([t0, t1], n) => {
      for (let h = 0; h < H; h++) {
        const lambda = Math.exp(-decay!.values[h]!);
        const base = ((cu ? n : b) * H + h) * D * Dv;
        const S = s0!.values.slice(base, base + D * Dv);
        for (let t = t0; t < t1; t++) {
          const qb = ((b * T + t) * H + h) * D;
          const vb = ((b * T + t) * H + h) * Dv;
          for (let d = 0; d < D; d++) for (let e = 0; e < Dv; e++) S[d * Dv + e] = lambda * S[d * Dv + e]! + k!.values[qb + d]! * v!.values[vb + e]!;
          for (let e = 0; e < Dv; e++) {
            let acc = 0;
            for (let d = 0; d < D; d++) acc += q!.values[qb + d]! * S[d * Dv + e]!;
            out[vb + e] = s * acc;
          }
        }
        state.set(S, base);
      }
    });
  }
  return [hostT([B, T, H, Dv], q!.dtype, out), hostT(s0!.shape, 'f32', state)];
}

/**
 * Reverse mode through the recurrence: with G = dL/dS_t,
 *   G_t = s q_t^T do_t + lambda G_{t+1}  (G_{T+1} = dFinal / lambda),
 *   dq_t = s do_t S_t^T, dk_t = G_t v_t, dv_t = G_t^T k_t, dS_0 = lambda G_1.
 */
function lightningBackwardRef([q, k, v, decay, s0, dOut, dFinal]: readonly HostTensor[], attrs: LinearAttrs): HostTensor[] {
  const [B, T, H, D] = q!.shape as [number, number, number, number];
  const Dv = v!.shape[3]!;
  const s = attrs.scale ?? 1 / Math.sqrt(D);
  const cu = attrs.cuSeqlens ?? null;
  const dq = new Float64Array(q!.values.length);
  const dk = new Float64Array(k!.values.length);
  const dv = new Float64Array(v!.values.length);
  const ds0 = new Float64Array(s0!.values.length);
  const DD = D * Dv;
  for (let b = 0; b < B; b++) {
    segmentsOf(cu, T).forEach(([t0, t1], n) => {
      for (let h = 0; h < H; h++) {
        const lambda = Math.exp(-decay!.values[h]!);
        const base = ((cu ? n : b) * H + h) * DD;
        // States S_t for t in [t0, t1).
        const states: Float64Array[] = [];
        let S = s0!.values.slice(base, base + DD);
        for (let t = t0; t < t1; t++) {
          const qb = ((b * T + t) * H + h) * D;
          const vb = ((b * T + t) * H + h) * Dv;
          const next = new Float64Array(DD);
          for (let d = 0; d < D; d++) for (let e = 0; e < Dv; e++) next[d * Dv + e] = lambda * S[d * Dv + e]! + k!.values[qb + d]! * v!.values[vb + e]!;
          states.push(next);
          S = next;
        }
        const G = dFinal!.values.slice(base, base + DD);
        for (let t = t1 - 1; t >= t0; t--) {
          const qb = ((b * T + t) * H + h) * D;
          const vb = ((b * T + t) * H + h) * Dv;
          const St = states[t - t0]!;
          for (let d = 0; d < D; d++) {
            for (let e = 0; e < Dv; e++) G[d * Dv + e]! += s * q!.values[qb + d]! * dOut!.values[vb + e]!;
          }
          for (let d = 0; d < D; d++) {
            let aq = 0;
            let ak = 0;
            for (let e = 0; e < Dv; e++) {
              aq += dOut!.values[vb + e]! * St[d * Dv + e]!;
              ak += G[d * Dv + e]! * v!.values[vb + e]!;
            }
            dq[qb + d] = s * aq;
            dk[qb + d] = ak;
          }
          for (let e = 0; e < Dv; e++) {
            let av = 0;
            for (let d = 0; d < D; d++) av += k!.values[qb + d]! * G[d * Dv + e]!;
            dv[vb + e] = av;
          }
          for (let x = 0; x < DD; x++) G[x]! *= lambda;
        }
        ds0.set(G, base);
      }
    });
  }
  return [hostT(q!.shape, q!.dtype, dq), hostT(k!.shape, k!.dtype, dk), hostT(v!.shape, v!.dtype, dv), hostT(s0!.shape, 'f32', ds0)];
}

interface LinearCase {
  B: number;
  T: number;
  H: number;
  D: number;
  Dv: number;
  chunkSize?: number;
  cu?: number[];
  decay?: number[];
  scale?: number;
  desc: string;
}

const LINEAR_CASES: readonly LinearCase[] = [
  { B: 2, T: 9, H: 2, D: 4, Dv: 3, chunkSize: 4, desc: 'odd T over chunks of 4, batch 2' },
  { B: 1, T: 8, H: 1, D: 3, Dv: 3, chunkSize: 8, desc: 'T = one chunk' },
  { B: 3, T: 5, H: 2, D: 2, Dv: 4, scale: 0.3, desc: 'T below the default chunk (64), explicit scale' },
  { B: 1, T: 10, H: 2, D: 3, Dv: 2, chunkSize: 4, cu: [0, 3, 4, 10], desc: 'packed sequences [0, 3, 4, 10]' },
  { B: 1, T: 70, H: 2, D: 2, Dv: 2, chunkSize: 16, decay: [25, 0.001], desc: 'strong and weak decay over 70 tokens' },
];

function linearInputs(rng: SampleRng, dtype: DType, c: LinearCase): HostTensor[] {
  const N = c.cu ? c.cu.length - 1 : c.B;
  const decay = c.decay ? hostT([c.H], 'f32', Float64Array.from(c.decay, Math.fround)) : rng.tensor([c.H], 'f32', { lo: 0.05, hi: 1.5 });
  return [
    rng.tensor([c.B, c.T, c.H, c.D], dtype),
    rng.tensor([c.B, c.T, c.H, c.D], dtype),
    rng.tensor([c.B, c.T, c.H, c.Dv], dtype),
    decay,
    rng.tensor([N, c.H, c.D, c.Dv], 'f32', { scale: 0.5 }),
  ];
}

const linearAttrs = (c: LinearCase) => ({
  ...(c.chunkSize ? { chunkSize: c.chunkSize } : {}),
  ...(c.cu ? { cuSeqlens: c.cu } : {}),
  ...(c.scale !== undefined ? { scale: c.scale } : {}),
});

function linearErrors(op: string, rng: SampleRng): ErrorInput[] {
  const q = rng.tensor([2, 5, 4, 8], 'f32');
  const decay = rng.tensor([4], 'f32', { lo: 0.1, hi: 1 });
  const s0 = rng.tensor([2, 4, 8, 8], 'f32');
  const stateName = op === 'lightningAttentionStep' ? 'state' : 'initialState';
  const extra = op === 'lightningAttentionBackward' ? [rng.tensor([2, 5, 4, 8], 'f32'), rng.tensor([2, 4, 8, 8], 'f32')] : [];
  const out: ErrorInput[] = [
    {
      inputs: [q, rng.tensor([2, 5, 3, 8], 'f32'), rng.tensor([2, 5, 3, 8], 'f32'), decay, s0, ...extra],
      error: 'ShapeError', message: /q has 4 heads but 'k' has 3/, desc: 'head counts differ',
    },
    {
      inputs: [q, rng.tensor([2, 5, 4, 6], 'f32'), q, decay, s0, ...extra],
      error: 'ShapeError', message: /head_dim mismatch: q has head_dim 8, k has 6/, desc: 'head_dim mismatch',
    },
    {
      inputs: [q, q, q, decay, rng.tensor([2, 4, 8, 7], 'f32'), ...extra],
      error: 'ShapeError', message: new RegExp(`'${stateName}' must have shape \\[2, 4, 8, 8\\]`), desc: 'state of the wrong shape',
    },
    {
      inputs: [q, q, q, decay, rng.tensor([2, 4, 8, 8], 'bf16'), ...extra],
      error: 'DTypeError', message: new RegExp(`input '${stateName}' must have dtype f32, got bf16`), desc: 'state of the wrong dtype',
    },
    {
      inputs: [q, q, q, rng.tensor([3], 'f32'), s0, ...extra],
      error: 'ShapeError', message: /'decay' must have shape \[4\]/, desc: 'decay of the wrong length',
    },
  ];
  if (op !== 'lightningAttentionStep') {
    const q1 = rng.tensor([1, 6, 2, 4], 'f32');
    const ex1 = op === 'lightningAttentionBackward' ? [rng.tensor([1, 6, 2, 4], 'f32'), rng.tensor([3, 2, 4, 4], 'f32')] : [];
    out.push({
      inputs: [q1, q1, q1, rng.tensor([2], 'f32', { lo: 0.1, hi: 1 }), rng.tensor([3, 2, 4, 4], 'f32'), ...ex1],
      attrs: { cuSeqlens: [0, 4, 2, 6] },
      error: 'AttrError', message: /'cuSeqlens' must be strictly increasing/, desc: 'offsets not increasing',
    });
  }
  return out;
}

const lightningAttentionInfo: OpInfo = {
  op: 'lightningAttention',
  dtypes: DTYPES,
  samples: (rng, dtype) => LINEAR_CASES.map((c): SampleInput => ({ inputs: linearInputs(rng, dtype, c), attrs: linearAttrs(c), desc: c.desc })),
  reference: (inputs, attrs) => lightningForwardRef(inputs, attrs as LinearAttrs),
  magnitude: (inputs, attrs) => lightningForwardRef(inputs.map((h, i) => (i === 3 ? h : absT(h))), attrs as LinearAttrs).map((h) => h.values),
  grad: { inputs: [0, 1, 2, 4] },
  errors: (rng) => linearErrors('lightningAttention', rng),
};

const lightningAttentionStepInfo: OpInfo = {
  op: 'lightningAttentionStep',
  dtypes: DTYPES,
  samples: (rng, dtype) =>
    [
      { B: 2, T: 1, H: 2, D: 4, Dv: 4, desc: 'one token per sequence' },
      { B: 1, T: 3, H: 3, D: 3, Dv: 2, desc: 'three tokens' },
      { B: 1, T: 2, H: 1, D: 2, Dv: 2, scale: 0.7, desc: 'explicit scale' },
    ].map((c): SampleInput => ({ inputs: linearInputs(rng, dtype, c), attrs: c.scale !== undefined ? { scale: c.scale } : {}, desc: c.desc })),
  reference: (inputs, attrs) => lightningForwardRef(inputs, attrs as LinearAttrs),
  magnitude: (inputs, attrs) => lightningForwardRef(inputs.map((h, i) => (i === 3 ? h : absT(h))), attrs as LinearAttrs).map((h) => h.values),
  grad: { inputs: [0, 1, 2, 4] },
  errors: (rng) => linearErrors('lightningAttentionStep', rng),
};

const lightningAttentionBackwardInfo: OpInfo = {
  op: 'lightningAttentionBackward',
  dtypes: DTYPES,
  samples: (rng, dtype) =>
    LINEAR_CASES.map((c): SampleInput => {
      const ins = linearInputs(rng, dtype, c);
      return {
        inputs: [...ins, rng.tensor([c.B, c.T, c.H, c.Dv], dtype), rng.tensor(ins[4]!.shape, 'f32')],
        attrs: linearAttrs(c),
        desc: c.desc,
      };
    }),
  reference: (inputs, attrs) => lightningBackwardRef(inputs, attrs as LinearAttrs),
  magnitude: (inputs, attrs) => lightningBackwardRef(inputs.map((h, i) => (i === 3 ? h : absT(h))), attrs as LinearAttrs).map((h) => h.values),
  errors: (rng) => linearErrors('lightningAttentionBackward', rng),
};

// ---------------------------------------------------------------------------------------------
// Softmax attention (MODEL_SPEC §3)

interface SoftmaxAttrsIn {
  scale?: number;
  causal?: boolean;
  cuSeqlens?: number[] | null;
  kvLen?: number;
  kvOffset?: number;
}

/** For each (b, h, query i): the kv head, the visible key rows [lo, hi). */
function visibleKeys(attrs: SoftmaxAttrsIn, Tq: number, Tk: number, i: number): [number, number] {
  const causal = attrs.causal ?? true;
  if (attrs.cuSeqlens) {
    let s = 0;
    while (attrs.cuSeqlens[s + 1]! <= i) s++;
    const lo = attrs.cuSeqlens[s]!;
    const hi = attrs.cuSeqlens[s + 1]!;
    return [lo, causal ? Math.min(hi, i + 1) : hi];
  }
  const kvLen = attrs.kvLen ?? Tk;
  const offset = attrs.kvOffset ?? Math.max(kvLen - Tq, 0);
  return [0, causal ? Math.min(kvLen, offset + i + 1) : kvLen];
}

/** Probabilities of one query row in float64 (with the row's max and log-sum-exp). */
function softmaxRow(q: HostTensor, k: HostTensor, b: number, h: number, i: number, lo: number, hi: number, scale: number): { p: number[]; lse: number } {
  const [, Tq, H, D] = q.shape as [number, number, number, number];
  const [, Tk, Hkv] = k.shape as [number, number, number, number];
  const hk = Math.floor(h / (H / Hkv));
  const sc: number[] = [];
  for (let j = lo; j < hi; j++) {
    let d = 0;
    for (let e = 0; e < D; e++) d += q.values[((b * Tq + i) * H + h) * D + e]! * k.values[((b * Tk + j) * Hkv + hk) * D + e]!;
    sc.push(scale * d);
  }
  const m = Math.max(...sc);
  const ex = sc.map((z) => Math.exp(z - m));
  const z = ex.reduce((a, c) => a + c, 0);
  return { p: ex.map((e) => e / z), lse: m + Math.log(z) };
}

function softmaxForwardRef([q, k, v]: readonly HostTensor[], attrs: SoftmaxAttrsIn, absV = false): HostTensor[] {
  const [B, Tq, H, D] = q!.shape as [number, number, number, number];
  const [, Tk, Hkv, Dv] = v!.shape as [number, number, number, number];
  const scale = attrs.scale ?? 1 / Math.sqrt(D);
  const out = new Float64Array(B * Tq * H * Dv);
  const lse = new Float64Array(B * H * Tq);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / (H / Hkv));
      for (let i = 0; i < Tq; i++) {
        const [lo, hi] = visibleKeys(attrs, Tq, Tk, i);
        const r = softmaxRow(q!, k!, b, h, i, lo, hi, scale);
        lse[(b * H + h) * Tq + i] = absV ? Math.abs(r.lse) + 1 : r.lse;
        for (let e = 0; e < Dv; e++) {
          let acc = 0;
          r.p.forEach((pj, jj) => {
            const x = v!.values[((b * Tk + lo + jj) * Hkv + hk) * Dv + e]!;
            acc += pj * (absV ? Math.abs(x) : x);
          });
          out[((b * Tq + i) * H + h) * Dv + e] = acc;
        }
      }
    }
  }
  return [hostT([B, Tq, H, Dv], q!.dtype, out), hostT([B, H, Tq], 'f32', lse)];
}

/**
 * Backward from the given out and lse (as the op defines it): P = exp(s - lse), dP = dO v^T,
 * dS = P (dP - dO . out + dLse); dq = scale dS k, dk = scale dS^T q, dv = P^T dO. With `mag`,
 * every sum accumulates absolute values (the magnitude of its terms).
 */
function softmaxBackwardRef([q, k, v, out, lse, dOut, dLse]: readonly HostTensor[], attrs: SoftmaxAttrsIn, mag = false): HostTensor[] {
  const [B, Tq, H, D] = q!.shape as [number, number, number, number];
  const [, Tk, Hkv, Dv] = v!.shape as [number, number, number, number];
  const scale = attrs.scale ?? 1 / Math.sqrt(D);
  const f = mag ? Math.abs : (x: number) => x;
  const dq = new Float64Array(q!.values.length);
  const dk = new Float64Array(k!.values.length);
  const dv = new Float64Array(v!.values.length);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / (H / Hkv));
      for (let i = 0; i < Tq; i++) {
        const [lo, hi] = visibleKeys(attrs, Tq, Tk, i);
        const oi = ((b * Tq + i) * H + h) * Dv;
        const qi = ((b * Tq + i) * H + h) * D;
        let delta = 0;
        for (let e = 0; e < Dv; e++) delta += f(dOut!.values[oi + e]! * out!.values[oi + e]!);
        const li = (b * H + h) * Tq + i;
        for (let j = lo; j < hi; j++) {
          const kj = ((b * Tk + j) * Hkv + hk) * D;
          const vj = ((b * Tk + j) * Hkv + hk) * Dv;
          let s = 0;
          for (let e = 0; e < D; e++) s += q!.values[qi + e]! * k!.values[kj + e]!;
          const p = Math.exp(scale * s - lse!.values[li]!);
          let dp = 0;
          for (let e = 0; e < Dv; e++) dp += f(dOut!.values[oi + e]! * v!.values[vj + e]!);
          const ds = mag ? p * (dp + delta + Math.abs(dLse!.values[li]!)) : p * (dp - delta + dLse!.values[li]!);
          for (let e = 0; e < D; e++) {
            dq[qi + e]! += f(scale * ds * k!.values[kj + e]!);
            dk[kj + e]! += f(scale * ds * q!.values[qi + e]!);
          }
          for (let e = 0; e < Dv; e++) dv[vj + e]! += f(p * dOut!.values[oi + e]!);
        }
      }
    }
  }
  return [hostT(q!.shape, q!.dtype, dq), hostT(k!.shape, k!.dtype, dk), hostT(v!.shape, v!.dtype, dv)];
}

interface SoftmaxCase {
  B: number;
  Tq: number;
  Tk: number;
  H: number;
  Hkv: number;
  D: number;
  Dv: number;
  attrs: SoftmaxAttrsIn;
  desc: string;
}

const SOFTMAX_CASES: readonly SoftmaxCase[] = [
  { B: 2, Tq: 7, Tk: 7, H: 4, Hkv: 2, D: 4, Dv: 4, attrs: {}, desc: 'GQA 4/2, causal' },
  { B: 1, Tq: 5, Tk: 9, H: 3, Hkv: 1, D: 3, Dv: 2, attrs: { causal: false }, desc: 'MQA, not causal, Dv != D' },
  { B: 2, Tq: 2, Tk: 12, H: 2, Hkv: 1, D: 4, Dv: 4, attrs: { kvLen: 10 }, desc: 'decode 2 tokens, cache of 12 holding 10' },
  { B: 1, Tq: 3, Tk: 8, H: 2, Hkv: 2, D: 2, Dv: 3, attrs: { kvOffset: 2, scale: 0.9 }, desc: 'explicit kvOffset and scale' },
  { B: 1, Tq: 11, Tk: 11, H: 2, Hkv: 1, D: 3, Dv: 3, attrs: { cuSeqlens: [0, 4, 5, 11] }, desc: 'packed [0, 4, 5, 11]' },
  { B: 1, Tq: 70, Tk: 70, H: 1, Hkv: 1, D: 2, Dv: 2, attrs: {}, desc: 'several query blocks and key tiles' },
  { B: 1, Tq: 3, Tk: 150, H: 2, Hkv: 1, D: 4, Dv: 3, attrs: { causal: false, scale: 1.5 }, desc: 'long key rows (online softmax across tiles)' },
];

function softmaxInputs(rng: SampleRng, dtype: DType, c: SoftmaxCase): HostTensor[] {
  return [
    rng.tensor([c.B, c.Tq, c.H, c.D], dtype),
    rng.tensor([c.B, c.Tk, c.Hkv, c.D], dtype),
    rng.tensor([c.B, c.Tk, c.Hkv, c.Dv], dtype),
  ];
}

function softmaxErrors(op: string, rng: SampleRng): ErrorInput[] {
  const bw = op === 'softmaxAttentionBackward';
  const extra = (B: number, T: number, H: number, Dv: number) =>
    bw ? [rng.tensor([B, T, H, Dv], 'f32'), rng.tensor([B, H, T], 'f32'), rng.tensor([B, T, H, Dv], 'f32'), rng.tensor([B, H, T], 'f32')] : [];
  const x = rng.tensor([1, 6, 2, 4], 'f32');
  return [
    {
      inputs: [rng.tensor([1, 4, 6, 8], 'f32'), rng.tensor([1, 4, 4, 8], 'f32'), rng.tensor([1, 4, 4, 8], 'f32'), ...extra(1, 4, 6, 8)],
      error: 'ShapeError', message: /number of query heads \(6\) must be a multiple of the number of kv heads \(4\)/, desc: 'heads do not divide',
    },
    {
      inputs: [rng.tensor([1, 4, 4, 8], 'f32'), rng.tensor([1, 4, 2, 4], 'f32'), rng.tensor([1, 4, 2, 8], 'f32'), ...extra(1, 4, 4, 8)],
      error: 'ShapeError', message: /head_dim mismatch: q has head_dim 8, k has 4/, desc: 'head_dim mismatch',
    },
    {
      inputs: [x, x, x, ...extra(1, 6, 2, 4)],
      attrs: { cuSeqlens: [0, 4, 3, 6] },
      error: 'AttrError', message: /'cuSeqlens' must be strictly increasing/, desc: 'offsets not increasing',
    },
    {
      inputs: [x, x, x, ...extra(1, 6, 2, 4)],
      attrs: { kvLen: 9 },
      error: 'AttrError', message: /'kvLen' must be in \[1, 6\]/, desc: 'kvLen past the keys',
    },
  ];
}

const softmaxAttentionInfo: OpInfo = {
  op: 'softmaxAttention',
  dtypes: DTYPES,
  samples: (rng, dtype) => SOFTMAX_CASES.map((c): SampleInput => ({ inputs: softmaxInputs(rng, dtype, c), attrs: { ...c.attrs }, desc: c.desc })),
  reference: (inputs, attrs) => softmaxForwardRef(inputs, attrs as SoftmaxAttrsIn),
  magnitude: (inputs, attrs) => softmaxForwardRef(inputs, attrs as SoftmaxAttrsIn, true).map((h) => h.values),
  grad: { inputs: [0, 1, 2] },
  errors: (rng) => softmaxErrors('softmaxAttention', rng),
};

const softmaxAttentionBackwardInfo: OpInfo = {
  op: 'softmaxAttentionBackward',
  dtypes: DTYPES,
  samples: (rng, dtype) =>
    SOFTMAX_CASES.map((c): SampleInput => {
      const ins = softmaxInputs(rng, dtype, c);
      const [out, lse] = softmaxForwardRef(ins, c.attrs);
      // out in the activation dtype and lse in f32, as the forward op stores them.
      const outStored = { ...out!, values: out!.values.map((x) => storedAs(dtype, x)) };
      const lseStored = { ...lse!, values: lse!.values.map(Math.fround) };
      return {
        inputs: [...ins, outStored, lseStored, rng.tensor(out!.shape, dtype), rng.tensor(lse!.shape, 'f32')],
        attrs: { ...c.attrs },
        desc: c.desc,
      };
    }),
  reference: (inputs, attrs) => softmaxBackwardRef(inputs, attrs as SoftmaxAttrsIn),
  magnitude: (inputs, attrs) => softmaxBackwardRef(inputs, attrs as SoftmaxAttrsIn, true).map((h) => h.values),
  errors: (rng) => softmaxErrors('softmaxAttentionBackward', rng),
};

/** A value as a dtype stores it (round to nearest even). */
function storedAs(dtype: DType, x: number): number {
  return dtype === 'f32' ? Math.fround(x) : roundToDtype(dtype as 'bf16', x);
}

// ---------------------------------------------------------------------------------------------
// rope, groupRmsNormGate

interface RopeAttrsIn {
  rotaryDim?: number;
  theta?: number;
  inverse?: boolean;
}

function ropeRef([x, positions]: readonly HostTensor[], attrs: RopeAttrsIn, mag = false): HostTensor[] {
  const r = x!.shape.length;
  const [T, H, D] = x!.shape.slice(r - 3) as [number, number, number];
  const B = r === 4 ? x!.shape[0]! : 1;
  const rot = attrs.rotaryDim ?? D;
  const half = rot / 2;
  const inv = ropeInvFreq(rot, attrs.theta ?? 10000);
  const y = Float64Array.from(x!.values, (v) => (mag ? Math.abs(v) : v));
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const pos = positions!.values[positions!.shape.length === 2 ? b * T + t : t]!;
      for (let i = 0; i < half; i++) {
        // fp32 angles (MODEL_SPEC §2.3)
        const angle = Math.fround(pos * inv[i]!);
        const c = Math.fround(Math.cos(angle));
        const s = (attrs.inverse ? -1 : 1) * Math.fround(Math.sin(angle));
        for (let h = 0; h < H; h++) {
          const o = ((b * T + t) * H + h) * D;
          const x1 = x!.values[o + i]!;
          const x2 = x!.values[o + i + half]!;
          y[o + i] = mag ? Math.abs(x1 * c) + Math.abs(x2 * s) : x1 * c - x2 * s;
          y[o + i + half] = mag ? Math.abs(x2 * c) + Math.abs(x1 * s) : x2 * c + x1 * s;
        }
      }
    }
  }
  return [hostT(x!.shape, x!.dtype, y)];
}

const int32 = (shape: number[], values: number[]): HostTensor => hostT(shape, 'i32', Float64Array.from(values));
const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

const ropeInfo: OpInfo = {
  op: 'rope',
  dtypes: DTYPES,
  samples: (rng, dtype) => [
    { inputs: [rng.tensor([2, 3, 2, 8], dtype), int32([3], range(3))], attrs: { rotaryDim: 4, theta: 10000 }, desc: 'partial (4 of 8), positions 0..2' },
    { inputs: [rng.tensor([5, 3, 6], dtype), int32([5], range(5, 17))], attrs: { theta: 500 }, desc: 'rank 3, full rotation, offset 17' },
    { inputs: [rng.tensor([2, 2, 1, 4], dtype), int32([2, 2], [4, 5, 0, 1])], attrs: { rotaryDim: 2 }, desc: 'per-batch positions' },
    { inputs: [rng.tensor([1, 2, 2, 16], dtype), int32([2], [70000, 70001])], attrs: { rotaryDim: 8, theta: 1e6 }, desc: 'large positions (fp32 angles)' },
    { inputs: [rng.tensor([1, 3, 2, 4], dtype), int32([3], [2, 3, 4])], attrs: { rotaryDim: 4, inverse: true }, desc: 'inverse rotation' },
  ],
  reference: (inputs, attrs) => ropeRef(inputs, attrs as RopeAttrsIn),
  magnitude: (inputs, attrs) => ropeRef(inputs, attrs as RopeAttrsIn, true).map((h) => h.values),
  grad: { inputs: [0] },
  errors: (rng) => {
    const x = rng.tensor([2, 3, 2, 8], 'f32');
    return [
      { inputs: [x, int32([3], range(3))], attrs: { rotaryDim: 5 }, error: 'AttrError', message: /'rotaryDim' must be a positive even number/, desc: 'odd rotary dim' },
      { inputs: [x, int32([3], range(3))], attrs: { rotaryDim: 10 }, error: 'AttrError', message: /'rotaryDim' \(10\) must not exceed head_dim \(8/, desc: 'rotary dim > head_dim' },
      { inputs: [x, int32([2], range(2))], error: 'ShapeError', message: /'positions' must have shape \[3\] or \[2, 3\]/, desc: 'positions of the wrong length' },
    ];
  },
};

function gateRef([o, gate, w]: readonly HostTensor[], attrs: { groups?: number; eps?: number }): HostTensor[] {
  const C = o!.shape[o!.shape.length - 1]!;
  const groups = attrs.groups ?? 1;
  const eps = Math.fround(attrs.eps ?? 1e-6);
  const sz = C / groups;
  const y = new Float64Array(o!.values.length);
  for (let r = 0; r < y.length / C; r++) {
    for (let g = 0; g < groups; g++) {
      const base = r * C + g * sz;
      let ss = 0;
      for (let j = 0; j < sz; j++) ss += o!.values[base + j]! ** 2;
      const inv = 1 / Math.sqrt(ss / sz + eps);
      for (let j = 0; j < sz; j++) {
        y[base + j] = o!.values[base + j]! * inv * w!.values[g * sz + j]! / (1 + Math.exp(-gate!.values[base + j]!));
      }
    }
  }
  return [hostT(o!.shape, o!.dtype, y)];
}

const groupRmsNormGateInfo: OpInfo = {
  op: 'groupRmsNormGate',
  dtypes: DTYPES,
  samples: (rng, dtype) => [
    { inputs: [rng.tensor([3, 12], dtype), rng.tensor([3, 12], dtype, { scale: 2 }), rng.tensor([12], dtype)], attrs: { groups: 4 }, desc: '4 groups of 3' },
    { inputs: [rng.tensor([2, 2, 8], dtype), rng.tensor([2, 2, 8], dtype), rng.tensor([8], 'f32')], attrs: { groups: 1, eps: 1e-5 }, desc: 'one group, f32 weight' },
    // One channel a group: o / sqrt(o^2 + eps), whose gradient eps / r^3 the composite forms as a
    // difference that cancels for |o| >> sqrt(eps) (f32 gives 10% there). |o| ~ sqrt(eps) keeps it
    // well conditioned, and is where eps matters.
    { inputs: [rng.tensor([1, 6], dtype, { scale: 1e-3 }), rng.tensor([1, 6], dtype), rng.tensor([6], dtype)], attrs: { groups: 6 }, desc: 'groups of one channel, |o| ~ sqrt(eps)' },
  ],
  reference: (inputs, attrs) => gateRef(inputs, attrs),
  grad: true,
  errors: (rng) => {
    const o = rng.tensor([2, 10], 'f32');
    return [
      { inputs: [o, o, rng.tensor([10], 'f32')], attrs: { groups: 4 }, error: 'ShapeError', message: /10 channels of 'o' \[2, 10\] do not divide into 4 equal groups/, desc: 'groups do not divide' },
      { inputs: [o, rng.tensor([10], 'f32'), rng.tensor([10], 'f32')], error: 'ShapeError', message: /'gate' must have the shape of 'o'/, desc: 'gate shape' },
      { inputs: [o, o, rng.tensor([5], 'f32')], error: 'ShapeError', message: /'weight' must have shape \[10\]/, desc: 'weight shape' },
    ];
  },
};

/** Every attention op's record. */
export const attentionOpInfos: readonly OpInfo[] = [
  lightningAttentionInfo,
  lightningAttentionStepInfo,
  lightningAttentionBackwardInfo,
  softmaxAttentionInfo,
  softmaxAttentionBackwardInfo,
  ropeInfo,
  groupRmsNormGateInfo,
];
