/**
 * Command-line parsing on node:util parseArgs, with the checks and messages of a conventional
 * tool: an unknown flag is named with the closest known one suggested, a flag that needs a value
 * and got none (or got the next flag) says so, values are converted and range-checked with
 * "expected ..., got ..." messages, and help text is generated from the same specs.
 *
 * parseArgs runs in non-strict mode with tokens, and every token is checked here: strict mode's
 * own errors neither name the subcommand nor suggest anything.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';

export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** May be given several times (values collected in order). */
  readonly multiple?: boolean;
  /** Placeholder of the value in help, e.g. '<n>'. */
  readonly value?: string;
  readonly description: string;
  /** Default shown in help. */
  readonly default?: string;
}

export interface PositionalSpec {
  readonly name: string;
  readonly description: string;
  readonly optional?: boolean;
  /** Takes every remaining positional. */
  readonly variadic?: boolean;
}

export interface CommandSpec {
  readonly name: string;
  /** One line, shown in the command list. */
  readonly summary: string;
  /** Usage lines after "ring-linear " (e.g. 'train [flags] <data files...>'). */
  readonly usage: readonly string[];
  /** Paragraphs after the usage. */
  readonly description?: string;
  readonly positionals?: readonly PositionalSpec[];
  readonly flags: Readonly<Record<string, FlagSpec>>;
  readonly examples: readonly string[];
}

/** Flags every command has. */
export const COMMON_FLAGS: Readonly<Record<string, FlagSpec>> = {
  help: { type: 'boolean', short: 'h', description: 'show this help and exit' },
  json: { type: 'boolean', description: 'print one JSON object on stdout (for scripts) instead of text' },
};

export type FlagValue = string | boolean | string[];

export interface ParsedArgs {
  readonly flags: Readonly<Record<string, FlagValue | undefined>>;
  readonly positionals: readonly string[];
}

/** Edit distance (insertions, deletions, substitutions, adjacent swaps). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate closest to `word`, when it is close enough to be a plausible typo (or a prefix). */
export function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = c.startsWith(word) && word.length >= 2 ? 0.5 : editDistance(word, c);
    if (dist < bestD) {
      bestD = dist;
      best = c;
    }
  }
  const limit = Math.max(2, Math.floor(word.length / 3));
  return best !== null && bestD <= limit ? best : null;
}

function allFlags(spec: CommandSpec): Record<string, FlagSpec> {
  return { ...spec.flags, ...COMMON_FLAGS };
}

/** Parses a subcommand's arguments against its spec (UsageError naming the problem). */
export function parseCommandArgs(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  const flags = allFlags(spec);
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, f] of Object.entries(flags)) options[name] = { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) };
  const cmd = `ring-linear ${spec.name}`;
  let tokens;
  try {
    ({ tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true }));
  } catch (err) {
    throw new UsageError(`${cmd}: ${(err as Error).message}`, spec.name);
  }
  const values: Record<string, FlagValue | undefined> = {};
  const positionals: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'option-terminator') continue;
    if (t.kind === 'positional') {
      positionals.push(t.value);
      continue;
    }
    const f = flags[t.name];
    if (!f) {
      const known = Object.keys(flags);
      const guess = closest(t.name, known);
      const shown = t.rawName.startsWith('--') ? t.rawName : `${t.rawName} (short flags: ${Object.entries(flags).filter(([, s]) => s.short).map(([n, s]) => `-${s.short} = --${n}`).join(', ')})`;
      throw new UsageError(`${cmd}: unknown flag ${shown}${guess ? `; did you mean --${guess}?` : ''}`, spec.name);
    }
    if (f.type === 'boolean') {
      if (t.value !== undefined) throw new UsageError(`${cmd}: --${t.name} is a switch and takes no value, got '${t.rawName}=${t.value}'`, spec.name);
      values[t.name] = true;
      continue;
    }
    if (t.value === undefined) throw new UsageError(`${cmd}: --${t.name} needs a value${f.value ? ` (${f.value})` : ''}`, spec.name);
    if (!t.inlineValue && t.value.startsWith('--') && t.value.length > 2) {
      throw new UsageError(`${cmd}: --${t.name} needs a value${f.value ? ` (${f.value})` : ''}, got the flag '${t.value}' (write --${t.name}=${t.value} if that is the value)`, spec.name);
    }
    if (f.multiple) values[t.name] = [...((values[t.name] as string[] | undefined) ?? []), t.value];
    else values[t.name] = t.value;
  }
  if (!values.help) checkPositionals(spec, positionals);
  return { flags: values, positionals };
}

