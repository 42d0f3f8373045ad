//! 3-D neighbourhood attention with NATTEN's windows (`natten.na3d`, non-causal, dilation 1), as
//! ltx-core's eager tiled-SDPA fallback (`fallback_na/eager.py`) computes it: along each axis the
//! kernel is clipped to the axis length and every query attends to the `k` keys starting at
//! `clamp(i - k/2, 0, len - k)`: centred inside, shifted inwards at the borders (not clipped),
//! so every query sees exactly `k_t·k_h·k_w` keys.
//!
//! How: the queries are cut into boxes (`1 × k_h × k_w` by default); a box attends densely to the
//! union of its queries' windows with a mask that hides the keys outside each query's own window,
//! which gives the exact windowed softmax. Boxes whose window geometry is the same (all interior
//! ones) share the mask and run as one batched matmul; their queries and keys are gathered with
//! one `index_select` each and the outputs put back in place with one more.

use std::collections::BTreeMap;

use candle_core::{Device, Result, Tensor};

/// Upper bound on the score elements of one batched matmul (`boxes · heads · N_q · N_k`).
const SCORE_BUDGET: usize = 1 << 25;

/// The six dims of a `(B, T, H, W, heads, head_dim)` tensor.
pub fn dims6(x: &Tensor) -> Result<[usize; 6]> {
    x.dims()
        .try_into()
        .map_err(|_| candle_core::Error::Msg(format!("expected 6 dims, got {:?}", x.dims())))
}

/// Window starts along one axis and the effective kernel (`min(k, len)`).
pub fn window_starts(len: usize, kernel: usize) -> (usize, Vec<usize>) {
    let k = kernel.min(len).max(1);
    let last = len - k;
    let half = k / 2;
    let starts = (0..len).map(|i| i.saturating_sub(half).min(last)).collect();
    (k, starts)
}

/// One query range along one axis and the key range its windows cover.
#[derive(Debug, Clone)]
struct AxisBox {
    queries: std::ops::Range<usize>,
    keys: std::ops::Range<usize>,
}

/// The boxes of one axis, with a class per box: boxes of a class have the same length and the
/// same window offsets relative to their key range, so they share one mask.
struct AxisSplit {
    boxes: Vec<AxisBox>,
    classes: Vec<usize>,
    /// Per class: each query's window relative to the box's key range.
    class_windows: Vec<Vec<(usize, usize)>>,
}

fn axis_boxes(len: usize, kernel: usize, box_len: usize) -> AxisSplit {
    let (k, starts) = window_starts(len, kernel);
    let box_len = box_len.clamp(1, len);
    let mut boxes = Vec::new();
    let mut classes = Vec::new();
    let mut class_windows: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut q0 = 0;
    while q0 < len {
        let q1 = (q0 + box_len).min(len);
        let k0 = starts[q0];
        let k1 = starts[q1 - 1] + k;
        let rel: Vec<(usize, usize)> = (q0..q1)
            .map(|i| (starts[i] - k0, starts[i] - k0 + k))
            .collect();
        let class = match class_windows.iter().position(|c| *c == rel) {
            Some(c) => c,
            None => {
                class_windows.push(rel);
                class_windows.len() - 1
            }
        };
        boxes.push(AxisBox {
            queries: q0..q1,
            keys: k0..k1,
        });
        classes.push(class);
        q0 = q1;
    }
    AxisSplit {
        boxes,
        classes,
        class_windows,
    }
}

/// The additive `(N_q, N_k)` mask of one box class: 0 inside a query's window, −∞ outside.
fn class_mask(windows: [&[(usize, usize)]; 3], dev: &Device) -> Result<Tensor> {
    let key_len = |w: &[(usize, usize)]| w.iter().map(|&(_, e)| e).max().unwrap_or(0);
    let (kt, kh, kw) = (
        key_len(windows[0]),
        key_len(windows[1]),
        key_len(windows[2]),
    );
    let nq = windows[0].len() * windows[1].len() * windows[2].len();
    let nk = kt * kh * kw;
    let mut mask = Vec::with_capacity(nq * nk);
    for &(t0, t1) in windows[0] {
        for &(h0, h1) in windows[1] {
            for &(w0, w1) in windows[2] {
                for t in 0..kt {
                    for h in 0..kh {
                        for w in 0..kw {
                            let inside = (t0..t1).contains(&t)
                                && (h0..h1).contains(&h)
                                && (w0..w1).contains(&w);
                            mask.push(if inside { 0f32 } else { f32::NEG_INFINITY });
                        }
                    }
                }
            }
        }
    }
    Tensor::from_vec(mask, (1, 1, nq, nk), dev)
}

