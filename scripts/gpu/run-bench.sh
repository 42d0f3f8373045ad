#!/usr/bin/env bash
# GPU benchmark plumbing for `ltx2 bench` (see scripts/gpu/README.md for the whole device session).
#
#   here (no GPU):
#     scripts/gpu/run-bench.sh pack        # strip + xz the CUDA ltx2 binary into .gpu/ (carried, git-ignored)
#     scripts/gpu/run-bench.sh pack-tests  # build the CUDA parity test binaries, pack them into .gpu-tests/
#   on the device (carry [".gpu"]; for `tests` carry [".gpu", ".gpu-tests"] or split if over 64 MiB):
#     scripts/gpu/run-bench.sh bench [ltx2 bench args...]   # unpack, print the device, run one bench (JSON line)
#     scripts/gpu/run-bench.sh suite                        # 49 frames at W288xH512 (the spec) and H320xW512 (the reference), JSON lines into $OUT
#     scripts/gpu/run-bench.sh suite121                     # 121 frames at 512x768 (H x W)
#     scripts/gpu/run-bench.sh tests                        # CUDA parity tests (LTX2_TEST_DEVICE=cuda)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
GPU_DIR=$ROOT/.gpu
# Test binaries travel in their own carry: with the ~36 MiB tree, the bench binary and them may not fit one call.
TEST_DIR=$ROOT/.gpu-tests
CUDA_TARGET=${CARGO_TARGET_DIR:-$ROOT/target/cuda}
mode=${1:-}
shift || true

ensure_ignored() {
  local ex
  ex=$(git -C "$ROOT" rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$ex")"
  grep -qx '/.gpu/' "$ex" 2>/dev/null || echo '/.gpu/' >>"$ex"
  grep -qx '/.gpu-tests/' "$ex" 2>/dev/null || echo '/.gpu-tests/' >>"$ex"
}

unpack_binary() {
  if [ ! -x /tmp/ltx2-gpu/ltx2 ]; then
    mkdir -p /tmp/ltx2-gpu
    xz -dc "$GPU_DIR/ltx2.xz" >/tmp/ltx2-gpu/ltx2
    chmod +x /tmp/ltx2-gpu/ltx2
  fi
  cuda_libs
}

cuda_libs() {
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
    xz -T1 -6 -f "$GPU_DIR/ltx2"  # single-threaded: 4.8 MB instead of 11
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
    mkdir -p "$TEST_DIR"
    for spec in "ltx2-model transformer_parity" "ltx2-model text_parity" "ltx2-model video_vae_parity" \
                "ltx2-model upsampler_parity" "ltx2-model audio_parity" "ltx2-pipeline e2e_parity" \
                "ltx2-model transformer_parity_23" "ltx2-model text_parity_23" "ltx2-model audio_parity_23" \
                "ltx2-pipeline bf16_device" "ltx2-model fp8" "ltx2-model gemma_fp8"; do
      set -- $spec
      exe=$(cargo test --release --locked -p "$1" --features cuda --test "$2" --no-run --message-format=json 2>/dev/null \
        | python3 -c 'import sys,json
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["kind"]==["test"]: print(m["executable"])' | tail -1)
      [ -n "$exe" ] || { echo "building $2 failed" >&2; exit 1; }
      cp "$exe" "$TEST_DIR/$2" && strip "$TEST_DIR/$2"
      xz -T1 -6 -f "$TEST_DIR/$2"
    done
    ls -la "$TEST_DIR"; du -sh "$TEST_DIR"
    ;;
  bench)
    unpack_binary
    device_line >&2
    /tmp/ltx2-gpu/ltx2 bench --device cuda --json "$@"
    ;;
  suite|suite121)
    # One call each, so every command stays well inside the 10-minute limit; JSON lines into $OUT.
    unpack_binary
    out=${OUT:-/tmp}
    device_line | tee "$out/device.txt"
    run_shape() { # name frames height width; SIZE=2.3-22b / 2.5-22b times LTX-2.3 / 2.5; BENCH_ARGS adds flags (e.g. the FP8 plan)
      # shellcheck disable=SC2086
      timeout "${BENCH_TIMEOUT:-280}" /tmp/ltx2-gpu/ltx2 bench --device cuda --size "${SIZE:-19b}" --frames "$2" --height "$3" \
        --width "$4" --fps 24 --warmup 1 --iters 3 ${BENCH_ARGS:-} --json | tee "$out/ours_${SIZE:+${SIZE}_}${TAG:+${TAG}_}$1.json" || echo "$1 failed or timed out" >&2
    }
    if [ "$mode" = suite ]; then
      # The spec's headline request (rendered 320x512, centre-cropped), then the reference's shape for the ratio.
      run_shape 49x288x512 49 512 288
      run_shape 49x320x512 49 320 512
    else
      BENCH_TIMEOUT=${BENCH_TIMEOUT:-560} run_shape 121x512x768 121 512 768
    fi
    ;;
  tests)
    cuda_libs
    device_line
    # The tests find the golden set through CARGO_MANIFEST_DIR baked in at build time; point them here.
    export LTX2_GOLDEN_DIR=$ROOT/testdata/golden LTX2_GOLDEN_23_DIR=$ROOT/testdata/golden-2.3 LTX2_TEST_DEVICE=cuda
    export LTX2_FP8_REFERENCE_DIR=$ROOT/testdata/fp8-reference
    status=0
    mkdir -p /tmp/ltx2-gpu
    for t in "$TEST_DIR"/*.xz; do
      name=$(basename "$t" .xz)
      xz -dc "$t" >"/tmp/ltx2-gpu/$name" && chmod +x "/tmp/ltx2-gpu/$name"
      echo "== $name"
      (cd "$ROOT/crates" && "/tmp/ltx2-gpu/$name" --test-threads=1 --nocapture) || status=1
    done
    exit $status
    ;;
  *)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
