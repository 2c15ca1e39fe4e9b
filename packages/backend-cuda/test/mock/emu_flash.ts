/**
 * JavaScript models of kernels/flash.cuh for the mock driver (test/mock/emulator.ts): what each
 * launch computes, with the kernels' roundings where they change results (P and dS rounded to the
 * 16-bit dtype before their matrix products, exp2 on log2e-scaled scores) and their output layout.
 * The launch geometry is checked against the kernels' tiling (a host-side planning error fails
 * here rather than on the GPU).
 */
import { decodeToF32, encodeF32, type DType } from '@ring-linear/core';
import { registerKernelModel, type EmulatorIO } from './emulator.js';

const SFX: Record<string, DType> = { bf16: 'bf16', f16: 'f16', f32: 'f32' };
const W = (d: DType) => (d === 'f32' ? 4 : 2);
const LOG2E = 1.4426950408889634;
const f = Math.fround;
const cdiv = (a: number, b: number) => Math.ceil(a / b);

/** n elements of dtype d at ptr, decoded to f32. */
function loadAll(io: EmulatorIO, d: DType, ptr: number, n: number): Float32Array {
  const dv = io.view(ptr, n * W(d));
  const bytes = new Uint8Array(dv.buffer, dv.byteOffset, n * W(d)).slice();
  return d === 'f32' ? new Float32Array(bytes.buffer) : decodeToF32(d as 'bf16', new Uint16Array(bytes.buffer));
}

/** Stores vals[i] (rounded to d) at the listed element indices. */
function storeAt(io: EmulatorIO, d: DType, ptr: number, n: number, vals: Float32Array, idx: Iterable<number>): void {
  const dv = io.view(ptr, n * W(d));
  const codes = d === 'f32' ? null : encodeF32(d as 'bf16', vals);
  for (const i of idx) {
    if (codes) dv.setUint16(i * 2, codes[i]!, true);
    else dv.setFloat32(i * 4, vals[i]!, true);
  }
}

/** Rounds to the 16-bit dtype (what packing a fragment does). */
function round16(d: DType, xs: Float32Array): Float32Array {
  return d === 'f32' ? xs : decodeToF32(d as 'bf16', encodeF32(d as 'bf16', xs) as Uint16Array);
}

interface Seg {
  Tq: number; Tk: number; H: number; Hkv: number; q0: number; nq: number; k0: number; nk: number; kvOffset: number; causal: number;
}

/** Keys [0, hi) of the launch visible to query i (the others are past nk or the diagonal). */
const visibleEnd = (s: Seg, i: number) => (s.causal ? Math.min(s.nk, s.kvOffset + i + 1) : s.nk);

function dot(a: Float32Array, ai: number, b: Float32Array, bi: number, n: number): number {
  let acc = 0;
  for (let c = 0; c < n; c++) acc = f(acc + f(a[ai + c]! * b[bi + c]!));
  return acc;
}

// Forward (mma.sync and wgmma flavours): out and lse of the launch's queries.
registerKernelModel(/^flash_fwd_(?:wg(?:1b)?_)?(bf16|f16)_d(64|128)$/, (m, a, io, grid, block) => {
  const d = SFX[m[1]!]!, D = Number(m[2]);
  if (m[0].includes('_wg') && !(a[16] === 128 * 128 && a[17] === 1024)) throw new Error(`${m[0]}: V descriptor strides ${a[16]}, ${a[17]}, want 16384 (128 keys x 128 bytes) and 1024`);
  const [q, k, v, out, lseP, Tq, Tk, H, Hkv, q0, nq, k0, nk, kvOffset, causal, scaleLog2] = a;
  const s: Seg = { Tq, Tk, H, Hkv, q0, nq, k0, nk, kvOffset, causal };
  if (block[0] !== 256) throw new Error(`${m[0]}: ${block[0]} threads, the kernel is written for 256`);
  if (grid[1] !== cdiv(nq, 128)) throw new Error(`${m[0]}: grid.y ${grid[1]} is not ${cdiv(nq, 128)} query tiles of 128`);
  if (grid[0] % H !== 0) throw new Error(`${m[0]}: grid.x ${grid[0]} is not batch x ${H} heads`);
  const B = grid[0] / H, G = H / Hkv;
  const Q = loadAll(io, d, q, B * Tq * H * D), K = loadAll(io, d, k, B * Tk * Hkv * D), V = loadAll(io, d, v, B * Tk * Hkv * D);
  const O = new Float32Array(B * Tq * H * D), L = new Float32Array(B * H * Tq);
  const oIdx: number[] = [], lIdx: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / G);
      for (let i = 0; i < nq; i++) {
        const hi = visibleEnd(s, i);
        const qi = ((b * Tq + q0 + i) * H + h) * D;
        const sc = new Float32Array(hi);
        let mx = -Infinity;
        for (let j = 0; j < hi; j++) {
          sc[j] = f(dot(Q, qi, K, ((b * Tk + k0 + j) * Hkv + hk) * D, D) * scaleLog2);
          mx = Math.max(mx, sc[j]!);
        }
        let l = 0;
        for (let j = 0; j < hi; j++) {
          sc[j] = f(2 ** (sc[j]! - mx));
          l = f(l + sc[j]!);
        }
        const p = round16(d, sc);
        for (let c = 0; c < D; c++) {
          let o = 0;
          for (let j = 0; j < hi; j++) o = f(o + f(p[j]! * V[((b * Tk + k0 + j) * Hkv + hk) * D + c]!));
          O[qi + c] = f(o * f(1 / l));
          oIdx.push(qi + c);
        }
        const li = (b * H + h) * Tq + q0 + i;
        L[li] = f((mx + Math.log2(l)) * Math.LN2);
        lIdx.push(li);
      }
    }
  }
  storeAt(io, d, out, B * Tq * H * D, O, oIdx);
  storeAt(io, 'f32', lseP, B * H * Tq, L, lIdx);
});

