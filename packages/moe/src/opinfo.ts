/**
 * OpInfo records of the MoE ops for the conformance suite (@ring-linear/conformance): samples over
 * odd sizes, size-1 dims, empty experts and zero tokens, constructed exact ties, every dtype each op
 * supports; float64 references written from MODEL_SPEC §4; gradient checks; error inputs.
 *
 *   import '@ring-linear/backend-cpu';
 *   import { moeOpInfos } from '@ring-linear/moe/opinfo';
 *   await runConformance({ backend: 'webgpu', opInfos: moeOpInfos });
 *
 * Importing this module defines the ops.
 */
import type { DType } from '@ring-linear/core';
import type { ErrorInput, HostTensor, OpInfo, SampleInput, SampleRng } from '@ring-linear/conformance';
import './ops/index.js';

function host(shape: readonly number[], dtype: DType, values: ArrayLike<number>): HostTensor {
  return { shape: [...shape], dtype, values: Float64Array.from(values) };
}

const f = Math.fround;

/** Descending with ties to the lower index (NaN-free inputs): the k best positions. */
function topIndices(vals: readonly number[], k: number): number[] {
  return vals
    .map((v, i) => [v, i] as const)
    .sort((a, b) => (b[0] !== a[0] ? b[0] - a[0] : a[1] - b[1]))
    .slice(0, k)
    .map(([, i]) => i);
}

