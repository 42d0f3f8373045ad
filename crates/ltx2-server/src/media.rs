//! Base64 media fields (data URIs or bare base64) decoded into images and audio.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ltx2_pipeline::media::audio::{decode_audio_with, AudioDecodeError, AudioLimits};
use ltx2_pipeline::media::image::{decode_image_with, ImageDecodeError, ImageLimits};
use ltx2_pipeline::media::video::{decode_mp4_with, DecodedVideo, VideoDecodeError, VideoLimits};
use ltx2_pipeline::{AudioClip, RgbImage};
use std::borrow::Cow;

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
    // Copied without whitespace only when there is some (the payload can be tens of MB).
    let compact: Cow<[u8]> = if payload.bytes().any(|b| b.is_ascii_whitespace()) {
        Cow::Owned(
            payload
                .bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect(),
        )
    } else {
        Cow::Borrowed(payload.as_bytes())
    };
    if compact.is_empty() {
        return Err("is empty".into());
    }
    STANDARD
        .decode(&compact)
        .or_else(|_| URL_SAFE.decode(&compact))
        .map_err(|e| format!("is not valid base64: {e}"))
}

/// A conditioning image within `limits`; the message follows the field name.
pub fn decode_image(bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage, String> {
    decode_image_with(bytes, limits).map_err(|e| match e {
        ImageDecodeError::TooLarge { .. } => format!("is refused: {e}"),
        e => format!("could not be decoded: {e}"),
    })
}

/// Input audio (WAV, FLAC, OGG, MP3, AAC) within `limits`; the message follows the field name.
pub fn decode_audio(bytes: &[u8], limits: &AudioLimits) -> Result<AudioClip, String> {
    decode_audio_with(bytes, limits).map_err(|e| match e {
        AudioDecodeError::TooLong { .. }
        | AudioDecodeError::SampleRate(_)
        | AudioDecodeError::TooManyChannels(_) => format!("is refused: {e}"),
        e => format!("could not be decoded: {e}"),
    })
}

/// A clip (MP4: H.264 + AAC) within `limits`; the message follows the field name.
pub fn decode_video(bytes: &[u8], limits: &VideoLimits) -> Result<DecodedVideo, String> {
    decode_mp4_with(bytes, limits).map_err(|e| match e {
        VideoDecodeError::TooLarge { .. } | VideoDecodeError::TooLong { .. } => {
            format!("is refused: {e}")
        }
        e => format!("could not be decoded: {e}"),
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
    fn non_audio_is_rejected() {
        let limits = AudioLimits::default();
        assert!(decode_audio(b"RIFF....WAVE", &limits).is_err());
        assert!(decode_audio(b"not audio", &limits).is_err());
    }
}
