/**
 * Gradients through the whole hybrid model (embedding, linear-attention layer with its dense MLP,
 * softmax-attention layer with the MoE, final norm, lm_head, a packed row with a document
 * boundary) against finite differences.
 *
 * Per parameter tensor, directional derivatives along two unit directions d: the gradient's own
 * direction (g / |g|, where a wrong gradient changes the value most) and a random one, each by the
 * fourth-order central stencil
 *   FD = (8 (L(+e) - L(-e)) - (L(+2e) - L(-2e))) / (12 e),   L(s) = loss(theta + s d),
 * (truncation error O(e^4)). The step e = min(0.03, 0.05 / |<g, d>|) moves the loss by about 0.05:
 * far above its f32 rounding noise, small against the curvature (strong along the embedding's
 * gradient). Each f32 loss value carries about one ulp of noise, so FD carries about ulp(L) / e.
 * The stated tolerance: |FD - <g, d>| <= rel |<g, d>| + 4 ulp(L) / e, with rel = 1e-3 along the
 * gradient and 2e-2 along the random direction (over ten seeds the worst error was 0.2 of it).
 * The loss is the SUM of the per-token cross-entropy.
 *
 * Routing is made continuous (every token to all 4 experts, one group): the routing weights still
 * carry gradient, but no perturbation can switch experts (a discontinuity of top-k). The MoE
 * package checks top-k routing gradients on its own.
 */
import '@ring-linear/backend-cpu';
import { describe, expect, it } from 'vitest';
import { add, dispose, manualSeed, mul, noGrad, tensor, tidy, valueAndGrad, type Parameter, type Tensor } from '@ring-linear/core';
import { nextTokenTargets } from '@ring-linear/models';
import { SEED, makeRng, tinyConfig, tinyModel } from './helpers.js';

const rng = makeRng(SEED ^ 0x96ad);

function ulp32(x: number): number {
  const e = Math.floor(Math.log2(Math.abs(x)));
  return 2 ** (e - 23);
}

describe('gradients through the whole model', () => {
  it('match fourth-order finite differences for every parameter tensor', async () => {
    manualSeed(SEED);
    const model = tinyModel({ config: tinyConfig({ num_experts_per_tok: 4, n_group: 1, topk_group: 1 }) });
    // Larger weights than the 0.02 init so that every path carries signal.
    const params = model.namedParameters().filter(([, p]) => p.requiresGrad);
    for (const [n, p] of params) if (!n.includes('norm')) p.assign(tidy(() => mul(p, 4)));
    const T = 24;
    const cu = [0, 9, T];
    const ids = Array.from({ length: T }, () => rng.int(0, 259));
    const x = tensor(Int32Array.from(ids), [1, T], 'i32');
    const targets = nextTokenTargets([ids], { cuSeqlens: cu });
    const loss = () => model.forward(x, { targets, cuSeqlens: cu, reduction: 'sum', logits: 'none' }).loss!;
    const ps = params.map(([, p]) => p);
    const { value, grads } = valueAndGrad(loss, ps);
    const L0 = (await value.data())[0]!;
    value.dispose();
    const evalAt = async (p: Parameter, d: Tensor, s: number): Promise<number> => {
      const orig = noGrad(() => tidy(() => add(p, 0)));
      p.assign(noGrad(() => tidy(() => add(p, mul(d, s)))));
      const l = noGrad(() => tidy(loss));
      const v = (await l.data())[0]!;
      l.dispose();
      p.assign(orig);
      return v;
    };
    const report: string[] = [];
    const failures: string[] = [];
    for (let i = 0; i < params.length; i++) {
      const [name, p] = params[i]!;
      const g = grads[i]!.dataSync() as Float32Array;
      const gn = Math.sqrt(g.reduce((a, v) => a + v * v, 0));

      const random = rng.array(p.size);
      const rn = Math.sqrt(random.reduce((a, v) => a + v * v, 0));
      for (const [kind, dir, rel] of [['gradient', Float32Array.from(g, (v) => v / gn), 1e-3], ['random', Float32Array.from(random, (v) => v / rn), 2e-2]] as const) {
        const d = tensor(dir, [...p.shape]);
        let analytic = 0;
        for (let k = 0; k < g.length; k++) analytic += g[k]! * dir[k]!;
        // The step moves the loss by about 0.05 to first order (far above its f32 noise, small
        // enough that the curvature along the gradient, which is strong for the embedding, stays
        // out of the way), at most 0.03.
        const eps = Math.min(0.03, 0.05 / Math.abs(analytic));
        const noise = (4 * ulp32(L0)) / eps;
        const f = (s: number) => evalAt(p, d, s * eps);
        const fd = (8 * ((await f(1)) - (await f(-1))) - ((await f(2)) - (await f(-2)))) / (12 * eps);
        const tol = rel * Math.abs(analytic) + noise;
        const line = `${name} (${kind}): fd ${fd.toExponential(5)} analytic ${analytic.toExponential(5)} err/tol ${(Math.abs(fd - analytic) / tol).toFixed(3)}`;
        report.push(line);
        if (!(Math.abs(fd - analytic) <= tol)) failures.push(line);
        d.dispose();
      }
    }
    console.log(`loss ${L0}\n${report.join('\n')}`);
    expect(report.length).toBe(2 * params.length);
    expect(failures).toEqual([]);
    dispose([grads, x, targets]);
    model.dispose();
  });
});