// Decode forward (flash_decode): per (b, kv head) and split, the partials (m in the natural-log
// domain, l, unnormalized output) of the group's R = nq * G <= 16 rows over the split's keys, for
// attention.cuh's combine. The kernel's warps keep their own running max and merge at the end;
// that changes only f32 rounding, so the model takes one max per split.
registerKernelModel(/^flash_decode_(bf16|f16)_d(64|128)$/, (m, a, io, grid, block) => {
  const d = SFX[m[1]!]!, D = Number(m[2]);
  const [q, k, v, pm, pl, pacc, Tq, Tk, H, Hkv, q0, nq, k0, nk, kvOffset, causal, scaleLog2, chunk, nsplit] = a;
  const G = H / Hkv, R = nq * G;
  if (block[0] !== 128) throw new Error(`${m[0]}: ${block[0]} threads, the kernel is written for 128`);
  if (R > 16) throw new Error(`${m[0]}: ${R} rows (queries x group) do not fit the 16-row tile`);
  if (grid[0] !== nsplit) throw new Error(`${m[0]}: grid.x ${grid[0]} is not ${nsplit} splits`);
  if (grid[1] % Hkv !== 0) throw new Error(`${m[0]}: grid.y ${grid[1]} is not batch x ${Hkv} kv heads`);
  if (chunk % 64 !== 0) throw new Error(`${m[0]}: chunk ${chunk} is not a multiple of the key tile`);
  const B = grid[1] / Hkv;
  const Q = loadAll(io, d, q, B * Tq * H * D), K = loadAll(io, d, k, B * Tk * Hkv * D), V = loadAll(io, d, v, B * Tk * Hkv * D);
  const nRows = B * Hkv * R * nsplit;
  const PM = new Float32Array(nRows), PL = new Float32Array(nRows), PA = new Float32Array(nRows * D);
  const s: Seg = { Tq, Tk, H, Hkv, q0, nq, k0, nk, kvOffset, causal };
  const lastEnd = visibleEnd(s, Math.floor((R - 1) / G));
  for (let bh = 0; bh < B * Hkv; bh++) {
    const b = Math.floor(bh / Hkv), hk = bh % Hkv;
    for (let sp = 0; sp < nsplit; sp++) {
      const kBegin = sp * chunk, kEnd = Math.min(lastEnd, kBegin + chunk);
      for (let r = 0; r < R; r++) {
        const i = Math.floor(r / G), h = hk * G + (r % G);
        const qi = ((b * Tq + q0 + i) * H + h) * D;
        const hi = Math.min(kEnd, visibleEnd(s, i));
        const sc: number[] = [];
        let mx = -Infinity;
        for (let j = kBegin; j < hi; j++) {
          const x = f(dot(Q, qi, K, ((b * Tk + k0 + j) * Hkv + hk) * D, D) * scaleLog2);
          sc.push(x);
          mx = Math.max(mx, x);
        }
        const slot = (bh * R + r) * nsplit + sp;
        const p = Float32Array.from(sc, (x) => f(2 ** (x - mx)));
        const p16 = round16(d, p);
        PM[slot] = mx === -Infinity ? -Infinity : f(mx * Math.LN2);
        PL[slot] = p.reduce((u, w) => f(u + w), 0);
        for (let c = 0; c < D; c++) {
          let o = 0;
          for (let jj = 0; jj < p16.length; jj++) o = f(o + f(p16[jj]! * V[((b * Tk + k0 + kBegin + jj) * Hkv + hk) * D + c]!));
          PA[slot * D + c] = o;
        }
      }
    }
  }
  storeAt(io, 'f32', pm, nRows, PM, PM.keys());
  storeAt(io, 'f32', pl, nRows, PL, PL.keys());
  storeAt(io, 'f32', pacc, nRows * D, PA, PA.keys());
});

