// Reductions over the middle axis of a [outer, R, inner] view (the TypeScript side coalesces the
// reduced axes into R, or permutes them there first). An accumulator (ACC) defines the state,
// how a value is added, how two states combine (associative; index ties go to the lower index,
// so results do not depend on the thread layout), a warp shuffle and the final store.
//
// Kernels (each deterministic: a fixed thread arrangement per shape):
//   reduce_warp:    inner == 1 and short rows: one warp per row, shuffles only.
//   reduce_block:   any shape: block (TX, TY), TX columns x TY lanes along R; rows use warp
//                   shuffles then shared memory; R may be split across gridDim.y chunks, whose
//                   partial states are combined by reduce_final.
#pragma once
#ifndef RING_LINEAR_REDUCE_CUH
#define RING_LINEAR_REDUCE_CUH
#include "common.cuh"

#define RL_NEG_INF __int_as_float(0xff800000)
#define RL_POS_INF __int_as_float(0x7f800000)
#define RL_NAN __int_as_float(0x7fc00000)

template <class T> struct SumAccF {
  typedef float A;
  typedef typename T::S OutS;
  static RL_DEV A init() { return 0.0f; }
  static RL_DEV A add(A a, float v, i64) { return a + v; }
  static RL_DEV A combine(A a, A b) { return a + b; }
  static RL_DEV A shfl(A a, int o) { return __shfl_xor_sync(0xffffffffu, a, o); }
  static RL_DEV OutS out(A a, i64) { return T::st(a, false); }
};
template <class T> struct MeanAccF : SumAccF<T> {
  typedef typename T::S OutS;
  static RL_DEV OutS out(float a, i64 count) { return T::st(a / (float)count, false); }
};
// Integer sums accumulate in 64 bits and wrap to 32 at the end (exact modulo 2^32).
template <class T> struct SumAccI {
  typedef i64 A;
  typedef typename T::S OutS;
  static RL_DEV A init() { return 0; }
  static RL_DEV A add(A a, int v, i64) { return a + v; }
  static RL_DEV A combine(A a, A b) { return a + b; }
  static RL_DEV A shfl(A a, int o) { return __shfl_xor_sync(0xffffffffu, a, o); }
  static RL_DEV OutS out(A a, i64) { return T::st((int)(u32)(u64)a, false); }
};

// max/min: NaN propagates (a NaN state never changes; a NaN value always wins).
template <class T, bool MAX> struct ExtremeAcc {
  typedef typename T::C A;
  typedef typename T::S OutS;
  static RL_DEV A init() {
    if (T::is_float) return (A)(MAX ? RL_NEG_INF : RL_POS_INF);
    return (A)(MAX ? -2147483647 - 1 : 2147483647);
  }
  static RL_DEV A combine(A a, A b) {
    if (a != a) return a;
    if (b != b) return b;
    return MAX ? (b > a ? b : a) : (b < a ? b : a);
  }
  static RL_DEV A add(A a, A v, i64) { return combine(a, v); }
  static RL_DEV A shfl(A a, int o) { return __shfl_xor_sync(0xffffffffu, a, o); }
  static RL_DEV OutS out(A a, i64) { return T::st(a, false); }
};

// logsumexp, online: state (m, s) means s * exp(m). Non-finite maxima pass through like the
// reference: all -inf -> -inf, any +inf -> +inf, any NaN -> NaN.
struct LseState {
  float m;
  float s;
};
template <class T> struct LseAcc {
  typedef LseState A;
  typedef typename T::S OutS;
  static RL_DEV A init() { A a; a.m = RL_NEG_INF; a.s = 0.0f; return a; }
  static RL_DEV A combine(A a, A b) {
    A r;
    if (a.m != a.m || b.m != b.m) { r.m = RL_NAN; r.s = 0.0f; return r; }
    r.m = fmaxf(a.m, b.m);
    if (r.m == RL_NEG_INF) { r.s = 0.0f; return r; }
    if (r.m == RL_POS_INF) { r.s = 1.0f; return r; }
    r.s = a.s * expf(a.m - r.m) + b.s * expf(b.m - r.m);
    return r;
  }
  static RL_DEV A add(A a, float v, i64) { A b; b.m = v; b.s = 1.0f; return combine(a, b); }
  static RL_DEV A shfl(A a, int o) {
    A r;
    r.m = __shfl_xor_sync(0xffffffffu, a.m, o);
    r.s = __shfl_xor_sync(0xffffffffu, a.s, o);
    return r;
  }
  static RL_DEV OutS out(A a, i64) {
    const float v = (a.m == RL_POS_INF || a.m == RL_NEG_INF || a.m != a.m) ? a.m : a.m + logf(a.s);
    return T::st(v, false);
  }
};

