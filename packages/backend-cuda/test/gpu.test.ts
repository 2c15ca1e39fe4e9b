/**
 * On a machine with a GPU: the conformance suite on the real 'cuda' backend (a few ops per family;
 * the GPU machine runs all of them through tools/gpu). Elsewhere: skipped, with the reason printed.
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
});
