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
# g++ for openh264 / fdk-aac (built from their bundled sources), nasm for openh264's asm.
# Unpinned on purpose: the CUDA image pins the toolkit; these follow the Ubuntu release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       build-essential ca-certificates curl nasm pkg-config \
    && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:${PATH}
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --default-toolchain "${RUST_VERSION}"
# cudarc links libcuda/libcublas/libcublasLt/libcurand/libnvrtc at build time (dynamic-linking):
# the devel image has them under CUDA_HOME, libcuda as the lib64/stubs link-time stub (never shipped).
ENV CUDA_HOME=/usr/local/cuda \
    CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP}
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ltx2 --features cuda \
    && install -m 0755 target/release/ltx2 /usr/local/bin/ltx2

# The runtime image carries libcudart, libcublas(Lt), libcurand and libnvrtc; libcuda.so.1 comes
# from the host driver through the NVIDIA container toolkit.
FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
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
