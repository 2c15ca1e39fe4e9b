// The whole suite against the CPU backend (the reference itself): every OpInfo record, every
// dtype, against float64 references and tfjs, with gradient, composite, error and leak checks.
// The main CI check of the op library. Seed: RING_LINEAR_SEED=N to reproduce a printed run.
import '@ring-linear/backend-cpu';
import { describeConformance } from '../src/vitest.js';

describeConformance({ backend: 'cpu' });
