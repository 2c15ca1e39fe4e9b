// The README example, run as written (printing replaced by assertions).
import { expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { randomNormal, sub, sum, mul, tidy, valueAndGrad } from '@ring-linear/core';
import { MoE } from '../src/index.js';

it('README example: three training steps with bias updates', async () => {
  const moe = new MoE({
    hiddenSize: 64,
    numExperts: 32,
    numExpertsPerTok: 8,
    moeIntermediateSize: 16,
    numSharedExperts: 1,
    nGroup: 8,
    topkGroup: 4,
    routedScalingFactor: 2.5,
    normTopkProb: true,
  });
  const x = randomNormal([2, 12, 64]);
  const target = randomNormal([2, 12, 64]);
  const params = moe.parameters().filter((p) => p.requiresGrad);
  expect(params).not.toContain(moe.gate.expert_bias);
  const losses: number[] = [];
  for (let step = 0; step < 3; step++) {
    const { value, grads } = valueAndGrad(() => {
      const d = sub(moe.forward(x), target);
      return sum(mul(d, d));
    }, params);
    params.forEach((p, i) => p.assign(tidy(() => sub(p, mul(grads[i]!, 1e-3)))));
    moe.updateExpertBias();
    const stats = await moe.loadStatistics();
    expect(stats.total).toBe(24 * 8);
    expect(stats.maxOverMean).toBeGreaterThanOrEqual(1);
    losses.push((await value.data())[0]!);
    value.dispose();
    grads.forEach((g) => g.dispose());
  }
  expect(losses[2]).toBeLessThan(losses[0]!);
  x.dispose();
  target.dispose();
  moe.dispose();
});
