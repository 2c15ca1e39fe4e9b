/**
 * fp8Linear: y = x W^T through the blockwise FP8 recipe, with its own backward.
 *
 * Forward (x [..., K] -> rows X [M, K]; W [N, K] master weights, f32):
 *   Xq = quantize(X, 1x128 tiles along K, dtype)       Wq = quantize(W, 128x128 blocks, dtype)
 *   Y  = fp8Gemm(Xq, Wq)                               fp32 accumulation, rounded once to x's dtype
 * Backward (dY [M, N]):
 *   dYq, dYTq = quantTranspose(dY, gradDtype)           1x128 tiles along N, and of dY^T along M
 *   dX = fp8Gemm(dYq, Wq^T)                             Wq^T: the same 128x128 blocks, transposed
 *   dW = fp8Gemm(dYTq, quantize(X^T, 1x128 along M))    b in tile1x128 layout (both operands are
 *                                                       activations, reduced over the tokens M)
 * The backward recomputes Xq^T and Wq from the saved f32 inputs (bit-identical: quantization is
 * deterministic) rather than keeping the codes alive between forward and backward.
 */
import {
  ShapeError,
  defineOp,
  describeShape,
  reshape,
  runOp,
  runOp1,
  transpose,
  zeros,
  type Tensor,
} from '@ring-linear/core';
import { HIGH_PRECISION_DTYPES, type Fp8DType } from '../formats.js';
import { checkFp8Attr } from './common.js';

export interface Fp8LinearAttrs extends Record<string, unknown> {
  /** Format of the forward operands X and W (MODEL_SPEC §8: E4M3). */
  dtype: Fp8DType;
  /** Format of the output gradient dY in the backward GEMMs. */
  gradDtype: Fp8DType;
  pow2Scale: boolean;
}

function quantPair(x: Tensor, layout: string, dtype: Fp8DType, pow2Scale: boolean): [Tensor, Tensor] {
  const [d, s] = runOp('fp8Quantize', [x], { dtype, layout, pow2Scale });
  return [d!, s!];
}

defineOp<Fp8LinearAttrs>({
  name: 'fp8Linear',
  doc:
    'y = x W^T through FP8: x [..., K] quantized in 1x128 tiles, W [N, K] in 128x128 blocks, FP8 GEMM with fp32 ' +
    'accumulation, output in the dtype of x; the backward quantizes dy (gradDtype) with quant+transpose and runs the ' +
    'two FP8 GEMMs of the blockwise recipe (dX = dY W, dW = dY^T X)',
  inputs: [{ name: 'x', dtypes: HIGH_PRECISION_DTYPES }, { name: 'weight', dtypes: HIGH_PRECISION_DTYPES }],
  attrs: {
    dtype: { kind: 'dtype', default: 'f8e4m3' },
    gradDtype: { kind: 'dtype', default: 'f8e4m3' },
    pow2Scale: { kind: 'bool', default: false },
  },
  normalize: (_m, a) => ({
    dtype: checkFp8Attr('fp8Linear', 'dtype', a.dtype),
    gradDtype: checkFp8Attr('fp8Linear', 'gradDtype', a.gradDtype),
    pow2Scale: a.pow2Scale,
  }),
  infer: ([x, w]) => {
    const op = 'fp8Linear';
    if (w!.shape.length !== 2 || w!.shape[0]! < 1 || w!.shape[1]! < 1) {
      throw new ShapeError(`${op}: 'weight' must have shape [out, in] with out, in >= 1, got ${describeShape(w!.shape)}`);
    }
    const K = w!.shape[1]!;
    if (x!.shape.length < 1 || x!.shape[x!.shape.length - 1] !== K) {
      throw new ShapeError(`${op}: 'x' must have shape [..., ${K}] (in = ${K} from weight ${describeShape(w!.shape)}), got ${describeShape(x!.shape)}`);
    }
    return [{ shape: [...x!.shape.slice(0, -1), w!.shape[0]!], dtype: x!.dtype }];
  },
  grad: ({ inputs: [x, w], dys: [dy], attrs }) => {
    const [N, K] = [w!.shape[0]!, w!.shape[1]!];
    const x2 = reshape(x!, [-1, K]);
    // No rows: nothing reached W, and dx is empty.
    if (x2.shape[0] === 0) return [zeros(x!.shape), zeros([N, K])];
    const dy2 = reshape(dy!, [-1, N]);
    const [dyq, dys, dyTq, dyTs] = runOp('fp8QuantTranspose', [dy2], { dtype: attrs.gradDtype, pow2Scale: attrs.pow2Scale });
    const [wq, ws] = quantPair(w!, 'block128x128', attrs.dtype, attrs.pow2Scale);
    const dx = runOp1('fp8Gemm', [dyq!, dys!, transpose(wq), transpose(ws)], { bLayout: 'block128x128', outDtype: 'f32' });
    const [xTq, xTs] = quantPair(transpose(x2), 'tile1x128', attrs.dtype, attrs.pow2Scale);
    const dw = runOp1('fp8Gemm', [dyTq!, dyTs!, xTq, xTs], { bLayout: 'tile1x128', outDtype: 'f32' });
    return [reshape(dx, x!.shape), dw];
  },
  composite: ([x, w], attrs) => {
    const [N, K] = [w!.shape[0]!, w!.shape[1]!];
    const [xq, xs] = quantPair(reshape(x!, [-1, K]), 'tile1x128', attrs.dtype, attrs.pow2Scale);
    const [wq, ws] = quantPair(w!, 'block128x128', attrs.dtype, attrs.pow2Scale);
    const y = runOp1('fp8Gemm', [xq, xs, wq, ws], { bLayout: 'block128x128', outDtype: x!.dtype });
    return [reshape(y, [...x!.shape.slice(0, -1), N])];
  },
});

export interface Fp8Recipe {
  /** Format of the forward operands (activations and weights); default 'f8e4m3'. */
  readonly fp8Dtype?: Fp8DType;
  /** Format of the output gradient in the backward; default 'f8e4m3' (DeepSeek-V3: E4M3 everywhere with fine-grained scales). */
  readonly gradDtype?: Fp8DType;
  /** Power-of-two scales (default false). */
  readonly pow2Scale?: boolean;
}

/** y = x W^T through the FP8 recipe (x [..., in], weight [out, in]); differentiable in x and W. */
export function fp8Linear(x: Tensor, weight: Tensor, recipe: Fp8Recipe = {}): Tensor {
  return runOp1('fp8Linear', [x, weight], {
    dtype: recipe.fp8Dtype ?? 'f8e4m3',
    gradDtype: recipe.gradDtype ?? 'f8e4m3',
    pow2Scale: recipe.pow2Scale ?? false,
  });
}

