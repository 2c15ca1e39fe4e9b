/**
 * The elementwise kernel generator. One invocation produces one u32 word of the output (1, 2 or
 * 4 elements depending on the output dtype), so packed outputs need no atomics. Inputs broadcast
 * through strides in the uniform block (dims merged where possible); inputs with the output's
 * shape or a single element skip the index arithmetic. Pipelines depend on the op, the dtypes,
 * the merged rank and the per-input access mode, never on the sizes.
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

const WG = 256;

type Mode = 's' | 'c' | 'b'; // same shape (contiguous), constant (one element), broadcast (strided)

export function runMap(backend: WebGpuBackend, spec: MapSpec): void {
  const out = spec.output;
  const n = out.size;
  if (n === 0) return;
  const params = spec.params ?? [];
  const modes: Mode[] = spec.inputs.map((t) => (t.size === 1 ? 'c' : t.size === n && sameShape(t.shape, out.shape) ? 's' : 'b'));
  const bIdx = modes.map((m, j) => (m === 'b' ? j : -1)).filter((j) => j >= 0);
  let shape: number[] = [];
  let strides: number[][] = [];
  if (bIdx.length) {
    const c = collapseDims(out.shape, bIdx.map((j) => broadcastStrides(spec.inputs[j]!.shape, out.shape)));
    shape = c.shape;
    strides = c.strides;
  }
  const rank = shape.length;
  const epw = perWord(out.dtype);
  const bits = bitsOf(out.dtype);
  const key = `map|${spec.key}|${spec.inputs.map((t, j) => `${t.dtype}${modes[j]}`).join(',')}|${out.dtype}|r${rank}|p${params.length}${spec.rawIn ? '|ri' : ''}${spec.rawOut ? '|ro' : ''}`;

  const P0 = 1; // u(0) = n; params follow, then the merged shape, then strides per broadcast input
  const S0 = P0 + params.length;
  const T0 = S0 + rank;
  const uniformWords = T0 + rank * bIdx.length;

  const prog = backend.program(key, () => {
    const tensors: TensorDecl[] = spec.inputs.map((t, j) => ({ name: `x${j}`, dtype: t.dtype, access: 'read' }));
    tensors.push({ name: 'y', dtype: out.dtype, access: 'write' });
    const lines: string[] = [];
    lines.push(`let n = u(0u);`);
    params.forEach((_, k) => lines.push(`let p${k} = u(${P0 + k}u);`));
    lines.push(`let w = ${LINEAR_ID(WG)};`);
    lines.push(`if (w * ${epw}u >= n) { return; }`);
    lines.push(`var word = 0u;`);
    lines.push(`for (var k = 0u; k < ${epw}u; k++) {`);
    lines.push(`  let i = w * ${epw}u + k;`);
    lines.push(`  if (i >= n) { break; }`);
    if (rank > 0 && bIdx.length) {
      lines.push(`  var rem = i;`);
      bIdx.forEach((j) => lines.push(`  var o${j} = 0u;`));
      for (let d = rank - 1; d >= 0; d--) {
        lines.push(`  { let c = rem % u(${S0 + d}u); rem = rem / u(${S0 + d}u);`);
        bIdx.forEach((j, b) => lines.push(`    o${j} += c * u(${T0 + b * rank + d}u);`));
        lines.push('  }');
      }
    }
    spec.inputs.forEach((_, j) => {
      const idx = modes[j] === 's' ? 'i' : modes[j] === 'c' ? '0u' : `o${j}`;
      lines.push(`  let v${j} = x${j}_${spec.rawIn ? 'raw' : 'ld'}(${idx});`);
    });
    const T = computeType(out.dtype);
    lines.push(spec.rawOut ? `  let r: u32 = ${spec.expr};` : `  let r: ${T} = ${spec.expr};`);
    lines.push(`  let code = ${spec.rawOut ? 'r' : 'y_enc(r)'};`);
    lines.push(bits === 32 ? '  word = code;' : `  word |= (code & ${bits === 16 ? '0xffffu' : '0xffu'}) << (k * ${bits}u);`);
    lines.push('}');
    lines.push('y_stw(w, word);');
    return { tensors, uniformWords, workgroupSize: WG, body: lines.join('\n'), helpers: spec.helpers ?? '' };
  });

  const u = new Uint32Array(Math.max(uniformWords, 1));
  u[0] = n;
  params.forEach((p, k) => (u[P0 + k] = p >>> 0));
  shape.forEach((d, k) => (u[S0 + k] = d));
  bIdx.forEach((_, b) => strides[b]!.forEach((s, d) => (u[T0 + b * rank + d] = s)));
  const words = Math.ceil(n / epw);
  backend.dispatch(prog, [...spec.inputs.map((t) => t.buffer), out.buffer], u, grid1d(words, WG), spec.key);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
