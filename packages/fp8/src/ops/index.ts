// Importing this defines the FP8 ops (the registry is global); backends register kernels by name.
export * from './quantize.js';
export * from './fused.js';
export * from './gemm.js';
export * from './linear.js';
export {
  amaxOf,
  expandScales,
  pow2CeilComposite,
  quantizeComposite,
  quantizeWithScalesComposite,
  scalesFromAmax,
} from './common.js';

/** Every op this package defines (for conformance coverage and kernel lists). */
export const FP8_OPS = [
  'fp8Quantize',
  'fp8QuantizeWithScales',
  'fp8Dequantize',
  'fp8QuantTranspose',
  'fp8RmsNormQuant',
  'fp8SwigluQuant',
  'fp8SwigluBackwardQuant',
  'fp8GroupRmsNormGateQuant',
  'routerGemm',
  'fp8Gemm',
  'fp8GroupedGemm',
  'fp8Linear',
] as const;
