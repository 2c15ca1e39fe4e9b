/**
 * Tokenizers with one interface (TextTokenizer):
 *
 *   HFTokenizer     a Hugging Face `tokenizer.json` (through @huggingface/tokenizers) with its
 *                   `tokenizer_config.json` (special tokens, chat template)
 *   ByteTokenizer   the byte-level vocabulary of the small presets: ids 0..255 are the UTF-8
 *                   bytes, then BOS, EOS, PAD (256, 257, 258); any string round-trips
 *
 * Chat templates (Jinja, from tokenizer_config.json's `chat_template`) render through
 * @huggingface/jinja, with the variables transformers passes: messages, add_generation_prompt,
 * bos_token, eos_token, pad_token, tools and any extra ones.
 */
import { Template } from '@huggingface/jinja';
import { Tokenizer as HFTokenizerImpl } from '@huggingface/tokenizers';
import { TokenizerError } from './errors.js';
import { toFolder, type CheckpointFolder } from './io.js';
import { BYTE_VOCAB } from './presets.js';

export interface ChatMessage {
  readonly role: string;
  readonly content: string;
  readonly [key: string]: unknown;
}

export interface EncodeOptions {
  /**
   * Add the tokenizer's special tokens around the text (HFTokenizer: its post-processor, default
   * true as in transformers; ByteTokenizer: a leading BOS, default false).
   */
  readonly addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS/EOS/PAD, added special tokens) from the text (default false). */
  readonly skipSpecialTokens?: boolean;
}

export interface ChatTemplateOptions {
  /** End with the assistant turn's opening so the model continues as the assistant (default true). */
  readonly addGenerationPrompt?: boolean;
  readonly tools?: readonly unknown[];
  /** More template variables (e.g. enable_thinking). */
  readonly variables?: Readonly<Record<string, unknown>>;
}

export interface TextTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  /** The Jinja chat template, or null when the tokenizer has none. */
  readonly chatTemplate: ChatTemplate | null;
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[] | Int32Array, options?: DecodeOptions): string;
  /** The chat rendered as text through the chat template (TokenizerError when there is none). */
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string;
  /** The rendered chat encoded (the template writes the special tokens itself: none are added). */
  encodeChat(messages: readonly ChatMessage[], options?: ChatTemplateOptions): number[];
}

/** A compiled Jinja chat template. */
export class ChatTemplate {
  readonly source: string;
  readonly #template: Template;
  readonly #specials: Readonly<Record<string, string | null>>;

  constructor(source: string, specialTokens: Readonly<Record<string, string | null>> = {}) {
    if (typeof source !== 'string' || source.length === 0) throw new TokenizerError(`chat template: expected a non-empty Jinja template string, got ${JSON.stringify(source)}`);
    this.source = source;
    try {
      this.#template = new Template(source);
    } catch (err) {
      throw new TokenizerError(`chat template does not parse: ${(err as Error).message}`);
    }
    this.#specials = specialTokens;
  }

  render(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (!Array.isArray(messages) || !messages.every((m) => m && typeof m.role === 'string' && typeof m.content === 'string')) {
      throw new TokenizerError('chat template: messages must be an array of { role: string, content: string }');
    }
    try {
      return this.#template.render({
        ...this.#specials,
        ...(options.variables ?? {}),
        messages,
        add_generation_prompt: options.addGenerationPrompt ?? true,
        ...(options.tools ? { tools: options.tools } : {}),
      });
    } catch (err) {
      throw new TokenizerError(`chat template failed to render: ${(err as Error).message}`);
    }
  }
}

function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

/** The chat template of a tokenizer_config.json: a string, or the 'default' of a named list. */
function chatTemplateSource(config: Record<string, unknown>): string | null {
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t as { name?: unknown; template?: unknown }[];
    const pick = named.find((x) => x?.name === 'default') ?? named[0];
    return typeof pick?.template === 'string' ? pick.template : null;
  }
  return null;
}

