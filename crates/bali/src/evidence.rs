//! The whole-network Laplace evidence of a regression MLP (MacKay 1992; the Kronecker-factored
//! form of laplace-torch's `KronLaplace.log_marginal_likelihood`, Immer et al. 2021), built
//! from Kronecker factors; no `pq x pq` matrix is formed.
//!
//! Model: standardized targets `y_n` (`q_L` outputs), `y_n ~ N(f(x_n; W), sigma^2 I)`, and a
//! Gaussian prior per layer `vec W_l ~ N(0, tau_l^{-1} I)` on its `P_l = p_l q_l` weights
//! (bias row included). Around weights `W*` (BALI's posterior means) the Laplace approximation
//! with the generalized Gauss-Newton (GGN) curvature is
//!
//! ```text
//! log Z = -(N q_L / 2) log(2 pi sigma^2) - RSS / (2 sigma^2)                      (fit)
//!         + sum_l [ (P_l / 2) log tau_l - (tau_l / 2) |W_l|^2 - (1/2) log det H_l ]  (complexity)
//! ```
//!
//! with `RSS = sum_n |y_n - f(x_n; W*)|^2` and `H_l = GGN_l / sigma^2 + tau_l I` the layer's
//! block of the posterior precision. K-FAC approximates the block (exactly for one row, and
//! for a network without hidden layers) by `GGN_l = N (B_l kron A_l)` with
//!
//! - `A_l = X_l^T X_l / N` (p_l x p_l), `X_l` the layer's bias-augmented input (N x p_l);
//! - `B_l = (1/N) sum_n J_nl^T J_nl` (q_l x q_l), `J_nl = dF_n / dH_l[n, :]` (q_L x q_l) the
//!   Jacobian of the outputs of row `n` with respect to the layer's pre-activations (one
//!   backward pass per output unit, the seed of [`Mlp::output_jacobian_backward`]);
//!   `B_{L-1} = I`.
//!
//! With the eigenvalues `a_i` of `A_l` and `b_j` of `B_l`, the GGN block has eigenvalues
//! `lambda_ij = N a_i b_j / sigma^2`, so `log det H_l = sum_ij log(lambda_ij + tau_l)`.
//! Without hidden layers the Laplace approximation is itself exact:
//! `log Z = log N(y | 0, sigma^2 I + X X^T / tau)` per output column at the exact MAP weights
//! (the test below checks both this and the one-row case against dense matrices).
//!
//! The hyperparameters maximize `log Z` at fixed `W*`. In `u_l = log tau_l` the objective is
//! concave, with derivative `(gamma_l - tau_l |W_l|^2) / 2`, `gamma_l = sum_ij lambda_ij /
//! (lambda_ij + tau_l)` (MacKay's effective number of parameters), so each `tau_l` is the root
//! of `tau_l |W_l|^2 = gamma_l`, found by bisection over `tau_l in [e^-40, e^40]`; `sigma^2`
//! maximizes the profile by [`metrics::maximize_1d`](crate::metrics::maximize_1d) over
//! `log sigma^2 in [log 1e-8, log 10]` (standardized units). At the optimum `sigma^2 = RSS /
//! (N q_L - sum_l gamma_l)` when that is positive.
//!
//! Cost: a forward pass and `q_L` backward passes over the `N` rows, `2 N (p_l^2 + q_L q_l^2)`
//! flops per layer for the factors, two symmetric eigendecompositions per layer
//! (`O(p_l^3 + q_l^3)`), then `sum_l p_l q_l` logarithms per evaluation of `log Z`.

use bali_autodiff::{Mlp, Trace};
use bali_kernels::Scalar;
use faer::{Mat, MatRef, Par};

use crate::error::{BaliError, Result};
use crate::metrics;

/// Bounds of the prior-precision search, `log tau_l in [-LOG_TAU_BOUND, LOG_TAU_BOUND]`.
const LOG_TAU_BOUND: f64 = 40.0;
/// Bounds of the noise search, `sigma^2 in [SIGMA2_MIN, SIGMA2_MAX]` (standardized units).
const SIGMA2_MIN: f64 = 1e-8;
const SIGMA2_MAX: f64 = 10.0;

