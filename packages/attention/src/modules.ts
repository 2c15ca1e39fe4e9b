/**
 * The two attention layers of a Ring-linear hybrid (MODEL_SPEC §2-3), with parameters named as in
 * the Hugging Face checkpoint (MODEL_SPEC §6): query_key_value, dense, g_proj, g_norm,
 * query_layernorm, key_layernorm.
 *
 * forward(x [B, T, hidden], options) serves training (packed batches via cuSeqlens, batch 1) and
 * sampling (a LinearAttentionState / KVCache carried across calls: prefill, then decode). The same
 * ops run in every path (MODEL_SPEC §7).
 */
import {
  Linear,
  Module,
  ModuleError,
  Parameter,
  RMSNorm,
  RingLinearError,
  ShapeError,
  describeShape,
  full,
  keep,
  reshape,
  rmsNorm,
  silu,
  split,
  tensor,
  tidy,
  type DType,
  type Generator,
  type Tensor,
} from '@ring-linear/core';
import { KVCache, LinearAttentionState } from './cache.js';
import { decayRates, type DecayConvention } from './decay.js';
import { groupRmsNormGate } from './ops/gate.js';
import { lightningAttention, lightningAttentionStep } from './ops/lightning.js';
import { packedPositions, rope, ropePositions } from './ops/rope.js';
import { softmaxAttention } from './ops/softmax_attention.js';
import { zerosOn } from './ops/common.js';

export interface AttentionConfig {
  readonly hiddenSize: number;
  /** num_attention_heads (query heads). */
  readonly numHeads: number;
  readonly headDim: number;
  /** Channels of each head that RoPE rotates; default headDim * partialRotaryFactor. */
  readonly rotaryDim?: number;
  /** partial_rotary_factor (default 1; Ring models 0.5). */
  readonly partialRotaryFactor?: number;
  /** rope_theta (default 10000; Ring models 1e6). */
  readonly ropeTheta?: number;
  /** use_qk_norm (default true). */
  readonly useQkNorm?: boolean;
  /** use_qkv_bias (default false). */
  readonly useQkvBias?: boolean;
  /** Bias on `dense` (use_bias; default false). */
  readonly useDenseBias?: boolean;
  /** rms_norm_eps (default 1e-6). */
  readonly rmsNormEps?: number;
  /** Parameter dtype (default f32); the input must have it too. */
  readonly dtype?: DType;
  readonly generator?: Generator;
}

export interface LinearAttentionConfig extends AttentionConfig {
  /** 0-based index of this layer and the number of layers: they set the decay rates. */
  readonly layerIdx: number;
  readonly numLayers: number;
  /** group_norm_size: groups of the output RMSNorm over H*D channels (default 1). */
  readonly groupNormSize?: number;
  /** Layer-index convention of the decay rates (default 'hf'). */
  readonly decayConvention?: DecayConvention;
  /** linear_silu: SiLU on qkv (default false, as the Ring models). */
  readonly linearSilu?: boolean;
  /** Chunk length of the chunked kernel (default 64). */
  readonly chunkSize?: number;
  /** Calls with a state and at most this many tokens use the recurrent step op (default 8). */
  readonly decodeMaxTokens?: number;
}

export interface SoftmaxAttentionConfig extends AttentionConfig {
  /** num_key_value_heads. */
  readonly numKvHeads: number;
}

function positive(layer: string, name: string, v: number | undefined): number {
  if (!Number.isInteger(v) || v! < 1) throw new ModuleError(`${layer}: '${name}' must be a positive integer, got ${v}`);
  return v!;
}

function rotaryDimOf(layer: string, c: AttentionConfig): number {
  const r = c.rotaryDim ?? Math.floor(c.headDim * (c.partialRotaryFactor ?? 1));
  if (!Number.isInteger(r) || r < 2 || r % 2 !== 0 || r > c.headDim) {
    throw new ModuleError(`${layer}: rotary dim must be a positive even number <= headDim (${c.headDim}), got ${r} (rotaryDim or headDim * partialRotaryFactor)`);
  }
  return r;
}

