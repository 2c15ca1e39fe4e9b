// MoE kernels (MODEL_SPEC §4, §7; @ring-linear/moe's ops): the router's expert selection, the
// dispatch plan (a stable counting sort of the routing slots by expert), permute, combine, and the
// grouped GEMMs of the expert FFNs on tensor cores (mma.sync m16n8k16, cp.async pipeline).
//
// The router's gate logits come from the f32-output cuBLASLt GEMM (src/ops/moe.ts); everything
// here reads offsets and routing data from device memory: no host synchronization anywhere.
#pragma once
#include "mma.cuh"

// ---------------------------------------------------------------------------------------------
// Router: one warp per token.
//
// s = sigmoid(logit) (or softmax over the experts), b = s + bias (selection only); with a group
// limit, group score = sum of the group's top-2 values of b, the topkGroup best groups are kept
// (ties to the lower group) and the other groups' entries of b become 0.0; then the top-k of the
// masked b, ties to the lower expert, best first. Selection is a sequence of arg-max rounds in
// the total order (value desc, index asc): round r picks the best element strictly after round
// r-1's pick in that order, so nothing has to be marked.

// (v1, j1) precedes (v2, j2): larger value, then lower index; j = -1 is "nothing yet".
RL_DEV bool moe_better(float v1, int j1, float v2, int j2) {
  if (j1 < 0) return false;
  if (j2 < 0) return true;
  return v1 > v2 || (v1 == v2 && j1 < j2);
}

RL_DEV void moe_warp_best(float& v, int& j) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v2 = __shfl_xor_sync(0xffffffffu, v, o);
    const int j2 = __shfl_xor_sync(0xffffffffu, j, o);
    if (moe_better(v2, j2, v, j)) { v = v2; j = j2; }
  }
}

