//! The matrix-normal distribution `MN(M, Lambda^{-1}, Sigma)` in Kronecker-factored form.
//!
//! `W ~ MN(M, Lambda^{-1}, Sigma)` means `vec(W) ~ N(vec(M), Sigma kron Lambda^{-1})` with the
//! column-stacking `vec` (ALGORITHM.md section 1), `W`, `M`: p x q, row precision `Lambda`
//! (p x p, `Lambda = L L^T`), column covariance `Sigma` (q x q, `Sigma = R R^T`).

use crate::check;
use crate::error::{MnError, Result};
use crate::factor::KronFactor;
use bali_kernels::Scalar;
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rand_distr::{Distribution, StandardNormal};

/// `MN(M, Lambda^{-1}, Sigma)`: `vec(W) ~ N(vec M, Sigma kron Lambda^{-1})`.
#[derive(Clone, Debug)]
pub struct MatrixNormal<T> {
    /// Mean `M` (p x q).
    pub mean: Mat<T>,
    /// Row precision `Lambda` (p x p) with its Cholesky factor `L`.
    pub row_precision: KronFactor<T>,
    /// Column covariance `Sigma` (q x q) with its Cholesky factor `R`.
    pub col_cov: KronFactor<T>,
}

/// `dst <- dst R^T` in place for lower-triangular `R` (q x q), dst p x q: column `j` becomes
/// `sum_{k <= j} R_jk dst[:, k]`, processed for `j = q-1 .. 0` so that the columns it reads
/// are still unchanged. No allocation; `p q^2` flops.
fn mul_lower_transpose_right_in_place<T: Scalar>(
    mut dst: MatMut<'_, T>,
    r: MatRef<'_, T>,
    par: Par,
) {
    let q = dst.ncols();
    for j in (0..q).rev() {
        let (left, right) = dst.rb_mut().split_at_col_mut(j);
        let mut col = right.col_mut(0);
        let rjj = r[(j, j)];
        for i in 0..col.nrows() {
            col[i] *= rjj;
        }
        if j > 0 {
            matmul(
                col.as_mat_mut(),
                Accum::Add,
                left.rb(),
                r.submatrix(j, 0, 1, j).transpose(),
                T::one(),
                par,
            );
        }
    }
}

impl<T: Scalar> MatrixNormal<T> {
    /// Checks that `mean` is `row_precision.dim() x col_cov.dim()` and finite.
    pub fn new(mean: Mat<T>, row_precision: KronFactor<T>, col_cov: KronFactor<T>) -> Result<Self> {
        check::shape(
            "MatrixNormal::new (mean)",
            (row_precision.dim(), col_cov.dim()),
            (mean.nrows(), mean.ncols()),
        )?;
        check::finite(mean.as_ref(), || "matrix-normal mean M".to_string())?;
        Ok(MatrixNormal {
            mean,
            row_precision,
            col_cov,
        })
    }

    /// Number of rows `p`.
    pub fn p(&self) -> usize {
        self.mean.nrows()
    }

    /// Number of columns `q`.
    pub fn q(&self) -> usize {
        self.mean.ncols()
    }

    /// `log det(Sigma kron Lambda^{-1}) = p log|Sigma| - q log|Lambda|`.
    pub fn log_det_cov(&self) -> T {
        T::of(self.p() as f64) * self.col_cov.log_det()
            - T::of(self.q() as f64) * self.row_precision.log_det()
    }

    /// `tr(Sigma^{-1} D^T Lambda D) = ||L^T D R^{-T}||_F^2` for `D` (p x q).
    fn quad_form(&self, d: MatRef<'_, T>, par: Par) -> T {
        let mut y = Mat::<T>::zeros(self.p(), self.q());
        triangular::matmul(
            y.as_mut(),
            BlockStructure::Rectangular,
            Accum::Replace,
            self.row_precision.chol().transpose(),
            BlockStructure::TriangularUpper,
            d,
            BlockStructure::Rectangular,
            T::one(),
            par,
        );
        self.col_cov.solve_lower_in_place(y.transpose_mut(), par);
        y.squared_norm_l2()
    }

