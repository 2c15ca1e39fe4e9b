/**
 * The sampling strategies, on the host, over ONE row of logits (docs/sampling.md states the
 * formulas; these functions are their definition).
 *
 * The row is read from the backend once per step (the logits and their log-softmax in one
 * readback) and everything here runs in float64 on the f32 values read. Being plain JavaScript
 * over equal inputs, the choice of token is the same whichever backend computed the logits; the
 * uniform draw comes from core's Philox stream (rng.ts), so a seed reproduces its tokens on every
 * backend given equal logits.
 *
 * Pipeline for a row z of V logits:
 *   1. penalties      z_i -> z_i / r if z_i > 0 else z_i * r          (repetition r; prompt + generated ids)
 *                     z_i -> z_i - presence * [c_i > 0] - frequency * c_i   (c_i: count among generated ids)
 *   2. temperature    T = 0: greedy, the argmax of the penalized z (ties: lower id); stop here.
 *                     s_i = z_i / T,  w_i = exp(s_i - max_j s_j)      (unnormalized probabilities)
 *   3. top-k          keep the k largest w (ties: lower id first); k = 0: off
 *   4. top-p          q_i = w_i / sum_kept w; in descending order of q (ties: lower id first) keep
 *                     token j iff the mass strictly before it is < p: the smallest prefix with mass >= p
 *   5. min-p          keep w_i >= minP * max_kept w  (i.e. p_i >= minP * p_max)
 *   6. draw           u in [0, 1) (Philox, 24-bit grid); walk the kept ids in ascending id order
 *                     accumulating w; the first id whose running sum exceeds u * sum_kept w
 * Tokens of weight 0 (logit -Infinity, or underflow in float64) are never kept.
 */
import { InvalidLogitsError } from './errors.js';

/** Sampling parameters with every default filled in (see SamplingOptions). */
export interface SamplingParams {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repetitionPenalty: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
}

export const DEFAULT_SAMPLING: SamplingParams = Object.freeze({
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
});

/**
 * The ids a sequence has seen, for the penalties: every prompt and generated id (repetition
 * penalty, as Hugging Face's), and the counts of the generated ids (presence and frequency
 * penalties, as OpenAI's and vLLM's).
 */
export class TokenHistory {
  readonly seen = new Set<number>();
  readonly generatedCounts = new Map<number, number>();

  constructor(prompt: Iterable<number> = []) {
    for (const t of prompt) this.seen.add(t);
  }

  /** Records a generated id. */
  add(token: number): void {
    this.seen.add(token);
    this.generatedCounts.set(token, (this.generatedCounts.get(token) ?? 0) + 1);
  }
}

/** Step 1: the penalties, in place on a float64 copy of the logits. */
export function applyPenalties(z: Float64Array, history: TokenHistory, p: SamplingParams): void {
  const r = p.repetitionPenalty;
  if (r !== 1) {
    for (const t of history.seen) {
      if (t < 0 || t >= z.length) continue;
      const v = z[t]!;
      z[t] = v > 0 ? v / r : v * r;
    }
  }
  if (p.presencePenalty !== 0 || p.frequencyPenalty !== 0) {
    for (const [t, c] of history.generatedCounts) {
      if (t < 0 || t >= z.length) continue;
      z[t] = z[t]! - p.presencePenalty - p.frequencyPenalty * c;
    }
  }
}

/** The logits as float64, refusing NaN and +Infinity (a model bug, not something to sample from). */
export function toFloat64(logits: ArrayLike<number>, what = 'logits'): Float64Array {
  const n = logits.length;
  const z = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = logits[i]!;
    if (Number.isNaN(v) || v === Infinity) throw new InvalidLogitsError(`${what}: expected finite values or -Infinity, got ${v} at id ${i}`);
    z[i] = v;
  }
  return z;
}

/** The id of the largest value (ties: the lower id). */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  if (bv === -Infinity) {
    // All -Infinity (or empty): nothing can be chosen.
    throw new InvalidLogitsError(`argmax: every one of the ${values.length} logits is -Infinity (or there are none)`);
  }
  return best;
}

/**
 * Max-heap of ids ordered by key descending, ties by id ascending: pops ids in the documented
 * "most likely first" order without sorting the whole vocabulary (O(n) to build, O(log n) a pop).
 */
export class DescendingOrder {
  readonly #keys: ArrayLike<number>;
  readonly #heap: Int32Array;
  #size: number;