function checkInput(layer: string, x: Tensor, hidden: number): [number, number] {
  if (x.rank !== 3 || x.shape[2] !== hidden) {
    throw new ShapeError(`${layer}: expected x [batch, time, ${hidden}], got ${describeShape(x.shape)}`);
  }
  return [x.shape[0]!, x.shape[1]!];
}

/** The g_norm of the linear layer: a weight [H*D] applied per group of the gated group RMSNorm. */
export class GroupRMSNormGate extends Module {
  readonly weight: Parameter;
  constructor(
    readonly channels: number,
    readonly groups: number,
    readonly eps: number,
    dtype: DType = 'f32',
  ) {
    super();
    if (channels % groups !== 0) throw new ModuleError(`GroupRMSNormGate: ${channels} channels do not divide into ${groups} groups`);
    this.weight = new Parameter(full([channels], 1, dtype));
  }

  forward(o: Tensor, gate: Tensor): Tensor {
    return groupRmsNormGate(o, gate, this.weight, { groups: this.groups, eps: this.eps });
  }
}

export interface LinearAttentionForwardOptions {
  /** Packed sequences (training; x has batch 1). Not combined with a state. */
  readonly cuSeqlens?: readonly number[] | Int32Array;
  /** Sampling: the state entering these tokens; updated in place (swapped) to the state after them. */
  readonly state?: LinearAttentionState;
}

/** Lightning-attention layer (MODEL_SPEC §2). */
export class LinearAttention extends Module {
  readonly query_key_value: Linear;
  readonly dense: Linear;
  readonly g_proj: Linear;
  readonly g_norm: GroupRMSNormGate;
  readonly query_layernorm: RMSNorm | null;
  readonly key_layernorm: RMSNorm | null;
  readonly hiddenSize: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly rotaryDim: number;
  readonly ropeTheta: number;
  readonly eps: number;
  readonly linearSilu: boolean;
  readonly chunkSize: number;
  readonly decodeMaxTokens: number;
  readonly layerIdx: number;
  readonly numLayers: number;
  readonly decayConvention: DecayConvention;
  /** The per-head decay rates a_h, f32 [H]: a constant of the layer, not a parameter. */
  #decay: Tensor;

  constructor(config: LinearAttentionConfig) {
    super();
    const name = 'LinearAttention';
    this.hiddenSize = positive(name, 'hiddenSize', config.hiddenSize);
    this.numHeads = positive(name, 'numHeads', config.numHeads);
    this.headDim = positive(name, 'headDim', config.headDim);
    this.rotaryDim = rotaryDimOf(name, config);
    this.ropeTheta = config.ropeTheta ?? 10000;
    this.eps = config.rmsNormEps ?? 1e-6;
    this.linearSilu = config.linearSilu ?? false;
    this.chunkSize = positive(name, 'chunkSize', config.chunkSize ?? 64);
    this.decodeMaxTokens = config.decodeMaxTokens ?? 8;
    this.layerIdx = config.layerIdx;
    this.numLayers = config.numLayers;
    this.decayConvention = config.decayConvention ?? 'hf';
    const groups = positive(name, 'groupNormSize', config.groupNormSize ?? 1);
    const HD = this.numHeads * this.headDim;
    if (HD % groups !== 0) throw new ModuleError(`${name}: numHeads * headDim = ${HD} channels do not divide into groupNormSize = ${groups} groups`);
    const o = { dtype: config.dtype, generator: config.generator };
    this.query_key_value = new Linear(this.hiddenSize, 3 * HD, { ...o, bias: config.useQkvBias ?? false });
    this.dense = new Linear(HD, this.hiddenSize, { ...o, bias: config.useDenseBias ?? false });
    this.g_proj = new Linear(this.hiddenSize, HD, o);
    this.g_norm = new GroupRMSNormGate(HD, groups, this.eps, config.dtype);
    const qkNorm = config.useQkNorm ?? true;
    this.query_layernorm = qkNorm ? new RMSNorm(this.headDim, this.eps, { dtype: config.dtype }) : null;
    this.key_layernorm = qkNorm ? new RMSNorm(this.headDim, this.eps, { dtype: config.dtype }) : null;
    const rates = decayRates(this.numHeads, this.layerIdx, this.numLayers, { convention: this.decayConvention });
    this.#decay = keep(tensor(rates, [this.numHeads], 'f32'));
  }

