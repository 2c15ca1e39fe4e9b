/**
 * Fp8Linear, a drop-in for core's Linear whose matmul runs through the FP8 recipe (fp8Linear op),
 * and toFp8(), which swaps a model's Linear layers for Fp8Linear layers sharing the same master
 * weights.
 */
import {
  DTypeError,
  Linear,
  Module,
  ModuleError,
  ModuleList,
  Parameter,
  ShapeError,
  add,
  describeShape,
  full,
  init,
  isFloatDType,
  reshape,
  tidy,
  type DType,
  type Generator,
  type Tensor,
} from '@ring-linear/core';
import { isFp8DType } from './formats.js';
import { fp8Linear, type Fp8Recipe } from './ops/linear.js';

export interface Fp8LinearOptions extends Fp8Recipe {
  /** Add a learned bias (default false), added in f32 after the FP8 GEMM. */
  readonly bias?: boolean;
  /** Master-weight dtype (default f32). */
  readonly dtype?: DType;
  readonly generator?: Generator;
}

/** Internal: the parameters fromLinear() shares instead of making new ones. */
const SHARE = Symbol('Fp8Linear.share');
type SharingOptions = Fp8LinearOptions & { [SHARE]?: { weight: Parameter; bias: Parameter | null } };

function resolveRecipe(r: Fp8Recipe): Required<Fp8Recipe> {
  const recipe = { fp8Dtype: r.fp8Dtype ?? 'f8e4m3', gradDtype: r.gradDtype ?? 'f8e4m3', pow2Scale: r.pow2Scale ?? false } as const;
  for (const [k, v] of [['fp8Dtype', recipe.fp8Dtype], ['gradDtype', recipe.gradDtype]] as const) {
    if (!isFp8DType(v)) throw new DTypeError(`Fp8Linear: recipe '${k}' must be 'f8e4m3' or 'f8e5m2', got '${String(v)}'`);
  }
  return recipe;
}

/**
 * y = x W^T (+ b) with the matmul in FP8 (1x128 activation tiles, 128x128 weight blocks, fp32
 * accumulation) and the FP8 backward. Same parameter names and layout as Linear: `weight`
 * [outFeatures, inFeatures] (the f32 master weight an optimizer updates), optional `bias`.
 */
export class Fp8Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly recipe: Required<Fp8Recipe>;

  constructor(inFeatures: number, outFeatures: number, options: Fp8LinearOptions = {}) {
    super();
    for (const [n, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new ModuleError(`Fp8Linear: '${n}' must be a positive integer, got ${v}`);
    }
    this.recipe = resolveRecipe({ fp8Dtype: options.fp8Dtype, gradDtype: options.gradDtype, pow2Scale: options.pow2Scale });
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const shared = (options as SharingOptions)[SHARE];
    if (shared) {
      this.weight = shared.weight;
      this.bias = shared.bias;
      return;
    }
    const dtype = options.dtype ?? 'f32';
    if (!isFloatDType(dtype) || isFp8DType(dtype)) {
      throw new DTypeError(`Fp8Linear: master weights need dtype f32, bf16 or f16, got ${dtype}`);
    }
    this.weight = new Parameter(full([outFeatures, inFeatures], 0, dtype));
    this.bias = options.bias ? new Parameter(full([outFeatures], 0, dtype)) : null;
    // PyTorch's nn.Linear initialization, as core's Linear.
    init.kaimingUniform_(this.weight, { a: Math.sqrt(5), generator: options.generator });
    if (this.bias) {
      const b = 1 / Math.sqrt(inFeatures);
      init.uniform_(this.bias, { low: -b, high: b, generator: options.generator });
    }
  }

  /**
   * An Fp8Linear that SHARES `linear`'s weight and bias Parameters (no copy, no new init): an
   * optimizer holding them keeps training them, and state dicts keep their names.
   */
  static fromLinear(linear: Linear, recipe: Fp8Recipe = {}): Fp8Linear {
    if (isFp8DType(linear.weight.dtype)) {
      throw new DTypeError(`Fp8Linear.fromLinear: the master weight must be f32, bf16 or f16, got ${linear.weight.dtype}`);
    }
    const options: SharingOptions = { fp8Dtype: recipe.fp8Dtype, gradDtype: recipe.gradDtype, pow2Scale: recipe.pow2Scale, [SHARE]: { weight: linear.weight, bias: linear.bias } };
    const m = new Fp8Linear(linear.inFeatures, linear.outFeatures, options);
    m.training = linear.training;
    return m;
  }

  forward(x: Tensor): Tensor {
    if (x.rank < 1 || x.shape[x.rank - 1] !== this.inFeatures) {
      throw new ShapeError(`Fp8Linear: expected input [..., ${this.inFeatures}], got ${describeShape(x.shape)}`);
    }
    return tidy(() => {
      const x2 = x.rank === 1 ? reshape(x, [1, this.inFeatures]) : x;
      let y = fp8Linear(x2, this.weight, this.recipe);
      if (x.rank === 1) y = reshape(y, [this.outFeatures]);
      return this.bias ? add(y, this.bias) : y;
    });
  }

  override extraRepr(): string {
    const r = this.recipe;
    return `inFeatures=${this.inFeatures}, outFeatures=${this.outFeatures}, bias=${this.bias !== null}, fp8Dtype=${r.fp8Dtype}, gradDtype=${r.gradDtype}${r.pow2Scale ? ', pow2Scale' : ''}`;
  }
}

export interface ToFp8Options extends Fp8Recipe {
  /**
   * Which Linear layers to convert, by dotted name (e.g. exclude 'lm_head', which MODEL_SPEC §7
   * keeps in fp32). Default: all.
   */
  readonly filter?: (name: string, linear: Linear) => boolean;
}

/**
 * Replaces every Linear child of the model (that `filter` accepts) by an Fp8Linear sharing its
 * weight and bias Parameters, in place; returns the dotted names converted. A Linear reachable
 * under several names is converted once (one Fp8Linear in every place). Linear layers held
 * directly in a ModuleList cannot be swapped in place (ModuleList has no setter): they throw a
 * ModuleError before anything changes, unless the filter excludes them.
 */
export function toFp8(model: Module, options: ToFp8Options = {}): string[] {
  const filter = options.filter ?? (() => true);
  const plan: { parent: Module; field: string; name: string; linear: Linear }[] = [];
  const blocked: string[] = [];
  for (const [prefix, parent] of model.namedModules()) {
    for (const [field, child] of parent.namedChildren()) {
      if (!(child instanceof Linear)) continue;
      const name = prefix ? `${prefix}.${field}` : field;
      if (!filter(name, child)) continue;
      if (parent instanceof ModuleList) blocked.push(name);
      else plan.push({ parent, field, name, linear: child });
    }
  }
  if (blocked.length) {
    throw new ModuleError(
      `toFp8: Linear layers held directly by a ModuleList cannot be replaced in place: ${blocked.join(', ')}; ` +
        'wrap each in a module with a field, or exclude them with the filter',
    );
  }
  const made = new Map<Linear, Fp8Linear>();
  for (const { parent, field, linear } of plan) {
    let fp8 = made.get(linear);
    if (!fp8) {
      fp8 = Fp8Linear.fromLinear(linear, { fp8Dtype: options.fp8Dtype, gradDtype: options.gradDtype, pow2Scale: options.pow2Scale });
      made.set(linear, fp8);
    }
    (parent as unknown as Record<string, unknown>)[field] = fp8;
  }
  return plan.map((p) => p.name);
}
