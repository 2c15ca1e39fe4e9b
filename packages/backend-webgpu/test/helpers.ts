/**
 * Test helpers: the WebGPU backend (or a printed reason why it is unavailable, so suites skip
 * instead of passing), seeded random data, and CPU-vs-WebGPU comparison.
 */
import { BackendError, fromBytes, initBackend, type Backend, type DType, type Tensor } from '@ring-linear/core';
import '@ring-linear/backend-cpu';
import '../src/index.js';
import type { WebGpuBackend } from '../src/backend.js';

let cached: Promise<{ gpu: WebGpuBackend | null; reason: string }> | null = null;

/** The initialized 'webgpu' backend, or null with the reason (printed once per file). */
export async function webgpu(): Promise<{ gpu: WebGpuBackend | null; reason: string }> {
  cached ??= initBackend('webgpu').then(
    (b) => ({ gpu: b as WebGpuBackend, reason: '' }),
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
