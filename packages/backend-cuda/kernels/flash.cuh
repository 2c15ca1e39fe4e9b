// Flash attention on tensor cores (FlashAttention-2, Dao 2023) for @ring-linear/attention's
// softmaxAttention and softmaxAttentionBackward (MODEL_SPEC §3), bf16 / f16 with head_dim
// D = Dv in {64, 128}; the general backward kernels at the end cover the other head dims.
//
// Positions (as the op defines them): query i of a launch sits at position kvOffset + i, key j at
// j; key j is visible to query i when j < nk and (not causal or j <= kvOffset + i). A launch covers
// queries [q0, q0 + nq) and keys [k0, k0 + nk) of the tensors (one launch per packed sequence).
//
// Forward (flash_fwd): a block owns FL_BM = 128 query rows of one (b, head) (8 warps x 16 rows) and
// walks the visible key tiles of FL_BN = 64 keys, K and V double-buffered in shared memory by
// cp.async (tile t + 1 streams in while tile t is used). Per tile, each warp computes
// S = Q K^T (16 x 64, mma.m16n8k16, f32 accumulators), scales it by scale * log2(e) so the
// softmax runs on exp2, masks (causal diagonal, keys past nk) only on the tiles that need it,
// updates its rows' running max m and sum l (a row lives in the 4 lanes of a quad: two shuffles),
// rescales the output accumulator by exp2(m_old - m_new), and multiplies P V with P taken straight
// from the S accumulators as A fragments (the C layout of two adjacent n-tiles is the A layout of
// one k-step), so P never goes through shared memory. GQA: query head h reads kv head h / G.
// lse = (m + log2 l) * ln 2.
//
// Backward: Di = rowsum(dO * O) - dLse (flash_bwd_prep; with dLse the gradient of the scores is
// dS = P (dP - rowsum(dO O) + dLse), as the op defines). flash_bwd: a block owns FL_BN = 64 keys
// of one (b, kv head) (4 warps x 16 keys) and iterates over the G query heads of the group and the
// query tiles of 64 rows that see its keys (causal: from the diagonal on). Per query tile:
// S^T = K Q^T, P^T = exp2(S^T scale log2e - lse log2e), dV += P^T dO, dP^T = V dO^T,
// dS^T = P^T (dP^T - Di), dK += dS^T Q (P^T and dS^T reused from registers as A fragments); dS^T
// goes to shared memory (16-bit) and dQ += dS K is added to an f32 buffer with atomics (each warp
// 16 query rows), converted (times scale) by flash_bwd_dq_convert at the end. dK and dV stay in
// registers for the whole group (no atomics) and are written once (dK times scale).
#pragma once
#ifndef RING_LINEAR_FLASH_CUH
#define RING_LINEAR_FLASH_CUH
#include "mma.cuh"

#define FL_BM 128
#define FL_BN 64
#define FL_FWD_WARPS 8
#define FL_BWD_BM 64
#define FL_BWD_WARPS 4
// Row padding of the shared tiles (in 16-bit elements): rows 16 bytes apart in bank terms, so the
// 8 row addresses of an ldmatrix hit distinct banks.
#define FL_PAD 8
#define FL_LOG2E 1.4426950408889634f
#define FL_LN2 0.6931471805599453f
#define FL_NEG_INF (-__int_as_float(0x7f800000))
#define FL_POS_INF (__int_as_float(0x7f800000))

