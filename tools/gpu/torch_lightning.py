"""PyTorch baseline of the `lightning` step: chunked lightning attention (MODEL_SPEC section 2,
"Chunked form") built from torch matmuls, forward and backward, B=1, H=16, D=Dv=128, bf16, at
T = 16384 and 65536, chunk C = 64 (the same chunk size as the CUDA kernels). Not torch.compile'd.

Forward per chunk c (all chunks batched except the scan over chunk states, a Python loop):
  O_c = ((Q_c K_c^T) * s Dmask) V_c + (Q_c * s lambda^(i+1)) S_c
  S_{c+1} = lambda^C S_c + (K_c * lambda^(C-1-j))^T V_c
Matmul operands are bf16 (torch.matmul: fp32 accumulation, bf16 result); the chunk states S_c are
fp32 (the scan adds fp32 copies of the bf16 chunk contributions). The backward is the chunked
backward of packages/attention/src/ops/lightning.ts (lightningBackwardComposite) written the same
way: states recomputed, a reverse Python scan over dLoss/dS, everything else batched over chunks.

Prints one JSON object: {"device", "torch", "benchmarks": {name: {"ms": median}}, "notes"}.
"""
import json
import sys

import torch

C = 64
H = 16
D = 128
SIZES = [16384, 65536]


def tables(a, scale):
    idx = torch.arange(C, device=a.device, dtype=torch.float32)
    diff = idx[:, None] - idx[None, :]
    # exp of non-positive exponents only (log space); zero above the diagonal.
    mask = torch.exp(-a[:, None, None] * diff.clamp(min=0)) * (diff >= 0) * scale  # [H, C, C]
    qdec = torch.exp(-a[:, None] * (idx + 1)) * scale  # [H, C]
    kdec = torch.exp(-a[:, None] * (C - 1 - idx))  # [H, C]
    cdec = torch.exp(-a * C)  # [H]
    return mask[None, :, None], qdec[None, :, None, :, None], kdec[None, :, None, :, None], cdec[None, :, None, None]


def chunks(x, B, T):
    # [B, T, H, X] -> [B, H, n, C, X]
    return x.transpose(1, 2).reshape(B, H, T // C, C, x.shape[-1])


def unchunk(x, B, T):
    return x.reshape(B, H, T, x.shape[-1]).transpose(1, 2).contiguous()


def chunk_states(K, V, kdec, cdec, s0):
    """States entering each chunk, fp32, [n, B, H, D, Dv] (a Python scan over the chunks)."""
    n = K.shape[2]
    U = torch.matmul((K.float() * kdec).to(torch.bfloat16).transpose(-1, -2), V).float().permute(2, 0, 1, 3, 4).contiguous()
    states = torch.empty((n + 1,) + s0.shape, device=s0.device, dtype=torch.float32)
    states[0].copy_(s0)
    for c in range(n):
        torch.addcmul(U[c], states[c], cdec, out=states[c + 1])
    return states


def forward(q, k, v, tb, s0):
    B, T = q.shape[0], q.shape[1]
    mask, qdec, kdec, cdec = tb
    Q, K, V = chunks(q, B, T), chunks(k, B, T), chunks(v, B, T)
    states = chunk_states(K, V, kdec, cdec, s0)
    P = (torch.matmul(Q, K.transpose(-1, -2)).float() * mask).to(torch.bfloat16)
    o = torch.matmul(P, V).float()
    S = states[:-1].permute(1, 2, 0, 3, 4).to(torch.bfloat16)  # [B, H, n, D, Dv]
    o += torch.matmul((Q.float() * qdec).to(torch.bfloat16), S).float()
    return unchunk(o.to(torch.bfloat16), B, T), states[-1]


def backward(q, k, v, tb, s0, dO, dF):
    B, T = q.shape[0], q.shape[1]
    mask, qdec, kdec, cdec = tb
    bf = torch.bfloat16
    Q, K, V, G = chunks(q, B, T), chunks(k, B, T), chunks(v, B, T), chunks(dO, B, T)
    n = Q.shape[2]
    states = chunk_states(K, V, kdec, cdec, s0)
    # dLoss/dS leaving each chunk: reverse scan of W_c = s (Q_c lambda^(i+1))^T dO_c (qdec holds s).
    W = torch.matmul((Q.float() * qdec).to(bf).transpose(-1, -2), G).float().permute(2, 0, 1, 3, 4).contiguous()
    dH = torch.empty_like(states)
    dH[n].copy_(dF)
    for c in range(n - 1, -1, -1):
        torch.addcmul(W[c], dH[c + 1], cdec, out=dH[c])
    dHl = dH[1:].permute(1, 2, 0, 3, 4).to(bf)  # leaving chunk c
    S = states[:-1].permute(1, 2, 0, 3, 4).to(bf)  # entering chunk c
    M = (torch.matmul(G, V.transpose(-1, -2)).float() * mask).to(bf)
    A = (torch.matmul(Q, K.transpose(-1, -2)).float() * mask).to(bf)
    dq = torch.matmul(M, K).float() + torch.matmul((G.float() * qdec).to(bf), S.transpose(-1, -2)).float()
    dk = torch.matmul(M.transpose(-1, -2), Q).float() + torch.matmul((V.float() * kdec).to(bf), dHl.transpose(-1, -2)).float()
    dv = torch.matmul(A.transpose(-1, -2), G).float() + torch.matmul((K.float() * kdec).to(bf), dHl).float()
    return unchunk(dq.to(bf), B, T), unchunk(dk.to(bf), B, T), unchunk(dv.to(bf), B, T), dH[0]


def time_ms(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


def main():
    out = {"device": None, "torch": torch.__version__, "benchmarks": {}, "notes": []}
    if not torch.cuda.is_available():
        out["notes"].append("CUDA not available to torch")
        print(json.dumps(out))
        return
    dev = torch.device("cuda")
    out["device"] = torch.cuda.get_device_name(0)
    g = torch.Generator(device=dev)
    g.manual_seed(1234)
    a = torch.tensor([2.0 ** (-0.5 * (h + 1)) for h in range(H)], device=dev, dtype=torch.float32)
    scale = D ** -0.5
    tb = tables(a, scale)
    for T in SIZES:
        B = 1
        mk = lambda *s: torch.randn(*s, device=dev, dtype=torch.float32, generator=g).to(torch.bfloat16)
        q, k, v, dO = mk(B, T, H, D), mk(B, T, H, D), mk(B, T, H, D), mk(B, T, H, D)
        s0 = 0.5 * torch.randn(B, H, D, D, device=dev, dtype=torch.float32, generator=g)
        dF = 0.5 * torch.randn(B, H, D, D, device=dev, dtype=torch.float32, generator=g)
        reps = 10 if T <= 16384 else 5
        try:
            with torch.no_grad():
                ms = time_ms(lambda: forward(q, k, v, tb, s0), reps)
            out["benchmarks"][f"lightning_fwd_T{T}"] = {"ms": ms}
            with torch.no_grad():
                ms = time_ms(lambda: backward(q, k, v, tb, s0, dO, dF), reps)
            out["benchmarks"][f"lightning_bwd_T{T}"] = {"ms": ms}
        except Exception as e:  # keep the other sizes
            out["notes"].append(f"T={T}: {type(e).__name__}: {e}")
        del q, k, v, dO
        torch.cuda.empty_cache()
    out["notes"].append(
        "chunked algorithm from torch matmuls (bf16 operands, fp32 accumulation in cuBLAS, bf16 results; fp32 chunk states), "
        f"C={C}, B=1, H={H}, D=Dv={D}; the scan over chunks is a Python loop of one addcmul per chunk; not compiled"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
