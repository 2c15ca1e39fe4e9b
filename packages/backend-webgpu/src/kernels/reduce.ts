/**
 * Reductions over axes: sum, mean, max, min, logsumexp, argmax, argmin.
 *
 * The input is addressed as (output index o, reduced index r) -> base(o) + roff(r), each an affine
 * function of the coordinates of the kept / reduced dims (merged where contiguous), whose shapes
 * and strides travel in the uniform block. Three schedules:
 *   - one workgroup per output (rows of any length): invocations stride over r, then a
 *     workgroup reduction (subgroups when available);
 *   - one invocation per output (short rows, or many outputs reduced along a non-minor axis,
 *     where neighbouring invocations then read neighbouring memory);
 *   - split (few outputs, very long rows): chunks reduced to partial states, then combined.
 * Floats accumulate in f32; i32 sums wrap like the CPU's; the order of combination depends only
 * on the shapes, so results are deterministic.
 */
import type { DType, TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../backend.js';
import { computeType, type TensorDecl } from '../wgsl/access.js';
import { grid1d, LINEAR_ID, LINEAR_WG, prod, register } from './util.js';
import { SOFTMAX_ADD, SOFTMAX_F32, wgReduceCall, wgReduceWgsl, type StateSpec } from './wg_reduce.js';

interface ReduceOp {
  state: (x: DType) => StateSpec;
  /** WGSL of `fn s_init() -> S`. */
  init: (x: DType) => string;
  /** WGSL of `fn s_add(s: S, v: T, r: u32) -> S` (T: the input's compute type). */
  add: (x: DType) => string;
  /** WGSL of `fn s_fin(s: S, count: u32) -> OutT`. */
  fin: (x: DType, out: DType) => string;
}

const nanGuard = (x: DType, v: string) => (computeType(x) === 'f32' ? `rl_isnan(${v})` : 'false');

function extremum(kind: 'max' | 'min'): ReduceOp {
  const better = kind === 'max' ? '>' : '<';
  return {
    state: (x) => {
      const T = computeType(x);
      return {
        a: T,
        b: 'u32',
        combine: `fn s_comb(x: S, y: S) -> S { if (${nanGuard(x, 'x.a')}) { return x; } if (${nanGuard(x, 'y.a')} || y.a ${better} x.a) { return y; } return x; }`,
      };
    },
    init: (x) => {
      const T = computeType(x);
      const id =
        T === 'f32' ? (kind === 'max' ? '-rl_inf()' : 'rl_inf()') : T === 'i32' ? (kind === 'max' ? 'i32(-2147483648)' : '2147483647') : kind === 'max' ? '0u' : '0xffffffffu';
      return `fn s_init() -> S { return S(${id}, 0u); }`;
    },
    add: (x) => `fn s_add(s: S, v: ${computeType(x)}, r: u32) -> S { return s_comb(s, S(v, 0u)); }`,
    fin: () => 'fn s_fin(s: S, count: u32) -> T_OUT { return s.a; }',
  };
}

function argExtremum(kind: 'argmax' | 'argmin'): ReduceOp {
  const better = kind === 'argmax' ? '>' : '<';
  return {
    // b = index (0xffffffff: empty). NaN counts as the extreme; ties go to the lower index.
    state: (x) => ({
      a: computeType(x),
      b: 'u32',
      combine: `fn s_comb(x: S, y: S) -> S {
  if (x.b == 0xffffffffu) { return y; }
  if (y.b == 0xffffffffu) { return x; }
  let xn = ${nanGuard(x, 'x.a')};
  let yn = ${nanGuard(x, 'y.a')};
  if (xn && yn) { if (x.b < y.b) { return x; } return y; }
  if (xn) { return x; }
  if (yn) { return y; }
  if (x.a ${better} y.a) { return x; }
  if (y.a ${better} x.a) { return y; }
  if (x.b < y.b) { return x; }
  return y;
}`,
    }),
    init: (x) => `fn s_init() -> S { return S(${computeType(x)}(0), 0xffffffffu); }`,
    add: (x) => `fn s_add(s: S, v: ${computeType(x)}, r: u32) -> S { return s_comb(s, S(v, r)); }`,
    fin: () => 'fn s_fin(s: S, count: u32) -> T_OUT { return i32(s.b); }',
  };
}

const REDUCE_OPS: Record<string, ReduceOp> = {
  sum: {
    state: (x) => ({ a: computeType(x), b: 'u32', combine: 'fn s_comb(x: S, y: S) -> S { return S(x.a + y.a, 0u); }' }),
    init: (x) => `fn s_init() -> S { return S(${computeType(x)}(0), 0u); }`,
    add: (x) => `fn s_add(s: S, v: ${computeType(x)}, r: u32) -> S { return S(s.a + v, 0u); }`,
    fin: () => 'fn s_fin(s: S, count: u32) -> T_OUT { return s.a; }',
  },
  mean: {
    state: () => ({ a: 'f32', b: 'u32', combine: 'fn s_comb(x: S, y: S) -> S { return S(x.a + y.a, 0u); }' }),
    init: () => 'fn s_init() -> S { return S(0.0, 0u); }',
    add: () => 'fn s_add(s: S, v: f32, r: u32) -> S { return S(s.a + v, 0u); }',
    fin: () => 'fn s_fin(s: S, count: u32) -> T_OUT { return s.a / f32(count); }',
  },
  max: extremum('max'),
  min: extremum('min'),
  logsumexp: {
    state: () => SOFTMAX_F32,
    init: () => 'fn s_init() -> S { return S(-rl_inf(), 0.0); }',
    add: () => `${SOFTMAX_ADD}\nfn s_add(s: S, v: f32, r: u32) -> S { return sm_add(s, v); }`,
    fin: () => 'fn s_fin(s: S, count: u32) -> T_OUT { if (rl_isnan(s.a) || rl_isinf(s.a)) { return s.a; } return s.a + log(s.b); }',
  },
  argmax: argExtremum('argmax'),
  argmin: argExtremum('argmin'),
};

/** Kept and reduced dims (merged where contiguous) with their strides. */
function reductionLayout(shape: readonly number[], axes: readonly number[]) {
  const strides: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = acc;
    acc *= shape[i]!;
  }
  const merge = (dims: number[]) => {
    const sh: number[] = [];
    const st: number[] = [];
    for (const d of dims) {
      const n = shape[d]!;
      if (n === 1) continue;
      const last = sh.length - 1;
      if (last >= 0 && st[last] === strides[d]! * n) {
        sh[last] = sh[last]! * n;
        st[last] = strides[d]!;
      } else {
        sh.push(n);
        st.push(strides[d]!);
      }
    }
    return { sh, st };
  };
  const kept = merge(shape.map((_, i) => i).filter((i) => !axes.includes(i)));
  const red = merge([...axes]);
  return { kept, red, nOut: prod(kept.sh), R: prod(red.sh) };
}

