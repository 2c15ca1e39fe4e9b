/**
 * Lightning attention: linear attention with a fixed per-head decay (MODEL_SPEC §2, step 4).
 *
 * Per head h, with scale s and decay lambda_h = exp(-a_h):
 *   S_t = lambda_h S_{t-1} + k_t^T v_t          (S: [D, Dv], fp32 ALWAYS)
 *   o_t = s q_t S_t
 *
 * Ops (layout [B, T, H, D]; state [B, H, D, Dv] with S[dk][dv] = sum k^T v):
 *   lightningAttention          chunked form (prefill, training); packed sequences via cuSeqlens
 *   lightningAttentionStep      recurrent form (decode): a few tokens per sequence, state in -> out
 *   lightningAttentionBackward  gradients w.r.t. q, k, v and the initial state
 * Each has a composite in core ops; backends register fused kernels under these names. Decay powers
 * are always formed as exp(-a * n) with n >= 0 (log space), so they underflow to 0, never overflow.
 */
import {
  DTypeError,
  ShapeError,
  AttrError,
  add,
  cast,
  concat,
  defineOp,
  describeShape,
  exp,
  matmul,
  mul,
  reshape,
  runOp,
  slice,
  transpose,
  type Tensor,
  type TensorMeta,
} from '@ring-linear/core';
import { ACT_DTYPES, assertRank4, checkCuSeqlens, constantLike, cuSeqlensAttr, packedSegments, zerosOn } from './common.js';

export interface LightningAttrs extends Record<string, unknown> {
  /** Scale s applied to q (default head_dim^-0.5). */
  scale: number;
  /** Chunk length C of the chunked form (changes only the evaluation order). */
  chunkSize: number;
  /** Cumulative offsets of packed sequences ([0, ..., T], B = 1); the state resets at each. */
  cuSeqlens: number[] | null;
}

export interface LightningStepAttrs extends Record<string, unknown> {
  scale: number;
}

const lightningAttrSchema = {
  scale: { kind: 'number', optional: true },
  chunkSize: { kind: 'int', default: 64, min: 1 },
  cuSeqlens: { kind: 'ints', default: null },
} as const;

/** What every lightning op checks: q, k, v, decay and the state; returns the dims. */
function checkLightning(
  op: string,
  [q, k, v, decay, state]: readonly TensorMeta[],
  cuSeqlens: readonly number[] | null,
  stateName: string,
): { B: number; T: number; H: number; D: number; Dv: number; N: number } {
  const layout = '[batch, time, heads, head_dim]';
  assertRank4(op, 'q', q!, layout);
  assertRank4(op, 'k', k!, layout);
  assertRank4(op, 'v', v!, layout);
  const [B, T, H, D] = q!.shape as [number, number, number, number];
  if (B < 1 || T < 1 || H < 1 || D < 1) {
    throw new ShapeError(`${op}: q must have at least one batch entry, token, head and channel, got shape ${describeShape(q!.shape)}`);
  }
  for (const [name, m] of [['k', k!], ['v', v!]] as const) {
    if (m.shape[0] !== B || m.shape[1] !== T) {
      throw new ShapeError(`${op}: '${name}' must have q's batch and time dims [${B}, ${T}, ...], got shape ${describeShape(m.shape)}`);
    }
    if (m.shape[2] !== H) {
      throw new ShapeError(
        `${op}: q has ${H} heads but '${name}' has ${m.shape[2]} (linear attention needs the same number of q, k and v heads), shapes ${describeShape(q!.shape)} and ${describeShape(m.shape)}`,
      );
    }
  }
  if (k!.shape[3] !== D) {
    throw new ShapeError(`${op}: head_dim mismatch: q has head_dim ${D}, k has ${k!.shape[3]} (shapes ${describeShape(q!.shape)} and ${describeShape(k!.shape)})`);
  }
  const Dv = v!.shape[3]!;
  if (Dv < 1) throw new ShapeError(`${op}: 'v' must have head_dim >= 1, got shape ${describeShape(v!.shape)}`);
  if (q!.dtype !== k!.dtype || q!.dtype !== v!.dtype) {
    throw new DTypeError(`${op}: q, k and v must have the same dtype, got ${q!.dtype}, ${k!.dtype}, ${v!.dtype} (use cast())`);
  }
  if (decay!.shape.length !== 1 || decay!.shape[0] !== H) {
    throw new ShapeError(`${op}: 'decay' must have shape [${H}] (one rate a_h per head), got ${describeShape(decay!.shape)}`);
  }
  if (cuSeqlens && B !== 1) {
    throw new ShapeError(`${op}: packed sequences (cuSeqlens) need batch size 1 (all sequences along time), got q shape ${describeShape(q!.shape)}`);
  }
  const N = cuSeqlens ? cuSeqlens.length - 1 : B;
  const want = [N, H, D, Dv];
  if (state!.shape.length !== 4 || state!.shape.some((d, i) => d !== want[i])) {
    const who = cuSeqlens ? `${N} packed sequences` : `batch ${B}`;
    throw new ShapeError(`${op}: '${stateName}' must have shape ${describeShape(want)} ([${cuSeqlens ? 'sequences' : 'batch'}, heads, head_dim_k, head_dim_v] for ${who}), got ${describeShape(state!.shape)}`);
  }
  return { B, T, H, D, Dv, N };
}

