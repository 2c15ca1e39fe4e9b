// The runner's own checks, each shown to fail on a record or op built to fail it: gradients
// (a wrong gradient definition), kernel vs composite, error expectations, leaks in a record's
// call, custom checks, low-precision tolerance tightness, xfail and unexpected passes.
import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { CpuBackend, registerCpuKernel, values, outValues, commit } from '@ring-linear/backend-cpu';
import { defineOp, getKernel, listKernels, memory, mul, registerKernel, runOp1, tensor, type Tensor } from '@ring-linear/core';
import { runConformance, mapUnary, type OpInfo, type CaseResult } from '../src/index.js';

// x^2 with a correct CPU kernel, a correct composite, and a WRONG gradient definition (3x).
defineOp<{}>({
  name: 'testSquareWrongGrad',
  inputs: [{ name: 'x', dtypes: ['f32', 'bf16'] }],
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  grad: ({ inputs: [x], dys: [dy] }) => [mul(dy!, mul(x!, 3))],
  composite: ([x]) => [mul(x!, x!)],
});
registerCpuKernel('testSquareWrongGrad', ({ inputs: [x], outputs: [y] }) => {
  const xv = values(x!);
  const yv = outValues(y!);
  for (let i = 0; i < y!.size; i++) yv[i] = xv[i]! * xv[i]!;
  commit(y!, yv);
});

// 2x with a correct kernel and a composite that is off by 1e-3 (the kernel-vs-composite check).
defineOp<{}>({
  name: 'testDoubleBadComposite',
  inputs: [{ name: 'x', dtypes: ['f32'] }],
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  grad: ({ dys: [dy] }) => [mul(dy!, 2)],
  composite: ([x]) => [mul(x!, 2.001)],
});
registerCpuKernel('testDoubleBadComposite', ({ inputs: [x], outputs: [y] }) => {
  const xv = values(x!);
  const yv = outValues(y!);
  for (let i = 0; i < y!.size; i++) yv[i] = 2 * xv[i]!;
  commit(y!, yv);
});

const squareRef: OpInfo['reference'] = ([x]) => [mapUnary(x!, (v) => v * v)];
const smallSamples: OpInfo['samples'] = (rng, dtype) => [{ inputs: [rng.tensor([3, 4], dtype)] }, { inputs: [rng.tensor([5], dtype)] }];

async function runOne(info: OpInfo, extra: Partial<Parameters<typeof runConformance>[0]> = {}): Promise<CaseResult[]> {
  const r = await runConformance({ backend: 'cpu', opInfos: [info], seed: 1234, log: null, ...extra });
  return [...r.cases];
}

