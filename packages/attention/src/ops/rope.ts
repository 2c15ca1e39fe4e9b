/**
 * Partial NeoX rotary position embedding (MODEL_SPEC §2 step 3): "rotate half", non-interleaved,
 * on the FIRST rotaryDim channels of each head; the remaining channels pass through.
 *
 *   half = rotaryDim / 2,  inv_freq[i] = theta^(-2i / rotaryDim)   (i < half)
 *   angle[t, i] = position[t] * inv_freq[i]                          (fp32, as the HF reference)
 *   y[i]        = x[i] cos - x[i + half] sin
 *   y[i + half] = x[i + half] cos + x[i] sin
 *
 * One implementation shared by training and sampling (MODEL_SPEC §7). The `inverse` attribute
 * rotates by -angle: that is the gradient (a rotation's transpose is its inverse).
 */
import {
  AttrError,
  ShapeError,
  cast,
  concat,
  cos,
  defineOp,
  describeShape,
  mul,
  neg,
  reshape,
  runOp1,
  sin,
  sliceAxis,
  sub,
  add,
  type Tensor,
} from '@ring-linear/core';
import { ACT_DTYPES, constantLike } from './common.js';

export interface RopeAttrs extends Record<string, unknown> {
  rotaryDim: number;
  theta: number;
  inverse: boolean;
}

/**
 * inv_freq as the fp32 reference computes it: 1 / theta^(2i/rotaryDim), each step rounded to f32.
 * Kernels on every backend use these exact values (they are part of the op's definition).
 */
export function ropeInvFreq(rotaryDim: number, theta: number): Float32Array {
  const half = rotaryDim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const e = Math.fround((2 * i) / rotaryDim);
    out[i] = Math.fround(1 / Math.fround(Math.pow(Math.fround(theta), e)));
  }
  return out;
}

defineOp<RopeAttrs>({
  name: 'rope',
  doc:
    'partial NeoX rotary embedding on the first rotaryDim channels: x [B,T,H,D] (or [T,H,D]), positions i32 [T] or [B,T]; ' +
    'fp32 angles position * theta^(-2i/rotaryDim); inverse rotates by -angle',
  inputs: [
    { name: 'x', dtypes: ACT_DTYPES },
    { name: 'positions', dtypes: ['i32'] },
  ],
  attrs: {
    rotaryDim: { kind: 'int', optional: true },
    theta: { kind: 'number', default: 10000 },
    inverse: { kind: 'bool', default: false },
  },
  normalize: ([x], a) => {
    const D = x!.shape[x!.shape.length - 1] ?? 0;
    const rotaryDim = a.rotaryDim ?? D;
    if (rotaryDim < 2 || rotaryDim % 2 !== 0) {
      throw new AttrError(`rope: 'rotaryDim' must be a positive even number (NeoX rotates pairs i, i + rotaryDim/2), got ${rotaryDim}`);
    }
    if (rotaryDim > D) {
      throw new AttrError(`rope: 'rotaryDim' (${rotaryDim}) must not exceed head_dim (${D}, the last dim of x ${describeShape(x!.shape)})`);
    }
    if (!(a.theta > 0) || !Number.isFinite(a.theta)) throw new AttrError(`rope: 'theta' must be a finite number > 0, got ${a.theta}`);
    return { rotaryDim, theta: a.theta, inverse: a.inverse };
  },
  infer: ([x, p]) => {
    const r = x!.shape.length;
    if (r !== 3 && r !== 4) {
      throw new ShapeError(`rope: 'x' must have shape [batch, time, heads, head_dim] or [time, heads, head_dim], got ${describeShape(x!.shape)}`);
    }
    const T = x!.shape[r - 3]!;
    const ok = (p!.shape.length === 1 && p!.shape[0] === T) || (r === 4 && p!.shape.length === 2 && p!.shape[0] === x!.shape[0] && p!.shape[1] === T);
    if (!ok) {
      const want = r === 4 ? `[${T}] or [${x!.shape[0]}, ${T}]` : `[${T}]`;
      throw new ShapeError(`rope: 'positions' must have shape ${want} for x ${describeShape(x!.shape)}, got ${describeShape(p!.shape)}`);
    }
    return [{ shape: x!.shape, dtype: x!.dtype }];
  },
  grad: ({ inputs: [, positions], dys: [dy], attrs }) => [
    runOp1('rope', [dy!, positions!], { ...attrs, inverse: !attrs.inverse }),
    null,
  ],
  composite: ([x, positions], attrs) => [ropeComposite(x!, positions!, attrs)],
});

