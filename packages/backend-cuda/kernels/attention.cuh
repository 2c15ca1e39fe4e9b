// Decode-path attention kernels (MODEL_SPEC §2-3; the ops are defined in @ring-linear/attention):
//
// lightningAttentionStep — the recurrent lightning step, per (sequence b, head h):
//   S_t = lambda_h S_{t-1} + k_t^T v_t,  o_t = s q_t S_t,  lambda_h = exp(-a_h),  S fp32 [D, Dv].
//   Each state element belongs to one thread for the whole launch: it is read once, updated for
//   every token in registers and written once (16-byte accesses when Dv % 4 == 0; a warp covers a
//   row of 32 * VEC columns, the 8 warps of a block take rows d = w, w + 8, ...). q, k and v of up
//   to LS_TOKENS tokens are staged in shared memory as f32; each thread keeps the partial products
//   q_t[d] S_t[d][c] of its rows per token and the block sums them over its warps. Few heads (small
//   batch): the rows of a head are split over `rowChunks` blocks that write f32 partial outputs,
//   summed by a second kernel in a fixed order (deterministic). Longer T: passes of LS_TOKENS
//   tokens, the state carried in `newState` between passes.
//
// softmaxAttention — split-K ("flash-decoding") forward against a KV cache with grouped-query heads:
//   a block owns one (b, kv head) group, a tile of up to SA_ROWS rows (row r = query i * G + the
//   group's head g, so the G heads sharing a kv head read each key once) and one chunk of keys.
//   Per tile of SA_KEYS keys: warps score the keys (lanes split the channels, 4 per lane when
//   D % 4 == 0), one warp per row runs the online softmax (running max m and sum l, the
//   accumulator rescaled by exp(m_old - m_new)), and the probabilities times V accumulate in
//   registers (lane = 4 value columns when Dv % 4 == 0, else 1; warps split the keys). The block
//   writes its chunk's (m, l, acc); a combine kernel merges the chunks of a row:
//   out = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s and lse = M + log(sum_s e^(m_s - M) l_s).
//   Query i sits at position kvOffset + i; key j is visible when j < nk and (not causal or
//   j <= kvOffset + i). Packed sequences run one launch pair per sequence (q0/k0 offsets).
//
// rope — the rotary embedding of q and k in one launch per tensor (at the end of this file).
#pragma once
#ifndef RING_LINEAR_ATTENTION_CUH
#define RING_LINEAR_ATTENTION_CUH
#include "common.cuh"

#define LS_TOKENS 4
#define LS_WARPS 8
#define LS_ROWS_BATCH 4
#define SA_BATCH 4
#define SA_ROWS 8
#define SA_KEYS 64
#define SA_WARPS 4

// Loads VEC consecutive elements of T as f32 (VEC = 4: one aligned 8- or 16-byte load).
template <class T, int VEC> RL_DEV void load_vec(const typename T::S* p, float* out) {
  if (VEC == 4) {
    const Vec<typename T::S, 4> v = *reinterpret_cast<const Vec<typename T::S, 4>*>(p);
#pragma unroll
    for (int x = 0; x < 4; x++) out[x] = T::ld(v.e[x]);
  } else {
#pragma unroll
    for (int x = 0; x < VEC; x++) out[x] = T::ld(p[x]);
  }
}

// ---------------------------------------------------------------------------------------------
// Lightning step. Grid: x = b * H + h, y = column tile + colTiles * row chunk; 256 threads.
// Dynamic shared memory: 2 * LS_TOKENS * D floats (q and k of a pass).