function normalizeLightning(op: string) {
  return (metas: readonly TensorMeta[], a: LightningAttrs): LightningAttrs => {
    const q = metas[0]!;
    const D = q.shape.length === 4 ? q.shape[3]! : 1;
    const scale = a.scale ?? 1 / Math.sqrt(D);
    if (!Number.isFinite(scale)) throw new AttrError(`${op}: attribute 'scale' expected a finite number, got ${scale}`);
    const cu = a.cuSeqlens ? checkCuSeqlens(op, a.cuSeqlens, q.shape.length === 4 ? q.shape[1]! : 0) : null;
    return { scale, chunkSize: a.chunkSize, cuSeqlens: cu };
  };
}

defineOp<LightningAttrs>({
  name: 'lightningAttention',
  doc:
    'chunked lightning attention (MODEL_SPEC §2): o_t = s q_t S_t, S_t = exp(-a_h) S_{t-1} + k_t^T v_t; ' +
    'q, k [B,T,H,D], v [B,T,H,Dv], decay a [H] f32, initialState [B (or sequences),H,D,Dv] f32 -> out [B,T,H,Dv], finalState f32',
  inputs: [
    { name: 'q', dtypes: ACT_DTYPES },
    { name: 'k', dtypes: ACT_DTYPES },
    { name: 'v', dtypes: ACT_DTYPES },
    { name: 'decay', dtypes: ['f32'] },
    { name: 'initialState', dtypes: ['f32'] },
  ],
  attrs: lightningAttrSchema,
  normalize: normalizeLightning('lightningAttention'),
  infer: (metas, a) => {
    const { B, T, H, Dv, N, D } = checkLightning('lightningAttention', metas, a.cuSeqlens, 'initialState');
    return [
      { shape: [B, T, H, Dv], dtype: metas[0]!.dtype },
      { shape: [N, H, D, Dv], dtype: 'f32' },
    ];
  },
  grad: ({ inputs: [q, k, v, decay, s0], dys: [dOut, dFinal], attrs }) => {
    const [dq, dk, dv, ds0] = runOp('lightningAttentionBackward', [q!, k!, v!, decay!, s0!, dOut!, dFinal!], attrs);
    // The decay is a fixed constant of the layer (MODEL_SPEC §2): no gradient.
    return [dq!, dk!, dv!, null, ds0!];
  },
  composite: ([q, k, v, decay, s0], attrs) => lightningChunkedComposite(q!, k!, v!, decay!, s0!, attrs),
});

