/**
 * The kernel table: which CUDA modules exist, what each contains and each kernel's parameter
 * list. Elementwise ops are generated from the expression tables below (one functor per op, float
 * and int forms); the memory access patterns live in the hand-written headers in ../../kernels.
 *
 * A module groups one op family for one dtype ("binary.bf16", "reduce.f32", ...), so the first
 * use of a dtype compiles one module, not one per op. `allModuleSpecs()` lists every module: CI
 * compiles each with nvcc, and `precompile()` builds them all in parallel on a GPU machine.
 */
import { getOpDef, type DType } from '@ring-linear/core';

export { DTYPE_TAG, DTYPE_SUFFIX, ModuleBuilder, type ModuleSpec, type Param } from './builder.js';
import { DTYPE_TAG, ModuleBuilder, S, sfx, type ModuleSpec, type Param } from './builder.js';
import { flashModule, FLASH_DTYPES } from './families/flash.js';
import { lightningModule, LIGHTNING_DTYPES } from './families/lightning.js';
import { moeModule, MOE_DTYPES } from './families/moe.js';
import { fp8gemmModule, FP8GEMM_DTYPES } from './families/fp8gemm.js';
export const ALL_DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2', 'i32', 'u8', 'bool'];
export const FLOATS: readonly DType[] = ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2'];
const isFloat = (d: DType) => FLOATS.includes(d);

/** Storage width type for raw data movement kernels. */
export const WIDTHS = { 1: 'u8', 2: 'u16', 4: 'u32', 8: 'u64' } as const;
export type Width = keyof typeof WIDTHS;


/** Every header the modules may include; NVRTC gets them in memory. */
export const HEADER_FILES = ['common.cuh', 'elementwise.cuh', 'reduce.cuh', 'nn.cuh', 'creation.cuh', 'indexing.cuh', 'fp8.cuh', 'attention.cuh', 'flash.cuh', 'lightning.cuh', 'moe.cuh', 'mma.cuh', 'fp8gemm.cuh'] as const;

export function moduleSource(spec: ModuleSpec): string {
  return `${spec.includes.map((h) => `#include "${h}"`).join('\n')}\n\n${spec.body}`;
}

// ---------------------------------------------------------------------------------------------
// Expression tables (x, or a and b, are the compute values: float for float dtypes, int otherwise)

export const UNARY_EXPR: Record<string, { f?: string; i?: string }> = {
  neg: { f: '-x', i: '(int)(0u - (u32)x)' },
  abs: { f: 'fabsf(x)', i: 'x < 0 ? (int)(0u - (u32)x) : x' },
  sign: { f: 'x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x)', i: '(x > 0) - (x < 0)' },
  square: { f: 'x * x', i: '(int)((u32)x * (u32)x)' },
  relu: { f: 'x > 0.0f ? x : (x != x ? x : 0.0f)', i: 'x > 0 ? x : 0' },
  exp: { f: 'expf(x)' },
  log: { f: 'logf(x)' },
  sqrt: { f: 'sqrtf(x)' },
  rsqrt: { f: '1.0f / sqrtf(x)' },
  reciprocal: { f: '1.0f / x' },
  sigmoid: { f: '1.0f / (1.0f + expf(-x))' },
  silu: { f: 'x / (1.0f + expf(-x))' },
  tanh: { f: 'tanhf(x)' },
  sin: { f: 'sinf(x)' },
  cos: { f: 'cosf(x)' },
  floor: { f: 'floorf(x)' },
  ceil: { f: 'ceilf(x)' },
  round: { f: 'rintf(x)' },
  logicalNot: { i: 'x == 0' },
};

/** Binary ops; `cmp` ones produce bool. JavaScript semantics where C differs (pow, NaN in max/min). */
export const BINARY_EXPR: Record<string, { f?: string; i?: string; cmp?: boolean }> = {
  add: { f: 'a + b', i: '(int)((u32)a + (u32)b)' },
  sub: { f: 'a - b', i: '(int)((u32)a - (u32)b)' },
  mul: { f: 'a * b', i: '(int)((u32)a * (u32)b)' },
  // Integer division truncates; x/0 = 0; INT_MIN / -1 wraps (core's i32 semantics).
  div: { f: 'a / b', i: 'b == 0 ? 0 : (b == -1 ? (int)(0u - (u32)a) : a / b)' },
  pow: { f: 'rl_pow(a, b)' },
  maximum: { f: '(a != a || b != b) ? __int_as_float(0x7fc00000) : (a > b ? a : b)', i: 'a > b ? a : b' },
  minimum: { f: '(a != a || b != b) ? __int_as_float(0x7fc00000) : (a < b ? a : b)', i: 'a < b ? a : b' },
  equal: { f: 'a == b', i: 'a == b', cmp: true },
  notEqual: { f: 'a != b', i: 'a != b', cmp: true },
  less: { f: 'a < b', i: 'a < b', cmp: true },
  lessEqual: { f: 'a <= b', i: 'a <= b', cmp: true },
  greater: { f: 'a > b', i: 'a > b', cmp: true },
  greaterEqual: { f: 'a >= b', i: 'a >= b', cmp: true },
  logicalAnd: { i: '(a != 0) && (b != 0)', cmp: true },
  logicalOr: { i: '(a != 0) || (b != 0)', cmp: true },
  logicalXor: { i: '(a != 0) != (b != 0)', cmp: true },
};

