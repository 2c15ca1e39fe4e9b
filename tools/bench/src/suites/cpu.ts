/**
 * backend-cpu against tfjs-backend-cpu (same inputs, same process, timed alternately).
 * Both are synchronous JavaScript backends: an op has finished when its call returns, so `run`
 * times the op call itself (no readback on either side). Outputs are disposed after each run.
 */
import * as tf from '@tensorflow/tfjs-core';
import { version_cpu } from '@tensorflow/tfjs-backend-cpu';
import { add, matmul, setBackend, softmax, sum, tensor, type Tensor } from '@ring-linear/core';
import '@ring-linear/backend-cpu';
import type { Bench, Comparison, DeviceInfo, Suite } from '../framework.js';
import { cpuName } from '../device.js';

const TFJS = `tfjs-backend-cpu ${version_cpu}`;

/** Deterministic inputs (mulberry32), uniform in [-1, 1), so both sides see the same numbers. */
function randomValues(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * A bench of `ours(inputs)` against `theirs(inputs)` on f32 inputs of the given shapes.
 * Each side builds its own tensors from the same host values in setup.
 */
function pair(
  spec: Omit<Bench<Tensor[]>, 'setup' | 'run' | 'teardown' | 'comparison' | 'backend' | 'dtype'>,
  ours: (xs: Tensor[]) => Tensor,
  theirs: (xs: tf.Tensor[]) => tf.Tensor,
): Bench<Tensor[]> {
  let hostValues: Float32Array[] | null = null; // made on first setup, shared by both sides
  const host = () => (hostValues ??= spec.shapes.map((s, i) => randomValues(size(s), 1234 + i)));
  const comparison: Comparison<tf.Tensor[]> = {
    name: TFJS,
    setup: () => host().map((v, i) => tf.tensor(v, spec.shapes[i]!, 'float32')),
    run: (xs) => {
      theirs(xs).dispose();
    },
    teardown: (xs) => xs.forEach((x) => x.dispose()),
  };
  return {
    ...spec,
    backend: 'cpu',
    dtype: 'f32',
    setup: () => host().map((v, i) => tensor(v, spec.shapes[i]!, 'f32')),
    run: (xs) => {
      ours(xs).dispose();
    },
    teardown: (xs) => xs.forEach((x) => x.dispose()),
    comparison,
  };
}

function matmulBench(n: number): Bench {
  return pair(
    {
      name: `matmul f32 ${n}x${n}x${n}`,
      op: 'matmul',
      shapes: [[n, n], [n, n]],
      flops: 2 * n * n * n,
      bytes: 4 * 3 * n * n,
    },
    ([a, b]) => matmul(a!, b!),
    ([a, b]) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
  );
}

/** Softmax over the last axis of [rows, 4096] (a vocabulary-sized row, as at an LM head). */
function softmaxBench(rows: number, cols: number): Bench {
  return pair(
    {
      name: `softmax f32 ${rows}x${cols} (last axis)`,
      op: 'softmax',
      shapes: [[rows, cols]],
      bytes: 4 * 2 * rows * cols,
    },
    ([x]) => softmax(x!, -1),
    ([x]) => tf.softmax(x!, -1),
  );
}

function addBench(n: number): Bench {
  return pair(
    { name: `add f32 ${n}+${n}`, op: 'add', shapes: [[n], [n]], flops: n, bytes: 4 * 3 * n },
    ([a, b]) => add(a!, b!),
    ([a, b]) => tf.add(a!, b!),
  );
}

function sumBench(rows: number, cols: number): Bench {
  const n = rows * cols;
  return pair(
    { name: `sum f32 ${rows}x${cols} (all)`, op: 'sum', shapes: [[rows, cols]], flops: n, bytes: 4 * (n + 1) },
    ([x]) => sum(x!),
    ([x]) => tf.sum(x!),
  );
}

export const cpuSuite: Suite = {
  backend: 'cpu',
  async init(): Promise<DeviceInfo> {
    await setBackend('cpu');
    await tf.setBackend('cpu');
    await tf.ready();
    // tfjs-backend-cpu prints a "use tfjs-node" banner on its first tensor under Node; not useful here.
    (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
    return {
      name: cpuName(),
      note:
        'CPU: no official per-core FLOP/s or bandwidth ceiling is published for this part/VM, so no %peak is given; ' +
        'both backends are single-threaded scalar JavaScript.',
    };
  },
  benches: () => [
    matmulBench(256),
    matmulBench(512),
    matmulBench(1024),
    softmaxBench(256, 4096),
    addBench(1 << 20),
    sumBench(1024, 1024),
  ],
};