/** Distinct random experts per token: [N*K] ids. */
function routingIds(rng: SampleRng, n: number, k: number, e: number): number[] {
  const out: number[] = [];
  for (let t = 0; t < n; t++) {
    const p = Array.from({ length: e }, (_, i) => i);
    for (let i = e - 1; i > 0; i--) {
      const j = rng.int(0, i + 1);
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    out.push(...p.slice(0, k));
  }
  return out;
}

/** The stable sort of slots by expert (ids outside [0, E) last): the dispatch plan by definition. */
function planOf(ids: readonly number[], e: number) {
  const bucket = (v: number) => (v >= 0 && v < e ? v : e);
  const rowToSlot = ids.map((_, j) => j).sort((a, b) => bucket(ids[a]!) - bucket(ids[b]!) || a - b);
  const slotToRow = new Array<number>(ids.length);
  rowToSlot.forEach((j, r) => (slotToRow[j] = r));
  const counts = new Array<number>(e).fill(0);
  for (const v of ids) if (v >= 0 && v < e) counts[v]++;
  const offsets = [0];
  for (let i = 0; i < e; i++) offsets.push(offsets[i]! + counts[i]!);
  return { rowToSlot, slotToRow, counts, offsets };
}

// ---------------------------------------------------------------------------------------------
// moeRouter

interface RouterCase {
  readonly n: number;
  readonly h: number;
  readonly e: number;
  readonly attrs: Record<string, unknown>;
  readonly desc: string;
  /** Small integers: many exact ties (no gradient check there). */
  readonly ties?: boolean;
}

const ROUTER_CASES: readonly RouterCase[] = [
  { n: 5, h: 4, e: 8, attrs: { topK: 2 }, desc: 'sigmoid, no groups' },
  { n: 7, h: 5, e: 12, attrs: { topK: 3, nGroup: 4, topkGroup: 2, routedScalingFactor: 2.5 }, desc: 'groups 4 keep 2, scale 2.5' },
  { n: 4, h: 3, e: 6, attrs: { topK: 2, scoreFunction: 'softmax', normTopkProb: false }, desc: 'softmax, unnormalized' },
  { n: 1, h: 1, e: 3, attrs: { topK: 1 }, desc: 'one token, hidden 1, top-1' },
  { n: 3, h: 6, e: 6, attrs: { topK: 2, nGroup: 6, topkGroup: 3 }, desc: 'groups of one expert' },
  { n: 0, h: 4, e: 4, attrs: { topK: 2 }, desc: 'zero tokens' },
  { n: 9, h: 4, e: 16, attrs: { topK: 4, nGroup: 4, topkGroup: 2 }, desc: 'integer data: exact ties of experts and groups', ties: true },
  { n: 6, h: 3, e: 8, attrs: { topK: 3, scoreFunction: 'softmax' }, desc: 'integer data, softmax: exact ties', ties: true },
];

/** The router in float64 (MODEL_SPEC §4); selection on the spec's f32 values, outputs in float64. */
function routerReference([x, w, bias]: readonly HostTensor[], attrs: Record<string, unknown>): HostTensor[] {
  const [n, h] = x!.shape as [number, number];
  const e = w!.shape[0]!;
  const k = attrs.topK as number;
  const nGroup = (attrs.nGroup as number | undefined) ?? 1;
  const topkGroup = (attrs.topkGroup as number | undefined) ?? nGroup;
  const softmax = attrs.scoreFunction === 'softmax';
  const norm = (attrs.normTopkProb as boolean | undefined) ?? true;
  const scale = (attrs.routedScalingFactor as number | undefined) ?? 1;
  const weights: number[] = [];
  const indices: number[] = [];
  const scores: number[] = [];
  for (let t = 0; t < n; t++) {
    const logits: number[] = [];
    for (let j = 0; j < e; j++) {
      let acc = 0;
      for (let c = 0; c < h; c++) acc += x!.values[t * h + c]! * w!.values[j * h + c]!;
      logits.push(acc);
    }
    const soft = (ls: number[]) => {
      const m = Math.max(...ls);
      const ex = ls.map((l) => Math.exp(l - m));
      const z = ex.reduce((a, b) => a + b, 0);
      return ex.map((v) => v / z);
    };
    const s = softmax ? soft(logits) : logits.map((l) => 1 / (1 + Math.exp(-l)));
    const s32 = softmax ? soft(logits.map(f)).map(f) : logits.map((l) => f(1 / (1 + Math.exp(-f(l)))));
    let b = s32.map((v, j) => f(v + bias!.values[j]!));
    if (topkGroup < nGroup) {
      const size = e / nGroup;
      const gs: number[] = [];
      for (let g = 0; g < nGroup; g++) {
        const vals = b.slice(g * size, (g + 1) * size).sort((p, q) => q - p);
        gs.push(size >= 2 ? f(vals[0]! + vals[1]!) : vals[0]!);
      }
      const kept = new Set(topIndices(gs, topkGroup));
      b = b.map((v, j) => (kept.has(Math.floor(j / size)) ? v : 0));
    }
    const idx = topIndices(b, k);
    const sel = idx.map((j) => s[j]!);
    const total = sel.reduce((p, q) => p + q, 0);
    weights.push(...sel.map((v) => (norm ? v / (total + 1e-20) : v) * scale));
    indices.push(...idx);
    scores.push(...s);
  }
  return [host([n, k], 'f32', weights), host([n, k], 'i32', indices), host([n, e], 'f32', scores)];
}

function routerSample(rng: SampleRng, dtype: DType, c: RouterCase): SampleInput {
  if (c.ties) {
    // Integers for x and eighths for W: exact logits, so equal logits (frequent) tie exactly in
    // every implementation; biases zero or a few multiples of 2^-6.
    const w = rng.tensor([c.e, c.h], 'f32', { int: true, lo: -3, hi: 4 });
    return {
      inputs: [
        rng.tensor([c.n, c.h], dtype, { int: true, lo: -2, hi: 3 }),
        host(w.shape, 'f32', Array.from(w.values, (v) => v / 8)),
        host([c.e], 'f32', Array.from({ length: c.e }, () => (rng.next() < 0.5 ? 0 : rng.int(-2, 3) / 64))),
      ],
      attrs: c.attrs,
      desc: c.desc,
      noGrad: true,
    };
  }
  return {
    inputs: [rng.tensor([c.n, c.h], dtype), rng.tensor([c.e, c.h], 'f32', { scale: 0.6 }), rng.tensor([c.e], 'f32', { scale: 0.05 })],
    attrs: c.attrs,
    desc: c.desc,
  };
}

const routerErrors = (rng: SampleRng): ErrorInput[] => {
  const x = rng.tensor([3, 6], 'f32');
  const w = (e: number, h = 6) => rng.tensor([e, h], 'f32');
  const b = (e: number) => rng.tensor([e], 'f32');
  return [
    {
      inputs: [x, w(16), b(16)], attrs: { topK: 5, nGroup: 4, topkGroup: 1 }, error: 'AttrError',
      message: /moeRouter: topK=5 is larger than the 4 experts the group limit allows \(topkGroup=1 of nGroup=4 groups of 4 experts\)/,
      desc: 'top-k larger than the experts the group limit allows',
    },
    { inputs: [x, w(8), b(8)], attrs: { topK: 9 }, error: 'AttrError', message: /moeRouter: topK=9 is larger than the 8 experts/, desc: 'top-k larger than E' },
    {
      inputs: [x, w(10), b(10)], attrs: { topK: 2, nGroup: 4, topkGroup: 2 }, error: 'AttrError',
      message: /moeRouter: 10 experts do not split into nGroup=4 equal groups/, desc: 'experts not divisible into groups',
    },
    { inputs: [x, w(8), b(8)], attrs: { topK: 2, nGroup: 2, topkGroup: 3 }, error: 'AttrError', message: /moeRouter: topkGroup=3 must be in \[1, nGroup=2\]/, desc: 'topkGroup > nGroup' },
    {
      inputs: [x, w(8, 5), b(8)], attrs: { topK: 2 }, error: 'ShapeError',
      message: /moeRouter: 'gateWeight' must have shape \[experts, 6\] \(hidden 6 from x \[3, 6\]\), got \[8, 5\]/, desc: 'gate weight of the wrong hidden size',
    },
    { inputs: [x, rng.tensor([8], 'f32'), b(8)], attrs: { topK: 2 }, error: 'ShapeError', message: /'gateWeight' must have shape \[experts, 6\].*got \[8\]/, desc: 'gate weight rank 1' },
    { inputs: [x, w(8), b(7)], attrs: { topK: 2 }, error: 'ShapeError', message: /moeRouter: 'expertBias' must have shape \[8\].*got \[7\]/, desc: 'bias of the wrong length' },
    { inputs: [rng.tensor([2, 3, 6], 'f32'), w(8), b(8)], attrs: { topK: 2 }, error: 'ShapeError', message: /moeRouter: 'x' must have rank 2 \[tokens, hidden\], got \[2, 3, 6\]/, desc: 'x rank 3' },
    { inputs: [rng.tensor([3, 6], 'i32'), w(8), b(8)], attrs: { topK: 2 }, error: 'DTypeError', message: /moeRouter: input 'x' must have dtype .*got i32/, desc: 'integer x' },
    { inputs: [x, w(8), b(8)], attrs: { topK: 2, scoreFunction: 'relu' }, error: 'AttrError', message: /moeRouter: attribute 'scoreFunction' expected one of 'sigmoid', 'softmax', got 'relu'/, desc: 'unknown score function' },
    { inputs: [x, w(8), b(8)], attrs: { topK: 0 }, error: 'AttrError', message: /moeRouter: attribute 'topK' expected an integer >= 1, got 0/, desc: 'topK 0' },
    { inputs: [x, w(8), b(8)], attrs: {}, error: 'AttrError', message: /moeRouter: attribute 'topK' is required/, desc: 'topK missing' },
    { inputs: [x, w(8), b(8)], attrs: { topK: 2 }, disposed: [1], error: 'DisposedTensorError', message: /was disposed/, desc: 'disposed gate weight' },
  ];
};

const routerInfo: OpInfo = {
  op: 'moeRouter',
  dtypes: ['f32', 'bf16', 'f16'],
  samples: (rng, dtype) => ROUTER_CASES.map((c) => routerSample(rng, dtype, c)),
  reference: routerReference,
  grad: { inputs: [0, 1] },
  errors: routerErrors,
};

// ---------------------------------------------------------------------------------------------
// moeDispatchPlan

const planInfo: OpInfo = {
  op: 'moeDispatchPlan',
  dtypes: ['i32'],
  samples: (rng) => {
    const routed = (n: number, k: number, e: number, desc: string): SampleInput => ({
      inputs: [host([n, k], 'i32', routingIds(rng, n, k, e))],
      attrs: { numExperts: e },
      desc,
    });
    return [
      routed(13, 3, 7, 'odd sizes'),
      routed(1, 1, 1, 'one token, one expert'),
      routed(20, 8, 16, 'top-8 of 16'),
      routed(5, 2, 40, 'more experts than slots (empty experts)'),
      routed(0, 4, 3, 'zero tokens'),
      { inputs: [host([4, 2], 'i32', [2, -1, 0, 5, 2, 0, 9, 1])], attrs: { numExperts: 5 }, desc: 'ids outside [0, E): trailing bucket' },
      { inputs: [host([6, 1], 'i32', [3, 3, 3, 3, 3, 3])], attrs: { numExperts: 4 }, desc: 'every token to one expert' },
    ];
  },
  reference: ([idx], attrs) => {
    const [n, k] = idx!.shape as [number, number];
    const e = attrs.numExperts as number;
    const p = planOf(Array.from(idx!.values), e);
    return [host([n, k], 'i32', p.slotToRow), host([n * k], 'i32', p.rowToSlot), host([e + 1], 'i32', p.offsets), host([e], 'i32', p.counts)];
  },
  exact: true,
  errors: (rng) => [
    { inputs: [host([6], 'i32', [0, 1, 2, 0, 1, 2])], attrs: { numExperts: 3 }, error: 'ShapeError', message: /moeDispatchPlan: 'indices' must have rank 2 \[tokens, topK\], got \[6\]/, desc: 'rank 1' },
    { inputs: [host([2, 2], 'i32', [0, 1, 1, 0])], attrs: { numExperts: 0 }, error: 'AttrError', message: /moeDispatchPlan: attribute 'numExperts' expected an integer >= 1, got 0/, desc: 'no experts' },
    { inputs: [rng.tensor([2, 2], 'f32')], attrs: { numExperts: 2 }, error: 'DTypeError', message: /moeDispatchPlan: input 'indices' must have dtype i32, got f32/, desc: 'float indices' },
  ],
};

// ---------------------------------------------------------------------------------------------
// moePermute, moeCombine

interface PlanCase {
  readonly n: number;
  readonly k: number;
  readonly e: number;
  readonly h: number;
  readonly desc: string;
}

const PLAN_CASES: readonly PlanCase[] = [
  { n: 7, k: 2, e: 5, h: 6, desc: 'odd sizes' },
  { n: 1, k: 1, e: 1, h: 1, desc: 'all size 1' },
  { n: 9, k: 4, e: 6, h: 3, desc: 'top-4 of 6' },
  { n: 0, k: 3, e: 4, h: 5, desc: 'zero tokens' },
];

function planInputs(rng: SampleRng, c: PlanCase) {
  const p = planOf(routingIds(rng, c.n, c.k, c.e), c.e);
  return { rowToSlot: host([c.n * c.k], 'i32', p.rowToSlot), slotToRow: host([c.n, c.k], 'i32', p.slotToRow), plan: p };
}

const permuteInfo: OpInfo = {
  op: 'moePermute',
  dtypes: ['f32', 'bf16', 'f16'],
  samples: (rng, dtype) =>
    PLAN_CASES.map((c) => {
      const p = planInputs(rng, c);
      return { inputs: [rng.tensor([c.n, c.h], dtype), p.rowToSlot, p.slotToRow], desc: c.desc };
    }),
  reference: ([x, r2s, s2r]) => {
    const [n, h] = x!.shape as [number, number];
    const k = s2r!.shape[1]!;
    const out: number[] = [];
    for (const j of r2s!.values) for (let c = 0; c < h; c++) out.push(x!.values[Math.floor(j / k) * h + c]!);
    return [host([n * k, h], x!.dtype, out)];
  },
  exact: true,
  grad: { inputs: [0] },
  errors: (rng) => [
    {
      inputs: [rng.tensor([3, 4], 'f32'), host([5], 'i32', [0, 1, 2, 3, 4]), host([3, 2], 'i32', [0, 1, 2, 3, 4, 5])],
      error: 'ShapeError', message: /moePermute: 'rowToSlot' must have shape \[6\] \(tokens 3 x topK 2\), got \[5\]/, desc: 'rowToSlot too short',
    },
    {
      inputs: [rng.tensor([3, 4], 'f32'), host([4], 'i32', [0, 1, 2, 3]), host([2, 2], 'i32', [0, 1, 2, 3])],
      error: 'ShapeError', message: /moePermute: 'slotToRow' must have shape \[3, topK\] \(one row per token\), got \[2, 2\]/, desc: 'slotToRow for another token count',
    },
  ],
};

const combineInfo: OpInfo = {
  op: 'moeCombine',
  dtypes: ['f32', 'bf16', 'f16'],
  samples: (rng, dtype) =>
    PLAN_CASES.map((c) => {
      const p = planInputs(rng, c);
      return { inputs: [rng.tensor([c.n * c.k, c.h], dtype), rng.tensor([c.n, c.k], 'f32', { positive: true, scale: 0.5 }), p.slotToRow, p.rowToSlot], desc: c.desc };
    }),
  reference: ([yp, w, s2r]) => [combineRef(yp!, w!, s2r!, false)],
  magnitude: ([yp, w, s2r]) => [combineRef(yp!, w!, s2r!, true).values],
  grad: { inputs: [0, 1] },
  errors: (rng) => [
    {
      inputs: [rng.tensor([5, 4], 'f32'), rng.tensor([3, 2], 'f32'), host([3, 2], 'i32', [0, 1, 2, 3, 4, 5]), host([6], 'i32', [0, 1, 2, 3, 4, 5])],
      error: 'ShapeError', message: /moeCombine: the permuted buffer must have 6 rows \(tokens 3 x topK 2, dropless\), got 5/, desc: 'yp rows != N*K',
    },
    {
      inputs: [rng.tensor([6, 4], 'f32'), rng.tensor([3, 2], 'f32'), host([2, 3], 'i32', [0, 1, 2, 3, 4, 5]), host([6], 'i32', [0, 1, 2, 3, 4, 5])],
      error: 'ShapeError', message: /moeCombine: 'slotToRow' must have the shape of 'weights' \[3, 2\], got \[2, 3\]/, desc: 'slotToRow shape',
    },
  ],
};

function combineRef(yp: HostTensor, w: HostTensor, s2r: HostTensor, abs: boolean): HostTensor {
  const [n, k] = w.shape as [number, number];
  const h = yp.shape[1]!;
  const g = abs ? Math.abs : (v: number) => v;
  const out = new Float64Array(n * h);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < k; i++) {
      const r = s2r.values[t * k + i]!;
      for (let c = 0; c < h; c++) out[t * h + c] += g(w.values[t * k + i]!) * g(yp.values[r * h + c]!);
    }
  }
  return host([n, h], yp.dtype, out);
}

