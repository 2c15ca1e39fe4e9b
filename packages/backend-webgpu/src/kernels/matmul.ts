/**
 * Batched matmul with transposes: C[b] = op(A[b]) op(B[b]), accumulation in f32.
 *
 * Tiled kernel: a workgroup of WGX x WGY invocations computes a BM x BN block of C
 * (BM = TM * WGY, BN = TN * WGX), each invocation TM x TN outputs held in vec4 registers. The K
 * dimension advances in steps of BK through workgroup memory, both tiles stored k-major so the
 * inner loop reads vec4s of A and B. An invocation's rows and columns are interleaved in groups
 * of four (row = 4 * (ty + g * WGY) + r), so neighbouring invocations read neighbouring vec4s of
 * workgroup memory. Global loads are vec4 where the layout allows (f32 with the contiguous dim a
 * multiple of 4), else scalar (other dtypes decode on load). Batch dims broadcast through
 * strides in the uniform block; the grid's z is the batch index.
 */
import { BackendError, sizeOf, type TensorInfo } from '@ring-linear/core';
import type { WebGpuBackend } from '../backend.js';
import { tensorDeclWgsl, type TensorDecl } from '../wgsl/access.js';
import { runMap } from './map.js';
import { broadcastStrides, collapseDims, register } from './util.js';

interface Cfg {
  WGX: number;
  WGY: number;
  TM: number;
  TN: number;
  BK: number;
}

/** RING_LINEAR_WEBGPU_MATMUL_CONFIG=WGXxWGYxTMxTNxBK (e.g. 16x16x8x8x8) forces one tiling (tuning). */
function configOverride(): Cfg | null {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.RING_LINEAR_WEBGPU_MATMUL_CONFIG;
  const m = v ? /^(\d+)x(\d+)x(\d+)x(\d+)x(\d+)$/.exec(v) : null;
  if (!m) return null;
  const [WGX, WGY, TM, TN, BK] = m.slice(1).map(Number) as [number, number, number, number, number];
  const ok = TM % 4 === 0 && TN % 4 === 0 && BK % 4 === 0 && ((TM * WGY * BK) / 4) % (WGX * WGY) === 0 && ((TN * WGX * BK) / 4) % (WGX * WGY) === 0;
  return ok ? { WGX, WGY, TM, TN, BK } : null;
}

export function pickMatmulConfig(M: number, N: number, batch: number, software: boolean): Cfg {
  const forced = configOverride();
  if (forced) return forced;
  if (software) return { WGX: 8, WGY: 8, TM: 4, TN: 4, BK: 16 };
  const work = M * N * batch;
  if (work >= 1 << 21 && M >= 128 && N >= 128) return { WGX: 16, WGY: 16, TM: 8, TN: 8, BK: 8 };
  if (work >= 1 << 16 && M >= 64 && N >= 64) return { WGX: 16, WGY: 16, TM: 4, TN: 4, BK: 16 };
  return { WGX: 8, WGY: 8, TM: 4, TN: 4, BK: 16 };
}

interface Variant {
  cfg: Cfg;
  tA: boolean;
  tB: boolean;
  aVec: boolean;
  bVec: boolean;
  cVec: boolean;
  /** M, N, K multiples of the tile sizes: no bounds checks. */
  aligned: boolean;
  /** Batch dims the uniform block has room for (a loop over the actual rank runs inside). */
  batchSlots: number;
}

