// The README's example must run as written and print what the README says it prints.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it, vi } from 'vitest';
import { memory } from '@ring-linear/core';

const here = path.dirname(fileURLToPath(import.meta.url));

it('README example runs, prints the documented values and leaks nothing', async () => {
  const readme = fs.readFileSync(path.join(here, '..', 'README.md'), 'utf8');
  const code = /## Example[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  const printed = /It prints\s+```\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeTruthy();
  expect(printed).toBeTruthy();
  const file = path.join(here, '.readme-example.tmp.ts');
  fs.writeFileSync(file, code!);
  const lines: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    lines.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
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
  expect(lines).toEqual(printed!.trim().split('\n'));
});
