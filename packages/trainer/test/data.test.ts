/**
 * Data pipeline: reading text and JSONL files (and their errors, with file and line), packing
 * against a naive reference built position by position, the held-out split, the seeded epoch
 * order, and resuming the batch stream from a saved position.
 */
import '@ring-linear/backend-cpu';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ByteTokenizer } from '@ring-linear/models';
import {
  DataError,
  IGNORE_INDEX,
  PackedDataset,
  TrainerConfigError,
  epochPermutation,
  packDocuments,
  readDocuments,
  splitDocuments,
  taskDocuments,
  taskExamples,
  tokenizeTexts,
  type TokenizedDocument,
} from '../src/index.js';
import { SEED, makeRng, tempDir } from './helpers.js';

const tok = new ByteTokenizer();
const EOS = tok.eosTokenId;
const rng = makeRng(SEED ^ 0xda7a);
const bytes = (s: string) => [...new TextEncoder().encode(s)];

describe('reading documents', () => {
  it('reads JSONL ({"text"} and pre-tokenized lines) and plain text with a separator, appending EOS', async () => {
    const dir = await tempDir();
    const jsonl = join(dir, 'a.jsonl');
    await writeFile(jsonl, `{"text": "héllo"}\n\n{"tokens": [1, 2, 3]}\r\n{"input_ids": [7]}\n{"text": ""}\n`);
    const txt = join(dir, 'b.txt');
    await writeFile(txt, 'first doc\n===\nsecond\n===\n   \n');
    const docs = await readDocuments([jsonl, txt], { tokenizer: tok, separator: '===' });
    expect(docs.map((d) => Array.from(d.tokens))).toEqual([
      [...bytes('héllo'), EOS],
      [1, 2, 3, EOS],
      [7, EOS],
      [...bytes('first doc\n'), EOS],
      [...bytes('\nsecond\n'), EOS],
    ]);
    const noEos = await readDocuments(txt, { tokenizer: tok, appendEos: false, prependBos: true });
    expect(Array.from(noEos[0]!.tokens)).toEqual([tok.bosTokenId, ...bytes('first doc\n===\nsecond\n===\n   \n')]);
  });

  it('names the file and line of every problem', async () => {
    const dir = await tempDir();
    const write = async (name: string, text: string) => {
      const p = join(dir, name);
      await writeFile(p, text);
      return p;
    };
    const cases: [string, string, RegExp][] = [
      ['empty.jsonl', '', /empty\.jsonl: the file is empty/],
      ['blank.txt', '  \n\n', /blank\.txt: the file is empty/],
      ['bad.jsonl', '{"text": "ok"}\n{"text": "x"\n', /bad\.jsonl:2: not valid JSON/],
      ['nofield.jsonl', '{"body": "x", "id": 1}\n', /nofield\.jsonl:1: no 'text' field \(nor 'tokens'\/'input_ids'\); the object has 'body', 'id'/],
      ['type.jsonl', '{"text": 5}\n', /type\.jsonl:1: 'text' must be a string, got number/],
      ['array.jsonl', '[1, 2]\n', /array\.jsonl:1: expected a JSON object/],
      ['vocab.jsonl', '{"tokens": [1, 300]}\n', /vocab\.jsonl:1: 'tokens'\[1\] must be an integer token id in \[0, 259\), got 300/],
      ['onlyempty.jsonl', '{"text": ""}\n', /onlyempty\.jsonl: no documents in the file/],
    ];
    for (const [name, text, re] of cases) {
      const p = await write(name, text);
      const err = await readDocuments(p, { tokenizer: tok }).catch((e) => e);
      expect(err, name).toBeInstanceOf(DataError);
      expect((err as Error).message, name).toMatch(re);
    }
    const missing = await readDocuments(join(dir, 'nope.jsonl'), { tokenizer: tok }).catch((e) => e);
    expect(missing).toBeInstanceOf(DataError);
    expect((missing as Error).message).toMatch(/nope\.jsonl: cannot read/);
    expect((await readDocuments(join(dir, 'x.txt')).catch((e) => e)) as Error).toBeInstanceOf(DataError);
    expect(() => tokenizeTexts(['', ''], tok)).toThrow(/no documents \(2 texts, all empty\)/);
  });
});

