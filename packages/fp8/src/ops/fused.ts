/**
 * Fused ops of the linghe-style recipe (MODEL_SPEC §8). Each saves a full write and read of an
 * activation; each is DEFINED by its composite (the unfused ops below, run in f32), and a backend's
 * fused kernel must produce the same bytes as that composite on the same backend.
 *
 *   fp8RmsNormQuant(x, w)             quantize(rmsNorm(f32 x, w))                 -> [data, scales] 1x128
 *   fp8SwigluQuant(gateUp)            quantize(silu(g) * u), [g | u] = gateUp     -> [data, scales] 1x128
 *   fp8SwigluBackwardQuant(gateUp,dh) d[g | u] of h = silu(g) * u, quantTranspose'd
 *                                                                -> [data, scales, dataT, scalesT]
 *   fp8GroupRmsNormGateQuant(o, gate, w)  quantize(groupRmsNorm(o) * w * sigmoid(gate))
 *                                                                               -> [data, scales] 1x128
 *   routerGemm(x, w)                  fp32(x) @ fp32(w)^T (bf16 inputs read as fp32), f32 logits
 *
 * The quantized outputs are codes: no gradient flows through them (see quantize.ts). routerGemm
 * is differentiable.
 */
import {
  AttrError,
  ShapeError,
  add,
  concat,
  defineOp,
  describeShape,
  matmul,
  mul,
  reshape,
  rmsNorm,
  runOp,
  runOp1,
  sigmoid,
  silu,
  split,
  sub,
  type Tensor,
  type TensorMeta,
} from '@ring-linear/core';
import { HIGH_PRECISION_DTYPES, scalesShape, type Fp8DType } from '../formats.js';
import { checkFp8Attr, constantOn, f32 } from './common.js';

const quantAttrs = { dtype: { kind: 'dtype', default: 'f8e4m3' }, pow2Scale: { kind: 'bool', default: false } } as const;

function tileOutputs(shape: readonly number[], dtype: Fp8DType): TensorMeta[] {
  return [
    { shape, dtype },
    { shape: scalesShape(shape, 'tile1x128'), dtype: 'f32' },
  ];
}

function quantizeTiles(y: Tensor, dtype: Fp8DType, pow2Scale: boolean): Tensor[] {
  return runOp('fp8Quantize', [y], { dtype, layout: 'tile1x128', pow2Scale });
}

function checkEps(op: string, eps: number): void {
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new AttrError(`${op}: attribute 'eps' expected a finite number >= 0, got ${eps}`);
}

function lastDimAtLeast1(op: string, name: string, m: TensorMeta): number {
  const r = m.shape.length;
  if (r < 1 || m.shape[r - 1]! < 1) throw new ShapeError(`${op}: '${name}' must have rank >= 1 and a last dim >= 1, got shape ${describeShape(m.shape)}`);
  return m.shape[r - 1]!;
}

