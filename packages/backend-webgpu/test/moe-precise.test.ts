// The float-float arithmetic of the MoE router (src/kernels/moe/precise.ts) in test kernels,
// against float64 on the host:
//   ff_exp_neg       relative error of m * 2^n against Math.exp below 2^-42 on [-106, 0]
//   ff_sigmoid_bits  equal to the CPU's fl32(1 / (1 + exp(-l))) (float64) on random logits,
//                    saturated ranges, subnormal results, +-0, +-inf and NaN
//   precise logits   x [M, H] @ w [E, H]^T equal to the float64 dot products rounded once (the CPU
//                    router's logits), where a plain f32 sum is many ulps off
import { describe, expect, it } from 'vitest';
import { tensor } from '@ring-linear/core';
import type { WebGpuBackend } from '../src/backend.js';
import { FF_WGSL, runPreciseLogits } from '../src/kernels/moe/precise.js';
import type { TensorDecl } from '../src/wgsl/access.js';
import { newSeed, rng, webgpu } from './helpers.js';

const { gpu, reason } = await webgpu();

const F = new Float32Array(1);
const U = new Uint32Array(F.buffer);
const bitsOf = (x: number) => ((F[0] = x), U[0]!);
const valueOf = (b: number) => ((U[0] = b >>> 0), F[0]!);

/** Runs `body` for each i < n with input bits a_raw(i); writes `outs` u32 words per element to o. */
async function runUnary(b: WebGpuBackend, key: string, body: string, a: Uint32Array, outs: number): Promise<Uint32Array> {
  const n = a.length;
  const prog = b.program(`test_ff_${key}`, () => ({
    tensors: [
      { name: 'a', dtype: 'i32', access: 'read' },
      { name: 'o', dtype: 'i32', access: 'write' },
    ] as TensorDecl[],
    uniformWords: 4,
    workgroupSize: 64,
    helpers: FF_WGSL,
    body: `FF_ZERO = u(1u);\nlet i = gid.x;\nif (i >= u(0u)) { return; }\nlet x = bitcast<f32>(a_raw(i));\n${body}`,
  }));
  const ba = b.allocate(4 * n);
  const bo = b.allocate(4 * n * outs);
  try {
    b.write(ba, a);
    b.dispatch(prog, [ba, bo], new Uint32Array([n, 0, 0, 0]), [Math.ceil(n / 64)]);
    return new Uint32Array((await b.read(bo)).slice().buffer);
  } finally {
    b.free(ba);
    b.free(bo);
  }
}

