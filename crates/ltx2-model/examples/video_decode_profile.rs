//! Times the video VAE decode of the tiny golden model block by block, on the CPU in f32:
//! `cargo run --release -p ltx2-model --example video_decode_profile -- [f h w] [iters]`
//! (latent frames, height, width; default 7 16 10 = the 49-frame 512x320 demo request).
//! A development tool for the decoder's CPU path; `ltx2 bench` times the whole request.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ltx2_model::golden::GoldenSet;
use ltx2_model::video_vae::{Config, VideoDecoder};

fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let (f, h, w) = match args[..] {
        [f, h, w, ..] => (f, h, w),
        _ => (7, 16, 10),
    };
    let iters = args.get(3).copied().unwrap_or(5);
    let dev = Device::Cpu;
    let path = GoldenSet::Ltx2.weights_path("model.safetensors");
    let cfg = Config::from_checkpoint(&path)?;
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, &dev)? };
    let decoder = VideoDecoder::new(&cfg, vb.pp("vae"))?;
    let c = decoder.latent_channels();
    let latent = Tensor::randn(0f32, 1., (1, c, f, h, w), &dev)?;
    println!("latent {:?}", latent.dims());
    let mut totals: Vec<(String, f64)> = Vec::new();
    for it in 0..=iters {
        let start = Instant::now();
        let mut last = start;
        let mut stages = Vec::new();
        let video = decoder.decode_traced(&latent, &mut |name, _| {
            let now = Instant::now();
            stages.push((name.to_string(), (now - last).as_secs_f64()));
            last = now;
            Ok(())
        })?;
        let now = Instant::now();
        stages.push((
            "norm+conv_out+unpatchify".into(),
            (now - last).as_secs_f64(),
        ));
        let total = (now - start).as_secs_f64();
        println!("iter {it}: {total:.3} s {:?}", video.dims());
        if it > 0 {
            for (i, (name, t)) in stages.into_iter().enumerate() {
                match totals.get_mut(i) {
                    Some(e) => e.1 += t,
                    None => totals.push((name, t)),
                }
            }
        }
    }
    for (name, t) in totals {
        println!("  {name:<28} {:.4} s", t / iters as f64);
    }
    Ok(())
}
