/**
 * Without the CUDA libraries the package still imports, registers 'cuda', and reports why it
 * cannot run; backend selection moves on to the CPU.
 */
import { describe, expect, it } from 'vitest';
import { BackendError, initBackend, ready, registeredBackends } from '@ring-linear/core';
import '@ring-linear/backend-cpu';
import { cudaAvailability } from '../src/index.js';
import { openLibrary, type Koffi } from '../src/runtime/ffi.js';

// An empty override directory; the system may still have a driver (a GPU machine), checked below.
process.env.RING_LINEAR_CUDA_LIBS = '/nonexistent-ring-linear-cuda-libs';
const availability = await cudaAvailability();
const hasCuda = availability.available;
if (hasCuda) console.log(`[backend-cuda] CUDA is available here (${availability.reason}); the 'not available' checks are skipped`);

describe('CUDA backend without CUDA', () => {
  it("registers 'cuda' ahead of 'cpu'", () => {
    const names = registeredBackends();
    expect(names.indexOf('cuda')).toBeGreaterThanOrEqual(0);
    expect(names.indexOf('cuda')).toBeLessThan(names.indexOf('cpu'));
  });

  it.skipIf(hasCuda)('reports "CUDA not available: <reason>" naming what was tried', async () => {
    expect(availability.available).toBe(false);
    expect(availability.reason).toMatch(/^CUDA not available: cuda: no library could be loaded; tried libcuda\.so\.1 \(/);
  });

  it.skipIf(hasCuda)('fails initialization with a BackendError and ready() falls back to the CPU', async () => {
    await expect(initBackend('cuda')).rejects.toThrow(BackendError);
    await expect(initBackend('cuda')).rejects.toThrow(/backend 'cuda' failed to initialize: CUDA not available: /);
    expect(await ready()).toBe('cpu');
  });

  it('lists every candidate it tried when no library loads', () => {
    const koffi = { load: (p: string) => { throw new Error(`${p}: cannot open shared object file`); } } as unknown as Koffi;
    expect(() => openLibrary(koffi, 'nvrtc', { paths: { nvrtc: '/x/libnvrtc.so.13' } })).toThrow(
      /^nvrtc: no library could be loaded; tried \/x\/libnvrtc\.so\.13 \(\/x\/libnvrtc\.so\.13: cannot open shared object file\); .*libnvrtc\.so\.12/,
    );
  });
});
