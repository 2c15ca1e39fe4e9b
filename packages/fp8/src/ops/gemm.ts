/**
 * FP8 GEMM with block scales (MODEL_SPEC §8; the DeepSeek-V3 / linghe blockwise scheme):
 *
 *   fp8Gemm(a [M, K], aScales [M, KT], b [N, K], bScales; bLayout, outDtype) -> [M, N]
 *     a: 1x128 tiles along K (activations, or dy / dy^T in the backward)
 *     b: block128x128 (weights, scales [ceil(N/128), KT]) or tile1x128 (scales [N, KT]: the
 *        activation operand x^T of the weight-gradient GEMM)
 *     KT = ceil(K/128). out[m, n] = sum over k-tiles t of fl32(fl32(P_t[m, n] * sa[m, t]) * sb[n, t]),
 *     P_t = fl32(sum over the tile's k of qa[m, k] * qb[n, k]) (the FP8 products are exact; the tile sum
 *     is exact in f64 for E4M3 x E4M3), the sum over t accumulated in f32 or wider and rounded once
 *     to outDtype (f32 | bf16 | f16). The layout is "NT": both operands K-major, y = a b^T.
 *
 *   fp8GroupedGemm(a [M, K], aScales, b [E, N, K], bScales [E, NB, KT], offsets i32 [E+1]) -> [M, N]
 *     MoE experts: rows offsets[e] .. offsets[e+1]-1 of a use expert e's weight; rows in no segment
 *     give 0 (a row in several segments gets the sum). Same convention as @ring-linear/moe's
 *     groupedMatmul; offsets must be non-decreasing within [0, M] (a kernel cannot raise on data).
 *
 * The composites run the tile products as one batched f32 matmul of the decoded codes, then scale and
 * sum over tiles with core ops; the grouped composite runs fp8Gemm per expert over all rows and
 * masks (E times the work; backends register kernels).
 */
import {
  DTypeError,
  ShapeError,
  add,
  arange,
  broadcastTo,
  cast,
  defineOp,
  describeShape,
  greaterEqual,
  less,
  logicalAnd,
  matmul,
  mul,
  pad,
  reshape,
  runOp1,
  slice,
  sliceAxis,
  sum,
  tidy,
  transpose,
  where,
  type DType,
  type Tensor,
  type TensorMeta,
} from '@ring-linear/core';
import { FP8_BLOCK, FP8_DTYPES, ceilDiv } from '../formats.js';
import { checkOutDType } from './common.js';

export type GemmBLayout = 'block128x128' | 'tile1x128';

export interface Fp8GemmAttrs extends Record<string, unknown> {
  bLayout: GemmBLayout;
  outDtype: DType;
}

function matrix(op: string, name: string, m: TensorMeta): [number, number] {
  if (m.shape.length !== 2) throw new ShapeError(`${op}: '${name}' must have rank 2, got shape ${describeShape(m.shape)}`);
  return [m.shape[0]!, m.shape[1]!];
}

function expectShape(op: string, name: string, m: TensorMeta, want: readonly number[], why: string): void {
  if (m.shape.length !== want.length || m.shape.some((d, i) => d !== want[i])) {
    throw new ShapeError(`${op}: '${name}' must have shape ${describeShape(want)} (${why}), got ${describeShape(m.shape)}`);
  }
}

/** Rows of b's scales: one per 128 rows (block layout) or one per row (tile layout). */
export function bScaleRows(N: number, layout: GemmBLayout): number {
  return layout === 'block128x128' ? ceilDiv(N, FP8_BLOCK) : N;
}

const gemmInputs = [
  { name: 'a', dtypes: FP8_DTYPES },
  { name: 'aScales', dtypes: ['f32'] },
  { name: 'b', dtypes: FP8_DTYPES },
  { name: 'bScales', dtypes: ['f32'] },
] as const;

const gemmAttrs = {
  bLayout: { kind: 'enum', values: ['block128x128', 'tile1x128'], default: 'block128x128' },
  outDtype: { kind: 'dtype', default: 'f32' },
} as const;

