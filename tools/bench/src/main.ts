/**
 * `npm run bench`: runs the selected suites, prints a table per device and writes all results as
 * JSON (runs/bench/<timestamp>.json at the repository root unless --json/--out says otherwise).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatTable, measure, toResult, type BenchResult, type RunOptions } from './framework.js';
import { environment } from './device.js';
import { parseCli, USAGE } from './cli.js';
import { SUITES } from './suites/index.js';

const SCRIPT = fileURLToPath(import.meta.url);
/** Run from tools/bench/src/main.ts (npm run bench) or from a bundle (npm run bundle, for machines without node_modules). */
const FROM_SOURCE = SCRIPT.endsWith(path.join('tools', 'bench', 'src', 'main.ts'));
/** Default JSON directory: runs/bench at the repository root, or under the working directory for a bundle. */
const RUNS_DIR = path.join(FROM_SOURCE ? path.resolve(path.dirname(SCRIPT), '../../..') : process.cwd(), 'runs', 'bench');

async function main(): Promise<number> {
  let cli;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (cli.help) {
    console.log(USAGE);
    return 0;
  }
  const unknown = cli.backends.filter((b) => !(b in SUITES));
  if (unknown.length) {
    console.error(`unknown --backend ${unknown.join(', ')}; available: ${Object.keys(SUITES).join(', ')}`);
    return 2;
  }
  const opts: RunOptions = { repeat: cli.repeat, minRepeat: cli.minRepeat, warmup: cli.warmup, budgetMs: cli.budgetMs };
  const startedAt = new Date();
  const env = environment(); // commit as of the start: other work may commit while a long run goes on
  const results: BenchResult[] = [];
  const devices: Record<string, { name: string; note?: string }> = {};
  const failures: Array<{ name: string; error: string }> = [];

  for (const backend of cli.backends) {
    const suite = await SUITES[backend]!();
    const device = await suite.init();
    devices[backend] = { name: device.name, ...(device.note ? { note: device.note } : {}) };
    const benches = suite.benches().filter((b) => !cli.filter || cli.filter(b.name));
    if (!benches.length) console.error(`[${backend}] no bench matches --filter ${cli.filterText}`);
    const own: BenchResult[] = [];
    for (const bench of benches) {
      process.stderr.write(`[${backend}] ${bench.name} ... `);
      try {
        const { ours, theirs } = await measure(bench, opts);
        const r = toResult(bench, device, ours, theirs);
        own.push(r);
        process.stderr.write(`${r.medianMs.toFixed(2)} ms${r.ratio !== null ? `, ${r.comparisonName} ${r.comparisonMedianMs!.toFixed(2)} ms` : ''} (${ours.samplesMs.length} runs)\n`);
      } catch (err) {
        const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
        failures.push({ name: bench.name, error: msg });
        process.stderr.write(`FAILED\n${msg}\n`);
      }
    }
    await suite.dispose?.();
    results.push(...own);
    if (own.length) {
      console.log(`\nbackend ${backend} on ${device.name}`);
      console.log(formatTable(own));
      console.log('ratio = comparison median / our median (above 1: ours is faster); times are medians of the timed runs.');
      if (device.note) console.log(device.note);
    }
  }

  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const args = process.argv.slice(2).map(quote).join(' ');
  const command = (FROM_SOURCE ? `npm run bench -- ${args}` : `node ${path.basename(SCRIPT)} ${args}`).trim();
  const report = {
    date: startedAt.toISOString(),
    command,
    options: opts,
    filter: cli.filterText,
    environment: env,
    devices,
    results,
    failures,
  };
  const out = cli.json ? path.resolve(process.env.INIT_CWD ?? process.cwd(), cli.json) : path.join(RUNS_DIR, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nJSON: ${out}`);
  return failures.length ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
