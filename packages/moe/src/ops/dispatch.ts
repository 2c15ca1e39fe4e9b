/**
 * Dropless token dispatch and combine (MODEL_SPEC §4, §7: deterministic permutation and summation
 * order).
 *
 * A token n routed to experts idx[n, 0..K-1] owns K "slots" j = n*K + k. The plan sorts the N*K
 * slots by expert, stably: by expert, then by slot (token order, then k). Row r of the permuted
 * buffer holds slot rowToSlot[r]; slot j sits at row slotToRow[j]; expert e owns rows
 * offsets[e] .. offsets[e+1]-1. Every slot gets a row (dropless: no capacity factor), so the
 * permuted activations have exactly N*K rows.
 *
 *   moeDispatchPlan(indices [N, K], numExperts) -> slotToRow [N, K], rowToSlot [N*K],
 *                                                  offsets [E+1], tokensPerExpert [E]   (all i32)
 *   moePermute(x [N, H], rowToSlot, slotToRow)   -> xp [N*K, H],  xp[r] = x[rowToSlot[r] / K]
 *   moeCombine(yp [N*K, H], weights [N, K], slotToRow, rowToSlot)
 *                                                -> y [N, H],  y[n] = sum_{k=0..K-1} w[n,k] yp[slotToRow[n,k]]
 *
 * The combine sums in the fixed order k = 0..K-1 (f32 or wider, rounded once), whatever the batch.
 *
 * Indices come from the device; a kernel cannot raise on them. An expert id outside [0, E) goes to
 * a trailing bucket after every expert (rows offsets[E] ..), which no expert processes: its
 * contribution is 0. A row or slot index outside its range reads as a zero row.
 */
import {
  ShapeError,
  FLOAT_DTYPES,
  arange,
  cast,
  cumsum,
  defineOp,
  describeShape,
  div,
  full,
  gather,
  greaterEqual,
  less,
  logicalAnd,
  mul,
  oneHot,
  reshape,
  runOp,
  runOp1,
  scatterAdd,
  sliceAxis,
  sum,
  takeAlongAxis,
  where,
  zeros,
  type Tensor,
  type TensorMeta,
} from '@ring-linear/core';

const f32 = (x: Tensor): Tensor => (x.dtype === 'f32' ? x : cast(x, 'f32'));

interface PlanAttrs extends Record<string, unknown> {
  numExperts: number;
}

function indicesShape(op: string, idx: TensorMeta): [number, number] {
  if (idx.shape.length !== 2) throw new ShapeError(`${op}: 'indices' must have rank 2 [tokens, topK], got ${describeShape(idx.shape)}`);
  return idx.shape as [number, number];
}

defineOp<PlanAttrs>({
  name: 'moeDispatchPlan',
  doc:
    'stable counting sort of the N*K routing slots by expert (by expert, then token, then k): indices [N, K] i32 -> ' +
    'slotToRow [N, K], rowToSlot [N*K], offsets [E+1], tokensPerExpert [E] (i32); ids outside [0, E) go to a trailing bucket',
  inputs: [{ name: 'indices', dtypes: ['i32'] }],
  attrs: { numExperts: { kind: 'int', min: 1 } },
  infer: ([idx], { numExperts }) => {
    const [n, k] = indicesShape('moeDispatchPlan', idx!);
    return [
      { shape: [n, k], dtype: 'i32' },
      { shape: [n * k], dtype: 'i32' },
      { shape: [numExperts + 1], dtype: 'i32' },
      { shape: [numExperts], dtype: 'i32' },
    ];
  },
  nonDifferentiable: true,
  // Counting sort in core ops: a slot's row is its expert's start plus the number of earlier slots
  // of the same expert (an exclusive cumsum of one-hot rows). Memory N*K*(E+1) i32: a fallback.
  composite: ([idx], { numExperts: e }) => {
    const [n, k] = idx!.shape as [number, number];
    const slots = n * k;
    const flat = reshape(idx!, [slots]);
    const bucket = where(logicalAnd(greaterEqual(flat, 0), less(flat, e)), flat, e); // invalid -> E
    const hot = oneHot(bucket, e + 1, 'i32'); // [NK, E+1]
    const counts = sum(hot, 0); // [E+1]
    const starts = cumsum(counts, 0, { exclusive: true }); // [E+1]: offsets, and the trailing bucket's start
    const rank = reshape(takeAlongAxis(cumsum(hot, 0, { exclusive: true }), reshape(bucket, [slots, 1]), 1), [slots]);
    const row = runOp1('add', [gather(starts, bucket), rank]);
    const rowToSlot = scatterAdd(zeros([slots], 'i32'), 0, row, arange(0, slots, 1, 'i32'));
    return [reshape(row, [n, k]), rowToSlot, starts, sliceAxis(counts, 0, 0, e)];
  },
});

