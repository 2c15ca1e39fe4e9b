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
#include "nn.cuh"

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

// v2 kernels (HW = true) encode with the hardware conversion where the device has one (sm_89+:
// cvt.rn.satfinite.{e4m3,e5m2}x2.f32, two codes per instruction) instead of the bit-level
// encoder above, which costs about 25 instructions per element and made the v1 kernels
// instruction-bound (1x128 tiles: f32 and bf16 inputs took the same time for 1.7x the bytes).
// The two agree on every finite input: both round to nearest even, both saturate finite
// overflow to +-max (448 / 57344) and keep the sign of zero. They differ on NaN (the hardware
// gives the canonical NaN, the encoder keeps the sign) and, for E5M2, maybe on inf, so a group
// whose amax is not finite (x holds a NaN or an inf, and then so may x / scale) takes the
// encoder. With a finite amax the scale is a finite normal and every x / scale is finite.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
#define FP8_HW_CVT 1
#else
#define FP8_HW_CVT 0
#endif
template <class Q> struct Fp8Cvt2;
// PTX: cvt ... d, a, b puts the code of a in the upper byte of d and that of b in the lower.
template <> struct Fp8Cvt2<E4M3> {
  static RL_DEV u32 run(float lo, float hi) {
    unsigned short d;
#if FP8_HW_CVT
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(d) : "f"(hi), "f"(lo));
#else
    d = (unsigned short)(f32_to_e4m3(lo, true) | ((u32)f32_to_e4m3(hi, true) << 8));
#endif
    return d;
  }
};
template <> struct Fp8Cvt2<E5M2> {
  static RL_DEV u32 run(float lo, float hi) {
    unsigned short d;
#if FP8_HW_CVT
    asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(d) : "f"(hi), "f"(lo));
#else
    d = (unsigned short)(f32_to_e5m2(lo, true) | ((u32)f32_to_e5m2(hi, true) << 8));
#endif
    return d;
  }
};

// Two codes (lo in bits 0-7, hi in 8-15) of finite values. The sign bits are set from the
// inputs as the encoder sets them (sign | magnitude), so a -0 or a negative value that rounds to
// zero gives 0x80 whatever the conversion does with the sign of zero.
template <class Q> RL_DEV u32 fp8_cvt2(float lo, float hi) {
  const u32 sign = ((__float_as_uint(lo) >> 24) & 0x80u) | ((__float_as_uint(hi) >> 16) & 0x8000u);
  return Fp8Cvt2<Q>::run(lo, hi) | sign;
}

RL_DEV bool fp8_finite_amax(u32 amax_bits) { return amax_bits < 0x7f800000u; }

// Codes of N values (N even) with one scale, as fp8_code gives them. `finite`: the group's amax
// is finite (see above). With a power-of-two scale, x * (1 / scale) is the same correctly
// rounded value as x / scale: with a finite amax the scale is 2^k, -126 <= k <= 120, so 1 / scale
// is exact, and the product, like the quotient, is the exact x * 2^-k rounded once (subnormal
// results included: no flush to zero). One multiply instead of a division.
template <class Q, bool HW, int N> RL_DEV void fp8_codes(const float* v, float scale, bool finite, bool pow2, u8* c) {
  if (HW && finite) {
    const float inv = pow2 ? __fdiv_rn(1.0f, scale) : 0.0f;
#pragma unroll
    for (int j = 0; j < N; j += 2) {
      const float a = pow2 ? v[j] * inv : __fdiv_rn(v[j], scale);
      const float b = pow2 ? v[j + 1] * inv : __fdiv_rn(v[j + 1], scale);
      const u32 d = fp8_cvt2<Q>(a, b);
      c[j] = (u8)d;
      c[j + 1] = (u8)(d >> 8);
    }
  } else {
#pragma unroll
    for (int j = 0; j < N; j++) c[j] = fp8_code<Q>(v[j], scale);
  }
}

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