// Math.pow semantics: pow(x, NaN) = NaN and pow(+-1, +-inf) = NaN (C's powf gives 1 for both).
const POW_HELPER = `RL_DEV float rl_pow(float a, float b) {
  if (b != b) return b;
  if (fabsf(a) == 1.0f && fabsf(b) == __int_as_float(0x7f800000)) return __int_as_float(0x7fc00000);
  return powf(a, b);
}
`;

/** The dtypes an op accepts for input `i`, from its definition in core (all dtypes when unconstrained). */
export function opDTypes(op: string, input = 0): readonly DType[] {
  const def = getOpDef(op);
  if (!def) return [];
  return def.inputs[input]?.dtypes ?? def.variadic?.dtypes ?? ALL_DTYPES;
}


// ---------------------------------------------------------------------------------------------
// Families

export function unaryKernelName(op: string, dt: DType): string {
  return `unary_${op}_${sfx(dt)}`;
}

export function unaryModule(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`unary.${sfx(dt)}`, ['elementwise.cuh']);
  const T = DTYPE_TAG[dt];
  for (const [op, e] of Object.entries(UNARY_EXPR)) {
    if (!opDTypes(op).includes(dt)) continue;
    const expr = isFloat(dt) ? e.f : e.i;
    if (!expr) continue;
    const c = isFloat(dt) ? 'float' : 'int';
    m.raw(`struct U_${op} { static RL_DEV ${c} f(${c} x) { return ${expr}; } };`);
    m.entry(unaryKernelName(op, dt), [[`const ${S(dt)}*`, 'x'], [`${S(dt)}*`, 'y'], ['i64', 'n']], `unary_contig<${T}, U_${op}>(x, y, n);`);
  }
  if (opDTypes('clip').includes(dt)) {
    m.entry(`clip_${sfx(dt)}`, [[`const ${S(dt)}*`, 'x'], [`${S(dt)}*`, 'y'], ['i64', 'n'], ['double', 'lo'], ['double', 'hi']], `clip_contig<${T}>(x, y, n, lo, hi);`);
  }
  return m.build();
}

export type BinaryVariant = 'contig' | 'sa' | 'sb' | 'bc';
export function binaryKernelName(op: string, dt: DType, v: BinaryVariant): string {
  return `binary_${op}_${sfx(dt)}_${v}`;
}

export function binaryModule(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`binary.${sfx(dt)}`, ['elementwise.cuh']);
  const T = DTYPE_TAG[dt];
  if (isFloat(dt)) m.raw(POW_HELPER);
  for (const [op, e] of Object.entries(BINARY_EXPR)) {
    if (!opDTypes(op).includes(dt)) continue;
    const expr = isFloat(dt) ? e.f : e.i;
    if (!expr) continue;
    const c = isFloat(dt) ? 'float' : 'int';
    const rt = e.cmp ? 'int' : c;
    const TO = e.cmp ? 'BOOL' : T;
    m.raw(`struct B_${op} { static RL_DEV ${rt} f(${c} a, ${c} b) { return ${expr}; } };`);
    const io: Param[] = [[`const ${S(dt)}*`, 'a'], [`const ${S(dt)}*`, 'b'], [`${TO}::S*`, 'y'], ['i64', 'n']];
    m.entry(binaryKernelName(op, dt, 'contig'), io, `binary_contig<${T}, ${TO}, B_${op}>(a, b, y, n);`);
    m.entry(binaryKernelName(op, dt, 'sa'), io, `binary_scalar<${T}, ${TO}, B_${op}, true>(a, b, y, n);`);
    m.entry(binaryKernelName(op, dt, 'sb'), io, `binary_scalar<${T}, ${TO}, B_${op}, false>(a, b, y, n);`);
    m.entry(binaryKernelName(op, dt, 'bc'), [...io, ['Strides', 'p']], `binary_bcast<${T}, ${TO}, B_${op}>(a, b, y, n, p);`);
  }
  return m.build();
}

