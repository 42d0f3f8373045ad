//! Image preprocessing against `e2e_two_stage_i2v`: `in.source_image` (uint8) -> the golden's
//! `in.first_image.stage1` / `stage2` (ltx-pipelines `resize_and_center_crop` + normalize).

use candle_core::Device;
use ltx2_model::golden::{Golden, Tolerance};
use ltx2_pipeline::preprocess::{image_to_pixels, rgb_from_hwc};

#[test]
fn source_image_preprocessing_matches() -> anyhow::Result<()> {
    let g = Golden::load("e2e_two_stage_i2v")?;
    let img = rgb_from_hwc(&g.get("in.source_image")?)?;
    for key in ["in.first_image.stage1", "in.first_image.stage2"] {
        let r = g.get(key)?;
        let (_, _, _, h, w) = r.dims5()?;
        let ours = image_to_pixels(&img, h, w, &Device::Cpu)?;
        // f32 bilinear of 0..255 values then /127.5: a few ulp of 1.
        let rep = g.compare_with(key, &ours, Tolerance::MaxAbs(1e-5))?;
        anyhow::ensure!(rep.passed, "{rep}");
    }
    Ok(())
}
