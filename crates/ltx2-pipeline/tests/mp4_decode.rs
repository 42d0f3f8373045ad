//! The in-process MP4 decoder (`media::video`) on our own MP4s and on MP4s made by ffmpeg
//! (libx264 High profile with B-frames, yuv420p; AAC at 44.1 and 48 kHz; a phone-style rotation
//! matrix), compared with ffmpeg's own decoding; truncated, corrupt and foreign files are refused
//! with an error, never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use ltx2_pipeline::media::mp4::encode_mp4;
use ltx2_pipeline::media::video::{decode_mp4, decode_mp4_with, VideoDecodeError, VideoLimits};
use ltx2_pipeline::{AudioClip, VideoFrames};

fn tmp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ltx2-mp4-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Frames ffmpeg decodes from `path` (autorotated), packed RGB24.
fn ffmpeg_rgb(path: &Path, w: u32, h: u32) -> Vec<Vec<u8>> {
    let raw = path.with_extension("rgb");
    ffmpeg(&[
        "-i",
        path.to_str().unwrap(),
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        raw.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&raw).unwrap();
    bytes
        .chunks((w * h * 3) as usize)
        .map(<[u8]>::to_vec)
        .collect()
}

/// Mean and max absolute difference over all frames.
fn diff(a: &[Vec<u8>], b: &[Vec<u8>]) -> (f64, u8) {
    assert_eq!(a.len(), b.len(), "frame counts differ");
    let (mut sum, mut max, mut n) = (0f64, 0u8, 0usize);
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len(), "frame sizes differ");
        for (p, q) in x.iter().zip(y) {
            let d = p.abs_diff(*q);
            sum += d as f64;
            max = max.max(d);
            n += 1;
        }
    }
    (sum / n as f64, max)
}

/// A moving gradient with a bright square: enough structure for motion search and B-frames.
fn pattern(width: u32, height: u32, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|t| {
            let mut f = Vec::with_capacity((width * height * 3) as usize);
            for y in 0..height {
                for x in 0..width {
                    let inside = x.abs_diff(4 + 3 * t as u32) < 8 && y.abs_diff(height / 2) < 8;
                    f.extend_from_slice(&if inside {
                        [250, 250, 40]
                    } else {
                        [(x * 255 / width) as u8, (y * 255 / height) as u8, 90]
                    });
                }
            }
            f
        })
        .collect()
}

fn tone(rate: u32, seconds: f64) -> AudioClip {
    let n = (seconds * rate as f64) as usize;
    let ch: Vec<f32> = (0..n)
        .map(|i| (0.4 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / rate as f64).sin()) as f32)
        .collect();
    AudioClip {
        sample_rate: rate,
        channels: vec![ch.clone(), ch],
    }
}

#[test]
fn our_own_mp4_round_trips() {
    let (w, h, n) = (96u32, 64u32, 25usize);
    let frames = pattern(w, h, n);
    let bytes = encode_mp4(
        &VideoFrames {
            width: w,
            height: h,
            fps: 24.0,
            frames: frames.clone(),
        },
        Some(&tone(48_000, n as f64 / 24.0)),
    )
    .unwrap();
    let clip = decode_mp4(&bytes).unwrap();
    assert_eq!((clip.width, clip.height, clip.frames.len()), (w, h, n));
    assert!((clip.fps - 24.0).abs() < 1e-6, "fps {}", clip.fps);
    let ours: Vec<Vec<u8>> = clip.frames.iter().map(|f| f.data.clone()).collect();
    let (mean, max) = diff(&ours, &frames);
    println!("own MP4 vs the frames encoded: mean |diff| {mean:.3}, max {max}");
    assert!(mean < 4.0, "lossy round trip too far: mean {mean}");
    let audio = clip.audio.expect("our MP4 carries AAC");
    assert_eq!(audio.sample_rate, 48_000);
    assert_eq!(audio.channels.len(), 2);
    assert!((audio.duration_seconds() - n as f64 / 24.0).abs() < 0.1);

    // Against ffmpeg's decoding of the same file.
    let path = tmp_dir().join("own.mp4");
    std::fs::write(&path, &bytes).unwrap();
    let (mean, max) = diff(&ours, &ffmpeg_rgb(&path, w, h));
    println!("own MP4, ours vs ffmpeg: mean |diff| {mean:.3}, max {max}");
    assert!(mean < 2.0 && max <= 8, "mean {mean} max {max}");
}

#[test]
fn libx264_high_profile_with_b_frames_and_aac_at_44_1_and_48_khz() {
    let dir = tmp_dir();
    for (name, bf, rate) in [
        ("x264-bf3-44k", "3", "44100"),
        ("x264-bf2-48k", "2", "48000"),
    ] {
        let path = dir.join(format!("{name}.mp4"));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x96:rate=30",
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=440:sample_rate={rate}"),
            "-t",
            "1.2",
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-bf",
            bf,
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-ac",
            "2",
            path.to_str().unwrap(),
        ]);
        let clip = decode_mp4(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!((clip.width, clip.height), (160, 96), "{name}");
        assert_eq!(
            clip.frames.len(),
            36,
            "{name}: every frame, B-frames included"
        );
        assert!((clip.fps - 30.0).abs() < 1e-3, "{name}: fps {}", clip.fps);
        let ours: Vec<Vec<u8>> = clip.frames.iter().map(|f| f.data.clone()).collect();
        let (mean, max) = diff(&ours, &ffmpeg_rgb(&path, 160, 96));
        println!("{name}: ours vs ffmpeg RGB: mean |diff| {mean:.3}, max {max}");
        // Same pictures in the same order; only the YUV->RGB rounding differs.
        assert!(mean < 2.0 && max <= 8, "{name}: mean {mean} max {max}");
        let audio = clip.audio.expect("AAC track");
        assert_eq!(audio.sample_rate, rate.parse::<u32>().unwrap(), "{name}");
        assert!((audio.duration_seconds() - 1.2).abs() < 0.05, "{name}");
    }
}

