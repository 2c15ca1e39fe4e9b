#!/usr/bin/env python3
"""A straightforward PyTorch implementation of the Ring-linear hybrid model (shared/MODEL_SPEC.md),
the baseline of the `model` step (tools/gpu/steps/model.ts).

  python3 torch_model.py              timings -> JSON on stdout (run.sh: > $OUT/torch_model.json)
  python3 torch_model.py --check DIR  load the Hugging Face checkpoint in DIR (config.json +
                                      safetensors, written by our models package), run the tokens
                                      of DIR/check.json, compare with our logits (DIR/ours_*.f32),
                                      write DIR/torch_check.json

The model: embedding; per layer RMSNorm -> lightning (linear) attention or GQA softmax attention
-> residual (f32), RMSNorm -> dense SwiGLU or MoE (sigmoid router in f32 with expert groups and
expert bias, top-k, shared expert) -> residual; final RMSNorm and lm_head in f32. Lightning
attention is the chunked algorithm from torch matmuls (intra-chunk with the decay mask, the f32
state carried across chunks); softmax attention is F.scaled_dot_product_attention; the routed
experts run as torch._grouped_mm when it works here, else as a loop over experts.

Environment (run.sh passes no arguments): MODEL_SMALL=1 (quick sizes, the same as the step's
--small), MODEL_ONLY=a,b (measurement name prefixes), MODEL_TORCH_BUDGET_S (default 250),
MODEL_MEAS_LIMIT_S (default 45); MODEL_TINY=1 the step's --backend cpu sizes. The FP8 training step
runs the attention and dense-MLP projections through Fp8LinearFn (torch._scaled_mm blockwise).
"""
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F

GIB = 2 ** 30

# ------------------------------------------------------------------------------------------------
# Configs (the same fields as packages/models presets; the step compares them with its own)

RING_MINI = dict(
    vocab_size=157184, hidden_size=2048, num_hidden_layers=20, num_attention_heads=16,
    num_key_value_heads=4, head_dim=128, layer_group_size=5, intermediate_size=5120,
    first_k_dense_replace=1, num_experts=256, num_experts_per_tok=8, n_group=8, topk_group=4,
    moe_intermediate_size=512, num_shared_experts=1, moe_shared_expert_intermediate_size=512,
    routed_scaling_factor=2.5, norm_topk_prob=True, score_function='sigmoid', group_norm_size=4,
    partial_rotary_factor=0.5, rope_theta=1000000, use_qk_norm=True, use_qkv_bias=False,
    use_bias=False, linear_silu=False, rms_norm_eps=1e-6, tie_word_embeddings=False,
    decay_convention='hf',
)


# The step's --backend cpu sizes (MODEL_TINY=1: a dry run of these timings on a CPU).
TINY = dict(RING_MINI)
TINY.update(vocab_size=512, hidden_size=256, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=384, num_experts=16, num_experts_per_tok=4, n_group=4, topk_group=2,
            moe_intermediate_size=64, moe_shared_expert_intermediate_size=128, group_norm_size=2)


def mini_config(small):
    c = dict(RING_MINI)
    if small:
        c.update(num_hidden_layers=5, num_experts=64)
    return c


def train_config(small):
    c = dict(RING_MINI)
    c.update(num_hidden_layers=5 if small else 10, num_experts=16)
    return c


def fill_defaults(c):
    """Defaults of packages/models CONFIG_DEFAULTS for the fields the model reads."""
    d = dict(layer_group_size=1, first_k_dense_replace=1, num_shared_experts=0, n_group=1, topk_group=1,
             routed_scaling_factor=1.0, norm_topk_prob=True, score_function='sigmoid', group_norm_size=1,
             partial_rotary_factor=0.5, rope_theta=600000, use_qk_norm=True, use_qkv_bias=False, use_bias=False,
             linear_silu=False, rms_norm_eps=1e-6, tie_word_embeddings=False, decay_convention='hf',
             layer_types=None, mlp_types=None, moe_shared_expert_intermediate_size=None)
    d.update({k: v for k, v in c.items() if v is not None})
    if 'head_dim' not in d:
        d['head_dim'] = d['hidden_size'] // d['num_attention_heads']
    if 'num_key_value_heads' not in d:
        d['num_key_value_heads'] = d['num_attention_heads']
    return d


