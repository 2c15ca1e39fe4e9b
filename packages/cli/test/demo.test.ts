// The main job end to end, in-process: `demo` with a reduced step count trains (the loss falls),
// writes the checkpoint, metrics and loss plot, and samples; the checkpoint then loads in
// `generate`, whose greedy tokens must equal a greedy loop over the model's full forward written
// here; `quantize` writes an FP8 blockwise checkpoint whose blocks are checked against the f32
// weights, and which loads in `generate` too.
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeBytes, noGrad, tensor } from '@ring-linear/core';
import '@ring-linear/backend-cpu';
import { ByteTokenizer, closeCheckpoint, loadPretrained, openCheckpoint, readTensorBytes } from '@ring-linear/models';
import { DEMO_PROMPTS, corpusWords, isQuantizableWeight } from '../src/index.js';
import { cli, tempDir } from './helpers.js';

const STEPS = 24;
const SEED = 1 + (Date.now() % 1000);
console.log(`demo test: seed ${SEED}`);

/** Greedy continuation by repeated full forwards (no cache, no sampler). */
async function greedyByFullForward(folder: string, prompt: string, n: number): Promise<number[]> {
  const { model } = await loadPretrained(folder);
  model.eval();
  const ids = new ByteTokenizer().encode(prompt);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const logits = noGrad(() => model.forward(tensor(Int32Array.from(ids), [1, ids.length], 'i32'), { logits: 'last' }).logits!);
    const v = (await logits.data()) as Float32Array;
    logits.dispose();
    let best = 0;
    for (let j = 1; j < v.length; j++) if (v[j]! > v[best]!) best = j;
    ids.push(best);
    out.push(best);
    if (best === 257) break; // EOS ends generation
  }
  model.dispose();
  return out;
}

