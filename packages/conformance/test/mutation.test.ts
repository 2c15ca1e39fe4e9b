// The suite can fail: a throwaway backend ('cpu-mutant', a CpuBackend under another name) gets a
// copy of every CPU kernel, then a few deliberately wrong ones. The runner must report exactly
// those ops (and dtypes) as failed, with messages that say what is wrong, and pass the rest.
import { describe, expect, it, beforeAll } from 'vitest';
import { CpuBackend, commit, outValues, raw, values } from '@ring-linear/backend-cpu';
import {
  getKernel,
  listKernels,
  registerBackend,
  registerKernel,
  roundToDtype,
  type Kernel,
  type KernelContext,
} from '@ring-linear/core';
import { runConformance, type ConformanceResult, type CaseResult } from '../src/index.js';

const MUTANT = 'cpu-mutant';

class MutantBackend extends CpuBackend {
  override readonly name = MUTANT;
}

function original(op: string): Kernel {
  const reg = getKernel(op, 'cpu');
  if (!reg) throw new Error(`no cpu kernel for ${op}`);
  return reg.kernel;
}

function mutate(op: string, kernel: (ctx: KernelContext<any>) => void): void {
  registerKernel({ op, backend: MUTANT, kernel });
}

function installMutant(): void {
  registerBackend(MUTANT, () => new MutantBackend(), -10);
  for (const op of listKernels('cpu')) registerKernel({ ...getKernel(op, 'cpu')!, backend: MUTANT });

  // exp: 3e-5 relative error, above f32's tolerance (1e-5) and far below one bf16 step.
  mutate('exp', ({ inputs: [x], outputs: [y] }) => {
    const xv = values(x!);
    const yv = outValues(y!);
    for (let i = 0; i < y!.size; i++) yv[i] = Math.exp(xv[i]!) * (1 + 3e-5);
    commit(y!, yv);
  });

  // add: tiles the smaller operand instead of broadcasting it: right for scalars and trailing
  // vectors, wrong for [3,1] x [1,5].
  mutate('add', ({ inputs: [a, b], outputs: [y] }) => {
    const av = values(a!);
    const bv = values(b!);
    const yv = outValues(y!);
    for (let i = 0; i < y!.size; i++) yv[i] = av[i % a!.size]! + bv[i % b!.size]!;
    commit(y!, yv);
  });

  // cast f32 -> bf16 truncates instead of rounding to nearest even.
  const cast = original('cast');
  mutate('cast', (ctx) => {
    const [x] = ctx.inputs;
    const [y] = ctx.outputs;
    if (x!.dtype !== 'f32' || y!.dtype !== 'bf16') return cast(ctx);
    const bits = new Uint32Array((values(x!) as Float32Array).slice().buffer);
    const out = raw(y!) as Uint16Array;
    for (let i = 0; i < y!.size; i++) out[i] = bits[i]! >>> 16;
  });

  // neg: correct values, but leaks a device buffer on every call.
  const neg = original('neg');
  mutate('neg', (ctx) => {
    ctx.backend.allocate(16);
    neg(ctx);
  });

  // sum in bf16: rounds the running sum to bf16 after every term (instead of accumulating in f32).
  const sum = original('sum');
  mutate('sum', (ctx) => {
    const [x] = ctx.inputs;
    const [y] = ctx.outputs;
    const axes = (ctx.attrs as { axes: number[] }).axes;
    const trailing = axes.every((a, i) => a === x!.shape.length - axes.length + i);
    if (x!.dtype !== 'bf16' || !trailing) return sum(ctx);
    const xv = values(x!);
    const yv = outValues(y!);
    const inner = y!.size === 0 ? 0 : x!.size / y!.size;
    for (let o = 0; o < y!.size; o++) {
      let acc = 0;
      for (let j = 0; j < inner; j++) acc = roundToDtype('bf16', acc + xv[o * inner + j]!);
      yv[o] = acc;
    }
    commit(y!, yv);
  });

  // argmax: ties go to the LAST index.
  mutate('argmax', ({ inputs: [x], outputs: [y], attrs }) => {
    const axis = (attrs as { axis: number }).axis;
    const xv = values(x!);
    const yv = raw(y!) as Int32Array;
    const shape = x!.shape;
    const len = shape[axis]!;
    const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let best = 0;
        for (let j = 0; j < len; j++) {
          const v = xv[(o * len + j) * inner + i]!;
          if (v !== v || v >= xv[(o * len + best) * inner + i]!) best = j;
        }
        yv[o * inner + i] = best;
      }
    }
  });
}

