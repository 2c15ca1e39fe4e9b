/**
 * A caching device allocator. cuMemAlloc/cuMemFree are slow and synchronize the device, so freed
 * blocks are kept in per-size-class free lists and handed out again.
 *
 * Stream-ordered reuse: a freed block remembers the stream that last used it. Work on one stream
 * runs in order, so a block freed on stream S can be reused by later work on S at once, even while
 * earlier kernels that read it are still queued. Reusing it on another stream first makes that
 * stream wait for S (`StreamOrder.waitFor`), so the new owner cannot overtake the old one.
 *
 * Size classes: requests are rounded up to 512 bytes below 1 MiB, and to one of eight steps per
 * power of two above (at most 12.5% waste), so a block serves every request of its class.
 *
 * Private pools (CUDA graphs): while a graph is captured its allocations come from a pool of its
 * own, and blocks freed into that pool are reused only by that pool, because a replay of the graph
 * writes those addresses again. Releasing the pool (graph destroyed) returns its blocks.
 */
import { BackendError } from '@ring-linear/core';

export interface DeviceMemory {
  /** Allocates device memory; throws on failure (out of memory included). */
  alloc(bytes: number): number;
  free(ptr: number): void;
}

export interface StreamOrder {
  /** Makes `consumer` wait for everything enqueued so far on `producer`. */
  waitFor(consumer: bigint, producer: bigint): void;
}

export interface Block {
  readonly ptr: number;
  /** Bytes actually reserved (the size class). */
  readonly size: number;
  /** Bytes asked for. */
  requested: number;
  /** The stream that last used the block. */
  stream: bigint;
  /** 0 = the shared cache; otherwise a private pool id. */
  pool: number;
  live: boolean;
}

export interface AllocatorStats {
  /** Blocks handed out and not freed. */
  readonly buffers: number;
  /** Bytes asked for by live blocks. */
  readonly bytesInUse: number;
  /** Bytes of live blocks as reserved (size classes). */
  readonly bytesReservedInUse: number;
  /** Bytes in free blocks kept for reuse. */
  readonly bytesCached: number;
  readonly peakBytesReserved: number;
  /** Calls to the device allocator (cache misses). */
  readonly deviceAllocs: number;
  readonly deviceFrees: number;
  /** Requests served from the cache. */
  readonly cacheHits: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const SMALL_LIMIT = MiB;
const SMALL_ROUND = 512;

/** The size class (bytes reserved) for a request. */
export function sizeClass(bytes: number): number {
  if (!Number.isInteger(bytes) || bytes < 0) throw new BackendError(`cuda: allocation size must be a non-negative integer, got ${bytes}`);
  if (bytes === 0) return 0;
  if (bytes <= SMALL_LIMIT) return Math.ceil(bytes / SMALL_ROUND) * SMALL_ROUND;
  // Eight steps per power of two: 2^e * (8 + j) / 8.
  const e = Math.floor(Math.log2(bytes));
  const step = 2 ** (e - 3);
  return Math.ceil(bytes / step) * step;
}

export class CachingAllocator {
  private readonly free = new Map<number, Map<number, Block[]>>(); // pool -> class -> blocks
  private live = 0;
  private inUse = 0;
  private reservedInUse = 0;
  private cached = 0;
  private peak = 0;
  private deviceAllocs = 0;
  private deviceFrees = 0;
  private hits = 0;
  private activePool = 0;
  private nextPool = 1;
  private readonly releasedPools = new Set<number>();
  /** Blocks above this size are not cached when freed (0 = cache everything). */
  maxCachedBlock = 0;

  constructor(
    private readonly memory: DeviceMemory,
    private readonly order: StreamOrder,
  ) {}

