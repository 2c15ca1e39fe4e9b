/**
 * CPU kernels of softmaxAttention and softmaxAttentionBackward (@ring-linear/attention, MODEL_SPEC
 * §3): grouped-query heads, causal masking with query positions kvOffset + i, a valid-key prefix
 * kvLen, packed sequences via cuSeqlens.
 *
 * Flash-style: queries in blocks, keys in tiles, an online softmax per query row (running max and
 * sum, the accumulator rescaled when the max grows), so no Tq x Tk matrix exists; the backward pass
 * recomputes probabilities from the saved log-sum-exp. Arithmetic in float64.
 */
import type { TensorInfo } from '@ring-linear/core';
import { commit, outValues, register, values } from '../../util.js';
import { gemm, transposeInto } from './gemm64.js';

interface SoftmaxAttrs {
  scale: number;
  causal: boolean;
  cuSeqlens: number[] | null;
  kvLen: number;
  kvOffset: number;
}

const QUERY_BLOCK = 32;
const KEY_TILE = 64;

/** A run of queries and the keys they may read, positions relative to the sequence start. */
interface Span {
  /** Query rows [q0, q1) and key rows [k0, k1) of the packed/batched tensors. */
  q0: number;
  q1: number;
  k0: number;
  k1: number;
  /** Position of query row q0 (key row k0 has position 0). */
  qPos: number;
}

function spans(a: SoftmaxAttrs, Tq: number): Span[] {
  if (a.cuSeqlens) {
    const out: Span[] = [];
    for (let i = 0; i + 1 < a.cuSeqlens.length; i++) {
      const s = a.cuSeqlens[i]!;
      const e = a.cuSeqlens[i + 1]!;
      out.push({ q0: s, q1: e, k0: s, k1: e, qPos: 0 });
    }
    return out;
  }
  return [{ q0: 0, q1: Tq, k0: 0, k1: a.kvLen, qPos: a.kvOffset }];
}

interface Dims {
  B: number;
  Tq: number;
  Tk: number;
  H: number;
  Hkv: number;
  G: number;
  D: number;
  Dv: number;
}

function dims(q: TensorInfo, k: TensorInfo, v: TensorInfo): Dims {
  const [B, Tq, H, D] = q.shape as [number, number, number, number];
  const [, Tk, Hkv] = k.shape as [number, number, number, number];
  return { B, Tq, Tk, H, Hkv, G: H / Hkv, D, Dv: v.shape[3]! };
}

/** Copies rows [r0, r1) of head h of a [B, T, Hn, W] tensor into a dense [r1 - r0, W] array. */
function gatherHead(src: Float32Array, b: number, T: number, Hn: number, h: number, W: number, r0: number, r1: number, dst: Float64Array): void {
  for (let r = r0; r < r1; r++) {
    const o = ((b * T + r) * Hn + h) * W;
    const d0 = (r - r0) * W;
    for (let d = 0; d < W; d++) dst[d0 + d] = src[o + d]!;
  }
}

/** The last key row (exclusive) query row qi may read. */
function keyEnd(sp: Span, qi: number, causal: boolean): number {
  return causal ? Math.min(sp.k1, sp.k0 + sp.qPos + (qi - sp.q0) + 1) : sp.k1;
}