defineOp<LightningAttrs>({
  name: 'lightningAttentionBackward',
  doc:
    'gradients of lightningAttention: (q, k, v, decay, initialState, dOut, dFinalState) -> (dq, dk, dv, dInitialState); ' +
    'chunked, states recomputed from the initial state',
  inputs: [
    { name: 'q', dtypes: ACT_DTYPES },
    { name: 'k', dtypes: ACT_DTYPES },
    { name: 'v', dtypes: ACT_DTYPES },
    { name: 'decay', dtypes: ['f32'] },
    { name: 'initialState', dtypes: ['f32'] },
    { name: 'dOut', dtypes: ACT_DTYPES },
    { name: 'dFinalState', dtypes: ['f32'] },
  ],
  attrs: lightningAttrSchema,
  normalize: normalizeLightning('lightningAttentionBackward'),
  infer: (metas, a) => {
    const op = 'lightningAttentionBackward';
    const { B, T, H, Dv } = checkLightning(op, metas, a.cuSeqlens, 'initialState');
    const [q, k, v, , s0, dOut, dFinal] = metas;
    if (dOut!.shape.length !== 4 || dOut!.shape.some((d, i) => d !== [B, T, H, Dv][i])) {
      throw new ShapeError(`${op}: 'dOut' must have the output's shape ${describeShape([B, T, H, Dv])}, got ${describeShape(dOut!.shape)}`);
    }
    if (dFinal!.shape.length !== 4 || dFinal!.shape.some((d, i) => d !== s0!.shape[i])) {
      throw new ShapeError(`${op}: 'dFinalState' must have the state's shape ${describeShape(s0!.shape)}, got ${describeShape(dFinal!.shape)}`);
    }
    return [
      { shape: q!.shape, dtype: q!.dtype },
      { shape: k!.shape, dtype: k!.dtype },
      { shape: v!.shape, dtype: v!.dtype },
      { shape: s0!.shape, dtype: 'f32' },
    ];
  },
  composite: ([q, k, v, decay, s0, dOut, dFinal], attrs) => lightningBackwardComposite(q!, k!, v!, decay!, s0!, dOut!, dFinal!, attrs),
});

defineOp<LightningStepAttrs>({
  name: 'lightningAttentionStep',
  doc:
    'recurrent lightning attention for decode: q, k [B,T,H,D], v [B,T,H,Dv] (T a few tokens), decay [H] f32, ' +
    'state [B,H,D,Dv] f32 -> out [B,T,H,Dv], newState f32 (the caller swaps the new state in)',
  inputs: [
    { name: 'q', dtypes: ACT_DTYPES },
    { name: 'k', dtypes: ACT_DTYPES },
    { name: 'v', dtypes: ACT_DTYPES },
    { name: 'decay', dtypes: ['f32'] },
    { name: 'state', dtypes: ['f32'] },
  ],
  attrs: { scale: { kind: 'number', optional: true } },
  normalize: (metas, a) => {
    const q = metas[0]!;
    const scale = a.scale ?? 1 / Math.sqrt(q.shape.length === 4 ? q.shape[3]! : 1);
    if (!Number.isFinite(scale)) throw new AttrError(`lightningAttentionStep: attribute 'scale' expected a finite number, got ${scale}`);
    return { scale };
  },
  infer: (metas) => {
    const { B, T, H, D, Dv } = checkLightning('lightningAttentionStep', metas, null, 'state');
    return [
      { shape: [B, T, H, Dv], dtype: metas[0]!.dtype },
      { shape: [B, H, D, Dv], dtype: 'f32' },
    ];
  },
  // Same math as the chunked op, so the same backward.
  grad: ({ inputs: [q, k, v, decay, s0], dys: [dOut, dFinal], attrs }) => {
    const [dq, dk, dv, ds0] = runOp('lightningAttentionBackward', [q!, k!, v!, decay!, s0!, dOut!, dFinal!], {
      scale: attrs.scale,
      chunkSize: 64,
      cuSeqlens: null,
    });
    return [dq!, dk!, dv!, null, ds0!];
  },
  composite: ([q, k, v, decay, s0], attrs) => lightningRecurrentComposite(q!, k!, v!, decay!, s0!, attrs.scale),
});

