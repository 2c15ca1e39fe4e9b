/**
 * Sampler benchmark (issue 8) on the CPU backend or (--backend webgpu) on
 * @ring-linear/backend-webgpu: tokens/s of prefill and decode for the small presets, and decode time
 * per token against the context length for linear-only, softmax-only and hybrid models of one size
 * (flat for linear layers, growing for softmax layers), with the state held per sequence. Prints
 * the tables, writes the JSON results and (unless --no-docs) rewrites the "Sampler" section of
 * docs/benchmarks.md (a WebGPU run: only the section's WebGPU block).
 *
 *   cd tools/bench && node --conditions=@ring-linear/source --import tsx src/sampler.ts
 *     [--backend cpu|webgpu] [--max-context 16384] [--repeat 5] [--budget-s N] [--small]
 *     [--no-docs] [--json <path>]
 *   ... src/sampler.ts --docs-from <json> [--commit <sha>]   the docs from an earlier run's JSON
 *
 * Models are randomly initialized (speed does not depend on the weights' values) and built on the
 * bench's backend. For the context sweep the caches are filled with random keys, values and states
 * instead of by a prefill (a softmax-only prefill of 32k tokens takes many minutes on one
 * JavaScript thread); a decode step's cost depends only on the cache sizes, not on what they hold.
 * Every timed interval ends with a readback of logits, which on WebGPU waits for the GPU.
 *
 * --small (a smoke test, e.g. on SwiftShader): the tiny preset at batch 1 only, 64-token prompts,
 * 9 decoded tokens, contexts up to 1024, 2 repeats, 3 warm-up steps per sweep model. --budget-s N: no further preset or context is
 * started once N seconds have passed (the JSON says so); the JSON is rewritten after each part, so
 * a run killed from outside keeps what it measured. A software adapter's report writes no docs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import '@ring-linear/backend-cpu';
import { Generator, dispose, randomNormal, tidy, type Tensor } from '@ring-linear/core';
import { RingLinearForCausalLM, configToJson, createConfig, preset, type RingLinearConfigInput } from '@ring-linear/models';
import { DecodeSession, Sampler, type CacheMemory } from '@ring-linear/sampler';
import { median } from './framework.js';
import { cpuName, environment } from './device.js';
import { TimeBudget, allowSoftwareDocs, initWebGpu, parseBackend, parseBudget, scriptContext, writeSection, type WebGpuHandle } from './docs.js';

const { fromSource: FROM_SOURCE, repoRoot: REPO_ROOT } = scriptContext(import.meta.url, 'sampler.ts');

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
 * With a time budget, no further context is started once it is spent (the rows are those of the
 * contexts measured at least once); `progress` gets the rows so far after each context.
 */