describe('ring-linear demo', () => {
  let dir = '';
  let out = '';
  let result: any;

  beforeAll(async () => {
    dir = await tempDir();
    out = join(dir, 'demo-out');
    const r = await cli(['demo', '--steps', String(STEPS), '--out', out, '--seed', String(SEED), '--max-tokens', '40', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    result = r.json();
  }, 240_000);

  it('trains: the loss falls from about ln(259) and the held-out loss follows', () => {
    const losses: number[] = result.loss.perStep;
    console.log(`[demo] ${STEPS} steps in ${result.seconds.toFixed(1)} s: loss ${losses[0]!.toFixed(3)} -> ${losses.at(-1)!.toFixed(3)}, eval ${result.loss.eval?.toFixed(3)}`);
    expect(losses).toHaveLength(STEPS);
    expect(Math.abs(losses[0]! - Math.log(259))).toBeLessThan(0.3); // untrained: near uniform over the bytes
    expect(result.loss.last).toBeLessThan(result.loss.first - 1);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! - 1.5);
    expect(result.loss.eval).toBeLessThan(losses[0]! - 1.5);
    expect(result.backend).toBe('cpu');
    expect(result.model.layers).toBe('linear+dense, softmax+moe, linear+moe, softmax+moe');
    expect(result.model.parameters).toBe(217_164);
    expect(result.data.stories).toBe(600);
  });

  it('writes the checkpoint, the metrics JSONL and the loss plot', async () => {
    const { checkpoint, metrics, lossPlot } = result.files;
    expect(checkpoint).toBe(join(out, `step-${String(STEPS).padStart(8, '0')}`));
    expect((await readdir(checkpoint)).sort()).toEqual(['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json']);
    const lines = (await readFile(metrics, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    expect(lines.map((l) => l.loss)).toEqual(result.loss.perStep);
    expect(lines.at(-1).evalLoss).toBe(result.loss.eval);
    const svg = await readFile(lossPlot, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('<polyline');
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    // Nothing else in the run folder (no temporaries left by the atomic writes).
    expect((await readdir(out)).sort()).toEqual(['loss.svg', 'metrics.jsonl', `step-${String(STEPS).padStart(8, '0')}`]);
  });

  it('samples one text per prompt, made of bytes the corpus uses', () => {
    expect(result.samples.map((s: { prompt: string }) => s.prompt)).toEqual(DEMO_PROMPTS);
    for (const s of result.samples) {
      expect(s.text.length).toBeGreaterThan(0);
      expect(typeof s.text).toBe('string');
    }
    // After a short run the letters are already the corpus's most frequent ones: at least a third
    // of the sampled characters are among the letters and punctuation of the corpus words.
    const alphabet = new Set([...[...corpusWords()].join(''), ' ', '.', ',']);
    const all = result.samples.map((s: { text: string }) => s.text).join('');
    const inAlphabet = [...all].filter((c) => alphabet.has(c.toLowerCase())).length;
    expect(inAlphabet / all.length).toBeGreaterThan(0.33);
  });

  it('text mode: the header, a progress line per step group, the samples and the file paths', async () => {
    const r = await cli(['demo', '--steps', '2', '--max-tokens', '6', '--seed', String(SEED)], { cwd: dir, now: new Date(2026, 10, 27, 12, 0, 0) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('ring-linear demo: training a 4-layer hybrid (linear+dense, softmax+moe, linear+moe, softmax+moe)');
    expect(r.stdout).toContain('217K parameters');
    expect(r.stdout).toContain('600 synthetic stories');
    expect(r.stdout).toContain('2 steps of 4 x 128 tokens on cpu (CPU');
    expect(r.stdout).toContain('output: runs/demo-20261127-120000');
    expect(r.stdout).toMatch(/loss \d\.\d{3} -> \d\.\d{3} \(mean of the first and last steps\), held-out loss \d\.\d{3}/);
    expect(r.stdout).toMatch(/\nloss curve  \d\.\d\d [▁▂▃▄▅▆▇█]{2} \d\.\d\d\n/);
    for (const p of DEMO_PROMPTS) expect(r.stdout).toContain(`\n  ${p}`);
    expect(r.stdout).toContain('checkpoint  runs/demo-20261127-120000/step-00000002');
    expect(r.stdout).toContain('metrics     runs/demo-20261127-120000/metrics.jsonl');
    expect(r.stdout).toContain('loss plot   runs/demo-20261127-120000/loss.svg');
    expect(r.stdout).toContain('next: ring-linear generate runs/demo-20261127-120000 --prompt');
    expect(r.stderr).toContain('train step 2/2 | loss ');
    expect(existsSync(join(dir, 'runs/demo-20261127-120000/step-00000002/model.safetensors'))).toBe(true);
    // The same second: a new folder, never the old one.
    const again = await cli(['demo', '--steps', '1', '--max-tokens', '2', '--quiet', '--json'], { cwd: dir, now: new Date(2026, 10, 27, 12, 0, 0) });
    expect(again.code, again.stderr).toBe(0);
    expect(again.json().out).toBe(join(dir, 'runs/demo-20261127-120000-2'));
    expect(again.stderr).toBe('');
  }, 120_000);

  it('the checkpoint loads in generate: greedy tokens equal a greedy loop over the full forward', async () => {
    const prompt = 'One day, Mia';
    const r = await cli(['generate', out, prompt, '--temperature', '0', '--max-tokens', '12', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = r.json();
    expect(j.model).toBe(result.files.checkpoint);
    const want = await greedyByFullForward(result.files.checkpoint, prompt, 12);
    expect(j.results[0].tokens).toEqual(want);
    expect(j.results[0].text).toBe(new ByteTokenizer().decode(want.filter((t) => t < 256)));
    // The step folder itself, streamed in text mode: the prompt then the same text.
    const t = await cli(['generate', result.files.checkpoint, '--prompt', prompt, '--temperature', '0', '--max-tokens', '12']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toBe(`${prompt}${j.results[0].text}\n`);
    expect(t.stderr).toMatch(/\[\d+ tokens?, (length|eos), [\d.]+ tokens\/s\]/);
  }, 60_000);

  it('sampling flags: a seed reproduces the text; different seeds differ; top-k 1 is greedy', async () => {
    const run = (...flags: string[]) => cli(['generate', out, 'Then, Ben', '--max-tokens', '16', '--json', ...flags]);
    const a = (await run('--seed', '5', '--temperature', '1.2')).json().results[0].tokens;
    const b = (await run('--seed', '5', '--temperature', '1.2')).json().results[0].tokens;
    const c = (await run('--seed', '6', '--temperature', '1.2')).json().results[0].tokens;
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    const greedy = (await run('--temperature', '0')).json().results[0].tokens;
    expect((await run('--top-k', '1', '--seed', '9')).json().results[0].tokens).toEqual(greedy);
    expect((await run('--min-p', '1', '--seed', '9')).json().results[0].tokens).toEqual(greedy);
  }, 60_000);

  it('quantize writes FP8 128x128 blocks within the e4m3 bound of each block, and the folder loads in generate', async () => {
    const q = join(dir, 'fp8');
    const r = await cli(['quantize', out, '--out', q, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rep = r.json();
    expect(rep.format).toBe('f8e4m3');
    expect(rep.bytesAfter).toBeLessThan(0.5 * rep.bytesBefore);
    const config = JSON.parse(await readFile(join(q, 'config.json'), 'utf8'));
    expect(config.quantization_config).toEqual({ quant_method: 'fp8', fmt: 'e4m3', activation_scheme: 'dynamic', weight_block_size: [128, 128] });

    const src = await openCheckpoint(result.files.checkpoint);
    const dst = await openCheckpoint(q);
    let checked = 0;
    try {
      for (const [name, at] of src.tensors) {
        const d = dst.tensors.get(name)!;
        expect(d, name).toBeDefined();
        if (!isQuantizableWeight(name, at.entry.shape)) {
          expect(d.entry.dtype, name).toBe(at.entry.dtype);
          expect(dst.tensors.has(`${name}_scale_inv`)).toBe(false);
          continue;
        }
        expect(d.entry.dtype, name).toBe('f8e4m3');
        const s = dst.tensors.get(name.replace(/\.weight$/, '.weight_scale_inv'))!;
        const [rows, cols] = at.entry.shape as [number, number];
        expect(s.entry.shape).toEqual([Math.ceil(rows / 128), Math.ceil(cols / 128)]);
        const w = decodeBytes(await readTensorBytes(src.sources[at.file]!, at.entry), 'f32');
        const codes = decodeBytes(await readTensorBytes(dst.sources[d.file]!, d.entry), 'f8e4m3');
        const scales = decodeBytes(await readTensorBytes(dst.sources[s.file]!, s.entry), 'f32');
        const sc = s.entry.shape[1]!;
        // Per block: scale = amax / 448, and |w - q * scale| <= half an e4m3 step at the top of the
        // range = amax / 28 (448 = 1.75 * 2^8, step 32 there).
        const amax = new Float64Array(scales.length);
        for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
          const b = Math.floor(i / 128) * sc + Math.floor(j / 128);
          amax[b] = Math.max(amax[b]!, Math.abs(w[i * cols + j]!));
        }
        for (let b = 0; b < scales.length; b++) expect(Math.abs(scales[b]! - amax[b]! / 448)).toBeLessThanOrEqual(1e-6 * amax[b]! + 1e-30);
        for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
          const b = Math.floor(i / 128) * sc + Math.floor(j / 128);
          const err = Math.abs(w[i * cols + j]! - codes[i * cols + j]! * scales[b]!);
          if (!(err <= amax[b]! / 28 + 1e-7)) throw new Error(`${name}[${i}, ${j}]: |w - q*s| = ${err} > amax/28 = ${amax[b]! / 28}`);
        }
        checked++;
      }
    } finally {
      await closeCheckpoint(src);
      await closeCheckpoint(dst);
    }
    expect(checked).toBe(rep.quantized);
    expect(checked).toBeGreaterThan(20);

    const g = await cli(['generate', q, 'One day', '--temperature', '0', '--max-tokens', '8', '--json']);
    expect(g.code, g.stderr).toBe(0);
    expect(g.json().results[0].tokens.length).toBeGreaterThan(0);
    const txt = await cli(['quantize', out, '--out', join(dir, 'fp8-e5m2'), '--format', 'e5m2']);
    expect(txt.code, txt.stderr).toBe(0);
    expect(txt.stdout).toContain('FP8 e5m2, 128x128 blocks');
    expect(txt.stdout).toContain('loads back: yes');
  }, 120_000);

  it('chat: --prompt turns through the byte-level chat template', async () => {
    const r = await cli(['chat', out, '--prompt', 'Tell me a story', '--prompt', 'Another one', '--max-tokens', '6', '--seed', '2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = r.json();
    expect(j.turns.map((t: { user: string }) => t.user)).toEqual(['Tell me a story', 'Another one']);
    for (const t of j.turns) expect(t.tokens).toBeGreaterThan(0);
    // The REPL reads stdin lines; /reset and /exit are commands, not turns.
    const repl = await cli(['chat', out, '--max-tokens', '4', '--seed', '2'], { stdin: 'hello\n/reset\nhello\n/exit\nnot read\n' });
    expect(repl.code, repl.stderr).toBe(0);
    expect(repl.stderr).toContain('(conversation cleared)');
    // Two answers (each ends with a newline), equal: same seed, same fresh conversation.
    const half = repl.stdout.slice(0, repl.stdout.length / 2);
    expect(half.endsWith('\n')).toBe(true);
    expect(repl.stdout).toBe(half + half);
    expect(repl.stderr.match(/tokens\/s\]/g)).toHaveLength(2);
  }, 60_000);
});
