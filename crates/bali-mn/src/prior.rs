//! The matrix-normal (inverse-Wishart) prior of one layer (ALGORITHM.md section 2).

use crate::check;
use crate::error::{MnError, Result};
use bali_kernels::Scalar;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};

/// Column-covariance mode of a layer (ALGORITHM.md section 2).
#[derive(Clone, Debug)]
pub enum ColCovMode<T> {
    /// `Sigma = s2 I_q`, `s2 > 0` a hyperparameter.
    Fixed {
        /// The variance `s^2`.
        s2: T,
    },
    /// Matrix-normal inverse-Wishart: `Sigma ~ IW(Psi_0, nu_0)`, and the posterior mean
    /// `Sigma = Psi_N / (nu_N - q - 1)` is used (requires `nu_N > q + 1`).
    Learned {
        /// Scale matrix `Psi_0` (q x q, SPD; lower triangle read).
        psi0: Mat<T>,
        /// Degrees of freedom `nu_0`.
        nu0: T,
    },
}

impl<T: Scalar> ColCovMode<T> {
    /// `Learned` with `Psi_0 = nu0 s0^2 I_q`.
    pub fn learned_isotropic(q: usize, nu0: T, s0_sq: T) -> Self {
        let mut psi0 = Mat::<T>::zeros(q, q);
        for i in 0..q {
            psi0[(i, i)] = nu0 * s0_sq;
        }
        ColCovMode::Learned { psi0, nu0 }
    }
}

/// Matrix-normal prior `W ~ MN(M_0, Lambda_0^{-1}, Sigma)` (plus `IW(Psi_0, nu_0)` on `Sigma`
/// in `Learned` mode).
#[derive(Clone, Debug)]
pub struct Prior<T> {
    /// Prior mean `M_0` (p x q).
    pub mean: Mat<T>,
    /// Prior row precision `Lambda_0` (p x p, symmetric; only its lower triangle is read).
    pub precision: Mat<T>,
    /// Column-covariance mode.
    pub col: ColCovMode<T>,
}

impl<T: Scalar> Prior<T> {
    /// `M_0 = 0` (p x q), `Lambda_0 = lambda I_p`.
    pub fn isotropic(p: usize, q: usize, lambda: T, col: ColCovMode<T>) -> Self {
        let mut precision = Mat::<T>::zeros(p, p);
        for i in 0..p {
            precision[(i, i)] = lambda;
        }
        Prior {
            mean: Mat::zeros(p, q),
            precision,
            col,
        }
    }

    /// `Lambda_0 = diag(diag)`, `M_0 = mean` (p x q, `diag.len() == p`).
    ///
    /// Errors: [`MnError::ShapeMismatch`], [`MnError::InvalidParameter`] for a diagonal entry
    /// that is not finite and `> 0`, [`MnError::NonFinite`] for NaN/inf in `mean`.
    pub fn diagonal(mean: Mat<T>, diag: &[T], col: ColCovMode<T>) -> Result<Self> {
        let p = mean.nrows();
        check::shape("Prior::diagonal (diag)", (p, 1), (diag.len(), 1))?;
        for &d in diag {
            check::positive("prior precision diagonal entry", d.to_f64())?;
        }
        check::finite(mean.as_ref(), || "prior mean M_0".to_string())?;
        let mut precision = Mat::<T>::zeros(p, p);
        for (i, &d) in diag.iter().enumerate() {
            precision[(i, i)] = d;
        }
        Ok(Prior {
            mean,
            precision,
            col,
        })
    }

    /// Number of rows `p` of `W`.
    pub fn p(&self) -> usize {
        self.mean.nrows()
    }

    /// Number of columns `q` of `W`.
    pub fn q(&self) -> usize {
        self.mean.ncols()
    }

    /// The symmetric `Lambda_0` (p x p) built from the lower triangle of `precision`.
    pub fn precision_sym(&self) -> Mat<T> {
        check::sym_from_lower(self.precision.as_ref())
    }

