/**
 * Parameter initializers, PyTorch's torch.nn.init under camelCase names. Each fills a Parameter in
 * place (a trailing underscore, as in PyTorch) and returns it. Random ones draw from a Philox
 * Generator (the default one unless `generator` is given), so a seed reproduces a model exactly on
 * every backend. Values are drawn directly in the parameter's dtype (f32 draws rounded once).
 */
import { AttrError, RingLinearError, ShapeError, describeShape } from '../errors.js';
import { randomNormal, randomUniform } from '../ops/creation.js';
import { full } from '../ops/shape_basic.js';
import type { Generator } from '../rng/philox.js';
import type { Shape } from '../shape.js';
import { Parameter } from './parameter.js';

// skipInit() turns every initializer into a no-op (parameters keep the values they were made with,
// zeros for the layers here): building a model only to load a checkpoint into it then costs no
// random draws. Kept on globalThis like the engine state, so every copy of this module agrees.
const SKIP_KEY = Symbol.for('@ring-linear/core/nn-skip-init');
type SkipHolder = typeof globalThis & { [SKIP_KEY]?: number };

/**
 * Runs `fn` with initializers disabled, e.g. `const model = init.skipInit(() => new Model(cfg))`
 * before loadStateDict(). Parameters are left as constructed (the layers here make zeros; RMSNorm
 * ones). `fn` must be synchronous.
 */
export function skipInit<T>(fn: () => T): T {
  const g = globalThis as SkipHolder;
  g[SKIP_KEY] = (g[SKIP_KEY] ?? 0) + 1;
  try {
    return fn();
  } finally {
    g[SKIP_KEY]! -= 1;
  }
}

function skipping(): boolean {
  return ((globalThis as SkipHolder)[SKIP_KEY] ?? 0) > 0;
}

function target(what: string, p: Parameter): Parameter {
  if (!(p instanceof Parameter)) {
    throw new RingLinearError(`init.${what}: expected a Parameter (tensors are immutable; only parameters are filled in place), got ${p}`);
  }
  p.live(`init.${what}`);
  return p;
}

function finite(what: string, name: string, v: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new AttrError(`init.${what}: '${name}' must be a finite number, got ${v}`);
  return v;
}

export interface NormalInitOptions {
  readonly mean?: number;
  readonly std?: number;
  readonly generator?: Generator;
}

/** Fills p with draws from N(mean, std^2) (defaults 0, 1). */
export function normal_(p: Parameter, options: NormalInitOptions = {}): Parameter {
  target('normal_', p);
  const mean = finite('normal_', 'mean', options.mean ?? 0);
  const std = finite('normal_', 'std', options.std ?? 1);
  if (skipping()) return p;
  return p.assign(randomNormal(p.shape, { mean, std, dtype: p.dtype, generator: options.generator }));
}

export interface UniformInitOptions {
  readonly low?: number;
  readonly high?: number;
  readonly generator?: Generator;
}

/** Fills p with draws from U[low, high) (defaults 0, 1). */
export function uniform_(p: Parameter, options: UniformInitOptions = {}): Parameter {
  target('uniform_', p);
  const low = finite('uniform_', 'low', options.low ?? 0);
  const high = finite('uniform_', 'high', options.high ?? 1);
  if (skipping()) return p;
  return p.assign(randomUniform(p.shape, { low, high, dtype: p.dtype, generator: options.generator }));
}

/** Fills p with one value. */
export function constant_(p: Parameter, value: number): Parameter {
  target('constant_', p);
  finite('constant_', 'value', value);
  if (skipping()) return p;
  return p.assign(full(p.shape, value, p.dtype));
}

export const zeros_ = (p: Parameter): Parameter => constant_(p, 0);
export const ones_ = (p: Parameter): Parameter => constant_(p, 1);

/**
 * Fan-in and fan-out of a weight laid out [out, in, ...receptive field] (PyTorch's layout, so a
 * Linear weight [out, in] has fanIn = in, fanOut = out). Needs rank >= 2.
 */
