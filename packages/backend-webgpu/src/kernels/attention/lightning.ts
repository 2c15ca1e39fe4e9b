/**
 * WGSL kernels of the lightning (linear) attention ops defined by @ring-linear/attention
 * (MODEL_SPEC §2): lightningAttention (chunked), lightningAttentionBackward and
 * lightningAttentionStep (the recurrence, for decode). Registered by op name.
 *
 * Per head h with lambda = exp(-a_h) and scale s: S_t = lambda S_{t-1} + k_t^T v_t, o_t = s q_t S_t.
 * The state is f32 everywhere (inputs, scratch, outputs); q, k, v, out are decoded to f32 on load
 * and rounded once on store. Decay powers are always exp(-a n) with n >= 0 (log space): they
 * underflow to 0 over long spans and never overflow.
 *
 * The chunked form runs in three dispatches that are parallel over chunks of C tokens:
 *   1. chunk states   U_c = sum_j lambda^(L-1-j) k_j^T v_j           (one tile of [D, Dv] per workgroup)
 *   2. scan           S_c = state entering chunk c; S_{c+1} = lambda^L S_c + U_c, sequential over
 *                     the chunks of a sequence, parallel over the D x Dv state elements (reset at
 *                     each packed sequence: every sequence starts from its own initial state)
 *   3. outputs        O = ((Q K^T) * s Dmask) V + (Q * s lambda^(i+1)) S_c, the C x C score matrix
 *                     held in workgroup memory, never in device memory
 * The backward pass reuses the three templates (the reverse scan carries dLoss/dS backwards).
 */
import type { BackendBuffer, TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend, WebGpuBuffer } from '../../backend.js';
import type { TensorDecl } from '../../wgsl/access.js';
import { f32Bits, register } from '../util.js';
import {
  EXP_NONPOS_WGSL,
  actCode,
  checkGrid,
  colOf,
  declareAcc,
  declareBindings,
  pickTileCfg,
  product,
  rowOf,
  stagedBytes,
  threadCoords,
  tileCols,
  tileRows,
  uploadTable,
  type TileCfg,
} from './tile.js';

interface LightningAttrs {
  scale: number;
  chunkSize: number;
  cuSeqlens: number[] | null;
}

interface Dims {
  H: number;
  D: number;
  Dv: number;
  scale: number;
}

/** Workgroup memory of the output kernel: two staged tiles and the C x C score matrix. */
const sharedBytes = (c: TileCfg) => stagedBytes(c, tileRows(c)) + stagedBytes(c, tileCols(c)) + 4 * tileRows(c) * (tileRows(c) + 1);

/**
 * The chunk table: per chunk g four words (first token row = b * T + t0, length L, sequence n, 0),
 * then per sequence n two words (first chunk, chunk count) from word 4G on.
 */
interface ChunkPlan {
  words: Uint32Array;
  G: number;
  N: number;
  seqOff: number;
}

function chunkPlan(B: number, T: number, C: number, cu: readonly number[] | null): ChunkPlan {
  const seqs: [number, number][] = [];
  if (cu) for (let i = 0; i + 1 < cu.length; i++) seqs.push([cu[i]!, cu[i + 1]!]);
  else for (let b = 0; b < B; b++) seqs.push([b * T, (b + 1) * T]);
  const chunks: number[] = [];
  const seqWords: number[] = [];
  seqs.forEach(([s, e], n) => {
    seqWords.push(chunks.length / 4);
    let count = 0;
    for (let t = s; t < e; t += C) {
      chunks.push(t, Math.min(C, e - t), n, 0);
      count++;
    }
    seqWords.push(count);
  });
  const G = chunks.length / 4;
  return { words: Uint32Array.from([...chunks, ...seqWords]), G, N: seqs.length, seqOff: chunks.length };
}

/** WGSL: the chunk entry of workgroup wid.x, loaded as a uniform value (it bounds barrier loops). */
const LOAD_CHUNK = `if (lid == 0u) { w_chunk = vec4<u32>(tb_raw(4u * wid.x), tb_raw(4u * wid.x + 1u), tb_raw(4u * wid.x + 2u), 0u); }
let chunk = workgroupUniformLoad(&w_chunk);`;

