// The exact f32 arithmetic the FP8 kernels build on (src/kernels/fp8/exact.ts), run in a test
// kernel and checked bit for bit against the host, whose float64 results rounded once to f32 are
// correctly rounded for a quotient or product of two f32 values (float64 has > 2 x 24 + 2 bits):
//   rl_div_exact      every class of input: random bit patterns over the whole range (subnormal
//                     inputs and results included), signed zeros, infinities, NaNs, exact ties of
//                     subnormal results, quotients at the overflow and underflow edges
//   rl_mul_fp8_exact  every E4M3 and E5M2 code times random, tiny (subnormal products) and huge
//                     (overflowing) scales, zero, inf and NaN scales
//   fp8_scale_bits    the scale rule against the definition (MODEL_SPEC §8)
import { describe, expect, it } from 'vitest';
import { E4M3_MAX, E5M2_MAX, decodeToF32 } from '@ring-linear/core';
import type { WebGpuBackend } from '../src/backend.js';
import { EXACT_WGSL } from '../src/kernels/fp8/exact.js';
import type { TensorDecl } from '../src/wgsl/access.js';
import { newSeed, rng, webgpu } from './helpers.js';

const { gpu, reason } = await webgpu();

const F = new Float32Array(1);
const U = new Uint32Array(F.buffer);
const bitsOf = (x: number) => ((F[0] = x), U[0]!);
const valueOf = (b: number) => ((U[0] = b >>> 0), F[0]!);
const isNanBits = (b: number) => (b & 0x7fffffff) > 0x7f800000;

/** Runs `expr` (u32, over a_raw(i), b_raw(i)) for every i on the GPU; returns the u32 results. */
async function runBinary(b: WebGpuBackend, key: string, expr: string, a: Uint32Array, c: Uint32Array): Promise<Uint32Array> {
  const n = a.length;
  const prog = b.program(`test_exact_${key}`, () => ({
    tensors: [
      { name: 'a', dtype: 'i32', access: 'read' },
      { name: 'b', dtype: 'i32', access: 'read' },
      { name: 'o', dtype: 'i32', access: 'write' },
    ] as TensorDecl[],
    uniformWords: 4,
    workgroupSize: 64,
    helpers: EXACT_WGSL,
    body: `let i = gid.x + gid.y * nwg.x * 64u;\nif (i >= u(0u)) { return; }\no_st_raw(i, ${expr});`,
  }));
  const ba = b.allocate(4 * n);
  const bb = b.allocate(4 * n);
  const bo = b.allocate(4 * n);
  try {
    b.write(ba, a);
    b.write(bb, c);
    const groups = Math.ceil(n / 64);
    b.dispatch(prog, [ba, bb, bo], new Uint32Array([n, 0, 0, 0]), [Math.min(groups, 65535), Math.ceil(groups / 65535)]);
    return new Uint32Array((await b.read(bo)).slice().buffer);
  } finally {
    for (const x of [ba, bb, bo]) b.free(x);
  }
}

function expectBits(got: Uint32Array, want: number[], what: (i: number) => string): void {
  let bad = 0;
  const first: string[] = [];
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]! >>> 0;
    if (g === w || (isNanBits(g) && isNanBits(w))) continue;
    bad++;
    if (first.length < 5) first.push(`${what(i)}: got 0x${g.toString(16)} (${valueOf(g)}), want 0x${w.toString(16)} (${valueOf(w)})`);
  }
  expect(first, `${bad} of ${want.length} differ`).toEqual([]);
}

