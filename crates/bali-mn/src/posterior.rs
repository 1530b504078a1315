//! The exact matrix-normal posterior of one layer from its (EMA) statistics
//! (ALGORITHM.md sections 2 and 4).
//!
//! `Lambda_N = Lambda_0 + S~_xx`, `M_N = Lambda_N^{-1} (Lambda_0 M_0 + S~_xt)`, and
//!
//! - `Fixed`: `Sigma = s2 I_q`;
//! - `Learned`: `Psi_N = Psi_0 + S~_rr + (M_N - M_0)^T Lambda_0 (M_N - M_0)`,
//!   `nu_N = nu_0 + n~`, `Sigma = Psi_N / (nu_N - q - 1)` (requires `nu_N > q + 1`). With
//!   `beta = 0`, `rho = 1`, `S~_rr = (T - X M_N)^T (T - X M_N)`: the residual form of
//!   section 2, which stays positive semi-definite in floating point.

use crate::check;
use crate::error::{FactorId, MnError, Result};
use crate::factor::{JitterPolicy, KronFactor};
use crate::matrix_normal::MatrixNormal;
use crate::prior::{ColCovMode, Prior};
use crate::stats::NaturalStats;
use bali_kernels::Scalar;
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::reborrow::ReborrowMut;
use faer::{Accum, Mat, MatMut, MatRef, Par};

/// Per-call settings of [`posterior_step`] and [`posterior_from_stats`].
#[derive(Clone, Copy, Debug)]
pub struct PosteriorConfig {
    /// Layer index for error messages.
    pub layer: Option<usize>,
    /// Jitter retry policy for the Cholesky factors of `Lambda_N` and `Sigma`.
    pub jitter: JitterPolicy,
    /// Parallelism of the kernels.
    pub par: Par,
}

impl Default for PosteriorConfig {
    /// No layer, no jitter, sequential.
    fn default() -> Self {
        PosteriorConfig {
            layer: None,
            jitter: JitterPolicy::NONE,
            par: Par::Seq,
        }
    }
}

fn check_prior_against_stats<T: Scalar>(prior: &Prior<T>, stats: &NaturalStats<T>) -> Result<()> {
    prior.check()?;
    check::shape(
        "posterior (prior M_0 vs statistics)",
        (stats.p(), stats.q()),
        (prior.p(), prior.q()),
    )
}

fn check_dof(layer: Option<usize>, nu_n: f64, q: usize) -> Result<()> {
    if nu_n > q as f64 + 1.0 {
        Ok(())
    } else {
        Err(MnError::DegreesOfFreedom {
            factor: FactorId::col_cov(layer),
            nu: nu_n,
            q,
        })
    }
}

/// The prior row precision `Lambda_0` as the products `Lambda_0 M` use it: its diagonal when
/// the strict lower triangle is zero (the priors of both formulations), else the full
/// symmetric matrix.
///
/// A diagonal `Lambda_0` times `M` (p x q) is `p q` flops instead of the dense `2 p^2 q`, with
/// the same values: every other term of the dense sums is an exact zero.
enum PriorPrecision<'a, T> {
    /// `Lambda_0` with a zero strict lower triangle: its diagonal is read (no copy).
    Diagonal(MatRef<'a, T>),
    /// The full symmetric `Lambda_0` (p x p, a copy).
    Dense(Mat<T>),
}

impl<'a, T: Scalar> PriorPrecision<'a, T> {
    /// Reads the lower triangle of `prior.precision` (`p^2 / 2` comparisons); allocates only
    /// for a dense `Lambda_0`.
    fn of(prior: &'a Prior<T>) -> Self {
        let lambda_0 = prior.precision.as_ref();
        let p = lambda_0.nrows();
        let diagonal = (0..p).all(|j| (j + 1..p).all(|i| lambda_0[(i, j)] == T::zero()));
        if diagonal {
            PriorPrecision::Diagonal(lambda_0)
        } else {
            PriorPrecision::Dense(prior.precision_sym())
        }
    }

