/**
 * RingLinearForCausalLM (MODEL_SPEC §1, names as the Hugging Face checkpoint, §6):
 *
 *   model.word_embeddings                     Embedding [vocab, hidden]
 *   model.layers.N.input_layernorm            RMSNorm
 *   model.layers.N.attention                  LinearAttention or SoftmaxAttention (per layer kind)
 *   model.layers.N.post_attention_layernorm   RMSNorm
 *   model.layers.N.mlp                        DenseMLP (l < first_k_dense_replace) or MoE
 *   model.norm                                RMSNorm, f32 always
 *   lm_head                                   Linear [vocab, hidden], f32 always
 *
 * Training-inference alignment (MODEL_SPEC §7): the residual stream h is f32 whatever the
 * parameter dtype; each block normalizes h in f32 (RMSNorm computes in f32), rounds once to the
 * compute dtype for the attention / MLP, and adds their output back in f32. The final norm and the
 * lm_head run in f32. Training (packed rows), prefill and decode go through the same layer
 * modules and kernels; only the cache differs.
 */
import {
  LinearAttention,
  SoftmaxAttention,
  KVCache,
  LinearAttentionState,
} from '@ring-linear/attention';
import {
  Embedding,
  Linear,
  Module,
  ModuleList,
  RMSNorm,
  RingLinearError,
  ShapeError,
  DTypeError,
  add,
  cast,
  crossEntropy,
  describeShape,
  findBackend,
  indexSelect,
  init,
  isFloatDType,
  matmul,
  rmsNorm,
  sliceAxis,
  tensor,
  tidy,
  type CrossEntropyReduction,
  type DType,
  type Generator,
  type Tensor,
} from '@ring-linear/core';
import { toFp8, type Fp8Recipe } from '@ring-linear/fp8';
import { DenseMLP, MoE, initMoEWeights, type LoadStatistics } from '@ring-linear/moe';
import { layerTypesOf, mlpTypesOf, parseConfig, type LayerType, type MlpType, type RingLinearConfig } from './config.js';

export interface RingLinearModelOptions {
  /**
   * Parameter and compute dtype of the embedding, attention, norms and experts (default f32).
   * The router, the final norm and the lm_head stay f32; the residual stream is f32.
   */
  readonly dtype?: DType;
  /** Generator for the initial weights (default: the default generator). */
  readonly generator?: Generator;
  /**
   * Initialize the weights with the Hugging Face rule (N(0, initializer_range^2) for Linear and
   * Embedding weights and the router, zeros for biases and the expert bias, ones for norms).
   * Default true; false leaves the modules' own initialization. Under init.skipInit (as
   * loadPretrained uses) no random draws happen either way.
   */
  readonly initWeights?: boolean;
  /** Chunk length of the chunked lightning-attention kernel (default 64). */
  readonly chunkSize?: number;
  /** MoE: rate of the auxiliary-loss-free bias update (default 1e-3). */
  readonly biasUpdateRate?: number;
  /** MoE: coefficient of the sequence-wise auxiliary loss (default 0: off). */
  readonly seqAuxLossAlpha?: number;
  /**
   * Run the attention and dense-MLP projections through the FP8 recipe (@ring-linear/fp8): true
   * for the default recipe, or a recipe. The lm_head stays f32 (MODEL_SPEC §7); the MoE experts
   * run their grouped GEMM on the master weights.
   */
  readonly fp8?: boolean | Fp8Recipe;
}

type AttentionModule = LinearAttention | SoftmaxAttention;
type MlpModule = DenseMLP | MoE;

function castTo(x: Tensor, dtype: DType): Tensor {
  return x.dtype === dtype ? x : cast(x, dtype);
}

/** One pre-norm block: h + Attention(RMSNorm(h)), then + MLP(RMSNorm(h)) (MODEL_SPEC §1). */
export class RingLinearDecoderLayer extends Module {
  readonly input_layernorm: RMSNorm;
  readonly attention: AttentionModule;
  readonly post_attention_layernorm: RMSNorm;
  readonly mlp: MlpModule;
  readonly layerIdx: number;
  readonly attentionType: LayerType;
  readonly mlpType: MlpType;

