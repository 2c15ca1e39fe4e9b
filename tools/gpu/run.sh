#!/usr/bin/env bash
# The one command on the GPU machine (built by `node tools/gpu/build.mjs` into .carry/gpu):
#   bash .carry/gpu/run.sh
# Steps (STEPS to choose, default all, in this order):
#   info        CUDA availability, device, libraries
#   precompile  every kernel module through NVRTC in parallel (cubins cached in /tmp)
#   conformance the conformance suite against 'cuda' (CONFORMANCE_OPS=a,b to narrow, SEED=N)
#   torch       PyTorch baselines (torch_bench.py) -> $OUT/torch.json
#   bench       CUDA benchmarks, with the PyTorch ratios; prints the table last
#   fp8         (not in the default list; STEPS="fp8" alone works, best after precompile) the FP8
#               kernels: torch_bench.py --fp8 -> $OUT/torch_fp8.json, then the fp8 OpInfo records
#               against the CPU, byte checks, and timings at [8192, 8192] -> $OUT/fp8.txt / fp8.json
#   attn        (not in the default list; STEPS="precompile attn" or "attn" alone) the decode attention
#               kernels: torch_bench.py --attn -> $OUT/torch_attn.json, then the OpInfo records of
#               lightningAttentionStep, softmaxAttention and rope against the CPU, kernel vs composite
#               on CUDA (16-bit decode shapes with both the tensor-core and the CUDA-core decode kernel),
#               and timings (lightning step B=1/64; softmax decode B=1/64, context 4096/32768, both
#               kernels, and at batch 1 two other split counts)
#               -> $OUT/attn.txt / attn.json
#   flash lightning fp8gemm moe model
#               (not in the default list) steps of tools/gpu/steps/*.ts, each after its PyTorch
#               baseline torch_<step>.py -> $OUT/torch_<step>.json; each writes $OUT/<step>.txt
#               (its table, printed in the summary) and <step>.json
# Results: $OUT (the device tool's output folder; default .carry/gpu/out).
# Limits per step: info 60 s, precompile 150, conformance CONFORMANCE_LIMIT (300) + 30, torch 120,
# bench 150, fp8 60 (torch, TORCH_LIMIT_fp8) + 120 (LIMIT_fp8), attn 60 (torch) + 60. Node is unpacked to /tmp and cubins cached in /tmp, so a second command on the same
# (warm) machine skips both: e.g. STEPS="info precompile conformance", then STEPS="torch bench".
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$HERE/out}"
mkdir -p "$OUT"
STEPS="${STEPS:-info precompile conformance torch bench}"
NODE=/tmp/ring-linear-node
if [ ! -x "$NODE" ]; then
  xz -dc "$HERE/node.xz" > "$NODE.tmp" && chmod +x "$NODE.tmp" && mv "$NODE.tmp" "$NODE"
fi
export LD_LIBRARY_PATH="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RING_LINEAR_CUDA_KERNELS="$HERE/kernels"
export RING_LINEAR_CUDA_CACHE="${RING_LINEAR_CUDA_CACHE:-/tmp/ring-linear-cuda-cache}"
SEED="${SEED:-$(( (RANDOM << 15) | RANDOM ))}"
status=0
step() {
  local name="$1" limit="$2"; shift 2
  local t0=$SECONDS
  echo "=== $name (limit ${limit}s)"
  timeout --signal=KILL "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc after $((SECONDS - t0)) s"
  [ "$rc" -ne 0 ] && status=1
  return 0
}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$OUT/nvidia-smi.csv" 2>&1
for s in $STEPS; do
  case "$s" in
    info) step info 60 "$NODE" "$HERE/run.mjs" info --out "$OUT" ;;
    precompile) step precompile 150 "$NODE" "$HERE/run.mjs" precompile --out "$OUT" --parallel "$(nproc)" ;;
    conformance)
      budget="${CONFORMANCE_LIMIT:-300}"
      if [ -n "${CONFORMANCE_OPS:-}" ]; then
        step conformance $((budget + 30)) "$NODE" "$HERE/run.mjs" conformance --out "$OUT" --seed "$SEED" --budget "$budget" --ops "$CONFORMANCE_OPS"
      else
        step conformance $((budget + 30)) "$NODE" "$HERE/run.mjs" conformance --out "$OUT" --seed "$SEED" --budget "$budget"
      fi ;;
    torch) step torch 120 sh -c "python3 '$HERE/torch_bench.py' > '$OUT/torch.json'" ;;
    bench) step bench 150 "$NODE" "$HERE/run.mjs" bench --out "$OUT" --torch "$OUT/torch.json" ;;
    fp8)
      step torch_fp8 "${TORCH_LIMIT_fp8:-60}" sh -c "python3 '$HERE/torch_bench.py' --fp8 > '$OUT/torch_fp8.json'"
      step fp8 "${LIMIT_fp8:-120}" "$NODE" "$HERE/run.mjs" fp8 --out "$OUT" --seed "$SEED" --torch "$OUT/torch_fp8.json" ;;
    attn)
      step torch_attn "${TORCH_LIMIT_attn:-60}" sh -c "python3 '$HERE/torch_bench.py' --attn > '$OUT/torch_attn.json'"
      step attn "${LIMIT_attn:-60}" "$NODE" "$HERE/run.mjs" attn --out "$OUT" --seed "$SEED" --torch "$OUT/torch_attn.json" ;;
    flash|lightning|fp8gemm|moe|model)
      # Steps of tools/gpu/steps/*.ts: the PyTorch baseline first (torch_<step>.py), then ours.
      # Limits: LIMIT_<step> for ours (default 120 s; model 420), TORCH_LIMIT_<step> (default 90; model 300).
      lim_var="LIMIT_$s"; tlim_var="TORCH_LIMIT_$s"
      dl=120; dt=90; [ "$s" = model ] && dl=420 && dt=300
      step "torch_$s" "${!tlim_var:-$dt}" sh -c "python3 '$HERE/torch_$s.py' > '$OUT/torch_$s.json'"
      step "$s" "${!lim_var:-$dl}" "$NODE" "$HERE/run.mjs" "$s" --out "$OUT" --seed "$SEED" --torch "$OUT/torch_$s.json" ;;
    *) echo "unknown step $s"; status=2 ;;
  esac
done
# Short summary last: conformance totals and the benchmark table.
echo "=== summary (seed $SEED, results in $OUT)"
[ -f "$OUT/conformance.txt" ] && grep -E "passed, .* failed" "$OUT/conformance.txt"
[ -f "$OUT/bench.txt" ] && cat "$OUT/bench.txt"
[ -f "$OUT/fp8.txt" ] && grep -E "passed, .* failed" "$OUT/fp8-conformance.txt" && cat "$OUT/fp8.txt"
for s2 in flash lightning fp8gemm moe model; do [ -f "$OUT/$s2.txt" ] && cat "$OUT/$s2.txt"; done
[ -f "$OUT/attn.txt" ] && grep -E "passed, .* failed" "$OUT/attn-conformance.txt" && grep -E "^kernel vs composite" "$OUT/attn.log"; [ -f "$OUT/attn.txt" ] && cat "$OUT/attn.txt"
exit $status
