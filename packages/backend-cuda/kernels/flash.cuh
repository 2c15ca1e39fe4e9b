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
// goes to shared memory (16-bit) and dQ += dS K is added to an f32 buffer with vector reductions
// (red.global.add.v2.f32 on sm_90; each warp 16 query rows), converted (times scale) by flash_bwd_dq_convert at the end. dK and dV stay in
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

// Copies ROWS rows of D 16-bit elements (global row r at src + r * stride, valid when r < valid;
// others zero-filled) into a shared tile with row pitch D + FL_PAD, 16 bytes per cp.async. NT
// threads: thread tid copies the 16-byte piece tid % (D / 8) of rows tid / (D / 8) + i * NT /
// (D / 8), so its addresses are computed once.
// (The mma.sync forward keeps a loop that recomputes addresses: hoisting them costs the 2 registers
// that keep it at 128, two blocks per SM.)
template <int D>
RL_DEV void fl_load_tile_loop(u16* dst, const u16* src, i64 stride, int rows, int valid, int tid, int nthreads) {
  const int CH = D / 8;
  for (int x = tid; x < rows * CH; x += nthreads) {
    const int r = x / CH, c = (x - r * CH) * 8;
    const bool ok = r < valid;
    cp_async16(dst + r * (D + FL_PAD) + c, ok ? src + (i64)r * stride + c : src, ok ? 16 : 0);
  }
}

template <int D, int ROWS, int NT>
RL_DEV void fl_load_tile(u16* dst, const u16* src, i64 stride, int valid, int tid) {
  const int CH = D / 8, RSTEP = NT / CH;
  static_assert(NT % CH == 0 && (ROWS * CH) % NT == 0, "fl_load_tile tiling");
  const int c = tid % CH, r0 = tid / CH;
  u16* d0 = dst + r0 * (D + FL_PAD) + c * 8;
  const u16* s0 = src + (i64)r0 * stride + c * 8;
  const i64 sstep = (i64)RSTEP * stride;
#pragma unroll
  for (int i = 0; i < ROWS * CH / NT; i++) {
    const bool ok = r0 + i * RSTEP < valid;
    cp_async16(d0 + i * RSTEP * (D + FL_PAD), ok ? s0 + i * sstep : src, ok ? 16 : 0);
  }
}

