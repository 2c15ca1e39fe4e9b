/**
 * The CUDA backend: one device, its primary context, one compute stream. Work is enqueued on the
 * stream in op order; nothing blocks until data is read back. Reads copy into page-locked staging
 * memory on the stream, record an event, and resolve once the event has completed (polled, so the
 * JavaScript thread stays free), which is exactly when the stream has reached the read.
 */
import {
  BackendError,
  type Backend,
  type BackendBuffer,
  type BackendCapabilities,
  type BackendMemoryStats,
} from '@ring-linear/core';
import { CachingAllocator, sizeClass, type AllocatorStats, type Block } from './memory/allocator.js';
import { CubinDiskCache, defaultCacheDir } from './kernels/cache.js';
import { archFor, findKernelDir, ModuleManager, type Kernel, type KernelLauncher } from './kernels/modules.js';
import { allModuleSpecs, type ModuleSpec } from './kernels/sources.js';
import type { NativeMemory } from './runtime/args.js';
import { CU_SUCCESS, type DeviceInfo, type Handle } from './runtime/driver.js';
import type { CudaLibraryOptions } from './runtime/libs.js';
import { formatCudaVersion, loadRuntime, type CudaRuntime } from './runtime/runtime.js';

export interface CudaBackendOptions extends CudaLibraryOptions {
  /** Device ordinal (default: $RING_LINEAR_CUDA_DEVICE or 0). */
  readonly device?: number;
  /** Kernel cache directory; null disables the disk cache (default: see kernels/cache.ts). */
  readonly cacheDir?: string | null;
  /** Directory of the .cuh sources (default: the package's kernels/). */
  readonly kernelDir?: string;
  /** Let f32 matmuls use TF32 tensor cores (default false: full f32). */
  readonly tf32?: boolean;
  /** cuBLASLt workspace bytes (default 32 MiB). */
  readonly workspaceBytes?: number;
  /** Wait for reads with cuEventSynchronize (blocks the thread) instead of polling. */
  readonly blockingSync?: boolean;
}

export class CudaBuffer implements BackendBuffer {
  freed = false;
  /** Scratch computed from this buffer's bytes (CudaBackend.derivedTemp), released with it. */
  derived: { key: string; block: Block }[] | null = null;
  constructor(
    readonly byteLength: number,
    readonly block: Block,
  ) {}
  get ptr(): number {
    return this.block.ptr;
  }
}

interface PinnedBuffer {
  readonly ptr: bigint;
  readonly view: ArrayBuffer;
  readonly size: number;
}

/** The largest pitch cuMemcpy2D takes (CU_DEVICE_ATTRIBUTE_MAX_PITCH on current GPUs); wider strides copy row by row. */
const MAX_COPY_PITCH = 2 ** 31 - 1;

/** Entries of CudaBackend.constantTable (tables of a few KiB each). */
const CONSTANT_ENTRIES = 1024;

function sameNumbers(a: readonly number[] | undefined, b: readonly number[]): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A captured CUDA graph: replay with `launch()`, free with `dispose()`. */
export class CudaGraph {
  private disposed = false;
  constructor(
    private readonly backend: CudaBackend,
    private readonly graph: Handle,
    private readonly exec: Handle,
    private readonly pool: number,
    private readonly pinned: PinnedBuffer[],
  ) {}

  /** Enqueues one replay of the captured work on the backend's stream. */
  launch(): void {
    if (this.disposed) throw new BackendError('cuda: launch of a disposed graph');
    this.backend.rt.driver.launchGraph(this.exec, this.backend.stream);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const b = this.backend;
    b.synchronizeBlocking();
    b.rt.driver.destroyGraph(this.graph, this.exec);
    b.allocator.releasePrivatePool(this.pool);
    for (const p of this.pinned) b.rt.driver.hostFree(p.ptr);
  }
}