function matmulWgsl(v: Variant, a: TensorInfo, b: TensorInfo, c: TensorInfo, backend: WebGpuBackend) {
  const { WGX, WGY, TM, TN, BK } = v.cfg;
  const BM = TM * WGY;
  const BN = TN * WGX;
  const NT = WGX * WGY;
  const TM4 = TM / 4;
  const TN4 = TN / 4;
  const opts = backend.accessOptions;
  const decl: string[] = [];
  // Binding 0: A, 1: B, 2: C (as vec4 arrays for f32 vector paths, else through accessors).
  const declare = (binding: number, name: string, t: TensorInfo, vec: boolean, access: 'read' | 'atomic') => {
    if (vec) {
      decl.push(`@group(0) @binding(${binding}) var<storage, ${access === 'read' ? 'read' : 'read_write'}> ${name}_v: array<vec4<f32>>;`);
    } else {
      decl.push(tensorDeclWgsl(binding, { name, dtype: t.dtype, access } as TensorDecl, opts));
    }
  };
  declare(0, 'a', a, v.aVec, 'read');
  declare(1, 'b', b, v.bVec, 'read');
  declare(2, 'c', c, v.cVec, 'atomic');
  // Two buffers per operand (see the K loop); 2-D so that indices are simple enough for the
  // compiler to prove in bounds (a flat index would get a clamp on every access).
  for (const name of ['As0', 'As1']) decl.push(`var<workgroup> ${name}: array<array<vec4<f32>, ${BM / 4}>, ${BK}>;`);
  for (const name of ['Bs0', 'Bs1']) decl.push(`var<workgroup> ${name}: array<array<vec4<f32>, ${BN / 4}>, ${BK}>;`);

  const L: string[] = [];
  L.push('let M = u(0u); let N = u(1u); let K = u(2u);');
  L.push('let bz = wid.z;');
  // Batch offsets through the broadcast batch strides (uniform words 4..).
  L.push('var aOff = 0u; var bOff = 0u;');
  // u(3) = merged batch rank (<= batchSlots); batch dim d at words 4 + 3d (size, A stride, B stride).
  L.push('{ var rem = bz;');
  L.push('  for (var d = u(3u); d > 0u; d--) {');
  L.push('    let w = 4u + 3u * (d - 1u); let cd = rem % u(w); rem = rem / u(w);');
  L.push('    aOff += cd * u(w + 1u); bOff += cd * u(w + 2u);');
  L.push('  }');
  L.push('}');
  L.push('let cOff = bz * M * N;');
  L.push(`let m0 = wid.y * ${BM}u; let n0 = wid.x * ${BN}u;`);
  L.push('let tx = lid3.x; let ty = lid3.y;');
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN4; j++) L.push(`var acc_${i}_${j} = vec4<f32>(0.0);`);
  // ---- tile loads, split into global -> registers and registers -> workgroup memory ----
  // Slot s of invocation lid covers element (or vec4) q = lid + s * NT of the tile.
  const aPer = v.aVec ? (BM * BK) / 4 / NT : (BM * BK) / NT;
  const bPer = v.bVec ? (BN * BK) / 4 / NT : (BN * BK) / NT;
  // Interior-only shapes (every dim a multiple of its tile) need no bounds checks.
  const guard = (cond: string, stmt: string) => (v.aligned ? stmt : `if (${cond}) { ${stmt} }`);
  const loadA = (s: number, kBase: string): string => {
    if (v.aVec && !v.tA) {
      // A [M, K] row-major, vec4 along k.
      return `{ let q = lid + ${s * NT}u; let m = q / ${BK / 4}u; let kq = (q % ${BK / 4}u) * 4u; let gm = m0 + m; let gk = ${kBase} + kq;
  ra${s} = vec4<f32>(0.0); ${guard('gm < M && gk < K', `ra${s} = a_v[(aOff + gm * K + gk) / 4u];`)} }`;
    }
    if (v.aVec && v.tA) {
      // A stored [K, M], vec4 along m.
      return `{ let q = lid + ${s * NT}u; let k = q / ${BM / 4}u; let mq = (q % ${BM / 4}u) * 4u; let gm = m0 + mq; let gk = ${kBase} + k;
  ra${s} = vec4<f32>(0.0); ${guard('gm < M && gk < K', `ra${s} = a_v[(aOff + gk * M + gm) / 4u];`)} }`;
    }
    // Scalar: consecutive invocations take consecutive elements of A's contiguous dim.
    const mk = v.tA ? `let k = q / ${BM}u; let m = q % ${BM}u;` : `let m = q / ${BK}u; let k = q % ${BK}u;`;
    return `{ let q = lid + ${s * NT}u; ${mk} let gm = m0 + m; let gk = ${kBase} + k;
  ra${s} = 0.0; ${guard('gm < M && gk < K', `ra${s} = a_ld(aOff + ${v.tA ? 'gk * M + gm' : 'gm * K + gk'});`)} }`;
  };
  const storeA = (s: number, A: string): string => {
    if (v.aVec && !v.tA) {
      return `{ let q = lid + ${s * NT}u; let m = q / ${BK / 4}u; let kq = (q % ${BK / 4}u) * 4u; let mv = m / 4u; let mc = m % 4u;
  ${A}[kq][mv][mc] = ra${s}.x; ${A}[kq + 1u][mv][mc] = ra${s}.y; ${A}[kq + 2u][mv][mc] = ra${s}.z; ${A}[kq + 3u][mv][mc] = ra${s}.w; }`;
    }
    if (v.aVec && v.tA) {
      return `{ let q = lid + ${s * NT}u; let k = q / ${BM / 4}u; ${A}[k][q % ${BM / 4}u] = ra${s}; }`;
    }
    const mk = v.tA ? `let k = q / ${BM}u; let m = q % ${BM}u;` : `let m = q / ${BK}u; let k = q % ${BK}u;`;
    return `{ let q = lid + ${s * NT}u; ${mk} ${A}[k][m / 4u][m % 4u] = ra${s}; }`;
  };
  const loadB = (s: number, kBase: string): string => {
    if (v.bVec && !v.tB) {
      return `{ let q = lid + ${s * NT}u; let k = q / ${BN / 4}u; let nq = (q % ${BN / 4}u) * 4u; let gn = n0 + nq; let gk = ${kBase} + k;
  rb${s} = vec4<f32>(0.0); ${guard('gn < N && gk < K', `rb${s} = b_v[(bOff + gk * N + gn) / 4u];`)} }`;
    }
    if (v.bVec && v.tB) {
      return `{ let q = lid + ${s * NT}u; let n = q / ${BK / 4}u; let kq = (q % ${BK / 4}u) * 4u; let gn = n0 + n; let gk = ${kBase} + kq;
  rb${s} = vec4<f32>(0.0); ${guard('gn < N && gk < K', `rb${s} = b_v[(bOff + gn * K + gk) / 4u];`)} }`;
    }
    const nk = v.tB ? `let n = q / ${BK}u; let k = q % ${BK}u;` : `let k = q / ${BN}u; let n = q % ${BN}u;`;
    return `{ let q = lid + ${s * NT}u; ${nk} let gn = n0 + n; let gk = ${kBase} + k;
  rb${s} = 0.0; ${guard('gn < N && gk < K', `rb${s} = b_ld(bOff + ${v.tB ? 'gn * K + gk' : 'gk * N + gn'});`)} }`;
  };
  const storeB = (s: number, B: string): string => {
    if (v.bVec && !v.tB) {
      return `{ let q = lid + ${s * NT}u; let k = q / ${BN / 4}u; ${B}[k][q % ${BN / 4}u] = rb${s}; }`;
    }
    if (v.bVec && v.tB) {
      return `{ let q = lid + ${s * NT}u; let n = q / ${BK / 4}u; let kq = (q % ${BK / 4}u) * 4u; let nv = n / 4u; let nc = n % 4u;
  ${B}[kq][nv][nc] = rb${s}.x; ${B}[kq + 1u][nv][nc] = rb${s}.y; ${B}[kq + 2u][nv][nc] = rb${s}.z; ${B}[kq + 3u][nv][nc] = rb${s}.w; }`;
    }
    const nk = v.tB ? `let n = q / ${BK}u; let k = q % ${BK}u;` : `let k = q / ${BN}u; let n = q % ${BN}u;`;
    return `{ let q = lid + ${s * NT}u; ${nk} ${B}[k][n / 4u][n % 4u] = rb${s}; }`;
  };
  for (let s = 0; s < aPer; s++) L.push(`var ra${s}: ${v.aVec ? 'vec4<f32>' : 'f32'};`);
  for (let s = 0; s < bPer; s++) L.push(`var rb${s}: ${v.bVec ? 'vec4<f32>' : 'f32'};`);
  const loadAll = (kBase: string) => [...Array.from({ length: aPer }, (_, s) => loadA(s, kBase)), ...Array.from({ length: bPer }, (_, s) => loadB(s, kBase))];
  const storeAll = (buf: 0 | 1) => [...Array.from({ length: aPer }, (_, s) => storeA(s, `As${buf}`)), ...Array.from({ length: bPer }, (_, s) => storeB(s, `Bs${buf}`))];

  // The k loop of one tile, unrolled, with the next step's operands read from workgroup
  // memory before this step's FMAs (so those reads overlap the arithmetic).
  const compute = (buf: 0 | 1): string[] => {
    const out: string[] = [];
    const loads = (kk: number) => [
      ...Array.from({ length: TM4 }, (_, g) => `  let a${kk}_${g} = As${buf}[${kk}u][ty + ${g * WGY}u];`),
      ...Array.from({ length: TN4 }, (_, j) => `  let b${kk}_${j} = Bs${buf}[${kk}u][tx + ${j * WGX}u];`),
    ];
    out.push('{', ...loads(0));
    for (let kk = 0; kk < BK; kk++) {
      if (kk + 1 < BK) out.push(...loads(kk + 1));
      for (let i = 0; i < TM; i++) {
        const g = Math.floor(i / 4);
        const r = i % 4;
        for (let j = 0; j < TN4; j++) out.push(`  acc_${i}_${j} = acc_${i}_${j} + a${kk}_${g}[${r}] * b${kk}_${j};`);
      }
    }
    out.push('}');
    return out;
  };

  // Software pipeline over K with two tile buffers: the next tile's global loads are issued
  // before the current tile's multiply and stored to the other buffer after it, so one barrier
  // per step suffices (a buffer is rewritten only after every invocation passed the barrier that
  // ended its last use). The loop body covers two steps so each names its buffers statically.
  L.push(...loadAll('0u'), ...storeAll(0));
  L.push('workgroupBarrier();');
  L.push(`for (var k0 = 0u; k0 < K; k0 += ${2 * BK}u) {`);
  L.push(`  let more0 = k0 + ${BK}u < K;`);
  L.push('  if (more0) {', ...loadAll(`k0 + ${BK}u`), '  }');
  L.push(...compute(0));
  L.push('  if (more0) {', ...storeAll(1), '  }');
  L.push('  workgroupBarrier();');
  L.push('  if (more0) {');
  L.push(`    let more1 = k0 + ${2 * BK}u < K;`);
  L.push('    if (more1) {', ...loadAll(`k0 + ${2 * BK}u`), '    }');
  L.push(...compute(1));
  L.push('    if (more1) {', ...storeAll(0), '    }');
  L.push('    workgroupBarrier();');
  L.push('  }');
  L.push('}');

  // ---- store ----
  for (let i = 0; i < TM; i++) {
    const g = Math.floor(i / 4);
    const r = i % 4;
    L.push(`{ let gm = m0 + (ty + ${g * WGY}u) * 4u + ${r}u;`);
    L.push('  if (gm < M) {');
    for (let j = 0; j < TN4; j++) {
      L.push(`    { let gn = n0 + (tx + ${j * WGX}u) * 4u;`);
      if (v.cVec) {
        L.push(`      if (gn < N) { c_v[(cOff + gm * N + gn) / 4u] = acc_${i}_${j}; } }`);
      } else {
        L.push(`      for (var e = 0u; e < 4u; e++) { if (gn + e < N) { c_st(cOff + gm * N + gn + e, acc_${i}_${j}[e]); } } }`);
      }
    }
    L.push('  }');
    L.push('}');
  }
  return { decl: decl.join('\n'), body: L.join('\n') };
}

