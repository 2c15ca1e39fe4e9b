/**
 * The conformance runner. For every OpInfo x every dtype it declares x every sample it makes:
 * upload the inputs to the backend under test, run the op, read the outputs back (async, as on
 * any GPU backend) and compare them with
 *   (a) the float64 reference rounded to the output dtype (tolerance.ts),
 *   (b) the same op on the reference backend (when testing another backend),
 *   (c) tfjs (tfjs-core + tfjs-backend-cpu) for f32, where the record has an oracle,
 *   (d) the op's composite, where the backend has a kernel and the op a composite,
 * then, for f32 samples, analytic gradients (valueAndGrad of sum(out * random weights)) against
 * central differences of the float64 reference (and the composite's gradients). Each record's
 * error inputs must throw the named error class with a matching message and leave nothing
 * allocated; every sample must leave the live tensor, storage, byte and buffer counters where
 * they were.
 */
import {
  dispose,
  getBackend,
  getKernel,
  getOpDef,
  initBackend,
  isFloatDType,
  isLowPrecisionFloat,
  memory,
  registerBackend,
  registeredBackends,
  runOp,
  runOp1,
  setBackend,
  Tensor,
  valueAndGrad,
  withKernelsDisabled,
  type Backend,
  type DType,
} from '@ring-linear/core';
import type { HostTensor, OpInfo, SampleInput } from './opinfo/types.js';
import { ALL_OP_INFOS } from './opinfo/index.js';
import { createSampleRng, deriveSeed, freshSeed, type XoshiroSampleRng } from './rng.js';
import { fromTensor, roundHost, toTensor } from './host.js';
import {
  GRAD_TOLERANCE,
  compareValues,
  describeComparison,
  isExactDType,
  toleranceFor,
  type CompareOptions,
} from './tolerance.js';
import { fromTf, loadTfjs, toTf, type Tf } from './tfjs.js';
import { formatSummary } from './report.js';

export type BackendSpec = string | (() => Backend | Promise<Backend>);

export interface ConformanceOptions {
  /** The backend under test: a registered backend's name, or a factory (registered under its name). */
  readonly backend: BackendSpec;
  /** Display name for a factory backend before it is created (test names). */
  readonly name?: string;
  /** The reference backend (default 'cpu'). */
  readonly reference?: string;
  /** Which ops: names, a pattern, or a predicate (default: all records). */
  readonly ops?: readonly string[] | RegExp | ((op: string) => boolean);
  /** Which dtypes (default: every dtype each record declares). */
  readonly dtypes?: readonly DType[];
  /** Include the error-input cases (default true). */
  readonly errors?: boolean;
  /** Gradient checks on f32 samples (default true). */
  readonly grad?: boolean;
  /** Kernel vs composite comparisons (default true). */
  readonly composite?: boolean;
  /** Seed of the sample generator (default: fresh, printed). */
  readonly seed?: number;
  /** Compare f32 results with tfjs where a record has an oracle (default true). */
  readonly tfjs?: boolean;
  /** The records to run (default: every record, ALL_OP_INFOS). */
  readonly opInfos?: readonly OpInfo[];
  /** Called with each case's result as it finishes. */
  readonly report?: (result: CaseResult) => void;
  /** Where progress and the summary go (default console.log; null for silence). */
  readonly log?: ((line: string) => void) | null;
  /** At most this many failure messages per case (default 8). */
  readonly maxMessages?: number;
  /**
   * Expected failures declared by the backend under test, keyed by op ('add') or case id
   * ('add [bf16]'), valued by the reason; added to the records' own `xfail` entries.
   */
  readonly xfail?: Readonly<Record<string, string>>;
}

/** One op x dtype (or op x 'errors'): the unit of a test. */
export interface PlannedCase {
  readonly id: string;
  readonly op: string;
  readonly dtype: DType | 'errors';
  readonly info: OpInfo;
}

export type CaseStatus = 'passed' | 'failed' | 'xfail' | 'unexpected-pass';

/** Checks made in a case, by kind (a kind at 0 was skipped: no oracle, no composite, ...). */
export interface CheckCounts {
  reference: number;
  check: number;
  referenceBackend: number;
  tfjs: number;
  composite: number;
  grad: number;
  errors: number;
}

