/**
 * AdamW against a float64 re-statement of PyTorch's AdamW, parameter groups, f32 masters of bf16
 * parameters, state round trip; global-norm clipping and accumulation against float64 sums;
 * schedules against their formulas; WSM merge weights and the decay they emulate.
 */
import '@ring-linear/backend-cpu';
import { describe, expect, it } from 'vitest';
import { Parameter, dispose, memory, tensor } from '@ring-linear/core';
import {
  AdamW,
  GradientAccumulator,
  NO_DECAY,
  TrainerConfigError,
  TrainingCheckpointError,
  clipGradNorm,
  constantSchedule,
  cosineSchedule,
  decayMultiplier,
  globalNorm,
  scheduleFromSpec,
  wsdSchedule,
  wsmMergeWeights,
  wsmSchedule,
} from '../src/index.js';
import { SEED, closeTo, makeRng } from './helpers.js';

const rng = makeRng(SEED ^ 0x0971);

/** Round-to-nearest-even of an f32 value to bf16 (bit manipulation, independent of the codecs). */
function bf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const lsb = (u[0]! >>> 16) & 1;
  u[0] = ((u[0]! + 0x7fff + lsb) & 0xffff0000) >>> 0;
  return f[0]!;
}

interface RefGroup {
  lr: number;
  wd: number;
  b1: number;
  b2: number;
  eps: number;
}

/** PyTorch AdamW (single tensor) in float64. */
function refAdamW(p: Float64Array, m: Float64Array, v: Float64Array, g: ArrayLike<number>, t: number, o: RefGroup): void {
  const bc1 = 1 - o.b1 ** t;
  const bc2 = 1 - o.b2 ** t;
  for (let i = 0; i < p.length; i++) {
    p[i]! *= 1 - o.lr * o.wd;
    m[i] = o.b1 * m[i]! + (1 - o.b1) * g[i]!;
    v[i] = o.b2 * v[i]! + (1 - o.b2) * g[i]! * g[i]!;
    const denom = Math.sqrt(v[i]!) / Math.sqrt(bc2) + o.eps;
    p[i]! -= (o.lr / bc1) * (m[i]! / denom);
  }
}

const shapes: number[][] = [[3, 5], [1], [7], [1, 4, 1], [2, 3]];
const names = ['proj.weight', 'proj.bias', 'model.norm.weight', 'model.word_embeddings.weight', 'head.weight'];

function makeParams(): { named: [string, Parameter][]; init: Float64Array[] } {
  const init = shapes.map((s) => rng.array(s.reduce((a, b) => a * b, 1)));
  const named = names.map((n, i): [string, Parameter] => [n, new Parameter(tensor(Float32Array.from(init[i]!), shapes[i]!))]);
  return { named, init };
}