// ---------------------------------------------------------------------------------------------
// groupedMatmul, groupedMatmulAtB

interface GroupedCase {
  readonly counts: readonly number[];
  readonly inDim: number;
  readonly out: number;
  readonly stacked: boolean;
  readonly transposeB: boolean;
  readonly desc: string;
  readonly large?: boolean;
}

const GROUPED_CASES: readonly GroupedCase[] = [
  { counts: [3, 0, 5, 1], inDim: 7, out: 6, stacked: false, transposeB: true, desc: 'list, an empty and a one-row expert' },
  { counts: [3, 0, 5, 1], inDim: 7, out: 6, stacked: true, transposeB: true, desc: 'stacked, an empty and a one-row expert' },
  { counts: [4, 2], inDim: 5, out: 3, stacked: false, transposeB: false, desc: 'list, W [in, out]' },
  { counts: [4, 2], inDim: 5, out: 3, stacked: true, transposeB: false, desc: 'stacked, W [in, out]' },
  { counts: [6], inDim: 1, out: 1, stacked: false, transposeB: true, desc: 'one expert, in = out = 1' },
  { counts: [0, 0, 0], inDim: 4, out: 5, stacked: true, transposeB: true, desc: 'zero rows' },
  { counts: [13, 6, 7, 4, 1, 9], inDim: 33, out: 17, stacked: false, transposeB: true, desc: 'larger (blocks and tails)', large: true },
];

