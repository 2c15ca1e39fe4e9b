/**
 * Step `lightning`: the chunked lightning attention kernels (packages/backend-cuda/kernels/
 * lightning.cuh) on the GPU.
 *   1. the OpInfo records of lightningAttention and lightningAttentionBackward against the CPU
 *      (float64 references, gradients, kernel vs composite, errors; small odd head sizes);
 *   2. kernel vs composite on CUDA (forward and backward, every output) at tensor-core shapes
 *      (D = 64, 128; bf16, f16; tails, batch 2, packed sequences, super-chunk sizes), at general
 *      shapes (f32, odd head sizes), and at the timed shape T = 16384; plus float64 recurrences
 *      computed here at a small tensor-core shape. Each case prints max |err| / max |ref| per
 *      output and its worst element; a failing case does not stop the others;
 *   3. timings of forward and backward at T = 16384 and 65536 (B = 1, H = 16, D = Dv = 128, bf16):
 *      ms, useful TFLOP/s (the chunked algorithm's matmul FLOPs, below) and its fraction of
 *      989 TFLOP/s, bytes of the unavoidable traffic against the copy bandwidth measured here, and
 *      the ratio to torch_lightning.py (the same chunked algorithm from torch matmuls).
 *
 * Useful FLOPs (chunk C = 64, full C x C products, not the causal half; D = Dv): forward per chunk
 * 2 C^2 D (Q K^T) + 2 C^2 D (scores V) + 2 C D^2 (inter: Q S) + 2 C D^2 (state update);
 * backward per chunk 5 x 2 C^2 D (A = Q K^T, M = dO V^T, M K, M^T Q, A^T dO) + 5 x 2 C D^2
 * (dO S^T, V dH^T, K dH, the dH update Q^T dO and the recomputed state update K^T V): the matmuls
 * of lightningBackwardComposite.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as core from '@ring-linear/core';
import { attentionOpInfos } from '@ring-linear/attention/opinfo';
import { formatSummary, runConformance } from '@ring-linear/conformance';
import { cudaBackend, formatBench, log, outDir, timeGpu, values, withTorchTimes, type Args, type BenchRow } from '../common.js';

const OPS = ['lightningAttention', 'lightningAttentionBackward'];
const PEAK = 989;
const C = 64;

interface Check { name: string; ok: boolean; detail: string }

/** max |got - want| / max |want| and where the worst element is (flat index -> coordinates). */
function compareArrays(got: Float32Array | Float64Array, want: Float32Array | Float64Array, shape: readonly number[]): { err: number; where: string } {
  let e = 0, m = 0, at = 0;
  let bad = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= e)) {
      e = d;
      at = i;
    }
    if (Number.isNaN(got[i]!) && bad < 0) bad = i;
    m = Math.max(m, Math.abs(want[i]!));
  }
  if (bad >= 0) {
    e = Infinity;
    at = bad;
  }
  const coords: number[] = [];
  let r = at;
  for (let d = shape.length - 1; d >= 0; d--) {
    coords.unshift(r % shape[d]!);
    r = Math.floor(r / shape[d]!);
  }
  return { err: e / Math.max(m, 1e-30), where: `[${coords.join(', ')}] got ${got[at]} want ${want[at]}` };
}

const slopes = (H: number) => Float32Array.from({ length: H }, (_, h) => 2 ** (-0.5 * (h + 1) * (16 / H)));

