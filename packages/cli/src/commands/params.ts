/**
 * `ring-linear params`: parameter accounting from a config alone (no weights are allocated, so
 * the 100B-parameter presets are instant): total, active per token, non-embedding active, the
 * breakdown by part and, with --layers, per layer.
 */
import { PRESET_NAMES, countParameters, describeModel, formatParamCount, preset, type ParameterCounts } from '@ring-linear/models';
import { printJson, type Command } from '../command.js';
import { describeLayers, demoModelConfig } from '../demo-model.js';
import { configFromArg } from '../model-io.js';

const BREAKDOWN: readonly [keyof ParameterCounts, string][] = [
  ['embedding', 'embedding'],
  ['attention', 'attention'],
  ['denseMlp', 'dense MLP'],
  ['router', 'router'],
  ['routedExperts', 'routed experts'],
  ['activeRoutedExperts', '  of which active'],
  ['sharedExperts', 'shared experts'],
  ['norms', 'norms'],
  ['lmHead', 'lm_head'],
];

function fmt(n: number): string {
  return `${n.toLocaleString('en-US').padStart(16)}  ${formatParamCount(n).padStart(7)}`;
}

export const paramsCommand: Command = {
  spec: {
    name: 'params',
    summary: 'count the parameters of a preset, a config.json or a model folder (total, active, by part)',
    usage: ['params [<preset | config.json | model folder>] [flags]'],
    description:
      `Counts from the config alone, as the Ring-linear report does: total (every parameter once), active (what one token uses: ` +
      `num_experts_per_tok of the routed experts per MoE layer, plus everything else) and non-embedding active (active minus ` +
      `the embedding and the lm_head). Without an argument, lists every preset (${PRESET_NAMES.join(', ')}) and the demo model.`,
    positionals: [{ name: 'model', description: 'a preset name, a config.json file, or a folder with config.json', optional: true }],
    flags: {
      layers: { type: 'boolean', description: 'also list each layer (attention kind, MLP kind, parameters)' },
      dtype: { type: 'string', value: '<dtype>', description: 'parameter dtype for the size in bytes: f32, bf16, f16', default: 'f32' },
    },
    examples: ['ring-linear params', 'ring-linear params ring-mini-linear-2.0', 'ring-linear params ./my-model/config.json --layers', 'ring-linear params tiny --json'],
  },

  async run({ io, flags, positionals, json }) {
    const dtype = flags.oneOf('dtype', ['f32', 'bf16', 'f16'] as const, 'f32');
    if (positionals[0] === undefined) {
      const rows = [...PRESET_NAMES.map((n) => ({ name: n as string, config: preset(n) })), { name: 'demo', config: demoModelConfig() }];
      const counted = rows.map((r) => ({ name: r.name, layers: r.config.num_hidden_layers, ...countParameters(r.config) }));
      if (json) {
        printJson(io, { presets: Object.fromEntries(counted.map(({ name, ...c }) => [name, c])) });
        return;
      }
      io.stdout.write(`${'model'.padEnd(24)}${'layers'.padStart(7)}${'total'.padStart(10)}${'active'.padStart(10)}${'non-emb. active'.padStart(17)}\n`);
      for (const c of counted) {
        io.stdout.write(
          `${c.name.padEnd(24)}${String(c.layers).padStart(7)}${formatParamCount(c.total).padStart(10)}${formatParamCount(c.active).padStart(10)}${formatParamCount(c.nonEmbeddingActive).padStart(17)}\n`,
        );
      }
      io.stdout.write(`\n'ring-linear params <name> --layers' shows one in detail.\n`);
      return;
    }
    const arg = positionals[0];
    const { config, source } = arg === 'demo' ? { config: demoModelConfig(), source: 'the demo model' } : await configFromArg(arg, io.cwd);
    const d = describeModel(config, { dtype });
    const c = d.counts;
    if (json) {
      printJson(io, {
        source,
        counts: c,
        bytes: d.bytes,
        dtype,
        layers: flags.bool('layers') ? d.layers : undefined,
      });
      return;
    }
    const w = io.stdout;
    w.write(`${source}: ${config.num_hidden_layers} layers (${describeLayers(config)})\n\n`);
    w.write(`total                ${fmt(c.total)}\n`);
    w.write(`active per token     ${fmt(c.active)}\n`);
    w.write(`non-embedding active ${fmt(c.nonEmbeddingActive)}\n\n`);
    for (const [k, label] of BREAKDOWN) w.write(`  ${label.padEnd(19)}${fmt(c[k])}\n`);
    w.write(`\nweights in ${dtype}: ${(d.bytes / 2 ** 20).toFixed(1)} MiB (router, final norm and lm_head stay f32)\n`);
    if (flags.bool('layers')) {
      w.write(`\n${'layer'.padEnd(7)}${'attention'.padEnd(11)}${'mlp'.padEnd(7)}${'parameters'.padStart(16)}${'active'.padStart(16)}\n`);
      for (const l of d.layers) {
        w.write(`${String(l.index).padEnd(7)}${l.attention.padEnd(11)}${l.mlp.padEnd(7)}${l.parameters.toLocaleString('en-US').padStart(16)}${l.activeParameters.toLocaleString('en-US').padStart(16)}\n`);
      }
    }
  },
};
