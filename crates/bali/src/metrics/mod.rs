//! Predictive metrics (f64).
//!
//! Regression: the predictive distribution is the equal mixture of `S` Gaussians
//! `p(y|x) = 1/S sum_s N(y; f_s(x), sigma^2)` built from `S` sampled networks `f_s`. Log
//! likelihoods use log-sum-exp and are reported in the ORIGINAL units of `y`: with `y`
//! standardized by the scale `s_y`, `log p(y_orig) = log p(y_std) - log s_y`.
//!
//! Shape mismatches of the regression metrics are programmer errors and assert
//! (`#[track_caller]`).
//!
//! Classification (`p(c|x) = 1/S sum_s softmax(f_s(x))_c`, from
//! [`crate::BayesianMlp::predict_categorical`]): [`classification`] holds the protocol's
//! metrics as fallible functions (mismatched or empty inputs are a
//! [`BaliError`](crate::BaliError)): accuracy, NLL, Brier score, reliability bins and ECE,
//! entropy and mutual information, AUROC and FPR at a TPR.

pub mod classification;

use faer::{Mat, MatRef};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// `log sum_i exp(a_i)`, computed stably; `-inf` for an empty slice or all `-inf`.
pub fn logsumexp(a: &[f64]) -> f64 {
    let m = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY || m.is_nan() {
        return m;
    }
    if m == f64::INFINITY {
        return m;
    }
    m + a.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// `log N(y; mean, sigma2) = -1/2 log(2 pi sigma2) - (y - mean)^2 / (2 sigma2)`.
pub fn log_normal_pdf(y: f64, mean: f64, sigma2: f64) -> f64 {
    -0.5 * (LN_2PI + sigma2.ln()) - 0.5 * (y - mean).powi(2) / sigma2
}

/// Standard normal CDF `Phi(z) = erfc(-z / sqrt 2) / 2` (full double precision in both tails).
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z * std::f64::consts::FRAC_1_SQRT_2)
}

