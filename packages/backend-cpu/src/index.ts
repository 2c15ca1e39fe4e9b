/**
 * @ring-linear/backend-cpu — the reference backend and the embedded default.
 * Importing this package registers the 'cpu' backend (priority 1) and its kernels.
 */
import { registerBackend } from '@ring-linear/core';
import { CpuBackend } from './backend.js';
import './kernels/index.js';

registerBackend('cpu', () => new CpuBackend(), 1);

export { CpuBackend, CpuBuffer } from './backend.js';
export { raw, values, outValues, commit, storeNumbers, register as registerCpuKernel } from './util.js';