  constructor(config: RingLinearConfig, layerIdx: number, kinds: { attention: LayerType; mlp: MlpType }, options: RingLinearModelOptions = {}) {
    super();
    const c = config;
    const dtype = options.dtype ?? 'f32';
    const generator = options.generator;
    this.layerIdx = layerIdx;
    this.attentionType = kinds.attention;
    this.mlpType = kinds.mlp;
    this.input_layernorm = new RMSNorm(c.hidden_size, c.rms_norm_eps, { dtype });
    const common = {
      hiddenSize: c.hidden_size,
      numHeads: c.num_attention_heads,
      headDim: c.head_dim,
      partialRotaryFactor: c.partial_rotary_factor,
      ropeTheta: c.rope_theta,
      useQkNorm: c.use_qk_norm,
      useQkvBias: c.use_qkv_bias,
      useDenseBias: c.use_bias,
      rmsNormEps: c.rms_norm_eps,
      dtype,
      generator,
    };
    this.attention =
      kinds.attention === 'linear'
        ? new LinearAttention({
            ...common,
            layerIdx,
            numLayers: c.num_hidden_layers,
            groupNormSize: c.group_norm_size,
            decayConvention: c.decay_convention,
            linearSilu: c.linear_silu,
            chunkSize: options.chunkSize ?? 64,
          })
        : new SoftmaxAttention({ ...common, numKvHeads: c.num_key_value_heads });
    this.post_attention_layernorm = new RMSNorm(c.hidden_size, c.rms_norm_eps, { dtype });
    this.mlp =
      kinds.mlp === 'dense'
        ? new DenseMLP(c.hidden_size, c.intermediate_size!, { dtype, generator })
        : new MoE(
            {
              hiddenSize: c.hidden_size,
              numExperts: c.num_experts!,
              numExpertsPerTok: c.num_experts_per_tok!,
              moeIntermediateSize: c.moe_intermediate_size!,
              numSharedExperts: c.num_shared_experts,
              moeSharedExpertIntermediateSize: c.moe_shared_expert_intermediate_size ?? c.moe_intermediate_size!,
              nGroup: c.n_group,
              topkGroup: c.topk_group,
              scoreFunction: c.score_function,
              normTopkProb: c.norm_topk_prob,
              routedScalingFactor: c.routed_scaling_factor,
              ...(options.biasUpdateRate !== undefined ? { biasUpdateRate: options.biasUpdateRate } : {}),
              ...(options.seqAuxLossAlpha !== undefined ? { seqAuxLossAlpha: options.seqAuxLossAlpha } : {}),
            },
            { dtype, generator },
          );
  }

  /** The dtype the attention and MLP compute in (their weights' dtype). */
  get computeDType(): DType {
    return this.input_layernorm.weight.dtype;
  }

  /**
   * h: the f32 residual stream [B, T, hidden]; returns the next one (f32) and the MoE auxiliary
   * loss when asked for and enabled.
   */
  forward(h: Tensor, options: DecoderLayerForwardOptions = {}): { hidden: Tensor; auxLoss: Tensor | null } {
    return tidy(() => {
      const dt = this.computeDType;
      const eps = this.input_layernorm.eps;
      const x = castTo(rmsNorm(h, this.input_layernorm.weight, eps), dt);
      let a: Tensor;
      if (this.attention instanceof LinearAttention) {
        const state = options.cache as LinearAttentionState | undefined;
        a = this.attention.forward(x, { ...(options.cuSeqlens ? { cuSeqlens: options.cuSeqlens } : {}), ...(state ? { state } : {}) });
      } else {
        const cache = options.cache as KVCache | undefined;
        a = this.attention.forward(x, { ...(options.cuSeqlens ? { cuSeqlens: options.cuSeqlens } : {}), ...(cache ? { cache } : {}) });
      }
      const h1 = add(h, castTo(a, 'f32'));
      const y = castTo(rmsNorm(h1, this.post_attention_layernorm.weight, this.post_attention_layernorm.eps), dt);
      let m: Tensor;
      let auxLoss: Tensor | null = null;
      if (this.mlp instanceof MoE && options.withAuxLoss) {
        const r = this.mlp.forwardWithAux(y);
        m = r.output;
        auxLoss = r.auxLoss;
      } else {
        m = this.mlp.forward(y);
      }
      return { hidden: add(h1, castTo(m, 'f32')), auxLoss };
    });
  }

  override extraRepr(): string {
    return `layer=${this.layerIdx}, attention=${this.attentionType}, mlp=${this.mlpType}`;
  }
}

