//! FP8 (`float8_e4m3fn`) weights kept resident, and the two products ltx-core runs on them.
//!
//! An [`Fp8Weight`] is the checkpoint's `F8_E4M3` tensor `[out, in]` plus its per-tensor
//! `weight_scale` (1 for `fp8-cast`, which stores no scale). Just before each matmul the weight is
//! dequantized, `f32(w) · scale` cast to the compute dtype, into a scratch buffer that the next
//! layer reuses: the numbers of dequantize-at-load (bitwise on the CPU) at half the resident bytes.
//!
//! Device seam: the dequantization is [`Dequantize`], an in-place op writing into the thread's
//! scratch buffer (one per device and dtype): a parallel loop on the CPU, one fused cast-and-scale
//! kernel on CUDA (feature `cuda`; candle's cast + affine into a fresh tensor when the kernels
//! are not available). On CUDA [`scaled_mm`] runs the FP8 tensor-core GEMM (cuBLASLt
//! E4M3×E4M3, `ltx2_cuda::fp8_gemm`) in place of its emulated product.

use std::cell::RefCell;
use std::sync::OnceLock;

use candle_core::{
    CpuStorage, DType, Device, InplaceOp2, Layout, Module, Result, Shape, Tensor, WithDType,
};
use float8::F8E4M3;
use half::{bf16, f16};
use rayon::prelude::*;

use crate::quantization::E4M3_MAX;

/// Above this magnitude PyTorch's `float8_e4m3fn` cast rounds to NaN (it does not saturate; 464 is
/// the midpoint between 448 and the NaN encoding and ties to 448). `float8` saturates instead, so
/// exact `fp8-cast` refuses such values rather than silently differ.
const TORCH_E4M3_NAN_ABOVE: f32 = 464.0;

/// Elements per parallel chunk of the CPU dequantization.
const CHUNK: usize = 1 << 16;

/// `f32` value of every `e4m3fn` bit pattern (exact; NaN for `0x7f` / `0xff`).
fn e4m3_table() -> &'static [f32; 256] {
    static TABLE: OnceLock<[f32; 256]> = OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|b| F8E4M3::from_bits(b as u8).to_f32()))
}

/// A linear weight stored as `F8_E4M3` with its per-tensor dequantization scale.
#[derive(Debug, Clone)]
pub struct Fp8Weight {
    /// `[out, in]`, `DType::F8E4M3`.
    weight: Tensor,
    /// `w ≈ f32(weight) · scale`.
    scale: f32,
}

impl Fp8Weight {
    pub fn new(weight: Tensor, scale: f32) -> Result<Self> {
        if weight.dtype() != DType::F8E4M3 || weight.rank() != 2 {
            candle_core::bail!(
                "an FP8 weight is a 2-d F8E4M3 tensor, got {:?} {:?}",
                weight.dtype(),
                weight.dims()
            );
        }
        Ok(Self {
            weight: weight.contiguous()?,
            scale,
        })
    }

    /// The stored `F8E4M3` tensor `[out, in]`.
    pub fn raw(&self) -> &Tensor {
        &self.weight
    }

    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        let d = self.weight.dims();
        (d[0], d[1])
    }

    /// Bytes this weight holds: one per element plus the f32 scale.
    pub fn resident_bytes(&self) -> u64 {
        self.weight.elem_count() as u64 + 4
    }

    /// A fresh dense copy, `f32(w) · scale` cast to `dtype`.
    pub fn dequantize(&self, dtype: DType) -> Result<Tensor> {
        dequantize_with_ops(&self.weight, self.scale, dtype)
    }

    /// Runs `f` on the weight dequantized to `dtype` with `scale` (the stored one, or 1 for the
    /// unscaled values the scaled-mm product needs). On the CPU the tensor is this thread's
    /// scratch buffer: valid only during `f`, overwritten by the next dequantization.
    pub fn with_dequantized<R>(
        &self,
        dtype: DType,
        scale: f32,
        f: impl FnOnce(&Tensor) -> Result<R>,
    ) -> Result<R> {
        let device = self.weight.device();
        if !device.is_cpu() && !dequantize_in_place(device) {
            return f(&dequantize_with_ops(&self.weight, scale, dtype)?);
        }
        let shape = self.weight.shape().clone();
        let buf = scratch_take(shape.elem_count(), dtype, device)?;
        let run = || -> Result<R> {
            let w = buf.narrow(0, 0, shape.elem_count())?.reshape(&shape)?;
            w.inplace_op2(&self.weight, &Dequantize { scale })?;
            f(&w)
        };
        let out = run();
        scratch_put(buf);
        out
    }
}

