/** Helpers shared by the attention op definitions: validation, host constants, dtype sets. */
import {
  AttrError,
  ShapeError,
  describeShape,
  findBackend,
  getBackend,
  tensor,
  zeros,
  type DType,
  type Tensor,
  type TensorMeta,
} from '@ring-linear/core';

/** Storage dtypes the attention ops take for activations (computed in f32 or wider). */
export const ACT_DTYPES: readonly DType[] = ['f32', 'f16', 'bf16'];

export function assertRank4(op: string, name: string, m: TensorMeta, layout: string): void {
  if (m.shape.length !== 4) {
    throw new ShapeError(`${op}: '${name}' must have rank 4 ${layout}, got shape ${describeShape(m.shape)}`);
  }
}

/**
 * Checks cumulative sequence offsets of a packed batch: [0, t1, t2, ..., total], strictly
 * increasing (every sequence has at least one token). Returns them as a plain array.
 */
export function checkCuSeqlens(op: string, cu: readonly number[], total: number): number[] {
  const list = [...cu];
  const show = () => `[${list.slice(0, 12).join(', ')}${list.length > 12 ? ', ...' : ''}]`;
  if (list.length < 2) {
    throw new AttrError(`${op}: 'cuSeqlens' must hold at least 2 offsets [0, ..., ${total}], got ${show()}`);
  }
  if (list[0] !== 0) throw new AttrError(`${op}: 'cuSeqlens' must start at 0, got ${show()}`);
  for (let i = 1; i < list.length; i++) {
    if (!Number.isInteger(list[i]) || list[i]! <= list[i - 1]!) {
      throw new AttrError(
        `${op}: 'cuSeqlens' must be strictly increasing integers (offset ${i} is ${list[i]} after ${list[i - 1]}), got ${show()}`,
      );
    }
  }
  if (list[list.length - 1] !== total) {
    throw new AttrError(`${op}: the last 'cuSeqlens' offset must equal the packed length ${total}, got ${show()}`);
  }
  return list;
}

/** Sequence segments [start, end) of a packed batch, or the whole length when not packed. */
export function packedSegments(cu: readonly number[] | null | undefined, total: number): [number, number][] {
  if (!cu) return [[0, total]];
  const out: [number, number][] = [];
  for (let i = 0; i + 1 < cu.length; i++) out.push([cu[i]!, cu[i + 1]!]);
  return out;
}

/** A host-made f32/i32 constant on the same backend as `like` (composites build index tables so). */
export function constantLike(like: Tensor, values: Float32Array | Int32Array | Uint8Array | number[], shape: readonly number[], dtype: DType = 'f32'): Tensor {
  return tensor(values, shape, dtype, findBackend(like.backend));
}

/** Zeros of a shape on `like`'s backend. */
export function zerosOn(like: Tensor, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  if (getBackend().name === like.backend) return zeros(shape, dtype);
  return constantLike(like, new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, dtype);
}

/** Normalizes optional cuSeqlens given as an array, a typed array or nothing. */
export function cuSeqlensAttr(cu: readonly number[] | Int32Array | null | undefined): number[] | null {
  if (cu === undefined || cu === null) return null;
  return Array.from(cu);
}