function offsetsOf(counts: readonly number[]): number[] {
  const o = [0];
  for (const c of counts) o.push(o[o.length - 1]! + c);
  return o;
}

function groupedRef(inputs: readonly HostTensor[], tB: boolean, abs: boolean): HostTensor {
  const [x, offsets, ...ws] = inputs as [HostTensor, HostTensor, ...HostTensor[]];
  const [rows, inDim] = x.shape as [number, number];
  const stacked = ws.length === 1 && ws[0]!.shape.length === 3;
  const wShape = stacked ? ws[0]!.shape.slice(1) : ws[0]!.shape;
  const out = tB ? wShape[0]! : wShape[1]!;
  const size = inDim * out;
  const g = abs ? Math.abs : (v: number) => v;
  const y = new Float64Array(rows * out);
  for (let e = 0; e + 1 < offsets.values.length; e++) {
    const w = stacked ? ws[0]!.values.subarray(e * size, (e + 1) * size) : ws[e]!.values;
    for (let r = offsets.values[e]!; r < offsets.values[e + 1]!; r++) {
      for (let j = 0; j < out; j++) {
        let s = 0;
        for (let i = 0; i < inDim; i++) s += g(x.values[r * inDim + i]!) * g(tB ? w[j * inDim + i]! : w[i * out + j]!);
        y[r * out + j] = s;
      }
    }
  }
  return host([rows, out], x.dtype, y);
}

