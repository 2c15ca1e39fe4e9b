/**
 * `ring-linear generate` (continue a prompt) and `ring-linear chat` (turns through the
 * tokenizer's chat template, or an interactive REPL), both streaming tokens as they come.
 */
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { ChatMessage, TextTokenizer } from '@ring-linear/models';
import { Sampler, type GenerateOptions, type GenerationResult } from '@ring-linear/sampler';
import type { FlagSpec } from '../args.js';
import { BACKEND_FLAG, SAMPLING_FLAGS, backendOf, printJson, samplingOptions, showPath, type Command, type CommandContext } from '../command.js';
import { releaseBackend, useBackend } from '../backends.js';
import { CliError, UsageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { loadModel, tokenizerFor, type LoadedModel } from '../model-io.js';

const MODEL_FLAGS: Readonly<Record<string, FlagSpec>> = {
  ...BACKEND_FLAG,
  dtype: { type: 'string', value: '<dtype>', description: 'parameter dtype of the loaded model: f32, bf16 or f16', default: 'f32' },
  tokenizer: { type: 'string', value: '<dir>', description: 'folder with tokenizer.json (default: the model folder, else byte level)' },
};

const MODEL_ARG = {
  name: 'model',
  description: 'a model folder (Hugging Face layout), a training run folder (its newest checkpoint), or a preset name (random weights, drawn from seed 0)',
} as const;

interface Loaded {
  readonly loaded: LoadedModel;
  readonly tokenizer: TextTokenizer;
  readonly sampler: Sampler;
}

async function open(ctx: CommandContext): Promise<Loaded> {
  const { flags, io, positionals } = ctx;
  const dtype = flags.oneOf('dtype', ['f32', 'bf16', 'f16'] as const, 'f32');
  const loaded = await loadModel(positionals[0]!, io.cwd, dtype);
  const tokenizerArg = flags.string('tokenizer');
  const tokenizer = await tokenizerFor(loaded, tokenizerArg !== undefined ? path.resolve(io.cwd, tokenizerArg) : undefined);
  loaded.model.eval();
  if (!ctx.json) {
    const where = loaded.folder ? showPath(io, loaded.folder) : `preset '${positionals[0]}' (random weights)`;
    io.stderr.write(`model: ${where}${loaded.fp8 ? ' (FP8 blockwise, dequantized)' : ''}\n`);
  }
  return { loaded, tokenizer, sampler: new Sampler(loaded.model, { tokenizer }) };
}

async function readAll(stdin: CliIo['stdin']): Promise<string> {
  let text = '';
  stdin.setEncoding?.('utf8');
  for await (const chunk of stdin) text += typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
  return text;
}

function statsLine(r: GenerationResult, ms: number): string {
  const n = r.tokens.length;
  return `[${n} token${n === 1 ? '' : 's'}, ${r.finishReason}, ${((n * 1000) / Math.max(1, ms)).toFixed(1)} tokens/s]\n`;
}

/** Streams one generation to stdout; returns the result. */
async function streamTo(io: CliIo, sampler: Sampler, prompt: string | number[], options: GenerateOptions, prefix: string): Promise<GenerationResult> {
  io.stdout.write(prefix);
  let text = '';
  const tokens: number[] = [];
  const logprobs: number[] = [];
  let finish: GenerationResult['finishReason'] = null;
  for await (const ev of sampler.stream(prompt, options)) {
    io.stdout.write(ev.text);
    text += ev.text;
    tokens.push(ev.token);
    logprobs.push(ev.logprob);
    if (ev.finishReason) finish = ev.finishReason;
  }
  io.stdout.write('\n');
  return { sequence: 0, promptTokens: [], tokens, text, logprobs, finishReason: finish, memory: null };
}

export const generateCommand: Command = {
  spec: {
    name: 'generate',
    summary: 'continue a prompt with a trained model, streaming the tokens',
    usage: ['generate <model> [prompt] [flags]', 'generate <model> --prompt <text> [--prompt <text> ...] [flags]', 'echo "prompt" | ring-linear generate <model>'],
    description: 'Loads the model (and its tokenizer.json, or the byte-level tokenizer for byte-level models) and continues each prompt. One prompt streams its tokens as they are generated; several are generated as one batch. With no prompt, stdin is read.',
    positionals: [MODEL_ARG, { name: 'prompt', description: 'the text to continue', optional: true }],
    flags: {
      prompt: { type: 'string', value: '<text>', multiple: true, description: 'a prompt (several: one batch)' },
      ...SAMPLING_FLAGS,
      'max-tokens': { ...SAMPLING_FLAGS['max-tokens']!, default: '128' },
      'no-echo': { type: 'boolean', description: 'print only the generated text, not the prompt before it' },
      ...MODEL_FLAGS,
    },
    examples: [
      'ring-linear generate runs/demo-20261127-120000 "One day, Mia"',
      'ring-linear generate ./Ring-mini-linear-2.0 --prompt "The capital of France is" --temperature 0 --max-tokens 20',
      'ring-linear generate runs/demo --prompt "Then, Tom" --prompt "One day, Ava" --seed 7 --json',
    ],
  },

  async run(ctx) {
    const { io, flags, positionals, json } = ctx;
    const options = samplingOptions(flags, { maxTokens: 128 });
    let prompts = [...(positionals[1] !== undefined ? [positionals[1]] : []), ...flags.strings('prompt')];
    if (prompts.length === 0) {
      if (io.stdin.isTTY) throw new UsageError(`ring-linear generate: no prompt; give one as an argument, with --prompt, or on stdin`, 'generate');
      const text = (await readAll(io.stdin)).replace(/\n$/, '');
      if (text.length === 0) throw new UsageError(`ring-linear generate: the prompt read from stdin is empty`, 'generate');
      prompts = [text];
    }
    if (prompts.some((p) => p.length === 0)) throw new UsageError('ring-linear generate: a prompt is empty (generation needs text to continue)', 'generate');
    const backendName = backendOf(flags);
    await useBackend(backendName);
    try {
      const { loaded, sampler } = await open(ctx);
      const t0 = Date.now();
      let results: GenerationResult[];
      if (json || prompts.length > 1) {
        results = await sampler.generateBatch(prompts, options);
        if (!json) {
          results.forEach((r, i) => {
            io.stdout.write(`${flags.bool('no-echo') ? '' : prompts[i]}${r.text}\n`);
            io.stderr.write(statsLine(r, Date.now() - t0));
          });
        }
      } else {
        const r = await streamTo(io, sampler, prompts[0]!, options, flags.bool('no-echo') ? '' : prompts[0]!);
        io.stderr.write(statsLine(r, Date.now() - t0));
        results = [r];
      }
      if (json) {
        printJson(io, {
          model: loaded.folder ?? positionals[0],
          backend: backendName,
          results: results.map((r, i) => ({ prompt: prompts[i], text: r.text, tokens: r.tokens, finishReason: r.finishReason, logprobs: r.logprobs })),
          seconds: (Date.now() - t0) / 1000,
        });
      }
      loaded.model.dispose();
    } finally {
      await releaseBackend(backendName);
    }
  },
};

export const chatCommand: Command = {
  spec: {
    name: 'chat',
    summary: "chat with a model through its chat template (interactive, or --prompt turns)",
    usage: ['chat <model> [flags]', 'chat <model> --prompt <text> [--prompt <text> ...] [flags]'],
    description:
      "Renders the conversation with the tokenizer's chat template (tokenizer_config.json's chat_template; byte-level models use a " +
      'simple built-in template) and streams the answers. Without --prompt it reads one user turn per line from stdin: ' +
      '/reset starts over, /exit (or end of input) quits.',
    positionals: [MODEL_ARG],
    flags: {
      prompt: { type: 'string', value: '<text>', multiple: true, description: 'a user turn (non-interactive; several: a conversation)' },
      system: { type: 'string', value: '<text>', description: 'a system message first' },
      ...SAMPLING_FLAGS,
      'max-tokens': { ...SAMPLING_FLAGS['max-tokens']!, default: '256' },
      ...MODEL_FLAGS,
    },
    examples: ['ring-linear chat ./Ring-mini-linear-2.0', 'ring-linear chat runs/demo --prompt "Tell me a story" --temperature 0.6', 'ring-linear chat ./model --system "Answer briefly." --prompt "Hi" --json'],
  },

  async run(ctx) {
    const { io, flags, json } = ctx;
    const options = samplingOptions(flags, { maxTokens: 256 });
    const turns = flags.strings('prompt');
    const system = flags.string('system');
    if (json && turns.length === 0) throw new UsageError('ring-linear chat: --json needs the turns as --prompt (the interactive chat is text only)', 'chat');
    const backendName = backendOf(flags);
    await useBackend(backendName);
    try {
      const { loaded, tokenizer, sampler } = await open(ctx);
      if (!tokenizer.chatTemplate) throw new CliError('the tokenizer has no chat template (tokenizer_config.json has no chat_template); use `ring-linear generate` for plain continuation');
      const history: ChatMessage[] = system !== undefined ? [{ role: 'system', content: system }] : [];
      const answers: { user: string; assistant: string; tokens: number; finishReason: string | null }[] = [];
      const turn = async (user: string): Promise<void> => {
        history.push({ role: 'user', content: user });
        const ids = tokenizer.encodeChat(history, { addGenerationPrompt: true });
        const t0 = Date.now();
        let r: GenerationResult;
        if (json) r = await sampler.generate(ids, options);
        else r = await streamTo(io, sampler, ids, options, turns.length ? `assistant: ` : '');
        if (!json) io.stderr.write(statsLine(r, Date.now() - t0));
        history.push({ role: 'assistant', content: r.text });
        answers.push({ user, assistant: r.text, tokens: r.tokens.length, finishReason: r.finishReason });
      };
      if (turns.length) {
        for (const u of turns) {
          if (!json) io.stdout.write(`user: ${u}\n`);
          await turn(u);
        }
      } else {
        const interactive = Boolean(io.stdin.isTTY);
        if (interactive) io.stderr.write('chat: one message per line; /reset starts over, /exit quits\n');
        const rl = createInterface({ input: io.stdin, terminal: false, crlfDelay: Infinity });
        const ask = () => {
          if (interactive) io.stdout.write('> ');
        };
        ask();
        for await (const line of rl) {
          const text = line.trim();
          if (text === '/exit' || text === '/quit') break;
          if (text === '/reset') {
            history.splice(system !== undefined ? 1 : 0);
            io.stderr.write('(conversation cleared)\n');
          } else if (text.length > 0) {
            try {
              await turn(text);
            } catch (err) {
              // A conversation longer than the model's context: say so and keep the REPL alive.
              history.pop();
              io.stderr.write(`error: ${(err as Error).message}\n(/reset starts a new conversation)\n`);
            }
          }
          ask();
        }
        rl.close();
      }
      if (json) printJson(io, { model: loaded.folder ?? ctx.positionals[0], backend: backendName, system: system ?? null, turns: answers });
      loaded.model.dispose();
    } finally {
      await releaseBackend(backendName);
    }
  },
};
