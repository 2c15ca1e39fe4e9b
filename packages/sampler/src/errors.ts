/**
 * Typed errors of the sampler. Each says what was expected and what came, and is thrown before any
 * model work is enqueued (validation runs on the host over the prompts and options first).
 */
import { RingLinearError } from '@ring-linear/core';

/** Base class of the sampler's errors. */
export class SamplerError extends RingLinearError {}

/** Sampling or generation options that are out of range or contradict each other; lists every problem. */
export class SamplingOptionsError extends SamplerError {
  /** One line per problem, e.g. "topP must be in (0, 1], got 0". */
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid sampling options (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`);
    this.problems = [...problems];
  }
}

/** A prompt that cannot be generated from: empty, or holding ids outside the vocabulary. */
export class PromptError extends SamplerError {}

/** A prompt (plus the tokens asked for) longer than the model's max_position_embeddings. */
export class ContextLengthError extends SamplerError {
  constructor(
    message: string,
    /** Index of the offending prompt in the batch. */
    readonly sequence: number,
    /** Positions the request needs (prompt length + maxTokens). */
    readonly needed: number,
    /** The model's max_position_embeddings. */
    readonly limit: number,
  ) {
    super(message);
  }
}

/** Logits the sampler cannot draw from (NaN, +Infinity, or every entry -Infinity). */
export class InvalidLogitsError extends SamplerError {}

/**
 * Generation stopped by an AbortSignal. `partial` holds what each sequence had generated when the
 * signal was seen (finishReason 'abort'); `cause` is the signal's reason.
 */
export class GenerationAbortedError extends SamplerError {
  constructor(
    readonly partial: readonly import('./types.js').GenerationResult[],
    options?: { cause?: unknown },
  ) {
    super('generation aborted by its AbortSignal');
    if (options && 'cause' in options) (this as { cause?: unknown }).cause = options.cause;
  }
}
