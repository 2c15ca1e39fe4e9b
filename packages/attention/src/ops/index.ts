// Importing these files defines the attention ops (each file: definitions, gradients, composites
// and the user-facing functions).
export * from './lightning.js';
export * from './softmax_attention.js';
export * from './rope.js';
export * from './gate.js';
export { checkCuSeqlens, packedSegments } from './common.js';
