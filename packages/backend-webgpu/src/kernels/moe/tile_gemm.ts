/**
 * A tiled "NT" GEMM body shared by the grouped GEMMs of the MoE layer and the FP8 GEMMs:
 *
 *   C[m, n] = sum over k in [klo, khi) of A(m, k) B(n, k)
 *
 * A workgroup of WGX x WGY invocations computes the block rows [mlo, mlo + BM) (clipped at mhi) by
 * columns [nlo, nlo + BN) (clipped at nhi), BM = TM * WGY, BN = TN * WGX; each invocation owns TM x
 * TN outputs in vec4 registers, rows and columns interleaved in groups of four (as the matmul
 * kernel). K advances in steps of BK through workgroup memory (k-major tiles of vec4). Operands are
 * read through WGSL expressions (decoding any dtype), in the order that keeps consecutive
 * invocations on consecutive addresses.
 *
 * Every output is accumulated in f32 in increasing k, the same sequence of operations whatever the
 * tile's position or the number of rows around it: a row's result does not depend on the batch.
 *
 * Optional k-tile scaling (the FP8 GEMM): every KS reductions (counted from klo) the tile product
 * P is folded in as acc += fl32(fl32(P * sa(m, t)) * sb(n, t)) and reset.
 */
export interface TileCfg {
  readonly WGX: number;
  readonly WGY: number;
  readonly TM: number;
  readonly TN: number;
  readonly BK: number;
}

export function tileCfg(software: boolean): TileCfg {
  // SwiftShader emulates barriers: small workgroups compile and run much faster there.
  return software ? { WGX: 8, WGY: 8, TM: 4, TN: 4, BK: 16 } : { WGX: 16, WGY: 16, TM: 4, TN: 4, BK: 16 };
}

export const tileBM = (c: TileCfg) => c.TM * c.WGY;
export const tileBN = (c: TileCfg) => c.TN * c.WGX;

export interface TileGemmSpec {
  readonly cfg: TileCfg;
  /**
   * Statements run first by every invocation; they must define workgroup-uniform u32 values
   * mlo, mhi, nlo, nhi, klo, khi (e.g. through workgroupUniformLoad) and may return uniformly.
   */
  readonly prologue: string;
  /** WGSL f32 expression of A(m, k) for in-range m, k. */
  readonly a: (m: string, k: string) => string;
  /** Whether A's consecutive k are consecutive in memory (else consecutive m). */
  readonly aKMajor: boolean;
  readonly b: (n: string, k: string) => string;
  readonly bKMajor: boolean;
  readonly kScale?: {
    readonly ks: number;
    /** f32 scale of row m for k-tile t. */
    readonly sa: (m: string, t: string) => string;
    /** f32 scale of column n for k-tile t. */
    readonly sb: (n: string, t: string) => string;
  };
  /** Statement storing f32 `v` at (m, n) (only called in range). */
  readonly store: (m: string, n: string, v: string) => string;
}

