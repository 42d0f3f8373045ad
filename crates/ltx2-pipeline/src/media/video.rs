//! Decoding a user's MP4 clip in-process: the H.264 video track into RGB frames (openh264) and
//! the audio track (AAC, through [`super::audio`]), within [`VideoLimits`].
//!
//! Demuxing is the `mp4` crate's (`avcC` SPS/PPS, length-prefixed NAL units turned into Annex B).
//! The decoder runs with `Flush::NoFlush`: flushing after every sample (openh264-rs' default)
//! breaks on B-frames (libx264's default High profile), because a flushed picture is then missing
//! as a reference; without it the decoder reorders itself and returns pictures in display order,
//! and the last delayed pictures come out of `flush_remaining`.
//!
//! Measured against libavcodec (ffmpeg 5.1, `-f rawvideo -pix_fmt yuv420p`) on libx264 clips:
//! Baseline, High with 2-3 B-frames: identical planes; `-preset veryslow -refs 5 -b_strategy 2` or
//! weighted prediction with B-pyramid: a few pixels differ by 1-3 levels on some frames
//! (mean |diff| < 0.01 level). openh264 is kept for being linked already and memory-safe to feed
//! untrusted bytes behind `catch_unwind`; the deviation is far below what the VAE resolves.
//!
//! Phones record portrait clips as landscape frames plus a rotation in the track header's matrix:
//! frames are rotated by it (90/180/270 degrees), as players and ffmpeg's autorotate do.

use std::io::Cursor;

use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use super::audio::{decode_audio_with, AudioDecodeError, AudioLimits};
use crate::api::{AudioClip, RgbImage};

/// Longest side of a frame accepted (H.264 level 6.2 allows 8192).
pub const MAX_VIDEO_SIDE: u32 = 8192;
/// Default of [`VideoLimits::max_pixels`]: 4K UHD.
pub const DEFAULT_MAX_VIDEO_PIXELS: u64 = 3840 * 2160;
/// Default of [`VideoLimits::max_frames`]: ten minutes at 30 fps (decoding stops past it).
pub const DEFAULT_MAX_VIDEO_FRAMES: usize = 18_000;

/// Bounds on one decode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoLimits {
    /// Largest `width * height` of a frame (checked from the track header, then per picture).
    pub max_pixels: u64,
    /// Most samples the video track may hold.
    pub max_frames: usize,
    /// Only the first this-many frames are converted and kept (`None` = all): callers that need a
    /// prefix (a control video capped at the output length) do not hold the rest.
    pub keep_frames: Option<usize>,
    /// Whether the audio track is decoded too.
    pub audio: bool,
}

impl Default for VideoLimits {
    fn default() -> Self {
        Self {
            max_pixels: DEFAULT_MAX_VIDEO_PIXELS,
            max_frames: DEFAULT_MAX_VIDEO_FRAMES,
            keep_frames: None,
            audio: true,
        }
    }
}

/// A decoded clip: frames in display order (rotation applied), the track's frame rate, the
/// audio track if it has one.
#[derive(Debug, Clone)]
pub struct DecodedVideo {
    pub frames: Vec<RgbImage>,
    /// Displayed size (after rotation).
    pub width: u32,
    pub height: u32,
    /// Nominal frame rate of the video track: its timescale over its most common sample duration.
    pub fps: f64,
    /// Frames the track holds (also those not kept).
    pub total_frames: usize,
    pub audio: Option<AudioClip>,
}

impl DecodedVideo {
    /// Length of the video track in seconds.
    pub fn duration_seconds(&self) -> f64 {
        if self.fps > 0.0 {
            self.total_frames as f64 / self.fps
        } else {
            0.0
        }
    }
}

/// Why a clip could not be decoded. Messages are meant for the API client.
#[derive(Debug, thiserror::Error)]
pub enum VideoDecodeError {
    #[error("video input is empty (0 bytes)")]
    EmptyInput,
    #[error("video input is not an MP4 file: {0}")]
    NotMp4(String),
    #[error("fragmented MP4 (moof boxes) is not supported; remux it, e.g. `ffmpeg -i in.mp4 -c copy -movflags +faststart out.mp4`")]
    Fragmented,
    #[error("the MP4 has no video track")]
    NoVideoTrack,
    #[error("unsupported video codec {0} (supported: H.264 / AVC)")]
    UnsupportedCodec(String),
    #[error("video frame size {width}x{height} is above the {max_pixels} pixels accepted")]
    TooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("the video has {frames} frames; at most {max_frames} are accepted")]
    TooLong { frames: usize, max_frames: usize },
    #[error("video input is corrupt: {0}")]
    Corrupt(String),
    #[error("the video track decoded to no frames")]
    NoFrames,
    #[error("its audio track: {0}")]
    Audio(AudioDecodeError),
}

