//! In-process MP4 writer: H.264 yuv420p (openh264) + AAC-LC (fdk-aac), moov first.
//!
//! The `mp4` crate writes `ftyp, mdat, moov` and no edit list, so the finished file is rewritten
//! once: `moov` moves in front of `mdat` (chunk offsets shifted) so players can start before the
//! whole file arrives, and the audio track gets an `edts/elst` that skips the AAC encoder delay
//! (priming) and ends exactly at the video's end, so audio and video start and stop together.

use std::io::Cursor;

use mp4::{
    AacConfig, AudioObjectType, AvcConfig, ChannelConfig, FourCC, MediaConfig, Mp4Config,
    Mp4Sample, Mp4Writer, SampleFreqIndex, TrackConfig, TrackType,
};
use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate};
use openh264::formats::{RgbSliceU8, YUVBuffer};
use openh264::OpenH264API;

use crate::api::{AudioClip, VideoFrames};

mod faststart;
use faststart::{faststart, AudioEdit};

/// Movie (mvhd) timescale: edit-list durations are expressed in it.
const MOVIE_TIMESCALE: u32 = 1000;
/// Audio is resampled to this rate when the clip's rate is not an AAC sampling frequency.
const FALLBACK_SAMPLE_RATE: u32 = 24_000;
const AAC_BITRATE: u32 = 128_000;

#[derive(Debug, thiserror::Error)]
pub enum Mp4Error {
    #[error("invalid video: {0}")]
    InvalidVideo(String),
    #[error("invalid audio: {0}")]
    InvalidAudio(String),
    #[error("H.264 encoder: {0}")]
    H264(String),
    #[error("AAC encoder: {0}")]
    Aac(String),
    #[error("MP4 muxer: {0}")]
    Mux(String),
}

impl From<mp4::Error> for Mp4Error {
    fn from(e: mp4::Error) -> Self {
        Mp4Error::Mux(e.to_string())
    }
}

/// Encodes RGB frames (and optional audio) into a streamable MP4.
///
/// The audio is cut or zero-padded to the video's duration (`frames / fps`). Its sample rate is
/// kept when AAC supports it (the 24 kHz LTX-2.0 and 48 kHz LTX-2.3 vocoder outputs are kept),
/// otherwise resampled to 24 kHz; mono is duplicated to stereo and channels beyond two are
/// dropped. `None` writes no audio track.
pub fn encode_mp4(video: &VideoFrames, audio: Option<&AudioClip>) -> Result<Vec<u8>, Mp4Error> {
    check_video(video)?;
    // fps × 1000 ticks per second, 1000 per frame: exact for integer and 3-decimal rates (25, 23.976).
    let video_timescale = (video.fps as f64 * 1000.0).round() as u32;
    let frame_duration = 1000u32;
    let video_seconds = video.frames.len() as f64 * frame_duration as f64 / video_timescale as f64;

    let h264 = encode_h264(video)?;
    let aac = audio
        .map(|clip| encode_aac(clip, video_seconds))
        .transpose()?;

    let mut writer = Mp4Writer::write_start(
        Cursor::new(Vec::new()),
        &Mp4Config {
            major_brand: FourCC::from(*b"isom"),
            minor_version: 512,
            compatible_brands: [b"isom", b"iso2", b"avc1", b"mp41"]
                .into_iter()
                .map(|b| FourCC::from(*b))
                .collect(),
            timescale: MOVIE_TIMESCALE,
        },
    )?;
    writer.add_track(&TrackConfig {
        track_type: TrackType::Video,
        timescale: video_timescale,
        language: "und".into(),
        media_conf: MediaConfig::AvcConfig(AvcConfig {
            width: video.width as u16,
            height: video.height as u16,
            seq_param_set: h264.sps,
            pic_param_set: h264.pps,
        }),
    })?;
    if let Some(aac) = &aac {
        writer.add_track(&TrackConfig {
            track_type: TrackType::Audio,
            timescale: aac.sample_rate,
            language: "und".into(),
            media_conf: MediaConfig::AacConfig(AacConfig {
                bitrate: AAC_BITRATE,
                profile: AudioObjectType::AacLowComplexity,
                freq_index: aac.freq_index,
                chan_conf: ChannelConfig::Stereo,
            }),
        })?;
    }
    // Interleave by time so a streaming reader never waits long for either track.
    let mut audio_iter = aac
        .iter()
        .flat_map(|a| a.frames.iter().enumerate())
        .peekable();
    for (i, (bytes, is_sync)) in h264.samples.into_iter().enumerate() {
        let t_video = i as f64 * frame_duration as f64 / video_timescale as f64;
        write_audio_until(&mut writer, &mut audio_iter, aac.as_ref(), t_video)?;
        writer.write_sample(
            1,
            &Mp4Sample {
                start_time: i as u64 * frame_duration as u64,
                duration: frame_duration,
                rendering_offset: 0,
                is_sync,
                bytes: bytes.into(),
            },
        )?;
    }
    write_audio_until(&mut writer, &mut audio_iter, aac.as_ref(), f64::INFINITY)?;
    writer.write_end()?;
    let file = writer.into_writer().into_inner();

    let edit = aac.as_ref().map(|a| AudioEdit {
        media_time: a.priming,
        segment_duration: (a.kept_samples as u64 * MOVIE_TIMESCALE as u64)
            .div_ceil(a.sample_rate as u64),
    });
    faststart(&file, edit)
}

