/**
 * Observability: the progress display (in place on a TTY, plain lines otherwise), metrics files
 * (malformed lines named), and the hand-written SVG plot (ticks, smoothing, gaps, escaping).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataError, MetricsWriter, ProgressReporter, ema, formatDuration, lossCurveSvg, niceTicks, readMetrics, TrainerConfigError } from '../src/index.js';
import { tempDir } from './helpers.js';

describe('progress', () => {
  it('redraws one line on a TTY (bar, step, loss, tok/s, ETA), cut to the terminal width', () => {
    const out: string[] = [];
    const p = new ProgressReporter(10, { stream: { write: (s: string) => out.push(s), isTTY: true, columns: 200 } });
    p.update({ step: 1, loss: 2.5, tokensPerSecond: 1234.4, lr: 3e-4 });
    p.update({ step: 5, loss: 1.25, tokensPerSecond: 999, extra: { eval: 1.5 } });
    p.note('checkpoint saved');
    p.update({ step: 10, loss: 1, tokensPerSecond: 1000 });
    p.finish();
    expect(out[0]).toMatch(/^\r\[##------------------\] train step 1\/10 \| loss 2\.5000 \| lr 3\.00e-4 \| 1234 tok\/s \| eta \S+\x1b\[K$/);
    expect(out[1]).toMatch(/^\r\[##########----------\] train step 5\/10 \| loss 1\.2500 \| 999 tok\/s \| eval 1\.5000 \| eta \d+s\x1b\[K$/);
    expect(out[2]).toBe('\r\x1b[K');
    expect(out[3]).toBe('checkpoint saved\n');
    expect(out[4]).toMatch(/^\r\[#{20}\] train step 10\/10/);
    expect(out[5]).toBe('\n');
    const narrow: string[] = [];
    new ProgressReporter(10, { stream: { write: (s: string) => narrow.push(s), isTTY: true, columns: 30 } }).update({ step: 1, loss: 1, tokensPerSecond: 1 });
    expect(narrow[0]!.replace('\r', '').replace('\x1b[K', '').length).toBe(29);
  });

  it('writes plain lines every N steps and at the end when not a TTY', () => {
    const out: string[] = [];
    const p = new ProgressReporter(7, { stream: { write: (s: string) => out.push(s) }, every: 3, label: 'rl' });
    for (let s = 1; s <= 7; s++) p.update({ step: s, loss: 1 / s, tokensPerSecond: 10 });
    expect(out.map((l) => l.split(' | ')[0])).toEqual(['rl step 3/7', 'rl step 6/7', 'rl step 7/7']);
    expect(out.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
  });

  it('formats durations', () => {
    expect([5, 65, 3725, Number.NaN, -1].map(formatDuration)).toEqual(['5s', '1m05s', '1h02m', '?', '?']);
  });
});

describe('metrics files', () => {
  it('appends records, truncates after a step, names a malformed line', async () => {
    const dir = await tempDir();
    const file = join(dir, 'sub', 'm.jsonl');
    const w = new MetricsWriter(file);
    for (let s = 1; s <= 5; s++) await w.write({ step: s, loss: 10 - s });
    await w.truncateAfter(3);
    expect((await readMetrics(file)).map((r) => r.step)).toEqual([1, 2, 3]);
    await new MetricsWriter(join(dir, 'absent.jsonl')).truncateAfter(1); // nothing to do
    const bad = join(dir, 'bad.jsonl');
    await writeFile(bad, '{"step": 1}\n{"loss": 2}\n');
    const err = await readMetrics(bad).catch((e) => e);
    expect(err).toBeInstanceOf(DataError);
    expect(err.message).toMatch(/bad\.jsonl:2: expected an object with a numeric "step"/);
  });
});

describe('SVG plot', () => {
  it('nice ticks are round numbers covering the range', () => {
    expect(niceTicks(0, 10)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0.13, 0.87)).toEqual([0.2, 0.4, 0.6, 0.8]);
    expect(niceTicks(1, 1)).toEqual([1]);
    expect(niceTicks(-3, 1234, 4)).toEqual([0, 500, 1000]);
  });

  it('ema is bias-corrected and skips non-finite points', () => {
    const s = ema([[1, 2], [2, Number.NaN], [3, 4]], 0.5);
    expect(s).toEqual([[1, 2], [3, (0.5 * 0.5 * 2 + 0.5 * 4) / 0.75]]);
  });

  it('draws series as polylines with gaps at non-finite points, a legend, escaped text', () => {
    const svg = lossCurveSvg(
      [
        { name: 'loss <train>', points: [[1, 5], [2, 4], [3, Number.NaN], [4, 3], [5, 2.5]] },
        { name: 'eval', points: [[5, 2.8]] },
      ],
      { title: 'a & b', width: 400, height: 300 },
    );
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline/g)).toHaveLength(2); // the NaN splits the first series
    expect(svg).toContain('<circle'); // a single point is a dot
    expect(svg).toContain('>a &amp; b<');
    expect(svg).toContain('>loss &lt;train&gt;<');
    // Every coordinate lies inside the plot area.
    for (const m of svg.matchAll(/points="([^"]+)"/g)) {
      for (const pair of m[1]!.split(' ')) {
        const [x, y] = pair.split(',').map(Number);
        expect(x).toBeGreaterThanOrEqual(64);
        expect(x).toBeLessThanOrEqual(400 - 16);
        expect(y).toBeGreaterThanOrEqual(0);
        expect(y).toBeLessThanOrEqual(300 - 44);
      }
    }
    const smooth = lossCurveSvg([{ name: 'l', points: [[1, 3], [2, 2], [3, 1]] }], { smooth: 0.9, logY: true });
    expect(smooth).toContain('stroke-opacity="0.3"');
    expect(smooth.match(/<polyline/g)).toHaveLength(2);
    expect(() => lossCurveSvg([], { smooth: 1 })).toThrow(TrainerConfigError);
  });
});