const groupedInfo: OpInfo = {
  op: 'groupedMatmul',
  dtypes: ['f32', 'bf16', 'f16'],
  samples: (rng, dtype) =>
    GROUPED_CASES.map((c) => {
      const e = c.counts.length;
      const rows = c.counts.reduce((a, b) => a + b, 0);
      const wShape = c.transposeB ? [c.out, c.inDim] : [c.inDim, c.out];
      const ws = c.stacked ? [rng.tensor([e, ...wShape], dtype, { scale: 0.5 })] : Array.from({ length: e }, () => rng.tensor(wShape, dtype, { scale: 0.5 }));
      return {
        inputs: [rng.tensor([rows, c.inDim], dtype), host([e + 1], 'i32', offsetsOf(c.counts)), ...ws],
        attrs: { transposeB: c.transposeB },
        desc: c.desc,
        ...(c.large ? { noGrad: true } : {}),
      };
    }),
  reference: (inputs, attrs) => [groupedRef(inputs, attrs.transposeB !== false, false)],
  magnitude: (inputs, attrs) => [groupedRef(inputs, attrs.transposeB !== false, true).values],
  grad: true,
  errors: (rng) => {
    const x = rng.tensor([5, 4], 'f32');
    const off = host([4], 'i32', [0, 2, 2, 5]);
    return [
      {
        inputs: [x, off, rng.tensor([3, 4], 'f32'), rng.tensor([3, 4], 'f32')], error: 'ShapeError',
        message: /groupedMatmul: expected the weights as one stacked tensor \[3, \., \.\] or 3 tensors of rank 2 \(E = 3 from offsets\), got 2 tensor\(s\)/,
        desc: 'two weights for three experts',
      },
      {
        inputs: [x, off, rng.tensor([2, 3, 4], 'f32')], error: 'ShapeError',
        message: /groupedMatmul: stacked weights must have 3 experts on axis 0 \(offsets has 4 entries\), got \[2, 3, 4\]/, desc: 'stacked weights for two experts',
      },
      {
        inputs: [x, off, rng.tensor([3, 3, 5], 'f32')], error: 'ShapeError',
        message: /groupedMatmul: each expert's weight must have shape \[out, 4\] \(in = 4 from x \[5, 4\], transposeB = true\), got \[3, 5\]/, desc: 'weights of the wrong in-dim',
      },
      {
        inputs: [x, off, rng.tensor([3, 4], 'f32'), rng.tensor([3, 4], 'f32'), rng.tensor([2, 4], 'f32')], error: 'ShapeError',
        message: /groupedMatmul: every expert's weight must have rank 2 and one shape; expert 0 has \[3, 4\], expert 2 has \[2, 4\]/, desc: 'one expert of another shape',
      },
      {
        inputs: [x, off, rng.tensor([3, 3, 4], 'bf16')], error: 'DTypeError',
        message: /groupedMatmul: every weight must have the dtype of the activations \(f32\), weight 0 has bf16/, desc: 'weights in another dtype',
      },
      { inputs: [x, rng.tensor([4], 'f32'), rng.tensor([3, 3, 4], 'f32')], error: 'DTypeError', message: /groupedMatmul: 'offsets' must have dtype i32, got f32/, desc: 'float offsets' },
      { inputs: [x, host([1], 'i32', [0]), rng.tensor([1, 3, 4], 'f32')], error: 'ShapeError', message: /groupedMatmul: 'offsets' must have shape \[E\+1\] with E >= 1/, desc: 'offsets of one entry' },
      { inputs: [rng.tensor([5], 'f32'), off, rng.tensor([3, 3, 4], 'f32')], error: 'ShapeError', message: /groupedMatmul: 'x' must have rank 2 \[rows, in\], got \[5\]/, desc: 'x rank 1' },
      { inputs: [x, off], error: 'AttrError', message: /groupedMatmul: expected at least 3 input tensors, got 2/, desc: 'no weights' },
    ];
  },
};

