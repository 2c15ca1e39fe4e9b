/**
 * Workgroup-wide reduction of a two-field state `S { a, b }` with a user combine function: the
 * building block of reductions, softmax, rms_norm and cross-entropy.
 *
 * With subgroups, each subgroup first combines its lanes by a butterfly of subgroupShuffleXor,
 * then one value per subgroup goes through workgroup memory. Without, a shared-memory tree.
 * Either way the combine order is fixed by the shapes alone, so results are deterministic.
 * Every invocation of the workgroup must call it (it has barriers); all get the total.
 */

export interface StateSpec {
  /** WGSL types of the two fields. */
  readonly a: string;
  readonly b: string;
  /** WGSL of `fn s_comb(x: S, y: S) -> S` (order-independent up to float rounding). */
  readonly combine: string;
}

/**
 * Module-scope WGSL: `struct S`, `s_comb`, workgroup arrays and
 * `fn wg_reduce(s: S, lid: u32[, sg_lane: u32, sg_size: u32]) -> S`.
 */
export function wgReduceWgsl(state: StateSpec, wg: number, subgroups: boolean): string {
  const head = `struct S { a: ${state.a}, b: ${state.b} }
${state.combine}
var<workgroup> wg_a: array<${state.a}, ${wg}>;
var<workgroup> wg_b: array<${state.b}, ${wg}>;`;
  if (subgroups) {
    // Invocations of a 1-D workgroup form subgroups of consecutive local indices, so
    // lid / sg_size numbers the subgroups (deterministically).
    return `${head}
fn wg_reduce(s_in: S, lid: u32, sg_lane: u32, sg_size: u32) -> S {
  var s = s_in;
  for (var off = sg_size / 2u; off > 0u; off = off / 2u) {
    s = s_comb(s, S(subgroupShuffleXor(s.a, off), subgroupShuffleXor(s.b, off)));
  }
  let nsg = (${wg}u + sg_size - 1u) / sg_size;
  if (sg_lane == 0u) { wg_a[lid / sg_size] = s.a; wg_b[lid / sg_size] = s.b; }
  workgroupBarrier();
  var t = S(wg_a[0], wg_b[0]);
  for (var k = 1u; k < nsg; k++) { t = s_comb(t, S(wg_a[k], wg_b[k])); }
  workgroupBarrier();
  return t;
}`;
  }
  return `${head}
fn wg_reduce(s_in: S, lid: u32) -> S {
  wg_a[lid] = s_in.a;
  wg_b[lid] = s_in.b;
  workgroupBarrier();
  for (var half = ${wg / 2}u; half > 0u; half = half / 2u) {
    if (lid < half) {
      let t = s_comb(S(wg_a[lid], wg_b[lid]), S(wg_a[lid + half], wg_b[lid + half]));
      wg_a[lid] = t.a;
      wg_b[lid] = t.b;
    }
    workgroupBarrier();
  }
  let r = S(wg_a[0], wg_b[0]);
  workgroupBarrier();
  return r;
}`;
}

/** WGSL call of wg_reduce matching wgReduceWgsl's signature. */
export const wgReduceCall = (s: string, subgroups: boolean) => (subgroups ? `wg_reduce(${s}, lid, sg_lane, sg_size)` : `wg_reduce(${s}, lid)`);

// Common states -------------------------------------------------------------------------------

/** f32 sum (field b unused). */
export const SUM_F32: StateSpec = { a: 'f32', b: 'u32', combine: 'fn s_comb(x: S, y: S) -> S { return S(x.a + y.a, 0u); }' };

/** f32 max with NaN propagation (field b unused). */
export const MAX_F32: StateSpec = {
  a: 'f32',
  b: 'u32',
  combine: 'fn s_comb(x: S, y: S) -> S { if (rl_isnan(x.a)) { return x; } if (rl_isnan(y.a) || y.a > x.a) { return y; } return x; }',
};

/**
 * Online softmax state (max m in a, sum of exp(x - m) in b). Infinite or NaN maxima make the
 * caller's result NaN, so the sums need no special cases for them.
 */
export const SOFTMAX_F32: StateSpec = {
  a: 'f32',
  b: 'f32',
  combine: `fn s_comb(x: S, y: S) -> S {
  if (rl_isnan(x.a) || rl_isnan(y.a)) { return S(rl_nan(), 0.0); }
  if (x.b == 0.0 && x.a <= y.a) { return y; }
  if (y.b == 0.0 && y.a <= x.a) { return x; }
  let m = max(x.a, y.a);
  if (rl_isinf(m)) { return S(m, 1.0); }
  return S(m, x.b * exp(x.a - m) + y.b * exp(y.a - m));
}`,
};

/** WGSL: adds one value to a SOFTMAX_F32 state. */
export const SOFTMAX_ADD = `fn sm_add(s: S, v: f32) -> S {
  if (rl_isnan(v)) { return S(rl_nan(), 0.0); }
  if (rl_isnan(s.a)) { return s; }
  if (v == -rl_inf()) { return s; }
  if (v > s.a) {
    if (rl_isinf(v)) { return S(v, 1.0); }
    return S(v, select(s.b * exp(s.a - v), 0.0, s.b == 0.0) + 1.0);
  }
  if (rl_isinf(s.a)) { return s; }
  return S(s.a, s.b + exp(v - s.a));
}`;