    /// `out <- out + Lambda_0 m` (`Add`) or `out <- Lambda_0 m` (`Replace`); `m`, `out` p x q.
    fn mul_into(&self, mut out: MatMut<'_, T>, accum: Accum, m: MatRef<'_, T>, par: Par) {
        match self {
            PriorPrecision::Diagonal(lambda_0) => {
                for j in 0..m.ncols() {
                    let src = m.col(j);
                    let mut dst = out.rb_mut().col_mut(j);
                    for i in 0..m.nrows() {
                        let v = lambda_0[(i, i)] * src[i];
                        dst[i] = match accum {
                            Accum::Add => dst[i] + v,
                            Accum::Replace => v,
                        };
                    }
                }
            }
            PriorPrecision::Dense(lambda_0) => {
                matmul(out, accum, lambda_0.as_ref(), m, T::one(), par);
            }
        }
    }
}

/// `Lambda_N = Lambda_0 + S~_xx` (factored) and `M_N = Lambda_N^{-1} (Lambda_0 M_0 + S~_xt)`.
fn row_posterior<T: Scalar>(
    prior: &Prior<T>,
    lambda_0: &PriorPrecision<'_, T>,
    stats: &NaturalStats<T>,
    cfg: &PosteriorConfig,
) -> Result<(KronFactor<T>, Mat<T>)> {
    let mut lambda_n = stats.sxx_tilde();
    // Only the lower triangle of Lambda_N is read by the factorization.
    let precision = prior.precision.as_ref();
    for j in 0..lambda_n.ncols() {
        for i in j..lambda_n.nrows() {
            lambda_n[(i, j)] += precision[(i, j)];
        }
    }
    let lambda_n = KronFactor::new(
        lambda_n,
        FactorId::row_precision(cfg.layer),
        cfg.jitter,
        cfg.par,
    )?;
    let mut mean = stats.sxt_tilde();
    lambda_0.mul_into(mean.as_mut(), Accum::Add, prior.mean.as_ref(), cfg.par);
    lambda_n.solve_in_place(mean.as_mut(), cfg.par);
    Ok((lambda_n, mean))
}

/// `Sigma = (Psi_0 + S~_rr + (M_N - M_0)^T Lambda_0 (M_N - M_0)) / (nu_0 + n~ - q - 1)`.
fn learned_col_cov<T: Scalar>(
    prior: &Prior<T>,
    lambda_0: &PriorPrecision<'_, T>,
    psi0: &Mat<T>,
    nu0: T,
    stats: &NaturalStats<T>,
    mean_n: MatRef<'_, T>,
    cfg: &PosteriorConfig,
) -> Result<KronFactor<T>> {
    let q = prior.q();
    let nu_n = nu0.to_f64() + stats.n_tilde().to_f64();
    check_dof(cfg.layer, nu_n, q)?;
    let d = mean_n - &prior.mean;
    let mut g = Mat::<T>::zeros(prior.p(), q);
    lambda_0.mul_into(g.as_mut(), Accum::Replace, d.as_ref(), cfg.par);
    let mut psi_n = stats.srr_tilde();
    // D^T Lambda_0 D is symmetric: only its lower triangle is formed (p q^2 flops).
    triangular::matmul(
        psi_n.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Add,
        d.transpose(),
        BlockStructure::Rectangular,
        g.as_ref(),
        BlockStructure::Rectangular,
        T::one(),
        cfg.par,
    );
    let inv_dof = T::of(1.0 / (nu_n - q as f64 - 1.0));
    // Lower triangle only: KronFactor::new reads it and mirrors it.
    let mut sigma = psi_n;
    for j in 0..q {
        let prior_col = &psi0.col_as_slice(j)[j..];
        for (v, &p0) in sigma.col_as_slice_mut(j)[j..].iter_mut().zip(prior_col) {
            *v = (p0 + *v) * inv_dof;
        }
    }
    check::finite_lower(sigma.as_ref(), || {
        format!("{} (learned)", FactorId::col_cov(cfg.layer))
    })?;
    KronFactor::new(sigma, FactorId::col_cov(cfg.layer), cfg.jitter, cfg.par)
}

