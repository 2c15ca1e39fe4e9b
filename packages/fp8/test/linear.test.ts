import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import {
  DTypeError,
  Generator,
  GradientError,
  Linear,
  Module,
  ModuleError,
  ModuleList,
  ShapeError,
  SwiGLUMLP,
  add,
  crossEntropy,
  dispose,
  matmul,
  memory,
  mul,
  reshape,
  silu,
  sub,
  sum,
  tensor,
  tidy,
  transpose,
  valueAndGrad,
  withKernelsDisabled,
  type Parameter,
  type Tensor,
} from '@ring-linear/core';
import {
  Fp8Linear,
  fp8GemmRaw,
  fp8Linear,
  quantTranspose,
  quantize,
  toFp8,
  transposeQuantized,
  type Fp8Recipe,
} from '../src/index.js';
import { SEED, expectBytes, groupOf, read, rngFor, t, type Fp8 } from './helpers.js';

console.log(`Fp8Linear tests: seed ${SEED} (FP8_SEED=${SEED} reproduces)`);

const UH: Record<Fp8, [number, number]> = { f8e4m3: [2 ** -4 + 2 ** -24, 2 ** -10], f8e5m2: [2 ** -3 + 2 ** -24, 2 ** -17] };

/** Per-element scale of a quantized [R, C] tensor (1x128 tiles or 128x128 blocks). */
function elementScales(q: { scales: Tensor; layout: string }, R: number, C: number): Float64Array {
  const s = q.scales.dataSync();
  return Float64Array.from({ length: R * C }, (_, i) => s[groupOf([R, C], q.layout as 'tile1x128', i)]!);
}

/**
 * max over outputs of |got - exact| / bound, where exact = sum_k a[m,k] b[n,k] and the bound is
 * sum_k (ea |b| + |a| eb + ea eb) + 4 * 2^-24 * sum_k |a||b| (gemm.test.ts derives it).
 */
function boundUse(
  got: Float64Array, a: Float64Array, sa: Float64Array, ua: [number, number],
  b: Float64Array, sb: Float64Array, ub: [number, number], M: number, N: number, K: number,
): number {
  let worst = 0;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let exact = 0;
      let bound = 0;
      for (let k = 0; k < K; k++) {
        const [x, y] = [a[m * K + k]!, b[n * K + k]!];
        exact += x * y;
        const ea = ua[0] * Math.abs(x) + ua[1] * sa[m * K + k]!;
        const eb = ub[0] * Math.abs(y) + ub[1] * sb[n * K + k]!;
        bound += ea * Math.abs(y) + Math.abs(x) * eb + ea * eb + 4 * 2 ** -24 * Math.abs(x * y) * 1.2;
      }
      worst = Math.max(worst, Math.abs(got[m * N + n]! - exact) / bound);
    }
  }
  return worst;
}

function transposeHost(x: Float64Array, R: number, C: number): Float64Array {
  const y = new Float64Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) y[c * R + r] = x[r * C + c]!;
  return y;
}

