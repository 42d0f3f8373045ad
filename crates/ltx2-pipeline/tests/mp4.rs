//! The in-process MP4 writer, checked with ffprobe/ffmpeg: codecs, size, frame count, audio
//! format, moov before mdat, and audio/video alignment (AAC priming compensated).

use std::path::PathBuf;
use std::process::Command;

use ltx2_pipeline::media::mp4::{encode_mp4, Mp4Error};
use ltx2_pipeline::{AudioClip, VideoFrames};
use serde_json::Value;

fn frames(width: u32, height: u32, n: usize, fps: f32) -> VideoFrames {
    let frames = (0..n)
        .map(|t| {
            let mut f = Vec::with_capacity((width * height * 3) as usize);
            for y in 0..height {
                for x in 0..width {
                    f.extend_from_slice(&[
                        (x * 255 / width) as u8,
                        (y * 255 / height) as u8,
                        (t * 255 / n.max(1)) as u8,
                    ]);
                }
            }
            f
        })
        .collect();
    VideoFrames {
        width,
        height,
        fps,
        frames,
    }
}

/// Silence, then a 440 Hz tone from `onset` seconds on.
fn tone(sample_rate: u32, channels: usize, seconds: f64, onset: f64) -> AudioClip {
    let n = (seconds * sample_rate as f64).round() as usize;
    let ch: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f64 / sample_rate as f64;
            if t >= onset {
                (0.5 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as f32
            } else {
                0.0
            }
        })
        .collect();
    AudioClip {
        sample_rate,
        channels: vec![ch; channels],
    }
}

fn write_tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ltx2-mp4-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn ffprobe(path: &PathBuf) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stream<'a>(probe: &'a Value, kind: &str) -> Option<&'a Value> {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
}

fn num(v: &Value) -> f64 {
    v.as_str()
        .map(|s| s.parse().unwrap())
        .or_else(|| v.as_f64())
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

fn top_level_boxes(bytes: &[u8]) -> Vec<String> {
    let mut pos = 0;
    let mut kinds = Vec::new();
    while pos + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        kinds.push(String::from_utf8_lossy(&bytes[pos + 4..pos + 8]).into_owned());
        assert!(size >= 8, "bad box size");
        pos += size;
    }
    assert_eq!(pos, bytes.len(), "boxes do not tile the file");
    kinds
}

/// Mono f32 decode of the audio track by ffmpeg (applies the edit list like a player does).
fn decode_audio(path: &PathBuf) -> (Vec<f32>, u32) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-ac", "1", "-f", "f32le", "-"])
        .output()
        .expect("ffmpeg is installed");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples = out
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (samples, 0)
}

#[test]
fn video_and_audio_streamable_and_aligned() {
    let (w, h, n, fps) = (288, 512, 49, 25.0);
    let video = frames(w, h, n, fps);
    let duration = n as f64 / fps as f64;
    let onset = 1.0;
    let audio = tone(24_000, 2, duration, onset);
    let bytes = encode_mp4(&video, Some(&audio)).unwrap();
    println!(
        "mp4: {} frames {w}x{h} + 24 kHz stereo -> {} bytes",
        n,
        bytes.len()
    );
    let path = write_tmp("av.mp4", &bytes);

    let boxes = top_level_boxes(&bytes);
    let moov = boxes.iter().position(|b| b == "moov").expect("moov");
    let mdat = boxes.iter().position(|b| b == "mdat").expect("mdat");
    assert!(
        moov < mdat,
        "moov must precede mdat for streaming: {boxes:?}"
    );

    let probe = ffprobe(&path);
    let v = stream(&probe, "video").expect("video stream");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(v["pix_fmt"], "yuv420p");
    assert_eq!(v["width"], w);
    assert_eq!(v["height"], h);
    assert_eq!(v["r_frame_rate"], "25/1");
    assert_eq!(num(&v["nb_read_frames"]) as usize, n, "decoded frame count");
    let v_dur = num(&v["duration"]);
    assert!(
        (v_dur - duration).abs() < 1e-3,
        "video duration {v_dur} vs {duration}"
    );

    let a = stream(&probe, "audio").expect("audio stream");
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(a["profile"], "LC");
    assert_eq!(num(&a["sample_rate"]) as u32, 24_000);
    assert_eq!(a["channels"], 2);
    let a_start = num(&a["start_time"]);
    let a_dur = num(&a["duration"]);
    println!(
        "video start {} dur {v_dur}; audio start {a_start} dur {a_dur}",
        num(&v["start_time"])
    );
    assert!(
        a_start.abs() < 1e-3,
        "audio must start with the video, starts at {a_start}"
    );
    assert!(
        (a_dur - v_dur).abs() < 0.01,
        "audio duration {a_dur} vs video {v_dur}"
    );

    // The tone onset must come out where it went in: the AAC priming is skipped by the edit list.
    let (pcm, _) = decode_audio(&path);
    let decoded_seconds = pcm.len() as f64 / 24_000.0;
    assert!(
        (decoded_seconds - duration).abs() < 0.01,
        "decoded {decoded_seconds}s of audio vs {duration}s"
    );
    let first_loud = pcm
        .iter()
        .position(|s| s.abs() > 0.1)
        .expect("tone present") as f64
        / 24_000.0;
    println!("tone onset in {onset}s, decoded at {first_loud:.4}s");
    assert!(
        (first_loud - onset).abs() < 0.005,
        "tone onset at {first_loud}s, expected {onset}s"
    );
}

