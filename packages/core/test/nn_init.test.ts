// Initializers: sample statistics against the distributions' float64 formulas (bounds, mean,
// variance, mass within one sigma; tolerances of 6 standard errors), fan computation and gains as
// PyTorch defines them, reproducibility with a seeded Philox Generator, the initWeights rule and
// skipInit.
import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import {
  AttrError,
  Embedding,
  Generator,
  Linear,
  Module,
  ModuleList,
  Parameter,
  RMSNorm,
  RingLinearError,
  ShapeError,
  SwiGLUMLP,
  dispose,
  init,
  manualSeed,
  memory,
  randomNormal,
  tensor,
  zeros,
  type DType,
  type Tensor,
} from '@ring-linear/core';

const SEED = Number(process.env.NN_TEST_SEED ?? (Date.now() % 2147483647));
console.log(`nn_init.test seed: ${SEED} (rerun with NN_TEST_SEED=${SEED})`);
let seedCounter = SEED;
const freshGenerator = () => new Generator(seedCounter++);

const param = (shape: number[], dtype: DType = 'f32') => new Parameter(zeros(shape, dtype));
/** Raw storage bytes as hex (fast to compare, also for large tensors). */
const bytesOf = (t: Tensor) => Buffer.from(t.storage!.backend.readSync!(t.storage!.buffer, 0, t.byteLength)).toString('hex');

interface Stats {
  n: number;
  mean: number;
  variance: number;
  min: number;
  max: number;
}
function stats(v: ArrayLike<number>): Stats {
  let s = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < v.length; i++) {
    s += v[i]!;
    min = Math.min(min, v[i]!);
    max = Math.max(max, v[i]!);
  }
  const mean = s / v.length;
  let ss = 0;
  for (let i = 0; i < v.length; i++) ss += (v[i]! - mean) ** 2;
  return { n: v.length, mean, variance: ss / (v.length - 1), min, max };
}

/** Checks a sample of N(mean, std^2): mean, variance (6 standard errors) and the mass within 1 sigma. */
function expectNormal(v: ArrayLike<number>, mean: number, std: number, what: string): void {
  const s = stats(v);
  expect(Math.abs(s.mean - mean), `${what} mean ${s.mean}`).toBeLessThan((6 * std) / Math.sqrt(s.n));
  // Var of the sample variance of a normal: 2 sigma^4 / (n - 1).
  expect(Math.abs(s.variance - std * std), `${what} variance ${s.variance}`).toBeLessThan(6 * std * std * Math.sqrt(2 / (s.n - 1)));
  let within = 0;
  for (let i = 0; i < v.length; i++) if (Math.abs(v[i]! - mean) <= std) within++;
  const p = 0.6826894921370859; // erf(1/sqrt 2)
  expect(Math.abs(within / s.n - p), `${what} mass within 1 sigma`).toBeLessThan(6 * Math.sqrt((p * (1 - p)) / s.n));
}

/** Checks a sample of U[low, high): range, mean, variance (6 standard errors), and that it reaches both ends. */
function expectUniform(v: ArrayLike<number>, low: number, high: number, what: string): void {
  const s = stats(v);
  const w = high - low;
  expect(s.min, `${what} min`).toBeGreaterThanOrEqual(low);
  expect(s.max, `${what} max`).toBeLessThan(high);
  expect(s.min - low, `${what} reaches low`).toBeLessThan(w * 20 / s.n);
  expect(high - s.max, `${what} reaches high`).toBeLessThan(w * 20 / s.n);
  expect(Math.abs(s.mean - (low + high) / 2), `${what} mean`).toBeLessThan((6 * w) / Math.sqrt(12 * s.n));
  // Var of the sample variance of U: (mu4 - sigma^4) / n with mu4 = w^4/80, sigma^2 = w^2/12.
  const seVar = Math.sqrt((w ** 4 / 80 - w ** 4 / 144) / s.n);
  expect(Math.abs(s.variance - (w * w) / 12), `${what} variance`).toBeLessThan(6 * seVar);
}

