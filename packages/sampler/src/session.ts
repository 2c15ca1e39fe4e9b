/**
 * DecodeSession: the sampling state of a batch of sequences that advance together (equal
 * lengths), and the two things done with it: prefill (the model's forward over the prompt with
 * the caches: chunked lightning attention in the linear layers, flash-style softmax attention
 * whose keys and values go into the KV cache) and decode steps (one token per sequence: the
 * recurrent lightning step, attention over the KV cache). Both are the model's own forward: the
 * sampler computes no model math itself (MODEL_SPEC §7).
 *
 * State per layer (RingLinearCache from @ring-linear/models, built from @ring-linear/attention):
 *   linear layer   LinearAttentionState, f32 [B, H, D, D]: constant size, swapped per step
 *   softmax layer  KVCache, post-RoPE k and v [B, capacity, Hkv, D]: written in place, doubling
 *                  when full (O(n) copying over n tokens, not O(n^2))
 */
import { concat, findBackend, indexSelect, reshape, sliceAxis, tensor, tidy, withBackend, type Backend, type Tensor } from '@ring-linear/core';
import type { RingLinearCache } from '@ring-linear/models';
import { ContextLengthError, PromptError, SamplerError } from './errors.js';
import { DEFAULT_PREFILL_CHUNK } from './options.js';
import type { CacheMemory, SamplerModel } from './types.js';

type LayerCache = RingLinearCache['layers'][number];
type KVLayer = Extract<LayerCache, { readonly keys: Tensor }>;
type LinearLayer = Exclude<LayerCache, KVLayer>;

const isKV = (c: LayerCache): c is KVLayer => 'keys' in c;

export interface DecodeSessionOptions {
  /** First capacity (tokens) of the KV buffers; they double when full (default 64). */
  readonly initialKvCapacity?: number;
  /** Prefill in segments of at most this many tokens (default 512). */
  readonly prefillChunkSize?: number;
}

/** The backend holding the model's weights (input ids are placed there). */
export function modelBackend(model: SamplerModel): Backend {
  const p = model.parameters()[0];
  if (!p) throw new SamplerError('the model has no parameters: cannot tell which backend it runs on');
  return findBackend(p.backend);
}

/** Bytes held for one sequence by a cache of `batchSize` sequences (see CacheMemory). */
export function cacheMemory(cache: RingLinearCache): CacheMemory {
  const B = cache.batchSize;
  const n = cache.length;
  let linear = 0;
  let kv = 0;
  let kvUsed = 0;
  const layers = cache.layers.map((c, layer) => {
    if (isKV(c)) {
      const cap = c.capacity;
      const bytes = cap > 0 ? (c.keys.byteLength + c.values.byteLength) / B : 0;
      const usedBytes = cap > 0 ? (bytes * c.length) / cap : 0;
      kv += bytes;
      kvUsed += usedBytes;
      return { layer, kind: 'softmax' as const, bytes, usedBytes };
    }
    const bytes = (c as LinearLayer).state.byteLength / B;
    linear += bytes;
    return { layer, kind: 'linear' as const, bytes, usedBytes: bytes };
  });
  return { tokens: n, linearStateBytes: linear, kvCacheBytes: kv, kvCacheUsedBytes: kvUsed, totalBytes: linear + kv, layers };
}

export class DecodeSession {
  readonly model: SamplerModel;
  readonly initialKvCapacity: number;
  readonly prefillChunkSize: number;
  readonly #backend: Backend;
  readonly #vocab: number;
  readonly #limit: number;
  #cache: RingLinearCache | null;

  constructor(model: SamplerModel, batchSize: number, options: DecodeSessionOptions = {}) {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new SamplerError(`DecodeSession: batchSize must be an integer >= 1, got ${batchSize}`);
    this.model = model;
    this.initialKvCapacity = options.initialKvCapacity ?? 64;
    this.prefillChunkSize = options.prefillChunkSize ?? DEFAULT_PREFILL_CHUNK;
    this.#backend = modelBackend(model);
    this.#vocab = model.config.vocab_size;
    this.#limit = model.config.max_position_embeddings;
    this.#cache = withBackend(this.#backend, () => model.createCache(batchSize, { initialCapacity: this.initialKvCapacity }));
  }

