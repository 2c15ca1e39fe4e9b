/**
 * The safetensors format (https://github.com/huggingface/safetensors, "Format"):
 *
 *   8 bytes   N, unsigned little-endian 64-bit: the header size
 *   N bytes   UTF-8 JSON: { "__metadata__"?: {string: string},
 *                           name: { "dtype": "BF16", "shape": [..], "data_offsets": [begin, end] }, ... }
 *             (may be padded with spaces)
 *   rest      the tensors' bytes, little-endian, row-major; offsets are relative to the start of
 *             this region, which they cover exactly (no holes, no overlaps)
 *
 * This file is pure (no Node, no I/O): it parses and validates headers and builds them. Every
 * check runs before any tensor data is read, so a corrupt, truncated or lying file is refused
 * up front with all its problems listed (SafetensorsError).
 */
import { bytesPerElement, type DType } from '@ring-linear/core';
import { SafetensorsError } from './errors.js';

/** safetensors dtype names <-> ring-linear dtypes (FP8 names as the format spells them). */
export const SAFETENSORS_DTYPES: Readonly<Record<string, DType>> = {
  F32: 'f32',
  F16: 'f16',
  BF16: 'bf16',
  F8_E4M3: 'f8e4m3',
  F8_E5M2: 'f8e5m2',
  I32: 'i32',
  U8: 'u8',
  BOOL: 'bool',
};

const TO_SAFETENSORS: Readonly<Record<DType, string>> = {
  f32: 'F32',
  f16: 'F16',
  bf16: 'BF16',
  f8e4m3: 'F8_E4M3',
  f8e5m2: 'F8_E5M2',
  i32: 'I32',
  u8: 'U8',
  bool: 'BOOL',
};

/** Widths of dtypes the format defines that this package does not load (for exact size checks). */
const OTHER_WIDTHS: Readonly<Record<string, number>> = { F64: 8, I64: 8, U64: 8, I16: 2, U16: 2, I8: 1, U32: 4, F8_E8M0: 1 };

/** The largest header accepted (the reference implementation's limit is 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

export function toSafetensorsDType(dtype: DType): string {
  return TO_SAFETENSORS[dtype];
}

export interface SafetensorsEntry {
  readonly name: string;
  /** The format's dtype name (F32, BF16, F8_E4M3, ...). */
  readonly format: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly size: number;
  /** Absolute byte range in the file. */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  /** Where the data region starts (8 + header size). */
  readonly dataStart: number;
  readonly fileSize: number;
  /** Tensors in file order (by offset). */
  readonly entries: readonly SafetensorsEntry[];
  readonly metadata: Readonly<Record<string, string>>;
}

/** Reads the 8-byte header size; validates it against the file size. */
export function headerSizeOf(file: string, prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw new SafetensorsError(file, `not a safetensors file: ${fileSize} bytes, need at least 8 for the header size`);
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  if (hi >= 2 ** 21 || n > MAX_HEADER_BYTES) {
    throw new SafetensorsError(file, `corrupt header size ${n} (at most ${MAX_HEADER_BYTES} bytes accepted); not a safetensors file?`);
  }
  if (n < 2) throw new SafetensorsError(file, `corrupt header size ${n}: a header is a JSON object of at least 2 bytes`);
  if (8 + n > fileSize) {
    throw new SafetensorsError(file, `truncated: the header claims ${n} bytes, but the file has only ${fileSize - 8} after the size field`);
  }
  return n;
}

function isSafeNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses and validates a header: known dtypes, shapes, offsets whose lengths equal
 * shape x dtype size, tensors covering the data region exactly (no holes, no overlaps), the
 * region ending at the end of the file (truncation). All problems are listed in one error.
 */
