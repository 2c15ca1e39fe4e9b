/**
 * WGSL kernels of softmaxAttention and softmaxAttentionBackward (@ring-linear/attention, MODEL_SPEC
 * §3): grouped-query heads (query head h reads kv head h / (H / Hkv)), causal masking with query
 * positions kvOffset + i, the valid-key prefix kvLen, packed sequences via cuSeqlens.
 *
 * Flash-style: a workgroup owns a block of queries and walks the keys in tiles; the scores of one
 * (query block, key tile) pair live in workgroup memory only, and an online softmax (running max
 * and sum per query row, the accumulator rescaled when the max grows) replaces the full row, so no
 * Tq x Tk matrix is ever stored. The backward pass recomputes the probabilities from the saved
 * log-sum-exp: dQ per query block (walking keys), dK and dV per key block (walking the queries of
 * every head of the group), so no output is written by two workgroups and nothing needs atomics
 * (beyond the packed-dtype stores).
 *
 * Blocks come from a table (eight words each): block start row, block length, then the block's
 * sequence: first query row, query count, first key row, key count, and the position of the first
 * query relative to the first key. Query row r sits at position qPos + (r - q0); key row c at c - k0;
 * causal: key position <= query position.
 */
import type { BackendBuffer, TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../../backend.js';
import { EW_HELPERS } from '../elementwise.js';
import { f32Bits, grid1d, register } from '../util.js';
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
  threads,
  tileCols,
  tileRows,
  uploadTable,
  zeroAcc,
  type BindingSpec,
  type TileCfg,
} from './tile.js';

interface SoftmaxAttrs {
  scale: number;
  causal: boolean;
  cuSeqlens: number[] | null;
  kvLen: number;
  kvOffset: number;
}

interface Dims {
  B: number;
  Tq: number;
  Tk: number;
  H: number;
  Hkv: number;
  D: number;
  Dv: number;
}

const dimsOf = (q: TensorInfo, k: TensorInfo, v: TensorInfo): Dims => {
  const [B, Tq, H, D] = q.shape as [number, number, number, number];
  const [, Tk, Hkv] = k.shape as [number, number, number, number];
  return { B, Tq, Tk, H, Hkv, D, Dv: v.shape[3]! };
};

/** Most output columns per thread (8 x WGX: 128 on GPUs); wider outputs are split over workgroups. */
const MAX_OUT_COLS_PER_THREAD = 8;

/** Workgroup memory of the flash kernels with the widest output tile. */
function sharedBytes(c: TileCfg): number {
  const BM = tileRows(c);
  const BN = tileCols(c);
  const wide = Math.max(BN, MAX_OUT_COLS_PER_THREAD * c.WGX);
  return stagedBytes(c, BM) + stagedBytes(c, wide) + 4 * BM * (BN + 1) + 8 * threads(c) + 5 * 4 * BM;
}

interface Segment {
  q0: number;
  nq: number;
  k0: number;
  nk: number;
  qPos: number;
}

function segments(a: SoftmaxAttrs, d: Dims): Segment[] {
  if (!a.cuSeqlens) return [{ q0: 0, nq: d.Tq, k0: 0, nk: a.kvLen, qPos: a.kvOffset }];
  const out: Segment[] = [];
  for (let i = 0; i + 1 < a.cuSeqlens.length; i++) {
    const s = a.cuSeqlens[i]!;
    const e = a.cuSeqlens[i + 1]!;
    out.push({ q0: s, nq: e - s, k0: s, nk: e - s, qPos: 0 });
  }
  return out;
}

/**
 * Block table. Query blocks (forward, dQ) tile each sequence's queries; key blocks (dK, dV) tile
 * each sequence's keys, and, unpacked, also the cache rows past kvLen (they get zero gradients).
 */
function blockTable(a: SoftmaxAttrs, d: Dims, kind: 'query' | 'key', size: number): { words: Uint32Array; n: number } {
  const w: number[] = [];
  for (const s of segments(a, d)) {
    const [start, len] = kind === 'query' ? [s.q0, s.nq] : [s.k0, a.cuSeqlens ? s.nk : d.Tk];
    for (let r = start; r < start + len; r += size) w.push(r, Math.min(size, start + len - r), s.q0, s.nq, s.k0, s.nk, s.qPos, 0);
  }
  return { words: Uint32Array.from(w), n: w.length / 8 };
}

/** Kernels: forward, dQ, and dK / dV (one pipeline, the output chosen by a uniform word). */
type Mode = 'fwd' | 'dq' | 'dkv';