export interface DecoderLayerForwardOptions {
  readonly cuSeqlens?: readonly number[] | Int32Array;
  /** This layer's sampling state: a LinearAttentionState (linear layers) or a KVCache (softmax layers). */
  readonly cache?: LinearAttentionState | KVCache;
  readonly withAuxLoss?: boolean;
}

/**
 * Sampling caches of every layer: LinearAttentionState (constant-size f32 state) for linear layers,
 * KVCache (post-RoPE keys/values) for softmax layers. All sequences of the batch advance together.
 */
export class RingLinearCache {
  readonly layers: readonly (LinearAttentionState | KVCache)[];
  readonly batchSize: number;
  #length = 0;

  constructor(layers: readonly (LinearAttentionState | KVCache)[], batchSize: number) {
    this.layers = layers;
    this.batchSize = batchSize;
  }

  /** Tokens processed so far (the position of the next token). */
  get length(): number {
    return this.#length;
  }

  /** @internal Called by the model after each forward. */
  advance(tokens: number): void {
    this.#length += tokens;
  }

  /** Bytes held by the caches (linear states are constant; KV buffers grow with the context). */
  get bytes(): number {
    let n = 0;
    for (const c of this.layers) {
      if (c instanceof LinearAttentionState) n += c.state.byteLength;
      else if (c.capacity > 0) n += c.keys.byteLength + c.values.byteLength;
    }
    return n;
  }

  dispose(): void {
    for (const c of this.layers) c.dispose();
  }
}

export interface ModelForwardOptions {
  /**
   * Packed training rows: input ids [1, total] holding sequences [cu[i], cu[i+1]); attention state
   * and RoPE positions restart at each offset. Not combined with a cache.
   */
  readonly cuSeqlens?: readonly number[] | Int32Array;
  /** Sampling: the caches from createCache(); they advance by T tokens. */
  readonly cache?: RingLinearCache;
  /** Also return the summed MoE sequence-wise auxiliary loss (when seqAuxLossAlpha > 0). */
  readonly withAuxLoss?: boolean;
}

function checkIds(ids: Tensor): [number, number] {
  if (ids.dtype !== 'i32') throw new DTypeError(`RingLinearForCausalLM: input ids must have dtype i32, got ${ids.dtype}`);
  if (ids.rank !== 2) throw new ShapeError(`RingLinearForCausalLM: input ids must have shape [batch, time], got ${describeShape(ids.shape)}`);
  if (ids.shape[1]! < 1) throw new ShapeError(`RingLinearForCausalLM: input ids need at least one token, got ${describeShape(ids.shape)}`);
  return [ids.shape[0]!, ids.shape[1]!];
}

function checkCuSeqlens(cu: readonly number[] | Int32Array, B: number, T: number): void {
  const a = Array.from(cu);
  const problems: string[] = [];
  if (B !== 1) problems.push(`packed rows need batch 1 (one row holding every sequence), got batch ${B}`);
  if (a.length < 2) problems.push(`cuSeqlens needs at least [0, T], got [${a.join(', ')}]`);
  else {
    if (a[0] !== 0) problems.push(`cuSeqlens must start at 0, got ${a[0]}`);
    if (a[a.length - 1] !== T) problems.push(`cuSeqlens must end at the row length ${T}, got ${a[a.length - 1]}`);
    for (let i = 1; i < a.length; i++) {
      if (!Number.isInteger(a[i]) || a[i]! <= a[i - 1]!) {
        problems.push(`cuSeqlens must be strictly increasing integers, got [${a.join(', ')}]`);
        break;
      }
    }
  }
  if (problems.length) throw new ShapeError(`RingLinearForCausalLM: ${problems.join('; ')}`);
}

/** The decoder: embedding, layers, final norm (f32). forward returns the normalized f32 hidden states. */
export class RingLinearModel extends Module {
  readonly word_embeddings: Embedding;
  readonly layers: ModuleList<RingLinearDecoderLayer>;
  readonly norm: RMSNorm;
  readonly config: RingLinearConfig;