template <class T, int VEC>
RL_DEV void lightning_step(const typename T::S* __restrict__ q, const typename T::S* __restrict__ k, const typename T::S* __restrict__ v,
                           const float* __restrict__ decay, const float* s0, typename T::S* __restrict__ out,
                           float* s1, float* __restrict__ opart, int B, int Tn, int H, int D, int Dv, float scale,
                           int rowChunks, int rowsPerChunk) {
  extern __shared__ float ls_dyn[];
  float* qs = ls_dyn;                  // [LS_TOKENS][D]
  float* ks = ls_dyn + LS_TOKENS * D;  // [LS_TOKENS][D]
  __shared__ float vs[LS_TOKENS][32 * VEC];
  __shared__ float red[LS_WARPS][LS_TOKENS][32 * VEC];
  const int COLS = 32 * VEC;
  const int colTiles = (Dv + COLS - 1) / COLS;
  const int ct = blockIdx.y % colTiles;
  const int rc = blockIdx.y / colTiles;
  const int bh = blockIdx.x;
  const int b = bh / H, h = bh - (bh / H) * H;
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  const int c0 = ct * COLS + lane * VEC;  // this thread's first column
  const bool colOk = c0 < Dv;             // VEC == 4 implies Dv % 4 == 0, so the whole vector is in range
  const int d0 = rc * rowsPerChunk;
  const int d1 = min(D, d0 + rowsPerChunk);
  const float lambda = expf(-decay[h]);
  const i64 sBase = (i64)bh * D * Dv;

  for (int t0 = 0; t0 < Tn; t0 += LS_TOKENS) {
    const int nt = min(LS_TOKENS, Tn - t0);
    // Stage q and k (all D channels) and v (this tile's columns) of the pass as f32.
    for (int x = tid; x < nt * D; x += blockDim.x) {
      const int t = x / D, d = x - (x / D) * D;
      const i64 at = (((i64)b * Tn + t0 + t) * H + h) * D + d;
      qs[t * D + d] = T::ld(q[at]);
      ks[t * D + d] = T::ld(k[at]);
    }
    for (int x = tid; x < nt * COLS; x += blockDim.x) {
      const int t = x / COLS, c = ct * COLS + (x - t * COLS);
      vs[t][x - t * COLS] = c < Dv ? T::ld(v[(((i64)b * Tn + t0 + t) * H + h) * Dv + c]) : 0.0f;
    }
    __syncthreads();
    float acc[LS_TOKENS][VEC];
#pragma unroll
    for (int t = 0; t < LS_TOKENS; t++)
#pragma unroll
      for (int x = 0; x < VEC; x++) acc[t][x] = 0.0f;
    // Pass 0 reads `state`, later passes the state the previous pass left in `newState` (the
    // same thread wrote it; the barrier at the end of each pass orders the two).
    const float* src = t0 == 0 ? s0 : s1;
    if (colOk) {
      // LS_ROWS_BATCH rows at a time: every load of the batch is issued before the first use.
      for (int dg = d0 + w; dg < d1; dg += LS_WARPS * LS_ROWS_BATCH) {
        float s[LS_ROWS_BATCH][VEC];
#pragma unroll
        for (int u = 0; u < LS_ROWS_BATCH; u++) {
          const int d = dg + u * LS_WARPS;
          if (d < d1) {
            const i64 at = sBase + (i64)d * Dv + c0;
            if (VEC == 4) {
              const float4 s4 = *reinterpret_cast<const float4*>(src + at);
              s[u][0] = s4.x; s[u][1] = s4.y; s[u][2] = s4.z; s[u][3] = s4.w;
            } else {
#pragma unroll
              for (int x = 0; x < VEC; x++) s[u][x] = src[at + x];
            }
          }
        }
#pragma unroll
        for (int u = 0; u < LS_ROWS_BATCH; u++) {
          const int d = dg + u * LS_WARPS;
          if (d < d1) {
#pragma unroll
            for (int t = 0; t < LS_TOKENS; t++) {
              if (t < nt) {
                const float kd = ks[t * D + d], qd = qs[t * D + d];
#pragma unroll
                for (int x = 0; x < VEC; x++) {
                  s[u][x] = fmaf(lambda, s[u][x], kd * vs[t][lane * VEC + x]);
                  acc[t][x] = fmaf(qd, s[u][x], acc[t][x]);
                }
              }
            }
            const i64 at = sBase + (i64)d * Dv + c0;
            if (VEC == 4) {
              *reinterpret_cast<float4*>(s1 + at) = make_float4(s[u][0], s[u][1], s[u][2], s[u][3]);
            } else {
#pragma unroll
              for (int x = 0; x < VEC; x++) s1[at + x] = s[u][x];
            }
          }
        }
      }
    }
#pragma unroll
    for (int t = 0; t < LS_TOKENS; t++)
#pragma unroll
      for (int x = 0; x < VEC; x++) red[w][t][lane * VEC + x] = acc[t][x];
    __syncthreads();
    // Sum over the warps (fixed order) and store, or keep the chunk's partial for the combine.
    for (int x = tid; x < nt * COLS; x += blockDim.x) {
      const int t = x / COLS, cc = x - t * COLS, c = ct * COLS + cc;
      if (c >= Dv) continue;
      float o = 0.0f;
#pragma unroll
      for (int ww = 0; ww < LS_WARPS; ww++) o += red[ww][t][cc];
      const i64 oi = (((i64)b * Tn + t0 + t) * H + h) * Dv + c;
      if (rowChunks == 1) out[oi] = T::st(o * scale, false);
      else opart[(i64)rc * B * Tn * H * Dv + oi] = o;
    }
    __syncthreads();
  }
}

