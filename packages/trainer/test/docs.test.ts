// The runnable examples of docs/training.md run as written, leak no tensors, and print what their
// comments show: a `// ...` line after a console.log is the expected output with any number
// standing for a number (training losses differ in the last digits between machines; words such as
// `true` must match exactly). Every printed line must match an expected line and vice versa.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it, vi } from 'vitest';
import { memory } from '@ring-linear/core';

const here = path.dirname(fileURLToPath(import.meta.url));
const doc = fs.readFileSync(path.join(here, '..', '..', '..', 'docs', 'training.md'), 'utf8');
const examples = [...doc.matchAll(/<!-- example: (\w+) -->\n```ts\n([\s\S]*?)```/g)].map((m) => ({ name: m[1]!, code: m[2]! }));

const NUMBER = /-?\d+(?:\.\d+)?(?:e[-+]?\d+)?/g;
function pattern(line: string): RegExp {
  const parts = line.split(NUMBER).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('-?\\d+(?:\\.\\d+)?(?:e[-+]?\\d+)?')}$`);
}

it('docs/training.md has its five runnable examples', () => {
  expect(examples.map((e) => e.name)).toEqual(['pretrain', 'fp8', 'resume', 'wsm', 'rl']);
});

for (const { name, code } of examples) {
  it(`docs/training.md example '${name}' runs and prints what it says`, async () => {
    const lines = code.split('\n');
    const expected = lines.flatMap((l, i) => (/console\.log\(/.test(l) && lines[i + 1]?.trim().startsWith('// ') ? [lines[i + 1]!.trim().slice(3)] : []));
    expect(expected.length).toBeGreaterThan(0);
    const file = path.join(here, `.docs-${name}.tmp.ts`);
    fs.writeFileSync(file, code);
    const printed: string[] = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      printed.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
    });
    try {
      await import('@ring-linear/backend-cpu');
      const before = memory().tensors;
      await import(/* @vite-ignore */ file);
      expect(memory().tensors).toBe(before);
    } finally {
      spy.mockRestore();
      fs.rmSync(file, { force: true });
    }
    const patterns = expected.map(pattern);
    for (const line of printed) expect(patterns.some((p) => p.test(line)), `printed: ${line}\nexpected one of: ${expected.join(' | ')}`).toBe(true);
    for (const [i, p] of patterns.entries()) expect(printed.some((l) => p.test(l)), `nothing printed matches: ${expected[i]}`).toBe(true);
    console.log(`[docs:${name}] ${printed.join(' / ')}`);
  });
}
