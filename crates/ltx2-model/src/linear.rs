//! Linear layers whose weight storage may be quantized.
//!
//! Quantization belongs to the layer: model code holds a [`Linear`] and never asks how its weight
//! is stored. Today the FP8 variant dequantizes at load (`W = f32(W_fp8) * weight_scale`, cast to the
//! builder's dtype) and keeps its scales, so a later FP8 GEMM (cuBLASLt scaled-mm) can replace the
//! dense matmul inside [`Fp8Linear::forward`] without touching any model code.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// A dense (unquantized) linear layer, `y = x W^T + b`, weight `[out, in]`.
#[derive(Debug, Clone)]
pub struct DenseLinear {
    inner: candle_nn::Linear,
}

impl DenseLinear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            inner: candle_nn::Linear::new(weight, bias),
        }
    }

    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.inner.bias()
    }
}

impl Module for DenseLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.forward(x)
    }
}

/// Per-tensor FP8 (`F8_E4M3`) scales of a pre-quantized checkpoint layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fp8Scales {
    /// `w ≈ f32(w_fp8) * weight_scale`.
    pub weight_scale: f32,
    /// Static activation scale for a scaled-mm kernel (`x_fp8 = e4m3(x / input_scale)`); unused by
    /// the dequantized path.
    pub input_scale: Option<f32>,
}

/// A linear layer stored as FP8 in the checkpoint. For now the weight is dequantized at load and
/// the product is a dense matmul (the `weight_only` semantics of ltx-core's `FP8Linear`).
#[derive(Debug, Clone)]
pub struct Fp8Linear {
    dense: DenseLinear,
    scales: Fp8Scales,
}

impl Fp8Linear {
    pub fn scales(&self) -> Fp8Scales {
        self.scales
    }
}

impl Module for Fp8Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.dense.forward(x)
    }
}

/// A linear layer of the model, whatever its storage.
#[derive(Debug, Clone)]
pub enum Linear {
    Dense(DenseLinear),
    Fp8(Fp8Linear),
}

impl Linear {
    /// The weight as used by the matmul (dequantized for FP8), `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        match self {
            Linear::Dense(l) => l.weight(),
            Linear::Fp8(l) => l.dense.weight(),
        }
    }

    pub fn bias(&self) -> Option<&Tensor> {
        match self {
            Linear::Dense(l) => l.bias(),
            Linear::Fp8(l) => l.dense.bias(),
        }
    }

    /// The FP8 scales when the checkpoint stored this layer quantized.
    pub fn fp8_scales(&self) -> Option<Fp8Scales> {
        match self {
            Linear::Dense(_) => None,
            Linear::Fp8(l) => Some(l.scales),
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Dense(l) => l.forward(x),
            Linear::Fp8(l) => l.forward(x),
        }
    }
}

/// Loads `<vb>.weight [out, in]` and `<vb>.bias [out]`. When `<vb>.weight_scale` exists the weight is
/// a pre-quantized FP8 tensor and is dequantized with it (`<vb>.input_scale` is kept, not applied).
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    linear_b(in_dim, out_dim, true, vb)
}

/// [`linear`] without a bias.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    linear_b(in_dim, out_dim, false, vb)
}

/// [`linear`] with the bias optional.
pub fn linear_b(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let bias = if bias {
        Some(vb.get(out_dim, "bias")?)
    } else {
        None
    };
    if vb.contains_tensor("weight_scale") {
        // Dequantize in f32 (as ltx-core's weight-only path does), then cast once.
        let w =
            vb.get_with_hints_dtype((out_dim, in_dim), "weight", Default::default(), DType::F32)?;
        let weight_scale = scalar_f32(&vb, "weight_scale")?;
        let input_scale = if vb.contains_tensor("input_scale") {
            Some(scalar_f32(&vb, "input_scale")?)
        } else {
            None
        };
        let weight = w.affine(weight_scale as f64, 0.0)?.to_dtype(vb.dtype())?;
        let dense = DenseLinear::new(weight, bias);
        return Ok(Linear::Fp8(Fp8Linear {
            dense,
            scales: Fp8Scales {
                weight_scale,
                input_scale,
            },
        }));
    }
    let weight = vb.get((out_dim, in_dim), "weight")?;
    Ok(Linear::Dense(DenseLinear::new(weight, bias)))
}

/// A 0-d (or single-element) f32 scale.
fn scalar_f32(vb: &VarBuilder, name: &str) -> Result<f32> {
    // Stored 0-d (or `[1]`); shape-checked builders (e.g. all-zeros ones for benchmarks) need a shape.
    let t = match vb.get_unchecked_dtype(name, DType::F32) {
        Ok(t) => t,
        Err(_) => vb.get_with_hints_dtype((), name, Default::default(), DType::F32)?,
    };
    if t.elem_count() != 1 {
        candle_core::bail!(
            "{}.{name}: expected a scalar, got shape {:?}",
            vb.prefix(),
            t.dims()
        );
    }
    t.flatten_all()?.to_vec1::<f32>().map(|v| v[0])
}
