/**
 * The CUDA driver API (libcuda) through koffi: device, primary context, streams, events, memory,
 * modules, launches and graphs. Every call is checked; a failure throws CudaError naming the
 * function and CUDA's error name and text.
 */
import { BackendError } from '@ring-linear/core';
import { declare, OUT, type CFunction, type Koffi, type OpenedLibrary } from './ffi.js';

/** Opaque driver handles (CUcontext, CUstream, CUevent, CUmodule, CUfunction, CUgraph...). */
export type Handle = bigint;

export const CU_SUCCESS = 0;
export const CUDA_ERROR_NOT_READY = 600;
export const CU_STREAM_NON_BLOCKING = 1;
export const CU_EVENT_DEFAULT = 0;
export const CU_EVENT_DISABLE_TIMING = 2;
export const CU_STREAM_CAPTURE_MODE_RELAXED = 2;
export const CU_MEMHOSTALLOC_PORTABLE = 1;
export const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;

export const CU_DEVICE_ATTRIBUTE = {
  MAX_THREADS_PER_BLOCK: 1,
  MAX_SHARED_MEMORY_PER_BLOCK: 8,
  WARP_SIZE: 10,
  MULTIPROCESSOR_COUNT: 16,
  MEMORY_CLOCK_RATE: 36,
  GLOBAL_MEMORY_BUS_WIDTH: 37,
  L2_CACHE_SIZE: 38,
  COMPUTE_CAPABILITY_MAJOR: 75,
  COMPUTE_CAPABILITY_MINOR: 76,
  MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: 97,
} as const;

export class CudaError extends BackendError {
  constructor(
    readonly fn: string,
    readonly code: number,
    readonly codeName: string,
    detail: string,
  ) {
    super(`CUDA error in ${fn}: ${codeName} (${code})${detail ? `: ${detail}` : ''}`);
  }
}

const DRIVER_PROTOS = [
  'int cuInit(unsigned int flags)',
  'int cuDriverGetVersion(void *version)',
  'int cuGetErrorName(int error, _Out_ const char **str)',
  'int cuGetErrorString(int error, _Out_ const char **str)',
  'int cuDeviceGetCount(void *count)',
  'int cuDeviceGet(void *device, int ordinal)',
  'int cuDeviceGetName(void *name, int len, int device)',
  'int cuDeviceGetAttribute(void *value, int attrib, int device)',
  'int cuDeviceTotalMem_v2(void *bytes, int device)',
  'int cuDevicePrimaryCtxRetain(void *ctx, int device)',
  'int cuDevicePrimaryCtxRelease_v2(int device)',
  'int cuCtxSetCurrent(void *ctx)',
  'int cuCtxSynchronize()',
  'int cuMemGetInfo_v2(void *free, void *total)',
  'int cuStreamCreate(void *stream, unsigned int flags)',
  'int cuStreamDestroy_v2(void *stream)',
  'int cuStreamSynchronize(void *stream)',
  'int cuStreamQuery(void *stream)',
  'int cuStreamWaitEvent(void *stream, void *event, unsigned int flags)',
  'int cuEventCreate(void *event, unsigned int flags)',
  'int cuEventDestroy_v2(void *event)',
  'int cuEventRecord(void *event, void *stream)',
  'int cuEventQuery(void *event)',
  'int cuEventSynchronize(void *event)',
  '?int cuEventElapsedTime_v2(void *ms, void *start, void *end)',
  '?int cuEventElapsedTime(void *ms, void *start, void *end)',
  'int cuMemAlloc_v2(void *dptr, size_t bytes)',
  'int cuMemFree_v2(uint64_t dptr)',
  'int cuMemHostAlloc(void *pp, size_t bytes, unsigned int flags)',
  'int cuMemFreeHost(void *p)',
  'int cuMemcpyHtoDAsync_v2(uint64_t dst, const void *src, size_t bytes, void *stream)',
  'int cuMemcpyDtoHAsync_v2(void *dst, uint64_t src, size_t bytes, void *stream)',
  'int cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t bytes, void *stream)',
  'int cuMemcpy2DAsync_v2(const void *copy, void *stream)',
  'int cuMemsetD8Async(uint64_t dst, unsigned char value, size_t count, void *stream)',
  'int cuMemsetD16Async(uint64_t dst, unsigned short value, size_t count, void *stream)',
  'int cuMemsetD32Async(uint64_t dst, unsigned int value, size_t count, void *stream)',
  'int cuModuleLoadData(void *module, const void *image)',
  'int cuModuleUnload(void *module)',
  'int cuModuleGetFunction(void *fn, void *module, const char *name)',
  'int cuFuncSetAttribute(void *fn, int attrib, int value)',
  'int cuLaunchKernel(void *f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, unsigned int smem, void *stream, void *params, void *extra)',
  'int cuStreamBeginCapture_v2(void *stream, int mode)',
  'int cuStreamEndCapture(void *stream, void *graph)',
  'int cuGraphInstantiateWithFlags(void *exec, void *graph, unsigned long long flags)',
  'int cuGraphLaunch(void *exec, void *stream)',
  'int cuGraphExecDestroy(void *exec)',
  'int cuGraphDestroy(void *graph)',
] as const;

