/**
 * What the section-writing benches (attention.ts, sampler.ts) share: where the repository is (run
 * from source or from a bundle on another host), and rewriting one marked section of
 * docs/benchmarks.md with an optional WebGPU block inside it, each side kept when the other is
 * written.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { disposeBackend, initBackend, setBackend } from '@ring-linear/core';

/**
 * Where a bench script runs from. From source (tools/bench/src/<name>.ts): the repository root is
 * three levels up. From a bundle (e.g. .carry/webgpu-bench/<name>.mjs on the GPU host): the working
 * directory stands in for it (default JSON and docs paths land there).
 */
export function scriptContext(metaUrl: string, sourceName: string): { fromSource: boolean; repoRoot: string } {
  const script = fileURLToPath(metaUrl);
  const fromSource = script.endsWith(path.join('tools', 'bench', 'src', sourceName));
  return { fromSource, repoRoot: fromSource ? path.resolve(path.dirname(script), '../../..') : process.cwd() };
}

/**
 * Test-only: lets a report from a software adapter (SwiftShader) write the docs, to check the
 * Markdown a GPU run will produce. Never for numbers that are meant to stay in the docs.
 */
export const allowSoftwareDocs = (): boolean => process.env.RING_LINEAR_BENCH_ALLOW_SOFTWARE_DOCS === '1';

/** The text between two markers of `text` (exclusive), or null. */
export function between(text: string, begin: string, end: string): string | null {
  const a = text.indexOf(begin);
  const b = text.indexOf(end, a + begin.length);
  return a >= 0 && b > a ? text.slice(a + begin.length, b) : null;
}

export interface SectionMarkers {
  /** Markers of the whole section (written by one bench). */
  begin: string;
  end: string;
  /** Markers of the WebGPU block inside it. */
  gpuBegin: string;
  gpuEnd: string;
  /** The heading a section starts with when the file has none yet and only a block is written. */
  heading: string;
}

/**
 * Replaces (or appends) a section of `file` (docs/benchmarks.md), leaving the rest of the file
 * alone. `section` (a CPU run) replaces the section's text and keeps its WebGPU block; `gpuBlock`
 * (a WebGPU run) replaces only that block and keeps the section's text. The WebGPU block always
 * closes the section.
 */
export function writeSection(file: string, m: SectionMarkers, section: string | null, gpuBlock?: string): void {
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n';
  const old = between(text, m.begin, m.end);
  const oldGpu = old === null ? null : between(old, m.gpuBegin, m.gpuEnd);
  const gpu = gpuBlock !== undefined ? `\n${gpuBlock}\n` : oldGpu;
  let body: string;
  if (section !== null) body = section;
  else if (old === null) body = m.heading;
  else {
    const a = old.indexOf(m.gpuBegin);
    const b = old.indexOf(m.gpuEnd, a);
    body = (a >= 0 && b > a ? old.slice(0, a) + old.slice(b + m.gpuEnd.length) : old).replace(/^\n+|\n+$/g, '');
  }
  if (gpu !== null) body = `${body}\n\n${m.gpuBegin}${gpu}${m.gpuEnd}`;
  const block = `${m.begin}\n${body}\n${m.end}`;
  const a = text.indexOf(m.begin);
  const b = text.indexOf(m.end, a);
  if (a >= 0 && b > a) text = `${text.slice(0, a)}${block}${text.slice(b + m.end.length)}`;
  else text = `${text.replace(/\s*$/, '')}\n\n${block}\n`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

/** Stops a run that has spent its time budget (--budget-s): what was measured is kept. */
export class TimeBudget {
  readonly #start = performance.now();
  readonly #limitS: number | null;
  /** Why the run stopped early, once it did (for the output and the docs). */
  stopped: string | null = null;

  constructor(limitS: number | null) {
    this.#limitS = limitS;
  }

  get limitS(): number | null {
    return this.#limitS;
  }

  elapsedS(): number {
    return (performance.now() - this.#start) / 1000;
  }

  /**
   * Whether the next piece of work (`what`, predicted to take `predictedS` seconds, 0 when
   * unknown) still fits: false once the elapsed time, or the elapsed time plus the prediction,
   * passes the budget. The first refusal is remembered in `stopped`.
   */
  allows(what: string, predictedS = 0): boolean {
    if (this.#limitS === null) return true;
    if (this.stopped !== null) return false;
    const e = this.elapsedS();
    if (e < this.#limitS && e + predictedS <= this.#limitS) return true;
    this.stopped =
      e >= this.#limitS
        ? `stopped before ${what}: ${e.toFixed(1)} s elapsed, over the --budget-s ${this.#limitS}`
        : `stopped before ${what}: ${e.toFixed(1)} s elapsed + about ${predictedS.toFixed(1)} s predicted would pass the --budget-s ${this.#limitS}`;
    process.stderr.write(`${this.stopped}\n`);
    return false;
  }
}

/** The --budget-s value: a positive number of seconds, or null without the flag. */
export function parseBudget(value: string | undefined): number | null {
  if (value === undefined) return null;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--budget-s expected a positive number of seconds, got '${value}'`);
  return n;
}

/** The backend named by --backend: 'cpu' (default) or 'webgpu'. */
export function parseBackend(value: string | undefined): 'cpu' | 'webgpu' {
  const b = value ?? 'cpu';
  if (b !== 'cpu' && b !== 'webgpu') throw new Error(`--backend expected 'cpu' or 'webgpu', got '${b}'`);
  return b;
}

/** The WebGPU backend as the benches use it (registered and initialized by `initWebGpu`). */
export interface WebGpuHandle {
  device: string;
  software: boolean;
  synchronize(): Promise<void>;
  dispose(): Promise<void>;
}

/**
 * Imports @ring-linear/backend-webgpu (Dawn through the `webgpu` package, SwiftShader without a
 * GPU), initializes it and makes it current. `dispose` makes the CPU current again and releases
 * the device, which lets Node exit.
 */
export async function initWebGpu(): Promise<WebGpuHandle> {
  await import('@ring-linear/backend-webgpu');
  const gpu = (await initBackend('webgpu')) as Awaited<ReturnType<typeof initBackend>> & { synchronize(): Promise<void>; isSoftware?: boolean };
  await setBackend('webgpu');
  const software = gpu.isSoftware === true;
  const device = gpu.capabilities.device;
  if (software) process.stderr.write(`note: ${device} is a software adapter: the timings only prove that the bench runs\n`);
  return {
    device,
    software,
    synchronize: () => gpu.synchronize(),
    dispose: async () => {
      await setBackend('cpu');
      await disposeBackend('webgpu'); // Node.js: lets the process exit
    },
  };
}

/**
 * The f32 ceiling a GPU's GFLOP/s are compared with: the datasheet's f32 rate without tensor
 * cores (the WGSL kernels use plain FMA). H100 SXM5 and H200: 67 TFLOP/s (NVIDIA datasheets).
 * Null for other adapters (and for software ones).
 */
export function gpuF32PeakGflops(device: string): { gflops: number; source: string } | null {
  if (/h100|h200/i.test(device) && !/pcie/i.test(device)) return { gflops: 67_000, source: 'NVIDIA H100 SXM5 / H200 datasheet: 67 TFLOP/s f32 without tensor cores' };
  if (/h100/i.test(device)) return { gflops: 51_000, source: 'NVIDIA H100 PCIe datasheet: 51 TFLOP/s f32 without tensor cores' };
  return null;
}
