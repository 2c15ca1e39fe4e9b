/**
 * Data movement: transpose, slice, split, pad, flip, tile (one strided gather kernel) and concat
 * (one strided scatter per piece). Storage codes are copied untouched, so every dtype is exact.
 *
 * Gather: output element with coordinates c reads input offset base + sum(c'_d * stride_d), where
 * c'_d = c_d mod m_d for tiled dims and strides may be negative (flip). With bounds (pad), a
 * coordinate outside [lo_d, hi_d) yields the pad code instead. One invocation writes one output
 * word; everything is in uniforms, so one pipeline serves a dtype for every shape up to rank 6.
 */
import type { TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../backend.js';
import { bitsOf, perWord, type TensorDecl } from '../wgsl/access.js';
import { codeOf } from './basic.js';
import { collapseDims, grid1d, LINEAR_ID, register } from './util.js';

const SLOTS = 6;

interface GatherDim {
  size: number;
  stride: number;
  /** Valid output coordinates [lo, hi) (pad); default: all. */
  lo?: number;
  hi?: number;
  /** Coordinate modulus (tile); 0 = none. */
  mod?: number;
}

/** Runs the strided gather; `dims` describe the output dims, `base` the input offset of coordinate 0. */
export function runGather(backend: WebGpuBackend, x: TensorInfo, y: TensorInfo, dims: GatherDim[], base: number, padCode = 0, label = 'gather'): void {
  const n = y.size;
  if (n === 0) return;
  const special = dims.some((d) => d.lo !== undefined || d.mod);
  let use = dims;
  if (!special) {
    // Merge contiguous runs (e.g. the whole tensor for a plain slice of leading rows).
    const c = collapseDims(dims.map((d) => d.size), [dims.map((d) => d.stride)]);
    use = c.shape.map((size, k) => ({ size, stride: c.strides[0]![k]! }));
  }
  const slots = Math.max(SLOTS, use.length);
  const WG = backend.workgroupSize(256);
  const epw = perWord(y.dtype);
  const bits = bitsOf(y.dtype);
  const key = `gather${WG}|${x.dtype}|s${slots}|${special ? 'pad' : 'plain'}`;
  // Words: n, rank, base, pad code, then 5 per dim: size, stride, lo, hi, mod.
  const D0 = 4;
  const words = D0 + 5 * slots;
  const prog = backend.program(key, () => ({
    tensors: [
      { name: 'x', dtype: x.dtype, access: 'read' },
      { name: 'y', dtype: y.dtype, access: 'write' },
    ] as TensorDecl[],
    uniformWords: words,
    workgroupSize: WG,
    body: `let n = u(0u);
let w = ${LINEAR_ID(WG)};
if (w * ${epw}u >= n) { return; }
var word = 0u;
for (var k = 0u; k < ${epw}u; k++) {
  let i = w * ${epw}u + k;
  if (i >= n) { break; }
  var rem = i;
  var off = ui(2u);
  var inside = true;
  for (var d = u(1u); d > 0u; d--) {
    let p = ${D0}u + 5u * (d - 1u);
    var c = rem % u(p);
    rem = rem / u(p);
    ${special ? 'if (c < u(p + 2u) || c >= u(p + 3u)) { inside = false; }\n    if (u(p + 4u) != 0u) { c = c % u(p + 4u); }' : ''}
    off += i32(c) * ui(p + 1u);
  }
  var code = u(3u);
  if (inside) { code = x_raw(u32(off)); }
  ${bits === 32 ? 'word = code;' : `word |= (code & ${bits === 16 ? '0xffffu' : '0xffu'}) << (k * ${bits}u);`}
}
y_stw(w, word);`,
  }));
  const u = new Uint32Array(words);
  const i32 = new Int32Array(u.buffer);
  u[0] = n;
  u[1] = use.length;
  i32[2] = base;
  u[3] = padCode >>> 0;
  use.forEach((d, k) => {
    const p = D0 + 5 * k;
    u[p] = d.size;
    i32[p + 1] = d.stride;
    u[p + 2] = d.lo ?? 0;
    u[p + 3] = d.hi ?? 0xffffffff;
    u[p + 4] = d.mod ?? 0;
  });
  backend.dispatch(prog, [x.buffer, y.buffer], u, grid1d(Math.ceil(n / epw), WG), label);
}

/**
 * Copies all of x into a box of y: element c of x goes to y offset base + sum(c_d * stride_d).
 * Stores go through per-element atomics for packed dtypes (pieces may share output words).
 */
export function runScatterCopy(backend: WebGpuBackend, x: TensorInfo, y: TensorInfo, strides: number[], base: number, label = 'scatter'): void {
  const n = x.size;
  if (n === 0) return;
  const c = collapseDims(x.shape, [strides]);
  const slots = Math.max(SLOTS, c.shape.length);
  const WG = backend.workgroupSize(256);
  const key = `scatter_copy${WG}|${x.dtype}|s${slots}`;
  const D0 = 3;
  const words = D0 + 2 * slots;
  const prog = backend.program(key, () => ({
    tensors: [
      { name: 'x', dtype: x.dtype, access: 'read' },
      { name: 'y', dtype: y.dtype, access: 'atomic' },
    ] as TensorDecl[],
    uniformWords: words,
    workgroupSize: WG,
    body: `let i = ${LINEAR_ID(WG)};
if (i >= u(0u)) { return; }
var rem = i;
var off = u(2u);
for (var d = u(1u); d > 0u; d--) {
  let p = ${D0}u + 2u * (d - 1u);
  off += (rem % u(p)) * u(p + 1u);
  rem = rem / u(p);
}
y_st_raw(off, x_raw(i));`,
  }));
  const u = new Uint32Array(words);
  u[0] = n;
  u[1] = c.shape.length;
  u[2] = base;
  c.shape.forEach((s, k) => ((u[D0 + 2 * k] = s), (u[D0 + 2 * k + 1] = c.strides[0]![k]!)));
  backend.dispatch(prog, [x.buffer, y.buffer], u, grid1d(n, WG), label);
}

function stridesOf(shape: readonly number[]): number[] {
  const s: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

register('transpose', ({ backend, inputs: [x], outputs: [y], attrs }) => {
  const perm = (attrs as { perm: number[] }).perm;
  const st = stridesOf(x!.shape);
  runGather(backend, x!, y!, perm.map((p) => ({ size: x!.shape[p]!, stride: st[p]! })), 0, 0, 'transpose');
});

function sliceInto(backend: WebGpuBackend, x: TensorInfo, y: TensorInfo, begin: readonly number[], label: string): void {
  const st = stridesOf(x.shape);
  const base = begin.reduce((acc, b, d) => acc + b * st[d]!, 0);
  runGather(backend, x, y, y.shape.map((size, d) => ({ size, stride: st[d]! })), base, 0, label);
}

register('slice', ({ backend, inputs: [x], outputs: [y], attrs }) => {
  sliceInto(backend, x!, y!, (attrs as { begin: number[] }).begin, 'slice');
});

register('split', ({ backend, inputs: [x], outputs, attrs }) => {
  const { sizes, axis } = attrs as { sizes: number[]; axis: number };
  let start = 0;
  outputs.forEach((y, k) => {
    const begin = x!.shape.map((_, d) => (d === axis ? start : 0));
    sliceInto(backend, x!, y, begin, 'split');
    start += sizes[k]!;
  });
});

register('pad', ({ backend, inputs: [x], outputs: [y], attrs }) => {
  const { paddings, value } = attrs as { paddings: [number, number][]; value: number };
  const st = stridesOf(x!.shape);
  const base = -paddings.reduce((acc, [b], d) => acc + b * st[d]!, 0);
  const dims = y!.shape.map((size, d) => ({ size, stride: st[d]!, lo: paddings[d]![0], hi: paddings[d]![0] + x!.shape[d]!, mod: 0 }));
  runGather(backend, x!, y!, dims, base, codeOf(value, y!.dtype), 'pad');
});

register('flip', ({ backend, inputs: [x], outputs: [y], attrs }) => {
  const axes = (attrs as { axes: number[] }).axes;
  const st = stridesOf(x!.shape);
  let base = 0;
  const dims = x!.shape.map((size, d) => {
    if (!axes.includes(d)) return { size, stride: st[d]! };
    base += (size - 1) * st[d]!;
    return { size, stride: -st[d]! };
  });
  runGather(backend, x!, y!, dims, base, 0, 'flip');
});

register('tile', ({ backend, inputs: [x], outputs: [y] }) => {
  const st = stridesOf(x!.shape);
  const dims = y!.shape.map((size, d) => ({ size, stride: st[d]!, lo: 0, hi: 0xffffffff, mod: x!.shape[d]! }));
  runGather(backend, x!, y!, dims, 0, 0, 'tile');
});

register('concat', ({ backend, inputs, outputs: [y], attrs }) => {
  const axis = (attrs as { axis: number }).axis;
  const ost = stridesOf(y!.shape);
  let start = 0;
  for (const x of inputs) {
    runScatterCopy(backend, x, y!, ost, start * ost[axis]!, 'concat');
    start += x.shape[axis]!;
  }
});

