/**
 * `ring-linear quantize`: writes an FP8 blockwise checkpoint (fp8-checkpoint.ts has the layout)
 * of a model folder or training run, and checks it by loading it back.
 */
import { copyFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { freshOutputDir, printJson, showPath, type Command } from '../command.js';
import { UsageError } from '../errors.js';
import { loadFp8Checkpoint, writeFp8Checkpoint } from '../fp8-checkpoint.js';
import { loadModel } from '../model-io.js';
import { loadConfig } from '@ring-linear/models';

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

export const quantizeCommand: Command = {
  spec: {
    name: 'quantize',
    summary: 'write an FP8 blockwise (128x128) checkpoint of a model',
    usage: ['quantize <model> --out <dir> [--format e4m3|e5m2]'],
    description:
      'Quantizes the Linear weights (attention projections, dense and expert MLPs) to FP8 with one f32 scale per 128x128 block, ' +
      'in the Hugging Face fine-grained FP8 layout (weight + weight_scale_inv, quantization_config in config.json). The ' +
      'embedding, lm_head, norms and router keep their dtype. The result loads in `ring-linear generate` and `chat` ' +
      '(dequantized on load) and is about a quarter of the f32 size.',
    positionals: [{ name: 'model', description: 'a model folder or a training run folder' }],
    flags: {
      out: { type: 'string', value: '<dir>', description: 'output folder (new or empty); required' },
      format: { type: 'string', value: '<fmt>', description: 'FP8 format: e4m3 (more precision) or e5m2 (more range)', default: 'e4m3' },
    },
    examples: ['ring-linear quantize runs/demo-20261127-120000 --out demo-fp8', 'ring-linear generate demo-fp8 "One day, Mia"'],
  },

  async run({ io, flags, positionals, json, invocation }) {
    const outArg = flags.string('out');
    if (outArg === undefined) throw new UsageError('ring-linear quantize: --out <dir> is required (where the FP8 checkpoint goes)', 'quantize');
    const format = flags.oneOf('format', ['e4m3', 'e5m2'] as const, 'e4m3');
    const { model, folder } = await loadModel(positionals[0]!, io.cwd, 'f32');
    const out = await freshOutputDir(io, outArg, 'quantize');
    const report = await writeFp8Checkpoint(model, out, format === 'e4m3' ? 'f8e4m3' : 'f8e5m2');
    model.dispose();
    const copied: string[] = [];
    if (folder) {
      for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json']) {
        if (await isFile(path.join(folder, f))) {
          await copyFile(path.join(folder, f), path.join(out, f));
          copied.push(f);
        }
      }
    }
    // Load it back: the written folder must be a loadable model.
    const back = await loadFp8Checkpoint(out, await loadConfig(out));
    back.dispose();
    if (json) {
      printJson(io, { ...report, source: folder, copied });
      return;
    }
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
    io.stdout.write(`wrote ${showPath(io, out)}: FP8 ${format}, 128x128 blocks\n`);
    io.stdout.write(`  ${report.quantized} weights quantized, ${report.kept} tensors kept as they were\n`);
    io.stdout.write(`  ${mib(report.bytesBefore)} -> ${mib(report.bytesAfter)} (${((100 * report.bytesAfter) / report.bytesBefore).toFixed(0)}%)\n`);
    io.stdout.write(`  largest round-trip error: ${(100 * report.maxRelativeError).toFixed(2)}% of a weight's largest magnitude\n`);
    io.stdout.write(`  loads back: yes (try: ${invocation} generate ${showPath(io, out)} "...")\n`);
  },
};
