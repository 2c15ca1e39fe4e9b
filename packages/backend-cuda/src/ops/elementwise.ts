/** Elementwise kernels: unary, binary (with broadcasting), where, cast, copy, clip, fill, broadcastTo. */
import { bytesPerElement, shapesEqual, type TensorInfo } from '@ring-linear/core';
import { BINARY_EXPR, binaryKernelName, castKernelName, moduleSpec, UNARY_EXPR, unaryKernelName, DTYPE_SUFFIX } from '../kernels/sources.js';
import { blocksFor, fillTensor, ptr, register, stridedCopy, stridesArg, vecWidth, width, type Ctx } from './common.js';
import { broadcastStrides, coalesce } from './strides.js';
import { stridesOf } from '@ring-linear/core';

/** Grid-stride launch over n elements processed `vec` at a time. */
function vecBlocks(n: number, vec: number): number {
  return blocksFor(Math.ceil(n / vec));
}

for (const op of Object.keys(UNARY_EXPR)) {
  register(op, ({ backend: b, inputs: [x], outputs: [y] }: Ctx) => {
    const n = y!.size;
    const bytes = bytesPerElement(x!.dtype);
    b.kernel(moduleSpec('unary', x!.dtype), unaryKernelName(op, x!.dtype)).launch([vecBlocks(n, vecWidth(bytes, bytes)), 1, 1], [256, 1, 1], [ptr(x!), ptr(y!), n]);
  });
}

/** Launches a binary op on the fastest path its shapes allow. */
export function binary(b: Ctx['backend'], op: string, a: TensorInfo, c: TensorInfo, y: TensorInfo): void {
  const n = y.size;
  const spec = moduleSpec('binary', a.dtype);
  const vec = vecWidth(bytesPerElement(a.dtype), bytesPerElement(y.dtype));
  const sameA = shapesEqual(a.shape, y.shape);
  const sameB = shapesEqual(c.shape, y.shape);
  const args = [ptr(a), ptr(c), ptr(y), n];
  if (sameA && sameB) {
    b.kernel(spec, binaryKernelName(op, a.dtype, 'contig')).launch([vecBlocks(n, vec), 1, 1], [256, 1, 1], args);
  } else if (sameA && c.size === 1) {
    b.kernel(spec, binaryKernelName(op, a.dtype, 'sb')).launch([vecBlocks(n, vec), 1, 1], [256, 1, 1], args);
  } else if (sameB && a.size === 1) {
    b.kernel(spec, binaryKernelName(op, a.dtype, 'sa')).launch([vecBlocks(n, vec), 1, 1], [256, 1, 1], args);
  } else {
    const plan = coalesce(y.shape, [broadcastStrides(a.shape, y.shape), broadcastStrides(c.shape, y.shape)]);
    b.kernel(spec, binaryKernelName(op, a.dtype, 'bc')).launch1D(n, [...args, stridesArg(plan, n)]);
  }
}

for (const op of Object.keys(BINARY_EXPR)) {
  register(op, ({ backend: b, inputs: [a, c], outputs: [y] }: Ctx) => binary(b, op, a!, c!, y!));
}

register('where', ({ backend: b, inputs: [c, x, z], outputs: [y] }: Ctx) => {
  const n = y!.size;
  const plan = coalesce(y!.shape, [broadcastStrides(c!.shape, y!.shape), broadcastStrides(x!.shape, y!.shape), broadcastStrides(z!.shape, y!.shape)]);
  b.kernel(moduleSpec('misc'), `where_w${width(y!.dtype)}`).launch1D(n, [ptr(c!), ptr(x!), ptr(z!), ptr(y!), n, stridesArg(plan, n)]);
});

register('cast', ({ backend: b, inputs: [x], outputs: [y], attrs }: Ctx<{ saturate: boolean }>) => {
  const n = y!.size;
  // Same dtype: a copy, unless saturation can change values (inf -> max in f16, bf16 and E5M2).
  const satMatters = attrs.saturate && (x!.dtype === 'f16' || x!.dtype === 'bf16' || x!.dtype === 'f8e5m2');
  if (x!.dtype === y!.dtype && !satMatters) {
    b.rt.driver.copyDtoDAsync(ptr(y!), ptr(x!), n * bytesPerElement(x!.dtype), b.stream);
    return;
  }
  const vec = vecWidth(bytesPerElement(x!.dtype), bytesPerElement(y!.dtype));
  b.kernel(moduleSpec('cast', x!.dtype), castKernelName(x!.dtype, y!.dtype)).launch([vecBlocks(n, vec), 1, 1], [256, 1, 1], [ptr(x!), ptr(y!), n, attrs.saturate ? 1 : 0]);
});

register('copy', ({ backend: b, inputs: [x], outputs: [y] }: Ctx) => {
  b.rt.driver.copyDtoDAsync(ptr(y!), ptr(x!), y!.size * bytesPerElement(x!.dtype), b.stream);
});

register('clip', ({ backend: b, inputs: [x], outputs: [y], attrs }: Ctx<{ min: number; max: number }>) => {
  const isF = ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2'].includes(x!.dtype);
  // Integer dtypes clamp to the integers inside [min, max], as the reference does.
  const lo = isF ? attrs.min : Math.ceil(attrs.min);
  const hi = isF ? attrs.max : Math.floor(attrs.max);
  b.kernel(moduleSpec('unary', x!.dtype), `clip_${DTYPE_SUFFIX[x!.dtype]}`).launch1D(y!.size, [ptr(x!), ptr(y!), y!.size, lo, hi]);
});

register('fill', ({ backend: b, outputs: [y], attrs }: Ctx<{ value: number }>) => fillTensor(b, y!, attrs.value));

register('broadcastTo', ({ backend: b, inputs: [x], outputs: [y] }: Ctx) => {
  stridedCopy(b, width(x!.dtype), ptr(x!), ptr(y!), y!.shape, broadcastStrides(x!.shape, y!.shape), stridesOf(y!.shape));
});
