/**
 * WebGPU kernels of the fused FP8 ops of @ring-linear/fp8 (ops/fused.ts). The contract: the same
 * bytes as the op's composite on this backend, i.e. as the unfused WebGPU kernels (rmsNorm, the
 * elementwise table's silu / sigmoid / mul / add / sub, each rounded to f32) followed by this
 * backend's fp8Quantize. So each fused kernel computes its f32 intermediate with the same WGSL
 * expressions as those kernels (the elementwise helpers, the rmsNorm reduction with the same
 * workgroup size and combine tree) and quantizes it with the same tile quantizer, without writing
 * the intermediate:
 *
 *   fp8RmsNormQuant           a row-rms pass (the rmsNorm kernel's reduction, 4 bytes per row),
 *                             then 1x128 tiles of w * (x * r) computed on the fly
 *   fp8SwigluQuant            1x128 tiles of (g * sigmoid(g)) * u
 *   fp8SwigluBackwardQuant    d[g | u] computed on the fly by both quantizations (of dy along 2I,
 *                             and of dy^T along M by the column quantizer); dy is never stored
 *   fp8GroupRmsNormGateQuant  a (row, group)-rms pass, then tiles of ((o * r_g) * w) * sigmoid(gate)
 *   routerGemm                the router's float-float logits (moe/precise.ts)
 *
 * Where the composite rounds a product before adding it (swiglu backward), the fused expression
 * keeps that rounding with ff_keep, so no compiler can fuse the two into one multiply-add.
 */
