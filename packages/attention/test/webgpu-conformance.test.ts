// The attention ops' OpInfo records through the conformance runner against the WebGPU backend
// (Dawn; on machines without a GPU, SwiftShader): float64 references (the recurrence for lightning
// attention, full score rows for softmax attention), the CPU backend as reference, error inputs,
// leak checks, for f32, bf16 and f16. Skipped, with the reason printed, where there is no WebGPU
// adapter.
//
// Kernel-vs-composite and gradient checks are off here: on SwiftShader every core op a composite
// uses compiles its own pipelines (minutes in all). The composites and the gradient formulas are
// checked on the CPU (conformance.test.ts); webgpu-attention.test.ts compares gradients computed
// on WebGPU (through these kernels' backward ops) with the CPU's.
import { vi } from 'vitest';
import '@ring-linear/backend-cpu';
import { describeConformance } from '@ring-linear/conformance/vitest';
import { optionalBackendReason } from '@ring-linear/conformance';
import { attentionOpInfos } from '../src/opinfo.js';

// Pipelines compile slowly on SwiftShader (a CPU Vulkan): one case can take seconds.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const reason = await optionalBackendReason('webgpu', () => import('@ring-linear/backend-webgpu'), 'attention webgpu conformance');

describeConformance({ backend: 'webgpu', opInfos: attentionOpInfos, tfjs: false, composite: false, grad: false, skip: reason ?? false });
