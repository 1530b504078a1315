//! The BALI training loop (ALGORITHM.md sections 3-5).
//!
//! Every layer `l` holds an exact matrix-normal posterior `MN(M_l, Lambda_l^{-1}, Sigma_l)` given
//! its pseudo-targets `T_l` and prior, built from an EMA of natural-parameter statistics.
//! [`Bali::step`] runs one mini-batch of the chosen [`Formulation`].

use std::ops::ControlFlow;

use bali_autodiff::{Mlp, Trace};
use bali_kernels::{
    all_finite, column_sq_norms_into, sub_scaled_in_place, sub_scaled_into, syrk_ema, ParPolicy,
    Scalar,
};
use bali_mn::{
    posterior_step, ColCovMode, FactorId, KronFactor, MatrixNormal, NaturalStats, PosteriorConfig,
    Prior,
};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::config::{BaliConfig, Formulation, Preconditioner, SigmaSpec};
use crate::error::{BaliError, Result};

/// EMA of the output-side curvature factor `C_l` (q x q, lower triangle kept), without `rho`.
///
/// With `diagonal_only` (the `Scalar` preconditioner, which reads nothing but `tr C~_l`) only
/// the diagonal of `C_hat` is kept up to date: the EMA is linear, so its diagonal is the EMA
/// of the batch diagonals, and `diag(Delta^T Delta)` costs `K B q` flops instead of the
/// `K B q^2` of the SYRK. The strict lower triangle then stays zero.
#[derive(Clone, Debug)]
struct CurvatureEma<T> {
    c_hat: Mat<T>,
    diagonal_only: bool,
    step: u64,
    /// `floor * tr(C_l at step 1) / q`, frozen after the first step.
    floor_abs: Option<T>,
}

impl<T: Scalar> CurvatureEma<T> {
    fn new(q: usize, diagonal_only: bool) -> Self {
        CurvatureEma {
            c_hat: Mat::zeros(q, q),
            diagonal_only,
            step: 0,
            floor_abs: None,
        }
    }

    /// `C_hat <- beta C_hat + (1 - beta) (1/B) Delta^T Delta` for stacked `Delta` (K B x q)
    /// (its diagonal only when `diagonal_only`).
    fn update(&mut self, delta: MatRef<'_, T>, batch: usize, beta: T, par: Par) {
        if self.diagonal_only {
            let mut diag = vec![T::zero(); delta.ncols()];
            column_sq_norms_into(delta, &mut diag);
            self.update_diagonal(&diag, batch, beta);
            return;
        }
        let c = (T::one() - beta) / T::of(batch as f64);
        syrk_ema(self.c_hat.as_mut(), delta, beta, c, par);
        self.step += 1;
    }

    /// `diag(C_hat) <- beta diag(C_hat) + (1 - beta) (1/B) diag` for the batch diagonal
    /// `diag = diag(sum_k Delta_k^T Delta_k)` (length q).
    fn update_diagonal(&mut self, diag: &[T], batch: usize, beta: T) {
        let c = (T::one() - beta) / T::of(batch as f64);
        for (i, &d) in diag.iter().enumerate() {
            let fresh = c * d;
            self.c_hat[(i, i)] = if beta == T::zero() {
                fresh
            } else {
                beta * self.c_hat[(i, i)] + fresh
            };
        }
        self.step += 1;
    }

    /// `C_hat <- beta C_hat + (1 - beta) (1/B) Gram` for a batch Gram matrix `sum_k Delta_k^T
    /// Delta_k` (q x q, lower triangle read) computed elsewhere (see [`output_fed_gram`]).
    fn update_from_gram(&mut self, gram: MatRef<'_, T>, batch: usize, beta: T) {
        let c = (T::one() - beta) / T::of(batch as f64);
        let q = self.c_hat.nrows();
        for j in 0..q {
            for i in j..q {
                let fresh = c * gram[(i, j)];
                self.c_hat[(i, j)] = if beta == T::zero() {
                    fresh
                } else {
                    beta * self.c_hat[(i, j)] + fresh
                };
            }
        }
        self.step += 1;
    }

    /// `tr(C~) / q` of the bias-corrected `C~ = C_hat / (1 - beta^t)`.
    fn mean_diag(&self, beta: T) -> T {
        let q = self.c_hat.nrows();
        let trace = (0..q).fold(T::zero(), |a, i| a + self.c_hat[(i, i)]);
        trace * bias_correction(beta, self.step) / T::of(q as f64)
    }

    /// `C~ + shift I` (q x q), lower triangle only (the strict upper triangle is zero).
    /// Needs the whole factor (not `diagonal_only`).
    fn damped_lower(&self, beta: T, shift: T) -> Mat<T> {
        debug_assert!(
            !self.diagonal_only,
            "damped_lower of a diagonal-only curvature EMA"
        );
        let corr = bias_correction(beta, self.step);
        let q = self.c_hat.nrows();
        let mut d = Mat::<T>::zeros(q, q);
        for j in 0..q {
            let src = &self.c_hat.col_as_slice(j)[j..];
            for (dst, &c) in d.col_as_slice_mut(j)[j..].iter_mut().zip(src) {
                *dst = c * corr;
            }
            d[(j, j)] += shift;
        }
        d
    }
}

