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
#   BASELINE    another ltx2 binary (say, a build of an older commit) timed the same way in every
#               round and served after ours, for before/after figures from the same run [none]
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
BASELINE=${BASELINE:-}
OUT=${OUT:-$(mktemp -d -t ltx2-side-by-side-XXXXXX)}
mkdir -p "$OUT"

[ -x "$LTX2" ] || { echo "no $LTX2: cargo build --release -p ltx2" >&2; exit 1; }
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || { echo "no $BASELINE" >&2; exit 1; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

echo "# $(date -u +%FT%TZ) $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
echo "# ours: $LTX2 ($(git rev-parse --short HEAD)); baseline: ${BASELINE:-none}; reference: $REF_PYTHON; output in $OUT"

ours() { # name, width, height, binary
    echo "# $4 $1 ${2}x${3} (WxH): load before $(load)"
    "$4" bench --size tiny --frames "$FRAMES" --width "$2" --height "$3" --fps 24 \
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

serve() { # binary, name: health time, then three requests for the spec's 288x512
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "# $1 serve --model demo on port $port: load before $(load)"
    started=$(date +%s.%N)
    "$1" serve --model demo --host 127.0.0.1 --port "$port" >"$OUT/$2.log" 2>&1 &
    server=$!
    trap 'kill $server 2>/dev/null || true' EXIT
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.05; done
    echo "#   healthy after $(python3 -c "import time; print(round(time.time() - $started, 2))") s"
    body='{"prompt": "A red fox runs through fresh snow at dawn, cinematic", "width": 288, "height": 512, "num_frames": 49, "seed": 10}'
    for i in 1 2 3; do
        curl -sf -X POST "http://127.0.0.1:$port/generate" -H 'Content-Type: application/json' \
            -d "$body" -o "$OUT/$2_$i.json" -w "%{time_total}\n" >"$OUT/$2_${i}_wall.txt"
    done
    kill "$server"
    wait "$server" 2>/dev/null || true
    trap - EXIT
    echo "#   load after $(load)"
}

for r in $(seq 1 "$ROUNDS"); do
    ours "ours_$r" "$WIDTH" "$HEIGHT" "$LTX2"
    reference "ref_$r"
    ours "ours_spec_$r" 288 512 "$LTX2"
    if [ -n "$BASELINE" ]; then
        ours "base_$r" "$WIDTH" "$HEIGHT" "$BASELINE"
        ours "base_spec_$r" 288 512 "$BASELINE"
    fi
done

if [ "$SERVE" = 1 ]; then
    serve "$LTX2" serve
    [ -z "$BASELINE" ] || serve "$BASELINE" base_serve
fi

python3 - "$OUT" "$ROUNDS" "$SERVE" "$BASELINE" <<'EOF'
import json, statistics, sys
from pathlib import Path

out, rounds, serve, base = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] != ""
load = lambda name: json.loads((out / f"{name}.json").read_text())
stages = ["text_encode", "stage1", "upsample", "stage2", "video_decode", "audio_decode", "mux", "other"]
fmt = lambda v: f"{v:8.3f}" if v is not None else f"{'-':>8}"
first = lambda xs: f"{xs[0]:.3f} s" if xs else "-"
print("\n# Summary (median seconds; ratio = reference / ours)")
ratios = []
for r in range(1, rounds + 1):
    ours, ref, spec = load(f"ours_{r}"), load(f"ref_{r}"), load(f"ours_spec_{r}")
    runs = {"ours": ours, "reference": ref}
    if base:
        runs["baseline"] = load(f"base_{r}")
    o, f = ours["median_total_s"], ref["median_total_s"]
    ratios.append(f / o)
    print(f"round {r}: ours {o:.3f} s, reference {f:.3f} s, ratio {f / o:.2f}; "
          f"ours at 288x512 {spec['median_total_s']:.3f} s")
    if base:
        b, bs = runs["baseline"]["median_total_s"], load(f"base_spec_{r}")["median_total_s"]
        print(f"  baseline {b:.3f} s (288x512: {bs:.3f} s), baseline / ours {b / o:.2f}")
    print(f"  first request after building: ours {first(ours.get('warmup_totals_s'))} (288x512: "
          f"{first(spec.get('warmup_totals_s'))}), reference {first(ref.get('warmup_total_s'))}")
    print("  " + f"{'stage':<13}" + "".join(f"{n:>10}" for n in runs) + "  reference / ours")
    for s in stages:
        vals = [x["median_stages_s"].get(s) for x in runs.values()]
        if all(v is None for v in vals):
            continue
        a, b = vals[0], vals[1]
        ra = f"{b / a:.2f}" if a and b else "-"
        print(f"  {s:<13}" + "".join(f"  {fmt(v)}" for v in vals) + f"  {ra}")
print(f"ratio over rounds: {', '.join(f'{x:.2f}' for x in ratios)}; median {statistics.median(ratios):.2f}")
if serve:
    for name in ["serve"] + (["base_serve"] if base else []):
        for i in (1, 2, 3):
            d = json.loads((out / f"{name}_{i}.json").read_text())
            wall = float((out / f"{name}_{i}_wall.txt").read_text())
            stages = {s["stage"]: round(s["seconds"], 3) for s in d.get("timings", {}).get("stages", [])}
            print(f"{name} request {i}: HTTP {wall:.3f} s, generation_time_seconds "
                  f"{d['generation_time_seconds']}, stages {stages}")
EOF
