// `info`: every backend is reported, available with a device or not available with a reason
// (this machine's answer for WebGPU and CUDA is printed, whichever it is); `bench --builtin`
// times matmul and softmax; the repository's bench suites are found from a checkout.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { findBenchSuite, version } from '../src/index.js';
import { cli } from './helpers.js';

describe('ring-linear info', () => {
  it('--json: cpu, webgpu and cuda, each available with a device or not with a reason', async () => {
    const r = await cli(['info', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const info = r.json();
    expect(info).toMatchObject({ version: version(), node: process.version, platform: process.platform, arch: process.arch, default: 'cpu' });
    expect(info.cpus).toBeGreaterThanOrEqual(1);
    expect(info.backends.map((b: { name: string }) => b.name)).toEqual(['cpu', 'webgpu', 'cuda']);
    for (const b of info.backends) {
      expect(typeof b.available).toBe('boolean');
      expect(b.package).toBe(`@ring-linear/backend-${b.name}`);
      expect(b.probeMs).toBeGreaterThanOrEqual(0);
      if (b.available) {
        expect(b.device.length).toBeGreaterThan(0);
        expect(Array.isArray(b.features)).toBe(true);
        expect(b.nativeDTypes).toContain('f32');
      } else {
        expect(b.reason.length).toBeGreaterThan(10);
        expect(b.device).toBeUndefined();
      }
      console.log(`[info] ${b.name}: ${b.available ? `available, ${b.device}` : `not available: ${b.reason}`}`);
    }
    const [cpu, webgpu, cuda] = info.backends;
    expect(cpu.available).toBe(true);
    expect(cpu.device).toMatch(/CPU/);
    if (!cuda.available) expect(cuda.reason).toMatch(/^CUDA not available: /);
    if (!webgpu.available) expect(webgpu.reason).toMatch(/webgpu|WebGPU|adapter|Vulkan/);
    const best = cuda.available ? 'cuda' : webgpu.available ? 'webgpu' : 'cpu';
    expect(info.best).toBe(best);
  }, 120_000);

  it('text: one block per backend, and how to pick one', async () => {
    const r = await cli(['info', '--backend', 'cpu,cuda']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.startsWith(`ring-linear ${version()} on Node.js ${process.version}`)).toBe(true);
    expect(r.stdout).toMatch(/\n {2}cpu {5}available {6}CPU/);
    expect(r.stdout).toMatch(/\n {2}cuda {4}(available|not available {2}CUDA not available: )/);
    expect(r.stdout).not.toContain('webgpu  ');
    expect(r.stdout).toContain('default backend: cpu (the embedded default)');
  }, 60_000);
});

describe('ring-linear bench', () => {
  it('--builtin --json: matmul and softmax medians and rates', async () => {
    const r = await cli(['bench', '--builtin', '--size', '48', '--repeat', '3', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = r.json();
    expect(j.backend).toBe('cpu');
    expect(j.results.map((x: { name: string }) => x.name)).toEqual(['matmul', 'softmax']);
    for (const x of j.results) {
      expect(x.runs).toBe(3);
      expect(x.medianMs).toBeGreaterThan(0);
      expect(x.minMs).toBeLessThanOrEqual(x.medianMs);
      expect(x.rate).toBeGreaterThan(0);
    }
    // GFLOP/s of the matmul is 2 n^3 / time.
    const mm = j.results[0];
    expect(mm.shape).toBe('[48, 48] x [48, 48]');
    expect(mm.rate).toBeCloseTo((2 * 48 ** 3) / (mm.medianMs * 1e6), 6);
    const text = await cli(['bench', '--builtin', '--size', '16', '--repeat', '1']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/matmul +\[16, 16\] x \[16, 16\] +[\d.]+ ms +[\d.]+ GFLOP\/s/);
    expect(text.stdout).toMatch(/softmax +\[16, 64\] rows +[\d.]+ ms +[\d.]+ GB\/s/);
  }, 60_000);

  it('finds tools/bench of this checkout (from here and from the package)', () => {
    const repo = fileURLToPath(new URL('../../..', import.meta.url));
    const suite = findBenchSuite(process.cwd());
    expect(suite).not.toBeNull();
    expect(suite!.main).toBe(join(repo, 'tools', 'bench', 'src', 'main.ts'));
    expect(findBenchSuite('/')?.main).toBe(suite!.main); // from this file's folder upwards
  });
});
