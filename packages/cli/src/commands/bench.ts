/**
 * `ring-linear bench`: in a checkout of the repository, runs the benchmark suites of tools/bench
 * (ours against tfjs in the same run); elsewhere, or with --builtin, a short built-in timing of
 * matmul and softmax on the chosen backend.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { matmul, softmax, tensor, tidy, type Tensor } from '@ring-linear/core';
import { BACKEND_FLAG, backendOf, printJson, type Command } from '../command.js';
import { releaseBackend, useBackend } from '../backends.js';
import { CliError } from '../errors.js';
import type { CliIo } from '../io.js';

/** tools/bench/src/main.ts of the repository this runs in (from the working folder or this file), if any. */
export function findBenchSuite(cwd: string): { root: string; main: string } | null {
  const starts = [cwd, path.dirname(fileURLToPath(import.meta.url))];
  for (const start of starts) {
    let dir = path.resolve(start);
    for (;;) {
      const main = path.join(dir, 'tools', 'bench', 'src', 'main.ts');
      if (existsSync(main)) return { root: dir, main };
      const up = path.dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  return null;
}

export interface BuiltinResult {
  readonly name: string;
  readonly shape: string;
  readonly medianMs: number;
  readonly minMs: number;
  readonly runs: number;
  /** GFLOP/s (matmul) or GB/s moved (softmax). */
  readonly rate: number;
  readonly unit: 'GFLOP/s' | 'GB/s';
}

function lcg(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296) * 2 - 1);
}

async function time(run: () => Tensor, repeat: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < repeat + 2; i++) {
    const t0 = performance.now();
    const y = run();
    await y.data(); // waits for the device
    const ms = performance.now() - t0;
    y.dispose();
    if (i >= 2) out.push(ms); // two warmup runs (pipeline compilation, caches)
  }
  return out.sort((a, b) => a - b);
}

/** Times matmul [n, n] x [n, n] and a row softmax [n, 4n] (f32). */
export async function builtinBench(n: number, repeat: number): Promise<BuiltinResult[]> {
  const a = tensor(lcg(n * n, 1), [n, n], 'f32');
  const b = tensor(lcg(n * n, 2), [n, n], 'f32');
  const x = tensor(lcg(n * 4 * n, 3), [n, 4 * n], 'f32');
  try {
    const mm = await time(() => tidy(() => matmul(a, b)), repeat);
    const sm = await time(() => tidy(() => softmax(x, -1)), repeat);
    const med = (xs: number[]) => xs[Math.floor(xs.length / 2)]!;
    return [
      { name: 'matmul', shape: `[${n}, ${n}] x [${n}, ${n}]`, medianMs: med(mm), minMs: mm[0]!, runs: mm.length, rate: (2 * n ** 3) / (med(mm) * 1e6), unit: 'GFLOP/s' },
      { name: 'softmax', shape: `[${n}, ${4 * n}] rows`, medianMs: med(sm), minMs: sm[0]!, runs: sm.length, rate: (2 * 4 * n * n * 4) / (med(sm) * 1e6), unit: 'GB/s' },
    ];
  } finally {
    a.dispose();
    b.dispose();
    x.dispose();
  }
}

function runSuite(io: CliIo, suite: { root: string; main: string }, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--conditions=@ring-linear/source', '--import', 'tsx', suite.main, ...args], { cwd: suite.root, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => io.stdout.write(d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => io.stderr.write(d.toString('utf8')));
    child.on('error', (err) => reject(new CliError(`could not start the benchmark suite: ${err.message}`)));
    child.on('close', (code) => resolve(code ?? 1));
  });
}

export const benchCommand: Command = {
  spec: {
    name: 'bench',
    summary: 'benchmark the backends (tools/bench suites in a checkout, else a built-in matmul/softmax timing)',
    usage: ['bench [flags]'],
    description:
      'In a checkout of the ring-linear repository this runs tools/bench (every op against tfjs in the same run, a table per ' +
      'device, JSON under runs/bench/); --filter and --repeat are passed on. Elsewhere, or with --builtin, it times an f32 ' +
      'matmul and a row softmax on the chosen backend (median of the timed runs, after two warmups).',
    flags: {
      builtin: { type: 'boolean', description: 'the built-in timing even in a checkout' },
      ...BACKEND_FLAG,
      size: { type: 'string', value: '<n>', description: 'built-in: matmul n x n, softmax n x 4n', default: '256' },
      repeat: { type: 'string', value: '<n>', description: 'timed runs', default: '10' },
      filter: { type: 'string', value: '<text>', description: 'suites: only benches whose name contains this' },
    },
    examples: ['ring-linear bench', 'ring-linear bench --builtin --size 512', 'ring-linear bench --backend webgpu --filter matmul', 'ring-linear bench --builtin --json'],
  },

  async run({ io, flags, json }) {
    const backendName = backendOf(flags);
    const repeat = flags.int('repeat', { min: 1, fallback: 10 });
    const size = flags.int('size', { min: 1, max: 4096, fallback: 256 });
    const suite = flags.bool('builtin') ? null : findBenchSuite(io.cwd);
    if (suite) {
      const args = ['--backend', backendName, '--repeat', String(repeat)];
      const filter = flags.string('filter');
      if (filter !== undefined) args.push('--filter', filter);
      if (json) args.push('--json', path.join(suite.root, 'runs', 'bench', `cli-${Date.now()}.json`));
      if (!json) io.stderr.write(`running the suites of ${path.relative(io.cwd, suite.main) || suite.main}\n`);
      const code = await runSuite(json ? { ...io, stdout: io.stderr } : io, suite, args);
      if (json) printJson(io, { suite: suite.main, exitCode: code, results: args[args.length - 1] });
      return code === 0 ? 0 : 1;
    }
    const backend = await useBackend(backendName);
    try {
      const results = await builtinBench(size, repeat);
      if (json) {
        printJson(io, { backend: backendName, device: backend.capabilities.device, results });
        return;
      }
      io.stdout.write(`built-in timing on ${backendName} (${backend.capabilities.device}), f32, median of ${repeat} runs:\n`);
      for (const r of results) {
        io.stdout.write(`  ${r.name.padEnd(8)} ${r.shape.padEnd(24)} ${r.medianMs.toFixed(3).padStart(10)} ms  ${r.rate.toFixed(2).padStart(8)} ${r.unit}\n`);
      }
    } finally {
      await releaseBackend(backendName);
    }
  },
};
