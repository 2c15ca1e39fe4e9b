/**
 * OpInfo: one declarative record per op (PyTorch OpInfo style). Generic templates in the runner
 * turn each record into checks: every dtype the op supports x every sample input, against the
 * float64 reference (and, for f32, tfjs as an independent oracle); finite-difference gradient
 * checks; and error inputs with the expected error class and message.
 */
import type { DType, RingLinearError } from '@ring-linear/core';

/** A host-side tensor: exact values (already representable in `dtype`) in float64. */
export interface HostTensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly values: Float64Array;
}

/** Deterministic random source for sample generation (seeded per run; the seed is printed). */
export interface SampleRng {
  /** Uniform in [0, 1). */
  next(): number;
  uniform(lo: number, hi: number): number;
  normal(): number;
  int(lo: number, hiExclusive: number): number;
  pick<T>(xs: readonly T[]): T;
  /**
   * A random tensor of `dtype`, values rounded to the dtype (floats: normal * scale by default;
   * i32/u8: small integers; bool: coin flips). Never all zeros.
   */
  tensor(
    shape: readonly number[],
    dtype: DType,
    opts?: { lo?: number; hi?: number; scale?: number; positive?: boolean; int?: boolean; minAbs?: number },
  ): HostTensor;
}

export interface SampleInput {
  readonly inputs: readonly HostTensor[];
  readonly attrs?: Record<string, unknown>;
  /** Shown in test names: what is special about this case ("broadcast [3,1] x [1,5]"). */
  readonly desc?: string;
  /**
   * Skip the finite-difference gradient check for this sample: inputs at a kink or a tie (max with
   * equal values, relu at 0), an output whose reference is not smooth (a cast to a narrower
   * dtype), or a sample too large for finite differences.
   */
  readonly noGrad?: boolean;
}

export interface ErrorInput {
  readonly inputs: readonly HostTensor[];
  readonly attrs?: Record<string, unknown>;
  /** Name of the expected error class (e.g. 'ShapeError'). */
  readonly error: string;
  /** The message must match. */
  readonly message: RegExp;
  readonly desc?: string;
  /** Indices of inputs that are disposed before the call (expects DisposedTensorError). */
  readonly disposed?: readonly number[];
}

export interface Tolerance {
  readonly atol: number;
  readonly rtol: number;
}

export interface OpInfo {
  /** Name of the op in the registry. */
  readonly op: string;
  /** Dtypes the op must work in on every backend. */
  readonly dtypes: readonly DType[];
  /** Sample inputs for one dtype (the rng is seeded per run). */
  readonly samples: (rng: SampleRng, dtype: DType) => SampleInput[];
  /**
   * Float64 reference: outputs from the inputs' exact values. The runner rounds the result to the
   * output dtype before comparing with tolerance. Omit only where no closed form exists (random
   * ops: those give `check` instead).
   */
  readonly reference?: (inputs: readonly HostTensor[], attrs: Record<string, unknown>) => HostTensor[];
  /**
   * Per output, per element: the magnitude of the terms that went into it (sum |x| for a sum,
   * sum |a||b| for a matmul). Where results cancel, f32 accumulation error scales with this, not
   * with the result: the tolerance adds `ACCUMULATION_RTOL * magnitude` (tolerance.ts).
   */
  readonly magnitude?: (inputs: readonly HostTensor[], attrs: Record<string, unknown>) => Float64Array[];
  /** Custom check instead of / besides the reference (e.g. statistics of random ops). Throws on failure. */
  readonly check?: (outputs: readonly HostTensor[], sample: SampleInput) => void;
  /** Independent oracle for f32: the same computation in tfjs (tf is @tensorflow/tfjs-core with the CPU backend). */
  readonly tfjs?: (tf: any, inputs: any[], attrs: Record<string, unknown>) => any | any[];
  /** Finite-difference gradient checks on f32 samples (inputs to differentiate: float inputs, or these indices). */
  readonly grad?: boolean | { readonly inputs?: readonly number[] };
  readonly errors?: (rng: SampleRng) => ErrorInput[];
  /** Per-dtype tolerance overrides (defaults: tolerance.ts). */
  readonly tolerance?: Partial<Record<DType, Tolerance>>;
  /** Outputs compared exactly (indices, bools, data movement) regardless of dtype. */
  readonly exact?: boolean;
  /** How to call the op (default: runOp(op, inputs, attrs)). */
  readonly call?: (inputs: any[], attrs: Record<string, unknown>) => any[];
  /** Expected failures on a backend: { webgpu: 'reason' } (a pass there is reported as unexpected). */
  readonly xfail?: Readonly<Record<string, string>>;
}

export type ErrorClassName = RingLinearError['name'];