async function sweep(contexts: number[], steps: number, warmupSteps: number, budget: TimeBudget, progress: (rows: SweepRow[]) => void): Promise<SweepRow[]> {
  const variants: Variant[] = ['linear', 'hybrid', 'softmax'];
  const models = new Map(variants.map((v) => [v, sweepModel(v)] as const));
  const times = new Map<string, number[]>();
  const memories = new Map<string, CacheMemory>();
  const rowsOf = (): SweepRow[] =>
    contexts.flatMap((context) =>
      variants.flatMap((variant) => {
        const list = times.get(`${variant} ${context}`);
        return list?.length ? [{ variant, context, msPerToken: median(list), minMsPerToken: Math.min(...list), memory: memories.get(`${variant} ${context}`)! }] : [];
      }),
    );
  try {
    // Warm-up: the JIT compiles the kernels (WebGPU: the pipelines) at these shapes before anything is timed.
    for (const m of models.values()) {
      const s = new DecodeSession(m, 1);
      fillCaches(s, 64, 1);
      for (let i = 0; i < warmupSteps; i++) (await Promise.resolve(s.step([i]))).dispose();
      s.dispose();
    }
    // Two rounds, the second in reverse context order, pooled: a drift in the machine's load then
    // does not line up with the context length.
    let lastS = 0;
    for (const [round, order] of [contexts, [...contexts].reverse()].entries()) {
      for (const context of order) {
        // The next context predicted from the last one's (softmax layers read twice as many keys or more).
        if (round === 1 && !times.has(`linear ${context}`)) continue;
        if (!budget.allows(`the decode sweep at context ${context} (round ${round + 1})`, round === 0 ? 2 * lastS : lastS)) break;
        const t0 = performance.now();
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
        lastS = (performance.now() - t0) / 1000;
        progress(rowsOf());
      }
      if (budget.stopped) break;
    }
  } finally {
    for (const m of models.values()) m.dispose();
  }
  return rowsOf();
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

const MARKERS = {
  begin: '<!-- sampler-bench:begin (written by tools/bench/src/sampler.ts) -->',
  end: '<!-- sampler-bench:end -->',
  // The WebGPU rows: a block inside the Sampler section, written by --backend webgpu runs.
  gpuBegin: '<!-- sampler-bench-webgpu:begin -->',
  gpuEnd: '<!-- sampler-bench-webgpu:end -->',
  heading: '## Sampler',
};

interface Report {
  date: string;
  command: string;
  /** 'cpu' (older reports have no field) or 'webgpu'. */
  backend?: string;
  /** WebGPU: the adapter is a CPU implementation (SwiftShader): timings only prove the bench runs. */
  software?: boolean;
  environment: Record<string, string>;
  device: string;
  loadAverage: [number, number];
  /** Older reports: 5. */
  repeat?: number;
  /** Prompt tokens per sequence and decoded tokens per stream of the throughput table (older reports: 256, 33). */
  promptLength?: number;
  decodeTokens?: number;
  small?: boolean;
  /** Untimed decode steps per model before the context sweep (older reports: 30). */
  sweepWarmupSteps?: number;
  budgetS?: number | null;
  /** Why the run stopped early (the time budget), or null. */
  stopped?: string | null;
  /** False while the run goes on (the JSON is rewritten after each part). */
  complete?: boolean;
  /** The error that ended the run early (what was measured before is kept), or null. */
  error?: string | null;
  throughput: ThroughputRow[];
  sweep: SweepRow[];
}

const contextsOf = (rows: readonly SweepRow[]) => [...new Set(rows.map((r) => r.context))].sort((a, b) => a - b);

/** "From 256 to 16384 tokens of context the time per token grows ..." (null with fewer than two contexts). */
function growthText(sw: readonly SweepRow[]): string | null {
  const contexts = contextsOf(sw);
  if (contexts.length < 2) return null;
  const at = (v: Variant, c: number) => sw.find((r) => r.variant === v && r.context === c)!;
  const growth = (v: Variant) => `${(at(v, contexts[contexts.length - 1]!).minMsPerToken / at(v, contexts[0]!).minMsPerToken).toFixed(2)}x`;
  return [
    `From ${contexts[0]} to ${contexts[contexts.length - 1]} tokens of context the time per token grows ${growth('linear')} (linear), ${growth('hybrid')} (hybrid)`,
    `and ${growth('softmax')} (softmax): the linear layers' step reads a constant D x D state per head, a softmax layer reads`,
    'every cached key and value.',
  ].join('\n');
}

/** The command that reproduces a run: its flags without the output-only ones. */
function flagsOf(report: Report): string {
  const m = /\s(?:src\/sampler\.ts|sampler\.mjs)(.*)$/.exec(report.command);
  return (m?.[1] ?? '').replace(/\s--no-docs/g, '').replace(/\s--(json|commit|docs-from) \S+/g, '');
}

/** The CPU section (everything but the WebGPU block). */
function cpuSection(report: Report, commit: string): string {
  const [load0, load1] = report.loadAverage;
  const tp = report.throughput;
  const repeat = report.repeat ?? 5;
  const growth = growthText(report.sweep);
  return [
    '## Sampler',
    '',
    'Generation with `@ring-linear/sampler` on the CPU backend (`@ring-linear/backend-cpu`), f32, randomly initialized models.',
    '',
    `- machine: ${report.device}; Node ${report.environment.node}; ${report.date.slice(0, 10)}; commit ${commit}`,
    `- load average (1 min) ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end${load0 > 1.5 || load1 > 1.5 ? ': the machine was shared with other jobs, so absolute times are noisy' : ''}`,
    ...(report.stopped ? [`- ${report.stopped}`] : []),
    ...(report.error ? [`- the run ended with an error, ${report.error}: the rows are those measured before it`] : []),
    `- command: \`${report.command}\``,
    '',
    '### Prefill and decode throughput of the small presets',
    '',
    `Prefill: ${tp[0] ? tp[0].prefillTokens / tp[0].batch : (report.promptLength ?? 256)} prompt tokens per sequence through the model's forward with the caches (chunked lightning`,
    'attention, flash-style softmax attention filling the KV cache) and the readback of the last logits; median of',
    `${repeat} runs after a warm-up. Decode: time from one streamed token to the next of sequence 0 (the batched forward of one`,
    'token per sequence, the one readback of logits and log-probs, host sampling with top-p), median over the steps;',
    'decode tokens/s counts every sequence of the batch. Both presets are hybrids (3 linear layers per softmax layer)',
    'with a dense first layer and MoE layers after it, byte-level vocabulary (259).',
    '',
    throughputTable(tp),
    '',
    '### Decode time per token vs context length',
    '',
    'One sequence; 4 layers of hidden 256 with 8 heads of 64 (2 KV heads) and dense MLPs, all linear-attention, hybrid',
    '(3 linear, 1 softmax) or all softmax-attention. The caches are filled with random contents to the given context',
    `(no prefill), then decode steps (forward + readback) are timed, ${repeat * 2} per round in two rounds (contexts ascending,`,
    'then descending; the three models take turns at each context): median, and the fastest in parentheses (on a shared',
    'machine other jobs only add time, so the fastest is the steadier figure; the growth below uses it). "State MiB/seq" is what the',
    'sequence holds at that context: the linear layers\' f32 states (constant) plus the valid KV rows of the softmax layers.',
    ...(growth ? [growth] : []),
    '',
    sweepTable(report.sweep, contextsOf(report.sweep)),
    '',
    'WebGPU: the same measurements on `@ring-linear/backend-webgpu` (`--backend webgpu`), in the block below.',
  ].join('\n');
}

/** The WebGPU block of the Sampler section (inside its markers). */
function gpuSection(report: Report, commit: string, bundled: boolean): string {
  const [load0, load1] = report.loadAverage;
  const tp = report.throughput;
  const repeat = report.repeat ?? 5;
  const flags = flagsOf(report);
  const command = bundled
    ? '`bash tools/bench/scripts/gpu-webgpu-prepare.sh` on the dev machine (it bundles this bench with esbuild), then ' +
      `\`bash .carry/webgpu-bench/run.sh\` on the GPU host (Node and Dawn unpacked there), which runs \`node sampler.mjs${flags}\``
    : `\`cd tools/bench && node --conditions=@ring-linear/source --import tsx src/sampler.ts${flags}\``;
  const growth = growthText(report.sweep);
  return [
    '### Sampler on WebGPU',
    '',
    'The same measurements with the models built on `@ring-linear/backend-webgpu` (weights, caches and every op of the',
    'forward on the GPU; f32): prefill is the forward over the prompts with the caches and the readback of the last logits;',
    'decode is the time from one streamed token to the next of sequence 0 (the batched one-token forward, the one readback',
    'of logits and log-probs, host sampling with top-p). Every timed interval ends with that readback, so it includes',
    'waiting for the GPU and the copy back. These models are small (a few million parameters): a step is many small',
    'dispatches, so the times show per-dispatch and readback latency more than arithmetic throughput.',
    '',
    `- device: ${report.device}; Node ${report.environment.node}; ${report.date.slice(0, 10)}; commit ${commit}`,
    `- load average (1 min) ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end (host CPU)`,
    `- runs: prefill median of ${repeat} run(s) after a warm-up; decode median over the steps of ${Math.max(1, Math.ceil(repeat / 2))} stream(s) of ${report.decodeTokens ?? 33} tokens; context sweep ${repeat * 2} steps per round in two rounds, after ${report.sweepWarmupSteps ?? 30} untimed steps per model`,
    ...(report.stopped ? [`- ${report.stopped}: what follows it was not run`] : []),
    ...(report.error ? [`- the run ended with an error, ${report.error}: the rows are those measured before it`] : []),
    ...(report.complete === false ? ['- the run did not finish (killed from outside): the rows are those measured before'] : []),
    `- command: ${command}`,
    '',
    `#### Prefill (${tp[0] ? tp[0].prefillTokens / tp[0].batch : (report.promptLength ?? 256)} prompt tokens per sequence) and decode throughput`,
    '',
    tp.length ? throughputTable(tp) : '(not measured)',
    '',
    '#### Decode time per token vs context length',
    '',
    'The models of the CPU sweep above (4 layers of hidden 256; linear, hybrid, softmax), caches filled with random',
    'contents to the given context; median and fastest (in parentheses) of the timed decode steps.',
    ...(growth ? [growth] : []),
    '',
    report.sweep.length ? sweepTable(report.sweep, contextsOf(report.sweep)) : '(not measured)',
  ].join('\n');
}

interface RunValues {
  backend?: string;
  'max-context'?: string;
  repeat?: string;
  'budget-s'?: string;
  small?: boolean;
}

async function run(values: RunValues, jsonOut: string): Promise<Report> {
  const backendName = parseBackend(values.backend);
  const budget = new TimeBudget(parseBudget(values['budget-s']));
  const small = values.small === true;
  const maxContext = Number(values['max-context'] ?? (small ? 1024 : 16384));
  const repeat = Number(values.repeat ?? (small ? 2 : 5));
  if (!Number.isInteger(maxContext) || maxContext < 256) throw new Error(`--max-context expected an integer >= 256, got ${values['max-context']}`);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat expected a positive integer, got ${values.repeat}`);
  const promptLength = small ? 64 : 256;
  const decodeTokens = small ? 9 : 33;
  let webgpu: WebGpuHandle | null = null;
  let device = cpuName();
  if (backendName === 'webgpu') {
    webgpu = await initWebGpu(); // current from here on: the models are built on it
    device = webgpu.device;
  }
  const load0 = os.loadavg()[0]!;
  const argv = process.argv.slice(2).join(' ');
  const report: Report = {
    date: new Date().toISOString(),
    command: FROM_SOURCE ? `cd tools/bench && node --conditions=@ring-linear/source --import tsx src/sampler.ts${argv ? ` ${argv}` : ''}` : `node sampler.mjs${argv ? ` ${argv}` : ''}`,
    ...(webgpu ? { backend: 'webgpu', software: webgpu.software } : {}),
    environment: environment(),
    device,
    loadAverage: [load0, load0],
    repeat,
    promptLength,
    decodeTokens,
    ...(small ? { small } : {}),
    sweepWarmupSteps: small ? 3 : 30,
    budgetS: budget.limitS,
    stopped: null,
    complete: false,
    error: null,
    throughput: [],
    sweep: [],
  };
  const save = () => {
    report.loadAverage = [load0, os.loadavg()[0]!];
    report.stopped = budget.stopped;
    fs.mkdirSync(path.dirname(jsonOut), { recursive: true });
    fs.writeFileSync(jsonOut, `${JSON.stringify(report, null, 2)}\n`);
  };
  try {
    let lastS = 0;
    outer: for (const name of small ? (['tiny'] as const) : (['tiny', 'small'] as const)) {
      for (const batch of small ? [1] : [1, 4]) {
        if (!budget.allows(`throughput ${name} batch ${batch}`, lastS)) break outer;
        process.stderr.write(`throughput ${name} batch ${batch} ... `);
        const t0 = performance.now();
        try {
          const r = await throughput(name, batch, promptLength, decodeTokens, repeat);
          report.throughput.push(r);
          process.stderr.write(`prefill ${f(r.prefillTokensPerS)} tokens/s, decode ${f(r.decodeTokensPerS)} tokens/s\n`);
        } catch (err) {
          report.error = `throughput ${name} batch ${batch}: ${(err as Error).message}`;
          process.stderr.write(`FAILED\n${(err as Error).stack ?? String(err)}\n`);
          break outer;
        }
        lastS = (performance.now() - t0) / 1000;
        save();
      }
    }
    if (!report.error) {
      const contexts: number[] = [];
      for (let c = 256; c <= maxContext; c *= 4) contexts.push(c);
      try {
        report.sweep = await sweep(contexts, repeat * 2, report.sweepWarmupSteps!, budget, (rows) => {
          report.sweep = rows;
          save();
        });
      } catch (err) {
        report.error = `decode sweep: ${(err as Error).message}`;
        process.stderr.write(`decode sweep FAILED\n${(err as Error).stack ?? String(err)}\n`);
      }
    }
  } finally {
    await webgpu?.dispose();
  }
  report.complete = true;
  save();
  return report;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      backend: { type: 'string' },
      'max-context': { type: 'string' },
      repeat: { type: 'string' },
      'budget-s': { type: 'string' },
      small: { type: 'boolean' },
      'no-docs': { type: 'boolean' },
      json: { type: 'string' },
      'docs-from': { type: 'string' },
      commit: { type: 'string' },
    },
    strict: true,
  });
  const from = values['docs-from'];
  let report: Report;
  if (from) {
    report = JSON.parse(fs.readFileSync(path.resolve(from), 'utf8')) as Report;
  } else {
    const out = values.json ? path.resolve(values.json) : path.join(REPO_ROOT, 'runs', 'bench', `sampler-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    report = await run(values, out);
    console.log(`JSON: ${out}`);
  }
  const gpu = (report.backend ?? 'cpu') === 'webgpu';
  console.log(`\n${report.device}${report.software ? ' (software adapter)' : ''}\n${throughputTable(report.throughput)}\n\n${sweepTable(report.sweep, contextsOf(report.sweep))}`);
  if (report.stopped) console.log(report.stopped);
  if (report.error) {
    console.log(`error: ${report.error}`);
    process.exitCode = 1;
  }
  if (values['no-docs']) return;
  if (!report.throughput.length && !report.sweep.length) {
    console.log('docs not written: the report has no rows');
  } else if (report.software && !allowSoftwareDocs()) {
    console.log("docs not written: a software adapter's timings only prove that the bench runs");
  } else {
    // A run on another host (a bundle, no git there) names its commit with --commit.
    const commit = values.commit ?? (report.environment.commit !== 'unknown' ? report.environment.commit : environment().commit);
    const bundled = !report.command.includes('src/sampler.ts');
    const file = path.join(REPO_ROOT, 'docs', 'benchmarks.md');
    if (gpu) writeSection(file, MARKERS, null, gpuSection(report, commit, bundled));
    else writeSection(file, MARKERS, cpuSection(report, commit));
    console.log(`wrote ${file}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
