//! Decoding conditioning images (PNG, JPEG, WebP) and the cover-resize + center crop of ltx-pipelines.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};

use crate::api::RgbImage;

/// Largest accepted side of a conditioning image, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// Default of [`ImageLimits::max_pixels`]: 16.7 MP (4096 x 4096, a 12 MP phone photo fits).
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 4096 * 4096;

/// Bounds on one decode, checked on the header before any pixel is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest `width * height`.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_pixels: DEFAULT_MAX_IMAGE_PIXELS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageDecodeError {
    #[error("not a PNG, JPEG or WebP image")]
    UnsupportedFormat,
    #[error("image is {width}x{height}; at most {max_pixels} pixels and {MAX_IMAGE_SIDE} per side are accepted")]
    TooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("could not decode the {format} image: {message}")]
    Decode {
        format: &'static str,
        message: String,
    },
}

/// Decodes PNG, JPEG or WebP bytes with the default [`ImageLimits`].
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage, ImageDecodeError> {
    decode_image_with(bytes, &ImageLimits::default())
}

/// Decodes PNG, JPEG or WebP bytes (format sniffed from the content, not a declared MIME type)
/// into RGB8; alpha is dropped and 16-bit/grey images are converted. The size in the header is
/// checked against `bounds` before decoding, and the decoder may allocate at most 8 bytes per
/// accepted pixel (RGBA16) besides.
pub fn decode_image_with(bytes: &[u8], bounds: &ImageLimits) -> Result<RgbImage, ImageDecodeError> {
    // Third-party decoders fed untrusted bytes: a panic in one is this input's error.
    std::panic::catch_unwind(|| decode(bytes, bounds)).unwrap_or_else(|_| {
        Err(ImageDecodeError::Decode {
            format: "image",
            message: "the decoder failed on this input (malformed header or data)".into(),
        })
    })
}

fn decode(bytes: &[u8], bounds: &ImageLimits) -> Result<RgbImage, ImageDecodeError> {
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
    if width > MAX_IMAGE_SIDE
        || height > MAX_IMAGE_SIDE
        || width as u64 * height as u64 > bounds.max_pixels
    {
        return Err(ImageDecodeError::TooLarge {
            width,
            height,
            max_pixels: bounds.max_pixels,
        });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(bounds.max_pixels.saturating_mul(8).max(1 << 20));
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