/// One exact posterior step for a layer (ALGORITHM.md section 2 with the EMA of section 4):
///
/// `stats.update(X, T, rho)`; `Lambda_N = Lambda_0 + S~_xx`;
/// `M_N = Lambda_N^{-1} (Lambda_0 M_0 + S~_xt)`; `Fixed`: `Sigma = s2 I`; `Learned`:
/// `R = T - X M_N`, `stats.update_residual(R, rho)`,
/// `Psi_N = Psi_0 + S~_rr + (M_N - M_0)^T Lambda_0 (M_N - M_0)`, `nu_N = nu_0 + n~`,
/// `Sigma = Psi_N / (nu_N - q - 1)`.
///
/// Shapes: `X` B x p, `T` B x q, prior p x q. Cost `B p^2 + 2 B p q + p^3/3 + 2 p^2 q`
/// (+ `2 B p q + B q^2 + p q^2 + q^3/3` in `Learned` mode) for a diagonal `Lambda_0`; a
/// non-diagonal one adds `2 p^2 q` (`Lambda_0 M_0`), and `2 p^2 q` more in `Learned` mode.
///
/// Errors: invalid input ([`MnError::ShapeMismatch`], [`MnError::NonFinite`],
/// [`MnError::InvalidParameter`], [`MnError::DegreesOfFreedom`]) is detected before `stats`
/// changes; a factorization failure ([`MnError::NotPositiveDefinite`] naming the layer and
/// factor) is reported after `stats` has absorbed the batch.
///
/// This is [`posterior_step_into`] on fresh buffers (the training loop's own path).
pub fn posterior_step<T: Scalar>(
    prior: &Prior<T>,
    stats: &mut NaturalStats<T>,
    x: MatRef<'_, T>,
    t: MatRef<'_, T>,
    rho: T,
    cfg: &PosteriorConfig,
) -> Result<MatrixNormal<T>> {
    check_prior_against_stats(prior, stats)?;
    let (p, q) = (prior.p(), prior.q());
    let mut post = MatrixNormal::new(
        Mat::zeros(p, q),
        KronFactor::identity_scaled(p, T::one(), FactorId::row_precision(cfg.layer)),
        KronFactor::identity_scaled(q, T::one(), FactorId::col_cov(cfg.layer)),
    )?;
    posterior_step_into(
        &mut post,
        prior,
        stats,
        x,
        t,
        rho,
        cfg,
        &mut PosteriorWorkspace::default(),
    )?;
    Ok(post)
}

/// Buffers that [`posterior_step_into`] reuses from step to step for one layer: the residuals
/// `R` (B x q), `M_N - M_0` and `Lambda_0 (M_N - M_0)` (p x q each), and a spare posterior that
/// the new one is built in (then swapped with the current one, so that a failed step leaves
/// the current posterior as it was). Filled on first use; reallocated only when a shape
/// changes (another batch size).
#[derive(Clone, Debug)]
pub struct PosteriorWorkspace<T> {
    residual: Mat<T>,
    diff: Mat<T>,
    scaled: Mat<T>,
    spare: Option<MatrixNormal<T>>,
}

impl<T: Scalar> Default for PosteriorWorkspace<T> {
    fn default() -> Self {
        PosteriorWorkspace {
            residual: Mat::zeros(0, 0),
            diff: Mat::zeros(0, 0),
            scaled: Mat::zeros(0, 0),
            spare: None,
        }
    }
}

/// `m` as a `rows x cols` matrix: kept when it has that shape, else reallocated (zeros).
fn fit_shape<T: Scalar>(m: &mut Mat<T>, rows: usize, cols: usize) {
    if m.nrows() != rows || m.ncols() != cols {
        *m = Mat::zeros(rows, cols);
    }
}

