/**
 * JavaScript models of kernels/lightning.cuh for the emulator (see lightning.cuh for the chunk
 * problem each pass solves): lt_scan_<dt>_{fwd,rev}, lt_state[_gen]_<dt>[_d<DH>]_{fwd,rev},
 * lt_chunk[_gen]_<dt>[_d<DH>]_{fwd,rev}. A super-chunk's outputs are computed as one chunk (the
 * kernels' 64-token chunking only changes the evaluation order); the tensor-core state pass rounds
 * its decay-scaled operand to the 16-bit format as the kernel does. The models check the launch
 * geometry the kernels assume.
 */
import { decodeToF32, encodeF32, type DType } from '@ring-linear/core';
import { registerKernelModel, type EmulatorIO } from './emulator.js';

const SFX: Record<string, DType> = { f32: 'f32', f16: 'f16', bf16: 'bf16' };
const f = Math.fround;
/** exp(-a n), n >= 0, in f32 (lt_pow). */
const pw = (a: number, n: number) => f(Math.exp(f(-a * n)));

/** n elements of dtype d at ptr, decoded to f32 (a copy). */
function readAct(io: EmulatorIO, d: DType, ptr: number, n: number): Float32Array {
  if (n <= 0) return new Float32Array(0);
  const v = io.view(ptr, n * (d === 'f32' ? 4 : 2));
  if (d === 'f32') return new Float32Array(v.buffer.slice(v.byteOffset, v.byteOffset + 4 * n));
  return decodeToF32(d as 'bf16', new Uint16Array(v.buffer.slice(v.byteOffset, v.byteOffset + 2 * n)));
}

/** Writes values (rounded once to d) at element offsets. */
function writeAct(io: EmulatorIO, d: DType, ptr: number, idx: number[], vals: number[]): void {
  if (d === 'f32') {
    for (let i = 0; i < idx.length; i++) io.store('f32', ptr, idx[i]!, vals[i]!);
    return;
  }
  const codes = encodeF32(d as 'bf16', vals);
  for (let i = 0; i < idx.length; i++) io.putRaw(2, ptr, idx[i]!, codes[i]!);
}

const round16 = (d: DType, x: Float32Array): Float32Array => (d === 'f32' ? x : decodeToF32(d as 'bf16', encodeF32(d as 'bf16', x) as Uint16Array));

registerKernelModel(/^lt_scan_[a-z0-9]+_(fwd|rev)$/, (m, a, io, grid, block) => {
  const rev = m[1] === 'rev';
  const [slots, init, fin, decay, H, DD, Tseg, P, G, slotBase, nBase] = a;
  if (grid[0] * block[0] < DD || grid[1] !== H) throw new Error(`lt_scan: grid [${grid}] x ${block[0]} does not cover ${DD} elements x ${H} heads`);
  for (let z = 0; z < grid[2]; z++) {
    for (let h = 0; h < H; h++) {
      const lam = io.load('f32', decay, h);
      for (let x = 0; x < DD; x++) {
        const si = ((nBase + z) * H + h) * DD + x;
        let S = io.load('f32', init, si);
        for (let c = 0; c < G; c++) {
          const g = rev ? G - 1 - c : c;
          const L = Math.min(P, Tseg - g * P);
          const idx = ((slotBase + z * G + g) * H + h) * DD + x;
          const u = io.load('f32', slots, idx);
          io.store('f32', slots, idx, S);
          S = f(f(pw(lam, L) * S) + u);
        }
        if (fin) io.store('f32', fin, si, S);
      }
    }
  }
});

/** Geometry shared by the state and chunk passes. */
function geometry(name: string, gen: boolean, DH: number, P: number, grid: readonly number[], block: readonly number[], Tseg: number, H: number) {
  if (gen ? block[0] !== 256 : name.startsWith('lt_state') && block[0] !== 4 * DH) throw new Error(`${name}: ${block[0]} threads a block`);
  if (!gen && P % 64 !== 0) throw new Error(`${name}: super-chunk ${P} is not a multiple of 64`);
  if (gen && P > 64) throw new Error(`${name}: the general pass takes one chunk of at most 64 tokens, got P = ${P}`);
  if (grid[0] !== Math.ceil(Tseg / P) || grid[1] !== H) throw new Error(`${name}: grid [${grid}] for ${Tseg} tokens in super-chunks of ${P}, ${H} heads`);
}

