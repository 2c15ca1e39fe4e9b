/**
 * CUDA kernels of @ring-linear/attention's decode-path ops (kernels/attention.cuh), registered by
 * op name (this package does not import the attention package, so the attribute shapes are
 * restated here):
 *
 *   lightningAttentionStep  the recurrent step (MODEL_SPEC §2): the fp32 state read and written
 *                           once per pass of up to 4 tokens, coalesced
 *   softmaxAttention        split-K (flash-decoding) forward with GQA (MODEL_SPEC §3): causal or
 *                           not, kvLen / kvOffset, packed sequences (one launch pair per sequence),
 *                           the f32 log-sum-exp output
 *
 * Kernels cannot decline a case (core dispatch picks the kernel by op and dtype), so both cover
 * every attribute combination of their op. The chunked lightning op and both backward ops run
 * their composites here.
 */
import { BackendError } from '@ring-linear/core';
import { DTYPE_SUFFIX, moduleSpec } from '../kernels/sources.js';
import { ptr, register, type Ctx } from './common.js';

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

/** Keys per split and the number of splits for one segment. */
export function softmaxSplits(groups: number, keys: number): { chunk: number; nsplit: number } {
  const want = Math.max(1, cdiv(TARGET_BLOCKS, groups));
  const chunk = Math.max(SA_KEYS, cdiv(cdiv(keys, want), SA_KEYS) * SA_KEYS);
  return { chunk, nsplit: Math.max(1, cdiv(keys, chunk)) };
}

register('softmaxAttention', ({ backend: b, inputs: [q, k, v], outputs: [out, lse], attrs }: Ctx<SoftmaxAttrs>) => {
  const [B, Tq, H, D] = q!.shape as [number, number, number, number];
  const [, Tk, Hkv] = k!.shape as [number, number, number, number];
  const Dv = v!.shape[3]!;
  checkHeadDim('softmaxAttention', D);
  const dt = q!.dtype;
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
    const rowTiles = cdiv(R, SA_ROWS);
    // The keys the last query of the segment sees: no split starts past them.
    const keys = attrs.causal ? Math.min(seg.nk, seg.offset + seg.nq) : seg.nk;
    const { chunk, nsplit } = softmaxSplits(B * Hkv * rowTiles * colTiles, keys);
    const rows = B * Hkv * R * nsplit;
    const stats = b.temp(8 * rows);
    const acc = b.temp(4 * rows * Dv);
    const [pm, pl] = [stats.ptr, stats.ptr + 4 * rows];
    b.kernel(spec, `attn_softmax_split_${s}_d${vd}_v${vv}`).launch(
      [nsplit * rowTiles * colTiles, B * Hkv, 1], [128, 1, 1],
      [ptr(q!), ptr(k!), ptr(v!), pm, pl, acc.ptr, Tq, Tk, H, Hkv, D, Dv, seg.q0, seg.nq, seg.k0, seg.nk, seg.offset, attrs.causal ? 1 : 0, scale, chunk, nsplit],
      4 * SA_ROWS * D,
    );
    b.kernel(spec, `attn_softmax_combine_${s}`).launch([R, B * Hkv, 1], [128, 1, 1],
      [pm, pl, acc.ptr, ptr(out!), ptr(lse!), Tq, H, Hkv, Dv, seg.q0, seg.nq, nsplit]);
    b.releaseTemp(stats);
    b.releaseTemp(acc);
  }
});
