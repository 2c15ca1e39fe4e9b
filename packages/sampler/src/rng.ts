/**
 * The uniform draws of sampling, from core's Philox generator (the same function every backend
 * implements). A sequence has a 64-bit key (its seed) and a stream number s; the draw of step t
 * (0-based generated-token index) uses the Philox counter (lo = t, hi = s):
 *
 *   u = (x0 >>> 8) * 2^-24,  x = Philox4x32-10(counter (t, s, 0, 0), key (seed lo, seed hi))
 *
 * With one seed for a batch, sequence i has stream s = i; with a seed per prompt, s = 0. Either
 * way a sequence's draws depend only on (key, s, step), not on the other prompts of the batch, on
 * when a sequence finished, or on the backend.
 */
import { Generator, getDefaultGenerator, philox4x32, philoxUnitUniform } from '@ring-linear/core';

export class SequenceRandom {
  readonly #generator: Generator;
  /** The stream number (the high word of the counter). */
  readonly stream: number;

  constructor(seed: number | bigint, stream: number) {
    this.#generator = new Generator(seed);
    this.stream = stream;
  }

  /** The key (seed modulo 2^64). */
  get seed(): bigint {
    return this.#generator.seed;
  }

  /** The uniform in [0, 1) of generation step `step`. */
  uniform(step: number): number {
    const g = this.#generator;
    g.setState({ key: g.state().key, offset: [step >>> 0, this.stream >>> 0] });
    return philoxUnitUniform(g.draw(1), 0);
  }
}

/**
 * A fresh 64-bit seed from core's default generator (one Philox block; the generator advances by
 * one counter), so `manualSeed(s)` before unseeded generation reproduces it.
 */
export function seedFromDefaultGenerator(): bigint {
  const a = getDefaultGenerator().draw(1);
  const x = philox4x32(a.counterLo, a.counterHi, 0, 0, a.key0, a.key1);
  return (BigInt(x[1]!) << 32n) | BigInt(x[0]!);
}
