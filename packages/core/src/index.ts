// @ring-linear/core: tensors, dtypes and codecs, the backend interface, ops, autograd, memory
// scopes, the Philox RNG and nn basics.
export * from './errors.js';
export * from './dtype/dtype.js';
export * from './dtype/codecs.js';
export * from './shape.js';
export type * from './backend.js';
export * from './op.js';
export { Tensor, Storage, decodeBytes, type NestedArray } from './tensor.js';
export {
  registerBackend,
  registeredBackends,
  initBackend,
  setBackend,
  ready,
  getBackend,
  withBackend,
  findBackend,
  disposeBackend,
  memory,
  tidy,
  keep,
  dispose,
  fromBytes,
  tensor,
  scalar,
  encodeHost,
  toBackend,
  runOp,
  runOp1,
  noGrad,
  allocTensor,
  type MemoryInfo,
  type TensorContainer,
  type TensorLike,
} from './engine.js';
export { valueAndGrad, grad, type ValueAndGrad, type GradOptions } from './autograd/grad.js';
export * from './ops/index.js';
export * from './rng/philox.js';
export * from './nn/index.js';