/** WGSL computing `name` = sum of coord * stride over `rank` dims starting at uniform word `base`. */
function affineWgsl(name: string, idx: string, rank: number, base: number): string {
  if (rank === 0) return `let ${name} = 0u;`;
  if (rank === 1) return `let ${name} = ${idx} * u(${base + 1}u);`;
  const lines = [`var ${name} = 0u;`, `{ var rem = ${idx};`];
  for (let d = rank - 1; d >= 0; d--) {
    lines.push(`  ${name} += (rem % u(${base + 2 * d}u)) * u(${base + 2 * d + 1}u); rem = rem / u(${base + 2 * d}u);`);
  }
  lines.push('}');
  return lines.join('\n');
}

type Schedule = 'wg' | 'thread' | 'partial' | 'final';

function runReduce(backend: WebGpuBackend, opName: string, x: TensorInfo, y: TensorInfo, axes: readonly number[]): void {
  const op = REDUCE_OPS[opName]!;
  const WG = backend.workgroupSize(256);
  const { kept, red, nOut, R } = reductionLayout(x.shape, axes);
  if (nOut === 0) return;
  const minorAxis = red.st.length === 0 || red.st[red.st.length - 1] === 1;
  // Split long rows when there are too few outputs to fill the device.
  const chunks = nOut < 64 && R >= 65536 ? Math.min(256, Math.ceil(R / 16384)) : 1;
  let schedule: Schedule = 'wg';
  if (chunks === 1 && (R <= 32 || (!minorAxis && nOut >= 4096))) schedule = 'thread';
  const subgroups = backend.hasSubgroups;
  const TOUT = computeType(y.dtype);
  const st = op.state(x.dtype);

  // Uniforms: nOut, R, chunkLen, chunks, then kept (shape, stride) pairs, then reduced pairs.
  const KB = 4;
  const RB = KB + 2 * kept.sh.length;
  const words = RB + 2 * red.sh.length;
  const u = new Uint32Array(words);
  u[0] = nOut;
  u[1] = R;
  u[2] = Math.ceil(R / chunks);
  u[3] = chunks;
  kept.sh.forEach((n, d) => ((u[KB + 2 * d] = n), (u[KB + 2 * d + 1] = kept.st[d]!)));
  red.sh.forEach((n, d) => ((u[RB + 2 * d] = n), (u[RB + 2 * d + 1] = red.st[d]!)));

  const helpers = (sched: Schedule) =>
    [
      sched === 'thread' ? `struct S { a: ${st.a}, b: ${st.b} }\n${st.combine}` : wgReduceWgsl(st, WG, subgroups),
      op.init(x.dtype),
      op.add(x.dtype),
      op.fin(x.dtype, y.dtype).replace('T_OUT', TOUT),
    ].join('\n');
  const keyBase = `reduce|${opName}|${x.dtype}|${y.dtype}|k${kept.sh.length}|r${red.sh.length}|${subgroups ? 'sg' : 'nosg'}|wg${WG}`;

  if (schedule === 'thread') {
    const prog = backend.program(`${keyBase}|thread`, () => ({
      tensors: [
        { name: 'x', dtype: x.dtype, access: 'read' },
        { name: 'y', dtype: y.dtype, access: 'atomic' },
      ] as TensorDecl[],
      uniformWords: words,
      workgroupSize: WG,
      helpers: helpers('thread'),
      body: `let o = ${LINEAR_ID(WG)};
if (o >= u(0u)) { return; }
${affineWgsl('base', 'o', kept.sh.length, KB)}
var s = s_init();
for (var r = 0u; r < u(1u); r++) {
  ${affineWgsl('ro', 'r', red.sh.length, RB)}
  s = s_add(s, x_ld(base + ro), r);
}
y_st(o, s_fin(s, u(1u)));`,
    }));
    backend.dispatch(prog, [x.buffer, y.buffer], u, grid1d(nOut, WG), opName);
    return;
  }

  const loop = (from: string, to: string) => `
var s = s_init();
for (var r = ${from} + lid; r < ${to}; r += ${WG}u) {
  ${affineWgsl('ro', 'r', red.sh.length, RB)}
  s = s_add(s, x_ld(base + ro), r);
}
let t = ${wgReduceCall('s', subgroups)};`;

  if (chunks === 1) {
    const prog = backend.program(`${keyBase}|wg`, () => ({
      tensors: [
        { name: 'x', dtype: x.dtype, access: 'read' },
        { name: 'y', dtype: y.dtype, access: 'atomic' },
      ] as TensorDecl[],
      uniformWords: words,
      workgroupSize: WG,
      subgroups,
      helpers: helpers('wg'),
      body: `let o = ${LINEAR_WG};
if (o >= u(0u)) { return; }
${affineWgsl('base', 'o', kept.sh.length, KB)}
${loop('0u', 'u(1u)')}
if (lid == 0u) { y_st(o, s_fin(t, u(1u))); }`,
    }));
    backend.dispatch(prog, [x.buffer, y.buffer], u, grid1d(nOut, 1), opName);
    return;
  }

  // Split: partial states (two u32 words each) in a scratch buffer, then one workgroup per output.
  const scratch = backend.scratch(nOut * chunks * 8);
  try {
    const toBits = (f: string, t: string) => (t === 'u32' ? f : `bitcast<u32>(${f})`);
    const fromBits = (w: string, t: string) => (t === 'u32' ? w : `bitcast<${t}>(${w})`);
    const p1 = backend.program(`${keyBase}|partial`, () => ({
      tensors: [
        { name: 'x', dtype: x.dtype, access: 'read' },
        { name: 'part', dtype: 'i32', access: 'write' },
      ] as TensorDecl[],
      uniformWords: words,
      workgroupSize: WG,
      subgroups,
      helpers: helpers('partial'),
      body: `let g = ${LINEAR_WG};
if (g >= u(0u) * u(3u)) { return; }
let o = g / u(3u);
let c = g % u(3u);
${affineWgsl('base', 'o', kept.sh.length, KB)}
${loop('c * u(2u)', 'min(u(1u), (c + 1u) * u(2u))')}
if (lid == 0u) { part_buf[2u * g] = ${toBits('t.a', st.a)}; part_buf[2u * g + 1u] = ${toBits('t.b', st.b)}; }`,
    }));
    backend.dispatch(p1, [x.buffer, scratch], u, grid1d(nOut * chunks, 1), opName);
    const p2 = backend.program(`${keyBase}|final`, () => ({
      tensors: [
        { name: 'part', dtype: 'i32', access: 'read' },
        { name: 'y', dtype: y.dtype, access: 'atomic' },
      ] as TensorDecl[],
      uniformWords: words,
      workgroupSize: WG,
      subgroups,
      helpers: helpers('final'),
      body: `let o = ${LINEAR_WG};
if (o >= u(0u)) { return; }
var s = s_init();
for (var c = lid; c < u(3u); c += ${WG}u) {
  let g = o * u(3u) + c;
  s = s_comb(s, S(${fromBits('part_buf[2u * g]', st.a)}, ${fromBits('part_buf[2u * g + 1u]', st.b)}));
}
let t = ${wgReduceCall('s', subgroups)};
if (lid == 0u) { y_st(o, s_fin(t, u(1u))); }`,
    }));
    backend.dispatch(p2, [scratch, y.buffer], u, grid1d(nOut, 1), opName);
  } finally {
    backend.free(scratch);
  }
}

for (const name of ['sum', 'mean', 'max', 'min', 'logsumexp'] as const) {
  register(name, ({ backend, inputs: [x], outputs: [y], attrs }) => {
    runReduce(backend, name, x!, y!, (attrs as { axes: number[] }).axes);
  });
}
for (const name of ['argmax', 'argmin'] as const) {
  register(name, ({ backend, inputs: [x], outputs: [y], attrs }) => {
    runReduce(backend, name, x!, y!, [(attrs as { axis: number }).axis]);
  });
}

export { runReduce };