/// Whether `device` dequantizes into the scratch buffer with [`Dequantize`] (the CPU, and CUDA
/// when the fused kernels loaded).
fn dequantize_in_place(device: &Device) -> bool {
    #[cfg(feature = "cuda")]
    if crate::cuda_ops::dequantize_kernel_available(device) {
        return true;
    }
    device.is_cpu()
}

/// `f32(w) · scale` with candle ops (any device), cast to `dtype`: candle's affine computes
/// `v · scale + 0` in f32, which [`Dequantize`] reproduces bit for bit.
fn dequantize_with_ops(w: &Tensor, scale: f32, dtype: DType) -> Result<Tensor> {
    w.to_dtype(DType::F32)?
        .affine(scale as f64, 0.0)?
        .to_dtype(dtype)
}

/// In-place `dst = cast(f32(src) · scale)` for an `F8E4M3` source and a float destination of the
/// same element count (the per-layer dequantization into the scratch buffer).
pub struct Dequantize {
    pub scale: f32,
}

impl Dequantize {
    fn fill<T: WithDType + Send>(
        &self,
        dst: &mut [T],
        src: &[F8E4M3],
        cast: impl Fn(f32) -> T + Sync,
    ) {
        let table = e4m3_table();
        let scale = self.scale;
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| {
                for (d, s) in d.iter_mut().zip(s) {
                    // `+ 0.0` as candle's affine (it turns -0 into +0).
                    *d = cast(table[s.to_bits() as usize] * scale + 0.0);
                }
            });
    }
}

impl InplaceOp2 for Dequantize {
    fn name(&self) -> &'static str {
        "fp8-dequantize"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dl: &Layout,
        src: &CpuStorage,
        sl: &Layout,
    ) -> Result<()> {
        let (Some((d0, d1)), Some((s0, s1))) = (dl.contiguous_offsets(), sl.contiguous_offsets())
        else {
            candle_core::bail!("fp8-dequantize: both tensors must be contiguous");
        };
        if d1 - d0 != s1 - s0 {
            candle_core::bail!(
                "fp8-dequantize: {} destination elements for {} source elements",
                d1 - d0,
                s1 - s0
            );
        }
        let CpuStorage::F8E4M3(src) = src else {
            candle_core::bail!("fp8-dequantize: the source must be F8E4M3");
        };
        let src = &src[s0..s1];
        match dst {
            CpuStorage::F32(d) => self.fill(&mut d[d0..d1], src, |v| v),
            CpuStorage::BF16(d) => self.fill(&mut d[d0..d1], src, bf16::from_f32),
            CpuStorage::F16(d) => self.fill(&mut d[d0..d1], src, f16::from_f32),
            _ => candle_core::bail!("fp8-dequantize: the destination must be f32, bf16 or f16"),
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dl: &Layout,
        src: &candle_core::CudaStorage,
        sl: &Layout,
    ) -> Result<()> {
        ltx2_cuda::kernels::fp8_dequantize_into(dst, dl, src, sl, self.scale)
    }
}

thread_local! {
    /// Idle dequantization buffers of this thread, one per device and dtype, grown to the largest
    /// layer seen. A buffer is taken out while in use, so a nested dequantization gets its own.
    /// On CUDA reuse is safe because every use is ordered on candle's one stream.
    static SCRATCH: RefCell<Vec<Tensor>> = const { RefCell::new(Vec::new()) };
}

/// A flat buffer of `dtype` on `device` with at least `elems` elements.
fn scratch_take(elems: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let idle = SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let i = s
            .iter()
            .position(|t| t.dtype() == dtype && t.device().same_device(device))?;
        Some(s.swap_remove(i))
    });
    match idle {
        Some(t) if t.elem_count() >= elems => Ok(t),
        // Too small: dropped, replaced by one of the new size.
        _ => Tensor::zeros(elems, dtype, device),
    }
}

fn scratch_put(buf: Tensor) {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let same = |t: &Tensor| t.dtype() == buf.dtype() && t.device().same_device(buf.device());
        match s.iter().position(same) {
            Some(i) if s[i].elem_count() >= buf.elem_count() => {}
            Some(i) => s[i] = buf,
            None => s.push(buf),
        }
    });
}

