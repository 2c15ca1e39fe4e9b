/**
 * The quantizing kernels' generators (MODEL_SPEC §8; the rule is in @ring-linear/fp8 formats.ts):
 *
 *   amax  = max |x| over the block (on bit patterns: exact, order-free, NaN propagates because a
 *           NaN's magnitude bits exceed +inf's)
 *   scale = fp8_scale_bits(amax)            (exact division, clamp to 2^-126, optional power of 2)
 *   code  = RNE_fp8(rl_div_exact(x, scale)) saturating
 *
 * so codes and scales equal the CPU kernels' bit for bit. The FP8 format and the power-of-two flag
 * are uniforms (one pipeline serves both formats).
 *
 * tileQuant: groups of W consecutive elements along the rows of a virtual matrix [R, C] (1x128
 *   tiles: W = 128; per-row scales: W = C), one workgroup per group. The element values come from
 *   a WGSL function `qval(r, c) -> u32` (f32 bits) the caller supplies: a plain load for the
 *   quantizers, the fused op's f32 math for the fused kernels, a transposed load for x^T. Codes are
 *   written at r * C + c, whole words with one atomic store (bytes shared with a neighbouring group
 *   with an atomic and/or of this group's bytes only).
 * colQuant: 1x128 tiles of the transpose of a row-major matrix (coalesced reads, a transposed stage
 *   in workgroup memory): x^T's half of quant+transpose.
 * blockQuant: 128x128 blocks of the last two dims, one workgroup per block.
 * tensorQuant: one scale: per-workgroup amax folded with atomicMax, then an elementwise pass.
 */
import type { TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../../backend.js';
import { decodeBitsExpr, type AccessOptions, type TensorDecl } from '../../wgsl/access.js';
import { grid1d, LINEAR_ID, LINEAR_WG } from '../util.js';
import { FF_WGSL } from '../moe/precise.js';
import { EXACT_WGSL, fp8MaxBits } from './exact.js';

export type Fp8 = 'f8e4m3' | 'f8e5m2';
export type Layout = 'tensor' | 'row' | 'tile1x128' | 'block128x128';

export const BLOCK = 128;
export const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);

/** WGSL: the saturating code of f32 bits in the format chosen by the uniform flag. */
export const FP8_ENC = 'fn enc_fp8(u: u32, e4m3: bool) -> u32 { if (e4m3) { return rl_enc_e4m3(u, true); } return rl_enc_e5m2(u, true); }';

/** WGSL: the f32 bits of element i of a float tensor binding `name` of `dtype` (no float arithmetic). */
export function bitsLoad(name: string, dtype: TensorInfo['dtype'], i: string, opts: AccessOptions): string {
  return decodeBitsExpr(dtype, `${name}_raw(${i})`, opts);
}

/**
 * Workgroup amax (u32 max) through a workgroup atomic; every invocation must call it (barriers)
 * and gets the result.
 */
const AMAX_REDUCE = `var<workgroup> am_acc: atomic<u32>;
fn amax_reduce(v: u32, lid: u32) -> u32 {
  if (lid == 0u) { atomicStore(&am_acc, 0u); }
  workgroupBarrier();
  atomicMax(&am_acc, v);
  workgroupBarrier();
  let r = atomicLoad(&am_acc);
  workgroupBarrier();
  return r;
}`;

/** Uniform words every quantizing program has at the end: the format flag, maxBits, pow2, zero. */
const QUNI = (base: number) => ({ e4m3: base, maxBits: base + 1, pow2: base + 2, zero: base + 3 });

function quantUniforms(words: number[], dtype: Fp8, pow2Scale: boolean): Uint32Array {
  const u = new Uint32Array(Math.ceil((words.length + 4) / 4) * 4);
  words.forEach((w, i) => (u[i] = w >>> 0));
  const q = QUNI(words.length);
  u[q.e4m3] = dtype === 'f8e4m3' ? 1 : 0;
  u[q.maxBits] = fp8MaxBits(dtype);
  u[q.pow2] = pow2Scale ? 1 : 0;
  u[q.zero] = 0;
  return u;
}

