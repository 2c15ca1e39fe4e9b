// The CPU backend's storage pool (src/backend.ts): freed storage is reused for the same size,
// always handed out zeroed like a fresh ArrayBuffer, counted in bytesCached (not bytesInUse), and
// dropped by dispose().
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/index.js';

describe('CpuBackend storage pool', () => {
  it('reuses freed storage zeroed, and accounts for it as cached', () => {
    const be = new CpuBackend();
    const n = 64 * 1024 + 3; // capacity rounds up to a multiple of 8
    const a = be.allocate(n);
    a.bytes.fill(0xab);
    expect(be.memoryStats()).toEqual({ buffers: 1, bytesInUse: n, bytesCached: 0 });
    be.free(a);
    const cap = Math.ceil(n / 8) * 8;
    expect(be.memoryStats()).toEqual({ buffers: 0, bytesInUse: 0, bytesCached: cap });
    const b = be.allocate(n);
    expect(b.bytes.buffer).toBe(a.bytes.buffer); // the same storage, reused
    expect(b.bytes.byteLength).toBe(n);
    expect(b.bytes.every((x) => x === 0)).toBe(true);
    expect(new Uint8Array(b.bytes.buffer).every((x) => x === 0)).toBe(true); // the padding too
    expect(be.memoryStats()).toEqual({ buffers: 1, bytesInUse: n, bytesCached: 0 });
    // The freed handle stays unusable even though its storage lives on in `b`.
    expect(() => be.readSync(a)).toThrow(/freed/);
    be.free(b);
    be.dispose();
    expect(be.memoryStats().bytesCached).toBe(0);
  });

  it('another size gets fresh storage; small buffers are not pooled', () => {
    const be = new CpuBackend();
    const a = be.allocate(8192);
    be.free(a);
    const b = be.allocate(8200);
    expect(b.bytes.buffer).not.toBe(a.bytes.buffer);
    const small = be.allocate(100);
    be.free(small);
    expect(be.memoryStats().bytesCached).toBe(8192);
    const c = be.allocate(100);
    expect(c.bytes.buffer).not.toBe(small.bytes.buffer);
    be.dispose();
  });
});
