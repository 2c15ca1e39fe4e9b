// Chunked lightning attention (MODEL_SPEC §2, "Chunked form"), forward and backward, for the ops
// lightningAttention / lightningAttentionBackward of @ring-linear/attention (host side:
// src/ops/lightning.ts).
//
// Per head with lambda = exp(-a) and scale s: S_t = lambda S_{t-1} + k_t^T v_t, o_t = s q_t S_t.
// Every decay power is exp(-a n) with n >= 0 (log space: underflows to 0, never overflows).
//
// One parameterized "chunk problem" covers the forward and the three backward outputs. A direction
// (forward or reverse in time), operands P1, P2 (width DP), R1 (width DR) and a state X [DP][DR]:
//
//   fwd: out_i = sum_{j<=i} s lambda^(i-j) (P1_i . P2_j) R1_j + s lambda^(i+1) (P1_i X)
//        X_leaving = lambda^L X + sum_j lambda^(L-1-j) P2_j^T R1_j
//   rev: out_i = sum_{j>=i} s lambda^(j-i) (P1_i . P2_j) R1_j + lambda^(L-1-i) (P1_i X)
//        X_entering = lambda^L X + sum_j s lambda^(j+1) P2_j^T R1_j
//
//   forward output:  fwd, P1 = q,  P2 = k,  R1 = v,  X = S        (state entering the chunk)
//   dq:              fwd, P1 = dO, P2 = v,  R1 = k,  X = S^T
//   dv:              rev, P1 = k,  P2 = q,  R1 = dO, X = dH       (dLoss/dS leaving the chunk)
//   dk:              rev, P1 = v,  P2 = dO, R1 = q,  X = dH^T
// (lightningBackwardComposite in packages/attention/src/ops/lightning.ts has the same formulas.)
//
// Three passes, parallel over "super-chunks" of P tokens (P a multiple of the 64-token chunk):
//   1. lt_state:  each super-chunk's own contribution U_g = sum_j f(j) P2_j^T R1_j (f as in the
//                 X update above, j relative to the super-chunk), f32, to a slot [DP][DR];
//   2. lt_scan:   per sequence, in time order (fwd) or reverse, X <- lambda^Lg X + U_g, leaving in
//                 slot g the state entering (fwd) / leaving (rev) super-chunk g; the last is the
//                 final state (forward) or dLoss/dS_0 (backward);
//   3. lt_chunk:  each super-chunk's outputs: the state loaded from its slot into f32 registers,
//                 then chunk by chunk (64 tokens): scores on tensor cores, masked with the decay,
//                 the output, and the state carried to the next chunk in registers.
//
// Tensor-core path (bf16 / f16, DP = DR = DH in {64, 128}): mma.sync m16n8k16 with f32
// accumulation. The state is kept in f32 (registers) and a copy rounded to the input's 16-bit
// format is the mma operand of the P1 X product; decay factors are applied in f32 to the
// accumulators (rows of P1 X, the scores) or to the P2 operand fragments (the state update,
// rounded once to 16 bits). DH/16 warps: warp w owns rows 16w..16w+15 of the state; for the
// [64 x DH] output tile, warp w owns rows 16 (w % 4) and 64 columns from 64 (w / 4).
// General path (every dtype and head size): the same three passes with scalar f32 arithmetic,
// super-chunks of one 64-token chunk.
#pragma once
#ifndef RING_LINEAR_LIGHTNING_CUH
#define RING_LINEAR_LIGHTNING_CUH
#include "mma.cuh"

#define LT_CHUNK 64
// cp.async stages of the tensor-core passes (two chunks in flight while one is computed).
#define LT_STAGES 3

// exp(-a n) for n >= 0, as f32.
RL_DEV float lt_pow(float a, float n) { return expf(-a * n); }

// Element (row, x) of a [B*T, H, X] tensor: rows count tokens over batch and time.
RL_DEV i64 lt_at(i64 row, int H, int h, int X, int x) { return (row * H + h) * (i64)X + x; }

