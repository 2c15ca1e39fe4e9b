/**
 * JavaScript models of kernels/moe.cuh for the mock driver (imported by test/emulated-moe.test.ts).
 * Each model does what its kernel does from the launch's arguments and grid: the router's arg-max
 * rounds, the plan's per-chunk count table, the GEMMs over the device-built tile list (so the host
 * side's geometry, temporaries and argument order are what is checked). Every model throws when
 * the grid does not cover its work, as the kernel would silently skip it.
 */
import { decodeToF32, encodeF32, type DType } from '@ring-linear/core';
import { registerKernelModel, type EmulatorIO } from './emulator.js';

const SFX: Record<string, DType> = { f32: 'f32', f16: 'f16', bf16: 'bf16' };
const f = Math.fround;
const BM = 128;
const BN = 128;

/** n elements of a float dtype at ptr, decoded. */
function readF(io: EmulatorIO, d: DType, p: number, n: number): Float32Array {
  if (n === 0) return new Float32Array(0);
  if (d === 'f32') {
    const dv = io.view(p, 4 * n);
    return Float32Array.from({ length: n }, (_, i) => dv.getFloat32(4 * i, true));
  }
  const dv = io.view(p, 2 * n);
  const u = new Uint16Array(n);
  for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true);
  return decodeToF32(d as 'bf16', u);
}
function writeF(io: EmulatorIO, d: DType, p: number, vals: ArrayLike<number>, at = 0): void {
  const n = vals.length;
  if (n === 0) return;
  if (d === 'f32') {
    const dv = io.view(p + 4 * at, 4 * n);
    for (let i = 0; i < n; i++) dv.setFloat32(4 * i, vals[i]!, true);
    return;
  }
  const codes = encodeF32(d as 'bf16', Float32Array.from(vals));
  const dv = io.view(p + 2 * at, 2 * n);
  for (let i = 0; i < n; i++) dv.setUint16(2 * i, codes[i]!, true);
}
function readI(io: EmulatorIO, p: number, n: number): Int32Array {
  const dv = io.view(p, 4 * Math.max(n, 1));
  return Int32Array.from({ length: n }, (_, i) => dv.getInt32(4 * i, true));
}
function writeI(io: EmulatorIO, p: number, vals: ArrayLike<number>, at = 0): void {
  if (vals.length === 0) return;
  const dv = io.view(p + 4 * at, 4 * vals.length);
  for (let i = 0; i < vals.length; i++) dv.setInt32(4 * i, vals[i]!, true);
}
const ptrAt = (io: EmulatorIO, table: number, e: number) => Number(io.raw(8, table, e));

function needThreads(what: string, grid: readonly number[], block: readonly number[], threads: number): void {
  const have = grid[0]! * block[0]!;
  if (have < threads) throw new Error(`emu_moe: ${what} launched ${have} threads for ${threads} (grid ${grid}, block ${block})`);
}

// (v1, j1) precedes (v2, j2): the kernels' moe_better.
const better = (v1: number, j1: number, v2: number, j2: number) => j1 >= 0 && (j2 < 0 || v1 > v2 || (v1 === v2 && j1 < j2));

/** Arg-max rounds in (value desc, index asc) order: the first k picks. */
function rounds(n: number, k: number, val: (j: number) => number): { v: number; j: number }[] {
  const out: { v: number; j: number }[] = [];
  let pv = 0, pj = -1;
  for (let r = 0; r < k; r++) {
    let bv = 0, bj = -1;
    for (let j = 0; j < n; j++) {
      const v = val(j);
      if ((r === 0 || better(pv, pj, v, j)) && better(v, j, bv, bj)) { bv = v; bj = j; }
    }
    out.push({ v: bv, j: bj });
    pv = bv;
    pj = bj;
  }
  return out;
}

