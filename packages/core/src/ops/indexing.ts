/**
 * Indexing ops: gather / indexSelect, takeAlongAxis, scatterAdd, scatterAddAlongAxis, oneHot,
 * embedding, topk, cumsum.
 *
 * Index rule (gather, indexSelect, takeAlongAxis, scatterAdd, scatterAddAlongAxis, embedding):
 * an index into an axis of length n is valid in [-n, n); negative indices wrap (i + n). A GPU
 * backend cannot read the indices before the op runs, so an invalid index is not an error: a
 * gather reads 0 for it (false for bool) and a scatter ignores it. Indices are i32.
 * oneHot is the exception: only [0, depth) is valid (so -1 gives an all-zero row, as in TF).
 *
 * Scatters are deterministic: for each destination, updates are added in increasing update
 * order (the order of the index list), accumulated in float64 on the CPU and rounded once.
 *
 * Error classes as in shape.ts: AttrError for attributes out of range for the input (k, axis,
 * depth), ShapeError for tensors whose shapes do not fit together, DTypeError for dtypes.
 */
import { defineOp, type TensorMeta } from '../op.js';
import { FLOAT_DTYPES, type DType } from '../dtype/dtype.js';
import { runOp, runOp1, tensor } from '../engine.js';
import { AttrError, ShapeError, describeShape } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { reshape, zeros } from './shape_basic.js';
import { assertSameDType } from './util.js';
import { axisOf } from './shape.js';

const ADDABLE: readonly DType[] = [...FLOAT_DTYPES, 'i32'];
const ORDERED: readonly DType[] = [...FLOAT_DTYPES, 'i32', 'u8'];

interface AxisAttrs extends Record<string, unknown> {
  axis: number;
}

// ---------------------------------------------------------------------------------------------
// gather / indexSelect

defineOp<AxisAttrs>({
  name: 'gather',
  doc: 'out = x.shape[:axis] + indices.shape + x.shape[axis+1:]; indices in [-n, n) wrap, others read 0',
  inputs: [{ name: 'x' }, { name: 'indices', dtypes: ['i32'] }],
  attrs: { axis: { kind: 'int', default: 0 } },
  normalize: ([x], a) => ({ axis: axisOf('gather', x!, a.axis) }),
  infer: ([x, idx], { axis }) => [
    { shape: [...x!.shape.slice(0, axis), ...idx!.shape, ...x!.shape.slice(axis + 1)], dtype: x!.dtype },
  ],
  // Rows of dy go back to the rows they were read from; repeated indices accumulate.
  grad: ({ inputs: [x, idx], dys: [dy], attrs: { axis } }) => {
    const rows = [...x!.shape.slice(0, axis), idx!.size, ...x!.shape.slice(axis + 1)];
    return [scatterAdd(zeros(x!.shape, dy!.dtype), axis, reshape(idx!, [idx!.size]), reshape(dy!, rows)), null];
  },
});

/**
 * Picks entries of x along `axis` (default 0) with an i32 index tensor of any shape:
 * out.shape = x.shape[:axis] + indices.shape + x.shape[axis+1:]. Indices in [-n, n) (negative
 * wrap); any other index gives 0 in the output.
 */
export function gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
  return runOp1('gather', [x, indices], { axis });
}

/** torch.index_select: gather with a 1-D index list (same index rule). */
export function indexSelect(x: Tensor, axis: number, indices: Tensor): Tensor {
  if (indices.rank !== 1) throw new ShapeError(`indexSelect: 'indices' must have rank 1, got shape ${describeShape(indices.shape)}`);
  return gather(x, indices, axis);
}

// ---------------------------------------------------------------------------------------------
// takeAlongAxis / scatterAddAlongAxis (torch.gather / torch.scatter_add)

/** indices must have x's rank and x's sizes on every axis but `axis`. */
function checkAlongAxis(op: string, x: TensorMeta, idx: TensorMeta, axis: number, what = 'indices'): void {
  const ok = idx.shape.length === x.shape.length && idx.shape.every((d, j) => j === axis || d === x.shape[j]);
  if (!ok) {
    throw new ShapeError(
      `${op}: '${what}' must have the rank of x ${describeShape(x.shape)} and its sizes on every axis but ${axis}, got ${describeShape(idx.shape)}`,
    );
  }
}

