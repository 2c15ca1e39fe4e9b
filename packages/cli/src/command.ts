/**
 * What a subcommand is (its spec and its run function), the context it runs in, and flag groups
 * several commands share (backend, sampling).
 */
import path from 'node:path';
import { mkdir, readdir, stat } from 'node:fs/promises';
import type { GenerateOptions } from '@ring-linear/sampler';
import type { CommandSpec, FlagReader, FlagSpec } from './args.js';
import { BACKEND_NAMES, type BackendName } from './backends.js';
import { CliError } from './errors.js';
import type { CliIo } from './io.js';

export interface CommandContext {
  readonly io: CliIo;
  readonly flags: FlagReader;
  readonly positionals: readonly string[];
  /** --json: one JSON object on stdout, nothing else there. */
  readonly json: boolean;
  /** How to invoke the command in hints ('ring-linear', or 'npm run ring-linear --' from sources). */
  readonly invocation: string;
}

export interface Command {
  readonly spec: CommandSpec;
  /** Returns the exit code (0 when nothing is returned). */
  run(ctx: CommandContext): Promise<number | void>;
}

export const BACKEND_FLAG: Readonly<Record<string, FlagSpec>> = {
  backend: { type: 'string', value: '<name>', description: `compute backend: ${BACKEND_NAMES.join(', ')} ('ring-linear info' shows which work here)`, default: 'cpu' },
};

export function backendOf(flags: FlagReader): BackendName {
  return flags.oneOf('backend', BACKEND_NAMES, 'cpu');
}

export const SAMPLING_FLAGS: Readonly<Record<string, FlagSpec>> = {
  'max-tokens': { type: 'string', value: '<n>', description: 'most tokens to generate per answer' },
  temperature: { type: 'string', value: '<t>', description: 'sampling temperature; 0 = greedy', default: '0.8' },
  'top-k': { type: 'string', value: '<k>', description: 'keep the k most likely tokens (0 = off)', default: '0' },
  'top-p': { type: 'string', value: '<p>', description: 'nucleus sampling: keep the smallest set with mass >= p (1 = off)', default: '1' },
  'min-p': { type: 'string', value: '<p>', description: 'keep tokens with probability >= p * the top probability (0 = off)', default: '0' },
  'repetition-penalty': { type: 'string', value: '<r>', description: 'penalize tokens already seen (1 = off)', default: '1' },
  seed: { type: 'string', value: '<n>', description: 'seed of the sampling draws (same seed, same text)' },
  stop: { type: 'string', value: '<text>', multiple: true, description: 'stop when the output contains this text' },
};

/** GenerateOptions from the sampling flags (values range-checked here, with flag names). */
export function samplingOptions(flags: FlagReader, defaults: { maxTokens: number }): GenerateOptions {
  const seed = flags.int('seed', { min: 0 });
  const stop = flags.strings('stop');
  return {
    maxTokens: flags.int('max-tokens', { min: 1, fallback: defaults.maxTokens }),
    temperature: flags.number('temperature', { min: 0, fallback: 0.8 }),
    topK: flags.int('top-k', { min: 0, fallback: 0 }),
    topP: flags.number('top-p', { min: 0, max: 1, exclusiveMin: true, fallback: 1 }),
    minP: flags.number('min-p', { min: 0, max: 1, fallback: 0 }),
    repetitionPenalty: flags.number('repetition-penalty', { min: 0, exclusiveMin: true, fallback: 1 }),
    ...(seed !== undefined ? { seed } : {}),
    ...(stop.length ? { stop } : {}),
  };
}

/** "2026-11-27-123456" (local time) for run folder names. */
export function timestamp(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * The output folder of a run: `explicit` (must be new or empty: nothing a user has is written
 * over), or `<cwd>/runs/<prefix>-<timestamp>` (with -2, -3, ... when taken). Created here.
 */
export async function freshOutputDir(io: CliIo, explicit: string | undefined, prefix: string): Promise<string> {
  if (explicit !== undefined) {
    const dir = path.resolve(io.cwd, explicit);
    if (await exists(dir)) {
      const s = await stat(dir);
      if (!s.isDirectory()) throw new CliError(`${explicit} exists and is not a folder; choose another output folder`);
      const entries = await readdir(dir);
      if (entries.length > 0) throw new CliError(`${explicit} is not empty (${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}); nothing is written over existing files, so choose a new or empty folder`);
    }
    await mkdir(dir, { recursive: true });
    return dir;
  }
  const base = path.join(io.cwd, 'runs', `${prefix}-${timestamp((io.now ?? (() => new Date()))())}`);
  let dir = base;
  for (let i = 2; await exists(dir); i++) dir = `${base}-${i}`;
  await mkdir(dir, { recursive: true });
  return dir;
}

/** A path as shown to the user: relative to the working folder when inside it. */
export function showPath(io: CliIo, p: string): string {
  const rel = path.relative(io.cwd, p);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : p;
}

/** Writes one JSON object (the --json output). */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
