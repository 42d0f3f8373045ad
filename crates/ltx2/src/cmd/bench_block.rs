//! `ltx2 bench --block-profile TOKENS`: a per-op profile of one full-width LTX-2 19B video block
//! (4096 wide, 32 heads of 128, FF 16384; text cross-attention over 1024 tokens; A↔V
//! cross-attention against the audio stream, 2048 wide, 32 heads of 64) at `TOKENS` video tokens,
//! on random data. Each op runs through the model's own dispatch (so on CUDA: cuDNN SDPA, fused
//! kernels, the FP8 GEMM of the chosen quantization) and, where one exists, its reference, timed
//! separately: median of `iters` runs after a warm-up, the device synchronised around each run.
//!
//! GEMM and attention rows carry FLOPs, TFLOP/s and % of the dense peak of their operand type
//! (`--peak-tflops` for bf16, twice that for e4m3); elementwise rows carry bytes and GB/s.

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor};
use ltx2_model::fp8::{self, Fp8Weight};
use ltx2_model::quantization::Quantization;
use ltx2_model::transformer::attention::{sdpa, sdpa_reference};
use ltx2_model::transformer::fused;
use ltx2_model::transformer::rope::{apply_split_rope, apply_split_rope_reference, Rope};
use serde_json::{json, Value};

/// LTX-2 19B video stream widths.
const D: usize = 4096;
const HEADS: usize = 32;
const FF: usize = 4 * D;
/// Audio stream width and the A↔V attention's head layout (32 heads of 64).
const DA: usize = 2048;
/// Text tokens of the cross-attention (Gemma's padded prompt).
const TEXT: usize = 1024;
/// Audio latent tokens of a ~5 s clip (25 per second).
const AUDIO: usize = 126;

struct Profiler<'a> {
    device: &'a Device,
    warmup: usize,
    iters: usize,
    peak_tflops: f64,
    rows: Vec<Value>,
}

impl Profiler<'_> {
    /// Median seconds of `f` over `iters` synchronised runs.
    fn time(&self, mut f: impl FnMut() -> Result<Tensor>) -> Result<f64> {
        for _ in 0..self.warmup {
            drop(f()?);
        }
        self.device.synchronize()?;
        let mut v = Vec::with_capacity(self.iters);
        for _ in 0..self.iters.max(1) {
            let t = Instant::now();
            let out = f()?;
            self.device.synchronize()?;
            v.push(t.elapsed().as_secs_f64());
            drop(out);
        }
        v.sort_by(f64::total_cmp);
        Ok(v[v.len() / 2])
    }

    /// A matrix-bound op: `flops` over its median time against `peak` TFLOP/s.
    fn compute(
        &mut self,
        op: &str,
        shape: String,
        path: &str,
        flops: f64,
        peak: f64,
        f: impl FnMut() -> Result<Tensor>,
    ) -> Result<()> {
        let s = self.time(f)?;
        let tflops = flops / s / 1e12;
        self.rows.push(json!({
            "op": op, "shape": shape, "path": path, "ms": s * 1e3, "tflop": flops / 1e12,
            "tflops": tflops, "pct_of_peak": 100.0 * tflops / peak, "peak_tflops": peak,
        }));
        Ok(())
    }

    /// A memory-bound op: `bytes` read + written over its median time.
    fn memory(
        &mut self,
        op: &str,
        shape: String,
        path: &str,
        bytes: f64,
        f: impl FnMut() -> Result<Tensor>,
    ) -> Result<()> {
        let s = self.time(f)?;
        self.rows.push(json!({
            "op": op, "shape": shape, "path": path, "ms": s * 1e3, "bytes": bytes,
            "gb_per_s": bytes / s / 1e9,
        }));
        Ok(())
    }
}

