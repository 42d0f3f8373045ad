//! `ltx2 bench`: times the serving code path (`Generator::generate` then `encode_mp4`) on the real
//! architecture with random weights built in device memory, and prints per-stage medians, peak
//! memory and MFU (one JSON line with `--json`).

use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device};
use ltx2_model::quantization::{GemmaQuantization, Quantization};
use ltx2_pipeline::bench::flops::request_work;
use ltx2_pipeline::bench::{random_engine, ModelSize, RandomModelOptions};
use ltx2_pipeline::media::mp4::encode_mp4;
use ltx2_pipeline::{GenerateOutput, GenerateRequest, Generator, NoProgress, PipelineKind};
use serde_json::json;

use super::bench_mem::PeakMemory;

#[derive(Clone, Copy, clap::ValueEnum)]
enum Size {
    Tiny,
    #[value(name = "19b")]
    Ltx2_19b,
    /// LTX-2.3 22B at its real widths.
    #[value(name = "2.3-22b")]
    Ltx23_22b,
    /// LTX-2.5 22B flags at the 2.3 widths, Gemma-4 at assumed 12B widths, conv video decoder.
    #[value(name = "2.5-22b")]
    Ltx25_22b,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Pipeline {
    DistilledTwoStage,
    OneStage,
    Dev,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Dtype {
    F32,
    Bf16,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Weights {
    Bf16,
    Fp8,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value = "tiny")]
    size: Size,
    /// DiT depth (default: the size's own; 48 for 19b).
    #[arg(long)]
    layers: Option<usize>,
    /// Gemma depth (default: the size's own; 48 for 19b).
    #[arg(long)]
    text_layers: Option<usize>,
    /// Default: bf16 on CUDA, f32 on the CPU.
    #[arg(long, value_enum)]
    dtype: Option<Dtype>,
    /// Default: CUDA when built with it and present, else the CPU.
    #[arg(long, value_enum)]
    device: Option<DeviceArg>,
    #[arg(long, default_value_t = 49)]
    frames: u32,
    /// Output size; the default is the spec's headline request, width 288 x height 512 (portrait,
    /// rendered at 320 x 512 by the two-stage recipe and centre-cropped).
    #[arg(long, default_value_t = 512)]
    height: u32,
    #[arg(long, default_value_t = 288)]
    width: u32,
    #[arg(long, default_value_t = 25.0)]
    fps: f32,
    #[arg(long, value_enum, default_value = "distilled-two-stage")]
    pipeline: Pipeline,
    /// Steps of the dev pipeline.
    #[arg(long, default_value_t = 40)]
    steps: u32,
    /// CFG scale of the dev pipeline.
    #[arg(long, default_value_t = 4.0)]
    guidance: f32,
    #[arg(
        long,
        default_value = "A red fox runs through fresh snow at dawn, cinematic"
    )]
    prompt: String,
    #[arg(long, default_value_t = 10)]
    seed: u64,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    weights_seed: u64,
    /// Keep the prompt cache on (default off: every run pays its text encode, like the official pipeline).
    #[arg(long)]
    prompt_cache: bool,
    /// The checkpoint layout the random DiT takes: `bf16` (dev / distilled files) or `fp8` (the
    /// `*-fp8` files: e4m3 weights + scales in blocks 1-42; needs at least 2 layers).
    #[arg(long, value_enum, default_value = "bf16")]
    weights: Weights,
    /// How the DiT's block linears are loaded: none | fp8-cast (bf16 weights) | fp8-scaled-mm
    /// (fp8 weights).
    #[arg(long, env = "LTX2_QUANTIZATION", default_value = "none")]
    quantization: Quantization,
    /// How Gemma's projections are held: none (bf16) | fp8 (per-tensor FP8).
    #[arg(long, env = "LTX2_GEMMA_QUANTIZATION", default_value = "none")]
    gemma_quantization: GemmaQuantization,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// Dense peak of the device for MFU (H100 SXM bf16: 989).
    #[arg(long, default_value_t = 989.0)]
    peak_tflops: f64,
    /// Print one JSON line instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the last MP4 here.
    #[arg(long)]
    out_mp4: Option<std::path::PathBuf>,
    /// Instead of a request: a per-op profile of one full-width 19B video block at these video
    /// token counts (e.g. `6144,24576`: stage 1 and stage 2 of the 121-frame 768x512 request).
    #[arg(long, value_delimiter = ',')]
    block_profile: Vec<usize>,
    /// With --block-profile: skip timing the reference (candle) path of each fused op.
    #[arg(long)]
    no_block_reference: bool,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Sanity of a random-weight output: u8 frames hide NaNs (they cast to 0), so a collapsed video
