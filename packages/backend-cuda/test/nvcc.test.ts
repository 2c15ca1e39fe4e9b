/**
 * CI gate: every generated kernel module compiles with nvcc, as a cubin for sm_90a (front end,
 * NVVM and ptxas) and as PTX for sm_80. Skips with a printed reason when nvcc is missing. The
 * modules are exactly what NVRTC gets at run time (same headers, same generated source); nvcc has
 * no -default-device, so the sources mark every function __device__ explicitly.
 * RING_LINEAR_NVCC_ARCHS (e.g. "sm_90a") narrows the targets.
 */
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { allModuleSpecs, HEADER_FILES, moduleSource } from '../src/kernels/sources.js';
import { findKernelDir } from '../src/kernels/modules.js';

const run = promisify(execFile);
const NVCC = process.env.NVCC ?? 'nvcc';
let nvccVersion: string | null = null;
try {
  nvccVersion = execFileSync(NVCC, ['--version'], { encoding: 'utf8' }).trim().split('\n').pop() ?? '';
} catch {
  console.log(`[backend-cuda] nvcc compile test skipped: '${NVCC}' not found (install the CUDA toolkit or set NVCC)`);
}

const TARGETS = [
  { arch: 'sm_90a', mode: '-cubin', ext: 'cubin' },
  { arch: 'sm_80', mode: '--ptx', ext: 'ptx' },
].filter((t) => !process.env.RING_LINEAR_NVCC_ARCHS || process.env.RING_LINEAR_NVCC_ARCHS.split(',').includes(t.arch));

describe.skipIf(!nvccVersion)('kernel sources compile with nvcc', () => {
  it(`every module, for ${TARGETS.map((t) => t.arch).join(' and ')}`, async () => {
    console.log(`[backend-cuda] ${nvccVersion}`);
    const dir = mkdtempSync(join(tmpdir(), 'rl-nvcc-'));
    const kdir = findKernelDir();
    for (const h of HEADER_FILES) copyFileSync(join(kdir, h), join(dir, h));
    const specs = allModuleSpecs();
    for (const s of specs) writeFileSync(join(dir, `${s.key}.cu`), moduleSource(s));
    const jobs = specs.flatMap((s) => TARGETS.map((t) => ({ s, t })));
    const failures: string[] = [];
    const t0 = Date.now();
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        const { s, t } = jobs[next++]!;
        const args = ['-std=c++17', `-arch=${t.arch}`, t.mode, '-I', dir, '-o', join(dir, `${s.key}.${t.arch}.${t.ext}`), join(dir, `${s.key}.cu`)];
        try {
          const { stderr } = await run(NVCC, args, { maxBuffer: 1 << 24 });
          if (/warning/i.test(stderr)) console.log(`[backend-cuda] nvcc warnings in ${s.key} (${t.arch}):\n${stderr}`);
        } catch (err) {
          const e = err as { stderr?: string; message: string };
          failures.push(`${s.key}.cu for ${t.arch}:\n${(e.stderr ?? e.message).split('\n').slice(0, 30).join('\n')}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, cpus().length) }, worker));
    console.log(`[backend-cuda] nvcc compiled ${jobs.length - failures.length}/${jobs.length} module builds (${specs.length} modules) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(failures, failures.join('\n\n')).toEqual([]);
  }, 1_800_000);
});
