/**
 * @ring-linear/backend-cuda — NVIDIA GPUs from Node.js. Importing this package registers the
 * 'cuda' backend (priority 3, above CPU and WebGPU) and its kernels. Nothing CUDA-related is
 * loaded until the backend is initialized: on a machine without a GPU, the driver, NVRTC or
 * cuBLASLt, initialization fails with "CUDA not available: <reason>" and `ready()` moves on to
 * the next backend.
 */
import { BackendError, findBackend, registerBackend, type Tensor } from '@ring-linear/core';
import { CudaBackend, CudaBuffer, CudaGraph, type CudaBackendOptions } from './backend.js';
import './ops/index.js';

let defaultOptions: CudaBackendOptions = {};

/** Options for the registered 'cuda' backend; call before it is initialized. */
export function configureCuda(options: CudaBackendOptions): void {
  defaultOptions = { ...options };
}

registerBackend('cuda', () => CudaBackend.create(defaultOptions), 3);

/** The initialized 'cuda' backend instance (after `await initBackend('cuda')` or `setBackend`). */
export function cudaBackend(): CudaBackend {
  const b = findBackend('cuda');
  if (!(b instanceof CudaBackend)) throw new BackendError("the 'cuda' backend is not a CudaBackend instance");
  return b;
}

/**
 * Captures the GPU work of `fn` (ops on 'cuda' tensors with fixed shapes) into a CUDA graph.
 * Returns the graph and what `fn` returned; `graph.launch()` re-runs the captured kernels, writing
 * the same output tensors from the same input buffers (write new input data with the backend's
 * `write` between launches). Dispose the graph when done; its memory pool is freed then.
 */
export function captureGraph<T>(fn: () => T): { graph: CudaGraph; result: T } {
  return cudaBackend().captureGraph(fn);
}

/** The device buffer address of a 'cuda' tensor (for interop and diagnostics). */
export function devicePointer(t: Tensor): number {
  const info = t.info('devicePointer');
  if (!(info.buffer instanceof CudaBuffer)) throw new BackendError(`devicePointer: tensor #${t.id} is on '${t.backend}', not 'cuda'`);
  return info.buffer.ptr;
}

export { CudaBackend, CudaBuffer, CudaGraph, type CudaBackendOptions } from './backend.js';
export { cudaAvailability, formatCudaVersion, loadRuntime, type CudaAvailability, type CudaRuntime } from './runtime/runtime.js';
export { libraryCandidates, findIncludeDir, SONAMES, type CudaLibraryName, type CudaLibraryOptions } from './runtime/libs.js';
export { CudaError } from './runtime/driver.js';
export { NvrtcCompileError } from './runtime/nvrtc.js';
export { cacheKey, defaultCacheDir, CubinDiskCache } from './kernels/cache.js';
export { allModuleSpecs, moduleSource, HEADER_FILES, type ModuleSpec } from './kernels/sources.js';
export { sizeClass, CachingAllocator, type AllocatorStats } from './memory/allocator.js';
