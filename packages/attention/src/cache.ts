/**
 * Sampling-time state of the attention layers.
 *
 * LinearAttentionState: the lightning-attention state S [B, H, D, Dv], fp32 always (MODEL_SPEC §7),
 * constant size. Tensors are immutable, so a step returns a new state and `update` swaps it in and
 * frees the old one: memory stays flat over any number of steps.
 *
 * KVCache: post-RoPE keys and values of a softmax layer (MODEL_SPEC §3), [B, capacity, Hkv, D]
 * buffers of which the first `length` rows are valid; the attention op reads only those (kvLen).
 * Appending writes the new rows in place with the backend's device-to-device copy; when the
 * capacity runs out it doubles (one copy of the valid rows), so n tokens cost O(n) copying in all,
 * not O(n^2). All sequences of a batch advance together.
 */
import {
  DTypeError,
  RingLinearError,
  ShapeError,
  allocTensor,
  bytesPerElement,
  concat,
  describeShape,
  findBackend,
  keep,
  pad,
  sliceAxis,
  tidy,
  type Tensor,
} from '@ring-linear/core';

export class LinearAttentionState {
  #state: Tensor | null;
  /** Tokens seen so far: the RoPE position of the next token. */
  position: number;

  /** Takes ownership of `state` (f32 [B, H, D, Dv]; keep()-ed, freed by update/dispose). */
  constructor(state: Tensor, position = 0) {
    checkState(state);
    this.#state = keep(state);
    this.position = position;
  }

  get state(): Tensor {
    if (!this.#state) throw new RingLinearError('LinearAttentionState: the state was disposed');
    return this.#state;
  }

  get batchSize(): number {
    return this.state.shape[0]!;
  }

  /** Swaps in the state after `tokens` more tokens (same shape, f32) and frees the old one. */
  update(next: Tensor, tokens: number): void {
    const old = this.state;
    if (next.dtype !== 'f32') throw new DTypeError(`LinearAttentionState.update: the state must stay f32, got ${next.dtype}`);
    if (next.shape.length !== old.shape.length || next.shape.some((d, i) => d !== old.shape[i])) {
      throw new ShapeError(`LinearAttentionState.update: expected a state of shape ${describeShape(old.shape)}, got ${describeShape(next.shape)}`);
    }
    if (next !== old) {
      this.#state = keep(next);
      old.dispose();
    }
    this.position += tokens;
  }

  dispose(): void {
    this.#state?.dispose();
    this.#state = null;
  }
}

function checkState(s: Tensor): void {
  if (s.dtype !== 'f32') throw new DTypeError(`LinearAttentionState: the state must be f32 (MODEL_SPEC §7), got ${s.dtype}`);
  if (s.rank !== 4) throw new ShapeError(`LinearAttentionState: the state must have shape [batch, heads, head_dim, head_dim_v], got ${describeShape(s.shape)}`);
}

export interface KVCacheOptions {
  /** Capacity of the first allocation in tokens (default 64); doubles when exceeded. */
  readonly initialCapacity?: number;
}

export class KVCache {
  #k: Tensor | null = null;
  #v: Tensor | null = null;
  #length = 0;
  #capacity = 0;
  #reallocations = 0;
  readonly initialCapacity: number;

  constructor(options: KVCacheOptions = {}) {
    const c = options.initialCapacity ?? 64;
    if (!Number.isInteger(c) || c < 1) throw new RingLinearError(`KVCache: initialCapacity must be an integer >= 1, got ${c}`);
    this.initialCapacity = c;
  }

  /** Valid tokens held (the RoPE position of the next token). */
  get length(): number {
    return this.#length;
  }

  /** Tokens the buffers hold before they must grow. */
  get capacity(): number {
    return this.#capacity;
  }

  /** How many times the buffers were (re)allocated. */
  get reallocations(): number {
    return this.#reallocations;
  }