describe('fp8Linear: forward and the blockwise backward', () => {
  for (const [M, K, N] of [[1, 1, 1], [5, 130, 7], [130, 64, 200], [33, 300, 129]] as const) {
    for (const gradDtype of ['f8e4m3', 'f8e5m2'] as const) {
      it(`[${M}, ${K}] -> ${N}, dy in ${gradDtype}: = the recipe op by op; within the FP8 bounds of the f32 Linear`, async () => {
        const rng = rngFor(`lin ${M} ${K} ${N} ${gradDtype}`);
        const xv = rng.array(M * K);
        const wv = rng.array(N * K, 1 / Math.sqrt(K));
        const rv = rng.array(M * N);
        const [x, w, r] = [t(xv, [M, K]), t(wv, [N, K]), t(rv, [M, N])];
        const recipe: Fp8Recipe = { gradDtype };
        const { value, grads } = valueAndGrad(() => sum(mul(fp8Linear(x, w, recipe), r)), [x, w]);
        const [dx, dw] = grads as [Tensor, Tensor];
        const y = fp8Linear(x, w, recipe);
        // The recipe written out with the public ops: the same bytes.
        const manual = tidy(() => {
          const xq = quantize(x);
          const wq = quantize(w, { layout: 'block128x128' });
          const yy = fp8GemmRaw(xq.data, xq.scales, wq.data, wq.scales);
          const dy = quantTranspose(r, { dtype: gradDtype });
          const wT = transposeQuantized(wq);
          const dxx = fp8GemmRaw(dy.x.data, dy.x.scales, wT.data, wT.scales);
          const xT = quantize(transpose(x));
          const dww = fp8GemmRaw(dy.xT.data, dy.xT.scales, xT.data, xT.scales, { bLayout: 'tile1x128' });
          return [yy, dxx, dww];
        });
        expectBytes(await y.bytes(), await manual[0]!.bytes(), 'forward');
        expectBytes(await dx.bytes(), await manual[1]!.bytes(), 'dx');
        expectBytes(await dw.bytes(), await manual[2]!.bytes(), 'dw');
        // The composite forward gives the same bytes.
        const yc = withKernelsDisabled(['fp8Linear'], () => fp8Linear(x, w, recipe));
        expectBytes(await yc.bytes(), await y.bytes(), 'composite forward');
        // Against the f32 Linear (y = x W^T, dx = r W, dw = r^T x), within the bounds the formats imply.
        const sc = tidy(() => {
          const xq = quantize(x);
          const wq = quantize(w, { layout: 'block128x128' });
          const dy = quantTranspose(r, { dtype: gradDtype });
          const xT = quantize(transpose(x));
          return {
            x: elementScales(xq, M, K), w: elementScales(wq, N, K),
            dy: elementScales(dy.x, M, N), dyT: elementScales(dy.xT, N, M), xT: elementScales(xT, K, M),
          };
        });
        const e4 = UH.f8e4m3;
        const eg = UH[gradDtype];
        expect(boundUse(read(y), xv, sc.x, e4, wv, sc.w, e4, M, N, K), 'y').toBeLessThanOrEqual(1);
        const wT = transposeHost(wv, N, K);
        const swT = transposeHost(sc.w, N, K);
        expect(boundUse(read(dx), rv, sc.dy, eg, wT, swT, e4, M, K, N), 'dx').toBeLessThanOrEqual(1);
        expect(boundUse(read(dw), transposeHost(rv, M, N), sc.dyT, eg, transposeHost(xv, M, K), sc.xT, e4, N, K, M), 'dw').toBeLessThanOrEqual(1);
        // And the gradients are close to the f32 Linear's on the whole: relative Frobenius error of a few %.
        const [fx, fw] = tidy(() => {
          const g = valueAndGrad(() => sum(mul(matmul(x, w, { transposeB: true }), r)), [x, w]);
          g.value.dispose();
          return g.grads.map(read);
        });
        const frob = (a: Float64Array, b: Float64Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0) / b.reduce((s, v) => s + v * v, 0));
        const tolF = gradDtype === 'f8e4m3' ? 0.08 : 0.15;
        expect(frob(read(dx), fx!)).toBeLessThan(tolF);
        expect(frob(read(dw), fw!)).toBeLessThan(tolF);
        dispose([x, w, r, value, dx, dw, y, manual, yc]);
      });
    }
  }

  it('takes [..., K] inputs and bf16 activations; pow2 scales', async () => {
    const rng = rngFor('lin shapes');
    const x = t(rng.array(2 * 3 * 140), [2, 3, 140]);
    const w = t(rng.array(9 * 140, 0.1), [9, 140]);
    const y3 = fp8Linear(x, w);
    const y2 = fp8Linear(reshape(x, [6, 140]), w);
    expect(y3.shape).toEqual([2, 3, 9]);
    expectBytes(await y3.bytes(), await y2.bytes(), 'rank 3 = rank 2');
    const xb = t(read(x), [2, 3, 140], 'bf16');
    const yb = fp8Linear(xb, w);
    expect(yb.dtype).toBe('bf16');
    const ybc = withKernelsDisabled(['fp8Linear'], () => fp8Linear(xb, w));
    expectBytes(await ybc.bytes(), await yb.bytes(), 'bf16 composite');
    const yp = fp8Linear(x, w, { pow2Scale: true });
    const ypc = withKernelsDisabled(['fp8Linear'], () => fp8Linear(x, w, { pow2Scale: true }));
    expectBytes(await ypc.bytes(), await yp.bytes(), 'pow2 composite');
    const { grads } = valueAndGrad(() => sum(fp8Linear(xb, w)), [xb, w]);
    expect(grads[0]!.dtype).toBe('bf16');
    expect(grads[1]!.dtype).toBe('f32');
    dispose([x, w, y3, y2, xb, yb, ybc, yp, ypc, grads]);
  });

  it('where the backend lacks the fp8Linear kernel the gradient fails loudly (GradientError), never silently', () => {
    // The engine records a composite's inner ops, not the op, so the recipe's backward does not
    // run there; the quantizers have no gradient by design.
    const x = t([1, 2, 3, 4], [2, 2]);
    const w = t([1, 0, 0, 1], [2, 2]);
    expect(() => withKernelsDisabled(['fp8Linear'], () => valueAndGrad(() => sum(fp8Linear(x, w)), [x, w]))).toThrow(GradientError);
    dispose([x, w]);
  });

  it('bad inputs get typed errors', () => {
    const x = t([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(() => fp8Linear(x, t([1, 2, 3, 4], [2, 2]))).toThrow(ShapeError);
    expect(() => fp8Linear(x, t([1, 2, 3, 4], [2, 2]))).toThrow(/'x' must have shape \[\.\.\., 2\]/);
    expect(() => fp8Linear(x, t([1, 2, 3], [3]))).toThrow(/'weight' must have shape \[out, in\]/);
    expect(() => fp8Linear(x, t([1, 2, 3], [1, 3]), { gradDtype: 'bf16' as never })).toThrow(/'gradDtype' expected an FP8 dtype/);
    expect(() => fp8Linear(tensor([1, 2, 3], [1, 3], 'i32'), t([1, 2, 3], [1, 3]))).toThrow(DTypeError);
    x.dispose();
  });
});

class TwoLayer extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(d: number, h: number, c: number, generator: Generator) {
    super();
    this.fc1 = new Linear(d, h, { bias: true, generator });
    this.fc2 = new Linear(h, c, { generator });
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.fc2.forward(silu(this.fc1.forward(x))));
  }
}

