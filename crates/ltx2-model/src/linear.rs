//! Linear layers whose weight storage may be quantized.
//!
//! Quantization belongs to the layer: model code holds a [`Linear`] and never asks how its weight
//! is stored. A layer the checkpoint stores in FP8 (`F8_E4M3` + `weight_scale`) stays FP8 in
//! memory and is dequantized just before each matmul ([`crate::fp8`]); with
//! [`Quantization::Fp8Cast`] a bf16 block layer is cast to FP8 at load; with
//! [`Quantization::Fp8ScaledMm`] an FP8 layer multiplies FP8 activations by FP8 weights.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::fp8::{self, Fp8Weight};
use crate::quantization::{self, Quantization};

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

/// Per-tensor FP8 (`F8_E4M3`) scales of a quantized layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fp8Scales {
    /// `w ≈ f32(w_fp8) * weight_scale` (1 for a layer cast by `fp8-cast`).
    pub weight_scale: f32,
    /// Static activation scale of the scaled-mm product (`x_fp8 = e4m3(x / input_scale)`);
    /// absent from `fp8-cast` layers, unused by the weight-only product.
    pub input_scale: Option<f32>,
}

/// How an FP8 layer multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fp8Product {
    /// The weight is dequantized (`f32(w) · weight_scale`, cast to the compute dtype) and the
    /// product is dense: ltx-core's weight-only numerics, and `fp8-cast`'s upcast.
    Dequantized,
    /// ltx-core `FP8Linear`: FP8 activations (static `input_scale`) times FP8 weights.
    ScaledMm,
}

/// A linear layer whose weight is resident in FP8.
#[derive(Debug, Clone)]
pub struct Fp8Linear {
    weight: Fp8Weight,
    /// In the compute dtype (an `fp8-cast` bias holds its e4m3-rounded values).
    bias: Option<Tensor>,
    input_scale: Option<f32>,
    product: Fp8Product,
    /// The dtype the dequantized weight takes (the builder's).
    dtype: DType,
}

impl Fp8Linear {
    pub fn scales(&self) -> Fp8Scales {
        Fp8Scales {
            weight_scale: self.weight.scale(),
            input_scale: self.input_scale,
        }
    }

    pub fn weight(&self) -> &Fp8Weight {
        &self.weight
    }

    pub fn product(&self) -> Fp8Product {
        self.product
    }
}

impl Module for Fp8Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match (self.product, self.input_scale) {
            (Fp8Product::ScaledMm, Some(s)) => {
                fp8::scaled_mm(x, &self.weight, s, self.bias.as_ref())
            }
            (Fp8Product::ScaledMm, None) => {
                candle_core::bail!("scaled-mm FP8 layer without input_scale")
            }
            (Fp8Product::Dequantized, _) => {
                self.weight
                    .with_dequantized(self.dtype, self.weight.scale(), |w| {
                        fp8::dense_forward(x, w, self.bias.as_ref())
                    })
            }
        }
    }
}

/// A linear layer of the model, whatever its storage.
#[derive(Debug, Clone)]
pub enum Linear {
    Dense(DenseLinear),
    Fp8(Fp8Linear),
}

impl Linear {
    /// The weight as the dense product uses it, `[out, in]`: the stored tensor, or a dequantized
    /// copy of an FP8 one (allocates; for inspection, not for the forward).
    pub fn weight(&self) -> Result<Tensor> {
        match self {
            Linear::Dense(l) => Ok(l.weight().clone()),
            Linear::Fp8(l) => l.weight.dequantize(l.dtype),
        }
    }

    /// `(out_features, in_features)`.
    pub fn dims(&self) -> (usize, usize) {
        match self {
            Linear::Dense(l) => {
                let d = l.weight().dims();
                (d[0], d[1])
            }
            Linear::Fp8(l) => l.weight.dims(),
        }
    }

    pub fn bias(&self) -> Option<&Tensor> {
        match self {
            Linear::Dense(l) => l.bias(),
            Linear::Fp8(l) => l.bias.as_ref(),
        }
    }

    /// The FP8 scales when this layer is resident in FP8.
    pub fn fp8_scales(&self) -> Option<Fp8Scales> {
        match self {
            Linear::Dense(_) => None,
            Linear::Fp8(l) => Some(l.scales()),
        }
    }

    /// Bytes the layer holds (weight, bias, FP8 scales), not counting the shared scratch buffer.
    pub fn resident_bytes(&self) -> u64 {
        let bias = self.bias().map_or(0, tensor_bytes);
        match self {
            Linear::Dense(l) => tensor_bytes(l.weight()) + bias,
            Linear::Fp8(l) => {
                l.weight.resident_bytes() + bias + if l.input_scale.is_some() { 4 } else { 0 }
            }
        }
    }
}

/// Bytes of a tensor's elements.
pub fn tensor_bytes(t: &Tensor) -> u64 {
    (t.elem_count() * t.dtype().size_in_bytes()) as u64
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Dense(l) => l.forward(x),
            Linear::Fp8(l) => l.forward(x),
        }
    }
}

