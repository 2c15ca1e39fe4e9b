/**
 * WebGPU kernels of the MoE dispatch ops (@ring-linear/moe ops/dispatch.ts).
 *
 * moeDispatchPlan: a stable counting sort of the N*K routing slots by expert (ids outside [0, E)
 * go to a trailing bucket E), deterministic and without a worst case for skewed routing:
 *   1. the slots are cut into chunks of CH (the workgroup size); per chunk, a histogram of buckets
 *      (hist[bucket * chunks + chunk], atomic counts: the totals do not depend on the order);
 *   2. one exclusive scan of hist in (bucket, chunk) order: where each chunk's slots of each bucket
 *      start in the sorted order;
 *   3. per chunk, each slot's row = that start + the number of earlier slots of its bucket in the
 *      chunk (a scan of at most CH entries in workgroup memory): stable by construction;
 *   4. offsets[e] and tokensPerExpert[e] from the scan.
 * moePermute: a gather of raw codes (exact for every dtype), one invocation per output word.
 * moeCombine: y[n] = sum over k = 0..K-1 of w[n, k] yp[slotToRow[n, k]] in that order, in f32,
 * rounded once; one invocation per output word.
 */
import type { TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../../backend.js';
import { bitsOf, perWord, type TensorDecl } from '../../wgsl/access.js';
import { grid1d, LINEAR_ID, LINEAR_WG, register } from '../util.js';
import { zeroFill } from './grouped_matmul.js';

const i32View = (buffer: TensorInfo['buffer'], n: number): TensorInfo => ({ buffer, shape: [n], dtype: 'i32', size: n });

/** base[0..L] = exclusive prefix sums of cnt[0..L) (u32 words), one workgroup. */
function runScan(backend: WebGpuBackend, cnt: TensorInfo['buffer'], base: TensorInfo['buffer'], L: number): void {
  const WG = backend.workgroupSize(256);
  const prog = backend.program(`moe_scan${WG}`, () => ({
    tensors: [
      { name: 'cnt', dtype: 'i32', access: 'read' },
      { name: 'base', dtype: 'i32', access: 'write' },
    ] as TensorDecl[],
    uniformWords: 4,
    workgroupSize: WG,
    helpers: `var<workgroup> part: array<u32, ${WG}>;`,
    body: `let n = u(0u);
let chunk = (n + ${WG - 1}u) / ${WG}u;
let lo = min(n, lid * chunk);
let hi = min(n, lo + chunk);
var s = 0u;
for (var i = lo; i < hi; i++) { s += cnt_raw(i); }
part[lid] = s;
workgroupBarrier();
for (var d = 1u; d < ${WG}u; d = d * 2u) {
  var v = 0u;
  if (lid >= d) { v = part[lid - d]; }
  workgroupBarrier();
  part[lid] += v;
  workgroupBarrier();
}
var run = part[lid] - s;
for (var i = lo; i < hi; i++) { base_st_raw(i, run); run += cnt_raw(i); }
if (lid == ${WG - 1}u) { base_st_raw(n, part[lid]); }`,
  }));
  backend.dispatch(prog, [cnt, base], new Uint32Array([L, 0, 0, 0]), [1], 'moeDispatchPlan');
}

const BUCKET = 'fn bucket_of(v: i32, E: u32) -> u32 { if (v >= 0 && u32(v) < E) { return u32(v); } return E; }';

register('moeDispatchPlan', ({ backend, inputs: [idx], outputs: [s2r, r2s, offOut, countOut], attrs }) => {
  const E = (attrs as { numExperts: number }).numExperts;
  const S = idx!.size;
  const CH = backend.workgroupSize(256);
  const chunks = Math.ceil(S / CH);
  const B = E + 1;
  const L = B * chunks;
  const hist = backend.scratch(4 * Math.max(L, 1));
  const base = backend.scratch(4 * (L + 1));
  try {
    const u = new Uint32Array([S, E, chunks, 0]);
    if (S > 0) {
      zeroFill(backend, i32View(hist, L));
      const countProg = backend.program(`moe_plan_count${CH}`, () => ({
        tensors: [{ name: 'idx', dtype: 'i32', access: 'read' }] as TensorDecl[],
        extraBindings: ['storage'] as GPUBufferBindingType[],
        uniformWords: 4,
        workgroupSize: CH,
        helpers: `${BUCKET}\n@group(0) @binding(1) var<storage, read_write> hist: array<atomic<u32>>;`,
        body: `let S = u(0u); let E = u(1u); let chunks = u(2u);
let c = ${LINEAR_WG};
let j = c * ${CH}u + lid;
if (j >= S) { return; }
atomicAdd(&hist[bucket_of(idx_ld(j), E) * chunks + c], 1u);`,
      }));
      backend.dispatch(countProg, [idx!.buffer, hist], u, grid1d(chunks, 1), 'moeDispatchPlan');
    }
    runScan(backend, hist, base, L);
    if (S > 0) {
      const placeProg = backend.program(`moe_plan_place${CH}`, () => ({
        tensors: [
          { name: 'idx', dtype: 'i32', access: 'read' },
          { name: 'base', dtype: 'i32', access: 'read' },
          { name: 's2r', dtype: 'i32', access: 'write' },
          { name: 'r2s', dtype: 'i32', access: 'write' },
        ] as TensorDecl[],
        uniformWords: 4,
        workgroupSize: CH,
        helpers: `${BUCKET}\nvar<workgroup> bk: array<u32, ${CH}>;`,
        body: `let S = u(0u); let E = u(1u); let chunks = u(2u);
let c = ${LINEAR_WG};
let j = c * ${CH}u + lid;
var b = 0xffffffffu;
if (j < S) { b = bucket_of(idx_ld(j), E); }
bk[lid] = b;
workgroupBarrier();
if (j >= S) { return; }
// Stable: the earlier slots of this bucket in the chunk come first.
var rank = 0u;
for (var i = 0u; i < lid; i++) { if (bk[i] == b) { rank = rank + 1u; } }
let row = base_raw(b * chunks + c) + rank;
s2r_st_raw(j, row);
r2s_st_raw(row, j);`,
      }));
      backend.dispatch(placeProg, [idx!.buffer, base, s2r!.buffer, r2s!.buffer], u, grid1d(chunks, 1), 'moeDispatchPlan');
    }
    const WG = backend.workgroupSize(256);
    const offProg = backend.program(`moe_plan_offsets${WG}`, () => ({
      tensors: [
        { name: 'base', dtype: 'i32', access: 'read' },
        { name: 'off', dtype: 'i32', access: 'write' },
        { name: 'cnt', dtype: 'i32', access: 'write' },
      ] as TensorDecl[],
      uniformWords: 4,
      workgroupSize: WG,
      body: `let E = u(1u); let chunks = u(2u);
let e = ${LINEAR_ID(WG)};
if (e > E) { return; }
let start = base_raw(e * chunks);
off_st_raw(e, start);
if (e < E) { cnt_st_raw(e, base_raw((e + 1u) * chunks) - start); }`,
    }));
    backend.dispatch(offProg, [base, offOut!.buffer, countOut!.buffer], u, grid1d(E + 1, WG), 'moeDispatchPlan');
  } finally {
    backend.free(hist);
    backend.free(base);
  }
});

register('moePermute', ({ backend, inputs: [x, r2s], outputs: [y] }) => {
  const [N, H] = x!.shape as [number, number];
  const rows = y!.shape[0]!;
  if (y!.size === 0) return;
  const K = rows / N;
  const WG = backend.workgroupSize(256);
  const epw = perWord(y!.dtype);
  const bits = bitsOf(y!.dtype);
  const prog = backend.program(`moe_permute${WG}|${x!.dtype}`, () => ({
    tensors: [
      { name: 'x', dtype: x!.dtype, access: 'read' },
      { name: 'r2s', dtype: 'i32', access: 'read' },
      { name: 'y', dtype: y!.dtype, access: 'write' },
    ] as TensorDecl[],
    uniformWords: 4,
    workgroupSize: WG,
    body: `let n = u(0u); let H = u(1u); let K = u(2u); let rows = u(3u);
let w = ${LINEAR_ID(WG)};
if (w * ${epw}u >= n) { return; }
var word = 0u;
for (var q = 0u; q < ${epw}u; q++) {
  let i = w * ${epw}u + q;
  if (i >= n) { break; }
  let r = i / H;
  let j = r2s_ld(r);
  var code = 0u;
  // An out-of-range slot reads as a zero row.
  if (j >= 0 && u32(j) < rows) { code = x_raw((u32(j) / K) * H + i % H); }
  ${bits === 32 ? 'word = code;' : `word |= code << (q * ${bits}u);`}
}
y_stw(w, word);`,
  }));
  backend.dispatch(prog, [x!.buffer, r2s!.buffer, y!.buffer], new Uint32Array([y!.size, H, K, rows]), grid1d(Math.ceil(y!.size / epw), WG), 'moePermute');
});

register('moeCombine', ({ backend, inputs: [yp, w, s2r], outputs: [y] }) => {
  const K = w!.shape[1]!;
  const [rows, H] = yp!.shape as [number, number];
  if (y!.size === 0) return;
  const WG = backend.workgroupSize(256);
  const epw = perWord(y!.dtype);
  const bits = bitsOf(y!.dtype);
  const prog = backend.program(`moe_combine${WG}|${yp!.dtype}|${w!.dtype}`, () => ({
    tensors: [
      { name: 'yp', dtype: yp!.dtype, access: 'read' },
      { name: 'wt', dtype: w!.dtype, access: 'read' },
      { name: 's2r', dtype: 'i32', access: 'read' },
      { name: 'y', dtype: y!.dtype, access: 'write' },
    ] as TensorDecl[],
    uniformWords: 4,
    workgroupSize: WG,
    body: `let n = u(0u); let H = u(1u); let K = u(2u); let rows = u(3u);
let w = ${LINEAR_ID(WG)};
if (w * ${epw}u >= n) { return; }
var word = 0u;
for (var q = 0u; q < ${epw}u; q++) {
  let i = w * ${epw}u + q;
  if (i >= n) { break; }
  let t = i / H;
  let c = i % H;
  var acc = 0.0;
  for (var k = 0u; k < K; k++) {
    let r = s2r_ld(t * K + k);
    let wk = wt_ld(t * K + k);
    if (r >= 0 && u32(r) < rows) { acc = acc + wk * yp_ld(u32(r) * H + c); }
    // An out-of-range row reads as zeros: w * 0, NaN for a non-finite weight.
    else if (rl_isnan(wk) || rl_isinf(wk)) { acc = rl_nan(); }
  }
  let code = y_enc(acc);
  ${bits === 32 ? 'word = code;' : `word |= (code & ${bits === 16 ? '0xffffu' : '0xffu'}) << (q * ${bits}u);`}
}
y_stw(w, word);`,
  }));
  backend.dispatch(prog, [yp!.buffer, w!.buffer, s2r!.buffer, y!.buffer], new Uint32Array([y!.size, H, K, rows]), grid1d(Math.ceil(y!.size / epw), WG), 'moeCombine');
});
