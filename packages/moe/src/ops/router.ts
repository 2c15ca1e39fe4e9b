/**
 * The MoE router (MODEL_SPEC §4), one op: `moeRouter(x, gateWeight, expertBias, attrs)`.
 *
 *   logits = fp32(x) @ fp32(W_gate)^T                      W_gate [E, H]
 *   s      = sigmoid(logits)  (or softmax over the experts)
 *   b      = s + expert_bias                                 used ONLY to choose experts
 *   groups: the E experts split into nGroup groups; group score = sum of its top-2 values of b;
 *           keep the topkGroup best groups (ties to the lower group index); the other groups'
 *           entries of b become 0.0 (not -inf), as the reference does
 *   idx    = top-k of the masked b, ties to the LOWER expert index, sorted best first
 *   w      = s[idx];  w = w / (sum(w) + 1e-20) if normTopkProb;  w = w * routedScalingFactor
 *
 * Outputs: weights [N, topK] f32, indices [N, topK] i32, scores s [N, E] f32 (the unbiased scores,
 * for the sequence-wise auxiliary loss). The whole router is fp32 whatever x's dtype (§7).
 *
 * Rounding points (kernels and the composite agree on them, so they choose the same experts):
 * logits, s, b and each group score are f32 values; only the choice of experts depends on them.
 *
 * Backward: the gradient reaches x and W_gate through the selected scores (and through the scores
 * output); the choice is piecewise constant, and the bias, which only chooses, gets none.
 */
import {
  AttrError,
  ShapeError,
  add,
  cast,
  defineOp,
  describeShape,
  div,
  FLOAT_DTYPES,
  greater,
  matmul,
  mul,
  oneHot,
  reshape,
  runOp,
  scatterAddAlongAxis,
  sigmoid,
  softmax,
  sub,
  sum,
  takeAlongAxis,
  topk,
  where,
  type Tensor,
  type TensorMeta,
} from '@ring-linear/core';

export type ScoreFunction = 'sigmoid' | 'softmax';

export interface MoeRouterAttrs extends Record<string, unknown> {
  /** Experts per token (num_experts_per_tok). */
  topK: number;
  /** Groups the experts split into (n_group); 1 = no group limit. */
  nGroup: number;
  /** Groups each token may choose from (topk_group); defaults to nGroup (no limit). */
  topkGroup: number;
  /** score_function: 'sigmoid' (Ring models) or 'softmax'. */
  scoreFunction: ScoreFunction;
  /** norm_topk_prob: divide the selected scores by their sum (+ 1e-20). */
  normTopkProb: boolean;
  /** routed_scaling_factor: multiplies the final weights. */
  routedScalingFactor: number;
}

/** The routing settings that must fit the number of experts. */
export interface RoutingShape {
  readonly topK: number;
  readonly nGroup: number;
  readonly topkGroup: number;
}

/**
 * Checks topK / nGroup / topkGroup against E experts; throws AttrError naming `where`. Shared by
 * the op and the MoE module so both say the same thing.
 */
