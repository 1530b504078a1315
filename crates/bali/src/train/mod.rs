//! The BALI training loop (ALGORITHM.md sections 3-5).
//!
//! A [`Trainer`] wraps the model being fitted ([`BayesianMlp`]: every layer's exact
//! matrix-normal posterior `MN(M_l, Lambda_l^{-1}, Sigma_l)` given its pseudo-targets `T_l` and
//! prior) with what only training needs: each layer's EMA of natural-parameter statistics and
//! curvature, its prior, the batch sampler and rng, and the step buffers. One module per idea:
//!
//! - `paper` / `improved`: the two formulations of section 3 (one step each);
//! - `curvature`: the Gauss-Newton factors `C_l` and their EMA (3.2 step 4);
//! - `prior`: the layer priors (3.1, 3.2 step 6);
//! - `batches`: mini-batches without replacement;
//! - `state`: what a trainer carries between steps, to save and resume from.
//!
//! The likelihood ([`crate::likelihood::Likelihood`]) is the only place the task enters.
//! After the first step of a given batch size, a step allocates nothing (tested with a
//! counting allocator in `tests/allocation.rs`), unless recording is on.

mod batches;
mod curvature;
mod improved;
mod paper;
mod prior;
mod state;

pub use self::state::{CurvatureState, LayerTrainingState, RngState, SamplerState, TrainerState};

use std::ops::ControlFlow;

use bali_autodiff::{Mlp, Trace};
use bali_kernels::{all_finite, ParPolicy, Scalar};
use bali_mn::{
    posterior_step_into, KronFactor, MatrixNormal, NaturalStats, PosteriorConfig,
    PosteriorWorkspace, Prior,
};
use faer::{Mat, MatRef, Par};

use self::batches::BatchSampler;
use self::curvature::CurvatureEma;
use crate::config::{BaliConfig, Formulation, Preconditioner, SigmaSpec, WdScale};
use crate::error::{BaliError, Result};
use crate::likelihood::Likelihood;
use crate::model::BayesianMlp;

/// What training keeps for one layer besides its posterior.
#[derive(Clone, Debug)]
struct LayerState<T> {
    stats: NaturalStats<T>,
    prior: Prior<T>,
    curvature: Option<CurvatureEma<T>>,
    /// The damped curvature factor `D_l` of the `Kfac` preconditioner and its inverse
    /// (q x q, symmetric), refactored in place on refresh steps.
    damped: Option<(KronFactor<T>, Mat<T>)>,
}

