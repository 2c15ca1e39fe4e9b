/// <reference types="@webgpu/types" />
/**
 * The WebGPU backend: one code path for browsers (navigator.gpu) and Node.js (Dawn through the
 * `webgpu` package).
 *
 * - Buffers come from a pool with size classes (powers of two up to 4 KiB, then eighths of the
 *   enclosing power of two), padded to whole u32 words so every dtype can be bound as array<u32>.
 * - Kernels record dispatches into one command encoder and compute pass; the batch is submitted
 *   on a readback, on `flush()`, or every `dispatchesPerSubmit` dispatches.
 * - Uniform parameters of all dispatches in a batch live in one arena buffer, uploaded with one
 *   writeBuffer just before the batch is submitted.
 * - Pipelines are cached by shader key; shapes and strides travel in uniforms.
 *
 * Ordering: queue.writeBuffer runs before any command buffer submitted after it, i.e. before the
 * batch still being recorded. A write to memory that a recorded-but-unsubmitted dispatch uses must
 * therefore not go through writeBuffer directly: a whole-buffer write swaps in a fresh GPU buffer,
 * a partial one is staged and copied inside the command stream.
 */
import {
  BackendError,
  type Backend,
  type BackendBuffer,
  type BackendCapabilities,
  type BackendMemoryStats,
  type DType,
} from '@ring-linear/core';
import { acquireGpu } from './gpu.js';
import { buildShader, type ShaderSpec } from './wgsl/shader.js';
import type { AccessOptions } from './wgsl/access.js';

export interface WebGpuBackendOptions {
  /** Adapter preference (default 'high-performance'). */
  readonly powerPreference?: GPUPowerPreference;
  /** Use `shader-f16` for f16 loads when the adapter has it (default true; env RING_LINEAR_WEBGPU_F16=0 disables). */
  readonly shaderF16?: boolean;
  /** Use subgroup operations when the adapter has them (default true; env RING_LINEAR_WEBGPU_SUBGROUPS=0 disables). */
  readonly subgroups?: boolean;
  /** Bytes of free buffers kept for reuse (default 512 MiB; env RING_LINEAR_WEBGPU_POOL_MB). */
  readonly poolLimitBytes?: number;
  /** Submit after this many recorded dispatches (default 64). */
  readonly dispatchesPerSubmit?: number;
  /** Options for the `webgpu` package's create() in Node (e.g. ['backend=vulkan']). */
  readonly dawnOptions?: readonly string[];
  /** Use this device instead of requesting one (the backend then does not destroy it on dispose). */
  readonly device?: GPUDevice;
}

/** Device memory of one pooled allocation. */
class Slab {
  /** Batch number of the last recorded command using it (see WebGpuBackend.batch). */
  lastBatch = -1;
  constructor(
    readonly gpu: GPUBuffer,
    readonly capacity: number,
  ) {}
}

export class WebGpuBuffer implements BackendBuffer {
  freed = false;
  constructor(
    readonly byteLength: number,
    /** @internal Swapped for a fresh slab when a whole-buffer write would race recorded work. */
    public slab: Slab,
  ) {}
  /** The GPUBuffer currently holding the data (valid until the next write or free). */
  get gpuBuffer(): GPUBuffer {
    return this.slab.gpu;
  }
}

/** A compiled pipeline with its layout. */
export interface Program {
  readonly key: string;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  readonly bindingTypes: readonly GPUBufferBindingType[];
  readonly uniformBytes: number;
}

const USAGE_STORAGE = 0x80 | 0x4 | 0x8; // STORAGE | COPY_SRC | COPY_DST
const USAGE_MAP_READ = 0x1 | 0x8; // MAP_READ | COPY_DST
const USAGE_UNIFORM = 0x40 | 0x8; // UNIFORM | COPY_DST
const MAP_MODE_READ = 0x1;
const ARENA_BYTES = 256 * 1024;

/** Pool size class of a request: >= 16 bytes, a multiple of 4. */
export function sizeClass(bytes: number): number {
  const n = Math.max(16, Math.ceil(bytes / 4) * 4);
  if (n <= 4096) return 2 ** Math.ceil(Math.log2(n));
  const p = 2 ** Math.floor(Math.log2(n));
  const step = p / 8;
  return Math.ceil(n / step) * step;
}

