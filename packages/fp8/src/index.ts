/**
 * @ring-linear/fp8: linghe-style FP8 (MODEL_SPEC §8). E4M3/E5M2 formats and the scale rule,
 * QuantizedTensor, blockwise quantizers (per-tensor, per-row, 1x128 tiles, 128x128 blocks) and
 * quant+transpose, fused quantizing ops (RMSNorm, SwiGLU and its backward, the group-norm gate),
 * the fp32 router GEMM, the block-scaled FP8 GEMM and its grouped (MoE) form, and Fp8Linear with
 * the FP8 backward plus toFp8() to convert a model. Every op has a composite in core ops; backends
 * register fused kernels by op name (@ring-linear/backend-cpu has them all).
 */
export * from './formats.js';
export * from './ops/index.js';
export * from './quantized.js';
export * from './nn.js';
