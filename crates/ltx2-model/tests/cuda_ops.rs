//! The CUDA fast paths against their references, on fresh random inputs: the fused elementwise
//! kernels, the FP8 dequantize kernel and cuBLASLt FP8 GEMM, cuDNN SDPA and cuDNN conv3d.
//!
//! The references run on the CPU (the candle composites the kernels replace), except attention
//! and conv3d, whose references run on the GPU in f32. Every test needs a CUDA device and a
//! `--features cuda` build; without either it prints why and passes (CI has no GPU). With one,
//! a fast path that is not available (no libcudnn, say) fails its test: `scripts/gpu/check.sh`
//! runs these to prove the fast paths run there.

use candle_core::{DType, Device, Result, Tensor};

/// The CUDA device, or `None` after printing why the test is skipped.
fn cuda(test: &str) -> Option<Device> {
    if !cfg!(feature = "cuda") {
        eprintln!("{test}: skipped, built without the `cuda` feature");
        return None;
    }
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("{test}: skipped, no CUDA device ({e})");
            None
        }
    }
}

/// `‖a − b‖ / ‖b‖` in f64 on the CPU; NaN anywhere fails.
fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    let a: Vec<f32> = a
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<f32> = b
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(a.len(), b.len());
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in a.iter().zip(&b) {
        assert!(x.is_finite() && y.is_finite(), "non-finite output");
        num += ((x - y) as f64).powi(2);
        den += (*y as f64).powi(2);
    }
    (num / den.max(1e-30)).sqrt()
}

/// Bitwise-equal element count ratio (the elementwise kernels round like the composites).
fn equal_fraction(a: &Tensor, b: &Tensor) -> f64 {
    let a: Vec<f32> = a
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<f32> = b
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    a.iter()
        .zip(&b)
        .filter(|(x, y)| x.to_bits() == y.to_bits())
        .count() as f64
        / a.len() as f64
}

fn randn(shape: &[usize], dtype: DType) -> Result<Tensor> {
    Tensor::randn(0f32, 1.0, shape, &Device::Cpu)?.to_dtype(dtype)
}

#[cfg(feature = "cuda")]
mod gpu {
    use super::*;
    use ltx2_model::backends;
    use ltx2_model::fp8::{self, Fp8Weight};
    use ltx2_model::quantization::Quantization;
    use ltx2_model::transformer::attention::{sdpa, sdpa_reference};
    use ltx2_model::transformer::fused;
    use ltx2_model::transformer::rope::{apply_split_rope, apply_split_rope_reference, Rope};

    /// The fast paths this file proves: all must be active on a GPU host.
    #[test]
    fn backends_report_the_fast_paths() {
        let Some(dev) = cuda("backends_report_the_fast_paths") else {
            return;
        };
        let r = backends::report(&dev, DType::BF16, Quantization::Fp8ScaledMm);
        println!("backends: {}", r.summary());
        assert_eq!(r.elementwise, "fused-cuda", "{r:?}");
        assert_eq!(r.attention, "cudnn-sdpa", "{r:?}");
        assert_eq!(r.conv3d, "cudnn", "{r:?}");
        assert_eq!(r.fp8_gemm, "cublaslt-e4m3", "{r:?}");
    }

    #[test]
    fn rms_norm_modulate_matches_the_composite() -> Result<()> {
        let Some(dev) = cuda("rms_norm_modulate_matches_the_composite") else {
            return Ok(());
        };
        for dtype in [DType::F32, DType::BF16] {
            // Per-token (B, T, D) and per-sample (B, 1, D) modulation, as the AdaLN views.
            for tt in [1usize, 37] {
                let x = randn(&[2, 37, 4096], dtype)?;
                let ss = randn(&[2, tt, 2, 4096], dtype)?;
                let (scale, shift) = (
                    ss.narrow(2, 0, 1)?.squeeze(2)?,
                    ss.narrow(2, 1, 1)?.squeeze(2)?,
                );
                let want = fused::rms_norm_modulate_reference(&x, &scale, &shift, 1e-6)?;
                let g = |t: &Tensor| t.to_device(&dev);
                let got = fused::rms_norm_modulate(&g(&x)?, &g(&scale)?, &g(&shift)?, 1e-6)?;
                let e = rel_l2(&got, &want);
                println!(
                    "rms_norm_modulate {dtype:?} T'={tt}: rel_l2 {e:.2e}, equal {:.4}",
                    equal_fraction(&got, &want)
                );
                assert!(e < if dtype == DType::F32 { 1e-6 } else { 4e-3 }, "{e}");
            }
        }
        Ok(())
    }

