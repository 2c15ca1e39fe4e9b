// Runs in a real browser page (bundled by test/browser.test.ts): matmul + softmax on the WebGPU
// backend (navigator.gpu) and on the CPU backend, compared in the page.
import { initBackend, matmul, softmax, tensor, toBackend, type Tensor } from '@ring-linear/core';
import '@ring-linear/backend-cpu';
import '../../src/index.js';

interface Result {
  ok: boolean;
  device?: string;
  error?: string;
  checks?: { name: string; maxAbsErr: number; maxRef: number }[];
}

async function compare(name: string, g: Tensor, c: Tensor): Promise<{ name: string; maxAbsErr: number; maxRef: number }> {
  const gv = await g.data();
  const cv = await c.data();
  if (gv.length !== cv.length) throw new Error(`${name}: ${gv.length} values from WebGPU, ${cv.length} from the CPU`);
  let maxAbsErr = 0;
  let maxRef = 0;
  for (let i = 0; i < gv.length; i++) {
    maxAbsErr = Math.max(maxAbsErr, Math.abs(gv[i]! - cv[i]!));
    maxRef = Math.max(maxRef, Math.abs(cv[i]!));
  }
  if (!Number.isFinite(maxAbsErr)) throw new Error(`${name}: non-finite difference`);
  return { name, maxAbsErr, maxRef };
}

async function run(): Promise<Result> {
  const gpu = await initBackend('webgpu');
  const cpu = await initBackend('cpu');
  // Deterministic, non-trivial inputs (a small LCG).
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296) * 2 - 1;
  const M = 45;
  const K = 67;
  const N = 33;
  const a = tensor(Float32Array.from({ length: M * K }, rnd), [M, K], 'f32', cpu);
  const b = tensor(Float32Array.from({ length: K * N }, rnd), [K, N], 'f32', cpu);
  const ga = await toBackend(a, 'webgpu');
  const gb = await toBackend(b, 'webgpu');
  const checks = [];
  const gc = matmul(ga, gb);
  const cc = matmul(a, b);
  checks.push(await compare('matmul', gc, cc));
  checks.push(await compare('softmax', softmax(gc, -1), softmax(cc, -1)));
  const gbf = matmul(ga, gb, { transposeB: false });
  checks.push(await compare('softmax(axis 0)', softmax(gbf, 0), softmax(cc, 0)));
  return { ok: true, device: gpu.capabilities.device, checks };
}

(globalThis as { __ringLinearResult?: Promise<Result> }).__ringLinearResult = run().catch((err: unknown) => ({
  ok: false,
  error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
}));