describe('AdamW', () => {
  it('matches a float64 AdamW with per-group settings over several steps (lr changing per step)', () => {
    const { named, init } = makeParams();
    const frozen = new Parameter(tensor([1, 2, 3]), { requiresGrad: false });
    const opt = new AdamW([...named, ['frozen', frozen]], {
      lr: 1e-2,
      betas: [0.9, 0.95],
      eps: 1e-8,
      weightDecay: 0.1,
      groups: [NO_DECAY, { name: 'head', match: (n) => n.startsWith('head.'), lrScale: 0.5, betas: [0.8, 0.99], eps: 1e-6 }],
    });
    expect(opt.params.map((p) => p.name)).toEqual(names); // the frozen parameter is skipped
    expect(opt.params.map((p) => p.group.name)).toEqual(['default', 'no_decay', 'no_decay', 'no_decay', 'head']);
    const settings = opt.params.map((p) => p.group);
    const ps = init.map((a) => Float64Array.from(a));
    const ms = init.map((a) => new Float64Array(a.length));
    const vs = init.map((a) => new Float64Array(a.length));
    const lrs = [1e-2, 5e-3, 2e-2, 1e-3];
    for (let t = 1; t <= lrs.length; t++) {
      const gs = init.map((a) => rng.array(a.length, 0.5));
      const grads = gs.map((g, i) => tensor(Float32Array.from(g), shapes[i]!));
      opt.step(grads, { lr: lrs[t - 1] });
      dispose(grads);
      ps.forEach((p, i) => {
        const s = settings[i]!;
        refAdamW(p, ms[i]!, vs[i]!, gs[i]!, t, { lr: lrs[t - 1]! * s.lrScale, wd: s.weightDecay, b1: s.betas[0], b2: s.betas[1], eps: s.eps });
      });
    }
    expect(opt.stepCount).toBe(4);
    named.forEach(([n, p], i) => closeTo(p.dataSync(), ps[i]!, 1e-5, 1e-6, n));
    expect(Array.from(frozen.dataSync())).toEqual([1, 2, 3]);
    opt.dispose();
    dispose([named.map((e) => e[1]), frozen]);
  });

  it('keeps f32 masters for bf16 parameters: master follows float64 AdamW, the parameter is the master rounded to bf16', () => {
    const n = 37;
    const init = rng.array(n);
    const p = new Parameter(tensor(Float32Array.from(init), [n], 'bf16'));
    const master = tensor(Float32Array.from(init), [n]); // exact f32 values (not rounded to bf16)
    const opt = new AdamW([['w', p]], { lr: 1e-3, weightDecay: 0.05, masters: new Map([[p, master]]) });
    const ref = Float64Array.from(init);
    const m = new Float64Array(n);
    const v = new Float64Array(n);
    for (let t = 1; t <= 3; t++) {
      const g = rng.array(n);
      const gt = tensor(Float32Array.from(g), [n], 'bf16'); // bf16 gradients, widened inside
      opt.step([gt]);
      gt.dispose();
      refAdamW(ref, m, v, Array.from(g, bf16), t, { lr: 1e-3, wd: 0.05, b1: 0.9, b2: 0.999, eps: 1e-8 });
    }
    const mv = opt.master(0).dataSync();
    closeTo(mv, ref, 1e-5, 1e-7, 'master');
    // The small updates (1e-3) are far below bf16's resolution near 1: only the master keeps them.
    expect(Array.from(p.dataSync())).toEqual(Array.from(mv, bf16));
    expect(p.dtype).toBe('bf16');
    opt.dispose();
    p.dispose();
  });

  it('state dict round trip: a restored optimizer continues with identical bits', () => {
    const a = makeParams();
    const b = makeParams();
    // b's parameters get a's values.
    b.named.forEach(([, p], i) => p.assign(tensor(Float32Array.from(a.init[i]!), shapes[i]!)));
    const optA = new AdamW(a.named, { lr: 3e-3 });
    const optB = new AdamW(b.named, { lr: 3e-3 });
    const grads = () => shapes.map((s) => tensor(Float32Array.from(rng.array(s.reduce((x, y) => x * y, 1))), s));
    for (let t = 0; t < 2; t++) {
      const g = grads();
      optA.step(g);
      dispose(g);
    }
    // b catches up: weights and optimizer state from a.
    const sd = optA.stateDict();
    expect([...sd.keys()].sort()).toEqual(names.flatMap((n) => [`exp_avg.${n}`, `exp_avg_sq.${n}`]).sort());
    optB.loadStateDict(sd, optA.hyperparameters());
    dispose([...sd.values()]);
    b.named.forEach(([, p], i) => p.assign(tensor(a.named[i]![1].dataSync() as Float32Array, shapes[i]!)));
    expect(optB.stepCount).toBe(2);
    const g = grads();
    optA.step(g);
    optB.step(g);
    dispose(g);
    a.named.forEach(([n, p], i) => expect(Array.from(b.named[i]![1].dataSync()), n).toEqual(Array.from(p.dataSync())));
    optA.dispose();
    optB.dispose();
    dispose([a.named.map((e) => e[1]), b.named.map((e) => e[1])]);
  });

  it('loadStateDict refuses a state that does not fit, lists the problems and changes nothing', () => {
    const { named } = makeParams();
    const opt = new AdamW(named, { lr: 1e-3 });
    const sd = opt.stateDict();
    const bad = new Map(sd);
    bad.delete('exp_avg.proj.bias');
    const wrong = tensor([1, 2, 3, 4], [4]);
    bad.set('exp_avg_sq.proj.weight', wrong);
    const hyper = opt.hyperparameters();
    let err: unknown;
    try {
      opt.loadStateDict(bad, { ...hyper, stepCount: 7 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TrainingCheckpointError);
    const msg = (err as Error).message;
    expect(msg).toContain("missing tensor 'exp_avg.proj.bias'");
    expect(msg).toContain("'exp_avg_sq.proj.weight' must be f32 [3, 5], got f32 [4]");
    expect(opt.stepCount).toBe(0);
    expect(opt.checkStateDict(sd, { ...hyper, params: hyper.params.slice(1) })[0]).toMatch(/optimized parameters differ.*not in the checkpoint: proj.weight/);
    dispose([...sd.values(), wrong]);
    opt.dispose();
    dispose(named.map((e) => e[1]));
  });

  it('rejects bad settings and gradients with clear errors', () => {
    const { named } = makeParams();
    expect(() => new AdamW(named, { lr: -1 })).toThrow(TrainerConfigError);
    expect(() => new AdamW(named, { betas: [0.9, 1] })).toThrow(/betas\[1\]' must be a finite number in \[0, 1\)/);
    expect(() => new AdamW([['x', new Parameter(tensor([1]), { requiresGrad: false })]])).toThrow(/no trainable parameters/);
    const opt = new AdamW(named);
    expect(() => opt.step([])).toThrow(/expected 5 gradients/);
    const gs = shapes.map((s) => tensor(new Float32Array(s.reduce((a, b) => a * b, 1)).fill(1), s));
    const wrong = tensor([1, 2], [2]);
    expect(() => opt.step([wrong, ...gs.slice(1)])).toThrow(/gradient 0 \('proj.weight'\) has shape \[2\], the parameter \[3, 5\]/);
    dispose([gs, wrong]);
    opt.dispose();
    expect(() => opt.step([])).toThrow(/disposed/);
    dispose(named.map((e) => e[1]));
  });

  it('runs at flat memory', () => {
    const { named } = makeParams();
    const opt = new AdamW(named, { lr: 1e-3 });
    const g = shapes.map((s) => tensor(Float32Array.from(rng.array(s.reduce((a, b) => a * b, 1))), s));
    opt.step(g);
    const before = memory();
    for (let i = 0; i < 20; i++) opt.step(g);
    const after = memory();
    expect(after.tensors).toBe(before.tensors);
    expect(after.bytes).toBe(before.bytes);
    dispose(g);
    opt.dispose();
    dispose(named.map((e) => e[1]));
  });
});

describe('clipping and accumulation', () => {
  it('clipGradNorm: the float64 global norm, and scaling only above maxNorm', async () => {
    const gs = [rng.array(13, 2), rng.array(1, 2), rng.array(6, 2)];
    const ts = gs.map((g, i) => tensor(Float32Array.from(g), i === 2 ? [2, 3] : [g.length]));
    const norm = Math.sqrt(gs.reduce((a, g) => a + g.reduce((x, y) => x + y * y, 0), 0));
    const n = globalNorm(ts);
    expect((await n.data())[0]).toBeCloseTo(norm, 4);
    for (const maxNorm of [norm / 3, norm * 2]) {
      const { grads, norm: nt } = clipGradNorm(ts, maxNorm);
      const coef = Math.min(1, maxNorm / (norm + 1e-6));
      grads.forEach((g, i) => closeTo(g.dataSync(), gs[i]!.map((x) => x * coef), 1e-5, 1e-7, `grad ${i}`));
      expect(nt.dataSync()[0]).toBeCloseTo(norm, 4);
      dispose([grads, nt]);
    }
    expect(() => clipGradNorm(ts, 0)).toThrow(TrainerConfigError);
    dispose([ts, n]);
  });

  it('GradientAccumulator sums micro-batches in f32 (bf16 inputs widened)', () => {
    const acc = new GradientAccumulator();
    const sums = [new Float64Array(5), new Float64Array(4)];
    for (let k = 0; k < 3; k++) {
      const a = rng.array(5);
      const b = rng.array(4);
      acc.add([tensor(Float32Array.from(a), [5]), tensor(Float32Array.from(b), [2, 2], 'bf16')], { consume: true });
      a.forEach((x, i) => (sums[0]![i]! += x));
      b.forEach((x, i) => (sums[1]![i]! += bf16(x)));
    }
    expect(acc.count).toBe(3);
    const out = acc.take();
    expect(out.map((t) => t.dtype)).toEqual(['f32', 'f32']);
    out.forEach((t, i) => closeTo(t.dataSync(), sums[i]!, 1e-6, 1e-6, `sum ${i}`));
    expect(() => acc.take()).toThrow(/no gradients/);
    const g1 = tensor([1, 2]);
    acc.add([g1]);
    const g3 = tensor([1, 2, 3]);
    expect(() => acc.add([g3])).toThrow(/gradient 0 has shape \[3\], the first micro-batch's \[2\]/);
    acc.reset();
    dispose([out, g1, g3]);
  });
});

describe('schedules', () => {
  const peak = 3e-3;

  it('constant with warmup', () => {
    const s = constantSchedule({ peakLr: peak, warmupSteps: 4 });
    expect([0, 1, 2, 3, 4, 100].map((t) => s.lr(t))).toEqual([peak / 4, peak / 2, (3 * peak) / 4, peak, peak, peak]);
  });

  it('cosine: warmup, then min + (peak - min)(1 + cos(pi p))/2', () => {
    const s = cosineSchedule({ peakLr: peak, warmupSteps: 10, totalSteps: 110, minLr: 1e-4 });
    for (const t of [10, 35, 60, 85, 110, 200]) {
      const p = Math.min(1, (t - 10) / 100);
      expect(s.lr(t)).toBeCloseTo(1e-4 + (peak - 1e-4) * 0.5 * (1 + Math.cos(Math.PI * p)), 12);
    }
    expect(s.lr(60)).toBeCloseTo((peak + 1e-4) / 2, 12);
    expect(s.lr(110)).toBeCloseTo(1e-4, 12);
  });

  it('warmup-stable-decay: peak until the decay, then each shape down to minLr at totalSteps', () => {
    for (const shape of ['linear', 'cosine', 'sqrt'] as const) {
      const s = wsdSchedule({ peakLr: peak, warmupSteps: 5, totalSteps: 100, decaySteps: 20, minLr: 1e-5, decayShape: shape });
      expect(s.lr(4)).toBe(peak);
      expect(s.lr(79)).toBe(peak);
      const f = { linear: (p: number) => 1 - p, cosine: (p: number) => 0.5 * (1 + Math.cos(Math.PI * p)), sqrt: (p: number) => 1 - Math.sqrt(p) }[shape];
      for (const t of [80, 85, 90, 99, 100]) expect(s.lr(t)).toBeCloseTo(1e-5 + (peak - 1e-5) * f((t - 80) / 20), 12);
      expect(s.lr(80)).toBe(peak);
      expect(s.lr(99)).toBeGreaterThan(1e-5);
      expect(s.lr(100)).toBeCloseTo(1e-5, 12);
    }
  });

  it('WSM: constant after warmup; merge steps end at totalSteps; linear weights are the plain average', () => {
    const s = wsmSchedule({ peakLr: peak, warmupSteps: 2, totalSteps: 100, mergeEvery: 10, mergeCount: 4 });
    expect(s.lr(0)).toBe(peak / 2);
    expect(s.lr(99)).toBe(peak);
    expect(s.mergeSteps()).toEqual([70, 80, 90, 100]);
    expect(s.mergeWeights()).toEqual([0.25, 0.25, 0.25, 0.25]);
    expect(scheduleFromSpec(s.spec).lr(50)).toBe(peak);
    expect(() => wsmSchedule({ peakLr: 1, totalSteps: 20, mergeEvery: 10, mergeCount: 3 })).toThrow(/do not fit in 20 steps/);
  });

  it('wsmMergeWeights: sum 1, and merging replays the window updates with the decay multipliers', () => {
    for (const shape of ['linear', 'cosine', 'sqrt'] as const) {
      const n = 7;
      const c = wsmMergeWeights(n, shape);
      expect(c.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 14);
      expect(c.every((x) => x >= 0)).toBe(true);
      // theta_j = theta_1 + u_2 + ... + u_j; sum_j c_j theta_j = theta_1 + sum_s f((s-1)/n) u_s.
      const dim = 5;
      const theta1 = rng.array(dim);
      const u = Array.from({ length: n + 1 }, () => rng.array(dim));
      const thetas: Float64Array[] = [theta1];
      for (let j = 1; j < n; j++) thetas.push(thetas[j - 1]!.map((x, k) => x + u[j + 1]![k]!));
      const merged = new Float64Array(dim);
      thetas.forEach((t, j) => t.forEach((x, k) => (merged[k]! += c[j]! * x)));
      const replay = Float64Array.from(theta1);
      for (let s = 2; s <= n; s++) replay.forEach((_, k) => (replay[k]! += decayMultiplier(shape, (s - 1) / n) * u[s]![k]!));
      closeTo(merged, replay, 1e-12, 1e-12, shape);
    }
  });

  it('rejects bad specs', () => {
    expect(() => cosineSchedule({ peakLr: 1, totalSteps: 10, warmupSteps: 11 })).toThrow(/warmupSteps \(11\) exceeds totalSteps \(10\)/);
    expect(() => wsdSchedule({ peakLr: 1, totalSteps: 10, warmupSteps: 5, decaySteps: 6 })).toThrow(TrainerConfigError);
    expect(() => constantSchedule({ peakLr: Number.NaN })).toThrow(/'peakLr' must be a finite number/);
    expect(() => scheduleFromSpec({ kind: 'exp' } as never)).toThrow(/unknown kind "exp"/);
    expect(() => constantSchedule({ peakLr: 1 }).lr(-1)).toThrow(/step must be an integer >= 0/);
  });
});