export function castKernelName(from: DType, to: DType): string {
  return `cast_${sfx(from)}_${sfx(to)}`;
}

export function castModule(from: DType): ModuleSpec {
  const m = new ModuleBuilder(`cast.${sfx(from)}`, ['elementwise.cuh']);
  for (const to of ALL_DTYPES) {
    m.entry(castKernelName(from, to), [[`const ${S(from)}*`, 'x'], [`${S(to)}*`, 'y'], ['i64', 'n'], ['int', 'sat']],
      `cast_contig<${DTYPE_TAG[from]}, ${DTYPE_TAG[to]}>(x, y, n, sat);`);
  }
  return m.build();
}

/** Data movement (dtype-free, by element width) and small utilities. */
export function miscModule(): ModuleSpec {
  const m = new ModuleBuilder('misc', ['elementwise.cuh', 'indexing.cuh', 'creation.cuh', 'nn.cuh']);
  for (const w of [1, 2, 4, 8] as const) {
    const W = WIDTHS[w];
    m.entry(`strided_copy_w${w}`, [[`const ${W}*`, 'src'], [`${W}*`, 'dst'], ['i64', 'n'], ['Strides', 'p']], `strided_copy<${W}>(src, dst, n, p);`);
    m.entry(`where_w${w}`, [['const u8*', 'c'], [`const ${W}*`, 'a'], [`const ${W}*`, 'b'], [`${W}*`, 'y'], ['i64', 'n'], ['Strides', 'p']],
      `where_bcast<${W}>(c, a, b, y, n, p);`);
    m.entry(`gather_w${w}`, [[`const ${W}*`, 'x'], ['const int*', 'idx'], [`${W}*`, 'y'], ['i64', 'outer'], ['i64', 'n'], ['i64', 'J'], ['i64', 'inner']],
      `gather_axis<${W}>(x, idx, y, outer, n, J, inner);`);
    m.entry(`take_along_w${w}`, [[`const ${W}*`, 'x'], ['const int*', 'idx'], [`${W}*`, 'y'], ['i64', 'outer'], ['i64', 'n'], ['i64', 'J'], ['i64', 'inner']],
      `take_along_axis<${W}>(x, idx, y, outer, n, J, inner);`);
    if (w !== 8) {
      m.entry(`one_hot_w${w}`, [['const int*', 'idx'], [`${W}*`, 'y'], ['i64', 'J'], ['i64', 'depth'], ['u32', 'one']],
        `one_hot<${W}>(idx, y, J, depth, (${W})one);`);
    }
  }
  m.entry('causal_mask', [['u8*', 'y'], ['i64', 'rows'], ['i64', 'cols'], ['i64', 'offset']], 'causal_mask_fill(y, rows, cols, offset);');
  m.entry('cross_entropy_total', [['const float*', 'loss'], ['const float*', 'counted'], ['float*', 'y'], ['i64', 'rows'], ['int', 'mode']],
    'cross_entropy_total_body(loss, counted, y, rows, mode);', 1024);
  return m.build();
}

export const REDUCE_OPS = ['sum', 'mean', 'max', 'min', 'logsumexp', 'argmax', 'argmin'] as const;
export type ReduceOp = (typeof REDUCE_OPS)[number];

function accumulator(op: ReduceOp, dt: DType): string {
  const T = DTYPE_TAG[dt];
  switch (op) {
    case 'sum': return isFloat(dt) ? `SumAccF<${T}>` : `SumAccI<${T}>`;
    case 'mean': return `MeanAccF<${T}>`;
    case 'max': return `ExtremeAcc<${T}, true>`;
    case 'min': return `ExtremeAcc<${T}, false>`;
    case 'logsumexp': return `LseAcc<${T}>`;
    case 'argmax': return `ArgAcc<${T}, true>`;
    case 'argmin': return `ArgAcc<${T}, false>`;
  }
}

/** Bytes of an accumulator state (for partial buffers). */
export function accumulatorBytes(op: ReduceOp, dt: DType): number {
  if (op === 'logsumexp' || op === 'argmax' || op === 'argmin') return 8;
  if (op === 'sum' && !isFloat(dt)) return 8;
  return 4;
}

export function reduceKernelName(op: ReduceOp, dt: DType, v: 'warp' | 'block' | 'final'): string {
  return `reduce_${op}_${sfx(dt)}_${v}`;
}

