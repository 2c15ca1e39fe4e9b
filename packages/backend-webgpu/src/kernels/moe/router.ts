/**
 * WebGPU kernel of `moeRouter` (@ring-linear/moe ops/router.ts, MODEL_SPEC §4), the CPU kernel's
 * steps with its rounding points, so both choose the same experts:
 *
 *   1. logits = fp32(x) @ fp32(W)^T as float-float dot products rounded once to f32 (precise.ts);
 *   2. one workgroup per token: s = sigmoid (or softmax) of the f32 logits in float-float, rounded
 *      once to f32 (the scores output); b = fl32(s + bias);
 *   3. group limit: a group's score is fl32(top1 + top2) of its b; a group is kept when fewer than
 *      topkGroup groups rank before it; b of dropped groups becomes 0.0;
 *   4. top-k by rank: expert j's rank is the number of experts ranking before it (NaN first, then
 *      larger, then the lower index: core's topk order), and rank r < K writes index r. Ranks are a
 *      permutation, so the k best come out best first with ties to the lower index, exactly the
 *      CPU's insertion selection;
 *   5. weights = s[idx] * routedScalingFactor / (sum + 1e-20) in float-float, rounded once.
 *
 * Every token is computed alone in a fixed order: results do not depend on the batch.
 */
import type { TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../../backend.js';
import type { TensorDecl } from '../../wgsl/access.js';
import { grid1d, LINEAR_WG, register } from '../util.js';
import { FF_WGSL, ffLit, runPreciseLogits } from './precise.js';

interface RouterAttrs {
  topK: number;
  nGroup: number;
  topkGroup: number;
  scoreFunction: 'sigmoid' | 'softmax';
  normTopkProb: boolean;
  routedScalingFactor: number;
}

const NONE = '0xffffffffu';

/** WGSL: core's topk order (NaN above every number, then larger, then the lower index). */
export const RANKS_BEFORE = /* wgsl */ `
fn ranks_before(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
  let na = rl_isnan(va);
  let nb = rl_isnan(vb);
  if (na || nb) { return na && (!nb || ia < ib); }
  return va > vb || (va == vb && ia < ib);
}`;

function routeProgram(backend: WebGpuBackend, bias: TensorInfo, softmax: boolean, WG: number) {
  return backend.program(`moe_route${WG}|${bias.dtype}|${softmax ? 'softmax' : 'sigmoid'}`, () => ({
    tensors: [
      { name: 'lg', dtype: 'f32', access: 'read' },
      { name: 'bias', dtype: bias.dtype, access: 'read' },
      { name: 'wo', dtype: 'f32', access: 'write' },
      { name: 'io', dtype: 'i32', access: 'write' },
      { name: 'so', dtype: 'f32', access: 'write' },
      { name: 'scr', dtype: 'i32', access: 'write' },
    ] as TensorDecl[],
    uniformWords: 12,
    workgroupSize: WG,
    helpers: `${FF_WGSL}
${RANKS_BEFORE}
var<workgroup> wg_max: array<f32, ${WG}>;
var<workgroup> wg_nan: array<u32, ${WG}>;
var<workgroup> wg_part: array<vec2<f32>, ${WG}>;
var<workgroup> sm_max: f32;
var<workgroup> sm_bad: u32;
var<workgroup> sm_total: vec2<f32>;
// Scratch per token (u32 words): b [E], group scores [G], kept flags [G].
fn b_at(t: u32, j: u32) -> f32 { return bitcast<f32>(scr_raw(t * SCR + j)); }
var<private> SCR: u32;
var<private> E: u32;
var<private> G: u32;
var<private> GSIZE: u32;
fn masked_b(t: u32, j: u32) -> f32 {
  if (G > 1u && scr_raw(t * SCR + E + G + j / GSIZE) == 0u) { return 0.0; }
  return b_at(t, j);
}
${softmax ? `// exp(l - max) as m 2^n; l - max is exact as a float-float.
fn sm_exp(l: f32, mx: f32) -> FfExp {
  if (rl_isinf(l)) { return FfExp(vec2<f32>(0.0), 0); } // -inf (a finite max rules out +inf)
  return ff_exp_neg(two_sum(l, -mx));
}` : ''}`,
    body: `FF_ZERO = u(8u);
let N = u(0u); E = u(1u); let K = u(2u); G = u(3u); let topkGroup = u(4u); GSIZE = u(5u);
let flags = u(6u); let norm = (flags & 1u) != 0u;
SCR = E + 2u * G;
let t = ${LINEAR_WG};
if (t >= N) { return; }
let lbase = t * E;
${softmax ? `// softmax over the experts: max (NaN-aware), then the float-float sum of exp(l - max) in a fixed order.
var mx = -rl_inf();
var nan = 0u;
for (var j = lid; j < E; j += ${WG}u) {
  let l = lg_ld(lbase + j);
  if (rl_isnan(l)) { nan = 1u; } else { mx = max(mx, l); }
}
wg_max[lid] = mx;
wg_nan[lid] = nan;
workgroupBarrier();
if (lid == 0u) {
  var m = wg_max[0];
  var bad = wg_nan[0];
  for (var i = 1u; i < ${WG}u; i++) { m = max(m, wg_max[i]); bad = bad | wg_nan[i]; }
  // A NaN or infinite max gives NaN scores everywhere (as the CPU's float64 softmax).
  if (rl_isinf(m)) { bad = 1u; }
  sm_max = m;
  sm_bad = bad;
}
workgroupBarrier();
let gmax = sm_max;
let gbad = sm_bad != 0u;
var part = vec2<f32>(0.0);
if (!gbad) {
  for (var j = lid; j < E; j += ${WG}u) {
    let ex = sm_exp(lg_ld(lbase + j), gmax);
    if (ex.n >= -100) { part = ff_add(part, ff_scale(ex.m, ex.n)); }
  }
}
wg_part[lid] = part;
workgroupBarrier();
if (lid == 0u) {
  var tot = wg_part[0];
  for (var i = 1u; i < ${WG}u; i++) { tot = ff_add(tot, wg_part[i]); }
  sm_total = tot;
}
workgroupBarrier();
let total = sm_total;` : ''}
// Scores (an output) and biased scores (selection only).
for (var j = lid; j < E; j += ${WG}u) {
  var sb: u32;
  ${softmax
    ? 'if (gbad) { sb = 0x7fc00000u; } else { let ex = sm_exp(lg_ld(lbase + j), gmax); sb = ff_round_scaled(ff_div(ex.m, total), ex.n); }'
    : 'sb = ff_sigmoid_bits(lg_ld(lbase + j));'}
  so_st_raw(lbase + j, sb);
  scr_st_raw(t * SCR + j, bitcast<u32>(bitcast<f32>(sb) + bias_ld(j)));
}
storageBarrier();
if (u(3u) > 1u) { // (a uniform read: the barriers inside need uniform control flow)
  // Group score: fl32(top1 + top2) of b in the group (its one value for groups of one).
  for (var g = lid; g < G; g += ${WG}u) {
    var v1 = 0.0; var i1 = ${NONE}; var v2 = 0.0; var i2 = ${NONE};
    for (var j = g * GSIZE; j < (g + 1u) * GSIZE; j++) {
      let v = b_at(t, j);
      if (i1 == ${NONE} || ranks_before(v, j, v1, i1)) { v2 = v1; i2 = i1; v1 = v; i1 = j; }
      else if (i2 == ${NONE} || ranks_before(v, j, v2, i2)) { v2 = v; i2 = j; }
    }
    var gs = v1;
    if (GSIZE >= 2u) { gs = v1 + v2; }
    scr_st_raw(t * SCR + E + g, bitcast<u32>(gs));
  }
  storageBarrier();
  for (var g = lid; g < G; g += ${WG}u) {
    let gs = bitcast<f32>(scr_raw(t * SCR + E + g));
    var rank = 0u;
    for (var h = 0u; h < G; h++) {
      if (ranks_before(bitcast<f32>(scr_raw(t * SCR + E + h)), h, gs, g)) { rank = rank + 1u; }
    }
    scr_st_raw(t * SCR + E + G + g, select(0u, 1u, rank < topkGroup));
  }
  storageBarrier();
}
// Top-k of the masked b by rank.
for (var j = lid; j < E; j += ${WG}u) {
  let v = masked_b(t, j);
  var rank = 0u;
  for (var i = 0u; i < E && rank < K; i++) {
    if (ranks_before(masked_b(t, i), i, v, j)) { rank = rank + 1u; }
  }
  if (rank < K) { io_st_raw(t * K + rank, j); }
}
storageBarrier();
if (lid == 0u) {
  let rsf = vec2<f32>(uf(9u), uf(10u));
  var tot = vec2<f32>(0.0);
  for (var i = 0u; i < K; i++) { tot = ff_add(tot, vec2<f32>(so_ld(lbase + io_raw(t * K + i)), 0.0)); }
  var scale = rsf;
  if (norm) { scale = ff_div(rsf, ff_add(tot, ${ffLit(1e-20)})); }
  for (var i = 0u; i < K; i++) {
    let w = ff_mul_f(scale, so_ld(lbase + io_raw(t * K + i)));
    wo_st(t * K + i, w.x + w.y);
  }
}`,
  }));
}

register('moeRouter', ({ backend, inputs: [x, gw, bias], outputs: [wOut, iOut, sOut], attrs }) => {
  const a = attrs as RouterAttrs;
  const [N, H] = x!.shape as [number, number];
  const E = gw!.shape[0]!;
  if (N === 0) return;
  const limitGroups = a.topkGroup < a.nGroup;
  const G = limitGroups ? a.nGroup : 1;
  const logits = backend.scratch(4 * N * E);
  const scr = backend.scratch(4 * N * (E + 2 * G));
  try {
    runPreciseLogits(backend, x!, gw!, logits, N, E, H);
    const WG = 64;
    const prog = routeProgram(backend, bias!, a.scoreFunction === 'softmax', WG);
    const rsfHi = Math.fround(a.routedScalingFactor);
    const u = new Uint32Array(12);
    const f = new Float32Array(u.buffer);
    u[0] = N;
    u[1] = E;
    u[2] = a.topK;
    u[3] = G;
    u[4] = a.topkGroup;
    u[5] = E / G;
    u[6] = a.normTopkProb ? 1 : 0;
    u[8] = 0; // FF_ZERO
    f[9] = rsfHi;
    f[10] = a.routedScalingFactor - rsfHi;
    backend.dispatch(prog, [logits, bias!.buffer, wOut!.buffer, iOut!.buffer, sOut!.buffer, scr], u, grid1d(N, 1), 'moeRouter');
  } finally {
    backend.free(logits);
    backend.free(scr);
  }
});
