// The runnable examples of docs/models.md must run as written and print what their comments say:
// each `console.log(...)` line followed by a `// ...` comment line expects that output.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it, vi } from 'vitest';
import { memory } from '@ring-linear/core';

const here = path.dirname(fileURLToPath(import.meta.url));
const doc = fs.readFileSync(path.join(here, '..', '..', '..', 'docs', 'models.md'), 'utf8');
const examples = [...doc.matchAll(/<!-- example: (\w+) -->\n```ts\n([\s\S]*?)```/g)].map((m) => ({ name: m[1]!, code: m[2]! }));

it('docs/models.md has the three runnable examples', () => {
  expect(examples.map((e) => e.name)).toEqual(['counting', 'hybrid', 'checkpoint']);
});

for (const { name, code } of examples) {
  it(`docs/models.md example '${name}' prints what it says and leaks nothing`, async () => {
    const lines = code.split('\n');
    const expected = lines.flatMap((l, i) => (/console\.log\(/.test(l) && lines[i + 1]?.startsWith('// ') ? [lines[i + 1]!.slice(3)] : []));
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
    expect(printed).toEqual(expected);
  });
}
