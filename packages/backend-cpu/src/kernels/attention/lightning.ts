/**
 * CPU kernels of the lightning (linear) attention ops defined by @ring-linear/attention
 * (MODEL_SPEC §2): lightningAttention (chunked), lightningAttentionStep (recurrent decode) and
 * lightningAttentionBackward. Registered by op name; this package does not import the attention
 * package (layering points down), so the attribute shapes are restated here.
 *
 * Layout: q, k [B, T, H, D], v and out [B, T, H, Dv], state [B (or packed sequences), H, D, Dv].
 * Everything is computed in float64 (state included) and rounded once to the output dtypes; the
 * state outputs are f32. Decay powers lambda^n = exp(-a n) come from a table of non-negative n, so
 * they underflow to 0 for long spans and never overflow.
 */
import type { TensorInfo } from '@ring-linear/core';
import { commit, outValues, register, values } from '../../util.js';
import { gemm, transposeInto } from './gemm64.js';

interface LightningAttrs {
  scale: number;
  chunkSize: number;
  cuSeqlens: number[] | null;
}

/** lambda^n = exp(-a n) for n = 0..C. */
function decayPowers(a: number, C: number): Float64Array {
  const p = new Float64Array(C + 1);
  for (let n = 0; n <= C; n++) p[n] = Math.exp(-a * n);
  return p;
}

function segments(cu: readonly number[] | null, T: number): [number, number][] {
  if (!cu) return [[0, T]];
  const out: [number, number][] = [];
  for (let i = 0; i + 1 < cu.length; i++) out.push([cu[i]!, cu[i + 1]!]);
  return out;
}

/** Copies L rows of width W, `stride` apart in `src` from `base`, into dense rows of `dst`. */
function gather(src: Float32Array, base: number, stride: number, L: number, W: number, dst: Float64Array): void {
  for (let i = 0; i < L; i++) {
    const o = base + i * stride;
    const r = i * W;
    for (let d = 0; d < W; d++) dst[r + d] = src[o + d]!;
  }
}

function scatter(src: Float64Array, L: number, W: number, dst: Float32Array, base: number, stride: number): void {
  for (let i = 0; i < L; i++) {
    const o = base + i * stride;
    const r = i * W;
    for (let d = 0; d < W; d++) dst[o + d] = src[r + d]!;
  }
}

/** Dense per-chunk scratch buffers. */
class Scratch {
  readonly Q: Float64Array;
  readonly K: Float64Array;
  readonly V: Float64Array;
  readonly O: Float64Array;
  readonly dO: Float64Array;
  readonly dQ: Float64Array;
  readonly dK: Float64Array;
  readonly dV: Float64Array;
  /** [C, C] score-like matrices (lower triangle used) and a transposed copy. */
  readonly A: Float64Array;
  readonly M: Float64Array;
  readonly T2: Float64Array;
  /** Transposed operands: [max(D, Dv), C] and [max(D, Dv), max(D, Dv)]. */
  readonly Xt: Float64Array;
  readonly St: Float64Array;
  constructor(C: number, D: number, Dv: number) {
    const W = Math.max(D, Dv);
    this.T2 = new Float64Array(C * C);
    this.Xt = new Float64Array(W * C);
    this.St = new Float64Array(W * W);
    this.Q = new Float64Array(C * D);
    this.K = new Float64Array(C * D);
    this.V = new Float64Array(C * Dv);
    this.O = new Float64Array(C * Dv);
    this.dO = new Float64Array(C * Dv);
    this.dQ = new Float64Array(C * D);
    this.dK = new Float64Array(C * D);
    this.dV = new Float64Array(C * Dv);
    this.A = new Float64Array(C * C);
    this.M = new Float64Array(C * C);
  }
}

/**
 * out = X Y^T over the chunk's L rows (W columns each), then out[i][j] *= s lambda^(i-j) for j <= i
 * and 0 above the diagonal: the decay mask of the chunked form (MODEL_SPEC §2).
 */
function decayedScores(X: Float64Array, Y: Float64Array, L: number, W: number, C: number, s: number, pw: Float64Array, out: Float64Array, w: Scratch): void {
  transposeInto(L, W, Y, 0, W, w.Xt, 0, C);
  gemm(L, L, W, X, 0, W, w.Xt, 0, C, out, 0, C, false);
  for (let i = 0; i < L; i++) {
    const r = i * C;
    for (let j = 0; j <= i; j++) out[r + j]! *= s * pw[i - j]!;
    for (let j = i + 1; j < L; j++) out[r + j] = 0;
  }
}

