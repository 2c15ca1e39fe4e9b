/**
 * Data movement: transpose, slice, concat, split, pad, flip, tile. Each is one strided raw copy
 * (kernels/elementwise.cuh strided_copy, or a DMA when contiguous), exact for every dtype.
 */
import { stridesOf } from '@ring-linear/core';
import { fillTensor, ptr, register, stridedCopy, width, type Ctx } from './common.js';

register('transpose', ({ backend: b, inputs: [x], outputs: [y], attrs }: Ctx<{ perm: number[] }>) => {
  const xs = stridesOf(x!.shape);
  stridedCopy(b, width(x!.dtype), ptr(x!), ptr(y!), y!.shape, attrs.perm.map((p) => xs[p]!), stridesOf(y!.shape));
});

register('slice', ({ backend: b, inputs: [x], outputs: [y], attrs }: Ctx<{ begin: number[]; size: number[] }>) => {
  const xs = stridesOf(x!.shape);
  const off = attrs.begin.reduce((a, v, d) => a + v * xs[d]!, 0);
  stridedCopy(b, width(x!.dtype), ptr(x!), ptr(y!), y!.shape, xs, stridesOf(y!.shape), off, 0);
});

register('concat', ({ backend: b, inputs, outputs: [y], attrs }: Ctx<{ axis: number }>) => {
  const ys = stridesOf(y!.shape);
  let at = 0;
  for (const x of inputs) {
    stridedCopy(b, width(x.dtype), ptr(x), ptr(y!), x.shape, stridesOf(x.shape), ys, 0, at * ys[attrs.axis]!);
    at += x.shape[attrs.axis]!;
  }
});

register('split', ({ backend: b, inputs: [x], outputs, attrs }: Ctx<{ axis: number }>) => {
  const xs = stridesOf(x!.shape);
  let at = 0;
  for (const y of outputs) {
    stridedCopy(b, width(x!.dtype), ptr(x!), ptr(y), y.shape, xs, stridesOf(y.shape), at * xs[attrs.axis]!, 0);
    at += y.shape[attrs.axis]!;
  }
});

register('pad', ({ backend: b, inputs: [x], outputs: [y], attrs }: Ctx<{ paddings: [number, number][]; value: number }>) => {
  fillTensor(b, y!, attrs.value);
  const ys = stridesOf(y!.shape);
  const off = attrs.paddings.reduce((a, [before], d) => a + before * ys[d]!, 0);
  stridedCopy(b, width(x!.dtype), ptr(x!), ptr(y!), x!.shape, stridesOf(x!.shape), ys, 0, off);
});

register('flip', ({ backend: b, inputs: [x], outputs: [y], attrs }: Ctx<{ axes: number[] }>) => {
  const xs = stridesOf(x!.shape);
  const src = xs.map((s, d) => (attrs.axes.includes(d) ? -s : s));
  const off = attrs.axes.reduce((a, d) => a + (x!.shape[d]! - 1) * xs[d]!, 0);
  stridedCopy(b, width(x!.dtype), ptr(x!), ptr(y!), y!.shape, src, stridesOf(y!.shape), off, 0);
});

register('tile', ({ backend: b, inputs: [x], outputs: [y], attrs }: Ctx<{ reps: number[] }>) => {
  // Iterate [r0, d0, r1, d1, ...]: the rep axes have source stride 0.
  const xs = stridesOf(x!.shape);
  const shape = x!.shape.flatMap((d, i) => [attrs.reps[i]!, d]);
  const src = xs.flatMap((s) => [0, s]);
  stridedCopy(b, width(x!.dtype), ptr(x!), ptr(y!), shape, src, stridesOf(shape));
});
