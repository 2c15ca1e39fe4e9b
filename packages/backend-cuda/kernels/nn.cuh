// Fused nn kernels: softmax / logSoftmax along an axis, rmsNorm over the last dim, softmax
// cross-entropy. All compute in f32 whatever the storage dtype (MODEL_SPEC §1, §7) and round once.
#pragma once
#ifndef RING_LINEAR_NN_CUH
#define RING_LINEAR_NN_CUH
#include "reduce.cuh"

// y = softmax or log-softmax of x along the middle axis of [outer, len, inner].
// Non-finite maxima (a NaN, a +inf, or a slice of all -inf) give NaN everywhere in the slice,
// as the reference and PyTorch do.
template <class T, bool LOG>
RL_DEV float softmax_value(float v, LseState st) {
  if (!(fabsf(st.m) <= 3.4028234663852886e38f)) return RL_NAN;
  const float t = v - st.m;
  return LOG ? t - logf(st.s) : expf(t) / st.s;
}

// inner == 1: one block of blockDim.x threads per row; online (max, sum) in one read, then a
// second read (usually from L2) that writes.
template <class T, bool LOG>
RL_DEV void softmax_rows(const typename T::S* __restrict__ x, typename T::S* __restrict__ y, i64 rows, i64 len) {
  typedef LseAcc<T> ACC;
  __shared__ LseState sh[32];
  const i64 row = blockIdx.x;
  if (row >= rows) return;
  typedef typename T::S S;
  const int V = 16 / sizeof(S);
  const S* xr = x + row * len;
  S* yr = y + row * len;
  // 16-byte vector access when every row starts aligned (len a multiple of V).
  const bool vec = len % V == 0;
  LseState a = ACC::init();
  if (vec) {
    const Vec<S, V>* xv = reinterpret_cast<const Vec<S, V>*>(xr);
    for (i64 k = threadIdx.x; k < len / V; k += blockDim.x) {
      const Vec<S, V> e = xv[k];
#pragma unroll
      for (int j = 0; j < V; j++) a = ACC::add(a, T::ld(e.e[j]), k * V + j);
    }
  } else {
    for (i64 k = threadIdx.x; k < len; k += blockDim.x) a = ACC::add(a, T::ld(xr[k]), k);
  }
  a = warp_combine<ACC>(a);
  const int warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  if ((threadIdx.x & 31) == 0) sh[warp] = a;
  __syncthreads();
  if (threadIdx.x < 32) {
    a = (int)threadIdx.x < nwarps ? sh[threadIdx.x] : ACC::init();
    a = warp_combine<ACC>(a);
    if (threadIdx.x == 0) sh[0] = a;
  }
  __syncthreads();
  const LseState st = sh[0];
  if (vec) {
    const Vec<S, V>* xv = reinterpret_cast<const Vec<S, V>*>(xr);
    Vec<S, V>* yv = reinterpret_cast<Vec<S, V>*>(yr);
    for (i64 k = threadIdx.x; k < len / V; k += blockDim.x) {
      const Vec<S, V> e = xv[k];
      Vec<S, V> o;
#pragma unroll
      for (int j = 0; j < V; j++) o.e[j] = T::st(softmax_value<T, LOG>(T::ld(e.e[j]), st), false);
      yv[k] = o;
    }
  } else {
    for (i64 k = threadIdx.x; k < len; k += blockDim.x) yr[k] = T::st(softmax_value<T, LOG>(T::ld(xr[k]), st), false);
  }
}

// inner > 1: one thread per (outer, inner) column, walking the axis twice (coalesced across inner).
template <class T, bool LOG>
RL_DEV void softmax_cols(const typename T::S* __restrict__ x, typename T::S* __restrict__ y, i64 outer, i64 len, i64 inner) {
  typedef LseAcc<T> ACC;
  const i64 step = grid_threads();
  for (i64 c = global_thread(); c < outer * inner; c += step) {
    const i64 o = c / inner, i = c - o * inner;
    const i64 base = o * len * inner + i;
    LseState a = ACC::init();
    for (i64 k = 0; k < len; k++) a = ACC::add(a, T::ld(x[base + k * inner]), k);
    for (i64 k = 0; k < len; k++) y[base + k * inner] = T::st(softmax_value<T, LOG>(T::ld(x[base + k * inner]), a), false);
  }
}