function noChecks(): CheckCounts {
  return { reference: 0, check: 0, referenceBackend: 0, tfjs: 0, composite: 0, grad: 0, errors: 0 };
}

export interface CaseResult {
  readonly id: string;
  readonly op: string;
  readonly dtype: DType | 'errors';
  readonly status: CaseStatus;
  /** Samples (or error inputs) run. */
  readonly samples: number;
  /** Comparisons and checks made. */
  readonly checks: number;
  /** The same, by kind. */
  readonly checksByKind: Readonly<CheckCounts>;
  /** What failed (with max abs/rel error and the worst index), or the xfail reason. */
  readonly messages: readonly string[];
  readonly xfailReason?: string;
  /** The seed of this case's sample stream. */
  readonly seed: number;
  readonly ms: number;
}

export interface ConformanceResult {
  readonly backend: string;
  readonly device: string;
  readonly reference: string;
  readonly seed: number;
  readonly tfjs: boolean;
  readonly cases: readonly CaseResult[];
  readonly counts: Readonly<Record<CaseStatus, number>>;
  /** No failures and no unexpected passes. */
  readonly ok: boolean;
  readonly ms: number;
  /** Things the run could not check (tfjs missing, filters naming no record, ...). */
  readonly notes: readonly string[];
  /** The printed summary table. */
  readonly summary: string;
}

// ---------------------------------------------------------------------------------------------
// Planning

function opFilter(spec: ConformanceOptions['ops']): (op: string) => boolean {
  if (spec === undefined) return () => true;
  if (typeof spec === 'function') return spec;
  if (spec instanceof RegExp) return (op) => spec.test(op);
  const set = new Set(spec);
  return (op) => set.has(op);
}

/** The cases a run will execute, in order (synchronous: test frameworks register one test each). */
export function planConformance(options: Pick<ConformanceOptions, 'ops' | 'dtypes' | 'errors' | 'opInfos'>): PlannedCase[] {
  const infos = options.opInfos ?? ALL_OP_INFOS;
  const keep = opFilter(options.ops);
  const dtypes = options.dtypes ? new Set(options.dtypes) : null;
  const out: PlannedCase[] = [];
  for (const info of infos) {
    if (!keep(info.op)) continue;
    for (const dt of info.dtypes) {
      if (dtypes && !dtypes.has(dt)) continue;
      out.push({ id: `${info.op} [${dt}]`, op: info.op, dtype: dt, info });
    }
    if (info.errors && options.errors !== false) out.push({ id: `${info.op} [errors]`, op: info.op, dtype: 'errors', info });
  }
  return out;
}

/** Ops in core's registry (listOps) without an OpInfo record. */
export function missingOpInfos(ops: readonly string[], infos: readonly OpInfo[] = ALL_OP_INFOS): string[] {
  const have = new Set(infos.map((i) => i.op));
  return ops.filter((op) => !have.has(op));
}

// ---------------------------------------------------------------------------------------------
// Helpers

interface MemSnapshot {
  readonly tensors: number;
  readonly storages: number;
  readonly bytes: number;
  readonly backends: Record<string, { buffers: number; bytesInUse: number }>;
}

function snapshot(names: readonly string[]): MemSnapshot {
  const m = memory();
  const backends: MemSnapshot['backends'] = {};
  for (const n of names) {
    const s = m.backends[n];
    if (s) backends[n] = { buffers: s.buffers, bytesInUse: s.bytesInUse };
  }
  return { tensors: m.tensors, storages: m.storages, bytes: m.bytes, backends };
}

function diffSnapshots(a: MemSnapshot, b: MemSnapshot): string | null {
  const parts: string[] = [];
  if (a.tensors !== b.tensors) parts.push(`live tensors ${a.tensors} -> ${b.tensors}`);
  if (a.storages !== b.storages) parts.push(`storages ${a.storages} -> ${b.storages}`);
  if (a.bytes !== b.bytes) parts.push(`bytes ${a.bytes} -> ${b.bytes}`);
  for (const [name, s] of Object.entries(a.backends)) {
    const t = b.backends[name];
    if (!t) continue;
    if (s.buffers !== t.buffers) parts.push(`'${name}' buffers ${s.buffers} -> ${t.buffers}`);
    if (s.bytesInUse !== t.bytesInUse) parts.push(`'${name}' bytes in use ${s.bytesInUse} -> ${t.bytesInUse}`);
  }
  return parts.length ? parts.join(', ') : null;
}