/** WGSL: assembles and stores word `w` of `q_buf` from the codes of its bytes inside [b0, b1) (value bits `val(i)`, i the byte index). */
function storeWord(w: string, b0: string, b1: string, val: (i: string) => string, s: string, e4m3: string): string {
  return `var word = 0u;
    var mask = 0u;
    for (var k = 0u; k < 4u; k++) {
      let i = ${w} * 4u + k;
      if (i >= ${b0} && i < ${b1}) {
        word = word | (enc_fp8(rl_div_exact(${val('i')}, ${s}), ${e4m3}) << (k * 8u));
        mask = mask | (0xffu << (k * 8u));
      }
    }
    // A whole word with one store; a word shared with a neighbouring group: only this group's bytes.
    if (mask == 0xffffffffu) { atomicStore(&q_buf[${w}], word); }
    else { atomicAnd(&q_buf[${w}], ~mask); atomicOr(&q_buf[${w}], word); }`;
}

/** WGSL statements writing the codes of bytes [b0, b1) of `q_buf` (atomic words), value bits from `val(i)` (i = byte index). */
function writeCodes(b0: string, b1: string, WG: number, val: (i: string) => string, s: string, e4m3: string): string {
  return `if (${b1} > ${b0}) {
  for (var cw = (${b0} >> 2u) + lid; cw <= ((${b1} - 1u) >> 2u); cw += ${WG}u) {
    ${storeWord('cw', b0, b1, val, s, e4m3)}
  }
}`;
}

export interface TileQuantSpec {
  /** Distinguishes the value function (and everything else baked in) in the pipeline key. */
  readonly key: string;
  /** Input bindings (read). Outputs q (codes) and sc (scales) are appended. */
  readonly inputs: readonly TensorDecl[];
  /** Module-scope WGSL defining `fn qval(r: u32, c: u32) -> u32` (may read uniforms u(4..)). */
  readonly helpers: string;
  /** Extra uniform words the helpers read, from u(4) on (after R, C, W, T). */
  readonly extraWords: number;
  /** Workgroup size hint (128 for 1x128 tiles). */
  readonly wgPreferred: number;
}

/**
 * Dispatches a tile quantizer: rows R, columns C, groups of W along each row; `inputs` buffers,
 * then the code and scale outputs; `extra` uniform words.
 */
export function runTileQuant(
  backend: WebGpuBackend, spec: TileQuantSpec, buffers: readonly TensorInfo['buffer'][],
  q: TensorInfo['buffer'], s: TensorInfo['buffer'], R: number, C: number, W: number, dtype: Fp8, pow2Scale: boolean, extra: readonly number[] = [],
): void {
  const T = ceilDiv(C, W);
  if (R === 0 || T === 0) return;
  const WG = backend.workgroupSize(spec.wgPreferred);
  const nWords = 4 + spec.extraWords;
  const qu = QUNI(nWords);
  const prog = backend.program(`fp8_tilequant${WG}|${spec.key}`, () => ({
    tensors: [
      ...spec.inputs,
      { name: 'q', dtype: 'f8e4m3', access: 'atomic' },
      { name: 'sc', dtype: 'f32', access: 'write' },
    ] as TensorDecl[],
    uniformWords: nWords + 4,
    workgroupSize: WG,
    helpers: [EXACT_WGSL, FF_WGSL, FP8_ENC, AMAX_REDUCE, spec.helpers].join('\n'),
    body: `FF_ZERO = u(${qu.zero}u);
let R = u(0u); let C = u(1u); let W = u(2u); let T = u(3u);
let e4m3 = u(${qu.e4m3}u) != 0u; let pow2 = u(${qu.pow2}u) != 0u;
let g = ${LINEAR_WG};
if (g >= R * T) { return; }
let r = g / T;
let c0 = (g % T) * W;
let c1 = min(C, c0 + W);
var m = 0u;
for (var c = c0 + lid; c < c1; c += ${WG}u) { m = max(m, qval(r, c) & 0x7fffffffu); }
let amax = amax_reduce(m, lid);
let s = fp8_scale_bits(amax, u(${qu.maxBits}u), pow2);
if (lid == 0u) { sc_st_raw(g, s); }
let b0 = r * C + c0;
${writeCodes('b0', '(r * C + c1)', WG, (i) => `qval(r, c0 + (${i} - b0))`, 's', 'e4m3')}`,
  }));
  const u = quantUniforms([R, C, W, T, ...extra], dtype, pow2Scale);
  backend.dispatch(prog, [...buffers, q, s], u, grid1d(R * T, 1), spec.key);
}

