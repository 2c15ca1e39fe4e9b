/// <reference types="@webgpu/types" />
/**
 * Assembles a compute shader from tensor bindings, a uniform block and a body, with the codec
 * library prepended. Bindings are numbered in order: tensors first, then the uniform block.
 */
import { CODECS_WGSL } from './codecs.js';
import { tensorDeclWgsl, type AccessOptions, type TensorDecl } from './access.js';

export interface ShaderSpec {
  readonly tensors: readonly TensorDecl[];
  /** Number of u32 uniform words (0 = no uniform block). Read with u(i), uf(i), ui(i). */
  readonly uniformWords: number;
  readonly workgroupSize: number | readonly [number, number, number];
  /** Body of `main`; `gid`, `lid` (local index), `lid3`, `wid`, `nwg` are in scope. */
  readonly body: string;
  /** Extra module-scope WGSL (helper functions, workgroup arrays, constants). */
  readonly helpers?: string;
  /** Uses subgroup builtins (adds `enable subgroups;` and the sg_* parameters of main). */
  readonly subgroups?: boolean;
  /**
   * Bindings the helpers declare themselves (numbered after `tensors`, before the uniform
   * block), e.g. vec4 views of f32 tensors.
   */
  readonly extraBindings?: readonly GPUBufferBindingType[];
}

export interface BuiltShader {
  readonly code: string;
  /** Binding types for the bind group layout, tensors then (optionally) the uniform. */
  readonly bindingTypes: readonly GPUBufferBindingType[];
  /** Bytes of the uniform binding (0 = none). */
  readonly uniformBytes: number;
}

export function buildShader(spec: ShaderSpec, opts: AccessOptions): BuiltShader {
  const enables: string[] = [];
  if (opts.nativeF16) enables.push('enable f16;');
  if (spec.subgroups) enables.push('enable subgroups;');
  const parts: string[] = [CODECS_WGSL];
  const bindingTypes: GPUBufferBindingType[] = [];
  spec.tensors.forEach((t, i) => {
    parts.push(tensorDeclWgsl(i, t, opts));
    bindingTypes.push(t.access === 'read' ? 'read-only-storage' : 'storage');
  });
  for (const t of spec.extraBindings ?? []) bindingTypes.push(t);
  let uniformBytes = 0;
  if (spec.uniformWords > 0) {
    const vecs = Math.ceil(spec.uniformWords / 4);
    uniformBytes = vecs * 16;
    parts.push(
      `@group(0) @binding(${bindingTypes.length}) var<uniform> U: array<vec4<u32>, ${vecs}>;`,
      'fn u(i: u32) -> u32 { return U[i >> 2u][i & 3u]; }',
      'fn uf(i: u32) -> f32 { return bitcast<f32>(u(i)); }',
      'fn ui(i: u32) -> i32 { return bitcast<i32>(u(i)); }',
    );
    bindingTypes.push('uniform');
  }
  if (spec.helpers) parts.push(spec.helpers);
  const ws = typeof spec.workgroupSize === 'number' ? [spec.workgroupSize, 1, 1] : spec.workgroupSize;
  const sg = spec.subgroups
    ? ', @builtin(subgroup_invocation_id) sg_lane: u32, @builtin(subgroup_size) sg_size: u32'
    : '';
  const main = [
    `@compute @workgroup_size(${ws.join(', ')})`,
    `fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32, ` +
      `@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, ` +
      `@builtin(num_workgroups) nwg: vec3<u32>${sg}) {`,
    spec.body,
    '}',
  ].join('\n');
  return { code: [...enables, pruneUnused(parts.join('\n'), main), main].join('\n'), bindingTypes, uniformBytes };
}

/** Splits module-scope WGSL into top-level items (functions, structs, variables). */
function topLevelItems(src: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < src.length; i++) {
    const ch = src[i];
    if (ch === '/' && src[i + 1] === '/') {
      const nl = src.indexOf('\n', i);
      i = nl < 0 ? src.length : nl;
      continue;
    }
    if (ch === '{') depth++;
    else if (ch === '}') {
      depth--;
      if (depth === 0) {
        items.push(src.slice(start, i + 1));
        start = i + 1;
      }
    } else if (ch === ';' && depth === 0) {
      items.push(src.slice(start, i + 1));
      start = i + 1;
    }
  }
  const rest = src.slice(start).trim();
  if (rest) items.push(rest);
  return items.map((t) => t.trim()).filter((t) => t.length > 0 && !/^(\/\/[^\n]*\n?\s*)*$/.test(t));
}

const DECL_NAME = /^(?:\/\/[^\n]*\n\s*)*(?:@[^\n]*?\s)?(?:fn|struct|var(?:<[^>]*>)?|const|alias)\s+([A-Za-z_][A-Za-z0-9_]*)/;

/**
 * Drops module-scope items that `main` does not reach (the codec library and helper sets are
 * shared by every kernel; shader compile time grows with their size).
 */
function pruneUnused(module: string, main: string): string {
  const items = topLevelItems(module).map((text) => {
    const m = DECL_NAME.exec(text);
    return { text, name: m ? m[1]! : null, binding: text.includes('@group(') };
  });
  const used = new Set<number>();
  const queue = [main];
  const wordSets = new Map<string, Set<string>>();
  const words = (t: string) => {
    let w = wordSets.get(t);
    if (!w) wordSets.set(t, (w = new Set(t.match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? [])));
    return w;
  };
  items.forEach((it, i) => {
    if (it.binding || it.name === null) {
      used.add(i);
      queue.push(it.text);
    }
  });
  while (queue.length) {
    const w = words(queue.pop()!);
    items.forEach((it, i) => {
      if (!used.has(i) && it.name !== null && w.has(it.name)) {
        used.add(i);
        queue.push(it.text);
      }
    });
  }
  return items.filter((_, i) => used.has(i)).map((it) => it.text).join('\n');
}
