/**
 * Test helpers: run the command in-process with captured streams, and temp folders removed after
 * each file's tests.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll } from 'vitest';
import { TextSink, runCli, type CliIo } from '../src/index.js';

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed as JSON (for --json runs). */
  json<T = any>(): T;
}

/** Runs `ring-linear <argv>` in-process. */
export async function cli(argv: readonly string[], options: { cwd?: string; stdin?: string; now?: Date } = {}): Promise<CliRun> {
  const stdout = new TextSink();
  const stderr = new TextSink();
  const stdin = Readable.from(options.stdin !== undefined ? [options.stdin] : []) as CliIo['stdin'];
  const io: CliIo = {
    stdout,
    stderr,
    stdin,
    env: {},
    cwd: options.cwd ?? process.cwd(),
    ...(options.now ? { now: () => options.now! } : {}),
  };
  const code = await runCli(argv, io);
  return {
    code,
    stdout: stdout.text,
    stderr: stderr.text,
    json: () => {
      try {
        return JSON.parse(stdout.text);
      } catch (err) {
        throw new Error(`stdout is not JSON (${(err as Error).message}):\n${stdout.text}\nstderr:\n${stderr.text}`);
      }
    },
  };
}

const temps: string[] = [];
export async function tempDir(prefix = 'ring-linear-cli-'): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  temps.push(d);
  return d;
}
afterAll(async () => {
  for (const d of temps.splice(0)) await rm(d, { recursive: true, force: true });
});