/** Columns per workgroup of the column quantizer (a 128 x CW tile of u32 in workgroup memory: 8 KiB). */
const CW = 16;

/**
 * 1x128 tiles of the TRANSPOSE of a row-major [R, C] matrix (values qval(r, c)): the codes of
 * element (r, c) go to c * R + r, scales [C, ceil(R / 128)]. A workgroup takes 128 rows x CW
 * columns: reads along the rows (coalesced), staged transposed in workgroup memory, then a column
 * amax per output row, its scale, and the codes of CW contiguous 128-byte output segments.
 */
export function runColQuant(
  backend: WebGpuBackend, spec: TileQuantSpec, buffers: readonly TensorInfo['buffer'][],
  q: TensorInfo['buffer'], s: TensorInfo['buffer'], R: number, C: number, dtype: Fp8, pow2Scale: boolean, extra: readonly number[] = [],
): void {
  const MT = ceilDiv(R, BLOCK);
  const KC = ceilDiv(C, CW);
  if (MT === 0 || KC === 0) return;
  const WG = backend.workgroupSize(spec.wgPreferred);
  const nWords = 4 + spec.extraWords;
  const qu = QUNI(nWords);
  const prog = backend.program(`fp8_colquant${WG}|${spec.key}`, () => ({
    tensors: [
      ...spec.inputs,
      { name: 'q', dtype: 'f8e4m3', access: 'atomic' },
      { name: 'sc', dtype: 'f32', access: 'write' },
    ] as TensorDecl[],
    uniformWords: nWords + 4,
    workgroupSize: WG,
    helpers: [
      EXACT_WGSL, FF_WGSL, FP8_ENC, spec.helpers,
      `var<workgroup> tileT: array<u32, ${BLOCK * CW}>;\nvar<workgroup> cam: array<atomic<u32>, ${CW}>;\nvar<workgroup> csc: array<u32, ${CW}>;`,
    ].join('\n'),
    body: `FF_ZERO = u(${qu.zero}u);
let R = u(0u); let C = u(1u); let MT = u(2u); let KC = u(3u);
let e4m3 = u(${qu.e4m3}u) != 0u; let pow2 = u(${qu.pow2}u) != 0u;
let g = ${LINEAR_WG};
if (g >= MT * KC) { return; }
let mt = g / KC;
let m0 = mt * ${BLOCK}u;
let rows = min(R, m0 + ${BLOCK}u) - m0;
let k0 = (g % KC) * ${CW}u;
let cols = min(C, k0 + ${CW}u) - k0;
if (lid < ${CW}u) { atomicStore(&cam[lid], 0u); }
for (var i = lid; i < ${BLOCK * CW}u; i += ${WG}u) {
  let r = i / ${CW}u;
  let c = i % ${CW}u;
  var v = 0u;
  if (r < rows && c < cols) { v = qval(m0 + r, k0 + c); }
  tileT[c * ${BLOCK}u + r] = v;
}
workgroupBarrier();
// Column amax: 8 segments of 16 rows per column, folded with a workgroup atomicMax.
for (var i = lid; i < ${CW * 8}u; i += ${WG}u) {
  let c = i / 8u;
  var m = 0u;
  for (var r = (i % 8u) * 16u; r < (i % 8u) * 16u + 16u; r++) { m = max(m, tileT[c * ${BLOCK}u + r] & 0x7fffffffu); }
  atomicMax(&cam[c], m);
}
workgroupBarrier();
if (lid < cols) {
  let sc_ = fp8_scale_bits(atomicLoad(&cam[lid]), u(${qu.maxBits}u), pow2);
  csc[lid] = sc_;
  sc_st_raw((k0 + lid) * MT + mt, sc_);
}
workgroupBarrier();
// Output row k0 + c holds bytes [(k0 + c) R + m0, + rows): at most 33 words each.
for (var i = lid; i < cols * 33u; i += ${WG}u) {
  let c = i / 33u;
  let b0 = (k0 + c) * R + m0;
  let cw = (b0 >> 2u) + i % 33u;
  if (cw <= ((b0 + rows - 1u) >> 2u)) {
    let s = csc[c];
    ${storeWord('cw', 'b0', '(b0 + rows)', (j) => `tileT[c * ${BLOCK}u + (${j} - b0)]`, 's', 'e4m3')}
  }
}`,
  }));
  const u = quantUniforms([R, C, MT, KC, ...extra], dtype, pow2Scale);
  backend.dispatch(prog, [...buffers, q, s], u, grid1d(MT * KC, 1), spec.key);
}