describe('Fp8Linear and toFp8', () => {
  it('Fp8Linear has Linear\'s parameter names and init; forward = fp8Linear + bias; rank 1 works', async () => {
    const lin = new Linear(140, 9, { bias: true, generator: new Generator(5) });
    const f = new Fp8Linear(140, 9, { bias: true, generator: new Generator(5) });
    expect(f.namedParameters().map(([n]) => n)).toEqual(lin.namedParameters().map(([n]) => n));
    expectBytes(await f.weight.bytes(), await lin.weight.bytes(), 'same init as Linear');
    const x = t(rngFor('fp8lin').array(4 * 140), [4, 140]);
    const y = f.forward(x);
    const want = tidy(() => add(fp8Linear(x, f.weight), f.bias!));
    expectBytes(await y.bytes(), await want.bytes(), 'forward');
    const x1 = t(read(x).subarray(0, 140), [140]);
    const y1 = f.forward(x1);
    expect(y1.shape).toEqual([9]);
    expect(() => f.forward(t([1, 2], [1, 2]))).toThrow(/expected input \[\.\.\., 140\]/);
    expect(() => new Fp8Linear(3, 0)).toThrow(ModuleError);
    expect(() => new Fp8Linear(3, 2, { fp8Dtype: 'f16' as never })).toThrow(DTypeError);
    expect(String(f)).toContain('fp8Dtype=f8e4m3');
    dispose([x, y, want, x1, y1]);
    lin.dispose();
    f.dispose();
  });

  it('swaps Linear children in place, sharing the master weights (names, identities, optimizer state unchanged)', () => {
    const mlp = new SwiGLUMLP(16, 40, { generator: new Generator(1) });
    const params = mlp.namedParameters();
    const converted = toFp8(mlp);
    expect(converted).toEqual(['gate_proj', 'up_proj', 'down_proj']);
    expect(mlp.gate_proj).toBeInstanceOf(Fp8Linear);
    const after = mlp.namedParameters();
    expect(after.map(([n]) => n)).toEqual(params.map(([n]) => n));
    after.forEach(([, p], i) => expect(p).toBe(params[i]![1]));
    // Converting again finds no Linear left.
    expect(toFp8(mlp)).toEqual([]);
    // The converted block runs through FP8 and stays close to the f32 result.
    const x = t(rngFor('swiglu mlp').array(3 * 16), [3, 16]);
    const y = mlp.forward(x);
    expect(y.shape).toEqual([3, 16]);
    dispose([x, y]);
    mlp.dispose();
  });

  it('filter picks layers by name; a shared Linear becomes one shared Fp8Linear; ModuleList-held Linears are refused before any change', () => {
    const g = new Generator(2);
    class Net extends Module {
      readonly body: TwoLayer = new TwoLayer(8, 8, 8, g);
      readonly lm_head: Linear = new Linear(8, 4, { generator: g });
      readonly tied: Linear = this.lm_head;
    }
    const net = new Net();
    expect(toFp8(net, { filter: (name) => name !== 'lm_head' && name !== 'tied' })).toEqual(['body.fc1', 'body.fc2']);
    expect(net.lm_head).toBeInstanceOf(Linear);
    expect(toFp8(net)).toEqual(['lm_head', 'tied']);
    expect(net.lm_head).toBe(net.tied);
    expect(net.lm_head).toBeInstanceOf(Fp8Linear);

    class Stack extends Module {
      readonly layers = new ModuleList([new Linear(4, 4, { generator: g }), new Linear(4, 4, { generator: g })]);
      readonly out: Linear = new Linear(4, 2, { generator: g });
    }
    const s = new Stack();
    expect(() => toFp8(s)).toThrow(ModuleError);
    expect(() => toFp8(s)).toThrow(/layers\.0, layers\.1/);
    expect(s.out).toBeInstanceOf(Linear); // nothing changed
    expect(toFp8(s, { filter: (n) => !n.startsWith('layers.') })).toEqual(['out']);
    net.dispose();
    s.dispose();
  });
});

