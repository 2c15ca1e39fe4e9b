/**
 * WebGPU kernels of the FP8 GEMMs of @ring-linear/fp8 (ops/gemm.ts, ops/linear.ts): the tiled GEMM
 * of moe/tile_gemm.ts on decoded FP8 codes (WebGPU has no FP8 arithmetic: codes are decoded to f32
 * on their way into workgroup memory, 1 byte per element read from memory), with the block scales
 * folded in per 128-wide k-tile:
 *
 *   out[m, n] = sum over k-tiles t of fl32(fl32(P_t[m, n] * sa[m, t]) * sb[row(n), t])
 *
 * P_t accumulated in f32 (the products of two FP8 values are exact in f32; their sum over a tile
 * rounds at f32 level, where the CPU sums exactly), the sum over tiles in f32, rounded once to the
 * output dtype (f32 | bf16 | f16).
 *
 * fp8GroupedGemm: the grouped form over expert row segments (the same slot mapping as the MoE
 * grouped GEMM), expert e's codes and scales at offsets e * N * K and e * NB * KT.
 * fp8Linear (forward): quantize x in 1x128 tiles and W in 128x128 blocks into scratch, then fp8Gemm;
 * the same kernels as its composite, so the same bytes.
 */
import type { TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../../backend.js';
import type { TensorDecl } from '../../wgsl/access.js';
import { register } from '../util.js';
import { FF_WGSL } from '../moe/precise.js';
import { SEGMENT_VARS, SLOT_EXPR, segmentPrologue, slotGrid, tileBM, tileBN, tileCfg, tileGemm } from '../moe/tile_gemm.js';
import { zeroFill } from '../moe/grouped_matmul.js';
import { BLOCK, ceilDiv, runBlockQuant, runRowsQuant, type Fp8 } from './common.js';

const decode = (dt: string, c: string) => `bitcast<f32>(${dt === 'f8e4m3' ? 'rl_dec_e4m3' : 'rl_dec_e5m2'}(${c}))`;

interface GemmArgs {
  a: TensorInfo;
  sa: TensorInfo['buffer'];
  b: TensorInfo;
  sb: TensorInfo['buffer'];
  y: TensorInfo;
  M: number;
  N: number;
  K: number;
  /** Rows of b per scale row: 128 (blocks) or 1 (1x128 tiles). */
  bRowsPerScale: number;
  /** Grouped: the offsets tensor and the number of experts. */
  grouped?: { offsets: TensorInfo; E: number };
}

function runFp8Gemm(backend: WebGpuBackend, g: GemmArgs): void {
  const { a, b, y, M, N, K } = g;
  if (M === 0 || N === 0) return;
  const cfg = tileCfg(backend.isSoftware);
  const BM = tileBM(cfg);
  const BN = tileBN(cfg);
  const grouped = g.grouped !== undefined;
  if (grouped) zeroFill(backend, y);
  const key = `fp8_gemm|${a.dtype}|${b.dtype}|${y.dtype}|${grouped ? 'grouped' : 'plain'}|${cfg.WGX}x${cfg.WGY}`;
  const prog = backend.program(key, () => {
    const tensors: TensorDecl[] = [
      { name: 'a', dtype: a.dtype, access: 'read' },
      { name: 'sa', dtype: 'f32', access: 'read' },
      { name: 'b', dtype: b.dtype, access: 'read' },
      { name: 'sb', dtype: 'f32', access: 'read' },
    ];
    if (grouped) tensors.push({ name: 'off', dtype: 'i32', access: 'read' });
    tensors.push({ name: 'y', dtype: y.dtype, access: 'atomic' });
    const prologue = grouped
      ? `${segmentPrologue(BM, SLOT_EXPR, '0u', 'u(6u)', 'M')}
B_OFF = e * N * K;
SB_OFF = e * ((N + ${BLOCK - 1}u) / ${BLOCK}u) * KT;`
      : `let mlo = wid.y * ${BM}u; let mhi = M;`;
    const t = tileGemm({
      cfg,
      prologue: `FF_ZERO = u(7u);
let M = u(0u); let N = u(1u); let K = u(2u); KT = u(3u); RPS = u(4u);
${prologue}
let nlo = wid.x * ${BN}u; let nhi = N; let klo = 0u; let khi = K;`,
      a: (m, k) => decode(a.dtype, `a_raw(${m} * K + ${k})`),
      aKMajor: true,
      b: (n, k) => decode(b.dtype, `b_raw(B_OFF + ${n} * K + ${k})`),
      bKMajor: true,
      kScale: {
        ks: BLOCK,
        sa: (m, t) => `sa_ld(${m} * KT + ${t})`,
        sb: (n, t) => `sb_ld(SB_OFF + (${n} / RPS) * KT + ${t})`,
      },
      store: (m, n, v) => `y_st(${m} * N + ${n}, ${v});`,
    });
    return {
      tensors,
      uniformWords: 8,
      workgroupSize: [cfg.WGX, cfg.WGY, 1] as const,
      helpers: `${FF_WGSL}\n${grouped ? SEGMENT_VARS : ''}\n${t.helpers}\nvar<private> KT: u32;\nvar<private> RPS: u32;\nvar<private> B_OFF: u32;\nvar<private> SB_OFF: u32;`,
      body: t.body,
    };
  });
  const KT = ceilDiv(K, BLOCK);
  const gx = Math.ceil(N / BN);
  const u = new Uint32Array([M, N, K, KT, g.bRowsPerScale, 0, g.grouped?.E ?? 0, 0]);
  const bufs = [a.buffer, g.sa, b.buffer, g.sb];
  if (grouped) {
    bufs.push(g.grouped!.offsets.buffer, y.buffer);
    const { gy, gz } = slotGrid(Math.ceil(M / BM) + g.grouped!.E);
    backend.dispatch(prog, bufs, u, [gx, gy, gz], 'fp8GroupedGemm');
  } else {
    bufs.push(y.buffer);
    backend.dispatch(prog, bufs, u, [gx, Math.ceil(M / BM)], 'fp8Gemm');
  }
}

register('fp8Gemm', ({ backend, inputs: [a, sa, b, sb], outputs: [y], attrs }) => {
  const { bLayout } = attrs as { bLayout: 'block128x128' | 'tile1x128' };
  const [M, K] = a!.shape as [number, number];
  runFp8Gemm(backend, { a: a!, sa: sa!.buffer, b: b!, sb: sb!.buffer, y: y!, M, N: b!.shape[0]!, K, bRowsPerScale: bLayout === 'block128x128' ? BLOCK : 1 });
});

register('fp8GroupedGemm', ({ backend, inputs: [a, sa, b, sb, off], outputs: [y] }) => {
  const [M, K] = a!.shape as [number, number];
  const [E, N] = [b!.shape[0]!, b!.shape[1]!];
  runFp8Gemm(backend, { a: a!, sa: sa!.buffer, b: b!, sb: sb!.buffer, y: y!, M, N, K, bRowsPerScale: BLOCK, grouped: { offsets: off!, E } });
});

register('fp8Linear', ({ backend, inputs: [x, w], outputs: [y], attrs }) => {
  const { dtype, pow2Scale } = attrs as { dtype: Fp8; pow2Scale: boolean };
  const [N, K] = w!.shape as [number, number];
  const M = x!.size / K;
  if (M === 0) return;
  const KT = ceilDiv(K, BLOCK);
  const xq = backend.scratch(M * K);
  const xs = backend.scratch(4 * M * KT);
  const wq = backend.scratch(N * K);
  const ws = backend.scratch(4 * ceilDiv(N, BLOCK) * KT);
  try {
    runRowsQuant(backend, x!, xq, xs, M, K, BLOCK, dtype, pow2Scale);
    runBlockQuant(backend, w!, wq, ws, 1, N, K, dtype, pow2Scale);
    runFp8Gemm(backend, {
      a: { buffer: xq, shape: [M, K], dtype, size: M * K },
      sa: xs,
      b: { buffer: wq, shape: [N, K], dtype, size: N * K },
      sb: ws,
      y: y!,
      M,
      N,
      K,
      bRowsPerScale: BLOCK,
    });
  } finally {
    for (const t of [xq, xs, wq, ws]) backend.free(t);
  }
});
