/** fill and broadcastTo. (reshape is a view: no kernel.) */
import { raw, register, storeNumbers } from '../util.js';
import { broadcastPlan, forEachRun } from './elementwise.js';

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
  // Strided runs (elementwise.ts): a contiguous run is one block copy, a broadcast one a fill.
  const plan = broadcastPlan([x!.shape], y!.shape);
  const last = plan.counts.length - 1;
  const step = last >= 0 ? plan.strides[0]![last]! : 0;
  forEachRun(plan, ([xo], yo, n) => {
    if (step === 0) yr.fill(xr[xo!]! as never, yo, yo + n);
    else yr.set(xr.subarray(xo!, xo! + n) as never, yo);
  });
});
