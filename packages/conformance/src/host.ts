/**
 * Host tensors (exact float64 values of a dtype) and the helpers references are written with:
 * rounding to a dtype, conversion to and from backend tensors, broadcasting and reduction loops.
 * References compute in float64 from the inputs' exact values; the runner rounds their outputs
 * to the output dtype once (roundToDtypeValue), as a backend computing in f32 and rounding once
 * would.
 */
import {
  broadcastIndexMap,
  encodeHost,
  fromBytes,
  isLowPrecisionFloat,
  roundToDtype,
  sizeOf,
  stridesOf,
  type Backend,
  type DType,
  type Tensor,
} from '@ring-linear/core';
import type { HostTensor } from './opinfo/types.js';

/** A host tensor from values (they must already be representable in `dtype`). */
export function host(shape: readonly number[], dtype: DType, values: ArrayLike<number>): HostTensor {
  const n = sizeOf(shape);
  if (values.length !== n) throw new RangeError(`host(): shape [${shape.join(', ')}] holds ${n} values, got ${values.length}`);
  return { shape: [...shape], dtype, values: Float64Array.from(values) };
}

/** A host scalar (rank 0). */
export function hostScalar(value: number, dtype: DType): HostTensor {
  return host([], dtype, [roundToDtypeValue(dtype, value)]);
}

/**
 * A number as the dtype stores it, the way `cast` converts: floats round to nearest even (from
 * f32, see core's codecs); float -> int truncates toward zero (NaN/inf -> 0) and wraps (i32: mod
 * 2^32, u8: mod 2^8); bool is x != 0.
 */
export function roundToDtypeValue(dtype: DType, v: number, saturate = false): number {
  switch (dtype) {
    case 'f32':
      return Math.fround(v);
    case 'i32':
      return Number.isFinite(v) ? Math.trunc(v) | 0 : 0;
    case 'u8':
      return Number.isFinite(v) ? (Math.trunc(v) | 0) & 255 : 0;
    case 'bool':
      return v !== 0 ? 1 : 0;
    default:
      return roundToDtype(dtype, v, saturate);
  }
}

/** Rounds every value of a float64 result to its dtype (a new host tensor). */
export function roundHost(t: HostTensor, saturate = false): HostTensor {
  const out = new Float64Array(t.values.length);
  for (let i = 0; i < out.length; i++) out[i] = roundToDtypeValue(t.dtype, t.values[i]!, saturate);
  return { shape: t.shape, dtype: t.dtype, values: out };
}

/** Whether a value is exactly representable in a dtype (NaN and inf where the dtype has them). */
export function isRepresentable(dtype: DType, v: number): boolean {
  if (Number.isNaN(v)) return dtype === 'f32' || isLowPrecisionFloat(dtype);
  if (!Number.isFinite(v)) return dtype === 'f32' || dtype === 'f16' || dtype === 'bf16' || dtype === 'f8e5m2';
  if (dtype === 'i32') return Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31;
  if (dtype === 'u8') return Number.isInteger(v) && v >= 0 && v < 256;
  if (dtype === 'bool') return v === 0 || v === 1;
  return roundToDtypeValue(dtype, v) === v;
}

/** Uploads a host tensor to a backend (exact: the values are representable). */
export function toTensor(h: HostTensor, backend: Backend): Tensor {
  return fromBytes(encodeHost(h.values, h.dtype), h.shape, h.dtype, backend);
}

/** Reads a tensor back (async, works on every backend) as a host tensor. */
export async function fromTensor(t: Tensor): Promise<HostTensor> {
  const data = await t.data();
  return { shape: [...t.shape], dtype: t.dtype, values: Float64Array.from(data) };
}

// ---------------------------------------------------------------------------------------------
// Reference building blocks (float64)

/** Elementwise map of one input; output dtype defaults to the input's. */
export function mapUnary(x: HostTensor, f: (v: number) => number, dtype: DType = x.dtype): HostTensor {
  const out = new Float64Array(x.values.length);
  for (let i = 0; i < out.length; i++) out[i] = f(x.values[i]!);
  return { shape: x.shape, dtype, values: out };
}

/** NumPy broadcast shape of several shapes (the references' own implementation). */
export function broadcastShape(...shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v !== 1) {
        if (d !== 1 && d !== v) throw new RangeError(`broadcastShape: [${shapes.map((x) => x.join(',')).join('] [')}] do not broadcast`);
        d = v;
      }
    }
    out.push(d);
  }
  return out;
}

/** Elementwise map of several broadcast inputs. */
export function mapBroadcast(xs: readonly HostTensor[], f: (...v: number[]) => number, dtype: DType): HostTensor {
  const shape = broadcastShape(...xs.map((x) => x.shape));
  const n = sizeOf(shape);
  const maps = xs.map((x) => broadcastIndexMap(x.shape, shape));
  const out = new Float64Array(n);
  const args = new Array<number>(xs.length);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < xs.length; k++) args[k] = xs[k]!.values[maps[k]![i]!]!;
    out[i] = f(...args);
  }
  return { shape, dtype, values: out };
}

/** Normalizes reduction axes (null/undefined = all; negative counted from the end), sorted. */
export function normAxes(axes: unknown, rank: number): number[] {
  if (axes === null || axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : (axes as number[]);
  return [...new Set(list.map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
}

/** The shape after reducing `axes`. */
export function reducedShape(shape: readonly number[], axes: readonly number[], keepDims: boolean): number[] {
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}

/**
 * Groups the input's elements by output element: for each output element, the reduced values in
 * increasing input index order (so "first occurrence" is well defined for argmax ties).
 */
export function reductionGroups(x: HostTensor, axes: readonly number[]): { groups: number[][]; positions: number[][] } {
  const shape = x.shape;
  const strides = stridesOf(shape);
  const keptShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const outStrides = stridesOf(keptShape);
  const outSize = sizeOf(keptShape);
  const groups: number[][] = Array.from({ length: outSize }, () => []);
  const positions: number[][] = Array.from({ length: outSize }, () => []);
  const n = sizeOf(shape);
  for (let i = 0; i < n; i++) {
    let o = 0;
    let pos = 0;
    let posStride = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      const idx = Math.floor(i / strides[d]!) % shape[d]!;
      if (axes.includes(d)) {
        pos += idx * posStride;
        posStride *= shape[d]!;
      } else o += idx * outStrides[d]!;
    }
    groups[o]!.push(x.values[i]!);
    positions[o]!.push(pos);
  }
  return { groups, positions };
}

/** Reduces `axes` of x with f (which sees one output element's values in index order). */
export function reduceHost(
  x: HostTensor,
  axes: readonly number[],
  keepDims: boolean,
  f: (vals: number[], positions: number[]) => number,
  dtype: DType = x.dtype,
): HostTensor {
  const { groups, positions } = reductionGroups(x, axes);
  return {
    shape: reducedShape(x.shape, axes, keepDims),
    dtype,
    values: Float64Array.from(groups.map((g, i) => f(g, positions[i]!))),
  };
}

/** Unflattens a flat index of a shape into a multi-index (for messages). */
export function unflatten(index: number, shape: readonly number[]): number[] {
  const strides = stridesOf(shape);
  return shape.map((d, i) => Math.floor(index / strides[i]!) % Math.max(d, 1));
}
