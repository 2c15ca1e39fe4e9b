/**
 * JavaScript model of kernels/fp8gemm.cuh for the emulator: the plain and the grouped block-scaled
 * FP8 GEMM. Each computes, per output element, sum over k-tiles t of fl32(fl32(P_t sa) sb) with
 * the tile sum P_t exact (it is in f32 on the GPU: FP8 products are exact and 128 of them fit), then
 * rounds once to the output dtype; the grid geometry and the `aligned` flag are checked against
 * what the kernels assume.
 */
import { decodeToF32, type DType } from '@ring-linear/core';
import { registerKernelModel, type EmulatorIO } from './emulator.js';

const SFX: Record<string, DType> = { e4m3: 'f8e4m3', e5m2: 'f8e5m2', f32: 'f32', bf16: 'bf16', f16: 'f16' };
const f = Math.fround;
const TILE = 128;
const cdiv = (a: number, b: number) => Math.ceil(a / b);

function bytes(io: EmulatorIO, p: number, n: number): Uint8Array {
  const v = io.view(p, n);
  return new Uint8Array(v.buffer, v.byteOffset, n).slice();
}
function codes(io: EmulatorIO, d: DType, p: number, n: number): Float32Array {
  return decodeToF32(d as 'f8e4m3', bytes(io, p, n));
}
function floats(io: EmulatorIO, p: number, n: number): Float32Array {
  return new Float32Array(bytes(io, p, n * 4).buffer);
}

/** Rows [r0, r1) of y = block-scaled a b^T (b, sb: one expert's). */
function gemmRows(
  io: EmulatorIO, out: DType, y: number, A: Float32Array, SA: Float32Array, B: Float32Array, SB: Float32Array,
  r0: number, r1: number, N: number, K: number, blockB: boolean,
): void {
  const KT = cdiv(K, TILE);
  for (let m = r0; m < r1; m++) {
    for (let n = 0; n < N; n++) {
      let total = 0;
      for (let t = 0; t < KT; t++) {
        let p = 0;
        for (let k = t * TILE; k < Math.min(K, t * TILE + TILE); k++) p += A[m * K + k]! * B[n * K + k]!;
        const sbv = SB[(blockB ? Math.floor(n / TILE) : n) * KT + t]!;
        total = f(total + f(f(f(p) * SA[m * KT + t]!) * sbv));
      }
      io.store(out, y, m * N + n, total);
    }
  }
}

function checkLaunch(name: string, grid: readonly number[], block: readonly number[], want: [number, number], aligned: number, K: number, ptrs: number[]): void {
  if (block[0] !== 256 || block[1] !== 1 || block[2] !== 1) throw new Error(`${name}: block [${block}], the kernel is written for 256 threads`);
  if (grid[0] !== want[0] || grid[1] !== want[1] || grid[2] !== 1) throw new Error(`${name}: grid [${grid}], expected [${want}, 1]`);
  if (aligned && (K % 16 !== 0 || ptrs.some((p) => p % 16 !== 0))) throw new Error(`${name}: aligned loads with K ${K} or operands not 16-byte aligned`);
}

// (wg_: the wgmma variant, same arguments and results.)
registerKernelModel(/^fp8gemm_(grouped_)?(?:wg_)?(e4m3|e5m2)_(e4m3|e5m2)_(f32|bf16|f16)$/, (m, args, io, grid, block) => {
  const da = SFX[m[2]!]!, db = SFX[m[3]!]!, out = SFX[m[4]!]!;
  if (!m[1]) {
    const [a, sa, b, sb, y, M, N, K, blockB, aligned] = args as number[];
    checkLaunch(m[0], grid, block, [cdiv(N!, TILE), cdiv(M!, TILE)], aligned!, K!, [a!, b!]);
    const KT = cdiv(K!, TILE);
    const SB = floats(io, sb!, (blockB ? cdiv(N!, TILE) : N!) * KT);
    gemmRows(io, out, y!, codes(io, da, a!, M! * K!), floats(io, sa!, M! * KT), codes(io, db, b!, N! * K!), SB, 0, M!, N!, K!, blockB !== 0);
    return;
  }
  const [a, sa, b, sb, off, y, M, N, K, E, aligned] = args as number[];
  checkLaunch(m[0], grid, block, [cdiv(N!, TILE), cdiv(M!, TILE) + E! + 2], aligned!, K!, [a!, b!]);
  const KT = cdiv(K!, TILE), NB = cdiv(N!, TILE);
  const offsets = Array.from({ length: E! + 1 }, (_, i) => io.load('i32', off!, i));
  const clamp = (v: number) => Math.min(Math.max(v, 0), M!);
  // The kernel's segments: rows before offsets[0] and from offsets[E] on are zeros.
  const segs: { lo: number; hi: number; e: number }[] = [{ lo: 0, hi: clamp(offsets[0]!), e: -1 }];
  for (let e = 0; e < E!; e++) {
    const lo = clamp(offsets[e]!);
    segs.push({ lo, hi: Math.max(lo, clamp(offsets[e + 1]!)), e });
  }
  const tail = clamp(offsets[E!]!);
  segs.push({ lo: tail, hi: M!, e: E! });
  const tiles = segs.reduce((s, g) => s + cdiv(g.hi - g.lo, TILE), 0);
  if (tiles > grid[1]) throw new Error(`${m[0]}: ${tiles} tiles, grid y ${grid[1]}`);
  const A = codes(io, da, a!, M! * K!), SA = floats(io, sa!, M! * KT);
  for (const g of segs) {
    if (g.hi <= g.lo) continue;
    if (g.e < 0 || g.e >= E!) {
      for (let i = g.lo * N!; i < g.hi * N!; i++) io.store(out, y!, i, 0);
      continue;
    }
    const B = codes(io, db, b! + g.e * N! * K!, N! * K!);
    const SB = floats(io, sb! + g.e * NB * KT * 4, NB * KT);
    gemmRows(io, out, y!, A, SA, B, SB, g.lo, g.hi, N!, K!, true);
  }
});