/** 128x128-block quantization of x viewed as [B, N, K] (the last two dims blocked). */
export function runBlockQuant(
  backend: WebGpuBackend, x: TensorInfo, q: TensorInfo['buffer'], s: TensorInfo['buffer'], B: number, N: number, K: number, dtype: Fp8, pow2Scale: boolean,
): void {
  const NB = ceilDiv(N, BLOCK);
  const KB = ceilDiv(K, BLOCK);
  const groups = B * NB * KB;
  if (groups === 0) return;
  const WG = backend.workgroupSize(256);
  const qu = QUNI(8);
  const prog = backend.program(`fp8_blockquant${WG}|${x.dtype}`, () => ({
    tensors: [
      { name: 'x', dtype: x.dtype, access: 'read' },
      { name: 'q', dtype: 'f8e4m3', access: 'atomic' },
      { name: 'sc', dtype: 'f32', access: 'write' },
    ] as TensorDecl[],
    uniformWords: 12,
    workgroupSize: WG,
    helpers: [EXACT_WGSL, FP8_ENC, AMAX_REDUCE, `fn xbits(i: u32) -> u32 { return ${bitsLoad('x', x.dtype, 'i', backend.accessOptions)}; }`].join('\n'),
    body: `let N = u(0u); let K = u(1u); let NB = u(2u); let KB = u(3u); let G = u(4u);
let e4m3 = u(${qu.e4m3}u) != 0u; let pow2 = u(${qu.pow2}u) != 0u;
let g = ${LINEAR_WG};
if (g >= G) { return; }
let kb = g % KB;
let nb = (g / KB) % NB;
let b = g / (KB * NB);
let n0 = nb * ${BLOCK}u; let n1 = min(N, n0 + ${BLOCK}u);
let k0 = kb * ${BLOCK}u; let k1 = min(K, k0 + ${BLOCK}u);
let bw = k1 - k0;
var m = 0u;
for (var i = lid; i < (n1 - n0) * bw; i += ${WG}u) { m = max(m, xbits((b * N + n0 + i / bw) * K + k0 + i % bw) & 0x7fffffffu); }
let amax = amax_reduce(m, lid);
let s = fp8_scale_bits(amax, u(${qu.maxBits}u), pow2);
if (lid == 0u) { sc_st_raw(g, s); }
// Codes: block row n covers bytes [(b N + n) K + k0, + bw), at most 33 words; (row, word) pairs
// are spread over the whole workgroup.
for (var i = lid; i < (n1 - n0) * 33u; i += ${WG}u) {
  let b0 = (b * N + n0 + i / 33u) * K + k0;
  let cw = (b0 >> 2u) + i % 33u;
  if (cw <= ((b0 + bw - 1u) >> 2u)) {
    ${storeWord('cw', 'b0', '(b0 + bw)', (j) => `xbits(${j})`, 's', 'e4m3')}
  }
}`,
  }));
  backend.dispatch(prog, [x.buffer, q, s], quantUniforms([N, K, NB, KB, groups, 0, 0, 0], dtype, pow2Scale), grid1d(groups, 1), 'fp8Quantize');
}