// ---------------------------------------------------------------------------------------------
// Composites (core ops only). Work in f32 in the [B, H, T, D] layout, one chunk at a time.

const f32 = (x: Tensor) => (x.dtype === 'f32' ? x : cast(x, 'f32'));
const back = (x: Tensor, dtype: Tensor['dtype']) => (x.dtype === dtype ? x : cast(x, dtype));
/** [B, T, H, D] -> [B, H, T, D] in f32. */
const headsFirst = (x: Tensor) => transpose(f32(x), [0, 2, 1, 3]);
/** Rows t0 .. t0+L-1 of a [B, H, T, X] tensor. */
const rows = (x: Tensor, t0: number, L: number) => slice(x, [0, 0, t0, 0], [-1, -1, L, -1]);

/** Decay tables of one chunk length L for per-head rates a4 [1, H, 1, 1] (exp of non-positive exponents only). */
interface ChunkDecay {
  /** lambda^(i-j) for i >= j, else 0: [1, H, L, L]. */
  mask: Tensor;
  /** lambda^(i+1): [1, H, L, 1]. */
  q: Tensor;
  /** lambda^(L-1-j): [1, H, L, 1]. */
  k: Tensor;
  /** lambda^L: [1, H, 1, 1]. */
  whole: Tensor;
}

function chunkDecayTables(a4: Tensor, L: number, cache: Map<number, ChunkDecay>): ChunkDecay {
  const hit = cache.get(L);
  if (hit) return hit;
  const negDiff = new Float32Array(L * L);
  const lower = new Float32Array(L * L);
  const qe = new Float32Array(L);
  const ke = new Float32Array(L);
  for (let i = 0; i < L; i++) {
    for (let j = 0; j <= i; j++) {
      negDiff[i * L + j] = -(i - j);
      lower[i * L + j] = 1;
    }
    qe[i] = -(i + 1);
    ke[i] = -(L - 1 - i);
  }
  const t: ChunkDecay = {
    // Entries above the diagonal use exponent 0 and are then zeroed, so nothing overflows.
    mask: mul(exp(mul(a4, constantLike(a4, negDiff, [L, L]))), constantLike(a4, lower, [L, L])),
    q: exp(mul(a4, constantLike(a4, qe, [L, 1]))),
    k: exp(mul(a4, constantLike(a4, ke, [L, 1]))),
    whole: exp(mul(a4, -L)),
  };
  cache.set(L, t);
  return t;
}

/** Initial state of segment n: the whole state, or its row n for packed sequences. */
const segmentState = (s0: Tensor, n: number, packed: boolean) => (packed ? slice(s0, [n, 0, 0, 0], [1, -1, -1, -1]) : s0);

/** The chunked form of MODEL_SPEC §2 in core ops. */
export function lightningChunkedComposite(
  q: Tensor, k: Tensor, v: Tensor, decay: Tensor, s0: Tensor, attrs: LightningAttrs,
): [Tensor, Tensor] {
  const [, T, H] = q.shape as [number, number, number, number];
  const { scale: s, chunkSize: C } = attrs;
  const packed = attrs.cuSeqlens !== null;
  const Q = headsFirst(q);
  const K = headsFirst(k);
  const V = headsFirst(v);
  const a4 = reshape(decay, [1, H, 1, 1]);
  const tables = new Map<number, ChunkDecay>();
  const outs: Tensor[] = [];
  const finals: Tensor[] = [];
  packedSegments(attrs.cuSeqlens, T).forEach(([t0, t1], n) => {
    let S = segmentState(s0, n, packed);
    for (let c0 = t0; c0 < t1; c0 += C) {
      const L = Math.min(C, t1 - c0);
      const d = chunkDecayTables(a4, L, tables);
      const Qc = rows(Q, c0, L);
      const Kc = rows(K, c0, L);
      const Vc = rows(V, c0, L);
      const intra = matmul(mul(matmul(Qc, Kc, { transposeB: true }), d.mask), Vc);
      const inter = matmul(mul(Qc, d.q), S);
      outs.push(mul(add(intra, inter), s));
      S = add(mul(S, d.whole), matmul(mul(Kc, d.k), Vc, { transposeA: true }));
    }
    finals.push(S);
  });
  const out = transpose(outs.length === 1 ? outs[0]! : concat(outs, 2), [0, 2, 1, 3]);
  const finalState = finals.length === 1 ? finals[0]! : concat(finals, 0);
  return [back(out, q.dtype), finalState];
}

