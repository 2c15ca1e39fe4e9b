/**
 * Step `flash`: the tensor-core flash attention kernels of @ring-linear/backend-cuda
 * (kernels/flash.cuh; softmaxAttention forward for 16-bit D = Dv in {64, 128} with >= 16 queries,
 * softmaxAttentionBackward).
 *
 *   1. the OpInfo records of softmaxAttention and softmaxAttentionBackward against the CPU;
 *   2. kernel vs float64 (computed here on the host) at small odd shapes, all rows; kernel vs
 *      composite (core.withKernelsDisabled) at medium shapes: causal and not, GQA, packed
 *      sequences, kvLen / kvOffset (chunked prefill), both 16-bit dtypes, both head dims;
 *   3. at the timed shapes, sampled rows (queries for out / lse / dq, keys for dk / dv) against
 *      float64, then CUDA-event timings of forward and backward with TFLOP/s (causal forward FLOPs
 *      4 B H T^2 D / 2, backward 2.5x) as a fraction of the bf16 dense peak (989 TFLOP/s, H100
 *      SXM) and the ratio to torch_flash.py's scaled_dot_product_attention.
 * Writes flash.txt (the table and one line per check) and flash.json; exit 1 when a check fails.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as core from '@ring-linear/core';
import { softmaxAttentionWithLse } from '@ring-linear/attention';
import { attentionOpInfos } from '@ring-linear/attention/opinfo';
import { formatSummary, runConformance } from '@ring-linear/conformance';
import { cudaBackend, formatBench, log, outDir, relMaxErr, timeGpu, values, withTorchTimes, type Args, type BenchRow } from '../common.js';

const OPS = ['softmaxAttention', 'softmaxAttentionBackward'];
const PEAK_TFLOPS = 989;

interface Shape {
  B: number;
  Tq: number;
  Tk: number;
  H: number;
  Hkv: number;
  D: number;
  causal: boolean;
  scale?: number;
  kvLen?: number;
  kvOffset?: number;
  cuSeqlens?: number[];
}

const optsOf = (s: Shape) => ({ causal: s.causal, scale: s.scale, kvLen: s.kvLen, kvOffset: s.kvOffset, cuSeqlens: s.cuSeqlens ?? null });
const descOf = (s: Shape, dt: string) =>
  `${dt} B${s.B} Tq${s.Tq} Tk${s.Tk} H${s.H}/${s.Hkv} D${s.D}${s.causal ? ' causal' : ''}${s.kvLen !== undefined ? ` kvLen${s.kvLen}` : ''}` +
  `${s.kvOffset !== undefined ? ` kvOffset${s.kvOffset}` : ''}${s.cuSeqlens ? ` packed[${s.cuSeqlens.join(',')}]` : ''}`;

/** The segment (packed sequence) of query i: queries [q0, q0 + nq), keys [k0, k0 + nk), query q0 at position off. */
function segmentOf(s: Shape, i: number) {
  if (s.cuSeqlens) {
    for (let x = 0; x + 1 < s.cuSeqlens.length; x++) {
      const a = s.cuSeqlens[x]!, e = s.cuSeqlens[x + 1]!;
      if (i < e) return { q0: a, nq: e - a, k0: a, nk: e - a, off: 0 };
    }
  }
  const nk = s.kvLen ?? s.Tk;
  return { q0: 0, nq: s.Tq, k0: 0, nk, off: s.kvOffset ?? Math.max(nk - s.Tq, 0) };
}

/** Host copies of the tensors a check reads (decoded to f32). */
interface Host {
  Q: Float32Array; K: Float32Array; V: Float32Array;
  O?: Float32Array; L?: Float32Array; dO?: Float32Array; dL?: Float32Array;
}

const scaleOf = (s: Shape) => s.scale ?? 1 / Math.sqrt(s.D);

