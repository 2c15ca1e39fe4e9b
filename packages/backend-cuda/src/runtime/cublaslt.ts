/**
 * cuBLASLt GEMMs. Row-major C[M,N] = op(A)[M,K] op(B)[K,N] is computed as the column-major
 * product C^T = op(B)^T op(A)^T: the row-major buffers read as column-major are already the
 * transposes, so no data moves (see `planGemm`). Descriptors and the heuristic's algorithm are
 * cached per problem (dtype, transposes, M, N, K, batch, strides); each call after the first is a
 * single cublasLtMatmul.
 *
 * Enum values are those of cublasLt.h / library_types.h (CUDA 12 and 13 agree).
 */
import { BackendError } from '@ring-linear/core';
import { declare, OUT, type CFunction, type OpenedLibrary } from './ffi.js';

export const CUDA_R_32F = 0;
export const CUDA_R_16F = 2;
export const CUDA_R_16BF = 14;
export const CUBLAS_COMPUTE_32F = 68;
export const CUBLAS_COMPUTE_32F_FAST_TF32 = 77;
export const CUBLAS_OP_N = 0;
export const CUBLAS_OP_T = 1;
// cublasLtMatmulDescAttributes_t
export const CUBLASLT_MATMUL_DESC_TRANSA = 3;
export const CUBLASLT_MATMUL_DESC_TRANSB = 4;
// cublasLtMatrixLayoutAttribute_t
export const CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5;
export const CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6;
// cublasLtMatmulPreferenceAttributes_t
export const CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1;
/** sizeof(cublasLtMatmulHeuristicResult_t): algo (8 x u64) + size_t + int status + float waves + int[4]. */
export const HEURISTIC_RESULT_BYTES = 96;
export const ALGO_BYTES = 64;

const LT_PROTOS = [
  'size_t cublasLtGetVersion()',
  'int cublasLtCreate(void *handle)',
  'int cublasLtDestroy(void *handle)',
  'int cublasLtMatmulDescCreate(void *desc, int computeType, int scaleType)',
  'int cublasLtMatmulDescDestroy(void *desc)',
  'int cublasLtMatmulDescSetAttribute(void *desc, int attr, const void *buf, size_t size)',
  'int cublasLtMatrixLayoutCreate(void *layout, int type, uint64_t rows, uint64_t cols, int64_t ld)',
  'int cublasLtMatrixLayoutDestroy(void *layout)',
  'int cublasLtMatrixLayoutSetAttribute(void *layout, int attr, const void *buf, size_t size)',
  'int cublasLtMatmulPreferenceCreate(void *pref)',
  'int cublasLtMatmulPreferenceDestroy(void *pref)',
  'int cublasLtMatmulPreferenceSetAttribute(void *pref, int attr, const void *buf, size_t size)',
  'int cublasLtMatmulAlgoGetHeuristic(void *handle, void *desc, void *a, void *b, void *c, void *d, void *pref, int requested, void *results, void *count)',
  'int cublasLtMatmul(void *handle, void *desc, const void *alpha, uint64_t a, void *adesc, uint64_t b, void *bdesc, const void *beta, uint64_t c, void *cdesc, uint64_t d, void *ddesc, const void *algo, uint64_t workspace, size_t workspaceBytes, void *stream)',
] as const;

type LtFn =
  | 'cublasLtGetVersion' | 'cublasLtCreate' | 'cublasLtDestroy' | 'cublasLtMatmulDescCreate' | 'cublasLtMatmulDescDestroy'
  | 'cublasLtMatmulDescSetAttribute' | 'cublasLtMatrixLayoutCreate' | 'cublasLtMatrixLayoutDestroy'
  | 'cublasLtMatrixLayoutSetAttribute' | 'cublasLtMatmulPreferenceCreate' | 'cublasLtMatmulPreferenceDestroy'
  | 'cublasLtMatmulPreferenceSetAttribute' | 'cublasLtMatmulAlgoGetHeuristic' | 'cublasLtMatmul';

const STATUS: Record<number, string> = {
  1: 'NOT_INITIALIZED', 3: 'ALLOC_FAILED', 7: 'INVALID_VALUE', 8: 'ARCH_MISMATCH', 11: 'MAPPING_ERROR',
  13: 'EXECUTION_FAILED', 14: 'INTERNAL_ERROR', 15: 'NOT_SUPPORTED', 16: 'LICENSE_ERROR',
};