#[test]
fn video_only_has_no_audio_track() {
    let video = frames(64, 96, 9, 24.0);
    let bytes = encode_mp4(&video, None).unwrap();
    let path = write_tmp("v.mp4", &bytes);
    let probe = ffprobe(&path);
    assert!(stream(&probe, "audio").is_none());
    let v = stream(&probe, "video").unwrap();
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(64), Some(96))
    );
    assert_eq!(num(&v["nb_read_frames"]) as usize, 9);
    assert_eq!(v["r_frame_rate"], "24/1");
    let boxes = top_level_boxes(&bytes);
    assert!(boxes.iter().position(|b| b == "moov") < boxes.iter().position(|b| b == "mdat"));
}

#[test]
fn mono_and_short_audio_become_stereo_of_video_length() {
    // Mono, 16 kHz, half as long as the video: padded with silence, upmixed to stereo.
    let video = frames(64, 64, 17, 25.0);
    let audio = tone(16_000, 1, 0.34, 0.0);
    let bytes = encode_mp4(&video, Some(&audio)).unwrap();
    let probe = ffprobe(&write_tmp("mono.mp4", &bytes));
    let a = stream(&probe, "audio").unwrap();
    assert_eq!(a["channels"], 2);
    assert_eq!(num(&a["sample_rate"]) as u32, 16_000);
    assert!(
        (num(&a["duration"]) - 0.68).abs() < 0.01,
        "audio duration {}",
        a["duration"]
    );
}

/// LTX-2.3 audio (48 kHz from the vocoder with bandwidth extension) is muxed at 48 kHz.
#[test]
fn model_48k_audio_stays_48k() {
    let video = frames(64, 64, 9, 25.0);
    let audio = tone(48_000, 2, 0.36, 0.0);
    let bytes = encode_mp4(&video, Some(&audio)).unwrap();
    let probe = ffprobe(&write_tmp("48k.mp4", &bytes));
    let a = stream(&probe, "audio").unwrap();
    assert_eq!(num(&a["sample_rate"]) as u32, 48_000);
    assert_eq!(a["channels"], 2);
    assert!(
        (num(&a["duration"]) - 0.36).abs() < 0.01,
        "audio duration {}",
        a["duration"]
    );
}

#[test]
fn unusual_sample_rate_is_resampled_to_24k() {
    let video = frames(64, 64, 9, 25.0);
    let audio = tone(23_456, 2, 0.36, 0.0);
    let bytes = encode_mp4(&video, Some(&audio)).unwrap();
    let probe = ffprobe(&write_tmp("rate.mp4", &bytes));
    assert_eq!(
        num(&stream(&probe, "audio").unwrap()["sample_rate"]) as u32,
        24_000
    );
}

#[test]
fn noise_frames_keep_every_frame() {
    // The demo model outputs noise: the worst case for the rate control, which must not drop frames.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut video = frames(288, 512, 25, 25.0);
    for f in &mut video.frames {
        for b in f.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
    }
    let started = std::time::Instant::now();
    let bytes = encode_mp4(&video, None).unwrap();
    println!(
        "noise: 25 frames 288x512 -> {} bytes in {:?}",
        bytes.len(),
        started.elapsed()
    );
    let probe = ffprobe(&write_tmp("noise.mp4", &bytes));
    assert_eq!(
        num(&stream(&probe, "video").unwrap()["nb_read_frames"]) as usize,
        25
    );
}

#[test]
fn fractional_fps_is_muxed_exactly() {
    let bytes = encode_mp4(&frames(64, 64, 9, 23.976), None).unwrap();
    let probe = ffprobe(&write_tmp("ntsc.mp4", &bytes));
    let v = stream(&probe, "video").unwrap();
    assert_eq!(v["r_frame_rate"], "2997/125", "23.976 fps");
    assert!((num(&v["duration"]) - 9.0 / 23.976).abs() < 1e-3);
}

#[test]
fn bad_input_is_a_typed_error() {
    let mut video = frames(64, 64, 3, 25.0);
    video.frames[1].pop();
    assert!(matches!(
        encode_mp4(&video, None),
        Err(Mp4Error::InvalidVideo(_))
    ));
    let odd = frames(63, 64, 1, 25.0);
    assert!(matches!(
        encode_mp4(&odd, None),
        Err(Mp4Error::InvalidVideo(_))
    ));
    let empty = VideoFrames {
        width: 64,
        height: 64,
        fps: 25.0,
        frames: vec![],
    };
    assert!(matches!(
        encode_mp4(&empty, None),
        Err(Mp4Error::InvalidVideo(_))
    ));
    let video = frames(64, 64, 3, 25.0);
    let bad_audio = AudioClip {
        sample_rate: 24_000,
        channels: vec![vec![0.0; 10], vec![0.0; 5]],
    };
    assert!(matches!(
        encode_mp4(&video, Some(&bad_audio)),
        Err(Mp4Error::InvalidAudio(_))
    ));
}
