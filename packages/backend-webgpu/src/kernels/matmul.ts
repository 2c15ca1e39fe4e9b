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
import { sizeOf, type TensorInfo } from '@ring-linear/core';
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

export function pickMatmulConfig(M: number, N: number, batch: number, software: boolean): Cfg {
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
  decl.push(`var<workgroup> As: array<vec4<f32>, ${(BK * BM) / 4}>;`, `var<workgroup> Bs: array<vec4<f32>, ${(BK * BN) / 4}>;`);

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
  L.push(`let tx = lid % ${WGX}u; let ty = lid / ${WGX}u;`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN4; j++) L.push(`var acc_${i}_${j} = vec4<f32>(0.0);`);
  L.push(`for (var k0 = 0u; k0 < K; k0 += ${BK}u) {`);

  // ---- load the A tile (BM x BK) into As[k][m] ----
  if (v.aVec && !v.tA) {
    // A [M, K] row-major, vec4 along k; scattered into the k-major tile.
    const per = (BM * BK) / 4 / NT;
    {
      L.push(`for (var s = 0u; s < ${per}u; s++) { let q = lid + s * ${NT}u; let m = q / ${BK / 4}u; let kq = (q % ${BK / 4}u) * 4u;`);
      L.push(`  let gm = m0 + m; let gk = k0 + kq;`);
      L.push(`  var val = vec4<f32>(0.0);`);
      L.push(`  if (gm < M && gk < K) { val = a_v[(aOff + gm * K + gk) / 4u]; }`);
      L.push(`  for (var e = 0u; e < 4u; e++) { As[((kq + e) * ${BM}u + m) / 4u][m % 4u] = val[e]; } }`);
    }
  } else if (v.aVec && v.tA) {
    // A stored [K, M], vec4 along m: straight into the k-major tile.
    const per = (BM * BK) / 4 / NT;
    {
      L.push(`for (var s = 0u; s < ${per}u; s++) { let q = lid + s * ${NT}u; let k = q / ${BM / 4}u; let mq = (q % ${BM / 4}u) * 4u;`);
      L.push(`  let gm = m0 + mq; let gk = k0 + k;`);
      L.push(`  var val = vec4<f32>(0.0);`);
      L.push(`  if (gm < M && gk < K) { val = a_v[(aOff + gk * M + gm) / 4u]; }`);
      L.push(`  As[(k * ${BM}u + mq) / 4u] = val; }`);
    }
  } else {
    const per = (BM * BK) / NT;
    {
      // Consecutive invocations take consecutive elements of A's contiguous dim.
      L.push(`for (var s = 0u; s < ${per}u; s++) { let q = lid + s * ${NT}u;`);
      L.push(v.tA ? `  let k = q / ${BM}u; let m = q % ${BM}u;` : `  let m = q / ${BK}u; let k = q % ${BK}u;`);
      L.push(`  let gm = m0 + m; let gk = k0 + k;`);
      L.push(`  var val = 0.0;`);
      L.push(`  if (gm < M && gk < K) { val = a_ld(aOff + ${v.tA ? 'gk * M + gm' : 'gm * K + gk'}); }`);
      L.push(`  As[(k * ${BM}u + m) / 4u][m % 4u] = val; }`);
    }
  }

  // ---- load the B tile (BK x BN) into Bs[k][n] ----
  if (v.bVec && !v.tB) {
    const per = (BN * BK) / 4 / NT;
    {
      L.push(`for (var s = 0u; s < ${per}u; s++) { let q = lid + s * ${NT}u; let k = q / ${BN / 4}u; let nq = (q % ${BN / 4}u) * 4u;`);
      L.push(`  let gn = n0 + nq; let gk = k0 + k;`);
      L.push(`  var val = vec4<f32>(0.0);`);
      L.push(`  if (gn < N && gk < K) { val = b_v[(bOff + gk * N + gn) / 4u]; }`);
      L.push(`  Bs[(k * ${BN}u + nq) / 4u] = val; }`);
    }
  } else if (v.bVec && v.tB) {
    const per = (BN * BK) / 4 / NT;
    {
      L.push(`for (var s = 0u; s < ${per}u; s++) { let q = lid + s * ${NT}u; let n = q / ${BK / 4}u; let kq = (q % ${BK / 4}u) * 4u;`);
      L.push(`  let gn = n0 + n; let gk = k0 + kq;`);
      L.push(`  var val = vec4<f32>(0.0);`);
      L.push(`  if (gn < N && gk < K) { val = b_v[(bOff + gn * K + gk) / 4u]; }`);
      L.push(`  for (var e = 0u; e < 4u; e++) { Bs[((kq + e) * ${BN}u + n) / 4u][n % 4u] = val[e]; } }`);
    }
  } else {
    const per = (BN * BK) / NT;
    {
      L.push(`for (var s = 0u; s < ${per}u; s++) { let q = lid + s * ${NT}u;`);
      L.push(v.tB ? `  let n = q / ${BK}u; let k = q % ${BK}u;` : `  let k = q / ${BN}u; let n = q % ${BN}u;`);
      L.push(`  let gn = n0 + n; let gk = k0 + k;`);
      L.push(`  var val = 0.0;`);
      L.push(`  if (gn < N && gk < K) { val = b_ld(bOff + ${v.tB ? 'gn * K + gk' : 'gk * N + gn'}); }`);
      L.push(`  Bs[(k * ${BN}u + n) / 4u][n % 4u] = val; }`);
    }
  }
  L.push('workgroupBarrier();');

  // ---- multiply the tiles ----
  L.push(`for (var kk = 0u; kk < ${BK}u; kk++) {`);
  for (let g = 0; g < TM4; g++) L.push(`  let av${g} = As[kk * ${BM / 4}u + ty + ${g * WGY}u];`);
  for (let j = 0; j < TN4; j++) L.push(`  let bv${j} = Bs[kk * ${BN / 4}u + tx + ${j * WGX}u];`);
  for (let i = 0; i < TM; i++) {
    const g = Math.floor(i / 4);
    const r = i % 4;
    for (let j = 0; j < TN4; j++) L.push(`  acc_${i}_${j} = acc_${i}_${j} + av${g}[${r}] * bv${j};`);
  }
  L.push('}');
  L.push('workgroupBarrier();');
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
    throw new Error(`webgpu: matmul batch of ${batch} matrices exceeds the grid limit ${backend.limits.maxComputeWorkgroupsPerDimension}`);
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
    batchSlots: Math.max(4, batchRank),
  };
  const key = `matmul|${a!.dtype}|${c!.dtype}|${cfg.WGX}x${cfg.WGY}x${cfg.TM}x${cfg.TN}x${cfg.BK}|${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}|${v.aVec ? 'v' : 's'}${v.bVec ? 'v' : 's'}${v.cVec ? 'v' : 's'}|b${v.batchSlots}`;
  const uniformWords = 4 + 3 * v.batchSlots;
  const prog = backend.program(key, () => {
    const { decl, body } = matmulWgsl(v, a!, b!, c!, backend);
    return {
      tensors: [],
      uniformWords,
      workgroupSize: cfg.WGX * cfg.WGY,
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