#[track_caller]
fn check_samples(means: &[MatRef<'_, f64>], y: MatRef<'_, f64>) {
    assert!(!means.is_empty(), "need at least one predictive sample");
    for (s, m) in means.iter().enumerate() {
        assert!(
            m.nrows() == y.nrows() && m.ncols() == y.ncols(),
            "sample {s} is {}x{} but y is {}x{}",
            m.nrows(),
            m.ncols(),
            y.nrows(),
            y.ncols()
        );
    }
}

#[track_caller]
fn check_sigma2(sigma2: f64) {
    assert!(
        sigma2 > 0.0 && sigma2.is_finite(),
        "predictive noise variance must be positive and finite, got {sigma2}"
    );
}

/// Per-point log predictive density of the Gaussian mixture, in original units:
///
/// `log p(y_i|x_i) = logsumexp_s( sum_j log N(y_ij; f_s,ij, sigma2) ) - log S - q log y_scale`
///
/// `means`: `S` samples of predictions, each `n x q` (usually `q = 1`) in standardized units;
/// `y`: `n x q` targets in the same standardized units; `sigma2 > 0`: noise variance in
/// standardized units; `y_scale > 0`: the target scale `s_y` (1 when not standardized).
/// Returns `n` values. Computed through [`MixtureResiduals`].
#[track_caller]
pub fn gaussian_mixture_log_lik(
    means: &[MatRef<'_, f64>],
    sigma2: f64,
    y: MatRef<'_, f64>,
    y_scale: f64,
) -> Vec<f64> {
    let mut mixture = MixtureResiduals::new(means, y);
    let mut out = vec![0.0; y.nrows()];
    mixture.log_lik_into(sigma2, y_scale, &mut out);
    out
}

/// The components' squared residuals of an equal Gaussian mixture, computed once and
/// evaluated at many noise levels (the predictive-noise search evaluates about 25):
///
/// `h_is = 1/2 sum_j (y_ij - f_s,ij)^2` (`n x S`, column-major), and then
/// `log p(y_i|x_i) = logsumexp_s(-h_is / sigma2) - q/2 log(2 pi sigma2) - log S - q log y_scale`,
///
/// the same density as [`gaussian_mixture_log_lik`] with the per-component constant taken out
/// of the log-sum-exp: one vectorized `exp` per component and row
/// ([`bali_kernels::logsumexp_rows_into`]), no logarithm. The scaled residuals
/// `-h_is / sigma2` reuse a scratch matrix of the same shape.
#[derive(Clone, Debug)]
pub struct MixtureResiduals {
    half_sq: Mat<f64>,
    scaled: Mat<f64>,
    q: usize,
}

impl MixtureResiduals {
    /// `h_is` of `S` prediction samples `means` (each `n x q`) against the targets `y`
    /// (`n x q`), both in the same (standardized) units.
    #[track_caller]
    pub fn new(means: &[MatRef<'_, f64>], y: MatRef<'_, f64>) -> Self {
        check_samples(means, y);
        let (n, q) = (y.nrows(), y.ncols());
        let mut half_sq = Mat::<f64>::zeros(n, means.len());
        for (s, m) in means.iter().enumerate() {
            let col = half_sq
                .col_mut(s)
                .try_as_col_major_mut()
                .expect("owned column");
            let col = col.as_slice_mut();
            for j in 0..q {
                for (i, h) in col.iter_mut().enumerate() {
                    let r = y[(i, j)] - m[(i, j)];
                    *h += 0.5 * r * r;
                }
            }
        }
        MixtureResiduals {
            scaled: Mat::zeros(n, means.len()),
            half_sq,
            q,
        }
    }

    /// Number of rows `n`.
    pub fn rows(&self) -> usize {
        self.half_sq.nrows()
    }

    /// `log p(y_i|x_i)` of every row at noise variance `sigma2 > 0` (standardized units) in
    /// the units of `y_scale > 0`, into `out` (length `n`).
    #[track_caller]
    pub fn log_lik_into(&mut self, sigma2: f64, y_scale: f64, out: &mut [f64]) {
        check_sigma2(sigma2);
        assert!(
            y_scale > 0.0 && y_scale.is_finite(),
            "y_scale must be positive and finite, got {y_scale}"
        );
        assert_eq!(out.len(), self.rows(), "one output per row");
        let inv = -1.0 / sigma2;
        for s in 0..self.half_sq.ncols() {
            let h = self
                .half_sq
                .col(s)
                .try_as_col_major()
                .expect("owned column");
            let z = self
                .scaled
                .col_mut(s)
                .try_as_col_major_mut()
                .expect("owned column");
            for (z, &h) in z.as_slice_mut().iter_mut().zip(h.as_slice()) {
                *z = h * inv;
            }
        }
        bali_kernels::logsumexp_rows_into(self.scaled.as_ref(), out);
        let q = self.q as f64;
        let offset = 0.5 * q * (LN_2PI + sigma2.ln())
            + (self.half_sq.ncols() as f64).ln()
            + q * y_scale.ln();
        for v in out.iter_mut() {
            *v -= offset;
        }
    }

    /// Mean over rows of [`MixtureResiduals::log_lik_into`] (0 for no rows); `scratch` holds
    /// the per-row values (length `n`).
    #[track_caller]
    pub fn mean_log_lik(&mut self, sigma2: f64, y_scale: f64, scratch: &mut [f64]) -> f64 {
        self.log_lik_into(sigma2, y_scale, scratch);
        scratch.iter().sum::<f64>() / scratch.len().max(1) as f64
    }
}

/// Mean over points of [`gaussian_mixture_log_lik`] (the test log-likelihood).
#[track_caller]
pub fn mean_gaussian_mixture_log_lik(
    means: &[MatRef<'_, f64>],
    sigma2: f64,
    y: MatRef<'_, f64>,
    y_scale: f64,
) -> f64 {
    let ll = gaussian_mixture_log_lik(means, sigma2, y, y_scale);
    ll.iter().sum::<f64>() / ll.len().max(1) as f64
}

/// Predictive mean `1/S sum_s f_s`, same shape as each sample.
#[track_caller]
pub fn predictive_mean(samples: &[MatRef<'_, f64>]) -> Mat<f64> {
    assert!(!samples.is_empty(), "need at least one predictive sample");
    let (n, q) = (samples[0].nrows(), samples[0].ncols());
    check_samples(samples, samples[0]);
    let inv = 1.0 / samples.len() as f64;
    Mat::from_fn(n, q, |i, j| {
        samples.iter().map(|m| m[(i, j)]).sum::<f64>() * inv
    })
}

/// Root mean squared error `sqrt(1/(n q) sum_ij (pred_ij - y_ij)^2)` of two `n x q` matrices.
#[track_caller]
pub fn rmse(pred: MatRef<'_, f64>, y: MatRef<'_, f64>) -> f64 {
    assert!(
        pred.nrows() == y.nrows() && pred.ncols() == y.ncols(),
        "rmse: pred is {}x{} but y is {}x{}",
        pred.nrows(),
        pred.ncols(),
        y.nrows(),
        y.ncols()
    );
    let count = y.nrows() * y.ncols();
    if count == 0 {
        return 0.0;
    }
    let mut sse = 0.0;
    for j in 0..y.ncols() {
        for i in 0..y.nrows() {
            sse += (pred[(i, j)] - y[(i, j)]).powi(2);
        }
    }
    (sse / count as f64).sqrt()
}

/// Probability integral transform of each target under the mixture:
/// `u_ij = F_ij(y_ij) = 1/S sum_s Phi((y_ij - f_s,ij) / sigma)`, in `[0, 1]`, listed
/// column-major. A calibrated predictive distribution gives uniform `u`. Units cancel, so
/// standardized `f`, `y`, `sigma2` give the same `u` as original ones.
#[track_caller]
pub fn mixture_pit(samples: &[MatRef<'_, f64>], sigma2: f64, y: MatRef<'_, f64>) -> Vec<f64> {
    check_samples(samples, y);
    check_sigma2(sigma2);
    let sigma = sigma2.sqrt();
    let inv_s = 1.0 / samples.len() as f64;
    let mut out = Vec::with_capacity(y.nrows() * y.ncols());
    for j in 0..y.ncols() {
        for i in 0..y.nrows() {
            let v = y[(i, j)];
            let cdf: f64 = samples
                .iter()
                .map(|m| normal_cdf((v - m[(i, j)]) / sigma))
                .sum();
            out.push((cdf * inv_s).clamp(0.0, 1.0));
        }
    }
    out
}

/// The `prob`-quantile of the equal mixture `1/S sum_s N(means_s, sigma2)` (`0 < prob < 1`,
/// `S >= 1`, `sigma2 > 0`): bisection of the mixture CDF on
/// `[min means - 9 sigma, max means + 9 sigma]` to a relative width of `1e-12` of that range.
pub fn mixture_quantile(means: &[f64], sigma2: f64, prob: f64) -> f64 {
    let sigma = sigma2.sqrt();
    let (lo_mean, hi_mean) = means
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &m| {
            (a.min(m), b.max(m))
        });
    let (mut lo, mut hi) = (lo_mean - 9.0 * sigma, hi_mean + 9.0 * sigma);
    let cdf = |v: f64| {
        means
            .iter()
            .map(|m| normal_cdf((v - m) / sigma))
            .sum::<f64>()
            / means.len() as f64
    };
    let tol = 1e-12 * (hi - lo);
    while hi - lo > tol {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) < prob {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Fraction of targets inside the central predictive interval of each level `l` in `levels`:
/// `y` lies in the central `l` interval of the mixture iff `(1 - l)/2 <= F(y) <= (1 + l)/2`,
/// where `F` is the mixture CDF ([`mixture_pit`]). Returns one fraction per level.
#[track_caller]
pub fn interval_coverage(
    samples: &[MatRef<'_, f64>],
    sigma2: f64,
    y: MatRef<'_, f64>,
    levels: &[f64],
) -> Vec<f64> {
    let u = mixture_pit(samples, sigma2, y);
    coverage_from_pit(&u, levels)
}

/// Coverage fractions from PIT values `u` (see [`interval_coverage`]).
pub fn coverage_from_pit(u: &[f64], levels: &[f64]) -> Vec<f64> {
    let n = u.len().max(1) as f64;
    levels
        .iter()
        .map(|&l| {
            let (lo, hi) = ((1.0 - l) / 2.0, (1.0 + l) / 2.0);
            u.iter().filter(|&&v| v >= lo && v <= hi).count() as f64 / n
        })
        .collect()
}

/// The nominal levels of [`calibration_curve`]: `0.05, 0.10, ..., 0.95`.
pub fn calibration_levels() -> Vec<f64> {
    (1..=19).map(|k| k as f64 * 0.05).collect()
}

/// Expected vs observed coverage of central predictive intervals for the levels
/// `0.05, 0.10, ..., 0.95`: returns `(levels, observed)`; a calibrated model has
/// `observed ~= levels`.
#[track_caller]
pub fn calibration_curve(
    samples: &[MatRef<'_, f64>],
    sigma2: f64,
    y: MatRef<'_, f64>,
) -> (Vec<f64>, Vec<f64>) {
    let levels = calibration_levels();
    let observed = interval_coverage(samples, sigma2, y, &levels);
    (levels, observed)
}

/// Mean absolute gap `1/K sum_k |observed_k - level_k|` of a calibration curve.
#[track_caller]
pub fn coverage_calibration_error(levels: &[f64], observed: &[f64]) -> f64 {
    assert_eq!(
        levels.len(),
        observed.len(),
        "levels and observed differ in length"
    );
    if levels.is_empty() {
        return 0.0;
    }
    levels
        .iter()
        .zip(observed)
        .map(|(l, o)| (o - l).abs())
        .sum::<f64>()
        / levels.len() as f64
}

/// Mean and standard error over splits: `(mean, sd / sqrt(n))` with the population standard
/// deviation `sd` (ddof = 0, as DropoutUncertaintyExps reports). One value gives `(v, 0)`.
#[track_caller]
pub fn mean_and_stderr(values: &[f64]) -> (f64, f64) {
    assert!(!values.is_empty(), "mean_and_stderr of no values");
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, (var / n).sqrt())
}

/// Maximizes `f(log sigma^2)` over `[lo, hi]`: a coarse grid of 25 points, then golden-section
/// search in the bracket around the best grid point down to `1e-6 (hi - lo)`. Non-finite values
/// of `f` count as `-inf`. Returns the maximizing `log sigma^2`; used to choose the predictive
/// noise on held-out data (e.g. `f = |t| mean_gaussian_mixture_log_lik(.., t.exp(), ..)`).
pub fn optimize_log_sigma2(f: impl FnMut(f64) -> f64, lo: f64, hi: f64) -> f64 {
    maximize_1d(f, lo, hi, 25, 1e-6).0
}

/// Grid-then-golden-section maximization of `f` on `[lo, hi]` (endpoints swapped if reversed):
/// evaluates `grid >= 3` equally spaced points, then narrows `[x_{k-1}, x_{k+1}]` around the
/// best one by golden-section steps until it is shorter than `rel_tol (hi - lo)`. Returns
/// `(x*, f(x*))`, the best point seen. Non-finite values of `f` count as `-inf`.
pub fn maximize_1d(
    mut f: impl FnMut(f64) -> f64,
    lo: f64,
    hi: f64,
    grid: usize,
    rel_tol: f64,
) -> (f64, f64) {
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    let mut g = |x: f64| {
        let v = f(x);
        if v.is_finite() {
            v
        } else {
            f64::NEG_INFINITY
        }
    };
    if hi - lo <= 0.0 {
        return (lo, g(lo));
    }
    let grid = grid.max(3);
    let step = (hi - lo) / (grid - 1) as f64;
    let xs: Vec<f64> = (0..grid).map(|k| lo + step * k as f64).collect();
    let vs: Vec<f64> = xs.iter().map(|&x| g(x)).collect();
    let mut k_best = 0;
    for k in 1..grid {
        if vs[k] > vs[k_best] {
            k_best = k;
        }
    }
    let (mut best_x, mut best_v) = (xs[k_best], vs[k_best]);
    let mut a = xs[k_best.saturating_sub(1)];
    let mut b = xs[(k_best + 1).min(grid - 1)];
    let inv_phi = (5f64.sqrt() - 1.0) / 2.0;
    let tol = rel_tol.max(f64::EPSILON) * (hi - lo);
    let mut c = b - inv_phi * (b - a);
    let mut d = a + inv_phi * (b - a);
    let (mut fc, mut fd) = (g(c), g(d));
    while b - a > tol {
        if fc >= fd {
            b = d;
            d = c;
            fd = fc;
            c = b - inv_phi * (b - a);
            fc = g(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + inv_phi * (b - a);
            fd = g(d);
        }
    }
    for (x, v) in [(c, fc), (d, fd)] {
        if v > best_v {
            best_x = x;
            best_v = v;
        }
    }
    (best_x, best_v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The residual form against the density's definition term by term (`q = 2`, `S = 3`,
    /// noise levels from 1e-6 to 10, a target scale): every row within 1e-12 relative, the
    /// far-off rows at tiny noise included (there one component dominates by e^1e6).
    #[test]
    fn mixture_residuals_match_the_mixture_density() {
        let (n, q) = (7, 2);
        let y = Mat::from_fn(n, q, |i, j| (i as f64 * 0.7 - j as f64 * 1.3).sin());
        let means: Vec<Mat<f64>> = (0..3)
            .map(|s| Mat::from_fn(n, q, |i, j| ((i * 3 + j + 5 * s) as f64 * 0.37).cos()))
            .collect();
        let refs: Vec<MatRef<'_, f64>> = means.iter().map(|m| m.as_ref()).collect();
        let mut mixture = MixtureResiduals::new(&refs, y.as_ref());
        let mut out = vec![0.0; n];
        for &(sigma2, y_scale) in &[(1e-6, 1.0), (0.01, 2.5), (0.3, 1.0), (10.0, 0.4)] {
            mixture.log_lik_into(sigma2, y_scale, &mut out);
            for (i, &got) in out.iter().enumerate() {
                let comp: Vec<f64> = refs
                    .iter()
                    .map(|m| {
                        (0..q)
                            .map(|j| log_normal_pdf(y[(i, j)], m[(i, j)], sigma2))
                            .sum()
                    })
                    .collect();
                let want = logsumexp(&comp) - 3f64.ln() - q as f64 * y_scale.ln();
                assert!(
                    (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "row {i} at sigma2 {sigma2}: {got} vs {want}"
                );
            }
            let mut scratch = vec![0.0; n];
            let mean = mixture.mean_log_lik(sigma2, y_scale, &mut scratch);
            assert!((mean - out.iter().sum::<f64>() / n as f64).abs() < 1e-12);
        }
    }

    #[test]
    fn logsumexp_is_stable() {
        assert!((logsumexp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(logsumexp(&[]), f64::NEG_INFINITY);
        assert!((logsumexp(&[-1e308, 0.0]) - 0.0).abs() < 1e-15);
    }

    #[test]
    fn normal_cdf_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-16);
        assert!((normal_cdf(1.959_963_984_540_054) - 0.975).abs() < 1e-14);
        assert!((normal_cdf(-1.0) - 0.158_655_253_931_457_05).abs() < 1e-15);
        // Far tail keeps relative precision: Phi(-10) = 7.619853024160527e-24.
        assert!((normal_cdf(-10.0) / 7.619_853_024_160_527e-24 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn maximize_finds_interior_and_boundary_maxima() {
        let x = optimize_log_sigma2(|t| -(t - 0.3).powi(2), -5.0, 5.0);
        assert!((x - 0.3).abs() < 1e-4, "{x}");
        let (x, v) = maximize_1d(|t| t, -2.0, 1.0, 10, 1e-8);
        assert!((x - 1.0).abs() < 1e-6 && (v - 1.0).abs() < 1e-6);
        // NaN regions are avoided.
        let x = optimize_log_sigma2(|t| if t < -1.0 { f64::NAN } else { -t * t }, -3.0, 3.0);
        assert!(x.abs() < 1e-4, "{x}");
    }
}
