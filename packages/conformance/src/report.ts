/** The summary table: one row per op, one column per dtype (+ error inputs), then the failures. */
import { DTYPES, type DType } from '@ring-linear/core';
import type { CaseResult, CaseStatus, ConformanceResult } from './runner.js';

const MARK: Record<CaseStatus, string> = { passed: 'ok', failed: 'FAIL', xfail: 'xfail', 'unexpected-pass': 'XPASS' };
const SHORT: Record<DType | 'errors', string> = {
  f32: 'f32', f16: 'f16', bf16: 'bf16', f8e4m3: 'e4m3', f8e5m2: 'e5m2', i32: 'i32', u8: 'u8', bool: 'bool', errors: 'errors',
};

type SummaryInput = Omit<ConformanceResult, 'summary'>;

export function formatSummary(r: SummaryInput): string {
  const cols: (DType | 'errors')[] = [...DTYPES, 'errors'];
  const byOp = new Map<string, Map<string, CaseResult>>();
  for (const c of r.cases) {
    if (!byOp.has(c.op)) byOp.set(c.op, new Map());
    byOp.get(c.op)!.set(c.dtype, c);
  }
  const opWidth = Math.max(4, ...[...byOp.keys()].map((k) => k.length)) + 2;
  const w = 7;
  const lines: string[] = [];
  lines.push(
    `conformance of '${r.backend}' (${r.device}) against '${r.reference}'` +
      (r.reference === r.backend ? ' (the reference itself: float64 references and tfjs only)' : '') +
      `, seed ${r.seed}, tfjs ${r.tfjs ? 'on' : 'off'}`,
  );
  lines.push('op'.padEnd(opWidth) + cols.map((c) => SHORT[c].padEnd(w)).join('') + 'ms');
  for (const [op, cases] of byOp) {
    let ms = 0;
    const cells = cols.map((c) => {
      const res = cases.get(c);
      if (!res) return '.'.padEnd(w);
      ms += res.ms;
      return MARK[res.status].padEnd(w);
    });
    lines.push(op.padEnd(opWidth) + cells.join('') + String(ms));
  }
  const c = r.counts;
  lines.push(
    `${c.passed} passed, ${c.failed} failed, ${c.xfail} expected failures, ${c['unexpected-pass']} unexpected passes ` +
      `(${r.cases.length} cases, ${r.cases.reduce((s, x) => s + x.checks, 0)} checks) in ${(r.ms / 1000).toFixed(1)} s`,
  );
  const kinds: Record<string, number> = {};
  for (const x of r.cases) for (const [k, v] of Object.entries(x.checksByKind)) kinds[k] = (kinds[k] ?? 0) + v;
  lines.push(`checks by kind: ${Object.entries(kinds).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  const bad = r.cases.filter((x) => x.status === 'failed' || x.status === 'unexpected-pass');
  if (bad.length) {
    lines.push('FAILURES:');
    for (const b of bad) {
      lines.push(`  ${b.id}: (reproduce: --seed ${r.seed} --ops ${b.op}${b.dtype === 'errors' ? '' : ` --dtypes ${b.dtype}`})`);
      for (const m of b.messages) lines.push(`    ${m}`);
    }
  }
  const xf = r.cases.filter((x) => x.status === 'xfail');
  if (xf.length) {
    lines.push('EXPECTED FAILURES:');
    for (const x of xf) lines.push(`  ${x.id}: ${x.xfailReason}`);
  }
  return lines.join('\n');
}