describe.skipIf(!gpu)(`float-float arithmetic of the router (${gpu?.capabilities.device ?? reason})`, () => {
  it('ff_exp_neg: exp(a) = m 2^n to better than 2^-42 relative on [-106, 0]', async () => {
    const r = rng(newSeed('ff_exp_neg'));
    const a = Uint32Array.from({ length: 4000 }, (_, i) => bitsOf(Math.fround(i < 3000 ? -r() * 106 : -r() * 2 ** (-30 * r()))));
    a[0] = 0;
    a[1] = bitsOf(-106);
    const out = await runUnary(gpu!, 'exp', 'let e = ff_exp_neg(vec2<f32>(x, 0.0));\no_st_raw(3u * i, bitcast<u32>(e.m.x));\no_st_raw(3u * i + 1u, bitcast<u32>(e.m.y));\no_st_raw(3u * i + 2u, bitcast<u32>(e.n));', a, 3);
    let worst = 0;
    for (let i = 0; i < a.length; i++) {
      const x = valueOf(a[i]!);
      const n = out[3 * i + 2]! | 0;
      const got = (valueOf(out[3 * i]!) + valueOf(out[3 * i + 1]!)) * 2 ** n;
      const want = Math.exp(x);
      worst = Math.max(worst, Math.abs(got - want) / want);
    }
    console.log(`ff_exp_neg: worst relative error ${worst.toExponential(2)} (2^${Math.log2(worst).toFixed(1)})`);
    expect(worst).toBeLessThan(2 ** -42);
  });

  it("ff_sigmoid_bits equals the CPU's float64 sigmoid rounded to f32", async () => {
    const r = rng(newSeed('ff_sigmoid'));
    const vals: number[] = [0, -0, Infinity, -Infinity, NaN, 2 ** -140, -(2 ** -140), 16.6, -16.6, 87.3, -87.3, -103.5, -103.9, -104.5, 104, 200, -200];
    for (let i = 0; i < 8000; i++) vals.push((r() - 0.5) * 20);
    for (let i = 0; i < 4000; i++) vals.push((r() - 0.5) * 220); // saturated and subnormal results
    for (let i = 0; i < 2000; i++) vals.push((r() - 0.5) * 2 ** (-20 * r()));
    const a = Uint32Array.from(vals, (v) => bitsOf(Math.fround(v)));
    const got = await runUnary(gpu!, 'sigmoid', 'o_st_raw(i, ff_sigmoid_bits(x));', a, 1);
    const bad: string[] = [];
    let oneUlp = 0;
    for (let i = 0; i < a.length; i++) {
      const l = valueOf(a[i]!);
      const want = Math.fround(1 / (1 + Math.exp(-l)));
      const g = valueOf(got[i]!);
      if (Object.is(g, want) || (Number.isNaN(g) && Number.isNaN(want))) continue;
      if (Math.abs(got[i]! - bitsOf(want)) === 1) oneUlp++;
      else bad.push(`sigmoid(${l}): got ${g}, want ${want}`);
    }
    console.log(`ff_sigmoid_bits: ${oneUlp} of ${a.length} one ulp off (rounding-boundary cases)`);
    expect(bad).toEqual([]);
    expect(oneUlp).toBeLessThanOrEqual(2);
  });

  it("precise logits equal the CPU's float64 dot products rounded once (a plain f32 sum does not)", async () => {
    const r = rng(newSeed('precise logits'));
    const [M, E, H] = [23, 37, 700];
    const xs = Float32Array.from({ length: M * H }, () => (r() - 0.5) * 4);
    const ws = Float32Array.from({ length: E * H }, () => (r() - 0.5) * 0.2);
    const b = gpu!;
    const x = tensor(xs, [M, H], 'bf16', b); // bf16 input, decoded on load
    const w = tensor(ws, [E, H], 'f32', b);
    const xv = await x.data();
    const y = b.allocate(4 * M * E);
    try {
      runPreciseLogits(b, { buffer: x.storage!.buffer, shape: [M, H], dtype: 'bf16', size: M * H }, { buffer: w.storage!.buffer, shape: [E, H], dtype: 'f32', size: E * H }, y, M, E, H);
      const got = new Float32Array((await b.read(y)).slice().buffer);
      let same = 0;
      let naiveSame = 0;
      let maxUlp = 0;
      for (let m = 0; m < M; m++) {
        for (let e = 0; e < E; e++) {
          let acc = 0;
          let naive = Math.fround(0);
          for (let k = 0; k < H; k++) {
            acc += xv[m * H + k]! * ws[e * H + k]!;
            naive = Math.fround(naive + Math.fround(xv[m * H + k]! * ws[e * H + k]!));
          }
          const want = Math.fround(acc);
          const g = got[m * E + e]!;
          if (Object.is(g, want)) same++;
          if (Object.is(naive, want)) naiveSame++;
          maxUlp = Math.max(maxUlp, Math.abs(bitsOf(g) - bitsOf(want)));
        }
      }
      console.log(`precise logits: ${same} of ${M * E} equal to the CPU's, max ${maxUlp} ulp; a plain f32 sum: ${naiveSame} equal`);
      expect(maxUlp).toBeLessThanOrEqual(1);
      expect(same).toBeGreaterThanOrEqual(M * E - 2);
      expect(naiveSame).toBeLessThan(same); // the test can tell the two apart
    } finally {
      b.free(y);
      x.dispose();
      w.dispose();
    }
  });
});