/// What the evidence needs from one network on one data set: the spectra of the Kronecker
/// factors, the squared weight norms and the residual sum of squares (see the module
/// documentation). Independent of `sigma^2` and `tau_l`.
#[derive(Clone, Debug, PartialEq)]
pub struct LaplaceFactors {
    /// Eigenvalues `a_i` of `A_l = X_l^T X_l / N`, per layer (p_l each, rounding below 0
    /// set to 0: the matrix is a Gram matrix).
    pub input_eigs: Vec<Vec<f64>>,
    /// Eigenvalues `b_j` of `B_l = (1/N) sum_n J_nl^T J_nl`, per layer (q_l each).
    pub jacobian_eigs: Vec<Vec<f64>>,
    /// `|W_l|_F^2` per layer.
    pub weight_sq: Vec<f64>,
    /// `RSS = sum_n |y_n - f(x_n; W)|^2`.
    pub rss: f64,
    /// Rows `N`.
    pub rows: usize,
    /// Outputs `q_L`.
    pub outputs: usize,
}

/// The evidence at its maximizing hyperparameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    /// `log Z` (nats, standardized targets), the sum of `fit` and `complexity`.
    pub log_evidence: f64,
    /// `-(N q_L / 2) log(2 pi sigma^2) - RSS / (2 sigma^2)`.
    pub fit: f64,
    /// `sum_l [(P_l / 2) log tau_l - (tau_l / 2) |W_l|^2 - (1/2) log det H_l]` (<= 0 at the
    /// optimal `tau_l`).
    pub complexity: f64,
    /// The noise variance `sigma^2` (standardized units).
    pub sigma2: f64,
    /// The prior precisions `tau_l`, per layer.
    pub prior_precision: Vec<f64>,
    /// `sum_l gamma_l`, the effective number of parameters.
    pub effective_params: f64,
}

impl Evidence {
    /// `log Z / N`: comparable across data sets and carves of different sizes.
    pub fn per_row(&self, rows: usize) -> f64 {
        self.log_evidence / rows.max(1) as f64
    }
}

/// Buffers of [`LaplaceFactors::compute_into`], kept between calls on data of the same size
/// (the trace of the forward pass, the unit seed and the Jacobian rows of every layer).
#[derive(Clone, Debug)]
pub struct EvidenceWorkspace<T> {
    trace: Trace<T>,
    seed: Mat<T>,
    jacobians: Vec<Mat<T>>,
}

impl<T: Scalar> Default for EvidenceWorkspace<T> {
    fn default() -> Self {
        EvidenceWorkspace {
            trace: Trace::default(),
            seed: Mat::zeros(0, 0),
            jacobians: Vec::new(),
        }
    }
}

impl LaplaceFactors {
    /// The factors of the network `weights` (p_l x q_l, bias row last) on standardized
    /// inputs `x` (N x d_0) and targets `y` (N x q_L).
    ///
    /// Errors: no rows, shapes that do not fit the network, non-finite inputs, targets or
    /// weights, an eigendecomposition that does not converge.
    pub fn compute<T: Scalar>(
        mlp: &Mlp,
        weights: &[Mat<T>],
        x: MatRef<'_, T>,
        y: MatRef<'_, T>,
        par: Par,
    ) -> Result<Self> {
        Self::compute_into(mlp, weights, x, y, &mut EvidenceWorkspace::default(), par)
    }

