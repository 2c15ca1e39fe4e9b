/** Helpers shared by op definitions. */
import { DTypeError, ShapeError, describeShape } from '../errors.js';
import { getBackend, runOp1, tensor } from '../engine.js';
import { shapesEqual, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';
import type { DType } from '../dtype/dtype.js';
import type { TensorMeta } from '../op.js';

/** A number becomes a scalar tensor of `like`'s dtype on `like`'s backend. */
export function asTensor(x: Tensor | number | boolean, like?: Tensor | number | boolean, dtype?: DType): Tensor {
  if (x instanceof Tensor) return x;
  const ref = like instanceof Tensor ? like : undefined;
  const dt: DType = dtype ?? ref?.dtype ?? (typeof x === 'boolean' ? 'bool' : 'f32');
  const backend = ref ? ref.live('scalar operand').backend : getBackend();
  return tensor(x, [], dt, backend);
}

export function assertSameDType(op: string, metas: readonly TensorMeta[], names?: readonly string[]): DType {
  const d = metas[0]!.dtype;
  for (let i = 1; i < metas.length; i++) {
    if (metas[i]!.dtype !== d) {
      const n = (j: number) => (names ? `'${names[j]}'` : `input ${j}`);
      throw new DTypeError(`${op}: ${n(0)} and ${n(i)} must have the same dtype, got ${d} and ${metas[i]!.dtype} (use cast())`);
    }
  }
  return d;
}

export function assertRank(op: string, name: string, meta: TensorMeta, rank: number | readonly number[]): void {
  const ok = typeof rank === 'number' ? meta.shape.length === rank : rank.includes(meta.shape.length);
  if (!ok) {
    throw new ShapeError(`${op}: '${name}' must have rank ${typeof rank === 'number' ? rank : rank.join(' or ')}, got shape ${describeShape(meta.shape)}`);
  }
}

/**
 * Sums a broadcast gradient back to an input's shape: over the leading dims the input lacks and
 * over dims where the input has size 1.
 */
export function reduceToShape(g: Tensor, shape: Shape): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const summed = axes.length ? runOp1('sum', [g], { axes, keepDims: true }) : g;
  return runOp1('reshape', [summed], { shape: [...shape] });
}