function errorText(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** Whether an error is an instance of a class with the given name (or a subclass of it). */
function isErrorNamed(err: unknown, name: string): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === name) return true;
  for (let p = Object.getPrototypeOf(err); p; p = Object.getPrototypeOf(p)) {
    if (p.constructor?.name === name) return true;
  }
  return false;
}

function asTensorList(x: unknown, what: string): Tensor[] {
  if (x instanceof Tensor) return [x];
  if (Array.isArray(x) && x.every((t) => t instanceof Tensor)) return x as Tensor[];
  throw new TypeError(`${what}: expected a Tensor or an array of Tensors, got ${x === null ? 'null' : typeof x}`);
}

export function describeHost(h: HostTensor): string {
  return `[${h.shape.join(',')}] ${h.dtype}`;
}

function describeSample(s: { inputs: readonly HostTensor[]; attrs?: Record<string, unknown>; desc?: string }): string {
  const ins = s.inputs.map(describeHost).join(', ');
  const attrs = s.attrs && Object.keys(s.attrs).length ? ` ${JSON.stringify(s.attrs)}` : '';
  return `${s.desc ? `"${s.desc}" ` : ''}(${ins || 'no inputs'}${attrs})`;
}

const FD_STEP = 1e-6;

// ---------------------------------------------------------------------------------------------
// Session

/**
 * A conformance session: the backend under test and the reference initialized, cases run one at
 * a time (runConformance runs them all; the Vitest adapter runs one per test).
 */
export class ConformanceSession {
  readonly results: CaseResult[] = [];
  readonly notes: string[] = [];
  private startedAt = Date.now();

  private constructor(
    readonly options: ConformanceOptions,
    readonly backend: Backend,
    readonly ref: Backend,
    readonly seed: number,
    private readonly tf: Tf | null,
    private readonly previousBackend: string | null,
  ) {}

  static async open(options: ConformanceOptions): Promise<ConformanceSession> {
    const log = options.log === undefined ? (l: string) => console.log(l) : options.log;
    let previous: string | null = null;
    try {
      previous = getBackend().name;
    } catch {
      previous = null;
    }
    let backend: Backend;
    if (typeof options.backend === 'string') {
      backend = await initBackend(options.backend);
    } else {
      const made = await options.backend();
      if (!registeredBackends().includes(made.name)) registerBackend(made.name, () => made, -1);
      backend = await initBackend(made.name);
      if (backend !== made) {
        throw new Error(`conformance: a backend named '${made.name}' is already initialized; give the factory's backend another name`);
      }
    }
    const ref = await initBackend(options.reference ?? 'cpu');
    const seed = (options.seed ?? freshSeed()) >>> 0;
    let tf: Tf | null = null;
    const notes: string[] = [];
    if (options.tfjs !== false) {
      const loaded = await loadTfjs();
      if (typeof loaded === 'string') notes.push(`tfjs oracle skipped: ${loaded}`);
      else tf = loaded;
    } else notes.push('tfjs oracle off (tfjs: false)');
    const session = new ConformanceSession(options, backend, ref, seed, tf, previous);
    session.notes.push(...notes);
    log?.(
      `conformance: backend '${backend.name}' (${backend.capabilities.device}) vs reference '${ref.name}'; ` +
        `seed ${seed} (reproduce with seed: ${seed} / --seed ${seed}); tfjs oracle ${tf ? 'on' : 'off'}`,
    );
    return session;
  }

  get backendName(): string {
    return this.backend.name;
  }

  /** The cases of this session's options. */
  plan(): PlannedCase[] {
    return planConformance(this.options);
  }

