//! HiFi-GAN vocoder: log-mel to 24 kHz stereo waveform (`vocoder.*`).