// out = scale * sum over row chunks of the partial outputs (n = B * T * H * Dv elements).
template <class T>
RL_DEV void lightning_step_combine(const float* __restrict__ opart, typename T::S* __restrict__ out, i64 n, int rowChunks, float scale) {
  for (i64 i = global_thread(); i < n; i += grid_threads()) {
    float o = 0.0f;
    for (int r = 0; r < rowChunks; r++) o += opart[(i64)r * n + i];
    out[i] = T::st(o * scale, false);
  }
}

// ---------------------------------------------------------------------------------------------
// Softmax attention, split over keys. Grid: x = split + nsplit * (row tile + rowTiles * column
// tile), y = b * Hkv + kv head; SA_WARPS * 32 threads; dynamic shared memory SA_ROWS * D floats.
// Partials of row r of group bh, split s at p = (bh * R + r) * nsplit + s: pm[p], pl[p],
// pacc[p * Dv + c].

template <class T, int VD, int VV>
RL_DEV void softmax_attn_split(const typename T::S* __restrict__ q, const typename T::S* __restrict__ k, const typename T::S* __restrict__ v,
                               float* __restrict__ pm, float* __restrict__ pl, float* __restrict__ pacc, int Tq, int Tk, int H, int Hkv,
                               int D, int Dv, int q0, int nq, int k0, int nk, int kvOffset, int causal, float scale, int chunk, int nsplit) {
  extern __shared__ float sa_dyn[];
  float* qs = sa_dyn;  // [SA_ROWS][D]
  __shared__ float sc[SA_ROWS][SA_KEYS];
  __shared__ float alpha[SA_ROWS];
  __shared__ float mrow[SA_ROWS];
  __shared__ float lrow[SA_ROWS];
  __shared__ float red[SA_WARPS][SA_ROWS][32 * VV];
  const int COLS = 32 * VV;
  const int G = H / Hkv;
  const int R = nq * G;
  const int rowTiles = (R + SA_ROWS - 1) / SA_ROWS;
  const int s = blockIdx.x % nsplit;
  const int rt = (blockIdx.x / nsplit) % rowTiles;
  const int ct = blockIdx.x / (nsplit * rowTiles);
  const int bh = blockIdx.y;
  const int b = bh / Hkv, hk = bh - (bh / Hkv) * Hkv;
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  const int r0 = rt * SA_ROWS;
  const int nr = min(SA_ROWS, R - r0);

  // Rows' queries (f32, zero rows past the tile) and the key range any row of the tile sees.
  for (int x = tid; x < SA_ROWS * D; x += blockDim.x) {
    const int r = x / D, c = x - (x / D) * D;
    float val = 0.0f;
    if (r < nr) {
      const int rr = r0 + r, i = rr / G, hq = hk * G + (rr - (rr / G) * G);
      val = T::ld(q[(((i64)b * Tq + q0 + i) * H + hq) * D + c]);
    }
    qs[x] = val;
  }
  if (tid < SA_ROWS) {
    mrow[tid] = (-__int_as_float(0x7f800000));
    lrow[tid] = 0.0f;
  }
  const int lastI = (r0 + nr - 1) / G;
  const int hiTile = causal ? min(nk, kvOffset + lastI + 1) : nk;
  const int kBegin = s * chunk;
  const int kEnd = min(hiTile, kBegin + chunk);
  float acc[SA_ROWS][VV];
#pragma unroll
  for (int r = 0; r < SA_ROWS; r++)
#pragma unroll
    for (int x = 0; x < VV; x++) acc[r][x] = 0.0f;
  const int c0 = ct * COLS + lane * VV;
  const bool colOk = c0 < Dv;
  __syncthreads();

  for (int kt = kBegin; kt < kEnd; kt += SA_KEYS) {
    // 1. Scores of the tile's keys: warp w takes keys w, w + SA_WARPS, ..., SA_BATCH at a time
    //    (their loads issued together), lanes over the channels, then a warp sum per (key, row).
    for (int u0 = 0; u0 < SA_KEYS / SA_WARPS; u0 += SA_BATCH) {
      float dot[SA_BATCH][SA_ROWS];
#pragma unroll
      for (int u = 0; u < SA_BATCH; u++)
#pragma unroll
        for (int r = 0; r < SA_ROWS; r++) dot[u][r] = 0.0f;
      if (kt + w + SA_WARPS * u0 < kEnd) {
        for (int c = lane * VD; c < D; c += 32 * VD) {
          float kv[SA_BATCH][VD];
#pragma unroll
          for (int u = 0; u < SA_BATCH; u++) {
            const int j = kt + w + SA_WARPS * (u0 + u);
            if (j < kEnd) {
              load_vec<T, VD>(k + (((i64)b * Tk + k0 + j) * Hkv + hk) * D + c, kv[u]);
            } else {
#pragma unroll
              for (int x = 0; x < VD; x++) kv[u][x] = 0.0f;
            }
          }
#pragma unroll
          for (int r = 0; r < SA_ROWS; r++)
#pragma unroll
            for (int x = 0; x < VD; x++) {
              const float qx = qs[r * D + c + x];
#pragma unroll
              for (int u = 0; u < SA_BATCH; u++) dot[u][r] = fmaf(qx, kv[u][x], dot[u][r]);
            }
        }
      }
#pragma unroll
      for (int u = 0; u < SA_BATCH; u++) {
#pragma unroll
        for (int r = 0; r < SA_ROWS; r++) dot[u][r] = warp_sum(dot[u][r]);
        const int jj = w + SA_WARPS * (u0 + u);
        const int j = kt + jj;
        if (lane < SA_ROWS) {
          float val = dot[u][0];
#pragma unroll
          for (int r = 1; r < SA_ROWS; r++) if (lane == r) val = dot[u][r];
          const int i = (r0 + lane) / G;
          const bool vis = lane < nr && j < kEnd && (!causal || j <= kvOffset + i);
          sc[lane][jj] = vis ? val * scale : (-__int_as_float(0x7f800000));
        }
      }
    }
    __syncthreads();
    // 2. Online softmax, a warp per row, lanes over the keys (two each).
    for (int r = w; r < SA_ROWS; r += SA_WARPS) {
      const float a0 = sc[r][lane], a1 = sc[r][lane + 32];
      const float mt = warp_max(fmaxf(a0, a1));
      const float mo = mrow[r];
      const float mn = fmaxf(mo, mt);
      const float p0 = a0 == (-__int_as_float(0x7f800000)) ? 0.0f : expf(a0 - mn);
      const float p1 = a1 == (-__int_as_float(0x7f800000)) ? 0.0f : expf(a1 - mn);
      const float ps = warp_sum(p0 + p1);
      sc[r][lane] = p0;
      sc[r][lane + 32] = p1;
      __syncwarp();
      if (lane == 0) {
        const float al = mn == (-__int_as_float(0x7f800000)) ? 1.0f : expf(mo - mn);
        alpha[r] = al;
        mrow[r] = mn;
        lrow[r] = lrow[r] * al + ps;
      }
    }
    __syncthreads();
    // 3. acc = alpha acc + P V: lanes over the value columns, warps over the keys.
#pragma unroll
    for (int r = 0; r < SA_ROWS; r++)
#pragma unroll
      for (int x = 0; x < VV; x++) acc[r][x] *= alpha[r];
    if (colOk) {
      for (int u0 = 0; u0 < SA_KEYS / SA_WARPS && kt + w + SA_WARPS * u0 < kEnd; u0 += SA_BATCH) {
        float vv[SA_BATCH][VV];
#pragma unroll
        for (int u = 0; u < SA_BATCH; u++) {
          const int j = kt + w + SA_WARPS * (u0 + u);
          if (j < kEnd) {
            load_vec<T, VV>(v + (((i64)b * Tk + k0 + j) * Hkv + hk) * Dv + c0, vv[u]);
          } else {
#pragma unroll
            for (int x = 0; x < VV; x++) vv[u][x] = 0.0f;  // its probability is 0 too
          }
        }
#pragma unroll
        for (int u = 0; u < SA_BATCH; u++) {
          const int jj = w + SA_WARPS * (u0 + u);
#pragma unroll
          for (int r = 0; r < SA_ROWS; r++) {
            const float p = sc[r][jj];
#pragma unroll
            for (int x = 0; x < VV; x++) acc[r][x] = fmaf(p, vv[u][x], acc[r][x]);
          }
        }
      }
    }
    __syncthreads();
  }
  // Sum the warps' accumulators (fixed order) and write the chunk's partials.
#pragma unroll
  for (int r = 0; r < SA_ROWS; r++)
#pragma unroll
    for (int x = 0; x < VV; x++) red[w][r][lane * VV + x] = acc[r][x];
  __syncthreads();
  const i64 pBase = (i64)bh * R + r0;
  for (int x = tid; x < nr * COLS; x += blockDim.x) {
    const int r = x / COLS, cc = x - r * COLS, c = ct * COLS + cc;
    if (c >= Dv) continue;
    float o = 0.0f;
#pragma unroll
    for (int ww = 0; ww < SA_WARPS; ww++) o += red[ww][r][cc];
    pacc[((pBase + r) * nsplit + s) * Dv + c] = o;
  }
  if (ct == 0 && tid < nr) {
    pm[(pBase + tid) * nsplit + s] = mrow[tid];
    pl[(pBase + tid) * nsplit + s] = lrow[tid];
  }
}