defineOp<AxisAttrs>({
  name: 'takeAlongAxis',
  doc: 'torch.gather: out[..., j, ...] = x[..., indices[..., j, ...], ...] along axis; out.shape = indices.shape',
  inputs: [{ name: 'x' }, { name: 'indices', dtypes: ['i32'] }],
  attrs: { axis: { kind: 'int', default: 0 } },
  normalize: ([x], a) => ({ axis: axisOf('takeAlongAxis', x!, a.axis) }),
  infer: ([x, idx], { axis }) => {
    checkAlongAxis('takeAlongAxis', x!, idx!, axis);
    return [{ shape: idx!.shape, dtype: x!.dtype }];
  },
  grad: ({ inputs: [x, idx], dys: [dy], attrs: { axis } }) => [
    scatterAddAlongAxis(zeros(x!.shape, dy!.dtype), idx!, dy!, axis),
    null,
  ],
});

/**
 * torch.gather / numpy.take_along_axis: indices has x's rank and x's sizes except along `axis`;
 * out[i][j][k] = x[i][indices[i][j][k]][k] for axis 1. Same index rule as gather.
 */
export function takeAlongAxis(x: Tensor, indices: Tensor, axis: number): Tensor {
  return runOp1('takeAlongAxis', [x, indices], { axis });
}

defineOp<AxisAttrs>({
  name: 'scatterAddAlongAxis',
  doc: 'torch.scatter_add: out = x; out[..., indices[..., j, ...], ...] += updates[..., j, ...]; invalid indices ignored',
  inputs: [{ name: 'x', dtypes: ADDABLE }, { name: 'indices', dtypes: ['i32'] }, { name: 'updates', dtypes: ADDABLE }],
  attrs: { axis: { kind: 'int', default: 0 } },
  normalize: ([x], a) => ({ axis: axisOf('scatterAddAlongAxis', x!, a.axis) }),
  infer: ([x, idx, upd], { axis }) => {
    assertSameDType('scatterAddAlongAxis', [x!, upd!], ['x', 'updates']);
    checkAlongAxis('scatterAddAlongAxis', x!, idx!, axis);
    if (upd!.shape.length !== idx!.shape.length || upd!.shape.some((d, j) => d !== idx!.shape[j])) {
      throw new ShapeError(
        `scatterAddAlongAxis: 'updates' must have the shape of 'indices' ${describeShape(idx!.shape)}, got ${describeShape(upd!.shape)}`,
      );
    }
    return [{ shape: x!.shape, dtype: x!.dtype }];
  },
  grad: ({ inputs: [, idx], dys: [dy], attrs: { axis } }) => [dy!, null, takeAlongAxis(dy!, idx!, axis)],
});

/**
 * torch.scatter_add (out of place): a copy of x with updates[..., j, ...] added at
 * [..., indices[..., j, ...], ...] along `axis`. indices and updates have the same shape, x's
 * rank and x's sizes except along `axis`. Invalid indices are ignored; repeats accumulate.
 */
export function scatterAddAlongAxis(x: Tensor, indices: Tensor, updates: Tensor, axis: number): Tensor {
  return runOp1('scatterAddAlongAxis', [x, indices, updates], { axis });
}

// ---------------------------------------------------------------------------------------------
// scatterAdd (torch.index_add)

