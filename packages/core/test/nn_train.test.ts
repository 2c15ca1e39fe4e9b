// A toy training loop: a Linear layer fits a linear map by plain SGD for 200 steps through
// valueAndGrad and Parameter.assign. The loss must fall below a stated threshold, the learned
// weights must match the true ones, and live tensors/bytes must be the same at every step.
import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { Generator, Linear, dispose, mean, memory, mul, square, sub, tensor, tidy, valueAndGrad } from '@ring-linear/core';

const SEED = Number(process.env.NN_TEST_SEED ?? (Date.now() % 2147483647));
console.log(`nn_train.test seed: ${SEED} (rerun with NN_TEST_SEED=${SEED})`);

function hostRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('SGD on a Linear regression', () => {
  it('200 steps: loss < 1e-6 (from > 0.1), weights recovered, memory flat at every step', () => {
    const rand = hostRng(SEED);
    // Unit-variance inputs (uniform on [-sqrt 3, sqrt 3)); targets from a true map y = x A^T + c.
    const [N, IN, OUT] = [64, 5, 3];
    const xs = Float32Array.from({ length: N * IN }, () => (rand() * 2 - 1) * Math.sqrt(3));
    const A = Float64Array.from({ length: OUT * IN }, () => rand() * 2 - 1);
    const c = Float64Array.from({ length: OUT }, () => rand() * 2 - 1);
    const ys = new Float32Array(N * OUT);
    for (let n = 0; n < N; n++) {
      for (let o = 0; o < OUT; o++) {
        let acc = c[o]!;
        for (let i = 0; i < IN; i++) acc += xs[n * IN + i]! * A[o * IN + i]!;
        ys[n * OUT + o] = acc;
      }
    }
    const x = tensor(xs, [N, IN]);
    const y = tensor(ys, [N, OUT]);
    const model = new Linear(IN, OUT, { bias: true, generator: new Generator(SEED) });
    const params = model.parameters().filter((p) => p.requiresGrad);
    expect(params).toEqual([model.weight, model.bias]);
    // The Hessian of the MSE is about (2/OUT) I for unit-variance inputs, so lr 0.3 contracts the
    // error by ~0.8 a step: 200 steps take the loss many orders of magnitude down.
    const lr = 0.3;

    const baseline = memory();
    const losses: number[] = [];
    for (let step = 0; step < 200; step++) {
      const { value, grads } = valueAndGrad(() => mean(square(sub(model.forward(x), y))), params);
      tidy(() => params.forEach((p, i) => p.assign(sub(p, mul(grads[i]!, lr)))));
      losses.push(value.dataSync()[0]!);
      dispose([value, grads]);
      const now = memory();
      if (now.tensors !== baseline.tensors || now.bytes !== baseline.bytes) {
        expect.fail(`step ${step}: ${now.tensors} tensors / ${now.bytes} bytes live, expected ${baseline.tensors} / ${baseline.bytes}`);
      }
    }
    console.log(`loss: step 0 ${losses[0]}, step 199 ${losses[199]}`);
    expect(losses[0]).toBeGreaterThan(0.1);
    expect(losses[199]).toBeLessThan(1e-6);
    for (let s = 1; s < losses.length; s++) expect(losses[s]!).toBeLessThanOrEqual(losses[s - 1]! * 1.0001 + 1e-12);
    const W = model.weight.dataSync();
    const b = model.bias!.dataSync();
    A.forEach((v, i) => expect(Math.abs(W[i]! - v)).toBeLessThan(1e-3));
    c.forEach((v, i) => expect(Math.abs(b[i]! - v)).toBeLessThan(1e-3));
    expect(memory()).toMatchObject({ tensors: baseline.tensors, bytes: baseline.bytes, storages: baseline.storages });
    dispose([x, y]);
    model.dispose();
  });
});
