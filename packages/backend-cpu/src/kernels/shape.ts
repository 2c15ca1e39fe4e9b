/**
 * Data-movement kernels: transpose, slice, concat, split, pad, flip, tile. They copy raw storage
 * codes (exact for every dtype) and move whole contiguous runs with TypedArray.set where the
 * layout allows.
 */
import { bytesPerElement, sizeOf, stridesOf, type DType, type StorageArray } from '@ring-linear/core';
import type { CpuBuffer } from '../backend.js';
import { raw, register, storeNumbers } from '../util.js';

type Arr = StorageArray & { set(src: ArrayLike<number>, offset?: number): void };

/** Tile edge of the blocked transpose (32 x 32 elements: 4 KiB of f32 per tile). */
const TILE = 32;

/**
 * Calls `row(srcOffset, dstOffset)` for every row of a copy whose last dim is contiguous in both
 * source and destination: `counts` are the loop extents over the leading dims (rank - 1 of them),
 * `srcStrides`/`dstStrides` the element strides of those dims.
 */
function forEachRow(
  counts: readonly number[],
  srcStrides: readonly number[],
  dstStrides: readonly number[],
  srcBase: number,
  dstBase: number,
  row: (src: number, dst: number) => void,
): void {
  const r = counts.length;
  if (counts.some((c) => c === 0)) return;
  const idx = new Array<number>(r).fill(0);
  let s = srcBase;
  let d = dstBase;
  for (;;) {
    row(s, d);
    let k = r - 1;
    for (; k >= 0; k--) {
      idx[k]!++;
      s += srcStrides[k]!;
      d += dstStrides[k]!;
      if (idx[k]! < counts[k]!) break;
      s -= srcStrides[k]! * counts[k]!;
      d -= dstStrides[k]! * counts[k]!;
      idx[k] = 0;
    }
    if (k < 0) return;
  }
}

/**
 * The storage of a tensor as integers of its element width (raw codes: a copy through them is
 * exact for every dtype, NaN payloads included). Copy loops see one array type per width, so the
 * 4-byte dtypes (f32, i32) share one monomorphic loop instead of a megamorphic one.
 */
function codes(info: { buffer: unknown; dtype: DType; size: number }): Int32Array | Uint16Array | Uint8Array {
  const b = (info.buffer as CpuBuffer).bytes;
  switch (bytesPerElement(info.dtype)) {
    case 4: return new Int32Array(b.buffer, b.byteOffset, info.size);
    case 2: return new Uint16Array(b.buffer, b.byteOffset, info.size);
    default: return new Uint8Array(b.buffer, b.byteOffset, info.size);
  }
}

/** dst[d + ia*qDst + ib] = src[s + ia + ib*lastStep] over [Q, L] in square tiles (4-byte codes). */
function transposePlane32(src: Int32Array, s: number, lastStep: number, dst: Int32Array, d: number, qDst: number, Q: number, L: number): void {
  for (let a = 0; a < Q; a += TILE) {
    const aEnd = Math.min(a + TILE, Q);
    for (let b = 0; b < L; b += TILE) {
      const bEnd = Math.min(b + TILE, L);
      for (let ia = a; ia < aEnd; ia++) {
        const dRow = d + ia * qDst;
        let sIdx = s + ia + b * lastStep;
        for (let ib = b; ib < bEnd; ib++, sIdx += lastStep) dst[dRow + ib] = src[sIdx]!;
      }
    }
  }
}

/** As transposePlane32 for 2- and 1-byte codes. */
function transposePlaneNarrow(src: Uint16Array | Uint8Array, s: number, lastStep: number, dst: Uint16Array | Uint8Array, d: number, qDst: number, Q: number, L: number): void {
  for (let a = 0; a < Q; a += TILE) {
    const aEnd = Math.min(a + TILE, Q);
    for (let b = 0; b < L; b += TILE) {
      const bEnd = Math.min(b + TILE, L);
      for (let ia = a; ia < aEnd; ia++) {
        const dRow = d + ia * qDst;
        let sIdx = s + ia + b * lastStep;
        for (let ib = b; ib < bEnd; ib++, sIdx += lastStep) dst[dRow + ib] = src[sIdx]!;
      }
    }
  }
}

