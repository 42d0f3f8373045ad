#!/usr/bin/env bash
# GPU benchmark plumbing for `ltx2 bench` (see scripts/gpu/README.md for the whole device session).
#
#   here (no GPU):
#     scripts/gpu/run-bench.sh pack        # strip + xz the CUDA ltx2 binary into .gpu/ (carried, git-ignored)
#     scripts/gpu/run-bench.sh pack-tests  # build the CUDA parity test binaries, pack them into .gpu/tests/
#   on the device (carry [".gpu"]):
#     scripts/gpu/run-bench.sh bench [ltx2 bench args...]   # unpack, print the device, run one bench (JSON line)
#     scripts/gpu/run-bench.sh suite                        # the two headline shapes, JSON lines into $OUT
#     scripts/gpu/run-bench.sh tests                        # CUDA parity tests (LTX2_TEST_DEVICE=cuda)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
GPU_DIR=$ROOT/.gpu
CUDA_TARGET=${CARGO_TARGET_DIR:-$ROOT/target/cuda}
mode=${1:-}
shift || true

ensure_ignored() {
  grep -qx '/.gpu/' "$ROOT/.git/info/exclude" 2>/dev/null || echo '/.gpu/' >>"$(git rev-parse --git-path info/exclude)"
}

unpack_binary() {
  if [ ! -x /tmp/ltx2-gpu/ltx2 ]; then
    mkdir -p /tmp/ltx2-gpu
    xz -dc "$GPU_DIR/ltx2.xz" >/tmp/ltx2-gpu/ltx2
    chmod +x /tmp/ltx2-gpu/ltx2
  fi
  # cuBLAS/cuRAND/cudart 13 come with PyTorch's cu13 wheels in the device image.
  local nv
  nv=$(python3 -c 'import nvidia,os;print(os.path.join(nvidia.__path__[0], "cu13", "lib"))' 2>/dev/null || true)
  if [ -n "$nv" ]; then export LD_LIBRARY_PATH=$nv${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
  for d in $(python3 -c 'import nvidia,os,glob;print(" ".join(glob.glob(os.path.join(nvidia.__path__[0],"*","lib"))))' 2>/dev/null); do
    export LD_LIBRARY_PATH=$d:$LD_LIBRARY_PATH
  done
}

device_line() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
}

case "$mode" in
  pack)
    ensure_ignored
    mkdir -p "$GPU_DIR"
    bin=$CUDA_TARGET/release/ltx2
    [ -x "$bin" ] || { echo "no $bin: run scripts/build-cuda.sh first" >&2; exit 1; }
    cp "$bin" "$GPU_DIR/ltx2" && strip "$GPU_DIR/ltx2"
    xz -T0 -6 -f "$GPU_DIR/ltx2"
    git -C "$ROOT" rev-parse HEAD >"$GPU_DIR/ltx2.commit"
    ls -la "$GPU_DIR"
    echo "carry .gpu (with the tracked tree it must stay under 64 MiB: du -sh .gpu)"
    ;;
  pack-tests)
    # Same toolchain as scripts/build-cuda.sh; builds only the test binaries that need a GPU run.
    ensure_ignored
    VENV=${CUDA_VENV:-$ROOT/.cuda-venv}
    CROOT=${CUDA_ROOT_DIR:-$ROOT/.cuda-root}
    [ -e "$CROOT/bin" ] || { echo "run scripts/build-cuda.sh once first (it sets up $CROOT)" >&2; exit 1; }
    export CUDA_HOME=$CROOT PATH=$CROOT/bin:$PATH CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
    export CARGO_TARGET_DIR=$CUDA_TARGET
    mkdir -p "$GPU_DIR/tests"
    for spec in "ltx2-model transformer_parity" "ltx2-model text_parity" "ltx2-model video_vae_parity" \
                "ltx2-model upsampler_parity" "ltx2-model audio_parity" "ltx2-pipeline e2e_parity" \
                "ltx2-pipeline bf16_device"; do
      set -- $spec
      exe=$(cargo test --release --locked -p "$1" --features cuda --test "$2" --no-run --message-format=json 2>/dev/null \
        | python3 -c 'import sys,json
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["kind"]==["test"]: print(m["executable"])' | tail -1)
      [ -n "$exe" ] || { echo "building $2 failed" >&2; exit 1; }
      cp "$exe" "$GPU_DIR/tests/$2" && strip "$GPU_DIR/tests/$2"
      xz -T0 -6 -f "$GPU_DIR/tests/$2"
    done
    ls -la "$GPU_DIR/tests"
    ;;
  bench)
    unpack_binary
    device_line >&2
    /tmp/ltx2-gpu/ltx2 bench --device cuda --json "$@"
    ;;
  suite)
    unpack_binary
    out=${OUT:-/tmp}
    device_line | tee "$out/device.txt"
    # Headline: 49 frames 288x512 (rendered 320x512), distilled two-stage, bf16, everything resident.
    /tmp/ltx2-gpu/ltx2 bench --device cuda --size 19b --frames 49 --height 288 --width 512 --fps 24 \
      --warmup 1 --iters 3 --json | tee "$out/ours_49x288x512.json"
    # Same shape as the reference harness (multiples of 64): for the ratio.
    /tmp/ltx2-gpu/ltx2 bench --device cuda --size 19b --frames 49 --height 320 --width 512 --fps 24 \
      --warmup 1 --iters 3 --json | tee "$out/ours_49x320x512.json"
    /tmp/ltx2-gpu/ltx2 bench --device cuda --size 19b --frames 121 --height 512 --width 768 --fps 24 \
      --warmup 1 --iters 3 --json | tee "$out/ours_121x512x768.json"
    ;;
  tests)
    unpack_binary
    device_line
    # The tests find the golden set through CARGO_MANIFEST_DIR baked in at build time; point them here.
    export LTX2_GOLDEN_DIR=$ROOT/testdata/golden LTX2_TEST_DEVICE=cuda
    status=0
    for t in "$GPU_DIR"/tests/*.xz; do
      name=$(basename "$t" .xz)
      xz -dc "$t" >"/tmp/ltx2-gpu/$name" && chmod +x "/tmp/ltx2-gpu/$name"
      echo "== $name"
      (cd "$ROOT/crates" && "/tmp/ltx2-gpu/$name" --test-threads=1 --nocapture) || status=1
    done
    exit $status
    ;;
  *)
    sed -n '2,11p' "$0"
    exit 2
    ;;
esac
