/**
 * Documents: token sequences read from files or made from texts.
 *
 *   .jsonl / .ndjson   one JSON object a line: {"text": "..."} (tokenized here), or pre-tokenized
 *                      {"tokens": [..]} / {"input_ids": [..]}; blank lines are skipped
 *   anything else      plain text: the whole file is one document, or pieces between
 *                      `separator` occurrences are
 *
 * Each document is tokenized without special tokens, then gets an EOS appended (so the model
 * learns where documents end; default on) and optionally a BOS in front. A document may carry a
 * loss mask saying which of its tokens are prediction targets (for prompt/answer tasks).
 * Problems name the file and line: a file that is missing or empty, a line that is not JSON or has
 * no text, a token id outside the vocabulary.
 */
import type { TextTokenizer } from '@ring-linear/models';
import { DataError } from '../errors.js';
import { nodeModules } from '../node.js';

/** A tokenized document. lossMask[j] = 1 when token j is a target (predicted from j - 1); default all. */
export interface TokenizedDocument {
  readonly tokens: Int32Array;
  readonly lossMask?: Uint8Array;
}

/** The tokenizer surface the data pipeline needs (TextTokenizer from @ring-linear/models has it). */
export type DataTokenizer = Pick<TextTokenizer, 'encode' | 'vocabSize' | 'eosTokenId' | 'bosTokenId'>;

export interface ReadDocumentsOptions {
  /** Tokenizes text (required for text and {"text"} lines; pre-tokenized lines only need vocabSize). */
  readonly tokenizer?: DataTokenizer;
  /** Vocabulary size for checking pre-tokenized ids (default: the tokenizer's). */
  readonly vocabSize?: number;
  /** 'auto' (by extension, default), 'jsonl' or 'text'. */
  readonly format?: 'auto' | 'jsonl' | 'text';
  /** JSONL field holding the text (default 'text'). */
  readonly textField?: string;
  /** Plain text: split documents at this string (default: one document per file). */
  readonly separator?: string;
  /** Append the tokenizer's EOS to every document (default true). */
  readonly appendEos?: boolean;
  /** Prepend the tokenizer's BOS (default false). */
  readonly prependBos?: boolean;
}

interface Specials {
  readonly bos: number | null;
  readonly eos: number | null;
}

function specialsOf(options: { tokenizer?: DataTokenizer; appendEos?: boolean; prependBos?: boolean }, where: string): Specials {
  const t = options.tokenizer;
  const wantEos = options.appendEos ?? true;
  const wantBos = options.prependBos ?? false;
  const eos = wantEos ? (t?.eosTokenId ?? null) : null;
  const bos = wantBos ? (t?.bosTokenId ?? null) : null;
  if (wantEos && eos === null && t) throw new DataError(`${where}: appendEos needs a tokenizer with an EOS token (this one has none); pass appendEos: false`);
  if (wantBos && bos === null) throw new DataError(`${where}: prependBos needs a tokenizer with a BOS token`);
  return { bos, eos };
}

function withSpecials(ids: ArrayLike<number>, s: Specials): Int32Array {
  const n = ids.length + (s.bos !== null ? 1 : 0) + (s.eos !== null ? 1 : 0);
  const out = new Int32Array(n);
  let o = 0;
  if (s.bos !== null) out[o++] = s.bos;
  for (let i = 0; i < ids.length; i++) out[o++] = ids[i]!;
  if (s.eos !== null) out[o++] = s.eos;
  return out;
}

/**
 * Tokenizes in-memory texts into documents (empty texts are skipped). Throws a DataError when no
 * document remains.
 */
export function tokenizeTexts(texts: Iterable<string>, tokenizer: DataTokenizer, options: Omit<ReadDocumentsOptions, 'tokenizer' | 'format' | 'textField' | 'separator'> = {}): TokenizedDocument[] {
  const s = specialsOf({ ...options, tokenizer }, 'tokenizeTexts');
  const out: TokenizedDocument[] = [];
  let i = 0;
  for (const text of texts) {
    if (typeof text !== 'string') throw new DataError(`tokenizeTexts: text ${i} must be a string, got ${text === null ? 'null' : typeof text}`);
    i++;
    if (text.length === 0) continue;
    out.push({ tokens: withSpecials(tokenizer.encode(text, { addSpecialTokens: false }), s) });
  }
  if (out.length === 0) throw new DataError(`tokenizeTexts: no documents (${i} text${i === 1 ? '' : 's'}, all empty)`);
  return out;
}

