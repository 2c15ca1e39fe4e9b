/**
 * Backends for the command: the CPU backend is built in (the embedded default); WebGPU and CUDA
 * are optional packages, imported only when asked for, so a machine without them (or without a
 * GPU) pays nothing and gets a clear reason instead of a crash.
 */
import { disposeBackend, initBackend, setBackend, type Backend } from '@ring-linear/core';
import '@ring-linear/backend-cpu';
import { CliError } from './errors.js';

export const BACKEND_NAMES = ['cpu', 'webgpu', 'cuda'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendReport {
  readonly name: BackendName;
  readonly available: boolean;
  /** The package that provides it. */
  readonly package: string;
  /** The device when available. */
  readonly device?: string;
  readonly features?: readonly string[];
  readonly nativeDTypes?: readonly string[];
  /** Why it is not available (or extra facts when it is, e.g. the CUDA driver). */
  readonly reason?: string;
  /** Milliseconds the probe took. */
  readonly probeMs: number;
}

const PACKAGES: Readonly<Record<BackendName, string>> = {
  cpu: '@ring-linear/backend-cpu',
  webgpu: '@ring-linear/backend-webgpu',
  cuda: '@ring-linear/backend-cuda',
};

function firstLine(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.split('\n')[0]!;
}

/** Imports an optional backend package (registering its backend); the reason when it cannot. */
async function importBackendPackage(name: BackendName): Promise<string | null> {
  try {
    // Literal specifiers, so bundlers and tsup see the optional packages.
    if (name === 'webgpu') await import('@ring-linear/backend-webgpu');
    else if (name === 'cuda') await import('@ring-linear/backend-cuda');
    return null;
  } catch (err) {
    return `${PACKAGES[name]} is not installed or failed to load (${firstLine(err)})`;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${Math.round(ms / 1000)} s`)), ms);
    (timer as { unref?: () => void }).unref?.();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Probes one backend: imports its package, initializes it (CUDA: asks cudaAvailability() first,
 * which loads the driver without building a context), reports the device or the reason, and
 * disposes what the probe created unless `keep` is set.
 */
export async function probeBackend(name: BackendName, options: { keep?: boolean; timeoutMs?: number } = {}): Promise<BackendReport> {
  const t0 = Date.now();
  const done = (r: Omit<BackendReport, 'probeMs' | 'package' | 'name'>): BackendReport => ({ name, package: PACKAGES[name], ...r, probeMs: Date.now() - t0 });
  const missing = await importBackendPackage(name);
  if (missing) return done({ available: false, reason: missing });
  let cudaNote: string | undefined;
  if (name === 'cuda') {
    try {
      const { cudaAvailability } = await import('@ring-linear/backend-cuda');
      const a = await cudaAvailability();
      if (!a.available) return done({ available: false, reason: a.reason });
      cudaNote = a.reason;
    } catch (err) {
      return done({ available: false, reason: `CUDA not available: ${firstLine(err)}` });
    }
  }
  let backend: Backend;
  try {
    backend = await withTimeout(initBackend(name), options.timeoutMs ?? 60_000, `initializing '${name}'`);
  } catch (err) {
    return done({ available: false, reason: firstLine(err).replace(/^backend '\w+' failed to initialize: /, '') });
  }
  const caps = backend.capabilities;
  const report = done({
    available: true,
    device: caps.device,
    features: [...caps.features],
    nativeDTypes: [...caps.nativeDTypes],
    ...(cudaNote ? { reason: cudaNote } : {}),
  });
  if (!options.keep && name !== 'cpu') await disposeBackend(name);
  return report;
}

/**
 * Makes `name` the current backend (models and data are created there). A backend that is not
 * available is a CliError with the reason and a pointer to `ring-linear info`.
 */
export async function useBackend(name: BackendName): Promise<Backend> {
  if (name !== 'cpu') {
    const missing = await importBackendPackage(name);
    if (missing) throw new CliError(`backend '${name}' is not available here: ${missing}; 'ring-linear info' lists the backends`);
    if (name === 'cuda') {
      const { cudaAvailability } = await import('@ring-linear/backend-cuda');
      const a = await cudaAvailability();
      if (!a.available) throw new CliError(`backend 'cuda' is not available here: ${a.reason}; 'ring-linear info' lists the backends`);
    }
  }
  try {
    return await setBackend(name);
  } catch (err) {
    throw new CliError(`backend '${name}' is not available here: ${firstLine(err).replace(/^backend '\w+' failed to initialize: /, '')}; 'ring-linear info' lists the backends`);
  }
}

/** Frees a GPU backend's device at the end of a command (its process may otherwise linger). */
export async function releaseBackend(name: BackendName): Promise<void> {
  if (name !== 'cpu') await disposeBackend(name);
}
