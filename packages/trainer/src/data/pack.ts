/**
 * Packing documents into fixed-length rows, the held-out split, and the seeded, resumable batch
 * order.
 *
 * Packing. The documents are laid end to end in one stream and cut into rows of `seqLen` tokens.
 * Each row records where documents start inside it as variable-length offsets (cuSeqlens: 0, the
 * starts, seqLen); the model restarts attention, the linear-attention state and RoPE positions at
 * each offset, so no token attends across a document boundary. The target of position i is the
 * next token of the SAME document (IGNORE_INDEX at a document's last token, where the stream moves
 * to another document, and on padding); a document cut by a row end keeps its target across the
 * cut (the next row then starts that document's remainder as a fresh segment). The last row is
 * padded (its padding is one extra segment of ignored targets) unless dropRemainder.
 *
 * Order. Rows are visited in a permutation per epoch: Fisher-Yates driven by Philox counters keyed
 * by the seed, with the epoch in the counter, so any (seed, epoch) gives the same order on every
 * machine, and the position {epoch, index} is all a checkpoint needs to continue exactly.
 */
import { philox4x32 } from '@ring-linear/core';
import { DataError, TrainerConfigError } from '../errors.js';
import type { TokenizedDocument } from './documents.js';

/** Targets that are not predicted (cross-entropy's default ignore index). */
export const IGNORE_INDEX = -100;

export interface PackedRows {
  readonly seqLen: number;
  readonly numRows: number;
  /** Input ids, row-major [numRows, seqLen]. */
  readonly inputs: Int32Array;
  /** Next-token targets [numRows, seqLen]; IGNORE_INDEX where nothing is predicted. */
  readonly targets: Int32Array;
  /** Per row: document offsets inside the row, [0, ..., seqLen] (strictly increasing). */
  readonly segments: readonly Int32Array[];
  /** Targets that count (not IGNORE_INDEX). */
  readonly countedTokens: number;
  readonly documents: number;
  /** A hash of inputs and targets (FNV-1a), saved in checkpoints to notice resuming on other data. */
  readonly fingerprint: string;
}

export interface PackOptions {
  readonly seqLen: number;
  /** Token used for padding the last row (its targets are ignored). */
  readonly padId?: number;
  /** Drop the last, partial row instead of padding it (default false). */
  readonly dropRemainder?: boolean;
}

function asDoc(d: TokenizedDocument | Int32Array | readonly number[], i: number): TokenizedDocument {
  if (d instanceof Int32Array) return { tokens: d };
  if (Array.isArray(d)) return { tokens: Int32Array.from(d as readonly number[]) };
  const doc = d as TokenizedDocument;
  if (!doc || !(doc.tokens instanceof Int32Array)) throw new DataError(`packDocuments: document ${i} must be an Int32Array, a number array or { tokens: Int32Array }`);
  if (doc.lossMask && doc.lossMask.length !== doc.tokens.length) {
    throw new DataError(`packDocuments: document ${i} has ${doc.tokens.length} tokens but a loss mask of ${doc.lossMask.length}`);
  }
  return doc;
}

