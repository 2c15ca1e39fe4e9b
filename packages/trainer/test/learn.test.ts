/**
 * The small hybrid learns a synthetic task on the CPU in CI time: copying a 4-letter string over
 * the alphabet 'abcd' ("cabd=" -> "cabd", then EOS), with the loss only on the answer and EOS.
 * Chance is log(4) = 1.39 nats for each letter and the EOS is certain, so an untrained-but-
 * calibrated model sits near 4 * 1.39 / 5 = 1.11; copying needs attention to positions 5 back, a
 * job for the softmax layer (with RoPE) and the lightning-attention layer's decayed state.
 *
 * Stated target: after 150 steps (2 packed rows of 64 tokens each, cosine lr 1e-2 -> 1e-3), on
 * held-out examples, teacher-forced accuracy of the answer tokens >= 0.9 and mean loss <= 0.35.
 * Measured with model seeds 1, 2, 3: accuracy 0.947 / 0.960 / 0.930, loss 0.13 / 0.12 / 0.25. The
 * test uses seed 1 (a learning curve from a random seed would make a flaky test).
 */
import '@ring-linear/backend-cpu';
import { describe, expect, it } from 'vitest';
import { argmax, manualSeed, tensor, tidy } from '@ring-linear/core';
import { ByteTokenizer } from '@ring-linear/models';
import { IGNORE_INDEX, PackedDataset, Trainer, cosineSchedule, packDocuments, splitDocuments, taskDocuments, taskExamples } from '../src/index.js';
import { tinyModel } from './helpers.js';

describe('learning a synthetic task', () => {
  it('copy: held-out answer accuracy >= 0.9 and loss <= 0.35 within 150 steps', async () => {
    manualSeed(1);
    const model = tinyModel();
    const tok = new ByteTokenizer();
    const docs = taskDocuments(taskExamples('copy', { count: 2000, length: 4, alphabet: 'abcd', seed: 1 }), tok);
    const { train, eval: held } = splitDocuments(docs, { evalDocuments: 60, seed: 3 });
    const T = 64;
    const evalRows = packDocuments(held, { seqLen: T });
    const trainer = new Trainer({
      model,
      train: new PackedDataset(packDocuments(train, { seqLen: T }), { seed: 1 }),
      eval: new PackedDataset(evalRows, { shuffle: false }),
      totalSteps: 150,
      rowsPerMicroBatch: 2,
      schedule: cosineSchedule({ peakLr: 1e-2, warmupSteps: 10, totalSteps: 150, minLr: 1e-3 }),
      optimizer: { weightDecay: 0 },
      progress: false,
    });
    const t0 = Date.now();
    const metrics = await trainer.fit();
    const evalLoss = metrics[metrics.length - 1]!.evalLoss!;
    // Teacher-forced accuracy: argmax of the logits at every counted position.
    model.eval();
    let right = 0;
    let counted = 0;
    for (let r = 0; r < evalRows.numRows; r++) {
      const ids = evalRows.inputs.subarray(r * T, (r + 1) * T);
      const targets = evalRows.targets.subarray(r * T, (r + 1) * T);
      const pred = tidy(() => argmax(model.forward(tensor(ids, [1, T], 'i32'), { cuSeqlens: evalRows.segments[r]! }).logits!, -1));
      const p = pred.dataSync();
      pred.dispose();
      for (let i = 0; i < T; i++) {
        if (targets[i] === IGNORE_INDEX) continue;
        counted++;
        if (p[i] === targets[i]) right++;
      }
    }
    const accuracy = right / counted;
    console.log(`[learn] copy: ${metrics.length} steps in ${((Date.now() - t0) / 1000).toFixed(1)} s; first loss ${metrics[0]!.loss.toFixed(3)}; held-out loss ${evalLoss.toFixed(3)}, accuracy ${accuracy.toFixed(3)} over ${counted} tokens`);
    expect(counted).toBe(60 * 5);
    expect(metrics[0]!.loss).toBeGreaterThan(3); // untrained: about log(259)
    expect(evalLoss).toBeLessThanOrEqual(0.35);
    expect(accuracy).toBeGreaterThanOrEqual(0.9);
    trainer.dispose();
    model.dispose();
  });
});