  get cache(): RingLinearCache {
    if (!this.#cache) throw new SamplerError('DecodeSession: the session was disposed');
    return this.#cache;
  }

  get batchSize(): number {
    return this.cache.batchSize;
  }

  /** Tokens processed per sequence: the position of the next token. */
  get length(): number {
    return this.cache.length;
  }

  #checkIds(rows: readonly (readonly number[] | Int32Array)[], what: string): number {
    const B = this.batchSize;
    if (rows.length !== B) throw new PromptError(`DecodeSession.${what}: expected ${B} rows (the batch), got ${rows.length}`);
    const T = rows[0]!.length;
    rows.forEach((r, i) => {
      if (r.length !== T) throw new PromptError(`DecodeSession.${what}: rows must have one length (they advance together), row 0 has ${T}, row ${i} has ${r.length}`);
      for (const t of r) {
        if (!Number.isInteger(t) || t < 0 || t >= this.#vocab) throw new PromptError(`DecodeSession.${what}: row ${i}: token id ${t} is outside the vocabulary [0, ${this.#vocab})`);
      }
    });
    if (T < 1) throw new PromptError(`DecodeSession.${what}: rows are empty`);
    if (this.length + T > this.#limit) {
      throw new ContextLengthError(
        `DecodeSession.${what}: ${this.length} + ${T} tokens exceed max_position_embeddings (${this.#limit})`,
        0,
        this.length + T,
        this.#limit,
      );
    }
    return T;
  }

  #forward(rows: readonly (readonly number[] | Int32Array)[], from: number, to: number, which: 'last' | 'all'): Tensor {
    const B = rows.length;
    const T = to - from;
    const flat = new Int32Array(B * T);
    rows.forEach((r, b) => flat.set(Array.from(r).slice(from, to), b * T));
    // With the model's backend current: tensors that ops make internally (a composite's zeros or
    // aranges) land beside the weights whatever backend the program made current.
    return withBackend(this.#backend, () => tidy(() => {
      const ids = tensor(flat, [B, T], 'i32', this.#backend);
      const logits = this.model.forward(ids, { cache: this.cache, logits: which }).logits!;
      return which === 'last' ? reshape(logits, [B, logits.shape[2]!]) : logits;
    }));
  }

  /**
   * Runs the prompt rows (one length) through the model, in segments of prefillChunkSize, filling
   * the caches. Returns the f32 logits of the last position [B, V] ('last', default) or of every
   * position [B, T, V] ('all'). The caller owns the result.
   */
  prefill(rows: readonly (readonly number[] | Int32Array)[], options: { logits?: 'last' | 'all' } = {}): Tensor {
    const T = this.#checkIds(rows, 'prefill');
    const which = options.logits ?? 'last';
    const parts: Tensor[] = [];
    try {
      for (let s = 0; s < T; s += this.prefillChunkSize) {
        const e = Math.min(T, s + this.prefillChunkSize);
        const part = this.#forward(rows, s, e, which);
        // 'last': only the final segment's logits are wanted; earlier segments just fill the caches.
        if (which === 'last') parts.pop()?.dispose();
        parts.push(part);
      }
      return parts.length === 1 ? parts.pop()! : concat(parts, 1); // 'all': [B, t_i, V] segments along time
    } finally {
      for (const p of parts) p.dispose();
    }
  }

  /** One decode step: token b continues sequence b. Returns f32 logits [B, V] (caller-owned). */
  step(tokens: readonly number[] | Int32Array): Tensor {
    this.#checkIds(Array.from(tokens, (t) => [t]), 'step');
    return this.#forward(Array.from(tokens, (t) => [t]), 0, 1, 'last');
  }

  /**
   * Keeps only the sequences `rows` (in that order), e.g. when others finished: builds caches of
   * the smaller batch holding their rows (one copy of their state) and frees the old ones.
   */
  keepRows(rows: readonly number[]): void {
    const old = this.cache;
    const B = old.batchSize;
    if (rows.length === 0 || rows.some((r, i) => !Number.isInteger(r) || r < 0 || r >= B || rows.indexOf(r) !== i)) {
      throw new SamplerError(`DecodeSession.keepRows: expected distinct rows in [0, ${B}), at least one, got [${rows.join(', ')}]`);
    }
    if (rows.length === B && rows.every((r, i) => r === i)) return;
    const length = old.length;
    const capacity = Math.max(this.initialKvCapacity, ...old.layers.map((c) => (isKV(c) ? c.capacity : 0)));
    const next = withBackend(this.#backend, () => this.model.createCache(rows.length, { initialCapacity: capacity }));
    try {
      withBackend(this.#backend, () => tidy(() => {
        const idx = tensor(Int32Array.from(rows), [rows.length], 'i32', this.#backend);
        old.layers.forEach((c, l) => {
          const d = next.layers[l]!;
          if (isKV(c)) {
            if (c.length === 0) return;
            const pick = (x: Tensor) => indexSelect(sliceAxis(x, 1, 0, c.length), 0, idx);
            (d as KVLayer).append(pick(c.keys), pick(c.values));
          } else {
            // A fresh state of the new batch size, swapped for the picked rows at the old position.
            (d as LinearLayer).update(indexSelect((c as LinearLayer).state, 0, idx), (c as LinearLayer).position);
          }
        });
      }));
      next.advance(length);
    } catch (err) {
      next.dispose();
      throw err;
    }
    old.dispose();
    this.#cache = next;
  }

  /** Bytes of state held per sequence. */
  memory(): CacheMemory {
    return cacheMemory(this.cache);
  }

  dispose(): void {
    this.#cache?.dispose();
    this.#cache = null;
  }
}