// One online-softmax step of a thread's two rows (g and g + 8 of an m16n8 C fragment; a quad of
// lanes holds a row) over NT n-tiles of log2-domain scores s: the new running max, the factor
// alpha = 2^(m_old - m_new) for the accumulators, s replaced by the probabilities 2^(s - m_new),
// and l = alpha l + this lane's sum (the quad's lanes are summed at the end).
template <int NT>
RL_DEV void fl_online_softmax(float (&s)[NT][4], float (&mrow)[2], float (&lrow)[2], float (&alpha)[2]) {
#pragma unroll
  for (int r = 0; r < 2; r++) {
    float mx = mrow[r];
#pragma unroll
    for (int n = 0; n < NT; n++) mx = fmaxf(mx, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    // A row with no visible key yet keeps m = -inf; subtract 0 then so exp2 gives 0, not NaN.
    const float mUse = mx == FL_NEG_INF ? 0.0f : mx;
    alpha[r] = exp2f(mrow[r] - mUse);
    mrow[r] = mx;
    float sum = 0.0f;
#pragma unroll
    for (int n = 0; n < NT; n++) {
      const float p0 = exp2f(s[n][2 * r] - mUse), p1 = exp2f(s[n][2 * r + 1] - mUse);
      s[n][2 * r] = p0;
      s[n][2 * r + 1] = p1;
      sum += p0 + p1;
    }
    lrow[r] = lrow[r] * alpha[r] + sum;
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

  fl_load_tile_loop<D>(sQ, qBase, qStride, FL_BM, rowsHere, tid, NT);
  fl_load_tile_loop<D>(sK, kBase, kStride, FL_BN, nk, tid, NT);
  fl_load_tile_loop<D>(sV, vBase, kStride, FL_BN, nk, tid, NT);
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
      fl_load_tile_loop<D>(sK + buf * FL_BN * LD, kBase + (i64)nn * kStride, kStride, FL_BN, nk - nn, tid, NT);
      fl_load_tile_loop<D>(sV + buf * FL_BN * LD, vBase + (i64)nn * kStride, kStride, FL_BN, nk - nn, tid, NT);
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
    fl_online_softmax<FL_BN / 8>(s, mrow, lrow, alpha);
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
// Decode forward on tensor cores (flash-decoding): the few query rows of a grouped-query kv head
// against a long KV cache, split over keys; the partials go to attention.cuh's
// softmax_attn_combine. A block owns one (b, kv head), one split of keys [s * chunk, ...) and all
// R = nq * G <= 16 rows of the group (row r = query r / G, head hk * G + r % G: the G heads read
// each key once), padded to one 16-row mma tile. Key tiles of FL_BN = 64 keys stream through
// FL_DEC_STAGES cp.async buffers; warp w takes keys 16w..16w+15 of each tile with its own running
// (m, l, O) in registers (Q's A fragments loaded once), so the tile loop has no cross-warp step;
// the 4 warps' states merge in shared memory at the end in a fixed order. The memory traffic is K
// and V once; the mma work is 4x padding at G = 4, which the tensor cores absorb.
// Partials (the layout of softmax_attn_split with one row tile and one column tile), slot
// p = (bh * R + r) * nsplit + s: pm[p] = running max in the natural-log domain, pl[p] = sum of
// exp(score - m), pacc[p * D + c] = unnormalized output; a split with no visible key gives
// (-inf, 0, 0).
// Grid: x = split, y = b * Hkv + kv head; FL_DEC_WARPS * 32 threads; dynamic shared memory
// (16 + 2 * FL_DEC_STAGES * FL_BN) * (D + FL_PAD) * 2 bytes.

#define FL_DEC_WARPS 4
#define FL_DEC_STAGES 3
#define FL_DEC_ROWS 16

template <class T, int D>
RL_DEV void flash_decode(const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v, float* __restrict__ pm,
                         float* __restrict__ pl, float* __restrict__ pacc, int Tq, int Tk, int H, int Hkv, int q0, int nq, int k0, int nk,
                         int kvOffset, int causal, float scaleLog2, int chunk, int nsplit) {
  extern __shared__ __align__(16) unsigned char fl_smem[];
  const int LD = D + FL_PAD;
  const int NT = FL_DEC_WARPS * 32;
  u16* sQ = reinterpret_cast<u16*>(fl_smem);  // [16][LD]
  u16* sK = sQ + FL_DEC_ROWS * LD;             // [STAGES][FL_BN][LD]
  u16* sV = sK + FL_DEC_STAGES * FL_BN * LD;   // [STAGES][FL_BN][LD]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int G = H / Hkv;
  const int R = nq * G;
  const int s = blockIdx.x, bh = blockIdx.y;
  const int b = bh / Hkv, hk = bh - (bh / Hkv) * Hkv;
  const int lastI = (R - 1) / G;
  const int hi = causal ? min(nk, kvOffset + lastI + 1) : nk;
  const int kBegin = s * chunk;
  const int kEnd = min(hi, kBegin + chunk);
  const int nTiles = kEnd > kBegin ? (kEnd - kBegin + FL_BN - 1) / FL_BN : 0;
  const i64 kStride = (i64)Hkv * D;
  const u16* kBase = k + (((i64)b * Tk + k0 + kBegin) * Hkv + hk) * D;
  const u16* vBase = v + (((i64)b * Tk + k0 + kBegin) * Hkv + hk) * D;

  // The first tiles start streaming before Q is staged.
#pragma unroll
  for (int st = 0; st < FL_DEC_STAGES - 1; st++) {
    if (st < nTiles) {
      fl_load_tile<D, FL_BN, NT>(sK + st * FL_BN * LD, kBase + (i64)st * FL_BN * kStride, kStride, kEnd - kBegin - st * FL_BN, tid);
      fl_load_tile<D, FL_BN, NT>(sV + st * FL_BN * LD, vBase + (i64)st * FL_BN * kStride, kStride, kEnd - kBegin - st * FL_BN, tid);
    }
    cp_async_commit();
  }
  for (int x = tid; x < FL_DEC_ROWS * (D / 8); x += NT) {
    const int r = x / (D / 8), c = (x - r * (D / 8)) * 8;
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (r < R) {
      const int i = r / G, hq = hk * G + (r - (r / G) * G);
      val = *reinterpret_cast<const uint4*>(q + (((i64)b * Tq + q0 + i) * H + hq) * D + c);
    }
    *reinterpret_cast<uint4*>(sQ + r * LD + c) = val;
  }
  __syncthreads();
  u32 qa[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) ldmatrix_x4(qa[kk], sQ + ((lane & 7) + ((lane >> 3) & 1) * 8) * LD + kk * 16 + (lane >> 4) * 8);

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float mrow[2] = {FL_NEG_INF, FL_NEG_INF};
  float lrow[2] = {0.0f, 0.0f};
  // Positions of this thread's rows g and g + 8 (rows past R: no key is visible to them).
  const int pos0 = g < R ? kvOffset + g / G : -1;
  const int pos1 = g + 8 < R ? kvOffset + (g + 8) / G : -1;

  for (int it = 0; it < nTiles; it++) {
    const int pf = it + FL_DEC_STAGES - 1;
    if (pf < nTiles) {
      const int buf = pf % FL_DEC_STAGES;
      fl_load_tile<D, FL_BN, NT>(sK + buf * FL_BN * LD, kBase + (i64)pf * FL_BN * kStride, kStride, kEnd - kBegin - pf * FL_BN, tid);
      fl_load_tile<D, FL_BN, NT>(sV + buf * FL_BN * LD, vBase + (i64)pf * FL_BN * kStride, kStride, kEnd - kBegin - pf * FL_BN, tid);
    }
    cp_async_commit();
    cp_async_wait<FL_DEC_STAGES - 1>();
    __syncthreads();
    const u16* Kt = sK + (it % FL_DEC_STAGES) * FL_BN * LD + warp * 16 * LD;
    const u16* Vt = sV + (it % FL_DEC_STAGES) * FL_BN * LD + warp * 16 * LD;
    const int j0 = kBegin + it * FL_BN + warp * 16;  // this warp's first key

    // S = Q K^T for the 16 rows and the warp's 16 keys (two n-tiles of 8 keys).
    float sc[2][4];
#pragma unroll
    for (int n = 0; n < 2; n++) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      u32 bf[4];
      ldmatrix_x4(bf, Kt + ((lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
      Mma<T>::run(sc[0], qa[kk], bf);
      Mma<T>::run(sc[1], qa[kk], bf + 2);
    }
#pragma unroll
    for (int n = 0; n < 2; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int j = j0 + n * 8 + 2 * t4 + (e & 1);
        const int p = e < 2 ? pos0 : pos1;
        const bool vis = j < kEnd && p >= 0 && (!causal || j <= p);
        sc[n][e] = vis ? sc[n][e] * scaleLog2 : FL_NEG_INF;
      }
    }
    // Online softmax of the warp's rows (a quad holds a row's 16 scores of this tile).
    float alpha[2];
    fl_online_softmax<2>(sc, mrow, lrow, alpha);
    // O = alpha O + P V, P (16-bit) straight from the score accumulators as the A fragment.
    u32 a[4];
    a[0] = fl_pack2<T>(sc[0][0], sc[0][1]);
    a[1] = fl_pack2<T>(sc[0][2], sc[0][3]);
    a[2] = fl_pack2<T>(sc[1][0], sc[1][1]);
    a[3] = fl_pack2<T>(sc[1][2], sc[1][3]);
#pragma unroll
    for (int np = 0; np < D / 16; np++) {
      o[2 * np][0] *= alpha[0];
      o[2 * np][1] *= alpha[0];
      o[2 * np][2] *= alpha[1];
      o[2 * np][3] *= alpha[1];
      o[2 * np + 1][0] *= alpha[0];
      o[2 * np + 1][1] *= alpha[0];
      o[2 * np + 1][2] *= alpha[1];
      o[2 * np + 1][3] *= alpha[1];
      u32 bf[4];
      ldmatrix_x4_trans(bf, Vt + ((lane & 7) + ((lane >> 3) & 1) * 8) * LD + np * 16 + (lane >> 4) * 8);
      Mma<T>::run(o[2 * np], a, bf);
      Mma<T>::run(o[2 * np + 1], a, bf + 2);
    }
    __syncthreads();  // the buffer just read is refilled by a later prefetch
  }
  cp_async_wait<0>();
  __syncthreads();

  // Merge the warps' states (fixed order) through shared memory, which the tiles no longer use.
  float* red = reinterpret_cast<float*>(fl_smem);  // [WARPS][16][D]
  float* wm = red + FL_DEC_WARPS * FL_DEC_ROWS * D;  // [WARPS][16]
  float* wl = wm + FL_DEC_WARPS * FL_DEC_ROWS;
#pragma unroll
  for (int r = 0; r < 2; r++) {
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 1);
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 2);
  }
  if (t4 == 0) {
    wm[warp * FL_DEC_ROWS + g] = mrow[0];
    wm[warp * FL_DEC_ROWS + g + 8] = mrow[1];
    wl[warp * FL_DEC_ROWS + g] = lrow[0];
    wl[warp * FL_DEC_ROWS + g + 8] = lrow[1];
  }
#pragma unroll
  for (int n = 0; n < D / 8; n++) {
    const int c = n * 8 + 2 * t4;
    float* r0p = red + (warp * FL_DEC_ROWS + g) * D + c;
    float* r1p = red + (warp * FL_DEC_ROWS + g + 8) * D + c;
    r0p[0] = o[n][0];
    r0p[1] = o[n][1];
    r1p[0] = o[n][2];
    r1p[1] = o[n][3];
  }
  __syncthreads();
  // Per row: the block's max M and each warp's weight 2^(m_w - M) (0 for a warp that saw no key),
  // then the row's partials. wsc sits past wl, clear of red.
  float* wsc = wl + FL_DEC_WARPS * FL_DEC_ROWS;  // [16][WARPS]
  const i64 pBase = (i64)bh * R;
  if (tid < R) {
    float M = FL_NEG_INF;
#pragma unroll
    for (int w = 0; w < FL_DEC_WARPS; w++) M = fmaxf(M, wm[w * FL_DEC_ROWS + tid]);
    float L = 0.0f;
#pragma unroll
    for (int w = 0; w < FL_DEC_WARPS; w++) {
      const float mw = wm[w * FL_DEC_ROWS + tid];
      const float sw = mw == FL_NEG_INF ? 0.0f : exp2f(mw - M);
      wsc[tid * FL_DEC_WARPS + w] = sw;
      L = fmaf(sw, wl[w * FL_DEC_ROWS + tid], L);
    }
    pm[(pBase + tid) * nsplit + s] = M == FL_NEG_INF ? FL_NEG_INF : M * FL_LN2;
    pl[(pBase + tid) * nsplit + s] = L;
  }
  __syncthreads();
  for (int x = tid; x < R * D; x += NT) {
    const int r = x / D, c = x - (x / D) * D;
    float acc = 0.0f;
#pragma unroll
    for (int w = 0; w < FL_DEC_WARPS; w++) acc = fmaf(wsc[r * FL_DEC_WARPS + w], red[(w * FL_DEC_ROWS + r) * D + c], acc);
    pacc[((pBase + r) * nsplit + s) * D + c] = acc;
  }
}

// p[0] += a, p[1] += b in global memory (p 8-byte aligned): one vector reduction on sm_90.
RL_DEV void fl_red2(float* p, float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(p), "f"(a), "f"(b) : "memory");
#else
  atomicAdd(p, a);
  atomicAdd(p + 1, b);
#endif
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
  const int b = blockIdx.x / Hkv, hk = blockIdx.x - (blockIdx.x / Hkv) * Hkv;
  const int G = H / Hkv;
  const int n0 = blockIdx.y * FL_BN;
  const i64 qStride = (i64)H * D, kStride = (i64)Hkv * D;
  const u16* kBase = k + (((i64)b * Tk + k0 + n0) * Hkv + hk) * D;
  const u16* vBase = v + (((i64)b * Tk + k0 + n0) * Hkv + hk) * D;
  fl_load_tile<D, FL_BN, FL_BWD_WARPS * 32>(sK, kBase, kStride, nk - n0, tid);
  fl_load_tile<D, FL_BN, FL_BWD_WARPS * 32>(sV, vBase, kStride, nk - n0, tid);

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
    fl_load_tile<D, FL_BWD_BM, FL_BWD_WARPS * 32>(sQ + buf * BM * LD, q + rowOff, qStride, nq - m0, tid);
    fl_load_tile<D, FL_BWD_BM, FL_BWD_WARPS * 32>(sdO + buf * BM * LD, dO + rowOff, qStride, nq - m0, tid);
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
          if (qi0 < nq) fl_red2(dq0 + col, c[x][0], c[x][1]);
          if (qi1 < nq) fl_red2(dq1 + col, c[x][2], c[x][3]);
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
// Forward on Hopper warpgroup MMA (sm_90a only; the host picks it there), the algorithm of
// flash_fwd with two warpgroups of 64 query rows (block 128 rows), key tiles of FL_WG_BN = 128 and
// FlashAttention-3's intra-warpgroup overlap (without warp specialization): per iteration, issue
// S_t = Q K_t^T (wgmma.m64n128k16, both operands from shared memory), issue O += P_{t-1} V_{t-1}
// (wgmma.m64n{D}k16 with P from registers: the f32 D layout of two adjacent 8-column blocks is the
// A-register layout of one k-step, as in flash_fwd), wait for S_t only and run the softmax on the
// CUDA cores while the P V product runs on the tensor cores, then wait for O and rescale it. Q, K
// and V live in shared memory in the 128-byte swizzle of the wgmma descriptors (PTX ISA "Shared
// Memory Matrix Layout": per 64-column chunk, rows of 128 bytes, the 16-byte piece c of row r at
// c ^ (r % 8), atoms 1024-byte aligned); V is read transposed (MN-major). Load groups: {Q, K_0},
// then {K_t, V_{t-1}} per iteration, so K_t and V_{t-1} sit in different halves of their double
// buffers; cp.async writes are ordered before the async-proxy wgmma reads by a proxy fence. The V
// descriptor's leading / stride byte offsets come from the host (vLbo, vSbo).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FL_WGMMA 1
#else
#define FL_WGMMA 0
#endif
#define FL_WG_BN 128

// A wgmma shared-memory matrix descriptor with the 128-byte swizzle (PTX ISA "Matrix Descriptor
// Format": start address, leading and stride byte offsets in 16-byte units; bits 62-63 = 1).
RL_DEV u64 fl_wg_desc(const void* p, u32 lboBytes, u32 sboBytes) {
  const u64 a = smem_addr(p);
  return ((a & 0x3ffffull) >> 4) | ((u64)((lboBytes >> 4) & 0x3fffu) << 16) | ((u64)((sboBytes >> 4) & 0x3fffu) << 32) | (1ull << 62);
}
RL_DEV void fl_wg_fence() {
#if FL_WGMMA
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
RL_DEV void fl_wg_commit() {
#if FL_WGMMA
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
RL_DEV void fl_wg_wait0() {
#if FL_WGMMA
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#endif
}
// Generic-proxy shared-memory writes (cp.async, st.shared) before async-proxy reads (wgmma).
RL_DEV void fl_fence_proxy_async() {
#if FL_WGMMA
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
// Keeps the compiler from moving accesses of wgmma accumulators across the wait (CUTLASS's
// warpgroup_fence_operand).
template <int N> RL_DEV void fl_fence_regs(float* r) {
#pragma unroll
  for (int i = 0; i < N; i++) asm volatile("" : "+f"(r[i])::"memory");
}

// Keeps registers live (and unmoved) up to this point: the A fragments an in-flight wgmma reads.
template <int N> RL_DEV void fl_keep_regs(u32* r) {
#pragma unroll
  for (int i = 0; i < N; i++) asm volatile("" : "+r"(r[i])::"memory");
}

// 2^x on the MUFU unit (ex2.approx.ftz: results below 2^-126 flush to 0, which probabilities
// relative to the row max can afford; -inf gives 0).
RL_DEV float fl_ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

template <class T, int N, int TRANS_B> struct WgmmaRS;
template <> struct WgmmaRS<BF16, 128, 0> {
  static RL_DEV void run(float* d, const u32 a[4], u64 desc, int scaleD) {
#if FL_WGMMA
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scaleD));
#endif
  }
};
template <> struct WgmmaRS<F16, 128, 0> {
  static RL_DEV void run(float* d, const u32 a[4], u64 desc, int scaleD) {
#if FL_WGMMA
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scaleD));
#endif
  }
};
template <> struct WgmmaRS<BF16, 64, 1> {
  static RL_DEV void run(float* d, const u32 a[4], u64 desc, int scaleD) {
#if FL_WGMMA
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scaleD));
#endif
  }
};
template <> struct WgmmaRS<F16, 64, 1> {
  static RL_DEV void run(float* d, const u32 a[4], u64 desc, int scaleD) {
#if FL_WGMMA
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scaleD));
#endif
  }
};
template <> struct WgmmaRS<BF16, 128, 1> {
  static RL_DEV void run(float* d, const u32 a[4], u64 desc, int scaleD) {
#if FL_WGMMA
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scaleD));
#endif
  }
};
template <> struct WgmmaRS<F16, 128, 1> {
  static RL_DEV void run(float* d, const u32 a[4], u64 desc, int scaleD) {
#if FL_WGMMA
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scaleD));
#endif
  }
};