  /** Runs one case; never throws (failures are in the result). */
  async runCase(c: PlannedCase): Promise<CaseResult> {
    const t0 = Date.now();
    const seed = deriveSeed(this.seed, c.op, c.dtype);
    const messages: string[] = [];
    let samples = 0;
    const counter = noChecks();
    try {
      if (!getOpDef(c.op) && !c.info.call) {
        messages.push(`op '${c.op}' is not defined in core's registry (import the package that defines it)`);
      } else if (c.dtype === 'errors') {
        samples = await this.runErrors(c.info, seed, messages, counter);
      } else {
        samples = await this.runValues(c.info, c.dtype, seed, messages, counter);
      }
    } catch (err) {
      messages.push(`case aborted: ${errorText(err)}`);
    }
    const checks = Object.values(counter).reduce((a, b) => a + b, 0);
    const max = this.options.maxMessages ?? 8;
    const shown = messages.length > max ? [...messages.slice(0, max), `... and ${messages.length - max} more`] : messages;
    const failed = messages.length > 0;
    const reason = c.info.xfail?.[this.backend.name] ?? this.options.xfail?.[c.id] ?? this.options.xfail?.[c.op];
    let status: CaseStatus = failed ? 'failed' : 'passed';
    if (reason !== undefined) status = failed ? 'xfail' : 'unexpected-pass';
    const result: CaseResult = {
      id: c.id,
      op: c.op,
      dtype: c.dtype,
      status,
      samples,
      checks,
      checksByKind: counter,
      messages:
        status === 'unexpected-pass'
          ? [`expected to fail on '${this.backend.name}' (${reason}) but passed: remove the xfail entry`]
          : shown,
      ...(reason !== undefined ? { xfailReason: reason } : {}),
      seed,
      ms: Date.now() - t0,
    };
    this.results.push(result);
    this.options.report?.(result);
    return result;
  }

  /** Results so far, with counts and the summary table. */
  result(): ConformanceResult {
    const counts: Record<CaseStatus, number> = { passed: 0, failed: 0, xfail: 0, 'unexpected-pass': 0 };
    for (const r of this.results) counts[r.status]++;
    const base = {
      backend: this.backend.name,
      device: this.backend.capabilities.device,
      reference: this.ref.name,
      seed: this.seed,
      tfjs: this.tf !== null,
      cases: [...this.results],
      counts,
      ok: counts.failed === 0 && counts['unexpected-pass'] === 0,
      ms: Date.now() - this.startedAt,
      notes: [...this.notes],
    };
    return { ...base, summary: formatSummary(base) };
  }

  /** Restores the backend that was current before the session. */
  async close(): Promise<void> {
    if (this.previousBackend) await setBackend(this.previousBackend);
  }

  // -------------------------------------------------------------------------------------------

  private trackedBackends(): string[] {
    return [...new Set([this.backend.name, this.ref.name])];
  }

  private call(info: OpInfo, inputs: Tensor[], attrs: Record<string, unknown>): Tensor[] {
    const out = info.call ? info.call(inputs, { ...attrs }) : runOp(info.op, inputs, { ...attrs });
    return asTensorList(out, `${info.op}`);
  }

  /** Runs a sample on a backend and reads the outputs; frees everything it made. */
  private async execute(backend: Backend, info: OpInfo, sample: SampleInput, composite = false): Promise<HostTensor[]> {
    await setBackend(backend.name); // ops without inputs (fill, random) run on the current backend
    const inputs = sample.inputs.map((h) => toTensor(h, backend));
    let outs: Tensor[] = [];
    try {
      const run = () => this.call(info, inputs, sample.attrs ?? {});
      outs = composite ? withKernelsDisabled([info.op], run) : run();
      return await Promise.all(outs.map(fromTensor));
    } finally {
      dispose(outs);
      dispose(inputs);
    }
  }

  /** Whether the backend under test has a kernel for this op and dtype and the op has a composite. */
  private hasKernelAndComposite(info: OpInfo, sample: SampleInput): boolean {
    const def = getOpDef(info.op);
    if (!def?.composite) return false;
    const reg = getKernel(info.op, this.backend.name);
    if (!reg) return false;
    return !reg.dtypes || sample.inputs.every((h) => reg.dtypes!.includes(h.dtype));
  }

