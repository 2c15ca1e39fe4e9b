import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import { AttrError, ShapeError, mul, runOp1, sum, tensor, tidy, valueAndGrad, withKernelsDisabled } from '@ring-linear/core';
import { groupRmsNormGate, packedPositions, qkNorm, rope, ropeComposite, ropeInvFreq } from '../src/index.js';
import { SEED, dot, expectClose, finiteDiff, read, rngFor, t } from './helpers.js';

console.log(`rope / gate tests: seed ${SEED} (ATTN_SEED=${SEED} reproduces)`);

/**
 * MODEL_SPEC §2.3: inv_freq[i] = theta^(-2i/rotaryDim); angle = position * inv_freq in fp32 (the
 * reference's convention: each step of inv_freq and the product rounded to f32; at positions near
 * 1e5 one ulp of inv_freq moves the angle by ~1e-3); NeoX rotate-half on the first
 * rotaryDim channels. Everything else in float64.
 */
function ropeRef(x: Float64Array, shape: number[], positions: (b: number, t: number) => number, rot: number, theta: number, f32Angles = true): Float64Array {
  const [B, T, H, D] = shape.length === 4 ? shape : [1, ...shape];
  const half = rot / 2;
  const y = x.slice();
  for (let b = 0; b < B!; b++) {
    for (let tt = 0; tt < T!; tt++) {
      for (let i = 0; i < half; i++) {
        const exact = 1 / theta ** ((2 * i) / rot);
        // The fp32 chain of the HF reference: 1.0 / (theta ** (arange(0, rot, 2).float() / rot)).
        const invF32 = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / rot)));
        const angle = f32Angles ? Math.fround(positions(b, tt) * invF32) : positions(b, tt) * exact;
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        for (let h = 0; h < H!; h++) {
          const o = ((b * T! + tt) * H! + h) * D!;
          y[o + i] = x[o + i]! * c - x[o + i + half]! * s;
          y[o + i + half] = x[o + i + half]! * c + x[o + i]! * s;
        }
      }
    }
  }
  return y;
}