export function reduceModule(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`reduce.${sfx(dt)}`, ['reduce.cuh']);
  const T = DTYPE_TAG[dt];
  for (const op of REDUCE_OPS) {
    if (!opDTypes(op).includes(dt)) continue;
    const A = accumulator(op, dt);
    m.raw(`typedef ${A} ACC_${op};`);
    const out = `ACC_${op}::OutS*`;
    m.entry(reduceKernelName(op, dt, 'warp'), [[`const ${S(dt)}*`, 'x'], [out, 'y'], ['i64', 'rows'], ['i64', 'R']],
      `reduce_warp<${T}, ACC_${op}>(x, y, rows, R);`);
    m.entry(reduceKernelName(op, dt, 'block'),
      [[`const ${S(dt)}*`, 'x'], [out, 'y'], [`ACC_${op}::A*`, 'partial'], ['i64', 'outer'], ['i64', 'R'], ['i64', 'inner'], ['i64', 'chunk']],
      `reduce_block<${T}, ACC_${op}>(x, y, partial, outer, R, inner, chunk);`);
    m.entry(reduceKernelName(op, dt, 'final'), [[`const ACC_${op}::A*`, 'partial'], [out, 'y'], ['i64', 'M'], ['i64', 'P'], ['i64', 'R']],
      `reduce_final<${T}, ACC_${op}>(partial, y, M, P, R);`);
  }
  return m.build();
}

export function nnModule(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`nn.${sfx(dt)}`, ['nn.cuh']);
  const T = DTYPE_TAG[dt];
  const s = sfx(dt);
  for (const [name, log] of [['softmax', false], ['log_softmax', true]] as const) {
    m.entry(`${name}_rows_${s}`, [[`const ${S(dt)}*`, 'x'], [`${S(dt)}*`, 'y'], ['i64', 'rows'], ['i64', 'len']], `softmax_rows<${T}, ${log}>(x, y, rows, len);`, 1024);
    m.entry(`${name}_cols_${s}`, [[`const ${S(dt)}*`, 'x'], [`${S(dt)}*`, 'y'], ['i64', 'outer'], ['i64', 'len'], ['i64', 'inner']],
      `softmax_cols<${T}, ${log}>(x, y, outer, len, inner);`);
  }
  for (const w of FLOATS) {
    m.entry(`rms_norm_${s}_${sfx(w)}`, [[`const ${S(dt)}*`, 'x'], [`const ${S(w)}*`, 'w'], [`${S(dt)}*`, 'y'], ['i64', 'rows'], ['i64', 'd'], ['float', 'eps']],
      `rms_norm_rows<${T}, ${DTYPE_TAG[w]}>(x, w, y, rows, d, eps);`, 1024);
  }
  m.entry(`cross_entropy_rows_${s}`,
    [[`const ${S(dt)}*`, 'logits'], ['const int*', 'targets'], ['float*', 'loss'], ['float*', 'counted'], ['i64', 'rows'], ['i64', 'vocab'], ['int', 'ignore']],
    `cross_entropy_rows<${T}>(logits, targets, loss, counted, rows, vocab, ignore);`, 1024);
  return m.build();
}

export function creationModule(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`creation.${sfx(dt)}`, ['creation.cuh']);
  const T = DTYPE_TAG[dt];
  const s = sfx(dt);
  const philox: Param[] = [['u32', 'key0'], ['u32', 'key1'], ['u32', 'ctrLo'], ['u32', 'ctrHi']];
  if (isFloat(dt)) {
    m.entry(`random_uniform_${s}`, [[`${S(dt)}*`, 'y'], ['i64', 'n'], ...philox, ['float', 'low'], ['float', 'high']],
      `random_uniform<${T}>(y, n, key0, key1, ctrLo, ctrHi, low, high);`);
    m.entry(`random_normal_${s}`, [[`${S(dt)}*`, 'y'], ['i64', 'n'], ...philox, ['double', 'mean'], ['double', 'stdev']],
      `random_normal<${T}>(y, n, key0, key1, ctrLo, ctrHi, mean, stdev);`);
  }
  if (isFloat(dt) || dt === 'i32') {
    m.entry(`arange_${s}`, [[`${S(dt)}*`, 'y'], ['i64', 'n'], ['double', 'start'], ['double', 'step']], `arange_fill<${T}>(y, n, start, step);`);
  }
  return m.build();
}

