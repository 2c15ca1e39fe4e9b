// WebGPU kernels of the ops @ring-linear/moe defines, registered by op name (this package does not
// import the moe package: layering points down).
import './router.js';
import './dispatch.js';
import './grouped_matmul.js';
