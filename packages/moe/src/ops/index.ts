// Importing these files defines the MoE ops (each file: definitions, gradients, composites and
// the user-facing functions). Backends register kernels for them by op name.
export * from './router.js';
export * from './dispatch.js';
export * from './grouped_matmul.js';
