/**
 * OpInfo record for matmul (core ops/matmul.ts): transposes, broadcast batch dims, K = 1, odd
 * M/N/K, empty dims, a shape large enough for blocked kernels, every float dtype (f16, bf16 and
 * both fp8 formats as storage, f32 accumulation). Tolerances add f32 accumulation error scaled by
 * sum |a||b| (tolerance.ts).
 */
import { FLOAT_DTYPES, broadcastIndexMap, sizeOf } from '@ring-linear/core';
import type { ErrorInput, HostTensor, OpInfo, SampleInput, SampleRng } from './types.js';
import { broadcastShape } from '../host.js';

interface MatmulCase {
  readonly a: number[];
  readonly b: number[];
  readonly transposeA?: boolean;
  readonly transposeB?: boolean;
  readonly desc: string;
  readonly large?: boolean;
}

const CASES: readonly MatmulCase[] = [
  { a: [5, 7], b: [7, 3], desc: 'plain' },
  { a: [7, 5], b: [7, 3], transposeA: true, desc: 'transposeA' },
  { a: [5, 7], b: [3, 7], transposeB: true, desc: 'transposeB' },
  { a: [7, 5], b: [3, 7], transposeA: true, transposeB: true, desc: 'both transposed' },
  { a: [2, 3, 4, 5], b: [5, 6], desc: 'batched a, shared b' },
  { a: [3, 1, 4, 5], b: [2, 5, 6], desc: 'broadcast batch dims' },
  { a: [2, 6, 4], b: [2, 6, 3], transposeA: true, desc: 'batched, transposeA' },
  { a: [1, 4, 9], b: [3, 5, 9], transposeB: true, desc: 'batch 1 against 3, transposeB' },
  { a: [4, 1], b: [1, 6], desc: 'K = 1 (outer product)' },
  { a: [1, 9], b: [9, 1], desc: 'M = N = 1 (dot product)' },
  { a: [13, 17], b: [17, 11], desc: 'odd M, N, K' },
  { a: [3, 0], b: [0, 4], desc: 'K = 0 (zeros)' },
  { a: [0, 5], b: [5, 3], desc: 'M = 0 (empty)' },
  { a: [67, 129], b: [129, 71], desc: 'larger (blocking)', large: true },
  { a: [2, 65, 33], b: [2, 47, 65], transposeA: true, transposeB: true, desc: 'larger, batched, both transposed', large: true },
];

/** Indices into a and b for output (batch, m, n, k), honouring transposes and broadcasting. */
function matmulRef(a: HostTensor, b: HostTensor, tA: boolean, tB: boolean, abs = false): { shape: number[]; values: Float64Array } {
  const ra = a.shape.length;
  const rb = b.shape.length;
  const M = a.shape[tA ? ra - 1 : ra - 2]!;
  const K = a.shape[tA ? ra - 2 : ra - 1]!;
  const N = b.shape[tB ? rb - 2 : rb - 1]!;
  const batch = broadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const mapA = broadcastIndexMap(a.shape.slice(0, -2), batch);
  const mapB = broadcastIndexMap(b.shape.slice(0, -2), batch);
  const nb = sizeOf(batch);
  const out = new Float64Array(nb * M * N);
  const f = abs ? Math.abs : (x: number) => x;
  for (let p = 0; p < nb; p++) {
    const oa = mapA[p]! * M * K;
    const ob = mapB[p]! * K * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a.values[oa + (tA ? k * M + m : m * K + k)]!;
          const bv = b.values[ob + (tB ? n * K + k : k * N + n)]!;
          s += f(av) * f(bv);
        }
        out[(p * M + m) * N + n] = s;
      }
    }
  }
  return { shape: [...batch, M, N], values: out };
}

function attrsOf(c: MatmulCase): Record<string, unknown> {
  return { transposeA: c.transposeA ?? false, transposeB: c.transposeB ?? false };
}

const errors = (rng: SampleRng): ErrorInput[] => [
  { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor([4, 5], 'f32')], error: 'ShapeError', message: /matmul: inner dimensions differ: a \[2, 3\] has K=3, b \[4, 5\] has K=4/, desc: 'inner dims differ' },
  { inputs: [rng.tensor([3, 2], 'f32'), rng.tensor([3, 5], 'f32')], attrs: { transposeB: true }, error: 'ShapeError', message: /matmul: inner dimensions differ: a \[3, 2\] has K=2, b \[3, 5\]\^T has K=5/, desc: 'inner dims differ after transpose' },
  { inputs: [rng.tensor([3], 'f32'), rng.tensor([3, 2], 'f32')], error: 'ShapeError', message: /matmul: inputs must have rank >= 2, got \[3\] and \[3, 2\]/, desc: 'rank 1' },
  { inputs: [rng.tensor([2, 2, 3], 'f32'), rng.tensor([3, 3, 4], 'f32')], error: 'ShapeError', message: /matmul \(batch dims\): shapes \[2\] and \[3\] do not broadcast/, desc: 'batch dims do not broadcast' },
  { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor([3, 2], 'bf16')], error: 'DTypeError', message: /matmul: 'a' and 'b' must have the same dtype, got f32 and bf16/, desc: 'dtype mismatch' },
  { inputs: [rng.tensor([2, 3], 'i32'), rng.tensor([3, 2], 'i32')], error: 'DTypeError', message: /matmul: input 'a' must have dtype .*got i32/, desc: 'integer inputs' },
  { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor([3, 2], 'f32')], attrs: { transposeA: 'yes' }, error: 'AttrError', message: /matmul: attribute 'transposeA' expected a boolean, got 'yes'/, desc: 'transposeA not a boolean' },
  { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor([3, 2], 'f32')], attrs: { alpha: 1 }, error: 'AttrError', message: /matmul: unknown attribute 'alpha'/, desc: 'unknown attribute' },
  { inputs: [rng.tensor([2, 3], 'f32'), rng.tensor([3, 2], 'f32')], disposed: [0], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed input' },
];

const matmulInfo: OpInfo = {
  op: 'matmul',
  dtypes: FLOAT_DTYPES,
  samples: (rng, dtype) =>
    CASES.map(
      (c): SampleInput => ({
        inputs: [rng.tensor(c.a, dtype), rng.tensor(c.b, dtype)],
        attrs: attrsOf(c),
        desc: c.desc,
        ...(c.large ? { noGrad: true } : {}),
      }),
    ),
  reference: ([a, b], attrs) => {
    const r = matmulRef(a!, b!, attrs.transposeA === true, attrs.transposeB === true);
    return [{ shape: r.shape, dtype: a!.dtype, values: r.values }];
  },
  magnitude: ([a, b], attrs) => [matmulRef(a!, b!, attrs.transposeA === true, attrs.transposeB === true, true).values],
  tfjs: (tf, [a, b], attrs) => {
    // tfjs broadcasts batch dims only in simple cases ([3,1] against [2] goes wrong): expand first.
    const batch = broadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    const full = (t: any) => tf.broadcastTo(t, [...batch, ...t.shape.slice(-2)]);
    return tf.matMul(full(a), full(b), attrs.transposeA === true, attrs.transposeB === true);
  },
  grad: true,
  errors,
};

export const matmulOpInfos: OpInfo[] = [matmulInfo];
