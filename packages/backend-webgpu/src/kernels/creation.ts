/**
 * Creation kernels: arange (computed on the host in float64 and uploaded, exactly as the CPU
 * does), causalMask, and the Philox random ops (core/src/rng/philox.ts defines the bits).
 */
import { encodeHost, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1, type PhiloxAttrs } from '@ring-linear/core';
import { runMap } from './map.js';
import { EW_HELPERS } from './elementwise.js';
import { f32Bits, register } from './util.js';

register('arange', ({ backend, outputs: [y], attrs }) => {
  const { start, step } = attrs as { start: number; step: number };
  const vals = new Float64Array(y!.size);
  for (let i = 0; i < vals.length; i++) vals[i] = start + i * step;
  backend.write(y!.buffer, encodeHost(vals, y!.dtype));
});

register('causalMask', ({ backend, outputs: [y], attrs }) => {
  const { cols, offset } = attrs as { cols: number; offset: number };
  runMap(backend, {
    key: 'causalMask',
    inputs: [],
    output: y!,
    expr: 'u32(i32(i % p0) <= i32(i / p0) + bitcast<i32>(p1))',
    rawOut: true,
    params: [cols, offset >>> 0],
  });
});

const hex = (x: number) => `0x${(x >>> 0).toString(16)}u`;

/** Philox4x32-10 in WGSL (Salmon et al., SC'11), 32x32 -> 64-bit products from 16-bit halves. */
const PHILOX_WGSL = /* wgsl */ `
fn philox_mulhilo(a: u32, b: u32) -> vec2<u32> {
  let a0 = a & 0xffffu; let a1 = a >> 16u; let b0 = b & 0xffffu; let b1 = b >> 16u;
  let p00 = a0 * b0; let p01 = a0 * b1; let p10 = a1 * b0; let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  return vec2<u32>(p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u), a * b);
}
// x0, x1 of the block for element i: counter (offset + i as 64 bits, 0, 0), key (k0, k1).
fn philox_block(i: u32, k0: u32, k1: u32, clo: u32, chi: u32) -> vec2<u32> {
  let lo = clo + i;
  var x = vec4<u32>(lo, chi + select(0u, 1u, lo < clo), 0u, 0u);
  var key = vec2<u32>(k0, k1);
  for (var r = 0u; r < 10u; r++) {
    if (r > 0u) { key = key + vec2<u32>(${hex(PHILOX_W0)}, ${hex(PHILOX_W1)}); }
    let p0 = philox_mulhilo(${hex(PHILOX_M0)}, x.x);
    let p1 = philox_mulhilo(${hex(PHILOX_M1)}, x.z);
    x = vec4<u32>(p1.x ^ x.y ^ key.x, p1.y, p0.x ^ x.w ^ key.y, p0.y);
  }
  return x.xy;
}
// low + (high - low) * u with each operation rounded separately (no fused multiply-add): the
// product goes through a bit pattern XORed with a runtime zero, which no compiler can fuse.
fn philox_uniform(i: u32, k0: u32, k1: u32, clo: u32, chi: u32, lo: f32, d: f32, zero: u32) -> f32 {
  let u = f32(philox_block(i, k0, k1, clo, chi).x >> 8u) * 5.9604644775390625e-8;
  let p = bitcast<f32>(bitcast<u32>(d * u) ^ zero);
  return lo + p;
}
// Box-Muller, first output: sqrt(-2 ln u1) cos(2 pi u2), u1 in (0, 1], u2 in [0, 1).
fn philox_normal(i: u32, k0: u32, k1: u32, clo: u32, chi: u32, mean: f32, sdev: f32) -> f32 {
  let x = philox_block(i, k0, k1, clo, chi);
  let u1 = f32((x.x >> 8u) + 1u) * 5.9604644775390625e-8;
  let u2 = f32(x.y >> 8u) * 5.9604644775390625e-8;
  return mean + sdev * (sqrt(-2.0 * ew_log_pos(u1)) * philox_cos2pi(u2));
}
// cos(2 pi u) for u in [0, 1): quadrant from 4u (exact), then an angle of at most pi/4 from the
// exact fraction, so the result keeps its relative accuracy next to the zeros of cos.
fn philox_cos2pi(u: f32) -> f32 {
  let q4 = u * 4.0;
  let q = u32(floor(q4));
  let r = q4 - floor(q4);
  let b = min(r, 1.0 - r) * 1.5707963267948966;
  let z = b * b;
  let cb = ew_cos_poly(z);
  let sb = ew_sin_poly(b, z);
  let ca = select(sb, cb, r <= 0.5);
  let sa = select(cb, sb, r <= 0.5);
  switch (q) {
    case 0u: { return ca; }
    case 1u: { return -sa; }
    case 2u: { return -ca; }
    default: { return sa; }
  }
}
`;

register('randomUniform', ({ backend, outputs: [y], attrs }) => {
  const a = attrs as PhiloxAttrs & { low: number; high: number };
  const lo = Math.fround(a.low);
  const d = Math.fround(Math.fround(a.high) - lo);
  runMap(backend, {
    key: 'randomUniform',
    inputs: [],
    output: y!,
    expr: 'philox_uniform(i, p0, p1, p2, p3, bitcast<f32>(p4), bitcast<f32>(p5), p6)',
    params: [a.key0, a.key1, a.counterLo, a.counterHi, f32Bits(lo), f32Bits(d), 0],
    helpers: PHILOX_WGSL,
  });
});

register('randomNormal', ({ backend, outputs: [y], attrs }) => {
  const a = attrs as PhiloxAttrs & { mean: number; std: number };
  runMap(backend, {
    key: 'randomNormal',
    inputs: [],
    output: y!,
    expr: 'philox_normal(i, p0, p1, p2, p3, bitcast<f32>(p4), bitcast<f32>(p5))',
    params: [a.key0, a.key1, a.counterLo, a.counterHi, f32Bits(a.mean), f32Bits(a.std)],
    helpers: `${EW_HELPERS}\n${PHILOX_WGSL}`,
  });
});
