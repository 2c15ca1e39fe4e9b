/**
 * Op definitions and the kernel registry.
 *
 * An op is defined once: name, input and attribute schema, shape/dtype inference, gradient and
 * (optionally) a composite implementation in terms of other ops. Kernels are registered per
 * (op, backend). Dispatch: kernel if the backend has one for the dtypes, else the composite,
 * else a MissingKernelError naming the op and the backend.
 */
import { AttrError, DTypeError, RingLinearError } from './errors.js';
import { isDType, type DType } from './dtype/dtype.js';
import type { Shape } from './shape.js';
import type { Kernel } from './backend.js';
import type { Tensor } from './tensor.js';

export type Attrs = Record<string, unknown>;

export type AttrSpec =
  | { readonly kind: 'int'; readonly default?: number; readonly min?: number; readonly max?: number; readonly optional?: boolean }
  | { readonly kind: 'number'; readonly default?: number; readonly optional?: boolean }
  | { readonly kind: 'bool'; readonly default?: boolean; readonly optional?: boolean }
  | { readonly kind: 'dtype'; readonly default?: DType; readonly optional?: boolean }
  | { readonly kind: 'ints'; readonly default?: readonly number[] | null; readonly optional?: boolean }
  | { readonly kind: 'enum'; readonly values: readonly string[]; readonly default?: string; readonly optional?: boolean }
  | { readonly kind: 'any'; readonly default?: unknown; readonly optional?: boolean };

export interface InputSpec {
  readonly name: string;
  /** Accepted dtypes; omitted = any. */
  readonly dtypes?: readonly DType[];
}

/** Shape and dtype of a tensor, as seen by inference (no data). */
export interface TensorMeta {
  readonly shape: Shape;
  readonly dtype: DType;
}

export interface GradContext<A> {
  /** The op's inputs and outputs as they were in the forward pass (kept alive by the tape). */
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly attrs: A;
  /** Gradients flowing into each output; zeros where an output did not reach the loss. */
  readonly dys: readonly Tensor[];
}

/** Returns one gradient per input (null for inputs that get none, e.g. indices). */
export type GradFn<A> = (ctx: GradContext<A>) => (Tensor | null)[];

export interface OpDef<A extends Attrs = Attrs> {
  readonly name: string;
  /** Fixed inputs, or `variadic` for ops such as concat (at least `minInputs`). */
  readonly inputs: readonly InputSpec[];
  readonly variadic?: { readonly dtypes?: readonly DType[]; readonly minInputs: number };
  readonly attrs?: { readonly [K in keyof A]-?: AttrSpec };
  /** Semantic checks and normalization of attrs against input metas (negative axes, ...). */
  readonly normalize?: (inputs: readonly TensorMeta[], attrs: A) => A;
  /** Output shapes and dtypes; throws ShapeError/DTypeError naming the op. */
  readonly infer: (inputs: readonly TensorMeta[], attrs: A) => TensorMeta[];
  readonly grad?: GradFn<A>;
  /** Implementation in terms of other ops, used when a backend lacks the kernel. */
  readonly composite?: (inputs: readonly Tensor[], attrs: A) => Tensor[];
  /** View op: output 0 shares input 0's storage (reshape). No kernel runs. */
  readonly view?: boolean;
  /** Outputs never carry gradient (argmax, comparisons, random). */
  readonly nonDifferentiable?: boolean;
  /** A short description for docs and error messages. */
  readonly doc?: string;
}

// Registries live on globalThis (like the engine state) so that every copy of this module sees
// the same ops and kernels.
const REG_KEY = Symbol.for('@ring-linear/core/registries');
type Registries = { ops: Map<string, OpDef<any>>; kernels: Map<string, KernelRegistration>; disabled?: Map<string, number> };
const REG: Registries = ((globalThis as typeof globalThis & { [REG_KEY]?: Registries })[REG_KEY] ??= {
  ops: new Map(),
  kernels: new Map(),
});
const OP_DEFS = REG.ops;
/** Names defined by this copy of the module: a second definition here is a programming error. */
const DEFINED_HERE = new Set<string>();

export function defineOp<A extends Attrs>(def: OpDef<A>): OpDef<A> {
  if (DEFINED_HERE.has(def.name)) throw new RingLinearError(`op '${def.name}' is already defined`);
  DEFINED_HERE.add(def.name);
  OP_DEFS.set(def.name, def);
  return def;
}

export function getOpDef(name: string): OpDef<any> | undefined {
  return OP_DEFS.get(name);
}

export function listOps(): string[] {
  return [...OP_DEFS.keys()].sort();
}

export interface KernelRegistration {
  readonly op: string;
  readonly backend: string;
  readonly kernel: Kernel;
  /** Input dtypes the kernel handles; omitted = all the op accepts. */
  readonly dtypes?: readonly DType[];
}

const KERNELS = REG.kernels;
const key = (op: string, backend: string) => `${backend}\u0000${op}`;

export function registerKernel(reg: KernelRegistration): void {
  KERNELS.set(key(reg.op, reg.backend), reg);
}

export function getKernel(op: string, backend: string): KernelRegistration | undefined {
  if (DISABLED.size > 0 && DISABLED.has(op)) return undefined;
  return KERNELS.get(key(op, backend));
}

// Ops whose kernels are switched off (name -> nesting depth), so that dispatch takes the op's
// composite: the conformance suite checks a fused kernel against its composite this way.
const DISABLED: Map<string, number> = (REG.disabled ??= new Map());