fn write_audio_until<'a>(
    writer: &mut Mp4Writer<Cursor<Vec<u8>>>,
    frames: &mut std::iter::Peekable<impl Iterator<Item = (usize, &'a Vec<u8>)>>,
    aac: Option<&AacStream>,
    until_seconds: f64,
) -> Result<(), Mp4Error> {
    let Some(aac) = aac else { return Ok(()) };
    while let Some((i, _)) = frames.peek() {
        let start = *i as u64 * aac.frame_length as u64;
        if start as f64 / aac.sample_rate as f64 > until_seconds {
            break;
        }
        let (_, bytes) = frames.next().expect("peeked");
        writer.write_sample(
            2,
            &Mp4Sample {
                start_time: start,
                duration: aac.frame_length,
                rendering_offset: 0,
                is_sync: true,
                bytes: bytes.clone().into(),
            },
        )?;
    }
    Ok(())
}

fn check_video(video: &VideoFrames) -> Result<(), Mp4Error> {
    let (w, h) = (video.width as usize, video.height as usize);
    if video.frames.is_empty() {
        return Err(Mp4Error::InvalidVideo("no frames".into()));
    }
    if w == 0
        || h == 0
        || w % 2 != 0
        || h % 2 != 0
        || w > u16::MAX as usize
        || h > u16::MAX as usize
    {
        return Err(Mp4Error::InvalidVideo(format!(
            "size {w}x{h} must be even and non-zero for yuv420p"
        )));
    }
    if !(video.fps.is_finite() && (0.001..=1000.0).contains(&video.fps)) {
        return Err(Mp4Error::InvalidVideo(format!(
            "fps {} must be in [0.001, 1000]",
            video.fps
        )));
    }
    if let Some((i, f)) = video
        .frames
        .iter()
        .enumerate()
        .find(|(_, f)| f.len() != w * h * 3)
    {
        return Err(Mp4Error::InvalidVideo(format!(
            "frame {i} has {} bytes, expected {w}x{h}x3 = {}",
            f.len(),
            w * h * 3
        )));
    }
    Ok(())
}

struct H264Stream {
    sps: Vec<u8>,
    pps: Vec<u8>,
    /// One AVCC (length-prefixed) access unit per frame, with whether it is an IDR.
    samples: Vec<(Vec<u8>, bool)>,
}