// ---------------------------------------------------------------------------------------------
// The RMSNorm reduction, shared by rmsNorm (below) and the fused kernels of fp8.cuh, whose outputs
// must equal their composites' (rmsNorm, then elementwise ops, then a quantizer) bit for bit. It
// is written once so every kernel sums in the same order, that of a block of B threads per row
// (B = rmsNormThreads(d) on the host: a power of two in 32..1024, at least the row's chunks up to
// 1024) over chunks of 8 consecutive elements (chunk c = x[8c .. 8c + 8), the last one short):
//   thread t < B:      s_t = 0; for chunks c = t, t + B, t + 2B, ...: s_t = fma(x[k], x[k], s_t)
//                      for k = 8c .. 8c + 7 in order
//   virtual warp w:    the 32 partials of threads 32w .. 32w + 31, summed by warp_sum
//   row total:         warp_sum over lanes of (lane < B / 32 ? total of virtual warp lane : 0)
//   inv = 1 / sqrt(total / d + eps);  y = w * (x * inv)         (each step one f32 rounding)
// Chunks of 8 let a kernel load a thread's elements with one 16-byte load and keep them in
// registers for the output pass, where a half-warp's 16 chunks are one 1x128 tile. The operations
// are spelled with the _rn intrinsics so no caller's compilation can contract them differently.
// Any number of real warps may play the B / 32 virtual warps: the result depends on B only.
// LOAD is a functor: ld(k) = x[k] of the row as f32 (global or staged memory).

// One chunk's step: s = fma(v[e], v[e], s) for e < valid, in order.
RL_DEV float rms_chunk_ss(const float* v, int valid, float ss) {
#pragma unroll
  for (int e = 0; e < 8; e++)
    if (e < valid) ss = __fmaf_rn(v[e], v[e], ss);
  return ss;
}

// Virtual thread t's partial over its chunks.
template <class LOAD> RL_DEV float rms_vthread_ss(const LOAD& ld, i64 d, int B, i64 t) {
  float ss = 0.0f;
  for (i64 c = t; c * 8 < d; c += B) {
    float v[8];
    const int valid = d - c * 8 < 8 ? (int)(d - c * 8) : 8;
#pragma unroll
    for (int e = 0; e < 8; e++) v[e] = e < valid ? ld(c * 8 + e) : 0.0f;
    ss = rms_chunk_ss(v, valid, ss);
  }
  return ss;
}

// The total of virtual warp vw (a warp-collective call; every lane gets it).
template <class LOAD> RL_DEV float rms_vwarp_sum(const LOAD& ld, i64 d, int B, int vw) {
  return warp_sum(rms_vthread_ss(ld, d, B, (i64)vw * 32 + (threadIdx.x & 31)));
}

// The row total from the virtual warps' totals, lane w holding virtual warp w's (lanes >= B / 32
// are ignored). Warp-collective.
RL_DEV float rms_total(float lane_total, int B) { return warp_sum((int)(threadIdx.x & 31) < (B >> 5) ? lane_total : 0.0f); }

RL_DEV float rms_inv(float total, i64 d, float eps) { return __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(total, (float)d), eps))); }
RL_DEV float rms_apply(float x, float inv, float w) { return __fmul_rn(w, __fmul_rn(x, inv)); }

// One warp plays all B / 32 virtual warps of a row; every lane gets the row total.
template <class LOAD> RL_DEV float rms_sum_squares_warp(const LOAD& ld, i64 d, int B) {
  float mine = 0.0f;
  for (int vw = 0; vw < (B >> 5); vw++) {
    const float s = rms_vwarp_sum(ld, d, B, vw);
    if ((int)(threadIdx.x & 31) == vw) mine = s;
  }
  return rms_total(mine, B);
}

// The whole block on one row (blockDim.x a multiple of 32, at most B): warp w plays virtual warps
// w, w + nwarps, ...; `sh` is 33 floats of shared memory. Every thread calls it and gets inv.
template <class LOAD> RL_DEV float rms_block_inv(const LOAD& ld, i64 d, int B, float eps, float* sh) {
  const int warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (int vw = warp; vw < (B >> 5); vw += nwarps) {
    const float s = rms_vwarp_sum(ld, d, B, vw);
    if ((threadIdx.x & 31) == 0) sh[vw] = s;
  }
  __syncthreads();
  if (threadIdx.x < 32) {
    const float t = rms_total(sh[threadIdx.x], B);
    if (threadIdx.x == 0) sh[32] = t;
  }
  __syncthreads();
  return rms_inv(sh[32], d, eps);
}

