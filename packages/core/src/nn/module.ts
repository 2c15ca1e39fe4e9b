/**
 * Module: a tree of parameters and child modules, named by the fields that hold them.
 *
 *   class MLP extends Module {
 *     readonly up_proj: Linear;
 *     readonly down_proj: Linear;
 *     constructor(d: number, h: number) {
 *       super();
 *       this.up_proj = new Linear(d, h);
 *       this.down_proj = new Linear(h, d);
 *     }
 *     forward(x: Tensor): Tensor { return this.down_proj.forward(silu(this.up_proj.forward(x))); }
 *   }
 *
 * As in PyTorch, a field holding a Parameter is a parameter and a field holding a Module is a child,
 * discovered from the object's own enumerable fields in declaration order; names are dotted paths
 * ("layers.0.mlp.up_proj.weight"), so field names are chosen to match checkpoint names (snake_case
 * where Hugging Face uses it). Anything else (numbers, configs, plain tensors such as cached tables,
 * `#private` fields) is ignored; a module that keeps plain tensors frees them by overriding
 * dispose(). Numbered children go in a ModuleList ("layers.0"); a plain array of modules is an
 * error rather than silently missing from the state dict.
 */
import type { DType } from '../dtype/dtype.js';
import { isFloatDType } from '../dtype/dtype.js';
import { RingLinearError, describeShape } from '../errors.js';
import { stopGradient } from '../ops/elementwise.js';
import { shapesEqual } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { Parameter } from './parameter.js';

/** A module tree that is malformed (a cycle, an array of modules, a bad name). */
export class ModuleError extends RingLinearError {}

/** A state dict entry whose shape, dtype or backend differs from the parameter's. */
export interface StateDictMismatch {
  readonly name: string;
  /** What the module has, e.g. "[4, 3] f32 on cpu". */
  readonly expected: string;
  /** What the state dict has. */
  readonly got: string;
}

/** What loadStateDict found: names the module has but the state dict lacks, and the reverse. */
export interface LoadStateDictResult {
  readonly missing: string[];
  readonly unexpected: string[];
  readonly mismatched: StateDictMismatch[];
}

/** A strict loadStateDict() that did not match: every missing, unexpected and mismatched name. */
export class StateDictError extends RingLinearError {
  readonly missing: string[];
  readonly unexpected: string[];
  readonly mismatched: StateDictMismatch[];

  constructor(result: LoadStateDictResult) {
    const parts: string[] = [];
    if (result.missing.length) parts.push(`missing ${result.missing.length}: ${result.missing.join(', ')}`);
    if (result.unexpected.length) parts.push(`unexpected ${result.unexpected.length}: ${result.unexpected.join(', ')}`);
    if (result.mismatched.length) {
      const m = result.mismatched.map((e) => `${e.name} (expected ${e.expected}, got ${e.got})`);
      parts.push(`mismatched ${m.length}: ${m.join(', ')}`);
    }
    super(`loadStateDict: the state dict does not match the module; ${parts.join('; ')}. Nothing was loaded.`);
    this.missing = result.missing;
    this.unexpected = result.unexpected;
    this.mismatched = result.mismatched;
  }
}

export type StateDict = ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>;

export interface LoadStateDictOptions {
  /** Require an exact match (default true): otherwise throw StateDictError and load nothing. */
  readonly strict?: boolean;
}

function describe(t: Tensor): string {
  return `${describeShape(t.shape)} ${t.dtype} on ${t.backend}`;
}

export class Module {
  /** Set by train()/eval(); layers that behave differently in training (dropout) read it. */
  training = true;

