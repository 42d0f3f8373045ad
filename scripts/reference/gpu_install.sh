#!/usr/bin/env bash
# Device side of pack_wheels.sh. Run from the repository root:
#   call 1 (carry [".whl/p1"]):  bash scripts/reference/gpu_install.sh p1
#   call 2 (carry [".whl/p2"]):  bash scripts/reference/gpu_install.sh p2 && export PYTHONPATH=$PWD/.site && ...
# .site/ (git-ignored) is a build output, so it stays on the warm machine between the two calls.
set -euo pipefail
mkdir -p .site/.parts
case "${1:-}" in
  p1)
    cp .whl/p1/*.part00 .site/.parts/
    ;;
  p2)
    cp .whl/p2/*.part01 .site/.parts/
    name=$(basename "$(ls .site/.parts/*.part00)" .part00)
    cat .site/.parts/"$name".part00 .site/.parts/"$name".part01 > "/tmp/$name"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site \
      "/tmp/$name" .whl/p2/*.whl
    PYTHONPATH="$PWD/.site" python3 -c 'import av, transformers, tokenizers, huggingface_hub, ltx_core, ltx_pipelines; print("reference env ok: transformers", transformers.__version__, "av", av.__version__)'
    ;;
  *)
    echo "usage: $0 p1|p2" >&2
    exit 2
    ;;
esac