// ---------------------------------------------------------------------------------------------
// Pass 2: the scan over super-chunks, one thread per state element of one (sequence, head).
// slots: [.., H, DD] at slot index slotBase + z * G + g. init/final: [N, H, DD] at n = nBase + z.
// final may be null (the backward's recomputed forward states need no final state).
template <bool REV>
RL_DEV void lt_scan(float* slots, const float* init, float* final_, const float* decay, int H, int DD, int Tseg, int P, int G,
                    int slotBase, int nBase) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= DD) return;
  const int h = blockIdx.y, z = blockIdx.z;
  const float a = decay[h];
  const i64 si = ((i64)(nBase + z) * H + h) * DD + x;
  float S = init[si];
  // The contributions do not depend on the running state: load a batch of them at once so the
  // chain waits for one memory latency per batch, not per super-chunk.
  const int BATCH = 8;
  for (int c0 = 0; c0 < G; c0 += BATCH) {
    float u[BATCH];
#pragma unroll
    for (int k = 0; k < BATCH; k++) {
      const int c = c0 + k, g = REV ? G - 1 - c : c;
      u[k] = c < G ? slots[((i64)(slotBase + z * G + g) * H + h) * DD + x] : 0.f;
    }
#pragma unroll
    for (int k = 0; k < BATCH; k++) {
      const int c = c0 + k, g = REV ? G - 1 - c : c;
      if (c < G) {
        const int L = min(P, Tseg - g * P);
        slots[((i64)(slotBase + z * G + g) * H + h) * DD + x] = S;
        S = lt_pow(a, (float)L) * S + u[k];
      }
    }
  }
  if (final_) final_[si] = S;
}

// ---------------------------------------------------------------------------------------------
// General path (scalar f32 arithmetic; any head sizes; super-chunks of at most 64 tokens).

// Pass 1: U_g[a][b] = sum_j f(j) P2_j[a] R1_j[b]. Grid (G, H, segments), 256 threads.
template <typename T, bool REV>
RL_DEV void lt_state_gen(const typename T::S* p2, const typename T::S* r1, const float* decay, float* slots, int Tn, int t0, int Tseg,
                         int H, int DP, int DR, int P, int slotBase, float scale) {
  const int g = blockIdx.x, h = blockIdx.y, z = blockIdx.z, G = gridDim.x;
  const int L = min(P, Tseg - g * P);
  const i64 row0 = (i64)z * Tn + t0 + (i64)g * P;
  const float a = decay[h];
  float* U = slots + ((i64)(slotBase + z * G + g) * H + h) * DP * DR;
  for (int idx = threadIdx.x; idx < DP * DR; idx += blockDim.x) {
    const int ia = idx / DR, ib = idx - ia * DR;
    float acc = 0.f;
    for (int j = 0; j < L; j++) {
      const float f = REV ? scale * lt_pow(a, (float)(j + 1)) : lt_pow(a, (float)(L - 1 - j));
      acc += f * T::ld(p2[lt_at(row0 + j, H, h, DP, ia)]) * T::ld(r1[lt_at(row0 + j, H, h, DR, ib)]);
    }
    U[idx] = acc;
  }
}

// Pass 3 of the general path: the whole super-chunk is one chunk. Grid (G, H, segments), 256 threads.
template <typename T, bool REV>
RL_DEV void lt_chunk_gen(const typename T::S* p1, const typename T::S* p2, const typename T::S* r1, typename T::S* out, const float* decay,
                         const float* slots, int xT, int Tn, int t0, int Tseg, int H, int DP, int DR, int P, int slotBase, float scale) {
  __shared__ float sc[LT_CHUNK][LT_CHUNK + 1];
  const int g = blockIdx.x, h = blockIdx.y, z = blockIdx.z, G = gridDim.x;
  const int L = min(P, Tseg - g * P);
  const i64 row0 = (i64)z * Tn + t0 + (i64)g * P;
  const float a = decay[h];
  const float* X = slots + ((i64)(slotBase + z * G + g) * H + h) * DP * DR;
  for (int idx = threadIdx.x; idx < L * L; idx += blockDim.x) {
    const int i = idx / L, j = idx - i * L;
    float v = 0.f;
    if (REV ? j >= i : j <= i) {
      float dot = 0.f;
      for (int c = 0; c < DP; c++) dot += T::ld(p1[lt_at(row0 + i, H, h, DP, c)]) * T::ld(p2[lt_at(row0 + j, H, h, DP, c)]);
      v = scale * lt_pow(a, (float)(REV ? j - i : i - j)) * dot;
    }
    sc[i][j] = v;
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < L * DR; idx += blockDim.x) {
    const int i = idx / DR, e = idx - i * DR;
    float inter = 0.f;
    for (int c = 0; c < DP; c++) {
      const float xv = xT ? X[(i64)e * DP + c] : X[(i64)c * DR + e];
      inter += T::ld(p1[lt_at(row0 + i, H, h, DP, c)]) * xv;
    }
    float o = (REV ? lt_pow(a, (float)(L - 1 - i)) : scale * lt_pow(a, (float)(i + 1))) * inter;
    const int jlo = REV ? i : 0, jhi = REV ? L : i + 1;
    for (int j = jlo; j < jhi; j++) o += sc[i][j] * T::ld(r1[lt_at(row0 + j, H, h, DR, e)]);
    out[lt_at(row0 + i, H, h, DR, e)] = T::st(o, false);
  }
}

