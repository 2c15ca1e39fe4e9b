/**
 * CUDA kernels of @ring-linear/moe's ops and @ring-linear/fp8's routerGemm (kernels/moe.cuh),
 * registered by op name (this package does not import those packages; the attributes are
 * restated here):
 *
 *   routerGemm, moeRouter   the gate logits in f32 through cuBLASLt (bf16/f16 inputs with an f32
 *                           output: exact products, f32 accumulation; f32 or mixed inputs widened to
 *                           f32, no TF32); the router then selects per token in one warp
 *                           (sigmoid/softmax, bias, group limit, top-k, normalization, scaling)
 *   moeDispatchPlan         stable counting sort of the routing slots by expert on the device
 *   moePermute, moeCombine  row gathers (16-byte vectors) and the weighted sum in k order
 *   groupedMatmul           tensor-core grouped GEMM (bf16/f16, in and out multiples of 8) over a
 *                           tile list built on the device from the offsets; other shapes and f32
 *                           take a scalar kernel
 *   groupedMatmulAtB        per-expert a_e^T b_e on tensor cores (P, Q multiples of 8), else scalar
 *
 * Nothing reads device data back: offsets, tile counts and routing stay on the device.
 * RING_LINEAR_CUDA_MOE_KERNELS=0 leaves these ops to their composites (checked at import).
 */
import type { DType, TensorInfo } from '@ring-linear/core';
import type { CudaBackend, CudaBuffer } from '../backend.js';
import type { Block } from '../memory/allocator.js';
import { moduleSpec } from '../kernels/sources.js';
import { DTYPE_SUFFIX } from '../kernels/builder.js';
import { MOE_BM, MOE_BN, MOE_GMM_VERSIONS, moeGmmBlockN, MOE_MMA_DTYPES, MOE_PERMUTE_WIDTHS, MOE_THREADS, type MoeGmmVersion } from '../kernels/families/moe.js';
import type { Kernel } from '../kernels/modules.js';
import { castRaw } from './matmul.js';
import { ptr, register, type Ctx } from './common.js';

const cdiv = (a: number, b: number) => Math.ceil(a / b);
const FLOATS: readonly DType[] = ['f32', 'bf16', 'f16'];
/** Blocks of 256 threads for one warp per item. */
const warpBlocks = (items: number) => Math.max(1, cdiv(items, 8));
const MAX_GRID_YZ = 65535;

/**
 * logits [rows, E] f32 = fp32(x) [rows, H] @ fp32(w)^T (w [E, H]) into `out`: cuBLASLt, no TF32.
 * Same-dtype bf16/f16 operands go in as they are (their products are exact in f32); otherwise
 * the 16-bit operands are widened to f32 copies (exact) first.
 */
export function routerLogits(b: CudaBackend, x: TensorInfo, w: TensorInfo, out: number, rows: number, E: number, H: number): void {
  if (rows === 0 || E === 0) return;
  if (H === 0) {
    b.memset(out, 0, 4, rows * E);
    return;
  }
  const temps: Block[] = [];
  let xp = ptr(x), wp = ptr(w);
  let dtype: 'f32' | 'bf16' | 'f16' = x.dtype as 'f32' | 'bf16' | 'f16';
  if (x.dtype !== w.dtype || x.dtype === 'f32') {
    const widen = (t: TensorInfo, p: number, n: number): number => {
      if (t.dtype === 'f32') return p;
      const tmp = b.temp(4 * n);
      temps.push(tmp);
      castRaw(b, t.dtype, 'f32', p, tmp.ptr, n);
      return tmp.ptr;
    };
    xp = widen(x, xp, rows * H);
    wp = widen(w, wp, E * H);
    dtype = 'f32';
  }
  b.rt.cublasLt.matmul(
    { dtype, outDType: 'f32', transposeA: false, transposeB: true, m: rows, n: E, k: H, batch: 1, strideA: rows * H, strideB: E * H, strideC: rows * E, tf32: false },
    xp, wp, out, b.gemmWorkspace(), b.workspaceBytes, b.stream,
  );
  for (const t of temps) b.releaseTemp(t);
}

const aligned16 = (...ps: number[]) => ps.every((p) => p % 16 === 0);

interface RouterAttrs {
  topK: number;
  nGroup: number;
  topkGroup: number;
  scoreFunction: 'sigmoid' | 'softmax';
  normTopkProb: boolean;
  routedScalingFactor: number;
}