/** FNV-1a over 32-bit words, as 8 hex digits. */
function fnv1a(arrays: readonly Int32Array[]): string {
  let h = 0x811c9dc5;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      h = Math.imul(h ^ (a[i]! & 0xffff), 0x01000193);
      h = Math.imul(h ^ (a[i]! >>> 16), 0x01000193);
    }
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** Packs documents into rows of `seqLen` tokens (see the file comment). */
export function packDocuments(documents: readonly (TokenizedDocument | Int32Array | readonly number[])[], options: PackOptions): PackedRows {
  const T = options.seqLen;
  if (!Number.isInteger(T) || T < 1) throw new TrainerConfigError(`packDocuments: seqLen must be an integer >= 1, got ${T}`);
  const docs = documents.map(asDoc).filter((d) => d.tokens.length > 0);
  if (docs.length === 0) throw new DataError('packDocuments: no documents (or all are empty)');
  const total = docs.reduce((a, d) => a + d.tokens.length, 0);
  const full = Math.floor(total / T);
  const numRows = options.dropRemainder ? full : Math.ceil(total / T);
  if (numRows === 0) throw new DataError(`packDocuments: ${total} tokens do not fill one row of ${T} (set dropRemainder false to pad)`);
  const padId = options.padId ?? 0;
  const inputs = new Int32Array(numRows * T).fill(padId);
  const targets = new Int32Array(numRows * T).fill(IGNORE_INDEX);
  const segments: Int32Array[] = [];
  const starts: number[][] = Array.from({ length: numRows }, () => []);
  let pos = 0;
  let counted = 0;
  const limit = numRows * T;
  for (const d of docs) {
    const n = d.tokens.length;
    for (let j = 0; j < n && pos + j < limit; j++) {
      const at = pos + j;
      inputs[at] = d.tokens[j]!;
      if (j === 0 || at % T === 0) starts[Math.floor(at / T)]!.push(at % T);
      // Target of this position: the document's next token, if it is one and the mask keeps it.
      if (j + 1 < n && (!d.lossMask || d.lossMask[j + 1])) {
        targets[at] = d.tokens[j + 1]!;
        counted++;
      }
    }
    pos += n;
  }
  for (let r = 0; r < numRows; r++) {
    const s = starts[r]!;
    const used = Math.min(T, Math.max(0, total - r * T));
    const cu = [...s];
    if (cu.length === 0 || cu[0] !== 0) cu.unshift(0);
    if (used < T) cu.push(used); // padding is a segment of its own
    cu.push(T);
    segments.push(Int32Array.from(cu));
  }
  // A dropped remainder may have counted targets beyond the last row; recount from the arrays.
  if (options.dropRemainder) {
    counted = 0;
    for (let i = 0; i < targets.length; i++) if (targets[i] !== IGNORE_INDEX) counted++;
  }
  return { seqLen: T, numRows, inputs, targets, segments, countedTokens: counted, documents: docs.length, fingerprint: fnv1a([inputs, targets]) };
}

export interface SplitOptions {
  /** Fraction of documents held out (e.g. 0.05); at least one document when > 0. */
  readonly evalFraction?: number;
  /** Or an exact number of held-out documents. */
  readonly evalDocuments?: number;
  /** Seed of the (deterministic) choice. */
  readonly seed?: number;
}

/** A uniform double in [0, 1) from Philox (counter c0, c1, c2; key = seed words). */
function philoxUnit(seed: number, c0: number, c1: number, c2: number): number {
  const k0 = seed >>> 0;
  const k1 = Math.floor(seed / 4294967296) >>> 0;
  const x = philox4x32(c0 >>> 0, c1 >>> 0, c2 >>> 0, 0x5eed, k0, k1);
  // 53 random bits: 32 from x0, 21 from x1.
  return (x[0]! * 2097152 + (x[1]! >>> 11)) / 9007199254740992;
}

function checkSeed(seed: number, what: string): number {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new TrainerConfigError(`${what}: seed must be a non-negative safe integer, got ${seed}`);
  return seed;
}

/**
 * Splits documents into training and held-out evaluation sets, deterministically by seed (each
 * document draws a Philox number; the smallest k go to evaluation). Both keep the input order.
 */
export function splitDocuments<D>(documents: readonly D[], options: SplitOptions): { train: D[]; eval: D[] } {
  const seed = checkSeed(options.seed ?? 0, 'splitDocuments');
  const n = documents.length;
  let k: number;
  if (options.evalDocuments !== undefined) {
    k = options.evalDocuments;
    if (!Number.isInteger(k) || k < 0) throw new TrainerConfigError(`splitDocuments: evalDocuments must be an integer >= 0, got ${k}`);
  } else {
    const f = options.evalFraction ?? 0;
    if (!(typeof f === 'number' && f >= 0 && f < 1)) throw new TrainerConfigError(`splitDocuments: evalFraction must be in [0, 1), got ${f}`);
    k = f > 0 ? Math.max(1, Math.round(f * n)) : 0;
  }
  if (k >= n) throw new DataError(`splitDocuments: holding out ${k} of ${n} documents leaves none for training`);
  const draws = documents.map((_, i) => ({ i, u: philoxUnit(seed, i, 0, 0) }));
  draws.sort((a, b) => a.u - b.u || a.i - b.i);
  const held = new Set(draws.slice(0, k).map((d) => d.i));
  const train: D[] = [];
  const ev: D[] = [];
  documents.forEach((d, i) => (held.has(i) ? ev : train).push(d));
  return { train, eval: ev };
}

