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
// mma tiles). K moves in tiles of 128 bytes (= one scale tile) through four shared-memory stages of
// 16 KiB per operand plus the tile's scales (four stages: 132 KiB of dynamic shared memory), filled by cp.async (K % 16 == 0 and 16-byte
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
constexpr int FP8G_SYNC_STAGES = 4;  // cp.async stages of the mma.sync kernel

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

  constexpr int S = FP8G_SYNC_STAGES;
#pragma unroll
  for (int s = 0; s < S - 1; s++) {
    if (s < KT) load_stage(s, s);
    cp_async_commit();
  }
  for (int t = 0; t < KT; t++) {
    const int st = t % S;
    cp_async_wait<S - 2>();
    __syncthreads();  // tile t everywhere; every warp done with tile t - 1's stage
    if (t + S - 1 < KT) load_stage((t + S - 1) % S, t + S - 1);
    cp_async_commit();  // (empty past the last tile: keeps the wait count uniform)
    u8* sA = smem + st * FP8G_STAGE_BYTES;
    u8* sB = sA + FP8G_TILE_BYTES;
    const float* sc = (const float*)(sB + FP8G_TILE_BYTES);

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
  }
  cp_async_wait<0>();  // (only empty groups can be left; nothing may be in flight at exit)

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


// ---------------------------------------------------------------------------------------------
// sm_90a: the same tile with wgmma (warpgroup MMA, operands straight from shared memory).
//
// The stage tiles above are already wgmma's K-major 128-byte-swizzle layout (8-row groups of
// 1024 bytes, 16-byte chunk c of row r at chunk c ^ (r & 7)) once each tile starts on a 1024-byte
// boundary. Two warpgroups take 64 rows each: wgmma.m64n128k32 x 4 per k-tile (the descriptor's
// start address advances 32 bytes a step inside the swizzle atom), accumulators restarted per
// k-tile (scale-d = 0 on the first step) and promoted with the tile's scales as above. Four
// cp.async stages; fence.proxy.async makes the cp.async (generic proxy) writes visible to wgmma.

constexpr int FP8G_WG_STAGES = 4;
constexpr int FP8G_WG_STAGE_BYTES = 2 * FP8G_TILE_BYTES + 1024;  // tiles, scales, 1024-byte multiple

RL_DEV void fp8g_wgmma_e4m3_e4m3(float d[64], u64 desc_a, u64 desc_b, int accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
#else
  __trap();
#endif
}
RL_DEV void fp8g_wgmma_e4m3_e5m2(float d[64], u64 desc_a, u64 desc_b, int accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e5m2 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
#else
  __trap();
#endif
}
RL_DEV void fp8g_wgmma_e5m2_e4m3(float d[64], u64 desc_a, u64 desc_b, int accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e5m2.e4m3 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
#else
  __trap();
#endif
}
RL_DEV void fp8g_wgmma_e5m2_e5m2(float d[64], u64 desc_a, u64 desc_b, int accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e5m2.e5m2 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
#else
  __trap();
#endif
}
template <class A, class B> struct Wgmma;
template <> struct Wgmma<E4M3, E4M3> { static RL_DEV void run(float d[64], u64 a, u64 b, int acc) { fp8g_wgmma_e4m3_e4m3(d, a, b, acc); } };
template <> struct Wgmma<E4M3, E5M2> { static RL_DEV void run(float d[64], u64 a, u64 b, int acc) { fp8g_wgmma_e4m3_e5m2(d, a, b, acc); } };
template <> struct Wgmma<E5M2, E4M3> { static RL_DEV void run(float d[64], u64 a, u64 b, int acc) { fp8g_wgmma_e5m2_e4m3(d, a, b, acc); } };
template <> struct Wgmma<E5M2, E5M2> { static RL_DEV void run(float d[64], u64 a, u64 b, int acc) { fp8g_wgmma_e5m2_e5m2(d, a, b, acc); } };

// Shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row groups 1024 bytes apart.
RL_DEV u64 fp8g_desc(const void* p) {
  const u64 addr = smem_addr(p);
  return ((addr & 0x3FFFFull) >> 4) | (1ull << 16) | ((u64)(1024 >> 4) << 32) | (1ull << 62);
}
RL_DEV void fp8g_wg_fence() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
RL_DEV void fp8g_wg_commit_wait() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#endif
}
RL_DEV void fp8g_fence_proxy_async() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
// Keeps the compiler from moving accumulator reads or writes across the asynchronous MMA.
RL_DEV void fp8g_reg_fence(float& r) { asm volatile("" : "+f"(r)::"memory"); }