function registerAll(): void {
  register('routerGemm', ({ backend: b, inputs: [x, w], outputs: [y] }: Ctx<{}>) => {
    const H = x!.shape[x!.shape.length - 1]!;
    const E = w!.shape[0]!;
    routerLogits(b, x!, w!, ptr(y!), H === 0 ? x!.size : x!.size / H, E, H);
  }, FLOATS);

  register('moeRouter', ({ backend: b, inputs: [x, w, bias], outputs: [weights, indices, scores], attrs }: Ctx<RouterAttrs>) => {
    const [N, H] = x!.shape as [number, number];
    const E = w!.shape[0]!;
    if (N === 0) return;
    const logits = b.temp(4 * N * E);
    routerLogits(b, x!, w!, logits.ptr, N, E, H);
    const limited = attrs.topkGroup < attrs.nGroup;
    const gscore = limited ? b.temp(4 * N * attrs.nGroup) : null;
    b.kernel(moduleSpec('moe', 'f32'), `moe_route_${DTYPE_SUFFIX[bias!.dtype]}`).launch(
      [warpBlocks(N), 1, 1], [256, 1, 1],
      [logits.ptr, ptr(bias!), ptr(scores!), ptr(weights!), ptr(indices!), gscore ? gscore.ptr : 0, N, E, attrs.topK, attrs.nGroup, attrs.topkGroup,
        attrs.scoreFunction === 'softmax' ? 1 : 0, attrs.normTopkProb ? 1 : 0, Math.fround(attrs.routedScalingFactor)],
    );
    b.releaseTemp(logits);
    if (gscore) b.releaseTemp(gscore);
  }, FLOATS);

  register('moeDispatchPlan', ({ backend: b, inputs: [idx], outputs: [slotToRow, rowToSlot, offsets, tokensPerExpert], attrs }: Ctx<{ numExperts: number }>) => {
    const E = attrs.numExperts;
    const S = idx!.size;
    if (S === 0) {
      b.memset(ptr(offsets!), 0, 4, E + 1);
      b.memset(ptr(tokensPerExpert!), 0, 4, E);
      return;
    }
    const { chunk, chunks } = planChunks(S, E);
    const table = b.temp(4 * chunks * (E + 1));
    b.memset(table.ptr, 0, 4, chunks * (E + 1));
    const spec = moduleSpec('moe', 'f32');
    const walk = b.kernel(spec, 'moe_plan_walk');
    walk.launch([warpBlocks(chunks), 1, 1], [256, 1, 1], [ptr(idx!), table.ptr, ptr(slotToRow!), ptr(rowToSlot!), S, E, chunk, chunks, 0]);
    b.kernel(spec, 'moe_plan_scan').launch([1, 1, 1], [1024, 1, 1], [table.ptr, ptr(offsets!), ptr(tokensPerExpert!), E, chunks]);
    walk.launch([warpBlocks(chunks), 1, 1], [256, 1, 1], [ptr(idx!), table.ptr, ptr(slotToRow!), ptr(rowToSlot!), S, E, chunk, chunks, 1]);
    b.releaseTemp(table);
  }, ['i32']);

  register('moePermute', ({ backend: b, inputs: [x, rowToSlot, slotToRow], outputs: [xp] }: Ctx<{}>) => {
    const rows = xp!.shape[0]!;
    const K = slotToRow!.shape[1]!;
    const rowBytes = x!.shape[1]! * bytes(x!.dtype);
    if (rows === 0 || rowBytes === 0) return;
    const v = MOE_PERMUTE_WIDTHS.find((w) => rowBytes % w === 0 && ptr(x!) % w === 0 && ptr(xp!) % w === 0)!;
    b.kernel(moduleSpec('moe', 'f32'), `moe_permute_v${v}`).launch([warpBlocks(rows), 1, 1], [256, 1, 1], [ptr(x!), ptr(xp!), ptr(rowToSlot!), rows, K, rowBytes]);
  }, ['f32', 'bf16', 'f16', 'f8e4m3', 'f8e5m2', 'i32']);

  register('moeCombine', ({ backend: b, inputs: [yp, w, slotToRow], outputs: [y] }: Ctx<{}>) => {
    const [N, K] = w!.shape as [number, number];
    const H = yp!.shape[1]!;
    if (N === 0 || H === 0) return;
    const dt = yp!.dtype;
    const ve = 16 / bytes(dt);
    const v = H % ve === 0 && aligned16(ptr(yp!), ptr(y!)) ? ve : 1;
    b.kernel(moduleSpec('moe', dt), `moe_combine_${DTYPE_SUFFIX[dt]}_${DTYPE_SUFFIX[w!.dtype]}_v${v}`).launch(
      [warpBlocks(N), 1, 1], [256, 1, 1], [ptr(yp!), ptr(w!), ptr(slotToRow!), ptr(y!), N, K, H]);
  }, ['f32', 'bf16', 'f16', 'i32']);

  register('groupedMatmul', ({ backend: b, inputs: [x, offsets, ...ws], outputs: [y], attrs }: Ctx<{ transposeB: boolean }>) => {
    const [R, inDim] = x!.shape as [number, number];
    const out = y!.shape[1]!;
    const E = offsets!.shape[0]! - 1;
    const dt = x!.dtype;
    if (R === 0 || out === 0) return;
    if (inDim === 0) {
      b.memset(ptr(y!), 0, bytes(dt) as 2 | 4, y!.size);
      return;
    }
    const stacked = ws.length === 1 && ws[0]!.shape.length === 3;
    // One pass over the (up to 256) weights: their addresses and whether all are 16-byte aligned.
    const wptrs: number[] = new Array(ws.length);
    let wAligned = true;
    for (let e = 0; e < ws.length; e++) {
      const p = (wptrs[e] = ptr(ws[e]!));
      if (p % 16 !== 0) wAligned = false;
    }
    // The list's pointer table: uploaded once per list of addresses (CudaBackend.pointerTable).
    const table = stacked ? null : b.pointerTable(wptrs);
    const base = stacked ? wptrs[0]! : 0;
    const spec = moduleSpec('moe', dt);
    const s = DTYPE_SUFFIX[dt];
    const fast = groupedFastPath(dt, inDim, out) && wAligned && aligned16(ptr(x!), ptr(y!));
    if (fast) {
      const maxTiles = cdiv(R, MOE_BM) + E;
      // The tile list depends on the offsets and R only: built once per offsets buffer (gate, up, down).
      const tiles = b.derivedTemp(offsets!.buffer as CudaBuffer, `moe_gmm_tiles:${R}`, 4 * (2 * maxTiles + 1), (p) => {
        b.kernel(moduleSpec('moe', 'f32'), 'moe_gmm_tiles').launch([1, 1, 1], [1024, 1, 1], [ptr(offsets!), E, R, p, p + 8 * maxTiles]);
      });
      const count = tiles.ptr + 8 * maxTiles;
      b.kernel(spec, `moe_gmm_zero_${s}`).launch([Math.min(264, cdiv(R * out, 256)), 1, 1], [256, 1, 1], [ptr(offsets!), E, R, ptr(y!), out]);
      const v = moeGmmVersion();
      const smem = MOE_GMM_VERSIONS[v].fwd.smem;
      tiled(b, spec, `moe_gmm_${s}_tb${attrs.transposeB ? 1 : 0}_${v}`, smem).launch(
        [cdiv(out, moeGmmBlockN(v)), Math.min(maxTiles, MAX_GRID_YZ), 1], [MOE_THREADS, 1, 1],
        [ptr(x!), table ? table.ptr : 0, base, tiles.ptr, count, ptr(offsets!), ptr(y!), R, inDim, out], smem);
      if (tiles.temp) b.releaseTemp(tiles.temp);
    } else {
      b.kernel(spec, `moe_gmm_simple_${s}`).launch([Math.min(1 << 16, cdiv(R * out, 256)), 1, 1], [256, 1, 1],
        [ptr(x!), table ? table.ptr : 0, base, ptr(offsets!), E, ptr(y!), R, inDim, out, attrs.transposeB ? 1 : 0]);
    }
    if (table?.temp) b.releaseTemp(table.temp);
  }, [...FLOATS, 'i32']);

  register('groupedMatmulAtB', ({ backend: b, inputs: [a, bm, offsets], outputs }: Ctx<{ separate: boolean }>) => {
    const [R, P] = a!.shape as [number, number];
    const Q = bm!.shape[1]!;
    const E = offsets!.shape[0]! - 1;
    const dt = a!.dtype;
    if (P === 0 || Q === 0) return;
    const separate = outputs.length > 1 || outputs[0]!.shape.length === 2;
    const optrs = outputs.map((t) => ptr(t));
    // Fresh gradient buffers each call: their pointer table is uploaded per call, not kept.
    const table = separate ? b.pointerTable(optrs, false) : null;
    const base = separate ? 0 : optrs[0]!;
    const spec = moduleSpec('moe', dt);
    const s = DTYPE_SUFFIX[dt];
    const v = moeGmmVersion();
    const G = atbExpertsPerBlock(v, E, cdiv(P, MOE_BM) * cdiv(Q, MOE_BN));
    const fast = groupedFastPath(dt, P, Q) && cdiv(E, G) <= MAX_GRID_YZ && cdiv(P, MOE_BM) <= MAX_GRID_YZ && aligned16(ptr(a!), ptr(bm!), ...optrs);
    if (fast) {
      const smem = MOE_GMM_VERSIONS[v].atb.smem;
      tiled(b, spec, `moe_gmm_atb_${s}_${v}`, smem).launch([cdiv(Q, MOE_BN), cdiv(P, MOE_BM), cdiv(E, G)], [MOE_THREADS, 1, 1],
        [ptr(a!), ptr(bm!), ptr(offsets!), table ? table.ptr : 0, base, R, P, Q, E, G], smem);
    } else {
      b.kernel(spec, `moe_gmm_atb_simple_${s}`).launch([Math.min(1 << 16, cdiv(E * P * Q, 256)), 1, 1], [256, 1, 1],
        [ptr(a!), ptr(bm!), ptr(offsets!), E, table ? table.ptr : 0, base, R, P, Q]);
    }
    if (table?.temp) b.releaseTemp(table.temp);
  }, [...FLOATS, 'i32']);
}

