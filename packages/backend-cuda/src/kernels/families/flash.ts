/** (being written) */
import type { DType } from '@ring-linear/core';
import { ModuleBuilder, sfx } from '../builder.js';
import type { ModuleSpec } from '../builder.js';

export const FLASH_DTYPES: readonly DType[] = ['bf16', 'f16'];

export function flashModule(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`flash.${sfx(dt)}`, ['flash.cuh']);
  return m.build();
}
