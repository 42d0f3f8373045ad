//! Spatial x2 latent upsampler (`ltx-2-spatial-upscaler-x2-1.0.safetensors`).
