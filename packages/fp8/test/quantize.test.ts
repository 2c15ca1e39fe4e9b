import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import {
  AttrError,
  DTypeError,
  GradientError,
  ShapeError,
  dispose,
  getKernel,
  getOpDef,
  memory,
  sum,
  tensor,
  tidy,
  transpose,
  valueAndGrad,
  withKernelsDisabled,
  type Tensor,
} from '@ring-linear/core';
import {
  FP8_OPS,
  dequantize,
  dequantizeRaw,
  quantTranspose,
  quantize,
  quantizeRaw,
  quantizeWithScales,
  scaleFromAmax,
  transposeQuantized,
  type Fp8Layout,
} from '../src/index.js';
import {
  SEED,
  decodeFp8,
  expectCodes,
  expectSame,
  groupOf,
  isNanCode,
  oracleQuantize,
  prod,
  rngFor,
  roundFp8,
  scalesShapeOf,
  t,
  type Fp8,
} from './helpers.js';

console.log(`fp8 quantizer tests: seed ${SEED} (FP8_SEED=${SEED} reproduces)`);

const DTYPES: Fp8[] = ['f8e4m3', 'f8e5m2'];
const SHAPES: Record<Fp8Layout, number[][]> = {
  tensor: [[1], [7], [3, 129], [2, 3, 5]],
  row: [[1, 1], [5, 7], [3, 300], [2, 2, 130]],
  tile1x128: [[1, 1], [3, 127], [5, 128], [2, 129], [4, 300], [2, 3, 257]],
  block128x128: [[1, 1], [3, 5], [130, 129], [129, 256], [2, 131, 70]],
};

/** Runs fp8Quantize and reads codes and scales; frees everything. */
async function runQuantize(x: Tensor, layout: Fp8Layout, dtype: Fp8, pow2Scale: boolean): Promise<{ codes: Uint8Array; scales: Float32Array }> {
  const [d, s] = quantizeRaw(x, { layout, dtype, pow2Scale });
  try {
    return { codes: await d.bytes(), scales: s.dataSync() as Float32Array };
  } finally {
    dispose([d, s]);
  }
}

