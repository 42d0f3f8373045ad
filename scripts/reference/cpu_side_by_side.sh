#!/usr/bin/env bash
# The CPU demo figures of docs/PERFORMANCE.md in one run: ours (`ltx2 bench --size tiny`, f32) and
# the official ltx-pipelines DistilledPipeline (bench_ltx_pipelines.py --size tiny, bf16) on the
# same tiny request, warm, alternating round by round so that a change in the machine's load hits
# both; then the first requests of a freshly started `ltx2 serve --model demo`. Prints every JSON
# line, the load average around each run, and the ratios.
#
#   cargo build --release -p ltx2
#   REF_PYTHON=/work/goldenv/bin/python bash scripts/reference/cpu_side_by_side.sh
#
# Environment (defaults in brackets):
#   LTX2        our binary [target/release/ltx2]
#   REF_PYTHON  a Python with torch, ltx-core/ltx-pipelines 1.0.0, transformers 4.x and av [python3]
#   FRAMES HEIGHT WIDTH  the shared request [49 320 512]; the two-stage reference needs multiples
#               of 64, so the spec's 288x512 (width x height) runs on our side only, in addition
#   WARMUP ITERS ROUNDS  [1 5 2]
#   SERVE       1: also time the first three requests after `ltx2 serve --model demo` starts [1]
#   OUT         where the JSON lines are kept [a new temporary directory]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

LTX2=${LTX2:-target/release/ltx2}
REF_PYTHON=${REF_PYTHON:-python3}
FRAMES=${FRAMES:-49}
HEIGHT=${HEIGHT:-320}
WIDTH=${WIDTH:-512}
WARMUP=${WARMUP:-1}
ITERS=${ITERS:-5}
ROUNDS=${ROUNDS:-2}
SERVE=${SERVE:-1}
OUT=${OUT:-$(mktemp -d -t ltx2-side-by-side-XXXXXX)}
mkdir -p "$OUT"

[ -x "$LTX2" ] || { echo "no $LTX2: cargo build --release -p ltx2" >&2; exit 1; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

echo "# $(date -u +%FT%TZ) $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
echo "# ours: $LTX2 ($(git rev-parse --short HEAD)); reference: $REF_PYTHON; output in $OUT"

ours() { # name, width, height
    echo "# ours $1 ${2}x${3} (WxH): load before $(load)"
    "$LTX2" bench --size tiny --frames "$FRAMES" --width "$2" --height "$3" --fps 24 \
        --warmup "$WARMUP" --iters "$ITERS" --json >"$OUT/$1.json"
    echo "#   load after $(load)"
    cat "$OUT/$1.json"
}

reference() { # name
    echo "# reference $1 ${WIDTH}x${HEIGHT} (WxH): load before $(load)"
    "$REF_PYTHON" scripts/reference/bench_ltx_pipelines.py --size tiny --frames "$FRAMES" \
        --height "$HEIGHT" --width "$WIDTH" --fps 24 --warmup "$WARMUP" --iters "$ITERS" \
        >"$OUT/$1.json" 2>"$OUT/$1.log" || { tail -20 "$OUT/$1.log" >&2; exit 1; }
    echo "#   load after $(load)"
    cat "$OUT/$1.json"
}

for r in $(seq 1 "$ROUNDS"); do
    ours "ours_$r" "$WIDTH" "$HEIGHT"
    reference "ref_$r"
    ours "ours_spec_$r" 288 512
done

if [ "$SERVE" = 1 ]; then
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "# ltx2 serve --model demo on port $port: load before $(load)"
    started=$(date +%s.%N)
    "$LTX2" serve --model demo --host 127.0.0.1 --port "$port" >"$OUT/serve.log" 2>&1 &
    server=$!
    trap 'kill $server 2>/dev/null || true' EXIT
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.05; done
    echo "#   healthy after $(python3 -c "import time; print(round(time.time() - $started, 2))") s"
    body='{"prompt": "A red fox runs through fresh snow at dawn, cinematic", "width": 288, "height": 512, "num_frames": 49, "seed": 10}'
    for i in 1 2 3; do
        curl -sf -X POST "http://127.0.0.1:$port/generate" -H 'Content-Type: application/json' \
            -d "$body" -o "$OUT/serve_$i.json" -w "%{time_total}\n" >"$OUT/serve_${i}_wall.txt"
    done
    kill "$server"
    wait "$server" 2>/dev/null || true
    trap - EXIT
    echo "#   load after $(load)"
fi

python3 - "$OUT" "$ROUNDS" "$SERVE" <<'EOF'
import json, statistics, sys
from pathlib import Path

out, rounds, serve = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
load = lambda name: json.loads((out / f"{name}.json").read_text())
stages = ["text_encode", "stage1", "upsample", "stage2", "video_decode", "audio_decode", "mux", "other"]
print("\n# Summary (median seconds; ratio = reference / ours)")
ratios = []
for r in range(1, rounds + 1):
    ours, ref, spec = load(f"ours_{r}"), load(f"ref_{r}"), load(f"ours_spec_{r}")
    o, f = ours["median_total_s"], ref["median_total_s"]
    ratios.append(f / o)
    print(f"round {r}: ours {o:.3f} s, reference {f:.3f} s, ratio {f / o:.2f}; "
          f"ours at 288x512 {spec['median_total_s']:.3f} s")
    first = lambda xs: f"{xs[0]:.3f} s" if xs else "-"
    print(f"  first request after building: ours {first(ours['warmup_totals_s'])} (288x512: "
          f"{first(spec['warmup_totals_s'])}), reference {first(ref['warmup_total_s'])}")
    for s in stages:
        a, b = ours["median_stages_s"].get(s), ref["median_stages_s"].get(s)
        if a is None and b is None:
            continue
        fmt = lambda v: f"{v:8.3f}" if v is not None else f"{'-':>8}"
        ra = f"{b / a:.2f}" if a and b else "-"
        print(f"  {s:<13} ours {fmt(a)}  reference {fmt(b)}  ratio {ra}")
print(f"ratio over rounds: {', '.join(f'{x:.2f}' for x in ratios)}; median {statistics.median(ratios):.2f}")
if serve:
    for i in (1, 2, 3):
        d = json.loads((out / f"serve_{i}.json").read_text())
        wall = float((out / f"serve_{i}_wall.txt").read_text())
        print(f"serve request {i}: HTTP {wall:.3f} s, generation_time_seconds {d['generation_time_seconds']}")
EOF
