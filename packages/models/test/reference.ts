/**
 * A float64 forward of a Ring-linear model written directly from shared/MODEL_SPEC.md, with plain
 * loops over host arrays: no @ring-linear module or op is used, so it is an independent oracle.
 * Weights come by checkpoint name (MODEL_SPEC §6) as float64 arrays.
 */
export interface RefConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  layer_group_size: number;
  first_k_dense_replace: number;
  num_experts: number;
  num_experts_per_tok: number;
  n_group: number;
  topk_group: number;
  routed_scaling_factor: number;
  norm_topk_prob: boolean;
  num_shared_experts: number;
  group_norm_size: number;
  partial_rotary_factor: number;
  rope_theta: number;
  use_qk_norm: boolean;
  rms_norm_eps: number;
  /** Explicit per-layer kinds (custom hybrids), else the group schedule. */
  layer_types?: readonly ('linear' | 'softmax')[] | null;
  /** Explicit per-layer MLP kinds, else dense before first_k_dense_replace. */
  mlp_types?: readonly ('dense' | 'moe')[] | null;
}

type W = ReadonlyMap<string, Float64Array>;

function get(w: W, name: string): Float64Array {
  const v = w.get(name);
  if (!v) throw new Error(`reference: missing weight ${name}`);
  return v;
}

/** RMSNorm of each row of x [n, d]: w * x / sqrt(mean(x^2) + eps) (MODEL_SPEC §1). */
function rmsNormRows(x: Float64Array, d: number, w: Float64Array, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[r * d + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / d + eps);
    for (let i = 0; i < d; i++) out[r * d + i] = w[i]! * x[r * d + i]! * inv;
  }
  return out;
}

/** y [n, out] = x [n, in] W^T, W [out, in]. */
function linear(x: Float64Array, n: number, inF: number, W: Float64Array, outF: number): Float64Array {
  const y = new Float64Array(n * outF);
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < outF; o++) {
      let acc = 0;
      for (let i = 0; i < inF; i++) acc += x[r * inF + i]! * W[o * inF + i]!;
      y[r * outF + o] = acc;
    }
  }
  return y;
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
const silu = (z: number) => z * sigmoid(z);

/** MODEL_SPEC §2: slopes(H) with base(n) = 2^(-(2^-(log2 n - 3)) (i+1)). */
export function refSlopes(H: number): number[] {
  const base = (n: number) => Array.from({ length: n }, (_, i) => 2 ** (-(2 ** -(Math.log2(n) - 3)) * (i + 1)));
  if (Number.isInteger(Math.log2(H))) return base(H);
  const p = 2 ** Math.floor(Math.log2(H));
  return [...base(p), ...base(2 * p).filter((_, i) => i % 2 === 0).slice(0, H - p)];
}

/** In-place partial NeoX RoPE of one head vector (first rd channels; MODEL_SPEC §2.3). */
function ropeInPlace(v: Float64Array, off: number, rd: number, pos: number, theta: number): void {
  const half = rd / 2;
  for (let i = 0; i < half; i++) {
    const ang = pos * theta ** ((-2 * i) / rd);
    const c = Math.cos(ang);
    const s = Math.sin(ang);
    const a = v[off + i]!;
    const b = v[off + i + half]!;
    v[off + i] = a * c - b * s;
    v[off + i + half] = b * c + a * s;
  }
}

/** Per-head RMSNorm over D of rows laid out [T, heads, D]. */
function headNorm(x: Float64Array, D: number, w: Float64Array, eps: number): Float64Array {
  return rmsNormRows(x, D, w, eps);
}

export function layerKinds(c: RefConfig): ('linear' | 'softmax')[] {
  if (c.layer_types) return [...c.layer_types];
  const L = c.num_hidden_layers;
  const G = c.layer_group_size;
  const full = Math.floor(L / G) * G;
  return Array.from({ length: L }, (_, l) => ((l + 1) % G === 0 || l >= full ? 'softmax' : 'linear'));
}

