/**
 * The backend interface: small and storage-centred (DESIGN.md, core contracts). A backend owns
 * buffers and runs kernels; kernels are registered separately, keyed by (op, backend name), so a
 * new backend is: this interface + kernels for the core ops.
 */
import type { DType } from './dtype/dtype.js';
import type { Shape } from './shape.js';

/** Opaque handle to device memory. Only the backend that made it knows what is inside. */
export interface BackendBuffer {
  readonly byteLength: number;
}

export interface BackendCapabilities {
  /** Human-readable device description ("CPU (2 threads)", "nvidia-h100-80gb-hbm3", ...). */
  readonly device: string;
  /** Storage dtypes held natively; all others are emulated (e.g. bf16 packed in u32 in WGSL). */
  readonly nativeDTypes: readonly DType[];
  /** Whether `readSync` exists (only the CPU backend). */
  readonly syncRead: boolean;
  /** Optional features ("shader-f16", "subgroups", "timestamp-query", "sm_90a", ...). */
  readonly features: readonly string[];
}

export interface BackendMemoryStats {
  /** Buffers handed out and not yet freed. */
  readonly buffers: number;
  /** Bytes in buffers handed out and not yet freed. */
  readonly bytesInUse: number;
  /** Bytes held by the backend's pool or cache for reuse (0 when it has none). */
  readonly bytesCached: number;
}

export interface Backend {
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  /** Allocates at least `byteLength` bytes (0 is allowed). Contents are unspecified. */
  allocate(byteLength: number): BackendBuffer;
  /** Copies host bytes into the buffer at `byteOffset`. Ordered after previously enqueued work. */
  write(buffer: BackendBuffer, data: ArrayBufferView, byteOffset?: number): void;
  /** Reads bytes back once all enqueued work that writes the buffer has finished. */
  read(buffer: BackendBuffer, byteOffset?: number, byteLength?: number): Promise<Uint8Array>;
  /** Synchronous read; only backends with `capabilities.syncRead`. */
  readSync?(buffer: BackendBuffer, byteOffset?: number, byteLength?: number): Uint8Array;
  /** Device-to-device copy; the engine falls back to a kernel-less read/write when absent. */
  copy?(src: BackendBuffer, srcOffset: number, dst: BackendBuffer, dstOffset: number, byteLength: number): void;
  /**
   * `rows` device-to-device copies of `rowBytes` bytes in one call (a 2-D copy): row i goes from
   * src at srcOffset + i * srcStride to dst at dstOffset + i * dstStride (strides >= rowBytes).
   * Optional; callers fall back to `copy` per row (e.g. a KV cache writing one token per sequence).
   */
  copyRows?(src: BackendBuffer, srcOffset: number, srcStride: number, dst: BackendBuffer, dstOffset: number, dstStride: number, rowBytes: number, rows: number): void;
  /** Returns the buffer to the backend (the backend may pool it). */
  free(buffer: BackendBuffer): void;
  /** Flushes queued work to the device without waiting. */
  flush?(): void;
  /** Resolves when all enqueued work has finished. */
  synchronize(): Promise<void>;
  memoryStats(): BackendMemoryStats;
  /** Frees device resources (pools, devices); the backend is unusable afterwards. */
  dispose(): void | Promise<void>;
}

/** What a kernel sees of a tensor: its buffer, shape and dtype (always contiguous, row-major). */
export interface TensorInfo {
  readonly buffer: BackendBuffer;
  readonly shape: Shape;
  readonly dtype: DType;
  readonly size: number;
}

export interface KernelContext<A = Record<string, unknown>, B extends Backend = Backend> {
  readonly op: string;
  readonly backend: B;
  readonly inputs: readonly TensorInfo[];
  /** Outputs are allocated by the engine from the op's shape inference; the kernel fills them. */
  readonly outputs: readonly TensorInfo[];
  /** Attributes after validation and normalization by the op definition (axes non-negative, ...). */
  readonly attrs: A;
}

/** A kernel enqueues work that fills `outputs`; it never reads device data back on the host. */
export type Kernel<A = any, B extends Backend = any> = (ctx: KernelContext<A, B>) => void;
