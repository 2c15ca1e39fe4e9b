/**
 * Kernel argument marshalling. cuLaunchKernel takes `void **kernelParams`: an array of pointers,
 * one per parameter, each to that argument's bytes. Per kernel signature we allocate ONE native
 * block (koffi.alloc, never moves) holding the argument slots and, after them, the pointer array,
 * which is filled once. A launch then only writes the values into the slots through a DataView
 * over that block (koffi.view) and passes the block's pointer array; no per-launch allocation or
 * FFI conversion of arguments happens. The driver copies the values during the call, so the
 * block is reusable as soon as cuLaunchKernel returns.
 */

/** A by-value struct parameter: its size and alignment in bytes. */
export interface StructArg {
  readonly bytes: number;
  readonly align: number;
}
export type ArgKind = 'ptr' | 'i32' | 'u32' | 'i64' | 'f32' | 'f64' | StructArg;
/** ptr/i64: a number (exact below 2^53) or a bigint; struct: its bytes. */
export type ArgValue = number | bigint | Uint8Array;

export interface NativeBlock {
  /** Address of the block. */
  readonly ptr: bigint;
  /** The block's memory. */
  readonly view: ArrayBuffer;
}

export interface NativeMemory {
  alloc(bytes: number): NativeBlock;
  free(ptr: bigint): void;
}

const sizeOfKind = (k: ArgKind) => (typeof k === 'object' ? k.bytes : k === 'i32' || k === 'u32' || k === 'f32' ? 4 : 8);
const alignOfKind = (k: ArgKind) => (typeof k === 'object' ? k.align : sizeOfKind(k));
const TWO32 = 4294967296;

/** Offsets of each argument slot (each at least 8-aligned) and of the pointer array. */
export function argLayout(kinds: readonly ArgKind[]): { offsets: number[]; pointersAt: number; bytes: number } {
  const offsets: number[] = [];
  let at = 0;
  for (const k of kinds) {
    const align = Math.max(8, alignOfKind(k));
    at = Math.ceil(at / align) * align;
    offsets.push(at);
    at += sizeOfKind(k);
  }
  const pointersAt = Math.ceil(at / 8) * 8;
  return { offsets, pointersAt, bytes: pointersAt + 8 * kinds.length };
}

export class ArgPack {
  readonly offsets: readonly number[];
  /** The `void **kernelParams` to pass to cuLaunchKernel. */
  readonly params: bigint;
  private readonly block: NativeBlock;
  private readonly dv: DataView;
  private readonly u8: Uint8Array;

  constructor(
    readonly kinds: readonly ArgKind[],
    private readonly native: NativeMemory,
  ) {
    const layout = argLayout(kinds);
    this.offsets = layout.offsets;
    this.block = native.alloc(Math.max(8, layout.bytes));
    this.dv = new DataView(this.block.view);
    this.u8 = new Uint8Array(this.block.view);
    // The pointer array, written once: slot i's address.
    for (let i = 0; i < kinds.length; i++) {
      this.dv.setBigUint64(layout.pointersAt + 8 * i, this.block.ptr + BigInt(layout.offsets[i]!), true);
    }
    this.params = this.block.ptr + BigInt(layout.pointersAt);
  }

  /** Writes argument values into their slots. */
  set(values: readonly ArgValue[]): void {
    const kinds = this.kinds;
    if (values.length !== kinds.length) throw new Error(`kernel expects ${kinds.length} arguments, got ${values.length}`);
    const dv = this.dv;
    for (let i = 0; i < kinds.length; i++) {
      const k = kinds[i]!;
      const v = values[i]!;
      const at = this.offsets[i]!;
      switch (k) {
        case 'ptr':
        case 'i64':
          if (typeof v === 'bigint') dv.setBigInt64(at, v, true);
          else {
            // Two 32-bit halves avoid a BigInt per launch; exact for |v| < 2^53.
            const n = v as number;
            const lo = n >>> 0 === n ? n : ((n % TWO32) + TWO32) % TWO32;
            dv.setUint32(at, lo, true);
            dv.setInt32(at + 4, Math.floor(n / TWO32), true);
          }
          break;
        case 'i32':
          dv.setInt32(at, v as number, true);
          break;
        case 'u32':
          dv.setUint32(at, v as number, true);
          break;
        case 'f32':
          dv.setFloat32(at, v as number, true);
          break;
        case 'f64':
          dv.setFloat64(at, v as number, true);
          break;
        default: {
          const bytes = v as Uint8Array;
          if (bytes.byteLength !== k.bytes) throw new Error(`struct argument ${i} needs ${k.bytes} bytes, got ${bytes.byteLength}`);
          this.u8.set(bytes, at);
        }
      }
    }
  }

  /** The bytes of slot i (for tests and diagnostics). */
  slot(i: number): Uint8Array {
    return this.u8.slice(this.offsets[i]!, this.offsets[i]! + sizeOfKind(this.kinds[i]!));
  }

  dispose(): void {
    this.native.free(this.block.ptr);
  }
}

/** Parses a signature string such as "ptr,ptr,i64,struct264:8". */
export function parseSignature(sig: string): ArgKind[] {
  if (sig === '') return [];
  return sig.split(',').map((s) => {
    const m = /^struct(\d+):(\d+)$/.exec(s);
    if (m) return { bytes: Number(m[1]), align: Number(m[2]) };
    if (s === 'ptr' || s === 'i32' || s === 'u32' || s === 'i64' || s === 'f32' || s === 'f64') return s;
    throw new Error(`unknown kernel argument kind '${s}'`);
  });
}

/** Host-memory NativeMemory for tests: fake addresses, real ArrayBuffers. */
export class FakeNativeMemory implements NativeMemory {
  private next = 0x10000n;
  readonly blocks = new Map<bigint, ArrayBuffer>();
  alloc(bytes: number): NativeBlock {
    const ptr = this.next;
    this.next += BigInt(Math.ceil(bytes / 64) * 64 + 64);
    const view = new ArrayBuffer(bytes);
    this.blocks.set(ptr, view);
    return { ptr, view };
  }
  free(ptr: bigint): void {
    if (!this.blocks.delete(ptr)) throw new Error(`free of unknown block ${ptr}`);
  }
}
