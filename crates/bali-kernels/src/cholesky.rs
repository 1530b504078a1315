//! Cholesky factorization `A = L L^T` of a symmetric positive-definite matrix.
//!
//! faer's blocked right-looking factorization (SYRK trailing updates, triangular solves of the
//! panels, a SIMD unblocked kernel on the diagonal blocks) already runs at 44-46 GFLOP/s on one
//! Zen 4 core for `n >= 1024` (scipy/OpenBLAS: 22-26); only its block sizes are tuned here, by
//! measurement (`examples/kernel_timing.rs`). The error handling (non-finite input, pivot) and
//! exact zeros above the diagonal are this module's own.

use crate::{simd, KernelError, Scalar};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{
    cholesky_in_place, cholesky_in_place_scratch, LltError, LltParams, LltRegularization,
};
use faer::reborrow::ReborrowMut;
use faer::{MatMut, MatRef, Par, Spec};
use pulp::Simd;
use std::mem::MaybeUninit;

/// faer's `(block_size, recursion_threshold)` for an `n x n` factorization, chosen by a sweep
/// on one Zen 4 core (`kernel_timing -- 1 sweep`; faer's default is `(128, 64)`):
/// - `f64`: unblocked up to `n = 48`, then `(128, 32)` (+3-7% at `n = 64..512`), and
///   `(256, 64)` from `n = 768` (+1-3%);
/// - `f32`: `(128, 32)` below `n = 192` (+13% at `n = 48`), then `(256, 64)` (+1-3%).
fn llt_params<T: Scalar>(n: usize) -> Spec<LltParams, T> {
    let (block_size, recursion_threshold) = if core::mem::size_of::<T>() == 8 {
        if n <= 48 {
            (128, 64)
        } else if n < 768 {
            (128, 32)
        } else {
            (256, 64)
        }
    } else if n < 192 {
        (128, 32)
    } else {
        (256, 64)
    };
    let mut params: Spec<LltParams, T> = Spec::default();
    params.block_size = block_size;
    params.recursion_threshold = recursion_threshold;
    params
}

/// First non-finite entry `(row, col)` of the lower triangle (diagonal included) of `a`.
fn first_non_finite_lower<T: Scalar>(a: MatRef<'_, T>) -> Option<(usize, usize)> {
    struct Scan<'a, T> {
        a: MatRef<'a, T>,
    }
    impl<T: Scalar> pulp::WithSimd for Scan<'_, T> {
        type Output = Option<usize>;
        #[inline(always)]
        fn with_simd<S: Simd>(self, s: S) -> Option<usize> {
            let a = self.a;
            (0..a.ncols()).find(|&j| {
                let col = a.col(j).subrows(j, a.nrows() - j);
                !simd::all_finite::<T, S>(
                    s,
                    col.try_as_col_major()
                        .expect("cholesky: column-major checked")
                        .as_slice(),
                )
            })
        }
    }
    let n = a.nrows();
    let bad_col = if a.row_stride() == 1 {
        pulp::Arch::new().dispatch(Scan { a })
    } else {
        (0..n).find(|&j| (j..n).any(|i| !a[(i, j)].is_finite()))
    };
    bad_col.map(|j| {
        let i = (j..n)
            .find(|&i| !a[(i, j)].is_finite())
            .expect("cholesky: a non-finite entry was found in this column");
        (i, j)
    })
}

/// Writes zeros into the strict upper triangle of `a`.
fn zero_strict_upper<T: Scalar>(mut a: MatMut<'_, T>) {
    for j in 1..a.ncols() {
        let rows = j.min(a.nrows());
        let col = a.rb_mut().col_mut(j).subrows_mut(0, rows);
        match col.try_as_col_major_mut() {
            Some(col) => col.as_slice_mut().fill(T::zero()),
            None => a.rb_mut().col_mut(j).subrows_mut(0, rows).fill(T::zero()),
        }
    }
}

/// Bytes of scratch kept on the stack (faer needs `n` scalars plus alignment).
const STACK_SCRATCH_BYTES: usize = 4096;