/** float64 forward of query row (b, i, h): lse and out (MODEL_SPEC §3). */
function refForwardRow(s: Shape, x: Host, b: number, i: number, h: number): { lse: number; out: Float64Array; p: Float64Array; k0: number; hk: number } {
  const g = segmentOf(s, i);
  const hk = Math.floor(h / (s.H / s.Hkv));
  const hi = s.causal ? Math.min(g.nk, g.off + (i - g.q0) + 1) : g.nk;
  const sc = new Float64Array(hi);
  const qi = ((b * s.Tq + i) * s.H + h) * s.D;
  let m = -Infinity;
  for (let j = 0; j < hi; j++) {
    const kj = ((b * s.Tk + g.k0 + j) * s.Hkv + hk) * s.D;
    let d = 0;
    for (let c = 0; c < s.D; c++) d += x.Q[qi + c]! * x.K[kj + c]!;
    sc[j] = scaleOf(s) * d;
    m = Math.max(m, sc[j]!);
  }
  let z = 0;
  for (let j = 0; j < hi; j++) z += Math.exp(sc[j]! - m);
  const out = new Float64Array(s.D);
  for (let j = 0; j < hi; j++) {
    const p = Math.exp(sc[j]! - m) / z;
    sc[j] = p;
    const vj = ((b * s.Tk + g.k0 + j) * s.Hkv + hk) * s.D;
    for (let c = 0; c < s.D; c++) out[c] += p * x.V[vj + c]!;
  }
  return { lse: m + Math.log(z), out, p: sc, k0: g.k0, hk };
}

/** float64 dq row of query (b, i, h), from the given out / lse / dOut / dLse (the op's definition). */
function refDqRow(s: Shape, x: Host, b: number, i: number, h: number): Float64Array {
  const g = segmentOf(s, i);
  const hk = Math.floor(h / (s.H / s.Hkv));
  const hi = s.causal ? Math.min(g.nk, g.off + (i - g.q0) + 1) : g.nk;
  const qi = ((b * s.Tq + i) * s.H + h) * s.D, li = (b * s.H + h) * s.Tq + i;
  let delta = 0;
  for (let c = 0; c < s.D; c++) delta += x.dO![qi + c]! * x.O![qi + c]!;
  const dq = new Float64Array(s.D);
  for (let j = 0; j < hi; j++) {
    const kj = ((b * s.Tk + g.k0 + j) * s.Hkv + hk) * s.D;
    let sc = 0, dp = 0;
    for (let c = 0; c < s.D; c++) {
      sc += x.Q[qi + c]! * x.K[kj + c]!;
      dp += x.dO![qi + c]! * x.V[kj + c]!;
    }
    const p = Math.exp(scaleOf(s) * sc - x.L![li]!);
    const ds = p * (dp - delta + x.dL![li]!);
    for (let c = 0; c < s.D; c++) dq[c] += scaleOf(s) * ds * x.K[kj + c]!;
  }
  return dq;
}

/** float64 dk and dv rows of key (b, j, hk): sums over the group's query heads and the queries that see it. */
function refDkvRow(s: Shape, x: Host, b: number, j: number, hk: number): { dk: Float64Array; dv: Float64Array } {
  const g = segmentOf(s, j); // packed: the key's sequence (q and k share the offsets)
  const G = s.H / s.Hkv;
  const dk = new Float64Array(s.D), dv = new Float64Array(s.D);
  const jj = j - g.k0;
  if (jj >= g.nk) return { dk, dv };
  const kj = ((b * s.Tk + j) * s.Hkv + hk) * s.D;
  for (let h = hk * G; h < hk * G + G; h++) {
    for (let i = g.q0; i < g.q0 + g.nq; i++) {
      if (s.causal && jj > g.off + (i - g.q0)) continue;
      const qi = ((b * s.Tq + i) * s.H + h) * s.D, li = (b * s.H + h) * s.Tq + i;
      let delta = 0, sc = 0, dp = 0;
      for (let c = 0; c < s.D; c++) {
        delta += x.dO![qi + c]! * x.O![qi + c]!;
        sc += x.Q[qi + c]! * x.K[kj + c]!;
        dp += x.dO![qi + c]! * x.V[kj + c]!;
      }
      const p = Math.exp(scaleOf(s) * sc - x.L![li]!);
      const ds = p * (dp - delta + x.dL![li]!);
      for (let c = 0; c < s.D; c++) {
        dv[c] += p * x.dO![qi + c]!;
        dk[c] += scaleOf(s) * ds * x.Q[qi + c]!;
      }
    }
  }
  return { dk, dv };
}

