// The MoE ops' OpInfo records through the conformance runner against the WebGPU backend (Dawn; on
// machines without a GPU, SwiftShader): float64 references (chosen experts and dispatch plans
// exactly), the CPU backend as reference, error inputs, leak checks. Skipped, with the reason
// printed, where there is no WebGPU adapter.
//
// Kernel-vs-composite and gradient checks are off here: on SwiftShader every core op a composite or
// a backward uses compiles its own pipelines (minutes in all); the composites and gradient
// formulas are checked on the CPU (conformance.test.ts), and webgpu-moe.test.ts compares the
// gradients of the whole MoE on WebGPU (which run these kernels backward) with the CPU's.
import { vi } from 'vitest';
import '@ring-linear/backend-cpu';
import { describeConformance } from '@ring-linear/conformance/vitest';
import { optionalBackendReason } from '@ring-linear/conformance';
import { moeOpInfos } from '../src/opinfo.js';

// Pipelines compile slowly on SwiftShader (a CPU Vulkan): one case can take seconds.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const reason = await optionalBackendReason('webgpu', () => import('@ring-linear/backend-webgpu'), 'moe webgpu conformance');

describeConformance({ backend: 'webgpu', opInfos: moeOpInfos, tfjs: false, composite: false, grad: false, skip: reason ?? false });