thread_local! {
    /// Scratch for factorizations whose faer scratch exceeds [`STACK_SCRATCH_BYTES`], with
    /// its size in bytes.
    static SCRATCH: std::cell::RefCell<Option<(usize, MemBuffer)>> =
        const { std::cell::RefCell::new(None) };
}

/// Cholesky factorization in place: on success `a` holds `L` with `A = L L^T`, positive
/// diagonal and exact zeros in the strict upper triangle. Only the lower triangle of `A` is
/// read.
///
/// Shapes: `a` is `n x n` (any strides; column-major is fastest). Cost `n^3 / 3` flops.
///
/// Errors (never a panic, never NaN in a returned factor; `a` then holds unspecified values):
/// - [`KernelError::NonFinite`] if the lower triangle has a NaN or infinite entry, at the first
///   one in column-major order (found by a scan after the factorization fails, so a finite
///   input costs nothing extra);
/// - [`KernelError::NotPositiveDefinite`] with the first non-positive pivot.
#[track_caller]
pub fn cholesky_lower_in_place<T: Scalar>(
    mut a: MatMut<'_, T>,
    par: Par,
) -> Result<(), KernelError> {
    let n = a.nrows();
    assert!(
        a.ncols() == n,
        "cholesky: matrix is {}x{}, must be square",
        n,
        a.ncols()
    );
    if n == 0 {
        return Ok(());
    }
    let params = llt_params::<T>(n);
    let req = cholesky_in_place_scratch::<T>(n, par, params);
    let result = if req.unaligned_bytes_required() <= STACK_SCRATCH_BYTES {
        let mut buf = [MaybeUninit::<u8>::uninit(); STACK_SCRATCH_BYTES];
        factor_with(a.rb_mut(), par, params, MemStack::new(&mut buf))
    } else {
        // Larger scratch: a per-thread buffer kept between calls, so that repeated
        // factorizations (a training loop) allocate only when a larger one is first needed.
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut mem) => {
                if mem
                    .as_ref()
                    .is_none_or(|(bytes, _)| *bytes < req.unaligned_bytes_required())
                {
                    *mem = Some((req.unaligned_bytes_required(), MemBuffer::new(req)));
                }
                match mem.as_mut() {
                    Some((_, buffer)) => {
                        factor_with(a.rb_mut(), par, params, MemStack::new(buffer))
                    }
                    None => unreachable!("the scratch buffer was just set"),
                }
            }
            // Re-entered on this thread (not expected): a buffer of its own.
            Err(_) => {
                let mut mem = MemBuffer::new(req);
                factor_with(a.rb_mut(), par, params, MemStack::new(&mut mem))
            }
        })
    };
    match result {
        // faer's unblocked SIMD kernel leaves scratch values above the diagonal; the caller's
        // strict upper triangle is never read.
        Ok(()) => {
            zero_strict_upper(a);
            Ok(())
        }
        // A NaN or infinite input entry always makes some pivot fail (it reaches the pivot of
        // its row through `L_ij` or is the pivot), and it is still in place, in the first
        // non-finite column, when the factorization stops: classify the failure by a scan.
        Err(err) => match first_non_finite_lower(a.as_ref()) {
            Some((row, col)) => Err(KernelError::NonFinite { row, col, dim: n }),
            None => Err(err),
        },
    }
}

