//! A `/generate` (or `/jobs`, RunPod) body: raw JSON as HTTP reads it and a parsed value as the
//! RunPod worker gets it, through field reading and validation (base64 and media included). A
//! valid request must satisfy the documented rules; an error must become a one-line message.
//! Each body is validated twice: for a model without a duration head or LoRA folder, and for one
//! with both (`num_frames: "auto"`, LTX-2.5; `loras` resolved in testdata/golden-pipelines/loras,
//! where a name must never reach outside the folder).

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use ltx2_pipeline::loras::{LoraCatalog, MAX_ABS_STRENGTH, MAX_LORAS};
use ltx2_pipeline::media::image::ImageLimits;
use ltx2_server::http::error::ApiError;
use ltx2_server::http::redact::MAX_MESSAGE_CHARS;
use ltx2_server::validation::{validate, GenerateBody, Limits, ValidRequest, ValidationError};
use ltx2_server::ServerConfig;
use serde_json::value::RawValue;
use serde_json::Value;

fn check(result: Result<ValidRequest, ValidationError>, config: &ServerConfig) {
    match result {
        Ok(v) => {
            let r = &v.request;
            assert!(r.width % 32 == 0 && (64..=config.max_width).contains(&r.width));
            assert!(r.height % 32 == 0 && (64..=config.max_height).contains(&r.height));
            assert!(r.num_frames % 8 == 1 && (9..=config.max_frames).contains(&r.num_frames));
            assert!((1.0..=120.0).contains(&r.fps));
            assert!(!r.prompt.trim().is_empty());
            if let Some((clip, _)) = &r.audio {
                assert!(!clip.channels.is_empty() && clip.channels.len() <= 2);
            }
            assert!(r.loras.len() <= MAX_LORAS);
            for l in &r.loras {
                assert!(
                    !l.name.contains('/') && !l.name.contains("..") && !l.name.starts_with('.')
                );
                assert!(l.strength.is_finite() && l.strength.abs() <= MAX_ABS_STRENGTH);
            }
            if let Some(auto) = &r.auto_duration {
                assert!(auto.min_seconds >= 0.0 && auto.min_seconds <= auto.max_seconds);
                assert!(auto.max_seconds.is_finite() && auto.max_seconds > 0.0);
                assert!(auto.max_seconds <= config.max_frames as f64 / r.fps as f64 + 1e-9);
            }
        }
        Err(e) => {
            let api = ApiError::from(e);
            assert!(!api.body.error.contains('\n'), "{}", api.body.error);
            assert!(api.body.error.chars().count() <= MAX_MESSAGE_CHARS + 3);
        }
    }
}

fn lora_catalog() -> Option<LoraCatalog> {
    static CATALOG: std::sync::OnceLock<Option<LoraCatalog>> = std::sync::OnceLock::new();
    CATALOG
        .get_or_init(|| {
            let dir = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../testdata/golden-pipelines/loras"
            );
            LoraCatalog::new(std::path::Path::new(dir)).ok()
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    common::report_caught_panics();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = ServerConfig::default();
    let catalog = lora_catalog();
    for model_25 in [false, true] {
        let limits = Limits {
            max_width: config.max_width,
            max_height: config.max_height,
            max_frames: config.max_frames,
            max_steps: config.max_steps,
            image: ImageLimits {
                max_pixels: config.max_image_pixels,
            },
            max_audio_seconds: config.max_audio_seconds,
            audio_input: common::AUDIO_INPUT,
            auto_duration: model_25,
            loras: if model_25 { catalog.clone() } else { None },
        };
        if let Ok(raw) = serde_json::from_str::<Box<RawValue>>(text) {
            let result = GenerateBody::from_raw(raw).and_then(|(b, n)| validate(b, &limits, n));
            check(result, &config);
        }
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            let result = GenerateBody::from_json(value).and_then(|(b, n)| validate(b, &limits, n));
            check(result, &config);
        }
    }
});