  constructor(config: RingLinearConfig, options: RingLinearModelOptions = {}) {
    super();
    this.config = config;
    const dtype = options.dtype ?? 'f32';
    const kinds = layerTypesOf(config);
    const mlps = mlpTypesOf(config);
    this.word_embeddings = new Embedding(config.vocab_size, config.hidden_size, { dtype, generator: options.generator });
    this.layers = new ModuleList(kinds.map((attention, l) => new RingLinearDecoderLayer(config, l, { attention, mlp: mlps[l]! }, options)));
    this.norm = new RMSNorm(config.hidden_size, config.rms_norm_eps, { dtype: 'f32' });
  }

  /** Normalized final hidden states, f32 [B, T, hidden], and the summed MoE auxiliary loss. */
  forward(inputIds: Tensor, options: ModelForwardOptions = {}): { hidden: Tensor; auxLoss: Tensor | null } {
    const [B, T] = checkIds(inputIds);
    const { cuSeqlens, cache } = options;
    if (cuSeqlens && cache) throw new RingLinearError('RingLinearForCausalLM: cuSeqlens (packed training rows) and a sampling cache cannot be combined');
    if (cuSeqlens) checkCuSeqlens(cuSeqlens, B, T);
    if (cache) {
      if (cache.layers.length !== this.layers.length) {
        throw new RingLinearError(`RingLinearForCausalLM: the cache has ${cache.layers.length} layers, the model ${this.layers.length} (make it with createCache())`);
      }
      if (cache.batchSize !== B) throw new ShapeError(`RingLinearForCausalLM: the cache holds ${cache.batchSize} sequences, the input ids have batch ${B}`);
    }
    const result = tidy(() => {
      let h = castTo(this.word_embeddings.forward(inputIds), 'f32');
      let aux: Tensor | null = null;
      let l = 0;
      for (const layer of this.layers) {
        const r = layer.forward(h, {
          ...(cuSeqlens ? { cuSeqlens } : {}),
          ...(cache ? { cache: cache.layers[l]! } : {}),
          withAuxLoss: options.withAuxLoss ?? false,
        });
        h = r.hidden;
        if (r.auxLoss) aux = aux ? add(aux, r.auxLoss) : r.auxLoss;
        l++;
      }
      return { hidden: rmsNorm(h, this.norm.weight, this.norm.eps), auxLoss: aux };
    });
    cache?.advance(T);
    return result;
  }

  /** Casts embedding and layers to `dtype`; the final norm stays f32 (MODEL_SPEC §7). */
  override to(dtype: DType): this {
    this.word_embeddings.to(dtype);
    this.layers.to(dtype);
    return this;
  }
}

export interface CausalLMForwardOptions extends ModelForwardOptions {
  /**
   * Next-token targets, i32 [B, T] (targets[b, t] is the token that should follow position t;
   * `ignoreIndex` entries are skipped). With them the output has the cross-entropy loss, computed
   * in f32. nextTokenTargets() builds them from the ids (respecting packed boundaries).
   */
  readonly targets?: Tensor;
  readonly ignoreIndex?: number;
  /** Loss reduction (default 'mean' over the counted tokens). */
  readonly reduction?: CrossEntropyReduction;
  /**
   * Which logits to return: 'all' positions (default), 'last' (the last position of each row, or
   * of each packed sequence: [B, 1, V] / [1, nSeq, V]), or 'none' (only the loss).
   */
  readonly logits?: 'all' | 'last' | 'none';
}

export interface CausalLMOutput {
  /** f32 logits [B, T, V] ('all') or [B, 1, V] / [1, nSeq, V] ('last'); null with logits 'none'. */
  readonly logits: Tensor | null;
  /** Cross-entropy (f32) when targets were given. */
  readonly loss: Tensor | null;
  /** Summed MoE sequence-wise auxiliary loss when asked for (withAuxLoss) and enabled. */
  readonly auxLoss: Tensor | null;
}

export interface MoELayerLoad {
  readonly layer: number;
  /** Tokens per expert [E] i32 of the most recent forward; owned by the layer (do not dispose). */
  readonly load: Tensor;
}

export interface CreateCacheOptions {
  /** First capacity of the softmax layers' KV buffers in tokens (default 64; doubles when full). */
  readonly initialCapacity?: number;
}

/** The causal LM: `model` (RingLinearModel) and the f32 `lm_head`. */
export class RingLinearForCausalLM extends Module {
  readonly model: RingLinearModel;
  readonly lm_head: Linear;
  readonly config: RingLinearConfig;
  /** The Linear layers converted to FP8 (empty unless options.fp8). */
  readonly fp8Layers: readonly string[];

