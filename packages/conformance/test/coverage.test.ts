// Every op in core's registry must have an OpInfo record (and every record must name a defined
// op). Ops that other packages define (attention, moe, fp8) are checked by their own suites.
import { expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { getOpDef, listOps } from '@ring-linear/core';
import { ALL_OP_INFOS, missingOpInfos } from '../src/index.js';

it('every core op has an OpInfo record', () => {
  const missing = missingOpInfos(listOps());
  if (missing.length) console.log(`ops without an OpInfo record (${missing.length}): ${missing.join(', ')}`);
  expect(missing).toEqual([]);
});

it('every OpInfo record names a defined op, once', () => {
  const unknown = ALL_OP_INFOS.filter((i) => !getOpDef(i.op) && !i.call).map((i) => i.op);
  expect(unknown).toEqual([]);
  const names = ALL_OP_INFOS.map((i) => i.op);
  expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
});
