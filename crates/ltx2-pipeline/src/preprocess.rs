//! Conditioning-image preprocessing (ltx-pipelines `media_io.resize_and_center_crop` +
//! `normalize_latent`): cover-resize keeping the aspect ratio (`scale = max(H/h, W/w)`, size
//! rounded up), bilinear with `align_corners=False` and no antialiasing, centre crop, then
//! `x / 127.5 - 1`. The CRF-33 H.264 round-trip of `load_image_conditioning` is not applied.

use candle_core::{Device, Result, Tensor};

use crate::api::RgbImage;

/// `(1, 3, 1, height, width)` in [-1, 1], ready for the video VAE encoder.
pub fn image_to_pixels(
    image: &RgbImage,
    height: usize,
    width: usize,
    device: &Device,
) -> Result<Tensor> {
    let (src_h, src_w) = (image.height as usize, image.width as usize);
    if src_h == 0 || src_w == 0 || image.data.len() != src_h * src_w * 3 {
        candle_core::bail!(
            "image buffer of {} bytes does not hold {src_w}x{src_h} RGB",
            image.data.len()
        );
    }
    let scale = (height as f64 / src_h as f64).max(width as f64 / src_w as f64);
    let new_h = (src_h as f64 * scale).ceil() as usize;
    let new_w = (src_w as f64 * scale).ceil() as usize;
    let top = (new_h - height) / 2;
    let left = (new_w - width) / 2;
    let rows = taps(src_h, new_h);
    let cols = taps(src_w, new_w);
    let mut out = vec![0f32; 3 * height * width];
    let px = |y: usize, x: usize, c: usize| image.data[(y * src_w + x) * 3 + c] as f32;
    for oy in 0..height {
        let (y0, y1, ly0, ly1) = rows[oy + top];
        for ox in 0..width {
            let (x0, x1, lx0, lx1) = cols[ox + left];
            for c in 0..3 {
                let v = ly0 * (lx0 * px(y0, x0, c) + lx1 * px(y0, x1, c))
                    + ly1 * (lx0 * px(y1, x0, c) + lx1 * px(y1, x1, c));
                out[(c * height + oy) * width + ox] = v / 127.5 - 1.0;
            }
        }
    }
    Tensor::from_vec(out, (1, 3, 1, height, width), device)
}

/// PyTorch `upsample_bilinear2d` source taps along one axis (align_corners=False), in f32.
fn taps(input: usize, output: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|i| {
            let src = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src as usize).min(input - 1);
            let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
            let l1 = src - i0 as f32;
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

/// Converts a `(H, W, 3)` uint8 tensor (e.g. a golden's source image) into an [`RgbImage`].
pub fn rgb_from_hwc(t: &Tensor) -> Result<RgbImage> {
    let (h, w, c) = t.dims3()?;
    if c != 3 {
        candle_core::bail!("expected (H, W, 3), got {:?}", t.dims());
    }
    let data = t
        .to_dtype(candle_core::DType::U8)?
        .flatten_all()?
        .to_vec1::<u8>()?;
    Ok(RgbImage {
        width: w as u32,
        height: h as u32,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity_up_to_normalisation() {
        let img = RgbImage {
            width: 2,
            height: 1,
            data: vec![0, 127, 255, 10, 20, 30],
        };
        let t = image_to_pixels(&img, 1, 2, &Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let want: Vec<f32> = [0u8, 10, 127, 20, 255, 30]
            .iter()
            .map(|&v| v as f32 / 127.5 - 1.0)
            .collect();
        for (a, b) in t.iter().zip(want) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