/** Naive packing: stream + document id per token, targets from the next stream token of the same document. */
function naivePack(docs: TokenizedDocument[], T: number) {
  const stream: number[] = [];
  const docOf: number[] = [];
  const posInDoc: number[] = [];
  docs.forEach((d, k) => d.tokens.forEach((t, j) => (stream.push(t), docOf.push(k), posInDoc.push(j))));
  const rows = Math.ceil(stream.length / T);
  const inputs: number[] = [];
  const targets: number[] = [];
  const segs: number[][] = [];
  for (let r = 0; r < rows; r++) {
    const cu = [0];
    for (let i = 0; i < T; i++) {
      const at = r * T + i;
      if (at >= stream.length) {
        if (i > 0 && cu[cu.length - 1] !== i && at === stream.length) cu.push(i);
        inputs.push(0);
        targets.push(IGNORE_INDEX);
        continue;
      }
      if (i > 0 && docOf[at] !== docOf[at - 1]) cu.push(i);
      inputs.push(stream[at]!);
      const next = at + 1;
      const same = next < stream.length && docOf[next] === docOf[at];
      const d = docs[docOf[at]!]!;
      const kept = same && (!d.lossMask || d.lossMask[posInDoc[next]!] === 1);
      targets.push(kept ? stream[next]! : IGNORE_INDEX);
    }
    cu.push(T);
    segs.push(cu);
  }
  return { inputs, targets, segs };
}

describe('packing', () => {
  it('matches the naive reference: boundaries as offsets, targets within documents, masks, padding', () => {
    for (const T of [1, 5, 16, 33]) {
      const docs: TokenizedDocument[] = Array.from({ length: 9 }, (_, k) => {
        const n = 1 + rng.int(0, 20);
        const tokens = Int32Array.from({ length: n }, () => rng.int(0, 256));
        return k % 3 === 0 ? { tokens, lossMask: Uint8Array.from({ length: n }, () => (rng.next() < 0.6 ? 1 : 0)) } : { tokens };
      });
      const packed = packDocuments(docs, { seqLen: T });
      const ref = naivePack(docs, T);
      expect(Array.from(packed.inputs), `T=${T}`).toEqual(ref.inputs);
      expect(Array.from(packed.targets), `T=${T}`).toEqual(ref.targets);
      expect(packed.segments.map((s) => Array.from(s)), `T=${T}`).toEqual(ref.segs);
      expect(packed.countedTokens).toBe(ref.targets.filter((t) => t !== IGNORE_INDEX).length);
      expect(packed.numRows).toBe(Math.ceil(docs.reduce((a, d) => a + d.tokens.length, 0) / T));
    }
  });

  it('a document cut by a row end keeps its target across the cut; dropRemainder drops the partial row', () => {
    const docs = [Int32Array.of(10, 11, 12, 13, 14), Int32Array.of(20, 21)];
    const p = packDocuments(docs, { seqLen: 3 });
    expect(Array.from(p.inputs)).toEqual([10, 11, 12, 13, 14, 20, 21, 0, 0]);
    expect(Array.from(p.targets)).toEqual([11, 12, 13, 14, IGNORE_INDEX, 21, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]);
    expect(p.segments.map((s) => Array.from(s))).toEqual([[0, 3], [0, 2, 3], [0, 1, 3]]);
    const d = packDocuments(docs, { seqLen: 3, dropRemainder: true, padId: 258 });
    expect(d.numRows).toBe(2);
    expect(d.countedTokens).toBe(5);
    expect(() => packDocuments([Int32Array.of(1)], { seqLen: 4, dropRemainder: true })).toThrow(/do not fill one row/);
    expect(() => packDocuments([], { seqLen: 4 })).toThrow(DataError);
    expect(() => packDocuments(docs, { seqLen: 0 })).toThrow(TrainerConfigError);
    expect(() => packDocuments([{ tokens: Int32Array.of(1, 2), lossMask: Uint8Array.of(1) }], { seqLen: 4 })).toThrow(/2 tokens but a loss mask of 1/);
  });

  it('task documents: only the answer and EOS are targets', () => {
    const [ex] = taskExamples('reversal', { count: 1, seed: 5, length: 3 });
    expect(ex!.answer).toBe([...ex!.prompt.slice(0, 3)].reverse().join(''));
    const p = packDocuments(taskDocuments([ex!], tok), { seqLen: 8 });
    expect(Array.from(p.targets)).toEqual([-100, -100, -100, ...bytes(ex!.answer), EOS, -100]);
  });
});

