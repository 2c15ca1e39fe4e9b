/**
 * Generation: a batch of prompts through prefill and decode, a token at a time, as a stream of
 * TokenEvents (or all at once with generate()).
 *
 * Batching. The model's caches advance all their sequences together (one RoPE position and one KV
 * length per cache), and a forward with caches takes no packed (cuSeqlens) rows, so prompts are
 * grouped by length without padding: prompts of equal length share one DecodeSession (one batched
 * prefill [G, T], then batched decode steps [G, 1]); groups of different lengths run side by side,
 * one step each in turn. When a sequence of a group finishes, the group's caches are compacted to
 * the sequences still running (keepRows), so finished sequences cost nothing further.
 *
 * Per decode step and group there is ONE readback: the logits [G, V] and their log-softmax (the
 * same op as the trainer's, on the backend, f32) concatenated, read with `await data()`. Sampling
 * math then runs on the host per row (strategies.ts); the next forward is enqueued before the
 * step's events are yielded, so a GPU backend computes while the consumer handles them.
 */
import { concat, logSoftmax, tidy, type Tensor } from '@ring-linear/core';
import type { TextTokenizer } from '@ring-linear/models';
import { GenerationAbortedError, PromptError, SamplingOptionsError } from './errors.js';
import { checkPromptIds, maxTokensFor, resolveGenerateOptions, type ResolvedGenerateOptions } from './options.js';
import { SequenceRandom, seedFromDefaultGenerator } from './rng.js';
import { DecodeSession } from './session.js';
import { TokenHistory, distribution, drawFrom, topIds } from './strategies.js';
import { IncrementalDetokenizer, StopMatcher } from './text.js';
import type { GenerateOptions, GenerationResult, SamplerModel, TokenEvent, TokenLogprob } from './types.js';

/** What the sampler uses of a tokenizer: encode (string prompts), decode (text), the EOS id. */
export type SamplerTokenizer = Pick<TextTokenizer, 'encode' | 'decode'> & { readonly eosTokenId?: number | null };

/** A prompt: text (needs a tokenizer) or token ids. */
export type Prompt = string | readonly number[] | Int32Array;

export interface SamplerOptions {
  /** Encodes string prompts and detokenizes the generated ids (text deltas, stop strings). */
  readonly tokenizer?: SamplerTokenizer;
}

/** Resolves after pending macrotasks (timers, I/O, an abort() from a timer) have had a chance to run. */
function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => unknown };
  if (typeof g.setImmediate === 'function') return new Promise((r) => g.setImmediate!(r));
  if (typeof MessageChannel !== 'undefined') {
    // Browsers: a message is a macrotask without setTimeout's 4 ms clamp.
    return new Promise((r) => {
      const ch = new MessageChannel();
      (ch.port1 as unknown as { onmessage: (() => void) | null }).onmessage = () => {
        ch.port1.close();
        r();
      };
      ch.port2.postMessage(0);
    });
  }
  return new Promise((r) => setTimeout(r, 0));
}

class SequenceState {
  readonly history: TokenHistory;
  readonly random: SequenceRandom;
  readonly detok: IncrementalDetokenizer | null;
  readonly stop: StopMatcher;
  readonly result: GenerationResult;

  constructor(
    readonly index: number,
    readonly prompt: number[],
    readonly maxTokens: number,
    random: SequenceRandom,
    readonly opts: ResolvedGenerateOptions,
    readonly eos: ReadonlySet<number>,
    tokenizer: SamplerTokenizer | undefined,
  ) {
    this.history = new TokenHistory(prompt);
    this.random = random;
    this.detok = tokenizer ? new IncrementalDetokenizer(tokenizer, { skipSpecialTokens: opts.skipSpecialTokens }) : null;
    this.stop = new StopMatcher(opts.stop, { includeStopString: opts.includeStopString });
    this.result = {
      sequence: index,
      promptTokens: prompt,
      tokens: [],
      text: '',
      logprobs: [],
      ...(opts.topLogprobs > 0 ? { topLogprobs: [] } : {}),
      finishReason: null,
      memory: null,
    };
  }

  get done(): boolean {
    return this.result.finishReason !== null;
  }

  /** Draws this step's token from a row of raw logits (host, float64 on the f32 values). */
  choose(logits: Float32Array): number {
    const step = this.result.tokens.length;
    const d = distribution(logits, this.opts.sampling, this.history);
    return d.kind === 'greedy' ? d.token : drawFrom(d, this.random.uniform(step));
  }

