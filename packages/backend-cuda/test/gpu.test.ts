/**
 * On a machine with a GPU: the conformance suite on the real 'cuda' backend (a few ops per family;
 * the GPU machine runs all of them through tools/gpu), the records of rope and the decode attention
 * ops, and a 2-D copy. Elsewhere: skipped, with the reason printed.
 */
import { describe, expect, it } from 'vitest';
import { initBackend } from '@ring-linear/core';
import '@ring-linear/backend-cpu';
import { cudaAvailability } from '../src/index.js';
import { runConformance } from '@ring-linear/conformance';

const availability = await cudaAvailability();
if (!availability.available) console.log(`[backend-cuda] GPU tests skipped: ${availability.reason}`);

describe.skipIf(!availability.available)('CUDA backend on a GPU', () => {
  it('passes conformance for a cross-section of ops', async () => {
    await initBackend('cpu');
    await initBackend('cuda');
    const r = await runConformance({
      backend: 'cuda',
      ops: ['add', 'mul', 'exp', 'cast', 'where', 'sum', 'max', 'argmax', 'matmul', 'transpose', 'softmax', 'rmsNorm', 'randomUniform', 'gather'],
    });
    expect(r.cases.filter((c) => c.status === 'failed').map((c) => `${c.id}: ${c.messages[0]}`)).toEqual([]);
  }, 600_000);

  it('passes the records of rope and the decode attention ops against the CPU', async () => {
    await initBackend('cpu');
    await initBackend('cuda');
    const { attentionOpInfos } = await import('@ring-linear/attention/opinfo');
    const r = await runConformance({ backend: 'cuda', reference: 'cpu', opInfos: attentionOpInfos, ops: ['rope', 'lightningAttentionStep', 'softmaxAttention'], grad: false, tfjs: false, log: null });
    expect(r.cases.filter((c) => c.status === 'failed').map((c) => `${c.id}: ${c.messages[0]}`)).toEqual([]);
    expect(r.counts.passed).toBeGreaterThan(0);
  }, 600_000);

  it('copies strided rows with one 2-D copy (copyRows)', async () => {
    const b = (await initBackend('cuda')) as import('../src/backend.js').CudaBackend;
    const src = b.allocate(4000), dst = b.allocate(9000);
    const sb = Uint8Array.from({ length: 4000 }, (_, i) => (i * 73 + 11) & 255);
    const db = Uint8Array.from({ length: 9000 }, (_, i) => (i * 29 + 5) & 255);
    b.write(src, sb);
    b.write(dst, db);
    b.copyRows(src, 16, 500, dst, 40, 1100, 256, 7);
    const want = db.slice();
    for (let r = 0; r < 7; r++) want.set(sb.subarray(16 + r * 500, 16 + r * 500 + 256), 40 + r * 1100);
    expect(Buffer.from(await b.read(dst)).equals(Buffer.from(want))).toBe(true);
    b.free(src);
    b.free(dst);
  });
});
