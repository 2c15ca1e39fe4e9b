// Elementwise kernels against the CPU backend on random inputs (same storage bytes on both),
// every accepted dtype, broadcasting shapes including size-1 dims and scalars.
import { describe, it } from 'vitest';
import { BINARY_OPS, COMPARISON_OPS, LOGICAL_OPS, UNARY_OPS, getOpDef, tensor, type DType, type Tensor } from '@ring-linear/core';
import { newSeed, rng, webgpu } from './helpers.js';
import { compareOp, rand } from './compare.js';

const { gpu, reason } = await webgpu();

const SHAPES: [number[], number[]][] = [
  [[7, 5], [7, 5]],
  [[3, 1, 5], [4, 1]],
  [[], [6]],
  [[2, 3], [1]],
  [[1, 9, 1], [2, 1, 3]],
  [[1027], [1027]],
];

const compare = (op: string, inputs: Tensor[], attrs?: Record<string, unknown>, tol?: [number, number]) =>
  compareOp(gpu!, op, inputs, attrs, tol);

/** One dtype of each compute kind (and bf16 for the low-precision load/store path). */
const KINDS: readonly DType[] = ['f32', 'bf16', 'i32', 'u8', 'bool'];

const POSITIVE = new Set(['log', 'sqrt', 'rsqrt', 'pow']);

describe.skipIf(!gpu)(`elementwise kernels vs CPU (${gpu?.capabilities.device ?? reason})`, () => {
  it('unary ops, every accepted dtype', async () => {
    const r = rng(newSeed('unary'));
    for (const op of UNARY_OPS) {
      // f32, bf16 (decode/encode around the f32 math) and the integer/bool kinds; the
      // conformance suite runs every dtype.
      for (const dtype of getOpDef(op)!.inputs[0]!.dtypes!.filter((d) => KINDS.includes(d))) {
        const x = rand(r, [5, 13], dtype, { positive: POSITIVE.has(op), scale: op === 'exp' ? 3 : 4 });
        await compare(op, [x]);
      }
    }
  });

  it('unary special values (NaN, +-inf, +-0, negatives) follow the CPU', async () => {
    const x = tensor([NaN, Infinity, -Infinity, 0, -0, -1, 1e-30, 100, -100, 0.5, 2.5, -2.5, 1e38], [13], 'f32');
    // sin/cos of huge arguments need a reduction this backend does not do (see EW_HELPERS).
    const trig = tensor([NaN, Infinity, -Infinity, 0, -0, -1, 1e-30, 100, -100, 0.5, 2.5, -2.5, 5000.3, 3.14159265, 1.5707964], [15], 'f32');
    for (const op of UNARY_OPS) {
      if (op === 'logicalNot') continue;
      await compare(op, [op === 'sin' || op === 'cos' ? trig : x]);
    }
  });

  it('binary ops with broadcasting, every accepted dtype', async () => {
    const r = rng(newSeed('binary'));
    for (const op of [...BINARY_OPS, ...COMPARISON_OPS, ...LOGICAL_OPS]) {
      for (const dtype of getOpDef(op)!.inputs[0]!.dtypes!.filter((d) => KINDS.includes(d))) {
        // Every shape pair for f32; a same-shape and a broadcasting pair for the others (the
        // conformance suite covers more; SwiftShader compiles are slow).
        for (const [sa, sb] of dtype === 'f32' ? SHAPES : [SHAPES[0]!, SHAPES[1]!]) {
          const a = rand(r, sa, dtype, { positive: op === 'pow' });
          const b = rand(r, sb, dtype, { positive: op === 'div' && dtype === 'f8e4m3' });
          await compare(op, [a, b]);
        }
      }
    }
  });

  it('binary special values and integer edge cases', async () => {
    const sp = [NaN, Infinity, -Infinity, 0, -0, 2, -2, 0.5, -3];
    const a = tensor(sp.flatMap((v) => sp.map(() => v)), [sp.length * sp.length], 'f32');
    const b = tensor(sp.flatMap(() => sp), [sp.length * sp.length], 'f32');
    for (const op of [...BINARY_OPS, ...COMPARISON_OPS]) await compare(op, [a, b]);
    const ia = tensor([2147483647, -2147483648, 7, -7, 7, 0, 100000, -5], [8], 'i32');
    const ib = tensor([1, -1, 2, 2, 0, 0, 100000, 3], [8], 'i32');
    for (const op of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum']) await compare(op, [ia, ib]);
    const ua = tensor([250, 3, 7, 0, 255], [5], 'u8');
    const ub = tensor([10, 5, 0, 1, 255], [5], 'u8');
    for (const op of ['add', 'sub', 'mul', 'div']) await compare(op, [ua, ub]);
  });

  it('where, cast (all dtype pairs, both fp8 modes), clip, copy', async () => {
    const r = rng(newSeed('where/cast'));
    const DT: DType[] = ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2', 'i32', 'u8', 'bool'];
    for (const dt of DT) {
      const c = rand(r, [4, 1, 6], 'bool');
      await compare('where', [c, rand(r, [3, 6], dt), rand(r, [1], dt)]);
      await compare('copy', [rand(r, [3, 7], dt)]);
      for (const to of DT) {
        if (to === dt) continue;
        const x = rand(r, [37], dt, { scale: 500 });
        await compare('cast', [x], { dtype: to, saturate: false }, [0, 0]);
        if (to.startsWith('f8')) await compare('cast', [x], { dtype: to, saturate: true }, [0, 0]);
      }
    }
    for (const dt of ['f32', 'bf16', 'i32', 'u8'] as DType[]) {
      await compare('clip', [rand(r, [5, 5], dt, { scale: 3 })], { min: -1.5, max: 2.25 });
      await compare('clip', [rand(r, [9], dt, { scale: 3 })], { min: -Infinity, max: 1e12 });
    }
  });

  it('fill and broadcastTo, every dtype', async () => {
    const r = rng(newSeed('fill'));
    for (const dt of ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2', 'i32', 'u8', 'bool'] as DType[]) {
      for (const v of [1.7, -3, 1e6, 0.1]) {
        await compare('fill', [], { shape: [3, 5], dtype: dt, value: v }, [0, 0]);
      }
      await compare('broadcastTo', [rand(r, [3, 1, 2], dt)], { shape: [2, 3, 5, 2] }, [0, 0]);
    }
  });
});
