//! Elementwise passes over whole matrices, column slice by column slice: the finiteness scan
//! that guards every user-reachable input, the `A - alpha B` combinations of the training
//! loop (pseudo-targets `T = H - alpha G`, residual seeds `F - Y`) and column squared norms
//! (the diagonal of a Gram matrix, for the trace-only curvature of the `Scalar` step).
//!
//! Column-major matrices (row stride 1, the layout faer allocates) run on contiguous column
//! slices: the scan and the norms with pulp SIMD and four independent accumulators, the
//! differences as plain slice loops the compiler vectorizes; other layouts take an indexed
//! loop with the same results (up to the order of the sums).

use crate::Scalar;
use faer::reborrow::ReborrowMut;
use faer::{MatMut, MatRef};
use pulp::Simd;

/// One lane-wise accumulation step `acc <- acc + f(v)` of a [`slice_reduce`].
trait LaneTerm {
    fn accumulate<T: Scalar, S: Simd>(token: S, acc: T::V<S>, v: T::V<S>) -> T::V<S>;
}

/// `v - v`: `0` for finite `v`, NaN for NaN or infinity.
struct FiniteProbe;
impl LaneTerm for FiniteProbe {
    #[inline(always)]
    fn accumulate<T: Scalar, S: Simd>(token: S, acc: T::V<S>, v: T::V<S>) -> T::V<S> {
        T::v_add(token, acc, T::v_sub(token, v, v))
    }
}

/// `v^2` (fused multiply-add).
struct Square;
impl LaneTerm for Square {
    #[inline(always)]
    fn accumulate<T: Scalar, S: Simd>(token: S, acc: T::V<S>, v: T::V<S>) -> T::V<S> {
        T::v_fma(token, v, v, acc)
    }
}

/// `sum_i f(s_i)` for the [`LaneTerm`] `f`, with pulp SIMD and four independent accumulators
/// (they hide the latency of the additions). The zero-filled tail adds `f(0) = 0`.
fn slice_reduce<T: Scalar, F: LaneTerm>(s: &[T]) -> T {
    struct Reduce<'a, T, F> {
        s: &'a [T],
        term: std::marker::PhantomData<F>,
    }
    impl<T: Scalar, F: LaneTerm> pulp::WithSimd for Reduce<'_, T, F> {
        type Output = T;
        #[inline(always)]
        fn with_simd<S: Simd>(self, token: S) -> T {
            let (head, tail) = T::v_as_simd::<S>(self.s);
            let zero = T::v_splat(token, T::zero());
            let mut acc = [zero; 4];
            let quads = head.chunks_exact(4);
            let rest = quads.remainder();
            for quad in quads {
                for k in 0..4 {
                    acc[k] = F::accumulate::<T, S>(token, acc[k], quad[k]);
                }
            }
            for &v in rest {
                acc[0] = F::accumulate::<T, S>(token, acc[0], v);
            }
            let last = T::v_load_partial(token, tail);
            acc[1] = F::accumulate::<T, S>(token, acc[1], last);
            let a = T::v_add(
                token,
                T::v_add(token, acc[0], acc[1]),
                T::v_add(token, acc[2], acc[3]),
            );
            T::v_reduce_sum(token, a)
        }
    }
    pulp::Arch::new().dispatch(Reduce::<T, F> {
        s,
        term: std::marker::PhantomData,
    })
}

/// `true` iff every entry of the slice is finite: a NaN survives any sum of zeros, so the scan
/// of `v - v` has no branch per entry.
fn slice_all_finite<T: Scalar>(s: &[T]) -> bool {
    slice_reduce::<T, FiniteProbe>(s) == T::zero()
}

/// `true` iff every entry of `m` is finite (no NaN, no infinity). Cost: one pass, `rows x cols`
/// subtractions and additions.
pub fn all_finite<T: Scalar>(m: MatRef<'_, T>) -> bool {
    if m.row_stride() == 1 {
        (0..m.ncols()).all(|j| {
            let col = m
                .col(j)
                .try_as_col_major()
                .expect("row stride 1 checked")
                .as_slice();
            slice_all_finite(col)
        })
    } else {
        (0..m.ncols()).all(|j| (0..m.nrows()).all(|i| m[(i, j)].is_finite()))
    }
}