export function indexModule(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`index.${sfx(dt)}`, ['indexing.cuh']);
  const T = DTYPE_TAG[dt];
  const s = sfx(dt);
  if (isFloat(dt) || dt === 'i32') {
    m.entry(`scatter_init_${s}`, [[`const ${S(dt)}*`, 'x'], [`${T}::C*`, 'acc'], ['i64', 'total']], `scatter_init<${T}>(x, acc, total);`);
    m.entry(`scatter_add_${s}`,
      [[`${T}::C*`, 'acc'], ['const int*', 'idx'], [`const ${S(dt)}*`, 'upd'], ['i64', 'outer'], ['i64', 'n'], ['i64', 'J'], ['i64', 'inner'], ['int', 'along']],
      `scatter_add_cols<${T}>(acc, idx, upd, outer, n, J, inner, along);`);
    m.entry(`scatter_store_${s}`, [[`const ${T}::C*`, 'acc'], [`${S(dt)}*`, 'y'], ['i64', 'total']], `scatter_store<${T}>(acc, y, total);`);
    m.entry(`cumsum_${s}`, [[`const ${S(dt)}*`, 'x'], [`${S(dt)}*`, 'y'], ['i64', 'outer'], ['i64', 'n'], ['i64', 'inner'], ['int', 'exclusive'], ['int', 'reverse']],
      `cumsum_cols<${T}>(x, y, outer, n, inner, exclusive, reverse);`);
  }
  if (dt !== 'bool') {
    for (const [name, largest] of [['topk_largest', true], ['topk_smallest', false]] as const) {
      m.entry(`${name}_${s}`, [[`const ${S(dt)}*`, 'x'], [`${S(dt)}*`, 'vals'], ['int*', 'inds'], ['i64', 'outer'], ['i64', 'n'], ['i64', 'inner'], ['i64', 'k']],
        `topk_rank<${T}, ${largest}>(x, vals, inds, outer, n, inner, k);`);
    }
  }
  return m.build();
}

/** Input dtypes of the FP8 quantizers (@ring-linear/fp8's HIGH_PRECISION_DTYPES). */
export const FP8_INPUT_DTYPES: readonly DType[] = ['f32', 'bf16', 'f16'];
export const FP8_FORMATS = ['f8e4m3', 'f8e5m2'] as const;

/**
 * The FP8 quantizers and fused quantizing kernels of one input dtype (kernels/fp8.cuh), for both
 * FP8 formats: the ops are @ring-linear/fp8's, registered by name in src/ops/fp8.ts.
 */
