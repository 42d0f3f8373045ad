//! CPU f32 kernels of the video VAE's parameter-free ops (`ops.rs` calls them for contiguous
//! f32 CPU tensors and keeps candle's op chains for every other device and dtype). Each is one
//! pass over its input where the op chain makes several full-size passes or an element-wise
//! strided gather, which at the decoder's full resolution cost as much as the convolutions.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
use rayon::prelude::*;

pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&s.as_slice::<f32>()?[start..end]),
        None => candle_core::bail!("{what} cpu: input must be contiguous"),
    }
}

/// An output buffer that the kernels fill completely before it is read: not zeroed first
/// (zeroing is one more full-size pass, and a recycled heap block is zeroed by `calloc`).
pub(crate) struct UninitF32(Vec<MaybeUninit<f32>>);

impl UninitF32 {
    pub fn new(n: usize) -> Self {
        let mut v = Vec::with_capacity(n);
        // SAFETY: `MaybeUninit` needs no initialisation.
        unsafe { v.set_len(n) };
        Self(v)
    }

    pub fn ptr(&mut self) -> SharedPtr {
        SharedPtr(self.0.as_mut_ptr().cast())
    }

    /// # Safety
    /// Every element must have been written.
    pub unsafe fn assume_init(self) -> Vec<f32> {
        let mut v = std::mem::ManuallyDrop::new(self.0);
        Vec::from_raw_parts(v.as_mut_ptr().cast(), v.len(), v.capacity())
    }
}

/// A raw output pointer shared by parallel work items that write disjoint elements.
#[derive(Clone, Copy)]
pub(crate) struct SharedPtr(*mut f32);
// SAFETY: users write disjoint elements from each work item, and the buffer outlives the loop.
unsafe impl Send for SharedPtr {}
unsafe impl Sync for SharedPtr {}

impl SharedPtr {
    /// A method, so that closures capture the whole `Sync` wrapper rather than its raw field.
    pub fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }

    /// # Safety
    /// `offset..offset + n` must lie in the buffer and be written by this work item only.
    pub unsafe fn slice(self, offset: usize, n: usize) -> &'static mut [MaybeUninit<f32>] {
        std::slice::from_raw_parts_mut(self.at(offset).cast(), n)
    }
}

/// Whether the AVX2 + FMA builds of the loops below can run. The crate targets baseline x86-64,
/// where these loops compile to SSE2 (and libm's scalar `expf`); built for AVX2 they run 2-4x
/// faster. The arithmetic is the same: Rust never fuses a multiply and an add on its own.
#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// `exp(x)` as Cephes' `expf` polynomial (relative error below 2e-7) that the compiler can
/// vectorize, unlike libm's. `x` is clamped to [−87, 88], where `2^n` is a normal float; the
/// SiLU below only needs `exp` to saturate beyond that.
#[inline(always)]
pub(crate) fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that `x − n·ln 2` stays exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Cephes' last coefficient, 5.0000001e-1, is 0.5 in f32.
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * (r * r) + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// [`super::ops::pixel_norm_silu`] over dim 1 of a contiguous f32 CPU tensor, with candle's
/// arithmetic for the norm (`sum(x²)·(1/C) + eps`, `sqrt`, divide) and `v / (1 + exp(−v))` with
/// [`exp_approx`] for the SiLU.
pub(crate) struct PixelNormSiluCpu {
    pub eps: f64,
}

/// Positions per work item: the per-position sums stay in L1 while the channels stream by.
const PIXEL_NORM_CHUNK: usize = 1024;

