/**
 * CUDA kernels of @ring-linear/fp8's quantizer ops (kernels/fp8.cuh), registered by op name (this
 * package does not import the fp8 package): fp8Quantize (every layout), fp8QuantTranspose,
 * fp8RmsNormQuant, fp8SwigluQuant, fp8SwigluBackwardQuant, fp8GroupRmsNormGateQuant. Each
 * quantizer produces the CPU kernel's codes and scales byte for byte; the fused ones equal their
 * composites on this backend (same f32 steps as the rmsNorm, sigmoid, silu, add, sub and mul
 * kernels; the RMSNorm reduction is nn.cuh's, shared with the rmsNorm kernel). The other FP8 ops
 * run their composites here.
 *
 * Kernel versions: v2 (default) and v1, the first kernels, selected per launch with
 * RING_LINEAR_CUDA_FP8_KERNELS=v1 (same arguments and geometry; both byte-equal to the CPU):
 * tools/gpu/run.ts times and checks both.
 */
import { sizeOf, type DType } from '@ring-linear/core';
import { DTYPE_SUFFIX, moduleSpec } from '../kernels/sources.js';
import { rowThreads } from './nn.js';
import { blocksFor, ptr, register, type Ctx } from './common.js';

type Fp8 = 'f8e4m3' | 'f8e5m2';
type Layout = 'tensor' | 'row' | 'tile1x128' | 'block128x128';
const TILE = 128;
const cdiv = (a: number, b: number) => Math.ceil(a / b);
/** The kernel name suffix of the selected version: '' (v1) or '_v2'. Read at every launch. */
export const fp8KernelVersion = (): 'v1' | 'v2' => (process.env.RING_LINEAR_CUDA_FP8_KERNELS === 'v1' ? 'v1' : 'v2');
const ver = () => (fp8KernelVersion() === 'v1' ? '' : '_v2');
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
  b.kernel(moduleSpec('fp8', x!.dtype), name('transpose', x!.dtype, attrs.dtype)).launch(
    [cdiv(M, TILE) * cdiv(K, TILE), 1, 1], [256, 1, 1],
    [ptr(x!), ptr(q!), ptr(s!), ptr(qT!), ptr(sT!), M, K, attrs.pow2Scale ? 1 : 0],
  );
});

register('fp8RmsNormQuant', ({ backend: b, inputs: [x, w], outputs: [q, s], attrs }: Ctx<{ eps: number; dtype: Fp8; pow2Scale: boolean }>) => {
  const d = x!.shape[x!.shape.length - 1]!;
  const rows = x!.size / d;
  if (rows === 0) return;
  const kernel = `fp8_rmsnorm_${DTYPE_SUFFIX[x!.dtype]}_${DTYPE_SUFFIX[w!.dtype]}_${DTYPE_SUFFIX[attrs.dtype]}${ver()}`;
  // rowThreads(d): the rmsNorm kernel's block size, so the sum of squares is reduced in the same
  // order as the composite's and the normalized row is the same f32 values. v1 runs that many
  // threads; v2 at most 256, each playing rowThreads(d) / 256 of them (kernels/fp8.cuh).
  const args = [ptr(x!), ptr(w!), ptr(q!), ptr(s!), rows, d, Math.fround(attrs.eps), attrs.pow2Scale ? 1 : 0];
  const vthreads = rowThreads(d);
  if (fp8KernelVersion() === 'v1') b.kernel(moduleSpec('fp8', x!.dtype), kernel).launch([rows, 1, 1], [vthreads, 1, 1], args);
  else b.kernel(moduleSpec('fp8', x!.dtype), kernel).launch([rows, 1, 1], [Math.min(vthreads, 256), 1, 1], [...args, vthreads]);
});

register('fp8SwigluQuant', ({ backend: b, inputs: [gu], outputs: [q, s], attrs }: Ctx<{ dtype: Fp8; pow2Scale: boolean }>) => {
  const I = gu!.shape[gu!.shape.length - 1]! / 2;
  const rows = sizeOf(gu!.shape.slice(0, -1));
  if (rows === 0) return;
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
  // rowThreads(S): the block size the composite's rmsNorm runs on each group, i.e. its summation
  // order, which the kernel reproduces with its own 256 threads.
  const name = `fp8_group_gate_${DTYPE_SUFFIX[o!.dtype]}_${DTYPE_SUFFIX[gate!.dtype]}_${DTYPE_SUFFIX[w!.dtype]}_${DTYPE_SUFFIX[attrs.dtype]}`;
  b.kernel(moduleSpec('fp8fused', o!.dtype), name).launch([rows, 1, 1], [GROUP_GATE_THREADS, 1, 1],
    [ptr(o!), ptr(gate!), ptr(w!), ptr(q!), ptr(s!), rows, C, S, rowThreads(S), Math.fround(attrs.eps), attrs.pow2Scale ? 1 : 0]);
});
