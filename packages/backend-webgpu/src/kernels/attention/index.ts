// Kernels of the fused ops that @ring-linear/attention defines, registered by op name (this
// package does not import the attention package: layering points down).
import './lightning.js';
import './softmax.js';
import './rope.js';
import './gate.js';