/// One work item of [`PixelNormSiluCpu`]: `n` positions from `j0` of batch `bi`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pixel_norm_silu_item(
    x: &[f32],
    out: SharedPtr,
    c: usize,
    inner: usize,
    bi: usize,
    j0: usize,
    n: usize,
    inv_c: f32,
    eps: f32,
) {
    let at = |ci: usize| (bi * c + ci) * inner + j0;
    let mut scale = [0f32; PIXEL_NORM_CHUNK];
    let scale = &mut scale[..n];
    for ci in 0..c {
        for (acc, &v) in scale.iter_mut().zip(&x[at(ci)..at(ci) + n]) {
            *acc += v * v;
        }
    }
    for r in scale.iter_mut() {
        *r = (*r * inv_c + eps).sqrt();
    }
    for ci in 0..c {
        // SAFETY: elements `at(ci)..at(ci) + n` belong to this item only; the buffer outlives
        // the loop.
        let o = unsafe { out.slice(at(ci), n) };
        for ((o, &v), &r) in o.iter_mut().zip(&x[at(ci)..at(ci) + n]).zip(scale.iter()) {
            let y = v / r;
            o.write(y / (1.0 + exp_approx(-y)));
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn pixel_norm_silu_item_avx2(
    x: &[f32],
    out: SharedPtr,
    c: usize,
    inner: usize,
    bi: usize,
    j0: usize,
    n: usize,
    inv_c: f32,
    eps: f32,
) {
    pixel_norm_silu_item(x, out, c, inner, bi, j0, n, inv_c, eps)
}

impl CustomOp1 for PixelNormSiluCpu {
    fn name(&self) -> &'static str {
        "ltx2-pixel-norm-silu-cpu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "pixel_norm_silu")?;
        let dims = l.dims();
        let (b, c) = (dims[0], dims[1]);
        let inner: usize = dims[2..].iter().product();
        let inv_c = (1.0 / c as f64) as f32;
        let eps = self.eps as f32;
        let chunks = inner.div_ceil(PIXEL_NORM_CHUNK);
        let mut out = UninitF32::new(x.len());
        let dst = out.ptr();
        #[cfg(target_arch = "x86_64")]
        let avx2 = has_avx2_fma();
        (0..b * chunks).into_par_iter().for_each(|item| {
            let (bi, j0) = (item / chunks, item % chunks * PIXEL_NORM_CHUNK);
            let n = PIXEL_NORM_CHUNK.min(inner - j0);
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU has AVX2 and FMA.
                return unsafe {
                    pixel_norm_silu_item_avx2(x, dst, c, inner, bi, j0, n, inv_c, eps)
                };
            }
            pixel_norm_silu_item(x, dst, c, inner, bi, j0, n, inv_c, eps)
        });
        // SAFETY: the items cover every (bi, position) and write all channels.
        let out = unsafe { out.assume_init() };
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// `(B, C·P, D, H, W) → (B, C, D·p1 − drop, H·p2, W·p3)` with `P = p1·p2·p3`: output element
/// `(c, d·p1 + a, h·p2 + b, w·p3 + e)` is input channel `c·P + a·coef[0] + b·coef[1] +
/// e·coef[2]` at `(d, h, w)`; the first `drop` output frames are left out. With `coef = (p2·p3,
/// p3, 1)` this is `depth_to_space`, with `p = (1, p, p)`, `coef = (0, 1, p)` `unpatchify`.
pub(crate) struct ChannelsToSpaceCpu {
    pub p: [usize; 3],
    pub coef: [usize; 3],
    pub drop: usize,
}

/// Largest width stride [`ChannelsToSpaceCpu`] takes (the VAE's are 1, 2 and 4).
pub(crate) const MAX_INTERLEAVE: usize = 8;

/// `dst[w·P + e] = src[e][w]`, with `P` known to the compiler so that it becomes vector shuffles.
#[inline(always)]
fn interleave<const P: usize>(dst: &mut [MaybeUninit<f32>], src: [&[f32]; P]) {
    let w = dst.len() / P;
    let src = src.map(|s| &s[..w]);
    for (i, o) in dst.chunks_exact_mut(P).enumerate() {
        for e in 0..P {
            o[e].write(src[e][i]);
        }
    }
}

/// One output row of [`ChannelsToSpaceCpu`] from its `p3` source rows.
#[inline(always)]
fn interleave_row(dst: &mut [MaybeUninit<f32>], src: &[&[f32]]) {
    match *src {
        [a] => interleave(dst, [a]),
        [a, b] => interleave(dst, [a, b]),
        [a, b, c, d] => interleave(dst, [a, b, c, d]),
        _ => {
            let p = src.len();
            for (e, s) in src.iter().enumerate() {
                for (o, &v) in dst[e..].iter_mut().step_by(p).zip(s.iter()) {
                    o.write(v);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn interleave_row_avx2(dst: &mut [MaybeUninit<f32>], src: &[&[f32]]) {
    interleave_row(dst, src)
}

impl CustomOp1 for ChannelsToSpaceCpu {
    fn name(&self) -> &'static str {
        "ltx2-channels-to-space-cpu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "channels_to_space")?;
        let (b, cp, d, h, w) = l.shape().dims5()?;
        let [p1, p2, p3] = self.p;
        let prod = p1 * p2 * p3;
        if prod == 0 || cp % prod != 0 || self.drop > d * p1 || p3 > MAX_INTERLEAVE {
            candle_core::bail!("channels_to_space: {:?} by {:?}", l.shape(), self.p);
        }
        let c = cp / prod;
        let (dd, hh, ww) = (d * p1 - self.drop, h * p2, w * p3);
        let mut out = UninitF32::new(b * c * dd * hh * ww);
        let plane = d * h * w;
        #[cfg(target_arch = "x86_64")]
        let avx2 = has_avx2_fma();
        // One output row (bc, t, y) per item: p3 input rows interleaved.
        out.0.par_chunks_mut(ww).enumerate().for_each(|(row, dst)| {
            let y = row % hh;
            let t = row / hh % dd + self.drop;
            let bc = row / (hh * dd);
            let (bi, ci) = (bc / c, bc % c);
            let (di, a) = (t / p1, t % p1);
            let (hi, bb) = (y / p2, y % p2);
            let mut src = [&x[..0]; MAX_INTERLEAVE];
            let src = &mut src[..p3];
            for (e, s) in src.iter_mut().enumerate() {
                let ch = ci * prod + a * self.coef[0] + bb * self.coef[1] + e * self.coef[2];
                let at = (bi * cp + ch) * plane + (di * h + hi) * w;
                *s = &x[at..at + w];
            }
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU has AVX2 and FMA.
                return unsafe { interleave_row_avx2(dst, src) };
            }
            interleave_row(dst, src)
        });
        // SAFETY: every row, and in it every offset `e` of every `w`, was written.
        let out = unsafe { out.assume_init() };
        Ok((CpuStorage::F32(out), Shape::from((b, c, dd, hh, ww))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_approx_is_within_a_few_ulp_of_libm() {
        // From exp(−80) ≈ 1.8e−35 (closer to −87 the result is subnormal and loses bits, which
        // the SiLU's `1 + exp(−v)` never sees) to just below the clamp at 88.
        let mut worst = 0f64;
        for i in 0..167_900 {
            let x = -80.0 + i as f32 * 1e-3;
            let (a, e) = (exp_approx(x) as f64, (x as f64).exp());
            worst = worst.max(((a - e) / e).abs());
        }
        assert!(worst < 3e-7, "{worst}");
        // Saturates instead of overflowing, so that the SiLU stays finite.
        assert!(exp_approx(1000.0).is_finite() && exp_approx(-1000.0) >= 0.0);
    }
}
