#!/usr/bin/env bash
# Builds, here on the CPU machine, everything scripts/gpu/check.sh runs on a GPU host, and packs it
# into dist/gpu/ (git-ignored; the device call carries it: carry ["dist/gpu"]).
#
#   dist/gpu/ltx2-gpu.tar.xz   the CUDA `ltx2` binary and the CUDA test binary, stripped, in one xz
#                              stream with a 256 MiB dictionary (the two share candle's PTX, which a
#                              whole-tar dictionary stores once)
#   dist/gpu/manifest.txt      commit, binaries, raw and packed sizes
#
# The device call sends the git-tracked tree plus the carried paths, 64 MiB in all: the packed size
# plus `git ls-files | xargs du -cb` must stay under that (checked below).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DIST=$ROOT/dist/gpu
# The test binary check.sh runs (crates/ltx2-model/tests/gpu_checks.rs): the CUDA fast paths against
# their references, and the golden parity tests (f32, bf16 with recorded bounds, FP8 weight-only and
# scaled-mm, the VAE's conv3d), as one executable: four separate test binaries packed to 12+ MiB.
TESTS=(gpu_checks)
LIMIT=$((64 * 1024 * 1024))

t0=$(date +%s)
mkdir -p "$DIST"
args=(-p ltx2 -p ltx2-model --bin ltx2)
for t in "${TESTS[@]}"; do args+=(--test "$t"); done
# JSON messages on stdout name the executables; diagnostics still reach the terminal.
CUDA_FEATURES="ltx2/cuda,ltx2-model/cuda" scripts/build-cuda.sh "${args[@]}" \
  --message-format=json-render-diagnostics >"$DIST.build.jsonl"
build_s=$(( $(date +%s) - t0 ))
mapfile -t exes < <(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["kind"][0], m["target"]["name"], m["executable"])' "$DIST.build.jsonl")
rm -f "$DIST.build.jsonl"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin"
for line in "${exes[@]}"; do
  read -r kind name exe <<<"$line"
  case "$kind" in bin | test) cp "$exe" "$stage/bin/$name" && strip "$stage/bin/$name" ;; esac
done
for need in ltx2 "${TESTS[@]}"; do
  [ -x "$stage/bin/$need" ] || { echo "pack: $need was not built" >&2; exit 1; }
done
raw=$(du -cb "$stage"/bin/* | tail -1 | cut -f1)
tar -C "$stage" -cf - bin | xz -T1 -9e --lzma2=preset=9e,dict=256MiB >"$DIST/ltx2-gpu.tar.xz"
packed=$(stat -c %s "$DIST/ltx2-gpu.tar.xz")
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
{
  echo "commit $(git rev-parse HEAD)$(git diff --quiet HEAD || echo ' (dirty)')"
  echo "built $(date -u +%FT%TZ) in ${build_s}s"
  (cd "$stage/bin" && for f in *; do echo "binary $f $(stat -c %s "$f")"; done)
  echo "raw_bytes $raw"
  echo "packed_bytes $packed"
  echo "tracked_tree_bytes $tree"
  echo "total_carried_bytes $((tree + packed)) of $LIMIT"
} | tee "$DIST/manifest.txt"
if [ $((tree + packed)) -gt $LIMIT ]; then
  echo "pack: tree + dist/gpu exceed the 64 MiB a device call carries" >&2
  exit 1
fi
echo "ok: carry [\"dist/gpu\"] and run: bash scripts/gpu/check.sh"
