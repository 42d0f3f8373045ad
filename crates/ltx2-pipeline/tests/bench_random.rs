//! The benchmark's random-weight model runs the serving path and is reproducible: the same weight
//! seed gives the same MP4 bytes, another seed other bytes.

use candle_core::{DType, Device};
use ltx2_model::quantization::Quantization;
use ltx2_pipeline::bench::{random_engine, ModelSize, RandomModel, RandomModelOptions};
use ltx2_pipeline::media::mp4::encode_mp4;
use ltx2_pipeline::{GenerateRequest, Generator, NoProgress, PipelineKind};

fn mp4(weights_seed: u64) -> anyhow::Result<Vec<u8>> {
    let opts = RandomModelOptions {
        size: ModelSize::Tiny,
        layers: Some(1),
        text_layers: Some(2),
        pipeline: PipelineKind::DistilledTwoStage,
        dtype: DType::F32,
        seed: weights_seed,
        prompt_cache: false,
        fp8_weights: false,
        quantization: Default::default(),
        gemma_quantization: Default::default(),
    };
    let mut m = random_engine(&opts, &Device::Cpu)?;
    assert_eq!(m.transformer.num_layers, 1);
    assert_eq!(m.gemma.num_hidden_layers(), 2);
    let req = GenerateRequest {
        prompt: "a fox".into(),
        negative_prompt: String::new(),
        width: 192,
        height: 128,
        num_frames: 9,
        fps: 24.0,
        guidance_scale: 1.0,
        num_inference_steps: Some(8),
        seed: 3,
        images: vec![],
        audio: None,
        include_audio: true,
        auto_duration: None,
        clip: None,
        keyframes: false,
        loras: vec![],
    };
    let out = m.engine.generate(&req, &NoProgress)?;
    assert_eq!(out.video.frames.len(), 9);
    let stages: Vec<&str> = out.timings.stages.iter().map(|(s, _)| s.as_str()).collect();
    assert!(
        stages.contains(&"stage2") && stages.contains(&"video_decode"),
        "{stages:?}"
    );
    let audio = out.audio.as_ref().expect("audio requested");
    assert!(audio.channels.iter().flatten().all(|s| s.is_finite()));
    Ok(encode_mp4(&out.video, out.audio.as_ref())?)
}

#[test]
fn random_model_is_reproducible_per_weight_seed() -> anyhow::Result<()> {
    let a = mp4(1)?;
    assert_eq!(a, mp4(1)?);
    assert_ne!(a, mp4(2)?);
    Ok(())
}

fn fp8_model(fp8_weights: bool, quantization: Quantization) -> anyhow::Result<RandomModel> {
    let opts = RandomModelOptions {
        size: ModelSize::Tiny,
        layers: None,
        text_layers: Some(2),
        pipeline: PipelineKind::DistilledOneStage,
        dtype: DType::F32,
        seed: 1,
        prompt_cache: false,
        fp8_weights,
        quantization,
        gemma_quantization: Default::default(),
    };
    Ok(random_engine(&opts, &Device::Cpu)?)
}

/// The benchmark's FP8 layouts build and run the serving path: the FP8 checkpoint layout (as
/// stored, and with fp8-scaled-mm) holds fewer DiT bytes than the bf16 one, fp8-cast fewer still
/// (it also casts block 0); unservable combinations are refused.
#[test]
fn fp8_layouts_run_and_shrink_the_dit() -> anyhow::Result<()> {
    let bf16 = fp8_model(false, Quantization::None)?;
    let mut sizes = vec![];
    for (fp8, q) in [
        (true, Quantization::None),
        (true, Quantization::Fp8ScaledMm),
        (false, Quantization::Fp8Cast),
    ] {
        let mut m = fp8_model(fp8, q)?;
        assert!(
            m.dit_resident_bytes < bf16.dit_resident_bytes,
            "{q}: {} vs {}",
            m.dit_resident_bytes,
            bf16.dit_resident_bytes
        );
        sizes.push(m.dit_resident_bytes);
        let req = GenerateRequest {
            prompt: "a fox".into(),
            negative_prompt: String::new(),
            width: 64,
            height: 64,
            num_frames: 9,
            fps: 24.0,
            guidance_scale: 1.0,
            num_inference_steps: Some(2),
            seed: 3,
            images: vec![],
            audio: None,
            include_audio: true,
            auto_duration: None,
            clip: None,
            keyframes: false,
            loras: vec![],
        };
        let out = m.engine.generate(&req, &NoProgress)?;
        let audio = out.audio.as_ref().expect("audio requested");
        assert!(
            audio.channels.iter().flatten().all(|s| s.is_finite()),
            "{q}"
        );
    }
    assert_eq!(sizes[0], sizes[1], "scaled-mm holds what weight-only holds");
    assert!(sizes[2] < sizes[0], "fp8-cast also casts block 0");
    assert!(fp8_model(false, Quantization::Fp8ScaledMm).is_err());
    assert!(fp8_model(true, Quantization::Fp8Cast).is_err());
    Ok(())
}
