/** fill and broadcastTo. (reshape is a view: no kernel.) */
import { broadcastIndexMap } from '@ring-linear/core';
import { raw, register, storeNumbers } from '../util.js';

register('fill', ({ outputs: [y], attrs }) => {
  const { value } = attrs as { value: number };
  // Encode one element, then replicate its raw code (exactly what a cast of `value` gives).
  storeNumbers({ ...y!, size: 1 }, [value]);
  const r = raw(y!);
  r.fill(r[0]! as never);
});

register('broadcastTo', ({ inputs: [x], outputs: [y] }) => {
  const xr = raw(x!);
  const yr = raw(y!);
  const map = broadcastIndexMap(x!.shape, y!.shape);
  for (let i = 0; i < y!.size; i++) yr[i] = xr[map[i]!]!;
});
