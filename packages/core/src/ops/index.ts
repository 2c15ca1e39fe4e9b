// Each file defines one family of core ops (definitions, gradients, composites) and the
// user-facing functions that run them.
export * from './util.js';
export * from './elementwise.js';
export * from './shape_basic.js';
export * from './reduce.js';
export * from './matmul.js';
export * from './shape.js';
export * from './indexing.js';
export * from './nn.js';
export * from './creation.js';
