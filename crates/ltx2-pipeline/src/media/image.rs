//! Decoding conditioning images (PNG, JPEG, WebP) and the cover-resize + center crop of ltx-pipelines.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};

use crate::api::RgbImage;

/// Largest accepted side of a conditioning image, in pixels (decoding bombs are refused).
pub const MAX_IMAGE_SIDE: u32 = 8192;

#[derive(Debug, thiserror::Error)]
pub enum ImageDecodeError {
    #[error("not a PNG, JPEG or WebP image")]
    UnsupportedFormat,
    #[error("image is {width}x{height}; the largest accepted side is {MAX_IMAGE_SIDE} pixels")]
    TooLarge { width: u32, height: u32 },
    #[error("could not decode the {format} image: {message}")]
    Decode {
        format: &'static str,
        message: String,
    },
}

/// Decodes PNG, JPEG or WebP bytes (format sniffed from the content, not a declared MIME type)
/// into RGB8; alpha is dropped and 16-bit/grey images are converted.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage, ImageDecodeError> {
    let format = match image::guess_format(bytes) {
        Ok(ImageFormat::Png) => "PNG",
        Ok(ImageFormat::Jpeg) => "JPEG",
        Ok(ImageFormat::WebP) => "WebP",
        _ => return Err(ImageDecodeError::UnsupportedFormat),
    };
    let decode_err = |e: image::ImageError| ImageDecodeError::Decode {
        format,
        message: e.to_string(),
    };
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| ImageDecodeError::Decode {
                format,
                message: e.to_string(),
            })
    };
    // Header only: refuse huge images before allocating their pixels.
    let (width, height) = reader()?.into_dimensions().map_err(decode_err)?;
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(ImageDecodeError::TooLarge { width, height });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    let mut reader = reader()?;
    reader.limits(limits);
    let rgb = reader.decode().map_err(decode_err)?.to_rgb8();
    if rgb.width() == 0 || rgb.height() == 0 {
        return Err(ImageDecodeError::Decode {
            format,
            message: "image has no pixels".into(),
        });
    }
    Ok(RgbImage {
        width: rgb.width(),
        height: rgb.height(),
        data: rgb.into_raw(),
    })
}
