/**
 * The engine's mutable state: live counters, scopes and autograd tapes. Kept in one object on
 * globalThis so that two copies of this module (e.g. a bundled and an unbundled one) still share
 * one engine instead of silently splitting tensors between two worlds.
 */
import type { Backend } from './backend.js';
import type { Storage, Tensor } from './tensor.js';
import type { Tape } from './autograd/tape.js';

export interface BackendEntry {
  readonly name: string;
  readonly factory: () => Backend | Promise<Backend>;
  readonly priority: number;
  instance: Backend | null;
  initError: Error | null;
}

export class EngineState {
  nextTensorId = 1;
  liveTensors = 0;
  liveStorages = 0;
  liveBytes = 0;
  readonly backends = new Map<string, BackendEntry>();
  current: Backend | null = null;
  /** Open tidy scopes, innermost last; each holds the tensors made inside it. */
  readonly scopes: Set<Tensor>[] = [];
  /** Active gradient tapes, innermost last. */
  readonly tapes: Tape[] = [];
  /** Depth of noGrad() calls; > 0 disables recording. */
  noGradDepth = 0;

  trackInScope(t: Tensor): void {
    const top = this.scopes[this.scopes.length - 1];
    if (top) top.add(t);
  }

  untrack(t: Tensor): void {
    for (let i = this.scopes.length - 1; i >= 0; i--) if (this.scopes[i]!.delete(t)) return;
  }

  releaseStorage(s: Storage): void {
    s.refs--;
    if (s.refs === 0) {
      this.liveStorages--;
      this.liveBytes -= s.byteLength;
      s.backend.free(s.buffer);
    }
  }
}

const KEY = Symbol.for('@ring-linear/core/engine');
type G = typeof globalThis & { [KEY]?: EngineState };
export const ENGINE: EngineState = ((globalThis as G)[KEY] ??= new EngineState());
