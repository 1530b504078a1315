//! Dense reference (tests and `bali verify` only): forms the pq x pq matrices of the
//! vec-form Gaussian and solves by dense Cholesky (faer's `Llt`), independently of the
//! Kronecker-factored code. Cost `(pq)^3 / 3` per factorization; refused above
//! [`MAX_DENSE_DIM`].
//!
//! Conventions: column-stacking `vec` (`vec(M)[i + j p] = M_ij`), so that
//! `vec(A X B) = (B^T kron A) vec(X)` and `cov(vec W) = Sigma kron Lambda^{-1}` for
//! `W ~ MN(M, Lambda^{-1}, Sigma)`.

use crate::check;
use crate::error::{FactorId, MnError, Result};
use crate::factor::{kron_solve, JitterPolicy, KronFactor};
use crate::matrix_normal::MatrixNormal;
use crate::posterior::{posterior_step, PosteriorConfig};
use crate::prior::{ColCovMode, Prior};
use crate::stats::NaturalStats;
use bali_kernels::Scalar;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::solvers::{DenseSolveCore, Llt, Solve};
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::{Accum, Mat, MatRef, Par, Side};
use rand::Rng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use std::fmt;

/// Largest dense dimension `pq` the reference accepts (a 4096 x 4096 `f64` matrix is 128 MiB).
pub const MAX_DENSE_DIM: usize = 4096;

fn check_dense_dim(name: &'static str, n: usize) -> Result<()> {
    if n <= MAX_DENSE_DIM {
        Ok(())
    } else {
        Err(MnError::InvalidParameter {
            name,
            value: n as f64,
            reason: "dense reference dimension pq must be <= 4096",
        })
    }
}

/// Kronecker product `A kron B` ((ma mb) x (na nb)): block `(i, j)` is `A_ij B`.
pub fn kron<T: Scalar>(a: MatRef<'_, T>, b: MatRef<'_, T>) -> Mat<T> {
    let (mb, nb) = (b.nrows(), b.ncols());
    Mat::from_fn(a.nrows() * mb, a.ncols() * nb, |r, c| {
        a[(r / mb, c / nb)] * b[(r % mb, c % nb)]
    })
}

/// Column-stacking `vec(M)` (pq x 1): `vec(M)[i + j p] = M_ij`.
pub fn vec<T: Scalar>(m: MatRef<'_, T>) -> Mat<T> {
    let p = m.nrows();
    Mat::from_fn(p * m.ncols(), 1, |r, _| m[(r % p, r / p)])
}

/// Inverse of [`vec()`]: `v` (pq x 1) to `M` (p x q).
///
/// # Panics
/// If `v` is not `pq x 1`.
#[track_caller]
pub fn unvec<T: Scalar>(v: MatRef<'_, T>, p: usize, q: usize) -> Mat<T> {
    assert!(
        v.nrows() == p * q && v.ncols() == 1,
        "unvec: v is {} x {}, expected {} x 1",
        v.nrows(),
        v.ncols(),
        p * q
    );
    Mat::from_fn(p, q, |i, j| v[(i + j * p, 0)])
}

fn llt<T: Scalar>(a: MatRef<'_, T>) -> Result<Llt<T>> {
    let n = a.nrows();
    check::shape("dense Cholesky (square matrix)", (n, n), (n, a.ncols()))?;
    check::finite(a, || "dense reference matrix".to_string())?;
    a.llt(Side::Lower).map_err(|e| {
        let faer::linalg::cholesky::llt::factor::LltError::NonPositivePivot { index } = e;
        MnError::NotPositiveDefinite {
            factor: FactorId::matrix(),
            dim: n,
            pivot: index,
            jitter_tries: 0,
            last_jitter: 0.0,
        }
    })
}

/// `A^{-1}` for SPD `A` by dense Cholesky.
pub fn spd_inverse<T: Scalar>(a: MatRef<'_, T>) -> Result<Mat<T>> {
    Ok(llt(a)?.inverse())
}

/// `log det A = 2 sum log L_ii` for SPD `A` by dense Cholesky.
pub fn spd_log_det<T: Scalar>(a: MatRef<'_, T>) -> Result<T> {
    let f = llt(a)?;
    let l = f.L();
    let mut s = T::zero();
    for i in 0..l.nrows() {
        s += l[(i, i)].ln();
    }
    Ok(s + s)
}

