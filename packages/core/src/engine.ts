/**
 * The engine: backend registry and selection, op dispatch, memory scopes and counters.
 */
import type { Backend, BackendMemoryStats } from './backend.js';
import { bytesPerElement, isFloatDType, isLowPrecisionFloat, type DType } from './dtype/dtype.js';
import { encodeF32 } from './dtype/codecs.js';
import {
  BackendError,
  BackendMismatchError,
  DTypeError,
  MissingKernelError,
  RingLinearError,
  ShapeError,
  describeShape,
} from './errors.js';
import {
  checkInputDTypes,
  getKernel,
  getOpDef,
  isKernelDisabled,
  validateAttrs,
  type Attrs,
  type OpDef,
  type TensorMeta,
} from './op.js';
import { shapesEqual, sizeOf, assertValidShape, type Shape } from './shape.js';
import { Storage, Tensor } from './tensor.js';
import { ENGINE } from './engine_state.js';
import type { TapeNode } from './autograd/tape.js';

// ---------------------------------------------------------------------------------------------
// Backends

/**
 * Registers a backend factory. Higher priority wins when no backend was chosen explicitly.
 * Backend packages call this when imported (the CPU backend with priority 1).
 */
export function registerBackend(name: string, factory: () => Backend | Promise<Backend>, priority = 0): void {
  const prev = ENGINE.backends.get(name);
  ENGINE.backends.set(name, { name, factory, priority, instance: prev?.instance ?? null, initError: null });
}

export function registeredBackends(): string[] {
  return [...ENGINE.backends.values()].sort((a, b) => b.priority - a.priority).map((e) => e.name);
}

/** Initializes (once) and returns the named backend. */
export async function initBackend(name: string): Promise<Backend> {
  const e = ENGINE.backends.get(name);
  if (!e) throw new BackendError(`backend '${name}' is not registered (registered: ${registeredBackends().join(', ') || 'none'}); import its package first`);
  if (e.instance) return e.instance;
  try {
    e.instance = await e.factory();
    return e.instance;
  } catch (err) {
    e.initError = err instanceof Error ? err : new Error(String(err));
    throw new BackendError(`backend '${name}' failed to initialize: ${e.initError.message}`);
  }
}

/** Makes the named backend current (creation ops run there). */
export async function setBackend(name: string): Promise<Backend> {
  const b = await initBackend(name);
  ENGINE.current = b;
  return b;
}

/** Picks the highest-priority backend that initializes; returns its name. */
export async function ready(): Promise<string> {
  if (ENGINE.current) return ENGINE.current.name;
  const errors: string[] = [];
  for (const name of registeredBackends()) {
    try {
      await setBackend(name);
      return name;
    } catch (err) {
      errors.push(`${name}: ${(err as Error).message}`);
    }
  }
  throw new BackendError(`no backend could be initialized (${errors.join('; ') || 'none registered; import @ring-linear/backend-cpu'})`);
}

/** The current backend; initializes the best synchronous one on first use. */
export function getBackend(): Backend {
  if (ENGINE.current) return ENGINE.current;
  for (const name of registeredBackends()) {
    const e = ENGINE.backends.get(name)!;
    if (e.instance) return (ENGINE.current = e.instance);
    try {
      const b = e.factory();
      if (b instanceof Promise) {
        b.catch(() => undefined);
        continue; // async factories need `await setBackend()` / `await ready()`
      }
      e.instance = b;
      return (ENGINE.current = b);
    } catch (err) {
      e.initError = err as Error;
    }
  }
  throw new BackendError(
    `no backend is ready: registered ${registeredBackends().join(', ') || 'none'}; import '@ring-linear/backend-cpu' or 'await setBackend(name)'`,
  );
}

/**
 * Runs `fn` with `backend` as the current backend (creation ops inside it run there), restoring the
 * previous one afterwards. Gradients use this so zeros/ones land on the loss's backend.
 */
