/**
 * Entry points of kernels/moe.cuh per dtype. The f32 module also holds the dtype-free kernels
 * (router selection per bias dtype, the dispatch plan passes, permute per vector width, the
 * grouped GEMM's tile list); every float module has combine (per weight dtype, 16-byte vectors or
 * scalar), the scalar grouped GEMMs and the row zeroing; bf16 / f16 add the tensor-core grouped
 * GEMMs (kernels/moe.cuh for the tiling).
 */
import type { DType } from '@ring-linear/core';
import { DTYPE_TAG, ModuleBuilder, S, sfx } from '../builder.js';
import type { ModuleSpec, Param } from '../builder.js';

export const MOE_DTYPES: readonly DType[] = ['f32', 'bf16', 'f16'];
/** Dtypes of the tensor-core grouped GEMMs. */
export const MOE_MMA_DTYPES: readonly DType[] = ['bf16', 'f16'];
/** Weight / bias dtypes the combine and router kernels read. */
export const MOE_AUX_DTYPES: readonly DType[] = ['f32', 'bf16', 'f16'];
/** Tile rows / columns / k step and stages of the grouped GEMMs (kernels/moe.cuh MOE_*). */
export const MOE_BM = 128;
export const MOE_BN = 128;
export const MOE_THREADS = 256;
/**
 * Versions of the tiled grouped GEMMs (RING_LINEAR_CUDA_MOE_GMM=v1..v5, measured against each other
 * by the GPU step). Forward: k step, warp tile width (block tile 128 x 4 wn), cp.async stages,
 * skipping of rows past a segment's end (0 none, 1 per 16-row slice, 2 per warp), whether the output tile is
 * staged through shared memory for coalesced 16-byte stores, dynamic shared memory, min blocks per
 * SM. A^T B: k step, stages, staging (a [128][136] tile after the stages), whether the zero-padded k steps
 * of a segment's last stage skip their mma, whether a block runs several experts (v1: one).
 */
const stages = (bk: number, bn = 128, n = 3) => n * (128 + bn) * bk * 2;
const STAGING = 128 * 136 * 2;
const atb = (multi: boolean, bk: 32 | 64, n: number, ep: boolean, kskip: boolean) => ({ bk, stages: n, ep, kskip, multi, smem: stages(bk, 128, n) + (ep ? STAGING : 0) });
/** skip: 0 none, 1 per 16-row slice, 2 per warp (kernels/moe.cuh moe_gmm). */
const fwd = (bk: 32 | 64, n: number, skip: 0 | 1 | 2, ep: boolean) => ({ bk, wn: 32, stages: n, skip, ep, smem: stages(bk, 128, n), minBlocks: 2 });
export const MOE_GMM_VERSIONS = {
  v1: { fwd: fwd(32, 3, 0, false), atb: atb(false, 32, 3, false, true) },
  v2: { fwd: fwd(64, 3, 2, false), atb: atb(true, 32, 3, true, false) },
  v3: { fwd: fwd(64, 3, 0, false), atb: atb(true, 64, 3, false, false) },
  v4: { fwd: fwd(64, 3, 0, false), atb: atb(true, 32, 3, true, false) },
  v5: { fwd: fwd(32, 4, 0, false), atb: atb(true, 32, 4, true, false) },
} as const;
/** Output columns of a forward block tile (8 warps of 64 x wn). */
export const moeGmmBlockN = (v: keyof typeof MOE_GMM_VERSIONS) => 4 * MOE_GMM_VERSIONS[v].fwd.wn;
export type MoeGmmVersion = keyof typeof MOE_GMM_VERSIONS;
/** Permute vector widths in bytes. */
export const MOE_PERMUTE_WIDTHS = [16, 8, 4, 2, 1] as const;

