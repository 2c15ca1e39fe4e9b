/**
 * The model-level step of issue 12: the whole hybrid model (RingLinearForCausalLM) through the
 * library's public API, on whatever kernels the CUDA backend has registered at run time.
 *
 *   node run.mjs model --out DIR [--torch FILE] [--seed N] [--small] [--only a,b] [--backend cpu]
 *                      [--budget S] [--meas-limit S]
 *
 * 1. check: a small model with Ring-mini's layer pattern (linear + softmax layers, a dense first
 *    layer, MoE with expert groups and a shared expert; head_dim 128), random weights made here
 *    and saved as a Hugging Face checkpoint (saveCheckpoint) into a temporary folder, in f32 and
 *    in bf16. The checkpoint is loaded on CUDA (loadPretrained); CUDA logits vs CPU logits for a
 *    fixed token batch (full forward, and prefill + two decode steps through the caches); then
 *    `python3 torch_model.py --check DIR` loads the same checkpoint into the plain PyTorch model
 *    and compares its logits with ours (written to DIR): the proof that the PyTorch baseline
 *    computes the same model.
 * 2. Timings (smallest first): Ring-mini-linear-2.0 at full size, random bf16 weights drawn on
 *    the GPU (the model is built with the CUDA backend current, so every initializer runs there):
 *    decode tokens/s at batch 1 and 64 with 4K and 32K of context (caches filled with random
 *    values of the right shapes and dtypes: f32 lightning states, bf16 post-RoPE K/V), prefill
 *    tokens/s at 4K and 32K (batch 1, through the caches as the sampler prefills), then a training
 *    step (forward + backward, no optimizer step) of a ~1B-parameter hybrid (Ring-mini's shape with
 *    10 layers and 16 experts) in bf16 and with FP8 linear layers, B = 1 x 4096 tokens.
 *    Ratios against torch_model.py's timings of the same names (run before this step, same card).
 *
 * Options: --only a,b (or MODEL_ONLY) keeps the measurements whose names start with one of the
 * words (check, decode, prefill, train, or a full name); --small (or MODEL_SMALL=1) a quick pass
 * (5 layers, 64 experts, contexts 512 / 2048, training 1024 tokens; the same in torch_model.py);
 * --backend cpu a dry run of everything on the CPU at tiny sizes. --budget S (MODEL_BUDGET_S,
 * default 380) stops starting measurements when the step has run that long; --meas-limit S
 * (MODEL_MEAS_LIMIT_S, default 45): a measurement whose first call takes longer is reported from
 * that one call, and larger measurements of its family are skipped. Results are rewritten after
 * every measurement, so a step killed by its time limit still leaves what it measured.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as core from '@ring-linear/core';
import '@ring-linear/backend-cpu';
import { CudaBackend } from '@ring-linear/backend-cuda';
import { KVCache, LinearAttentionState } from '@ring-linear/attention';
import {
  RingLinearForCausalLM,
  type RingLinearConfigInput,
  configToJson,
  countParameters,
  createConfig,
  formatParamCount,
  layerTypesOf,
  loadPretrained,
  preset,
  saveCheckpoint,
  type RingLinearCache,
  type RingLinearConfig,
} from '@ring-linear/models';
import { cudaBackend, log, outDir, relMaxErr, median, type Args } from '../common.js';

// ---------------------------------------------------------------------------------------------
// Configs (torch_model.py builds the same ones from the same fields)

/** The check model: Ring-mini's pattern at small width (head_dim 128 so the fused kernels' shapes apply). */
const CHECK_FIELDS: RingLinearConfigInput = {
  architectures: ['BailingMoeLinearV2ForCausalLM'],
  model_type: 'bailing_moe_linear',
  vocab_size: 512,
  hidden_size: 256,
  num_hidden_layers: 6,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 128,
  layer_group_size: 5,
  intermediate_size: 384,
  first_k_dense_replace: 1,
  num_experts: 16,
  num_experts_per_tok: 4,
  n_group: 4,
  topk_group: 2,
  moe_intermediate_size: 64,
  num_shared_experts: 1,
  moe_shared_expert_intermediate_size: 128,
  routed_scaling_factor: 2.5,
  norm_topk_prob: true,
  score_function: 'sigmoid',
  group_norm_size: 2,
  partial_rotary_factor: 0.5,
  rope_theta: 1e6,
  use_qk_norm: true,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
  max_position_embeddings: 4096,
};

function miniConfig(small: boolean): RingLinearConfig {
  const c = preset('ring-mini-linear-2.0');
  return small ? createConfig({ ...configToJson(c), num_hidden_layers: 5, num_experts: 64 }) : c;
}

/** The ~1B training model: Ring-mini's shape (1:4 schedule, dense first layer, grouped top-8 routing) with 10 layers and 16 experts. */
function trainConfig(small: boolean): RingLinearConfig {
  return createConfig({ ...configToJson(preset('ring-mini-linear-2.0')), num_hidden_layers: small ? 5 : 10, num_experts: 16 });
}

function tinyConfig(): RingLinearConfig {
  return createConfig({ ...CHECK_FIELDS, torch_dtype: 'bfloat16' });
}

