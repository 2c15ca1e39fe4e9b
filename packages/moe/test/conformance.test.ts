// The MoE ops' OpInfo records through the conformance runner on the CPU backend: float64
// references, kernel vs composite, finite-difference gradients, error inputs, leak checks.
import { expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { getKernel, getOpDef } from '@ring-linear/core';
import { describeConformance } from '@ring-linear/conformance/vitest';
import { MOE_OPS } from '../src/index.js';
import { moeOpInfos } from '../src/opinfo.js';

it('every MoE op has a composite, a CPU kernel and one OpInfo record', () => {
  for (const op of MOE_OPS) {
    expect(getOpDef(op)?.composite, `${op} composite`).toBeTypeOf('function');
    expect(getKernel(op, 'cpu'), `${op} CPU kernel`).toBeDefined();
    expect(moeOpInfos.filter((i) => i.op === op).length, `${op} OpInfo records`).toBe(1);
  }
  expect(moeOpInfos.map((i) => i.op).sort()).toEqual([...MOE_OPS].sort());
});

describeConformance({ backend: 'cpu', opInfos: moeOpInfos, tfjs: false });