function envFlag(name: string): string | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
}

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  readonly capabilities: BackendCapabilities;
  readonly device: GPUDevice;
  readonly limits: GPUSupportedLimits;
  /** Subgroup builtins usable in kernels. */
  readonly hasSubgroups: boolean;
  /**
   * A CPU implementation (SwiftShader): compile and run time there grow steeply with workgroup
   * size (barriers are emulated), so kernels use smaller workgroups on it (see `workgroupSize`).
   */
  readonly isSoftware: boolean;
  readonly accessOptions: AccessOptions;

  private readonly ownsDevice: boolean;
  private gpuRef: GPU | null;
  private readonly poolLimit: number;
  private readonly dispatchesPerSubmit: number;
  private readonly pool = new Map<number, Slab[]>();
  private readonly stagingPool = new Map<number, GPUBuffer[]>();
  private readonly programs = new Map<string, Program>();
  private cachedBytes = 0;
  private liveBuffers = 0;
  private liveBytes = 0;

  /** Number of the batch being recorded; incremented on every submit. */
  private batch = 0;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private dispatches = 0;
  private readonly arena: GPUBuffer;
  private readonly arenaHost = new Uint8Array(ARENA_BYTES);
  private arenaUsed = 0;
  private readonly uniformAlign: number;
  /** Slabs to destroy once the batch that uses them has been submitted. */
  private destroyAfterSubmit: GPUBuffer[] = [];
  private errors: string[] = [];
  private lostInfo: { reason: string; message: string } | null = null;
  private disposed = false;

  constructor(device: GPUDevice, info: { description: string; features: string[]; gpu: GPU | null; ownsDevice: boolean }, options: WebGpuBackendOptions = {}) {
    this.device = device;
    this.limits = device.limits;
    this.gpuRef = info.gpu;
    this.ownsDevice = info.ownsDevice;
    const envPool = Number(envFlag('RING_LINEAR_WEBGPU_POOL_MB'));
    this.poolLimit = options.poolLimitBytes ?? (Number.isFinite(envPool) && envPool >= 0 ? envPool * 2 ** 20 : 512 * 2 ** 20);
    this.dispatchesPerSubmit = Math.max(1, options.dispatchesPerSubmit ?? 64);
    const wantF16 = options.shaderF16 ?? envFlag('RING_LINEAR_WEBGPU_F16') !== '0';
    const wantSubgroups = options.subgroups ?? envFlag('RING_LINEAR_WEBGPU_SUBGROUPS') !== '0';
    const nativeF16 = wantF16 && device.features.has('shader-f16');
    this.hasSubgroups = wantSubgroups && device.features.has('subgroups');
    this.accessOptions = { nativeF16 };
    this.isSoftware = /swiftshader|llvmpipe|lavapipe|software|cpu/i.test(info.description);
    const nativeDTypes: DType[] = ['f32', 'i32', 'u8', 'bool'];
    if (nativeF16) nativeDTypes.push('f16');
    this.capabilities = {
      device: info.description,
      nativeDTypes,
      syncRead: false,
      features: info.features,
    };
    this.uniformAlign = Math.max(16, this.limits.minUniformBufferOffsetAlignment ?? 256);
    this.arena = device.createBuffer({ size: ARENA_BYTES, usage: USAGE_UNIFORM, label: 'ring-linear uniform arena' });

    const onError = (ev: Event) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      this.errors.push(e?.message ?? String(e));
    };
    if (typeof device.addEventListener === 'function') device.addEventListener('uncapturederror', onError);
    else (device as { onuncapturederror?: unknown }).onuncapturederror = onError;
    device.lost.then((lost) => {
      if (this.disposed) return;
      this.lostInfo = { reason: String(lost.reason), message: lost.message };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Backend interface: buffers

  allocate(byteLength: number): WebGpuBuffer {
    this.alive('allocate');
    if (!Number.isInteger(byteLength) || byteLength < 0) {
      throw new BackendError(`webgpu: allocate expected a non-negative integer byte length, got ${byteLength}`);
    }
    const maxBuf = this.limits.maxBufferSize;
    if (byteLength > maxBuf) {
      throw new BackendError(
        `webgpu: cannot allocate ${byteLength} bytes: over the device's maxBufferSize of ${maxBuf} bytes (${this.capabilities.device})`,
      );
    }
    const slab = this.takeSlab(byteLength);
    this.liveBuffers++;
    this.liveBytes += byteLength;
    return new WebGpuBuffer(byteLength, slab);
  }

  write(buffer: BackendBuffer, data: ArrayBufferView, byteOffset = 0): void {
    this.alive('write');
    const b = this.own(buffer, 'write');
    const src = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const n = src.byteLength;
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset + n > b.byteLength) {
      throw new BackendError(`webgpu: write of ${n} bytes at offset ${byteOffset} overflows a ${b.byteLength}-byte buffer`);
    }
    if (n === 0) return;
    const dirty = b.slab.lastBatch === this.batch;
    if (dirty && byteOffset === 0 && n === b.byteLength) {
      // Recorded work still uses the old slab: give this handle a fresh one.
      const old = b.slab;
      b.slab = this.takeSlab(b.byteLength, true);
      this.releaseSlab(old);
    } else if (dirty || byteOffset % 4 !== 0) {
      this.stagedWrite(b, src, byteOffset);
      return;
    }
    this.device.queue.writeBuffer(b.slab.gpu, byteOffset, padTo4(src), 0);
  }

  async read(buffer: BackendBuffer, byteOffset = 0, byteLength?: number): Promise<Uint8Array> {
    this.alive('read');
    const b = this.own(buffer, 'read');
    const n = byteLength ?? b.byteLength - byteOffset;
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || !Number.isInteger(n) || n < 0 || byteOffset + n > b.byteLength) {
      throw new BackendError(`webgpu: read of ${n} bytes at offset ${byteOffset} from a ${b.byteLength}-byte buffer is out of range`);
    }
    if (n === 0) {
      this.flush();
      await this.checkErrors('read');
      return new Uint8Array(0);
    }
    const start = byteOffset & ~3;
    const end = Math.ceil((byteOffset + n) / 4) * 4;
    const size = end - start;
    const cls = sizeClass(size);
    const staging = this.stagingPool.get(cls)?.pop() ?? this.device.createBuffer({ size: cls, usage: USAGE_MAP_READ, label: 'ring-linear readback' });
    const enc = this.ensureEncoder();
    this.endPass();
    enc.copyBufferToBuffer(b.slab.gpu, start, staging, 0, size);
    b.slab.lastBatch = this.batch;
    this.flush();
    try {
      await staging.mapAsync(MAP_MODE_READ, 0, size);
    } catch (err) {
      this.throwIfLost('read');
      throw new BackendError(`webgpu: readback failed: ${(err as Error).message}`);
    }
    const out = new Uint8Array(n);
    out.set(new Uint8Array(staging.getMappedRange(0, size), byteOffset - start, n));
    staging.unmap();
    let list = this.stagingPool.get(cls);
    if (!list) this.stagingPool.set(cls, (list = []));
    if (list.length < 4) list.push(staging);
    else staging.destroy();
    await this.checkErrors('read');
    return out;
  }

  copy(src: BackendBuffer, srcOffset: number, dst: BackendBuffer, dstOffset: number, byteLength: number): void {
    this.alive('copy');
    const s = this.own(src, 'copy');
    const d = this.own(dst, 'copy');
    if (srcOffset < 0 || dstOffset < 0 || srcOffset + byteLength > s.byteLength || dstOffset + byteLength > d.byteLength) {
      throw new BackendError(
        `webgpu: copy of ${byteLength} bytes from offset ${srcOffset} (of ${s.byteLength}) to offset ${dstOffset} (of ${d.byteLength}) is out of range`,
      );
    }
    if (byteLength === 0) return;
    if (srcOffset % 4 === 0 && dstOffset % 4 === 0 && byteLength % 4 === 0) {
      const enc = this.ensureEncoder();
      this.endPass();
      enc.copyBufferToBuffer(s.slab.gpu, srcOffset, d.slab.gpu, dstOffset, byteLength);
      s.slab.lastBatch = d.slab.lastBatch = this.batch;
      this.countDispatch();
      return;
    }
    this.copyBytesKernel(s.slab, srcOffset, d.slab, dstOffset, byteLength);
  }

  /** Copies the first `byteLength` bytes (rounded up to whole words: buffers are word-padded). */
  copyWords(src: BackendBuffer, dst: BackendBuffer, byteLength: number): void {
    this.alive('copy');
    const s = this.own(src, 'copy');
    const d = this.own(dst, 'copy');
    const n = Math.ceil(byteLength / 4) * 4;
    if (n === 0) return;
    const enc = this.ensureEncoder();
    this.endPass();
    enc.copyBufferToBuffer(s.slab.gpu, 0, d.slab.gpu, 0, n);
    s.slab.lastBatch = d.slab.lastBatch = this.batch;
    this.countDispatch();
  }

  free(buffer: BackendBuffer): void {
    const b = this.own(buffer, 'free');
    if (b.freed) throw new BackendError('webgpu: free of a freed buffer');
    b.freed = true;
    this.liveBuffers--;
    this.liveBytes -= b.byteLength;
    if (this.disposed) return;
    this.releaseSlab(b.slab);
  }

  flush(): void {
    if (this.disposed || !this.encoder) return;
    this.endPass();
    if (this.arenaUsed > 0) {
      this.device.queue.writeBuffer(this.arena, 0, this.arenaHost, 0, this.arenaUsed);
      this.arenaUsed = 0;
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.dispatches = 0;
    this.batch++;
    for (const g of this.destroyAfterSubmit) g.destroy();
    this.destroyAfterSubmit = [];
  }

  async synchronize(): Promise<void> {
    this.alive('synchronize');
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await this.checkErrors('synchronize');
  }

  memoryStats(): BackendMemoryStats {
    return { buffers: this.liveBuffers, bytesInUse: this.liveBytes, bytesCached: this.cachedBytes };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    try {
      if (!this.lostInfo) {
        this.flush();
        await this.device.queue.onSubmittedWorkDone();
      }
    } catch {
      // the device is going away anyway
    }
    this.disposed = true;
    for (const list of this.pool.values()) for (const s of list) s.gpu.destroy();
    for (const list of this.stagingPool.values()) for (const g of list) g.destroy();
    this.pool.clear();
    this.stagingPool.clear();
    this.programs.clear();
    this.cachedBytes = 0;
    this.arena.destroy();
    // Destroying the device and dropping the GPU object lets Node's event loop end (Dawn keeps
    // the process alive while an instance with a live device exists).
    if (this.ownsDevice) this.device.destroy();
    this.gpuRef = null;
  }

  // -------------------------------------------------------------------------------------------
  // Kernel API

  /** The compiled program for `key`, building it on first use. */
  program(key: string, spec: () => ShaderSpec): Program {
    let p = this.programs.get(key);
    if (p) return p;
    this.alive('compile');
    const built = buildShader(spec(), this.accessOptions);
    const module = this.device.createShaderModule({ code: built.code, label: key });
    const layout = this.device.createBindGroupLayout({
      label: key,
      entries: built.bindingTypes.map((type, binding) => ({ binding, visibility: 0x4 /* COMPUTE */, buffer: { type } })),
    });
    const pipeline = this.device.createComputePipeline({
      label: key,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    p = { key, pipeline, layout, bindingTypes: built.bindingTypes, uniformBytes: built.uniformBytes };
    this.programs.set(key, p);
    return p;
  }

  /** The 1-D workgroup size for kernels that would like `preferred` invocations (64 on CPU adapters). */
  workgroupSize(preferred: number): number {
    return this.isSoftware ? Math.min(preferred, 64) : preferred;
  }

  /** WGSL source a program key would compile to (debugging). */
  shaderSource(spec: ShaderSpec): string {
    return buildShader(spec, this.accessOptions).code;
  }

  /**
   * Records one dispatch. `buffers` follow the program's tensor bindings; `uniforms` fill its
   * uniform block; `grid` is the workgroup count (each entry <= maxComputeWorkgroupsPerDimension).
   */
  dispatch(
    prog: Program,
    buffers: readonly BackendBuffer[],
    uniforms: Uint32Array | null,
    grid: readonly [number, number?, number?],
    label = prog.key,
  ): void {
    this.alive(label);
    const gx = grid[0];
    const gy = grid[1] ?? 1;
    const gz = grid[2] ?? 1;
    if (gx === 0 || gy === 0 || gz === 0) return;
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension;
    if (gx > maxWg || gy > maxWg || gz > maxWg) {
      throw new BackendError(`webgpu: ${label}: dispatch of [${gx}, ${gy}, ${gz}] workgroups exceeds maxComputeWorkgroupsPerDimension ${maxWg}`);
    }
    const nTensors = prog.bindingTypes.length - (prog.uniformBytes > 0 ? 1 : 0);
    if (buffers.length !== nTensors) throw new BackendError(`webgpu: ${label}: expected ${nTensors} buffers, got ${buffers.length}`);
    const maxBind = this.limits.maxStorageBufferBindingSize;
    const entries: GPUBindGroupEntry[] = [];
    for (let i = 0; i < nTensors; i++) {
      const b = this.own(buffers[i]!, label);
      const size = Math.max(4, Math.ceil(b.byteLength / 4) * 4);
      if (size > maxBind) {
        throw new BackendError(
          `webgpu: ${label}: a ${b.byteLength}-byte tensor exceeds the device's maxStorageBufferBindingSize of ${maxBind} bytes (${this.capabilities.device})`,
        );
      }
      entries.push({ binding: i, resource: { buffer: b.slab.gpu, offset: 0, size } });
    }
    if (prog.uniformBytes > 0) {
      if (this.arenaUsed + prog.uniformBytes > ARENA_BYTES) this.flush();
      const off = this.arenaUsed;
      if (uniforms) {
        const bytes = new Uint8Array(uniforms.buffer, uniforms.byteOffset, Math.min(uniforms.byteLength, prog.uniformBytes));
        this.arenaHost.set(bytes, off);
        if (bytes.byteLength < prog.uniformBytes) this.arenaHost.fill(0, off + bytes.byteLength, off + prog.uniformBytes);
      } else this.arenaHost.fill(0, off, off + prog.uniformBytes);
      this.arenaUsed = Math.ceil((off + prog.uniformBytes) / this.uniformAlign) * this.uniformAlign;
      entries.push({ binding: nTensors, resource: { buffer: this.arena, offset: off, size: prog.uniformBytes } });
    }
    const bindGroup = this.device.createBindGroup({ layout: prog.layout, entries });
    const pass = this.ensurePass();
    pass.setPipeline(prog.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(gx, gy, gz);
    for (let i = 0; i < nTensors; i++) (buffers[i] as WebGpuBuffer).slab.lastBatch = this.batch;
    this.countDispatch();
  }

  /** A temporary device buffer for a kernel (free it with `free` after the dispatches using it). */
  scratch(byteLength: number): WebGpuBuffer {
    return this.allocate(byteLength);
  }

  // -------------------------------------------------------------------------------------------
  // Internals

  private countDispatch(): void {
    if (++this.dispatches >= this.dispatchesPerSubmit) this.flush();
  }

  private ensureEncoder(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder({ label: 'ring-linear batch' }));
  }

  private ensurePass(): GPUComputePassEncoder {
    return (this.pass ??= this.ensureEncoder().beginComputePass());
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** A slab of at least `byteLength` bytes; `clean`: not used by the batch being recorded. */
  private takeSlab(byteLength: number, clean = false): Slab {
    let cls = sizeClass(byteLength);
    if (cls > this.limits.maxBufferSize) cls = Math.max(16, Math.ceil(byteLength / 4) * 4);
    const list = this.pool.get(cls);
    if (list && list.length > 0) {
      const idx = clean ? list.findIndex((s) => s.lastBatch !== this.batch) : list.length - 1;
      if (idx >= 0) {
        const slab = list.splice(idx, 1)[0]!;
        this.cachedBytes -= slab.capacity;
        return slab;
      }
    }
    this.device.pushErrorScope('out-of-memory');
    const gpu = this.device.createBuffer({ size: cls, usage: USAGE_STORAGE });
    this.device.popErrorScope().then((err) => {
      if (err) this.errors.push(`out of device memory allocating ${cls} bytes: ${err.message}`);
    }, () => undefined);
    return new Slab(gpu, cls);
  }

  private releaseSlab(slab: Slab): void {
    if (this.cachedBytes + slab.capacity > this.poolLimit) {
      if (slab.lastBatch === this.batch) this.destroyAfterSubmit.push(slab.gpu);
      else slab.gpu.destroy();
      return;
    }
    let list = this.pool.get(slab.capacity);
    if (!list) this.pool.set(slab.capacity, (list = []));
    list.push(slab);
    this.cachedBytes += slab.capacity;
  }

  /** A write ordered inside the command stream: upload to a clean slab, then copy. */
  private stagedWrite(b: WebGpuBuffer, src: Uint8Array, byteOffset: number): void {
    const tmp = this.takeSlab(src.byteLength, true);
    this.device.queue.writeBuffer(tmp.gpu, 0, padTo4(src), 0);
    if (byteOffset % 4 === 0 && src.byteLength % 4 === 0) {
      const enc = this.ensureEncoder();
      this.endPass();
      enc.copyBufferToBuffer(tmp.gpu, 0, b.slab.gpu, byteOffset, src.byteLength);
      tmp.lastBatch = b.slab.lastBatch = this.batch;
      this.countDispatch();
    } else {
      this.copyBytesKernel(tmp, 0, b.slab, byteOffset, src.byteLength);
    }
    tmp.lastBatch = this.batch;
    this.releaseSlab(tmp);
  }

  /** Byte-granular copy for unaligned offsets or lengths (atomic word updates at the edges). */
  private copyBytesKernel(src: Slab, srcOffset: number, dst: Slab, dstOffset: number, n: number): void {
    const p = this.byteCopyProgram();
    const firstWord = Math.floor(dstOffset / 4);
    const lastWord = Math.floor((dstOffset + n - 1) / 4);
    const words = lastWord - firstWord + 1;
    const u = new Uint32Array([srcOffset, dstOffset, n, firstWord, words]);
    const off = this.arenaSlot(p.uniformBytes, u);
    const bindGroup = this.device.createBindGroup({
      layout: p.layout,
      entries: [
        { binding: 0, resource: { buffer: src.gpu } },
        { binding: 1, resource: { buffer: dst.gpu } },
        { binding: 2, resource: { buffer: this.arena, offset: off, size: p.uniformBytes } },
      ],
    });
    const pass = this.ensurePass();
    pass.setPipeline(p.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(Math.ceil(words / 64));
    src.lastBatch = dst.lastBatch = this.batch;
    this.countDispatch();
  }

  private byteCopyProgram(): Program {
    const key = 'copy_bytes_unaligned';
    let p = this.programs.get(key);
    if (p) return p;
    const code = /* wgsl */ `
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> U: array<vec4<u32>, 2>;
fn src_byte(i: u32) -> u32 { return (src[i >> 2u] >> ((i & 3u) << 3u)) & 0xffu; }
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let srcOff = U[0].x; let dstOff = U[0].y; let n = U[0].z; let firstWord = U[0].w; let words = U[1].x;
  if (gid.x >= words) { return; }
  let w = firstWord + gid.x;
  var mask = 0u;
  var val = 0u;
  for (var k = 0u; k < 4u; k++) {
    let d = w * 4u + k;
    if (d >= dstOff && d < dstOff + n) {
      mask |= 0xffu << (k * 8u);
      val |= src_byte(srcOff + (d - dstOff)) << (k * 8u);
    }
  }
  if (mask == 0xffffffffu) { atomicStore(&dst[w], val); }
  else { atomicAnd(&dst[w], ~mask); atomicOr(&dst[w], val); }
}`;
    const module = this.device.createShaderModule({ code, label: key });
    const layout = this.device.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: 0x4, buffer: { type: 'read-only-storage' } },
        { binding: 1, visibility: 0x4, buffer: { type: 'storage' } },
        { binding: 2, visibility: 0x4, buffer: { type: 'uniform' } },
      ],
    });
    const pipeline = this.device.createComputePipeline({
      label: key,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    p = { key, pipeline, layout, bindingTypes: ['read-only-storage', 'storage', 'uniform'], uniformBytes: 32 };
    this.programs.set(key, p);
    return p;
  }

  private arenaSlot(bytes: number, data: Uint32Array): number {
    if (this.arenaUsed + bytes > ARENA_BYTES) this.flush();
    const off = this.arenaUsed;
    this.arenaHost.fill(0, off, off + bytes);
    this.arenaHost.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), off);
    this.arenaUsed = Math.ceil((off + bytes) / this.uniformAlign) * this.uniformAlign;
    return off;
  }

  private own(buffer: BackendBuffer, what: string): WebGpuBuffer {
    if (!(buffer instanceof WebGpuBuffer)) throw new BackendError(`webgpu: ${what} got a buffer from another backend`);
    if (buffer.freed) throw new BackendError(`webgpu: ${what} of a freed buffer`);
    return buffer;
  }

  private alive(what: string): void {
    if (this.disposed) throw new BackendError(`webgpu: ${what}: the backend was disposed`);
    this.throwIfLost(what);
  }

  private throwIfLost(what: string): void {
    if (this.lostInfo) {
      throw new BackendError(`webgpu: ${what}: the device was lost (${this.lostInfo.reason}): ${this.lostInfo.message || 'no message'}`);
    }
  }

  /** Surfaces errors the device reported asynchronously (validation, out of memory). */
  private async checkErrors(what: string): Promise<void> {
    this.throwIfLost(what);
    if (this.errors.length) {
      const msgs = this.errors.splice(0);
      throw new BackendError(`webgpu: ${what}: the device reported ${msgs.length} error(s): ${msgs.slice(0, 3).join(' | ')}`);
    }
  }

  /** @internal Test hook: the GPU object this backend was created from (null after dispose). */
  get gpu(): GPU | null {
    return this.gpuRef;
  }
}