/// `A^{-1} B` for SPD `A` (n x n), `B` (n x k) by dense Cholesky.
pub fn spd_solve<T: Scalar>(a: MatRef<'_, T>, b: MatRef<'_, T>) -> Result<Mat<T>> {
    check::shape(
        "spd_solve (B)",
        (a.nrows(), b.ncols()),
        (b.nrows(), b.ncols()),
    )?;
    Ok(llt(a)?.solve(b))
}

/// Dense posterior of `vec(W)` for `T | W ~ MN(X W, I, Sigma)`, `W ~ MN(M_0, Lambda_0^{-1},
/// Sigma)`: with `P = Sigma^{-1} kron (Lambda_0 + X^T X)`, solves
/// `P vec(M_N) = vec(Lambda_0 M_0 Sigma^{-1} + X^T T Sigma^{-1})` and returns `(M_N` (p x q),
/// `P^{-1}` (pq x pq)`)`.
///
/// Shapes: `Lambda_0` p x p, `M_0` p x q, `X` n x p, `T` n x q, `Sigma` q x q.
pub fn posterior<T: Scalar>(
    prior_precision: MatRef<'_, T>,
    prior_mean: MatRef<'_, T>,
    x: MatRef<'_, T>,
    t: MatRef<'_, T>,
    sigma: MatRef<'_, T>,
) -> Result<(Mat<T>, Mat<T>)> {
    let (p, q) = (prior_mean.nrows(), prior_mean.ncols());
    check_dense_dim("dense posterior pq", p * q)?;
    check::shape(
        "dense::posterior (Lambda_0)",
        (p, p),
        (prior_precision.nrows(), prior_precision.ncols()),
    )?;
    check::shape(
        "dense::posterior (X)",
        (x.nrows(), p),
        (x.nrows(), x.ncols()),
    )?;
    check::shape(
        "dense::posterior (T)",
        (x.nrows(), q),
        (t.nrows(), t.ncols()),
    )?;
    check::shape(
        "dense::posterior (Sigma)",
        (q, q),
        (sigma.nrows(), sigma.ncols()),
    )?;
    let sigma_inv = spd_inverse(sigma)?;
    let lambda_n = prior_precision + x.transpose() * x;
    let precision = kron(sigma_inv.as_ref(), lambda_n.as_ref());
    let rhs = (prior_precision * prior_mean + x.transpose() * t) * &sigma_inv;
    let mean = unvec(
        spd_solve(precision.as_ref(), vec(rhs.as_ref()).as_ref())?.as_ref(),
        p,
        q,
    );
    let cov = spd_inverse(precision.as_ref())?;
    Ok((mean, cov))
}

/// Dense covariance `Sigma kron Lambda^{-1}` (pq x pq) of a matrix normal, with
/// `Lambda^{-1}` by dense Cholesky.
pub fn covariance<T: Scalar>(mn: &MatrixNormal<T>) -> Result<Mat<T>> {
    check_dense_dim("dense covariance pq", mn.p() * mn.q())?;
    let lambda_inv = spd_inverse(mn.row_precision.matrix().as_ref())?;
    Ok(kron(mn.col_cov.matrix().as_ref(), lambda_inv.as_ref()))
}

/// `log N(x; m, C) = -n/2 log(2 pi) - 1/2 log det C - 1/2 (x - m)^T C^{-1} (x - m)`
/// (`m`, `x`: n x 1, `C`: n x n).
pub fn gaussian_log_density<T: Scalar>(
    mean: MatRef<'_, T>,
    cov: MatRef<'_, T>,
    x: MatRef<'_, T>,
) -> Result<T> {
    let n = cov.nrows();
    check::shape(
        "gaussian_log_density (mean)",
        (n, 1),
        (mean.nrows(), mean.ncols()),
    )?;
    check::shape("gaussian_log_density (x)", (n, 1), (x.nrows(), x.ncols()))?;
    let f = llt(cov)?;
    let d = x - mean;
    let sol = f.solve(d.as_ref());
    let quad = (d.transpose() * &sol)[(0, 0)];
    let mut log_det = T::zero();
    for i in 0..n {
        log_det += f.L()[(i, i)].ln();
    }
    log_det = log_det + log_det;
    let half = T::of(0.5);
    Ok(-half * T::of(n as f64 * (2.0 * std::f64::consts::PI).ln()) - half * log_det - half * quad)
}

