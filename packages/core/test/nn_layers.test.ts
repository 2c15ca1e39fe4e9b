// Layers against float64 references written here: Linear (forward; gradients by valueAndGrad vs
// central finite differences of a float64 re-implementation), SwiGLUMLP (same), RMSNorm,
// Embedding; shape/dtype errors; forward leaks nothing but its result.
import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import {
  DTypeError,
  Embedding,
  Linear,
  ModuleError,
  RMSNorm,
  ShapeError,
  SwiGLUMLP,
  cast,
  dispose,
  memory,
  mul,
  sum,
  tensor,
  valueAndGrad,
  type Parameter,
  type Tensor,
} from '@ring-linear/core';

const SEED = Number(process.env.NN_TEST_SEED ?? (Date.now() % 2147483647));
console.log(`nn_layers.test seed: ${SEED} (rerun with NN_TEST_SEED=${SEED})`);

function hostRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = hostRng(SEED);
const randArray = (n: number, scale = 1) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const randTensor = (shape: number[], scale = 1) => tensor(randArray(size(shape), scale), shape);
const f64 = (t: Tensor) => Float64Array.from(t.dataSync());

/** Fills a parameter with host-random values (so references know them exactly). */
function fill(p: Parameter, scale = 1): void {
  const t = tensor(randArray(p.size, scale), [...p.shape]);
  p.assign(p.dtype === 'f32' ? t : cast(t, p.dtype));
  if (!t.disposed) t.dispose();
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  expect(actual.length, what).toBe(expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) - (atol + rtol * Math.abs(expected[i]!));
    if (err > worst) {
      worst = err;
      at = i;
    }
  }
  if (at >= 0) expect.fail(`${what}: index ${at}: got ${actual[at]}, expected ${expected[at]} (atol ${atol}, rtol ${rtol})`);
}

// ---------------------------------------------------------------------------------------------
// float64 references

/** y[r, o] = sum_i x[r, i] W[o, i] + b[o] over rows r of x viewed as [rows, inF]. */
function linear64(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number> | null, inF: number, outF: number): Float64Array {
  const rows = x.length / inF;
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let acc = b ? b[o]! : 0;
      for (let i = 0; i < inF; i++) acc += x[r * inF + i]! * w[o * inF + i]!;
      y[r * outF + o] = acc;
    }
  }
  return y;
}

const silu64 = (v: number) => v / (1 + Math.exp(-v));

function swiglu64(x: ArrayLike<number>, wg: ArrayLike<number>, wu: ArrayLike<number>, wd: ArrayLike<number>, d: number, h: number): Float64Array {
  const g = linear64(x, wg, null, d, h);
  const u = linear64(x, wu, null, d, h);
  const a = g.map((v, i) => silu64(v) * u[i]!);
  return linear64(a, wd, null, h, d);
}

function rmsNorm64(x: ArrayLike<number>, w: ArrayLike<number>, d: number, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[r * d + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / d + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = w[i]! * x[r * d + i]! * inv;
  }
  return y;
}