    #[test]
    fn gate_residual_and_rope_equal_the_composites() -> Result<()> {
        let Some(dev) = cuda("gate_residual_and_rope_equal_the_composites") else {
            return Ok(());
        };
        for dtype in [DType::F32, DType::BF16] {
            let (x, y, gate) = (
                randn(&[2, 53, 2048], dtype)?,
                randn(&[2, 53, 2048], dtype)?,
                randn(&[2, 1, 2048], dtype)?,
            );
            let want = fused::gate_residual_reference(&x, &y, &gate)?;
            let got = fused::gate_residual(
                &x.to_device(&dev)?,
                &y.to_device(&dev)?,
                &gate.to_device(&dev)?,
            )?;
            assert_eq!(equal_fraction(&got, &want), 1.0, "gate_residual {dtype:?}");
            // Tables (B, H, T, D/2) for 32 heads of 64 (audio) and 128 (video).
            for head_dim in [64usize, 128] {
                let (b, t, h) = (2, 29, 32);
                let x = randn(&[b, t, h * head_dim], dtype)?;
                let rope = Rope {
                    cos: randn(&[b, h, t, head_dim / 2], dtype)?,
                    sin: randn(&[b, h, t, head_dim / 2], dtype)?,
                };
                let want = apply_split_rope_reference(&x, &rope)?;
                let on = Rope {
                    cos: rope.cos.to_device(&dev)?,
                    sin: rope.sin.to_device(&dev)?,
                };
                let got = apply_split_rope(&x.to_device(&dev)?, &on)?;
                assert_eq!(
                    equal_fraction(&got, &want),
                    1.0,
                    "rope {dtype:?} d={head_dim}"
                );
            }
        }
        Ok(())
    }