// ---------------------------------------------------------------------------------------------
// Tensor-core path.

// Row stride (in 16-bit elements) of a staged [rows][DH] tile: 16 bytes of padding keep the eight
// row addresses of an ldmatrix on distinct bank groups.
template <int DH> struct LtTile {
  static const int LD = DH + 8;
  static const int ELEMS = LT_CHUNK * LD;
};

// Stages rows [0, 64) of a [.., H, DH] tensor starting at token row `row0` (rows >= L zero-filled)
// into smem [64][DH + 8] with 16-byte cp.async copies spread over the block.
template <int DH, int NT>
RL_DEV void lt_stage(u16* dst, const u16* src, i64 row0, int L, int H, int h) {
  const int PER_ROW = DH / 8; // 16-byte pieces of a row
  for (int p = threadIdx.x; p < LT_CHUNK * PER_ROW; p += NT) {
    const int r = p / PER_ROW, c = (p - r * PER_ROW) * 8;
    const bool ok = r < L;
    const u16* g = src + lt_at(row0 + (ok ? r : 0), H, h, DH, c);
    cp_async16(dst + r * LtTile<DH>::LD + c, g, ok ? 16 : 0);
  }
}

// A fragment (16 x 16, row-major) at rows m0, columns k0 of a row-major smem matrix (stride ld).
RL_DEV void lt_frag_a(u32 r[4], const u16* base, int ld, int m0, int k0) {
  const int l = threadIdx.x & 31, i = l >> 3;
  ldmatrix_x4(r, base + (m0 + (l & 7) + 8 * (i & 1)) * ld + k0 + 8 * (i >> 1));
}
// A fragment whose A[m][k] is stored transposed: smem[k][m] (rows k0.., columns m0..).
RL_DEV void lt_frag_a_t(u32 r[4], const u16* base, int ld, int m0, int k0) {
  const int l = threadIdx.x & 31, i = l >> 3;
  ldmatrix_x4_trans(r, base + (k0 + (l & 7) + 8 * (i >> 1)) * ld + m0 + 8 * (i & 1));
}
// B fragments of two n-tiles (n0..n0+15, k0..k0+15) with B[k][n] stored as smem[n][k]:
// r[0], r[1] = n-tile n0; r[2], r[3] = n-tile n0 + 8.
RL_DEV void lt_frag_b_nk(u32 r[4], const u16* base, int ld, int n0, int k0) {
  const int l = threadIdx.x & 31, i = l >> 3;
  ldmatrix_x4(r, base + (n0 + (l & 7) + 8 * (i >> 1)) * ld + k0 + 8 * (i & 1));
}
// The same with B[k][n] stored as smem[k][n].
RL_DEV void lt_frag_b_kn(u32 r[4], const u16* base, int ld, int n0, int k0) {
  const int l = threadIdx.x & 31, i = l >> 3;
  ldmatrix_x4_trans(r, base + (k0 + (l & 7) + 8 * (i & 1)) * ld + n0 + 8 * (i >> 1));
}

