/**
 * Sampler benchmark on the CPU backend (issue 8): tokens/s of prefill and decode for the small
 * presets, and decode time per token against the context length for linear-only, softmax-only and
 * hybrid models of one size (flat for linear layers, growing for softmax layers), with the state
 * held per sequence. Prints the tables, writes the JSON results and (unless --no-docs) rewrites the
 * "Sampler" section of docs/benchmarks.md.
 *
 *   cd tools/bench && node --conditions=@ring-linear/source --import tsx src/sampler.ts
 *     [--max-context 16384] [--repeat 5] [--no-docs] [--json <path>]
 *
 * Models are randomly initialized (speed does not depend on the weights' values). For the context
 * sweep the caches are filled with random keys, values and states instead of by a prefill (a
 * softmax-only prefill of 32k tokens takes many minutes on one JavaScript thread); a decode step's
 * cost depends only on the cache sizes, not on what they hold.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import '@ring-linear/backend-cpu';
import { Generator, dispose, randomNormal, tidy, type Tensor } from '@ring-linear/core';
import { RingLinearForCausalLM, configToJson, createConfig, preset, type RingLinearConfigInput } from '@ring-linear/models';
import { DecodeSession, Sampler, type CacheMemory } from '@ring-linear/sampler';
import { median } from './framework.js';
import { cpuName, environment } from './device.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function model(fields: RingLinearConfigInput): RingLinearForCausalLM {
  return new RingLinearForCausalLM(createConfig(fields), { generator: new Generator(1) });
}

function ids(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s >>> 24; // a byte
  });
}

async function timeMs(fn: () => Promise<void> | void): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

// ---------------------------------------------------------------------------------------------
// Throughput of the presets

interface ThroughputRow {
  preset: string;
  params: number;
  batch: number;
  prefillTokens: number;
  prefillMs: number;
  prefillMinMs: number;
  prefillTokensPerS: number;
  decodeMsPerStep: number;
  decodeMinMsPerStep: number;
  decodeTokensPerS: number;
}

async function throughput(name: 'tiny' | 'small', batch: number, promptLength: number, decodeTokens: number, repeat: number): Promise<ThroughputRow> {
  const m = model({ ...configToJson(preset(name)), max_position_embeddings: 8192 });
  const prompts = Array.from({ length: batch }, (_, b) => ids(promptLength, 100 + b));
  // Prefill: the model's forward over the prompts with the caches, and the readback of the logits.
  const prefill: number[] = [];
  for (let r = 0; r < repeat + 1; r++) {
    const s = new DecodeSession(m, batch);
    const ms = await timeMs(async () => {
      const logits = s.prefill(prompts);
      await logits.data();
      logits.dispose();
    });
    s.dispose();
    if (r > 0) prefill.push(ms); // the first run is a warm-up
  }
  // Decode: what a user of the stream sees, from one event of a step to the next (forward, the
  // one readback, host sampling), temperature 1 with top-p, batch rows stepping together.
  const sampler = new Sampler(m);
  const steps: number[] = [];
  for (let r = 0; r < Math.max(1, Math.ceil(repeat / 2)); r++) {
    let last = -1;
    let index = -1;
    for await (const ev of sampler.streamBatch(prompts, { maxTokens: decodeTokens, ignoreEos: true, topP: 0.95, seed: r })) {
      if (ev.sequence !== 0) continue;
      const now = performance.now();
      // Between two events the stream runs one forward (enqueued before an event is handed out),
      // except before the last event, after which there is no next step: that interval is left out.
      if (last >= 0 && ev.index === index + 1 && !ev.finishReason) steps.push(now - last);
      last = now;
      index = ev.index;
    }
  }
  const prefillMs = median(prefill);
  const stepMs = median(steps);
  const params = m.numParameters();
  m.dispose();
  return {
    preset: name,
    params,
    batch,
    prefillTokens: batch * promptLength,
    prefillMs,
    prefillMinMs: Math.min(...prefill),
    prefillTokensPerS: (batch * promptLength * 1000) / prefillMs,
    decodeMsPerStep: stepMs,
    decodeMinMsPerStep: Math.min(...steps),
    decodeTokensPerS: (batch * 1000) / stepMs,
  };
}

// ---------------------------------------------------------------------------------------------
// Decode time per token vs context length

type Variant = 'linear' | 'softmax' | 'hybrid';

/** hidden 256, 8 heads of 64 (2 KV heads), 4 layers with dense MLPs: attention is a visible share of a step. */
function sweepModel(variant: Variant): RingLinearForCausalLM {
  const layer_types: ('linear' | 'softmax')[] = variant === 'linear' ? ['linear', 'linear', 'linear', 'linear'] : variant === 'softmax' ? ['softmax', 'softmax', 'softmax', 'softmax'] : ['linear', 'linear', 'linear', 'softmax'];
  return model({
    ...configToJson(preset('tiny')),
    hidden_size: 256,
    num_attention_heads: 8,
    num_key_value_heads: 2,
    head_dim: 64,
    num_hidden_layers: 4,
    layer_types,
    first_k_dense_replace: 4,
    intermediate_size: 512,
    group_norm_size: 2,
    max_position_embeddings: 1 << 20,
  });
}