describe('rope (partial NeoX rotate-half, fp32 angles)', () => {
  it('inv_freq matches theta^(-2i/rotaryDim) to f32 rounding', () => {
    const f = ropeInvFreq(64, 1e6);
    expect(f.length).toBe(32);
    for (let i = 0; i < 32; i++) expect(Math.abs(f[i]! - 1e6 ** (-(2 * i) / 64)) / f[i]!).toBeLessThan(3e-7);
  });

  const cases = [
    { name: 'rotaryDim 4 of head_dim 8, offset 0', shape: [2, 5, 3, 8], rot: 4, theta: 10000, offset: 0 },
    { name: 'full rotation, offset 37 (decode)', shape: [1, 3, 2, 6], rot: 6, theta: 1e6, offset: 37 },
    { name: 'half of 128 channels, theta 1e6, large positions (fp32 angles matter)', shape: [1, 4, 2, 128], rot: 64, theta: 1e6, offset: 70000 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const rng = rngFor(`rope ${c.name}`);
      const n = c.shape.reduce((a, b) => a * b, 1);
      const x = rng.array(n);
      const ref = ropeRef(x, c.shape, (_b, tt) => c.offset + tt, c.rot, c.theta);
      tidy(() => {
        const xt = t(x, c.shape);
        const y = rope(xt, { offset: c.offset, rotaryDim: c.rot, theta: c.theta });
        expectClose(read(y), ref, 2e-6, 'kernel');
        const yc = withKernelsDisabled(['rope'], () => rope(xt, { offset: c.offset, rotaryDim: c.rot, theta: c.theta }));
        expectClose(read(yc), ref, 2e-6, 'composite');
        // Channels past rotaryDim pass through bit for bit.
        const yv = read(y);
        const D = c.shape[3]!;
        for (let r = 0; r < n / D; r++) for (let d = c.rot; d < D; d++) expect(yv[r * D + d]).toBe(x[r * D + d]);
        if (c.offset > 1000) {
          // With float64 angles the result differs visibly: the fp32 convention is what is computed.
          const ref64 = ropeRef(x, c.shape, (_b, tt) => c.offset + tt, c.rot, c.theta, false);
          let worst = 0;
          for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(yv[i]! - ref64[i]!));
          expect(worst).toBeGreaterThan(1e-4);
        }
      });
    });
  }

  it('per-batch positions [B, T], packed positions, rank-3 input', () => {
    const rng = rngFor('rope positions');
    const x = rng.array(2 * 4 * 2 * 6);
    const pos = [3, 4, 5, 6, 0, 1, 2, 3];
    const ref = ropeRef(x, [2, 4, 2, 6], (b, tt) => pos[b * 4 + tt]!, 6, 500);
    tidy(() => {
      const y = runOp1('rope', [t(x, [2, 4, 2, 6]), tensor(pos, [2, 4], 'i32')], { rotaryDim: 6, theta: 500 });
      expectClose(read(y), ref, 2e-6, 'per-batch positions');
      const packed = packedPositions([0, 3, 4, 8]);
      expect([...packed]).toEqual([0, 1, 2, 0, 0, 1, 2, 3]);
      const x3 = x.subarray(0, 8 * 2 * 6);
      const y3 = rope(t(x3, [8, 2, 6]), { positions: packed, rotaryDim: 4, theta: 500 });
      expectClose(read(y3), ropeRef(x3, [8, 2, 6], (_b, tt) => packed[tt]!, 4, 500), 2e-6, 'rank 3 with packed positions');
    });
  });

  it('gradient (the inverse rotation) vs finite differences and the composite autograd', () => {
    const rng = rngFor('rope grad');
    const shape = [2, 3, 2, 6];
    const x = rng.array(36 * 2);
    const w = rng.array(36 * 2);
    const fd = finiteDiff(() => dot(ropeRef(x, shape, (_b, tt) => 5 + tt, 4, 100), w), x);
    tidy(() => {
      const xt = t(x, shape);
      const W = t(w, shape);
      const g = valueAndGrad(() => sum(mul(rope(xt, { offset: 5, rotaryDim: 4, theta: 100 }), W)), [xt]).grads[0]!;
      expectClose(read(g), fd, 1e-6, 'rope grad vs finite differences');
      const pos = tensor([5, 6, 7], [3], 'i32');
      const gc = valueAndGrad(() => sum(mul(ropeComposite(xt, pos, { rotaryDim: 4, theta: 100, inverse: false }), W)), [xt]).grads[0]!;
      expectClose(read(gc), read(g), 1e-6, 'rope grad vs composite autograd');
    });
  });

  it('bad input: rotaryDim odd or larger than head_dim, positions of the wrong shape', () => {
    tidy(() => {
      const x = t(new Float64Array(2 * 3 * 2 * 8).fill(1), [2, 3, 2, 8]);
      expect(() => rope(x, { rotaryDim: 5 })).toThrow(AttrError);
      expect(() => rope(x, { rotaryDim: 5 })).toThrow(/'rotaryDim' must be a positive even number.*got 5/);
      expect(() => rope(x, { rotaryDim: 10 })).toThrow(/'rotaryDim' \(10\) must not exceed head_dim \(8/);
      expect(() => rope(x, { positions: [0, 1] })).toThrow(ShapeError);
      expect(() => rope(x, { positions: [0, 1] })).toThrow(/'positions' must have shape \[3\] or \[2, 3\].*got \[2\]/);
      expect(() => rope(x, { offset: -2 })).toThrow(/'offset' must be an integer >= 0/);
    });
  });
});

/** MODEL_SPEC §2.5 in float64: per group n = x / sqrt(mean(x^2) + eps); y = n * w * sigmoid(g). */
function gateRef(o: Float64Array, g: Float64Array, w: Float64Array, C: number, groups: number, eps: number): Float64Array {
  const y = new Float64Array(o.length);
  const size = C / groups;
  for (let r = 0; r < o.length / C; r++) {
    for (let gi = 0; gi < groups; gi++) {
      const base = r * C + gi * size;
      let ss = 0;
      for (let j = 0; j < size; j++) ss += o[base + j]! ** 2;
      const inv = 1 / Math.sqrt(ss / size + eps);
      for (let j = 0; j < size; j++) y[base + j] = o[base + j]! * inv * w[gi * size + j]! * (1 / (1 + Math.exp(-g[base + j]!)));
    }
  }
  return y;
}