export type GemmDType = 'f32' | 'f16' | 'bf16';

/** A GEMM problem in row-major terms. Strides are in elements between consecutive batch matrices (0 = broadcast). */
export interface GemmProblem {
  readonly dtype: GemmDType;
  /** Output dtype (default: dtype). bf16/f16 inputs may write an f32 output. */
  readonly outDType?: 'f32' | 'f16' | 'bf16';
  readonly transposeA: boolean;
  readonly transposeB: boolean;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly batch: number;
  readonly strideA: number;
  readonly strideB: number;
  readonly strideC: number;
  /** f32 only: allow TF32 tensor cores. */
  readonly tf32?: boolean;
}

/** The column-major cuBLASLt call that computes a row-major problem (pure; unit-tested). */
export interface GemmPlan {
  readonly transa: number;
  readonly transb: number;
  /** Layouts as (rows, cols, ld) of the column-major operands: first operand = B, second = A. */
  readonly first: { rows: number; cols: number; ld: number; stride: number };
  readonly second: { rows: number; cols: number; ld: number; stride: number };
  readonly out: { rows: number; cols: number; ld: number; stride: number };
}

export function planGemm(p: GemmProblem): GemmPlan {
  const { m, n, k } = p;
  // cuBLAS: D (N x M, col-major, ld N) = op1(first) op2(second), first = B's buffer, second = A's.
  // B row-major [K,N] read column-major is B^T [N x K] (ld N): no transpose needed.
  // B stored [N,K] (transposeB) read column-major is [K x N] (ld K): transpose it back.
  const first = p.transposeB ? { rows: k, cols: n, ld: k, stride: p.strideB } : { rows: n, cols: k, ld: n, stride: p.strideB };
  const second = p.transposeA ? { rows: m, cols: k, ld: m, stride: p.strideA } : { rows: k, cols: m, ld: k, stride: p.strideA };
  return {
    transa: p.transposeB ? CUBLAS_OP_T : CUBLAS_OP_N,
    transb: p.transposeA ? CUBLAS_OP_T : CUBLAS_OP_N,
    first,
    second,
    out: { rows: n, cols: m, ld: n, stride: p.strideC },
  };
}

export function gemmKey(p: GemmProblem): string {
  return [p.dtype, p.outDType ?? p.dtype, +p.transposeA, +p.transposeB, p.m, p.n, p.k, p.batch, p.strideA, p.strideB, p.strideC, +!!p.tf32].join(',');
}

const CUDA_TYPE: Record<string, number> = { f32: CUDA_R_32F, f16: CUDA_R_16F, bf16: CUDA_R_16BF };

interface CachedGemm {
  readonly desc: bigint;
  readonly layouts: readonly [bigint, bigint, bigint];
  readonly algo: Uint8Array;
  readonly workspace: number;
}

export class CublasLt {
  readonly fn: Record<LtFn, CFunction>;
  readonly handle: bigint;
  readonly version: number;
  private readonly cache = new Map<string, CachedGemm>();
  private readonly alpha = new Float32Array([1]);
  private readonly beta = new Float32Array([0]);
  /** Bound on cached problems; the least recently used one is destroyed past it. */
  maxCached = 512;

  constructor(readonly library: OpenedLibrary) {
    this.fn = declare<LtFn>(library.handle, LT_PROTOS);
    this.version = Number(this.fn.cublasLtGetVersion());
    this.check('cublasLtCreate', this.fn.cublasLtCreate(OUT.u64));
    this.handle = OUT.u64[0]!;
  }

  check(what: string, r: number): void {
    if (r !== 0) throw new BackendError(`cuBLASLt error in ${what}: CUBLAS_STATUS_${STATUS[r] ?? 'UNKNOWN'} (${r})`);
  }

  get cachedProblems(): number {
    return this.cache.size;
  }

  private setAttr(fn: 'cublasLtMatmulDescSetAttribute' | 'cublasLtMatrixLayoutSetAttribute' | 'cublasLtMatmulPreferenceSetAttribute', obj: bigint, attr: number, value: Int32Array | BigInt64Array | BigUint64Array): void {
    this.check(fn, this.fn[fn](obj, attr, value, value.byteLength));
  }

