/**
 * Code generation shared by the attention kernels: a workgroup-tiled product of two small
 * matrices staged through workgroup memory, the tile configuration, and table uploads.
 *
 * Threads form a WGX x WGY grid (lid = ty * WGX + tx). A product tile has BM = TM * WGY rows and
 * BN = TN * WGX columns; thread (tx, ty) owns rows ty + r * WGY (r < TM) and columns tx + c * WGX
 * (c < TN), so neighbouring threads read neighbouring words of workgroup memory. The k dimension
 * advances BK at a time: both operands are copied into workgroup memory (guarded loads, zero
 * outside the matrix), then every thread accumulates its TM x TN outputs. All accumulation is f32.
 */
import { BackendError, type DType } from '@ring-linear/core';
import type { WebGpuBackend, WebGpuBuffer } from '../../backend.js';
import { tensorDeclWgsl, type TensorDecl } from '../../wgsl/access.js';

export interface TileCfg {
  readonly WGX: number;
  readonly WGY: number;
  /** Rows and columns per thread of the score tiles (4 x 4). */
  readonly TM: number;
  readonly TN: number;
  /** k step of the staged products. */
  readonly BK: number;
}

/** Threads of a workgroup. */
export const threads = (c: TileCfg) => c.WGX * c.WGY;
/** Rows (and, with TN = TM and WGX = WGY, columns) of a score tile: the chunk / block length. */
export const tileRows = (c: TileCfg) => c.TM * c.WGY;
export const tileCols = (c: TileCfg) => c.TN * c.WGX;

const BIG: TileCfg = { WGX: 16, WGY: 16, TM: 4, TN: 4, BK: 16 };
const SMALL: TileCfg = { WGX: 8, WGY: 8, TM: 4, TN: 4, BK: 8 };

/**
 * 256 threads and 64 x 64 tiles on GPUs; 64 threads and 32 x 32 tiles on CPU adapters
 * (SwiftShader emulates barriers, so run time grows steeply with the workgroup size) or where the
 * device's workgroup memory or invocation limits are too small for the big tiles.
 */
export function pickTileCfg(backend: WebGpuBackend, sharedBytes: (c: TileCfg) => number): TileCfg {
  const l = backend.limits;
  const fits = (c: TileCfg) => threads(c) <= l.maxComputeInvocationsPerWorkgroup && sharedBytes(c) <= l.maxComputeWorkgroupStorageSize;
  // RING_LINEAR_WEBGPU_ATTENTION_TILES=big|small forces a configuration (tests run the GPU tiles
  // on SwiftShader with it; tuning).
  const forced = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.RING_LINEAR_WEBGPU_ATTENTION_TILES;
  if (forced === 'big' || forced === 'small') {
    const c = forced === 'big' ? BIG : SMALL;
    if (!fits(c)) {
      throw new BackendError(
        `webgpu: RING_LINEAR_WEBGPU_ATTENTION_TILES=${forced} needs ${sharedBytes(c)} bytes of workgroup memory and ${threads(c)} invocations; ` +
          `the device allows ${l.maxComputeWorkgroupStorageSize} bytes and ${l.maxComputeInvocationsPerWorkgroup} invocations`,
      );
    }
    return c;
  }
  if (backend.isSoftware) return SMALL;
  if (fits(BIG)) return BIG;
  if (fits(SMALL)) return SMALL;
  throw new BackendError(
    `webgpu: the attention kernels need ${sharedBytes(SMALL)} bytes of workgroup memory and ${threads(SMALL)} invocations per workgroup; ` +
      `the device allows ${l.maxComputeWorkgroupStorageSize} bytes and ${l.maxComputeInvocationsPerWorkgroup} invocations`,
  );
}

/** WGSL: thread coordinates in the tile grid. */
export const threadCoords = (c: TileCfg) => `let tx = lid % ${c.WGX}u; let ty = lid / ${c.WGX}u;`;

/** How a staged operand is read from memory: which index is contiguous there. */
export type Fast = 'k' | 'mn';

export interface StagedOperand {
  /** WGSL function `(row or column index within the tile, global k) -> f32`, zero out of range. */
  readonly fn: string;
  /**
   * Which of the two indices is contiguous in memory (consecutive threads take consecutive ones),
   * or a choice made at run time by a uniform WGSL condition.
   */
  readonly fast: Fast | { readonly when: string; readonly then: Fast; readonly else: Fast };
}