/// One linear `x[tokens, in] → [tokens, out]` under `quantization`: dense bf16, FP8 weight-only
/// (dequantize + dense) or scaled-mm (FP8 × FP8).
fn linear_row(
    p: &mut Profiler,
    name: &str,
    tokens: usize,
    (inp, out): (usize, usize),
    dtype: DType,
    quantization: Quantization,
) -> Result<()> {
    let dev = p.device;
    let x = Tensor::randn(0f32, 1.0, (tokens, inp), dev)?.to_dtype(dtype)?;
    let w = (Tensor::randn(0f32, 1.0, (out, inp), dev)? * (1.0 / (inp as f64).sqrt()))?;
    let flops = 2.0 * (tokens * inp * out) as f64;
    let shape = format!("{tokens}x{inp}x{out}");
    match quantization {
        Quantization::None => {
            let w = w.to_dtype(dtype)?;
            p.compute(name, shape, "dense", flops, p.peak_tflops, || {
                fp8::dense_forward(&x, &w, None)
            })
        }
        Quantization::Fp8Cast => {
            let fw = Fp8Weight::new(w.to_dtype(DType::F8E4M3)?, 1.0)?;
            p.compute(name, shape, "fp8-weight-only", flops, p.peak_tflops, || {
                fw.with_dequantized(dtype, fw.scale(), |w| fp8::dense_forward(&x, w, None))
            })
        }
        Quantization::Fp8ScaledMm => {
            let fw = fp8::quantize_per_tensor(&w)?;
            let peak = 2.0 * p.peak_tflops;
            p.compute(name, shape, "fp8-scaled-mm", flops, peak, || {
                fp8::scaled_mm(&x, &fw, 0.05, None)
            })
        }
    }
}

/// `(name, q, k, v, heads, mask)` of one attention to time.
type AttentionCase<'a> = (
    &'a str,
    &'a Tensor,
    &'a Tensor,
    &'a Tensor,
    usize,
    Option<&'a Tensor>,
);

/// `(flops, shape)` of multi-head attention with `t` queries, `s` keys, `h` heads of `d`.
fn attention_flops(t: usize, s: usize, h: usize, d: usize) -> (f64, String) {
    (4.0 * (t * s * h * d) as f64, format!("q{t} k{s} {h}x{d}"))
}

