//! FP8 tensor-core GEMM through cuBLASLt (cudarc's raw `cublaslt::result` API, as candle
//! re-exports it): `y[tokens, out] = alpha · (q[tokens, in] @ w[out, in]ᵀ)`, both operands e4m3,
//! f32 accumulation, output bf16 / f16 / f32.
//!
//! Numerics match ltx-core's scaled-mm (and ltx2-model's CPU emulation): the e4m3 operands are
//! exact, the product accumulates in f32 (FAST_ACCUM off: Hopper's fast FP8 accumulation keeps
//! fewer mantissa bits), and `alpha = input_scale · weight_scale` is one f32 multiply of the f32
//! result before its single rounding to the output dtype. No scale pointers: with alpha on the
//! host the scales need no device memory.
//!
//! Layout: cuBLASLt is column-major and its FP8 kernels want "TN". The row-major weight `[out, in]`
//! is, column-major, `[in, out]` with `ld = in`: passed as A with TRANSA it is `W`. The row-major
//! activations `[tokens, in]` are B `[in, tokens]`, and the column-major `[out, tokens]` result is
//! the row-major `[tokens, out]` candle wants. No copies.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::cublas::sys::cublasOperation_t;
use candle_core::cuda::cudarc::cublaslt::{result, sys};
use candle_core::cuda::cudarc::driver::{CudaSlice, DevicePtr};
use candle_core::{CudaDevice, CudaStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use crate::kernels::{addr_any, alloc};

/// cuBLASLt's recommended workspace for Hopper.
const WORKSPACE: usize = 32 << 20;

struct Lt {
    handle: sys::cublasLtHandle_t,
    workspace: CudaSlice<u8>,
    /// Best algorithm per (m, n, k, output type).
    algos: HashMap<(u64, u64, u64, i32), sys::cublasLtMatmulAlgo_t>,
}

thread_local! {
    /// One cuBLASLt handle and workspace per thread (the engine runs on one); device 0 only,
    /// like the rest of ltx2.
    static LT: RefCell<Option<Lt>> = const { RefCell::new(None) };
}

fn lt_err(what: &str, e: impl std::fmt::Debug) -> candle_core::Error {
    candle_core::Error::Msg(format!("cuBLASLt {what}: {e:?}"))
}

/// Creates this thread's handle (a probe for start-up reports); an error means no FP8 GEMM.
pub fn probe(dev: &CudaDevice) -> Result<()> {
    with_lt(dev, |_| Ok(()))
}

fn with_lt<R>(dev: &CudaDevice, f: impl FnOnce(&mut Lt) -> Result<R>) -> Result<R> {
    LT.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            dev.cuda_stream()
                .context()
                .bind_to_thread()
                .map_err(|e| lt_err("context", e))?;
            let handle = result::create_handle().map_err(|e| lt_err("create", e))?;
            let workspace = dev.alloc_zeros::<u8>(WORKSPACE)?;
            *cell = Some(Lt {
                handle,
                workspace,
                algos: HashMap::new(),
            });
        }
        f(cell.as_mut().expect("initialised above"))
    })
}

/// `alpha · (q @ wᵀ)` for e4m3 `q [tokens, in]` and `w [out, in]`, in `out_dtype`.
pub struct Fp8Gemm {
    pub alpha: f32,
    pub out_dtype: DType,
}

