// The backend object itself: buffers, pool, ordering of writes against recorded work, reads at
// offsets, errors (no adapter, limits, device loss, disposal) and a clean Node.js exit.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BackendError, add, fromBytes, mul, runOp1, setBackend, tensor } from '@ring-linear/core';
import { createWebGpuBackend, sizeClass, WebGpuBackend } from '../src/index.js';
import { webgpu } from './helpers.js';

const { gpu, reason } = await webgpu();

describe('sizeClass', () => {
  it('rounds up to powers of two, then to eighths of the enclosing power of two', () => {
    expect([0, 1, 16, 17, 4096, 4097, 5000, 1 << 20, (1 << 20) + 1].map(sizeClass)).toEqual([
      16, 16, 16, 32, 4096, 4608, 5120, 1 << 20, (1 << 20) + (1 << 17),
    ]);
  });
});

describe('no adapter', () => {
  it('gives a BackendError that says so', async () => {
    const g = globalThis as { navigator?: unknown };
    const saved = Object.getOwnPropertyDescriptor(g, 'navigator');
    Object.defineProperty(g, 'navigator', { value: { gpu: { requestAdapter: async () => null } }, configurable: true, writable: true });
    try {
      await expect(createWebGpuBackend()).rejects.toThrow(/no WebGPU adapter is available from navigator\.gpu/);
      await expect(createWebGpuBackend()).rejects.toBeInstanceOf(BackendError);
    } finally {
      if (saved) Object.defineProperty(g, 'navigator', saved);
      else delete g.navigator;
    }
  });
});

describe.skipIf(!gpu)(`WebGpuBackend (${gpu?.capabilities.device ?? reason})`, () => {
  it('reports capabilities and counts buffers, bytes and pooled bytes', async () => {
    const b = gpu!;
    expect(b.capabilities.syncRead).toBe(false);
    expect(b.capabilities.nativeDTypes).toEqual(expect.arrayContaining(['f32', 'i32', 'u8', 'bool']));
    const before = b.memoryStats();
    const buf = b.allocate(1000);
    expect(b.memoryStats().buffers).toBe(before.buffers + 1);
    expect(b.memoryStats().bytesInUse).toBe(before.bytesInUse + 1000);
    b.free(buf);
    const after = b.memoryStats();
    expect(after.buffers).toBe(before.buffers);
    expect(after.bytesCached).toBeGreaterThanOrEqual(1024);
    expect(() => b.free(buf)).toThrow(/freed buffer/);
  });

  it('a write into a reused buffer does not disturb work recorded before it', async () => {
    const b = gpu!;
    const x = tensor(Float32Array.from({ length: 300 }, (_, i) => i + 1), [300], 'f32', b);
    const y = add(x, x); // recorded, not submitted
    x.dispose(); // x's buffer goes back to the pool while y's dispatch still reads it
    const z = tensor(Float32Array.from({ length: 300 }, () => -7), [300], 'f32', b); // likely the same buffer
    const w = mul(z, 2);
    const yv = await y.data();
    expect(Array.from(yv.subarray(0, 4))).toEqual([2, 4, 6, 8]);
    expect(yv[299]).toBe(600);
    expect(Array.from((await w.data()).subarray(0, 2))).toEqual([-14, -14]);
  });

  it('reads and writes at unaligned offsets and lengths; copies', async () => {
    const b = gpu!;
    const buf = b.allocate(23);
    b.write(buf, Uint8Array.from({ length: 23 }, (_, i) => i + 1));
    b.write(buf, Uint8Array.from([200, 201, 202]), 5); // unaligned partial write
    expect(Array.from(await b.read(buf, 3, 7))).toEqual([4, 5, 200, 201, 202, 9, 10]);
    const dst = b.allocate(23);
    b.write(dst, new Uint8Array(23));
    b.copy(buf, 1, dst, 2, 9); // unaligned: byte kernel
    b.copy(buf, 12, dst, 16, 4); // aligned: copyBufferToBuffer
    expect(Array.from(await b.read(dst))).toEqual([0, 0, 2, 3, 4, 5, 200, 201, 202, 9, 10, 0, 0, 0, 0, 0, 13, 14, 15, 16, 0, 0, 0]);
    expect(() => b.write(buf, new Uint8Array(30))).toThrow(BackendError);
    await expect(b.read(buf, 20, 10)).rejects.toThrow(/out of range/);
    b.free(buf);
    b.free(dst);
  });

  it('refuses buffers over maxBufferSize before enqueueing anything', async () => {
    const b = gpu!;
    expect(() => b.allocate(b.limits.maxBufferSize + 4)).toThrow(/maxBufferSize/);
    await setBackend('webgpu');
    try {
      const n = Math.floor(b.limits.maxBufferSize / 4) + 1;
      expect(() => runOp1('fill', [], { shape: [n], dtype: 'f32', value: 1 })).toThrow(/cannot allocate .* over the device's maxBufferSize/);
    } finally {
      await setBackend('cpu');
    }
  });

  it('refuses a binding over maxStorageBufferBindingSize with a clear error', async () => {
    // A second device with default limits (128 MiB bindings) keeps the test's allocation modest.
    const adapter = await gpu!.gpu!.requestAdapter();
    const device = await adapter!.requestDevice();
    const small = await createWebGpuBackend({ device });
    try {
      const big = small.limits.maxStorageBufferBindingSize + 1024;
      expect(big).toBeLessThanOrEqual(small.limits.maxBufferSize);
      const x = fromBytes(new Uint8Array(8), [2], 'f32', small);
      expect(() => runOp1('broadcastTo', [x], { shape: [big / 8, 2] })).toThrow(/maxStorageBufferBindingSize/);
    } finally {
      await small.dispose();
      device.destroy();
    }
  });

  it('device loss: later calls fail with a BackendError naming the loss', async () => {
    const adapter = await gpu!.gpu!.requestAdapter();
    const device = await adapter!.requestDevice();
    const lost = await createWebGpuBackend({ device });
    const x = tensor([1, 2, 3], [3], 'f32', lost);
    device.destroy();
    await device.lost;
    await new Promise((r) => setTimeout(r, 0));
    expect(() => add(x, x)).toThrow(/device was lost/);
    await expect(x.data()).rejects.toThrow(/device was lost/);
  });

  it('after dispose every call fails with a BackendError', async () => {
    const adapter = await gpu!.gpu!.requestAdapter();
    const device = await adapter!.requestDevice();
    const b = await createWebGpuBackend({ device });
    const x = tensor([1, 2], [2], 'f32', b);
    await b.dispose();
    expect(() => b.allocate(4)).toThrow(/disposed/);
    await expect(x.data()).rejects.toThrow(/disposed/);
    device.destroy();
    expect(b).toBeInstanceOf(WebGpuBackend);
  });

  it('a Node.js process that used the backend exits on its own after disposeBackend', () => {
    const child = fileURLToPath(new URL('./fixtures/exit_child.ts', import.meta.url));
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['--conditions=@ring-linear/source', '--import', 'tsx', child], {
      cwd: fileURLToPath(new URL('.', import.meta.url)),
      encoding: 'utf8',
      timeout: 30_000,
    });
    const seconds = (Date.now() - t0) / 1000;
    expect(r.error, `child did not exit within 30 s (${seconds.toFixed(1)} s): ${r.stderr}`).toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('result [2,4,6]');
    expect(r.stdout).toContain('done');
  });
});