describe('training with FP8 linear layers', () => {
  /**
   * A 2-layer MLP (64 -> 256 -> 10, SiLU) learns a random linear teacher's argmax on Gaussian
   * inputs with SGD; the same run (same init, same batches) in f32 and with toFp8(): the FP8 run's
   * final loss is within 3% of the f32 run's, and memory stays flat across steps.
   */
  it('a tiny MLP trained for 60 steps ends within 3% of the f32 loss, at flat memory', () => {
    const [D, H, C, NDATA, BATCH, STEPS, LR] = [64, 256, 10, 256, 32, 60, 0.5];
    const rng = rngFor('train data');
    const X = rng.array(NDATA * D, 1, false);
    const teacher = rng.array(C * D, 1, false);
    const labels = new Int32Array(NDATA);
    for (let i = 0; i < NDATA; i++) {
      let best = -Infinity;
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let k = 0; k < D; k++) s += X[i * D + k]! * teacher[c * D + k]!;
        if (s > best) [best, labels[i]] = [s, c];
      }
    }
    const batches = Array.from({ length: STEPS }, () => Int32Array.from({ length: BATCH }, () => rng.int(0, NDATA)));
    const xAll = t(X, [NDATA, D]);
    const yAll = tensor(labels, [NDATA], 'i32');

    const run = (fp8: boolean): { initial: number; final: number; mem: number[][] } => {
      const model = new TwoLayer(D, H, C, new Generator(SEED));
      if (fp8) expect(toFp8(model)).toEqual(['fc1', 'fc2']);
      const params = model.parameters();
      const evalLoss = () => tidy(() => crossEntropy(model.forward(xAll), yAll).dataSync()[0]!);
      const initial = evalLoss();
      const mem: number[][] = [];
      for (const idx of batches) {
        const xb = tidy(() => t(Float64Array.from({ length: BATCH * D }, (_, i) => X[idx[Math.floor(i / D)]! * D + (i % D)]!), [BATCH, D]));
        const yb = tensor(Int32Array.from(idx, (i) => labels[i]!), [BATCH], 'i32');
        const { value, grads } = valueAndGrad(() => crossEntropy(model.forward(xb), yb), params);
        params.forEach((p: Parameter, i) => p.assign(tidy(() => sub(p, mul(grads[i]!, LR)))));
        dispose([value, grads, xb, yb]);
        const m = memory();
        mem.push([m.tensors, m.bytes]);
      }
      const final = evalLoss();
      model.dispose();
      return { initial, final, mem };
    };
    let t0 = performance.now();
    const f32 = run(false);
    const tF32 = performance.now() - t0;
    t0 = performance.now();
    const f8 = run(true);
    const tF8 = performance.now() - t0;
    console.log(`  times f32 ${tF32.toFixed(0)} ms, fp8 ${tF8.toFixed(0)} ms; losses ${f32.final} ${f8.final}`);
    console.log(`  training: f32 loss ${f32.initial.toFixed(4)} -> ${f32.final.toFixed(4)}; fp8 ${f8.initial.toFixed(4)} -> ${f8.final.toFixed(4)} (${(((f8.final - f32.final) / f32.final) * 100).toFixed(2)}%)`);
    expect(f32.final).toBeLessThan(0.5 * f32.initial); // it learned something
    expect(Math.abs(f8.final - f32.final) / f32.final).toBeLessThan(0.03);
    for (const m of f8.mem) expect(m).toEqual(f8.mem[0]);
    dispose([xAll, yAll]);
  });
});
