/**
 * CUDA kernels of @ring-linear/attention's chunked lightning attention (kernels/lightning.cuh):
 *
 *   lightningAttention          q, k, v, decay, initialState -> out, finalState
 *   lightningAttentionBackward  q, k, v, decay, initialState, dOut, dFinalState -> dq, dk, dv, dInitialState
 *
 * Both run three passes over "super-chunks" of P tokens (state contributions, a scan over the
 * super-chunks of each sequence, outputs), so every pass is parallel over super-chunks x heads x
 * batch; see lightning.cuh. 16-bit inputs with D = Dv in {64, 128} take the tensor-core passes
 * (P chosen here so the output pass fills the GPU); everything else (f32, other head sizes, too
 * little shared memory) takes the general scalar passes with P = 64. Packed sequences (cuSeqlens)
 * run the passes once per sequence. Registered for every dtype the ops accept: nothing declines.
 * The attributes are restated (this package does not import the attention package).
 *
 * RING_LINEAR_CUDA_LIGHTNING=general forces the general passes; RING_LINEAR_LIGHTNING_SUPERCHUNK
 * (a multiple of 64) fixes P on the tensor-core path, RING_LINEAR_LIGHTNING_WARPS (DH/16 or DH/8)
 * the warps of an output-pass block. RING_LINEAR_LIGHTNING_ONLY=state|scan|chunk
 * runs that pass alone (a timing diagnostic: the results are then wrong). All are read at every
 * launch.
 */
import { BackendError, type DType, type TensorInfo } from '@ring-linear/core';
import type { CudaBackend } from '../backend.js';
import type { Kernel } from '../kernels/modules.js';
import {
  LIGHTNING_CHUNK,
  LIGHTNING_GEN_THREADS,
  LIGHTNING_HEAD_DIMS,
  LIGHTNING_MMA_DTYPES,
  lightningChunkSmem,
  lightningChunkWarps,
  lightningStateSmem,
  lightningThreads,
} from '../kernels/families/lightning.js';
import { DTYPE_SUFFIX, moduleSpec } from '../kernels/sources.js';
import { ptr, register, type Ctx } from './common.js';

interface LightningAttrs {
  scale: number;
  chunkSize: number;
  cuSeqlens: number[] | null;
}

const cdiv = (a: number, b: number) => Math.ceil(a / b);

/** One run of the passes: Bn sequences of Tseg tokens from time t0 (packed: one sequence, Bn = 1). */
export interface LightningSegment {
  t0: number;
  Tseg: number;
  Bn: number;
  /** Index of its first sequence in the state tensors. */
  nBase: number;
  /** Super-chunks per sequence, and the index of its first slot in the slot buffer. */
  G: number;
  slotBase: number;
}

/** How a call is split: the path, the super-chunk length P, the segments and the slot count. */
export interface LightningPlan {
  mma: boolean;
  P: number;
  segments: LightningSegment[];
  slots: number;
}

/** Largest super-chunk: longer ones leave too few blocks, and a super-chunk is one block's serial work. */
const MAX_SUPERCHUNK = 8192;

/**
 * The super-chunk length of the tensor-core path: the longest power of two from 256 to 8192 tokens
 * whose output pass still has a block for (nearly) every SM. A block of the output pass fills an
 * SM (196 KiB of shared memory at DH = 128), and longer super-chunks move less state through memory
 * and give the scan fewer steps, so one full wave of long super-chunks beats several short ones.
 */
export function superChunk(tokensPerSeq: number, heads: number, seqs: number, sms: number): number {
  const env = process.env.RING_LINEAR_LIGHTNING_SUPERCHUNK;
  if (env) {
    const p = Number(env);
    if (!Number.isInteger(p) || p < LIGHTNING_CHUNK || p % LIGHTNING_CHUNK !== 0) {
      throw new BackendError(`RING_LINEAR_LIGHTNING_SUPERCHUNK must be a positive multiple of ${LIGHTNING_CHUNK}, got '${env}'`);
    }
    return p;
  }
  let P = 256;
  while (P < MAX_SUPERCHUNK && cdiv(tokensPerSeq, 2 * P) * heads * seqs >= 0.9 * sms) P *= 2;
  return P;
}

