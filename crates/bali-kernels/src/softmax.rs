//! Row-wise softmax, log-softmax and log-sum-exp of a `B x K` matrix of logits (one example per
//! row, one class per column), shifted by the row maximum so that logits of any magnitude stay
//! finite: `softmax(z)_k = exp(z_k - m) / sum_j exp(z_j - m)`, `m = max_j z_j`.
//!
//! Vectorized across rows for column-major logits (faer's default layout) and along rows for
//! row-major logits; other layouts use a scalar loop.
//!
//! Rows whose maximum is `+inf` or NaN, and rows whose entries are all `-inf`, have no
//! meaningful softmax: they give NaN there (log-sum-exp gives `+inf`, NaN and `-inf`). Rows
//! with some `-inf` entries and at least one finite entry are fine (those entries get
//! probability 0).

use crate::{simd, Scalar};
use faer::reborrow::ReborrowMut;
use faer::{MatMut, MatRef};
use pulp::Simd;

/// Row shifts `m_b` (the row maximum, or 0 if it is not finite) and sums `sum_k exp(z_bk - m_b)`.
/// When `exp_out` is given (column-major, same shape), it receives `exp(z_bk - m_b)`.
fn shift_and_sum<T: Scalar>(
    logits: MatRef<'_, T>,
    exp_out: Option<MatMut<'_, T>>,
    shift: &mut [T],
    sum: &mut [T],
) {
    let (b, k) = (logits.nrows(), logits.ncols());
    debug_assert!(shift.len() == b && sum.len() == b);
    if b == 0 {
        return;
    }
    if k == 0 {
        shift.fill(T::zero());
        sum.fill(T::zero());
        return;
    }
    if logits.row_stride() == 1 {
        pulp::Arch::new().dispatch(ColMajorStats {
            logits,
            exp_out,
            shift,
            sum,
        });
    } else if logits.col_stride() == 1 {
        pulp::Arch::new().dispatch(RowMajorStats { logits, shift, sum });
        if let Some(mut out) = exp_out {
            for j in 0..k {
                for i in 0..b {
                    out[(i, j)] = (logits[(i, j)] - shift[i]).exp();
                }
            }
        }
    } else {
        for i in 0..b {
            let m = (0..k).fold(T::neg_infinity(), |m, j| m.max(logits[(i, j)]));
            shift[i] = finite_or_zero(m);
            sum[i] = (0..k).fold(T::zero(), |acc, j| acc + (logits[(i, j)] - shift[i]).exp());
        }
        if let Some(mut out) = exp_out {
            for j in 0..k {
                for i in 0..b {
                    out[(i, j)] = (logits[(i, j)] - shift[i]).exp();
                }
            }
        }
    }
}

#[inline]
fn finite_or_zero<T: Scalar>(m: T) -> T {
    if m.is_finite() {
        m
    } else {
        T::zero()
    }
}

/// `exp(d)`, NaN where `d` is NaN.
#[inline(always)]
fn exp_nan<T: Scalar, S: Simd>(s: S, d: T::V<S>) -> T::V<S> {
    simd::keep_nan::<T, S>(s, d, simd::exp::<T, S>(s, d))
}

struct ColMajorStats<'a, 'o, T> {
    logits: MatRef<'a, T>,
    exp_out: Option<MatMut<'o, T>>,
    shift: &'a mut [T],
    sum: &'a mut [T],
}