registerKernelModel(/^moe_route_(f32|bf16|f16)$/, (m, a, io, grid, block) => {
  const [logitsP, biasP, scoresP, weightsP, indicesP, gscoreP, N, E, K, nGroup, topkGroup, softmax, norm, scale] = a;
  needThreads('moe_route', grid, block, 32 * N);
  const bias = readF(io, SFX[m[1]!]!, biasP, E);
  const logits = readF(io, 'f32', logitsP, N * E);
  const size = E / nGroup;
  const limited = topkGroup < nGroup;
  for (let n = 0; n < N; n++) {
    const l = logits.subarray(n * E, (n + 1) * E);
    let s: number[];
    if (softmax) {
      const mx = Math.max(...l);
      const ex = Array.from(l, (v) => f(Math.exp(f(v - mx))));
      const z = f(ex.reduce((p, q) => f(p + q), 0));
      s = ex.map((v) => f(v / z));
    } else {
      s = Array.from(l, (v) => f(1 / f(1 + f(Math.exp(-v)))));
    }
    writeF(io, 'f32', scoresP, s, n * E);
    const b = s.map((v, j) => f(v + bias[j]!));
    let keep = (_j: number) => true;
    if (limited) {
      const gs = Array.from({ length: nGroup }, (_, g) => {
        const vals = b.slice(g * size, (g + 1) * size).sort((p, q) => q - p);
        return size >= 2 ? f(vals[0]! + vals[1]!) : vals[0]!;
      });
      writeF(io, 'f32', gscoreP, gs, n * nGroup);
      const last = rounds(nGroup, topkGroup, (g) => gs[g]!)[topkGroup - 1]!;
      keep = (j) => {
        const g = Math.floor(j / size);
        return gs[g]! > last.v || (gs[g] === last.v && g <= last.j);
      };
    }
    const picks = rounds(E, K, (j) => (keep(j) ? b[j]! : 0));
    const sel = picks.map((p) => s[p.j]!);
    let div = 1;
    if (norm) div = f(sel.reduce((p, q) => f(p + q), 0) + 1e-20);
    writeI(io, indicesP, picks.map((p) => p.j), n * K);
    writeF(io, 'f32', weightsP, sel.map((v) => f((norm ? f(v / div) : v) * scale)), n * K);
  }
});

registerKernelModel(/^moe_plan_walk$/, (_m, a, io, grid, block) => {
  const [idsP, tableP, s2rP, r2sP, S, E, chunk, chunks, scatter] = a;
  needThreads('moe_plan_walk', grid, block, 32 * chunks);
  const ids = readI(io, idsP, S);
  const table = readI(io, tableP, chunks * (E + 1));
  const s2r = scatter ? readI(io, s2rP, S) : null;
  const r2s = scatter ? readI(io, r2sP, S) : null;
  for (let c = 0; c < chunks; c++) {
    for (let j = c * chunk; j < Math.min(S, (c + 1) * chunk); j++) {
      const id = ids[j]!;
      const bkt = id >= 0 && id < E ? id : E;
      const at = c * (E + 1) + bkt;
      if (scatter) {
        const r = table[at]!;
        if (r < 0 || r >= S) throw new Error(`emu_moe: plan row ${r} outside [0, ${S})`);
        s2r![j] = r;
        r2s![r] = j;
      }
      table[at]!++;
    }
  }
  writeI(io, tableP, table);
  if (scatter) {
    writeI(io, s2rP, s2r!);
    writeI(io, r2sP, r2s!);
  }
});

registerKernelModel(/^moe_plan_scan$/, (_m, a, io, grid, block) => {
  const [tableP, offsetsP, tpeP, E, chunks] = a;
  if (grid[0] !== 1 || block[0] % 32 !== 0 || block[0] > 1024) throw new Error(`emu_moe: moe_plan_scan wants one block of <= 1024 threads, got ${grid} x ${block}`);
  const table = readI(io, tableP, chunks * (E + 1));
  const totals = new Int32Array(E + 1);
  for (let b = 0; b <= E; b++) {
    let run = 0;
    for (let c = 0; c < chunks; c++) {
      const t = table[c * (E + 1) + b]!;
      table[c * (E + 1) + b] = run;
      run += t;
    }
    totals[b] = run;
  }
  let start = 0;
  const offsets = new Int32Array(E + 1);
  for (let b = 0; b <= E; b++) {
    offsets[b] = start;
    for (let c = 0; c < chunks; c++) table[c * (E + 1) + b] += start;
    start += totals[b]!;
  }
  writeI(io, tableP, table);
  writeI(io, offsetsP, offsets);
  writeI(io, tpeP, totals.subarray(0, E));
});