// Row loaders for the reduction.
template <class T> struct RowLoad {
  const typename T::S* p;
  RL_DEV float operator()(i64 k) const { return T::ld(p[k]); }
};

// rmsNorm over rows of length d: y = w * (x * (1 / sqrt(mean(x^2) + eps))), f32 math, one block of
// B = blockDim.x threads per row.
template <class T, class W>
RL_DEV void rms_norm_rows(const typename T::S* __restrict__ x, const typename W::S* __restrict__ w, typename T::S* __restrict__ y,
                          i64 rows, i64 d, float eps) {
  __shared__ float sh[33];
  const i64 row = blockIdx.x;
  if (row >= rows) return;
  const typename T::S* xr = x + row * d;
  typename T::S* yr = y + row * d;
  const RowLoad<T> ld = {xr};
  const float inv = rms_block_inv(ld, d, (int)blockDim.x, eps, sh);
  for (i64 k = threadIdx.x; k < d; k += blockDim.x) yr[k] = T::st(rms_apply(T::ld(xr[k]), inv, W::ld(w[k])), false);
}

// Cross-entropy, one block per token: loss = logsumexp(row) - row[target] for counted targets
// (in [0, V) and != ignore), else 0. `loss` gets the per-token losses (f32), `counted` 0/1.
template <class T>
RL_DEV void cross_entropy_rows(const typename T::S* __restrict__ logits, const int* __restrict__ targets, float* __restrict__ loss,
                               float* __restrict__ counted, i64 rows, i64 vocab, int ignore) {
  typedef LseAcc<T> ACC;
  __shared__ LseState sh[32];
  const i64 row = blockIdx.x;
  if (row >= rows) return;
  const int t = targets[row];
  const bool use = t >= 0 && (i64)t < vocab && t != ignore;
  if (!use) {
    if (threadIdx.x == 0) {
      loss[row] = 0.0f;
      if (counted) counted[row] = 0.0f;
    }
    return;
  }
  const typename T::S* xr = logits + row * vocab;
  LseState a = ACC::init();
  for (i64 k = threadIdx.x; k < vocab; k += blockDim.x) a = ACC::add(a, T::ld(xr[k]), k);
  a = warp_combine<ACC>(a);
  const int warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  if ((threadIdx.x & 31) == 0) sh[warp] = a;
  __syncthreads();
  if (threadIdx.x < 32) {
    a = (int)threadIdx.x < nwarps ? sh[threadIdx.x] : ACC::init();
    a = warp_combine<ACC>(a);
    if (threadIdx.x == 0) {
      // A non-finite max (NaN, +inf, all -inf) makes the reference's sum NaN: the loss is NaN.
      const float lse = fabsf(a.m) <= 3.4028234663852886e38f ? a.m + logf(a.s) : RL_NAN;
      loss[row] = lse - T::ld(xr[t]);
      if (counted) counted[row] = 1.0f;
    }
  }
}

// Sums per-token losses in a fixed order (one block, deterministic) and writes the scalar:
// mode 0 = mean over counted tokens (0 when none), 1 = sum.
RL_DEV void cross_entropy_total_body(const float* __restrict__ loss, const float* __restrict__ counted, float* __restrict__ y, i64 rows, int mode) {
  __shared__ float s_loss[32];
  __shared__ float s_cnt[32];
  float a = 0.0f, c = 0.0f;
  for (i64 k = threadIdx.x; k < rows; k += blockDim.x) {
    a += loss[k];
    c += counted[k];
  }
  a = warp_sum(a);
  c = warp_sum(c);
  const int warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  if ((threadIdx.x & 31) == 0) {
    s_loss[warp] = a;
    s_cnt[warp] = c;
  }
  __syncthreads();
  if (threadIdx.x < 32) {
    a = (int)threadIdx.x < nwarps ? s_loss[threadIdx.x] : 0.0f;
    c = (int)threadIdx.x < nwarps ? s_cnt[threadIdx.x] : 0.0f;
    a = warp_sum(a);
    c = warp_sum(c);
    if (threadIdx.x == 0) y[0] = mode == 1 ? a : (c > 0.0f ? a / c : 0.0f);
  }
}

#endif  // RING_LINEAR_NN_CUH
