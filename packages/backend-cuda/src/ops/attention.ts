/**
 * CUDA kernels of @ring-linear/attention's decode-path ops (kernels/attention.cuh), registered by
 * op name (this package does not import the attention package, so the attribute shapes are
 * restated here):
 *
 *   lightningAttentionStep  the recurrent step (MODEL_SPEC §2): the fp32 state read and written
 *                           once per pass of up to 4 tokens, coalesced
 *   softmaxAttention        prefill / training shapes (16-bit, D = Dv in {64, 128}, at least
 *                           FLASH_MIN_QUERIES queries): the tensor-core flash kernel
 *                           (kernels/flash.cuh; wgmma on sm_90a, mma.sync elsewhere); everything else:
 *                           split-K (flash-decoding) forward with GQA (MODEL_SPEC §3), on tensor
 *                           cores (flash.cuh flash_decode) when 16-bit, D = Dv in {64, 128} and
 *                           the group's rows fit 16, else on CUDA cores (attention.cuh). All: causal
 *                           or not, kvLen / kvOffset, packed sequences (launches per sequence), the
 *                           f32 log-sum-exp output
 *   rope                    partial NeoX rotary embedding, one thread per channel pair
 *   softmaxAttentionBackward  (bf16, f16) FlashAttention-2 backward on tensor cores for D = Dv in
 *                           {64, 128}; a general CUDA-core kernel pair (one warp per query row /
 *                           per key) for other head dims and for f32
 *
 * Kernels cannot decline a case (core dispatch picks the kernel by op and dtype), so each covers
 * every attribute combination of its op. RING_LINEAR_CUDA_FLASH=0 turns the flash kernels off
 * (forward: split-K for everything; backward: the composite). The chunked lightning ops have
 * their kernels in ./lightning.ts.
 */
import { BackendError } from '@ring-linear/core';
import type { CudaBackend } from '../backend.js';
import {
  FLASH_BM,
  FLASH_BN,
  FLASH_BWD_THREADS,
  FLASH_DECODE_ROWS,
  FLASH_DECODE_THREADS,
  FLASH_DTYPES,
  FLASH_FWD_THREADS,
  FLASH_MMA_DTYPES,
  FLASH_HEAD_DIMS,
  flashBwdSmem,
  flashDecodeSmem,
  flashFwdSmem,
  flashFwdWgSmem,
  FLASH_WG_BN,
} from '../kernels/families/flash.js';
import type { Kernel } from '../kernels/modules.js';
import { DTYPE_SUFFIX, moduleSpec } from '../kernels/sources.js';
import { blocksFor, ptr, register, type Ctx } from './common.js';
import type { TensorInfo } from '@ring-linear/core';

const cdiv = (a: number, b: number) => Math.ceil(a / b);

/** Blocks that fill the GPU (4 per SM of a 132-SM H100): below this, work is split further. */
export const TARGET_BLOCKS = 528;
/** Tokens of one lightning pass, the state rows a block's warps stride over (kernels/attention.cuh). */
const LS_TOKENS = 4;
const LS_WARPS = 8;
/** Query rows of a softmax tile, keys of a key tile (kernels/attention.cuh). */
export const SA_ROWS = 8;
export const SA_KEYS = 64;
/** Largest head_dim whose staged tiles fit the 48 KiB of default shared memory beside the static tiles. */
const MAX_HEAD_DIM = 896;

function checkHeadDim(op: string, D: number): void {
  if (D > MAX_HEAD_DIM) throw new BackendError(`${op}: the CUDA kernel supports head_dim up to ${MAX_HEAD_DIM}, got ${D}`);
}

/** Row chunks of the lightning step: split a head's rows over blocks when there are few heads. */
export function lightningRowChunks(B: number, H: number, D: number, colTiles: number): { rowChunks: number; rowsPerChunk: number } {
  const blocks = B * H * colTiles;
  const want = blocks >= TARGET_BLOCKS / 2 ? 1 : Math.min(cdiv(D, LS_WARPS), cdiv(TARGET_BLOCKS, blocks));
  const rowsPerChunk = cdiv(D, Math.max(1, want));
  return { rowChunks: cdiv(D, rowsPerChunk), rowsPerChunk };
}

