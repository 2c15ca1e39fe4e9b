/**
 * Public types of the sampler: what a model must offer, the options, and what generation returns.
 */
import type { Tensor } from '@ring-linear/core';
import type { RingLinearCache, CreateCacheOptions } from '@ring-linear/models';

/**
 * What the sampler needs from a causal LM (RingLinearForCausalLM has it): the config fields below,
 * a forward that continues a cache, and createCache. Every forward goes through the model's own
 * layers and kernels: the sampler adds no model math of its own (MODEL_SPEC §7).
 */
export interface SamplerModel {
  readonly config: {
    readonly vocab_size: number;
    readonly max_position_embeddings: number;
    readonly eos_token_id: number | readonly number[] | null;
  };
  forward(inputIds: Tensor, options: { cache: RingLinearCache; logits: 'last' | 'all' }): { logits: Tensor | null };
  createCache(batchSize?: number, options?: CreateCacheOptions): RingLinearCache;
  /** The parameters (their backend is where the input ids are placed). */
  parameters(): readonly Tensor[];
}

/**
 * How the next token is chosen from a row of logits z (docs/sampling.md has the formulas). Order:
 * penalties -> temperature -> top-k -> top-p -> min-p -> draw.
 */
export interface SamplingOptions {
  /** Divides the logits; 0 means greedy (argmax after penalties, filters ignored). Default 1. */
  readonly temperature?: number;
  /** Keep the k most likely tokens (ties: lower id first); 0 = off (default). */
  readonly topK?: number;
  /** Nucleus: keep the smallest most-likely-first prefix with probability mass >= topP, in (0, 1]; 1 = off (default). */
  readonly topP?: number;
  /** Keep tokens with p >= minP * p_max, in [0, 1]; 0 = off (default). */
  readonly minP?: number;
  /**
   * Hugging Face repetition penalty over the prompt and the generated tokens: a seen token's logit
   * z becomes z / r when z > 0, z * r otherwise. > 0; 1 = off (default).
   */
  readonly repetitionPenalty?: number;
  /** OpenAI presence penalty over the generated tokens: z -= presencePenalty if the token occurred. Default 0. */
  readonly presencePenalty?: number;
  /** OpenAI frequency penalty over the generated tokens: z -= frequencyPenalty * count. Default 0. */
  readonly frequencyPenalty?: number;
  /**
   * Seed of the Philox stream of the draws (a safe integer or a bigint). With one seed, step t of
   * sequence i uses Philox counter (t, i) under key = seed; with one seed per prompt (an array),
   * sequence i uses key = seeds[i] and counter (t, 0), so generate(p, { seed: s }) draws exactly
   * what p draws inside a batch with seeds[i] = s. Either way a seed reproduces its tokens on every
   * backend given equal logits. Default: a seed taken from core's default generator (manualSeed()
   * reproduces it).
   */
  readonly seed?: number | bigint | readonly (number | bigint)[];
}

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate per sequence (>= 1). Default min(256, room left before max_position_embeddings). */
  readonly maxTokens?: number;
  /** Stop when the generated text contains one of these (matched on the detokenized text, across token boundaries). Needs a tokenizer. */
  readonly stop?: string | readonly string[];
  /** Leave the matched stop string in the text (default false: the text ends before it). */
  readonly includeStopString?: boolean;
  /** End-of-sequence ids; default the config's eos_token_id and the tokenizer's EOS. */
  readonly eosTokenIds?: number | readonly number[];
  /** Keep generating past EOS (default false). */
  readonly ignoreEos?: boolean;
  /** Also report the n most likely alternatives of each step (unmodified distribution), n >= 0. Default 0. */
  readonly topLogprobs?: number;
  /** Cancels generation: the stream throws / generate() rejects with GenerationAbortedError. */
  readonly signal?: AbortSignal;
  /** Leave special tokens (BOS/EOS/PAD, ...) out of the text (default true). */
  readonly skipSpecialTokens?: boolean;
  /** For string prompts: passed to tokenizer.encode (default: the tokenizer's own default). */
  readonly addSpecialTokens?: boolean;
  /** Prompts longer than this are prefilled in segments of this many tokens (bounds activation memory). Default 512. */
  readonly prefillChunkSize?: number;
  /** First capacity (tokens) of the softmax layers' KV buffers; they double when full. Default 64. */
  readonly initialKvCapacity?: number;
}

export type FinishReason = 'eos' | 'stop' | 'length' | 'abort';

export interface TokenLogprob {
  readonly token: number;
  /** f32 log-probability under the unmodified distribution (log-softmax of the raw logits). */
  readonly logprob: number;
}

/** One generated token, as the stream yields it. */
export interface TokenEvent {
  /** Index of the prompt in the batch (0 for a single prompt). */
  readonly sequence: number;
  /** 0-based index of this token among the sequence's generated tokens. */
  readonly index: number;
  readonly token: number;
  /**
   * Text this token adds. May be '' while an incomplete UTF-8 character or a possible start of a
   * stop string is held back; that text comes with a later token (at the latest the last one).
   */
  readonly text: string;
  /** f32 log-probability of `token` under the unmodified distribution. */
  readonly logprob: number;
  /** The `topLogprobs` most likely tokens of this step (most likely first; ties: lower id first). */
  readonly topLogprobs?: readonly TokenLogprob[];
  /** Set on the sequence's last token. */
  readonly finishReason: FinishReason | null;
  /** The stop string that ended the sequence (finishReason 'stop'). */
  readonly stopString?: string;
}

/** Bytes of sampling state held for ONE sequence (a batch's buffers divided by its size). */
export interface CacheMemory {
  /** Tokens processed (prompt + fed generated tokens): the position of the next token. */
  readonly tokens: number;
  /** All linear-attention layers' f32 states: constant, whatever the context length. */
  readonly linearStateBytes: number;
  /** Softmax layers' KV buffers as allocated (capacity rows; grows by doubling). */
  readonly kvCacheBytes: number;
  /** The valid part of the KV buffers (tokens rows): grows linearly with the context. */
  readonly kvCacheUsedBytes: number;
  /** linearStateBytes + kvCacheBytes. */
  readonly totalBytes: number;
  readonly layers: readonly { readonly layer: number; readonly kind: 'linear' | 'softmax'; readonly bytes: number; readonly usedBytes: number }[];
}

export interface GenerationResult {
  readonly sequence: number;
  readonly promptTokens: readonly number[];
  /** Generated ids (including the EOS id or the token that completed a stop string). */
  readonly tokens: number[];
  /** Detokenized generated text ('' without a tokenizer); excludes the stop string unless includeStopString. */
  text: string;
  /** f32 log-probability of each generated token under the unmodified distribution. */
  readonly logprobs: number[];
  /** Per token, the top alternatives (only when topLogprobs > 0). */
  readonly topLogprobs?: (readonly TokenLogprob[])[];
  finishReason: FinishReason | null;
  stopString?: string;
  /** Sampling state held for this sequence when it finished. */
  memory: CacheMemory | null;
}