function sameShape(op: string, name: string, m: TensorMeta, want: readonly number[], what: string): void {
  if (m.shape.length !== want.length || m.shape.some((d, i) => d !== want[i])) {
    throw new ShapeError(`${op}: '${name}' must have shape ${describeShape(want)} (${what}), got ${describeShape(m.shape)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm + quant

export interface RmsNormQuantAttrs extends Record<string, unknown> {
  eps: number;
  dtype: Fp8DType;
  pow2Scale: boolean;
}

defineOp<RmsNormQuantAttrs>({
  name: 'fp8RmsNormQuant',
  doc: 'RMSNorm (f32, MODEL_SPEC §1) fused with 1x128 FP8 quantization of its output: x [..., D], weight [D] -> [data [..., D], scales [..., ceil(D/128)]]',
  inputs: [{ name: 'x', dtypes: HIGH_PRECISION_DTYPES }, { name: 'weight', dtypes: HIGH_PRECISION_DTYPES }],
  attrs: { eps: { kind: 'number', default: 1e-6 }, ...quantAttrs },
  normalize: (_m, a) => {
    checkEps('fp8RmsNormQuant', a.eps);
    return { ...a, dtype: checkFp8Attr('fp8RmsNormQuant', 'dtype', a.dtype) };
  },
  infer: ([x, w], a) => {
    const D = lastDimAtLeast1('fp8RmsNormQuant', 'x', x!);
    sameShape('fp8RmsNormQuant', 'weight', w!, [D], 'the last dim of x');
    return tileOutputs(x!.shape, a.dtype);
  },
  composite: ([x, w], a) => quantizeTiles(rmsNorm(f32(x!), w!, a.eps), a.dtype, a.pow2Scale),
});

/** RMSNorm fused with 1x128 quantization: [data, scales]. */
export function rmsNormQuant(x: Tensor, weight: Tensor, options: { eps?: number; dtype?: Fp8DType; pow2Scale?: boolean } = {}): [Tensor, Tensor] {
  const [d, s] = runOp('fp8RmsNormQuant', [x, weight], { eps: options.eps ?? 1e-6, dtype: options.dtype ?? 'f8e4m3', pow2Scale: options.pow2Scale ?? false });
  return [d!, s!];
}

// ---------------------------------------------------------------------------------------------
// SwiGLU + quant, and its backward

export interface SwigluQuantAttrs extends Record<string, unknown> {
  dtype: Fp8DType;
  pow2Scale: boolean;
}

function gateUpHalf(op: string, m: TensorMeta): number {
  const C = lastDimAtLeast1(op, 'gateUp', m);
  if (C % 2 !== 0) throw new ShapeError(`${op}: the last dim of 'gateUp' must be even ([..., 2 * intermediate]: gate then up), got ${describeShape(m.shape)}`);
  return C / 2;
}

/** [g, u] of a [..., 2I] gate_up projection, in f32. */
function splitGateUp(gateUp: Tensor): [Tensor, Tensor] {
  const [g, u] = split(f32(gateUp), 2, -1);
  return [g!, u!];
}

defineOp<SwigluQuantAttrs>({
  name: 'fp8SwigluQuant',
  doc:
    'SwiGLU h = silu(g) * u (f32) of gateUp [..., 2I] = [g | u] (the fused gate_up projection), fused with 1x128 FP8 ' +
    'quantization of h: -> [data [..., I], scales [..., ceil(I/128)]]',
  inputs: [{ name: 'gateUp', dtypes: HIGH_PRECISION_DTYPES }],
  attrs: quantAttrs,
  normalize: (_m, a) => ({ ...a, dtype: checkFp8Attr('fp8SwigluQuant', 'dtype', a.dtype) }),
  infer: ([gu], a) => {
    const I = gateUpHalf('fp8SwigluQuant', gu!);
    return tileOutputs([...gu!.shape.slice(0, -1), I], a.dtype);
  },
  composite: ([gu], a) => {
    const [g, u] = splitGateUp(gu!);
    return quantizeTiles(mul(silu(g), u), a.dtype, a.pow2Scale);
  },
});

/** silu(g) * u of gateUp = [g | u], fused with 1x128 quantization: [data, scales]. */
export function swigluQuant(gateUp: Tensor, options: { dtype?: Fp8DType; pow2Scale?: boolean } = {}): [Tensor, Tensor] {
  const [d, s] = runOp('fp8SwigluQuant', [gateUp], { dtype: options.dtype ?? 'f8e4m3', pow2Scale: options.pow2Scale ?? false });
  return [d!, s!];
}

defineOp<SwigluQuantAttrs>({
  name: 'fp8SwigluBackwardQuant',
  doc:
    'backward of h = silu(g) * u for gateUp [M, 2I] = [g | u] and dh [M, I] (f32): d[g | u] = [dh * u * silu\'(g) | dh * silu(g)] ' +
    'with silu\'(g) = s + g s (1 - s), s = sigmoid(g), emitted as FP8 quantizations of dy = d[g | u] (1x128 along 2I, for the ' +
    'data-gradient GEMM) and of dy^T (1x128 along M, for the weight-gradient GEMM): -> [data, scales, dataT, scalesT]',
  inputs: [{ name: 'gateUp', dtypes: HIGH_PRECISION_DTYPES }, { name: 'dh', dtypes: HIGH_PRECISION_DTYPES }],
  attrs: quantAttrs,
  normalize: (_m, a) => ({ ...a, dtype: checkFp8Attr('fp8SwigluBackwardQuant', 'dtype', a.dtype) }),
  infer: ([gu, dh], a) => {
    const op = 'fp8SwigluBackwardQuant';
    if (gu!.shape.length !== 2 || gu!.shape[0]! < 1) {
      throw new ShapeError(`${op}: 'gateUp' must have rank 2 [M, 2I] with M >= 1, got shape ${describeShape(gu!.shape)}`);
    }
    const I = gateUpHalf(op, gu!);
    const M = gu!.shape[0]!;
    sameShape(op, 'dh', dh!, [M, I], 'the gradient of h = silu(g) * u');
    return [
      { shape: [M, 2 * I], dtype: a.dtype },
      { shape: scalesShape([M, 2 * I], 'tile1x128'), dtype: 'f32' },
      { shape: [2 * I, M], dtype: a.dtype },
      { shape: scalesShape([2 * I, M], 'tile1x128'), dtype: 'f32' },
    ];
  },
  composite: ([gu, dh], a) => {
    const [g, u] = splitGateUp(gu!);
    const dhf = f32(dh!);
    const s = sigmoid(g);
    const du = mul(dhf, silu(g));
    const dsilu = add(s, mul(mul(g, s), sub(1, s)));
    const dg = mul(mul(dhf, u), dsilu);
    return runOp('fp8QuantTranspose', [concat([dg, du], -1)], { dtype: a.dtype, pow2Scale: a.pow2Scale });
  },
});

/** The SwiGLU backward emitting quantized dy = d[g | u] and dy^T: [data, scales, dataT, scalesT]. */
export function swigluBackwardQuant(
  gateUp: Tensor,
  dh: Tensor,
  options: { dtype?: Fp8DType; pow2Scale?: boolean } = {},
): [Tensor, Tensor, Tensor, Tensor] {
  const o = runOp('fp8SwigluBackwardQuant', [gateUp, dh], { dtype: options.dtype ?? 'f8e4m3', pow2Scale: options.pow2Scale ?? false });
  return [o[0]!, o[1]!, o[2]!, o[3]!];
}

// ---------------------------------------------------------------------------------------------
// group RMSNorm + sigmoid gate + quant

export interface GroupRmsNormGateQuantAttrs extends Record<string, unknown> {
  groups: number;
  eps: number;
  dtype: Fp8DType;
  pow2Scale: boolean;
}

defineOp<GroupRmsNormGateQuantAttrs>({
  name: 'fp8GroupRmsNormGateQuant',
  doc:
    'the linear-attention output gate (MODEL_SPEC §2.5) fused with 1x128 FP8 quantization: the C channels of o in `groups` ' +
    'groups each RMS-normalized in f32, times weight [C], times sigmoid(gate) -> [data [..., C], scales [..., ceil(C/128)]]',
  inputs: [
    { name: 'o', dtypes: HIGH_PRECISION_DTYPES },
    { name: 'gate', dtypes: HIGH_PRECISION_DTYPES },
    { name: 'weight', dtypes: HIGH_PRECISION_DTYPES },
  ],
  attrs: { groups: { kind: 'int', default: 1, min: 1 }, eps: { kind: 'number', default: 1e-6 }, ...quantAttrs },
  normalize: (_m, a) => {
    checkEps('fp8GroupRmsNormGateQuant', a.eps);
    return { ...a, dtype: checkFp8Attr('fp8GroupRmsNormGateQuant', 'dtype', a.dtype) };
  },
  infer: ([o, gate, w], a) => {
    const op = 'fp8GroupRmsNormGateQuant';
    const C = lastDimAtLeast1(op, 'o', o!);
    if (C % a.groups !== 0) throw new ShapeError(`${op}: the ${C} channels of 'o' ${describeShape(o!.shape)} do not divide into ${a.groups} equal groups`);
    sameShape(op, 'gate', gate!, o!.shape, "the shape of 'o'");
    sameShape(op, 'weight', w!, [C], 'one per channel');
    return tileOutputs(o!.shape, a.dtype);
  },
  composite: ([o, gate, w], a) => {
    const C = o!.shape[o!.rank - 1]!;
    const size = C / a.groups;
    // Each group normalized by RMSNorm with unit weight; then the per-channel weight and the gate.
    const grouped = reshape(f32(o!), [...o!.shape.slice(0, -1), a.groups, size]);
    const n = reshape(rmsNorm(grouped, constantOn(o!, new Float32Array(size).fill(1), [size]), a.eps), o!.shape);
    const y = mul(mul(n, f32(w!)), sigmoid(f32(gate!)));
    return quantizeTiles(y, a.dtype, a.pow2Scale);
  },
});

/** Group RMSNorm times weight times sigmoid(gate), fused with 1x128 quantization: [data, scales]. */
export function groupRmsNormGateQuant(
  o: Tensor,
  gate: Tensor,
  weight: Tensor,
  options: { groups?: number; eps?: number; dtype?: Fp8DType; pow2Scale?: boolean } = {},
): [Tensor, Tensor] {
  const [d, s] = runOp('fp8GroupRmsNormGateQuant', [o, gate, weight], {
    groups: options.groups ?? 1,
    eps: options.eps ?? 1e-6,
    dtype: options.dtype ?? 'f8e4m3',
    pow2Scale: options.pow2Scale ?? false,
  });
  return [d!, s!];
}

// ---------------------------------------------------------------------------------------------
// Router GEMM in fp32 from bf16 inputs

defineOp<{}>({
  name: 'routerGemm',
  doc:
    'MoE router logits in fp32 (MODEL_SPEC §4): fp32(x) @ fp32(w)^T for x [..., H] and w [E, H] in bf16, f16 or f32, ' +
    'the low-precision inputs widened in registers (no f32 copies); output f32 [..., E]',
  inputs: [{ name: 'x', dtypes: HIGH_PRECISION_DTYPES }, { name: 'w', dtypes: HIGH_PRECISION_DTYPES }],
  infer: ([x, w]) => {
    const op = 'routerGemm';
    const H = lastDimAtLeast1(op, 'x', x!);
    if (w!.shape.length !== 2 || w!.shape[1] !== H || w!.shape[0]! < 1) {
      throw new ShapeError(`${op}: 'w' must have shape [E, ${H}] (E >= 1 experts, H from x ${describeShape(x!.shape)}), got ${describeShape(w!.shape)}`);
    }
    return [{ shape: [...x!.shape.slice(0, -1), w!.shape[0]!], dtype: 'f32' }];
  },
  grad: ({ inputs: [x, w], dys: [dy] }) => {
    const H = x!.shape[x!.rank - 1]!;
    const E = w!.shape[0]!;
    const dy2 = reshape(dy!, [-1, E]);
    const dx = reshape(matmul(dy2, f32(w!)), x!.shape);
    const dw = matmul(dy2, reshape(f32(x!), [-1, H]), { transposeA: true });
    return [dx, dw];
  },
  composite: ([x, w]) => {
    const H = x!.shape[x!.rank - 1]!;
    const y = matmul(reshape(f32(x!), [-1, H]), f32(w!), { transposeB: true });
    return [reshape(y, [...x!.shape.slice(0, -1), w!.shape[0]!])];
  },
});

/** Router logits f32 [..., E] = fp32(x) @ fp32(w)^T (x [..., H] and w [E, H] in bf16, f16 or f32). */
export function routerGemm(x: Tensor, w: Tensor): Tensor {
  return runOp1('routerGemm', [x, w]);
}