describe('runner checks fail when they should', () => {
  it('a wrong gradient definition fails the finite-difference check and the composite comparison', async () => {
    const [f32, bf16] = await runOne({ op: 'testSquareWrongGrad', dtypes: ['f32', 'bf16'], samples: smallSamples, reference: squareRef, grad: true });
    expect(f32!.status).toBe('failed');
    const text = f32!.messages.join('\n');
    expect(text).toMatch(/gradient of input 0 vs finite differences: \d+ of 12 elements out of tolerance/);
    expect(text).toMatch(/gradient of input 0, composite vs kernel/);
    expect(text).not.toMatch(/vs float64 reference/); // the values are right
    expect(bf16!.status).toBe('passed'); // no gradient checks in bf16
  });

  it('the same op passes without gradient checks', async () => {
    const [f32] = await runOne({ op: 'testSquareWrongGrad', dtypes: ['f32'], samples: smallSamples, reference: squareRef, grad: true }, { grad: false });
    expect(f32!.status).toBe('passed');
  });

  it('a composite that disagrees with the kernel is reported', async () => {
    const [c] = await runOne({ op: 'testDoubleBadComposite', dtypes: ['f32'], samples: smallSamples, reference: ([x]) => [mapUnary(x!, (v) => 2 * v)] });
    expect(c!.status).toBe('failed');
    expect(c!.messages.join('\n')).toMatch(/kernel vs composite: \d+ of \d+ elements out of tolerance/);
    const [off] = await runOne({ op: 'testDoubleBadComposite', dtypes: ['f32'], samples: smallSamples, reference: ([x]) => [mapUnary(x!, (v) => 2 * v)] }, { composite: false });
    expect(off!.status).toBe('passed');
  });

  it('error expectations: wrong class, wrong message, and no error at all are failures', async () => {
    const [, errs] = await runOne({
      op: 'neg',
      dtypes: ['f32'],
      samples: smallSamples,
      reference: ([x]) => [mapUnary(x!, (v) => -v)],
      errors: (rng) => [
        { inputs: [rng.tensor([3], 'bool')], error: 'ShapeError', message: /./, desc: 'wrong class' },
        { inputs: [rng.tensor([3], 'bool')], error: 'DTypeError', message: /something else/, desc: 'wrong message' },
        { inputs: [rng.tensor([3], 'f32')], error: 'DTypeError', message: /./, desc: 'valid input' },
        { inputs: [rng.tensor([3], 'bool')], error: 'RingLinearError', message: /neg: input 'x' must have dtype/, desc: 'base class matches' },
      ],
    });
    expect(errs!.id).toBe('neg [errors]');
    expect(errs!.status).toBe('failed');
    const [wrongClass, wrongMessage, noError, ...rest] = errs!.messages;
    expect(wrongClass).toMatch(/"wrong class".*expected ShapeError, got DTypeError: neg: input 'x' must have dtype/);
    expect(wrongMessage).toMatch(/"wrong message".*DTypeError message ".*" does not match \/something else\//);
    expect(noError).toMatch(/"valid input".*expected DTypeError matching \/\.\/, but the op returned \[3\] f32/);
    expect(rest).toEqual([]);
  });

  it('a record whose call leaks a tensor fails the leak check; memory is back afterwards', async () => {
    const before = memory();
    const [c] = await runOne({
      op: 'neg',
      dtypes: ['f32'],
      samples: smallSamples,
      reference: ([x]) => [mapUnary(x!, (v) => -v)],
      call: ([x]: Tensor[]) => {
        tensor([1, 2, 3], [3], 'f32'); // made and never disposed
        return [runOp1('neg', [x!])];
      },
    });
    expect(c!.status).toBe('failed');
    expect(c!.messages[0]).toMatch(/memory not released: live tensors \d+ -> \d+, storages \d+ -> \d+, bytes \d+ -> \d+/);
    // One leaked tensor per sample (the gradient check's call runs inside valueAndGrad's scope,
    // which frees it): the runner itself released everything it made.
    expect(memory().tensors - before.tensors).toBe(c!.samples);
  });

  it('a custom check that throws is a failure', async () => {
    const [c] = await runOne({
      op: 'neg',
      dtypes: ['f32'],
      samples: smallSamples,
      check: (outs) => {
        if (outs[0]!.values.some((v) => v > 0)) throw new Error('positive output');
      },
    });
    expect(c!.status).toBe('failed');
    expect(c!.messages[0]).toMatch(/check: Error: positive output/);
  });

  it('low-precision tolerance is one rounding step: a 4-step error in f16 fails, exact rounding passes', async () => {
    const samples: OpInfo['samples'] = (rng, dtype) => [{ inputs: [rng.tensor([64], dtype, { lo: 1, hi: 2 })] }];
    const [off] = await runOne({ op: 'neg', dtypes: ['f16'], samples, reference: ([x]) => [mapUnary(x!, (v) => -v * (1 + 4 * 2 ** -10))] });
    expect(off!.status).toBe('failed');
    expect(off!.messages[0]).toMatch(/vs float64 reference: \d+ of 64 elements out of tolerance/);
    const [ok] = await runOne({ op: 'neg', dtypes: ['f16'], samples, reference: ([x]) => [mapUnary(x!, (v) => -v * (1 + 2 ** -12))] });
    expect(ok!.status).toBe('passed');
  });

  it('xfail: a failing case is an expected failure, a passing one an unexpected pass that fails the run', async () => {
    const bad: OpInfo = { op: 'neg', dtypes: ['f32'], samples: smallSamples, reference: ([x]) => [mapUnary(x!, (v) => v)], xfail: { cpu: 'known bug' } };
    const r1 = await runConformance({ backend: 'cpu', opInfos: [bad], seed: 7, log: null });
    expect(r1.cases[0]!.status).toBe('xfail');
    expect(r1.cases[0]!.xfailReason).toBe('known bug');
    expect(r1.ok).toBe(true);
    const good: OpInfo = { ...bad, reference: ([x]) => [mapUnary(x!, (v) => -v)] };
    const r2 = await runConformance({ backend: 'cpu', opInfos: [good], seed: 7, log: null });
    expect(r2.cases[0]!.status).toBe('unexpected-pass');
    expect(r2.cases[0]!.messages[0]).toMatch(/expected to fail on 'cpu' \(known bug\) but passed/);
    expect(r2.ok).toBe(false);
    // Declared by the backend under test instead of the record: by case id or by op.
    const r3 = await runConformance({ backend: 'cpu', opInfos: [{ ...bad, xfail: undefined }], seed: 7, log: null, xfail: { 'neg [f32]': 'declared by the backend' } });
    expect(r3.cases[0]!.status).toBe('xfail');
    expect(r3.cases[0]!.xfailReason).toBe('declared by the backend');
    const r4 = await runConformance({ backend: 'cpu', opInfos: [{ ...good, xfail: undefined }], seed: 7, log: null, xfail: { neg: 'whole op' } });
    expect(r4.cases[0]!.status).toBe('unexpected-pass');
  });

  it('the same seed gives the same samples (cases are reproducible alone)', async () => {
    const seen: string[][] = [];
    const info: OpInfo = {
      op: 'neg',
      dtypes: ['f32', 'bf16'],
      samples: (rng, dtype) => {
        const s = [{ inputs: [rng.tensor([4], dtype)] }];
        seen.push([dtype, ...Array.from(s[0]!.inputs[0]!.values, String)]);
        return s;
      },
      reference: ([x]) => [mapUnary(x!, (v) => -v)],
    };
    await runConformance({ backend: 'cpu', opInfos: [info], seed: 99, log: null });
    await runConformance({ backend: 'cpu', opInfos: [info], seed: 99, log: null, dtypes: ['bf16'] });
    expect(seen[2]).toEqual(seen[1]); // bf16 alone = bf16 in the full run
    expect(seen[0]!.slice(1)).not.toEqual(seen[1]!.slice(1));
  });

  it('an op missing from the registry is reported, not thrown', async () => {
    const [c] = await runOne({ op: 'noSuchOp', dtypes: ['f32'], samples: smallSamples });
    expect(c!.status).toBe('failed');
    expect(c!.messages[0]).toMatch(/op 'noSuchOp' is not defined/);
  });

  it('the summary table lists each op with one column per dtype and the failures', async () => {
    const r = await runConformance({ backend: 'cpu', ops: ['neg', 'matmul'], dtypes: ['f32', 'i32'], seed: 3, log: null, errors: false });
    expect(r.ok).toBe(true);
    expect(r.cases.map((c) => c.id)).toEqual(['neg [f32]', 'neg [i32]', 'matmul [f32]']);
    expect(r.summary).toMatch(/^neg +ok +\. +\. +\. +\. +ok /m);
    expect(r.summary).toMatch(/3 passed, 0 failed, 0 expected failures, 0 unexpected passes/);
  });

  it('a backend given as a factory is registered under its name and tested', async () => {
    class FactoryBackend extends CpuBackend {
      override readonly name = 'cpu-from-factory';
    }
    for (const op of listKernels('cpu')) registerKernel({ ...getKernel(op, 'cpu')!, backend: 'cpu-from-factory' });
    const r = await runConformance({ backend: () => new FactoryBackend(), ops: ['neg', 'fill'], seed: 8, log: null });
    expect(r.backend).toBe('cpu-from-factory');
    expect(r.cases.length).toBeGreaterThan(0);
    expect(r.cases[0]!.checksByKind.referenceBackend).toBeGreaterThan(0);
    expect(r.cases.filter((c) => c.status !== 'passed').map((c) => c.messages)).toEqual([]);
  });

  it('a CPU run makes every kind of check: reference, tfjs, gradients, composite, errors', async () => {
    const r = await runConformance({ backend: 'cpu', ops: ['add', 'logsumexp'], dtypes: ['f32', 'bf16'], seed: 21, log: null });
    expect(r.tfjs).toBe(true);
    const byId = new Map(r.cases.map((c) => [c.id, c.checksByKind]));
    expect(byId.get('add [f32]')).toMatchObject({ referenceBackend: 0, composite: 0 });
    for (const k of ['reference', 'tfjs', 'grad'] as const) expect(byId.get('add [f32]')![k]).toBeGreaterThan(0);
    expect(byId.get('add [bf16]')).toMatchObject({ tfjs: 0, grad: 0 });
    expect(byId.get('logsumexp [f32]')!.composite).toBeGreaterThan(0);
    expect(byId.get('logsumexp [bf16]')!.composite).toBeGreaterThan(0);
    expect(byId.get('add [errors]')!.errors).toBeGreaterThan(0);
    expect(r.summary).toMatch(/checks by kind: reference \d+, check 0, referenceBackend 0, tfjs \d+, composite \d+, grad \d+, errors \d+/);
  });
});