export interface DispatchPlan {
  /** Row of each slot in the permuted buffer [N, K] i32. */
  readonly slotToRow: Tensor;
  /** Slot (n*K + k) held by each permuted row [N*K] i32. */
  readonly rowToSlot: Tensor;
  /** Start row of each expert, then the end of the last: [E+1] i32 (offsets[0] = 0). */
  readonly offsets: Tensor;
  /** Rows (token assignments) per expert [E] i32: the load. */
  readonly tokensPerExpert: Tensor;
}

/** The deterministic dropless dispatch plan of routing indices [N, K] over `numExperts` experts. */
export function moeDispatchPlan(indices: Tensor, numExperts: number): DispatchPlan {
  const [slotToRow, rowToSlot, offsets, tokensPerExpert] = runOp('moeDispatchPlan', [indices], { numExperts });
  return { slotToRow: slotToRow!, rowToSlot: rowToSlot!, offsets: offsets!, tokensPerExpert: tokensPerExpert! };
}

/** Checks rowToSlot [N*K] and slotToRow [N, K] against N tokens; returns K. */
function planShapes(op: string, n: number, rowToSlot: TensorMeta, slotToRow: TensorMeta, rows: number): number {
  if (slotToRow.shape.length !== 2 || slotToRow.shape[0] !== n) {
    throw new ShapeError(`${op}: 'slotToRow' must have shape [${n}, topK] (one row per token), got ${describeShape(slotToRow.shape)}`);
  }
  const k = slotToRow.shape[1]!;
  if (rowToSlot.shape.length !== 1 || rowToSlot.shape[0] !== n * k) {
    throw new ShapeError(`${op}: 'rowToSlot' must have shape [${n * k}] (tokens ${n} x topK ${k}), got ${describeShape(rowToSlot.shape)}`);
  }
  if (rows !== n * k) {
    throw new ShapeError(`${op}: the permuted buffer must have ${n * k} rows (tokens ${n} x topK ${k}, dropless), got ${rows}`);
  }
  return k;
}

// ---------------------------------------------------------------------------------------------
// permute

defineOp<{}>({
  name: 'moePermute',
  doc: 'xp[r] = x[rowToSlot[r] / K]: tokens [N, H] copied into expert order [N*K, H] (out-of-range slots give zero rows)',
  inputs: [{ name: 'x', dtypes: FLOAT_DTYPES }, { name: 'rowToSlot', dtypes: ['i32'] }, { name: 'slotToRow', dtypes: ['i32'] }],
  infer: ([x, r2s, s2r]) => {
    if (x!.shape.length !== 2) throw new ShapeError(`moePermute: 'x' must have rank 2 [tokens, hidden], got ${describeShape(x!.shape)}`);
    const [n, h] = x!.shape as [number, number];
    const k = s2r!.shape[1] ?? 0;
    planShapes('moePermute', n, r2s!, s2r!, n * k);
    return [{ shape: [n * k, h], dtype: x!.dtype }];
  },
  // dx[n] = sum_k dxp[slotToRow[n, k]] in the fixed order k = 0..K-1: a combine with unit weights.
  grad: ({ inputs: [x, r2s, s2r], dys: [dxp] }) => {
    const ones = full(s2r!.shape, 1, 'f32');
    return [moeCombine(dxp!, ones, s2r!, r2s!), null, null];
  },
  composite: ([x, r2s, s2r]) => {
    const [n] = x!.shape as [number, number];
    const k = s2r!.shape[1]!;
    const valid = logicalAnd(greaterEqual(r2s!, 0), less(r2s!, n * k));
    return [gather(x!, where(valid, div(r2s!, k), n), 0)]; // token n is out of range: a zero row
  },
});

