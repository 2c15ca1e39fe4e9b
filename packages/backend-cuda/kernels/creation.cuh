// Creation kernels: Philox random draws, arange, causalMask.
//
// Philox4x32-10 and the way random ops use it are defined in packages/core/src/rng/philox.ts
// (Salmon et al., SC'11; Random123): element i uses the 64-bit counter offset + i (c0 = low word,
// c1 = high word, c2 = c3 = 0) and key (key0, key1). Uniform draws are bit-identical to the CPU.
#pragma once
#ifndef RING_LINEAR_CREATION_CUH
#define RING_LINEAR_CREATION_CUH
#include "common.cuh"

RL_DEV void philox4x32_10(u32 c0, u32 c1, u32 c2, u32 c3, u32 k0, u32 k1, u32* out) {
#pragma unroll
  for (int r = 0; r < 10; r++) {
    if (r > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const u32 hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const u32 hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    const u32 n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

RL_DEV void philox_element(u32 key0, u32 key1, u32 ctrLo, u32 ctrHi, i64 i, u32* out) {
  const u64 c = (((u64)ctrHi << 32) | ctrLo) + (u64)i; // wraps modulo 2^64
  philox4x32_10((u32)c, (u32)(c >> 32), 0u, 0u, key0, key1, out);
}

// low + (high - low) * u with each f32 operation rounded separately (no FMA contraction).
template <class T>
RL_DEV void random_uniform(typename T::S* __restrict__ y, i64 n, u32 key0, u32 key1, u32 ctrLo, u32 ctrHi, float low, float high) {
  const float d = __fsub_rn(high, low);
  const i64 step = grid_threads();
  for (i64 i = global_thread(); i < n; i += step) {
    u32 x[4];
    philox_element(key0, key1, ctrLo, ctrHi, i, x);
    const float u = (float)(x[0] >> 8) * 5.9604644775390625e-08f; // 2^-24
    y[i] = T::st(__fadd_rn(low, __fmul_rn(d, u)), false);
  }
}

// Box-Muller in double (as the CPU reference), rounded once to f32, then to the dtype.
template <class T>
RL_DEV void random_normal(typename T::S* __restrict__ y, i64 n, u32 key0, u32 key1, u32 ctrLo, u32 ctrHi, double mean, double std) {
  const i64 step = grid_threads();
  for (i64 i = global_thread(); i < n; i += step) {
    u32 x[4];
    philox_element(key0, key1, ctrLo, ctrHi, i, x);
    const double u1 = (double)((x[0] >> 8) + 1u) * 5.9604644775390625e-08;
    const double u2 = (double)(x[1] >> 8) * 5.9604644775390625e-08;
    const double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    y[i] = T::st((float)(mean + std * z), false);
  }
}

// start + i * step in double, then the cast rule of the dtype (floats: round to f32, then to T;
// i32: truncate and wrap).
template <class T>
RL_DEV void arange_fill(typename T::S* __restrict__ y, i64 n, double start, double step_) {
  const i64 step = grid_threads();
  for (i64 i = global_thread(); i < n; i += step) {
    const double v = start + (double)i * step_;
    if (T::is_float) y[i] = T::st((typename T::C)(float)v, false);
    else y[i] = T::st((typename T::C)f64_to_i32_wrap(v), false);
  }
}

// bool [rows, cols]: j <= i + offset.
RL_DEV void causal_mask_fill(u8* __restrict__ y, i64 rows, i64 cols, i64 offset) {
  const i64 step = grid_threads();
  for (i64 e = global_thread(); e < rows * cols; e += step) {
    const i64 i = e / cols, j = e - i * cols;
    y[e] = (u8)(j <= i + offset);
  }
}

#endif  // RING_LINEAR_CREATION_CUH
