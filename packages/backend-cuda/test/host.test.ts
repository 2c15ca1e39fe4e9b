/**
 * Host-side logic of the CUDA backend, no GPU and no FFI: library search order, allocator size
 * classes and stream-ordered reuse (fake device), kernel cache keys and atomic writes, argument
 * marshalling layout, stride planning, the cuBLASLt row/column-major mapping (checked against a
 * column-major reference GEMM written here), reduction and matmul planning, op coverage.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getOpDef, listKernels, stridesOf } from '@ring-linear/core';
import '@ring-linear/backend-cpu';
import '../src/index.js';
import { findIncludeDir, libraryCandidates } from '../src/runtime/libs.js';
import { CachingAllocator, sizeClass } from '../src/memory/allocator.js';
import { cacheKey, CubinDiskCache, defaultCacheDir } from '../src/kernels/cache.js';
import { argLayout, ArgPack, FakeNativeMemory, parseSignature } from '../src/runtime/args.js';
import { broadcastStrides, coalesce, encodeStrides, fitsInt32, offsetsAt, STRIDES_BYTES } from '../src/ops/strides.js';
import { CUBLAS_OP_T, planGemm, type GemmProblem } from '../src/runtime/cublaslt.js';
import { planReduction, reductionView } from '../src/ops/reduce.js';
import { matmulGeometry } from '../src/ops/matmul.js';
import { allModuleSpecs } from '../src/kernels/sources.js';
import { archFor, compileOptions } from '../src/kernels/modules.js';

const SEED = Date.now() % 100000;
console.log(`[backend-cuda] host test seed ${SEED}`);
let s = SEED;
const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s / 2 ** 32);

describe('library search order', () => {
  const files = new Set(['/opt/cuda13/lib64/libnvrtc.so.13', '/opt/cuda13/lib64/libnvrtc.so.12', '/usr/local/cuda/lib64/libnvrtc.so.13', '/x/libnvrtc.so.12', '/usr/lib/x86_64-linux-gnu/libcuda.so.1']);
  const dirs = new Set(['/opt/cuda13/lib64', '/usr/local/cuda/lib64', '/usr/lib/x86_64-linux-gnu']);
  const exists = (p: string) => files.has(p);
  const isDir = (p: string) => dirs.has(p);

  it('tries explicit paths, RING_LINEAR_CUDA_LIBS, CUDA_PATH, sonames, then the toolkit dir; newest soname first', () => {
    const c = libraryCandidates('nvrtc', { paths: { nvrtc: '/my/libnvrtc.so' } }, { RING_LINEAR_CUDA_LIBS: '/x/libnvrtc.so.12:/opt/cuda13/lib64', CUDA_PATH: '/usr/local/cuda' }, exists, isDir);
    expect(c).toEqual([
      '/my/libnvrtc.so',
      '/x/libnvrtc.so.12',
      '/opt/cuda13/lib64/libnvrtc.so.13',
      '/opt/cuda13/lib64/libnvrtc.so.12',
      '/usr/local/cuda/lib64/libnvrtc.so.13',
      'libnvrtc.so.13',
      'libnvrtc.so.12',
      'libnvrtc.so',
    ]);
  });

  it('takes the driver from the loader first and never from a stubs directory', () => {
    const c = libraryCandidates('cuda', {}, { RING_LINEAR_CUDA_LIBS: '/usr/local/cuda/lib64/stubs', CUDA_PATH: '/usr/local/cuda' }, exists, isDir);
    expect(c).toEqual(['libcuda.so.1', 'libcuda.so', '/usr/lib/x86_64-linux-gnu/libcuda.so.1']);
  });

  it('ignores files of other libraries in the override list', () => {
    const c = libraryCandidates('cublasLt', {}, { RING_LINEAR_CUDA_LIBS: '/x/libnvrtc.so.12' }, exists, isDir);
    expect(c[0]).toBe('libcublasLt.so.13');
  });

  it('finds the include dir holding cuda_bf16.h', () => {
    const inc = new Set(['/opt/cuda13/include/cuda_bf16.h', '/usr/local/cuda/include/cuda_bf16.h']);
    expect(findIncludeDir({}, '/opt/cuda13/lib64/libnvrtc.so.13', {}, (p) => inc.has(p))).toBe('/opt/cuda13/include');
    expect(findIncludeDir({}, 'libnvrtc.so.13', { RING_LINEAR_CUDA_INCLUDE: '/nope' }, (p) => inc.has(p))).toBe('/usr/local/cuda/include');
    expect(findIncludeDir({}, null, {}, () => false)).toBeNull();
  });
});

describe('caching allocator', () => {
  function fake() {
    let next = 0x100000;
    const live = new Map<number, number>();
    const waits: [bigint, bigint][] = [];
    let limit = Infinity;
    const mem = {
      alloc: (n: number) => {
        const used = [...live.values()].reduce((a, b) => a + b, 0);
        if (used + n > limit) throw new Error('out of memory');
        const p = next;
        next += n + 4096;
        live.set(p, n);
        return p;
      },
      free: (p: number) => {
        if (!live.delete(p)) throw new Error('bad free');
      },
    };
    const alloc = new CachingAllocator(mem, { waitFor: (c, p) => waits.push([c, p]) });
    return { alloc, live, waits, setLimit: (n: number) => (limit = n) };
  }

  it('rounds to 512 bytes below 1 MiB and to eighths of a power of two above', () => {
    expect(sizeClass(0)).toBe(0);
    expect(sizeClass(1)).toBe(512);
    expect(sizeClass(513)).toBe(1024);
    expect(sizeClass(2 ** 20)).toBe(2 ** 20);
    expect(sizeClass(2 ** 20 + 1)).toBe(2 ** 20 + 2 ** 17);
    expect(sizeClass(3_000_000)).toBe(3_145_728);
    for (let i = 0; i < 200; i++) {
      const n = Math.floor(rand() * 2 ** 34);
      const c = sizeClass(n);
      expect(c).toBeGreaterThanOrEqual(n);
      expect(c).toBeLessThanOrEqual(Math.max(n * 1.125, n + 511) + 1);
    }
    expect(() => sizeClass(-1)).toThrow(/non-negative integer/);
  });

  it('reuses a freed block of the same class on the same stream without waiting', () => {
    const { alloc, live, waits } = fake();
    const a = alloc.allocate(1000, 1n);
    alloc.release(a);
    const b = alloc.allocate(900, 1n);
    expect(b.ptr).toBe(a.ptr);
    expect(waits).toEqual([]);
    expect(live.size).toBe(1);
    expect(alloc.stats()).toMatchObject({ buffers: 1, bytesInUse: 900, cacheHits: 1, deviceAllocs: 1 });
  });

  it('makes the new stream wait for the old one when a block changes streams', () => {
    const { alloc, waits } = fake();
    const a = alloc.allocate(5000, 1n);
    alloc.release(a);
    const b = alloc.allocate(5000, 2n);
    expect(b.ptr).toBe(a.ptr);
    expect(waits).toEqual([[2n, 1n]]);
  });

  it('prefers a block last used on the requesting stream', () => {
    const { alloc, waits } = fake();
    const a = alloc.allocate(100, 1n);
    const c = alloc.allocate(100, 2n);
    alloc.release(c);
    alloc.release(a);
    expect(alloc.allocate(100, 2n).ptr).toBe(c.ptr);
    expect(waits).toEqual([]);
  });

  it('empties the cache and retries once when the device is out of memory', () => {
    const { alloc, live, setLimit } = fake();
    const a = alloc.allocate(4096, 1n);
    alloc.release(a);
    setLimit(8192);
    const b = alloc.allocate(8192, 1n);
    expect(live.size).toBe(1);
    expect(alloc.stats().bytesCached).toBe(0);
    alloc.release(b);
    setLimit(0);
    expect(() => alloc.allocate(1 << 20, 1n)).toThrow(/out of memory/);
  });

  it('keeps private (graph) pools apart until released', () => {
    const { alloc } = fake();
    const pool = alloc.beginPrivatePool();
    const g = alloc.allocate(2048, 1n);
    alloc.endPrivatePool();
    alloc.release(g);
    const other = alloc.allocate(2048, 1n);
    expect(other.ptr).not.toBe(g.ptr); // the graph's block is not handed out
    alloc.releasePrivatePool(pool);
    expect(alloc.allocate(2048, 1n).ptr).toBe(g.ptr);
    expect(() => alloc.release(other) ?? alloc.release(other)).toThrow(/double free/);
  });
});

describe('kernel cache', () => {
  const base = { source: 'k', headers: { 'a.cuh': '1', 'b.cuh': '2' }, arch: 'sm_90a', nvrtcVersion: [13, 0] as const, options: ['-std=c++17'] };

  it('keys change with source, headers, arch, NVRTC version and options, not header order', () => {
    const k = cacheKey(base);
    expect(k).toMatch(/^[0-9a-f]{64}$/);
    expect(cacheKey({ ...base, headers: { 'b.cuh': '2', 'a.cuh': '1' } })).toBe(k);
    for (const v of [
      { source: 'k2' }, { headers: { 'a.cuh': '1', 'b.cuh': '3' } }, { arch: 'sm_80' }, { nvrtcVersion: [12, 8] as const }, { options: ['-std=c++20'] },
    ]) {
      expect(cacheKey({ ...base, ...v })).not.toBe(k);
    }
  });

  it('writes atomically and reads back; an unwritable directory warns once and disables caching', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rl-cache-'));
    const c = new CubinDiskCache(dir);
    expect(c.get('abc')).toBeNull();
    c.put('abc', new Uint8Array([1, 2, 3]));
    expect([...c.get('abc')!]).toEqual([1, 2, 3]);
    expect(readdirSync(dir)).toEqual(['abc.cubin']);
    const ro = mkdtempSync(join(tmpdir(), 'rl-cache-ro-'));
    writeFileSync(join(ro, 'blocker'), 'x');
    chmodSync(ro, 0o500);
    const warnings: string[] = [];
    const c2 = new CubinDiskCache(join(ro, 'blocker', 'sub'), (m) => warnings.push(m));
    c2.put('k', new Uint8Array([1]));
    c2.put('k2', new Uint8Array([1]));
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toMatch(/not writable/);
    expect(readFileSync(join(ro, 'blocker'), 'utf8')).toBe('x');
  });

  it('places the cache from RING_LINEAR_CUDA_CACHE, XDG_CACHE_HOME or ~/.cache', () => {
    expect(defaultCacheDir({ RING_LINEAR_CUDA_CACHE: '/c' }, '/home/u')).toBe('/c');
    expect(defaultCacheDir({ RING_LINEAR_CUDA_CACHE: 'off' }, '/home/u')).toBeNull();
    expect(defaultCacheDir({ XDG_CACHE_HOME: '/x' }, '/home/u')).toBe('/x/ring-linear/cuda');
    expect(defaultCacheDir({}, '/home/u')).toBe('/home/u/.cache/ring-linear/cuda');
  });

  it('targets the device architecture', () => {
    expect(archFor([9, 0])).toBe('sm_90a');
    expect(archFor([8, 0])).toBe('sm_80');
    expect(archFor([12, 0])).toBe('sm_120');
    expect(compileOptions('sm_90a', '/usr/local/cuda/include')).toEqual(
      expect.arrayContaining(['--gpu-architecture=sm_90a', '-default-device', '-std=c++17', '-I/usr/local/cuda/include']),
    );
  });
});

describe('kernel argument marshalling', () => {
  it('lays out slots 8-aligned (structs at their alignment) with the pointer array after them', () => {
    const kinds = parseSignature('ptr,i32,f32,i64,struct360:8,f64,u32');
    const l = argLayout(kinds);
    expect(l.offsets).toEqual([0, 8, 16, 24, 32, 392, 400]);
    expect(l.pointersAt).toBe(408);
    expect(l.bytes).toBe(408 + 7 * 8);
    expect(() => parseSignature('ptr,bogus')).toThrow(/unknown kernel argument kind 'bogus'/);
  });

  it('writes values little-endian into preallocated slots whose addresses the pointer array holds', () => {
    const mem = new FakeNativeMemory();
    const pack = new ArgPack(parseSignature('ptr,i64,i32,u32,f32,f64,struct16:8'), mem);
    const block = [...mem.blocks.entries()][0]!;
    const dv = new DataView(block[1]);
    const l = argLayout(pack.kinds);
    for (let i = 0; i < pack.kinds.length; i++) expect(dv.getBigUint64(l.pointersAt + 8 * i, true)).toBe(block[0] + BigInt(l.offsets[i]!));
    expect(pack.params).toBe(block[0] + BigInt(l.pointersAt));
    const st = new Uint8Array(16).map((_, i) => i + 1);
    for (const p of [0x7f12_3456_7890, 2 ** 33 + 5]) {
      pack.set([p, -3, -5, 0xffffffff, 1.5, Math.PI, st]);
      expect(dv.getBigUint64(0, true)).toBe(BigInt(p));
      expect(dv.getBigInt64(8, true)).toBe(-3n);
      expect(dv.getInt32(16, true)).toBe(-5);
      expect(dv.getUint32(24, true)).toBe(0xffffffff);
      expect(dv.getFloat32(32, true)).toBe(1.5);
      expect(dv.getFloat64(40, true)).toBe(Math.PI);
      expect([...pack.slot(6)]).toEqual([...st]);
    }
    pack.set([7n, -(2n ** 40n), 0, 0, 0, 0, st]);
    expect(dv.getBigInt64(0, true)).toBe(7n);
    expect(dv.getBigInt64(8, true)).toBe(-(2n ** 40n));
    expect(() => pack.set([1, 2])).toThrow(/expects 7 arguments, got 2/);
    expect(() => pack.set([0, 0, 0, 0, 0, 0, new Uint8Array(3)])).toThrow(/needs 16 bytes, got 3/);
    pack.dispose();
    expect(mem.blocks.size).toBe(0);
  });
});

describe('stride planning', () => {
  it('coalesces broadcast operands and matches brute-force offsets', () => {
    const out = [3, 4, 5];
    const plan = coalesce(out, [broadcastStrides([3, 4, 5], out), broadcastStrides([5], out)]);
    expect(plan.shape).toEqual([12, 5]);
    expect(plan.strides).toEqual([[5, 1], [0, 1]]);
    for (let t = 0; t < 30; t++) {
      const rank = 1 + Math.floor(rand() * 5);
      const shape = Array.from({ length: rank }, () => 1 + Math.floor(rand() * 4));
      const inp = shape.map((d) => (rand() < 0.4 ? 1 : d)).slice(Math.floor(rand() * rank));
      const perm = shape.map((_, i) => i).sort(() => rand() - 0.5);
      const xs = stridesOf(perm.map((p) => shape[p]!));
      const src = shape.map((_, d) => xs[perm.indexOf(d)]!); // a transposed source
      const p = coalesce(shape, [broadcastStrides(inp, shape), src], [0, 3]);
      const ia = stridesOf(inp);
      const n = shape.reduce((a, d) => a * d, 1);
      for (let i = 0; i < n; i++) {
        let rem = i;
        const idx = shape.map(() => 0);
        for (let d = rank - 1; d >= 0; d--) {
          idx[d] = rem % shape[d]!;
          rem = Math.floor(rem / shape[d]!);
        }
        const lead = rank - inp.length;
        const wantA = inp.reduce((a, dim, k) => a + (dim === 1 ? 0 : idx[k + lead]! * ia[k]!), 0);
        const wantB = 3 + idx.reduce((a, v, d) => a + v * src[d]!, 0);
        expect(offsetsAt(p, i)).toEqual([wantA, wantB]);
      }
    }
  });

  it('encodes the 360-byte Strides struct and picks 32-bit indexing only when offsets fit', () => {
    const plan = { shape: [4, 5], strides: [[5, 1], [0, -1]], offsets: [2, 4] };
    const bytes = encodeStrides(plan, 20);
    expect(bytes.byteLength).toBe(STRIDES_BYTES);
    const dv = new DataView(bytes.buffer);
    expect(dv.getInt32(0, true)).toBe(2);
    expect(dv.getInt32(4, true)).toBe(1);
    expect(dv.getBigInt64(8 + 8, true)).toBe(5n);
    expect(dv.getBigInt64(72 + 64 + 8, true)).toBe(-1n);
    expect(dv.getBigInt64(328 + 8, true)).toBe(4n);
    expect(fitsInt32({ shape: [2 ** 20, 2 ** 12], strides: [[2 ** 12, 1]], offsets: [0] }, 2 ** 32)).toBe(false);
    expect(fitsInt32({ shape: [2], strides: [[2 ** 31]], offsets: [0] }, 2)).toBe(false);
    expect(() => encodeStrides({ shape: new Array(9).fill(2), strides: [new Array(9).fill(1)], offsets: [0] }, 512)).toThrow(/at most 8 dimensions/);
  });
});

/** Column-major GEMM as cuBLAS defines it: D = op(A) op(B), op = N or T. */
function colMajorGemm(p: ReturnType<typeof planGemm>, A: Float64Array, B: Float64Array, batch: number): Float64Array {
  const { first: a, second: b, out } = p;
  const M = out.rows;
  const N = out.cols;
  const K = p.transa === CUBLAS_OP_T ? a.rows : a.cols;
  const D = new Float64Array(batch * out.stride || M * N);
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = p.transa === CUBLAS_OP_T ? A[t * a.stride + k + i * a.ld]! : A[t * a.stride + i + k * a.ld]!;
          const bv = p.transb === CUBLAS_OP_T ? B[t * b.stride + j + k * b.ld]! : B[t * b.stride + k + j * b.ld]!;
          s += av * bv;
        }
        D[t * out.stride + i + j * out.ld] = s;
      }
    }
  }
  return D;
}

