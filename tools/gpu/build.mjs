#!/usr/bin/env node
/**
 * Builds the self-contained GPU bundle of shared/GPU_MACHINE.md in .carry/gpu (gitignored):
 *
 *   node.xz        this machine's Node binary, xz-compressed (unpacked to /tmp on the GPU machine)
 *   run.mjs        tools/gpu/run.ts with every workspace package bundled from its TypeScript sources
 *   node_modules/  koffi + @koromix/koffi-linux-x64 (native, left external), and tfjs-core with
 *                  its CPU backend bundled into one module (the conformance suite's f32 oracle)
 *   kernels/       the CUDA sources of @ring-linear/backend-cuda
 *   torch_bench.py the PyTorch baselines;  run.sh  the one command
 *
 * Usage: node tools/gpu/build.mjs [--out DIR]. Then, on the GPU machine: bash .carry/gpu/run.sh
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync, copyFileSync, chmodSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const outArg = process.argv.indexOf('--out');
const out = resolve(outArg > 0 ? process.argv[outArg + 1] : join(root, '.carry', 'gpu'));
const LIMIT = 40 * 2 ** 20;

mkdirSync(out, { recursive: true });
for (const f of ['run.mjs', 'node_modules', 'kernels']) rmSync(join(out, f), { recursive: true, force: true });

// 1. The entry, bundled. koffi stays external (native); createRequire lets bundled CommonJS
//    dependencies require Node's built-ins from an ES module.
await build({
  entryPoints: [join(root, 'tools', 'gpu', 'run.ts')],
  outfile: join(out, 'run.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  conditions: ['@ring-linear/source'],
  external: ['koffi', '@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-cpu'],
  banner: { js: "import { createRequire as __rlCreateRequire } from 'node:module'; const require = __rlCreateRequire(import.meta.url);" },
  minify: true,
  keepNames: true, // error classes are matched by name
  legalComments: 'none',
  // Workspace packages list only their entry file in "sideEffects", but their kernel files
  // register themselves on import: keep every import.
  ignoreAnnotations: true,
  logLevel: 'warning',
});

// 2. Native FFI: koffi and its linux-x64 binary (glibc only).
const nm = join(out, 'node_modules');
const pkg = (name) => realpathSync(join(root, 'node_modules', name));
cpSync(pkg('koffi'), join(nm, 'koffi'), { recursive: true, dereference: true, filter: (p) => !/\/(doc|vendor)(\/|$)/.test(p) });
cpSync(pkg('@koromix/koffi-linux-x64'), join(nm, '@koromix', 'koffi-linux-x64'), { recursive: true, dereference: true, filter: (p) => !p.includes('musl_x64') });

// 3. tfjs (oracle of the conformance suite): core + CPU backend in one module, so both share one
//    tfjs instance; the backend package becomes an empty module.
const tfDir = join(nm, '@tensorflow', 'tfjs-core');
mkdirSync(tfDir, { recursive: true });
await build({
  stdin: { contents: "export * from '@tensorflow/tfjs-core';\nimport '@tensorflow/tfjs-backend-cpu';\n", resolveDir: root, loader: 'js' },
  outfile: join(tfDir, 'index.mjs'),
  bundle: true,
  mainFields: ['module', 'main'], // tfjs's ES module builds, so `export *` sees every name
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  ignoreAnnotations: true,
  banner: { js: "import { createRequire as __rlCreateRequire } from 'node:module'; const require = __rlCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
writeFileSync(join(tfDir, 'package.json'), JSON.stringify({ name: '@tensorflow/tfjs-core', type: 'module', main: 'index.mjs', exports: './index.mjs' }));
const tfCpu = join(nm, '@tensorflow', 'tfjs-backend-cpu');
mkdirSync(tfCpu, { recursive: true });
writeFileSync(join(tfCpu, 'index.mjs'), '// registered by the bundled @tensorflow/tfjs-core module\nexport {};\n');
writeFileSync(join(tfCpu, 'package.json'), JSON.stringify({ name: '@tensorflow/tfjs-backend-cpu', type: 'module', main: 'index.mjs', exports: './index.mjs' }));

// 4. Kernel sources, scripts.
cpSync(join(root, 'packages', 'backend-cuda', 'kernels'), join(out, 'kernels'), { recursive: true });
for (const f of readdirSync(join(root, 'tools', 'gpu')).filter((n) => n === 'run.sh' || /^torch_\w+\.py$/.test(n))) copyFileSync(join(root, 'tools', 'gpu', f), join(out, f));
chmodSync(join(out, 'run.sh'), 0o755);

// 5. Node itself, xz-compressed (reused while the binary is unchanged).
const nodeBin = realpathSync(process.execPath);
const nodeXz = join(out, 'node.xz');
const stamp = `${nodeBin} ${statSync(nodeBin).size} ${statSync(nodeBin).mtimeMs} ${process.version}`;
const stampFile = join(out, 'node.xz.stamp');
if (!existsSync(nodeXz) || !existsSync(stampFile) || execFileSync('cat', [stampFile], { encoding: 'utf8' }) !== stamp) {
  console.log(`compressing ${nodeBin} (${process.version}) with xz ...`);
  execFileSync('sh', ['-c', `xz -T2 -c "${nodeBin}" > "${nodeXz}.tmp" && mv "${nodeXz}.tmp" "${nodeXz}"`], { stdio: 'inherit' });
  writeFileSync(stampFile, stamp);
}

const size = (p) => {
  const s = statSync(p);
  return s.isDirectory() ? readdirSync(p).reduce((a, f) => a + size(join(p, f)), 0) : s.size;
};
const total = size(out);
const mib = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`;
console.log(`bundle ${out}: ${mib(total)} (node.xz ${mib(size(nodeXz))}, run.mjs ${mib(size(join(out, 'run.mjs')))}, node_modules ${mib(size(nm))})`);
if (total > LIMIT) {
  console.error(`bundle is larger than ${mib(LIMIT)}`);
  process.exit(1);
}
console.log(`on the GPU machine: bash ${join('.carry', 'gpu', 'run.sh')}  (carry .carry; results in $OUT)`);
