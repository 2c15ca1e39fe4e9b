/**
 * CPU training-step profile: forward + backward + AdamW update of the `tiny` and `small` presets
 * (packages/models) on the CPU backend, for a batch of B x T tokens, with a per-op breakdown of
 * where the time goes. Used to find and measure the CPU backend's hot spots for training small
 * models (the `ring-linear demo` command and the trainer's tests run exactly this work).
 *
 *   cd tools/bench && node --conditions=@ring-linear/source --import tsx src/train_step.ts
 *     [--preset tiny,small] [--batch 8] [--seq 128] [--steps 3] [--warmup 1] [--top 25]
 *     [--no-profile] [--json <path>]
 *
 * Each step: loss = model(ids, targets) (mean cross-entropy), gradients of every trainable
 * parameter (valueAndGrad), one AdamW update (packages/trainer), the MoE bias update. The data
 * are random bytes (speed does not depend on them). Reported: model construction time (the random
 * initialization), median step time, tokens/s, and with profiling on (default) the kernel time per
 * op and phase (forward / backward / optimizer) summed over the timed steps, plus the time spent
 * outside kernels (engine dispatch, allocation, autograd bookkeeping, composites' glue).
 *
 * Times are CPU time of the process (process.cpuUsage: user + system), which on a shared, busy
 * machine is far steadier than wall time; wall time is reported next to it. Profiling wraps every
 * registered CPU kernel in a timer (about 1 us per call); step times come from separate unprofiled
 * steps so the wrapper does not count.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import '@ring-linear/backend-cpu';
import { Generator, getKernel, listKernels, registerKernel, tensor, valueAndGrad, type Kernel, type KernelContext, type Tensor } from '@ring-linear/core';
import { RingLinearForCausalLM, nextTokenTargets, preset } from '@ring-linear/models';
import { AdamW } from '@ring-linear/trainer';
import { median } from './framework.js';
import { cpuName, environment } from './device.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

// ---------------------------------------------------------------------------------------------
// Kernel timing hook

/**
 * CPU time of this process in ms (user + system). The development machines are shared and
 * oversubscribed, so wall time swings by 2x between runs; CPU time does not count the time other
 * processes hold the cores. (On an idle machine the two agree: kernels run on one thread.)
 */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

type Phase = 'init' | 'forward' | 'backward' | 'optimizer';

interface OpStat {
  calls: number;
  ms: number;
  /** Time per distinct input-shape signature, to see which call sites dominate. */
  byShape: Map<string, { calls: number; ms: number }>;
}

const profile = {
  enabled: false,
  phase: 'init' as Phase,
  stats: new Map<string, OpStat>(),
  kernelMsByPhase: new Map<Phase, number>(),
};

/** Replaces every CPU kernel with a wrapper that times it while `profile.enabled` is set. */
function installTimingHook(): void {
  for (const op of listKernels('cpu')) {
    const reg = getKernel(op, 'cpu')!;
    const inner = reg.kernel;
    const timed: Kernel = (ctx: KernelContext<any, any>) => {
      if (!profile.enabled) return inner(ctx);
      const t0 = cpuMs();
      try {
        return inner(ctx);
      } finally {
        const ms = cpuMs() - t0;
        const key = `${profile.phase}:${op}`;
        let s = profile.stats.get(key);
        if (!s) profile.stats.set(key, (s = { calls: 0, ms: 0, byShape: new Map() }));
        s.calls++;
        s.ms += ms;
        const sig = ctx.inputs.map((i) => `${i.dtype}[${i.shape.join(',')}]`).join(' ');
        const b = s.byShape.get(sig) ?? { calls: 0, ms: 0 };
        b.calls++;
        b.ms += ms;
        s.byShape.set(sig, b);
        profile.kernelMsByPhase.set(profile.phase, (profile.kernelMsByPhase.get(profile.phase) ?? 0) + ms);
      }
    };
    registerKernel({ ...reg, kernel: timed });
  }
}

// ---------------------------------------------------------------------------------------------
// The step

function randomIds(B: number, T: number, seed: number): Int32Array[] {
  let s = seed >>> 0;
  return Array.from({ length: B }, () =>
    Int32Array.from({ length: T }, () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s >>> 24; // a byte (the small presets' vocabulary starts with the 256 bytes)
    }),
  );
}

interface Setup {
  model: RingLinearForCausalLM;
  optimizer: AdamW;
  ids: Tensor;
  targets: Tensor;
  initMs: number;
}

