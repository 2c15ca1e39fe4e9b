/** fill and broadcastTo (reshape is a view: no kernel). */
import { encodeF32, isLowPrecisionFloat, type DType } from '@ring-linear/core';
import { hostCode } from './elementwise.js';
import { runMap } from './map.js';
import { register } from './util.js';

/** The storage code of a number in `dtype`, exactly as a cast of it gives. */
export function codeOf(value: number, dtype: DType): number {
  if (isLowPrecisionFloat(dtype)) return encodeF32(dtype, [value])[0]!;
  return hostCode(value, dtype);
}

register('fill', ({ backend, outputs: [y], attrs }) => {
  const { value } = attrs as { value: number };
  runMap(backend, { key: 'fill', inputs: [], output: y!, expr: 'p0', rawOut: true, params: [codeOf(value, y!.dtype)] });
});

register('broadcastTo', ({ backend, inputs: [x], outputs: [y] }) => {
  runMap(backend, { key: 'copy', inputs: [x!], output: y!, expr: 'v0', rawIn: true, rawOut: true });
});
