/**
 * The GEMM's macro-kernel as a small WebAssembly module using 128-bit SIMD (two float64 lanes),
 * assembled here byte by byte (no toolchain at build time; ~500 bytes).
 *
 * What it computes (the same thing as the JavaScript macro-kernel in gemm.ts, bit for bit):
 * for every 4 x 4 tile of an mc x nc block,
 *   ACC[i][j] = ((ACC[i][j] + A[i,0] B[0,j]) + A[i,1] B[1,j]) + ... + A[i,kc-1] B[kc-1,j]
 * over the packed panels, each step one IEEE float64 multiply and one add (WebAssembly never fuses
 * them into an FMA), in k order. Each lane of an f64x2 operation is exactly the scalar operation,
 * so a lane's sum is the scalar sum: the same bits as the JavaScript path and the vector paths.
 *
 * Memory layout (the module's own memory, fixed size, never grown, so typed-array views on it stay
 * valid): PACK_A at 0 (mcMax x kcMax doubles: MR-tall micro-panels, k-major, element (k, i) of a
 * panel at k*MR + i), PACK_B after it (kcMax x ncMax doubles: NR-wide micro-panels, (k, j) at
 * k*NR + j), then ACC (mcMax x ncMax doubles, row stride ncMax).
 *
 * Export `macro(mc, nc, kc, fresh)`: mc and nc must be multiples of 4 (the packers zero-pad), kc >= 1;
 * fresh = 1 starts every sum from +0 (ACC is only written), fresh = 0 continues from ACC.
 * The tile loop runs j (B micro-panel, L1-resident) outside i, as gemm.ts does.
 *
 * Tile 4 x 4 = 8 v128 accumulators + 2 B vectors + 1 splatted A value: fits x86-64's 16 XMM
 * registers. Measured on the shared EPYC (512^3 and training shapes): 4 x 4 ~11 GFLOP/s, 2 x 4 ~8,
 * 6 x 4 ~7 (spills); the scalar JavaScript kernel ~3.5-4.
 */

/**
 * The part of the WebAssembly JS API used here (ES2022 lib and @types/node do not declare it; the
 * global exists in every runtime this package targets, and its absence is handled below).
 */
declare const WebAssembly: {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
} | undefined;

interface WasmMemory {
  readonly buffer: ArrayBuffer;
}

export interface WasmMacroKernel {
  /**
   * Runs the tiles of an mc x nc block (multiples of 4) over kc packed steps; with `fresh` = 1 the
   * sums start from 0 instead of from ACC (the first K block: ACC need not be zeroed first).
   */
  readonly macro: (mc: number, nc: number, kc: number, fresh: number) => void;
  /** The module's memory; the views below are on it. */
  readonly memory: WasmMemory;
  readonly packA: Float64Array;
  readonly packB: Float64Array;
  readonly acc: Float64Array;
}

/** Micro-tile rows and columns of the WebAssembly kernel. */
export const WASM_MR = 4;
export const WASM_NR = 4;

// Encoding helpers (WebAssembly binary format, core spec §5 and the SIMD proposal's opcodes).
const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
};
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

const I32 = 0x7f;
const V128 = 0x7b;
const localGet = (i: number) => [0x20, ...uleb(i)];
const localSet = (i: number) => [0x21, ...uleb(i)];
const localTee = (i: number) => [0x22, ...uleb(i)];
const i32Const = (v: number) => [0x41, ...sleb(v)];
const I32_ADD = [0x6a];
const I32_MUL = [0x6c];
const I32_LT_U = [0x49];
const I32_GE_U = [0x4f];
const IF_VOID = [0x04, 0x40];
const ELSE = [0x05];
/** v128.const with 16 zero bytes: +0.0 in both f64 lanes. */
const V128_ZERO = [0xfd, ...uleb(0x0c), ...new Array<number>(16).fill(0)];
const BLOCK = [0x02, 0x40];
const LOOP = [0x03, 0x40];
const END = [0x0b];
const br = (depth: number) => [0x0c, ...uleb(depth)];
const brIf = (depth: number) => [0x0d, ...uleb(depth)];
/** SIMD instructions: prefix 0xfd, LEB128 opcode, memarg (log2 alignment, offset). */
const v128Load = (offset: number) => [0xfd, ...uleb(0x00), 4, ...uleb(offset)];
const v128Store = (offset: number) => [0xfd, ...uleb(0x0b), 4, ...uleb(offset)];
const v128Load64Splat = (offset: number) => [0xfd, ...uleb(0x0a), 3, ...uleb(offset)];
const F64X2_ADD = [0xfd, ...uleb(0xf0)];
const F64X2_MUL = [0xfd, ...uleb(0xf2)];