// logits [N, E] f32; bias [E]; scores [N, E] f32 out; weights [N, K] f32; indices [N, K] i32;
// gscore [N, nGroup] f32 scratch (used when topkGroup < nGroup).
template <class TB>
RL_DEV void moe_route(const float* __restrict__ logits, const typename TB::S* __restrict__ bias, float* scores,
                      float* __restrict__ weights, int* __restrict__ indices, float* gscore, int N, int E, int K,
                      int nGroup, int topkGroup, int softmax, int norm, float scale) {
  const i64 n = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (n >= N) return;
  const float* l = logits + n * E;
  float* s = scores + n * E;
  if (softmax) {
    float m = -__int_as_float(0x7f800000);
    for (int j = lane; j < E; j += 32) m = fmaxf(m, l[j]);
    m = warp_max(m);
    float z = 0.f;
    for (int j = lane; j < E; j += 32) z += expf(l[j] - m);
    z = warp_sum(z);
    for (int j = lane; j < E; j += 32) s[j] = expf(l[j] - m) / z;
  } else {
    // The formula of the elementwise sigmoid kernel (src/kernels/sources.ts), so the kernel and
    // the composite see the same scores.
    for (int j = lane; j < E; j += 32) s[j] = 1.0f / (1.0f + expf(-l[j]));
  }
  __syncwarp();  // the scores are re-read by other lanes below

  const bool limited = topkGroup < nGroup;
  const int size = E / nGroup;
  float* gs = gscore + n * nGroup;
  float tv = 0.f;
  int tg = -1;
  if (limited) {
    for (int g = lane; g < nGroup; g += 32) {
      float m1 = -__int_as_float(0x7f800000), m2 = m1;
      for (int j = g * size; j < (g + 1) * size; j++) {
        const float v = __fadd_rn(s[j], TB::ld(bias[j]));
        if (v > m1) { m2 = m1; m1 = v; } else if (v > m2) { m2 = v; }
      }
      gs[g] = size >= 2 ? __fadd_rn(m1, m2) : m1;
    }
    __syncwarp();
    for (int r = 0; r < topkGroup; r++) {
      float bv = 0.f;
      int bj = -1;
      for (int g = lane; g < nGroup; g += 32) {
        const float v = gs[g];
        if ((r == 0 || moe_better(tv, tg, v, g)) && moe_better(v, g, bv, bj)) { bv = v; bj = g; }
      }
      moe_warp_best(bv, bj);
      tv = bv;
      tg = bj;
    }
  }
  float* w = weights + n * K;
  int* idx = indices + n * K;
  float pv = 0.f;
  int pj = -1;
  for (int r = 0; r < K; r++) {
    float bv = 0.f;
    int bj = -1;
    for (int j = lane; j < E; j += 32) {
      float v = __fadd_rn(s[j], TB::ld(bias[j]));
      if (limited) {
        const int g = j / size;
        const float gv = gs[g];
        if (!(gv > tv || (gv == tv && g <= tg))) v = 0.f;  // a group not kept: 0.0, not -inf (the reference)
      }
      if ((r == 0 || moe_better(pv, pj, v, j)) && moe_better(v, j, bv, bj)) { bv = v; bj = j; }
    }
    moe_warp_best(bv, bj);
    pv = bv;
    pj = bj;
    if (lane == 0) {
      idx[r] = bj;
      w[r] = s[bj];
    }
  }
  __syncwarp();
  if (lane == 0) {
    float scaleBy = 1.f;
    if (norm) {
      float total = 0.f;
      for (int r = 0; r < K; r++) total = __fadd_rn(total, w[r]);
      scaleBy = __fadd_rn(total, 1e-20f);
    }
    for (int r = 0; r < K; r++) {
      const float v = norm ? __fdiv_rn(w[r], scaleBy) : w[r];
      w[r] = __fmul_rn(v, scale);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Dispatch plan: a stable counting sort of the S = N*K slots by bucket (expert id, or E for an id
// outside [0, E)). The slots split into chunks of `chunk` slots, one warp each; counts is a
// [chunks, E+1] table. Pass 1 counts each chunk's buckets; pass 2 (one block) turns the table into
// each (chunk, bucket)'s first row: the bucket's start plus the slots of that bucket in earlier
// chunks; pass 3 walks each chunk again in slot order and hands out rows. Within a warp, the
// lanes of one bucket are ranked with __match_any_sync (lane order = slot order), so the order
// within an expert is the slot order: the CPU's stable sort.

RL_DEV int moe_bucket(int id, int E) { return (id >= 0 && id < E) ? id : E; }

// pass 1 (counts zeroed by the host) and pass 3 (scatter = 1): one warp per chunk.
RL_DEV void moe_plan_walk_warp(const int* __restrict__ ids, int* table, int* __restrict__ slotToRow, int* __restrict__ rowToSlot,
                          i64 S, int E, int chunk, int chunks, bool scatter) {
  const i64 c = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (c >= chunks) return;
  int* row = table + c * (E + 1);
  const i64 begin = c * chunk;
  const i64 end = begin + chunk < S ? begin + chunk : S;
  const u32 below = (1u << lane) - 1u;
  for (i64 base = begin; base < end; base += 32) {
    const i64 j = base + lane;
    const bool valid = j < end;
    const int bkt = valid ? moe_bucket(ids[j], E) : -1;
    const u32 peers = __match_any_sync(0xffffffffu, bkt);
    const int leader = 31 - __clz(peers);
    if (valid) {
      if (scatter) {
        const int r = row[bkt] + __popc(peers & below);
        slotToRow[j] = r;
        rowToSlot[r] = (int)j;
      }
    }
    __syncwarp();
    if (valid && lane == leader) row[bkt] += __popc(peers);
    __syncwarp();
  }
}

// Exclusive scan of one value per thread over the block (blockDim.x a multiple of 32, <= 1024);
// returns the exclusive prefix and sets `total`.
RL_DEV int moe_block_scan(int v, int* shared32, int& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  int inc = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int t = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += t;
  }
  __syncthreads();
  if (lane == 31) shared32[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    int w = lane < warps ? shared32[lane] : 0;
    int wi = w;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int t = __shfl_up_sync(0xffffffffu, wi, o);
      if (lane >= o) wi += t;
    }
    if (lane < warps) shared32[lane] = wi - w;  // exclusive warp offsets
    if (lane == 31) shared32[32] = wi;
  }
  __syncthreads();
  total = shared32[32];
  return shared32[warp] + inc - v;
}

// pass 2: one block. offsets [E+1] = bucket starts (offsets[E] = the valid slots), tokensPerExpert [E].
RL_DEV void moe_plan_scan_block(int* table, int* __restrict__ offsets, int* __restrict__ tokensPerExpert, int E, int chunks) {
  __shared__ int sh[33];
  int carry = 0;
  for (int b0 = 0; b0 <= E; b0 += blockDim.x) {
    const int b = b0 + threadIdx.x;
    int total = 0;
    if (b <= E) {
      for (int c = 0; c < chunks; c++) {
        int* p = table + (i64)c * (E + 1) + b;
        const int t = *p;
        *p = total;
        total += t;
      }
    }
    int sum;
    const int start = carry + moe_block_scan(total, sh, sum);
    if (b <= E) {
      offsets[b] = start;
      if (b < E) tokensPerExpert[b] = total;
      for (int c = 0; c < chunks; c++) table[(i64)c * (E + 1) + b] += start;
    }
    carry += sum;
  }
}

// ---------------------------------------------------------------------------------------------
// Permute: xp[r] = x[rowToSlot[r] / K] (a zero row for a slot outside [0, N*K)), one warp per row,
// V-byte vectors (the host picks the widest V dividing the row's bytes and both addresses).

template <int V> struct MoeVec;
template <> struct MoeVec<16> { typedef uint4 T; static RL_DEV T zero() { return make_uint4(0, 0, 0, 0); } };
template <> struct MoeVec<8> { typedef uint2 T; static RL_DEV T zero() { return make_uint2(0, 0); } };
template <> struct MoeVec<4> { typedef u32 T; static RL_DEV T zero() { return 0u; } };
template <> struct MoeVec<2> { typedef u16 T; static RL_DEV T zero() { return (u16)0; } };
template <> struct MoeVec<1> { typedef u8 T; static RL_DEV T zero() { return (u8)0; } };

template <int V>
RL_DEV void moe_permute(const void* __restrict__ x, void* __restrict__ xp, const int* __restrict__ rowToSlot, i64 rows, int K, i64 rowBytes) {
  typedef typename MoeVec<V>::T VT;
  const i64 r = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (r >= rows) return;
  const int slot = rowToSlot[r];
  const bool valid = slot >= 0 && (i64)slot < rows;
  const i64 nv = rowBytes / V;
  const VT* src = (const VT*)((const char*)x + (valid ? (i64)(slot / K) * rowBytes : 0));
  VT* dst = (VT*)((char*)xp + r * rowBytes);
  for (i64 i = lane; i < nv; i += 32) dst[i] = valid ? src[i] : MoeVec<V>::zero();
}

// ---------------------------------------------------------------------------------------------
// Combine: y[n] = sum_{k=0..K-1} w[n,k] * yp[slotToRow[n,k]] in that order, f32 (each product
// rounded, then added: the composite's mul then sum), rounded once to T. One warp per token; each
// lane VE contiguous elements per step (VE = 16 bytes of T when the host allows, else 1).

template <class T, int VE> struct MoeRowChunk {
  static RL_DEV void load(const typename T::S* p, float* out) {
    if constexpr (VE * sizeof(typename T::S) == 16) {
      const uint4 u = *(const uint4*)p;
      const typename T::S* e = (const typename T::S*)&u;
#pragma unroll
      for (int i = 0; i < VE; i++) out[i] = T::ld(e[i]);
    } else {
#pragma unroll
      for (int i = 0; i < VE; i++) out[i] = T::ld(p[i]);
    }
  }
  static RL_DEV void store(typename T::S* p, const float* v) {
    if constexpr (VE * sizeof(typename T::S) == 16) {
      uint4 u;
      typename T::S* e = (typename T::S*)&u;
#pragma unroll
      for (int i = 0; i < VE; i++) e[i] = T::st(v[i], false);
      *(uint4*)p = u;
    } else {
#pragma unroll
      for (int i = 0; i < VE; i++) p[i] = T::st(v[i], false);
    }
  }
};

template <class T, class TW, int VE>
RL_DEV void moe_combine(const typename T::S* __restrict__ yp, const typename TW::S* __restrict__ w, const int* __restrict__ slotToRow,
                        typename T::S* __restrict__ y, i64 N, int K, i64 H) {
  const i64 n = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (n >= N) return;
  const i64 rows = N * K;
  for (i64 c = (i64)lane * VE; c < H; c += 32 * VE) {
    float acc[VE];
#pragma unroll
    for (int i = 0; i < VE; i++) acc[i] = 0.f;
    for (int k = 0; k < K; k++) {
      const int r = slotToRow[n * K + k];
      const float wk = TW::ld(w[n * K + k]);
      float v[VE];
      if (r >= 0 && (i64)r < rows) {
        MoeRowChunk<T, VE>::load(yp + (i64)r * H + c, v);
      } else {
#pragma unroll
        for (int i = 0; i < VE; i++) v[i] = 0.f;
      }
#pragma unroll
      for (int i = 0; i < VE; i++) acc[i] = __fadd_rn(acc[i], __fmul_rn(wk, v[i]));
    }
    MoeRowChunk<T, VE>::store(y + n * H + c, acc);
  }
}

// ---------------------------------------------------------------------------------------------
// Grouped GEMM: y[r] = x[r] op(W_e) for the rows [offsets[e], offsets[e+1]) of expert e.
//
// A tile list built on the device (moe_gmm_tiles: one block) holds (expert, first row) for every
// 128-row tile of every expert; the GEMM grid is (n tiles, a bound on the tile count) and blocks
// past the list's length exit (or loop, if the bound exceeds the grid). Offsets are clamped to
// [0, R] and made non-decreasing, so bad offsets cannot send a block out of bounds.
//
// Tiles: 128 x 128 outputs per block of 8 warps (2 x 4, each 64 x 32: 4 x 4 mma m16n8k16), k steps
// of BK (64, or 32 for the first version), three cp.async stages (96 or 48 KiB of dynamic shared
// memory). Shared tiles are XOR-swizzled in 16-byte chunks so ldmatrix reads 8 rows without bank
// conflicts. The 16-row slices of a tile past its expert's last row skip their mma (most experts
// end in a partial tile), and so do the zero-padded k steps of a segment's last stage (A^T B).
// The fast path needs in % 8 == 0 and out % 8 == 0 (16-byte rows); the host routes other shapes to
// moe_gmm_simple.

#define MOE_BM 128
#define MOE_BN 128
#define MOE_STAGES 3
#define MOE_THREADS 256

RL_DEV int moe_clamp_offset(const int* offsets, int e, int R) {
  const int v = offsets[e];
  return v < 0 ? 0 : (v > R ? R : v);
}
// Segment [lo, hi) of expert e, clamped and non-decreasing.
RL_DEV void moe_segment(const int* offsets, int e, int R, int& lo, int& hi) {
  lo = moe_clamp_offset(offsets, e, R);
  hi = moe_clamp_offset(offsets, e + 1, R);
  if (hi < lo) hi = lo;
}

// One block: tiles[2t] = expert, tiles[2t+1] = first row; count[0] = number of tiles.
RL_DEV void moe_gmm_tiles_block(const int* __restrict__ offsets, int E, int R, int* __restrict__ tiles, int* __restrict__ count) {
  __shared__ int sh[33];
  int carry = 0;
  for (int e0 = 0; e0 < E; e0 += blockDim.x) {
    const int e = e0 + threadIdx.x;
    int lo = 0, hi = 0;
    if (e < E) moe_segment(offsets, e, R, lo, hi);
    const int n = (hi - lo + MOE_BM - 1) / MOE_BM;
    int sum;
    const int first = carry + moe_block_scan(n, sh, sum);
    for (int t = 0; t < n; t++) {
      tiles[2 * (first + t)] = e;
      tiles[2 * (first + t) + 1] = lo + t * MOE_BM;
    }
    carry += sum;
  }
  if (threadIdx.x == 0) count[0] = carry;
}

// Zeroes the rows of y outside [offsets[0], offsets[E]) (grid-stride over those elements).
template <class T>
RL_DEV void moe_gmm_zero(const int* __restrict__ offsets, int E, int R, typename T::S* __restrict__ y, int out) {
  const int lo = moe_clamp_offset(offsets, 0, R);
  int hi = moe_clamp_offset(offsets, E, R);
  if (hi < lo) hi = lo;
  const i64 before = (i64)lo * out, after = (i64)(R - hi) * out;
  for (i64 i = global_thread(); i < before + after; i += grid_threads()) {
    const i64 at = i < before ? i : (i64)hi * out + (i - before);
    y[at] = T::st(0.f, false);
  }
}

// Shared-tile addressing, 16-byte chunks XOR-swizzled so the 8 rows an ldmatrix reads hit 8
// different bank groups: [rows][BK] tiles (K contiguous; 64 or 128 bytes a row) and [BK][LEN]
// tiles (M or N contiguous; 256 or 512 bytes a row).
template <int BK> RL_DEV int moe_swz_rows(int row, int col);
template <> RL_DEV int moe_swz_rows<32>(int row, int col) { return row * 32 + ((((col >> 3) ^ ((row >> 1) & 3)) << 3) | (col & 7)); }
template <> RL_DEV int moe_swz_rows<64>(int row, int col) { return row * 64 + ((((col >> 3) ^ (row & 7)) << 3) | (col & 7)); }
template <int LEN> RL_DEV int moe_swz_cols(int row, int col) { return row * LEN + ((((col >> 3) ^ (row & 7)) << 3) | (col & 7)); }

// Loads a [ROWS][BK] tile of a row-major matrix (row stride ld, K contiguous): rows [r0, rEnd) and
// columns [k0, kEnd) are read, the rest is zero-filled (no memory read).
template <int BK, int ROWS, class S>
RL_DEV void moe_load_rows(S* sm, const S* g, i64 ld, int r0, int rEnd, int k0, int kEnd) {
  constexpr int CPR = BK / 8;  // chunks per row
#pragma unroll
  for (int i = 0; i < ROWS * CPR / MOE_THREADS; i++) {
    const int c = threadIdx.x + i * MOE_THREADS;
    const int row = c / CPR, col = (c % CPR) * 8;
    const int r = r0 + row, k = k0 + col;
    const bool ok = r < rEnd && k < kEnd;
    cp_async16(sm + moe_swz_rows<BK>(row, col), ok ? (const void*)(g + (i64)r * ld + k) : (const void*)g, ok ? 16 : 0);
  }
}
// Loads a [BK][LEN] tile (rows = k, columns contiguous): rows [k0, kEnd), columns [c0, cEnd).
template <int BK, int LEN, class S>
RL_DEV void moe_load_cols(S* sm, const S* g, i64 ld, int k0, int kEnd, int c0, int cEnd) {
  constexpr int CPR = LEN / 8;
#pragma unroll
  for (int i = 0; i < BK * CPR / MOE_THREADS; i++) {
    const int c = threadIdx.x + i * MOE_THREADS;
    const int row = c / CPR, col = (c % CPR) * 8;
    const int k = k0 + row, n = c0 + col;
    const bool ok = k < kEnd && n < cEnd;
    cp_async16(sm + moe_swz_cols<LEN>(row, col), ok ? (const void*)(g + (i64)k * ld + n) : (const void*)g, ok ? 16 : 0);
  }
}

// The 8 warps' 64 x WN sub-tiles (warps 2 x 4; the block tile is 128 x 4 WN) over one stage of BK.
// A_KMAJOR: A stored [m][k] (else [k][m], 128 wide); B_NK: B stored [n][k] (else [k][n], 4 WN
// wide). mActive: the warp's 16-row slices that hold rows of the segment (0: the warp skips the
// stage; with FINE, the slices past mActive skip their ldmatrix and mma, which costs more in lost
// scheduling than it saves, as measured); kSteps: the 16-wide k steps that hold data.
template <class T, bool A_KMAJOR, bool B_NK, int BK, int WN, bool FINE = false>
RL_DEV void moe_mma_stage(const typename T::S* As, const typename T::S* Bs, float acc[4][WN / 8][4], int wm, int wn, int lane, int mActive, int kSteps) {
  if (mActive == 0) return;  // warp-uniform: no rows of the segment in this warp's half
#pragma unroll
  for (int ks = 0; ks < BK / 16; ks++) {
    if (ks >= kSteps) break;
    const int kk = ks * 16;
    u32 a[4][4], bf[WN / 8][2];
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
      if (!FINE || mi < mActive) {
        const int m0 = wm * 64 + mi * 16;
        if (A_KMAJOR) {
          const int row = m0 + (lane & 15), col = kk + ((lane >> 4) << 3);
          ldmatrix_x4(a[mi], As + moe_swz_rows<BK>(row, col));
        } else {
          const int i = lane >> 3;
          const int k = kk + (lane & 7) + ((i >> 1) << 3), m = m0 + ((i & 1) << 3);
          ldmatrix_x4_trans(a[mi], As + moe_swz_cols<MOE_BM>(k, m));
        }
      }
    }
#pragma unroll
    for (int nj = 0; nj < WN / 16; nj++) {
      const int n0 = wn * WN + nj * 16;
      u32 r[4];
      if (B_NK) {
        const int n = n0 + (lane & 7) + ((lane >> 4) << 3), k = kk + (((lane >> 3) & 1) << 3);
        ldmatrix_x4(r, Bs + moe_swz_rows<BK>(n, k));
      } else {
        const int k = kk + (lane & 7) + (((lane >> 3) & 1) << 3), n = n0 + ((lane >> 4) << 3);
        ldmatrix_x4_trans(r, Bs + moe_swz_cols<4 * WN>(k, n));
      }
      bf[2 * nj][0] = r[0];
      bf[2 * nj][1] = r[1];
      bf[2 * nj + 1][0] = r[2];
      bf[2 * nj + 1][1] = r[3];
    }
#pragma unroll
    for (int mi = 0; mi < 4; mi++)
      if (!FINE || mi < mActive)
#pragma unroll
        for (int ni = 0; ni < WN / 8; ni++) Mma<T>::run(acc[mi][ni], a[mi], bf[ni]);
  }
}

// Writes the accumulators of a 128 x 4 WN tile at (r0, c0) of a row-major [rEnd, cols] output
// (rows >= rEnd and columns >= cols skipped; cols is even).
template <class T, int WN>
RL_DEV void moe_store_tile(typename T::S* out, i64 ld, int r0, int rEnd, int c0, int cols, float acc[4][WN / 8][4], int wm, int wn, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int mi = 0; mi < 4; mi++)
#pragma unroll
    for (int ni = 0; ni < WN / 8; ni++) {
      const int col = c0 + wn * WN + ni * 8 + 2 * t;
      if (col >= cols) continue;
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int row = r0 + wm * 64 + mi * 16 + g + 8 * h;
        if (row < rEnd) *(u32*)(out + (i64)row * ld + col) = pack2<T>(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
      }
    }
}