export function parseSafetensorsHeader(file: string, headerBytes: Uint8Array, fileSize: number): SafetensorsHeader {
  const dataStart = 8 + headerBytes.byteLength;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (err) {
    throw new SafetensorsError(file, `corrupt header: not UTF-8 JSON (${(err as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError(file, 'corrupt header: expected a JSON object of tensors');
  }
  const problems: string[] = [];
  let metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || !Object.values(raw).every((v) => typeof v === 'string')) {
        problems.push('__metadata__ must be an object of strings');
      } else metadata = raw as Record<string, string>;
      continue;
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      problems.push(`'${name}': expected {dtype, shape, data_offsets}, got ${JSON.stringify(raw)}`);
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    const bad: string[] = [];
    const ours = typeof dtype === 'string' ? SAFETENSORS_DTYPES[dtype] : undefined;
    const width = ours ? bytesPerElement(ours) : typeof dtype === 'string' ? OTHER_WIDTHS[dtype] : undefined;
    if (typeof dtype !== 'string' || width === undefined) bad.push(`unknown dtype ${JSON.stringify(dtype)}`);
    else if (!ours) bad.push(`dtype ${dtype} is not supported (supported: ${Object.keys(SAFETENSORS_DTYPES).join(', ')})`);
    if (!Array.isArray(shape) || !shape.every(isSafeNonNegInt)) bad.push(`shape must be an array of integers >= 0, got ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSafeNonNegInt) || offsets[0] > offsets[1]) {
      bad.push(`data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
    }
    if (bad.length) {
      problems.push(`'${name}': ${bad.join('; ')}`);
      continue;
    }
    const dims = shape as number[];
    const [b, e] = offsets as [number, number];
    const size = dims.reduce((a, d) => a * d, 1);
    const expected = size * width!;
    if (e - b !== expected) {
      problems.push(`'${name}': the header says ${dtype} ${JSON.stringify(dims)} (${expected} bytes) but its data_offsets [${b}, ${e}] span ${e - b} bytes`);
      continue;
    }
    entries.push({ name, format: dtype as string, dtype: ours!, shape: dims, size, begin: dataStart + b, end: dataStart + e });
  }
  // Coverage: sorted by offset, each tensor must start where the previous one ended.
  entries.sort((x, y) => x.begin - y.begin || x.end - y.end);
  let cursor = dataStart;
  let prev: SafetensorsEntry | null = null;
  for (const t of entries) {
    if (t.begin < cursor && prev) {
      problems.push(`'${t.name}' [${t.begin - dataStart}, ${t.end - dataStart}) overlaps '${prev.name}' [${prev.begin - dataStart}, ${prev.end - dataStart})`);
    } else if (t.begin > cursor) {
      problems.push(`hole in the data: bytes [${cursor - dataStart}, ${t.begin - dataStart}) belong to no tensor (before '${t.name}')`);
    }
    if (t.end > cursor) {
      cursor = t.end;
      prev = t;
    }
  }
  if (cursor > fileSize) {
    problems.push(`truncated: the tensors end at byte ${cursor} but the file has ${fileSize} bytes`);
  } else if (cursor < fileSize) {
    problems.push(`${fileSize - cursor} trailing bytes after the last tensor (the data region must be covered exactly)`);
  }
  if (problems.length) {
    throw new SafetensorsError(file, `invalid safetensors header (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`);
  }
  return { dataStart, fileSize, entries, metadata };
}

export interface HeaderTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface BuiltHeader {
  /** The 8-byte size plus the JSON, padded with spaces to a multiple of 8 bytes. */
  readonly bytes: Uint8Array;
  /** Absolute file offset of each tensor's data, in the given order. */
  readonly offsets: readonly number[];
  readonly fileSize: number;
}

/** Builds a header for tensors laid out in the given order. */
export function buildSafetensorsHeader(tensors: readonly HeaderTensor[], metadata: Readonly<Record<string, string>> = {}): BuiltHeader {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = { ...metadata };
  const rel: number[] = [];
  let pos = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__' || seen.has(t.name)) throw new SafetensorsError('(writer)', `tensor name '${t.name}' is reserved or repeated`);
    seen.add(t.name);
    const n = t.shape.reduce((a, d) => a * d, 1) * bytesPerElement(t.dtype);
    header[t.name] = { dtype: TO_SAFETENSORS[t.dtype], shape: [...t.shape], data_offsets: [pos, pos + n] };
    rel.push(pos);
    pos += n;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // Pad so the data region starts 8-byte aligned (as the reference writer does).
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const bytes = new Uint8Array(8 + padded).fill(0x20);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, padded % 2 ** 32, true);
  view.setUint32(4, Math.floor(padded / 2 ** 32), true);
  bytes.set(json, 8);
  const dataStart = 8 + padded;
  return { bytes, offsets: rel.map((r) => dataStart + r), fileSize: dataStart + pos };
}

/**
 * How many values in raw storage bytes are not finite: NaN or infinity for f32/f16/bf16/f8e5m2
 * (exponent all ones), NaN for f8e4m3 (S.1111.111; E4M3FN has no infinities). 0 for clean data
 * and for integer dtypes.
 */
export function countNonFinite(bytes: Uint8Array, dtype: DType): number {
  let n = 0;
  switch (dtype) {
    case 'f32': {
      const len = bytes.byteLength >> 2;
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < len; i++) if ((dv.getUint32(i * 4, true) & 0x7f800000) === 0x7f800000) n++;
      return n;
    }
    case 'bf16':
    case 'f16': {
      const mask = dtype === 'bf16' ? 0x7f80 : 0x7c00;
      const len = bytes.byteLength >> 1;
      for (let i = 0; i < len; i++) if (((bytes[2 * i]! | (bytes[2 * i + 1]! << 8)) & mask) === mask) n++;
      return n;
    }
    case 'f8e4m3':
      for (let i = 0; i < bytes.byteLength; i++) if ((bytes[i]! & 0x7f) === 0x7f) n++;
      return n;
    case 'f8e5m2':
      for (let i = 0; i < bytes.byteLength; i++) if ((bytes[i]! & 0x7c) === 0x7c) n++;
      return n;
    default:
      return 0;
  }
}
