/**
 * Deterministic random values for the emulated kernel tests (mulberry32): the same seed gives the
 * same inputs on every run, and each test prints its seed.
 */
function mulberry32(seed: number, n: number, scale: number, offset: number): Float64Array {
  let a = seed >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) * scale + offset;
  }
  return out;
}

/** Uniform values in [-1, 1). */
export const randoms = (seed: number, n: number): Float64Array => mulberry32(seed, n, 2 ** -31, -1);

/** Uniform values in [0, 1). */
export const uniforms = (seed: number, n: number): Float64Array => mulberry32(seed, n, 2 ** -32, 0);