/** The module's bytes for given block sizes (mcMax, ncMax multiples of 4). */
export function macroKernelModule(mcMax: number, kcMax: number, ncMax: number): { bytes: Uint8Array; offsets: { a: number; b: number; acc: number }; pages: number } {
  const MR = WASM_MR;
  const NR = WASM_NR;
  const aOff = 0;
  const bOff = aOff + mcMax * kcMax * 8;
  const accOff = bOff + kcMax * ncMax * 8;
  const pages = Math.ceil((accOff + mcMax * ncMax * 8) / 65536);

  // Locals: params mc, nc, kc, fresh; then i32 j, i, pa, pb, paPanel, pbPanel, paEnd, accRow,
  // panelBytes; then v128 accumulators c[r][h] (r < MR, h < 2: columns 2h, 2h+1), a, b0, b1.
  const MC_ = 0, NC_ = 1, KC_ = 2, FRESH = 3;
  const J = 4, I = 5, PA = 6, PB = 7, PA_PANEL = 8, PB_PANEL = 9, PA_END = 10, ACC_ROW = 11, PANEL = 12;
  const i32Locals = 9;
  const C = (r: number, h: number) => 13 + r * 2 + h;
  const A = 13 + MR * 2;
  const B0 = A + 1;
  const B1 = A + 2;
  const v128Locals = MR * 2 + 3;

  const code: number[] = [];
  const emit = (...parts: number[][]) => {
    for (const p of parts) code.push(...p);
  };
  // One panel (A: kc*MR doubles, B: kc*NR doubles) in bytes; MR = NR so one value serves both.
  emit(localGet(KC_), i32Const(MR * 8), I32_MUL, localSet(PANEL));
  emit(i32Const(0), localSet(J), i32Const(bOff), localSet(PB_PANEL));
  emit(BLOCK, LOOP); // for j in 0..nc step NR
  emit(localGet(J), localGet(NC_), I32_GE_U, brIf(1));
  emit(i32Const(0), localSet(I), i32Const(aOff), localSet(PA_PANEL));
  emit(BLOCK, LOOP); // for i in 0..mc step MR
  emit(localGet(I), localGet(MC_), I32_GE_U, brIf(1));
  // accRow = accOff + (i*ncMax + j)*8
  emit(localGet(I), i32Const(ncMax), I32_MUL, localGet(J), I32_ADD, i32Const(8), I32_MUL, i32Const(accOff), I32_ADD, localSet(ACC_ROW));
  emit(localGet(FRESH), IF_VOID);
  for (let r = 0; r < MR; r++) for (let h = 0; h < 2; h++) emit(V128_ZERO, localSet(C(r, h)));
  emit(ELSE);
  for (let r = 0; r < MR; r++) for (let h = 0; h < 2; h++) emit(localGet(ACC_ROW), v128Load(r * ncMax * 8 + h * 16), localSet(C(r, h)));
  emit(END);
  emit(localGet(PA_PANEL), localTee(PA), localGet(PANEL), I32_ADD, localSet(PA_END), localGet(PB_PANEL), localSet(PB));
  emit(LOOP); // for k in 0..kc
  emit(localGet(PB), v128Load(0), localSet(B0), localGet(PB), v128Load(16), localSet(B1));
  for (let r = 0; r < MR; r++) {
    emit(localGet(PA), v128Load64Splat(r * 8), localSet(A));
    emit(localGet(C(r, 0)), localGet(A), localGet(B0), F64X2_MUL, F64X2_ADD, localSet(C(r, 0)));
    emit(localGet(C(r, 1)), localGet(A), localGet(B1), F64X2_MUL, F64X2_ADD, localSet(C(r, 1)));
  }
  emit(localGet(PA), i32Const(MR * 8), I32_ADD, localSet(PA), localGet(PB), i32Const(NR * 8), I32_ADD, localSet(PB));
  emit(localGet(PA), localGet(PA_END), I32_LT_U, brIf(0));
  emit(END);
  for (let r = 0; r < MR; r++) for (let h = 0; h < 2; h++) emit(localGet(ACC_ROW), localGet(C(r, h)), v128Store(r * ncMax * 8 + h * 16));
  emit(localGet(I), i32Const(MR), I32_ADD, localSet(I), localGet(PA_PANEL), localGet(PANEL), I32_ADD, localSet(PA_PANEL));
  emit(br(0), END, END);
  emit(localGet(J), i32Const(NR), I32_ADD, localSet(J), localGet(PB_PANEL), localGet(PANEL), I32_ADD, localSet(PB_PANEL));
  emit(br(0), END, END);
  emit(END);

  const body = [...vec([[...uleb(i32Locals), I32], [...uleb(v128Locals), V128]]), ...code];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32]]), ...vec([])]])), // type (i32 x4) -> ()
    ...section(3, vec([uleb(0)])), // one function of type 0
    ...section(5, vec([[0x00, ...uleb(pages)]])), // memory, min pages, no max
    ...section(7, vec([[...name('macro'), 0x00, 0], [...name('memory'), 0x02, 0]])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ];
  return { bytes: new Uint8Array(bytes), offsets: { a: aOff, b: bOff, acc: accOff }, pages };
}

/**
 * Compiles and instantiates the kernel, or returns null where WebAssembly or its SIMD is not
 * available (the caller then uses the JavaScript kernel, which gives the same bits).
 */
export function instantiateMacroKernel(mcMax: number, kcMax: number, ncMax: number): WasmMacroKernel | null {
  if (typeof WebAssembly !== 'object' || WebAssembly === null || typeof WebAssembly.validate !== 'function') return null;
  const { bytes, offsets } = macroKernelModule(mcMax, kcMax, ncMax);
  try {
    if (!WebAssembly.validate(bytes)) return null;
    // Synchronous compilation: the module is far below the 4 KiB browsers allow on the main thread.
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
    const memory = instance.exports.memory as WasmMemory;
    return {
      macro: instance.exports.macro as (mc: number, nc: number, kc: number, fresh: number) => void,
      memory,
      packA: new Float64Array(memory.buffer, offsets.a, mcMax * kcMax),
      packB: new Float64Array(memory.buffer, offsets.b, kcMax * ncMax),
      acc: new Float64Array(memory.buffer, offsets.acc, mcMax * ncMax),
    };
  } catch {
    return null; // e.g. a content security policy without 'wasm-unsafe-eval'
  }
}