    /// [`LaplaceFactors::compute`] with the `N`-row buffers of `work` reused (only the
    /// `p x p` and `q x q` factors and their spectra are allocated), for online use.
    pub fn compute_into<T: Scalar>(
        mlp: &Mlp,
        weights: &[Mat<T>],
        x: MatRef<'_, T>,
        y: MatRef<'_, T>,
        work: &mut EvidenceWorkspace<T>,
        par: Par,
    ) -> Result<Self> {
        let n = x.nrows();
        let outputs = mlp.num_outputs();
        if n == 0 {
            return Err(BaliError::InvalidOption {
                name: "rows",
                value: "0".into(),
                reason: "the Laplace evidence needs at least one row",
            });
        }
        if y.nrows() != n || y.ncols() != outputs {
            return Err(BaliError::Shape {
                what: "the targets of the Laplace evidence",
                expected: (n, outputs),
                got: (y.nrows(), y.ncols()),
            });
        }
        if !bali_kernels::all_finite(y) {
            return Err(BaliError::NonFinite {
                what: "the targets of the Laplace evidence",
                layer: None,
                step: 0,
            });
        }
        mlp.forward_into(weights, x, &mut work.trace, par)?;
        let f = work.trace.output();
        let mut rss = 0.0;
        for k in 0..outputs {
            for i in 0..n {
                let r = Scalar::to_f64(y[(i, k)]) - Scalar::to_f64(f[(i, k)]);
                rss += r * r;
            }
        }
        let layers = mlp.num_layers();
        let inv_n = 1.0 / n as f64;
        let mut jacobian_sq: Vec<Mat<f64>> = (0..layers)
            .map(|l| {
                let q = mlp.layer_shape(l).1;
                Mat::zeros(q, q)
            })
            .collect();
        if work.seed.nrows() != n || work.seed.ncols() != outputs {
            work.seed = Mat::zeros(n, outputs);
        }
        if work.jacobians.len() != layers || work.jacobians.first().is_some_and(|g| g.nrows() != n)
        {
            work.jacobians = (0..layers)
                .map(|l| Mat::zeros(n, mlp.layer_shape(l).1))
                .collect();
        }
        for k in 0..outputs {
            // Seed: column k all ones, so row n of G_l is dF_nk / dH_l[n, :].
            work.seed.fill(T::zero());
            work.seed.col_mut(k).fill(T::one());
            mlp.backward_into(
                weights,
                &work.trace,
                work.seed.as_ref(),
                &mut work.jacobians,
                par,
            )?;
            for (b, g) in jacobian_sq.iter_mut().zip(&work.jacobians) {
                let gram = g.transpose() * g;
                for j in 0..b.ncols() {
                    for i in 0..b.nrows() {
                        b[(i, j)] += Scalar::to_f64(gram[(i, j)]) * inv_n;
                    }
                }
            }
        }
        let mut input_eigs = Vec::with_capacity(layers);
        let mut jacobian_eigs = Vec::with_capacity(layers);
        for (l, (xl, b)) in work.trace.inputs.iter().zip(&jacobian_sq).enumerate() {
            let gram = xl.transpose() * xl;
            let a = Mat::<f64>::from_fn(gram.nrows(), gram.ncols(), |i, j| {
                Scalar::to_f64(gram[(i, j)]) * inv_n
            });
            input_eigs.push(spectrum(a.as_ref(), l, "input factor A_l = X_l^T X_l / N")?);
            jacobian_eigs.push(spectrum(
                b.as_ref(),
                l,
                "Jacobian factor B_l = sum_n J_nl^T J_nl / N",
            )?);
        }
        let weight_sq = weights
            .iter()
            .map(|w| {
                let mut total = 0.0;
                for j in 0..w.ncols() {
                    for i in 0..w.nrows() {
                        total += Scalar::to_f64(w[(i, j)]).powi(2);
                    }
                }
                total
            })
            .collect();
        Ok(LaplaceFactors {
            input_eigs,
            jacobian_eigs,
            weight_sq,
            rss,
            rows: n,
            outputs,
        })
    }

    /// `(fit, complexity)` of `log Z` at `sigma^2` and the prior precisions `tau` (one per
    /// layer), as in the module documentation.
    pub fn log_evidence_terms(&self, sigma2: f64, tau: &[f64]) -> (f64, f64) {
        let nq = (self.rows * self.outputs) as f64;
        let fit =
            -0.5 * nq * (2.0 * std::f64::consts::PI * sigma2).ln() - self.rss / (2.0 * sigma2);
        let mut complexity = 0.0;
        for (l, &t) in tau.iter().enumerate().take(self.weight_sq.len()) {
            let (p, q) = (self.input_eigs[l].len(), self.jacobian_eigs[l].len());
            let scale = self.rows as f64 / sigma2;
            let mut log_det = 0.0;
            for &a in &self.input_eigs[l] {
                for &b in &self.jacobian_eigs[l] {
                    log_det += (scale * a * b + t).ln();
                }
            }
            complexity +=
                0.5 * (p * q) as f64 * t.ln() - 0.5 * t * self.weight_sq[l] - 0.5 * log_det;
        }
        (fit, complexity)
    }