function checkPositionals(spec: CommandSpec, positionals: readonly string[]): void {
  const ps = spec.positionals ?? [];
  const required = ps.filter((p) => !p.optional).length;
  const variadic = ps.some((p) => p.variadic);
  const cmd = `ring-linear ${spec.name}`;
  if (positionals.length < required) {
    const missing = ps.filter((p) => !p.optional)[positionals.length]!;
    throw new UsageError(`${cmd}: missing <${missing.name}> (${missing.description})`, spec.name);
  }
  if (!variadic && positionals.length > ps.length) {
    const extra = positionals.slice(ps.length);
    throw new UsageError(
      `${cmd}: unexpected argument${extra.length > 1 ? 's' : ''} ${extra.map((e) => `'${e}'`).join(' ')} (takes ${ps.length === 0 ? 'no arguments' : ps.map((p) => `<${p.name}>`).join(' ')})`,
      spec.name,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Values

/** Reads typed flag values out of ParsedArgs with "--flag: expected ..., got ..." errors. */
export class FlagReader {
  constructor(
    readonly spec: CommandSpec,
    readonly args: ParsedArgs,
  ) {}

  private fail(name: string, expected: string, got: string): never {
    throw new UsageError(`ring-linear ${this.spec.name}: --${name}: expected ${expected}, got '${got}'`, this.spec.name);
  }

  has(name: string): boolean {
    return this.args.flags[name] !== undefined;
  }

  bool(name: string): boolean {
    return this.args.flags[name] === true;
  }

  string(name: string): string | undefined;
  string(name: string, fallback: string): string;
  string(name: string, fallback?: string): string | undefined {
    const v = this.args.flags[name];
    if (v === undefined) return fallback;
    if (Array.isArray(v)) return v[v.length - 1];
    return v as string;
  }

  strings(name: string): string[] {
    const v = this.args.flags[name];
    if (v === undefined) return [];
    return Array.isArray(v) ? v : [v as string];
  }

  int(name: string, opts: { min?: number; max?: number }): number | undefined;
  int(name: string, opts: { min?: number; max?: number; fallback: number }): number;
  int(name: string, opts: { min?: number; max?: number; fallback?: number }): number | undefined {
    const s = this.string(name);
    if (s === undefined) return opts.fallback;
    const n = Number(s);
    const range = opts.max !== undefined ? `an integer in [${opts.min ?? '-inf'}, ${opts.max}]` : `an integer >= ${opts.min ?? 0}`;
    if (s.trim() === '' || !Number.isSafeInteger(n)) this.fail(name, range, s);
    if ((opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max)) this.fail(name, range, s);
    return n;
  }

  number(name: string, opts: { min?: number; max?: number; exclusiveMin?: boolean }): number | undefined;
  number(name: string, opts: { min?: number; max?: number; exclusiveMin?: boolean; fallback: number }): number;
  number(name: string, opts: { min?: number; max?: number; exclusiveMin?: boolean; fallback?: number }): number | undefined {
    const s = this.string(name);
    if (s === undefined) return opts.fallback;
    const n = Number(s);
    const lo = opts.min === undefined ? '' : opts.exclusiveMin ? `> ${opts.min}` : `>= ${opts.min}`;
    const hi = opts.max === undefined ? '' : `<= ${opts.max}`;
    const expected = `a number${lo || hi ? ' ' : ''}${[lo, hi].filter(Boolean).join(' and ')}`;
    if (s.trim() === '' || !Number.isFinite(n)) this.fail(name, expected, s);
    if (opts.min !== undefined && (opts.exclusiveMin ? n <= opts.min : n < opts.min)) this.fail(name, expected, s);
    if (opts.max !== undefined && n > opts.max) this.fail(name, expected, s);
    return n;
  }

  oneOf<T extends string>(name: string, choices: readonly T[]): T | undefined;
  oneOf<T extends string>(name: string, choices: readonly T[], fallback: T): T;
  oneOf<T extends string>(name: string, choices: readonly T[], fallback?: T): T | undefined {
    const s = this.string(name);
    if (s === undefined) return fallback;
    if (!(choices as readonly string[]).includes(s)) {
      const guess = closest(s, choices);
      throw new UsageError(
        `ring-linear ${this.spec.name}: --${name}: expected one of ${choices.join(', ')}, got '${s}'${guess ? `; did you mean ${guess}?` : ''}`,
        this.spec.name,
      );
    }
    return s as T;
  }

  /** A comma-separated list of choices (e.g. --backend cpu,webgpu). */
  choiceList<T extends string>(name: string, choices: readonly T[]): T[] | undefined {
    const s = this.string(name);
    if (s === undefined) return undefined;
    const parts = s.split(',').map((p) => p.trim());
    for (const p of parts) {
      if (!(choices as readonly string[]).includes(p)) {
        const guess = closest(p, choices);
        throw new UsageError(
          `ring-linear ${this.spec.name}: --${name}: expected a comma-separated list of ${choices.join(', ')}, got '${p}'${guess ? `; did you mean ${guess}?` : ''}`,
          this.spec.name,
        );
      }
    }
    return parts as T[];
  }

  /** A comma-separated list of numbers (e.g. merge weights). */
  numberList(name: string): number[] | undefined {
    const s = this.string(name);
    if (s === undefined) return undefined;
    const parts = s.split(',').map((p) => p.trim());
    const nums = parts.map(Number);
    if (parts.some((p) => p === '') || nums.some((n) => !Number.isFinite(n))) this.fail(name, 'comma-separated numbers, e.g. 0.2,0.3,0.5', s);
    return nums;
  }
}

// ---------------------------------------------------------------------------------------------
// Help

function wrap(text: string, width: number, indent: string): string {
  const out: string[] = [];
  for (const para of text.split('\n')) {
    let line = '';
    for (const word of para.split(/\s+/).filter(Boolean)) {
      if (line && line.length + 1 + word.length > width) {
        out.push(indent + line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    out.push(indent + line);
  }
  return out.join('\n');
}

/** The help text of a subcommand. */
export function commandHelp(spec: CommandSpec): string {
  const lines: string[] = [];
  lines.push(`ring-linear ${spec.name}: ${spec.summary}`, '');
  lines.push('Usage:');
  for (const u of spec.usage) lines.push(`  ring-linear ${u}`);
  if (spec.description) lines.push('', wrap(spec.description, 96, ''));
  if (spec.positionals?.length) {
    lines.push('', 'Arguments:');
    for (const p of spec.positionals) lines.push(`  ${`<${p.name}>${p.variadic ? '...' : ''}`.padEnd(26)}${p.description}${p.optional ? ' (optional)' : ''}`);
  }
  lines.push('', 'Flags:');
  const flags = allFlags(spec);
  const left = (name: string, f: FlagSpec) => `${f.short ? `-${f.short}, ` : '    '}--${name}${f.type === 'string' ? ` ${f.value ?? '<value>'}` : ''}`;
  const width = Math.max(...Object.entries(flags).map(([n, f]) => left(n, f).length)) + 2;
  for (const [name, f] of Object.entries(flags)) {
    const desc = `${f.description}${f.default !== undefined ? ` (default: ${f.default})` : ''}${f.multiple ? ' (repeatable)' : ''}`;
    const l = `  ${left(name, f).padEnd(width)}`;
    const body = wrap(desc, Math.max(40, 100 - l.length), ' '.repeat(l.length)).trimStart();
    lines.push(l + body);
  }
  if (spec.examples.length) {
    lines.push('', 'Examples:');
    for (const e of spec.examples) lines.push(`  ${e}`);
  }
  return `${lines.join('\n')}\n`;
}