// store8 for v1 (HW = false: exactly the code above) and v2 (fp8_codes); `amax` is the group's.
template <class Q, bool HW>
RL_DEV void store8v(u8* __restrict__ q, i64 i, int valid, bool vec, const float* v, float scale, u32 amax, int pow2) {
  if (!HW) {
    store8<Q>(q, i, valid, vec, v, scale);
    return;
  }
  Vec<u8, 8> o;
  fp8_codes<Q, HW, 8>(v, scale, fp8_finite_amax(amax), pow2 != 0, o.e);
  if (vec && valid == 8) {
    *reinterpret_cast<Vec<u8, 8>*>(q + i) = o;
  } else {
#pragma unroll
    for (int j = 0; j < 8; j++)
      if (j < valid) q[i + j] = o.e[j];
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
// v3 division and code packing (used by the v3 kernels and the fused ones; see the v3 section).

// x / scale for every x of a group, correctly rounded (the IEEE quotient the scale rule names),
// from one reciprocal per group instead of a division per element: y = RN(1 / scale), then two
// corrections (Markstein):
//   q0 = RN(x y);  r0 = RN(x - scale q0);  q1 = RN(q0 + r0 y);  r1 = RN(x - scale q1);  q = RN(q1 + r1 y)
// q0 is within 1.5 ulps of x / scale; the first correction leaves q1 within one ulp (its own error
// is far below an ulp), so r1 is exact and q = RN(x / scale) by Markstein's theorem (y within half an
// ulp of 1 / scale, q1 a faithful quotient; J.-M. Muller et al., Handbook of Floating-Point
// Arithmetic, on division with a fused multiply-add). No underflow spoils r1: with scale >= 2^-80
// an |x| >= 2^-100 keeps x - scale q1 on the f32 grid, and a smaller |x| has |x / scale| < 2^-20,
// whose code is a zero of x's sign either way (the smallest FP8 subnormal is 2^-16); scale < 2^121
// keeps y normal. Groups with a smaller scale (amax < 448 * 2^-80) divide.
struct Fp8Divider {
  float s, y;
  bool fast;
  RL_DEV explicit Fp8Divider(float scale) : s(scale), y(__frcp_rn(scale)), fast(scale >= __int_as_float(47 << 23)) {}
  RL_DEV Fp8Divider(float scale, float rcp) : s(scale), y(rcp), fast(scale >= __int_as_float(47 << 23)) {}
  RL_DEV float operator()(float x) const {
    if (!fast) return __fdiv_rn(x, s);
    const float q0 = __fmul_rn(x, y);
    const float r0 = __fmaf_rn(-s, q0, x);
    const float q1 = __fmaf_rn(r0, y, q0);
    const float r1 = __fmaf_rn(-s, q1, x);
    return __fmaf_rn(r1, y, q1);
  }
};

// Two codes of quotients qlo, qhi of xlo, xhi (lo in bits 0-7): the sign bits from x, which are the
// IEEE quotients' signs (scale > 0) also where a quotient rounds to zero.
template <class Q> RL_DEV u32 fp8_cvt2x(float qlo, float qhi, float xlo, float xhi) {
  const u32 sign = ((__float_as_uint(xlo) >> 24) & 0x80u) | ((__float_as_uint(xhi) >> 16) & 0x8000u);
  return Fp8Cvt2<Q>::run(qlo, qhi) | sign;
}

// Codes of N values (N % 4 == 0) with one scale, as fp8_code gives them, packed 4 a word (element
// 4k in the low byte of w[k]). `amax`: the group's amax bits.
template <class Q, int N> RL_DEV void fp8_codes3(const float* v, float scale, u32 amax, int pow2, u32* w) {
  if (FP8_HW_CVT && fp8_finite_amax(amax)) {
    float q[N];
    if (pow2) {
      const float inv = __fdiv_rn(1.0f, scale); // exact: scale is a power of two (see fp8_codes)
#pragma unroll
      for (int j = 0; j < N; j++) q[j] = __fmul_rn(v[j], inv);
    } else {
      const Fp8Divider dv(scale);
#pragma unroll
      for (int j = 0; j < N; j++) q[j] = dv(v[j]);
    }
#pragma unroll
    for (int k = 0; k < N / 4; k++)
      w[k] = fp8_cvt2x<Q>(q[4 * k], q[4 * k + 1], v[4 * k], v[4 * k + 1]) | (fp8_cvt2x<Q>(q[4 * k + 2], q[4 * k + 3], v[4 * k + 2], v[4 * k + 3]) << 16);
  } else {
#pragma unroll
    for (int k = 0; k < N / 4; k++) {
      w[k] = (u32)fp8_code<Q>(v[4 * k], scale) | ((u32)fp8_code<Q>(v[4 * k + 1], scale) << 8) | ((u32)fp8_code<Q>(v[4 * k + 2], scale) << 16) |
             ((u32)fp8_code<Q>(v[4 * k + 3], scale) << 24);
    }
  }
}

// 8 values of raw storage as f32.
template <class T> RL_DEV void cvt8(const Vec<typename T::S, 8>& r, float* v) {
#pragma unroll
  for (int j = 0; j < 8; j++) v[j] = T::ld(r.e[j]);
}

// Quantizes one tile's 8 values of this lane (v[j] = 0 past the tile's end: the amax is the
// tile's): the half-warp's amax (every lane of the warp calls), the scale to *s (lane 0) and the
// codes to q (one 8-byte store when `vec` and 8 are valid, else `valid` single bytes) where
// `active`.
template <class Q>
RL_DEV void tile8_out(const float* v, bool active, int valid, bool vec, u8* __restrict__ q, float* __restrict__ s, int lane, int pow2) {
  const u32 m = half_warp_max(amax8(v));
  const float scale = fp8_scale<Q>(m, pow2);
  u32 w[2];
  fp8_codes3<Q, 8>(v, scale, m, pow2, w);
  if (!active) return;
  if (lane == 0) *s = scale;
  if (vec && valid == 8) {
    *reinterpret_cast<uint2*>(q) = make_uint2(w[0], w[1]);
  } else {
#pragma unroll
    for (int j = 0; j < 8; j++)
      if (j < valid) q[j] = (u8)(w[j >> 2] >> (8 * (j & 3)));
  }
}


// ---------------------------------------------------------------------------------------------
// Sources of row values for the 1x128 tile kernel: element (row, col0 .. col0+8) as f32.

// x [rows, K] itself.
template <class T> struct PlainRows {
  const typename T::S* x;
  i64 K;
  bool vec;
  RL_DEV void load(i64 row, i64 col0, int valid, float* v) const { load8<T>(x, row * K + col0, valid, vec, v); }
};

// silu and sigmoid as the composite's unary kernels compute them (src/kernels/sources.ts
// UNARY_EXPR, the same expressions, so the same f32 values).
RL_DEV float silu_f32(float x) { return x / (1.0f + expf(-x)); }
RL_DEV float sigmoid_f32(float x) { return 1.0f / (1.0f + expf(-x)); }

// silu(g) * u of gateUp [rows, 2I] = [g | u], each step one f32 rounding as the composite's unary
// silu kernel and mul kernel compute it.
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
template <class SRC, class Q, bool HW>
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
  store8v<Q, HW>(q, row * K + col0, valid, vec, v, scale, m, pow2);
}

template <class T, class Q, bool HW>
RL_DEV void fp8_quant_tiles(const typename T::S* __restrict__ x, u8* __restrict__ q, float* __restrict__ s, i64 rows, i64 K, int pow2) {
  const bool vec = K % 8 == 0 && aligned_to(x, 32) && aligned_to(q, 8);
  const PlainRows<T> src = {x, K, vec};
  tile_quant<PlainRows<T>, Q, HW>(src, q, s, rows, K, pow2, vec);
}

template <class T, class Q, bool HW>
RL_DEV void fp8_swiglu_quant(const typename T::S* __restrict__ gu, u8* __restrict__ q, float* __restrict__ s, i64 rows, i64 I, int pow2) {
  const bool vec = I % 8 == 0 && aligned_to(gu, 32) && aligned_to(q, 8);
  const SwigluRows<T> src = {gu, I, vec};
  tile_quant<SwigluRows<T>, Q, HW>(src, q, s, rows, I, pow2, vec);
}

// ---------------------------------------------------------------------------------------------
// One scale per row (layout 'row'): one block per row, the row read twice (the second time from
// L1/L2).
template <class T, class Q, bool HW>
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
  m = block_umax(m);
  const float scale = fp8_scale<Q>(m, pow2);
  if (threadIdx.x == 0) s[row] = scale;
  for (i64 c = (i64)threadIdx.x * 8; c < K; c += (i64)blockDim.x * 8) {
    const int valid = clamp8(K - c);
    load8<T>(x, base + c, valid, vec, v);
    store8v<Q, HW>(q, base + c, valid, vec, v, scale, m, pow2);
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

template <class T, class Q, bool HW>
RL_DEV void fp8_quant_tensor(const typename T::S* __restrict__ x, u8* __restrict__ q, float* __restrict__ s, const u32* __restrict__ amax, i64 n, int pow2) {
  const bool vec = aligned_to(x, 32) && aligned_to(q, 8);
  const u32 m = *amax;
  const float scale = fp8_scale<Q>(m, pow2);
  if (global_thread() == 0) s[0] = scale;
  float v[8];
  if (HW) {
    // v2 walks the 8-element groups from the end: the amax pass (a grid-stride loop from the
    // start) read the end of x last, so that part is still in L2 (50 MB on an H100) and is not
    // read from memory twice.
    const i64 groups = (n + 7) / 8;
    for (i64 g = global_thread(); g < groups; g += grid_threads()) {
      const i64 i = (groups - 1 - g) * 8;
      const int valid = clamp8(n - i);
      load8<T>(x, i, valid, vec, v);
      store8v<Q, HW>(q, i, valid, vec, v, scale, m, pow2);
    }
  } else {
    for (i64 i = global_thread() * 8; i < n; i += grid_threads() * 8) {
      const int valid = clamp8(n - i);
      load8<T>(x, i, valid, vec, v);
      store8<Q>(q, i, valid, vec, v, scale);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 128x128 blocks of the last two dims of x [B, N, K]: one block of 256 threads per 128x128 block
// (16 rows x 16 lanes of 8 columns per pass, 8 passes; v2: 512 threads, 32 rows, 4 passes),
// values kept in registers between the amax and the quantization, so x is read once.
// `nblocks` = B * NB * KB.

template <class T, class Q, bool HW>
RL_DEV void fp8_quant_blocks(const typename T::S* __restrict__ x, u8* __restrict__ q, float* __restrict__ s, i64 N, i64 K, i64 nblocks, int pow2) {
  typedef typename T::S S;
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
  if (HW) {
    // v2 runs 512 threads a block (the host launches it so), 32 rows per pass and 4 passes: 32
    // live floats a thread instead of 64, so twice the threads per SM and loads in flight.
    const int rr = threadIdx.x >> 4;
    float v[4][8];
    u32 m = 0u;
#pragma unroll
    for (int p = 0; p < 4; p++) {
      const i64 row = nb * FP8_TILE + p * 32 + rr;
      const int valid = row < N ? cvalid : 0;
      load8<T>(x, base + row * K + col0, valid, vec, v[p]);
      m = umax(m, amax8(v[p]));
    }
    m = block_umax(m);
    const float scale = fp8_scale<Q>(m, pow2);
    if (threadIdx.x == 0) s[blk] = scale;
#pragma unroll
    for (int p = 0; p < 4; p++) {
      const i64 row = nb * FP8_TILE + p * 32 + rr;
      if (row < N) store8v<Q, HW>(q, base + row * K + col0, cvalid, vec, v[p], scale, m, pow2);
    }
    return;
  }
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

// The values come from SRC (src.load(row, col0, valid, v): 8 values of x [M, K] as f32), so the
// fused SwiGLU backward quantizes its f32 gradient without writing it; `vec`: 8-byte code stores
// (K % 8 == 0, q aligned). FAST (v3x for f32): codes through fp8_codes3 / Fp8Divider
// (one reciprocal per row tile and per column) instead of a division per element.
template <class SRC, class Q, bool HW, bool FAST = false>
RL_DEV void quant_transpose_src(const SRC& src, u8* __restrict__ q, float* __restrict__ s, u8* __restrict__ qT,
                                float* __restrict__ sT, i64 M, i64 K, int pow2, bool vec) {
  __shared__ u32 colmax[16][FP8_TILE];
  __shared__ float colscale[FP8_TILE];
  __shared__ float colrcp[FP8_TILE];
  __shared__ bool colfinite[FP8_TILE];
  __shared__ __align__(16) u8 staged[FP8_TILE * FP8_QT_PITCH];
  const i64 MT = (M + FP8_TILE - 1) / FP8_TILE, KT = (K + FP8_TILE - 1) / FP8_TILE;
  const i64 mb = blockIdx.x / KT, kb = blockIdx.x % KT;
  if (mb >= MT) return;
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
    src.load(row, col0, in ? cvalid : 0, v[p]);
#pragma unroll
    for (int j = 0; j < 8; j++) cm[j] = umax(cm[j], abs_bits(v[p][j]));
    // The row's tile along K: this half-warp holds all of it.
    if (FAST) {
      tile8_out<Q>(v[p], in && cvalid > 0, cvalid, vec, q + row * K + col0, s + row * KT + kb, lane, pow2);
      continue;
    }
    const u32 rm = half_warp_max(amax8(v[p]));
    const float scale = fp8_scale<Q>(rm, pow2);
    if (in) {
      if (lane == 0) s[row * KT + kb] = scale;
      store8v<Q, HW>(q, row * K + col0, cvalid, vec, v[p], scale, rm, pow2);
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
    if (FAST) colrcp[threadIdx.x] = __frcp_rn(scale);
    colfinite[threadIdx.x] = fp8_finite_amax(m);
    const i64 k = kb * FP8_TILE + threadIdx.x;
    if (k < K) sT[k * MT + mb] = scale;
  }
  __syncthreads();
#pragma unroll
  for (int p = 0; p < 8; p++) {
    const int r = p * 16 + r0;
#pragma unroll
    for (int j = 0; j < 8; j += 2) {
      if (FAST && FP8_HW_CVT && colfinite[c0 + j] && colfinite[c0 + j + 1]) {
        const Fp8Divider da(colscale[c0 + j], colrcp[c0 + j]), db(colscale[c0 + j + 1], colrcp[c0 + j + 1]);
        const u32 d = fp8_cvt2x<Q>(da(v[p][j]), db(v[p][j + 1]), v[p][j], v[p][j + 1]);
        staged[(c0 + j) * FP8_QT_PITCH + r] = (u8)d;
        staged[(c0 + j + 1) * FP8_QT_PITCH + r] = (u8)(d >> 8);
      } else if (HW && FP8_HW_CVT && colfinite[c0 + j] && colfinite[c0 + j + 1]) {
        // Two columns' codes, each with its own scale, in one conversion (see fp8_codes).
        const u32 d = fp8_cvt2<Q>(__fdiv_rn(v[p][j], colscale[c0 + j]), __fdiv_rn(v[p][j + 1], colscale[c0 + j + 1]));
        staged[(c0 + j) * FP8_QT_PITCH + r] = (u8)d;
        staged[(c0 + j + 1) * FP8_QT_PITCH + r] = (u8)(d >> 8);
      } else {
        staged[(c0 + j) * FP8_QT_PITCH + r] = fp8_code<Q>(v[p][j], colscale[c0 + j]);
        staged[(c0 + j + 1) * FP8_QT_PITCH + r] = fp8_code<Q>(v[p][j + 1], colscale[c0 + j + 1]);
      }
    }
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

template <class T, class Q, bool HW, bool FAST = false>
RL_DEV void fp8_quant_transpose(const typename T::S* __restrict__ x, u8* __restrict__ q, float* __restrict__ s, u8* __restrict__ qT,
                                float* __restrict__ sT, i64 M, i64 K, int pow2) {
  const bool vec = K % 8 == 0 && aligned_to(x, 32) && aligned_to(q, 8);
  const PlainRows<T> src = {x, K, vec};
  quant_transpose_src<PlainRows<T>, Q, HW, FAST>(src, q, s, qT, sT, M, K, pow2, vec);
}

// v2 of quant+transpose for 2-byte inputs (f32 would need 64 KiB of staging; it keeps the kernel
// above with the hardware conversion). v1 spent its time in 64 single-byte shared stores per
// thread with 8-way bank conflicts, 4-byte global stores, and 64 live floats per thread (low
// occupancy). Here the block stages its 128x128 block of x itself (the raw 2-byte values, rows
// padded by 16 bytes, written with the 16-byte loads' data) and no codes:
//   phase 1 (as v1): half-warp per row tile, 8 rows per thread, codes of q from registers;
//   phase 2: thread (c = tid & 127, h = tid >> 7) reads column c, rows h*64 .. h*64+63, from
//            shared memory (a warp reads 64 consecutive bytes of a staged row: no conflicts),
//            the two halves' amax meet in shared memory, and the thread writes its 64 codes of
//            row k = kb*128 + c of qT as four 16-byte stores.
#define FP8_QT_XPITCH (FP8_TILE + 8)

template <class T, class Q>
RL_DEV void fp8_quant_transpose_staged(const typename T::S* __restrict__ x, u8* __restrict__ q, float* __restrict__ s, u8* __restrict__ qT,
                                       float* __restrict__ sT, i64 M, i64 K, int pow2) {
  typedef typename T::S S;
  static_assert(sizeof(S) == 2, "staged quant+transpose is for 2-byte inputs");
  __shared__ __align__(16) S xs[FP8_TILE * FP8_QT_XPITCH];
  __shared__ u32 colmax[2][FP8_TILE];
  const i64 MT = (M + FP8_TILE - 1) / FP8_TILE, KT = (K + FP8_TILE - 1) / FP8_TILE;
  const i64 mb = blockIdx.x / KT, kb = blockIdx.x % KT;
  if (mb >= MT) return;
  const bool vec = K % 8 == 0 && aligned_to(x, 16) && aligned_to(q, 8);
  const int r0 = threadIdx.x >> 4, lane = threadIdx.x & 15;
  const int c0 = lane * 8;
  const i64 col0 = kb * FP8_TILE + c0;
  const int cvalid = clamp8(K - col0);
#pragma unroll
  for (int p = 0; p < 8; p++) {
    const int r = p * 16 + r0;
    const i64 row = mb * FP8_TILE + r;
    const bool in = row < M;
    const int valid = in ? cvalid : 0;
    Vec<S, 8> raw;
    if (vec && valid == 8) {
      raw = *reinterpret_cast<const Vec<S, 8>*>(x + row * K + col0);
    } else {
#pragma unroll
      for (int j = 0; j < 8; j++) raw.e[j] = j < valid ? x[row * K + col0 + j] : (S)0; // 0 encodes +0
    }
    *reinterpret_cast<Vec<S, 8>*>(xs + r * FP8_QT_XPITCH + c0) = raw;
    float v[8];
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = T::ld(raw.e[j]);
    const u32 rm = half_warp_max(amax8(v));
    const float scale = fp8_scale<Q>(rm, pow2);
    if (in) {
      if (lane == 0) s[row * KT + kb] = scale;
      store8v<Q, true>(q, row * K + col0, valid, vec, v, scale, rm, pow2);
    }
  }
  __syncthreads();
  const int c = threadIdx.x & (FP8_TILE - 1), h = threadIdx.x >> 7;
  const S* col = xs + (h * 64) * FP8_QT_XPITCH + c;
  u32 m = 0u;
#pragma unroll 16
  for (int r = 0; r < 64; r++) m = umax(m, abs_bits(T::ld(col[r * FP8_QT_XPITCH])));
  colmax[h][c] = m;
  __syncthreads();
  m = umax(colmax[0][c], colmax[1][c]);
  const float scale = fp8_scale<Q>(m, pow2);
  const bool finite = fp8_finite_amax(m);
  const i64 k = kb * FP8_TILE + c;
  if (k >= K) return;
  if (h == 0) sT[k * MT + mb] = scale;
  const i64 m0 = mb * FP8_TILE + h * 64;
  const i64 mvalid = M - m0 < 64 ? M - m0 : 64; // may be <= 0 for the second half
  const bool vecT = M % 16 == 0 && aligned_to(qT, 16);
  u8* dst = qT + k * M + m0;
#pragma unroll
  for (int part = 0; part < 4; part++) {
    if (part * 16 >= mvalid) break;
    float v[16];
#pragma unroll
    for (int j = 0; j < 16; j++) v[j] = T::ld(col[(part * 16 + j) * FP8_QT_XPITCH]);
    Vec<u8, 16> o;
    fp8_codes<Q, true, 16>(v, scale, finite, pow2 != 0, o.e);
    if (vecT && mvalid - part * 16 >= 16) {
      *reinterpret_cast<Vec<u8, 16>*>(dst + part * 16) = o;
    } else {
      for (int j = 0; j < 16 && part * 16 + j < mvalid; j++) dst[part * 16 + j] = o.e[j];
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
  __shared__ float sh[33];
  const i64 row = blockIdx.x;
  if (row >= rows) return;
  const typename T::S* xr = x + row * d;
  const RowLoad<T> ld = {xr};
  const float inv = rms_block_inv(ld, d, (int)blockDim.x, eps, sh);
  const int warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
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
    for (int j = 0; j < 8; j++) v[j] = rms_apply(v[j], inv, wv[j]);
    const float scale = fp8_scale<Q>(half_warp_max(amax8(v)), pow2);
    if (t < NT) {
      if (lane == 0) s[row * NT + t] = scale;
      store8<Q>(q, row * d + col0, valid, vec, v, scale);
    }
  }
}

#define FP8_RMS_STAGE_BYTES 32768

// v2 of RMSNorm + quant. The rmsNorm kernel's summation order belongs to its block size B =
// rowThreads(d) (up to 1024 threads, one row a block: at most two rows per SM in flight). v2 runs
// R = min(B, 256) threads and lets each real thread r play the virtual threads r + R*j, j < B/R,
// of a B-thread block: virtual thread t sums x[t], x[t + B], ... in that order as before; since R
// is a multiple of 32, the virtual threads of one virtual warp sit in the lanes of one real warp
// (lane = t & 31), so the same shuffle sum gives each virtual warp's total, lane 0's value goes to
// sh[virtual warp], and the last step is v1's. The row is staged in shared memory as in
// fp8_rms_norm_quant<HW = true> (one read of x, 16-byte loads); up to six 256-thread rows per SM.
template <class T, class W, class Q>
RL_DEV void fp8_rms_norm_quant_v2(const typename T::S* __restrict__ x, const typename W::S* __restrict__ w, u8* __restrict__ q,
                                  float* __restrict__ s, i64 rows, i64 d, float eps, int pow2, int vthreads) {
  typedef typename T::S S;
  __shared__ float sh[33];
  __shared__ __align__(32) S xs[FP8_RMS_STAGE_BYTES / sizeof(S)];
  const i64 row = blockIdx.x;
  if (row >= rows) return;
  const S* xr = x + row * d;
  if (d % 8 == 0 && aligned_to(x, 16) && d * (i64)sizeof(S) <= FP8_RMS_STAGE_BYTES) {
    const int V = 16 / sizeof(S);
    for (i64 i = (i64)threadIdx.x * V; i < d; i += (i64)blockDim.x * V)
      *reinterpret_cast<Vec<S, 16 / sizeof(S)>*>(xs + i) = *reinterpret_cast<const Vec<S, 16 / sizeof(S)>*>(xr + i);
    __syncthreads();
    xr = xs;
  }
  const RowLoad<T> ld = {xr};
  const float inv = rms_block_inv(ld, d, vthreads, eps, sh);
  const int R = blockDim.x;
  const i64 NT = (d + FP8_TILE - 1) / FP8_TILE;
  const bool vec = d % 8 == 0 && aligned_to(x, 32) && aligned_to(q, 8); // (the staged copy is 32-byte aligned)
  const bool wvec = d % 8 == 0 && aligned_to(w, 32);
  const int warp = threadIdx.x >> 5, nwarps = (R + 31) >> 5;
  const int lane = threadIdx.x & 15, half = (threadIdx.x >> 4) & 1;
  for (i64 t0 = (i64)warp * 2; t0 < NT; t0 += (i64)nwarps * 2) {
    const i64 t = t0 + half;
    const i64 col0 = t * FP8_TILE + lane * 8;
    const int valid = t < NT ? clamp8(d - col0) : 0;
    float v[8], wv[8];
    load8<T>(xr, col0, valid, vec, v);
    load8<W>(w, col0, valid, wvec, wv);
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = rms_apply(v[j], inv, wv[j]);
    const u32 m = half_warp_max(amax8(v));
    const float scale = fp8_scale<Q>(m, pow2);
    if (t < NT) {
      if (lane == 0) s[row * NT + t] = scale;
      store8v<Q, true>(q, row * d + col0, valid, vec, v, scale, m, pow2);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// v3 kernels (the default; v2 and v1 stay selectable with RING_LINEAR_CUDA_FP8_KERNELS). v2 was
// instruction-bound: per element a full IEEE division (reciprocal, refinement, check, ~9
// instructions) and, in the tile kernels, 64-bit row/tile arithmetic; and each thread had one
// 16-byte load in flight. v3 divides with one reciprocal per group (below), finds tiles without
// divisions, keeps several 16-byte loads in flight per thread, holds RMSNorm rows in registers and
// transposes 2-byte inputs through shared memory in 4-byte words.

// 1x128 tiles of rows with K % 128 == 0 and 16-byte aligned x, 8-byte aligned q (the host routes
// other shapes to v2): tile h is x[128h .. 128h + 128) and its scale s[h], no row arithmetic. A
// half-warp quantizes U tiles h = hw + u * nhw (nhw: half-warps in the grid), all U loads issued
// before the first use (U * 16 bytes or more in flight per thread).
template <class T, class Q, int U>
RL_DEV void fp8_quant_tiles_v3(const typename T::S* __restrict__ x, u8* __restrict__ q, float* __restrict__ s, i64 tiles, int pow2) {
  typedef typename T::S S;
  const i64 hw = global_thread() >> 4, nhw = grid_threads() >> 4;
  const int lane = threadIdx.x & 15;
  Vec<S, 8> raw[U];
#pragma unroll
  for (int u = 0; u < U; u++) {
    const i64 h = hw + u * nhw;
    if (h < tiles) raw[u] = *reinterpret_cast<const Vec<S, 8>*>(x + h * FP8_TILE + lane * 8);
  }
#pragma unroll
  for (int u = 0; u < U; u++) {
    const i64 h = hw + u * nhw;
    if ((hw & ~(i64)1) + u * nhw >= tiles) break; // neither half of the warp has a tile (warp-uniform)
    const bool active = h < tiles;
    float v[8];
    if (active) cvt8<T>(raw[u], v);
    else
#pragma unroll
      for (int j = 0; j < 8; j++) v[j] = 0.0f;
    tile8_out<Q>(v, active, 8, true, q + h * FP8_TILE + lane * 8, s + h, lane, pow2);
  }
}

// SwiGLU + 1x128 quant for I % 128 == 0 and aligned pointers (else v2): tile h = (row, t) of h = silu(g) * u,
// U tiles a half-warp as above (2U 16-byte loads in flight per thread).
template <class T, class Q, int U>
RL_DEV void fp8_swiglu_quant_v3(const typename T::S* __restrict__ gu, u8* __restrict__ q, float* __restrict__ s, i64 rows, i64 I, int pow2) {
  typedef typename T::S S;
  const i64 T_ = I / FP8_TILE, tiles = rows * T_;
  const bool small = tiles <= 0xffffffffll; // 32-bit division (the usual case)
  const i64 hw = global_thread() >> 4, nhw = grid_threads() >> 4;
  const int lane = threadIdx.x & 15;
  Vec<S, 8> rg[U], ru[U];
#pragma unroll
  for (int u = 0; u < U; u++) {
    const i64 h = hw + u * nhw;
    if (h < tiles) {
      const i64 row = small ? (i64)((u32)h / (u32)T_) : h / T_;
      const S* p = gu + row * 2 * I + (h - row * T_) * FP8_TILE + lane * 8;
      rg[u] = *reinterpret_cast<const Vec<S, 8>*>(p);
      ru[u] = *reinterpret_cast<const Vec<S, 8>*>(p + I);
    }
  }
#pragma unroll
  for (int u = 0; u < U; u++) {
    const i64 h = hw + u * nhw;
    if ((hw & ~(i64)1) + u * nhw >= tiles) break;
    const bool active = h < tiles;
    float v[8];
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = active ? __fmul_rn(silu_f32(T::ld(rg[u].e[j])), T::ld(ru[u].e[j])) : 0.0f;
    // (h = rows * T_ tiles of I = 128 * T_ columns: codes at 128h as for the plain tiles)
    tile8_out<Q>(v, active, 8, true, q + h * FP8_TILE + lane * 8, s + h, lane, pow2);
  }
}

// RMSNorm + 1x128 quant with the row in registers, for d % 8 == 0, 16-byte aligned rows and d <=
// 8 * FP8_RMS3_CHUNKS * blockDim.x (else v2). The block has R = min(B, 256) threads and loops over
// rows blockIdx.x, blockIdx.x + gridDim.x, ... (the host sizes the grid to the SMs): the next
// row's loads are issued before the current row is reduced, so they are in flight through its
// reduction and output (v2 and a first v3 had one row a block, and the block's load, reduce and
// store phases did not overlap). Thread r holds chunks c = r + iR (i < FP8_RMS3_CHUNKS), one
// 16-byte load each (2-byte inputs). Chunk c belongs to virtual thread c mod B = r + (i mod
// (B / R)) R of the shared reduction (nn.cuh), so thread r keeps B / R <= 4 partials, each fed its
// chunks in order; then each half-warp's 16 consecutive chunks are one tile of the output.
#define FP8_RMS3_CHUNKS 4
template <class T>
RL_DEV void rms3_load(Vec<typename T::S, 8>* raw, const typename T::S* __restrict__ xr, int r, int R, i64 nch) {
#pragma unroll
  for (int i = 0; i < FP8_RMS3_CHUNKS; i++) {
    const i64 c = r + (i64)i * R;
    if (c < nch) raw[i] = *reinterpret_cast<const Vec<typename T::S, 8>*>(xr + c * 8);
  }
}

template <class T, class W, class Q>
RL_DEV void fp8_rms_norm_quant_v3(const typename T::S* __restrict__ x, const typename W::S* __restrict__ w, u8* __restrict__ q,
                                  float* __restrict__ s, i64 rows, i64 d, float eps, int pow2, int vthreads) {
  typedef typename T::S S;
  __shared__ float sh[33];
  const int r = threadIdx.x, R = blockDim.x, B = vthreads, KB = B / R;
  const int lane = r & 15, lane32 = r & 31;
  const i64 nch = d / 8;
  const i64 NT = (d + FP8_TILE - 1) / FP8_TILE;
  const bool wvec = aligned_to(w, 32);
  Vec<S, 8> nxt[FP8_RMS3_CHUNKS];
  if ((i64)blockIdx.x < rows) rms3_load<T>(nxt, x + (i64)blockIdx.x * d, r, R, nch);
  for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
    Vec<S, 8> raw[FP8_RMS3_CHUNKS];
#pragma unroll
    for (int i = 0; i < FP8_RMS3_CHUNKS; i++) raw[i] = nxt[i];
    if (row + gridDim.x < rows) rms3_load<T>(nxt, x + (row + gridDim.x) * d, r, R, nch);
    float ss[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int i = 0; i < FP8_RMS3_CHUNKS; i++) {
      const i64 c = r + (i64)i * R;
      if (c < nch) {
        float v[8];
        cvt8<T>(raw[i], v);
        // partial k = i mod KB (KB in 1, 2, 4), picked by selects (no indexed registers)
        const int k = i & (KB - 1);
        float acc = ss[0];
#pragma unroll
        for (int kk = 1; kk < 4; kk++)
          if (k == kk) acc = ss[kk];
        acc = rms_chunk_ss(v, 8, acc);
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
          if (k == kk) ss[kk] = acc;
      }
    }
#pragma unroll
    for (int k = 0; k < 4; k++) {
      if (k < KB) {
        const float tot = warp_sum(ss[k]);
        if (lane32 == 0) sh[(r >> 5) + k * (R >> 5)] = tot;
      }
    }
    __syncthreads();
    if (r < 32) {
      const float t = rms_total(sh[r], B);
      if (r == 0) sh[32] = t;
    }
    __syncthreads();
    // (sh[0..31] may be rewritten by the next row once every warp is past this point; sh[32] only
    // after the next row's first barrier, which every warp reaches after reading it here.)
    const float inv = rms_inv(sh[32], d, eps);
#pragma unroll
    for (int i = 0; i < FP8_RMS3_CHUNKS; i++) {
      const i64 c = r + (i64)i * R;
      if ((i64)(r & ~31) + (i64)i * R >= nch) break; // no lane of the warp has a chunk (warp-uniform)
      const bool active = c < nch;
      float v[8], wv[8];
      if (active) {
        cvt8<T>(raw[i], v);
        load8<W>(w, c * 8, 8, wvec, wv);
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = rms_apply(v[j], inv, wv[j]);
      } else {
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = 0.0f;
      }
      tile8_out<Q>(v, active, 8, true, q + row * d + c * 8, s + row * NT + (c >> 4), lane, pow2);
    }
  }
}

// Quant+transpose v3 for 2-byte inputs (f32: v2's structure with the v3 division, FAST in
// quant_transpose_src): one block of 256 threads per
// 128x128 block of x, staged raw in shared memory as v2 does.
//   phase 1: a half-warp per row tile, 8 rows per thread, all 8 loads in flight; codes of q.
//   phase 2: thread (p = tid & 63, h = tid >> 6) reads the column pair 2p, 2p + 1 of rows
//            32h .. 32h + 31 as 4-byte words (a warp reads 32 consecutive words of a row: no bank
//            conflicts; half the loads of v2), keeps them in registers, takes the columns' amax
//            over the 4 row quarters through shared memory, and writes its 32 codes of each of qT's
//            rows 2p, 2p + 1 as two 16-byte stores.
#define FP8_QT3_PITCH (FP8_TILE + 8)
template <class T, class Q>
RL_DEV void fp8_quant_transpose_v3(const typename T::S* __restrict__ x, u8* __restrict__ q, float* __restrict__ s, u8* __restrict__ qT,
                                   float* __restrict__ sT, i64 M, i64 K, int pow2) {
  typedef typename T::S S;
  static_assert(sizeof(S) == 2, "v3 quant+transpose is for 2-byte inputs");
  __shared__ __align__(16) S xs[FP8_TILE * FP8_QT3_PITCH];
  __shared__ u32 colmax[4][FP8_TILE];
  const i64 MT = (M + FP8_TILE - 1) / FP8_TILE, KT = (K + FP8_TILE - 1) / FP8_TILE;
  const i64 mb = blockIdx.x / KT, kb = blockIdx.x - mb * KT;
  if (mb >= MT) return;
  const bool vec = K % 8 == 0 && aligned_to(x, 16) && aligned_to(q, 8);
  const int r0 = threadIdx.x >> 4, lane = threadIdx.x & 15;
  const int c0 = lane * 8;
  const i64 col0 = kb * FP8_TILE + c0;
  const int cvalid = clamp8(K - col0);
  Vec<S, 8> raw[8];
#pragma unroll
  for (int p = 0; p < 8; p++) {
    const i64 row = mb * FP8_TILE + p * 16 + r0;
    const int valid = row < M ? cvalid : 0;
    if (vec && valid == 8) {
      raw[p] = *reinterpret_cast<const Vec<S, 8>*>(x + row * K + col0);
    } else {
#pragma unroll
      for (int j = 0; j < 8; j++) raw[p].e[j] = j < valid ? x[row * K + col0 + j] : (S)0; // 0 encodes +0
    }
  }
#pragma unroll
  for (int p = 0; p < 8; p++) {
    const int rr = p * 16 + r0;
    const i64 row = mb * FP8_TILE + rr;
    *reinterpret_cast<Vec<S, 8>*>(xs + rr * FP8_QT3_PITCH + c0) = raw[p];
    float v[8];
    cvt8<T>(raw[p], v);
    const bool in = row < M;
    tile8_out<Q>(v, in && cvalid > 0, cvalid, vec, q + row * K + col0, s + row * KT + kb, lane, pow2);
  }
  __syncthreads();
  const int pp = threadIdx.x & 63, h = threadIdx.x >> 6;
  u32 wv[32];
  u32 m2 = 0u; // the two columns' amax as 16-bit magnitudes (2-byte floats order as their bits)
#pragma unroll
  for (int i = 0; i < 32; i++) {
    wv[i] = *reinterpret_cast<const u32*>(xs + (h * 32 + i) * FP8_QT3_PITCH + 2 * pp);
    m2 = __vmaxu2(m2, wv[i] & 0x7fff7fffu);
  }
  colmax[h][2 * pp] = m2 & 0xffffu;
  colmax[h][2 * pp + 1] = m2 >> 16;
  __syncthreads();
  const i64 m0 = mb * FP8_TILE + h * 32;
  const i64 mvalid = M - m0 < 32 ? M - m0 : 32; // may be <= 0 for the last quarters
  const bool vecT = M % 16 == 0 && aligned_to(qT, 16);
#pragma unroll
  for (int e = 0; e < 2; e++) {
    const int c = 2 * pp + e;
    const u32 m16 = umax(umax(colmax[0][c], colmax[1][c]), umax(colmax[2][c], colmax[3][c]));
    const u32 m = abs_bits(T::ld((S)m16)); // the amax's f32 bits (NaN patterns stay above +inf)
    const float scale = fp8_scale<Q>(m, pow2);
    const i64 k = kb * FP8_TILE + c;
    if (k >= K) continue;
    if (h == 0) sT[k * MT + mb] = scale;
    if (mvalid <= 0) continue;
    // 4 codes a step (few live registers: this kernel's occupancy is its speed)
    const bool fin = FP8_HW_CVT && fp8_finite_amax(m);
    const Fp8Divider dv(scale);
    const float inv = pow2 ? __fdiv_rn(1.0f, scale) : 0.0f; // exact for a power-of-two scale
    u32 cw[8];
#pragma unroll
    for (int kq = 0; kq < 8; kq++) {
      float v[4];
#pragma unroll
      for (int jj = 0; jj < 4; jj++) v[jj] = T::ld((S)(e ? wv[4 * kq + jj] >> 16 : wv[4 * kq + jj] & 0xffffu));
      if (fin) {
        float qv[4];
#pragma unroll
        for (int jj = 0; jj < 4; jj++) qv[jj] = pow2 ? __fmul_rn(v[jj], inv) : dv(v[jj]);
        cw[kq] = fp8_cvt2x<Q>(qv[0], qv[1], v[0], v[1]) | (fp8_cvt2x<Q>(qv[2], qv[3], v[2], v[3]) << 16);
      } else {
        cw[kq] = (u32)fp8_code<Q>(v[0], scale) | ((u32)fp8_code<Q>(v[1], scale) << 8) | ((u32)fp8_code<Q>(v[2], scale) << 16) |
                 ((u32)fp8_code<Q>(v[3], scale) << 24);
      }
    }
    u8* dst = qT + k * M + m0;
    if (vecT && mvalid == 32) {
      reinterpret_cast<uint4*>(dst)[0] = make_uint4(cw[0], cw[1], cw[2], cw[3]);
      reinterpret_cast<uint4*>(dst)[1] = make_uint4(cw[4], cw[5], cw[6], cw[7]);
    } else {
#pragma unroll
      for (int j = 0; j < 32; j++)
        if (j < mvalid) dst[j] = (u8)(cw[j >> 2] >> (8 * (j & 3)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// SwiGLU backward + quant+transpose: gateUp [M, 2I] = [g | u] and dh [M, I] give
// dy = d[g | u] = [dg | du] (f32, the composite's steps one f32 rounding each):
//   s = sigmoid(g);  dsilu = s + (g * s) * (1 - s);  dg = (dh * u) * dsilu;  du = dh * silu(g)
// quantized as fp8QuantTranspose quantizes dy (1x128 tiles along 2I, and of dy^T along M), without
// writing dy: quant_transpose_src with this source. The products and sums are spelled with _rn
// intrinsics: the composite runs each in its own kernel, so none may be contracted into an fma.
// Blocks are ordered by 128-row band, so the blocks that read the same g and dh for dg and du
// (KT / 2 apart when I % 128 == 0) run close together and the second read hits L2. (The v3
// division here, with three blocks an SM, measured slower on an H100, 1.65 ms against 1.24 ms at
// [8192, 16384]: v2's per-element division and two blocks an SM stay.)
template <class T, class D> struct SwigluBwdRows {
  const typename T::S* gu;
  const typename D::S* dh;
  i64 I;
  bool vec; // I % 8 == 0 and 32-byte aligned inputs: no 8-column group straddles I
  RL_DEV static float dgrad(float g, float u, float d) {
    const float s = sigmoid_f32(g);
    const float dsilu = __fadd_rn(s, __fmul_rn(__fmul_rn(g, s), __fsub_rn(1.0f, s)));
    return __fmul_rn(__fmul_rn(d, u), dsilu);
  }
  RL_DEV static float ugrad(float g, float d) { return __fmul_rn(d, silu_f32(g)); }
  RL_DEV void load(i64 row, i64 col0, int valid, float* v) const {
    const i64 C = 2 * I;
    if (vec && valid == 8) {
      float g[8], d[8];
      if (col0 < I) {
        float u[8];
        load8<T>(gu, row * C + col0, 8, true, g);
        load8<T>(gu, row * C + I + col0, 8, true, u);
        load8<D>(dh, row * I + col0, 8, true, d);
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = dgrad(g[j], u[j], d[j]);
      } else {
        load8<T>(gu, row * C + col0 - I, 8, true, g);
        load8<D>(dh, row * I + col0 - I, 8, true, d);
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = ugrad(g[j], d[j]);
      }
      return;
    }
#pragma unroll
    for (int j = 0; j < 8; j++) {
      const i64 c = col0 + j;
      if (j >= valid) {
        v[j] = 0.0f;
      } else if (c < I) {
        v[j] = dgrad(T::ld(gu[row * C + c]), T::ld(gu[row * C + I + c]), D::ld(dh[row * I + c]));
      } else {
        v[j] = ugrad(T::ld(gu[row * C + c - I]), D::ld(dh[row * I + c - I]));
      }
    }
  }
};

template <class T, class D, class Q>
RL_DEV void fp8_swiglu_bwd_quant(const typename T::S* __restrict__ gu, const typename D::S* __restrict__ dh, u8* __restrict__ q,
                                 float* __restrict__ s, u8* __restrict__ qT, float* __restrict__ sT, i64 M, i64 I, int pow2) {
  const SwigluBwdRows<T, D> src = {gu, dh, I, I % 8 == 0 && aligned_to(gu, 32) && aligned_to(dh, 32)};
  const i64 C = 2 * I;
  quant_transpose_src<SwigluBwdRows<T, D>, Q, true>(src, q, s, qT, sT, M, C, pow2, C % 8 == 0 && aligned_to(q, 8));
}

// ---------------------------------------------------------------------------------------------
// Group RMSNorm gate (MODEL_SPEC §2.5): the C channels of a row of o in groups of S, each group
// normalized as the rmsNorm kernel with unit weight does it (the shared reduction of nn.cuh with
// B = rowThreads(S)), then y = (n * w) * sigmoid(gate), each product one f32 rounding as the
// composite's mul kernels and sigmoid as its unary kernel compute them; y goes to OUT (a plain
// store for groupRmsNormGate, the 1x128 quantizer for fp8GroupRmsNormGateQuant). One block of
// GRG_THREADS per row:
//   1. the row of o is staged in shared memory with 16-byte loads when it fits (else read from
//      global, the second time from L1/L2);
//   2. the 128-channel tiles go in batches that span at most GRG_GROUPS groups (all of them unless
//      groups are tiny): each group's 1 / rms into shared memory, with a warp per group, or, when
//      the batch has fewer groups than warps, each group's virtual warps spread over the warps
//      (their totals through shared memory);
//   3. a half-warp per tile, 8 channels a lane (16-byte loads of gate): y, then OUT.
#define GRG_THREADS 256
#define GRG_GROUPS 256
#define GRG_STAGE_BYTES 16384

// OUT for groupRmsNormGate: y rounded to o's dtype.
template <class T> struct GateStoreOut {
  typename T::S* y;
  i64 C;
  bool vec;
  RL_DEV void operator()(i64 row, i64, int, bool active, i64 col0, int valid, const float* v) const {
    typedef typename T::S S;
    if (!active || valid == 0) return;
    S* p = y + row * C + col0;
    if (vec && valid == 8) {
      Vec<S, 8> e;
#pragma unroll
      for (int j = 0; j < 8; j++) e.e[j] = T::st(v[j], false);
      *reinterpret_cast<Vec<S, 8>*>(p) = e;
    } else {
#pragma unroll
      for (int j = 0; j < 8; j++)
        if (j < valid) p[j] = T::st(v[j], false);
    }
  }
};

// OUT for the 1x128 quantizer (v[j] = 0 past `valid`, so the amax is the tile's).
template <class Q> struct TileQuantOut {
  u8* q;
  float* s;
  i64 C, NT;
  int pow2;
  bool vec;
  RL_DEV void operator()(i64 row, i64 t, int lane, bool active, i64 col0, int valid, const float* v) const {
    tile8_out<Q>(v, active, valid, vec, q + row * C + col0, s + row * NT + t, lane, pow2);
  }
};

// The register path of group_rms_norm_gate_rows, for C % 8 == 0, groups of S % 256 == 0 channels,
// C <= 8 * GRG_REG_CHUNKS * blockDim.x and 32-byte aligned o and gate (the attention gate's
// shapes: groups of 512 channels). Thread r holds chunks c = r + i * blockDim.x of o and gate
// (16-byte loads, all in flight at once). Since a group's S / 8 chunks are a multiple of 32 and
// at most B (rmsNormThreads(S)), the 32 chunks a warp holds at step i are one virtual warp of one
// group with one chunk per virtual thread: its total is the warp's warp_sum, at slot c / 32; the
// group's total sums its S / 256 slots as rms_total does (the empty virtual warps give 0).
#define GRG_REG_CHUNKS 4
template <class T, class G, class W, class OUT>
RL_DEV void group_gate_reg(const typename T::S* __restrict__ o, const typename G::S* __restrict__ gate, const typename W::S* __restrict__ w,
                           const OUT& out, i64 row, i64 C, i64 S, int B, float eps, float* tot, float* inv) {
  typedef typename T::S TS;
  typedef typename G::S GS;
  const int r = threadIdx.x, R = blockDim.x, lane32 = r & 31, warp = r >> 5, nwarps = R >> 5, lane = r & 15;
  const i64 nch = C / 8; // a multiple of 32: every lane of a warp has a chunk or none has
  const TS* xr = o + row * C;
  const GS* gr = gate + row * C;
  Vec<TS, 8> xo[GRG_REG_CHUNKS];
  Vec<GS, 8> xg[GRG_REG_CHUNKS];
#pragma unroll
  for (int i = 0; i < GRG_REG_CHUNKS; i++) {
    const i64 c = r + (i64)i * R;
    if (c < nch) {
      xo[i] = *reinterpret_cast<const Vec<TS, 8>*>(xr + c * 8);
      xg[i] = *reinterpret_cast<const Vec<GS, 8>*>(gr + c * 8);
    }
  }
#pragma unroll
  for (int i = 0; i < GRG_REG_CHUNKS; i++) {
    const i64 c = r + (i64)i * R;
    if (c >= nch) break;
    float v[8];
    cvt8<T>(xo[i], v);
    const float t = warp_sum(rms_chunk_ss(v, 8, 0.0f));
    if (lane32 == 0) tot[c >> 5] = t;
  }
  __syncthreads();
  const int spg = (int)(S / 256); // virtual warps with chunks in a group
  for (i64 g = warp; g < C / S; g += nwarps) {
    const float t = rms_total(lane32 < spg ? tot[g * spg + lane32] : 0.0f, B);
    if (lane32 == 0) inv[g] = rms_inv(t, S, eps);
  }
  __syncthreads();
  const bool wvec = aligned_to(w, 32);
  const u32 gch = (u32)(S / 8);
#pragma unroll
  for (int i = 0; i < GRG_REG_CHUNKS; i++) {
    const i64 c = r + (i64)i * R;
    if (c >= nch) break;
    const float iv = inv[(u32)c / gch];
    float x[8], gt[8], wv[8], y[8];
    cvt8<T>(xo[i], x);
    cvt8<G>(xg[i], gt);
    load8<W>(w, c * 8, 8, wvec, wv);
#pragma unroll
    for (int j = 0; j < 8; j++) y[j] = __fmul_rn(__fmul_rn(rms_apply(x[j], iv, 1.0f), wv[j]), sigmoid_f32(gt[j]));
    out(row, c >> 4, lane, true, c * 8, 8, y);
  }
}

template <class T, class G, class W, class OUT>
RL_DEV void group_rms_norm_gate_rows(const typename T::S* __restrict__ o, const typename G::S* __restrict__ gate, const typename W::S* __restrict__ w,
                                     const OUT& out, i64 rows, i64 C, i64 S, int B, float eps) {
  typedef typename T::S TS;
  __shared__ __align__(32) TS xs[GRG_STAGE_BYTES / sizeof(TS)];
  __shared__ float inv[GRG_GROUPS];
  __shared__ float totals[GRG_GROUPS];
  const i64 row = blockIdx.x;
  if (row >= rows) return;
  if (C % 8 == 0 && S % 256 == 0 && S / 8 <= B && C <= 8 * GRG_REG_CHUNKS * (i64)blockDim.x && aligned_to(o, 32) && aligned_to(gate, 32)) {
    group_gate_reg<T, G, W, OUT>(o, gate, w, out, row, C, S, B, eps, totals, inv);
    return;
  }
  const TS* xr = o + row * C;
  const int V = 16 / sizeof(TS);
  if (C % V == 0 && aligned_to(o, 16) && C * (i64)sizeof(TS) <= GRG_STAGE_BYTES) {
    for (i64 i = (i64)threadIdx.x * V; i < C; i += (i64)blockDim.x * V)
      *reinterpret_cast<Vec<TS, 16 / sizeof(TS)>*>(xs + i) = *reinterpret_cast<const Vec<TS, 16 / sizeof(TS)>*>(xr + i);
    __syncthreads();
    xr = xs;
  }
  const int warp = threadIdx.x >> 5, lane32 = threadIdx.x & 31, nwarps = blockDim.x >> 5;
  const int half = (threadIdx.x >> 4) & 1, lane = threadIdx.x & 15;
  const int nvw = B >> 5;
  const i64 ngroups = C / S, NT = (C + FP8_TILE - 1) / FP8_TILE;
  // (the staged copy is 32-byte aligned; global rows are when o is and C % 8 == 0)
  const bool xvec = C % 8 == 0 && aligned_to(o, 32);
  const bool gvec = C % 8 == 0 && aligned_to(gate, 32);
  const bool wvec = C % 8 == 0 && aligned_to(w, 32);
  const typename G::S* gr = gate + row * C;
  for (i64 t0 = 0; t0 < NT;) {
    // Tiles [t0, t1) lie in groups [glo, ghi).
    const i64 glo = (t0 * FP8_TILE) / S;
    const i64 ghi = ngroups - glo < GRG_GROUPS ? ngroups : glo + GRG_GROUPS;
    const i64 t1 = ghi == ngroups ? NT : (ghi * S) / FP8_TILE;
    const int ng = (int)(ghi - glo);
    if (ng < nwarps) {
      // ng * nvw <= 7 * 32 virtual warps, spread over the warps.
      for (int vwi = warp; vwi < ng * nvw; vwi += nwarps) {
        const int g = vwi / nvw;
        const RowLoad<T> ld = {xr + (glo + g) * S};
        const float tot = rms_vwarp_sum(ld, S, B, vwi - g * nvw);
        if (lane32 == 0) totals[vwi] = tot;
      }
      __syncthreads();
      if (warp < ng) {
        const float tot = rms_total(lane32 < nvw ? totals[warp * nvw + lane32] : 0.0f, B);
        if (lane32 == 0) inv[warp] = rms_inv(tot, S, eps);
      }
    } else {
      for (int g = warp; g < ng; g += nwarps) {
        const RowLoad<T> ld = {xr + (glo + g) * S};
        const float tot = rms_sum_squares_warp(ld, S, B);
        if (lane32 == 0) inv[g] = rms_inv(tot, S, eps);
      }
    }
    __syncthreads();
    // The loop bound is the same for both halves of a warp, so the shuffles see every lane.
    for (i64 tb = t0 + 2 * warp; tb < t1; tb += 2 * nwarps) {
      const i64 t = tb + half;
      const bool active = t < t1;
      const i64 col0 = t * FP8_TILE + lane * 8;
      const int valid = active ? clamp8(C - col0) : 0;
      float x[8], gt[8], wv[8], y[8];
      load8<T>(xr, col0, valid, xvec, x);
      load8<G>(gr, col0, valid, gvec, gt);
      load8<W>(w, col0, valid, wvec, wv);
      const i64 g0 = valid > 0 ? col0 / S : glo;
#pragma unroll
      for (int j = 0; j < 8; j++) {
        // The channel's group (all 8 share one when S % 8 == 0).
        const i64 g = S % 8 == 0 ? g0 : (j < valid ? (col0 + j) / S : glo);
        const float n = rms_apply(x[j], inv[g - glo], 1.0f);
        y[j] = j < valid ? __fmul_rn(__fmul_rn(n, wv[j]), sigmoid_f32(gt[j])) : 0.0f;
      }
      out(row, t, lane, active, col0, valid, y);
    }
    __syncthreads();
    t0 = t1;
  }
}

template <class T, class G, class W, class Q>
RL_DEV void fp8_group_rms_norm_gate_quant(const typename T::S* __restrict__ o, const typename G::S* __restrict__ gate, const typename W::S* __restrict__ w,
                                          u8* __restrict__ q, float* __restrict__ s, i64 rows, i64 C, i64 S, int B, float eps, int pow2) {
  const TileQuantOut<Q> out = {q, s, C, (C + FP8_TILE - 1) / FP8_TILE, pow2, C % 8 == 0 && aligned_to(q, 8)};
  group_rms_norm_gate_rows<T, G, W, TileQuantOut<Q>>(o, gate, w, out, rows, C, S, B, eps);
}

template <class T, class W>
RL_DEV void group_rms_norm_gate(const typename T::S* __restrict__ o, const typename T::S* __restrict__ gate, const typename W::S* __restrict__ w,
                                typename T::S* __restrict__ y, i64 rows, i64 C, i64 S, int B, float eps) {
  const GateStoreOut<T> out = {y, C, C % 8 == 0 && aligned_to(y, 32)};
  group_rms_norm_gate_rows<T, T, W, GateStoreOut<T>>(o, gate, w, out, rows, C, S, B, eps);
}


#endif  // RING_LINEAR_FP8_CUH
