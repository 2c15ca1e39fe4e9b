/**
 * WGSL kernel of `groupRmsNormGate` (@ring-linear/attention, MODEL_SPEC §2.5): the last dim's C
 * channels in `groups` groups of C / groups, each group RMS-normalized in f32, times weight [C],
 * times sigmoid(gate); rounded once to o's dtype. One workgroup per (row, group): the sum of
 * squares is a workgroup reduction (subgroups where available), like core's rmsNorm kernel.
 */
import { EW_HELPERS } from '../elementwise.js';
import { f32Bits, grid1d, LINEAR_WG, register } from '../util.js';
import { SUM_F32, wgReduceCall, wgReduceWgsl } from '../wg_reduce.js';
import { actCode, declareBindings } from './tile.js';

register('groupRmsNormGate', ({ backend, inputs: [o, gate, weight], outputs: [y], attrs }) => {
  const { groups, eps } = attrs as { groups: number; eps: number };
  const C = o!.shape[o!.shape.length - 1]!;
  const items = (o!.size / C) * groups;
  if (items === 0) return;
  const size = C / groups;
  const WG = backend.workgroupSize(256);
  const sg = backend.hasSubgroups;
  const prog = backend.program(`groupRmsNormGate${WG}|${sg ? 'sg' : ''}`, () => {
    const b = declareBindings(backend, [
      { act: 'x', word: 4 },
      { act: 'g', word: 5 },
      { act: 'w', word: 6 },
      { actOut: 'y', word: 7 },
    ]);
    return {
    tensors: [],
    extraBindings: b.types,
    uniformWords: 8,
    workgroupSize: WG,
    subgroups: sg,
    helpers: `${b.decl}\n${wgReduceWgsl(SUM_F32, WG, sg)}\n${EW_HELPERS}`,
    body: `let size = u(0u); let items = u(1u); let eps = uf(2u); let groups = u(3u);
let item = ${LINEAR_WG};
if (item >= items) { return; }
// item = row * groups + group: the group's channels are contiguous from item * size.
let base = item * size;
let c0 = (item % groups) * size;
var s = S(0.0, 0u);
for (var j = lid; j < size; j += ${WG}u) { let v = x_ld(base + j); s.a += v * v; }
let t = ${wgReduceCall('s', sg)};
// n = x / sqrt(mean(x^2) + eps); y = n * weight * sigmoid(gate)
let r = 1.0 / sqrt(t.a / f32(size) + eps);
for (var j = lid; j < size; j += ${WG}u) { y_st(base + j, x_ld(base + j) * r * w_ld(c0 + j) * ew_sigmoid(g_ld(base + j))); }`,
    };
  });
  // eps is added as the f32 the composite adds.
  backend.dispatch(prog, [o!.buffer, gate!.buffer, weight!.buffer, y!.buffer], new Uint32Array([size, items, f32Bits(eps), groups, actCode(o!.dtype), actCode(gate!.dtype), actCode(weight!.dtype), actCode(y!.dtype)]), grid1d(items, 1), 'groupRmsNormGate');
});
