#!/usr/bin/env bash
# Prepares .carry/webgpu-bench/ for the WebGPU runs of the attention, FP8 and sampler benches on the
# GPU machine (shared/GPU_MACHINE.md: no Node, no npm, no Vulkan loader there, and at most 64 MiB
# travels; .carry/ is git-ignored). Run from anywhere on the dev machine; then, on the GPU machine,
# from the repository root (carrying .carry/webgpu-bench):
#
#   bash .carry/webgpu-bench/run.sh
#
# It writes $OUT/attention-webgpu.json, $OUT/fp8-webgpu.json and $OUT/sampler-webgpu.json (no docs
# there); back here, `--docs-from <json> --commit <sha>` of each bench writes its WebGPU block of
# docs/benchmarks.md (see the end of run.sh's output).
#
# Contents: the three bench bundles (esbuild, `webgpu` left external), the `webgpu` package's loader
# and dawn.node (xz), Node (xz), the Debian Vulkan loader / glvnd packages, and run.sh. Node and the
# packages are reused from .carry/webgpu/ (packages/backend-webgpu/scripts/gpu-bench-prepare.sh)
# when that exists.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
OUT="$ROOT/.carry/webgpu-bench"
OLD="$ROOT/.carry/webgpu"
mkdir -p "$OUT/node_modules/webgpu/dist/linux-x64" "$OUT/debs"

for b in attention fp8 sampler; do
  (cd "$ROOT/tools/bench" && npx esbuild "src/$b.ts" --bundle --platform=node --format=esm \
    --conditions=@ring-linear/source --ignore-annotations --external:webgpu --log-level=error \
    "--banner:js=import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);" \
    --outfile="$OUT/$b.mjs")
done
cp "$ROOT/node_modules/webgpu/package.json" "$ROOT/node_modules/webgpu/index.js" "$OUT/node_modules/webgpu/"
if [ ! -s "$OUT/dawn.node.xz" ] || [ "$ROOT/node_modules/webgpu/dist/linux-x64/dawn.node" -nt "$OUT/dawn.node.xz" ]; then
  xz -T2 -c "$ROOT/node_modules/webgpu/dist/linux-x64/dawn.node" > "$OUT/dawn.node.xz"
fi
if [ ! -s "$OUT/node.xz" ]; then
  if [ -s "$OLD/node.xz" ]; then cp "$OLD/node.xz" "$OUT/node.xz"; else xz -T2 -c "$(command -v node)" > "$OUT/node.xz"; fi
fi
if ! ls "$OUT"/debs/libvulkan1_*.deb >/dev/null 2>&1; then
  if ls "$OLD"/debs/libvulkan1_*.deb >/dev/null 2>&1; then
    cp "$OLD"/debs/*.deb "$OUT/debs/"
  else
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    mkdir -p /tmp/amd64/partial
    apt-get $o update >/dev/null
    (cd "$OUT/debs" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1)
  fi
fi

cat > "$OUT/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs on the GPU machine from the repository root (see tools/bench/scripts/gpu-webgpu-prepare.sh):
# the WebGPU runs of the attention, FP8 and sampler benches, each under its own time limit; one
# failing does not stop the others. JSON lands in $OUT (or /tmp without it); no docs are written
# here. At most about 145 s in all: attention 48 s, fp8 38 s, sampler 48 s, plus unpacking.
J="${OUT:-/tmp}"
mkdir -p "$J"
cd .carry/webgpu-bench || exit 1
xz -dc node.xz > /tmp/node && chmod +x /tmp/node
xz -dc dawn.node.xz > node_modules/webgpu/dist/linux-x64/dawn.node
for f in debs/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export XDG_RUNTIME_DIR=/tmp
nvidia-smi -L || true
/tmp/node --version

# Each bench rewrites its JSON as it goes, so a timeout keeps what was measured; --budget-s stops
# starting new sizes well before the timeout (a size already started runs to its end).
bench() { # name limit-s args...
  local name=$1 limit=$2 t0=$SECONDS
  shift 2
  echo "== $name (limit $limit s)"
  timeout -k 3 "$limit" /tmp/node "$name.mjs" --backend webgpu "$@" --no-docs --json "$J/$name-webgpu.json" 2>&1 | tail -30
  echo "$name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s"
}
bench attention 48 --budget-s 32
bench fp8 38 --repeat 7 --budget-s 25
bench sampler 48 --budget-s 32

echo "== summary"
/tmp/node -e '
const fs = require("fs");
const dir = process.argv[1];
const read = (n) => { try { return JSON.parse(fs.readFileSync(`${dir}/${n}`, "utf8")); } catch (e) { console.log(`${n}: missing (${e.message.split("\n")[0]})`); return null; } };
const g = (x, d = 2) => (x == null ? "-" : Number(x).toFixed(d));
const a = read("attention-webgpu.json");
if (a) {
  console.log(`attention: ${a.device.name} software=${a.software} complete=${a.complete} stopped=${a.stopped} error=${a.error}`);
  for (const r of a.rows) console.log(`  T=${r.T} lightning ${g(r.lightning?.medianMs, 3)} ms ${g(r.lightning?.gflops, 0)} GFLOP/s | softmax ${g(r.softmax?.medianMs, 3)} ms ${g(r.softmax?.gflops, 0)} GFLOP/s`);
}
const f = read("fp8-webgpu.json");
if (f) {
  console.log(`fp8: ${f.device.name} software=${f.software} rows=${f.results.length}`);
  for (const r of f.results) console.log(`  ${r.op}: fused ${g(r.medianMs, 3)} ms, composite ${g(r.comparisonMedianMs, 3)} ms, ${g(r.ratio)}x`);
}
const s = read("sampler-webgpu.json");
if (s) {
  console.log(`sampler: ${s.device} software=${s.software} complete=${s.complete} stopped=${s.stopped} error=${s.error}`);
  for (const r of s.throughput) console.log(`  ${r.preset} b${r.batch}: prefill ${g(r.prefillTokensPerS, 0)} tok/s, decode ${g(r.decodeMsPerStep)} ms/step ${g(r.decodeTokensPerS, 0)} tok/s`);
  for (const r of s.sweep) console.log(`  ${r.variant} ctx ${r.context}: ${g(r.msPerToken)} ms/token (fastest ${g(r.minMsPerToken)})`);
}
' "$J"
ls -la "$J"/*-webgpu.json 2>/dev/null || true
RUN
chmod +x "$OUT/run.sh"
du -sh "$OUT"
