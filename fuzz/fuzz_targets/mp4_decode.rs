//! A client's clip (`video`, `control_video`): MP4 demux (the `mp4` crate), H.264 (openh264) and
//! the AAC track (symphonia) with the server's limits. A decoded clip must be within them.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use ltx2_pipeline::media::video::{decode_mp4_with, VideoLimits};

const MAX_PIXELS: u64 = 1920 * 1080;
const MAX_FRAMES: usize = 257;
const KEEP: usize = 33;

fuzz_target!(|data: &[u8]| {
    common::report_caught_panics();
    let limits = VideoLimits {
        max_pixels: MAX_PIXELS,
        max_frames: MAX_FRAMES,
        keep_frames: Some(KEEP),
        audio: true,
    };
    if let Ok(clip) = decode_mp4_with(data, &limits) {
        assert!(!clip.frames.is_empty() && clip.frames.len() <= KEEP);
        assert!(clip.total_frames <= MAX_FRAMES);
        for f in &clip.frames {
            assert!(f.width as u64 * f.height as u64 <= MAX_PIXELS);
            assert_eq!(f.data.len(), (f.width * f.height * 3) as usize);
        }
    }
});
