/**
 * The tfjs oracle: @tensorflow/tfjs-core with @tensorflow/tfjs-backend-cpu, loaded on demand (a
 * machine without it still runs every other check, and says so). Used for f32 cases only.
 */
import type { DType } from '@ring-linear/core';
import type { HostTensor } from './opinfo/types.js';

/** The tfjs-core namespace (typed loosely: it is an optional oracle). */
export type Tf = any;

let loading: Promise<Tf | string> | undefined;

/** tfjs with its CPU backend active, or a string saying why it could not be loaded. */
export function loadTfjs(): Promise<Tf | string> {
  loading ??= (async () => {
    try {
      const coreModule = '@tensorflow/tfjs-core';
      const cpuModule = '@tensorflow/tfjs-backend-cpu';
      const tf = await import(/* @vite-ignore */ coreModule);
      await import(/* @vite-ignore */ cpuModule);
      // Production mode: no "install tfjs-node" banner, no debug NaN checks.
      tf.enableProdMode();
      if (!(await tf.setBackend('cpu'))) return 'tfjs: the cpu backend did not initialize';
      return tf;
    } catch (err) {
      return `tfjs could not be loaded (${(err as Error).message})`;
    }
  })();
  return loading;
}

function tfDType(d: DType): string | null {
  switch (d) {
    case 'f32':
      return 'float32';
    case 'i32':
    case 'u8':
      return 'int32';
    case 'bool':
      return 'bool';
    default:
      return null; // no low-precision floats in tfjs
  }
}

/** A tfjs tensor from a host tensor, or null where tfjs has no matching dtype. */
export function toTf(tf: Tf, h: HostTensor): unknown {
  const dt = tfDType(h.dtype);
  if (dt === null) return null;
  const vals = dt === 'float32' ? Float32Array.from(h.values) : dt === 'int32' ? Int32Array.from(h.values) : Uint8Array.from(h.values);
  return tf.tensor(vals, [...h.shape], dt);
}

/** Reads a tfjs tensor synchronously (the tfjs CPU backend allows it). */
export function fromTf(t: any): { shape: number[]; values: Float64Array } {
  return { shape: [...t.shape], values: Float64Array.from(t.dataSync() as ArrayLike<number>) };
}
