/**
 * Entry points of kernels/lightning.cuh (chunked lightning attention, forward and backward) per
 * activation dtype: the scan over super-chunks (f32 state, a copy in every module under its own name), the general scalar passes
 * (every dtype and head size) and, for the 16-bit dtypes, the tensor-core passes per head dim in
 * LIGHTNING_HEAD_DIMS. Each pass comes in a forward-time (`fwd`) and a reverse-time (`rev`) form.
 */
import type { DType } from '@ring-linear/core';
import { DTYPE_TAG, ModuleBuilder, S, sfx } from '../builder.js';
import type { ModuleSpec, Param } from '../builder.js';

export const LIGHTNING_DTYPES: readonly DType[] = ['f32', 'bf16', 'f16'];
/** dtypes with tensor-core passes. */
export const LIGHTNING_MMA_DTYPES: readonly DType[] = ['bf16', 'f16'];
/** Head dims (D = Dv) of the tensor-core passes. */
export const LIGHTNING_HEAD_DIMS = [64, 128] as const;
/** Tokens of one chunk of the tensor-core and general passes (LT_CHUNK in lightning.cuh). */
export const LIGHTNING_CHUNK = 64;
/** Threads of a general-path block. */
export const LIGHTNING_GEN_THREADS = 256;
const PAD = 8;

/** Threads of a tensor-core state-pass block for head dim DH (DH / 8 warps). */
export const lightningThreads = (DH: number): number => DH * 4;
/** Warp counts of the output pass's variants per head dim: DH / 16 (larger tiles) and DH / 8 (more warps). */
export const lightningChunkWarps = (DH: number): readonly number[] => [DH / 16, DH / 8];
/** cp.async stages of the tensor-core passes (LT_STAGES in lightning.cuh). */
export const LIGHTNING_STAGES = 3;
/** Dynamic shared memory of lt_state: LIGHTNING_STAGES stages of two [64][DH + 8] 16-bit tiles. */
export const lightningStateSmem = (DH: number): number => LIGHTNING_STAGES * 2 * LIGHTNING_CHUNK * (DH + PAD) * 2;
/** Dynamic shared memory of lt_chunk: LIGHTNING_STAGES stages of three tiles, the state copy, the scores. */
export const lightningChunkSmem = (DH: number): number =>
  (LIGHTNING_STAGES * 3 * LIGHTNING_CHUNK * (DH + PAD) + DH * (DH + PAD) + LIGHTNING_CHUNK * (LIGHTNING_CHUNK + PAD)) * 2;

export function lightningModule(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`lightning.${sfx(dt)}`, ['lightning.cuh']);
  const T = DTYPE_TAG[dt];
  const s = sfx(dt);
  const X = (name: string): Param => [`const ${S(dt)}*`, name];
  const seg: Param[] = [['int', 'Tn'], ['int', 't0'], ['int', 'Tseg'], ['int', 'H']];
  for (const dir of ['fwd', 'rev'] as const) {
    const rev = dir === 'rev' ? 'true' : 'false';
    m.entry(`lt_scan_${s}_${dir}`,
      [['float*', 'slots'], ['const float*', 'init'], ['float*', 'fin'], ['const float*', 'decay'], ['int', 'H'], ['int', 'DD'], ['int', 'Tseg'],
        ['int', 'P'], ['int', 'G'], ['int', 'slotBase'], ['int', 'nBase']],
      `lt_scan<${rev}>(slots, init, fin, decay, H, DD, Tseg, P, G, slotBase, nBase);`);
    m.entry(`lt_state_gen_${s}_${dir}`,
      [X('p2'), X('r1'), ['const float*', 'decay'], ['float*', 'slots'], ...seg, ['int', 'DP'], ['int', 'DR'], ['int', 'P'], ['int', 'slotBase'], ['float', 'scale']],
      `lt_state_gen<${T}, ${rev}>(p2, r1, decay, slots, Tn, t0, Tseg, H, DP, DR, P, slotBase, scale);`);
    m.entry(`lt_chunk_gen_${s}_${dir}`,
      [X('p1'), X('p2'), X('r1'), [`${S(dt)}*`, 'out'], ['const float*', 'decay'], ['const float*', 'slots'], ['int', 'xT'], ...seg,
        ['int', 'DP'], ['int', 'DR'], ['int', 'P'], ['int', 'slotBase'], ['float', 'scale']],
      `lt_chunk_gen<${T}, ${rev}>(p1, p2, r1, out, decay, slots, xT, Tn, t0, Tseg, H, DP, DR, P, slotBase, scale);`);
    if (!LIGHTNING_MMA_DTYPES.includes(dt)) continue;
    for (const DH of LIGHTNING_HEAD_DIMS) {
      m.entry(`lt_state_${s}_d${DH}_${dir}`,
        [X('p2'), X('r1'), ['const float*', 'decay'], ['float*', 'slots'], ...seg, ['int', 'P'], ['int', 'slotBase'], ['float', 'scale']],
        `lt_state<${T}, ${DH}, ${rev}>(p2, r1, decay, slots, Tn, t0, Tseg, H, P, slotBase, scale);`, lightningThreads(DH));
      for (const NW of lightningChunkWarps(DH)) {
        m.entry(`lt_chunk_${s}_d${DH}_w${NW}_${dir}`,
          [X('p1'), X('p2'), X('r1'), [`${S(dt)}*`, 'out'], ['const float*', 'decay'], ['const float*', 'slots'], ['int', 'xT'], ...seg,
            ['int', 'P'], ['int', 'slotBase'], ['float', 'scale']],
          `lt_chunk<${T}, ${DH}, ${NW}, ${rev}>(p1, p2, r1, out, decay, slots, xT, Tn, t0, Tseg, H, P, slotBase, scale);`, 32 * NW);
      }
    }
  }
  return m.build();
}