register('lightningAttentionStep', ({ backend: b, inputs: [q, k, v, decay, s0], outputs: [out, s1], attrs }: Ctx<{ scale: number }>) => {
  const [B, T, H, D] = q!.shape as [number, number, number, number];
  const Dv = v!.shape[3]!;
  checkHeadDim('lightningAttentionStep', D);
  const dt = q!.dtype;
  const spec = moduleSpec('attention', dt);
  const vec = Dv % 4 === 0 ? 4 : 1;
  const colTiles = cdiv(Dv, 32 * vec);
  const { rowChunks, rowsPerChunk } = lightningRowChunks(B, H, D, colTiles);
  const n = B * T * H * Dv;
  const opart = rowChunks > 1 ? b.temp(4 * rowChunks * n) : null;
  const scale = Math.fround(attrs.scale);
  b.kernel(spec, `attn_lightning_step_${DTYPE_SUFFIX[dt]}_v${vec}`).launch(
    [B * H, colTiles * rowChunks, 1], [32 * LS_WARPS, 1, 1],
    [ptr(q!), ptr(k!), ptr(v!), ptr(decay!), ptr(s0!), ptr(out!), ptr(s1!), opart ? opart.ptr : 0, B, T, H, D, Dv, scale, rowChunks, rowsPerChunk],
    2 * LS_TOKENS * D * 4,
  );
  if (opart) {
    b.kernel(spec, `attn_lightning_combine_${DTYPE_SUFFIX[dt]}`).launch1D(n, [opart.ptr, ptr(out!), n, rowChunks, scale]);
    b.releaseTemp(opart);
  }
});

interface SoftmaxAttrs {
  scale: number;
  causal: boolean;
  cuSeqlens: number[] | null;
  kvLen: number;
  kvOffset: number;
}

/** One independent problem: queries [q0, q0 + nq) against keys [k0, k0 + nk), query 0 at position offset. */
export interface SoftmaxSegment {
  q0: number;
  nq: number;
  k0: number;
  nk: number;
  offset: number;
}

export function softmaxSegments(a: SoftmaxAttrs, Tq: number): SoftmaxSegment[] {
  if (!a.cuSeqlens) return [{ q0: 0, nq: Tq, k0: 0, nk: a.kvLen, offset: a.kvOffset }];
  return a.cuSeqlens.slice(0, -1).map((s, i) => ({ q0: s, nq: a.cuSeqlens![i + 1]! - s, k0: s, nk: a.cuSeqlens![i + 1]! - s, offset: 0 }));
}

/**
 * Keys per split and the number of splits for one segment: about `target` blocks in all (default
 * TARGET_BLOCKS; RING_LINEAR_CUDA_DECODE_BLOCKS overrides it for tuning runs).
 */
export function softmaxSplits(groups: number, keys: number, target = decodeTargetBlocks()): { chunk: number; nsplit: number } {
  const want = Math.max(1, cdiv(target, groups));
  const chunk = Math.max(SA_KEYS, cdiv(cdiv(keys, want), SA_KEYS) * SA_KEYS);
  return { chunk, nsplit: Math.max(1, cdiv(keys, chunk)) };
}

function decodeTargetBlocks(): number {
  const env = process.env.RING_LINEAR_CUDA_DECODE_BLOCKS;
  const n = env ? Number(env) : NaN;
  return Number.isInteger(n) && n > 0 ? n : TARGET_BLOCKS;
}

// ---------------------------------------------------------------------------------------------
// Flash attention (kernels/flash.cuh)

/** Fewest queries for the flash forward: below, a 128-row tile is mostly padding and split-K wins. */
export const FLASH_MIN_QUERIES = 16;
const LOG2E = 1.4426950408889634;

/** Whether the flash kernels are on (RING_LINEAR_CUDA_FLASH=0 turns them off). */
export const flashEnabled = (): boolean => process.env.RING_LINEAR_CUDA_FLASH !== '0';

/** Whether a head-dim pair has a tensor-core kernel. */
export const flashHeadDims = (D: number, Dv: number): boolean => D === Dv && (FLASH_HEAD_DIMS as readonly number[]).includes(D);

/** Whether softmaxAttention of these shapes runs the flash forward (else split-K). */
export function useFlashForward(dt: string, Tq: number, D: number, Dv: number): boolean {
  return flashEnabled() && (FLASH_MMA_DTYPES as readonly string[]).includes(dt) && flashHeadDims(D, Dv) && Tq >= FLASH_MIN_QUERIES;
}

