/**
 * @ring-linear/moe: the Mixture-of-Experts layer of ring-linear (MODEL_SPEC §4): the fp32 router
 * with group-limited stable top-k, the deterministic dropless dispatch (plan, permute, grouped
 * GEMM, combine), auxiliary-loss-free balancing with load statistics, an optional sequence-wise
 * auxiliary loss, and the MoE / MoEGate / DenseMLP modules with checkpoint names. Every op has a
 * composite in core ops; backends register fused kernels by op name. OpInfo records for the
 * conformance suite: '@ring-linear/moe/opinfo'.
 */
export * from './ops/index.js';
export * from './balance.js';
export * from './modules.js';
