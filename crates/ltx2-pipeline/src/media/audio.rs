//! Decoding input audio (WAV of any rate/depth/channels, FLAC, OGG, MP3) into an `AudioClip`.
//!
//! Symphonia probes the container from its bytes (no file name needed), picks the first audio
//! track with a known codec and converts every sample to f32 in [-1, 1] (integer PCM is scaled by
//! its full-scale value, e.g. `x / 32768` for 16-bit, `(x - 128) / 128` for unsigned 8-bit).

use std::io::Cursor;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::codecs::CodecParameters;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use crate::api::AudioClip;

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

/// Decodes a whole audio file held in memory.
pub fn decode_audio(bytes: &[u8]) -> Result<AudioClip, AudioDecodeError> {
    if bytes.is_empty() {
        return Err(AudioDecodeError::EmptyInput);
    }
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
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymphoniaError::Unsupported(what) => AudioDecodeError::Unsupported(what.to_string()),
            other => AudioDecodeError::Corrupt(other.to_string()),
        })?;

    let mut sample_rate = params.sample_rate.unwrap_or(0);
    let mut channels: Vec<Vec<f32>> = Vec::new();
    let mut planes: Vec<Vec<f32>> = Vec::new();
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
        sample_rate = spec.rate();
        let n_ch = spec.channels().count();
        if channels.is_empty() {
            channels = vec![Vec::new(); n_ch];
        } else if channels.len() != n_ch {
            return Err(AudioDecodeError::Unsupported(format!(
                "channel count changes mid-stream ({} -> {n_ch})",
                channels.len()
            )));
        }
        buf.copy_to_vecs_planar::<f32>(&mut planes);
        for (dst, src) in channels.iter_mut().zip(&planes) {
            dst.extend_from_slice(src);
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