  /** The held-back text at the end, checked once more for a stop string. */
  #finalText(): { text: string; stop: string | null } {
    const r = this.stop.push(this.detok?.flush() ?? '');
    return r.stop ? r : { text: r.text + this.stop.flush(), stop: null };
  }

  /** Records the drawn token; returns its event (finishReason set when the sequence ends). */
  accept(token: number, logprobs: Float32Array): TokenEvent {
    const r = this.result;
    const index = r.tokens.length;
    const logprob = logprobs[token]!;
    r.tokens.push(token);
    r.logprobs.push(logprob);
    let top: TokenLogprob[] | undefined;
    if (this.opts.topLogprobs > 0) {
      top = Array.from(topIds(logprobs, this.opts.topLogprobs), (t) => ({ token: t, logprob: logprobs[t]! }));
      r.topLogprobs!.push(top);
    }
    this.history.add(token);
    let text = '';
    let stop: string | null = null;
    if (this.eos.has(token) && !this.opts.ignoreEos) {
      // The EOS id ends the sequence; its own text is never added.
      ({ text, stop } = this.#finalText());
      r.finishReason = stop ? 'stop' : 'eos';
    } else {
      ({ text, stop } = this.stop.push(this.detok?.push(token) ?? ''));
      if (stop) r.finishReason = 'stop';
      else if (r.tokens.length >= this.maxTokens) {
        const f = this.#finalText();
        text += f.text;
        stop = f.stop;
        r.finishReason = stop ? 'stop' : 'length';
      }
    }
    if (stop) r.stopString = stop;
    r.text += text;
    return {
      sequence: this.index,
      index,
      token,
      text,
      logprob,
      ...(top ? { topLogprobs: top } : {}),
      finishReason: r.finishReason,
      ...(stop ? { stopString: stop } : {}),
    };
  }
}

interface Group {
  session: DecodeSession | null;
  /** The running sequences, in the session's row order. */
  rows: SequenceState[];
  /** Logits and log-probs [G, 2V] of the step to sample, enqueued; null before prefill. */
  pending: Tensor | null;
}

/** Logits [G, V] -> [G, 2V]: the raw logits then their log-softmax (f32, on the backend); consumes `logits`. */
function withLogprobs(logits: Tensor): Tensor {
  try {
    return tidy(() => concat([logits, logSoftmax(logits, -1)], -1));
  } finally {
    logits.dispose();
  }
}

/** A validated generation request, ready to run. */
export interface Generation {
  /** The events, in the order they are produced (a group's step, then the next group's). */
  readonly events: AsyncGenerator<TokenEvent, void, undefined>;
  /** Filled in as the events are produced (complete once `events` is done). */
  readonly results: readonly GenerationResult[];
}

/**
 * Validates everything (options, prompts, context length) on the host, then returns the stream of
 * events; no model work happens until the stream is iterated.
 */
export function startGeneration(model: SamplerModel, tokenizer: SamplerTokenizer | undefined, prompts: readonly Prompt[], options: GenerateOptions = {}): Generation {
  const V = model.config.vocab_size;
  const limit = model.config.max_position_embeddings;
  const opts = resolveGenerateOptions(options, V, tokenizer !== undefined);
  if (!Array.isArray(prompts) || prompts.length === 0) throw new PromptError(`expected at least one prompt, got ${Array.isArray(prompts) ? 'an empty list' : typeof prompts}`);
  const ids = prompts.map((p, i) => {
    if (typeof p === 'string') {
      if (!tokenizer) throw new PromptError(`prompt ${i} is text but the Sampler has no tokenizer; pass { tokenizer } or token ids`);
      if (p.length === 0) throw new PromptError(`prompt ${i} is empty: generation needs at least one token to condition on (e.g. the BOS id)`);
      return checkPromptIds(tokenizer.encode(p, opts.addSpecialTokens === undefined ? {} : { addSpecialTokens: opts.addSpecialTokens }), V, i);
    }
    return checkPromptIds(p, V, i);
  });
  const maxTokens = ids.map((p, i) => maxTokensFor(p.length, opts.maxTokens, limit, i));
  const eos = new Set<number>(opts.eosTokenIds ?? defaultEos(model, tokenizer, V));
  if (opts.signal?.aborted) throw new GenerationAbortedError([], { cause: opts.signal.reason });
  const seeds = opts.seed;
  if (Array.isArray(seeds) && seeds.length !== ids.length) {
    throw new SamplingOptionsError([`seed: expected one seed per prompt (${ids.length}), got ${seeds.length}`]);
  }
  const shared = Array.isArray(seeds) ? null : ((seeds as number | bigint | undefined) ?? seedFromDefaultGenerator());
  const random = (i: number) => (shared !== null ? new SequenceRandom(shared, i) : new SequenceRandom((seeds as readonly (number | bigint)[])[i]!, 0));
  const seqs = ids.map((p, i) => new SequenceState(i, p, maxTokens[i]!, random(i), opts, eos, tokenizer));
  return { events: run(model, seqs, opts), results: seqs.map((s) => s.result) };
}