/**
 * Whether a split-K segment of nq queries runs the tensor-core decode kernel (flash.cuh
 * flash_decode): 16-bit, D = Dv in {64, 128}, and the group's rows nq * G fit one 16-row mma tile.
 * RING_LINEAR_CUDA_DECODE=split keeps the CUDA-core split kernel (for comparisons).
 */
export function useFlashDecode(dt: string, D: number, Dv: number, rows: number): boolean {
  return flashEnabled() && process.env.RING_LINEAR_CUDA_DECODE !== 'split' && (FLASH_MMA_DTYPES as readonly string[]).includes(dt) &&
    flashHeadDims(D, Dv) && rows <= FLASH_DECODE_ROWS;
}

// Kernels whose dynamic shared memory limit was raised (above the default 48 KiB).
const smemSet = new WeakMap<Kernel, number>();
function withSmem(b: CudaBackend, k: Kernel, bytes: number): Kernel {
  if (bytes > 48 * 1024 && (smemSet.get(k) ?? 0) < bytes) {
    b.rt.driver.setMaxDynamicShared(k.handle, bytes);
    smemSet.set(k, bytes);
  }
  return k;
}

/**
 * The forward kernel flavour: on sm_90a 'wgmma1b' (Hopper warpgroup MMA, softmax overlapped with
 * the P V product, one block barrier per key tile) by default, or 'wgmma' (the same with two
 * barriers per tile, 4% slower on the GPU run); elsewhere 'mma' (mma.sync).
 * RING_LINEAR_CUDA_FLASH_FWD=mma|wgmma|wgmma1b picks one.
 */
export type FlashForwardKind = 'mma' | 'wgmma' | 'wgmma1b';
export function flashForwardKind(arch: string): FlashForwardKind {
  if (arch !== 'sm_90a') return 'mma';
  const want = process.env.RING_LINEAR_CUDA_FLASH_FWD;
  return want === 'mma' || want === 'wgmma' ? want : 'wgmma1b';
}

function flashForward(b: CudaBackend, q: TensorInfo, k: TensorInfo, v: TensorInfo, out: TensorInfo, lse: TensorInfo, attrs: SoftmaxAttrs): void {
  const [B, Tq, H, D] = q.shape as [number, number, number, number];
  const [, Tk, Hkv] = k.shape as [number, number, number, number];
  const s = DTYPE_SUFFIX[q.dtype];
  const kind = flashForwardKind(b.arch);
  const wg = kind !== 'mma';
  const smem = wg ? flashFwdWgSmem(D) : flashFwdSmem(D);
  const name = kind === 'wgmma1b' ? `flash_fwd_wg1b_${s}_d${D}` : kind === 'wgmma' ? `flash_fwd_wg_${s}_d${D}` : `flash_fwd_${s}_d${D}`;
  const kern = withSmem(b, b.kernel(moduleSpec('flash', q.dtype), name), smem);
  const scaleLog2 = Math.fround(attrs.scale * LOG2E);
  // V's descriptor strides (kernels/flash.cuh): between 64-column chunks (a chunk is FLASH_WG_BN
  // rows of 128 bytes) and between 8-key groups (1024 bytes); checked on the GPU.
  const vStrides = [FLASH_WG_BN * 128, 1024];
  for (const seg of softmaxSegments(attrs, Tq)) {
    kern.launch([B * H, cdiv(seg.nq, FLASH_BM), 1], [FLASH_FWD_THREADS, 1, 1],
      [ptr(q), ptr(k), ptr(v), ptr(out), ptr(lse), Tq, Tk, H, Hkv, seg.q0, seg.nq, seg.k0, seg.nk, seg.offset, attrs.causal ? 1 : 0, scaleLog2,
        ...(wg ? vStrides : [])], smem);
  }
}

