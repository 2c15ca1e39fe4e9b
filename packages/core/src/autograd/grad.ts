/**
 * Reverse-mode autograd over the recorded ops. One API:
 *
 *   const { value, grads } = valueAndGrad(() => loss(model, batch), params);
 *
 * runs the function with a tape watching `params`, then walks the tape backwards using each op's
 * gradient definition. Everything the forward and backward passes made is disposed before it
 * returns, except `value` and `grads`, so training loops run at flat memory by construction.
 */
import { ENGINE } from '../engine_state.js';
import { GradientError, describeShape } from '../errors.js';
import { internalRef, noGrad, runOp1, tidy, withBackend } from '../engine.js';
import { shapesEqual } from '../shape.js';
import { Tensor } from '../tensor.js';
import { Tape } from './tape.js';

export interface ValueAndGrad {
  /** The function's output (a scalar unless `dy` was given). */
  readonly value: Tensor;
  /** One gradient per watched tensor, same shape and dtype (zeros where it did not contribute). */
  readonly grads: Tensor[];
}

export interface GradOptions {
  /** Gradient of the output; required when the output is not a scalar. */
  readonly dy?: Tensor;
}

export function valueAndGrad(f: () => Tensor, xs: readonly Tensor[], options: GradOptions = {}): ValueAndGrad {
  for (const [i, x] of xs.entries()) x.live(`valueAndGrad: watched tensor ${i}`);
  const tape = new Tape(xs);
  try {
    return tidy(() => {
      ENGINE.tapes.push(tape);
      let y: Tensor;
      try {
        y = f();
      } finally {
        ENGINE.tapes.splice(ENGINE.tapes.indexOf(tape), 1);
      }
      if (!(y instanceof Tensor)) throw new GradientError(`valueAndGrad: the function must return a Tensor, got ${typeof y}`);
      const grads = withBackend(y.live('valueAndGrad').backend, () => noGrad(() => backward(tape, y, xs, options.dy)));
      return { value: y, grads };
    });
  } finally {
    tape.release();
  }
}

/** Gradients only; see valueAndGrad. */
export function grad(f: () => Tensor, xs: readonly Tensor[], options: GradOptions = {}): Tensor[] {
  const { value, grads } = valueAndGrad(f, xs, options);
  value.dispose();
  return grads;
}

function fill(like: Tensor, v: number): Tensor {
  return runOp1('fill', [], { shape: [...like.shape], dtype: like.dtype, value: v });
}

function backward(tape: Tape, y: Tensor, xs: readonly Tensor[], dy: Tensor | undefined): Tensor[] {
  if (dy === undefined && y.size !== 1) {
    throw new GradientError(`valueAndGrad: the function returned shape ${describeShape(y.shape)}; pass options.dy for a non-scalar output`);
  }
  if (dy !== undefined && !shapesEqual(dy.shape, y.shape)) {
    throw new GradientError(`valueAndGrad: dy has shape ${describeShape(dy.shape)}, the output has ${describeShape(y.shape)}`);
  }
  const grads = new Map<number, Tensor>();
  grads.set(y.id, dy !== undefined ? internalRef(dy) : fill(y, 1));
  const watched = new Set(xs.map((x) => x.id));

  for (let n = tape.nodes.length - 1; n >= 0; n--) {
    const node = tape.nodes[n]!;
    if (!node.outputIds.some((id) => grads.has(id))) continue;
    if (!node.def.grad) {
      throw new GradientError(`no gradient is defined for op '${node.def.name}', but a gradient flows through it`);
    }
    const dys = node.outputIds.map((id, i) => grads.get(id) ?? fill(node.outputs[i]!, 0));
    const dxs = node.def.grad({ inputs: node.inputs, outputs: node.outputs, attrs: node.attrs, dys });
    // Candidates for early freeing: consumed output gradients, gradients made here, and
    // accumulations they replace. Freed unless still held by the map (the scope frees the rest).
    const candidates = new Set<Tensor>(dys);
    node.inputIds.forEach((id, i) => {
      const dx = dxs[i];
      if (!dx) return;
      candidates.add(dx);
      if (!tape.tracked.has(id)) return;
      const inp = node.inputs[i]!;
      if (!shapesEqual(dx.shape, inp.shape)) {
        throw new GradientError(
          `gradient of '${node.def.name}' for input ${i} has shape ${describeShape(dx.shape)}, the input has ${describeShape(inp.shape)}`,
        );
      }
      const dxc = dx.dtype === inp.dtype ? dx : runOp1('cast', [dx], { dtype: inp.dtype });
      candidates.add(dxc);
      const prev = grads.get(id);
      if (prev) candidates.add(prev);
      grads.set(id, prev ? runOp1('add', [prev, dxc]) : dxc);
    });
    for (const id of node.outputIds) if (!watched.has(id)) grads.delete(id);
    const held = new Set(grads.values());
    const saved = new Set([...node.inputs, ...node.outputs]);
    for (const c of candidates) if (!held.has(c) && !saved.has(c)) c.dispose();
  }
  return xs.map((x) => grads.get(x.id) ?? fill(x, 0));
}
