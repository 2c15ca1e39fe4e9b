// The MoE ops' OpInfo records through the conformance runner on the CPU backend: float64
// references, kernel vs composite, finite-difference gradients, error inputs, leak checks.
import '@ring-linear/backend-cpu';
import { describeConformance } from '@ring-linear/conformance/vitest';
import { moeOpInfos } from '../src/opinfo.js';

describeConformance({ backend: 'cpu', opInfos: moeOpInfos, tfjs: false });