/// `v` scaled by the bias correction `c` (the value itself for `c = 1`, as `scale_in_place`).
#[inline]
fn corrected<T: Scalar>(v: T, c: T) -> T {
    if c == T::one() {
        v
    } else {
        c * v
    }
}

/// [`posterior_step`] written into `post` (which must be p x q): the same arithmetic, the
/// same errors, and after the first call no allocation for priors with a diagonal `Lambda_0`
/// (a dense `Lambda_0` allocates its symmetric copy). `post` is replaced only when the step
/// succeeds; `stats` absorbs the batch as in [`posterior_step`].
#[allow(clippy::too_many_arguments)]
pub fn posterior_step_into<T: Scalar>(
    post: &mut MatrixNormal<T>,
    prior: &Prior<T>,
    stats: &mut NaturalStats<T>,
    x: MatRef<'_, T>,
    t: MatRef<'_, T>,
    rho: T,
    cfg: &PosteriorConfig,
    ws: &mut PosteriorWorkspace<T>,
) -> Result<()> {
    check_prior_against_stats(prior, stats)?;
    check::shape(
        "posterior_step_into (current posterior)",
        (prior.p(), prior.q()),
        (post.p(), post.q()),
    )?;
    stats.check_batch(x, t, rho)?;
    if let ColCovMode::Learned { nu0, .. } = &prior.col {
        check_dof(
            cfg.layer,
            Scalar::to_f64(*nu0) + stats.n_tilde_after(x.nrows(), rho),
            prior.q(),
        )?;
    }
    stats.update_checked(x, t, rho, cfg.par);
    let (p, q) = (prior.p(), prior.q());
    if ws.spare.as_ref().is_none_or(|s| s.p() != p || s.q() != q) {
        ws.spare = Some(post.clone());
    }
    let Some(next) = ws.spare.as_mut() else {
        unreachable!("the spare posterior was just set")
    };
    let corr = stats.bias_correction();
    let lambda_0 = PriorPrecision::of(prior);
    // Lambda_N = Lambda_0 + S~_xx (lower triangle), factored in place.
    next.row_precision.refactor(
        |mut lambda_n| {
            let precision = prior.precision.as_ref();
            for j in 0..p {
                for i in j..p {
                    lambda_n[(i, j)] = corrected(stats.sxx[(i, j)], corr) + precision[(i, j)];
                }
            }
            Ok(())
        },
        cfg.jitter,
        cfg.par,
    )?;
    // M_N = Lambda_N^{-1} (Lambda_0 M_0 + S~_xt).
    for j in 0..q {
        for i in 0..p {
            next.mean[(i, j)] = corrected(stats.sxt[(i, j)], corr);
        }
    }
    lambda_0.mul_into(next.mean.as_mut(), Accum::Add, prior.mean.as_ref(), cfg.par);
    next.row_precision
        .solve_in_place(next.mean.as_mut(), cfg.par);
    match &prior.col {
        ColCovMode::Fixed { s2 } => {
            check::positive("identity scale s", Scalar::to_f64(*s2))?;
            next.col_cov.refactor(
                |mut sigma| {
                    for j in 0..q {
                        for i in j..q {
                            sigma[(i, j)] = if i == j { *s2 } else { T::zero() };
                        }
                    }
                    Ok(())
                },
                JitterPolicy::NONE,
                Par::Seq,
            )?;
        }
        ColCovMode::Learned { psi0, nu0 } => {
            let b = x.nrows();
            fit_shape(&mut ws.residual, b, q);
            ws.residual.copy_from(t);
            matmul(
                ws.residual.as_mut(),
                Accum::Add,
                x,
                next.mean.as_ref(),
                -T::one(),
                cfg.par,
            );
            stats.update_residual(ws.residual.as_ref(), rho, cfg.par)?;
            let nu_n = Scalar::to_f64(*nu0) + Scalar::to_f64(stats.n_tilde());
            check_dof(cfg.layer, nu_n, q)?;
            // D = M_N - M_0, G = Lambda_0 D.
            fit_shape(&mut ws.diff, p, q);
            fit_shape(&mut ws.scaled, p, q);
            for j in 0..q {
                for i in 0..p {
                    ws.diff[(i, j)] = next.mean[(i, j)] - prior.mean[(i, j)];
                }
            }
            lambda_0.mul_into(
                ws.scaled.as_mut(),
                Accum::Replace,
                ws.diff.as_ref(),
                cfg.par,
            );
            let inv_dof = T::of(1.0 / (nu_n - q as f64 - 1.0));
            let corr = stats.bias_correction();
            let (srr, diff, scaled) = (&stats.srr, &ws.diff, &ws.scaled);
            let layer = cfg.layer;
            next.col_cov.refactor(
                |mut sigma| {
                    // Psi_N = Psi_0 + S~_rr + D^T Lambda_0 D (lower triangle), over nu_N - q - 1.
                    for j in 0..q {
                        for i in j..q {
                            sigma[(i, j)] = corrected(srr[(i, j)], corr);
                        }
                    }
                    triangular::matmul(
                        sigma.as_mut(),
                        BlockStructure::TriangularLower,
                        Accum::Add,
                        diff.transpose(),
                        BlockStructure::Rectangular,
                        scaled.as_ref(),
                        BlockStructure::Rectangular,
                        T::one(),
                        cfg.par,
                    );
                    for j in 0..q {
                        for i in j..q {
                            sigma[(i, j)] = (psi0[(i, j)] + sigma[(i, j)]) * inv_dof;
                        }
                    }
                    check::finite_lower(sigma.as_ref(), || {
                        format!("{} (learned)", FactorId::col_cov(layer))
                    })
                },
                cfg.jitter,
                cfg.par,
            )?;
        }
    }
    check::finite(next.mean.as_ref(), || "matrix-normal mean M".to_string())?;
    std::mem::swap(post, next);
    Ok(())
}