/** A Hugging Face tokenizer.json with its tokenizer_config.json. */
export class HFTokenizer implements TextTokenizer {
  readonly #impl: HFTokenizerImpl;
  readonly config: Readonly<Record<string, unknown>>;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly chatTemplate: ChatTemplate | null;
  readonly #vocabSize: number;
  readonly #specialTokens: Record<string, string | null>;

  constructor(tokenizerJson: unknown, tokenizerConfig: Readonly<Record<string, unknown>> = {}) {
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || !('model' in tokenizerJson)) {
      throw new TokenizerError('tokenizer.json: expected an object with a "model" (the Hugging Face tokenizers format)');
    }
    const json = { added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...(tokenizerJson as object) };
    try {
      this.#impl = new HFTokenizerImpl(json, { ...tokenizerConfig });
    } catch (err) {
      throw new TokenizerError(`tokenizer.json cannot be loaded: ${(err as Error).message}`);
    }
    this.config = tokenizerConfig;
    const id = (key: string): number | null => {
      const s = tokenString(tokenizerConfig[key]);
      return s === null ? null : (this.#impl.token_to_id(s) ?? null);
    };
    this.bosTokenId = id('bos_token');
    this.eosTokenId = id('eos_token');
    this.padTokenId = id('pad_token');
    this.#specialTokens = {
      bos_token: tokenString(tokenizerConfig.bos_token),
      eos_token: tokenString(tokenizerConfig.eos_token),
      pad_token: tokenString(tokenizerConfig.pad_token),
      unk_token: tokenString(tokenizerConfig.unk_token),
    };
    let max = -1;
    for (const v of this.#impl.get_vocab(true).values()) if (v > max) max = v;
    this.#vocabSize = max + 1;
    const src = chatTemplateSource(tokenizerConfig);
    this.chatTemplate = src ? new ChatTemplate(src, this.#specialTokens) : null;
  }

  /** From the JSON texts (or parsed objects) of tokenizer.json and tokenizer_config.json. */
  static fromJSON(tokenizerJson: string | object, tokenizerConfig: string | Record<string, unknown> = {}): HFTokenizer {
    const parse = (what: string, v: string | object): Record<string, unknown> => {
      if (typeof v !== 'string') return v as Record<string, unknown>;
      try {
        return JSON.parse(v) as Record<string, unknown>;
      } catch (err) {
        throw new TokenizerError(`${what}: not valid JSON (${(err as Error).message})`);
      }
    };
    return new HFTokenizer(parse('tokenizer.json', tokenizerJson), parse('tokenizer_config.json', tokenizerConfig));
  }

  /** Number of ids (largest id + 1, added tokens included). */
  get vocabSize(): number {
    return this.#vocabSize;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.#impl.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[] | Int32Array, options: DecodeOptions = {}): string {
    return this.#impl.decode(Array.from(ids), { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /** The token strings of a text (for inspection). */
  tokenize(text: string): string[] {
    return this.#impl.tokenize(text);
  }

  tokenToId(token: string): number | null {
    return this.#impl.token_to_id(token) ?? null;
  }

  idToToken(id: number): string | null {
    return this.#impl.id_to_token(id) ?? null;
  }

  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (!this.chatTemplate) throw new TokenizerError('this tokenizer has no chat template (tokenizer_config.json has no chat_template)');
    return this.chatTemplate.render(messages, options);
  }

  encodeChat(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
  }
}

export interface ByteTokenizerOptions {
  /** A Jinja chat template; its special-token variables are '<|bos|>', '<|eos|>', '<|pad|>'. */
  readonly chatTemplate?: string;
  /**
   * Recognize the special-token strings '<|bos|>', '<|eos|>', '<|pad|>' in text given to encode
   * (default true, as Hugging Face tokenizers do with added tokens; false encodes them as bytes).
   */
  readonly parseSpecialTokens?: boolean;
}

/** A simple default chat template for the byte-level presets. */
export const BYTE_CHAT_TEMPLATE =
  "{% for message in messages %}{{ bos_token }}{{ message['role'] }}\n{{ message['content'] }}{{ eos_token }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ bos_token }}assistant\n{% endif %}";

const BYTE_SPECIALS: readonly [string, number][] = [
  ['<|bos|>', BYTE_VOCAB.bos],
  ['<|eos|>', BYTE_VOCAB.eos],
  ['<|pad|>', BYTE_VOCAB.pad],
];

/** Byte-level tokenizer: UTF-8 bytes are ids 0..255; BOS 256, EOS 257, PAD 258 (vocab 259). */
export class ByteTokenizer implements TextTokenizer {
  readonly vocabSize = BYTE_VOCAB.size;
  readonly bosTokenId = BYTE_VOCAB.bos;
  readonly eosTokenId = BYTE_VOCAB.eos;
  readonly padTokenId = BYTE_VOCAB.pad;
  readonly chatTemplate: ChatTemplate;
  readonly parseSpecialTokens: boolean;
  static readonly #encoder = new TextEncoder();