  private compareOutputs(
    label: string,
    info: OpInfo,
    got: readonly HostTensor[],
    want: readonly HostTensor[],
    mags: readonly Float64Array[] | undefined,
    fails: string[],
    extra: Partial<CompareOptions> = {},
  ): void {
    if (got.length !== want.length) {
      fails.push(`${label}: ${got.length} output(s), expected ${want.length}`);
      return;
    }
    got.forEach((g, k) => {
      const w = want[k]!;
      const name = got.length > 1 ? `${label}, output ${k}` : label;
      if (g.shape.length !== w.shape.length || g.shape.some((d, i) => d !== w.shape[i])) {
        fails.push(`${name}: shape [${g.shape.join(', ')}], expected [${w.shape.join(', ')}]`);
        return;
      }
      if (g.dtype !== w.dtype) {
        fails.push(`${name}: dtype ${g.dtype}, expected ${w.dtype}`);
        return;
      }
      const exact = info.exact === true || isExactDType(g.dtype);
      const mag = mags?.[k];
      const c = compareValues(g.values, w.values, {
        tolerance: toleranceFor(g.dtype, info.tolerance),
        exact,
        ...(mag ? { magnitude: mag } : {}),
        ...extra,
      });
      if (!c.ok) fails.push(`${name}: ${describeComparison(c, g.shape)}`);
    });
  }

  private async runValues(info: OpInfo, dtype: DType, seed: number, messages: string[], counter: CheckCounts): Promise<number> {
    const rng = createSampleRng(seed);
    const samples = info.samples(rng, dtype);
    if (samples.length === 0) {
      messages.push(`the record made no samples for ${dtype}`);
      return 0;
    }
    const gradRng = createSampleRng(deriveSeed(seed, 'grad weights'));
    for (const [s, sample] of samples.entries()) {
      const fails: string[] = [];
      const before = snapshot(this.trackedBackends());
      try {
        await this.checkSample(info, dtype, sample, gradRng, fails, counter);
      } catch (err) {
        fails.push(`threw ${errorText(err)}`);
      }
      const leak = diffSnapshots(before, snapshot(this.trackedBackends()));
      if (leak) fails.push(`memory not released: ${leak}`);
      for (const f of fails) messages.push(`sample ${s} ${describeSample(sample)}: ${f}`);
    }
    return samples.length;
  }

  private async checkSample(
    info: OpInfo,
    dtype: DType,
    sample: SampleInput,
    gradRng: XoshiroSampleRng,
    fails: string[],
    counter: CheckCounts,
  ): Promise<void> {
    const attrs = sample.attrs ?? {};
    const got = await this.execute(this.backend, info, sample);
    const mags = info.magnitude?.(sample.inputs, attrs);

    if (info.reference) {
      counter.reference++;
      const want = info.reference(sample.inputs, attrs).map((r) => roundHost(r));
      this.compareOutputs('vs float64 reference', info, got, want, mags, fails);
    }
    if (info.check) {
      counter.check++;
      try {
        info.check(got, sample);
      } catch (err) {
        fails.push(`check: ${errorText(err)}`);
      }
    }
    if (this.ref !== this.backend) {
      counter.referenceBackend++;
      const refGot = await this.execute(this.ref, info, sample);
      this.compareOutputs(`vs reference backend '${this.ref.name}'`, info, got, refGot, mags, fails, { factor: 2 });
    }
    if (this.tf && dtype === 'f32' && info.tfjs) {
      const oracle = this.runTfjs(info, sample);
      if (typeof oracle === 'string') fails.push(oracle);
      else if (oracle) {
        counter.tfjs++;
        this.compareOutputs('vs tfjs', info, got, oracle, mags, fails, { factor: 2 });
      }
    }
    const composite = this.options.composite !== false && this.hasKernelAndComposite(info, sample);
    if (composite) {
      counter.composite++;
      const compGot = await this.execute(this.backend, info, sample, true);
      // The composite rounds every intermediate to the dtype: allow a few steps in low precision.
      const lowp = isLowPrecisionFloat(dtype);
      this.compareOutputs('kernel vs composite', info, got, compGot, mags, fails, lowp ? { factor: 4, rtolOnMagnitude: true } : { factor: 2 });
    }
    if (dtype === 'f32' && info.grad && !sample.noGrad && info.reference && this.options.grad !== false) {
      counter.grad++;
      await this.checkGrad(info, sample, gradRng, fails, composite);
    }
  }