/// `KL(N(m0, C0) || N(m1, C1)) = 1/2 [tr(C1^{-1} C0) + (m1 - m0)^T C1^{-1} (m1 - m0) - n
/// + log det C1 - log det C0]` (`m`: n x 1, `C`: n x n).
pub fn gaussian_kl<T: Scalar>(
    m0: MatRef<'_, T>,
    c0: MatRef<'_, T>,
    m1: MatRef<'_, T>,
    c1: MatRef<'_, T>,
) -> Result<T> {
    let n = c0.nrows();
    check::shape("gaussian_kl (C1)", (n, n), (c1.nrows(), c1.ncols()))?;
    check::shape("gaussian_kl (m0)", (n, 1), (m0.nrows(), m0.ncols()))?;
    check::shape("gaussian_kl (m1)", (n, 1), (m1.nrows(), m1.ncols()))?;
    let f1 = llt(c1)?;
    let s = f1.solve(c0);
    let mut tr = T::zero();
    for i in 0..n {
        tr += s[(i, i)];
    }
    let d = m1 - m0;
    let quad = (d.transpose() * f1.solve(d.as_ref()))[(0, 0)];
    let ld1 = spd_log_det(c1)?;
    let ld0 = spd_log_det(c0)?;
    Ok(T::of(0.5) * (tr + quad - T::of(n as f64) + ld1 - ld0))
}

/// Random matrix with iid `N(0, 1)` entries (rows x cols).
pub fn random_normal<R: rand::Rng + ?Sized>(rows: usize, cols: usize, rng: &mut R) -> Mat<f64> {
    let mut m = Mat::<f64>::zeros(rows, cols);
    for j in 0..cols {
        for i in 0..rows {
            m[(i, j)] = StandardNormal.sample(rng);
        }
    }
    m
}

/// Random orthogonal `Q` (n x n) from the QR factorization of a Gaussian matrix.
pub fn random_orthogonal<R: rand::Rng + ?Sized>(n: usize, rng: &mut R) -> Mat<f64> {
    random_normal(n, n, rng).qr().compute_Q()
}

/// `Q diag(eigs) Q^T` (symmetrized) with a random orthogonal `Q`.
pub fn spd_with_spectrum<R: rand::Rng + ?Sized>(eigs: &[f64], rng: &mut R) -> Mat<f64> {
    let n = eigs.len();
    let q = random_orthogonal(n, rng);
    let qd = Mat::from_fn(n, n, |i, j| q[(i, j)] * eigs[j]);
    let a = &qd * q.transpose();
    Mat::from_fn(n, n, |i, j| 0.5 * (a[(i, j)] + a[(j, i)]))
}

/// Random SPD matrix (n x n) with eigenvalues `logspace(0, log10 cond, n)` (1 to `cond`, so
/// condition number `cond`; a single eigenvalue 1 when n = 1).
pub fn random_spd<R: rand::Rng + ?Sized>(n: usize, cond: f64, rng: &mut R) -> Mat<f64> {
    spd_with_spectrum(&logspace_eigs(n, cond), rng)
}

/// `n` eigenvalues geometrically spaced from 1 to `cond`.
pub fn logspace_eigs(n: usize, cond: f64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            if n == 1 {
                1.0
            } else {
                cond.powf(i as f64 / (n - 1) as f64)
            }
        })
        .collect()
}

/// Random symmetric positive definite n x n matrix with eigenvalues in (1, 4):
/// diagonal uniform in [2, 3), off-diagonal uniform in (-1/n, 1/n) (Gershgorin).
pub fn random_spd_dominant<T: Scalar, R: Rng + ?Sized>(n: usize, rng: &mut R) -> Mat<T> {
    let mut a = Mat::<T>::zeros(n, n);
    let scale = 1.0 / n.max(1) as f64;
    for j in 0..n {
        a[(j, j)] = T::of(2.0 + rng.random::<f64>());
        for i in j + 1..n {
            let v = T::of(scale * rng.random_range(-1.0..1.0));
            a[(i, j)] = v;
            a[(j, i)] = v;
        }
    }
    a
}

