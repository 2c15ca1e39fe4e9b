import { ShapeError, AttrError, describeShape } from './errors.js';

export type Shape = readonly number[];

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function assertValidShape(shape: unknown, what: string): asserts shape is number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new ShapeError(`${what}: expected a shape (array of non-negative integers), got ${JSON.stringify(shape)}`);
  }
}

/** NumPy broadcasting of two shapes; throws a ShapeError naming the op. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(
        `${op}: shapes ${describeShape(a)} and ${describeShape(b)} do not broadcast (dimension ${i} of the result: ${da} vs ${db})`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

export function broadcastShapesN(op: string, shapes: Shape[]): number[] {
  return shapes.reduce<number[]>((acc, s) => broadcastShapes(op, acc, s), []);
}

/** Normalizes a possibly negative axis against a rank; throws AttrError when out of range. */
export function normalizeAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= Math.max(rank, 1)) {
    throw new AttrError(`${op}: axis must be an integer in [${-rank}, ${Math.max(rank, 1) - 1}] for a rank-${rank} tensor, got ${axis}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Normalizes a list of axes (null = all), sorted, without duplicates. */
export function normalizeAxes(op: string, axes: number | readonly number[] | null | undefined, rank: number): number[] {
  if (axes === null || axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = list.map((a) => normalizeAxis(op, a, rank));
  const uniq = [...new Set(out)].sort((x, y) => x - y);
  if (uniq.length !== out.length) throw new AttrError(`${op}: duplicate axes in ${JSON.stringify(axes)}`);
  return uniq;
}

/**
 * Index mapping for broadcasting: for an output of shape `out`, returns for each output element
 * the flat index into an input of shape `inp` (which broadcasts to `out`).
 * Used by reference kernels; fast paths avoid it.
 */
export function broadcastIndexMap(inp: Shape, out: Shape): Int32Array {
  const n = sizeOf(out);
  const map = new Int32Array(n);
  const rank = out.length;
  const inStrides = stridesOf(inp);
  const offs = rank - inp.length;
  // effective stride per output dim (0 where broadcast)
  const eff = new Array<number>(rank).fill(0);
  for (let i = 0; i < inp.length; i++) eff[i + offs] = inp[i] === 1 ? 0 : inStrides[i]!;
  const idx = new Array<number>(rank).fill(0);
  let flat = 0;
  for (let o = 0; o < n; o++) {
    map[o] = flat;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      flat += eff[d]!;
      if (idx[d]! < out[d]!) break;
      flat -= eff[d]! * out[d]!;
      idx[d] = 0;
    }
  }
  return map;
}