template <typename T> RL_DEV float lt_lo(u32 x);
template <typename T> RL_DEV float lt_hi(u32 x);
template <> RL_DEV float lt_lo<BF16>(u32 x) { return __uint_as_float(x << 16); }
template <> RL_DEV float lt_hi<BF16>(u32 x) { return __uint_as_float(x & 0xffff0000u); }
template <> RL_DEV float lt_lo<F16>(u32 x) { return f16_to_f32((u16)(x & 0xffffu)); }
template <> RL_DEV float lt_hi<F16>(u32 x) { return f16_to_f32((u16)(x >> 16)); }
// Two f32 values as one register of 16-bit operands (round to nearest even, the hardware's
// cvt.rn; only for mma operands: stored outputs go through pack2, core's codec bit for bit).
template <typename T> RL_DEV u32 lt_op2(float a, float b);
template <> RL_DEV u32 lt_op2<BF16>(float a, float b) {
  __nv_bfloat162 r = __floats2bfloat162_rn(a, b);
  return *(u32*)&r;
}
template <> RL_DEV u32 lt_op2<F16>(float a, float b) {
  __half2 r = __floats2half2_rn(a, b);
  return *(u32*)&r;
}
// Scales the two halves of a fragment register by fa (low) and fb (high), rounding once.
template <typename T> RL_DEV u32 lt_scale2(u32 x, float fa, float fb) { return lt_op2<T>(lt_lo<T>(x) * fa, lt_hi<T>(x) * fb); }

// Scales an A fragment (16 x 16, k = tokens) per k: f[0], f[1] for k = 2t, 2t+1; f[2], f[3] for
// k = 2t+8, 2t+9.
template <typename T> RL_DEV void lt_scale_k(u32 r[4], const float f[4]) {
  r[0] = lt_scale2<T>(r[0], f[0], f[1]);
  r[1] = lt_scale2<T>(r[1], f[0], f[1]);
  r[2] = lt_scale2<T>(r[2], f[2], f[3]);
  r[3] = lt_scale2<T>(r[3], f[2], f[3]);
}

// Warp roles of the tensor-core passes, NW warps (a multiple of 4 and of DH / 16):
//   state [DH][DH]:  warp w owns rows 16 (w % (DH/16)), columns (w / (DH/16)) * 8 XN ..
//   output [64][DH]: rows 16 (w % 4), 8 ON columns from (w / 4) * 8 ON
//   scores [64][64]: rows 16 (w % 4), SW keys from (w / 4) * SW
// More warps hide more latency; fewer give each warp larger tiles (fewer shared-memory operand
// reads per mma).
template <int DH, int NW_> struct LtWarps {
  static const int NW = NW_, NT = NW * 32;
  static const int XN = DH * DH / (128 * NW); // state n-tiles (of 8 columns) per warp
  static const int ON = DH / (2 * NW);        // output n-tiles per warp
  static const int SW = 256 / NW;             // score keys per warp
  static const int SN = SW / 8;               // score n-tiles per warp
};

