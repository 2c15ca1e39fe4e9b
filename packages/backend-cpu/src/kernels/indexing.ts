/**
 * Indexing kernels: gather, takeAlongAxis, scatterAdd, scatterAddAlongAxis, oneHot, embedding,
 * topk, cumsum. Index rule (core ops/indexing.ts): an index into a length-n axis is valid in
 * [-n, n) and wraps when negative; gathers read 0 for invalid ones, scatters skip them.
 * Gathers copy raw codes (exact); scatters and cumsum accumulate floats in float64 and round once.
 */
import { decodeToF32, encodeF32, sizeOf, type StorageArray, type TensorInfo } from '@ring-linear/core';
import { commit, outValues, raw, register, storeNumbers, values } from '../util.js';

type Arr = StorageArray & { set(src: ArrayLike<number>, offset?: number): void };

/** The wrapped index, or -1 when it is outside [-n, n). */
const wrap = (i: number, n: number) => (i < 0 ? (i >= -n ? i + n : -1) : i < n ? i : -1);

/** [outer, n, inner] around an axis. */
function around(shape: readonly number[], axis: number): [number, number, number] {
  return [sizeOf(shape.slice(0, axis)), shape[axis]!, sizeOf(shape.slice(axis + 1))];
}

/** out[o, j, :] = x[o, idx[j], :] (zeros for invalid indices); x viewed as [outer, n, inner]. */
function gatherRows(x: TensorInfo, idx: Int32Array, y: TensorInfo, axis: number): void {
  const [outer, n, inner] = around(x.shape, axis);
  const xr = raw(x);
  const yr = raw(y) as Arr;
  const m = idx.length;
  // Code 0 is zero (false) in every dtype's storage, so invalid rows are a raw fill.
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      const t = wrap(idx[j]!, n);
      const dst = (o * m + j) * inner;
      if (t < 0) yr.fill(0, dst, dst + inner);
      else {
        const src = (o * n + t) * inner;
        if (inner === 1) yr[dst] = xr[src]!;
        else yr.set(xr.subarray(src, src + inner) as ArrayLike<number>, dst);
      }
    }
  }
}

register('gather', ({ inputs: [x, idx], outputs: [y], attrs }) => {
  gatherRows(x!, raw(idx!) as Int32Array, y!, (attrs as { axis: number }).axis);
});

register('embedding', ({ inputs: [ids, w], outputs: [y] }) => {
  gatherRows(w!, raw(ids!) as Int32Array, y!, 0);
});

register('takeAlongAxis', ({ inputs: [x, idx], outputs: [y], attrs }) => {
  const { axis } = attrs as { axis: number };
  const [outer, n, inner] = around(x!.shape, axis);
  const k = idx!.shape[axis]!;
  const xr = raw(x!);
  const ir = raw(idx!) as Int32Array;
  const yr = raw(y!);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      const base = (o * k + j) * inner;
      for (let i = 0; i < inner; i++) {
        const t = wrap(ir[base + i]!, n);
        yr[base + i] = t < 0 ? 0 : xr[(o * n + t) * inner + i]!;
      }
    }
  }
});

/** Writes float64 accumulators to a float or i32 output (i32 wraps mod 2^32). */
function storeAccumulated(y: TensorInfo, acc: Float64Array): void {
  if (y.dtype === 'i32') {
    const yr = raw(y) as Int32Array;
    for (let i = 0; i < acc.length; i++) yr[i] = acc[i]!; // ToInt32: wraps
    return;
  }
  const yv = outValues(y);
  yv.set(acc);
  commit(y, yv);
}

/**
 * Accumulators for the scatters: float64 for floats; for i32 the additions wrap at every step
 * (two's complement, as an int32 add does), which float64 would not once sums pass 2^53.
 */