export function withBackend<T>(backend: Backend, fn: () => T): T {
  const prev = ENGINE.current;
  ENGINE.current = backend;
  try {
    return fn();
  } finally {
    ENGINE.current = prev;
  }
}

/** An initialized backend by name (throws if it was never initialized). */
export function findBackend(name: string): Backend {
  const e = ENGINE.backends.get(name);
  if (!e?.instance) throw new BackendError(`backend '${name}' is not initialized; call 'await initBackend("${name}")' first`);
  return e.instance;
}

/** Disposes a backend's device resources and forgets the instance (its tensors become invalid). */
export async function disposeBackend(name: string): Promise<void> {
  const e = ENGINE.backends.get(name);
  if (!e?.instance) return;
  const b = e.instance;
  e.instance = null;
  if (ENGINE.current === b) ENGINE.current = null;
  await b.dispose();
}

// ---------------------------------------------------------------------------------------------
// Memory

export interface MemoryInfo {
  /** Live user-visible tensor handles. */
  readonly tensors: number;
  /** Live storages (a reshape view shares its input's storage). */
  readonly storages: number;
  /** Bytes held by live storages. */
  readonly bytes: number;
  /** Per initialized backend statistics. */
  readonly backends: Record<string, BackendMemoryStats>;
}

export function memory(): MemoryInfo {
  const backends: Record<string, BackendMemoryStats> = {};
  for (const e of ENGINE.backends.values()) if (e.instance) backends[e.name] = e.instance.memoryStats();
  return { tensors: ENGINE.liveTensors, storages: ENGINE.liveStorages, bytes: ENGINE.liveBytes, backends };
}

/** Any structure of tensors (arrays, plain objects, Maps) returned from a scope. */
export type TensorContainer = Tensor | TensorContainer[] | { [k: string]: TensorContainer } | Map<unknown, TensorContainer> | number | string | boolean | null | undefined | void;

function collectTensors(x: unknown, out: Set<Tensor>, seen = new Set<unknown>()): void {
  if (x === null || typeof x !== 'object' || seen.has(x)) return;
  seen.add(x);
  if (x instanceof Tensor) {
    out.add(x);
    return;
  }
  if (Array.isArray(x)) for (const v of x) collectTensors(v, out, seen);
  else if (x instanceof Map) for (const v of x.values()) collectTensors(v, out, seen);
  else if (Object.getPrototypeOf(x) === Object.prototype) for (const v of Object.values(x)) collectTensors(v, out, seen);
}

/**
 * Runs `fn` in a memory scope: every tensor made inside that is not returned and not kept is
 * disposed when it returns (also when it throws). `fn` must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  ENGINE.scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    ENGINE.scopes.pop();
    for (const t of scope) if (!t.kept) t.dispose();
    throw err;
  }
  ENGINE.scopes.pop();
  if (result instanceof Promise) {
    throw new RingLinearError('tidy(): the function returned a Promise; scopes are synchronous (read data after tidy returns)');
  }
  const keepSet = new Set<Tensor>();
  collectTensors(result, keepSet);
  for (const t of scope) {
    if (keepSet.has(t)) ENGINE.trackInScope(t);
    else if (!t.kept) t.dispose();
  }
  return result;
}

/** Exempts a tensor from scope disposal (it must then be disposed explicitly). */
export function keep<T extends Tensor>(t: T): T {
  t.kept = true;
  ENGINE.untrack(t);
  return t;
}

/** Disposes every tensor in a container. */
export function dispose(x: unknown): void {
  const s = new Set<Tensor>();
  collectTensors(x, s);
  for (const t of s) t.dispose();
}

// ---------------------------------------------------------------------------------------------
// Tensor creation from host data

function newStorage(backend: Backend, byteLength: number): Storage {
  const buffer = backend.allocate(byteLength);
  ENGINE.liveStorages++;
  ENGINE.liveBytes += byteLength;
  return new Storage(backend, buffer, byteLength);
}