export function lightningPlan(
  dt: DType, B: number, T: number, H: number, D: number, Dv: number, cu: readonly number[] | null, sms: number, smemOptin: number,
): LightningPlan {
  const mma = process.env.RING_LINEAR_CUDA_LIGHTNING !== 'general'
    && LIGHTNING_MMA_DTYPES.includes(dt) && D === Dv && (LIGHTNING_HEAD_DIMS as readonly number[]).includes(D)
    && lightningChunkSmem(D) <= smemOptin;
  const seqs = cu ? cu.slice(0, -1).map((s, i) => [s, cu[i + 1]! - s] as const) : [[0, T] as const];
  const P = mma ? superChunk(Math.max(...seqs.map(([, n]) => n)), H, cu ? 1 : B, sms) : LIGHTNING_CHUNK;
  const segments: LightningSegment[] = [];
  let slots = 0;
  seqs.forEach(([t0, n], i) => {
    const Bn = cu ? 1 : B;
    const G = cdiv(n, P);
    segments.push({ t0, Tseg: n, Bn, nBase: cu ? i : 0, G, slotBase: slots });
    slots += Bn * G;
  });
  return { mma, P, segments, slots };
}

/**
 * Warps of an output-pass block: RING_LINEAR_LIGHTNING_WARPS, else 8 (DH / 16 at DH = 128, DH / 8
 * at DH = 64). Measured on an H100 (bf16, B = 1, H = 16, T = 16384): at D = 128 the forward takes
 * 0.243 ms with 8 warps and 0.247 ms with 16; at D = 64, 0.124 ms with 8 warps and 0.135 ms with 4.
 */
export function chunkWarps(DH: number): number {
  const env = process.env.RING_LINEAR_LIGHTNING_WARPS;
  if (!env) return 8;
  const nw = Number(env);
  if (!lightningChunkWarps(DH).includes(nw)) {
    throw new BackendError(`RING_LINEAR_LIGHTNING_WARPS must be one of ${lightningChunkWarps(DH).join(', ')} for head dim ${DH}, got '${env}'`);
  }
  return nw;
}

/** Kernels whose dynamic shared memory limit has been raised (once per loaded kernel). */
const raised = new WeakSet<Kernel>();

class Runner {
  readonly s: string;
  readonly spec;
  constructor(
    readonly b: CudaBackend,
    readonly dt: DType,
    readonly plan: LightningPlan,
    readonly T: number,
    readonly H: number,
    readonly scale: number,
    readonly decay: number,
  ) {
    this.s = DTYPE_SUFFIX[dt];
    this.spec = moduleSpec('lightning', dt);
  }

  private kernel(name: string, smem: number): Kernel {
    const k = this.b.kernel(this.spec, name);
    if (smem > 48 * 1024 && !raised.has(k)) {
      this.b.rt.driver.setMaxDynamicShared(k.handle, smem);
      raised.add(k);
    }
    return k;
  }

  /** The timing diagnostic RING_LINEAR_LIGHTNING_ONLY: whether a pass runs. */
  private runs(pass: 'state' | 'scan' | 'chunk'): boolean {
    const only = process.env.RING_LINEAR_LIGHTNING_ONLY;
    return !only || only === pass;
  }

  private checkGrid(seg: LightningSegment): void {
    if (this.H > 65535 || seg.Bn > 65535) {
      throw new BackendError(`lightningAttention: the CUDA kernels support up to 65535 heads and batch entries, got ${this.H} heads, batch ${seg.Bn}`);
    }
  }

  /** Pass 1: each super-chunk's contribution to the state, into slots. */
  state(seg: LightningSegment, dir: 'fwd' | 'rev', p2: TensorInfo, r1: TensorInfo, slots: number): void {
    this.checkGrid(seg);
    if (!this.runs('state')) return;
    const DP = p2.shape[3]!, DR = r1.shape[3]!;
    const { P, mma } = this.plan;
    const grid = [seg.G, this.H, seg.Bn] as const;
    const common = [this.T, seg.t0, seg.Tseg, this.H];
    if (mma) {
      const smem = lightningStateSmem(DP);
      this.kernel(`lt_state_${this.s}_d${DP}_${dir}`, smem).launch(grid, [lightningThreads(DP), 1, 1],
        [ptr(p2), ptr(r1), this.decay, slots, ...common, P, seg.slotBase, this.scale], smem);
    } else {
      this.kernel(`lt_state_gen_${this.s}_${dir}`, 0).launch(grid, [LIGHTNING_GEN_THREADS, 1, 1],
        [ptr(p2), ptr(r1), this.decay, slots, ...common, DP, DR, P, seg.slotBase, this.scale]);
    }
  }

