/**
 * The reference CPU backend: buffers are ArrayBuffers; kernels run synchronously on the calling
 * thread, so reads are immediate (the only backend with `readSync`).
 */
import { BackendError, type Backend, type BackendBuffer, type BackendCapabilities, type BackendMemoryStats } from '@ring-linear/core';

export class CpuBuffer implements BackendBuffer {
  readonly bytes: Uint8Array;
  freed = false;
  constructor(readonly byteLength: number) {
    // Round up to 8 bytes so every dtype view is aligned and never empty-buffer special-cased.
    this.bytes = new Uint8Array(new ArrayBuffer(Math.max(8, Math.ceil(byteLength / 8) * 8)), 0, byteLength);
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

  allocate(byteLength: number): CpuBuffer {
    if (this.disposed) throw new BackendError('cpu backend was disposed');
    if (!Number.isInteger(byteLength) || byteLength < 0) throw new BackendError(`cpu: allocate expected a non-negative integer byte length, got ${byteLength}`);
    this.buffers++;
    this.bytesInUse += byteLength;
    return new CpuBuffer(byteLength);
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
  }

  async synchronize(): Promise<void> {}

  memoryStats(): BackendMemoryStats {
    return { buffers: this.buffers, bytesInUse: this.bytesInUse, bytesCached: 0 };
  }

  dispose(): void {
    this.disposed = true;
  }

  private own(buffer: BackendBuffer, what: string): CpuBuffer {
    if (!(buffer instanceof CpuBuffer)) throw new BackendError(`cpu: ${what} got a buffer from another backend`);
    if (buffer.freed) throw new BackendError(`cpu: ${what} of a freed buffer`);
    return buffer;
  }
}
