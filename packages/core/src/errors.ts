/**
 * Typed errors. Every error says what was expected and what came, and names the op where
 * there is one. They are thrown before any work is enqueued on a backend.
 */
export class RingLinearError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Shapes that do not fit together (rank, sizes, broadcasting). */
export class ShapeError extends RingLinearError {}

/** A dtype the op does not accept, or mismatched dtypes. */
export class DTypeError extends RingLinearError {}

/** An attribute (op parameter) of the wrong type or out of range. */
export class AttrError extends RingLinearError {}

/** A tensor used after dispose(). */
export class DisposedTensorError extends RingLinearError {}

/** The backend has no kernel for the op and the op has no composite fallback. */
export class MissingKernelError extends RingLinearError {}

/** Backend selection, initialization or device failure. */
export class BackendError extends RingLinearError {}

/** Synchronous read attempted on a backend that only offers async reads. */
export class SyncReadError extends RingLinearError {}

/** Autograd misuse: no path to the requested inputs, missing gradient definition, non-scalar loss. */
export class GradientError extends RingLinearError {}

/** Tensors from different backends mixed in one op. */
export class BackendMismatchError extends RingLinearError {}

export function describeShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