  /** Pass 2: the scan over the super-chunks of each sequence (fin = 0: no final state wanted). */
  scan(seg: LightningSegment, dir: 'fwd' | 'rev', slots: number, init: TensorInfo, fin: number, DD: number): void {
    this.checkGrid(seg);
    if (!this.runs('scan')) return;
    this.kernel(`lt_scan_${this.s}_${dir}`, 0).launch([cdiv(DD, 256), this.H, seg.Bn], [256, 1, 1],
      [slots, ptr(init), fin, this.decay, this.H, DD, seg.Tseg, this.plan.P, seg.G, seg.slotBase, seg.nBase]);
  }

  /** Pass 3: the outputs of each super-chunk from its slot's state (xT: the slot holds X transposed). */
  chunk(seg: LightningSegment, dir: 'fwd' | 'rev', p1: TensorInfo, p2: TensorInfo, r1: TensorInfo, out: TensorInfo, slots: number, xT: boolean): void {
    this.checkGrid(seg);
    if (!this.runs('chunk')) return;
    const DP = p1.shape[3]!, DR = r1.shape[3]!;
    const { P, mma } = this.plan;
    const grid = [seg.G, this.H, seg.Bn] as const;
    const common = [this.T, seg.t0, seg.Tseg, this.H];
    if (mma) {
      const smem = lightningChunkSmem(DP);
      const NW = chunkWarps(DP);
      this.kernel(`lt_chunk_${this.s}_d${DP}_w${NW}_${dir}`, smem).launch(grid, [32 * NW, 1, 1],
        [ptr(p1), ptr(p2), ptr(r1), ptr(out), this.decay, slots, xT ? 1 : 0, ...common, P, seg.slotBase, this.scale], smem);
    } else {
      this.kernel(`lt_chunk_gen_${this.s}_${dir}`, 0).launch(grid, [LIGHTNING_GEN_THREADS, 1, 1],
        [ptr(p1), ptr(p2), ptr(r1), ptr(out), this.decay, slots, xT ? 1 : 0, ...common, DP, DR, P, seg.slotBase, this.scale]);
    }
  }
}

function setup(b: CudaBackend, q: TensorInfo, v: TensorInfo, decay: TensorInfo, attrs: LightningAttrs) {
  const [B, T, H, D] = q.shape as [number, number, number, number];
  const Dv = v.shape[3]!;
  const plan = lightningPlan(q.dtype, B, T, H, D, Dv, attrs.cuSeqlens, b.device.multiprocessors, b.device.maxSharedMemoryPerBlockOptin);
  const run = new Runner(b, q.dtype, plan, T, H, Math.fround(attrs.scale), ptr(decay));
  return { plan, run, DD: D * Dv, slotBytes: 4 * plan.slots * H * D * Dv };
}

register('lightningAttention', ({ backend: b, inputs: [q, k, v, decay, s0], outputs: [out, sf], attrs }: Ctx<LightningAttrs>) => {
  const { plan, run, DD, slotBytes } = setup(b, q!, v!, decay!, attrs);
  const slots = b.temp(slotBytes);
  for (const seg of plan.segments) {
    run.state(seg, 'fwd', k!, v!, slots.ptr);
    run.scan(seg, 'fwd', slots.ptr, s0!, ptr(sf!), DD);
    run.chunk(seg, 'fwd', q!, k!, v!, out!, slots.ptr, false);
  }
  b.releaseTemp(slots);
});

register('lightningAttentionBackward', ({ backend: b, inputs: [q, k, v, decay, s0, dOut, dFinal], outputs: [dq, dk, dv, ds0], attrs }: Ctx<LightningAttrs>) => {
  const { plan, run, DD, slotBytes } = setup(b, q!, v!, decay!, attrs);
  // States entering each super-chunk (recomputed), and dLoss/dS leaving each.
  const states = b.temp(slotBytes);
  const grads = b.temp(slotBytes);
  for (const seg of plan.segments) {
    run.state(seg, 'fwd', k!, v!, states.ptr);
    run.scan(seg, 'fwd', states.ptr, s0!, 0, DD);
    run.state(seg, 'rev', q!, dOut!, grads.ptr);
    run.scan(seg, 'rev', grads.ptr, dFinal!, ptr(ds0!), DD);
    // dQ = M K + s lambda^(i+1) dO S^T; dV = A^T dO + lambda^(L-1-j) K dH; dK = M^T Q + lambda^(L-1-j) V dH^T.
    run.chunk(seg, 'fwd', dOut!, v!, k!, dq!, states.ptr, true);
    run.chunk(seg, 'rev', k!, q!, dOut!, dv!, grads.ptr, false);
    run.chunk(seg, 'rev', v!, dOut!, q!, dk!, grads.ptr, true);
  }
  b.releaseTemp(states);
  b.releaseTemp(grads);
});