type DriverFnName =
  | 'cuInit' | 'cuDriverGetVersion' | 'cuGetErrorName' | 'cuGetErrorString' | 'cuDeviceGetCount' | 'cuDeviceGet'
  | 'cuDeviceGetName' | 'cuDeviceGetAttribute' | 'cuDeviceTotalMem' | 'cuDevicePrimaryCtxRetain'
  | 'cuDevicePrimaryCtxRelease' | 'cuCtxSetCurrent' | 'cuCtxSynchronize' | 'cuMemGetInfo' | 'cuStreamCreate'
  | 'cuStreamDestroy' | 'cuStreamSynchronize' | 'cuStreamQuery' | 'cuStreamWaitEvent' | 'cuEventCreate'
  | 'cuEventDestroy' | 'cuEventRecord' | 'cuEventQuery' | 'cuEventSynchronize' | 'cuEventElapsedTime'
  | 'cuMemAlloc' | 'cuMemFree' | 'cuMemHostAlloc' | 'cuMemFreeHost' | 'cuMemcpyHtoDAsync' | 'cuMemcpyDtoHAsync'
  | 'cuMemcpyDtoDAsync' | 'cuMemcpy2DAsync' | 'cuMemsetD8Async' | 'cuMemsetD16Async' | 'cuMemsetD32Async' | 'cuModuleLoadData'
  | 'cuModuleUnload' | 'cuModuleGetFunction' | 'cuFuncSetAttribute' | 'cuLaunchKernel' | 'cuStreamBeginCapture'
  | 'cuStreamEndCapture' | 'cuGraphInstantiateWithFlags' | 'cuGraphLaunch' | 'cuGraphExecDestroy' | 'cuGraphDestroy';

export interface DeviceInfo {
  readonly ordinal: number;
  readonly name: string;
  readonly computeCapability: readonly [number, number];
  readonly multiprocessors: number;
  readonly totalMemory: number;
  readonly maxSharedMemoryPerBlockOptin: number;
  readonly driverVersion: number;
}

const CU_MEMORYTYPE_DEVICE = 2;
/** CUDA_MEMCPY2D (128 bytes), filled per copy2DAsync call. */
const COPY2D = new Uint8Array(128);
const COPY2D_VIEW = new DataView(COPY2D.buffer);

/** A device pointer in the number form used everywhere (exact below 2^53). */
export type DevicePtr = number;

export class Driver {
  readonly fn: Record<DriverFnName, CFunction>;

  constructor(
    readonly koffi: Koffi,
    readonly library: OpenedLibrary,
  ) {
    this.fn = declare<DriverFnName>(library.handle, DRIVER_PROTOS);
  }

  /** Throws CudaError unless `r` is CUDA_SUCCESS. */
  check(fnName: string, r: number, detail = ''): void {
    if (r !== CU_SUCCESS) throw this.error(fnName, r, detail);
  }

  error(fnName: string, r: number, detail = ''): CudaError {
    const name = [null as string | null];
    const text = [null as string | null];
    try {
      this.fn.cuGetErrorName(r, name);
      this.fn.cuGetErrorString(r, text);
    } catch {
      /* keep the number */
    }
    return new CudaError(fnName, r, name[0] ?? `CUDA error ${r}`, [text[0], detail].filter(Boolean).join('; '));
  }

  init(): void {
    this.check('cuInit', this.fn.cuInit(0));
  }

  driverVersion(): number {
    this.check('cuDriverGetVersion', this.fn.cuDriverGetVersion(OUT.i32));
    return OUT.i32[0]!;
  }

  deviceCount(): number {
    this.check('cuDeviceGetCount', this.fn.cuDeviceGetCount(OUT.i32));
    return OUT.i32[0]!;
  }

  device(ordinal: number): number {
    this.check('cuDeviceGet', this.fn.cuDeviceGet(OUT.i32, ordinal));
    return OUT.i32[0]!;
  }

  attribute(dev: number, attr: number): number {
    this.check('cuDeviceGetAttribute', this.fn.cuDeviceGetAttribute(OUT.i32, attr, dev));
    return OUT.i32[0]!;
  }

