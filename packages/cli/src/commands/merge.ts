/**
 * `ring-linear merge`: the weighted average of checkpoints of one model, the "merge" of
 * warmup-stable-merge (WSM) training: merged = sum_i w_i * theta_i / sum_i w_i, accumulated in
 * float64 (@ring-linear/trainer mergeCheckpoints). Weights are given, uniform, or the WSM
 * weights that emulate a decay of a given shape over the merged window.
 */
import { copyFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { dispose } from '@ring-linear/core';
import { listTrainingCheckpoints, mergeCheckpoints, wsmMergeWeights, type DecayShape } from '@ring-linear/trainer';
import { freshOutputDir, printJson, showPath, type Command } from '../command.js';
import { CliError, UsageError } from '../errors.js';

const SHAPES: readonly DecayShape[] = ['linear', 'cosine', 'sqrt'];

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

export const mergeCommand: Command = {
  spec: {
    name: 'merge',
    summary: 'average checkpoints with weights (WSM checkpoint merging) into a new model folder',
    usage: ['merge <checkpoint>... --out <dir> [--weights w1,w2,...]', 'merge <training run> --last <n> --out <dir> [--decay-shape linear|cosine|sqrt]'],
    description:
      'Averages the tensors of several checkpoints of the same model (model folders or training step folders), weighted by ' +
      '--weights (normalized by their sum) or uniformly. With a training run folder and --last n, its newest n step folders are ' +
      'merged. --decay-shape gives the warmup-stable-merge weights that emulate that learning-rate decay over the merged window ' +
      '(linear: uniform). The merged model.safetensors and config.json go to --out (a new or empty folder).',
    positionals: [{ name: 'checkpoint', description: 'model folders / step folders, or one training run folder with --last', variadic: true }],
    flags: {
      out: { type: 'string', value: '<dir>', description: 'output folder (new or empty); required' },
      weights: { type: 'string', value: '<w,...>', description: 'one weight per checkpoint, comma-separated (default: uniform)' },
      last: { type: 'string', value: '<n>', description: 'merge the newest n step folders of one training run folder' },
      'decay-shape': { type: 'string', value: '<shape>', description: 'WSM weights emulating this decay: linear, cosine, sqrt' },
      dtype: { type: 'string', value: '<dtype>', description: 'dtype of the merged float tensors: f32, bf16, f16 (default: the inputs\')' },
    },
    examples: [
      'ring-linear merge runs/train-1/step-00000800 runs/train-1/step-00000900 runs/train-1/step-00001000 --out merged',
      'ring-linear merge runs/train-1 --last 5 --decay-shape cosine --out merged',
      'ring-linear merge a b --weights 0.25,0.75 --out merged --json',
    ],
  },

  async run({ io, flags, positionals, json }) {
    const outArg = flags.string('out');
    if (outArg === undefined) throw new UsageError('ring-linear merge: --out <dir> is required (where the merged model goes)', 'merge');
    const last = flags.int('last', { min: 1 });
    const shape = flags.oneOf('decay-shape', SHAPES);
    let weights = flags.numberList('weights');
    const dtype = flags.oneOf('dtype', ['f32', 'bf16', 'f16'] as const);
    if (weights && shape) throw new UsageError('ring-linear merge: give --weights or --decay-shape, not both', 'merge');

    let inputs = positionals.map((p) => path.resolve(io.cwd, p));
    if (last !== undefined) {
      if (inputs.length !== 1) throw new UsageError(`ring-linear merge: --last takes one training run folder, got ${inputs.length} arguments`, 'merge');
      const steps = await listTrainingCheckpoints(inputs[0]!);
      if (steps.length === 0) throw new CliError(`${positionals[0]}: no step folders (step-*) to merge`);
      if (steps.length < last) throw new CliError(`${positionals[0]}: --last ${last} but the run has ${steps.length} step folder${steps.length === 1 ? '' : 's'} (${steps.map((s) => s.step).join(', ')})`);
      inputs = steps.slice(-last).map((s) => s.path);
    }
    if (inputs.length < 2) throw new UsageError(`ring-linear merge: merging needs at least 2 checkpoints, got ${inputs.length}`, 'merge');
    if (weights && weights.length !== inputs.length) {
      throw new UsageError(`ring-linear merge: --weights has ${weights.length} value${weights.length === 1 ? '' : 's'} for ${inputs.length} checkpoints`, 'merge');
    }
    weights ??= shape ? wsmMergeWeights(inputs.length, shape) : inputs.map(() => 1);
    const total = weights.reduce((a, b) => a + b, 0);
    if (Math.abs(total) < 1e-12) throw new UsageError(`ring-linear merge: --weights sum to ${total}; they are normalized by their sum, so it must not be 0`, 'merge');

    const out = await freshOutputDir(io, outArg, 'merge');
    const t0 = Date.now();
    const merged = await mergeCheckpoints(inputs, weights, { out, ...(dtype ? { dtype } : {}) });
    const tensors = merged.size;
    dispose([...merged.values()]);
    // A tokenizer next to the first input belongs to the merged model too.
    const copied: string[] = [];
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json']) {
      const src = path.join(inputs[0]!, f);
      if (await isFile(src)) {
        await copyFile(src, path.join(out, f));
        copied.push(f);
      }
    }
    const normalized = weights.map((w) => w / total);
    if (json) {
      printJson(io, { out, inputs, weights: normalized, tensors, copied, seconds: (Date.now() - t0) / 1000 });
      return;
    }
    io.stdout.write(`merged ${inputs.length} checkpoints (${tensors} tensors) into ${showPath(io, out)}\n`);
    inputs.forEach((p, i) => io.stdout.write(`  ${normalized[i]!.toFixed(4)}  ${showPath(io, p)}\n`));
    if (copied.length) io.stdout.write(`copied ${copied.join(', ')} from the first checkpoint\n`);
  },
};
