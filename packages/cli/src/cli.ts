/**
 * The `ring-linear` command: dispatch to the subcommands, top-level help and version, and the
 * mapping of failures to exit codes (0 ok, 1 failure while working, 2 wrong command line).
 */
import { closest, commandHelp, FlagReader, parseCommandArgs } from './args.js';
import type { Command } from './command.js';
import { benchCommand } from './commands/bench.js';
import { demoCommand } from './commands/demo.js';
import { chatCommand, generateCommand } from './commands/generate.js';
import { infoCommand } from './commands/info.js';
import { mergeCommand } from './commands/merge.js';
import { paramsCommand } from './commands/params.js';
import { quantizeCommand } from './commands/quantize.js';
import { trainCommand } from './commands/train.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from './errors.js';
import { processIo, type CliIo } from './io.js';
import { version } from './version.js';

/** The subcommands, in the order help lists them. */
export const COMMANDS: readonly Command[] = [
  demoCommand,
  infoCommand,
  trainCommand,
  generateCommand,
  chatCommand,
  paramsCommand,
  mergeCommand,
  quantizeCommand,
  benchCommand,
];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.spec.name === name);
}

export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.spec.name.length)) + 3;
  return [
    'ring-linear: train, sample and inspect hybrid linear/softmax-attention Mixture-of-Experts language models',
    '',
    'Usage:',
    '  ring-linear <command> [flags]',
    '  ring-linear <command> --help     flags and examples of a command',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.spec.name.padEnd(width)}${c.spec.summary}`),
    '',
    'Flags:',
    '  -h, --help       show this help',
    '  -v, --version    print the version',
    '',
    'Every command takes --json (one JSON object on stdout, for scripts) and --help.',
    'Exit codes: 0 success, 1 failure while running, 2 wrong command line (unknown flag, bad value).',
    '',
    'Start with:  ring-linear demo',
    '',
  ].join('\n');
}

export interface RunCliOptions {
  /** How hints spell the command (default 'ring-linear'). */
  readonly invocation?: string;
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Runs the command line `argv` (without node and the script); returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo = processIo(), options: RunCliOptions = {}): Promise<number> {
  const invocation = options.invocation ?? 'ring-linear';
  const [first, ...rest] = argv;
  if (first === undefined) {
    io.stderr.write(mainHelp());
    io.stderr.write('error: no command given\n');
    return EXIT_USAGE;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    if (first === 'help' && rest[0] !== undefined) {
      const c = findCommand(rest[0]);
      if (!c) return unknownCommand(io, rest[0]);
      io.stdout.write(commandHelp(c.spec));
      return EXIT_OK;
    }
    io.stdout.write(mainHelp());
    return EXIT_OK;
  }
  if (first === '--version' || first === '-v' || first === 'version') {
    io.stdout.write(`${version()}\n`);
    return EXIT_OK;
  }
  if (first.startsWith('-')) {
    io.stderr.write(`ring-linear: error: expected a command before flags, got '${first}'\nrun 'ring-linear --help' for the commands\n`);
    return EXIT_USAGE;
  }
  const command = findCommand(first);
  if (!command) return unknownCommand(io, first);

  // --help wins over everything else on the line (even flags that would not parse).
  const beforeTerminator = rest.indexOf('--') >= 0 ? rest.slice(0, rest.indexOf('--')) : rest;
  if (beforeTerminator.includes('--help') || beforeTerminator.includes('-h')) {
    io.stdout.write(commandHelp(command.spec));
    return EXIT_OK;
  }
  let json = beforeTerminator.includes('--json');
  try {
    const parsed = parseCommandArgs(command.spec, rest);
    const flags = new FlagReader(command.spec, parsed);
    json = flags.bool('json');
    const code = await command.run({ io, flags, positionals: parsed.positionals, json, invocation });
    return code ?? EXIT_OK;
  } catch (err) {
    const usage = err instanceof UsageError;
    const message = errorText(err);
    if (json) io.stdout.write(`${JSON.stringify({ error: { message, kind: usage ? 'usage' : 'failure', type: (err as Error)?.name ?? 'Error' } }, null, 2)}\n`);
    if (usage) {
      io.stderr.write(`error: ${message}\nrun 'ring-linear ${command.spec.name} --help' for the flags\n`);
      return EXIT_USAGE;
    }
    io.stderr.write(`ring-linear ${command.spec.name}: error: ${message}\n`);
    if (io.env.RING_LINEAR_DEBUG && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`);
    return EXIT_FAILURE;
  }
}

function unknownCommand(io: CliIo, name: string): number {
  const guess = closest(name, COMMANDS.map((c) => c.spec.name));
  io.stderr.write(`ring-linear: error: unknown command '${name}'${guess ? `; did you mean '${guess}'?` : ''}\nrun 'ring-linear --help' for the commands\n`);
  return EXIT_USAGE;
}