register('softmaxAttention', ({ backend: b, inputs: [q, k, v], outputs: [out, lse], attrs }: Ctx<SoftmaxAttrs>) => {
  const [B, Tq, H, D] = q!.shape as [number, number, number, number];
  const [, Tk, Hkv] = k!.shape as [number, number, number, number];
  const Dv = v!.shape[3]!;
  checkHeadDim('softmaxAttention', D);
  const dt = q!.dtype;
  if (useFlashForward(dt, Tq, D, Dv)) return flashForward(b, q!, k!, v!, out!, lse!, attrs);
  const s = DTYPE_SUFFIX[dt];
  const spec = moduleSpec('attention', dt);
  const G = H / Hkv;
  const vd = D % 4 === 0 ? 4 : 1;
  const vv = Dv % 4 === 0 ? 4 : 1;
  const colTiles = cdiv(Dv, 32 * vv);
  const scale = Math.fround(attrs.scale);
  if (B * Hkv > 65535) throw new BackendError(`softmaxAttention: the CUDA kernel supports batch * kv heads up to 65535, got ${B * Hkv}`);
  for (const seg of softmaxSegments(attrs, Tq)) {
    const R = seg.nq * G;
    const mma = useFlashDecode(dt, D, Dv, R);
    // Blocks per (b, kv head) and split: one for the decode kernel, row x column tiles for the split kernel.
    const tiles = mma ? 1 : cdiv(R, SA_ROWS) * colTiles;
    // The keys the last query of the segment sees: no split starts past them.
    const keys = attrs.causal ? Math.min(seg.nk, seg.offset + seg.nq) : seg.nk;
    const { chunk, nsplit } = softmaxSplits(B * Hkv * tiles, keys);
    const rows = B * Hkv * R * nsplit;
    const stats = b.temp(8 * rows);
    const acc = b.temp(4 * rows * Dv);
    const [pm, pl] = [stats.ptr, stats.ptr + 4 * rows];
    const causal = attrs.causal ? 1 : 0;
    if (mma) {
      // Both kernels write the same partials; the combine below merges either.
      const smem = flashDecodeSmem(D);
      withSmem(b, b.kernel(moduleSpec('flash', dt), `flash_decode_${s}_d${D}`), smem).launch(
        [nsplit, B * Hkv, 1], [FLASH_DECODE_THREADS, 1, 1],
        [ptr(q!), ptr(k!), ptr(v!), pm, pl, acc.ptr, Tq, Tk, H, Hkv, seg.q0, seg.nq, seg.k0, seg.nk, seg.offset, causal, Math.fround(attrs.scale * LOG2E), chunk, nsplit],
        smem,
      );
    } else {
      b.kernel(spec, `attn_softmax_split_${s}_d${vd}_v${vv}`).launch(
        [nsplit * tiles, B * Hkv, 1], [128, 1, 1],
        [ptr(q!), ptr(k!), ptr(v!), pm, pl, acc.ptr, Tq, Tk, H, Hkv, D, Dv, seg.q0, seg.nq, seg.k0, seg.nk, seg.offset, causal, scale, chunk, nsplit],
        4 * SA_ROWS * D,
      );
    }
    b.kernel(spec, `attn_softmax_combine_${s}`).launch([R, B * Hkv, 1], [128, 1, 1],
      [pm, pl, acc.ptr, ptr(out!), ptr(lse!), Tq, H, Hkv, Dv, seg.q0, seg.nq, nsplit]);
    b.releaseTemp(stats);
    b.releaseTemp(acc);
  }
});

/** Largest D + Dv of the general backward kernels (their per-warp f32 accumulators in shared memory). */
const MAX_GENERAL_DIMS = 3072;

