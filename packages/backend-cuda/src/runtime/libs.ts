/**
 * Where the CUDA libraries are looked for. Nothing here touches the file system except
 * `existsSync` probes, so the search order is unit-testable without CUDA.
 *
 * Search order for each library (first that loads wins):
 *   1. an explicit path for that library (`CudaLibraryOptions.paths.cuda|nvrtc|cublasLt`);
 *   2. every entry of `CudaLibraryOptions.searchPaths`, then of the environment variable
 *      RING_LINEAR_CUDA_LIBS (':'-separated): a file whose name starts with the library's name
 *      (libcuda*, libnvrtc*, libcublasLt*) is taken as is, a directory is joined with each soname;
 *   3. NVRTC and cuBLASLt only: $CUDA_PATH/lib64 and $CUDA_HOME/lib64 (when set);
 *   4. the bare sonames, which the dynamic loader resolves through LD_LIBRARY_PATH and the
 *      ldconfig cache (this is where the driver's libcuda.so.1 normally comes from);
 *   5. NVRTC and cuBLASLt: /usr/local/cuda/lib64 and /usr/local/cuda/targets/x86_64-linux/lib;
 *      the driver: /usr/lib/x86_64-linux-gnu, /usr/lib64 and /usr/lib/wsl/lib.
 * Sonames are tried newest first: CUDA 13, then 12 (then the unversioned development link).
 * The toolkit's lib64/stubs/libcuda.so is never picked: it only reports "stub library".
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

export type CudaLibraryName = 'cuda' | 'nvrtc' | 'cublasLt';

export interface CudaLibraryOptions {
  /** Exact file per library (tried first). */
  readonly paths?: Partial<Record<CudaLibraryName, string>>;
  /** Directories or files searched before RING_LINEAR_CUDA_LIBS and the defaults. */
  readonly searchPaths?: readonly string[];
  /** Directory holding cuda_bf16.h / cuda_fp8.h for NVRTC (default: found next to the toolkit). */
  readonly includeDir?: string;
}

export const SONAMES: Record<CudaLibraryName, readonly string[]> = {
  cuda: ['libcuda.so.1', 'libcuda.so'],
  nvrtc: ['libnvrtc.so.13', 'libnvrtc.so.12', 'libnvrtc.so'],
  cublasLt: ['libcublasLt.so.13', 'libcublasLt.so.12', 'libcublasLt.so'],
};

const PREFIX: Record<CudaLibraryName, string> = { cuda: 'libcuda.', nvrtc: 'libnvrtc.', cublasLt: 'libcublasLt.' };

type Env = Readonly<Record<string, string | undefined>>;
type Exists = (path: string) => boolean;
type IsDir = (path: string) => boolean;

const defaultIsDir: IsDir = (p) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

/**
 * The ordered list of candidates to hand to dlopen for one library: absolute paths that exist,
 * and bare sonames (resolved by the dynamic loader). Duplicates are removed, order is kept.
 */
export function libraryCandidates(
  lib: CudaLibraryName,
  options: CudaLibraryOptions = {},
  env: Env = process.env,
  exists: Exists = existsSync,
  isDir: IsDir = defaultIsDir,
): string[] {
  const out: string[] = [];
  const push = (p: string) => {
    if (!out.includes(p)) out.push(p);
  };
  const explicit = options.paths?.[lib];
  if (explicit) push(explicit);
  const entries = [...(options.searchPaths ?? []), ...splitPathList(env.RING_LINEAR_CUDA_LIBS)];
  for (const e of entries) {
    if (isDir(e)) {
      for (const so of SONAMES[lib]) if (exists(join(e, so))) push(join(e, so));
    } else if (basename(e).startsWith(PREFIX[lib]) && exists(e)) {
      push(e);
    }
  }
  const dirs = (list: readonly (string | undefined)[]) => {
    for (const d of list) {
      if (!d || d.includes('stubs')) continue;
      for (const so of SONAMES[lib]) if (exists(join(d, so))) push(join(d, so));
    }
  };
  if (lib !== 'cuda') dirs([env.CUDA_PATH && join(env.CUDA_PATH, 'lib64'), env.CUDA_HOME && join(env.CUDA_HOME, 'lib64')]);
  for (const so of SONAMES[lib]) push(so);
  if (lib === 'cuda') dirs(['/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib/wsl/lib']);
  else dirs(['/usr/local/cuda/lib64', '/usr/local/cuda/targets/x86_64-linux/lib']);
  return out;
}

/**
 * The include directory for NVRTC: the option, RING_LINEAR_CUDA_INCLUDE, $CUDA_PATH/include,
 * $CUDA_HOME/include, the `include` beside the directory NVRTC was loaded from, then
 * /usr/local/cuda/include and /usr/include. The first that holds cuda_bf16.h wins; null if none.
 */
export function findIncludeDir(
  options: CudaLibraryOptions = {},
  nvrtcPath: string | null = null,
  env: Env = process.env,
  exists: Exists = existsSync,
): string | null {
  const cands = [
    options.includeDir,
    env.RING_LINEAR_CUDA_INCLUDE,
    env.CUDA_PATH && join(env.CUDA_PATH, 'include'),
    env.CUDA_HOME && join(env.CUDA_HOME, 'include'),
    nvrtcPath && nvrtcPath.includes('/') ? join(nvrtcPath, '..', '..', 'include') : undefined,
    nvrtcPath && nvrtcPath.includes('/') ? join(nvrtcPath, '..', '..', '..', '..', 'include') : undefined,
    '/usr/local/cuda/include',
    '/usr/include',
  ];
  for (const c of cands) if (c && exists(join(c, 'cuda_bf16.h'))) return c;
  return null;
}

export function splitPathList(v: string | undefined): string[] {
  return (v ?? '').split(':').map((s) => s.trim()).filter((s) => s.length > 0);
}