registerKernelModel(/^moe_permute_v(\d+)$/, (m, a, io, grid, block) => {
  const [xP, xpP, r2sP, rows, K, rowBytes] = a;
  const v = Number(m[1]);
  if (rowBytes % v !== 0 || xP % v !== 0 || xpP % v !== 0) throw new Error(`emu_moe: permute width ${v} does not divide row bytes ${rowBytes} / addresses`);
  needThreads('moe_permute', grid, block, 32 * rows);
  const r2s = readI(io, r2sP, rows);
  const dv = io.view(xpP, rows * rowBytes);
  for (let r = 0; r < rows; r++) {
    const slot = r2s[r]!;
    const valid = slot >= 0 && slot < rows;
    const src = valid ? io.view(xP + Math.floor(slot / K) * rowBytes, rowBytes) : null;
    for (let i = 0; i < rowBytes; i++) dv.setUint8(r * rowBytes + i, src ? src.getUint8(i) : 0);
  }
});

registerKernelModel(/^moe_combine_(f32|bf16|f16)_(f32|bf16|f16)_v(\d+)$/, (m, a, io, grid, block) => {
  const [ypP, wP, s2rP, yP, N, K, H] = a;
  const d = SFX[m[1]!]!;
  const v = Number(m[3]);
  if (H % v !== 0 || (v > 1 && (ypP % 16 !== 0 || yP % 16 !== 0))) throw new Error(`emu_moe: combine vector ${v} with H = ${H} or unaligned rows`);
  needThreads('moe_combine', grid, block, 32 * N);
  const rows = N * K;
  const yp = readF(io, d, ypP, rows * H);
  const w = readF(io, SFX[m[2]!]!, wP, N * K);
  const s2r = readI(io, s2rP, N * K);
  const y = new Float32Array(N * H);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < H; c++) {
      let acc = 0;
      for (let k = 0; k < K; k++) {
        const r = s2r[n * K + k]!;
        const val = r >= 0 && r < rows ? yp[r * H + c]! : 0;
        acc = f(acc + f(w[n * K + k]! * val));
      }
      y[n * H + c] = acc;
    }
  }
  writeF(io, d, yP, y);
});

/** Clamped, non-decreasing segment of expert e (moe_segment). */
function segment(off: Int32Array, e: number, R: number): [number, number] {
  const c = (v: number) => Math.min(Math.max(v, 0), R);
  const lo = c(off[e]!);
  return [lo, Math.max(lo, c(off[e + 1]!))];
}

registerKernelModel(/^moe_gmm_tiles$/, (_m, a, io, grid) => {
  const [offP, E, R, tilesP, countP] = a;
  if (grid[0] !== 1) throw new Error('emu_moe: moe_gmm_tiles wants one block');
  const off = readI(io, offP, E + 1);
  const tiles: number[] = [];
  for (let e = 0; e < E; e++) {
    const [lo, hi] = segment(off, e, R);
    for (let r = lo; r < hi; r += BM) tiles.push(e, r);
  }
  writeI(io, tilesP, tiles);
  writeI(io, countP, [tiles.length / 2]);
});

registerKernelModel(/^moe_gmm_zero_(f32|bf16|f16)$/, (m, a, io) => {
  const [offP, E, R, yP, out] = a;
  const off = readI(io, offP, E + 1);
  const lo = Math.min(Math.max(off[0]!, 0), R);
  const hi = Math.max(lo, Math.min(Math.max(off[E]!, 0), R));
  const d = SFX[m[1]!]!;
  writeF(io, d, yP, new Float32Array(lo * out), 0);
  writeF(io, d, yP, new Float32Array((R - hi) * out), hi * out);
});

/** Weight e of a list (table) or a stacked tensor (base + e * size), decoded. */
const weightOf = (io: EmulatorIO, d: DType, table: number, base: number, e: number, size: number) =>
  readF(io, d, table ? ptrAt(io, table, e) : base + e * size * (d === 'f32' ? 4 : 2), size);

