//! The fused elementwise kernels of `kernels/fused.cu` as candle custom ops (CUDA only; the CPU
//! references are ltx2-model's composites, which these are tested against).
//!
//! Each op takes contiguous activations `(B·T, D)` (any leading shape) in f32, bf16 or f16 and
//! returns a new tensor of the same dtype; per-row operands (AdaLN scale/shift/gate, RoPE tables)
//! are read in place through their strides.

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::{DevicePtr, LaunchConfig, PushKernelArg};
use candle_core::cuda::{CudaDType, WrapErr};
use candle_core::{
    CudaDevice, CudaStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor,
};
use half::{bf16, f16};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/fused.ptx"));
const MODULE: &str = "ltx2_fused";
const THREADS: u32 = 256;

/// Loads the PTX module on `dev` (the driver JIT-compiles it once); an error means the fused
/// kernels cannot run on this device (e.g. a driver older than the PTX).
pub fn probe(dev: &CudaDevice) -> Result<()> {
    dev.get_or_load_custom_func("gate_residual_f32", MODULE, PTX)
        .map(|_| ())
}

fn suffix(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        other => candle_core::bail!("fused kernels take f32/bf16/f16, got {other:?}"),
    })
}

/// Device address of the first element of a contiguous view (bytes already offset).
fn addr<T: CudaDType>(s: &CudaStorage, l: &Layout) -> Result<u64> {
    let slice = s.as_cuda_slice::<T>()?;
    // One stream (candle's) runs everything, so ordering is the stream's; the guard only
    // records events for multi-stream use.
    let (base, _guard) = slice.device_ptr(slice.stream());
    Ok(base + (l.start_offset() * std::mem::size_of::<T>()) as u64)
}

/// A fresh output buffer of `n` elements of `dtype` as candle storage.
pub(crate) fn alloc(dev: &CudaDevice, dtype: DType, n: usize) -> Result<(CudaStorage, u64)> {
    fn go<T: CudaDType + candle_core::cuda::cudarc::driver::DeviceRepr>(
        dev: &CudaDevice,
        n: usize,
    ) -> Result<(CudaStorage, u64)> {
        let s = unsafe { dev.alloc::<T>(n.max(1))? };
        let p = {
            let (p, _g) = s.device_ptr(s.stream());
            p
        };
        Ok((CudaStorage::wrap_cuda_slice(s, dev.clone()), p))
    }
    match dtype {
        DType::F32 => go::<f32>(dev, n),
        DType::BF16 => go::<bf16>(dev, n),
        DType::F16 => go::<f16>(dev, n),
        DType::U8 => go::<u8>(dev, n),
        DType::F8E4M3 => go::<float8::F8E4M3>(dev, n),
        other => candle_core::bail!("no buffer of {other:?}"),
    }
}

pub(crate) fn addr_any(s: &CudaStorage, l: &Layout) -> Result<u64> {
    match s.dtype() {
        DType::F32 => addr::<f32>(s, l),
        DType::BF16 => addr::<bf16>(s, l),
        DType::F16 => addr::<f16>(s, l),
        DType::U8 => addr::<u8>(s, l),
        DType::F8E4M3 => addr::<float8::F8E4M3>(s, l),
        other => candle_core::bail!("no device address for {other:?}"),
    }
}

fn contiguous(l: &Layout, what: &str) -> Result<()> {
    if !l.is_contiguous() {
        candle_core::bail!("{what} must be contiguous");
    }
    Ok(())
}

/// `(batch stride, token stride)` of a per-row operand `(B|1, T|1, D)` (last dim unit-stride) for
/// activations `(batch, tokens, cols)`: a stride is 0 where one row serves the whole axis.
fn row_strides(l: &Layout, batch: usize, tokens: usize, cols: usize) -> Result<(i64, i64)> {
    let (dims, st) = (l.dims(), l.stride());
    if dims.len() != 3
        || dims[2] != cols
        || st[2] != 1
        || (dims[0] != 1 && dims[0] != batch)
        || (dims[1] != 1 && dims[1] != tokens)
    {
        candle_core::bail!(
            "row operand {dims:?} does not broadcast over ({batch}, {tokens}, {cols})"
        );
    }
    let stride = |i: usize| if dims[i] == 1 { 0 } else { st[i] as i64 };
    Ok((stride(0), stride(1)))
}

