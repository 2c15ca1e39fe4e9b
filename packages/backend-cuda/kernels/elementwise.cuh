// Elementwise kernel bodies. The op functors (struct with static f(...)) and the extern "C"
// entry points are generated from the op table in src/kernels/sources.ts; these templates do the
// memory access: 16-byte vector loads/stores for contiguous operands, stride arithmetic for
// broadcasting and data movement (32-bit index math when the TypeScript side says offsets fit).
#pragma once
#ifndef RING_LINEAR_ELEMENTWISE_CUH
#define RING_LINEAR_ELEMENTWISE_CUH
#include "common.cuh"

template <class T, class OP>
RL_DEV void unary_contig(const typename T::S* __restrict__ x, typename T::S* __restrict__ y, i64 n) {
  typedef typename T::S S;
  const int V = VecWidth<S, S>::value;
  const i64 nv = n / V;
  const i64 step = grid_threads();
  for (i64 i = global_thread(); i < nv; i += step) {
    const Vec<S, V> vx = reinterpret_cast<const Vec<S, V>*>(x)[i];
    Vec<S, V> vy;
#pragma unroll
    for (int j = 0; j < V; j++) vy.e[j] = T::st(OP::f(T::ld(vx.e[j])), false);
    reinterpret_cast<Vec<S, V>*>(y)[i] = vy;
  }
  for (i64 i = nv * V + global_thread(); i < n; i += step) y[i] = T::st(OP::f(T::ld(x[i])), false);
}

template <class TI, class TO, class OP>
RL_DEV void binary_contig(const typename TI::S* __restrict__ a, const typename TI::S* __restrict__ b,
                          typename TO::S* __restrict__ y, i64 n) {
  typedef typename TI::S SI;
  typedef typename TO::S SO;
  typedef typename TO::C CO;
  const int V = VecWidth<SI, SO>::value;
  const i64 nv = n / V;
  const i64 step = grid_threads();
  for (i64 i = global_thread(); i < nv; i += step) {
    const Vec<SI, V> va = reinterpret_cast<const Vec<SI, V>*>(a)[i];
    const Vec<SI, V> vb = reinterpret_cast<const Vec<SI, V>*>(b)[i];
    Vec<SO, V> vy;
#pragma unroll
    for (int j = 0; j < V; j++) vy.e[j] = TO::st((CO)OP::f(TI::ld(va.e[j]), TI::ld(vb.e[j])), false);
    reinterpret_cast<Vec<SO, V>*>(y)[i] = vy;
  }
  for (i64 i = nv * V + global_thread(); i < n; i += step) y[i] = TO::st((CO)OP::f(TI::ld(a[i]), TI::ld(b[i])), false);
}

// One operand a scalar (a broadcast single element): the common "x * 2" case, vectorized.
template <class TI, class TO, class OP, bool SCALAR_FIRST>
RL_DEV void binary_scalar(const typename TI::S* __restrict__ a, const typename TI::S* __restrict__ b,
                          typename TO::S* __restrict__ y, i64 n) {
  typedef typename TI::S SI;
  typedef typename TO::S SO;
  typedef typename TO::C CO;
  typedef typename TI::C CI;
  const int V = VecWidth<SI, SO>::value;
  const CI s = SCALAR_FIRST ? TI::ld(a[0]) : TI::ld(b[0]);
  const typename TI::S* v = SCALAR_FIRST ? b : a;
  const i64 nv = n / V;
  const i64 step = grid_threads();
  for (i64 i = global_thread(); i < nv; i += step) {
    const Vec<SI, V> vv = reinterpret_cast<const Vec<SI, V>*>(v)[i];
    Vec<SO, V> vy;
#pragma unroll
    for (int j = 0; j < V; j++) {
      const CI t = TI::ld(vv.e[j]);
      vy.e[j] = TO::st((CO)(SCALAR_FIRST ? OP::f(s, t) : OP::f(t, s)), false);
    }
    reinterpret_cast<Vec<SO, V>*>(y)[i] = vy;
  }
  for (i64 i = nv * V + global_thread(); i < n; i += step) {
    const CI t = TI::ld(v[i]);
    y[i] = TO::st((CO)(SCALAR_FIRST ? OP::f(s, t) : OP::f(t, s)), false);
  }
}

