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

type Attrs = { axes: number[]; keepDims: boolean };

function reduceKernel(
  init: number,
  step: (acc: number, v: number) => number,
  finish: (acc: number, count: number) => number,
) {
  return ({ inputs: [x], outputs: [y], attrs }: { inputs: readonly TensorInfo[]; outputs: readonly TensorInfo[]; attrs: Attrs }) => {
    const xv = values(x!);
    const yv = outValues(y!);
    const count = attrs.axes.reduce((p, a) => p * x!.shape[a]!, 1);
    const inner = trailing(x!.shape, attrs.axes);
    const acc = new Float64Array(y!.size).fill(init);
    if (inner > 0) {
      for (let o = 0; o < y!.size; o++) {
        let a = init;
        const base = o * inner;
        for (let j = 0; j < inner; j++) a = step(a, xv[base + j]!);
        acc[o] = a;
      }
    } else {
      const { map } = reductionMap(x!.shape, attrs.axes);
      for (let i = 0; i < x!.size; i++) acc[map[i]!] = step(acc[map[i]!]!, xv[i]!);
    }
    for (let o = 0; o < y!.size; o++) yv[o] = finish(acc[o]!, count);
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
    } else {
      const { map } = reductionMap(x!.shape, attrs.axes);
      for (let i = 0; i < n; i++) acc[map[i]!] += xv[i]!;
    }
    if (isMean) for (let o = 0; o < m; o++) yv[o] = acc[o]! / count;
    else yv.set(acc);
    commit(y!, yv);
  };
}

const id = (a: number) => a;
register('sum', additiveKernel(false));
register('mean', additiveKernel(true));
register('max', reduceKernel(-Infinity, (a, v) => (v > a || v !== v ? v : a), id));
register('min', reduceKernel(Infinity, (a, v) => (v < a || v !== v ? v : a), id));

register('logsumexp', ({ inputs: [x], outputs: [y], attrs }) => {
  const { axes } = attrs as Attrs;
  const xv = values(x!);
  const yv = outValues(y!);
  const { map } = reductionMap(x!.shape, axes);
  const m = new Float64Array(y!.size).fill(-Infinity);
  for (let i = 0; i < x!.size; i++) {
    const v = xv[i]!;
    const o = map[i]!;
    if (v > m[o]! || v !== v) m[o] = v;
  }
  const s = new Float64Array(y!.size);
  for (let i = 0; i < x!.size; i++) {
    const o = map[i]!;
    const mo = m[o]!;
    // exp(x - max): when max is +-inf the shift is 0 (avoids inf - inf = NaN).
    s[o] += Math.exp(Number.isFinite(mo) ? xv[i]! - mo : xv[i]! === mo ? 0 : -Infinity);
  }
  for (let o = 0; o < y!.size; o++) yv[o] = Number.isFinite(m[o]!) ? m[o]! + Math.log(s[o]!) : m[o]!;
  commit(y!, yv);
});

for (const op of ['argmax', 'argmin'] as const) {
  register(op, ({ inputs: [x], outputs: [y], attrs }) => {
    const { axis } = attrs as { axis: number };
    const xv = values(x!);
    const yv = outValues(y!);
    const { map } = reductionMap(x!.shape, [axis]);
    const best = new Float64Array(y!.size).fill(op === 'argmax' ? -Infinity : Infinity);
    const seen = new Uint8Array(y!.size);
    const stride = stridesOf(x!.shape)[axis]!;
    const len = x!.shape[axis]!;
    for (let i = 0; i < x!.size; i++) {
      const o = map[i]!;
      const v = xv[i]!;
      const b = best[o]!;
      if (b !== b) continue; // a NaN already won
      const better = !seen[o] || v !== v || (op === 'argmax' ? v > b : v < b);
      if (better) {
        best[o] = v;
        seen[o] = 1;
        yv[o] = Math.floor(i / stride) % len;
      }
    }
  });
}
