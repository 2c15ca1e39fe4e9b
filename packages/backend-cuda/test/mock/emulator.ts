/**
 * A JavaScript model of the CUDA kernels, for the mock driver (whose "device" memory is host
 * memory). It replaces the backend's launcher: each launch reads the marshalled arguments back
 * from the kernel's argument block and does what the kernel's source says, element by element.
 *
 * This checks the host side of every op (argument order, [outer, R, inner] planning, strides,
 * temporaries, grid geometry) against the CPU backend through the conformance suite; the device
 * code itself is checked by nvcc in CI and on the GPU machine.
 */
import { decodeToF32, encodeF32, philoxNormalF32, philoxUniformF32, type DType } from '@ring-linear/core';
import type { CudaBackend } from '../../src/backend.js';
import type { Kernel } from '../../src/kernels/modules.js';
import { offsetsAt, MAX_RANK } from '../../src/ops/strides.js';

const SFX: Record<string, DType> = { f32: 'f32', f16: 'f16', bf16: 'bf16', e4m3: 'f8e4m3', e5m2: 'f8e5m2', i32: 'i32', u8: 'u8', bool: 'bool' };
const WIDTH: Record<DType, number> = { f32: 4, f16: 2, bf16: 2, f8e4m3: 1, f8e5m2: 1, i32: 4, u8: 1, bool: 1 };
const isF = (d: DType) => d === 'f32' || d === 'f16' || d === 'bf16' || d === 'f8e4m3' || d === 'f8e5m2';
const f = Math.fround;
type Fp8 = 'f8e4m3' | 'f8e5m2';

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
/** Bits of |v| as f32 (the kernels' amax key: NaN patterns sort above +inf). */
const absBits = (v: number) => {
  F32[0] = v;
  return U32[0]! & 0x7fffffff;
};
/** The scale rule of kernels/fp8.cuh from the amax bits. */
function fp8Scale(bits: number, q: Fp8, pow2: boolean): number {
  if (bits > 0x7f800000) return NaN;
  U32[0] = bits;
  const s = f(F32[0]! / (q === 'f8e4m3' ? 448 : 57344));
  const c = s > 2 ** -126 ? s : 2 ** -126;
  F32[0] = c;
  const u = U32[0]!;
  if (!pow2 || u >= 0x7f800000 || (u & 0x7fffff) === 0) return c;
  U32[0] = ((u >>> 23) + 1) << 23;
  return F32[0]!;
}

/** What a kernel model gets to read and write the mock's "device" memory. */
export interface EmulatorIO {
  /** Element i of a tensor of dtype d at ptr, decoded to a number (floats to their f32 value). */
  load(d: DType, ptr: number, i: number): number;
  /** Stores a compute value with cast semantics (floats round once; `sat` saturates FP8). */
  store(d: DType, ptr: number, i: number, x: number, sat?: boolean): void;
  /** Raw element i of width w bytes. */
  raw(w: number, ptr: number, i: number): number | bigint;
  putRaw(w: number, ptr: number, i: number, x: number | bigint): void;
  /** A DataView of `bytes` bytes at ptr. */
  view(ptr: number, bytes: number): DataView;
}

/**
 * A JavaScript model of one kernel family, kept in its own file (test/mock/emu_*.ts) and added
 * with registerKernelModel: `args` are the launch's arguments in parameter order (pointers and
 * 64-bit integers as numbers; struct arguments as bytes).
 */
export type KernelModel = (m: RegExpMatchArray, args: any[], io: EmulatorIO, grid: readonly [number, number, number], block: readonly [number, number, number]) => void;
const MODELS: { pattern: RegExp; model: KernelModel }[] = [];
export function registerKernelModel(pattern: RegExp, model: KernelModel): void {
  MODELS.push({ pattern, model });
}

