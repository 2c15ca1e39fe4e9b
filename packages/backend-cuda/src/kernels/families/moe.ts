/** (being written) */
import type { DType } from '@ring-linear/core';
import { ModuleBuilder, sfx } from '../builder.js';
import type { ModuleSpec } from '../builder.js';

export const MOE_DTYPES: readonly DType[] = ['bf16', 'f16'];

export function moeModule(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`moe.${sfx(dt)}`, ['moe.cuh']);
  return m.build();
}
