/** Fused nn kernels: softmax, logSoftmax, rmsNorm, crossEntropy (kernels/nn.cuh). */
import { sizeOf } from '@ring-linear/core';
import { DTYPE_SUFFIX, moduleSpec } from '../kernels/sources.js';
import { blocksFor, ptr, register, type Ctx } from './common.js';

/** Threads per row for row kernels: enough to cover the row, 32..1024. */
export function rowThreads(len: number): number {
  return Math.min(1024, Math.max(32, 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(len / 4))))));
}

/**
 * The rmsNorm kernel's block size for rows of length d: a thread per chunk of 8 elements (a power
 * of two, 32..1024). It fixes the summation order of the row's sum of squares (kernels/nn.cuh), so
 * every fused kernel that must reproduce rmsNorm's values passes this same number.
 */
export function rmsNormThreads(d: number): number {
  return Math.min(1024, Math.max(32, 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(d / 8))))));
}

for (const [op, name] of [['softmax', 'softmax'], ['logSoftmax', 'log_softmax']] as const) {
  register(op, ({ backend: b, inputs: [x], outputs: [y], attrs }: Ctx<{ axis: number }>) => {
    const s = DTYPE_SUFFIX[x!.dtype];
    const spec = moduleSpec('nn', x!.dtype);
    const outer = sizeOf(x!.shape.slice(0, attrs.axis));
    const len = x!.shape[attrs.axis]!;
    const inner = sizeOf(x!.shape.slice(attrs.axis + 1));
    if (inner === 1) {
      b.kernel(spec, `${name}_rows_${s}`).launch([outer, 1, 1], [rowThreads(len), 1, 1], [ptr(x!), ptr(y!), outer, len]);
    } else {
      b.kernel(spec, `${name}_cols_${s}`).launch([blocksFor(outer * inner), 1, 1], [256, 1, 1], [ptr(x!), ptr(y!), outer, len, inner]);
    }
  });
}

register('rmsNorm', ({ backend: b, inputs: [x, w], outputs: [y], attrs }: Ctx<{ eps: number }>) => {
  const d = x!.shape[x!.shape.length - 1]!;
  const rows = x!.size / d;
  const name = `rms_norm_${DTYPE_SUFFIX[x!.dtype]}_${DTYPE_SUFFIX[w!.dtype]}`;
  b.kernel(moduleSpec('nn', x!.dtype), name).launch([rows, 1, 1], [rmsNormThreads(d), 1, 1], [ptr(x!), ptr(w!), ptr(y!), rows, d, Math.fround(attrs.eps)]);
});

register('crossEntropy', ({ backend: b, inputs: [logits, targets], outputs: [y], attrs }: Ctx<{ ignoreIndex: number; reduction: 'mean' | 'sum' | 'none' }>) => {
  const vocab = logits!.shape[logits!.shape.length - 1]!;
  const rows = targets!.size;
  const spec = moduleSpec('nn', logits!.dtype);
  const kernel = b.kernel(spec, `cross_entropy_rows_${DTYPE_SUFFIX[logits!.dtype]}`);
  // The ignore index only matters inside [0, V); outside it every target is skipped anyway.
  const ignore = attrs.ignoreIndex >= -2147483648 && attrs.ignoreIndex <= 2147483647 ? attrs.ignoreIndex : -1;
  if (attrs.reduction === 'none') {
    if (rows > 0) kernel.launch([rows, 1, 1], [rowThreads(vocab), 1, 1], [ptr(logits!), ptr(targets!), ptr(y!), 0, rows, vocab, ignore]);
    return;
  }
  const scratch = b.temp(Math.max(1, rows) * 8);
  const loss = scratch.ptr;
  const counted = scratch.ptr + Math.max(1, rows) * 4;
  if (rows > 0) kernel.launch([rows, 1, 1], [rowThreads(vocab), 1, 1], [ptr(logits!), ptr(targets!), loss, counted, rows, vocab, ignore]);
  b.kernel(moduleSpec('misc'), 'cross_entropy_total').launch([1, 1, 1], [1024, 1, 1], [loss, counted, ptr(y!), rows, attrs.reduction === 'sum' ? 1 : 0]);
  b.releaseTemp(scratch);
});
