//! The layer priors of both formulations (ALGORITHM.md 3.1 and 3.2 step 6), built once per
//! layer and, for the proximal prior, moved to the current mean in place each step.

use bali_kernels::Scalar;
use bali_mn::{ColCovMode, Prior};
use faer::MatRef;

use crate::config::SigmaSpec;
use crate::error::Result;

/// The column-covariance mode of a layer with `q` outputs.
pub(crate) fn col_mode<T: Scalar>(spec: SigmaSpec, q: usize) -> ColCovMode<T> {
    match spec {
        SigmaSpec::Fixed { s2 } => ColCovMode::Fixed { s2: T::of(s2) },
        SigmaSpec::Learned { nu0_extra, s0_sq } => {
            ColCovMode::learned_isotropic(q, T::of(q as f64 + nu0_extra), T::of(s0_sq))
        }
    }
}

/// `M_0 = 0`, `Lambda_0 = lambda I_p` (3.1, and the output layer of 3.2).
pub(crate) fn isotropic<T: Scalar>(p: usize, q: usize, lambda: f64, sigma: SigmaSpec) -> Prior<T> {
    Prior::isotropic(p, q, T::of(lambda), col_mode(sigma, q))
}

/// The proximal-times-shrinkage prior of a hidden layer (3.2 step 6) with `Lambda_0 =
/// lambda I + wd diag(1, ..., 1, 0)` (the bias row is not shrunk); its mean is set by
/// [`move_proximal_mean`] before each step.
pub(crate) fn proximal<T: Scalar>(
    p: usize,
    q: usize,
    lambda: f64,
    wd: f64,
    sigma: SigmaSpec,
) -> Result<Prior<T>> {
    let lambda = T::of(lambda);
    let mut prior = Prior::diagonal(faer::Mat::zeros(p, q), &vec![lambda; p], col_mode(sigma, q))?;
    set_shrinkage(&mut prior, lambda, T::of(wd));
    Ok(prior)
}

/// `Lambda_0 <- lambda I + shrink diag(1, ..., 1, 0)` (the bias row is not shrunk): the
/// shrinkage of [`proximal`], set anew each step under `WdScale::Curvature` (the weight decay
/// changes with the curvature). No allocation; call before [`move_proximal_mean`].
pub(crate) fn set_shrinkage<T: Scalar>(prior: &mut Prior<T>, lambda: T, shrink: T) {
    let p = prior.p();
    for i in 0..p {
        prior.precision[(i, i)] = if i + 1 < p { lambda + shrink } else { lambda };
    }
}

/// Floor of the relative prior variance in [`set_relevance_shrinkage`]: `r_i <= 1 / EPS =
/// 10`, an input shrunk at most ten times the shared strength. With a floor near zero the
/// feedback prunes for good, and a relevant input that a retrain's trajectory shrinks early
/// is lost (measured on the wider benchmark, `docs/results/wider.md`: a friedman1 split
/// with `1e-6` and an irrelevant split with `0.01` ended at test LL -4.7 and -4.1, training
/// RMSE four times the carve's); `0.1` was the best of {1e-6, 0.01, 0.03, 0.1, 0.3} on 5
/// irrelevant splits.
pub(crate) const RELEVANCE_EPS: f64 = 0.1;

/// `Lambda_0 <- lambda I + shrink diag(r_1, ..., r_{p-1}, 0)`: the shrinkage of the first
/// layer spread over its inputs by MacKay's automatic relevance determination. With `s_i =
/// sum_j M_ij^2` the squared norm of input `i`'s row of the current mean `m` (p x q, the
/// last row the bias) and `sbar` the mean of the `p - 1` input rows' `s_i`,
///
/// `r_i = sbar / (s_i + eps sbar)`, `eps` = [`RELEVANCE_EPS`].
///
/// MacKay's evidence update of a per-input prior precision is `tau_i = gamma_i / s_i`
/// (`gamma_i <= q` the well-determined parameters of row `i`); with every parameter well
/// determined (`gamma_i = q`) the ratio to the shared update `tau = (p - 1) q / sum_i s_i` is
/// `sbar / s_i`. So `r_i` keeps the shared strength `shrink` as the mean prior variance
/// (`mean_i 1 / r_i = 1 + eps`) and gives an input whose weights are small a stronger
/// shrinkage, which makes them smaller: the weights of irrelevant inputs are driven towards
/// zero. `eps sbar` floors every row's prior variance at a tenth of the mean, so no input
/// is shrunk more than `shrink / eps`. `m` all zero (or a single row) leaves every `r_i =
/// 1`. No allocation.
pub(crate) fn set_relevance_shrinkage<T: Scalar>(
    prior: &mut Prior<T>,
    lambda: T,
    shrink: T,
    m: MatRef<'_, T>,
) {
    let (p, q) = (prior.p(), prior.q());
    let inputs = p.saturating_sub(1);
    // First pass: each input row's s_i, kept in the diagonal it is about to replace.
    let mut total = T::zero();
    for i in 0..inputs {
        let s_i = (0..q).fold(T::zero(), |acc, j| acc + m[(i, j)] * m[(i, j)]);
        prior.precision[(i, i)] = s_i;
        total += s_i;
    }
    let sbar = total / T::of(inputs.max(1) as f64);
    for i in 0..inputs {
        let s_i = prior.precision[(i, i)];
        prior.precision[(i, i)] = if sbar > T::zero() {
            lambda + shrink * sbar / (s_i + T::of(RELEVANCE_EPS) * sbar)
        } else {
            lambda + shrink
        };
    }
    if p > 0 {
        prior.precision[(p - 1, p - 1)] = lambda;
    }
}