/// Decodes an MP4 held in memory with the default [`VideoLimits`].
pub fn decode_mp4(bytes: &[u8]) -> Result<DecodedVideo, VideoDecodeError> {
    decode_mp4_with(bytes, &VideoLimits::default())
}

/// Decodes an MP4 held in memory within `limits`. A panic inside the demuxer or decoder on a
/// malformed file is caught and reported as [`VideoDecodeError::Corrupt`].
pub fn decode_mp4_with(
    bytes: &[u8],
    limits: &VideoLimits,
) -> Result<DecodedVideo, VideoDecodeError> {
    if bytes.is_empty() {
        return Err(VideoDecodeError::EmptyInput);
    }
    std::panic::catch_unwind(|| decode(bytes, limits)).unwrap_or_else(|_| {
        Err(VideoDecodeError::Corrupt(
            "the demuxer or decoder failed on this input (malformed data)".into(),
        ))
    })
}

fn decode(bytes: &[u8], limits: &VideoLimits) -> Result<DecodedVideo, VideoDecodeError> {
    for (kind, range) in top_level_boxes(bytes) {
        match &kind {
            b"moof" => return Err(VideoDecodeError::Fragmented),
            b"moov" => check_box_tree(&bytes[range], 0).map_err(VideoDecodeError::NotMp4)?,
            _ => {}
        }
    }
    let mut reader = mp4::Mp4Reader::read_header(Cursor::new(bytes), bytes.len() as u64)
        .map_err(|e| VideoDecodeError::NotMp4(e.to_string()))?;
    let track = reader
        .tracks()
        .values()
        .filter(|t| matches!(t.track_type(), Ok(mp4::TrackType::Video)))
        .min_by_key(|t| t.track_id())
        .ok_or(VideoDecodeError::NoVideoTrack)?;
    let track_id = track.track_id();
    let avcc = match &track.trak.mdia.minf.stbl.stsd.avc1 {
        Some(avc1) => avc1.avcc.clone(),
        None => {
            let codec = track
                .box_type()
                .map(|b| b.to_string())
                .ok()
                .or_else(|| video_sample_entry(bytes))
                .unwrap_or_else(|| "unknown".into());
            return Err(VideoDecodeError::UnsupportedCodec(codec));
        }
    };
    let (w, h) = (track.width() as u32, track.height() as u32);
    let m = &track.trak.tkhd.matrix;
    let rotation = rotation_degrees(m.a, m.b, m.c, m.d);
    // The most common sample duration gives the nominal rate exactly (24, 30000/1001);
    // the track duration, rounded to the timescale, only approximately.
    let timescale = track.timescale();
    let common_delta = track
        .trak
        .mdia
        .minf
        .stbl
        .stts
        .entries
        .iter()
        .max_by_key(|e| e.sample_count)
        .map_or(0, |e| e.sample_delta);
    let duration = track.duration().as_secs_f64();
    let header_fps = if common_delta > 0 && timescale > 0 {
        timescale as f64 / common_delta as f64
    } else if duration > 0.0 {
        track.sample_count() as f64 / duration
    } else {
        track.frame_rate()
    };
    let with_audio = limits.audio
        && reader
            .tracks()
            .values()
            .any(|t| matches!(t.track_type(), Ok(mp4::TrackType::Audio)));
    check_size(w, h, limits)?;
    let total = reader
        .sample_count(track_id)
        .map_err(|e| VideoDecodeError::Corrupt(e.to_string()))? as usize;
    if total > limits.max_frames {
        return Err(VideoDecodeError::TooLong {
            frames: total,
            max_frames: limits.max_frames,
        });
    }
    let keep = limits.keep_frames.unwrap_or(total).min(total);

    // Parameter sets first, in Annex B, then every sample converted the same way.
    let mut header = Vec::new();
    for ps in avcc
        .sequence_parameter_sets
        .iter()
        .chain(&avcc.picture_parameter_sets)
    {
        header.extend_from_slice(&[0, 0, 0, 1]);
        header.extend_from_slice(&ps.bytes);
    }
    let nal_len = usize::from(avcc.length_size_minus_one & 3) + 1;
    let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
    let mut decoder = Decoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| VideoDecodeError::Corrupt(format!("H.264 decoder: {e}")))?;
    let mut frames = Vec::with_capacity(keep);
    let mut annex_b = Vec::new();
    for id in 1..=total as u32 {
        if frames.len() >= keep {
            break;
        }
        let sample = reader
            .read_sample(track_id, id)
            .map_err(|e| VideoDecodeError::Corrupt(format!("video sample {id}: {e}")))?
            .ok_or_else(|| VideoDecodeError::Corrupt(format!("video sample {id} is missing")))?;
        annex_b.clear();
        if id == 1 {
            annex_b.extend_from_slice(&header);
        }
        length_prefixed_to_annex_b(&sample.bytes, nal_len, &mut annex_b)
            .map_err(|m| VideoDecodeError::Corrupt(format!("video sample {id}: {m}")))?;
        let picture = decoder
            .decode(&annex_b)
            .map_err(|e| VideoDecodeError::Corrupt(format!("video sample {id}: {e}")))?;
        if let Some(yuv) = picture {
            frames.push(to_rgb(&yuv, rotation, limits)?);
        }
    }
    if frames.len() < keep {
        let rest = decoder
            .flush_remaining()
            .map_err(|e| VideoDecodeError::Corrupt(format!("end of stream: {e}")))?;
        for yuv in rest.iter().take(keep - frames.len()) {
            frames.push(to_rgb(yuv, rotation, limits)?);
        }
    }
    if frames.is_empty() {
        return Err(VideoDecodeError::NoFrames);
    }
    let fps = header_fps;
    let audio = if with_audio {
        let audio_limits = AudioLimits {
            keep_channels: 2,
            ..AudioLimits::default()
        };
        Some(decode_audio_with(bytes, &audio_limits).map_err(VideoDecodeError::Audio)?)
    } else {
        None
    };
    let (width, height) = (frames[0].width, frames[0].height);
    Ok(DecodedVideo {
        frames,
        width,
        height,
        fps,
        total_frames: total,
        audio,
    })
}

