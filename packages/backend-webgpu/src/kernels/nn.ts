/**
 * nn kernels: softmax, logSoftmax, rmsNorm, crossEntropy — one workgroup per row, computed in f32
 * whatever the storage dtype (MODEL_SPEC §1, §7), rounded once on store.
 *
 * Softmax keeps an online (max, sum of exp(x - max)) state per invocation, combined across the
 * workgroup (subgroups where available), then a second pass writes the row. As on the CPU, a row
 * whose max is NaN or +-inf (NaN inside, +inf inside, or all -inf) comes out NaN.
 */
import type { TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../backend.js';
import type { TensorDecl } from '../wgsl/access.js';
import { axisView, f32Bits, grid1d, LINEAR_WG, register } from './util.js';
import { SOFTMAX_ADD, SOFTMAX_F32, SUM_F32, wgReduceCall, wgReduceWgsl } from './wg_reduce.js';

function runSoftmax(backend: WebGpuBackend, x: TensorInfo, y: TensorInfo, axis: number, log: boolean): void {
  if (x.size === 0) return;
  const [P, N, Q] = axisView(x.shape, axis);
  const WG = backend.workgroupSize(256);
  const sg = backend.hasSubgroups;
  const prog = backend.program(`${log ? 'logSoftmax' : 'softmax'}${WG}|${x.dtype}|${sg ? 'sg' : ''}`, () => ({
    tensors: [
      { name: 'x', dtype: x.dtype, access: 'read' },
      { name: 'y', dtype: y.dtype, access: 'atomic' },
    ] as TensorDecl[],
    uniformWords: 4,
    workgroupSize: WG,
    subgroups: sg,
    helpers: `${wgReduceWgsl(SOFTMAX_F32, WG, sg)}\n${SOFTMAX_ADD}`,
    body: `let N = u(0u); let Q = u(1u); let rows = u(2u);
let row = ${LINEAR_WG};
if (row >= rows) { return; }
let base = (row / Q) * N * Q + row % Q;
var s = S(-rl_inf(), 0.0);
for (var j = lid; j < N; j += ${WG}u) { s = sm_add(s, x_ld(base + j * Q)); }
let t = ${wgReduceCall('s', sg)};
let bad = rl_isnan(t.a) || rl_isinf(t.a);
${log ? 'let lse = t.a + log(t.b);' : 'let inv = 1.0 / t.b;'}
for (var j = lid; j < N; j += ${WG}u) {
  let o = base + j * Q;
  var v = ${log ? 'x_ld(o) - lse' : 'exp(max(x_ld(o) - t.a, -104.0)) * inv'};
  if (bad) { v = rl_nan(); }
  y_st(o, v);
}`,
  }));
  backend.dispatch(prog, [x.buffer, y.buffer], new Uint32Array([N, Q, P * Q, 0]), grid1d(P * Q, 1), log ? 'logSoftmax' : 'softmax');
}

register('softmax', ({ backend, inputs: [x], outputs: [y], attrs }) => runSoftmax(backend, x!, y!, (attrs as { axis: number }).axis, false));
register('logSoftmax', ({ backend, inputs: [x], outputs: [y], attrs }) => runSoftmax(backend, x!, y!, (attrs as { axis: number }).axis, true));

register('rmsNorm', ({ backend, inputs: [x, w], outputs: [y], attrs }) => {
  const eps = (attrs as { eps: number }).eps;
  const D = x!.shape[x!.shape.length - 1]!;
  const rows = x!.size / D;
  if (rows === 0) return;
  const WG = backend.workgroupSize(256);
  const sg = backend.hasSubgroups;
  const prog = backend.program(`rmsNorm${WG}|${x!.dtype}|${w!.dtype}|${sg ? 'sg' : ''}`, () => ({
    tensors: [
      { name: 'x', dtype: x!.dtype, access: 'read' },
      { name: 'w', dtype: w!.dtype, access: 'read' },
      { name: 'y', dtype: y!.dtype, access: 'atomic' },
    ] as TensorDecl[],
    uniformWords: 4,
    workgroupSize: WG,
    subgroups: sg,
    helpers: wgReduceWgsl(SUM_F32, WG, sg),
    body: `let D = u(0u); let rows = u(1u); let eps = uf(2u);
let row = ${LINEAR_WG};
if (row >= rows) { return; }
let base = row * D;
var s = S(0.0, 0u);
for (var j = lid; j < D; j += ${WG}u) { let v = x_ld(base + j); s.a += v * v; }
let t = ${wgReduceCall('s', sg)};
// y = w * (x * r), r = 1 / sqrt(mean(x^2) + eps) (MODEL_SPEC §1)
let r = 1.0 / sqrt(t.a / f32(D) + eps);
for (var j = lid; j < D; j += ${WG}u) { y_st(base + j, w_ld(j) * (x_ld(base + j) * r)); }`,
  }));
  backend.dispatch(prog, [x!.buffer, w!.buffer, y!.buffer], new Uint32Array([D, rows, f32Bits(eps), 0]), grid1d(rows, 1), 'rmsNorm');
});

register('crossEntropy', ({ backend, inputs: [logits, targets], outputs: [y], attrs }) => {
  const { ignoreIndex, reduction } = attrs as { ignoreIndex: number; reduction: 'mean' | 'sum' | 'none' };
  const V = logits!.shape[logits!.shape.length - 1]!;
  const T = targets!.size;
  const WG = backend.workgroupSize(256);
  const sg = backend.hasSubgroups;
  const none = reduction === 'none';
  // Per-token losses (f32) into y itself ('none') or into scratch, with a counted flag per token.
  const losses = none ? y!.buffer : backend.scratch(4 * Math.max(T, 1));
  const counted = backend.scratch(4 * Math.max(T, 1));
  try {
    if (T > 0) {
      const rowProg = backend.program(`crossEntropyRows${WG}|${logits!.dtype}|${sg ? 'sg' : ''}`, () => ({
        tensors: [
          { name: 'x', dtype: logits!.dtype, access: 'read' },
          { name: 'tg', dtype: 'i32', access: 'read' },
          { name: 'loss', dtype: 'f32', access: 'write' },
          { name: 'cnt', dtype: 'i32', access: 'write' },
        ] as TensorDecl[],
        uniformWords: 4,
        workgroupSize: WG,
        subgroups: sg,
        helpers: `${wgReduceWgsl(SOFTMAX_F32, WG, sg)}\n${SOFTMAX_ADD}`,
        body: `let V = u(0u); let T = u(1u); let ignore = ui(2u);
let row = ${LINEAR_WG};
if (row >= T) { return; }
let base = row * V;
var s = S(-rl_inf(), 0.0);
for (var j = lid; j < V; j += ${WG}u) { s = sm_add(s, x_ld(base + j)); }
let t = ${wgReduceCall('s', sg)};
if (lid == 0u) {
  let tgt = tg_ld(row);
  let ok = tgt >= 0 && tgt < i32(V) && tgt != ignore;
  var l = 0.0;
  if (ok) {
    // loss = logsumexp(row) - row[target]; a non-finite max (NaN, +inf, all -inf) gives NaN.
    l = (t.a + log(t.b)) - x_ld(base + u32(tgt));
    if (rl_isnan(t.a) || rl_isinf(t.a)) { l = rl_nan(); }
  }
  loss_st(row, l);
  cnt_st_raw(row, select(0u, 1u, ok));
}`,
      }));
      backend.dispatch(rowProg, [logits!.buffer, targets!.buffer, losses, counted], new Uint32Array([V, T, ignoreIndex >>> 0, 0]), grid1d(T, 1), 'crossEntropy');
    }
    if (none) return;
    const redProg = backend.program(`crossEntropyReduce${WG}|${sg ? 'sg' : ''}`, () => ({
      tensors: [
        { name: 'loss', dtype: 'f32', access: 'read' },
        { name: 'cnt', dtype: 'i32', access: 'read' },
        { name: 'y', dtype: 'f32', access: 'write' },
      ] as TensorDecl[],
      uniformWords: 4,
      workgroupSize: WG,
      subgroups: sg,
      helpers: wgReduceWgsl({ a: 'f32', b: 'u32', combine: 'fn s_comb(x: S, y: S) -> S { return S(x.a + y.a, x.b + y.b); }' }, WG, sg),
      body: `let T = u(0u); let mean = u(1u) != 0u;
var s = S(0.0, 0u);
for (var j = lid; j < T; j += ${WG}u) { s = S(s.a + loss_ld(j), s.b + cnt_raw(j)); }
let t = ${wgReduceCall('s', sg)};
if (lid == 0u) {
  var v = t.a;
  if (mean) { v = t.a / f32(max(t.b, 1u)); }
  y_st(0u, v);
}`,
    }));
    backend.dispatch(redProg, [losses, counted, y!.buffer], new Uint32Array([T, reduction === 'mean' ? 1 : 0, 0, 0]), [1], 'crossEntropy');
  } finally {
    if (!none) backend.free(losses);
    backend.free(counted);
  }
});