export interface ProductSpec {
  readonly cfg: TileCfg;
  /** WGSL expression of the k extent (uniform across the workgroup). */
  readonly K: string;
  /**
   * The left operand L[m][k]: staged through `lsh` from a function, or read directly from
   * workgroup memory with `direct(m, k)` (k in [0, K) rounded up to BK: the caller's matrix must
   * hold zeros, not garbage, in that margin).
   */
  readonly left: ({ readonly stage: StagedOperand } | { readonly direct: (m: string, k: string) => string });
  readonly right: StagedOperand;
  /** Columns per thread of this product (the right tile is TN * WGX wide). */
  readonly TN: number;
  /** Accumulator variable prefix: acc_r_c. */
  readonly acc: string;
  /** Workgroup arrays for the staged tiles ([BK][rows + 1] and [BK][cols + 1]). */
  readonly lsh: string;
  readonly rsh: string;
}

/** WGSL declarations of TM x TN accumulators `prefix_r_c`, zeroed. */
export function declareAcc(prefix: string, TM: number, TN: number): string {
  const out: string[] = [];
  for (let r = 0; r < TM; r++) for (let c = 0; c < TN; c++) out.push(`var ${prefix}_${r}_${c} = 0.0;`);
  return out.join(' ');
}

/** WGSL zeroing the accumulators. */
export function zeroAcc(prefix: string, TM: number, TN: number): string {
  const out: string[] = [];
  for (let r = 0; r < TM; r++) for (let c = 0; c < TN; c++) out.push(`${prefix}_${r}_${c} = 0.0;`);
  return out.join(' ');
}

/** Thread-local row index r as WGSL. */
export const rowOf = (cfg: TileCfg, r: number) => `(ty + ${r * cfg.WGY}u)`;
export const colOf = (cfg: TileCfg, c: number) => `(tx + ${c * cfg.WGX}u)`;

/** A cooperative copy of a BK x `extent` tile of a staged operand into `sh[kk][i]`. */
function stage(cfg: TileCfg, op: StagedOperand, sh: string, extent: number): string {
  const NT = threads(cfg);
  const n = extent * cfg.BK;
  // Consecutive threads take consecutive addresses of the operand's contiguous index.
  const loop = (fast: Fast) => {
    const idx = fast === 'k' ? `let kk = q % ${cfg.BK}u; let i = q / ${cfg.BK}u;` : `let i = q % ${extent}u; let kk = q / ${extent}u;`;
    return `for (var q = lid; q < ${n}u; q = q + ${NT}u) { ${idx} ${sh}[kk][i] = ${op.fn}(i, k0 + kk); }`;
  };
  if (typeof op.fast === 'string') return loop(op.fast);
  return `if (${op.fast.when}) { ${loop(op.fast.then)} } else { ${loop(op.fast.else)} }`;
}

/**
 * WGSL accumulating acc[r][c] += sum_k L[row r][k] R[k][col c] over k in [0, K). Every thread of
 * the workgroup must run it (it has barriers); it ends with a barrier, so the workgroup memory
 * it read may be overwritten right after.
 */
export function product(s: ProductSpec): string {
  const { cfg, TN } = s;
  const BM = tileRows(cfg);
  const BN = TN * cfg.WGX;
  const L: string[] = [];
  L.push(`for (var k0 = 0u; k0 < ${s.K}; k0 = k0 + ${cfg.BK}u) {`);
  if ('stage' in s.left) L.push(stage(cfg, s.left.stage, s.lsh, BM));
  L.push(stage(cfg, s.right, s.rsh, BN));
  L.push('workgroupBarrier();');
  L.push(`for (var kk = 0u; kk < ${cfg.BK}u; kk = kk + 1u) {`);
  for (let r = 0; r < cfg.TM; r++) {
    const m = rowOf(cfg, r);
    L.push(`let l${r} = ${'stage' in s.left ? `${s.lsh}[kk][${m}]` : s.left.direct(m, 'k0 + kk')};`);
  }
  for (let c = 0; c < TN; c++) L.push(`let r${c} = ${s.rsh}[kk][${colOf(cfg, c)}];`);
  for (let r = 0; r < cfg.TM; r++) for (let c = 0; c < TN; c++) L.push(`${s.acc}_${r}_${c} = ${s.acc}_${r}_${c} + l${r} * r${c};`);
  L.push('}');
  L.push('workgroupBarrier();');
  L.push('}');
  return L.join('\n');
}