function softmaxAttentionBackward({ backend: b, inputs: [q, k, v, out, lse, dOut, dLse], outputs: [dq, dk, dv], attrs }: Ctx<SoftmaxAttrs>): void {
  const [B, Tq, H, D] = q!.shape as [number, number, number, number];
  const [, Tk, Hkv] = k!.shape as [number, number, number, number];
  const Dv = v!.shape[3]!;
  const dt = q!.dtype;
  const s = DTYPE_SUFFIX[dt];
  const spec = moduleSpec('flash', dt);
  const scale = Math.fround(attrs.scale);
  const causal = attrs.causal ? 1 : 0;
  const segs = softmaxSegments(attrs, Tq);
  // Di = rowsum(dO * O) - dLse, [B, H, Tq] like lse.
  const di = b.temp(4 * B * H * Tq);
  b.kernel(spec, `flash_bwd_prep_${s}`).launch([cdiv(B * Tq * H, 4), 1, 1], [128, 1, 1], [ptr(out!), ptr(dOut!), ptr(dLse!), di.ptr, B, Tq, H, Dv]);
  // Keys past kvLen get no gradient; the kernels write only the first kvLen.
  if (attrs.kvLen < Tk) {
    const w = dt === 'f32' ? 4 : 2;
    b.memset(ptr(dk!), 0, w, dk!.size);
    b.memset(ptr(dv!), 0, w, dv!.size);
  }
  if (dt !== 'f32' && flashHeadDims(D, Dv)) {
    const n = B * Tq * H * D;
    const acc = b.temp(4 * n);
    b.memset(acc.ptr, 0, 4, n);
    const smem = flashBwdSmem(D);
    const kern = withSmem(b, b.kernel(spec, `flash_bwd_${s}_d${D}`), smem);
    for (const seg of segs) {
      kern.launch([B * Hkv, cdiv(seg.nk, FLASH_BN), 1], [FLASH_BWD_THREADS, 1, 1],
        [ptr(q!), ptr(k!), ptr(v!), ptr(dOut!), ptr(lse!), di.ptr, acc.ptr, ptr(dk!), ptr(dv!), Tq, Tk, H, Hkv, seg.q0, seg.nq, seg.k0, seg.nk, seg.offset,
          causal, scale, Math.fround(scale * LOG2E)], smem);
    }
    b.kernel(spec, `flash_bwd_dq_convert_${s}`).launch1D(n, [acc.ptr, ptr(dq!), n, scale]);
    b.releaseTemp(acc);
  } else {
    if (D + Dv > MAX_GENERAL_DIMS) {
      throw new BackendError(`softmaxAttentionBackward: the CUDA kernel supports head dims with D + Dv up to ${MAX_GENERAL_DIMS}, got ${D} + ${Dv}`);
    }
    if (B > 65535) throw new BackendError(`softmaxAttentionBackward: the CUDA kernel supports batch sizes up to 65535, got ${B}`);
    const kq = withSmem(b, b.kernel(spec, `flash_bwd_dq_general_${s}`), 16 * D);
    const kkv = withSmem(b, b.kernel(spec, `flash_bwd_dkv_general_${s}`), 16 * (D + Dv));
    for (const seg of segs) {
      const common = [Tq, Tk, H, Hkv, D, Dv, seg.q0, seg.nq, seg.k0, seg.nk, seg.offset, causal, scale];
      kq.launch([cdiv(seg.nq * H, 4), B, 1], [128, 1, 1], [ptr(q!), ptr(k!), ptr(v!), ptr(dOut!), ptr(lse!), di.ptr, ptr(dq!), ...common], 16 * D);
      kkv.launch([cdiv(seg.nk * Hkv, 4), B, 1], [128, 1, 1], [ptr(q!), ptr(k!), ptr(v!), ptr(dOut!), ptr(lse!), di.ptr, ptr(dk!), ptr(dv!), ...common], 16 * (D + Dv));
    }
  }
  b.releaseTemp(di);
}

// Registered for every activation dtype: core checks the registration's dtypes against all inputs,
// lse and dLse (f32) included. f32 runs the general kernels.
if (flashEnabled()) register('softmaxAttentionBackward', softmaxAttentionBackward, FLASH_DTYPES);

// ---------------------------------------------------------------------------------------------
// rope (MODEL_SPEC §2.3): one launch per tensor instead of the composite's ~17 (cast, angles,
// cos, sin, slices, products, concat), which made it a third of a decode step's host time.

/** inv_freq[i] = 1 / theta^(2i / rotaryDim), each step rounded to f32: @ring-linear/attention's ropeInvFreq, restated. */
function ropeInvFreq(rotaryDim: number, theta: number): Float32Array {
  const out = new Float32Array(rotaryDim / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = Math.fround(1 / Math.fround(Math.pow(Math.fround(theta), Math.fround((2 * i) / rotaryDim))));
  }
  return out;
}

register('rope', ({ backend: b, inputs: [x, positions], outputs: [y], attrs }: Ctx<{ rotaryDim: number; theta: number; inverse: boolean }>) => {
  const r = x!.shape.length;
  const [T, H, D] = x!.shape.slice(r - 3) as [number, number, number];
  const rows = r === 4 ? x!.shape[0]! * T : T;
  const rot = attrs.rotaryDim;
  const work = rows * H * (rot / 2 + (D - rot));
  if (work === 0) return;
  const table = b.constantTable(`rope:${rot}:${attrs.theta}`, () => ropeInvFreq(rot, attrs.theta));
  b.kernel(moduleSpec('attention', x!.dtype), `attn_rope_${DTYPE_SUFFIX[x!.dtype]}`).launch([blocksFor(work), 1, 1], [256, 1, 1],
    [ptr(x!), ptr(positions!), table.ptr, ptr(y!), rows, T, H, D, rot, positions!.shape.length === 2 ? 1 : 0, attrs.inverse ? 1 : 0]);
  if (table.temp) b.releaseTemp(table.temp);
});
