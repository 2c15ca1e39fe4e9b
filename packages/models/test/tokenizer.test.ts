import { describe, expect, it } from 'vitest';
import {
  BYTE_VOCAB,
  ByteTokenizer,
  ChatTemplate,
  HFTokenizer,
  TokenizerError,
  loadTokenizer,
  memoryFolder,
} from '../src/index.js';
import { rng, seedFromEnv } from './helpers.js';

const SEED = seedFromEnv(99);
console.log(`tokenizer tests: seed ${SEED}`);

/** A random valid Unicode string: ASCII, Latin, CJK, emoji (astral), combining marks, controls. */
function randomText(r: () => number, n: number): string {
  const ranges: [number, number][] = [[0x00, 0x7f], [0xa0, 0x2ff], [0x300, 0x36f], [0x4e00, 0x9fff], [0x1f300, 0x1faff], [0xe000, 0xf8ff], [0x10000, 0x10ffff]];
  let s = '';
  for (let i = 0; i < n; i++) {
    const [lo, hi] = ranges[Math.floor(r() * ranges.length)]!;
    s += String.fromCodePoint(lo + Math.floor(r() * (hi - lo + 1)));
  }
  return s;
}

describe('ByteTokenizer', () => {
  const tok = new ByteTokenizer();

  it('round-trips any valid Unicode string through its UTF-8 bytes', () => {
    const r = rng(SEED);
    for (let i = 0; i < 200; i++) {
      const text = randomText(r, Math.floor(r() * 40));
      const ids = tok.encode(text, {});
      expect(ids).toEqual(Array.from(new TextEncoder().encode(text)));
      expect(ids.every((id) => id >= 0 && id < 256)).toBe(true);
      expect(tok.decode(ids)).toBe(text);
    }
    expect(tok.encode('')).toEqual([]);
    expect(tok.encode('é😀')).toEqual([0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80]);
  });

  it('specials: BOS 256, EOS 257, PAD 258; recognized in text unless turned off; skipped on request', () => {
    expect([tok.bosTokenId, tok.eosTokenId, tok.padTokenId, tok.vocabSize]).toEqual([256, 257, 258, 259]);
    expect(BYTE_VOCAB).toEqual({ bos: 256, eos: 257, pad: 258, size: 259 });
    expect(tok.encode('hi', { addSpecialTokens: true })).toEqual([256, 104, 105]);
    expect(tok.encode('a<|eos|>b<|pad|>')).toEqual([97, 257, 98, 258]);
    expect(tok.decode([256, 97, 257, 98, 258])).toBe('<|bos|>a<|eos|>b<|pad|>');
    expect(tok.decode([256, 97, 257, 98, 258], { skipSpecialTokens: true })).toBe('ab');
    const raw = new ByteTokenizer({ parseSpecialTokens: false });
    expect(raw.encode('<|eos|>')).toEqual(Array.from(new TextEncoder().encode('<|eos|>')));
    expect(() => tok.decode([259])).toThrow(/id 259 is outside the vocabulary \[0, 259\)/);
    expect(() => tok.decode([-1])).toThrow(TokenizerError);
    // A byte sequence cut inside a character decodes with the replacement character, never throws.
    expect(tok.decode([0xf0, 0x9f])).toBe('\ufffd');
  });

  it('renders its chat template and encodes the chat with specials as single ids', () => {
    const messages = [
      { role: 'user', content: 'Hi!' },
      { role: 'assistant', content: 'Hello.' },
      { role: 'user', content: 'Bye' },
    ];
    const text = tok.applyChatTemplate(messages);
    expect(text).toBe('<|bos|>user\nHi!<|eos|><|bos|>assistant\nHello.<|eos|><|bos|>user\nBye<|eos|><|bos|>assistant\n');
    const ids = tok.encodeChat(messages, { addGenerationPrompt: false });
    expect(ids.filter((id) => id === 256)).toHaveLength(3);
    expect(ids.at(-1)).toBe(257);
    expect(tok.decode(ids)).toBe(text.slice(0, -'<|bos|>assistant\n'.length));
  });
});

/** GPT-2's byte -> printable character map (the ByteLevel pre-tokenizer's alphabet). */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const out: string[] = new Array(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i]!)));
  return out;
}

/** A small byte-level BPE tokenizer.json (the format of the Ring models' tokenizer). */
function tokenizerJson(): object {
  const chars = bytesToUnicode();
  const vocab: Record<string, number> = {};
  chars.forEach((c, b) => (vocab[c] = b));
  const merges = ['h e', 'l l', 'he ll', 'hell o', 'Ġ w', 'o r', 'Ġw or', 'Ġwor l', 'Ġworl d'];
  merges.forEach((m, i) => (vocab[m.replace(' ', '')] = 256 + i));
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(265, '<|startoftext|>'), special(266, '<|endoftext|>'), special(267, '<|role_end|>')],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|startoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<|startoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|startoftext|>': { id: '<|startoftext|>', ids: [265], tokens: ['<|startoftext|>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