/** Output columns per thread for an output `width` wide. */
const outColsPerThread = (c: TileCfg, width: number) => Math.min(MAX_OUT_COLS_PER_THREAD, Math.ceil(width / c.WGX));

const LOAD_BLOCK = `if (lid == 0u) {
  let o = 8u * wid.x;
  w_blk0 = vec4<u32>(tb_raw(o), tb_raw(o + 1u), tb_raw(o + 2u), tb_raw(o + 3u));
  w_blk1 = vec4<u32>(tb_raw(o + 4u), tb_raw(o + 5u), tb_raw(o + 6u), 0u);
}
let blk0 = workgroupUniformLoad(&w_blk0);
let blk1 = workgroupUniformLoad(&w_blk1);
let bStart = blk0.x; let bLen = blk0.y; let sQ0 = blk0.z; let sQn = blk0.w; let sK0 = blk1.x; let sKn = blk1.y; let sQPos = blk1.z;`;

/** Uniform words: dims, scale, causal, column tiles, group size, dK-or-dV, activation dtype codes. */
const U_WORDS = 20;
const W_Q = 12;
const W_K = 13;
const W_V = 14;
const W_DO = 15;
const W_OUT = 16;

/**
 * The kernels from one generator. Rows of the thread tile are queries (fwd, dq) or keys (dkv);
 * the score tile is [rows x TN * WGX] and the output tile [rows x TNo * WGX].
 */
function program(backend: WebGpuBackend, cfg: TileCfg, mode: Mode, TNo: number) {
  const BM = tileRows(cfg);
  const BN = tileCols(cfg);
  const NT = threads(cfg);
  const R = NT / BM; // threads per row in the row-statistics step
  const wide = Math.max(BN, TNo * cfg.WGX);
  const key = `softmaxAttention|${mode}|${cfg.WGX}x${cfg.WGY}x${cfg.BK}|o${TNo}`;
  return backend.program(key, () => {
    const b = declareBindings(backend, [
      { act: 'q', word: W_Q },
      { act: 'k', word: W_K },
      { act: 'v', word: W_V },
      ...(mode === 'fwd'
        ? []
        : ([
            { act: 'dO', word: W_DO },
            { fixed: { name: 'lse', dtype: 'f32', access: 'read' } },
            { fixed: { name: 'shift', dtype: 'f32', access: 'read' } },
          ] as BindingSpec[])),
      { fixed: { name: 'tb', dtype: 'i32', access: 'read' } },
      { actOut: 'out', word: W_OUT },
      ...(mode === 'fwd' ? ([{ fixed: { name: 'lseOut', dtype: 'f32', access: 'write' } }] as BindingSpec[]) : []),
    ]);
    // Loaders: (index within the tile, k) -> f32, zero outside. g_r0: first row of the tile's rows
    // (queries or keys), g_c0: first column of the current inner tile (keys or queries).
    const helpers = `${b.decl}
${EXP_NONPOS_WGSL}
${EW_HELPERS}
var<workgroup> w_blk0: vec4<u32>;
var<workgroup> w_blk1: vec4<u32>;
var<workgroup> lsh: array<array<f32, ${BM + 1}>, ${cfg.BK}>;
var<workgroup> rsh: array<array<f32, ${wide + 1}>, ${cfg.BK}>;
var<workgroup> ssh: array<array<f32, ${BN + 1}>, ${BM}>;
var<workgroup> pmax: array<f32, ${NT}>;
var<workgroup> psum: array<f32, ${NT}>;
var<workgroup> mrow: array<f32, ${BM}>;
var<workgroup> lrow: array<f32, ${BM}>;
var<workgroup> crow: array<f32, ${BM}>;
var<private> g_b: u32;
var<private> g_h: u32;
var<private> g_hk: u32;
var<private> g_H: u32;
var<private> g_Hkv: u32;
var<private> g_D: u32;
var<private> g_Dv: u32;
var<private> g_Tq: u32;
var<private> g_Tk: u32;
var<private> g_r0: u32;
var<private> g_rn: u32;
var<private> g_c0: u32;
var<private> g_cEnd: u32;
var<private> g_n0: u32;
var<private> g_isDk: bool;
// Query-row operands [query i][channel]; key-row operands [key j][channel].
fn q_at(i: u32, c: u32) -> f32 { return q_ld(((g_b * g_Tq + i) * g_H + g_h) * g_D + c); }
fn k_at(j: u32, c: u32) -> f32 { return k_ld(((g_b * g_Tk + j) * g_Hkv + g_hk) * g_D + c); }
fn v_at(j: u32, c: u32) -> f32 { return v_ld(((g_b * g_Tk + j) * g_Hkv + g_hk) * g_Dv + c); }
${mode === 'fwd' ? '' : 'fn do_at(i: u32, c: u32) -> f32 { return dO_ld(((g_b * g_Tq + i) * g_H + g_h) * g_Dv + c); }'}
${loaders(mode)}`;
    return {
      tensors: [],
      extraBindings: b.types,
      uniformWords: U_WORDS,
      workgroupSize: [NT, 1, 1] as const,
      helpers,
      body: body(cfg, mode, TNo, R),
    };
  });
}