/** The recurrent form, one token at a time, in core ops (the decode op's composite). */
export function lightningRecurrentComposite(q: Tensor, k: Tensor, v: Tensor, decay: Tensor, state: Tensor, scale: number): [Tensor, Tensor] {
  const [, T, H] = q.shape as [number, number, number, number];
  const Q = headsFirst(q);
  const K = headsFirst(k);
  const V = headsFirst(v);
  const lambda = exp(mul(reshape(decay, [1, H, 1, 1]), -1));
  let S = state;
  const outs: Tensor[] = [];
  for (let t = 0; t < T; t++) {
    S = add(mul(S, lambda), matmul(rows(K, t, 1), rows(V, t, 1), { transposeA: true }));
    outs.push(mul(matmul(rows(Q, t, 1), S), scale));
  }
  const out = transpose(outs.length === 1 ? outs[0]! : concat(outs, 2), [0, 2, 1, 3]);
  return [back(out, q.dtype), S];
}

/**
 * Backward of the chunked form. With M = (dO V^T * Dmask) s, A = (Q K^T * Dmask) s and dH the
 * gradient of the state leaving the chunk:
 *   dQ = M K + s lambda^(i+1) dO S^T
 *   dK = M^T Q + lambda^(L-1-j) V dH^T
 *   dV = A^T dO + lambda^(L-1-j) K dH
 *   dH_entering = lambda^L dH + s (Q * lambda^(i+1))^T dO
 */
export function lightningBackwardComposite(
  q: Tensor, k: Tensor, v: Tensor, decay: Tensor, s0: Tensor, dOut: Tensor, dFinal: Tensor, attrs: LightningAttrs,
): [Tensor, Tensor, Tensor, Tensor] {
  const [, T, H] = q.shape as [number, number, number, number];
  const { scale: s, chunkSize: C } = attrs;
  const packed = attrs.cuSeqlens !== null;
  const Q = headsFirst(q);
  const K = headsFirst(k);
  const V = headsFirst(v);
  const dO = headsFirst(dOut);
  const a4 = reshape(decay, [1, H, 1, 1]);
  const tables = new Map<number, ChunkDecay>();
  const dQs: Tensor[] = [];
  const dKs: Tensor[] = [];
  const dVs: Tensor[] = [];
  const dS0s: Tensor[] = [];
  packedSegments(attrs.cuSeqlens, T).forEach(([t0, t1], n) => {
    // States entering each chunk, recomputed forward.
    const starts: number[] = [];
    const states: Tensor[] = [];
    let S = segmentState(s0, n, packed);
    for (let c0 = t0; c0 < t1; c0 += C) {
      const L = Math.min(C, t1 - c0);
      const d = chunkDecayTables(a4, L, tables);
      starts.push(c0);
      states.push(S);
      S = add(mul(S, d.whole), matmul(mul(rows(K, c0, L), d.k), rows(V, c0, L), { transposeA: true }));
    }
    let dH = segmentState(dFinal, n, packed);
    const segQ: Tensor[] = [];
    const segK: Tensor[] = [];
    const segV: Tensor[] = [];
    for (let c = starts.length - 1; c >= 0; c--) {
      const c0 = starts[c]!;
      const L = Math.min(C, t1 - c0);
      const d = chunkDecayTables(a4, L, tables);
      const Qc = rows(Q, c0, L);
      const Kc = rows(K, c0, L);
      const Vc = rows(V, c0, L);
      const dOc = rows(dO, c0, L);
      const M = mul(mul(matmul(dOc, Vc, { transposeB: true }), d.mask), s);
      const A = mul(mul(matmul(Qc, Kc, { transposeB: true }), d.mask), s);
      segQ.unshift(add(matmul(M, Kc), mul(matmul(dOc, states[c]!, { transposeB: true }), mul(d.q, s))));
      segK.unshift(add(matmul(M, Qc, { transposeA: true }), mul(matmul(Vc, dH, { transposeB: true }), d.k)));
      segV.unshift(add(matmul(A, dOc, { transposeA: true }), mul(matmul(Kc, dH), d.k)));
      dH = add(mul(dH, d.whole), matmul(mul(Qc, mul(d.q, s)), dOc, { transposeA: true }));
    }
    dQs.push(...segQ);
    dKs.push(...segK);
    dVs.push(...segV);
    dS0s.push(dH);
  });
  const join = (xs: Tensor[], like: Tensor) => back(transpose(xs.length === 1 ? xs[0]! : concat(xs, 2), [0, 2, 1, 3]), like.dtype);
  return [join(dQs, q), join(dKs, k), join(dVs, v), dS0s.length === 1 ? dS0s[0]! : concat(dS0s, 0)];
}

