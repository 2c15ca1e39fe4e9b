/**
 * backend-webgpu against tfjs-backend-webgpu, in the same process on the same adapter: Dawn's GPU
 * object from the `webgpu` package is installed as `navigator.gpu` before either backend starts,
 * so both request their device from it (in a browser-like way).
 *
 * Timing: each run enqueues the op and waits until the GPU has finished it (ours:
 * `backend.synchronize()`; tfjs: end its pass, `submitQueue()`, `queue.onSubmittedWorkDone()`), without
 * reading the result back. Before timing, each bench checks our output against tfjs's.
 *
 *   npm run bench -- --backend webgpu [--filter matmul]
 *
 * On a CPU adapter (SwiftShader) the numbers only prove that the suite runs.
 */
import { add, matmul, mul, setBackend, sigmoid, softmax, tanh, tensor, type Backend, type Tensor } from '@ring-linear/core';
import type { Bench, Comparison, DeviceInfo, Suite } from '../framework.js';

type Tf = typeof import('@tensorflow/tfjs-core');
type TfTensor = import('@tensorflow/tfjs-core').Tensor;

interface TfWebGpu {
  device: GPUDevice;
  commandEncoder: GPUCommandEncoder | null;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

let tf: Tf;
let tfjsName = 'tfjs-backend-webgpu';
let ours: Backend & { synchronize(): Promise<void> };

/** Deterministic inputs (mulberry32), uniform in [-1, 1). */
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

async function tfFinish(): Promise<void> {
  const b = tf.backend() as unknown as TfWebGpu;
  // What tfjs itself does before a readback: close the open pass, submit what was recorded.
  b.endComputePassEncoder();
  if (b.commandEncoder) b.submitQueue();
  await b.device.queue.onSubmittedWorkDone();
}

/** Largest |ours - theirs| relative to the largest |theirs| (one readback each, before timing). */
async function relativeError(a: Tensor, b: TfTensor): Promise<number> {
  const x = await a.data();
  const y = (await b.data()) as Float32Array;
  let err = 0;
  let ref = 0;
  for (let i = 0; i < y.length; i++) {
    err = Math.max(err, Math.abs(x[i]! - y[i]!));
    ref = Math.max(ref, Math.abs(y[i]!));
  }
  return err / Math.max(ref, 1e-30);
}

function pair(
  spec: Omit<Bench<Tensor[]>, 'setup' | 'run' | 'teardown' | 'comparison' | 'backend' | 'dtype'>,
  oursFn: (xs: Tensor[]) => Tensor,
  theirsFn: (xs: TfTensor[]) => TfTensor,
  rtol: number,
): Bench<Tensor[]> {
  let host: Float32Array[] | null = null;
  const values = () => (host ??= spec.shapes.map((s, i) => randomValues(size(s), 4321 + i)));
  const comparison: Comparison<TfTensor[]> = {
    name: tfjsName,
    setup: () => values().map((v, i) => tf.tensor(v, spec.shapes[i]!, 'float32')),
    run: async (xs) => {
      const y = theirsFn(xs);
      await tfFinish();
      y.dispose();
    },
    teardown: (xs) => xs.forEach((x) => x.dispose()),
  };
  return {
    ...spec,
    backend: 'webgpu',
    dtype: 'f32',
    setup: async () => {
      const xs = values().map((v, i) => tensor(v, spec.shapes[i]!, 'f32', ours));
      // Check the two implementations agree before timing either.
      const txs = values().map((v, i) => tf.tensor(v, spec.shapes[i]!, 'float32'));
      const a = oursFn(xs);
      const b = theirsFn(txs);
      const err = await relativeError(a, b);
      a.dispose();
      b.dispose();
      txs.forEach((t) => t.dispose());
      if (!(err <= rtol)) throw new Error(`${spec.name}: backend-webgpu and ${tfjsName} differ (max error ${err.toExponential(2)} of the largest value, allowed ${rtol})`);
      return xs;
    },
    run: async (xs) => {
      const y = oursFn(xs);
      await ours.synchronize();
      y.dispose();
    },
    teardown: (xs) => xs.forEach((x) => x.dispose()),
    comparison,
  };
}

function matmulBench(n: number): Bench {
  return pair(
    { name: `matmul f32 ${n}x${n}x${n}`, op: 'matmul', shapes: [[n, n], [n, n]], flops: 2 * n * n * n, bytes: 4 * 3 * n * n },
    ([a, b]) => matmul(a!, b!),
    ([a, b]) => tf.matMul(a as never, b as never),
    1e-4,
  );
}

function softmaxBench(rows: number, cols: number): Bench {
  return pair(
    { name: `softmax f32 ${rows}x${cols} (last axis)`, op: 'softmax', shapes: [[rows, cols]], bytes: 4 * 2 * rows * cols },
    ([x]) => softmax(x!, -1),
    ([x]) => tf.softmax(x!, -1),
    1e-5,
  );
}

/** tanh(x * a + b) * sigmoid(x): five elementwise kernels on each side. */
function chainBench(n: number): Bench {
  return pair(
    { name: `elementwise chain f32 ${n} (tanh(x*a+b)*sigmoid(x))`, op: 'elementwise', shapes: [[n], [n], [n]], flops: 5 * n, bytes: 4 * n * 12 },
    ([x, a, b]) => {
      const t1 = mul(x!, a!);
      const t2 = add(t1, b!);
      const t3 = tanh(t2);
      const t4 = sigmoid(x!);
      const y = mul(t3, t4);
      for (const t of [t1, t2, t3, t4]) t.dispose();
      return y;
    },
    ([x, a, b]) => tf.tidy(() => tf.mul(tf.tanh(tf.add(tf.mul(x!, a!), b!)), tf.sigmoid(x!))),
    1e-5,
  );
}

export const webgpuSuite: Suite = {
  backend: 'webgpu',
  async init(): Promise<DeviceInfo> {
    const wg = await import('@ring-linear/backend-webgpu');
    const g = globalThis as { navigator?: { gpu?: GPU } };
    if (!g.navigator?.gpu) {
      // Node: Dawn's GPU object stands in for the browser's, for both backends.
      wg.prepareNodeVulkanEnv(process as never);
      const { create, globals } = (await import('webgpu')) as unknown as { create(options: string[]): GPU; globals: object };
      // tfjs-backend-webgpu uses the WebGPU globals (GPUBufferUsage, GPUMapMode, ...).
      Object.assign(globalThis, globals);
      Object.defineProperty(globalThis, 'navigator', { value: { ...(g.navigator ?? {}), gpu: create([]) }, configurable: true, writable: true });
    }
    ours = (await setBackend('webgpu')) as typeof ours;
    tf = await import('@tensorflow/tfjs-core');
    const tfw = await import('@tensorflow/tfjs-backend-webgpu');
    tfjsName = `tfjs-backend-webgpu ${(tfw as { version_webgpu?: string }).version_webgpu ?? ''}`.trim();
    await tf.setBackend('webgpu');
    await tf.ready();
    return {
      name: ours.capabilities.device,
      note:
        'WebGPU: both backends on the same adapter in one process; no datasheet ceiling is applied to WebGPU numbers. ' +
        'GFLOP/s = 2MNK / median time for matmul.',
    };
  },
  benches: () => [
    matmulBench(1024),
    matmulBench(2048),
    matmulBench(4096),
    softmaxBench(512, 32768),
    chainBench(1 << 22),
  ],
  async dispose() {
    const { disposeBackend } = await import('@ring-linear/core');
    tf.disposeVariables();
    tf.engine().reset();
    await disposeBackend('webgpu');
  },
};