/** Loader functions of each kernel (see `program`). */
function loaders(mode: Mode): string {
  const rowsAreQueries = mode !== 'dkv';
  // Score operands: rows (tile rows) and columns (inner tile), both contiguous in the channel.
  const [rowT, colT] = rowsAreQueries ? ['q_at', 'k_at'] : ['k_at', 'q_at'];
  const score = `fn ld_rs(i: u32, c: u32) -> f32 { if (i >= g_rn || c >= g_D) { return 0.0; } return ${rowT}(g_r0 + i, c); }
fn ld_cs(j: u32, c: u32) -> f32 { if (g_c0 + j >= g_cEnd || c >= g_D) { return 0.0; } return ${colT}(g_c0 + j, c); }`;
  // dP tiles (backward): dO . v, rows and columns contiguous in the value channel.
  const [rowP, colP] = mode === 'dq' ? ['do_at', 'v_at'] : ['v_at', 'do_at'];
  const dp =
    mode === 'fwd'
      ? ''
      : `fn ld_rp(i: u32, c: u32) -> f32 { if (i >= g_rn || c >= g_Dv) { return 0.0; } return ${rowP}(g_r0 + i, c); }
fn ld_cp(j: u32, c: u32) -> f32 { if (g_c0 + j >= g_cEnd || c >= g_Dv) { return 0.0; } return ${colP}(g_c0 + j, c); }`;
  // The output product's right operand [inner row k][output column n], contiguous in n.
  const right = {
    fwd: 'if (g_c0 + k >= g_cEnd || c >= g_Dv) { return 0.0; } return v_at(g_c0 + k, c);',
    dq: 'if (g_c0 + k >= g_cEnd || c >= g_D) { return 0.0; } return k_at(g_c0 + k, c);',
    // dK = dS^T Q, dV = P^T dO
    dkv: `if (g_c0 + k >= g_cEnd) { return 0.0; }
  if (g_isDk) { if (c >= g_D) { return 0.0; } return q_at(g_c0 + k, c); }
  if (c >= g_Dv) { return 0.0; } return do_at(g_c0 + k, c);`,
  }[mode];
  return `${score}
${dp}
fn ld_out(n: u32, k: u32) -> f32 { let c = g_n0 + n; ${right} }`;
}

