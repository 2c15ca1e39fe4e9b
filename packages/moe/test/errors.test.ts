/**
 * Bad input gets typed errors that say what was expected and what came, before any work and
 * without leaking tensors: the group limit, experts not divisible into groups, weights of the
 * wrong shape, at the op and at the module. (Every op's full error list runs in the conformance
 * records, src/opinfo.ts.)
 */
import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { AttrError, DTypeError, ShapeError, StateDictError, cast, dispose, memory } from '@ring-linear/core';
import { MoE, groupedMatmul, moeConfigFromHf, moeRouter, updateExpertBias, type MoEConfig } from '../src/index.js';
import { rngFor, t } from './helpers.js';

/** Runs fn, expecting an error of class C with a message matching re; no live tensor may remain. */
function expectError(fn: () => unknown, C: new (...a: any[]) => Error, re: RegExp): void {
  const before = memory().tensors;
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, `expected ${C.name}`).toBeInstanceOf(C);
  expect((thrown as Error).message).toMatch(re);
  expect(memory().tensors).toBe(before);
}

const BASE: MoEConfig = { hiddenSize: 6, numExperts: 16, numExpertsPerTok: 4, moeIntermediateSize: 3, nGroup: 4, topkGroup: 2 };

describe('bad input', () => {
  it('router op: top-k above the group limit, experts not divisible into groups, weights of the wrong shape', () => {
    const rng = rngFor('errors router');
    const x = t(rng.array(3 * 6), [3, 6]);
    const w16 = t(rng.array(16 * 6), [16, 6]);
    const b16 = t(rng.array(16), [16]);
    expectError(() => moeRouter(x, w16, b16, { topK: 9, nGroup: 4, topkGroup: 2 }), AttrError, /moeRouter: topK=9 is larger than the 8 experts the group limit allows \(topkGroup=2 of nGroup=4 groups of 4 experts\)/);
    const w10 = t(rng.array(10 * 6), [10, 6]);
    const b10 = t(rng.array(10), [10]);
    expectError(() => moeRouter(x, w10, b10, { topK: 2, nGroup: 4 }), AttrError, /moeRouter: 10 experts do not split into nGroup=4 equal groups/);
    const wBad = t(rng.array(16 * 5), [16, 5]);
    expectError(() => moeRouter(x, wBad, b16, { topK: 2 }), ShapeError, /moeRouter: 'gateWeight' must have shape \[experts, 6\] \(hidden 6 from x \[3, 6\]\), got \[16, 5\]/);
    expectError(() => moeRouter(x, w16, b10, { topK: 2 }), ShapeError, /moeRouter: 'expertBias' must have shape \[16\] \(one per expert of gateWeight\), got \[10\]/);
    dispose([x, w16, b16, w10, b10, wBad]);
  });

  it('module config: the same limits, named as config fields', () => {
    expectError(() => new MoE({ ...BASE, numExpertsPerTok: 9 }), AttrError, /MoE: topK=9 is larger than the 8 experts the group limit allows/);
    expectError(() => new MoE({ ...BASE, numExperts: 10 }), AttrError, /MoE: 10 experts do not split into nGroup=4 equal groups/);
    expectError(() => new MoE({ ...BASE, topkGroup: 5 }), AttrError, /MoE: topkGroup=5 must be in \[1, nGroup=4\]/);
    expectError(() => new MoE({ ...BASE, moeIntermediateSize: 0 }), AttrError, /MoE: 'moeIntermediateSize' must be a positive integer, got 0/);
    expectError(() => new MoE({ ...BASE, scoreFunction: 'relu' as 'sigmoid' }), AttrError, /MoE: 'scoreFunction' must be 'sigmoid' or 'softmax', got "relu"/);
    expectError(() => new MoE({ ...BASE, biasUpdateRate: -1 }), AttrError, /MoE: 'biasUpdateRate' must be a finite number >= 0, got -1/);
    expectError(() => moeConfigFromHf({ hidden_size: 8, num_experts: 4, num_experts_per_tok: 2 }), AttrError, /moeConfigFromHf: 'moe_intermediate_size' is required/);
    expectError(() => moeConfigFromHf({ hidden_size: 8, num_experts: '4', num_experts_per_tok: 2, moe_intermediate_size: 2 }), AttrError, /moeConfigFromHf: 'num_experts' must be a number, got "4"/);
  });

  it('module forward and checkpoints: input of the wrong size or dtype, weights of the wrong shape', () => {
    const rng = rngFor('errors module');
    const m = new MoE(BASE);
    const x5 = t(rng.array(2 * 5), [2, 5]);
    expectError(() => m.forward(x5), ShapeError, /MoE: expected input \[\.\.\., 6\], got \[2, 5\]/);
    const x = t(rng.array(2 * 6), [2, 6]);
    const xb = cast(x, 'bf16');
    expectError(() => m.forward(xb), DTypeError, /MoE: the input has dtype bf16, the experts' weights f32/);
    const sd = m.stateDict();
    const bad = t(rng.array(3 * 5), [3, 5]);
    sd.get('experts.7.up_proj.weight')!.dispose();
    sd.set('experts.7.up_proj.weight', bad);
    let thrown: unknown;
    try {
      m.loadStateDict(sd);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(StateDictError);
    expect((thrown as Error).message).toMatch(/experts\.7\.up_proj\.weight/);
    expect((thrown as Error).message).toMatch(/\[3, 6\] f32/);
    const load3 = t([1, 2, 3], [3], 'i32');
    expectError(() => updateExpertBias(m.gate.expert_bias, load3), ShapeError, /updateExpertBias: 'load' must have shape \[16\] \(one count per expert\), got \[3\]/);
    dispose([x5, x, xb, sd, load3]);
    m.dispose();
  });

  it('grouped GEMM: weights for the wrong number of experts or of the wrong shape', () => {
    const rng = rngFor('errors gmm');
    const x = t(rng.array(5 * 4), [5, 4]);
    const off = t([0, 2, 5], [3], 'i32');
    const w = (shape: number[]) => t(rng.array(shape.reduce((a, b) => a * b, 1)), shape);
    const ws3 = [w([3, 4]), w([3, 4]), w([3, 4])];
    expectError(() => groupedMatmul(x, ws3, off), ShapeError, /groupedMatmul: expected the weights as one stacked tensor \[2, \., \.\] or 2 tensors of rank 2 \(E = 2 from offsets\), got 3 tensor\(s\)/);
    const wT = w([2, 4, 3]);
    const w235 = w([2, 3, 5]);
    expectError(() => groupedMatmul(x, w235, off), ShapeError, /each expert's weight must have shape \[out, 4\] \(in = 4 from x \[5, 4\], transposeB = true\), got \[3, 5\]/);
    expectError(() => groupedMatmul(x, wT, off, { transposeB: true }), ShapeError, /must have shape \[out, 4\].*got \[4, 3\]/);
    const ok = groupedMatmul(x, wT, off, { transposeB: false }); // [in, out] layout fits
    expect(ok.shape).toEqual([5, 3]);
    dispose([x, off, ws3, wT, w235, ok]);
  });
});