/**
 * Runs `fn` (synchronously) with the kernels of `ops` switched off on every backend: those ops
 * run their composite (or fail with MissingKernelError when they have none). For testing.
 */
/** Whether withKernelsDisabled() currently forces this op onto its composite. */
export function isKernelDisabled(op: string): boolean {
  return DISABLED.has(op);
}

export function withKernelsDisabled<T>(ops: readonly string[], fn: () => T): T {
  for (const op of ops) DISABLED.set(op, (DISABLED.get(op) ?? 0) + 1);
  try {
    return fn();
  } finally {
    for (const op of ops) {
      const n = DISABLED.get(op)! - 1;
      if (n > 0) DISABLED.set(op, n);
      else DISABLED.delete(op);
    }
  }
}

export function listKernels(backend: string): string[] {
  const out: string[] = [];
  for (const reg of KERNELS.values()) if (reg.backend === backend) out.push(reg.op);
  return out.sort();
}

function badAttr(op: string, name: string, v: unknown, expected: string): AttrError {
  return new AttrError(`${op}: attribute '${name}' expected ${expected}, got ${typeof v === 'string' ? `'${v}'` : JSON.stringify(v)}`);
}

// Runs for every attribute of every op call: no closures or strings unless it throws.
function checkAttr(op: string, name: string, spec: AttrSpec, v: unknown): void {
  switch (spec.kind) {
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v)) throw badAttr(op, name, v, 'an integer');
      if (spec.min !== undefined && v < spec.min) throw badAttr(op, name, v, `an integer >= ${spec.min}`);
      if (spec.max !== undefined && v > spec.max) throw badAttr(op, name, v, `an integer <= ${spec.max}`);
      return;
    case 'number':
      if (typeof v !== 'number') throw badAttr(op, name, v, 'a number');
      return;
    case 'bool':
      if (typeof v !== 'boolean') throw badAttr(op, name, v, 'a boolean');
      return;
    case 'dtype':
      if (!isDType(v)) throw badAttr(op, name, v, 'a dtype (f32, f16, bf16, f8e4m3, f8e5m2, i32, u8, bool)');
      return;
    case 'ints':
      if (v !== null && !(Array.isArray(v) && v.every(Number.isInteger))) throw badAttr(op, name, v, 'an array of integers');
      return;
    case 'enum':
      if (typeof v !== 'string' || !spec.values.includes(v)) throw badAttr(op, name, v, `one of ${spec.values.map((x) => `'${x}'`).join(', ')}`);
      return;
    case 'any':
      return;
  }
}

// An op's attribute schema as entries, built once per op (validateAttrs runs on every call).
const SCHEMA_ENTRIES = new WeakMap<OpDef<any>, [string, AttrSpec][]>();
function schemaEntries(def: OpDef<any>): [string, AttrSpec][] {
  let e = SCHEMA_ENTRIES.get(def);
  if (!e) SCHEMA_ENTRIES.set(def, (e = Object.entries((def.attrs ?? {}) as Record<string, AttrSpec>)));
  return e;
}

/** Applies defaults and type-checks attributes against the op's schema. */
export function validateAttrs<A extends Attrs>(def: OpDef<A>, raw: Partial<A> | undefined): A {
  const out: Record<string, unknown> = {};
  const schema = (def.attrs ?? {}) as Record<string, AttrSpec>;
  const given = (raw ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(given)) {
    if (!(k in schema)) {
      throw new AttrError(`${def.name}: unknown attribute '${k}' (expected one of: ${Object.keys(schema).join(', ') || 'none'})`);
    }
  }
  for (const [k, spec] of schemaEntries(def)) {
    let v = given[k];
    if (v === undefined) {
      if ('default' in spec && spec.default !== undefined) v = spec.default;
      else if (spec.optional || ('default' in spec && spec.default === null)) {
        out[k] = spec.kind === 'ints' && 'default' in spec ? spec.default : undefined;
        continue;
      } else throw new AttrError(`${def.name}: attribute '${k}' is required (${spec.kind})`);
    }
    checkAttr(def.name, k, spec, v);
    out[k] = v;
  }
  return out as A;
}

/** Checks input dtypes against the op's input specs. */
export function checkInputDTypes(def: OpDef<any>, metas: readonly TensorMeta[]): void {
  if (def.variadic) {
    if (metas.length < def.variadic.minInputs) {
      throw new AttrError(`${def.name}: expected at least ${def.variadic.minInputs} input tensors, got ${metas.length}`);
    }
    const ok = def.variadic.dtypes;
    if (ok) {
      for (let i = 0; i < metas.length; i++) {
        const m = metas[i]!;
        if (!ok.includes(m.dtype)) {
          throw new DTypeError(`${def.name}: input ${i} must have dtype ${ok.join('|')}, got ${m.dtype}`);
        }
      }
    }
    return;
  }
  if (metas.length !== def.inputs.length) {
    throw new AttrError(
      `${def.name}: expected ${def.inputs.length} input tensor(s) (${def.inputs.map((s) => s.name).join(', ')}), got ${metas.length}`,
    );
  }
  for (let i = 0; i < def.inputs.length; i++) {
    const spec = def.inputs[i]!;
    const m = metas[i]!;
    if (spec.dtypes && !spec.dtypes.includes(m.dtype)) {
      throw new DTypeError(`${def.name}: input '${spec.name}' must have dtype ${spec.dtypes.join('|')}, got ${m.dtype}`);
    }
  }
}