fn encode_h264(video: &VideoFrames) -> Result<H264Stream, Mp4Error> {
    let (w, h) = (video.width as usize, video.height as usize);
    // Baseline profile is less efficient than x264: ~0.35 bit per pixel keeps detail (noise
    // included) instead of smearing it; ~1.3 Mbit/s at 288x512@25.
    let bitrate = ((w * h) as f64 * video.fps as f64 * 0.35).clamp(500_000.0, 50_000_000.0) as u32;
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(bitrate))
        .max_frame_rate(FrameRate::from_hz(video.fps))
        .skip_frames(false);
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| Mp4Error::H264(e.to_string()))?;

    let mut stream = H264Stream {
        sps: Vec::new(),
        pps: Vec::new(),
        samples: Vec::with_capacity(video.frames.len()),
    };
    let mut yuv = YUVBuffer::new(w, h);
    for (i, frame) in video.frames.iter().enumerate() {
        yuv.read_rgb8(RgbSliceU8::new(frame, (w, h)));
        let bitstream = encoder
            .encode(&yuv)
            .map_err(|e| Mp4Error::H264(format!("frame {i}: {e}")))?;
        let mut sample = Vec::new();
        let mut is_idr = false;
        for l in 0..bitstream.num_layers() {
            let layer = bitstream.layer(l).expect("layer index in range");
            for n in 0..layer.nal_count() {
                let nal = strip_start_code(layer.nal_unit(n).expect("nal index in range"));
                let Some(&header) = nal.first() else { continue };
                match header & 0x1f {
                    7 => stream.sps = nal.to_vec(),
                    8 => stream.pps = nal.to_vec(),
                    9 => {} // access unit delimiter: implied by MP4 sample boundaries
                    t => {
                        is_idr |= t == 5;
                        sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        sample.extend_from_slice(nal);
                    }
                }
            }
        }
        if sample.is_empty() {
            return Err(Mp4Error::H264(format!(
                "encoder produced no picture for frame {i}"
            )));
        }
        stream.samples.push((sample, is_idr));
    }
    if stream.sps.is_empty() || stream.pps.is_empty() {
        return Err(Mp4Error::H264("encoder produced no SPS/PPS".into()));
    }
    Ok(stream)
}

fn strip_start_code(nal: &[u8]) -> &[u8] {
    if nal.starts_with(&[0, 0, 0, 1]) {
        &nal[4..]
    } else if nal.starts_with(&[0, 0, 1]) {
        &nal[3..]
    } else {
        nal
    }
}

struct AacStream {
    sample_rate: u32,
    freq_index: SampleFreqIndex,
    frame_length: u32,
    /// Encoder delay in samples: the decoder's first `priming` output samples precede the input.
    priming: u64,
    /// Input samples per channel (after cutting/padding to the video duration).
    kept_samples: usize,
    frames: Vec<Vec<u8>>,
}

fn encode_aac(clip: &AudioClip, video_seconds: f64) -> Result<AacStream, Mp4Error> {
    if clip.channels.is_empty() || clip.sample_rate == 0 {
        return Err(Mp4Error::InvalidAudio(
            "audio has no channels or a zero sample rate".into(),
        ));
    }
    if let Some(c) = clip
        .channels
        .iter()
        .position(|c| c.len() != clip.num_samples())
    {
        return Err(Mp4Error::InvalidAudio(format!(
            "channel {c} length differs from channel 0"
        )));
    }
    let (sample_rate, freq_index, left, right) = match aac_freq_index(clip.sample_rate) {
        Some(idx) => (
            clip.sample_rate,
            idx,
            clip.channels[0].clone(),
            clip.channels.get(1).unwrap_or(&clip.channels[0]).clone(),
        ),
        None => {
            let r = |c: &[f32]| resample_linear(c, clip.sample_rate, FALLBACK_SAMPLE_RATE);
            let right = clip.channels.get(1).unwrap_or(&clip.channels[0]);
            (
                FALLBACK_SAMPLE_RATE,
                aac_freq_index(FALLBACK_SAMPLE_RATE).expect("24 kHz is an AAC rate"),
                r(&clip.channels[0]),
                r(right),
            )
        }
    };
    let kept = (video_seconds * sample_rate as f64).round() as usize;

    let encoder = fdk_aac::enc::Encoder::new(fdk_aac::enc::EncoderParams {
        bit_rate: fdk_aac::enc::BitRate::Cbr(AAC_BITRATE),
        sample_rate,
        transport: fdk_aac::enc::Transport::Raw,
        channels: fdk_aac::enc::ChannelMode::Stereo,
        audio_object_type: fdk_aac::enc::AudioObjectType::Mpeg4LowComplexity,
    })
    .map_err(|e| Mp4Error::Aac(e.to_string()))?;
    let info = encoder.info().map_err(|e| Mp4Error::Aac(e.to_string()))?;
    let frame_length = info.frameLength as usize;
    let priming = info.nDelay as u64;

    // Interleaved i16, cut/zero-padded to the video, then zero-padded so that every kept sample
    // (delayed by the priming) comes out in a whole frame.
    let needed_frames = (priming as usize + kept).div_ceil(frame_length);
    let total = needed_frames * frame_length;
    let mut pcm = Vec::with_capacity(total * 2);
    for i in 0..total {
        let s = |c: &[f32]| {
            if i < kept {
                c.get(i).copied().unwrap_or(0.0)
            } else {
                0.0
            }
        };
        pcm.push(to_i16(s(&left)));
        pcm.push(to_i16(s(&right)));
    }

    let mut out = vec![0u8; info.maxOutBufBytes.max(8192) as usize];
    let mut frames = Vec::with_capacity(needed_frames);
    let mut pos = 0;
    // Each call takes at most one frame of input and emits at most one AAC frame; once the input
    // is exhausted, zeros push the encoder's look-ahead out.
    let silence = vec![0i16; frame_length * 2];
    let mut guard = 0;
    while frames.len() < needed_frames {
        let input = if pos < pcm.len() {
            &pcm[pos..(pos + frame_length * 2).min(pcm.len())]
        } else {
            &silence[..]
        };
        let r = encoder
            .encode(input, &mut out)
            .map_err(|e| Mp4Error::Aac(e.to_string()))?;
        if pos < pcm.len() {
            pos += r.input_consumed;
        }
        if r.output_size > 0 {
            frames.push(out[..r.output_size].to_vec());
        }
        guard += 1;
        if guard > needed_frames * 4 + 16 {
            return Err(Mp4Error::Aac("encoder stopped producing frames".into()));
        }
    }
    Ok(AacStream {
        sample_rate,
        freq_index,
        frame_length: frame_length as u32,
        priming,
        kept_samples: kept,
        frames,
    })
}

