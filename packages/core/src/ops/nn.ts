/**
 * Neural-network ops: softmax, logSoftmax, rmsNorm, crossEntropy.
 *
 * All of them compute in f32 (or wider) whatever the storage dtype, as MODEL_SPEC §1 and §7 ask
 * (RMSNorm, the final softmax/log-softmax and the loss in fp32). Each has its own kernel on the
 * backends that accelerate it and a composite in terms of core ops that every backend can run;
 * the two agree to float rounding. Gradients are written with the public ops, in f32; the engine
 * casts each gradient to its input's dtype.
 */
import { defineOp, type TensorMeta } from '../op.js';
import { FLOAT_DTYPES, type DType } from '../dtype/dtype.js';
import { runOp1 } from '../engine.js';
import { normalizeAxis, shapesEqual } from '../shape.js';
import { AttrError, ShapeError, describeShape } from '../errors.js';
import type { Tensor } from '../tensor.js';
import {
  add, cast, copy, div, equal, exp, greaterEqual, less, log, logicalAnd, maximum, mul, notEqual, rsqrt, square, sub, where,
} from './elementwise.js';
import { logsumexp, max, mean, sum } from './reduce.js';
import { reshape } from './shape_basic.js';
import { arange } from './creation.js';

/** x in f32 (a copy-free pass-through when it already is). */
const f32 = (x: Tensor): Tensor => (x.dtype === 'f32' ? x : cast(x, 'f32'));
/** Back from f32 to the storage dtype `dt`. */
const back = (x: Tensor, dt: DType): Tensor => (x.dtype === dt ? x : cast(x, dt));

function rankAtLeast1(op: string, name: string, m: TensorMeta): void {
  if (m.shape.length < 1) throw new ShapeError(`${op}: '${name}' must have rank >= 1, got a scalar (shape [])`);
}

// ---------------------------------------------------------------------------------------------
// softmax, logSoftmax

export interface SoftmaxAttrs extends Record<string, unknown> {
  /** Normalized (non-negative) axis. */
  axis: number;
}

const softmaxNormalize = (op: string) => ([x]: readonly TensorMeta[], a: SoftmaxAttrs): SoftmaxAttrs => {
  rankAtLeast1(op, 'x', x!);
  return { axis: normalizeAxis(op, a.axis, x!.shape.length) };
};

defineOp<SoftmaxAttrs>({
  name: 'softmax',
  doc: 'exp(x - max) / sum(exp(x - max)) along an axis, computed in f32 or wider, rounded once to the dtype of x. ' +
    'A slice that is all -inf (or holds +inf or NaN) gives NaN, as in PyTorch',
  inputs: [{ name: 'x', dtypes: FLOAT_DTYPES }],
  attrs: { axis: { kind: 'int', default: -1 } },
  normalize: softmaxNormalize('softmax'),
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  // dx = y * (dy - sum(dy * y)) along the axis (the Jacobian diag(y) - y y^T applied to dy).
  grad: ({ outputs: [y], dys: [dy], attrs: { axis } }) => {
    const yf = f32(y!);
    const dyf = f32(dy!);
    const s = sum(mul(dyf, yf), axis, { keepDims: true });
    return [mul(yf, sub(dyf, s))];
  },
  composite: ([x], { axis }) => {
    if (x!.size === 0) return [copy(x!)]; // nothing to normalize (max over an empty axis would throw)
    const xf = f32(x!);
    const e = exp(sub(xf, max(xf, axis, { keepDims: true })));
    return [back(div(e, sum(e, axis, { keepDims: true })), x!.dtype)];
  },
});

defineOp<SoftmaxAttrs>({
  name: 'logSoftmax',
  doc: 'x - max - log(sum(exp(x - max))) along an axis, computed in f32 or wider, rounded once to the dtype of x. ' +
    'A slice that is all -inf (or holds +inf or NaN) gives NaN, as in PyTorch',
  inputs: [{ name: 'x', dtypes: FLOAT_DTYPES }],
  attrs: { axis: { kind: 'int', default: -1 } },
  normalize: softmaxNormalize('logSoftmax'),
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  // y_i = x_i - lse(x), d lse / dx_j = softmax_j = exp(y_j): dx = dy - exp(y) * sum(dy).
  grad: ({ outputs: [y], dys: [dy], attrs: { axis } }) => {
    const dyf = f32(dy!);
    return [sub(dyf, mul(exp(f32(y!)), sum(dyf, axis, { keepDims: true })))];
  },
  composite: ([x], { axis }) => {
    if (x!.size === 0) return [copy(x!)];
    const xf = f32(x!);
    const shifted = sub(xf, max(xf, axis, { keepDims: true }));
    return [back(sub(shifted, log(sum(exp(shifted), axis, { keepDims: true }))), x!.dtype)];
  },
});

