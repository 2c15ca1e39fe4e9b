// docs/fp8.md's example, run as written (a child process with tsx, from this package so that the
// workspace packages resolve), and its output checked.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DOC = path.resolve(HERE, '../../../docs/fp8.md');

it('the docs/fp8.md example runs and prints what the text says', () => {
  const text = fs.readFileSync(DOC, 'utf8');
  const m = /<!-- fp8-example:begin[^>]*-->\s*```ts\n([\s\S]*?)```\s*<!-- fp8-example:end -->/.exec(text);
  expect(m, 'the example block').not.toBeNull();
  const file = path.join(HERE, `.docs-example-${process.pid}.ts`);
  fs.writeFileSync(file, m![1]!);
  let out: string;
  try {
    out = execFileSync(process.execPath, ['--conditions=@ring-linear/source', '--import', 'tsx', file], {
      cwd: path.resolve(HERE, '..'),
      encoding: 'utf8',
      timeout: 120_000,
    });
  } finally {
    fs.rmSync(file, { force: true });
  }
  expect(out).toMatch(/f8e4m3 data \[4,300\], scales \[4,3\], max error 0\.\d+/);
  const err = Number(/max error ([\d.]+)/.exec(out)![1]);
  expect(err).toBeGreaterThan(0);
  expect(err).toBeLessThan(0.3); // half a step at the top of the largest tile's range
  expect(out).toContain('converted: fc1, fc2');
  const losses = [...out.matchAll(/loss ([\d.]+)/g)].map((x) => Number(x[1]));
  expect(losses.length).toBe(5);
  expect(losses.at(-1)!).toBeLessThan(0.7 * losses[0]!);
});