function setup(name: string, B: number, T: number): Setup {
  const t0 = cpuMs();
  const model = new RingLinearForCausalLM(preset(name), { generator: new Generator(1) });
  const initMs = cpuMs() - t0;
  const optimizer = new AdamW(model.namedParameters(), { lr: 1e-3 });
  const rows = randomIds(B, T, 7);
  const ids = tensor(Int32Array.from(rows.flatMap((r) => [...r])), [B, T], 'i32');
  const targets = nextTokenTargets(rows);
  return { model, optimizer, ids, targets, initMs };
}

/** One training step; returns wall times of its phases (ms) and the loss. */
function step(s: Setup): { forward: number; backward: number; optimizer: number; total: number; wall: number; loss: number } {
  const params = s.optimizer.parameters;
  const w0 = performance.now();
  const t0 = cpuMs();
  let tFwd = 0;
  profile.phase = 'forward';
  const { value, grads } = valueAndGrad(() => {
    const out = s.model.forward(s.ids, { targets: s.targets, reduction: 'mean', logits: 'none' });
    tFwd = cpuMs();
    profile.phase = 'backward';
    return out.loss!;
  }, params);
  const t1 = cpuMs();
  profile.phase = 'optimizer';
  s.optimizer.step(grads, { lr: 1e-3 });
  for (const g of grads) g.dispose();
  s.model.updateExpertBias();
  const t2 = cpuMs();
  const wall = performance.now() - w0;
  const loss = value.dataSync()[0]!;
  value.dispose();
  profile.phase = 'init';
  return { forward: tFwd - t0, backward: t1 - tFwd, optimizer: t2 - t1, total: t2 - t0, wall, loss };
}

// ---------------------------------------------------------------------------------------------

interface PresetResult {
  preset: string;
  params: number;
  batch: number;
  seq: number;
  initMs: number;
  stepMs: number;
  stepWallMs: number;
  forwardMs: number;
  backwardMs: number;
  optimizerMs: number;
  tokensPerS: number;
  losses: number[];
  profile?: {
    stepsProfiled: number;
    kernelMsByPhase: Record<string, number>;
    wallMsByPhase: Record<string, number>;
    ops: Array<{ phase: string; op: string; calls: number; ms: number; top: Array<{ shapes: string; calls: number; ms: number }> }>;
  };
}

function fmt(x: number, d = 1): string {
  return x >= 100 ? x.toFixed(0) : x.toFixed(d);
}