describe('groupRmsNormGate', () => {
  it('forward: kernel and composite vs float64, groups of H*D/groups channels', () => {
    const rng = rngFor('gate fwd');
    for (const [rows, C, groups] of [[7, 12, 4], [3, 10, 1], [1, 6, 6]] as const) {
      const o = rng.array(rows * C);
      const g = rng.array(rows * C, 2);
      const w = rng.array(C);
      const ref = gateRef(o, g, w, C, groups, Math.fround(1e-6));
      tidy(() => {
        const args = [t(o, [rows, C]), t(g, [rows, C]), t(w, [C])] as const;
        expectClose(read(groupRmsNormGate(...args, { groups })), ref, 2e-6, `kernel ${rows}x${C}/${groups}`);
        expectClose(read(withKernelsDisabled(['groupRmsNormGate'], () => groupRmsNormGate(...args, { groups }))), ref, 2e-6, 'composite');
      });
    }
  });

  it('bf16 storage: computed in f32 or wider, rounded once', () => {
    const rng = rngFor('gate bf16');
    const o = rng.array(2 * 3 * 8);
    const g = rng.array(2 * 3 * 8);
    const w = rng.array(8);
    tidy(() => {
      const ot = t(o, [2, 3, 8], 'bf16');
      const gt = t(g, [2, 3, 8], 'bf16');
      const ref = gateRef(read(ot), read(gt), w, 8, 2, Math.fround(1e-6));
      const y = groupRmsNormGate(ot, gt, t(w, [8]), { groups: 2 });
      expect(y.dtype).toBe('bf16');
      expectClose(read(y), ref, 2 ** -8, 'bf16');
    });
  });

  it('gradients vs finite differences and the composite autograd', () => {
    const rng = rngFor('gate grad');
    const [rows, C, groups, eps] = [3, 8, 2, 1e-6];
    const o = rng.array(rows * C);
    const g = rng.array(rows * C);
    const w = rng.array(C);
    const wy = rng.array(rows * C);
    const f = () => dot(gateRef(o, g, w, C, groups, Math.fround(eps)), wy);
    const fd = [finiteDiff(f, o), finiteDiff(f, g), finiteDiff(f, w)];
    tidy(() => {
      const ins = [t(o, [rows, C]), t(g, [rows, C]), t(w, [C])];
      const Wy = t(wy, [rows, C]);
      const viaOp = valueAndGrad(() => sum(mul(groupRmsNormGate(ins[0]!, ins[1]!, ins[2]!, { groups, eps }), Wy)), ins);
      const viaComposite = withKernelsDisabled(['groupRmsNormGate'], () =>
        valueAndGrad(() => sum(mul(groupRmsNormGate(ins[0]!, ins[1]!, ins[2]!, { groups, eps }), Wy)), ins),
      );
      ['o', 'gate', 'weight'].forEach((name, i) => {
        expectClose(read(viaOp.grads[i]!), fd[i]!, 2e-5, `d${name} vs finite differences`);
        expectClose(read(viaComposite.grads[i]!), read(viaOp.grads[i]!), 1e-5, `d${name} (composite forward) vs op`);
      });
    });
  });

  it('bad input: channels that do not divide into groups, gate or weight of the wrong shape', () => {
    tidy(() => {
      const o = t(new Float64Array(2 * 10).fill(1), [2, 10]);
      expect(() => groupRmsNormGate(o, o, t(new Float64Array(10).fill(1), [10]), { groups: 4 })).toThrow(ShapeError);
      expect(() => groupRmsNormGate(o, o, t(new Float64Array(10).fill(1), [10]), { groups: 4 })).toThrow(
        /the 10 channels of 'o' \[2, 10\] do not divide into 4 equal groups/,
      );
      expect(() => groupRmsNormGate(o, t(new Float64Array(10).fill(1), [10]), t(new Float64Array(10).fill(1), [10]))).toThrow(/'gate' must have the shape of 'o'/);
      expect(() => groupRmsNormGate(o, o, t(new Float64Array(5).fill(1), [5]))).toThrow(/'weight' must have shape \[10\]/);
    });
  });
});

describe('qkNorm', () => {
  it('is RMSNorm over head_dim, per head', () => {
    const rng = rngFor('qknorm');
    const x = rng.array(2 * 3 * 4 * 8);
    const w = rng.array(8);
    const ref = new Float64Array(x.length);
    for (let r = 0; r < x.length / 8; r++) {
      let ss = 0;
      for (let d = 0; d < 8; d++) ss += x[r * 8 + d]! ** 2;
      const inv = 1 / Math.sqrt(ss / 8 + Math.fround(1e-6));
      for (let d = 0; d < 8; d++) ref[r * 8 + d] = x[r * 8 + d]! * inv * w[d]!;
    }
    tidy(() => expectClose(read(qkNorm(t(x, [2, 3, 4, 8]), t(w, [8]), 1e-6)), ref, 2e-6, 'qkNorm'));
  });
});
