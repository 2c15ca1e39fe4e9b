/**
 * Text of a stream of generated ids: incremental detokenization (a token's text can depend on its
 * neighbours, and a UTF-8 character can span several byte tokens) and stop strings matched on the
 * text, across token boundaries.
 */
import type { TextTokenizer } from '@ring-linear/models';

/** The tokenizer calls the sampler uses. */
export type Detokenizer = Pick<TextTokenizer, 'decode'>;

/**
 * Turns ids into text deltas. Each push decodes a window that starts at the previous delta's
 * first token (so context-dependent spacing is seen) and emits the text past the already emitted
 * part, holding it back while it ends in U+FFFD (an incomplete UTF-8 sequence). flush() emits what
 * is held back at the end.
 */
export class IncrementalDetokenizer {
  readonly #tokenizer: Detokenizer;
  readonly #skipSpecial: boolean;
  readonly #ids: number[] = [];
  #prefix = 0;
  #read = 0;

  constructor(tokenizer: Detokenizer, options: { skipSpecialTokens?: boolean } = {}) {
    this.#tokenizer = tokenizer;
    this.#skipSpecial = options.skipSpecialTokens ?? true;
  }

  #decode(from: number, to: number): string {
    return from >= to ? '' : this.#tokenizer.decode(this.#ids.slice(from, to), { skipSpecialTokens: this.#skipSpecial });
  }

  /** Adds an id; returns the text it completes ('' while held back). */
  push(id: number): string {
    this.#ids.push(id);
    return this.#emit(false);
  }

  /** The held-back text (possibly with U+FFFD for an incomplete character). */
  flush(): string {
    return this.#emit(true);
  }

  #emit(final: boolean): string {
    const before = this.#decode(this.#prefix, this.#read);
    const now = this.#decode(this.#prefix, this.#ids.length);
    if (now.length <= before.length || (!final && now.endsWith('\uFFFD'))) return '';
    // A window that rewrote its start (rare normalizations) still continues from the emitted length.
    const delta = now.startsWith(before) ? now.slice(before.length) : now.slice(Math.min(before.length, now.length));
    this.#prefix = this.#read;
    this.#read = this.#ids.length;
    return delta;
  }
}

/**
 * Finds stop strings in streamed text. Text that could still be the start of a stop string is held
 * back (never emitted, then found to belong to a stop), so a stop string spanning any number of
 * pushes is found and the emitted text never contains it.
 */
export class StopMatcher {
  readonly stops: readonly string[];
  readonly #include: boolean;
  #pending = '';

  constructor(stops: readonly string[], options: { includeStopString?: boolean } = {}) {
    this.stops = stops;
    this.#include = options.includeStopString ?? false;
  }

  /** Adds text; returns what can be emitted and, when a stop string completed, which one. */
  push(text: string): { text: string; stop: string | null } {
    const buf = this.#pending + text;
    if (this.stops.length === 0) {
      this.#pending = '';
      return { text: buf, stop: null };
    }
    // Earliest occurrence; at one position the first stop of the list wins.
    let at = -1;
    let which: string | null = null;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        which = s;
      }
    }
    if (which !== null) {
      this.#pending = '';
      return { text: buf.slice(0, at) + (this.#include ? which : ''), stop: which };
    }
    // Hold back the longest suffix that is a proper prefix of a stop string.
    let hold = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, buf.length); n > hold; n--) {
        if (buf.endsWith(s.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    this.#pending = buf.slice(buf.length - hold);
    return { text: buf.slice(0, buf.length - hold), stop: null };
  }

  /** The held-back text (the sequence ended without completing a stop string). */
  flush(): string {
    const t = this.#pending;
    this.#pending = '';
    return t;
  }
}
