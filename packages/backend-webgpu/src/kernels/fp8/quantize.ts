/**
 * WebGPU kernels of the FP8 quantizer ops of @ring-linear/fp8: fp8Quantize, fp8QuantizeWithScales,
 * fp8Dequantize, fp8QuantTranspose. Codes and scales equal the CPU's bit for bit (exact division
 * and the shared codec, see common.ts and exact.ts); dequantization is one exactly rounded
 * product (rl_mul_fp8_exact), rounded once more to a bf16/f16 output as the CPU does.
 */
import type { TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../../backend.js';
import { bitsOf, encodeBitsExpr, perWord, type TensorDecl } from '../../wgsl/access.js';
import { grid1d, LINEAR_ID, register } from '../util.js';
import { EXACT_WGSL } from './exact.js';
import { BLOCK, bitsLoad, FP8_ENC, runQuantize, runRowsQuant, runTransposedQuant, SCALE_INDEX, scaleIndexParams, type Fp8, type Layout } from './common.js';

register('fp8Quantize', ({ backend, inputs: [x], outputs: [q, s], attrs }) => {
  const { dtype, layout, pow2Scale } = attrs as { dtype: Fp8; layout: Layout; pow2Scale: boolean };
  runQuantize(backend, x!, q!.buffer, s!.buffer, layout, dtype, pow2Scale);
});

/** One invocation per output word: codes of x / given scales (quantize), or q * scales (dequantize). */
function runScaled(backend: WebGpuBackend, x: TensorInfo, scales: TensorInfo, y: TensorInfo, layout: Layout, quantize: boolean): void {
  const n = y.size;
  if (n === 0) return;
  const WG = backend.workgroupSize(256);
  const epw = perWord(y.dtype);
  const bits = bitsOf(y.dtype);
  const key = quantize ? `fp8_quant_given${WG}|${x.dtype}` : `fp8_dequant${WG}|${x.dtype}|${y.dtype}`;
  const prog = backend.program(key, () => ({
    tensors: [
      { name: 'x', dtype: x.dtype, access: 'read' },
      { name: 'sc', dtype: 'f32', access: 'read' },
      { name: 'y', dtype: y.dtype, access: 'write' },
    ] as TensorDecl[],
    uniformWords: 12,
    workgroupSize: WG,
    helpers: [EXACT_WGSL, FP8_ENC, SCALE_INDEX].join('\n'),
    body: `let n = u(0u); let e4m3 = u(7u) != 0u;
let w = ${LINEAR_ID(WG)};
if (w * ${epw}u >= n) { return; }
var word = 0u;
for (var k = 0u; k < ${epw}u; k++) {
  let i = w * ${epw}u + k;
  if (i >= n) { break; }
  let sb = sc_raw(scale_index(i, u(1u), u(2u), u(3u), u(4u), u(5u), u(6u)));
  ${quantize
    ? `let code = enc_fp8(rl_div_exact(${bitsLoad('x', x.dtype, 'i', backend.accessOptions)}, sb), e4m3);`
    : `let code = ${encodeBitsExpr(y.dtype, `rl_mul_fp8_exact(x_raw(i), e4m3, sb)`)};`}
  ${bits === 32 ? 'word = code;' : `word = word | ((code & ${bits === 16 ? '0xffffu' : '0xffu'}) << (k * ${bits}u));`}
}
y_stw(w, word);`,
  }));
  const fp8 = (quantize ? y.dtype : x.dtype) as Fp8;
  const u = new Uint32Array(12);
  u.set([n, ...scaleIndexParams(x.shape, layout), fp8 === 'f8e4m3' ? 1 : 0]);
  backend.dispatch(prog, [x.buffer, scales.buffer, y.buffer], u, grid1d(Math.ceil(n / epw), WG), quantize ? 'fp8QuantizeWithScales' : 'fp8Dequantize');
}

register('fp8QuantizeWithScales', ({ backend, inputs: [x, s], outputs: [q], attrs }) => {
  runScaled(backend, x!, s!, q!, (attrs as { layout: Layout }).layout, true);
});

register('fp8Dequantize', ({ backend, inputs: [q, s], outputs: [y], attrs }) => {
  runScaled(backend, q!, s!, y!, (attrs as { layout: Layout }).layout, false);
});

/**
 * x [M, K] -> 1x128 tiles of x (along K) and of x^T (along M), in two passes over x: the row tiles,
 * then the column tiles (128 x 16 blocks of x staged transposed in workgroup memory).
 */
register('fp8QuantTranspose', ({ backend, inputs: [x], outputs: [q, s, qT, sT], attrs }) => {
  const { dtype, pow2Scale } = attrs as { dtype: Fp8; pow2Scale: boolean };
  const [M, K] = x!.shape as [number, number];
  runRowsQuant(backend, x!, q!.buffer, s!.buffer, M, K, BLOCK, dtype, pow2Scale);
  runTransposedQuant(backend, x!, qT!.buffer, sT!.buffer, M, K, dtype, pow2Scale);
});