// argmax/argmin: (value, index); ties and NaN ties go to the lower index; NaN is the extreme.
template <class C> struct ArgState {
  C v;
  int i;
};
template <class T, bool MAX> struct ArgAcc {
  typedef typename T::C C;
  typedef ArgState<C> A;
  typedef int OutS;
  static RL_DEV A init() { A a; a.v = (C)0; a.i = -1; return a; }
  static RL_DEV A combine(A a, A b) {
    if (a.i < 0) return b;
    if (b.i < 0) return a;
    const bool an = a.v != a.v, bn = b.v != b.v;
    if (an || bn) return (an && bn) ? (b.i < a.i ? b : a) : (an ? a : b);
    if (MAX ? b.v > a.v : b.v < a.v) return b;
    if (b.v == a.v && b.i < a.i) return b;
    return a;
  }
  static RL_DEV A add(A a, C v, i64 r) { A b; b.v = v; b.i = (int)r; return combine(a, b); }
  static RL_DEV A shfl(A a, int o) {
    A r;
    r.v = __shfl_xor_sync(0xffffffffu, a.v, o);
    r.i = __shfl_xor_sync(0xffffffffu, a.i, o);
    return r;
  }
  static RL_DEV OutS out(A a, i64) { return a.i; }
};

template <class ACC> RL_DEV typename ACC::A warp_combine(typename ACC::A a) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) a = ACC::combine(a, ACC::shfl(a, o));
  return a;
}

// One warp per row of length R (inner == 1); blockDim (32, 8).
template <class T, class ACC>
RL_DEV void reduce_warp(const typename T::S* __restrict__ x, typename ACC::OutS* __restrict__ y, i64 rows, i64 R) {
  const i64 row = (i64)blockIdx.x * blockDim.y + threadIdx.y;
  if (row >= rows) return;
  const typename T::S* xr = x + row * R;
  typename ACC::A a = ACC::init();
#pragma unroll 4
  for (i64 r = threadIdx.x; r < R; r += 32) a = ACC::add(a, T::ld(xr[r]), r);
  a = warp_combine<ACC>(a);
  if (threadIdx.x == 0) y[row] = ACC::out(a, R);
}

// Block (TX, TY) with TX * TY == 256. grid.x = outer * ceil(inner / TX), grid.y = number of R chunks.
template <class T, class ACC>
RL_DEV void reduce_block(const typename T::S* __restrict__ x, typename ACC::OutS* __restrict__ y,
                         typename ACC::A* __restrict__ partial, i64 outer, i64 R, i64 inner, i64 chunk) {
  typedef typename ACC::A A;
  __shared__ __align__(16) unsigned char smem_raw[256 * sizeof(A)];
  A* sh = reinterpret_cast<A*>(smem_raw);
  const int TX = blockDim.x, TY = blockDim.y;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const i64 colBlocks = (inner + TX - 1) / TX;
  const i64 o = blockIdx.x / colBlocks;
  const i64 col = (blockIdx.x - o * colBlocks) * TX + tx;
  const i64 r0 = (i64)blockIdx.y * chunk;
  const i64 r1 = r0 + chunk < R ? r0 + chunk : R;
  A a = ACC::init();
  typedef typename T::S S;
  const int V = 16 / sizeof(S);
  if (TX == 1 && R % V == 0 && chunk % V == 0) {
    // Contiguous rows: 16-byte vector loads (the row start and chunk bounds are multiples of V).
    const Vec<S, V>* base = reinterpret_cast<const Vec<S, V>*>(x + o * R);
#pragma unroll 2
    for (i64 v = r0 / V + ty; v < r1 / V; v += TY) {
      const Vec<S, V> e = base[v];
#pragma unroll
      for (int j = 0; j < V; j++) a = ACC::add(a, T::ld(e.e[j]), v * V + j);
    }
  } else if (col < inner) {
    const S* base = x + o * R * inner + col;
#pragma unroll 4
    for (i64 r = r0 + ty; r < r1; r += TY) a = ACC::add(a, T::ld(base[r * inner]), r);
  }
  if (TX == 1) {
    // A row: lanes of a warp hold consecutive r; shuffle, then combine the warps' results.
    a = warp_combine<ACC>(a);
    const int warp = ty >> 5, nwarps = TY >> 5;
    if ((ty & 31) == 0) sh[warp] = a;
    __syncthreads();
    if (ty < 32) {
      a = ty < nwarps ? sh[ty] : ACC::init();
      a = warp_combine<ACC>(a);
    }
  } else {
    sh[ty * TX + tx] = a;
    __syncthreads();
    for (int s = TY >> 1; s > 0; s >>= 1) {
      if (ty < s) sh[ty * TX + tx] = ACC::combine(sh[ty * TX + tx], sh[(ty + s) * TX + tx]);
      __syncthreads();
    }
    a = sh[tx];
  }
  if (ty == 0 && col < inner) {
    if (gridDim.y == 1) y[o * inner + col] = ACC::out(a, R);
    else partial[(i64)blockIdx.y * outer * inner + o * inner + col] = a;
  }
}

// Combines the P partial states of each output (M = outer * inner outputs).
template <class T, class ACC>
RL_DEV void reduce_final(const typename ACC::A* __restrict__ partial, typename ACC::OutS* __restrict__ y, i64 M, i64 P, i64 R) {
  const i64 step = grid_threads();
  for (i64 j = global_thread(); j < M; j += step) {
    typename ACC::A a = ACC::init();
    for (i64 p = 0; p < P; p++) a = ACC::combine(a, partial[p * M + j]);
    y[j] = ACC::out(a, R);
  }
}

#endif  // RING_LINEAR_REDUCE_CUH
