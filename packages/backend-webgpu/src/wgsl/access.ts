/**
 * Storage layout of tensors in WGSL and the generated accessors kernels use.
 *
 * Every tensor buffer is bound as `array<u32>` (or `array<atomic<u32>>` for outputs that several
 * invocations write word-parts of). 32-bit dtypes (f32, i32) take one word per element; f16 and
 * bf16 pack two codes per word, f8e4m3, f8e5m2, u8 and bool four, little-endian, which is exactly
 * the host byte layout, so uploads and readbacks are plain byte copies.
 *
 * Compute types: floats compute in f32 (low precision decoded on load, encoded once on store),
 * i32 in i32, u8 and bool in u32.
 *
 * For a binding named `x` of dtype d the generator emits:
 *   x_raw(i) -> u32      the element's storage code
 *   x_ld(i)  -> T        the element's value in the compute type
 *   x_enc(v) -> u32      (outputs) the code of a compute-type value
 *   x_st(i, v)           (outputs) stores one element (atomically for packed dtypes in 'atomic' mode)
 *   x_stw(w, word)       (outputs, 'write' mode) stores a whole word
 */
import type { DType } from '@ring-linear/core';

export type ComputeType = 'f32' | 'i32' | 'u32';

export function computeType(dtype: DType): ComputeType {
  switch (dtype) {
    case 'i32':
      return 'i32';
    case 'u8':
    case 'bool':
      return 'u32';
    default:
      return 'f32';
  }
}

export function bitsOf(dtype: DType): 8 | 16 | 32 {
  switch (dtype) {
    case 'f32':
    case 'i32':
      return 32;
    case 'f16':
    case 'bf16':
      return 16;
    default:
      return 8;
  }
}

/** Elements per u32 word. */
export const perWord = (dtype: DType): number => 32 / bitsOf(dtype);

export interface AccessOptions {
  /** Decode f16 through the hardware type (device has shader-f16 and it was not disabled). */
  readonly nativeF16: boolean;
}

/** WGSL expression: f32 bits (u32) of a float code `c`. */
export function decodeBitsExpr(dtype: DType, c: string, opts: AccessOptions): string {
  switch (dtype) {
    case 'f32':
      return c;
    case 'f16':
      return opts.nativeF16 ? `bitcast<u32>(f32(bitcast<vec2<f16>>(${c} & 0xffffu).x))` : `rl_dec_f16(${c})`;
    case 'bf16':
      return `rl_dec_bf16(${c})`;
    case 'f8e4m3':
      return `rl_dec_e4m3(${c})`;
    case 'f8e5m2':
      return `rl_dec_e5m2(${c})`;
    default:
      throw new Error(`decodeBitsExpr: ${dtype} is not a float dtype`);
  }
}

/** WGSL expression: code of f32 bits `u` in a float dtype (sat: WGSL bool expression). */
export function encodeBitsExpr(dtype: DType, u: string, sat = 'false'): string {
  switch (dtype) {
    case 'f32':
      return u;
    case 'f16':
      return `rl_enc_f16(${u}, ${sat})`;
    case 'bf16':
      return `rl_enc_bf16(${u}, ${sat})`;
    case 'f8e4m3':
      return `rl_enc_e4m3(${u}, ${sat})`;
    case 'f8e5m2':
      return `rl_enc_e5m2(${u}, ${sat})`;
    default:
      throw new Error(`encodeBitsExpr: ${dtype} is not a float dtype`);
  }
}

/** WGSL expression: compute-type value of code `c`. */
export function decodeExpr(dtype: DType, c: string, opts: AccessOptions): string {
  switch (dtype) {
    case 'i32':
      return `bitcast<i32>(${c})`;
    case 'u8':
    case 'bool':
      return c;
    case 'f32':
      return `bitcast<f32>(${c})`;
    default:
      return `bitcast<f32>(${decodeBitsExpr(dtype, c, opts)})`;
  }
}

/** WGSL expression: code of compute-type value `v`. */
export function encodeExpr(dtype: DType, v: string): string {
  switch (dtype) {
    case 'i32':
      return `bitcast<u32>(${v})`;
    case 'u8':
      return `((${v}) & 0xffu)`;
    case 'bool':
      return `select(0u, 1u, (${v}) != 0u)`;
    case 'f32':
      return `bitcast<u32>(${v})`;
    default:
      return encodeBitsExpr(dtype, `bitcast<u32>(${v})`);
  }
}

function rawRead(buf: string, dtype: DType, i: string): string {
  switch (bitsOf(dtype)) {
    case 32:
      return `${buf}[${i}]`;
    case 16:
      return `((${buf}[${i} >> 1u] >> ((${i} & 1u) << 4u)) & 0xffffu)`;
    default:
      return `((${buf}[${i} >> 2u] >> ((${i} & 3u) << 3u)) & 0xffu)`;
  }
}

export type TensorAccess = 'read' | 'write' | 'atomic';

export interface TensorDecl {
  readonly name: string;
  readonly dtype: DType;
  readonly access: TensorAccess;
}

/** Declaration and accessors of one tensor binding. */
export function tensorDeclWgsl(binding: number, t: TensorDecl, opts: AccessOptions): string {
  const { name, dtype, access } = t;
  const T = computeType(dtype);
  const buf = `${name}_buf`;
  const bits = bitsOf(dtype);
  const packed = bits < 32;
  const atomic = access === 'atomic' && packed;
  const lines: string[] = [];
  if (access === 'read') {
    lines.push(`@group(0) @binding(${binding}) var<storage, read> ${buf}: array<u32>;`);
  } else {
    lines.push(`@group(0) @binding(${binding}) var<storage, read_write> ${buf}: array<${atomic ? 'atomic<u32>' : 'u32'}>;`);
  }
  if (!atomic) {
    lines.push(`fn ${name}_raw(i: u32) -> u32 { return ${rawRead(buf, dtype, 'i')}; }`);
    lines.push(`fn ${name}_ld(i: u32) -> ${T} { return ${decodeExpr(dtype, `${name}_raw(i)`, opts)}; }`);
  }
  if (access !== 'read') {
    lines.push(`fn ${name}_enc(v: ${T}) -> u32 { return ${encodeExpr(dtype, 'v')}; }`);
    if (!packed) {
      lines.push(`fn ${name}_st_raw(i: u32, c: u32) { ${buf}[i] = c; }`);
    } else if (atomic) {
      const shift = bits === 16 ? '((i & 1u) << 4u)' : '((i & 3u) << 3u)';
      const word = bits === 16 ? 'i >> 1u' : 'i >> 2u';
      const mask = bits === 16 ? '0xffffu' : '0xffu';
      // Clear then set only this element's bits: other invocations touch other bits of the
      // word, and atomic AND/OR on disjoint bits commute, so the word ends up right.
      lines.push(
        `fn ${name}_st_raw(i: u32, c: u32) { let sh = ${shift}; atomicAnd(&${buf}[${word}], ~(${mask} << sh)); atomicOr(&${buf}[${word}], (c & ${mask}) << sh); }`,
      );
    }
    if (!packed || atomic) lines.push(`fn ${name}_st(i: u32, v: ${T}) { ${name}_st_raw(i, ${name}_enc(v)); }`);
    if (!atomic) lines.push(`fn ${name}_stw(w: u32, word: u32) { ${buf}[w] = word; }`);
  }
  return lines.join('\n');
}
