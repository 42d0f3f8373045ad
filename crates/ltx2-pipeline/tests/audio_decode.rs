//! Decoding user audio: WAVs written here at several rates, bit depths and channel counts, and the
//! error variants for empty, non-audio, corrupt and sample-less inputs.

use ltx2_pipeline::media::audio::{decode_audio, AudioDecodeError};

/// Sample encodings a WAV `fmt ` chunk can declare.
#[derive(Clone, Copy)]
enum Fmt {
    U8,
    I16,
    I24,
    I32,
    F32,
    F64,
}

impl Fmt {
    fn bits(self) -> u16 {
        match self {
            Fmt::U8 => 8,
            Fmt::I16 => 16,
            Fmt::I24 => 24,
            Fmt::I32 | Fmt::F32 => 32,
            Fmt::F64 => 64,
        }
    }

    fn format_tag(self) -> u16 {
        match self {
            Fmt::F32 | Fmt::F64 => 3,
            _ => 1,
        }
    }

    /// Encodes one sample given in [-1, 1] (integers: scaled by full scale, then truncated).
    fn encode(self, x: f64, out: &mut Vec<u8>) {
        match self {
            Fmt::U8 => out.push((x * 128.0 + 128.0).clamp(0.0, 255.0) as u8),
            Fmt::I16 => out
                .extend_from_slice(&((x * 32768.0).clamp(-32768.0, 32767.0) as i16).to_le_bytes()),
            Fmt::I24 => {
                let v = (x * 8388608.0).clamp(-8388608.0, 8388607.0) as i32;
                out.extend_from_slice(&v.to_le_bytes()[..3]);
            }
            Fmt::I32 => out.extend_from_slice(
                &((x * 2147483648.0).clamp(-2147483648.0, 2147483647.0) as i32).to_le_bytes(),
            ),
            Fmt::F32 => out.extend_from_slice(&(x as f32).to_le_bytes()),
            Fmt::F64 => out.extend_from_slice(&x.to_le_bytes()),
        }
    }
}

