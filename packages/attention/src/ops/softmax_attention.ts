/**
 * Softmax attention with grouped-query heads (MODEL_SPEC §3): causal by default, packed variable-
 * length sequences via cuSeqlens, and decode against a KV cache (queries sit after the cached keys).
 *
 *   q [B, Tq, H, D], k [B, Tk, Hkv, D], v [B, Tk, Hkv, Dv], H % Hkv == 0: query head h reads kv
 *   head floor(h / (H / Hkv)).
 *   out[b, i, h] = sum_j softmax_j(scale * q_i . k_j) v_j over the keys query i may see
 *   lse[b, h, i] = log sum_j exp(scale * q_i . k_j)   (f32; the backward pass needs it)
 *
 * Positions: key j sits at position j; query i at kvOffset + i (default kvLen - Tq, i.e. the queries
 * are the last Tq positions); causal means key position <= query position. Only the first kvLen keys
 * are valid (a cache buffer with spare capacity). Packed: q and k share the offsets, positions restart
 * at each sequence and no key crosses a boundary.
 *
 * Fused kernels are flash-style (tiled over keys with an online softmax, no Tq x Tk matrix); the
 * composite below is the plain formula, blocked over queries to bound its memory.
 */
import {
  AttrError,
  DTypeError,
  ShapeError,
  add,
  cast,
  concat,
  defineOp,
  describeShape,
  exp,
  logsumexp,
  matmul,
  mul,
  pad,
  reshape,
  runOp,
  slice,
  sub,
  sum,
  transpose,
  where,
  type Tensor,
  type TensorMeta,
} from '@ring-linear/core';
import { ACT_DTYPES, assertRank4, checkCuSeqlens, constantLike, cuSeqlensAttr } from './common.js';

export interface SoftmaxAttentionAttrs extends Record<string, unknown> {
  scale: number;
  causal: boolean;
  cuSeqlens: number[] | null;
  /** Number of valid keys (a prefix of k and v). */
  kvLen: number;
  /** Position of query 0. */
  kvOffset: number;
}

const schema = {
  scale: { kind: 'number', optional: true },
  causal: { kind: 'bool', default: true },
  cuSeqlens: { kind: 'ints', default: null },
  kvLen: { kind: 'int', optional: true },
  kvOffset: { kind: 'int', optional: true },
} as const;

interface Dims {
  B: number;
  Tq: number;
  Tk: number;
  H: number;
  Hkv: number;
  D: number;
  Dv: number;
}

function checkSoftmax(op: string, [q, k, v]: readonly TensorMeta[]): Dims {
  const layout = '[batch, time, heads, head_dim]';
  assertRank4(op, 'q', q!, layout);
  assertRank4(op, 'k', k!, layout);
  assertRank4(op, 'v', v!, layout);
  const [B, Tq, H, D] = q!.shape as [number, number, number, number];
  const [Bk, Tk, Hkv, Dk] = k!.shape as [number, number, number, number];
  if (B < 1 || Tq < 1 || H < 1 || D < 1) {
    throw new ShapeError(`${op}: q must have at least one batch entry, token, head and channel, got shape ${describeShape(q!.shape)}`);
  }
  if (Bk !== B || v!.shape[0] !== B) {
    throw new ShapeError(`${op}: q, k and v must have the same batch size, got shapes ${describeShape(q!.shape)}, ${describeShape(k!.shape)}, ${describeShape(v!.shape)}`);
  }
  if (Tk < 1) throw new ShapeError(`${op}: k must hold at least one key, got shape ${describeShape(k!.shape)}`);
  if (v!.shape[1] !== Tk || v!.shape[2] !== Hkv) {
    throw new ShapeError(`${op}: v must have k's time and head dims [${B}, ${Tk}, ${Hkv}, ...], got ${describeShape(v!.shape)}`);
  }
  if (Hkv < 1 || H % Hkv !== 0) {
    throw new ShapeError(
      `${op}: the number of query heads (${H}) must be a multiple of the number of kv heads (${Hkv}) for grouped-query attention, shapes q ${describeShape(q!.shape)}, k ${describeShape(k!.shape)}`,
    );
  }
  if (Dk !== D) {
    throw new ShapeError(`${op}: head_dim mismatch: q has head_dim ${D}, k has ${Dk} (shapes ${describeShape(q!.shape)} and ${describeShape(k!.shape)})`);
  }
  const Dv = v!.shape[3]!;
  if (Dv < 1) throw new ShapeError(`${op}: v must have head_dim >= 1, got ${describeShape(v!.shape)}`);
  if (q!.dtype !== k!.dtype || q!.dtype !== v!.dtype) {
    throw new DTypeError(`${op}: q, k and v must have the same dtype, got ${q!.dtype}, ${k!.dtype}, ${v!.dtype} (use cast())`);
  }
  return { B, Tq, Tk, H, Hkv, D, Dv };
}

