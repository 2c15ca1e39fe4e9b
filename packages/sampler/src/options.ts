/**
 * Validation of the options and prompts, all on the host before any model work: every problem of
 * the options in one SamplingOptionsError; prompts and context length get PromptError and
 * ContextLengthError naming the prompt.
 */
import { ContextLengthError, PromptError, SamplingOptionsError } from './errors.js';
import { DEFAULT_SAMPLING, type SamplingParams } from './strategies.js';
import type { GenerateOptions, SamplingOptions } from './types.js';

/** Default maxTokens when none is given (capped by the room left in the context). */
export const DEFAULT_MAX_TOKENS = 256;
export const DEFAULT_PREFILL_CHUNK = 512;

const isNum = (v: unknown): v is number => typeof v === 'number' && !Number.isNaN(v);
const show = (v: unknown) => (typeof v === 'bigint' ? `${v}n` : typeof v === 'string' ? JSON.stringify(v) : String(v));

/** Checks the sampling fields, pushing one line per problem; returns them with defaults filled in. */
function samplingParams(o: SamplingOptions, problems: string[]): SamplingParams {
  const p = { ...DEFAULT_SAMPLING };
  if (o.temperature !== undefined) {
    if (!isNum(o.temperature) || !Number.isFinite(o.temperature) || o.temperature < 0) problems.push(`temperature must be a finite number >= 0 (0: greedy), got ${show(o.temperature)}`);
    else p.temperature = o.temperature;
  }
  if (o.topK !== undefined) {
    if (!Number.isInteger(o.topK) || o.topK < 0) problems.push(`topK must be an integer >= 0 (0: off), got ${show(o.topK)}`);
    else p.topK = o.topK;
  }
  if (o.topP !== undefined) {
    if (!isNum(o.topP) || !(o.topP > 0 && o.topP <= 1)) problems.push(`topP must be in (0, 1] (1: off), got ${show(o.topP)}`);
    else p.topP = o.topP;
  }
  if (o.minP !== undefined) {
    if (!isNum(o.minP) || !(o.minP >= 0 && o.minP <= 1)) problems.push(`minP must be in [0, 1] (0: off), got ${show(o.minP)}`);
    else p.minP = o.minP;
  }
  if (o.repetitionPenalty !== undefined) {
    if (!isNum(o.repetitionPenalty) || !Number.isFinite(o.repetitionPenalty) || o.repetitionPenalty <= 0) {
      problems.push(`repetitionPenalty must be a finite number > 0 (1: off), got ${show(o.repetitionPenalty)}`);
    } else p.repetitionPenalty = o.repetitionPenalty;
  }
  for (const k of ['presencePenalty', 'frequencyPenalty'] as const) {
    const v = o[k];
    if (v === undefined) continue;
    if (!isNum(v) || !Number.isFinite(v)) problems.push(`${k} must be a finite number (0: off), got ${show(v)}`);
    else p[k] = v;
  }
  const okSeed = (v: unknown) => typeof v === 'bigint' || Number.isSafeInteger(v);
  if (o.seed !== undefined && !(Array.isArray(o.seed) ? o.seed.length > 0 && o.seed.every(okSeed) : okSeed(o.seed))) {
    problems.push(`seed must be a safe integer or a bigint, or a non-empty array of them (one per prompt), got ${Array.isArray(o.seed) ? `[${o.seed.map(show).join(', ')}]` : show(o.seed)}`);
  }
  return p;
}

/** Sampling options checked and completed with the defaults (SamplingOptionsError lists every problem). */
export function resolveSamplingOptions(o: SamplingOptions = {}): SamplingParams {
  const problems: string[] = [];
  const p = samplingParams(o, problems);
  if (problems.length) throw new SamplingOptionsError(problems);
  return p;
}

export interface ResolvedGenerateOptions {
  readonly sampling: SamplingParams;
  readonly seed: number | bigint | readonly (number | bigint)[] | undefined;
  readonly maxTokens: number | undefined;
  readonly stop: readonly string[];
  readonly includeStopString: boolean;
  readonly eosTokenIds: readonly number[] | undefined;
  readonly ignoreEos: boolean;
  readonly topLogprobs: number;
  readonly signal: AbortSignal | undefined;
  readonly skipSpecialTokens: boolean;
  readonly addSpecialTokens: boolean | undefined;
  readonly prefillChunkSize: number;
  readonly initialKvCapacity: number;
}