/// The profile of one block at `tokens` video tokens.
pub fn profile(
    device: &Device,
    tokens: usize,
    dtype: DType,
    quantization: Quantization,
    peak_tflops: f64,
    iters: usize,
    with_reference: bool,
) -> anyhow::Result<Value> {
    let mut p = Profiler {
        device,
        warmup: 2,
        iters,
        peak_tflops,
        rows: vec![],
    };
    let t = tokens;
    let act = |n: usize, w: usize| -> Result<Tensor> {
        Tensor::randn(0f32, 1.0, (1, n, w), device)?.to_dtype(dtype)
    };
    let x = act(t, D)?;
    let el = dtype.size_in_bytes() as f64;
    let rows_bytes = |n: usize, w: usize, passes: f64| passes * (n * w) as f64 * el;

    // Norm + AdaLN modulation (per-token timesteps: the (B, T, D) layout of conditioning).
    let (scale, shift) = ((act(1, D)? * 0.1)?, (act(1, D)? * 0.1)?);
    let mod_bytes = rows_bytes(t, D, 2.0);
    let sh = format!("{t}x{D}");
    p.memory(
        "rms_norm_modulate",
        sh.clone(),
        "dispatch",
        mod_bytes,
        || fused::rms_norm_modulate(&x, &scale, &shift, 1e-6),
    )?;
    if with_reference {
        p.memory(
            "rms_norm_modulate",
            sh.clone(),
            "reference",
            mod_bytes,
            || fused::rms_norm_modulate_reference(&x, &scale, &shift, 1e-6),
        )?;
    }

    // The block's GEMM shapes (self q/k/v/out, text q/out and k/v over the text, A↔V q/out, FF).
    for (name, n, dims) in [
        ("attn1.to_q|to_k|to_v|to_out (x4)", t, (D, D)),
        ("attn2.to_k|to_v over text (x2)", TEXT, (D, D)),
        ("a2v.to_q (video query, audio width)", t, (D, DA)),
        ("a2v.to_out (audio width to video)", t, (DA, D)),
        ("ff.net.0.proj", t, (D, FF)),
        ("ff.net.2", t, (FF, D)),
    ] {
        linear_row(&mut p, name, n, dims, dtype, quantization)?;
    }

    // RoPE on q (and k: the same cost).
    let half = D / HEADS / 2;
    let rope = Rope {
        cos: Tensor::randn(0f32, 1.0, (1, HEADS, t, half), device)?.to_dtype(dtype)?,
        sin: Tensor::randn(0f32, 1.0, (1, HEADS, t, half), device)?.to_dtype(dtype)?,
    };
    let rope_bytes = rows_bytes(t, D, 3.0);
    p.memory("rope_split", sh.clone(), "dispatch", rope_bytes, || {
        apply_split_rope(&x, &rope)
    })?;
    if with_reference {
        p.memory("rope_split", sh.clone(), "reference", rope_bytes, || {
            apply_split_rope_reference(&x, &rope)
        })?;
    }

    // Attentions: video self (head dim 128), text cross with its padding mask, A↔V (head dim 64).
    let (k_text, v_text) = (act(TEXT, D)?, act(TEXT, D)?);
    let keep = Tensor::ones((1, TEXT), DType::F32, device)?;
    let mask = ltx2_model::transformer::norm::additive_mask(&keep, dtype)?;
    let (qa, ka) = (act(t, DA)?, act(AUDIO, DA)?);
    let cases: [AttentionCase; 3] = [
        ("attn1 (self)", &x, &x, &x, HEADS, None),
        (
            "attn2 (text, masked)",
            &x,
            &k_text,
            &v_text,
            HEADS,
            Some(&mask),
        ),
        ("a2v (audio keys)", &qa, &ka, &ka, HEADS, None),
    ];
    for (name, q, k, v, h, m) in cases {
        let (flops, shape) = attention_flops(q.dim(1)?, k.dim(1)?, h, q.dim(2)? / h);
        p.compute(name, shape.clone(), "dispatch", flops, peak_tflops, || {
            sdpa(q, k, v, h, m)
        })?;
        if with_reference {
            p.compute(name, shape, "reference", flops, peak_tflops, || {
                sdpa_reference(q, k, v, h, m)
            })?;
        }
    }

    // Gated residual (after each of the 4 sub-layers).
    let gate = (act(1, D)? * 0.1)?;
    let y = act(t, D)?;
    let gate_bytes = rows_bytes(t, D, 3.0);
    p.memory("gate_residual", sh.clone(), "dispatch", gate_bytes, || {
        fused::gate_residual(&x, &y, &gate)
    })?;
    if with_reference {
        p.memory("gate_residual", sh, "reference", gate_bytes, || {
            fused::gate_residual_reference(&x, &y, &gate)
        })?;
    }

    // The dispatched block estimate: each row times how often a block runs it.
    let count = |op: &str| -> f64 {
        match op {
            o if o.starts_with("attn1.to_q") => 4.0,
            o if o.starts_with("attn2.to_k") => 0.0, // cached per request (text K/V)
            "rms_norm_modulate" => 3.0,
            "rope_split" => 2.0,
            "gate_residual" => 4.0,
            _ => 1.0,
        }
    };
    let block_ms: f64 = p
        .rows
        .iter()
        .filter(|r| r["path"] != "reference")
        .map(|r| r["ms"].as_f64().unwrap_or(0.0) * count(r["op"].as_str().unwrap_or("")))
        .sum();
    Ok(json!({
        "video_tokens": tokens,
        "dtype": format!("{dtype:?}").to_lowercase(),
        "quantization": quantization.name(),
        "iters": iters,
        "block_ms_estimate": block_ms,
        "ops": p.rows,
    }))
}
