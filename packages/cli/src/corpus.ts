/**
 * The demo corpus: short stories from a small grammar, generated from a seed (no downloads, no
 * files to ship, the same text on every machine and in the browser).
 *
 * Why a grammar and not a book: a byte-level model with about half a million parameters, trained
 * for a few minutes on two CPU cores, sees some tens of thousands of tokens. On a small vocabulary
 * of words in regular sentences it learns to spell the words and chain them into plausible
 * sentences in that time, so its samples visibly resemble the corpus; on real prose it would
 * still be printing letter soup. The stories keep a little structure across sentences (a named
 * character is referred to again by a pronoun, an object comes back with "the"), which the
 * attention layers can pick up.
 *
 * No Node.js imports: the browser playground uses this module too.
 */

const NAMES = [
  ['Mia', 'she'],
  ['Tom', 'he'],
  ['Lena', 'she'],
  ['Sam', 'he'],
  ['Ava', 'she'],
  ['Ben', 'he'],
] as const;
const ANIMALS = ['cat', 'dog', 'bird', 'fox', 'frog', 'duck'] as const;
const THINGS = ['ball', 'kite', 'hat', 'box', 'cake', 'book'] as const;
const COLORS = ['red', 'blue', 'green', 'little', 'big', 'old'] as const;
const PLACES = ['park', 'garden', 'house', 'river', 'hill', 'shop'] as const;
const FEELINGS = ['happy', 'sad', 'tired', 'hungry', 'glad'] as const;
const TIMES = ['One day', 'In the morning', 'At night', 'Then', 'Later'] as const;

/** mulberry32: a small seeded generator (the corpus must not depend on Math.random). */
export class CorpusRandom {
  #s: number;

  constructor(seed: number) {
    this.#s = seed >>> 0;
  }

  /** A uniform double in [0, 1). */
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** One story of 3 to 5 sentences about one character and one thing. */
export function story(rng: CorpusRandom): string {
  const [name, pronoun] = rng.pick(NAMES);
  const [friend] = rng.pick(NAMES.filter(([n]) => n !== name));
  const thing = rng.pick(THINGS);
  const color = rng.pick(COLORS);
  const animal = rng.pick(ANIMALS);
  const place = rng.pick(PLACES);
  const s: string[] = [];
  s.push(`${rng.pick(TIMES)}, ${name} went to the ${place}.`);
  switch (Math.floor(rng.next() * 3)) {
    case 0:
      s.push(`${cap(pronoun)} saw a ${color} ${animal}.`);
      s.push(`The ${animal} had a ${thing}.`);
      s.push(`${name} and the ${animal} played with the ${thing}.`);
      break;
    case 1:
      s.push(`${cap(pronoun)} found a ${color} ${thing}.`);
      s.push(`${cap(pronoun)} gave the ${thing} to ${friend}.`);
      s.push(`${friend} was ${rng.pick(FEELINGS)}.`);
      break;
    default:
      s.push(`${cap(pronoun)} lost the ${color} ${thing}.`);
      s.push(`A ${animal} found the ${thing} by the ${rng.pick(PLACES)}.`);
      s.push(`${name} said thank you to the ${animal}.`);
  }
  if (rng.next() < 0.5) s.push(`${name} was ${rng.pick(FEELINGS)}.`);
  return s.join(' ');
}

export interface DemoCorpusOptions {
  /** Number of stories (default 600: about 70 KB of text). */
  readonly stories?: number;
  /** Seed of the generator (default 1). */
  readonly seed?: number;
}

/** The demo corpus: `stories` stories, one document each. */
export function demoCorpus(options: DemoCorpusOptions = {}): string[] {
  const n = options.stories ?? 600;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`demoCorpus: stories must be an integer >= 1, got ${n}`);
  const rng = new CorpusRandom(options.seed ?? 1);
  return Array.from({ length: n }, () => story(rng));
}

/** Prompts that start like the corpus's stories (what the demo samples from). */
export const DEMO_PROMPTS: readonly string[] = ['One day, Mia', 'In the morning, Tom went to the', 'Then, Ben'];

/** The words of the corpus (for tests: how corpus-like a sample is). */
export function corpusWords(): Set<string> {
  const words = new Set<string>();
  const add = (s: string) => s.split(/[^A-Za-z]+/).filter(Boolean).forEach((w) => words.add(w.toLowerCase()));
  for (const [n, p] of NAMES) add(`${n} ${p}`);
  [ANIMALS, THINGS, COLORS, PLACES, FEELINGS, TIMES].forEach((l) => l.forEach(add));
  add('went to the saw a had and played with found gave was lost by said thank you');
  return words;
}