  /** Direct children in field order: [field name, module]. ModuleList overrides it. */
  namedChildren(): [string, Module][] {
    return this.fields().filter((e): e is [string, Module] => e[1] instanceof Module);
  }

  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** This module's own parameters (not its children's): [field name, parameter]. */
  namedOwnParameters(): [string, Parameter][] {
    return this.fields().filter((e): e is [string, Parameter] => e[1] instanceof Parameter);
  }

  /** Every module in the tree, this one first (name ''), each once. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    this.walk(prefix, [], (name, m) => {
      if (seen.has(m)) return false;
      seen.add(m);
      out.push([name, m]);
      return true;
    });
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /**
   * Every parameter with its dotted name, each Parameter object once (a parameter shared by two
   * modules, e.g. tied embeddings, is listed under its first name). Optimizers use this.
   */
  namedParameters(prefix = ''): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    const seen = new Set<Parameter>();
    for (const [name, p] of this.allNamedParameters(prefix)) {
      if (seen.has(p)) continue;
      seen.add(p);
      out.push([name, p]);
    }
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Number of scalar values in the parameters (shared parameters counted once). */
  numParameters(): number {
    let n = 0;
    for (const p of this.parameters()) n += p.size;
    return n;
  }

  /**
   * name -> tensor for every parameter name (a shared parameter appears under each of its names,
   * as in PyTorch). The tensors are new handles sharing the parameters' storage (no copy): a
   * snapshot that later assign() calls do not change. The caller disposes them (dispose(sd)).
   */
  stateDict(prefix = ''): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    // stopGradient is a view op: a new handle on the same storage, never recorded on a tape.
    for (const [name, p] of this.allNamedParameters(prefix)) out.set(name, stopGradient(p));
    return out;
  }

  /**
   * Loads values by name. Each tensor must have its parameter's shape, dtype and backend. Strict
   * (the default): any missing, unexpected or mismatched name throws one StateDictError listing
   * all of them, and nothing is loaded. Non-strict: loads every name that matches and returns the
   * lists. Loading shares the source tensors' storage (tensors are immutable, so this is a
   * zero-copy load); the caller still owns and may dispose the state dict afterwards.
   */
  loadStateDict(stateDict: StateDict, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const source: ReadonlyMap<string, Tensor> = stateDict instanceof Map ? stateDict : new Map(Object.entries(stateDict));
    const missing: string[] = [];
    const mismatched: StateDictMismatch[] = [];
    const toLoad: [Parameter, Tensor][] = [];
    const expectedNames = new Set<string>();
    for (const [name, p] of this.allNamedParameters('')) {
      expectedNames.add(name);
      const t = source.get(name);
      if (t === undefined) {
        missing.push(name);
        continue;
      }
      t.live(`loadStateDict: '${name}'`);
      if (!shapesEqual(t.shape, p.shape) || t.dtype !== p.dtype || t.backend !== p.backend) {
        mismatched.push({ name, expected: describe(p), got: describe(t) });
        continue;
      }
      toLoad.push([p, t]);
    }
    const unexpected = [...source.keys()].filter((n) => !expectedNames.has(n));
    const result: LoadStateDictResult = { missing, unexpected, mismatched };
    if ((options.strict ?? true) && (missing.length || unexpected.length || mismatched.length)) {
      throw new StateDictError(result);
    }
    // assign() consumes its argument, so each parameter gets its own handle on the source storage.
    for (const [p, t] of toLoad) p.assign(stopGradient(t));
    return result;
  }

  /** Sets training mode on this module and all descendants. Returns this. */
  train(mode = true): this {
    this.training = mode;
    for (const c of this.children()) c.train(mode);
    return this;
  }

  /** Inference mode: train(false). */
  eval(): this {
    return this.train(false);
  }

  /**
   * Casts every float parameter to `dtype` in place (parameters keep their identity). Recurses
   * through children's to(), so a module that must stay in another dtype (the MoE router stays
   * fp32, MODEL_SPEC §4) overrides to(). Integer and bool parameters are left alone.
   */
  to(dtype: DType): this {
    if (!isFloatDType(dtype)) throw new ModuleError(`Module.to: expected a float dtype (f32, f16, bf16, f8e4m3, f8e5m2), got ${dtype}`);
    for (const [, p] of this.namedOwnParameters()) if (isFloatDType(p.dtype)) p.castInPlace(dtype);
    for (const c of this.children()) c.to(dtype);
    return this;
  }

  /** Calls fn on every descendant, then on this module (PyTorch's order), e.g. to initialize. */
  apply(fn: (m: Module) => void): this {
    for (const c of this.children()) c.apply(fn);
    fn(this);
    return this;
  }

  /** Frees every parameter of the tree. Modules that hold other tensors override it (and call super). */
  dispose(): void {
    for (const [, p] of this.namedOwnParameters()) p.dispose();
    for (const c of this.children()) c.dispose();
  }

  /** Settings shown by toString() after the class name, e.g. "inFeatures=4, outFeatures=3". */
  extraRepr(): string {
    return '';
  }

  /** A readable tree: class names and settings, parameter shapes and dtypes. */
  toString(): string {
    const lines: string[] = [];
    const rec = (m: Module, name: string, indent: string): void => {
      const extra = m.extraRepr();
      lines.push(`${indent}${name ? `(${name}): ` : ''}${m.constructor.name}${extra ? `(${extra})` : ''}`);
      for (const [n, p] of m.namedOwnParameters()) {
        lines.push(`${indent}  ${n}: ${p.disposed ? 'disposed' : `${describeShape(p.shape)} ${p.dtype}`}`);
      }
      for (const [n, c] of m.namedChildren()) rec(c, n, indent + '  ');
    };
    rec(this, '', '');
    return lines.join('\n');
  }

  // -------------------------------------------------------------------------------------------

  /** Own enumerable fields holding a Parameter or a Module; rejects arrays/Maps of them. */
  private fields(): [string, Parameter | Module][] {
    const out: [string, Parameter | Module][] = [];
    for (const [name, v] of Object.entries(this)) {
      if (v instanceof Parameter || v instanceof Module) {
        if (v === this) throw new ModuleError(`${this.constructor.name}.${name}: a module cannot contain itself`);
        if (name === '' || name.includes('.')) {
          throw new ModuleError(`${this.constructor.name}: field name '${name}' cannot be a parameter/module name (empty or contains '.')`);
        }
        out.push([name, v]);
      } else if (holdsModulesOrParameters(v)) {
        throw new ModuleError(
          `${this.constructor.name}.${name}: a plain ${Array.isArray(v) ? 'array' : 'Map'} of modules or parameters is not part of the module tree; use a ModuleList`,
        );
      }
    }
    return out;
  }

  /** Depth-first over the tree; `visit` returns false to skip a module's subtree. */
  private walk(name: string, ancestors: Module[], visit: (name: string, m: Module) => boolean): void {
    if (ancestors.includes(this)) {
      throw new ModuleError(`module tree has a cycle: '${name}' (${this.constructor.name}) contains one of its ancestors`);
    }
    if (!visit(name, this)) return;
    const path = [...ancestors, this];
    for (const [n, c] of this.namedChildren()) c.walk(name ? `${name}.${n}` : n, path, visit);
  }

  /** Every (dotted name, parameter), shared parameters and modules under each of their names. */
  private allNamedParameters(prefix: string): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    this.walk(prefix, [], (name, m) => {
      for (const [n, p] of m.namedOwnParameters()) out.push([name ? `${name}.${n}` : n, p]);
      return true;
    });
    return out;
  }
}