describe('basic initializers', () => {
  it('normal_ draws N(mean, std^2) in place from the generator (identity kept, generator advanced)', () => {
    const p = param([150, 120]);
    const g = freshGenerator();
    const twin = g.clone();
    const before = memory();
    expect(init.normal_(p, { mean: 0.3, std: 0.02, generator: g })).toBe(p);
    expect(memory()).toMatchObject({ tensors: before.tensors, bytes: before.bytes });
    expectNormal(p.dataSync(), 0.3, 0.02, 'normal_');
    expect(g.offset).toBe(18000n);
    const same = randomNormal([150, 120], { mean: 0.3, std: 0.02, generator: twin });
    expect(bytesOf(p)).toEqual(bytesOf(same));
    dispose([p, same]);
  });

  it('uniform_ draws U[low, high); zeros_, ones_, constant_ are exact', () => {
    const p = param([101, 199]);
    init.uniform_(p, { low: -0.7, high: 2.1, generator: freshGenerator() });
    expectUniform(p.dataSync(), -0.7, 2.1, 'uniform_');
    init.zeros_(p);
    expect(p.dataSync().every((v) => v === 0)).toBe(true);
    init.ones_(p);
    expect(p.dataSync().every((v) => v === 1)).toBe(true);
    init.constant_(p, -2.5);
    expect(p.dataSync().every((v) => v === -2.5)).toBe(true);
    p.dispose();
  });

  it('draws in the parameter dtype (bf16: f32 draws rounded once)', () => {
    const p = param([64, 64], 'bf16');
    const g = freshGenerator();
    const twin = g.clone();
    init.normal_(p, { std: 0.5, generator: g });
    expect(p.dtype).toBe('bf16');
    const ref = randomNormal([64, 64], { std: 0.5, dtype: 'bf16', generator: twin });
    expect(bytesOf(p)).toEqual(bytesOf(ref));
    expectNormal(p.dataSync(), 0, 0.5, 'bf16 normal_');
    dispose([p, ref]);
  });

  it('fan-in/fan-out and gains as PyTorch defines them', () => {
    expect(init.fanInAndFanOut([7, 3])).toEqual({ fanIn: 3, fanOut: 7 });
    expect(init.fanInAndFanOut([8, 4, 3, 5])).toEqual({ fanIn: 60, fanOut: 120 });
    expect(() => init.fanInAndFanOut([5])).toThrow(ShapeError);
    expect(init.calculateGain('linear')).toBe(1);
    expect(init.calculateGain('tanh')).toBeCloseTo(5 / 3, 15);
    expect(init.calculateGain('relu')).toBeCloseTo(Math.sqrt(2), 15);
    expect(init.calculateGain('leakyRelu', Math.sqrt(5))).toBeCloseTo(Math.sqrt(1 / 3), 15);
    expect(() => init.calculateGain('gelu' as init.Nonlinearity)).toThrow(AttrError);
  });

  it('kaiming and xavier: bounds and variances from fan-in/fan-out', () => {
    const [out, inn] = [150, 97];
    const p = param([out, inn]);
    init.kaimingUniform_(p, { generator: freshGenerator() }); // a = 0, leaky relu: gain sqrt(2)
    let b = Math.sqrt(2) * Math.sqrt(3 / inn);
    expectUniform(p.dataSync(), -b, b, 'kaimingUniform_ a=0');
    init.kaimingUniform_(p, { a: Math.sqrt(5), generator: freshGenerator() });
    b = 1 / Math.sqrt(inn);
    expectUniform(p.dataSync(), -b, b, 'kaimingUniform_ a=sqrt5');
    init.kaimingUniform_(p, { mode: 'fanOut', nonlinearity: 'relu', generator: freshGenerator() });
    b = Math.sqrt(2) * Math.sqrt(3 / out);
    expectUniform(p.dataSync(), -b, b, 'kaimingUniform_ fanOut relu');
    init.kaimingNormal_(p, { nonlinearity: 'relu', generator: freshGenerator() });
    expectNormal(p.dataSync(), 0, Math.sqrt(2 / inn), 'kaimingNormal_');
    init.xavierUniform_(p, { gain: 2, generator: freshGenerator() });
    b = 2 * Math.sqrt(6 / (inn + out));
    expectUniform(p.dataSync(), -b, b, 'xavierUniform_');
    init.xavierNormal_(p, { generator: freshGenerator() });
    expectNormal(p.dataSync(), 0, Math.sqrt(2 / (inn + out)), 'xavierNormal_');
    const v = param([5]);
    expect(() => init.xavierUniform_(v)).toThrow(/rank >= 2/);
    dispose([p, v]);
  });

  it('typed errors: not a Parameter, non-finite settings', () => {
    const t = tensor([1, 2]);
    expect(() => init.normal_(t as Parameter)).toThrow(RingLinearError);
    expect(() => init.normal_(t as Parameter)).toThrow(/expected a Parameter/);
    const p = param([2, 2]);
    expect(() => init.normal_(p, { std: NaN })).toThrow(AttrError);
    expect(() => init.uniform_(p, { low: 0, high: Infinity })).toThrow("init.uniform_: 'high' must be a finite number, got Infinity");
    expect(() => init.normal_(p, { std: -1 })).toThrow(AttrError); // rejected by randomNormal
    dispose([t, p]);
  });
});

