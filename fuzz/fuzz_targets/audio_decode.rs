//! Conditioning audio (WAV, FLAC, OGG/Vorbis, MP3, AAC in MP4 — symphonia's demuxers and
//! decoders) with the server's limits, then the model-fit check. A decoded clip must be within
//! the limits.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use ltx2_pipeline::media::audio::{
    check_conditioning, decode_audio_with, AudioLimits, DEFAULT_MAX_AUDIO_SECONDS, MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
};

const KEEP_SECONDS: f64 = 10.0;

fuzz_target!(|data: &[u8]| {
    common::report_caught_panics();
    let limits = AudioLimits {
        max_seconds: DEFAULT_MAX_AUDIO_SECONDS,
        keep_seconds: Some(KEEP_SECONDS),
        keep_channels: 2,
    };
    if let Ok(clip) = decode_audio_with(data, &limits) {
        assert!((MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&clip.sample_rate));
        assert!(!clip.channels.is_empty() && clip.channels.len() <= 2);
        let n = clip.num_samples();
        assert!(clip.channels.iter().all(|c| c.len() == n));
        assert!(n as f64 <= (KEEP_SECONDS * clip.sample_rate as f64).ceil());
        let _ = check_conditioning(&clip, 2.0, &common::AUDIO_INPUT);
    }
});
