// WebGPU kernels of the ops @ring-linear/fp8 defines (MODEL_SPEC §8), registered by op name (this
// package does not import the fp8 package: layering points down).
import './quantize.js';
import './fused.js';
import './gemm.js';