register('matmul', ({ backend, inputs: [a, b], outputs: [c], attrs }) => {
  const { transposeA: tA, transposeB: tB } = attrs as { transposeA: boolean; transposeB: boolean };
  const ra = a!.shape.length;
  const rc = c!.shape.length;
  const M = c!.shape[rc - 2]!;
  const N = c!.shape[rc - 1]!;
  const K = a!.shape[tA ? ra - 2 : ra - 1]!;
  const batchShape = c!.shape.slice(0, -2);
  const batch = sizeOf(batchShape);
  if (M === 0 || N === 0 || batch === 0) return;
  if (K === 0) {
    // An empty inner dimension: C is all zeros.
    runMap(backend, { key: 'fill', inputs: [], output: c!, expr: 'p0', rawOut: true, params: [0] });
    return;
  }
  // Batch strides in elements (0 where A or B broadcast), merged where contiguous.
  const sa = broadcastStrides(a!.shape.slice(0, -2), batchShape).map((s) => s * M * K);
  const sb = broadcastStrides(b!.shape.slice(0, -2), batchShape).map((s) => s * K * N);
  const merged = collapseDims(batchShape, [sa, sb]);
  const batchRank = merged.shape.length;
  if (batch > backend.limits.maxComputeWorkgroupsPerDimension) {
    throw new BackendError(`webgpu: matmul batch of ${batch} matrices exceeds the grid limit ${backend.limits.maxComputeWorkgroupsPerDimension}`);
  }
  const cfg = pickMatmulConfig(M, N, batch, backend.isSoftware);
  const f32 = a!.dtype === 'f32';
  const v: Variant = {
    cfg,
    tA,
    tB,
    aVec: f32 && (tA ? M % 4 === 0 : K % 4 === 0),
    bVec: f32 && (tB ? K % 4 === 0 : N % 4 === 0),
    cVec: c!.dtype === 'f32' && N % 4 === 0,
    aligned: M % (cfg.TM * cfg.WGY) === 0 && N % (cfg.TN * cfg.WGX) === 0 && K % cfg.BK === 0,
    batchSlots: Math.max(4, batchRank),
  };
  const key = `matmul|${a!.dtype}|${c!.dtype}|${cfg.WGX}x${cfg.WGY}x${cfg.TM}x${cfg.TN}x${cfg.BK}|${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}|${v.aVec ? 'v' : 's'}${v.bVec ? 'v' : 's'}${v.cVec ? 'v' : 's'}${v.aligned ? 'a' : ''}|b${v.batchSlots}`;
  const uniformWords = 4 + 3 * v.batchSlots;
  const prog = backend.program(key, () => {
    const { decl, body } = matmulWgsl(v, a!, b!, c!, backend);
    return {
      tensors: [],
      uniformWords,
      workgroupSize: [cfg.WGX, cfg.WGY, 1] as const,
      helpers: decl,
      body,
      // The three tensors are declared by the kernel itself (vec4 views for f32).
      extraBindings: ['read-only-storage', 'read-only-storage', 'storage'] as GPUBufferBindingType[],
    };
  });
  const u = new Uint32Array(uniformWords);
  u[0] = M;
  u[1] = N;
  u[2] = K;
  u[3] = batchRank;
  merged.shape.forEach((d, i) => {
    u[4 + 3 * i] = d;
    u[5 + 3 * i] = merged.strides[0]![i]!;
    u[6 + 3 * i] = merged.strides[1]![i]!;
  });
  const BM = cfg.TM * cfg.WGY;
  const BN = cfg.TN * cfg.WGX;
  const gx = Math.ceil(N / BN);
  const gy = Math.ceil(M / BM);
  backend.dispatch(prog, [a!.buffer, b!.buffer, c!.buffer], u, [gx, gy, batch], 'matmul');
});
