/**
 * Typed errors of the trainer. Each says what was expected and what came, names the file (and
 * line) or setting where there is one, and is thrown before anything is changed: no half-loaded
 * optimizer, no half-written checkpoint over a good one.
 */
import { RingLinearError } from '@ring-linear/core';

/** A training setting that is out of range or inconsistent (learning rate, steps, sequence length, ...). */
export class TrainerConfigError extends RingLinearError {}

/** A data file that cannot be used: missing, empty, malformed JSONL, a token outside the vocabulary. */
export class DataError extends RingLinearError {
  /** The file (or source name) the problem is in, when there is one. */
  readonly file: string | null;
  /** 1-based line number in the file, when the problem is on a line. */
  readonly line: number | null;

  constructor(message: string, file: string | null = null, line: number | null = null) {
    super(file ? `${file}${line !== null ? `:${line}` : ''}: ${message}` : message);
    this.file = file;
    this.line = line;
  }
}

/**
 * A training checkpoint that cannot be resumed or merged: missing files, a corrupt state file,
 * tensors that do not match, or a checkpoint written for a different model config (every
 * differing field is listed).
 */
export class TrainingCheckpointError extends RingLinearError {
  /** The checkpoint folder or file. */
  readonly path: string;
  /** For a config mismatch: one line per differing field ("hidden_size: checkpoint 64, model 32"). */
  readonly differences: readonly string[];

  constructor(path: string, message: string, differences: readonly string[] = []) {
    super(`${path}: ${message}${differences.length ? `:\n  - ${differences.join('\n  - ')}` : ''}`);
    this.path = path;
    this.differences = [...differences];
  }
}