/** Bytes of a staged [BK][extent + 1] f32 tile. */
export const stagedBytes = (cfg: TileCfg, extent: number) => 4 * cfg.BK * (extent + 1);

/** Uploads a u32 table into a fresh device buffer (free it after the dispatches using it). */
export function uploadTable(backend: WebGpuBackend, words: Uint32Array): WebGpuBuffer {
  const buf = backend.allocate(Math.max(words.byteLength, 4));
  backend.write(buf, words);
  return buf;
}

/** Throws a clear error when a grid dimension would exceed the device's limit. */
export function checkGrid(backend: WebGpuBackend, op: string, what: string, n: number): void {
  const max = backend.limits.maxComputeWorkgroupsPerDimension;
  if (n > max) throw new BackendError(`webgpu: ${op}: ${n} ${what} exceed the grid limit of ${max} workgroups per dimension`);
}

/** exp(x) for x <= 0 that underflows to 0 cleanly (decay powers exp(-a n) are formed in log space). */
export const EXP_NONPOS_WGSL = /* wgsl */ `
fn at_exp_nonpos(x: f32) -> f32 {
  if (x < -103.0) { return 0.0; }
  return exp(x);
}`;

// ---------------------------------------------------------------------------------------------
// Bindings. Activations (f32, bf16 or f16) are read and written through accessors that branch on
// a dtype code held in a uniform word, so one pipeline serves all three dtypes (pipelines compile
// slowly: tens of milliseconds on GPUs, seconds on SwiftShader). The branch is uniform across the
// dispatch and costs next to nothing beside the memory access.

/** Dtype code of an activation in the uniform block: 0 f32, 1 bf16, 2 f16. */
export function actCode(dtype: DType): number {
  switch (dtype) {
    case 'f32':
      return 0;
    case 'bf16':
      return 1;
    case 'f16':
      return 2;
    default:
      throw new BackendError(`webgpu: the attention kernels take f32, bf16 or f16 activations, got ${dtype}`);
  }
}

export type BindingSpec =
  /** An activation read as f32 (`name_ld(i)`), its dtype code in uniform word `word`. */
  | { readonly act: string; readonly word: number }
  /** An activation output (`name_st(i, v)`, rounded once to the dtype of uniform word `word`). */
  | { readonly actOut: string; readonly word: number }
  /** A tensor of a fixed dtype, with the backend's usual accessors. */
  | { readonly fixed: TensorDecl };

/** Declarations (binding numbers in order) and the bind group's buffer types. */
export function declareBindings(backend: WebGpuBackend, list: readonly BindingSpec[]): { decl: string; types: GPUBufferBindingType[] } {
  const decl: string[] = [];
  const types: GPUBufferBindingType[] = [];
  list.forEach((b, i) => {
    if ('fixed' in b) {
      decl.push(tensorDeclWgsl(i, b.fixed, backend.accessOptions));
      types.push(b.fixed.access === 'read' ? 'read-only-storage' : 'storage');
    } else if ('act' in b) {
      const n = b.act;
      decl.push(`@group(0) @binding(${i}) var<storage, read> ${n}_buf: array<u32>;
fn ${n}_ld(i: u32) -> f32 {
  let dt = u(${b.word}u);
  if (dt == 0u) { return bitcast<f32>(${n}_buf[i]); }
  let c = (${n}_buf[i >> 1u] >> ((i & 1u) << 4u)) & 0xffffu;
  if (dt == 1u) { return bitcast<f32>(rl_dec_bf16(c)); }
  return bitcast<f32>(rl_dec_f16(c));
}`);
      types.push('read-only-storage');
    } else {
      const n = b.actOut;
      // 16-bit elements share words with their neighbours, which other invocations write: clear
      // then set this element's bits atomically (AND/OR on disjoint bits commute).
      decl.push(`@group(0) @binding(${i}) var<storage, read_write> ${n}_buf: array<atomic<u32>>;
fn ${n}_st(i: u32, v: f32) {
  let dt = u(${b.word}u);
  let bits = bitcast<u32>(v);
  if (dt == 0u) { atomicStore(&${n}_buf[i], bits); return; }
  let c = select(rl_enc_f16(bits, false), rl_enc_bf16(bits, false), dt == 1u);
  let sh = (i & 1u) << 4u;
  atomicAnd(&${n}_buf[i >> 1u], ~(0xffffu << sh));
  atomicOr(&${n}_buf[i >> 1u], c << sh);
}`);
      types.push('storage');
    }
  });
  return { decl: decl.join('\n'), types };
}
