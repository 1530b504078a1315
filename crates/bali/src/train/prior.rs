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