def layer_kinds(c):
    if c.get('layer_types'):
        alias = {'linear': 'linear', 'softmax': 'softmax', 'linear_attention': 'linear', 'full_attention': 'softmax'}
        return [alias[k] for k in c['layer_types']]
    L, g = c['num_hidden_layers'], c['layer_group_size']
    full_groups = (L // g) * g
    return ['softmax' if ((l + 1) % g == 0 or l >= full_groups) else 'linear' for l in range(L)]


def mlp_kinds(c):
    if c.get('mlp_types'):
        return list(c['mlp_types'])
    return ['dense' if l < c['first_k_dense_replace'] else 'moe' for l in range(c['num_hidden_layers'])]


def fround(x):
    return struct.unpack('f', struct.pack('f', x))[0]


def head_slopes(n):
    """MODEL_SPEC section 2: ALiBi-style power law (float64 as the reference's Python floats)."""
    def pow2(m):
        start = 2 ** (-(2 ** -(math.log2(m) - 3)))
        return [start * start ** i for i in range(m)]
    if math.log2(n).is_integer():
        return pow2(n)
    p = 2 ** math.floor(math.log2(n))
    return pow2(p) + head_slopes(2 * p)[0::2][:n - p]


def decay_rates(H, l, L, convention='hf'):
    lp = l - 1 if convention == 'hf' else (max(0, l - 1) if convention == 'clamped' else l)
    ratio = lp / (L - 1) if L > 1 else 0.0
    factor = fround(1 - ratio + 1e-5)
    return torch.tensor([fround(fround(s) * factor) for s in head_slopes(H)], dtype=torch.float32)


def rope_inv_freq(rot, theta):
    """The exact f32 values of packages/attention ropeInvFreq (each step rounded to f32)."""
    out = []
    for i in range(rot // 2):
        e = fround((2 * i) / rot)
        out.append(fround(1 / fround(math.pow(fround(theta), e))))
    return torch.tensor(out, dtype=torch.float32)


# ------------------------------------------------------------------------------------------------
# FP8 linear layers: the blockwise recipe of packages/fp8 fp8Linear (MODEL_SPEC section 8), in
# plain PyTorch. Forward: x in 1x128 tiles along K, W in 128x128 blocks, torch._scaled_mm with
# fp32 accumulation. Backward: dy in 1x128 tiles (along N for dX = dY W, along M for
# dW = dY^T X), W^T as the same 128x128 blocks transposed, X^T in 1x128 tiles along M. Scales are
# amax / 448 (E4M3 for all operands, the library's default). The quantization is eager torch
# (amax, divide, cast), as a straightforward user would write it.

FP8_MAX = 448.0
# Operands with 128x128 block scales are zero-padded to multiples of 4 blocks in both dimensions (and
# the other operand's K with them). Measured on the H100 with torch 2.11: with 3 or 5 blocks along a
# scale row, _scaled_mm accepted the documented strides but returned wrong sums (relative error 8 to
# 800 against the dequantized codes), and rejected those rows at a stride padded to 4; with 8, 16 or
# 24 blocks it agrees with the codes. Model widths are multiples of 512, so the padding costs nothing
# there; the self-check's odd sizes go through it.
BLOCK_PAD = 512


def _pad_to(x, rows, cols):
    """Zero-pad a 2-D tensor to multiples of (rows, cols); zeros leave the GEMMs' sums exact."""
    R, C = x.shape
    pr, pc = (-R) % rows, (-C) % cols
    return F.pad(x, (0, pc, 0, pr)) if pr or pc else x


def _to_e4m3(x):
    """Values already scaled into [-448, 448] -> E4M3 codes. A torch without float8 (a CPU dry run)
    gets f32 values rounded to the E4M3 grid instead (3 mantissa bits, ties to even, subnormal step 2^-9)."""
    if hasattr(torch, 'float8_e4m3fn'):
        return x.to(torch.float8_e4m3fn)
    step = torch.pow(2.0, torch.floor(torch.log2(x.abs().clamp_min(2.0 ** -9))).clamp_min(-6) - 3)
    return torch.round(x / step) * step


def quant_tiles(x):
    """x [R, C] (C a multiple of 128) -> codes [R, C] and f32 scales [R, C/128] (one per 1x128 tile)."""
    R, C = x.shape
    # contiguous(): .float() keeps a transposed view's strides, and the codes must come out row-major
    # (_scaled_mm's a), also for X^T and dY^T of the weight gradient.
    t = x.float().contiguous().reshape(R, C // 128, 128)
    s = t.abs().amax(-1).clamp_min(1e-30) / FP8_MAX
    return _to_e4m3(t / s.unsqueeze(-1)).reshape(R, C), s


def quant_blocks(w):
    """w [R, C] (multiples of 128) -> codes [R, C] and f32 scales [R/128, C/128] (one per 128x128 block)."""
    R, C = w.shape
    t = w.float().contiguous().reshape(R // 128, 128, C // 128, 128)
    s = t.abs().amax(dim=(1, 3)).clamp_min(1e-30) / FP8_MAX
    return _to_e4m3(t / s[:, None, :, None]).reshape(R, C), s


def scaled_mm(a, sa, b, sb, b_blocks, out_dtype):
    """a [M, K] codes with tile scales sa [M, K/128]; b [K, N] codes with scales sb: [K/128, N/128]
    (b_blocks, 128x128 blocks) or [K/128, N] (1x128 tiles along K). On CUDA: torch._scaled_mm, the
    scales in the layouts it takes on sm_90 (sa with strides (1, M); block sb as the transpose of a
    row-major [N/128, K/128]; tile sb row-major). Elsewhere: the same sums from dequantized f32."""
    if a.is_cuda:
        sa = sa.t().contiguous().t()
        sb = sb.t().contiguous().t() if b_blocks else sb.contiguous()
        return torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=out_dtype)
    # _scaled_mm's operand layouts, checked here too so that a CPU dry run catches a wrong one.
    assert a.stride(1) == 1 and b.stride(0) == 1, f'a must be row-major, b column-major: strides {a.stride()} {b.stride()}'
    af = a.float() * sa.repeat_interleave(128, 1)
    sbf = sb.repeat_interleave(128, 0)
    bf = b.float() * (sbf.repeat_interleave(128, 1) if b_blocks else sbf)
    return (af @ bf).to(out_dtype)


class Fp8LinearFn(torch.autograd.Function):
    """y = x W^T with FP8 GEMMs in forward and backward; saves x and W, re-quantizes in backward."""

    @staticmethod
    def forward(ctx, x, w):
        N, K = w.shape
        x2 = x.reshape(-1, K)
        M = x2.shape[0]
        xq, xs = quant_tiles(_pad_to(x2, 16, BLOCK_PAD))
        wq, ws = quant_blocks(_pad_to(w, BLOCK_PAD, BLOCK_PAD))
        # b = W^T [K, N]: the row-major codes of W viewed transposed (column-major, as _scaled_mm wants).
        y = scaled_mm(xq, xs, wq.t(), ws.t(), True, x.dtype)[:M, :N]
        ctx.save_for_backward(x2, w)
        ctx.x_shape = x.shape
        return y.reshape(*x.shape[:-1], N)

    @staticmethod
    def backward(ctx, dy):
        x2, w = ctx.saved_tensors
        N, K = w.shape
        M = x2.shape[0]
        dy2 = dy.reshape(M, N)
        # dX [M, K] = dY [M, N] W [N, K]: dY tiles along N; b = W as column-major [N, K] = (W^T row-major).t().
        dyq, dys = quant_tiles(_pad_to(dy2, 16, BLOCK_PAD))
        wq, ws = quant_blocks(_pad_to(w, BLOCK_PAD, BLOCK_PAD))
        dx = scaled_mm(dyq, dys, wq.t().contiguous().t(), ws, True, x2.dtype)[:M, :K]
        # dW [N, K] = dY^T [N, M] X [M, K]: both reduced over the tokens M, both in 1x128 tiles along M.
        dyTq, dyTs = quant_tiles(_pad_to(dy2.t(), 16, 128))
        xTq, xTs = quant_tiles(_pad_to(x2.t(), 16, 128))
        dw = scaled_mm(dyTq, dyTs, xTq.t(), xTs.t(), False, w.dtype)[:N, :K]
        return dx.reshape(ctx.x_shape), dw


def fp8_linear(x, w):
    return Fp8LinearFn.apply(x, w)


def fp8_self_check(device, dtype):
    """Fp8LinearFn on random data whose magnitude varies by row, by 128-wide tile and by 128x128 weight
    block (so a scale applied to the wrong tile or block shows), against two references: the f32
    product (rel ~ E4M3's rounding, a few percent) and the product of the dequantized codes (the same
    sums up to fp32 accumulation and the bf16 output: rel < 1e-2 unless a layout is wrong).
    Two shapes: odd sizes (every operand padded) and aligned ones (no padding: the transposed views
    of the weight gradient reach the quantizer as they are, as in the model).
    Returns [y, dx, dw] relative errors (max |diff| / max |ref|, the worse shape) against each."""
    g = torch.Generator(device='cpu').manual_seed(11)
    errs = [fp8_check_shape(device, dtype, g, M, K, N) for M, K, N in ((300, 640, 384), (256, 1024, 512))]
    return [max(e[0][i] for e in errs) for i in range(3)], [max(e[1][i] for e in errs) for i in range(3)]


def fp8_check_shape(device, dtype, g, M, K, N):
    spread = lambda *shape: torch.exp(torch.randn(*shape, generator=g))
    tiles = lambda n: spread(1, (n + 127) // 128).repeat_interleave(128, 1)[:, :n]
    x = torch.randn(M, K, generator=g) * spread(M, 1) * tiles(K)
    w = torch.randn(N, K, generator=g) * 0.05 * spread(N // 128, K // 128).repeat_interleave(128, 0).repeat_interleave(128, 1)
    dy = torch.randn(M, N, generator=g) * spread(M, 1) * tiles(N)
    x, w, dy = (t.to(device=device, dtype=dtype) for t in (x, w, dy))
    x.requires_grad_(True)
    w.requires_grad_(True)
    y = fp8_linear(x, w)
    dx, dw = torch.autograd.grad(y, [x, w], dy)
    xf, wf, dyf = x.detach().float(), w.detach().float(), dy.float()
    deq_t = lambda a: (lambda q, s: q.float() * s.repeat_interleave(128, 1))(*quant_tiles(_pad_to(a, 1, 128)))
    deq_b = lambda a: (lambda q, s: q.float() * s.repeat_interleave(128, 0).repeat_interleave(128, 1))(*quant_blocks(a))
    xd, wd, dyd = deq_t(xf)[:, :K], deq_b(wf), deq_t(dyf)
    dyTd, xTd = deq_t(dyf.t())[:, :M], deq_t(xf.t())[:, :M]
    rel = lambda a, r: ((a.float() - r).abs().max() / r.abs().max()).item()
    got = (y, dx, dw)
    vs_f32 = [rel(a, r) for a, r in zip(got, (xf @ wf.t(), dyf @ wf, dyf.t() @ xf))]
    vs_codes = [rel(a, r) for a, r in zip(got, (xd @ wd.t(), dyd @ wd, dyTd @ xTd.t()))]
    return vs_f32, vs_codes


# ------------------------------------------------------------------------------------------------
# The model


class Model:
    """Parameters as plain tensors (HF names) plus stacked expert weights; no nn.Module machinery."""

    def __init__(self, c, params, device, dtype, fp8=False):
        self.c = c
        # FP8 linear layers as the library's fp8: true model: attention and dense-MLP projections
        # (not the experts, not the shared experts, not lm_head).
        self.fp8 = fp8
        self.p = params
        self.device = device
        self.dtype = dtype
        self.kinds = layer_kinds(c)
        self.mlps = mlp_kinds(c)
        L = c['num_hidden_layers']
        H, D = c['num_attention_heads'], c['head_dim']
        self.rot = int(D * c['partial_rotary_factor'])
        self.inv_freq = rope_inv_freq(self.rot, c['rope_theta']).to(device)
        self.decay = [decay_rates(H, l, L, c.get('decay_convention', 'hf')).to(device) for l in range(L)]
        self.moe_impl = 'loop'
        self._rope_cache = None

    # -- pieces --

    def rms(self, x, w):
        """RMSNorm in f32 (returns f32): x * rsqrt(mean(x^2) + eps) * w."""
        xf = x.float()
        return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.c['rms_norm_eps']) * w.float()

    def rope_angles(self, pos0, T):
        """cos, sin [1, T, 1, rot/2] for positions pos0.. (computed once per forward and offset, as HF does)."""
        key = (pos0, T)
        if self._rope_cache is None or self._rope_cache[0] != key:
            pos = torch.arange(pos0, pos0 + T, device=self.device, dtype=torch.float32)
            ang = pos[:, None] * self.inv_freq[None, :]  # [T, rot/2]
            self._rope_cache = (key, ang.cos()[None, :, None, :], ang.sin()[None, :, None, :])
        return self._rope_cache[1], self._rope_cache[2]

    def rope(self, x, pos0):
        """Partial NeoX RoPE on the first rot channels of each head; x [B, T, h, D]; f32 math."""
        cos, sin = self.rope_angles(pos0, x.shape[1])
        half = self.rot // 2
        xf = x.float()
        x1, x2, rest = xf[..., :half], xf[..., half:self.rot], xf[..., self.rot:]
        y = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)
        return y.to(x.dtype)

    def linear(self, x, w, b=None, fp8=True):
        """x W^T (+ b): through Fp8LinearFn when the model is FP8 and this layer is one of its FP8 layers."""
        if not (self.fp8 and fp8):
            return F.linear(x, w, b)
        y = fp8_linear(x, w)
        return y if b is None else y + b

    def swiglu(self, x, wg, wu, wd, fp8=False):
        lin = lambda a, w: self.linear(a, w, fp8=fp8)
        return lin(F.silu(lin(x, wg)) * lin(x, wu), wd)

    # -- lightning attention --

    def lightning_chunked(self, q, k, v, a, S0, C=64):
        """Chunked form (MODEL_SPEC section 2) for q, k, v [B, T, H, D]; f32 state; returns (o, S)."""
        B, T, H, D = q.shape
        s = D ** -0.5
        N = (T + C - 1) // C
        P = N * C - T
        dt = q.dtype

        def chunks(x):
            x = x.transpose(1, 2)  # [B, H, T, D]
            if P:
                x = F.pad(x, (0, 0, 0, P))
            return x.reshape(B, H, N, C, D)
        qc, kc, vc = chunks(q), chunks(k), chunks(v)
        i = torch.arange(C, device=q.device, dtype=torch.float32)
        ah = a.view(H, 1, 1)
        diff = i[:, None] - i[None, :]
        mask = torch.where(diff >= 0, torch.exp(-ah * diff.clamp(min=0)), torch.zeros((), device=q.device))  # [H, C, C]
        dq = torch.exp(-a.view(H, 1) * (i + 1))  # [H, C]  lambda^(i+1)
        # Chunk lengths: the last chunk may be partial; its state update decays by its own length.
        lens = torch.full((N,), float(C), device=q.device)
        lens[-1] = C - P
        dk = torch.exp(-a.view(H, 1, 1) * (lens.view(1, N, 1) - 1 - i.view(1, 1, C)))  # [H, N, C]
        dS = torch.exp(-a.view(H, 1) * lens.view(1, N))  # [H, N]
        # Intra-chunk: ((Q K^T) * mask) V with the products in the compute dtype (f32 accumulation).
        qk = torch.matmul(qc, kc.transpose(-1, -2)).float() * (mask.view(1, H, 1, C, C) * s)
        o = torch.matmul(qk.to(dt), vc).float()
        # State contributions of each chunk, then the sequential scan over chunks (f32).
        kv = torch.matmul((kc.float() * dk.view(1, H, N, C, 1)).transpose(-1, -2), vc.float())  # [B, H, N, D, D]
        S = torch.zeros(B, H, D, D, device=q.device, dtype=torch.float32) if S0 is None else S0
        states = torch.empty(B, H, N, D, D, device=q.device, dtype=torch.float32)
        for n in range(N):
            states[:, :, n] = S
            S = dS[:, n].view(1, H, 1, 1) * S + kv[:, :, n]
        o = o + torch.matmul(qc.float() * (dq.view(1, H, 1, C, 1) * s), states)
        o = o.reshape(B, H, N * C, D)[:, :, :T].transpose(1, 2)
        return o.to(dt), S

    def lightning_recurrent(self, q, k, v, a, S):
        """One token at a time (the decode step): S = lambda S + k^T v; o = s q S (f32)."""
        B, T, H, D = q.shape
        s = D ** -0.5
        lam = torch.exp(-a).view(1, H, 1, 1)
        outs = []
        for t in range(T):
            qt, kt, vt = (x[:, t].float().unsqueeze(-2) for x in (q, k, v))  # [B, H, 1, D]
            S = lam * S + kt.transpose(-1, -2) @ vt
            outs.append((qt * s) @ S)
        o = torch.cat(outs, dim=-2).transpose(1, 2)  # [B, T, H, D]
        return o.to(q.dtype), S

    def linear_attention(self, l, x, cache):
        c, p = self.c, self.p
        B, T, _ = x.shape
        H, D = c['num_attention_heads'], c['head_dim']
        HD = H * D
        pre = f'model.layers.{l}.attention'
        qkv = self.linear(x, p[f'{pre}.query_key_value.weight'], p.get(f'{pre}.query_key_value.bias'))
        if c['linear_silu']:
            qkv = F.silu(qkv)
        q, k, v = (t.reshape(B, T, H, D) for t in qkv.split(HD, dim=-1))
        if c['use_qk_norm']:
            q = self.rms(q, p[f'{pre}.query_layernorm.weight']).to(x.dtype)
            k = self.rms(k, p[f'{pre}.key_layernorm.weight']).to(x.dtype)
        pos0 = cache['pos'] if cache is not None else 0
        q, k = self.rope(q, pos0), self.rope(k, pos0)
        a = self.decay[l]
        if cache is not None and T <= 8:
            o, S = self.lightning_recurrent(q, k, v, a, cache['S'])
        else:
            o, S = self.lightning_chunked(q, k, v, a, cache['S'] if cache is not None else None)
        if cache is not None:
            cache['S'] = S
            cache['pos'] += T
        G = c['group_norm_size']
        of = o.reshape(B, T, G, HD // G).float()
        n = (of * torch.rsqrt(of.pow(2).mean(-1, keepdim=True) + c['rms_norm_eps'])).reshape(B, T, HD)
        g = self.linear(x, p[f'{pre}.g_proj.weight'])
        gated = (n * p[f'{pre}.g_norm.weight'].float() * torch.sigmoid(g.float())).to(x.dtype)
        return self.linear(gated, p[f'{pre}.dense.weight'], p.get(f'{pre}.dense.bias'))

    # -- softmax attention --

    def sdpa(self, q, k, v, causal):
        """q [B, H, Tq, D], k/v [B, Hkv, Tk, D]; GQA; scale D^-0.5."""
        H, Hkv = q.shape[1], k.shape[1]
        if hasattr(F, 'scaled_dot_product_attention'):
            try:
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=(H != Hkv))
            except TypeError:  # no enable_gqa in this torch
                r = H // Hkv
                return F.scaled_dot_product_attention(q, k.repeat_interleave(r, 1), v.repeat_interleave(r, 1), is_causal=causal)
        r = H // Hkv
        k, v = k.repeat_interleave(r, 1), v.repeat_interleave(r, 1)
        sc = (q.float() @ k.float().transpose(-1, -2)) * (q.shape[-1] ** -0.5)
        if causal:
            Tq, Tk = q.shape[2], k.shape[2]
            m = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril(Tk - Tq)
            sc = sc.masked_fill(~m, float('-inf'))
        return (sc.softmax(-1) @ v.float()).to(q.dtype)

    def softmax_attention(self, l, x, cache):
        c, p = self.c, self.p
        B, T, _ = x.shape
        H, Hkv, D = c['num_attention_heads'], c['num_key_value_heads'], c['head_dim']
        pre = f'model.layers.{l}.attention'
        qkv = self.linear(x, p[f'{pre}.query_key_value.weight'], p.get(f'{pre}.query_key_value.bias'))
        q, k, v = qkv.split([H * D, Hkv * D, Hkv * D], dim=-1)
        q, k, v = q.reshape(B, T, H, D), k.reshape(B, T, Hkv, D), v.reshape(B, T, Hkv, D)
        if c['use_qk_norm']:
            q = self.rms(q, p[f'{pre}.query_layernorm.weight']).to(x.dtype)
            k = self.rms(k, p[f'{pre}.key_layernorm.weight']).to(x.dtype)
        L0 = cache['len'] if cache is not None else 0
        q, k = self.rope(q, L0), self.rope(k, L0)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if cache is not None:
            need = L0 + T
            if need > cache['K'].shape[2]:
                grow = lambda X: torch.cat([X, torch.empty(X.shape[0], X.shape[1], max(need, 2 * X.shape[2]) - X.shape[2], X.shape[3], dtype=X.dtype, device=X.device)], dim=2)
                cache['K'], cache['V'] = grow(cache['K']), grow(cache['V'])
            cache['K'][:, :, L0:need] = k
            cache['V'][:, :, L0:need] = v
            cache['len'] = need
            K, V = cache['K'][:, :, :need], cache['V'][:, :, :need]
            if T == 1:
                o = self.sdpa(q, K, V, causal=False)
            elif L0 == 0:
                o = self.sdpa(q, k, v, causal=True)
            else:  # a chunk after cached tokens: the general causal mask with an offset
                o = self.sdpa_offset(q, K, V, L0)
        else:
            o = self.sdpa(q, k, v, causal=True)
        o = o.transpose(1, 2).reshape(B, T, H * D)
        return self.linear(o, p[f'{pre}.dense.weight'], p.get(f'{pre}.dense.bias'))

    def sdpa_offset(self, q, K, V, L0):
        H, Hkv = q.shape[1], K.shape[1]
        r = H // Hkv
        K, V = K.repeat_interleave(r, 1), V.repeat_interleave(r, 1)
        Tq, Tk = q.shape[2], K.shape[2]
        m = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril(L0)
        sc = (q.float() @ K.float().transpose(-1, -2)) * (q.shape[-1] ** -0.5)
        return (sc.masked_fill(~m, float('-inf')).softmax(-1) @ V.float()).to(q.dtype)

    # -- MoE --

    def route(self, l, x2):
        c, p = self.c, self.p
        E, K = c['num_experts'], c['num_experts_per_tok']
        logits = x2.float() @ p[f'model.layers.{l}.mlp.gate.weight'].float().t()
        s = torch.sigmoid(logits) if c['score_function'] == 'sigmoid' else logits.softmax(-1)
        b = s + p[f'model.layers.{l}.mlp.gate.expert_bias'].float()
        G = c['n_group']
        if G > 1:
            N = b.shape[0]
            grp = b.view(N, G, E // G)
            gs = grp.topk(min(2, E // G), dim=-1).values.sum(-1)
            top = gs.topk(c['topk_group'], dim=-1).indices
            keep = torch.zeros(N, G, dtype=torch.bool, device=b.device).scatter(1, top, True)
            b = grp.masked_fill(~keep.unsqueeze(-1), 0.0).reshape(N, E)
        idx = b.topk(K, dim=-1).indices
        w = s.gather(1, idx)
        if c['norm_topk_prob']:
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        return idx, w * c['routed_scaling_factor']

    def experts(self, l, x2, idx, w):
        """sum_k w_k Expert_{idx_k}(x): tokens sorted by expert, grouped GEMMs (or a loop), f32 combine."""
        p = self.p
        N, K = idx.shape
        E = self.c['num_experts']
        Wg, Wu, Wd = p[f'experts.{l}.gate'], p[f'experts.{l}.up'], p[f'experts.{l}.down']
        flat = idx.reshape(-1)
        order = torch.sort(flat, stable=True).indices
        tok = order // K
        xs = x2[tok]
        # Tokens per expert without a host sync (torch.bincount on CUDA reads the max back first).
        counts = torch.zeros(E, dtype=torch.int64, device=flat.device).index_add_(0, flat, torch.ones_like(flat))
        if self.moe_impl == 'grouped_mm':
            offs = counts.cumsum(0).to(torch.int32)
            g = torch._grouped_mm(xs, Wg.transpose(-2, -1), offs=offs)
            u = torch._grouped_mm(xs, Wu.transpose(-2, -1), offs=offs)
            y = torch._grouped_mm(F.silu(g) * u, Wd.transpose(-2, -1), offs=offs)
        else:
            parts = []
            start = 0
            for e, n in enumerate(counts.tolist()):
                if n:
                    parts.append(self.swiglu(xs[start:start + n], Wg[e], Wu[e], Wd[e]))
                start += n
            y = torch.cat(parts, 0)
        y = y.float() * w.reshape(-1)[order].unsqueeze(1)
        out = torch.zeros(N, x2.shape[1], dtype=torch.float32, device=x2.device).index_add(0, tok, y)
        return out.to(x2.dtype)

    def mlp(self, l, x):
        p = self.p
        B, T, h = x.shape
        m = f'model.layers.{l}.mlp'
        if self.mlps[l] == 'dense':
            return self.swiglu(x, p[f'{m}.gate_proj.weight'], p[f'{m}.up_proj.weight'], p[f'{m}.down_proj.weight'], fp8=True)
        x2 = x.reshape(B * T, h)
        idx, w = self.route(l, x2)
        y = self.experts(l, x2, idx, w)
        if f'{m}.shared_experts.gate_proj.weight' in p:
            y = y + self.swiglu(x2, p[f'{m}.shared_experts.gate_proj.weight'], p[f'{m}.shared_experts.up_proj.weight'], p[f'{m}.shared_experts.down_proj.weight'])
        return y.reshape(B, T, h)

    # -- whole model --

    def new_cache(self, B, capacity):
        c = self.c
        H, Hkv, D = c['num_attention_heads'], c['num_key_value_heads'], c['head_dim']
        out = []
        for kind in self.kinds:
            if kind == 'linear':
                out.append({'S': torch.zeros(B, H, D, D, device=self.device, dtype=torch.float32), 'pos': 0})
            else:
                out.append({'K': torch.empty(B, Hkv, capacity, D, device=self.device, dtype=self.dtype),
                            'V': torch.empty(B, Hkv, capacity, D, device=self.device, dtype=self.dtype), 'len': 0})
        return out

    def forward(self, ids, cache=None, last_only=False, targets=None):
        c, p = self.c, self.p
        h = F.embedding(ids, p['model.word_embeddings.weight']).float()
        for l, kind in enumerate(self.kinds):
            pre = f'model.layers.{l}'
            x = self.rms(h, p[f'{pre}.input_layernorm.weight']).to(self.dtype)
            lc = cache[l] if cache is not None else None
            a = self.linear_attention(l, x, lc) if kind == 'linear' else self.softmax_attention(l, x, lc)
            h = h + a.float()
            y = self.rms(h, p[f'{pre}.post_attention_layernorm.weight']).to(self.dtype)
            h = h + self.mlp(l, y).float()
        h = self.rms(h, p['model.norm.weight'])
        head = p['lm_head.weight'] if 'lm_head.weight' in p else p['model.word_embeddings.weight']
        if last_only:
            h = h[:, -1:]
        logits = F.linear(h, head.float())
        if targets is not None:
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        return logits


def stack_experts(c, p):
    """Per-expert HF weights -> stacked [E, out, in] per layer and projection (the grouped GEMM's operand)."""
    for l, kind in enumerate(mlp_kinds(c)):
        if kind != 'moe':
            continue
        for proj, key in (('gate_proj', 'gate'), ('up_proj', 'up'), ('down_proj', 'down')):
            names = [f'model.layers.{l}.mlp.experts.{e}.{proj}.weight' for e in range(c['num_experts'])]
            p[f'experts.{l}.{key}'] = torch.stack([p.pop(n) for n in names])
    return p


def random_params(c, device, dtype, std=0.02, requires_grad=False):
    """Random weights drawn on the device (HF init rule: N(0, std^2) weights, ones for norms, zero expert bias)."""
    H, Hkv, D, h = c['num_attention_heads'], c['num_key_value_heads'], c['head_dim'], c['hidden_size']
    HD = H * D
    p = {}

    def w(name, shape, dt=dtype):
        p[name] = (torch.randn(shape, device=device, dtype=dt) * std)

    def ones(name, shape, dt=dtype):
        p[name] = torch.ones(shape, device=device, dtype=dt)
    w('model.word_embeddings.weight', (c['vocab_size'], h))
    kinds, mlps = layer_kinds(c), mlp_kinds(c)
    shared = c['num_shared_experts'] * (c.get('moe_shared_expert_intermediate_size') or c['moe_intermediate_size'])
    for l in range(c['num_hidden_layers']):
        pre = f'model.layers.{l}'
        ones(f'{pre}.input_layernorm.weight', (h,))
        ones(f'{pre}.post_attention_layernorm.weight', (h,))
        a = f'{pre}.attention'
        if kinds[l] == 'linear':
            w(f'{a}.query_key_value.weight', (3 * HD, h))
            w(f'{a}.g_proj.weight', (HD, h))
            ones(f'{a}.g_norm.weight', (HD,))
        else:
            w(f'{a}.query_key_value.weight', ((H + 2 * Hkv) * D, h))
        w(f'{a}.dense.weight', (h, HD))
        ones(f'{a}.query_layernorm.weight', (D,))
        ones(f'{a}.key_layernorm.weight', (D,))
        m = f'{pre}.mlp'
        if mlps[l] == 'dense':
            i = c['intermediate_size']
            w(f'{m}.gate_proj.weight', (i, h))
            w(f'{m}.up_proj.weight', (i, h))
            w(f'{m}.down_proj.weight', (h, i))
        else:
            E, i = c['num_experts'], c['moe_intermediate_size']
            w(f'{m}.gate.weight', (E, h), torch.float32)
            p[f'{m}.gate.expert_bias'] = torch.zeros(E, device=device, dtype=torch.float32)
            w(f'experts.{l}.gate', (E, i, h))
            w(f'experts.{l}.up', (E, i, h))
            w(f'experts.{l}.down', (E, h, i))
            if shared:
                w(f'{m}.shared_experts.gate_proj.weight', (shared, h))
                w(f'{m}.shared_experts.up_proj.weight', (shared, h))
                w(f'{m}.shared_experts.down_proj.weight', (h, shared))
    ones('model.norm.weight', (h,), torch.float32)
    w('lm_head.weight', (c['vocab_size'], h), torch.float32)
    if requires_grad:
        for k, t in p.items():
            if not k.endswith('expert_bias'):
                t.requires_grad_(True)
    return p


def pick_moe_impl(model, device, notes):
    """torch._grouped_mm if it exists here and agrees with the per-expert loop (forward and backward)."""
    if device.type != 'cuda' or not hasattr(torch, '_grouped_mm'):
        model.moe_impl = 'loop'
        notes.append('MoE experts: per-expert loop (no torch._grouped_mm)')
        return
    try:
        torch.manual_seed(0)
        E, h, i, N, K = 8, 256, 128, 100, 2
        dt = model.dtype
        x = torch.randn(N, h, device=device, dtype=dt, requires_grad=True)
        Wg, Wu, Wd = (torch.randn(E, i, h, device=device, dtype=dt) * 0.05, torch.randn(E, i, h, device=device, dtype=dt) * 0.05,
                      torch.randn(E, h, i, device=device, dtype=dt) * 0.05)
        for W in (Wg, Wu, Wd):
            W.requires_grad_(True)
        idx = torch.stack([torch.randperm(E, device=device)[:K] for _ in range(N)])
        wt = torch.rand(N, K, device=device)
        saved = {k: model.p.get(k) for k in ('experts.0.gate', 'experts.0.up', 'experts.0.down')}
        model.p.update({'experts.0.gate': Wg, 'experts.0.up': Wu, 'experts.0.down': Wd})
        E0 = model.c['num_experts']
        model.c['num_experts'] = E
        outs = {}
        try:
            for impl in ('loop', 'grouped_mm'):
                model.moe_impl = impl
                y = model.experts(0, x, idx, wt)
                gx, gw = torch.autograd.grad(y.float().square().sum(), [x, Wd])
                outs[impl] = (y.float(), gx.float(), gw.float())
        finally:
            model.c['num_experts'] = E0
            for k, v in saved.items():
                if v is None:
                    model.p.pop(k, None)
                else:
                    model.p[k] = v
        errs = [((a - b).abs().max() / b.abs().max().clamp(min=1e-30)).item() for a, b in zip(outs['grouped_mm'], outs['loop'])]
        if max(errs) < 3e-2:
            model.moe_impl = 'grouped_mm'
            notes.append(f'MoE experts: torch._grouped_mm (vs loop: rel {max(errs):.1e})')
        else:
            model.moe_impl = 'loop'
            notes.append(f'MoE experts: per-expert loop (torch._grouped_mm disagreed: rel {errs})')
    except Exception as err:  # noqa: BLE001 - any failure means: use the loop
        model.moe_impl = 'loop'
        notes.append(f'MoE experts: per-expert loop (torch._grouped_mm failed: {str(err).splitlines()[0][:200]})')


# ------------------------------------------------------------------------------------------------
# --check: our checkpoint, our tokens, our logits


SAFE_DT = {'F32': torch.float32, 'BF16': torch.bfloat16, 'F16': torch.float16, 'I32': torch.int32, 'I64': torch.int64}


def read_safetensors(path):
    out = {}
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    for name, e in header.items():
        if name == '__metadata__':
            continue
        s, t = e['data_offsets']
        buf = bytearray(data[s:t])
        dt = SAFE_DT[e['dtype']]
        if dt in (torch.bfloat16, torch.float16):
            x = torch.frombuffer(buf, dtype=torch.int16).view(dt) if buf else torch.empty(0, dtype=dt)
        else:
            x = torch.frombuffer(buf, dtype=dt) if buf else torch.empty(0, dtype=dt)
        out[name] = x.reshape(e['shape']).clone()
    return out


def load_checkpoint(d):
    idx = os.path.join(d, 'model.safetensors.index.json')
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))['weight_map'].values()))
    else:
        files = ['model.safetensors']
    p = {}
    for f in files:
        p.update(read_safetensors(os.path.join(d, f)))
    return p


def check(d):
    c = fill_defaults(json.load(open(os.path.join(d, 'config.json'))))
    info = json.load(open(os.path.join(d, 'check.json')))
    dtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[c.get('torch_dtype') or 'float32']
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    raw = load_checkpoint(d)
    # Parameters in the checkpoint's dtypes (the router, final norm and lm_head are f32 there).
    p = {k: v.to(device) for k, v in raw.items()}
    p = stack_experts(c, p)
    model = Model(c, p, device, dtype)
    notes = []
    pick_moe_impl(model, device, notes)
    B, T, V = info['batch'], info['time'], info['vocab']
    ids = torch.tensor(info['ids'], dtype=torch.long, device=device).reshape(B, T)
    tol = info['tol']
    results = []

    def compare(what, got, file, shape):
        want = torch.frombuffer(bytearray(open(os.path.join(d, file), 'rb').read()), dtype=torch.float32).reshape(shape)
        got = got.detach().float().cpu().reshape(shape)
        diff = (got - want).abs()
        finite = torch.isfinite(got).all().item() and torch.isfinite(want).all().item()
        max_abs = diff.max().item()
        max_ref = want.abs().max().item()
        rel = max_abs / max(max_ref, 1e-30)
        at = int(diff.reshape(-1).argmax().item())
        pos, rem = [], at
        for dim in reversed(shape):
            pos.append(rem % dim)
            rem //= dim
        pos.reverse()
        worst = f'worst at {pos}: torch {got.reshape(-1)[at].item():.6g} ours {want.reshape(-1)[at].item():.6g}'
        # Tokens whose argmax differs (a routing flip shows up here first).
        flips = (got.argmax(-1) != want.argmax(-1)).sum().item()
        r = dict(what=what, max_abs=max_abs, max_ref=max_ref, rel=rel, worst=f'{worst}; argmax differs at {flips} of {got.numel() // shape[-1]} positions', ok=bool(finite and rel <= tol))
        results.append(r)
        print(f"{what}: max|diff| {max_abs:.3e} max|ours| {max_ref:.3e} rel {rel:.2e} (tol {tol}) {'ok' if r['ok'] else 'FAIL'}; {r['worst']}")

    with torch.no_grad():
        logits = model.forward(ids)
        compare('full forward', logits, 'ours_logits.f32', [B, T, V])
        cache = model.new_cache(B, 16)
        n0 = info['prefill_tokens']
        model.forward(ids[:, :n0], cache=cache, last_only=True)
        last = None
        for t in range(n0, n0 + info['decode_steps']):
            last = model.forward(ids[:, t:t + 1], cache=cache, last_only=True)
        compare('cached decode', last, 'ours_cached.f32', [B, V])
    json.dump(dict(device=str(torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'), torch=torch.__version__, dtype=str(dtype), notes=notes, results=results),
              open(os.path.join(d, 'torch_check.json'), 'w'))
    for n in notes:
        print(n)
    return 0


# ------------------------------------------------------------------------------------------------
# Timings


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def time_it(fn, device, max_reps, limit_ms, budget_ms):
    def wall():
        t0 = time.perf_counter()
        fn()
        sync(device)
        return 1000 * (time.perf_counter() - t0)
    first = wall()
    if first > limit_ms:
        return dict(ms=first, runs=1, first_ms=first, notes=[f'one call only ({first / 1000:.1f} s > limit)'])
    second = wall()
    reps = max(1, min(max_reps, int(budget_ms / max(second, 1e-3))))
    if device.type == 'cuda':
        evs = [torch.cuda.Event(enable_timing=True) for _ in range(reps + 1)]
        evs[0].record()
        h0 = time.perf_counter()
        for i in range(reps):
            fn()
            evs[i + 1].record()
        # Host time to enqueue one call: close to the GPU time means Python dispatch bounds the step.
        host_ms = 1000 * (time.perf_counter() - h0) / reps
        torch.cuda.synchronize()
        ts = sorted(evs[i].elapsed_time(evs[i + 1]) for i in range(reps))
        return dict(ms=ts[len(ts) // 2], runs=reps, first_ms=first, host_ms=host_ms, notes=[f'host enqueue {host_ms:.1f} ms/call'])
    ts = sorted(wall() for _ in range(reps))
    return dict(ms=ts[len(ts) // 2], runs=reps, first_ms=first, notes=[])


def graph_decode(m, ids, cache):
    """The same decode step captured in a CUDA graph and replayed: torch's kernels without Python's
    dispatch cost (each replay recomputes the captured step at one position: the same work)."""
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):
                m.forward(ids, cache=cache, last_only=True)
        torch.cuda.current_stream().wait_stream(s)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            m.forward(ids, cache=cache, last_only=True)
        m._rope_cache = None
        for _ in range(3):
            g.replay()
        torch.cuda.synchronize()
        evs = [torch.cuda.Event(enable_timing=True) for _ in range(21)]
        evs[0].record()
        for i in range(20):
            g.replay()
            evs[i + 1].record()
        torch.cuda.synchronize()
        ts = sorted(evs[i].elapsed_time(evs[i + 1]) for i in range(20))
        del g
        return f'CUDA-graph replay {ts[10]:.2f} ms'
    except Exception as err:  # noqa: BLE001 - an extra, reported and skipped
        m._rope_cache = None
        return f'CUDA graph failed: {str(err).splitlines()[0][:160] if str(err) else type(err).__name__}'


def timings():
    t_start = time.perf_counter()
    small = os.environ.get('MODEL_SMALL') == '1'
    only = [w.strip() for w in os.environ.get('MODEL_ONLY', '').split(',') if w.strip()]
    budget_ms = 1000 * float(os.environ.get('MODEL_TORCH_BUDGET_S', '250'))
    limit_ms = 1000 * float(os.environ.get('MODEL_MEAS_LIMIT_S', '45'))
    left = lambda: budget_ms - 1000 * (time.perf_counter() - t_start)
    selected = lambda name: not only or any(name == w or name.startswith(w) for w in only)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    out = dict(device=torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu', torch=torch.__version__, notes=[], params={}, configs={}, benchmarks={})

    def log(s):
        print(s, file=sys.stderr, flush=True)
    tiny = os.environ.get('MODEL_TINY') == '1'
    mini, train = (dict(TINY), dict(TINY)) if tiny else (mini_config(small), train_config(small))
    out['configs'] = dict(mini=mini, train=train)
    ctxs = [64, 160] if tiny else [512, 2048] if small else [4096, 32768]
    batches = [1, 4] if tiny else [1, 64]
    train_T = 64 if tiny else 1024 if small else 4096
    dtype = torch.bfloat16
    slow = {}

    def dominated(fam, size):
        return any(all(a >= b for a, b in zip(size, s)) for s in slow.get(fam, []))

    def measure(name, fam, size, fn, tokens, max_reps):
        if not selected(name):
            return
        if left() < 15000:
            out['benchmarks'][name] = dict(error='skipped (budget)')
            return
        if dominated(fam, size):
            out['benchmarks'][name] = dict(error='skipped (a smaller one was too slow or failed)')
            return
        try:
            if device.type == 'cuda':
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            r = fn(max_reps, min(20000.0, left() / 4))
            if r['runs'] == 1:
                slow.setdefault(fam, []).append(size)
            if device.type == 'cuda':
                r['peak_gib'] = torch.cuda.max_memory_allocated() / GIB
            r['tokens_per_s'] = tokens * 1000 / r['ms']
            out['benchmarks'][name] = r
            log(f"{name}: {r['ms']:.3f} ms, {r['tokens_per_s']:.0f} tokens/s ({r['runs']} runs, first {r['first_ms']:.0f} ms, peak {r.get('peak_gib', 0):.1f} GiB)")
        except Exception as err:  # noqa: BLE001 - report and go on
            slow.setdefault(fam, []).append(size)
            msg = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
            out['benchmarks'][name] = dict(error=f'failed: {msg}')
            log(f'{name} FAILED: {err!r}')

    decodes = [(B, ctx) for B in batches for ctx in ctxs]
    want_mini = any(selected(f'decode-B{B}-ctx{ctx}') for B, ctx in decodes) or any(selected(f'prefill-T{T}') for T in ctxs)
    try:
        if want_mini:
            torch.manual_seed(1)
            t0 = time.perf_counter()
            with torch.no_grad():
                p = random_params(mini, device, dtype)
            m = Model(mini, p, device, dtype)
            out['params']['mini'] = sum(t.numel() for t in p.values())
            pick_moe_impl(m, device, out['notes'])
            sync(device)
            log(f"mini model: {out['params']['mini']} params, built in {time.perf_counter() - t0:.1f} s; {out['notes'][-1]}")
            H, Hkv, D = mini['num_attention_heads'], mini['num_key_value_heads'], mini['head_dim']
            V = mini['vocab_size']
            for B, ctx in decodes:
                def run_decode(max_reps, bud, B=B, ctx=ctx):
                    spare = max_reps + 8
                    with torch.no_grad():
                        cache = m.new_cache(B, ctx + spare)
                        for lc in cache:
                            if 'S' in lc:
                                lc['S'] = torch.randn(B, H, D, D, device=device, dtype=torch.float32) * 0.05
                                lc['pos'] = ctx
                            else:
                                lc['K'][:, :, :ctx].normal_()
                                lc['V'][:, :, :ctx].normal_()
                                lc['len'] = ctx
                        ids = torch.randint(0, V, (B, 1), device=device)
                        r = time_it(lambda: m.forward(ids, cache=cache, last_only=True), device, max_reps, limit_ms, bud)
                        del cache
                        return r
                measure(f'decode-B{B}-ctx{ctx}', 'decode', (B, ctx), run_decode, B, 20)
            for T in ctxs:
                def run_prefill(max_reps, bud, T=T):
                    ids = torch.randint(0, V, (1, T), device=device)

                    def once():
                        with torch.no_grad():
                            cache = m.new_cache(1, T)
                            m.forward(ids, cache=cache, last_only=True)
                    return time_it(once, device, max_reps, limit_ms, bud)
                measure(f'prefill-T{T}', 'prefill', (T,), run_prefill, T, 10)
            # Last (a failed capture could disturb what follows): the decode steps as CUDA graphs.
            if device.type == 'cuda' and os.environ.get('MODEL_TORCH_GRAPH', '1') != '0':
                for B, ctx in decodes:
                    r = out['benchmarks'].get(f'decode-B{B}-ctx{ctx}')
                    if not r or 'ms' not in r or left() < 15000:
                        continue
                    with torch.no_grad():
                        cache = m.new_cache(B, ctx + 8)
                        for lc in cache:
                            if 'S' in lc:
                                lc['S'] = torch.randn(B, H, D, D, device=device, dtype=torch.float32) * 0.05
                                lc['pos'] = ctx
                            else:
                                lc['K'][:, :, :ctx].normal_()
                                lc['V'][:, :, :ctx].normal_()
                                lc['len'] = ctx
                        ids = torch.randint(0, V, (B, 1), device=device)
                        note = graph_decode(m, ids, cache)
                        del cache
                    r['notes'].append(note)
                    log(f'decode-B{B}-ctx{ctx}: {note}')
            del m, p
            if device.type == 'cuda':
                torch.cuda.empty_cache()
    except Exception as err:  # noqa: BLE001
        out['notes'].append(f'mini model failed: {str(err).splitlines()[0][:300]}')
        log(f'mini model failed: {err!r}')

    for prec in ('bf16', 'fp8'):
        name = f'train-{prec}-T{train_T}'
        if not selected(name):
            continue
        if left() < 20000:
            out['benchmarks'][name] = dict(error='skipped (budget)')
            continue
        fp8 = prec == 'fp8'
        try:
            check_note = None
            if fp8:
                vs_f32, vs_codes = fp8_self_check(device, dtype)
                check_note = ('FP8 linear self-check, rel err (y, dx, dw) vs f32 {:.1e} {:.1e} {:.1e}, '
                              'vs dequantized codes {:.1e} {:.1e} {:.1e}').format(*vs_f32, *vs_codes)
                log(check_note)
                if not (max(vs_f32) < 0.1 and max(vs_codes) < 1e-2):
                    raise RuntimeError(f'FP8 linear self-check failed: {check_note}')
            torch.manual_seed(3)
            p = random_params(train, device, dtype, requires_grad=True)
            out['params']['train'] = sum(t.numel() for t in p.values())
            m = Model(train, p, device, dtype, fp8=fp8)
            pick_moe_impl(m, device, out['notes'])
            V = train['vocab_size']
            ids = torch.randint(0, V, (1, train_T + 1), device=device)
            x, y = ids[:, :-1], ids[:, 1:]
            leaves = [t for t in p.values() if t.requires_grad]

            def step():
                for t in leaves:
                    t.grad = None
                loss = m.forward(x, targets=y)
                loss.backward()
                return loss

            def run_train(max_reps, bud):
                loss = step()
                r = time_it(step, device, max_reps, limit_ms, bud)
                r['notes'] = r['notes'] + [f'loss {loss.item():.3f}', 'forward + backward, no optimizer step']
                if fp8:
                    r['notes'] += [check_note, 'FP8 linear layers (attention + dense MLP) via torch._scaled_mm blockwise '
                                   '(1x128 activations/gradients, 128x128 weights), eager torch quantization; experts bf16']
                return r
            measure(name, f'train-{prec}', (0,), run_train, train_T, 10)
            del m, p, leaves
        except Exception as err:  # noqa: BLE001
            out['benchmarks'][name] = dict(error=f'failed: {str(err).splitlines()[0][:300]}')
            log(f'{name} failed: {err!r}')
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    out['secs'] = time.perf_counter() - t_start
    return out


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == '--check':
        return check(sys.argv[2])
    out = timings()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
