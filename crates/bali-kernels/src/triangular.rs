//! Triangular solves and products with a lower-triangular Cholesky factor: the algebra of
//! posterior means (`Lambda_N^{-1} B`), Kronecker solves `A^{-1} V B^{-1}` and matrix-normal
//! sampling `W = M + L^{-T} Z R^T` (ALGORITHM.md sections 6-7).
//!
//! Only the lower triangle (diagonal included) of a factor is read, so a factor may share its
//! storage with anything in its strict upper triangle. faer's recursive solves (split, solve
//! the top block, GEMM-update the bottom, solve the bottom block) already reach 43-48 GFLOP/s on
//! one core at `n = k = 1024`, so they are used as they are.

use crate::Scalar;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::triangular_solve;
use faer::{Accum, Mat, MatMut, MatRef, Par};

#[track_caller]
fn check_factor<T>(name: &str, l: MatRef<'_, T>, dim: usize, side: &str) {
    assert!(
        l.nrows() == l.ncols() && l.nrows() == dim,
        "{name}: factor is {}x{}, the {side} dimension of the right-hand side is {dim}",
        l.nrows(),
        l.ncols()
    );
}

/// `rhs <- L^{-1} rhs` (forward substitution).
///
/// Shapes: `l` is `n x n` lower triangular (strict upper triangle ignored), `rhs` is `n x k`.
/// Cost `n^2 k` flops.
#[track_caller]
pub fn solve_lower_in_place<T: Scalar>(l: MatRef<'_, T>, rhs: MatMut<'_, T>, par: Par) {
    check_factor("solve_lower_in_place", l, rhs.nrows(), "row");
    triangular_solve::solve_lower_triangular_in_place(l, rhs, par);
}

/// `rhs <- L^{-T} rhs` (backward substitution with the transposed factor).
///
/// Shapes: `l` is `n x n` lower triangular (strict upper triangle ignored), `rhs` is `n x k`.
/// Cost `n^2 k` flops.
#[track_caller]
pub fn solve_lower_transpose_in_place<T: Scalar>(l: MatRef<'_, T>, rhs: MatMut<'_, T>, par: Par) {
    check_factor("solve_lower_transpose_in_place", l, rhs.nrows(), "row");
    triangular_solve::solve_upper_triangular_in_place(l.transpose(), rhs, par);
}

/// `rhs <- rhs R^{-1}` (solve from the right; `rhs^T <- R^{-T} rhs^T`).
///
/// Shapes: `r` is `q x q` lower triangular, `rhs` is `m x q`. Cost `q^2 m` flops.
#[track_caller]
pub fn solve_right_lower_in_place<T: Scalar>(rhs: MatMut<'_, T>, r: MatRef<'_, T>, par: Par) {
    check_factor("solve_right_lower_in_place", r, rhs.ncols(), "column");
    triangular_solve::solve_upper_triangular_in_place(r.transpose(), rhs.transpose_mut(), par);
}

/// `rhs <- rhs R^{-T}` (solve from the right; `rhs^T <- R^{-1} rhs^T`).
///
/// Shapes: `r` is `q x q` lower triangular, `rhs` is `m x q`. Cost `q^2 m` flops.
#[track_caller]
pub fn solve_right_lower_transpose_in_place<T: Scalar>(
    rhs: MatMut<'_, T>,
    r: MatRef<'_, T>,
    par: Par,
) {
    check_factor(
        "solve_right_lower_transpose_in_place",
        r,
        rhs.ncols(),
        "column",
    );
    triangular_solve::solve_lower_triangular_in_place(r, rhs.transpose_mut(), par);
}

