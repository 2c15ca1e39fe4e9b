/** Reduction kernels. Accumulation in float64 (wider than the f32 the contract asks for). */
import { stridesOf, type TensorInfo } from '@ring-linear/core';
import { commit, outValues, register, values } from '../util.js';

/**
 * For each input element, the flat index of the output element it reduces into. Visiting inputs in
 * flat order visits each output's reduced elements in increasing index order (stable argmax ties).
 */
export function reductionMap(shape: readonly number[], axes: readonly number[]): { map: Int32Array; outSize: number } {
  const keepDims = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const outStrides = stridesOf(keepDims).map((s, i) => (axes.includes(i) ? 0 : s));
  const n = shape.reduce((a, b) => a * b, 1);
  const outSize = keepDims.reduce((a, b) => a * b, 1);
  const map = new Int32Array(n);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let o = 0;
  for (let i = 0; i < n; i++) {
    map[i] = o;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      o += outStrides[d]!;
      if (idx[d]! < shape[d]!) break;
      o -= outStrides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return { map, outSize };
}

/** [outer, inner] fast path when the reduced axes are the trailing ones. */
function trailing(shape: readonly number[], axes: readonly number[]): number {
  const r = shape.length;
  if (axes.length === 0) return 1;
  for (let k = 0; k < axes.length; k++) if (axes[axes.length - 1 - k] !== r - 1 - k) return -1;
  return axes.reduce((p, a) => p * shape[a]!, 1);
}

/**
 * When the reduced axes are consecutive (a, a+1, ..., b), the input is [outer, len, inner] with
 * len the product of the reduced dims and the output is [outer, inner]: element (o, r, i) is at
 * (o*len + r)*inner + i and reduces into o*inner + i. Null otherwise (or for no axes).
 * Walking r upward visits each output's elements in increasing flat index order, as reductionMap
 * does, so sums, first-NaN and first-index ties come out the same.
 */
function consecutive(shape: readonly number[], axes: readonly number[]): { outer: number; len: number; inner: number } | null {
  if (axes.length === 0) return null;
  for (let k = 1; k < axes.length; k++) if (axes[k] !== axes[k - 1]! + 1) return null;
  const a = axes[0]!;
  const b = axes[axes.length - 1]!;
  let outer = 1;
  let len = 1;
  let inner = 1;
  for (let d = 0; d < shape.length; d++) {
    if (d < a) outer *= shape[d]!;
    else if (d <= b) len *= shape[d]!;
    else inner *= shape[d]!;
  }
  return { outer, len, inner };
}

type Attrs = { axes: number[]; keepDims: boolean };

/**
 * max (isMax) or min over axes: float64 compares in flat order; a NaN takes over (and only a later
 * NaN replaces it), so any NaN in a slice gives NaN. Inlined loops (no per-element callback).
 */
function extremeKernel(isMax: boolean) {
  return ({ inputs: [x], outputs: [y], attrs }: { inputs: readonly TensorInfo[]; outputs: readonly TensorInfo[]; attrs: Attrs }) => {
    const xv = values(x!);
    const yv = outValues(y!);
    const m = y!.size;
    const acc = new Float64Array(m).fill(isMax ? -Infinity : Infinity);
    const g = consecutive(x!.shape, attrs.axes);
    if (attrs.axes.length === 0) {
      for (let i = 0; i < m; i++) acc[i] = xv[i]!;
    } else if (g) {
      const { outer, len, inner } = g;
      for (let o = 0; o < outer; o++) {
        const ob = o * inner;
        for (let r = 0; r < len; r++) {
          const xb = (o * len + r) * inner;
          if (isMax) {
            for (let i = 0; i < inner; i++) {
              const v = xv[xb + i]!;
              if (v > acc[ob + i]! || v !== v) acc[ob + i] = v;
            }
          } else {
            for (let i = 0; i < inner; i++) {
              const v = xv[xb + i]!;
              if (v < acc[ob + i]! || v !== v) acc[ob + i] = v;
            }
          }
        }
      }
    } else {
      const { map } = reductionMap(x!.shape, attrs.axes);
      for (let i = 0; i < x!.size; i++) {
        const v = xv[i]!;
        const o = map[i]!;
        if ((isMax ? v > acc[o]! : v < acc[o]!) || v !== v) acc[o] = v;
      }
    }
    for (let o = 0; o < m; o++) yv[o] = acc[o]!;
    commit(y!, yv);
  };
}

/** Leading-axes case: reducing axes 0..k-1 keeps a contiguous trailing block (column sums). */
function leading(shape: readonly number[], axes: readonly number[]): number {
  for (let k = 0; k < axes.length; k++) if (axes[k] !== k) return -1;
  return shape.slice(axes.length).reduce((p, d) => p * d, 1);
}

/** sum/mean with inlined loops: these run on every broadcast gradient, so no per-element calls. */
function additiveKernel(isMean: boolean) {
  return ({ inputs: [x], outputs: [y], attrs }: { inputs: readonly TensorInfo[]; outputs: readonly TensorInfo[]; attrs: Attrs }) => {
    const xv = values(x!);
    const yv = outValues(y!);
    const count = attrs.axes.reduce((p, a) => p * x!.shape[a]!, 1);
    const n = x!.size;
    const m = y!.size;
    const acc = new Float64Array(m);
    const inner = trailing(x!.shape, attrs.axes);
    const lead = inner > 0 ? -1 : leading(x!.shape, attrs.axes);
    if (inner > 0) {
      for (let o = 0; o < m; o++) {
        let a = 0;
        const base = o * inner;
        for (let j = 0; j < inner; j++) a += xv[base + j]!;
        acc[o] = a;
      }
    } else if (lead > 0) {
      for (let i = 0; i < n; i += lead) for (let j = 0; j < lead; j++) acc[j] += xv[i + j]!;
    } else if (consecutive(x!.shape, attrs.axes)) {
      // Middle axes: [outer, len, inner] -> [outer, inner], r upward (the map's order).
      const { outer, len, inner } = consecutive(x!.shape, attrs.axes)!;
      for (let o = 0; o < outer; o++) {
        const ob = o * inner;
        for (let r = 0; r < len; r++) {
          const xb = (o * len + r) * inner;
          for (let i = 0; i < inner; i++) acc[ob + i] += xv[xb + i]!;
        }
      }
    } else {
      const { map } = reductionMap(x!.shape, attrs.axes);
      for (let i = 0; i < n; i++) acc[map[i]!] += xv[i]!;
    }
    if (isMean) for (let o = 0; o < m; o++) yv[o] = acc[o]! / count;
    else yv.set(acc);
    commit(y!, yv);
  };
}

register('sum', additiveKernel(false));
register('mean', additiveKernel(true));
register('max', extremeKernel(true));
register('min', extremeKernel(false));

register('logsumexp', ({ inputs: [x], outputs: [y], attrs }) => {
  const { axes } = attrs as Attrs;
  const xv = values(x!);
  const yv = outValues(y!);
  const n = y!.size;
  const m = new Float64Array(n).fill(-Infinity);
  const s = new Float64Array(n);
  // exp(x - max): when max is +-inf the shift is 0 (avoids inf - inf = NaN).
  const term = (v: number, mo: number) => Math.exp(Number.isFinite(mo) ? v - mo : v === mo ? 0 : -Infinity);
  const g = consecutive(x!.shape, axes);
  if (g && g.inner === 1) {
    // Contiguous rows (reducing the last axes): no index map.
    const { len } = g;
    for (let o = 0; o < n; o++) {
      const base = o * len;
      let mo = -Infinity;
      for (let r = 0; r < len; r++) {
        const v = xv[base + r]!;
        if (v > mo || v !== v) mo = v;
      }
      let so = 0;
      if (Number.isFinite(mo)) for (let r = 0; r < len; r++) so += Math.exp(xv[base + r]! - mo);
      else for (let r = 0; r < len; r++) so += term(xv[base + r]!, mo);
      m[o] = mo;
      s[o] = so;
    }
  } else {
    const { map } = reductionMap(x!.shape, axes);
    for (let i = 0; i < x!.size; i++) {
      const v = xv[i]!;
      const o = map[i]!;
      if (v > m[o]! || v !== v) m[o] = v;
    }
    for (let i = 0; i < x!.size; i++) {
      const o = map[i]!;
      s[o] += term(xv[i]!, m[o]!);
    }
  }
  for (let o = 0; o < n; o++) yv[o] = Number.isFinite(m[o]!) ? m[o]! + Math.log(s[o]!) : m[o]!;
  commit(y!, yv);
});

for (const op of ['argmax', 'argmin'] as const) {
  const isMax = op === 'argmax';
  register(op, ({ inputs: [x], outputs: [y], attrs }) => {
    const { axis } = attrs as { axis: number };
    const xv = values(x!);
    const yv = outValues(y!);
    // x as [outer, len, inner] around the axis, output [outer, inner]. Candidates in increasing
    // index: a strictly better value, or the first NaN, takes over; so ties keep the lowest index
    // and a NaN, once met, wins.
    const { outer, len, inner } = consecutive(x!.shape, [axis])!;
    const best = new Float64Array(inner);
    for (let o = 0; o < outer; o++) {
      const ob = o * inner;
      const xb0 = o * len * inner;
      for (let i = 0; i < inner; i++) {
        best[i] = xv[xb0 + i]!;
        yv[ob + i] = 0;
      }
      for (let r = 1; r < len; r++) {
        const xb = xb0 + r * inner;
        for (let i = 0; i < inner; i++) {
          const b = best[i]!;
          if (b !== b) continue; // a NaN already won
          const v = xv[xb + i]!;
          if (v !== v || (isMax ? v > b : v < b)) {
            best[i] = v;
            yv[ob + i] = r;
          }
        }
      }
    }
  });
}
