/**
 * WebGPU kernels of the grouped GEMMs of @ring-linear/moe (ops/grouped_matmul.ts).
 *
 * groupedMatmul: one tiled GEMM (tile_gemm.ts) over every expert's row segment in one dispatch.
 * The grid has ceil(R / BM) + E row-tile slots per column tile (enough for any distribution of
 * the R rows over E experts: sum_e ceil(rows_e / BM) <= R / BM + E); each workgroup finds its
 * expert and row tile from the device offsets and exits when there is none. Rows outside every
 * segment are zero (the output is cleared first).
 *
 * Weights as a LIST of E tensors (the MoE module's per-expert parameters): a dispatch can bind at
 * most maxStorageBuffersPerShaderStage buffers (8 to 12 on common adapters), so the experts are
 * processed in chunks of (that limit - 3) per dispatch, each with its own row-tile slots. This
 * copies nothing (copying every expert's weights into one buffer would move the whole parameter
 * set per call, which dominates decoding); the cost is E / chunk dispatches, whose workgroups of
 * other chunks' slots exit at once. RING_LINEAR_WEBGPU_EXPERTS_PER_DISPATCH lowers the chunk size
 * (tests use it to cover several chunks).
 *
 * groupedMatmulAtB: out_e = a_e^T b_e with the grid's z dimension the expert; each workgroup sums
 * its segment's rows in order. The `separate` form (E outputs) is computed stacked into scratch and
 * copied out per expert (the same E-bindings limit).
 */
