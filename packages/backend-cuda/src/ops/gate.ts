/**
 * CUDA kernel of @ring-linear/attention's groupRmsNormGate (MODEL_SPEC §2.5; this package does not
 * import the attention package: the op is registered by name): the C channels of o in `groups`
 * groups, each RMS-normalized in f32 with the rmsNorm kernel's reduction (kernels/nn.cuh), times
 * weight, times sigmoid(gate), rounded once to o's dtype. One block per row (kernels/fp8.cuh
 * group_rms_norm_gate_rows, shared with fp8GroupRmsNormGateQuant).
 */
import { DTYPE_SUFFIX, moduleSpec } from '../kernels/sources.js';
import { GROUP_GATE_THREADS } from './fp8.js';
import { rmsNormThreads } from './nn.js';
import { ptr, register, type Ctx } from './common.js';

register('groupRmsNormGate', ({ backend: b, inputs: [o, gate, w], outputs: [y], attrs }: Ctx<{ groups: number; eps: number }>) => {
  // gate has o's dtype and shape, weight [C] (the op's infer).
  const C = o!.shape[o!.shape.length - 1]!;
  const rows = o!.size / C;
  if (rows === 0) return;
  const S = C / attrs.groups;
  b.kernel(moduleSpec('fp8fused', o!.dtype), `group_rms_norm_gate_${DTYPE_SUFFIX[o!.dtype]}_${DTYPE_SUFFIX[w!.dtype]}`).launch(
    [rows, 1, 1], [GROUP_GATE_THREADS, 1, 1],
    [ptr(o!), ptr(gate!), ptr(w!), ptr(y!), rows, C, S, rmsNormThreads(S), Math.fround(attrs.eps)],
  );
});