    /// `gamma_l(tau) = sum_ij lambda_ij / (lambda_ij + tau)`, `lambda_ij = N a_i b_j / sigma^2`.
    pub fn effective_params(&self, layer: usize, sigma2: f64, tau: f64) -> f64 {
        let scale = self.rows as f64 / sigma2;
        let mut gamma = 0.0;
        for &a in &self.input_eigs[layer] {
            for &b in &self.jacobian_eigs[layer] {
                let lambda = scale * a * b;
                gamma += lambda / (lambda + tau);
            }
        }
        gamma
    }

    /// The `tau_l` maximizing `log Z` at `sigma^2`: the root of `tau |W_l|^2 = gamma_l(tau)`
    /// in `log tau in [-40, 40]` (bisection to 1e-10 in `log tau`; the bound itself where
    /// the root lies beyond, e.g. `W_l = 0`).
    pub fn optimal_prior_precision(&self, layer: usize, sigma2: f64) -> f64 {
        self.optimal_shared_precision(layer..layer + 1, sigma2)
    }

    /// One prior precision `tau` shared by the layers `group` that maximizes `log Z` at
    /// `sigma^2`: the root of `tau sum_l |W_l|^2 = sum_l gamma_l(tau)` (as
    /// [`LaplaceFactors::optimal_prior_precision`]).
    pub fn optimal_shared_precision(&self, group: std::ops::Range<usize>, sigma2: f64) -> f64 {
        let w: f64 = self.weight_sq[group.clone()].iter().sum();
        let slope = |u: f64| {
            let gamma: f64 = group
                .clone()
                .map(|l| self.effective_params(l, sigma2, u.exp()))
                .sum();
            gamma - u.exp() * w
        };
        let (mut lo, mut hi) = (-LOG_TAU_BOUND, LOG_TAU_BOUND);
        if slope(hi) >= 0.0 {
            return hi.exp();
        }
        if slope(lo) <= 0.0 {
            return lo.exp();
        }
        while hi - lo > 1e-10 {
            let mid = 0.5 * (lo + hi);
            if slope(mid) > 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (0.5 * (lo + hi)).exp()
    }

    /// The per-layer `tau_l` at `sigma^2` with the precision of every group of layers at its
    /// optimum (equal within a group).
    fn optimal_precisions(&self, sigma2: f64, groups: &[std::ops::Range<usize>]) -> Vec<f64> {
        let mut tau = vec![1.0; self.weight_sq.len()];
        for g in groups {
            let t = self.optimal_shared_precision(g.clone(), sigma2);
            tau[g.clone()].fill(t);
        }
        tau
    }

    /// `log Z` at `sigma^2` with every `tau_l` at its optimum, and those `tau_l`.
    pub fn profile(&self, sigma2: f64) -> (f64, Vec<f64>) {
        let tau = self.optimal_precisions(sigma2, &self.each_layer());
        let (fit, complexity) = self.log_evidence_terms(sigma2, &tau);
        (fit + complexity, tau)
    }

    fn each_layer(&self) -> Vec<std::ops::Range<usize>> {
        (0..self.weight_sq.len()).map(|l| l..l + 1).collect()
    }

    /// The evidence at its maximizing `sigma^2` and `tau_l`, one precision per layer (module
    /// documentation).
    pub fn maximize(&self) -> Evidence {
        self.maximize_grouped(&self.each_layer())
    }

    /// [`LaplaceFactors::maximize`] with one precision per group of layers (the groups
    /// partition `0..L`; e.g. `[0..L-1, L-1..L]`: one for the hidden layers, one for the
    /// output layer).
    pub fn maximize_grouped(&self, groups: &[std::ops::Range<usize>]) -> Evidence {
        let (log_s2, _) = metrics::maximize_1d(
            |log_s2| {
                let s2 = log_s2.exp();
                let (fit, complexity) =
                    self.log_evidence_terms(s2, &self.optimal_precisions(s2, groups));
                fit + complexity
            },
            SIGMA2_MIN.ln(),
            SIGMA2_MAX.ln(),
            24,
            1e-6,
        );
        let sigma2 = log_s2.exp();
        let tau = self.optimal_precisions(sigma2, groups);
        let (fit, complexity) = self.log_evidence_terms(sigma2, &tau);
        let effective_params = (0..tau.len())
            .map(|l| self.effective_params(l, sigma2, tau[l]))
            .sum();
        Evidence {
            log_evidence: fit + complexity,
            fit,
            complexity,
            sigma2,
            prior_precision: tau,
            effective_params,
        }
    }
}

/// Eigenvalues of the symmetric PSD `m` (ascending), rounding below 0 set to 0. Sequential
/// (not faer's global parallelism), so the figures do not depend on the thread count.
fn spectrum(m: MatRef<'_, f64>, layer: usize, factor: &'static str) -> Result<Vec<f64>> {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::evd;
    let failed = || BaliError::Eigen {
        layer,
        factor,
        dim: m.nrows(),
    };
    let n = m.nrows();
    let mut s = faer::diag::Diag::<f64>::zeros(n);
    let scratch = evd::self_adjoint_evd_scratch::<f64>(
        n,
        evd::ComputeEigenvectors::No,
        Par::Seq,
        Default::default(),
    );
    evd::self_adjoint_evd(
        m,
        s.as_mut(),
        None,
        Par::Seq,
        MemStack::new(&mut MemBuffer::new(scratch)),
        Default::default(),
    )
    .map_err(|_| failed())?;
    let eigs: Vec<f64> = s.column_vector().iter().copied().collect();
    if eigs.iter().any(|e| !e.is_finite()) {
        return Err(failed());
    }
    Ok(eigs.into_iter().map(|e| e.max(0.0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bali_kernels::Activation;
    use bali_mn::dense;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn log_evidence_dense_linear(x: MatRef<'_, f64>, y: MatRef<'_, f64>, s2: f64, tau: f64) -> f64 {
        // log N(y_k | 0, s2 I + X X^T / tau), summed over output columns.
        let n = x.nrows();
        let mut c: Mat<f64> = (x * x.transpose()) * faer::Scale(1.0 / tau);
        for i in 0..n {
            c[(i, i)] += s2;
        }
        let mut total = 0.0;
        for k in 0..y.ncols() {
            let yk = y.subcols(k, 1).to_owned();
            total +=
                dense::gaussian_log_density(Mat::zeros(n, 1).as_ref(), c.as_ref(), yk.as_ref())
                    .unwrap();
        }
        total
    }

    /// Without hidden layers the Laplace evidence at the exact MAP weights is the exact
    /// marginal likelihood of Bayesian linear regression.
    #[test]
    fn linear_model_evidence_is_the_exact_marginal_likelihood() {
        let mut rng = StdRng::seed_from_u64(3);
        for &(n, d, q) in &[(9usize, 3usize, 1usize), (14, 4, 2), (5, 6, 1)] {
            let mlp = Mlp::new(vec![d, q], Activation::Relu).unwrap();
            let x = dense::random_normal(n, d, &mut rng);
            let y = dense::random_normal(n, q, &mut rng);
            let (s2, tau) = (0.7, 2.5);
            // X with the bias column, MAP W = (X^T X / s2 + tau I)^{-1} X^T y / s2.
            let mut xb = Mat::<f64>::ones(n, d + 1);
            xb.subcols_mut(0, d).copy_from(&x);
            let mut h: Mat<f64> = (xb.transpose() * &xb) * faer::Scale(1.0 / s2);
            for i in 0..=d {
                h[(i, i)] += tau;
            }
            let rhs: Mat<f64> = (xb.transpose() * &y) * faer::Scale(1.0 / s2);
            let w = dense::spd_solve(h.as_ref(), rhs.as_ref()).unwrap();
            let f = LaplaceFactors::compute(&mlp, &[w], x.as_ref(), y.as_ref(), Par::Seq).unwrap();
            let (fit, complexity) = f.log_evidence_terms(s2, &[tau]);
            let exact = log_evidence_dense_linear(xb.as_ref(), y.as_ref(), s2, tau);
            assert!(
                (fit + complexity - exact).abs() < 1e-9 * exact.abs().max(1.0),
                "n={n} d={d} q={q}: {} vs {exact}",
                fit + complexity
            );
        }
    }

    /// One row: K-FAC is the exact GGN block. The evidence equals the dense computation with
    /// the Jacobian of the outputs with respect to every weight by central differences.
    #[test]
    fn one_row_evidence_matches_the_dense_ggn() {
        let mut rng = StdRng::seed_from_u64(11);
        let dims = vec![3, 4, 3, 2];
        let mlp = Mlp::new(dims.clone(), Activation::Tanh).unwrap();
        let weights: Vec<Mat<f64>> = mlp.init_weights(&mut rng);
        let x = dense::random_normal(1, 3, &mut rng);
        let y = dense::random_normal(1, 2, &mut rng);
        let (s2, taus) = (0.3, [0.5, 2.0, 7.0]);
        let f = LaplaceFactors::compute(&mlp, &weights, x.as_ref(), y.as_ref(), Par::Seq).unwrap();
        let (fit, complexity) = f.log_evidence_terms(s2, &taus);
        let out = |w: &[Mat<f64>]| {
            mlp.forward(w, x.as_ref(), Par::Seq)
                .unwrap()
                .output()
                .to_owned()
        };
        let f0 = out(&weights);
        let mut dense_total = 0.0;
        let mut rss = 0.0;
        for k in 0..2 {
            rss += (y[(0, k)] - f0[(0, k)]).powi(2);
        }
        dense_total += -0.5 * 2.0 * (2.0 * std::f64::consts::PI * s2).ln() - rss / (2.0 * s2);
        for (l, &tau) in taus.iter().enumerate() {
            let (p, q) = mlp.layer_shape(l);
            let mut jac = Mat::<f64>::zeros(2, p * q);
            let h = 1e-6;
            for c in 0..q {
                for r in 0..p {
                    let mut wp = weights.clone();
                    wp[l][(r, c)] += h;
                    let mut wm = weights.clone();
                    wm[l][(r, c)] -= h;
                    let (fp, fm) = (out(&wp), out(&wm));
                    for k in 0..2 {
                        jac[(k, c * p + r)] = (fp[(0, k)] - fm[(0, k)]) / (2.0 * h);
                    }
                }
            }
            let mut hl: Mat<f64> = (jac.transpose() * &jac) * faer::Scale(1.0 / s2);
            for i in 0..p * q {
                hl[(i, i)] += tau;
            }
            let log_det = dense::spd_log_det(hl.as_ref()).unwrap();
            dense_total += 0.5 * (p * q) as f64 * tau.ln()
                - 0.5 * tau * weights[l].squared_norm_l2()
                - 0.5 * log_det;
        }
        let got = fit + complexity;
        assert!(
            (got - dense_total).abs() < 1e-6 * dense_total.abs().max(1.0),
            "{got} vs dense {dense_total}"
        );
    }

    /// Several rows: the factors' log-determinant equals the dense `N B kron A + tau I`.
    #[test]
    fn kronecker_log_det_matches_the_dense_kronecker_product() {
        let mut rng = StdRng::seed_from_u64(5);
        let mlp = Mlp::new(vec![3, 5, 1], Activation::Relu).unwrap();
        let weights: Vec<Mat<f64>> = mlp.init_weights(&mut rng);
        let n = 8;
        let x = dense::random_normal(n, 3, &mut rng);
        let y = dense::random_normal(n, 1, &mut rng);
        let f = LaplaceFactors::compute(&mlp, &weights, x.as_ref(), y.as_ref(), Par::Seq).unwrap();
        let trace = mlp.forward(&weights, x.as_ref(), Par::Seq).unwrap();
        let gs = mlp
            .output_jacobian_backward(&weights, &trace, 0, Par::Seq)
            .unwrap();
        let (s2, tau) = (0.4, 1.3);
        for (l, (xl, g)) in trace.inputs.iter().zip(&gs).enumerate() {
            let a: Mat<f64> = (xl.transpose() * xl) * faer::Scale(1.0 / n as f64);
            let b: Mat<f64> = (g.transpose() * g) * faer::Scale(1.0 / n as f64);
            let mut h = dense::kron(b.as_ref(), a.as_ref()) * faer::Scale(n as f64 / s2);
            for i in 0..h.nrows() {
                h[(i, i)] += tau;
            }
            let want = dense::spd_log_det(h.as_ref()).unwrap();
            let scale = n as f64 / s2;
            let got: f64 = f.input_eigs[l]
                .iter()
                .flat_map(|&ai| {
                    f.jacobian_eigs[l]
                        .iter()
                        .map(move |&bj| (scale * ai * bj + tau).ln())
                })
                .sum();
            assert!(
                (got - want).abs() < 1e-9 * want.abs().max(1.0),
                "layer {l}: {got} vs {want}"
            );
        }
    }

    /// The maximizer: `tau_l` solves `tau |W_l|^2 = gamma_l`, `sigma^2 = RSS / (N q - gamma)`,
    /// and no nearby point is better.
    #[test]
    fn maximize_finds_the_stationary_point() {
        let mut rng = StdRng::seed_from_u64(8);
        let mlp = Mlp::new(vec![2, 6, 1], Activation::Tanh).unwrap();
        let weights: Vec<Mat<f64>> = mlp.init_weights(&mut rng);
        let n = 40;
        let x = dense::random_normal(n, 2, &mut rng);
        let fx = mlp
            .forward(&weights, x.as_ref(), Par::Seq)
            .unwrap()
            .output()
            .to_owned();
        let noise = dense::random_normal(n, 1, &mut rng);
        let y: Mat<f64> = &fx + noise * faer::Scale(0.3);
        let f = LaplaceFactors::compute(&mlp, &weights, x.as_ref(), y.as_ref(), Par::Seq).unwrap();
        let e = f.maximize();
        for (l, &t) in e.prior_precision.iter().enumerate() {
            let gamma = f.effective_params(l, e.sigma2, t);
            assert!(
                (t * f.weight_sq[l] - gamma).abs() < 1e-6 * gamma.max(1.0),
                "layer {l}"
            );
        }
        let s2_fixed = f.rss / (n as f64 - e.effective_params);
        assert!(
            (e.sigma2 / s2_fixed - 1.0).abs() < 1e-3,
            "{} vs {s2_fixed}",
            e.sigma2
        );
        for &(ds, dt) in &[(1.05, 1.0), (0.95, 1.0), (1.0, 1.1), (1.0, 0.9)] {
            let tau: Vec<f64> = e.prior_precision.iter().map(|t| t * dt).collect();
            let (a, b) = f.log_evidence_terms(e.sigma2 * ds, &tau);
            assert!(a + b <= e.log_evidence + 1e-9);
        }
        assert!(e.complexity < 0.0);
        assert!(e.sigma2 > 0.05 && e.sigma2 < 0.3, "sigma2 {}", e.sigma2);
    }

    #[test]
    fn bad_targets_are_refused() {
        let mlp = Mlp::new(vec![2, 1], Activation::Relu).unwrap();
        let w = vec![Mat::<f64>::zeros(3, 1)];
        let x = Mat::<f64>::zeros(4, 2);
        let mut y = Mat::<f64>::zeros(4, 1);
        y[(2, 0)] = f64::NAN;
        assert!(matches!(
            LaplaceFactors::compute(&mlp, &w, x.as_ref(), y.as_ref(), Par::Seq),
            Err(BaliError::NonFinite { .. })
        ));
        let y3 = Mat::<f64>::zeros(3, 1);
        assert!(matches!(
            LaplaceFactors::compute(&mlp, &w, x.as_ref(), y3.as_ref(), Par::Seq),
            Err(BaliError::Shape { .. })
        ));
        let x0 = Mat::<f64>::zeros(0, 2);
        let y0 = Mat::<f64>::zeros(0, 1);
        assert!(LaplaceFactors::compute(&mlp, &w, x0.as_ref(), y0.as_ref(), Par::Seq).is_err());
    }
}
