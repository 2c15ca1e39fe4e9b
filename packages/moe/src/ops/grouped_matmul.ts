/**
 * Grouped GEMM over all experts in one op (the expert FFNs of a dropless MoE).
 *
 *   groupedMatmul(x [R, in], weights, offsets [E+1]) -> y [R, out]
 *     rows offsets[e] .. offsets[e+1]-1 of x are multiplied by expert e's weight:
 *     y[r] = x[r] @ W_e^T   (W_e [out, in], the Linear layout; transposeB = true, the default)
 *     y[r] = x[r] @ W_e     (W_e [in, out]; transposeB = false)
 *   weights: ONE stacked tensor [E, out, in] (or [E, in, out]), or a LIST of E tensors [out, in]
 *   (so per-expert parameters are used where they are, without a stacking copy). Rows outside
 *   [offsets[0], offsets[E]) give 0. offsets must be non-decreasing within [0, R] (the dispatch
 *   plan's are); otherwise the result is unspecified (a kernel cannot raise on device data).
 *
 *   groupedMatmulAtB(a [R, P], b [R, Q], offsets [E+1]) -> out_e = a_e^T b_e  [P, Q] per expert
 *     (the weight gradient), stacked [E, P, Q] or, with `separate`, E outputs [P, Q].
 *
 * Inputs are in one float dtype (x and the weights); accumulation is f32 or wider, rounded once.
 * The composites run one masked matmul per expert over all R rows: correct on any backend, but E
 * times the work of a kernel, which backends should register.
 */
import {
  DTypeError,
  ShapeError,
  FLOAT_DTYPES,
  arange,
  concat,
  defineOp,
  describeShape,
  greaterEqual,
  less,
  logicalAnd,
  matmul,
  reshape,
  runOp,
  runOp1,
  sliceAxis,
  tidy,
  add,
  where,
  type DType,
  type Tensor,
  type TensorMeta,
} from '@ring-linear/core';

export interface GroupedMatmulAttrs extends Record<string, unknown> {
  /** true (default): W_e is [out, in] and y = x W_e^T; false: W_e is [in, out] and y = x W_e. */
  transposeB: boolean;
}

interface GroupedLayout {
  /** Number of experts (offsets has E+1 entries). */
  readonly experts: number;
  /** One [E, ., .] tensor (true) or E rank-2 tensors (false). */
  readonly stacked: boolean;
  /** The [rows, cols] of each expert's weight as stored. */
  readonly weightShape: readonly [number, number];
}

function checkOffsets(op: string, offsets: TensorMeta): number {
  if (offsets.shape.length !== 1 || offsets.shape[0]! < 2) {
    throw new ShapeError(`${op}: 'offsets' must have shape [E+1] with E >= 1 experts (each expert's first row, then the end), got ${describeShape(offsets.shape)}`);
  }
  if (offsets.dtype !== 'i32') throw new DTypeError(`${op}: 'offsets' must have dtype i32, got ${offsets.dtype}`);
  return offsets.shape[0]! - 1;
}

function checkFloat(op: string, name: string, m: TensorMeta): void {
  if (!(FLOAT_DTYPES as readonly DType[]).includes(m.dtype)) {
    throw new DTypeError(`${op}: '${name}' must have a float dtype (${FLOAT_DTYPES.join('|')}), got ${m.dtype}`);
  }
}

/** Validates the weights (one stacked tensor or a list of E) against E; returns the layout. */
function weightLayout(op: string, experts: number, ws: readonly TensorMeta[], dtype: DType): GroupedLayout {
  const stacked = ws.length === 1 && ws[0]!.shape.length === 3;
  if (stacked) {
    const s = ws[0]!.shape;
    if (s[0] !== experts) {
      throw new ShapeError(`${op}: stacked weights must have ${experts} experts on axis 0 (offsets has ${experts + 1} entries), got ${describeShape(s)}`);
    }
  } else if (ws.length !== experts) {
    throw new ShapeError(
      `${op}: expected the weights as one stacked tensor [${experts}, ., .] or ${experts} tensors of rank 2 (E = ${experts} from offsets), got ${ws.length} tensor(s)` +
        (ws.length ? ` of shape ${describeShape(ws[0]!.shape)}` : ''),
    );
  }
  const first = stacked ? ws[0]!.shape.slice(1) : ws[0]!.shape;
  // A plain loop, messages built only on failure: a decode step validates 3 lists of E weights per MoE layer.
  for (let e = 0; e < ws.length; e++) {
    const w = ws[e]!;
    if (w.dtype !== dtype) {
      checkFloat(op, `weight ${e}`, w);
      throw new DTypeError(`${op}: every weight must have the dtype of the activations (${dtype}), weight ${e} has ${w.dtype} (use cast())`);
    }
    if (!stacked && (w.shape.length !== 2 || w.shape[0] !== first[0] || w.shape[1] !== first[1])) {
      throw new ShapeError(`${op}: every expert's weight must have rank 2 and one shape; expert 0 has ${describeShape(first)}, expert ${e} has ${describeShape(w.shape)}`);
    }
  }
  if (first.length !== 2) throw new ShapeError(`${op}: each expert's weight must have rank 2, got ${describeShape(first)}`);
  return { experts, stacked, weightShape: [first[0]!, first[1]!] };
}