/// `sum_k Delta_k^T Delta_k` (q x q, lower triangle) of the hidden layer that feeds the
/// output layer, in closed form. There `Delta_k = dF_k / dH = phi'(H) diag(w_k)` (B x q), with
/// `w_k` column `k` of the output weights `W_out` (p_out x q_L) without their bias row, so
///
/// `sum_k Delta_k^T Delta_k = (W' W'^T) ⊙ (Phi'^T Phi')`,   `W' = W_out[..q, :]`, `Phi' = phi'(H)`.
///
/// Cost `B q^2 + q_L q^2` flops (two SYRKs) instead of `q_L` backward passes and the
/// `q_L B q^2` SYRK of the stacked `Delta_k`; equal up to rounding (the sums are reordered).
fn output_fed_gram<T: Scalar>(w_out: MatRef<'_, T>, deriv: MatRef<'_, T>, par: Par) -> Mat<T> {
    let q = deriv.ncols();
    let mut weights_gram = Mat::<T>::zeros(q, q);
    syrk_ema(
        weights_gram.as_mut(),
        w_out.subrows(0, q).transpose(),
        T::zero(),
        T::one(),
        Par::Seq,
    );
    let mut gram = Mat::<T>::zeros(q, q);
    syrk_ema(gram.as_mut(), deriv, T::zero(), T::one(), par);
    for j in 0..q {
        for i in j..q {
            gram[(i, j)] *= weights_gram[(i, j)];
        }
    }
    gram
}

/// The diagonal of [`output_fed_gram`] alone: `diag(sum_k Delta_k^T Delta_k)_i =
/// ||W'_{i,:}||^2 ||Phi'_{:,i}||^2` (`B q + q_L q` flops), all that the `Scalar`
/// preconditioner reads.
fn output_fed_gram_diagonal<T: Scalar>(w_out: MatRef<'_, T>, deriv: MatRef<'_, T>) -> Vec<T> {
    let q = deriv.ncols();
    let mut weights = vec![T::zero(); q];
    column_sq_norms_into(w_out.subrows(0, q).transpose(), &mut weights);
    let mut diag = vec![T::zero(); q];
    column_sq_norms_into(deriv, &mut diag);
    for (d, w) in diag.iter_mut().zip(&weights) {
        *d *= *w;
    }
    diag
}

fn bias_correction<T: Scalar>(beta: T, step: u64) -> T {
    if beta == T::zero() || step == 0 {
        T::one()
    } else {
        T::one() / (T::one() - beta.powi(step.min(i32::MAX as u64) as i32))
    }
}

/// State of one layer: its posterior and statistics.
#[derive(Clone, Debug)]
pub struct LayerState<T> {
    /// Current posterior `MN(M_l, Lambda_l^{-1}, Sigma_l)`.
    pub posterior: MatrixNormal<T>,
    stats: NaturalStats<T>,
    curvature: Option<CurvatureEma<T>>,
    /// `D_l^{-1}` (q x q, symmetric, from the Cholesky factor of `D_l`) and the jitter
    /// retries its factorization needed; reused between refreshes.
    damped_inverse: Option<(Mat<T>, u32)>,
}

/// What one step did (for progress callbacks and logs).
#[derive(Clone, Debug)]
pub struct StepInfo {
    /// Steps done so far (1 after the first).
    pub step: u64,
    /// Epoch of this step (0-based).
    pub epoch: usize,
    /// Training objective `sum_n (y_n - f_n)^2 / 2` per row of the batch, at the means before
    /// the step (standardized units).
    pub batch_loss: f64,
    /// Total jitter retries used by the factors of this step (0 unless a policy allows them).
    pub jitter_tries: u32,
}

/// A BALI-trained MLP: a stack of layer posteriors.
#[derive(Clone, Debug)]
pub struct Bali<T> {
    mlp: Mlp,
    config: BaliConfig,
    means: Vec<Mat<T>>,
    layers: Vec<LayerState<T>>,
    n_train: usize,
    step: u64,
    epoch: usize,
    cursor: usize,
    order: Vec<usize>,
    rng: StdRng,
    policy: ParPolicy,
    record: Option<Vec<Option<LayerRecord<T>>>>,
    /// Buffers reused from step to step (the forward trace and the layer gradients `G_l`).
    workspace: Workspace<T>,
}

/// Per-step buffers kept between steps so that a step of the same batch size allocates and
/// zeroes none of its B-row matrices.
#[derive(Clone, Debug, Default)]
struct Workspace<T> {
    trace: Trace<T>,
    grads: Vec<Mat<T>>,
    /// The stacked `Delta_k` of the curvature pass ((q_L B) x q_l per layer).
    stacked: Vec<Mat<T>>,
}

