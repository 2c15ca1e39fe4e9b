/**
 * WGSL kernel of `rope` (@ring-linear/attention, MODEL_SPEC §2.3): partial NeoX rotate-half on the
 * first rotaryDim channels of each head, fp32 angles position * inv_freq as the reference forms
 * them (inv_freq is uploaded from the op's own table, ropeInvFreq's values, so every backend uses
 * the same f32 numbers).
 *
 * Angles reach position * inv_freq[0] = position radians, i.e. 10^5 and more with long contexts,
 * where Cody-Waite reduction by pi/4 in f32 (Cephes, the elementwise sin/cos) loses all accuracy.
 * So sin and cos reduce exactly: Payne-Hanek with 2/pi to 208 bits, in 16-bit limbs of u32 integer
 * arithmetic (no fused multiply-add or f64 needed), then the Cephes polynomials on [-pi/4, pi/4].
 * The result is within a few f32 ulps of cos/sin of the f32 angle at any finite angle.
 */
import { EW_HELPERS } from '../elementwise.js';
import { grid1d, LINEAR_ID, register } from '../util.js';
import { actCode, declareBindings } from './tile.js';

interface RopeAttrs {
  rotaryDim: number;
  theta: number;
  inverse: boolean;
}

/** inv_freq[i] = 1 / theta^(2i / rotaryDim), each step rounded to f32 (the op's definition). */
function invFreq(rotaryDim: number, theta: number): Float32Array {
  const out = new Float32Array(rotaryDim / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = Math.fround(1 / Math.fround(Math.pow(Math.fround(theta), Math.fround((2 * i) / rotaryDim))));
  }
  return out;
}

/**
 * sin and cos of an f32 angle with exact range reduction. 2/pi's binary fraction in 16-bit limbs,
 * most significant first (0.a2f9836e 4e441529 ..., checked against a BigInt Machin-formula value).
 */
export const SINCOS_WGSL = /* wgsl */ `
var<private> AT_TWO_OVER_PI: array<u32, 16> = array<u32, 16>(
  0xa2f9u, 0x836eu, 0x4e44u, 0x1529u, 0xfc27u, 0x57d1u, 0xf534u, 0xddc0u,
  0xdb62u, 0x9599u, 0x3c43u, 0x9041u, 0xfe51u, 0x63abu, 0xdebbu, 0xc561u);

fn at_u32_to_f32(v: u32) -> f32 { return bitcast<f32>(rl_u32_to_f32_bits(v)); }

// 32 bits of the 128-bit number p (16-bit limbs, least significant first) from bit 'pos' up.
fn at_bits32(p: ptr<function, array<u32, 8>>, pos: u32) -> u32 {
  let li = pos >> 4u;
  let off = pos & 15u;
  if (off == 0u) { return (*p)[li] | ((*p)[li + 1u] << 16u); }
  return ((*p)[li] >> off) | ((*p)[li + 1u] << (16u - off)) | ((*p)[li + 2u] << (32u - off));
}

// |x| = q pi/2 + r with |r| <= pi/4 (q mod 4), for finite x.
struct AtReduced { q: u32, r: f32 }
fn at_reduce(x: f32) -> AtReduced {
  let u = bitcast<u32>(x) & 0x7fffffffu;
  if (u <= 0x3f490fdbu) { return AtReduced(0u, bitcast<f32>(u)); }
  // |x| = m 2^e with m a 24-bit integer.
  let e = i32(u >> 23u) - 150;
  let m = (u & 0x7fffffu) | 0x800000u;
  // Bits of 2/pi worth more than 2^(2-e) only add multiples of 4 to |x| 2/pi: a 96-bit window W
  // from bit i0 (bit 1 weighs 1/2) suffices, and |x| 2/pi = m W 2^(e - i0 - 95).
  let i0 = max(1, e - 1);
  let s = u32(i0 + 95 - e);
  let sh = u32(i0 - 1) & 15u;
  let l0 = u32(i0 - 1) >> 4u;
  var w: array<u32, 6>;
  for (var t = 0u; t < 6u; t = t + 1u) {
    let hi = AT_TWO_OVER_PI[l0 + t];
    let lo = AT_TWO_OVER_PI[l0 + t + 1u];
    w[5u - t] = ((hi << sh) | (lo >> (16u - sh))) & 0xffffu;
  }
  // p = m W, schoolbook on 16-bit limbs (each step fits u32: (2^16-1)^2 + 2 (2^16-1) = 2^32 - 1).
  var p: array<u32, 8>;
  let ml = array<u32, 2>(m & 0xffffu, m >> 16u);
  for (var j = 0u; j < 2u; j = j + 1u) {
    var carry = 0u;
    for (var i = 0u; i < 6u; i = i + 1u) {
      let t = w[i] * ml[j] + p[i + j] + carry;
      p[i + j] = t & 0xffffu;
      carry = t >> 16u;
    }
    p[j + 6u] = carry;
  }
  // Quadrant: bits s and s + 1; fraction: the 64 bits below s.
  let qs = s >> 4u;
  var qv = p[qs] >> (s & 15u);
  if ((s & 15u) == 15u) { qv = qv | (p[qs + 1u] << 1u); }
  var q = qv & 3u;
  var fh = at_bits32(&p, s - 32u);
  var fl = at_bits32(&p, s - 64u);
  var sgn = 1.0;
  if (fh >= 0x80000000u) {
    // Fraction >= 1/2: round to the next quadrant, r = -(1 - f) pi/2 (64-bit two's complement).
    q = (q + 1u) & 3u;
    fh = ~fh + select(0u, 1u, fl == 0u);
    fl = 0u - fl;
    sgn = -1.0;
  }
  let f = at_u32_to_f32(fh) * 2.3283064365386963e-10 + at_u32_to_f32(fl) * 5.421010862427522e-20;
  return AtReduced(q, sgn * f * 1.5707963267948966);
}

// (cos x, sin x) of an f32 angle.
fn at_sincos(x: f32) -> vec2<f32> {
  let red = at_reduce(x);
  let z = red.r * red.r;
  let sr = ew_sin_poly(red.r, z);
  let cr = ew_cos_poly(z);
  var c: f32; var s: f32;
  switch (red.q) {
    case 0u: { c = cr; s = sr; }
    case 1u: { c = -sr; s = cr; }
    case 2u: { c = -cr; s = -sr; }
    default: { c = sr; s = -cr; }
  }
  if (x < 0.0) { s = -s; }
  return vec2<f32>(c, s);
}`;

