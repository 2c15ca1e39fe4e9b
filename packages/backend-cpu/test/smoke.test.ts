import { describe, expect, it } from 'vitest';
import {
  add, matmul, memory, mul, sum, tensor, tidy, valueAndGrad, exp, reshape, mean, max, argmax, cast, zeros,
} from '@ring-linear/core';
import '../src/index.js';

describe('cpu smoke', () => {
  it('adds with broadcasting', async () => {
    const a = tensor([[1, 2, 3], [4, 5, 6]]);
    const b = tensor([10, 20, 30]);
    expect(await add(a, b).array()).toEqual([[11, 22, 33], [14, 25, 36]]);
  });
  it('matmul', async () => {
    const a = tensor([[1, 2], [3, 4]]);
    const b = tensor([[5, 6], [7, 8]]);
    expect(await matmul(a, b).array()).toEqual([[19, 22], [43, 50]]);
    expect(await matmul(a, b, { transposeA: true }).array()).toEqual([[26, 30], [38, 44]]);
  });
  it('grads', async () => {
    const x = tensor([[1, 2], [3, 4]]);
    const w = tensor([[0.5], [-1]]);
    const before = memory().tensors;
    const { value, grads } = valueAndGrad(() => sum(mul(exp(matmul(x, w)), 2)), [w]);
    expect(memory().tensors).toBe(before + 2);
    const z = [Math.exp(0.5 - 2), Math.exp(1.5 - 4)];
    expect(await value.item()).toBeCloseTo(2 * (z[0]! + z[1]!), 5);
    const g = (await grads[0]!.data()) as Float32Array;
    expect(g[0]).toBeCloseTo(2 * (1 * z[0]! + 3 * z[1]!), 5);
    expect(g[1]).toBeCloseTo(2 * (2 * z[0]! + 4 * z[1]!), 5);
  });
  it('tidy frees intermediates', () => {
    const before = memory();
    const r = tidy(() => {
      const a = zeros([3, 4]);
      return mean(reshape(add(a, 1), [12]));
    });
    expect(memory().tensors).toBe(before.tensors + 1);
    r.dispose();
    expect(memory().bytes).toBe(before.bytes);
  });
  it('argmax ties lowest, max, cast bf16', async () => {
    const x = tensor([[1, 3, 3], [2, 2, 0]]);
    expect(await argmax(x).array()).toEqual([1, 0]);
    expect(await max(x, 1).array()).toEqual([3, 2]);
    expect(await cast(tensor([1.00390625]), 'bf16').array()).toEqual([1]);
  });
});
