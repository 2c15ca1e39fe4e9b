/**
 * Lightning (linear) attention vs softmax attention, forward, on the CPU backend: H = 16 heads of
 * D = 128, batch 1, T = 512 .. 16384 (MODEL_SPEC §2-3; issue 4's benchmark). Prints a table of
 * time per token, writes the JSON results, and (unless --no-docs) rewrites the "Attention" section
 * of docs/benchmarks.md and the plot docs/attention-cpu.svg.
 *
 *   cd tools/bench && node --conditions=@ring-linear/source --import tsx src/attention.ts
 *     [--max-t 16384] [--softmax-max-t 4096] [--repeat 3] [--no-docs] [--json <path>]
 *
 * Lightning attention costs O(T) (a D x D state per head), softmax attention O(T^2) (every key per
 * query); on one JavaScript thread softmax attention past --softmax-max-t takes too long to time,
 * so those rows are left out (and said so).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import '@ring-linear/backend-cpu';
import { dispose, tensor, type Tensor } from '@ring-linear/core';
import { decayRates, lightningAttention, softmaxAttention } from '@ring-linear/attention';
import { measure, toResult, type Bench, type BenchResult } from './framework.js';
import { cpuName, environment } from './device.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const H = 16;
const D = 128;
const CHUNK = 64;

function randomValues(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

interface State {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  decay: Tensor;
}

function setupInputs(T: number): State {
  const shape = [1, T, H, D];
  return {
    q: tensor(randomValues(T * H * D, 11), shape),
    k: tensor(randomValues(T * H * D, 12), shape),
    v: tensor(randomValues(T * H * D, 13), shape),
    decay: tensor(decayRates(H, 1, 20), [H]),
  };
}

/** Floating-point work the chunked kernel does: per chunk of L, QK^T and (.)V over L x L, Q S and the state update. */
function lightningFlops(T: number): number {
  let f = 0;
  for (let c0 = 0; c0 < T; c0 += CHUNK) {
    const L = Math.min(CHUNK, T - c0);
    f += 2 * L * L * D * 2 + 2 * L * D * D * 2;
  }
  return f * H;
}

/** Causal softmax attention: T (T + 1) / 2 query-key pairs, 2D flops for the score and 2D for P V each. */
const softmaxFlops = (T: number) => ((T * (T + 1)) / 2) * 4 * D * H;

function bench(kind: 'lightning' | 'softmax', T: number): Bench<State> {
  return {
    name: `${kind}Attention fwd T=${T} H=${H} D=${D}`,
    op: kind === 'lightning' ? 'lightningAttention' : 'softmaxAttention',
    shapes: [[1, T, H, D], [1, T, H, D], [1, T, H, D]],
    dtype: 'f32',
    backend: 'cpu',
    flops: kind === 'lightning' ? lightningFlops(T) : softmaxFlops(T),
    bytes: 4 * T * H * D * 4,
    setup: () => setupInputs(T),
    run: ({ q, k, v, decay }) => {
      if (kind === 'lightning') {
        const r = lightningAttention(q, k, v, { decay, chunkSize: CHUNK });
        dispose([r.out, r.finalState]);
      } else {
        softmaxAttention(q, k, v).dispose();
      }
    },
    teardown: (s) => dispose(s),
  };
}

interface Row {
  T: number;
  lightning: BenchResult | null;
  softmax: BenchResult | null;
}

const perToken = (r: BenchResult | null, T: number) => (r ? (r.medianMs * 1000) / T : null);
const f = (x: number | null, d = 1) => (x === null ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(d));

/** Median, with the fastest run in parentheses when there were several. */
const ms = (r: BenchResult | null) => (r === null ? '-' : r.samplesMs.length > 1 ? `${f(r.medianMs)} (${f(r.minMs)})` : f(r.medianMs));

function table(rows: readonly Row[]): string {
  const lines = [
    '| T | lightning ms (min) | lightning µs/token | lightning GFLOP/s | softmax ms (min) | softmax µs/token | softmax GFLOP/s | softmax / lightning |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const ratio = r.lightning && r.softmax ? `${(r.softmax.medianMs / r.lightning.medianMs).toFixed(2)}x` : '-';
    lines.push(
      `| ${r.T} | ${ms(r.lightning)} | ${f(perToken(r.lightning, r.T))} | ${f(r.lightning?.gflops ?? null, 2)} | ` +
        `${ms(r.softmax)} | ${f(perToken(r.softmax, r.T))} | ${f(r.softmax?.gflops ?? null, 2)} | ${ratio} |`,
    );
  }
  return lines.join('\n');
}