/// Squared Euclidean norms of the columns of `m` (n x q): `out[j] = sum_i m_ij^2`, the
/// diagonal of `m^T m` (`n q` flops instead of the `n q^2` of the whole Gram matrix).
///
/// # Panics
/// If `out.len() != m.ncols()` (a programming error).
#[track_caller]
pub fn column_sq_norms_into<T: Scalar>(m: MatRef<'_, T>, out: &mut [T]) {
    assert_eq!(
        out.len(),
        m.ncols(),
        "column_sq_norms_into: out has {} entries for {} columns",
        out.len(),
        m.ncols()
    );
    for (j, o) in out.iter_mut().enumerate() {
        *o = match m.col(j).try_as_col_major() {
            Some(col) => slice_reduce::<T, Square>(col.as_slice()),
            None => (0..m.nrows()).fold(T::zero(), |acc, i| acc + m[(i, j)] * m[(i, j)]),
        };
    }
}

/// `out <- a - alpha b` (all `n x m`).
///
/// # Panics
/// If the shapes differ (a programming error; callers check user shapes first).
#[track_caller]
pub fn sub_scaled_into<T: Scalar>(
    mut out: MatMut<'_, T>,
    a: MatRef<'_, T>,
    alpha: T,
    b: MatRef<'_, T>,
) {
    assert!(
        out.nrows() == a.nrows()
            && out.ncols() == a.ncols()
            && b.nrows() == a.nrows()
            && b.ncols() == a.ncols(),
        "sub_scaled_into: out {}x{}, a {}x{}, b {}x{}",
        out.nrows(),
        out.ncols(),
        a.nrows(),
        a.ncols(),
        b.nrows(),
        b.ncols()
    );
    let contiguous = out.row_stride() == 1 && a.row_stride() == 1 && b.row_stride() == 1;
    for j in 0..a.ncols() {
        if contiguous {
            let oc = out
                .rb_mut()
                .col_mut(j)
                .try_as_col_major_mut()
                .expect("row stride 1 checked")
                .as_slice_mut();
            let ac = a
                .col(j)
                .try_as_col_major()
                .expect("row stride 1 checked")
                .as_slice();
            let bc = b
                .col(j)
                .try_as_col_major()
                .expect("row stride 1 checked")
                .as_slice();
            for ((o, &x), &y) in oc.iter_mut().zip(ac).zip(bc) {
                *o = x - alpha * y;
            }
        } else {
            for i in 0..a.nrows() {
                out[(i, j)] = a[(i, j)] - alpha * b[(i, j)];
            }
        }
    }
}