function body(cfg: TileCfg, mode: Mode, TNo: number, R: number): string {
  const BM = tileRows(cfg);
  const BN = tileCols(cfg);
  const L: string[] = [];
  L.push(threadCoords(cfg));
  L.push(`g_H = u(0u); g_Hkv = u(1u); g_D = u(2u); g_Dv = u(3u); g_Tq = u(4u); g_Tk = u(5u);
let scale = uf(6u); let causal = u(7u) != 0u; let nCt = u(8u); let G = u(9u);
let Dd = u(2u); let Dvd = u(3u);`);
  L.push(LOAD_BLOCK);
  L.push(`g_b = wid.z; g_r0 = bStart; g_rn = bLen; g_n0 = (wid.y % nCt) * ${TNo * cfg.WGX}u;`);
  L.push(declareAcc('sc', cfg.TM, cfg.TN));
  if (mode !== 'fwd') L.push(declareAcc('dp', cfg.TM, cfg.TN));
  L.push(declareAcc('o', cfg.TM, TNo));
  const scoreProduct = product({ cfg, K: 'Dd', left: { stage: { fn: 'ld_rs', fast: 'k' } }, right: { fn: 'ld_cs', fast: 'k' }, TN: cfg.TN, acc: 'sc', lsh: 'lsh', rsh: 'rsh' });
  const dpProduct = product({ cfg, K: 'Dvd', left: { stage: { fn: 'ld_rp', fast: 'k' } }, right: { fn: 'ld_cp', fast: 'k' }, TN: cfg.TN, acc: 'dp', lsh: 'lsh', rsh: 'rsh' });
  const outProduct = product({
    cfg, K: `min(${BN}u, innerEnd - c0)`, TN: TNo, acc: 'o', lsh: 'lsh', rsh: 'rsh',
    left: { direct: (m, k) => `ssh[${m}][${k}]` },
    right: { fn: 'ld_out', fast: 'mn' },
  });
  const each = (stmt: (r: number, c: number) => string, TN = cfg.TN) => {
    const out: string[] = [];
    for (let r = 0; r < cfg.TM; r++) for (let c = 0; c < TN; c++) out.push(stmt(r, c));
    return out.join('\n');
  };

  if (mode !== 'dkv') {
    // Rows are queries of one head; the inner loop walks key tiles.
    L.push(`g_h = wid.y / nCt; g_hk = g_h / G;
// Keys this block reads: the sequence's first key up to what its last query may see.
let qPos0 = sQPos + (bStart - sQ0);
let innerEnd = select(sK0 + sKn, sK0 + min(sKn, qPos0 + bLen), causal);
g_cEnd = innerEnd;`);
    if (mode === 'fwd') {
      L.push(`if (lid < ${BM}u) { mrow[lid] = -3.0e38; lrow[lid] = 0.0; }`);
    } else {
      // lse and (dLse - delta) of the block's rows, kept in mrow / lrow.
      L.push(`if (lid < ${BM}u && lid < bLen) { let li = (g_b * g_H + g_h) * g_Tq + bStart + lid; mrow[lid] = lse_ld(li); lrow[lid] = shift_ld(li); } // dq: mrow holds lse, lrow dLse - delta`);
    }
    L.push('workgroupBarrier();');
    L.push(`for (var c0 = sK0; c0 < innerEnd; c0 = c0 + ${BN}u) {
g_c0 = c0;
${zeroAcc('sc', cfg.TM, cfg.TN)}
${scoreProduct}`);
    if (mode === 'fwd') {
      L.push(`${each((r, c) => `ssh[${rowOf(cfg, r)}][${colOf(cfg, c)}] = sc_${r}_${c} * scale;`)}
workgroupBarrier();
// Online softmax: ${R} threads per row; a row sees keys [sK0, sK0 + vis).
{
  let row = lid / ${R}u; let part = lid % ${R}u;
  var vis = sKn;
  if (causal) { vis = min(sKn, qPos0 + row + 1u); }
  let nValid = min(${BN}u, max(sK0 + vis, c0) - c0);
  var mx = -3.0e38;
  for (var j = part; j < nValid; j = j + ${R}u) { mx = max(mx, ssh[row][j]); }
  pmax[lid] = mx;
  workgroupBarrier();
  var mt = -3.0e38;
  for (var p = 0u; p < ${R}u; p = p + 1u) { mt = max(mt, pmax[row * ${R}u + p]); }
  let mNew = max(mrow[row], mt);
  var sum = 0.0;
  for (var j = part; j < ${BN}u; j = j + ${R}u) {
    var pr = 0.0;
    if (j < nValid) { pr = at_exp_nonpos(ssh[row][j] - mNew); }
    ssh[row][j] = pr;
    sum = sum + pr;
  }
  psum[lid] = sum;
  workgroupBarrier();
  if (part == 0u) {
    var tot = 0.0;
    for (var p = 0u; p < ${R}u; p = p + 1u) { tot = tot + psum[row * ${R}u + p]; }
    let corr = at_exp_nonpos(mrow[row] - mNew);
    lrow[row] = lrow[row] * corr + tot;
    mrow[row] = mNew;
    crow[row] = corr;
  }
  workgroupBarrier();
}
${Array.from({ length: cfg.TM }, (_, r) => `{ let cr = crow[${rowOf(cfg, r)}]; ${Array.from({ length: TNo }, (_, c) => `o_${r}_${c} = o_${r}_${c} * cr;`).join(' ')} }`).join('\n')}`);
    } else {
      L.push(`${zeroAcc('dp', cfg.TM, cfg.TN)}
${dpProduct}
// dS = P (dP + dLse - delta) scale, P = exp(scale s - lse), zero where the key is hidden.
${each((r, c) => `{ let i = ${rowOf(cfg, r)}; let j = ${colOf(cfg, c)}; var vis = sKn; if (causal) { vis = min(sKn, qPos0 + i + 1u); }
  var ds = 0.0;
  if ((i < bLen) & (c0 + j < sK0 + vis)) { let pr = exp(scale * sc_${r}_${c} - mrow[i]); ds = pr * (dp_${r}_${c} + lrow[i]) * scale; }
  ssh[i][j] = ds; }`)}
workgroupBarrier();`);
    }
    L.push(`${outProduct}
}`);
    if (mode === 'fwd') {
      L.push(`${each((r, c) => `{ let i = ${rowOf(cfg, r)}; let e = g_n0 + ${colOf(cfg, c)}; if (i < bLen && e < g_Dv) { out_st(((g_b * g_Tq + bStart + i) * g_H + g_h) * g_Dv + e, o_${r}_${c} / lrow[i]); } }`, TNo)}
if (g_n0 == 0u && lid < bLen && lid < ${BM}u) { lseOut_st((g_b * g_H + g_h) * g_Tq + bStart + lid, mrow[lid] + ew_log_pos(lrow[lid])); }`);
    } else {
      L.push(each((r, c) => `{ let i = ${rowOf(cfg, r)}; let e = g_n0 + ${colOf(cfg, c)}; if (i < bLen && e < g_D) { out_st(((g_b * g_Tq + bStart + i) * g_H + g_h) * g_D + e, o_${r}_${c}); } }`, TNo));
    }
    return L.join('\n');
  }

  // dK or dV: rows are keys of one kv head; loops over the group's query heads and their query tiles.
  L.push(`g_hk = wid.y / nCt;
let isDk = u(10u) != 0u; g_isDk = isDk;
let outW = select(Dvd, Dd, isDk);
let kRel0 = bStart - sK0;
let innerEnd = sQ0 + sQn;
// Causal: the first query that sees the block's first key; none past the valid keys.
let qFirst = select(sQ0, sQ0 + min(sQn, kRel0 - sQPos), causal && kRel0 > sQPos);
let qStart = select(qFirst, innerEnd, bStart >= sK0 + sKn);
let qEnd = innerEnd;
g_cEnd = innerEnd;
for (var hh = 0u; hh < G; hh = hh + 1u) {
g_h = g_hk * G + hh;
for (var c0 = qStart; c0 < qEnd; c0 = c0 + ${BN}u) {
g_c0 = c0;
${zeroAcc('sc', cfg.TM, cfg.TN)}
${scoreProduct}
if (isDk) {
${zeroAcc('dp', cfg.TM, cfg.TN)}
${dpProduct}
}
// P^T (dV) or dS^T = P^T (dP^T + dLse - delta) scale (dK), zero where the query does not see the key.
${each((r, c) => `{ let jr = ${rowOf(cfg, r)}; let ic = ${colOf(cfg, c)}; let j = bStart + jr; let i = c0 + ic;
  var val = 0.0;
  // Non-short-circuit '&': SwiftShader hung on '&&' / '||' conditions in loops that hold barriers.
  let seen = select(true, j - sK0 <= sQPos + (i - sQ0), causal);
  if ((jr < bLen) & (j < sK0 + sKn) & (i < qEnd) & seen) {
    let li = (g_b * g_H + g_h) * g_Tq + i;
    let pr = exp(scale * sc_${r}_${c} - lse_ld(li));
    val = pr;
    if (isDk) { val = pr * (dp_${r}_${c} + shift_ld(li)) * scale; }
  }
  ssh[jr][ic] = val; }`)}
workgroupBarrier();
${outProduct}
}
}
${each((r, c) => `{ let jr = ${rowOf(cfg, r)}; let e = g_n0 + ${colOf(cfg, c)}; if ((jr < bLen) & (e < outW)) { out_st(((g_b * g_Tk + bStart + jr) * g_Hkv + g_hk) * outW + e, o_${r}_${c}); } }`, TNo)}`);
  return L.join('\n');
}

