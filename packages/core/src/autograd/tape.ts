import type { OpDef } from '../op.js';
import type { Tensor } from '../tensor.js';

/** One recorded op application. Inputs/outputs are internal handles that keep storage alive. */
export interface TapeNode {
  readonly def: OpDef<any>;
  readonly attrs: Record<string, unknown>;
  readonly inputs: Tensor[];
  readonly outputs: Tensor[];
  readonly inputIds: number[];
  readonly outputIds: number[];
}

/** A gradient tape: records ops whose inputs depend on the watched tensors. */
export class Tape {
  readonly nodes: TapeNode[] = [];
  /** Ids of tensors that depend on a watched tensor. */
  readonly tracked = new Set<number>();

  constructor(watched: readonly Tensor[]) {
    for (const t of watched) this.tracked.add(t.id);
  }

  /** Drops the tape's references to saved tensors. */
  release(): void {
    for (const n of this.nodes) {
      for (const t of n.inputs) t.dispose();
      for (const t of n.outputs) t.dispose();
    }
    this.nodes.length = 0;
  }
}
