/**
 * NVRTC compiles the kernel sources without the host's C headers, so macros that come from
 * <math.h> / <cmath> (INFINITY, NAN, HUGE_VALF) are undefined there, while the nvcc test (which
 * includes them through the host compiler) still passes: a kernel using -INFINITY compiled with
 * nvcc here and failed under NVRTC on the GPU. The kernels spell infinity as
 * __int_as_float(0x7f800000) instead.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const KERNELS = fileURLToPath(new URL('../kernels', import.meta.url));
const HOST_ONLY = /\b(INFINITY|NAN|HUGE_VALF?|FLT_MAX|FLT_MIN|M_PI)\b/;

describe('kernel sources are NVRTC-clean', () => {
  it('use no macros from the host C headers (NVRTC has none)', () => {
    const files = readdirSync(KERNELS).filter((f) => /\.(cuh|cu)$/.test(f));
    expect(files.length).toBeGreaterThan(5);
    const hits: string[] = [];
    for (const f of files) {
      readFileSync(join(KERNELS, f), 'utf8')
        .split('\n')
        .forEach((line, i) => {
          const code = line.replace(/\/\/.*$/, '');
          const m = HOST_ONLY.exec(code);
          if (m) hits.push(`${f}:${i + 1}: ${m[1]}`);
        });
    }
    expect(hits).toEqual([]);
  });
});