describe('split and order', () => {
  it('splitDocuments is deterministic by seed, keeps order, and holds out the requested amount', () => {
    const docs = Array.from({ length: 50 }, (_, i) => i);
    const a = splitDocuments(docs, { evalFraction: 0.1, seed: 7 });
    const b = splitDocuments(docs, { evalFraction: 0.1, seed: 7 });
    const c = splitDocuments(docs, { evalFraction: 0.1, seed: 8 });
    expect(a).toEqual(b);
    expect(a.eval.length).toBe(5);
    expect([...a.train, ...a.eval].sort((x, y) => x - y)).toEqual(docs);
    expect(a.train).toEqual([...a.train].sort((x, y) => x - y));
    expect(c.eval).not.toEqual(a.eval);
    expect(splitDocuments([1, 2, 3], { evalFraction: 0.01 }).eval.length).toBe(1);
    expect(() => splitDocuments([1], { evalDocuments: 1 })).toThrow(/leaves none for training/);
  });

  it('epoch permutations are permutations, reproducible, different per epoch and seed', () => {
    const p0 = epochPermutation(97, 3, 0);
    expect([...p0].sort((a, b) => a - b)).toEqual(Array.from({ length: 97 }, (_, i) => i));
    expect(Array.from(epochPermutation(97, 3, 0))).toEqual(Array.from(p0));
    expect(Array.from(epochPermutation(97, 3, 1))).not.toEqual(Array.from(p0));
    expect(Array.from(epochPermutation(97, 4, 0))).not.toEqual(Array.from(p0));
    // Roughly uniform: the mean position of row 0 over many epochs is near the middle.
    let sum = 0;
    for (let e = 0; e < 400; e++) sum += epochPermutation(9, 11, e).indexOf(0);
    expect(sum / 400).toBeGreaterThan(3.3);
    expect(sum / 400).toBeLessThan(4.7);
  });

  it('PackedDataset: batches cross epochs; a dataset set to a saved position continues identically', () => {
    const docs = Array.from({ length: 30 }, () => Int32Array.from({ length: 1 + rng.int(0, 9) }, () => rng.int(0, 256)));
    const rows = packDocuments(docs, { seqLen: 8 });
    const a = new PackedDataset(rows, { seed: 5 });
    const seen: number[] = [];
    // Enough batches of 3 to pass the end of the first epoch (the row count depends on the random documents).
    const batches = Math.ceil(rows.numRows / 3) + 2;
    for (let i = 0; i < batches; i++) seen.push(...a.nextBatch(3).rows);
    expect(seen.length).toBeGreaterThan(rows.numRows);
    // Every row once per epoch.
    expect(seen.slice(0, rows.numRows).sort((x, y) => x - y)).toEqual(Array.from({ length: rows.numRows }, (_, i) => i));
    const pos = a.position;
    const b = new PackedDataset(rows, { seed: 5 });
    b.setPosition(pos);
    for (let i = 0; i < 5; i++) expect(b.nextBatch(2)).toEqual(a.nextBatch(2));
    const batch = new PackedDataset(rows, { shuffle: false }).nextBatch(2);
    expect(batch.rows).toEqual([0, 1]);
    expect(Array.from(batch.cuSeqlens)).toEqual([...Array.from(rows.segments[0]!), ...Array.from(rows.segments[1]!).slice(1).map((x) => x + 8)]);
    expect(batch.countedTokens).toBe([...batch.targets].filter((t) => t !== IGNORE_INDEX).length);
    expect(() => b.setPosition({ epoch: 0, index: rows.numRows })).toThrow(TrainerConfigError);
  });
});
