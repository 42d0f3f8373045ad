#!/usr/bin/env bash
# One GPU check of the CUDA fast paths, sized to end within 8 minutes on an H100/H200 host that has
# the NVIDIA driver and PyTorch's cu13 wheels (libcublas, libcudart, libcurand, libcudnn) but no
# Rust and no network. Needs dist/gpu/ltx2-gpu.tar.xz from scripts/gpu/pack.sh (carried).
#
#   bash scripts/gpu/check.sh            # on the GPU host; writes $OUT/check.json (+ logs)
#   bash scripts/gpu/check.sh --dry-run  # anywhere: unpacks, checks the binaries start and list
#                                        # their tests, prints every step with its time budget
#
# Steps run in order, each under `timeout` with its budget; a step that would end past the total
# budget is skipped (and says so), so the whole run ends in time and $OUT keeps what finished.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-$ROOT/dist/gpu/out}
mkdir -p "$OUT"
PACK=$ROOT/dist/gpu/ltx2-gpu.tar.xz
WORK=${LTX2_GPU_WORK:-/tmp/ltx2-gpu-check}
TOTAL_BUDGET=${TOTAL_BUDGET:-450}   # 7.5 min of steps; unpacking and the report take ~15 s
START=$(date +%s)
STEPS_JSONL=$OUT/.steps.jsonl
: >"$STEPS_JSONL"
TESTS_LOG=$OUT/tests.log
BENCH_LOG=$OUT/bench.log
: >"$TESTS_LOG"
: >"$BENCH_LOG"

say() { echo "[check $(($(date +%s) - START))s] $*"; }

# --- unpack (python's lzma: the host may have no xz) ---------------------------------------------
[ -f "$PACK" ] || { echo "no $PACK: run scripts/gpu/pack.sh here first" >&2; exit 1; }
rm -rf "$WORK" && mkdir -p "$WORK"
python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$PACK" "$WORK"
BIN=$WORK/bin
say "unpacked $(ls "$BIN" | tr '\n' ' ')"

