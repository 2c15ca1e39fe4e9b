/**
 * What a decode step enqueues on the CUDA backend (mock driver: launches recorded, not run): a
 * regression guard for the host work a step costs, which bounds decode on a GPU
 * (docs/benchmarks.md, "Decode host overhead"). A Ring-mini-shaped model (5 layers: 4 linear, 1
 * softmax; a dense first MLP, then MoE with a shared expert), batch 3, checked per step:
 * rope is one launch per q and k (no cos/sin/concat of its composite); the grouped GEMM's tile
 * list is built once per routing (routed and shared experts); the KV cache appends with 2-D copies;
 * uploads are the positions (one per layer) and the shared expert's offsets; live tensors are flat.
 */
import { describe, expect, it } from 'vitest';
import { buildMockCuda } from './mock/build.js';

const built = await buildMockCuda();
const skip = 'skip' in built ? built.skip : null;
if (skip) console.log(`[backend-cuda] decode launch test skipped: ${skip}`);

describe.skipIf(!!skip)('a decode step on the CUDA backend (mock driver)', () => {
  it('enqueues fused rope, one tile list per routing, 2-D KV appends and few uploads; memory stays flat', async () => {
    process.env.MOCK_CUDA_SKIP_GEMM = '1';
    const core = await import('@ring-linear/core');
    await import('@ring-linear/backend-cpu');
    await import('../src/index.js');
    const { RingLinearForCausalLM, preset, createConfig, configToJson } = await import('@ring-linear/models');
    const b = (await core.setBackend('cuda')) as import('../src/backend.js').CudaBackend;
    const cfg = createConfig({
      ...configToJson(preset('ring-mini-linear-2.0')),
      num_hidden_layers: 5, hidden_size: 128, intermediate_size: 256, num_experts: 16, n_group: 4, topk_group: 2,
      moe_intermediate_size: 32, moe_shared_expert_intermediate_size: 32, vocab_size: 512, eos_token_id: 1, pad_token_id: 0, bos_token_id: 2,
    });
    const lm = new RingLinearForCausalLM(cfg, { dtype: 'bf16', generator: new core.Generator(5) });
    const kinds = lm.layerKinds;
    const layers = kinds.length;
    const softmaxLayers = kinds.filter((k) => k.attention === 'softmax').length;
    const moeLayers = kinds.filter((k) => k.mlp === 'moe').length;
    expect([layers, softmaxLayers, moeLayers]).toEqual([5, 1, 4]);
    const B = 3;
    const cache = lm.createCache(B, { initialCapacity: 16 });
    const ids = core.keep(core.tensor(Int32Array.of(5, 17, 300), [B, 1], 'i32'));
    const step = () => core.tidy(() => void lm.forward(ids, { cache, logits: 'last' }));
    step(); // first step: modules, kept tables

    const kernels = new Map<string, number>();
    const launch = b.launch.bind(b);
    b.launch = (k, grid, block, smem) => {
      kernels.set(k.name, (kernels.get(k.name) ?? 0) + 1);
      launch(k, grid, block, smem);
    };
    const calls = new Map<string, number>();
    const fns = b.rt.driver.fn as unknown as Record<string, (...a: unknown[]) => unknown>;
    const saved = { ...fns };
    for (const name of ['cuMemcpyHtoDAsync', 'cuMemcpyDtoDAsync', 'cuMemcpy2DAsync']) {
      fns[name] = (...a: unknown[]) => {
        calls.set(name, (calls.get(name) ?? 0) + 1);
        return saved[name]!(...a);
      };
    }
    const live0 = core.memory().tensors;
    try {
      step();
      const count = (re: RegExp) => [...kernels].filter(([k]) => re.test(k)).reduce((a, [, n]) => a + n, 0);
      expect(count(/^attn_rope_/)).toBe(2 * layers);
      expect(count(/^unary_(cos|sin)_|concat/)).toBe(0);
      expect(count(/^moe_gmm_tiles$/)).toBe(2 * moeLayers); // routed experts and shared expert, 3 GEMMs each
      expect(count(/^moe_gmm_[a-z0-9]+_tb1_/)).toBe(6 * moeLayers);
      expect(calls.get('cuMemcpy2DAsync')).toBe(2 * softmaxLayers); // k and v of all B sequences
      expect(calls.get('cuMemcpyHtoDAsync')).toBe(layers + moeLayers); // positions; the shared expert's offsets
      for (let i = 0; i < 3; i++) step();
      expect(core.memory().tensors).toBe(live0);
    } finally {
      Object.assign(fns, saved);
      b.launch = launch;
      cache.dispose();
      ids.dispose();
      lm.dispose();
      delete process.env.MOCK_CUDA_SKIP_GEMM;
    }
  }, 120_000);
});