/** Copies tokens x [N, H] into expert order [N*K, H] following a dispatch plan. */
export function moePermute(x: Tensor, rowToSlot: Tensor, slotToRow: Tensor): Tensor {
  return runOp1('moePermute', [x, rowToSlot, slotToRow]);
}

// ---------------------------------------------------------------------------------------------
// combine

defineOp<{}>({
  name: 'moeCombine',
  doc:
    'y[n] = sum_{k=0..K-1} weights[n,k] * yp[slotToRow[n,k]] in that fixed order, computed in f32 or wider and rounded ' +
    "once to yp's dtype: yp [N*K, H], weights [N, K] -> [N, H]",
  inputs: [
    { name: 'yp', dtypes: FLOAT_DTYPES },
    { name: 'weights', dtypes: FLOAT_DTYPES },
    { name: 'slotToRow', dtypes: ['i32'] },
    { name: 'rowToSlot', dtypes: ['i32'] },
  ],
  infer: ([yp, w, s2r, r2s]) => {
    if (yp!.shape.length !== 2) throw new ShapeError(`moeCombine: 'yp' must have rank 2 [tokens*topK, hidden], got ${describeShape(yp!.shape)}`);
    if (w!.shape.length !== 2) throw new ShapeError(`moeCombine: 'weights' must have rank 2 [tokens, topK], got ${describeShape(w!.shape)}`);
    const [n, k] = w!.shape as [number, number];
    if (s2r!.shape.length !== 2 || s2r!.shape[0] !== n || s2r!.shape[1] !== k) {
      throw new ShapeError(`moeCombine: 'slotToRow' must have the shape of 'weights' ${describeShape(w!.shape)}, got ${describeShape(s2r!.shape)}`);
    }
    planShapes('moeCombine', n, r2s!, s2r!, yp!.shape[0]!);
    return [{ shape: [n, yp!.shape[1]!], dtype: yp!.dtype }];
  },
  // dyp[r] = w[slot r] * dy[token r] (a permute of dy, scaled per row);
  // dw[n, k] = dy[n] . yp[slotToRow[n, k]].
  grad: ({ inputs: [yp, w, s2r, r2s], dys: [dy] }) => {
    const [n, k] = w!.shape as [number, number];
    const rows = n * k;
    const dyf = f32(dy!);
    const slotValid = logicalAnd(greaterEqual(r2s!, 0), less(r2s!, rows));
    const rowWeight = gather(reshape(f32(w!), [rows]), where(slotValid, r2s!, rows), 0); // [R]; invalid -> 0
    const dyp = mul(moePermute(dyf, r2s!, s2r!), reshape(rowWeight, [rows, 1]));
    const picked = f32(gatherRows(yp!, s2r!)); // [N, K, H]
    const dw = sum(mul(picked, reshape(dyf, [n, 1, dyf.shape[1]!])), -1);
    return [dyp, dw, null, null];
  },
  composite: ([yp, w, s2r]) => {
    const [n, k] = w!.shape as [number, number];
    const picked = f32(gatherRows(yp!, s2r!)); // [N, K, H]
    const y = sum(mul(picked, reshape(f32(w!), [n, k, 1])), 1); // sums over k in order
    return [y.dtype === yp!.dtype ? y : cast(y, yp!.dtype)];
  },
});

/** yp[slotToRow] as [N, K, H]; out-of-range rows read as zeros (negative ones too, unlike gather's wrap). */
function gatherRows(yp: Tensor, s2r: Tensor): Tensor {
  const rows = yp.shape[0]!;
  return gather(yp, where(logicalAnd(greaterEqual(s2r, 0), less(s2r, rows)), s2r, rows), 0);
}

/**
 * Weighted combine of expert outputs yp [N*K, H] back to tokens [N, H]: y[n] = sum over k = 0..K-1
 * (fixed order) of weights[n, k] * yp[slotToRow[n, k]]; output in yp's dtype.
 */
export function moeCombine(yp: Tensor, weights: Tensor, slotToRow: Tensor, rowToSlot: Tensor): Tensor {
  return runOp1('moeCombine', [yp, weights, slotToRow, rowToSlot]);
}