const COMMON_HELPERS = `var<workgroup> w_chunk: vec4<u32>;
var<private> g_row0: u32;
var<private> g_L: u32;
var<private> g_h: u32;
var<private> g_H: u32;
var<private> g_a: f32;
var<private> g_s: f32;
var<private> g_m0: u32;
var<private> g_n0: u32;
${EXP_NONPOS_WGSL}`;

// ---------------------------------------------------------------------------------------------
// 1. Chunk states: U[g][d][e] = sum_j P[j][d] f(j) R[j][e]
//    forward:  P = k, R = v,  f(j) = lambda^(L-1-j)      (the chunk's contribution to the state)
//    backward: P = q, R = dO, f(j) = s lambda^(j+1)      (the chunk's contribution to dLoss/dS)

function runChunkState(
  backend: WebGpuBackend, cfg: TileCfg, mode: 'fwd' | 'bwd', p: TensorInfo, r: TensorInfo, decay: TensorInfo,
  tb: WebGpuBuffer, out: WebGpuBuffer, plan: ChunkPlan, d: Dims,
): void {
  const BM = tileRows(cfg);
  const BN = tileCols(cfg);
  const prog = backend.program(`lightningChunkState|${cfg.WGX}x${cfg.WGY}x${cfg.BK}`, () => {
    const b = declareBindings(backend, [
      { act: 'p', word: 12 },
      { act: 'r', word: 13 },
      { fixed: { name: 'decay', dtype: 'f32', access: 'read' } },
      { fixed: { name: 'tb', dtype: 'i32', access: 'read' } },
      { fixed: { name: 'st', dtype: 'f32', access: 'write' } },
    ]);
    return {
      tensors: [],
      extraBindings: b.types,
      uniformWords: 16,
      workgroupSize: [cfg.WGX * cfg.WGY, 1, 1] as const,
      helpers: `${b.decl}
${COMMON_HELPERS}
var<private> g_D: u32;
var<private> g_Dv: u32;
var<private> g_bwd: bool;
var<workgroup> lsh: array<array<f32, ${BM + 1}>, ${cfg.BK}>;
var<workgroup> rsh: array<array<f32, ${BN + 1}>, ${cfg.BK}>;
// L[m][k] = P[token k][channel m0 + m] f(k): contiguous in m. f = lambda^(L-1-k) (forward) or
// s lambda^(k+1) (backward).
fn ld_p(i: u32, k: u32) -> f32 {
  let dd = g_m0 + i;
  if (k >= g_L || dd >= g_D) { return 0.0; }
  var f: f32;
  if (g_bwd) { f = g_s * at_exp_nonpos(-g_a * f32(k + 1u)); } else { f = at_exp_nonpos(-g_a * f32(g_L - 1u - k)); }
  return p_ld(((g_row0 + k) * g_H + g_h) * g_D + dd) * f;
}
fn ld_r(i: u32, k: u32) -> f32 {
  let e = g_n0 + i;
  if (k >= g_L || e >= g_Dv) { return 0.0; }
  return r_ld(((g_row0 + k) * g_H + g_h) * g_Dv + e);
}`,
      body: `${threadCoords(cfg)}
g_H = u(0u); g_D = u(1u); g_Dv = u(2u); g_s = uf(3u); let nTn = u(5u); g_bwd = u(9u) != 0u;
${LOAD_CHUNK}
g_row0 = chunk.x; g_L = chunk.y; g_h = wid.y; g_a = decay_ld(wid.y);
g_m0 = (wid.z / nTn) * ${BM}u; g_n0 = (wid.z % nTn) * ${BN}u;
${declareAcc('acc', cfg.TM, cfg.TN)}
${product({ cfg, K: 'chunk.y', left: { stage: { fn: 'ld_p', fast: 'mn' } }, right: { fn: 'ld_r', fast: 'mn' }, TN: cfg.TN, acc: 'acc', lsh: 'lsh', rsh: 'rsh' })}
let base = (wid.x * g_H + g_h) * g_D;
${storeTile(cfg, (r, c) => `{ let dd = g_m0 + ${rowOf(cfg, r)}; let e = g_n0 + ${colOf(cfg, c)}; if (dd < g_D && e < g_Dv) { st_st((base + dd) * g_Dv + e, acc_${r}_${c}); } }`)}`,
    };
  });
  const nTm = Math.ceil(d.D / BM);
  const nTn = Math.ceil(d.Dv / BN);
  checkGrid(backend, 'lightningAttention', 'chunks', plan.G);
  const u = new Uint32Array(16);
  u.set([d.H, d.D, d.Dv, f32Bits(d.scale), plan.seqOff, nTn]);
  u[9] = mode === 'bwd' ? 1 : 0;
  u[12] = actCode(p.dtype);
  u[13] = actCode(r.dtype);
  backend.dispatch(prog, [p.buffer, r.buffer, decay.buffer, tb, out], u, [plan.G, d.H, nTm * nTn], 'lightningAttention');
}

