/**
 * On-disk cache of compiled kernels. NVRTC takes about 0.1-1 s per module, so each cubin is
 * stored under a key that changes whenever anything that affects the machine code changes:
 * sha256 over the source, every header (name and contents), the target architecture, the NVRTC
 * version and the compile options. Writes go to a temporary file that is renamed into place, so a
 * crash or a concurrent process never leaves a truncated cubin under a valid name.
 *
 * Location: `options.cacheDir`, else $RING_LINEAR_CUDA_CACHE, else $XDG_CACHE_HOME/ring-linear/cuda,
 * else ~/.cache/ring-linear/cuda. `cacheDir: null` (or RING_LINEAR_CUDA_CACHE=off) disables it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface CacheKeyParts {
  readonly source: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly arch: string;
  readonly nvrtcVersion: readonly [number, number];
  readonly options: readonly string[];
}

/** Hex sha256 of everything that determines the compiled code. Header order does not matter. */
export function cacheKey(p: CacheKeyParts): string {
  const h = createHash('sha256');
  const field = (s: string) => {
    h.update(String(Buffer.byteLength(s)));
    h.update(':');
    h.update(s);
  };
  field('ring-linear-cuda-cubin-v1');
  field(p.arch);
  field(`nvrtc ${p.nvrtcVersion[0]}.${p.nvrtcVersion[1]}`);
  field(p.options.join('\u0000'));
  field(p.source);
  for (const name of Object.keys(p.headers).sort()) {
    field(name);
    field(p.headers[name]!);
  }
  return h.digest('hex');
}

export function defaultCacheDir(env: Readonly<Record<string, string | undefined>> = process.env, home: string = homedir()): string | null {
  const v = env.RING_LINEAR_CUDA_CACHE;
  if (v !== undefined && v !== '') return v === 'off' || v === '0' ? null : v;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'ring-linear', 'cuda');
  return join(home, '.cache', 'ring-linear', 'cuda');
}

export class CubinDiskCache {
  private warned = false;
  hits = 0;
  misses = 0;
  writes = 0;

  constructor(
    readonly dir: string | null,
    private readonly warn: (msg: string) => void = (m) => console.warn(m),
  ) {}

  private path(key: string, ext: string): string {
    return join(this.dir!, `${key}.${ext}`);
  }

  get(key: string, ext = 'cubin'): Uint8Array | null {
    if (!this.dir) return null;
    try {
      const data = readFileSync(this.path(key, ext));
      if (data.byteLength === 0) throw new Error('empty');
      this.hits++;
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    } catch {
      this.misses++;
      return null;
    }
  }

  put(key: string, data: Uint8Array, ext = 'cubin'): void {
    if (!this.dir) return;
    const final = this.path(key, ext);
    const tmp = `${final}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      mkdirSync(this.dir, { recursive: true });
      writeFileSync(tmp, data);
      renameSync(tmp, final);
      this.writes++;
    } catch (err) {
      try {
        rmSync(tmp, { force: true });
      } catch {
        /* nothing to clean */
      }
      if (!this.warned) {
        this.warned = true;
        this.warn(`ring-linear cuda: kernel cache at ${this.dir} is not writable (${(err as Error).message}); compiling in memory only`);
      }
    }
  }
}
