#!/usr/bin/env python3
"""PyTorch baselines of the `flash` step (tools/gpu/steps/flash.ts), same card, same run:
torch.nn.functional.scaled_dot_product_attention(is_causal=True) in bf16 on [B, H, T, D] tensors
(its native layout; ours is [B, T, H, D]), enable_gqa=True when H != Hkv, default backend choice.
Forward timed under no_grad; backward as torch.autograd.grad(out, (q, k, v), dO, retain_graph=True)
of one recorded forward (the backward kernels only). CUDA events per run after warm-up, median.
Prints JSON {"device", "torch", "benchmarks": {name: {"ms", "ms_min"}}, "notes"}.
"""
import json
import statistics
import sys

import torch
import torch.nn.functional as F


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


# name suffix -> (B, T, H, Hkv, D); the Node side uses the same names.
CASES = {
    "mha_T16384_D128": (1, 16384, 16, 16, 128),
    "mha_T16384_D64": (1, 16384, 16, 16, 64),
    "gqa_T4096_D128": (1, 4096, 16, 4, 128),
    "gqa_T32768_D128": (1, 32768, 16, 4, 128),
}


def main():
    small = "--small" in sys.argv
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "benchmarks": {}, "notes": [
        "F.scaled_dot_product_attention(q, k, v, is_causal=True[, enable_gqa=True]) bf16, q/k/v as [B, H, T, D] (torch's native layout)",
        "backward: torch.autograd.grad(out, (q, k, v), dO, retain_graph=True)",
    ]}
    torch.manual_seed(0)
    for name, (B, T, H, Hkv, D) in CASES.items():
        if small:
            T = min(T, 1024)
        try:
            q = torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
            k = torch.randn(B, Hkv, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
            v = torch.randn(B, Hkv, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
            gqa = H != Hkv
            reps = 10 if T >= 16384 else 30

            def fwd():
                return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)

            with torch.no_grad():
                out["benchmarks"]["fwd_" + name] = time_gpu(fwd, reps)
            o = fwd()
            dO = torch.randn_like(o)

            def bwd():
                return torch.autograd.grad(o, (q, k, v), dO, retain_graph=True)

            out["benchmarks"]["bwd_" + name] = time_gpu(bwd, reps)
            del o, dO, q, k, v
            torch.cuda.empty_cache()
        except Exception as e:  # noqa: BLE001 - one failing case must not lose the others
            out["notes"].append(f"{name}: {type(e).__name__}: {str(e)[:300]}")
            torch.cuda.empty_cache()
    print(json.dumps(out))


main()
