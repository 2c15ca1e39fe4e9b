/**
 * Node built-ins, imported on first use so the package loads in browsers (where the file-based
 * parts — data files, checkpoints, metrics files — are unavailable and say so).
 */
import { RingLinearError } from '@ring-linear/core';

type FsPromises = typeof import('node:fs/promises');
type PathModule = typeof import('node:path');

export interface NodeModules {
  readonly fs: FsPromises;
  readonly path: PathModule;
}

let modules: Promise<NodeModules> | null = null;

/** node:fs/promises and node:path (throws a clear error outside Node.js). */
export function nodeModules(): Promise<NodeModules> {
  modules ??= (async () => {
    try {
      const [fs, path] = await Promise.all([import('node:fs/promises'), import('node:path')]);
      return { fs, path };
    } catch (err) {
      modules = null;
      throw new RingLinearError(`this part of @ring-linear/trainer needs Node.js file access (node:fs): ${(err as Error).message}`);
    }
  })();
  return modules;
}

/** Writes text to `file` (create or truncate) and fsyncs it. */
export async function writeFileSynced(file: string, data: string | Uint8Array): Promise<void> {
  const { fs } = await nodeModules();
  const handle = await fs.open(file, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsyncs a directory so renames and creations in it are durable (a no-op where unsupported). */
export async function syncDirectory(dir: string): Promise<void> {
  const { fs } = await nodeModules();
  try {
    const h = await fs.open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Some platforms cannot open or fsync a directory; the rename itself is still atomic.
  }
}

/**
 * Replaces `file` atomically: writes a temporary file in the same folder, fsyncs, renames over
 * the target, fsyncs the folder. A reader sees the old file or the new one, never a partial one.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const { fs, path } = await nodeModules();
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  try {
    await writeFileSynced(tmp, data);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await syncDirectory(dir);
}
