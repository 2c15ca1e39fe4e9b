/**
 * The real FFI layer (koffi declarations, out-parameters, argument marshalling, pinned reads,
 * event polling, cuBLASLt descriptors) against the host-memory mock libraries of test/mock.
 * Kernels do not run on the mock; their launches are recorded and checked instead. Data paths
 * that need no kernel (copies, fills, matmul through the mock cuBLASLt) are checked by value.
 */
import { existsSync, readdirSync } from 'node:fs';
import type { DType } from '@ring-linear/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildMockCuda, type MockLibs } from './mock/build.js';

const built = await buildMockCuda();
const skip = 'skip' in built ? built.skip : null;
if (skip) console.log(`[backend-cuda] mock FFI tests skipped: ${skip}`);
const libs = skip ? null : (built as MockLibs);

// Loaded after the environment points at the mock.
const core = await import('@ring-linear/core');
await import('@ring-linear/backend-cpu');
const cuda = await import('../src/index.js');
const koffi = skip ? null : ((await import('koffi')) as any).default;

function seeded(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const SEED = Date.now() % 100000;
console.log(`[backend-cuda] mock test seed ${SEED}`);
const rand = seeded(SEED);

describe.skipIf(!!skip)('CUDA backend on the mock driver', () => {
  let b: InstanceType<typeof cuda.CudaBackend>;
  let mock: Record<string, (...a: any[]) => any>;

  beforeAll(async () => {
    await core.initBackend('cpu');
    b = (await core.setBackend('cuda')) as InstanceType<typeof cuda.CudaBackend>;
    const lib = koffi.load(`${libs!.dir}/libcuda.so.1`);
    mock = {
      launches: lib.func('int mock_launches()'),
      allocs: lib.func('int mock_allocs()'),
      polls: lib.func('int mock_event_polls()'),
      lastKernel: lib.func('const char *mock_last_kernel()'),
      lastParams: lib.func('void *mock_last_params()'),
      lastDims: lib.func('void mock_last_dims(void *out)'),
      setLimit: lib.func('void mock_set_limit(size_t bytes)'),
      liveBytes: lib.func('size_t mock_live_bytes()'),
      gemms: koffi.load(`${libs!.dir}/libcublasLt.so.13`).func('int mock_gemms()'),
    };
  });

  it('reports availability with the device and the libraries found', async () => {
    const a = await cuda.cudaAvailability();
    expect(a.available).toBe(true);
    expect(a.reason).toMatch(/Mock GPU \(sm_90\), driver 13\.0/);
    expect(a.libraries!.cuda).toBe(`${libs!.dir}/libcuda.so.1`);
    expect(b.capabilities.device).toMatch(/^Mock GPU \(sm_90a, 80 GiB/);
    expect(b.arch).toBe('sm_90a');
  });

  it('writes and reads back bytes of every dtype exactly (pinned staging, polled event)', async () => {
    const polls0 = mock.polls();
    for (const dtype of core.DTYPES) {
      const n = 1 + Math.floor(rand() * 37);
      const bytes = new Uint8Array(n * core.bytesPerElement(dtype)).map(() => Math.floor(rand() * 256));
      const t = core.fromBytes(bytes, [n], dtype, b);
      expect(await t.bytes()).toEqual(bytes);
      t.dispose();
    }
    expect(mock.polls()).toBeGreaterThan(polls0); // the mock's events need two queries
  });

  it('reads a sub-range and rejects out-of-range reads and writes', async () => {
    const buf = b.allocate(16);
    b.write(buf, new Uint8Array([9, 8, 7, 6]), 4);
    expect([...(await b.read(buf, 4, 4))]).toEqual([9, 8, 7, 6]);
    await expect(b.read(buf, 10, 8)).rejects.toThrow(/read of 8 bytes at offset 10 from a 16-byte buffer/);
    expect(() => b.write(buf, new Uint8Array(8), 12)).toThrow(/overflows a 16-byte buffer/);
    b.free(buf);
    expect(() => b.free(buf)).toThrow(/free of a freed buffer/);
  });

  it('fills with the raw codes a cast gives (memset of 1, 2 and 4 bytes)', async () => {
    const cases: [DType, number, number][] = [['bf16', 2.5, 2.5], ['f16', -3.25, -3.25], ['f32', 0.1, Math.fround(0.1)], ['i32', -7.9, -7], ['u8', 300, 44], ['bool', 2, 1], ['f8e4m3', 500, NaN]];
    for (const [dtype, value, want] of cases) {
      const t = core.full([3, 5], value, dtype);
      expect(t.backend).toBe('cuda');
      const d = await t.data();
      for (const v of d) expect(Number.isNaN(want) ? Number.isNaN(v) : v === want).toBe(true);
      t.dispose();
    }
  });

  it('copies and casts to the same dtype with a device-to-device copy', async () => {
    const x = core.tensor([1, -2, 3.5], [3], 'f32', b);
    expect([...(await core.copy(x).data())]).toEqual([1, -2, 3.5]);
    expect([...(await core.runOp1('cast', [x], { dtype: 'f32' }).data())]).toEqual([1, -2, 3.5]);
  });

  it('computes matmul through cuBLASLt with the right layouts for every transpose and batch layout', async () => {
    const cases: [number[], number[], boolean, boolean][] = [
      [[5, 7], [7, 3], false, false],
      [[7, 5], [7, 3], true, false],
      [[5, 7], [3, 7], false, true],
      [[7, 5], [3, 7], true, true],
      [[2, 5, 7], [2, 7, 3], false, false],
      [[2, 3, 5, 7], [7, 4], false, false], // batch folded into M
      [[2, 7, 5], [7, 4], true, false], // b broadcast with stride 0
      [[5, 7], [4, 7, 3], false, false], // a broadcast with stride 0
      [[1, 1], [1, 1], false, false],
    ];
    const gemms0 = mock.gemms();
    for (const [as, bs, tA, tB] of cases) {
      const av = Float32Array.from({ length: as.reduce((p, d) => p * d, 1) }, () => rand() * 2 - 1);
      const bv = Float32Array.from({ length: bs.reduce((p, d) => p * d, 1) }, () => rand() * 2 - 1);
      const want = await core.matmul(core.tensor(av, as, 'f32', core.findBackend('cpu')), core.tensor(bv, bs, 'f32', core.findBackend('cpu')), { transposeA: tA, transposeB: tB }).data();
      const got = await core.matmul(core.tensor(av, as, 'f32', b), core.tensor(bv, bs, 'f32', b), { transposeA: tA, transposeB: tB }).data();
      expect(got.length).toBe(want.length);
      for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 5);
    }
    expect(mock.gemms() - gemms0).toBe(cases.length);
  });

  it('fills the output with zeros when K is 0', async () => {
    const y = core.matmul(core.tensor(new Float32Array(0), [3, 0], 'f32', b), core.tensor(new Float32Array(0), [0, 2], 'f32', b));
    expect([...(await y.data())]).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('marshals kernel arguments: pointers, i64 and the by-value Strides struct', async () => {
    const a = core.tensor(Float32Array.from({ length: 20 }, (_, i) => i), [4, 5], 'f32', b);
    const c = core.tensor(Float32Array.from({ length: 20 }, (_, i) => -i), [4, 5], 'f32', b);
    const n0 = mock.launches();
    const y = core.add(a, c);
    expect(mock.launches()).toBe(n0 + 1);
    expect(mock.lastKernel()).toBe('binary_add_f32_contig');
    const params = mock.lastParams() as bigint;
    const slot = (i: number) => koffi.decode(params, i * 8, 'void *') as bigint;
    expect(Number(koffi.decode(slot(0), 'uint64_t'))).toBe(cuda.devicePointer(a));
    expect(Number(koffi.decode(slot(1), 'uint64_t'))).toBe(cuda.devicePointer(c));
    expect(Number(koffi.decode(slot(2), 'uint64_t'))).toBe(cuda.devicePointer(y));
    expect(Number(koffi.decode(slot(3), 'int64_t'))).toBe(20);
    const dims = new Uint32Array(6);
    mock.lastDims(dims);
    expect([...dims]).toEqual([1, 1, 1, 256, 1, 1]);

    // Broadcast: [4,5] + [5] coalesces to rank 2 with a zero stride for the row operand.
    const r = core.tensor([1, 2, 3, 4, 5], [5], 'f32', b);
    core.add(a, r);
    expect(mock.lastKernel()).toBe('binary_add_f32_bc');
    const sp = mock.lastParams() as bigint;
    const st = koffi.decode(sp, 4 * 8, 'void *') as bigint;
    const view = new DataView(koffi.view(st, 360));
    expect(view.getInt32(0, true)).toBe(2); // rank
    expect(view.getInt32(4, true)).toBe(1); // 32-bit indexing
    expect([view.getBigInt64(8, true), view.getBigInt64(16, true)]).toEqual([4n, 5n]);
    expect([view.getBigInt64(72, true), view.getBigInt64(80, true)]).toEqual([5n, 1n]); // a
    expect([view.getBigInt64(136, true), view.getBigInt64(144, true)]).toEqual([0n, 1n]); // b
  });

  it('compiles a module once and then loads it from the disk cache', async () => {
    const x = core.tensor([1, 2, 3], [3], 'bf16', b);
    core.exp(x);
    const key = b.modules.keyOf(cuda.allModuleSpecs().find((s) => s.key === 'unary.bf16')!);
    expect(existsSync(`${libs!.cacheDir}/${key}.cubin`)).toBe(true);
    expect(readdirSync(libs!.cacheDir).some((f) => f.endsWith('.tmp'))).toBe(false);
    const compiled = b.modules.compiles;
    const hits = b.diskCache.hits;
    // A fresh manager (as a new process would have) reads the cubin instead of compiling.
    const { ModuleManager } = await import('../src/kernels/modules.js');
    const m2 = new ModuleManager(b.rt.driver, b.rt.nvrtc, b.diskCache, b.native, b, b.arch, b.rt.includeDir, (await import('../src/kernels/modules.js')).findKernelDir());
    m2.kernel(cuda.allModuleSpecs().find((s) => s.key === 'unary.bf16')!, 'unary_exp_bf16');
    expect(b.diskCache.hits).toBe(hits + 1);
    expect(b.modules.compiles).toBe(compiled);
    m2.dispose();
  });

  it('precompiles every module through the async NVRTC path', async () => {
    const n = await b.precompile(4);
    expect(n).toBeGreaterThan(10);
    expect(await b.precompile(4)).toBe(0);
  });

  it('reports NVRTC compile errors with the log', () => {
    const spec = { key: 'broken', includes: ['common.cuh'], body: '#error broken on purpose\n', kernels: { k: [] } };
    expect(() => b.kernel(spec, 'k')).toThrow(/NVRTC failed to compile 'broken.cu':\n.*asked to fail/);
  });

  it('reuses freed blocks, counts bytes, and empties the cache', () => {
    const s0 = b.allocatorStats();
    const x = core.zeros([1000], 'f32');
    const s1 = b.allocatorStats();
    expect(s1.buffers).toBe(s0.buffers + 1);
    expect(s1.bytesInUse - s0.bytesInUse).toBe(4000);
    x.dispose();
    const allocs = mock.allocs();
    const y = core.zeros([990], 'f32'); // same 512-byte size class
    expect(mock.allocs()).toBe(allocs);
    y.dispose();
    b.emptyCache();
    expect(b.memoryStats().bytesCached).toBe(0);
  });

  it('frees the cache and retries when the device runs out of memory', () => {
    const keep = core.zeros([1 << 20], 'u8');
    keep.dispose(); // 1 MiB now cached
    mock.setLimit(BigInt(Number(mock.liveBytes()) + 2 * 2 ** 20)); // 2 MiB of headroom: a 3 MiB block needs the cache
    try {
      const big = core.zeros([3 * 2 ** 20], 'u8');
      expect(b.memoryStats().bytesCached).toBe(0);
      big.dispose();
      mock.setLimit(BigInt(b.allocatorStats().bytesReservedInUse + 1024));
      expect(() => core.zeros([64 << 20], 'u8')).toThrow(/CUDA_ERROR_OUT_OF_MEMORY/);
    } finally {
      mock.setLimit(BigInt(2) ** BigInt(40));
    }
  });

  it('captures a graph: writes inside use pinned copies, replays launch the graph', async () => {
    const x = core.tensor([1, 2, 3], [3], 'f32', b);
    const { graph, result } = cuda.captureGraph(() => core.mul(x, 2)); // the scalar 2 is written during capture
    expect(result.shape).toEqual([3]);
    const n0 = mock.launches();
    graph.launch();
    graph.launch();
    expect(mock.launches()).toBe(n0 + 2);
    const reading = cuda.captureGraph(() => x.data());
    await expect(reading.result).rejects.toThrow(/cannot read data back while a CUDA graph is being captured/);
    reading.graph.dispose();
    graph.dispose();
    expect(() => graph.launch()).toThrow(/disposed graph/);
  });

  it('keeps constant and pointer tables: one upload per distinct content, the bytes on the device, temps while capturing', () => {
    const view = (p: number, n: number) => new Uint8Array(koffi.view(BigInt(p), n) as ArrayBuffer).slice();
    const allocs0 = mock.allocs();
    const data = Float32Array.from({ length: 5 }, () => rand());
    const t1 = b.constantTable('test:five', () => data);
    const t2 = b.constantTable('test:five', () => { throw new Error('made twice'); });
    expect(t2.ptr).toBe(t1.ptr);
    expect([t1.temp, t2.temp]).toEqual([null, null]);
    expect(Array.from(new Float32Array(view(t1.ptr, 20).buffer))).toEqual(Array.from(data));
    // Pointer tables: the same addresses give the same table; other addresses another; the bytes are the addresses.
    const ptrs = Array.from({ length: 37 }, () => 0x7f0000000000 + Math.floor(rand() * 2 ** 30) * 16);
    const p1 = b.pointerTable(ptrs);
    expect(b.pointerTable([...ptrs]).ptr).toBe(p1.ptr);
    const other = [...ptrs];
    other[36] = other[36]! + 16;
    const p3 = b.pointerTable(other);
    expect(p3.ptr).not.toBe(p1.ptr);
    const words = new BigUint64Array(view(p3.ptr, 8 * 37).buffer);
    expect(Array.from(words, Number)).toEqual(other);
    expect(mock.allocs() - allocs0).toBe(3); // three distinct tables, outside the caching allocator
    // While capturing: not cached (the upload would only run at replay); a temp the caller releases.
    const { graph, result } = cuda.captureGraph(() => {
      const t = b.pointerTable(ptrs.map((p) => p + 32));
      if (t.temp) b.releaseTemp(t.temp); // as an op does after its launches
      return t.temp !== null;
    });
    expect(result).toBe(true);
    graph.dispose();
    expect(b.pointerTable(ptrs.map((p) => p + 32)).temp).toBeNull(); // cached now, outside a capture
  });

  it('copies rows with one 2-D copy (copyRows) and checks ranges', async () => {
    const src = b.allocate(400), dst = b.allocate(1000);
    const sb = Uint8Array.from({ length: 400 }, () => Math.floor(rand() * 256));
    const db = Uint8Array.from({ length: 1000 }, () => Math.floor(rand() * 256));
    b.write(src, sb);
    b.write(dst, db);
    b.copyRows(src, 3, 70, dst, 11, 190, 52, 5); // 5 rows of 52 bytes: strided on both sides
    const want = db.slice();
    for (let r = 0; r < 5; r++) want.set(sb.subarray(3 + r * 70, 3 + r * 70 + 52), 11 + r * 190);
    expect(Array.from(await b.read(dst))).toEqual(Array.from(want));
    expect(() => b.copyRows(src, 0, 70, dst, 0, 190, 52, 6)).toThrow(/copyRows of 6 rows of 52 bytes out of range \(source 400 bytes, reaching 402/);
    expect(() => b.copyRows(src, 0, 40, dst, 0, 190, 52, 2)).toThrow(/strides >= rowBytes/);
    b.free(src);
    b.free(dst);
  });

  it('rejects buffers of another backend', () => {
    const t = core.tensor([1], [1], 'f32', core.findBackend('cpu'));
    expect(() => b.write(t.info().buffer, new Uint8Array(4))).toThrow(/buffer from another backend/);
  });
});

describe.skipIf(!!skip)('koffi stacks', () => {
  it('gives native calls (sync and async) a 16 MiB stack: NVRTC needs deep stacks', async () => {
    const { importKoffi, KOFFI_STACK_BYTES } = await import('../src/runtime/ffi.js');
    const k = await importKoffi();
    expect(k.config().sync_stack_size).toBe(KOFFI_STACK_BYTES);
    expect(k.config().async_stack_size).toBe(KOFFI_STACK_BYTES);
  });
});
