//! Decoding input audio (WAV of any rate/depth/channels, FLAC, OGG, MP3) into an `AudioClip`.