  private layout(type: number, l: { rows: number; cols: number; ld: number; stride: number }, batch: number): bigint {
    this.check('cublasLtMatrixLayoutCreate', this.fn.cublasLtMatrixLayoutCreate(OUT.u64, type, l.rows, l.cols, l.ld));
    const h = OUT.u64[0]!;
    if (batch > 1) {
      this.setAttr('cublasLtMatrixLayoutSetAttribute', h, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, new Int32Array([batch]));
      this.setAttr('cublasLtMatrixLayoutSetAttribute', h, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, new BigInt64Array([BigInt(l.stride)]));
    }
    return h;
  }

  private prepare(p: GemmProblem, workspaceBytes: number): CachedGemm {
    const key = gemmKey(p);
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit); // most recently used goes last
      return hit;
    }
    const plan = planGemm(p);
    const inType = CUDA_TYPE[p.dtype]!;
    const outType = CUDA_TYPE[p.outDType ?? p.dtype]!;
    const compute = p.dtype === 'f32' && p.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    this.check('cublasLtMatmulDescCreate', this.fn.cublasLtMatmulDescCreate(OUT.u64, compute, CUDA_R_32F));
    const desc = OUT.u64[0]!;
    this.setAttr('cublasLtMatmulDescSetAttribute', desc, CUBLASLT_MATMUL_DESC_TRANSA, new Int32Array([plan.transa]));
    this.setAttr('cublasLtMatmulDescSetAttribute', desc, CUBLASLT_MATMUL_DESC_TRANSB, new Int32Array([plan.transb]));
    const la = this.layout(inType, plan.first, p.batch);
    const lb = this.layout(inType, plan.second, p.batch);
    const lc = this.layout(outType, plan.out, p.batch);
    this.check('cublasLtMatmulPreferenceCreate', this.fn.cublasLtMatmulPreferenceCreate(OUT.u64));
    const pref = OUT.u64[0]!;
    const results = new Uint8Array(HEURISTIC_RESULT_BYTES * 4);
    const count = new Int32Array(1);
    try {
      this.setAttr('cublasLtMatmulPreferenceSetAttribute', pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, new BigUint64Array([BigInt(workspaceBytes)]));
      this.check('cublasLtMatmulAlgoGetHeuristic', this.fn.cublasLtMatmulAlgoGetHeuristic(this.handle, desc, la, lb, lc, lc, pref, 4, results, count));
    } finally {
      this.fn.cublasLtMatmulPreferenceDestroy(pref);
    }
    const dv = new DataView(results.buffer);
    let pick = -1;
    for (let i = 0; i < count[0]!; i++) {
      if (dv.getInt32(i * HEURISTIC_RESULT_BYTES + ALGO_BYTES + 8, true) === 0) {
        pick = i;
        break;
      }
    }
    if (pick < 0) {
      this.destroy({ desc, layouts: [la, lb, lc], algo: new Uint8Array(0), workspace: 0 });
      throw new BackendError(`cuBLASLt has no algorithm for matmul ${key} (dtype ${p.dtype}, M=${p.m} N=${p.n} K=${p.k}, batch ${p.batch})`);
    }
    const off = pick * HEURISTIC_RESULT_BYTES;
    const entry: CachedGemm = {
      desc,
      layouts: [la, lb, lc],
      algo: results.slice(off, off + ALGO_BYTES),
      workspace: Number(dv.getBigUint64(off + ALGO_BYTES, true)),
    };
    this.cache.set(key, entry);
    if (this.cache.size > this.maxCached) {
      const [oldKey, old] = this.cache.entries().next().value as [string, CachedGemm];
      this.cache.delete(oldKey);
      this.destroy(old);
    }
    return entry;
  }

  /** Enqueues D = op(A) op(B) (row-major) on `stream`. a, b, d are device pointers. */
  matmul(p: GemmProblem, a: number, b: number, d: number, workspace: number, workspaceBytes: number, stream: bigint): void {
    const e = this.prepare(p, workspaceBytes);
    const [la, lb, lc] = e.layouts;
    const r = this.fn.cublasLtMatmul(this.handle, e.desc, this.alpha, b, la, a, lb, this.beta, d, lc, d, lc, e.algo, workspace, workspaceBytes, stream);
    this.check('cublasLtMatmul', r);
  }

  private destroy(e: CachedGemm): void {
    this.fn.cublasLtMatmulDescDestroy(e.desc);
    for (const l of e.layouts) this.fn.cublasLtMatrixLayoutDestroy(l);
  }

  dispose(): void {
    for (const e of this.cache.values()) this.destroy(e);
    this.cache.clear();
    this.fn.cublasLtDestroy(this.handle);
  }
}