impl<T: Scalar> pulp::WithSimd for ColMajorStats<'_, '_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let ColMajorStats {
            logits,
            mut exp_out,
            shift,
            sum,
        } = self;
        let col = |j: usize| {
            logits
                .col(j)
                .try_as_col_major()
                .expect("softmax: column-major checked")
                .as_slice()
        };
        shift.copy_from_slice(col(0));
        for j in 1..logits.ncols() {
            let cj = col(j);
            // NaN entries need not win the maximum: they propagate through `exp_nan` below.
            simd::zip_in_place::<T, S>(
                s,
                shift,
                cj,
                #[inline(always)]
                |s, m, x| T::v_max(s, m, x),
            );
        }
        for m in shift.iter_mut() {
            *m = finite_or_zero(*m);
        }
        sum.fill(T::zero());
        let (sh, st) = T::v_as_simd::<S>(shift);
        for j in 0..logits.ncols() {
            let cj = col(j);
            let (ch, ct) = T::v_as_simd::<S>(cj);
            let (uh, ut) = T::v_as_mut_simd::<S>(sum);
            match exp_out.as_mut() {
                Some(out) => {
                    let oj = out
                        .rb_mut()
                        .col_mut(j)
                        .try_as_col_major_mut()
                        .expect("softmax: output column-major checked")
                        .as_slice_mut();
                    let (oh, ot) = T::v_as_mut_simd::<S>(oj);
                    for (((u, &x), &m), o) in uh.iter_mut().zip(ch).zip(sh).zip(oh) {
                        let e = exp_nan::<T, S>(s, T::v_sub(s, x, m));
                        *o = e;
                        *u = T::v_add(s, *u, e);
                    }
                    if !ct.is_empty() {
                        let d = T::v_sub(s, T::v_load_partial(s, ct), T::v_load_partial(s, st));
                        let e = exp_nan::<T, S>(s, d);
                        T::v_store_partial(s, ot, e);
                        let u = T::v_add(s, T::v_load_partial(s, ut), e);
                        T::v_store_partial(s, ut, u);
                    }
                }
                None => {
                    for ((u, &x), &m) in uh.iter_mut().zip(ch).zip(sh) {
                        let e = exp_nan::<T, S>(s, T::v_sub(s, x, m));
                        *u = T::v_add(s, *u, e);
                    }
                    if !ct.is_empty() {
                        let d = T::v_sub(s, T::v_load_partial(s, ct), T::v_load_partial(s, st));
                        let e = exp_nan::<T, S>(s, d);
                        let u = T::v_add(s, T::v_load_partial(s, ut), e);
                        T::v_store_partial(s, ut, u);
                    }
                }
            }
        }
    }
}

struct RowMajorStats<'a, T> {
    logits: MatRef<'a, T>,
    shift: &'a mut [T],
    sum: &'a mut [T],
}

impl<T: Scalar> pulp::WithSimd for RowMajorStats<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let RowMajorStats { logits, shift, sum } = self;
        let rows = logits.transpose();
        for i in 0..logits.nrows() {
            let row = rows
                .col(i)
                .try_as_col_major()
                .expect("softmax: row-major checked")
                .as_slice();
            let (h, t) = T::v_as_simd::<S>(row);
            let mut m = t.iter().fold(T::neg_infinity(), |m, &x| m.max(x));
            if let Some((&first, rest)) = h.split_first() {
                let acc = rest.iter().fold(first, |acc, &x| T::v_max(s, acc, x));
                m = m.max(T::v_reduce_max(s, acc));
            }
            let m = finite_or_zero(m);
            let mv = T::v_splat(s, m);
            let mut acc = T::v_splat(s, T::zero());
            for &x in h {
                acc = T::v_add(s, acc, exp_nan::<T, S>(s, T::v_sub(s, x, mv)));
            }
            let tail = t.iter().fold(T::zero(), |a, &x| a + (x - m).exp());
            shift[i] = m;
            sum[i] = T::v_reduce_sum(s, acc) + tail;
        }
    }
}

/// Scales column-major `out` row-wise: `out_bk <- out_bk * inv_b`.
struct ScaleRows<'a, 'o, T> {
    out: MatMut<'o, T>,
    inv: &'a [T],
}

impl<T: Scalar> pulp::WithSimd for ScaleRows<'_, '_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let ScaleRows { mut out, inv } = self;
        for j in 0..out.ncols() {
            let oj = out
                .rb_mut()
                .col_mut(j)
                .try_as_col_major_mut()
                .expect("softmax: output column-major checked")
                .as_slice_mut();
            simd::zip_in_place::<T, S>(
                s,
                oj,
                inv,
                #[inline(always)]
                |s, o, w| T::v_mul(s, o, w),
            );
        }
    }
}