/// `a <- a - alpha b` in place (both `n x m`). Panics as [`sub_scaled_into`].
#[track_caller]
pub fn sub_scaled_in_place<T: Scalar>(mut a: MatMut<'_, T>, alpha: T, b: MatRef<'_, T>) {
    assert!(
        b.nrows() == a.nrows() && b.ncols() == a.ncols(),
        "sub_scaled_in_place: a {}x{}, b {}x{}",
        a.nrows(),
        a.ncols(),
        b.nrows(),
        b.ncols()
    );
    let contiguous = a.row_stride() == 1 && b.row_stride() == 1;
    for j in 0..a.ncols() {
        if contiguous {
            let ac = a
                .rb_mut()
                .col_mut(j)
                .try_as_col_major_mut()
                .expect("row stride 1 checked")
                .as_slice_mut();
            let bc = b
                .col(j)
                .try_as_col_major()
                .expect("row stride 1 checked")
                .as_slice();
            for (x, &y) in ac.iter_mut().zip(bc) {
                *x -= alpha * y;
            }
        } else {
            for i in 0..a.nrows() {
                let v = a[(i, j)] - alpha * b[(i, j)];
                a[(i, j)] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    #[test]
    fn column_sq_norms_equal_a_scalar_loop() {
        for (rows, cols) in [
            (1, 1),
            (3, 2),
            (7, 3),
            (17, 5),
            (64, 2),
            (455, 4),
            (1000, 3),
        ] {
            let m = Mat::<f64>::from_fn(rows, cols, |i, j| ((i * 7 + j * 3) % 11) as f64 - 4.5);
            let mut out = vec![f64::NAN; cols];
            column_sq_norms_into(m.as_ref(), &mut out);
            let mut by_rows = vec![f64::NAN; rows];
            // A transposed view (column stride 1) takes the indexed path.
            column_sq_norms_into(m.transpose(), &mut by_rows);
            for j in 0..cols {
                let reference: f64 = (0..rows).map(|i| m[(i, j)] * m[(i, j)]).sum();
                assert!(
                    (out[j] - reference).abs() <= 1e-13 * reference.max(1.0),
                    "{rows}x{cols} column {j}: {} vs {reference}",
                    out[j]
                );
            }
            for i in 0..rows {
                let reference: f64 = (0..cols).map(|j| m[(i, j)] * m[(i, j)]).sum();
                assert!((by_rows[i] - reference).abs() <= 1e-13 * reference.max(1.0));
            }
            let f = Mat::<f32>::from_fn(rows, cols, |i, j| m[(i, j)] as f32);
            let mut out32 = vec![f32::NAN; cols];
            column_sq_norms_into(f.as_ref(), &mut out32);
            for j in 0..cols {
                assert!((out32[j] as f64 - out[j]).abs() <= 1e-5 * out[j].max(1.0));
            }
        }
        // A NaN entry is not hidden.
        let mut m = Mat::<f64>::ones(33, 2);
        m[(20, 1)] = f64::NAN;
        let mut out = [0.0; 2];
        column_sq_norms_into(m.as_ref(), &mut out);
        assert_eq!(out[0], 33.0);
        assert!(out[1].is_nan());
    }

    #[test]
    fn finiteness_scan_finds_every_kind_of_bad_entry() {
        for (rows, cols) in [(1, 1), (7, 3), (17, 5), (64, 2)] {
            let m = Mat::<f64>::from_fn(rows, cols, |i, j| (i as f64) * 1e300 - j as f64);
            assert!(all_finite(m.as_ref()));
            assert!(all_finite(m.transpose()));
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                for (i, j) in [(0, 0), (rows - 1, cols - 1), (rows / 2, cols / 2)] {
                    let mut b = m.clone();
                    b[(i, j)] = bad;
                    assert!(
                        !all_finite(b.as_ref()),
                        "{bad} at ({i}, {j}) of {rows}x{cols}"
                    );
                    assert!(!all_finite(b.transpose()));
                }
            }
            let mut f = Mat::<f32>::from_fn(rows, cols, |i, j| (i + j) as f32);
            assert!(all_finite(f.as_ref()));
            f[(rows - 1, 0)] = f32::NAN;
            assert!(!all_finite(f.as_ref()));
        }
        // Large finite values do not overflow the scan (v - v is exactly 0).
        let big = Mat::<f64>::from_fn(9, 2, |_, _| f64::MAX);
        assert!(all_finite(big.as_ref()));
    }

    #[test]
    fn scaled_differences_match_the_indexed_formula() {
        let a = Mat::<f64>::from_fn(11, 4, |i, j| (3 * i + j) as f64 * 0.25);
        let b = Mat::<f64>::from_fn(11, 4, |i, j| (i as f64) - 2.0 * j as f64);
        let want = Mat::<f64>::from_fn(11, 4, |i, j| a[(i, j)] - 0.3 * b[(i, j)]);
        let mut out = Mat::<f64>::zeros(11, 4);
        sub_scaled_into(out.as_mut(), a.as_ref(), 0.3, b.as_ref());
        assert_eq!(out, want);
        let mut in_place = a.clone();
        sub_scaled_in_place(in_place.as_mut(), 0.3, b.as_ref());
        assert_eq!(in_place, want);
        // Transposed (row stride != 1) operands take the indexed path, same values.
        let mut out_t = Mat::<f64>::zeros(4, 11);
        sub_scaled_into(out_t.as_mut(), a.transpose(), 0.3, b.transpose());
        assert_eq!(out_t, want.transpose().to_owned());
    }
}