/// `M_0 <- lambda Lambda_0^{-1} M_prev`, so that `Lambda_0 M_0 = lambda M_prev` (3.2 step 6),
/// for the diagonal `Lambda_0` of [`proximal`]. No allocation.
pub(crate) fn move_proximal_mean<T: Scalar>(
    prior: &mut Prior<T>,
    lambda: T,
    m_prev: MatRef<'_, T>,
) {
    let (p, q) = (prior.p(), prior.q());
    for j in 0..q {
        for i in 0..p {
            let d = prior.precision[(i, i)];
            prior.mean[(i, j)] = lambda * m_prev[(i, j)] / d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bali_mn::ColCovMode;
    use faer::Mat;

    fn prior(p: usize, q: usize) -> Prior<f64> {
        Prior::diagonal(
            Mat::zeros(p, q),
            &vec![1.0; p],
            ColCovMode::Fixed { s2: 1.0 },
        )
        .unwrap()
    }

    /// `r_i = sbar / (s_i + eps sbar)` against the formula computed here, the bias row left at
    /// `lambda`, the mean prior variance `mean_i 1 / r_i = 1 + eps`.
    #[test]
    fn relevance_shrinkage_follows_the_formula() {
        let (p, q) = (4, 2);
        // Row norms 5, 0.25, 20 (inputs) and a large bias row that must not count.
        let m = Mat::from_fn(p, q, |i, j| match (i, j) {
            (0, 0) => 1.0,
            (0, 1) => 2.0,
            (1, _) => 0.5f64.sqrt() * 0.5,
            (2, 0) => 4.0,
            (2, 1) => -2.0,
            _ => 100.0,
        });
        let s = [5.0, 0.25, 20.0];
        let sbar = s.iter().sum::<f64>() / 3.0;
        let (lambda, shrink) = (0.5, 3.0);
        let mut pr = prior(p, q);
        set_relevance_shrinkage(&mut pr, lambda, shrink, m.as_ref());
        let mut inv_r = 0.0;
        for (i, &s_i) in s.iter().enumerate() {
            let r = sbar / (s_i + RELEVANCE_EPS * sbar);
            inv_r += 1.0 / r / 3.0;
            let got = pr.precision[(i, i)];
            assert!(
                (got - (lambda + shrink * r)).abs() < 1e-12 * got,
                "row {i}: {got} vs {}",
                lambda + shrink * r
            );
        }
        assert_eq!(pr.precision[(3, 3)], lambda, "bias row shrunk");
        assert!((inv_r - (1.0 + RELEVANCE_EPS)).abs() < 1e-12);
        // The smallest row gets the strongest shrinkage.
        assert!(pr.precision[(1, 1)] > pr.precision[(0, 0)]);
        assert!(pr.precision[(0, 0)] > pr.precision[(2, 2)]);
    }

    /// A zero mean (the first step) and a dead input: every `r_i = 1`, and a zero row gets
    /// exactly the bound `1 / eps`.
    #[test]
    fn relevance_shrinkage_is_finite_at_zero_rows() {
        let (p, q) = (3, 2);
        let mut pr = prior(p, q);
        set_relevance_shrinkage(&mut pr, 1.0, 2.0, Mat::<f64>::zeros(p, q).as_ref());
        assert_eq!(
            (0..p).map(|i| pr.precision[(i, i)]).collect::<Vec<_>>(),
            [3.0, 3.0, 1.0]
        );
        let m = Mat::from_fn(p, q, |i, _| if i == 0 { 1.0 } else { 0.0 });
        set_relevance_shrinkage(&mut pr, 1.0, 2.0, m.as_ref());
        // s = (2, 0), sbar = 1: r_0 = 1 / (2 + eps), r_1 = 1 / eps.
        assert!((pr.precision[(0, 0)] - (1.0 + 2.0 / (2.0 + RELEVANCE_EPS))).abs() < 1e-12);
        assert!((pr.precision[(1, 1)] - (1.0 + 2.0 / RELEVANCE_EPS)).abs() < 1e-12);
        assert_eq!(pr.precision[(2, 2)], 1.0);
    }
}