/** The default tiled grouped GEMM version: the fastest on an H100 in the moe step's runs. */
export const MOE_GMM_DEFAULT: MoeGmmVersion = 'v4';
/** The tiled grouped GEMM version of this launch (RING_LINEAR_CUDA_MOE_GMM=v1..v5, else the default). */
export const moeGmmVersion = (): MoeGmmVersion => {
  const v = process.env.RING_LINEAR_CUDA_MOE_GMM;
  return v !== undefined && v in MOE_GMM_VERSIONS ? (v as MoeGmmVersion) : MOE_GMM_DEFAULT;
};

/** Blocks resident at once on an H100 (132 SMs x 2 blocks of the tiled kernels). */
const RESIDENT_BLOCKS = 264;

/**
 * Experts per block of the A^T B kernel: v1 one; v2 as many as keep about four waves of blocks
 * (at most 16), so each block's pipeline runs over several experts' rows.
 */
export function atbExpertsPerBlock(v: MoeGmmVersion, E: number, tiles: number): number {
  if (!MOE_GMM_VERSIONS[v].atb.multi) return 1;
  return Math.max(1, Math.min(16, Math.floor((E * tiles) / (4 * RESIDENT_BLOCKS))));
}

/** A tiled kernel with its dynamic shared memory limit raised (once per kernel) above 48 KiB. */
const raised = new WeakSet<Kernel>();
function tiled(b: CudaBackend, spec: ReturnType<typeof moduleSpec>, name: string, smem: number): Kernel {
  const k = b.kernel(spec, name);
  if (!raised.has(k)) {
    b.rt.driver.setMaxDynamicShared(k.handle, smem);
    raised.add(k);
  }
  return k;
}

const bytes = (d: DType): number => (d === 'f32' || d === 'i32' ? 4 : d === 'bf16' || d === 'f16' ? 2 : 1);

/** Tensor-core grouped GEMM: bf16/f16 with 16-byte rows on both operands. */
export const groupedFastPath = (dt: DType, inner: number, outer: number): boolean => MOE_MMA_DTYPES.includes(dt) && inner % 8 === 0 && outer % 8 === 0;

/**
 * Slots per chunk of the dispatch plan (one warp each) and the chunk count: 256 slots, more when
 * the [chunks, E+1] count table would pass 2^24 entries.
 */
export function planChunks(S: number, E: number): { chunk: number; chunks: number } {
  const maxChunks = Math.max(1, Math.floor(2 ** 24 / (E + 1)));
  const chunk = Math.max(256, cdiv(cdiv(S, maxChunks), 32) * 32);
  return { chunk, chunks: cdiv(S, chunk) };
}

if (process.env.RING_LINEAR_CUDA_MOE_KERNELS !== '0') registerAll();
