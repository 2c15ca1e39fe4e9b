/**
 * `ring-linear info`: the backends this machine can run, with the device of each one that works
 * and the reason for each one that does not (no WebGPU adapter, no CUDA driver, package missing).
 */
import os from 'node:os';
import { printJson, type Command } from '../command.js';
import { BACKEND_NAMES, probeBackend, type BackendName, type BackendReport } from '../backends.js';
import { version } from '../version.js';

export interface InfoReport {
  readonly version: string;
  readonly node: string;
  readonly platform: string;
  readonly arch: string;
  readonly cpus: number;
  readonly backends: readonly BackendReport[];
  /** The backend commands use without --backend. */
  readonly default: 'cpu';
  /** The fastest available backend (CUDA, then WebGPU, then CPU). */
  readonly best: BackendName;
}

/** Probes every backend (each one's package, initialization, device) and collects the facts. */
export async function collectInfo(options: { only?: readonly BackendName[]; timeoutMs?: number } = {}): Promise<InfoReport> {
  const names = options.only ?? BACKEND_NAMES;
  const backends: BackendReport[] = [];
  for (const name of names) backends.push(await probeBackend(name, { timeoutMs: options.timeoutMs ?? 60_000 }));
  const best = (['cuda', 'webgpu', 'cpu'] as const).find((n) => backends.some((b) => b.name === n && b.available)) ?? 'cpu';
  return { version: version(), node: process.version, platform: os.platform(), arch: os.arch(), cpus: os.availableParallelism?.() ?? os.cpus().length, backends, default: 'cpu', best };
}

export const infoCommand: Command = {
  spec: {
    name: 'info',
    summary: 'list the compute backends available here, their devices, and why the others are not',
    usage: ['info [flags]'],
    description:
      'Imports and initializes each backend: cpu (built in, always there), webgpu (@ring-linear/backend-webgpu: a GPU adapter ' +
      'through navigator.gpu or Dawn; on Linux without a GPU, SwiftShader from Debian\'s chromium package) and cuda ' +
      '(@ring-linear/backend-cuda: an NVIDIA GPU with its driver, NVRTC and cuBLASLt). Prints the device of each backend ' +
      'that works and the reason for each one that does not.',
    flags: {
      backend: { type: 'string', value: '<names>', description: 'probe only these (comma-separated: cpu,webgpu,cuda)' },
      timeout: { type: 'string', value: '<s>', description: 'give up on a backend that takes longer to initialize', default: '60' },
    },
    examples: ['ring-linear info', 'ring-linear info --json', 'ring-linear info --backend webgpu'],
  },

  async run({ io, flags, json }) {
    const only = flags.choiceList('backend', BACKEND_NAMES);
    const timeoutMs = flags.number('timeout', { min: 0, exclusiveMin: true, fallback: 60 }) * 1000;
    const info = await collectInfo({ ...(only ? { only } : {}), timeoutMs });
    if (json) {
      printJson(io, info);
      return;
    }
    const w = io.stdout;
    w.write(`ring-linear ${info.version} on Node.js ${info.node} (${info.platform} ${info.arch}, ${info.cpus} CPU${info.cpus === 1 ? '' : 's'})\n\n`);
    w.write('backends:\n');
    for (const b of info.backends) {
      if (b.available) {
        w.write(`  ${b.name.padEnd(7)} available      ${b.device}\n`);
        if (/swiftshader|llvmpipe/i.test(b.device ?? '')) w.write(`  ${''.padEnd(7)} note           a software GPU on the CPU (for testing; slower than the cpu backend)\n`);
        if (b.features?.length) w.write(`  ${''.padEnd(7)} features       ${b.features.join(', ')}\n`);
        if (b.nativeDTypes?.length) w.write(`  ${''.padEnd(7)} native dtypes  ${b.nativeDTypes.join(', ')}\n`);
        if (b.reason) w.write(`  ${''.padEnd(7)} driver         ${b.reason}\n`);
      } else {
        w.write(`  ${b.name.padEnd(7)} not available  ${b.reason}\n`);
      }
    }
    w.write(`\ndefault backend: cpu (the embedded default); pass --backend ${info.best === 'cpu' ? 'webgpu|cuda' : info.best} to a command to use ${info.best === 'cpu' ? 'a GPU where one is available' : `the ${info.best} backend`}\n`);
  },
};