registerKernelModel(/^lt_state(_gen)?_([a-z0-9]+?)(?:_d(\d+))?_(fwd|rev)$/, (m, a, io, grid, block) => {
  const gen = !!m[1], d = SFX[m[2]!]!, rev = m[4] === 'rev';
  const DH = Number(m[3] ?? 0);
  const [p2, r1, decay, slots, Tn, t0, Tseg, H] = a;
  const [DP, DR, P, slotBase, scale] = gen ? a.slice(8) : [DH, DH, ...a.slice(8)];
  geometry(m[0], gen, DH, P, grid, block, Tseg, H);
  const G = grid[0];
  const rows = (grid[2] - 1) * Tn + t0 + Tseg;
  const P2 = readAct(io, d, p2, rows * H * DP), R1 = readAct(io, d, r1, rows * H * DR);
  for (let z = 0; z < grid[2]; z++) {
    for (let h = 0; h < H; h++) {
      const lam = io.load('f32', decay, h);
      for (let g = 0; g < G; g++) {
        const L = Math.min(P, Tseg - g * P);
        const row0 = z * Tn + t0 + g * P;
        // The decay-scaled P2 operand (rounded to 16 bits on the tensor-core path).
        let A: Float32Array = new Float32Array(L * DP);
        for (let j = 0; j < L; j++) {
          const fac = rev ? f(scale * pw(lam, j + 1)) : pw(lam, L - 1 - j);
          for (let x = 0; x < DP; x++) A[j * DP + x] = P2[((row0 + j) * H + h) * DP + x]! * fac;
        }
        if (!gen) A = round16(d, A);
        const base = ((slotBase + z * G + g) * H + h) * DP * DR;
        const U = new Float64Array(DP * DR);
        for (let j = 0; j < L; j++) {
          for (let x = 0; x < DP; x++) {
            const av = A[j * DP + x]!;
            if (av === 0) continue;
            for (let y = 0; y < DR; y++) U[x * DR + y]! += av * R1[((row0 + j) * H + h) * DR + y]!;
          }
        }
        for (let i = 0; i < DP * DR; i++) io.store('f32', slots, base + i, U[i]!);
      }
    }
  }
});

registerKernelModel(/^lt_chunk(_gen)?_([a-z0-9]+?)(?:_d(\d+)_w(\d+))?_(fwd|rev)$/, (m, a, io, grid, block) => {
  const gen = !!m[1], d = SFX[m[2]!]!, rev = m[5] === 'rev';
  const DH = Number(m[3] ?? 0);
  if (!gen && (block[0] !== 32 * Number(m[4]) || ![DH / 16, DH / 8].includes(Number(m[4])))) throw new Error(`${m[0]}: ${block[0]} threads a block`);
  const [p1, p2, r1, out, decay, slots, xT, Tn, t0, Tseg, H] = a;
  const [DP, DR, P, slotBase, scale] = gen ? a.slice(11) : [DH, DH, ...a.slice(11)];
  geometry(m[0], gen, DH, P, grid, block, Tseg, H);
  const G = grid[0];
  const rows = (grid[2] - 1) * Tn + t0 + Tseg;
  const P1 = readAct(io, d, p1, rows * H * DP), P2 = readAct(io, d, p2, rows * H * DP), R1 = readAct(io, d, r1, rows * H * DR);
  for (let z = 0; z < grid[2]; z++) {
    for (let h = 0; h < H; h++) {
      const lam = io.load('f32', decay, h);
      for (let g = 0; g < G; g++) {
        const L = Math.min(P, Tseg - g * P);
        const row0 = z * Tn + t0 + g * P;
        const base = ((slotBase + z * G + g) * H + h) * DP * DR;
        const X = new Float64Array(DP * DR);
        for (let x = 0; x < DP; x++) for (let y = 0; y < DR; y++) X[x * DR + y] = io.load('f32', slots, base + (xT ? y * DP + x : x * DR + y));
        const idx: number[] = [];
        const vals: number[] = [];
        for (let i = 0; i < L; i++) {
          const pi = ((row0 + i) * H + h) * DP;
          const fo = rev ? pw(lam, L - 1 - i) : f(scale * pw(lam, i + 1));
          const o = new Float64Array(DR);
          for (let x = 0; x < DP; x++) {
            const q = P1[pi + x]!;
            for (let y = 0; y < DR; y++) o[y]! += q * X[x * DR + y]!;
          }
          for (let y = 0; y < DR; y++) o[y]! *= fo;
          const [jlo, jhi] = rev ? [i, L] : [0, i + 1];
          for (let j = jlo; j < jhi; j++) {
            let dot = 0;
            const pj = ((row0 + j) * H + h) * DP;
            for (let x = 0; x < DP; x++) dot += P1[pi + x]! * P2[pj + x]!;
            const sc = scale * pw(lam, Math.abs(i - j)) * dot;
            for (let y = 0; y < DR; y++) o[y]! += sc * R1[((row0 + j) * H + h) * DR + y]!;
          }
          for (let y = 0; y < DR; y++) {
            idx.push(((row0 + i) * H + h) * DR + y);
            vals.push(o[y]!);
          }
        }
        writeAct(io, d, out, idx, vals);
      }
    }
  }
});