impl CustomOp2 for Fp8Gemm {
    fn name(&self) -> &'static str {
        "cublaslt-fp8-gemm"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        candle_core::bail!("cublaslt-fp8-gemm: CUDA only (the CPU path is the f32 emulation)")
    }

    fn cuda_fwd(
        &self,
        q: &CudaStorage,
        ql: &Layout,
        w: &CudaStorage,
        wl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (qd, wd) = (ql.dims(), wl.dims());
        if !ql.is_contiguous() || !wl.is_contiguous() || qd.len() != 2 || wd.len() != 2 {
            candle_core::bail!("fp8 gemm: contiguous 2-d operands expected");
        }
        if q.dtype() != DType::F8E4M3 || w.dtype() != DType::F8E4M3 {
            candle_core::bail!("fp8 gemm: e4m3 operands expected");
        }
        let (tokens, k, n) = (qd[0], qd[1], wd[0]);
        if wd[1] != k {
            candle_core::bail!("fp8 gemm: q {qd:?} and w {wd:?} disagree on the inner dim");
        }
        // cuBLASLt FP8: the leading dims and the inner dim must be multiples of 16.
        if !k.is_multiple_of(16) || !n.is_multiple_of(16) {
            candle_core::bail!("fp8 gemm: in {k} and out {n} must be multiples of 16");
        }
        let d_type = match self.out_dtype {
            DType::BF16 => sys::cudaDataType_t::CUDA_R_16BF,
            DType::F16 => sys::cudaDataType_t::CUDA_R_16F,
            DType::F32 => sys::cudaDataType_t::CUDA_R_32F,
            other => candle_core::bail!("fp8 gemm: no {other:?} output"),
        };
        let dev = q.device().clone();
        let (out, pd) = alloc(&dev, self.out_dtype, tokens * n)?;
        let (pq, pw) = (addr_any(q, ql)?, addr_any(w, wl)?);
        let stream = dev.cuda_stream().cu_stream() as sys::cudaStream_t;
        let (m, nn, kk) = (n as u64, tokens as u64, k as u64);
        with_lt(&dev, |lt| unsafe {
            let e4m3 = sys::cudaDataType_t::CUDA_R_8F_E4M3;
            let desc = result::create_matmul_desc(
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                sys::cudaDataType_t::CUDA_R_32F,
            )
            .map_err(|e| lt_err("matmul desc", e))?;
            let set = |attr, v: i32| {
                result::set_matmul_desc_attribute(
                    desc,
                    attr,
                    &v as *const i32 as *const c_void,
                    std::mem::size_of::<i32>(),
                )
            };
            let op_t = cublasOperation_t::CUBLAS_OP_T as i32;
            let op_n = cublasOperation_t::CUBLAS_OP_N as i32;
            use sys::cublasLtMatmulDescAttributes_t as A;
            let attrs = set(A::CUBLASLT_MATMUL_DESC_TRANSA, op_t)
                .and_then(|_| set(A::CUBLASLT_MATMUL_DESC_TRANSB, op_n))
                .and_then(|_| {
                    let fast: i8 = 0;
                    result::set_matmul_desc_attribute(
                        desc,
                        A::CUBLASLT_MATMUL_DESC_FAST_ACCUM,
                        &fast as *const i8 as *const c_void,
                        1,
                    )
                });
            let layouts = (|| {
                Ok::<_, candle_core::Error>((
                    result::create_matrix_layout(e4m3, kk, m, kk as i64)
                        .map_err(|e| lt_err("layout A", e))?,
                    result::create_matrix_layout(e4m3, kk, nn, kk as i64)
                        .map_err(|e| lt_err("layout B", e))?,
                    result::create_matrix_layout(d_type, m, nn, m as i64)
                        .map_err(|e| lt_err("layout D", e))?,
                ))
            })();
            let mut run = |la, lb, ld| -> Result<()> {
                attrs.map_err(|e| lt_err("attributes", e))?;
                let key = (m, nn, kk, d_type as i32);
                let algo = match lt.algos.get(&key) {
                    Some(a) => *a,
                    None => {
                        let pref =
                            result::create_matmul_pref().map_err(|e| lt_err("preference", e))?;
                        let ws = WORKSPACE as u64;
                        let r = result::set_matmul_pref_attribute(
                            pref,
                            sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                            &ws as *const u64 as *const c_void,
                            8,
                        )
                        .and_then(|_| {
                            result::get_matmul_algo_heuristic(lt.handle, desc, la, lb, ld, ld, pref)
                        });
                        let _ = result::destroy_matmul_pref(pref);
                        let algo = r.map_err(|e| lt_err("no algorithm", e))?.algo;
                        lt.algos.insert(key, algo);
                        algo
                    }
                };
                let (alpha, beta) = (self.alpha, 0f32);
                let (pws, _g) = lt.workspace.device_ptr(lt.workspace.stream());
                result::matmul(
                    lt.handle,
                    desc,
                    &alpha as *const f32 as *const c_void,
                    &beta as *const f32 as *const c_void,
                    pw as *const c_void,
                    la,
                    pq as *const c_void,
                    lb,
                    pd as *const c_void,
                    ld,
                    pd as *mut c_void,
                    ld,
                    &algo,
                    pws as *mut c_void,
                    WORKSPACE,
                    stream,
                )
                .map_err(|e| lt_err("matmul", e))
            };
            let outcome = match layouts {
                Ok((la, lb, ld)) => {
                    let r = run(la, lb, ld);
                    let _ = result::destroy_matrix_layout(la);
                    let _ = result::destroy_matrix_layout(lb);
                    let _ = result::destroy_matrix_layout(ld);
                    r
                }
                Err(e) => Err(e),
            };
            let _ = result::destroy_matmul_desc(desc);
            outcome
        })?;
        Ok((out, Shape::from((tokens, n))))
    }
}

/// `alpha · (q @ wᵀ)` on tensors: `q` e4m3 `[tokens, in]`, `w` e4m3 `[out, in]`.
pub fn fp8_gemm(q: &Tensor, w: &Tensor, alpha: f32, out_dtype: DType) -> Result<Tensor> {
    q.contiguous()?
        .apply_op2_no_bwd(&w.contiguous()?, &Fp8Gemm { alpha, out_dtype })
}