function defaultEos(model: SamplerModel, tokenizer: SamplerTokenizer | undefined, V: number): number[] {
  const c = model.config.eos_token_id;
  const ids = c === null || c === undefined ? [] : typeof c === 'number' ? [c] : [...c];
  if (tokenizer?.eosTokenId !== undefined && tokenizer.eosTokenId !== null) ids.push(tokenizer.eosTokenId);
  return ids.filter((t) => Number.isInteger(t) && t >= 0 && t < V);
}

async function* run(model: SamplerModel, seqs: SequenceState[], opts: ResolvedGenerateOptions): AsyncGenerator<TokenEvent, void, undefined> {
  const byLength = new Map<number, SequenceState[]>();
  for (const s of seqs) byLength.set(s.prompt.length, [...(byLength.get(s.prompt.length) ?? []), s]);
  const groups: Group[] = [...byLength.values()].map((rows) => ({ session: null, rows, pending: null }));
  const signal = opts.signal;
  const checkAbort = () => {
    if (!signal?.aborted) return;
    for (const s of seqs) if (!s.done) s.result.finishReason = 'abort';
    throw new GenerationAbortedError(seqs.map((s) => s.result), { cause: signal.reason });
  };
  try {
    while (groups.length) {
      for (let gi = 0; gi < groups.length; ) {
        const g = groups[gi]!;
        checkAbort();
        if (!g.session) {
          g.session = new DecodeSession(model, g.rows.length, { initialKvCapacity: opts.initialKvCapacity, prefillChunkSize: opts.prefillChunkSize });
          g.pending = withLogprobs(g.session.prefill(g.rows.map((s) => s.prompt)));
        }
        const packed = g.pending!;
        const data = (await packed.data()) as Float32Array; // the step's one readback
        packed.dispose();
        g.pending = null;
        checkAbort();
        const V = data.length / (2 * g.rows.length);
        const events: TokenEvent[] = [];
        const tokens: number[] = [];
        g.rows.forEach((s, r) => {
          const logits = data.subarray(2 * r * V, (2 * r + 1) * V);
          const logprobs = data.subarray((2 * r + 1) * V, (2 * r + 2) * V);
          const token = s.choose(logits);
          tokens.push(token);
          const ev = s.accept(token, logprobs);
          if (s.done) s.result.memory = g.session!.memory();
          events.push(ev);
        });
        const keep = g.rows.flatMap((s, r) => (s.done ? [] : [r]));
        if (keep.length === 0) {
          g.session.dispose();
          groups.splice(gi, 1);
        } else {
          if (keep.length < g.rows.length) {
            g.session.keepRows(keep);
            g.rows = keep.map((r) => g.rows[r]!);
          }
          // Enqueue the next step before handing out this one's events.
          g.pending = withLogprobs(g.session.step(keep.map((r) => tokens[r]!)));
          gi++;
        }
        for (const ev of events) yield ev;
        await yieldToEventLoop();
      }
    }
  } finally {
    for (const g of groups) {
      g.pending?.dispose();
      g.session?.dispose();
    }
  }
}

/** Text generation with a model (and optionally a tokenizer) of this project. */
export class Sampler {
  readonly model: SamplerModel;
  readonly tokenizer: SamplerTokenizer | undefined;

  constructor(model: SamplerModel, options: SamplerOptions = {}) {
    this.model = model;
    this.tokenizer = options.tokenizer;
  }

  /**
   * Streams the generated tokens of one prompt. Options and prompt are validated when this is
   * called (typed errors, before any work); the model runs as the stream is iterated. Breaking
   * out of the loop stops generation and frees its caches.
   */
  stream(prompt: Prompt, options: GenerateOptions = {}): AsyncIterable<TokenEvent> {
    return startGeneration(this.model, this.tokenizer, [prompt], options).events;
  }

  /** Streams the tokens of several prompts, interleaved; each event names its `sequence`. */
  streamBatch(prompts: readonly Prompt[], options: GenerateOptions = {}): AsyncIterable<TokenEvent> {
    return startGeneration(this.model, this.tokenizer, prompts, options).events;
  }

  /** Generates for one prompt and returns everything at the end. */
  async generate(prompt: Prompt, options: GenerateOptions = {}): Promise<GenerationResult> {
    return (await this.generateBatch([prompt], options))[0]!;
  }

  /** Generates for several prompts (results in prompt order). */
  async generateBatch(prompts: readonly Prompt[], options: GenerateOptions = {}): Promise<GenerationResult[]> {
    const g = startGeneration(this.model, this.tokenizer, prompts, options);
    for await (const _ of g.events) {
      // results fill in as events are produced
    }
    return [...g.results];
  }
}