/** Every option checked (one SamplingOptionsError with all problems); vocab bounds the ids. */
export function resolveGenerateOptions(o: GenerateOptions, vocabSize: number, hasTokenizer: boolean): ResolvedGenerateOptions {
  if (o === null || typeof o !== 'object') throw new SamplingOptionsError([`options must be an object, got ${show(o)}`]);
  const problems: string[] = [];
  const sampling = samplingParams(o, problems);
  if (o.maxTokens !== undefined && (!Number.isInteger(o.maxTokens) || o.maxTokens < 1)) problems.push(`maxTokens must be an integer >= 1, got ${show(o.maxTokens)}`);
  let stop: string[] = [];
  if (o.stop !== undefined) {
    stop = typeof o.stop === 'string' ? [o.stop] : Array.isArray(o.stop) ? [...o.stop] : [];
    if (typeof o.stop !== 'string' && !Array.isArray(o.stop)) problems.push(`stop must be a string or an array of strings, got ${show(o.stop)}`);
    else if (stop.some((s) => typeof s !== 'string' || s.length === 0)) problems.push(`stop strings must be non-empty strings, got ${JSON.stringify(o.stop)}`);
    else if (stop.length && !hasTokenizer) problems.push('stop strings are matched on the detokenized text and need a tokenizer (pass one to the Sampler), or use eosTokenIds');
  }
  let eos: number[] | undefined;
  if (o.eosTokenIds !== undefined) {
    eos = typeof o.eosTokenIds === 'number' ? [o.eosTokenIds] : Array.isArray(o.eosTokenIds) ? [...o.eosTokenIds] : [];
    const bad = eos.filter((t) => !Number.isInteger(t) || t < 0 || t >= vocabSize);
    if ((typeof o.eosTokenIds !== 'number' && !Array.isArray(o.eosTokenIds)) || bad.length) {
      problems.push(`eosTokenIds must be ids in [0, ${vocabSize}), got ${show(JSON.stringify(o.eosTokenIds))}`);
    }
  }
  const topLogprobs = o.topLogprobs ?? 0;
  if (!Number.isInteger(topLogprobs) || topLogprobs < 0 || topLogprobs > vocabSize) {
    problems.push(`topLogprobs must be an integer in [0, ${vocabSize}] (the vocabulary size), got ${show(o.topLogprobs)}`);
  }
  const prefillChunkSize = o.prefillChunkSize ?? DEFAULT_PREFILL_CHUNK;
  if (!Number.isInteger(prefillChunkSize) || prefillChunkSize < 1) problems.push(`prefillChunkSize must be an integer >= 1, got ${show(o.prefillChunkSize)}`);
  const initialKvCapacity = o.initialKvCapacity ?? 64;
  if (!Number.isInteger(initialKvCapacity) || initialKvCapacity < 1) problems.push(`initialKvCapacity must be an integer >= 1, got ${show(o.initialKvCapacity)}`);
  if (o.signal !== undefined && (o.signal === null || typeof (o.signal as AbortSignal).aborted !== 'boolean')) problems.push(`signal must be an AbortSignal, got ${show(o.signal)}`);
  for (const k of ['ignoreEos', 'skipSpecialTokens', 'includeStopString', 'addSpecialTokens'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') problems.push(`${k} must be a boolean, got ${show(o[k])}`);
  }
  if (problems.length) throw new SamplingOptionsError(problems);
  return {
    sampling,
    seed: o.seed,
    maxTokens: o.maxTokens,
    stop,
    includeStopString: o.includeStopString ?? false,
    eosTokenIds: eos,
    ignoreEos: o.ignoreEos ?? false,
    topLogprobs,
    signal: o.signal,
    skipSpecialTokens: o.skipSpecialTokens ?? true,
    addSpecialTokens: o.addSpecialTokens,
    prefillChunkSize,
    initialKvCapacity,
  };
}

/** Checks token ids of prompt `i`: non-empty, integers in [0, vocab). Returns a plain array. */
export function checkPromptIds(ids: readonly number[] | Int32Array, vocabSize: number, i: number): number[] {
  const name = `prompt ${i}`;
  if (!ids || typeof ids.length !== 'number') throw new PromptError(`${name}: expected a string, a number[] or an Int32Array of token ids, got ${show(ids)}`);
  if (ids.length === 0) throw new PromptError(`${name} is empty: generation needs at least one token to condition on (e.g. the BOS id)`);
  const out = Array.from(ids);
  const bad: string[] = [];
  out.forEach((t, j) => {
    if (!Number.isInteger(t) || t < 0 || t >= vocabSize) bad.push(`${show(t)} at ${j}`);
  });
  if (bad.length) {
    const list = bad.length > 8 ? `${bad.slice(0, 8).join(', ')}, ... (${bad.length - 8} more)` : bad.join(', ');
    throw new PromptError(`${name}: token ids must be integers in [0, ${vocabSize}) (the vocabulary), got ${list}`);
  }
  return out;
}

/**
 * Tokens to generate for a prompt of `promptLength`: the option, else min(DEFAULT_MAX_TOKENS, room).
 * ContextLengthError when the prompt plus maxTokens do not fit max_position_embeddings.
 */
export function maxTokensFor(promptLength: number, maxTokens: number | undefined, limit: number, i: number): number {
  if (promptLength >= limit) {
    throw new ContextLengthError(
      `prompt ${i} has ${promptLength} tokens; max_position_embeddings is ${limit}, which leaves no position for a generated token`,
      i,
      promptLength + 1,
      limit,
    );
  }
  if (maxTokens === undefined) return Math.min(DEFAULT_MAX_TOKENS, limit - promptLength);
  if (promptLength + maxTokens > limit) {
    throw new ContextLengthError(
      `prompt ${i} (${promptLength} tokens) + maxTokens (${maxTokens}) = ${promptLength + maxTokens} positions exceed max_position_embeddings (${limit}); at most ${limit - promptLength} tokens can be generated`,
      i,
      promptLength + maxTokens,
      limit,
    );
  }
  return maxTokens;
}