export function moeModule(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`moe.${sfx(dt)}`, ['moe.cuh']);
  const T = DTYPE_TAG[dt];
  const s = sfx(dt);
  const P = (name: string): Param => [`${S(dt)}*`, name];
  const CP = (name: string): Param => [`const ${S(dt)}*`, name];
  if (dt === 'f32') {
    for (const tb of MOE_AUX_DTYPES) {
      m.entry(`moe_route_${sfx(tb)}`,
        [['const float*', 'logits'], [`const ${S(tb)}*`, 'bias'], ['float*', 'scores'], ['float*', 'weights'], ['int*', 'indices'], ['float*', 'gscore'],
          ['int', 'N'], ['int', 'E'], ['int', 'K'], ['int', 'nGroup'], ['int', 'topkGroup'], ['int', 'softmax'], ['int', 'norm'], ['float', 'scale']],
        `moe_route<${DTYPE_TAG[tb]}>(logits, bias, scores, weights, indices, gscore, N, E, K, nGroup, topkGroup, softmax, norm, scale);`);
    }
    m.entry('moe_plan_walk',
      [['const int*', 'ids'], ['int*', 'table'], ['int*', 'slotToRow'], ['int*', 'rowToSlot'], ['i64', 'S'], ['int', 'E'], ['int', 'chunk'], ['int', 'chunks'], ['int', 'scatter']],
      'moe_plan_walk_warp(ids, table, slotToRow, rowToSlot, S, E, chunk, chunks, scatter != 0);');
    m.entry('moe_plan_scan', [['int*', 'table'], ['int*', 'offsets'], ['int*', 'tokensPerExpert'], ['int', 'E'], ['int', 'chunks']],
      'moe_plan_scan_block(table, offsets, tokensPerExpert, E, chunks);', 1024);
    for (const v of MOE_PERMUTE_WIDTHS) {
      m.entry(`moe_permute_v${v}`, [['const void*', 'x'], ['void*', 'xp'], ['const int*', 'rowToSlot'], ['i64', 'rows'], ['int', 'K'], ['i64', 'rowBytes']],
        `moe_permute<${v}>(x, xp, rowToSlot, rows, K, rowBytes);`);
    }
    m.entry('moe_gmm_tiles', [['const int*', 'offsets'], ['int', 'E'], ['int', 'R'], ['int*', 'tiles'], ['int*', 'count']],
      'moe_gmm_tiles_block(offsets, E, R, tiles, count);', 1024);
  }
  const ve = 16 / (dt === 'f32' ? 4 : 2);
  for (const tw of MOE_AUX_DTYPES) {
    for (const v of [ve, 1]) {
      m.entry(`moe_combine_${s}_${sfx(tw)}_v${v}`,
        [CP('yp'), [`const ${S(tw)}*`, 'w'], ['const int*', 'slotToRow'], P('y'), ['i64', 'N'], ['int', 'K'], ['i64', 'H']],
        `moe_combine<${T}, ${DTYPE_TAG[tw]}, ${v}>(yp, w, slotToRow, y, N, K, H);`);
    }
  }
  m.entry(`moe_gmm_zero_${s}`, [['const int*', 'offsets'], ['int', 'E'], ['int', 'R'], P('y'), ['int', 'out']], `moe_gmm_zero<${T}>(offsets, E, R, y, out);`);
  m.entry(`moe_gmm_simple_${s}`,
    [CP('x'), [`const ${S(dt)}* const*`, 'table'], CP('base'), ['const int*', 'offsets'], ['int', 'E'], P('y'), ['int', 'R'], ['int', 'in'], ['int', 'out'], ['int', 'transB']],
    `moe_gmm_simple<${T}>(x, table, base, offsets, E, y, R, in, out, transB);`);
  m.entry(`moe_gmm_atb_simple_${s}`,
    [CP('a'), CP('b'), ['const int*', 'offsets'], ['int', 'E'], [`${S(dt)}* const*`, 'table'], P('base'), ['int', 'R'], ['int', 'P'], ['int', 'Q']],
    `moe_gmm_atb_simple<${T}>(a, b, offsets, E, table, base, R, P, Q);`);
  if (MOE_MMA_DTYPES.includes(dt)) {
    for (const v of ['v1', 'v2', 'v3', 'v4', 'v5'] as const) {
      const { fwd, atb: ab } = MOE_GMM_VERSIONS[v];
      for (const tb of [0, 1]) {
        m.entry(`moe_gmm_${s}_tb${tb}_${v}`,
          [CP('x'), [`const ${S(dt)}* const*`, 'table'], CP('base'), ['const int*', 'tiles'], ['const int*', 'count'], ['const int*', 'offsets'], P('y'),
            ['int', 'R'], ['int', 'in'], ['int', 'out']],
          `moe_gmm<${T}, ${tb ? 'true' : 'false'}, ${fwd.bk}, ${fwd.skip}, ${fwd.ep}, ${fwd.wn}, ${fwd.stages}>(x, table, base, tiles, count, offsets, y, R, in, out);`, `${MOE_THREADS}, ${fwd.minBlocks}`);
      }
      m.entry(`moe_gmm_atb_${s}_${v}`,
        [CP('a'), CP('b'), ['const int*', 'offsets'], [`${S(dt)}* const*`, 'table'], P('base'), ['int', 'R'], ['int', 'P'], ['int', 'Q'], ['int', 'E'], ['int', 'G']],
        `moe_gmm_atb<${T}, ${ab.bk}, ${ab.ep}, ${ab.kskip}, ${ab.stages}>(a, b, offsets, table, base, R, P, Q, E, G);`, `${MOE_THREADS}, 2`);
    }
  }
  return m.build();
}