/// Bytes of this thread's idle CPU dequantization buffers (memory reports).
pub fn scratch_bytes() -> u64 {
    SCRATCH.with(|s| {
        s.borrow()
            .iter()
            .filter(|t| t.device().is_cpu())
            .map(|t| (t.elem_count() * t.dtype().size_in_bytes()) as u64)
            .sum()
    })
}

/// ltx-core `fp8-cast`'s downcast of one tensor (`value.to(torch.float8_e4m3fn)`: round to
/// nearest even, no scale). `key` names the tensor in the error for values PyTorch would turn
/// into NaN (|v| > 464, or non-finite); real checkpoints have none.
pub fn cast_to_e4m3(t: &Tensor, key: &str) -> Result<Tensor> {
    let f = t.to_dtype(DType::F32)?;
    let abs = f.abs()?.flatten_all()?;
    let max = abs.max(0)?.to_scalar::<f32>()?;
    let finite = abs.sum_all()?.to_scalar::<f32>()?.is_finite();
    if !finite || max > TORCH_E4M3_NAN_ABOVE {
        candle_core::bail!(
            "fp8-cast: {key} holds a value of magnitude {max} (or a non-finite one), which \
             ltx-core's cast to float8_e4m3fn turns into NaN"
        );
    }
    f.to_dtype(DType::F8E4M3)
}

/// ltx-core `quantize_weight_to_fp8_per_tensor` (`fp8_scaled_mm.py`): `scale = 448 / max|w|`,
/// which PyTorch evaluates as `(1 / max|w|) · 448` in f32 (`Tensor.__rtruediv__`), then
/// `codes = e4m3(clamp(w · scale, ±448))` and `weight_scale = 1 / scale` (the f32 reciprocal,
/// not `max|w| / 448`). An all-zero weight gets scale 1.
pub fn quantize_per_tensor(w: &Tensor) -> Result<Fp8Weight> {
    let w = w.to_dtype(DType::F32)?;
    let amax = w.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    if !amax.is_finite() {
        candle_core::bail!("per-tensor FP8: the weight is not finite (max |w| = {amax})");
    }
    let scale = if amax > 0.0 {
        (1.0 / amax) * E4M3_MAX
    } else {
        1.0
    };
    let s = Tensor::new(scale, w.device())?;
    let codes = w
        .broadcast_mul(&s)?
        .clamp(-E4M3_MAX, E4M3_MAX)?
        .to_dtype(DType::F8E4M3)?;
    Fp8Weight::new(codes, 1.0 / scale)
}

/// ltx-core `FP8Linear.forward` (`fp8_scaled_mm.py`, TensorRT-LLM's two ops as the FP8 golden
/// emulates them): `q = e4m3(clamp(x / input_scale, ±448))`, `y = (q @ wᵀ) · (input_scale ·
/// weight_scale) + bias`, the product accumulated in f32 and returned in `x`'s dtype.
///
/// Emulated with exact operands: e4m3 values are exact in f32, so the f32 GEMM of the upcast
/// operands is the FP8 GEMM up to summation order. On CUDA the cuBLASLt FP8 GEMM computes the
/// same product (f32 accumulation, one f32 scale, one rounding) on tensor cores.
pub fn scaled_mm(
    x: &Tensor,
    weight: &Fp8Weight,
    input_scale: f32,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let dtype = x.dtype();
    let (out_features, in_features) = weight.dims();
    let dims = x.dims().to_vec();
    let tokens = x.elem_count() / in_features;
    let mut out_dims = dims;
    *out_dims.last_mut().expect("x has a feature dimension") = out_features;
    #[cfg(feature = "cuda")]
    if let Some(y) = crate::cuda_ops::fp8_scaled_mm(
        &x.reshape((tokens, in_features))?,
        weight.raw(),
        input_scale,
        weight.scale(),
    )? {
        let y = y.reshape(Shape::from(out_dims))?;
        return match bias {
            Some(b) => y.broadcast_add(&b.to_dtype(dtype)?),
            None => Ok(y),
        };
    }
    let s_in = Tensor::new(input_scale, x.device())?;
    // Division, not a reciprocal multiply: the rounding of x / s decides the e4m3 code.
    let q = x
        .to_dtype(DType::F32)?
        .reshape((tokens, in_features))?
        .broadcast_div(&s_in)?
        .clamp(-E4M3_MAX, E4M3_MAX)?
        .to_dtype(DType::F8E4M3)?
        .to_dtype(DType::F32)?;
    let product = weight.with_dequantized(DType::F32, 1.0, |w| q.matmul(&w.t()?))?;
    // The combined scale is one f32 product, as `scale_a.float() * scale_b.float()`.
    let y = product
        .affine((input_scale * weight.scale()) as f64, 0.0)?
        .to_dtype(dtype)?;
    let y = y.reshape(Shape::from(out_dims))?;
    match bias {
        Some(b) => y.broadcast_add(&b.to_dtype(dtype)?),
        None => Ok(y),
    }
}