register('softmaxAttention', ({ inputs: [q, k, v], outputs: [out, lse], attrs }) => {
  const a = attrs as SoftmaxAttrs;
  const { B, Tq, Tk, H, Hkv, G, D, Dv } = dims(q!, k!, v!);
  const qv = values(q!) as Float32Array;
  const kv = values(k!) as Float32Array;
  const vv = values(v!) as Float32Array;
  const ov = outValues(out!) as Float32Array;
  const lv = outValues(lse!) as Float32Array;
  const sc = a.scale;
  const K = new Float64Array(Tk * D);
  const Kt = new Float64Array(D * Tk);
  const V = new Float64Array(Tk * Dv);
  const Qb = new Float64Array(QUERY_BLOCK * D);
  const S = new Float64Array(QUERY_BLOCK * KEY_TILE);
  const acc = new Float64Array(QUERY_BLOCK * Dv);
  const m = new Float64Array(QUERY_BLOCK);
  const l = new Float64Array(QUERY_BLOCK);
  for (let b = 0; b < B; b++) {
    for (let hk = 0; hk < Hkv; hk++) {
      for (const sp of spans(a, Tq)) {
        // K (and K^T, leading dim Tk) and V of this kv head and span, dense (row r - sp.k0).
        const nk = sp.k1 - sp.k0;
        gatherHead(kv, b, Tk, Hkv, hk, D, sp.k0, sp.k1, K);
        gatherHead(vv, b, Tk, Hkv, hk, Dv, sp.k0, sp.k1, V);
        transposeInto(nk, D, K, 0, D, Kt, 0, Tk);
        for (let h = hk * G; h < (hk + 1) * G; h++) {
          for (let qb0 = sp.q0; qb0 < sp.q1; qb0 += QUERY_BLOCK) {
            const nq = Math.min(QUERY_BLOCK, sp.q1 - qb0);
            gatherHead(qv, b, Tq, H, h, D, qb0, qb0 + nq, Qb);
            for (let x = 0; x < nq * D; x++) Qb[x]! *= sc;
            m.fill(-Infinity);
            l.fill(0);
            acc.fill(0, 0, nq * Dv);
            const blockEnd = keyEnd(sp, qb0 + nq - 1, a.causal);
            for (let t0 = sp.k0; t0 < blockEnd; t0 += KEY_TILE) {
              const nt = Math.min(KEY_TILE, blockEnd - t0);
              // Scores of the tile: S = (scale Q) K^T
              gemm(nq, nt, D, Qb, 0, D, Kt, t0 - sp.k0, Tk, S, 0, KEY_TILE, false);
              // Online softmax per row; S becomes the unnormalized probabilities P.
              for (let i = 0; i < nq; i++) {
                const r = i * KEY_TILE;
                const valid = Math.min(nt, keyEnd(sp, qb0 + i, a.causal) - t0);
                if (valid <= 0) {
                  for (let j = 0; j < nt; j++) S[r + j] = 0;
                  continue;
                }
                let tileMax = -Infinity;
                for (let j = 0; j < valid; j++) if (S[r + j]! > tileMax) tileMax = S[r + j]!;
                const mOld = m[i]!;
                if (tileMax > mOld) {
                  // Rescale what was accumulated under the old max.
                  const corr = Math.exp(mOld - tileMax);
                  l[i]! *= corr;
                  for (let e = 0; e < Dv; e++) acc[i * Dv + e]! *= corr;
                  m[i] = tileMax;
                }
                const mi = m[i]!;
                let li = l[i]!;
                for (let j = 0; j < valid; j++) {
                  const p = Math.exp(S[r + j]! - mi);
                  S[r + j] = p;
                  li += p;
                }
                for (let j = valid; j < nt; j++) S[r + j] = 0;
                l[i] = li;
              }
              // acc += P V_tile
              gemm(nq, Dv, nt, S, 0, KEY_TILE, V, (t0 - sp.k0) * Dv, Dv, acc, 0, Dv, true);
            }
            for (let i = 0; i < nq; i++) {
              const o = ((b * Tq + qb0 + i) * H + h) * Dv;
              const inv = 1 / l[i]!;
              for (let e = 0; e < Dv; e++) ov[o + e] = acc[i * Dv + e]! * inv;
              lv[(b * H + h) * Tq + qb0 + i] = m[i]! + Math.log(l[i]!);
            }
          }
        }
      }
    }
  }
  commit(out!, ov);
  commit(lse!, lv);
});

/**
 * Backward: with P = exp(s - lse), dP = dO V^T, delta_i = dO_i . O_i,
 *   dS = P (dP - delta + dLse);  dQ = scale dS K;  dK = scale dS^T Q;  dV = P^T dO
 * accumulated over the query heads sharing each kv head, one (query block, key tile) at a time.
 */