/** dst[d][j] = src[j][d] * f(j) for L rows of width W: a row-scaled transposed copy ([W, C]). */
function scaledTranspose(src: Float64Array, L: number, W: number, C: number, f: (j: number) => number, dst: Float64Array): void {
  for (let j = 0; j < L; j++) {
    const c = f(j);
    const r = j * W;
    for (let d = 0; d < W; d++) dst[d * C + j] = src[r + d]! * c;
  }
}

/** S <- lambda^L S + (K * lambda^(L-1-j))^T V. */
function advanceState(S: Float64Array, K: Float64Array, V: Float64Array, L: number, D: number, Dv: number, pw: Float64Array, w: Scratch, C: number): void {
  const wl = pw[L]!;
  for (let x = 0; x < D * Dv; x++) S[x]! *= wl;
  scaledTranspose(K, L, D, C, (j) => pw[L - 1 - j]!, w.Xt);
  gemm(D, Dv, L, w.Xt, 0, C, V, 0, Dv, S, 0, Dv, true);
}

interface Geometry {
  T: number;
  H: number;
  D: number;
  Dv: number;
  C: number;
  s: number;
}

/** Element offset of (b, t, h, 0) in a [B, T, H, W] tensor. */
const at = (g: Geometry, b: number, t: number, h: number, W: number) => ((b * g.T + t) * g.H + h) * W;

/**
 * Forward over tokens [t0, t1) of batch entry b, head h, starting from state S (updated in place).
 * Writes the outputs when `out` is given.
 */
function forwardSpan(
  g: Geometry, qv: Float32Array, kv: Float32Array, vv: Float32Array, out: Float32Array | null,
  b: number, h: number, t0: number, t1: number, S: Float64Array, pw: Float64Array, w: Scratch,
): void {
  const { D, Dv, C, s, H } = g;
  for (let c0 = t0; c0 < t1; c0 += C) {
    const L = Math.min(C, t1 - c0);
    gather(kv, at(g, b, c0, h, D), H * D, L, D, w.K);
    gather(vv, at(g, b, c0, h, Dv), H * Dv, L, Dv, w.V);
    if (out) {
      gather(qv, at(g, b, c0, h, D), H * D, L, D, w.Q);
      // intra-chunk: O = ((Q K^T) * Dmask) V
      decayedScores(w.Q, w.K, L, D, C, s, pw, w.A, w);
      gemm(L, Dv, L, w.A, 0, C, w.V, 0, Dv, w.O, 0, Dv, false);
      // inter-chunk: O += (Q * s lambda^(i+1)) S
      for (let i = 0; i < L; i++) {
        const c = s * pw[i + 1]!;
        for (let d = 0; d < D; d++) w.Q[i * D + d]! *= c;
      }
      gemm(L, Dv, D, w.Q, 0, D, S, 0, Dv, w.O, 0, Dv, true);
      scatter(w.O, L, Dv, out, at(g, b, c0, h, Dv), H * Dv);
    }
    advanceState(S, w.K, w.V, L, D, Dv, pw, w, C);
  }
}

function geometry(q: TensorInfo, v: TensorInfo, chunkSize: number, scale: number): Geometry {
  const [, T, H, D] = q.shape as [number, number, number, number];
  return { T, H, D, Dv: v.shape[3]!, C: Math.max(1, Math.min(chunkSize, T)), s: scale };
}

register('lightningAttention', ({ inputs: [q, k, v, decay, s0], outputs: [out, sf], attrs }) => {
  const { scale, chunkSize, cuSeqlens } = attrs as LightningAttrs;
  const g = geometry(q!, v!, chunkSize, scale);
  const { T, H, D, Dv, C } = g;
  const B = q!.shape[0]!;
  const qv = values(q!) as Float32Array;
  const kv = values(k!) as Float32Array;
  const vv = values(v!) as Float32Array;
  const av = values(decay!) as Float32Array;
  const s0v = values(s0!) as Float32Array;
  const ov = outValues(out!) as Float32Array;
  const sv = outValues(sf!) as Float32Array;
  const w = new Scratch(C, D, Dv);
  const S = new Float64Array(D * Dv);
  const segs = segments(cuSeqlens, T);
  for (let h = 0; h < H; h++) {
    const pw = decayPowers(av[h]!, C);
    for (let b = 0; b < B; b++) {
      segs.forEach(([t0, t1], n) => {
        const si = ((cuSeqlens ? n : b) * H + h) * D * Dv;
        for (let x = 0; x < D * Dv; x++) S[x] = s0v[si + x]!;
        forwardSpan(g, qv, kv, vv, ov, b, h, t0, t1, S, pw, w);
        for (let x = 0; x < D * Dv; x++) sv[si + x] = S[x]!;
      });
    }
  }
  commit(out!, ov);
  commit(sf!, sv);
});

