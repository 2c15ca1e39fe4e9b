// Help text: the main help lists every command; each command's --help (and `help <cmd>`, -h)
// shows its usage, every flag it accepts, and examples, and exits 0 without doing any work.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/index.js';
import { cli } from './helpers.js';

const NAMES = ['demo', 'info', 'train', 'generate', 'chat', 'params', 'merge', 'quantize', 'bench'];

describe('ring-linear --help', () => {
  it('lists every command with its summary, the common flags and the exit codes', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^ring-linear: /);
    expect(r.stdout).toContain('Usage:\n  ring-linear <command> [flags]');
    for (const c of COMMANDS) expect(r.stdout).toMatch(new RegExp(`\\n  ${c.spec.name} +${c.spec.summary.replace(/[()]/g, '\\$&')}\\n`));
    expect(COMMANDS.map((c) => c.spec.name)).toEqual(NAMES);
    expect(r.stdout).toContain('--json');
    expect(r.stdout).toContain('Exit codes: 0 success, 1 failure while running, 2 wrong command line');
    expect(r.stdout).toContain('ring-linear demo');
    expect((await cli(['-h'])).stdout).toBe(r.stdout);
    expect((await cli(['help'])).stdout).toBe(r.stdout);
  });

  it('with no command prints the help on stderr and exits 2', async () => {
    const r = await cli([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('Commands:');
    expect(r.stderr).toContain('error: no command given');
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) {
      const r = await cli([flag]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`${pkg.version}\n`);
    }
  });
});

describe('ring-linear <command> --help', () => {
  for (const name of NAMES) {
    it(`${name}: usage, every flag, examples; exit 0`, async () => {
      const spec = COMMANDS.find((c) => c.spec.name === name)!.spec;
      const r = await cli([name, '--help']);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      const out = r.stdout;
      expect(out.startsWith(`ring-linear ${name}: ${spec.summary}\n`)).toBe(true);
      expect(out).toContain(`Usage:\n  ring-linear ${spec.usage[0]}`);
      for (const flag of [...Object.keys(spec.flags), 'help', 'json']) expect(out, `--${flag}`).toMatch(new RegExp(`--${flag}\\b`));
      expect(out).toContain('-h, --help');
      expect(out).toContain('Examples:\n  ring-linear ');
      for (const e of spec.examples) expect(out).toContain(e);
      // -h and `help <command>` give the same text; --help wins over other (even bad) flags.
      expect((await cli([name, '-h'])).stdout).toBe(out);
      expect((await cli(['help', name])).stdout).toBe(out);
      const withOthers = await cli([name, '--steps', 'not-a-number', '--help']);
      expect(withOthers.code).toBe(0);
      expect(withOthers.stdout).toBe(out);
    });
  }

  it('states what each command is about', async () => {
    const help = async (name: string) => (await cli([name, '--help'])).stdout;
    const demo = await help('demo');
    expect(demo).toContain('--steps <n>');
    expect(demo).toContain('(default: 300)');
    expect(demo).toContain('runs/demo-<time>');
    expect(demo).toMatch(/never written\s+over/);
    expect(demo).toContain('--backend <name>');
    expect(demo).toContain('cpu, webgpu, cuda');
    const train = await help('train');
    for (const f of ['--preset <name>', '--config <file>', '--steps <n>', '--batch <rows>', '--seq-len <n>', '--lr <lr>', '--precision <p>', '--resume', '--checkpoint-dir <dir>', '--schedule <name>']) {
      expect(train).toContain(f);
    }
    expect(train).toContain('f32, bf16, f16, fp8');
    expect(train).toContain('cosine, constant, wsd, wsm');
    expect(train).toContain('ring-mini-linear-2.0');
    for (const name of ['generate', 'chat']) {
      const h = await help(name);
      for (const f of ['--temperature <t>', '--top-k <k>', '--top-p <p>', '--min-p <p>', '--seed <n>', '--max-tokens <n>', '--stop <text>', '--prompt <text>']) expect(h, `${name} ${f}`).toContain(f);
      expect(h).toContain('<model>');
    }
    expect(await help('chat')).toContain('/reset');
    expect(await help('generate')).toContain('(default: 128)');
    expect(await help('chat')).toContain('(default: 256)');
    const params = await help('params');
    expect(params).toContain('ring-mini-linear-2.0, ring-flash-linear-2.0, tiny, small');
    expect(params).toContain('non-embedding active');
    const merge = await help('merge');
    expect(merge).toContain('--weights <w,...>');
    expect(merge).toContain('--last <n>');
    expect(merge).toContain('linear, cosine, sqrt');
    const quantize = await help('quantize');
    expect(quantize).toContain('128x128');
    expect(quantize).toContain('e4m3');
    expect(quantize).toContain('weight_scale_inv');
    expect(await help('info')).toContain('SwiftShader');
    expect(await help('bench')).toContain('tools/bench');
  });
});