function formatOf(file: string, format: ReadDocumentsOptions['format']): 'jsonl' | 'text' {
  if (format === 'jsonl' || format === 'text') return format;
  if (format !== undefined && format !== 'auto') throw new DataError(`readDocuments: format must be 'auto', 'jsonl' or 'text', got ${JSON.stringify(format)}`);
  return /\.(jsonl|ndjson)$/i.test(file) ? 'jsonl' : 'text';
}

function checkIds(ids: unknown, vocab: number | null, file: string, line: number, field: string): number[] {
  if (!Array.isArray(ids)) throw new DataError(`'${field}' must be an array of token ids, got ${typeof ids}`, file, line);
  if (ids.length === 0) throw new DataError(`'${field}' is empty`, file, line);
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || (vocab !== null && v >= vocab)) {
      throw new DataError(`'${field}'[${i}] must be an integer token id in [0, ${vocab ?? 'vocab'}), got ${JSON.stringify(v)}`, file, line);
    }
  }
  return ids as number[];
}

function snippet(s: string): string {
  return s.length > 60 ? `${s.slice(0, 60)}...` : s;
}

/** Parses one JSONL file's text into documents. Exported for in-memory use and tests. */
export function parseJsonl(text: string, file: string, options: ReadDocumentsOptions = {}): TokenizedDocument[] {
  const field = options.textField ?? 'text';
  const vocab = options.vocabSize ?? options.tokenizer?.vocabSize ?? null;
  const s = specialsOf(options, file);
  const out: TokenizedDocument[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim() === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (err) {
      throw new DataError(`not valid JSON (${(err as Error).message}): ${snippet(raw)}`, file, i + 1);
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      throw new DataError(`expected a JSON object like {"${field}": "..."}, got ${Array.isArray(obj) ? 'an array' : JSON.stringify(obj)}`, file, i + 1);
    }
    const rec = obj as Record<string, unknown>;
    if (field in rec) {
      const t = rec[field];
      if (typeof t !== 'string') throw new DataError(`'${field}' must be a string, got ${t === null ? 'null' : typeof t}`, file, i + 1);
      if (t.length === 0) continue;
      if (!options.tokenizer) throw new DataError(`'${field}' lines need a tokenizer (options.tokenizer)`, file, i + 1);
      out.push({ tokens: withSpecials(options.tokenizer.encode(t, { addSpecialTokens: false }), s) });
    } else if ('tokens' in rec || 'input_ids' in rec) {
      const key = 'tokens' in rec ? 'tokens' : 'input_ids';
      out.push({ tokens: withSpecials(checkIds(rec[key], vocab, file, i + 1, key), s) });
    } else {
      const keys = Object.keys(rec);
      throw new DataError(`no '${field}' field (nor 'tokens'/'input_ids'); the object has ${keys.length ? keys.map((k) => `'${k}'`).join(', ') : 'no fields'}`, file, i + 1);
    }
  }
  return out;
}

/** Splits one plain-text file into documents. */
export function parseText(text: string, file: string, options: ReadDocumentsOptions = {}): TokenizedDocument[] {
  if (!options.tokenizer) throw new DataError('plain-text files need a tokenizer (options.tokenizer)', file);
  const s = specialsOf(options, file);
  const pieces = options.separator !== undefined && options.separator !== '' ? text.split(options.separator) : [text];
  const out: TokenizedDocument[] = [];
  for (const p of pieces) {
    if (p.trim() === '') continue;
    out.push({ tokens: withSpecials(options.tokenizer.encode(p, { addSpecialTokens: false }), s) });
  }
  return out;
}

/**
 * Reads and tokenizes data files (Node.js). Every file must exist and hold at least one
 * document; problems throw a DataError naming the file (and line).
 */
export async function readDocuments(files: string | readonly string[], options: ReadDocumentsOptions = {}): Promise<TokenizedDocument[]> {
  const list = typeof files === 'string' ? [files] : [...files];
  if (list.length === 0) throw new DataError('readDocuments: no files given');
  const { fs } = await nodeModules();
  const out: TokenizedDocument[] = [];
  for (const file of list) {
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      throw new DataError(`cannot read: ${(err as Error).message}`, file);
    }
    if (text.trim() === '') throw new DataError('the file is empty (expected text or JSONL documents)', file);
    const docs = formatOf(file, options.format) === 'jsonl' ? parseJsonl(text, file, options) : parseText(text, file, options);
    if (docs.length === 0) throw new DataError('no documents in the file (every line/document is empty)', file);
    out.push(...docs);
  }
  return out;
}
