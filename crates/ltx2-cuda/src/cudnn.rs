//! cuDNN through the cudnn-frontend shim (`csrc/cudnn_shim.cpp`): fused scaled dot-product
//! attention and channels-last N-d convolution + bias, with plans cached per shape in the shim.
//!
//! libcudnn is loaded with dlopen on first use ([`init`]): `$LTX2_CUDNN_LIB` if set, else the
//! soname `libcudnn.so.9` through the loader's path. `LTX2_CUDNN=0` turns cuDNN off. Every
//! failure is an `Err` the caller turns into its candle fallback; nothing here aborts.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::DevicePtr;
use candle_core::{
    CudaDevice, CudaStorage, CustomOp3, DType, Layout, Result, Shape, Storage, Tensor,
};

use crate::kernels::{addr_any, alloc};

#[cfg(not(ltx2_no_cudnn))]
extern "C" {
    fn ltx_cudnn_init(path: *const c_char, err: *mut c_char, err_len: usize) -> c_int;
    fn ltx_cudnn_sdpa(
        stream: *mut c_void,
        dtype: c_int,
        b: i64,
        h: i64,
        s_q: i64,
        s_kv: i64,
        d: i64,
        scale: f32,
        q: *const c_void,
        k: *const c_void,
        v: *const c_void,
        bias: *const c_void,
        bias_b: i64,
        o: *mut c_void,
        ws: *mut c_void,
        ws_len: usize,
        ws_needed: *mut usize,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn ltx_cudnn_conv_bias(
        stream: *mut c_void,
        dtype: c_int,
        nd: c_int,
        x_dims: *const i64,
        w_dims: *const i64,
        pad: *const i64,
        x: *const c_void,
        w: *const c_void,
        bias: *const c_void,
        y: *mut c_void,
        ws: *mut c_void,
        ws_len: usize,
        ws_needed: *mut usize,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

const NEED_WORKSPACE: c_int = 2;
const ERR_LEN: usize = 1024;

/// Loads libcudnn and creates the handle once per process: the cuDNN version (e.g. 91300), or
/// why cuDNN is unavailable. `dev`'s context is made current first (cuDNN binds to it).
pub fn init(dev: &CudaDevice) -> std::result::Result<u32, String> {
    static STATE: OnceLock<std::result::Result<u32, String>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            if std::env::var("LTX2_CUDNN").as_deref() == Ok("0") {
                return Err("turned off by LTX2_CUDNN=0".into());
            }
            dev.cuda_stream()
                .context()
                .bind_to_thread()
                .map_err(|e| format!("binding the CUDA context: {e}"))?;
            load(std::env::var("LTX2_CUDNN_LIB").ok())
        })
        .clone()
}

#[cfg(ltx2_no_cudnn)]
fn load(_path: Option<String>) -> std::result::Result<u32, String> {
    Err("not compiled in (build without the cudnn-frontend headers)".into())
}

#[cfg(not(ltx2_no_cudnn))]
fn load(path: Option<String>) -> std::result::Result<u32, String> {
    let path = path
        .map(CString::new)
        .transpose()
        .map_err(|e| e.to_string())?;
    let mut err = [0 as c_char; ERR_LEN];
    let p = path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
    let v = unsafe { ltx_cudnn_init(p, err.as_mut_ptr(), ERR_LEN) };
    if v > 0 {
        Ok(v as u32)
    } else {
        Err(message(&err))
    }
}

fn message(err: &[c_char]) -> String {
    unsafe { CStr::from_ptr(err.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn dtype_code(dtype: DType) -> Result<c_int> {
    Ok(match dtype {
        DType::F32 => 0,
        DType::BF16 => 1,
        DType::F16 => 2,
        other => candle_core::bail!("cuDNN: unsupported dtype {other:?}"),
    })
}

/// Calls `f(ws, ws_len, ws_needed)` once with no workspace and, when the plan asks for one, again
/// with a fresh device buffer of that size (freed in stream order afterwards).
fn with_workspace(
    dev: &CudaDevice,
    mut f: impl FnMut(*mut c_void, usize, &mut usize, *mut c_char) -> c_int,
) -> Result<()> {
    let mut err = [0 as c_char; ERR_LEN];
    let mut need = 0usize;
    let mut rc = f(std::ptr::null_mut(), 0, &mut need, err.as_mut_ptr());
    if rc == NEED_WORKSPACE {
        let ws = unsafe { dev.alloc::<u8>(need)? };
        let (p, _g) = ws.device_ptr(ws.stream());
        rc = f(p as *mut c_void, need, &mut need, err.as_mut_ptr());
    }
    if rc != 0 {
        candle_core::bail!("cuDNN: {}", message(&err));
    }
    Ok(())
}

fn stream_of(dev: &CudaDevice) -> *mut c_void {
    dev.cuda_stream().cu_stream() as *mut c_void
}

/// `softmax(q·kᵀ·scale + mask)·v` over `heads` heads: q `(B, T, H·D)`, k/v `(B, S, H·D)`, bf16 or
/// f16; `mask` additive, `(B|1, 1, T, S)` contiguous in q's dtype. Returns `(B, T, H·D)`.
pub struct Sdpa {
    pub heads: usize,
    pub scale: f32,
    pub mask: Option<Tensor>,
}

impl CustomOp3 for Sdpa {
    fn name(&self) -> &'static str {
        "cudnn-sdpa"
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
        candle_core::bail!("cudnn-sdpa: CUDA only (the CPU path is the chunked attention)")
    }

    fn cuda_fwd(
        &self,
        q: &CudaStorage,
        ql: &Layout,
        k: &CudaStorage,
        kl: &Layout,
        v: &CudaStorage,
        vl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        for (l, n) in [(ql, "q"), (kl, "k"), (vl, "v")] {
            if !l.is_contiguous() || l.dims().len() != 3 {
                candle_core::bail!("cudnn-sdpa: {n} must be a contiguous (B, L, H·D)");
            }
        }
        let (qd, kd) = (ql.dims(), kl.dims());
        let (b, t, inner) = (qd[0], qd[1], qd[2]);
        let s = kd[1];
        if kd[0] != b || kd[2] != inner || vl.dims() != kd || !inner.is_multiple_of(self.heads) {
            candle_core::bail!(
                "cudnn-sdpa: q {qd:?} / k {kd:?} / v {:?} mismatch",
                vl.dims()
            );
        }
        let dtype = q.dtype();
        if dtype == DType::F32 || k.dtype() != dtype || v.dtype() != dtype {
            candle_core::bail!("cudnn-sdpa: bf16 or f16 q/k/v of one dtype, got {dtype:?}");
        }
        let d = inner / self.heads;
        let dev = q.device().clone();
        let (pq, pk, pv) = (addr_any(q, ql)?, addr_any(k, kl)?, addr_any(v, vl)?);
        let mask_guard = self.mask.as_ref().map(|m| m.storage_and_layout());
        let (pm, mask_b) = match &mask_guard {
            None => (0u64, 0i64),
            Some((st, ml)) => {
                let Storage::Cuda(cs) = &**st else {
                    candle_core::bail!("cudnn-sdpa: the mask is not on the GPU");
                };
                let md = ml.dims();
                let ok = ml.is_contiguous()
                    && md.len() == 4
                    && (md[0] == 1 || md[0] == b)
                    && md[1] == 1
                    && md[2] == t
                    && md[3] == s
                    && cs.dtype() == dtype;
                if !ok {
                    candle_core::bail!(
                        "cudnn-sdpa: mask {md:?} is not a contiguous (B|1, 1, T, S)"
                    );
                }
                (addr_any(cs, ml)?, md[0] as i64)
            }
        };
        let (out, po) = alloc(&dev, dtype, b * t * inner)?;
        let code = dtype_code(dtype)?;
        let stream = stream_of(&dev);
        #[cfg(ltx2_no_cudnn)]
        {
            let _ = (pq, pk, pv, pm, mask_b, po, code, stream, s, d);
            candle_core::bail!("cudnn-sdpa: not compiled in");
        }
        #[cfg(not(ltx2_no_cudnn))]
        with_workspace(&dev, |ws, len, need, err| unsafe {
            ltx_cudnn_sdpa(
                stream,
                code,
                b as i64,
                self.heads as i64,
                t as i64,
                s as i64,
                d as i64,
                self.scale,
                pq as *const c_void,
                pk as *const c_void,
                pv as *const c_void,
                pm as *const c_void,
                mask_b,
                po as *mut c_void,
                ws,
                len,
                need,
                err,
                ERR_LEN,
            )
        })?;
        drop(mask_guard);
        Ok((out, ql.shape().clone()))
    }
}

/// [`Sdpa`] on tensors (q, k, v made contiguous).
pub fn sdpa(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let d = q.dim(2)? / heads.max(1);
    let op = Sdpa {
        heads,
        scale: 1.0 / (d as f32).sqrt(),
        mask: mask.cloned(),
    };
    q.contiguous()?
        .apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &op)
}

/// Valid-or-zero-padded cross-correlation, stride and dilation 1, channels-last: x
/// `(N, spatial…, C)`, w `(K, kernel…, C)`, bias f32 `(K)`; returns `(N, out…, K)` in x's dtype.
pub struct ConvBias {
    /// Zero padding on both sides of each spatial dim.
    pub pad: Vec<usize>,
}

impl CustomOp3 for ConvBias {
    fn name(&self) -> &'static str {
        "cudnn-conv-bias"
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
        candle_core::bail!("cudnn-conv-bias: CUDA only (the CPU path is candle's conv)")
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        w: &CudaStorage,
        wl: &Layout,
        bias: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (xd, wd) = (xl.dims(), wl.dims());
        let nd = xd.len().saturating_sub(2);
        if !xl.is_contiguous() || !wl.is_contiguous() || !bl.is_contiguous() {
            candle_core::bail!("cudnn-conv-bias: contiguous operands expected");
        }
        if !(1..=3).contains(&nd) || wd.len() != xd.len() || self.pad.len() != nd {
            candle_core::bail!("cudnn-conv-bias: x {xd:?} / w {wd:?} / pad {:?}", self.pad);
        }
        let (c, k) = (xd[xd.len() - 1], wd[0]);
        if wd[wd.len() - 1] != c || bl.dims() != [k] || bias.dtype() != DType::F32 {
            candle_core::bail!("cudnn-conv-bias: channels of x {xd:?}, w {wd:?}, bias");
        }
        if w.dtype() != x.dtype() {
            candle_core::bail!("cudnn-conv-bias: x and w of one dtype");
        }
        // Logical (N, C, spatial…) as the shim takes them.
        let logical = |dims: &[usize]| -> Vec<i64> {
            let mut v = vec![dims[0] as i64, dims[dims.len() - 1] as i64];
            v.extend(dims[1..dims.len() - 1].iter().map(|&d| d as i64));
            v
        };
        let (xv, wv) = (logical(xd), logical(wd));
        let pad: Vec<i64> = self.pad.iter().map(|&p| p as i64).collect();
        let mut out_dims = vec![xd[0]];
        for i in 0..nd {
            let o = (xd[1 + i] + 2 * self.pad[i]).checked_sub(wd[1 + i] - 1);
            match o {
                Some(o) if o > 0 => out_dims.push(o),
                _ => candle_core::bail!("cudnn-conv-bias: kernel larger than the padded input"),
            }
        }
        out_dims.push(k);
        let dev = x.device().clone();
        let (out, py) = alloc(&dev, x.dtype(), out_dims.iter().product())?;
        let (px, pw, pb) = (addr_any(x, xl)?, addr_any(w, wl)?, addr_any(bias, bl)?);
        let code = dtype_code(x.dtype())?;
        let stream = stream_of(&dev);
        #[cfg(ltx2_no_cudnn)]
        {
            let _ = (xv, wv, pad, px, pw, pb, py, code, stream);
            candle_core::bail!("cudnn-conv-bias: not compiled in");
        }
        #[cfg(not(ltx2_no_cudnn))]
        with_workspace(&dev, |ws, len, need, err| unsafe {
            ltx_cudnn_conv_bias(
                stream,
                code,
                nd as c_int,
                xv.as_ptr(),
                wv.as_ptr(),
                pad.as_ptr(),
                px as *const c_void,
                pw as *const c_void,
                pb as *const c_void,
                py as *mut c_void,
                ws,
                len,
                need,
                err,
                ERR_LEN,
            )
        })?;
        Ok((out, Shape::from(out_dims)))
    }
}

/// [`ConvBias`] on tensors.
pub fn conv_bias_channels_last(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    pad: &[usize],
) -> Result<Tensor> {
    x.contiguous()?.apply_op3_no_bwd(
        &w.contiguous()?,
        &bias.to_dtype(DType::F32)?.contiguous()?,
        &ConvBias { pad: pad.to_vec() },
    )
}
