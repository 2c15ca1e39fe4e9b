/**
 * MoE layer modules (MODEL_SPEC §4, checkpoint names §6):
 *
 *   mlp.gate.weight              [E, hidden] f32     the router (stays f32 under to('bf16'))
 *   mlp.gate.expert_bias         [E] f32             selection-only bias (not trained by gradient)
 *   mlp.experts.E.{gate_proj,up_proj,down_proj}.weight   routed SwiGLU experts
 *   mlp.shared_experts.{gate_proj,up_proj,down_proj}.weight
 *
 * Storage choice: every expert keeps its own Parameters (a ModuleList of SwiGLUMLP), so checkpoint
 * names map one to one, optimizers see one tensor per expert weight, and nothing is duplicated.
 * The forward still runs all experts in one grouped GEMM per projection: `groupedMatmul` takes the
 * list of per-expert weights as its inputs (no stacking copy), and its backward returns one
 * gradient per expert.
 *
 * Forward for N tokens (x [..., hidden] flattened to [N, hidden]):
 *   route -> dispatch plan (stable sort of the N*K slots by expert) -> permute rows [N*K, hidden]
 *   -> grouped gate/up GEMMs -> silu(g) * u -> grouped down GEMM -> combine over k = 0..K-1
 *   -> + shared experts(x)
 * Dropless: every token reaches its K experts, and no capacity factor can drop one. What the
 * backward keeps of the routed path: two N*K-row buffers of hidden (the permuted input, the expert
 * outputs) and four of intermediate (gate, up, silu(gate), their product):
 *   N * K * (2 * hidden + 4 * moe_intermediate) * bytesPerElement   (+ N * E * 4 of f32 scores)
 * whatever the distribution of tokens over experts; the backward adds transients of the same order.
 */
import {
  AttrError,
  DTypeError,
  Module,
  ModuleError,
  ModuleList,
  Parameter,
  RingLinearError,
  ShapeError,
  SwiGLUMLP,
  add,
  describeShape,
  findBackend,
  full,
  init,
  isFloatDType,
  keep,
  mul,
  noGrad,
  reshape,
  silu,
  tensor,
  tidy,
  type DType,
  type Generator,
  type SwiGLUMLPOptions,
  type Tensor,
} from '@ring-linear/core';
import { checkRoutingShape, moeRouter, type MoeRouting, type ScoreFunction } from './ops/router.js';
import { moeCombine, moeDispatchPlan, moePermute } from './ops/dispatch.js';
import { groupedMatmul } from './ops/grouped_matmul.js';
import { DEFAULT_BIAS_UPDATE_RATE, readLoadStatistics, sequenceAuxLoss, updateExpertBias, type LoadStatistics } from './balance.js';

/** MoE layer settings (Hugging Face config names in the comments; see moeConfigFromHf). */
export interface MoEConfig {
  /** hidden_size */
  readonly hiddenSize: number;
  /** num_experts (E) */
  readonly numExperts: number;
  /** num_experts_per_tok (K) */
  readonly numExpertsPerTok: number;
  /** moe_intermediate_size */
  readonly moeIntermediateSize: number;
  /** num_shared_experts (default 0) */
  readonly numSharedExperts?: number;
  /** moe_shared_expert_intermediate_size (default moeIntermediateSize) */
  readonly moeSharedExpertIntermediateSize?: number;
  /** n_group (default 1) */
  readonly nGroup?: number;
  /** topk_group (default nGroup) */
  readonly topkGroup?: number;
  /** score_function (default 'sigmoid') */
  readonly scoreFunction?: ScoreFunction;
  /** norm_topk_prob (default true) */
  readonly normTopkProb?: boolean;
  /** routed_scaling_factor (default 1) */
  readonly routedScalingFactor?: number;
  /** Rate u of the auxiliary-loss-free bias update (default 1e-3). */
  readonly biasUpdateRate?: number;
  /** Coefficient of the sequence-wise auxiliary loss; 0 (default) turns it off. */
  readonly seqAuxLossAlpha?: number;
}