defineOp<Fp8GemmAttrs>({
  name: 'fp8Gemm',
  doc:
    'FP8 GEMM with block scales, fp32 accumulation: a [M, K] (1x128 tiles) times b [N, K]^T (128x128 blocks, or 1x128 tiles) ' +
    '-> [M, N] in outDtype (f32 | bf16 | f16)',
  inputs: gemmInputs,
  attrs: gemmAttrs,
  normalize: (_m, a) => ({ ...a, outDtype: checkOutDType('fp8Gemm', a.outDtype) }),
  infer: ([a, sa, b, sb], attrs) => {
    const op = 'fp8Gemm';
    const [M, K] = matrix(op, 'a', a!);
    const [N, Kb] = matrix(op, 'b', b!);
    if (K !== Kb) throw new ShapeError(`${op}: a ${describeShape(a!.shape)} and b ${describeShape(b!.shape)} must share K (the last dim; y = a b^T), got ${K} and ${Kb}`);
    if (K < 1) throw new ShapeError(`${op}: K must be >= 1, got a ${describeShape(a!.shape)}`);
    const KT = ceilDiv(K, FP8_BLOCK);
    expectShape(op, 'aScales', sa!, [M, KT], `1x128 tiles of a ${describeShape(a!.shape)}`);
    expectShape(op, 'bScales', sb!, [bScaleRows(N, attrs.bLayout), KT], `layout '${attrs.bLayout}' of b ${describeShape(b!.shape)}`);
    return [{ shape: [M, N], dtype: attrs.outDtype }];
  },
  composite: ([a, sa, b, sb], attrs) => [fp8GemmComposite(a!, sa!, b!, sb!, attrs.bLayout, attrs.outDtype)],
});

/** Codes of x [R, K] decoded to f32, zero-padded to whole tiles, as [T, R, 128]. */
function tilesOf(x: Tensor): Tensor {
  const [R, K] = [x.shape[0]!, x.shape[1]!];
  const T = ceilDiv(K, FP8_BLOCK);
  let xf = cast(x, 'f32');
  if (T * FP8_BLOCK !== K) xf = pad(xf, [[0, 0], [0, T * FP8_BLOCK - K]]);
  return transpose(reshape(xf, [R, T, FP8_BLOCK]), [1, 0, 2]);
}

function fp8GemmComposite(a: Tensor, sa: Tensor, b: Tensor, sb: Tensor, bLayout: GemmBLayout, outDtype: DType): Tensor {
  const [M, K] = [a.shape[0]!, a.shape[1]!];
  const N = b.shape[0]!;
  const T = ceilDiv(K, FP8_BLOCK);
  // P[t] = A_t B_t^T over each 128-wide k-tile (exact products, f32 result per tile).
  const P = matmul(tilesOf(a), tilesOf(b), { transposeB: true }); // [T, M, N]
  // Per-row scales of b: a block's scale repeated over its 128 rows.
  let sbRows = sb;
  if (bLayout === 'block128x128') {
    const NB = sb.shape[0]!;
    const wide = reshape(broadcastTo(reshape(sb, [NB, 1, T]), [NB, FP8_BLOCK, T]), [NB * FP8_BLOCK, T]);
    sbRows = NB * FP8_BLOCK === N ? wide : slice(wide, [0, 0], [N, T]);
  }
  const scaled = mul(mul(P, reshape(transpose(sa), [T, M, 1])), reshape(transpose(sbRows), [T, 1, N]));
  const y = sum(scaled, 0);
  return outDtype === 'f32' ? y : cast(y, outDtype);
}

/** FP8 GEMM y = a b^T with block scales (see the file comment). */
export function fp8GemmRaw(
  a: Tensor, aScales: Tensor, b: Tensor, bScales: Tensor,
  options: { bLayout?: GemmBLayout; outDtype?: DType } = {},
): Tensor {
  return runOp1('fp8Gemm', [a, aScales, b, bScales], { bLayout: options.bLayout ?? 'block128x128', outDtype: options.outDtype ?? 'f32' });
}

// ---------------------------------------------------------------------------------------------
// Grouped

export interface Fp8GroupedGemmAttrs extends Record<string, unknown> {
  outDtype: DType;
}

