/**
 * @ring-linear/conformance: the suite every backend must pass. OpInfo records (one per op) are
 * turned into value checks against float64 references, the reference backend and tfjs, gradient
 * checks, composite-vs-kernel checks, error-input checks and leak checks.
 *
 *   import '@ring-linear/backend-cpu';              // the reference
 *   import '@my/backend';                           // registers 'mine'
 *   const r = await runConformance({ backend: 'mine' });
 *   if (!r.ok) process.exitCode = 1;
 *
 * Vitest: `describeConformance` from '@ring-linear/conformance/vitest'. Plain Node: the
 * `ring-linear-conformance` command (runConformanceCli).
 */
export {
  runConformance,
  planConformance,
  missingOpInfos,
  ConformanceSession,
  type BackendSpec,
  type ConformanceOptions,
  type ConformanceResult,
  type CaseResult,
  type CaseStatus,
  type CheckCounts,
  type PlannedCase,
} from './runner.js';
export { formatSummary } from './report.js';
export { optionalBackendReason } from './optional.js';
export { runConformanceCli, parseCliArgs, type CliOptions } from './cli_run.js';
export { createSampleRng, deriveSeed, freshSeed, XoshiroSampleRng, type TensorOptions } from './rng.js';
export {
  DEFAULT_TOLERANCES,
  ACCUMULATION_RTOL,
  GRAD_TOLERANCE,
  toleranceFor,
  compareValues,
  describeComparison,
  type Comparison,
  type CompareOptions,
} from './tolerance.js';
export {
  host,
  hostScalar,
  roundToDtypeValue,
  roundHost,
  isRepresentable,
  toTensor,
  fromTensor,
  mapUnary,
  mapBroadcast,
  broadcastShape,
  normAxes,
  reducedShape,
  reductionGroups,
  reduceHost,
  unflatten,
} from './host.js';
export { UNARY_SHAPES, BINARY_SHAPES, representableValues, specialsTensor, fillFrom } from './samples.js';
export { loadTfjs } from './tfjs.js';
export { ALL_OP_INFOS } from './opinfo/index.js';
export type * from './opinfo/types.js';