// Copies a tile of ROWS rows x D 16-bit elements into the swizzled layout (chunks of 64 columns,
// rows of 128 bytes, chunk region ROWS * 128 bytes); rows >= valid are zero-filled. NT threads:
// thread tid copies the 16-byte piece tid % (D / 8) of rows tid / (D / 8) + i * NT / (D / 8),
// all with the same swizzle (the row step is a multiple of 8), so the addresses are computed once.
template <int D, int ROWS, int NT>
RL_DEV void fl_load_swizzled(u16* dst, const u16* src, i64 stride, int valid, int tid) {
  const int CH = D / 8, RSTEP = NT / CH;
  static_assert(NT % CH == 0 && RSTEP % 8 == 0 && (ROWS * CH) % NT == 0, "fl_load_swizzled tiling");
  const int c = tid % CH, r0 = tid / CH;
  u16* d0 = dst + (c >> 3) * ROWS * 64 + r0 * 64 + (((c & 7) ^ (r0 & 7)) << 3);
  const u16* s0 = src + (i64)r0 * stride + c * 8;
  const i64 sstep = (i64)RSTEP * stride;
#pragma unroll
  for (int i = 0; i < ROWS * CH / NT; i++) {
    const bool ok = r0 + i * RSTEP < valid;
    cp_async16(d0 + i * RSTEP * 64, ok ? s0 + i * sstep : src, ok ? 16 : 0);
  }
}

