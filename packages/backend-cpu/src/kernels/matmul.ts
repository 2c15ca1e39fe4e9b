/** Batched matmul with transposes and broadcast batch dims. */
import { broadcastIndexMap, sizeOf, type TensorInfo } from '@ring-linear/core';
import { commit, outValues, register, values } from '../util.js';
import { gemmF32 } from './gemm.js';

register('matmul', ({ inputs: [a, b], outputs: [y], attrs }) => {
  const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
  const av = values(a!) as Float32Array;
  const bv = values(b!) as Float32Array;
  const yv = outValues(y!) as Float32Array;
  const ra = a!.shape.length;
  const M = y!.shape[y!.shape.length - 2]!;
  const N = y!.shape[y!.shape.length - 1]!;
  const K = a!.shape[transposeA ? ra - 2 : ra - 1]!;
  const batchShape = y!.shape.slice(0, -2);
  const batch = sizeOf(batchShape);
  const mapA = batchMap(a!, batchShape);
  const mapB = batchMap(b!, batchShape);
  // One GEMM per output batch; offsets address the (broadcast) operand matrices in place.
  for (let i = 0; i < batch; i++) {
    gemmF32(av, bv, yv, M, N, K, transposeA, transposeB, mapA[i]! * M * K, mapB[i]! * K * N, i * M * N);
  }
  commit(y!, yv);
});

function batchMap(t: TensorInfo, batchShape: readonly number[]): Int32Array {
  return broadcastIndexMap(t.shape.slice(0, -2), batchShape);
}