/// Kronecker solve `V <- A^{-1} V B^{-1}` from the Cholesky factors `A = L L^T`, `B = R R^T`:
/// `V <- L^{-T} L^{-1} V R^{-T} R^{-1}` (four triangular solves).
///
/// This is `vec(V) <- (B kron A)^{-1} vec(V)` for symmetric `B`. Shapes: `l` is `p x p`, `r` is
/// `q x q`, `v` is `p x q`. Cost `2 p^2 q + 2 q^2 p` flops.
#[track_caller]
pub fn solve_kronecker_in_place<T: Scalar>(
    l: MatRef<'_, T>,
    r: MatRef<'_, T>,
    mut v: MatMut<'_, T>,
    par: Par,
) {
    check_factor("solve_kronecker_in_place", l, v.nrows(), "row");
    check_factor("solve_kronecker_in_place", r, v.ncols(), "column");
    solve_lower_in_place(l, v.as_mut(), par);
    solve_lower_transpose_in_place(l, v.as_mut(), par);
    solve_right_lower_transpose_in_place(v.as_mut(), r, par);
    solve_right_lower_in_place(v, r, par);
}

/// `out <- Y R^T` for lower-triangular `R` (strict upper triangle ignored).
///
/// Shapes: `y` is `m x q`, `r` is `q x q`, `out` is `m x q` (must not alias `y`).
/// Cost `m q^2` flops.
#[track_caller]
pub fn right_mul_lower_transpose_into<T: Scalar>(
    out: MatMut<'_, T>,
    y: MatRef<'_, T>,
    r: MatRef<'_, T>,
    par: Par,
) {
    check_factor("right_mul_lower_transpose_into", r, y.ncols(), "column");
    assert!(
        out.nrows() == y.nrows() && out.ncols() == y.ncols(),
        "right_mul_lower_transpose_into: output is {}x{}, Y is {}x{}",
        out.nrows(),
        out.ncols(),
        y.nrows(),
        y.ncols()
    );
    triangular::matmul(
        out,
        BlockStructure::Rectangular,
        Accum::Replace,
        y,
        BlockStructure::Rectangular,
        r.transpose(),
        BlockStructure::TriangularUpper,
        T::one(),
        par,
    );
}