export async function lightning(a: Args): Promise<number> {
  const out = outDir(a);
  const b = await cudaBackend();
  const seed = a.seed !== undefined ? Number(a.seed) : Math.floor(Math.random() * 2 ** 31);
  const small = a.small === true;
  const t0 = performance.now();
  let failed = 0;
  const lines: string[] = [];
  const say = (s: string) => {
    log(s);
    lines.push(s);
  };

  // 1. OpInfo records.
  try {
    const conf = await runConformance({ backend: 'cuda', reference: 'cpu', opInfos: attentionOpInfos, ops: OPS, seed, tfjs: false, grad: true, log: null, maxMessages: 4 });
    const text = formatSummary(conf);
    writeFileSync(join(out, 'lightning-conformance.txt'), text + '\n');
    log(text);
    say(`conformance (${OPS.join(', ')}): ${conf.counts.passed} passed, ${conf.counts.failed} failed, seed ${seed}`);
    if (!conf.ok) failed++;
  } catch (err) {
    say(`BAD conformance threw: ${(err as Error).stack ?? err}`);
    failed++;
  }

  // 2. Kernel vs composite, and float64 recurrences.
  const gen = new core.Generator(seed);
  const checks: Check[] = [];
  const tolOf = (dt: core.DType) => (dt === 'f32' ? 2e-5 : dt === 'bf16' ? 8 * 2 ** -9 : 8 * 2 ** -11);
  interface Case { B: number; T: number; H: number; D: number; Dv: number; dt: core.DType; cu?: number[]; P?: number; general?: boolean; decay?: number[]; warps?: number }
  const makeInputs = (c: Case) => {
    const N = c.cu ? c.cu.length - 1 : c.B;
    const rnd = (shape: number[], dtype: core.DType, std = 1) => core.keep(core.randomNormal(shape, { dtype, std, generator: gen }));
    const decay = core.keep(core.tensor(c.decay ? Float32Array.from(c.decay) : slopes(c.H), [c.H], 'f32', b));
    return {
      q: rnd([c.B, c.T, c.H, c.D], c.dt), k: rnd([c.B, c.T, c.H, c.D], c.dt), v: rnd([c.B, c.T, c.H, c.Dv], c.dt),
      dO: rnd([c.B, c.T, c.H, c.Dv], c.dt), decay, s0: rnd([N, c.H, c.D, c.Dv], 'f32', 0.5), dF: rnd([N, c.H, c.D, c.Dv], 'f32', 0.5),
    };
  };
  const withEnv = <T>(c: Case, fn: () => T): T => {
    const keep = { P: process.env.RING_LINEAR_LIGHTNING_SUPERCHUNK, G: process.env.RING_LINEAR_CUDA_LIGHTNING, W: process.env.RING_LINEAR_LIGHTNING_WARPS };
    if (c.P) process.env.RING_LINEAR_LIGHTNING_SUPERCHUNK = String(c.P);
    if (c.general) process.env.RING_LINEAR_CUDA_LIGHTNING = 'general';
    if (c.warps) process.env.RING_LINEAR_LIGHTNING_WARPS = String(c.warps);
    try {
      return fn();
    } finally {
      if (keep.W === undefined) delete process.env.RING_LINEAR_LIGHTNING_WARPS; else process.env.RING_LINEAR_LIGHTNING_WARPS = keep.W;
      if (keep.P === undefined) delete process.env.RING_LINEAR_LIGHTNING_SUPERCHUNK; else process.env.RING_LINEAR_LIGHTNING_SUPERCHUNK = keep.P;
      if (keep.G === undefined) delete process.env.RING_LINEAR_CUDA_LIGHTNING; else process.env.RING_LINEAR_CUDA_LIGHTNING = keep.G;
    }
  };
  const desc = (c: Case) => `${c.dt} B${c.B} T${c.T} H${c.H} D${c.D} Dv${c.Dv}${c.cu ? ` packed ${JSON.stringify(c.cu)}` : ''}${c.P ? ` P=${c.P}` : ''}${c.general ? ' general path' : ''}${c.warps ? ` ${c.warps} warps` : ''}`;
  const OUT_NAMES = { fwd: ['out', 'finalState'], bwd: ['dq', 'dk', 'dv', 'dInitialState'] };
  const vsComposite = async (c: Case, which: ('fwd' | 'bwd')[]) => {
    const x = makeInputs(c);
    const attrs = { scale: 1 / Math.sqrt(c.D), chunkSize: C, cuSeqlens: c.cu ?? null };
    try {
      for (const w of which) {
        const name = `${w === 'fwd' ? 'lightningAttention' : 'lightningAttentionBackward'} ${desc(c)}: kernel vs composite`;
        try {
          const op = w === 'fwd' ? 'lightningAttention' : 'lightningAttentionBackward';
          const ins = w === 'fwd' ? [x.q, x.k, x.v, x.decay, x.s0] : [x.q, x.k, x.v, x.decay, x.s0, x.dO, x.dF];
          const fused = withEnv(c, () => core.tidy(() => core.runOp(op, ins, attrs)));
          const comp = core.withKernelsDisabled([op], () => core.tidy(() => core.runOp(op, ins, attrs)));
          const parts: string[] = [];
          let ok = true;
          for (let i = 0; i < fused.length; i++) {
            const [fa, fb] = [core.cast(fused[i]!, 'f32'), core.cast(comp[i]!, 'f32')];
            const r = compareArrays(await values(fa), await values(fb), fused[i]!.shape);
            core.dispose([fa, fb]);
            // The f32 states are sums of rounded 16-bit products: held to the 16-bit tolerance too.
            const tol = tolOf(c.dt);
            ok &&= r.err <= tol;
            parts.push(`${OUT_NAMES[w][i]} ${r.err.toExponential(2)} (worst ${r.where})`);
          }
          core.dispose([...fused, ...comp]);
          checks.push({ name, ok, detail: `max |err|/max|ref| ${parts.join('; ')} (tol ${tolOf(c.dt).toExponential(1)})` });
        } catch (err) {
          checks.push({ name, ok: false, detail: `threw ${(err as Error).stack ?? err}` });
        }
        log(`${checks.at(-1)!.ok ? 'ok  ' : 'BAD '} ${checks.at(-1)!.name}: ${checks.at(-1)!.detail}`);
      }
    } finally {
      core.dispose(Object.values(x));
    }
  };

  // float64 recurrence (MODEL_SPEC §2) at a small tensor-core shape, forward and backward.
  const vsFloat64 = async (c: Case) => {
    const name = `lightning fwd+bwd ${desc(c)}: kernel vs float64 recurrence`;
    const x = makeInputs(c);
    try {
      const attrs = { scale: 1 / Math.sqrt(c.D), chunkSize: C, cuSeqlens: null };
      const got = withEnv(c, () => core.tidy(() => [
        ...core.runOp('lightningAttention', [x.q, x.k, x.v, x.decay, x.s0], attrs),
        ...core.runOp('lightningAttentionBackward', [x.q, x.k, x.v, x.decay, x.s0, x.dO, x.dF], attrs),
      ]));
      const f64 = async (t: core.Tensor) => {
        const f = core.cast(t, 'f32');
        const v = Float64Array.from(await values(f));
        f.dispose();
        return v;
      };
      const [q, k, v, dO, a, s0, dF] = await Promise.all([x.q, x.k, x.v, x.dO, x.decay, x.s0, x.dF].map(f64));
      const { B, T, H, D, Dv } = c;
      const s = 1 / Math.sqrt(D);
      const DD = D * Dv;
      const o = new Float64Array(B * T * H * Dv), fin = new Float64Array(s0!.length);
      const dq = new Float64Array(q!.length), dk = new Float64Array(k!.length), dv = new Float64Array(v!.length), ds0 = new Float64Array(s0!.length);
      for (let bb = 0; bb < B; bb++) {
        for (let h = 0; h < H; h++) {
          const lam = Math.exp(-a![h]!);
          const at = (t: number, X: number) => ((bb * T + t) * H + h) * X;
          const S = s0!.slice((bb * H + h) * DD, (bb * H + h + 1) * DD);
          const states: Float64Array[] = [];
          for (let t = 0; t < T; t++) {
            for (let d = 0; d < D; d++) for (let e = 0; e < Dv; e++) S[d * Dv + e] = lam * S[d * Dv + e]! + k![at(t, D) + d]! * v![at(t, Dv) + e]!;
            states.push(S.slice());
            for (let e = 0; e < Dv; e++) {
              let acc = 0;
              for (let d = 0; d < D; d++) acc += q![at(t, D) + d]! * S[d * Dv + e]!;
              o[at(t, Dv) + e] = s * acc;
            }
          }
          fin.set(S, (bb * H + h) * DD);
          const G = dF!.slice((bb * H + h) * DD, (bb * H + h + 1) * DD);
          for (let t = T - 1; t >= 0; t--) {
            const St = states[t]!;
            for (let d = 0; d < D; d++) for (let e = 0; e < Dv; e++) G[d * Dv + e]! += s * q![at(t, D) + d]! * dO![at(t, Dv) + e]!;
            for (let d = 0; d < D; d++) {
              let aq = 0, ak = 0;
              for (let e = 0; e < Dv; e++) {
                aq += dO![at(t, Dv) + e]! * St[d * Dv + e]!;
                ak += G[d * Dv + e]! * v![at(t, Dv) + e]!;
              }
              dq[at(t, D) + d] = s * aq;
              dk[at(t, D) + d] = ak;
            }
            for (let e = 0; e < Dv; e++) {
              let av = 0;
              for (let d = 0; d < D; d++) av += k![at(t, D) + d]! * G[d * Dv + e]!;
              dv[at(t, Dv) + e] = av;
            }
            for (let i = 0; i < DD; i++) G[i]! *= lam;
          }
          ds0.set(G, (bb * H + h) * DD);
        }
      }
      const wants = [o, fin, dq, dk, dv, ds0];
      const names = [...OUT_NAMES.fwd, ...OUT_NAMES.bwd];
      const parts: string[] = [];
      let ok = true;
      for (let i = 0; i < got.length; i++) {
        const r = compareArrays(await f64(got[i]!), wants[i]!, got[i]!.shape);
        ok &&= r.err <= tolOf(c.dt);
        parts.push(`${names[i]} ${r.err.toExponential(2)} (worst ${r.where})`);
      }
      core.dispose(got);
      checks.push({ name, ok, detail: `max |err|/max|ref| ${parts.join('; ')} (tol ${tolOf(c.dt).toExponential(1)})` });
    } catch (err) {
      checks.push({ name, ok: false, detail: `threw ${(err as Error).stack ?? err}` });
    } finally {
      core.dispose(Object.values(x));
    }
    log(`${checks.at(-1)!.ok ? 'ok  ' : 'BAD '} ${checks.at(-1)!.name}: ${checks.at(-1)!.detail}`);
  };

  const both: ('fwd' | 'bwd')[] = ['fwd', 'bwd'];
  await vsFloat64({ B: 1, T: 200, H: 2, D: 64, Dv: 64, dt: 'bf16', P: 128, decay: [0.01, 0.5] });
  await vsFloat64({ B: 2, T: 70, H: 1, D: 128, Dv: 128, dt: 'f16', decay: [0.05] });
  await vsFloat64({ B: 1, T: 150, H: 2, D: 128, Dv: 128, dt: 'bf16', decay: [0.02, 2], warps: 16 });
  const cases: Case[] = small
    ? [{ B: 1, T: 300, H: 2, D: 64, Dv: 64, dt: 'bf16' }, { B: 1, T: 50, H: 2, D: 5, Dv: 3, dt: 'f32' }]
    : [
        { B: 1, T: 1000, H: 4, D: 128, Dv: 128, dt: 'bf16' },
        { B: 1, T: 1000, H: 4, D: 128, Dv: 128, dt: 'bf16', warps: 16 },
        { B: 1, T: 300, H: 3, D: 64, Dv: 64, dt: 'f16', warps: 8, cu: [0, 100, 300] },
        { B: 2, T: 777, H: 3, D: 64, Dv: 64, dt: 'bf16' },
        { B: 1, T: 4100, H: 2, D: 128, Dv: 128, dt: 'f16' },
        { B: 1, T: 3000, H: 2, D: 128, Dv: 128, dt: 'bf16', P: 1024 },
        { B: 1, T: 2000, H: 2, D: 64, Dv: 64, dt: 'f16', P: 64 },
        { B: 1, T: 1500, H: 4, D: 128, Dv: 128, dt: 'bf16', cu: [0, 1, 65, 700, 1500] },
        { B: 1, T: 1500, H: 2, D: 128, Dv: 128, dt: 'bf16', decay: [30, 1e-4] },
        { B: 2, T: 300, H: 3, D: 128, Dv: 128, dt: 'bf16', general: true },
        { B: 1, T: 500, H: 2, D: 128, Dv: 128, dt: 'f32' },
        { B: 3, T: 130, H: 3, D: 99, Dv: 67, dt: 'bf16' },
        { B: 1, T: 200, H: 2, D: 64, Dv: 128, dt: 'f16' },
        { B: 1, T: 300, H: 2, D: 33, Dv: 17, dt: 'f32', cu: [0, 100, 101, 300] },
      ];
  for (const c of cases) await vsComposite(c, both);
  // The timed shape (risky sizes last).
  if (!small) await vsComposite({ B: 1, T: 16384, H: 16, D: 128, Dv: 128, dt: 'bf16' }, both);
  for (const c of checks) lines.push(`${c.ok ? 'ok  ' : 'BAD '} ${c.name}: ${c.detail}`);
  const badChecks = checks.filter((c) => !c.ok).length;
  say(`checks: ${checks.length - badChecks} of ${checks.length} ok`);
  if (badChecks) failed++;

  // 3. Timings.
  const rows: BenchRow[] = [];
  try {
    const copyBytes = small ? 2 ** 20 : 2 ** 30;
    const src = b.allocate(copyBytes);
    const dst = b.allocate(copyBytes);
    b.memset(src.ptr, 0x3f800000, 4, copyBytes / 4);
    const copy = timeGpu(b, () => b.copy(src, 0, dst, 0, copyBytes), 20);
    b.free(src);
    b.free(dst);
    const copyGbps = (2 * copyBytes) / (copy.ms * 1e-3) / 1e9;
    rows.push({ name: small ? 'copy_1MiB' : 'copy_1GiB', what: 'device-to-device copy', ...copy, bytes: 2 * copyBytes, gbps: copyGbps, ofCopy: 1, check: 'n/a' });
    const H = 16, D = small ? 64 : 128;
    for (const T of small ? [1024] : [16384, 65536]) {
      const c: Case = { B: 1, T, H, D, Dv: D, dt: 'bf16' };
      const x = makeInputs(c);
      const attrs = { scale: 1 / Math.sqrt(D), chunkSize: C, cuSeqlens: null };
      const nChunks = (T / C) * H;
      const fwdFlops = nChunks * (2 * 2 * C * C * D + 2 * 2 * C * D * D);
      const bwdFlops = nChunks * (5 * 2 * C * C * D + 5 * 2 * C * D * D);
      const act = T * H * D * 2;
      const st = H * D * D * 4;
      const variants: { suffix: string; P?: number; warps?: number }[] = [
        { suffix: '' },
        ...(small ? [] : [
          ...[1024, 2048, 4096, 8192].map((P) => ({ suffix: `_P${P}`, P })),
          { suffix: `_w${D / 8}`, warps: D / 8 },
        ]),
      ];
      for (const vnt of variants) {
        const cc = { ...c, P: vnt.P, warps: vnt.warps };
        const reps = T > 16384 ? 10 : 20;
        const f = withEnv(cc, () => timeGpu(b, () => void core.runOp('lightningAttention', [x.q, x.k, x.v, x.decay, x.s0], attrs), reps));
        const fb = 4 * act + 2 * st;
        rows.push({ name: `lightning_fwd_T${T}${vnt.suffix}`, what: `lightning fwd B1 T${T} H${H} D${D} bf16`, ...f, flops: fwdFlops, tflops: fwdFlops / (f.ms * 1e-3) / 1e12, bytes: fb, gbps: fb / (f.ms * 1e-3) / 1e9, ofCopy: fb / (f.ms * 1e-3) / 1e9 / copyGbps, check: '' });
        const g = withEnv(cc, () => timeGpu(b, () => void core.runOp('lightningAttentionBackward', [x.q, x.k, x.v, x.decay, x.s0, x.dO, x.dF], attrs), reps));
        const bb = 7 * act + 3 * st;
        rows.push({ name: `lightning_bwd_T${T}${vnt.suffix}`, what: `lightning bwd B1 T${T} H${H} D${D} bf16`, ...g, flops: bwdFlops, tflops: bwdFlops / (g.ms * 1e-3) / 1e12, bytes: bb, gbps: bb / (g.ms * 1e-3) / 1e9, ofCopy: bb / (g.ms * 1e-3) / 1e9 / copyGbps, check: '' });
      }
      // Each pass alone at the default super-chunk (RING_LINEAR_LIGHTNING_ONLY: results invalid).
      for (const pass of ['state', 'scan', 'chunk']) {
        process.env.RING_LINEAR_LIGHTNING_ONLY = pass;
        try {
          const f = timeGpu(b, () => void core.runOp('lightningAttention', [x.q, x.k, x.v, x.decay, x.s0], attrs), 10);
          rows.push({ name: `lightning_fwd_T${T}_only_${pass}`, what: `forward pass ${pass} alone`, ...f, check: 'timing only' });
          const g = timeGpu(b, () => void core.runOp('lightningAttentionBackward', [x.q, x.k, x.v, x.decay, x.s0, x.dO, x.dF], attrs), 10);
          rows.push({ name: `lightning_bwd_T${T}_only_${pass}`, what: `backward passes ${pass} alone`, ...g, check: 'timing only' });
        } finally {
          delete process.env.RING_LINEAR_LIGHTNING_ONLY;
        }
      }
      core.dispose(Object.values(x));
    }
    // Head dim 64 at T = 16384 (both warp counts of the output pass).
    if (!small) {
      const T = 16384, H = 16, D = 64;
      const x = makeInputs({ B: 1, T, H, D, Dv: D, dt: 'bf16' });
      const attrs = { scale: 1 / Math.sqrt(D), chunkSize: C, cuSeqlens: null };
      const nChunks = (T / C) * H;
      for (const warps of [D / 16, D / 8]) {
        const cc: Case = { B: 1, T, H, D, Dv: D, dt: 'bf16', warps };
        const f = withEnv(cc, () => timeGpu(b, () => void core.runOp('lightningAttention', [x.q, x.k, x.v, x.decay, x.s0], attrs), 20));
        const fl = nChunks * (2 * 2 * C * C * D + 2 * 2 * C * D * D);
        rows.push({ name: `lightning_fwd_T${T}_D64_w${warps}`, what: `lightning fwd B1 T${T} H${H} D64 bf16`, ...f, flops: fl, tflops: fl / (f.ms * 1e-3) / 1e12, check: '' });
        const g = withEnv(cc, () => timeGpu(b, () => void core.runOp('lightningAttentionBackward', [x.q, x.k, x.v, x.decay, x.s0, x.dO, x.dF], attrs), 20));
        const gl = nChunks * (5 * 2 * C * C * D + 5 * 2 * C * D * D);
        rows.push({ name: `lightning_bwd_T${T}_D64_w${warps}`, what: `lightning bwd B1 T${T} H${H} D64 bf16`, ...g, flops: gl, tflops: gl / (g.ms * 1e-3) / 1e12, check: '' });
      }
      core.dispose(Object.values(x));
    }
  } catch (err) {
    say(`BAD timings threw: ${(err as Error).stack ?? err}`);
    failed++;
  }
  const torch = withTorchTimes(rows, typeof a.torch === 'string' ? a.torch : join(out, 'torch_lightning.json'), log, (n) => n.replace(/_(P\d+|w\d+)$/, '').replace(/_(only_\w+|D64_w\d+)$/, '__none'));
  for (const n of torch.notes ?? []) say(`torch: ${n}`);
  for (const r of rows) {
    if (r.tflops === undefined) continue;
    r.check = `${((100 * r.tflops) / PEAK).toFixed(1)}% of ${PEAK}`;
    say(`${r.name}: ${r.ms.toFixed(3)} ms, ${r.tflops.toFixed(1)} TFLOP/s = ${((100 * r.tflops) / PEAK).toFixed(1)}% of ${PEAK} TFLOP/s; ` +
      (r.gbps !== undefined ? `${r.gbps.toFixed(0)} GB/s of unavoidable traffic = ${(100 * r.ofCopy!).toFixed(0)}% of copy` : 'D = 64') +
      (r.vsTorch !== undefined ? `; torch ${r.torchMs!.toFixed(3)} ms -> ${r.vsTorch.toFixed(2)}x` : ''));
  }
  const result = {
    device: b.capabilities.device, seed, torchDevice: torch.device, torchVersion: torch.torch, torchNotes: torch.notes,
    secs: (performance.now() - t0) / 1000, checks, rows,
  };
  writeFileSync(join(out, 'lightning.json'), JSON.stringify(result, null, 1));
  const table = formatBench(result.device, rows);
  writeFileSync(join(out, 'lightning.txt'), [table, ...lines].join('\n') + '\n');
  log(`lightning: ${checks.length - badChecks}/${checks.length} checks ok (seed ${seed}), ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  log(table);
  return failed ? 1 : 0;
}
