// FP8 quantizers and fused quantizing kernels (MODEL_SPEC §8; the ops are defined in
// @ring-linear/fp8, docs/fp8.md). Every kernel reproduces the scale rule step for step, as the CPU
// kernels (packages/backend-cpu/src/kernels/fp8) and the composites compute it, so the codes and
// scales are the same bytes:
//
//   amax  = max |x| over the block's real elements        NaN propagates
//   scale = max(fl32(amax / fp8_max), 2^-126)             [pow2: the smallest power of two >= scale]
//   code  = encode_saturating(fl32(x / scale))            an IEEE division, not x * (1 / scale)
//
// The amax is taken over the bit patterns of |x| as unsigned integers: for non-negative floats the
// integer order is the float order and every NaN pattern sorts above +inf, so an integer max
// propagates NaN exactly as the reference's `a > m || a != a` does (and is one instruction).
//
// Work layout: a 1x128 tile is handled by a half-warp, each lane holding 8 consecutive elements
// (one 16-byte load for 2-byte inputs, two for f32; an 8-byte store of codes), so a warp moves two
// tiles per step. Rows whose length is a multiple of 8 (and aligned pointers) take the vector path;
// others load element by element with bounds checks.
#pragma once
#ifndef RING_LINEAR_FP8_CUH
#define RING_LINEAR_FP8_CUH
#include "common.cuh"

#define FP8_TILE 128
#define FP8_NAN_BITS 0x7fc00000u

template <class Q> struct Fp8Max;
template <> struct Fp8Max<E4M3> { static RL_DEV float value() { return 448.0f; } };
template <> struct Fp8Max<E5M2> { static RL_DEV float value() { return 57344.0f; } };

RL_DEV u32 abs_bits(float v) { return __float_as_uint(v) & 0x7fffffffu; }
RL_DEV u32 umax(u32 a, u32 b) { return a > b ? a : b; }