/// `Y <- Y R^T` in place for lower-triangular `R` (strict upper triangle ignored); the
/// sampling step `W = M + L^{-T} Z R^T` is `right_mul_lower_transpose(Z, R)` followed by
/// [`solve_lower_transpose_in_place`]. Uses an `m x q` temporary.
///
/// Shapes: `y` is `m x q`, `r` is `q x q`. Cost `m q^2` flops.
#[track_caller]
pub fn right_mul_lower_transpose<T: Scalar>(mut y: MatMut<'_, T>, r: MatRef<'_, T>, par: Par) {
    let mut tmp = Mat::<T>::zeros(y.nrows(), y.ncols());
    right_mul_lower_transpose_into(tmp.as_mut(), y.as_ref(), r, par);
    y.copy_from(&tmp);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A well-conditioned lower-triangular factor with random garbage above the diagonal
    /// (which the kernels must ignore).
    fn factor<T: Scalar>(n: usize, rng: &mut StdRng) -> Mat<T> {
        Mat::from_fn(n, n, |i, j| {
            let v: f64 = if i == j {
                rng.random_range(1.0..2.0)
            } else if i > j {
                rng.random_range(-0.5..0.5) / (n as f64).sqrt()
            } else {
                rng.random_range(-100.0..100.0)
            };
            T::of(v)
        })
    }

    fn random<T: Scalar>(m: usize, n: usize, rng: &mut StdRng) -> Mat<T> {
        Mat::from_fn(m, n, |_, _| T::of(rng.random_range(-1.0..1.0)))
    }

    /// Dense lower-triangular `L` (zeros above the diagonal), in f64.
    fn lower_f64<T: Scalar>(l: &Mat<T>) -> Mat<f64> {
        Mat::from_fn(l.nrows(), l.ncols(), |i, j| {
            if i >= j {
                l[(i, j)].to_f64()
            } else {
                0.0
            }
        })
    }

    /// Plain triple-loop product in f64.
    fn mul(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
        Mat::from_fn(a.nrows(), b.ncols(), |i, j| {
            (0..a.ncols()).map(|k| a[(i, k)] * b[(k, j)]).sum()
        })
    }

    fn max_diff<T: Scalar>(a: &Mat<T>, b: &Mat<f64>) -> f64 {
        let mut d: f64 = 0.0;
        for j in 0..a.ncols() {
            for i in 0..a.nrows() {
                d = d.max((a[(i, j)].to_f64() - b[(i, j)]).abs());
            }
        }
        d
    }

    fn to_f64<T: Scalar>(a: &Mat<T>) -> Mat<f64> {
        Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)].to_f64())
    }

    /// Every kernel, checked by multiplying its result back with a plain loop.
    fn check_all<T: Scalar>(n: usize, k: usize, seed: u64, tol: f64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let l = factor::<T>(n, &mut rng);
        let b = random::<T>(n, k, &mut rng);
        let l64 = lower_f64(&l);
        let lt64 = l64.transpose().to_owned();
        let b64 = to_f64(&b);

        let mut x = b.clone();
        solve_lower_in_place(l.as_ref(), x.as_mut(), Par::Seq);
        assert!(max_diff(&x, &b64) > 0.0 || n == 0 || k == 0 || n == 1);
        let d = max_diff(&b, &mul(&l64, &to_f64(&x)));
        assert!(d < tol, "L x = b: {d}");

        let mut x = b.clone();
        solve_lower_transpose_in_place(l.as_ref(), x.as_mut(), Par::Seq);
        let d = max_diff(&b, &mul(&lt64, &to_f64(&x)));
        assert!(d < tol, "L^T x = b: {d}");

        let bt = random::<T>(k, n, &mut rng);
        let bt64 = to_f64(&bt);
        let mut x = bt.clone();
        solve_right_lower_in_place(x.as_mut(), l.as_ref(), Par::Seq);
        let d = max_diff(&bt, &mul(&to_f64(&x), &l64));
        assert!(d < tol, "x L = b: {d}");

        let mut x = bt.clone();
        solve_right_lower_transpose_in_place(x.as_mut(), l.as_ref(), Par::Seq);
        let d = max_diff(&bt, &mul(&to_f64(&x), &lt64));
        assert!(d < tol, "x L^T = b: {d}");

        let want = mul(&bt64, &lt64);
        let mut out = Mat::<T>::zeros(k, n);
        right_mul_lower_transpose_into(out.as_mut(), bt.as_ref(), l.as_ref(), Par::Seq);
        let d = max_diff(&out, &want);
        assert!(d < tol, "Y R^T (into): {d}");
        let mut y = bt.clone();
        right_mul_lower_transpose(y.as_mut(), l.as_ref(), Par::Seq);
        let d = max_diff(&y, &want);
        assert!(d < tol, "Y R^T (in place): {d}");

        // Kronecker solve: A X B = V with A = L L^T (n x n), B = R R^T (k x k).
        let r = factor::<T>(k, &mut rng);
        let r64 = lower_f64(&r);
        let a64 = mul(&l64, &lt64);
        let bb64 = mul(&r64, &r64.transpose().to_owned());
        let v = random::<T>(n, k, &mut rng);
        let mut x = v.clone();
        solve_kronecker_in_place(l.as_ref(), r.as_ref(), x.as_mut(), Par::Seq);
        let d = max_diff(&v, &mul(&mul(&a64, &to_f64(&x)), &bb64));
        assert!(d < 4.0 * tol, "A X B = V: {d}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn kernels_match_plain_loops(n in 0usize..40, k in 0usize..40, seed in any::<u64>()) {
            check_all::<f64>(n, k, seed, 1e-12);
            check_all::<f32>(n, k, seed, 1e-4);
        }
    }

    #[test]
    fn large_solves_cross_recursion_thresholds() {
        check_all::<f64>(150, 70, 7, 1e-11);
        // Parallel path gives the same answer.
        let mut rng = StdRng::seed_from_u64(1);
        let l = factor::<f64>(300, &mut rng);
        let b = random::<f64>(300, 200, &mut rng);
        let mut x1 = b.clone();
        let mut x2 = b.clone();
        solve_lower_transpose_in_place(l.as_ref(), x1.as_mut(), Par::Seq);
        solve_lower_transpose_in_place(l.as_ref(), x2.as_mut(), Par::rayon(2));
        assert!((&x1 - &x2).norm_max() < 1e-12);
    }
}
