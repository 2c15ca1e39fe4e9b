/**
 * Test helpers: the WebGPU backend (or a printed reason why it is unavailable, so suites skip
 * instead of passing), seeded random data, and CPU-vs-WebGPU comparison.
 */
import { BackendError, fromBytes, initBackend, setBackend, type Backend, type DType, type Tensor } from '@ring-linear/core';
import '@ring-linear/backend-cpu';
import '../src/index.js';
import type { WebGpuBackend } from '../src/backend.js';

let cached: Promise<{ gpu: WebGpuBackend | null; reason: string }> | null = null;

/** The initialized 'webgpu' backend, or null with the reason (printed once per file). */
export async function webgpu(): Promise<{ gpu: WebGpuBackend | null; reason: string }> {
  cached ??= initBackend('webgpu').then(
    async (b) => {
      // Tensors made without a backend go to the CPU (references run there).
      await setBackend('cpu');
      return { gpu: b as WebGpuBackend, reason: '' };
    },
    (err: unknown) => {
      const reason = err instanceof BackendError ? err.message : String(err);
      console.warn(`[backend-webgpu tests] SKIPPED: no WebGPU adapter: ${reason}`);
      return { gpu: null, reason };
    },
  );
  return cached;
}

export async function cpu(): Promise<Backend> {
  return initBackend('cpu');
}

/** mulberry32: a small seeded generator; the seed is printed by the caller. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function newSeed(label: string): number {
  const seed = (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) >>> 0;
  console.log(`[${label}] seed ${seed}`);
  return seed;
}

/** The same tensor (same storage bytes) on another backend. */
export async function copyTo(t: Tensor, b: Backend): Promise<Tensor> {
  return fromBytes(await t.bytes(), t.shape, t.dtype, b);
}

/** Bytes as an array of storage codes (u32 words / u16 / u8) for exact comparisons. */
export function codes(bytes: Uint8Array, dtype: DType): number[] {
  const buf = bytes.slice().buffer;
  switch (dtype) {
    case 'f32':
    case 'i32':
      return Array.from(new Uint32Array(buf));
    case 'f16':
    case 'bf16':
      return Array.from(new Uint16Array(buf));
    default:
      return Array.from(new Uint8Array(buf));
  }
}

/** Random host values for a dtype (never all zero): normal floats, small ints, coin flips. */
export function randomValues(r: () => number, n: number, dtype: DType, opts: { scale?: number; positive?: boolean } = {}): number[] {
  const out: number[] = [];
  const scale = opts.scale ?? 1;
  for (let i = 0; i < n; i++) {
    if (dtype === 'bool') out.push(r() < 0.5 ? 1 : 0);
    else if (dtype === 'u8') out.push(Math.floor(r() * 256));
    else if (dtype === 'i32') out.push(Math.floor((r() - 0.5) * 200));
    else {
      // Box-Muller normal
      const z = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
      out.push(opts.positive ? Math.abs(z * scale) + 0.05 : z * scale);
    }
  }
  if (n > 0 && !out.some((v) => v !== 0)) out[0] = dtype === "bool" || dtype === "u8" ? 1 : 0.5;
  return out;
}

/** Float comparison with NaN == NaN and equal infinities; returns the first few mismatches. */
export function mismatches(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number, max = 5): string[] {
  const bad: string[] = [];
  if (got.length !== want.length) return [`length ${got.length} vs ${want.length}`];
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (Number.isNaN(w) ? Number.isNaN(g) : g === w || Math.abs(g - w) <= atol + rtol * Math.abs(w)) continue;
    bad.push(`[${i}] got ${g} want ${w}`);
    if (bad.length >= max) break;
  }
  return bad;
}