function padTo4(src: Uint8Array): Uint8Array {
  if (src.byteLength % 4 === 0 && src.byteOffset % 4 === 0) return src;
  const out = new Uint8Array(Math.ceil(src.byteLength / 4) * 4);
  out.set(src);
  return out;
}

/** Requests an adapter and device and makes the backend. Throws a clear error when there is none. */
export async function createWebGpuBackend(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  if (options.device) {
    const d = options.device;
    const feats = [...d.features] as string[];
    return new WebGpuBackend(d, { description: 'WebGPU device (given)', features: feats, gpu: null, ownsDevice: false }, options);
  }
  const provider = await acquireGpu(options.dawnOptions ?? []);
  const adapter = await provider.gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) {
    const hint = provider.source.startsWith('webgpu')
      ? ' (Node.js/Dawn: needs a Vulkan driver and loader; on Linux without a GPU install Debian\'s chromium package, whose SwiftShader is used automatically)'
      : ' (the browser may have WebGPU disabled or blocklisted for this GPU)';
    const notes = provider.notes.length ? `; ${provider.notes.join('; ')}` : '';
    throw new BackendError(`webgpu: no WebGPU adapter is available from ${provider.source}${hint}${notes}`);
  }
  const wanted: GPUFeatureName[] = [];
  for (const f of ['shader-f16', 'subgroups', 'timestamp-query'] as GPUFeatureName[]) if (adapter.features.has(f)) wanted.push(f);
  const al = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: al.maxStorageBufferBindingSize,
    maxBufferSize: al.maxBufferSize,
    maxComputeWorkgroupStorageSize: al.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: al.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: al.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: al.maxComputeWorkgroupSizeY,
    maxStorageBuffersPerShaderStage: al.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupsPerDimension: al.maxComputeWorkgroupsPerDimension,
  };
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures: wanted, requiredLimits });
  } catch (err) {
    throw new BackendError(`webgpu: the adapter refused a device: ${(err as Error).message}`);
  }
  const info = adapter.info;
  const description =
    [info?.description, info?.vendor, info?.architecture, info?.device].filter((s) => s && String(s).length > 0).join(' / ') || 'WebGPU adapter';
  return new WebGpuBackend(
    device,
    { description: `${description} via ${provider.source}`, features: [...device.features] as string[], gpu: provider.gpu, ownsDevice: true },
    options,
  );
}
