/**
 * What every step of the GPU runner shares: argument parsing, the output folder, the CUDA backend,
 * GPU timing with CUDA events, PyTorch ratios from a torch_*.py JSON, error metrics and the result
 * table. A step lives in its own file (tools/gpu/steps/*.ts) as `(args) => Promise<exit status>`,
 * registered in run.ts.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import * as core from '@ring-linear/core';
import { CudaBackend } from '@ring-linear/backend-cuda';

export type Args = Record<string, string | boolean>;

export function parseArgs(argv: string[]): { cmd: string; args: Args } {
  const [cmd = 'help', ...rest] = argv;
  const args: Args = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('--')) continue;
    const next = rest[i + 1];
    if (next !== undefined && !next.startsWith('--')) {
      args[a.slice(2)] = next;
      i++;
    } else args[a.slice(2)] = true;
  }
  return { cmd, args };
}

export const log = (s: string) => console.log(s);
export const outDir = (a: Args) => {
  const d = String(a.out ?? process.env.OUT ?? 'out');
  mkdirSync(d, { recursive: true });
  return d;
};

export async function cudaBackend(): Promise<CudaBackend> {
  await core.initBackend('cpu');
  const b = await core.setBackend('cuda');
  if (!(b instanceof CudaBackend)) throw new Error('cuda backend is not a CudaBackend');
  return b;
}

export interface BenchRow {
  name: string;
  what: string;
  ms: number;
  msMin: number;
  /** Bytes moved (memory-bound) or FLOPs (compute-bound) per run. */
  bytes?: number;
  flops?: number;
  gbps?: number;
  tflops?: number;
  /** Fraction of the copy bandwidth measured in this run (memory-bound rows). */
  ofCopy?: number;
  torchMs?: number;
  /** torch time / our time (> 1: faster than torch). */
  vsTorch?: number;
  check: string;
}

/** PyTorch timings of the same run (torch_bench.py's JSON): each row gets torchMs and vsTorch = torch / ours. */
export function withTorchTimes(
  rows: BenchRow[],
  torchFile: string,
  log: (line: string) => void,
  torchName: (name: string) => string = (name) => name,
): { device?: string; torch?: string; notes?: string[]; benchmarks?: Record<string, { ms: number }> } {
  let torch: { device?: string; torch?: string; notes?: string[]; benchmarks?: Record<string, { ms: number }> } = {};
  if (existsSync(torchFile)) {
    try {
      torch = JSON.parse(readFileSync(torchFile, 'utf8'));
    } catch (err) {
      log(`could not read ${torchFile}: ${(err as Error).message}`);
    }
  } else log(`no PyTorch results at ${torchFile}; ratios left out`);
  for (const r of rows) {
    const t = torch.benchmarks?.[torchName(r.name)];
    if (t && t.ms > 0) {
      r.torchMs = t.ms;
      r.vsTorch = t.ms / r.ms;
    }
  }
  return torch;
}

export const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;

/** GPU time per run (CUDA events around each run, after warm-up). */
export function timeGpu(b: CudaBackend, fn: () => void, reps: number, warmup = 3): { ms: number; msMin: number } {
  const d = b.rt.driver;
  for (let i = 0; i < warmup; i++) core.tidy(fn);
  b.synchronizeBlocking();
  const evs = Array.from({ length: reps + 1 }, () => d.createEvent(true));
  d.recordEvent(evs[0]!, b.stream);
  for (let i = 0; i < reps; i++) {
    core.tidy(fn);
    d.recordEvent(evs[i + 1]!, b.stream);
  }
  b.synchronizeBlocking();
  const t = evs.slice(1).map((e, i) => d.elapsedMs(evs[i]!, e));
  for (const e of evs) d.destroyEvent(e);
  return { ms: median(t), msMin: Math.min(...t) };
}

export async function values(t: core.Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}

export function relErr(got: number, want: number): number {
  return Math.abs(got - want) / Math.max(1e-6, Math.abs(want));
}

export function formatBench(device: string, rows: BenchRow[]): string {
  const f = (x: number | undefined, d = 2) => (x === undefined ? '-' : x.toFixed(d));
  const lines = [`CUDA benchmarks on ${device} (median of CUDA-event timings after warm-up; vs torch = torch time / ours)`];
  lines.push(['benchmark'.padEnd(Math.max(24, ...rows.map((q) => q.name.length + 1))), 'ms'.padStart(10), 'GB/s'.padStart(8), 'TFLOP/s'.padStart(8), 'of copy'.padStart(8), 'torch ms'.padStart(10), 'vs torch'.padStart(9), '  check'].join(''));
  for (const r of rows) {
    const us = r.name.startsWith('launch');
    lines.push([
      r.name.padEnd(Math.max(24, ...rows.map((q) => q.name.length + 1))),
      (us ? `${f(r.ms * 1000, 2)} us` : f(r.ms, 3)).padStart(10),
      f(r.gbps, 0).padStart(8),
      f(r.tflops, 0).padStart(8),
      (r.ofCopy === undefined ? '-' : `${(100 * r.ofCopy).toFixed(0)}%`).padStart(8),
      (r.torchMs === undefined ? '-' : us ? `${f(r.torchMs * 1000, 2)} us` : f(r.torchMs, 3)).padStart(10),
      f(r.vsTorch, 2).padStart(9),
      `  ${r.check}`,
    ].join(''));
  }
  return lines.join('\n');
}


/** Outputs' raw bytes of `fn` (run in a tidy scope). */
export async function outBytes(fn: () => core.Tensor[]): Promise<Uint8Array[]> {
  const outs = core.tidy(fn);
  try {
    return await Promise.all(outs.map((o) => o.bytes()));
  } finally {
    core.dispose(outs);
  }
}

/** Where two byte arrays first differ, or null. */
export function firstDiff(p: Uint8Array, q: Uint8Array): string | null {
  if (p.length !== q.length) return `lengths ${p.length} vs ${q.length}`;
  let n = 0;
  let first = -1;
  for (let i = 0; i < p.length; i++) {
    if (p[i] !== q[i]) {
      if (first < 0) first = i;
      n++;
    }
  }
  return n === 0 ? null : `${n} of ${p.length} bytes differ, first at byte ${first} (${p[first]} vs ${q[first]})`;
}

/** max |a - b| / max |b| over two float arrays. */
export function relMaxErr(got: Float32Array, want: Float32Array): number {
  let e = 0;
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    e = Math.max(e, Math.abs(got[i]! - want[i]!));
    m = Math.max(m, Math.abs(want[i]!));
  }
  return e / Math.max(m, 1e-30);
}

