/** Host description for CPU benchmarks. */
import { execFileSync } from 'node:child_process';
import os from 'node:os';

/** CPU model as lscpu names it (falls back to os.cpus()), with the logical CPU count. */
export function cpuName(): string {
  let model = os.cpus()[0]?.model?.trim() || 'unknown CPU';
  try {
    const out = execFileSync('lscpu', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const m = /^Model name:\s*(.+)$/m.exec(out);
    if (m?.[1]) model = m[1].trim();
  } catch {
    // lscpu is Linux-only; os.cpus() is enough elsewhere.
  }
  return `${model} (${os.cpus().length} logical CPUs, ${os.arch()})`;
}

/** Node/V8 versions and the git commit, recorded with every JSON result. */
export function environment(): Record<string, string> {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // not a git checkout
  }
  return { node: process.version, v8: process.versions.v8, platform: `${os.platform()} ${os.release()}`, commit };
}
