/**
 * Decay rates of the linear-attention heads (MODEL_SPEC §2, "Decay rates a_h"): an ALiBi-style power
 * law over heads times a per-layer factor,
 *   base(n)   = [2^(-(2^-(log2(n) - 3)) * (i + 1)) for i < n]          (n a power of two)
 *   slopes(H) = base(H), or base(p) + base(2p)[0::2][:H - p] with p = 2^floor(log2 H)
 *   a_{h,l}   = slopes(H)[h] * (1 - (l - 1) / (L - 1) + 1e-5)
 * The layer index in the factor differs between public implementations; `convention` picks one.
 */
import { AttrError } from '@ring-linear/core';

/**
 * 'hf': the Hugging Face reference, (l - 1) (layer 0 gets a factor of about 1 + 1/(L-1));
 * 'clamped': max(0, l - 1) (one port); 'serving': l (the SGLang / vLLM servers).
 */
export type DecayConvention = 'hf' | 'clamped' | 'serving';

export const DECAY_CONVENTIONS: readonly DecayConvention[] = ['hf', 'clamped', 'serving'];

function powerOfTwoSlopes(n: number): number[] {
  // start * ratio^i with ratio = start, as the reference computes it in Python floats.
  const start = 2 ** -(2 ** -(Math.log2(n) - 3));
  return Array.from({ length: n }, (_, i) => start * start ** i);
}

/** The per-head power-law slopes for any head count (float64, as the reference's Python floats). */
export function headSlopes(numHeads: number): number[] {
  if (!Number.isInteger(numHeads) || numHeads < 1) throw new AttrError(`headSlopes: numHeads must be an integer >= 1, got ${numHeads}`);
  const log = Math.log2(numHeads);
  if (Number.isInteger(log)) return powerOfTwoSlopes(numHeads);
  const p = 2 ** Math.floor(log);
  return [...powerOfTwoSlopes(p), ...headSlopes(2 * p).filter((_, i) => i % 2 === 0).slice(0, numHeads - p)];
}

/** The per-layer factor (1 - l'/(L - 1) + 1e-5) with l' = the convention's layer index. */
export function decayLayerFactor(layerIdx: number, numLayers: number, convention: DecayConvention = 'hf'): number {
  if (!Number.isInteger(numLayers) || numLayers < 1) throw new AttrError(`decayRates: numLayers must be an integer >= 1, got ${numLayers}`);
  if (!Number.isInteger(layerIdx) || layerIdx < 0 || layerIdx >= numLayers) {
    throw new AttrError(`decayRates: layerIdx must be an integer in [0, ${numLayers - 1}], got ${layerIdx}`);
  }
  if (!DECAY_CONVENTIONS.includes(convention)) {
    throw new AttrError(`decayRates: convention must be one of ${DECAY_CONVENTIONS.map((c) => `'${c}'`).join(', ')}, got ${JSON.stringify(convention)}`);
  }
  const l = convention === 'hf' ? layerIdx - 1 : convention === 'clamped' ? Math.max(0, layerIdx - 1) : layerIdx;
  // A one-layer model has no (L - 1); its only layer takes the full slope (the factor at l' = 0).
  const ratio = numLayers > 1 ? l / (numLayers - 1) : 0;
  return 1 - ratio + 1e-5;
}

export interface DecayRatesOptions {
  /** Layer-index convention of the per-layer factor; default 'hf'. */
  readonly convention?: DecayConvention;
}

/**
 * a_h for one layer, f32 [numHeads] (the reference keeps the slopes as an fp32 tensor and multiplies
 * by the factor in fp32). lambda_h = exp(-a_h).
 */
export function decayRates(numHeads: number, layerIdx: number, numLayers: number, options: DecayRatesOptions = {}): Float32Array {
  const factor = Math.fround(decayLayerFactor(layerIdx, numLayers, options.convention ?? 'hf'));
  return Float32Array.from(headSlopes(numHeads), (s) => Math.fround(Math.fround(s) * factor));
}
