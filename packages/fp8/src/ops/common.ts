/**
 * Building blocks of the composites (written in core ops only, so every backend can run them) and
 * the validation shared by the op definitions.
 */
import {
  AttrError,
  DTypeError,
  ShapeError,
  abs,
  broadcastTo,
  cast,
  ceil,
  describeShape,
  div,
  findBackend,
  greaterEqual,
  less,
  log,
  max,
  maximum,
  mul,
  pad,
  pow,
  reshape,
  slice,
  tensor,
  where,
  type DType,
  type Tensor,
  type TensorMeta,
} from '@ring-linear/core';
import {
  FP8_BLOCK,
  GEMM_OUT_DTYPES,
  SCALE_TINY,
  ceilDiv,
  fp8Max,
  isFp8DType,
  scalesShape,
  type Fp8DType,
  type Fp8Layout,
} from '../formats.js';

export const f32 = (x: Tensor): Tensor => (x.dtype === 'f32' ? x : cast(x, 'f32'));

const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

// ---------------------------------------------------------------------------------------------
// Validation

/** The `dtype` attribute must name an FP8 format. */
export function checkFp8Attr(op: string, name: string, d: DType): Fp8DType {
  if (!isFp8DType(d)) throw new AttrError(`${op}: attribute '${name}' expected an FP8 dtype ('f8e4m3' or 'f8e5m2'), got '${d}'`);
  return d;
}

export function checkOutDType(op: string, d: DType): DType {
  if (!GEMM_OUT_DTYPES.includes(d)) {
    throw new AttrError(`${op}: attribute 'outDtype' expected one of ${GEMM_OUT_DTYPES.map((x) => `'${x}'`).join(', ')}, got '${d}'`);
  }
  return d;
}

/** Checks that a tensor of `shape` can be quantized in `layout` (the extents a scale covers exist). */
export function checkQuantizable(op: string, name: string, shape: readonly number[], layout: Fp8Layout): void {
  const r = shape.length;
  const need = (ok: boolean, what: string) => {
    if (!ok) throw new ShapeError(`${op}: layout '${layout}' needs '${name}' ${what}, got shape ${describeShape(shape)}`);
  };
  switch (layout) {
    case 'tensor':
      need(prod(shape) >= 1, 'to hold at least one element');
      return;
    case 'row':
    case 'tile1x128':
      need(r >= 1 && shape[r - 1]! >= 1, 'of rank >= 1 with a last dim >= 1');
      return;
    case 'block128x128':
      need(r >= 2 && shape[r - 1]! >= 1 && shape[r - 2]! >= 1, 'of rank >= 2 with its last two dims >= 1');
  }
}