function normalizeSoftmax(op: string) {
  return (metas: readonly TensorMeta[], a: SoftmaxAttentionAttrs): SoftmaxAttentionAttrs => {
    const { B, Tq, Tk, D } = checkSoftmax(op, metas);
    const scale = a.scale ?? 1 / Math.sqrt(D);
    if (!Number.isFinite(scale)) throw new AttrError(`${op}: attribute 'scale' expected a finite number, got ${scale}`);
    if (a.cuSeqlens) {
      if (B !== 1) throw new ShapeError(`${op}: packed sequences (cuSeqlens) need batch size 1, got q shape [${metas[0]!.shape.join(', ')}]`);
      if (Tq !== Tk) throw new ShapeError(`${op}: packed sequences (cuSeqlens) need as many keys as queries, got ${Tq} queries and ${Tk} keys`);
      if ((a.kvLen !== undefined && a.kvLen !== Tk) || (a.kvOffset !== undefined && a.kvOffset !== 0)) {
        throw new AttrError(`${op}: 'kvLen'/'kvOffset' (decode against a cache) cannot be combined with 'cuSeqlens' (packed prefill)`);
      }
      return { scale, causal: a.causal, cuSeqlens: checkCuSeqlens(op, a.cuSeqlens, Tq), kvLen: Tk, kvOffset: 0 };
    }
    const kvLen = a.kvLen ?? Tk;
    if (kvLen < 1 || kvLen > Tk) throw new AttrError(`${op}: 'kvLen' must be in [1, ${Tk}] (the keys held by k), got ${kvLen}`);
    const kvOffset = a.kvOffset ?? Math.max(kvLen - Tq, 0);
    if (kvOffset < 0) throw new AttrError(`${op}: 'kvOffset' (the position of query 0) must be >= 0, got ${kvOffset}`);
    return { scale, causal: a.causal, cuSeqlens: null, kvLen, kvOffset };
  };
}

defineOp<SoftmaxAttentionAttrs>({
  name: 'softmaxAttention',
  doc:
    'GQA softmax attention (MODEL_SPEC §3): q [B,Tq,H,D], k [B,Tk,Hkv,D], v [B,Tk,Hkv,Dv] -> out [B,Tq,H,Dv] (q dtype), ' +
    'lse [B,H,Tq] f32; causal by default, packed sequences via cuSeqlens, query i at position kvOffset + i, first kvLen keys valid',
  inputs: [
    { name: 'q', dtypes: ACT_DTYPES },
    { name: 'k', dtypes: ACT_DTYPES },
    { name: 'v', dtypes: ACT_DTYPES },
  ],
  attrs: schema,
  normalize: normalizeSoftmax('softmaxAttention'),
  infer: (metas) => {
    const { B, Tq, H, Dv } = checkSoftmax('softmaxAttention', metas);
    return [
      { shape: [B, Tq, H, Dv], dtype: metas[0]!.dtype },
      { shape: [B, H, Tq], dtype: 'f32' },
    ];
  },
  grad: ({ inputs: [q, k, v], outputs: [out, lse], dys: [dOut, dLse], attrs }) => {
    const [dq, dk, dv] = runOp('softmaxAttentionBackward', [q!, k!, v!, out!, lse!, dOut!, dLse!], attrs);
    return [dq!, dk!, dv!];
  },
  composite: ([q, k, v], attrs) => softmaxAttentionComposite(q!, k!, v!, attrs),
});