// The same through shared memory: the fragments go to a [128][4 WN + 8] staging tile `ep`, then
// each thread writes 16-byte chunks of whole rows (coalesced; cols % 8 == 0 and 16-byte aligned
// rows). Every thread of the block must call it; `ep` must be free (its previous readers past a
// barrier).
template <class T, int WN>
RL_DEV void moe_store_tile_smem(typename T::S* out, i64 ld, int r0, int rEnd, int c0, int cols, float acc[4][WN / 8][4], int wm, int wn, int lane, typename T::S* ep) {
  constexpr int BN = 4 * WN, LD = BN + 8;
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int mi = 0; mi < 4; mi++)
#pragma unroll
    for (int ni = 0; ni < WN / 8; ni++)
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int row = wm * 64 + mi * 16 + g + 8 * h, col = wn * WN + ni * 8 + 2 * t;
        *(u32*)(ep + row * LD + col) = pack2<T>(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
      }
  __syncthreads();
  for (int i = threadIdx.x; i < MOE_BM * (BN / 8); i += MOE_THREADS) {
    const int row = i / (BN / 8), ch = i % (BN / 8);
    const int r = r0 + row, c = c0 + ch * 8;
    if (r < rEnd && c < cols) *(uint4*)(out + (i64)r * ld + c) = *(const uint4*)(ep + row * LD + ch * 8);
  }
}