/// The top-level boxes (type, byte range with the header), as far as their sizes can be followed.
fn top_level_boxes(bytes: &[u8]) -> impl Iterator<Item = ([u8; 4], std::ops::Range<usize>)> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let head = bytes.get(pos..(pos + 16).min(bytes.len()))?;
        if head.len() < 8 {
            return None;
        }
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as u64;
        let kind = [head[4], head[5], head[6], head[7]];
        let size = match size32 {
            0 => (bytes.len() - pos) as u64,
            1 if head.len() >= 16 => u64::from_be_bytes(head[8..16].try_into().ok()?),
            n => n,
        };
        if size < 8 {
            return None;
        }
        let start = pos;
        pos = pos
            .saturating_add(usize::try_from(size).unwrap_or(usize::MAX))
            .min(bytes.len());
        Some((kind, start..pos))
    })
}

/// Where the children of a box the `mp4` crate descends into start, after its header.
fn children_offset(kind: &[u8]) -> Option<usize> {
    match kind {
        b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"dinf" | b"edts" | b"udta" | b"mvex"
        | b"ilst" => Some(0),
        b"meta" => Some(4),
        b"stsd" | b"dref" => Some(8),
        b"avc1" | b"avc3" | b"hev1" | b"hvc1" | b"encv" | b"vp09" => Some(78),
        b"mp4a" | b"enca" => Some(28),
        _ => None,
    }
}

/// The `mp4` crate loops forever on a child box whose declared size is below its header (its
/// skip seeks back to where it started) and trusts sizes past the parent: every box it descends
/// into is checked first, so such a file is refused instead of hanging the worker.
fn check_box_tree(b: &[u8], depth: usize) -> Result<(), String> {
    if depth > 16 {
        return Err("boxes nested too deep".into());
    }
    let header = |size32: u32| if size32 == 1 { 16 } else { 8 };
    let size32 = u32::from_be_bytes(b[0..4].try_into().map_err(|_| "truncated box")?);
    let kind = &b[4..8];
    let start = header(size32) + children_offset(kind).unwrap_or(usize::MAX - 64);
    if start > b.len() {
        return Ok(()); // a leaf, or a container without children
    }
    let mut pos = start;
    while pos < b.len() {
        if pos + 8 > b.len() {
            return Err(format!(
                "{} ends inside a child box header",
                String::from_utf8_lossy(kind)
            ));
        }
        let s32 = u32::from_be_bytes(b[pos..pos + 4].try_into().expect("4 bytes"));
        let size = match s32 {
            1 => b
                .get(pos + 8..pos + 16)
                .map(|x| u64::from_be_bytes(x.try_into().expect("8 bytes")))
                .ok_or("truncated large box size")?,
            n => n as u64,
        };
        if size < header(s32) as u64 || size > (b.len() - pos) as u64 {
            return Err(format!(
                "box {:?} inside {} declares {size} bytes ({} available)",
                String::from_utf8_lossy(&b[pos + 4..pos + 8]),
                String::from_utf8_lossy(kind),
                b.len() - pos
            ));
        }
        let end = pos + size as usize;
        check_box_tree(&b[pos..end], depth + 1)?;
        pos = end;
    }
    Ok(())
}