export function fp8Module(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`fp8.${sfx(dt)}`, ['fp8.cuh']);
  const T = DTYPE_TAG[dt];
  const s = sfx(dt);
  const x: Param = [`const ${S(dt)}*`, 'x'];
  const qs: Param[] = [['u8*', 'q'], ['float*', 's']];
  m.entry(`fp8_amax_${s}`, [x, ['u32*', 'amax'], ['i64', 'n']], `fp8_amax_all<${T}>(x, amax, n);`);
  for (const f of FP8_FORMATS) {
    const Q = DTYPE_TAG[f];
    // Two versions of each kernel (kernels/fp8.cuh): v1 (the first kernels, kept selectable with
    // RING_LINEAR_CUDA_FP8_KERNELS=v1) and v2 (hardware FP8 conversion on sm_89+, staged
    // quant+transpose and RMSNorm rows), named with a `_v2` suffix. Same arguments, same geometry.
    for (const v of ['v1', 'v2'] as const) {
      const hw = v === 'v2' ? 'true' : 'false';
      const k = (name: string) => `fp8_${name}_${s}_${sfx(f)}${v === 'v2' ? '_v2' : ''}`;
      m.entry(k('tiles'), [x, ...qs, ['i64', 'rows'], ['i64', 'K'], ['int', 'pow2']], `fp8_quant_tiles<${T}, ${Q}, ${hw}>(x, q, s, rows, K, pow2);`);
      m.entry(k('rows'), [x, ...qs, ['i64', 'rows'], ['i64', 'K'], ['int', 'pow2']], `fp8_quant_rows<${T}, ${Q}, ${hw}>(x, q, s, rows, K, pow2);`);
      m.entry(k('tensor'), [x, ...qs, ['const u32*', 'amax'], ['i64', 'n'], ['int', 'pow2']], `fp8_quant_tensor<${T}, ${Q}, ${hw}>(x, q, s, amax, n, pow2);`);
      // (v2's block kernel runs 512 threads a block: src/ops/fp8.ts.)
      m.entry(k('blocks'), [x, ...qs, ['i64', 'N'], ['i64', 'K'], ['i64', 'nblocks'], ['int', 'pow2']], `fp8_quant_blocks<${T}, ${Q}, ${hw}>(x, q, s, N, K, nblocks, pow2);`,
        v === 'v2' ? 512 : 256);
      // v2's staged quant+transpose is for 2-byte inputs; f32 keeps v1's kernel with the v2 encoding.
      const transpose = v === 'v2' && dt !== 'f32' ? `fp8_quant_transpose_staged<${T}, ${Q}>` : `fp8_quant_transpose<${T}, ${Q}, ${hw}>`;
      m.entry(k('transpose'), [x, ...qs, ['u8*', 'qT'], ['float*', 'sT'], ['i64', 'M'], ['i64', 'K'], ['int', 'pow2']],
        `${transpose}(x, q, s, qT, sT, M, K, pow2);`);
      m.entry(k('swiglu'), [[`const ${S(dt)}*`, 'gu'], ...qs, ['i64', 'rows'], ['i64', 'I'], ['int', 'pow2']], `fp8_swiglu_quant<${T}, ${Q}, ${hw}>(gu, q, s, rows, I, pow2);`);
      for (const w of FP8_INPUT_DTYPES) {
        const rms: Param[] = [x, [`const ${S(w)}*`, 'w'], ...qs, ['i64', 'rows'], ['i64', 'd'], ['float', 'eps'], ['int', 'pow2']];
        if (v === 'v1') {
          m.entry(`fp8_rmsnorm_${s}_${sfx(w)}_${sfx(f)}`, rms, `fp8_rms_norm_quant<${T}, ${DTYPE_TAG[w]}, ${Q}>(x, w, q, s, rows, d, eps, pow2);`, 1024);
        } else {
          // vthreads: the rmsNorm kernel's block size for d (its summation order); the block has
          // min(vthreads, 256) threads.
          m.entry(`fp8_rmsnorm_${s}_${sfx(w)}_${sfx(f)}_v2`, [...rms, ['int', 'vthreads']],
            `fp8_rms_norm_quant_v2<${T}, ${DTYPE_TAG[w]}, ${Q}>(x, w, q, s, rows, d, eps, pow2, vthreads);`, 256);
        }
      }
    }
    // v3 (kernels/fp8.cuh): the shapes it covers (src/ops/fp8.ts routes the rest to v2): 1x128
    // tiles and SwiGLU with rows a multiple of 128 (U tiles a half-warp: 4 for 2-byte inputs, 2
    // for f32), RMSNorm rows in registers, quant+transpose. Only the tile kernel runs by default
    // (RING_LINEAR_CUDA_FP8_KERNELS=v3x runs the others: no faster than v2's on an H100).
    const U = dt === 'f32' ? 2 : 4;
    m.entry(`fp8_tiles_${s}_${sfx(f)}_v3`, [x, ...qs, ['i64', 'tiles'], ['int', 'pow2']], `fp8_quant_tiles_v3<${T}, ${Q}, ${U}>(x, q, s, tiles, pow2);`);
    m.entry(`fp8_swiglu_${s}_${sfx(f)}_v3`, [[`const ${S(dt)}*`, 'gu'], ...qs, ['i64', 'rows'], ['i64', 'I'], ['int', 'pow2']],
      `fp8_swiglu_quant_v3<${T}, ${Q}, ${U / 2}>(gu, q, s, rows, I, pow2);`);
    for (const w of FP8_INPUT_DTYPES) {
      m.entry(`fp8_rmsnorm_${s}_${sfx(w)}_${sfx(f)}_v3`,
        [x, [`const ${S(w)}*`, 'w'], ...qs, ['i64', 'rows'], ['i64', 'd'], ['float', 'eps'], ['int', 'pow2'], ['int', 'vthreads']],
        `fp8_rms_norm_quant_v3<${T}, ${DTYPE_TAG[w]}, ${Q}>(x, w, q, s, rows, d, eps, pow2, vthreads);`, '256, 3');
    }
    // (f32: v2's structure with the v3 division; 2-byte inputs: the staged kernel)
    m.entry(`fp8_transpose_${s}_${sfx(f)}_v3`, [x, ...qs, ['u8*', 'qT'], ['float*', 'sT'], ['i64', 'M'], ['i64', 'K'], ['int', 'pow2']],
      dt === 'f32' ? `fp8_quant_transpose<${T}, ${Q}, true, true>(x, q, s, qT, sT, M, K, pow2);` : `fp8_quant_transpose_v3<${T}, ${Q}>(x, q, s, qT, sT, M, K, pow2);`,
      // (register caps: occupancy is what these two kernels' speed depends on)
      dt === 'f32' ? 256 : '256, 3');
  }
  return m.build();
}

/**
 * The fused FP8 kernels of the backward pass and the attention output gate, for one input dtype
 * (kernels/fp8.cuh), in a module of their own so the quantizer module compiles in parallel:
 * fp8SwigluBackwardQuant (per dh dtype and format), fp8GroupRmsNormGateQuant (per gate and weight
 * dtype and format) and @ring-linear/attention's groupRmsNormGate (per weight dtype; the gate has
 * o's dtype). Registered by name in src/ops/fp8.ts and src/ops/gate.ts.
 */
