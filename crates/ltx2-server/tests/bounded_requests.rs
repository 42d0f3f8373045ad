//! Bounded decoding through the real router: requests whose media headers claim huge sizes (an
//! image claiming 100000x100000, a WAV claiming 4 GB or 65535 channels, a rate whose resampling
//! kernel would take gigabytes, an MP4 claiming 4 billion samples) get a 422 naming the field,
//! and the whole request (client and server, one process) stays within a small heap peak. A JSON
//! body of millions of small values costs a few times its size, not a `serde_json::Value` tree.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use ltx2_model::alloc_meter::{CountingAlloc, Meter};
use ltx2_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Heap a refused request may cost, client, router and validation together.
const SMALL: usize = 8 << 20;

const TONE_M4A: &[u8] = include_bytes!("../../ltx2-pipeline/tests/fixtures/tone.m4a");

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = png_bytes(8, 8, 3);
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn wav(rate: u32, channels: u16, frames: usize, claimed: Option<u32>) -> Vec<u8> {
    let data_len = (frames * channels as usize * 2) as u32;
    let claimed = claimed.unwrap_or(data_len);
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&claimed.saturating_add(36).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&channels.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&rate.wrapping_mul(channels as u32 * 2).to_le_bytes());
    w.extend_from_slice(&channels.wrapping_mul(2).to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&claimed.to_le_bytes());
    for i in 0..frames * channels as usize {
        w.extend_from_slice(&(((i as f32 * 0.07).sin() * 9000.0) as i16).to_le_bytes());
    }
    w
}

/// Sets the 32-bit field at `offset` of the only `kind` box.
fn patch_box(mp4: &[u8], kind: &[u8; 4], offset: usize, value: u32) -> Vec<u8> {
    let mut out = mp4.to_vec();
    let at = out.windows(4).position(|w| w == kind).expect("box") - 4;
    out[at + offset..at + offset + 4].copy_from_slice(&value.to_be_bytes());
    out
}

async fn post(url: &str, body: String) -> (StatusCode, Value, usize) {
    let meter = Meter::start();
    let r = reqwest::Client::new()
        .post(format!("{url}/generate"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let json: Value = r.json().await.unwrap();
    (status, json, meter.peak())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_media_is_refused_within_a_small_heap() {
    let server = TestServer::start(ServerConfig::default(), Duration::ZERO).await;
    let base = json!({"prompt": "x", "width": 64, "height": 64, "num_frames": 9});
    let with = |field: &str, mime: &str, bytes: Vec<u8>| {
        let mut b = base.clone();
        b[field] = json!(format!("data:{mime};base64,{}", b64(&bytes)));
        b.to_string()
    };
    let cases = [
        (
            "PNG claiming 100000x100000",
            with("image_start", "image/png", png_claiming(100_000, 100_000)),
            "image_start",
        ),
        (
            "PNG claiming 8192x8192",
            with("image_end", "image/png", png_claiming(8192, 8192)),
            "image_end",
        ),
        (
            "WAV claiming 4 GB, holding 100 samples",
            with(
                "audio",
                "audio/wav",
                wav(16_000, 1, 100, Some(u32::MAX - 64)),
            ),
            "audio",
        ),
        (
            "WAV claiming 65535 channels",
            with("audio", "audio/wav", wav(16_000, 65_535, 2, None)),
            "audio",
        ),
        (
            "WAV at 44101 Hz (a 5.6 GB resampling kernel)",
            with("audio", "audio/wav", wav(44_101, 1, 44_101, None)),
            "audio",
        ),
        (
            "MP4 claiming 4294967295 samples",
            with(
                "audio",
                "audio/mp4",
                patch_box(TONE_M4A, b"stsz", 16, u32::MAX),
            ),
            "audio",
        ),
    ];
    for (case, body, field) in cases {
        let (status, r, peak) = post(&server.url, body).await;
        println!("{case}: {status} {} (peak {peak} B)", r["error"]);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{case}: {r}");
        assert_eq!(r["field"], field, "{case}: {r}");
        assert!(peak < SMALL, "{case}: peak {peak} B");
    }

    // Millions of values: parsed as a `Value` tree, 3 M zeros would take ~100 MB; raw, the body
    // is held a few times over at most.
    let zeros = vec!["0"; 3 << 20].join(",");
    for (case, body, status) in [
        (
            "unknown field of 3M numbers",
            format!(
                r#"{{"prompt": "x", "width": 64, "height": 64, "num_frames": 9, "extra": [{zeros}]}}"#
            ),
            StatusCode::OK,
        ),
        (
            "prompt of 3M numbers",
            format!(r#"{{"prompt": [{zeros}]}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let len = body.len();
        let meter = Meter::start();
        let tree: Value = serde_json::from_str(&body).unwrap();
        let tree_peak = meter.peak();
        drop(tree);
        let (s, r, peak) = post(&server.url, body).await;
        println!(
            "{case} ({len} B body): {s} (peak {peak} B, {:.1}x the body; as a Value tree alone: {tree_peak} B)",
            peak as f64 / len as f64
        );
        assert_eq!(s, status, "{case}: {}", r["error"]);
        assert!(peak < 6 * len, "{case}: peak {peak} B for a {len} B body");
    }
}
