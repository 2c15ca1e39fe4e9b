/**
 * Entry points of kernels/flash.cuh (tensor-core flash attention, forward and backward) per 16-bit
 * dtype: the tiled kernels per head dim in FLASH_HEAD_DIMS, the backward pre-pass, the dQ
 * conversion and the general backward kernels for other head dims.
 */
import type { DType } from '@ring-linear/core';
import { DTYPE_TAG, ModuleBuilder, S, sfx } from '../builder.js';
import type { ModuleSpec, Param } from '../builder.js';

/** Dtypes of the module: the tensor-core kernels are 16-bit; f32 gets the general backward. */
export const FLASH_DTYPES: readonly DType[] = ['bf16', 'f16', 'f32'];
/** Dtypes of the tensor-core (mma.sync) kernels. */
export const FLASH_MMA_DTYPES: readonly DType[] = ['bf16', 'f16'];
/** Head dims (D = Dv) of the tensor-core kernels. */
export const FLASH_HEAD_DIMS = [64, 128] as const;
/** Query rows of a forward block, keys of a key tile, query rows of a backward step (flash.cuh). */
export const FLASH_BM = 128;
export const FLASH_BN = 64;
export const FLASH_BWD_BM = 64;
export const FLASH_FWD_THREADS = 256;
export const FLASH_BWD_THREADS = 128;
const PAD = 8;

/** Q and K / V buffers of the backward per head dim: double-buffered where two blocks still fit an SM. */
export const flashBwdStages = (D: number): 1 | 2 => (D <= 64 ? 2 : 1);

/** Dynamic shared memory of the forward kernel (flash.cuh flash_fwd). */
export const flashFwdSmem = (D: number): number => (FLASH_BM + 4 * FLASH_BN) * (D + PAD) * 2;
/** Key tile of the wgmma forward (flash.cuh FL_WG_BN). */
export const FLASH_WG_BN = 128;
/** Dynamic shared memory of the wgmma forward (flash.cuh FlashWgSmem; 1 KiB for aligning the base). */
export const flashFwdWgSmem = (D: number): number => 1024 + FLASH_BM * D * 2 + 4 * FLASH_WG_BN * D * 2;
/** Rows of the decode kernel's one mma tile (flash.cuh FL_DEC_ROWS): nq * G up to this many. */
export const FLASH_DECODE_ROWS = 16;
export const FLASH_DECODE_THREADS = 128;
/** Dynamic shared memory of the decode kernel (flash.cuh flash_decode: Q tile, 3 stages of K and V). */
export const flashDecodeSmem = (D: number): number => (FLASH_DECODE_ROWS + 2 * 3 * FLASH_BN) * (D + PAD) * 2;
/** Dynamic shared memory of the backward kernel (flash.cuh FlashBwdSmem). */
export function flashBwdSmem(D: number): number {
  const st = flashBwdStages(D);
  return ((2 * FLASH_BN + 2 * st * FLASH_BWD_BM) * (D + PAD) + FLASH_BN * (FLASH_BWD_BM + PAD)) * 2 + st * 2 * FLASH_BWD_BM * 4;
}