/** One scale for the whole tensor: an amax pass (atomicMax of workgroup maxima), then the codes. */
export function runTensorQuant(backend: WebGpuBackend, x: TensorInfo, q: TensorInfo['buffer'], s: TensorInfo['buffer'], dtype: Fp8, pow2Scale: boolean): void {
  const n = x.size;
  if (n === 0) return;
  const WG = backend.workgroupSize(256);
  const amax = backend.scratch(4);
  try {
    backend.write(amax, new Uint32Array([0]));
    const per = WG * 16; // elements per workgroup in the amax pass
    const p1 = backend.program(`fp8_tensor_amax${WG}|${x.dtype}`, () => ({
      tensors: [{ name: 'x', dtype: x.dtype, access: 'read' }] as TensorDecl[],
      extraBindings: ['storage'] as GPUBufferBindingType[],
      uniformWords: 4,
      workgroupSize: WG,
      helpers: `${AMAX_REDUCE}\n@group(0) @binding(1) var<storage, read_write> am_out: array<atomic<u32>>;\nfn xbits(i: u32) -> u32 { return ${bitsLoad('x', x.dtype, 'i', backend.accessOptions)}; }`,
      body: `let n = u(0u);
let start = ${LINEAR_WG} * ${per}u;
var m = 0u;
for (var i = start + lid; i < min(n, start + ${per}u); i += ${WG}u) { m = max(m, xbits(i) & 0x7fffffffu); }
let a = amax_reduce(m, lid);
if (lid == 0u) { atomicMax(&am_out[0], a); }`,
    }));
    backend.dispatch(p1, [x.buffer, amax], new Uint32Array([n, 0, 0, 0]), grid1d(Math.ceil(n / per), 1), 'fp8Quantize');
    const qu = QUNI(4);
    const p2 = backend.program(`fp8_tensor_codes${WG}|${x.dtype}`, () => ({
      tensors: [
        { name: 'x', dtype: x.dtype, access: 'read' },
        { name: 'am', dtype: 'i32', access: 'read' },
        { name: 'q', dtype: 'f8e4m3', access: 'write' },
        { name: 'sc', dtype: 'f32', access: 'write' },
      ] as TensorDecl[],
      uniformWords: 8,
      workgroupSize: WG,
      helpers: [EXACT_WGSL, FP8_ENC, `fn xbits(i: u32) -> u32 { return ${bitsLoad('x', x.dtype, 'i', backend.accessOptions)}; }`].join('\n'),
      body: `let n = u(0u);
let e4m3 = u(${qu.e4m3}u) != 0u;
let s = fp8_scale_bits(am_raw(0u), u(${qu.maxBits}u), u(${qu.pow2}u) != 0u);
let w = ${LINEAR_ID(WG)};
if (w == 0u) { sc_st_raw(0u, s); }
if (w * 4u >= n) { return; }
var word = 0u;
for (var k = 0u; k < 4u; k++) {
  let i = w * 4u + k;
  if (i < n) { word = word | (enc_fp8(rl_div_exact(xbits(i), s), e4m3) << (k * 8u)); }
}
q_stw(w, word);`,
    }));
    backend.dispatch(p2, [x.buffer, amax, q, s], quantUniforms([n, 0, 0, 0], dtype, pow2Scale), grid1d(Math.ceil(n / 4), WG), 'fp8Quantize');
  } finally {
    backend.free(amax);
  }
}