/** Central finite differences of a float64 scalar function with respect to each of its inputs. */
function finiteDiff(f: (args: Float64Array[]) => number, args: Float64Array[], h: number): Float64Array[] {
  return args.map((a) =>
    a.map((v, i) => {
      a[i] = v + h;
      const up = f(args);
      a[i] = v - h;
      const down = f(args);
      a[i] = v;
      return (up - down) / (2 * h);
    }),
  );
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

// ---------------------------------------------------------------------------------------------

describe('Linear', () => {
  it('weight is [out, in], bias [out]; forward matches a float64 loop over shapes', () => {
    const cases: { shape: number[]; inF: number; outF: number; bias: boolean }[] = [
      { shape: [2, 3, 7], inF: 7, outF: 5, bias: true },
      { shape: [4, 7], inF: 7, outF: 13, bias: false },
      { shape: [1, 1, 1], inF: 1, outF: 1, bias: true },
      { shape: [9], inF: 9, outF: 3, bias: true },
      { shape: [3, 1, 2, 17], inF: 17, outF: 1, bias: false },
    ];
    for (const c of cases) {
      const lin = new Linear(c.inF, c.outF, { bias: c.bias });
      expect(lin.weight.shape).toEqual([c.outF, c.inF]);
      expect(lin.bias?.shape ?? null).toEqual(c.bias ? [c.outF] : null);
      fill(lin.weight);
      if (lin.bias) fill(lin.bias);
      const x = randTensor(c.shape);
      const y = lin.forward(x);
      expect(y.shape).toEqual([...c.shape.slice(0, -1), c.outF]);
      const ref = linear64(f64(x), f64(lin.weight), lin.bias ? f64(lin.bias) : null, c.inF, c.outF);
      expectClose(y.dataSync(), ref, 1e-6, 1e-5, `Linear ${JSON.stringify(c)}`);
      dispose([x, y]);
      lin.dispose();
    }
  });

  it('bf16 parameters: bf16 in and out, computed in f32 and rounded once', () => {
    const lin = new Linear(11, 6, { bias: true, dtype: 'bf16' });
    expect(lin.weight.dtype).toBe('bf16');
    fill(lin.weight);
    fill(lin.bias!);
    const x32 = randTensor([3, 11]);
    const x = cast(x32, 'bf16');
    const y = lin.forward(x);
    expect(y.dtype).toBe('bf16');
    const ref = linear64(f64(x), f64(lin.weight), f64(lin.bias!), 11, 6);
    // The product is rounded to bf16 (8 bits of mantissa) before and after the bias add.
    expectClose(y.dataSync(), ref, 3e-2, 2 ** -7, 'bf16 Linear');
    dispose([x32, x, y]);
    lin.dispose();
  });

  it('gradients (valueAndGrad) match finite differences of the float64 re-implementation', () => {
    const [B, T, inF, outF] = [2, 3, 5, 4];
    const lin = new Linear(inF, outF, { bias: true });
    fill(lin.weight);
    fill(lin.bias!);
    const x = randTensor([B, T, inF]);
    const r = randTensor([B, T, outF]); // loss = sum(r * y) makes every output matter differently
    const { value, grads } = valueAndGrad(() => sum(mul(lin.forward(x), r)), [x, lin.weight, lin.bias!]);
    const rv = f64(r);
    const loss64 = ([xa, wa, ba]: Float64Array[]) => dot(linear64(xa!, wa!, ba!, inF, outF), rv);
    const args = [f64(x), f64(lin.weight), f64(lin.bias!)];
    expect(value.dataSync()[0]).toBeCloseTo(loss64(args), 4);
    const fd = finiteDiff(loss64, args, 1e-3);
    ['dx', 'dW', 'db'].forEach((name, i) => {
      expect(grads[i]!.shape).toEqual([[B, T, inF], [outF, inF], [outF]][i]);
      expectClose(grads[i]!.dataSync(), fd[i]!, 1e-5, 1e-4, `Linear ${name}`);
    });
    dispose([x, r, value, grads]);
    lin.dispose();
  });

  it('typed errors: wrong input width, wrong dtype, bad sizes', () => {
    const lin = new Linear(4, 3);
    const x = randTensor([2, 5]);
    expect(() => lin.forward(x)).toThrow(ShapeError);
    expect(() => lin.forward(x)).toThrow('Linear: expected input [..., 4], got [2, 5]');
    const xb = cast(randTensor([2, 4]), 'bf16');
    expect(() => lin.forward(xb)).toThrow(DTypeError);
    expect(() => new Linear(0, 3)).toThrow(ModuleError);
    expect(() => new Linear(2.5, 3)).toThrow("Linear: 'inFeatures' must be a positive integer, got 2.5");
    expect(() => new Linear(2, 3, { dtype: 'i32' })).toThrow(DTypeError);
    dispose([x, xb]);
    lin.dispose();
  });

  it('forward outside a scope leaves only its result alive', () => {
    const lin = new Linear(6, 3, { bias: true });
    const x = randTensor([6]);
    const before = memory();
    const y = lin.forward(x);
    expect(memory().tensors).toBe(before.tensors + 1);
    expect(memory().bytes).toBe(before.bytes + 12);
    dispose([x, y]);
    lin.dispose();
  });
});

describe('SwiGLUMLP', () => {
  it('has gate_proj/up_proj [h, d] and down_proj [d, h]; forward matches down(silu(gate x) * up x) in float64', () => {
    for (const [d, h, shape] of [[5, 7, [2, 3, 5]], [1, 1, [1, 1]], [8, 3, [8]]] as [number, number, number[]][]) {
      const mlp = new SwiGLUMLP(d, h);
      expect(mlp.namedParameters().map(([n, p]) => `${n}:${p.shape.join('x')}`)).toEqual([
        `gate_proj.weight:${h}x${d}`, `up_proj.weight:${h}x${d}`, `down_proj.weight:${d}x${h}`,
      ]);
      for (const p of mlp.parameters()) fill(p);
      const x = randTensor(shape, 2);
      const before = memory();
      const y = mlp.forward(x);
      expect(memory().tensors).toBe(before.tensors + 1);
      expect(y.shape).toEqual(shape);
      const ref = swiglu64(f64(x), f64(mlp.gate_proj.weight), f64(mlp.up_proj.weight), f64(mlp.down_proj.weight), d, h);
      expectClose(y.dataSync(), ref, 1e-5, 1e-5, `SwiGLU d=${d} h=${h}`);
      dispose([x, y]);
      mlp.dispose();
    }
  });

  it('gradients match finite differences of the float64 re-implementation', () => {
    const [d, h, rows] = [4, 6, 3];
    const mlp = new SwiGLUMLP(d, h);
    for (const p of mlp.parameters()) fill(p);
    const x = randTensor([rows, d], 2);
    const r = randTensor([rows, d]);
    const watched = [x, mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight];
    const { value, grads } = valueAndGrad(() => sum(mul(mlp.forward(x), r)), watched);
    const rv = f64(r);
    const loss64 = ([xa, g, u, dn]: Float64Array[]) => dot(swiglu64(xa!, g!, u!, dn!, d, h), rv);
    const args = watched.map(f64);
    expect(value.dataSync()[0]).toBeCloseTo(loss64(args), 4);
    const fd = finiteDiff(loss64, args, 1e-5);
    ['dx', 'dgate', 'dup', 'ddown'].forEach((name, i) => expectClose(grads[i]!.dataSync(), fd[i]!, 1e-4, 1e-3, `SwiGLU ${name}`));
    dispose([x, r, value, grads]);
    mlp.dispose();
  });
});

describe('RMSNorm', () => {
  it('weight starts at ones; forward matches the float64 formula (MODEL_SPEC §1)', () => {
    for (const [d, shape, eps] of [[6, [2, 3, 6], 1e-6], [1, [4, 1], 1e-5], [17, [17], 0.5]] as [number, number[], number][]) {
      const norm = new RMSNorm(d, eps);
      expect(Array.from(norm.weight.dataSync())).toEqual(new Array(d).fill(1));
      fill(norm.weight);
      const x = randTensor(shape, 3);
      const y = norm.forward(x);
      expectClose(y.dataSync(), rmsNorm64(f64(x), f64(norm.weight), d, eps), 1e-6, 1e-5, `RMSNorm d=${d}`);
      dispose([x, y]);
      norm.dispose();
    }
  });

  it('typed errors: wrong width, bad eps', () => {
    const norm = new RMSNorm(4);
    const x = randTensor([2, 3]);
    expect(() => norm.forward(x)).toThrow('RMSNorm: expected input [..., 4], got [2, 3]');
    expect(() => new RMSNorm(4, -1)).toThrow(ModuleError);
    dispose(x);
    norm.dispose();
  });
});

describe('Embedding', () => {
  it('weight [num, dim]; forward picks rows for i32 ids of any shape', () => {
    const emb = new Embedding(13, 5);
    expect(emb.weight.shape).toEqual([13, 5]);
    fill(emb.weight);
    const w = f64(emb.weight);
    const idList = [3, 0, 12, 7, 7, 1];
    const ids = tensor(idList, [2, 3], 'i32');
    const y = emb.forward(ids);
    expect(y.shape).toEqual([2, 3, 5]);
    const ref = idList.flatMap((id) => Array.from(w.subarray(id * 5, id * 5 + 5)));
    expect(Array.from(y.dataSync())).toEqual(ref);
    const f = tensor([1, 2]);
    expect(() => emb.forward(f)).toThrow(DTypeError);
    expect(() => emb.forward(f)).toThrow('Embedding: ids must have dtype i32, got f32');
    dispose([ids, y, f]);
    emb.dispose();
  });

  it('gradient reaches the looked-up rows (summed for repeated ids)', () => {
    const emb = new Embedding(6, 3);
    fill(emb.weight);
    const idList = [2, 5, 2];
    const ids = tensor(idList, [3], 'i32');
    const r = randTensor([3, 3]);
    const { value, grads: [dw] } = valueAndGrad(() => sum(mul(emb.forward(ids), r)), [emb.weight]);
    const rv = f64(r);
    const ref = new Float64Array(18);
    idList.forEach((id, k) => {
      for (let j = 0; j < 3; j++) ref[id * 3 + j]! += rv[k * 3 + j]!;
    });
    expectClose(dw!.dataSync(), ref, 1e-6, 1e-6, 'Embedding dW');
    dispose([ids, r, value, dw]);
    emb.dispose();
  });
});
