/**
 * Kernel entry generation: a ModuleBuilder collects `extern "C"` entry points (each a one-line
 * wrapper calling a template of ../../kernels) and their parameter kinds, which the launcher
 * marshals. Shared by sources.ts and the family files in ./families.
 */
import type { DType } from '@ring-linear/core';
import { parseSignature, type ArgKind } from '../runtime/args.js';

export const DTYPE_TAG: Record<DType, string> = {
  f32: 'F32', f16: 'F16', bf16: 'BF16', f8e4m3: 'E4M3', f8e5m2: 'E5M2', i32: 'I32', u8: 'U8', bool: 'BOOL',
};
export const DTYPE_SUFFIX: Record<DType, string> = {
  f32: 'f32', f16: 'f16', bf16: 'bf16', f8e4m3: 'e4m3', f8e5m2: 'e5m2', i32: 'i32', u8: 'u8', bool: 'bool',
};
/** Storage type of a dtype in kernel signatures (e.g. `BF16::S`). */
export const S = (d: DType) => `${DTYPE_TAG[d]}::S`;
export const sfx = (d: DType) => DTYPE_SUFFIX[d];

export interface ModuleSpec {
  /** Unique module key, e.g. "binary.bf16". */
  readonly key: string;
  /** Headers of ../../kernels this module includes (first line of the source). */
  readonly includes: readonly string[];
  /** Generated source, without the #include lines. */
  readonly body: string;
  /** Kernel name -> parameter kinds. */
  readonly kernels: Readonly<Record<string, readonly ArgKind[]>>;
}

export type Param = readonly [ctype: string, name: string];

function kindOf(ctype: string): ArgKind {
  if (ctype.includes('*')) return 'ptr';
  switch (ctype) {
    case 'i64': return 'i64';
    case 'int': return 'i32';
    case 'u32': return 'u32';
    case 'float': return 'f32';
    case 'double': return 'f64';
    case 'Strides': return parseSignature('struct360:8')[0]!;
    default: throw new Error(`no argument kind for C type ${ctype}`);
  }
}

export class ModuleBuilder {
  readonly parts: string[] = [];
  readonly kernels: Record<string, readonly ArgKind[]> = {};
  constructor(
    readonly key: string,
    readonly includes: readonly string[],
  ) {}
  raw(code: string): void {
    this.parts.push(code);
  }
  /** `bounds`: max threads per block, or "threads, minBlocksPerSM" (__launch_bounds__'s arguments). */
  entry(name: string, params: readonly Param[], body: string, bounds: number | string = 256): void {
    if (this.kernels[name]) throw new Error(`duplicate kernel ${name}`);
    this.kernels[name] = params.map(([t]) => kindOf(t));
    const sig = params.map(([t, n]) => (t === 'Strides' ? `const Strides ${n}` : `${t} ${n}`)).join(', ');
    this.parts.push(`extern "C" __global__ void __launch_bounds__(${bounds}) ${name}(${sig}) { ${body} }`);
  }
  build(): ModuleSpec {
    return { key: this.key, includes: this.includes, body: this.parts.join('\n') + '\n', kernels: this.kernels };
  }
}