#[track_caller]
fn check_shapes<T>(name: &str, logits: MatRef<'_, T>, out: &MatMut<'_, T>) {
    assert!(
        logits.nrows() == out.nrows() && logits.ncols() == out.ncols(),
        "{name}: logits are {}x{}, output is {}x{}",
        logits.nrows(),
        logits.ncols(),
        out.nrows(),
        out.ncols()
    );
}

/// Row-wise softmax: `out_bk = exp(z_bk - m_b) / sum_j exp(z_bj - m_b)`, `m_b = max_j z_bj`.
///
/// Shapes: `logits` and `out` are `B x K` (`out` must not alias `logits`). Finite for logits
/// of any finite magnitude; each row sums to 1 up to rounding.
#[track_caller]
pub fn softmax_rows<T: Scalar>(logits: MatRef<'_, T>, mut out: MatMut<'_, T>) {
    check_shapes("softmax_rows", logits, &out);
    let b = logits.nrows();
    let mut shift = vec![T::zero(); b];
    let mut sum = vec![T::zero(); b];
    if logits.row_stride() == 1 && out.row_stride() == 1 {
        shift_and_sum(logits, Some(out.rb_mut()), &mut shift, &mut sum);
        let inv: Vec<T> = sum.iter().map(|&s| T::one() / s).collect();
        pulp::Arch::new().dispatch(ScaleRows { out, inv: &inv });
    } else {
        shift_and_sum(logits, None, &mut shift, &mut sum);
        for i in 0..b {
            let inv = T::one() / sum[i];
            for j in 0..logits.ncols() {
                out[(i, j)] = (logits[(i, j)] - shift[i]).exp() * inv;
            }
        }
    }
}

/// Row-wise log-sum-exp `lse_b = m_b + ln sum_k exp(z_bk - m_b)` into `out` (length `B`).
#[track_caller]
pub fn logsumexp_rows_into<T: Scalar>(logits: MatRef<'_, T>, out: &mut [T]) {
    assert_eq!(
        out.len(),
        logits.nrows(),
        "logsumexp_rows_into: {} rows, output length {}",
        logits.nrows(),
        out.len()
    );
    let mut sum = vec![T::zero(); logits.nrows()];
    shift_and_sum(logits, None, out, &mut sum);
    for (m, &s) in out.iter_mut().zip(&sum) {
        *m += s.ln();
    }
}

/// Row-wise log-sum-exp `lse_b = log sum_k exp(z_bk)` of a `B x K` matrix (length `B`).
pub fn logsumexp_rows<T: Scalar>(logits: MatRef<'_, T>) -> Vec<T> {
    let mut out = vec![T::zero(); logits.nrows()];
    logsumexp_rows_into(logits, &mut out);
    out
}