template <int WN>
RL_DEV void moe_zero_acc(float acc[4][WN / 8][4]) {
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < WN / 8; j++)
#pragma unroll
      for (int q = 0; q < 4; q++) acc[i][j][q] = 0.f;
}

// x [R, in]; weights: table[e] (a list) or base + e * out * in (stacked); y [R, out]. Block tile
// 128 x 4 WN. SKIP (a tile at an expert's tail): 1 skips the mma of 16-row slices past the
// segment's end, 2 only that of a warp whose 64 rows are all past it; EP: stage the output tile through the (then free) pipeline buffers; STAGES: cp.async
// pipeline depth.
template <class T, bool TRANSB, int BK, int SKIP, bool EP, int WN, int STAGES>
RL_DEV void moe_gmm(const typename T::S* __restrict__ x, const typename T::S* const* __restrict__ table, const typename T::S* __restrict__ base,
                    const int* __restrict__ tiles, const int* __restrict__ count, const int* __restrict__ offsets, typename T::S* __restrict__ y,
                    int R, int in, int out) {
  typedef typename T::S S;
  constexpr int BN = 4 * WN;
  extern __shared__ __align__(128) unsigned char moe_smem[];
  S* As = (S*)moe_smem;                        // [STAGES][128 * BK]
  S* Bs = As + STAGES * MOE_BM * BK;       // [STAGES][BN * BK]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = warp & 1, wn = warp >> 1;
  const int ntiles = count[0];
  const int c0 = blockIdx.x * BN;
  const int nk = (in + BK - 1) / BK;
  for (int ti = blockIdx.y; ti < ntiles; ti += gridDim.y) {
    const int e = tiles[2 * ti], r0 = tiles[2 * ti + 1];
    int lo, hi;
    moe_segment(offsets, e, R, lo, hi);
    const S* W = table ? table[e] : base + (i64)e * out * in;
    int mActive = 4;
    if (SKIP) {
      const int rows = hi - r0 - wm * 64;
      mActive = rows <= 0 ? 0 : (rows >= 64 || SKIP == 2 ? 4 : (rows + 15) >> 4);
    }
    auto load = [&](int stage, int kt) {
      const int k0 = kt * BK;
      moe_load_rows<BK, MOE_BM>(As + stage * MOE_BM * BK, x, in, r0, hi, k0, in);
      if (TRANSB) moe_load_rows<BK, BN>(Bs + stage * BN * BK, W, in, c0, out, k0, in);
      else moe_load_cols<BK, BN>(Bs + stage * BN * BK, W, out, k0, in, c0, out);
    };
    float acc[4][WN / 8][4];
    moe_zero_acc<WN>(acc);
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
      if (s < nk) load(s, s);
      cp_async_commit();
    }
    for (int kt = 0; kt < nk; kt++) {
      cp_async_wait<STAGES - 2>();
      __syncthreads();
      const int pre = kt + STAGES - 1;
      if (pre < nk) load(pre % STAGES, pre);
      cp_async_commit();
      const int st = kt % STAGES;
      moe_mma_stage<T, true, TRANSB, BK, WN, SKIP == 1>(As + st * MOE_BM * BK, Bs + st * BN * BK, acc, wm, wn, lane, mActive, (in - kt * BK + 15) >> 4);
    }
    cp_async_wait<0>();
    __syncthreads();  // the stages are free: the epilogue may stage through them
    if (EP) {
      moe_store_tile_smem<T, WN>(y, out, r0, hi, c0, out, acc, wm, wn, lane, As);
      __syncthreads();  // the next tile's prologue overwrites the staging tile
    } else {
      moe_store_tile<T, WN>(y, out, r0, hi, c0, out, acc, wm, wn, lane);
    }
  }
}

