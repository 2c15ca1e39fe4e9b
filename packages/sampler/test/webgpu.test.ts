/**
 * The sampler on the WebGPU backend (Dawn through the `webgpu` package; SwiftShader on machines
 * without a GPU), against the CPU. Skipped, with the reason printed, where no adapter exists.
 *
 * Stated bounds on WebGPU (f32): incremental decode logits vs the WebGPU full forward <= 1e-4;
 * the sampler's log-probs vs the WebGPU trainer-side forward's log-softmax <= 1e-5; vs the CPU
 * <= 1e-4. With the same seed, CPU and WebGPU draw the same tokens (equal up to those rounding
 * differences, and the draw is host code over the read logits).
 */
import { describe, expect, it } from 'vitest';
import { dispose, findBackend, logSoftmax, setBackend, tensor, toBackend, withBackend, type Tensor } from '@ring-linear/core';
import type { RingLinearForCausalLM } from '@ring-linear/models';
import { optionalBackendReason } from '@ring-linear/conformance';
import { DecodeSession, Sampler } from '../src/index.js';
import { microModel, newSeed, randomIds, rng } from './helpers.js';

const skipped = (await optionalBackendReason('webgpu', () => import('@ring-linear/backend-webgpu'), 'sampler webgpu tests')) !== null;

/** The same weights on WebGPU: a model built there, loaded with copies of the CPU model's tensors. */
async function onWebGpu(cpuModel: RingLinearForCausalLM, seed: number): Promise<RingLinearForCausalLM> {
  await setBackend('webgpu');
  try {
    const m = microModel(seed, { max_position_embeddings: 256 });
    const sd = new Map<string, Tensor>();
    for (const [name, t] of cpuModel.stateDict()) sd.set(name, await toBackend(t, 'webgpu'));
    m.loadStateDict(sd);
    dispose([...sd.values()]);
    return m;
  } finally {
    await setBackend('cpu');
  }
}

async function fullLogprobs(model: RingLinearForCausalLM, row: number[], backend: string): Promise<Float32Array> {
  const ids = await toBackend(tensor(Int32Array.from(row), [1, row.length], 'i32'), backend);
  // The model's backend current, as the sampler runs it (ops' composites make tensors on the current backend).
  const logits = withBackend(findBackend(backend), () => model.forward(ids).logits!);
  const lp = logSoftmax(logits, -1);
  const v = (await lp.data()) as Float32Array;
  dispose([ids, logits, lp]);
  return v;
}

describe.skipIf(skipped)('WebGPU', () => {
  const seed = newSeed('webgpu');
  const r = rng(seed);

  it('same seed, same tokens as the CPU; log-probs aligned with the WebGPU trainer forward; decode = full forward', async () => {
    const cpuModel = microModel(seed, { max_position_embeddings: 256 });
    const gpuModel = await onWebGpu(cpuModel, seed);
    expect(gpuModel.lm_head.weight.backend).toBe('webgpu');
    const V = cpuModel.config.vocab_size;
    const prompts = [randomIds(r, 10), randomIds(r, 4)];
    const opts = { temperature: 1, topP: 0.95, maxTokens: 6, ignoreEos: true, seed, topLogprobs: 2 };
    const onCpu = await new Sampler(cpuModel).generateBatch(prompts, opts);
    const onGpu = await new Sampler(gpuModel).generateBatch(prompts, opts);
    let vsCpu = 0;
    let vsTrainer = 0;
    for (let i = 0; i < prompts.length; i++) {
      expect(onGpu[i]!.tokens).toEqual(onCpu[i]!.tokens);
      onGpu[i]!.logprobs.forEach((v, j) => (vsCpu = Math.max(vsCpu, Math.abs(v - onCpu[i]!.logprobs[j]!))));
      const p = prompts[i]!.length;
      const seq = [...prompts[i]!, ...onGpu[i]!.tokens];
      const lp = await fullLogprobs(gpuModel, seq.slice(0, -1), 'webgpu');
      onGpu[i]!.tokens.forEach((tok, j) => (vsTrainer = Math.max(vsTrainer, Math.abs(onGpu[i]!.logprobs[j]! - lp[(p - 1 + j) * V + tok]!))));
    }
    // Incremental logits on WebGPU vs its own full forward.
    const row = [...prompts[0]!, ...onGpu[0]!.tokens];
    const s = new DecodeSession(gpuModel, 1);
    const pre = s.prefill([row.slice(0, 6)], { logits: 'all' });
    const steps: Tensor[] = [pre];
    for (let t = 6; t < row.length; t++) steps.push(s.step([row[t]!]));
    const inc = new Float32Array(row.length * V);
    let off = 0;
    for (const t of steps) {
      const v = (await t.data()) as Float32Array;
      inc.set(v, off);
      off += v.length;
      t.dispose();
    }
    s.dispose();
    const ids = await toBackend(tensor(Int32Array.from(row), [1, row.length], 'i32'), 'webgpu');
    const full = withBackend(findBackend('webgpu'), () => gpuModel.forward(ids).logits!);
    const fv = (await full.data()) as Float32Array;
    dispose([ids, full]);
    let logits = 0;
    for (let i = 0; i < fv.length; i++) logits = Math.max(logits, Math.abs(fv[i]! - inc[i]!));
    console.log(
      `[webgpu] max |diff|: sampler vs WebGPU trainer log-probs ${vsTrainer.toExponential(3)} (bound 1e-5), ` +
        `vs CPU log-probs ${vsCpu.toExponential(3)} (bound 1e-4), incremental vs full logits ${logits.toExponential(3)} (bound 1e-4)`,
    );
    expect(vsTrainer).toBeLessThanOrEqual(1e-5);
    expect(vsCpu).toBeLessThanOrEqual(1e-4);
    expect(logits).toBeLessThanOrEqual(1e-4);
    gpuModel.dispose();
  }, 300_000);
});
