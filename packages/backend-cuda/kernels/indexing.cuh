// Indexing kernels: gather / embedding, takeAlongAxis, the two scatter-adds, oneHot, topk, cumsum.
// Index rule (packages/core/src/ops/indexing.ts): an index into an axis of length n is valid in
// [-n, n) and negative ones wrap; an invalid index reads 0 (gathers) or is skipped (scatters).
#pragma once
#ifndef RING_LINEAR_INDEXING_CUH
#define RING_LINEAR_INDEXING_CUH
#include "common.cuh"

RL_DEV i64 wrap_index(int v, i64 n) {
  const i64 t = v < 0 ? (i64)v + n : (i64)v;
  return (t >= 0 && t < n) ? t : -1;
}

// out[o, j, i] = x[o, idx[j], i]: x [outer, n, inner], idx [J], out [outer, J, inner]. Raw copy.
template <class W>
RL_DEV void gather_axis(const W* __restrict__ x, const int* __restrict__ idx, W* __restrict__ y, i64 outer, i64 n, i64 J, i64 inner) {
  const i64 total = outer * J * inner;
  const i64 step = grid_threads();
  for (i64 e = global_thread(); e < total; e += step) {
    const i64 i = e % inner;
    const i64 oj = e / inner;
    const i64 j = oj % J, o = oj / J;
    const i64 t = wrap_index(idx[j], n);
    y[e] = t < 0 ? (W)0 : x[(o * n + t) * inner + i];
  }
}

// out[o, j, i] = x[o, idx[o, j, i], i]: idx and out [outer, J, inner], x [outer, n, inner].
template <class W>
RL_DEV void take_along_axis(const W* __restrict__ x, const int* __restrict__ idx, W* __restrict__ y, i64 outer, i64 n, i64 J, i64 inner) {
  const i64 total = outer * J * inner;
  const i64 step = grid_threads();
  for (i64 e = global_thread(); e < total; e += step) {
    const i64 i = e % inner;
    const i64 o = e / (J * inner);
    const i64 t = wrap_index(idx[e], n);
    y[e] = t < 0 ? (W)0 : x[(o * n + t) * inner + i];
  }
}

// Scatter-adds, deterministic: one thread per (outer, inner) column adds its updates in
// increasing j, so every destination sees its updates in index-list order. Floats accumulate in
// an f32 scratch copy of x (`acc`, initialised by scatter_init) and are rounded once by
// scatter_store; i32 adds in place with wrap-around.
// mode 0: index_add (idx [J], upd [outer, J, inner]); mode 1: along axis (idx, upd [outer, J, inner]).
template <class T>
RL_DEV void scatter_init(const typename T::S* __restrict__ x, typename T::C* __restrict__ acc, i64 total) {
  const i64 step = grid_threads();
  for (i64 e = global_thread(); e < total; e += step) acc[e] = T::ld(x[e]);
}

template <class T>
RL_DEV void scatter_add_cols(typename T::C* __restrict__ acc, const int* __restrict__ idx, const typename T::S* __restrict__ upd,
                             i64 outer, i64 n, i64 J, i64 inner, int along) {
  const i64 step = grid_threads();
  for (i64 c = global_thread(); c < outer * inner; c += step) {
    const i64 o = c / inner, i = c - o * inner;
    for (i64 j = 0; j < J; j++) {
      const i64 u = (o * J + j) * inner + i;
      const i64 t = wrap_index(along ? idx[u] : idx[j], n);
      if (t < 0) continue;
      typename T::C* dst = acc + (o * n + t) * inner + i;
      if (T::is_float) *dst = *dst + T::ld(upd[u]);
      else *dst = (typename T::C)((u32)*dst + (u32)T::ld(upd[u]));
    }
  }
}

template <class T>
RL_DEV void scatter_store(const typename T::C* __restrict__ acc, typename T::S* __restrict__ y, i64 total) {
  const i64 step = grid_threads();
  for (i64 e = global_thread(); e < total; e += step) y[e] = T::st(acc[e], false);
}

// out[j, c] = idx[j] == c (one/zero are the dtype's raw codes for 1 and 0).
template <class W>
RL_DEV void one_hot(const int* __restrict__ idx, W* __restrict__ y, i64 J, i64 depth, W one) {
  const i64 step = grid_threads();
  for (i64 e = global_thread(); e < J * depth; e += step) {
    const i64 j = e / depth, c = e - j * depth;
    y[e] = (i64)idx[j] == c ? one : (W)0;
  }
}

// topk along the middle axis of [outer, n, inner]. The rank of element p is the number of
// elements ordered before it: (largest) NaN first, then larger values; ties (and NaN ties) by
// lower index. Elements of rank < k land at position rank. O(n^2) per row, in shared-memory tiles.
template <class T, bool LARGEST>
RL_DEV bool topk_before(typename T::C a, i64 ia, typename T::C b, i64 ib) {
  const bool an = a != a, bn = b != b;
  if (an || bn) {
    if (an && bn) return ia < ib;
    return LARGEST ? an : bn; // NaN ranks above every number
  }
  if (a == b) return ia < ib;
  return LARGEST ? a > b : a < b;
}

template <class T, bool LARGEST>
RL_DEV void topk_rank(const typename T::S* __restrict__ x, typename T::S* __restrict__ vals, int* __restrict__ inds,
                      i64 outer, i64 n, i64 inner, i64 k) {
  typedef typename T::C C;
  __shared__ C tile[256];
  const i64 row = blockIdx.x; // (o, i) pair
  const i64 o = row / inner, i = row - o * inner;
  const typename T::S* xr = x + o * n * inner + i;
  for (i64 p0 = 0; p0 < n; p0 += blockDim.x) {
    const i64 p = p0 + threadIdx.x;
    const C v = p < n ? T::ld(xr[p * inner]) : (C)0;
    i64 rank = 0;
    for (i64 q0 = 0; q0 < n; q0 += 256) {
      __syncthreads();
      if (q0 + threadIdx.x < n && threadIdx.x < 256) tile[threadIdx.x] = T::ld(xr[(q0 + threadIdx.x) * inner]);
      __syncthreads();
      const i64 qn = n - q0 < 256 ? n - q0 : 256;
      if (p < n)
        for (i64 q = 0; q < qn; q++) rank += topk_before<T, LARGEST>(tile[q], q0 + q, v, p) ? 1 : 0;
    }
    if (p < n && rank < k) {
      const i64 at = (o * k + rank) * inner + i;
      vals[at] = xr[p * inner];
      inds[at] = (int)p;
    }
  }
}

// Running sums along the middle axis of [outer, n, inner], one thread per column; floats
// accumulate in f32 and each output is rounded once; i32 wraps.
template <class T>
RL_DEV void cumsum_cols(const typename T::S* __restrict__ x, typename T::S* __restrict__ y, i64 outer, i64 n, i64 inner,
                        int exclusive, int reverse) {
  typedef typename T::C C;
  const i64 step = grid_threads();
  for (i64 c = global_thread(); c < outer * inner; c += step) {
    const i64 o = c / inner, i = c - o * inner;
    const i64 base = o * n * inner + i;
    C acc = (C)0;
    for (i64 s = 0; s < n; s++) {
      const i64 k = reverse ? n - 1 - s : s;
      const C v = T::ld(x[base + k * inner]);
      if (exclusive) y[base + k * inner] = T::st(acc, false);
      if (T::is_float) acc = acc + v;
      else acc = (C)((u32)acc + (u32)v);
      if (!exclusive) y[base + k * inner] = T::st(acc, false);
    }
  }
}

#endif  // RING_LINEAR_INDEXING_CUH
