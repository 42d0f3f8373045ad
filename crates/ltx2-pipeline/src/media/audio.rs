//! Decoding input audio (WAV of any rate/depth/channels, FLAC, OGG, MP3, AAC in MP4) into an
//! `AudioClip`, within [`AudioLimits`].
//!
//! Symphonia probes the container from its bytes (no file name needed), picks the first audio
//! track with a known codec and converts every sample to f32 in [-1, 1] (integer PCM is scaled by
//! its full-scale value, e.g. `x / 32768` for 16-bit, `(x - 128) / 128` for unsigned 8-bit).
//!
//! What a header *claims* (data length, duration) is never trusted to size anything: the decoded
//! samples are counted as they come, and decoding stops with an error as soon as the clip passes
//! [`AudioLimits::max_seconds`]. Samples past [`AudioLimits::keep_seconds`] are counted but not
//! kept, so memory follows what the caller needs, not what the file holds.

use std::io::Cursor;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::codecs::CodecParameters;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use ltx2_model::audio_vae::SincResampler;

use crate::api::{AudioClip, AudioInputSpec};

/// A resampler `from -> to` Hz, when one fits [`SincResampler::supports`]' bounded cost.
pub fn resampler(from: u32, to: u32) -> Option<SincResampler> {
    if !SincResampler::supports(from as usize, to as usize) {
        return None;
    }
    SincResampler::new(from as usize, to as usize).ok()
}

/// Lowest accepted sample rate (telephony audio).
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest accepted sample rate (high-resolution audio).
pub const MAX_SAMPLE_RATE: u32 = 192_000;
/// Most channels accepted (7.1 surround).
pub const MAX_CHANNELS: usize = 8;
/// Largest packet a container may declare, in frames: decoders size their buffers by it.
pub const MAX_FRAMES_PER_PACKET: u64 = 1 << 20;
/// Default of [`AudioLimits::max_seconds`]: longer than the longest video the server's default
/// limits allow (257 frames at 1 fps).
pub const DEFAULT_MAX_AUDIO_SECONDS: f64 = 300.0;

/// Bounds on one decode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioLimits {
    /// Longest accepted input: decoding fails with [`AudioDecodeError::TooLong`] as soon as the
    /// decoded samples pass it.
    pub max_seconds: f64,
    /// Samples past this many seconds are decoded (to check `max_seconds`) but not kept; `None`
    /// keeps everything.
    pub keep_seconds: Option<f64>,
    /// The first this-many channels are kept (the model uses two).
    pub keep_channels: usize,
}

impl Default for AudioLimits {
    fn default() -> Self {
        Self {
            max_seconds: DEFAULT_MAX_AUDIO_SECONDS,
            keep_seconds: None,
            keep_channels: MAX_CHANNELS,
        }
    }
}

/// Why user audio could not be decoded. Messages are meant for the API client.
#[derive(Debug, thiserror::Error)]
pub enum AudioDecodeError {
    #[error("audio input is empty (0 bytes)")]
    EmptyInput,
    #[error("audio input is not a recognised audio format (supported: WAV, FLAC, OGG/Vorbis, MP3, AAC/MP4): {0}")]
    UnrecognizedFormat(String),
    #[error("audio input has no audio track")]
    NoAudioTrack,
    #[error("unsupported audio encoding: {0}")]
    Unsupported(String),
    #[error("audio input is corrupt: {0}")]
    Corrupt(String),
    #[error("audio input contains no samples")]
    NoSamples,
    #[error("audio is longer than the {max_seconds} s accepted")]
    TooLong { max_seconds: f64 },
    #[error(
        "audio sample rate {0} Hz is outside the accepted {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz"
    )]
    SampleRate(u32),
    #[error("audio has {0} channels; at most {MAX_CHANNELS} are accepted")]
    TooManyChannels(usize),
}

/// Maps a symphonia error met while reading the container header.
fn probe_error(e: SymphoniaError) -> AudioDecodeError {
    match e {
        SymphoniaError::Unsupported(what) if what.contains("probe") => {
            AudioDecodeError::UnrecognizedFormat(what.to_string())
        }
        SymphoniaError::Unsupported(what) => AudioDecodeError::Unsupported(what.to_string()),
        SymphoniaError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            AudioDecodeError::Corrupt("truncated header".to_string())
        }
        other => AudioDecodeError::Corrupt(other.to_string()),
    }
}

/// Decodes a whole audio file held in memory with the default [`AudioLimits`].
pub fn decode_audio(bytes: &[u8]) -> Result<AudioClip, AudioDecodeError> {
    decode_audio_with(bytes, &AudioLimits::default())
}

fn check_rate(rate: u32) -> Result<u32, AudioDecodeError> {
    if (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        Ok(rate)
    } else {
        Err(AudioDecodeError::SampleRate(rate))
    }
}