template <class TI, class TO, class OP>
RL_DEV void binary_bcast(const typename TI::S* __restrict__ a, const typename TI::S* __restrict__ b,
                         typename TO::S* __restrict__ y, i64 n, const Strides& p) {
  typedef typename TO::C CO;
  if (p.idx32) {
    const int step = (int)grid_threads();
    for (int i = (int)global_thread(); i < (int)n; i += step) {
      int off[2];
      strided_offsets<2, int>(p, i, off);
      y[i] = TO::st((CO)OP::f(TI::ld(a[off[0]]), TI::ld(b[off[1]])), false);
    }
  } else {
    const i64 step = grid_threads();
    for (i64 i = global_thread(); i < n; i += step) {
      i64 off[2];
      strided_offsets<2, i64>(p, i, off);
      y[i] = TO::st((CO)OP::f(TI::ld(a[off[0]]), TI::ld(b[off[1]])), false);
    }
  }
}

template <class FROM, class TO>
RL_DEV void cast_contig(const typename FROM::S* __restrict__ x, typename TO::S* __restrict__ y, i64 n, int sat) {
  typedef typename FROM::S SI;
  typedef typename TO::S SO;
  const int V = VecWidth<SI, SO>::value;
  const bool s = sat != 0;
  const i64 nv = n / V;
  const i64 step = grid_threads();
  for (i64 i = global_thread(); i < nv; i += step) {
    const Vec<SI, V> vx = reinterpret_cast<const Vec<SI, V>*>(x)[i];
    Vec<SO, V> vy;
#pragma unroll
    for (int j = 0; j < V; j++) vy.e[j] = Convert<FROM, TO>::run(vx.e[j], s);
    reinterpret_cast<Vec<SO, V>*>(y)[i] = vy;
  }
  for (i64 i = nv * V + global_thread(); i < n; i += step) y[i] = Convert<FROM, TO>::run(x[i], s);
}

// clip: bounds compared in double like the reference; integer dtypes get bounds pre-rounded
// inward (ceil(min), floor(max)) by the caller and store through the wrapping integer conversion.
template <class T>
RL_DEV void clip_contig(const typename T::S* __restrict__ x, typename T::S* __restrict__ y, i64 n, double lo, double hi) {
  const i64 step = grid_threads();
  for (i64 i = global_thread(); i < n; i += step) {
    const double v = (double)T::ld(x[i]);
    const double r = v < lo ? lo : (v > hi ? hi : v);
    if (T::is_float) y[i] = T::st((typename T::C)(float)r, false);
    else y[i] = T::st((typename T::C)f64_to_i32_wrap(r), false);
  }
}

// Raw data movement (exact for every dtype): W is the element's storage width type.
template <class W>
RL_DEV void strided_copy(const W* __restrict__ src, W* __restrict__ dst, i64 n, const Strides& p) {
  if (p.idx32) {
    const int step = (int)grid_threads();
    for (int i = (int)global_thread(); i < (int)n; i += step) {
      int off[2];
      strided_offsets<2, int>(p, i, off);
      dst[off[1]] = src[off[0]];
    }
  } else {
    const i64 step = grid_threads();
    for (i64 i = global_thread(); i < n; i += step) {
      i64 off[2];
      strided_offsets<2, i64>(p, i, off);
      dst[off[1]] = src[off[0]];
    }
  }
}

// where(cond, a, b): operands 0 = cond, 1 = a, 2 = b; output contiguous.
template <class W>
RL_DEV void where_bcast(const u8* __restrict__ c, const W* __restrict__ a, const W* __restrict__ b, W* __restrict__ y,
                        i64 n, const Strides& p) {
  if (p.idx32) {
    const int step = (int)grid_threads();
    for (int i = (int)global_thread(); i < (int)n; i += step) {
      int off[3];
      strided_offsets<3, int>(p, i, off);
      y[i] = c[off[0]] ? a[off[1]] : b[off[2]];
    }
  } else {
    const i64 step = grid_threads();
    for (i64 i = global_thread(); i < n; i += step) {
      i64 off[3];
      strided_offsets<3, i64>(p, i, off);
      y[i] = c[off[0]] ? a[off[1]] : b[off[2]];
    }
  }
}

#endif  // RING_LINEAR_ELEMENTWISE_CUH