function uniforms(d: Dims, a: SoftmaxAttrs, nCt: number, isDk: boolean, codes: readonly number[]): Uint32Array {
  const u = new Uint32Array(U_WORDS);
  u.set([d.H, d.Hkv, d.D, d.Dv, d.Tq, d.Tk, f32Bits(a.scale), a.causal ? 1 : 0, nCt, d.H / d.Hkv, isDk ? 1 : 0]);
  u.set(codes, W_Q);
  return u;
}

/** Runs one kernel over its blocks: the output [.., width] split into column tiles. */
function run(
  backend: WebGpuBackend, cfg: TileCfg, mode: Mode, a: SoftmaxAttrs, d: Dims, inputs: readonly BackendBuffer[], out: TensorInfo,
  after: readonly BackendBuffer[], codes: readonly number[], isDk = false,
): void {
  const rowsAreQueries = mode !== 'dkv';
  const width = mode === 'fwd' || (mode === 'dkv' && !isDk) ? d.Dv : d.D;
  const TNo = outColsPerThread(cfg, width);
  const nCt = Math.ceil(width / (TNo * cfg.WGX));
  const table = blockTable(a, d, rowsAreQueries ? 'query' : 'key', tileRows(cfg));
  if (table.n === 0) return;
  const heads = (rowsAreQueries ? d.H : d.Hkv) * nCt;
  const what = `softmaxAttention (${mode === 'dkv' ? (isDk ? 'dk' : 'dv') : mode})`;
  checkGrid(backend, what, 'blocks', table.n);
  checkGrid(backend, what, 'heads x column tiles', heads);
  checkGrid(backend, what, 'batch entries', d.B);
  const prog = program(backend, cfg, mode, TNo);
  const tb = uploadTable(backend, table.words);
  try {
    backend.dispatch(prog, [...inputs, tb, out.buffer, ...after], uniforms(d, a, nCt, isDk, [...codes, actCode(out.dtype)]), [table.n, heads, d.B], what);
  } finally {
    backend.free(tb);
  }
}

