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
export const CUDA_R_8F_E4M3 = 28;
export const CUDA_R_8F_E5M2 = 29;
export const CUBLAS_COMPUTE_32F = 68;
export const CUBLAS_COMPUTE_32F_FAST_TF32 = 77;
export const CUBLAS_OP_N = 0;
export const CUBLAS_OP_T = 1;
// cublasLtMatmulDescAttributes_t
export const CUBLASLT_MATMUL_DESC_TRANSA = 3;
export const CUBLASLT_MATMUL_DESC_TRANSB = 4;
export const CUBLASLT_MATMUL_DESC_A_SCALE_POINTER = 17;
export const CUBLASLT_MATMUL_DESC_B_SCALE_POINTER = 18;
export const CUBLASLT_MATMUL_DESC_A_SCALE_MODE = 31;
export const CUBLASLT_MATMUL_DESC_B_SCALE_MODE = 32;
// cublasLtMatmulMatrixScale_t (CUDA 12.9+): one f32 per 128 elements along K, one per 128x128 block.
export const CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F = 0;
export const CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F = 4;
export const CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F = 5;
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

const CUDA_TYPE: Record<string, number> = { f32: CUDA_R_32F, f16: CUDA_R_16F, bf16: CUDA_R_16BF, f8e4m3: CUDA_R_8F_E4M3, f8e5m2: CUDA_R_8F_E5M2 };

export type Fp8DTypeName = 'f8e4m3' | 'f8e5m2';

/**
 * A block-scaled FP8 GEMM in row-major terms: y [M, N] = a [M, K] b [N, K]^T, a scaled per 1x128
 * tile along K, b per 128x128 block ('block') or per 1x128 tile ('tile').
 */
export interface Fp8GemmProblem {
  readonly aType: Fp8DTypeName;
  readonly bType: Fp8DTypeName;
  readonly outDType: GemmDType;
  readonly bLayout: 'block' | 'tile';
  readonly m: number;
  readonly n: number;
  readonly k: number;
}

/**
 * The column-major call for an FP8 problem. Hopper's FP8 GEMMs take only the "TN" form: cuBLAS's
 * A transposed and B not, both K-major. Row-major b [N, K] read column-major is K x N (ld K), so it
 * is cuBLAS's A with transa = T; row-major a [M, K] is cuBLAS's B (K x M, ld K, transb = N); D is
 * y^T: N x M with ld N. The scale modes follow the operands: A (our b) gets BLK128x128 or VEC128,
 * B (our a) VEC128. Scale tensor layouts cuBLASLt expects (the ones torch._scaled_mm passes):
 * VEC128 is [KT][outer] with the outer dim (M or N) fastest; BLK128x128 is [ceil(N/128)][ld] with
 * the K tiles fastest and ld = KT rounded up to a multiple of 4 (16-byte aligned rows).
 */
export interface Fp8GemmPlan {
  readonly transa: number;
  readonly transb: number;
  readonly first: { rows: number; cols: number; ld: number };
  readonly second: { rows: number; cols: number; ld: number };
  readonly out: { rows: number; cols: number; ld: number };
  readonly aScaleMode: number;
  readonly bScaleMode: number;
  /** Row stride (in floats) of the BLK128x128 scale tensor. */
  readonly blockScaleLd: number;
}

export function planFp8Gemm(p: Fp8GemmProblem): Fp8GemmPlan {
  const kt = Math.ceil(p.k / 128);
  return {
    transa: CUBLAS_OP_T,
    transb: CUBLAS_OP_N,
    first: { rows: p.k, cols: p.n, ld: p.k },
    second: { rows: p.k, cols: p.m, ld: p.k },
    out: { rows: p.n, cols: p.m, ld: p.n },
    aScaleMode: p.bLayout === 'block' ? CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F : CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F,
    bScaleMode: CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F,
    blockScaleLd: Math.ceil(kt / 4) * 4,
  };
}