  /** The key buffer [B, capacity, Hkv, D]; rows past `length` are unspecified. Owned by the cache. */
  get keys(): Tensor {
    if (!this.#k) throw new RingLinearError('KVCache: empty (append keys and values first)');
    return this.#k;
  }

  /** The value buffer [B, capacity, Hkv, Dv]. */
  get values(): Tensor {
    if (!this.#v) throw new RingLinearError('KVCache: empty (append keys and values first)');
    return this.#v;
  }

  /** Appends post-RoPE k [B, n, Hkv, D] and v [B, n, Hkv, Dv] (not consumed; the caller still owns them). */
  append(k: Tensor, v: Tensor): void {
    if (k.rank !== 4 || v.rank !== 4 || k.shape[0] !== v.shape[0] || k.shape[1] !== v.shape[1] || k.shape[2] !== v.shape[2]) {
      throw new ShapeError(`KVCache.append: expected k [B, n, Hkv, D] and v [B, n, Hkv, Dv] with equal B, n, Hkv, got ${describeShape(k.shape)} and ${describeShape(v.shape)}`);
    }
    if (k.dtype !== v.dtype) throw new DTypeError(`KVCache.append: k and v must have one dtype, got ${k.dtype} and ${v.dtype}`);
    const n = k.shape[1]!;
    if (this.#k) {
      const K = this.#k;
      const V = this.#v!;
      const same = (a: Tensor, b: Tensor) => a.shape[0] === b.shape[0] && a.shape[2] === b.shape[2] && a.shape[3] === b.shape[3] && a.dtype === b.dtype;
      if (!same(K, k) || !same(V, v)) {
        throw new ShapeError(
          `KVCache.append: the cache holds k [${K.shape[0]}, *, ${K.shape[2]}, ${K.shape[3]}] ${K.dtype} and v [.., ${V.shape[3]}] ${V.dtype}, got ${describeShape(k.shape)} ${k.dtype} and ${describeShape(v.shape)} ${v.dtype}`,
        );
      }
    }
    const needed = this.#length + n;
    if (needed > this.#capacity) this.grow(k, v, needed);
    this.#k = writeRows(this.#k!, k, this.#length);
    this.#v = writeRows(this.#v!, v, this.#length);
    this.#length = needed;
  }

  /** Forgets the tokens (keeps the buffers for reuse). */
  clear(): void {
    this.#length = 0;
  }

  dispose(): void {
    this.#k?.dispose();
    this.#v?.dispose();
    this.#k = this.#v = null;
    this.#length = this.#capacity = 0;
  }

  private grow(k: Tensor, v: Tensor, needed: number): void {
    let cap = Math.max(this.#capacity * 2, this.initialCapacity);
    while (cap < needed) cap *= 2;
    const backend = findBackend(k.backend);
    const make = (like: Tensor) => keep(allocTensor(backend, [like.shape[0]!, cap, like.shape[2]!, like.shape[3]!], like.dtype));
    let K = make(k);
    let V = make(v);
    if (this.#k && this.#length > 0) {
      const valid = (x: Tensor) => tidy(() => sliceAxis(x, 1, 0, this.#length));
      const [oldK, oldV] = [valid(this.#k), valid(this.#v!)];
      K = writeRows(K, oldK, 0);
      V = writeRows(V, oldV, 0);
      oldK.dispose();
      oldV.dispose();
    }
    this.#k?.dispose();
    this.#v?.dispose();
    this.#k = K;
    this.#v = V;
    this.#capacity = cap;
    this.#reallocations++;
  }
}

/**
 * Writes src [B, n, X, Y] into rows [row, row + n) of dst [B, cap, X, Y], in place, with the
 * backend's device-to-device copy (one contiguous run per batch entry: a single 2-D copy where the
 * backend has copyRows, else one copy each). The cache owns dst and never hands it to a gradient
 * tape, which is what makes the in-place write safe. A backend without `copy` gets a rebuilt
 * buffer instead (correct, but O(capacity) per call); returns the buffer.
 */
function writeRows(dst: Tensor, src: Tensor, row: number): Tensor {
  const [B, n] = src.shape as [number, number];
  const cap = dst.shape[1]!;
  const rowBytes = (src.size / Math.max(B * n, 1)) * bytesPerElement(src.dtype);
  const sd = dst.live('KVCache write');
  const ss = src.live('KVCache write');
  if (sd.backend.copyRows && ss.backend === sd.backend) {
    sd.backend.copyRows(ss.buffer, 0, n * rowBytes, sd.buffer, row * rowBytes, cap * rowBytes, n * rowBytes, B);
    return dst;
  }
  if (sd.backend.copy && ss.backend === sd.backend) {
    for (let b = 0; b < B; b++) sd.backend.copy(ss.buffer, b * n * rowBytes, sd.buffer, (b * cap + row) * rowBytes, n * rowBytes);
    return dst;
  }
  const rebuilt = keep(
    tidy(() => {
      const parts = [row > 0 ? sliceAxis(dst, 1, 0, row) : null, src].filter((x): x is Tensor => x !== null);
      const joined = parts.length === 1 ? parts[0]! : concat(parts, 1);
      return pad(joined, [[0, 0], [0, cap - row - n], [0, 0], [0, 0]]);
    }),
  );
  dst.dispose();
  return rebuilt;
}
