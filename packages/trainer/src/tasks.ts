/**
 * Small synthetic tasks with byte-level text, for tests, demos and the RL example: each example
 * is a prompt and an answer; as training documents only the answer tokens are targets (the prompt
 * is random by construction, so predicting it would only add irreducible loss).
 *
 *   copy       "qbhd=" -> "qbhd"
 *   reversal   "qbhd=" -> "dhbq"
 *   addition   "23+48=" -> "71"
 *
 * Draws come from Philox (seeded), so a seed gives the same examples everywhere.
 */
import { philox4x32 } from '@ring-linear/core';
import { TrainerConfigError } from './errors.js';
import type { DataTokenizer, TokenizedDocument } from './data/documents.js';

export interface TaskExample {
  readonly prompt: string;
  readonly answer: string;
}

export type TaskKind = 'copy' | 'reversal' | 'addition';

export interface TaskOptions {
  readonly count: number;
  readonly seed?: number;
  /** copy/reversal: string length (default 6). */
  readonly length?: number;
  /** copy/reversal: letters to draw from (default 'abcdefgh'). */
  readonly alphabet?: string;
  /** addition: operands in [0, maxOperand] (default 49). */
  readonly maxOperand?: number;
}

/** A seeded stream of uniform integers in [0, n). */
export class TaskRandom {
  #counter = 0;
  readonly #k0: number;
  readonly #k1: number;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new TrainerConfigError(`TaskRandom: seed must be a non-negative safe integer, got ${seed}`);
    this.#k0 = seed >>> 0;
    this.#k1 = Math.floor(seed / 4294967296) >>> 0;
  }

  int(n: number): number {
    const x = philox4x32(this.#counter++ >>> 0, 0, 0x7a5c, 0, this.#k0, this.#k1);
    return Math.floor(((x[0]! * 2097152 + (x[1]! >>> 11)) / 9007199254740992) * n);
  }
}

/** Examples of a task. */
export function taskExamples(kind: TaskKind, options: TaskOptions): TaskExample[] {
  const { count } = options;
  if (!Number.isInteger(count) || count < 1) throw new TrainerConfigError(`taskExamples: count must be an integer >= 1, got ${count}`);
  const rng = new TaskRandom(options.seed ?? 0);
  const out: TaskExample[] = [];
  for (let i = 0; i < count; i++) {
    if (kind === 'addition') {
      const max = options.maxOperand ?? 49;
      const a = rng.int(max + 1);
      const b = rng.int(max + 1);
      out.push({ prompt: `${a}+${b}=`, answer: String(a + b) });
    } else if (kind === 'copy' || kind === 'reversal') {
      const alphabet = options.alphabet ?? 'abcdefgh';
      const n = options.length ?? 6;
      let s = '';
      for (let j = 0; j < n; j++) s += alphabet[rng.int(alphabet.length)]!;
      out.push({ prompt: `${s}=`, answer: kind === 'copy' ? s : [...s].reverse().join('') });
    } else {
      throw new TrainerConfigError(`taskExamples: unknown task ${JSON.stringify(kind)} (copy, reversal, addition)`);
    }
  }
  return out;
}

/**
 * Training documents from examples: prompt + answer + EOS, with only the answer and the EOS as
 * targets (the EOS teaches the model to stop).
 */
export function taskDocuments(examples: readonly TaskExample[], tokenizer: DataTokenizer): TokenizedDocument[] {
  const eos = tokenizer.eosTokenId;
  return examples.map(({ prompt, answer }) => {
    const p = tokenizer.encode(prompt, { addSpecialTokens: false });
    const a = tokenizer.encode(answer, { addSpecialTokens: false });
    const tokens = Int32Array.from([...p, ...a, ...(eos !== null ? [eos] : [])]);
    const lossMask = new Uint8Array(tokens.length);
    lossMask.fill(1, p.length);
    return { tokens, lossMask };
  });
}