  constructor(keys: ArrayLike<number>, ids: Int32Array) {
    this.#keys = keys;
    this.#heap = Int32Array.from(ids);
    this.#size = ids.length;
    for (let i = (this.#size >> 1) - 1; i >= 0; i--) this.#down(i);
  }

  get size(): number {
    return this.#size;
  }

  /** The next id, or -1 when none is left. */
  pop(): number {
    if (this.#size === 0) return -1;
    const h = this.#heap;
    const top = h[0]!;
    this.#size--;
    if (this.#size > 0) {
      h[0] = h[this.#size]!;
      this.#down(0);
    }
    return top;
  }

  #before(a: number, b: number): boolean {
    const ka = this.#keys[a]!;
    const kb = this.#keys[b]!;
    return ka > kb || (ka === kb && a < b);
  }

  #down(i: number): void {
    const h = this.#heap;
    const n = this.#size;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      let c = l;
      if (l + 1 < n && this.#before(h[l + 1]!, h[l]!)) c = l + 1;
      if (!this.#before(h[c]!, h[i]!)) return;
      const t = h[i]!;
      h[i] = h[c]!;
      h[c] = t;
      i = c;
    }
  }
}

/** The first `n` ids in descending order of `keys` (ties: lower id first) among `ids` (default all). */
export function topIds(keys: ArrayLike<number>, n: number, ids?: Int32Array): Int32Array {
  const order = new DescendingOrder(keys, ids ?? allIds(keys.length));
  const m = Math.min(n, order.size);
  const out = new Int32Array(m);
  for (let i = 0; i < m; i++) out[i] = order.pop();
  return out;
}

function allIds(n: number): Int32Array {
  const ids = new Int32Array(n);
  for (let i = 0; i < n; i++) ids[i] = i;
  return ids;
}

const ascending = (ids: Int32Array): Int32Array => ids.sort();

/** Step 3: the k largest of `weights` among `ids` (ties: lower id), in ascending id order. */
export function topKSet(weights: ArrayLike<number>, k: number, ids?: Int32Array): Int32Array {
  return ascending(topIds(weights, k, ids));
}

/**
 * Step 4: the nucleus of `weights` among `ids`: in descending order of q_i = w_i / sum w (ties:
 * lower id), the ids whose preceding mass is < p. Ascending id order.
 */
export function topPSet(weights: ArrayLike<number>, p: number, ids?: Int32Array): Int32Array {
  const all = ids ?? allIds(weights.length);
  let total = 0;
  for (const i of all) total += weights[i]!;
  const order = new DescendingOrder(weights, all);
  const kept: number[] = [];
  let before = 0;
  for (let id = order.pop(); id >= 0; id = order.pop()) {
    if (!(before < p)) break;
    kept.push(id);
    before += weights[id]! / total;
  }
  return ascending(Int32Array.from(kept));
}

/** Step 5: the ids with w_i >= minP * max w (among `ids`), ascending. */
export function minPSet(weights: ArrayLike<number>, minP: number, ids?: Int32Array): Int32Array {
  const all = ids ?? allIds(weights.length);
  let wmax = 0;
  for (const i of all) wmax = Math.max(wmax, weights[i]!);
  const bound = minP * wmax;
  return all.filter((i) => weights[i]! >= bound);
}

/** What remains after steps 1-5: the kept ids (ascending) and their unnormalized weights. */
export type Distribution =
  | { readonly kind: 'greedy'; readonly token: number }
  | { readonly kind: 'sample'; readonly ids: Int32Array; readonly weights: Float64Array };

/** Steps 1-5 over one row of logits. */
export function distribution(logits: ArrayLike<number>, params: SamplingParams, history?: TokenHistory): Distribution {
  const z = toFloat64(logits);
  if (history) applyPenalties(z, history, params);
  if (params.temperature === 0) return { kind: 'greedy', token: argmax(z) };
  const T = params.temperature;
  let smax = -Infinity;
  for (let i = 0; i < z.length; i++) {
    z[i] = z[i]! / T;
    if (z[i]! > smax) smax = z[i]!;
  }
  if (smax === -Infinity) throw new InvalidLogitsError(`logits: every one of the ${z.length} entries is -Infinity (or there are none)`);
  // z becomes the weights w_i = exp(s_i - max s); only ids of positive weight are candidates.
  let n = 0;
  const ids0 = new Int32Array(z.length);
  for (let i = 0; i < z.length; i++) {
    const w = Math.exp(z[i]! - smax);
    z[i] = w;
    if (w > 0) ids0[n++] = i;
  }
  let ids: Int32Array = ids0.subarray(0, n);
  if (params.topK > 0 && params.topK < ids.length) ids = topKSet(z, params.topK, ids);
  if (params.topP < 1) ids = topPSet(z, params.topP, ids);
  if (params.minP > 0) ids = minPSet(z, params.minP, ids);
  return { kind: 'sample', ids: ids.slice(), weights: z };
}

/** Step 6: inverse-CDF draw over the kept ids in ascending id order, u in [0, 1). */
export function drawFrom(d: Distribution, u: number): number {
  if (d.kind === 'greedy') return d.token;
  const { ids, weights } = d;
  let total = 0;
  for (const i of ids) total += weights[i]!;
  const target = u * total;
  let run = 0;
  for (const i of ids) {
    run += weights[i]!;
    if (run > target) return i;
  }
  return ids[ids.length - 1]!; // only reachable through rounding of the running sum
}

/** Steps 1-6: the token drawn from `logits` with the uniform `u`. */
export function sampleToken(logits: ArrayLike<number>, params: SamplingParams, u: number, history?: TokenHistory): number {
  return drawFrom(distribution(logits, params, history), u);
}