fn to_i16(x: f32) -> i16 {
    let x = if x.is_finite() {
        x.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    (x * i16::MAX as f32).round() as i16
}

/// The sample rate of the AAC track [`encode_mp4`] writes for audio at `input_rate`: the input
/// rate when AAC has it (24 kHz, 48 kHz, 44.1 kHz, ...), else 24 kHz.
pub fn aac_output_rate(input_rate: u32) -> u32 {
    if aac_freq_index(input_rate).is_some() {
        input_rate
    } else {
        FALLBACK_SAMPLE_RATE
    }
}

fn aac_freq_index(rate: u32) -> Option<SampleFreqIndex> {
    (0u8..=12)
        .filter_map(|i| SampleFreqIndex::try_from(i).ok())
        .find(|f| f.freq() == rate)
}

fn resample_linear(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    let n = (x.len() as u64 * to as u64 / from as u64) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 * from as f64 / to as f64;
            let j = t.floor() as usize;
            let f = (t - j as f64) as f32;
            let a = x.get(j).copied().unwrap_or(0.0);
            let b = x.get(j + 1).copied().unwrap_or(a);
            a + (b - a) * f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LTX-2.3's vocoder outputs 48 kHz: an AAC rate, so it is encoded as is (index 3), not
    /// resampled to the 24 kHz fallback.
    #[test]
    fn aac_keeps_48k_without_resampling() {
        assert_eq!(aac_freq_index(48_000), Some(SampleFreqIndex::Freq48000));
        assert_eq!(aac_freq_index(24_000), Some(SampleFreqIndex::Freq24000));
        assert_eq!(aac_freq_index(23_456), None);
        let n = 48_000 / 2;
        let ramp: Vec<f32> = (0..n).map(|i| (i as f32 / n as f32) - 0.5).collect();
        let clip = AudioClip {
            sample_rate: 48_000,
            channels: vec![ramp.clone(), ramp],
        };
        let aac = encode_aac(&clip, 0.5).unwrap();
        assert_eq!(aac.sample_rate, 48_000);
        assert_eq!(aac.freq_index, SampleFreqIndex::Freq48000);
        // Half a second at 48 kHz: every input sample kept, none resampled away.
        assert_eq!(aac.kept_samples, n);
        assert!(!aac.frames.is_empty());
    }
}