export function fp8GemmKey(p: Fp8GemmProblem): string {
  return ['fp8', p.aType, p.bType, p.outDType, p.bLayout, p.m, p.n, p.k].join(',');
}

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
  /** FP8 problems cuBLASLt turned down (fp8GemmKey -> why). */
  readonly fp8Rejections = new Map<string, string>();
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
    return this.finish(key, desc, [la, lb, lc], workspaceBytes, `matmul ${key} (dtype ${p.dtype}, M=${p.m} N=${p.n} K=${p.k}, batch ${p.batch})`);
  }

  /** Picks the heuristic's first working algorithm for a descriptor and its layouts, and caches them under `key`. */
  private finish(key: string, desc: bigint, layouts: [bigint, bigint, bigint], workspaceBytes: number, what: string): CachedGemm {
    const [la, lb, lc] = layouts;
    this.check('cublasLtMatmulPreferenceCreate', this.fn.cublasLtMatmulPreferenceCreate(OUT.u64));
    const pref = OUT.u64[0]!;
    const results = new Uint8Array(HEURISTIC_RESULT_BYTES * 4);
    const count = new Int32Array(1);
    let status = 0;
    try {
      this.setAttr('cublasLtMatmulPreferenceSetAttribute', pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, new BigUint64Array([BigInt(workspaceBytes)]));
      status = this.fn.cublasLtMatmulAlgoGetHeuristic(this.handle, desc, la, lb, lc, lc, pref, 4, results, count) as number;
    } finally {
      this.fn.cublasLtMatmulPreferenceDestroy(pref);
    }
    const dv = new DataView(results.buffer);
    let pick = -1;
    for (let i = 0; status === 0 && i < count[0]!; i++) {
      if (dv.getInt32(i * HEURISTIC_RESULT_BYTES + ALGO_BYTES + 8, true) === 0) {
        pick = i;
        break;
      }
    }
    if (pick < 0) {
      this.destroy({ desc, layouts });
      // NOT_SUPPORTED from the heuristic means the same as no algorithm: this problem is not offered.
      if (status !== 0 && status !== 15) this.check('cublasLtMatmulAlgoGetHeuristic', status);
      throw new BackendError(`cuBLASLt has no algorithm for ${what}`);
    }
    const off = pick * HEURISTIC_RESULT_BYTES;
    const entry: CachedGemm = {
      desc,
      layouts,
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

  /**
   * Descriptor, layouts and algorithm of an FP8 problem. cuBLASLt checks the scale pointers of the
   * block-scale modes when it picks the algorithm (INVALID_VALUE when null), so `scalePlaceholder`
   * (any device pointer) stands in for them there; fp8Matmul sets the real ones per call.
   */
  private prepareFp8(p: Fp8GemmProblem, workspaceBytes: number, scalePlaceholder: number): CachedGemm {
    const key = fp8GemmKey(p);
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const plan = planFp8Gemm(p);
    this.check('cublasLtMatmulDescCreate', this.fn.cublasLtMatmulDescCreate(OUT.u64, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const desc = OUT.u64[0]!;
    let layouts: bigint[] = [];
    try {
      this.setAttr('cublasLtMatmulDescSetAttribute', desc, CUBLASLT_MATMUL_DESC_TRANSA, new Int32Array([plan.transa]));
      this.setAttr('cublasLtMatmulDescSetAttribute', desc, CUBLASLT_MATMUL_DESC_TRANSB, new Int32Array([plan.transb]));
      this.setAttr('cublasLtMatmulDescSetAttribute', desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, new Int32Array([plan.aScaleMode]));
      this.setAttr('cublasLtMatmulDescSetAttribute', desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, new Int32Array([plan.bScaleMode]));
      this.setAttr('cublasLtMatmulDescSetAttribute', desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, new BigUint64Array([BigInt(scalePlaceholder)]));
      this.setAttr('cublasLtMatmulDescSetAttribute', desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, new BigUint64Array([BigInt(scalePlaceholder)]));
      layouts = [
        this.layout(CUDA_TYPE[p.bType]!, { ...plan.first, stride: 0 }, 1),
        this.layout(CUDA_TYPE[p.aType]!, { ...plan.second, stride: 0 }, 1),
        this.layout(CUDA_TYPE[p.outDType]!, { ...plan.out, stride: 0 }, 1),
      ];
    } catch (err) {
      this.destroy({ desc, layouts });
      throw err;
    }
    return this.finish(key, desc, layouts as [bigint, bigint, bigint], workspaceBytes, `FP8 matmul ${key}`);
  }

  /**
   * Whether cuBLASLt offers an algorithm for this FP8 problem (false: the caller takes another
   * path; the reason is kept in `fp8Rejections`); the answer is cached either way.
   * `scalePlaceholder`: see prepareFp8.
   */
  supportsFp8(p: Fp8GemmProblem, workspaceBytes: number, scalePlaceholder: number): boolean {
    const key = fp8GemmKey(p);
    if (this.fp8Rejections.has(key)) return false;
    try {
      this.prepareFp8(p, workspaceBytes, scalePlaceholder);
      return true;
    } catch (err) {
      // Any refusal of the descriptor or the heuristic (NOT_SUPPORTED, INVALID_VALUE for a
      // combination this version does not take) sends the problem elsewhere.
      if (!(err instanceof BackendError)) throw err;
      this.fp8Rejections.set(key, err.message);
      return false;
    }
  }

  /**
   * Enqueues y = a b^T with block scales (see Fp8GemmProblem, planFp8Gemm): a, b, y and the scale
   * tensors (already in cuBLASLt's layouts: aScalesKM [KT][M], bScales [NB][blockScaleLd] or
   * [KT][N]) are device pointers.
   */
  fp8Matmul(p: Fp8GemmProblem, a: number, aScalesKM: number, b: number, bScales: number, y: number, workspace: number, workspaceBytes: number, stream: bigint): void {
    const e = this.prepareFp8(p, workspaceBytes, workspace);
    // The scale pointers are descriptor attributes: set per call (the cached descriptor is reused).
    this.setAttr('cublasLtMatmulDescSetAttribute', e.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, new BigUint64Array([BigInt(bScales)]));
    this.setAttr('cublasLtMatmulDescSetAttribute', e.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, new BigUint64Array([BigInt(aScalesKM)]));
    const [la, lb, lc] = e.layouts;
    this.check('cublasLtMatmul', this.fn.cublasLtMatmul(this.handle, e.desc, this.alpha, b, la, a, lb, this.beta, y, lc, y, lc, e.algo, workspace, workspaceBytes, stream));
  }

  /** Enqueues D = op(A) op(B) (row-major) on `stream`. a, b, d are device pointers. */
  matmul(p: GemmProblem, a: number, b: number, d: number, workspace: number, workspaceBytes: number, stream: bigint): void {
    const e = this.prepare(p, workspaceBytes);
    const [la, lb, lc] = e.layouts;
    const r = this.fn.cublasLtMatmul(this.handle, e.desc, this.alpha, b, la, a, lb, this.beta, d, lc, d, lc, e.algo, workspace, workspaceBytes, stream);
    this.check('cublasLtMatmul', r);
  }

  private destroy(e: { desc: bigint; layouts: readonly bigint[] }): void {
    this.fn.cublasLtMatmulDescDestroy(e.desc);
    for (const l of e.layouts) this.fn.cublasLtMatrixLayoutDestroy(l);
  }

  dispose(): void {
    for (const e of this.cache.values()) this.destroy(e);
    this.cache.clear();
    this.fn.cublasLtDestroy(this.handle);
  }
}
