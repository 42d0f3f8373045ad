#!/usr/bin/env bash
# Fuzzes what the server reads from clients and from disk with cargo-fuzz (libFuzzer + ASan):
# the request body, base64 + image decode, audio decode (symphonia's demuxers and decoders,
# AAC-in-MP4 included), MP4 clips (mp4 demux, openh264, AAC), and the safetensors header reader. Not part of CI.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 600 s, every target)
#
# Installs what it needs (the nightly toolchain, cargo-fuzz), writes seed corpora taken from the
# tests (scripts/fuzz_seeds.py), then runs each target in turn, niced, for the given time. The
# grown corpora stay in fuzz/corpus/<target> (later runs continue from them), crashes land in
# fuzz/artifacts/<target>, logs in fuzz/logs/<target>.log. Prints one summary line per target:
# time, executions, corpus size, crashes, and the distinct panics the code caught (decoders are
# wrapped in catch_unwind; see fuzz/fuzz_targets/common.rs).
#
# A crash reproduces with `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...`;
# each one found becomes a regression test in the crate that owns the code.

set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-600}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(request_body image_decode audio_decode mp4_decode safetensors_header)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

SEEDS=fuzz/seeds
rm -rf "$SEEDS"
python3 scripts/fuzz_seeds.py "$SEEDS"
mkdir -p fuzz/logs

# Release with debug assertions (overflow checks) and AddressSanitizer: cargo-fuzz's defaults.
nice -n 10 cargo +nightly fuzz build

max_len() {
    case "$1" in
        safetensors_header) echo 262144 ;;
        *) echo 65536 ;;
    esac
}

SUMMARY=()
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="fuzz/logs/$t.log"
    before=$(find "fuzz/artifacts/$t" -type f | wc -l)
    echo "== $t for ${SECONDS_PER_TARGET}s (log: $log)"
    # -rss_limit_mb / -malloc_limit_mb: an input that makes the code allocate over 512 MB at once
    # or hold 2 GB is a finding (decoding is bounded); -timeout: one input over 30 s is too.
    set +e
    nice -n 10 cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "$SEEDS/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -timeout=30 -max_len="$(max_len "$t")" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    crashes=$(( $(find "fuzz/artifacts/$t" -type f | wc -l) - before ))
    panics=$(grep -c '^PANIC-SEEN' "$log" || true)
    line="$t: ${SECONDS_PER_TARGET}s, ${execs:-?} executions, corpus ${corpus} files, ${crashes} new crash(es), ${panics} distinct caught panic(s), exit ${rc}"
    echo "$line"
    grep '^PANIC-SEEN' "$log" | sort -u | sed 's/^/    /' || true
    SUMMARY+=("$line")
done

echo
echo "== summary"
printf '%s\n' "${SUMMARY[@]}"
