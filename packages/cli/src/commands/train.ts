/**
 * `ring-linear train`: trains a preset or a config.json on text / JSONL files, with the schedule,
 * precision and checkpointing flags, into a run folder (training.ts has the layout). The run's
 * settings are saved as train_args.json, so `--resume --out <run>` continues with the same
 * settings (flags given with --resume override them; the trainer refuses a resume whose data or
 * schedule differ from the checkpoint's, naming what differs).
 */
import { copyFile, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { manualSeed } from '@ring-linear/core';
import {
  BYTE_VOCAB,
  ByteTokenizer,
  PRESET_NAMES,
  RingLinearForCausalLM,
  configToJson,
  countParameters,
  formatParamCount,
  loadTokenizer,
  parseConfig,
  type RingLinearConfig,
  type TextTokenizer,
} from '@ring-linear/models';
import { PRECISIONS, readDocuments, tokenizeTexts, type Precision, type TokenizedDocument } from '@ring-linear/trainer';
import { BACKEND_FLAG, backendOf, freshOutputDir, printJson, showPath, type Command } from '../command.js';
import { releaseBackend, useBackend } from '../backends.js';
import { demoCorpus } from '../corpus.js';
import { describeLayers } from '../demo-model.js';
import { CliError, UsageError } from '../errors.js';
import { configFromArg } from '../model-io.js';
import { SCHEDULES, lossDrop, runTraining, type ScheduleName } from '../training.js';

export const TRAIN_ARGS_FILE = 'train_args.json';

/** Everything that defines a run (saved as train_args.json). */
export interface TrainArgs {
  readonly config: Record<string, unknown>;
  readonly configSource: string;
  readonly data: readonly string[];
  readonly demoCorpus: boolean;
  readonly tokenizer: string | null;
  readonly textField: string;
  readonly separator: string | null;
  readonly steps: number;
  readonly batch: number;
  readonly gradAccum: number;
  readonly seqLen: number;
  readonly lr: number;
  readonly minLr: number;
  readonly warmup: number;
  readonly schedule: ScheduleName;
  readonly weightDecay: number;
  readonly clip: number;
  readonly precision: Precision;
  readonly saveEvery: number;
  readonly keep: number;
  readonly evalFraction: number;
  readonly evalEvery: number;
  readonly seed: number;
}

const SAVED_KEYS: Readonly<Record<string, keyof TrainArgs>> = {
  steps: 'steps',
  batch: 'batch',
  'grad-accum': 'gradAccum',
  'seq-len': 'seqLen',
  lr: 'lr',
  'min-lr': 'minLr',
  warmup: 'warmup',
  schedule: 'schedule',
  'weight-decay': 'weightDecay',
  clip: 'clip',
  precision: 'precision',
  'save-every': 'saveEvery',
  keep: 'keep',
  'eval-fraction': 'evalFraction',
  'eval-every': 'evalEvery',
  seed: 'seed',
};

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function tokenizerOf(args: TrainArgs, config: RingLinearConfig): Promise<TextTokenizer> {
  if (args.tokenizer) return loadTokenizer(args.tokenizer);
  if (config.vocab_size === BYTE_VOCAB.size) return new ByteTokenizer();
  throw new CliError(`the model's vocabulary (${config.vocab_size}) is not the byte-level one (${BYTE_VOCAB.size}); give --tokenizer <folder with tokenizer.json>`);
}

export const trainCommand: Command = {
  spec: {
    name: 'train',
    summary: 'train a preset or config.json on text / JSONL files, with checkpoints and --resume',
    usage: ['train [<data files>...] [flags]', 'train --resume --out <run folder> [flags]'],
    description:
      'Data: plain-text files (one document per file, or split at --separator) and JSONL files ({"text": ...} or pre-tokenized ' +
      '{"tokens": [...]}) one document per line; documents are packed into rows of --seq-len tokens with their boundaries kept. ' +
      'Writes to the run folder (--out, default runs/train-<time>): step-NNNNNNNN/ checkpoints (each a Hugging Face model folder ' +
      'plus optimizer and trainer state; written atomically), metrics.jsonl, loss.svg and train_args.json.',
    positionals: [{ name: 'data files', description: '.txt / .jsonl / .ndjson files', optional: true, variadic: true }],
    flags: {
      preset: { type: 'string', value: '<name>', description: `model preset: ${PRESET_NAMES.join(', ')}`, default: 'tiny' },
      config: { type: 'string', value: '<file>', description: 'a config.json (or a folder with one) instead of a preset' },
      'demo-corpus': { type: 'boolean', description: "train on the demo's bundled synthetic stories" },
      steps: { type: 'string', value: '<n>', description: 'optimizer steps', default: '1000' },
      batch: { type: 'string', value: '<rows>', description: 'rows of --seq-len tokens per micro-batch', default: '8' },
      'grad-accum': { type: 'string', value: '<n>', description: 'micro-batches accumulated per step', default: '1' },
      'seq-len': { type: 'string', value: '<n>', description: 'tokens per row', default: '256' },
      lr: { type: 'string', value: '<lr>', description: 'peak learning rate', default: '0.001' },
      'min-lr': { type: 'string', value: '<lr>', description: 'final learning rate of cosine / wsd', default: 'lr / 10' },
      warmup: { type: 'string', value: '<n>', description: 'warmup steps', default: '5% of the steps, at most 100' },
      schedule: { type: 'string', value: '<name>', description: `learning-rate schedule: ${SCHEDULES.join(', ')}`, default: 'cosine' },
      'weight-decay': { type: 'string', value: '<w>', description: 'AdamW weight decay (not on norms and biases)', default: '0.1' },
      clip: { type: 'string', value: '<norm>', description: 'global gradient-norm clip (0 = off)', default: '1' },
      precision: { type: 'string', value: '<p>', description: `${PRECISIONS.join(', ')} (bf16/f16: f32 master weights; fp8: FP8 linear layers)`, default: 'f32' },
      out: { type: 'string', value: '<dir>', description: 'run folder: checkpoints, metrics, plot', default: 'runs/train-<time>' },
      'checkpoint-dir': { type: 'string', value: '<dir>', description: 'same as --out' },
      'save-every': { type: 'string', value: '<n>', description: 'checkpoint every n steps (and at the end)', default: 'steps / 10' },
      keep: { type: 'string', value: '<n>', description: 'newest checkpoints kept (0 = all)', default: '3' },
      resume: { type: 'boolean', description: 'continue the run in --out from its newest checkpoint, with its saved settings' },
      'eval-fraction': { type: 'string', value: '<f>', description: 'fraction of documents held out for the eval loss (0 = none)', default: '0.02' },
      'eval-every': { type: 'string', value: '<n>', description: 'evaluate every n steps (and at the end)', default: 'at the end' },
      seed: { type: 'string', value: '<n>', description: 'seed of the weights, data order and split', default: '0' },
      tokenizer: { type: 'string', value: '<dir>', description: 'folder with tokenizer.json (needed unless the vocabulary is byte level)' },
      'text-field': { type: 'string', value: '<name>', description: 'JSONL field holding the text', default: 'text' },
      separator: { type: 'string', value: '<text>', description: 'split plain-text files into documents at this string' },
      ...BACKEND_FLAG,
      quiet: { type: 'boolean', short: 'q', description: 'no progress bar' },
    },
    examples: [
      'ring-linear train stories.txt --preset tiny --steps 500 --batch 8 --seq-len 128',
      'ring-linear train data/*.jsonl --config my-model/config.json --tokenizer my-model --precision bf16 --out runs/mine',
      'ring-linear train --demo-corpus --precision fp8 --steps 100 --out runs/fp8',
      'ring-linear train --resume --out runs/mine --steps 2000',
    ],
  },

  async run({ io, flags, positionals, json, invocation }) {
    const resume = flags.bool('resume');
    const outArg = flags.string('out') ?? flags.string('checkpoint-dir');
    if (flags.has('out') && flags.has('checkpoint-dir') && flags.string('out') !== flags.string('checkpoint-dir')) {
      throw new UsageError('ring-linear train: --out and --checkpoint-dir name the same thing; give one', 'train');
    }
    if (flags.has('preset') && flags.has('config')) throw new UsageError('ring-linear train: give --preset or --config, not both', 'train');
    const backendName = backendOf(flags);
    const quiet = flags.bool('quiet');

    // Settings: saved ones (resume) overridden by the flags given now.
    let saved: TrainArgs | null = null;
    let out: string;
    if (resume) {
      if (outArg === undefined) throw new UsageError('ring-linear train: --resume needs --out <run folder> (the run to continue)', 'train');
      out = path.resolve(io.cwd, outArg);
      const argsFile = path.join(out, TRAIN_ARGS_FILE);
      if (!(await exists(argsFile))) throw new CliError(`${outArg}: no ${TRAIN_ARGS_FILE}; not a run folder of 'ring-linear train' (nothing to resume)`);
      saved = JSON.parse(await readFile(argsFile, 'utf8')) as TrainArgs;
    } else out = '';

    const given = (flag: string) => flags.has(flag);
    const pick = <T>(flag: string, read: () => T): T => (saved && !given(flag) ? (saved[SAVED_KEYS[flag]!] as T) : read());
    let config: RingLinearConfig;
    let configSource: string;
    if (saved && !given('preset') && !given('config')) {
      config = parseConfig(saved.config, `${TRAIN_ARGS_FILE} config`);
      configSource = saved.configSource;
    } else {
      ({ config, source: configSource } = await configFromArg(flags.string('config') ?? flags.string('preset', 'tiny'), io.cwd));
    }
    const steps = pick('steps', () => flags.int('steps', { min: 1, fallback: 1000 }));
    const lr = pick('lr', () => flags.number('lr', { min: 0, exclusiveMin: true, fallback: 1e-3 }));
    const args: TrainArgs = {
      config: configToJson(config),
      configSource,
      data: saved && positionals.length === 0 ? saved.data : positionals.map((p) => path.resolve(io.cwd, p)),
      demoCorpus: saved && positionals.length === 0 && !given('demo-corpus') ? saved.demoCorpus : flags.bool('demo-corpus'),
      tokenizer: flags.has('tokenizer') ? path.resolve(io.cwd, flags.string('tokenizer')!) : (saved?.tokenizer ?? null),
      textField: flags.string('text-field') ?? saved?.textField ?? 'text',
      separator: flags.string('separator') ?? saved?.separator ?? null,
      steps,
      batch: pick('batch', () => flags.int('batch', { min: 1, fallback: 8 })),
      gradAccum: pick('grad-accum', () => flags.int('grad-accum', { min: 1, fallback: 1 })),
      seqLen: pick('seq-len', () => flags.int('seq-len', { min: 2, fallback: Math.min(256, config.max_position_embeddings) })),
      lr,
      minLr: pick('min-lr', () => flags.number('min-lr', { min: 0, fallback: lr / 10 })),
      warmup: pick('warmup', () => flags.int('warmup', { min: 0, fallback: Math.min(100, Math.floor(steps / 20)) })),
      schedule: pick('schedule', () => flags.oneOf('schedule', SCHEDULES, 'cosine')),
      weightDecay: pick('weight-decay', () => flags.number('weight-decay', { min: 0, fallback: 0.1 })),
      clip: pick('clip', () => flags.number('clip', { min: 0, fallback: 1 })),
      precision: pick('precision', () => flags.oneOf('precision', PRECISIONS, 'f32')),
      saveEvery: pick('save-every', () => flags.int('save-every', { min: 1, fallback: Math.max(1, Math.round(steps / 10)) })),
      keep: pick('keep', () => flags.int('keep', { min: 0, fallback: 3 })),
      evalFraction: pick('eval-fraction', () => flags.number('eval-fraction', { min: 0, max: 0.5, fallback: 0.02 })),
      evalEvery: pick('eval-every', () => flags.int('eval-every', { min: 0, fallback: 0 })),
      seed: pick('seed', () => flags.int('seed', { min: 0, fallback: 0 })),
    };
    if (args.data.length === 0 && !args.demoCorpus) {
      throw new UsageError('ring-linear train: no data; give text / JSONL files, or --demo-corpus for the bundled stories', 'train');
    }
    if (args.data.length > 0 && args.demoCorpus) throw new UsageError('ring-linear train: give data files or --demo-corpus, not both', 'train');
    if (args.warmup >= args.steps) throw new UsageError(`ring-linear train: --warmup (${args.warmup}) must be smaller than --steps (${args.steps})`, 'train');
    if (args.seqLen > config.max_position_embeddings) {
      throw new UsageError(`ring-linear train: --seq-len ${args.seqLen} exceeds the model's max_position_embeddings (${config.max_position_embeddings})`, 'train');
    }

    const backend = await useBackend(backendName);
    try {
      const tokenizer = await tokenizerOf(args, config);
      let documents: TokenizedDocument[];
      if (args.demoCorpus) documents = tokenizeTexts(demoCorpus({ seed: args.seed + 1 }), tokenizer);
      else {
        documents = await readDocuments(args.data, {
          tokenizer,
          textField: args.textField,
          ...(args.separator !== null ? { separator: args.separator } : {}),
        });
      }
      if (!resume) {
        out = await freshOutputDir(io, outArg, 'train');
        const tmp = path.join(out, `.${TRAIN_ARGS_FILE}.tmp`);
        await writeFile(tmp, `${JSON.stringify(args, null, 2)}\n`);
        await rename(tmp, path.join(out, TRAIN_ARGS_FILE));
        // The tokenizer goes with the run, so `generate <run>` finds it.
        if (args.tokenizer) {
          for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
            if (await exists(path.join(args.tokenizer, f))) await copyFile(path.join(args.tokenizer, f), path.join(out, f));
          }
        }
      }
      const counts = countParameters(config);
      const evalDocuments = args.evalFraction > 0 ? Math.max(1, Math.round(args.evalFraction * documents.length)) : 0;
      if (evalDocuments >= documents.length) {
        throw new CliError(`holding out ${evalDocuments} of ${documents.length} documents leaves none for training; lower --eval-fraction (or 0)`);
      }
      if (!json) {
        io.stdout.write(`${resume ? 'resuming' : 'training'} ${configSource}: ${config.num_hidden_layers} layers (${describeLayers(config)}), ${formatParamCount(counts.total)} parameters\n`);
        io.stdout.write(`  data: ${args.demoCorpus ? 'the demo stories' : args.data.map((d) => showPath(io, d)).join(', ')}: ${documents.length} documents, ${evalDocuments} held out\n`);
        io.stdout.write(`  ${args.steps} steps x ${args.batch * args.gradAccum} rows x ${args.seqLen} tokens, ${args.schedule} lr ${args.lr}, precision ${args.precision}, on ${backendName} (${backend.capabilities.device})\n`);
        io.stdout.write(`  run folder: ${showPath(io, out)}\n\n`);
      }
      manualSeed(args.seed);
      const model = new RingLinearForCausalLM(config);
      const run = await runTraining({
        model,
        documents,
        out,
        steps: args.steps,
        seqLen: args.seqLen,
        rows: args.batch,
        gradAccumulation: args.gradAccum,
        peakLr: args.lr,
        minLr: args.minLr,
        warmupSteps: args.warmup,
        schedule: args.schedule,
        weightDecay: args.weightDecay,
        maxGradNorm: args.clip > 0 ? args.clip : null,
        precision: args.precision,
        seed: args.seed,
        evalDocuments,
        ...(args.evalEvery > 0 ? { evalEvery: args.evalEvery } : {}),
        saveEvery: args.saveEvery,
        keepLast: args.keep,
        resume,
        progress: quiet || json ? null : io.stderr,
        padId: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0,
      });
      run.trainer.dispose();
      model.dispose();
      const drop = lossDrop(run.metrics);
      const result = {
        out,
        resumedFromStep: run.resumedFrom?.step ?? null,
        steps: args.steps,
        stepsRun: run.metrics.length,
        loss: drop ? { first: drop.first, last: drop.last } : null,
        evalLoss: run.evalLoss,
        checkpoint: run.checkpoint,
        metrics: run.metricsFile,
        lossPlot: run.plotFile,
        seconds: run.seconds,
      };
      if (json) {
        printJson(io, result);
        return;
      }
      if (run.resumedFrom) io.stdout.write(`resumed at step ${run.resumedFrom.step}\n`);
      if (drop) io.stdout.write(`loss ${drop.first.toFixed(4)} -> ${drop.last.toFixed(4)}${run.evalLoss !== null ? `, held-out loss ${run.evalLoss.toFixed(4)}` : ''} (${run.metrics.length} steps, ${run.seconds.toFixed(0)} s)\n`);
      else io.stdout.write(`nothing to do: the run is already at step ${args.steps} (raise --steps to continue)\n`);
      io.stdout.write(`checkpoint  ${run.checkpoint ? showPath(io, run.checkpoint) : '(none)'}\n`);
      io.stdout.write(`metrics     ${showPath(io, run.metricsFile)}\n`);
      io.stdout.write(`loss plot   ${showPath(io, run.plotFile)}\n`);
      io.stdout.write(`\nnext: ${invocation} generate ${showPath(io, out)} "..."\n`);
    } finally {
      await releaseBackend(backendName);
    }
  },
};