function scatterInto(y: TensorInfo, x: TensorInfo, body: (add: (dst: number, v: number) => void) => void): void {
  const xv = values(x);
  if (y.dtype === 'i32') {
    const yr = raw(y) as Int32Array;
    yr.set(xv as Int32Array);
    body((dst, v) => (yr[dst] = (yr[dst]! + v) | 0));
    return;
  }
  const acc = Float64Array.from(xv);
  body((dst, v) => (acc[dst] += v));
  storeAccumulated(y, acc);
}

register('scatterAdd', ({ inputs: [x, idx, upd], outputs: [y], attrs }) => {
  const { axis } = attrs as { axis: number };
  const [outer, n, inner] = around(x!.shape, axis);
  const ir = raw(idx!) as Int32Array;
  const m = ir.length;
  // Rows nobody writes are copied raw (exact, and cheap for the usual case: a few rows of an
  // embedding gradient); only destination rows are summed, in float64 (i32: wrapping adds).
  (raw(y!) as Arr).set(raw(x!) as ArrayLike<number>);
  // Valid updates grouped by destination, each group in increasing j (a stable counting sort).
  const dest = new Int32Array(m);
  const count = new Int32Array(n + 1);
  for (let j = 0; j < m; j++) {
    dest[j] = wrap(ir[j]!, n);
    if (dest[j]! >= 0) count[dest[j]! + 1]!++;
  }
  for (let t = 0; t < n; t++) count[t + 1]! += count[t]!;
  const start = count.slice(0, n);
  const byDest = new Int32Array(count[n]!);
  for (let j = 0; j < m; j++) if (dest[j]! >= 0) byDest[start[dest[j]!]!++] = j;
  const uv = values(upd!);
  const isInt = x!.dtype === 'i32';
  const xv = isInt || x!.dtype === 'f32' ? (raw(x!) as Int32Array | Float32Array) : null;
  const acc = new Float64Array(inner);
  for (let t = 0; t < n; t++) {
    const lo = count[t]!;
    const hi = count[t + 1]!;
    if (lo === hi) continue;
    for (let o = 0; o < outer; o++) {
      const dst = (o * n + t) * inner;
      const row = xv ? xv.subarray(dst, dst + inner) : rowValues(x!, dst, inner);
      for (let i = 0; i < inner; i++) acc[i] = row[i]!;
      for (let g = lo; g < hi; g++) {
        const src = (o * m + byDest[g]!) * inner;
        if (isInt) for (let i = 0; i < inner; i++) acc[i] = (acc[i]! + uv[src + i]!) | 0;
        else for (let i = 0; i < inner; i++) acc[i] += uv[src + i]!;
      }
      storeRow(y!, dst, acc);
    }
  }
});

/** Decoded values of `len` elements of a low-precision float tensor from `start`. */
function rowValues(info: TensorInfo, start: number, len: number): Float32Array {
  return decodeToF32(info.dtype as 'f16', (raw(info) as Uint16Array).subarray(start, start + len));
}

/** Writes float64 values (rounded to the dtype; i32 as is) to `acc.length` elements from `start`. */
function storeRow(info: TensorInfo, start: number, acc: Float64Array): void {
  const r = raw(info);
  if (info.dtype === 'f32' || info.dtype === 'i32') (r as Arr).set(acc, start);
  else encodeF32(info.dtype as 'f16', acc, (r as Uint16Array).subarray(start, start + acc.length));
}

register('scatterAddAlongAxis', ({ inputs: [x, idx, upd], outputs: [y], attrs }) => {
  const { axis } = attrs as { axis: number };
  const [outer, n, inner] = around(x!.shape, axis);
  const k = idx!.shape[axis]!;
  const ir = raw(idx!) as Int32Array;
  const uv = values(upd!);
  scatterInto(y!, x!, (add) => {
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < k; j++) {
        const base = (o * k + j) * inner;
        for (let i = 0; i < inner; i++) {
          const t = wrap(ir[base + i]!, n);
          if (t >= 0) add((o * n + t) * inner + i, uv[base + i]!);
        }
      }
    }
  });
});