/** @internal Allocates an uninitialized tensor on a backend. */
export function allocTensor(backend: Backend, shape: Shape, dtype: DType): Tensor {
  return new Tensor(newStorage(backend, sizeOf(shape) * bytesPerElement(dtype)), shape, dtype);
}

/** Makes a tensor from raw storage bytes (codes for low-precision floats), e.g. from a checkpoint. */
export function fromBytes(bytes: Uint8Array, shape: readonly number[], dtype: DType, backend?: Backend): Tensor {
  assertValidShape(shape, 'fromBytes');
  const n = sizeOf(shape) * bytesPerElement(dtype);
  if (bytes.byteLength !== n) {
    throw new ShapeError(`fromBytes: shape ${describeShape(shape)} ${dtype} needs ${n} bytes, got ${bytes.byteLength}`);
  }
  const b = backend ?? getBackend();
  const t = allocTensor(b, shape, dtype);
  if (n > 0) b.write(t.storage!.buffer, bytes);
  return t;
}

function flatten(values: unknown, out: number[], shape: number[], depth: number, shapeKnown: boolean): void {
  if (Array.isArray(values)) {
    if (!shapeKnown) {
      if (shape.length === depth) shape.push(values.length);
      else if (shape[depth] !== values.length) throw new ShapeError(`tensor(): ragged nested array at depth ${depth}: ${values.length} vs ${shape[depth]}`);
    }
    for (const v of values) flatten(v, out, shape, depth + 1, shapeKnown);
  } else if (typeof values === 'number') out.push(values);
  else if (typeof values === 'boolean') out.push(values ? 1 : 0);
  else throw new DTypeError(`tensor(): expected numbers, booleans or nested arrays of them, got ${typeof values}`);
}

export type TensorLike = number | boolean | ArrayLike<number> | readonly TensorLike[] | Float32Array | Int32Array | Uint8Array;

/**
 * Makes a tensor from host values. `shape` defaults to the nested array's shape (a flat typed array
 * gives a 1-D tensor); `dtype` defaults to f32 (bool for boolean input).
 */
export function tensor(values: TensorLike, shape?: readonly number[], dtype?: DType, backend?: Backend): Tensor {
  let flat: ArrayLike<number>;
  let inferred: number[] = [];
  if (ArrayBuffer.isView(values)) {
    flat = values as unknown as ArrayLike<number>;
    inferred = [flat.length];
  } else if (typeof values === 'number' || typeof values === 'boolean') {
    flat = [typeof values === 'boolean' ? (values ? 1 : 0) : values];
    inferred = [];
  } else {
    const out: number[] = [];
    flatten(values, out, inferred, 0, false);
    flat = out;
  }
  const dt: DType = dtype ?? (typeof values === 'boolean' || (Array.isArray(values) && isBoolNested(values)) ? 'bool' : 'f32');
  const shp = shape ?? inferred;
  assertValidShape(shp as number[], 'tensor()');
  if (sizeOf(shp) !== flat.length) {
    throw new ShapeError(`tensor(): shape ${describeShape(shp)} holds ${sizeOf(shp)} values, got ${flat.length}`);
  }
  return fromBytes(encodeHost(flat, dt), shp, dt, backend);
}

function isBoolNested(v: unknown): boolean {
  let x = v;
  while (Array.isArray(x)) x = x[0];
  return typeof x === 'boolean';
}