registerKernelModel(/^moe_gmm_(bf16|f16)_tb([01])_(v[1-5])$/, (m, a, io, grid, block) => {
  const [xP, table, base, tilesP, countP, offP, yP, R, inD, out] = a;
  const d = SFX[m[1]!]!;
  const tB = m[2] === '1';
  const bn = 128;
  if (block[0] !== 256 || grid[0] * bn < out) throw new Error(`emu_moe: moe_gmm grid ${grid} x ${block} does not cover ${out} columns`);
  if (inD % 8 !== 0 || out % 8 !== 0) throw new Error(`emu_moe: moe_gmm needs in, out multiples of 8, got ${inD}, ${out}`);
  const ntiles = readI(io, countP, 1)[0]!;
  const tiles = readI(io, tilesP, 2 * ntiles);
  const x = readF(io, d, xP, R * inD);
  const y = readF(io, d, yP, R * out);
  const cache = new Map<number, Float32Array>();
  const covered = new Set<number>();
  const nExperts = Math.max(0, ...Array.from({ length: ntiles }, (_, t) => tiles[2 * t]! + 1));
  const off = readI(io, offP, nExperts + 1);
  for (let by = 0; by < grid[1]; by++) {
    for (let t = by; t < ntiles; t += grid[1]) {
      if (covered.has(t)) throw new Error(`emu_moe: tile ${t} done twice`);
      covered.add(t);
      const e = tiles[2 * t]!, r0 = tiles[2 * t + 1]!;
      const [, hi] = segment(off, e, R);
      if (!cache.has(e)) cache.set(e, weightOf(io, d, table, base, e, inD * out));
      const w = cache.get(e)!;
      for (let r = r0; r < Math.min(r0 + BM, hi); r++) {
        for (let j = 0; j < out; j++) {
          let acc = 0;
          for (let k = 0; k < inD; k++) acc = f(acc + x[r * inD + k]! * (tB ? w[j * inD + k]! : w[k * out + j]!));
          y[r * out + j] = acc;
        }
      }
    }
  }
  if (covered.size !== ntiles) throw new Error(`emu_moe: ${ntiles - covered.size} tiles not covered by grid.y = ${grid[1]}`);
  writeF(io, d, yP, y);
});

registerKernelModel(/^moe_gmm_simple_(f32|bf16|f16)$/, (m, a, io, grid, block) => {
  const [xP, table, base, offP, E, yP, R, inD, out, transB] = a;
  const d = SFX[m[1]!]!;
  if (grid[0] * block[0] <= 0) throw new Error('emu_moe: empty grid');
  const off = readI(io, offP, E + 1);
  const x = readF(io, d, xP, R * inD);
  const y = new Float32Array(R * out);
  for (let e = 0; e < E; e++) {
    const [lo, hi] = segment(off, e, R);
    if (hi <= lo) continue;
    const w = weightOf(io, d, table, base, e, inD * out);
    for (let r = lo; r < hi; r++) {
      for (let j = 0; j < out; j++) {
        let acc = 0;
        for (let k = 0; k < inD; k++) acc = f(acc + x[r * inD + k]! * (transB ? w[j * inD + k]! : w[k * out + j]!));
        y[r * out + j] = acc;
      }
    }
  }
  writeF(io, d, yP, y);
});

function atb(m: RegExpMatchArray, io: EmulatorIO, aP: number, bP: number, offP: number, E: number, table: number, base: number, R: number, P: number, Q: number) {
  const d = SFX[m[1]!]!;
  const off = readI(io, offP, E + 1);
  const av = readF(io, d, aP, R * P);
  const bv = readF(io, d, bP, R * Q);
  const size = P * Q;
  for (let e = 0; e < E; e++) {
    const [lo, hi] = segment(off, e, R);
    const o = new Float32Array(size);
    for (let p = 0; p < P; p++) {
      for (let q = 0; q < Q; q++) {
        let acc = 0;
        for (let r = lo; r < hi; r++) acc = f(acc + av[r * P + p]! * bv[r * Q + q]!);
        o[p * Q + q] = acc;
      }
    }
    if (table) writeF(io, d, ptrAt(io, table, e), o);
    else writeF(io, d, base, o, e * size);
  }
}

registerKernelModel(/^moe_gmm_atb_(bf16|f16)_(v[1-5])$/, (m, a, io, grid, block) => {
  const [aP, bP, offP, table, base, R, P, Q, E, G] = a;
  if (block[0] !== 256 || grid[0] * BN < Q || grid[1] * BM < P || grid[2] * G < E) throw new Error(`emu_moe: moe_gmm_atb grid ${grid} (G ${G}) does not cover [${E}, ${P}, ${Q}]`);
  if (m[2] === 'v1' && G !== 1) throw new Error(`emu_moe: v1 A^T B takes one expert per block, got G = ${G}`);
  if (P % 8 !== 0 || Q % 8 !== 0) throw new Error(`emu_moe: moe_gmm_atb needs P, Q multiples of 8, got ${P}, ${Q}`);
  atb(m, io, aP, bP, offP, E, table, base, R, P, Q);
});

registerKernelModel(/^moe_gmm_atb_simple_(f32|bf16|f16)$/, (m, a, io) => {
  const [aP, bP, offP, E, table, base, R, P, Q] = a;
  atb(m, io, aP, bP, offP, E, table, base, R, P, Q);
});