describe('fp8Quantize matches its definition exactly (codes and scales)', () => {
  for (const layout of Object.keys(SHAPES) as Fp8Layout[]) {
    for (const dtype of DTYPES) {
      for (const pow2 of [false, true]) {
        it(`${layout} ${dtype}${pow2 ? ' pow2' : ''}`, async () => {
          const rng = rngFor(`q ${layout} ${dtype} ${pow2}`);
          for (const shape of SHAPES[layout]) {
            const x = rng.array(prod(shape), 3);
            const want = oracleQuantize(x, shape, layout, dtype, pow2);
            const xt = t(x, shape);
            const got = await runQuantize(xt, layout, dtype, pow2);
            expectCodes(dtype, got.codes, want.codes, `codes of ${JSON.stringify(shape)}`);
            expectSame(got.scales, want.scales, `scales of ${JSON.stringify(shape)}`);
            // Kernel and composite: the same bytes.
            const comp = await withKernelsDisabled(['fp8Quantize'], () => runQuantize(xt, layout, dtype, pow2));
            expect([...comp.codes]).toEqual([...got.codes]);
            expectSame(comp.scales, got.scales, 'composite scales');
            xt.dispose();
          }
        });
      }
    }
  }

  it('bf16 and f16 inputs quantize their exact values', async () => {
    const rng = rngFor('q lowp');
    for (const dt of ['bf16', 'f16'] as const) {
      const x = t(rng.array(3 * 200), [3, 200], dt);
      const vals = read64(x);
      const want = oracleQuantize(vals, [3, 200], 'tile1x128', 'f8e4m3');
      const got = await runQuantize(x, 'tile1x128', 'f8e4m3', false);
      expectCodes('f8e4m3', got.codes, want.codes, dt);
      expectSame(got.scales, want.scales, `${dt} scales`);
      x.dispose();
    }
  });

  it('partial edge tiles and blocks use their real elements only', async () => {
    // Last tile of each row holds 2 elements (K = 130); a huge value in the full tile must not
    // change the edge tile's scale, and the edge tile's own amax sets it.
    const x = new Float64Array(2 * 130).fill(0.5);
    x[5] = 1000;
    x[129] = 3;
    x[130 + 128] = -7;
    const got = await runQuantize(t(x, [2, 130]), 'tile1x128', 'f8e4m3', false);
    expectSame(got.scales, [Math.fround(1000 / 448), Math.fround(3 / 448), Math.fround(0.5 / 448), Math.fround(7 / 448)], 'tile scales');
    // 128x128 blocks of a [130, 129] matrix: four blocks, the corner one 2x1.
    const w = new Float64Array(130 * 129).fill(1);
    w[129 * 129 + 128] = 100; // row 129, col 128: the corner block
    const gw = await runQuantize(t(w, [130, 129]), 'block128x128', 'f8e4m3', false);
    expectSame(gw.scales, [Math.fround(1 / 448), Math.fround(1 / 448), Math.fround(1 / 448), Math.fround(100 / 448)], 'block scales');
  });

  it('rounds ties to even (scale 1: amax 448 in the tile)', async () => {
    // [value, expected E4M3 value]: halfway cases between neighbours, in the subnormal range, at
    // the subnormal/normal boundary and in the top binade.
    const cases: [number, number][] = [
      [1.0625, 1], // between 1 (m=0) and 1.125 (m=1): even is 1
      [1.1875, 1.25], // between 1.125 (m=1) and 1.25 (m=2)
      [2 ** -10, 0], // half the smallest subnormal: to 0
      [3 * 2 ** -10, 2 ** -8], // between codes 1 and 2: code 2
      [7.5 * 2 ** -9, 2 ** -6], // between 7*2^-9 (code 7) and 2^-6 (code 8)
      [432, 448], // between 416 (m=5) and 448 (m=6)
      [-1.0625, -1],
      [240, 240], // exact
      [232, 224], // between 224 (m=6 of 128..240) and 240 (m=7): 224 even
    ];
    const x = [448, ...cases.map(([v]) => v)];
    for (const [v, want] of cases) expect(decodeFp8('f8e4m3', roundFp8('f8e4m3', v))).toBe(want); // the oracle itself
    const got = await runQuantize(t(x, [1, x.length]), 'tile1x128', 'f8e4m3', false);
    expect(got.scales[0]).toBe(1);
    expect([...got.codes].map((c) => decodeFp8('f8e4m3', c))).toEqual([448, ...cases.map(([, w]) => w)]);
    // E5M2: amax 57344 -> scale 1; 1.125 lies between 1 and 1.25 (m=0, m=1): even is 1.
    const y = [57344, 1.125, 1.375, 3 * 2 ** -17, 57343];
    const gy = await runQuantize(t(y, [1, y.length]), 'tile1x128', 'f8e5m2', false);
    expect(gy.scales[0]).toBe(1);
    expect([...gy.codes].map((c) => decodeFp8('f8e5m2', c))).toEqual([57344, 1, 1.5, 2 ** -15, 57344]);
  });

  it('gives an all-zero block scale 2^-126 and zero codes (-0 keeps its sign)', async () => {
    const x = [0, -0, 0, 0, 5, 1];
    const got = await runQuantize(t(x, [3, 2]), 'row', 'f8e4m3', false);
    expectSame(got.scales, [2 ** -126, 2 ** -126, Math.fround(5 / 448)], 'scales');
    expect([...got.codes.slice(0, 4)]).toEqual([0x00, 0x80, 0x00, 0x00]);
    const p2 = await runQuantize(t(x, [3, 2]), 'row', 'f8e4m3', true);
    expect(p2.scales[0]).toBe(2 ** -126);
    expect(p2.scales[2]).toBe(2 ** -6); // 5/448 = 0.01116 -> 2^-6 = 0.015625
  });

  it('NaN poisons its own block (scale NaN, NaN codes); +-inf makes the scale +inf and the block dequantize to NaN', async () => {
    for (const dtype of DTYPES) {
      const x = new Float64Array(2 * 130).map((_, i) => (i % 7) - 3);
      x[3] = NaN; // row 0, tile 0
      x[130 + 129] = -Infinity; // row 1, tile 1 (the 2-element edge tile)
      x[130 + 128] = 2;
      const xt = t(x, [2, 130]);
      const got = await runQuantize(xt, 'tile1x128', dtype, false);
      expect(Number.isNaN(got.scales[0])).toBe(true);
      expect(got.scales[1]).toBe(Math.fround(1 / (dtype === 'f8e4m3' ? 448 : 57344))); // values -1, 0
      expect(got.scales[2]).toBe(Math.fround(3 / (dtype === 'f8e4m3' ? 448 : 57344)));
      expect(got.scales[3]).toBe(Infinity);
      for (let k = 0; k < 128; k++) expect(isNanCode(dtype, got.codes[k]!)).toBe(true);
      expect(isNanCode(dtype, got.codes[128]!)).toBe(false);
      expect(got.codes[130 + 128]).toBe(0x00); // 2 / inf = +0
      expect(isNanCode(dtype, got.codes[130 + 129]!)).toBe(true); // inf / inf
      const deq = tidy(() => read64(dequantize(quantize(xt, { dtype }))));
      for (let i = 0; i < deq.length; i++) {
        const inPoisoned = i < 128 || i >= 130 + 128;
        expect(Number.isNaN(deq[i]!), `element ${i}`).toBe(inPoisoned);
      }
      // Composite agrees (NaN codes compared as NaN).
      const comp = await withKernelsDisabled(['fp8Quantize'], () => runQuantize(xt, 'tile1x128', dtype, false));
      expectCodes(dtype, comp.codes, got.codes, 'composite codes');
      expectSame(comp.scales, got.scales, 'composite scales');
      // With pow2 scales, NaN and inf pass through the rounding.
      const p2 = await runQuantize(xt, 'tile1x128', dtype, true);
      expect(Number.isNaN(p2.scales[0])).toBe(true);
      expect(p2.scales[3]).toBe(Infinity);
      const p2c = await withKernelsDisabled(['fp8Quantize'], () => runQuantize(xt, 'tile1x128', dtype, true));
      expectSame(p2c.scales, p2.scales, 'pow2 composite scales');
      xt.dispose();
    }
  });

  it('pow2 scales are the smallest power of two >= amax / fp8_max', async () => {
    const rng = rngFor('pow2');
    const x = rng.array(6 * 300, 1e-3);
    const got = await runQuantize(t(x, [6, 300]), 'tile1x128', 'f8e4m3', true);
    const plain = await runQuantize(t(x, [6, 300]), 'tile1x128', 'f8e4m3', false);
    got.scales.forEach((s, i) => {
      const raw = plain.scales[i]!;
      expect(Number.isInteger(Math.log2(s))).toBe(true);
      expect(s).toBeGreaterThanOrEqual(raw);
      expect(s / 2).toBeLessThan(raw);
    });
    // The host helper agrees, also exactly at powers of two and at the extremes.
    for (const a of [448, 448 * 2 ** -20, 3.4e38, 1e-40, 0, 448 * 1.0000001]) {
      const s = scaleFromAmax(a, 'f8e4m3', true);
      expect(Number.isInteger(Math.log2(s))).toBe(true);
    }
    expect(scaleFromAmax(448, 'f8e4m3', true)).toBe(1);
  });

  it('quantizes with given scales, saturating to +-max (also +-inf), NaN stays NaN', async () => {
    const x = [1, 500, -500, 464, 465, Infinity, -Infinity, NaN, 0.3];
    const s = tensor([1], [1, 1], 'f32');
    for (const dtype of DTYPES) {
      const q = quantizeWithScales(t(x, [1, 9]), s, { dtype, layout: 'row' });
      const codes = await q.bytes();
      const want = x.map((v) => roundFp8(dtype, Math.fround(v)));
      expectCodes(dtype, codes, Uint8Array.from(want), dtype);
      const vals = [...codes].map((c) => decodeFp8(dtype, c));
      if (dtype === 'f8e4m3') expect(vals.slice(1, 7)).toEqual([448, -448, 448, 448, 448, -448]);
      else expect(vals.slice(5, 7)).toEqual([57344, -57344]);
      const comp = await withKernelsDisabled(['fp8QuantizeWithScales'], () => quantizeWithScales(t(x, [1, 9]), s, { dtype, layout: 'row' }).bytes());
      expectCodes(dtype, comp, codes, 'composite');
    }
    // A scale below amax / 448 overflows the tile's largest values: they saturate.
    const rng = rngFor('sat');
    const y = rng.array(2 * 140, 10);
    const sc = tensor([0.01, 0.02, 0.03, 0.5], [2, 2], 'f32');
    const q = quantizeWithScales(t(y, [2, 140]), sc, { layout: 'tile1x128' });
    const got = await q.bytes();
    const sv = [0.01, 0.02, 0.03, 0.5].map(Math.fround);
    const want = Uint8Array.from(y, (v, i) => roundFp8('f8e4m3', Math.fround(v / sv[groupOf([2, 140], 'tile1x128', i)]!)));
    expectCodes('f8e4m3', got, want, 'tile scales');
    expect([...got].some((c) => (c & 0x7f) === 0x7e)).toBe(true);
  });
});