/// Random rows x cols matrix with entries uniform in (-1, 1).
pub fn random_uniform<T: Scalar, R: Rng + ?Sized>(rows: usize, cols: usize, rng: &mut R) -> Mat<T> {
    Mat::from_fn(rows, cols, |_, _| T::of(rng.random_range(-1.0..1.0)))
}

/// `max |x - reference| / max |reference|` (0 when both are zero).
pub fn max_rel_diff<T: Scalar>(x: MatRef<'_, T>, reference: MatRef<'_, T>) -> f64 {
    let mut diff = 0.0f64;
    let mut scale = 0.0f64;
    for j in 0..reference.ncols() {
        for i in 0..reference.nrows() {
            let r = reference[(i, j)].to_f64();
            diff = diff.max((x[(i, j)].to_f64() - r).abs());
            scale = scale.max(r.abs());
        }
    }
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

/// Converts an `f64` matrix to `T`.
pub fn cast<T: Scalar>(m: MatRef<'_, f64>) -> Mat<T> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| T::of(m[(i, j)]))
}

/// Converts a `T` matrix to `f64`.
pub fn to_f64<T: Scalar>(m: MatRef<'_, T>) -> Mat<f64> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)].to_f64())
}

/// Relative Frobenius error `||a - b||_F / ||b||_F` (absolute when `b = 0`).
///
/// # Panics
/// If the shapes differ.
#[track_caller]
pub fn rel_err(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> f64 {
    let diff = (a - b).norm_l2();
    let nb = b.norm_l2();
    if nb > 0.0 {
        diff / nb
    } else {
        diff
    }
}

/// Relative error of scalars `|a - b| / max(|b|, 1)` (absolute for `|b| < 1`).
pub fn rel_err_scalar(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1.0)
}

/// Sample covariance about the known mean, `1/S sum_s vec(W_s - M) vec(W_s - M)^T`
/// (pq x pq), of `samples` draws of `mn` (accumulated by a SYRK in batches of 256 draws).
pub fn sample_covariance<T: Scalar, R: rand::Rng + ?Sized>(
    mn: &MatrixNormal<T>,
    samples: usize,
    rng: &mut R,
    par: Par,
) -> Result<Mat<T>> {
    let (p, q) = (mn.p(), mn.q());
    let n = p * q;
    check_dense_dim("sample covariance pq", n)?;
    const BATCH: usize = 256;
    let mut acc = Mat::<T>::zeros(n, n);
    let mut rows = Mat::<T>::zeros(BATCH, n);
    let mut w = Mat::<T>::zeros(p, q);
    let scale = T::of(1.0 / samples.max(1) as f64);
    let mut done = 0;
    while done < samples {
        let b = BATCH.min(samples - done);
        for r in 0..b {
            mn.sample_into(w.as_mut(), rng, par);
            for j in 0..q {
                for i in 0..p {
                    rows[(r, i + j * p)] = w[(i, j)] - mn.mean[(i, j)];
                }
            }
        }
        let z = rows.as_ref().subrows(0, b);
        triangular::matmul(
            acc.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Add,
            z.transpose(),
            BlockStructure::Rectangular,
            z,
            BlockStructure::Rectangular,
            scale,
            par,
        );
        done += b;
    }
    Ok(check::sym_from_lower(acc.as_ref()))
}

/// Whitened relative error of a sample covariance `C_hat` against `C` (both n x n, `C` SPD):
/// `||L^{-1} C_hat L^{-T} - I||_F / sqrt(n)` with `C = L L^T` (dense Cholesky). Unlike the
/// plain Frobenius error it weighs every direction by its variance, so its Monte Carlo
/// spread does not depend on `C` (see [`whitened_cov_tolerance`]).
pub fn whitened_cov_error(emp: MatRef<'_, f64>, cov: MatRef<'_, f64>) -> Result<f64> {
    let n = cov.nrows();
    check::shape(
        "whitened_cov_error (C_hat)",
        (n, n),
        (emp.nrows(), emp.ncols()),
    )?;
    let f = llt(cov)?;
    let mut e = emp.to_owned();
    solve_lower_triangular_in_place(f.L(), e.as_mut(), Par::Seq);
    solve_lower_triangular_in_place(f.L(), e.transpose_mut(), Par::Seq);
    for i in 0..n {
        e[(i, i)] -= 1.0;
    }
    Ok(e.norm_l2() / (n.max(1) as f64).sqrt())
}

/// Monte Carlo tolerance of [`whitened_cov_error`] for `S = samples` Gaussian draws about
/// the known mean. The whitened sample covariance is `Wishart(I_n, S) / S`, so with
/// `E = W - I`: `E ||E||_F^2 = n (n + 1) / S` exactly, and
/// `Var ||E||_F^2 ~= 4 n (n + 1) / S^2 + 8 n^3 / S^3` (entrywise noise plus the shared
/// fluctuation of the draws' norms; checked against simulation for n in 1..200, S in 2..2000).
/// The tolerance is `sqrt((mean + k sd) / n)`.
pub fn whitened_cov_tolerance(n: usize, samples: usize, k: f64) -> f64 {
    let n = n.max(1) as f64;
    let s = samples.max(1) as f64;
    let mean = n * (n + 1.0) / s;
    let sd = (4.0 * n * (n + 1.0) / (s * s) + 8.0 * n * n * n / (s * s * s)).sqrt();
    ((mean + k * sd) / n).sqrt()
}

/// Standard deviations of the squared whitened error allowed by [`verify_random_problem`].
const SAMPLE_COV_K: f64 = 10.0;

/// Largest sampled-covariance tolerance [`verify_random_problem`] accepts: a sample count
/// whose tolerance is above it could not tell the right covariance from one 20% off (whose
/// whitened error is 0.2), so it is refused instead of passing a check that cannot fail.
pub const MAX_SAMPLE_COV_TOL: f64 = 0.2;

/// The fewest samples whose [`whitened_cov_tolerance`] (with `k` = 10) is at most
/// [`MAX_SAMPLE_COV_TOL`] for an `n x n` covariance.
pub fn min_verify_samples(n: usize) -> usize {
    let ok = |s: usize| whitened_cov_tolerance(n, s, SAMPLE_COV_K) <= MAX_SAMPLE_COV_TOL;
    let mut hi = 2usize;
    while !ok(hi) {
        hi = hi.saturating_mul(2);
    }
    let mut lo = hi / 2;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if ok(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// Settings of [`verify_random_problem`] (the `bali verify dense` command).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyConfig {
    /// Rows `p` of `W` (including the bias row).
    pub p: usize,
    /// Columns `q` of `W`.
    pub q: usize,
    /// Number of data points `n`.
    pub n: usize,
    /// Random seed.
    pub seed: u64,
    /// Number of posterior draws for the sample-covariance check (at least 2).
    pub samples: usize,
}

impl Default for VerifyConfig {
    /// `p = q = 20`, `n = 200`, seed 0, 20 000 samples (at least [`min_verify_samples`]`(400)`).
    fn default() -> Self {
        VerifyConfig {
            p: 20,
            q: 20,
            n: 200,
            seed: 0,
            samples: 20_000,
        }
    }
}

/// Maximum relative errors of the Kronecker-factored code against the dense reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VerifyReport {
    /// Posterior mean `M_N`, relative Frobenius error.
    pub mean_rel: f64,
    /// Posterior covariance `Sigma kron Lambda_N^{-1}` vs `P^{-1}`, relative Frobenius error.
    pub cov_rel: f64,
    /// `log det(Sigma kron Lambda_N^{-1})`, relative error (absolute below 1).
    pub log_det_rel: f64,
    /// Log-density at a posterior draw, relative error (absolute below 1).
    pub log_density_rel: f64,
    /// KL from the posterior to a second matrix normal, relative error (absolute below 1).
    pub kl_rel: f64,
    /// `kron_solve` vs the dense solve of `(Sigma kron Lambda_N) vec X = vec V`, relative
    /// Frobenius error.
    pub solve_rel: f64,
    /// Sample covariance of the posterior draws vs `P^{-1}`, whitened relative error
    /// ([`whitened_cov_error`]).
    pub sample_cov_rel: f64,
    /// Monte Carlo tolerance of `sample_cov_rel`: [`whitened_cov_tolerance`] with
    /// `k = 10` standard deviations of the squared error.
    pub sample_cov_tol: f64,
    /// Tolerance of the deterministic errors (`1e-9`).
    pub tol: f64,
    /// All deterministic errors `<= tol` and `sample_cov_rel <= sample_cov_tol`.
    pub passed: bool,
}

impl VerifyReport {
    /// Every checked quantity as `(label, relative error, tolerance)`, in report order.
    pub fn rows(&self) -> [(&'static str, f64, f64); 7] {
        [
            ("mean", self.mean_rel, self.tol),
            ("covariance", self.cov_rel, self.tol),
            ("log-determinant", self.log_det_rel, self.tol),
            ("log-density", self.log_density_rel, self.tol),
            ("KL divergence", self.kl_rel, self.tol),
            ("solve", self.solve_rel, self.tol),
            (
                "sample covariance",
                self.sample_cov_rel,
                self.sample_cov_tol,
            ),
        ]
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = self.rows();
        for (name, err, tol) in rows {
            let ok = if err <= tol { "ok" } else { "FAIL" };
            writeln!(f, "{name:<18} rel err {err:.3e}  (tol {tol:.1e})  {ok}")?;
        }
        write!(f, "{}", if self.passed { "PASSED" } else { "FAILED" })
    }
}

/// Builds a random well-conditioned problem in `f64` and compares the Kronecker-factored
/// results with the dense reference:
///
/// `X` (n x p, Gaussian with a bias column of ones), `T = X W_true + 0.3 E`, prior
/// `M_0 = 0`, `Lambda_0 = I`, learned `Sigma` with `nu_0 = q + 2`, `Psi_0 = nu_0 0.1 I`;
/// posterior by [`posterior_step`] (`beta = 0`, `rho = 1`) and by [`posterior`] with the
/// learned `Sigma`. Cost `O((pq)^3 + samples (pq)^2)`.
///
/// Errors: [`MnError::InvalidParameter`] for `p = 0`, `q = 0`, `pq > 4096` or
/// `samples < 2`; numerical failures as values.
pub fn verify_random_problem(cfg: &VerifyConfig) -> Result<VerifyReport> {
    let (p, q, n) = (cfg.p, cfg.q, cfg.n);
    if p == 0 || q == 0 {
        return Err(MnError::InvalidParameter {
            name: "verify p, q",
            value: p.min(q) as f64,
            reason: "p and q must be >= 1",
        });
    }
    check_dense_dim("verify pq", p.saturating_mul(q))?;
    let needed = min_verify_samples(p * q);
    if cfg.samples < needed {
        return Err(MnError::TooFewSamples {
            samples: cfg.samples,
            needed,
            dim: p * q,
            tol: MAX_SAMPLE_COV_TOL,
        });
    }
    let par = Par::Seq;
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let mut x = random_normal(n, p, &mut rng);
    for i in 0..n {
        x[(i, p - 1)] = 1.0;
    }
    let w_true = random_normal(p, q, &mut rng) * faer::Scale(1.0 / (p as f64).sqrt());
    let t = &x * &w_true + random_normal(n, q, &mut rng) * faer::Scale(0.3);
    let nu0 = (q + 2) as f64;
    let prior = Prior::isotropic(p, q, 1.0, ColCovMode::learned_isotropic(q, nu0, 0.1));
    let mut stats = NaturalStats::new(p, q, 0.0)?;
    let pcfg = PosteriorConfig {
        layer: None,
        jitter: JitterPolicy::NONE,
        par,
    };
    let mn = posterior_step(&prior, &mut stats, x.as_ref(), t.as_ref(), 1.0, &pcfg)?;
    let sigma_owned = mn.col_cov.matrix();
    let sigma = sigma_owned.as_ref();
    let (dense_mean, dense_cov) = posterior(
        prior.precision.as_ref(),
        prior.mean.as_ref(),
        x.as_ref(),
        t.as_ref(),
        sigma,
    )?;
    let mean_rel = rel_err(mn.mean.as_ref(), dense_mean.as_ref());
    let kron_cov = kron(sigma, mn.row_precision.inverse(par).as_ref());
    let cov_rel = rel_err(kron_cov.as_ref(), dense_cov.as_ref());
    let log_det_rel = rel_err_scalar(mn.log_det_cov(), spd_log_det(dense_cov.as_ref())?);

    let w = mn.sample(&mut rng, par);
    let log_density_rel = rel_err_scalar(
        mn.log_density(w.as_ref(), par)?,
        gaussian_log_density(
            vec(dense_mean.as_ref()).as_ref(),
            dense_cov.as_ref(),
            vec(w.as_ref()).as_ref(),
        )?,
    );

    let other = MatrixNormal::new(
        random_normal(p, q, &mut rng) * faer::Scale(0.5),
        KronFactor::new(
            random_spd(p, 10.0, &mut rng),
            FactorId::matrix(),
            JitterPolicy::NONE,
            par,
        )?,
        KronFactor::new(
            random_spd(q, 10.0, &mut rng) * faer::Scale(0.2),
            FactorId::matrix(),
            JitterPolicy::NONE,
            par,
        )?,
    )?;
    let kl_rel = rel_err_scalar(
        mn.kl_divergence(&other, par)?,
        gaussian_kl(
            vec(dense_mean.as_ref()).as_ref(),
            dense_cov.as_ref(),
            vec(other.mean.as_ref()).as_ref(),
            covariance(&other)?.as_ref(),
        )?,
    );

    let v = random_normal(p, q, &mut rng);
    let x_kron = kron_solve(&mn.row_precision, &mn.col_cov, v.as_ref(), par);
    let big = kron(sigma, mn.row_precision.matrix().as_ref());
    let x_dense = unvec(
        spd_solve(big.as_ref(), vec(v.as_ref()).as_ref())?.as_ref(),
        p,
        q,
    );
    let solve_rel = rel_err(x_kron.as_ref(), x_dense.as_ref());

    let emp = sample_covariance(&mn, cfg.samples, &mut rng, par)?;
    let sample_cov_rel = whitened_cov_error(emp.as_ref(), dense_cov.as_ref())?;
    let sample_cov_tol = whitened_cov_tolerance(p * q, cfg.samples, SAMPLE_COV_K);

    let tol = 1e-9;
    let passed = [
        mean_rel,
        cov_rel,
        log_det_rel,
        log_density_rel,
        kl_rel,
        solve_rel,
    ]
    .iter()
    .all(|&e| e <= tol)
        && sample_cov_rel <= sample_cov_tol;
    Ok(VerifyReport {
        mean_rel,
        cov_rel,
        log_det_rel,
        log_density_rel,
        kl_rel,
        solve_rel,
        sample_cov_rel,
        sample_cov_tol,
        tol,
        passed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_and_kron_conventions() {
        let a = Mat::<f64>::from_fn(2, 2, |i, j| (1 + i + 2 * j) as f64);
        let x = Mat::<f64>::from_fn(2, 3, |i, j| (i as f64) - (j as f64) * 0.5);
        let b = Mat::<f64>::from_fn(3, 3, |i, j| ((i * 3 + j) % 4) as f64);
        let lhs = vec((&a * &x * &b).as_ref());
        let rhs = kron(b.transpose(), a.as_ref()) * vec(x.as_ref());
        assert!((&lhs - &rhs).norm_max() < 1e-12);
        assert_eq!(unvec(vec(x.as_ref()).as_ref(), 2, 3), x);
        assert_eq!(vec(x.as_ref())[(1, 0)], x[(1, 0)]);
        assert_eq!(vec(x.as_ref())[(2, 0)], x[(0, 1)]);
    }

    #[test]
    fn spd_helpers() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let eigs = [0.5, 2.0, 8.0];
        let a = spd_with_spectrum(&eigs, &mut rng);
        let ld = spd_log_det(a.as_ref()).unwrap();
        assert!((ld - 8.0f64.ln()).abs() < 1e-12);
        let inv = spd_inverse(a.as_ref()).unwrap();
        assert!((&inv * &a - Mat::<f64>::identity(3, 3)).norm_max() < 1e-12);
        let mut bad = Mat::<f64>::identity(2, 2);
        bad[(1, 1)] = -1.0;
        assert!(matches!(
            spd_log_det(bad.as_ref()),
            Err(MnError::NotPositiveDefinite { pivot: 1, .. })
        ));
        assert_eq!(logspace_eigs(3, 100.0), vec![1.0, 10.0, 100.0]);
    }

    #[test]
    fn gaussian_helpers_one_dimensional() {
        let m0 = Mat::<f64>::from_fn(1, 1, |_, _| 1.0);
        let c0 = Mat::<f64>::from_fn(1, 1, |_, _| 2.0);
        let m1 = Mat::<f64>::from_fn(1, 1, |_, _| -1.0);
        let c1 = Mat::<f64>::from_fn(1, 1, |_, _| 0.5);
        let kl = gaussian_kl(m0.as_ref(), c0.as_ref(), m1.as_ref(), c1.as_ref()).unwrap();
        let expect = 0.5 * (2.0 / 0.5 + 4.0 / 0.5 - 1.0 + (0.5f64 / 2.0).ln());
        assert!((kl - expect).abs() < 1e-12);
        let ld = gaussian_log_density(m0.as_ref(), c0.as_ref(), m1.as_ref()).unwrap();
        let expect = -0.5 * (2.0 * std::f64::consts::PI * 2.0).ln() - 0.5 * 4.0 / 2.0;
        assert!((ld - expect).abs() < 1e-12);
    }

    #[test]
    fn too_few_samples_are_refused_not_passed() {
        let defaults = VerifyConfig::default();
        let n = defaults.p * defaults.q;
        let needed = min_verify_samples(n);
        assert!(defaults.samples >= needed);
        assert!(whitened_cov_tolerance(n, needed, SAMPLE_COV_K) <= MAX_SAMPLE_COV_TOL);
        assert!(whitened_cov_tolerance(n, needed - 1, SAMPLE_COV_K) > MAX_SAMPLE_COV_TOL);
        let cfg = VerifyConfig {
            samples: 2,
            ..VerifyConfig::default()
        };
        let e = verify_random_problem(&cfg).unwrap_err();
        assert!(
            matches!(e, MnError::TooFewSamples { samples: 2, .. }),
            "{e}"
        );
        let cfg = VerifyConfig {
            samples: needed,
            ..VerifyConfig::default()
        };
        assert!(verify_random_problem(&cfg).unwrap().passed);
    }

    #[test]
    fn whitened_error_detects_wrong_scale() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let lam = KronFactor::new(
            random_spd(3, 5.0, &mut rng),
            FactorId::matrix(),
            JitterPolicy::NONE,
            Par::Seq,
        )
        .unwrap();
        let sig = KronFactor::new(
            random_spd(2, 5.0, &mut rng),
            FactorId::matrix(),
            JitterPolicy::NONE,
            Par::Seq,
        )
        .unwrap();
        let mn = MatrixNormal::new(random_normal(3, 2, &mut rng), lam, sig).unwrap();
        let s = 20_000;
        let emp = sample_covariance(&mn, s, &mut rng, Par::Seq).unwrap();
        let cov = covariance(&mn).unwrap();
        let tol = whitened_cov_tolerance(6, s, SAMPLE_COV_K);
        assert!(whitened_cov_error(emp.as_ref(), cov.as_ref()).unwrap() <= tol);
        let wrong = &cov * faer::Scale(1.1);
        assert!(whitened_cov_error(emp.as_ref(), wrong.as_ref()).unwrap() > tol);
        // Lambda instead of Lambda^{-1}
        let wrong = kron(
            mn.col_cov.matrix().as_ref(),
            mn.row_precision.matrix().as_ref(),
        );
        assert!(whitened_cov_error(emp.as_ref(), wrong.as_ref()).unwrap() > tol);
    }

    #[test]
    fn verify_small_problem_passes_and_guards() {
        let r = verify_random_problem(&VerifyConfig {
            p: 4,
            q: 3,
            n: 30,
            seed: 1,
            samples: 2000,
        })
        .unwrap();
        assert!(r.passed, "{r}");
        assert!(r.sample_cov_rel > 0.0);
        assert!(r.sample_cov_tol < 0.2);
        let big = VerifyConfig {
            p: 65,
            q: 64,
            ..Default::default()
        };
        assert!(matches!(
            verify_random_problem(&big),
            Err(MnError::InvalidParameter { .. })
        ));
        let few = VerifyConfig {
            samples: 1,
            ..Default::default()
        };
        assert!(verify_random_problem(&few).is_err());
    }
}