// ---------------------------------------------------------------------------------------------
// User-facing functions

export interface LightningAttentionOptions {
  /** Per-head decay rates a_h (f32 [H]); lambda_h = exp(-a_h). See decayRates(). */
  readonly decay: Tensor;
  /** Scale applied to q (default head_dim^-0.5). */
  readonly scale?: number;
  /** State entering the sequence(s), f32 [B (or sequences), H, D, Dv]; zeros when omitted. */
  readonly initialState?: Tensor;
  /** Cumulative offsets of packed sequences (batch 1); the state resets at each boundary. */
  readonly cuSeqlens?: readonly number[] | Int32Array | null;
  /** Chunk length of the chunked form (default 64). */
  readonly chunkSize?: number;
}

export interface LightningAttentionResult {
  /** [B, T, H, Dv] in q's dtype. */
  readonly out: Tensor;
  /** [B (or sequences), H, D, Dv] f32: what a decode step continues from. */
  readonly finalState: Tensor;
}

/** Chunked lightning attention (prefill and training), MODEL_SPEC §2. */
export function lightningAttention(q: Tensor, k: Tensor, v: Tensor, options: LightningAttentionOptions): LightningAttentionResult {
  const cu = cuSeqlensAttr(options.cuSeqlens);
  let s0 = options.initialState;
  if (s0 === undefined) {
    const n = cu ? Math.max(cu.length - 1, 0) : q.shape[0] ?? 0;
    s0 = zerosOn(q, [n, q.shape[2] ?? 0, q.shape[3] ?? 0, v.shape[3] ?? 0]);
  }
  try {
    const [out, finalState] = runOp('lightningAttention', [q, k, v, options.decay, s0], {
      scale: options.scale,
      chunkSize: options.chunkSize ?? 64,
      cuSeqlens: cu,
    });
    return { out: out!, finalState: finalState! };
  } finally {
    // Gradient tapes hold their own reference; this handle was only ours.
    if (options.initialState === undefined) s0.dispose();
  }
}

export interface LightningAttentionStepOptions {
  readonly decay: Tensor;
  /** The state entering these tokens, f32 [B, H, D, Dv]. */
  readonly state: Tensor;
  readonly scale?: number;
}

/** Recurrent lightning attention over a few new tokens per sequence (decode). Returns the new state. */
export function lightningAttentionStep(q: Tensor, k: Tensor, v: Tensor, options: LightningAttentionStepOptions): { out: Tensor; state: Tensor } {
  const [out, state] = runOp('lightningAttentionStep', [q, k, v, options.decay, options.state], { scale: options.scale });
  return { out: out!, state: state! };
}
