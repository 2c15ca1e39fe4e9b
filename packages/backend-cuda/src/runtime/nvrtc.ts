/**
 * NVRTC: CUDA C++ source -> cubin at run time. Headers of this package are handed to NVRTC in
 * memory; the toolkit's headers (cuda_bf16.h, cuda_fp8.h) come from `-I<include dir>`.
 */
import { BackendError } from '@ring-linear/core';
import { declare, OUT, type CFunction, type OpenedLibrary } from './ffi.js';

const NVRTC_PROTOS = [
  'int nvrtcVersion(void *major, void *minor)',
  'const char *nvrtcGetErrorString(int result)',
  'int nvrtcCreateProgram(void *prog, const char *src, const char *name, int numHeaders, const char **headers, const char **includeNames)',
  'int nvrtcDestroyProgram(void *prog)',
  'int nvrtcCompileProgram(void *prog, int numOptions, const char **options)',
  'int nvrtcGetProgramLogSize(void *prog, void *size)',
  'int nvrtcGetProgramLog(void *prog, void *log)',
  'int nvrtcGetCUBINSize(void *prog, void *size)',
  'int nvrtcGetCUBIN(void *prog, void *cubin)',
  'int nvrtcGetPTXSize(void *prog, void *size)',
  'int nvrtcGetPTX(void *prog, void *ptx)',
  '?int nvrtcGetNumSupportedArchs(void *n)',
  '?int nvrtcGetSupportedArchs(void *archs)',
] as const;

type NvrtcFn =
  | 'nvrtcVersion' | 'nvrtcGetErrorString' | 'nvrtcCreateProgram' | 'nvrtcDestroyProgram' | 'nvrtcCompileProgram'
  | 'nvrtcGetProgramLogSize' | 'nvrtcGetProgramLog' | 'nvrtcGetCUBINSize' | 'nvrtcGetCUBIN' | 'nvrtcGetPTXSize'
  | 'nvrtcGetPTX' | 'nvrtcGetNumSupportedArchs' | 'nvrtcGetSupportedArchs';

export class NvrtcCompileError extends BackendError {
  constructor(
    readonly program: string,
    readonly log: string,
  ) {
    super(`NVRTC failed to compile '${program}':\n${log.trim().split('\n').slice(0, 40).join('\n')}`);
  }
}

export interface CompileRequest {
  /** Program name (shown in errors). */
  readonly name: string;
  readonly source: string;
  /** In-memory headers: include name -> contents. */
  readonly headers: Readonly<Record<string, string>>;
  readonly options: readonly string[];
  /** 'cubin' for a real architecture (sm_XX), 'ptx' for a virtual one (compute_XX). */
  readonly output: 'cubin' | 'ptx';
}

export class Nvrtc {
  readonly fn: Record<NvrtcFn, CFunction>;
  readonly version: readonly [number, number];

  constructor(readonly library: OpenedLibrary) {
    this.fn = declare<NvrtcFn>(library.handle, NVRTC_PROTOS);
    this.check('nvrtcVersion', this.fn.nvrtcVersion(OUT.i32, OUT.i32b));
    this.version = [OUT.i32[0]!, OUT.i32b[0]!];
  }

  check(what: string, r: number): void {
    if (r !== 0) throw new BackendError(`NVRTC error in ${what}: ${this.fn.nvrtcGetErrorString(r) as string} (${r})`);
  }

  /** Architectures this NVRTC can target (e.g. [75, 80, 86, 89, 90, 100, 120]); [] if unknown. */
  supportedArchs(): number[] {
    if (!this.fn.nvrtcGetNumSupportedArchs || !this.fn.nvrtcGetSupportedArchs) return [];
    this.check('nvrtcGetNumSupportedArchs', this.fn.nvrtcGetNumSupportedArchs(OUT.i32));
    const archs = new Int32Array(OUT.i32[0]!);
    this.check('nvrtcGetSupportedArchs', this.fn.nvrtcGetSupportedArchs(archs));
    return [...archs];
  }

  private create(req: CompileRequest): bigint {
    const names = Object.keys(req.headers);
    const bodies = names.map((n) => req.headers[n]!);
    const r = this.fn.nvrtcCreateProgram(OUT.u64, req.source, req.name, names.length, names.length ? bodies : null, names.length ? names : null);
    this.check('nvrtcCreateProgram', r);
    return OUT.u64[0]!;
  }

  private finish(prog: bigint, req: CompileRequest, result: number): Uint8Array {
    const holder = new BigUint64Array([prog]);
    try {
      const log = this.log(prog);
      if (result !== 0) throw new NvrtcCompileError(req.name, log || (this.fn.nvrtcGetErrorString(result) as string));
      const sizeCell = new BigUint64Array(1);
      const [sizeFn, getFn] = req.output === 'cubin' ? ['nvrtcGetCUBINSize', 'nvrtcGetCUBIN'] as const : ['nvrtcGetPTXSize', 'nvrtcGetPTX'] as const;
      this.check(sizeFn, this.fn[sizeFn](prog, sizeCell));
      const out = new Uint8Array(Number(sizeCell[0]!));
      this.check(getFn, this.fn[getFn](prog, out));
      return out;
    } finally {
      this.fn.nvrtcDestroyProgram(holder);
    }
  }

  private log(prog: bigint): string {
    const sizeCell = new BigUint64Array(1);
    if (this.fn.nvrtcGetProgramLogSize(prog, sizeCell) !== 0) return '';
    const n = Number(sizeCell[0]!);
    if (n <= 1) return '';
    const buf = Buffer.alloc(n);
    if (this.fn.nvrtcGetProgramLog(prog, buf) !== 0) return '';
    return buf.subarray(0, n - 1).toString('utf8');
  }

  /** Compiles on the calling thread. */
  compile(req: CompileRequest): Uint8Array {
    const prog = this.create(req);
    const r = this.fn.nvrtcCompileProgram(prog, req.options.length, [...req.options]) as number;
    return this.finish(prog, req, r);
  }

  /** Compiles on a koffi worker thread (NVRTC is thread-safe), so several modules build in parallel. */
  compileAsync(req: CompileRequest): Promise<Uint8Array> {
    const prog = this.create(req);
    const opts = [...req.options];
    return new Promise((resolve, reject) => {
      this.fn.nvrtcCompileProgram.async(prog, opts.length, opts, (err: unknown, r: number) => {
        if (err) {
          this.fn.nvrtcDestroyProgram(new BigUint64Array([prog]));
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        try {
          resolve(this.finish(prog, req, r));
        } catch (e) {
          reject(e);
        }
      });
    });
  }
}