function read64(x: Tensor): Float64Array {
  return Float64Array.from(x.dataSync());
}

describe('fp8Dequantize', () => {
  for (const layout of Object.keys(SHAPES) as Fp8Layout[]) {
    it(`${layout}: fl32(code * scale), kernel = composite; bf16 output rounds once`, async () => {
      const rng = rngFor(`dq ${layout}`);
      for (const shape of SHAPES[layout]) {
        const x = t(rng.array(prod(shape), 2), shape);
        const q = quantize(x, { layout, dtype: 'f8e5m2' });
        const codes = await q.data.bytes();
        const sc = q.scales.dataSync();
        const want = Float64Array.from(codes, (c, i) => Math.fround(decodeFp8('f8e5m2', c) * sc[groupOf(shape, layout, i)]!));
        const y = dequantize(q);
        expectSame(y.dataSync(), want, `${JSON.stringify(shape)}`);
        const yc = withKernelsDisabled(['fp8Dequantize'], () => dequantize(q));
        expectSame(yc.dataSync(), want, 'composite');
        const yb = dequantize(q, 'bf16');
        const ybc = withKernelsDisabled(['fp8Dequantize'], () => dequantize(q, 'bf16'));
        expect([...(await yb.bytes())]).toEqual([...(await ybc.bytes())]);
        expect(yb.dtype).toBe('bf16');
        dispose([x, q, y, yc, yb, ybc]);
      }
    });
  }

  it('the quantization error is within half a step of the format (relative 2^-4 / 2^-3, absolute scale * 2^-10 / 2^-17)', () => {
    const rng = rngFor('err');
    for (const dtype of DTYPES) {
      const shape = [7, 333];
      const x = rng.array(prod(shape), 1);
      tidy(() => {
        const q = quantize(t(x, shape), { dtype });
        const y = read64(dequantize(q));
        const s = q.scales.dataSync();
        const [u, h] = dtype === 'f8e4m3' ? [2 ** -4, 2 ** -10] : [2 ** -3, 2 ** -17];
        for (let i = 0; i < x.length; i++) {
          const sc = s[groupOf(shape, 'tile1x128', i)]!;
          const bound = (u * Math.abs(x[i]!) + h * sc) * (1 + 2 ** -20);
          expect(Math.abs(y[i]! - x[i]!), `element ${i}`).toBeLessThanOrEqual(bound);
        }
      });
    }
  });
});