defineOp<SoftmaxAttentionAttrs>({
  name: 'softmaxAttentionBackward',
  doc:
    'gradients of softmaxAttention: (q, k, v, out, lse, dOut, dLse) -> (dq, dk, dv); probabilities recomputed from lse, ' +
    'dS = P * (dP - rowsum(dOut * out) + dLse)',
  inputs: [
    { name: 'q', dtypes: ACT_DTYPES },
    { name: 'k', dtypes: ACT_DTYPES },
    { name: 'v', dtypes: ACT_DTYPES },
    { name: 'out', dtypes: ACT_DTYPES },
    { name: 'lse', dtypes: ['f32'] },
    { name: 'dOut', dtypes: ACT_DTYPES },
    { name: 'dLse', dtypes: ['f32'] },
  ],
  attrs: schema,
  normalize: normalizeSoftmax('softmaxAttentionBackward'),
  infer: (metas) => {
    const op = 'softmaxAttentionBackward';
    const { B, Tq, H, Dv } = checkSoftmax(op, metas);
    const [q, k, v, out, lse, dOut, dLse] = metas;
    const outShape = [B, Tq, H, Dv];
    for (const [name, m, want] of [['out', out!, outShape], ['dOut', dOut!, outShape], ['lse', lse!, [B, H, Tq]], ['dLse', dLse!, [B, H, Tq]]] as const) {
      if (m.shape.length !== want.length || m.shape.some((d, i) => d !== want[i])) {
        throw new ShapeError(`${op}: '${name}' must have shape ${describeShape(want)}, got ${describeShape(m.shape)}`);
      }
    }
    return [
      { shape: q!.shape, dtype: q!.dtype },
      { shape: k!.shape, dtype: k!.dtype },
      { shape: v!.shape, dtype: v!.dtype },
    ];
  },
  composite: ([q, k, v, out, lse, dOut, dLse], attrs) => softmaxAttentionBackwardComposite(q!, k!, v!, out!, lse!, dOut!, dLse!, attrs),
});

// ---------------------------------------------------------------------------------------------
// Composites

/** Queries per block in the composites: bounds the score matrix to [.., QUERY_BLOCK, keys]. */
const QUERY_BLOCK = 256;

const f32 = (x: Tensor) => (x.dtype === 'f32' ? x : cast(x, 'f32'));
const back = (x: Tensor, dtype: Tensor['dtype']) => (x.dtype === dtype ? x : cast(x, dtype));

/** One block of queries and the key range it reads. Positions are relative to the block's sequence. */
interface Block {
  q0: number;
  nq: number;
  k0: number;
  nk: number;
  /** Position of query q0 and of key k0. */
  qPos: number;
  kPos: number;
}

function blocksOf(a: SoftmaxAttentionAttrs, Tq: number): Block[] {
  const out: Block[] = [];
  const segs: [number, number, number][] = a.cuSeqlens
    ? a.cuSeqlens.slice(0, -1).map((s, i) => [s, a.cuSeqlens![i + 1]!, 0])
    : [[0, Tq, a.kvOffset]];
  for (const [s, e, offset] of segs) {
    const keyEnd = a.cuSeqlens ? e : a.kvLen; // keys of this sequence: [keyStart, keyEnd)
    const keyStart = a.cuSeqlens ? s : 0;
    for (let q0 = s; q0 < e; q0 += QUERY_BLOCK) {
      const nq = Math.min(QUERY_BLOCK, e - q0);
      const qPos = offset + (q0 - s);
      // Causal: the block's last query sees keys up to its own position.
      const last = a.causal ? Math.min(keyEnd, keyStart + qPos + nq) : keyEnd;
      out.push({ q0, nq, k0: keyStart, nk: last - keyStart, qPos, kPos: 0 });
    }
  }
  return out;
}

