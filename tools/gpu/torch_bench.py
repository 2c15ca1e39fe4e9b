#!/usr/bin/env python3
"""PyTorch baselines for the CUDA benchmarks of tools/gpu/run.ts, measured on the same card in the
same run. Same names, shapes and dtypes as the Node side; CUDA-event timing per run after warm-up,
median of many runs, random (never all-zero) inputs. Prints JSON:
    {"device": ..., "torch": ..., "benchmarks": {name: {"ms": median, "ms_min": ...}}}
With --fp8: only the FP8 quantizer baselines of `run.mjs fp8` (eager PyTorch: amax per block,
scale = max(amax / 448, 2^-126), x / scale cast to torch.float8_e4m3fn), the fused ops as eager
chains (RMSNorm, SwiGLU and its backward, the group RMSNorm gate, then the quantizer), plus the copy.
With --attn: only the decode attention baselines of `run.mjs attn`: the lightning step in torch ops
(S.mul_(lambda).add_(k^T v); o = s q S) and softmax decode through
torch.nn.functional.scaled_dot_product_attention, plus the copy.
"""
import json
import statistics
import sys
import time

import torch


def time_gpu(fn, reps, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = [torch.cuda.Event(enable_timing=True) for _ in range(reps + 1)]
    events[0].record()
    for i in range(reps):
        fn()
        events[i + 1].record()
    torch.cuda.synchronize()
    times = [events[i].elapsed_time(events[i + 1]) for i in range(reps)]
    return {"ms": statistics.median(times), "ms_min": min(times)}


FP8_MAX = 448.0
TINY = 2.0**-126


def q_tiles(x):
    """1x128 tiles along the last dim (K a multiple of 128): codes and scales [M, K/128]."""
    m, k = x.shape
    t = x.float().view(m, k // 128, 128)
    s = torch.clamp(t.abs().amax(-1, keepdim=True) / FP8_MAX, min=TINY)
    return (t / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).view(m, k), s.view(m, k // 128)


def q_blocks(x):
    m, k = x.shape
    t = x.float().view(m // 128, 128, k // 128, 128)
    s = torch.clamp(t.abs().amax(dim=(1, 3), keepdim=True) / FP8_MAX, min=TINY)
    return (t / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).view(m, k), s.view(m // 128, k // 128)


def q_rows(x):
    t = x.float()
    s = torch.clamp(t.abs().amax(-1, keepdim=True) / FP8_MAX, min=TINY)
    return (t / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn), s


def q_tensor(x):
    t = x.float()
    s = torch.clamp(t.abs().amax() / FP8_MAX, min=TINY)
    return (t / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn), s


def fp8_main():
    torch.manual_seed(1234)
    dev = torch.device("cuda")
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "benchmarks": {}}
    b = out["benchmarks"]
    n = 2**30 // 4
    src = torch.ones(n, device=dev)
    dst = torch.empty_like(src)
    b["copy_1GiB"] = time_gpu(lambda: dst.copy_(src), 20)
    del src, dst
    s = 8192
    sq = f"{s}^2"
    x = torch.randn(s, s, device=dev, dtype=torch.bfloat16)
    xf = torch.randn(s, s, device=dev)
    w = torch.randn(s, device=dev).abs() + 0.5
    gu = torch.randn(s, 2 * s, device=dev, dtype=torch.bfloat16)
    b[f"fp8_tile_bf16_{sq}"] = time_gpu(lambda: q_tiles(x), 20)
    b[f"fp8_tile_f32_{sq}"] = time_gpu(lambda: q_tiles(xf), 20)
    b[f"fp8_block_bf16_{sq}"] = time_gpu(lambda: q_blocks(x), 20)
    b[f"fp8_row_bf16_{sq}"] = time_gpu(lambda: q_rows(x), 20)
    b[f"fp8_tensor_bf16_{sq}"] = time_gpu(lambda: q_tensor(x), 20)
    b[f"fp8_qt_bf16_{sq}"] = time_gpu(lambda: (q_tiles(x), q_tiles(x.t().contiguous())), 20)

    def rmsq():
        t = x.float()
        y = t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6) * w
        return q_tiles(y)

    def swigluq():
        g, u = gu.float().chunk(2, dim=-1)
        return q_tiles(torch.nn.functional.silu(g) * u)

    b[f"fp8_rmsq_bf16_{sq}"] = time_gpu(rmsq, 20)
    b[f"fp8_swigluq_bf16_{sq}"] = time_gpu(swigluq, 20)
    del x, xf, gu
    torch.cuda.empty_cache()

    # SwiGLU backward + quant+transpose of d[g | u] (the eager chain the fused kernel replaces).
    gu = torch.randn(s, 2 * s, device=dev, dtype=torch.bfloat16)
    dh = torch.randn(s, s, device=dev, dtype=torch.bfloat16)

    def swiglubwdq():
        g, u = gu.float().chunk(2, dim=-1)
        d = dh.float()
        sg = torch.sigmoid(g)
        dg = d * u * (sg + g * sg * (1 - sg))
        du = d * (g * sg)
        dy = torch.cat([dg, du], dim=-1)
        return q_tiles(dy), q_tiles(dy.t().contiguous())

    b[f"fp8_swiglubwdq_bf16_{s}x{2 * s}"] = time_gpu(swiglubwdq, 20)
    del gu, dh
    torch.cuda.empty_cache()

    # Attention output gate: T = 4s tokens x 2048 channels in 4 groups (MODEL_SPEC 2.5).
    t_, c_, groups = 4 * s, 2048, 4
    o = torch.randn(t_, c_, device=dev, dtype=torch.bfloat16)
    gate = torch.randn(t_, c_, device=dev, dtype=torch.bfloat16)
    wg = torch.randn(c_, device=dev).abs() + 0.5
    wgb = wg.to(torch.bfloat16)

    def gate_f32(weight):
        xg = o.float().view(t_, groups, c_ // groups)
        n = (xg * torch.rsqrt(xg.pow(2).mean(-1, keepdim=True) + 1e-6)).view(t_, c_)
        return n * weight.float() * torch.sigmoid(gate.float())

    b[f"fp8_groupgateq_bf16_{t_}x{c_}_g4"] = time_gpu(lambda: q_tiles(gate_f32(wg)), 20)
    b[f"gate_bf16_{t_}x{c_}_g4"] = time_gpu(lambda: gate_f32(wgb).to(torch.bfloat16), 20)
    json.dump(out, sys.stdout, indent=1)
    print()


ATTN_H, ATTN_HKV, ATTN_D = 16, 4, 128


def attn_main():
    """Names, shapes and dtypes as run.ts attn: bf16 activations, f32 lightning state."""
    torch.manual_seed(1234)
    dev = torch.device("cuda")
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "benchmarks": {}, "notes": []}
    b = out["benchmarks"]
    n = 2**30 // 4
    src = torch.ones(n, device=dev)
    dst = torch.empty_like(src)
    b["copy_1GiB"] = time_gpu(lambda: dst.copy_(src), 20)
    del src, dst
    H, D = ATTN_H, ATTN_D
    scale = D**-0.5
    for B in (1, 64):
        S = torch.randn(B, H, D, D, device=dev)
        q, k, v = (torch.randn(B, 1, H, D, device=dev, dtype=torch.bfloat16) for _ in range(3))
        lam = torch.exp(-torch.linspace(0.05, 1.0, H, device=dev)).view(1, H, 1, 1)

        def step():
            qh, kh, vh = (t.float().transpose(1, 2) for t in (q, k, v))  # [B, H, 1, D]
            S.mul_(lam).add_(kh.transpose(-1, -2) @ vh)
            return ((qh @ S) * scale).transpose(1, 2).to(torch.bfloat16)

        b[f"lstep_bf16_B{B}"] = time_gpu(step, 50)
        del S
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for B in (1, 64):
        for ctx in (4096, 32768):
            # The cache in torch's own layout [B, Hkv, T, D]; the one new query sees every key.
            q = torch.randn(B, H, 1, D, device=dev, dtype=torch.bfloat16)
            k = torch.randn(B, ATTN_HKV, ctx, D, device=dev, dtype=torch.bfloat16)
            v = torch.randn(B, ATTN_HKV, ctx, D, device=dev, dtype=torch.bfloat16)
            name = f"sdpa_decode_B{B}_ctx{ctx}"
            try:
                b[name] = time_gpu(lambda: sdpa(q, k, v, enable_gqa=True), 20)
            except (TypeError, RuntimeError) as err:
                # Older torch: no enable_gqa; the heads expanded outside the timed region.
                ke = k.repeat_interleave(H // ATTN_HKV, dim=1)
                ve = v.repeat_interleave(H // ATTN_HKV, dim=1)
                b[name] = time_gpu(lambda: sdpa(q, ke, ve), 20)
                out["notes"].append(f"{name}: enable_gqa unavailable ({err}); k/v expanded to {H} heads before timing")
                del ke, ve
            del q, k, v
            torch.cuda.empty_cache()
    json.dump(out, sys.stdout, indent=1)
    print()


def main():
    if "--fp8" in sys.argv[1:]:
        fp8_main()
        return
    if "--attn" in sys.argv[1:]:
        attn_main()
        return
    torch.manual_seed(1234)
    dev = torch.device("cuda")
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "benchmarks": {}}
    b = out["benchmarks"]

    n = 2**30 // 4
    src = torch.ones(n, device=dev)
    dst = torch.empty_like(src)
    b["copy_1GiB"] = time_gpu(lambda: dst.copy_(src), 20)
    del src, dst

    for n in (4096, 8192):
        a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        c = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        b[f"gemm_bf16_{n}"] = time_gpu(lambda: torch.matmul(a, c), 20 if n == 8192 else 30)
        del a, c

    n = 2**27
    x = torch.randn(n, device=dev)
    y = torch.randn(n, device=dev)
    b["add_f32_2^27"] = time_gpu(lambda: torch.add(x, y), 20)
    b["exp_f32_2^27"] = time_gpu(lambda: torch.exp(x), 20)
    b["sum_f32_2^27"] = time_gpu(lambda: torch.sum(x), 20)
    del x, y

    n = 2**28
    x = torch.randn(n, device=dev, dtype=torch.bfloat16)
    y = torch.randn(n, device=dev, dtype=torch.bfloat16)
    b["add_bf16_2^28"] = time_gpu(lambda: torch.add(x, y), 20)
    del x, y

    r = 16384
    x = torch.randn(r, r, device=dev)
    b["sum_rows_f32_16384^2"] = time_gpu(lambda: torch.sum(x, 1), 20)
    b["sum_cols_f32_16384^2"] = time_gpu(lambda: torch.sum(x, 0), 20)
    del x

    for rows, cols, dt, name in ((8192, 32768, torch.bfloat16, "bf16"), (4096, 4096, torch.float32, "f32")):
        x = torch.randn(rows, cols, device=dev, dtype=dt)
        b[f"softmax_{name}_{rows}x{cols}"] = time_gpu(lambda: torch.softmax(x, -1), 20)
        del x

    # Launch overhead: eager tiny adds (wall time per op), and a CUDA graph of 100 adds.
    x = torch.ones(8, device=dev)
    y = torch.full((8,), 2.0, device=dev)
    for _ in range(200):
        torch.add(x, y)
    torch.cuda.synchronize()
    N = 5000
    t = time.perf_counter()
    for _ in range(N):
        torch.add(x, y)
    torch.cuda.synchronize()
    per = (time.perf_counter() - t) / N * 1e3
    b["launch_add_eager"] = {"ms": per, "ms_min": per}

    ops = 100
    static_x = x.clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        z = static_x
        for _ in range(ops):
            z = torch.add(z, y)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        z = static_x
        for _ in range(ops):
            z = torch.add(z, y)
    g.replay()
    torch.cuda.synchronize()
    assert float(z[0]) == 1 + 2 * ops, float(z[0])
    r = time_gpu(g.replay, 50, 5)
    b["launch_add_graph"] = {"ms": r["ms"] / ops, "ms_min": r["ms_min"] / ops}

    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