register('lightningAttentionStep', ({ inputs: [q, k, v, decay, s0], outputs: [out, sf], attrs }) => {
  const { scale } = attrs as { scale: number };
  const [B, T, H, D] = q!.shape as [number, number, number, number];
  const Dv = v!.shape[3]!;
  const g: Geometry = { T, H, D, Dv, C: 1, s: scale };
  const qv = values(q!) as Float32Array;
  const kv = values(k!) as Float32Array;
  const vv = values(v!) as Float32Array;
  const av = values(decay!) as Float32Array;
  const s0v = values(s0!) as Float32Array;
  const ov = outValues(out!) as Float32Array;
  const sv = outValues(sf!) as Float32Array;
  const S = new Float64Array(D * Dv);
  const o = new Float64Array(Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const lambda = Math.exp(-av[h]!);
      const si = (b * H + h) * D * Dv;
      for (let x = 0; x < D * Dv; x++) S[x] = s0v[si + x]!;
      // The recurrence itself: S_t = lambda S_{t-1} + k_t^T v_t; o_t = s q_t S_t.
      for (let t = 0; t < T; t++) {
        const kb = at(g, b, t, h, D);
        const vb = at(g, b, t, h, Dv);
        for (let d = 0; d < D; d++) {
          const kd = kv[kb + d]!;
          const row = d * Dv;
          for (let e = 0; e < Dv; e++) S[row + e] = lambda * S[row + e]! + kd * vv[vb + e]!;
        }
        // o = s q S, accumulated row by row of S (contiguous reads).
        const qb = at(g, b, t, h, D);
        o.fill(0);
        for (let d = 0; d < D; d++) {
          const c = qv[qb + d]!;
          const row = d * Dv;
          for (let e = 0; e < Dv; e++) o[e]! += c * S[row + e]!;
        }
        for (let e = 0; e < Dv; e++) ov[vb + e] = scale * o[e]!;
      }
      for (let x = 0; x < D * Dv; x++) sv[si + x] = S[x]!;
    }
  }
  commit(out!, ov);
  commit(sf!, sv);
});

/**
 * Backward, chunk by chunk in reverse with dH = dLoss/d(state leaving the chunk):
 *   M[i][j] = s lambda^(i-j) (do_i . v_j),  A[i][j] = s lambda^(i-j) (q_i . k_j)    (j <= i)
 *   dq_i = sum_j M[i][j] k_j + s lambda^(i+1) S do_i
 *   dk_j = sum_i M[i][j] q_i + lambda^(L-1-j) dH v_j
 *   dv_j = sum_i A[i][j] do_i + lambda^(L-1-j) dH^T k_j
 *   dH  <- lambda^L dH + s sum_i lambda^(i+1) q_i^T do_i
 * S (the state entering each chunk) is recomputed by a forward pass over the span.
 */