describe.skipIf(!gpu)(`exact f32 arithmetic of the FP8 kernels (${gpu?.capabilities.device ?? reason})`, () => {
  it('rl_div_exact equals the correctly rounded f32 quotient, specials and subnormals included', async () => {
    const r = rng(newSeed('rl_div_exact'));
    const a: number[] = [];
    const b: number[] = [];
    const push = (x: number, y: number) => (a.push(x >>> 0), b.push(y >>> 0));
    const randBits = () => Math.floor(r() * 2 ** 32);
    // Whole-range bit patterns (about 1 in 256 an inf/NaN pattern, 1 in 256 subnormal).
    for (let i = 0; i < 6000; i++) push(randBits(), randBits());
    // Quantizer-like operands: values over a scale of amax / 448.
    for (let i = 0; i < 6000; i++) {
      const s = Math.fround(Math.exp((r() - 0.5) * 40) / 448);
      push(bitsOf(Math.fround((r() - 0.5) * 900 * s)), bitsOf(s));
    }
    // Subnormal numerators and denominators, results near and below 2^-126 and 2^-149.
    for (let i = 0; i < 3000; i++) {
      const sub = randBits() & 0x807fffff;
      push(sub, bitsOf(Math.fround(1 + r() * 7)));
      push(bitsOf(Math.fround((r() + 0.5) * 2 ** -120)), bitsOf(Math.fround((r() + 0.5) * 2 ** (10 + r() * 20))));
      push(randBits() & 0x807fffff, randBits() & 0x807fffff);
    }
    // Exact ties of subnormal results (odd multiples of 2^-149 halved) and exact quotients.
    for (const k of [1, 3, 5, 7, 0x7fffff, 0x400001]) for (const d of [2, 4, 8]) push(k, bitsOf(d));
    // Overflow and underflow edges, signed zeros, infinities, NaNs.
    const specials = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f7fffff, 0x00800000, 0x00000001, 0x3f800000, 0xbf800000, 0x7f000000, 0x0000ffff];
    for (const x of specials) for (const y of specials) push(x, y);
    const A = Uint32Array.from(a);
    const B = Uint32Array.from(b);
    const got = await runBinary(gpu!, 'div', 'rl_div_exact(a_raw(i), b_raw(i))', A, B);
    const want = a.map((x, i) => bitsOf(Math.fround(valueOf(x) / valueOf(B[i]!))));
    expectBits(got, want, (i) => `${valueOf(a[i]!)} / ${valueOf(b[i]!)} (0x${a[i]!.toString(16)} / 0x${b[i]!.toString(16)})`);
  });

  it('rl_mul_fp8_exact equals fl32(decode(code) * scale) for every code of both formats', async () => {
    const r = rng(newSeed('rl_mul_fp8_exact'));
    for (const dtype of ['f8e4m3', 'f8e5m2'] as const) {
      const values = decodeToF32(dtype, Uint8Array.from({ length: 256 }, (_, i) => i));
      const codes: number[] = [];
      const scales: number[] = [];
      const scaleSet = [0, 0x80000000, 0x7f800000, 0x7fc00000, 0x00000001, 0x00800000, 0x7f7fffff, 0xff7fffff, bitsOf(2 ** -140), bitsOf(0.05)];
      for (let c = 0; c < 256; c++) {
        for (const s of scaleSet) (codes.push(c), scales.push(s >>> 0));
        for (let k = 0; k < 12; k++) {
          codes.push(c);
          // Log-uniform magnitudes from 2^-150 to 2^128: products from below half the smallest
          // subnormal to past the largest finite f32.
          scales.push(bitsOf(Math.fround((r() < 0.5 ? -1 : 1) * 2 ** (-150 + r() * 278))));
        }
      }
      const got = await runBinary(gpu!, `mul_${dtype}`, `rl_mul_fp8_exact(a_raw(i), ${dtype === 'f8e4m3'}, b_raw(i))`, Uint32Array.from(codes), Uint32Array.from(scales));
      const want = codes.map((c, i) => bitsOf(Math.fround(values[c]! * valueOf(scales[i]!))));
      expectBits(got, want, (i) => `${dtype} code 0x${codes[i]!.toString(16)} (${values[codes[i]!]}) * ${valueOf(scales[i]!)}`);
    }
  });

  it('fp8_scale_bits: max(fl32(amax / max), 2^-126), optionally up to a power of two; NaN and inf kept', async () => {
    const r = rng(newSeed('fp8_scale_bits'));
    const amax: number[] = [0, 0x7f800000, 0x7fc00000, 0x00000001, 0x007fffff, bitsOf(448), bitsOf(57344), bitsOf(2 ** -120), 0x7f7fffff];
    for (let i = 0; i < 3000; i++) amax.push(bitsOf(Math.fround(2 ** (-140 + r() * 268))));
    for (const [dtype, max] of [['f8e4m3', E4M3_MAX], ['f8e5m2', E5M2_MAX]] as const) {
      for (const pow2 of [false, true]) {
        const maxBits = bitsOf(max);
        const got = await runBinary(gpu!, `scale_${pow2}`, `fp8_scale_bits(a_raw(i), b_raw(i), ${pow2})`, Uint32Array.from(amax), new Uint32Array(amax.length).fill(maxBits));
        const want = amax.map((a) => {
          const v = valueOf(a);
          if (Number.isNaN(v)) return 0x7fc00000;
          let s = Math.max(Math.fround(v / max), 2 ** -126);
          if (pow2 && Number.isFinite(s)) {
            let p = 2 ** -126;
            while (p < s) p *= 2;
            s = p;
          }
          return bitsOf(s);
        });
        expectBits(got, want, (i) => `${dtype} pow2=${pow2} amax ${valueOf(amax[i]!)}`);
      }
    }
  });
});