/// The dense product `x Wᵀ + b` of candle's `Linear` on a given weight.
pub fn dense_forward(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    candle_nn::Linear::new(weight.clone(), bias.cloned()).forward(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp8(values: &[f32], shape: (usize, usize)) -> Tensor {
        Tensor::from_vec(values.to_vec(), shape, &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F8E4M3)
            .unwrap()
    }

    #[test]
    fn table_is_the_exact_value_of_every_code() {
        let t = e4m3_table();
        assert_eq!(t[0x00], 0.0);
        assert_eq!(t[0x01], 2f32.powi(-9)); // smallest subnormal
        assert_eq!(t[0x08], 2f32.powi(-6)); // smallest normal
        assert_eq!(t[0x7e], 448.0);
        assert_eq!(t[0xfe], -448.0);
        assert!(t[0x7f].is_nan() && t[0xff].is_nan());
    }

    /// The scratch path (CPU kernel) and candle's cast + affine give the same bits, in every
    /// float dtype, and the scratch is reused across layers of different sizes.
    #[test]
    fn scratch_dequantization_equals_cast_and_affine() -> Result<()> {
        let vals: Vec<f32> = (0..=255u8)
            .map(|b| F8E4M3::from_bits(b).to_f32())
            .filter(|v| v.is_finite())
            .collect();
        let n = vals.len();
        let big = Fp8Weight::new(fp8(&vals, (2, n / 2)), 0.013)?;
        let small = Fp8Weight::new(fp8(&vals[..8], (2, 4)), 3.5)?;
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            for w in [&big, &small, &big] {
                let reference = w.dequantize(dtype)?.to_dtype(DType::F32)?;
                let ours = w.with_dequantized(dtype, w.scale(), |t| t.to_dtype(DType::F32))?;
                let (a, b) = (
                    reference.flatten_all()?.to_vec1::<f32>()?,
                    ours.flatten_all()?.to_vec1::<f32>()?,
                );
                assert!(
                    a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{dtype:?}"
                );
            }
        }
        // One idle buffer per dtype, sized for the largest layer.
        assert_eq!(
            scratch_bytes(),
            (big.weight.elem_count() * (4 + 2 + 2)) as u64
        );
        Ok(())
    }

    #[test]
    fn fp8_cast_refuses_what_torch_turns_into_nan() -> Result<()> {
        let ok = Tensor::new(&[464f32, -0.3, 1e-4], &Device::Cpu)?;
        let q = cast_to_e4m3(&ok, "k")?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        // 464 ties to 448 (even), 1e-4 underflows to 0 (below half the smallest subnormal).
        assert_eq!(q, vec![448.0, -0.3125, 0.0]);
        let bad = Tensor::new(&[465f32], &Device::Cpu)?;
        let e = cast_to_e4m3(&bad, "blocks.0.to_q.weight").unwrap_err();
        assert!(e.to_string().contains("blocks.0.to_q.weight"), "{e}");
        let nan = Tensor::new(&[f32::NAN, 1.0], &Device::Cpu)?;
        assert!(cast_to_e4m3(&nan, "k").is_err());
        Ok(())
    }

    /// The emulated FP8×FP8 product on values where every step is exact.
    #[test]
    fn scaled_mm_quantizes_clamps_and_scales() -> Result<()> {
        let w = Fp8Weight::new(fp8(&[1.0, 2.0, -1.0, 0.5], (2, 2)), 0.25)?;
        // input_scale 2: x / 2 = [1, 500], and 500 clamps to 448.
        let x = Tensor::new(&[[[2f32, 1000.0]]], &Device::Cpu)?;
        let bias = Tensor::new(&[1f32, -1.0], &Device::Cpu)?;
        let y = scaled_mm(&x, &w, 2.0, Some(&bias))?;
        assert_eq!(y.dims(), &[1, 1, 2]);
        // q = [1, 448] (500 clamped); q @ wᵀ = [1 + 896, -1 + 224]; × (2 · 0.25) + b.
        let expect = [897.0 * 0.5 + 1.0, 223.0 * 0.5 - 1.0];
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, expect);
        Ok(())
    }
}