  allocate(bytes: number, stream: bigint): Block {
    const size = sizeClass(bytes);
    if (size === 0) return this.track({ ptr: 0, size: 0, requested: 0, stream, pool: this.activePool, live: true });
    const block = this.takeCached(this.activePool, size, stream) ?? (this.activePool !== 0 ? this.takeCached(0, size, stream) : null);
    if (block) {
      this.hits++;
      block.requested = bytes;
      block.pool = this.activePool;
      block.live = true;
      return this.track(block);
    }
    let ptr: number;
    try {
      ptr = this.memory.alloc(size);
    } catch (err) {
      // Out of memory (or fragmentation): give every cached block back and try once more.
      if (this.cached === 0) throw err;
      this.emptyCache();
      ptr = this.memory.alloc(size);
    }
    this.deviceAllocs++;
    return this.track({ ptr, size, requested: bytes, stream, pool: this.activePool, live: true });
  }

  private takeCached(pool: number, size: number, stream: bigint): Block | null {
    const list = this.free.get(pool)?.get(size);
    if (!list || list.length === 0) return null;
    // Prefer a block last used on the same stream (no cross-stream wait needed).
    let i = list.length - 1;
    for (let j = list.length - 1; j >= 0; j--) {
      if (list[j]!.stream === stream) {
        i = j;
        break;
      }
    }
    const block = list.splice(i, 1)[0]!;
    this.cached -= block.size;
    if (block.stream !== stream) {
      this.order.waitFor(stream, block.stream);
      block.stream = stream;
    }
    return block;
  }

  private track(b: Block): Block {
    this.live++;
    this.inUse += b.requested;
    this.reservedInUse += b.size;
    this.peak = Math.max(this.peak, this.reservedInUse + this.cached);
    return b;
  }

  /** Returns a block; it is reusable at once by later work on `stream` (stream order). */
  release(b: Block, stream: bigint = b.stream): void {
    if (!b.live) throw new BackendError('cuda: double free of a device buffer');
    b.live = false;
    b.stream = stream;
    this.live--;
    this.inUse -= b.requested;
    this.reservedInUse -= b.size;
    if (b.size === 0) return;
    if (this.releasedPools.has(b.pool)) b.pool = 0;
    if (this.maxCachedBlock > 0 && b.size > this.maxCachedBlock && b.pool === 0) {
      this.memory.free(b.ptr);
      this.deviceFrees++;
      return;
    }
    let byClass = this.free.get(b.pool);
    if (!byClass) this.free.set(b.pool, (byClass = new Map()));
    let list = byClass.get(b.size);
    if (!list) byClass.set(b.size, (list = []));
    list.push(b);
    this.cached += b.size;
  }

  /**
   * Frees every cached block of the shared cache (and of released pools) back to the device.
   * The caller must make sure no queued work still uses them (synchronize first).
   */
  emptyCache(): void {
    for (const [pool, byClass] of this.free) {
      if (pool !== 0 && !this.releasedPools.has(pool)) continue;
      for (const list of byClass.values()) {
        for (const b of list) {
          this.memory.free(b.ptr);
          this.deviceFrees++;
          this.cached -= b.size;
        }
      }
      this.free.delete(pool);
    }
  }

  /** Starts routing allocations to a new private pool; returns its id. */
  beginPrivatePool(): number {
    if (this.activePool !== 0) throw new BackendError('cuda: graph captures cannot be nested');
    this.activePool = this.nextPool++;
    return this.activePool;
  }

  endPrivatePool(): void {
    this.activePool = 0;
  }

  /** The pool's cached blocks go back to the shared cache; its live blocks follow when freed. */
  releasePrivatePool(pool: number): void {
    this.releasedPools.add(pool);
    const byClass = this.free.get(pool);
    if (!byClass) return;
    this.free.delete(pool);
    let shared = this.free.get(0);
    if (!shared) this.free.set(0, (shared = new Map()));
    for (const [size, list] of byClass) {
      for (const b of list) b.pool = 0;
      shared.set(size, [...(shared.get(size) ?? []), ...list]);
    }
  }

  stats(): AllocatorStats {
    return {
      buffers: this.live,
      bytesInUse: this.inUse,
      bytesReservedInUse: this.reservedInUse,
      bytesCached: this.cached,
      peakBytesReserved: this.peak,
      deviceAllocs: this.deviceAllocs,
      deviceFrees: this.deviceFrees,
      cacheHits: this.hits,
    };
  }
}