/// Row-wise log-softmax `out_bk = z_bk - lse_b`.
///
/// Shapes: `logits` and `out` are `B x K` (`out` must not alias `logits`).
#[track_caller]
pub fn log_softmax_rows<T: Scalar>(logits: MatRef<'_, T>, mut out: MatMut<'_, T>) {
    check_shapes("log_softmax_rows", logits, &out);
    let lse = logsumexp_rows(logits);
    if logits.row_stride() == 1 && out.row_stride() == 1 {
        struct Sub<'a, 'o, T> {
            logits: MatRef<'a, T>,
            out: MatMut<'o, T>,
            lse: &'a [T],
        }
        impl<T: Scalar> pulp::WithSimd for Sub<'_, '_, T> {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, s: S) {
                let Sub {
                    logits,
                    mut out,
                    lse,
                } = self;
                for j in 0..out.ncols() {
                    let oj = out
                        .rb_mut()
                        .col_mut(j)
                        .try_as_col_major_mut()
                        .expect("log_softmax: output column-major checked")
                        .as_slice_mut();
                    oj.copy_from_slice(
                        logits
                            .col(j)
                            .try_as_col_major()
                            .expect("log_softmax: column-major checked")
                            .as_slice(),
                    );
                    simd::zip_in_place::<T, S>(
                        s,
                        oj,
                        lse,
                        #[inline(always)]
                        |s, z, l| T::v_sub(s, z, l),
                    );
                }
            }
        }
        pulp::Arch::new().dispatch(Sub {
            logits,
            out,
            lse: &lse,
        });
    } else {
        for j in 0..logits.ncols() {
            for i in 0..logits.nrows() {
                out[(i, j)] = logits[(i, j)] - lse[i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;
    use proptest::prelude::*;

    /// Reference: plain loops in f64 with the max shift.
    fn reference(z: &Mat<f64>) -> (Mat<f64>, Vec<f64>) {
        let (b, k) = (z.nrows(), z.ncols());
        let mut p = Mat::<f64>::zeros(b, k);
        let mut lse = vec![0.0; b];
        for i in 0..b {
            let m = (0..k).map(|j| z[(i, j)]).fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..k).map(|j| (z[(i, j)] - m).exp()).sum();
            lse[i] = m + s.ln();
            for j in 0..k {
                p[(i, j)] = (z[(i, j)] - m).exp() / s;
            }
        }
        (p, lse)
    }

    #[derive(Clone, Copy, Debug)]
    enum Layout {
        ColMajor,
        RowMajor,
        Reversed,
    }

    /// Runs the three kernels on `z` stored in `layout`, returning results in f64.
    fn run<T: Scalar>(z: &Mat<f64>, layout: Layout) -> (Mat<f64>, Mat<f64>, Vec<f64>) {
        let (b, k) = (z.nrows(), z.ncols());
        let zc = Mat::<T>::from_fn(b, k, |i, j| T::of(z[(i, j)]));
        let zt = zc.transpose().to_owned();
        let logits = match layout {
            Layout::ColMajor => zc.as_ref(),
            Layout::RowMajor => zt.transpose(),
            Layout::Reversed => zc.as_ref(),
        };
        let mut p = Mat::<T>::zeros(b, k);
        let mut lp = Mat::<T>::zeros(b, k);
        let mut pt = Mat::<T>::zeros(k, b);
        let mut lpt = Mat::<T>::zeros(k, b);
        let mut zr = zc.clone();
        // Reversed rows: a negative row stride exercises the scalar fallback.
        for i in 0..b {
            for j in 0..k {
                zr[(b - 1 - i, j)] = zc[(i, j)];
            }
        }
        let lse;
        match layout {
            Layout::ColMajor => {
                softmax_rows(logits, p.as_mut());
                log_softmax_rows(logits, lp.as_mut());
                lse = logsumexp_rows(logits);
            }
            Layout::RowMajor => {
                softmax_rows(logits, pt.as_mut().transpose_mut());
                log_softmax_rows(logits, lpt.as_mut().transpose_mut());
                lse = logsumexp_rows(logits);
                p = pt.transpose().to_owned();
                lp = lpt.transpose().to_owned();
            }
            Layout::Reversed => {
                let rev = zr.as_ref().reverse_rows();
                softmax_rows(rev, pt.as_mut().transpose_mut().reverse_rows_mut());
                log_softmax_rows(rev, lpt.as_mut().transpose_mut().reverse_rows_mut());
                lse = logsumexp_rows(rev);
                p = pt.transpose().reverse_rows().to_owned();
                lp = lpt.transpose().reverse_rows().to_owned();
            }
        }
        let f = |m: &Mat<T>| Mat::<f64>::from_fn(b, k, |i, j| m[(i, j)].to_f64());
        (
            f(&p),
            f(&lp),
            lse.iter().map(|&x| Scalar::to_f64(x)).collect(),
        )
    }

    fn check<T: Scalar>(z: &Mat<f64>, tol: f64) {
        let (p_ref, lse_ref) = reference(z);
        for layout in [Layout::ColMajor, Layout::RowMajor, Layout::Reversed] {
            let (p, lp, lse) = run::<T>(z, layout);
            for i in 0..z.nrows() {
                let scale = lse_ref[i].abs().max(1.0);
                assert!(
                    (lse[i] - lse_ref[i]).abs() <= tol * scale,
                    "{layout:?} lse row {i}: {} vs {}",
                    lse[i],
                    lse_ref[i]
                );
                let mut row_sum = 0.0;
                for j in 0..z.ncols() {
                    assert!(p[(i, j)].is_finite() && p[(i, j)] >= 0.0);
                    assert!(
                        (p[(i, j)] - p_ref[(i, j)]).abs() <= tol * p_ref[(i, j)].max(1e-30),
                        "{layout:?} softmax ({i},{j}): {} vs {}",
                        p[(i, j)],
                        p_ref[(i, j)]
                    );
                    let want = z[(i, j)] - lse_ref[i];
                    assert!(
                        (lp[(i, j)] - want).abs() <= tol * want.abs().max(scale),
                        "{layout:?} log-softmax ({i},{j}): {} vs {want}",
                        lp[(i, j)]
                    );
                    row_sum += p[(i, j)];
                }
                assert!(
                    (row_sum - 1.0).abs() <= 4.0 * tol,
                    "{layout:?} row {i} sums to {row_sum}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn matches_plain_loop(
            b in 1usize..40,
            k in 1usize..40,
            scale in prop_oneof![Just(1.0f64), Just(30.0), Just(1e4)],
            data in proptest::collection::vec(-1.0f64..1.0, 1..300),
        ) {
            // Logits of magnitude up to `scale`, stored in f32 precision so that both types see
            // the same inputs.
            let z = Mat::<f64>::from_fn(b, k, |i, j| {
                (data[(i * k + j) % data.len()] * scale * (1.0 + (i + j) as f64 * 1e-3)) as f32
                    as f64
            });
            check::<f64>(&z, 1e-13);
            check::<f32>(&z, 2e-5);
        }
    }

    #[test]
    fn huge_logits_and_minus_infinity_stay_finite() {
        let z = Mat::<f64>::from_fn(5, 7, |i, j| {
            if j == 3 {
                f64::NEG_INFINITY
            } else {
                1e4 * ((i * 7 + j) as f64 - 17.0)
            }
        });
        let (p_ref, lse_ref) = reference(&z);
        for layout in [Layout::ColMajor, Layout::RowMajor, Layout::Reversed] {
            let (p, lp, lse) = run::<f64>(&z, layout);
            for i in 0..5 {
                assert!((lse[i] - lse_ref[i]).abs() <= 1e-12 * lse_ref[i].abs());
                let s: f64 = (0..7).map(|j| p[(i, j)]).sum();
                assert!((s - 1.0).abs() < 1e-15, "{layout:?} row sum {s}");
                for j in 0..7 {
                    assert_eq!(p[(i, j)], p_ref[(i, j)], "{layout:?}");
                    if j == 3 {
                        assert_eq!(p[(i, j)], 0.0);
                        assert_eq!(lp[(i, j)], f64::NEG_INFINITY);
                    } else {
                        assert!(lp[(i, j)].is_finite());
                    }
                }
            }
        }
        // f32: exp(1e4 * ...) would overflow without the shift.
        let (p, _, lse) = run::<f32>(&z, Layout::ColMajor);
        assert!(lse.iter().all(|x| x.is_finite()));
        for i in 0..5 {
            let s: f64 = (0..7).map(|j| p[(i, j)]).sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn degenerate_rows_follow_the_documented_limits() {
        let z = Mat::<f64>::from_fn(3, 4, |i, j| match (i, j) {
            (0, _) => f64::NEG_INFINITY,
            (1, 2) => f64::INFINITY,
            (2, 1) => f64::NAN,
            _ => 1.0,
        });
        for layout in [Layout::ColMajor, Layout::RowMajor, Layout::Reversed] {
            let (_, _, lse) = run::<f64>(&z, layout);
            assert_eq!(lse[0], f64::NEG_INFINITY, "{layout:?}");
            assert_eq!(lse[1], f64::INFINITY, "{layout:?}");
            assert!(lse[2].is_nan(), "{layout:?}");
        }
        // Zero classes: log of an empty sum.
        let empty = Mat::<f64>::zeros(2, 0);
        assert_eq!(logsumexp_rows(empty.as_ref()), vec![f64::NEG_INFINITY; 2]);
    }
}
