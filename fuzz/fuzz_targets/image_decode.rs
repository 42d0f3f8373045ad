//! A conditioning image: as a request field (data URI or bare base64 -> bytes -> image) when the
//! first byte is odd, else raw bytes into the decoder. A decoded image must be within the limits.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use ltx2_pipeline::media::image::{decode_image_with, ImageLimits};
use ltx2_server::media;

fuzz_target!(|data: &[u8]| {
    common::report_caught_panics();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let limits = ImageLimits::default();
    if mode & 1 == 1 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        if let Ok(bytes) = media::decode_base64_field(text) {
            let _ = media::decode_image(&bytes, &limits);
        }
    } else if let Ok(img) = decode_image_with(rest, &limits) {
        let pixels = img.width as u64 * img.height as u64;
        assert!(pixels > 0 && pixels <= limits.max_pixels);
        assert_eq!(img.data.len() as u64, pixels * 3);
    }
});
