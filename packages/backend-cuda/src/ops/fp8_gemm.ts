/**
 * CUDA kernels of @ring-linear/fp8's block-scaled GEMMs (attrs restated here: this package does
 * not import the fp8 package):
 *
 * - fp8Gemm: cuBLASLt with its block-scaling modes where cuBLASLt offers the problem (Hopper:
 *   the TN form, K and N multiples of 16, 16-byte aligned operands, not E5M2 x E5M2): a's 1x128
 *   scales as VEC128 (transposed to [KT, M] first, the layout cuBLASLt reads), b's as BLK128x128
 *   (rows padded to a multiple of 4 K-tiles when needed) or VEC128 ([KT, N]); the output dtype is
 *   written directly. Everything else (and everything with RING_LINEAR_FP8GEMM=own) runs the
 *   own kernel of kernels/fp8gemm.cuh (mma.sync; wgmma on sm_90a with RING_LINEAR_FP8GEMM_MMA=wg,
 *   see fp8GemmMma).
 * - fp8GroupedGemm: the grouped kernel of kernels/fp8gemm.cuh, which reads the offsets on the
 *   device (no host sync) and zeroes the rows in no segment.
 *
 * Both compute out = sum_t fl32(fl32(P_t sa) sb) with f32 tile sums P_t (the composite's
 * definition), rounded once to outDtype.
 */
import { BackendError, type DType, type TensorInfo } from '@ring-linear/core';
import type { CudaBackend } from '../backend.js';
import type { Block } from '../memory/allocator.js';
import { moduleSpec } from '../kernels/sources.js';
import { FP8GEMM_SMEM_BYTES, FP8GEMM_THREADS, FP8GEMM_TILE, FP8GEMM_WG_SMEM_BYTES, fp8gemmKernelName } from '../kernels/families/fp8gemm.js';
import { planFp8Gemm, type Fp8DTypeName, type Fp8GemmProblem, type GemmDType } from '../runtime/cublaslt.js';
import { ptr, register, stridedCopy, type Ctx } from './common.js';

const cdiv = (a: number, b: number) => Math.ceil(a / b);

/**
 * Which path fp8Gemm takes: 'auto' (cuBLASLt where it offers the problem, else the own kernel) or
 * 'own' (always the own kernel). Read at every call from RING_LINEAR_FP8GEMM.
 */
export function fp8GemmPath(): 'auto' | 'own' {
  return process.env.RING_LINEAR_FP8GEMM === 'own' ? 'own' : 'auto';
}

/**
 * The own kernels' MMA: mma.sync (default; its FP8 tile sums came out f32-exact on the H100), or
 * wgmma with RING_LINEAR_FP8GEMM_MMA=wg on sm_90a (about 2x faster, but Hopper's FP8 wgmma adds
 * the products with fewer than f32's bits, like cuBLASLt: errors of ~1e-3 of a tile sum's
 * magnitude, outside the ops' f32-accumulation contract). Read at every call.
 */
export function fp8GemmMma(b: CudaBackend): 'wg' | 'sync' {
  return b.arch === 'sm_90a' && process.env.RING_LINEAR_FP8GEMM_MMA === 'wg' ? 'wg' : 'sync';
}

/** Counts of fp8Gemm calls per path (for tests and the GPU step). */
export const fp8GemmCalls = { cublasLt: 0, own: 0 };

const smemSet = new Set<unknown>();
/** The own kernel and its dynamic shared memory. */
function ownKernel(b: CudaBackend, kind: 'plain' | 'grouped', a: DType, w: DType, out: DType) {
  const mma = fp8GemmMma(b);
  const k = b.kernel(moduleSpec('fp8gemm', out), fp8gemmKernelName(kind, a, w, out, mma));
  const smem = mma === 'wg' ? FP8GEMM_WG_SMEM_BYTES : FP8GEMM_SMEM_BYTES;
  if (!smemSet.has(k.handle)) {
    // Above the 48 KiB default: opt in once per loaded function.
    b.rt.driver.setMaxDynamicShared(k.handle, smem);
    smemSet.add(k.handle);
  }
  return { k, smem };
}

const aligned16 = (...ps: number[]) => ps.every((p) => p % 16 === 0);

/** Whether cuBLASLt takes this problem (cheap checks first; then its heuristic, cached). */
function cublasLtTakes(b: CudaBackend, p: Fp8GemmProblem, pointers: number[]): boolean {
  if (fp8GemmPath() === 'own') return false;
  if (p.aType === 'f8e5m2' && p.bType === 'f8e5m2') return false;
  if (p.k % 16 !== 0 || p.n % 16 !== 0 || !aligned16(...pointers)) return false;
  return b.rt.cublasLt.supportsFp8(p, b.workspaceBytes, b.gemmWorkspace());
}

