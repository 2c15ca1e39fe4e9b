/**
 * The block-scaled FP8 GEMM kernels of kernels/fp8gemm.cuh: one module per output dtype, with the
 * plain and the grouped (MoE) kernel for each pairing of FP8 operand formats.
 */
import type { DType } from '@ring-linear/core';
import { DTYPE_TAG, ModuleBuilder, S, sfx } from '../builder.js';
import type { ModuleSpec } from '../builder.js';

export const FP8GEMM_DTYPES: readonly DType[] = ['f32', 'bf16', 'f16'];
const FP8: readonly DType[] = ['f8e4m3', 'f8e5m2'];
/** Dynamic shared memory of the mma.sync kernels: four stages, each a 128 x 128-byte tile per operand and their 2 x 128 scales. */
export const FP8GEMM_SMEM_BYTES = 4 * (2 * 128 * 128 + 2 * 128 * 4);
/** Output tile edge (rows and columns). */
export const FP8GEMM_TILE = 128;
export const FP8GEMM_THREADS = 256;

/** The wgmma kernels' dynamic shared memory: four stages of 33 KiB and 1 KiB to align them to 1024 bytes. */
export const FP8GEMM_WG_SMEM_BYTES = 4 * (2 * 128 * 128 + 1024) + 1024;

/** mma: 'sync' (mma.sync, any sm_89+) or 'wg' (wgmma, sm_90a only). */
export function fp8gemmKernelName(kind: 'plain' | 'grouped', a: DType, b: DType, out: DType, mma: 'sync' | 'wg' = 'sync'): string {
  return `fp8gemm_${kind === 'grouped' ? 'grouped_' : ''}${mma === 'wg' ? 'wg_' : ''}${sfx(a)}_${sfx(b)}_${sfx(out)}`;
}

export function fp8gemmModule(out: DType): ModuleSpec {
  const m = new ModuleBuilder(`fp8gemm.${sfx(out)}`, ['fp8gemm.cuh']);
  const TO = DTYPE_TAG[out];
  for (const a of FP8) {
    for (const b of FP8) {
      for (const mma of ['sync', 'wg'] as const) {
        const tpl = `${DTYPE_TAG[a]}, ${DTYPE_TAG[b]}, ${TO}, ${mma === 'wg'}`;
        m.entry(fp8gemmKernelName('plain', a, b, out, mma),
          [['const u8*', 'a'], ['const float*', 'sa'], ['const u8*', 'b'], ['const float*', 'sb'], [`${S(out)}*`, 'y'],
            ['int', 'M'], ['int', 'N'], ['int', 'K'], ['int', 'block_b'], ['int', 'aligned']],
          `fp8_gemm<${tpl}>(a, sa, b, sb, y, M, N, K, block_b, aligned);`, FP8GEMM_THREADS);
        m.entry(fp8gemmKernelName('grouped', a, b, out, mma),
          [['const u8*', 'a'], ['const float*', 'sa'], ['const u8*', 'b'], ['const float*', 'sb'], ['const int*', 'offsets'],
            [`${S(out)}*`, 'y'], ['int', 'M'], ['int', 'N'], ['int', 'K'], ['int', 'E'], ['int', 'aligned']],
          `fp8_grouped_gemm<${tpl}>(a, sa, b, sb, offsets, y, M, N, K, E, aligned);`, FP8GEMM_THREADS);
      }
    }
  }
  return m.build();
}