function runPreset(name: string, B: number, T: number, steps: number, warmup: number, doProfile: boolean, top: number): PresetResult {
  process.stderr.write(`[${name}] building (random init) ... `);
  const s = setup(name, B, T);
  const params = s.model.parameters().reduce((a, p) => a + p.size, 0);
  process.stderr.write(`${fmt(s.initMs)} ms, ${params} parameters\n`);
  const losses: number[] = [];
  for (let i = 0; i < warmup; i++) {
    const r = step(s);
    losses.push(r.loss);
    process.stderr.write(`[${name}] warmup step ${i}: ${fmt(r.total)} ms, loss ${r.loss.toFixed(4)}\n`);
  }
  const times: ReturnType<typeof step>[] = [];
  for (let i = 0; i < steps; i++) {
    const r = step(s);
    losses.push(r.loss);
    times.push(r);
    process.stderr.write(`[${name}] step ${i}: ${fmt(r.total)} ms CPU, ${fmt(r.wall)} ms wall (fwd ${fmt(r.forward)}, bwd ${fmt(r.backward)}, opt ${fmt(r.optimizer)}), loss ${r.loss.toFixed(4)}\n`);
  }
  const result: PresetResult = {
    preset: name,
    params,
    batch: B,
    seq: T,
    initMs: s.initMs,
    stepMs: median(times.map((t) => t.total)),
    stepWallMs: median(times.map((t) => t.wall)),
    forwardMs: median(times.map((t) => t.forward)),
    backwardMs: median(times.map((t) => t.backward)),
    optimizerMs: median(times.map((t) => t.optimizer)),
    tokensPerS: (B * T) / (median(times.map((t) => t.total)) / 1000),
    losses,
  };
  if (doProfile) {
    profile.stats.clear();
    profile.kernelMsByPhase.clear();
    const wall: Record<string, number> = { forward: 0, backward: 0, optimizer: 0 };
    const nProf = Math.max(1, Math.min(steps, 2));
    profile.enabled = true;
    for (let i = 0; i < nProf; i++) {
      const r = step(s);
      wall.forward! += r.forward;
      wall.backward! += r.backward;
      wall.optimizer! += r.optimizer;
    }
    profile.enabled = false;
    const ops = [...profile.stats.entries()]
      .map(([k, v]) => {
        const [phase, op] = k.split(':') as [string, string];
        const topShapes = [...v.byShape.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 3).map(([shapes, x]) => ({ shapes, calls: x.calls / nProf, ms: x.ms / nProf }));
        return { phase, op, calls: v.calls / nProf, ms: v.ms / nProf, top: topShapes };
      })
      .sort((a, b) => b.ms - a.ms);
    result.profile = {
      stepsProfiled: nProf,
      kernelMsByPhase: Object.fromEntries([...profile.kernelMsByPhase.entries()].map(([k, v]) => [k, v / nProf])),
      wallMsByPhase: Object.fromEntries(Object.entries(wall).map(([k, v]) => [k, v / nProf])),
      ops,
    };
    const totalWall = Object.values(result.profile.wallMsByPhase).reduce((a, b) => a + b, 0);
    const totalKernel = Object.values(result.profile.kernelMsByPhase).reduce((a, b) => a + b, 0);
    console.log(`\n${name}: per-op kernel time per step (CPU time, profiled over ${nProf} step(s): step ${fmt(totalWall)} ms, in kernels ${fmt(totalKernel)} ms)`);
    for (const ph of ['forward', 'backward', 'optimizer'] as const) {
      const k = result.profile.kernelMsByPhase[ph] ?? 0;
      const w = result.profile.wallMsByPhase[ph] ?? 0;
      console.log(`  ${ph.padEnd(9)} total ${fmt(w).padStart(7)} ms, kernels ${fmt(k).padStart(7)} ms, outside kernels ${fmt(w - k).padStart(7)} ms`);
    }
    console.log(`  ${'phase'.padEnd(9)} ${'op'.padEnd(28)} ${'calls'.padStart(6)} ${'ms'.padStart(8)} ${'%'.padStart(6)}  heaviest input shapes (ms)`);
    for (const o of ops.slice(0, top)) {
      const shapes = o.top.map((t) => `${t.shapes} x${t.calls} ${fmt(t.ms)}`).join(' | ');
      console.log(`  ${o.phase.padEnd(9)} ${o.op.padEnd(28)} ${String(o.calls).padStart(6)} ${fmt(o.ms).padStart(8)} ${((100 * o.ms) / totalWall).toFixed(1).padStart(6)}  ${shapes}`);
    }
  }
  s.model.dispose();
  s.optimizer.dispose();
  s.ids.dispose();
  s.targets.dispose();
  return result;
}

function main(): void {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      preset: { type: 'string', default: 'tiny,small' },
      batch: { type: 'string', default: '8' },
      seq: { type: 'string', default: '128' },
      steps: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      top: { type: 'string', default: '25' },
      'no-profile': { type: 'boolean', default: false },
      json: { type: 'string' },
    },
    strict: true,
  });
  const presets = values.preset!.split(',').map((p) => p.trim()).filter(Boolean);
  const B = Number(values.batch);
  const T = Number(values.seq);
  const steps = Number(values.steps);
  const warmup = Number(values.warmup);
  const top = Number(values.top);
  for (const [flag, v, min] of [['--batch', B, 1], ['--seq', T, 2], ['--steps', steps, 1], ['--warmup', warmup, 0], ['--top', top, 1]] as const) {
    if (!Number.isInteger(v) || v < min) throw new Error(`${flag}: expected an integer >= ${min}, got ${v}`);
  }
  const doProfile = !values['no-profile'];
  if (doProfile) installTimingHook();
  const device = cpuName();
  const results: PresetResult[] = [];
  for (const p of presets) results.push(runPreset(p, B, T, steps, warmup, doProfile, top));

  console.log(`\nCPU training step on ${device}, batch ${B} x ${T} tokens (median of ${steps} steps; CPU ms, wall ms in brackets)`);
  console.log('| preset | parameters | init ms | step ms | forward ms | backward ms | optimizer ms | tokens/s (CPU) |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    console.log(`| ${r.preset} | ${(r.params / 1e6).toFixed(2)}M | ${fmt(r.initMs)} | ${fmt(r.stepMs)} (${fmt(r.stepWallMs)}) | ${fmt(r.forwardMs)} | ${fmt(r.backwardMs)} | ${fmt(r.optimizerMs)} | ${fmt(r.tokensPerS)} |`);
  }
  const out = values.json ?? path.join(REPO_ROOT, 'runs', 'bench', `train_step-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), device, env: environment(), batch: B, seq: T, steps, results }, null, 2));
  process.stderr.write(`results: ${out}\n`);
}

main();
