// Block-scaled FP8 GEMM on tensor cores (MODEL_SPEC §8; @ring-linear/fp8 fp8Gemm / fp8GroupedGemm):
//
//   y[m, n] = sum over k-tiles t of (P_t[m, n] * sa[m, t]) * sb[., t],  P_t = sum over the tile's
//   128 k of a[m, k] b[n, k]   (a [M, K], b [N, K], both K-major: y = a b^T)
//
// sa is [M, KT] (1x128 tiles of a); sb is [ceil(N/128), KT] (128x128 blocks, block_b = 1) or
// [N, KT] (1x128 tiles, block_b = 0). The tile products P_t come from mma.sync m16n8k32 (FP8 in,
// f32 accumulators zeroed for each k-tile) and are scaled into f32 totals once per tile, the
// promotion DeepGEMM uses; the totals are rounded once to the output dtype.
//
// A block computes a 128 x 128 output tile with 8 warps (2 along M x 4 along N, 64 x 32 each: 4 x 4
// mma tiles). K moves in tiles of 128 bytes (= one scale tile) through two shared-memory stages of
// 16 KiB per operand plus the tile's scales (66 KiB dynamic shared memory), filled by cp.async (K % 16 == 0 and 16-byte
// aligned operands: `aligned`) or by plain loads. Rows of the tiles are 128 bytes; the 16-byte
// chunks are XOR-swizzled by (row & 7) so ldmatrix's eight row reads hit different banks. With
// 8-bit data one ldmatrix 8x8 b16 tile is 8 rows x 16 bytes, and lane l receives bytes 4(l%4)..+3 of
// row l/4: exactly the .e4m3/.e5m2 A and B fragments of m16n8k32 (mma.cuh).
//
// The grouped form (MoE experts) reads offsets [E+1] on the device: segment e is rows
// offsets[e] .. offsets[e+1]-1 (clamped to [0, M]) and uses expert e's b and sb; rows before
// offsets[0] and from offsets[E] on (in no segment) are written as zeros by pseudo-segments -1 and
// E. Grid y is a bound on the tiles of all segments (ceil(M/128) + E + 2 when the offsets are
// non-decreasing, as the op requires); a block finds its segment and tile with one warp's prefix
// sums over the segments' tile counts and exits when past the last tile.
#pragma once
#ifndef RING_LINEAR_FP8GEMM_CUH
#define RING_LINEAR_FP8GEMM_CUH
#include "common.cuh"
#include "mma.cuh"

constexpr int FP8G_TILE_BYTES = 16384;  // one stage of one operand: 128 rows x 128 bytes
// A stage: a's tile, b's tile, then the k-tile's scales of the 128 rows and of the 128 columns.
constexpr int FP8G_STAGE_BYTES = 2 * FP8G_TILE_BYTES + 2 * 128 * 4;

// 4-byte asynchronous copy (the scales); bytes = 0 writes a zero without reading.
RL_DEV void fp8g_cp_async4(void* smem, const void* gmem, int bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(bytes));
}

// Byte offset of 16-byte chunk c (0..7) of row r in a swizzled [128][128]-byte tile.
RL_DEV int fp8g_off(int r, int c) { return r * 128 + ((c ^ (r & 7)) << 4); }

// Fills one stage of an operand: `rows_valid` rows from `base` (row stride K bytes), K bytes k0 ..
// k0 + 127; rows and bytes past the end are zeros.
RL_DEV void fp8g_load_tile(u8* smem, const u8* base, int rows_valid, i64 K, i64 k0, bool aligned) {
  for (int i = threadIdx.x; i < 128 * 8; i += 256) {
    const int r = i >> 3, c = i & 7;
    const i64 kk = k0 + c * 16;
    const i64 left = K - kk;
    const int bytes = (r < rows_valid && left > 0) ? (left < 16 ? (int)left : 16) : 0;
    u8* dst = smem + fp8g_off(r, c);
    const u8* src = base + (i64)r * K + kk;
    if (aligned) {
      // K % 16 == 0: a chunk is whole or absent; an absent one is zero-filled without a read.
      cp_async16(dst, bytes > 0 ? (const void*)src : (const void*)base, bytes);
    } else {
      u32 w[4] = {0u, 0u, 0u, 0u};
      for (int j = 0; j < bytes; j++) w[j >> 2] |= (u32)src[j] << (8 * (j & 3));
      *(uint4*)dst = make_uint4(w[0], w[1], w[2], w[3]);
    }
  }
}

