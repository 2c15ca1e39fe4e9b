// The WGSL codec library against core's bit-exact codecs (themselves tested exhaustively against
// PyTorch): every 16- and 8-bit code decodes to the same f32 bits; the PyTorch vector file and
// random f32 bit patterns encode to the same codes, in saturating and non-saturating mode.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decodeToF32, encodeF32, fromBytes, runOp1, type LowPrecisionFloat } from '@ring-linear/core';
import { newSeed, rng, webgpu } from './helpers.js';

const { gpu, reason } = await webgpu();
const FIXTURES = fileURLToPath(new URL('../../core/test/fixtures/codecs/', import.meta.url));
const FORMATS: LowPrecisionFloat[] = ['f16', 'bf16', 'f8e4m3', 'f8e5m2'];
const PYTORCH_FILE: Record<LowPrecisionFloat, string> = {
  f16: 'f16_cast.bin',
  bf16: 'bf16_cast.bin',
  f8e4m3: 'e4m3fn_cast.bin',
  f8e5m2: 'e5m2_cast.bin',
};

const isNanBits = (u: number) => (u & 0x7fffffff) > 0x7f800000;

/** Runs a cast on the GPU from raw bytes; returns the output's raw bytes. */
async function gpuCast(bytes: Uint8Array, n: number, from: string, to: string, saturate = false): Promise<Uint8Array> {
  const x = fromBytes(bytes, [n], from as never, gpu!);
  const y = runOp1('cast', [x], { dtype: to, saturate });
  const out = await y.bytes();
  x.dispose();
  y.dispose();
  return out;
}

function isNanCode(dtype: LowPrecisionFloat, c: number): boolean {
  if (dtype === 'f16') return (c & 0x7c00) === 0x7c00 && (c & 0x3ff) !== 0;
  if (dtype === 'bf16') return (c & 0x7f80) === 0x7f80 && (c & 0x7f) !== 0;
  if (dtype === 'f8e4m3') return (c & 0x7f) === 0x7f;
  return (c & 0x7c) === 0x7c && (c & 3) !== 0;
}

