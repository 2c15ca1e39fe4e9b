import '@ring-linear/backend-cpu';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bytesPerElement, dispose, fromBytes, type DType, type Tensor } from '@ring-linear/core';
import {
  SafetensorsError,
  buildSafetensorsHeader,
  bytesSource,
  countNonFinite,
  loadSafetensors,
  nodeFileSource,
  readSafetensorsHeader,
  saveSafetensors,
  serializeSafetensors,
} from '../src/index.js';
import { rng, seedFromEnv } from './helpers.js';

const SEED = seedFromEnv(7);
console.log(`safetensors tests: seed ${SEED}`);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ring-linear-st-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Random raw storage bytes (every bit pattern a dtype can hold, NaN codes excluded). */
function randomTensor(r: () => number, shape: number[], dtype: DType): Tensor {
  const n = shape.reduce((a, b) => a * b, 1) * bytesPerElement(dtype);
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = Math.floor(r() * 256);
  if (dtype === 'bool') for (let i = 0; i < n; i++) bytes[i]! &= 1;
  // Clear exponent-all-ones patterns so the finite check passes (values otherwise arbitrary).
  if (dtype === 'f32') for (let i = 3; i < n; i += 4) bytes[i]! &= 0xbf;
  if (dtype === 'bf16') for (let i = 1; i < n; i += 2) bytes[i]! &= 0xbf;
  if (dtype === 'f16') for (let i = 1; i < n; i += 2) bytes[i]! &= 0xbb;
  if (dtype === 'f8e4m3') for (let i = 0; i < n; i++) if ((bytes[i]! & 0x7f) === 0x7f) bytes[i] = 0x7e;
  if (dtype === 'f8e5m2') for (let i = 0; i < n; i++) bytes[i]! &= 0xbb;
  return fromBytes(bytes, shape, dtype);
}

/** A valid file with two tensors, as bytes, for corruption tests. */
function validFile(): Uint8Array {
  const h = buildSafetensorsHeader([
    { name: 'a', dtype: 'f32', shape: [2, 3] },
    { name: 'b', dtype: 'bf16', shape: [5] },
  ]);
  const out = new Uint8Array(h.fileSize);
  out.set(h.bytes);
  out.fill(0x3f, h.bytes.byteLength);
  return out;
}

/** A file with a hand-written header (what a buggy or malicious writer could produce). */
function fileWithHeader(header: unknown, dataBytes: number, headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  new DataView(out.buffer).setUint32(0, json.byteLength, true);
  out.set(json, 8);
  return out;
}

async function headerError(bytes: Uint8Array): Promise<SafetensorsError> {
  try {
    await readSafetensorsHeader(bytesSource('t.safetensors', bytes));
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    return e as SafetensorsError;
  }
  throw new Error('expected a SafetensorsError');
}

