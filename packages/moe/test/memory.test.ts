/**
 * Flat memory over many steps: training steps (forward with the auxiliary loss, backward through
 * every MoE op, an SGD update of every trainable parameter, the bias update) and inference
 * forwards leave the live tensor, storage and byte counters where they were.
 */
import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { add, dispose, memory, mul, noGrad, sub, sum, tidy, valueAndGrad } from '@ring-linear/core';
import { MoE } from '../src/index.js';
import { rngFor, t } from './helpers.js';

describe('memory', () => {
  it('120 training steps and 120 inference forwards at flat memory', () => {
    const rng = rngFor('memory');
    const m = new MoE({
      hiddenSize: 8, numExperts: 8, numExpertsPerTok: 2, moeIntermediateSize: 4, numSharedExperts: 1, nGroup: 4, topkGroup: 2, seqAuxLossAlpha: 0.01,
    });
    const params = m.parameters().filter((p) => p.requiresGrad);
    const x = t(rng.array(2 * 5 * 8), [2, 5, 8]);
    const target = t(rng.array(2 * 5 * 8), [2, 5, 8]);
    const step = () => {
      const { value, grads } = valueAndGrad(() => {
        const { output, auxLoss } = m.forwardWithAux(x);
        const d = sub(output, target);
        return add(sum(mul(d, d)), auxLoss!);
      }, params);
      noGrad(() => params.forEach((p, i) => p.assign(tidy(() => sub(p, mul(grads[i]!, 1e-3))))));
      m.updateExpertBias();
      dispose([value, grads]);
    };
    for (let i = 0; i < 5; i++) step(); // warm-up: lastLoad exists from here on
    const before = memory();
    for (let i = 0; i < 120; i++) step();
    const mid = memory();
    expect(mid.tensors).toBe(before.tensors);
    expect(mid.storages).toBe(before.storages);
    expect(mid.bytes).toBe(before.bytes);
    m.eval();
    for (let i = 0; i < 120; i++) m.forward(x).dispose();
    const after = memory();
    expect(after.tensors).toBe(before.tensors);
    expect(after.bytes).toBe(before.bytes);
    expect(after.backends.cpu!.bytesInUse).toBe(before.backends.cpu!.bytesInUse);
    dispose([x, target]);
    m.dispose();
  });
});