defineOp<AxisAttrs>({
  name: 'scatterAdd',
  doc: 'torch.index_add: out = x; out[..., indices[j], ...] += updates[..., j, ...] along axis; invalid indices ignored',
  inputs: [{ name: 'x', dtypes: ADDABLE }, { name: 'indices', dtypes: ['i32'] }, { name: 'updates', dtypes: ADDABLE }],
  attrs: { axis: { kind: 'int', default: 0 } },
  normalize: ([x], a) => ({ axis: axisOf('scatterAdd', x!, a.axis) }),
  infer: ([x, idx, upd], { axis }) => {
    assertSameDType('scatterAdd', [x!, upd!], ['x', 'updates']);
    if (idx!.shape.length !== 1) throw new ShapeError(`scatterAdd: 'indices' must have rank 1, got shape ${describeShape(idx!.shape)}`);
    const want = x!.shape.map((d, j) => (j === axis ? idx!.shape[0]! : d));
    if (upd!.shape.length !== want.length || upd!.shape.some((d, j) => d !== want[j])) {
      throw new ShapeError(
        `scatterAdd: 'updates' must have shape ${describeShape(want)} (x ${describeShape(x!.shape)} with axis ${axis} ` +
          `replaced by the ${idx!.shape[0]} indices), got ${describeShape(upd!.shape)}`,
      );
    }
    return [{ shape: x!.shape, dtype: x!.dtype }];
  },
  grad: ({ inputs: [, idx], dys: [dy], attrs: { axis } }) => [dy!, null, gather(dy!, idx!, axis)],
});

/**
 * torch.index_add (out of place): a copy of x with row j of `updates` (its slice j along
 * `axis`) added at row indices[j]. Duplicates accumulate in increasing j; invalid indices
 * (outside [-n, n)) are ignored.
 */
export function scatterAdd(x: Tensor, axis: number, indices: Tensor, updates: Tensor): Tensor {
  return runOp1('scatterAdd', [x, indices, updates], { axis });
}

// ---------------------------------------------------------------------------------------------
// oneHot

interface OneHotAttrs extends Record<string, unknown> {
  depth: number;
  dtype: DType;
}

defineOp<OneHotAttrs>({
  name: 'oneHot',
  doc: 'out[..., c] = (indices[...] == c) for c in [0, depth); indices outside [0, depth) give an all-zero row',
  inputs: [{ name: 'indices', dtypes: ['i32'] }],
  attrs: { depth: { kind: 'int', min: 0 }, dtype: { kind: 'dtype', default: 'f32' } },
  infer: ([idx], a) => [{ shape: [...idx!.shape, a.depth], dtype: a.dtype }],
  nonDifferentiable: true,
  // Fallback: compare against 0..depth-1 (written from the host) and cast the booleans.
  composite: ([idx], { depth, dtype }) => {
    const classes = tensor(Int32Array.from({ length: depth }, (_, i) => i), [depth], 'i32', idx!.live('oneHot').backend);
    const hit = runOp1('equal', [reshape(idx!, [...idx!.shape, 1]), classes]);
    return [dtype === 'bool' ? hit : runOp1('cast', [hit], { dtype, saturate: false })];
  },
});

/** One-hot rows of length `depth` (dtype default f32); indices outside [0, depth) give zeros. */
export function oneHot(indices: Tensor, depth: number, dtype: DType = 'f32'): Tensor {
  return runOp1('oneHot', [indices], { depth, dtype });
}

// ---------------------------------------------------------------------------------------------
// embedding

defineOp<{}>({
  name: 'embedding',
  doc: 'rows of weight [V, D] picked by i32 ids of any shape -> [...ids.shape, D]; ids in [-V, V) wrap, others give zero rows',
  inputs: [{ name: 'ids', dtypes: ['i32'] }, { name: 'weight', dtypes: FLOAT_DTYPES }],
  infer: ([ids, w]) => {
    if (w!.shape.length !== 2) throw new ShapeError(`embedding: 'weight' must have rank 2 [V, D], got shape ${describeShape(w!.shape)}`);
    return [{ shape: [...ids!.shape, w!.shape[1]!], dtype: w!.dtype }];
  },
  // Each id's row of dy is added into its row of the weight gradient; ids get none.
  grad: ({ inputs: [ids, w], dys: [dy] }) => {
    const d = w!.shape[1]!;
    return [null, scatterAdd(zeros(w!.shape, dy!.dtype), 0, reshape(ids!, [ids!.size]), reshape(dy!, [ids!.size, d]))];
  },
  composite: ([ids, w]) => [runOp1('gather', [w!, ids!], { axis: 0 })],
});