function atbRef([a, b, offsets]: readonly HostTensor[], separate: boolean, abs: boolean): HostTensor[] {
  const [, p] = a!.shape as [number, number];
  const q = b!.shape[1]!;
  const e = offsets!.values.length - 1;
  const g = abs ? Math.abs : (v: number) => v;
  const out = new Float64Array(e * p * q);
  for (let x = 0; x < e; x++) {
    for (let r = offsets!.values[x]!; r < offsets!.values[x + 1]!; r++) {
      for (let i = 0; i < p; i++) for (let j = 0; j < q; j++) out[(x * p + i) * q + j] += g(a!.values[r * p + i]!) * g(b!.values[r * q + j]!);
    }
  }
  if (!separate) return [host([e, p, q], a!.dtype, out)];
  return Array.from({ length: e }, (_, x) => host([p, q], a!.dtype, out.subarray(x * p * q, (x + 1) * p * q)));
}

const atbInfo: OpInfo = {
  op: 'groupedMatmulAtB',
  dtypes: ['f32', 'bf16', 'f16'],
  samples: (rng, dtype) =>
    [
      { counts: [4, 0, 5], p: 3, q: 5, separate: false, desc: 'stacked, an empty expert' },
      { counts: [4, 0, 5], p: 3, q: 5, separate: true, desc: 'separate outputs' },
      { counts: [1], p: 1, q: 1, separate: false, desc: 'all size 1' },
      { counts: [0, 0], p: 2, q: 3, separate: false, desc: 'zero rows (zeros)' },
    ].map((c) => {
      const rows = c.counts.reduce((x, y) => x + y, 0);
      return {
        inputs: [rng.tensor([rows, c.p], dtype), rng.tensor([rows, c.q], dtype), host([c.counts.length + 1], 'i32', offsetsOf(c.counts))],
        attrs: { separate: c.separate },
        desc: c.desc,
      };
    }),
  reference: (inputs, attrs) => atbRef(inputs, attrs.separate === true, false),
  magnitude: (inputs, attrs) => atbRef(inputs, attrs.separate === true, true).map((h) => h.values),
  grad: true,
  errors: (rng) => [
    {
      inputs: [rng.tensor([4, 2], 'f32'), rng.tensor([5, 3], 'f32'), host([2], 'i32', [0, 4])], error: 'ShapeError',
      message: /groupedMatmulAtB: 'a' \[R, P\] and 'b' \[R, Q\] must be rank 2 with the same rows, got \[4, 2\] and \[5, 3\]/, desc: 'rows differ',
    },
    {
      inputs: [rng.tensor([4, 2], 'f32'), rng.tensor([4, 3], 'bf16'), host([2], 'i32', [0, 4])], error: 'DTypeError',
      message: /groupedMatmulAtB: 'a' and 'b' must have the same dtype, got f32 and bf16/, desc: 'dtypes differ',
    },
  ],
};

/** One record per MoE op. */
export const moeOpInfos: OpInfo[] = [routerInfo, planInfo, permuteInfo, combineInfo, groupedInfo, atbInfo];