/// A canonical RIFF/WAVE file; `extensible` writes a WAVE_FORMAT_EXTENSIBLE `fmt ` chunk.
fn wav(fmt: Fmt, rate: u32, channels: &[Vec<f64>], extensible: bool) -> Vec<u8> {
    let n_ch = channels.len() as u16;
    let frames = channels.first().map_or(0, Vec::len);
    let block_align = n_ch * fmt.bits() / 8;
    let mut data = Vec::new();
    for i in 0..frames {
        for ch in channels {
            fmt.encode(ch[i], &mut data);
        }
    }
    let mut fmt_chunk = Vec::new();
    fmt_chunk.extend_from_slice(
        &(if extensible {
            0xFFFEu16
        } else {
            fmt.format_tag()
        })
        .to_le_bytes(),
    );
    fmt_chunk.extend_from_slice(&n_ch.to_le_bytes());
    fmt_chunk.extend_from_slice(&rate.to_le_bytes());
    fmt_chunk.extend_from_slice(&(rate * block_align as u32).to_le_bytes());
    fmt_chunk.extend_from_slice(&block_align.to_le_bytes());
    fmt_chunk.extend_from_slice(&fmt.bits().to_le_bytes());
    if extensible {
        fmt_chunk.extend_from_slice(&22u16.to_le_bytes());
        fmt_chunk.extend_from_slice(&fmt.bits().to_le_bytes()); // valid bits
        let mask: u32 = (1u32 << n_ch) - 1; // the first n speaker positions
        fmt_chunk.extend_from_slice(&mask.to_le_bytes());
        // KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT: {0000000X-0000-0010-8000-00aa00389b71}.
        fmt_chunk.extend_from_slice(&(fmt.format_tag() as u32).to_le_bytes());
        fmt_chunk.extend_from_slice(&[
            0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
        ]);
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((4 + 8 + fmt_chunk.len() + 8 + data.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&(fmt_chunk.len() as u32).to_le_bytes());
    out.extend_from_slice(&fmt_chunk);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// `n` samples of a per-channel sine, plus the exact full-scale corners.
fn signal(n_ch: usize, n: usize) -> Vec<Vec<f64>> {
    (0..n_ch)
        .map(|c| {
            let mut v: Vec<f64> = (0..n)
                .map(|i| 0.8 * ((i as f64) * 0.05 * (c + 1) as f64).sin())
                .collect();
            v[0] = -1.0;
            v[1] = 0.5;
            v[2] = 0.0;
            v
        })
        .collect()
}

/// Decodes a WAV written from `signal` and checks rate, layout and every sample.
fn round_trip(fmt: Fmt, rate: u32, n_ch: usize, extensible: bool) {
    let n = 1000;
    let src = signal(n_ch, n);
    let clip = decode_audio(&wav(fmt, rate, &src, extensible)).expect("decodes");
    assert_eq!(clip.sample_rate, rate);
    assert_eq!(clip.channels.len(), n_ch);
    // One quantisation step of the encoding (the encoder truncates toward zero).
    let step = match fmt {
        Fmt::U8 => 1.0 / 128.0,
        Fmt::I16 => 1.0 / 32768.0,
        Fmt::I24 => 1.0 / 8388608.0,
        Fmt::I32 | Fmt::F32 => 1e-6,
        Fmt::F64 => 1e-7,
    };
    for (got, want) in clip.channels.iter().zip(&src) {
        assert_eq!(got.len(), n);
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= step * 1.01,
                "{} bits, ch {n_ch}, sample {i}: {g} vs {w}",
                fmt.bits()
            );
        }
        assert_eq!(got[0], -1.0);
        assert_eq!(got[1], 0.5);
        assert_eq!(got[2], 0.0);
    }
}

#[test]
fn wav_pcm_u8_mono_8k() {
    round_trip(Fmt::U8, 8000, 1, false);
}

#[test]
fn wav_pcm_i16_stereo_16k() {
    round_trip(Fmt::I16, 16000, 2, false);
}

#[test]
fn wav_pcm_i24_stereo_44k1() {
    round_trip(Fmt::I24, 44100, 2, false);
}

#[test]
fn wav_pcm_i32_mono_48k() {
    round_trip(Fmt::I32, 48000, 1, false);
}

#[test]
fn wav_float32_stereo_22k05() {
    round_trip(Fmt::F32, 22050, 2, false);
}

#[test]
fn wav_float64_mono_96k() {
    round_trip(Fmt::F64, 96000, 1, false);
}

#[test]
fn wav_extensible_6_channels_24k() {
    round_trip(Fmt::I16, 24000, 6, true);
    round_trip(Fmt::I24, 24000, 3, true);
    round_trip(Fmt::F32, 32000, 4, true);
}

#[test]
fn empty_input() {
    assert!(matches!(
        decode_audio(&[]),
        Err(AudioDecodeError::EmptyInput)
    ));
}

#[test]
fn non_audio_bytes() {
    let text =
        b"this is certainly not an audio file, just some text that goes on for a while.".repeat(20);
    let err = decode_audio(&text).unwrap_err();
    assert!(
        matches!(err, AudioDecodeError::UnrecognizedFormat(_)),
        "{err:?}"
    );
    let png = [
        &[0x89u8, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A][..],
        &[0u8; 200][..],
    ]
    .concat();
    let err = decode_audio(&png).unwrap_err();
    assert!(
        matches!(err, AudioDecodeError::UnrecognizedFormat(_)),
        "{err:?}"
    );
}

#[test]
fn zero_sample_wav() {
    let bytes = wav(Fmt::I16, 16000, &[vec![], vec![]], false);
    let err = decode_audio(&bytes).unwrap_err();
    assert!(matches!(err, AudioDecodeError::NoSamples), "{err:?}");
}

#[test]
fn corrupt_wav_header() {
    let good = wav(Fmt::I16, 16000, &signal(2, 100), false);
    // Truncated inside the `fmt ` chunk.
    let err = decode_audio(&good[..20]).unwrap_err();
    assert!(matches!(err, AudioDecodeError::Corrupt(_)), "{err:?}");
    // Zero channels declared.
    let mut zero_ch = good.clone();
    zero_ch[22..24].copy_from_slice(&0u16.to_le_bytes());
    let err = decode_audio(&zero_ch).unwrap_err();
    assert!(matches!(err, AudioDecodeError::Corrupt(_)), "{err:?}");
    // Header ends after the `fmt ` chunk: no `data` chunk.
    let err = decode_audio(&good[..36]).unwrap_err();
    assert!(matches!(err, AudioDecodeError::Corrupt(_)), "{err:?}");
    // `fmt ` chunk claiming to be far larger than the file.
    let mut huge_fmt = good.clone();
    huge_fmt[16..20].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    let err = decode_audio(&huge_fmt).unwrap_err();
    assert!(matches!(err, AudioDecodeError::Corrupt(_)), "{err:?}");
}

#[test]
fn unsupported_wav_encoding() {
    let mut bytes = wav(Fmt::I16, 16000, &signal(1, 100), false);
    // Format tag 0x0055 (MPEG layer 3 inside WAV) with PCM-shaped data.
    bytes[20..22].copy_from_slice(&0x0055u16.to_le_bytes());
    let err = decode_audio(&bytes).unwrap_err();
    assert!(matches!(err, AudioDecodeError::Unsupported(_)), "{err:?}");
}

#[test]
fn errors_say_what_was_wrong() {
    assert!(AudioDecodeError::EmptyInput.to_string().contains("empty"));
    assert!(AudioDecodeError::NoSamples
        .to_string()
        .contains("no samples"));
    assert!(AudioDecodeError::Corrupt("x".into())
        .to_string()
        .contains("corrupt"));
}

#[test]
fn trim_and_stereo_waveform() {
    use ltx2_pipeline::media::audio::{stereo_waveform, trim_clip};
    use ltx2_pipeline::AudioClip;
    let ramp: Vec<f32> = (0..100).map(|i| i as f32).collect();
    let clip = AudioClip {
        sample_rate: 10,
        channels: vec![ramp.clone()],
    };
    let t = trim_clip(&clip, 1.0, Some(2.5));
    // round(2.5 * 10) = 25 samples starting at sample 10.
    assert_eq!(t.channels[0], ramp[10..35].to_vec());
    assert_eq!(trim_clip(&clip, 20.0, None).num_samples(), 0);
    let w = stereo_waveform(&clip, &candle_core::Device::Cpu).unwrap();
    assert_eq!(w.dims(), &[1, 2, 100]);
    let rows = w.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(rows[0], ramp);
    assert_eq!(rows[1], ramp);
    let six = AudioClip {
        sample_rate: 10,
        channels: (0..6).map(|c| vec![c as f32; 4]).collect(),
    };
    let rows = stereo_waveform(&six, &candle_core::Device::Cpu)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(rows, vec![vec![0.0; 4], vec![1.0; 4]]);
}
