/**
 * Where a command reads and writes. The real process streams in bin.ts; tests pass buffers, so
 * every command runs in-process and its output can be asserted without spawning.
 */
import type { Readable } from 'node:stream';

export interface OutStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface CliIo {
  readonly stdout: OutStream;
  /** Progress, notes and errors (stdout stays clean for --json and for piping samples). */
  readonly stderr: OutStream;
  /** Input of the chat REPL and of prompts piped to `generate`. */
  readonly stdin: Readable & { readonly isTTY?: boolean };
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Folder relative paths are resolved against. */
  readonly cwd: string;
  /** Current time (run folder names); injectable for tests. */
  readonly now?: () => Date;
}

/** The process's own streams. */
export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env, cwd: process.cwd() };
}

/** Collects written text (tests, and callers that want the output as a string). */
export class TextSink implements OutStream {
  text = '';
  readonly isTTY: boolean;
  readonly columns: number | undefined;

  constructor(options: { isTTY?: boolean; columns?: number } = {}) {
    this.isTTY = options.isTTY ?? false;
    this.columns = options.columns;
  }

  write(text: string): boolean {
    this.text += text;
    return true;
  }
}