/** max |got - want| over the rows / max |want|, and the worst element. */
class ErrAcc {
  private diff = 0;
  private mag = 0;
  private worst = '';
  add(got: Float32Array, at: number, want: Float64Array, where: string): void {
    for (let c = 0; c < want.length; c++) {
      const d = Math.abs(got[at + c]! - want[c]!);
      this.mag = Math.max(this.mag, Math.abs(want[c]!));
      if (!(d <= this.diff)) {
        this.diff = d;
        this.worst = `${where} c${c}: got ${got[at + c]} want ${want[c]!.toPrecision(6)}`;
      }
    }
  }
  get rel(): number {
    return this.diff / Math.max(this.mag, 1e-30);
  }
  describe(): string {
    return `${this.rel.toExponential(2)} (worst ${this.worst})`;
  }
}

export async function flash(a: Args): Promise<number> {
  const out = outDir(a);
  const b = await cudaBackend();
  const seed = a.seed !== undefined ? Number(a.seed) : Math.floor(Math.random() * 2 ** 31);
  const small = a.small === true;
  const t0 = performance.now();
  let failed = 0;
  const lines: string[] = [];
  const say = (s: string) => {
    lines.push(s);
    log(s);
  };

  // Sections 1-3 run the default forward (wgmma1b on sm_90a, mma.sync elsewhere); section 4 the
  // other flavours.
  const envBefore = process.env.RING_LINEAR_CUDA_FLASH_FWD;
  delete process.env.RING_LINEAR_CUDA_FLASH_FWD;

  // 1. OpInfo records (small head dims: split-K forward, general backward kernels).
  const conf = await runConformance({ backend: 'cuda', reference: 'cpu', opInfos: attentionOpInfos, ops: OPS, seed, tfjs: false, grad: false, log: null, maxMessages: 4 });
  const confText = formatSummary(conf);
  writeFileSync(join(out, 'flash-conformance.txt'), confText + '\n');
  log(confText);
  say(`conformance (OpInfo records of ${OPS.join(', ')}): ${conf.counts.passed} passed, ${conf.counts.failed} failed`);
  if (!conf.ok) failed++;

  const gen = new core.Generator(seed);
  const rnd = (shape: number[], dtype: core.DType, sd = 1) =>
    core.keep(core.tidy(() => core.cast(core.mul(core.randomNormal(shape, { dtype: 'f32', generator: gen }), sd), dtype)));
  const checks: { name: string; ok: boolean; detail: string }[] = [];
  const check = (name: string, ok: boolean, detail: string) => {
    checks.push({ name, ok, detail });
    say(`${ok ? 'ok  ' : 'BAD '} ${name}: ${detail}`);
  };
  const tolF = (dt: core.DType) => (dt === 'bf16' ? 1e-2 : 2e-3);
  const tolB = (dt: core.DType) => (dt === 'bf16' ? 2e-2 : 4e-3);

  /**
   * Runs the flash forward and backward of a shape and checks rows against float64: all rows, or
   * `sample` query rows and key rows. Returns the inputs for timing when asked.
   */
  const checkF64 = async (s: Shape, dt: core.DType, sample: number | null, fwdOnly = false, tag = '') => {
    const desc = descOf(s, dt);
    const q = rnd([s.B, s.Tq, s.H, s.D], dt), k = rnd([s.B, s.Tk, s.Hkv, s.D], dt), v = rnd([s.B, s.Tk, s.Hkv, s.D], dt);
    const dOut = rnd([s.B, s.Tq, s.H, s.D], dt), dLse = rnd([s.B, s.H, s.Tq], 'f32', 0.3);
    try {
      const r = softmaxAttentionWithLse(q, k, v, optsOf(s));
      const [dq, dk, dv] = fwdOnly ? [r.out, r.out, r.out] : core.runOp('softmaxAttentionBackward', [q, k, v, r.out, r.lse, dOut, dLse], optsOf(s));
      const x: Host = {
        Q: await values(q), K: await values(k), V: await values(v), O: await values(r.out), L: await values(r.lse), dO: await values(dOut), dL: await values(dLse),
      };
      const DQ = await values(dq!), DK = await values(dk!), DV = await values(dv!);
      core.dispose(fwdOnly ? [r.out, r.lse] : [r.out, r.lse, dq!, dk!, dv!]);
      const eO = new ErrAcc(), eL = new ErrAcc(), eQ = new ErrAcc(), eK = new ErrAcc(), eV = new ErrAcc();
      // Diagnostics: the output's error in its first and second 64 columns.
      const eLo = new ErrAcc(), eHi = new ErrAcc();
      const rows: [number, number, number][] = [];
      const keys: [number, number, number][] = [];
      if (sample === null) {
        for (let bb = 0; bb < s.B; bb++) for (let i = 0; i < s.Tq; i++) for (let h = 0; h < s.H; h++) rows.push([bb, i, h]);
        for (let bb = 0; bb < s.B; bb++) for (let j = 0; j < s.Tk; j++) for (let h = 0; h < s.Hkv; h++) keys.push([bb, j, h]);
      } else {
        const pick = (n: number, x0: number) => (x0 * 2654435761 + seed) % n;
        rows.push([0, 0, 0], [s.B - 1, s.Tq - 1, s.H - 1]);
        keys.push([0, 0, 0], [s.B - 1, (s.kvLen ?? s.Tk) - 1, s.Hkv - 1]);
        for (let x0 = 1; x0 < sample; x0++) {
          rows.push([pick(s.B, x0), pick(s.Tq, x0 * 7), pick(s.H, x0 * 3)]);
          keys.push([pick(s.B, x0 * 5), pick(s.kvLen ?? s.Tk, x0 * 11), pick(s.Hkv, x0 * 13)]);
        }
      }
      for (const [bb, i, h] of rows) {
        const f = refForwardRow(s, x, bb, i, h);
        const at = ((bb * s.Tq + i) * s.H + h) * s.D;
        eO.add(x.O!, at, f.out, `out[${bb},${i},${h}]`);
        eLo.add(x.O!, at, f.out.subarray(0, Math.min(64, s.D)), `out[${bb},${i},${h}]`);
        if (s.D > 64) eHi.add(x.O!, at + 64, f.out.subarray(64), `out[${bb},${i},${h}] (+64)`);
        eL.add(x.L!, (bb * s.H + h) * s.Tq + i, Float64Array.of(f.lse), `lse[${bb},${h},${i}]`);
        if (!fwdOnly) eQ.add(DQ, at, refDqRow(s, x, bb, i, h), `dq[${bb},${i},${h}]`);
      }
      for (const [bb, j, hk] of fwdOnly ? [] : keys) {
        const r2 = refDkvRow(s, x, bb, j, hk);
        const at = ((bb * s.Tk + j) * s.Hkv + hk) * s.D;
        eK.add(DK, at, r2.dk, `dk[${bb},${j},${hk}]`);
        eV.add(DV, at, r2.dv, `dv[${bb},${j},${hk}]`);
      }
      const how = sample === null ? 'all rows' : `${rows.length} query rows, ${keys.length} keys`;
      check(`forward${tag} ${desc} vs float64 (${how})`, eO.rel <= tolF(dt) && eL.rel <= 1e-5, `out ${eO.describe()}; lse ${eL.describe()} (tol ${tolF(dt)}, 1e-5)` + (eO.rel > tolF(dt) ? `; columns < 64: ${eLo.describe()}; >= 64: ${eHi.describe()}` : ''));
      if (!fwdOnly) check(`backward ${desc} vs float64 (${how})`, eQ.rel <= tolB(dt) && eK.rel <= tolB(dt) && eV.rel <= tolB(dt),
        `dq ${eQ.describe()}; dk ${eK.describe()}; dv ${eV.describe()} (tol ${tolB(dt)})`);
    } catch (err) {
      check(`${tag}${desc} vs float64`, false, `threw ${(err as Error).message.split('\n')[0]}`);
    }
    return { q, k, v, dOut, dLse };
  };

  // 2a. Small odd shapes against float64, every row.
  const oddShapes: Shape[] = [
    { B: 2, Tq: 150, Tk: 150, H: 4, Hkv: 2, D: 64, causal: true, scale: 0.3 },
    { B: 1, Tq: 40, Tk: 200, H: 2, Hkv: 1, D: 128, causal: true, kvLen: 190, kvOffset: 131 },
    { B: 1, Tq: 33, Tk: 70, H: 3, Hkv: 3, D: 64, causal: false },
    { B: 1, Tq: 90, Tk: 90, H: 2, Hkv: 1, D: 128, causal: true, cuSeqlens: [0, 17, 18, 90] },
    { B: 1, Tq: 17, Tk: 17, H: 1, Hkv: 1, D: 64, causal: true },
    { B: 1, Tq: 150, Tk: 150, H: 2, Hkv: 1, D: 128, causal: true, scale: -0.15 },
    { B: 1, Tq: 20, Tk: 140, H: 1, Hkv: 1, D: 64, causal: false, scale: 0 },
  ];
  for (const dt of ['bf16', 'f16'] as const) {
    for (const s of small ? oddShapes.slice(0, 2) : oddShapes) {
      const t = await checkF64(s, dt, null);
      core.dispose([t.q, t.k, t.v, t.dOut, t.dLse]);
    }
  }

  // 2b. Kernel vs composite on CUDA at medium shapes (forward outputs, then backward from the same
  //     out / lse): max |diff| / max |composite|.
  const medium: Shape[] = small
    ? [{ B: 1, Tq: 300, Tk: 300, H: 4, Hkv: 2, D: 128, causal: true }]
    : [
        { B: 2, Tq: 1000, Tk: 1000, H: 8, Hkv: 2, D: 128, causal: true },
        { B: 1, Tq: 777, Tk: 777, H: 4, Hkv: 4, D: 64, causal: false },
        { B: 1, Tq: 300, Tk: 2000, H: 8, Hkv: 2, D: 128, causal: true, kvLen: 1900, kvOffset: 1500 },
        { B: 1, Tq: 1500, Tk: 1500, H: 4, Hkv: 1, D: 64, causal: true, cuSeqlens: [0, 1, 130, 700, 1500] },
      ];
  for (const dt of ['bf16', 'f16'] as const) {
    for (const s of medium) {
      const desc = descOf(s, dt);
      const q = rnd([s.B, s.Tq, s.H, s.D], dt), k = rnd([s.B, s.Tk, s.Hkv, s.D], dt), v = rnd([s.B, s.Tk, s.Hkv, s.D], dt);
      const dOut = rnd([s.B, s.Tq, s.H, s.D], dt), dLse = rnd([s.B, s.H, s.Tq], 'f32', 0.3);
      try {
        const fused = softmaxAttentionWithLse(q, k, v, optsOf(s));
        const comp = core.withKernelsDisabled(['softmaxAttention'], () => softmaxAttentionWithLse(q, k, v, optsOf(s)));
        const eOut = relMaxErr(await values(fused.out), await values(comp.out));
        const eLse = relMaxErr(await values(fused.lse), await values(comp.lse));
        check(`forward ${desc}: kernel vs composite`, eOut <= tolF(dt) && eLse <= 1e-5, `out ${eOut.toExponential(2)}, lse ${eLse.toExponential(2)} (tol ${tolF(dt)}, 1e-5)`);
        const ins = [q, k, v, fused.out, fused.lse, dOut, dLse];
        const gf = core.runOp('softmaxAttentionBackward', ins, optsOf(s));
        const gc = core.withKernelsDisabled(['softmaxAttentionBackward'], () => core.runOp('softmaxAttentionBackward', ins, optsOf(s)));
        const errs: number[] = [];
        for (let i = 0; i < 3; i++) {
          const [x, y] = [core.cast(gf[i]!, 'f32'), core.cast(gc[i]!, 'f32')];
          errs.push(relMaxErr(await values(x), await values(y)));
          core.dispose([x, y]);
        }
        check(`backward ${desc}: kernel vs composite`, errs.every((e) => e <= tolB(dt)), `dq ${errs[0]!.toExponential(2)}, dk ${errs[1]!.toExponential(2)}, dv ${errs[2]!.toExponential(2)} (tol ${tolB(dt)})`);
        core.dispose([fused.out, fused.lse, comp.out, comp.lse, ...gf, ...gc]);
      } catch (err) {
        check(`${desc}: kernel vs composite`, false, `threw ${(err as Error).message.split('\n')[0]}`);
      }
      core.dispose([q, k, v, dOut, dLse]);
    }
  }

  // 3. Timed shapes: sampled rows against float64, then timings (bf16, causal).
  const rowsOut: BenchRow[] = [];
  const timed: [string, Shape][] = [
    ['mha_T16384_D128', { B: 1, Tq: 16384, Tk: 16384, H: 16, Hkv: 16, D: 128, causal: true }],
    ['mha_T16384_D64', { B: 1, Tq: 16384, Tk: 16384, H: 16, Hkv: 16, D: 64, causal: true }],
    ['gqa_T4096_D128', { B: 1, Tq: 4096, Tk: 4096, H: 16, Hkv: 4, D: 128, causal: true }],
    ['gqa_T32768_D128', { B: 1, Tq: 32768, Tk: 32768, H: 16, Hkv: 4, D: 128, causal: true }],
  ];
  for (const [name, s0] of timed) {
    const s = small ? { ...s0, Tq: Math.min(s0.Tq, 1024), Tk: Math.min(s0.Tk, 1024) } : s0;
    const { q, k, v, dOut, dLse } = await checkF64(s, 'bf16', 6);
    const okNow = checks.every((c) => c.ok);
    try {
      const fl = (4 * s.B * s.H * s.Tq * s.Tk * s.D) / 2;
      const reps = s.Tq >= 16384 ? 10 : 30;
      const f = timeGpu(b, () => void softmaxAttentionWithLse(q, k, v, optsOf(s)), reps);
      const tf = fl / (f.ms * 1e-3) / 1e12;
      rowsOut.push({ name: `fwd_${name}`, what: `flash forward (${b.arch === 'sm_90a' ? 'wgmma1b' : 'mma'}) ${descOf(s, 'bf16')}`, ...f, flops: fl, tflops: tf, check: `${((100 * tf) / PEAK_TFLOPS).toFixed(0)}% of ${PEAK_TFLOPS}${okNow ? '' : ' (checks failed)'}` });
      const r = softmaxAttentionWithLse(q, k, v, optsOf(s));
      core.keep(r.out);
      core.keep(r.lse);
      const ins = [q, k, v, r.out, r.lse, dOut, dLse];
      const g = timeGpu(b, () => void core.runOp('softmaxAttentionBackward', ins, optsOf(s)), reps);
      const tb = (2.5 * fl) / (g.ms * 1e-3) / 1e12;
      rowsOut.push({ name: `bwd_${name}`, what: `flash backward ${descOf(s, 'bf16')}`, ...g, flops: 2.5 * fl, tflops: tb, check: `${((100 * tb) / PEAK_TFLOPS).toFixed(0)}% of ${PEAK_TFLOPS}${okNow ? '' : ' (checks failed)'}` });
      core.dispose([r.out, r.lse]);
    } catch (err) {
      check(`timing ${name}`, false, `threw ${(err as Error).message.split('\n')[0]}`);
    }
    core.dispose([q, k, v, dOut, dLse]);
  }

  // 4. The other forward flavours (RING_LINEAR_CUDA_FLASH_FWD=wgmma|mma): float64 checks at
  //    the odd and diagnostic shapes, then timings when they pass.
  const diag: Shape[] = [
    { B: 1, Tq: 64, Tk: 129, H: 1, Hkv: 1, D: 128, causal: false, scale: 0.1 },
    { B: 1, Tq: 64, Tk: 200, H: 1, Hkv: 1, D: 128, causal: false, scale: 0.1 },
    { B: 1, Tq: 256, Tk: 256, H: 1, Hkv: 1, D: 128, causal: true, scale: 0.1 },
    { B: 1, Tq: 300, Tk: 300, H: 2, Hkv: 1, D: 64, causal: true, scale: 0.1 },
  ];
  for (const kind of b.arch === 'sm_90a' ? ['wgmma', 'mma'] : []) {
    process.env.RING_LINEAR_CUDA_FLASH_FWD = kind;
    const tag = ` ${kind}`;
    const before = checks.length;
    for (const dt of ['bf16', 'f16'] as const) {
      for (const s of dt === 'bf16' ? [...diag, ...oddShapes] : oddShapes) {
        const t = await checkF64(s, dt, null, true, tag);
        core.dispose([t.q, t.k, t.v, t.dOut, t.dLse]);
      }
    }
    if (!checks.slice(before).every((c) => c.ok)) continue;
    for (const [name, s0] of timed) {
      const s = small ? { ...s0, Tq: Math.min(s0.Tq, 1024), Tk: Math.min(s0.Tk, 1024) } : s0;
      const { q, k, v, dOut, dLse } = await checkF64(s, 'bf16', 6, true, tag);
      try {
        const fl = (4 * s.B * s.H * s.Tq * s.Tk * s.D) / 2;
        const f = timeGpu(b, () => void softmaxAttentionWithLse(q, k, v, optsOf(s)), s.Tq >= 16384 ? 10 : 30);
        const tf = fl / (f.ms * 1e-3) / 1e12;
        const short = kind === 'wgmma' ? 'wg2bar' : 'mma';
        rowsOut.push({ name: `fwd_${short}_${name}`, what: `flash forward (${kind}) ${descOf(s, 'bf16')}`, ...f, flops: fl, tflops: tf, check: `${((100 * tf) / PEAK_TFLOPS).toFixed(0)}% of ${PEAK_TFLOPS}` });
      } catch (err) {
        check(`timing ${kind} ${name}`, false, `threw ${(err as Error).message.split('\n')[0]}`);
      }
      core.dispose([q, k, v, dOut, dLse]);
    }
  }
  if (envBefore === undefined) delete process.env.RING_LINEAR_CUDA_FLASH_FWD;
  else process.env.RING_LINEAR_CUDA_FLASH_FWD = envBefore;

  const torch = withTorchTimes(rowsOut, typeof a.torch === 'string' ? a.torch : join(out, 'torch_flash.json'), log, (n) => n.replace(/_(wg2bar|mma)_/, '_'));
  for (const n of torch.notes ?? []) say(`torch: ${n}`);
  const bad = checks.filter((c) => !c.ok).length;
  if (bad) failed++;
  say(`flash: conformance ${conf.counts.passed} passed, ${conf.counts.failed} failed; checks ${checks.length - bad} of ${checks.length} ok (seed ${seed})`);
  const result = {
    device: b.capabilities.device, seed, torchDevice: torch.device, torchVersion: torch.torch, torchNotes: torch.notes, secs: (performance.now() - t0) / 1000,
    conformance: { counts: conf.counts, ok: conf.ok }, checks, rows: rowsOut,
  };
  writeFileSync(join(out, 'flash.json'), JSON.stringify(result, null, 1));
  const table = formatBench(result.device, rowsOut);
  writeFileSync(join(out, 'flash.txt'), [...lines, table].join('\n') + '\n');
  log(table);
  return failed ? 1 : 0;
}