defineOp<Fp8GroupedGemmAttrs>({
  name: 'fp8GroupedGemm',
  doc:
    'grouped FP8 GEMM for MoE experts: a [M, K] (1x128 tiles), b [E, N, K] (128x128 blocks, scales [E, ceil(N/128), ceil(K/128)]), ' +
    'offsets i32 [E+1]: rows offsets[e] .. offsets[e+1]-1 of a times expert e\'s b^T -> [M, N] in outDtype; rows in no segment give 0',
  inputs: [...gemmInputs, { name: 'offsets', dtypes: ['i32'] }],
  attrs: { outDtype: { kind: 'dtype', default: 'f32' } },
  normalize: (_m, a) => ({ ...a, outDtype: checkOutDType('fp8GroupedGemm', a.outDtype) }),
  infer: ([a, sa, b, sb, off], attrs) => {
    const op = 'fp8GroupedGemm';
    const [M, K] = matrix(op, 'a', a!);
    if (b!.shape.length !== 3) throw new ShapeError(`${op}: 'b' must have rank 3 [E, N, K] (stacked expert weights), got shape ${describeShape(b!.shape)}`);
    const [E, N, Kb] = [b!.shape[0]!, b!.shape[1]!, b!.shape[2]!];
    if (K !== Kb) throw new ShapeError(`${op}: a ${describeShape(a!.shape)} and b ${describeShape(b!.shape)} must share K (the last dim), got ${K} and ${Kb}`);
    if (K < 1 || E < 1) throw new ShapeError(`${op}: need K >= 1 and E >= 1 experts, got a ${describeShape(a!.shape)}, b ${describeShape(b!.shape)}`);
    const KT = ceilDiv(K, FP8_BLOCK);
    expectShape(op, 'aScales', sa!, [M, KT], `1x128 tiles of a ${describeShape(a!.shape)}`);
    expectShape(op, 'bScales', sb!, [E, ceilDiv(N, FP8_BLOCK), KT], `128x128 blocks of each expert of b ${describeShape(b!.shape)}`);
    if (off!.dtype !== 'i32') throw new DTypeError(`${op}: 'offsets' must have dtype i32, got ${off!.dtype}`);
    expectShape(op, 'offsets', off!, [E + 1], `each expert's first row, then the end; E = ${E} from b`);
    return [{ shape: [M, N], dtype: attrs.outDtype }];
  },
  composite: ([a, sa, b, sb, off], attrs) => {
    const M = a!.shape[0]!;
    const [E, N, K] = [b!.shape[0]!, b!.shape[1]!, b!.shape[2]!];
    const sbShape = sb!.shape.slice(1);
    let acc: Tensor | null = null;
    for (let e = 0; e < E; e++) {
      const prev: Tensor | null = acc;
      acc = tidy((): Tensor => {
        const be = reshape(sliceAxis(b!, 0, e, e + 1), [N, K]);
        const sbe = reshape(sliceAxis(sb!, 0, e, e + 1), sbShape);
        const ye = runOp1('fp8Gemm', [a!, sa!, be, sbe], { bLayout: 'block128x128', outDtype: 'f32' });
        const rows = arange(0, M, 1, 'i32');
        const inSeg = logicalAnd(greaterEqual(rows, sliceAxis(off!, 0, e, e + 1)), less(rows, sliceAxis(off!, 0, e + 1, e + 2)));
        const part = where(reshape(inSeg, [M, 1]), ye, 0);
        return prev ? add(prev, part) : part;
      });
      prev?.dispose();
    }
    return [attrs.outDtype === 'f32' ? acc! : cast(acc!, attrs.outDtype)];
  },
});

/** Grouped FP8 GEMM over MoE experts (see the file comment). */
export function fp8GroupedGemmRaw(
  a: Tensor, aScales: Tensor, b: Tensor, bScales: Tensor, offsets: Tensor,
  options: { outDtype?: DType } = {},
): Tensor {
  return runOp1('fp8GroupedGemm', [a, aScales, b, bScales, offsets], { outDtype: options.outDtype ?? 'f32' });
}