function holdsModulesOrParameters(v: unknown): boolean {
  const isPart = (x: unknown) => x instanceof Module || x instanceof Parameter;
  if (Array.isArray(v)) return v.some(isPart);
  if (v instanceof Map) return [...v.values()].some(isPart);
  return false;
}

/**
 * Numbered children, named "0", "1", ... in the module tree (e.g. "layers.3.mlp.up_proj.weight").
 * Iterable; `at(i)` and `length` as on arrays.
 */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  readonly #items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.push(m);
  }

  get length(): number {
    return this.#items.length;
  }

  /** The i-th module (negative counts from the end, as Array.prototype.at); throws if out of range. */
  at(i: number): M {
    const m = this.#items.at(i);
    if (m === undefined) throw new ModuleError(`ModuleList.at(${i}): index out of range for ${this.#items.length} modules`);
    return m;
  }

  push(...modules: M[]): this {
    for (const m of modules) {
      if (!(m instanceof Module)) throw new ModuleError(`ModuleList.push: expected a Module, got ${m === null ? 'null' : typeof m}`);
      this.#items.push(m);
    }
    return this;
  }

  /** Replaces the i-th module (e.g. a Linear by an Fp8Linear); returns the one it replaced. */
  set(i: number, m: M): M {
    if (!(m instanceof Module)) throw new ModuleError(`ModuleList.set: expected a Module, got ${m === null ? 'null' : typeof m}`);
    const idx = i < 0 ? i + this.#items.length : i;
    if (!Number.isInteger(idx) || idx < 0 || idx >= this.#items.length) {
      throw new ModuleError(`ModuleList.set(${i}): index out of range for ${this.#items.length} modules`);
    }
    const old = this.#items[idx]!;
    this.#items[idx] = m;
    return old;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.#items[Symbol.iterator]();
  }

  override namedChildren(): [string, Module][] {
    return this.#items.map((m, i) => [String(i), m]);
  }
}