export type ResolvedMoEConfig = Required<MoEConfig>;

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new AttrError(`MoE: '${name}' must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function finiteNumber(name: string, v: unknown, min = -Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
    throw new AttrError(`MoE: '${name}' must be a finite number${min > -Infinity ? ` >= ${min}` : ''}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Fills defaults and validates (AttrError naming the field and the limit). */
export function resolveMoEConfig(c: MoEConfig): ResolvedMoEConfig {
  const nGroup = positiveInt('nGroup', c.nGroup ?? 1);
  const numShared = c.numSharedExperts ?? 0;
  if (!Number.isInteger(numShared) || numShared < 0) throw new AttrError(`MoE: 'numSharedExperts' must be an integer >= 0, got ${numShared}`);
  const scoreFunction = c.scoreFunction ?? 'sigmoid';
  if (scoreFunction !== 'sigmoid' && scoreFunction !== 'softmax') {
    throw new AttrError(`MoE: 'scoreFunction' must be 'sigmoid' or 'softmax', got ${JSON.stringify(scoreFunction)}`);
  }
  const r: ResolvedMoEConfig = {
    hiddenSize: positiveInt('hiddenSize', c.hiddenSize),
    numExperts: positiveInt('numExperts', c.numExperts),
    numExpertsPerTok: positiveInt('numExpertsPerTok', c.numExpertsPerTok),
    moeIntermediateSize: positiveInt('moeIntermediateSize', c.moeIntermediateSize),
    numSharedExperts: numShared,
    moeSharedExpertIntermediateSize: positiveInt('moeSharedExpertIntermediateSize', c.moeSharedExpertIntermediateSize ?? c.moeIntermediateSize),
    nGroup,
    topkGroup: positiveInt('topkGroup', c.topkGroup ?? nGroup),
    scoreFunction,
    normTopkProb: c.normTopkProb ?? true,
    routedScalingFactor: finiteNumber('routedScalingFactor', c.routedScalingFactor ?? 1),
    biasUpdateRate: finiteNumber('biasUpdateRate', c.biasUpdateRate ?? DEFAULT_BIAS_UPDATE_RATE, 0),
    seqAuxLossAlpha: finiteNumber('seqAuxLossAlpha', c.seqAuxLossAlpha ?? 0, 0),
  };
  if (typeof r.normTopkProb !== 'boolean') throw new AttrError(`MoE: 'normTopkProb' must be a boolean, got ${JSON.stringify(r.normTopkProb)}`);
  checkRoutingShape('MoE', r.numExperts, { topK: r.numExpertsPerTok, nGroup: r.nGroup, topkGroup: r.topkGroup });
  return r;
}

/**
 * The MoE fields of a Hugging Face config.json (BailingMoeLinearV2 names, MODEL_SPEC §4-5) as an
 * MoEConfig. Absent optional fields take the defaults of MoEConfig.
 */
export function moeConfigFromHf(hf: Readonly<Record<string, unknown>>): MoEConfig {
  const opt = <T>(name: string, kind: 'number' | 'boolean' | 'string'): T | undefined => {
    const v = hf[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== kind) throw new AttrError(`moeConfigFromHf: '${name}' must be a ${kind}, got ${JSON.stringify(v)}`);
    return v as T;
  };
  const req = (name: string): number => {
    const v = opt<number>(name, 'number');
    if (v === undefined) throw new AttrError(`moeConfigFromHf: '${name}' is required`);
    return v;
  };
  const scoreFunction = opt<string>('score_function', 'string');
  return resolveMoEConfig({
    hiddenSize: req('hidden_size'),
    numExperts: req('num_experts'),
    numExpertsPerTok: req('num_experts_per_tok'),
    moeIntermediateSize: req('moe_intermediate_size'),
    ...defined('numSharedExperts', opt<number>('num_shared_experts', 'number')),
    ...defined('moeSharedExpertIntermediateSize', opt<number>('moe_shared_expert_intermediate_size', 'number')),
    ...defined('nGroup', opt<number>('n_group', 'number')),
    ...defined('topkGroup', opt<number>('topk_group', 'number')),
    ...defined('scoreFunction', scoreFunction as ScoreFunction | undefined),
    ...defined('normTopkProb', opt<boolean>('norm_topk_prob', 'boolean')),
    ...defined('routedScalingFactor', opt<number>('routed_scaling_factor', 'number')),
  });
}

function defined<K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: V };
}

