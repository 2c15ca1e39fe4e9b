/**
 * Where checkpoint bytes come from: ByteSource (random-access reads of one file) and
 * CheckpointFolder (named files of a model folder). One parser serves every kind:
 *
 *   Node.js:   nodeFileSource(path), nodeFolder(dir)            file handles, reads at offsets
 *   browsers:  bytesSource(name, ArrayBuffer | Uint8Array), blobSource(name, Blob | File),
 *              responseSource(name, Response), memoryFolder({ 'config.json': ..., ... }),
 *              urlFolder(baseUrl)                               fetch
 *
 * A file-backed source never holds the file in memory: the loader reads one tensor at a time at
 * its offset. Node built-ins are imported dynamically, so this module loads in browsers.
 */
import { SafetensorsError } from './errors.js';

/** Random-access bytes of one file. */
export interface ByteSource {
  /** For messages: the file path or name. */
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes at `offset` (throws SafetensorsError on a short read). */
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** The files of a model folder (config.json, model.safetensors[.index.json], shards, tokenizer files). */
export interface CheckpointFolder {
  readonly name: string;
  exists(file: string): Promise<boolean>;
  readText(file: string): Promise<string>;
  open(file: string): Promise<ByteSource>;
}

function checkRange(source: { name: string; size: number }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > source.size) {
    throw new SafetensorsError(source.name, `read of ${length} bytes at offset ${offset} is outside the file (${source.size} bytes)`);
  }
}

/** A source over bytes already in memory (an ArrayBuffer from fetch or a File, a Uint8Array). */
export function bytesSource(name: string, data: ArrayBuffer | Uint8Array): ByteSource {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  return {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      checkRange({ name, size: bytes.byteLength }, offset, length);
      return bytes.subarray(offset, offset + length);
    },
    async close() {},
  };
}

