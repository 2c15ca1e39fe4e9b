/**
 * The plain-Node entry (no Vitest): parses arguments, imports the backend's package, runs the
 * suite, prints the summary and returns the exit code (0 only when nothing failed).
 *
 *   ring-linear-conformance --backend webgpu [--import @ring-linear/backend-webgpu]
 *     [--reference cpu] [--ops add,matmul] [--dtypes f32,bf16] [--seed N] [--no-tfjs]
 *     [--no-grad] [--no-composite] [--no-errors] [--quiet]
 */
import { isDType, type DType } from '@ring-linear/core';
import { runConformance, type ConformanceOptions } from './runner.js';

export interface CliOptions {
  readonly backend: string;
  readonly reference: string;
  readonly imports: string[];
  readonly ops?: string[];
  readonly dtypes?: DType[];
  readonly seed?: number;
  readonly tfjs: boolean;
  readonly grad: boolean;
  readonly composite: boolean;
  readonly errors: boolean;
  readonly quiet: boolean;
  readonly help: boolean;
}

export const CLI_USAGE = `usage: ring-linear-conformance --backend NAME [options]
  --backend NAME       backend under test (default cpu); its package @ring-linear/backend-NAME is
                       imported when NAME is not registered yet
  --import MODULE      import a module first (a backend package that registers itself); repeatable
  --reference NAME     reference backend (default cpu)
  --ops a,b,c          only these ops          --dtypes f32,bf16   only these dtypes
  --seed N             sample seed (default: fresh, printed)
  --no-tfjs            skip the tfjs oracle    --no-grad           skip gradient checks
  --no-composite       skip kernel-vs-composite checks
  --no-errors          skip error-input checks --quiet             print only failures and the totals
exit status: 0 when every case passed (expected failures allowed), 1 on any failure, 2 on bad usage`;

class UsageError extends Error {}

/** Parses command-line arguments (throws on bad usage, with a message). */
export function parseCliArgs(argv: readonly string[]): CliOptions {
  const o = { backend: 'cpu', reference: 'cpu', imports: [] as string[], tfjs: true, grad: true, composite: true, errors: true, quiet: false, help: false } as {
    -readonly [K in keyof CliOptions]: CliOptions[K];
  };
  const value = (i: number, flag: string) => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const take = () => (inline !== undefined ? inline : value(i++, flag));
    switch (flag) {
      case '--backend': o.backend = take(); break;
      case '--reference': o.reference = take(); break;
      case '--import': o.imports.push(take()); break;
      case '--ops': o.ops = take().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--dtypes': {
        const list = take().split(',').map((s) => s.trim()).filter(Boolean);
        const bad = list.filter((d) => !isDType(d));
        if (bad.length) throw new UsageError(`--dtypes: unknown dtype(s) ${bad.join(', ')} (f32, f16, bf16, f8e4m3, f8e5m2, i32, u8, bool)`);
        o.dtypes = list as DType[];
        break;
      }
      case '--seed': {
        const s = Number(take());
        if (!Number.isInteger(s) || s < 0 || s >= 2 ** 32) throw new UsageError('--seed needs an integer in [0, 2^32)');
        o.seed = s;
        break;
      }
      case '--no-tfjs': o.tfjs = false; break;
      case '--no-grad': o.grad = false; break;
      case '--no-composite': o.composite = false; break;
      case '--no-errors': o.errors = false; break;
      case '--quiet': o.quiet = true; break;
      case '--help': case '-h': o.help = true; break;
      default: throw new UsageError(`unknown argument '${a}'`);
    }
  }
  return o;
}

/** Runs the suite from command-line arguments; resolves to the exit code. */
export async function runConformanceCli(argv: readonly string[], out: (line: string) => void = (l) => console.log(l)): Promise<number> {
  let cli: CliOptions;
  try {
    cli = parseCliArgs(argv);
  } catch (err) {
    out(`${(err as Error).message}\n${CLI_USAGE}`);
    return 2;
  }
  if (cli.help) {
    out(CLI_USAGE);
    return 0;
  }
  const core = await import('@ring-linear/core');
  const imports = [...cli.imports];
  // The reference backend and the backend under test register themselves when imported.
  if (!core.registeredBackends().includes('cpu')) imports.unshift('@ring-linear/backend-cpu');
  for (const m of imports) await import(/* @vite-ignore */ m);
  for (const name of new Set([cli.backend, cli.reference])) {
    if (core.registeredBackends().includes(name)) continue;
    const pkg = `@ring-linear/backend-${name}`;
    try {
      await import(/* @vite-ignore */ pkg);
    } catch (err) {
      out(`backend '${name}' is not registered and ${pkg} could not be imported (${(err as Error).message}); pass --import MODULE`);
      return 2;
    }
  }
  const options: ConformanceOptions = {
    backend: cli.backend,
    reference: cli.reference,
    ...(cli.ops ? { ops: cli.ops } : {}),
    ...(cli.dtypes ? { dtypes: cli.dtypes } : {}),
    ...(cli.seed !== undefined ? { seed: cli.seed } : {}),
    tfjs: cli.tfjs,
    grad: cli.grad,
    composite: cli.composite,
    errors: cli.errors,
    log: out,
    ...(cli.quiet ? {} : { report: (r) => out(`${r.status === 'passed' ? 'ok   ' : r.status === 'xfail' ? 'xfail' : 'FAIL '} ${r.id} (${r.samples} samples, ${r.checks} checks, ${r.ms} ms)`) }),
  };
  try {
    const result = await runConformance(options);
    return result.ok ? 0 : 1;
  } catch (err) {
    out(`conformance run failed: ${(err as Error).stack ?? String(err)}`);
    return 1;
  }
}
