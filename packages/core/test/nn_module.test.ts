// Parameter and Module: identity-preserving assign with exact memory accounting, scope exemption,
// the named parameter tree, state dicts (bit-exact round trip, strict and non-strict loading),
// train/eval, to(dtype), dispose. Random values come from a seeded host PRNG (seed printed).
import { describe, expect, it } from 'vitest';
import '@ring-linear/backend-cpu';
import {
  BackendMismatchError,
  DTypeError,
  DisposedTensorError,
  Embedding,
  Linear,
  Module,
  ModuleError,
  ModuleList,
  Parameter,
  RMSNorm,
  RingLinearError,
  ShapeError,
  StateDictError,
  SwiGLUMLP,
  add,
  cast,
  dispose,
  fromBytes,
  initBackend,
  memory,
  mul,
  registerBackend,
  tensor,
  tidy,
  type Tensor,
} from '@ring-linear/core';
import { CpuBackend } from '@ring-linear/backend-cpu';

const SEED = Number(process.env.NN_TEST_SEED ?? (Date.now() % 2147483647));
console.log(`nn_module.test seed: ${SEED} (rerun with NN_TEST_SEED=${SEED})`);

/** mulberry32: a small seeded host PRNG, independent of the library's Philox. */
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
/** Values in [-1, 1) away from zero-only data. */
const randArray = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);
const randTensor = (shape: number[], dtype: 'f32' | 'bf16' = 'f32') => {
  const t = tensor(randArray(shape.reduce((a, b) => a * b, 1)), shape);
  if (dtype === 'f32') return t;
  const c = cast(t, dtype);
  t.dispose();
  return c;
};
const values = (t: Tensor) => Array.from(t.dataSync());
const bytesOf = (t: Tensor) => Array.from(new Uint8Array(t.storage!.backend.readSync!(t.storage!.buffer, 0, t.byteLength)));

/** A small tree like a decoder: embedding, numbered blocks (norm + MLP), final norm, head with bias. */
class Block extends Module {
  readonly input_layernorm: RMSNorm;
  readonly mlp: SwiGLUMLP;
  constructor(d: number, h: number) {
    super();
    this.input_layernorm = new RMSNorm(d);
    this.mlp = new SwiGLUMLP(d, h);
  }
}
class Tiny extends Module {
  readonly word_embeddings: Embedding;
  readonly layers: ModuleList<Block>;
  readonly norm: RMSNorm;
  readonly lm_head: Linear;
  constructor(v = 11, d = 6, h = 5, n = 2) {
    super();
    this.word_embeddings = new Embedding(v, d);
    this.layers = new ModuleList(Array.from({ length: n }, () => new Block(d, h)));
    this.norm = new RMSNorm(d);
    this.lm_head = new Linear(d, v, { bias: true });
  }
}
const TINY_NAMES = [
  'word_embeddings.weight',
  'layers.0.input_layernorm.weight',
  'layers.0.mlp.gate_proj.weight',
  'layers.0.mlp.up_proj.weight',
  'layers.0.mlp.down_proj.weight',
  'layers.1.input_layernorm.weight',
  'layers.1.mlp.gate_proj.weight',
  'layers.1.mlp.up_proj.weight',
  'layers.1.mlp.down_proj.weight',
  'norm.weight',
  'lm_head.weight',
  'lm_head.bias',
];

/** Fills every parameter with fresh host-random values (RMSNorm weights included, so loads are visible). */
function randomize(m: Module): void {
  for (const p of m.parameters()) {
    const r = randTensor([...p.shape], p.dtype as 'f32' | 'bf16');
    p.assign(r);
  }
}