// Backward pre-pass: Di = rowsum(dO * O) - dLse.
registerKernelModel(/^flash_bwd_prep_(bf16|f16|f32)$/, (m, a, io, grid, block) => {
  const d = SFX[m[1]!]!;
  const [o, dO, dLse, di, B, Tq, H, Dv] = a;
  const rows = B * Tq * H;
  if (block[0] !== 128 || grid[0] !== cdiv(rows, 4)) throw new Error(`${m[0]}: grid ${grid[0]} x ${block[0]}, want ${cdiv(rows, 4)} x 128 (a warp per row)`);
  const O = loadAll(io, d, o, rows * Dv), G = loadAll(io, d, dO, rows * Dv), DL = loadAll(io, 'f32', dLse, rows);
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const h = r % H, bi = Math.floor(r / H), b = Math.floor(bi / Tq), i = bi % Tq;
    const at = (b * H + h) * Tq + i;
    out[at] = f(dot(G, r * Dv, O, r * Dv, Dv) - DL[at]!);
  }
  storeAt(io, 'f32', di, rows, out, out.keys());
});

registerKernelModel(/^flash_bwd_dq_convert_(bf16|f16)$/, (m, a, io) => {
  const d = SFX[m[1]!]!;
  const [acc, dq, n, scale] = a;
  const A = loadAll(io, 'f32', acc, n);
  storeAt(io, d, dq, n, A.map((x) => f(x * scale)), A.keys());
});

/** The backward of one launch: dq (or its f32 accumulator), dk, dv rows of the launch's keys. */
function backward(d: DType, B: number, D: number, Dv: number, s: Seg, io: EmulatorIO, ptrs: { q: number; k: number; v: number; dO: number; lse: number; di: number },
  scale: number, roundPdS: boolean) {
  const { Tq, Tk, H, Hkv, q0, nq, k0, nk } = s;
  const G = H / Hkv;
  const Q = loadAll(io, d, ptrs.q, B * Tq * H * D), K = loadAll(io, d, ptrs.k, B * Tk * Hkv * D), V = loadAll(io, d, ptrs.v, B * Tk * Hkv * Dv);
  const dO = loadAll(io, d, ptrs.dO, B * Tq * H * Dv), L = loadAll(io, 'f32', ptrs.lse, B * H * Tq), Di = loadAll(io, 'f32', ptrs.di, B * H * Tq);
  const dq = new Float32Array(B * Tq * H * D), dk = new Float32Array(B * Tk * Hkv * D), dv = new Float32Array(B * Tk * Hkv * Dv);
  const r16 = (x: number) => (roundPdS ? round16(d, Float32Array.of(x))[0]! : x);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / G);
      for (let i = 0; i < nq; i++) {
        const qi = ((b * Tq + q0 + i) * H + h) * D, oi = ((b * Tq + q0 + i) * H + h) * Dv;
        const at = (b * H + h) * Tq + q0 + i;
        for (let j = 0; j < visibleEnd(s, i); j++) {
          const kj = ((b * Tk + k0 + j) * Hkv + hk) * D, vj = ((b * Tk + k0 + j) * Hkv + hk) * Dv;
          const p = roundPdS ? f(2 ** f(f(dot(Q, qi, K, kj, D) * f(scale * LOG2E)) - f(L[at]! * LOG2E))) : f(Math.exp(dot(Q, qi, K, kj, D) * scale - L[at]!));
          const ds = f(p * f(dot(dO, oi, V, vj, Dv) - Di[at]!));
          const pr = r16(p), dsr = r16(ds);
          for (let c = 0; c < Dv; c++) dv[vj + c] = f(dv[vj + c]! + f(pr * dO[oi + c]!));
          for (let c = 0; c < D; c++) {
            dk[kj + c] = f(dk[kj + c]! + f(dsr * Q[qi + c]!));
            dq[qi + c] = f(dq[qi + c]! + f(dsr * K[kj + c]!));
          }
        }
      }
    }
  }
  const rowsQ: number[] = [], rowsK: number[] = [], rowsV: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < nq; i++) for (let h = 0; h < H; h++) for (let c = 0; c < D; c++) rowsQ.push(((b * Tq + q0 + i) * H + h) * D + c);
    for (let j = 0; j < nk; j++) {
      for (let h = 0; h < Hkv; h++) {
        for (let c = 0; c < D; c++) rowsK.push(((b * Tk + k0 + j) * Hkv + h) * D + c);
        for (let c = 0; c < Dv; c++) rowsV.push(((b * Tk + k0 + j) * Hkv + h) * Dv + c);
      }
    }
  }
  return { dq, dk: dk.map((x) => f(x * scale)), dv, rowsQ, rowsK, rowsV };
}