register('softmaxAttention', ({ backend, inputs: [q, k, v], outputs: [out, lse], attrs }) => {
  const a = attrs as SoftmaxAttrs;
  const d = dimsOf(q!, k!, v!);
  const cfg = pickTileCfg(backend, sharedBytes);
  run(backend, cfg, 'fwd', a, d, [q!.buffer, k!.buffer, v!.buffer], out!, [lse!.buffer], [actCode(q!.dtype), actCode(k!.dtype), actCode(v!.dtype), 0]);
});

register('softmaxAttentionBackward', ({ backend, inputs: [q, k, v, out, lse, dOut, dLse], outputs: [dq, dk, dv], attrs }) => {
  const a = attrs as SoftmaxAttrs;
  const d = dimsOf(q!, k!, v!);
  const cfg = pickTileCfg(backend, sharedBytes);
  // shift = dLse - delta, delta_i = dO_i . out_i: one invocation per (batch, head, query).
  const shift = backend.scratch(4 * d.B * d.H * d.Tq);
  try {
    const WG = backend.workgroupSize(256);
    const prog = backend.program(`softmaxAttentionDelta|${WG}`, () => {
      const b = declareBindings(backend, [
        { act: 'o', word: 4 },
        { act: 'g', word: 5 },
        { fixed: { name: 'dl', dtype: 'f32', access: 'read' } },
        { fixed: { name: 'sh', dtype: 'f32', access: 'write' } },
      ]);
      return {
      tensors: [],
      extraBindings: b.types,
      uniformWords: 8,
      workgroupSize: WG,
      helpers: b.decl,
      body: `let H = u(0u); let Tq = u(1u); let Dv = u(2u); let n = u(3u);
let x = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
if (x >= n) { return; }
// x = (b * H + h) * Tq + i, the lse layout
let i = x % Tq; let bh = x / Tq; let h = bh % H; let b = bh / H;
let base = ((b * Tq + i) * H + h) * Dv;
var acc = 0.0;
for (var e = 0u; e < Dv; e = e + 1u) { acc = acc + g_ld(base + e) * o_ld(base + e); }
sh_st(x, dl_ld(x) - acc);`,
      };
    });
    const n = d.B * d.H * d.Tq;
    backend.dispatch(prog, [out!.buffer, dOut!.buffer, dLse!.buffer, shift], new Uint32Array([d.H, d.Tq, d.Dv, n, actCode(out!.dtype), actCode(dOut!.dtype), 0, 0]), grid1d(n, WG), 'softmaxAttentionBackward');
    const ins = [q!.buffer, k!.buffer, v!.buffer, dOut!.buffer, lse!.buffer, shift];
    const codes = [q!, k!, v!, dOut!].map((t) => actCode(t.dtype));
    run(backend, cfg, 'dq', a, d, ins, dq!, [], codes);
    run(backend, cfg, 'dkv', a, d, ins, dk!, [], codes, true);
    run(backend, cfg, 'dkv', a, d, ins, dv!, [], codes, false);
  } finally {
    backend.free(shift);
  }
});