export function fanInAndFanOut(shape: Shape): { fanIn: number; fanOut: number } {
  if (shape.length < 2) {
    throw new ShapeError(`init: fan-in and fan-out need a weight of rank >= 2 ([out, in, ...]), got shape ${describeShape(shape)}`);
  }
  let receptive = 1;
  for (let i = 2; i < shape.length; i++) receptive *= shape[i]!;
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

export type Nonlinearity = 'linear' | 'sigmoid' | 'tanh' | 'relu' | 'leakyRelu';

/**
 * The gain that keeps activations' variance through a nonlinearity (PyTorch's calculate_gain):
 * linear/sigmoid 1, tanh 5/3, relu sqrt(2), leakyRelu sqrt(2 / (1 + slope^2)).
 */
export function calculateGain(nonlinearity: Nonlinearity, negativeSlope = 0.01): number {
  switch (nonlinearity) {
    case 'linear':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leakyRelu':
      return Math.sqrt(2 / (1 + negativeSlope * negativeSlope));
    default:
      throw new AttrError(`init.calculateGain: unknown nonlinearity '${String(nonlinearity)}' (expected linear, sigmoid, tanh, relu or leakyRelu)`);
  }
}

export interface XavierInitOptions {
  readonly gain?: number;
  readonly generator?: Generator;
}

/** Glorot/Xavier uniform: U(-b, b), b = gain * sqrt(6 / (fanIn + fanOut)). */
export function xavierUniform_(p: Parameter, options: XavierInitOptions = {}): Parameter {
  target('xavierUniform_', p);
  const { fanIn, fanOut } = fanInAndFanOut(p.shape);
  const b = finite('xavierUniform_', 'gain', options.gain ?? 1) * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(p, { low: -b, high: b, generator: options.generator });
}

/** Glorot/Xavier normal: N(0, std^2), std = gain * sqrt(2 / (fanIn + fanOut)). */
export function xavierNormal_(p: Parameter, options: XavierInitOptions = {}): Parameter {
  target('xavierNormal_', p);
  const { fanIn, fanOut } = fanInAndFanOut(p.shape);
  const std = finite('xavierNormal_', 'gain', options.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut));
  return normal_(p, { std, generator: options.generator });
}

export interface KaimingInitOptions {
  /** Negative slope of the leaky ReLU that follows (used by 'leakyRelu'; default 0). */
  readonly a?: number;
  readonly mode?: 'fanIn' | 'fanOut';
  readonly nonlinearity?: Nonlinearity;
  readonly generator?: Generator;
}

function kaimingStd(what: string, p: Parameter, o: KaimingInitOptions): number {
  const { fanIn, fanOut } = fanInAndFanOut(p.shape);
  const fan = (o.mode ?? 'fanIn') === 'fanIn' ? fanIn : fanOut;
  return calculateGain(o.nonlinearity ?? 'leakyRelu', finite(what, 'a', o.a ?? 0)) / Math.sqrt(fan);
}

/**
 * He/Kaiming uniform: U(-b, b), b = gain * sqrt(3 / fan). With a = sqrt(5) (what Linear uses, as
 * PyTorch's nn.Linear does) b = 1 / sqrt(fanIn).
 */
export function kaimingUniform_(p: Parameter, options: KaimingInitOptions = {}): Parameter {
  target('kaimingUniform_', p);
  const b = Math.sqrt(3) * kaimingStd('kaimingUniform_', p, options);
  return uniform_(p, { low: -b, high: b, generator: options.generator });
}

/** He/Kaiming normal: N(0, std^2), std = gain / sqrt(fan). */
export function kaimingNormal_(p: Parameter, options: KaimingInitOptions = {}): Parameter {
  target('kaimingNormal_', p);
  return normal_(p, { std: kaimingStd('kaimingNormal_', p, options), generator: options.generator });
}