// Merges the splits of a row. Grid: x = row r of the group, y = b * Hkv + kv head; 128 threads
// (SA_COMBINE_THREADS). With few sequences a row has hundreds of splits (batch 1: 128 at 32K
// context), so the split loop is spread over the threads: M = max_s m_s and
// L = sum_s e^(m_s - M) l_s are block reductions (fixed order), the weights e^(m_s - M) go to
// shared memory SA_COMBINE_SPLITS at a time, and each thread sums its output columns over them with
// 4 independent accumulators (4 loads in flight), added in a fixed order.
#define SA_COMBINE_THREADS 128
#define SA_COMBINE_SPLITS 256

// Block-wide max or sum of one value per thread (SA_COMBINE_THREADS threads), in a fixed order.
template <bool MAX> RL_DEV float combine_block_reduce(float v, float* red) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  v = MAX ? warp_max(v) : warp_sum(v);
  __syncthreads();  // red may still be read from the previous reduction
  if (lane == 0) red[w] = v;
  __syncthreads();
  float r = red[0];
#pragma unroll
  for (int i = 1; i < SA_COMBINE_THREADS / 32; i++) r = MAX ? fmaxf(r, red[i]) : r + red[i];
  return r;
}

template <class T>
RL_DEV void softmax_attn_combine(const float* __restrict__ pm, const float* __restrict__ pl, const float* __restrict__ pacc,
                                 typename T::S* __restrict__ out, float* __restrict__ lse, int Tq, int H, int Hkv, int Dv, int q0, int nq,
                                 int nsplit) {
  __shared__ float red[SA_COMBINE_THREADS / 32];
  __shared__ float wsh[SA_COMBINE_SPLITS];
  const int G = H / Hkv;
  const int R = nq * G;
  const int r = blockIdx.x, bh = blockIdx.y;
  const int b = bh / Hkv, hk = bh - (bh / Hkv) * Hkv;
  const int i = r / G, h = hk * G + (r - (r / G) * G);
  const int tid = threadIdx.x;
  const i64 p0 = ((i64)bh * R + r) * nsplit;
  const float NEG = (-__int_as_float(0x7f800000));
  float m = NEG;
  for (int s = tid; s < nsplit; s += SA_COMBINE_THREADS) m = fmaxf(m, pm[p0 + s]);
  const float M = combine_block_reduce<true>(m, red);
  float l = 0.0f;
  for (int s = tid; s < nsplit; s += SA_COMBINE_THREADS) {
    const float ms = pm[p0 + s];
    if (ms != NEG) l += expf(ms - M) * pl[p0 + s];
  }
  const float L = combine_block_reduce<false>(l, red);
  const float invL = 1.0f / L;
  // Columns c = tid, tid + 128, ... (Dv up to any size); splits in batches of SA_COMBINE_SPLITS.
  for (int c0 = 0; c0 < Dv; c0 += SA_COMBINE_THREADS) {
    const int c = c0 + tid;
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    for (int sb = 0; sb < nsplit; sb += SA_COMBINE_SPLITS) {
      const int ns = min(SA_COMBINE_SPLITS, nsplit - sb);
      __syncthreads();  // the previous batch's weights are no longer read
      for (int s = tid; s < ns; s += SA_COMBINE_THREADS) {
        const float ms = pm[p0 + sb + s];
        wsh[s] = ms != NEG ? expf(ms - M) : 0.0f;
      }
      __syncthreads();
      if (c < Dv) {
        const float* pa = pacc + (p0 + sb) * Dv + c;
        int s = 0;
        for (; s + 4 <= ns; s += 4) {
          a0 = fmaf(wsh[s], pa[(i64)s * Dv], a0);
          a1 = fmaf(wsh[s + 1], pa[(i64)(s + 1) * Dv], a1);
          a2 = fmaf(wsh[s + 2], pa[(i64)(s + 2) * Dv], a2);
          a3 = fmaf(wsh[s + 3], pa[(i64)(s + 3) * Dv], a3);
        }
        for (; s < ns; s++) a0 = fmaf(wsh[s], pa[(i64)s * Dv], a0);
      }
    }
    if (c < Dv) out[(((i64)b * Tq + q0 + i) * H + h) * Dv + c] = T::st(((a0 + a1) + (a2 + a3)) * invL, false);
  }
  if (tid == 0) lse[((i64)b * H + h) * Tq + q0 + i] = M + logf(L);
}

