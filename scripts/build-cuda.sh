#!/usr/bin/env bash
# Builds the CUDA binary (`--features cuda`, compute capability 90 = H100/H200) on a machine WITHOUT a GPU.
#
# nvcc and the CUDA libraries come from PyPI wheels pinned to CUDA 13.0 (the PTX of newer nvcc is rejected
# by the 13.0 driver of the GPU hosts, and cudarc supports <= 13.4); the driver library is replaced at link
# time by a generated stub exporting the `cu*` symbols (never shipped: the real libcuda.so.1 is loaded at
# run time). Recipe verified in docs/rust-stack.md §2.5-2.6 of the shared research notes.
#
# cuDNN: the crate ltx2-cuda compiles a small C++ shim over NVIDIA's header-only cudnn-frontend
# (PyPI `nvidia-cudnn-frontend`) against `cudnn.h` (PyPI `nvidia-cudnn-cu13`; only its include/
# folder is kept, the ~350 MB wheel is deleted). The shim dlopens libcudnn.so.9 at run time, so
# the binary does not need cuDNN to start: without it attention and conv3d use candle.
#
# Output: target/cuda/release/ltx2 (needs libcuda.so.1, libcublas.so.13, libcublasLt.so.13,
# libcudart.so.13, libcurand.so.10 at run time, and optionally libcudnn.so.9; PyTorch's cu13 wheels
# carry all but the driver).
#
# Extra arguments are passed to cargo, e.g. `scripts/build-cuda.sh --workspace --tests --no-run`
# (the default is `-p ltx2`); `BUILD_CUDA_ENV_ONLY=1 . scripts/build-cuda.sh` only sets up and
# exports the environment (for `cargo clippy --features cuda` and friends).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=${CUDA_VENV:-$PWD/.cuda-venv}
ROOT=${CUDA_ROOT_DIR:-$PWD/.cuda-root}

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import nvidia' 2>/dev/null || [ ! -e "$("$VENV/bin/python" -c 'import nvidia,os;print(os.path.dirname(nvidia.__path__[0]))')/nvidia/cu13/bin/nvcc" ]; then
  "$VENV/bin/pip" install -q \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
    nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.1.0.3 nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
fi
CU=$("$VENV/bin/python" -c 'import nvidia,os;print(os.path.join(nvidia.__path__[0], "cu13"))')

mkdir -p "$ROOT/lib/stubs"
ln -sfn "$CU/bin" "$ROOT/bin"
ln -sfn "$CU/include" "$ROOT/include"
ln -sfn "$CU/nvvm" "$ROOT/nvvm"
# The wheels ship only versioned sonames; the linker wants the plain names.
for f in "$CU"/lib/*.so.*; do
  b=$(basename "$f")
  ln -sf "$f" "$ROOT/lib/$b"
  ln -sf "$f" "$ROOT/lib/${b%%.so*}.so"
done
# Link-time stub for the driver API (SONAME libcuda.so.1): every cu* entry point of cuda.h, returning an error.
if [ ! -f "$ROOT/lib/stubs/libcuda.so" ]; then
  for D in "" -D__CUDA_API_VERSION_INTERNAL -DCUDA_API_PER_THREAD_DEFAULT_STREAM; do
    echo '#include <cuda.h>' | gcc -E -P $D -I"$ROOT/include" - | tr '\n' ' ' \
      | grep -oE '(CUresult|void|int|const char \*) *(CUDAAPI)? *cu[A-Za-z0-9_]+ *\(' \
      | grep -oE 'cu[A-Za-z0-9_]+ *\($' | tr -d ' ('
  done | sort -u | sed 's/.*/int &(void){return 999;}/' > "$ROOT/cuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$ROOT/lib/stubs/libcuda.so" "$ROOT/cuda_stub.c"
fi

# cuDNN headers: cudnn.h (+ its v9 siblings) and the header-only cudnn-frontend, pinned. The
# cudnn wheel is the oldest CUDA 13 one: the frontend limits itself to min(compiled, loaded)
# cuDNN features, and every newer libcudnn.so.9 (PyTorch 2.11 cu130 ships 9.1x) loads.
CUDNN_VERSION=9.13.0.50 CUDNN_FE_VERSION=1.32.0
if [ ! -f "$ROOT/cudnn/include/cudnn.h" ] || [ ! -f "$ROOT/cudnn-frontend/include/cudnn_frontend.h" ]; then
  tmp=$(mktemp -d)
  "$VENV/bin/pip" download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_27_x86_64 -d "$tmp" \
    "nvidia-cudnn-cu13==$CUDNN_VERSION" "nvidia-cudnn-frontend==$CUDNN_FE_VERSION"
  mkdir -p "$ROOT/cudnn" "$ROOT/cudnn-frontend"
  (cd "$tmp" && unzip -qo nvidia_cudnn_cu13-*.whl 'nvidia/cudnn/include/*' \
     && unzip -qo nvidia_cudnn_frontend-*.whl 'include/*' -d fe)
  rm -rf "$ROOT/cudnn/include" "$ROOT/cudnn-frontend/include"
  mv "$tmp/nvidia/cudnn/include" "$ROOT/cudnn/include"
  mv "$tmp/fe/include" "$ROOT/cudnn-frontend/include"
  rm -rf "$tmp"
fi

export CUDA_HOME=$ROOT PATH=$ROOT/bin:$PATH CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export LTX2_CUDNN_INCLUDE=$ROOT/cudnn/include LTX2_CUDNN_FRONTEND_INCLUDE=$ROOT/cudnn-frontend/include
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/cuda}
if [ -n "${BUILD_CUDA_ENV_ONLY:-}" ]; then
  return 0 2>/dev/null || exit 0
fi
if [ $# -eq 0 ]; then
  set -- -p ltx2
fi
cargo build --release --locked --features "${CUDA_FEATURES:-ltx2/cuda}" "$@"
echo "built in $CARGO_TARGET_DIR/release"
