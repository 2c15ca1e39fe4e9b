// The full conformance suite (packages/conformance) against the WebGPU backend. Without a WebGPU
// adapter the suite is skipped with the reason printed; it never counts as passed.
import { describeConformance } from '@ring-linear/conformance/vitest';
import { webgpu } from './helpers.js';

const { gpu, reason } = await webgpu();

describeConformance({ backend: 'webgpu', skip: gpu ? false : `no WebGPU adapter: ${reason}` });
