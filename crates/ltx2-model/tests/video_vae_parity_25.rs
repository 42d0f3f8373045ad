//! LTX-2.5 video VAE parity with ltx-core 1.2.0 on the 2.5 golden set (`GoldenSet::Ltx25`, or
//! `$LTX2_GOLDEN_25_DIR`): the diffusion decoder (`video_vae_decode`, replaying the recorded
//! stage-5 noise), the conv decoder of the `-conv` file (`video_vae_conv_decode`) and the encoder
//! (`video_vae_encode`), each loaded from its split file through its own `config` metadata; and
//! the diffusion decoder's tiling (one tile = untiled; a real split stays close).

use std::collections::VecDeque;
use std::path::PathBuf;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use ltx2_model::golden::{Checks, Golden, GoldenSet};
use ltx2_model::video_vae::diffusion::TileAxis;
use ltx2_model::video_vae::ops::to_unit_frames;
use ltx2_model::video_vae::{
    AnyVideoDecoder, DecoderConfig, DiffusionTiling, VaeConfigs, VideoVaeFile,
};

const SET: GoldenSet = GoldenSet::Ltx25;

fn device() -> Device {
    ltx2_model::golden::test_device().expect("LTX2_TEST_DEVICE")
}

/// The split file a golden was made from (`info.file`, relative to `weights/`).
fn weights_of(g: &Golden) -> Result<PathBuf> {
    let info = g
        .info()
        .ok_or_else(|| anyhow::anyhow!("{}: no `info` metadata", g.name()))?;
    let file = info["file"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("{}: `info.file` missing", g.name()))?;
    Ok(SET.weights_path(file))
}

/// The golden's recorded draws `in.stage5_noise<i>`, in order.
fn recorded_noise(g: &Golden, dev: &Device) -> Result<Vec<Tensor>> {
    let mut keys = g.keys_with_prefix("in.stage5_noise");
    keys.sort_by_key(|k| {
        k["in.stage5_noise".len()..]
            .parse::<usize>()
            .unwrap_or(usize::MAX)
    });
    keys.iter().map(|k| Ok(g.get_f32(k, dev)?)).collect()
}

/// A [`ltx2_model::video_vae::NoiseFn`] replaying `draws`; fails on a shape mismatch or when
/// the decoder asks for more draws than were recorded.
fn replay(draws: Vec<Tensor>) -> impl FnMut(&[usize]) -> candle_core::Result<Tensor> {
    let mut draws: VecDeque<Tensor> = draws.into();
    move |shape| {
        let t = draws.pop_front().ok_or_else(|| {
            candle_core::Error::Msg(format!("no recorded noise left for {shape:?}"))
        })?;
        if t.dims() != shape {
            candle_core::bail!(
                "recorded noise {:?}, the decoder asks for {shape:?}",
                t.dims()
            );
        }
        Ok(t)
    }
}

#[test]
fn video_vae_decode() -> Result<()> {
    let dev = device();
    let g = SET.load("video_vae_decode")?;
    let path = weights_of(&g)?;
    let vae = VideoVaeFile::load(&path, DType::F32, &dev)?;
    let AnyVideoDecoder::Diffusion(decoder) = &vae.decoder else {
        anyhow::bail!("{}: expected the diffusion decoder", path.display());
    };
    let latent = g.get_f32("in.latent", &dev)?;
    let draws = recorded_noise(&g, &dev)?;
    let n_draws = draws.len();
    let mut used = 0usize;
    let mut noise = replay(draws);
    let mut counting = |shape: &[usize]| {
        used += 1;
        noise(shape)
    };
    let pixels = decoder.decode(&latent, &mut counting)?;
    anyhow::ensure!(
        used == n_draws,
        "the decode drew {used} noises, the golden recorded {n_draws}"
    );
    let mut checks = Checks::new(&g);
    checks.check("out.pixels", &to_unit_frames(&pixels)?)?;
    checks.finish(&["out."])?;
    Ok(())
}

#[test]
fn video_vae_conv_decode() -> Result<()> {
    let dev = device();
    let g = SET.load("video_vae_conv_decode")?;
    let vae = VideoVaeFile::load(&weights_of(&g)?, DType::F32, &dev)?;
    anyhow::ensure!(
        matches!(vae.decoder, AnyVideoDecoder::Conv(_)),
        "expected the conv decoder"
    );
    let latent = g.get_f32("in.latent", &dev)?;
    let pixels = vae.decoder.decode(&latent, &mut |s: &[usize]| {
        candle_core::bail!("the conv decoder drew noise {s:?}")
    })?;
    let mut checks = Checks::new(&g);
    checks.check("out.pixels", &to_unit_frames(&pixels)?)?;
    checks.finish(&["out."])?;
    Ok(())
}

