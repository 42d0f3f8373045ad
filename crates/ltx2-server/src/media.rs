//! Base64 media fields (data URIs or bare base64) decoded into images and audio.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ltx2_pipeline::{AudioClip, RgbImage};

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes `data:<mime>;base64,<payload>` or bare base64 (standard or URL-safe alphabet, padding
/// optional, whitespace ignored). The declared MIME type is not trusted: content is sniffed later.
pub fn decode_base64_field(value: &str) -> Result<Vec<u8>, String> {
    let payload = match value.strip_prefix("data:") {
        Some(rest) => {
            let (header, payload) = rest
                .split_once(',')
                .ok_or("data URI has no `,` before its payload")?;
            if !header.split(';').any(|p| p.eq_ignore_ascii_case("base64")) {
                return Err("data URI must be base64-encoded (`data:<type>;base64,...`)".into());
            }
            payload
        }
        None => value,
    };
    let compact: Vec<u8> = payload
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err("is empty".into());
    }
    STANDARD
        .decode(&compact)
        .or_else(|_| URL_SAFE.decode(&compact))
        .map_err(|e| format!("is not valid base64: {e}"))
}

pub fn decode_image(bytes: &[u8]) -> Result<RgbImage, String> {
    ltx2_pipeline::media::image::decode_image(bytes).map_err(|e| e.to_string())
}

/// Input audio decoding.
///
/// Interim: a minimal RIFF/WAVE reader (PCM 8/16/24/32-bit, float 32/64, extensible) so the
/// spec's WAV input works until `ltx2_pipeline::media::audio::decode_audio` (branch `audio`) is
/// merged; then this body becomes one call to it.
pub fn decode_audio(bytes: &[u8]) -> Result<AudioClip, String> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("is not a WAV file (RIFF/WAVE header missing)".into());
    }
    let (mut fmt, mut data) = (None, None);
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size =
            u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes")) as usize;
        let body = &bytes[pos + 8..(pos + 8).saturating_add(size).min(bytes.len())];
        match id {
            b"fmt " => fmt = Some(body),
            b"data" => data = Some(body),
            _ => {}
        }
        pos = (pos + 8).saturating_add(size + size % 2);
    }
    let fmt = fmt
        .filter(|f| f.len() >= 16)
        .ok_or("WAV has no valid `fmt ` chunk")?;
    let data = data.ok_or("WAV has no `data` chunk")?;
    let u16_at = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
    let mut format = u16_at(0);
    let channels = u16_at(2) as usize;
    let sample_rate = u32::from_le_bytes(fmt[4..8].try_into().expect("4 bytes"));
    let bits = u16_at(14) as usize;
    if format == 0xFFFE && fmt.len() >= 26 {
        format = u16_at(24);
    }
    if channels == 0 || sample_rate == 0 || bits == 0 || bits % 8 != 0 {
        return Err(format!(
            "WAV header is invalid ({channels} channels, {sample_rate} Hz, {bits} bits)"
        ));
    }
    let width = bits / 8;
    let sample = |b: &[u8]| -> Option<f32> {
        match (format, width) {
            (1, 1) => Some((b[0] as f32 - 128.0) / 128.0),
            (1, 2) => Some(i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0),
            (1, 3) => Some(((i32::from_le_bytes([0, b[0], b[1], b[2]])) >> 8) as f32 / 8_388_608.0),
            (1, 4) => Some(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0),
            (3, 4) => Some(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            (3, 8) => Some(f64::from_le_bytes(b.try_into().ok()?) as f32),
            _ => None,
        }
    };
    if sample(&vec![0u8; width]).is_none() {
        return Err(format!(
            "unsupported WAV encoding (format {format}, {bits} bits)"
        ));
    }
    let mut out = vec![Vec::with_capacity(data.len() / (width * channels)); channels];
    for frame in data.chunks_exact(width * channels) {
        for (c, s) in frame.chunks_exact(width).enumerate() {
            out[c].push(sample(s).unwrap_or(0.0));
        }
    }
    if out[0].is_empty() {
        return Err("WAV contains no samples".into());
    }
    Ok(AudioClip {
        sample_rate,
        channels: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_uri_and_bare_base64() {
        assert_eq!(
            decode_base64_field("data:image/png;base64,aGVsbG8=").unwrap(),
            b"hello"
        );
        assert_eq!(decode_base64_field("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64_field("aGVs\nbG8=").unwrap(), b"hello");
        assert!(decode_base64_field("data:image/png,hello").is_err());
        assert!(decode_base64_field("!!!").is_err());
        assert!(decode_base64_field("").is_err());
    }

    #[test]
    fn wav_pcm16_stereo() {
        let mut wav = Vec::new();
        let samples: [i16; 4] = [0, 16384, -32768, 32767];
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36 + 8u32).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        for v in [1u16, 2] {
            wav.extend_from_slice(&v.to_le_bytes());
        }
        wav.extend_from_slice(&16000u32.to_le_bytes());
        wav.extend_from_slice(&(16000u32 * 4).to_le_bytes());
        for v in [4u16, 16] {
            wav.extend_from_slice(&v.to_le_bytes());
        }
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&8u32.to_le_bytes());
        for s in samples {
            wav.extend_from_slice(&s.to_le_bytes());
        }
        let clip = decode_audio(&wav).unwrap();
        assert_eq!(clip.sample_rate, 16000);
        assert_eq!(
            clip.channels,
            vec![vec![0.0, -1.0], vec![0.5, 32767.0 / 32768.0]]
        );
        assert!(decode_audio(b"RIFF....WAVE").is_err());
        assert!(decode_audio(b"not audio").is_err());
    }
}