function groupedMatmulShapes(metas: readonly TensorMeta[], tB: boolean): { layout: GroupedLayout; rows: number; out: number } {
  const op = 'groupedMatmul';
  if (metas.length < 3) throw new ShapeError(`${op}: expected x, offsets and at least one weight tensor, got ${metas.length} input(s)`);
  const [x, offsets, ...ws] = metas as [TensorMeta, TensorMeta, ...TensorMeta[]];
  checkFloat(op, 'x', x);
  if (x.shape.length !== 2) throw new ShapeError(`${op}: 'x' must have rank 2 [rows, in], got ${describeShape(x.shape)}`);
  const experts = checkOffsets(op, offsets);
  const layout = weightLayout(op, experts, ws, x.dtype);
  const [r0, r1] = layout.weightShape;
  const inDim = tB ? r1 : r0;
  const out = tB ? r0 : r1;
  if (inDim !== x.shape[1]) {
    const want = tB ? `[out, ${x.shape[1]}]` : `[${x.shape[1]}, out]`;
    throw new ShapeError(
      `${op}: each expert's weight must have shape ${want} (in = ${x.shape[1]} from x ${describeShape(x.shape)}, transposeB = ${tB}), got ${describeShape(layout.weightShape)}`,
    );
  }
  return { layout, rows: x.shape[0]!, out };
}

/** Rows of a [R, .] tensor that belong to expert e (bool [R, 1]), from the device offsets. */
function segmentMask(offsets: Tensor, e: number, rows: number): Tensor {
  const r = arange(0, rows, 1, 'i32');
  const inSeg = logicalAnd(greaterEqual(r, sliceAxis(offsets, 0, e, e + 1)), less(r, sliceAxis(offsets, 0, e + 1, e + 2)));
  return reshape(inSeg, [rows, 1]);
}

/** Expert e's weight from a stacked tensor or a list. */
function expertWeight(ws: readonly Tensor[], e: number): Tensor {
  if (ws.length === 1 && ws[0]!.rank === 3) {
    const w = ws[0]!;
    return reshape(sliceAxis(w, 0, e, e + 1), w.shape.slice(1));
  }
  return ws[e]!;
}

/** Sums fn(e) over the experts, freeing each step's intermediates as it goes. */
function sumOverExperts(experts: number, fn: (e: number) => Tensor): Tensor {
  let acc: Tensor | null = null;
  for (let e = 0; e < experts; e++) {
    const prev: Tensor | null = acc;
    acc = tidy(() => (prev ? add(prev, fn(e)) : fn(e)));
    prev?.dispose();
  }
  return acc!;
}

defineOp<GroupedMatmulAttrs>({
  name: 'groupedMatmul',
  doc:
    'grouped GEMM: rows offsets[e]..offsets[e+1]-1 of x [R, in] times expert e weight (transposeB: W_e [out, in], y = x W_e^T); ' +
    'weights stacked [E, out, in] or a list of E [out, in]; inputs (x, offsets [E+1] i32, ...weights); rows outside every segment give 0',
  inputs: [],
  variadic: { minInputs: 3 },
  attrs: { transposeB: { kind: 'bool', default: true } },
  infer: (metas, { transposeB }) => {
    const { rows, out } = groupedMatmulShapes(metas, transposeB);
    return [{ shape: [rows, out], dtype: metas[0]!.dtype }];
  },
  // y_e = x_e op(W_e): dx_e = dy_e op(W_e)^T (the same op with transposeB flipped);
  // dW_e = dy_e^T x_e for W_e [out, in], x_e^T dy_e for W_e [in, out] (groupedMatmulAtB).
  grad: ({ inputs: [x, offsets, ...ws], dys: [dy], attrs: { transposeB } }) => {
    const g = dy!.dtype === x!.dtype ? dy! : runOp1('cast', [dy!], { dtype: x!.dtype });
    const dx = groupedMatmul(g, ws, offsets!, { transposeB: !transposeB });
    const separate = !(ws.length === 1 && ws[0]!.rank === 3);
    const dws = transposeB ? groupedMatmulAtB(g, x!, offsets!, { separate }) : groupedMatmulAtB(x!, g, offsets!, { separate });
    return [dx, null, ...dws];
  },
  composite: ([x, offsets, ...ws], { transposeB }) => {
    const rows = x!.shape[0]!;
    const experts = offsets!.shape[0]! - 1;
    return [
      sumOverExperts(experts, (e) =>
        matmul(where(segmentMask(offsets!, e, rows), x!, 0), expertWeight(ws, e), { transposeB }),
      ),
    ];
  },
});