fn check_channels(n: usize) -> Result<usize, AudioDecodeError> {
    if n <= MAX_CHANNELS {
        Ok(n)
    } else {
        Err(AudioDecodeError::TooManyChannels(n))
    }
}

/// The most channels a RIFF/WAVE `fmt ` chunk in `bytes` declares, read without symphonia (which
/// sizes buffers from it, and overflows on absurd counts). Every `RIFF....WAVE` is looked at, not
/// only one at the start: symphonia's probe skips an ID3v2 tag or junk before the RIFF header
/// (fuzzing found a 65026-channel WAV behind an ID3 tag that reached symphonia's overflow).
fn wav_declared_channels(bytes: &[u8]) -> Option<u16> {
    (0..bytes.len().saturating_sub(11))
        .filter(|&at| &bytes[at..at + 4] == b"RIFF" && &bytes[at + 8..at + 12] == b"WAVE")
        .filter_map(|at| riff_fmt_channels(&bytes[at..]))
        .max()
}

/// The channel count of the `fmt ` chunk of the RIFF/WAVE file starting at `bytes[0]`.
fn riff_fmt_channels(bytes: &[u8]) -> Option<u16> {
    let mut at = 12usize;
    while let Some(header) = bytes.get(at..at + 8) {
        let size = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
        if &header[..4] == b"fmt " {
            let ch = bytes.get(at + 10..at + 12)?;
            return Some(u16::from_le_bytes([ch[0], ch[1]]));
        }
        at = at
            .checked_add(8)?
            .checked_add(size)?
            .checked_add(size & 1)?;
    }
    None
}

/// Decodes a whole audio file held in memory within `limits`.
pub fn decode_audio_with(
    bytes: &[u8],
    limits: &AudioLimits,
) -> Result<AudioClip, AudioDecodeError> {
    if bytes.is_empty() {
        return Err(AudioDecodeError::EmptyInput);
    }
    if let Some(n) = wav_declared_channels(bytes) {
        check_channels(n as usize)?;
    }
    // The decoders are third-party code fed untrusted bytes: a panic in one (e.g. an arithmetic
    // overflow on a crafted header, in builds that check for it) is this input's error.
    std::panic::catch_unwind(|| decode(bytes, limits)).unwrap_or_else(|_| {
        Err(AudioDecodeError::Corrupt(
            "the decoder failed on this input (malformed header or stream)".into(),
        ))
    })
}

fn decode(bytes: &[u8], limits: &AudioLimits) -> Result<AudioClip, AudioDecodeError> {
    let source = Cursor::new(bytes.to_vec());
    let mss = MediaSourceStream::new(Box::new(source), MediaSourceStreamOptions::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &Hint::new(),
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(probe_error)?;

    let track = format
        .first_track_known_codec(TrackType::Audio)
        .ok_or(AudioDecodeError::NoAudioTrack)?;
    let track_id = track.id;
    let params = match &track.codec_params {
        Some(CodecParameters::Audio(p)) => p.clone(),
        _ => return Err(AudioDecodeError::NoAudioTrack),
    };
    // Decoders size their buffers from these header fields: refuse absurd ones first.
    if let Some(rate) = params.sample_rate {
        check_rate(rate)?;
    }
    if let Some(ch) = &params.channels {
        check_channels(ch.count())?;
    }
    if let Some(n) = params
        .max_frames_per_packet
        .filter(|&n| n > MAX_FRAMES_PER_PACKET)
    {
        return Err(AudioDecodeError::Corrupt(format!(
            "declares packets of {n} frames (at most {MAX_FRAMES_PER_PACKET})"
        )));
    }
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymphoniaError::Unsupported(what) => AudioDecodeError::Unsupported(what.to_string()),
            other => AudioDecodeError::Corrupt(other.to_string()),
        })?;

    let mut sample_rate = params.sample_rate.unwrap_or(0);
    let mut channels: Vec<Vec<f32>> = Vec::new();
    let mut stream_channels: Option<usize> = None;
    let mut planes: Vec<Vec<f32>> = Vec::new();
    // Frames (samples per channel) decoded so far, kept or not.
    let mut decoded: u64 = 0;
    // Individual bad packets (common at the start of MP3 streams) are skipped; if nothing decodes,
    // the first such error is reported.
    let mut first_error: Option<String> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A data chunk shorter than its header claims: keep what was read, as players do.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(SymphoniaError::ResetRequired) => {
                return Err(AudioDecodeError::Unsupported(
                    "track layout changes mid-stream".into(),
                ))
            }
            Err(e) => return Err(AudioDecodeError::Corrupt(e.to_string())),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            Err(SymphoniaError::DecodeError(what)) => {
                first_error.get_or_insert_with(|| what.to_string());
                continue;
            }
            Err(SymphoniaError::Unsupported(what)) => {
                return Err(AudioDecodeError::Unsupported(what.to_string()))
            }
            Err(e) => return Err(AudioDecodeError::Corrupt(e.to_string())),
        };
        let spec = buf.spec();
        sample_rate = check_rate(spec.rate())?;
        let n_ch = check_channels(spec.channels().count())?;
        match stream_channels {
            None => {
                stream_channels = Some(n_ch);
                channels = vec![Vec::new(); n_ch.min(limits.keep_channels.max(1))];
            }
            Some(first) if first != n_ch => {
                return Err(AudioDecodeError::Unsupported(format!(
                    "channel count changes mid-stream ({first} -> {n_ch})"
                )))
            }
            Some(_) => {}
        }
        let frames = buf.frames() as u64;
        decoded += frames;
        if decoded as f64 > limits.max_seconds * sample_rate as f64 {
            return Err(AudioDecodeError::TooLong {
                max_seconds: limits.max_seconds,
            });
        }
        let keep = limits.keep_seconds.map_or(usize::MAX, |s| {
            (s.max(0.0) * sample_rate as f64).ceil() as usize
        });
        let room = keep.saturating_sub(channels[0].len());
        if room == 0 || frames == 0 {
            continue;
        }
        buf.copy_to_vecs_planar::<f32>(&mut planes);
        for (dst, src) in channels.iter_mut().zip(&planes) {
            dst.extend_from_slice(&src[..src.len().min(room)]);
        }
    }

    if channels.first().is_none_or(|c| c.is_empty()) {
        return Err(match first_error {
            Some(what) => AudioDecodeError::Corrupt(what),
            None => AudioDecodeError::NoSamples,
        });
    }
    if sample_rate == 0 {
        return Err(AudioDecodeError::Corrupt("sample rate is 0".into()));
    }
    Ok(AudioClip {
        sample_rate,
        channels,
    })
}