fn check_size(w: u32, h: u32, limits: &VideoLimits) -> Result<(), VideoDecodeError> {
    if w > MAX_VIDEO_SIDE || h > MAX_VIDEO_SIDE || w as u64 * h as u64 > limits.max_pixels {
        return Err(VideoDecodeError::TooLarge {
            width: w,
            height: h,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(())
}

/// The four-character code of the first `stsd` entry of a video track (`vmhd` in the same
/// `minf`), for naming codecs the `mp4` crate does not model (`mp4v`, `av01`, ...).
fn video_sample_entry(bytes: &[u8]) -> Option<String> {
    let vmhd = bytes.windows(4).position(|w| w == b"vmhd")?;
    let stsd = vmhd + bytes[vmhd..].windows(4).position(|w| w == b"stsd")?;
    // stsd: version/flags (4), entry count (4), then the entry: size (4), format (4).
    let code = bytes.get(stsd + 16..stsd + 20)?;
    code.iter()
        .all(|c| c.is_ascii_graphic() || *c == b' ')
        .then(|| String::from_utf8_lossy(code).into_owned())
}

/// `[len][NAL]...` (big-endian lengths of `nal_len` bytes) to `[00 00 00 01][NAL]...`.
fn length_prefixed_to_annex_b(
    sample: &[u8],
    nal_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut p = 0;
    while p < sample.len() {
        if p + nal_len > sample.len() {
            return Err("truncated NAL length".into());
        }
        let len = sample[p..p + nal_len]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        p += nal_len;
        if len > sample.len() - p {
            return Err(format!(
                "NAL unit of {len} bytes runs past the sample's end"
            ));
        }
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(&sample[p..p + len]);
        p += len;
    }
    Ok(())
}

/// Clockwise rotation the track header's display matrix asks for (0, 90, 180 or 270), as
/// ffmpeg's `av_display_rotation_get` reads it; shears and flips are ignored.
fn rotation_degrees(a: i32, b: i32, c: i32, d: i32) -> u32 {
    match (a.signum(), b.signum(), c.signum(), d.signum()) {
        (0, 1, -1, 0) => 90,
        (-1, 0, 0, -1) => 180,
        (0, -1, 1, 0) => 270,
        _ => 0,
    }
}

/// One decoded picture to packed RGB (openh264's BT.601 limited-range conversion), rotated.
fn to_rgb(
    yuv: &DecodedYUV<'_>,
    rotation: u32,
    limits: &VideoLimits,
) -> Result<RgbImage, VideoDecodeError> {
    let (w, h) = yuv.dimensions();
    check_size(w as u32, h as u32, limits)?;
    let mut data = vec![0u8; w * h * 3];
    yuv.write_rgb8(&mut data);
    Ok(rotate(
        RgbImage {
            width: w as u32,
            height: h as u32,
            data,
        },
        rotation,
    ))
}

fn rotate(img: RgbImage, degrees: u32) -> RgbImage {
    if degrees == 0 {
        return img;
    }
    let (w, h) = (img.width as usize, img.height as usize);
    let (ow, oh) = if degrees == 180 { (w, h) } else { (h, w) };
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let (ox, oy) = match degrees {
                90 => (h - 1 - y, x),
                180 => (w - 1 - x, h - 1 - y),
                _ => (y, w - 1 - x),
            };
            let (s, d) = ((y * w + x) * 3, (oy * ow + ox) * 3);
            out[d..d + 3].copy_from_slice(&img.data[s..s + 3]);
        }
    }
    RgbImage {
        width: ow as u32,
        height: oh as u32,
        data: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_conversion_checks_lengths() {
        let mut out = Vec::new();
        length_prefixed_to_annex_b(&[0, 0, 0, 2, 9, 8, 0, 0, 0, 1, 7], 4, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 9, 8, 0, 0, 0, 1, 7]);
        assert!(length_prefixed_to_annex_b(&[0, 0, 0, 5, 1], 4, &mut Vec::new()).is_err());
        assert!(length_prefixed_to_annex_b(&[0, 0], 4, &mut Vec::new()).is_err());
    }

    #[test]
    fn rotation_moves_pixels_clockwise() {
        // 2x1 image: red, green.
        let img = RgbImage {
            width: 2,
            height: 1,
            data: vec![255, 0, 0, 0, 255, 0],
        };
        let r90 = rotate(img.clone(), 90);
        assert_eq!((r90.width, r90.height), (1, 2));
        assert_eq!(r90.data, vec![255, 0, 0, 0, 255, 0]); // red on top
        let r270 = rotate(img.clone(), 270);
        assert_eq!(r270.data, vec![0, 255, 0, 255, 0, 0]); // green on top
        let r180 = rotate(img, 180);
        assert_eq!(r180.data, vec![0, 255, 0, 255, 0, 0]);
    }
}