register('fp8Gemm', ({ backend: b, inputs: [a, sa, w, sw], outputs: [y], attrs }: Ctx<{ bLayout: 'block128x128' | 'tile1x128'; outDtype: DType }>) => {
  const [M, K] = [a!.shape[0]!, a!.shape[1]!];
  const N = w!.shape[0]!;
  if (M === 0 || N === 0) return;
  const KT = cdiv(K, 128);
  const p: Fp8GemmProblem = {
    aType: a!.dtype as Fp8DTypeName,
    bType: w!.dtype as Fp8DTypeName,
    outDType: y!.dtype as GemmDType,
    bLayout: attrs.bLayout === 'tile1x128' ? 'tile' : 'block',
    m: M,
    n: N,
    k: K,
  };
  if (cublasLtTakes(b, p, [ptr(a!), ptr(w!), ptr(y!)])) {
    const temps: Block[] = [];
    try {
      const temp = (bytes: number) => {
        const t = b.temp(bytes);
        temps.push(t);
        return t.ptr;
      };
      // a's scales [M, KT] -> [KT, M] (M fastest), the VEC128 layout.
      const saKM = temp(KT * M * 4);
      stridedCopy(b, 4, ptr(sa!), saKM, [KT, M], [1, KT], [M, 1]);
      let sbPtr = ptr(sw!);
      if (p.bLayout === 'tile') {
        const t = temp(KT * N * 4);
        stridedCopy(b, 4, sbPtr, t, [KT, N], [1, KT], [N, 1]);
        sbPtr = t;
      } else {
        const ld = planFp8Gemm(p).blockScaleLd;
        if (ld !== KT) {
          // 128x128 block scales with rows of a 16-byte multiple.
          const NB = cdiv(N, 128);
          const t = temp(NB * ld * 4);
          stridedCopy(b, 4, sbPtr, t, [NB, KT], [KT, 1], [ld, 1]);
          sbPtr = t;
        }
      }
      b.rt.cublasLt.fp8Matmul(p, ptr(a!), saKM, ptr(w!), sbPtr, ptr(y!), b.gemmWorkspace(), b.workspaceBytes, b.stream);
      fp8GemmCalls.cublasLt++;
    } finally {
      // Stream order makes the scratch reusable as soon as its last use is enqueued.
      for (const t of temps) b.releaseTemp(t);
    }
    return;
  }
  fp8GemmCalls.own++;
  launchOwn(b, a!, sa!, w!, sw!, y!, M, N, K, p.bLayout === 'block');
});

function checkGrid(op: string, y: number): void {
  if (y > 65535) throw new BackendError(`${op}: ${y} row tiles exceed the grid's y limit (65535)`);
}

function launchOwn(b: CudaBackend, a: TensorInfo, sa: TensorInfo, w: TensorInfo, sw: TensorInfo, y: TensorInfo, M: number, N: number, K: number, blockB: boolean): void {
  const gy = cdiv(M, FP8GEMM_TILE);
  checkGrid('fp8Gemm', gy);
  const aligned = K % 16 === 0 && aligned16(ptr(a), ptr(w)) ? 1 : 0;
  const { k, smem } = ownKernel(b, 'plain', a.dtype, w.dtype, y.dtype);
  k.launch([cdiv(N, FP8GEMM_TILE), gy, 1], [FP8GEMM_THREADS, 1, 1], [ptr(a), ptr(sa), ptr(w), ptr(sw), ptr(y), M, N, K, blockB ? 1 : 0, aligned], smem);
}

register('fp8GroupedGemm', ({ backend: b, inputs: [a, sa, w, sw, off], outputs: [y] }: Ctx<{ outDtype: DType }>) => {
  const [M, K] = [a!.shape[0]!, a!.shape[1]!];
  const [E, N] = [w!.shape[0]!, w!.shape[1]!];
  if (M === 0 || N === 0) return;
  // A bound on the tiles of all segments (E experts and the two stretches of rows in none) when
  // the offsets are non-decreasing; blocks past the last tile exit at once.
  const gy = cdiv(M, FP8GEMM_TILE) + E + 2;
  checkGrid('fp8GroupedGemm', gy);
  const aligned = K % 16 === 0 && aligned16(ptr(a!), ptr(w!)) ? 1 : 0;
  const { k, smem } = ownKernel(b, 'grouped', a!.dtype, w!.dtype, y!.dtype);
  k.launch([cdiv(N, FP8GEMM_TILE), gy, 1], [FP8GEMM_THREADS, 1, 1], [ptr(a!), ptr(sa!), ptr(w!), ptr(sw!), ptr(off!), ptr(y!), M, N, K, E, aligned], smem);
});
