/**
 * Compiled modules and launchable kernels. A module is compiled by NVRTC on first use (or read
 * from the disk cache), loaded with cuModuleLoadData, and its kernels are looked up by name. Each
 * kernel owns one ArgPack (its argument slots), so launching writes numbers into preallocated
 * native memory and makes a single FFI call.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendError } from '@ring-linear/core';
import { ArgPack, type ArgValue, type NativeMemory } from '../runtime/args.js';
import type { Driver, Handle } from '../runtime/driver.js';
import type { CompileRequest } from '../runtime/nvrtc.js';
import { cacheKey, type CubinDiskCache } from './cache.js';
import { HEADER_FILES, moduleSource, type ModuleSpec } from './sources.js';

/** Where the .cuh sources are: option, RING_LINEAR_CUDA_KERNELS, then beside the package code. */
export function findKernelDir(explicit?: string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const cands = [explicit, env.RING_LINEAR_CUDA_KERNELS, join(here, '..', '..', 'kernels'), join(here, '..', 'kernels'), join(here, 'kernels')];
  for (const c of cands) if (c && existsSync(join(c, 'common.cuh'))) return c;
  throw new BackendError(`cuda: kernel sources (common.cuh) not found; looked in ${cands.filter(Boolean).join(', ')} (set RING_LINEAR_CUDA_KERNELS)`);
}

export function readHeaders(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of HEADER_FILES) out[h] = readFileSync(join(dir, h), 'utf8');
  return out;
}

/** Compiles a request; the compiler is NVRTC on a GPU machine (or a stub in tests). */
export interface Compiler {
  readonly version: readonly [number, number];
  compile(req: CompileRequest): Uint8Array;
  compileAsync?(req: CompileRequest): Promise<Uint8Array>;
}

/** NVRTC options for a target; arch like "sm_90a". */
export function compileOptions(arch: string, includeDir: string | null): string[] {
  const opts = [`--gpu-architecture=${arch}`, '-default-device', '-std=c++17', '-DNDEBUG', '--fmad=true'];
  if (includeDir) opts.push(`-I${includeDir}`);
  return opts;
}

/** sm_XX for a compute capability; Hopper gets the arch-specific sm_90a. */
export function archFor(cc: readonly [number, number]): string {
  const base = `sm_${cc[0]}${cc[1]}`;
  return cc[0] === 9 && cc[1] === 0 ? `${base}a` : base;
}

export class Kernel {
  readonly pack: ArgPack;
  launches = 0;
  constructor(
    readonly name: string,
    readonly handle: Handle,
    spec: ModuleSpec,
    native: NativeMemory,
    private readonly launcher: KernelLauncher,
  ) {
    const kinds = spec.kernels[name];
    if (!kinds) throw new BackendError(`cuda: kernel '${name}' is not in module '${spec.key}'`);
    this.pack = new ArgPack(kinds, native);
  }

  /** Launches with a 3-D grid and block. */
  launch(grid: readonly [number, number, number], block: readonly [number, number, number], args: readonly ArgValue[], sharedBytes = 0): void {
    this.pack.set(args);
    this.launches++;
    this.launcher.launch(this, grid, block, sharedBytes);
  }

  /** Launches over `n` elements with 256-thread blocks (grid-stride kernels; grid capped). */
  launch1D(n: number, args: readonly ArgValue[], threads = 256, maxBlocks = 1 << 20): void {
    const blocks = Math.max(1, Math.min(maxBlocks, Math.ceil(n / threads)));
    this.launch([blocks, 1, 1], [threads, 1, 1], args);
  }
}

export interface KernelLauncher {
  launch(k: Kernel, grid: readonly [number, number, number], block: readonly [number, number, number], sharedBytes: number): void;
}

interface LoadedModule {
  readonly handle: Handle;
  readonly kernels: Map<string, Kernel>;
}

export class ModuleManager {
  private readonly loaded = new Map<string, LoadedModule>();
  private readonly headers: Record<string, string>;
  private readonly options: string[];
  compiles = 0;
  compileMs = 0;

  constructor(
    private readonly driver: Pick<Driver, 'loadModule' | 'getFunction' | 'unloadModule'>,
    private readonly compiler: Compiler,
    private readonly cache: CubinDiskCache,
    private readonly native: NativeMemory,
    private readonly launcher: KernelLauncher,
    readonly arch: string,
    includeDir: string | null,
    kernelDir: string,
  ) {
    this.headers = readHeaders(kernelDir);
    this.options = compileOptions(arch, includeDir);
  }

  request(spec: ModuleSpec): CompileRequest {
    return { name: `${spec.key}.cu`, source: moduleSource(spec), headers: this.headers, options: this.options, output: 'cubin' };
  }

  keyOf(spec: ModuleSpec): string {
    const req = this.request(spec);
    return cacheKey({ source: req.source, headers: req.headers, arch: this.arch, nvrtcVersion: this.compiler.version, options: req.options });
  }

  /** The cubin of a module: from the disk cache, else compiled (and cached). */
  private image(spec: ModuleSpec): Uint8Array {
    const key = this.keyOf(spec);
    const hit = this.cache.get(key);
    if (hit) return hit;
    const t0 = performance.now();
    const cubin = this.compiler.compile(this.request(spec));
    this.compileMs += performance.now() - t0;
    this.compiles++;
    this.cache.put(key, cubin);
    return cubin;
  }

  private load(spec: ModuleSpec, image?: Uint8Array): LoadedModule {
    let m = this.loaded.get(spec.key);
    if (!m) {
      m = { handle: this.driver.loadModule(image ?? this.image(spec)), kernels: new Map() };
      this.loaded.set(spec.key, m);
    }
    return m;
  }

  kernel(spec: ModuleSpec, name: string): Kernel {
    const m = this.load(spec);
    let k = m.kernels.get(name);
    if (!k) {
      k = new Kernel(name, this.driver.getFunction(m.handle, name), spec, this.native, this.launcher);
      m.kernels.set(name, k);
    }
    return k;
  }

  isLoaded(key: string): boolean {
    return this.loaded.has(key);
  }

  /**
   * Compiles (in parallel where the compiler can) and loads every given module that is neither
   * loaded nor cached yet. Returns how many were compiled. With `onError`, a module that fails is
   * reported there and the others still build; without it the first failure rejects.
   */
  async precompile(specs: readonly ModuleSpec[], parallel = 8, onError?: (key: string, err: Error) => void): Promise<number> {
    // Largest modules first, so the parallel compiles finish together.
    const todo = specs.filter((s) => !this.loaded.has(s.key)).sort((a, b) => Object.keys(b.kernels).length - Object.keys(a.kernels).length);
    let compiled = 0;
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const spec = todo[next++]!;
        try {
          const key = this.keyOf(spec);
          let image = this.cache.get(key);
          if (!image) {
            const t0 = performance.now();
            image = this.compiler.compileAsync ? await this.compiler.compileAsync(this.request(spec)) : this.compiler.compile(this.request(spec));
            this.compileMs += performance.now() - t0;
            this.compiles++;
            compiled++;
            this.cache.put(key, image);
          }
          this.load(spec, image);
        } catch (err) {
          if (!onError) throw err;
          onError(spec.key, err instanceof Error ? err : new Error(String(err)));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
    return compiled;
  }

  dispose(): void {
    for (const m of this.loaded.values()) {
      for (const k of m.kernels.values()) k.pack.dispose();
      try {
        this.driver.unloadModule(m.handle);
      } catch {
        /* context may be gone */
      }
    }
    this.loaded.clear();
  }
}
