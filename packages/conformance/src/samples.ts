/**
 * Shapes and value helpers that OpInfo records share: the broadcasting pairs every binary op is
 * tried on, the unary shapes (scalar, size-1, odd, empty, one larger), special values.
 */
import type { DType } from '@ring-linear/core';
import type { HostTensor, SampleRng } from './opinfo/types.js';
import { host, isRepresentable } from './host.js';

/** Shapes for elementwise unary ops: scalar, size 1, odd sizes, rank 3 with a 1, empty, larger. */
export const UNARY_SHAPES: readonly (readonly number[])[] = [[], [1], [7], [3, 5], [2, 1, 4], [2, 0, 3], [3, 97]];

/** Broadcasting pairs for binary ops, with what each one exercises. */
export const BINARY_SHAPES: readonly { readonly a: readonly number[]; readonly b: readonly number[]; readonly desc: string }[] = [
  { a: [4, 6], b: [4, 6], desc: 'same shape' },
  { a: [3, 1], b: [1, 5], desc: 'broadcast [3,1] x [1,5]' },
  { a: [], b: [2, 3], desc: 'scalar x tensor' },
  { a: [2, 3], b: [], desc: 'tensor x scalar' },
  { a: [2, 3, 4], b: [4], desc: 'rank mismatch (trailing vector)' },
  { a: [5], b: [3, 1, 5], desc: 'rank mismatch (leading dims on b)' },
  { a: [2, 1, 3], b: [1, 7, 1], desc: 'size-1 dims on both sides, odd sizes' },
  { a: [1], b: [1], desc: 'one element' },
  { a: [0, 3], b: [1, 3], desc: 'empty' },
  { a: [17, 33], b: [33], desc: 'larger, broadcast row' },
];

/** Dtype-representable values from a list (used for specials such as NaN, inf, -0, ties). */
export function representableValues(dtype: DType, candidates: readonly number[]): number[] {
  return candidates.filter((v) => isRepresentable(dtype, v));
}

/** A 1-D host tensor of the candidates representable in `dtype`. */
export function specialsTensor(dtype: DType, candidates: readonly number[]): HostTensor {
  const vals = representableValues(dtype, candidates);
  return host([vals.length], dtype, vals);
}

/** Shuffled copy of values into a shape, cycling if the shape is larger. */
export function fillFrom(rng: SampleRng, shape: readonly number[], dtype: DType, values: readonly number[]): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = values[i % values.length]!;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return host(shape, dtype, out);
}
