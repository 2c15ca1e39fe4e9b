/**
 * The elementwise kernel generator. One invocation produces one u32 word of the output (1, 2 or
 * 4 elements depending on the output dtype), so packed outputs need no atomics. Inputs broadcast
 * through strides in the uniform block (dims merged where possible); when nothing broadcasts, a
 * uniform branch skips the index arithmetic. Pipelines depend only on the op and the dtypes
 * (the shape, rank and broadcasting pattern are all uniforms), which keeps compiles few.
 */
import type { TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../backend.js';
import { bitsOf, computeType, perWord, type TensorDecl } from '../wgsl/access.js';
import { broadcastStrides, collapseDims, grid1d, LINEAR_ID } from './util.js';

export interface MapSpec {
  /** Identifies the expression (with anything else baked into the WGSL) in the pipeline key. */
  readonly key: string;
  readonly inputs: readonly TensorInfo[];
  readonly output: TensorInfo;
  /**
   * WGSL expression of the output value in the output's compute type (or its storage code when
   * `rawOut`), in terms of v0, v1, ... (input values in their compute types, or codes when
   * `rawIn`), p0, p1, ... (the `params` words, u32) and `i` (the flat output index, u32).
   */
  readonly expr: string;
  readonly rawIn?: boolean;
  readonly rawOut?: boolean;
  /** Extra u32 words available as p0, p1, ... */
  readonly params?: readonly number[];
  /** Module-scope WGSL the expression needs. */
  readonly helpers?: string;
}

/** Merged ranks up to this share one pipeline (loops bounded by the uniform rank). */
const MAX_RANK = 6;

export function runMap(backend: WebGpuBackend, spec: MapSpec): void {
  const out = spec.output;
  const n = out.size;
  const WG = backend.workgroupSize(256);
  if (n === 0) return;
  const params = spec.params ?? [];
  const nIn = spec.inputs.length;
  const isConst = spec.inputs.map((t) => t.size === 1);
  const broadcast = spec.inputs.some((t) => t.size !== 1 && !sameShape(t.shape, out.shape));
  let shape: number[] = [];
  let strides: number[][] = spec.inputs.map(() => []);
  if (broadcast) {
    const c = collapseDims(out.shape, spec.inputs.map((t) => broadcastStrides(t.shape, out.shape)));
    shape = c.shape;
    strides = c.strides;
  }
  const rank = shape.length;
  // One pipeline for every rank up to MAX_RANK; larger merged ranks get their own.
  const rankSlots = Math.max(MAX_RANK, rank);
  const epw = perWord(out.dtype);
  const bits = bitsOf(out.dtype);
  // Without broadcasting (the common case) a leaner variant: each input is read at the output
  // index or at 0, fixed in the shader, and no coordinate arithmetic is emitted at all.
  const layout = broadcast ? 'bcast' : `flat${isConst.map((c) => (c ? '1' : '0')).join('')}`;
  const key = `map${WG}|${spec.key}|${spec.inputs.map((t) => t.dtype).join(',')}|${out.dtype}|R${rankSlots}|p${params.length}${spec.rawIn ? '|ri' : ''}${spec.rawOut ? '|ro' : ''}|${layout}`;

  // Uniform words: n, broadcast flag, rank, const flags per input, params, shape, strides per input.
  const C0 = 3;
  const P0 = C0 + nIn;
  const S0 = P0 + params.length;
  const T0 = S0 + rankSlots;
  const uniformWords = T0 + rankSlots * nIn;

  const prog = backend.program(key, () => {
    const tensors: TensorDecl[] = spec.inputs.map((t, j) => ({ name: `x${j}`, dtype: t.dtype, access: 'read' }));
    tensors.push({ name: 'y', dtype: out.dtype, access: 'write' });
    const L: string[] = [];
    L.push('let n = u(0u);');
    params.forEach((_, k) => L.push(`let p${k} = u(${P0 + k}u);`));
    L.push(`let w = ${LINEAR_ID(WG)};`);
    L.push(`if (w * ${epw}u >= n) { return; }`);
    L.push('var word = 0u;');
    if (epw === 1) L.push('{ let i = w;');
    else {
      L.push(`for (var k = 0u; k < ${epw}u; k++) {`);
      L.push(`  let i = w * ${epw}u + k;`);
      L.push('  if (i >= n) { break; }');
    }
    if (!broadcast) spec.inputs.forEach((_, j) => L.push(`  let o${j} = ${isConst[j] ? '0u' : 'i'};`));
    else spec.inputs.forEach((_, j) => L.push(`  var o${j} = select(i, 0u, u(${C0 + j}u) != 0u);`));
    if (nIn > 0 && broadcast) {
      // Broadcasting: offsets from the output coordinates (a uniform branch: every invocation
      // of a dispatch takes the same side).
      L.push('  if (u(1u) != 0u) {');
      L.push('    var rem = i;');
      spec.inputs.forEach((_, j) => L.push(`    o${j} = 0u;`));
      L.push('    for (var d = u(2u); d > 0u; d--) {');
      L.push(`      let c = rem % u(${S0}u + d - 1u); rem = rem / u(${S0}u + d - 1u);`);
      spec.inputs.forEach((_, j) => L.push(`      o${j} += c * u(${T0 + j * rankSlots}u + d - 1u);`));
      L.push('    }');
      L.push('  }');
    }
    spec.inputs.forEach((_, j) => L.push(`  let v${j} = x${j}_${spec.rawIn ? 'raw' : 'ld'}(o${j});`));
    const T = computeType(out.dtype);
    L.push(spec.rawOut ? `  let r: u32 = ${spec.expr};` : `  let r: ${T} = ${spec.expr};`);
    L.push(`  let code = ${spec.rawOut ? 'r' : 'y_enc(r)'};`);
    L.push(bits === 32 ? '  word = code;' : `  word |= (code & ${bits === 16 ? '0xffffu' : '0xffu'}) << (k * ${bits}u);`);
    L.push('}');
    L.push('y_stw(w, word);');
    return { tensors, uniformWords, workgroupSize: WG, body: L.join('\n'), helpers: spec.helpers ?? '' };
  });

  const u = new Uint32Array(uniformWords);
  u[0] = n;
  u[1] = broadcast ? 1 : 0;
  u[2] = rank;
  isConst.forEach((c, j) => (u[C0 + j] = c ? 1 : 0));
  params.forEach((p, k) => (u[P0 + k] = p >>> 0));
  shape.forEach((d, k) => (u[S0 + k] = d));
  strides.forEach((st, j) => st.forEach((s, d) => (u[T0 + j * rankSlots + d] = s)));
  const words = Math.ceil(n / epw);
  backend.dispatch(prog, [...spec.inputs.map((t) => t.buffer), out.buffer], u, grid1d(words, WG), spec.key);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