export interface MoEGateOptions {
  readonly nGroup?: number;
  readonly topkGroup?: number;
  readonly scoreFunction?: ScoreFunction;
  readonly normTopkProb?: boolean;
  readonly routedScalingFactor?: number;
  readonly generator?: Generator;
}

/**
 * The router module: `weight` [E, hidden] and `expert_bias` [E], both f32 always (MODEL_SPEC §4,
 * §7): to() leaves them alone. The weight starts as a Linear's would (kaiming uniform, a = sqrt 5),
 * the bias at zeros; `expert_bias.requiresGrad` is false (it follows the balancing rule).
 */
export class MoEGate extends Module {
  readonly hiddenSize: number;
  readonly numExperts: number;
  readonly topK: number;
  readonly nGroup: number;
  readonly topkGroup: number;
  readonly scoreFunction: ScoreFunction;
  readonly normTopkProb: boolean;
  readonly routedScalingFactor: number;
  readonly weight: Parameter;
  readonly expert_bias: Parameter;

  constructor(hiddenSize: number, numExperts: number, topK: number, options: MoEGateOptions = {}) {
    super();
    this.hiddenSize = positiveInt('hiddenSize', hiddenSize);
    this.numExperts = positiveInt('numExperts', numExperts);
    this.topK = positiveInt('topK', topK);
    this.nGroup = options.nGroup ?? 1;
    this.topkGroup = options.topkGroup ?? this.nGroup;
    checkRoutingShape('MoEGate', numExperts, { topK, nGroup: this.nGroup, topkGroup: this.topkGroup });
    this.scoreFunction = options.scoreFunction ?? 'sigmoid';
    this.normTopkProb = options.normTopkProb ?? true;
    this.routedScalingFactor = options.routedScalingFactor ?? 1;
    this.weight = new Parameter(full([numExperts, hiddenSize], 0, 'f32'));
    this.expert_bias = new Parameter(full([numExperts], 0, 'f32'), { requiresGrad: false });
    init.kaimingUniform_(this.weight, { a: Math.sqrt(5), generator: options.generator });
  }

  /** Routes tokens x [N, hidden] (any float dtype; computed in f32). */
  route(x: Tensor): MoeRouting {
    return moeRouter(x, this.weight, this.expert_bias, {
      topK: this.topK,
      nGroup: this.nGroup,
      topkGroup: this.topkGroup,
      scoreFunction: this.scoreFunction,
      normTopkProb: this.normTopkProb,
      routedScalingFactor: this.routedScalingFactor,
    });
  }

  /** The router stays f32 whatever the model is cast to (MODEL_SPEC §4, §7). */
  override to(dtype: DType): this {
    if (!isFloatDType(dtype)) throw new ModuleError(`Module.to: expected a float dtype (f32, f16, bf16, f8e4m3, f8e5m2), got ${dtype}`);
    return this;
  }

  override extraRepr(): string {
    const groups = this.nGroup > 1 ? `, nGroup=${this.nGroup}, topkGroup=${this.topkGroup}` : '';
    return `hiddenSize=${this.hiddenSize}, numExperts=${this.numExperts}, topK=${this.topK}${groups}, scoreFunction=${this.scoreFunction}`;
  }
}

/** The dense SwiGLU MLP of the first layers (l < first_k_dense_replace): names gate_proj, up_proj, down_proj. */
export class DenseMLP extends SwiGLUMLP {
  readonly hiddenSize: number;
  readonly intermediateSize: number;

  constructor(hiddenSize: number, intermediateSize: number, options: SwiGLUMLPOptions = {}) {
    super(hiddenSize, intermediateSize, options);
    this.hiddenSize = hiddenSize;
    this.intermediateSize = intermediateSize;
  }

  override extraRepr(): string {
    return `hiddenSize=${this.hiddenSize}, intermediateSize=${this.intermediateSize}`;
  }
}

export interface MoEOptions {
  /** Dtype of the expert weights (default f32); the router is f32 always. */
  readonly dtype?: DType;
  readonly generator?: Generator;
}