/** The permutation of `n` rows for an epoch (seeded Fisher-Yates). */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  checkSeed(seed, 'epochPermutation');
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(philoxUnit(seed, i, epoch, 1) * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** Where a dataset is in its row order; what a checkpoint saves. */
export interface DataPosition {
  readonly epoch: number;
  /** Rows of this epoch already taken. */
  readonly index: number;
}

/** One micro-batch: several rows laid end to end in one packed row [1, rows * seqLen]. */
export interface Batch {
  readonly inputIds: Int32Array;
  readonly targets: Int32Array;
  /** Document offsets across the whole packed row (row boundaries are boundaries too). */
  readonly cuSeqlens: Int32Array;
  readonly rows: readonly number[];
  /** Targets that count (the loss is averaged over these). */
  readonly countedTokens: number;
  /** Tokens in the batch (rows * seqLen). */
  readonly length: number;
}

export interface PackedDatasetOptions {
  /** Seed of the row order (default 0). */
  readonly seed?: number;
  /** Visit rows in a new seeded order every epoch (default true); false: in order. */
  readonly shuffle?: boolean;
}

/** Batches over packed rows in a seeded order, resumable from a DataPosition. */
export class PackedDataset {
  readonly rows: PackedRows;
  readonly seed: number;
  readonly shuffle: boolean;
  #epoch = 0;
  #index = 0;
  #perm: Int32Array | null = null;
  #permEpoch = -1;

  constructor(rows: PackedRows, options: PackedDatasetOptions = {}) {
    this.rows = rows;
    this.seed = checkSeed(options.seed ?? 0, 'PackedDataset');
    this.shuffle = options.shuffle ?? true;
  }

  get seqLen(): number {
    return this.rows.seqLen;
  }

  get numRows(): number {
    return this.rows.numRows;
  }

  get position(): DataPosition {
    return { epoch: this.#epoch, index: this.#index };
  }

  setPosition(p: DataPosition): void {
    if (!p || !Number.isInteger(p.epoch) || p.epoch < 0 || !Number.isInteger(p.index) || p.index < 0 || p.index >= this.rows.numRows) {
      throw new TrainerConfigError(`PackedDataset.setPosition: expected { epoch >= 0, index in [0, ${this.rows.numRows}) }, got ${JSON.stringify(p)}`);
    }
    this.#epoch = p.epoch;
    this.#index = p.index;
  }

  private order(epoch: number): Int32Array {
    if (this.#permEpoch !== epoch) {
      this.#perm = this.shuffle ? epochPermutation(this.rows.numRows, this.seed, epoch) : Int32Array.from({ length: this.rows.numRows }, (_, i) => i);
      this.#permEpoch = epoch;
    }
    return this.#perm!;
  }

  /** The next `n` row indices, crossing into the next epoch when this one runs out. */
  nextRows(n: number): number[] {
    if (!Number.isInteger(n) || n < 1) throw new TrainerConfigError(`PackedDataset.nextRows: n must be an integer >= 1, got ${n}`);
    const out: number[] = [];
    while (out.length < n) {
      out.push(this.order(this.#epoch)[this.#index]!);
      this.#index++;
      if (this.#index === this.rows.numRows) {
        this.#epoch++;
        this.#index = 0;
      }
    }
    return out;
  }

  /** The next micro-batch of `rowsPerBatch` rows. */
  nextBatch(rowsPerBatch: number): Batch {
    return this.batchOf(this.nextRows(rowsPerBatch));
  }

  /** A batch of the given rows, in that order. */
  batchOf(rows: readonly number[]): Batch {
    const T = this.rows.seqLen;
    const L = rows.length * T;
    const inputIds = new Int32Array(L);
    const targets = new Int32Array(L);
    const cu: number[] = [0];
    let counted = 0;
    rows.forEach((r, k) => {
      if (!Number.isInteger(r) || r < 0 || r >= this.rows.numRows) throw new TrainerConfigError(`PackedDataset.batchOf: row ${r} is outside [0, ${this.rows.numRows})`);
      inputIds.set(this.rows.inputs.subarray(r * T, (r + 1) * T), k * T);
      targets.set(this.rows.targets.subarray(r * T, (r + 1) * T), k * T);
      const seg = this.rows.segments[r]!;
      for (let i = 1; i < seg.length; i++) cu.push(k * T + seg[i]!);
    });
    for (let i = 0; i < L; i++) if (targets[i] !== IGNORE_INDEX) counted++;
    return { inputIds, targets, cuSeqlens: Int32Array.from(cu), rows: [...rows], countedTokens: counted, length: L };
  }

  /** Every row once, in order, `rowsPerBatch` at a time (evaluation); does not move the position. */
  *inOrder(rowsPerBatch: number): Generator<Batch> {
    for (let r = 0; r < this.rows.numRows; r += rowsPerBatch) {
      const rows: number[] = [];
      for (let k = r; k < Math.min(this.rows.numRows, r + rowsPerBatch); k++) rows.push(k);
      yield this.batchOf(rows);
    }
  }
}