// One 128 x 128 output tile: rows row0 .. row0 + rows - 1 of y (rows <= 128), columns n0 .. n0 + 127
// (clipped to N). a: the whole [M, K]; b, sb: this expert's.
template <class TA, class TB, class TO>
RL_DEV void fp8g_tile(const u8* a, const float* sa, const u8* b, const float* sb, typename TO::S* y, int row0, int rows,
                      int n0, int N, int K, int block_b, bool aligned, u8* smem) {
  const int KT = (K + 127) >> 7;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wm = warp >> 2, wn = warp & 3;
  const int g = lane >> 2, t4 = lane & 3;
  const int ncols = N - n0 < 128 ? N - n0 : 128;
  const u8* aRows = a + (i64)row0 * K;
  const u8* bRows = b + (i64)n0 * K;
  // Fills stage `st` with k-tile t: both operand tiles and their scales (threads 0-127 a row's,
  // 128-255 a column's).
  auto load_stage = [&](int st, int t) {
    u8* s0 = smem + st * FP8G_STAGE_BYTES;
    fp8g_load_tile(s0, aRows, rows, K, (i64)t * 128, aligned);
    fp8g_load_tile(s0 + FP8G_TILE_BYTES, bRows, ncols, K, (i64)t * 128, aligned);
    float* sc = (float*)(s0 + 2 * FP8G_TILE_BYTES);
    const int i = threadIdx.x & 127;
    if (threadIdx.x < 128) {
      fp8g_cp_async4(sc + i, i < rows ? (const void*)(sa + (i64)(row0 + i) * KT + t) : (const void*)sa, i < rows ? 4 : 0);
    } else {
      const i64 at = (i64)(block_b ? (n0 + i) >> 7 : n0 + i) * KT + t;
      fp8g_cp_async4(sc + 128 + i, i < ncols ? (const void*)(sb + at) : (const void*)sb, i < ncols ? 4 : 0);
    }
  };

  float total[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
      for (int r = 0; r < 4; r++) total[i][j][r] = 0.f;

  load_stage(0, 0);
  cp_async_commit();
  for (int t = 0; t < KT; t++) {
    const int st = t & 1;
    u8* sA = smem + st * FP8G_STAGE_BYTES;
    u8* sB = sA + FP8G_TILE_BYTES;
    const float* sc = (const float*)(sB + FP8G_TILE_BYTES);
    if (t + 1 < KT) load_stage(st ^ 1, t + 1);
    cp_async_commit();  // (empty on the last tile: keeps the wait count below uniform)
    cp_async_wait<1>();
    __syncthreads();

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
      for (int j = 0; j < 4; j++)
#pragma unroll
        for (int r = 0; r < 4; r++) acc[i][j][r] = 0.f;
    const int q = lane >> 3;
#pragma unroll
    for (int ks = 0; ks < 4; ks++) {
      u32 bfr[4][2];
#pragma unroll
      for (int p = 0; p < 2; p++) {
        // Tiles (n 0-7, k 0-15), (n 0-7, k 16-31), (n 8-15, k 0-15), (n 8-15, k 16-31).
        const int r = wn * 32 + p * 16 + (lane & 7) + ((q >> 1) << 3);
        u32 v[4];
        ldmatrix_x4(v, sB + fp8g_off(r, ks * 2 + (q & 1)));
        bfr[2 * p][0] = v[0];
        bfr[2 * p][1] = v[1];
        bfr[2 * p + 1][0] = v[2];
        bfr[2 * p + 1][1] = v[3];
      }
#pragma unroll
      for (int mi = 0; mi < 4; mi++) {
        // Tiles (rows 0-7, k 0-15), (rows 8-15, k 0-15), (rows 0-7, k 16-31), (rows 8-15, k 16-31).
        u32 af[4];
        const int r = wm * 64 + mi * 16 + (lane & 7) + ((q & 1) << 3);
        ldmatrix_x4(af, sA + fp8g_off(r, ks * 2 + (q >> 1)));
#pragma unroll
        for (int nj = 0; nj < 4; nj++) MmaFp8<TA, TB>::run(acc[mi][nj], af, bfr[nj]);
      }
    }
    // Promotion: total += fl32(fl32(P_t * sa) * sb) (the composite's roundings, no contraction).
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
      const float fa0 = sc[wm * 64 + mi * 16 + g], fa1 = sc[wm * 64 + mi * 16 + g + 8];
#pragma unroll
      for (int nj = 0; nj < 4; nj++) {
        const int c = wn * 32 + nj * 8 + 2 * t4;
        const float fb0 = sc[128 + c], fb1 = sc[128 + c + 1];
        total[mi][nj][0] = __fadd_rn(total[mi][nj][0], __fmul_rn(__fmul_rn(acc[mi][nj][0], fa0), fb0));
        total[mi][nj][1] = __fadd_rn(total[mi][nj][1], __fmul_rn(__fmul_rn(acc[mi][nj][1], fa0), fb1));
        total[mi][nj][2] = __fadd_rn(total[mi][nj][2], __fmul_rn(__fmul_rn(acc[mi][nj][2], fa1), fb0));
        total[mi][nj][3] = __fadd_rn(total[mi][nj][3], __fmul_rn(__fmul_rn(acc[mi][nj][3], fa1), fb1));
      }
    }
    __syncthreads();  // the stage read here is refilled by the next iteration
  }

#pragma unroll
  for (int mi = 0; mi < 4; mi++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int r = wm * 64 + mi * 16 + g + 8 * h;
      if (r >= rows) continue;
      typename TO::S* yr = y + (i64)(row0 + r) * N + n0;
#pragma unroll
      for (int nj = 0; nj < 4; nj++) {
        const int c = wn * 32 + nj * 8 + 2 * t4;
        if (c < ncols) yr[c] = TO::st(total[mi][nj][2 * h], false);
        if (c + 1 < ncols) yr[c + 1] = TO::st(total[mi][nj][2 * h + 1], false);
      }
    }
}