/** Checks a scales tensor against the data it belongs to. */
export function checkScales(op: string, name: string, scales: TensorMeta, dataShape: readonly number[], layout: Fp8Layout): void {
  const want = scalesShape(dataShape, layout);
  if (scales.dtype !== 'f32') throw new DTypeError(`${op}: '${name}' must have dtype f32, got ${scales.dtype}`);
  if (scales.shape.length !== want.length || scales.shape.some((d, i) => d !== want[i])) {
    throw new ShapeError(
      `${op}: '${name}' must have shape ${describeShape(want)} (layout '${layout}' of data ${describeShape(dataShape)}), got ${describeShape(scales.shape)}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Composite pieces

/** A host-made f32 constant on `like`'s backend. */
export function constantOn(like: Tensor, values: Float32Array, shape: readonly number[]): Tensor {
  return tensor(values, shape, 'f32', findBackend(like.backend));
}

/** Zero-pads the last `dims` dims of x (already f32, shape [..., n0, n1]) up to multiples of 128. */
function padToBlocks(x: Tensor, dims: 1 | 2): Tensor {
  const r = x.rank;
  const pads: [number, number][] = x.shape.map(() => [0, 0]);
  let any = false;
  for (let d = r - dims; d < r; d++) {
    const n = x.shape[d]!;
    const extra = ceilDiv(n, FP8_BLOCK) * FP8_BLOCK - n;
    pads[d] = [0, extra];
    if (extra) any = true;
  }
  return any ? pad(x, pads) : x;
}

/** amax per scale group of x (f32), in the scales' shape. NaN propagates (core max does). */
export function amaxOf(xf: Tensor, layout: Fp8Layout): Tensor {
  const shape = xf.shape;
  const r = shape.length;
  switch (layout) {
    case 'tensor':
      return max(abs(xf));
    case 'row':
      return max(abs(xf), -1, { keepDims: true });
    case 'tile1x128': {
      const K = shape[r - 1]!;
      const lead = shape.slice(0, -1);
      const T = ceilDiv(K, FP8_BLOCK);
      const tiles = reshape(padToBlocks(reshape(xf, [prod(lead), K]), 1), [prod(lead), T, FP8_BLOCK]);
      return reshape(max(abs(tiles), -1), [...lead, T]);
    }
    case 'block128x128': {
      const [N, K] = [shape[r - 2]!, shape[r - 1]!];
      const lead = shape.slice(0, -2);
      const [NB, KB] = [ceilDiv(N, FP8_BLOCK), ceilDiv(K, FP8_BLOCK)];
      const padded = padToBlocks(reshape(xf, [prod(lead), N, K]), 2);
      const blocks = reshape(padded, [prod(lead), NB, FP8_BLOCK, KB, FP8_BLOCK]);
      return reshape(max(abs(blocks), [2, 4]), [...lead, NB, KB]);
    }
  }
}

/**
 * The smallest power of two >= s, elementwise, in core ops: 2^ceil(log2 s) from f32 logs, then one
 * correction step either way makes it exact (the f32 log2 is off by far less than 1). NaN and
 * +inf pass through.
 */
export function pow2CeilComposite(s: Tensor): Tensor {
  let p = pow(2, ceil(div(log(s), Math.LN2)));
  p = where(less(p, s), mul(p, 2), p);
  const half = div(p, 2);
  return where(greaterEqual(half, s), half, p);
}

/** scale = max(fl32(amax / fp8_max), TINY), optionally rounded up to a power of two. */
export function scalesFromAmax(amax: Tensor, dtype: Fp8DType, pow2Scale: boolean): Tensor {
  const s = maximum(div(amax, fp8Max(dtype)), SCALE_TINY);
  return pow2Scale ? pow2CeilComposite(s) : s;
}

/** The scales broadcast to the data: a tensor of `shape` (or broadcastable to it), f32. */
export function expandScales(scales: Tensor, layout: Fp8Layout, shape: readonly number[]): Tensor {
  const r = shape.length;
  switch (layout) {
    case 'tensor':
    case 'row':
      return scales;
    case 'tile1x128': {
      const K = shape[r - 1]!;
      const R = prod(shape.slice(0, -1));
      const T = ceilDiv(K, FP8_BLOCK);
      const wide = reshape(broadcastTo(reshape(scales, [R, T, 1]), [R, T, FP8_BLOCK]), [R, T * FP8_BLOCK]);
      return reshape(T * FP8_BLOCK === K ? wide : slice(wide, [0, 0], [R, K]), shape);
    }
    case 'block128x128': {
      const [N, K] = [shape[r - 2]!, shape[r - 1]!];
      const B = prod(shape.slice(0, -2));
      const [NB, KB] = [ceilDiv(N, FP8_BLOCK), ceilDiv(K, FP8_BLOCK)];
      const wide = reshape(
        broadcastTo(reshape(scales, [B, NB, 1, KB, 1]), [B, NB, FP8_BLOCK, KB, FP8_BLOCK]),
        [B, NB * FP8_BLOCK, KB * FP8_BLOCK],
      );
      const cut = NB * FP8_BLOCK === N && KB * FP8_BLOCK === K ? wide : slice(wide, [0, 0, 0], [B, N, K]);
      return reshape(cut, shape);
    }
  }
}

/** q = RNE_fp8(fl32(x / scale)), saturated (x f32, scales in their layout's shape). */
export function quantizeWithScalesComposite(xf: Tensor, scales: Tensor, dtype: Fp8DType, layout: Fp8Layout): Tensor {
  return cast(div(xf, expandScales(scales, layout, xf.shape)), dtype, { saturate: true });
}

/** [data, scales] of x by the dynamic scale rule. */
export function quantizeComposite(x: Tensor, dtype: Fp8DType, layout: Fp8Layout, pow2Scale: boolean): [Tensor, Tensor] {
  const xf = f32(x);
  const scales = scalesFromAmax(amaxOf(xf, layout), dtype, pow2Scale);
  return [quantizeWithScalesComposite(xf, scales, dtype, layout), scales];
}