// Both operands from shared memory, K-major (S = Q K^T).
template <class T, int N> struct WgmmaSS;
template <> struct WgmmaSS<BF16, 128> {
  static RL_DEV void run(float* d, u64 descA, u64 descB, int scaleD) {
#if FL_WGMMA
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(descA), "l"(descB), "r"(scaleD));
#endif
  }
};
template <> struct WgmmaSS<F16, 128> {
  static RL_DEV void run(float* d, u64 descA, u64 descB, int scaleD) {
#if FL_WGMMA
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(descA), "l"(descB), "r"(scaleD));
#endif
  }
};

template <int D> struct FlashWgSmem {
  static const int TILE = FL_WG_BN * D;
  static const int BYTES = 1024 + FL_BM * D * 2 + 4 * TILE * 2;
};

// ONE_BAR: one block barrier per key tile (wait for tile t's loads, barrier, then issue tile
// t + 1's loads, whose buffers everyone left in iteration t - 1) instead of two.
template <class T, int D, bool ONE_BAR>
RL_DEV void flash_fwd_wg(const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v, u16* __restrict__ out,
                          float* __restrict__ lse, int Tq, int Tk, int H, int Hkv, int q0, int nq, int k0, int nk, int kvOffset,
                          int causal, float scaleLog2, int vLbo, int vSbo) {
  extern __shared__ __align__(16) unsigned char fl_smem[];
  typedef FlashWgSmem<D> L;
  const int BN = FL_WG_BN;
  unsigned char* base = fl_smem + ((1024 - (smem_addr(fl_smem) & 1023)) & 1023);
  u16* sQ = reinterpret_cast<u16*>(base);   // [D / 64][FL_BM][64], swizzled
  u16* sK = sQ + FL_BM * D;                 // [2][D / 64][BN][64], swizzled
  u16* sV = sK + 2 * L::TILE;               // [2][D / 64][BN][64], swizzled
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = tid >> 7;
  const int g = lane >> 2, t4 = lane & 3;
  const int b = blockIdx.x / H, h = blockIdx.x - (blockIdx.x / H) * H;
  const int hk = h / (H / Hkv);
  const int m0 = (gridDim.y - 1 - blockIdx.y) * FL_BM;
  const int rowsHere = min(FL_BM, nq - m0);
  const int kEnd = causal ? min(nk, kvOffset + m0 + rowsHere) : nk;
  const int nTiles = (kEnd + BN - 1) / BN;
  const i64 qStride = (i64)H * D, kStride = (i64)Hkv * D;
  const u16* qBase = q + (((i64)b * Tq + q0 + m0) * H + h) * D;
  const u16* kBase = k + (((i64)b * Tk + k0) * Hkv + hk) * D;
  const u16* vBase = v + (((i64)b * Tk + k0) * Hkv + hk) * D;

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float mrow[2] = {FL_NEG_INF, FL_NEG_INF};
  float lrow[2] = {0.0f, 0.0f};
  const int r0 = m0 + warp * 16 + g;
  const int pos0 = kvOffset + r0, pos1 = pos0 + 8;
  const int firstPos = kvOffset + m0;
  u32 pf[BN / 16][4];
  float s[BN / 8][4];
  // Positive scale: the running max is kept on the raw scores and the scale folded into the
  // exponent, 2^(s sc - m sc) by one FFMA; otherwise the scores are scaled first (sc = 1).
  const bool scalePos = scaleLog2 > 0.0f;
  const float sc = scalePos ? scaleLog2 : 1.0f;

  // S_t = Q K_t^T for this warpgroup's 64 rows, then the online softmax: P_t packed into pf, the
  // running max / sum updated; returns the rescale factors of O.
  auto scores = [&](int t) {
    const u16* Kt = sK + (t & 1) * L::TILE;
    fl_wg_fence();
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++) {
      const u64 da = fl_wg_desc(sQ + (ks >> 2) * FL_BM * 64 + wg * 64 * 64 + (ks & 3) * 16, 16, 1024);
      const u64 db = fl_wg_desc(Kt + (ks >> 2) * BN * 64 + (ks & 3) * 16, 16, 1024);
      WgmmaSS<T, BN>::run(&s[0][0], da, db, ks > 0 ? 1 : 0);
    }
    fl_wg_commit();
  };
  auto softmax = [&](int t, float alpha[2]) {
    const int n0 = t * BN;
    const bool needMask = n0 + BN > nk || (causal && n0 + BN - 1 > firstPos);
    if (scalePos) {
      // The scale goes into the exponent's FFMA below; only masked scores change here.
      if (needMask) {
#pragma unroll
        for (int n = 0; n < BN / 8; n++) {
#pragma unroll
          for (int e = 0; e < 4; e++) {
            const int j = n0 + n * 8 + 2 * t4 + (e & 1);
            const int p = e < 2 ? pos0 : pos1;
            if (j >= nk || (causal && j > p)) s[n][e] = FL_NEG_INF;
          }
        }
      }
    } else {
#pragma unroll
      for (int n = 0; n < BN / 8; n++) {
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
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float mx = mrow[r];
#pragma unroll
      for (int n = 0; n < BN / 8; n++) mx = fmaxf(mx, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mUse = mx == FL_NEG_INF ? 0.0f : mx;
      alpha[r] = fl_ex2((mrow[r] - mUse) * sc);
      mrow[r] = mx;
      const float mS = mUse * sc;
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < BN / 8; n++) {
        const float p0 = fl_ex2(fmaf(s[n][2 * r], sc, -mS)), p1 = fl_ex2(fmaf(s[n][2 * r + 1], sc, -mS));
        s[n][2 * r] = p0;
        s[n][2 * r + 1] = p1;
        sum += p0 + p1;
      }
      lrow[r] = lrow[r] * alpha[r] + sum;
    }
  };
  auto packP = [&]() {
#pragma unroll
    for (int ks = 0; ks < BN / 16; ks++) {
      pf[ks][0] = fl_pack2<T>(s[2 * ks][0], s[2 * ks][1]);
      pf[ks][1] = fl_pack2<T>(s[2 * ks][2], s[2 * ks][3]);
      pf[ks][2] = fl_pack2<T>(s[2 * ks + 1][0], s[2 * ks + 1][1]);
      pf[ks][3] = fl_pack2<T>(s[2 * ks + 1][2], s[2 * ks + 1][3]);
    }
  };
  // O += P V_t (P in pf).
  auto pv = [&](int t) {
    const u16* Vt = sV + (t & 1) * L::TILE;
    fl_fence_regs<D / 2>(&o[0][0]);
    fl_wg_fence();
#pragma unroll
    for (int ks = 0; ks < BN / 16; ks++) {
      const u64 desc = fl_wg_desc(Vt + ks * 16 * 64, (u32)vLbo, (u32)vSbo);
      WgmmaRS<T, D, 1>::run(&o[0][0], pf[ks], desc, 1);
    }
    fl_wg_commit();
  };

  // Prologue: {Q, K_0}, {K_1, V_0}; S_0 and its softmax.
  fl_load_swizzled<D, FL_BM, 256>(sQ, qBase, qStride, rowsHere, tid);
  fl_load_swizzled<D, FL_WG_BN, 256>(sK, kBase, kStride, nk, tid);
  cp_async_commit();
  if (ONE_BAR) {
    cp_async_wait<0>();
    fl_fence_proxy_async();
    __syncthreads();
  }
  if (nTiles > 1) fl_load_swizzled<D, FL_WG_BN, 256>(sK + L::TILE, kBase + (i64)BN * kStride, kStride, nk - BN, tid);
  fl_load_swizzled<D, FL_WG_BN, 256>(sV, vBase, kStride, nk, tid);
  cp_async_commit();
  if (!ONE_BAR) {
    cp_async_wait<1>();
    fl_fence_proxy_async();
    __syncthreads();
  }
  {
    float alpha[2];
    scores(0);
    fl_wg_wait0();
    fl_fence_regs<BN / 2>(&s[0][0]);
    softmax(0, alpha);
    packP();
  }
  for (int t = 1; t < nTiles; t++) {
    if (ONE_BAR) {
      cp_async_wait<0>();  // K_t and V_{t-1}
      fl_fence_proxy_async();
      __syncthreads();     // ... visible to all; everyone is past iteration t - 1
    } else {
      __syncthreads();  // everyone is past tile t - 1's reads of K_{t+1}'s and V_t's buffers
    }
    if (t + 1 < nTiles) fl_load_swizzled<D, FL_WG_BN, 256>(sK + ((t + 1) & 1) * L::TILE, kBase + (i64)(t + 1) * BN * kStride, kStride, nk - (t + 1) * BN, tid);
    fl_load_swizzled<D, FL_WG_BN, 256>(sV + (t & 1) * L::TILE, vBase + (i64)t * BN * kStride, kStride, nk - t * BN, tid);
    cp_async_commit();
    if (!ONE_BAR) {
      cp_async_wait<1>();  // K_t and V_{t-1}
      fl_fence_proxy_async();
      __syncthreads();
    }
    scores(t);
    pv(t - 1);
    // Wait for S_t only (the P V group stays in flight during the softmax).
#if FL_WGMMA
    asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
#endif
    fl_fence_regs<BN / 2>(&s[0][0]);
    // The softmax statistics of S_t while P_{t-1} V_{t-1} runs; pf (read by that wgmma) is
    // rewritten only after the wait, and kept live until then.
    float alpha[2];
    softmax(t, alpha);
    fl_wg_wait0();
    fl_fence_regs<D / 2>(&o[0][0]);
    fl_keep_regs<BN / 4>(&pf[0][0]);
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
      o[n][0] *= alpha[0];
      o[n][1] *= alpha[0];
      o[n][2] *= alpha[1];
      o[n][3] *= alpha[1];
    }
    packP();
  }
  // Epilogue: O += P_{n-1} V_{n-1}.
  cp_async_wait<0>();
  fl_fence_proxy_async();
  __syncthreads();
  pv(nTiles - 1);
  fl_wg_wait0();
  fl_fence_regs<D / 2>(&o[0][0]);

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
    if (i0 < nq) lse[((i64)b * H + h) * Tq + q0 + i0] = (mrow[0] * sc + log2f(lrow[0])) * FL_LN2;
    if (i1 < nq) lse[((i64)b * H + h) * Tq + q0 + i1] = (mrow[1] * sc + log2f(lrow[1])) * FL_LN2;
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