/// Loads `<vb>.weight [out, in]` and `<vb>.bias [out]` as the file stores them (an FP8 layer, one
/// with a `<vb>.weight_scale`, stays FP8 with the weight-only product).
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    linear_q(in_dim, out_dim, true, Quantization::None, vb)
}

/// [`linear`] without a bias.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    linear_q(in_dim, out_dim, false, Quantization::None, vb)
}

/// [`linear`] with the bias optional.
pub fn linear_b(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    linear_q(in_dim, out_dim, bias, Quantization::None, vb)
}

/// A linear layer under a quantization mode (see [`crate::quantization`]). The layer's key
/// (`vb.prefix()`) and what the file stores decide: a stored FP8 layer stays FP8 (scaled-mm
/// product with [`Quantization::Fp8ScaledMm`], which needs its `input_scale`); with
/// [`Quantization::Fp8Cast`] the layers of ltx-core's downcast map are cast to FP8; everything
/// else is dense in the builder's dtype.
pub fn linear_q(
    in_dim: usize,
    out_dim: usize,
    bias: bool,
    quantization: Quantization,
    vb: VarBuilder,
) -> Result<Linear> {
    let layer = vb.prefix();
    let dtype = vb.dtype();
    if vb.contains_tensor("weight_scale") {
        if quantization == Quantization::Fp8Cast {
            candle_core::bail!(
                "{layer}: fp8-cast casts a bf16 checkpoint, but this layer is already FP8 \
                 (it has a weight_scale); use --quantization none (FP8 kept resident) or fp8-scaled-mm"
            );
        }
        let raw = vb.get_with_hints_dtype(
            (out_dim, in_dim),
            "weight",
            Default::default(),
            DType::F8E4M3,
        )?;
        let weight = Fp8Weight::new(raw, scalar_f32(&vb, "weight_scale")?)?;
        let input_scale = if vb.contains_tensor("input_scale") {
            Some(scalar_f32(&vb, "input_scale")?)
        } else {
            None
        };
        let product = match quantization {
            Quantization::Fp8ScaledMm if input_scale.is_none() => candle_core::bail!(
                "{layer}: fp8-scaled-mm quantizes activations with the layer's input_scale, \
                 which this checkpoint does not store"
            ),
            Quantization::Fp8ScaledMm => Fp8Product::ScaledMm,
            _ => Fp8Product::Dequantized,
        };
        return Ok(Linear::Fp8(Fp8Linear {
            weight,
            bias: bias.then(|| vb.get(out_dim, "bias")).transpose()?,
            input_scale,
            product,
            dtype,
        }));
    }
    let weight_key = format!("{layer}.weight");
    if quantization == Quantization::Fp8Cast && quantization::fp8_cast_casts(&weight_key) {
        // The file's values (bf16 upcast exactly), rounded once to e4m3 as `tensor.to(fp8)`.
        let get_f32 = |name: &str, shape: &[usize]| {
            vb.get_with_hints_dtype(shape, name, Default::default(), DType::F32)
        };
        let weight = fp8::cast_to_e4m3(&get_f32("weight", &[out_dim, in_dim])?, &weight_key)?;
        let bias = if bias {
            let key = format!("{layer}.bias");
            let b = get_f32("bias", &[out_dim])?;
            let b = if quantization::fp8_cast_casts(&key) {
                fp8::cast_to_e4m3(&b, &key)?
            } else {
                b
            };
            Some(b.to_dtype(DType::F32)?.to_dtype(dtype)?)
        } else {
            None
        };
        return Ok(Linear::Fp8(Fp8Linear {
            weight: Fp8Weight::new(weight, 1.0)?,
            bias,
            input_scale: None,
            product: Fp8Product::Dequantized,
            dtype,
        }));
    }
    let weight = vb.get((out_dim, in_dim), "weight")?;
    let bias = bias.then(|| vb.get(out_dim, "bias")).transpose()?;
    Ok(Linear::Dense(DenseLinear::new(weight, bias)))
}

/// A linear layer whose weight is quantized at load to per-tensor FP8
/// ([`fp8::quantize_per_tensor`]) and dequantized per layer; the bias stays in the builder's
/// dtype.
pub fn linear_fp8_per_tensor(
    in_dim: usize,
    out_dim: usize,
    bias: bool,
    vb: VarBuilder,
) -> Result<Linear> {
    let w = vb.get_with_hints_dtype((out_dim, in_dim), "weight", Default::default(), DType::F32)?;
    Ok(Linear::Fp8(Fp8Linear {
        weight: fp8::quantize_per_tensor(&w)?,
        bias: bias.then(|| vb.get(out_dim, "bias")).transpose()?,
        input_scale: None,
        product: Fp8Product::Dequantized,
        dtype: vb.dtype(),
    }))
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
