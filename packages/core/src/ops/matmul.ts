/**
 * Matrix multiplication, batched with NumPy broadcasting of the batch dims, with transposes:
 *   a: [..., M, K] (or [..., K, M] with transposeA),  b: [..., K, N] (or [..., N, K] with transposeB)
 *   out: [..., M, N], dtype of the inputs, accumulation in f32 (or wider).
 */
import { defineOp } from '../op.js';
import { FLOAT_DTYPES } from '../dtype/dtype.js';
import { runOp1 } from '../engine.js';
import { broadcastShapes } from '../shape.js';
import { ShapeError, describeShape } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { assertSameDType, reduceToShape } from './util.js';

export interface MatmulAttrs extends Record<string, unknown> {
  transposeA: boolean;
  transposeB: boolean;
}

export interface MatmulOptions {
  transposeA?: boolean;
  transposeB?: boolean;
}

defineOp<MatmulAttrs>({
  name: 'matmul',
  doc: 'batched matrix product with optional transposes of the last two dims',
  inputs: [{ name: 'a', dtypes: FLOAT_DTYPES }, { name: 'b', dtypes: FLOAT_DTYPES }],
  attrs: { transposeA: { kind: 'bool', default: false }, transposeB: { kind: 'bool', default: false } },
  infer: ([a, b], { transposeA, transposeB }) => {
    const dt = assertSameDType('matmul', [a!, b!], ['a', 'b']);
    if (a!.shape.length < 2 || b!.shape.length < 2) {
      throw new ShapeError(`matmul: inputs must have rank >= 2, got ${describeShape(a!.shape)} and ${describeShape(b!.shape)}`);
    }
    const ra = a!.shape.length;
    const rb = b!.shape.length;
    const m = a!.shape[transposeA ? ra - 1 : ra - 2]!;
    const ka = a!.shape[transposeA ? ra - 2 : ra - 1]!;
    const kb = b!.shape[transposeB ? rb - 1 : rb - 2]!;
    const n = b!.shape[transposeB ? rb - 2 : rb - 1]!;
    if (ka !== kb) {
      throw new ShapeError(
        `matmul: inner dimensions differ: a ${describeShape(a!.shape)}${transposeA ? '^T' : ''} has K=${ka}, b ${describeShape(b!.shape)}${transposeB ? '^T' : ''} has K=${kb}`,
      );
    }
    const batch = broadcastShapes('matmul (batch dims)', a!.shape.slice(0, -2), b!.shape.slice(0, -2));
    return [{ shape: [...batch, m, n], dtype: dt }];
  },
  grad: ({ inputs: [a, b], dys: [dy], attrs: { transposeA: tA, transposeB: tB } }) => {
    // C = op(A) op(B); dA and dB written so no explicit transpose copy is needed.
    let da: Tensor;
    let db: Tensor;
    if (!tA && !tB) {
      da = matmul(dy!, b!, { transposeB: true });
      db = matmul(a!, dy!, { transposeA: true });
    } else if (!tA && tB) {
      da = matmul(dy!, b!);
      db = matmul(dy!, a!, { transposeA: true });
    } else if (tA && !tB) {
      da = matmul(b!, dy!, { transposeB: true });
      db = matmul(a!, dy!);
    } else {
      da = matmul(b!, dy!, { transposeA: true, transposeB: true });
      db = matmul(dy!, a!, { transposeA: true, transposeB: true });
    }
    return [reduceToShape(da, a!.shape), reduceToShape(db, b!.shape)];
  },
});

export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  return runOp1('matmul', [a, b], { transposeA: options.transposeA ?? false, transposeB: options.transposeB ?? false });
}