    /// `Lambda_0 M_0` (p x q), `2 p^2 q` flops.
    pub fn precision_mean(&self, par: Par) -> Mat<T> {
        let mut out = Mat::<T>::zeros(self.p(), self.q());
        matmul(
            out.as_mut(),
            Accum::Replace,
            self.precision_sym().as_ref(),
            self.mean.as_ref(),
            T::one(),
            par,
        );
        out
    }

    /// Validates shapes (`M_0` p x q, `Lambda_0` p x p, `Psi_0` q x q), finiteness and the
    /// column mode's parameters (`s2 > 0`; `nu_0` finite).
    pub fn check(&self) -> Result<()> {
        let (p, q) = (self.p(), self.q());
        check::shape(
            "Prior (precision Lambda_0)",
            (p, p),
            (self.precision.nrows(), self.precision.ncols()),
        )?;
        check::finite(self.mean.as_ref(), || "prior mean M_0".to_string())?;
        check::finite_lower(self.precision.as_ref(), || {
            "prior precision Lambda_0".to_string()
        })?;
        match &self.col {
            ColCovMode::Fixed { s2 } => {
                check::positive("s2 (fixed Sigma = s2 I)", Scalar::to_f64(*s2))
            }
            ColCovMode::Learned { psi0, nu0 } => {
                check::shape("Prior (Psi_0)", (q, q), (psi0.nrows(), psi0.ncols()))?;
                check::finite_lower(psi0.as_ref(), || "prior scale Psi_0".to_string())?;
                if !Scalar::to_f64(*nu0).is_finite() {
                    return Err(MnError::InvalidParameter {
                        name: "nu_0",
                        value: Scalar::to_f64(*nu0),
                        reason: "must be finite",
                    });
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors() {
        let pr = Prior::<f64>::isotropic(3, 2, 2.0, ColCovMode::Fixed { s2: 1.0 });
        assert_eq!(pr.precision, Mat::<f64>::identity(3, 3) * faer::Scale(2.0));
        assert!(pr.check().is_ok());
        let m = Mat::<f64>::from_fn(2, 2, |i, j| (i + j) as f64);
        let pr =
            Prior::diagonal(m, &[1.0, 3.0], ColCovMode::learned_isotropic(2, 4.0, 0.5)).unwrap();
        let pm = pr.precision_mean(Par::Seq);
        assert_eq!(pm[(1, 0)], 3.0);
        assert_eq!(pm[(1, 1)], 6.0);
        match &pr.col {
            ColCovMode::Learned { psi0, nu0 } => {
                assert_eq!(*nu0, 4.0);
                assert_eq!(psi0[(1, 1)], 2.0);
                assert_eq!(psi0[(0, 1)], 0.0);
            }
            _ => panic!("expected Learned"),
        }
        assert!(Prior::diagonal(
            Mat::<f64>::zeros(2, 1),
            &[1.0, 0.0],
            ColCovMode::Fixed { s2: 1.0 }
        )
        .is_err());
        assert!(Prior::diagonal(
            Mat::<f64>::zeros(2, 1),
            &[1.0],
            ColCovMode::Fixed { s2: 1.0 }
        )
        .is_err());
    }

    #[test]
    fn check_rejects_bad_parameters() {
        let pr = Prior::<f64>::isotropic(2, 2, 1.0, ColCovMode::Fixed { s2: 0.0 });
        assert!(matches!(pr.check(), Err(MnError::InvalidParameter { .. })));
        let mut pr = Prior::<f64>::isotropic(2, 2, 1.0, ColCovMode::learned_isotropic(3, 5.0, 1.0));
        assert!(matches!(pr.check(), Err(MnError::ShapeMismatch { .. })));
        pr.col = ColCovMode::learned_isotropic(2, 5.0, 1.0);
        pr.precision[(1, 0)] = f64::NAN;
        assert!(matches!(
            pr.check(),
            Err(MnError::NonFinite { row: 1, col: 0, .. })
        ));
    }
}