// Max over the 16 lanes of a half-warp (every lane of the warp must call it).
RL_DEV u32 half_warp_max(u32 v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v = umax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
RL_DEV u32 warp_umax(u32 v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = umax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Max over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
RL_DEV u32 block_umax(u32 v) {
  __shared__ u32 sh[32];
  v = warp_umax(v);
  const int warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  __syncthreads(); // sh may still be read from a previous call
  if ((threadIdx.x & 31) == 0) sh[warp] = v;
  __syncthreads();
  u32 t = (int)(threadIdx.x & 31) < nwarps ? sh[threadIdx.x & 31] : 0u;
  return warp_umax(t);
}

// The scale rule from the amax bits. A NaN amax gives the canonical NaN; +inf gives +inf.
template <class Q> RL_DEV float fp8_scale(u32 amax_bits, int pow2) {
  if (amax_bits > 0x7f800000u) return __uint_as_float(FP8_NAN_BITS);
  const float s = __fdiv_rn(__uint_as_float(amax_bits), Fp8Max<Q>::value());
  const float c = s > 1.17549435082228751e-38f ? s : 1.17549435082228751e-38f; // 2^-126
  const u32 u = __float_as_uint(c);
  // Next binade when any mantissa bit is set (exponent 255 would be +inf, as the reference).
  if (pow2 && u < 0x7f800000u && (u & 0x7fffffu) != 0u) return __uint_as_float(((u >> 23) + 1u) << 23);
  return c;
}

template <class Q> RL_DEV u8 fp8_code(float x, float scale) { return Q::st(__fdiv_rn(x, scale), true); }

RL_DEV bool aligned_to(const void* p, unsigned bytes) { return ((u64)p & (u64)(bytes - 1)) == 0; }

// 8 consecutive elements p[i .. i+8) as f32, `valid` of them in range (the rest read as 0, which
// leaves an amax unchanged).
template <class T> RL_DEV void load8(const typename T::S* __restrict__ p, i64 i, int valid, bool vec, float* v) {
  typedef typename T::S S;
  if (vec && valid == 8) {
    const Vec<S, 8> e = *reinterpret_cast<const Vec<S, 8>*>(p + i);
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = T::ld(e.e[j]);
  } else {
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = j < valid ? T::ld(p[i + j]) : 0.0f;
  }
}

template <class Q> RL_DEV void store8(u8* __restrict__ q, i64 i, int valid, bool vec, const float* v, float scale) {
  if (vec && valid == 8) {
    Vec<u8, 8> o;
#pragma unroll
    for (int j = 0; j < 8; j++) o.e[j] = fp8_code<Q>(v[j], scale);
    *reinterpret_cast<Vec<u8, 8>*>(q + i) = o;
  } else {
#pragma unroll
    for (int j = 0; j < 8; j++)
      if (j < valid) q[i + j] = fp8_code<Q>(v[j], scale);
  }
}

RL_DEV u32 amax8(const float* v) {
  u32 m = 0u;
#pragma unroll
  for (int j = 0; j < 8; j++) m = umax(m, abs_bits(v[j]));
  return m;
}

RL_DEV int clamp8(i64 n) { return n <= 0 ? 0 : (n >= 8 ? 8 : (int)n); }

// ---------------------------------------------------------------------------------------------
// Sources of row values for the 1x128 tile kernel: element (row, col0 .. col0+8) as f32.

// x [rows, K] itself.
template <class T> struct PlainRows {
  const typename T::S* x;
  i64 K;
  bool vec;
  RL_DEV void load(i64 row, i64 col0, int valid, float* v) const { load8<T>(x, row * K + col0, valid, vec, v); }
};

// silu(g) * u of gateUp [rows, 2I] = [g | u], each step one f32 rounding as the composite's unary
// silu kernel (elementwise: x / (1 + exp(-x))) and mul kernel compute it.
RL_DEV float silu_f32(float x) { return x / (1.0f + expf(-x)); }
template <class T> struct SwigluRows {
  const typename T::S* gu;
  i64 I;
  bool vec;
  RL_DEV void load(i64 row, i64 col0, int valid, float* v) const {
    float g[8], u[8];
    load8<T>(gu, row * 2 * I + col0, valid, vec, g);
    load8<T>(gu, row * 2 * I + I + col0, valid, vec, u);
#pragma unroll
    for (int j = 0; j < 8; j++) {
      const float h = silu_f32(g[j]);
      v[j] = h * u[j];
    }
  }
};

// One 1x128 tile per half-warp: `tiles` = rows * T tiles of rows of length K. Every lane of a warp
// takes part in the shuffles; lanes past the last tile load nothing and store nothing.
template <class SRC, class Q>
RL_DEV void tile_quant(const SRC& src, u8* __restrict__ q, float* __restrict__ s, i64 rows, i64 K, int pow2, bool vec) {
  const i64 T = (K + FP8_TILE - 1) / FP8_TILE;
  const i64 h = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 4;
  const int lane = threadIdx.x & 15;
  const bool active = h < rows * T;
  const i64 row = active ? h / T : 0;
  const i64 t = active ? h - row * T : 0;
  const i64 col0 = t * FP8_TILE + lane * 8;
  const int valid = active ? clamp8(K - col0) : 0;
  float v[8];
  src.load(row, col0, valid, v);
  const u32 m = half_warp_max(amax8(v));
  const float scale = fp8_scale<Q>(m, pow2);
  if (!active) return;
  if (lane == 0) s[h] = scale;
  store8<Q>(q, row * K + col0, valid, vec, v, scale);
}

template <class T, class Q>
RL_DEV void fp8_quant_tiles(const typename T::S* __restrict__ x, u8* __restrict__ q, float* __restrict__ s, i64 rows, i64 K, int pow2) {
  const bool vec = K % 8 == 0 && aligned_to(x, 32) && aligned_to(q, 8);
  const PlainRows<T> src = {x, K, vec};
  tile_quant<PlainRows<T>, Q>(src, q, s, rows, K, pow2, vec);
}

template <class T, class Q>
RL_DEV void fp8_swiglu_quant(const typename T::S* __restrict__ gu, u8* __restrict__ q, float* __restrict__ s, i64 rows, i64 I, int pow2) {
  const bool vec = I % 8 == 0 && aligned_to(gu, 32) && aligned_to(q, 8);
  const SwigluRows<T> src = {gu, I, vec};
  tile_quant<SwigluRows<T>, Q>(src, q, s, rows, I, pow2, vec);
}

// ---------------------------------------------------------------------------------------------
// One scale per row (layout 'row'): one block per row, the row read twice (the second time from
// L1/L2).
template <class T, class Q>
RL_DEV void fp8_quant_rows(const typename T::S* __restrict__ x, u8* __restrict__ q, float* __restrict__ s, i64 rows, i64 K, int pow2) {
  const i64 row = blockIdx.x;
  if (row >= rows) return;
  const bool vec = K % 8 == 0 && aligned_to(x, 32) && aligned_to(q, 8);
  const i64 base = row * K;
  float v[8];
  u32 m = 0u;
  for (i64 c = (i64)threadIdx.x * 8; c < K; c += (i64)blockDim.x * 8) {
    load8<T>(x, base + c, clamp8(K - c), vec, v);
    m = umax(m, amax8(v));
  }
  const float scale = fp8_scale<Q>(block_umax(m), pow2);
  if (threadIdx.x == 0) s[row] = scale;
  for (i64 c = (i64)threadIdx.x * 8; c < K; c += (i64)blockDim.x * 8) {
    const int valid = clamp8(K - c);
    load8<T>(x, base + c, valid, vec, v);
    store8<Q>(q, base + c, valid, vec, v, scale);
  }
}

// One scale for the whole tensor (layout 'tensor'): pass 1 folds every block's amax into *amax
// (zeroed by the host) with an integer atomicMax; pass 2 quantizes.
template <class T>
RL_DEV void fp8_amax_all(const typename T::S* __restrict__ x, u32* __restrict__ amax, i64 n) {
  const bool vec = aligned_to(x, 32);
  float v[8];
  u32 m = 0u;
  for (i64 i = global_thread() * 8; i < n; i += grid_threads() * 8) {
    load8<T>(x, i, clamp8(n - i), vec, v);
    m = umax(m, amax8(v));
  }
  m = block_umax(m);
  if (threadIdx.x == 0 && m != 0u) atomicMax(amax, m);
}

template <class T, class Q>
RL_DEV void fp8_quant_tensor(const typename T::S* __restrict__ x, u8* __restrict__ q, float* __restrict__ s, const u32* __restrict__ amax, i64 n, int pow2) {
  const bool vec = aligned_to(x, 32) && aligned_to(q, 8);
  const float scale = fp8_scale<Q>(*amax, pow2);
  if (global_thread() == 0) s[0] = scale;
  float v[8];
  for (i64 i = global_thread() * 8; i < n; i += grid_threads() * 8) {
    const int valid = clamp8(n - i);
    load8<T>(x, i, valid, vec, v);
    store8<Q>(q, i, valid, vec, v, scale);
  }
}

// ---------------------------------------------------------------------------------------------
// 128x128 blocks of the last two dims of x [B, N, K]: one block of 256 threads per 128x128 block
// (16 rows x 16 lanes of 8 columns per pass, 8 passes), values kept in registers between the
// amax and the quantization, so x is read once. `nblocks` = B * NB * KB.

template <class T, class Q>
RL_DEV void fp8_quant_blocks(const typename T::S* __restrict__ x, u8* __restrict__ q, float* __restrict__ s, i64 N, i64 K, i64 nblocks, int pow2) {
  const i64 blk = blockIdx.x;
  if (blk >= nblocks) return;
  const i64 NB = (N + FP8_TILE - 1) / FP8_TILE, KB = (K + FP8_TILE - 1) / FP8_TILE;
  const i64 b = blk / (NB * KB);
  const i64 nb = (blk / KB) % NB, kb = blk % KB;
  const bool vec = K % 8 == 0 && aligned_to(x, 32) && aligned_to(q, 8);
  const i64 base = b * N * K;
  const int r0 = threadIdx.x >> 4;
  const i64 col0 = kb * FP8_TILE + (threadIdx.x & 15) * 8;
  const int cvalid = clamp8(K - col0);
  float v[8][8];
  u32 m = 0u;
#pragma unroll
  for (int p = 0; p < 8; p++) {
    const i64 row = nb * FP8_TILE + p * 16 + r0;
    const int valid = row < N ? cvalid : 0;
    load8<T>(x, base + row * K + col0, valid, vec, v[p]);
    m = umax(m, amax8(v[p]));
  }
  const float scale = fp8_scale<Q>(block_umax(m), pow2);
  if (threadIdx.x == 0) s[blk] = scale;
#pragma unroll
  for (int p = 0; p < 8; p++) {
    const i64 row = nb * FP8_TILE + p * 16 + r0;
    if (row < N) store8<Q>(q, base + row * K + col0, cvalid, vec, v[p], scale);
  }
}

// ---------------------------------------------------------------------------------------------
// Quant+transpose: x [M, K] -> q [M, K] with scales [M, KT] (tiles along K) and qT [K, M] with
// scales [K, MT] (tiles along M), from one read of x. One block of 256 threads per 128x128 block of
// x: a block row is one tile of x (half-warp amax), a block column one tile of x^T (amax across
// the block through shared memory). The transposed codes are staged in shared memory so that qT
// is written in coalesced rows of words.

// Bytes per staged qT row: 128 + 4 keeps rows word-aligned and spreads a half-warp's column
// writes (8 columns apart) over 4 banks instead of one.
#define FP8_QT_PITCH 132

template <class T, class Q>
RL_DEV void fp8_quant_transpose(const typename T::S* __restrict__ x, u8* __restrict__ q, float* __restrict__ s, u8* __restrict__ qT,
                                float* __restrict__ sT, i64 M, i64 K, int pow2) {
  __shared__ u32 colmax[16][FP8_TILE];
  __shared__ float colscale[FP8_TILE];
  __shared__ __align__(16) u8 staged[FP8_TILE * FP8_QT_PITCH];
  const i64 MT = (M + FP8_TILE - 1) / FP8_TILE, KT = (K + FP8_TILE - 1) / FP8_TILE;
  const i64 mb = blockIdx.x / KT, kb = blockIdx.x % KT;
  if (mb >= MT) return;
  const bool vec = K % 8 == 0 && aligned_to(x, 32) && aligned_to(q, 8);
  const int r0 = threadIdx.x >> 4, lane = threadIdx.x & 15;
  const int c0 = lane * 8;
  const i64 col0 = kb * FP8_TILE + c0;
  const int cvalid = clamp8(K - col0);
  float v[8][8];
  u32 cm[8];
#pragma unroll
  for (int j = 0; j < 8; j++) cm[j] = 0u;
#pragma unroll
  for (int p = 0; p < 8; p++) {
    const i64 row = mb * FP8_TILE + p * 16 + r0;
    const bool in = row < M;
    load8<T>(x, row * K + col0, in ? cvalid : 0, vec, v[p]);
#pragma unroll
    for (int j = 0; j < 8; j++) cm[j] = umax(cm[j], abs_bits(v[p][j]));
    // The row's tile along K: this half-warp holds all of it.
    const float scale = fp8_scale<Q>(half_warp_max(amax8(v[p])), pow2);
    if (in) {
      if (lane == 0) s[row * KT + kb] = scale;
      store8<Q>(q, row * K + col0, cvalid, vec, v[p], scale);
    }
  }
#pragma unroll
  for (int j = 0; j < 8; j++) colmax[r0][c0 + j] = cm[j];
  __syncthreads();
  if (threadIdx.x < FP8_TILE) {
    u32 m = 0u;
#pragma unroll
    for (int g = 0; g < 16; g++) m = umax(m, colmax[g][threadIdx.x]);
    const float scale = fp8_scale<Q>(m, pow2);
    colscale[threadIdx.x] = scale;
    const i64 k = kb * FP8_TILE + threadIdx.x;
    if (k < K) sT[k * MT + mb] = scale;
  }
  __syncthreads();
#pragma unroll
  for (int p = 0; p < 8; p++) {
    const int r = p * 16 + r0;
#pragma unroll
    for (int j = 0; j < 8; j++) staged[(c0 + j) * FP8_QT_PITCH + r] = fp8_code<Q>(v[p][j], colscale[c0 + j]);
  }
  __syncthreads();
  // qT rows k = kb*128 + c, columns m = mb*128 + [0, 128): a warp writes one row as 32 words.
  const bool vecT = M % 4 == 0 && aligned_to(qT, 4);
  const i64 m0 = mb * FP8_TILE;
  const int mvalid = (int)(M - m0 < FP8_TILE ? M - m0 : FP8_TILE);
  for (int piece = threadIdx.x; piece < FP8_TILE * 32; piece += blockDim.x) {
    const int c = piece >> 5, part = (piece & 31) * 4;
    const i64 k = kb * FP8_TILE + c;
    if (k >= K || part >= mvalid) continue;
    u8* dst = qT + k * M + m0 + part;
    const u8* src = staged + c * FP8_QT_PITCH + part;
    if (vecT) {
      *reinterpret_cast<u32*>(dst) = *reinterpret_cast<const u32*>(src);
    } else {
      const int n = mvalid - part < 4 ? mvalid - part : 4;
      for (int e = 0; e < n; e++) dst[e] = src[e];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm + 1x128 quantization, one block per row of length d. The sum of squares is computed
// exactly as the rmsNorm kernel (nn.cuh rms_norm_rows) does with the same blockDim.x (the host
// picks it with the same rule), so y = w * (x * inv) is the composite's f32 value bit for bit;
// then each half-warp quantizes tiles of y, recomputing y from x (re-read from L1/L2).
template <class T, class W, class Q>
RL_DEV void fp8_rms_norm_quant(const typename T::S* __restrict__ x, const typename W::S* __restrict__ w, u8* __restrict__ q,
                               float* __restrict__ s, i64 rows, i64 d, float eps, int pow2) {
  __shared__ float sh[32];
  const i64 row = blockIdx.x;
  if (row >= rows) return;
  const typename T::S* xr = x + row * d;
  float ss = 0.0f;
  for (i64 k = threadIdx.x; k < d; k += blockDim.x) {
    const float v = T::ld(xr[k]);
    ss += v * v;
  }
  ss = warp_sum(ss);
  const int warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  if ((threadIdx.x & 31) == 0) sh[warp] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    float t = (int)threadIdx.x < nwarps ? sh[threadIdx.x] : 0.0f;
    t = warp_sum(t);
    if (threadIdx.x == 0) sh[0] = t;
  }
  __syncthreads();
  const float inv = 1.0f / sqrtf(sh[0] / (float)d + eps);
  const i64 NT = (d + FP8_TILE - 1) / FP8_TILE;
  const bool vec = d % 8 == 0 && aligned_to(x, 32) && aligned_to(q, 8);
  const bool wvec = d % 8 == 0 && aligned_to(w, 32);
  const int lane = threadIdx.x & 15, half = (threadIdx.x >> 4) & 1;
  // The loop bound is the same for both halves of a warp, so the shuffles see every lane.
  for (i64 t0 = (i64)warp * 2; t0 < NT; t0 += (i64)nwarps * 2) {
    const i64 t = t0 + half;
    const i64 col0 = t * FP8_TILE + lane * 8;
    const int valid = t < NT ? clamp8(d - col0) : 0;
    float v[8], wv[8];
    load8<T>(xr, col0, valid, vec, v);
    load8<W>(w, col0, valid, wvec, wv);
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = wv[j] * (v[j] * inv);
    const float scale = fp8_scale<Q>(half_warp_max(amax8(v)), pow2);
    if (t < NT) {
      if (lane == 0) s[row * NT + t] = scale;
      store8<Q>(q, row * d + col0, valid, vec, v, scale);
    }
  }
}

#endif  // RING_LINEAR_FP8_CUH
