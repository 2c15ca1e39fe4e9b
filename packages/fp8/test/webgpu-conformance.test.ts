// The FP8 ops' OpInfo records through the conformance runner against the WebGPU backend (Dawn; on
// machines without a GPU, SwiftShader): float64 references (the quantizers' codes and scales
// exactly), the CPU backend as reference, error inputs, leak checks. Skipped, with the reason
// printed, where there is no WebGPU adapter.
//
// Kernel-vs-composite and gradient checks are off here: on SwiftShader every core op a composite or
// a backward uses compiles its own pipelines (minutes in all). webgpu-fp8.test.ts checks the fused
// kernels against their composites on WebGPU byte for byte, and fp8Linear's gradients against the CPU.
import { vi } from 'vitest';
import '@ring-linear/backend-cpu';
import { describeConformance } from '@ring-linear/conformance/vitest';
import { optionalBackendReason } from '@ring-linear/conformance';
import { fp8OpInfos } from '../src/opinfo.js';

// Pipelines compile slowly on SwiftShader (a CPU Vulkan): one case can take seconds.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const reason = await optionalBackendReason('webgpu', () => import('@ring-linear/backend-webgpu'), 'fp8 webgpu conformance');

describeConformance({ backend: 'webgpu', opInfos: fp8OpInfos, tfjs: false, composite: false, grad: false, skip: reason ?? false });