const MUTATED = ['exp', 'add', 'cast', 'neg', 'sum', 'argmax'];
const HEALTHY = ['mul', 'log', 'where', 'matmul', 'max', 'copy', 'argmin'];

describe('mutation: the suite catches wrong kernels', () => {
  let result: ConformanceResult;
  const caseOf = (id: string): CaseResult => {
    const c = result.cases.find((x) => x.id === id);
    if (!c) throw new Error(`no case ${id}`);
    return c;
  };

  beforeAll(async () => {
    installMutant();
    result = await runConformance({ backend: MUTANT, reference: 'cpu', ops: [...MUTATED, ...HEALTHY], log: null, maxMessages: 1000 });
  });

  it('reports the run as failed', () => {
    expect(result.ok).toBe(false);
    expect(result.backend).toBe(MUTANT);
    expect(result.summary).toContain('FAILURES:');
  });

  it('passes every case of the ops with correct kernels', () => {
    const bad = result.cases.filter((c) => HEALTHY.includes(c.op) && c.status !== 'passed');
    expect(bad.map((c) => `${c.id}: ${c.messages.join(' | ')}`)).toEqual([]);
  });

  it('exp: a 3e-5 relative error fails f32 (vs float64, the reference backend and tfjs) and stays within bf16 steps', () => {
    const f32 = caseOf('exp [f32]');
    expect(f32.status).toBe('failed');
    const text = f32.messages.join('\n');
    expect(text).toMatch(/vs float64 reference: \d+ of \d+ elements out of tolerance; max abs err .*max rel err 3\.0\d*e-5; worst at \[/);
    expect(text).toContain("vs reference backend 'cpu'");
    expect(text).toContain('vs tfjs');
    expect(caseOf('exp [bf16]').status).toBe('passed');
    expect(caseOf('exp [errors]').status).toBe('passed');
  });

  it('add: wrong broadcasting fails every dtype, on the broadcasting samples only', () => {
    for (const dt of ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2', 'i32', 'u8']) expect(caseOf(`add [${dt}]`).status).toBe('failed');
    const text = caseOf('add [f32]').messages.join('\n');
    expect(text).toContain('broadcast [3,1] x [1,5]');
    expect(text).not.toContain('same shape');
    expect(text).not.toContain('scalar x tensor');
  });

  it('cast: truncation to bf16 fails the f32 cases that cast to bf16, nothing else', () => {
    const c = caseOf('cast [f32]');
    expect(c.status).toBe('failed');
    expect(c.messages.every((m) => /to bf16/.test(m))).toBe(true);
    for (const dt of ['f16', 'bf16', 'f8e4m3', 'i32', 'bool']) expect(caseOf(`cast [${dt}]`).status).toBe('passed');
  });

  it('neg: a leaked device buffer fails the leak check', () => {
    const c = caseOf('neg [f32]');
    expect(c.status).toBe('failed');
    expect(c.messages.join('\n')).toMatch(/memory not released: 'cpu-mutant' buffers \d+ -> \d+, 'cpu-mutant' bytes in use/);
  });

  it('sum: accumulating in bf16 fails bf16 on long sums and passes f32', () => {
    const c = caseOf('sum [bf16]');
    expect(c.status).toBe('failed');
    expect(c.messages.join('\n')).toMatch(/larger, trailing axis/);
    expect(caseOf('sum [f32]').status).toBe('passed');
  });

  it('argmax: ties to the last index fail on the tie samples', () => {
    const c = caseOf('argmax [i32]');
    expect(c.status).toBe('failed');
    expect(c.messages.join('\n')).toMatch(/ties/);
    expect(c.messages.join('\n')).toMatch(/\(exact\)/);
  });
});