/// Checks, before any model work, that `clip` can condition a `video_seconds` video of a model
/// whose audio front-end is `spec`: its rate resamples to the model's with a bounded kernel, and
/// the part that conditions the video (its first `video_seconds`, as [`trim_clip`] cuts it) is
/// long enough to encode. The message is meant for the API client.
pub fn check_conditioning(
    clip: &AudioClip,
    video_seconds: f64,
    spec: &AudioInputSpec,
) -> Result<(), String> {
    let rate = clip.sample_rate;
    if rate == 0 || clip.channels.is_empty() {
        return Err("has no samples".into());
    }
    if rate != spec.sample_rate
        && !SincResampler::supports(rate as usize, spec.sample_rate as usize)
    {
        return Err(format!(
            "has a sample rate of {rate} Hz, which cannot be resampled to the model's {} Hz at a bounded cost; use a standard rate (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000 Hz)",
            spec.sample_rate
        ));
    }
    let window = (video_seconds.max(0.0) * rate as f64).round_ties_even() as usize;
    let used = clip.num_samples().min(window);
    let resampled = if rate == spec.sample_rate {
        used
    } else {
        (used as u64 * spec.sample_rate as u64).div_ceil(rate as u64) as usize
    };
    if resampled < spec.min_samples {
        return Err(format!(
            "is too short: {:.4} s ({used} samples at {rate} Hz) conditions the video, the model needs at least {:.4} s",
            used as f64 / rate as f64,
            spec.min_seconds()
        ));
    }
    Ok(())
}

/// The `[start_s, start_s + max_duration_s)` window of a clip, as ltx-pipelines'
/// `decode_audio_from_file(start_time, max_duration)` trims it (`round(t * sample_rate)` samples).
pub fn trim_clip(clip: &AudioClip, start_s: f64, max_duration_s: Option<f64>) -> AudioClip {
    let rate = clip.sample_rate as f64;
    let skip = ((start_s.max(0.0) * rate).round_ties_even() as usize).min(clip.num_samples());
    let keep = max_duration_s.map_or(usize::MAX, |d| {
        (d.max(0.0) * rate).round_ties_even() as usize
    });
    let channels = clip
        .channels
        .iter()
        .map(|c| c[skip..].iter().take(keep).copied().collect())
        .collect();
    AudioClip {
        sample_rate: clip.sample_rate,
        channels,
    }
}

/// The clip as the `(1, 2, samples)` f32 waveform the audio VAE encodes: mono is duplicated, stereo
/// kept, and of more channels the first two (front left/right in WAV, FLAC, Vorbis and AAC order)
/// are used; ltx-core itself only accepts stereo.
pub fn stereo_waveform(
    clip: &AudioClip,
    device: &candle_core::Device,
) -> candle_core::Result<candle_core::Tensor> {
    let n = clip.num_samples();
    let (left, right) = match clip.channels.as_slice() {
        [] => candle_core::bail!("audio clip has no channels"),
        [mono] => (mono, mono),
        [l, r, ..] => (l, r),
    };
    if left.len() != n || right.len() != n {
        candle_core::bail!("audio clip channels differ in length");
    }
    let data: Vec<f32> = left.iter().chain(right.iter()).copied().collect();
    candle_core::Tensor::from_vec(data, (1, 2, n), device)
}
