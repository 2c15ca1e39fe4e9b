/**
 * AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), computed exactly as
 * PyTorch's torch.optim.AdamW (single-tensor path), in f32 whatever the parameters' dtype:
 *
 *   p   <- p * (1 - lr * weight_decay)                  (decoupled decay, before the Adam step)
 *   m   <- beta1 * m + (1 - beta1) * g
 *   v   <- beta2 * v + (1 - beta2) * g^2
 *   p   <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *
 * Master weights: a parameter stored in a lower precision (bf16, f16) is updated through an f32
 * master copy held here; after the update the parameter gets the master rounded once to its dtype
 * (so the forward runs in bf16 while no update is lost to bf16 rounding). f32 parameters are their
 * own master. Moments m and v are f32 always.
 *
 * Parameter groups: rules matched by dotted parameter name (first match wins) set a group's
 * weight decay, learning-rate scale, betas and eps; NO_DECAY is the usual "no decay on norms,
 * biases and embeddings" rule.
 *
 * Memory: every update runs in a tidy scope and lands through Parameter.assign (the old storage is
 * freed), and the new moments replace the old ones, so a training loop runs at flat memory.
 */
import {
  Parameter,
  add,
  cast,
  div,
  findBackend,
  isFloatDType,
  keep,
  mul,
  noGrad,
  shapesEqual,
  sqrt,
  square,
  stopGradient,
  sub,
  tidy,
  withBackend,
  zeros,
  describeShape,
  type Tensor,
} from '@ring-linear/core';
import { TrainerConfigError, TrainingCheckpointError } from '../errors.js';

/** Which parameters a group rule covers: a RegExp tested on the dotted name, or a predicate. */
export type ParamMatcher = RegExp | ((name: string, param: Parameter) => boolean);

export interface ParamGroupRule {
  /** A label for logs and the saved state (default: group index). */
  readonly name?: string;
  readonly match: ParamMatcher;
  /** Multiplies the learning rate the schedule gives (default 1). */
  readonly lrScale?: number;
  readonly weightDecay?: number;
  readonly betas?: readonly [number, number];
  readonly eps?: number;
}

/**
 * No weight decay on norm weights, biases and embeddings (a common choice: decaying a norm's
 * scale or an embedding row that is rarely used only shrinks it).
 */
export const NO_DECAY: ParamGroupRule = {
  name: 'no_decay',
  // norms: *norm.weight (input_layernorm, g_norm, model.norm, ...); biases: *.bias; embeddings:
  // *embed*.weight (word_embeddings, embed_tokens, embed).
  match: /(norm\.weight|(^|\.)bias|embed[a-z_]*\.weight)$/,
  weightDecay: 0,
};

export interface AdamWOptions {
  /** Learning rate used when step() is given none (default 1e-3). */
  readonly lr?: number;
  /** (beta1, beta2), default (0.9, 0.999) as PyTorch. */
  readonly betas?: readonly [number, number];
  /** Default 1e-8. */
  readonly eps?: number;
  /** Decoupled weight decay, default 0.01 as PyTorch's AdamW. */
  readonly weightDecay?: number;
  /** Group rules; the first rule matching a name applies, unmatched parameters use the defaults. */
  readonly groups?: readonly ParamGroupRule[];
  /**
   * f32 master values for parameters stored in a lower precision (from toMixedPrecision()); a
   * low-precision parameter without one gets its current value widened to f32. The optimizer
   * takes ownership of the tensors.
   */
  readonly masters?: ReadonlyMap<Parameter, Tensor>;
}

/** The settings one parameter is updated with. */
export interface ParamGroupSettings {
  readonly name: string;
  readonly lrScale: number;
  readonly weightDecay: number;
  readonly betas: readonly [number, number];
  readonly eps: number;
}

/** A parameter the optimizer updates, with its name and group. */
export interface OptimizedParam {
  readonly name: string;
  readonly param: Parameter;
  readonly group: ParamGroupSettings;
}

export interface AdamWStepOptions {
  /** Learning rate of this step (default: the constructor's lr). */
  readonly lr?: number;
}

function checkNumber(what: string, v: number, lo: number, hi: number, loOpen = false, hiOpen = false): number {
  const ok = typeof v === 'number' && Number.isFinite(v) && (loOpen ? v > lo : v >= lo) && (hiOpen ? v < hi : v <= hi);
  if (!ok) throw new TrainerConfigError(`AdamW: '${what}' must be a finite number in ${loOpen ? '(' : '['}${lo}, ${hi}${hiOpen ? ')' : ']'}, got ${v}`);
  return v;
}

