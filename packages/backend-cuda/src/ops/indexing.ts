/** Indexing kernels: gather, embedding, takeAlongAxis, scatterAdd(AlongAxis), oneHot, topk, cumsum. */
import { sizeOf } from '@ring-linear/core';
import { DTYPE_SUFFIX, moduleSpec } from '../kernels/sources.js';
import { blocksFor, encodeScalar, ptr, register, width, type Ctx } from './common.js';

/** [outer, n, inner] around an axis. */
function around(shape: readonly number[], axis: number) {
  return { outer: sizeOf(shape.slice(0, axis)), n: shape[axis]!, inner: sizeOf(shape.slice(axis + 1)) };
}

register('gather', ({ backend: b, inputs: [x, idx], outputs: [y], attrs }: Ctx<{ axis: number }>) => {
  const { outer, n, inner } = around(x!.shape, attrs.axis);
  b.kernel(moduleSpec('misc'), `gather_w${width(x!.dtype)}`).launch1D(y!.size, [ptr(x!), ptr(idx!), ptr(y!), outer, n, idx!.size, inner]);
});

register('embedding', ({ backend: b, inputs: [ids, w], outputs: [y] }: Ctx) => {
  const [V, D] = w!.shape as [number, number];
  b.kernel(moduleSpec('misc'), `gather_w${width(w!.dtype)}`).launch1D(y!.size, [ptr(w!), ptr(ids!), ptr(y!), 1, V, ids!.size, D]);
});

register('takeAlongAxis', ({ backend: b, inputs: [x, idx], outputs: [y], attrs }: Ctx<{ axis: number }>) => {
  const { outer, n, inner } = around(x!.shape, attrs.axis);
  b.kernel(moduleSpec('misc'), `take_along_w${width(x!.dtype)}`).launch1D(y!.size, [ptr(x!), ptr(idx!), ptr(y!), outer, n, idx!.shape[attrs.axis]!, inner]);
});

function scatter(along: boolean) {
  return ({ backend: b, inputs: [x, idx, upd], outputs: [y], attrs }: Ctx<{ axis: number }>) => {
    const dt = x!.dtype;
    const s = DTYPE_SUFFIX[dt];
    const spec = moduleSpec('index', dt);
    const { outer, n, inner } = around(x!.shape, attrs.axis);
    const J = upd!.shape[attrs.axis]!;
    const total = x!.size;
    // Floats accumulate in an f32 copy and round once; i32 adds in place (4-byte compute type either way).
    const acc = b.temp(total * 4);
    b.kernel(spec, `scatter_init_${s}`).launch1D(total, [ptr(x!), acc.ptr, total]);
    b.kernel(spec, `scatter_add_${s}`).launch1D(outer * inner, [acc.ptr, ptr(idx!), ptr(upd!), outer, n, J, inner, along ? 1 : 0]);
    b.kernel(spec, `scatter_store_${s}`).launch1D(total, [acc.ptr, ptr(y!), total]);
    b.releaseTemp(acc);
  };
}
register('scatterAdd', scatter(false));
register('scatterAddAlongAxis', scatter(true));

register('oneHot', ({ backend: b, inputs: [idx], outputs: [y], attrs }: Ctx<{ depth: number }>) => {
  const w = width(y!.dtype);
  b.kernel(moduleSpec('misc'), `one_hot_w${w}`).launch1D(y!.size, [ptr(idx!), ptr(y!), idx!.size, attrs.depth, encodeScalar(1, y!.dtype)]);
});

register('topk', ({ backend: b, inputs: [x], outputs: [vals, inds], attrs }: Ctx<{ k: number; axis: number; largest: boolean }>) => {
  const { outer, n, inner } = around(x!.shape, attrs.axis);
  if (attrs.k === 0) return;
  const name = `${attrs.largest ? 'topk_largest' : 'topk_smallest'}_${DTYPE_SUFFIX[x!.dtype]}`;
  b.kernel(moduleSpec('index', x!.dtype), name).launch([outer * inner, 1, 1], [256, 1, 1], [ptr(x!), ptr(vals!), ptr(inds!), outer, n, inner, attrs.k]);
});

register('cumsum', ({ backend: b, inputs: [x], outputs: [y], attrs }: Ctx<{ axis: number; exclusive: boolean; reverse: boolean }>) => {
  const { outer, n, inner } = around(x!.shape, attrs.axis);
  b.kernel(moduleSpec('index', x!.dtype), `cumsum_${DTYPE_SUFFIX[x!.dtype]}`)
    .launch([blocksFor(outer * inner), 1, 1], [256, 1, 1], [ptr(x!), ptr(y!), outer, n, inner, attrs.exclusive ? 1 : 0, attrs.reverse ? 1 : 0]);
});