fn factor_with<T: Scalar>(
    a: MatMut<'_, T>,
    par: Par,
    params: Spec<LltParams, T>,
    stack: &mut MemStack,
) -> Result<(), KernelError> {
    match cholesky_in_place(a, LltRegularization::default(), par, stack, params) {
        Ok(_) => Ok(()),
        Err(LltError::NonPositivePivot { index }) => {
            Err(KernelError::NotPositiveDefinite { pivot: index })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::{Accum, Mat};
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// `A = X X^T + n I` in `f64`, for a random `X`.
    fn random_spd(n: usize, seed: u64) -> Mat<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = Mat::<f64>::from_fn(n, n, |_, _| rng.random_range(-1.0..1.0));
        let mut a = Mat::<f64>::identity(n, n) * (n as f64);
        faer::linalg::matmul::matmul(
            a.as_mut(),
            Accum::Add,
            x.as_ref(),
            x.transpose(),
            1.0,
            Par::Seq,
        );
        // Exactly symmetric.
        Mat::from_fn(n, n, |i, j| if i >= j { a[(i, j)] } else { a[(j, i)] })
    }

    /// max |(L L^T - A)_ij| / max |A_ij| with a plain triple loop over the lower triangle.
    fn reconstruction_error<T: Scalar>(l: MatRef<'_, T>, a: MatRef<'_, T>) -> f64 {
        let n = a.nrows();
        let mut err: f64 = 0.0;
        let mut scale: f64 = 0.0;
        for j in 0..n {
            for i in j..n {
                let mut acc = 0.0;
                for k in 0..=j {
                    acc += l[(i, k)].to_f64() * l[(j, k)].to_f64();
                }
                err = err.max((acc - a[(i, j)].to_f64()).abs());
                scale = scale.max(a[(i, j)].to_f64().abs());
            }
        }
        err / scale
    }

    fn check_reconstruction<T: Scalar>(n: usize, seed: u64, tol: f64, row_major: bool) {
        let a64 = random_spd(n, seed);
        let a = Mat::<T>::from_fn(n, n, |i, j| T::of(a64[(i, j)]));
        let sentinel = T::of(-7.25); // never read, overwritten by zeros
        let mut storage = Mat::<T>::from_fn(n, n, |i, j| if i >= j { a[(i, j)] } else { sentinel });
        let mut storage_t = storage.transpose().to_owned();
        let result = if row_major {
            cholesky_lower_in_place(storage_t.as_mut().transpose_mut(), Par::Seq)
        } else {
            cholesky_lower_in_place(storage.as_mut(), Par::Seq)
        };
        assert_eq!(result, Ok(()));
        let l = if row_major {
            storage_t.transpose().to_owned()
        } else {
            storage
        };
        for j in 0..n {
            assert!(l[(j, j)] > T::zero(), "diagonal {j} not positive");
            for i in 0..j {
                assert_eq!(
                    l[(i, j)],
                    T::zero(),
                    "upper triangle not zeroed at ({i}, {j})"
                );
            }
        }
        let err = reconstruction_error(l.as_ref(), a.as_ref());
        assert!(err < tol, "n={n}: |L L^T - A| / |A| = {err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        #[test]
        fn reconstructs_spd_matrices(n in 1usize..40, seed in any::<u64>(), row_major in any::<bool>()) {
            check_reconstruction::<f64>(n, seed, 1e-13, row_major);
            check_reconstruction::<f32>(n, seed, 1e-5, row_major);
        }

        /// A symmetric matrix with one negative eigen-direction fails at the first pivot where
        /// the leading principal minor turns non-positive.
        #[test]
        fn non_pd_reports_first_bad_pivot(n in 1usize..40, k in 0usize..40, seed in any::<u64>()) {
            let k = k % n;
            // Diagonal-dominant SPD with entry (k, k) replaced by a negative value: the leading
            // minors 0..k stay positive, the k-th pivot is negative.
            let mut a = random_spd(n, seed);
            let mut rng = StdRng::seed_from_u64(seed ^ 1);
            let off: f64 = (0..k).map(|j| a[(k, j)].abs()).sum();
            a[(k, k)] = -off - rng.random_range(0.1..1.0) * n as f64;
            let mut work = a.clone();
            let err = cholesky_lower_in_place(work.as_mut(), Par::Seq);
            prop_assert_eq!(err, Err(KernelError::NotPositiveDefinite { pivot: k }));
            let a32 = Mat::<f32>::from_fn(n, n, |i, j| a[(i, j)] as f32);
            let mut work32 = a32.clone();
            let err = cholesky_lower_in_place(work32.as_mut(), Par::Seq);
            prop_assert_eq!(err, Err(KernelError::NotPositiveDefinite { pivot: k }));
        }

        #[test]
        fn non_finite_input_is_an_error(n in 1usize..40, i in 0usize..40, j in 0usize..40, which in 0usize..3) {
            let (i, j) = ((i % n).max(j % n), (i % n).min(j % n));
            let mut a = random_spd(n, 3);
            a[(i, j)] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][which];
            let err = cholesky_lower_in_place(a.as_mut(), Par::Seq);
            prop_assert_eq!(err, Err(KernelError::NonFinite { row: i, col: j, dim: n }));
        }

        /// With several non-finite entries (also in matrices large enough for the blocked
        /// path), the first in column-major order is reported, for f32 and f64; NaN above the
        /// diagonal is never read.
        #[test]
        fn first_non_finite_entry_is_reported(
            n in prop_oneof![1usize..40, 100usize..260],
            entries in proptest::collection::vec((0usize..260, 0usize..260, 0usize..3), 1..4),
            upper_nan in any::<bool>(),
        ) {
            let mut a = random_spd(n, n as u64);
            if upper_nan && n > 1 {
                a[(0, n - 1)] = f64::NAN;
            }
            let mut first = (usize::MAX, usize::MAX);
            for &(r, c, which) in &entries {
                let (r, c) = (r % n, c % n);
                let (r, c) = (r.max(c), r.min(c));
                a[(r, c)] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][which];
                if (c, r) < (first.1, first.0) {
                    first = (r, c);
                }
            }
            let want = Err(KernelError::NonFinite { row: first.0, col: first.1, dim: n });
            let a32 = Mat::<f32>::from_fn(n, n, |i, j| a[(i, j)] as f32);
            prop_assert_eq!(cholesky_lower_in_place(a.as_mut(), Par::Seq), want);
            let mut a32 = a32;
            prop_assert_eq!(cholesky_lower_in_place(a32.as_mut(), Par::Seq), want);
        }
    }

    #[test]
    fn upper_triangle_is_never_read() {
        let n = 150;
        let a = random_spd(n, 11);
        let mut with_nan = a.clone();
        for j in 1..n {
            for i in 0..j {
                with_nan[(i, j)] = f64::NAN;
            }
        }
        let mut l = a.clone();
        cholesky_lower_in_place(l.as_mut(), Par::Seq).unwrap();
        cholesky_lower_in_place(with_nan.as_mut(), Par::Seq).unwrap();
        assert_eq!(l, with_nan);
    }

    #[test]
    fn large_blocked_factorizations_reconstruct() {
        // Crosses faer's block and recursion thresholds in both parameter regimes.
        for (n, par) in [(200, Par::Seq), (300, Par::rayon(2)), (1030, Par::Seq)] {
            let a = random_spd(n, n as u64);
            let mut l = a.clone();
            cholesky_lower_in_place(l.as_mut(), par).unwrap();
            // Check L L^T = A through faer's matmul (the triple loop is too slow at n = 1030).
            let mut lo = l.clone();
            for j in 0..n {
                for i in 0..j {
                    lo[(i, j)] = 0.0;
                }
            }
            let mut rec = Mat::<f64>::zeros(n, n);
            faer::linalg::matmul::matmul(
                rec.as_mut(),
                Accum::Replace,
                lo.as_ref(),
                lo.transpose(),
                1.0,
                Par::Seq,
            );
            let err = (&rec - &a).norm_max() / a.norm_max();
            assert!(err < 1e-13, "n = {n}: {err}");
        }
    }

    #[test]
    fn semidefinite_and_zero_matrices_fail_cleanly() {
        let mut z = Mat::<f64>::zeros(5, 5);
        assert_eq!(
            cholesky_lower_in_place(z.as_mut(), Par::Seq),
            Err(KernelError::NotPositiveDefinite { pivot: 0 })
        );
        // Rank one: x x^T with x = (1, 2, 3): the second pivot is exactly 0.
        let x = [1.0, 2.0, 3.0];
        let mut r = Mat::<f64>::from_fn(3, 3, |i, j| x[i] * x[j]);
        assert_eq!(
            cholesky_lower_in_place(r.as_mut(), Par::Seq),
            Err(KernelError::NotPositiveDefinite { pivot: 1 })
        );
        let mut empty = Mat::<f64>::zeros(0, 0);
        assert_eq!(cholesky_lower_in_place(empty.as_mut(), Par::Seq), Ok(()));
    }
}
