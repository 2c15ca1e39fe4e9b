/**
 * Indexing kernels: gather, takeAlongAxis, scatterAdd, scatterAddAlongAxis, oneHot, embedding,
 * topk, cumsum. Index rule (core ops/indexing.ts): an index into a length-n axis is valid in
 * [-n, n) and wraps when negative; gathers read 0 for invalid ones, scatters skip them.
 * Gathers copy raw codes (exact); scatters and cumsum accumulate floats in float64 and round once.
 */
import { sizeOf, type StorageArray, type TensorInfo } from '@ring-linear/core';
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
  const uv = values(upd!);
  scatterInto(y!, x!, (add) => {
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < m; j++) {
        const t = wrap(ir[j]!, n);
        if (t < 0) continue;
        const src = (o * m + j) * inner;
        const dst = (o * n + t) * inner;
        for (let i = 0; i < inner; i++) add(dst + i, uv[src + i]!);
      }
    }
  });
});

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
  const [outer, n, inner] = around(x!.shape, axis);
  const xv = values(x!);
  const xr = raw(x!);
  const vr = raw(yv!);
  const ir = raw(yi!) as Int32Array;
  // Rank: NaN above every number. Order: by rank (descending for largest), then lower index
  // first, so the result does not depend on the sort's stability. -0 and +0 tie.
  const sign = largest ? 1 : -1;
  const order = new Int32Array(n);
  const keys = new Float64Array(n);
  const nan = new Uint8Array(n);
  const cmp = (a: number, b: number): number => {
    if (nan[a] !== nan[b]) return sign * (nan[b]! - nan[a]!);
    if (!nan[a] && keys[a] !== keys[b]) return sign * (keys[b]! - keys[a]! > 0 ? 1 : -1);
    return a - b;
  };
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      for (let j = 0; j < n; j++) {
        const v = xv[base + j * inner]!;
        order[j] = j;
        nan[j] = v !== v ? 1 : 0;
        keys[j] = v;
      }
      order.sort(cmp);
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
