/** (being written) */
import type { DType } from '@ring-linear/core';
import { ModuleBuilder, sfx } from '../builder.js';
import type { ModuleSpec } from '../builder.js';

export const LIGHTNING_DTYPES: readonly DType[] = ['bf16', 'f16'];

export function lightningModule(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`lightning.${sfx(dt)}`, ['lightning.cuh']);
  return m.build();
}
