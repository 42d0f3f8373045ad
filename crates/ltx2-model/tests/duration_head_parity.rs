//! LTX-2.5 duration head (`model_patches/ltx-2.5-duration-head-*.safetensors`, `duration_head.*`)
//! against ltx-core 1.2.0 / ltx-pipelines' `DurationPredictor` on the `duration_head` golden of
//! `GoldenSet::Ltx25`: seconds from both connector outputs, from each alone, and the frame count
//! with the golden's clamp (its `info`).

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use ltx2_model::duration_head::{predict_num_frames, DurationHead};
use ltx2_model::golden::{test_device, Checks, GoldenSet};

const SET: GoldenSet = GoldenSet::Ltx25;

fn device() -> Device {
    test_device().expect("LTX2_TEST_DEVICE")
}

/// A weight file of the set by its `manifest.json` name.
fn weight_file(name: &str) -> Result<std::path::PathBuf> {
    let text = std::fs::read_to_string(SET.dir().join("manifest.json"))?;
    let manifest: serde_json::Value = serde_json::from_str(&text)?;
    let rel = manifest["weights"][name]
        .as_str()
        .with_context(|| format!("manifest.json has no weights.{name}"))?;
    Ok(SET.dir().join(rel))
}

fn head(dev: &Device) -> Result<DurationHead> {
    DurationHead::from_file(&weight_file("duration_head")?, DType::F32, dev)?
        .context("the duration-head file has duration_head.* weights")
}

#[test]
fn duration_head_matches_ltx_core() -> Result<()> {
    let dev = device();
    let g = SET.load("duration_head")?;
    let info = g.info().context("duration_head has `info`")?;
    let num = |k: &str| info[k].as_f64().with_context(|| format!("info.{k}"));
    let head = head(&dev)?;
    let video = g.get_f32("in.video_encoding", &dev)?;
    let audio = g.get_f32("in.audio_encoding", &dev)?;
    let mut c = Checks::new(&g);
    c.check("out.seconds", &head.forward(Some(&video), Some(&audio))?)?;
    c.check("out.seconds_video_only", &head.forward(Some(&video), None)?)?;
    c.check("out.seconds_audio_only", &head.forward(None, Some(&audio))?)?;
    let fps = g.get_f32("in.frame_rate", &dev)?.to_scalar::<f32>()? as f64;
    assert_eq!(fps, num("frame_rate")?, "in.frame_rate vs info.frame_rate");
    // One prompt per call, as DurationPredictor.
    let mut frames = Vec::new();
    for i in 0..video.dim(0)? {
        let (v, a) = (video.narrow(0, i, 1)?, audio.narrow(0, i, 1)?);
        let (_, n) = predict_num_frames(
            &head,
            Some(&v),
            Some(&a),
            fps,
            num("min_seconds")?,
            num("max_seconds")?,
        )?;
        frames.push(n as i64);
    }
    let n = frames.len();
    c.check(
        "out.num_frames",
        &Tensor::from_vec(frames, n, &Device::Cpu)?,
    )?;
    Ok(c.finish(&["out.", "dbg."])?)
}

/// A file without `duration_head.*` tensors has no head (pre-2.5: no auto duration); one with
/// only some of them is an error that names what is missing.
#[test]
fn files_without_or_with_a_partial_head() -> Result<()> {
    let dev = device();
    let other = weight_file("upsampler")?;
    assert!(DurationHead::from_file(&other, DType::F32, &dev)?.is_none());

    let path = weight_file("duration_head")?;
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu)?;
    tensors.remove("duration_head.mlp_out.weight");
    let metadata = ltx2_model::checkpoint::read_metadata(&path)?;
    let dir = std::env::temp_dir().join(format!("ltx2-duration-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let partial = dir.join("partial.safetensors");
    let views: Vec<(String, Tensor)> = tensors.into_iter().collect();
    safetensors::serialize_to_file(
        views.iter().map(|(k, t)| (k.as_str(), t)),
        Some(metadata),
        &partial,
    )?;
    let err = DurationHead::from_file(&partial, DType::F32, &dev)
        .expect_err("a partial head must be refused")
        .to_string();
    std::fs::remove_dir_all(&dir)?;
    assert!(err.contains("duration_head.mlp_out.weight"), "{err}");
    Ok(())
}
