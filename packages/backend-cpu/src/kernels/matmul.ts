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
  for (let i = 0; i < batch; i++) {
    gemmF32(
      av.subarray(mapA[i]! * M * K, (mapA[i]! + 1) * M * K),
      bv.subarray(mapB[i]! * K * N, (mapB[i]! + 1) * K * N),
      yv.subarray(i * M * N, (i + 1) * M * N),
      M, N, K, transposeA, transposeB,
    );
  }
  commit(y!, yv);
});

function batchMap(t: TensorInfo, batchShape: readonly number[]): Int32Array {
  return broadcastIndexMap(t.shape.slice(0, -2), batchShape);
}