  constructor(options: ByteTokenizerOptions = {}) {
    this.parseSpecialTokens = options.parseSpecialTokens ?? true;
    this.chatTemplate = new ChatTemplate(options.chatTemplate ?? BYTE_CHAT_TEMPLATE, { bos_token: '<|bos|>', eos_token: '<|eos|>', pad_token: '<|pad|>' });
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TokenizerError(`ByteTokenizer.encode: expected a string, got ${typeof text}`);
    const out: number[] = options.addSpecialTokens ? [BYTE_VOCAB.bos] : [];
    const pushBytes = (s: string) => {
      for (const b of ByteTokenizer.#encoder.encode(s)) out.push(b);
    };
    if (!this.parseSpecialTokens) {
      pushBytes(text);
      return out;
    }
    let i = 0;
    while (i < text.length) {
      let next = -1;
      let which: [string, number] | null = null;
      for (const s of BYTE_SPECIALS) {
        const at = text.indexOf(s[0], i);
        if (at >= 0 && (next < 0 || at < next)) {
          next = at;
          which = s;
        }
      }
      if (!which) {
        pushBytes(text.slice(i));
        break;
      }
      pushBytes(text.slice(i, next));
      out.push(which[1]);
      i = next + which[0].length;
    }
    return out;
  }

  decode(ids: readonly number[] | Int32Array, options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? false;
    let text = '';
    let run: number[] = [];
    const flush = () => {
      if (run.length) text += new TextDecoder('utf-8').decode(Uint8Array.from(run));
      run = [];
    };
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= BYTE_VOCAB.size) {
        throw new TokenizerError(`ByteTokenizer.decode: id ${id} is outside the vocabulary [0, ${BYTE_VOCAB.size})`);
      }
      if (id < 256) {
        run.push(id);
        continue;
      }
      flush();
      if (!skip) text += BYTE_SPECIALS.find(([, v]) => v === id)![0];
    }
    flush();
    return text;
  }

  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    return this.chatTemplate.render(messages, options);
  }

  encodeChat(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options));
  }
}

/**
 * The tokenizer of a model folder: tokenizer.json (+ tokenizer_config.json when present), read
 * from a path (Node.js) or a CheckpointFolder (memoryFolder / urlFolder in browsers).
 */
export async function loadTokenizer(folderOrPath: string | CheckpointFolder): Promise<HFTokenizer> {
  const folder = await toFolder(folderOrPath);
  if (!(await folder.exists('tokenizer.json'))) throw new TokenizerError(`${folder.name}: no tokenizer.json in the folder`);
  const json = await folder.readText('tokenizer.json');
  const config = (await folder.exists('tokenizer_config.json')) ? await folder.readText('tokenizer_config.json') : '{}';
  return HFTokenizer.fromJSON(json, config);
}
