//! Audio VAE (encoder/decoder over log-mel spectrograms) and the mel front-end (`mel`).