/// (one value everywhere) or a non-finite audio sample marks the run as broken.
fn output_health(out: &GenerateOutput) -> serde_json::Value {
    let (mut sum, mut sq, mut n, mut sat) = (0f64, 0f64, 0f64, 0f64);
    for f in &out.video.frames {
        for &p in f {
            let p = p as f64;
            sum += p;
            sq += p * p;
            n += 1.0;
            if p == 0.0 || p == 255.0 {
                sat += 1.0;
            }
        }
    }
    let mean = sum / n.max(1.0);
    let std = (sq / n.max(1.0) - mean * mean).max(0.0).sqrt();
    let audio_finite = out
        .audio
        .as_ref()
        .is_none_or(|a| a.channels.iter().flatten().all(|s| s.is_finite()));
    json!({
        "ok": audio_finite && std > 0.0,
        "video_mean": mean, "video_std": std, "video_saturated_frac": sat / n.max(1.0),
        "audio_finite": audio_finite,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = match args.device {
        None => ltx2_pipeline::engine::best_device()?,
        Some(DeviceArg::Cpu) => Device::Cpu,
        Some(DeviceArg::Cuda) => {
            Device::new_cuda(0).context("--device cuda (build with --features cuda)")?
        }
    };
    let dtype = match args.dtype {
        Some(Dtype::F32) => DType::F32,
        Some(Dtype::Bf16) => DType::BF16,
        None if device.is_cuda() => DType::BF16,
        None => DType::F32,
    };
    let pipeline = match args.pipeline {
        Pipeline::DistilledTwoStage => PipelineKind::DistilledTwoStage,
        Pipeline::OneStage => PipelineKind::DistilledOneStage,
        Pipeline::Dev => PipelineKind::Dev,
    };
    let size = match args.size {
        Size::Tiny => ModelSize::Tiny,
        Size::Ltx2_19b => ModelSize::Ltx2_19b,
        Size::Ltx23_22b => ModelSize::Ltx23_22b,
        Size::Ltx25_22b => ModelSize::Ltx25_22b,
    };
    let memory = PeakMemory::start(&device);
    if !args.block_profile.is_empty() {
        let mut profiles = vec![];
        for &tokens in &args.block_profile {
            profiles.push(super::bench_block::profile(
                &device,
                tokens,
                dtype,
                args.quantization,
                args.peak_tflops,
                args.iters.max(1),
                !args.no_block_reference,
            )?);
        }
        let backends = ltx2_model::backends::report(&device, dtype, args.quantization)
            .with_runtime_fallbacks();
        let report = json!({
            "impl": "ltx2",
            "device": if device.is_cuda() { "cuda" } else { "cpu" },
            "backends": backends,
            "peak_tflops": args.peak_tflops,
            "peak_mem_bytes": memory.peak_bytes(),
            "peak_mem_source": memory.source(),
            "block_profile": profiles,
        });
        println!("{report}");
        return Ok(());
    }
    let t0 = Instant::now();
    let opts = RandomModelOptions {
        size,
        layers: args.layers,
        text_layers: args.text_layers,
        pipeline,
        dtype,
        seed: args.weights_seed,
        prompt_cache: args.prompt_cache,
        fp8_weights: args.weights == Weights::Fp8,
        quantization: args.quantization,
        gemma_quantization: args.gemma_quantization,
    };
    let mut model = random_engine(&opts, &device)?;
    device.synchronize()?;
    let build_s = t0.elapsed().as_secs_f64();
    let after_build = memory.peak_bytes();
    let resident_after_build = memory.current_bytes();

    let mut totals = vec![];
    // The warm-up runs' totals: the first is the first request after start (lazy inits, first
    // touch of the allocator's memory), reported so it can be set against the warm median.
    let mut warmup_totals = vec![];
    let mut stage_runs: Vec<Vec<(String, f64)>> = vec![];
    let mut last = None;
    for i in 0..args.warmup + args.iters {
        let req = GenerateRequest {
            prompt: args.prompt.clone(),
            negative_prompt: "worst quality, blurry".into(),
            width: args.width,
            height: args.height,
            num_frames: args.frames,
            fps: args.fps,
            guidance_scale: if pipeline == PipelineKind::Dev {
                args.guidance
            } else {
                1.0
            },
            num_inference_steps: Some(args.steps),
            seed: args.seed,
            images: vec![],
            audio: None,
            include_audio: true,
            auto_duration: None,
            clip: None,
            keyframes: false,
            loras: vec![],
        };
        let t = Instant::now();
        let out = model.engine.generate(&req, &NoProgress)?;
        let tm = Instant::now();
        let mp4 = encode_mp4(&out.video, out.audio.as_ref())?;
        let mux = tm.elapsed().as_secs_f64();
        let total = t.elapsed().as_secs_f64();
        if i >= args.warmup {
            let mut stages = out.timings.stages.clone();
            stages.push(("mux".into(), mux));
            stage_runs.push(stages);
            totals.push(total);
        } else {
            warmup_totals.push(total);
        }
        if !args.json {
            eprintln!(
                "# run {i} ({}): {total:.3} s",
                if i < args.warmup { "warm-up" } else { "timed" }
            );
        }
        last = Some((out, mp4));
    }
    let (out, mp4) = last.context("--warmup + --iters must be at least 1")?;
    if let Some(p) = &args.out_mp4 {
        std::fs::write(p, &mp4).with_context(|| format!("writing {}", p.display()))?;
    }

    let mut names: Vec<String> = vec![];
    for (n, _) in stage_runs.iter().flatten() {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let stage_median = |n: &str| {
        let v: Vec<f64> = stage_runs
            .iter()
            .map(|r| r.iter().filter(|(s, _)| s == n).map(|(_, t)| t).sum())
            .collect();
        median(&v)
    };
    let median_stages: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .map(|n| (n.clone(), json!(stage_median(n))))
        .collect();
    let median_total = median(&totals);
    let work = request_work(&model.transformer, &out.effective, model.text_tokens);
    let flops: f64 = work.iter().map(|w| w.flops).sum();
    let dit_s: f64 = work.iter().map(|w| stage_median(&w.stage)).sum();
    let mfu = |s: f64| flops / s / (args.peak_tflops * 1e12);
    let peak = memory.peak_bytes();
    let report = json!({
        "impl": "ltx2",
        "size": size.name(),
        "generation": size.generation().display_name(),
        "dit_layers": model.transformer.num_layers,
        "gemma_layers": model.gemma.num_hidden_layers(),
        "dit_params": model.transformer.parameter_count(),
        "weights": if args.weights == Weights::Fp8 { "fp8" } else { "bf16" },
        "quantization": args.quantization.name(),
        "gemma_quantization": args.gemma_quantization.name(),
        "dit_resident_bytes": model.dit_resident_bytes,
        "gemma_resident_bytes": model.gemma_resident_bytes,
        "resident_after_build_bytes": resident_after_build,
        "device": if device.is_cuda() { "cuda" } else { "cpu" },
        "dtype": format!("{dtype:?}").to_lowercase(),
        "pipeline": out.effective.pipeline,
        "frames": args.frames, "height": args.height, "width": args.width, "fps": args.fps,
        "rendered_height": out.effective.rendered_height,
        "rendered_width": out.effective.rendered_width,
        "steps_per_stage": out.effective.steps_per_stage,
        "forwards_per_step": out.effective.forwards_per_step,
        "warmup": args.warmup, "iters": args.iters,
        "build_s": build_s,
        "median_total_s": median_total,
        "totals_s": totals,
        "warmup_totals_s": warmup_totals,
        "median_stages_s": median_stages,
        "mp4_bytes": mp4.len(),
        "peak_mem_bytes": peak,
        "peak_mem_after_build_bytes": after_build,
        "peak_mem_source": memory.source(),
        "transformer_work": work,
        "transformer_tflop": flops / 1e12,
        "peak_tflops": args.peak_tflops,
        "mfu_end_to_end": mfu(median_total),
        "mfu_denoise": mfu(dit_s),
        "output": output_health(&out),
        "backends": model.engine.info().backends.with_runtime_fallbacks(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if report["output"]["ok"] != json!(true) {
        anyhow::bail!(
            "the random-weight output is degenerate (NaN/constant): {}",
            report["output"]
        );
    }
    Ok(())
}
