// The plain-Node entry: argument parsing, exit codes (0 pass, 1 failure, 2 usage).
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '@ring-linear/backend-cpu';
import { getKernel, listKernels, registerBackend, registerKernel } from '@ring-linear/core';
import { parseCliArgs, runConformanceCli } from '../src/index.js';

const BROKEN = 'cpu-broken-neg';
class BrokenBackend extends CpuBackend {
  override readonly name = BROKEN;
}

describe('cli', () => {
  it('parses options', () => {
    const o = parseCliArgs(['--backend', 'webgpu', '--ops=add,matmul', '--dtypes', 'f32,bf16', '--seed', '12', '--no-tfjs', '--import', 'x', '--quiet']);
    expect(o).toMatchObject({ backend: 'webgpu', ops: ['add', 'matmul'], dtypes: ['f32', 'bf16'], seed: 12, tfjs: false, imports: ['x'], quiet: true, reference: 'cpu' });
    expect(() => parseCliArgs(['--dtypes', 'f64'])).toThrow(/unknown dtype\(s\) f64/);
    expect(() => parseCliArgs(['--seed'])).toThrow(/--seed needs a value/);
    expect(() => parseCliArgs(['--frobnicate'])).toThrow(/unknown argument '--frobnicate'/);
  });

  it('exits 0 when the cases pass, printing progress and the summary', async () => {
    const lines: string[] = [];
    const code = await runConformanceCli(['--backend', 'cpu', '--ops', 'neg,sum', '--dtypes', 'f32', '--seed', '5'], (l) => lines.push(l));
    expect(code).toBe(0);
    const text = lines.join('\n');
    expect(text).toMatch(/^ok +neg \[f32\] \(\d+ samples/m);
    expect(text).toMatch(/seed 5/);
    expect(text).toMatch(/4 passed, 0 failed/);
  });

  it('exits 1 when a case fails, 2 on bad usage or an unknown backend', async () => {
    await import('@ring-linear/backend-cpu');
    registerBackend(BROKEN, () => new BrokenBackend(), -10);
    for (const op of listKernels('cpu')) registerKernel({ ...getKernel(op, 'cpu')!, backend: BROKEN });
    registerKernel({ op: 'neg', backend: BROKEN, kernel: () => undefined }); // writes nothing
    const lines: string[] = [];
    expect(await runConformanceCli(['--backend', BROKEN, '--ops', 'neg', '--dtypes', 'f32', '--no-errors', '--quiet'], (l) => lines.push(l))).toBe(1);
    expect(lines.join('\n')).toMatch(/FAILURES:\n {2}neg \[f32\]: \(reproduce: --seed \d+ --ops neg --dtypes f32\)/);
    expect(await runConformanceCli(['--bogus'], () => undefined)).toBe(2);
    const out: string[] = [];
    expect(await runConformanceCli(['--backend', 'nosuch'], (l) => out.push(l))).toBe(2);
    expect(out.join('\n')).toMatch(/backend 'nosuch' is not registered and @ring-linear\/backend-nosuch could not be imported/);
  });
});
