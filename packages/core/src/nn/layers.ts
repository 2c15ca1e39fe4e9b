/**
 * The basic layers model code is built from: Linear, Embedding, RMSNorm, SwiGLUMLP. Weight layouts
 * and names follow PyTorch / Hugging Face, so checkpoint tensors map onto them directly
 * (MODEL_SPEC §6). Each layer's `forward` frees its own intermediates (it runs in a tidy scope), so
 * calling it outside a scope leaks nothing but the result.
 */
import { isFloatDType, type DType } from '../dtype/dtype.js';
import { tidy } from '../engine.js';
import { DTypeError, ShapeError, describeShape } from '../errors.js';
import { add, mul, silu } from '../ops/elementwise.js';
import { embedding } from '../ops/indexing.js';
import { matmul } from '../ops/matmul.js';
import { rmsNorm } from '../ops/nn.js';
import { full, reshape } from '../ops/shape_basic.js';
import type { Generator } from '../rng/philox.js';
import type { Tensor } from '../tensor.js';
import { kaimingUniform_, normal_, uniform_ } from './initializers.js';
import { Module, ModuleError } from './module.js';
import { Parameter } from './parameter.js';

function positiveInt(layer: string, name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new ModuleError(`${layer}: '${name}' must be a positive integer, got ${v}`);
  return v;
}

function floatDType(layer: string, dtype: DType): DType {
  if (!isFloatDType(dtype)) throw new DTypeError(`${layer}: parameters need a float dtype (f32, f16, bf16, f8e4m3, f8e5m2), got ${dtype}`);
  return dtype;
}

function lastDim(layer: string, x: Tensor, expected: number): void {
  if (x.rank < 1 || x.shape[x.rank - 1] !== expected) {
    throw new ShapeError(`${layer}: expected input [..., ${expected}], got ${describeShape(x.shape)}`);
  }
}

/** A zero-filled parameter; the layer's initializer then fills it (unless init.skipInit). */
function zeroParameter(shape: number[], dtype: DType): Parameter {
  return new Parameter(full(shape, 0, dtype));
}

export interface LinearOptions {
  /** Add a learned bias (default false: Ring models have none). */
  readonly bias?: boolean;
  /** Parameter dtype (default f32). */
  readonly dtype?: DType;
  /** Generator for the initial weights (default: the default generator). */
  readonly generator?: Generator;
}

/**
 * y = x W^T (+ b). weight [outFeatures, inFeatures] (PyTorch/HF layout), bias [outFeatures]. Input
 * [..., inFeatures] -> [..., outFeatures]; the input must have the weight's dtype. Initialized as
 * PyTorch's nn.Linear: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
 */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    this.inFeatures = positiveInt('Linear', 'inFeatures', inFeatures);
    this.outFeatures = positiveInt('Linear', 'outFeatures', outFeatures);
    const dtype = floatDType('Linear', options.dtype ?? 'f32');
    this.weight = zeroParameter([outFeatures, inFeatures], dtype);
    this.bias = options.bias ? zeroParameter([outFeatures], dtype) : null;
    this.resetParameters(options.generator);
  }

  /** PyTorch's nn.Linear initialization (kaiming uniform with a = sqrt(5): bound 1/sqrt(in)). */
  resetParameters(generator?: Generator): void {
    kaimingUniform_(this.weight, { a: Math.sqrt(5), generator });
    if (this.bias) {
      const b = 1 / Math.sqrt(this.inFeatures);
      uniform_(this.bias, { low: -b, high: b, generator });
    }
  }

  forward(x: Tensor): Tensor {
    lastDim('Linear', x, this.inFeatures);
    return tidy(() => {
      // matmul needs rank >= 2; a single vector goes through as one row.
      const x2 = x.rank === 1 ? reshape(x, [1, this.inFeatures]) : x;
      let y = matmul(x2, this.weight, { transposeB: true });
      if (x.rank === 1) y = reshape(y, [this.outFeatures]);
      return this.bias ? add(y, this.bias) : y;
    });
  }

  override extraRepr(): string {
    return `inFeatures=${this.inFeatures}, outFeatures=${this.outFeatures}, bias=${this.bias !== null}`;
  }
}

export interface EmbeddingOptions {
  readonly dtype?: DType;
  readonly generator?: Generator;
}

/** A lookup table weight [numEmbeddings, embeddingDim]: i32 ids [...] -> [..., embeddingDim]. Initialized N(0, 1) (PyTorch). */
export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  readonly weight: Parameter;

  constructor(numEmbeddings: number, embeddingDim: number, options: EmbeddingOptions = {}) {
    super();
    this.numEmbeddings = positiveInt('Embedding', 'numEmbeddings', numEmbeddings);
    this.embeddingDim = positiveInt('Embedding', 'embeddingDim', embeddingDim);
    this.weight = zeroParameter([numEmbeddings, embeddingDim], floatDType('Embedding', options.dtype ?? 'f32'));
    this.resetParameters(options.generator);
  }

  resetParameters(generator?: Generator): void {
    normal_(this.weight, { generator });
  }

  forward(ids: Tensor): Tensor {
    if (ids.dtype !== 'i32') throw new DTypeError(`Embedding: ids must have dtype i32, got ${ids.dtype}`);
    return embedding(ids, this.weight);
  }

  override extraRepr(): string {
    return `numEmbeddings=${this.numEmbeddings}, embeddingDim=${this.embeddingDim}`;
  }
}

export interface RMSNormOptions {
  readonly dtype?: DType;
}

/** y = weight * x * rsqrt(mean(x^2) + eps) over the last dim, in f32 (MODEL_SPEC §1). weight [dim], initialized to ones. */
export class RMSNorm extends Module {
  readonly dim: number;
  readonly eps: number;
  readonly weight: Parameter;

  constructor(dim: number, eps = 1e-6, options: RMSNormOptions = {}) {
    super();
    this.dim = positiveInt('RMSNorm', 'dim', dim);
    if (!Number.isFinite(eps) || eps < 0) throw new ModuleError(`RMSNorm: 'eps' must be a finite number >= 0, got ${eps}`);
    this.eps = eps;
    // Ones are the identity scale, also under init.skipInit (checkpoints overwrite them anyway).
    this.weight = new Parameter(full([dim], 1, floatDType('RMSNorm', options.dtype ?? 'f32')));
  }

  forward(x: Tensor): Tensor {
    lastDim('RMSNorm', x, this.dim);
    return rmsNorm(x, this.weight, this.eps);
  }

  override extraRepr(): string {
    return `dim=${this.dim}, eps=${this.eps}`;
  }
}

export interface SwiGLUMLPOptions {
  readonly dtype?: DType;
  readonly generator?: Generator;
}

/**
 * The SwiGLU feed-forward block, down(silu(gate(x)) * up(x)) (MODEL_SPEC §4), with the Hugging
 * Face names gate_proj, up_proj [intermediate, hidden] and down_proj [hidden, intermediate]; no
 * biases.
 */
export class SwiGLUMLP extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;

  constructor(hiddenSize: number, intermediateSize: number, options: SwiGLUMLPOptions = {}) {
    super();
    const o = { dtype: options.dtype, generator: options.generator };
    this.gate_proj = new Linear(hiddenSize, intermediateSize, o);
    this.up_proj = new Linear(hiddenSize, intermediateSize, o);
    this.down_proj = new Linear(intermediateSize, hiddenSize, o);
  }

  forward(x: Tensor): Tensor {
    return tidy(() => this.down_proj.forward(mul(silu(this.gate_proj.forward(x)), this.up_proj.forward(x))));
  }
}
