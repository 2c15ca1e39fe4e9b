/**
 * The reference CPU backend: buffers are ArrayBuffers; kernels run synchronously on the calling
 * thread, so reads are immediate (the only backend with `readSync`).
 */
import { BackendError, type Backend, type BackendBuffer, type BackendCapabilities, type BackendMemoryStats } from '@ring-linear/core';

/** Storage size of a buffer: rounded up to 8 bytes so every dtype view is aligned and never empty. */
const capacityOf = (byteLength: number) => Math.max(8, Math.ceil(byteLength / 8) * 8);

export class CpuBuffer implements BackendBuffer {
  readonly bytes: Uint8Array;
  freed = false;
  /** `storage` (from the pool, already zeroed) must have capacityOf(byteLength) bytes. */
  constructor(readonly byteLength: number, storage?: ArrayBuffer) {
    this.bytes = new Uint8Array(storage ?? new ArrayBuffer(capacityOf(byteLength)), 0, byteLength);
  }
}

/**
 * Freed storage kept for reuse, by capacity. A training or sampling step allocates the same sizes
 * every time; reusing them avoids what a fresh ArrayBuffer costs: zero-filled pages faulted in on
 * first write (inside the kernels: it made elementwise kernels ~2x slower), and the garbage
 * collections that external-memory growth triggers. Reused storage is zeroed, so a buffer always
 * starts as a fresh one would. Bounded: buffers above MAX_POOLED_BUFFER and anything past
 * MAX_POOLED_BYTES in total are left to the garbage collector.
 */
const MAX_POOLED_BYTES = 256 * 1024 * 1024;
const MAX_POOLED_BUFFER = 64 * 1024 * 1024;
/** Smaller buffers are cheap to allocate fresh (V8 keeps them on its own heap). */
const MIN_POOLED_BUFFER = 4096;

class StoragePool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  bytes = 0;

  take(capacity: number): ArrayBuffer | undefined {
    if (capacity < MIN_POOLED_BUFFER) return undefined;
    const list = this.free.get(capacity);
    const ab = list?.pop();
    if (!ab) return undefined;
    this.bytes -= capacity;
    new Uint8Array(ab).fill(0);
    return ab;
  }

  give(ab: ArrayBuffer): void {
    const capacity = ab.byteLength;
    if (capacity < MIN_POOLED_BUFFER || capacity > MAX_POOLED_BUFFER || this.bytes + capacity > MAX_POOLED_BYTES) return;
    let list = this.free.get(capacity);
    if (!list) this.free.set(capacity, (list = []));
    list.push(ab);
    this.bytes += capacity;
  }

  clear(): void {
    this.free.clear();
    this.bytes = 0;
  }
}

export class CpuBackend implements Backend {
  readonly name: string = 'cpu';
  readonly capabilities: BackendCapabilities = {
    device: 'CPU (JavaScript, single thread)',
    nativeDTypes: ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2', 'i32', 'u8', 'bool'],
    syncRead: true,
    features: [],
  };
  private buffers = 0;
  private bytesInUse = 0;
  private disposed = false;
  private readonly pool = new StoragePool();

  allocate(byteLength: number): CpuBuffer {
    if (this.disposed) throw new BackendError('cpu backend was disposed');
    if (!Number.isInteger(byteLength) || byteLength < 0) throw new BackendError(`cpu: allocate expected a non-negative integer byte length, got ${byteLength}`);
    this.buffers++;
    this.bytesInUse += byteLength;
    return new CpuBuffer(byteLength, this.pool.take(capacityOf(byteLength)));
  }

  write(buffer: BackendBuffer, data: ArrayBufferView, byteOffset = 0): void {
    const b = this.own(buffer, 'write');
    const src = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (byteOffset + src.byteLength > b.byteLength) {
      throw new BackendError(`cpu: write of ${src.byteLength} bytes at offset ${byteOffset} overflows a ${b.byteLength}-byte buffer`);
    }
    b.bytes.set(src, byteOffset);
  }

  readSync(buffer: BackendBuffer, byteOffset = 0, byteLength?: number): Uint8Array {
    const b = this.own(buffer, 'read');
    const n = byteLength ?? b.byteLength - byteOffset;
    return b.bytes.slice(byteOffset, byteOffset + n);
  }

  async read(buffer: BackendBuffer, byteOffset = 0, byteLength?: number): Promise<Uint8Array> {
    return this.readSync(buffer, byteOffset, byteLength);
  }

  copy(src: BackendBuffer, srcOffset: number, dst: BackendBuffer, dstOffset: number, byteLength: number): void {
    const s = this.own(src, 'copy');
    const d = this.own(dst, 'copy');
    d.bytes.set(s.bytes.subarray(srcOffset, srcOffset + byteLength), dstOffset);
  }

  free(buffer: BackendBuffer): void {
    const b = this.own(buffer, 'free');
    b.freed = true;
    this.buffers--;
    this.bytesInUse -= b.byteLength;
    this.pool.give(b.bytes.buffer as ArrayBuffer);
  }

  async synchronize(): Promise<void> {}

  memoryStats(): BackendMemoryStats {
    return { buffers: this.buffers, bytesInUse: this.bytesInUse, bytesCached: this.pool.bytes };
  }

  dispose(): void {
    this.disposed = true;
    this.pool.clear();
  }

  private own(buffer: BackendBuffer, what: string): CpuBuffer {
    if (!(buffer instanceof CpuBuffer)) throw new BackendError(`cpu: ${what} got a buffer from another backend`);
    if (buffer.freed) throw new BackendError(`cpu: ${what} of a freed buffer`);
    return buffer;
  }
}
