/**
 * CUDA kernels of @ring-linear/fp8's quantizer ops (kernels/fp8.cuh), registered by op name (this
 * package does not import the fp8 package): fp8Quantize (every layout), fp8QuantTranspose,
 * fp8RmsNormQuant, fp8SwigluQuant, fp8SwigluBackwardQuant, fp8GroupRmsNormGateQuant. Each
 * quantizer produces the CPU kernel's codes and scales byte for byte; the fused ones equal their
 * composites on this backend (same f32 steps as the rmsNorm, sigmoid, silu, add, sub and mul
 * kernels; the RMSNorm reduction is nn.cuh's, shared with the rmsNorm kernel). The block-scaled
 * GEMMs are in ./fp8_gemm.ts; fp8Linear, fp8Dequantize and fp8QuantizeWithScales run their composites.
 *
 * Kernel versions, selected per launch with RING_LINEAR_CUDA_FP8_KERNELS (all byte-equal to the
 * CPU; tools/gpu/run.ts checks and times each): v3 (default) runs v3's 1x128 tile kernel (one
 * reciprocal per tile instead of a division per element, no row arithmetic, several loads in
 * flight: 82% of copy bandwidth on an H100 against v2's 73%) and v2's kernels for the rest; v3x
 * also v3's quant+transpose, RMSNorm+quant and SwiGLU+quant kernels, which measured no faster than
 * v2's (28%, 47%, 68% of copy against 43%, 49%, 69%) and stay for further work; v2; v1 (the first
 * kernels).
 */
import { sizeOf, type DType } from '@ring-linear/core';
import { DTYPE_SUFFIX, moduleSpec } from '../kernels/sources.js';
import { rmsNormThreads } from './nn.js';
import { blocksFor, ptr, register, type Ctx } from './common.js';

type Fp8 = 'f8e4m3' | 'f8e5m2';
type Layout = 'tensor' | 'row' | 'tile1x128' | 'block128x128';
const TILE = 128;
/** Chunks of 8 elements a thread of the v3 RMSNorm kernel holds (kernels/fp8.cuh FP8_RMS3_CHUNKS). */
const RMS3_CHUNKS = 4;
const cdiv = (a: number, b: number) => Math.ceil(a / b);
export type Fp8KernelVersion = 'v1' | 'v2' | 'v3' | 'v3x';
/** The selected kernel version (RING_LINEAR_CUDA_FP8_KERNELS = v1 | v2 | v3 | v3x, default v3). Read at every launch. */
export const fp8KernelVersion = (): Fp8KernelVersion => {
  const v = process.env.RING_LINEAR_CUDA_FP8_KERNELS;
  return v === 'v1' || v === 'v2' || v === 'v3x' ? v : 'v3';
};
/** The name suffix of v1 ('') or v2 ('_v2') kernels; v3 runs v2's kernels where it has none. */
const ver = () => (fp8KernelVersion() === 'v1' ? '' : '_v2');
/** v3's tile kernel (v3 and v3x). */
const v3 = () => {
  const v = fp8KernelVersion();
  return v === 'v3' || v === 'v3x';
};
/** v3's quant+transpose, RMSNorm and SwiGLU kernels (v3x only: no faster than v2's on an H100). */
const v3x = () => fp8KernelVersion() === 'v3x';
/** v3's tiles a half-warp in the tile and SwiGLU kernels (src/kernels/sources.ts). */
const v3Tiles = (dt: DType) => (dt === 'f32' ? 2 : 4);
const aligned = (p: number, bytes: number) => p % bytes === 0;
const name = (kind: string, x: DType, q: Fp8) => `fp8_${kind}_${DTYPE_SUFFIX[x]}_${DTYPE_SUFFIX[q]}${ver()}`;

/** Blocks of 256 threads for `tiles` 1x128 tiles, one per half-warp. */
export const tileBlocks = (tiles: number) => Math.max(1, cdiv(tiles * 16, 256));