// Pass 1 on tensor cores: U_g = sum_j f(j) P2_j^T R1_j over the super-chunk, 64 tokens at a time
// (LT_STAGES cp.async stages). Grid (G, H, segments), DH*4 threads.
template <typename T, int DH, bool REV>
RL_DEV void lt_state(const u16* p2, const u16* r1, const float* decay, float* slots, int Tn, int t0, int Tseg, int H, int P,
                     int slotBase, float scale) {
  typedef LtWarps<DH, DH / 8> W;
  const int NT = W::NT, LD = LtTile<DH>::LD, E = LtTile<DH>::ELEMS;
  extern __shared__ __align__(16) u16 lt_smem[];
  __shared__ float fac[LT_STAGES][LT_CHUNK]; // per tile: f(token), staged with the tiles
  const int g = blockIdx.x, h = blockIdx.y, z = blockIdx.z, G = gridDim.x;
  const int Lg = min(P, Tseg - g * P);
  const i64 row0 = (i64)z * Tn + t0 + (i64)g * P;
  const float a = decay[h];
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, gq = lane >> 2, tq = lane & 3;
  const int r0 = 16 * (w % (DH / 16)), c0 = (w / (DH / 16)) * (8 * W::XN);
  float acc[W::XN][4];
#pragma unroll
  for (int n = 0; n < W::XN; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  const int nC = (Lg + LT_CHUNK - 1) / LT_CHUNK;
  // Tile c into stage c % LT_STAGES, with f(jj) for its tokens jj relative to the super-chunk:
  // lambda^(Lg-1-jj) forward, s lambda^(jj+1) reverse (exp of a non-positive exponent each; 0
  // past the end). An empty commit group past the last tile keeps the group count uniform.
  auto stage = [&](int c) {
    if (c < nC) {
      u16* st = lt_smem + (c % LT_STAGES) * 2 * E;
      const int L = min(LT_CHUNK, Lg - c * LT_CHUNK);
      lt_stage<DH, NT>(st, p2, row0 + c * LT_CHUNK, L, H, h);
      lt_stage<DH, NT>(st + E, r1, row0 + c * LT_CHUNK, L, H, h);
      if (threadIdx.x < LT_CHUNK) {
        const int jj = c * LT_CHUNK + threadIdx.x;
        fac[c % LT_STAGES][threadIdx.x] = jj < Lg ? (REV ? scale * lt_pow(a, (float)(jj + 1)) : lt_pow(a, (float)(Lg - 1 - jj))) : 0.f;
      }
    }
    cp_async_commit();
  };
#pragma unroll
  for (int c = 0; c < LT_STAGES - 1; c++) stage(c);
  for (int c = 0; c < nC; c++) {
    const u16* st = lt_smem + (c % LT_STAGES) * 2 * E;
    stage(c + LT_STAGES - 1);
    cp_async_wait<LT_STAGES - 1>();
    __syncthreads();
    const float* fc = fac[c % LT_STAGES];
#pragma unroll
    for (int ks = 0; ks < LT_CHUNK / 16; ks++) {
      u32 af[4];
      lt_frag_a_t(af, st, LD, r0, 16 * ks);
      const int j = 16 * ks + 2 * tq;
      const float f[4] = {fc[j], fc[j + 1], fc[j + 8], fc[j + 9]};
      lt_scale_k<T>(af, f);
#pragma unroll
      for (int n = 0; n < W::XN; n += 2) {
        u32 bf[4];
        lt_frag_b_kn(bf, st + E, LD, c0 + 8 * n, 16 * ks);
        Mma<T>::run(acc[n], af, bf);
        Mma<T>::run(acc[n + 1], af, bf + 2);
      }
    }
    __syncthreads(); // this stage is refilled by the next iteration's prefetch
  }
  float* U = slots + ((i64)(slotBase + z * G + g) * H + h) * DH * DH;
#pragma unroll
  for (int n = 0; n < W::XN; n++) {
    const int r = r0 + gq, col = c0 + 8 * n + 2 * tq;
    *(float2*)(U + r * DH + col) = make_float2(acc[n][0], acc[n][1]);
    *(float2*)(U + (r + 8) * DH + col) = make_float2(acc[n][2], acc[n][3]);
  }
}

// Pass 3 on tensor cores. Grid (G, H, segments), NW*32 threads; dynamic smem: LT_STAGES stages of the
// P1, P2, R1 tiles, the 16-bit state copy [DH][DH+8] and the 16-bit masked scores [64][72].
template <typename T, int DH, int NW, bool REV>
RL_DEV void lt_chunk(const u16* p1, const u16* p2, const u16* r1, u16* out, const float* decay, const float* slots, int xT, int Tn, int t0,
                     int Tseg, int H, int P, int slotBase, float scale) {
  typedef LtWarps<DH, NW> W;
  const int NT = W::NT, LD = LtTile<DH>::LD, E = LtTile<DH>::ELEMS;
  const int SLD = LT_CHUNK + 8; // score row stride
  extern __shared__ __align__(16) u16 lt_smem[];
  // lambda^n and s lambda^n for n = 0..64: every decay factor of a chunk is one of these.
  __shared__ float pw[LT_CHUNK + 1], spw[LT_CHUNK + 1];
  u16* xs = lt_smem + 3 * LT_STAGES * E; // [DH][LD] 16-bit copy of the state
  u16* ss = xs + DH * LD;             // [64][SLD] masked scores
  const int g = blockIdx.x, h = blockIdx.y, z = blockIdx.z, G = gridDim.x;
  const int Lg = min(P, Tseg - g * P);
  const i64 row0 = (i64)z * Tn + t0 + (i64)g * P;
  const float a = decay[h];
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, gq = lane >> 2, tq = lane & 3;
  const int nC = (Lg + LT_CHUNK - 1) / LT_CHUNK;
  const int r0 = 16 * (w % (DH / 16)), c0 = (w / (DH / 16)) * (8 * W::XN); // state rows / columns
  const int i0 = 16 * (w & 3);                                         // score and output rows
  const int jc0 = (w >> 2) * W::SW;                                     // first score column
  const int oc0 = (w >> 2) * (8 * W::ON);                               // first output column
  for (int n = threadIdx.x; n <= LT_CHUNK; n += NT) {
    pw[n] = lt_pow(a, (float)n);
    spw[n] = scale * pw[n];
  }

  // The state entering (fwd) / leaving (rev) this super-chunk, f32.
  float x[W::XN][4];
  {
    const float* X = slots + ((i64)(slotBase + z * G + g) * H + h) * DH * DH;
#pragma unroll
    for (int n = 0; n < W::XN; n++) {
#pragma unroll
      for (int u = 0; u < 4; u++) {
        const int r = r0 + gq + 8 * (u >> 1), col = c0 + 8 * n + 2 * tq + (u & 1);
        x[n][u] = xT ? X[col * DH + r] : X[r * DH + col];
      }
    }
  }
  auto store_x = [&]() {
#pragma unroll
    for (int n = 0; n < W::XN; n++) {
      const int r = r0 + gq, col = c0 + 8 * n + 2 * tq;
      *(u32*)(xs + r * LD + col) = lt_op2<T>(x[n][0], x[n][1]);
      *(u32*)(xs + (r + 8) * LD + col) = lt_op2<T>(x[n][2], x[n][3]);
    }
  };
  store_x();

  auto chunk_of = [&](int it) { return REV ? nC - 1 - it : it; };
  // Chunk it (in processing order) into stage it % LT_STAGES; an empty commit group past the
  // last chunk keeps the group count uniform.
  auto stage = [&](int it) {
    if (it < nC) {
      u16* st = lt_smem + (it % LT_STAGES) * 3 * E;
      const int c = chunk_of(it);
      const int L = min(LT_CHUNK, Lg - c * LT_CHUNK);
      const i64 r = row0 + c * LT_CHUNK;
      lt_stage<DH, NT>(st, p1, r, L, H, h);
      lt_stage<DH, NT>(st + E, p2, r, L, H, h);
      lt_stage<DH, NT>(st + 2 * E, r1, r, L, H, h);
    }
    cp_async_commit();
  };
#pragma unroll
  for (int it = 0; it < LT_STAGES - 1; it++) stage(it);
  for (int it = 0; it < nC; it++) {
    const u16* st = lt_smem + (it % LT_STAGES) * 3 * E;
    const u16 *P1s = st, *P2s = st + E, *R1s = st + 2 * E;
    const int c = chunk_of(it);
    const int L = min(LT_CHUNK, Lg - c * LT_CHUNK);
    stage(it + LT_STAGES - 1);
    cp_async_wait<LT_STAGES - 1>();
    __syncthreads();

    // Scores of rows i0.. x keys jc0.., masked: s lambda^|i-j| on the causal side, 0 elsewhere.
    {
      float sc[W::SN][4];
#pragma unroll
      for (int n = 0; n < W::SN; n++) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.f;
      const bool live = REV ? (jc0 + W::SW - 1 >= i0) : (jc0 <= i0 + 15);
      if (live) {
#pragma unroll
        for (int ks = 0; ks < DH / 16; ks++) {
          u32 af[4];
          lt_frag_a(af, P1s, LD, i0, 16 * ks);
#pragma unroll
          for (int n = 0; n < W::SN; n += 2) {
            u32 bf[4];
            lt_frag_b_nk(bf, P2s, LD, jc0 + 8 * n, 16 * ks);
            Mma<T>::run(sc[n], af, bf);
            Mma<T>::run(sc[n + 1], af, bf + 2);
          }
        }
      }
#pragma unroll
      for (int n = 0; n < W::SN; n++) {
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
          const int i = i0 + gq + 8 * hr, j = jc0 + 8 * n + 2 * tq;
          float v[2];
#pragma unroll
          for (int u = 0; u < 2; u++) {
            const int jj = j + u;
            const bool ok = REV ? jj >= i : jj <= i;
            v[u] = ok ? spw[REV ? jj - i : i - jj] * sc[n][2 * hr + u] : 0.f;
          }
          *(u32*)(ss + i * SLD + j) = lt_op2<T>(v[0], v[1]);
        }
      }
    }
    __syncthreads();

    // Output rows i0.., columns oc0..: (P1 X) scaled per row, plus the masked scores times R1.
    {
      float o[W::ON][4];
#pragma unroll
      for (int n = 0; n < W::ON; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < DH / 16; ks++) {
        u32 af[4];
        lt_frag_a(af, P1s, LD, i0, 16 * ks);
#pragma unroll
        for (int n = 0; n < W::ON; n += 2) {
          u32 bf[4];
          lt_frag_b_kn(bf, xs, LD, oc0 + 8 * n, 16 * ks);
          Mma<T>::run(o[n], af, bf);
          Mma<T>::run(o[n + 1], af, bf + 2);
        }
      }
      {
        const int ia = i0 + gq, ib = ia + 8;
        const float fa = REV ? (ia < L ? pw[L - 1 - ia] : 0.f) : spw[ia + 1];
        const float fb = REV ? (ib < L ? pw[L - 1 - ib] : 0.f) : spw[ib + 1];
#pragma unroll
        for (int n = 0; n < W::ON; n++) {
          o[n][0] *= fa; o[n][1] *= fa; o[n][2] *= fb; o[n][3] *= fb;
        }
      }
      // Key blocks of 16 on the causal side of this warp's rows only.
      const int kb = i0 / 16;
#pragma unroll
      for (int ks = 0; ks < LT_CHUNK / 16; ks++) {
        if (REV ? ks < kb : ks > kb) continue;
        u32 af[4];
        lt_frag_a(af, ss, SLD, i0, 16 * ks);
#pragma unroll
        for (int n = 0; n < W::ON; n += 2) {
          u32 bf[4];
          lt_frag_b_kn(bf, R1s, LD, oc0 + 8 * n, 16 * ks);
          Mma<T>::run(o[n], af, bf);
          Mma<T>::run(o[n + 1], af, bf + 2);
        }
      }
      const int ia = i0 + gq;
      u16* oa = out + lt_at(row0 + c * LT_CHUNK + ia, H, h, DH, oc0 + 2 * tq);
      u16* ob = oa + (i64)8 * H * DH;
#pragma unroll
      for (int n = 0; n < W::ON; n++) {
        if (ia < L) *(u32*)(oa + 8 * n) = pack2<T>(o[n][0], o[n][1]);
        if (ia + 8 < L) *(u32*)(ob + 8 * n) = pack2<T>(o[n][2], o[n][3]);
      }
    }
    if (it + 1 < nC) {
      __syncthreads(); // every warp has read the 16-bit state copy
      // X <- lambda^L X + sum_j f(j) P2_j^T R1_j for the next chunk; f(j) = lambda^(L-1-j)
      // forward, s lambda^(j+1) reverse, 0 past L.
      const float dl = pw[L];
#pragma unroll
      for (int n = 0; n < W::XN; n++) {
        x[n][0] *= dl; x[n][1] *= dl; x[n][2] *= dl; x[n][3] *= dl;
      }
#pragma unroll
      for (int ks = 0; ks < LT_CHUNK / 16; ks++) {
        u32 af[4];
        lt_frag_a_t(af, P2s, LD, r0, 16 * ks);
        float f[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
          const int j = 16 * ks + 2 * tq + (u & 1) + 8 * (u >> 1);
          f[u] = j < L ? (REV ? spw[j + 1] : pw[L - 1 - j]) : 0.f;
        }
        lt_scale_k<T>(af, f);
#pragma unroll
        for (int n = 0; n < W::XN; n += 2) {
          u32 bf[4];
          lt_frag_b_kn(bf, R1s, LD, c0 + 8 * n, 16 * ks);
          Mma<T>::run(x[n], af, bf);
          Mma<T>::run(x[n + 1], af, bf + 2);
        }
      }
      store_x();
    }
    __syncthreads(); // this stage is overwritten by the next prefetch
  }
}

#endif