/** Softmax along `axis` (default: the last). */
export function softmax(x: Tensor, axis = -1): Tensor {
  return runOp1('softmax', [x], { axis });
}

/** Log-softmax along `axis` (default: the last). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return runOp1('logSoftmax', [x], { axis });
}

// ---------------------------------------------------------------------------------------------
// rmsNorm

export interface RmsNormAttrs extends Record<string, unknown> {
  eps: number;
}

defineOp<RmsNormAttrs>({
  name: 'rmsNorm',
  doc: 'y = w * x * rsqrt(mean(x^2) + eps) over the last dim (MODEL_SPEC §1), computed in f32 whatever the ' +
    'storage dtypes (eps rounded to f32), output in the dtype of x; weight [D] may have another float dtype',
  inputs: [{ name: 'x', dtypes: FLOAT_DTYPES }, { name: 'weight', dtypes: FLOAT_DTYPES }],
  attrs: { eps: { kind: 'number', default: 1e-6 } },
  normalize: (_m, a) => {
    if (!(a.eps >= 0) || !Number.isFinite(a.eps)) throw new AttrError(`rmsNorm: attribute 'eps' expected a finite number >= 0, got ${a.eps}`);
    return a;
  },
  infer: ([x, w]) => {
    rankAtLeast1('rmsNorm', 'x', x!);
    const d = x!.shape[x!.shape.length - 1]!;
    if (d < 1) throw new ShapeError(`rmsNorm: the last dim of 'x' must be >= 1, got shape ${describeShape(x!.shape)}`);
    if (w!.shape.length !== 1 || w!.shape[0] !== d) {
      throw new ShapeError(`rmsNorm: 'weight' must have shape [${d}] (the last dim of x ${describeShape(x!.shape)}), got ${describeShape(w!.shape)}`);
    }
    return [{ shape: x!.shape, dtype: x!.dtype }];
  },
  // With r = (mean(x^2) + eps)^(-1/2), n = x * r and g = dy * w (all per row, D = last dim):
  //   dr/dx_i = -r^3 x_i / D, so
  //   dx_i = sum_j g_j (delta_ij r + x_j dr/dx_i) = r * (g_i - n_i * mean_j(g_j * n_j))
  //   dw_j = sum over rows of dy_j * n_j
  grad: ({ inputs: [x, w], dys: [dy], attrs: { eps } }) => {
    const xf = f32(x!);
    const dyf = f32(dy!);
    const r = rsqrt(add(mean(square(xf), -1, { keepDims: true }), eps));
    const n = mul(xf, r);
    const g = mul(dyf, f32(w!));
    const dx = mul(r, sub(g, mul(n, mean(mul(g, n), -1, { keepDims: true }))));
    const d = x!.shape[x!.shape.length - 1]!;
    const dw = sum(reshape(mul(dyf, n), [-1, d]), 0);
    return [dx, dw];
  },
  // Cast to f32 first so the composite computes what the kernels compute.
  composite: ([x, w], { eps }) => {
    const xf = f32(x!);
    const r = rsqrt(add(mean(square(xf), -1, { keepDims: true }), eps));
    return [back(mul(f32(w!), mul(xf, r)), x!.dtype)];
  },
});

/** RMSNorm over the last dim: `weight * x * rsqrt(mean(x^2) + eps)` in f32 (MODEL_SPEC §1). */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  return runOp1('rmsNorm', [x, weight], { eps });
}

// ---------------------------------------------------------------------------------------------
// crossEntropy

export type CrossEntropyReduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyAttrs extends Record<string, unknown> {
  ignoreIndex: number;
  reduction: CrossEntropyReduction;
}

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (no loss, no gradient, not counted). Default -100. */
  ignoreIndex?: number;
  /** 'mean' (default) over the counted tokens, 'sum', or 'none' (per-token losses). */
  reduction?: CrossEntropyReduction;
}

