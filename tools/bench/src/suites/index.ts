/**
 * Suites by backend name. Each is loaded only when selected, so a machine without WebGPU or CUDA
 * never imports those packages. A new backend adds one entry here and one file beside this one
 * (e.g. 'webgpu': backend-webgpu vs tfjs-backend-webgpu; 'cuda': backend-cuda vs PyTorch).
 */
import type { Suite } from '../framework.js';

export const SUITES: Record<string, () => Promise<Suite>> = {
  cpu: async () => (await import('./cpu.js')).cpuSuite,
  webgpu: async () => (await import('./webgpu.js')).webgpuSuite,
};
