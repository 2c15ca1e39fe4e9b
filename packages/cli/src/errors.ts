/**
 * The command's two failure kinds, by exit code (conventional for command-line tools):
 *   2  UsageError: the command line itself is wrong (unknown flag, bad value, missing argument);
 *      the message says what was expected and what came, and how to get help
 *   1  anything that went wrong while doing the work (a file that cannot be read, a config that
 *      does not validate, a backend that is not available here)
 */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A wrong command line (exit code 2). `command` is the subcommand whose help to point to. */
export class UsageError extends Error {
  readonly command: string | null;

  constructor(message: string, command: string | null = null) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

/** A failure while running a command (exit code 1), with a message meant for the user. */
export class CliError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
  }
}