describe.skipIf(!gpu)(`WGSL codecs vs core codecs (${gpu ? gpu.capabilities.device : reason})`, () => {
  for (const dtype of FORMATS) {
    const wide = dtype === 'f16' || dtype === 'bf16';
    it(`${dtype}: every code decodes to core's f32 bits`, async () => {
      const size = wide ? 65536 : 256;
      const src = wide ? new Uint16Array(size) : new Uint8Array(size);
      for (let c = 0; c < size; c++) src[c] = c;
      const out = new Uint32Array((await gpuCast(new Uint8Array(src.buffer), size, dtype, 'f32')).buffer);
      const ref = new Uint32Array(decodeToF32(dtype, src).buffer);
      let mismatches = 0;
      for (let c = 0; c < size; c++) {
        const ok = isNanBits(ref[c]!) ? isNanBits(out[c]!) : out[c] === ref[c];
        if (!ok && mismatches++ < 5) console.error(`${dtype} code ${c}: gpu ${out[c]!.toString(16)} core ${ref[c]!.toString(16)}`);
      }
      expect(mismatches).toBe(0);
    });

    for (const saturate of [false, true]) {
      it(`${dtype}${saturate ? ' (saturating)' : ''}: PyTorch vectors and random f32 patterns encode as core does`, async () => {
        const file = readFileSync(FIXTURES + 'inputs_f32.bin');
        const vectors = new Uint32Array(file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength));
        const seed = newSeed(`codec ${dtype}`);
        const r = rng(seed);
        const extra = 60000;
        const bits = new Uint32Array(vectors.length + extra);
        bits.set(vectors);
        // Exact midpoints between neighbouring codes of this format (ties) and the f32 values
        // one ulp either side: where round-to-nearest-even is decided.
        const ncodes = wide ? 65536 : 256;
        const allCodes = wide ? new Uint16Array(ncodes) : new Uint8Array(ncodes);
        for (let c = 0; c < ncodes; c++) allCodes[c] = c;
        const values = decodeToF32(dtype, allCodes);
        const f = new Float32Array(1);
        const fb = new Uint32Array(f.buffer);
        for (let i = 0; i < extra; i++) {
          const u = Math.floor(r() * 4294967296) >>> 0;
          if (i % 3 === 0) bits[vectors.length + i] = u;
          else if (i % 3 === 1) {
            // Random patterns biased towards the formats' subnormal and overflow ranges.
            bits[vectors.length + i] = (u & 0x807fffff) | ((96 + Math.floor(r() * 70)) << 23);
          } else {
            const c = u % (ncodes - 1);
            const a = values[c]!;
            const b = values[c + 1]!;
            if (!Number.isFinite(a) || !Number.isFinite(b) || Math.sign(a) !== Math.sign(b)) {
              bits[vectors.length + i] = u;
              continue;
            }
            f[0] = (a + b) / 2;
            const which = Math.floor(i / 3) % 3;
            bits[vectors.length + i] = fb[0]! + (which === 0 ? 0 : which === 1 ? 1 : -1);
          }
        }
        const n = bits.length;
        const out = await gpuCast(new Uint8Array(bits.buffer), n, 'f32', dtype, saturate);
        const got = wide ? new Uint16Array(out.buffer, out.byteOffset, n) : new Uint8Array(out.buffer, out.byteOffset, n);
        const ref = encodeF32(dtype, new Float32Array(bits.buffer), undefined, saturate);
        let mismatches = 0;
        for (let i = 0; i < n; i++) {
          if (got[i] !== ref[i] && mismatches++ < 5) {
            console.error(`${dtype} sat=${saturate} input ${bits[i]!.toString(16)}: gpu ${got[i]!.toString(16)} core ${ref[i]!.toString(16)}`);
          }
        }
        expect(mismatches).toBe(0);
        if (!saturate) {
          // Also straight against PyTorch's bytes (NaN codes compared as "is NaN").
          const pt = readFileSync(FIXTURES + PYTORCH_FILE[dtype]);
          const ptCodes = wide ? new Uint16Array(pt.buffer.slice(pt.byteOffset, pt.byteOffset + pt.byteLength)) : new Uint8Array(pt);
          let bad = 0;
          for (let i = 0; i < vectors.length; i++) {
            const a = got[i]!;
            const b = ptCodes[i]!;
            if (!(a === b || (isNanCode(dtype, a) && isNanCode(dtype, b)))) bad++;
          }
          expect(bad).toBe(0);
        }
      });
    }
  }

  it('f32 <-> i32/u8 conversions match the CPU (round to nearest even, truncation with wrap-around)', async () => {
    const seed = newSeed('int casts');
    const r = rng(seed);
    const n = 20000;
    const ints = new Int32Array(n);
    for (let i = 0; i < n; i++) ints[i] = i < 64 ? [0, 1, -1, 16777217, -16777217, 2147483647, -2147483648, 33554435][i % 8]! : Math.floor((r() - 0.5) * 2 ** (1 + Math.floor(r() * 32)));
    const asF = new Uint32Array((await gpuCast(new Uint8Array(ints.buffer), n, 'i32', 'f32')).buffer);
    const refF = new Uint32Array(Float32Array.from(ints).buffer);
    expect(Array.from(asF)).toEqual(Array.from(refF));
    const asBf = new Uint16Array((await gpuCast(new Uint8Array(ints.buffer), n, 'i32', 'bf16')).buffer);
    expect(Array.from(asBf)).toEqual(Array.from(encodeF32('bf16', Float32Array.from(ints)) as Uint16Array));

    const fl = new Float32Array(n);
    for (let i = 0; i < n; i++) fl[i] = (r() - 0.5) * 2 ** Math.floor(r() * 40);
    fl.set([NaN, Infinity, -Infinity, -0.9, 0.9, 255.9, 256, -1, 3e9, -3e9, 2 ** 40 + 2 ** 20], 0);
    const toI = new Int32Array((await gpuCast(new Uint8Array(fl.buffer), n, 'f32', 'i32')).buffer);
    const toU8 = await gpuCast(new Uint8Array(fl.buffer), n, 'f32', 'u8');
    const refI = new Int32Array(n);
    const refU = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const v = fl[i]!;
      refI[i] = Number.isFinite(v) ? Math.trunc(v) : 0;
      refU[i] = Number.isFinite(v) ? Math.trunc(v) : 0;
    }
    expect(Array.from(toI)).toEqual(Array.from(refI));
    expect(Array.from(toU8.subarray(0, n))).toEqual(Array.from(refU));
  });
});
