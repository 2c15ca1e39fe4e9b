/**
 * Tensor handles. A tensor's data lives on its backend; reads are async (`await t.data()`),
 * except on backends with synchronous reads (CPU), which also offer `dataSync()`.
 *
 * Layout rules: every tensor is contiguous and row-major. `reshape` is zero-copy (the result
 * shares storage with its input, reference-counted); `transpose`, `permute`, `slice`, `concat`,
 * `split`, `pad` and `broadcastTo` produce new contiguous tensors (copies). Tensors are immutable:
 * no op writes into an existing tensor, except `Parameter.assign`, which swaps the storage a
 * parameter points at.
 */
import type { Backend, BackendBuffer, TensorInfo } from './backend.js';
import { bytesPerElement, type DataArray, type DType } from './dtype/dtype.js';
import { decodeToF32 } from './dtype/codecs.js';
import { DisposedTensorError, SyncReadError, describeShape } from './errors.js';
import { sizeOf, type Shape } from './shape.js';
import { ENGINE } from './engine_state.js';

/** Reference-counted device memory shared by a tensor and its reshape views. */
export class Storage {
  refs = 1;
  constructor(
    readonly backend: Backend,
    readonly buffer: BackendBuffer,
    readonly byteLength: number,
  ) {}
}

export type NestedArray = number | boolean | NestedArray[];

export class Tensor {
  readonly id: number;
  readonly shape: Shape;
  readonly dtype: DType;
  readonly size: number;
  /** @internal */
  storage: Storage | null;
  /** @internal Tape-internal handles are not counted as live user tensors. */
  readonly internal: boolean;
  /** @internal Set by keep(): scopes do not dispose it. */
  kept = false;

  /** @internal Use the ops (tensor(), zeros(), ...) to make tensors. */
  constructor(storage: Storage, shape: Shape, dtype: DType, internal = false) {
    this.id = ENGINE.nextTensorId++;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = sizeOf(shape);
    this.storage = storage;
    this.internal = internal;
    if (!internal) {
      ENGINE.liveTensors++;
      ENGINE.trackInScope(this);
    }
  }

  get rank(): number {
    return this.shape.length;
  }

  get byteLength(): number {
    return this.size * bytesPerElement(this.dtype);
  }

  get disposed(): boolean {
    return this.storage === null;
  }

  /** Name of the backend holding the data. */
  get backend(): string {
    return this.live('backend').backend.name;
  }

  /** @internal */
  live(what: string): Storage {
    if (this.storage === null) {
      throw new DisposedTensorError(`${what}: tensor #${this.id} ${describeShape(this.shape)} ${this.dtype} was disposed`);
    }
    return this.storage;
  }

  /** @internal What kernels see. */
  info(what = 'kernel'): TensorInfo {
    const s = this.live(what);
    return { buffer: s.buffer, shape: this.shape, dtype: this.dtype, size: this.size };
  }

  /** Frees this handle; the storage goes back to the backend when no view shares it. Idempotent. */
  dispose(): void {
    const s = this.storage;
    if (s === null) return;
    this.storage = null;
    if (!this.internal) ENGINE.liveTensors--;
    ENGINE.releaseStorage(s);
  }

  /** Raw storage bytes (codes for f16/bf16/fp8), once enqueued work has finished. */
  async bytes(): Promise<Uint8Array> {
    const s = this.live('bytes()');
    return s.backend.read(s.buffer, 0, this.byteLength);
  }

  /** Values: Float32Array for float dtypes (low precision decoded), Int32Array for i32, Uint8Array for u8/bool. */
  async data(): Promise<DataArray> {
    return decodeBytes(await this.bytes(), this.dtype);
  }

  /** Synchronous read; only on backends with synchronous reads (CPU). */
  dataSync(): DataArray {
    const s = this.live('dataSync()');
    if (!s.backend.readSync) {
      throw new SyncReadError(`dataSync(): backend '${s.backend.name}' has only asynchronous reads; use 'await t.data()'`);
    }
    return decodeBytes(s.backend.readSync(s.buffer, 0, this.byteLength), this.dtype);
  }

  /** Values as nested JS arrays (numbers; booleans for bool). */
  async array(): Promise<NestedArray> {
    return nest(await this.data(), this.shape, this.dtype === 'bool');
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new DisposedTensorError(`item(): expected a tensor of one element, got shape ${describeShape(this.shape)}`);
    return (await this.data())[0]!;
  }

  toString(): string {
    if (this.storage === null) return `Tensor(#${this.id}, disposed)`;
    return `Tensor(#${this.id}, ${describeShape(this.shape)}, ${this.dtype}, ${this.backend})`;
  }
}

export function decodeBytes(raw: Uint8Array, dtype: DType): DataArray {
  // Copy into a fresh, aligned buffer so the result never aliases backend memory.
  const copy = new Uint8Array(raw.byteLength);
  copy.set(raw);
  const buf = copy.buffer;
  switch (dtype) {
    case 'f32': return new Float32Array(buf, 0, raw.byteLength / 4);
    case 'i32': return new Int32Array(buf, 0, raw.byteLength / 4);
    case 'f16': case 'bf16': return decodeToF32(dtype, new Uint16Array(buf, 0, raw.byteLength / 2));
    case 'f8e4m3': case 'f8e5m2': return decodeToF32(dtype, copy);
    case 'u8': case 'bool': return copy;
  }
}

function nest(data: DataArray, shape: Shape, asBool: boolean): NestedArray {
  const conv = (v: number): number | boolean => (asBool ? v !== 0 : v);
  if (shape.length === 0) return conv(data[0]!);
  const rec = (dim: number, offset: number): NestedArray[] => {
    const n = shape[dim]!;
    const stride = sizeOf(shape.slice(dim + 1));
    const out: NestedArray[] = [];
    for (let i = 0; i < n; i++) {
      out.push(dim === shape.length - 1 ? conv(data[offset + i]!) : rec(dim + 1, offset + i * stride));
    }
    return out;
  };
  return rec(0, 0);
}
