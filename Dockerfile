# syntax=docker/dockerfile:1
# ltx2 on CUDA: `docker build -t ltx2-worker .`
#   HTTP API (default):  docker run --gpus all -p 8000:8000 ltx2-worker
#   RunPod worker:       docker run --gpus all ltx2-worker ltx2 worker
# No ENTRYPOINT on purpose: the command is `ltx2 <subcommand>`, so the spec's
# `docker run ... ltx2-worker <command>` form works unchanged. See docs/DEPLOY.md.

# CUDA 13.0 exactly: cudarc accepts 13.0-13.4, and PTX from nvcc >= 13.1 is rejected by a
# CUDA 13.0 driver (docs/rust-stack.md 2.4).
ARG CUDA_VERSION=13.0.0
ARG UBUNTU=ubuntu24.04

FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS builder
ARG RUST_VERSION=1.95.0
# No GPU at build time, so candle-kernels cannot ask nvidia-smi: 90 = H100/H200 (sm_90a PTX).
# Build one image per GPU generation (e.g. 100 for B200).
ARG CUDA_COMPUTE_CAP=90
ENV DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# cuDNN 9 for CUDA 13 (the version NVIDIA's own 13.0 cudnn images pin) and the header-only
# cudnn-frontend: ltx2-cuda compiles its SDPA / conv3d shim against them (libcudnn itself is
# dlopen'ed at run time, see the runtime stage).
ARG CUDNN_PACKAGE=9.13.0.50-1
ARG CUDNN_FRONTEND=1.32.0
# g++ for openh264 / fdk-aac (built from their bundled sources) and the cuDNN shim, nasm for
# openh264's asm, pip + unzip to unpack the cudnn-frontend headers from their PyPI wheel.
# Unpinned on purpose: the CUDA image pins the toolkit; these follow the Ubuntu release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       build-essential ca-certificates curl nasm pkg-config python3-pip unzip \
       "libcudnn9-dev-cuda-13=${CUDNN_PACKAGE}" "libcudnn9-cuda-13=${CUDNN_PACKAGE}" \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
       --platform manylinux_2_27_x86_64 -d /tmp/fe "nvidia-cudnn-frontend==${CUDNN_FRONTEND}" \
    && unzip -q /tmp/fe/*.whl 'include/*' -d /opt/cudnn-frontend && rm -rf /tmp/fe
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:${PATH}
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --default-toolchain "${RUST_VERSION}"
# cudarc links libcuda/libcublas/libcublasLt/libcurand/libnvrtc at build time (dynamic-linking):
# the devel image has them under CUDA_HOME, libcuda as the lib64/stubs link-time stub (never shipped).
ENV CUDA_HOME=/usr/local/cuda \
    CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP} \
    LTX2_CUDNN_INCLUDE=/usr/include \
    LTX2_CUDNN_FRONTEND_INCLUDE=/opt/cudnn-frontend/include
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ltx2 --features cuda \
    && install -m 0755 target/release/ltx2 /usr/local/bin/ltx2

# The runtime image carries libcudart, libcublas(Lt), libcurand and libnvrtc; libcudnn.so.9 is added
# for the fused attention and conv3d (without it ltx2 logs one line and uses its candle paths);
# libcuda.so.1 comes from the host driver through the NVIDIA container toolkit.
FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}
ARG CUDNN_PACKAGE=9.13.0.50-1
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
       "libcudnn9-cuda-13=${CUDNN_PACKAGE}" \
    && apt-mark hold libcudnn9-cuda-13 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /usr/local/bin/ltx2 /usr/local/bin/ltx2
WORKDIR /app
COPY test_input.json /app/test_input.json
# Weights are downloaded once into the (RunPod network) volume; override LTX2_MODEL with a folder.
ENV LTX2_HOST=0.0.0.0 \
    LTX2_PORT=8000 \
    LTX2_MODEL=hub \
    HF_HOME=/runpod-volume/huggingface \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
EXPOSE 8000
CMD ["ltx2", "serve"]
