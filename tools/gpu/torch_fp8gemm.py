#!/usr/bin/env python3
"""PyTorch baselines of the `fp8gemm` GPU step (tools/gpu/steps/fp8gemm.ts), same card, same run.

- fp8gemm_{S}_block_bf16 / fp8gemm_{S}_tile_bf16 (S = 4096, 8192): torch._scaled_mm with blockwise
  scales, a [S, S] e4m3 with 1x128 scales, b [S, S] e4m3 (y = a b^T) with 128x128 ("block") or
  1x128 ("tile") scales, bf16 out. The scale layouts _scaled_mm takes on sm_90: scale_a [M, K/128]
  with strides (1, M); scale_b 128x128: sb.t() of a row-major [N/128, K/128]; scale_b 1x128: a
  row-major [K/128, N] (whose .t() has strides (1, N)).
- torch_tensorwise_{S}: torch._scaled_mm with one scale per tensor (the fastest FP8 GEMM torch has).
- grouped_gate_up / grouped_down: Ring-mini's MoE expert GEMMs (4096 tokens x top-8 = 32768 rows,
  256 experts, hidden 2048, expert intermediate 512) with the LCG routing of the Node side, as a
  loop over experts of torch._scaled_mm blockwise (the same math as fp8GroupedGemm);
  torch_grouped_rowwise_{gate_up,down}: torch._scaled_grouped_mm with rowwise scales if it runs
  here (it has no blockwise mode on sm_90), as a reference point for a fused grouped kernel.
CUDA-event timing after warm-up, median. Prints JSON {"device", "torch", "benchmarks", "notes"}.
"""
import json
import statistics
import sys

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


def fp8(shape):
    return (torch.randn(shape, device="cuda") * 8).to(torch.float8_e4m3fn)


def scales(shape):
    return torch.rand(shape, device="cuda") * 1e-2 + 0.5e-2


def scale_a_of(sa):
    """[M, KT] values in the layout _scaled_mm wants: strides (1, M)."""
    return sa.t().contiguous().t()


def route_counts(rows, experts):
    counts = [0] * experts
    x = 12345
    for _ in range(rows):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        counts[(x >> 16) % experts] += 1
    return counts


def main():
    small = "--small" in sys.argv
    bench = {}
    notes = []
    dev = torch.cuda.get_device_name(0)
    for S in [512] if small else [4096, 8192]:
        KT = S // 128
        a, b = fp8((S, S)), fp8((S, S))
        sa = scale_a_of(scales((S, KT)))
        sb_block = scales((KT, KT))  # [N/128, K/128] row-major
        sb_tile = scales((KT, S))  # [K/128, N] row-major
        reps = 20 if S >= 8192 else 50
        for name, sb in [("block", sb_block.t()), ("tile", sb_tile)]:
            try:
                fn = lambda sb=sb: torch._scaled_mm(a, b.t(), scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
                fn()
                bench[f"fp8gemm_{S}_{name}_bf16"] = time_gpu(fn, reps)
            except Exception as e:  # noqa: BLE001
                notes.append(f"_scaled_mm blockwise ({name}) at {S}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        one = torch.ones((), device="cuda")
        try:
            fn = lambda: torch._scaled_mm(a, b.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
            fn()
            bench[f"torch_tensorwise_{S}"] = time_gpu(fn, reps)
        except Exception as e:  # noqa: BLE001
            notes.append(f"_scaled_mm tensorwise at {S}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        del a, b

    tokens, topk, experts, hidden, inter = (512 if small else 4096), 8, 256, 2048, 512
    rows = tokens * topk
    counts = route_counts(rows, experts)
    offs = [0]
    for c in counts:
        offs.append(offs[-1] + c)
    notes.append(f"grouped: {rows} rows over {experts} experts ({min(counts)}..{max(counts)} an expert); grouped_* = loop over experts of _scaled_mm blockwise (1x128 a, 128x128 b), outputs not gathered into one tensor")
    for label, N, K in [("gate_up", 2 * inter, hidden), ("down", hidden, inter)]:
        KT, NB = K // 128, N // 128
        a = fp8((rows, K))
        w = fp8((experts, N, K))
        sa = scales((rows, KT))
        sw = scales((experts, NB, KT))
        # Per-expert operands built outside the timing (scales in _scaled_mm's layouts). cuBLASLt's
        # blockwise GEMM on sm_90 turns down row counts that are not a multiple of 16 (run 1:
        # NOT_SUPPORTED for 101..159 rows), so each expert's rows are zero-padded to a multiple of
        # `pad` (16, else 128): slightly more work than the grouped kernel does.
        def build(pad):
            parts = []
            for e in range(experts):
                r0, r1 = offs[e], offs[e + 1]
                if r1 <= r0:
                    continue
                rp = (r1 - r0 + pad - 1) // pad * pad
                x = torch.zeros((rp, K), device="cuda", dtype=torch.float8_e4m3fn)
                x[: r1 - r0] = a[r0:r1]
                s_a = torch.ones((rp, KT), device="cuda")
                s_a[: r1 - r0] = sa[r0:r1]
                parts.append((x, scale_a_of(s_a), w[e], sw[e].t()))
            return parts

        def loop():
            return [torch._scaled_mm(x, we.t(), scale_a=s_a, scale_b=s_b, out_dtype=torch.bfloat16) for x, s_a, we, s_b in parts]

        for pad in (16, 128):
            try:
                parts = build(pad)
                loop()
                bench[f"grouped_{label}"] = time_gpu(loop, 10)
                notes.append(f"grouped_{label}: per-expert _scaled_mm blockwise with rows padded to a multiple of {pad}")
                break
            except Exception as e:  # noqa: BLE001
                notes.append(f"per-expert _scaled_mm blockwise ({label}, rows padded to {pad}): {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                parts = []
        # torch._scaled_grouped_mm: rowwise scales only on sm_90 (not the same math: a reference point).
        try:
            offsets = torch.tensor(offs[1:], device="cuda", dtype=torch.int32)
            srow = scales((rows,))
            scol = scales((experts, N))
            fn = lambda: torch._scaled_grouped_mm(a, w.transpose(-2, -1), srow, scol, offs=offsets, out_dtype=torch.bfloat16)
            fn()
            bench[f"torch_grouped_rowwise_{label}"] = time_gpu(fn, 20)
        except Exception as e:  # noqa: BLE001
            notes.append(f"_scaled_grouped_mm rowwise ({label}): {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        del a, w, parts

    print(json.dumps({"device": dev, "torch": torch.__version__, "benchmarks": bench, "notes": notes}))


if __name__ == "__main__":
    main()
