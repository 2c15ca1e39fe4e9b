// Shared device code of the ring-linear CUDA kernels: integer types, dtype traits with bit-exact
// conversions, vector access and index helpers.
//
// Compiled by NVRTC at run time (with -default-device) and by nvcc in CI, so every function is
// marked __device__ explicitly and nothing here includes a C++ standard header. Every header has
// include guards besides #pragma once: NVRTC's in-memory headers have no file identity.
#pragma once
#ifndef RING_LINEAR_COMMON_CUH
#define RING_LINEAR_COMMON_CUH
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef long long i64;
typedef unsigned long long u64;

#define RL_DEV __device__ __forceinline__
#define RL_MAX_RANK 8

// ---------------------------------------------------------------------------------------------
// Float encodings. These follow @ring-linear/core's codecs bit for bit (packages/core/src/dtype/
// codecs.ts): round to nearest even from f32; NaN -> the canonical NaN code with the input's sign;
// overflow -> inf (f16, bf16, E5M2) or NaN (E4M3FN, which has no inf) unless saturating, in which
// case +-max finite. CUDA's own fp8 intrinsics saturate differently (the PTX cvt to e4m3/e5m2 only
// exists in .satfinite form), so the FP8 encoders are written out here.

RL_DEV float f16_to_f32(u16 c) { return __half2float(__ushort_as_half(c)); }
RL_DEV float bf16_to_f32(u16 c) { return __uint_as_float(((u32)c) << 16); }
RL_DEV float e4m3_to_f32(u8 c) {
  __half_raw h = __nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)c, __NV_E4M3);
  return __half2float(__half(h));
}
// E5M2 is the top byte of an IEEE binary16 with the same exponent bias.
RL_DEV float e5m2_to_f32(u8 c) { return f16_to_f32((u16)(((u32)c) << 8)); }

// Magnitude code of a non-negative, non-NaN f32 pattern `a` in a format with `mbits` mantissa bits
// and exponent bias `bias`, ties to even; results past the format's top are returned as larger
// codes and the caller decides what overflow means (codecs.ts roundMagnitude).
RL_DEV u32 round_magnitude(u32 a, int mbits, int bias) {
  const u32 e = a >> 23;
  const int shift = 23 - mbits;
  if ((int)e >= 128 - bias) {
    const u32 rounded = a + ((1u << (shift - 1)) - 1u) + ((a >> shift) & 1u);
    return (rounded >> shift) - ((u32)(127 - bias) << mbits);
  }
  const u32 ee = e == 0 ? 1u : e;
  const u32 sig = e == 0 ? a : ((a & 0x7fffffu) | 0x800000u);
  const int s = 151 - bias - mbits - (int)ee;
  if (s > 24) return 0u;
  const u32 q = sig >> s;
  const u32 rem = sig & ((1u << s) - 1u);
  const u32 half = 1u << (s - 1);
  return (rem > half || (rem == half && (q & 1u))) ? q + 1u : q;
}

RL_DEV u16 f32_to_f16(float x, bool sat) {
  const u32 u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)(((u >> 16) & 0x8000u) | 0x7e00u);
  u16 h = __half_as_ushort(__float2half_rn(x)); // hardware RNE; overflow -> inf
  if (sat && (h & 0x7fffu) == 0x7c00u) h = (u16)((h & 0x8000u) | 0x7bffu);
  return h;
}

RL_DEV u16 f32_to_bf16(float x, bool sat) {
  const u32 u = __float_as_uint(x);
  const u32 sign = (u >> 16) & 0x8000u;
  const u32 a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (u16)(sign | 0x7fc0u);
  u32 mag = (a + 0x7fffu + ((a >> 16) & 1u)) >> 16;
  if (sat && mag > 0x7f7fu) mag = 0x7f7fu;
  return (u16)(sign | mag);
}

RL_DEV u8 f32_to_e4m3(float x, bool sat) {
  const u32 u = __float_as_uint(x);
  const u32 sign = (u >> 24) & 0x80u;
  const u32 a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (u8)(sign | 0x7fu);
  const u32 mag = round_magnitude(a, 3, 7);
  return (u8)(sign | (mag > 0x7eu ? (sat ? 0x7eu : 0x7fu) : mag));
}

RL_DEV u8 f32_to_e5m2(float x, bool sat) {
  const u32 u = __float_as_uint(x);
  const u32 sign = (u >> 24) & 0x80u;
  const u32 a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (u8)(sign | 0x7fu);
  const u32 mag = round_magnitude(a, 2, 15);
  return (u8)(sign | (mag > 0x7bu ? (sat ? 0x7bu : 0x7cu) : mag));
}

// float -> integer as core's cast defines it: truncate toward zero, NaN/inf -> 0, then wrap modulo
// 2^32 (JavaScript's ToInt32 of the truncated value).
RL_DEV int f64_to_i32_wrap(double v) {
  if (!(fabs(v) <= 1.7976931348623157e308)) return 0; // NaN or +-inf
  const double t = trunc(v);
  const double m = fmod(t, 4294967296.0); // exact, in (-2^32, 2^32)
  return (int)(u32)(i64)m;
}

// ---------------------------------------------------------------------------------------------
// dtype traits: S = storage type, C = compute type; ld decodes, st encodes (sat: saturating FP).

