/**
 * Typed errors of the model zoo. Each lists everything that is wrong at once (a config with three
 * bad fields gets one error naming all three), says what was expected and what came, and is
 * thrown before anything is changed (no half-loaded model, no half-written checkpoint).
 */
import { RingLinearError } from '@ring-linear/core';

/** A config.json (or config object) with missing, mistyped or inconsistent fields. */
export class ConfigError extends RingLinearError {
  /** One line per problem, e.g. "num_attention_heads (16) is not a multiple of num_key_value_heads (3)". */
  readonly problems: readonly string[];

  constructor(problems: readonly string[], source = 'config') {
    super(`invalid ${source} (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`);
    this.problems = [...problems];
  }
}

/**
 * A safetensors file or checkpoint folder that cannot be read as claimed: a corrupt or lying
 * header, a truncated file, an unsupported dtype, a missing shard, non-finite values.
 */
export class SafetensorsError extends RingLinearError {
  /** The file (or source name) the problem is in. */
  readonly file: string;

  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.file = file;
  }
}

/**
 * Checkpoint tensors that do not match the model: missing, unexpected or mis-shaped names, all
 * listed in one error. Nothing was loaded.
 */
export class CheckpointMismatchError extends RingLinearError {
  readonly missing: readonly string[];
  readonly unexpected: readonly string[];
  readonly mismatched: readonly { readonly name: string; readonly expected: string; readonly got: string }[];

  constructor(
    missing: readonly string[],
    unexpected: readonly string[],
    mismatched: readonly { readonly name: string; readonly expected: string; readonly got: string }[],
  ) {
    const parts: string[] = [];
    const list = (xs: readonly string[]) => (xs.length > 20 ? `${xs.slice(0, 20).join(', ')}, ... (${xs.length - 20} more)` : xs.join(', '));
    if (missing.length) parts.push(`missing ${missing.length}: ${list(missing)}`);
    if (unexpected.length) parts.push(`unexpected ${unexpected.length}: ${list(unexpected)}`);
    if (mismatched.length) {
      parts.push(`mis-shaped ${mismatched.length}: ${list(mismatched.map((m) => `${m.name} (model ${m.expected}, checkpoint ${m.got})`))}`);
    }
    super(`checkpoint does not match the model; nothing was loaded: ${parts.join('; ')}`);
    this.missing = [...missing];
    this.unexpected = [...unexpected];
    this.mismatched = [...mismatched];
  }
}

/** A tokenizer file that cannot be used, or a chat template that fails to render. */
export class TokenizerError extends RingLinearError {}
