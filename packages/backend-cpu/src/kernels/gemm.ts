/**
 * Single-matrix f32 GEMM: C[M,N] = op(A) op(B), op = optional transpose, accumulation in f32
 * registers... (reference version: row-major packing then an i-k-j loop).
 */
export function gemmF32(
  a: Float32Array, b: Float32Array, c: Float32Array,
  M: number, N: number, K: number, transposeA: boolean, transposeB: boolean,
): void {
  // Pack op(A) as [M, K] and op(B) as [K, N] row-major.
  let A = a;
  if (transposeA) {
    A = new Float32Array(M * K);
    for (let k = 0; k < K; k++) for (let m = 0; m < M; m++) A[m * K + k] = a[k * M + m]!;
  }
  let B = b;
  if (transposeB) {
    B = new Float32Array(K * N);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) B[k * N + n] = b[n * K + k]!;
  }
  const acc = new Float64Array(N);
  for (let m = 0; m < M; m++) {
    acc.fill(0);
    for (let k = 0; k < K; k++) {
      const av = A[m * K + k]!;
      const row = k * N;
      for (let n = 0; n < N; n++) acc[n] += av * B[row + n]!;
    }
    for (let n = 0; n < N; n++) c[m * N + n] = acc[n]!;
  }
}