/** Fills the session's caches as if `n` tokens had been processed (random contents). */
function fillCaches(s: DecodeSession, n: number, seed: number): void {
  const g = new Generator(seed);
  for (const c of s.cache.layers) {
    if ('keys' in c) {
      const [k, v] = tidy(() => {
        const hkv = s.model.config as unknown as { num_key_value_heads: number; head_dim: number };
        const shape = [s.batchSize, n, hkv.num_key_value_heads, hkv.head_dim];
        return [randomNormal(shape, { std: 0.5, generator: g }), randomNormal(shape, { std: 0.5, generator: g })];
      }) as [Tensor, Tensor];
      c.append(k, v);
      dispose([k, v]);
    } else {
      c.update(tidy(() => randomNormal(c.state.shape, { std: 0.05, generator: g })), n);
    }
  }
  s.cache.advance(n);
}

interface SweepRow {
  variant: Variant;
  context: number;
  msPerToken: number;
  minMsPerToken: number;
  memory: CacheMemory;
}

/**
 * Decode time per token at each context for each variant. The variants take turns at every
 * context (so a change in the machine's load hits all of them), three untimed steps first.
 */
async function sweep(contexts: number[], steps: number): Promise<SweepRow[]> {
  const variants: Variant[] = ['linear', 'hybrid', 'softmax'];
  const models = new Map(variants.map((v) => [v, sweepModel(v)] as const));
  // Warm-up: the JIT compiles the kernels at these shapes before anything is timed.
  for (const m of models.values()) {
    const s = new DecodeSession(m, 1);
    fillCaches(s, 64, 1);
    for (let i = 0; i < 30; i++) (await Promise.resolve(s.step([i]))).dispose();
    s.dispose();
  }
  // Two rounds, the second in reverse context order, pooled: a drift in the machine's load then
  // does not line up with the context length.
  const times = new Map<string, number[]>();
  const memories = new Map<string, CacheMemory>();
  for (const order of [contexts, [...contexts].reverse()]) {
    for (const context of order) {
      for (const variant of variants) {
        const s = new DecodeSession(models.get(variant)!, 1, { initialKvCapacity: context + steps + 4 });
        fillCaches(s, context, context);
        const key = `${variant} ${context}`;
        const list = times.get(key) ?? [];
        for (let i = 0; i < steps + 3; i++) {
          const ms = await timeMs(async () => {
            const logits = s.step([i % 256]);
            await logits.data();
            logits.dispose();
          });
          if (i >= 3) list.push(ms);
        }
        times.set(key, list);
        memories.set(key, s.memory());
        s.dispose();
        process.stderr.write(`${variant} context ${context}: median ${median(list).toFixed(2)}, fastest ${Math.min(...list).toFixed(2)} ms/token so far\n`);
      }
    }
  }
  const rows: SweepRow[] = [];
  for (const context of contexts) {
    for (const variant of variants) {
      const list = times.get(`${variant} ${context}`)!;
      rows.push({ variant, context, msPerToken: median(list), minMsPerToken: Math.min(...list), memory: memories.get(`${variant} ${context}`)! });
    }
  }
  for (const m of models.values()) m.dispose();
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Output

const f = (x: number, d = 1) => (x >= 100 ? x.toFixed(0) : x.toFixed(d));
const mib = (b: number) => (b / (1 << 20)).toFixed(b < 1 << 20 ? 3 : 1);

function throughputTable(rows: readonly ThroughputRow[]): string {
  return [
    '| preset | parameters | batch | prefill tokens | prefill ms (fastest) | prefill tokens/s | decode ms/step (fastest) | decode tokens/s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.preset} | ${(r.params / 1e6).toFixed(1)}M | ${r.batch} | ${r.prefillTokens} | ${f(r.prefillMs)} (${f(r.prefillMinMs)}) | ${f(r.prefillTokensPerS)} | ` +
        `${f(r.decodeMsPerStep, 2)} (${f(r.decodeMinMsPerStep, 2)}) | ${f(r.decodeTokensPerS)} |`,
    ),
  ].join('\n');
}