export interface GroupedMatmulOptions {
  /** true (default): W_e is [out, in] (Linear layout), y = x W_e^T; false: W_e is [in, out]. */
  readonly transposeB?: boolean;
}

/**
 * Grouped GEMM: y[r] = x[r] @ W_e^T for the rows r of expert e's segment [offsets[e], offsets[e+1]).
 * `weights` is one stacked tensor [E, out, in] or a list of E tensors [out, in] (all x's dtype).
 */
export function groupedMatmul(x: Tensor, weights: Tensor | readonly Tensor[], offsets: Tensor, options: GroupedMatmulOptions = {}): Tensor {
  const ws = Array.isArray(weights) ? (weights as readonly Tensor[]) : [weights as Tensor];
  return runOp1('groupedMatmul', [x, offsets, ...ws], { transposeB: options.transposeB ?? true });
}

// ---------------------------------------------------------------------------------------------
// groupedMatmulAtB

export interface GroupedMatmulAtBAttrs extends Record<string, unknown> {
  /** E outputs [P, Q] (true) or one stacked [E, P, Q] (false, the default). */
  separate: boolean;
}

defineOp<GroupedMatmulAtBAttrs>({
  name: 'groupedMatmulAtB',
  doc: 'per-expert a_e^T b_e over the row segments of offsets: a [R, P], b [R, Q], offsets [E+1] -> [E, P, Q] (or E outputs [P, Q] when separate)',
  inputs: [{ name: 'a', dtypes: FLOAT_DTYPES }, { name: 'b', dtypes: FLOAT_DTYPES }, { name: 'offsets', dtypes: ['i32'] }],
  attrs: { separate: { kind: 'bool', default: false } },
  infer: ([a, b, offsets], { separate }) => {
    const op = 'groupedMatmulAtB';
    if (a!.shape.length !== 2 || b!.shape.length !== 2 || a!.shape[0] !== b!.shape[0]) {
      throw new ShapeError(`${op}: 'a' [R, P] and 'b' [R, Q] must be rank 2 with the same rows, got ${describeShape(a!.shape)} and ${describeShape(b!.shape)}`);
    }
    if (a!.dtype !== b!.dtype) throw new DTypeError(`${op}: 'a' and 'b' must have the same dtype, got ${a!.dtype} and ${b!.dtype} (use cast())`);
    const experts = checkOffsets(op, offsets!);
    const p = a!.shape[1]!;
    const q = b!.shape[1]!;
    if (separate) return Array.from({ length: experts }, () => ({ shape: [p, q], dtype: a!.dtype }));
    return [{ shape: [experts, p, q], dtype: a!.dtype }];
  },
  // out_e = a_e^T b_e: da_e = b_e dOut_e^T, db_e = a_e dOut_e (grouped GEMMs with dOut as weights).
  grad: ({ inputs: [a, b, offsets], dys }) => [
    groupedMatmul(b!, dys, offsets!, { transposeB: true }),
    groupedMatmul(a!, dys, offsets!, { transposeB: false }),
    null,
  ],
  composite: ([a, b, offsets], { separate }) => {
    const rows = a!.shape[0]!;
    const experts = offsets!.shape[0]! - 1;
    const outs: Tensor[] = [];
    for (let e = 0; e < experts; e++) {
      outs.push(tidy(() => matmul(where(segmentMask(offsets!, e, rows), a!, 0), b!, { transposeA: true })));
    }
    if (separate) return outs;
    const [p, q] = [a!.shape[1]!, b!.shape[1]!];
    return [concat(outs.map((o) => reshape(o, [1, p, q])), 0)];
  },
});

export interface GroupedMatmulAtBOptions {
  /** Return E tensors [P, Q] instead of one [E, P, Q] (default false). */
  readonly separate?: boolean;
}

/** Per-expert a_e^T b_e over the row segments [offsets[e], offsets[e+1]) (the weight gradient). */
export function groupedMatmulAtB(a: Tensor, b: Tensor, offsets: Tensor, options: GroupedMatmulAtBOptions = {}): Tensor[] {
  return runOp('groupedMatmulAtB', [a, b, offsets], { separate: options.separate ?? false });
}