describe('cuBLASLt mapping of row-major problems', () => {
  it('computes C = op(A) op(B) for every transpose combination and batch strides', () => {
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const m = 1 + Math.floor(rand() * 6), n = 1 + Math.floor(rand() * 6), k = 1 + Math.floor(rand() * 6), batch = 2;
      const A = Float64Array.from({ length: batch * m * k }, () => rand() - 0.5);
      const B = Float64Array.from({ length: k * n }, () => rand() - 0.5);
      const prob: GemmProblem = { dtype: 'f32', transposeA: tA, transposeB: tB, m, n, k, batch, strideA: m * k, strideB: 0, strideC: m * n };
      const plan = planGemm(prob);
      // The first cuBLAS operand is B's buffer, the second A's.
      const D = colMajorGemm(plan, B, A, batch);
      for (let t = 0; t < batch; t++) {
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let want = 0;
            for (let q = 0; q < k; q++) {
              const av = tA ? A[t * m * k + q * m + i]! : A[t * m * k + i * k + q]!;
              const bv = tB ? B[j * k + q]! : B[q * n + j]!;
              want += av * bv;
            }
            expect(D[t * m * n + i * n + j]).toBeCloseTo(want, 12);
          }
        }
      }
    }
  });
});

describe('planning', () => {
  it('sees reductions as [outer, R, inner], permuting non-adjacent axes', () => {
    expect(reductionView([2, 3, 4], [2])).toEqual({ outer: 6, R: 4, inner: 1, perm: null });
    expect(reductionView([2, 3, 4], [1])).toEqual({ outer: 2, R: 3, inner: 4, perm: null });
    expect(reductionView([2, 3, 4], [0, 1])).toEqual({ outer: 1, R: 6, inner: 4, perm: null });
    expect(reductionView([2, 1, 3, 4], [0, 2])).toEqual({ outer: 1, R: 6, inner: 4, perm: null }); // size-1 dim ignored
    expect(reductionView([2, 3, 4], [0, 2])).toEqual({ outer: 3, R: 8, inner: 1, perm: [1, 0, 2] });
    expect(reductionView([5, 1], [1])).toEqual({ outer: 5, R: 1, inner: 1, perm: null });
    expect(reductionView([0, 3], [0])).toEqual({ outer: 1, R: 0, inner: 3, perm: null });
  });

  it('uses warps for short rows, blocks with chunking for long ones', () => {
    expect(planReduction(10000, 100, 1, 132).kind).toBe('warp');
    const full = planReduction(1, 2 ** 28, 1, 132);
    expect(full).toMatchObject({ kind: 'block', tx: 1, ty: 256 });
    expect(full.chunks).toBeGreaterThan(100);
    expect(full.chunk * full.chunks).toBeGreaterThanOrEqual(2 ** 28);
    const cols = planReduction(4, 1000, 3000, 132);
    expect(cols).toMatchObject({ kind: 'block', tx: 32, ty: 8, colBlocks: 94 });
    expect(planReduction(1, 0, 7, 132).chunks).toBe(1);
  });

  it('maps matmul batch broadcasting to strides, folding, or a copy', () => {
    expect(matmulGeometry([2, 3, 5, 7], [7, 4], false, false)).toMatchObject({ m: 5, n: 4, k: 7, batch: 6, foldM: true, bMode: 'single' });
    expect(matmulGeometry([2, 7, 5], [7, 4], true, false)).toMatchObject({ foldM: false, aMode: 'full', bMode: 'single' });
    expect(matmulGeometry([2, 1, 5, 7], [1, 3, 7, 4], false, false)).toMatchObject({ batch: 6, aMode: 'expand', bMode: 'expand' });
    expect(matmulGeometry([5, 7], [3, 4, 7, 2], false, false)).toMatchObject({ batch: 12, aMode: 'single', bMode: 'full' });
  });
});

describe('op coverage', () => {
  it("has a 'cuda' kernel for every core op the CPU backend implements", () => {
    // Fused ops of other packages (attention, moe) are registered on the CPU by name without
    // their definitions loaded here; they run through their composites on CUDA for now.
    const cpu = listKernels('cpu').filter((op) => getOpDef(op) !== undefined);
    expect(cpu.length).toBeGreaterThan(60);
    const cudaOps = new Set(listKernels('cuda'));
    const missing = cpu.filter((op) => !cudaOps.has(op));
    if (missing.length) console.log(`[backend-cuda] ops without a CUDA kernel: ${missing.join(', ')}`);
    expect(missing).toEqual([]);
  });

  it('generates uniquely named kernels in every module', () => {
    const names = new Set<string>();
    for (const spec of allModuleSpecs()) {
      for (const k of Object.keys(spec.kernels)) {
        expect(names.has(k)).toBe(false);
        names.add(k);
        expect(spec.body).toContain(` ${k}(`);
      }
    }
    expect(names.size).toBeGreaterThan(500);
  });
});