#[test]
fn rotation_matrix_is_applied_like_ffmpeg_autorotate() {
    let dir = tmp_dir();
    let src = dir.join("landscape.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=96x64:rate=24",
        "-t",
        "0.5",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        src.to_str().unwrap(),
    ]);
    for degrees in ["90", "180", "270"] {
        let path = dir.join(format!("rotated-{degrees}.mp4"));
        // The muxer writes the display matrix of a `rotate` tag, as phones do.
        ffmpeg(&[
            "-i",
            src.to_str().unwrap(),
            "-c",
            "copy",
            "-metadata:s:v:0",
            &format!("rotate={degrees}"),
            path.to_str().unwrap(),
        ]);
        let clip = decode_mp4(&std::fs::read(&path).unwrap()).unwrap();
        let (w, h) = if degrees == "180" { (96, 64) } else { (64, 96) };
        assert_eq!((clip.width, clip.height), (w, h), "rotate={degrees}");
        let ours: Vec<Vec<u8>> = clip.frames.iter().map(|f| f.data.clone()).collect();
        let (mean, max) = diff(&ours, &ffmpeg_rgb(&path, w, h));
        println!("rotate={degrees}: ours vs ffmpeg autorotate: mean {mean:.3}, max {max}");
        assert!(
            mean < 2.0 && max <= 8,
            "rotate={degrees}: mean {mean} max {max}"
        );
    }
}

#[test]
fn keep_frames_and_limits() {
    let frames = pattern(64, 64, 17);
    let bytes = encode_mp4(
        &VideoFrames {
            width: 64,
            height: 64,
            fps: 25.0,
            frames,
        },
        None,
    )
    .unwrap();
    let clip = decode_mp4_with(
        &bytes,
        &VideoLimits {
            keep_frames: Some(9),
            ..VideoLimits::default()
        },
    )
    .unwrap();
    assert_eq!((clip.frames.len(), clip.total_frames), (9, 17));
    assert!(clip.audio.is_none());
    let too_long = decode_mp4_with(
        &bytes,
        &VideoLimits {
            max_frames: 10,
            ..VideoLimits::default()
        },
    );
    assert!(matches!(
        too_long,
        Err(VideoDecodeError::TooLong { frames: 17, .. })
    ));
    let too_big = decode_mp4_with(
        &bytes,
        &VideoLimits {
            max_pixels: 32 * 32,
            ..VideoLimits::default()
        },
    );
    assert!(matches!(too_big, Err(VideoDecodeError::TooLarge { .. })));
}

#[test]
fn truncated_corrupt_and_foreign_inputs_are_errors() {
    let bytes = encode_mp4(
        &VideoFrames {
            width: 64,
            height: 64,
            fps: 24.0,
            frames: pattern(64, 64, 9),
        },
        Some(&tone(48_000, 0.4)),
    )
    .unwrap();
    assert!(matches!(decode_mp4(&[]), Err(VideoDecodeError::EmptyInput)));
    assert!(decode_mp4(b"definitely not a video").is_err());
    // Every truncation point in steps: an error or a shorter clip, never a panic.
    let mut refused = 0;
    for cut in (0..bytes.len()).step_by(97) {
        match decode_mp4(&bytes[..cut]) {
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty());
            }
            Ok(clip) => assert!(clip.frames.len() <= 9),
        }
    }
    println!("truncations refused: {refused}");
    assert!(refused > 0);
    // Flipped bytes all over the file (header and data).
    let mut state = 0x2545_f491_u32;
    for _ in 0..200 {
        let mut bad = bytes.clone();
        for _ in 0..8 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let i = state as usize % bad.len();
            bad[i] ^= (state >> 8) as u8 | 1;
        }
        let _ = decode_mp4(&bad);
    }
    // An audio-only MP4 (M4A) has no video track.
    let m4a = tmp_dir().join("audio-only.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:sample_rate=44100",
        "-t",
        "0.3",
        "-c:a",
        "aac",
        m4a.to_str().unwrap(),
    ]);
    let err = decode_mp4(&std::fs::read(&m4a).unwrap()).unwrap_err();
    assert!(matches!(err, VideoDecodeError::NoVideoTrack), "{err}");
}

#[test]
fn other_codecs_are_named() {
    // MPEG-4 Part 2 in MP4 is a real video track the decoder cannot read.
    let path = tmp_dir().join("mpeg4.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64:rate=24",
        "-t",
        "0.2",
        "-c:v",
        "mpeg4",
        path.to_str().unwrap(),
    ]);
    let err = decode_mp4(&std::fs::read(&path).unwrap()).unwrap_err();
    assert!(
        matches!(&err, VideoDecodeError::UnsupportedCodec(c) if c.contains("mp4v")),
        "{err}"
    );
    println!("{err}");
}

/// Fragmented MP4 (moof/mdat pairs: Safari's MediaRecorder, streaming tools) is refused with
/// the remux command, not misread (the `mp4` crate's sample table for it is wrong).
#[test]
fn fragmented_mp4_is_refused_with_the_remux_command() {
    let path = tmp_dir().join("fragmented.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=24",
        "-t",
        "0.5",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "frag_keyframe+empty_moov",
        path.to_str().unwrap(),
    ]);
    let err = decode_mp4(&std::fs::read(&path).unwrap()).unwrap_err();
    assert!(matches!(err, VideoDecodeError::Fragmented), "{err}");
    assert!(err.to_string().contains("faststart"), "{err}");
}