/// What one step did (for progress callbacks and logs).
#[derive(Clone, Debug)]
pub struct StepInfo {
    /// Steps done so far (1 after the first).
    pub step: u64,
    /// Epoch of this step (0-based).
    pub epoch: usize,
    /// Training objective `ell / B` at the means before the step (standardized units;
    /// Gaussian: `sum_n (y_n - f_n)^2 / 2` per row).
    pub batch_loss: f64,
    /// Total jitter retries used by the factors of this step (0 unless a policy allows them).
    pub jitter_tries: u32,
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

/// Buffers kept between steps, so that a step of the same batch size allocates nothing.
#[derive(Clone, Debug)]
struct Workspace<T> {
    trace: Trace<T>,
    /// `G_l` (B x q_l per layer).
    grads: Vec<Mat<T>>,
    /// `T_l` (B x q_l per layer).
    targets: Vec<Mat<T>>,
    /// `d ell / dF` (B x q_L).
    seed: Mat<T>,
    /// The stacked square-root Fisher seed ((q_L B) x q_L) and its backward pass, the stacked
    /// `Delta_k` ((q_L B) x q_l per layer).
    fisher_seed: Mat<T>,
    stacked: Vec<Mat<T>>,
    /// The closed-form Gram matrix of the layer feeding the output and its scratch (q x q),
    /// or their diagonals (length q) for the `Scalar` preconditioner.
    gram: Mat<T>,
    gram_scratch: Mat<T>,
    gram_diag: Vec<T>,
    gram_diag_scratch: Vec<T>,
    /// The current mini-batch.
    xb: Mat<T>,
    yb: Mat<T>,
    posterior: Vec<PosteriorWorkspace<T>>,
}

impl<T: Scalar> Workspace<T> {
    fn new(layers: usize) -> Self {
        let empty = || Mat::<T>::zeros(0, 0);
        Workspace {
            trace: Trace::default(),
            grads: Vec::new(),
            targets: Vec::new(),
            seed: empty(),
            fisher_seed: empty(),
            stacked: Vec::new(),
            gram: empty(),
            gram_scratch: empty(),
            gram_diag: Vec::new(),
            gram_diag_scratch: Vec::new(),
            xb: empty(),
            yb: empty(),
            posterior: (0..layers).map(|_| PosteriorWorkspace::default()).collect(),
        }
    }
}

/// `m` reshaped to `rows x cols` (kept when it has that shape, else new zeros).
pub(crate) fn fit_shape<T: Scalar>(m: &mut Mat<T>, rows: usize, cols: usize) {
    if m.nrows() != rows || m.ncols() != cols {
        *m = Mat::zeros(rows, cols);
    }
}

/// `buffers` as `rows x widths[l]` matrices, one per layer (kept where they fit).
pub(crate) fn fit_layer_buffers<T: Scalar>(
    buffers: &mut Vec<Mat<T>>,
    widths: &[usize],
    rows: usize,
) {
    buffers.resize_with(widths.len(), || Mat::zeros(0, 0));
    for (m, &q) in buffers.iter_mut().zip(widths) {
        fit_shape(m, rows, q);
    }
}

/// Trains a [`BayesianMlp`] with BALI.
#[derive(Clone, Debug)]
pub struct Trainer<T> {
    model: BayesianMlp<T>,
    config: BaliConfig,
    layers: Vec<LayerState<T>>,
    n_train: usize,
    step: u64,
    sampler: BatchSampler,
    policy: ParPolicy,
    record: Option<Vec<Option<LayerRecord<T>>>>,
    workspace: Workspace<T>,
    evidence: crate::evidence::EvidenceWorkspace<T>,
}

fn check_finite<T: Scalar>(
    m: MatRef<'_, T>,
    what: &'static str,
    layer: Option<usize>,
    step: u64,
) -> Result<()> {
    if all_finite(m) {
        Ok(())
    } else {
        Err(BaliError::NonFinite { what, layer, step })
    }
}

impl<T: Scalar> Trainer<T> {
    /// A network with layer widths `dims = [d_0, ..., d_L]` for `n_train` training rows;
    /// `seed` draws the initial means and then the batch order. Means start at the MLP
    /// initialisation; covariances at the prior (`Lambda = lambda I`, `Sigma = s^2 I`).
    pub fn new(dims: Vec<usize>, config: BaliConfig, n_train: usize, seed: u64) -> Result<Self> {
        config.validate()?;
        if n_train == 0 {
            return Err(BaliError::InvalidOption {
                name: "n_train",
                value: "0".into(),
                reason: "need at least one training row",
            });
        }
        {
            let batch = config.batch_size.unwrap_or(n_train).min(n_train);
            let fisher_outputs = match (config.likelihood, config.fisher) {
                (Likelihood::Categorical, crate::Fisher::Exact) => {
                    dims.last().copied().unwrap_or(0)
                }
                _ => 0,
            };
            crate::validate::check_memory(
                format!(
                    "training a {} network on batches of {batch} rows",
                    crate::validate::dims_label(&dims)
                ),
                crate::validate::trainer_bytes(&dims, batch, fisher_outputs),
            )?;
        }
        if config.wd_scale == WdScale::Evidence {
            let batch = config.batch_size.unwrap_or(n_train);
            if config.formulation != Formulation::Improved
                || config.likelihood != Likelihood::Gaussian
                || batch < n_train
            {
                return Err(BaliError::InvalidOption {
                    name: "wd_scale",
                    value: format!(
                        "evidence with {:?}, {:?}, batches of {batch} of {n_train} rows",
                        config.formulation, config.likelihood
                    ),
                    reason:
                        "the online evidence estimate needs Improved, regression and full batches",
                });
            }
        }
        if config.input_relevance && config.formulation != Formulation::Improved {
            return Err(BaliError::InvalidOption {
                name: "input_relevance",
                value: format!("on with {:?}", config.formulation),
                reason: "relevance determination spreads the Improved proximal prior's shrinkage; Paper has none",
            });
        }
        let mlp = Mlp::new(dims, config.activation)?;
        if config.likelihood == Likelihood::Categorical && mlp.num_outputs() < 2 {
            return Err(BaliError::InvalidOption {
                name: "dims",
                value: format!("{} output(s)", mlp.num_outputs()),
                reason: "the categorical likelihood needs one output per class, at least 2",
            });
        }
        let mut rng = state::trainer_rng(seed);
        let means: Vec<Mat<T>> = mlp.init_weights(&mut rng);
        let n_layers = mlp.num_layers();
        let batch = config.batch_size.unwrap_or(n_train).min(n_train);
        let beta = T::of(config.beta_for(n_train, batch));
        let improved = config.formulation == Formulation::Improved;
        // Improved layers in the step-5 form: the hidden layers, and the output layer where
        // the likelihood has no exact targets (classification). They carry a curvature EMA
        // (the output layer's in full: it is K x K) and the proximal prior.
        let exact_out = config.likelihood.exact_output_targets();
        let mut layers = Vec::with_capacity(n_layers);
        for l in 0..n_layers {
            let (p, q) = mlp.layer_shape(l);
            let output = l + 1 == n_layers;
            let step5 = improved && !(output && exact_out);
            let (lambda, sigma) = if output {
                (config.lambda_out, config.output_sigma)
            } else {
                (config.lambda, config.hidden_sigma)
            };
            let prior = if step5 {
                prior::proximal(p, q, lambda, config.wd, sigma)?
            } else {
                prior::isotropic(p, q, lambda, sigma)
            };
            let diagonal_only = !output && config.preconditioner == Preconditioner::Scalar;
            let curvature = step5.then(|| CurvatureEma::new(q, diagonal_only));
            layers.push(LayerState {
                stats: NaturalStats::new(p, q, beta)?,
                prior,
                curvature,
                damped: None,
            });
        }
        let sigma_scale = |spec: SigmaSpec| match spec {
            SigmaSpec::Fixed { s2 } => s2,
            SigmaSpec::Learned { s0_sq, .. } => s0_sq,
        };
        let model = BayesianMlp::initial(mlp, config.likelihood, means, |l| {
            if l + 1 == n_layers {
                (config.lambda_out, sigma_scale(config.output_sigma))
            } else {
                (config.lambda, sigma_scale(config.hidden_sigma))
            }
        })?;
        Ok(Trainer {
            policy: ParPolicy::with_threads(config.threads),
            model,
            config,
            layers,
            n_train,
            step: 0,
            sampler: BatchSampler::new(n_train, rng),
            record: None,
            workspace: Workspace::new(n_layers),
            evidence: Default::default(),
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &BayesianMlp<T> {
        &self.model
    }

    /// The model, for setting its standardization and predictive noise.
    pub fn model_mut(&mut self) -> &mut BayesianMlp<T> {
        &mut self.model
    }

    /// The fitted model, without the training state.
    pub fn into_model(self) -> BayesianMlp<T> {
        self.model
    }

    /// The network architecture.
    pub fn mlp(&self) -> &Mlp {
        self.model.mlp()
    }

    /// Posterior of layer `l`.
    ///
    /// # Panics
    /// If `l` is not a layer index.
    #[track_caller]
    pub fn posterior(&self, l: usize) -> &MatrixNormal<T> {
        self.model.posterior(l)
    }

    /// The options this trainer was built with.
    pub fn config(&self) -> &BaliConfig {
        &self.config
    }

    /// Steps done.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Epoch of the last mini-batch (0-based; 0 in full batch).
    pub fn epoch(&self) -> usize {
        self.sampler.epoch()
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

    /// Keep (or stop keeping) each layer's inputs, pseudo-targets and prior of the last step
    /// (a recording step allocates its copies).
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
        let d0 = self.mlp().dims[0];
        let dl = self.mlp().num_outputs();
        if x.ncols() != d0 || x.nrows() == 0 {
            return Err(BaliError::Shape {
                what: "training inputs X (n >= 1 rows)",
                expected: (x.nrows().max(1), d0),
                got: (x.nrows(), x.ncols()),
            });
        }
        if y.ncols() != dl || y.nrows() != x.nrows() {
            return Err(BaliError::Shape {
                what: "training targets Y",
                expected: (x.nrows(), dl),
                got: (y.nrows(), y.ncols()),
            });
        }
        check_finite(x, "training inputs X", None, self.step)?;
        check_finite(y, "training targets Y", None, self.step)
    }

    /// Runs `iterations` steps on the training set `(x, y)` (n_train rows), in mini-batches of
    /// the configured size drawn without replacement each epoch. `callback` sees every step
    /// and may stop the loop early with `ControlFlow::Break`. Calling `fit` again continues
    /// where the last call stopped (statistics, batch order and rng are kept): `fit(a)` then
    /// `fit(b)` equals `fit(a + b)` bit for bit.
    pub fn fit(
        &mut self,
        x: MatRef<'_, T>,
        y: MatRef<'_, T>,
        iterations: usize,
        mut callback: impl FnMut(&Self, &StepInfo) -> ControlFlow<()>,
    ) -> Result<()> {
        if x.nrows() != self.n_train {
            return Err(BaliError::Shape {
                what: "training inputs X (n_train rows)",
                expected: (self.n_train, x.ncols()),
                got: (x.nrows(), x.ncols()),
            });
        }
        self.check_data(x, y)?;
        let batch = self.batch_size();
        for _ in 0..iterations {
            let info = if batch >= self.n_train {
                self.step_unchecked(x, y)?
            } else {
                let (mut xb, mut yb) = (
                    std::mem::replace(&mut self.workspace.xb, Mat::zeros(0, 0)),
                    std::mem::replace(&mut self.workspace.yb, Mat::zeros(0, 0)),
                );
                self.sampler
                    .next_into(x, y, batch, self.step > 0, &mut xb, &mut yb);
                let info = self.step_unchecked(xb.as_ref(), yb.as_ref());
                self.workspace.xb = xb;
                self.workspace.yb = yb;
                info?
            };
            if self.config.wd_scale == WdScale::Evidence
                && (self.step <= 10 || self.step.is_multiple_of(10))
            {
                self.estimate_weight_decay(x, y)?;
            }
            if callback(self, &info).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// [`WdScale::Evidence`]: `wd = tau_h sigma^2` from the Laplace evidence of the current
    /// means on `(x, y)` ([`crate::evidence`]; one precision for the hidden layers, one for
    /// the output layer), at most [`crate::validate::WD`]'s upper bound (1e8, where the
    /// hidden layers are frozen anyway). Without hidden layers there is nothing to set.
    fn estimate_weight_decay(&mut self, x: MatRef<'_, T>, y: MatRef<'_, T>) -> Result<()> {
        let layers = self.mlp().num_layers();
        if layers < 2 {
            return Ok(());
        }
        let factors = crate::evidence::LaplaceFactors::compute_into(
            self.model.mlp(),
            self.model.means(),
            x,
            y,
            &mut self.evidence,
            faer::Par::Seq,
        )?;
        let e = factors.maximize_grouped(&[0..layers - 1, layers - 1..layers]);
        self.config.wd = (e.prior_precision[0] * e.sigma2).min(crate::validate::WD.max);
        Ok(())
    }

    /// The weight decay `wd` now in use (under [`WdScale::Evidence`] the latest estimate).
    pub fn weight_decay(&self) -> f64 {
        self.config.wd
    }

    /// One BALI step on the batch `(x, y)` (B x d_0, B x d_L), with `rho = N / B`: the
    /// streaming update of the EMA statistics and every layer's posterior.
    pub fn partial_fit(&mut self, x: MatRef<'_, T>, y: MatRef<'_, T>) -> Result<StepInfo> {
        self.check_data(x, y)?;
        self.step_unchecked(x, y)
    }

    fn step_unchecked(&mut self, x: MatRef<'_, T>, y: MatRef<'_, T>) -> Result<StepInfo> {
        let b = x.nrows();
        let rho = T::of(self.n_train as f64 / b as f64);
        let n_layers = self.mlp().num_layers();
        let fwd_flops: f64 = (0..n_layers)
            .map(|l| {
                let (p, q) = self.mlp().layer_shape(l);
                2.0 * (b * p * q) as f64
            })
            .sum();
        let par = self.par(fwd_flops);
        if let Some(record) = self.record.as_mut() {
            record.clear();
            record.resize(n_layers, None);
        }
        let mut trace = std::mem::take(&mut self.workspace.trace);
        let forward = self
            .model
            .mlp()
            .forward_into(self.model.means(), x, &mut trace, par);
        let result = forward.map_err(BaliError::from).and_then(|()| {
            let batch_loss = self.config.likelihood.mean_loss(trace.output(), y);
            if !batch_loss.is_finite() {
                return Err(BaliError::NonFinite {
                    what: "network output at the posterior means (training diverged)",
                    layer: Some(n_layers - 1),
                    step: self.step,
                });
            }
            let tries = match self.config.formulation {
                Formulation::Paper => self.paper_step(&trace, y, rho, par)?,
                Formulation::Improved => self.improved_step(&mut trace, y, rho, par)?,
            };
            Ok((batch_loss, tries))
        });
        self.workspace.trace = trace;
        let (batch_loss, jitter_tries) = result?;
        self.step += 1;
        Ok(StepInfo {
            step: self.step,
            epoch: self.sampler.epoch(),
            batch_loss,
            jitter_tries,
        })
    }

    /// Exact layer update: EMA of the statistics of `(X_l, T_l)`, then the posterior
    /// (in place, with the layer's prior). Returns the jitter retries of its factors.
    fn update_layer(
        &mut self,
        l: usize,
        x_l: MatRef<'_, T>,
        t_l: MatRef<'_, T>,
        rho: T,
    ) -> Result<u32> {
        let (p, q) = self.mlp().layer_shape(l);
        let b = x_l.nrows();
        let flops = (b * p * p) as f64 + (p * p * p) as f64 / 3.0 + 2.0 * (p * p * q) as f64;
        let cfg = PosteriorConfig {
            layer: Some(l),
            jitter: self.config.jitter,
            par: self.par(flops),
        };
        let state = &mut self.layers[l];
        let post = self.model.posterior_mut(l);
        posterior_step_into(
            post,
            &state.prior,
            &mut state.stats,
            x_l,
            t_l,
            rho,
            &cfg,
            &mut self.workspace.posterior[l],
        )?;
        let tries = post.row_precision.jitter().tries + post.col_cov.jitter().tries;
        check_finite(post.mean.as_ref(), "posterior mean", Some(l), self.step)?;
        self.model.sync_mean(l);
        if let Some(record) = self.record.as_mut() {
            record[l] = Some(LayerRecord {
                inputs: x_l.to_owned(),
                targets: t_l.to_owned(),
                prior: state.prior.clone(),
            });
        }
        Ok(tries)
    }

    /// `G_l` of the seed `d ell / dF` (in the workspace) into the workspace gradients.
    fn gradients(&mut self, trace: &Trace<T>, y: MatRef<'_, T>, par: Par) -> Result<()> {
        let ws = &mut self.workspace;
        let b = y.nrows();
        fit_shape(&mut ws.seed, b, y.ncols());
        self.config
            .likelihood
            .seed_into(ws.seed.as_mut(), trace.output(), y);
        fit_layer_buffers(&mut ws.grads, &self.model.mlp().dims[1..], b);
        self.model.mlp().backward_into(
            self.model.means(),
            trace,
            ws.seed.as_ref(),
            &mut ws.grads,
            par,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    #[test]
    fn layer_buffers_keep_fitting_shapes() {
        let mut bufs: Vec<Mat<f64>> = Vec::new();
        fit_layer_buffers(&mut bufs, &[3, 2], 5);
        assert_eq!(bufs.len(), 2);
        assert_eq!((bufs[1].nrows(), bufs[1].ncols()), (5, 2));
        bufs[0][(0, 0)] = 7.0;
        fit_layer_buffers(&mut bufs, &[3, 2], 5);
        assert_eq!(bufs[0][(0, 0)], 7.0, "a fitting buffer is kept");
        fit_layer_buffers(&mut bufs, &[3, 2], 4);
        assert_eq!((bufs[0].nrows(), bufs[0][(0, 0)]), (4, 0.0));
    }
}