  /** The decay rates a_h (f32 [H]); lambda_h = exp(-a_h). */
  get decay(): Tensor {
    return this.#decay;
  }

  /** A fresh (zero) state for `batchSize` sequences. */
  createState(batchSize: number): LinearAttentionState {
    const D = this.headDim;
    return new LinearAttentionState(zerosOn(this.#decay, [positive('LinearAttention.createState', 'batchSize', batchSize), this.numHeads, D, D]));
  }

  /** Splits qkv into per-head q, k, v [B, T, H, D], applies QK-norm and RoPE. */
  private projections(x: Tensor, positions: { offset: number } | { packed: Int32Array }): [Tensor, Tensor, Tensor] {
    const [B, T] = [x.shape[0]!, x.shape[1]!];
    const H = this.numHeads;
    const D = this.headDim;
    let qkv = this.query_key_value.forward(x);
    if (this.linearSilu) qkv = silu(qkv);
    let [q, k, v] = split(qkv, 3, 2).map((p) => reshape(p, [B, T, H, D])) as [Tensor, Tensor, Tensor];
    if (this.query_layernorm) q = rmsNorm(q, this.query_layernorm.weight, this.eps);
    if (this.key_layernorm) k = rmsNorm(k, this.key_layernorm.weight, this.eps);
    // One positions tensor for q and k (one upload).
    const pos = ropePositions(x, T, 'packed' in positions ? { positions: positions.packed } : { offset: positions.offset });
    q = rope(q, { positions: pos, rotaryDim: this.rotaryDim, theta: this.ropeTheta });
    k = rope(k, { positions: pos, rotaryDim: this.rotaryDim, theta: this.ropeTheta });
    return [q, k, v];
  }

  forward(x: Tensor, options: LinearAttentionForwardOptions = {}): Tensor {
    const name = 'LinearAttention';
    const [B, T] = checkInput(name, x, this.hiddenSize);
    const { cuSeqlens, state } = options;
    if (cuSeqlens && state) throw new RingLinearError(`${name}: cuSeqlens (packed training batches) and a sampling state cannot be combined`);
    if (state && state.batchSize !== B) {
      throw new ShapeError(`${name}: the state holds ${state.batchSize} sequences, x has batch ${B}`);
    }
    return tidy(() => {
      const positions = cuSeqlens ? { packed: packedPositions(cuSeqlens) } : { offset: state?.position ?? 0 };
      const [q, k, v] = this.projections(x, positions);
      let o: Tensor;
      if (state) {
        const r = T <= this.decodeMaxTokens
          ? lightningAttentionStep(q, k, v, { decay: this.#decay, state: state.state })
          : (({ out, finalState }) => ({ out, state: finalState }))(
              lightningAttention(q, k, v, { decay: this.#decay, initialState: state.state, chunkSize: this.chunkSize }),
            );
        state.update(r.state, T);
        o = r.out;
      } else {
        o = lightningAttention(q, k, v, { decay: this.#decay, chunkSize: this.chunkSize, cuSeqlens: cuSeqlens ?? null }).out;
      }
      const HD = this.numHeads * this.headDim;
      const gated = this.g_norm.forward(reshape(o, [B, T, HD]), this.g_proj.forward(x));
      return this.dense.forward(gated);
    });
  }

  override dispose(): void {
    this.#decay.dispose();
    super.dispose();
  }
}

export interface SoftmaxAttentionForwardOptions {
  /** Packed sequences (training; x has batch 1). Not combined with a cache. */
  readonly cuSeqlens?: readonly number[] | Int32Array;
  /** Sampling: post-RoPE keys/values so far; these tokens' keys/values are appended. */
  readonly cache?: KVCache;
}

/** Softmax (GQA) attention layer (MODEL_SPEC §3). */
export class SoftmaxAttention extends Module {
  readonly query_key_value: Linear;
  readonly dense: Linear;
  readonly query_layernorm: RMSNorm | null;
  readonly key_layernorm: RMSNorm | null;
  readonly hiddenSize: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly rotaryDim: number;
  readonly ropeTheta: number;
  readonly eps: number;

  constructor(config: SoftmaxAttentionConfig) {
    super();
    const name = 'SoftmaxAttention';
    this.hiddenSize = positive(name, 'hiddenSize', config.hiddenSize);
    this.numHeads = positive(name, 'numHeads', config.numHeads);
    this.numKvHeads = positive(name, 'numKvHeads', config.numKvHeads);
    if (this.numHeads % this.numKvHeads !== 0) {
      throw new ModuleError(`${name}: numHeads (${this.numHeads}) must be a multiple of numKvHeads (${this.numKvHeads}) for grouped-query attention`);
    }
    this.headDim = positive(name, 'headDim', config.headDim);
    this.rotaryDim = rotaryDimOf(name, config);
    this.ropeTheta = config.ropeTheta ?? 10000;
    this.eps = config.rmsNormEps ?? 1e-6;
    const o = { dtype: config.dtype, generator: config.generator };
    const D = this.headDim;
    this.query_key_value = new Linear(this.hiddenSize, (this.numHeads + 2 * this.numKvHeads) * D, { ...o, bias: config.useQkvBias ?? false });
    this.dense = new Linear(this.numHeads * D, this.hiddenSize, { ...o, bias: config.useDenseBias ?? false });
    const qkNorm = config.useQkNorm ?? true;
    this.query_layernorm = qkNorm ? new RMSNorm(D, this.eps, { dtype: config.dtype }) : null;
    this.key_layernorm = qkNorm ? new RMSNorm(D, this.eps, { dtype: config.dtype }) : null;
  }

  /** An empty cache for this layer. */
  createCache(initialCapacity = 64): KVCache {
    return new KVCache({ initialCapacity });
  }

  forward(x: Tensor, options: SoftmaxAttentionForwardOptions = {}): Tensor {
    const name = 'SoftmaxAttention';
    const [B, T] = checkInput(name, x, this.hiddenSize);
    const { cuSeqlens, cache } = options;
    if (cuSeqlens && cache) throw new RingLinearError(`${name}: cuSeqlens (packed training batches) and a KV cache cannot be combined`);
    return tidy(() => {
      const H = this.numHeads;
      const Hkv = this.numKvHeads;
      const D = this.headDim;
      const qkv = this.query_key_value.forward(x);
      let [q, k, v] = split(qkv, [H * D, Hkv * D, Hkv * D], 2) as [Tensor, Tensor, Tensor];
      q = reshape(q, [B, T, H, D]);
      k = reshape(k, [B, T, Hkv, D]);
      v = reshape(v, [B, T, Hkv, D]);
      if (this.query_layernorm) q = rmsNorm(q, this.query_layernorm.weight, this.eps);
      if (this.key_layernorm) k = rmsNorm(k, this.key_layernorm.weight, this.eps);
      const pos = ropePositions(x, T, cuSeqlens ? { positions: packedPositions(cuSeqlens) } : { offset: cache?.length ?? 0 });
      q = rope(q, { positions: pos, rotaryDim: this.rotaryDim, theta: this.ropeTheta });
      k = rope(k, { positions: pos, rotaryDim: this.rotaryDim, theta: this.ropeTheta });
      let o: Tensor;
      if (cache) {
        cache.append(k, v);
        o = softmaxAttention(q, cache.keys, cache.values, { kvLen: cache.length });
      } else {
        o = softmaxAttention(q, k, v, { cuSeqlens: cuSeqlens ?? null });
      }
      return this.dense.forward(reshape(o, [B, T, H * D]));
    });
  }
}
