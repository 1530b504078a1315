//! Natural-parameter statistics of one layer with their exponential moving average
//! (ALGORITHM.md section 4).
//!
//! Per batch `(X: B x p, T: B x q)`: `S_xx = X^T X`, `S_xt = X^T T`, `n = B`, and in `Learned`
//! mode the residual scatter `S_rr = R^T R`, `R = T - X M_N` (B x q). Each is kept as
//!
//! `S_hat <- beta S_hat + (1 - beta) rho S_batch`, `rho = N / B`,
//!
//! and read bias-corrected, `S~ = S_hat / (1 - beta^t)` at step `t`. With `beta = 0` and
//! `rho = 1`, `S~` is the plain batch statistic.

use crate::check;
use crate::error::{MnError, Result};
use bali_kernels::{gemm_ema, syrk_ema, Scalar};
use faer::{Mat, MatRef, Par};

/// EMA of the natural-parameter statistics of one layer.
#[derive(Clone, Debug)]
pub struct NaturalStats<T> {
    /// `S_hat_xx` (p x p); only the lower triangle is valid.
    pub sxx: Mat<T>,
    /// `S_hat_xt` (p x q).
    pub sxt: Mat<T>,
    /// `S_hat_rr` (q x q, `Learned` mode); only the lower triangle is valid.
    pub srr: Mat<T>,
    /// `n_hat`, the EMA of `rho B`.
    pub n: T,
    /// Forgetting factor `beta` in `[0, 1)`.
    pub beta: T,
    /// Number of [`NaturalStats::update`] calls `t`.
    pub step: u64,
}

fn check_beta(beta: f64) -> Result<()> {
    if (0.0..1.0).contains(&beta) {
        Ok(())
    } else {
        Err(MnError::InvalidParameter {
            name: "beta",
            value: beta,
            reason: "EMA forgetting factor must lie in [0, 1)",
        })
    }
}

/// `1 / (1 - beta^t)`, 1 for `beta = 0` or `t = 0`, computed as `-1 / expm1(t log beta)`.
fn bias_correction_at(beta: f64, step: u64) -> f64 {
    if beta == 0.0 || step == 0 {
        1.0
    } else {
        -1.0 / (step as f64 * beta.ln()).exp_m1()
    }
}

impl<T: Scalar> NaturalStats<T> {
    /// Zero statistics for a layer with `W` p x q; [`MnError::InvalidParameter`] unless
    /// `beta` is in `[0, 1)`.
    pub fn new(p: usize, q: usize, beta: T) -> Result<Self> {
        check_beta(beta.to_f64())?;
        Ok(NaturalStats {
            sxx: Mat::zeros(p, p),
            sxt: Mat::zeros(p, q),
            srr: Mat::zeros(q, q),
            n: T::zero(),
            beta,
            step: 0,
        })
    }

    /// Number of rows `p` of `W`.
    pub fn p(&self) -> usize {
        self.sxt.nrows()
    }

    /// Number of columns `q` of `W`.
    pub fn q(&self) -> usize {
        self.sxt.ncols()
    }

    /// Checks a batch `(X, T)` and `rho` without changing anything.
    pub(crate) fn check_batch(&self, x: MatRef<'_, T>, t: MatRef<'_, T>, rho: T) -> Result<()> {
        check::positive("rho", rho.to_f64())?;
        check::shape(
            "NaturalStats::update (X)",
            (x.nrows(), self.p()),
            (x.nrows(), x.ncols()),
        )?;
        check::shape(
            "NaturalStats::update (T)",
            (x.nrows(), self.q()),
            (t.nrows(), t.ncols()),
        )?;
        check::finite(x, || "layer input X".to_string())?;
        check::finite(t, || "layer targets T".to_string())
    }

    /// `n~` after a prospective [`NaturalStats::update`] with a batch of `b` rows.
    pub(crate) fn n_tilde_after(&self, b: usize, rho: T) -> f64 {
        let beta = self.beta.to_f64();
        let n = beta * self.n.to_f64() + (1.0 - beta) * rho.to_f64() * b as f64;
        n * bias_correction_at(beta, self.step + 1)
    }

    /// `t <- t + 1`; `S_xx <- beta S_xx + (1-beta) rho X^T X` (SYRK, lower triangle),
    /// `S_xt <- beta S_xt + (1-beta) rho X^T T`, `n <- beta n + (1-beta) rho B`.
    ///
    /// Shapes: `X` B x p, `T` B x q. Errors (nothing is changed): [`MnError::ShapeMismatch`],
    /// [`MnError::NonFinite`] for NaN/inf in `X` or `T`, [`MnError::InvalidParameter`] unless
    /// `rho` is finite and `> 0`.
    pub fn update(&mut self, x: MatRef<'_, T>, t: MatRef<'_, T>, rho: T, par: Par) -> Result<()> {
        self.check_batch(x, t, rho)?;
        self.update_checked(x, t, rho, par);
        Ok(())
    }

    /// [`NaturalStats::update`] for a batch that has already passed
    /// [`NaturalStats::check_batch`] (the caller's check is not repeated: it scans every
    /// entry of `X` and `T`).
    pub(crate) fn update_checked(&mut self, x: MatRef<'_, T>, t: MatRef<'_, T>, rho: T, par: Par) {
        let c = (T::one() - self.beta) * rho;
        syrk_ema(self.sxx.as_mut(), x, self.beta, c, par);
        gemm_ema(self.sxt.as_mut(), x, t, self.beta, c, par);
        self.n = self.beta * self.n + c * T::of(x.nrows() as f64);
        self.step += 1;
    }