/** Module-scope declarations (workgroup tiles) and the body of the GEMM. */
export function tileGemm(spec: TileGemmSpec): { helpers: string; body: string } {
  const { WGX, WGY, TM, TN, BK } = spec.cfg;
  const BM = TM * WGY;
  const BN = TN * WGX;
  const NT = WGX * WGY;
  const TN4 = TN / 4;
  if (TM % 4 !== 0 || TN % 4 !== 0 || (BM * BK) % NT !== 0 || (BN * BK) % NT !== 0) throw new Error('tileGemm: bad tiling');
  if (spec.kScale && spec.kScale.ks % BK !== 0) throw new Error('tileGemm: the k-tile must be a multiple of BK');
  const helpers = [
    `var<workgroup> As: array<array<vec4<f32>, ${BM / 4}>, ${BK}>;`,
    `var<workgroup> Bs: array<array<vec4<f32>, ${BN / 4}>, ${BK}>;`,
  ].join('\n');
  const L: string[] = [spec.prologue];
  L.push('let tx = lid3.x; let ty = lid3.y;');
  const accs: string[] = [];
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN4; j++) accs.push(`${i}_${j}`);
  for (const a of accs) L.push(`var acc_${a} = vec4<f32>(0.0);`);
  const sc = spec.kScale;
  // Without k-tile scaling the products go straight into acc; with it, into P first.
  const P = sc ? 'p' : 'acc';
  if (sc) for (const a of accs) L.push(`var p_${a} = vec4<f32>(0.0);`);
  const aPer = (BM * BK) / NT;
  const bPer = (BN * BK) / NT;
  L.push(`for (var k0 = klo; k0 < khi; k0 += ${BK}u) {`);
  // Tile loads as loops (one load site per operand keeps shaders small: compile time on
  // software adapters grows with code size; drivers unroll constant trip counts anyway).
  {
    const mk = spec.aKMajor ? `let mm = q / ${BK}u; let kk = q % ${BK}u;` : `let kk = q / ${BM}u; let mm = q % ${BM}u;`;
    L.push(`  for (var s = 0u; s < ${aPer}u; s++) { let q = lid + s * ${NT}u; ${mk} let gm = mlo + mm; let gk = k0 + kk; var v = 0.0;`);
    L.push(`    if (gm < mhi && gk < khi) { v = ${spec.a('gm', 'gk')}; }`);
    L.push('    As[kk][mm / 4u][mm % 4u] = v; }');
  }
  {
    const nk = spec.bKMajor ? `let nn = q / ${BK}u; let kk = q % ${BK}u;` : `let kk = q / ${BN}u; let nn = q % ${BN}u;`;
    L.push(`  for (var s = 0u; s < ${bPer}u; s++) { let q = lid + s * ${NT}u; ${nk} let gn = nlo + nn; let gk = k0 + kk; var v = 0.0;`);
    L.push(`    if (gn < nhi && gk < khi) { v = ${spec.b('gn', 'gk')}; }`);
    L.push('    Bs[kk][nn / 4u][nn % 4u] = v; }');
  }
  L.push('  workgroupBarrier();');
  L.push(`  for (var kk = 0u; kk < ${BK}u; kk++) {`);
  for (let g = 0; g < TM / 4; g++) L.push(`    let a${g} = As[kk][ty + ${g * WGY}u];`);
  for (let j = 0; j < TN4; j++) L.push(`    let b${j} = Bs[kk][tx + ${j * WGX}u];`);
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN4; j++) L.push(`    ${P}_${i}_${j} = ${P}_${i}_${j} + a${Math.floor(i / 4)}[${i % 4}] * b${j};`);
  }
  L.push('  }');
  L.push('  workgroupBarrier();');
  if (sc) {
    // Fold the finished k-tile in: one f32 rounding per product, kept apart from the add.
    L.push(`  if ((k0 + ${BK}u - klo) % ${sc.ks}u == 0u || k0 + ${BK}u >= khi) {`);
    L.push(`    let t = (k0 - klo) / ${sc.ks}u;`);
    for (let j = 0; j < TN4; j++) {
      L.push(`    var sb${j} = vec4<f32>(0.0);`);
      L.push(`    { let n = nlo + (tx + ${j * WGX}u) * 4u; for (var c = 0u; c < 4u; c++) { if (n + c < nhi) { sb${j}[c] = ${sc.sb('(n + c)', 't')}; } } }`);
    }
    for (let i = 0; i < TM; i++) {
      const row = `mlo + (ty + ${Math.floor(i / 4) * WGY}u) * 4u + ${i % 4}u`;
      L.push(`    { let m = ${row}; var sa = 0.0; if (m < mhi) { sa = ${sc.sa('m', 't')}; }`);
      for (let j = 0; j < TN4; j++) {
        L.push(`      acc_${i}_${j} = acc_${i}_${j} + ff_keep4(ff_keep4(p_${i}_${j} * sa) * sb${j}); p_${i}_${j} = vec4<f32>(0.0);`);
      }
      L.push('    }');
    }
    L.push('  }');
  }
  L.push('}');
  for (let i = 0; i < TM; i++) {
    L.push(`{ let m = mlo + (ty + ${Math.floor(i / 4) * WGY}u) * 4u + ${i % 4}u;`);
    L.push('  if (m < mhi) {');
    for (let j = 0; j < TN4; j++) {
      L.push(`    { let n = nlo + (tx + ${j * WGX}u) * 4u;`);
      L.push(`      for (var c = 0u; c < 4u; c++) { if (n + c < nhi) { ${spec.store('m', '(n + c)', `acc_${i}_${j}[c]`)} } } }`);
    }
    L.push('  }');
    L.push('}');
  }
  return { helpers, body: L.join('\n') };
}

/**
 * WGSL prologue of a grouped GEMM: workgroup "slot" `slotExpr` is mapped to (expert, row tile) by
 * walking the experts e0 .. e1-1 in order, expert e owning ceil(rows_e / BM) slots, rows_e from
 * the device offsets (clamped to [0, R], as the CPU kernels do). Defines the uniform values
 * `e` (the expert), `mlo`, `mhi`; slots past the last return. `off_ld` must be the offsets accessor.
 */
export function segmentPrologue(BM: number, slotExpr: string, e0: string, e1: string, R: string): string {
  return `let slot = ${slotExpr};
if (lid == 0u) {
  var found = 0xffffffffu;
  var lo_ = 0u;
  var hi_ = 0u;
  var acc = 0u;
  for (var ee = ${e0}; ee < ${e1}; ee++) {
    let lo = min(u32(max(off_ld(ee), 0)), ${R});
    let hi = max(min(u32(max(off_ld(ee + 1u), 0)), ${R}), lo);
    let tiles = (hi - lo + ${BM - 1}u) / ${BM}u;
    if (slot < acc + tiles) {
      found = ee;
      lo_ = lo + (slot - acc) * ${BM}u;
      hi_ = min(hi, lo_ + ${BM}u);
      break;
    }
    acc = acc + tiles;
  }
  seg_e = found;
  seg_lo = lo_;
  seg_hi = hi_;
}
let e = workgroupUniformLoad(&seg_e);
if (e == 0xffffffffu) { return; }
let mlo = workgroupUniformLoad(&seg_lo);
let mhi = workgroupUniformLoad(&seg_hi);`;
}

export const SEGMENT_VARS = 'var<workgroup> seg_e: u32;\nvar<workgroup> seg_lo: u32;\nvar<workgroup> seg_hi: u32;';

/** WGSL: the workgroup slot of a slotGrid dispatch. */
export const SLOT_EXPR = '(wid.y + wid.z * nwg.y)';

/** [y, z] grid dims covering `slots` workgroup slots (y <= 65535; extra slots exit). */
export function slotGrid(slots: number): { gy: number; gz: number } {
  if (slots <= 65535) return { gy: Math.max(1, slots), gz: 1 };
  const gz = Math.ceil(slots / 65535);
  return { gy: Math.ceil(slots / gz), gz };
}
