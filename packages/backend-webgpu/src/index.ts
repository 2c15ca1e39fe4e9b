/**
 * @ring-linear/backend-webgpu — WGSL kernels for browsers (navigator.gpu) and Node.js (Dawn via
 * the `webgpu` package). Importing this package registers the 'webgpu' backend (priority 2, an
 * async factory: `await setBackend('webgpu')` or `await ready()`) and its kernels.
 */
import { registerBackend } from '@ring-linear/core';
import { createWebGpuBackend } from './backend.js';
import './kernels/index.js';

registerBackend('webgpu', () => createWebGpuBackend(), 2);

export { WebGpuBackend, WebGpuBuffer, createWebGpuBackend, sizeClass, type WebGpuBackendOptions, type Program } from './backend.js';
export { acquireGpu, prepareNodeVulkanEnv, type GpuProvider } from './gpu.js';
export { CODECS_WGSL } from './wgsl/codecs.js';
