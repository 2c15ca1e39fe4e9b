// The shared settings, with longer timeouts: on CI the kernels run on SwiftShader (a CPU Vulkan),
// where each pipeline compile takes tens of milliseconds and the conformance suite minutes.
import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.ts';

export default mergeConfig(shared, defineConfig({ test: { testTimeout: 300_000, hookTimeout: 300_000 } }));
