// The FP8 ops' OpInfo records through the conformance runner on the CPU backend: float64
// references (exact for the quantizers), kernel vs composite, gradients where defined (routerGemm),
// error inputs, leak checks.
import { expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { getKernel, getOpDef } from '@ring-linear/core';
import { describeConformance } from '@ring-linear/conformance/vitest';
import { FP8_OPS } from '../src/index.js';
import { fp8OpInfos } from '../src/opinfo.js';

it('every FP8 op has a composite, a CPU kernel and one OpInfo record', () => {
  for (const op of FP8_OPS) {
    expect(getOpDef(op)?.composite, `${op} composite`).toBeTypeOf('function');
    expect(getKernel(op, 'cpu'), `${op} CPU kernel`).toBeDefined();
    expect(fp8OpInfos.filter((i) => i.op === op).length, `${op} OpInfo records`).toBe(1);
  }
  expect(fp8OpInfos.map((i) => i.op).sort()).toEqual([...FP8_OPS].sort());
});

describeConformance({ backend: 'cpu', opInfos: fp8OpInfos, tfjs: false });