function storeTile(cfg: TileCfg, stmt: (r: number, c: number) => string, TN = cfg.TN): string {
  const out: string[] = [];
  for (let r = 0; r < cfg.TM; r++) for (let c = 0; c < TN; c++) out.push(stmt(r, c));
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// 2. Scan over the chunks of each sequence, one invocation per state element:
//    forward: slot c <- S (entering chunk c); S <- lambda^L S + U_c; final <- S
//    reverse: slot c <- G (dLoss/dS leaving chunk c); G <- lambda^L G + V_c; final <- G (= dLoss/dS_0)

function runScan(
  backend: WebGpuBackend, dir: 'fwd' | 'rev', slots: BackendBuffer, init: BackendBuffer, final: BackendBuffer,
  decay: TensorInfo, tb: WebGpuBuffer, plan: ChunkPlan, d: Dims,
): void {
  const WG = backend.workgroupSize(256);
  const prog = backend.program(`lightningScan|${WG}`, () => ({
    tensors: [
      { name: 'sl', dtype: 'f32', access: 'write' },
      { name: 'init', dtype: 'f32', access: 'read' },
      { name: 'fin', dtype: 'f32', access: 'write' },
      { name: 'decay', dtype: 'f32', access: 'read' },
      { name: 'tb', dtype: 'i32', access: 'read' },
    ] as TensorDecl[],
    uniformWords: 4,
    workgroupSize: WG,
    helpers: EXP_NONPOS_WGSL,
    body: `let H = u(0u); let DD = u(1u); let seqOff = u(2u); let reverse = u(3u) != 0u;
let x = wid.x * ${WG}u + lid;
if (x >= DD) { return; }
let h = wid.y; let n = wid.z;
let first = tb_raw(seqOff + 2u * n); let count = tb_raw(seqOff + 2u * n + 1u);
let a = decay_ld(h);
let si = (n * H + h) * DD + x;
var S = init_ld(si);
for (var c = 0u; c < count; c = c + 1u) {
  let g = select(first + c, first + count - 1u - c, reverse);
  let L = tb_raw(4u * g + 1u);
  let idx = (g * H + h) * DD + x;
  let contrib = sl_ld(idx);
  sl_st(idx, S);
  S = at_exp_nonpos(-a * f32(L)) * S + contrib;
}
fin_st(si, S);`,
  }));
  const DD = d.D * d.Dv;
  checkGrid(backend, 'lightningAttention', 'sequences', plan.N);
  const gx = Math.ceil(DD / WG);
  checkGrid(backend, 'lightningAttention', 'state tiles', gx);
  backend.dispatch(prog, [slots, init, final, decay.buffer, tb], new Uint32Array([d.H, DD, plan.seqOff, dir === 'rev' ? 1 : 0]), [gx, d.H, plan.N], 'lightningAttention');
}

// ---------------------------------------------------------------------------------------------
// 3. Per-chunk outputs: Out = (P1 P2^T * s Dmask)^(T?) R1 + (L2 * f) R2, where Dmask[i][j] =
//    lambda^(i-j) for j <= i (0 above the diagonal) and R2 is a [D, Dv] state (or its transpose).
//
//    fwd: O  = A V + (Q s lambda^(i+1)) S              A = Q K^T * s Dmask
//    dq:  dQ = M K + (dO s lambda^(i+1)) S^T           M = dO V^T * s Dmask
//    dk:  dK = M^T Q + (V lambda^(L-1-j)) dH^T
//    dv:  dV = A^T dO + (K lambda^(L-1-j)) dH          (dH: dLoss/dS leaving the chunk)

type OutMode = 'fwd' | 'dq' | 'dk' | 'dv';

/** Per mode: the inner extent of the scores (X), the columns written (N), L2's factor and width (Y), transposes. */
const OUT_MODES: Record<OutMode, { X: 'D' | 'Dv'; N: 'D' | 'Dv'; Y: 'D' | 'Dv'; transposeScores: boolean; factor: 'q' | 'k'; stateT: boolean }> = {
  fwd: { X: 'D', N: 'Dv', Y: 'D', transposeScores: false, factor: 'q', stateT: false },
  dq: { X: 'Dv', N: 'D', Y: 'Dv', transposeScores: false, factor: 'q', stateT: true },
  dk: { X: 'Dv', N: 'D', Y: 'Dv', transposeScores: true, factor: 'k', stateT: true },
  dv: { X: 'D', N: 'Dv', Y: 'D', transposeScores: true, factor: 'k', stateT: false },
};

function runChunkOut(
  backend: WebGpuBackend, cfg: TileCfg, mode: OutMode,
  t: { p1: TensorInfo; p2: TensorInfo; r1: TensorInfo; l2: TensorInfo; out: TensorInfo },
  state: WebGpuBuffer, decay: TensorInfo, tb: WebGpuBuffer, plan: ChunkPlan, d: Dims,
): void {
  const m = OUT_MODES[mode];
  const C = tileRows(cfg);
  const prog = backend.program(`lightningChunkOut|${cfg.WGX}x${cfg.WGY}x${cfg.BK}`, () => {
    const b = declareBindings(backend, [
      { act: 'p1', word: 12 },
      { act: 'p2', word: 13 },
      { act: 'r1', word: 14 },
      { act: 'l2', word: 15 },
      { fixed: { name: 'st', dtype: 'f32', access: 'read' } },
      { actOut: 'out', word: 16 },
      { fixed: { name: 'decay', dtype: 'f32', access: 'read' } },
      { fixed: { name: 'tb', dtype: 'i32', access: 'read' } },
    ]);
    return {
      tensors: [],
      extraBindings: b.types,
      uniformWords: 20,
      workgroupSize: [cfg.WGX * cfg.WGY, 1, 1] as const,
      helpers: `${b.decl}
${COMMON_HELPERS}
var<private> g_X: u32;
var<private> g_N: u32;
var<private> g_Y: u32;
var<private> g_Dv: u32;
var<private> g_sbase: u32;
var<private> g_qFactor: bool;
var<private> g_stateT: bool;
var<workgroup> lsh: array<array<f32, ${C + 1}>, ${cfg.BK}>;
var<workgroup> rsh: array<array<f32, ${C + 1}>, ${cfg.BK}>;
// The decay-masked score matrix of the chunk, stored transposed in the dk/dv modes (zeros above
// the diagonal and past L).
var<workgroup> ash: array<array<f32, ${C + 1}>, ${C}>;
fn ld_p1(i: u32, k: u32) -> f32 {
  if (i >= g_L || k >= g_X) { return 0.0; }
  return p1_ld(((g_row0 + i) * g_H + g_h) * g_X + k);
}
fn ld_p2(j: u32, k: u32) -> f32 {
  if (j >= g_L || k >= g_X) { return 0.0; }
  return p2_ld(((g_row0 + j) * g_H + g_h) * g_X + k);
}
fn ld_r1(n: u32, k: u32) -> f32 {
  let e = g_n0 + n;
  if (k >= g_L || e >= g_N) { return 0.0; }
  return r1_ld(((g_row0 + k) * g_H + g_h) * g_N + e);
}
// L2 rows scaled by s lambda^(i+1) (fwd, dq) or lambda^(L-1-i) (dk, dv).
fn ld_l2(i: u32, y: u32) -> f32 {
  if (i >= g_L || y >= g_Y) { return 0.0; }
  var f: f32;
  if (g_qFactor) { f = g_s * at_exp_nonpos(-g_a * f32(i + 1u)); } else { f = at_exp_nonpos(-g_a * f32(g_L - 1u - i)); }
  return l2_ld(((g_row0 + i) * g_H + g_h) * g_Y + y) * f;
}
// R2[y][n]: the chunk's [D][Dv] state (row stride Dv) or its transpose.
fn ld_r2(nl: u32, y: u32) -> f32 {
  let n = g_n0 + nl;
  if (y >= g_Y || n >= g_N) { return 0.0; }
  if (g_stateT) { return st_ld((g_sbase + n) * g_Dv + y); }
  return st_ld((g_sbase + y) * g_Dv + n);
}`,
      body: `${threadCoords(cfg)}
g_H = u(0u); let D = u(1u); g_Dv = u(2u); g_s = uf(3u); let nTn = u(5u);
g_X = u(6u); g_N = u(7u); g_Y = u(8u);
let transposed = u(9u) != 0u; g_qFactor = u(10u) == 0u; g_stateT = u(11u) != 0u;
// Loop bounds must be uniform values (lets from the uniform block or workgroupUniformLoad).
let Xd = u(6u); let Yd = u(8u); let stateT = u(11u) != 0u;
${LOAD_CHUNK}
g_row0 = chunk.x; g_L = chunk.y; g_h = wid.y; g_a = decay_ld(wid.y);
g_n0 = wid.z * ${C}u;
g_sbase = (wid.x * g_H + g_h) * D;
${declareAcc('sc', cfg.TM, cfg.TN)}
${product({ cfg, K: 'Xd', left: { stage: { fn: 'ld_p1', fast: 'k' } }, right: { fn: 'ld_p2', fast: 'k' }, TN: cfg.TN, acc: 'sc', lsh: 'lsh', rsh: 'rsh' })}
${storeTile(cfg, (r, c) => `{ let i = ${rowOf(cfg, r)}; let j = ${colOf(cfg, c)}; var x = 0.0;
  if ((j <= i) & (i < g_L)) { x = g_s * at_exp_nonpos(-g_a * f32(i - j)) * sc_${r}_${c}; }
  if (transposed) { ash[j][i] = x; } else { ash[i][j] = x; } }`)}
workgroupBarrier();
${declareAcc('o', cfg.TM, cfg.TN)}
${product({ cfg, K: 'chunk.y', TN: cfg.TN, acc: 'o', lsh: 'lsh', rsh: 'rsh', left: { direct: (mm, k) => `ash[${mm}][${k}]` }, right: { fn: 'ld_r1', fast: 'mn' } })}
${product({ cfg, K: 'Yd', TN: cfg.TN, acc: 'o', lsh: 'lsh', rsh: 'rsh', left: { stage: { fn: 'ld_l2', fast: 'k' } }, right: { fn: 'ld_r2', fast: { when: 'stateT', then: 'k', else: 'mn' } } })}
${storeTile(cfg, (r, c) => `{ let i = ${rowOf(cfg, r)}; let e = g_n0 + ${colOf(cfg, c)}; if ((i < g_L) & (e < g_N)) { out_st(((g_row0 + i) * g_H + g_h) * g_N + e, o_${r}_${c}); } }`)}`,
    };
  });
  const dim = (w: 'D' | 'Dv') => (w === 'D' ? d.D : d.Dv);
  const N = dim(m.N);
  const nTn = Math.ceil(N / C);
  checkGrid(backend, 'lightningAttention', 'chunks', plan.G);
  const u = new Uint32Array(20);
  u.set([d.H, d.D, d.Dv, f32Bits(d.scale), plan.seqOff, nTn, dim(m.X), N, dim(m.Y), m.transposeScores ? 1 : 0, m.factor === 'q' ? 0 : 1, m.stateT ? 1 : 0]);
  u.set([actCode(t.p1.dtype), actCode(t.p2.dtype), actCode(t.r1.dtype), actCode(t.l2.dtype), actCode(t.out.dtype)], 12);
  backend.dispatch(prog, [t.p1.buffer, t.p2.buffer, t.r1.buffer, t.l2.buffer, state, t.out.buffer, decay.buffer, tb], u, [plan.G, d.H, nTn], 'lightningAttention');
}

// ---------------------------------------------------------------------------------------------
// Registration

function setup(backend: WebGpuBackend, q: TensorInfo, v: TensorInfo, attrs: LightningAttrs) {
  const [B, T, H, D] = q.shape as [number, number, number, number];
  const d: Dims = { H, D, Dv: v.shape[3]!, scale: attrs.scale };
  const cfg = pickTileCfg(backend, sharedBytes);
  // The kernel's chunk is at most its tile; a smaller chunkSize is honoured (same math, another
  // evaluation order).
  const plan = chunkPlan(B, T, Math.max(1, Math.min(attrs.chunkSize, tileRows(cfg))), attrs.cuSeqlens);
  return { d, cfg, plan };
}

register('lightningAttention', ({ backend, inputs: [q, k, v, decay, s0], outputs: [out, sf], attrs }) => {
  const { d, cfg, plan } = setup(backend, q!, v!, attrs as LightningAttrs);
  const tb = uploadTable(backend, plan.words);
  const states = backend.scratch(4 * plan.G * d.H * d.D * d.Dv);
  try {
    runChunkState(backend, cfg, 'fwd', k!, v!, decay!, tb, states, plan, d);
    runScan(backend, 'fwd', states, s0!.buffer, sf!.buffer, decay!, tb, plan, d);
    runChunkOut(backend, cfg, 'fwd', { p1: q!, p2: k!, r1: v!, l2: q!, out: out! }, states, decay!, tb, plan, d);
  } finally {
    backend.free(states);
    backend.free(tb);
  }
});

register('lightningAttentionBackward', ({ backend, inputs: [q, k, v, decay, s0, dOut, dFinal], outputs: [dq, dk, dv, ds0], attrs }) => {
  const { d, cfg, plan } = setup(backend, q!, v!, attrs as LightningAttrs);
  const tb = uploadTable(backend, plan.words);
  const bytes = 4 * plan.G * d.H * d.D * d.Dv;
  // States entering each chunk (recomputed), then dLoss/dS leaving each chunk.
  const states = backend.scratch(bytes);
  const grads = backend.scratch(bytes);
  const unusedFinal = backend.scratch(4 * plan.N * d.H * d.D * d.Dv);
  try {
    runChunkState(backend, cfg, 'fwd', k!, v!, decay!, tb, states, plan, d);
    runScan(backend, 'fwd', states, s0!.buffer, unusedFinal, decay!, tb, plan, d);
    runChunkState(backend, cfg, 'bwd', q!, dOut!, decay!, tb, grads, plan, d);
    runScan(backend, 'rev', grads, dFinal!.buffer, ds0!.buffer, decay!, tb, plan, d);
    runChunkOut(backend, cfg, 'dq', { p1: dOut!, p2: v!, r1: k!, l2: dOut!, out: dq! }, states, decay!, tb, plan, d);
    runChunkOut(backend, cfg, 'dk', { p1: dOut!, p2: v!, r1: q!, l2: v!, out: dk! }, grads, decay!, tb, plan, d);
    runChunkOut(backend, cfg, 'dv', { p1: q!, p2: k!, r1: dOut!, l2: k!, out: dv! }, grads, decay!, tb, plan, d);
  } finally {
    backend.free(states);
    backend.free(grads);
    backend.free(unusedFinal);
    backend.free(tb);
  }
});

// ---------------------------------------------------------------------------------------------
// The recurrent step (decode): one workgroup per (column tile of 32, head, batch entry). Thread
// (e, dg) owns state column e and the rows d = dg, dg + DG, ...; it applies the tokens of a group
// of TT to each of its state elements in registers (S = lambda S + k_t[d] v_t[e], o_t += q_t[d] S)
// and writes each element once per group: the state is read and written once per TT tokens, which
// is what bounds this kernel (its state traffic). The partial o_t are summed over the DG row groups
// in workgroup memory.

const STEP_COLS = 32;
const STEP_TOKENS = 8;

register('lightningAttentionStep', ({ backend, inputs: [q, k, v, decay, s0], outputs: [out, sf], attrs }) => {
  const { scale } = attrs as { scale: number };
  const [B, T, H, D] = q!.shape as [number, number, number, number];
  const Dv = v!.shape[3]!;
  const NT = backend.workgroupSize(256);
  const DG = NT / STEP_COLS;
  const TT = STEP_TOKENS;
  const tokens = Array.from({ length: TT }, (_, t) => t);
  const prog = backend.program(`lightningStep|${NT}`, () => {
    const bnd = declareBindings(backend, [
      { act: 'q', word: 8 },
      { act: 'k', word: 9 },
      { act: 'v', word: 10 },
      { fixed: { name: 'decay', dtype: 'f32', access: 'read' } },
      { fixed: { name: 'st', dtype: 'f32', access: 'read' } },
      { actOut: 'out', word: 11 },
      { fixed: { name: 'ns', dtype: 'f32', access: 'write' } },
    ]);
    return {
    tensors: [],
    extraBindings: bnd.types,
    uniformWords: 12,
    workgroupSize: NT,
    helpers: `${bnd.decl}
${EXP_NONPOS_WGSL}
var<workgroup> red: array<f32, ${TT * NT}>;`,
    body: `let T = u(0u); let H = u(1u); let D = u(2u); let Dv = u(3u); let s = uf(4u);
let el = lid % ${STEP_COLS}u; let dg = lid / ${STEP_COLS}u;
let e = wid.x * ${STEP_COLS}u + el; let h = wid.y; let b = wid.z;
let lam = at_exp_nonpos(-decay_ld(h));
for (var t0 = 0u; t0 < T; t0 = t0 + ${TT}u) {
  let nt = min(${TT}u, T - t0);
  ${tokens.map((t) => `var p${t} = 0.0;`).join(' ')}
  if (e < Dv) {
    for (var dd = dg; dd < D; dd = dd + ${DG}u) {
      let si = ((b * H + h) * D + dd) * Dv + e;
      var S: f32;
      if (t0 == 0u) { S = st_ld(si); } else { S = ns_ld(si); }
      ${tokens.map((t) => `if (${t}u < nt) { let row = (b * T + t0 + ${t}u) * H + h; S = lam * S + k_ld(row * D + dd) * v_ld(row * Dv + e); p${t} = p${t} + q_ld(row * D + dd) * S; }`).join('\n      ')}
      ns_st(si, S);
    }
  }
  ${tokens.map((t) => `red[(${t}u * ${DG}u + dg) * ${STEP_COLS}u + el] = p${t};`).join(' ')}
  workgroupBarrier();
  for (var tt = dg; tt < nt; tt = tt + ${DG}u) {
    if (e < Dv) {
      var acc = 0.0;
      for (var j = 0u; j < ${DG}u; j = j + 1u) { acc = acc + red[(tt * ${DG}u + j) * ${STEP_COLS}u + el]; }
      out_st(((b * T + t0 + tt) * H + h) * Dv + e, s * acc);
    }
  }
  workgroupBarrier();
}`,
    };
  });
  const gx = Math.ceil(Dv / STEP_COLS);
  checkGrid(backend, 'lightningAttentionStep', 'heads', H);
  checkGrid(backend, 'lightningAttentionStep', 'batch entries', B);
  const u = new Uint32Array([T, H, D, Dv, f32Bits(scale), 0, 0, 0, actCode(q!.dtype), actCode(k!.dtype), actCode(v!.dtype), actCode(out!.dtype)]);
  backend.dispatch(prog, [q!.buffer, k!.buffer, v!.buffer, decay!.buffer, s0!.buffer, out!.buffer, sf!.buffer], u, [gx, H, B], 'lightningAttentionStep');
});