register('rope', ({ backend, inputs: [x, positions], outputs: [y], attrs }) => {
  const { rotaryDim, theta, inverse } = attrs as RopeAttrs;
  const r = x!.shape.length;
  const [T, H, D] = x!.shape.slice(r - 3) as [number, number, number];
  const n = x!.size;
  if (n === 0) return;
  const perBatch = positions!.shape.length === 2;
  const WG = backend.workgroupSize(256);
  const prog = backend.program(`rope|${WG}`, () => {
    const b = declareBindings(backend, [
      { act: 'x', word: 8 },
      { fixed: { name: 'pos', dtype: 'i32', access: 'read' } },
      { fixed: { name: 'inv', dtype: 'f32', access: 'read' } },
      { actOut: 'y', word: 9 },
    ]);
    return {
    tensors: [],
    extraBindings: b.types,
    uniformWords: 12,
    workgroupSize: WG,
    helpers: `${b.decl}\n${EW_HELPERS}\n${SINCOS_WGSL}`,
    body: `let T = u(0u); let H = u(1u); let D = u(2u); let rot = u(3u); let n = u(4u); let perBatch = u(5u) != 0u; let inverse = u(6u) != 0u;
let i = ${LINEAR_ID(WG)};
if (i >= n) { return; }
let d = i % D;
if (d >= rot) { y_st(i, x_ld(i)); return; }
let half = rot / 2u;
let row = i / (D * H); // b * T + t
let p = pos_ld(select(row % T, row, perBatch));
// fp32 angle position * inv_freq (the i32 -> f32 conversion rounded to nearest even, as Math.fround)
let fi = select(d, d - half, d >= half);
let angle = bitcast<f32>(rl_i32_to_f32_bits(p)) * inv_ld(fi);
let cs = at_sincos(angle);
let sn = select(cs.y, -cs.y, inverse);
let base = i - d;
var v: f32;
if (d < half) { v = x_ld(i) * cs.x - x_ld(base + d + half) * sn; }
else { v = x_ld(i) * cs.x + x_ld(base + d - half) * sn; }
y_st(i, v);`,
    };
  });
  const table = backend.allocate(4 * (rotaryDim / 2));
  backend.write(table, invFreq(rotaryDim, theta));
  try {
    const u = new Uint32Array([T, H, D, rotaryDim, n, perBatch ? 1 : 0, inverse ? 1 : 0, 0, actCode(x!.dtype), actCode(y!.dtype), 0, 0]);
    backend.dispatch(prog, [x!.buffer, positions!.buffer, table, y!.buffer], u, grid1d(n, WG), 'rope');
  } finally {
    backend.free(table);
  }
});