/** Boolean [nq, nk] mask of the keys each query of a block may see, or null when all. */
function causalMaskOf(like: Tensor, b: Block, causal: boolean): Tensor | null {
  if (!causal || b.qPos >= b.kPos + b.nk - 1) return null;
  const m = new Uint8Array(b.nq * b.nk);
  for (let i = 0; i < b.nq; i++) for (let j = 0; j < b.nk; j++) m[i * b.nk + j] = b.kPos + j <= b.qPos + i ? 1 : 0;
  return constantLike(like, m, [b.nq, b.nk], 'bool');
}

interface Grouped {
  /** [B, Hkv, G, Tq, D] */
  Q: Tensor;
  /** [B, Hkv, 1, Tk, D] */
  K: Tensor;
  /** [B, Hkv, 1, Tk, Dv] */
  V: Tensor;
}

function grouped(q: Tensor, k: Tensor, v: Tensor): Grouped {
  const [B, Tq, H, D] = q.shape as [number, number, number, number];
  const [, Tk, Hkv] = k.shape as [number, number, number, number];
  const G = H / Hkv;
  return {
    Q: transpose(reshape(f32(q), [B, Tq, Hkv, G, D]), [0, 2, 3, 1, 4]),
    K: reshape(transpose(f32(k), [0, 2, 1, 3]), [B, Hkv, 1, Tk, D]),
    V: reshape(transpose(f32(v), [0, 2, 1, 3]), [B, Hkv, 1, Tk, v.shape[3]!]),
  };
}

/** Rows [r0, r0 + n) of axis 3 of a rank-5 tensor. */
const rows5 = (x: Tensor, r0: number, n: number) => slice(x, [0, 0, 0, r0, 0], [-1, -1, -1, n, -1]);

/** Masked scaled scores of one block: [B, Hkv, G, nq, nk]. */
function blockScores(g: Grouped, b: Block, a: SoftmaxAttentionAttrs): { Qb: Tensor; Kb: Tensor; Vb: Tensor; scores: Tensor } {
  const Qb = rows5(g.Q, b.q0, b.nq);
  const Kb = rows5(g.K, b.k0, b.nk);
  const Vb = rows5(g.V, b.k0, b.nk);
  let scores = mul(matmul(Qb, Kb, { transposeB: true }), a.scale);
  const mask = causalMaskOf(scores, b, a.causal);
  if (mask) scores = where(mask, scores, -Infinity);
  return { Qb, Kb, Vb, scores };
}

/** [B, Hkv, G, Tq, X] -> [B, Tq, H, X] */
function ungroup(x: Tensor): Tensor {
  const [B, Hkv, G, Tq, X] = x.shape as [number, number, number, number, number];
  return reshape(transpose(x, [0, 3, 1, 2, 4]), [B, Tq, Hkv * G, X]);
}

export function softmaxAttentionComposite(q: Tensor, k: Tensor, v: Tensor, a: SoftmaxAttentionAttrs): [Tensor, Tensor] {
  const [B, Tq, H] = q.shape as [number, number, number, number];
  const g = grouped(q, k, v);
  const outs: Tensor[] = [];
  const lses: Tensor[] = [];
  for (const b of blocksOf(a, Tq)) {
    const { Vb, scores } = blockScores(g, b, a);
    const lse = logsumexp(scores, -1, { keepDims: true });
    outs.push(matmul(exp(sub(scores, lse)), Vb));
    lses.push(lse);
  }
  const cat = (xs: Tensor[]) => (xs.length === 1 ? xs[0]! : concat(xs, 3));
  return [back(ungroup(cat(outs)), q.dtype), reshape(cat(lses), [B, H, Tq])];
}