export function fp8FusedModule(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`fp8fused.${sfx(dt)}`, ['fp8.cuh']);
  const T = DTYPE_TAG[dt];
  const s = sfx(dt);
  const X = (name: string): Param => [`const ${S(dt)}*`, name];
  for (const f of FP8_FORMATS) {
    const Q = DTYPE_TAG[f];
    for (const d of FP8_INPUT_DTYPES) {
      m.entry(`fp8_swiglu_bwd_${s}_${sfx(d)}_${sfx(f)}`,
        [X('gu'), [`const ${S(d)}*`, 'dh'], ['u8*', 'q'], ['float*', 's'], ['u8*', 'qT'], ['float*', 'sT'], ['i64', 'M'], ['i64', 'I'], ['int', 'pow2']],
        `fp8_swiglu_bwd_quant<${T}, ${DTYPE_TAG[d]}, ${Q}>(gu, dh, q, s, qT, sT, M, I, pow2);`);
    }
    for (const g of FP8_INPUT_DTYPES) {
      for (const w of FP8_INPUT_DTYPES) {
        m.entry(`fp8_group_gate_${s}_${sfx(g)}_${sfx(w)}_${sfx(f)}`,
          [X('o'), [`const ${S(g)}*`, 'gate'], [`const ${S(w)}*`, 'w'], ['u8*', 'q'], ['float*', 's'], ['i64', 'rows'], ['i64', 'C'], ['i64', 'S'], ['int', 'B'],
            ['float', 'eps'], ['int', 'pow2']],
          `fp8_group_rms_norm_gate_quant<${T}, ${DTYPE_TAG[g]}, ${DTYPE_TAG[w]}, ${Q}>(o, gate, w, q, s, rows, C, S, B, eps, pow2);`);
      }
    }
  }
  for (const w of FP8_INPUT_DTYPES) {
    m.entry(`group_rms_norm_gate_${s}_${sfx(w)}`,
      [X('o'), X('gate'), [`const ${S(w)}*`, 'w'], [`${S(dt)}*`, 'y'], ['i64', 'rows'], ['i64', 'C'], ['i64', 'S'], ['int', 'B'], ['float', 'eps']],
      `group_rms_norm_gate<${T}, ${DTYPE_TAG[w]}>(o, gate, w, y, rows, C, S, B, eps);`);
  }
  return m.build();
}

/** Activation dtypes of @ring-linear/attention's ops (ACT_DTYPES there). */
export const ATTENTION_DTYPES: readonly DType[] = ['f32', 'bf16', 'f16'];

/**
 * The decode-path attention kernels of one activation dtype (kernels/attention.cuh): the lightning
 * step (16-byte state access when Dv % 4 == 0, else scalar) and its row-chunk combine; the split-K
 * softmax attention forward (vector loads of k when D % 4 == 0 and of v when Dv % 4 == 0) and its
 * split combine; rope. The ops are @ring-linear/attention's, registered by name in src/ops/attention.ts.
 */