// Two f32 values as one register of two 16-bit floats (low = lo), hardware round to nearest even
// (cvt.rn.{bf16x2,f16x2}.f32 puts its first source in the high half). Probabilities and dS only:
// never NaN, so the canonical-NaN rule of common.cuh's encoders does not matter here.
template <class T> RL_DEV u32 fl_pack2(float lo, float hi);
template <> RL_DEV u32 fl_pack2<BF16>(float lo, float hi) {
  u32 r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
template <> RL_DEV u32 fl_pack2<F16>(float lo, float hi) {
  u32 r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

// Copies `rows` rows of D 16-bit elements (global row r at src + r * stride, valid when r < valid;
// others zero-filled) into a shared tile with row pitch D + FL_PAD, 16 bytes per cp.async.
template <int D>
RL_DEV void fl_load_tile(u16* dst, const u16* src, i64 stride, int rows, int valid, int tid, int nthreads) {
  const int CH = D / 8;  // 16-byte chunks per row
  for (int x = tid; x < rows * CH; x += nthreads) {
    const int r = x / CH, c = (x - r * CH) * 8;
    const bool ok = r < valid;
    cp_async16(dst + r * (D + FL_PAD) + c, ok ? src + (i64)r * stride + c : src, ok ? 16 : 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Forward. Grid: x = b * H + h, y = query tile (reversed: the longest causal rows start first);
// FL_FWD_WARPS * 32 threads; dynamic shared memory (FL_BM + 4 * FL_BN) * (D + FL_PAD) * 2 bytes.

template <class T, int D>
RL_DEV void flash_fwd(const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v, u16* __restrict__ out,
                      float* __restrict__ lse, int Tq, int Tk, int H, int Hkv, int q0, int nq, int k0, int nk, int kvOffset,
                      int causal, float scaleLog2) {
  extern __shared__ __align__(16) unsigned char fl_smem[];
  const int LD = D + FL_PAD;
  u16* sQ = reinterpret_cast<u16*>(fl_smem);  // [FL_BM][LD]
  u16* sK = sQ + FL_BM * LD;                    // [2][FL_BN][LD]
  u16* sV = sK + 2 * FL_BN * LD;                // [2][FL_BN][LD]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int NT = FL_FWD_WARPS * 32;
  const int b = blockIdx.x / H, h = blockIdx.x - (blockIdx.x / H) * H;
  const int hk = h / (H / Hkv);
  const int m0 = (gridDim.y - 1 - blockIdx.y) * FL_BM;
  const int rowsHere = min(FL_BM, nq - m0);
  // Keys any row of the block sees: [0, kEnd).
  const int kEnd = causal ? min(nk, kvOffset + m0 + rowsHere) : nk;
  const int nTiles = (kEnd + FL_BN - 1) / FL_BN;
  const i64 qStride = (i64)H * D, kStride = (i64)Hkv * D;
  const u16* qBase = q + (((i64)b * Tq + q0 + m0) * H + h) * D;
  const u16* kBase = k + (((i64)b * Tk + k0) * Hkv + hk) * D;
  const u16* vBase = v + (((i64)b * Tk + k0) * Hkv + hk) * D;

  fl_load_tile<D>(sQ, qBase, qStride, FL_BM, rowsHere, tid, NT);
  fl_load_tile<D>(sK, kBase, kStride, FL_BN, nk, tid, NT);
  fl_load_tile<D>(sV, vBase, kStride, FL_BN, nk, tid, NT);
  cp_async_commit();

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float mrow[2] = {FL_NEG_INF, FL_NEG_INF};
  float lrow[2] = {0.0f, 0.0f};
  // This thread's rows (block-relative) and their positions.
  const int r0 = m0 + warp * 16 + g;
  const int pos0 = kvOffset + r0, pos1 = pos0 + 8;
  // The first position of the block: tiles ending at or before it need no causal mask.
  const int firstPos = kvOffset + m0;

  for (int it = 0; it < nTiles; it++) {
    const int n0 = it * FL_BN;
    if (it + 1 < nTiles) {
      const int buf = (it + 1) & 1;
      const int nn = n0 + FL_BN;
      fl_load_tile<D>(sK + buf * FL_BN * LD, kBase + (i64)nn * kStride, kStride, FL_BN, nk - nn, tid, NT);
      fl_load_tile<D>(sV + buf * FL_BN * LD, vBase + (i64)nn * kStride, kStride, FL_BN, nk - nn, tid, NT);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const u16* Kt = sK + (it & 1) * FL_BN * LD;
    const u16* Vt = sV + (it & 1) * FL_BN * LD;

    // S = Q K^T for the warp's 16 rows and the tile's 64 keys.
    float s[FL_BN / 8][4];
#pragma unroll
    for (int n = 0; n < FL_BN / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      u32 a[4];
      ldmatrix_x4(a, sQ + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int np = 0; np < FL_BN / 16; np++) {
        u32 bf[4];
        ldmatrix_x4(bf, Kt + (np * 16 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
        Mma<T>::run(s[2 * np], a, bf);
        Mma<T>::run(s[2 * np + 1], a, bf + 2);
      }
    }
    // Scale into the log2 domain; mask where a key may be invisible to a row of the block.
    const bool needMask = n0 + FL_BN > nk || (causal && n0 + FL_BN - 1 > firstPos);
#pragma unroll
    for (int n = 0; n < FL_BN / 8; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        float x = s[n][e] * scaleLog2;
        if (needMask) {
          const int j = n0 + n * 8 + 2 * t4 + (e & 1);
          const int p = e < 2 ? pos0 : pos1;
          if (j >= nk || (causal && j > p)) x = FL_NEG_INF;
        }
        s[n][e] = x;
      }
    }
    // Online softmax: the new running max of each row (a quad holds a row), rescale factors.
    float alpha[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float mx = mrow[r];
#pragma unroll
      for (int n = 0; n < FL_BN / 8; n++) mx = fmaxf(mx, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      // A row with no visible key yet keeps m = -inf; subtract 0 then so exp2 gives 0, not NaN.
      const float mUse = mx == FL_NEG_INF ? 0.0f : mx;
      alpha[r] = exp2f(mrow[r] - mUse);
      mrow[r] = mx;
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < FL_BN / 8; n++) {
        const float p0 = exp2f(s[n][2 * r] - mUse), p1 = exp2f(s[n][2 * r + 1] - mUse);
        s[n][2 * r] = p0;
        s[n][2 * r + 1] = p1;
        sum += p0 + p1;
      }
      lrow[r] = lrow[r] * alpha[r] + sum;  // this lane's share; the quad is summed at the end
    }
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
      o[n][0] *= alpha[0];
      o[n][1] *= alpha[0];
      o[n][2] *= alpha[1];
      o[n][3] *= alpha[1];
    }
    // O += P V: P's accumulators of n-tiles 2ks, 2ks + 1 are the A fragment of key step ks.
#pragma unroll
    for (int ks = 0; ks < FL_BN / 16; ks++) {
      u32 a[4];
      a[0] = fl_pack2<T>(s[2 * ks][0], s[2 * ks][1]);
      a[1] = fl_pack2<T>(s[2 * ks][2], s[2 * ks][3]);
      a[2] = fl_pack2<T>(s[2 * ks + 1][0], s[2 * ks + 1][1]);
      a[3] = fl_pack2<T>(s[2 * ks + 1][2], s[2 * ks + 1][3]);
#pragma unroll
      for (int np = 0; np < D / 16; np++) {
        u32 bf[4];
        ldmatrix_x4_trans(bf, Vt + (ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + np * 16 + (lane >> 4) * 8);
        Mma<T>::run(o[2 * np], a, bf);
        Mma<T>::run(o[2 * np + 1], a, bf + 2);
      }
    }
    __syncthreads();  // the buffer just read is refilled by the next iteration's prefetch
  }
  cp_async_wait<0>();

  // Epilogue: normalize, store 2 elements per 4-byte store, lse from the quad's total.
#pragma unroll
  for (int r = 0; r < 2; r++) {
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 1);
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 2);
  }
  const float inv0 = 1.0f / lrow[0], inv1 = 1.0f / lrow[1];
  const int i0 = r0, i1 = r0 + 8;
  u16* o0 = out + (((i64)b * Tq + q0 + i0) * H + h) * D;
  u16* o1 = out + (((i64)b * Tq + q0 + i1) * H + h) * D;
#pragma unroll
  for (int n = 0; n < D / 8; n++) {
    const int c = n * 8 + 2 * t4;
    if (i0 < nq) *reinterpret_cast<u32*>(o0 + c) = fl_pack2<T>(o[n][0] * inv0, o[n][1] * inv0);
    if (i1 < nq) *reinterpret_cast<u32*>(o1 + c) = fl_pack2<T>(o[n][2] * inv1, o[n][3] * inv1);
  }
  if (t4 == 0) {
    if (i0 < nq) lse[((i64)b * H + h) * Tq + q0 + i0] = (mrow[0] + log2f(lrow[0])) * FL_LN2;
    if (i1 < nq) lse[((i64)b * H + h) * Tq + q0 + i1] = (mrow[1] + log2f(lrow[1])) * FL_LN2;
  }
}

// ---------------------------------------------------------------------------------------------
// Backward pre-pass: Di[b, h, i] = sum_c dO[b, i, h, c] * O[b, i, h, c] - dLse[b, h, i], one warp
// per row (any Dv). Grid: x = ceil(B * Tq * H / 4); 128 threads.

template <class T>
RL_DEV void flash_bwd_prep(const typename T::S* __restrict__ o, const typename T::S* __restrict__ dO, const float* __restrict__ dLse,
                           float* __restrict__ di, int B, int Tq, int H, int Dv) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const i64 row = (i64)blockIdx.x * 4 + warp;  // (b * Tq + i) * H + h
  if (row >= (i64)B * Tq * H) return;
  float acc = 0.0f;
  for (int c = lane; c < Dv; c += 32) acc = fmaf(T::ld(dO[row * Dv + c]), T::ld(o[row * Dv + c]), acc);
  acc = warp_sum(acc);
  if (lane == 0) {
    const i64 h = row % H, bi = row / H;
    const i64 b = bi / Tq, i = bi - b * Tq;
    const i64 at = (b * H + h) * Tq + i;
    di[at] = acc - dLse[at];
  }
}

// dq[i] = st(scale * acc[i]) over n elements.
template <class T>
RL_DEV void flash_bwd_dq_convert(const float* __restrict__ acc, u16* __restrict__ dq, i64 n, float scale) {
  for (i64 i = global_thread(); i < n; i += grid_threads()) dq[i] = T::st(acc[i] * scale, false);
}

// ---------------------------------------------------------------------------------------------
// Backward main kernel. Grid: x = b * Hkv + kv head, y = key tile; FL_BWD_WARPS * 32 threads;
// dynamic shared memory ((2 + 2 * STAGES) * 64 * (D + FL_PAD) + 64 * (64 + FL_PAD)) * 2 bytes
// + STAGES * 2 * 64 * 4 (lse and Di of the query tile). STAGES = 2 double-buffers Q and dO.

template <int D, int STAGES> struct FlashBwdSmem {
  static const int LD = D + FL_PAD;
  static const int LDS = FL_BWD_BM + FL_PAD;
  static const int BYTES = ((2 * FL_BN + 2 * STAGES * FL_BWD_BM) * LD + FL_BN * LDS) * 2 + STAGES * 2 * FL_BWD_BM * 4;
};

template <class T, int D, int STAGES>
RL_DEV void flash_bwd(const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v, const u16* __restrict__ dO,
                      const float* __restrict__ lse, const float* __restrict__ di, float* __restrict__ dqAcc, u16* __restrict__ dk,
                      u16* __restrict__ dv, int Tq, int Tk, int H, int Hkv, int q0, int nq, int k0, int nk, int kvOffset, int causal,
                      float scale, float scaleLog2) {
  extern __shared__ __align__(16) unsigned char fl_smem[];
  typedef FlashBwdSmem<D, STAGES> L;
  const int LD = L::LD, LDS = L::LDS, BM = FL_BWD_BM;
  u16* sK = reinterpret_cast<u16*>(fl_smem);  // [FL_BN][LD]
  u16* sV = sK + FL_BN * LD;                    // [FL_BN][LD]
  u16* sQ = sV + FL_BN * LD;                    // [STAGES][BM][LD]
  u16* sdO = sQ + STAGES * BM * LD;             // [STAGES][BM][LD]
  u16* sdS = sdO + STAGES * BM * LD;            // [FL_BN][LDS]: dS^T, keys x queries
  float* sL = reinterpret_cast<float*>(sdS + FL_BN * LDS);  // [STAGES][BM] lse * log2e
  float* sDi = sL + STAGES * BM;                             // [STAGES][BM]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int NT = FL_BWD_WARPS * 32;
  const int b = blockIdx.x / Hkv, hk = blockIdx.x - (blockIdx.x / Hkv) * Hkv;
  const int G = H / Hkv;
  const int n0 = blockIdx.y * FL_BN;
  const i64 qStride = (i64)H * D, kStride = (i64)Hkv * D;
  const u16* kBase = k + (((i64)b * Tk + k0 + n0) * Hkv + hk) * D;
  const u16* vBase = v + (((i64)b * Tk + k0 + n0) * Hkv + hk) * D;
  fl_load_tile<D>(sK, kBase, kStride, FL_BN, nk - n0, tid, NT);
  fl_load_tile<D>(sV, vBase, kStride, FL_BN, nk - n0, tid, NT);

  // Query tiles that see a key of this tile: causal, from the first query at or past key n0.
  const int qtFirst = causal ? max(0, n0 - kvOffset) / BM : 0;
  const int nqt = (nq + BM - 1) / BM;
  const int perHead = max(0, nqt - qtFirst);
  const int nIt = G * perHead;

  // Issues the loads of iteration `it` (Q, dO tiles by cp.async; lse and Di by plain loads).
  auto issue = [&](int it, int buf) {
    const int hh = hk * G + it / perHead;
    const int m0 = (qtFirst + it % perHead) * BM;
    const i64 rowOff = (((i64)b * Tq + q0 + m0) * H + hh) * D;
    fl_load_tile<D>(sQ + buf * BM * LD, q + rowOff, qStride, BM, nq - m0, tid, NT);
    fl_load_tile<D>(sdO + buf * BM * LD, dO + rowOff, qStride, BM, nq - m0, tid, NT);
    if (tid < BM) {
      const int i = m0 + tid;
      const i64 at = ((i64)b * H + hh) * Tq + q0 + i;
      // Rows past the launch's queries: lse = +inf makes their probabilities 0.
      sL[buf * BM + tid] = i < nq ? lse[at] * FL_LOG2E : FL_POS_INF;
      sDi[buf * BM + tid] = i < nq ? di[at] : 0.0f;
    }
  };

  float dkA[D / 8][4], dvA[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) {
    dkA[n][0] = dkA[n][1] = dkA[n][2] = dkA[n][3] = 0.0f;
    dvA[n][0] = dvA[n][1] = dvA[n][2] = dvA[n][3] = 0.0f;
  }
  // This thread's keys (tile-relative w * 16 + g and + 8) as absolute key indices.
  const int j0 = n0 + warp * 16 + g, j1 = j0 + 8;

  if (nIt > 0) issue(0, 0);
  cp_async_commit();
  for (int it = 0; it < nIt; it++) {
    const int buf = STAGES == 2 ? (it & 1) : 0;
    if (STAGES == 2) {
      if (it + 1 < nIt) issue(it + 1, buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int hh = hk * G + it / perHead;
    const int m0 = (qtFirst + it % perHead) * BM;
    const u16* Qt = sQ + buf * BM * LD;
    const u16* dOt = sdO + buf * BM * LD;
    const float* Lt = sL + buf * BM;
    const float* Dt = sDi + buf * BM;

    // S^T = K Q^T: the warp's 16 keys x the tile's 64 queries.
    float sT[BM / 8][4];
#pragma unroll
    for (int n = 0; n < BM / 8; n++) sT[n][0] = sT[n][1] = sT[n][2] = sT[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      u32 a[4];
      ldmatrix_x4(a, sK + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int np = 0; np < BM / 16; np++) {
        u32 bf[4];
        ldmatrix_x4(bf, Qt + (np * 16 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
        Mma<T>::run(sT[2 * np], a, bf);
        Mma<T>::run(sT[2 * np + 1], a, bf + 2);
      }
    }
    // P^T = exp2(S^T scale log2e - lse log2e), 0 where the key is invisible to the query.
    const bool needMask = n0 + FL_BN > nk || (causal && n0 + FL_BN - 1 > kvOffset + m0);
#pragma unroll
    for (int n = 0; n < BM / 8; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int col = n * 8 + 2 * t4 + (e & 1);
        float p = exp2f(sT[n][e] * scaleLog2 - Lt[col]);
        if (needMask) {
          const int j = e < 2 ? j0 : j1;
          if (j >= nk || (causal && j > kvOffset + m0 + col)) p = 0.0f;
        }
        sT[n][e] = p;
      }
    }
    // dV += P^T dO (keys x Dv; k = queries).
#pragma unroll
    for (int ks = 0; ks < BM / 16; ks++) {
      u32 a[4];
      a[0] = fl_pack2<T>(sT[2 * ks][0], sT[2 * ks][1]);
      a[1] = fl_pack2<T>(sT[2 * ks][2], sT[2 * ks][3]);
      a[2] = fl_pack2<T>(sT[2 * ks + 1][0], sT[2 * ks + 1][1]);
      a[3] = fl_pack2<T>(sT[2 * ks + 1][2], sT[2 * ks + 1][3]);
#pragma unroll
      for (int np = 0; np < D / 16; np++) {
        u32 bf[4];
        ldmatrix_x4_trans(bf, dOt + (ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + np * 16 + (lane >> 4) * 8);
        Mma<T>::run(dvA[2 * np], a, bf);
        Mma<T>::run(dvA[2 * np + 1], a, bf + 2);
      }
    }
    // dP^T = V dO^T, then dS^T = P^T (dP^T - Di).
    float dpT[BM / 8][4];
#pragma unroll
    for (int n = 0; n < BM / 8; n++) dpT[n][0] = dpT[n][1] = dpT[n][2] = dpT[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      u32 a[4];
      ldmatrix_x4(a, sV + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int np = 0; np < BM / 16; np++) {
        u32 bf[4];
        ldmatrix_x4(bf, dOt + (np * 16 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
        Mma<T>::run(dpT[2 * np], a, bf);
        Mma<T>::run(dpT[2 * np + 1], a, bf + 2);
      }
    }
#pragma unroll
    for (int n = 0; n < BM / 8; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) dpT[n][e] = sT[n][e] * (dpT[n][e] - Dt[n * 8 + 2 * t4 + (e & 1)]);
      // dS^T to shared memory (16-bit) for dQ.
      *reinterpret_cast<u32*>(sdS + (warp * 16 + g) * LDS + n * 8 + 2 * t4) = fl_pack2<T>(dpT[n][0], dpT[n][1]);
      *reinterpret_cast<u32*>(sdS + (warp * 16 + g + 8) * LDS + n * 8 + 2 * t4) = fl_pack2<T>(dpT[n][2], dpT[n][3]);
    }
    // dK += dS^T Q (keys x D; k = queries).
#pragma unroll
    for (int ks = 0; ks < BM / 16; ks++) {
      u32 a[4];
      a[0] = fl_pack2<T>(dpT[2 * ks][0], dpT[2 * ks][1]);
      a[1] = fl_pack2<T>(dpT[2 * ks][2], dpT[2 * ks][3]);
      a[2] = fl_pack2<T>(dpT[2 * ks + 1][0], dpT[2 * ks + 1][1]);
      a[3] = fl_pack2<T>(dpT[2 * ks + 1][2], dpT[2 * ks + 1][3]);
#pragma unroll
      for (int np = 0; np < D / 16; np++) {
        u32 bf[4];
        ldmatrix_x4_trans(bf, Qt + (ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + np * 16 + (lane >> 4) * 8);
        Mma<T>::run(dkA[2 * np], a, bf);
        Mma<T>::run(dkA[2 * np + 1], a, bf + 2);
      }
    }
    __syncthreads();  // dS^T complete
    // dQ += dS K: the warp's 16 queries x D, k = the tile's 64 keys; A from dS^T transposed.
    {
      u32 af[FL_BN / 16][4];
#pragma unroll
      for (int kk = 0; kk < FL_BN / 16; kk++)
        ldmatrix_x4_trans(af[kk], sdS + (kk * 16 + (lane & 7) + (lane >> 4) * 8) * LDS + warp * 16 + ((lane >> 3) & 1) * 8);
      const int qi0 = m0 + warp * 16 + g, qi1 = qi0 + 8;
      float* dq0 = dqAcc + (((i64)b * Tq + q0 + qi0) * H + hh) * D;
      float* dq1 = dqAcc + (((i64)b * Tq + q0 + qi1) * H + hh) * D;
#pragma unroll
      for (int np = 0; np < D / 16; np++) {
        float c[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
        for (int kk = 0; kk < FL_BN / 16; kk++) {
          u32 bf[4];
          ldmatrix_x4_trans(bf, sK + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + np * 16 + (lane >> 4) * 8);
          Mma<T>::run(c[0], af[kk], bf);
          Mma<T>::run(c[1], af[kk], bf + 2);
        }
#pragma unroll
        for (int x = 0; x < 2; x++) {
          const int col = np * 16 + x * 8 + 2 * t4;
          if (qi0 < nq) {
            atomicAdd(dq0 + col, c[x][0]);
            atomicAdd(dq0 + col + 1, c[x][1]);
          }
          if (qi1 < nq) {
            atomicAdd(dq1 + col, c[x][2]);
            atomicAdd(dq1 + col + 1, c[x][3]);
          }
        }
      }
    }
    if (STAGES == 1 && it + 1 < nIt) {
      __syncthreads();  // single buffer: everyone is done with Q, dO before they are refilled
      issue(it + 1, 0);
      cp_async_commit();
    } else if (STAGES == 2) {
      __syncthreads();
    }
  }
  cp_async_wait<0>();

  // dK (times scale) and dV of the warp's keys.
  u16* dk0 = dk + (((i64)b * Tk + k0 + j0) * Hkv + hk) * D;
  u16* dk1 = dk + (((i64)b * Tk + k0 + j1) * Hkv + hk) * D;
  u16* dv0 = dv + (((i64)b * Tk + k0 + j0) * Hkv + hk) * D;
  u16* dv1 = dv + (((i64)b * Tk + k0 + j1) * Hkv + hk) * D;
#pragma unroll
  for (int n = 0; n < D / 8; n++) {
    const int c = n * 8 + 2 * t4;
    if (j0 < nk) {
      *reinterpret_cast<u32*>(dk0 + c) = fl_pack2<T>(dkA[n][0] * scale, dkA[n][1] * scale);
      *reinterpret_cast<u32*>(dv0 + c) = fl_pack2<T>(dvA[n][0], dvA[n][1]);
    }
    if (j1 < nk) {
      *reinterpret_cast<u32*>(dk1 + c) = fl_pack2<T>(dkA[n][2] * scale, dkA[n][3] * scale);
      *reinterpret_cast<u32*>(dv1 + c) = fl_pack2<T>(dvA[n][2], dvA[n][3]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// General backward (any head dims, f32 math, CUDA cores): the shapes the tensor-core kernel does
// not take. One warp per query row (dq) or per key (dk, dv); per-warp f32 accumulators in dynamic
// shared memory. Grid: x = ceil(rows / 4), y = b; 128 threads.

template <class T>
RL_DEV float fl_dot(const typename T::S* a, const typename T::S* b, int n, int lane) {
  float acc = 0.0f;
  for (int c = lane; c < n; c += 32) acc = fmaf(T::ld(a[c]), T::ld(b[c]), acc);
  return warp_sum(acc);
}

// dq rows r = i * H + h of the launch's queries. Shared: 4 * D floats.
template <class T>
RL_DEV void flash_bwd_dq_general(const typename T::S* __restrict__ q, const typename T::S* __restrict__ k, const typename T::S* __restrict__ v, const typename T::S* __restrict__ dO,
                                 const float* __restrict__ lse, const float* __restrict__ di, typename T::S* __restrict__ dq, int Tq, int Tk, int H,
                                 int Hkv, int D, int Dv, int q0, int nq, int k0, int nk, int kvOffset, int causal, float scale) {
  extern __shared__ float flg_smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int r = blockIdx.x * 4 + warp;
  const int b = blockIdx.y;
  if (r >= nq * H) return;
  float* acc = flg_smem + warp * D;
  const int i = r / H, h = r - (r / H) * H, hk = h / (H / Hkv);
  for (int c = lane; c < D; c += 32) acc[c] = 0.0f;
  const typename T::S* qi = q + (((i64)b * Tq + q0 + i) * H + h) * D;
  const typename T::S* dOi = dO + (((i64)b * Tq + q0 + i) * H + h) * Dv;
  const i64 at = ((i64)b * H + h) * Tq + q0 + i;
  const float L = lse[at], Di = di[at];
  const int hi = causal ? min(nk, kvOffset + i + 1) : nk;
  for (int j = 0; j < hi; j++) {
    const typename T::S* kj = k + (((i64)b * Tk + k0 + j) * Hkv + hk) * D;
    const typename T::S* vj = v + (((i64)b * Tk + k0 + j) * Hkv + hk) * Dv;
    const float p = expf(fl_dot<T>(qi, kj, D, lane) * scale - L);
    const float ds = p * (fl_dot<T>(dOi, vj, Dv, lane) - Di);
    for (int c = lane; c < D; c += 32) acc[c] = fmaf(ds, T::ld(kj[c]), acc[c]);
  }
  typename T::S* dqi = dq + (((i64)b * Tq + q0 + i) * H + h) * D;
  for (int c = lane; c < D; c += 32) dqi[c] = T::st(acc[c] * scale, false);
}

// dk, dv rows r = j * Hkv + kv head of the launch's keys. Shared: 4 * (D + Dv) floats.
template <class T>
RL_DEV void flash_bwd_dkv_general(const typename T::S* __restrict__ q, const typename T::S* __restrict__ k, const typename T::S* __restrict__ v, const typename T::S* __restrict__ dO,
                                  const float* __restrict__ lse, const float* __restrict__ di, typename T::S* __restrict__ dk, typename T::S* __restrict__ dv,
                                  int Tq, int Tk, int H, int Hkv, int D, int Dv, int q0, int nq, int k0, int nk, int kvOffset, int causal,
                                  float scale) {
  extern __shared__ float flg_smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int r = blockIdx.x * 4 + warp;
  const int b = blockIdx.y;
  if (r >= nk * Hkv) return;
  float* aK = flg_smem + warp * (D + Dv);
  float* aV = aK + D;
  const int j = r / Hkv, hk = r - (r / Hkv) * Hkv, G = H / Hkv;
  for (int c = lane; c < D; c += 32) aK[c] = 0.0f;
  for (int c = lane; c < Dv; c += 32) aV[c] = 0.0f;
  const typename T::S* kj = k + (((i64)b * Tk + k0 + j) * Hkv + hk) * D;
  const typename T::S* vj = v + (((i64)b * Tk + k0 + j) * Hkv + hk) * Dv;
  const int iFirst = causal ? max(0, j - kvOffset) : 0;
  for (int h = hk * G; h < hk * G + G; h++) {
    for (int i = iFirst; i < nq; i++) {
      const typename T::S* qi = q + (((i64)b * Tq + q0 + i) * H + h) * D;
      const typename T::S* dOi = dO + (((i64)b * Tq + q0 + i) * H + h) * Dv;
      const i64 at = ((i64)b * H + h) * Tq + q0 + i;
      const float p = expf(fl_dot<T>(qi, kj, D, lane) * scale - lse[at]);
      const float ds = p * (fl_dot<T>(dOi, vj, Dv, lane) - di[at]);
      for (int c = lane; c < Dv; c += 32) aV[c] = fmaf(p, T::ld(dOi[c]), aV[c]);
      for (int c = lane; c < D; c += 32) aK[c] = fmaf(ds, T::ld(qi[c]), aK[c]);
    }
  }
  typename T::S* dkj = dk + (((i64)b * Tk + k0 + j) * Hkv + hk) * D;
  typename T::S* dvj = dv + (((i64)b * Tk + k0 + j) * Hkv + hk) * Dv;
  for (int c = lane; c < D; c += 32) dkj[c] = T::st(aK[c] * scale, false);
  for (int c = lane; c < Dv; c += 32) dvj[c] = T::st(aV[c], false);
}

#endif  // RING_LINEAR_FLASH_CUH
