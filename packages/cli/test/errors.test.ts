// Bad command lines exit 2 with a message naming the flag / value / argument (and the closest
// known one); failures while running exit 1 with the reason; --json reports errors as JSON.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { closest, editDistance } from '../src/index.js';
import { cli, tempDir } from './helpers.js';

async function usage(argv: string[], ...fragments: (string | RegExp)[]): Promise<string> {
  const r = await cli(argv);
  expect(r.code, `${argv.join(' ')}\n${r.stderr}`).toBe(2);
  // With --json on the line the error is also a JSON object on stdout; otherwise stdout stays empty.
  if (argv.includes('--json')) expect(r.json().error.kind).toBe('usage');
  else expect(r.stdout).toBe('');
  for (const f of fragments) {
    if (typeof f === 'string') expect(r.stderr).toContain(f);
    else expect(r.stderr).toMatch(f);
  }
  return r.stderr;
}

describe('usage errors (exit 2)', () => {
  it('names an unknown flag and suggests the closest one', async () => {
    const e = await usage(['demo', '--stpes', '3'], 'ring-linear demo: unknown flag --stpes; did you mean --steps?', "run 'ring-linear demo --help' for the flags");
    expect(e.startsWith('error: ')).toBe(true);
    await usage(['generate', 'tiny', 'x', '--temprature', '0.5'], 'unknown flag --temprature; did you mean --temperature?');
    await usage(['generate', 'tiny', 'x', '--topk', '5'], 'did you mean --top-k?');
    await usage(['train', '--precison', 'bf16'], 'did you mean --precision?');
    await usage(['train', '--max-step', '5'], 'unknown flag --max-step');
    // Nothing close: no guess.
    const far = await usage(['params', '--zzzzzzzz'], 'ring-linear params: unknown flag --zzzzzzzz');
    expect(far).not.toContain('did you mean');
    await usage(['params', '-x'], 'unknown flag -x', '-h = --help');
  });

  it('says when a flag needs a value, or got the next flag instead', async () => {
    await usage(['demo', '--steps'], 'ring-linear demo: --steps needs a value (<n>)');
    await usage(['demo', '--steps', '--json'], "--steps needs a value (<n>), got the flag '--json'");
    await usage(['demo', '--quiet=yes'], '--quiet is a switch and takes no value');
  });

  it('checks values: integers, numbers in range, choices (with a suggestion)', async () => {
    await usage(['demo', '--steps', 'abc'], "--steps: expected an integer >= 1, got 'abc'");
    await usage(['demo', '--steps', '0'], "--steps: expected an integer >= 1, got '0'");
    await usage(['demo', '--steps', '1.5'], "got '1.5'");
    await usage(['demo', '--max-tokens', '100000'], "--max-tokens: expected an integer in [1, 400], got '100000'");
    await usage(['generate', 'tiny', 'x', '--temperature', '-1'], "--temperature: expected a number >= 0, got '-1'");
    await usage(['generate', 'tiny', 'x', '--top-p', '0'], "--top-p: expected a number > 0 and <= 1, got '0'");
    await usage(['generate', 'tiny', 'x', '--min-p', '2'], "--min-p: expected a number >= 0 and <= 1, got '2'");
    await usage(['generate', 'tiny', 'x', '--seed', 'lucky'], "--seed: expected an integer >= 0, got 'lucky'");
    await usage(['demo', '--backend', 'cdua'], "--backend: expected one of cpu, webgpu, cuda, got 'cdua'; did you mean cuda?");
    await usage(['train', '--demo-corpus', '--precision', 'fp4'], "--precision: expected one of f32, bf16, f16, fp8, got 'fp4'");
    await usage(['info', '--backend', 'cpu,gpu'], "--backend: expected a comma-separated list of cpu, webgpu, cuda, got 'gpu'");
    await usage(['merge', 'a', 'b', '--out', 'x', '--weights', '1,,2'], "--weights: expected comma-separated numbers, e.g. 0.2,0.3,0.5, got '1,,2'");
  });

  it('checks arguments: missing, unexpected, conflicting', async () => {
    await usage(['generate'], 'ring-linear generate: missing <model>');
    await usage(['chat'], 'ring-linear chat: missing <model>');
    await usage(['quantize'], 'ring-linear quantize: missing <model>');
    await usage(['params', 'tiny', 'extra'], "ring-linear params: unexpected argument 'extra' (takes <model>)");
    await usage(['demo', 'now'], "ring-linear demo: unexpected argument 'now' (takes no arguments)");
    await usage(['train', '--steps', '5'], 'ring-linear train: no data; give text / JSONL files, or --demo-corpus');
    await usage(['train', '--demo-corpus', '--preset', 'tiny', '--config', 'c.json'], 'give --preset or --config, not both');
    await usage(['train', '--demo-corpus', '--steps', '10', '--warmup', '10'], '--warmup (10) must be smaller than --steps (10)');
    await usage(['train', '--resume'], '--resume needs --out <run folder>');
    await usage(['merge', 'a', 'b'], 'ring-linear merge: --out <dir> is required');
    await usage(['merge', 'a', '--out', 'x'], 'merging needs at least 2 checkpoints, got 1');
    await usage(['merge', 'a', 'b', '--out', 'x', '--weights', '1,2,3'], '--weights has 3 values for 2 checkpoints');
    await usage(['merge', 'a', 'b', '--out', 'x', '--weights', '1,-1'], '--weights sum to 0');
    await usage(['merge', 'a', 'b', '--out', 'x', '--weights', '1,1', '--decay-shape', 'cosine'], 'give --weights or --decay-shape, not both');
    await usage(['quantize', 'tiny'], 'ring-linear quantize: --out <dir> is required');
    await usage(['chat', 'tiny', '--json'], '--json needs the turns as --prompt');
  });

  it('unknown commands and flags before the command', async () => {
    const r = await cli(['trian']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("ring-linear: error: unknown command 'trian'; did you mean 'train'?");
    expect((await cli(['generat'])).stderr).toContain("did you mean 'generate'?");
    expect((await cli(['frobnicate'])).stderr).not.toContain('did you mean');
    const before = await cli(['--json', 'demo']);
    expect(before.code).toBe(2);
    expect(before.stderr).toContain("expected a command before flags, got '--json'");
    expect((await cli(['help', 'nope'])).code).toBe(2);
  });

  it('with --json, the error is also a JSON object on stdout', async () => {
    const r = await cli(['demo', '--stpes', '3', '--json']);
    expect(r.code).toBe(2);
    expect(r.json()).toEqual({ error: { message: 'ring-linear demo: unknown flag --stpes; did you mean --steps?', kind: 'usage', type: 'UsageError' } });
  });
});

describe('failures while running (exit 1)', () => {
  it('a model that does not exist', async () => {
    const dir = await tempDir();
    const r = await cli(['generate', 'no-such-model', 'hello'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ring-linear generate: error: no-such-model: no such folder (nor a preset: ring-mini-linear-2.0, ring-flash-linear-2.0, tiny, small)');
    const empty = join(dir, 'empty');
    await mkdir(empty);
    const r2 = await cli(['generate', 'empty', 'hello', '--json'], { cwd: dir });
    expect(r2.code).toBe(1);
    expect(r2.json().error.kind).toBe('failure');
    expect(r2.json().error.message).toContain('empty: the folder has no config.json and no training step folders');
  });

  it('a config.json with problems lists every problem', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'bad.json'), JSON.stringify({ vocab_size: 100, hidden_size: 30, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 3 }));
    const r = await cli(['params', 'bad.json'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ring-linear params: error: invalid bad.json');
    expect(r.stderr).toContain('num_key_value_heads');
    await writeFile(join(dir, 'broken.json'), '{ "vocab_size": ');
    const r2 = await cli(['params', 'broken.json'], { cwd: dir });
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('broken.json');
  });

  it('a data file that does not exist', async () => {
    const dir = await tempDir();
    const r = await cli(['train', 'missing.txt', '--steps', '2', '--out', 'run'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ring-linear train: error: .*missing\.txt.*cannot read/);
  });

  it('never writes into a folder that is not empty', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'taken'));
    await writeFile(join(dir, 'taken', 'notes.txt'), 'mine');
    const r = await cli(['demo', '--out', 'taken', '--steps', '1'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('taken is not empty (1 entry); nothing is written over existing files');
    await writeFile(join(dir, 'file'), 'x');
    const r2 = await cli(['demo', '--out', 'file', '--steps', '1'], { cwd: dir });
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('file exists and is not a folder');
  });

  it('a backend that is not available here names the reason', async () => {
    const r = await cli(['bench', '--builtin', '--backend', 'cuda', '--size', '8', '--repeat', '1']);
    if (r.code === 0) {
      console.log('[cli test] CUDA is available here; the unavailable-backend message is not exercised');
      return;
    }
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ring-linear bench: error: backend 'cuda' is not available here: CUDA not available: .+; 'ring-linear info' lists the backends/);
  });
});

describe('suggestions', () => {
  it('edit distance counts insertions, deletions, substitutions and swaps', () => {
    expect(editDistance('steps', 'steps')).toBe(0);
    expect(editDistance('stpes', 'steps')).toBe(1); // swap
    expect(editDistance('step', 'steps')).toBe(1);
    expect(editDistance('temprature', 'temperature')).toBe(1);
    expect(editDistance('abc', 'xyz')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('closest picks a plausible typo or prefix, else nothing', () => {
    const flags = ['steps', 'seed', 'seq-len', 'temperature', 'top-k', 'top-p'];
    expect(closest('stpes', flags)).toBe('steps');
    expect(closest('temp', flags)).toBe('temperature');
    expect(closest('sed', flags)).toBe('seed');
    expect(closest('zzzzzz', flags)).toBeNull();
  });
});
