// The attention ops' OpInfo records through the conformance runner on the CPU backend: float64
// references, composites vs fused kernels, gradients vs finite differences, error inputs, leaks.
import '@ring-linear/backend-cpu';
import { describeConformance } from '@ring-linear/conformance/vitest';
import { attentionOpInfos } from '../src/opinfo.js';

describeConformance({ backend: 'cpu', opInfos: attentionOpInfos, tfjs: false });