register('transpose', ({ inputs: [x], outputs: [y], attrs }) => {
  const perm = (attrs as { perm: number[] }).perm;
  const xr = codes(x!);
  const yr = codes(y!) as Arr;
  const r = perm.length;
  if (r === 0) {
    yr[0] = xr[0]!;
    return;
  }
  const inStrides = stridesOf(x!.shape);
  // Input stride of each output dim: walking the output in order reads the input at these steps.
  const step = perm.map((p) => inStrides[p]!);
  const outShape = y!.shape;
  const last = r - 1;
  const lastLen = outShape[last]!;
  const lastStep = step[last]!;
  if (lastStep === 1) {
    // The innermost dim stays innermost: copy contiguous runs.
    forEachRow(outShape.slice(0, last), step.slice(0, last), stridesOf(outShape).slice(0, last), 0, 0, (s, d) => {
      yr.set(xr.subarray(s, s + lastLen) as ArrayLike<number>, d);
    });
    return;
  }
  // The input's contiguous dim lands on output dim q: copy [Q, L] planes (q x last) in square
  // tiles, so both the reads (contiguous along q) and the writes (along last) stay in cache.
  const outStrides = stridesOf(outShape);
  const q = perm.indexOf(r - 1);
  const Q = outShape[q]!;
  const qDst = outStrides[q]!;
  const others = outShape.map((_, d) => d).filter((d) => d !== q && d !== last);
  forEachRow(others.map((d) => outShape[d]!), others.map((d) => step[d]!), others.map((d) => outStrides[d]!), 0, 0, (s, d) => {
    if (xr instanceof Int32Array) transposePlane32(xr, s, lastStep, yr as Int32Array, d, qDst, Q, lastLen);
    else transposePlaneNarrow(xr, s, lastStep, yr as Uint16Array | Uint8Array, d, qDst, Q, lastLen);
  });
});

/** Copies the box `size` at `begin` of src (shape srcShape) to dst (shape dstShape) at dstBegin. */
function copyBox(
  src: StorageArray, srcShape: readonly number[], srcBegin: readonly number[],
  dst: Arr, dstShape: readonly number[], dstBegin: readonly number[],
  size: readonly number[],
): void {
  const r = size.length;
  if (sizeOf(size) === 0) return;
  if (r === 0) {
    dst[0] = src[0]!;
    return;
  }
  const ss = stridesOf(srcShape);
  const ds = stridesOf(dstShape);
  const s0 = srcBegin.reduce((p, b, i) => p + b * ss[i]!, 0);
  const d0 = dstBegin.reduce((p, b, i) => p + b * ds[i]!, 0);
  const len = size[r - 1]!;
  forEachRow(size.slice(0, r - 1), ss.slice(0, r - 1), ds.slice(0, r - 1), s0, d0, (s, d) => {
    dst.set(src.subarray(s, s + len) as ArrayLike<number>, d);
  });
}

register('slice', ({ inputs: [x], outputs: [y], attrs }) => {
  const { begin, size } = attrs as { begin: number[]; size: number[] };
  copyBox(raw(x!), x!.shape, begin, raw(y!) as Arr, y!.shape, begin.map(() => 0), size);
});

register('pad', ({ inputs: [x], outputs: [y], attrs }) => {
  const { paddings, value } = attrs as { paddings: [number, number][]; value: number };
  const yr = raw(y!);
  // Encode the pad value once (as a cast would), then replicate its raw code.
  storeNumbers({ ...y!, size: 1 }, [value]);
  yr.fill(yr[0]! as never);
  copyBox(raw(x!), x!.shape, x!.shape.map(() => 0), yr as Arr, y!.shape, paddings.map(([b]) => b), x!.shape);
});

