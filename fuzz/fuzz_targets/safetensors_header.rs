//! A whole safetensors file (checkpoint, upsampler, future LoRA): the header reader, then what
//! loading reads from the header before any weight: generation detection, the component
//! summary, the transformer config and the key/shape check, and the other sections' configs.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use ltx2_model::checkpoint::Checkpoint;

fuzz_target!(|data: &[u8]| {
    common::report_caught_panics();
    let Ok(c) = Checkpoint::from_bytes("fuzz.safetensors", data) else {
        return;
    };
    let _ = c.components();
    let _ = c.identity();
    if let Ok(cfg) = c.transformer_config() {
        let _ = c.check_transformer(&cfg);
    }
    if let Ok(Some(config)) = c.config() {
        let _ = ltx2_model::video_vae::Config::from_checkpoint_config(&config);
        let _ = ltx2_model::audio_vae::Config::from_checkpoint_config(&config);
        let _ = ltx2_model::vocoder::Config::from_checkpoint_config(&config);
    }
});