    /// `S_rr <- beta S_rr + (1-beta) rho R^T R` for residuals `R` (B x q) at the current step
    /// (does not advance `t`). Errors as [`NaturalStats::update`].
    pub fn update_residual(&mut self, r: MatRef<'_, T>, rho: T, par: Par) -> Result<()> {
        check::positive("rho", rho.to_f64())?;
        check::shape(
            "NaturalStats::update_residual (R)",
            (r.nrows(), self.q()),
            (r.nrows(), r.ncols()),
        )?;
        check::finite(r, || "layer residuals R".to_string())?;
        let c = (T::one() - self.beta) * rho;
        syrk_ema(self.srr.as_mut(), r, self.beta, c, par);
        Ok(())
    }

    /// `1 / (1 - beta^t)` (1 when `beta = 0` or before the first update).
    pub fn bias_correction(&self) -> T {
        T::of(bias_correction_at(self.beta.to_f64(), self.step))
    }

    /// `S~_xx = S_hat_xx / (1 - beta^t)`, full symmetric p x p.
    pub fn sxx_tilde(&self) -> Mat<T> {
        scaled_sym(&self.sxx, self.bias_correction())
    }

    /// `S~_xt = S_hat_xt / (1 - beta^t)` (p x q).
    pub fn sxt_tilde(&self) -> Mat<T> {
        let mut out = self.sxt.clone();
        scale_in_place(&mut out, self.bias_correction());
        out
    }

    /// `S~_rr = S_hat_rr / (1 - beta^t)`, full symmetric q x q.
    pub fn srr_tilde(&self) -> Mat<T> {
        scaled_sym(&self.srr, self.bias_correction())
    }

    /// `n~ = n_hat / (1 - beta^t)`.
    pub fn n_tilde(&self) -> T {
        self.n * self.bias_correction()
    }
}

/// `c S` as a full symmetric matrix from the lower triangle of `s`.
fn scaled_sym<T: Scalar>(s: &Mat<T>, c: T) -> Mat<T> {
    let mut out = s.clone();
    scale_in_place(&mut out, c);
    crate::factor::symmetrize_from_lower(out.as_mut());
    out
}

/// `m <- c m` (skipped for `c = 1`), column slice by column slice.
fn scale_in_place<T: Scalar>(m: &mut Mat<T>, c: T) {
    if c == T::one() {
        return;
    }
    for j in 0..m.ncols() {
        for v in m.col_as_slice_mut(j) {
            *v = c * *v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_domain() {
        assert!(NaturalStats::<f64>::new(2, 2, 0.0).is_ok());
        assert!(NaturalStats::<f64>::new(2, 2, 0.99).is_ok());
        assert!(NaturalStats::<f64>::new(2, 2, 1.0).is_err());
        assert!(NaturalStats::<f64>::new(2, 2, -0.1).is_err());
        assert!(NaturalStats::<f32>::new(2, 2, f32::NAN).is_err());
    }

    #[test]
    fn bias_correction_values() {
        assert_eq!(bias_correction_at(0.0, 5), 1.0);
        assert_eq!(bias_correction_at(0.5, 0), 1.0);
        assert!((bias_correction_at(0.5, 1) - 2.0).abs() < 1e-15);
        assert!((bias_correction_at(0.5, 2) - 1.0 / 0.75).abs() < 1e-15);
        assert!((bias_correction_at(0.9, 10_000) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn single_update_full_batch() {
        let x = Mat::<f64>::from_fn(4, 2, |i, j| (i + 2 * j) as f64);
        let t = Mat::<f64>::from_fn(4, 1, |i, _| i as f64 - 1.0);
        let mut s = NaturalStats::new(2, 1, 0.0).unwrap();
        s.update(x.as_ref(), t.as_ref(), 1.0, Par::Seq).unwrap();
        assert!((s.sxx_tilde() - x.transpose() * &x).norm_max() < 1e-12);
        assert!((s.sxt_tilde() - x.transpose() * &t).norm_max() < 1e-12);
        assert_eq!(s.n_tilde(), 4.0);
        assert_eq!(s.step, 1);
        s.update_residual(t.as_ref(), 1.0, Par::Seq).unwrap();
        assert!((s.srr_tilde() - t.transpose() * &t).norm_max() < 1e-12);
        assert_eq!(s.step, 1);
    }

    #[test]
    fn rejected_batch_leaves_stats_unchanged() {
        let mut s = NaturalStats::<f64>::new(2, 1, 0.5).unwrap();
        let mut x = Mat::<f64>::ones(3, 2);
        let t = Mat::<f64>::ones(3, 1);
        s.update(x.as_ref(), t.as_ref(), 2.0, Par::Seq).unwrap();
        let before = s.clone();
        x[(2, 1)] = f64::INFINITY;
        match s.update(x.as_ref(), t.as_ref(), 2.0, Par::Seq) {
            Err(MnError::NonFinite { what, row, col }) => {
                assert_eq!((what.as_str(), row, col), ("layer input X", 2, 1))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(s.update(t.as_ref(), t.as_ref(), 2.0, Par::Seq).is_err());
        assert!(s
            .update(Mat::<f64>::ones(3, 2).as_ref(), t.as_ref(), 0.0, Par::Seq)
            .is_err());
        assert_eq!(s.step, before.step);
        assert_eq!(s.sxx, before.sxx);
        assert_eq!(s.n, before.n);
    }
}
