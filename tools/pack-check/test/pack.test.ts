// Each published package must work on its own: pack it as npm would publish it, install the
// tarballs into an empty project (no workspace, no hoisted node_modules), then import it as ESM,
// typecheck a consumer against its .d.ts, and run a small program. An undeclared dependency or a
// missing file in `files` fails here. Nx builds the packages first (test dependsOn ^build).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');
const PACKAGES = ['core', 'backend-cpu'];
let dir = '';

function sh(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });
}

beforeAll(() => {
  for (const p of PACKAGES) {
    if (!existsSync(join(root, 'packages', p, 'dist', 'index.js'))) {
      throw new Error(`packages/${p}/dist is missing: build first (npm test runs the build through nx)`);
    }
  }
  dir = mkdtempSync(join(tmpdir(), 'ring-linear-pack-'));
  const tarballs = PACKAGES.map((p) => {
    const out = sh('npm', ['pack', '--pack-destination', dir, '--json'], join(root, 'packages', p));
    return join(dir, JSON.parse(out)[0].filename as string);
  });
  const app = join(dir, 'app');
  sh('mkdir', ['-p', app], dir);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  sh('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', ...tarballs], app);
}, 300_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('packed packages', () => {
  it('contain only dist, README and package.json', () => {
    const app = join(dir, 'app', 'node_modules', '@ring-linear');
    for (const p of PACKAGES) {
      const files = readdirSync(join(app, p)).sort();
      expect(files.filter((f) => !['dist', 'package.json', 'README.md', 'LICENSE'].includes(f))).toEqual([]);
      expect(readdirSync(join(app, p, 'dist'))).toContain('index.d.ts');
    }
  });

  it('import as ESM and compute in a fresh project', () => {
    const app = join(dir, 'app');
    writeFileSync(
      join(app, 'main.mjs'),
      `import '@ring-linear/backend-cpu';
import { tensor, matmul, softmax, valueAndGrad, sum, memory } from '@ring-linear/core';
const a = tensor([[1, 2], [3, 4]]);
const b = tensor([[0.5], [-1]]);
const y = matmul(a, b);
const { grads } = valueAndGrad(() => sum(y.dtype === 'f32' ? matmul(a, b) : y), [b]);
console.log(JSON.stringify({ y: Array.from(await y.data()), g: Array.from(await grads[0].data()), p: Array.from(await softmax(tensor([0, Math.log(3)])).data()), tensors: memory().tensors }));
`,
    );
    const out = JSON.parse(sh('node', ['main.mjs'], app));
    expect(out.y).toEqual([-1.5, -2.5]);
    expect(out.g).toEqual([4, 6]);
    expect(out.p[0]).toBeCloseTo(0.25, 6);
    expect(out.p[1]).toBeCloseTo(0.75, 6);
  });

  it('ship types a strict consumer compiles against', () => {
    const app = join(dir, 'app');
    writeFileSync(
      join(app, 'check.ts'),
      `import '@ring-linear/backend-cpu';
import { tensor, matmul, type Tensor, type DType } from '@ring-linear/core';
const dt: DType = 'bf16';
const t: Tensor = matmul(tensor([[1]], [1, 1], dt), tensor([[2]], [1, 1], dt));
export const shape: readonly number[] = t.shape;
// @ts-expect-error a wrong dtype name is a type error
export const bad: DType = 'float32';
`,
    );
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, skipLibCheck: false, types: [] }, files: ['check.ts'] }),
    );
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    expect(() => sh('node', [tsc, '-p', 'tsconfig.json'], app)).not.toThrow();
  });
});