export function ropeComposite(x: Tensor, positions: Tensor, { rotaryDim, theta, inverse }: RopeAttrs): Tensor {
  const half = rotaryDim / 2;
  const D = x.shape[x.rank - 1]!;
  const invFreq = constantLike(x, ropeInvFreq(rotaryDim, theta), [half]);
  // angles [T, half] or [B, T, half] in f32, then a heads axis to broadcast over: [.., T, 1, half]
  const angles = mul(reshape(cast(positions, 'f32'), [...positions.shape, 1]), invFreq);
  const a4 = reshape(angles, [...positions.shape, 1, half]);
  const c = cos(a4);
  const s = inverse ? neg(sin(a4)) : sin(a4);
  const xf = x.dtype === 'f32' ? x : cast(x, 'f32');
  const x1 = sliceAxis(xf, -1, 0, half);
  const x2 = sliceAxis(xf, -1, half, rotaryDim);
  const parts = [sub(mul(x1, c), mul(x2, s)), add(mul(x2, c), mul(x1, s))];
  if (rotaryDim < D) parts.push(sliceAxis(xf, -1, rotaryDim, D));
  const y = concat(parts, -1);
  return x.dtype === 'f32' ? y : cast(y, x.dtype);
}

export interface RopeOptions {
  /** Absolute positions (i32 tensor [T] or [B, T], or host numbers); default offset + 0..T-1. */
  readonly positions?: Tensor | readonly number[] | Int32Array;
  /** Position of the first token when `positions` is not given (the cache length when decoding). */
  readonly offset?: number;
  /** Channels rotated (even, <= head_dim); default head_dim. */
  readonly rotaryDim?: number;
  /** Base of the frequencies (rope_theta); default 10000. */
  readonly theta?: number;
}

/** Positions 0..T-1 restarting at each packed-sequence boundary (for rope on packed batches). */
export function packedPositions(cuSeqlens: readonly number[] | Int32Array): Int32Array {
  const total = cuSeqlens[cuSeqlens.length - 1] ?? 0;
  const out = new Int32Array(Math.max(total, 0));
  for (let s = 0; s + 1 < cuSeqlens.length; s++) {
    for (let t = cuSeqlens[s]!; t < cuSeqlens[s + 1]! && t < total; t++) out[t] = t - cuSeqlens[s]!;
  }
  return out;
}

/**
 * The positions tensor rope reads (i32 [T] or [B, T], on the backend of `like`): options.positions
 * as given, or offset + 0..T-1. Modules build it once and pass it to the rope of q and of k.
 */
export function ropePositions(like: Tensor, T: number, options: Pick<RopeOptions, 'positions' | 'offset'> = {}): Tensor {
  if (options.positions !== undefined && !(Array.isArray(options.positions) || options.positions instanceof Int32Array)) {
    return options.positions as Tensor;
  }
  let host: Int32Array;
  if (options.positions !== undefined) host = Int32Array.from(options.positions as ArrayLike<number>);
  else {
    const offset = options.offset ?? 0;
    if (!Number.isInteger(offset) || offset < 0) throw new AttrError(`rope: 'offset' must be an integer >= 0, got ${offset}`);
    host = new Int32Array(T);
    for (let t = 0; t < T; t++) host[t] = offset + t;
  }
  return constantLike(like, host, [host.length], 'i32');
}

/** Applies partial NeoX RoPE to x [B, T, H, D] or [T, H, D] (MODEL_SPEC §2.3). */
export function rope(x: Tensor, options: RopeOptions = {}): Tensor {
  const T = x.shape[x.rank - 3] ?? 0;
  const positions = ropePositions(x, T, options);
  try {
    return runOp1('rope', [x, positions], { rotaryDim: options.rotaryDim, theta: options.theta ?? 10000 });
  } finally {
    if (positions !== options.positions) positions.dispose();
  }
}