/**
 * Which targets count: in [0, V) and not ignoreIndex (bool, the shape of targets). Targets outside
 * [0, V) are treated as ignored, because a kernel cannot raise on data.
 */
function countedTargets(targets: Tensor, vocab: number, ignoreIndex: number): Tensor {
  return logicalAnd(logicalAnd(greaterEqual(targets, 0), less(targets, vocab)), notEqual(targets, ignoreIndex));
}

/** One-hot of the targets over the last dim of `[..., V]` (bool; all false for out-of-range targets). */
function oneHotBool(targets: Tensor, vocab: number): Tensor {
  const ids = arange(0, vocab, 1, 'i32');
  return equal(reshape(targets, [...targets.shape, 1]), ids);
}

defineOp<CrossEntropyAttrs>({
  name: 'crossEntropy',
  doc: 'softmax cross-entropy: loss_t = logsumexp(logits_t) - logits_t[target_t], computed in f32 whatever the ' +
    'logits dtype, output f32. Targets equal to ignoreIndex, and targets outside [0, V), contribute no loss and no ' +
    "gradient and are not counted. 'mean' divides the sum by the number of counted tokens (0 when there are none), " +
    "'sum' sums, 'none' gives per-token losses (0 for skipped tokens)",
  inputs: [{ name: 'logits', dtypes: FLOAT_DTYPES }, { name: 'targets', dtypes: ['i32'] }],
  attrs: {
    ignoreIndex: { kind: 'int', default: -100 },
    reduction: { kind: 'enum', values: ['mean', 'sum', 'none'], default: 'mean' },
  },
  infer: ([logits, targets], { reduction }) => {
    rankAtLeast1('crossEntropy', 'logits', logits!);
    const lead = logits!.shape.slice(0, -1);
    const v = logits!.shape[logits!.shape.length - 1]!;
    if (v < 1) throw new ShapeError(`crossEntropy: 'logits' must have a class dimension >= 1, got shape ${describeShape(logits!.shape)}`);
    if (!shapesEqual(targets!.shape, lead)) {
      throw new ShapeError(
        `crossEntropy: 'targets' must have the shape of logits without its last dim, ${describeShape(lead)}, got ${describeShape(targets!.shape)}`,
      );
    }
    return [{ shape: reduction === 'none' ? lead : [], dtype: 'f32' }];
  },
  // dlogits_t = (softmax(logits_t) - onehot(target_t)) * dy_t, where dy_t is dy (sum), dy / count
  // (mean) or the per-token dy (none); rows of skipped tokens are zero.
  grad: ({ inputs: [logits, targets], dys: [dy], attrs: { ignoreIndex, reduction } }) => {
    const v = logits!.shape[logits!.shape.length - 1]!;
    const counted = countedTargets(targets!, v, ignoreIndex);
    const p = runOp1('softmax', [f32(logits!)], { axis: -1 });
    const diff = sub(p, cast(oneHotBool(targets!, v), 'f32'));
    let scale: Tensor; // per token, shape of targets
    if (reduction === 'none') scale = where(counted, dy!, 0);
    else {
      const per = reduction === 'mean' ? div(dy!, maximum(sum(cast(counted, 'f32')), 1)) : dy!;
      scale = where(counted, per, 0);
    }
    return [mul(diff, reshape(scale, [...targets!.shape, 1])), null];
  },
  composite: ([logits, targets], { ignoreIndex, reduction }) => {
    const v = logits!.shape[logits!.shape.length - 1]!;
    const lf = f32(logits!);
    const counted = countedTargets(targets!, v, ignoreIndex);
    const picked = sum(where(oneHotBool(targets!, v), lf, 0), -1);
    const loss = where(counted, sub(logsumexp(lf, -1), picked), 0);
    if (reduction === 'none') return [loss];
    const total = sum(loss);
    return [reduction === 'sum' ? total : div(total, maximum(sum(cast(counted, 'f32')), 1))];
  },
});

/**
 * Softmax cross-entropy of `logits` [..., V] (any float dtype, computed in f32) against i32
 * `targets` [...]. Output f32: a scalar ('mean', 'sum') or per-token losses ('none'). Targets equal
 * to `ignoreIndex` or outside [0, V) are skipped; 'mean' over zero counted tokens is 0.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  return runOp1('crossEntropy', [logits, targets], {
    ignoreIndex: options.ignoreIndex ?? -100,
    reduction: options.reduction ?? 'mean',
  });
}