function checkBetas(what: string, b: readonly [number, number]): readonly [number, number] {
  if (!Array.isArray(b) || b.length !== 2) throw new TrainerConfigError(`AdamW: '${what}' must be [beta1, beta2], got ${JSON.stringify(b)}`);
  return [checkNumber(`${what}[0]`, b[0], 0, 1, false, true), checkNumber(`${what}[1]`, b[1], 0, 1, false, true)];
}

function matches(m: ParamMatcher, name: string, p: Parameter): boolean {
  if (m instanceof RegExp) {
    m.lastIndex = 0; // a /g or /y pattern keeps state between tests
    return m.test(name);
  }
  return m(name, p);
}

export class AdamW {
  readonly params: readonly OptimizedParam[];
  readonly defaults: ParamGroupSettings & { readonly lr: number };
  #stepCount = 0;
  #m: Tensor[];
  #v: Tensor[];
  /** f32 master per parameter (null: the parameter is f32 and is its own master). */
  #masters: (Tensor | null)[];
  #disposed = false;

  /**
   * `params`: named parameters, e.g. model.namedParameters(). Parameters with requiresGrad false
   * (the MoE expert bias, frozen weights) are skipped.
   */
  constructor(params: Iterable<readonly [string, Parameter]>, options: AdamWOptions = {}) {
    const lr = checkNumber('lr', options.lr ?? 1e-3, 0, Infinity);
    const defaults = {
      name: 'default',
      lr,
      lrScale: 1,
      weightDecay: checkNumber('weightDecay', options.weightDecay ?? 0.01, 0, Infinity),
      betas: checkBetas('betas', options.betas ?? [0.9, 0.999]),
      eps: checkNumber('eps', options.eps ?? 1e-8, 0, Infinity),
    };
    this.defaults = defaults;
    const rules = (options.groups ?? []).map((r, i): { match: ParamMatcher; settings: ParamGroupSettings } => {
      if (!(r.match instanceof RegExp) && typeof r.match !== 'function') {
        throw new TrainerConfigError(`AdamW: group ${i}: 'match' must be a RegExp or a function (name, param) => boolean`);
      }
      return {
        match: r.match,
        settings: {
          name: r.name ?? `group${i}`,
          lrScale: checkNumber(`groups[${i}].lrScale`, r.lrScale ?? 1, 0, Infinity),
          weightDecay: checkNumber(`groups[${i}].weightDecay`, r.weightDecay ?? defaults.weightDecay, 0, Infinity),
          betas: checkBetas(`groups[${i}].betas`, r.betas ?? defaults.betas),
          eps: checkNumber(`groups[${i}].eps`, r.eps ?? defaults.eps, 0, Infinity),
        },
      };
    });
    const list: OptimizedParam[] = [];
    const seen = new Set<Parameter>();
    for (const [name, param] of params) {
      if (!(param instanceof Parameter)) throw new TrainerConfigError(`AdamW: '${name}' is not a Parameter (${String(param)})`);
      if (!param.requiresGrad || seen.has(param)) continue;
      if (!isFloatDType(param.dtype)) throw new TrainerConfigError(`AdamW: parameter '${name}' has dtype ${param.dtype}; only float parameters are optimized`);
      seen.add(param);
      const rule = rules.find((r) => matches(r.match, name, param));
      list.push({ name, param, group: rule?.settings ?? defaults });
    }
    if (list.length === 0) throw new TrainerConfigError('AdamW: no trainable parameters (every parameter has requiresGrad false, or none were given)');
    this.params = list;
    const given = options.masters ?? new Map<Parameter, Tensor>();
    for (const p of given.keys()) {
      if (!seen.has(p)) throw new TrainerConfigError(`AdamW: a master weight was given for a parameter the optimizer does not update (${p})`);
    }
    this.#masters = list.map(({ name, param }) => {
      const m = given.get(param);
      if (m) {
        if (m.dtype !== 'f32' || !shapesEqual(m.shape, param.shape)) {
          throw new TrainerConfigError(`AdamW: master weight of '${name}' must be f32 ${describeShape(param.shape)}, got ${m.dtype} ${describeShape(m.shape)}`);
        }
        return keep(m);
      }
      return param.dtype === 'f32' ? null : keep(noGrad(() => cast(param, 'f32')));
    });
    // Moments live where their parameter does.
    const zerosLike32 = (p: Parameter) => keep(withBackend(findBackend(p.backend), () => zeros([...p.shape], 'f32')));
    this.#m = list.map(({ param }) => zerosLike32(param));
    this.#v = list.map(({ param }) => zerosLike32(param));
  }

  /** Optimizer steps taken (t in the bias corrections). */
  get stepCount(): number {
    return this.#stepCount;
  }

  /** The parameters being updated, in order (step() takes one gradient per entry). */
  get parameters(): Parameter[] {
    return this.params.map((p) => p.param);
  }

  /** The f32 master of parameter i (the parameter itself when it is f32). */
  master(i: number): Tensor {
    return this.#masters[i] ?? this.params[i]!.param;
  }

  /**
   * One AdamW update. `grads[i]` is the gradient of `params[i]` (any float dtype; used in f32).
   * The gradients are not consumed.
   */
  step(grads: readonly Tensor[], options: AdamWStepOptions = {}): void {
    this.checkLive();
    if (grads.length !== this.params.length) {
      throw new TrainerConfigError(`AdamW.step: expected ${this.params.length} gradients (one per optimized parameter), got ${grads.length}`);
    }
    grads.forEach((g, i) => {
      const p = this.params[i]!;
      if (!shapesEqual(g.shape, p.param.shape)) {
        throw new TrainerConfigError(`AdamW.step: gradient ${i} ('${p.name}') has shape ${describeShape(g.shape)}, the parameter ${describeShape(p.param.shape)}`);
      }
    });
    const baseLr = checkNumber('lr', options.lr ?? this.defaults.lr, 0, Infinity);
    const t = this.#stepCount + 1;
    noGrad(() => {
      for (let i = 0; i < this.params.length; i++) {
        const { param, group } = this.params[i]!;
        const lr = baseLr * group.lrScale;
        const [b1, b2] = group.betas;
        const bc1 = 1 - b1 ** t;
        const bc2Sqrt = Math.sqrt(1 - b2 ** t);
        const master = this.#masters[i];
        const out = tidy(() => {
          const g = grads[i]!.dtype === 'f32' ? grads[i]! : cast(grads[i]!, 'f32');
          const p = master ?? param;
          const m = add(mul(this.#m[i]!, b1), mul(g, 1 - b1));
          const v = add(mul(this.#v[i]!, b2), mul(square(g), 1 - b2));
          const decayed = group.weightDecay > 0 && lr > 0 ? mul(p, 1 - lr * group.weightDecay) : p;
          const denom = add(div(sqrt(v), bc2Sqrt), group.eps);
          const next = sub(decayed, mul(div(m, denom), lr / bc1));
          return { m, v, next, low: master ? cast(next, param.dtype) : null };
        });
        this.#m[i]!.dispose();
        this.#v[i]!.dispose();
        this.#m[i] = keep(out.m);
        this.#v[i] = keep(out.v);
        if (master) {
          master.dispose();
          this.#masters[i] = keep(out.next);
          param.assign(out.low!);
        } else {
          param.assign(out.next);
        }
      }
    });
    this.#stepCount = t;
  }

  /**
   * The state as named tensors: `exp_avg.<name>`, `exp_avg_sq.<name>` and `master.<name>` (for
   * parameters with an f32 master). The tensors share the optimizer's storage (no copy); the
   * caller disposes them. The step count is in hyperparameters().
   */
  stateDict(): Map<string, Tensor> {
    this.checkLive();
    const out = new Map<string, Tensor>();
    this.params.forEach(({ name }, i) => {
      out.set(`exp_avg.${name}`, stopGradient(this.#m[i]!));
      out.set(`exp_avg_sq.${name}`, stopGradient(this.#v[i]!));
      const master = this.#masters[i];
      if (master) out.set(`master.${name}`, stopGradient(master));
    });
    return out;
  }

  /** Step count and the settings of every parameter (JSON), saved next to the tensors. */
  hyperparameters(): AdamWHyperparameters {
    return {
      stepCount: this.#stepCount,
      defaults: { ...this.defaults, betas: [...this.defaults.betas] },
      params: this.params.map(({ name, param, group }) => ({
        name,
        dtype: param.dtype,
        group: group.name,
        lrScale: group.lrScale,
        weightDecay: group.weightDecay,
        betas: [...group.betas],
        eps: group.eps,
      })),
    };
  }

  /**
   * The problems that would stop loadStateDict() (empty when the state fits): parameter list,
   * step count, and every tensor's presence, shape and dtype.
   */
  checkStateDict(state: ReadonlyMap<string, Tensor>, hyper: AdamWHyperparameters): string[] {
    return this.#validate(state, hyper).problems;
  }

  /**
   * Restores a state from stateDict() and hyperparameters(). Every name must be present with the
   * parameter's shape and f32 dtype, and the parameter list must be the same (names, in order);
   * otherwise nothing changes and a TrainingCheckpointError lists the problems. The tensors are
   * shared, not copied (the caller may dispose its handles).
   */
  loadStateDict(state: ReadonlyMap<string, Tensor>, hyper: AdamWHyperparameters, source = 'optimizer state'): void {
    this.checkLive();
    const { problems, ms, vs, masters } = this.#validate(state, hyper);
    if (problems.length) throw new TrainingCheckpointError(source, 'the optimizer state does not match this optimizer; nothing was loaded', problems);
    this.params.forEach((_, i) => {
      this.#m[i]!.dispose();
      this.#v[i]!.dispose();
      this.#m[i] = keep(stopGradient(ms[i]!));
      this.#v[i] = keep(stopGradient(vs[i]!));
      const master = this.#masters[i];
      if (master) {
        master.dispose();
        this.#masters[i] = keep(stopGradient(masters[i]!));
      }
    });
    this.#stepCount = hyper.stepCount;
  }

  #validate(state: ReadonlyMap<string, Tensor>, hyper: AdamWHyperparameters): { problems: string[]; ms: (Tensor | null)[]; vs: (Tensor | null)[]; masters: (Tensor | null)[] } {
    const problems: string[] = [];
    const names = this.params.map((p) => p.name);
    const savedNames = Array.isArray(hyper?.params) ? hyper.params.map((p) => p.name) : null;
    if (!savedNames) problems.push('the hyperparameters have no parameter list');
    else if (savedNames.join('\n') !== names.join('\n')) {
      const missing = names.filter((n) => !savedNames.includes(n));
      const extra = savedNames.filter((n) => !names.includes(n));
      problems.push(
        `the optimized parameters differ (saved ${savedNames.length}, now ${names.length}` +
          `${missing.length ? `; not in the checkpoint: ${missing.slice(0, 10).join(', ')}` : ''}` +
          `${extra.length ? `; only in the checkpoint: ${extra.slice(0, 10).join(', ')}` : ''})`,
      );
    }
    if (!Number.isInteger(hyper?.stepCount) || hyper.stepCount < 0) problems.push(`stepCount must be an integer >= 0, got ${hyper?.stepCount}`);
    const check = (key: string, shape: readonly number[]): Tensor | null => {
      const t = state.get(key);
      if (!t) {
        problems.push(`missing tensor '${key}'`);
        return null;
      }
      if (t.dtype !== 'f32' || !shapesEqual(t.shape, shape)) {
        problems.push(`'${key}' must be f32 ${describeShape(shape)}, got ${t.dtype} ${describeShape(t.shape)}`);
        return null;
      }
      return t;
    };
    const ms: (Tensor | null)[] = [];
    const vs: (Tensor | null)[] = [];
    const masters: (Tensor | null)[] = [];
    this.params.forEach(({ name, param }, i) => {
      ms.push(check(`exp_avg.${name}`, param.shape));
      vs.push(check(`exp_avg_sq.${name}`, param.shape));
      masters.push(this.#masters[i] ? check(`master.${name}`, param.shape) : null);
    });
    const known = new Set(this.params.flatMap(({ name }, i) => [`exp_avg.${name}`, `exp_avg_sq.${name}`, ...(this.#masters[i] ? [`master.${name}`] : [])]));
    const unexpected = [...state.keys()].filter((k) => !known.has(k));
    if (unexpected.length) problems.push(`unexpected tensors: ${unexpected.slice(0, 10).join(', ')}${unexpected.length > 10 ? ', ...' : ''}`);
    return { problems, ms, vs, masters };
  }

  /** Frees the moments and master weights (the parameters belong to the model). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of [...this.#m, ...this.#v]) t.dispose();
    for (const t of this.#masters) t?.dispose();
  }

  private checkLive(): void {
    if (this.#disposed) throw new TrainerConfigError('AdamW: the optimizer was disposed');
  }
}

export interface AdamWHyperparameters {
  readonly stepCount: number;
  readonly defaults: { readonly lr: number; readonly weightDecay: number; readonly betas: readonly number[]; readonly eps: number };
  readonly params: readonly {
    readonly name: string;
    readonly dtype: string;
    readonly group: string;
    readonly lrScale: number;
    readonly weightDecay: number;
    readonly betas: readonly number[];
    readonly eps: number;
  }[];
}