/**
 * Embedding lookup: weight [V, D] (float), ids (i32, any shape) -> [...ids.shape, D]. The same
 * index rule as gather on axis 0 (ids in [-V, V), negative wrap; others give zero rows).
 */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  return runOp1('embedding', [ids, weight]);
}

// ---------------------------------------------------------------------------------------------
// topk

interface TopkAttrs extends Record<string, unknown> {
  k: number;
  axis: number;
  largest: boolean;
}

defineOp<TopkAttrs>({
  name: 'topk',
  doc:
    'the k largest (or smallest) entries along an axis, sorted (descending for largest); stable: ties go to the lower ' +
    'index; NaN ranks above every number (first when largest, last when smallest); outputs values and i32 indices',
  inputs: [{ name: 'x', dtypes: ORDERED }],
  attrs: { k: { kind: 'int' }, axis: { kind: 'int', default: -1 }, largest: { kind: 'bool', default: true } },
  normalize: ([x], a) => {
    const axis = axisOf('topk', x!, a.axis);
    const n = x!.shape[axis]!;
    if (a.k < 0 || a.k > n) {
      throw new AttrError(`topk: k must be in [0, ${n}] (axis ${axis} of ${describeShape(x!.shape)}), got ${a.k}`);
    }
    return { k: a.k, axis, largest: a.largest };
  },
  infer: ([x], { k, axis }) => {
    const shape = x!.shape.map((d, j) => (j === axis ? k : d));
    return [{ shape, dtype: x!.dtype }, { shape, dtype: 'i32' }];
  },
  // Only the values carry gradient: each goes back to the position it came from.
  grad: ({ inputs: [x], outputs: [, idx], dys: [dv], attrs: { axis } }) => [
    scatterAddAlongAxis(zeros(x!.shape, dv!.dtype), idx!, dv!, axis),
  ],
});

export interface TopkOptions {
  /** Axis to select along (default -1). */
  axis?: number;
  /** true (default): the k largest, descending; false: the k smallest, ascending. */
  largest?: boolean;
}

/**
 * The k largest (or smallest) entries along an axis and their i32 indices, sorted. Ties go to
 * the lower index (stable; MODEL_SPEC §4's router relies on it). NaN counts as larger than every
 * number, +inf included. k must be in [0, n].
 */
export function topk(x: Tensor, k: number, options: TopkOptions = {}): { values: Tensor; indices: Tensor } {
  const [values, indices] = runOp('topk', [x], { k, axis: options.axis ?? -1, largest: options.largest ?? true });
  return { values: values!, indices: indices! };
}

// ---------------------------------------------------------------------------------------------
// cumsum

interface CumsumAttrs extends Record<string, unknown> {
  axis: number;
  exclusive: boolean;
  reverse: boolean;
}

defineOp<CumsumAttrs>({
  name: 'cumsum',
  doc: 'running sum along an axis (exclusive: without the element itself; reverse: from the end); i32 wraps on overflow',
  inputs: [{ name: 'x', dtypes: ADDABLE }],
  attrs: { axis: { kind: 'int' }, exclusive: { kind: 'bool', default: false }, reverse: { kind: 'bool', default: false } },
  normalize: ([x], a) => ({ ...a, axis: axisOf('cumsum', x!, a.axis) }),
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  // y_i = sum_{j<=i} x_j  =>  dx_j = sum_{i>=j} dy_i: the same cumsum run the other way.
  grad: ({ dys: [dy], attrs }) => [cumsum(dy!, attrs.axis, { exclusive: attrs.exclusive, reverse: !attrs.reverse })],
});

export interface CumsumOptions {
  /** Leave each element out of its own sum (the first output is 0). */
  exclusive?: boolean;
  /** Sum from the end of the axis. */
  reverse?: boolean;
}

/** Running sum along `axis` (floats and i32; the CPU accumulates floats in float64). */
export function cumsum(x: Tensor, axis: number, options: CumsumOptions = {}): Tensor {
  return runOp1('cumsum', [x], { axis, exclusive: options.exclusive ?? false, reverse: options.reverse ?? false });
}