describe('safetensors format', () => {
  it('save -> load round-trips every dtype bit-exactly (odd shapes, size-1 and empty dims), on disk and in memory', async () => {
    const r = rng(SEED);
    const dtypes: DType[] = ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2', 'i32', 'u8', 'bool'];
    const tensors = new Map<string, Tensor>();
    dtypes.forEach((dt, i) => tensors.set(`t.${dt}`, randomTensor(r, [3 + i, 1, 5], dt)));
    tensors.set('scalar', randomTensor(r, [], 'f32'));
    tensors.set('empty', randomTensor(r, [0, 7], 'bf16'));
    const file = path.join(tmp, 'all.safetensors');
    await saveSafetensors(file, tensors, { metadata: { format: 'pt', note: 'test' } });
    const src = await nodeFileSource(file);
    const header = await readSafetensorsHeader(src);
    expect(header.metadata).toEqual({ format: 'pt', note: 'test' });
    expect(header.dataStart % 8).toBe(0);
    expect(header.entries.find((e) => e.name === 't.f8e4m3')!.format).toBe('F8_E4M3');
    expect(header.entries.find((e) => e.name === 't.f8e5m2')!.format).toBe('F8_E5M2');
    expect(header.entries.find((e) => e.name === 't.bf16')!.format).toBe('BF16');
    const loaded = await loadSafetensors(src);
    await src.close();
    const inMemory = await loadSafetensors(bytesSource('mem', await serializeSafetensors(tensors)));
    for (const [name, t] of tensors) {
      for (const got of [loaded.get(name)!, inMemory.get(name)!]) {
        expect(got.shape).toEqual(t.shape);
        expect(got.dtype).toBe(t.dtype);
        expect(Buffer.from(await got.bytes()).equals(Buffer.from(await t.bytes()))).toBe(true);
      }
    }
    expect(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
    dispose([tensors, loaded, inMemory]);
  });

  it('the writer replaces an existing file atomically and leaves no temporary on failure', async () => {
    const file = path.join(tmp, 'atomic.safetensors');
    fs.writeFileSync(file, 'old contents');
    const good = randomTensor(rng(SEED + 1), [4], 'f32');
    const gone = randomTensor(rng(SEED + 2), [4], 'f32');
    gone.dispose();
    await expect(saveSafetensors(file, [['good', good], ['gone', gone]])).rejects.toThrow(/disposed/);
    expect(fs.readFileSync(file, 'utf8')).toBe('old contents');
    expect(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
    await saveSafetensors(file, [['good', good]]);
    const src = await nodeFileSource(file);
    expect((await readSafetensorsHeader(src)).entries.map((e) => e.name)).toEqual(['good']);
    await src.close();
    good.dispose();
  });

  it('corrupt, truncated and lying files: clear errors before any data is read', async () => {
    const ok = validFile();
    await expect(readSafetensorsHeader(bytesSource('t', ok))).resolves.toBeTruthy();
    // Too short for the size field.
    expect((await headerError(ok.subarray(0, 5))).message).toMatch(/need at least 8 for the header size/);
    // A header size larger than the file.
    const big = ok.slice();
    new DataView(big.buffer).setUint32(0, 1_000_000, true);
    expect((await headerError(big)).message).toMatch(/truncated: the header claims 1000000 bytes/);
    // An absurd header size (garbage in the first 8 bytes).
    const garbage = ok.slice();
    new DataView(garbage.buffer).setUint32(4, 0xdeadbeef, true);
    expect((await headerError(garbage)).message).toMatch(/corrupt header size/);
    // Not JSON.
    const notJson = ok.slice();
    notJson[8] = 0x7b;
    notJson[9] = 0x22;
    notJson[10] = 0xff;
    expect((await headerError(notJson)).message).toMatch(/corrupt header: not UTF-8 JSON/);
    // Truncated data region.
    expect((await headerError(ok.subarray(0, ok.byteLength - 3))).message).toMatch(/truncated: the tensors end at byte \d+ but the file has \d+ bytes/);
    // Trailing garbage.
    const longer = new Uint8Array(ok.byteLength + 4);
    longer.set(ok);
    expect((await headerError(longer)).message).toMatch(/4 trailing bytes after the last tensor/);
  });

  it('a header that lies about sizes, overlaps, holes and unknown dtypes: every problem listed', async () => {
    const e = await headerError(
      fileWithHeader(
        {
          __metadata__: { format: 'pt' },
          lies: { dtype: 'F32', shape: [4, 4], data_offsets: [0, 32] }, // 64 bytes claimed by the shape
          ok1: { dtype: 'BF16', shape: [8], data_offsets: [32, 48] },
          overlap: { dtype: 'U8', shape: [8], data_offsets: [40, 48] },
          hole: { dtype: 'U8', shape: [4], data_offsets: [60, 64] },
          f64: { dtype: 'F64', shape: [1], data_offsets: [64, 72] },
          weird: { dtype: 'Q4', shape: [1], data_offsets: [72, 73] },
          neg: { dtype: 'F32', shape: [-1], data_offsets: [73, 77] },
          rev: { dtype: 'U8', shape: [0], data_offsets: [80, 79] },
        },
        64,
      ),
    );
    const m = e.message;
    expect(m).toMatch(/invalid safetensors header \(\d+ problems\)/);
    expect(m).toMatch(/'lies': the header says F32 \[4,4\] \(64 bytes\) but its data_offsets \[0, 32\] span 32 bytes/);
    expect(m).toMatch(/'overlap' \[40, 48\) overlaps 'ok1' \[32, 48\)/);
    expect(m).toMatch(/hole in the data: bytes \[48, 60\) belong to no tensor \(before 'hole'\)/);
    expect(m).toMatch(/'f64': dtype F64 is not supported/);
    expect(m).toMatch(/'weird': unknown dtype "Q4"/);
    expect(m).toMatch(/'neg': shape must be an array of integers >= 0/);
    expect(m).toMatch(/'rev': data_offsets must be \[begin, end\]/);
    expect(m).toMatch(/^t\.safetensors: /);
    // Bad metadata and a non-object header.
    expect((await headerError(fileWithHeader({ __metadata__: { n: 1 } }, 0))).message).toMatch(/__metadata__ must be an object of strings/);
    expect((await headerError(fileWithHeader(null, 0, '[1,2,3]'))).message).toMatch(/expected a JSON object of tensors/);
  });

  it('non-finite values are detected in every float storage format', () => {
    const f32 = new Uint8Array(new Float32Array([1, NaN, -Infinity, 3]).buffer);
    expect(countNonFinite(f32, 'f32')).toBe(2);
    expect(countNonFinite(Uint8Array.of(0x80, 0x7f, 0xc0, 0xff, 0x80, 0x3f), 'bf16')).toBe(2); // +inf, NaN, 1.0
    expect(countNonFinite(Uint8Array.of(0x00, 0x7c, 0x00, 0x3c), 'f16')).toBe(1); // +inf, 1.0
    expect(countNonFinite(Uint8Array.of(0x7f, 0xff, 0x7e, 0x00), 'f8e4m3')).toBe(2); // NaN, -NaN; 448 and 0 are finite
    expect(countNonFinite(Uint8Array.of(0x7c, 0x7f, 0x7b), 'f8e5m2')).toBe(2); // inf, NaN, 57344
    expect(countNonFinite(Uint8Array.of(0xff, 0xff, 0xff, 0x7f), 'i32')).toBe(0);
  });

  it('reads only what it is asked for: the header, then one tensor per read', async () => {
    const r = rng(SEED + 3);
    const tensors: [string, Tensor][] = [['x', randomTensor(r, [64, 33], 'bf16')], ['y', randomTensor(r, [17], 'f32')]];
    const bytes = await serializeSafetensors(tensors);
    const reads: number[] = [];
    const inner = bytesSource('spy', bytes);
    const spy = { name: inner.name, size: inner.size, close: inner.close, read: (o: number, n: number) => (reads.push(n), inner.read(o, n)) };
    const header = await readSafetensorsHeader(spy);
    expect(reads).toEqual([8, header.dataStart - 8]);
    const loaded = await loadSafetensors(spy);
    expect(Math.max(...reads)).toBe(64 * 33 * 2);
    dispose([tensors, loaded]);
  });
});