/** Encodes host numbers into a dtype's storage bytes. */
export function encodeHost(flat: ArrayLike<number>, dtype: DType): Uint8Array {
  const n = flat.length;
  if (dtype === 'f32') return new Uint8Array(Float32Array.from(flat).buffer);
  if (isLowPrecisionFloat(dtype)) {
    const enc = encodeF32(dtype, flat);
    return new Uint8Array(enc.buffer, enc.byteOffset, enc.byteLength);
  }
  if (dtype === 'i32') {
    const a = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const v = flat[i]!;
      if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) throw new DTypeError(`tensor(): i32 needs integers in int32 range, got ${v} at index ${i}`);
      a[i] = v;
    }
    return new Uint8Array(a.buffer);
  }
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = flat[i]!;
    if (dtype === 'bool') a[i] = v ? 1 : 0;
    else {
      if (!Number.isInteger(v) || v < 0 || v > 255) throw new DTypeError(`tensor(): u8 needs integers in 0..255, got ${v} at index ${i}`);
      a[i] = v;
    }
  }
  return a;
}

/** A scalar (rank-0) tensor on the given backend (default: current). */
export function scalar(value: number | boolean, dtype?: DType, backend?: Backend): Tensor {
  return tensor(value, [], dtype ?? (typeof value === 'boolean' ? 'bool' : 'f32'), backend);
}

/** Copies a tensor to another (initialized) backend. */
export async function toBackend(t: Tensor, name: string): Promise<Tensor> {
  const b = name === t.backend ? findBackendOrCurrent(name) : await initBackend(name);
  return fromBytes(await t.bytes(), t.shape, t.dtype, b);
}

function findBackendOrCurrent(name: string): Backend {
  return ENGINE.backends.get(name)?.instance ?? getBackend();
}

// ---------------------------------------------------------------------------------------------
// Op dispatch

function backendOfInputs(op: string, inputs: readonly Tensor[]): Backend {
  if (inputs.length === 0) return getBackend();
  const b = inputs[0]!.live(op).backend;
  for (let i = 1; i < inputs.length; i++) {
    const bi = inputs[i]!.live(op).backend;
    if (bi !== b) {
      throw new BackendMismatchError(`${op}: all inputs must be on one backend; input 0 is on '${b.name}', input ${i} on '${bi.name}' (use toBackend())`);
    }
  }
  return b;
}

/**
 * Runs an op by name: validates inputs and attrs, infers outputs, then runs the backend's kernel,
 * or the op's composite when the backend has none. Records the op on active gradient tapes.
 */
export function runOp(name: string, inputs: readonly Tensor[], rawAttrs?: Attrs): Tensor[] {
  const def = getOpDef(name);
  if (!def) throw new MissingKernelError(`unknown op '${name}'`);
  for (let i = 0; i < inputs.length; i++) {
    const t = inputs[i];
    if (!(t instanceof Tensor)) throw new DTypeError(`${name}: input ${i} must be a Tensor, got ${t === null ? 'null' : typeof t}`);
    if (t.storage === null) t.live(`${name}: input ${i}`); // the message is built only when it throws
  }
  // Loops rather than closures here and below: this runs for every op of a decode step.
  const metas: TensorMeta[] = new Array(inputs.length);
  for (let i = 0; i < inputs.length; i++) metas[i] = { shape: inputs[i]!.shape, dtype: inputs[i]!.dtype };
  checkInputDTypes(def, metas);
  let attrs = validateAttrs(def, rawAttrs);
  if (def.normalize) attrs = def.normalize(metas, attrs);
  const outMetas = def.infer(metas, attrs);
  const backend = backendOfInputs(name, inputs);

  let outputs: Tensor[];
  if (def.view) {
    const src = inputs[0]!;
    const s = src.storage!;
    s.refs++;
    outputs = [new Tensor(s, outMetas[0]!.shape, outMetas[0]!.dtype)];
  } else {
    const reg = getKernel(name, backend.name);
    let dtypeOk = true;
    if (reg?.dtypes) {
      const ms = metas.length ? metas : outMetas;
      for (let i = 0; i < ms.length && dtypeOk; i++) dtypeOk = reg.dtypes.includes(ms[i]!.dtype);
    }
    if (!reg || !dtypeOk) {
      if (def.composite) return runComposite(def, inputs, attrs, outMetas, backend);
      const why = reg ? ` for dtype(s) ${metas.map((m) => m.dtype).join(', ')} (kernel supports ${reg.dtypes!.join(', ')})` : '';
      throw new MissingKernelError(`${name}: backend '${backend.name}' has no kernel${why} and the op has no composite`);
    }
    outputs = new Array(outMetas.length);
    let work = outMetas.length === 0;
    for (let i = 0; i < outMetas.length; i++) {
      const o = (outputs[i] = allocTensor(backend, outMetas[i]!.shape, outMetas[i]!.dtype));
      if (o.size > 0) work = true;
    }
    if (work) {
      try {
        const inInfos = new Array(inputs.length);
        for (let i = 0; i < inputs.length; i++) inInfos[i] = inputs[i]!.info(name);
        const outInfos = new Array(outputs.length);
        for (let i = 0; i < outputs.length; i++) outInfos[i] = outputs[i]!.info(name);
        reg.kernel({ op: name, backend, inputs: inInfos, outputs: outInfos, attrs });
      } catch (err) {
        for (const o of outputs) o.dispose();
        throw err;
      }
    }
  }
  record(def, inputs, outputs, attrs);
  return outputs;
}

