#!/usr/bin/env bash
# Download (here, where PyPI is reachable) the wheels the GPU image lacks for the reference harness, and pack them
# into two carries that each fit the device tool's 64 MiB limit together with the tracked tree (~36 MiB):
#   .whl/p1/  first 24 MiB of the av wheel
#   .whl/p2/  the rest of the av wheel + transformers 4.57.6, tokenizers 0.22.2, huggingface_hub 0.36.2,
#             ltx-core 1.0.0, ltx-pipelines 1.0.0
# On the device: scripts/reference/gpu_install.sh p1, then (next call, machine still warm) gpu_install.sh p2.
# .whl/ must be git-ignored (echo /.whl/ >> .git/info/exclude); never commit wheels.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
rm -rf .whl/dl .whl/p1 .whl/p2
mkdir -p .whl/dl .whl/p1 .whl/p2
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl/dl av==18.1.0 tokenizers==0.22.2
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl/dl \
  ltx-core==1.0.0 ltx-pipelines==1.0.0 transformers==4.57.6 huggingface_hub==0.36.2
av=$(ls .whl/dl/av-*.whl)
split -b 24M -d "$av" ".whl/p1/$(basename "$av").part"
mv .whl/p1/*.part01 .whl/p2/
for f in .whl/dl/*.whl; do [ "$f" = "$av" ] || mv "$f" .whl/p2/; done
rm -rf .whl/dl
du -sh .whl/p1 .whl/p2
