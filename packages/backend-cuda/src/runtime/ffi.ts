/**
 * FFI plumbing: koffi is imported dynamically (so installing, bundling for browsers and importing
 * this package never need it), libraries are opened from the candidate lists of libs.ts, and C
 * functions are declared from prototype strings.
 *
 * Conventions for every declaration in this package: CUresult / nvrtcResult / cublasStatus_t are
 * `int`; out-parameters are `void *` and receive a typed array (BigUint64Array for handles and
 * sizes, Int32Array for ints, Float32Array for floats); handles are passed back as the BigInt that
 * came out; device pointers are `uint64_t` numbers (CUDA's virtual addresses stay below 2^53).
 * koffi wants full C type names (`unsigned int`, never bare `unsigned`).
 */
import type * as KoffiModule from 'koffi';
import { libraryCandidates, type CudaLibraryName, type CudaLibraryOptions } from './libs.js';

export type Koffi = typeof KoffiModule;
export type LibraryHandle = ReturnType<Koffi['load']>;
/** A declared C function. `async` runs the call on a koffi worker thread. */
export type CFunction = ((...args: any[]) => any) & { async: (...args: any[]) => void };

let koffiPromise: Promise<Koffi> | null = null;

/** Native stack for FFI calls (koffi's maximum). */
export const KOFFI_STACK_BYTES = 16 * 1024 * 1024;

/** Imports koffi once. Rejects with a readable reason when it is not installed. */
export function importKoffi(): Promise<Koffi> {
  koffiPromise ??= (async () => {
    // A computed specifier keeps bundlers from resolving (and browsers from fetching) koffi.
    const specifier = ['kof', 'fi'].join('');
    try {
      const m = (await import(/* @vite-ignore */ specifier)) as { default?: Koffi } & Koffi;
      const koffi = (m.default ?? m) as Koffi;
      // koffi runs native code on stacks of its own: 2 MiB for calls on this thread, 128 KiB for
      // async calls on its workers. NVRTC (a compiler) and cuBLASLt need far more, so give both
      // the maximum (16 MiB; reserved address space, touched only as deep as a call goes).
      try {
        koffi.config({ ...koffi.config(), sync_stack_size: KOFFI_STACK_BYTES, async_stack_size: KOFFI_STACK_BYTES });
      } catch {
        /* an older koffi without these settings */
      }
      return koffi;
    } catch (err) {
      koffiPromise = null;
      throw new Error(`the 'koffi' package (FFI) could not be loaded: ${(err as Error).message.split('\n')[0]}`);
    }
  })();
  return koffiPromise;
}

export interface OpenedLibrary {
  readonly name: CudaLibraryName;
  /** The candidate that loaded (a path or a bare soname). */
  readonly path: string;
  readonly handle: LibraryHandle;
}

/** Opens the first candidate that dlopen accepts; the error lists every attempt. */
export function openLibrary(koffi: Koffi, name: CudaLibraryName, options: CudaLibraryOptions = {}): OpenedLibrary {
  const tried: string[] = [];
  for (const path of libraryCandidates(name, options)) {
    try {
      return { name, path, handle: koffi.load(path) };
    } catch (err) {
      tried.push(`${path} (${firstLine(err)})`);
    }
  }
  throw new Error(`${name}: no library could be loaded; tried ${tried.join('; ') || 'nothing'}`);
}

/**
 * Declares functions from prototypes ("int cuInit(unsigned int flags)"). The key is the
 * function's name without a `_v2`/`_v3` suffix. Optional ones (marked with a leading '?') are
 * left undefined when the library lacks the symbol.
 */
export function declare<K extends string>(lib: LibraryHandle, protos: readonly string[]): Record<K, CFunction> {
  const out: Record<string, CFunction> = {};
  for (const raw of protos) {
    const optional = raw.startsWith('?');
    const proto = optional ? raw.slice(1) : raw;
    const m = /\b([A-Za-z_][A-Za-z0-9_]*)\s*\(/.exec(proto);
    if (!m) throw new Error(`bad prototype: ${proto}`);
    const key = m[1]!.replace(/_v[0-9]+$/, '');
    if (key in out) continue; // a newer variant listed first already bound it
    try {
      out[key] = lib.func(proto) as CFunction;
    } catch (err) {
      if (!optional) throw new Error(`symbol missing or prototype rejected: ${proto}: ${firstLine(err)}`);
    }
  }
  return out as Record<K, CFunction>;
}

export function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

/** One-element out-parameter cells, reused (calls are synchronous on the JS thread). */
export const OUT = {
  u64: new BigUint64Array(1),
  u64b: new BigUint64Array(1),
  i32: new Int32Array(1),
  i32b: new Int32Array(1),
  f32: new Float32Array(1),
};
