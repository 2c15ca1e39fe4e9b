/**
 * Which layers are linear (lightning) and which softmax attention (MODEL_SPEC §1, "Layer schedule"):
 * layer l (0-based) is softmax iff (l + 1) % layerGroupSize == 0 or l >= (L // layerGroupSize) *
 * layerGroupSize (trailing layers are softmax). Ring-mini (20 layers, groups of 5): softmax at 4, 9,
 * 14, 19; Ring-flash (32, groups of 8): 7, 15, 23, 31. Custom hybrids may give an explicit list.
 */
import { AttrError } from '@ring-linear/core';

export type AttentionKind = 'linear' | 'softmax';

export interface LayerGroupSchedule {
  readonly numLayers: number;
  /** M + 1: M linear layers then one softmax layer. */
  readonly layerGroupSize: number;
}

export function layerSchedule(spec: LayerGroupSchedule | readonly AttentionKind[]): AttentionKind[] {
  if (Array.isArray(spec)) {
    const list = spec as readonly unknown[];
    list.forEach((k, i) => {
      if (k !== 'linear' && k !== 'softmax') {
        throw new AttrError(`layerSchedule: entry ${i} must be 'linear' or 'softmax', got ${JSON.stringify(k)}`);
      }
    });
    return [...(list as AttentionKind[])];
  }
  const { numLayers, layerGroupSize } = spec as LayerGroupSchedule;
  if (!Number.isInteger(numLayers) || numLayers < 1) throw new AttrError(`layerSchedule: numLayers must be an integer >= 1, got ${numLayers}`);
  if (!Number.isInteger(layerGroupSize) || layerGroupSize < 1) {
    throw new AttrError(`layerSchedule: layerGroupSize must be an integer >= 1, got ${layerGroupSize}`);
  }
  const fullGroups = Math.floor(numLayers / layerGroupSize) * layerGroupSize;
  return Array.from({ length: numLayers }, (_, l) => ((l + 1) % layerGroupSize === 0 || l >= fullGroups ? 'softmax' : 'linear'));
}

/** Indices of the softmax layers of a schedule. */
export function softmaxLayerIndices(schedule: readonly AttentionKind[]): number[] {
  return schedule.flatMap((k, i) => (k === 'softmax' ? [i] : []));
}