/** A source over a Blob or File: reads slices lazily, so a large File is never read whole. */
export function blobSource(name: string, blob: Blob): ByteSource {
  return {
    name,
    size: blob.size,
    async read(offset, length) {
      checkRange({ name, size: blob.size }, offset, length);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
    async close() {},
  };
}

/** A source over a fetch Response (its body is read once into memory). */
export async function responseSource(name: string, response: Response): Promise<ByteSource> {
  if (!response.ok) throw new SafetensorsError(name, `fetch failed: HTTP ${response.status} ${response.statusText}`);
  return bytesSource(name, await response.arrayBuffer());
}

// Node-only pieces, loaded on first use so that browsers never import them.
type FsPromises = typeof import('node:fs/promises');
type PathModule = typeof import('node:path');
let nodeModules: Promise<{ fs: FsPromises; path: PathModule }> | null = null;

/** @internal node:fs/promises and node:path, imported dynamically. */
export function nodeFs(): Promise<{ fs: FsPromises; path: PathModule }> {
  nodeModules ??= (async () => {
    try {
      const [fs, path] = await Promise.all([import('node:fs/promises'), import('node:path')]);
      return { fs, path };
    } catch (err) {
      nodeModules = null;
      throw new SafetensorsError('(filesystem)', `file access needs Node.js (node:fs); in a browser use memoryFolder/urlFolder/blobSource (${(err as Error).message})`);
    }
  })();
  return nodeModules;
}

/** Largest single read (the OS caps one read near 2 GiB; bigger tensors are read in pieces). */
const MAX_READ = 1 << 30;

/** A file on disk read at offsets through one file handle (Node.js). */
export async function nodeFileSource(filePath: string): Promise<ByteSource> {
  const { fs } = await nodeFs();
  let handle: Awaited<ReturnType<FsPromises['open']>>;
  try {
    handle = await fs.open(filePath, 'r');
  } catch (err) {
    throw new SafetensorsError(filePath, `cannot open: ${(err as Error).message}`);
  }
  const size = (await handle.stat()).size;
  let closed = false;
  const self = { name: filePath, size };
  return {
    ...self,
    async read(offset, length) {
      checkRange(self, offset, length);
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const want = Math.min(MAX_READ, length - done);
        const { bytesRead } = await handle.read(out, done, want, offset + done);
        if (bytesRead === 0) throw new SafetensorsError(filePath, `unexpected end of file at byte ${offset + done} (the file shrank while reading?)`);
        done += bytesRead;
      }
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}

/** A model folder on disk (Node.js). */
export async function nodeFolder(dir: string): Promise<CheckpointFolder> {
  const { fs, path } = await nodeFs();
  const full = (file: string) => path.join(dir, file);
  return {
    name: dir,
    async exists(file) {
      try {
        return (await fs.stat(full(file))).isFile();
      } catch {
        return false;
      }
    },
    async readText(file) {
      try {
        return await fs.readFile(full(file), 'utf8');
      } catch (err) {
        throw new SafetensorsError(full(file), `cannot read: ${(err as Error).message}`);
      }
    },
    open: (file) => nodeFileSource(full(file)),
  };
}

export type MemoryFile = ArrayBuffer | Uint8Array | Blob | Response | string;

/**
 * A model folder held in memory (browsers): file name -> contents (ArrayBuffer, Uint8Array, a
 * Blob/File, a fetch Response, or text for the JSON files).
 */
export function memoryFolder(files: Readonly<Record<string, MemoryFile>>, name = '(memory)'): CheckpointFolder {
  const cache = new Map<string, Promise<ByteSource>>();
  const get = (file: string): MemoryFile => {
    const v = files[file];
    if (v === undefined) throw new SafetensorsError(`${name}/${file}`, `no such file (the folder has: ${Object.keys(files).join(', ') || 'nothing'})`);
    return v;
  };
  const open = (file: string): Promise<ByteSource> => {
    let p = cache.get(file);
    if (!p) {
      const v = get(file);
      const label = `${name}/${file}`;
      p =
        typeof v === 'string' ? Promise.resolve(bytesSource(label, new TextEncoder().encode(v)))
        : v instanceof Uint8Array || v instanceof ArrayBuffer ? Promise.resolve(bytesSource(label, v))
        : typeof Response !== 'undefined' && v instanceof Response ? responseSource(label, v)
        : Promise.resolve(blobSource(label, v as Blob));
      cache.set(file, p);
    }
    return p;
  };
  return {
    name,
    async exists(file) {
      return files[file] !== undefined;
    },
    async readText(file) {
      const v = get(file);
      if (typeof v === 'string') return v;
      const src = await open(file);
      return new TextDecoder().decode(await src.read(0, src.size));
    },
    open,
  };
}

export interface UrlFolderOptions {
  /** The fetch to use (default globalThis.fetch). */
  readonly fetch?: typeof fetch;
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * A model folder served over HTTP(S), e.g. `urlFolder('https://huggingface.co/org/model/resolve/main')`.
 * Each file is fetched when first needed (safetensors files whole, into memory).
 */
export function urlFolder(baseUrl: string, options: UrlFolderOptions = {}): CheckpointFolder {
  const f = options.fetch ?? globalThis.fetch;
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const headers = options.headers ?? {};
  const sources = new Map<string, Promise<ByteSource>>();
  return {
    name: baseUrl,
    async exists(file) {
      const r = await f(base + file, { method: 'HEAD', headers });
      return r.ok;
    },
    async readText(file) {
      const r = await f(base + file, { headers });
      if (!r.ok) throw new SafetensorsError(base + file, `fetch failed: HTTP ${r.status} ${r.statusText}`);
      return r.text();
    },
    open(file) {
      let p = sources.get(file);
      if (!p) {
        p = f(base + file, { headers }).then((r) => responseSource(base + file, r));
        sources.set(file, p);
      }
      return p;
    },
  };
}

/** A folder from a path (Node) or an existing CheckpointFolder. */
export async function toFolder(folder: string | CheckpointFolder): Promise<CheckpointFolder> {
  return typeof folder === 'string' ? nodeFolder(folder) : folder;
}