// ---------------------------------------------------------------------------------------------
// Rows and output

interface Row {
  name: string;
  what: string;
  ms?: number;
  msMin?: number;
  runs?: number;
  tokens: number;
  tokPerS?: number;
  torchMs?: number;
  torchTokPerS?: number;
  /** torch time / ours (> 1: ours faster). */
  ratio?: number;
  peakGiB?: number;
  torchPeakGiB?: number;
  notes: string[];
}

interface CheckLine {
  name: string;
  ok: boolean;
  detail: string;
}

const f = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));

function formatTable(device: string, rows: Row[], checks: CheckLine[]): string {
  const w = Math.max(26, ...rows.map((r) => r.name.length + 1));
  const lines = [`model step on ${device} (median of CUDA-event timings after warm-up; ratio = torch ms / ours; peak = allocator peak during the row, weights included)`];
  lines.push(['measurement'.padEnd(w), 'ours ms'.padStart(11), 'tokens/s'.padStart(11), 'torch ms'.padStart(11), 'torch tok/s'.padStart(12), 'ratio'.padStart(7), 'peak GiB'.padStart(9), 'torch GiB'.padStart(10), '  notes'].join(''));
  for (const r of rows) {
    lines.push([
      r.name.padEnd(w),
      f(r.ms, 2).padStart(11),
      f(r.tokPerS, 0).padStart(11),
      f(r.torchMs, 2).padStart(11),
      f(r.torchTokPerS, 0).padStart(12),
      f(r.ratio, 2).padStart(7),
      f(r.peakGiB, 1).padStart(9),
      f(r.torchPeakGiB, 1).padStart(10),
      `  ${r.what}${r.notes.length ? '; ' + r.notes.join('; ') : ''}`,
    ].join(''));
  }
  for (const c of checks) lines.push(`check ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
  return lines.join('\n');
}

interface TorchResults {
  device?: string;
  torch?: string;
  notes?: string[];
  params?: Record<string, number>;
  configs?: Record<string, Record<string, unknown>>;
  benchmarks?: Record<string, { ms?: number; peak_gib?: number; notes?: string[]; error?: string }>;
}

function readTorch(file: string): TorchResults {
  if (!existsSync(file)) {
    log(`no PyTorch results at ${file}; ratios left out`);
    return {};
  }
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as TorchResults;
  } catch (err) {
    log(`could not read ${file}: ${(err as Error).message}`);
    return {};
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

type Be = { kind: 'cuda'; b: CudaBackend } | { kind: 'cpu' };

const GiB = 2 ** 30;

function peakGiB(be: Be): number | undefined {
  return be.kind === 'cuda' ? be.b.allocatorStats().peakBytesReserved / GiB : undefined;
}

function sync(be: Be): void {
  if (be.kind === 'cuda') be.b.synchronizeBlocking();
}

/**
 * Frees the allocator's cached blocks and restarts its peak at what is live now, so a row's peak
 * is its own (as torch.cuda.reset_peak_memory_stats; the allocator has no public reset, so its
 * private counter is set here, in this tool only).
 */
function freeCached(be: Be): void {
  if (be.kind !== 'cuda') return;
  be.b.emptyCache();
  const alloc = (be.b as unknown as { allocator?: { peak?: unknown } }).allocator;
  if (alloc && typeof alloc.peak === 'number') alloc.peak = be.b.allocatorStats().bytesReservedInUse;
}

/**
 * Times fn (run in a tidy scope): one call by the wall clock (includes first-call compiles), a
 * second one, then `reps` more with CUDA events (median). A first call over `limitMs` is the
 * result by itself ("1 call").
 */
function timeIt(be: Be, fn: () => void, maxReps: number, limitMs: number, budgetMs: number): { ms: number; msMin: number; runs: number; firstMs: number; hostMs?: number; note?: string } {
  const wall = () => {
    const t0 = performance.now();
    core.tidy(fn);
    sync(be);
    return performance.now() - t0;
  };
  const first = wall();
  if (first > limitMs) return { ms: first, msMin: first, runs: 1, firstMs: first, note: `one call only (${(first / 1000).toFixed(1)} s > limit; wall clock, includes first-call compiles)` };
  const second = wall();
  const reps = Math.max(1, Math.min(maxReps, Math.floor(budgetMs / Math.max(second, 1e-3))));
  if (be.kind === 'cuda') {
    const d = be.b.rt.driver;
    const evs = Array.from({ length: reps + 1 }, () => d.createEvent(true));
    d.recordEvent(evs[0]!, be.b.stream);
    const h0 = performance.now();
    for (let i = 0; i < reps; i++) {
      core.tidy(fn);
      d.recordEvent(evs[i + 1]!, be.b.stream);
    }
    // Host time to enqueue one call: close to the GPU time means the step is launch-bound.
    const hostMs = (performance.now() - h0) / reps;
    be.b.synchronizeBlocking();
    const t = evs.slice(1).map((e, i) => d.elapsedMs(evs[i]!, e));
    for (const e of evs) d.destroyEvent(e);
    return { ms: median(t), msMin: Math.min(...t), runs: reps, firstMs: first, hostMs };
  }
  const t: number[] = [];
  for (let i = 0; i < reps; i++) t.push(wall());
  return { ms: median(t), msMin: Math.min(...t), runs: reps, firstMs: first };
}

/**
 * Where one call's host time goes: every CUDA driver and cuBLASLt entry point (cuLaunchKernel
 * included) wrapped with a counter and a clock for one call of fn, then restored. Host time not
 * inside these calls is JavaScript (the engine, op planning, the allocator). A driver call that
 * waits for the GPU (a synchronizing copy or free, a full launch queue) shows up as its time.
 */
function profileCall(b: CudaBackend, fn: () => void): string {
  try {
    return profileCallUnsafe(b, fn);
  } catch (err) {
    return `profile failed: ${(err as Error).message}`;
  }
}

function profileCallUnsafe(b: CudaBackend, fn: () => void): string {
  type Fn = (...args: unknown[]) => unknown;
  const stats = new Map<string, { calls: number; ms: number }>();
  const restore: (() => void)[] = [];
  const wrap = (holder: Record<string, unknown>, key: string, label: string) => {
    const orig = holder[key];
    if (typeof orig !== 'function') return;
    const f = orig as Fn;
    holder[key] = (...args: unknown[]) => {
      const t = performance.now();
      try {
        return f(...args);
      } finally {
        const st = stats.get(label) ?? { calls: 0, ms: 0 };
        st.calls++;
        st.ms += performance.now() - t;
        stats.set(label, st);
      }
    };
    restore.push(() => (holder[key] = orig));
  };
  const dfn = b.rt.driver.fn as unknown as Record<string, unknown>;
  for (const k of Object.keys(dfn)) wrap(dfn, k, k);
  const lfn = b.rt.cublasLt.fn as unknown as Record<string, unknown>;
  for (const k of Object.keys(lfn)) wrap(lfn, k, k);
  wrap(b as unknown as Record<string, unknown>, 'launchFn', 'cuLaunchKernel');
  b.synchronizeBlocking();
  const t0 = performance.now();
  try {
    core.tidy(fn);
  } finally {
    const hostMs = performance.now() - t0;
    b.synchronizeBlocking();
    const totalMs = performance.now() - t0;
    for (const r of restore.reverse()) r();
    const top = [...stats.entries()].sort((p, q) => q[1].ms - p[1].ms).slice(0, 6);
    const inCalls = [...stats.values()].reduce((a, x) => a + x.ms, 0);
    profileResult = `host ${hostMs.toFixed(1)} ms of ${totalMs.toFixed(1)} ms (in CUDA calls ${inCalls.toFixed(1)} ms, JS ${(hostMs - inCalls).toFixed(1)} ms): ${top.map(([k, v]) => `${k} ${v.calls}x ${v.ms.toFixed(1)} ms`).join(', ')}`;
  }
  return profileResult;
}
let profileResult = '';

function hostIds(gen: () => number, B: number, T: number, vocab: number): Int32Array {
  return Int32Array.from({ length: B * T }, () => Math.floor(gen() * vocab) % vocab);
}

/** Deterministic host PRNG (mulberry32) for token ids. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function hostF32(t: core.Tensor): Promise<Float32Array> {
  const x = t.dtype === 'f32' ? t : core.cast(t, 'f32');
  const v = (await x.data()) as Float32Array;
  if (x !== t) x.dispose();
  return v;
}

function maxAbsDiff(got: Float32Array, want: Float32Array): { maxAbs: number; at: number; nonFinite: number; maxRef: number } {
  let maxAbs = 0;
  let at = 0;
  let nonFinite = 0;
  let maxRef = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (!Number.isFinite(g) || !Number.isFinite(w)) {
      nonFinite++;
      continue;
    }
    const d = Math.abs(g - w);
    if (d > maxAbs) {
      maxAbs = d;
      at = i;
    }
    maxRef = Math.max(maxRef, Math.abs(w));
  }
  return { maxAbs, at, nonFinite, maxRef };
}

function countNonFinite(v: Float32Array): number {
  let n = 0;
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) n++;
  return n;
}

/** Caches for `batch` sequences holding `ctx` tokens of random content (f32 lightning states, K/V in the model dtype). */
function filledCache(model: RingLinearForCausalLM, batch: number, ctx: number, spare: number, gen: core.Generator): RingLinearCache {
  const c = model.config;
  const cache = model.createCache(batch, { initialCapacity: ctx + spare });
  const dt = model.model.layers.at(0).computeDType;
  for (const layer of cache.layers) {
    if (layer instanceof LinearAttentionState) {
      // A state after many tokens: sum of decayed k^T v outer products; its scale hardly matters
      // for timing, finite values do.
      const s = core.randomNormal(layer.state.shape, { std: 0.05, dtype: 'f32', generator: gen });
      layer.update(s, ctx);
    } else if (layer instanceof KVCache) {
      // Post-QK-norm, post-RoPE keys have entries of order 1; values likewise.
      core.tidy(() => {
        const k = core.randomNormal([batch, ctx, c.num_key_value_heads, c.head_dim], { dtype: dt, generator: gen });
        const v = core.randomNormal([batch, ctx, c.num_key_value_heads, c.head_dim], { dtype: dt, generator: gen });
        layer.append(k, v);
      });
    }
  }
  cache.advance(ctx);
  return cache;
}

// ---------------------------------------------------------------------------------------------
// The step

export async function model(a: Args): Promise<number> {
  const out = outDir(a);
  const t0 = performance.now();
  const seed = a.seed !== undefined ? Number(a.seed) : Math.floor(Math.random() * 2 ** 31);
  const cpuOnly = a.backend === 'cpu';
  const small = a.small === true || process.env.MODEL_SMALL === '1';
  const onlyArg = typeof a.only === 'string' ? a.only : process.env.MODEL_ONLY ?? '';
  const only = onlyArg.split(',').map((s) => s.trim()).filter(Boolean);
  const budgetMs = 1000 * Number(a.budget ?? process.env.MODEL_BUDGET_S ?? 380);
  const measLimitMs = 1000 * Number(a['meas-limit'] ?? process.env.MODEL_MEAS_LIMIT_S ?? 45);
  const selected = (name: string) => only.length === 0 || only.some((w) => name === w || name.startsWith(w));
  const elapsed = () => performance.now() - t0;
  const left = () => budgetMs - elapsed();

  let be: Be;
  if (cpuOnly) {
    await core.initBackend('cpu');
    await core.setBackend('cpu');
    be = { kind: 'cpu' };
  } else {
    be = { kind: 'cuda', b: await cudaBackend() };
  }
  const device = be.kind === 'cuda' ? be.b.capabilities.device : 'cpu (dry run)';
  log(`model: ${device}; seed ${seed}; ${small ? 'small pass; ' : ''}${cpuOnly ? 'CPU dry run at tiny sizes; ' : ''}only [${only.join(', ') || 'all'}]; budget ${budgetMs / 1000} s, per-measurement limit ${measLimitMs / 1000} s`);

  // Which ops with a composite fallback have a kernel on this backend now (the fused kernels are
  // registered by other work in progress; the model runs on whatever is there).
  const backendName = be.kind === 'cuda' ? 'cuda' : 'cpu';
  const withComposite = core.listOps().filter((op) => core.getOpDef(op)?.composite);
  const fusedOps = withComposite.filter((op) => core.getKernel(op, backendName));
  const compositeOps = withComposite.filter((op) => !core.getKernel(op, backendName));
  log(`ops with a composite: kernels on ${backendName}: ${fusedOps.join(', ') || 'none'}; composites: ${compositeOps.join(', ') || 'none'}`);

  const torchFile = typeof a.torch === 'string' ? a.torch : join(out, 'torch_model.json');
  const torch = readTorch(torchFile);
  for (const n of torch.notes ?? []) log(`torch: ${n}`);

  const rows: Row[] = [];
  const checks: CheckLine[] = [];
  const profiles: Record<string, string> = {};
  const extra: Record<string, unknown> = { fusedOps, compositeOps, profiles };
  const write = () => {
    for (const r of rows) {
      const t = torch.benchmarks?.[r.name];
      if (t?.ms !== undefined && t.ms > 0) {
        r.torchMs = t.ms;
        r.torchTokPerS = (r.tokens * 1000) / t.ms;
        if (r.ms !== undefined) r.ratio = t.ms / r.ms;
      }
      if (t?.peak_gib !== undefined) r.torchPeakGiB = t.peak_gib;
      if (t?.error && !r.notes.some((n) => n.startsWith('torch:'))) r.notes.push(`torch: ${t.error}`);
      if (t?.notes?.length && !r.notes.some((n) => n.startsWith('torch '))) r.notes.push(`torch ${t.notes.join(', ')}`);
    }
    const table = formatTable(device, rows, checks);
    writeFileSync(join(out, 'model.txt'), table + '\n');
    writeFileSync(join(out, 'model.json'), JSON.stringify({ device, seed, small, cpuOnly, torchDevice: torch.device, torchVersion: torch.torch, torchNotes: torch.notes, secs: elapsed() / 1000, rows, checks, ...extra }, null, 1));
    return table;
  };

  // ---- 1. correctness across implementations
  if (selected('check')) {
    for (const dt of ['f32', 'bf16'] as const) {
      try {
        if (left() < 30_000) {
          checks.push({ name: `check-${dt}`, ok: false, detail: 'skipped (budget)' });
          continue;
        }
        await checkAcross(be, dt, seed, out, checks);
      } catch (err) {
        checks.push({ name: `check-${dt}`, ok: false, detail: `threw: ${(err as Error).stack ?? err}` });
        log(`check-${dt} threw: ${(err as Error).stack ?? err}`);
      }
      write();
    }
  }

  // ---- diagnostics: does a small host->device upload (tensor(), b.write from pageable memory)
  // make the host wait for the queued GPU work? (It would serialize host and GPU in every step
  // that uploads, e.g. the MoE pointer tables and segment offsets.)
  if (be.kind === 'cuda' && selected('diag')) {
    try {
      const x = core.keep(core.randomNormal([8192, 8192], { dtype: 'bf16' }));
      const queue = () => core.tidy(() => { for (let i = 0; i < 4; i++) core.matmul(x, x); });
      queue();
      sync(be);
      const q0 = performance.now();
      queue();
      const enqueueMs = performance.now() - q0;
      sync(be);
      const g0 = performance.now();
      queue();
      sync(be);
      const gpuMs = performance.now() - g0;
      queue();
      const u0 = performance.now();
      const small = core.tensor(Int32Array.of(0, 1), [2], 'i32');
      const uploadMs = performance.now() - u0;
      sync(be);
      small.dispose();
      x.dispose();
      const syncs = uploadMs > 0.5 * gpuMs;
      const detail = `4 bf16 matmuls 8192^3: enqueue ${enqueueMs.toFixed(2)} ms, run ${gpuMs.toFixed(2)} ms; a 2-element tensor() upload queued behind them took ${uploadMs.toFixed(2)} ms on the host${syncs ? ' -> the upload waits for the queued GPU work (pageable cuMemcpyHtoDAsync syncs)' : ' -> no wait'}`;
      log(`diag-upload: ${detail}`);
      extra.diagUpload = { enqueueMs, gpuMs, uploadMs, syncs };
      rows.push({ name: 'diag-upload', what: detail, tokens: 0, notes: [] });
    } catch (err) {
      log(`diag-upload failed: ${(err as Error).stack ?? err}`);
    }
    write();
  }

  // ---- 2. timings
  const mini = cpuOnly ? tinyConfig() : miniConfig(small);
  const train = cpuOnly ? tinyConfig() : trainConfig(small);
  const ctxs = cpuOnly ? [64, 160] : small ? [512, 2048] : [4096, 32768];
  const batches = cpuOnly ? [1, 4] : [1, 64];
  const trainT = cpuOnly ? 64 : small ? 1024 : 4096;
  const miniCounts = countParameters(mini);
  const trainCounts = countParameters(train);
  extra.params = { mini: miniCounts, train: trainCounts };
  extra.configs = { mini: configToJson(mini), train: configToJson(train) };
  log(`timed model (${cpuOnly ? 'tiny' : small ? 'ring-mini, 5 layers, 64 experts' : 'Ring-mini-linear-2.0'}): ${formatParamCount(miniCounts.total)} total (${miniCounts.total}), ${formatParamCount(miniCounts.active)} active; layers ${layerTypesOf(mini).map((k) => (k === 'linear' ? 'L' : 'S')).join('')}`);
  log(`training model (${cpuOnly ? 'tiny' : `Ring-mini shape, ${train.num_hidden_layers} layers, ${train.num_experts} experts`}): ${formatParamCount(trainCounts.total)} total (${trainCounts.total}), ${formatParamCount(trainCounts.active)} active`);
  if (torch.params) log(`torch parameter counts: ${JSON.stringify(torch.params)}`);

  interface Meas {
    name: string;
    family: string;
    size: number[];
    what: string;
    tokens: number;
  }
  const decodes: Meas[] = [];
  for (const B of batches) for (const ctx of ctxs) decodes.push({ name: `decode-B${B}-ctx${ctx}`, family: 'decode', size: [B, ctx], what: `decode 1 token/seq, B=${B}, context ${ctx}`, tokens: B });
  const prefills: Meas[] = ctxs.map((T) => ({ name: `prefill-T${T}`, family: 'prefill', size: [T], what: `prefill B=1 x ${T} tokens (through the caches; last-position logits)`, tokens: T }));
  const trains: Meas[] = (['bf16', 'fp8'] as const).map((p, i) => ({ name: `train-${p}-T${trainT}`, family: 'train', size: [i], what: `train step fwd+bwd (no optimizer), ${formatParamCount(trainCounts.total)} hybrid, ${p === 'fp8' ? 'bf16 + FP8 linear layers' : 'bf16'}, B=1 x ${trainT}`, tokens: trainT }));
  const slow: Record<string, number[][]> = {};
  const dominated = (m: Meas) => (slow[m.family] ?? []).some((s) => s.every((x, i) => m.size[i]! >= x));
  const start = (m: Meas): Row | null => {
    if (!selected(m.name)) return null;
    const row: Row = { name: m.name, what: m.what, tokens: m.tokens, notes: [] };
    rows.push(row);
    if (left() < 20_000) {
      row.notes.push('skipped (step budget)');
      write();
      return null;
    }
    if (dominated(m)) {
      row.notes.push('skipped (a smaller one of its family was too slow or failed)');
      write();
      return null;
    }
    return row;
  };
  const record = (m: Meas, row: Row, r: ReturnType<typeof timeIt>) => {
    row.ms = r.ms;
    row.msMin = r.msMin;
    row.runs = r.runs;
    row.tokPerS = (m.tokens * 1000) / r.ms;
    row.peakGiB = peakGiB(be);
    row.notes.push(`${r.runs} timed, first call ${(r.firstMs / 1000).toFixed(2)} s${r.hostMs !== undefined ? `, host enqueue ${r.hostMs.toFixed(1)} ms/call` : ''}`);
    if (r.note) {
      row.notes.push(r.note);
      (slow[m.family] ??= []).push(m.size);
    }
    log(`${m.name}: ${f(r.ms, 3)} ms, ${f(row.tokPerS, 0)} tokens/s (${r.runs} runs; first call ${f(r.firstMs, 0)} ms; peak ${f(row.peakGiB, 1)} GiB)`);
  };
  const failed = (m: Meas, row: Row, err: unknown) => {
    const msg = (err as Error).message ?? String(err);
    row.notes.push(`FAILED: ${msg.split('\n')[0]!.slice(0, 300)}`);
    (slow[m.family] ??= []).push(m.size);
    log(`${m.name} FAILED: ${(err as Error).stack ?? msg}`);
  };

  const wantMini = [...decodes, ...prefills].some((m) => selected(m.name));
  if (wantMini) {
    let lm: RingLinearForCausalLM | null = null;
    try {
      const g = new core.Generator(seed + 1);
      const tb = performance.now();
      // Built with the current backend (CUDA): every parameter is allocated and drawn on the device.
      lm = new RingLinearForCausalLM(mini, { dtype: 'bf16', generator: g });
      sync(be);
      log(`timed model built on ${cpuOnly ? 'the CPU' : 'the GPU'} in ${((performance.now() - tb) / 1000).toFixed(1)} s; peak ${f(peakGiB(be), 1)} GiB`);
    } catch (err) {
      log(`building the timed model failed: ${(err as Error).stack ?? err}`);
      for (const m of [...decodes, ...prefills]) {
        if (!selected(m.name)) continue;
        rows.push({ name: m.name, what: m.what, tokens: m.tokens, notes: [`FAILED: model build: ${(err as Error).message.split('\n')[0]}`] });
      }
    }
    if (lm) {
      const rng = mulberry32(seed);
      const gen = new core.Generator(seed + 2);
      for (const m of decodes) {
        const row = start(m);
        if (!row) continue;
        const [B, ctx] = m.size as [number, number];
        let cache: RingLinearCache | null = null;
        let ids: core.Tensor | null = null;
        try {
          freeCached(be);
          const maxReps = 20;
          cache = filledCache(lm, B, ctx, maxReps + 8, gen);
          ids = core.keep(core.tensor(hostIds(rng, B, 1, mini.vocab_size), [B, 1], 'i32'));
          // One step outside the timing: finite logits?
          const first = core.tidy(() => lm!.forward(ids!, { cache: cache!, logits: 'last' }).logits!);
          const nf = countNonFinite(await hostF32(first));
          first.dispose();
          if (nf) row.notes.push(`${nf} non-finite logits`);
          const c = cache;
          const r = timeIt(be, () => void lm!.forward(ids!, { cache: c, logits: 'last' }), maxReps, measLimitMs, Math.min(20_000, left() / 4));
          record(m, row, r);
          if (be.kind === 'cuda' && r.runs > 1) {
            const pr = profileCall(be.b, () => void lm!.forward(ids!, { cache: c, logits: 'last' }));
            log(`${m.name} profile: ${pr}`);
            profiles[m.name] = pr;
          }
        } catch (err) {
          failed(m, row, err);
        } finally {
          cache?.dispose();
          ids?.dispose();
          freeCached(be);
        }
        write();
      }
      for (const m of prefills) {
        const row = start(m);
        if (!row) continue;
        const [T] = m.size as [number];
        let ids: core.Tensor | null = null;
        try {
          freeCached(be);
          ids = core.keep(core.tensor(hostIds(rng, 1, T, mini.vocab_size), [1, T], 'i32'));
          const run = () => {
            const cache = lm!.createCache(1, { initialCapacity: T });
            try {
              return lm!.forward(ids!, { cache, logits: 'last' }).logits!;
            } finally {
              cache.dispose();
            }
          };
          const r = timeIt(be, () => void run(), 10, measLimitMs, Math.min(30_000, left() / 4));
          record(m, row, r);
          if (be.kind === 'cuda' && r.runs > 1) {
            const pr = profileCall(be.b, () => void run());
            log(`${m.name} profile: ${pr}`);
            profiles[m.name] = pr;
          }
          if (r.runs > 1) {
            const lg = core.tidy(run);
            const nf = countNonFinite(await hostF32(lg));
            lg.dispose();
            if (nf) row.notes.push(`${nf} non-finite logits`);
          }
        } catch (err) {
          failed(m, row, err);
        } finally {
          ids?.dispose();
          freeCached(be);
        }
        write();
      }
      lm.dispose();
      freeCached(be);
    }
  }

  // ---- training steps of the ~1B hybrid
  for (const m of trains) {
    const row = start(m);
    if (!row) continue;
    const fp8 = m.name.startsWith('train-fp8');
    let tm: RingLinearForCausalLM | null = null;
    let ids: core.Tensor | null = null;
    let targets: core.Tensor | null = null;
    try {
      freeCached(be);
      tm = new RingLinearForCausalLM(train, { dtype: 'bf16', generator: new core.Generator(seed + 3), ...(fp8 ? { fp8: true } : {}) });
      if (fp8) row.notes.push(`${tm.fp8Layers.length} FP8 linear layers (attention + dense MLP; experts bf16 grouped GEMM; lm_head f32)`);
      const rng = mulberry32(seed + 4);
      const host = hostIds(rng, 1, trainT + 1, train.vocab_size);
      ids = core.keep(core.tensor(host.slice(0, trainT), [1, trainT], 'i32'));
      targets = core.keep(core.tensor(host.slice(1), [1, trainT], 'i32'));
      const params = tm.parameters().filter((p) => p.requiresGrad);
      const step = () => {
        const { value, grads } = core.valueAndGrad(() => tm!.forward(ids!, { targets: targets!, logits: 'none' }).loss!, params);
        return [value, ...grads];
      };
      // First step outside the timing: a finite loss?
      const outs = core.tidy(step);
      const loss = (await hostF32(outs[0]!))[0]!;
      core.dispose(outs);
      row.notes.push(`loss ${loss.toFixed(3)} (ln V = ${Math.log(train.vocab_size).toFixed(3)})`);
      const r = timeIt(be, () => void step(), 10, measLimitMs, Math.min(30_000, left() / 4));
      record(m, row, r);
      if (be.kind === 'cuda' && r.runs > 1) {
        const pr = profileCall(be.b, () => void step());
        log(`${m.name} profile: ${pr}`);
        profiles[m.name] = pr;
      }
    } catch (err) {
      failed(m, row, err);
    } finally {
      ids?.dispose();
      targets?.dispose();
      tm?.dispose();
      freeCached(be);
    }
    write();
  }

  // Torch's configs must be ours (the same model).
  if (torch.configs) {
    for (const [key, ours] of Object.entries({ mini: configToJson(mini), train: configToJson(train) })) {
      const theirs = torch.configs[key];
      if (!theirs) continue;
      const diff = Object.entries(theirs).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify((ours as Record<string, unknown>)[k]));
      checks.push({ name: `torch-config-${key}`, ok: diff.length === 0, detail: diff.length ? `torch_model.py differs: ${diff.map(([k, v]) => `${k}=${JSON.stringify(v)} (ours ${JSON.stringify((ours as Record<string, unknown>)[k])})`).join(', ')}` : `torch_model.py builds the same ${key} config (${Object.keys(theirs).length} fields)` });
    }
  }

  const table = write();
  log(`model: ${rows.filter((r) => r.ms !== undefined).length}/${rows.length} measured, checks ${checks.filter((c) => c.ok).length}/${checks.length} ok, ${(elapsed() / 1000).toFixed(0)} s`);
  log(table);
  if (be.kind === 'cuda') await core.disposeBackend('cuda');
  return checks.some((c) => !c.ok) || rows.some((r) => r.notes.some((n) => n.startsWith('FAILED'))) ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// check: our CUDA vs our CPU vs torch_model.py on one checkpoint

async function checkAcross(be: Be, dt: 'f32' | 'bf16', seed: number, out: string, checks: CheckLine[]): Promise<void> {
  const name = `check-${dt}`;
  const cfg = createConfig({ ...CHECK_FIELDS, torch_dtype: dt === 'f32' ? 'float32' : 'bfloat16' });
  const B = 2;
  const T = 150; // two full chunks of 64 and a partial one
  const ids = hostIds(mulberry32(seed + 7), B, T, cfg.vocab_size);
  const dir = mkdtempSync(join(tmpdir(), `ring-model-check-${dt}-`));
  const tol = dt === 'f32' ? 1e-4 : 1e-1; // bf16: rounding-order differences and the occasional routing flip
  log(`${name}: layers ${layerTypesOf(cfg).map((k) => (k === 'linear' ? 'L' : 'S')).join('')}, ${formatParamCount(countParameters(cfg).total)} params, tokens [${B}, ${T}], checkpoint ${dir}`);

  // Our logits on the current backend for a model: the full forward, and the cached path
  // (prefill T - 2 tokens, then two one-token decode steps; the last step's logits).
  const run = async (m: RingLinearForCausalLM): Promise<{ full: Float32Array; cached: Float32Array; prefillLast: Float32Array }> => {
    const idsT = core.tensor(ids, [B, T], 'i32');
    const full = core.tidy(() => m.forward(idsT, { logits: 'all' }).logits!);
    const cache = m.createCache(B, { initialCapacity: 16 });
    const part = (from: number, to: number) => {
      const rows = new Int32Array(B * (to - from));
      for (let b = 0; b < B; b++) rows.set(ids.subarray(b * T + from, b * T + to), b * (to - from));
      return core.tensor(rows, [B, to - from], 'i32');
    };
    const p = part(0, T - 2);
    const prefillLast = core.tidy(() => m.forward(p, { cache, logits: 'last' }).logits!);
    const d1 = part(T - 2, T - 1);
    core.tidy(() => void m.forward(d1, { cache, logits: 'last' }));
    const d2 = part(T - 1, T);
    const last = core.tidy(() => m.forward(d2, { cache, logits: 'last' }).logits!);
    const r = { full: await hostF32(full), cached: await hostF32(last), prefillLast: await hostF32(prefillLast) };
    core.dispose([idsT, full, p, prefillLast, d1, d2, last]);
    cache.dispose();
    return r;
  };

  // 1. The model on the CPU, norms and the expert bias perturbed so their weights matter.
  await core.setBackend('cpu');
  const gen = new core.Generator(seed + 5);
  const cpuModel = new RingLinearForCausalLM(cfg, { dtype: dt, generator: gen });
  for (const [pname, p] of cpuModel.namedParameters()) {
    if (/norm\.weight$|layernorm\.weight$/.test(pname)) p.assign(core.tidy(() => core.add(core.randomNormal(p.shape, { std: 0.1, dtype: p.dtype, generator: gen }), core.full(p.shape, 1, p.dtype))));
  }
  for (const { moe } of cpuModel.moeLayers()) {
    moe.gate.expert_bias.assign(core.randomNormal(moe.gate.expert_bias.shape, { std: 0.01, dtype: 'f32', generator: gen }));
  }
  await saveCheckpoint(cpuModel, dir);
  const cpu = await run(cpuModel);
  cpuModel.dispose();
  const V = cfg.vocab_size;
  // Within ours: the cached path's last logits vs the full forward's last position.
  const lastOfFull = (full: Float32Array) => {
    const o = new Float32Array(B * V);
    for (let b = 0; b < B; b++) o.set(full.subarray((b * T + T - 1) * V, (b * T + T) * V), b * V);
    return o;
  };
  const selfRel = relMaxErr(cpu.cached, lastOfFull(cpu.full));
  checks.push({ name: `${name} cpu cached vs full`, ok: selfRel <= tol, detail: `prefill ${T - 2} + 2 decode steps vs full forward, last position: max|diff|/max|ref| ${selfRel.toExponential(2)} (tol ${tol})` });

  // 2. The checkpoint on the CUDA backend.
  let ours = cpu;
  if (be.kind === 'cuda') {
    await core.setBackend('cuda');
    const { model: gm } = await loadPretrained(dir, { dtype: dt });
    const gpu = await run(gm);
    gm.dispose();
    for (const [what, got, want] of [['full forward', gpu.full, cpu.full], ['prefill last', gpu.prefillLast, cpu.prefillLast], ['cached decode', gpu.cached, cpu.cached]] as const) {
      const d = maxAbsDiff(got, want);
      const rel = d.maxAbs / Math.max(d.maxRef, 1e-30);
      const at = d.at;
      const pos = what === 'full forward' ? `b=${Math.floor(at / (T * V))} t=${Math.floor(at / V) % T} v=${at % V}` : `b=${Math.floor(at / V)} v=${at % V}`;
      checks.push({
        name: `${name} cuda vs cpu ${what}`,
        ok: rel <= tol && d.nonFinite === 0,
        detail: `max|diff| ${d.maxAbs.toExponential(3)}, max|cpu| ${d.maxRef.toExponential(3)}, rel ${rel.toExponential(2)} (tol ${tol}); worst at ${pos}: cuda ${got[at]} cpu ${want[at]}${d.nonFinite ? `; ${d.nonFinite} non-finite` : ''}`,
      });
    }
    ours = gpu;
  }
  // 3. torch_model.py on the same checkpoint and tokens.
  writeFileSync(join(dir, 'ours_logits.f32'), new Uint8Array(ours.full.buffer, ours.full.byteOffset, ours.full.byteLength));
  writeFileSync(join(dir, 'ours_cached.f32'), new Uint8Array(ours.cached.buffer, ours.cached.byteOffset, ours.cached.byteLength));
  writeFileSync(join(dir, 'check.json'), JSON.stringify({ ids: Array.from(ids), batch: B, time: T, vocab: V, logits_shape: [B, T, V], cached_shape: [B, V], prefill_tokens: T - 2, decode_steps: 2, dtype: dt, tol, ours: be.kind === 'cuda' ? 'cuda' : 'cpu' }));
  const script = join(dirname(process.argv[1] ?? '.'), 'torch_model.py');
  const py = process.env.MODEL_PYTHON ?? 'python3';
  const res = spawnSync(py, [script, '--check', dir], { encoding: 'utf8', timeout: 180_000 });
  const outText = `${res.stdout ?? ''}${res.stderr ?? ''}`.trim();
  if (outText) log(outText.split('\n').map((l) => `  torch_model.py: ${l}`).join('\n'));
  const resultFile = join(dir, 'torch_check.json');
  if (res.status === 0 && existsSync(resultFile)) {
    const r = JSON.parse(readFileSync(resultFile, 'utf8')) as { device: string; torch: string; results: { what: string; max_abs: number; max_ref: number; rel: number; worst: string; ok: boolean }[] };
    for (const x of r.results) checks.push({ name: `${name} torch vs ours ${x.what}`, ok: x.ok, detail: `max|diff| ${x.max_abs.toExponential(3)}, max|ours| ${x.max_ref.toExponential(3)}, rel ${x.rel.toExponential(2)} (tol ${tol}); ${x.worst} (torch ${r.torch} on ${r.device})` });
  } else {
    const why = res.error ? res.error.message : `exit ${res.status}${res.signal ? ` (${res.signal})` : ''}`;
    checks.push({ name: `${name} torch vs ours`, ok: be.kind !== 'cuda', detail: `torch_model.py --check did not run through: ${why}; last output: ${outText.split('\n').slice(-3).join(' | ').slice(0, 400)}` });
  }
  rmSync(dir, { recursive: true, force: true });
  if (be.kind === 'cuda') await core.setBackend('cuda');
}