/** A chat template in the style of the Ling / Ring models' (system turn, roles, generation prompt). */
const CHAT_TEMPLATE =
  "{{- '<role>SYSTEM</role>' }}{%- if messages[0].role == 'system' %}{{- messages[0].content }}{%- endif %}{{- '<|role_end|>' }}" +
  "{%- for message in messages %}{%- if message.role == 'user' %}{{- '<role>HUMAN</role>' + message.content + '<|role_end|>' }}" +
  "{%- elif message.role == 'assistant' %}{{- '<role>ASSISTANT</role>' + message.content + eos_token }}{%- endif %}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<role>ASSISTANT</role>' }}{%- endif %}";

const TOKENIZER_CONFIG = {
  bos_token: '<|startoftext|>',
  eos_token: '<|role_end|>',
  pad_token: '<|endoftext|>',
  chat_template: CHAT_TEMPLATE,
};

describe('HFTokenizer (tokenizer.json through @huggingface/tokenizers)', () => {
  const tok = new HFTokenizer(tokenizerJson(), TOKENIZER_CONFIG);

  it('encodes and decodes a byte-level BPE vocabulary to the expected ids', () => {
    expect(tok.encode('hello world', { addSpecialTokens: false })).toEqual([259, 264]);
    expect(tok.encode('hello world')).toEqual([265, 259, 264]);
    expect(tok.tokenize('hello world')).toEqual(['hello', 'Ġworld']);
    // Bytes without merges stay single bytes; added special tokens are single ids.
    expect(tok.encode('hello<|role_end|> world!', { addSpecialTokens: false })).toEqual([259, 267, 264, 33]);
    expect(tok.encode('hey', { addSpecialTokens: false })).toEqual([256, 121]);
    expect(tok.decode([259, 267, 264, 33])).toBe('hello<|role_end|> world!');
    expect(tok.decode([265, 259, 267, 264, 33], { skipSpecialTokens: true })).toBe('hello world!');
    expect([tok.bosTokenId, tok.eosTokenId, tok.padTokenId, tok.vocabSize]).toEqual([265, 267, 266, 268]);
    expect(tok.tokenToId('Ġworld')).toBe(264);
    expect(tok.idToToken(258)).toBe('hell');
  });

  it('any text round-trips through the byte-level alphabet', () => {
    const r = rng(SEED + 1);
    for (let i = 0; i < 50; i++) {
      const text = randomText(r, Math.floor(r() * 30));
      expect(tok.decode(tok.encode(text, { addSpecialTokens: false }))).toBe(text);
    }
  });

  it('renders the chat template from tokenizer_config.json, with the special-token variables', () => {
    const text = tok.applyChatTemplate([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: 'world' },
      { role: 'user', content: 'again' },
    ]);
    expect(text).toBe(
      '<role>SYSTEM</role>Be brief.<|role_end|><role>HUMAN</role>hello<|role_end|><role>ASSISTANT</role>world<|role_end|>' +
        '<role>HUMAN</role>again<|role_end|><role>ASSISTANT</role>',
    );
    const ids = tok.encodeChat([{ role: 'user', content: 'hello' }], { addGenerationPrompt: false });
    expect(ids[0]).not.toBe(265); // the template writes the specials; encodeChat adds none
    expect(ids.filter((i) => i === 267)).toHaveLength(2);
    expect(tok.decode(ids)).toBe('<role>SYSTEM</role><|role_end|><role>HUMAN</role>hello<|role_end|>');
  });

  it('loads from a model folder; bad files and templates give TokenizerError', async () => {
    const folder = memoryFolder({ 'tokenizer.json': JSON.stringify(tokenizerJson()), 'tokenizer_config.json': JSON.stringify(TOKENIZER_CONFIG) });
    const loaded = await loadTokenizer(folder);
    expect(loaded.encode('hello world')).toEqual([265, 259, 264]);
    await expect(loadTokenizer(memoryFolder({}))).rejects.toThrow(/no tokenizer\.json/);
    expect(() => HFTokenizer.fromJSON('{"model": ')).toThrow(/tokenizer\.json: not valid JSON/);
    expect(() => new HFTokenizer({ vocab: {} })).toThrow(/expected an object with a "model"/);
    const none = new HFTokenizer(tokenizerJson(), {});
    expect(() => none.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(/no chat template/);
    expect(() => new ChatTemplate('{% for %}')).toThrow(/chat template does not parse/);
    expect(() => new ChatTemplate("{{ raise_exception('nope') }}").render([])).toThrow(TokenizerError);
    expect(() => tok.applyChatTemplate([{ role: 'user' } as never])).toThrow(/messages must be an array of \{ role: string, content: string \}/);
  });

  it('a named-template list picks the default one', () => {
    const t = new HFTokenizer(tokenizerJson(), { chat_template: [{ name: 'tool_use', template: 'TOOLS' }, { name: 'default', template: 'DEFAULT {{ messages|length }}' }] });
    expect(t.applyChatTemplate([{ role: 'user', content: 'a' }])).toBe('DEFAULT 1');
  });
});
