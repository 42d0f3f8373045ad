//! Video VAE encoder/decoder (`vae.*`) and the causal/non-causal Conv3d it is built from.