fn grid(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(THREADS as usize).clamp(1, 65_535 * 8) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `x (B, T, D)` → `rms_norm(x)·(1 + scale) + shift`, `scale`/`shift` `(B|1, T|1, D)`.
pub struct RmsNormModulate {
    pub eps: f32,
}

impl CustomOp3 for RmsNormModulate {
    fn name(&self) -> &'static str {
        "rms-norm-modulate"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        candle_core::bail!("rms-norm-modulate: CUDA only (the CPU path is the composite)")
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        scale: &CudaStorage,
        sl: &Layout,
        shift: &CudaStorage,
        hl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        contiguous(xl, "x")?;
        let dims = xl.dims();
        let (b, t, d) = match dims.len() {
            3 => (dims[0], dims[1], dims[2]),
            _ => candle_core::bail!("rms-norm-modulate: x must be (B, T, D), got {dims:?}"),
        };
        let (sb, stt) = row_strides(sl, b, t, d)?;
        if row_strides(hl, b, t, d)? != (sb, stt) || scale.dtype() != x.dtype() {
            candle_core::bail!("rms-norm-modulate: scale and shift must share layout and dtype");
        }
        let dev = x.device().clone();
        let name = format!("rms_norm_modulate_{}", suffix(x.dtype())?);
        let f = dev.get_or_load_custom_func(&name, MODULE, PTX)?;
        let (out, po) = alloc(&dev, x.dtype(), b * t * d)?;
        let (px, ps, ph) = (addr_any(x, xl)?, addr_any(scale, sl)?, addr_any(shift, hl)?);
        let (cols, tokens, eps) = (d as i32, t as i32, self.eps);
        let cfg = LaunchConfig {
            grid_dim: ((b * t) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = f.builder();
        l.arg(&px)
            .arg(&ps)
            .arg(&ph)
            .arg(&po)
            .arg(&cols)
            .arg(&tokens)
            .arg(&sb)
            .arg(&stt)
            .arg(&eps);
        unsafe { l.launch(cfg) }.w()?;
        Ok((out, xl.shape().clone()))
    }
}

/// `x + y·gate`, `x`/`y` `(B, T, D)`, `gate` `(B|1, T|1, D)`.
pub struct GateResidual;

impl CustomOp3 for GateResidual {
    fn name(&self) -> &'static str {
        "gate-residual"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        candle_core::bail!("gate-residual: CUDA only (the CPU path is the composite)")
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        y: &CudaStorage,
        yl: &Layout,
        g: &CudaStorage,
        gl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        contiguous(xl, "x")?;
        contiguous(yl, "y")?;
        let dims = xl.dims();
        if dims.len() != 3 || yl.dims() != dims {
            candle_core::bail!("gate-residual: x and y must be the same (B, T, D)");
        }
        let (b, t, d) = (dims[0], dims[1], dims[2]);
        let (gb, gt) = row_strides(gl, b, t, d)?;
        let dev = x.device().clone();
        let name = format!("gate_residual_{}", suffix(x.dtype())?);
        let f = dev.get_or_load_custom_func(&name, MODULE, PTX)?;
        let n = b * t * d;
        let (out, po) = alloc(&dev, x.dtype(), n)?;
        let (px, py, pg) = (addr_any(x, xl)?, addr_any(y, yl)?, addr_any(g, gl)?);
        let (n64, cols, tokens) = (n as i64, d as i32, t as i32);
        let mut l = f.builder();
        l.arg(&px)
            .arg(&py)
            .arg(&pg)
            .arg(&po)
            .arg(&n64)
            .arg(&cols)
            .arg(&tokens)
            .arg(&gb)
            .arg(&gt);
        unsafe { l.launch(grid(n)) }.w()?;
        Ok((out, xl.shape().clone()))
    }
}

/// Split RoPE of `x (B, T, H·2·half)` with contiguous tables `(B|1, H, T, half)`.
pub struct RopeSplit;

impl CustomOp3 for RopeSplit {
    fn name(&self) -> &'static str {
        "rope-split"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        candle_core::bail!("rope-split: CUDA only (the CPU path is the composite)")
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        cos: &CudaStorage,
        cl: &Layout,
        sin: &CudaStorage,
        sl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        contiguous(xl, "x")?;
        contiguous(cl, "cos")?;
        contiguous(sl, "sin")?;
        let (xd, cd) = (xl.dims(), cl.dims());
        if xd.len() != 3 || cd.len() != 4 || sl.dims() != cd {
            candle_core::bail!("rope-split: x (B, T, H·D) and tables (B, H, T, D/2) expected");
        }
        let (b, t, inner) = (xd[0], xd[1], xd[2]);
        let (tb, heads, tt, half) = (cd[0], cd[1], cd[2], cd[3]);
        if heads * half * 2 != inner || tt != t || (tb != 1 && tb != b) {
            candle_core::bail!("rope-split: tables {cd:?} do not fit x {xd:?}");
        }
        if cos.dtype() != x.dtype() || sin.dtype() != x.dtype() {
            candle_core::bail!("rope-split: tables must be in the activation dtype");
        }
        let table_batch = if tb == 1 {
            0i64
        } else {
            (heads * t * half) as i64
        };
        let dev = x.device().clone();
        let name = format!("rope_split_{}", suffix(x.dtype())?);
        let f = dev.get_or_load_custom_func(&name, MODULE, PTX)?;
        let (out, po) = alloc(&dev, x.dtype(), b * t * inner)?;
        let (px, pc, ps) = (addr_any(x, xl)?, addr_any(cos, cl)?, addr_any(sin, sl)?);
        let pairs = b * t * heads * half;
        let (np, tokens, h, hf) = (pairs as i64, t as i32, heads as i32, half as i32);
        let mut l = f.builder();
        l.arg(&px)
            .arg(&pc)
            .arg(&ps)
            .arg(&po)
            .arg(&np)
            .arg(&tokens)
            .arg(&h)
            .arg(&hf)
            .arg(&table_batch);
        unsafe { l.launch(grid(pairs)) }.w()?;
        Ok((out, xl.shape().clone()))
    }
}