function runComposite(def: OpDef<any>, inputs: readonly Tensor[], attrs: Attrs, outMetas: TensorMeta[], backend: Backend): Tensor[] {
  // An op with its own gradient is recorded as itself, whatever computed it, so every backend
  // differentiates it the same way (fused ops bring their own backward). Without one — or when a
  // test forces the composite with withKernelsDisabled() to check it — autograd goes through the
  // composite's ops.
  const ownGrad = def.grad !== undefined && !isKernelDisabled(def.name);
  // Constants the composite creates (zeros, arange) belong on the inputs' backend.
  const run = () => withBackend(backend, () => tidy(() => def.composite!(inputs, attrs)));
  const outs = ownGrad ? noGrad(run) : run();
  outs.forEach((o, i) => {
    const m = outMetas[i]!;
    if (!shapesEqual(o.shape, m.shape) || o.dtype !== m.dtype) {
      throw new RingLinearError(
        `${def.name}: composite returned ${describeShape(o.shape)} ${o.dtype} for output ${i}, inference says ${describeShape(m.shape)} ${m.dtype}`,
      );
    }
  });
  if (ownGrad) record(def, inputs, outs, attrs);
  return outs;
}

function record(def: OpDef<any>, inputs: readonly Tensor[], outputs: Tensor[], attrs: Attrs): void {
  if (ENGINE.tapes.length === 0 || ENGINE.noGradDepth > 0 || def.nonDifferentiable) return;
  for (const tape of ENGINE.tapes) {
    if (!inputs.some((t) => tape.tracked.has(t.id))) continue;
    const node: TapeNode = {
      def,
      attrs,
      inputs: inputs.map(internalRef),
      outputs: outputs.map(internalRef),
      inputIds: inputs.map((t) => t.id),
      outputIds: outputs.map((t) => t.id),
    };
    tape.nodes.push(node);
    for (const o of outputs) if (isFloatDType(o.dtype)) tape.tracked.add(o.id);
  }
}

/** A handle that shares storage with `t` but is invisible to scopes and live counters. */
export function internalRef(t: Tensor): Tensor {
  const s = t.live('internalRef');
  s.refs++;
  return new Tensor(s, t.shape, t.dtype, true);
}

/** Runs `fn` without recording on gradient tapes. */
export function noGrad<T>(fn: () => T): T {
  ENGINE.noGradDepth++;
  try {
    return fn();
  } finally {
    ENGINE.noGradDepth--;
  }
}

/** Convenience for op wrappers with one output. */
export function runOp1(name: string, inputs: readonly Tensor[], attrs?: Attrs): Tensor {
  return runOp(name, inputs, attrs)[0]!;
}
