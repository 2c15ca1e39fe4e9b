/**
 * Indexing kernels: gather / embedding / takeAlongAxis (raw-code gathers), oneHot, scatterAdd,
 * scatterAddAlongAxis, topk, cumsum. The index rule is core's (ops/indexing.ts): an index into a
 * length-n axis is valid in [-n, n) and wraps when negative; gathers read code 0 (zero / false)
 * for invalid indices, scatters skip them.
 *
 * Scatters are deterministic: each output element is produced by one invocation that adds its
 * updates in increasing update order (scatterAdd first groups the updates by destination row
 * with a counting sort, so the work is proportional to the number of updates).
 */
import type { TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../backend.js';
import { bitsOf, computeType, perWord, type TensorDecl } from '../wgsl/access.js';
import { codeOf } from './basic.js';
import { runMap } from './map.js';
import { axisView, grid1d, LINEAR_ID, LINEAR_WG, register } from './util.js';
import { wgReduceCall, wgReduceWgsl } from './wg_reduce.js';

/** WGSL: wrapped index of i into a length-n axis, or -1 when outside [-n, n). */
const WRAP = 'fn wrap_index(i: i32, n: u32) -> i32 { let ni = i32(n); if (i < 0) { if (i >= -ni) { return i + ni; } return -1; } if (i < ni) { return i; } return -1; }';

/**
 * out[p, j, q] = x[p, idx[.], q] for x viewed as [P, N, Q] and out as [P, J, Q]; the index comes
 * from idx[j] (gather) or idx[p, j, q] (takeAlongAxis).
 */
function runIndexGather(backend: WebGpuBackend, x: TensorInfo, idx: TensorInfo, y: TensorInfo, axis: number, along: boolean, label: string): void {
  const n = y.size;
  if (n === 0) return;
  const [, N, Q] = axisView(x.shape, axis);
  const J = along ? idx.shape[axis]! : idx.size;
  const WG = backend.workgroupSize(256);
  const epw = perWord(y.dtype);
  const bits = bitsOf(y.dtype);
  const prog = backend.program(`index_gather${WG}|${x.dtype}|${along ? 'along' : 'rows'}`, () => ({
    tensors: [
      { name: 'x', dtype: x.dtype, access: 'read' },
      { name: 'idx', dtype: 'i32', access: 'read' },
      { name: 'y', dtype: y.dtype, access: 'write' },
    ] as TensorDecl[],
    uniformWords: 4,
    workgroupSize: WG,
    helpers: WRAP,
    body: `let n = u(0u); let N = u(1u); let J = u(2u); let Q = u(3u);
let w = ${LINEAR_ID(WG)};
if (w * ${epw}u >= n) { return; }
var word = 0u;
for (var k = 0u; k < ${epw}u; k++) {
  let e = w * ${epw}u + k;
  if (e >= n) { break; }
  let q = e % Q;
  let j = (e / Q) % J;
  let p = e / (Q * J);
  let t = wrap_index(idx_ld(${along ? 'e' : 'j'}), N);
  var code = 0u;
  if (t >= 0) { code = x_raw((p * N + u32(t)) * Q + q); }
  ${bits === 32 ? 'word = code;' : `word |= code << (k * ${bits}u);`}
}
y_stw(w, word);`,
  }));
  backend.dispatch(prog, [x.buffer, idx.buffer, y.buffer], new Uint32Array([n, N, J, Q]), grid1d(Math.ceil(n / epw), WG), label);
}

register('gather', ({ backend, inputs: [x, idx], outputs: [y], attrs }) => {
  runIndexGather(backend, x!, idx!, y!, (attrs as { axis: number }).axis, false, 'gather');
});

register('embedding', ({ backend, inputs: [ids, w], outputs: [y] }) => {
  runIndexGather(backend, w!, ids!, y!, 0, false, 'embedding');
});

register('takeAlongAxis', ({ backend, inputs: [x, idx], outputs: [y], attrs }) => {
  runIndexGather(backend, x!, idx!, y!, (attrs as { axis: number }).axis, true, 'takeAlongAxis');
});

register('oneHot', ({ backend, inputs: [idx], outputs: [y], attrs }) => {
  const { depth } = attrs as { depth: number };
  // idx viewed as [..., 1] broadcasts against the [..., depth] output; i % depth is the class.
  runMap(backend, {
    key: 'oneHot',
    inputs: [{ ...idx!, shape: [...idx!.shape, 1] }],
    output: y!,
    expr: 'select(0u, p0, v0 >= 0 && u32(v0) == i % p1)',
    rawOut: true,
    params: [codeOf(1, y!.dtype), depth],
  });
});

// ---------------------------------------------------------------------------------------------
// scatterAdd: a counting sort of the updates by destination row, then one invocation per output
// element adding its row's updates in increasing update order.

register('scatterAdd', ({ backend, inputs: [x, idx, upd], outputs: [y], attrs }) => {
  const axis = (attrs as { axis: number }).axis;
  const [P, N, Q] = axisView(x!.shape, axis);
  const J = idx!.size;
  const WG = backend.workgroupSize(256);
  if (y!.size === 0) return;
  // Scratch (u32 words): counts[N], offsets[N + 1], cursor[N], list[J].
  const counts = backend.scratch(4 * Math.max(N, 1));
  const offsets = backend.scratch(4 * (N + 1));
  const cursor = backend.scratch(4 * Math.max(N, 1));
  const list = backend.scratch(4 * Math.max(J, 1));
  const zero = (b: typeof counts, words: number) =>
    runMap(backend, { key: 'fill', inputs: [], output: { buffer: b, shape: [words], dtype: 'i32', size: words }, expr: 'p0', rawOut: true, params: [0] });
  try {
    const u = new Uint32Array([N, J, P, Q]);
    zero(counts, N);
    zero(cursor, N);
    const countProg = backend.program(`scatter_count${WG}`, () => ({
      tensors: [{ name: 'idx', dtype: 'i32', access: 'read' }] as TensorDecl[],
      extraBindings: ['storage'] as GPUBufferBindingType[],
      uniformWords: 4,
      workgroupSize: WG,
      helpers: `${WRAP}\n@group(0) @binding(1) var<storage, read_write> cnt: array<atomic<u32>>;`,
      body: `let j = ${LINEAR_ID(WG)};
if (j >= u(1u)) { return; }
let t = wrap_index(idx_ld(j), u(0u));
if (t >= 0) { atomicAdd(&cnt[u32(t)], 1u); }`,
    }));
    backend.dispatch(countProg, [idx!.buffer, counts], u, grid1d(J, WG), 'scatterAdd');
    runExclusiveScan(backend, counts, offsets, N);
    const place = backend.program(`scatter_place${WG}`, () => ({
      tensors: [
        { name: 'idx', dtype: 'i32', access: 'read' },
        { name: 'off', dtype: 'i32', access: 'read' },
      ] as TensorDecl[],
      extraBindings: ['storage', 'storage'] as GPUBufferBindingType[],
      uniformWords: 4,
      workgroupSize: WG,
      helpers: `${WRAP}
@group(0) @binding(2) var<storage, read_write> cur: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> lst: array<u32>;`,
      body: `let j = ${LINEAR_ID(WG)};
if (j >= u(1u)) { return; }
let t = wrap_index(idx_ld(j), u(0u));
if (t >= 0) { lst[off_raw(u32(t)) + atomicAdd(&cur[u32(t)], 1u)] = j; }`,
    }));
    backend.dispatch(place, [idx!.buffer, offsets, cursor, list], u, grid1d(J, WG), 'scatterAdd');
    // The atomic placement order is arbitrary: sort each row's (short) list of update indices.
    const sortProg = backend.program(`scatter_sort${WG}`, () => ({
      tensors: [{ name: 'off', dtype: 'i32', access: 'read' }] as TensorDecl[],
      extraBindings: ['storage'] as GPUBufferBindingType[],
      uniformWords: 4,
      workgroupSize: WG,
      helpers: '@group(0) @binding(1) var<storage, read_write> lst: array<u32>;',
      body: `let t = ${LINEAR_ID(WG)};
if (t >= u(0u)) { return; }
let lo = off_raw(t); let hi = off_raw(t + 1u);
for (var a = lo + 1u; a < hi; a++) {
  let v = lst[a];
  var b = a;
  while (b > lo && lst[b - 1u] > v) { lst[b] = lst[b - 1u]; b--; }
  lst[b] = v;
}`,
    }));
    backend.dispatch(sortProg, [offsets, list], u, grid1d(N, WG), 'scatterAdd');
    const T = computeType(y!.dtype);
    const acc = backend.program(`scatter_acc${WG}|${x!.dtype}`, () => ({
      tensors: [
        { name: 'x', dtype: x!.dtype, access: 'read' },
        { name: 'upd', dtype: upd!.dtype, access: 'read' },
        { name: 'off', dtype: 'i32', access: 'read' },
        { name: 'lst', dtype: 'i32', access: 'read' },
        { name: 'y', dtype: y!.dtype, access: 'atomic' },
      ] as TensorDecl[],
      uniformWords: 4,
      workgroupSize: WG,
      body: `let N = u(0u); let J = u(1u); let P = u(2u); let Q = u(3u);
let e = ${LINEAR_ID(WG)};
if (e >= P * N * Q) { return; }
let q = e % Q; let t = (e / Q) % N; let p = e / (Q * N);
var a: ${T} = x_ld(e);
for (var g = off_raw(t); g < off_raw(t + 1u); g++) {
  a = a + upd_ld((p * J + lst_raw(g)) * Q + q);
}
y_st(e, a);`,
    }));
    backend.dispatch(acc, [x!.buffer, upd!.buffer, offsets, list, y!.buffer], u, grid1d(y!.size, WG), 'scatterAdd');
  } finally {
    for (const b of [counts, offsets, cursor, list]) backend.free(b);
  }
});

/** offsets[0..n] = exclusive prefix sums of counts[0..n) (u32), in one workgroup. */
function runExclusiveScan(backend: WebGpuBackend, counts: TensorInfo['buffer'], offsets: TensorInfo['buffer'], n: number): void {
  const WG = backend.workgroupSize(256);
  const prog = backend.program(`exclusive_scan${WG}`, () => ({
    tensors: [
      { name: 'cnt', dtype: 'i32', access: 'read' },
      { name: 'off', dtype: 'i32', access: 'write' },
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
// Hillis-Steele inclusive scan of the per-invocation sums.
for (var d = 1u; d < ${WG}u; d = d * 2u) {
  var v = 0u;
  if (lid >= d) { v = part[lid - d]; }
  workgroupBarrier();
  part[lid] += v;
  workgroupBarrier();
}
var run = part[lid] - s;
for (var i = lo; i < hi; i++) { off_st_raw(i, run); run += cnt_raw(i); }
if (lid == ${WG - 1}u) { off_st_raw(n, part[lid]); }`,
  }));
  backend.dispatch(prog, [counts, offsets], new Uint32Array([n, 0, 0, 0]), [1], 'scan');
}

register('scatterAddAlongAxis', ({ backend, inputs: [x, idx, upd], outputs: [y], attrs }) => {
  const axis = (attrs as { axis: number }).axis;
  const [P, N, Q] = axisView(x!.shape, axis);
  const K = idx!.shape[axis]!;
  const WG = backend.workgroupSize(256);
  const T = computeType(y!.dtype);
  // One invocation per output element scans the K candidate updates of its (p, q) line in order.
  const prog = backend.program(`scatter_along${WG}|${x!.dtype}`, () => ({
    tensors: [
      { name: 'x', dtype: x!.dtype, access: 'read' },
      { name: 'idx', dtype: 'i32', access: 'read' },
      { name: 'upd', dtype: upd!.dtype, access: 'read' },
      { name: 'y', dtype: y!.dtype, access: 'atomic' },
    ] as TensorDecl[],
    uniformWords: 4,
    workgroupSize: WG,
    helpers: WRAP,
    body: `let N = u(0u); let K = u(1u); let P = u(2u); let Q = u(3u);
let e = ${LINEAR_ID(WG)};
if (e >= P * N * Q) { return; }
let q = e % Q; let t = i32((e / Q) % N); let p = e / (Q * N);
var a: ${T} = x_ld(e);
for (var j = 0u; j < K; j++) {
  let s = (p * K + j) * Q + q;
  if (wrap_index(idx_ld(s), N) == t) { a = a + upd_ld(s); }
}
y_st(e, a);`,
  }));
  backend.dispatch(prog, [x!.buffer, idx!.buffer, upd!.buffer, y!.buffer], new Uint32Array([N, K, P, Q]), grid1d(y!.size, WG), 'scatterAddAlongAxis');
});

// ---------------------------------------------------------------------------------------------
// topk: one workgroup per line; k rounds, each a workgroup reduction picking the first element
// (in the output order) that comes after the previous pick.

register('topk', ({ backend, inputs: [x], outputs: [yv, yi], attrs }) => {
  const { k, axis, largest } = attrs as { k: number; axis: number; largest: boolean };
  if (k === 0) return;
  const [P, N, Q] = axisView(x!.shape, axis);
  const lines = P * Q;
  if (lines === 0) return;
  const WG = backend.workgroupSize(256);
  const subgroups = backend.hasSubgroups;
  const T = computeType(x!.dtype);
  const isF = T === 'f32';
  const nan = (v: string) => (isF ? `rl_isnan(${v})` : 'false');
  // before(a, b): a comes first in the output. NaN ranks above every number (first when
  // largest, last when smallest); equal values (and -0/+0) go in index order.
  const before = `fn before(av: ${T}, ai: u32, bv: ${T}, bi: u32) -> bool {
  if (bi == 0xffffffffu) { return ai != 0xffffffffu; }
  if (ai == 0xffffffffu) { return false; }
  let an = ${nan('av')}; let bn = ${nan('bv')};
  if (an != bn) { return ${largest ? 'an' : 'bn'}; }
  if (!an && av != bv) { return av ${largest ? '>' : '<'} bv; }
  return ai < bi;
}`;
  const state = { a: T, b: 'u32', combine: 'fn s_comb(x: S, y: S) -> S { if (before(x.a, x.b, y.a, y.b)) { return x; } return y; }' };
  const prog = backend.program(`topk${WG}|${x!.dtype}|${largest ? 'L' : 'S'}|${subgroups ? 'sg' : ''}`, () => ({
    tensors: [
      { name: 'x', dtype: x!.dtype, access: 'read' },
      { name: 'yv', dtype: yv!.dtype, access: 'atomic' },
      { name: 'yi', dtype: 'i32', access: 'atomic' },
    ] as TensorDecl[],
    uniformWords: 4,
    workgroupSize: WG,
    subgroups,
    helpers: `${before}\n${wgReduceWgsl(state, WG, subgroups)}`,
    body: `let N = u(0u); let K = u(1u); let lines = u(2u); let Q = u(3u);
let line = ${LINEAR_WG};
if (line >= lines) { return; }
let p = line / Q; let q = line % Q;
let base = p * N * Q + q;
var prevV: ${T} = ${T}(0);
var prevI = 0xffffffffu;
for (var r = 0u; r < K; r++) {
  var s = S(${T}(0), 0xffffffffu);
  for (var j = lid; j < N; j += ${WG}u) {
    let v = x_ld(base + j * Q);
    // Candidates come strictly after the previous pick.
    if (prevI == 0xffffffffu || before(prevV, prevI, v, j)) { s = s_comb(s, S(v, j)); }
  }
  let t = ${wgReduceCall('s', subgroups)};
  prevV = t.a;
  prevI = t.b;
  if (lid == 0u) {
    let dst = (p * K + r) * Q + q;
    yv_st_raw(dst, x_raw(base + t.b * Q));
    yi_st(dst, i32(t.b));
  }
}`,
  }));
  backend.dispatch(prog, [x!.buffer, yv!.buffer, yi!.buffer], new Uint32Array([N, k, lines, Q]), grid1d(lines, 1), 'topk');
});

// ---------------------------------------------------------------------------------------------
// cumsum: one invocation per line (f32 / wrapping i32 accumulation), or, for few long lines, a
// workgroup per line: per-invocation chunk sums, a workgroup scan of them, then the chunks.

register('cumsum', ({ backend, inputs: [x], outputs: [y], attrs }) => {
  const { axis, exclusive, reverse } = attrs as { axis: number; exclusive: boolean; reverse: boolean };
  const [P, N, Q] = axisView(x!.shape, axis);
  const lines = P * Q;
  if (lines === 0 || N === 0) return;
  const T = computeType(y!.dtype);
  const u = new Uint32Array([N, lines, Q, (exclusive ? 1 : 0) | (reverse ? 2 : 0)]);
  // Position s along the line (after reversal) -> element offset.
  const pos = 'fn line_pos(base: u32, s: u32, N: u32, Q: u32) -> u32 { var j = s; if ((u(3u) & 2u) != 0u) { j = N - 1u - s; } return base + j * Q; }';
  const WG = backend.workgroupSize(256);
  if (lines >= 64 || N <= 64) {
    const prog = backend.program(`cumsum_line${WG}|${x!.dtype}`, () => ({
      tensors: [
        { name: 'x', dtype: x!.dtype, access: 'read' },
        { name: 'y', dtype: y!.dtype, access: 'atomic' },
      ] as TensorDecl[],
      uniformWords: 4,
      workgroupSize: WG,
      helpers: pos,
      body: `let N = u(0u); let Q = u(2u); let excl = (u(3u) & 1u) != 0u;
let line = ${LINEAR_ID(WG)};
if (line >= u(1u)) { return; }
let base = (line / Q) * N * Q + line % Q;
var acc: ${T} = ${T}(0);
for (var s = 0u; s < N; s++) {
  let o = line_pos(base, s, N, Q);
  let v = x_ld(o);
  if (excl) { y_st(o, acc); acc = acc + v; } else { acc = acc + v; y_st(o, acc); }
}`,
    }));
    backend.dispatch(prog, [x!.buffer, y!.buffer], u, grid1d(lines, WG), 'cumsum');
    return;
  }
  const prog = backend.program(`cumsum_wg${WG}|${x!.dtype}`, () => ({
    tensors: [
      { name: 'x', dtype: x!.dtype, access: 'read' },
      { name: 'y', dtype: y!.dtype, access: 'atomic' },
    ] as TensorDecl[],
    uniformWords: 4,
    workgroupSize: WG,
    helpers: `${pos}\nvar<workgroup> part: array<${T}, ${WG}>;`,
    body: `let N = u(0u); let Q = u(2u); let excl = (u(3u) & 1u) != 0u;
let line = ${LINEAR_WG};
if (line >= u(1u)) { return; }
let base = (line / Q) * N * Q + line % Q;
let chunk = (N + ${WG - 1}u) / ${WG}u;
let lo = min(N, lid * chunk);
let hi = min(N, lo + chunk);
var s: ${T} = ${T}(0);
for (var i = lo; i < hi; i++) { s = s + x_ld(line_pos(base, i, N, Q)); }
part[lid] = s;
workgroupBarrier();
for (var d = 1u; d < ${WG}u; d = d * 2u) {
  var v: ${T} = ${T}(0);
  if (lid >= d) { v = part[lid - d]; }
  workgroupBarrier();
  part[lid] = part[lid] + v;
  workgroupBarrier();
}
var acc: ${T} = ${T}(0);
if (lid > 0u) { acc = part[lid - 1u]; }
for (var i = lo; i < hi; i++) {
  let o = line_pos(base, i, N, Q);
  let v = x_ld(o);
  if (excl) { y_st(o, acc); acc = acc + v; } else { acc = acc + v; y_st(o, acc); }
}`,
  }));
  backend.dispatch(prog, [x!.buffer, y!.buffer], u, grid1d(lines, 1), 'cumsum');
});
