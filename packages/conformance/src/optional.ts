/** Test files that run on an optional backend (a GPU, a native library) skip where it is absent. */
import { initBackend, setBackend } from '@ring-linear/core';

/**
 * Loads a backend's package (`load`, e.g. `() => import('@ring-linear/backend-webgpu')`) and
 * initializes the backend `name`. Returns null when it is ready, else why not — printed as
 * `[label] SKIPPED: ...` so that a skip is never silent. The current backend is 'cpu' afterwards.
 */
export async function optionalBackendReason(name: string, load: () => Promise<unknown>, label: string): Promise<string | null> {
  try {
    await load();
    await initBackend(name);
    return null;
  } catch (err) {
    const reason = `no ${name} backend: ${(err as Error).message}`;
    console.warn(`[${label}] SKIPPED: ${reason}`);
    return reason;
  } finally {
    await setBackend('cpu');
  }
}