#[test]
fn video_vae_encode() -> Result<()> {
    let dev = device();
    let g = SET.load("video_vae_encode")?;
    let vae = VideoVaeFile::load(&weights_of(&g)?, DType::F32, &dev)?;
    let latent = vae.encoder.encode(&g.get_f32("in.pixels", &dev)?)?;
    let mut checks = Checks::new(&g);
    checks.check("out.latent", &latent)?;
    checks.finish(&["out."])?;
    Ok(())
}

/// Both video VAE files of the set carry the same encoder; the class in the metadata, not the
/// file name, picks the decoder.
#[test]
fn video_vae_files_are_told_apart_by_metadata() -> Result<()> {
    let conv = SET.load("video_vae_conv_decode")?;
    let diff = SET.load("video_vae_decode")?;
    let c = VaeConfigs::from_checkpoint(&weights_of(&conv)?)?;
    let d = VaeConfigs::from_checkpoint(&weights_of(&diff)?)?;
    assert!(matches!(c.decoder, DecoderConfig::Conv(_)));
    assert!(matches!(d.decoder, DecoderConfig::Diffusion(_)));
    assert_eq!(c.encoder.encoder_blocks, d.encoder.encoder_blocks);
    assert_eq!(c.encoder.latent_channels, d.encoder.latent_channels);
    Ok(())
}

/// Seeded standard-normal draws (stands in for the pipeline's noise stream).
fn seeded(dev: &Device) -> impl FnMut(&[usize]) -> candle_core::Result<Tensor> + '_ {
    let mut i = 0u64;
    move |shape| {
        i += 1;
        // A fixed, deterministic pattern per draw: enough to compare two decodes.
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|j| (((j as u64 * 2654435761 + i * 97) % 1000) as f32 / 500.0) - 1.0)
            .collect();
        Tensor::from_vec(v, shape, dev)
    }
}

/// A tiling whose single tile covers the video is the untiled decode, bit for bit; ltx-core's
/// schedule then only differs where the tiles overlap.
#[test]
fn diffusion_single_tile_equals_untiled() -> Result<()> {
    let dev = device();
    let g = SET.load("video_vae_decode")?;
    let vae = VideoVaeFile::load(&weights_of(&g)?, DType::F32, &dev)?;
    let AnyVideoDecoder::Diffusion(decoder) = &vae.decoder else {
        anyhow::bail!("expected the diffusion decoder");
    };
    let latent = g.get_f32("in.latent", &dev)?;
    let (f, h, w) = (latent.dim(2)?, latent.dim(3)?, latent.dim(4)?);
    let untiled = decoder.decode(&latent, &mut seeded(&dev))?;
    // Tiles larger than the video on every axis: one tile, but through the tiled path.
    let (o_t, o_px) =
        ltx2_model::video_vae::diffusion::geometry::min_pixel_overlaps(decoder.config());
    let big = DiffusionTiling {
        frames: TileAxis::new((8 * f + o_t + 16).div_ceil(16) * 16, o_t),
        height: TileAxis::new((32 * h + o_px + 64).div_ceil(64) * 64, o_px),
        width: TileAxis::new((32 * w + o_px + 64).div_ceil(64) * 64, o_px),
    };
    let one_tile = decoder.decode_tiled(&latent, &big, &mut seeded(&dev))?;
    let diff = (&untiled - &one_tile)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    println!("single tile vs untiled: max |diff| = {diff:e}");
    assert_eq!(diff, 0.0);
    Ok(())
}

/// Latents below the stages' size floors (one frame, one cell) and above them decode to
/// `(8(f − 1) + 1, 32h, 32w)` frames, with one noise draw of the padded canvas each.
#[test]
fn diffusion_decode_output_shapes() -> Result<()> {
    let dev = device();
    let g = SET.load("video_vae_decode")?;
    let vae = VideoVaeFile::load(&weights_of(&g)?, DType::F32, &dev)?;
    let AnyVideoDecoder::Diffusion(decoder) = &vae.decoder else {
        anyhow::bail!("expected the diffusion decoder");
    };
    let c = decoder.latent_channels();
    let [st, sh, sw] = decoder.scale_factors();
    for (f, h, w) in [(1, 1, 1), (3, 2, 1), (2, 1, 4)] {
        let latent = Tensor::randn(0f32, 1., (1, c, f, h, w), &dev)?;
        let mut draws = 0;
        let mut base = seeded(&dev);
        let px = decoder.decode(&latent, &mut |s: &[usize]| {
            draws += 1;
            base(s)
        })?;
        assert_eq!(
            px.dims(),
            &[1, 3, st * (f - 1) + 1, sh * h, sw * w],
            "latent {f}x{h}x{w}"
        );
        assert_eq!(draws, 1);
        let finite = px
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .all(|v| v.is_finite());
        assert!(finite, "latent {f}x{h}x{w}: non-finite pixels");
    }
    Ok(())
}