import { bytesPerElement, type TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../../backend.js';
import type { TensorDecl } from '../../wgsl/access.js';
import { runMap } from '../map.js';
import { register } from '../util.js';
import { SEGMENT_VARS, SLOT_EXPR, segmentPrologue, slotGrid, tileBM, tileBN, tileCfg, tileGemm } from './tile_gemm.js';

/** Experts per dispatch for the list form: the binding limit minus x, offsets and y. */
export function expertsPerDispatch(backend: WebGpuBackend): number {
  const limit = Math.max(1, (backend.limits.maxStorageBuffersPerShaderStage ?? 8) - 3);
  const env = Number((globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.RING_LINEAR_WEBGPU_EXPERTS_PER_DISPATCH);
  return Number.isInteger(env) && env >= 1 ? Math.min(env, limit) : limit;
}

/** Fills a tensor's storage with zero codes. */
export function zeroFill(backend: WebGpuBackend, t: TensorInfo): void {
  if (t.size === 0) return;
  runMap(backend, { key: 'fill', inputs: [], output: t, expr: 'p0', rawOut: true, params: [0] });
}

register('groupedMatmul', ({ backend, inputs: [x, offsets, ...ws], outputs: [y], attrs }) => {
  const { transposeB } = attrs as { transposeB: boolean };
  const [R, IN] = x!.shape as [number, number];
  const OUT = y!.shape[1]!;
  const E = offsets!.shape[0]! - 1;
  if (R === 0 || OUT === 0) return;
  zeroFill(backend, y!);
  const stacked = ws.length === 1 && ws[0]!.shape.length === 3;
  const cfg = tileCfg(backend.isSoftware);
  const BM = tileBM(cfg);
  const BN = tileBN(cfg);
  // One pipeline per dtype and layout serves both forms: C weight bindings, chosen by a switch
  // that is uniform across the workgroup. Stacked weights sit in binding 0 (expert e at
  // e * IN * OUT); a list binds up to C experts per dispatch (unused bindings repeat one).
  const C = expertsPerDispatch(backend);
  const chunk = stacked ? E : C;
  const dt = x!.dtype;
  // W_e [out, in] (transposeB): B(n, k) = W_e[n, k], k contiguous; W_e [in, out]: B(n, k) = W_e[k, n].
  const wIndex = transposeB ? '(n * G_IN + k)' : '(k * G_OUT + n)';
  const key = `moe_grouped_mm|${dt}|${transposeB ? 'T' : 'N'}|w${C}|${cfg.WGX}x${cfg.WGY}`;
  const prog = backend.program(key, () => {
    const tensors: TensorDecl[] = [
      { name: 'x', dtype: dt, access: 'read' },
      { name: 'off', dtype: 'i32', access: 'read' },
    ];
    for (let c = 0; c < C; c++) tensors.push({ name: `w${c}`, dtype: dt, access: 'read' });
    tensors.push({ name: 'y', dtype: dt, access: 'atomic' });
    const cases = Array.from({ length: C }, (_, c) => `    case ${c}u: { return w${c}_ld(i); }`).join('\n');
    const wFns = `fn wsel(i: u32) -> f32 {\n  switch W_SLOT {\n${cases}\n    default: { return 0.0; }\n  }\n}\nfn wval(n: u32, k: u32) -> f32 { return wsel(W_BASE + ${wIndex}); }`;
    const g = tileGemm({
      cfg,
      prologue: `let R = u(0u); let IN = u(1u); let OUT = u(2u); let e0 = u(3u); let e1 = u(4u); let isStacked = u(5u) != 0u;
G_IN = IN; G_OUT = OUT; // for the helpers (the control flow reads the uniform lets)
${segmentPrologue(BM, SLOT_EXPR, 'e0', 'e1', 'R')}
W_SLOT = select(e - e0, 0u, isStacked);
W_BASE = select(0u, e * IN * OUT, isStacked);
let nlo = wid.x * ${BN}u; let nhi = OUT; let klo = 0u; let khi = IN;`,
      a: (m, k) => `x_ld(${m} * IN + ${k})`,
      aKMajor: true,
      b: (n, k) => `wval(${n}, ${k})`,
      bKMajor: transposeB,
      store: (m, n, v) => `y_st(${m} * OUT + ${n}, ${v});`,
    });
    return {
      tensors,
      uniformWords: 8,
      workgroupSize: [cfg.WGX, cfg.WGY, 1] as const,
      helpers: `${SEGMENT_VARS}\n${g.helpers}\nvar<private> G_IN: u32;\nvar<private> G_OUT: u32;\nvar<private> W_BASE: u32;\nvar<private> W_SLOT: u32;\n${wFns}`,
      body: g.body,
    };
  });
  const gx = Math.ceil(OUT / BN);
  for (let e0 = 0; e0 < E; e0 += chunk) {
    const e1 = Math.min(E, e0 + chunk);
    const { gy, gz } = slotGrid(Math.ceil(R / BM) + (e1 - e0));
    const bufs = [x!.buffer, offsets!.buffer];
    for (let c = 0; c < C; c++) bufs.push(stacked ? ws[0]!.buffer : ws[Math.min(e0 + c, e1 - 1)]!.buffer);
    bufs.push(y!.buffer);
    backend.dispatch(prog, bufs, new Uint32Array([R, IN, OUT, e0, e1, stacked ? 1 : 0, 0, 0]), [gx, gy, gz], 'groupedMatmul');
  }
});

/** out [E, P, Q] (stacked, dtype of a) = per-expert a_e^T b_e over the segments of offsets. */
function runAtB(backend: WebGpuBackend, a: TensorInfo, b: TensorInfo, offsets: TensorInfo, out: TensorInfo['buffer'], E: number): void {
  const [R, P] = a.shape as [number, number];
  const Q = b.shape[1]!;
  if (P === 0 || Q === 0 || E === 0) return;
  const cfg = tileCfg(backend.isSoftware);
  const BM = tileBM(cfg);
  const BN = tileBN(cfg);
  if (E > backend.limits.maxComputeWorkgroupsPerDimension) {
    throw new Error(`webgpu: groupedMatmulAtB: ${E} experts exceed the grid limit ${backend.limits.maxComputeWorkgroupsPerDimension}`);
  }
  const prog = backend.program(`moe_grouped_atb|${a.dtype}|${cfg.WGX}x${cfg.WGY}`, () => {
    const g = tileGemm({
      cfg,
      prologue: `let R = u(0u); let P = u(1u); let Q = u(2u);
let e = wid.z;
if (lid == 0u) {
  let lo = min(u32(max(off_ld(e), 0)), R);
  seg_lo = lo;
  seg_hi = max(min(u32(max(off_ld(e + 1u), 0)), R), lo);
}
let klo = workgroupUniformLoad(&seg_lo);
let khi = workgroupUniformLoad(&seg_hi);
let mlo = wid.y * ${BM}u; let mhi = P; let nlo = wid.x * ${BN}u; let nhi = Q;`,
      // A(m = p, k = r) = a[r, p] and B(n = q, k = r) = b[r, q]: both contiguous along m / n.
      a: (m, k) => `a_ld(${k} * P + ${m})`,
      aKMajor: false,
      b: (n, k) => `b_ld(${k} * Q + ${n})`,
      bKMajor: false,
      store: (m, n, v) => `o_st((e * P + ${m}) * Q + ${n}, ${v});`,
    });
    return {
      tensors: [
        { name: 'a', dtype: a.dtype, access: 'read' },
        { name: 'b', dtype: b.dtype, access: 'read' },
        { name: 'off', dtype: 'i32', access: 'read' },
        { name: 'o', dtype: a.dtype, access: 'atomic' },
      ] as TensorDecl[],
      uniformWords: 4,
      workgroupSize: [cfg.WGX, cfg.WGY, 1] as const,
      helpers: `${SEGMENT_VARS}\n${g.helpers}`,
      body: g.body,
    };
  });
  backend.dispatch(prog, [a.buffer, b.buffer, offsets.buffer, out], new Uint32Array([R, P, Q, 0]), [Math.ceil(Q / BN), Math.ceil(P / BM), E], 'groupedMatmulAtB');
}

register('groupedMatmulAtB', ({ backend, inputs: [a, b, offsets], outputs, attrs }) => {
  const { separate } = attrs as { separate: boolean };
  const E = offsets!.shape[0]! - 1;
  const P = a!.shape[1]!;
  const Q = b!.shape[1]!;
  if (!separate) {
    runAtB(backend, a!, b!, offsets!, outputs[0]!.buffer, E);
    return;
  }
  if (P * Q === 0) return;
  const per = P * Q * bytesPerElement(a!.dtype); // bytes of one expert's [P, Q]
  const scratch = backend.scratch(per * E);
  try {
    runAtB(backend, a!, b!, offsets!, scratch, E);
    for (let e = 0; e < E; e++) backend.copy(scratch, e * per, outputs[e]!.buffer, 0, per);
  } finally {
    backend.free(scratch);
  }
});
