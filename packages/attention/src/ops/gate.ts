/**
 * The linear-attention output gate (MODEL_SPEC §2 step 5) and QK-norm (§2 step 2).
 *
 * groupRmsNormGate(o, gate, weight): the C = H*D channels of o split into `groups` groups of C/groups;
 * each group normalized separately in f32, n = x * rsqrt(mean(x^2) + eps); then
 *   y = n * weight * sigmoid(gate)
 * Output in o's dtype.
 */
import {
  AttrError,
  DTypeError,
  ShapeError,
  add,
  cast,
  defineOp,
  describeShape,
  mean,
  mul,
  reshape,
  rmsNorm,
  rsqrt,
  runOp1,
  sigmoid,
  square,
  sub,
  sum,
  type Tensor,
} from '@ring-linear/core';
import { ACT_DTYPES } from './common.js';

export interface GroupRmsNormGateAttrs extends Record<string, unknown> {
  groups: number;
  eps: number;
}

const f32 = (x: Tensor) => (x.dtype === 'f32' ? x : cast(x, 'f32'));

/** Shared pieces of the composite and the gradient: x grouped [.., G, C/G], r, n (f32). */
function normalizeGroups(o: Tensor, groups: number, eps: number): { x: Tensor; r: Tensor; n: Tensor } {
  const C = o.shape[o.rank - 1]!;
  const x = reshape(f32(o), [...o.shape.slice(0, -1), groups, C / groups]);
  const r = rsqrt(add(mean(square(x), -1, { keepDims: true }), eps));
  return { x, r, n: mul(x, r) };
}

defineOp<GroupRmsNormGateAttrs>({
  name: 'groupRmsNormGate',
  doc:
    'group RMSNorm over the last dim (C channels in `groups` groups, f32) times weight [C] times sigmoid(gate): ' +
    'o, gate [..., C] -> [..., C] in o dtype (MODEL_SPEC §2.5)',
  inputs: [
    { name: 'o', dtypes: ACT_DTYPES },
    { name: 'gate', dtypes: ACT_DTYPES },
    { name: 'weight', dtypes: ACT_DTYPES },
  ],
  attrs: { groups: { kind: 'int', default: 1, min: 1 }, eps: { kind: 'number', default: 1e-6 } },
  normalize: (_m, a) => {
    if (!(a.eps >= 0) || !Number.isFinite(a.eps)) throw new AttrError(`groupRmsNormGate: attribute 'eps' expected a finite number >= 0, got ${a.eps}`);
    return a;
  },
  infer: ([o, gate, w], { groups }) => {
    const op = 'groupRmsNormGate';
    if (o!.shape.length < 1) throw new ShapeError(`${op}: 'o' must have rank >= 1 ([..., channels]), got a scalar`);
    const C = o!.shape[o!.shape.length - 1]!;
    if (C < 1 || C % groups !== 0) {
      throw new ShapeError(`${op}: the ${C} channels of 'o' ${describeShape(o!.shape)} do not divide into ${groups} equal groups`);
    }
    if (gate!.shape.length !== o!.shape.length || gate!.shape.some((d, i) => d !== o!.shape[i])) {
      throw new ShapeError(`${op}: 'gate' must have the shape of 'o' ${describeShape(o!.shape)}, got ${describeShape(gate!.shape)}`);
    }
    if (w!.shape.length !== 1 || w!.shape[0] !== C) {
      throw new ShapeError(`${op}: 'weight' must have shape [${C}] (one per channel), got ${describeShape(w!.shape)}`);
    }
    if (gate!.dtype !== o!.dtype) throw new DTypeError(`${op}: 'gate' must have the dtype of 'o' (${o!.dtype}), got ${gate!.dtype} (use cast())`);
    return [{ shape: o!.shape, dtype: o!.dtype }];
  },
  // With n = x r per group, s = sigmoid(gate), g = dy * s * w:
  //   dgate = dy * n * w * s (1 - s);  dw = sum over rows of dy * s * n;
  //   dx = r (g - n * mean_group(g * n))   (the RMSNorm backward, per group)
  grad: ({ inputs: [o, gate, w], dys: [dy], attrs: { groups, eps } }) => {
    const C = o!.shape[o!.rank - 1]!;
    const { r, n } = normalizeGroups(o!, groups, eps);
    const nFlat = reshape(n, o!.shape);
    const s = sigmoid(f32(gate!));
    const wf = f32(w!);
    const dyf = f32(dy!);
    const dgate = mul(mul(dyf, mul(nFlat, wf)), mul(s, sub(1, s)));
    const dw = sum(reshape(mul(mul(dyf, s), nFlat), [-1, C]), 0);
    const g = reshape(mul(mul(dyf, s), wf), n.shape);
    const dx = reshape(mul(r, sub(g, mul(n, mean(mul(g, n), -1, { keepDims: true })))), o!.shape);
    return [dx, dgate, dw];
  },
  composite: ([o, gate, w], { groups, eps }) => {
    const { n } = normalizeGroups(o!, groups, eps);
    const y = mul(mul(reshape(n, o!.shape), f32(w!)), sigmoid(f32(gate!)));
    return [o!.dtype === 'f32' ? y : cast(y, o!.dtype)];
  },
});

export interface GroupRmsNormGateOptions {
  /** Number of groups the channels split into (group_norm_size); default 1. */
  readonly groups?: number;
  /** Default 1e-6 (rms_norm_eps). */
  readonly eps?: number;
}

/** Group RMSNorm times weight times sigmoid(gate) (MODEL_SPEC §2.5). */
export function groupRmsNormGate(o: Tensor, gate: Tensor, weight: Tensor, options: GroupRmsNormGateOptions = {}): Tensor {
  return runOp1('groupRmsNormGate', [o, gate, weight], { groups: options.groups ?? 1, eps: options.eps ?? 1e-6 });
}

/** QK-norm: RMSNorm over head_dim of each head, x [..., H, D], weight [D] (MODEL_SPEC §2.2). */
export function qkNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  return rmsNorm(x, weight, eps);
}