template <class TA, class TB, class TO>
RL_DEV void fp8g_tile_wg(const u8* a, const float* sa, const u8* b, const float* sb, typename TO::S* y, int row0, int rows,
                         int n0, int N, int K, int block_b, bool aligned, u8* smem_raw) {
  constexpr int S = FP8G_WG_STAGES;
  // Tiles on 1024-byte boundaries (the swizzle atom); the launch adds 1024 bytes of slack.
  u8* smem = smem_raw + ((1024u - (smem_addr(smem_raw) & 1023u)) & 1023u);
  const int KT = (K + 127) >> 7;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wg = warp >> 2;
  const int g = lane >> 2, t4 = lane & 3;
  const int ncols = N - n0 < 128 ? N - n0 : 128;
  const u8* aRows = a + (i64)row0 * K;
  const u8* bRows = b + (i64)n0 * K;
  auto load_stage = [&](int st, int t) {
    u8* s0 = smem + st * FP8G_WG_STAGE_BYTES;
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

  float total[64], acc[64];
#pragma unroll
  for (int i = 0; i < 64; i++) total[i] = 0.f;
#pragma unroll
  for (int s = 0; s < S - 1; s++) {
    if (s < KT) load_stage(s, s);
    cp_async_commit();
  }
  for (int t = 0; t < KT; t++) {
    const int st = t % S;
    cp_async_wait<S - 2>();
    fp8g_fence_proxy_async();
    __syncthreads();  // tile t everywhere; every warpgroup done with tile t - 1's stage
    if (t + S - 1 < KT) load_stage((t + S - 1) % S, t + S - 1);
    cp_async_commit();
    const u8* sA = smem + st * FP8G_WG_STAGE_BYTES;
    const u8* sB = sA + FP8G_TILE_BYTES;
    const float* sc = (const float*)(sB + FP8G_TILE_BYTES);
    // A warpgroup whose 64 rows are all past the tile's rows (short segments) skips the MMAs.
    if (wg * 64 >= rows) continue;
    const u64 da = fp8g_desc(sA + wg * 64 * 128), db = fp8g_desc(sB);
#pragma unroll
    for (int i = 0; i < 64; i++) fp8g_reg_fence(acc[i]);
    fp8g_wg_fence();
#pragma unroll
    for (int ks = 0; ks < 4; ks++) Wgmma<TA, TB>::run(acc, da + (u64)(ks * 2), db + (u64)(ks * 2), ks > 0);
    fp8g_wg_commit_wait();
#pragma unroll
    for (int i = 0; i < 64; i++) fp8g_reg_fence(acc[i]);
    // acc[4j + 0..1]: row 16 (warp % 4) + g, columns 8j + 2 t4 + 0..1; acc[4j + 2..3]: row + 8.
    const int r = wg * 64 + (warp & 3) * 16 + g;
    const float fa0 = sc[r], fa1 = sc[r + 8];
#pragma unroll
    for (int j = 0; j < 16; j++) {
      const float fb0 = sc[128 + 8 * j + 2 * t4], fb1 = sc[128 + 8 * j + 2 * t4 + 1];
      total[4 * j + 0] = __fadd_rn(total[4 * j + 0], __fmul_rn(__fmul_rn(acc[4 * j + 0], fa0), fb0));
      total[4 * j + 1] = __fadd_rn(total[4 * j + 1], __fmul_rn(__fmul_rn(acc[4 * j + 1], fa0), fb1));
      total[4 * j + 2] = __fadd_rn(total[4 * j + 2], __fmul_rn(__fmul_rn(acc[4 * j + 2], fa1), fb0));
      total[4 * j + 3] = __fadd_rn(total[4 * j + 3], __fmul_rn(__fmul_rn(acc[4 * j + 3], fa1), fb1));
    }
  }
  cp_async_wait<0>();  // (only empty groups can be left; nothing may be in flight at exit)
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const int r = wg * 64 + (warp & 3) * 16 + g + 8 * h;
    if (r >= rows) continue;
    typename TO::S* yr = y + (i64)(row0 + r) * N + n0;
#pragma unroll
    for (int j = 0; j < 16; j++) {
      const int c = 8 * j + 2 * t4;
      if (c < ncols) yr[c] = TO::st(total[4 * j + 2 * h], false);
      if (c + 1 < ncols) yr[c + 1] = TO::st(total[4 * j + 2 * h + 1], false);
    }
  }
}

// The tile of either kind.
template <class TA, class TB, class TO, bool WG>
RL_DEV void fp8g_any_tile(const u8* a, const float* sa, const u8* b, const float* sb, typename TO::S* y, int row0, int rows,
                          int n0, int N, int K, int block_b, bool aligned, u8* smem) {
  if (WG) fp8g_tile_wg<TA, TB, TO>(a, sa, b, sb, y, row0, rows, n0, N, K, block_b, aligned, smem);
  else fp8g_tile<TA, TB, TO>(a, sa, b, sb, y, row0, rows, n0, N, K, block_b, aligned, smem);
}

// Grid (ceil(N/128), ceil(M/128)), 256 threads; dynamic shared memory FP8G_SYNC_STAGES * FP8G_STAGE_BYTES (mma.sync)
// or FP8G_WG_STAGES * FP8G_WG_STAGE_BYTES + 1024 (wgmma).
template <class TA, class TB, class TO, bool WG>
RL_DEV void fp8_gemm(const u8* a, const float* sa, const u8* b, const float* sb, typename TO::S* y, int M, int N, int K,
                     int block_b, int aligned) {
  extern __shared__ __align__(128) u8 fp8g_smem[];
  const int row0 = blockIdx.y * 128;
  const int rows = M - row0 < 128 ? M - row0 : 128;
  fp8g_any_tile<TA, TB, TO, WG>(a, sa, b, sb, y, row0, rows, blockIdx.x * 128, N, K, block_b, aligned != 0, fp8g_smem);
}

// Grid (ceil(N/128), ceil(M/128) + E + 2), 256 threads; dynamic shared memory as fp8_gemm.
template <class TA, class TB, class TO, bool WG>
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
  fp8g_any_tile<TA, TB, TO, WG>(a, sa, b + (i64)s * N * K, sb + (i64)s * NB * KT, y, row0, rows, n0, N, K, 1, aligned != 0, fp8g_smem);
}

#endif