register('lightningAttentionBackward', ({ inputs: [q, k, v, decay, s0, dOut, dFinal], outputs: [dq, dk, dv, ds0], attrs }) => {
  const { scale, chunkSize, cuSeqlens } = attrs as LightningAttrs;
  const g = geometry(q!, v!, chunkSize, scale);
  const { T, H, D, Dv, C, s } = g;
  const B = q!.shape[0]!;
  const qv = values(q!) as Float32Array;
  const kv = values(k!) as Float32Array;
  const vv = values(v!) as Float32Array;
  const av = values(decay!) as Float32Array;
  const s0v = values(s0!) as Float32Array;
  const dov = values(dOut!) as Float32Array;
  const dfv = values(dFinal!) as Float32Array;
  const dqv = outValues(dq!) as Float32Array;
  const dkv = outValues(dk!) as Float32Array;
  const dvv = outValues(dv!) as Float32Array;
  const ds0v = outValues(ds0!) as Float32Array;
  const w = new Scratch(C, D, Dv);
  const DD = D * Dv;
  const dH = new Float64Array(DD);
  const segs = segments(cuSeqlens, T);
  const maxChunks = Math.max(...segs.map(([t0, t1]) => Math.ceil((t1 - t0) / C)));
  const states = new Float64Array(maxChunks * DD);
  const S = new Float64Array(DD);
  for (let h = 0; h < H; h++) {
    const pw = decayPowers(av[h]!, C);
    for (let b = 0; b < B; b++) {
      segs.forEach(([t0, t1], n) => {
        const si = ((cuSeqlens ? n : b) * H + h) * DD;
        // States entering each chunk.
        for (let x = 0; x < DD; x++) S[x] = s0v[si + x]!;
        const nChunks = Math.ceil((t1 - t0) / C);
        for (let c = 0; c < nChunks; c++) {
          states.set(S, c * DD);
          const c0 = t0 + c * C;
          forwardSpan(g, qv, kv, vv, null, b, h, c0, Math.min(c0 + C, t1), S, pw, w);
        }
        for (let x = 0; x < DD; x++) dH[x] = dfv[si + x]!;
        for (let c = nChunks - 1; c >= 0; c--) {
          const c0 = t0 + c * C;
          const L = Math.min(C, t1 - c0);
          const So = c * DD;
          gather(qv, at(g, b, c0, h, D), H * D, L, D, w.Q);
          gather(kv, at(g, b, c0, h, D), H * D, L, D, w.K);
          gather(vv, at(g, b, c0, h, Dv), H * Dv, L, Dv, w.V);
          gather(dov, at(g, b, c0, h, Dv), H * Dv, L, Dv, w.dO);
          decayedScores(w.dO, w.V, L, Dv, C, s, pw, w.M, w);
          decayedScores(w.Q, w.K, L, D, C, s, pw, w.A, w);
          const { Q, K, V, dO, dQ, dK, dV, A, M, T2, St } = w;
          // dQ = s lambda^(i+1) dO S^T + M K
          transposeInto(D, Dv, states, So, Dv, St, 0, D);
          gemm(L, D, Dv, dO, 0, Dv, St, 0, D, dQ, 0, D, false);
          for (let i = 0; i < L; i++) {
            const c = s * pw[i + 1]!;
            for (let d = 0; d < D; d++) dQ[i * D + d]! *= c;
          }
          gemm(L, D, L, M, 0, C, K, 0, D, dQ, 0, D, true);
          // dK = lambda^(L-1-j) V dH^T + M^T Q
          transposeInto(D, Dv, dH, 0, Dv, St, 0, D);
          gemm(L, D, Dv, V, 0, Dv, St, 0, D, dK, 0, D, false);
          for (let j = 0; j < L; j++) {
            const c = pw[L - 1 - j]!;
            for (let d = 0; d < D; d++) dK[j * D + d]! *= c;
          }
          transposeInto(L, L, M, 0, C, T2, 0, C);
          gemm(L, D, L, T2, 0, C, Q, 0, D, dK, 0, D, true);
          // dV = lambda^(L-1-j) K dH + A^T dO
          gemm(L, Dv, D, K, 0, D, dH, 0, Dv, dV, 0, Dv, false);
          for (let j = 0; j < L; j++) {
            const c = pw[L - 1 - j]!;
            for (let e = 0; e < Dv; e++) dV[j * Dv + e]! *= c;
          }
          transposeInto(L, L, A, 0, C, T2, 0, C);
          gemm(L, Dv, L, T2, 0, C, dO, 0, Dv, dV, 0, Dv, true);
          scatter(dQ, L, D, dqv, at(g, b, c0, h, D), H * D);
          scatter(dK, L, D, dkv, at(g, b, c0, h, D), H * D);
          scatter(dV, L, Dv, dvv, at(g, b, c0, h, Dv), H * Dv);
          // dH for the previous chunk: lambda^L dH + (Q * s lambda^(i+1))^T dO
          const wl = pw[L]!;
          for (let x = 0; x < DD; x++) dH[x]! *= wl;
          scaledTranspose(Q, L, D, C, (i) => s * pw[i + 1]!, w.Xt);
          gemm(D, Dv, L, w.Xt, 0, C, dO, 0, Dv, dH, 0, Dv, true);
        }
        for (let x = 0; x < DD; x++) ds0v[si + x] = dH[x]!;
      });
    }
  }
  commit(dq!, dqv);
  commit(dk!, dkv);
  commit(dv!, dvv);
  commit(ds0!, ds0v);
});