/// ltx-core FP8Linear's activation quantization `e4m3(clamp(x / input_scale, ±448))` into an
/// `F8E4M3` tensor of `x`'s shape.
pub struct Fp8Quantize {
    pub input_scale: f32,
}

impl CustomOp1 for Fp8Quantize {
    fn name(&self) -> &'static str {
        "fp8-quantize"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        candle_core::bail!("fp8-quantize: CUDA only (the CPU path is the emulation)")
    }

    fn cuda_fwd(&self, x: &CudaStorage, xl: &Layout) -> Result<(CudaStorage, Shape)> {
        contiguous(xl, "x")?;
        let dev = x.device().clone();
        let name = format!("fp8_quantize_{}", suffix(x.dtype())?);
        let f = dev.get_or_load_custom_func(&name, MODULE, PTX)?;
        let n = xl.shape().elem_count();
        let (out, po) = alloc(&dev, DType::F8E4M3, n)?;
        let px = addr_any(x, xl)?;
        let (n64, s) = (n as i64, self.input_scale);
        let mut l = f.builder();
        l.arg(&px).arg(&po).arg(&n64).arg(&s);
        unsafe { l.launch(grid(n)) }.w()?;
        Ok((out, xl.shape().clone()))
    }
}

/// In-place `dst = cast(f32(src) · scale + 0)` for an `F8E4M3` source: the weight-only FP8
/// dequantization into the reused scratch buffer (ltx2-model's `Dequantize::cuda_fwd`).
pub fn fp8_dequantize_into(
    dst: &mut CudaStorage,
    dl: &Layout,
    src: &CudaStorage,
    sl: &Layout,
    scale: f32,
) -> Result<()> {
    contiguous(dl, "dst")?;
    contiguous(sl, "src")?;
    let n = sl.shape().elem_count();
    if dl.shape().elem_count() != n || src.dtype() != DType::F8E4M3 {
        candle_core::bail!("fp8-dequantize: an F8E4M3 source of the destination's size expected");
    }
    let dev = src.device().clone();
    let name = format!("fp8_dequantize_{}", suffix(dst.dtype())?);
    let f = dev.get_or_load_custom_func(&name, MODULE, PTX)?;
    let (pd, ps) = (addr_any(dst, dl)?, addr_any(src, sl)?);
    let n64 = n as i64;
    let mut l = f.builder();
    l.arg(&ps).arg(&pd).arg(&n64).arg(&scale);
    unsafe { l.launch(grid(n)) }.w()?;
    Ok(())
}

/// [`RmsNormModulate`] on tensors.
pub fn rms_norm_modulate(x: &Tensor, scale: &Tensor, shift: &Tensor, eps: f32) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3_no_bwd(scale, shift, &RmsNormModulate { eps })
}

/// [`GateResidual`] on tensors.
pub fn gate_residual(x: &Tensor, y: &Tensor, gate: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3_no_bwd(&y.contiguous()?, gate, &GateResidual)
}

/// [`RopeSplit`] on tensors.
pub fn rope_split(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3_no_bwd(&cos.contiguous()?, &sin.contiguous()?, &RopeSplit)
}

/// [`Fp8Quantize`] on a tensor.
pub fn fp8_quantize(x: &Tensor, input_scale: f32) -> Result<Tensor> {
    x.contiguous()?
        .apply_op1_no_bwd(&Fp8Quantize { input_scale })
}