// Expert e's output of the A^T B kernels: table[e] or base + e * P * Q.
template <class S> RL_DEV S* moe_atb_out(S* const* table, S* base, int e, int P, int Q) { return table ? table[e] : base + (i64)e * P * Q; }

// out_e = a_e^T b_e over the rows [offsets[e], offsets[e+1]): a [R, P], b [R, Q], out [P, Q].
// grid (Q tiles, P tiles, ceil(E / G)): a block does its (P, Q) tile for G experts in turn, with
// one cp.async pipeline running across the experts' row tiles (an expert has few rows: a block per
// expert would spend most of its time filling and draining the pipeline). An expert without rows
// gets zeros.
template <class T, int BK, bool EP, bool KSKIP, int STAGES>
RL_DEV void moe_gmm_atb(const typename T::S* __restrict__ a, const typename T::S* __restrict__ b, const int* __restrict__ offsets,
                        typename T::S* const* __restrict__ table, typename T::S* __restrict__ base, int R, int P, int Q, int E, int G) {
  typedef typename T::S S;
  extern __shared__ __align__(128) unsigned char moe_smem[];
  S* As = (S*)moe_smem;
  S* Bs = As + STAGES * MOE_BM * BK;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = warp & 1, wn = warp >> 1;
  const int p0 = blockIdx.y * MOE_BM, q0 = blockIdx.x * MOE_BN;
  const int e0 = blockIdx.z * G;
  const int e1 = e0 + G < E ? e0 + G : E;
  auto tilesOf = [&](int e) {
    int lo, hi;
    moe_segment(offsets, e, R, lo, hi);
    return (hi - lo + BK - 1) / BK;
  };
  // Experts without rows: zero tiles, written first.
  for (int e = e0; e < e1; e++) {
    if (tilesOf(e) == 0) {
      S* out = moe_atb_out(table, base, e, P, Q);
      for (int i = threadIdx.x; i < MOE_BM * MOE_BN / 2; i += MOE_THREADS) {
        const int row = p0 + i / (MOE_BN / 2), col = q0 + 2 * (i % (MOE_BN / 2));
        if (row < P && col < Q) *(u32*)(out + (i64)row * Q + col) = 0u;
      }
    }
  }
  // Producer cursor (pe, pkt): the next (expert, row tile) to load; skips experts without rows.
  int pe = e0, pkt = 0;
  while (pe < e1 && tilesOf(pe) == 0) pe++;
  int pn = pe < e1 ? tilesOf(pe) : 0;
  auto loadNext = [&](int stage) {
    if (pe >= e1) return;
    int lo, hi;
    moe_segment(offsets, pe, R, lo, hi);
    const int k0 = lo + pkt * BK;
    moe_load_cols<BK, MOE_BM>(As + stage * MOE_BM * BK, a, P, k0, hi, p0, P);
    moe_load_cols<BK, MOE_BN>(Bs + stage * MOE_BN * BK, b, Q, k0, hi, q0, Q);
    if (++pkt >= pn) {
      pkt = 0;
      do pe++; while (pe < e1 && tilesOf(pe) == 0);
      pn = pe < e1 ? tilesOf(pe) : 0;
    }
  };
  int total = 0;
  for (int e = e0; e < e1; e++) total += tilesOf(e);
  // Consumer cursor (ce, ckt).
  int ce = e0;
  while (ce < e1 && tilesOf(ce) == 0) ce++;
  int ckt = 0, cn = ce < e1 ? tilesOf(ce) : 0, clo = 0, chi = 0;
  if (ce < e1) moe_segment(offsets, ce, R, clo, chi);
  float acc[4][4][4];
  moe_zero_acc<32>(acc);
#pragma unroll
  for (int s = 0; s < STAGES - 1; s++) {
    loadNext(s);
    cp_async_commit();
  }
  for (int t = 0; t < total; t++) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    loadNext((t + STAGES - 1) % STAGES);
    cp_async_commit();
    const int st = t % STAGES;
    moe_mma_stage<T, false, false, BK, 32>(As + st * MOE_BM * BK, Bs + st * MOE_BN * BK, acc, wm, wn, lane, 4, KSKIP ? (chi - clo - ckt * BK + 15) >> 4 : BK / 16);
    if (++ckt >= cn) {
      // (The staging tile after the stages: its previous readers passed this iteration's barrier.)
      if (EP) moe_store_tile_smem<T, 32>(moe_atb_out(table, base, ce, P, Q), Q, p0, P, q0, Q, acc, wm, wn, lane, Bs + STAGES * MOE_BN * BK);
      else moe_store_tile<T, 32>(moe_atb_out(table, base, ce, P, Q), Q, p0, P, q0, Q, acc, wm, wn, lane);
      moe_zero_acc<32>(acc);
      ckt = 0;
      do ce++; while (ce < e1 && tilesOf(ce) == 0);
      cn = ce < e1 ? tilesOf(ce) : 0;
      if (ce < e1) moe_segment(offsets, ce, R, clo, chi);
    }
  }
  cp_async_wait<0>();
}