describe('layer defaults and reproducibility', () => {
  it('Linear ~ U(+-1/sqrt(in)) for weight and bias (PyTorch), Embedding ~ N(0, 1)', () => {
    const lin = new Linear(121, 150, { bias: true, generator: freshGenerator() });
    const b = 1 / Math.sqrt(121);
    expectUniform(lin.weight.dataSync(), -b, b, 'Linear weight');
    const bias = stats(lin.bias!.dataSync());
    expect(bias.min).toBeGreaterThanOrEqual(-b);
    expect(bias.max).toBeLessThan(b);
    expect(bias.variance).toBeGreaterThan(0);
    const emb = new Embedding(120, 100, { generator: freshGenerator() });
    expectNormal(emb.weight.dataSync(), 0, 1, 'Embedding');
    lin.dispose();
    emb.dispose();
  });

  it('a seed reproduces a model bit for bit; another seed does not', () => {
    const build = (g?: Generator) => new ModuleList([new Linear(7, 5, { bias: true, generator: g }), new SwiGLUMLP(5, 9, { generator: g }), new Embedding(11, 5, { generator: g })]);
    const a = build(new Generator(SEED));
    const b = build(new Generator(SEED));
    const c = build(new Generator(SEED + 1));
    const bytes = (m: Module) => m.parameters().map(bytesOf);
    expect(bytes(a)).toEqual(bytes(b));
    expect(bytes(c)).not.toEqual(bytes(a));
    // The default generator through manualSeed.
    manualSeed(SEED);
    const d = build();
    manualSeed(SEED);
    const e = build();
    expect(bytes(d)).toEqual(bytes(e));
    expect(bytes(d)).toEqual(bytes(a)); // same seed, same stream, whichever generator object
    for (const m of [a, b, c, d, e]) m.dispose();
  });

  it('initWeights: Linear and Embedding weights ~ N(0, std^2), biases 0, RMSNorm ones', () => {
    class Net extends Module {
      readonly embed = new Embedding(150, 64);
      readonly norm = new RMSNorm(64);
      readonly proj = new Linear(64, 150, { bias: true });
    }
    const net = new Net();
    const g = freshGenerator();
    const twin = g.clone();
    net.apply(init.initWeights({ std: 0.02, generator: g }));
    expectNormal(net.embed.weight.dataSync(), 0, 0.02, 'embedding');
    expectNormal(net.proj.weight.dataSync(), 0, 0.02, 'proj');
    expect(net.proj.bias!.dataSync().every((v) => v === 0)).toBe(true);
    expect(net.norm.weight.dataSync().every((v) => v === 1)).toBe(true);
    // Children first, in field order: embed, then proj, from one stream.
    const refEmbed = randomNormal([150, 64], { std: 0.02, generator: twin });
    const refProj = randomNormal([150, 64], { std: 0.02, generator: twin });
    expect(bytesOf(net.embed.weight)).toEqual(bytesOf(refEmbed));
    expect(bytesOf(net.proj.weight)).toEqual(bytesOf(refProj));
    dispose([refEmbed, refProj]);
    net.dispose();
  });

  it('skipInit leaves parameters as constructed and draws nothing; nests; restores on throw', () => {
    const g = freshGenerator();
    const lin = init.skipInit(() => init.skipInit(() => new Linear(6, 4, { bias: true, generator: g })));
    expect(g.offset).toBe(0n);
    expect(lin.weight.dataSync().every((v) => v === 0)).toBe(true);
    expect(lin.bias!.dataSync().every((v) => v === 0)).toBe(true);
    const norm = init.skipInit(() => new RMSNorm(3));
    expect(Array.from(norm.weight.dataSync())).toEqual([1, 1, 1]);
    expect(() =>
      init.skipInit(() => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    init.normal_(lin.weight, { generator: g }); // initializers work again
    expect(g.offset).toBe(24n);
    expect(lin.weight.dataSync().some((v) => v !== 0)).toBe(true);
    lin.dispose();
    norm.dispose();
  });
});
