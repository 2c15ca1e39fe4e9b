/**
 * Builds the mock CUDA libraries (mockcuda.c) into a temporary directory and points the CUDA
 * backend at them through RING_LINEAR_CUDA_LIBS. Returns null (with the reason) when no C
 * compiler or no koffi is available.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface MockLibs {
  readonly dir: string;
  readonly cacheDir: string;
}

export async function buildMockCuda(): Promise<MockLibs | { skip: string }> {
  try {
    await import('koffi');
  } catch {
    return { skip: 'koffi is not installed' };
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'rl-mockcuda-'));
  const cc = process.env.CC ?? 'cc';
  try {
    execFileSync(cc, ['-shared', '-fPIC', '-O1', '-o', join(dir, 'libcuda.so.1'), join(here, 'mockcuda.c')], { stdio: 'pipe' });
  } catch (err) {
    return { skip: `no C compiler to build the mock CUDA libraries (${(err as Error).message.split('\n')[0]})` };
  }
  copyFileSync(join(dir, 'libcuda.so.1'), join(dir, 'libnvrtc.so.13'));
  copyFileSync(join(dir, 'libcuda.so.1'), join(dir, 'libcublasLt.so.13'));
  const cacheDir = mkdtempSync(join(tmpdir(), 'rl-mockcache-'));
  process.env.RING_LINEAR_CUDA_LIBS = dir;
  process.env.RING_LINEAR_CUDA_CACHE = cacheDir;
  return { dir, cacheDir };
}