// Grid (ceil(N/128), ceil(M/128)), 256 threads, 2 * FP8G_STAGE_BYTES of dynamic shared memory.
template <class TA, class TB, class TO>
RL_DEV void fp8_gemm(const u8* a, const float* sa, const u8* b, const float* sb, typename TO::S* y, int M, int N, int K,
                     int block_b, int aligned) {
  extern __shared__ __align__(128) u8 fp8g_smem[];
  const int row0 = blockIdx.y * 128;
  const int rows = M - row0 < 128 ? M - row0 : 128;
  fp8g_tile<TA, TB, TO>(a, sa, b, sb, y, row0, rows, blockIdx.x * 128, N, K, block_b, aligned != 0, fp8g_smem);
}

// Grid (ceil(N/128), ceil(M/128) + E + 2), 256 threads, 2 * FP8G_STAGE_BYTES of dynamic shared memory.
template <class TA, class TB, class TO>
RL_DEV void fp8_grouped_gemm(const u8* a, const float* sa, const u8* b, const float* sb, const int* offsets,
                             typename TO::S* y, int M, int N, int K, int E, int aligned) {
  extern __shared__ __align__(128) u8 fp8g_smem[];
  __shared__ int seg[3];  // first row of this block's tile, end of its segment, segment (-2: none)
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    const int target = blockIdx.y;
    if (lane == 0) seg[2] = -2;
    __syncwarp();
    int base = 0;
    for (int s0 = -1; s0 <= E; s0 += 32) {
      const int s = s0 + lane;
      int lo = 0, hi = 0;
      if (s <= E) {
        const int o0 = s < 0 ? 0 : offsets[s];
        const int o1 = s < E ? offsets[s + 1] : M;
        lo = s < 0 ? 0 : (o0 < 0 ? 0 : o0 > M ? M : o0);
        hi = o1 < 0 ? 0 : o1 > M ? M : o1;
        if (hi < lo) hi = lo;
      }
      const int tiles = (hi - lo + 127) >> 7;
      int incl = tiles;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const int v = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += v;
      }
      const int excl = incl - tiles;
      const bool mine = tiles > 0 && target >= base + excl && target < base + incl;
      if (mine) {
        seg[0] = lo + (target - base - excl) * 128;
        seg[1] = hi;
        seg[2] = s;
      }
      if (__ballot_sync(0xffffffffu, mine)) break;
      base += __shfl_sync(0xffffffffu, incl, 31);
    }
  }
  __syncthreads();
  const int s = seg[2];
  if (s == -2) return;
  const int row0 = seg[0];
  const int rows = seg[1] - row0 < 128 ? seg[1] - row0 : 128;
  const int n0 = blockIdx.x * 128;
  if (s < 0 || s >= E) {
    // Rows in no segment: zeros.
    for (int i = threadIdx.x; i < rows * 128; i += 256) {
      const int r = i >> 7, c = i & 127;
      if (n0 + c < N) y[(i64)(row0 + r) * N + n0 + c] = TO::st(0.f, false);
    }
    return;
  }
  const int KT = (K + 127) >> 7;
  const int NB = (N + 127) >> 7;
  fp8g_tile<TA, TB, TO>(a, sa, b + (i64)s * N * K, sb + (i64)s * NB * KT, y, row0, rows, n0, N, K, 1, aligned != 0, fp8g_smem);
}

#endif
