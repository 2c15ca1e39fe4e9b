/** Creation kernels: arange, causalMask, randomUniform, randomNormal (Philox, bit-compatible with core). */
import { DTYPE_SUFFIX, moduleSpec } from '../kernels/sources.js';
import { ptr, register, type Ctx } from './common.js';

register('arange', ({ backend: b, outputs: [y], attrs }: Ctx<{ start: number; step: number }>) => {
  b.kernel(moduleSpec('creation', y!.dtype), `arange_${DTYPE_SUFFIX[y!.dtype]}`).launch1D(y!.size, [ptr(y!), y!.size, attrs.start, attrs.step]);
});

register('causalMask', ({ backend: b, outputs: [y], attrs }: Ctx<{ rows: number; cols: number; offset: number }>) => {
  b.kernel(moduleSpec('misc'), 'causal_mask').launch1D(y!.size, [ptr(y!), attrs.rows, attrs.cols, attrs.offset]);
});

interface Philox {
  key0: number;
  key1: number;
  counterLo: number;
  counterHi: number;
}

register('randomUniform', ({ backend: b, outputs: [y], attrs: a }: Ctx<Philox & { low: number; high: number }>) => {
  b.kernel(moduleSpec('creation', y!.dtype), `random_uniform_${DTYPE_SUFFIX[y!.dtype]}`)
    .launch1D(y!.size, [ptr(y!), y!.size, a.key0, a.key1, a.counterLo, a.counterHi, Math.fround(a.low), Math.fround(a.high)]);
});

register('randomNormal', ({ backend: b, outputs: [y], attrs: a }: Ctx<Philox & { mean: number; std: number }>) => {
  b.kernel(moduleSpec('creation', y!.dtype), `random_normal_${DTYPE_SUFFIX[y!.dtype]}`)
    .launch1D(y!.size, [ptr(y!), y!.size, a.key0, a.key1, a.counterLo, a.counterHi, a.mean, a.std]);
});