  /** tfjs outputs (as host tensors of the expected dtypes), null where the oracle declines, or a failure text. */
  private runTfjs(info: OpInfo, sample: SampleInput): HostTensor[] | null | string {
    const tf = this.tf!;
    const want = info.reference ? info.reference(sample.inputs, sample.attrs ?? {}) : null;
    // tfjs mishandles empty tensors in several ops (where, broadcastTo): the oracle declines them.
    if (sample.inputs.some((h) => h.values.length === 0) || want?.some((h) => h.values.length === 0)) return null;
    const inputs = sample.inputs.map((h) => toTf(tf, h));
    try {
      if (inputs.some((t) => t === null)) return null;
      let outs: any;
      try {
        outs = tf.tidy(() => info.tfjs!(tf, inputs as any[], { ...(sample.attrs ?? {}) }));
      } catch (err) {
        return `tfjs oracle threw ${errorText(err)}`;
      }
      if (outs === null || outs === undefined) return null;
      const list: any[] = Array.isArray(outs) ? outs : [outs];
      const res = list.map((t, k) => {
        const r = fromTf(t);
        const dtype: DType = want?.[k]?.dtype ?? (t.dtype === 'bool' ? 'bool' : t.dtype === 'int32' ? 'i32' : 'f32');
        return roundHost({ shape: r.shape, dtype, values: r.values });
      });
      tf.dispose(list);
      return res;
    } finally {
      tf.dispose(inputs.filter((t) => t !== null));
    }
  }

  private async analyticGrad(
    info: OpInfo,
    sample: SampleInput,
    diff: readonly number[],
    weights: readonly (HostTensor | null)[],
    composite: boolean,
  ): Promise<HostTensor[]> {
    const b = this.backend;
    await setBackend(b.name);
    const inputs = sample.inputs.map((h) => toTensor(h, b));
    const ws = weights.map((w) => (w ? toTensor(w, b) : null));
    try {
      const loss = () => {
        const outs = this.call(info, inputs, sample.attrs ?? {});
        let total: Tensor | null = null;
        outs.forEach((o, k) => {
          const w = ws[k];
          if (!w) return;
          const of32 = o.dtype === 'f32' ? o : runOp1('cast', [o], { dtype: 'f32' });
          const term = runOp1('sum', [runOp1('mul', [of32, w])]);
          total = total ? runOp1('add', [total, term]) : term;
        });
        if (!total) throw new Error('no float output to differentiate');
        return total as Tensor;
      };
      const run = () => valueAndGrad(loss, diff.map((i) => inputs[i]!));
      const { value, grads } = composite ? withKernelsDisabled([info.op], run) : run();
      value.dispose();
      try {
        return await Promise.all(grads.map(fromTensor));
      } finally {
        dispose(grads);
      }
    } finally {
      dispose(inputs);
      dispose(ws);
    }
  }

  private async checkGrad(info: OpInfo, sample: SampleInput, rng: XoshiroSampleRng, fails: string[], composite: boolean): Promise<void> {
    const attrs = sample.attrs ?? {};
    const spec = typeof info.grad === 'object' ? info.grad : {};
    const diff = spec.inputs
      ? [...spec.inputs]
      : sample.inputs.flatMap((h, i) => (h.dtype === 'f32' ? [i] : []));
    if (diff.length === 0) return;
    const ref0 = info.reference!(sample.inputs, attrs);
    const weights = ref0.map((r) => (isFloatDType(r.dtype) && r.values.length > 0 ? rng.tensor(r.shape, 'f32') : null));
    if (weights.every((w) => w === null)) return;

    const analytic = await this.analyticGrad(info, sample, diff, weights, false);

    // Central differences of L(x) = sum_k sum_i ref_k(x)_i * w_k,i in float64 (no rounding).
    const lossOf = (ins: readonly HostTensor[]): number => {
      const outs = info.reference!(ins, attrs);
      let s = 0;
      outs.forEach((o, k) => {
        const w = weights[k];
        if (!w) return;
        for (let i = 0; i < o.values.length; i++) s += o.values[i]! * w.values[i]!;
      });
      return s;
    };
    diff.forEach((j, gi) => {
      const x = sample.inputs[j]!;
      const vals = Float64Array.from(x.values);
      const ins = [...sample.inputs];
      ins[j] = { shape: x.shape, dtype: x.dtype, values: vals };
      const fd = new Float64Array(vals.length);
      for (let e = 0; e < vals.length; e++) {
        const v = vals[e]!;
        const h = FD_STEP * Math.max(1, Math.abs(v));
        vals[e] = v + h;
        const plus = lossOf(ins);
        vals[e] = v - h;
        const minus = lossOf(ins);
        vals[e] = v;
        fd[e] = (plus - minus) / (2 * h);
      }
      const g = analytic[gi]!;
      let maxFd = 0;
      for (const v of fd) maxFd = Math.max(maxFd, Math.abs(v));
      const c = compareValues(g.values, fd, {
        tolerance: { rtol: GRAD_TOLERANCE.rtol, atol: GRAD_TOLERANCE.atol + GRAD_TOLERANCE.atolOfMax * maxFd },
      });
      if (!c.ok) fails.push(`gradient of input ${j} vs finite differences: ${describeComparison(c, x.shape)}`);
    });

    if (composite) {
      const viaComposite = await this.analyticGrad(info, sample, diff, weights, true);
      diff.forEach((j, gi) => {
        const a = analytic[gi]!;
        let maxA = 0;
        for (const v of a.values) maxA = Math.max(maxA, Math.abs(v));
        const c = compareValues(viaComposite[gi]!.values, a.values, {
          tolerance: { rtol: 1e-4, atol: GRAD_TOLERANCE.atol + 1e-5 * maxA },
        });
        if (!c.ok) fails.push(`gradient of input ${j}, composite vs kernel: ${describeComparison(c, a.shape)}`);
      });
    }
  }