    /// `log p(W) = -pq/2 log(2 pi) - 1/2 log det(Sigma kron Lambda^{-1})
    /// - 1/2 tr(Sigma^{-1} (W - M)^T Lambda (W - M))` for `W` (p x q).
    ///
    /// Errors: [`MnError::ShapeMismatch`], [`MnError::NonFinite`] for NaN/inf in `W`.
    pub fn log_density(&self, w: MatRef<'_, T>, par: Par) -> Result<T> {
        check::shape(
            "MatrixNormal::log_density (W)",
            (self.p(), self.q()),
            (w.nrows(), w.ncols()),
        )?;
        check::finite(w, || "log_density argument W".to_string())?;
        let d = w - &self.mean;
        let quad = self.quad_form(d.as_ref(), par);
        let pq = T::of((self.p() * self.q()) as f64);
        let half = T::of(0.5);
        Ok(-half * pq * T::of((2.0 * std::f64::consts::PI).ln())
            - half * self.log_det_cov()
            - half * quad)
    }

    /// `KL(self || other)` for `self = MN(M0, Lambda0^{-1}, S0)`, `other = MN(M1, Lambda1^{-1},
    /// S1)`:
    ///
    /// `1/2 [tr(S1^{-1} S0) tr(Lambda1 Lambda0^{-1}) + tr(S1^{-1} (M1-M0)^T Lambda1 (M1-M0))
    /// - pq + log det cov1 - log det cov0]`,
    ///
    /// with `tr(S1^{-1} S0) = ||R1^{-1} R0||_F^2` and `tr(Lambda1 Lambda0^{-1}) =
    /// ||L0^{-1} L1||_F^2`. Not clamped: rounding may give values slightly below 0 for nearly
    /// equal distributions. [`MnError::ShapeMismatch`] if the shapes differ.
    pub fn kl_divergence(&self, other: &MatrixNormal<T>, par: Par) -> Result<T> {
        check::shape(
            "MatrixNormal::kl_divergence (other)",
            (self.p(), self.q()),
            (other.p(), other.q()),
        )?;
        let mut rr = self.col_cov.chol().to_owned();
        other.col_cov.solve_lower_in_place(rr.as_mut(), par);
        let tr_sigma = rr.squared_norm_l2();
        let mut ll = other.row_precision.chol().to_owned();
        self.row_precision.solve_lower_in_place(ll.as_mut(), par);
        let tr_lambda = ll.squared_norm_l2();
        let d = &other.mean - &self.mean;
        let maha = other.quad_form(d.as_ref(), par);
        let pq = T::of((self.p() * self.q()) as f64);
        Ok(T::of(0.5)
            * (tr_sigma * tr_lambda + maha - pq + other.log_det_cov() - self.log_det_cov()))
    }