/// The regression problem a layer solved in the last step: inputs `X_l`, pseudo-targets `T_l`
/// and the prior (kept only when recording is on, for checks against the dense reference).
#[derive(Clone, Debug)]
pub struct LayerRecord<T> {
    /// `X_l` (B x p_l).
    pub inputs: Mat<T>,
    /// `T_l` (B x q_l).
    pub targets: Mat<T>,
    /// The prior used for this layer.
    pub prior: Prior<T>,
}

fn col_mode<T: Scalar>(spec: SigmaSpec, q: usize) -> ColCovMode<T> {
    match spec {
        SigmaSpec::Fixed { s2 } => ColCovMode::Fixed { s2: T::of(s2) },
        SigmaSpec::Learned { nu0_extra, s0_sq } => {
            ColCovMode::learned_isotropic(q, T::of(q as f64 + nu0_extra), T::of(s0_sq))
        }
    }
}

fn check_finite<T: Scalar>(m: MatRef<'_, T>, what: &'static str, step: u64) -> Result<()> {
    if all_finite(m) {
        Ok(())
    } else {
        Err(BaliError::NonFinite {
            what,
            layer: None,
            step,
        })
    }
}

impl<T: Scalar> Bali<T> {
    /// A network with layer widths `dims = [d_0, ..., d_L]` for `n_train` training rows.
    /// Means start at the MLP initialisation; covariances at the prior (`Lambda = lambda I`).
    pub fn new(dims: Vec<usize>, config: BaliConfig, n_train: usize) -> Result<Self> {
        config.validate()?;
        if n_train == 0 {
            return Err(BaliError::InvalidOption {
                name: "n_train",
                value: "0".into(),
                reason: "need at least one training row",
            });
        }
        let mlp = Mlp::new(dims, config.activation)?;
        let mut rng = StdRng::seed_from_u64(config.seed);
        let means: Vec<Mat<T>> = mlp.init_weights(&mut rng);
        let batch = config.batch_size.unwrap_or(n_train).min(n_train);
        let beta = T::of(config.beta_for(n_train, batch));
        let n_layers = mlp.num_layers();
        let mut layers = Vec::with_capacity(n_layers);
        for (l, mean) in means.iter().enumerate() {
            let (p, q) = mlp.layer_shape(l);
            let output = l + 1 == n_layers;
            let lambda = if output {
                config.lambda_out
            } else {
                config.lambda
            };
            let s2 = match if output {
                config.output_sigma
            } else {
                config.hidden_sigma
            } {
                SigmaSpec::Fixed { s2 } => s2,
                SigmaSpec::Learned { s0_sq, .. } => s0_sq,
            };
            let posterior = MatrixNormal::new(
                mean.clone(),
                KronFactor::identity_scaled(p, T::of(lambda), FactorId::row_precision(Some(l))),
                KronFactor::identity_scaled(q, T::of(s2), FactorId::col_cov(Some(l))),
            )?;
            let curvature = (!output && config.formulation == Formulation::Improved)
                .then(|| CurvatureEma::new(q, config.preconditioner == Preconditioner::Scalar));
            layers.push(LayerState {
                posterior,
                stats: NaturalStats::new(p, q, beta)?,
                curvature,
                damped_inverse: None,
            });
        }
        let policy = ParPolicy::with_threads(config.threads);
        Ok(Bali {
            order: (0..n_train).collect(),
            mlp,
            config,
            means,
            layers,
            n_train,
            step: 0,
            epoch: 0,
            cursor: n_train, // forces a shuffle before the first mini-batch
            rng,
            policy,
            record: None,
            workspace: Workspace::default(),
        })
    }

    /// The network architecture.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// The options this model was built with.
    pub fn config(&self) -> &BaliConfig {
        &self.config
    }

    /// Posterior means `M_l` (p_l x q_l, bias last row).
    pub fn means(&self) -> &[Mat<T>] {
        &self.means
    }

    /// Layer states (posteriors).
    pub fn layers(&self) -> &[LayerState<T>] {
        &self.layers
    }

    /// Posterior of layer `l`.
    pub fn posterior(&self, l: usize) -> &MatrixNormal<T> {
        &self.layers[l].posterior
    }

    /// Steps done.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Training rows `N` the statistics are scaled to (`rho = N / B`).
    pub fn n_train(&self) -> usize {
        self.n_train
    }

    /// Batch size in use.
    pub fn batch_size(&self) -> usize {
        self.config
            .batch_size
            .unwrap_or(self.n_train)
            .min(self.n_train)
    }

    /// Keep (or stop keeping) each layer's inputs, pseudo-targets and prior of the last step.
    pub fn set_recording(&mut self, on: bool) {
        self.record = on.then(Vec::new);
    }

    /// Inputs, pseudo-targets and priors of the last step, in layer order (recording on).
    /// `None` where recording is off or before the first step.
    pub fn last_record(&self, layer: usize) -> Option<&LayerRecord<T>> {
        self.record.as_ref()?.get(layer)?.as_ref()
    }