describe('Parameter', () => {
  it('takes ownership of its value: counters unchanged, value disposed, exempt from scopes', () => {
    const before = memory();
    const t = randTensor([3, 4]);
    const vals = values(t);
    const p = new Parameter(t);
    expect(t.disposed).toBe(true);
    expect(memory().tensors).toBe(before.tensors + 1);
    expect(memory().bytes).toBe(before.bytes + 48);
    expect(values(p)).toEqual(vals);
    expect(p.requiresGrad).toBe(true);
    expect(new Parameter(tensor([1, 2]), { requiresGrad: false }).requiresGrad).toBe(false);
    expect(() => new Parameter(p)).toThrow(/already a Parameter/);
    p.dispose();
  });

  it('assign keeps identity and id, frees the old storage, consumes the new value', () => {
    const p = new Parameter(randTensor([5, 7]));
    const id = p.id;
    const ref = p;
    const before = memory();
    const next = randTensor([5, 7]);
    const nextVals = values(next);
    expect(memory().bytes).toBe(before.bytes + 140);
    expect(p.assign(next)).toBe(ref);
    expect(p.id).toBe(id);
    expect(next.disposed).toBe(true);
    expect(values(p)).toEqual(nextVals);
    expect(memory()).toMatchObject({ tensors: before.tensors, storages: before.storages, bytes: before.bytes });
    p.assign(p); // a no-op, not a self-dispose
    expect(values(p)).toEqual(nextVals);
    p.dispose();
  });

  it('assign from a computed value inside tidy leaves counters flat', () => {
    const p = new Parameter(randTensor([4, 3]));
    const x = values(p);
    const before = memory();
    tidy(() => {
      p.assign(add(mul(p, 2), 1));
    });
    expect(memory()).toMatchObject({ tensors: before.tensors, bytes: before.bytes });
    values(p).forEach((v, i) => expect(v).toBe(Math.fround(Math.fround(x[i]! * 2) + 1)));
    p.dispose();
  });

  it('a stateDict snapshot keeps the old storage alive until it is disposed', () => {
    const p = new Parameter(randTensor([6]));
    const old = values(p);
    const before = memory();
    const snap = new ModuleWith(p).stateDict().get('p');
    expect(memory().bytes).toBe(before.bytes); // a view, no copy
    p.assign(randTensor([6]));
    expect(memory().bytes).toBe(before.bytes + 24); // old storage held by the snapshot
    expect(values(snap!)).toEqual(old);
    snap!.dispose();
    expect(memory()).toMatchObject({ tensors: before.tensors, bytes: before.bytes });
    p.dispose();
  });

  it('assign rejects another shape, dtype or backend with typed errors and consumes nothing', async () => {
    registerBackend('nn-other-cpu', () => new (class extends CpuBackend {
      override readonly name = 'nn-other-cpu' as 'cpu';
    })(), -20);
    const other = await initBackend('nn-other-cpu');
    const p = new Parameter(randTensor([2, 3]));
    const wrongShape = randTensor([3, 2]);
    const wrongDType = randTensor([2, 3], 'bf16');
    const wrongBackend = tensor(randArray(6), [2, 3], 'f32', other);
    expect(() => p.assign(wrongShape)).toThrow(ShapeError);
    expect(() => p.assign(wrongShape)).toThrow(/parameter #\d+ has shape \[2, 3\], the new value has \[3, 2\]/);
    expect(() => p.assign(wrongDType)).toThrow(DTypeError);
    expect(() => p.assign(wrongDType)).toThrow(/has dtype f32, the new value has bf16/);
    expect(() => p.assign(wrongBackend)).toThrow(BackendMismatchError);
    for (const t of [wrongShape, wrongDType, wrongBackend]) expect(t.disposed).toBe(false);
    const gone = randTensor([2, 3]);
    gone.dispose();
    expect(() => p.assign(gone)).toThrow(DisposedTensorError);
    dispose([p, wrongShape, wrongDType, wrongBackend]);
  });

  it('castInPlace changes dtype and storage, keeps identity; only float dtypes', () => {
    const p = new Parameter(randTensor([3, 5]));
    const ref = cast(p, 'bf16');
    const before = memory();
    p.castInPlace('bf16');
    expect(p.dtype).toBe('bf16');
    expect(p.byteLength).toBe(30);
    expect(bytesOf(p)).toEqual(bytesOf(ref));
    expect(memory().bytes).toBe(before.bytes - 30);
    expect(() => p.castInPlace('i32')).toThrow(DTypeError);
    const ip = new Parameter(tensor([1, 2], [2], 'i32'));
    expect(() => ip.castInPlace('f32')).toThrow(/only float parameters/);
    dispose([p, ref, ip]);
  });

  it('tidy does not dispose parameters made or used inside it', () => {
    const before = memory();
    let p!: Parameter;
    let lin!: Linear;
    const y = tidy(() => {
      p = new Parameter(randTensor([4]));
      lin = new Linear(4, 3);
      lin.forward(randTensor([2, 4])); // an intermediate result, freed by the scope
      return lin.forward(mul(randTensor([2, 4]), p));
    });
    expect(p.disposed).toBe(false);
    expect(lin.weight.disposed).toBe(false);
    expect(memory().tensors).toBe(before.tensors + 3); // p, lin.weight, y
    expect(values(y)).toHaveLength(6);
    dispose([p, lin.weight, y]);
    expect(memory()).toMatchObject({ tensors: before.tensors, bytes: before.bytes });
  });
});

/** One parameter named 'p' (for snapshot tests). */
class ModuleWith extends Module {
  constructor(readonly p: Parameter) {
    super();
  }
  override dispose(): void {}
}

describe('Module tree', () => {
  it('names parameters by fields and ModuleList indices, in declaration order', () => {
    const m = new Tiny();
    expect(m.namedParameters().map(([n]) => n)).toEqual(TINY_NAMES);
    expect(m.parameters()).toHaveLength(TINY_NAMES.length);
    expect([...m.stateDict().keys()]).toEqual(TINY_NAMES);
    expect(m.namedChildren().map(([n]) => n)).toEqual(['word_embeddings', 'layers', 'norm', 'lm_head']);
    expect(m.layers.namedChildren().map(([n]) => n)).toEqual(['0', '1']);
    expect(m.namedModules().map(([n]) => n)).toEqual([
      '', 'word_embeddings', 'layers', 'layers.0', 'layers.0.input_layernorm', 'layers.0.mlp', 'layers.0.mlp.gate_proj',
      'layers.0.mlp.up_proj', 'layers.0.mlp.down_proj', 'layers.1', 'layers.1.input_layernorm', 'layers.1.mlp',
      'layers.1.mlp.gate_proj', 'layers.1.mlp.up_proj', 'layers.1.mlp.down_proj', 'norm', 'lm_head',
    ]);
    expect(m.namedParameters('model').map(([n]) => n)[1]).toBe('model.layers.0.input_layernorm.weight');
    // 11*6 + 2*(6 + 3*6*5) + 6 + 6*11 + 11
    expect(m.numParameters()).toBe(66 + 2 * (6 + 90) + 6 + 66 + 11);
    expect(m.layers.length).toBe(2);
    expect([...m.layers]).toEqual([m.layers.at(0), m.layers.at(1)]);
    expect(m.layers.at(-1)).toBe(m.layers.at(1));
    expect(() => m.layers.at(2)).toThrow(ModuleError);
    const sd = m.stateDict();
    dispose(sd);
    m.dispose();
  });

  it('shared (tied) parameters: listed once by parameters(), under every name in stateDict()', () => {
    class Tied extends Module {
      readonly embed = new Embedding(7, 3);
      readonly head = new Linear(3, 7);
      constructor() {
        super();
        this.head.dispose();
        (this.head as { weight: Parameter }).weight = this.embed.weight;
      }
    }
    const m = new Tied();
    expect(m.namedParameters().map(([n]) => n)).toEqual(['embed.weight']);
    expect(m.numParameters()).toBe(21);
    const sd = m.stateDict();
    expect([...sd.keys()]).toEqual(['embed.weight', 'head.weight']);
    dispose(sd);
    m.dispose();
  });

  it('rejects plain arrays of modules, cycles and self-containment', () => {
    class WithArray extends Module {
      readonly blocks = [new Linear(2, 2)];
    }
    const wa = new WithArray();
    expect(() => wa.parameters()).toThrow(ModuleError);
    expect(() => wa.parameters()).toThrow(/WithArray\.blocks: a plain array of modules or parameters .* use a ModuleList/);
    wa.blocks[0]!.dispose();
    class Node extends Module {
      child: Module | null = null;
    }
    const a = new Node();
    const b = new Node();
    a.child = b;
    b.child = a;
    expect(() => a.parameters()).toThrow(/cycle/);
    const s = new Node();
    s.child = s;
    expect(() => s.parameters()).toThrow(/cannot contain itself/);
    expect(() => new ModuleList([1 as unknown as Module])).toThrow(/expected a Module/);
  });

  it('train()/eval() reach every module; apply() visits children before parents', () => {
    const m = new Tiny();
    expect(m.modules().every((x) => x.training)).toBe(true);
    expect(m.eval()).toBe(m);
    expect(m.modules().every((x) => !x.training)).toBe(true);
    m.train();
    expect(m.modules().every((x) => x.training)).toBe(true);
    const order: string[] = [];
    m.layers.at(0).apply((x) => order.push(x.constructor.name));
    expect(order).toEqual(['RMSNorm', 'Linear', 'Linear', 'Linear', 'SwiGLUMLP', 'Block']);
    m.dispose();
  });

  it('to(dtype) casts every float parameter in place; an overriding module keeps its dtype', () => {
    class KeepsF32 extends Module {
      readonly gate = new Linear(4, 3);
      override to(): this {
        return this; // like the MoE router, stays fp32
      }
    }
    class Net extends Module {
      readonly mlp = new SwiGLUMLP(4, 6);
      readonly router = new KeepsF32();
      readonly counts = new Parameter(tensor([1, 2, 3], [3], 'i32'), { requiresGrad: false });
    }
    const m = new Net();
    const refs = m.parameters();
    const expected = m.mlp.parameters().map((p) => tidy(() => bytesOf(cast(p, 'bf16'))));
    const before = memory();
    m.to('bf16');
    expect(m.parameters()).toEqual(refs);
    expect(m.mlp.parameters().map((p) => p.dtype)).toEqual(['bf16', 'bf16', 'bf16']);
    expect(m.mlp.parameters().map(bytesOf)).toEqual(expected);
    expect(m.router.gate.weight.dtype).toBe('f32');
    expect(m.counts.dtype).toBe('i32');
    expect(memory().bytes).toBe(before.bytes - 3 * 24 * 2);
    expect(m.mlp.forward(randTensor([2, 4], 'bf16')).dtype).toBe('bf16');
    expect(() => m.to('i32')).toThrow(ModuleError);
    m.dispose();
  });

  it('dispose() frees every parameter of the tree; toString shows the tree', () => {
    const before = memory();
    const m = new Tiny();
    expect(memory().tensors).toBe(before.tensors + TINY_NAMES.length);
    const s = m.toString();
    expect(s).toContain('Tiny');
    expect(s).toContain('(lm_head): Linear(inFeatures=6, outFeatures=11, bias=true)');
    expect(s).toContain('weight: [11, 6] f32');
    m.dispose();
    expect(memory()).toMatchObject({ tensors: before.tensors, storages: before.storages, bytes: before.bytes });
    expect(m.parameters().every((p) => p.disposed)).toBe(true);
  });
});

describe('state dicts', () => {
  it('round trip through raw bytes is bit-exact (f32 and bf16)', async () => {
    for (const dtype of ['f32', 'bf16'] as const) {
      const a = new Tiny().to(dtype);
      randomize(a);
      const sd = a.stateDict();
      // Through host bytes, as a checkpoint would go.
      const saved = new Map<string, Tensor>();
      for (const [name, t] of sd) saved.set(name, fromBytes(await t.bytes(), t.shape, t.dtype));
      dispose(sd);
      const b = new Tiny().to(dtype);
      randomize(b);
      expect(b.parameters().map(bytesOf)).not.toEqual(a.parameters().map(bytesOf));
      const before = memory();
      const result = b.loadStateDict(saved);
      expect(result).toEqual({ missing: [], unexpected: [], mismatched: [] });
      expect(memory().tensors).toBe(before.tensors); // new values were consumed by assign
      for (const [name, p] of b.namedParameters()) {
        expect(p.dtype, name).toBe(dtype);
        expect(bytesOf(p), name).toEqual(bytesOf(a.namedParameters().find(([n]) => n === name)![1]));
      }
      // The loaded parameters share the saved tensors' storage: disposing the map is safe.
      dispose(saved);
      expect(b.parameters().every((p) => !p.disposed)).toBe(true);
      expect(bytesOf(b.lm_head.bias!)).toEqual(bytesOf(a.lm_head.bias!));
      a.dispose();
      b.dispose();
    }
  });

  it('accepts a plain object too; the snapshot is unaffected by later updates', () => {
    const a = new Linear(3, 2, { bias: true });
    const snap = a.stateDict();
    const w0 = values(snap.get('weight')!);
    randomize(a);
    expect(values(snap.get('weight')!)).toEqual(w0);
    a.loadStateDict(Object.fromEntries(snap));
    expect(values(a.weight)).toEqual(w0);
    dispose(snap);
    a.dispose();
  });

  it('strict load lists every missing, unexpected and mismatched name in one error and loads nothing', () => {
    const a = new Tiny();
    const b = new Tiny();
    randomize(b);
    const bBefore = b.parameters().map(bytesOf);
    const sd = a.stateDict();
    sd.get('norm.weight')!.dispose();
    sd.delete('norm.weight');
    sd.get('layers.1.mlp.up_proj.weight')!.dispose();
    sd.delete('layers.1.mlp.up_proj.weight');
    sd.set('layers.2.mlp.up_proj.weight', randTensor([5, 6]));
    sd.set('model.mtp.weight', randTensor([3]));
    sd.get('lm_head.weight')!.dispose();
    sd.set('lm_head.weight', randTensor([6, 11])); // transposed
    sd.get('lm_head.bias')!.dispose();
    sd.set('lm_head.bias', randTensor([11], 'bf16'));
    let err: StateDictError | undefined;
    try {
      b.loadStateDict(sd);
    } catch (e) {
      err = e as StateDictError;
    }
    expect(err).toBeInstanceOf(StateDictError);
    expect(err).toBeInstanceOf(RingLinearError);
    expect(err!.missing).toEqual(['layers.1.mlp.up_proj.weight', 'norm.weight']);
    expect(err!.unexpected).toEqual(['layers.2.mlp.up_proj.weight', 'model.mtp.weight']);
    expect(err!.mismatched).toEqual([
      { name: 'lm_head.weight', expected: '[11, 6] f32 on cpu', got: '[6, 11] f32 on cpu' },
      { name: 'lm_head.bias', expected: '[11] f32 on cpu', got: '[11] bf16 on cpu' },
    ]);
    for (const n of ['layers.1.mlp.up_proj.weight', 'norm.weight', 'layers.2.mlp.up_proj.weight', 'model.mtp.weight', 'lm_head.weight', 'lm_head.bias']) {
      expect(err!.message).toContain(n);
    }
    expect(err!.message).toMatch(/missing 2: .*unexpected 2: .*mismatched 2: lm_head\.weight \(expected \[11, 6\] f32 on cpu, got \[6, 11\] f32 on cpu\)/);
    expect(b.parameters().map(bytesOf)).toEqual(bBefore);

    // Non-strict: the same lists, and every matching name is loaded.
    const res = b.loadStateDict(sd, { strict: false });
    expect(res.missing).toEqual(err!.missing);
    expect(res.unexpected).toEqual(err!.unexpected);
    expect(res.mismatched.map((e) => e.name)).toEqual(['lm_head.weight', 'lm_head.bias']);
    for (const [name, p] of b.namedParameters()) {
      const untouched = ['layers.1.mlp.up_proj.weight', 'norm.weight', 'lm_head.weight', 'lm_head.bias'].includes(name);
      const ref = untouched ? bBefore[TINY_NAMES.indexOf(name)] : bytesOf(sd.get(name)!);
      expect(bytesOf(p), name).toEqual(ref);
    }
    dispose(sd);
    a.dispose();
    b.dispose();
  });

  it('a disposed tensor in the state dict is a typed error before anything loads', () => {
    const a = new Linear(2, 2);
    const sd = a.stateDict();
    sd.get('weight')!.dispose();
    expect(() => a.loadStateDict(sd)).toThrow(DisposedTensorError);
    a.dispose();
  });
});
