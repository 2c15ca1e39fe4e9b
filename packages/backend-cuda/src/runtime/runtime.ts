/**
 * Loading the CUDA stack (koffi, libcuda, NVRTC, cuBLASLt) once per process, and the
 * availability probe that `ring-linear info` and backend selection report.
 */
import { CublasLt } from './cublaslt.js';
import { Driver, type DeviceInfo } from './driver.js';
import { firstLine, importKoffi, openLibrary, type Koffi } from './ffi.js';
import { findIncludeDir, type CudaLibraryOptions } from './libs.js';
import { Nvrtc } from './nvrtc.js';

export interface CudaRuntime {
  readonly koffi: Koffi;
  readonly driver: Driver;
  readonly nvrtc: Nvrtc;
  readonly cublasLt: CublasLt;
  /** Directory with cuda_bf16.h / cuda_fp8.h handed to NVRTC (null: rely on NVRTC's built-ins). */
  readonly includeDir: string | null;
  readonly deviceCount: number;
  readonly libraries: { readonly cuda: string; readonly nvrtc: string; readonly cublasLt: string };
}

let runtimePromise: Promise<CudaRuntime> | null = null;

/** Loads every library (once); rejects with a one-line reason naming what is missing. */
export function loadRuntime(options: CudaLibraryOptions = {}): Promise<CudaRuntime> {
  runtimePromise ??= (async () => {
    const koffi = await importKoffi();
    const cudaLib = openLibrary(koffi, 'cuda', options);
    const driver = new Driver(koffi, cudaLib);
    driver.init();
    const deviceCount = driver.deviceCount();
    if (deviceCount < 1) throw new Error('the driver reports no CUDA device');
    let nvrtcLib;
    try {
      nvrtcLib = openLibrary(koffi, 'nvrtc', options);
    } catch (err) {
      throw new Error(`${firstLine(err)} (NVRTC compiles the kernels; install the CUDA toolkit or point RING_LINEAR_CUDA_LIBS at it)`);
    }
    const nvrtc = new Nvrtc(nvrtcLib);
    const ltLib = openLibrary(koffi, 'cublasLt', options);
    const cublasLt = new CublasLt(ltLib);
    const includeDir = findIncludeDir(options, nvrtcLib.path);
    return {
      koffi,
      driver,
      nvrtc,
      cublasLt,
      includeDir,
      deviceCount,
      libraries: { cuda: cudaLib.path, nvrtc: nvrtcLib.path, cublasLt: ltLib.path },
    };
  })();
  runtimePromise.catch(() => {
    runtimePromise = null; // let a later call (say, with other options) try again
  });
  return runtimePromise;
}

export interface CudaAvailability {
  readonly available: boolean;
  /** Why not (one line), or a summary when available. */
  readonly reason: string;
  readonly devices?: readonly DeviceInfo[];
  readonly libraries?: CudaRuntime['libraries'];
  readonly nvrtcVersion?: string;
  readonly includeDir?: string | null;
}

/** Whether the CUDA backend can run here, and why not. Never throws. */
export async function cudaAvailability(options: CudaLibraryOptions = {}): Promise<CudaAvailability> {
  try {
    const rt = await loadRuntime(options);
    const devices = Array.from({ length: rt.deviceCount }, (_, i) => rt.driver.deviceInfo(i));
    const d0 = devices[0]!;
    return {
      available: true,
      reason: `${devices.length} device(s); device 0: ${d0.name} (sm_${d0.computeCapability.join('')}), driver ${formatCudaVersion(d0.driverVersion)}`,
      devices,
      libraries: rt.libraries,
      nvrtcVersion: rt.nvrtc.version.join('.'),
      includeDir: rt.includeDir,
    };
  } catch (err) {
    return { available: false, reason: `CUDA not available: ${firstLine(err)}` };
  }
}

/** 13000 -> "13.0". */
export function formatCudaVersion(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}