register('fp8Quantize', ({ backend: b, inputs: [x], outputs: [q, s], attrs }: Ctx<{ dtype: Fp8; layout: Layout; pow2Scale: boolean }>) => {
  const spec = moduleSpec('fp8', x!.dtype);
  const n = x!.size;
  if (n === 0) return; // leading dims of size 0: nothing to write
  const pow2 = attrs.pow2Scale ? 1 : 0;
  const shape = x!.shape;
  const r = shape.length;
  const args = [ptr(x!), ptr(q!), ptr(s!)];
  switch (attrs.layout) {
    case 'tile1x128': {
      const K = shape[r - 1]!;
      const rows = n / K;
      if (v3() && K % TILE === 0 && aligned(ptr(x!), 16) && aligned(ptr(q!), 8)) {
        const tiles = n / TILE;
        const blocks = Math.max(1, cdiv(tiles, 16 * v3Tiles(x!.dtype)));
        b.kernel(spec, `fp8_tiles_${DTYPE_SUFFIX[x!.dtype]}_${DTYPE_SUFFIX[attrs.dtype]}_v3`).launch([blocks, 1, 1], [256, 1, 1], [...args, tiles, pow2]);
        return;
      }
      b.kernel(spec, name('tiles', x!.dtype, attrs.dtype)).launch([tileBlocks(rows * cdiv(K, TILE)), 1, 1], [256, 1, 1], [...args, rows, K, pow2]);
      return;
    }
    case 'row': {
      const K = shape[r - 1]!;
      const rows = n / K;
      b.kernel(spec, name('rows', x!.dtype, attrs.dtype)).launch([rows, 1, 1], [256, 1, 1], [...args, rows, K, pow2]);
      return;
    }
    case 'tensor': {
      // The amax as bits of a u32 (atomicMax), zeroed first.
      const amax = b.temp(4);
      b.memset(amax.ptr, 0, 4, 1);
      const blocks = blocksFor(cdiv(n, 8), 256, 4096);
      b.kernel(spec, `fp8_amax_${DTYPE_SUFFIX[x!.dtype]}`).launch([blocks, 1, 1], [256, 1, 1], [ptr(x!), amax.ptr, n]);
      b.kernel(spec, name('tensor', x!.dtype, attrs.dtype)).launch([blocksFor(cdiv(n, 8), 256, 1 << 16), 1, 1], [256, 1, 1], [...args, amax.ptr, n, pow2]);
      b.releaseTemp(amax);
      return;
    }
    case 'block128x128': {
      const [N, K] = [shape[r - 2]!, shape[r - 1]!];
      const nblocks = (n / (N * K)) * cdiv(N, TILE) * cdiv(K, TILE);
      // v2: 512 threads a 128x128 block (4 rows each), v1: 256 (8 rows each).
      const threads = fp8KernelVersion() === 'v1' ? 256 : 512;
      b.kernel(spec, name('blocks', x!.dtype, attrs.dtype)).launch([nblocks, 1, 1], [threads, 1, 1], [...args, N, K, nblocks, pow2]);
      return;
    }
  }
});

register('fp8QuantTranspose', ({ backend: b, inputs: [x], outputs: [q, s, qT, sT], attrs }: Ctx<{ dtype: Fp8; pow2Scale: boolean }>) => {
  const [M, K] = [x!.shape[0]!, x!.shape[1]!];
  // (v3x: same geometry as v2's kernels)
  const kernel = v3x() ? `fp8_transpose_${DTYPE_SUFFIX[x!.dtype]}_${DTYPE_SUFFIX[attrs.dtype]}_v3` : name('transpose', x!.dtype, attrs.dtype);
  b.kernel(moduleSpec('fp8', x!.dtype), kernel).launch(
    [cdiv(M, TILE) * cdiv(K, TILE), 1, 1], [256, 1, 1],
    [ptr(x!), ptr(q!), ptr(s!), ptr(qT!), ptr(sT!), M, K, attrs.pow2Scale ? 1 : 0],
  );
});

register('fp8RmsNormQuant', ({ backend: b, inputs: [x, w], outputs: [q, s], attrs }: Ctx<{ eps: number; dtype: Fp8; pow2Scale: boolean }>) => {
  const d = x!.shape[x!.shape.length - 1]!;
  const rows = x!.size / d;
  if (rows === 0) return;
  const base = `fp8_rmsnorm_${DTYPE_SUFFIX[x!.dtype]}_${DTYPE_SUFFIX[w!.dtype]}_${DTYPE_SUFFIX[attrs.dtype]}`;
  // rmsNormThreads(d): the rmsNorm kernel's block size, so the sum of squares is reduced in the same
  // order as the composite's and the normalized row is the same f32 values. v1 runs that many
  // threads; v2 at most 256, each playing rmsNormThreads(d) / 256 of them (kernels/fp8.cuh).
  const args = [ptr(x!), ptr(w!), ptr(q!), ptr(s!), rows, d, Math.fround(attrs.eps), attrs.pow2Scale ? 1 : 0];
  const vthreads = rmsNormThreads(d);
  const spec = moduleSpec('fp8', x!.dtype);
  const threads = Math.min(vthreads, 256);
  // v3 holds the row in registers: 8-element chunks, at most RMS3_CHUNKS a thread (kernels/fp8.cuh).
  if (v3x() && d % 8 === 0 && aligned(ptr(x!), 16) && aligned(ptr(q!), 8) && d / 8 <= RMS3_CHUNKS * threads) {
    // Blocks loop over rows, prefetching the next (kernels/fp8.cuh): as many as are resident at
    // once (768 threads an SM: the kernel is compiled for three 256-thread blocks), so none starts late.
    const grid = Math.min(rows, Math.max(1, b.device.multiprocessors) * Math.max(1, Math.floor(768 / threads)));
    b.kernel(spec, `${base}_v3`).launch([grid, 1, 1], [threads, 1, 1], [...args, vthreads]);
  } else if (fp8KernelVersion() === 'v1') b.kernel(spec, base).launch([rows, 1, 1], [vthreads, 1, 1], args);
  else b.kernel(spec, `${base}_v2`).launch([rows, 1, 1], [threads, 1, 1], [...args, vthreads]);
});