export class CudaBackend implements Backend, KernelLauncher {
  readonly name = 'cuda';
  readonly capabilities: BackendCapabilities;
  readonly device: DeviceInfo;
  readonly arch: string;
  readonly allocator: CachingAllocator;
  readonly modules: ModuleManager;
  readonly stream: Handle;
  readonly diskCache: CubinDiskCache;
  readonly workspaceBytes: number;
  tf32: boolean;
  private readonly ctx: Handle;
  private readonly events: Handle[] = [];
  private readonly pinnedFree = new Map<number, PinnedBuffer[]>();
  private workspace: number | null = null;
  private readonly constants = new Map<string, { ptr: number; verify: readonly number[] | undefined }>();
  private capturing: { pinned: PinnedBuffer[] } | null = null;
  private disposed = false;
  private readonly launchFn: (...args: any[]) => number;
  private readonly blockingSync: boolean;
  readonly native: NativeMemory;

  static async create(options: CudaBackendOptions = {}): Promise<CudaBackend> {
    let rt: CudaRuntime;
    try {
      rt = await loadRuntime(options);
    } catch (err) {
      throw new BackendError(`CUDA not available: ${(err as Error).message.split('\n')[0]}`);
    }
    return new CudaBackend(rt, options);
  }

  constructor(
    readonly rt: CudaRuntime,
    options: CudaBackendOptions = {},
  ) {
    const d = rt.driver;
    const envDev = process.env.RING_LINEAR_CUDA_DEVICE;
    const ordinal = options.device ?? (envDev ? Number(envDev) : 0);
    if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= rt.deviceCount) {
      throw new BackendError(`CUDA not available: device ${ordinal} requested, the driver reports ${rt.deviceCount} device(s)`);
    }
    this.device = d.deviceInfo(ordinal);
    this.ctx = d.retainPrimaryContext(d.device(ordinal));
    d.setCurrent(this.ctx);
    this.stream = d.createStream();
    this.arch = archFor(this.device.computeCapability);
    this.tf32 = options.tf32 ?? false;
    this.workspaceBytes = options.workspaceBytes ?? 32 * 1024 * 1024;
    this.blockingSync = options.blockingSync ?? false;
    this.allocator = new CachingAllocator(
      { alloc: (n) => d.memAlloc(n), free: (p) => d.memFree(p) },
      { waitFor: (consumer, producer) => this.streamWait(consumer, producer) },
    );
    const koffi = rt.koffi;
    this.native = {
      alloc: (bytes) => {
        const ptr = koffi.alloc('uint8_t', bytes) as bigint;
        return { ptr, view: koffi.view(ptr, bytes) };
      },
      free: (ptr) => koffi.free(ptr),
    };
    this.diskCache = new CubinDiskCache(options.cacheDir === undefined ? defaultCacheDir() : options.cacheDir);
    this.modules = new ModuleManager(d, rt.nvrtc, this.diskCache, this.native, this, this.arch, rt.includeDir, findKernelDir(options.kernelDir));
    this.launchFn = d.fn.cuLaunchKernel;
    this.capabilities = {
      device: `${this.device.name} (${this.arch}, ${Math.round(this.device.totalMemory / 2 ** 30)} GiB, CUDA driver ${formatCudaVersion(this.device.driverVersion)})`,
      nativeDTypes: ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2', 'i32', 'u8', 'bool'],
      syncRead: false,
      features: [this.arch, 'cublasLt', 'cuda-graphs', `nvrtc-${rt.nvrtc.version.join('.')}`, ...(this.tf32 ? ['tf32'] : [])],
    };
  }

  // -------------------------------------------------------------------------------------------
  // Buffers

  allocate(byteLength: number): CudaBuffer {
    this.alive('allocate');
    if (!Number.isInteger(byteLength) || byteLength < 0) throw new BackendError(`cuda: allocate expected a non-negative integer byte length, got ${byteLength}`);
    return new CudaBuffer(byteLength, this.allocator.allocate(byteLength, this.stream));
  }

  /** Scratch device memory for one op; release it right after enqueueing its last use. */
  temp(byteLength: number): Block {
    return this.allocator.allocate(byteLength, this.stream);
  }

  releaseTemp(b: Block): void {
    this.allocator.release(b, this.stream);
  }

  /**
   * Device copy of small immutable host data (a frequency table, a list of weight pointers),
   * uploaded on the first use of `key` and reused after: a decode step would otherwise upload the
   * same bytes dozens of times. `key` must determine the bytes. Like the GEMM workspace, the copies
   * live outside the allocator (and its statistics) until dispose; at most CONSTANT_ENTRIES are
   * kept (the oldest freed after the stream drains). While a graph is being captured nothing new
   * is cached (the upload would only happen at replay): `temp` then owns the copy, to be released
   * with releaseTemp after the launches that read it.
   */
  constantTable(key: string, make: () => ArrayBufferView, verify?: readonly number[]): { ptr: number; temp: Block | null } {
    const hit = this.constants.get(key);
    if (hit !== undefined && (!verify || sameNumbers(hit.verify, verify))) return { ptr: hit.ptr, temp: null };
    const data = make();
    const n = Math.max(1, data.byteLength);
    if (this.capturing) {
      const temp = this.tempTable(data);
      return { ptr: temp.ptr, temp };
    }
    const d = this.rt.driver;
    // Make room: the oldest entry, or this key's (a hash key whose `verify` list differs).
    const evict = hit !== undefined ? key : this.constants.size >= CONSTANT_ENTRIES ? this.constants.keys().next().value : undefined;
    if (evict !== undefined) {
      const old = this.constants.get(evict)!;
      this.constants.delete(evict);
      d.streamSynchronize(this.stream);
      d.memFree(old.ptr);
    }
    const p = d.memAlloc(n);
    if (data.byteLength > 0) d.copyHtoDAsync(p, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), data.byteLength, this.stream);
    this.constants.set(key, { ptr: p, verify: verify ? [...verify] : undefined });
    return { ptr: p, temp: null };
  }

  /** Scratch holding a copy of `data` (uploaded in stream order), for tables used by one op only. */
  private tempTable(data: ArrayBufferView): Block {
    const n = Math.max(1, data.byteLength);
    const temp = this.temp(n);
    this.write(new CudaBuffer(n, temp), data);
    return temp;
  }

  /**
   * A device array of 64-bit pointers (a list of expert weights), kept through constantTable: keyed
   * by a hash of the addresses and checked against them on a hit, so no long string is built per
   * call. `keep = false` (addresses that change every call, e.g. fresh gradient buffers): uploaded
   * into a temp instead, which the caller releases.
   */
  pointerTable(ptrs: readonly number[], keep = true): { ptr: number; temp: Block | null } {
    const bytes = () => new BigUint64Array(ptrs.map((p) => BigInt(p)));
    if (!keep) {
      const temp = this.tempTable(bytes());
      return { ptr: temp.ptr, temp };
    }
    let h1 = 0x811c9dc5 ^ ptrs.length, h2 = 0x9e3779b9;
    for (let i = 0; i < ptrs.length; i++) {
      const lo = ptrs[i]! >>> 0, hi = Math.floor(ptrs[i]! / 4294967296) >>> 0;
      h1 = Math.imul(h1 ^ lo, 16777619) ^ hi;
      h2 = Math.imul(h2 ^ hi ^ (lo >>> 5), 0x85ebca6b) + i;
    }
    return this.constantTable(`ptrs:${ptrs.length}:${h1 >>> 0}:${h2 >>> 0}`, bytes, ptrs);
  }

  write(buffer: BackendBuffer, data: ArrayBufferView, byteOffset = 0): void {
    const b = this.own(buffer, 'write');
    const n = data.byteLength;
    if (byteOffset < 0 || byteOffset + n > b.byteLength) {
      throw new BackendError(`cuda: write of ${n} bytes at offset ${byteOffset} overflows a ${b.byteLength}-byte buffer`);
    }
    if (n === 0) return;
    this.dropDerived(b);
    const src = new Uint8Array(data.buffer, data.byteOffset, n);
    if (this.capturing) {
      // A captured copy must come from memory that outlives the graph: pin a private copy.
      const p = this.pinnedAlloc(n);
      new Uint8Array(p.view, 0, n).set(src);
      this.capturing.pinned.push(p);
      this.rt.driver.copyHtoDAsync(b.ptr + byteOffset, p.ptr, n, this.stream);
      return;
    }
    // From pageable memory the driver stages the bytes before returning, so `data` may change after.
    this.rt.driver.copyHtoDAsync(b.ptr + byteOffset, src, n, this.stream);
  }

  async read(buffer: BackendBuffer, byteOffset = 0, byteLength?: number): Promise<Uint8Array> {
    const b = this.own(buffer, 'read');
    const n = byteLength ?? b.byteLength - byteOffset;
    if (byteOffset < 0 || n < 0 || byteOffset + n > b.byteLength) {
      throw new BackendError(`cuda: read of ${n} bytes at offset ${byteOffset} from a ${b.byteLength}-byte buffer`);
    }
    if (this.capturing) throw new BackendError('cuda: cannot read data back while a CUDA graph is being captured');
    if (n === 0) return new Uint8Array(0);
    const staging = this.takePinned(n);
    const ev = this.takeEvent();
    try {
      this.rt.driver.copyDtoHAsync(staging.ptr, b.ptr + byteOffset, n, this.stream);
      this.rt.driver.recordEvent(ev, this.stream);
      await this.waitEvent(ev);
      return new Uint8Array(staging.view, 0, n).slice();
    } finally {
      this.givePinned(staging);
      this.events.push(ev);
    }
  }

  copy(src: BackendBuffer, srcOffset: number, dst: BackendBuffer, dstOffset: number, byteLength: number): void {
    const s = this.own(src, 'copy');
    const d = this.own(dst, 'copy');
    if (srcOffset + byteLength > s.byteLength || dstOffset + byteLength > d.byteLength) {
      throw new BackendError(`cuda: copy of ${byteLength} bytes out of range (source ${s.byteLength} bytes at ${srcOffset}, destination ${d.byteLength} at ${dstOffset})`);
    }
    if (byteLength > 0) {
      this.dropDerived(d);
      this.rt.driver.copyDtoDAsync(d.ptr + dstOffset, s.ptr + srcOffset, byteLength, this.stream);
    }
  }

  copyRows(src: BackendBuffer, srcOffset: number, srcStride: number, dst: BackendBuffer, dstOffset: number, dstStride: number, rowBytes: number, rows: number): void {
    const s = this.own(src, 'copyRows');
    const d = this.own(dst, 'copyRows');
    if (rows <= 0 || rowBytes <= 0) return;
    const ints = [srcOffset, srcStride, dstOffset, dstStride, rowBytes, rows];
    if (!ints.every((x) => Number.isInteger(x) && x >= 0) || srcStride < rowBytes || dstStride < rowBytes) {
      throw new BackendError(`cuda: copyRows expects non-negative integers with strides >= rowBytes, got offsets ${srcOffset}/${dstOffset}, strides ${srcStride}/${dstStride}, ${rows} rows of ${rowBytes} bytes`);
    }
    const srcEnd = srcOffset + (rows - 1) * srcStride + rowBytes;
    const dstEnd = dstOffset + (rows - 1) * dstStride + rowBytes;
    if (srcEnd > s.byteLength || dstEnd > d.byteLength) {
      throw new BackendError(`cuda: copyRows of ${rows} rows of ${rowBytes} bytes out of range (source ${s.byteLength} bytes, reaching ${srcEnd}; destination ${d.byteLength}, reaching ${dstEnd})`);
    }
    this.dropDerived(d);
    if (rows === 1 || (srcStride === rowBytes && dstStride === rowBytes)) {
      this.rt.driver.copyDtoDAsync(d.ptr + dstOffset, s.ptr + srcOffset, rows === 1 ? rowBytes : rows * rowBytes, this.stream);
    } else if (Math.max(srcStride, dstStride) <= MAX_COPY_PITCH) {
      this.rt.driver.copy2DAsync(d.ptr + dstOffset, dstStride, s.ptr + srcOffset, srcStride, rowBytes, rows, this.stream);
    } else {
      for (let i = 0; i < rows; i++) this.rt.driver.copyDtoDAsync(d.ptr + dstOffset + i * dstStride, s.ptr + srcOffset + i * srcStride, rowBytes, this.stream);
    }
  }

  free(buffer: BackendBuffer): void {
    const b = this.own(buffer, 'free');
    b.freed = true;
    if (this.disposed) return;
    this.dropDerived(b);
    this.allocator.release(b.block, this.stream);
  }

  /**
   * Scratch computed from a buffer's bytes by `fill` (which enqueues the kernels that write it),
   * kept with the buffer and released when the buffer is freed or written (write, copy, copyRows
   * into it). Between those its bytes do not change (ops write fresh outputs; Parameter.assign
   * swaps buffers), so e.g. the tile list of a grouped GEMM's offsets is built once for the gate,
   * up and down GEMMs. While a graph is being captured nothing is kept: `temp` then owns the
   * scratch, released by the caller.
   */
  derivedTemp(buffer: CudaBuffer, key: string, bytes: number, fill: (ptr: number) => void): { ptr: number; temp: Block | null } {
    const hit = buffer.derived?.find((d) => d.key === key);
    if (hit) return { ptr: hit.block.ptr, temp: null };
    const block = this.temp(bytes);
    fill(block.ptr);
    if (this.capturing) return { ptr: block.ptr, temp: block };
    (buffer.derived ??= []).push({ key, block });
    return { ptr: block.ptr, temp: null };
  }

  private dropDerived(b: CudaBuffer): void {
    if (!b.derived) return;
    for (const d of b.derived) this.allocator.release(d.block, this.stream);
    b.derived = null;
  }

  flush(): void {
    // Launches are submitted as they are made; nothing is batched on the host.
  }

  async synchronize(): Promise<void> {
    this.alive('synchronize');
    const ev = this.takeEvent();
    try {
      this.rt.driver.recordEvent(ev, this.stream);
      await this.waitEvent(ev);
    } finally {
      this.events.push(ev);
    }
  }

  /** Blocks the thread until the stream is idle (benchmarks, dispose). */
  synchronizeBlocking(): void {
    this.rt.driver.streamSynchronize(this.stream);
  }

  memoryStats(): BackendMemoryStats {
    const s = this.allocator.stats();
    return { buffers: s.buffers, bytesInUse: s.bytesInUse, bytesCached: s.bytesCached };
  }

  /** Allocator statistics in full (cache hits, device allocations, peak). */
  allocatorStats(): AllocatorStats {
    return this.allocator.stats();
  }

  /** Returns cached device memory to the driver (after the stream has drained). */
  emptyCache(): void {
    this.synchronizeBlocking();
    this.allocator.emptyCache();
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    const d = this.rt.driver;
    d.streamSynchronize(this.stream);
    this.disposed = true;
    if (this.workspace !== null) d.memFree(this.workspace);
    for (const c of this.constants.values()) d.memFree(c.ptr);
    this.constants.clear();
    this.allocator.emptyCache();
    this.modules.dispose();
    for (const e of this.events) d.destroyEvent(e);
    for (const list of this.pinnedFree.values()) for (const p of list) d.hostFree(p.ptr);
    d.destroyStream(this.stream);
    d.releasePrimaryContext(d.device(this.device.ordinal));
  }

  // -------------------------------------------------------------------------------------------
  // Kernels

  /** A kernel of a module (compiled or loaded on first use). */
  kernel(spec: ModuleSpec, name: string): Kernel {
    return this.modules.kernel(spec, name);
  }

  launch(k: Kernel, grid: readonly [number, number, number], block: readonly [number, number, number], sharedBytes: number): void {
    const r = this.launchFn(k.handle, grid[0], grid[1], grid[2], block[0], block[1], block[2], sharedBytes, this.stream, k.pack.params, null);
    if (r !== CU_SUCCESS) throw this.rt.driver.error('cuLaunchKernel', r, `kernel ${k.name}, grid [${grid.join(', ')}], block [${block.join(', ')}]`);
  }

  /**
   * Compiles and loads every kernel module (NVRTC on worker threads, `parallel` at a time);
   * returns how many were compiled (not cached). `onError` collects failures instead of throwing.
   */
  precompile(parallel = 8, onError?: (module: string, err: Error) => void): Promise<number> {
    return this.modules.precompile(allModuleSpecs(), parallel, onError);
  }

  /** cuBLASLt workspace address (allocated on first use, outside the allocator's statistics). */
  gemmWorkspace(): number {
    return (this.workspace ??= this.rt.driver.memAlloc(this.workspaceBytes));
  }

  /** Fills `count` elements of width 1, 2 or 4 bytes with a raw bit pattern. */
  memset(ptr: number, pattern: number, width: 1 | 2 | 4, count: number): void {
    if (count > 0) this.rt.driver.memset(ptr, pattern, width, count, this.stream);
  }

  // -------------------------------------------------------------------------------------------
  // CUDA graphs

  /**
   * Captures the GPU work `fn` enqueues into a CUDA graph, for fixed-shape loops (decode steps):
   * `graph.launch()` replays it with one call. Tensors made inside `fn` keep the memory they had
   * during capture (a private pool), so a replay writes the same outputs again; inputs are read
   * from the buffers they had. `fn` runs once, during capture, and must not read data back.
   */
  captureGraph<T>(fn: () => T): { graph: CudaGraph; result: T } {
    this.alive('captureGraph');
    if (this.capturing) throw new BackendError('cuda: graph captures cannot be nested');
    const d = this.rt.driver;
    // Everything needed outside the capture must exist before it starts.
    this.gemmWorkspace();
    const pool = this.allocator.beginPrivatePool();
    const pinned: PinnedBuffer[] = [];
    this.capturing = { pinned };
    d.beginCapture(this.stream);
    let result: T;
    let graph: Handle;
    try {
      result = fn();
    } catch (err) {
      this.capturing = null;
      this.allocator.endPrivatePool();
      try {
        d.destroyGraph(d.endCapture(this.stream), null);
      } catch {
        /* capture already invalid */
      }
      this.allocator.releasePrivatePool(pool);
      for (const p of pinned) d.hostFree(p.ptr);
      throw err;
    } finally {
      this.capturing = null;
      this.allocator.endPrivatePool();
    }
    graph = d.endCapture(this.stream);
    const exec = d.instantiateGraph(graph);
    return { graph: new CudaGraph(this, graph, exec, pool, pinned), result };
  }

  get isCapturing(): boolean {
    return this.capturing !== null;
  }

  // -------------------------------------------------------------------------------------------
  // Internals

  private streamWait(consumer: bigint, producer: bigint): void {
    const ev = this.takeEvent();
    this.rt.driver.recordEvent(ev, producer);
    this.rt.driver.streamWaitEvent(consumer, ev);
    this.events.push(ev);
  }

  private takeEvent(): Handle {
    return this.events.pop() ?? this.rt.driver.createEvent(false);
  }

  private waitEvent(ev: Handle): Promise<void> {
    const d = this.rt.driver;
    if (this.blockingSync) {
      d.eventSynchronize(ev);
      return Promise.resolve();
    }
    if (d.queryEvent(ev)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let polls = 0;
      const poll = () => {
        try {
          if (d.queryEvent(ev)) {
            resolve();
            return;
          }
        } catch (err) {
          reject(err);
          return;
        }
        polls++;
        // Spin through the event loop briefly (short kernels), then back off to 1 ms timers.
        if (polls < 200) setImmediate(poll);
        else setTimeout(poll, 1);
      };
      setImmediate(poll);
    });
  }

  private pinnedAlloc(n: number): PinnedBuffer {
    const size = sizeClass(Math.max(n, 4096));
    const h = this.rt.driver.hostAlloc(size);
    return { ptr: h.ptr, view: h.view, size };
  }

  private takePinned(n: number): PinnedBuffer {
    const size = sizeClass(Math.max(n, 4096));
    return this.pinnedFree.get(size)?.pop() ?? this.pinnedAlloc(n);
  }

  private givePinned(p: PinnedBuffer): void {
    let list = this.pinnedFree.get(p.size);
    if (!list) this.pinnedFree.set(p.size, (list = []));
    list.push(p);
  }

  private own(buffer: BackendBuffer, what: string): CudaBuffer {
    if (!(buffer instanceof CudaBuffer)) throw new BackendError(`cuda: ${what} got a buffer from another backend`);
    if (buffer.freed) throw new BackendError(`cuda: ${what} of a freed buffer`);
    this.alive(what);
    return buffer;
  }

  private alive(what: string): void {
    if (this.disposed) throw new BackendError(`cuda: ${what} after the backend was disposed`);
  }
}