  constructor(config: RingLinearConfig, options: RingLinearModelOptions = {}) {
    super();
    // Accepts a config object that did not come from parseConfig (validates it once more).
    const c = 'extra' in config && typeof config.extra === 'object' ? config : parseConfig(config);
    this.config = c;
    const dtype = options.dtype ?? 'f32';
    if (!isFloatDType(dtype)) throw new DTypeError(`RingLinearForCausalLM: dtype must be a float dtype, got ${dtype}`);
    // Built with initializers off, then initialized once by the Hugging Face rule: one draw per weight.
    const build = () => {
      const model = new RingLinearModel(c, options);
      const lmHead = new Linear(c.hidden_size, c.vocab_size, { dtype: 'f32', generator: options.generator });
      return { model, lmHead };
    };
    const { model, lmHead } = options.initWeights === false ? build() : init.skipInit(build);
    this.model = model;
    this.lm_head = lmHead;
    if (c.tie_word_embeddings) {
      // Tied: the lm_head's weight IS the embedding Parameter (one tensor, two names).
      lmHead.weight.dispose();
      (this.lm_head as unknown as { weight: unknown }).weight = this.model.word_embeddings.weight;
    }
    if (options.initWeights !== false) {
      const std = c.initializer_range;
      this.apply(init.initWeights({ std, generator: options.generator }));
      this.apply(initMoEWeights({ std, generator: options.generator }));
    }
    this.fp8Layers = options.fp8
      ? toFp8(this, {
          ...(typeof options.fp8 === 'object' ? options.fp8 : {}),
          // lm_head stays f32 (§7); the experts run grouped GEMMs on their weights directly.
          filter: (name) => name !== 'lm_head' && !name.includes('.mlp.experts.') && !name.includes('.mlp.shared_experts.'),
        })
      : [];
  }

  /** Kinds of the layers, e.g. [{ attention: 'linear', mlp: 'dense' }, ...]. */
  get layerKinds(): { attention: LayerType; mlp: MlpType }[] {
    return [...this.model.layers].map((l) => ({ attention: l.attentionType, mlp: l.mlpType }));
  }

  /**
   * Training: logits and the loss for input ids [B, T] (or packed rows [1, total] with cuSeqlens).
   * Sampling: pass a cache from createCache(); each call continues where the last one ended
   * (prefill with the prompt, then one token at a time).
   */
  forward(inputIds: Tensor, options: CausalLMForwardOptions = {}): CausalLMOutput {
    const which = options.logits ?? 'all';
    if (which === 'none' && !options.targets) {
      throw new RingLinearError("RingLinearForCausalLM: logits 'none' needs targets (otherwise the forward computes nothing)");
    }
    if (options.targets) {
      const t = options.targets;
      if (t.dtype !== 'i32') throw new DTypeError(`RingLinearForCausalLM: targets must have dtype i32, got ${t.dtype}`);
      if (t.rank !== 2 || t.shape[0] !== inputIds.shape[0] || t.shape[1] !== inputIds.shape[1]) {
        throw new ShapeError(`RingLinearForCausalLM: targets must have the shape of the input ids ${describeShape(inputIds.shape)}, got ${describeShape(t.shape)}`);
      }
    }
    const { hidden, auxLoss } = this.model.forward(inputIds, options);
    try {
      return tidy(() => {
        let logits: Tensor | null = null;
        let loss: Tensor | null = null;
        if (options.targets) {
          const all = this.logitsOf(hidden);
          loss = crossEntropy(all, options.targets, { ignoreIndex: options.ignoreIndex ?? -100, reduction: options.reduction ?? 'mean' });
          if (which === 'all') logits = all;
          else if (which === 'last') logits = this.lastPositions(all, options.cuSeqlens);
        } else {
          // Only the positions asked for go through the lm_head.
          logits = which === 'all' ? this.logitsOf(hidden) : this.logitsOf(this.lastPositions(hidden, options.cuSeqlens));
        }
        return { logits, loss, auxLoss };
      });
    } finally {
      hidden.dispose();
    }
  }