export function installEmulator(b: CudaBackend, koffi: any): { launches: Map<string, number> } {
  const launches = new Map<string, number>();
  const view = (ptr: number, bytes: number) => new DataView(koffi.view(BigInt(ptr), Math.max(bytes, 1)) as ArrayBuffer);
  const partials = new Map<number, unknown[]>();

  const load = (d: DType, ptr: number, i: number): number => {
    const w = WIDTH[d];
    const v = view(ptr + i * w, w);
    switch (d) {
      case 'f32': return v.getFloat32(0, true);
      case 'i32': return v.getInt32(0, true);
      case 'u8': return v.getUint8(0);
      case 'bool': return v.getUint8(0) ? 1 : 0;
      case 'f16': case 'bf16': return decodeToF32(d, new Uint16Array([v.getUint16(0, true)]))[0]!;
      default: return decodeToF32(d as 'f8e4m3', new Uint8Array([v.getUint8(0)]))[0]!;
    }
  };
  const raw = (w: number, ptr: number, i: number) => {
    const v = view(ptr + i * w, w);
    return w === 1 ? v.getUint8(0) : w === 2 ? v.getUint16(0, true) : w === 4 ? v.getUint32(0, true) : v.getBigUint64(0, true);
  };
  const putRaw = (w: number, ptr: number, i: number, x: number | bigint) => {
    const v = view(ptr + i * w, w);
    if (w === 1) v.setUint8(0, Number(x));
    else if (w === 2) v.setUint16(0, Number(x), true);
    else if (w === 4) v.setUint32(0, Number(x), true);
    else v.setBigUint64(0, BigInt(x), true);
  };
  /** Stores a compute value with cast semantics (floats round once; ints truncate and wrap). */
  const store = (d: DType, ptr: number, i: number, x: number, sat = false) => {
    const w = WIDTH[d];
    const v = view(ptr + i * w, w);
    switch (d) {
      case 'f32': v.setFloat32(0, x, true); break;
      case 'i32': v.setInt32(0, Number.isFinite(x) ? Math.trunc(x) | 0 : 0, true); break;
      case 'u8': v.setUint8(0, Number.isFinite(x) ? Math.trunc(x) & 0xff : 0); break;
      case 'bool': v.setUint8(0, x !== 0 ? 1 : 0); break;
      case 'f16': case 'bf16': v.setUint16(0, encodeF32(d, [x], undefined, sat)[0]!, true); break;
      default: v.setUint8(0, encodeF32(d as 'f8e4m3', [x], undefined, sat)[0]!);
    }
  };

  const UNARY: Record<string, (x: number, int: boolean) => number> = {
    neg: (x, i) => (i ? -x | 0 : -x), abs: (x, i) => (i ? Math.abs(x) | 0 : Math.abs(x)), sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : x),
    square: (x, i) => (i ? Math.imul(x, x) : f(x * x)), relu: (x) => (x > 0 ? x : x !== x ? x : 0), exp: (x) => f(Math.exp(x)),
    log: (x) => f(Math.log(x)), sqrt: (x) => f(Math.sqrt(x)), rsqrt: (x) => f(1 / f(Math.sqrt(x))), reciprocal: (x) => f(1 / x),
    sigmoid: (x) => f(1 / f(1 + f(Math.exp(-x)))), silu: (x) => f(x / f(1 + f(Math.exp(-x)))), tanh: (x) => f(Math.tanh(x)),
    sin: (x) => f(Math.sin(x)), cos: (x) => f(Math.cos(x)), floor: Math.floor, ceil: Math.ceil,
    round: (x) => { const r = Math.round(x); return Math.abs(x - Math.trunc(x)) === 0.5 ? 2 * Math.round(x / 2) : r; },
    logicalNot: (x) => (x === 0 ? 1 : 0),
  };
  const BINARY: Record<string, (a: number, c: number, int: boolean) => number> = {
    add: (a, c, i) => (i ? (a + c) | 0 : f(a + c)), sub: (a, c, i) => (i ? (a - c) | 0 : f(a - c)), mul: (a, c, i) => (i ? Math.imul(a, c) : f(a * c)),
    div: (a, c, i) => (i ? (c === 0 ? 0 : Math.trunc(a / c) | 0) : f(a / c)), pow: (a, c) => f(Math.pow(a, c)),
    maximum: (a, c) => (a !== a || c !== c ? NaN : a > c ? a : c), minimum: (a, c) => (a !== a || c !== c ? NaN : a < c ? a : c),
    equal: (a, c) => +(a === c), notEqual: (a, c) => +(a !== c), less: (a, c) => +(a < c), lessEqual: (a, c) => +(a <= c),
    greater: (a, c) => +(a > c), greaterEqual: (a, c) => +(a >= c), logicalAnd: (a, c) => +(a !== 0 && c !== 0),
    logicalOr: (a, c) => +(a !== 0 || c !== 0), logicalXor: (a, c) => +((a !== 0) !== (c !== 0)),
  };
  const CMP = new Set(['equal', 'notEqual', 'less', 'lessEqual', 'greater', 'greaterEqual', 'logicalAnd', 'logicalOr', 'logicalXor']);

  /** The Strides struct back from its bytes. */
  const strides = (bytes: Uint8Array) => {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const rank = dv.getInt32(0, true);
    const n = (at: number) => Number(dv.getBigInt64(at, true));
    const shape = Array.from({ length: rank }, (_, d) => n(8 + 8 * d));
    const st = [0, 1, 2, 3].map((k) => Array.from({ length: rank }, (_, d) => n(8 + 8 * MAX_RANK + 8 * (k * MAX_RANK + d))));
    const offsets = [0, 1, 2, 3].map((k) => n(8 + 8 * MAX_RANK + 8 * MAX_RANK * 4 + 8 * k));
    return { shape, strides: st, offsets };
  };

  type Acc = { v: number; i: number; m: number; s: number };
  const reducer = (op: string, d: DType) => {
    const int = !isF(d);
    const init = (): Acc => ({ v: op === 'max' ? -Infinity : op === 'min' ? Infinity : 0, i: -1, m: -Infinity, s: 0 });
    const combine = (a: Acc, c: Acc): Acc => {
      switch (op) {
        case 'sum': case 'mean': return { ...a, v: int ? a.v + c.v : f(a.v + c.v) };
        case 'max': return { ...a, v: a.v !== a.v ? a.v : c.v !== c.v ? c.v : c.v > a.v ? c.v : a.v };
        case 'min': return { ...a, v: a.v !== a.v ? a.v : c.v !== c.v ? c.v : c.v < a.v ? c.v : a.v };
        case 'logsumexp': {
          if (a.m !== a.m || c.m !== c.m) return { ...a, m: NaN, s: 0 };
          const m = Math.max(a.m, c.m);
          if (m === -Infinity) return { ...a, m, s: 0 };
          if (m === Infinity) return { ...a, m, s: 1 };
          return { ...a, m, s: f(a.s * Math.exp(a.m - m) + c.s * Math.exp(c.m - m)) };
        }
        default: {
          if (a.i < 0) return c;
          if (c.i < 0) return a;
          const an = a.v !== a.v, cn = c.v !== c.v;
          if (an || cn) return an && cn ? (c.i < a.i ? c : a) : an ? a : c;
          if (op === 'argmax' ? c.v > a.v : c.v < a.v) return c;
          return c.v === a.v && c.i < a.i ? c : a;
        }
      }
    };
    const add = (a: Acc, x: number, r: number) => combine(a, op === 'logsumexp' ? { v: 0, i: -1, m: x, s: 1 } : { v: x, i: r, m: 0, s: 0 });
    const out = (a: Acc, R: number, y: number, j: number) => {
      if (op === 'argmax' || op === 'argmin') return store('i32', y, j, a.i);
      if (op === 'mean') return store(d, y, j, f(a.v / R));
      if (op === 'logsumexp') return store(d, y, j, Number.isFinite(a.m) ? f(a.m + Math.log(a.s)) : a.m);
      return store(d, y, j, a.v);
    };
    return { init, add, combine, out };
  };

  const lse = (vals: number[]) => {
    let m = -Infinity;
    for (const v of vals) if (v > m || v !== v) m = v;
    let s = 0;
    for (const v of vals) s += Math.exp(v - m);
    return { m, s };
  };

  b.launch = (k: Kernel, grid: readonly [number, number, number], block: readonly [number, number, number]) => {
    const name = k.name;
    launches.set(name, (launches.get(name) ?? 0) + 1);
    const a = k.pack.kinds.map((kind, i) => {
      const bytes = k.pack.slot(i);
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (typeof kind === 'object') return bytes;
      switch (kind) {
        case 'ptr': case 'i64': return Number(dv.getBigInt64(0, true));
        case 'i32': return dv.getInt32(0, true);
        case 'u32': return dv.getUint32(0, true);
        case 'f32': return dv.getFloat32(0, true);
        case 'f64': return dv.getFloat64(0, true);
      }
    }) as any[];
    let m: RegExpMatchArray | null;
    if ((m = /^unary_(\w+)_([a-z0-9]+)$/.exec(name))) {
      const d = SFX[m[2]!]!;
      for (let i = 0; i < a[2]; i++) store(d, a[1], i, UNARY[m[1]!]!(load(d, a[0], i), !isF(d)));
    } else if ((m = /^clip_([a-z0-9]+)$/.exec(name))) {
      const d = SFX[m[1]!]!;
      for (let i = 0; i < a[2]; i++) {
        const v = load(d, a[0], i);
        store(d, a[1], i, v < a[3] ? a[3] : v > a[4] ? a[4] : v);
      }
    } else if ((m = /^binary_(\w+)_([a-z0-9]+)_(contig|sa|sb|bc)$/.exec(name))) {
      const [, op, s, v] = m;
      const d = SFX[s!]!;
      const od = CMP.has(op!) ? 'bool' : d;
      const plan = v === 'bc' ? strides(a[4]) : null;
      for (let i = 0; i < a[3]; i++) {
        const [ia, ib] = plan ? offsetsAt(plan, i) : [v === 'sa' ? 0 : i, v === 'sb' ? 0 : i];
        store(od, a[2], i, BINARY[op!]!(load(d, a[0], ia!), load(d, a[1], ib!), !isF(d)));
      }
    } else if ((m = /^cast_([a-z0-9]+)_([a-z0-9]+)$/.exec(name))) {
      const from = SFX[m[1]!]!, to = SFX[m[2]!]!;
      for (let i = 0; i < a[2]; i++) store(to, a[1], i, load(from, a[0], i), a[3] !== 0);
    } else if ((m = /^strided_copy_w(\d)$/.exec(name))) {
      const w = Number(m[1]);
      const plan = strides(a[3]);
      for (let i = 0; i < a[2]; i++) {
        const [s, t] = offsetsAt(plan, i);
        putRaw(w, a[1], t!, raw(w, a[0], s!));
      }
    } else if ((m = /^where_w(\d)$/.exec(name))) {
      const w = Number(m[1]);
      const plan = strides(a[5]);
      for (let i = 0; i < a[4]; i++) {
        const [oc, oa, ob] = offsetsAt(plan, i);
        putRaw(w, a[3], i, raw(1, a[0], oc!) ? raw(w, a[1], oa!) : raw(w, a[2], ob!));
      }
    } else if ((m = /^(gather|take_along)_w(\d)$/.exec(name))) {
      const w = Number(m[2]);
      const [x, idx, y, outer, n, J, inner] = a;
      for (let e = 0; e < outer * J * inner; e++) {
        const i = e % inner, o = Math.floor(e / (J * inner)), j = Math.floor(e / inner) % J;
        const v = load('i32', idx, m[1] === 'gather' ? j : e);
        const t = v < 0 ? v + n : v;
        putRaw(w, y, e, t < 0 || t >= n ? 0 : raw(w, x, (o * n + t) * inner + i));
      }
    } else if ((m = /^one_hot_w(\d)$/.exec(name))) {
      for (let e = 0; e < a[2] * a[3]; e++) putRaw(Number(m[1]), a[1], e, load('i32', a[0], Math.floor(e / a[3])) === e % a[3] ? a[4] : 0);
    } else if (name === 'causal_mask') {
      for (let e = 0; e < a[1] * a[2]; e++) putRaw(1, a[0], e, e % a[2] <= Math.floor(e / a[2]) + a[3] ? 1 : 0);
    } else if ((m = /^reduce_(\w+)_([a-z0-9]+)_(warp|block|final)$/.exec(name))) {
      const d = SFX[m[2]!]!;
      const r = reducer(m[1]!, d);
      if (m[3] === 'warp') {
        const [x, y, rows, R] = a;
        for (let row = 0; row < rows; row++) {
          let acc = r.init();
          for (let q = 0; q < R; q++) acc = r.add(acc, load(d, x, row * R + q), q);
          r.out(acc, R, y, row);
        }
      } else if (m[3] === 'block') {
        const [x, y, partial, outer, R, inner, chunk] = a;
        const P = grid[1];
        if (grid[0] !== outer * Math.ceil(inner / block[0])) throw new Error(`${name}: grid.x ${grid[0]} does not cover ${outer} x ${inner}`);
        const states: Acc[] = [];
        for (let p = 0; p < P; p++) {
          for (let o = 0; o < outer; o++) {
            for (let c = 0; c < inner; c++) {
              let acc = r.init();
              for (let q = p * chunk; q < Math.min(R, (p + 1) * chunk); q++) acc = r.add(acc, load(d, x, (o * R + q) * inner + c), q);
              if (P === 1) r.out(acc, R, y, o * inner + c);
              else states[p * outer * inner + o * inner + c] = acc;
            }
          }
        }
        if (P > 1) partials.set(partial, states);
      } else {
        const [partial, y, M, P, R] = a;
        const states = partials.get(partial) as Acc[];
        for (let j = 0; j < M; j++) {
          let acc = r.init();
          for (let p = 0; p < P; p++) acc = r.combine(acc, states[p * M + j]!);
          r.out(acc, R, y, j);
        }
      }
    } else if ((m = /^(softmax|log_softmax)_(rows|cols)_([a-z0-9]+)$/.exec(name))) {
      const d = SFX[m[3]!]!;
      const isSoftmax = m[1] === 'softmax';
      const [x, y, outer, len, inner] = m[2] === 'rows' ? [a[0], a[1], a[2], a[3], 1] : a;
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const at = (q: number) => (o * len + q) * inner + i;
          const vals = Array.from({ length: len }, (_, q) => load(d, x, at(q)));
          const { m: mx, s } = lse(vals);
          vals.forEach((v, q) => store(d, y, at(q), !Number.isFinite(mx) ? NaN : isSoftmax ? Math.exp(v - mx) / s : v - mx - Math.log(s)));
        }
      }
    } else if ((m = /^rms_norm_([a-z0-9]+)_([a-z0-9]+)$/.exec(name))) {
      const d = SFX[m[1]!]!, wd = SFX[m[2]!]!;
      const [x, w, y, rows, dim, eps] = a;
      for (let r = 0; r < rows; r++) {
        let ss = 0;
        for (let j = 0; j < dim; j++) ss += load(d, x, r * dim + j) ** 2;
        const inv = 1 / Math.sqrt(ss / dim + eps);
        for (let j = 0; j < dim; j++) store(d, y, r * dim + j, load(wd, w, j) * (load(d, x, r * dim + j) * inv));
      }
    } else if ((m = /^cross_entropy_rows_([a-z0-9]+)$/.exec(name))) {
      const d = SFX[m[1]!]!;
      const [lg, tg, loss, counted, rows, vocab, ignore] = a;
      for (let r = 0; r < rows; r++) {
        const t = load('i32', tg, r);
        const use = t >= 0 && t < vocab && t !== ignore;
        let l = 0;
        if (use) {
          const { m: mx, s } = lse(Array.from({ length: vocab }, (_, q) => load(d, lg, r * vocab + q)));
          l = (Number.isFinite(mx) ? mx + Math.log(s) : NaN) - load(d, lg, r * vocab + t);
        }
        store('f32', loss, r, l);
        if (counted) store('f32', counted, r, use ? 1 : 0);
      }
    } else if (name === 'cross_entropy_total') {
      const [loss, counted, y, rows, mode] = a;
      let s = 0, c = 0;
      for (let r = 0; r < rows; r++) {
        s += load('f32', loss, r);
        c += load('f32', counted, r);
      }
      store('f32', y, 0, mode === 1 ? s : c > 0 ? s / c : 0);
    } else if ((m = /^random_(uniform|normal)_([a-z0-9]+)$/.exec(name))) {
      const d = SFX[m[2]!]!;
      const [y, n, key0, key1, counterLo, counterHi, p, q] = a;
      const out = new Float32Array(n);
      if (m[1] === 'uniform') philoxUniformF32({ key0, key1, counterLo, counterHi }, p, q, out);
      else philoxNormalF32({ key0, key1, counterLo, counterHi }, p, q, out);
      out.forEach((v, i) => store(d, y, i, v));
    } else if ((m = /^arange_([a-z0-9]+)$/.exec(name))) {
      const d = SFX[m[1]!]!;
      for (let i = 0; i < a[1]; i++) store(d, a[0], i, isF(d) ? f(a[2] + i * a[3]) : a[2] + i * a[3]);
    } else if ((m = /^scatter_(init|add|store)_([a-z0-9]+)$/.exec(name))) {
      const d = SFX[m[2]!]!;
      const acc = isF(d) ? 'f32' : 'i32';
      if (m[1] === 'init') for (let e = 0; e < a[2]; e++) store(acc, a[1], e, load(d, a[0], e));
      else if (m[1] === 'store') for (let e = 0; e < a[2]; e++) store(d, a[1], e, load(acc, a[0], e));
      else {
        const [accP, idx, upd, outer, n, J, inner, along] = a;
        for (let o = 0; o < outer; o++) {
          for (let i = 0; i < inner; i++) {
            for (let j = 0; j < J; j++) {
              const u = (o * J + j) * inner + i;
              const v = load('i32', idx, along ? u : j);
              const t = v < 0 ? v + n : v;
              if (t < 0 || t >= n) continue;
              const at = (o * n + t) * inner + i;
              store(acc, accP, at, isF(d) ? f(load(acc, accP, at) + load(d, upd, u)) : (load(acc, accP, at) + load(d, upd, u)) | 0);
            }
          }
        }
      }
    } else if ((m = /^topk_(largest|smallest)_([a-z0-9]+)$/.exec(name))) {
      const d = SFX[m[2]!]!;
      const [x, vals, inds, outer, n, inner, kk] = a;
      const largest = m[1] === 'largest';
      if (grid[0] !== outer * inner) throw new Error(`${name}: grid.x ${grid[0]} is not ${outer} x ${inner}`);
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const items = Array.from({ length: n }, (_, p) => ({ v: load(d, x, (o * n + p) * inner + i), p }));
          items.sort((u, w) => {
            const un = u.v !== u.v, wn = w.v !== w.v;
            if (un || wn) return un && wn ? u.p - w.p : (largest ? (un ? -1 : 1) : un ? 1 : -1);
            if (u.v === w.v) return u.p - w.p;
            return largest ? w.v - u.v : u.v - w.v;
          });
          for (let r = 0; r < kk; r++) {
            const at = (o * kk + r) * inner + i;
            putRaw(WIDTH[d], vals, at, raw(WIDTH[d], x, (o * n + items[r]!.p) * inner + i));
            store('i32', inds, at, items[r]!.p);
          }
        }
      }
    } else if ((m = /^cumsum_([a-z0-9]+)$/.exec(name))) {
      const d = SFX[m[1]!]!;
      const [x, y, outer, n, inner, exclusive, reverse] = a;
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          let acc = 0;
          for (let s = 0; s < n; s++) {
            const q = reverse ? n - 1 - s : s;
            const at = (o * n + q) * inner + i;
            const v = load(d, x, at);
            if (exclusive) store(d, y, at, acc);
            acc = isF(d) ? f(acc + v) : (acc + v) | 0;
            if (!exclusive) store(d, y, at, acc);
          }
        }
      }
    } else if ((m = /^fp8_amax_([a-z0-9]+)$/.exec(name))) {
      const d = SFX[m[1]!]!;
      const [x, amax, n] = a;
      let bits = load('i32', amax, 0) >>> 0;
      for (let i = 0; i < n; i++) bits = Math.max(bits, absBits(load(d, x, i)));
      putRaw(4, amax, 0, bits);
    } else if ((m = /^fp8_(tiles|rows|tensor|blocks|transpose|swiglu)_([a-z0-9]+)_(e4m3|e5m2)(?:_v2)?$/.exec(name))) {
      const [, kind, s, qs] = m;
      const d = SFX[s!]!, qd = SFX[qs!]! as Fp8;
      const [x, q, sc] = a;
      // Quantizes the groups (lists of [value, code index]) into q, scale g into sc[g].
      const groups = (list: [number, number][][], pow2: number, qp = q, sp = sc) => list.forEach((g, gi) => {
        let bits = 0;
        for (const [v] of g) bits = Math.max(bits, absBits(v));
        const scale = fp8Scale(bits, qd, pow2 !== 0);
        store('f32', sp, gi, scale);
        for (const [v, i] of g) putRaw(1, qp, i, encodeF32(qd, [f(v / scale)], undefined, true)[0]!);
      });
      const tiles = (rows: number, K: number, at: (r: number, k: number) => number) => {
        const out: [number, number][][] = [];
        for (let r = 0; r < rows; r++) {
          for (let t = 0; t < Math.ceil(K / 128); t++) {
            const g: [number, number][] = [];
            for (let k = t * 128; k < Math.min(K, t * 128 + 128); k++) g.push([at(r, k), r * K + k]);
            out.push(g);
          }
        }
        return out;
      };
      if (kind === 'tiles' || kind === 'rows') {
        const [, , , rows, K, pow2] = a;
        if (kind === 'tiles' && grid[0] * block[0] < rows * Math.ceil(K / 128) * 16) throw new Error(`${name}: grid ${grid[0]} x ${block[0]} does not cover the tiles`);
        if (kind === 'rows' && grid[0] !== rows) throw new Error(`${name}: grid.x ${grid[0]} is not ${rows} rows`);
        const at = (r: number, k: number) => load(d, x, r * K + k);
        groups(kind === 'tiles' ? tiles(rows, K, at) : Array.from({ length: rows }, (_, r) => Array.from({ length: K }, (_, k) => [at(r, k), r * K + k] as [number, number])), pow2);
      } else if (kind === 'swiglu') {
        const [, , , rows, I, pow2] = a;
        const silu = UNARY.silu!;
        groups(tiles(rows, I, (r, k) => f(silu(load(d, x, r * 2 * I + k), false) * load(d, x, r * 2 * I + I + k))), pow2);
      } else if (kind === 'tensor') {
        const [, , , amax, n, pow2] = a;
        const scale = fp8Scale(load('i32', amax, 0) >>> 0, qd, pow2 !== 0);
        store('f32', sc, 0, scale);
        for (let i = 0; i < n; i++) putRaw(1, q, i, encodeF32(qd, [f(load(d, x, i) / scale)], undefined, true)[0]!);
      } else if (kind === 'blocks') {
        const [, , , N, K, nblocks, pow2] = a;
        if (grid[0] !== nblocks) throw new Error(`${name}: grid.x ${grid[0]} is not ${nblocks} blocks`);
        // v1 covers a 128x128 block with 256 threads (8 rows each), v2 with 512 (4 rows each).
        const threads = name.endsWith('_v2') ? 512 : 256;
        if (block[0] !== threads) throw new Error(`${name}: ${block[0]} threads a block, the kernel is written for ${threads}`);
        const [NB, KB] = [Math.ceil(N / 128), Math.ceil(K / 128)];
        const out: [number, number][][] = [];
        for (let blk = 0; blk < nblocks; blk++) {
          const bb = Math.floor(blk / (NB * KB)), nb = Math.floor(blk / KB) % NB, kb = blk % KB;
          const g: [number, number][] = [];
          for (let r = nb * 128; r < Math.min(N, nb * 128 + 128); r++) {
            for (let k = kb * 128; k < Math.min(K, kb * 128 + 128); k++) g.push([load(d, x, (bb * N + r) * K + k), (bb * N + r) * K + k]);
          }
          out.push(g);
        }
        groups(out, pow2);
      } else {
        const [, , , qT, sT, M, K, pow2] = a;
        if (grid[0] !== Math.ceil(M / 128) * Math.ceil(K / 128)) throw new Error(`${name}: grid.x ${grid[0]} does not cover [${M}, ${K}]`);
        groups(tiles(M, K, (r, k) => load(d, x, r * K + k)), pow2);
        groups(tiles(K, M, (k, r) => load(d, x, r * K + k)), pow2, qT, sT);
      }
    } else if ((m = /^fp8_rmsnorm_([a-z0-9]+)_([a-z0-9]+)_(e4m3|e5m2)(?:_v2)?$/.exec(name))) {
      const d = SFX[m[1]!]!, wd = SFX[m[2]!]!, qd = SFX[m[3]!]! as Fp8;
      const [x, w, q, sc, rows, dim, eps, pow2, vthreads] = a;
      if (grid[0] !== rows) throw new Error(`${name}: grid.x ${grid[0]} is not ${rows} rows`);
      // v2 gets the rmsNorm kernel's block size (its summation order) and runs min(it, 256)
      // threads, each playing the rest (a power of two, so they divide evenly).
      if (name.endsWith('_v2')) {
        const want = Math.min(1024, Math.max(32, 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(dim / 8))))));
        if (vthreads !== want) throw new Error(`${name}: vthreads ${vthreads}, the rmsNorm kernel runs ${want} for d = ${dim}`);
        if (block[0] !== Math.min(want, 256)) throw new Error(`${name}: ${block[0]} threads a block, expected ${Math.min(want, 256)}`);
      }
      const T = Math.ceil(dim / 128);
      for (let r = 0; r < rows; r++) {
        // As the rms_norm model above (the composite's kernel), then the tile rule.
        let ss = 0;
        for (let j = 0; j < dim; j++) ss += load(d, x, r * dim + j) ** 2;
        const inv = 1 / Math.sqrt(ss / dim + eps);
        const y = Array.from({ length: dim }, (_, j) => f(load(wd, w, j) * (load(d, x, r * dim + j) * inv)));
        for (let t = 0; t < T; t++) {
          const seg = y.slice(t * 128, Math.min(dim, t * 128 + 128));
          const scale = fp8Scale(seg.reduce((acc, v) => Math.max(acc, absBits(v)), 0), qd, pow2 !== 0);
          store('f32', sc, r * T + t, scale);
          seg.forEach((v, j) => putRaw(1, q, r * dim + t * 128 + j, encodeF32(qd, [f(v / scale)], undefined, true)[0]!));
        }
      }
    } else if ((m = /^attn_lightning_step_([a-z0-9]+)_v(4|1)$/.exec(name))) {
      // kernels/attention.cuh lightning_step, block by block: the state elements of this block's
      // rows and column tile, the tokens in passes of 4, the per-block output (or partial).
      const d = SFX[m[1]!]!, vec = Number(m[2]);
      const [q, k, v, decay, s0, out, s1, opart, B, Tn, H, D, Dv, scale, rowChunks, rowsPerChunk] = a;
      if (vec === 4 && Dv % 4 !== 0) throw new Error(`${name}: vector kernel for Dv ${Dv}`);
      if (block[0] !== 256) throw new Error(`${name}: ${block[0]} threads a block, the kernel is written for 256`);
      const COLS = 32 * vec, colTiles = Math.ceil(Dv / COLS);
      if (grid[0] !== B * H || grid[1] !== colTiles * rowChunks) throw new Error(`${name}: grid [${grid}] is not [${B * H}, ${colTiles * rowChunks}]`);
      if (rowChunks * rowsPerChunk < D || (rowChunks - 1) * rowsPerChunk >= D) throw new Error(`${name}: ${rowChunks} chunks of ${rowsPerChunk} rows do not tile ${D}`);
      if (rowChunks > 1 && !opart) throw new Error(`${name}: row chunks without a partial buffer`);
      for (let bh = 0; bh < grid[0]; bh++) {
        const b0 = Math.floor(bh / H), h = bh % H;
        const lambda = f(Math.exp(-load('f32', decay, h)));
        for (let y = 0; y < grid[1]; y++) {
          const ct = y % colTiles, rc = Math.floor(y / colTiles);
          const d0 = rc * rowsPerChunk, d1 = Math.min(D, d0 + rowsPerChunk);
          for (let t0 = 0; t0 < Tn; t0 += 4) {
            const nt = Math.min(4, Tn - t0);
            for (let c = ct * COLS; c < Math.min(Dv, ct * COLS + COLS); c++) {
              const acc = [0, 0, 0, 0];
              for (let dd = d0; dd < d1; dd++) {
                const at = (bh * D + dd) * Dv + c;
                let sv = load('f32', t0 === 0 ? s0 : s1, at);
                for (let t = 0; t < nt; t++) {
                  const qi = ((b0 * Tn + t0 + t) * H + h) * D + dd;
                  sv = f(lambda * sv + f(load(d, k, qi) * load(d, v, ((b0 * Tn + t0 + t) * H + h) * Dv + c)));
                  acc[t] = f(acc[t]! + f(load(d, q, qi) * sv));
                }
                store('f32', s1, at, sv);
              }
              for (let t = 0; t < nt; t++) {
                const oi = ((b0 * Tn + t0 + t) * H + h) * Dv + c;
                if (rowChunks === 1) store(d, out, oi, f(acc[t]! * scale));
                else store('f32', opart, rc * B * Tn * H * Dv + oi, acc[t]!);
              }
            }
          }
        }
      }
    } else if ((m = /^attn_lightning_combine_([a-z0-9]+)$/.exec(name))) {
      const d = SFX[m[1]!]!;
      const [opart, out, n, rowChunks, scale] = a;
      for (let i = 0; i < n; i++) {
        let o = 0;
        for (let r = 0; r < rowChunks; r++) o = f(o + load('f32', opart, r * n + i));
        store(d, out, i, f(o * scale));
      }
    } else if ((m = /^attn_softmax_split_([a-z0-9]+)_d(4|1)_v(4|1)$/.exec(name))) {
      // kernels/attention.cuh softmax_attn_split, block by block: this split's keys of the tile's
      // rows, online softmax per tile of 64 keys, partials (m, l, acc) at their slots.
      const d = SFX[m[1]!]!, vd = Number(m[2]), vv = Number(m[3]);
      const [q, k, v, pm, pl, pacc, Tq, Tk, H, Hkv, D, Dv, q0, nq, k0, nk, kvOffset, causal, scale, chunk, nsplit] = a;
      if ((vd === 4 && D % 4 !== 0) || (vv === 4 && Dv % 4 !== 0)) throw new Error(`${name}: vector kernel for D ${D}, Dv ${Dv}`);
      if (block[0] !== 128) throw new Error(`${name}: ${block[0]} threads a block, the kernel is written for 128`);
      const G = H / Hkv, R = nq * G, rowTiles = Math.ceil(R / 8), COLS = 32 * vv, colTiles = Math.ceil(Dv / COLS);
      if (grid[0] !== nsplit * rowTiles * colTiles) throw new Error(`${name}: grid.x ${grid[0]} is not ${nsplit} splits x ${rowTiles} row tiles x ${colTiles} column tiles`);
      if (chunk % 64 !== 0) throw new Error(`${name}: chunk ${chunk} is not a multiple of the key tile`);
      for (let bh = 0; bh < grid[1]; bh++) {
        const b0 = Math.floor(bh / Hkv), hk = bh % Hkv;
        for (let x = 0; x < grid[0]; x++) {
          const sp = x % nsplit, rt = Math.floor(x / nsplit) % rowTiles, ct = Math.floor(x / (nsplit * rowTiles));
          const r0 = rt * 8, nr = Math.min(8, R - r0);
          const lastI = Math.floor((r0 + nr - 1) / G);
          const hi = causal ? Math.min(nk, kvOffset + lastI + 1) : nk;
          const kBegin = sp * chunk, kEnd = Math.min(hi, kBegin + chunk);
          for (let r = 0; r < nr; r++) {
            const rr = r0 + r, i = Math.floor(rr / G), hq = hk * G + (rr % G);
            const qrow = Array.from({ length: D }, (_, c) => load(d, q, ((b0 * Tq + q0 + i) * H + hq) * D + c));
            let mr = -Infinity, lr = 0;
            const acc = new Array<number>(Dv).fill(0);
            for (let kt = kBegin; kt < kEnd; kt += 64) {
              const sc: number[] = [];
              for (let j = kt; j < Math.min(kEnd, kt + 64); j++) {
                let dot = 0;
                for (let c = 0; c < D; c++) dot = f(dot + f(qrow[c]! * load(d, k, ((b0 * Tk + k0 + j) * Hkv + hk) * D + c)));
                sc.push(!causal || j <= kvOffset + i ? f(dot * scale) : -Infinity);
              }
              const mn = Math.max(mr, ...sc);
              const p = sc.map((z) => (z === -Infinity ? 0 : f(Math.exp(z - mn))));
              const al = mn === -Infinity ? 1 : f(Math.exp(mr - mn));
              lr = f(f(lr * al) + p.reduce((u, w) => f(u + w), 0));
              mr = mn;
              for (let c = 0; c < Dv; c++) {
                let o = f(acc[c]! * al);
                p.forEach((pj, jj) => { o = f(o + f(pj * load(d, v, ((b0 * Tk + k0 + kt + jj) * Hkv + hk) * Dv + c))); });
                acc[c] = o;
              }
            }
            const slot = ((bh * R + rr) * nsplit + sp);
            for (let c = ct * COLS; c < Math.min(Dv, ct * COLS + COLS); c++) store('f32', pacc, slot * Dv + c, acc[c]!);
            if (ct === 0) {
              store('f32', pm, slot, mr);
              store('f32', pl, slot, lr);
            }
          }
        }
      }
    } else if ((m = /^attn_softmax_combine_([a-z0-9]+)$/.exec(name))) {
      const d = SFX[m[1]!]!;
      const [pm, pl, pacc, out, lseOut, Tq, H, Hkv, Dv, q0, nq, nsplit] = a;
      const G = H / Hkv, R = nq * G;
      if (grid[0] !== R) throw new Error(`${name}: grid.x ${grid[0]} is not ${R} rows`);
      for (let bh = 0; bh < grid[1]; bh++) {
        const b0 = Math.floor(bh / Hkv), hk = bh % Hkv;
        for (let r = 0; r < R; r++) {
          const i = Math.floor(r / G), h = hk * G + (r % G);
          const p0 = (bh * R + r) * nsplit;
          const ms = Array.from({ length: nsplit }, (_, s2) => load('f32', pm, p0 + s2));
          const M = Math.max(...ms);
          let L = 0;
          ms.forEach((mm, s2) => { if (mm !== -Infinity) L = f(L + f(f(Math.exp(mm - M)) * load('f32', pl, p0 + s2))); });
          for (let c = 0; c < Dv; c++) {
            let o = 0;
            ms.forEach((mm, s2) => { if (mm !== -Infinity) o = f(o + f(f(Math.exp(mm - M)) * load('f32', pacc, (p0 + s2) * Dv + c))); });
            store(d, out, ((b0 * Tq + q0 + i) * H + h) * Dv + c, f(o / L));
          }
          store('f32', lseOut, (b0 * H + h) * Tq + q0 + i, f(M + Math.log(L)));
        }
      }
    } else if ((m = /^attn_rope_([a-z0-9]+)$/.exec(name))) {
      const d = SFX[m[1]!]!;
      const [x, pos, inv, y, rows, Tn, H, D, rot, perBatch, inverse] = a;
      const half = rot / 2, per = half + (D - rot);
      // The kernel's work items: a grid-stride loop, so any grid covers them; check it launched some.
      if (grid[0] < 1 || block[0] !== 256) throw new Error(`${name}: launch [${grid}] x [${block}]`);
      for (let w = 0; w < rows * H * per; w++) {
        const j = w % per, rh = Math.floor(w / per), base = rh * D;
        if (j >= half) {
          const c = base + rot + (j - half);
          store(d, y, c, load(d, x, c));
          continue;
        }
        const row = Math.floor(rh / H);
        const p = load('i32', pos, perBatch ? row : row % Tn);
        const ang = f(f(p) * load('f32', inv, j));
        const c = f(Math.cos(ang));
        const sn = inverse ? -f(Math.sin(ang)) : f(Math.sin(ang));
        const x1 = load(d, x, base + j), x2 = load(d, x, base + j + half);
        store(d, y, base + j, f(f(x1 * c) - f(x2 * sn)));
        store(d, y, base + j + half, f(f(x2 * c) + f(x1 * sn)));
      }
    } else {
      const hit = MODELS.find((x) => x.pattern.test(name));
      if (!hit) throw new Error(`emulator: no model of kernel ${name}`);
      hit.model(hit.pattern.exec(name)!, a, { load, store, raw: raw as EmulatorIO['raw'], putRaw, view }, grid, block);
    }
  };
  return { launches };
}
