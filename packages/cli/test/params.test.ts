// `params --json`: the counts of every preset and the demo model, checked against the numbers of
// the Ring-linear report (the two published models) and against an independent count written
// here from the architecture (MODEL_SPEC §1, §3-4), not from the model zoo's code.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configToJson, preset, type RingLinearConfig } from '@ring-linear/models';
import { demoModelConfig } from '../src/index.js';
import { cli, tempDir } from './helpers.js';

/** Parameter counts from the config fields alone (float64 arithmetic on integers). */
function expectedCounts(c: RingLinearConfig): { total: number; active: number; nonEmbeddingActive: number } {
  const h = c.hidden_size;
  const H = c.num_attention_heads;
  const Hkv = c.num_key_value_heads;
  const D = c.head_dim;
  const L = c.num_hidden_layers;
  const kinds = c.layer_types ?? Array.from({ length: L }, (_, l) => ((l + 1) % c.layer_group_size === 0 ? 'softmax' : 'linear'));
  const mlps = c.mlp_types ?? Array.from({ length: L }, (_, l) => (l < c.first_k_dense_replace ? 'dense' : 'moe'));
  let total = c.vocab_size * h; // embedding
  let routed = 0;
  let activeRouted = 0;
  for (let l = 0; l < L; l++) {
    total += 2 * h; // input and post-attention RMSNorm
    const qk = c.use_qk_norm ? 2 * D : 0;
    if (kinds[l] === 'linear') total += 3 * H * D * h + h * H * D + H * D * h + H * D + qk; // qkv, dense, g_proj, g_norm
    else total += (H + 2 * Hkv) * D * h + h * H * D + qk;
    if (mlps[l] === 'dense') total += 3 * h * c.intermediate_size!;
    else {
      const E = c.num_experts!;
      const expert = 3 * h * c.moe_intermediate_size!;
      total += E * h + E; // router weight and expert bias
      routed += E * expert;
      activeRouted += c.num_experts_per_tok! * expert;
      total += c.num_shared_experts * 3 * h * (c.moe_shared_expert_intermediate_size ?? c.moe_intermediate_size!);
    }
  }
  total += h; // final norm
  const lmHead = c.tie_word_embeddings ? 0 : c.vocab_size * h;
  total += lmHead + routed;
  const active = total - routed + activeRouted;
  return { total, active, nonEmbeddingActive: active - c.vocab_size * h - lmHead };
}

describe('params', () => {
  it('--json for every preset: the report numbers and the independent count', async () => {
    const r = await cli(['params', '--json']);
    expect(r.code).toBe(0);
    const presets = r.json<{ presets: Record<string, { total: number; active: number; nonEmbeddingActive: number; layers: number }> }>().presets;
    expect(Object.keys(presets)).toEqual(['ring-mini-linear-2.0', 'ring-flash-linear-2.0', 'tiny', 'small', 'demo']);
    // Ring-linear report (and model cards): 16.4B / 1.6B / 957M and 104.2B / 7.4B / 6.1B; exact
    // values of this accounting as cited in @ring-linear/models params.ts.
    expect(presets['ring-mini-linear-2.0']).toMatchObject({ total: 16_423_448_320, active: 1_600_777_984, nonEmbeddingActive: 956_952_320, layers: 20 });
    expect(presets['ring-flash-linear-2.0']).toMatchObject({ total: 104_181_665_536, active: 7_444_238_080, nonEmbeddingActive: 6_156_586_752, layers: 32 });
    for (const [name, config] of [['tiny', preset('tiny')], ['small', preset('small')], ['demo', demoModelConfig()], ['ring-mini-linear-2.0', preset('ring-mini-linear-2.0')]] as const) {
      const want = expectedCounts(config);
      expect(presets[name], name).toMatchObject(want);
    }
  });

  it('--json for one preset, a config.json and a model folder', async () => {
    const tiny = await cli(['params', 'tiny', '--json', '--layers']);
    expect(tiny.code).toBe(0);
    const j = tiny.json();
    expect(j.source).toBe("preset 'tiny'");
    expect(j.counts).toMatchObject(expectedCounts(preset('tiny')));
    expect(j.layers.map((l: { attention: string; mlp: string }) => `${l.attention}/${l.mlp}`)).toEqual(['linear/dense', 'linear/moe', 'linear/moe', 'softmax/moe']);
    expect(j.layers.reduce((a: number, l: { parameters: number }) => a + l.parameters, 0)).toBeLessThan(j.counts.total);
    // f32 weights: 4 bytes a parameter.
    expect(j.bytes).toBe(4 * j.counts.total);
    const bf16 = (await cli(['params', 'tiny', '--json', '--dtype', 'bf16'])).json();
    // bf16 except the f32 router, final norm and lm_head.
    expect(bf16.bytes).toBeGreaterThan(2 * j.counts.total);
    expect(bf16.bytes).toBeLessThan(4 * j.counts.total);

    const dir = await tempDir();
    const custom = { ...configToJson(preset('tiny')), hidden_size: 96, num_attention_heads: 3, num_key_value_heads: 1, num_experts: 8, n_group: 2, topk_group: 1, tie_word_embeddings: true };
    await writeFile(join(dir, 'config.json'), JSON.stringify(custom));
    const fromFile = (await cli(['params', 'config.json', '--json'], { cwd: dir })).json();
    const fromFolder = (await cli(['params', '.', '--json'], { cwd: dir })).json();
    const want = expectedCounts({ ...preset('tiny'), ...custom, layer_types: null, mlp_types: null } as RingLinearConfig);
    expect(fromFile.counts).toMatchObject(want);
    expect(fromFolder.counts).toEqual(fromFile.counts);
    expect(fromFile.counts.lmHead).toBe(0); // tied
  });

  it('text output: the totals with the report spelling and the breakdown', async () => {
    const r = await cli(['params', 'ring-mini-linear-2.0']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("preset 'ring-mini-linear-2.0': 20 layers (16 linear + 4 softmax attention; 1 dense + 19 MoE)");
    expect(r.stdout).toMatch(/total\s+16,423,448,320\s+16\.4B/);
    expect(r.stdout).toMatch(/active per token\s+1,600,777,984\s+1\.6B/);
    expect(r.stdout).toMatch(/non-embedding active\s+956,952,320\s+957\.0M/);
    expect(r.stdout).toMatch(/routed experts\s+[\d,]+/);
    const all = await cli(['params']);
    expect(all.stdout).toMatch(/ring-flash-linear-2\.0\s+32\s+104\.2B\s+7\.4B\s+6\.2B/);
    expect(all.stdout).toMatch(/demo\s+4\s+217\.2K/);
  });
});