export interface MoEOutput {
  /** The layer output, x's shape and dtype. */
  readonly output: Tensor;
  /** alpha * sequence-wise balance loss (scalar f32), or null when seqAuxLossAlpha is 0. */
  readonly auxLoss: Tensor | null;
}

/** SwiGLU of every row segment with its expert's weights: down(silu(gate x) * up x), grouped. */
function groupedSwiGLU(x: Tensor, offsets: Tensor, mlps: readonly SwiGLUMLP[]): Tensor {
  const g = groupedMatmul(x, mlps.map((m) => m.gate_proj.weight), offsets);
  const u = groupedMatmul(x, mlps.map((m) => m.up_proj.weight), offsets);
  return groupedMatmul(mul(silu(g), u), mlps.map((m) => m.down_proj.weight), offsets);
}

/**
 * A Mixture-of-Experts layer: router `gate`, routed `experts`, optional `shared_experts`
 * (MODEL_SPEC §4). `forward(x)` takes x [..., hidden] in the experts' dtype.
 *
 * Balancing: in training mode every forward adds its tokens-per-expert to `pendingLoad`; the
 * trainer calls `updateExpertBias()` once per optimizer step (after the micro-batches), which
 * applies expert_bias += u * sign(mean - load) and clears it. `lastLoad` is the most recent
 * forward's load (also in eval mode), for logging (`loadStatistics()`).
 */
export class MoE extends Module {
  readonly config: ResolvedMoEConfig;
  readonly gate: MoEGate;
  readonly experts: ModuleList<SwiGLUMLP>;
  readonly shared_experts: SwiGLUMLP | null;
  #lastLoad: Tensor | null = null;
  #pendingLoad: Tensor | null = null;

  constructor(config: MoEConfig, options: MoEOptions = {}) {
    super();
    const c = resolveMoEConfig(config);
    this.config = c;
    const generator = options.generator;
    this.gate = new MoEGate(c.hiddenSize, c.numExperts, c.numExpertsPerTok, {
      nGroup: c.nGroup,
      topkGroup: c.topkGroup,
      scoreFunction: c.scoreFunction,
      normTopkProb: c.normTopkProb,
      routedScalingFactor: c.routedScalingFactor,
      generator,
    });
    const mlp = { dtype: options.dtype, generator };
    this.experts = new ModuleList(Array.from({ length: c.numExperts }, () => new SwiGLUMLP(c.hiddenSize, c.moeIntermediateSize, mlp)));
    this.shared_experts = c.numSharedExperts > 0 ? new SwiGLUMLP(c.hiddenSize, c.moeSharedExpertIntermediateSize * c.numSharedExperts, mlp) : null;
  }

  forward(x: Tensor): Tensor {
    return this.run(x, false).output;
  }

  /**
   * The output and the sequence-wise auxiliary loss (when seqAuxLossAlpha > 0): x [B, T, hidden]
   * holds B sequences of T tokens; x [T, hidden] one sequence.
   */
  forwardWithAux(x: Tensor): MoEOutput {
    return this.run(x, true);
  }