describe('fp8QuantTranspose', () => {
  for (const [M, K] of [[1, 1], [3, 130], [129, 5], [200, 257]] as const) {
    it(`[${M}, ${K}]: both quantizations equal quantize(x) and quantize(x^T); kernel = composite`, async () => {
      const rng = rngFor(`qt ${M} ${K}`);
      const x = t(rng.array(M * K, 2), [M, K]);
      for (const dtype of DTYPES) {
        for (const pow2Scale of [false, true]) {
          const outs = tidy(() => {
            const { x: q, xT: qT } = quantTranspose(x, { dtype, pow2Scale });
            const ref = quantize(x, { dtype, pow2Scale });
            const refT = quantize(transpose(x), { dtype, pow2Scale });
            const comp = withKernelsDisabled(['fp8QuantTranspose'], () => quantTranspose(x, { dtype, pow2Scale }));
            return { q, qT, ref, refT, comp };
          });
          const xv = read64(x);
          const wantT = oracleQuantize(
            Float64Array.from({ length: M * K }, (_, i) => xv[(i % M) * K + Math.floor(i / M)]!),
            [K, M], 'tile1x128', dtype, pow2Scale,
          );
          expectCodes(dtype, await outs.qT.data.bytes(), wantT.codes, 'x^T codes vs oracle');
          expectSame(outs.qT.scales.dataSync(), wantT.scales, 'x^T scales vs oracle');
          for (const [a, b, what] of [
            [outs.q, outs.ref, 'x'], [outs.qT, outs.refT, 'x^T'], [outs.comp.x, outs.q, 'composite x'], [outs.comp.xT, outs.qT, 'composite x^T'],
          ] as const) {
            expect([...(await a.data.bytes())], what).toEqual([...(await b.data.bytes())]);
            expectSame(a.scales.dataSync(), b.scales.dataSync(), `${what} scales`);
          }
          expect(outs.qT.shape).toEqual([K, M]);
          dispose(outs);
        }
      }
      x.dispose();
    });
  }

  it('a NaN poisons one row tile and one column tile', () => {
    const x = new Float64Array(130 * 140).fill(1);
    x[140 * 1 + 1] = NaN; // row 1, column 1
    tidy(() => {
      const { x: q, xT } = quantTranspose(t(x, [130, 140]));
      const s = q.scales.dataSync();
      const sT = xT.scales.dataSync();
      expect([...s].map(Number.isNaN).filter(Boolean).length).toBe(1);
      expect([...sT].map(Number.isNaN).filter(Boolean).length).toBe(1);
      expect(Number.isNaN(s[1 * 2 + 0]!)).toBe(true); // row 1, tile 0
      expect(Number.isNaN(sT[1 * 2 + 0]!)).toBe(true); // column 1, tile 0 (rows 0..127)
    });
  });
});

