#!/usr/bin/env bash
# Creates the golden generator's own virtual environment (CPU use only).
#
#   scripts/golden/setup_venv.sh [VENV_DIR]      default: $GOLDEN_VENV, else scripts/golden/.venv
#
# PyPI's torch 2.7 wheel also pulls the CUDA runtime libraries (~3 GB, unused here). Where the PyTorch CPU index is
# reachable, TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu installs the CPU-only wheels first (~200 MB).
# GOLDEN_UNPINNED=1 installs requirements.txt without constraints.txt (newest allowed versions; the goldens may then
# differ in the last bits from the committed ones).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-${GOLDEN_VENV:-$here/.venv}}"
python="${PYTHON:-python3}"

"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "ltx-core 1.0.0 needs Python >= 3.10")'
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
constraints=(-c "$here/constraints.txt")
if [[ "${GOLDEN_UNPINNED:-0}" == 1 ]]; then constraints=(); fi
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
    "$venv/bin/python" -m pip install --index-url "$TORCH_INDEX_URL" "${constraints[@]}" torch torchaudio
fi
"$venv/bin/python" -m pip install "${constraints[@]}" -r "$here/requirements.txt"
"$venv/bin/python" - <<'PY'
import av, ltx_core, ltx_pipelines, torch, torchaudio, transformers
from importlib.metadata import version
print("golden venv ready:", {p: version(p) for p in ("torch", "torchaudio", "ltx-core", "ltx-pipelines", "transformers", "av")})
PY
