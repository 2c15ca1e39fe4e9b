/**
 * `ring-linear demo`: the main job. Trains the demo hybrid (demo-model.ts) on the bundled
 * synthetic stories (corpus.ts) on the CPU backend by default, with a progress bar, then samples
 * from it and prints the samples and where the checkpoint, metrics and loss plot are.
 */
import { manualSeed } from '@ring-linear/core';
import { BYTE_VOCAB, ByteTokenizer, RingLinearForCausalLM, countParameters, formatParamCount } from '@ring-linear/models';
import { Sampler } from '@ring-linear/sampler';
import { tokenizeTexts } from '@ring-linear/trainer';
import { BACKEND_FLAG, backendOf, freshOutputDir, printJson, showPath, type Command } from '../command.js';
import { releaseBackend, useBackend } from '../backends.js';
import { DEMO_PROMPTS, demoCorpus } from '../corpus.js';
import { DEMO_RECIPE, demoModelConfig, describeLayers } from '../demo-model.js';
import { lossDrop, runTraining, sparkline } from '../training.js';

export const demoCommand: Command = {
  spec: {
    name: 'demo',
    summary: 'train a small hybrid model on bundled stories, then sample from it (a few minutes on a CPU)',
    usage: ['demo [flags]'],
    description:
      'Trains a 4-layer hybrid (linear and softmax attention, a dense MLP and MoE layers; 217K parameters, byte-level) ' +
      'on synthetic short stories generated on the spot (nothing is downloaded), shows a progress bar, then generates from ' +
      'the trained model. Writes a checkpoint (a Hugging Face model folder), metrics (JSONL) and a loss plot (SVG) to a new ' +
      'folder, runs/demo-<time> by default; existing files are never written over.',
    flags: {
      steps: { type: 'string', value: '<n>', description: 'optimizer steps', default: String(DEMO_RECIPE.steps) },
      out: { type: 'string', value: '<dir>', description: 'output folder (new or empty)', default: 'runs/demo-<time>' },
      ...BACKEND_FLAG,
      seed: { type: 'string', value: '<n>', description: 'seed of the weights, data order and samples', default: String(DEMO_RECIPE.seed) },
      'max-tokens': { type: 'string', value: '<n>', description: 'length of each sample in tokens (bytes)', default: '160' },
      temperature: { type: 'string', value: '<t>', description: 'sampling temperature of the samples', default: '0.3' },
      quiet: { type: 'boolean', short: 'q', description: 'no progress bar' },
    },
    examples: ['ring-linear demo', 'ring-linear demo --steps 50 --out /tmp/demo', 'ring-linear demo --backend webgpu', 'ring-linear demo --json > demo.json'],
  },

  async run({ io, flags, json, invocation }) {
    const steps = flags.int('steps', { min: 1, fallback: DEMO_RECIPE.steps });
    const seed = flags.int('seed', { min: 0, fallback: DEMO_RECIPE.seed });
    const maxTokens = flags.int('max-tokens', { min: 1, max: 400, fallback: 160 });
    const temperature = flags.number('temperature', { min: 0, fallback: 0.3 });
    const backendName = backendOf(flags);
    const quiet = flags.bool('quiet');
    const say = (s: string) => {
      if (!json) io.stdout.write(`${s}\n`);
    };

    const backend = await useBackend(backendName);
    try {
      const out = await freshOutputDir(io, flags.string('out'), 'demo');
      const config = demoModelConfig();
      const counts = countParameters(config);
      const tokenizer = new ByteTokenizer();
      const stories = demoCorpus({ seed });
      const documents = tokenizeTexts(stories, tokenizer);
      const bytes = stories.reduce((a, s) => a + s.length, 0);
      say(`ring-linear demo: training a ${config.num_hidden_layers}-layer hybrid (${describeLayers(config)})`);
      say(`  ${formatParamCount(counts.total, { decimals: 0, unit: 'K' })} parameters (${formatParamCount(counts.active, { decimals: 0, unit: 'K' })} active per token), byte-level vocabulary of ${config.vocab_size}`);
      say(`  data: ${stories.length} synthetic stories (${Math.round(bytes / 1024)} KB), e.g. "${stories[0]!.slice(0, 72)}..."`);
      say(`  ${steps} steps of ${DEMO_RECIPE.rows} x ${DEMO_RECIPE.seqLen} tokens on ${backendName} (${backend.capabilities.device})`);
      say(`  output: ${showPath(io, out)}`);
      say('');

      manualSeed(seed);
      const model = new RingLinearForCausalLM(config);
      const run = await runTraining({
        model,
        documents,
        out,
        steps,
        seqLen: DEMO_RECIPE.seqLen,
        rows: DEMO_RECIPE.rows,
        peakLr: DEMO_RECIPE.peakLr,
        minLr: DEMO_RECIPE.minLr,
        warmupSteps: Math.min(DEMO_RECIPE.warmupSteps, Math.max(0, steps - 1)),
        weightDecay: DEMO_RECIPE.weightDecay,
        seed,
        evalDocuments: DEMO_RECIPE.evalStories,
        // Ten held-out evaluations draw the eval curve in the loss plot (each costs about one step).
        evalEvery: Math.max(1, Math.round(steps / 10)),
        saveEvery: steps,
        keepLast: 1,
        progress: quiet || json ? null : io.stderr,
        padId: BYTE_VOCAB.pad,
      });
      run.trainer.dispose();
      const drop = lossDrop(run.metrics)!;

      model.eval();
      const sampler = new Sampler(model, { tokenizer });
      const samples: { prompt: string; text: string }[] = [];
      say(`\nloss ${drop.first.toFixed(3)} -> ${drop.last.toFixed(3)} (mean of the first and last steps)${run.evalLoss !== null ? `, held-out loss ${run.evalLoss.toFixed(3)}` : ''}, ${run.seconds.toFixed(0)} s`);
      say(`loss curve  ${run.metrics[0]!.loss.toFixed(2)} ${sparkline(run.metrics.map((m) => m.loss))} ${run.metrics[run.metrics.length - 1]!.loss.toFixed(2)}`);
      say(`\nsamples (temperature ${temperature}, seed ${seed}):`);
      for (let i = 0; i < DEMO_PROMPTS.length; i++) {
        const prompt = DEMO_PROMPTS[i]!;
        if (!json) io.stdout.write(`\n  ${prompt}`);
        let text = '';
        for await (const ev of sampler.stream(prompt, { maxTokens, temperature, seed: seed + i, stop: '\n' })) {
          text += ev.text;
          if (!json) io.stdout.write(ev.text.replace(/\n/g, '\n  '));
        }
        samples.push({ prompt, text });
      }
      say('\n');
      model.dispose();

      const files = { checkpoint: run.checkpoint!, metrics: run.metricsFile, lossPlot: run.plotFile };
      say(`checkpoint  ${showPath(io, files.checkpoint)}   (a Hugging Face model folder: config.json + model.safetensors)`);
      say(`metrics     ${showPath(io, files.metrics)}`);
      say(`loss plot   ${showPath(io, files.lossPlot)}`);
      say(`\nnext: ${invocation} generate ${showPath(io, out)} --prompt "One day, Lena"`);
      say(`      ${invocation} chat ${showPath(io, out)}`);
      if (json) {
        printJson(io, {
          out,
          backend: backendName,
          device: backend.capabilities.device,
          model: { config: 'demo', layers: describeLayers(config), parameters: counts.total, activeParameters: counts.active },
          data: { stories: stories.length, bytes, trainRows: run.trainRows, trainTokens: run.trainTokens },
          steps,
          loss: { first: drop.first, last: drop.last, eval: run.evalLoss, perStep: run.metrics.map((m) => m.loss) },
          seconds: run.seconds,
          files,
          samples,
        });
      }
    } finally {
      await releaseBackend(backendName);
    }
  },
};