/** A log-log line chart of microseconds per token against T. */
function svg(rows: readonly Row[], title: string): string {
  const W = 640;
  const Hh = 400;
  const m = { l: 70, r: 20, t: 40, b: 50 };
  const series = [
    { name: 'lightning attention (linear, O(T))', color: '#1f77b4', pts: rows.flatMap((r) => (r.lightning ? [[r.T, perToken(r.lightning, r.T)!]] : [])) },
    { name: 'softmax attention (flash, O(T²))', color: '#d62728', pts: rows.flatMap((r) => (r.softmax ? [[r.T, perToken(r.softmax, r.T)!]] : [])) },
  ];
  const xs = rows.map((r) => r.T);
  const ys = series.flatMap((s) => s.pts.map((p) => p[1]!));
  const x0 = Math.log2(Math.min(...xs));
  const x1 = Math.log2(Math.max(...xs));
  const y0 = Math.floor(Math.log10(Math.min(...ys)));
  const y1 = Math.ceil(Math.log10(Math.max(...ys)));
  const X = (t: number) => m.l + ((Math.log2(t) - x0) / Math.max(x1 - x0, 1e-9)) * (W - m.l - m.r);
  const Y = (v: number) => Hh - m.b - ((Math.log10(v) - y0) / Math.max(y1 - y0, 1e-9)) * (Hh - m.t - m.b);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" viewBox="0 0 ${W} ${Hh}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${Hh}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${title}</text>`,
  ];
  for (const t of xs) {
    out.push(`<line x1="${X(t)}" y1="${m.t}" x2="${X(t)}" y2="${Hh - m.b}" stroke="#eee"/>`);
    out.push(`<text x="${X(t)}" y="${Hh - m.b + 16}" text-anchor="middle">${t}</text>`);
  }
  for (let e = y0; e <= y1; e++) {
    const v = 10 ** e;
    out.push(`<line x1="${m.l}" y1="${Y(v)}" x2="${W - m.r}" y2="${Y(v)}" stroke="#eee"/>`);
    out.push(`<text x="${m.l - 6}" y="${Y(v) + 4}" text-anchor="end">${v >= 1000 ? `${v / 1000} ms` : `${v} µs`}</text>`);
  }
  out.push(`<line x1="${m.l}" y1="${Hh - m.b}" x2="${W - m.r}" y2="${Hh - m.b}" stroke="black"/>`);
  out.push(`<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${Hh - m.b}" stroke="black"/>`);
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${Hh - 12}" text-anchor="middle">sequence length T (log scale)</text>`);
  out.push(`<text x="16" y="${(m.t + Hh - m.b) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(m.t + Hh - m.b) / 2})">time per token (log scale)</text>`);
  series.forEach((s, i) => {
    if (!s.pts.length) return;
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${s.pts.map(([t, v]) => `${X(t!).toFixed(1)},${Y(v!).toFixed(1)}`).join(' ')}"/>`);
    for (const [t, v] of s.pts) out.push(`<circle cx="${X(t!).toFixed(1)}" cy="${Y(v!).toFixed(1)}" r="3" fill="${s.color}"/>`);
    out.push(`<rect x="${m.l + 12}" y="${m.t + 8 + i * 18}" width="14" height="3" fill="${s.color}"/>`);
    out.push(`<text x="${m.l + 32}" y="${m.t + 13 + i * 18}">${s.name}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

const BEGIN = '<!-- attention-bench:begin (written by tools/bench/src/attention.ts) -->';
const END = '<!-- attention-bench:end -->';

/** Replaces (or appends) the Attention section of docs/benchmarks.md, leaving the rest alone. */
function writeDocs(section: string): string {
  const file = path.join(REPO_ROOT, 'docs', 'benchmarks.md');
  const block = `${BEGIN}\n${section}\n${END}`;
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n';
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) text = `${text.slice(0, a)}${block}${text.slice(b + END.length)}`;
  else text = `${text.replace(/\s*$/, '')}\n\n${block}\n`;
  fs.writeFileSync(file, text);
  return file;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      'max-t': { type: 'string' },
      'softmax-max-t': { type: 'string' },
      repeat: { type: 'string' },
      'no-docs': { type: 'boolean' },
      json: { type: 'string' },
    },
    strict: true,
  });
  const maxT = Number(values['max-t'] ?? 16384);
  const softmaxMaxT = Number(values['softmax-max-t'] ?? 4096);
  const repeat = Number(values.repeat ?? 3);
  const device = { name: cpuName() };
  const load0 = os.loadavg()[0]!;
  const rows: Row[] = [];
  for (let T = 512; T <= maxT; T *= 2) {
    const row: Row = { T, lightning: null, softmax: null };
    for (const kind of ['lightning', 'softmax'] as const) {
      if (kind === 'softmax' && T > softmaxMaxT) continue;
      const b = bench(kind, T);
      // One untimed warm-up at the small sizes only (the kernels are hot by then); softmax
      // attention past 2048 tokens is timed once (minutes per run), lightning attention always
      // `repeat` times.
      const small = T <= 2048;
      process.stderr.write(`${b.name} ... `);
      const runs = small || kind === 'lightning' ? repeat : 1;
      const { ours } = await measure(b, { repeat: runs, minRepeat: runs, warmup: small ? 1 : 0, budgetMs: 0 });
      const r = toResult(b, device, ours, null);
      row[kind] = r;
      process.stderr.write(`${r.medianMs.toFixed(0)} ms (${ours.samplesMs.length} run(s))\n`);
    }
    rows.push(row);
  }
  const load1 = os.loadavg()[0]!;
  const date = new Date().toISOString();
  const argv = process.argv.slice(2).join(' ');
  const command = `cd tools/bench && node --conditions=@ring-linear/source --import tsx src/attention.ts${argv ? ` ${argv}` : ''}`;
  const tableText = table(rows);
  console.log(`\n${device.name}\n${tableText}`);

  const out = values.json ? path.resolve(values.json) : path.join(REPO_ROOT, 'runs', 'bench', `attention-${date.replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify({ date, command, environment: environment(), device, loadAverage: [load0, load1], rows }, null, 2)}\n`);
  console.log(`JSON: ${out}`);

  if (!values['no-docs']) {
    const svgFile = path.join(REPO_ROOT, 'docs', 'attention-cpu.svg');
    fs.writeFileSync(svgFile, svg(rows, `Attention forward on CPU, H=${H}, D=${D}, batch 1 (backend-cpu)`));
    const skipped = rows.filter((r) => !r.softmax).map((r) => r.T);
    const section = [
      '## Attention',
      '',
      `Lightning (linear) attention vs causal softmax attention, forward only, on the CPU backend (\`@ring-linear/backend-cpu\`:`,
      `chunked lightning kernel with chunk ${CHUNK}, flash-style softmax kernel), f32, H=${H} heads, D=${D}, batch 1.`,
      'Time per token = median wall time of one forward over T tokens / T. Lightning attention keeps a D x D state per head,',
      'so its time per token stays flat as T grows; softmax attention reads every earlier key, so its time per token grows',
      'linearly with T (quadratic total).',
      '',
      `- machine: ${device.name}; Node ${process.version}; ${date.slice(0, 10)}; commit ${environment().commit}`,
      `- load average (1 min) ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end: the machine was shared with other jobs, so absolute times are noisy; the growth with T is the point`,
      `- runs: lightning attention median of ${repeat} timed runs at every T (fastest in parentheses); softmax attention ${repeat} runs up to T = 2048, one run above; one untimed warm-up for T <= 2048`,
      '- times per token are of the median run; the plot shows the same',
      ...(skipped.length ? [`- softmax attention is not timed for T = ${skipped.join(', ')}: a single-threaded JavaScript forward there takes tens of minutes (quadratic cost); pass --softmax-max-t to include it`] : []),
      `- command: \`${command}\``,
      '',
      tableText,
      '',
      '![attention time per token vs T](attention-cpu.svg)',
      '',
      'WebGPU rows come once the WebGPU kernels of these ops land.',
    ].join('\n');
    const md = writeDocs(section);
    console.log(`wrote ${md} and ${svgFile}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