/** Tokens of one sequence through one attention layer; x [T, hidden] (already normalized). */
function attention(c: RefConfig, w: W, l: number, kind: 'linear' | 'softmax', x: Float64Array, T: number): Float64Array {
  const h = c.hidden_size;
  const H = c.num_attention_heads;
  const D = c.head_dim;
  const Hkv = kind === 'linear' ? H : c.num_key_value_heads;
  const p = `model.layers.${l}.attention`;
  const rows = (H + 2 * Hkv) * D;
  const qkv = linear(x, T, h, get(w, `${p}.query_key_value.weight`), rows);
  let q: Float64Array = new Float64Array(T * H * D);
  let k: Float64Array = new Float64Array(T * Hkv * D);
  const v = new Float64Array(T * Hkv * D);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < H * D; i++) q[t * H * D + i] = qkv[t * rows + i]!;
    for (let i = 0; i < Hkv * D; i++) {
      k[t * Hkv * D + i] = qkv[t * rows + H * D + i]!;
      v[t * Hkv * D + i] = qkv[t * rows + H * D + Hkv * D + i]!;
    }
  }
  if (c.use_qk_norm) {
    q = headNorm(q, D, get(w, `${p}.query_layernorm.weight`), c.rms_norm_eps);
    k = headNorm(k, D, get(w, `${p}.key_layernorm.weight`), c.rms_norm_eps);
  }
  const rd = Math.floor(D * c.partial_rotary_factor);
  for (let t = 0; t < T; t++) {
    for (let hh = 0; hh < H; hh++) ropeInPlace(q, (t * H + hh) * D, rd, t, c.rope_theta);
    for (let hh = 0; hh < Hkv; hh++) ropeInPlace(k, (t * Hkv + hh) * D, rd, t, c.rope_theta);
  }
  const scale = D ** -0.5;
  const o = new Float64Array(T * H * D);
  if (kind === 'linear') {
    // o_t = s * sum_{j<=t} lambda^(t-j) (q_t . k_j) v_j,  lambda_h = exp(-a_h) (MODEL_SPEC §2.4)
    const L = c.num_hidden_layers;
    const factor = 1 - (l - 1) / (L - 1) + 1e-5;
    const slopes = refSlopes(H);
    for (let hh = 0; hh < H; hh++) {
      const lambda = Math.exp(-slopes[hh]! * factor);
      for (let t = 0; t < T; t++) {
        for (let j = 0; j <= t; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[(t * H + hh) * D + d]! * k[(j * H + hh) * D + d]!;
          const coef = scale * lambda ** (t - j) * dot;
          for (let d = 0; d < D; d++) o[(t * H + hh) * D + d] += coef * v[(j * H + hh) * D + d]!;
        }
      }
    }
    // Group RMSNorm over the H*D channels, times sigmoid(x Wg^T), then dense (MODEL_SPEC §2.5).
    const HD = H * D;
    const G = c.group_norm_size;
    const gs = HD / G;
    const gnorm = get(w, `${p}.g_norm.weight`);
    const gate = linear(x, T, h, get(w, `${p}.g_proj.weight`), HD);
    const y = new Float64Array(T * HD);
    for (let t = 0; t < T; t++) {
      for (let g = 0; g < G; g++) {
        let ss = 0;
        for (let i = 0; i < gs; i++) ss += o[t * HD + g * gs + i]! ** 2;
        const inv = 1 / Math.sqrt(ss / gs + c.rms_norm_eps);
        for (let i = 0; i < gs; i++) {
          const ch = g * gs + i;
          y[t * HD + ch] = o[t * HD + ch]! * inv * gnorm[ch]! * sigmoid(gate[t * HD + ch]!);
        }
      }
    }
    return linear(y, T, HD, get(w, `${p}.dense.weight`), h);
  }
  // Causal softmax GQA (MODEL_SPEC §3): query head hh reads kv head floor(hh / (H / Hkv)).
  const per = H / Hkv;
  for (let hh = 0; hh < H; hh++) {
    const kvh = Math.floor(hh / per);
    for (let t = 0; t < T; t++) {
      const s = new Float64Array(t + 1);
      let m = -Infinity;
      for (let j = 0; j <= t; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[(t * H + hh) * D + d]! * k[(j * Hkv + kvh) * D + d]!;
        s[j] = dot * scale;
        m = Math.max(m, s[j]!);
      }
      let z = 0;
      for (let j = 0; j <= t; j++) z += (s[j] = Math.exp(s[j]! - m));
      for (let j = 0; j <= t; j++) {
        for (let d = 0; d < D; d++) o[(t * H + hh) * D + d] += (s[j]! / z) * v[(j * Hkv + kvh) * D + d]!;
      }
    }
  }
  return linear(o, T, H * D, get(w, `${p}.dense.weight`), h);
}

function swiglu(x: Float64Array, n: number, h: number, prefix: string, w: W, inter: number): Float64Array {
  const g = linear(x, n, h, get(w, `${prefix}.gate_proj.weight`), inter);
  const u = linear(x, n, h, get(w, `${prefix}.up_proj.weight`), inter);
  for (let i = 0; i < g.length; i++) g[i] = silu(g[i]!) * u[i]!;
  return linear(g, n, inter, get(w, `${prefix}.down_proj.weight`), h);
}

/** Statistics of the routing decisions, to show that no choice was a near tie. */
export interface RoutingStats {
  /** Smallest gap between the k-th and (k+1)-th masked biased score over all tokens and layers. */
  minTopkGap: number;
  /** Smallest gap between the kept and the best dropped group score. */
  minGroupGap: number;
}