/// The posterior from statistics already accumulated (no update): as [`posterior_step`]
/// without the two `stats` updates; `Learned` mode uses `S~_rr` as it is.
pub fn posterior_from_stats<T: Scalar>(
    prior: &Prior<T>,
    stats: &NaturalStats<T>,
    cfg: &PosteriorConfig,
) -> Result<MatrixNormal<T>> {
    check_prior_against_stats(prior, stats)?;
    let lambda_0 = PriorPrecision::of(prior);
    let (lambda_n, mean_n) = row_posterior(prior, &lambda_0, stats, cfg)?;
    let col_cov = match &prior.col {
        ColCovMode::Fixed { s2 } => {
            KronFactor::try_identity_scaled(prior.q(), *s2, FactorId::col_cov(cfg.layer))?
        }
        ColCovMode::Learned { psi0, nu0 } => {
            learned_col_cov(prior, &lambda_0, psi0, *nu0, stats, mean_n.as_ref(), cfg)?
        }
    };
    MatrixNormal::new(mean_n, lambda_n, col_cov)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_one_dimensional_closed_form() {
        // p = q = 1: Lambda_N = lambda + sum x^2, M_N = sum x t / Lambda_N.
        let x = Mat::<f64>::from_fn(3, 1, |i, _| 1.0 + i as f64);
        let t = Mat::<f64>::from_fn(3, 1, |i, _| 2.0 - i as f64);
        let prior = Prior::isotropic(1, 1, 0.5, ColCovMode::Fixed { s2: 0.25 });
        let mut stats = NaturalStats::new(1, 1, 0.0).unwrap();
        let mn = posterior_step(
            &prior,
            &mut stats,
            x.as_ref(),
            t.as_ref(),
            1.0,
            &Default::default(),
        )
        .unwrap();
        let lam = 0.5 + 1.0 + 4.0 + 9.0;
        assert!((mn.row_precision.matrix()[(0, 0)] - lam).abs() < 1e-12);
        assert!((mn.mean[(0, 0)] - (2.0 + 2.0 + 0.0) / lam).abs() < 1e-12);
        assert_eq!(mn.col_cov.matrix()[(0, 0)], 0.25);
    }

    #[test]
    fn learned_one_dimensional_closed_form() {
        let x = Mat::<f64>::from_fn(4, 1, |i, _| i as f64 - 1.5);
        let t = Mat::<f64>::from_fn(4, 1, |i, _| (i * i) as f64);
        let prior = Prior::isotropic(1, 1, 1.0, ColCovMode::learned_isotropic(1, 3.0, 0.5));
        let mut stats = NaturalStats::new(1, 1, 0.0).unwrap();
        let mn = posterior_step(
            &prior,
            &mut stats,
            x.as_ref(),
            t.as_ref(),
            1.0,
            &Default::default(),
        )
        .unwrap();
        let m = mn.mean[(0, 0)];
        let rss: f64 = (0..4).map(|i| (t[(i, 0)] - x[(i, 0)] * m).powi(2)).sum();
        let psi = 1.5 + rss + m * m;
        let expect = psi / (3.0 + 4.0 - 1.0 - 1.0);
        assert!((mn.col_cov.matrix()[(0, 0)] - expect).abs() < 1e-12);
    }

    #[test]
    fn degrees_of_freedom_checked_before_update() {
        let prior = Prior::<f64>::isotropic(2, 3, 1.0, ColCovMode::learned_isotropic(3, 1.0, 1.0));
        let mut stats = NaturalStats::new(2, 3, 0.0).unwrap();
        let x = Mat::<f64>::ones(2, 2);
        let t = Mat::<f64>::ones(2, 3);
        // nu_N = 1 + 2 = 3 <= q + 1 = 4
        let cfg = PosteriorConfig {
            layer: Some(4),
            ..Default::default()
        };
        match posterior_step(&prior, &mut stats, x.as_ref(), t.as_ref(), 1.0, &cfg) {
            Err(MnError::DegreesOfFreedom { factor, nu, q }) => {
                assert_eq!(factor, FactorId::col_cov(Some(4)));
                assert_eq!((nu, q), (3.0, 3));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(stats.step, 0);
        assert!(matches!(
            posterior_from_stats(&prior, &stats, &cfg),
            Err(MnError::DegreesOfFreedom { .. })
        ));
    }

    #[test]
    fn diagonal_precision_products_equal_the_dense_ones() {
        let (p, q) = (7, 5);
        let m = Mat::<f64>::from_fn(p, q, |i, j| ((3 * i + 5 * j) % 11) as f64 / 7.0 - 0.6);
        let out0 = Mat::<f64>::from_fn(p, q, |i, j| (i as f64 - j as f64) / 3.0);
        let diag: Vec<f64> = (0..p).map(|i| 0.3 + i as f64 / 9.0).collect();
        let prior = Prior::diagonal(Mat::zeros(p, q), &diag, ColCovMode::Fixed { s2: 1.0 })
            .expect("valid prior");
        let fast = PriorPrecision::of(&prior);
        assert!(matches!(fast, PriorPrecision::Diagonal(_)));
        let dense = PriorPrecision::Dense(prior.precision_sym());
        for accum in [Accum::Add, Accum::Replace] {
            let (mut a, mut b) = (out0.clone(), out0.clone());
            fast.mul_into(a.as_mut(), accum, m.as_ref(), Par::Seq);
            dense.mul_into(b.as_mut(), accum, m.as_ref(), Par::Seq);
            assert_eq!(a, b, "{accum:?}");
        }
        // Any nonzero below the diagonal selects the dense product.
        let mut full = prior.clone();
        full.precision[(4, 1)] = 0.01;
        assert!(matches!(
            PriorPrecision::of(&full),
            PriorPrecision::Dense(_)
        ));
    }

    #[test]
    fn prior_shape_must_match_stats() {
        let prior = Prior::<f64>::isotropic(2, 3, 1.0, ColCovMode::Fixed { s2: 1.0 });
        let stats = NaturalStats::new(3, 3, 0.0).unwrap();
        assert!(matches!(
            posterior_from_stats(&prior, &stats, &Default::default()),
            Err(MnError::ShapeMismatch { .. })
        ));
    }

    fn same_posterior(a: &MatrixNormal<f64>, b: &MatrixNormal<f64>) {
        assert_eq!(a.mean, b.mean);
        assert_eq!(a.row_precision.chol(), b.row_precision.chol());
        assert_eq!(a.row_precision.matrix(), b.row_precision.matrix());
        assert_eq!(a.col_cov.chol(), b.col_cov.chol());
        assert_eq!(a.col_cov.matrix(), b.col_cov.matrix());
    }

    #[test]
    fn in_place_step_equals_the_posterior_of_its_statistics_bit_for_bit() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let (b, p, q) = (23, 6, 3);
        let mut dense = crate::dense::random_spd_dominant::<f64, _>(p, &mut rng);
        for i in 0..p {
            dense[(i, i)] += 0.5;
        }
        let m0 = crate::dense::random_uniform::<f64, _>(p, q, &mut rng);
        let diag: Vec<f64> = (0..p).map(|i| 1.0 + 0.1 * i as f64).collect();
        let priors = [
            Prior::isotropic(p, q, 1.5, ColCovMode::learned_isotropic(q, 5.0, 1e-3)),
            Prior::diagonal(
                m0.clone(),
                &diag,
                ColCovMode::learned_isotropic(q, 5.0, 1e-3),
            )
            .unwrap(),
            Prior::diagonal(m0.clone(), &diag, ColCovMode::Fixed { s2: 0.3 }).unwrap(),
            Prior {
                mean: m0.clone(),
                precision: dense,
                col: ColCovMode::learned_isotropic(q, 5.0, 1e-3),
            },
        ];
        for prior in &priors {
            for beta in [0.0, 0.7] {
                let mut stats_b = NaturalStats::new(p, q, beta).unwrap();
                let mut post = MatrixNormal::new(
                    Mat::zeros(p, q),
                    KronFactor::identity_scaled(p, 1.0, FactorId::row_precision(Some(0))),
                    KronFactor::identity_scaled(q, 1.0, FactorId::col_cov(Some(0))),
                )
                .unwrap();
                let mut ws = PosteriorWorkspace::default();
                for _ in 0..3 {
                    let x = crate::dense::random_uniform::<f64, _>(b, p, &mut rng);
                    let t = crate::dense::random_uniform::<f64, _>(b, q, &mut rng);
                    let cfg = PosteriorConfig::default();
                    posterior_step_into(
                        &mut post,
                        prior,
                        &mut stats_b,
                        x.as_ref(),
                        t.as_ref(),
                        2.0,
                        &cfg,
                        &mut ws,
                    )
                    .unwrap();
                    // The separate path: the posterior read from the updated statistics.
                    let a = posterior_from_stats(prior, &stats_b, &cfg).unwrap();
                    same_posterior(&a, &post);
                }
                // A step that fails leaves the posterior as it was.
                let before = post.clone();
                let x = Mat::<f64>::zeros(b, p);
                let t = Mat::<f64>::from_fn(b, q, |_, _| f64::NAN);
                assert!(posterior_step_into(
                    &mut post,
                    prior,
                    &mut stats_b,
                    x.as_ref(),
                    t.as_ref(),
                    2.0,
                    &PosteriorConfig::default(),
                    &mut ws,
                )
                .is_err());
                same_posterior(&before, &post);
            }
        }
    }
}