    fn par(&self, flops: f64) -> Par {
        self.policy.par(flops)
    }

    fn check_data(&self, x: MatRef<'_, T>, y: MatRef<'_, T>) -> Result<()> {
        let d0 = self.mlp.dims[0];
        let dl = *self.mlp.dims.last().unwrap_or(&0);
        if x.ncols() != d0 || y.ncols() != dl || x.nrows() != y.nrows() || x.nrows() == 0 {
            return Err(BaliError::Shape {
                what: "training data (X, Y)",
                expected: format!("(n x {d0}, n x {dl}) with n >= 1"),
                got: format!(
                    "({} x {}, {} x {})",
                    x.nrows(),
                    x.ncols(),
                    y.nrows(),
                    y.ncols()
                ),
            });
        }
        check_finite(x, "training inputs X", self.step)?;
        check_finite(y, "training targets Y", self.step)
    }

    /// Runs `iterations` steps on the training set `(x, y)` (n_train rows), in mini-batches of
    /// the configured size drawn without replacement each epoch. `callback` sees every step
    /// and may stop the loop early with `ControlFlow::Break`.
    pub fn fit(
        &mut self,
        x: MatRef<'_, T>,
        y: MatRef<'_, T>,
        iterations: usize,
        mut callback: impl FnMut(&Self, &StepInfo) -> ControlFlow<()>,
    ) -> Result<()> {
        if x.nrows() != self.n_train {
            return Err(BaliError::Shape {
                what: "training rows",
                expected: format!("{} rows (n_train)", self.n_train),
                got: format!("{} rows", x.nrows()),
            });
        }
        self.check_data(x, y)?;
        let batch = self.batch_size();
        let mut xb = Mat::<T>::zeros(0, 0);
        let mut yb = Mat::<T>::zeros(0, 0);
        for _ in 0..iterations {
            let info = if batch >= self.n_train {
                self.step_unchecked(x, y)?
            } else {
                if self.cursor + batch > self.n_train {
                    self.order.shuffle(&mut self.rng);
                    if self.step > 0 {
                        self.epoch += 1;
                    }
                    self.cursor = 0;
                }
                let rows = &self.order[self.cursor..self.cursor + batch];
                self.cursor += batch;
                xb.resize_with(batch, x.ncols(), |_, _| T::zero());
                yb.resize_with(batch, y.ncols(), |_, _| T::zero());
                for (r, &i) in rows.iter().enumerate() {
                    for j in 0..x.ncols() {
                        xb[(r, j)] = x[(i, j)];
                    }
                    for j in 0..y.ncols() {
                        yb[(r, j)] = y[(i, j)];
                    }
                }
                self.step_unchecked(xb.as_ref(), yb.as_ref())?
            };
            if callback(self, &info).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// One BALI step on the batch `(x, y)` (B x d_0, B x d_L), with `rho = N / B`.
    pub fn step(&mut self, x: MatRef<'_, T>, y: MatRef<'_, T>) -> Result<StepInfo> {
        self.check_data(x, y)?;
        self.step_unchecked(x, y)
    }

    fn step_unchecked(&mut self, x: MatRef<'_, T>, y: MatRef<'_, T>) -> Result<StepInfo> {
        let b = x.nrows();
        let rho = T::of(self.n_train as f64 / b as f64);
        let fwd_flops: f64 = (0..self.mlp.num_layers())
            .map(|l| {
                let (p, q) = self.mlp.layer_shape(l);
                2.0 * (b * p * q) as f64
            })
            .sum();
        let par = self.par(fwd_flops);
        let n_layers = self.mlp.num_layers();
        if let Some(record) = self.record.as_mut() {
            record.clear();
            record.resize(n_layers, None);
        }
        let mut trace = std::mem::take(&mut self.workspace.trace);
        self.mlp.forward_into(&self.means, x, &mut trace, par)?;
        let batch_loss = half_sq_error(trace.output(), y) / b as f64;
        if !batch_loss.is_finite() {
            return Err(BaliError::NonFinite {
                what: "network output at the posterior means (training diverged)",
                layer: Some(self.mlp.num_layers() - 1),
                step: self.step,
            });
        }
        let tries = match self.config.formulation {
            Formulation::Paper => self.paper_step(&trace, y, rho, par),
            Formulation::Improved => self.improved_step(&mut trace, y, rho, par),
        };
        self.workspace.trace = trace;
        let jitter_tries = tries?;
        self.step += 1;
        Ok(StepInfo {
            step: self.step,
            epoch: self.epoch,
            batch_loss,
            jitter_tries,
        })
    }

    fn posterior_config(&self, layer: usize, p: usize, q: usize, b: usize) -> PosteriorConfig {
        let flops = (b * p * p) as f64 + (p * p * p) as f64 / 3.0 + 2.0 * (p * p * q) as f64;
        PosteriorConfig {
            layer: Some(layer),
            jitter: self.config.jitter,
            par: self.par(flops),
        }
    }

    /// Exact layer update: EMA of the statistics of `(X_l, T_l)`, then the posterior.
    fn update_layer(
        &mut self,
        l: usize,
        prior: &Prior<T>,
        x_l: MatRef<'_, T>,
        t_l: MatRef<'_, T>,
        rho: T,
    ) -> Result<u32> {
        let (p, q) = self.mlp.layer_shape(l);
        let cfg = self.posterior_config(l, p, q, x_l.nrows());
        let state = &mut self.layers[l];
        let posterior = posterior_step(prior, &mut state.stats, x_l, t_l, rho, &cfg)?;
        let tries = posterior.row_precision.jitter().tries + posterior.col_cov.jitter().tries;
        check_finite(posterior.mean.as_ref(), "posterior mean", self.step).map_err(|_| {
            BaliError::NonFinite {
                what: "posterior mean",
                layer: Some(l),
                step: self.step,
            }
        })?;
        self.means[l].copy_from(&posterior.mean);
        state.posterior = posterior;
        if let Some(record) = self.record.as_mut() {
            record[l] = Some(LayerRecord {
                inputs: x_l.to_owned(),
                targets: t_l.to_owned(),
                prior: prior.clone(),
            });
        }
        Ok(tries)
    }

    /// `G_l` of the seed `d ell / dF` in the workspace buffers (taken out; the caller gives
    /// them back with [`Bali::return_gradients`]).
    fn gradients(
        &mut self,
        trace: &Trace<T>,
        seed: MatRef<'_, T>,
        par: Par,
    ) -> Result<Vec<Mat<T>>> {
        let buffers = std::mem::take(&mut self.workspace.grads);
        let mut grads = layer_buffers(buffers, &self.mlp.dims[1..], seed.nrows());
        self.mlp
            .backward_into(&self.means, trace, seed, &mut grads, par)?;
        Ok(grads)
    }

    /// Gives the `G_l` buffers back to the workspace.
    fn return_gradients(&mut self, grads: Vec<Mat<T>>) {
        self.workspace.grads = grads;
    }

    /// 3.1: all layers from one forward and one backward pass, `T_l = H_l - alpha_l G_l`.
    fn paper_step(&mut self, trace: &Trace<T>, y: MatRef<'_, T>, rho: T, par: Par) -> Result<u32> {
        let n_layers = self.mlp.num_layers();
        let seed = residual_seed(trace.output(), y);
        let grads = self.gradients(trace, seed.as_ref(), par)?;
        let alpha = T::of(self.config.hidden_alpha());
        let mut tries = 0;
        for (l, g) in grads.iter().enumerate() {
            let (p, q) = self.mlp.layer_shape(l);
            let output = l + 1 == n_layers;
            let (lambda, spec) = if output {
                (self.config.lambda_out, self.config.output_sigma)
            } else {
                (self.config.lambda, self.config.hidden_sigma)
            };
            let prior = Prior::isotropic(p, q, T::of(lambda), col_mode(spec, q));
            let x_l = trace.inputs[l].as_ref();
            tries += if output {
                // alpha_L = sigma^2: T_L = F - sigma^2 (F - Y) / sigma^2 = Y exactly.
                self.update_layer(l, &prior, x_l, y, rho)?
            } else {
                let mut targets = trace.pre[l].clone();
                sub_scaled_in_place(targets.as_mut(), alpha, g.as_ref());
                self.update_layer(l, &prior, x_l, targets.as_ref(), rho)?
            };
        }
        self.return_gradients(grads);
        Ok(tries)
    }

    /// 3.2: output layer first, then Gauss-Newton-preconditioned hidden targets with the
    /// proximal prior.
    fn improved_step(
        &mut self,
        trace: &mut Trace<T>,
        y: MatRef<'_, T>,
        rho: T,
        par: Par,
    ) -> Result<u32> {
        let n_layers = self.mlp.num_layers();
        let out = n_layers - 1;
        let (p_out, q_out) = self.mlp.layer_shape(out);
        // Step 2: exact Bayesian linear regression of the output layer on the true targets.
        let prior_out = Prior::isotropic(
            p_out,
            q_out,
            T::of(self.config.lambda_out),
            col_mode(self.config.output_sigma, q_out),
        );
        let mut tries = self.update_layer(out, &prior_out, trace.inputs[out].as_ref(), y, rho)?;
        if n_layers == 1 {
            return Ok(tries);
        }
        // Step 3: F with the new output mean; G_l for the hidden layers.
        self.mlp.forward_from(&self.means, trace, out, par)?;
        let seed = residual_seed(trace.output(), y);
        let grads = self.gradients(trace, seed.as_ref(), par)?;
        // Step 4: curvature factors. The layer feeding the output in closed form
        // (`output_fed_gram`); deeper layers from the stacked `Delta_k = dF_k / dH_l`, one
        // backward pass of the (q_L B) x q_L seed whose block k is the unit vector e_k
        // (block k of the result is the backward pass of output unit k).
        let b = y.nrows();
        let last_hidden = out - 1;
        // Amortization: the curvature is computed on refresh steps only (and at the first
        // step, before any C_l exists).
        let refresh = self.step.is_multiple_of(self.config.refresh_every as u64)
            || self.layers[..out]
                .iter()
                .any(|state| state.curvature.as_ref().is_some_and(|c| c.step == 0));
        let (p_last, _) = self.mlp.layer_shape(last_hidden);
        let gram_par = self.par((b * p_last * p_last) as f64);
        // The Scalar preconditioner reads tr C~ only: the diagonal suffices.
        let diagonal_only = self.config.preconditioner == Preconditioner::Scalar;
        let last_gram = (refresh && !diagonal_only).then(|| {
            output_fed_gram(
                self.means[out].as_ref(),
                trace.deriv[last_hidden].as_ref(),
                gram_par,
            )
        });
        let last_diagonal = (refresh && diagonal_only).then(|| {
            output_fed_gram_diagonal(self.means[out].as_ref(), trace.deriv[last_hidden].as_ref())
        });
        let deltas: Vec<Mat<T>> = if refresh && last_hidden > 0 {
            let mut seed = Mat::<T>::zeros(q_out * b, q_out);
            for k in 0..q_out {
                seed.as_mut()
                    .subrows_mut(k * b, b)
                    .col_mut(k)
                    .fill(T::one());
            }
            let stacked_flops: f64 = (1..n_layers)
                .map(|l| {
                    let (p, q) = self.mlp.layer_shape(l);
                    2.0 * (q_out * b * (p - 1) * q) as f64
                })
                .sum();
            let stacked_par = self.par(stacked_flops);
            let buffers = std::mem::take(&mut self.workspace.stacked);
            let mut deltas = layer_buffers(buffers, &self.mlp.dims[1..], q_out * b);
            self.mlp
                .backward_into(&self.means, trace, seed.as_ref(), &mut deltas, stacked_par)?;
            deltas
        } else {
            Vec::new()
        };
        let beta = self.layers[0].stats.beta;
        let alpha = T::of(self.config.hidden_alpha());
        let gamma = T::of(self.config.gamma);
        let lambda = T::of(self.config.lambda);
        let wd = T::of(self.config.wd);
        for l in 0..out {
            let (p, q) = self.mlp.layer_shape(l);
            let syrk_par = self.par((b * q_out * q * q) as f64);
            let floor = self.config.floor;
            let state = &mut self.layers[l];
            let curv = state
                .curvature
                .as_mut()
                .expect("Improved hidden layers carry a curvature EMA");
            if let Some(gram) = last_gram.as_ref().filter(|_| l == last_hidden) {
                curv.update_from_gram(gram.as_ref(), b, beta);
            } else if let Some(diag) = last_diagonal.as_ref().filter(|_| l == last_hidden) {
                curv.update_diagonal(diag, b, beta);
            } else if refresh {
                curv.update(deltas[l].as_ref(), b, beta, syrk_par);
            }
            let mean_diag = curv.mean_diag(beta);
            if curv.floor_abs.is_none() {
                // tr(C_l at step 1) / q: with bias correction C~ at step 1 is the batch C.
                curv.floor_abs = Some(T::of(floor) * mean_diag);
            }
            let floor_abs = curv.floor_abs.unwrap_or(T::zero());
            let h = &trace.pre[l];
            let g = &grads[l];
            // Step 5: pseudo-targets.
            let targets = if mean_diag <= T::zero() {
                // No curvature: the gradient is zero too (dead units), the targets are H.
                h.clone()
            } else {
                match self.config.preconditioner {
                    Preconditioner::Kfac => {
                        if refresh || state.damped_inverse.is_none() {
                            let d = curv.damped_lower(beta, gamma * mean_diag + floor_abs);
                            let factor = KronFactor::new(
                                d,
                                FactorId::curvature(Some(l)),
                                self.config.jitter,
                                Par::Seq,
                            )?;
                            // D^{-1} once per refresh (2 q^3 flops): the B x q product
                            // G D^{-1} is then one GEMM, about twice as fast as two
                            // triangular solves with B right-hand sides.
                            let inverse = factor.inverse(Par::Seq);
                            state.damped_inverse = Some((inverse, factor.jitter().tries));
                        }
                        let (d_inv, d_tries) = state
                            .damped_inverse
                            .as_ref()
                            .expect("damped curvature inverse was just built");
                        tries += d_tries;
                        // T = H - alpha G D^{-1} (2 B q^2 flops).
                        let mut targets = h.clone();
                        matmul(
                            targets.as_mut(),
                            Accum::Add,
                            g.as_ref(),
                            d_inv.as_ref(),
                            -alpha,
                            par,
                        );
                        targets
                    }
                    Preconditioner::Scalar => {
                        let scale = alpha / ((T::one() + gamma) * mean_diag + floor_abs);
                        let mut targets = h.clone();
                        sub_scaled_in_place(targets.as_mut(), scale, g.as_ref());
                        targets
                    }
                }
            };
            // Step 6: proximal times shrinkage prior,
            // Lambda_0 = lambda I + wd diag(1..1, 0), Lambda_0 M_0 = lambda M_prev.
            let diag: Vec<T> = (0..p)
                .map(|i| if i + 1 < p { lambda + wd } else { lambda })
                .collect();
            let m_prev = &self.means[l];
            let m0 = Mat::from_fn(p, q, |i, j| lambda * m_prev[(i, j)] / diag[i]);
            let prior = Prior::diagonal(m0, &diag, col_mode(self.config.hidden_sigma, q))?;
            tries +=
                self.update_layer(l, &prior, trace.inputs[l].as_ref(), targets.as_ref(), rho)?;
        }
        self.return_gradients(grads);
        if !deltas.is_empty() {
            self.workspace.stacked = deltas;
        }
        Ok(tries)
    }
}

/// `buffers` when they are `rows x widths[l]` for every layer, else fresh zero matrices of
/// those shapes (the per-layer `G_l`-shaped buffers of the workspace).
fn layer_buffers<T: Scalar>(buffers: Vec<Mat<T>>, widths: &[usize], rows: usize) -> Vec<Mat<T>> {
    let fits = buffers.len() == widths.len()
        && buffers
            .iter()
            .zip(widths)
            .all(|(m, &q)| m.nrows() == rows && m.ncols() == q);
    if fits {
        buffers
    } else {
        widths.iter().map(|&q| Mat::zeros(rows, q)).collect()
    }
}

/// `d ell / dF = F - Y` for the Gaussian objective with `sigma^2 = 1` (the pseudo-targets do
/// not depend on `sigma^2`: `G_l` and `C_l` both scale as `1 / sigma^2`).
fn residual_seed<T: Scalar>(f: MatRef<'_, T>, y: MatRef<'_, T>) -> Mat<T> {
    let mut seed = Mat::<T>::zeros(f.nrows(), f.ncols());
    sub_scaled_into(seed.as_mut(), f, T::one(), y);
    seed
}

fn half_sq_error<T: Scalar>(f: MatRef<'_, T>, y: MatRef<'_, T>) -> f64 {
    let mut acc = 0.0;
    for j in 0..f.ncols() {
        for i in 0..f.nrows() {
            let r = (f[(i, j)] - y[(i, j)]).to_f64();
            acc += 0.5 * r * r;
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use bali_kernels::Activation;
    use faer::linalg::matmul::matmul;
    use faer::Accum;

    fn random_net(dims: &[usize], activation: Activation, seed: u64) -> (Mlp, Vec<Mat<f64>>) {
        let mlp = Mlp::new(dims.to_vec(), activation).expect("valid widths");
        let mut rng = StdRng::seed_from_u64(seed);
        let mut weights: Vec<Mat<f64>> = mlp.init_weights(&mut rng);
        // Nonzero biases, so that ReLU units are neither all on nor all off.
        for w in &mut weights {
            let p = w.nrows();
            for j in 0..w.ncols() {
                w[(p - 1, j)] = 0.3 * (j as f64 - 1.0);
            }
        }
        (mlp, weights)
    }

    fn random_input(b: usize, d: usize, seed: u64) -> Mat<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        Mat::from_fn(b, d, |_, _| 2.0 * rand::Rng::random::<f64>(&mut rng) - 1.0)
    }

    /// `sum_k Delta_k^T Delta_k` of layer `l` from one backward pass per output unit.
    fn per_unit_gram(mlp: &Mlp, weights: &[Mat<f64>], trace: &Trace<f64>, l: usize) -> Mat<f64> {
        let q = mlp.layer_shape(l).1;
        let mut gram = Mat::<f64>::zeros(q, q);
        for k in 0..mlp.num_outputs() {
            let dk = mlp
                .output_jacobian_backward(weights, trace, k, Par::Seq)
                .expect("valid trace");
            let delta = dk[l].as_ref();
            matmul(
                gram.as_mut(),
                Accum::Add,
                delta.transpose(),
                delta,
                1.0,
                Par::Seq,
            );
        }
        gram
    }

    /// The stacked `Delta_k = dF_k / dH_0` of the first layer (q_L B x q_0), one backward pass
    /// per output unit.
    fn stacked_first_layer_deltas(mlp: &Mlp, weights: &[Mat<f64>], trace: &Trace<f64>) -> Mat<f64> {
        let b = trace.output().nrows();
        let q_out = mlp.num_outputs();
        let mut stacked = Mat::<f64>::zeros(q_out * b, mlp.layer_shape(0).1);
        for k in 0..q_out {
            let dk = mlp
                .output_jacobian_backward(weights, trace, k, Par::Seq)
                .expect("valid trace");
            stacked.as_mut().subrows_mut(k * b, b).copy_from(&dk[0]);
        }
        stacked
    }

    fn max_rel_lower(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> f64 {
        let (mut diff, mut scale) = (0.0f64, 0.0f64);
        for j in 0..b.ncols() {
            for i in j..b.nrows() {
                diff = diff.max((a[(i, j)] - b[(i, j)]).abs());
                scale = scale.max(b[(i, j)].abs());
            }
        }
        diff / scale
    }

    #[test]
    fn closed_form_curvature_of_the_layer_feeding_the_output() {
        for activation in [Activation::Relu, Activation::Tanh, Activation::Gelu] {
            for dims in [vec![3, 6, 1], vec![4, 5, 7, 3]] {
                let (mlp, weights) = random_net(&dims, activation, 11);
                let x = random_input(37, dims[0], 12);
                let trace = mlp.forward(&weights, x.as_ref(), Par::Seq).expect("finite");
                let last = dims.len() - 3;
                let fast = output_fed_gram(
                    weights[last + 1].as_ref(),
                    trace.deriv[last].as_ref(),
                    Par::Seq,
                );
                let reference = per_unit_gram(&mlp, &weights, &trace, last);
                let err = max_rel_lower(fast.as_ref(), reference.as_ref());
                assert!(err < 1e-13, "{activation:?} {dims:?}: {err:e}");
            }
        }
    }

    #[test]
    fn diagonal_only_curvature_is_the_diagonal_of_the_full_one() {
        // Deep net: the first hidden layer takes the stacked update, the last the closed form.
        let dims = [4, 6, 5, 3];
        let (mlp, weights) = random_net(&dims, Activation::Tanh, 41);
        let b = 19;
        let mut full = [
            CurvatureEma::<f64>::new(6, false),
            CurvatureEma::new(5, false),
        ];
        let mut diag = [
            CurvatureEma::<f64>::new(6, true),
            CurvatureEma::new(5, true),
        ];
        for (step, beta) in [(0u64, 0.0), (1, 0.6), (2, 0.6)] {
            let x = random_input(b, 4, 50 + step);
            let trace = mlp.forward(&weights, x.as_ref(), Par::Seq).expect("finite");
            let stacked = stacked_first_layer_deltas(&mlp, &weights, &trace);
            full[0].update(stacked.as_ref(), b, beta, Par::Seq);
            diag[0].update(stacked.as_ref(), b, beta, Par::Seq);
            let gram = output_fed_gram(weights[2].as_ref(), trace.deriv[1].as_ref(), Par::Seq);
            full[1].update_from_gram(gram.as_ref(), b, beta);
            let d = output_fed_gram_diagonal(weights[2].as_ref(), trace.deriv[1].as_ref());
            diag[1].update_diagonal(&d, b, beta);
            for (f, g) in full.iter().zip(&diag) {
                assert_eq!(f.step, g.step);
                let q = f.c_hat.nrows();
                for i in 0..q {
                    let (a, r) = (g.c_hat[(i, i)], f.c_hat[(i, i)]);
                    assert!(
                        r > 0.0 && (a - r).abs() <= 1e-13 * r,
                        "step {step} ({i}): {a} vs {r}"
                    );
                    for j in 0..i {
                        assert_eq!(g.c_hat[(i, j)], 0.0);
                    }
                }
                let (mf, mg) = (f.mean_diag(beta), g.mean_diag(beta));
                assert!((mf - mg).abs() <= 1e-13 * mf, "step {step}: {mf} vs {mg}");
            }
        }
    }

    #[test]
    fn gram_update_equals_the_stacked_syrk_update() {
        let (mlp, weights) = random_net(&[4, 6, 3], Activation::Tanh, 21);
        let b = 25;
        let (mut by_gram, mut by_syrk) = (
            CurvatureEma::<f64>::new(6, false),
            CurvatureEma::new(6, false),
        );
        for (step, beta) in [(0u64, 0.0), (1, 0.7), (2, 0.7)] {
            let x = random_input(b, 4, 30 + step);
            let trace = mlp.forward(&weights, x.as_ref(), Par::Seq).expect("finite");
            let stacked = stacked_first_layer_deltas(&mlp, &weights, &trace);
            by_syrk.update(stacked.as_ref(), b, beta, Par::Seq);
            let gram = output_fed_gram(weights[1].as_ref(), trace.deriv[0].as_ref(), Par::Seq);
            by_gram.update_from_gram(gram.as_ref(), b, beta);
            assert_eq!(by_gram.step, by_syrk.step);
            let err = max_rel_lower(by_gram.c_hat.as_ref(), by_syrk.c_hat.as_ref());
            assert!(err < 1e-13, "step {step}: {err:e}");
            let (ta, tb) = (
                by_gram.damped_lower(beta, 0.5),
                by_syrk.damped_lower(beta, 0.5),
            );
            assert!(max_rel_lower(ta.as_ref(), tb.as_ref()) < 1e-13);
            assert!((by_gram.mean_diag(beta) - by_syrk.mean_diag(beta)).abs() < 1e-13);
        }
    }
}
