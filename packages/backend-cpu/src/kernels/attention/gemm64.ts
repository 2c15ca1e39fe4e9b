/**
 * A small float64 GEMM for the attention kernels' tiles (chunks of 64 tokens, heads of 128 channels:
 * everything fits in L2, so no packing): C[M, N] (+)= A[M, K] B[K, N], row-major with leading
 * dimensions and element offsets, so tiles of larger buffers are addressed in place.
 *
 * Register-blocked 2 x 4: each k step loads 2 values of A and 4 of B for 8 multiply-adds kept in
 * locals (V8 holds doubles in XMM registers; 8 accumulators do not spill). Edges fall back to
 * plain loops. `| 0` on index arithmetic lets V8 drop overflow checks.
 */
export function gemm(
  M: number, N: number, K: number,
  A: Float64Array, ao: number, lda: number,
  B: Float64Array, bo: number, ldb: number,
  C: Float64Array, co: number, ldc: number,
  accumulate: boolean,
): void {
  const M2 = M - (M % 2);
  const N4 = N - (N % 4);
  for (let i = 0; i < M2; i += 2) {
    const a0 = (ao + i * lda) | 0;
    const a1 = (a0 + lda) | 0;
    const c0 = (co + i * ldc) | 0;
    const c1 = (c0 + ldc) | 0;
    for (let j = 0; j < N4; j += 4) {
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let bk = (bo + j) | 0;
      for (let k = 0; k < K; k++) {
        const x0 = A[a0 + k]!;
        const x1 = A[a1 + k]!;
        const y0 = B[bk]!;
        const y1 = B[bk + 1]!;
        const y2 = B[bk + 2]!;
        const y3 = B[bk + 3]!;
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
        bk = (bk + ldb) | 0;
      }
      const d0 = (c0 + j) | 0;
      const d1 = (c1 + j) | 0;
      if (accumulate) {
        C[d0] += s00; C[d0 + 1] += s01; C[d0 + 2] += s02; C[d0 + 3] += s03;
        C[d1] += s10; C[d1 + 1] += s11; C[d1 + 2] += s12; C[d1 + 3] += s13;
      } else {
        C[d0] = s00; C[d0 + 1] = s01; C[d0 + 2] = s02; C[d0 + 3] = s03;
        C[d1] = s10; C[d1 + 1] = s11; C[d1 + 2] = s12; C[d1 + 3] = s13;
      }
    }
    for (let j = N4; j < N; j++) {
      let s0 = 0;
      let s1 = 0;
      let bk = (bo + j) | 0;
      for (let k = 0; k < K; k++) {
        const y = B[bk]!;
        s0 += A[a0 + k]! * y;
        s1 += A[a1 + k]! * y;
        bk = (bk + ldb) | 0;
      }
      if (accumulate) {
        C[c0 + j] += s0;
        C[c1 + j] += s1;
      } else {
        C[c0 + j] = s0;
        C[c1 + j] = s1;
      }
    }
  }
  if (M2 < M) {
    const a0 = (ao + M2 * lda) | 0;
    const c0 = (co + M2 * ldc) | 0;
    for (let j = 0; j < N; j++) {
      let s = 0;
      let bk = (bo + j) | 0;
      for (let k = 0; k < K; k++) {
        s += A[a0 + k]! * B[bk]!;
        bk = (bk + ldb) | 0;
      }
      if (accumulate) C[c0 + j] += s;
      else C[c0 + j] = s;
    }
  }
}

/** dst[c, r] = src[r, c] for an R x Cc block (leading dims given): a transposed copy. */
export function transposeInto(
  R: number, Cc: number,
  src: Float64Array, so: number, lds: number,
  dst: Float64Array, dO: number, ldd: number,
): void {
  for (let r = 0; r < R; r++) {
    const s = so + r * lds;
    for (let c = 0; c < Cc; c++) dst[dO + c * ldd + r] = src[s + c]!;
  }
}