export function softmaxAttentionBackwardComposite(
  q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dOut: Tensor, dLse: Tensor, a: SoftmaxAttentionAttrs,
): [Tensor, Tensor, Tensor] {
  const [B, Tq, H, D] = q.shape as [number, number, number, number];
  const [, Tk, Hkv] = k.shape as [number, number, number, number];
  const G = H / Hkv;
  const Dv = v.shape[3]!;
  const g = grouped(q, k, v);
  const O = transpose(reshape(f32(out), [B, Tq, Hkv, G, Dv]), [0, 2, 3, 1, 4]);
  const dO = transpose(reshape(f32(dOut), [B, Tq, Hkv, G, Dv]), [0, 2, 3, 1, 4]);
  const L = reshape(lse, [B, Hkv, G, Tq, 1]);
  const dL = reshape(dLse, [B, Hkv, G, Tq, 1]);
  const dQs: Tensor[] = [];
  let dK: Tensor | null = null;
  let dV: Tensor | null = null;
  for (const b of blocksOf(a, Tq)) {
    const { Qb, Kb, Vb, scores } = blockScores(g, b, a);
    const P = exp(sub(scores, rows5(L, b.q0, b.nq)));
    const dOb = rows5(dO, b.q0, b.nq);
    const delta = sum(mul(dOb, rows5(O, b.q0, b.nq)), -1, { keepDims: true });
    const dS = mul(P, add(sub(matmul(dOb, Vb, { transposeB: true }), delta), rows5(dL, b.q0, b.nq)));
    dQs.push(mul(matmul(dS, Kb), a.scale));
    const place = (x: Tensor) => pad(x, [[0, 0], [0, 0], [0, 0], [b.k0, Tk - b.k0 - b.nk], [0, 0]]);
    const dKb = place(mul(sum(matmul(dS, Qb, { transposeA: true }), 2, { keepDims: true }), a.scale));
    const dVb = place(sum(matmul(P, dOb, { transposeA: true }), 2, { keepDims: true }));
    dK = dK ? add(dK, dKb) : dKb;
    dV = dV ? add(dV, dVb) : dVb;
  }
  const dq = back(ungroup(dQs.length === 1 ? dQs[0]! : concat(dQs, 3)), q.dtype);
  // [B, Hkv, 1, Tk, X] -> [B, Tk, Hkv, X]
  const kvBack = (x: Tensor, X: number, like: Tensor) => back(transpose(reshape(x, [B, Hkv, Tk, X]), [0, 2, 1, 3]), like.dtype);
  return [dq, kvBack(dK!, D, k), kvBack(dV!, Dv, v)];
}

// ---------------------------------------------------------------------------------------------
// User-facing functions

export interface SoftmaxAttentionOptions {
  /** Default head_dim^-0.5. */
  readonly scale?: number;
  /** Default true. */
  readonly causal?: boolean;
  /** Cumulative offsets of packed sequences (batch 1, as many keys as queries). */
  readonly cuSeqlens?: readonly number[] | Int32Array | null;
  /** Valid keys: the first kvLen of k and v (default all). */
  readonly kvLen?: number;
  /** Position of query 0 (default kvLen - Tq: the queries are the newest tokens). */
  readonly kvOffset?: number;
}

function attrsOf(o: SoftmaxAttentionOptions) {
  return { scale: o.scale, causal: o.causal ?? true, cuSeqlens: cuSeqlensAttr(o.cuSeqlens), kvLen: o.kvLen, kvOffset: o.kvOffset };
}

/** Softmax attention with GQA; returns out [B, Tq, H, Dv] and the f32 log-sum-exp [B, H, Tq]. */
export function softmaxAttentionWithLse(q: Tensor, k: Tensor, v: Tensor, options: SoftmaxAttentionOptions = {}): { out: Tensor; lse: Tensor } {
  const [out, lse] = runOp('softmaxAttention', [q, k, v], attrsOf(options));
  return { out: out!, lse: lse! };
}

/** Softmax attention with GQA: out [B, Tq, H, Dv] in q's dtype. */
export function softmaxAttention(q: Tensor, k: Tensor, v: Tensor, options: SoftmaxAttentionOptions = {}): Tensor {
  const { out, lse } = softmaxAttentionWithLse(q, k, v, options);
  lse.dispose();
  return out;
}