function sweepTable(rows: readonly SweepRow[], contexts: readonly number[]): string {
  const variants: Variant[] = ['linear', 'hybrid', 'softmax'];
  const at = (v: Variant, c: number) => rows.find((r) => r.variant === v && r.context === c)!;
  const header = '| context | ' + variants.map((v) => `${v} ms/token (fastest)`).join(' | ') + ' | ' + variants.map((v) => `${v} state MiB/seq`).join(' | ') + ' |';
  return [
    header,
    `|---:|${variants.map(() => '---:').join('|')}|${variants.map(() => '---:').join('|')}|`,
    ...contexts.map(
      (c) =>
        `| ${c} | ${variants.map((v) => `${f(at(v, c).msPerToken, 2)} (${f(at(v, c).minMsPerToken, 2)})`).join(' | ')} | ` +
        `${variants.map((v) => mib(at(v, c).memory.linearStateBytes + at(v, c).memory.kvCacheUsedBytes)).join(' | ')} |`,
    ),
  ].join('\n');
}

const BEGIN = '<!-- sampler-bench:begin (written by tools/bench/src/sampler.ts) -->';
const END = '<!-- sampler-bench:end -->';

/** Replaces (or appends) the Sampler section of docs/benchmarks.md, leaving the rest alone. */
function writeDocs(section: string): string {
  const file = path.join(REPO_ROOT, 'docs', 'benchmarks.md');
  const block = `${BEGIN}\n${section}\n${END}`;
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n';
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) text = `${text.slice(0, a)}${block}${text.slice(b + END.length)}`;
  else text = `${text.replace(/\s*$/, '')}\n\n${block}\n`;
  fs.writeFileSync(file, text);
  return file;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { 'max-context': { type: 'string' }, repeat: { type: 'string' }, 'no-docs': { type: 'boolean' }, json: { type: 'string' } },
    strict: true,
  });
  const maxContext = Number(values['max-context'] ?? 16384);
  const repeat = Number(values.repeat ?? 5);
  const device = cpuName();
  const load0 = os.loadavg()[0]!;

  const tp: ThroughputRow[] = [];
  for (const name of ['tiny', 'small'] as const) {
    for (const batch of [1, 4]) {
      process.stderr.write(`throughput ${name} batch ${batch} ... `);
      const r = await throughput(name, batch, 256, 33, repeat);
      tp.push(r);
      process.stderr.write(`prefill ${f(r.prefillTokensPerS)} tokens/s, decode ${f(r.decodeTokensPerS)} tokens/s\n`);
    }
  }
  const contexts: number[] = [];
  for (let c = 256; c <= maxContext; c *= 4) contexts.push(c);
  const sw: SweepRow[] = [];
  sw.push(...(await sweep(contexts, repeat * 2)));
  const load1 = os.loadavg()[0]!;

  const date = new Date().toISOString();
  const argv = process.argv.slice(2).join(' ');
  const command = `cd tools/bench && node --conditions=@ring-linear/source --import tsx src/sampler.ts${argv ? ` ${argv}` : ''}`;
  const t1 = throughputTable(tp);
  const t2 = sweepTable(sw, contexts);
  console.log(`\n${device}\n${t1}\n\n${t2}`);
  const out = values.json ? path.resolve(values.json) : path.join(REPO_ROOT, 'runs', 'bench', `sampler-${date.replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify({ date, command, environment: environment(), device, loadAverage: [load0, load1], throughput: tp, sweep: sw }, null, 2)}\n`);
  console.log(`JSON: ${out}`);

  if (!values['no-docs']) {
    const first = (v: Variant) => sw.find((r) => r.variant === v && r.context === contexts[0])!;
    const lastRow = (v: Variant) => sw.find((r) => r.variant === v && r.context === contexts[contexts.length - 1])!;
    const growth = (v: Variant) => `${(lastRow(v).minMsPerToken / first(v).minMsPerToken).toFixed(2)}x`;
    const section = [
      '## Sampler',
      '',
      'Generation with `@ring-linear/sampler` on the CPU backend (`@ring-linear/backend-cpu`), f32, randomly initialized models.',
      '',
      `- machine: ${device}; Node ${process.version}; ${date.slice(0, 10)}; commit ${environment().commit}`,
      `- load average (1 min) ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end${load0 > 1.5 || load1 > 1.5 ? ': the machine was shared with other jobs, so absolute times are noisy' : ''}`,
      `- command: \`${command}\``,
      '',
      '### Prefill and decode throughput of the small presets',
      '',
      `Prefill: ${tp[0]!.prefillTokens / tp[0]!.batch} prompt tokens per sequence through the model's forward with the caches (chunked lightning`,
      'attention, flash-style softmax attention filling the KV cache) and the readback of the last logits; median of',
      `${repeat} runs after a warm-up. Decode: time from one streamed token to the next of sequence 0 (the batched forward of one`,
      'token per sequence, the one readback of logits and log-probs, host sampling with top-p), median over the steps;',
      'decode tokens/s counts every sequence of the batch. Both presets are hybrids (3 linear layers per softmax layer)',
      'with a dense first layer and MoE layers after it, byte-level vocabulary (259).',
      '',
      t1,
      '',
      '### Decode time per token vs context length',
      '',
      'One sequence; 4 layers of hidden 256 with 8 heads of 64 (2 KV heads) and dense MLPs, all linear-attention, hybrid',
      '(3 linear, 1 softmax) or all softmax-attention. The caches are filled with random contents to the given context',
      `(no prefill), then decode steps (forward + readback) are timed, ${repeat * 2} per round in two rounds (contexts ascending,`,
      'then descending; the three models take turns at each context): median, and the fastest in parentheses (on a shared',
      'machine other jobs only add time, so the fastest is the steadier figure; the growth below uses it). "State MiB/seq" is what the',
      'sequence holds at that context: the linear layers\' f32 states (constant) plus the valid KV rows of the softmax layers.',
      `From ${contexts[0]} to ${contexts[contexts.length - 1]} tokens of context the time per token grows ${growth('linear')} (linear), ${growth('hybrid')} (hybrid)`,
      `and ${growth('softmax')} (softmax): the linear layers' step reads a constant D x D state per head, a softmax layer reads`,
      'every cached key and value.',
      '',
      t2,
      '',
      'WebGPU rows: not measured here (the machine has no GPU; Dawn on SwiftShader emulates one on the CPU, which says',
      'nothing about GPU speed). The sampler runs unchanged on WebGPU (packages/sampler/test/webgpu.test.ts).',
    ].join('\n');
    console.log(`wrote ${writeDocs(section)}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