  private run(x: Tensor, withAux: boolean): MoEOutput {
    const c = this.config;
    if (x.rank < 1 || x.shape[x.rank - 1] !== c.hiddenSize) {
      throw new ShapeError(`MoE: expected input [..., ${c.hiddenSize}], got ${describeShape(x.shape)}`);
    }
    const expertDType = this.experts.at(0).gate_proj.weight.dtype;
    if (x.dtype !== expertDType) {
      throw new DTypeError(`MoE: the input has dtype ${x.dtype}, the experts' weights ${expertDType} (cast the input, or the module with to())`);
    }
    return tidy(() => {
      const n = x.size / c.hiddenSize;
      const x2 = reshape(x, [n, c.hiddenSize]);
      const routing = this.gate.route(x2);
      const plan = moeDispatchPlan(routing.indices, c.numExperts);
      this.recordLoad(plan.tokensPerExpert);
      const xp = moePermute(x2, plan.rowToSlot, plan.slotToRow);
      const yp = groupedSwiGLU(xp, plan.offsets, [...this.experts]);
      let y = moeCombine(yp, routing.weights, plan.slotToRow, plan.rowToSlot);
      if (this.shared_experts) {
        // One segment holding every token: the same batch-invariant GEMM as the routed experts.
        const all = tensor(Int32Array.of(0, n), [2], 'i32', findBackend(x.backend));
        y = add(y, groupedSwiGLU(x2, all, [this.shared_experts]));
      }
      let auxLoss: Tensor | null = null;
      if (withAux && c.seqAuxLossAlpha > 0) {
        const seqs = x.rank >= 3 ? x.shape.slice(0, -2).reduce((a, b) => a * b, 1) : 1;
        const t = seqs > 0 ? n / seqs : 0;
        auxLoss = sequenceAuxLoss(
          reshape(routing.scores, [seqs, t, c.numExperts]),
          reshape(routing.indices, [seqs, t, c.numExpertsPerTok]),
          { alpha: c.seqAuxLossAlpha },
        );
      }
      return { output: reshape(y, x.shape), auxLoss };
    });
  }

  /** Keeps the forward's load: as lastLoad always, added to pendingLoad in training mode. */
  private recordLoad(counts: Tensor): void {
    noGrad(() => {
      const prev = this.#lastLoad;
      this.#lastLoad = keep(reshape(counts, counts.shape));
      prev?.dispose();
      if (this.training) {
        const pending = this.#pendingLoad;
        this.#pendingLoad = keep(pending ? add(pending, counts) : reshape(counts, counts.shape));
        pending?.dispose();
      }
    });
  }

  /** Tokens per expert [E] i32 of the most recent forward (null before the first). */
  get lastLoad(): Tensor | null {
    return this.#lastLoad;
  }

  /** Tokens per expert [E] i32 summed over the training-mode forwards since the last bias update. */
  get pendingLoad(): Tensor | null {
    return this.#pendingLoad;
  }

  /**
   * The auxiliary-loss-free bias update: gate.expert_bias += rate * sign(mean(load) - load), with
   * the load of the training forwards since the last update (or `options.load`), then clears the
   * pending load. Call once per optimizer step.
   */
  updateExpertBias(options: { readonly load?: Tensor; readonly rate?: number } = {}): void {
    const load = options.load ?? this.#pendingLoad;
    if (!load) {
      throw new RingLinearError('MoE.updateExpertBias: no load recorded since the last update (run a forward in training mode, or pass options.load)');
    }
    updateExpertBias(this.gate.expert_bias, load, options.rate ?? this.config.biasUpdateRate);
    this.#pendingLoad?.dispose();
    this.#pendingLoad = null;
  }

  /** Statistics of the most recent forward's load (async read; for logging). */
  async loadStatistics(): Promise<LoadStatistics> {
    if (!this.#lastLoad) throw new RingLinearError('MoE.loadStatistics: no forward has run yet');
    return readLoadStatistics(this.#lastLoad);
  }

  override dispose(): void {
    this.#lastLoad?.dispose();
    this.#pendingLoad?.dispose();
    this.#lastLoad = null;
    this.#pendingLoad = null;
    super.dispose();
  }

  override extraRepr(): string {
    const c = this.config;
    return `hiddenSize=${c.hiddenSize}, numExperts=${c.numExperts}, topK=${c.numExpertsPerTok}, moeIntermediateSize=${c.moeIntermediateSize}, numSharedExperts=${c.numSharedExperts}`;
  }
}

export interface InitMoEWeightsOptions {
  /** Standard deviation of the router weight draws (initializer_range; default 0.02). */
  readonly std?: number;
  readonly generator?: Generator;
}

/**
 * For Module.apply() next to core's init.initWeights (which covers the experts' Linear layers):
 * router weights ~ N(0, std^2), expert biases 0.
 */
export function initMoEWeights(options: InitMoEWeightsOptions = {}): (m: Module) => void {
  const std = options.std ?? 0.02;
  return (m) => {
    if (m instanceof MoEGate) {
      init.normal_(m.weight, { std, generator: options.generator });
      init.zeros_(m.expert_bias);
    }
  };
}