  deviceInfo(ordinal: number): DeviceInfo {
    const dev = this.device(ordinal);
    const nameBuf = Buffer.alloc(256);
    this.check('cuDeviceGetName', this.fn.cuDeviceGetName(nameBuf, 256, dev));
    const name = nameBuf.subarray(0, Math.max(0, nameBuf.indexOf(0))).toString('utf8');
    this.check('cuDeviceTotalMem', this.fn.cuDeviceTotalMem(OUT.u64, dev));
    return {
      ordinal,
      name,
      computeCapability: [this.attribute(dev, CU_DEVICE_ATTRIBUTE.COMPUTE_CAPABILITY_MAJOR), this.attribute(dev, CU_DEVICE_ATTRIBUTE.COMPUTE_CAPABILITY_MINOR)],
      multiprocessors: this.attribute(dev, CU_DEVICE_ATTRIBUTE.MULTIPROCESSOR_COUNT),
      totalMemory: Number(OUT.u64[0]!),
      maxSharedMemoryPerBlockOptin: this.attribute(dev, CU_DEVICE_ATTRIBUTE.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
      driverVersion: this.driverVersion(),
    };
  }

  retainPrimaryContext(dev: number): Handle {
    this.check('cuDevicePrimaryCtxRetain', this.fn.cuDevicePrimaryCtxRetain(OUT.u64, dev));
    return OUT.u64[0]!;
  }

  releasePrimaryContext(dev: number): void {
    this.check('cuDevicePrimaryCtxRelease', this.fn.cuDevicePrimaryCtxRelease(dev));
  }

  setCurrent(ctx: Handle): void {
    this.check('cuCtxSetCurrent', this.fn.cuCtxSetCurrent(ctx));
  }

  memInfo(): { free: number; total: number } {
    this.check('cuMemGetInfo', this.fn.cuMemGetInfo(OUT.u64, OUT.u64b));
    return { free: Number(OUT.u64[0]!), total: Number(OUT.u64b[0]!) };
  }

  createStream(): Handle {
    this.check('cuStreamCreate', this.fn.cuStreamCreate(OUT.u64, CU_STREAM_NON_BLOCKING));
    return OUT.u64[0]!;
  }

  destroyStream(s: Handle): void {
    this.check('cuStreamDestroy', this.fn.cuStreamDestroy(s));
  }

  streamSynchronize(s: Handle): void {
    this.check('cuStreamSynchronize', this.fn.cuStreamSynchronize(s));
  }

  createEvent(timing = false): Handle {
    this.check('cuEventCreate', this.fn.cuEventCreate(OUT.u64, timing ? CU_EVENT_DEFAULT : CU_EVENT_DISABLE_TIMING));
    return OUT.u64[0]!;
  }

  destroyEvent(e: Handle): void {
    this.check('cuEventDestroy', this.fn.cuEventDestroy(e));
  }

  recordEvent(e: Handle, s: Handle): void {
    this.check('cuEventRecord', this.fn.cuEventRecord(e, s));
  }

  /** true when the event has completed, false while pending. */
  queryEvent(e: Handle): boolean {
    const r = this.fn.cuEventQuery(e) as number;
    if (r === CUDA_ERROR_NOT_READY) return false;
    this.check('cuEventQuery', r);
    return true;
  }

  eventSynchronize(e: Handle): void {
    this.check('cuEventSynchronize', this.fn.cuEventSynchronize(e));
  }

  streamWaitEvent(s: Handle, e: Handle): void {
    this.check('cuStreamWaitEvent', this.fn.cuStreamWaitEvent(s, e, 0));
  }

  elapsedMs(start: Handle, end: Handle): number {
    this.check('cuEventElapsedTime', this.fn.cuEventElapsedTime(OUT.f32, start, end));
    return OUT.f32[0]!;
  }

  memAlloc(bytes: number): DevicePtr {
    const r = this.fn.cuMemAlloc(OUT.u64, bytes) as number;
    if (r !== CU_SUCCESS) throw this.error('cuMemAlloc', r, `${bytes} bytes`);
    return Number(OUT.u64[0]!);
  }

  memFree(ptr: DevicePtr): void {
    this.check('cuMemFree', this.fn.cuMemFree(ptr));
  }

  /** Page-locked host memory: returns its address and an ArrayBuffer over it (koffi.view). */
  hostAlloc(bytes: number): { ptr: bigint; view: ArrayBuffer } {
    this.check('cuMemHostAlloc', this.fn.cuMemHostAlloc(OUT.u64, bytes, CU_MEMHOSTALLOC_PORTABLE), `${bytes} bytes`);
    const ptr = OUT.u64[0]!;
    return { ptr, view: this.koffi.view(ptr, bytes) };
  }

  hostFree(ptr: bigint): void {
    this.check('cuMemFreeHost', this.fn.cuMemFreeHost(ptr));
  }

  copyHtoDAsync(dst: DevicePtr, src: ArrayBufferView | bigint, bytes: number, s: Handle): void {
    this.check('cuMemcpyHtoDAsync', this.fn.cuMemcpyHtoDAsync(dst, src, bytes, s));
  }

  copyDtoHAsync(dst: ArrayBufferView | bigint, src: DevicePtr, bytes: number, s: Handle): void {
    this.check('cuMemcpyDtoHAsync', this.fn.cuMemcpyDtoHAsync(dst, src, bytes, s));
  }

  copyDtoDAsync(dst: DevicePtr, src: DevicePtr, bytes: number, s: Handle): void {
    this.check('cuMemcpyDtoDAsync', this.fn.cuMemcpyDtoDAsync(dst, src, bytes, s));
  }

  /**
   * A pitched device-to-device copy: `height` rows of `width` bytes (cuMemcpy2DAsync). The
   * CUDA_MEMCPY2D struct (16 fields of 8 bytes; the memory-type enums padded) is filled in a
   * reused buffer: the call reads it before returning.
   */
  copy2DAsync(dst: DevicePtr, dstPitch: number, src: DevicePtr, srcPitch: number, width: number, height: number, s: Handle): void {
    const v = COPY2D_VIEW;
    new Uint8Array(COPY2D.buffer).fill(0);
    v.setUint32(16, CU_MEMORYTYPE_DEVICE, true); // srcMemoryType
    v.setBigUint64(32, BigInt(src), true); // srcDevice
    v.setBigUint64(48, BigInt(srcPitch), true);
    v.setUint32(72, CU_MEMORYTYPE_DEVICE, true); // dstMemoryType
    v.setBigUint64(88, BigInt(dst), true); // dstDevice
    v.setBigUint64(104, BigInt(dstPitch), true);
    v.setBigUint64(112, BigInt(width), true);
    v.setBigUint64(120, BigInt(height), true);
    this.check('cuMemcpy2DAsync', this.fn.cuMemcpy2DAsync(COPY2D, s));
  }

  /** Fills `count` elements of `width` bytes (1, 2 or 4) with a raw pattern. */
  memset(dst: DevicePtr, pattern: number, width: 1 | 2 | 4, count: number, s: Handle): void {
    if (width === 1) this.check('cuMemsetD8Async', this.fn.cuMemsetD8Async(dst, pattern & 0xff, count, s));
    else if (width === 2) this.check('cuMemsetD16Async', this.fn.cuMemsetD16Async(dst, pattern & 0xffff, count, s));
    else this.check('cuMemsetD32Async', this.fn.cuMemsetD32Async(dst, pattern >>> 0, count, s));
  }

  loadModule(image: Uint8Array): Handle {
    this.check('cuModuleLoadData', this.fn.cuModuleLoadData(OUT.u64, image));
    return OUT.u64[0]!;
  }

  unloadModule(m: Handle): void {
    this.check('cuModuleUnload', this.fn.cuModuleUnload(m));
  }

  getFunction(m: Handle, name: string): Handle {
    const r = this.fn.cuModuleGetFunction(OUT.u64, m, name) as number;
    if (r !== CU_SUCCESS) throw this.error('cuModuleGetFunction', r, `kernel '${name}'`);
    return OUT.u64[0]!;
  }

  setMaxDynamicShared(f: Handle, bytes: number): void {
    this.check('cuFuncSetAttribute', this.fn.cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes));
  }

  beginCapture(s: Handle): void {
    this.check('cuStreamBeginCapture', this.fn.cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_RELAXED));
  }

  endCapture(s: Handle): Handle {
    this.check('cuStreamEndCapture', this.fn.cuStreamEndCapture(s, OUT.u64));
    return OUT.u64[0]!;
  }

  instantiateGraph(g: Handle): Handle {
    this.check('cuGraphInstantiate', this.fn.cuGraphInstantiateWithFlags(OUT.u64, g, 0));
    return OUT.u64[0]!;
  }

  launchGraph(exec: Handle, s: Handle): void {
    this.check('cuGraphLaunch', this.fn.cuGraphLaunch(exec, s));
  }

  destroyGraph(g: Handle, exec: Handle | null): void {
    if (exec !== null) this.check('cuGraphExecDestroy', this.fn.cuGraphExecDestroy(exec));
    this.check('cuGraphDestroy', this.fn.cuGraphDestroy(g));
  }
}
