/** Command-line flags of `npm run bench`. */
import { parseArgs } from 'node:util';

export interface CliOptions {
  /** Run only benches whose name contains this (case-insensitive) or matches it as /regex/. */
  filter: ((name: string) => boolean) | null;
  filterText: string | null;
  repeat: number;
  minRepeat: number;
  warmup: number;
  budgetMs: number;
  /** JSON output path; null = runs/bench/<timestamp>.json at the repository root. */
  json: string | null;
  backends: string[];
  help: boolean;
}

export const USAGE = `usage: npm run bench [-- <flags>]    (or: cd tools/bench && npm run bench -- <flags>)

  --backend <names>   comma-separated suites to run (default: cpu)
  --filter <text>     only benches whose name contains <text> (case-insensitive), or /regex/
  --repeat <n>        at most n timed runs per side (default 10)
  --min-repeat <n>    at least n timed runs per side (default 3)
  --budget-ms <ms>    stop adding runs once a side has spent this long, past --min-repeat (default 3000)
  --warmup <n>        untimed runs per side first (default 2)
  --json <path>       where to write the JSON results (alias --out); default runs/bench/<time>.json
  --help`;

function positiveInt(flag: string, v: string | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag}: expected an integer >= ${min}, got '${v}'`);
  return n;
}

export function parseCli(argv: string[]): CliOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string' },
      filter: { type: 'string' },
      repeat: { type: 'string' },
      'min-repeat': { type: 'string' },
      'budget-ms': { type: 'string' },
      warmup: { type: 'string' },
      json: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
    allowPositionals: false,
  });
  let filter: CliOptions['filter'] = null;
  const f = values.filter;
  if (f !== undefined) {
    const re = /^\/(.*)\/([a-z]*)$/.exec(f);
    if (re) {
      const rx = new RegExp(re[1]!, re[2]);
      filter = (name) => rx.test(name);
    } else {
      const needle = f.toLowerCase();
      filter = (name) => name.toLowerCase().includes(needle);
    }
  }
  const repeat = positiveInt('--repeat', values.repeat, 10);
  return {
    filter,
    filterText: f ?? null,
    repeat,
    minRepeat: Math.min(repeat, positiveInt('--min-repeat', values['min-repeat'], 3)),
    warmup: positiveInt('--warmup', values.warmup, 2, 0),
    budgetMs: positiveInt('--budget-ms', values['budget-ms'], 3000, 0),
    json: values.json ?? values.out ?? null,
    backends: (values.backend ?? 'cpu').split(',').map((s) => s.trim()).filter(Boolean),
    help: values.help ?? false,
  };
}
