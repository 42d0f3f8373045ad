//! CPU f32 kernel for [`super::conv3d::Conv3d`]: one GEMM per block of output rows over a packed
//! im2col of only that block, written straight into the `(B, C_out, T, H, W)` output.
//!
//! Why not candle's conv2d per time tap: the VAE's full-resolution convs have 4-8 channels over
//! ~500k positions, where a tiled direct conv2d runs far below the FMA rate, and the tap
//! decomposition adds a padded copy, a permute, three partial outputs and their sums, each a
//! full-size pass. Here the padding is resolved while packing (no padded copy), the packed block
//! stays in L2, the GEMM's `K = C_in·k³` covers all taps at once, and blocks are independent, so
//! rayon spreads them over the cores.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape};
use rayon::prelude::*;

use super::conv3d::{SpatialPadding, TemporalPadding};
use super::ops_cpu::{f32_slice, UninitF32};

/// Target number of packed floats per block (`K · rows · W`): a fraction of a core's L2, so the
/// packed block and the GEMM's own packing both stay cached.
const BLOCK_FLOATS: usize = 1 << 17;
/// Fewer output positions per GEMM than this and the call overhead dominates.
const MIN_BLOCK_COLS: usize = 256;

/// `conv3d(x, weight, bias)` with stride 1 and "same" output size, for a contiguous f32 CPU
/// input `x (B, C_in, T, H, W)` and `weight_bias (C_out, C_in·k³ + 1)`: the weight flattened in
/// its checkpoint order with the bias as the last column (a row of ones in the packed block
/// adds it inside the GEMM, so the output is written exactly once).
pub(crate) struct Conv3dCpu {
    pub kernel: usize,
    pub temporal: TemporalPadding,
    pub spatial: SpatialPadding,
    /// Output rows per block (`None`: sized from `BLOCK_FLOATS`); tests force small blocks.
    pub block_rows: Option<usize>,
}

/// Source index of padded position `i` (may be out of `0..n`) on an axis of length `n`, or
/// `None` for a zero.
#[inline]
fn spatial_source(i: isize, n: usize, mode: SpatialPadding) -> Option<usize> {
    let n = n as isize;
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    match mode {
        SpatialPadding::Zeros => None,
        // PyTorch reflect: mirror without repeating the edge (callers checked n > k/2).
        SpatialPadding::Reflect => Some(if i < 0 { -i } else { 2 * (n - 1) - i } as usize),
    }
}

/// Input frame that tap `kt` of output frame `t` reads (see `pad_time` in `conv3d.rs`).
#[inline]
fn temporal_source(
    t: usize,
    kt: usize,
    k: usize,
    n: usize,
    mode: TemporalPadding,
) -> Option<usize> {
    let j = (t + kt) as isize;
    let p = (k / 2) as isize;
    match mode {
        TemporalPadding::Causal => Some((j - (k as isize - 1)).max(0) as usize),
        TemporalPadding::Replicate => Some((j - p).clamp(0, n as isize - 1) as usize),
        TemporalPadding::Zeros => {
            let s = j - p;
            (0..n as isize).contains(&s).then_some(s as usize)
        }
    }
}

/// `dst[w] = src[w + d]` with the axis' padding outside `0..src.len()`.
#[inline]
fn shifted_row(dst: &mut [f32], src: &[f32], d: isize, mode: SpatialPadding) {
    let n = src.len() as isize;
    let lo = (-d).clamp(0, n) as usize;
    let hi = (n - d).clamp(0, n) as usize;
    if lo < hi {
        let s = (lo as isize + d) as usize;
        dst[lo..hi].copy_from_slice(&src[s..s + (hi - lo)]);
    }
    for w in (0..lo).chain(hi..src.len()) {
        dst[w] = match spatial_source(w as isize + d, src.len(), mode) {
            Some(s) => src[s],
            None => 0.0,
        };
    }
}

impl CustomOp2 for Conv3dCpu {
    fn name(&self) -> &'static str {
        "ltx2-conv3d-cpu"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let k = self.kernel;
        let p = k / 2;
        let (b, ci, t, h, w) = xl.shape().dims5()?;
        let (co, kb) = wl.shape().dims2()?;
        let kk = ci * k * k * k;
        if kb != kk + 1 {
            candle_core::bail!(
                "conv3d cpu: input {:?} with k = {k} needs {} weight columns, got {kb}",
                xl.shape(),
                kk + 1
            );
        }
        if self.spatial == SpatialPadding::Reflect && (h <= p || w <= p) {
            candle_core::bail!(
                "reflect padding {p} needs a dimension larger than {p}, got {h}x{w}"
            );
        }
        let x = f32_slice(xs, xl, "input")?;
        let weight_bias = f32_slice(ws, wl, "weight")?;

        let (hw, thw) = (h * w, t * h * w);
        let rows = self
            .block_rows
            .unwrap_or_else(|| (BLOCK_FLOATS / kb).max(MIN_BLOCK_COLS).div_ceil(w))
            .clamp(1, h);
        let blocks_per_frame = h.div_ceil(rows);
        let mut out = UninitF32::new(b * co * thw);
        let out_ptr = out.ptr();

        (0..b * t * blocks_per_frame).into_par_iter().for_each_init(
            Vec::<f32>::new,
            |col, item| {
                let bi = item / (t * blocks_per_frame);
                let ti = item / blocks_per_frame % t;
                let h0 = item % blocks_per_frame * rows;
                let nrows = rows.min(h - h0);
                let n = nrows * w;
                col.resize(kb * n, 0.0);
                // Pack: row (ci, kt, kh, kw) of `col` holds the block's inputs under that tap,
                // the last row the ones that multiply the bias.
                for c in 0..ci {
                    for kt in 0..k {
                        let frame = temporal_source(ti, kt, k, t, self.temporal)
                            .map(|s| &x[((bi * ci + c) * t + s) * hw..][..hw]);
                        for kh in 0..k {
                            for kw in 0..k {
                                let r = ((c * k + kt) * k + kh) * k + kw;
                                let dst = &mut col[r * n..(r + 1) * n];
                                for (i, drow) in dst.chunks_exact_mut(w).enumerate() {
                                    let hh = (h0 + i + kh) as isize - p as isize;
                                    match frame.zip(spatial_source(hh, h, self.spatial)) {
                                        Some((f, sh)) => shifted_row(
                                            drow,
                                            &f[sh * w..(sh + 1) * w],
                                            kw as isize - p as isize,
                                            self.spatial,
                                        ),
                                        None => drow.fill(0.0),
                                    }
                                }
                            }
                        }
                    }
                }
                col[kk * n..].fill(1.0);
                // out[bi, :, ti, h0..h0 + nrows, :] as an (n × C_out) column-major matrix.
                let base = bi * co * thw + ti * hw + h0 * w;
                // SAFETY: the block's elements `base + o·thw + (0..n)` belong to this item only
                // and are all written here (`read_dst` false); `out` outlives the loop.
                unsafe {
                    gemm::gemm(
                        n,
                        co,
                        kb,
                        out_ptr.at(base),
                        thw as isize,
                        1,
                        false,
                        col.as_ptr(),
                        n as isize,
                        1,
                        weight_bias.as_ptr(),
                        kb as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            },
        );
        // SAFETY: the blocks cover every (bi, ti, row) and each writes all C_out channels.
        let out = unsafe { out.assume_init() };
        Ok((CpuStorage::F32(out), Shape::from((b, co, t, h, w))))
    }
}