// rope — partial NeoX rotate-half (MODEL_SPEC §2.3) on x [rows = B*T, H, D]: for channel pairs
// (i, i + rot/2), i < rot/2, angle = f32(position) * invFreq[i] in fp32 and
//   y_i = x_i cos - x_{i+half} sin,   y_{i+half} = x_{i+half} cos + x_i sin   (sin negated: inverse);
// channels >= rot pass through. positions are i32 [T] (shared by the batch) or [B, T] (perBatch).
// One thread per pair or pass-through channel. cosf/sinf are CUDA's full-range ones (accurate at
// the 10^5 rad angles of long contexts); products and sums are rounded one by one (__fmul_rn, no
// FMA contraction), the values the composite's elementwise kernels produce.
template <class T>
RL_DEV void rope_apply(const typename T::S* __restrict__ x, const int* __restrict__ pos, const float* __restrict__ inv,
                       typename T::S* __restrict__ y, i64 rows, int Tn, int H, int D, int rot, int perBatch, int inverse) {
  const int half = rot >> 1;
  const int per = half + (D - rot);  // work items of one head: the pairs, then the pass-through channels
  const i64 n = rows * H * per;
  for (i64 w = global_thread(); w < n; w += grid_threads()) {
    const int j = (int)(w % per);
    const i64 rh = w / per;  // row * H + head
    const i64 base = rh * D;
    if (j >= half) {
      const i64 c = base + rot + (j - half);
      y[c] = x[c];
      continue;
    }
    const i64 row = rh / H;
    const int p = pos[perBatch ? row : row % Tn];
    const float a = __fmul_rn((float)p, inv[j]);
    const float c = cosf(a);
    const float s = inverse ? -sinf(a) : sinf(a);
    const float x1 = T::ld(x[base + j]), x2 = T::ld(x[base + j + half]);
    y[base + j] = T::st(__fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s)), false);
    y[base + j + half] = T::st(__fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s)), false);
  }
}

#endif  // RING_LINEAR_ATTENTION_CUH