  /** lm_head in f32 (MODEL_SPEC §7): a tied weight in a lower dtype is widened, not the input narrowed. */
  private logitsOf(h: Tensor): Tensor {
    const w = this.lm_head.weight;
    if (w.dtype === 'f32' && this.lm_head instanceof Linear) return this.lm_head.forward(h);
    return matmul(h, castTo(w, 'f32'), { transposeB: true });
  }

  private lastPositions(x: Tensor, cuSeqlens?: readonly number[] | Int32Array): Tensor {
    const T = x.shape[1]!;
    if (!cuSeqlens) return sliceAxis(x, 1, T - 1, T);
    const ends = Array.from(cuSeqlens).slice(1).map((e) => e - 1);
    return indexSelect(x, 1, tensor(Int32Array.from(ends), [ends.length], 'i32', findBackend(x.backend)));
  }

  /** Empty sampling caches for `batchSize` sequences. */
  createCache(batchSize = 1, options: CreateCacheOptions = {}): RingLinearCache {
    const layers = [...this.model.layers].map((l) =>
      l.attention instanceof LinearAttention ? l.attention.createState(batchSize) : (l.attention as SoftmaxAttention).createCache(options.initialCapacity ?? 64),
    );
    return new RingLinearCache(layers, batchSize);
  }

  /** The MoE layers with their indices. */
  moeLayers(): { layer: number; moe: MoE }[] {
    return [...this.model.layers].flatMap((l) => (l.mlp instanceof MoE ? [{ layer: l.layerIdx, moe: l.mlp }] : []));
  }

  /** Tokens per expert of each MoE layer's most recent forward (for the trainer's logging/balancing). */
  moeLoads(): MoELayerLoad[] {
    return this.moeLayers().flatMap(({ layer, moe }) => (moe.lastLoad ? [{ layer, load: moe.lastLoad }] : []));
  }

  /** Load statistics (max/mean imbalance, ...) of each MoE layer's most recent forward. */
  async loadStatistics(): Promise<{ layer: number; statistics: LoadStatistics }[]> {
    const out: { layer: number; statistics: LoadStatistics }[] = [];
    for (const { layer, moe } of this.moeLayers()) if (moe.lastLoad) out.push({ layer, statistics: await moe.loadStatistics() });
    return out;
  }

  /**
   * The auxiliary-loss-free balancing step of every MoE layer (MODEL_SPEC §4): expert_bias +=
   * rate * sign(mean load - load) with the load of the training forwards since the last call.
   * Call once per optimizer step.
   */
  updateExpertBias(rate?: number): void {
    for (const { moe } of this.moeLayers()) if (moe.pendingLoad) moe.updateExpertBias(rate !== undefined ? { rate } : {});
  }

  /** Casts the model (not the f32 final norm and lm_head, nor the f32 router) to `dtype`. */
  override to(dtype: DType): this {
    if (!isFloatDType(dtype)) throw new DTypeError(`RingLinearForCausalLM.to: expected a float dtype, got ${dtype}`);
    this.model.to(dtype);
    return this;
  }

  override extraRepr(): string {
    const c = this.config;
    return `layers=${c.num_hidden_layers}, hidden=${c.hidden_size}, vocab=${c.vocab_size}`;
  }
}

/**
 * Next-token targets for input ids [B, T] (host ids: number arrays or an Int32Array per row):
 * targets[t] = ids[t + 1], and `ignoreIndex` at the last position of each row, or of each packed
 * sequence when cuSeqlens is given (so no target crosses a sequence boundary). Returns i32 [B, T].
 */
export function nextTokenTargets(
  ids: readonly (readonly number[] | Int32Array)[],
  options: { cuSeqlens?: readonly number[] | Int32Array; ignoreIndex?: number } = {},
): Tensor {
  const ignore = options.ignoreIndex ?? -100;
  const B = ids.length;
  const T = ids[0]?.length ?? 0;
  const out = new Int32Array(B * T);
  const ends = new Set<number>(options.cuSeqlens ? Array.from(options.cuSeqlens).slice(1).map((e) => e - 1) : [T - 1]);
  for (let b = 0; b < B; b++) {
    const row = ids[b]!;
    if (row.length !== T) throw new ShapeError(`nextTokenTargets: rows must have one length, row 0 has ${T}, row ${b} has ${row.length}`);
    for (let t = 0; t < T; t++) out[b * T + t] = ends.has(t) ? ignore : row[t + 1]!;
  }
  return tensor(out, [B, T], 'i32');
}