struct F32 {
  static const bool is_bool = false;
  typedef float S; typedef float C;
  static const bool is_float = true;
  static RL_DEV C ld(S v) { return v; }
  static RL_DEV S st(C v, bool) { return v; }
};
struct F16 {
  static const bool is_bool = false;
  typedef u16 S; typedef float C;
  static const bool is_float = true;
  static RL_DEV C ld(S v) { return f16_to_f32(v); }
  static RL_DEV S st(C v, bool sat) { return f32_to_f16(v, sat); }
};
struct BF16 {
  static const bool is_bool = false;
  typedef u16 S; typedef float C;
  static const bool is_float = true;
  static RL_DEV C ld(S v) { return bf16_to_f32(v); }
  static RL_DEV S st(C v, bool sat) { return f32_to_bf16(v, sat); }
};
struct E4M3 {
  static const bool is_bool = false;
  typedef u8 S; typedef float C;
  static const bool is_float = true;
  static RL_DEV C ld(S v) { return e4m3_to_f32(v); }
  static RL_DEV S st(C v, bool sat) { return f32_to_e4m3(v, sat); }
};
struct E5M2 {
  static const bool is_bool = false;
  typedef u8 S; typedef float C;
  static const bool is_float = true;
  static RL_DEV C ld(S v) { return e5m2_to_f32(v); }
  static RL_DEV S st(C v, bool sat) { return f32_to_e5m2(v, sat); }
};
struct I32 {
  static const bool is_bool = false;
  typedef int S; typedef int C;
  static const bool is_float = false;
  static RL_DEV C ld(S v) { return v; }
  static RL_DEV S st(C v, bool) { return v; }
};
// u8 computes in int; storing keeps the low byte (wraps modulo 256 like a Uint8Array).
struct U8 {
  static const bool is_bool = false;
  typedef u8 S; typedef int C;
  static const bool is_float = false;
  static RL_DEV C ld(S v) { return (int)v; }
  static RL_DEV S st(C v, bool) { return (u8)(u32)v; }
};
struct BOOL {
  static const bool is_bool = true;
  typedef u8 S; typedef int C;
  static const bool is_float = false;
  static RL_DEV C ld(S v) { return v != 0; }
  static RL_DEV S st(C v, bool) { return (u8)(v != 0); }
};

// Conversion between any two dtypes, as core's `cast` defines it.
template <class FROM, class TO, bool FF = FROM::is_float, bool TF = TO::is_float> struct Convert;
template <class FROM, class TO> struct Convert<FROM, TO, true, true> {
  static RL_DEV typename TO::S run(typename FROM::S v, bool sat) { return TO::st(FROM::ld(v), sat); }
};
template <class FROM, class TO> struct Convert<FROM, TO, false, true> {
  static RL_DEV typename TO::S run(typename FROM::S v, bool sat) { return TO::st((float)FROM::ld(v), sat); }
};
template <class FROM, class TO> struct Convert<FROM, TO, true, false> {
  static RL_DEV typename TO::S run(typename FROM::S v, bool) {
    const float f = FROM::ld(v);
    if (TO::is_bool) return (typename TO::S)(f != 0.0f); // x != 0, true for NaN
    return TO::st(f64_to_i32_wrap((double)f), false);
  }
};
template <class FROM, class TO> struct Convert<FROM, TO, false, false> {
  static RL_DEV typename TO::S run(typename FROM::S v, bool) { return TO::st(FROM::ld(v), false); }
};

// ---------------------------------------------------------------------------------------------
// Vector access: V elements of S as one aligned load/store (16 bytes at most).

template <class S, int V> struct alignas(sizeof(S) * V) Vec { S e[V]; };

template <int A, int B> struct MaxInt { static const int value = A > B ? A : B; };

// Elements per thread-iteration so that the widest of the involved storage types moves 16 bytes.
template <class A, class B> struct VecWidth { static const int value = 16 / MaxInt<sizeof(A), sizeof(B)>::value; };

RL_DEV i64 global_thread() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }
RL_DEV i64 grid_threads() { return (i64)gridDim.x * blockDim.x; }

// Broadcast/strided index description: up to RL_MAX_RANK dims (innermost last); per-operand
// element strides (0 where an operand is broadcast, negative for flips) and base offsets. Laid out
// exactly as the TypeScript side writes it (src/ops/strides.ts): int rank, int idx32,
// i64 shape[8], i64 stride[4][8], i64 offset[4] (360 bytes).
struct Strides {
  int rank;
  int idx32; // 1 when every offset fits in 32 bits (cheaper index math)
  i64 shape[RL_MAX_RANK];
  i64 stride[4][RL_MAX_RANK];
  i64 offset[4];
};

// Offsets of flat output index i in each of the first N operands.
template <int N, class IDX> RL_DEV void strided_offsets(const Strides& p, IDX i, IDX* off) {
#pragma unroll
  for (int k = 0; k < N; k++) off[k] = (IDX)p.offset[k];
  for (int d = p.rank - 1; d >= 0; d--) {
    const IDX dim = (IDX)p.shape[d];
    const IDX q = i / dim;
    const IDX r = i - q * dim;
    i = q;
#pragma unroll
    for (int k = 0; k < N; k++) off[k] += r * (IDX)p.stride[k][d];
  }
}

template <class T> RL_DEV T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class T> RL_DEV T warp_max(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

#endif  // RING_LINEAR_COMMON_CUH
