#!/usr/bin/env python3
"""PyTorch baselines of the `moe` step (tools/gpu/steps/moe.ts): a straightforward PyTorch MoE at
Ring-mini shapes (4096 tokens, hidden 2048, 256 experts, top-8, n_group 8 / topk_group 4,
moe_intermediate_size 512, gate and up fused to 1024 rows), bf16, measured on the same card in the
same run (CUDA events per run after warm-up, median). Prints JSON:
    {"device": ..., "torch": ..., "benchmarks": {name: {"ms": median, "ms_min": ...}}, "notes": [...]}

  router_bf16         logits = x.float() @ w.float().t() (fp32 GEMM, TF32 off), sigmoid, + bias,
                      group scores (top-2 sum), torch.topk of groups, masked torch.topk, gather,
                      normalize, scale
  router_gemm_bf16    the fp32 logits alone
  plan_permute_bf16   stable argsort of the expert ids, bincount + cumsum offsets, index_select rows
  gmm_gateup_bf16     [32768, 2048] x [256, 1024, 2048]^T per expert: torch._grouped_mm when it runs
                      (bf16, H100), else the loop; gmm_gateup_bf16_loop: a loop of per-expert matmuls
  gmm_down_bf16       [32768, 512] x [256, 2048, 512]^T likewise (and _loop)
  gmm_atb_gateup_bf16 weight gradient dW_e = dy_e^T x_e, [256, 1024, 2048] (grouped_mm over K, else
                      the loop; and _loop)
  combine_bf16        y = zeros(f32).index_add_(0, token, yp.float() * w) -> bf16
"""
import json
import statistics
import sys

import torch

N, H, E, K, NG, TG, I = 4096, 2048, 256, 8, 8, 4, 512
SCALE = 2.5


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


def router(x, w, bias):
    logits = x.float() @ w.float().t()
    s = torch.sigmoid(logits)
    b = s + bias
    g = b.view(-1, NG, E // NG)
    gs = g.topk(2, dim=-1).values.sum(-1)
    keep = torch.zeros_like(gs).scatter_(1, gs.topk(TG, dim=-1).indices, 1.0)
    masked = (g * keep.unsqueeze(-1)).view(-1, E)
    idx = masked.topk(K, dim=-1).indices
    sel = s.gather(1, idx)
    wts = sel / (sel.sum(-1, keepdim=True) + 1e-20) * SCALE
    return wts, idx.int(), s


def plan_permute(x, idx):
    flat = idx.view(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=E)
    offsets = torch.cumsum(counts, 0)
    xp = x.index_select(0, order // K)
    return xp, order, offsets


def loop_gmm(xp, w, ends):
    """y_e = xp_e @ w_e^T per expert (ends: host list of segment ends)."""
    out = torch.empty(xp.shape[0], w.shape[1], dtype=xp.dtype, device=xp.device)
    start = 0
    for e, end in enumerate(ends):
        if end > start:
            torch.matmul(xp[start:end], w[e].t(), out=out[start:end])
        start = end
    return out


def loop_atb(a, b, ends):
    out = torch.empty(len(ends), a.shape[1], b.shape[1], dtype=a.dtype, device=a.device)
    start = 0
    for e, end in enumerate(ends):
        if end > start:
            torch.matmul(a[start:end].t(), b[start:end], out=out[e])
        else:
            out[e].zero_()
        start = end
    return out


def main():
    notes = []
    dev = torch.device("cuda")
    torch.manual_seed(0)
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "benchmarks": {}, "notes": notes}
    bench = result["benchmarks"]

    x = torch.randn(N, H, device=dev, dtype=torch.bfloat16)
    wg = (torch.randn(E, H, device=dev) * H**-0.5).to(torch.bfloat16)
    bias = torch.randn(E, device=dev) * 0.01
    bench["router_gemm_bf16"] = time_gpu(lambda: x.float() @ wg.float().t(), 50)
    bench["router_bf16"] = time_gpu(lambda: router(x, wg, bias), 50)
    wts, idx, _ = router(x, wg, bias)
    bench["plan_permute_bf16"] = time_gpu(lambda: plan_permute(x, idx), 50)
    xp, order, offsets = plan_permute(x, idx)
    ends = offsets.tolist()
    offs32 = offsets.to(torch.int32)
    rows = N * K

    w_gu = (torch.randn(E, 2 * I, H, device=dev) * H**-0.5).to(torch.bfloat16)
    w_dn = (torch.randn(E, H, I, device=dev) * I**-0.5).to(torch.bfloat16)
    hmid = torch.randn(rows, I, device=dev, dtype=torch.bfloat16)

    grouped = getattr(torch, "_grouped_mm", None)

    def try_grouped(name, fn, check):
        if grouped is None:
            notes.append(f"{name}: torch._grouped_mm does not exist in torch {torch.__version__}; the loop is the baseline")
            return False
        try:
            got = fn()
            torch.cuda.synchronize()
            err = (got.float() - check.float()).abs().max().item() / max(check.float().abs().max().item(), 1e-30)
            if not err < 2e-2:
                notes.append(f"{name}: torch._grouped_mm differs from the loop (max rel err {err:.3e}); the loop is the baseline")
                return False
            bench[name] = time_gpu(fn, 20)
            notes.append(f"{name}: torch._grouped_mm (max rel err vs the loop {err:.2e})")
            return True
        except Exception as ex:  # noqa: BLE001 - any failure means: no grouped_mm baseline
            notes.append(f"{name}: torch._grouped_mm failed ({type(ex).__name__}: {str(ex)[:200]}); the loop is the baseline")
            return False

    for name, a, w in (("gmm_gateup_bf16", xp, w_gu), ("gmm_down_bf16", hmid, w_dn)):
        ref = loop_gmm(a, w, ends)
        bench[name + "_loop"] = time_gpu(lambda: loop_gmm(a, w, ends), 10)
        if not try_grouped(name, lambda: grouped(a, w.transpose(-2, -1), offs=offs32), ref):
            bench[name] = bench[name + "_loop"]
        del ref

    dy = torch.randn(rows, 2 * I, device=dev, dtype=torch.bfloat16)
    ref = loop_atb(dy, xp, ends)
    bench["gmm_atb_gateup_bf16_loop"] = time_gpu(lambda: loop_atb(dy, xp, ends), 10)
    ok = False
    for layout, fn in (
        ("dy^T (strided view) x", lambda: grouped(dy.t(), xp, offs=offs32)),
        ("dy^T contiguous, x", lambda: grouped(dy.t().contiguous(), xp, offs=offs32)),
    ):
        if grouped is not None and not ok:
            ok = try_grouped("gmm_atb_gateup_bf16", fn, ref)
            if ok:
                notes.append(f"gmm_atb_gateup_bf16: layout {layout}")
    if not ok:
        bench["gmm_atb_gateup_bf16"] = bench["gmm_atb_gateup_bf16_loop"]
    del ref

    yp = torch.randn(rows, H, device=dev, dtype=torch.bfloat16)
    token = order // K  # row r of yp belongs to token order[r] / K
    w_row = wts.view(-1)[order]

    def combine():
        y = torch.zeros(N, H, device=dev, dtype=torch.float32)
        y.index_add_(0, token, yp.float() * w_row.unsqueeze(1))
        return y.to(torch.bfloat16)

    bench["combine_bf16"] = time_gpu(combine, 50)
    copy_src = torch.empty(2**29, device=dev, dtype=torch.int16)
    copy_dst = torch.empty_like(copy_src)
    bench["copy_1GiB"] = time_gpu(lambda: copy_dst.copy_(copy_src), 20)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