/** The 1x128-tile (W = 128) or per-row (W = C) quantizer of x viewed as [R, C]. */
export function runRowsQuant(backend: WebGpuBackend, x: TensorInfo, q: TensorInfo['buffer'], s: TensorInfo['buffer'], R: number, C: number, W: number, dtype: Fp8, pow2Scale: boolean): void {
  runTileQuant(
    backend,
    {
      key: `rows|${x.dtype}|${W === BLOCK ? 'tile' : 'row'}`,
      inputs: [{ name: 'x', dtype: x.dtype, access: 'read' }],
      helpers: `fn qval(r: u32, c: u32) -> u32 { let i = r * u(1u) + c; return ${bitsLoad('x', x.dtype, 'i', backend.accessOptions)}; }`,
      extraWords: 0,
      wgPreferred: W === BLOCK ? 128 : 256,
    },
    [x.buffer], q, s, R, C, W, dtype, pow2Scale,
  );
}

/** 1x128 tiles of x^T for x [R, C] (codes [C, R], scales [C, ceil(R / 128)]). */
export function runTransposedQuant(backend: WebGpuBackend, x: TensorInfo, q: TensorInfo['buffer'], s: TensorInfo['buffer'], R: number, C: number, dtype: Fp8, pow2Scale: boolean): void {
  runColQuant(
    backend,
    {
      key: `cols|${x.dtype}`,
      inputs: [{ name: 'x', dtype: x.dtype, access: 'read' }],
      helpers: `fn qval(r: u32, c: u32) -> u32 { let i = r * u(1u) + c; return ${bitsLoad('x', x.dtype, 'i', backend.accessOptions)}; }`,
      extraWords: 0,
      wgPreferred: 128,
    },
    [x.buffer], q, s, R, C, dtype, pow2Scale,
  );
}

/** Quantizes x in `layout` (dynamic scales) into codes q and scales s. */
export function runQuantize(backend: WebGpuBackend, x: TensorInfo, q: TensorInfo['buffer'], s: TensorInfo['buffer'], layout: Layout, dtype: Fp8, pow2Scale: boolean): void {
  const shape = x.shape;
  const r = shape.length;
  switch (layout) {
    case 'tensor':
      runTensorQuant(backend, x, q, s, dtype, pow2Scale);
      return;
    case 'row':
    case 'tile1x128': {
      const K = shape[r - 1]!;
      const R = K === 0 ? 0 : x.size / K;
      runRowsQuant(backend, x, q, s, R, K, layout === 'row' ? K : BLOCK, dtype, pow2Scale);
      return;
    }
    case 'block128x128': {
      const [N, K] = [shape[r - 2]!, shape[r - 1]!];
      runBlockQuant(backend, x, q, s, N * K === 0 ? 0 : x.size / (N * K), N, K, dtype, pow2Scale);
    }
  }
}

/** Uniform words [K, N, KT, NB, KB, layout id] and the WGSL scale index of element i (see scaleIndexer on the CPU). */
export function scaleIndexParams(shape: readonly number[], layout: Layout): number[] {
  const r = shape.length;
  const K = shape[r - 1] ?? 1;
  const N = r >= 2 ? shape[r - 2]! : 1;
  return [K, N, ceilDiv(K, BLOCK), ceilDiv(N, BLOCK), ceilDiv(K, BLOCK), ['tensor', 'row', 'tile1x128', 'block128x128'].indexOf(layout)];
}

export const SCALE_INDEX = `fn scale_index(i: u32, K: u32, N: u32, KT: u32, NB: u32, KB: u32, lay: u32) -> u32 {
  switch lay {
    case 0u: { return 0u; }
    case 1u: { return i / K; }
    case 2u: { return (i / K) * KT + (i % K) / ${BLOCK}u; }
    default: {
      let rowAll = i / K;
      return ((rowAll / N) * NB + (rowAll % N) / ${BLOCK}u) * KB + (i % K) / ${BLOCK}u;
    }
  }
}`;