register('oneHot', ({ inputs: [idx], outputs: [y], attrs }) => {
  const { depth } = attrs as { depth: number };
  const ir = raw(idx!) as Int32Array;
  const yr = raw(y!);
  // Raw code of 1 in the output dtype; code 0 is zero in every dtype.
  storeNumbers({ ...y!, size: 1 }, [1]);
  const one = yr[0]!;
  yr.fill(0);
  for (let j = 0; j < ir.length; j++) {
    const c = ir[j]!;
    if (c >= 0 && c < depth) yr[j * depth + c] = one;
  }
});

register('topk', ({ inputs: [x], outputs: [yv, yi], attrs }) => {
  const { k, axis, largest } = attrs as { k: number; axis: number; largest: boolean };
  if (k === 0) return;
  const [outer, n, inner] = around(x!.shape, axis);
  const xv = values(x!);
  const xr = raw(x!);
  const vr = raw(yv!);
  const ir = raw(yi!) as Int32Array;
  // Rank: NaN above every number. Order: by rank (descending for largest), then lower index
  // first, so the result never depends on a sort's stability. -0 and +0 tie.
  const sign = largest ? 1 : -1;
  const keys = new Float64Array(n);
  const nan = new Uint8Array(n);
  const cmp = (a: number, b: number): number => {
    if (nan[a] !== nan[b]) return sign * (nan[b]! - nan[a]!);
    if (!nan[a] && keys[a] !== keys[b]) return sign * (keys[b]! - keys[a]! > 0 ? 1 : -1);
    return a - b;
  };
  // Small k (sampling's top-50 of a vocabulary, the router's top-8): keep the best k in a sorted
  // buffer and reject most entries with one comparison against its last. Otherwise sort the row.
  const partial = k * 8 <= n;
  const order = partial ? new Int32Array(k) : new Int32Array(n);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      for (let j = 0; j < n; j++) {
        const v = xv[base + j * inner]!;
        nan[j] = v !== v ? 1 : 0;
        keys[j] = v;
      }
      if (partial) {
        let count = 0;
        for (let j = 0; j < n; j++) {
          if (count === k) {
            if (cmp(j, order[k - 1]!) > 0) continue;
            count--; // the last one drops out
          }
          // Insert after every entry that comes first (entries equal to j have lower indices).
          let lo = 0;
          let hi = count;
          while (lo < hi) {
            const mid = (lo + hi) >> 1;
            if (cmp(order[mid]!, j) < 0) lo = mid + 1;
            else hi = mid;
          }
          order.copyWithin(lo + 1, lo, count);
          order[lo] = j;
          count++;
        }
      } else {
        for (let j = 0; j < n; j++) order[j] = j;
        order.sort(cmp);
      }
      for (let j = 0; j < k; j++) {
        const src = order[j]!;
        const dst = (o * k + j) * inner + i;
        vr[dst] = xr[base + src * inner]!;
        ir[dst] = src;
      }
    }
  }
});

register('cumsum', ({ inputs: [x], outputs: [y], attrs }) => {
  const { axis, exclusive, reverse } = attrs as { axis: number; exclusive: boolean; reverse: boolean };
  const [outer, n, inner] = around(x!.shape, axis);
  const xv = values(x!);
  const isInt = x!.dtype === 'i32';
  const yv = outValues(y!);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      // Floats in float64; i32 wraps at every step as an int32 add does.
      let acc = 0;
      for (let s = 0; s < n; s++) {
        const p = base + (reverse ? n - 1 - s : s) * inner;
        const v = xv[p]!;
        if (exclusive) {
          yv[p] = acc;
          acc = isInt ? (acc + v) | 0 : acc + v;
        } else {
          acc = isInt ? (acc + v) | 0 : acc + v;
          yv[p] = acc;
        }
      }
    }
  }
  commit(y!, yv);
});
