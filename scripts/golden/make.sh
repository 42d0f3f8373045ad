#!/usr/bin/env bash
# Pipeline golden generator (ltx-pipelines / ltx-core 1.0.0 on tiny models, both checkpoint layouts).
#
#   scripts/golden/make.sh --seed S --shapes {shared,holdout} --out DIR [--model 2.0|2.3|both] [--no-f64] [--threads N]
#
#   make.sh --seed 0 --shapes shared  --out testdata/golden-pipelines          # the committed set
#   make.sh --seed 1 --shapes holdout --out /tmp/golden-pipelines-holdout      # the hold-out set
#
# Runs in $GOLDEN_VENV (default scripts/golden/.venv, made by setup_venv.sh), at nice 10 ($GOLDEN_NICE).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${GOLDEN_VENV:-$here/.venv}"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "make.sh: no Python environment at $venv: run $here/setup_venv.sh first, or set GOLDEN_VENV" >&2
    exit 2
fi
exec nice -n "${GOLDEN_NICE:-10}" "$venv/bin/python" "$here/make_pipelines.py" "$@"