/** MoE (MODEL_SPEC §4) of rows x [n, hidden]. */
function moe(c: RefConfig, w: W, l: number, x: Float64Array, n: number, stats: RoutingStats): Float64Array {
  const h = c.hidden_size;
  const E = c.num_experts;
  const K = c.num_experts_per_tok;
  const p = `model.layers.${l}.mlp`;
  const logits = linear(x, n, h, get(w, `${p}.gate.weight`), E);
  const bias = get(w, `${p}.gate.expert_bias`);
  const out = new Float64Array(n * h);
  const gsize = E / c.n_group;
  const shared = c.num_shared_experts > 0
    ? swiglu(x, n, h, `${p}.shared_experts`, w, get(w, `${p}.shared_experts.gate_proj.weight`).length / h)
    : null;
  const inter = get(w, `${p}.experts.0.gate_proj.weight`).length / h;
  for (let r = 0; r < n; r++) {
    const s = Array.from({ length: E }, (_, e) => sigmoid(logits[r * E + e]!));
    const b = s.map((v, e) => v + bias[e]!);
    // Group score = sum of its top-2 biased scores; keep topk_group groups (ties: lower group).
    const gscore = Array.from({ length: c.n_group }, (_, g) => {
      const vals = b.slice(g * gsize, (g + 1) * gsize).sort((a1, b1) => b1 - a1);
      return vals[0]! + (gsize > 1 ? vals[1]! : 0);
    });
    const order = gscore.map((v, g) => [v, g] as const).sort((a1, b1) => b1[0] - a1[0] || a1[1] - b1[1]);
    if (c.topk_group < c.n_group) stats.minGroupGap = Math.min(stats.minGroupGap, order[c.topk_group - 1]![0] - order[c.topk_group]![0]);
    const kept = new Set(order.slice(0, c.topk_group).map(([, g]) => g));
    const masked = b.map((v, e) => (kept.has(Math.floor(e / gsize)) ? v : 0));
    const eorder = masked.map((v, e) => [v, e] as const).sort((a1, b1) => b1[0] - a1[0] || a1[1] - b1[1]);
    if (K < E) stats.minTopkGap = Math.min(stats.minTopkGap, eorder[K - 1]![0] - eorder[K]![0]);
    const idx = eorder.slice(0, K).map(([, e]) => e);
    let wts = idx.map((e) => s[e]!);
    if (c.norm_topk_prob) {
      const tot = wts.reduce((a1, b1) => a1 + b1, 0) + 1e-20;
      wts = wts.map((v) => v / tot);
    }
    wts = wts.map((v) => v * c.routed_scaling_factor);
    const xr = x.subarray(r * h, (r + 1) * h);
    for (let k = 0; k < K; k++) {
      const y = swiglu(xr, 1, h, `${p}.experts.${idx[k]}`, w, inter);
      for (let i = 0; i < h; i++) out[r * h + i] += wts[k]! * y[i]!;
    }
    if (shared) for (let i = 0; i < h; i++) out[r * h + i] += shared[r * h + i]!;
  }
  return out;
}

/**
 * Logits [T, V] of one sequence (positions from 0, zero state), float64 throughout. Packed rows
 * and batches are separate calls: every sequence starts fresh.
 */
export function referenceForward(c: RefConfig, w: W, tokens: readonly number[], stats?: RoutingStats): Float64Array {
  const st = stats ?? { minTopkGap: Infinity, minGroupGap: Infinity };
  const h = c.hidden_size;
  const T = tokens.length;
  const emb = get(w, 'model.word_embeddings.weight');
  let x: Float64Array = new Float64Array(T * h);
  tokens.forEach((id, t) => x.set(emb.subarray(id * h, (id + 1) * h), t * h));
  const kinds = layerKinds(c);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    const a = attention(c, w, l, kinds[l]!, rmsNormRows(x, h, get(w, `${p}.input_layernorm.weight`), c.rms_norm_eps), T);
    for (let i = 0; i < x.length; i++) x[i] += a[i]!;
    const y = rmsNormRows(x, h, get(w, `${p}.post_attention_layernorm.weight`), c.rms_norm_eps);
    const dense = c.mlp_types ? c.mlp_types[l] === 'dense' : l < c.first_k_dense_replace;
    const m = dense
      ? swiglu(y, T, h, `${p}.mlp`, w, get(w, `${p}.mlp.gate_proj.weight`).length / h)
      : moe(c, w, l, y, T, st);
    for (let i = 0; i < x.length; i++) x[i] += m[i]!;
  }
  x = rmsNormRows(x, h, get(w, 'model.norm.weight'), c.rms_norm_eps);
  return linear(x, T, h, get(w, 'lm_head.weight'), c.vocab_size);
}

/** Mean cross-entropy of logits [T, V] against next-token targets (ignoring -100). */
export function referenceLoss(logits: Float64Array, V: number, targets: readonly number[]): number {
  let tot = 0;
  let n = 0;
  targets.forEach((tgt, t) => {
    if (tgt < 0) return;
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, logits[t * V + v]!);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[t * V + v]! - m);
    tot += Math.log(z) + m - logits[t * V + tgt]!;
    n++;
  });
  return tot / n;
}