import type { TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../../backend.js';
import type { TensorDecl } from '../../wgsl/access.js';
import { EW_HELPERS } from '../elementwise.js';
import { f32Bits, grid1d, LINEAR_WG, register } from '../util.js';
import { SUM_F32, wgReduceCall, wgReduceWgsl } from '../wg_reduce.js';
import { runPreciseLogits } from '../moe/precise.js';
import { BLOCK, runColQuant, runTileQuant, type Fp8 } from './common.js';

type QuantAttrs = { dtype: Fp8; pow2Scale: boolean };

/**
 * rs[row] = 1 / sqrt(mean(x[row]^2) + eps) for rows of length D: the rmsNorm kernel's reduction
 * (kernels/nn.ts) statement for statement, so r has the bits that kernel multiplies by.
 */
function runRowRms(backend: WebGpuBackend, x: TensorInfo, rows: number, D: number, eps: number, rs: TensorInfo['buffer']): void {
  if (rows === 0) return;
  const WG = backend.workgroupSize(256);
  const sg = backend.hasSubgroups;
  const prog = backend.program(`fp8_rowrms${WG}|${x.dtype}|${sg ? 'sg' : ''}`, () => ({
    tensors: [
      { name: 'x', dtype: x.dtype, access: 'read' },
      { name: 'rs', dtype: 'f32', access: 'write' },
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
let r = 1.0 / sqrt(t.a / f32(D) + eps);
if (lid == 0u) { rs_st(row, r); }`,
  }));
  backend.dispatch(prog, [x.buffer, rs], new Uint32Array([D, rows, f32Bits(eps), 0]), grid1d(rows, 1), 'rmsNorm');
}

register('fp8RmsNormQuant', ({ backend, inputs: [x, w], outputs: [q, s], attrs }) => {
  const { eps, dtype, pow2Scale } = attrs as QuantAttrs & { eps: number };
  const D = x!.shape[x!.shape.length - 1]!;
  const rows = x!.size / D;
  if (rows === 0) return;
  const rs = backend.scratch(4 * rows);
  try {
    runRowRms(backend, x!, rows, D, eps, rs);
    runTileQuant(
      backend,
      {
        key: `rmsnorm|${x!.dtype}|${w!.dtype}`,
        inputs: [
          { name: 'x', dtype: x!.dtype, access: 'read' },
          { name: 'w', dtype: w!.dtype, access: 'read' },
          { name: 'rs', dtype: 'f32', access: 'read' },
        ],
        // As the rmsNorm kernel stores it: w * (x * r).
        helpers: 'fn qval(r: u32, c: u32) -> u32 { return bitcast<u32>(w_ld(c) * (x_ld(r * u(1u) + c) * rs_ld(r))); }',
        extraWords: 0,
        wgPreferred: BLOCK,
      },
      [x!.buffer, w!.buffer, rs], q!.buffer, s!.buffer, rows, D, BLOCK, dtype, pow2Scale,
    );
  } finally {
    backend.free(rs);
  }
});

register('fp8SwigluQuant', ({ backend, inputs: [gu], outputs: [q, s], attrs }) => {
  const { dtype, pow2Scale } = attrs as QuantAttrs;
  const I = gu!.shape[gu!.shape.length - 1]! / 2;
  const rows = gu!.size / (2 * I);
  runTileQuant(
    backend,
    {
      key: `swiglu|${gu!.dtype}`,
      inputs: [{ name: 'gu', dtype: gu!.dtype, access: 'read' }],
      // silu(g) = g * sigmoid(g) (the elementwise table's expression), times u.
      helpers: `${EW_HELPERS}
fn qval(r: u32, c: u32) -> u32 {
  let I = u(1u);
  let g = gu_ld(r * 2u * I + c);
  let up = gu_ld(r * 2u * I + I + c);
  return bitcast<u32>((g * ew_sigmoid(g)) * up);
}`,
      extraWords: 0,
      wgPreferred: BLOCK,
    },
    [gu!.buffer], q!.buffer, s!.buffer, rows, I, BLOCK, dtype, pow2Scale,
  );
});

register('fp8SwigluBackwardQuant', ({ backend, inputs: [gu, dh], outputs: [q, s, qT, sT], attrs }) => {
  const { dtype, pow2Scale } = attrs as QuantAttrs;
  const [M, C] = gu!.shape as [number, number];
  const I = C / 2;
  // d[m, c] of dy = [dg | du] (the composite's ops, one f32 rounding each):
  //   s = sigmoid(g); dsilu = s + (g * s) * (1 - s); dg = (dh * u) * dsilu; du = dh * silu(g).
  const dval = `${EW_HELPERS}
fn dval(m: u32, c: u32) -> u32 {
  let I = u(4u);
  let j = c % I;
  let g = gu_ld(m * 2u * I + j);
  let d = dh_ld(m * I + j);
  if (c < I) {
    let up = gu_ld(m * 2u * I + I + j);
    let s = ew_sigmoid(g);
    let dsilu = s + ff_keep(ff_keep(g * s) * (1.0 - s));
    return bitcast<u32>(ff_keep(d * up) * dsilu);
  }
  return bitcast<u32>(d * (g * ew_sigmoid(g)));
}`;
  const inputs: TensorDecl[] = [
    { name: 'gu', dtype: gu!.dtype, access: 'read' },
    { name: 'dh', dtype: dh!.dtype, access: 'read' },
  ];
  const spec = {
    key: `swiglu_bwd|${gu!.dtype}|${dh!.dtype}`,
    inputs,
    helpers: `${dval}\nfn qval(r: u32, c: u32) -> u32 { return dval(r, c); }`,
    extraWords: 1,
    wgPreferred: BLOCK,
  };
  // dy in 1x128 tiles along 2I, and dy^T along M (column tiles of dy, read row-wise).
  runTileQuant(backend, spec, [gu!.buffer, dh!.buffer], q!.buffer, s!.buffer, M, C, BLOCK, dtype, pow2Scale, [I]);
  runColQuant(backend, spec, [gu!.buffer, dh!.buffer], qT!.buffer, sT!.buffer, M, C, dtype, pow2Scale, [I]);
});

register('fp8GroupRmsNormGateQuant', ({ backend, inputs: [o, gate, w], outputs: [q, s], attrs }) => {
  const { groups, eps, dtype, pow2Scale } = attrs as QuantAttrs & { groups: number; eps: number };
  const C = o!.shape[o!.shape.length - 1]!;
  const rows = o!.size / C;
  const size = C / groups;
  if (rows === 0) return;
  const rs = backend.scratch(4 * rows * groups);
  try {
    // The composite: rmsNorm over [..., groups, size] with unit weights (1 * (o * r) = o * r).
    runRowRms(backend, o!, rows * groups, size, eps, rs);
    runTileQuant(
      backend,
      {
        key: `groupgate|${o!.dtype}|${gate!.dtype}|${w!.dtype}`,
        inputs: [
          { name: 'o', dtype: o!.dtype, access: 'read' },
          { name: 'gate', dtype: gate!.dtype, access: 'read' },
          { name: 'w', dtype: w!.dtype, access: 'read' },
          { name: 'rs', dtype: 'f32', access: 'read' },
        ],
        helpers: `${EW_HELPERS}
fn qval(r: u32, c: u32) -> u32 {
  let i = r * u(1u) + c;
  let n = o_ld(i) * rs_ld(r * u(4u) + c / u(5u));
  return bitcast<u32>((n * w_ld(c)) * ew_sigmoid(gate_ld(i)));
}`,
        extraWords: 2,
        wgPreferred: BLOCK,
      },
      [o!.buffer, gate!.buffer, w!.buffer, rs], q!.buffer, s!.buffer, rows, C, BLOCK, dtype, pow2Scale, [groups, size],
    );
  } finally {
    backend.free(rs);
  }
});

register('routerGemm', ({ backend, inputs: [x, w], outputs: [y] }) => {
  const H = x!.shape[x!.shape.length - 1]!;
  const E = w!.shape[0]!;
  runPreciseLogits(backend, x!, w!, y!.buffer, x!.size / H, E, H);
});