/// Flat token indices (`(t·H + h)·W + w`) of a box, row-major.
fn box_indices(
    t: &std::ops::Range<usize>,
    h: &std::ops::Range<usize>,
    w: &std::ops::Range<usize>,
    dims: [usize; 3],
    out: &mut Vec<u32>,
) {
    for ti in t.clone() {
        for hi in h.clone() {
            for wi in w.clone() {
                out.push(((ti * dims[1] + hi) * dims[2] + wi) as u32);
            }
        }
    }
}

/// Neighbourhood attention of `q, k, v (B, T, H, W, heads, head_dim)` (`q` already scaled) with
/// `kernel (k_t, k_h, k_w)`; returns `(B, T, H, W, heads·head_dim)` in `v`'s dtype.
pub fn neighborhood_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    kernel: [usize; 3],
) -> Result<Tensor> {
    let [b, t, h, w, nh, hd] = dims6(q)?;
    if k.dims() != q.dims() || v.dims() != q.dims() {
        candle_core::bail!(
            "neighbourhood attention: q {:?}, k {:?}, v {:?} differ",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    let dims = [t, h, w];
    let n = t * h * w;
    let dev = q.device();
    let dtype = v.dtype();
    let per_axis: Vec<_> = (0..3)
        .map(|a| {
            let box_len = if a == 0 { 1 } else { kernel[a] };
            axis_boxes(dims[a], kernel[a], box_len)
        })
        .collect();
    // Boxes grouped by their (t, h, w) class triple.
    let mut groups: BTreeMap<[usize; 3], Vec<[usize; 3]>> = BTreeMap::new();
    for (it, &ct) in per_axis[0].classes.iter().enumerate() {
        for (ih, &ch) in per_axis[1].classes.iter().enumerate() {
            for (iw, &cw) in per_axis[2].classes.iter().enumerate() {
                groups.entry([ct, ch, cw]).or_default().push([it, ih, iw]);
            }
        }
    }
    let flat = |x: &Tensor| x.to_dtype(dtype)?.reshape((b, n, nh, hd));
    let (qf, kf, vf) = (flat(q)?, flat(k)?, flat(v)?);
    let mut outputs = Vec::new();
    let mut order: Vec<u32> = Vec::with_capacity(n);
    for (class, members) in &groups {
        let windows = [0, 1, 2].map(|a| &per_axis[a].class_windows[class[a]][..]);
        let mask = class_mask(windows, dev)?.to_dtype(dtype)?;
        let (nq, nk) = (mask.dim(2)?, mask.dim(3)?);
        let per_box = b * nh * nq * nk;
        let chunk = (SCORE_BUDGET / per_box.max(1)).max(1);
        for part in members.chunks(chunk) {
            let g = part.len();
            let (mut qi, mut ki) = (Vec::with_capacity(g * nq), Vec::with_capacity(g * nk));
            for &[it, ih, iw] in part {
                let (bt, bh, bw) = (
                    &per_axis[0].boxes[it],
                    &per_axis[1].boxes[ih],
                    &per_axis[2].boxes[iw],
                );
                box_indices(&bt.queries, &bh.queries, &bw.queries, dims, &mut qi);
                box_indices(&bt.keys, &bh.keys, &bw.keys, dims, &mut ki);
            }
            order.extend_from_slice(&qi);
            let qi = Tensor::from_vec(qi, g * nq, dev)?;
            let ki = Tensor::from_vec(ki, g * nk, dev)?;
            // (B, g·N, heads, hd) -> (B·g, heads, N, hd)
            let gather = |x: &Tensor, idx: &Tensor, len: usize| -> Result<Tensor> {
                x.index_select(idx, 1)?
                    .reshape((b, g, len, nh, hd))?
                    .permute((0, 1, 3, 2, 4))?
                    .reshape((b * g, nh, len, hd))
            };
            let qs = gather(&qf, &qi, nq)?;
            let ks = gather(&kf, &ki, nk)?;
            let vs = gather(&vf, &ki, nk)?;
            let scores = qs
                .matmul(&ks.transpose(2, 3)?.contiguous()?)?
                .broadcast_add(&mask)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let o = probs.matmul(&vs)?; // (B·g, heads, N_q, hd)
            outputs.push(
                o.reshape((b, g, nh, nq, hd))?
                    .permute((0, 1, 3, 2, 4))?
                    .reshape((b, g * nq, nh * hd))?,
            );
        }
    }
    // `order[j]` is the token of output row j; invert it to put the rows back in token order.
    let mut inverse = vec![0u32; n];
    for (row, &token) in order.iter().enumerate() {
        inverse[token as usize] = row as u32;
    }
    let inverse = Tensor::from_vec(inverse, n, dev)?;
    Tensor::cat(&outputs, 1)?
        .index_select(&inverse, 1)?
        .reshape((b, t, h, w, nh * hd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_shift_inwards_at_the_borders() {
        assert_eq!(window_starts(6, 3), (3, vec![0, 0, 1, 2, 3, 3]));
        assert_eq!(window_starts(7, 5), (5, vec![0, 0, 0, 1, 2, 2, 2]));
        // A kernel longer than the axis is clipped to it.
        assert_eq!(window_starts(2, 3), (2, vec![0, 0]));
    }

    /// Brute force: every query's softmax over exactly its window.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, kernel: [usize; 3]) -> Result<Tensor> {
        let [_, t, h, w, nh, hd] = dims6(q)?;
        let (q, k, v) = (q.squeeze(0)?, k.squeeze(0)?, v.squeeze(0)?);
        let st = [
            window_starts(t, kernel[0]),
            window_starts(h, kernel[1]),
            window_starts(w, kernel[2]),
        ];
        let mut rows = Vec::new();
        for ti in 0..t {
            for hi in 0..h {
                for wi in 0..w {
                    let sl = |x: &Tensor| -> Result<Tensor> {
                        x.narrow(0, st[0].1[ti], st[0].0)?
                            .narrow(1, st[1].1[hi], st[1].0)?
                            .narrow(2, st[2].1[wi], st[2].0)?
                            .reshape(((), nh, hd))?
                            .transpose(0, 1)?
                            .contiguous()
                    };
                    let (kw, vw) = (sl(&k)?, sl(&v)?);
                    let qq = q.get(ti)?.get(hi)?.get(wi)?.unsqueeze(1)?; // (nh, 1, hd)
                    let p = candle_nn::ops::softmax_last_dim(&qq.matmul(&kw.transpose(1, 2)?)?)?;
                    rows.push(p.matmul(&vw)?.reshape(nh * hd)?);
                }
            }
        }
        Tensor::stack(&rows, 0)?.reshape((1, t, h, w, nh * hd))
    }

    #[test]
    fn equals_the_brute_force_window_softmax() -> Result<()> {
        let dev = Device::Cpu;
        for (dims, kernel) in [
            ([4, 9, 7], [3, 5, 5]),
            ([2, 3, 11], [3, 7, 7]),
            ([5, 8, 8], [3, 3, 3]),
        ] {
            let shape = (1, dims[0], dims[1], dims[2], 2, 8);
            let q = Tensor::randn(0f32, 1., shape, &dev)?;
            let k = Tensor::randn(0f32, 1., shape, &dev)?;
            let v = Tensor::randn(0f32, 1., shape, &dev)?;
            let ours = neighborhood_attention(&q, &k, &v, kernel)?;
            let want = reference(&q, &k, &v, kernel)?;
            let diff = (ours - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "{dims:?} {kernel:?}: {diff}");
        }
        Ok(())
    }
}