// ---------------------------------------------------------------------------------------------
// Scalar fallbacks for shapes the tiled kernels do not take (in or out not a multiple of 8, f32):
// one thread per output, f32 accumulation in k order.

// The expert owning row r (the last e with lo_e <= r), or -1 when r is outside every segment.
RL_DEV int moe_expert_of(const int* offsets, int E, int R, int r) {
  int lo = 0, hi = E - 1, found = -1;
  while (lo <= hi) {
    const int mid = (lo + hi) >> 1;
    if (moe_clamp_offset(offsets, mid, R) <= r) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
  }
  if (found < 0) return -1;
  int s0, s1;
  moe_segment(offsets, found, R, s0, s1);
  return (r >= s0 && r < s1) ? found : -1;
}

template <class T>
RL_DEV void moe_gmm_simple(const typename T::S* __restrict__ x, const typename T::S* const* __restrict__ table, const typename T::S* __restrict__ base,
                           const int* __restrict__ offsets, int E, typename T::S* __restrict__ y, int R, int in, int out, int transB) {
  for (i64 i = global_thread(); i < (i64)R * out; i += grid_threads()) {
    const int r = (int)(i / out), j = (int)(i % out);
    const int e = moe_expert_of(offsets, E, R, r);
    float acc = 0.f;
    if (e >= 0) {
      const typename T::S* W = table ? table[e] : base + (i64)e * out * in;
      for (int k = 0; k < in; k++) {
        const float wv = T::ld(transB ? W[(i64)j * in + k] : W[(i64)k * out + j]);
        acc = fmaf(T::ld(x[(i64)r * in + k]), wv, acc);
      }
    }
    y[i] = T::st(acc, false);
  }
}

template <class T>
RL_DEV void moe_gmm_atb_simple(const typename T::S* __restrict__ a, const typename T::S* __restrict__ b, const int* __restrict__ offsets, int E,
                               typename T::S* const* __restrict__ table, typename T::S* __restrict__ base, int R, int P, int Q) {
  for (i64 i = global_thread(); i < (i64)E * P * Q; i += grid_threads()) {
    const int e = (int)(i / ((i64)P * Q));
    const i64 pq = i % ((i64)P * Q);
    const int p = (int)(pq / Q), q = (int)(pq % Q);
    int lo, hi;
    moe_segment(offsets, e, R, lo, hi);
    float acc = 0.f;
    for (int r = lo; r < hi; r++) acc = fmaf(T::ld(a[(i64)r * P + p]), T::ld(b[(i64)r * Q + q]), acc);
    typename T::S* out = table ? table[e] : base + (i64)e * P * Q;
    out[pq] = T::st(acc, false);
  }
}