export function checkRoutingShape(where: string, numExperts: number, r: RoutingShape): void {
  const { topK, nGroup, topkGroup } = r;
  for (const [name, v] of [['topK', topK], ['nGroup', nGroup], ['topkGroup', topkGroup]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new AttrError(`${where}: '${name}' must be a positive integer, got ${v}`);
  }
  if (numExperts % nGroup !== 0) {
    throw new AttrError(`${where}: ${numExperts} experts do not split into nGroup=${nGroup} equal groups (the number of experts must be divisible by nGroup)`);
  }
  if (topkGroup > nGroup) throw new AttrError(`${where}: topkGroup=${topkGroup} must be in [1, nGroup=${nGroup}]`);
  const allowed = topkGroup * (numExperts / nGroup);
  if (topK > allowed) {
    const limit = nGroup > 1 ? ` (topkGroup=${topkGroup} of nGroup=${nGroup} groups of ${numExperts / nGroup} experts)` : '';
    throw new AttrError(`${where}: topK=${topK} is larger than the ${allowed} experts the group limit allows${limit}`);
  }
}

/** Shape checks of (x [N, H], gateWeight [E, H], expertBias [E]); returns N, H, E. */
function routerShapes(op: string, x: TensorMeta, w: TensorMeta, bias: TensorMeta): { n: number; h: number; e: number } {
  if (x.shape.length !== 2) throw new ShapeError(`${op}: 'x' must have rank 2 [tokens, hidden], got ${describeShape(x.shape)}`);
  const [n, h] = x.shape as [number, number];
  if (w.shape.length !== 2 || w.shape[1] !== h || w.shape[0]! < 1) {
    throw new ShapeError(`${op}: 'gateWeight' must have shape [experts, ${h}] (hidden ${h} from x ${describeShape(x.shape)}), got ${describeShape(w.shape)}`);
  }
  const e = w.shape[0]!;
  if (bias.shape.length !== 1 || bias.shape[0] !== e) {
    throw new ShapeError(`${op}: 'expertBias' must have shape [${e}] (one per expert of gateWeight), got ${describeShape(bias.shape)}`);
  }
  return { n, h, e };
}

const f32 = (x: Tensor): Tensor => (x.dtype === 'f32' ? x : cast(x, 'f32'));

/**
 * The group limit on biased scores b [N, E]: entries of groups outside each token's topkGroup best
 * (by the sum of their top-2 values; ties to the lower group) become 0.0.
 */
export function maskGroups(b: Tensor, nGroup: number, topkGroup: number): Tensor {
  const [n, e] = b.shape as [number, number];
  const size = e / nGroup;
  const grouped = reshape(b, [n, nGroup, size]);
  // A group of one expert has no second value: its score is its one value.
  const groupScore = sum(topk(grouped, Math.min(2, size)).values, -1); // [N, G]
  const chosen = topk(groupScore, topkGroup).indices; // [N, topkGroup]
  const keepGroup = greater(sum(oneHot(chosen, nGroup, 'f32'), 1), 0); // [N, G]
  return reshape(where(reshape(keepGroup, [n, nGroup, 1]), grouped, 0), [n, e]);
}

/** w = s[idx], normalized and scaled (the selected scores -> routing weights). */
function finishWeights(selected: Tensor, a: MoeRouterAttrs): Tensor {
  const w = a.normTopkProb ? div(selected, add(sum(selected, -1, { keepDims: true }), 1e-20)) : selected;
  return mul(w, a.routedScalingFactor);
}

defineOp<MoeRouterAttrs>({
  name: 'moeRouter',
  doc:
    'MoE router (MODEL_SPEC §4): fp32 gate projection, sigmoid/softmax scores, expert bias for selection only, ' +
    'group-limited top-k (group score = sum of top-2, others masked to 0.0), stable top-k (ties to the lower index), ' +
    'normalization and routed scaling. x [N, H] (any float), gateWeight [E, H], expertBias [E] -> weights [N, topK] f32, ' +
    'indices [N, topK] i32, scores [N, E] f32',
  inputs: [
    { name: 'x', dtypes: FLOAT_DTYPES },
    { name: 'gateWeight', dtypes: FLOAT_DTYPES },
    { name: 'expertBias', dtypes: FLOAT_DTYPES },
  ],
  attrs: {
    topK: { kind: 'int', min: 1 },
    nGroup: { kind: 'int', min: 1, default: 1 },
    topkGroup: { kind: 'int', min: 1, optional: true },
    scoreFunction: { kind: 'enum', values: ['sigmoid', 'softmax'], default: 'sigmoid' },
    normTopkProb: { kind: 'bool', default: true },
    routedScalingFactor: { kind: 'number', default: 1 },
  },
  normalize: ([x, w, bias], a) => {
    const { e } = routerShapes('moeRouter', x!, w!, bias!);
    const topkGroup = a.topkGroup ?? a.nGroup;
    if (!Number.isFinite(a.routedScalingFactor)) {
      throw new AttrError(`moeRouter: attribute 'routedScalingFactor' expected a finite number, got ${a.routedScalingFactor}`);
    }
    checkRoutingShape('moeRouter', e, { topK: a.topK, nGroup: a.nGroup, topkGroup });
    return { ...a, topkGroup };
  },
  infer: ([x, w, bias], a) => {
    const { n, e } = routerShapes('moeRouter', x!, w!, bias!);
    return [
      { shape: [n, a.topK], dtype: 'f32' },
      { shape: [n, a.topK], dtype: 'i32' },
      { shape: [n, e], dtype: 'f32' },
    ];
  },
  // With c = routedScalingFactor, S = sum_k s_k + 1e-20 and w_k = c s_k / S (normalized):
  //   d w_k / d s_j = c (delta_kj / S - s_k / S^2)  =>  ds_j = (c dw_j - sum_k dw_k w_k) / S
  // (unnormalized: ds_j = c dw_j). The selected-score gradients are scattered into the scores'
  // gradient, then through the score function (sigmoid: s (1 - s); softmax: s (ds - sum(ds s)))
  // to the logits, and through the f32 matmul to x and W_gate. The bias only chose: no gradient.
  grad: ({ inputs: [x, gw], outputs: [w, idx, s], dys: [dw, , ds], attrs: a }) => {
    const dwf = f32(dw!);
    let dSelected: Tensor;
    if (a.normTopkProb) {
      const total = add(sum(takeAlongAxis(s!, idx!, 1), -1, { keepDims: true }), 1e-20);
      dSelected = div(sub(mul(dwf, a.routedScalingFactor), sum(mul(dwf, w!), -1, { keepDims: true })), total);
    } else {
      dSelected = mul(dwf, a.routedScalingFactor);
    }
    const dScores = scatterAddAlongAxis(f32(ds!), idx!, dSelected, 1);
    const dLogits =
      a.scoreFunction === 'sigmoid'
        ? mul(dScores, mul(s!, sub(1, s!)))
        : mul(s!, sub(dScores, sum(mul(dScores, s!), -1, { keepDims: true })));
    return [matmul(dLogits, f32(gw!)), matmul(dLogits, f32(x!), { transposeA: true }), null];
  },
  composite: ([x, gw, bias], a) => {
    const logits = matmul(f32(x!), f32(gw!), { transposeB: true });
    const s = a.scoreFunction === 'sigmoid' ? sigmoid(logits) : softmax(logits, -1);
    let b = add(s, f32(bias!));
    if (a.topkGroup < a.nGroup) b = maskGroups(b, a.nGroup, a.topkGroup);
    const idx = topk(b, a.topK).indices;
    return [finishWeights(takeAlongAxis(s, idx, 1), a), idx, s];
  },
});

export interface MoeRouterOptions {
  /** Experts per token (num_experts_per_tok). */
  readonly topK: number;
  /** n_group (default 1: no group limit). */
  readonly nGroup?: number;
  /** topk_group (default nGroup). */
  readonly topkGroup?: number;
  /** score_function (default 'sigmoid'). */
  readonly scoreFunction?: ScoreFunction;
  /** norm_topk_prob (default true). */
  readonly normTopkProb?: boolean;
  /** routed_scaling_factor (default 1). */
  readonly routedScalingFactor?: number;
}

export interface MoeRouting {
  /** Routing weights [N, topK] f32, best expert first. */
  readonly weights: Tensor;
  /** Chosen experts [N, topK] i32, best first (ties to the lower index). */
  readonly indices: Tensor;
  /** Unbiased scores of every expert [N, E] f32. */
  readonly scores: Tensor;
}

/**
 * Routes N tokens x [N, H] (any float dtype; the router computes in f32) with the gate weight
 * [E, H] and the expert bias [E] (MODEL_SPEC §4). See the file comment for the math.
 */
export function moeRouter(x: Tensor, gateWeight: Tensor, expertBias: Tensor, options: MoeRouterOptions): MoeRouting {
  const [weights, indices, scores] = runOp('moeRouter', [x, gateWeight, expertBias], {
    topK: options.topK,
    nGroup: options.nGroup ?? 1,
    ...(options.topkGroup !== undefined ? { topkGroup: options.topkGroup } : {}),
    scoreFunction: options.scoreFunction ?? 'sigmoid',
    normTopkProb: options.normTopkProb ?? true,
    routedScalingFactor: options.routedScalingFactor ?? 1,
  });
  return { weights: weights!, indices: indices!, scores: scores! };
}