export function flashModule(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`flash.${sfx(dt)}`, ['flash.cuh']);
  const T = DTYPE_TAG[dt];
  const s = sfx(dt);
  const X = (name: string): Param => ['const u16*', name];
  const XS = (name: string): Param => [`const ${S(dt)}*`, name];
  const YS = (name: string): Param => [`${S(dt)}*`, name];
  const mma = FLASH_MMA_DTYPES.includes(dt);
  const seg: Param[] = [['int', 'Tq'], ['int', 'Tk'], ['int', 'H'], ['int', 'Hkv'], ['int', 'q0'], ['int', 'nq'], ['int', 'k0'], ['int', 'nk'],
    ['int', 'kvOffset'], ['int', 'causal']];
  const segArgs = 'Tq, Tk, H, Hkv, q0, nq, k0, nk, kvOffset, causal';
  for (const D of mma ? FLASH_HEAD_DIMS : []) {
    m.entry(`flash_fwd_${s}_d${D}`, [X('q'), X('k'), X('v'), ['u16*', 'out'], ['float*', 'lse'], ...seg, ['float', 'scaleLog2']],
      `flash_fwd<${T}, ${D}>(q, k, v, out, lse, ${segArgs}, scaleLog2);`, FLASH_FWD_THREADS);
    for (const oneBar of [false, true]) {
      m.entry(`flash_fwd_wg${oneBar ? '1b' : ''}_${s}_d${D}`, [X('q'), X('k'), X('v'), ['u16*', 'out'], ['float*', 'lse'], ...seg, ['float', 'scaleLog2'],
        ['int', 'vLbo'], ['int', 'vSbo']], `flash_fwd_wg<${T}, ${D}, ${oneBar}>(q, k, v, out, lse, ${segArgs}, scaleLog2, vLbo, vSbo);`, FLASH_FWD_THREADS);
    }
    m.entry(`flash_decode_${s}_d${D}`,
      [X('q'), X('k'), X('v'), ['float*', 'pm'], ['float*', 'pl'], ['float*', 'pacc'], ...seg, ['float', 'scaleLog2'], ['int', 'chunk'], ['int', 'nsplit']],
      `flash_decode<${T}, ${D}>(q, k, v, pm, pl, pacc, ${segArgs}, scaleLog2, chunk, nsplit);`, FLASH_DECODE_THREADS);
    m.entry(`flash_bwd_${s}_d${D}`,
      [X('q'), X('k'), X('v'), X('dO'), ['const float*', 'lse'], ['const float*', 'di'], ['float*', 'dqAcc'], ['u16*', 'dk'], ['u16*', 'dv'], ...seg,
        ['float', 'scale'], ['float', 'scaleLog2']],
      `flash_bwd<${T}, ${D}, ${flashBwdStages(D)}>(q, k, v, dO, lse, di, dqAcc, dk, dv, ${segArgs}, scale, scaleLog2);`, FLASH_BWD_THREADS);
  }
  m.entry(`flash_bwd_prep_${s}`, [XS('o'), XS('dO'), ['const float*', 'dLse'], ['float*', 'di'], ['int', 'B'], ['int', 'Tq'], ['int', 'H'], ['int', 'Dv']],
    `flash_bwd_prep<${T}>(o, dO, dLse, di, B, Tq, H, Dv);`, 128);
  if (mma) {
    m.entry(`flash_bwd_dq_convert_${s}`, [['const float*', 'acc'], ['u16*', 'dq'], ['i64', 'n'], ['float', 'scale']],
      `flash_bwd_dq_convert<${T}>(acc, dq, n, scale);`);
  }
  const gen: Param[] = [['int', 'Tq'], ['int', 'Tk'], ['int', 'H'], ['int', 'Hkv'], ['int', 'D'], ['int', 'Dv'], ['int', 'q0'], ['int', 'nq'], ['int', 'k0'],
    ['int', 'nk'], ['int', 'kvOffset'], ['int', 'causal'], ['float', 'scale']];
  const genArgs = 'Tq, Tk, H, Hkv, D, Dv, q0, nq, k0, nk, kvOffset, causal, scale';
  m.entry(`flash_bwd_dq_general_${s}`, [XS('q'), XS('k'), XS('v'), XS('dO'), ['const float*', 'lse'], ['const float*', 'di'], YS('dq'), ...gen],
    `flash_bwd_dq_general<${T}>(q, k, v, dO, lse, di, dq, ${genArgs});`, 128);
  m.entry(`flash_bwd_dkv_general_${s}`,
    [XS('q'), XS('k'), XS('v'), XS('dO'), ['const float*', 'lse'], ['const float*', 'di'], YS('dk'), YS('dv'), ...gen],
    `flash_bwd_dkv_general<${T}>(q, k, v, dO, lse, di, dk, dv, ${genArgs});`, 128);
  return m.build();
}
