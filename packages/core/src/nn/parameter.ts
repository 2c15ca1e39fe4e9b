/**
 * Parameter: a persistent tensor a module owns.
 *
 * Tensors are immutable; a parameter is the one handle whose storage can be swapped. An optimizer
 * step computes the new value as an ordinary tensor and hands it over with `p.assign(newValue)`:
 * the parameter takes the new storage, frees the old one, and keeps its identity (same object, same
 * id), so modules, optimizers and user code that hold `p` see the update.
 *
 * Parameters are exempt from tidy() scopes (they live until disposed, like keep()).
 */
import type { DType } from '../dtype/dtype.js';
import { isFloatDType } from '../dtype/dtype.js';
import { keep, noGrad } from '../engine.js';
import { ENGINE } from '../engine_state.js';
import { BackendMismatchError, DTypeError, RingLinearError, ShapeError, describeShape } from '../errors.js';
import { cast } from '../ops/elementwise.js';
import { shapesEqual } from '../shape.js';
import { Tensor, type Storage } from '../tensor.js';

export interface ParameterOptions {
  /** Whether optimizers should train it (default true). Frozen weights and buffers such as the
   *  MoE router's expert_bias (updated by a rule, not by gradients) set false. */
  readonly requiresGrad?: boolean;
}

/**
 * Moves `from`'s storage reference into a new owner: one reference is added for the new handle and
 * `from` is disposed, so live tensor/byte counters do not change and `from` cannot be used again.
 */
function takeStorage(from: Tensor, what: string): Storage {
  const s = from.live(what);
  s.refs++;
  from.dispose();
  return s;
}

export class Parameter extends Tensor {
  /** Mutable here (readonly on Tensor): castInPlace() changes it, e.g. for Module.to('bf16'). */
  declare dtype: DType;
  requiresGrad: boolean;

  /**
   * Wraps `value` as a parameter, taking ownership: `value` is consumed (disposed) and the parameter
   * holds its storage. Pass `copy(t)` to keep using `t`.
   */
  constructor(value: Tensor, options: ParameterOptions = {}) {
    if (value instanceof Parameter) {
      throw new RingLinearError(
        `new Parameter(): the value is already a Parameter (tensor #${value.id}); share it by assigning the same object, or wrap copy(p)`,
      );
    }
    const shape = value.shape;
    const dtype = value.dtype;
    super(takeStorage(value, 'new Parameter()'), shape, dtype);
    this.requiresGrad = options.requiresGrad ?? true;
    keep(this);
  }

  /**
   * Replaces the parameter's values with `value`'s, which must have the same shape, dtype and
   * backend. Takes ownership of `value` (it is consumed, no copy is made) and frees the old storage
   * unless something else still shares it (a stateDict() snapshot, a tape). Returns this.
   */
  assign(value: Tensor): this {
    if (value === this) return this;
    const s = value.live(`Parameter.assign (new value for parameter #${this.id})`);
    const old = this.live('Parameter.assign');
    if (!shapesEqual(value.shape, this.shape)) {
      throw new ShapeError(
        `Parameter.assign: parameter #${this.id} has shape ${describeShape(this.shape)}, the new value has ${describeShape(value.shape)}`,
      );
    }
    if (value.dtype !== this.dtype) {
      throw new DTypeError(`Parameter.assign: parameter #${this.id} has dtype ${this.dtype}, the new value has ${value.dtype} (use cast())`);
    }
    if (s.backend !== old.backend) {
      throw new BackendMismatchError(
        `Parameter.assign: parameter #${this.id} is on backend '${old.backend.name}', the new value on '${s.backend.name}' (use toBackend())`,
      );
    }
    this.swapStorage(takeStorage(value, 'Parameter.assign'));
    return this;
  }

  /** Casts the values to `dtype` in place (new storage, same identity); a no-op if it has it already. */
  castInPlace(dtype: DType): this {
    if (dtype === this.dtype) return this;
    if (!isFloatDType(this.dtype) || !isFloatDType(dtype)) {
      throw new DTypeError(`Parameter.castInPlace: only float parameters cast to float dtypes; parameter #${this.id} is ${this.dtype}, asked for ${dtype}`);
    }
    const converted = noGrad(() => cast(this, dtype));
    this.swapStorage(takeStorage(converted, 'Parameter.castInPlace'));
    this.dtype = dtype;
    return this;
  }

  private swapStorage(next: Storage): void {
    const old = this.storage!;
    this.storage = next;
    ENGINE.releaseStorage(old);
  }

  override toString(): string {
    if (this.disposed) return `Parameter(#${this.id}, disposed)`;
    return `Parameter(#${this.id}, ${describeShape(this.shape)}, ${this.dtype}, ${this.backend}${this.requiresGrad ? '' : ', requiresGrad=false'})`;
  }
}