describe('QuantizedTensor', () => {
  it('tidy keeps a returned QuantizedTensor; dispose frees it; nothing else stays', () => {
    const before = memory();
    const x = t(rngFor('qt-mem').array(300), [3, 100]);
    const q = tidy(() => quantize(x, { layout: 'row' }));
    expect(q.data.disposed || q.scales.disposed).toBe(false);
    expect(q.shape).toEqual([3, 100]);
    expect(q.scales.shape).toEqual(scalesShapeOf([3, 100], 'row'));
    dispose([q, x]);
    const after = memory();
    expect(after.tensors).toBe(before.tensors);
    expect(after.bytes).toBe(before.bytes);
  });

  it('transposeQuantized of a 128x128-block weight equals quantizing W^T', async () => {
    const w = t(rngFor('tq').array(130 * 300), [130, 300]);
    const [a, b] = tidy(() => [transposeQuantized(quantize(w, { layout: 'block128x128' })), quantize(transpose(w), { layout: 'block128x128' })]);
    expect([...(await a!.data.bytes())]).toEqual([...(await b!.data.bytes())]);
    expectSame(a!.scales.dataSync(), b!.scales.dataSync(), 'scales');
    expect(() => tidy(() => transposeQuantized(quantize(w)))).toThrow(/not transpose-symmetric/);
    dispose([a, b, w]);
  });

  it('no gradient flows through quantized codes: a GradientError, not a silent zero', () => {
    const x = t([1, 2, 3], [1, 3]);
    expect(() => valueAndGrad(() => sum(dequantize(quantize(x))), [x])).toThrow(GradientError);
    x.dispose();
  });
});

describe('errors', () => {
  it('typed errors say what was expected and what came', () => {
    const x = t([1, 2, 3, 4], [2, 2]);
    const xi = tensor([1, 2], [2], 'i32');
    expect(() => quantize(xi)).toThrow(DTypeError);
    expect(() => quantize(xi)).toThrow(/input 'x' must have dtype f32\|bf16\|f16, got i32/);
    expect(() => quantize(x, { dtype: 'f32' as never })).toThrow(AttrError);
    expect(() => quantize(x, { dtype: 'f32' as never })).toThrow(/expected an FP8 dtype/);
    expect(() => quantize(x, { layout: 'block' as never })).toThrow(AttrError);
    expect(() => quantize(t([1, 2], [2]), { layout: 'block128x128' })).toThrow(ShapeError);
    expect(() => quantize(t([1, 2], [2]), { layout: 'block128x128' })).toThrow(/rank >= 2/);
    expect(() => quantize(tensor([], [0], 'f32'), { layout: 'tensor' })).toThrow(/at least one element/);
    expect(() => quantizeWithScales(x, tensor([1, 2, 3], [3], 'f32'), { layout: 'row' })).toThrow(/'scales' must have shape \[2, 1\]/);
    const q = quantize(x);
    expect(() => dequantizeRaw(q.data, q.scales, 'row', 'f8e4m3')).toThrow(/'outDtype' expected one of/);
    expect(() => dequantizeRaw(x, q.scales, 'tile1x128')).toThrow(DTypeError);
    expect(() => quantTranspose(t([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]))).toThrow(/rank 2 \[M, K\]/);
    dispose([x, xi, q]);
  });

  it('every FP8 op is defined and has a CPU kernel', () => {
    for (const op of FP8_OPS) {
      expect(getOpDef(op), op).toBeDefined();
      expect(getOpDef(op)!.composite, `${op} composite`).toBeDefined();
      expect(getKernel(op, 'cpu'), `${op} cpu kernel`).toBeDefined();
    }
  });
});
