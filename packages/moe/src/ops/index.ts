// Importing these files defines the MoE ops (each file: definitions, gradients, composites and
// the user-facing functions). Backends register kernels for them by op name.
export * from './router.js';
export * from './dispatch.js';
export * from './grouped_matmul.js';

/** The ops this package defines: what a backend implements to accelerate the MoE layer. */
export const MOE_OPS = ['moeRouter', 'moeDispatchPlan', 'moePermute', 'moeCombine', 'groupedMatmul', 'groupedMatmulAtB'] as const;