    /// One draw `W = M + L^{-T} Z R^T` (p x q), `Z_ij ~ N(0, 1)` iid, so that
    /// `cov(vec W) = Sigma kron Lambda^{-1}`. Cost `p^2 q + q^2 p` flops.
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R, par: Par) -> Mat<T> {
        let mut w = Mat::<T>::zeros(self.p(), self.q());
        self.sample_into(w.as_mut(), rng, par);
        w
    }

    /// [`MatrixNormal::sample`] into `dst` (p x q), without allocation.
    ///
    /// # Panics
    /// If `dst` is not p x q.
    #[track_caller]
    pub fn sample_into<R: rand::Rng + ?Sized>(&self, dst: MatMut<'_, T>, rng: &mut R, par: Par) {
        assert!(
            dst.nrows() == self.p() && dst.ncols() == self.q(),
            "MatrixNormal::sample_into: dst is {} x {}, distribution is {} x {}",
            dst.nrows(),
            dst.ncols(),
            self.p(),
            self.q()
        );
        let mut dst = dst;
        for j in 0..self.q() {
            for i in 0..self.p() {
                let z: f64 = StandardNormal.sample(rng);
                dst[(i, j)] = T::of(z);
            }
        }
        mul_lower_transpose_right_in_place(dst.rb_mut(), self.col_cov.chol(), par);
        self.row_precision
            .solve_lower_transpose_in_place(dst.rb_mut(), par);
        for j in 0..self.q() {
            for i in 0..self.p() {
                dst[(i, j)] += self.mean[(i, j)];
            }
        }
    }

    /// Local reparameterization for input rows `X` (B x p): returns the mean `X M` (B x q) and
    /// the per-row scales `s_b = x_b^T Lambda^{-1} x_b = ||L^{-1} x_b||^2`, so that
    /// `h_b = x_b^T W ~ N(x_b^T M, s_b Sigma)` (ALGORITHM.md section 6).
    ///
    /// # Panics
    /// If `X` does not have p columns (see [`MatrixNormal::try_local_moments`]).
    #[track_caller]
    pub fn local_moments(&self, x: MatRef<'_, T>, par: Par) -> (Mat<T>, Vec<T>) {
        assert!(
            x.ncols() == self.p(),
            "MatrixNormal::local_moments: X has {} columns, p = {}",
            x.ncols(),
            self.p()
        );
        let b = x.nrows();
        let mut mean = Mat::<T>::zeros(b, self.q());
        matmul(
            mean.as_mut(),
            Accum::Replace,
            x,
            self.mean.as_ref(),
            T::one(),
            par,
        );
        let mut y = x.transpose().to_owned();
        self.row_precision.solve_lower_in_place(y.as_mut(), par);
        let scales = (0..b).map(|k| y.col(k).squared_norm_l2()).collect();
        (mean, scales)
    }

    /// [`MatrixNormal::local_moments`] with shape and finiteness checks on `X`.
    pub fn try_local_moments(&self, x: MatRef<'_, T>, par: Par) -> Result<(Mat<T>, Vec<T>)> {
        if x.ncols() != self.p() {
            return Err(MnError::ShapeMismatch {
                op: "MatrixNormal::local_moments (X)",
                expected: (x.nrows(), self.p()),
                got: (x.nrows(), x.ncols()),
            });
        }
        check::finite(x, || "local_moments input X".to_string())?;
        Ok(self.local_moments(x, par))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FactorId;
    use crate::factor::JitterPolicy;
    use rand::SeedableRng;

    fn factor(a: Mat<f64>) -> KronFactor<f64> {
        KronFactor::new(a, FactorId::matrix(), JitterPolicy::NONE, Par::Seq).unwrap()
    }

    fn example() -> MatrixNormal<f64> {
        let lam = Mat::from_fn(3, 3, |i, j| if i == j { 2.0 + i as f64 } else { 0.3 });
        let sig = Mat::from_fn(2, 2, |i, j| if i == j { 1.0 } else { -0.4 });
        let m = Mat::from_fn(3, 2, |i, j| i as f64 - j as f64);
        MatrixNormal::new(m, factor(lam), factor(sig)).unwrap()
    }

    #[test]
    fn right_lower_transpose_product() {
        let r = Mat::<f64>::from_fn(4, 4, |i, j| {
            if i >= j {
                1.0 + (i * 4 + j) as f64
            } else {
                0.0
            }
        });
        let z = Mat::<f64>::from_fn(3, 4, |i, j| (i as f64) * 0.5 - j as f64);
        let mut d = z.clone();
        mul_lower_transpose_right_in_place(d.as_mut(), r.as_ref(), Par::Seq);
        assert!((&d - &z * r.transpose()).norm_max() < 1e-12);
    }

    #[test]
    fn log_density_at_mean_and_kl_to_self() {
        let mn = example();
        let at_mean = mn.log_density(mn.mean.as_ref(), Par::Seq).unwrap();
        let expect = -3.0 * (2.0 * std::f64::consts::PI).ln() - 0.5 * mn.log_det_cov();
        assert!((at_mean - expect).abs() < 1e-12);
        assert!(mn.kl_divergence(&mn, Par::Seq).unwrap().abs() < 1e-12);
        let mut w = mn.mean.clone();
        w[(1, 1)] = f64::NAN;
        assert!(matches!(
            mn.log_density(w.as_ref(), Par::Seq),
            Err(MnError::NonFinite { row: 1, col: 1, .. })
        ));
        assert!(matches!(
            mn.log_density(mn.mean.transpose(), Par::Seq),
            Err(MnError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn sample_is_deterministic_and_shaped() {
        let mn = example();
        let mut r1 = rand::rngs::StdRng::seed_from_u64(7);
        let mut r2 = rand::rngs::StdRng::seed_from_u64(7);
        let a = mn.sample(&mut r1, Par::Seq);
        let b = mn.sample(&mut r2, Par::Seq);
        assert_eq!(a, b);
        assert_eq!((a.nrows(), a.ncols()), (3, 2));
        assert!(a.is_all_finite());
        assert!((&a - &mn.mean).norm_max() > 0.0);
    }

    #[test]
    fn local_moments_match_direct() {
        let mn = example();
        let x = Mat::<f64>::from_fn(2, 3, |i, j| 1.0 + i as f64 - 0.5 * j as f64);
        let (mean, s) = mn.local_moments(x.as_ref(), Par::Seq);
        assert!((&mean - &x * &mn.mean).norm_max() < 1e-12);
        let inv = mn.row_precision.inverse(Par::Seq);
        for b in 0..2 {
            let mut direct = 0.0;
            for i in 0..3 {
                for j in 0..3 {
                    direct += x[(b, i)] * inv[(i, j)] * x[(b, j)];
                }
            }
            assert!((s[b] - direct).abs() < 1e-12);
        }
        assert!(mn.try_local_moments(x.transpose(), Par::Seq).is_err());
    }
}