register('softmaxAttentionBackward', ({ inputs: [q, k, v, out, lse, dOut, dLse], outputs: [dq, dk, dv], attrs }) => {
  const a = attrs as SoftmaxAttrs;
  const { B, Tq, Tk, H, Hkv, G, D, Dv } = dims(q!, k!, v!);
  const qv = values(q!) as Float32Array;
  const kv = values(k!) as Float32Array;
  const vv = values(v!) as Float32Array;
  const ov = values(out!) as Float32Array;
  const lv = values(lse!) as Float32Array;
  const dov = values(dOut!) as Float32Array;
  const dlv = values(dLse!) as Float32Array;
  const dqv = outValues(dq!) as Float32Array;
  const dkv = outValues(dk!) as Float32Array;
  const dvv = outValues(dv!) as Float32Array;
  // Keys past kvLen get no gradient.
  dkv.fill(0);
  dvv.fill(0);
  const sc = a.scale;
  const K = new Float64Array(Tk * D);
  const Kt = new Float64Array(D * Tk);
  const V = new Float64Array(Tk * Dv);
  const Vt = new Float64Array(Dv * Tk);
  const dK = new Float64Array(Tk * D);
  const dV = new Float64Array(Tk * Dv);
  const Qb = new Float64Array(QUERY_BLOCK * D);
  const dOb = new Float64Array(QUERY_BLOCK * Dv);
  const Ob = new Float64Array(QUERY_BLOCK * Dv);
  const dQb = new Float64Array(QUERY_BLOCK * D);
  const P = new Float64Array(QUERY_BLOCK * KEY_TILE);
  const dS = new Float64Array(QUERY_BLOCK * KEY_TILE);
  const Tr = new Float64Array(KEY_TILE * QUERY_BLOCK);
  const delta = new Float64Array(QUERY_BLOCK);
  for (let b = 0; b < B; b++) {
    for (let hk = 0; hk < Hkv; hk++) {
      for (const sp of spans(a, Tq)) {
        const nk = sp.k1 - sp.k0;
        gatherHead(kv, b, Tk, Hkv, hk, D, sp.k0, sp.k1, K);
        gatherHead(vv, b, Tk, Hkv, hk, Dv, sp.k0, sp.k1, V);
        transposeInto(nk, D, K, 0, D, Kt, 0, Tk);
        transposeInto(nk, Dv, V, 0, Dv, Vt, 0, Tk);
        dK.fill(0, 0, nk * D);
        dV.fill(0, 0, nk * Dv);
        for (let h = hk * G; h < (hk + 1) * G; h++) {
          for (let qb0 = sp.q0; qb0 < sp.q1; qb0 += QUERY_BLOCK) {
            const nq = Math.min(QUERY_BLOCK, sp.q1 - qb0);
            gatherHead(qv, b, Tq, H, h, D, qb0, qb0 + nq, Qb);
            gatherHead(dov, b, Tq, H, h, Dv, qb0, qb0 + nq, dOb);
            gatherHead(ov, b, Tq, H, h, Dv, qb0, qb0 + nq, Ob);
            dQb.fill(0, 0, nq * D);
            for (let i = 0; i < nq; i++) {
              let dd = 0;
              for (let e = 0; e < Dv; e++) dd += dOb[i * Dv + e]! * Ob[i * Dv + e]!;
              delta[i] = dd;
            }
            const blockEnd = keyEnd(sp, qb0 + nq - 1, a.causal);
            for (let t0 = sp.k0; t0 < blockEnd; t0 += KEY_TILE) {
              const nt = Math.min(KEY_TILE, blockEnd - t0);
              const kr = t0 - sp.k0;
              gemm(nq, nt, D, Qb, 0, D, Kt, kr, Tk, P, 0, KEY_TILE, false);
              gemm(nq, nt, Dv, dOb, 0, Dv, Vt, kr, Tk, dS, 0, KEY_TILE, false);
              for (let i = 0; i < nq; i++) {
                const r = i * KEY_TILE;
                const valid = Math.max(0, Math.min(nt, keyEnd(sp, qb0 + i, a.causal) - t0));
                const li = (b * H + h) * Tq + qb0 + i;
                const lseI = lv[li]!;
                const shift = dlv[li]! - delta[i]!;
                for (let j = 0; j < valid; j++) {
                  const p = Math.exp(sc * P[r + j]! - lseI);
                  P[r + j] = p;
                  dS[r + j] = p * (dS[r + j]! + shift) * sc;
                }
                for (let j = valid; j < nt; j++) {
                  P[r + j] = 0;
                  dS[r + j] = 0;
                }
              }
              // dQ += dS K_tile;  dK_tile += dS^T Q;  dV_tile += P^T dO
              gemm(nq, D, nt, dS, 0, KEY_TILE, K, kr * D, D, dQb, 0, D, true);
              transposeInto(nq, nt, dS, 0, KEY_TILE, Tr, 0, QUERY_BLOCK);
              gemm(nt, D, nq, Tr, 0, QUERY_BLOCK, Qb, 0, D, dK, kr * D, D, true);
              transposeInto(nq, nt, P, 0, KEY_TILE, Tr, 0, QUERY_BLOCK);
              gemm(nt, Dv, nq, Tr, 0, QUERY_BLOCK, dOb, 0, Dv, dV, kr * Dv, Dv, true);
            }
            for (let i = 0; i < nq; i++) {
              const o = ((b * Tq + qb0 + i) * H + h) * D;
              for (let d = 0; d < D; d++) dqv[o + d] = dQb[i * D + d]!;
            }
          }
        }
        for (let r = sp.k0; r < sp.k1; r++) {
          const ok = ((b * Tk + r) * Hkv + hk) * D;
          const ovv = ((b * Tk + r) * Hkv + hk) * Dv;
          for (let d = 0; d < D; d++) dkv[ok + d] = dK[(r - sp.k0) * D + d]!;
          for (let e = 0; e < Dv; e++) dvv[ovv + e] = dV[(r - sp.k0) * Dv + e]!;
        }
      }
    }
  }
  commit(dq!, dqv);
  commit(dk!, dkv);
  commit(dv!, dvv);
});