register('fp8SwigluQuant', ({ backend: b, inputs: [gu], outputs: [q, s], attrs }: Ctx<{ dtype: Fp8; pow2Scale: boolean }>) => {
  const I = gu!.shape[gu!.shape.length - 1]! / 2;
  const rows = sizeOf(gu!.shape.slice(0, -1));
  if (rows === 0) return;
  if (v3x() && I % TILE === 0 && aligned(ptr(gu!), 16) && aligned(ptr(q!), 8)) {
    const blocks = Math.max(1, cdiv(rows * (I / TILE), 16 * (v3Tiles(gu!.dtype) / 2)));
    b.kernel(moduleSpec('fp8', gu!.dtype), `fp8_swiglu_${DTYPE_SUFFIX[gu!.dtype]}_${DTYPE_SUFFIX[attrs.dtype]}_v3`).launch([blocks, 1, 1], [256, 1, 1],
      [ptr(gu!), ptr(q!), ptr(s!), rows, I, attrs.pow2Scale ? 1 : 0]);
    return;
  }
  b.kernel(moduleSpec('fp8', gu!.dtype), name('swiglu', gu!.dtype, attrs.dtype)).launch([tileBlocks(rows * cdiv(I, TILE)), 1, 1], [256, 1, 1],
    [ptr(gu!), ptr(q!), ptr(s!), rows, I, attrs.pow2Scale ? 1 : 0]);
});

register('fp8SwigluBackwardQuant', ({ backend: b, inputs: [gu, dh], outputs: [q, s, qT, sT], attrs }: Ctx<{ dtype: Fp8; pow2Scale: boolean }>) => {
  // gateUp [M, 2I], dh [M, I] (M >= 1, I >= 1: the op's infer): one block per 128x128 block of
  // dy = d[g | u] [M, 2I], as fp8QuantTranspose runs on dy.
  const [M, C] = [gu!.shape[0]!, gu!.shape[1]!];
  b.kernel(moduleSpec('fp8fused', gu!.dtype), `fp8_swiglu_bwd_${DTYPE_SUFFIX[gu!.dtype]}_${DTYPE_SUFFIX[dh!.dtype]}_${DTYPE_SUFFIX[attrs.dtype]}`).launch(
    [cdiv(M, TILE) * cdiv(C, TILE), 1, 1], [256, 1, 1],
    [ptr(gu!), ptr(dh!), ptr(q!), ptr(s!), ptr(qT!), ptr(sT!), M, C / 2, attrs.pow2Scale ? 1 : 0],
  );
});

/** Threads a block of the group RMSNorm gate kernels (kernels/fp8.cuh GRG_THREADS). */
export const GROUP_GATE_THREADS = 256;

register('fp8GroupRmsNormGateQuant', ({ backend: b, inputs: [o, gate, w], outputs: [q, s], attrs }: Ctx<{ groups: number; eps: number; dtype: Fp8; pow2Scale: boolean }>) => {
  const C = o!.shape[o!.shape.length - 1]!;
  const rows = o!.size / C;
  if (rows === 0) return;
  const S = C / attrs.groups;
  // rmsNormThreads(S): the block size the composite's rmsNorm runs on each group, i.e. its summation
  // order, which the kernel reproduces with its own 256 threads.
  const name = `fp8_group_gate_${DTYPE_SUFFIX[o!.dtype]}_${DTYPE_SUFFIX[gate!.dtype]}_${DTYPE_SUFFIX[w!.dtype]}_${DTYPE_SUFFIX[attrs.dtype]}`;
  b.kernel(moduleSpec('fp8fused', o!.dtype), name).launch([rows, 1, 1], [GROUP_GATE_THREADS, 1, 1],
    [ptr(o!), ptr(gate!), ptr(w!), ptr(q!), ptr(s!), rows, C, S, rmsNormThreads(S), Math.fround(attrs.eps), attrs.pow2Scale ? 1 : 0]);
});