export function attentionModule(dt: DType): ModuleSpec {
  const m = new ModuleBuilder(`attention.${sfx(dt)}`, ['attention.cuh']);
  const T = DTYPE_TAG[dt];
  const s = sfx(dt);
  const X = (name: string): Param => [`const ${S(dt)}*`, name];
  for (const vec of [4, 1] as const) {
    m.entry(`attn_lightning_step_${s}_v${vec}`,
      [X('q'), X('k'), X('v'), ['const float*', 'decay'], ['const float*', 's0'], [`${S(dt)}*`, 'out'], ['float*', 's1'], ['float*', 'opart'],
        ['int', 'B'], ['int', 'Tn'], ['int', 'H'], ['int', 'D'], ['int', 'Dv'], ['float', 'scale'], ['int', 'rowChunks'], ['int', 'rowsPerChunk']],
      `lightning_step<${T}, ${vec}>(q, k, v, decay, s0, out, s1, opart, B, Tn, H, D, Dv, scale, rowChunks, rowsPerChunk);`);
  }
  m.entry(`attn_lightning_combine_${s}`, [['const float*', 'opart'], [`${S(dt)}*`, 'out'], ['i64', 'n'], ['int', 'rowChunks'], ['float', 'scale']],
    `lightning_step_combine<${T}>(opart, out, n, rowChunks, scale);`);
  for (const vd of [4, 1] as const) {
    for (const vv of [4, 1] as const) {
      m.entry(`attn_softmax_split_${s}_d${vd}_v${vv}`,
        [X('q'), X('k'), X('v'), ['float*', 'pm'], ['float*', 'pl'], ['float*', 'pacc'], ['int', 'Tq'], ['int', 'Tk'], ['int', 'H'], ['int', 'Hkv'],
          ['int', 'D'], ['int', 'Dv'], ['int', 'q0'], ['int', 'nq'], ['int', 'k0'], ['int', 'nk'], ['int', 'kvOffset'], ['int', 'causal'],
          ['float', 'scale'], ['int', 'chunk'], ['int', 'nsplit']],
        `softmax_attn_split<${T}, ${vd}, ${vv}>(q, k, v, pm, pl, pacc, Tq, Tk, H, Hkv, D, Dv, q0, nq, k0, nk, kvOffset, causal, scale, chunk, nsplit);`, 128);
    }
  }
  m.entry(`attn_softmax_combine_${s}`,
    [['const float*', 'pm'], ['const float*', 'pl'], ['const float*', 'pacc'], [`${S(dt)}*`, 'out'], ['float*', 'lse'], ['int', 'Tq'], ['int', 'H'],
      ['int', 'Hkv'], ['int', 'Dv'], ['int', 'q0'], ['int', 'nq'], ['int', 'nsplit']],
    `softmax_attn_combine<${T}>(pm, pl, pacc, out, lse, Tq, H, Hkv, Dv, q0, nq, nsplit);`, 128);
  m.entry(`attn_rope_${s}`,
    [X('x'), ['const int*', 'pos'], ['const float*', 'inv'], [`${S(dt)}*`, 'y'], ['i64', 'rows'], ['int', 'Tn'], ['int', 'H'], ['int', 'D'],
      ['int', 'rot'], ['int', 'perBatch'], ['int', 'inverse']],
    `rope_apply<${T}>(x, pos, inv, y, rows, Tn, H, D, rot, perBatch, inverse);`);
  return m.build();
}

export type Family = 'unary' | 'binary' | 'cast' | 'reduce' | 'nn' | 'creation' | 'index' | 'fp8' | 'fp8fused' | 'attention' | 'flash' | 'lightning' | 'moe' | 'fp8gemm' | 'misc';

const BUILDERS: Record<Exclude<Family, 'misc'>, { build: (d: DType) => ModuleSpec; dtypes: readonly DType[] }> = {
  unary: { build: unaryModule, dtypes: ALL_DTYPES },
  binary: { build: binaryModule, dtypes: ALL_DTYPES },
  cast: { build: castModule, dtypes: ALL_DTYPES },
  reduce: { build: reduceModule, dtypes: ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2', 'i32', 'u8'] },
  nn: { build: nnModule, dtypes: FLOATS },
  creation: { build: creationModule, dtypes: [...FLOATS, 'i32'] },
  index: { build: indexModule, dtypes: ['f32', 'f16', 'bf16', 'f8e4m3', 'f8e5m2', 'i32', 'u8'] },
  fp8: { build: fp8Module, dtypes: FP8_INPUT_DTYPES },
  fp8fused: { build: fp8FusedModule, dtypes: FP8_INPUT_DTYPES },
  attention: { build: attentionModule, dtypes: ATTENTION_DTYPES },
  flash: { build: flashModule, dtypes: FLASH_DTYPES },
  lightning: { build: lightningModule, dtypes: LIGHTNING_DTYPES },
  moe: { build: moeModule, dtypes: MOE_DTYPES },
  fp8gemm: { build: fp8gemmModule, dtypes: FP8GEMM_DTYPES },
};

const specCache = new Map<string, ModuleSpec>();

/** The module of a family for a dtype (built once). */
export function moduleSpec(family: Family, dt?: DType): ModuleSpec {
  const key = family === 'misc' ? 'misc' : `${family}.${dt}`;
  let s = specCache.get(key);
  if (!s) {
    s = family === 'misc' ? miscModule() : BUILDERS[family].build(dt!);
    specCache.set(key, s);
  }
  return s;
}

/** Every module (what CI compiles with nvcc and `precompile` builds). Empty modules are left out. */
export function allModuleSpecs(): ModuleSpec[] {
  const out: ModuleSpec[] = [moduleSpec('misc')];
  for (const [family, b] of Object.entries(BUILDERS) as [Exclude<Family, 'misc'>, (typeof BUILDERS)['unary']][]) {
    for (const d of b.dtypes) {
      const s = moduleSpec(family, d);
      if (Object.keys(s.kernels).length > 0) out.push(s);
    }
  }
  return out;
}