// Backward main kernel: dk, dv of the launch's keys; dq added to the f32 accumulator.
registerKernelModel(/^flash_bwd_(bf16|f16)_d(64|128)$/, (m, a, io, grid, block) => {
  const d = SFX[m[1]!]!, D = Number(m[2]);
  const [q, k, v, dO, lse, di, dqAcc, dk, dv, Tq, Tk, H, Hkv, q0, nq, k0, nk, kvOffset, causal, scale, scaleLog2] = a;
  if (block[0] !== 128) throw new Error(`${m[0]}: ${block[0]} threads, the kernel is written for 128`);
  if (grid[1] !== cdiv(nk, 64)) throw new Error(`${m[0]}: grid.y ${grid[1]} is not ${cdiv(nk, 64)} key tiles of 64`);
  if (grid[0] % Hkv !== 0) throw new Error(`${m[0]}: grid.x ${grid[0]} is not batch x ${Hkv} kv heads`);
  if (Math.abs(scaleLog2 - scale * LOG2E) > 1e-6 * Math.abs(scale * LOG2E)) throw new Error(`${m[0]}: scaleLog2 ${scaleLog2} is not scale ${scale} x log2(e)`);
  const B = grid[0] / Hkv;
  const s: Seg = { Tq, Tk, H, Hkv, q0, nq, k0, nk, kvOffset, causal };
  const r = backward(d, B, D, D, s, io, { q, k, v, dO, lse, di }, scale, true);
  const nQ = B * Tq * H * D;
  const acc = loadAll(io, 'f32', dqAcc, nQ);
  for (const i of r.rowsQ) acc[i] = f(acc[i]! + r.dq[i]!);
  storeAt(io, 'f32', dqAcc, nQ, acc, r.rowsQ);
  storeAt(io, d, dk, B * Tk * Hkv * D, r.dk, r.rowsK);
  storeAt(io, d, dv, B * Tk * Hkv * D, r.dv, r.rowsV);
});

// General backward: dq rows (one warp each) and dk, dv rows.
registerKernelModel(/^flash_bwd_(dq|dkv)_general_(bf16|f16|f32)$/, (m, a, io, grid, block) => {
  const d = SFX[m[2]!]!, isDq = m[1] === 'dq';
  const [q, k, v, dO, lse, di, o1, ...rest] = a;
  const o2 = isDq ? null : rest.shift();
  const [Tq, Tk, H, Hkv, D, Dv, q0, nq, k0, nk, kvOffset, causal, scale] = rest;
  const rows = isDq ? nq * H : nk * Hkv;
  if (block[0] !== 128 || grid[0] !== cdiv(rows, 4)) throw new Error(`${m[0]}: grid.x ${grid[0]} x ${block[0]}, want ${cdiv(rows, 4)} x 128 (a warp per row)`);
  const B = grid[1];
  const s: Seg = { Tq, Tk, H, Hkv, q0, nq, k0, nk, kvOffset, causal };
  const r = backward(d, B, D, Dv, s, io, { q, k, v, dO, lse, di }, scale, false);
  if (isDq) storeAt(io, d, o1, B * Tq * H * D, r.dq.map((x) => f(x * scale)), r.rowsQ);
  else {
    storeAt(io, d, o1, B * Tk * Hkv * D, r.dk, r.rowsK);
    storeAt(io, d, o2, B * Tk * Hkv * Dv, r.dv, r.rowsV);
  }
});