register('concat', ({ inputs, outputs: [y], attrs }) => {
  const { axis } = attrs as { axis: number };
  const yr = raw(y!) as Arr;
  const outer = sizeOf(y!.shape.slice(0, axis));
  const inner = sizeOf(y!.shape.slice(axis + 1));
  const outChunk = y!.shape[axis]! * inner;
  let offset = 0;
  for (const x of inputs) {
    const chunk = x.shape[axis]! * inner;
    if (chunk > 0) {
      const xr = raw(x);
      for (let o = 0; o < outer; o++) yr.set(xr.subarray(o * chunk, (o + 1) * chunk) as ArrayLike<number>, o * outChunk + offset);
    }
    offset += chunk;
  }
});

register('split', ({ inputs: [x], outputs, attrs }) => {
  const { axis } = attrs as { axis: number };
  const xr = raw(x!);
  const outer = sizeOf(x!.shape.slice(0, axis));
  const inner = sizeOf(x!.shape.slice(axis + 1));
  const inChunk = x!.shape[axis]! * inner;
  let offset = 0;
  for (const y of outputs) {
    const chunk = y.shape[axis]! * inner;
    if (chunk > 0) {
      const yr = raw(y) as Arr;
      for (let o = 0; o < outer; o++) yr.set(xr.subarray(o * inChunk + offset, o * inChunk + offset + chunk) as ArrayLike<number>, o * chunk);
    }
    offset += chunk;
  }
});

register('flip', ({ inputs: [x], outputs: [y], attrs }) => {
  const { axes } = attrs as { axes: number[] };
  const xr = raw(x!);
  const yr = raw(y!) as Arr;
  const shape = x!.shape;
  const r = shape.length;
  if (r === 0 || axes.length === 0) {
    yr.set(xr as ArrayLike<number>);
    return;
  }
  // Read the input with negative strides on flipped axes, starting from their last element.
  const st = stridesOf(shape);
  const flipped = shape.map((_, i) => axes.includes(i));
  const srcStrides = st.map((s, i) => (flipped[i] ? -s : s));
  const srcBase = st.reduce((p, s, i) => p + (flipped[i] ? (shape[i]! - 1) * s : 0), 0);
  const last = r - 1;
  const len = shape[last]!;
  const lastStep = srcStrides[last]!;
  forEachRow(shape.slice(0, last), srcStrides.slice(0, last), st.slice(0, last), srcBase, 0, (s, d) => {
    if (lastStep === 1) yr.set(xr.subarray(s, s + len) as ArrayLike<number>, d);
    else for (let j = 0; j < len; j++) yr[d + j] = xr[s - j]!;
  });
});

register('tile', ({ inputs: [x], outputs: [y], attrs }) => {
  const { reps } = attrs as { reps: number[] };
  const xr = raw(x!);
  const yr = raw(y!) as Arr;
  const shape = x!.shape;
  const r = shape.length;
  if (r === 0) {
    yr[0] = xr[0]!;
    return;
  }
  // The output viewed as [r0, d0, r1, d1, ...]: its element at (k0, i0, k1, i1, ...) is x[i0, i1, ...].
  const counts = shape.flatMap((d, i) => [reps[i]!, d]);
  const xs = stridesOf(shape);
  const srcStrides = xs.flatMap((s) => [0, s]);
  const dstStrides = stridesOf(y!.shape).flatMap((s, i) => [s * shape[i]!, s]);
  const len = shape[r - 1]!;
  forEachRow(counts.slice(0, -1), srcStrides.slice(0, -1), dstStrides.slice(0, -1), 0, 0, (s, d) => {
    yr.set(xr.subarray(s, s + len) as ArrayLike<number>, d);
  });
});
