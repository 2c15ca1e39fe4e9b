#!/usr/bin/env bash
# Prepares .carry/webgpu/ for running the WebGPU benchmark on the GPU machine (shared/GPU_MACHINE.md:
# no Node, no npm, no Vulkan loader there, and at most 64 MiB travels). Run from anywhere on the
# CI-like machine; then, on the GPU machine, from the repository root:
#
#   bash .carry/webgpu/run.sh                      # all WebGPU benches
#   CONFIGS="16x16x8x8x8 16x16x4x4x16" bash .carry/webgpu/run.sh   # plus matmul 4096 tilings
#
# Contents: the bench bundle (tools/bench, webgpu left external), the `webgpu` package's loader
# and dawn.node (xz), Node (xz), the Debian Vulkan loader / glvnd packages, and run.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
OUT="$ROOT/.carry/webgpu"
mkdir -p "$OUT/node_modules/webgpu/dist/linux-x64" "$OUT/debs"

(cd "$ROOT/tools/bench" && npx esbuild src/main.ts --bundle --platform=node --format=esm \
  --conditions=@ring-linear/source --ignore-annotations --external:webgpu --log-level=error \
  "--banner:js=import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);" \
  --outfile="$OUT/bench.mjs")
cp "$ROOT/node_modules/webgpu/package.json" "$ROOT/node_modules/webgpu/index.js" "$OUT/node_modules/webgpu/"
xz -T2 -c "$ROOT/node_modules/webgpu/dist/linux-x64/dawn.node" > "$OUT/dawn.node.xz"
[ -s "$OUT/node.xz" ] || xz -T2 -c "$(command -v node)" > "$OUT/node.xz"

o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
mkdir -p /tmp/amd64/partial
apt-get $o update >/dev/null
(cd "$OUT/debs" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1)

cat > "$OUT/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs on the GPU machine from the repository root (see gpu-bench-prepare.sh).
set -e
cd .carry/webgpu
xz -dc node.xz > /tmp/node && chmod +x /tmp/node
xz -dc dawn.node.xz > node_modules/webgpu/dist/linux-x64/dawn.node
for f in debs/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export XDG_RUNTIME_DIR=/tmp
nvidia-smi -L || true
B="--repeat 10 --min-repeat 5 --warmup 3 --budget-ms 2000"
/tmp/node bench.mjs --backend webgpu $B --json "${OUT:-/tmp}/webgpu.json" 2>&1 | tail -16
for c in ${CONFIGS:-}; do
  echo "== matmul tiling $c (WGXxWGYxTMxTNxBK)"
  RING_LINEAR_WEBGPU_MATMUL_CONFIG=$c /tmp/node bench.mjs --backend webgpu --filter "matmul f32 4096" $B \
    --json "${OUT:-/tmp}/webgpu-$c.json" 2>&1 | grep -E "^\| matmul|FAILED|Error" || true
done
RUN
chmod +x "$OUT/run.sh"
du -sh "$OUT"