  private async runErrors(info: OpInfo, seed: number, messages: string[], counter: CheckCounts): Promise<number> {
    const cases = info.errors!(createSampleRng(seed));
    if (cases.length === 0) messages.push('the record lists errors() but made no error inputs');
    for (const [idx, e] of cases.entries()) {
      const label = `error input ${idx} ${describeSample(e)}`;
      await setBackend(this.backend.name);
      const before = snapshot(this.trackedBackends());
      const inputs = e.inputs.map((h) => toTensor(h, this.backend));
      try {
        for (const d of e.disposed ?? []) inputs[d]!.dispose();
        const mid = snapshot(this.trackedBackends());
        let thrown: unknown = undefined;
        let outs: Tensor[] = [];
        try {
          outs = this.call(info, inputs, e.attrs ?? {});
        } catch (err) {
          thrown = err ?? new Error('(undefined thrown)');
        }
        counter.errors++;
        if (thrown === undefined) {
          messages.push(`${label}: expected ${e.error} matching ${e.message}, but the op returned ${outs.map((o) => `[${o.shape.join(', ')}] ${o.dtype}`).join(', ')}`);
          dispose(outs);
        } else if (!isErrorNamed(thrown, e.error)) {
          messages.push(`${label}: expected ${e.error}, got ${errorText(thrown)}`);
        } else if (!e.message.test((thrown as Error).message)) {
          messages.push(`${label}: ${e.error} message ${JSON.stringify((thrown as Error).message)} does not match ${e.message}`);
        }
        const leak = diffSnapshots(mid, snapshot(this.trackedBackends()));
        if (leak) messages.push(`${label}: the failed call left memory allocated: ${leak}`);
      } catch (err) {
        messages.push(`${label}: setup threw ${errorText(err)}`);
      } finally {
        dispose(inputs);
      }
      const leak = diffSnapshots(before, snapshot(this.trackedBackends()));
      if (leak) messages.push(`${label}: memory not released: ${leak}`);
    }
    return cases.length;
  }
}

/**
 * Runs the suite: every case of the options, then prints the summary table (unless log is
 * null). Never throws on a failing op: see `ok`, `counts` and each case's messages.
 */
export async function runConformance(options: ConformanceOptions): Promise<ConformanceResult> {
  const log = options.log === undefined ? (l: string) => console.log(l) : options.log;
  const session = await ConformanceSession.open(options);
  try {
    const plan = session.plan();
    const known = new Set((options.opInfos ?? ALL_OP_INFOS).map((i) => i.op));
    if (Array.isArray(options.ops)) {
      for (const op of options.ops as readonly string[]) if (!known.has(op)) session.notes.push(`no OpInfo record for '${op}' (filter)`);
    }
    for (const c of plan) await session.runCase(c);
    const result = session.result();
    log?.(result.summary);
    return result;
  } finally {
    await session.close();
  }
}