    /// The dequantize kernel gives candle's cast + affine bit for bit, into the reused scratch.
    #[test]
    fn fp8_dequantize_kernel_is_bitwise() -> Result<()> {
        let Some(dev) = cuda("fp8_dequantize_kernel_is_bitwise") else {
            return Ok(());
        };
        let w = Fp8Weight::new(
            randn(&[384, 256], DType::F32)?
                .to_dtype(DType::F8E4M3)?
                .to_device(&dev)?,
            0.0123,
        )?;
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let want = w
                .raw()
                .to_dtype(DType::F32)?
                .affine(0.0123, 0.0)?
                .to_dtype(dtype)?;
            let got = w.with_dequantized(dtype, w.scale(), |t| t.copy())?;
            assert_eq!(equal_fraction(&got, &want), 1.0, "{dtype:?}");
        }
        Ok(())
    }

    /// cuBLASLt E4M3×E4M3 against the CPU emulation of ltx-core's scaled-mm (same operands,
    /// f32 accumulation: only the summation order differs).
    #[test]
    fn fp8_scaled_mm_matches_the_emulation() -> Result<()> {
        let Some(dev) = cuda("fp8_scaled_mm_matches_the_emulation") else {
            return Ok(());
        };
        for (tokens, inp, out) in [(77usize, 256usize, 384usize), (300, 4096, 1024)] {
            let w = fp8::quantize_per_tensor(&randn(&[out, inp], DType::F32)?)?;
            let bias = randn(&[out], DType::F32)?;
            for dtype in [DType::F32, DType::BF16] {
                let x = (randn(&[1, tokens, inp], DType::F32)? * 3.0)?.to_dtype(dtype)?;
                let want = fp8::scaled_mm(&x, &w, 0.02, Some(&bias))?;
                let wg = Fp8Weight::new(w.raw().to_device(&dev)?, w.scale())?;
                let got =
                    fp8::scaled_mm(&x.to_device(&dev)?, &wg, 0.02, Some(&bias.to_device(&dev)?))?;
                let e = rel_l2(&got, &want);
                println!("scaled_mm {tokens}x{inp}x{out} {dtype:?}: rel_l2 {e:.2e}");
                assert!(e < if dtype == DType::F32 { 1e-5 } else { 8e-3 }, "{e}");
            }
        }
        assert!(
            !backends::runtime_fallbacks().contains_key("fp8_gemm"),
            "{:?}",
            backends::runtime_fallbacks()
        );
        Ok(())
    }

    /// cuDNN SDPA (bf16) against the chunked reference in f32, head dims 64 and 128, with and
    /// without the text cross-attention's additive mask.
    #[test]
    fn cudnn_sdpa_matches_the_chunked_reference() -> Result<()> {
        let Some(dev) = cuda("cudnn_sdpa_matches_the_chunked_reference") else {
            return Ok(());
        };
        for (head_dim, t, s, masked) in [
            (128usize, 300usize, 300usize, false),
            (128, 257, 96, true),
            (64, 130, 61, false),
        ] {
            let heads = 32;
            let f32s = |n: usize| Tensor::randn(0f32, 1.0, (2, n, heads * head_dim), &dev);
            let (q, k, v) = (f32s(t)?, f32s(s)?, f32s(s)?);
            let mask = if masked {
                let keep: Vec<f32> = (0..2 * s)
                    .map(|i| {
                        if i % s < s - 17 * (i / s + 1) {
                            1.0
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let keep = Tensor::from_vec(keep, (2, s), &dev)?;
                Some(ltx2_model::transformer::norm::additive_mask(
                    &keep,
                    DType::BF16,
                )?)
            } else {
                None
            };
            let want = sdpa_reference(
                &q,
                &k,
                &v,
                heads,
                mask.as_ref()
                    .map(|m| m.to_dtype(DType::F32))
                    .transpose()?
                    .as_ref(),
            )?;
            let bf = |x: &Tensor| x.to_dtype(DType::BF16);
            let got = sdpa(&bf(&q)?, &bf(&k)?, &bf(&v)?, heads, mask.as_ref())?;
            let e = rel_l2(&got, &want);
            println!("sdpa d={head_dim} q{t} k{s} masked={masked}: rel_l2 {e:.2e}");
            assert!(e < 1.5e-2, "{e}");
        }
        assert!(
            !backends::runtime_fallbacks().contains_key("attention"),
            "{:?}",
            backends::runtime_fallbacks()
        );
        Ok(())
    }

    /// cuDNN conv3d (bf16 and f32) against candle's per-tap conv2d in f32 on the GPU.
    #[test]
    fn cudnn_conv3d_matches_the_tap_sum() -> Result<()> {
        use ltx2_model::video_vae::conv3d::{
            Conv3d, Conv3dConfig, SpatialPadding, TemporalPadding,
        };
        let Some(dev) = cuda("cudnn_conv3d_matches_the_tap_sum") else {
            return Ok(());
        };
        for (t, s) in [
            (TemporalPadding::Causal, SpatialPadding::Zeros),
            (TemporalPadding::Replicate, SpatialPadding::Reflect),
        ] {
            let cfg = Conv3dConfig::k3(64, 96, t, s);
            let tensors: std::collections::HashMap<String, Tensor> = [
                (
                    "weight".to_string(),
                    (Tensor::randn(0f32, 1.0, (96, 64, 3, 3, 3), &dev)? * 0.05)?,
                ),
                ("bias".to_string(), Tensor::randn(0f32, 1.0, 96, &dev)?),
            ]
            .into();
            let vb = |dtype| candle_nn::VarBuilder::from_tensors(tensors.clone(), dtype, &dev);
            let conv = Conv3d::new(cfg, vb(DType::F32))?;
            let x = Tensor::randn(0f32, 1.0, (1, 64, 5, 24, 40), &dev)?;
            let want = conv.forward_candle(&x, None)?;
            for dtype in [DType::F32, DType::BF16] {
                let conv = Conv3d::new(cfg, vb(dtype))?;
                let got = conv.forward(&x.to_dtype(dtype)?)?;
                assert_eq!(got.dims(), want.dims());
                let e = rel_l2(&got, &want);
                println!("conv3d {t:?}/{s:?} {dtype:?}: rel_l2 {e:.2e}");
                assert!(e < if dtype == DType::F32 { 1e-5 } else { 1e-2 }, "{e}");
            }
        }
        assert!(
            !backends::runtime_fallbacks().contains_key("conv3d"),
            "{:?}",
            backends::runtime_fallbacks()
        );
        Ok(())
    }
}

/// Keeps the helpers used (and says so) in a build without the `cuda` feature.
#[test]
fn cuda_tests_need_a_cuda_build() -> Result<()> {
    if cuda("cuda_tests_need_a_cuda_build").is_none() {
        let _ = (
            rel_l2 as fn(&Tensor, &Tensor) -> f64,
            equal_fraction as fn(&Tensor, &Tensor) -> f64,
            randn(&[1], DType::F32)?,
        );
    }
    Ok(())
}