# --- runtime libraries ----------------------------------------------------------------------------
# cuBLAS(Lt)/cudart/cuRAND 13 and cuDNN 9 come with PyTorch's nvidia-* wheels; the driver from the host.
nvlibs=$(python3 -c 'import nvidia, os, glob
roots = [p for r in nvidia.__path__ for p in glob.glob(os.path.join(r, "*", "lib"))]
print(":".join(sorted(roots)))' 2>/dev/null || true)
if [ -n "$nvlibs" ]; then export LD_LIBRARY_PATH=$nvlibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
if [ $DRY = 1 ]; then
  # Here there is no driver: the link-time stub lets the binaries start (they never touch CUDA).
  # (the stub's SONAME is libcuda.so.1; the loader looks for that file name).
  mkdir -p "$WORK/stub"
  [ -f "$ROOT/.cuda-root/lib/stubs/libcuda.so" ] && ln -sf "$ROOT/.cuda-root/lib/stubs/libcuda.so" "$WORK/stub/libcuda.so.1"
  export LD_LIBRARY_PATH=$WORK/stub:$ROOT/.cuda-root/lib:${LD_LIBRARY_PATH:-}
fi
cudnn_lib=$(ls $(echo "${LD_LIBRARY_PATH:-}" | tr ':' ' ') 2>/dev/null | grep -m1 '^libcudnn\.so\.9$' || true)
say "libcudnn.so.9 on the library path: ${cudnn_lib:-no (attention/conv3d will report the candle fallback)}"

# The golden sets are found through CARGO_MANIFEST_DIR baked in here; point the tests at this tree.
export LTX2_GOLDEN_DIR=$ROOT/testdata/golden LTX2_GOLDEN_23_DIR=$ROOT/testdata/golden-2.3
export LTX2_GOLDEN_25_DIR=$ROOT/testdata/golden-2.5 LTX2_FP8_REFERENCE_DIR=$ROOT/testdata/fp8-reference
export LTX2_TEST_DEVICE=cuda RUST_BACKTRACE=1

DEVICE=$( (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU") | head -1)
say "device: $DEVICE"

# step NAME BUDGET_S LOG CMD... : runs CMD under timeout BUDGET_S (dry run: prints it), records JSON.
step() {
  local name=$1 budget=$2 log=$3
  shift 3
  local now=$(($(date +%s) - START))
  if [ $DRY = 1 ]; then
    printf '  %-28s budget %4ss  %s\n' "$name" "$budget" "$*"
    printf '{"step":"%s","budget_s":%s,"status":"dry-run"}\n' "$name" "$budget" >>"$STEPS_JSONL"
    PLANNED=$((PLANNED + budget))
    return 0
  fi
  if [ $((now + budget)) -gt "$TOTAL_BUDGET" ]; then
    say "skip $name: ${now}s spent + ${budget}s budget > ${TOTAL_BUDGET}s"
    printf '{"step":"%s","budget_s":%s,"status":"skipped-budget"}\n' "$name" "$budget" >>"$STEPS_JSONL"
    return 0
  fi
  say "run $name (budget ${budget}s)"
  local t0=$(date +%s) rc
  echo "===== $name: $*" >>"$log"
  timeout --kill-after=5 "$budget" "$@" >>"$log" 2>&1
  rc=$?
  local dt=$(($(date +%s) - t0)) status=ok
  [ $rc = 0 ] || status=failed
  [ $rc = 124 ] && status=timeout
  say "$name: $status in ${dt}s"
  printf '{"step":"%s","budget_s":%s,"elapsed_s":%s,"rc":%s,"status":"%s"}\n' \
    "$name" "$budget" "$dt" "$rc" "$status" >>"$STEPS_JSONL"
}

# A bench step whose stdout (one JSON line) is kept apart from its log.
bench_step() {
  local name=$1 budget=$2
  shift 2
  step "$name" "$budget" "$BENCH_LOG" bash -c '"$@" > "'"$OUT/$name.json"'"' _ "$@"
}

PLANNED=0
if [ $DRY = 1 ]; then
  say "dry run: the binaries start and list their tests"
  "$BIN/ltx2" --version || { echo "ltx2 does not start" >&2; exit 1; }
  for t in cuda_ops transformer_parity fp8 video_vae_parity; do
    n=$("$BIN/gpu_checks" --list "$t::" 2>/dev/null | grep -c ': test$')
    echo "  gpu_checks $t::  $n tests"
  done
  echo "plan (each step under timeout; total step budget ${TOTAL_BUDGET}s):"
fi

# 1. The fast paths against their references (cuDNN SDPA/conv3d, cuBLASLt FP8, fused kernels).
step cuda_ops 35 "$TESTS_LOG" "$BIN/gpu_checks" cuda_ops:: --test-threads=1 --nocapture
# 2. Golden parity on CUDA: f32 (same tolerances as the CPU), bf16 (recorded rel-L2 bound), both FP8 modes.
step transformer_parity 50 "$TESTS_LOG" "$BIN/gpu_checks" transformer_parity:: --test-threads=2 --nocapture
step fp8 40 "$TESTS_LOG" "$BIN/gpu_checks" fp8:: --test-threads=2 --nocapture
step video_vae_parity 30 "$TESTS_LOG" "$BIN/gpu_checks" video_vae_parity:: --test-threads=2 --nocapture
# 3. Per-op profile of one full-width 19B block at stage-1 and stage-2 token counts (bf16, then FP8 scaled-mm GEMMs).
bench_step block_bf16 50 "$BIN/ltx2" bench --device cuda --dtype bf16 --block-profile 6144,24576 --iters 5
bench_step block_fp8 30 "$BIN/ltx2" bench --device cuda --dtype bf16 --block-profile 6144,24576 --iters 5 \
  --quantization fp8-scaled-mm --no-block-reference
# 4. End to end, the spec's headline request (49 frames, width 288, height 512), then 121 frames at 768x512.
bench_step bench_49x288x512 85 "$BIN/ltx2" bench --device cuda --size 19b --frames 49 --width 288 --height 512 \
  --warmup 1 --iters 2 --json
bench_step bench_121x768x512 130 "$BIN/ltx2" bench --device cuda --size 19b --frames 121 --width 768 --height 512 \
  --warmup 1 --iters 1 --json

# --- report ---------------------------------------------------------------------------------------
python3 - "$OUT" "$STEPS_JSONL" "$DEVICE" "$DRY" "$PLANNED" "$TOTAL_BUDGET" "$ROOT/dist/gpu/manifest.txt" <<'EOF'
import json, os, re, sys
out, steps_path, device, dry, planned, total, manifest = sys.argv[1:]
steps = [json.loads(l) for l in open(steps_path) if l.strip()]
report = {"device": device, "dry_run": dry == "1", "total_step_budget_s": int(total), "steps": steps}
if dry == "1":
    report["planned_step_budget_s"] = int(planned)
if os.path.exists(manifest):
    report["pack"] = open(manifest).read().splitlines()
# Test results per binary, and the bounds the tests print (rel_l2, equal fractions, backends).
log = os.path.join(out, "tests.log")
if os.path.exists(log):
    tests, current = {}, None
    for line in open(log, errors="replace"):
        m = re.match(r"===== (\S+):", line)
        if m:
            current = tests.setdefault(m.group(1), {"results": [], "measured": []})
            continue
        if current is None:
            continue
        m = re.match(r"test (\S+) \.\.\. (ok|FAILED|ignored)", line)
        if m:
            current["results"].append([m.group(1), m.group(2)])
        elif re.search(r"rel_l2|equal |backends:|skipped", line):
            current["measured"].append(line.strip())
        m = re.match(r"test result: (\w+)\. (\d+) passed; (\d+) failed", line)
        if m:
            current["summary"] = {"result": m.group(1), "passed": int(m.group(2)), "failed": int(m.group(3))}
    report["tests"] = tests
for s in steps:
    p = os.path.join(out, s["step"] + ".json")
    if os.path.exists(p) and os.path.getsize(p):
        try:
            report[s["step"]] = json.loads(open(p).read().strip().splitlines()[-1])
        except (ValueError, IndexError) as e:
            report[s["step"]] = {"unparsed": str(e)}
json.dump(report, open(os.path.join(out, "check.json"), "w"), indent=1)
ok = sum(s.get("status") == "ok" for s in steps)
print(f"check.json: {len(steps)} steps, {ok} ok" + (f", planned budget {planned}s of {total}s" if dry == "1" else ""))
for s in steps:
    print(f"  {s['step']:<22} {s.get('status'):<15} {s.get('elapsed_s', '-')}s / {s['budget_s']}s")
EOF
rm -f "$STEPS_JSONL"
# The step JSONs are folded into check.json: keep $OUT within what a device call returns (8 files).
for f in "$OUT"/block_*.json "$OUT"/bench_*.json; do [ -f "$f" ] && rm -f "$f"; done
say "done: $OUT/check.json"
