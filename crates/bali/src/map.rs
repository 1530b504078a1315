//! The MAP baseline: the same MLP trained by Adam with weight decay on the same likelihood as
//! BALI's (Gaussian or softmax-categorical, [`Likelihood`]), with a constant or cosine
//! learning rate, so that every comparison with BALI is like for like.

use std::ops::ControlFlow;

use bali_autodiff::{Adam, Mlp, Trace};
use bali_kernels::{Activation, ParPolicy, Scalar};
use faer::{Mat, MatRef, Par};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{BaliError, Result};
use crate::likelihood::Likelihood;
use crate::train::{fit_layer_buffers, fit_shape};

/// Learning-rate schedule of the Adam baseline.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum LrSchedule {
    /// `lr` at every step.
    #[default]
    Constant,
    /// Cosine decay over `horizon` steps from `lr` to `lr / 1000`,
    /// `lr_t = lr_min + (lr - lr_min) (1 + cos(pi min(t, h) / h)) / 2` at step `t = 0, 1, ..`
    /// (then `lr_min`): the usual tuned schedule; stopping early at a validation checkpoint
    /// before the horizon is allowed.
    Cosine {
        /// Steps `h >= 1` to decay over.
        horizon: u64,
    },
}

impl LrSchedule {
    /// `constant` or `cosine(h)` for tables and logs.
    pub fn label(self) -> String {
        match self {
            LrSchedule::Constant => "constant".into(),
            LrSchedule::Cosine { horizon } => format!("cosine({horizon})"),
        }
    }

    /// The schedule for `scale` times as many steps (a cosine horizon multiplied by `scale`,
    /// rounded, at least 1): the same number of epochs on a training set `scale` times as
    /// large at the same batch size.
    pub fn scaled(self, scale: f64) -> LrSchedule {
        match self {
            LrSchedule::Constant => LrSchedule::Constant,
            LrSchedule::Cosine { horizon } => LrSchedule::Cosine {
                horizon: ((horizon as f64) * scale).round().max(1.0) as u64,
            },
        }
    }

    /// The learning rate of step `t` (0-based) for base rate `lr`.
    pub fn rate(self, lr: f64, t: u64) -> f64 {
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine { horizon } => {
                let frac = t.min(horizon) as f64 / horizon.max(1) as f64;
                let lr_min = 1e-3 * lr;
                lr_min + 0.5 * (lr - lr_min) * (1.0 + (std::f64::consts::PI * frac).cos())
            }
        }
    }
}

/// Options of the Adam baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct MapConfig {
    /// Adam learning rate.
    pub lr: f64,
    /// L2 weight decay on the mean objective (`wd/2 ||W||^2` added per row).
    pub weight_decay: f64,
    /// Mini-batch size (`None`: full batch).
    pub batch_size: Option<usize>,
    /// Hidden activation.
    pub activation: Activation,
    /// Threads available to the kernels (parallelism chosen by problem size).
    pub threads: usize,
    /// Likelihood of the output (the loss is its negative log).
    pub likelihood: Likelihood,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
}

impl Default for MapConfig {
    fn default() -> Self {
        MapConfig {
            lr: 1e-2,
            weight_decay: 1e-4,
            batch_size: None,
            activation: Activation::Relu,
            threads: 1,
            likelihood: Likelihood::Gaussian,
            schedule: LrSchedule::Constant,
        }
    }
}

impl MapConfig {
    /// The options for a training set `scale` times as large at the same number of epochs
    /// (the schedule [`LrSchedule::scaled`]; everything else unchanged).
    pub fn with_epochs_scaled(&self, scale: f64) -> MapConfig {
        MapConfig {
            schedule: self.schedule.scaled(scale),
            ..self.clone()
        }
    }
}

/// An MLP trained to the MAP point by Adam.
#[derive(Clone, Debug)]
pub struct MapNet<T> {
    mlp: Mlp,
    config: MapConfig,
    weights: Vec<Mat<T>>,
    adam: Adam<T>,
    rng: StdRng,
    order: Vec<usize>,
    cursor: usize,
    step: u64,
    policy: ParPolicy,
    /// `sum_l p_l q_l` (weights per row of a forward pass, for the flop count).
    weight_count: usize,
    workspace: MapWorkspace<T>,
}

/// The buffers of a MAP step, kept between steps: the forward trace, the loss seed, the
/// backward `G_l`, the weight gradients and the gathered mini-batch.
#[derive(Clone, Debug)]
struct MapWorkspace<T> {
    trace: Trace<T>,
    seed: Mat<T>,
    gs: Vec<Mat<T>>,
    grads: Vec<Mat<T>>,
    batch_x: Mat<T>,
    batch_y: Mat<T>,
}

impl<T: Scalar> MapWorkspace<T> {
    /// Empty buffers (sized by the first step).
    fn new() -> Self {
        MapWorkspace {
            trace: Trace::default(),
            seed: Mat::zeros(0, 0),
            gs: Vec::new(),
            grads: Vec::new(),
            batch_x: Mat::zeros(0, 0),
            batch_y: Mat::zeros(0, 0),
        }
    }
}

impl<T: Scalar> MapNet<T> {
    /// A fresh network with layer widths `dims`; `seed` draws the initial weights and then
    /// the batch order.
    pub fn new(dims: Vec<usize>, config: MapConfig, seed: u64) -> Result<Self> {
        if !(config.lr.is_finite() && config.lr > 0.0) {
            return Err(BaliError::InvalidOption {
                name: "lr",
                value: config.lr.to_string(),
                reason: "must be finite and > 0",
            });
        }
        if !(config.weight_decay.is_finite() && config.weight_decay >= 0.0) {
            return Err(BaliError::InvalidOption {
                name: "weight_decay",
                value: config.weight_decay.to_string(),
                reason: "must be finite and >= 0",
            });
        }
        crate::validate::check_memory(
            format!(
                "training a {} MAP network",
                crate::validate::dims_label(&dims)
            ),
            crate::validate::map_bytes(&dims, config.batch_size.unwrap_or(1024)),
        )?;
        let mlp = Mlp::new(dims, config.activation)?;
        if config.threads == 0 {
            return Err(BaliError::InvalidOption {
                name: "threads",
                value: "0".into(),
                reason: "must be >= 1",
            });
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let weights: Vec<Mat<T>> = mlp.init_weights(&mut rng);
        let adam = Adam::new(T::of(config.lr), T::zero(), &mlp.layer_shapes());
        Ok(MapNet {
            policy: ParPolicy::with_threads(config.threads),
            weight_count: mlp.layer_shapes().iter().map(|&(p, q)| p * q).sum(),
            mlp,
            config,
            weights,
            adam,
            rng,
            order: Vec::new(),
            cursor: usize::MAX,
            step: 0,
            workspace: MapWorkspace::new(),
        })
    }

    /// The architecture.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// The options.
    pub fn config(&self) -> &MapConfig {
        &self.config
    }

    /// Current weights (p_l x q_l, bias last row).
    pub fn weights(&self) -> &[Mat<T>] {
        &self.weights
    }

    /// Adam steps done.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Runs `iterations` Adam steps on `(x, y)` on the objective
    /// `(1/B) sum_batch ell(f, y) + wd/2 ||W||^2` (bias rows not decayed).
    pub fn fit(
        &mut self,
        x: MatRef<'_, T>,
        y: MatRef<'_, T>,
        iterations: usize,
        mut callback: impl FnMut(&Self) -> ControlFlow<()>,
    ) -> Result<()> {
        let n = x.nrows();
        if n == 0 || y.nrows() != n {
            return Err(BaliError::Shape {
                what: "training targets Y (as many rows as X, n >= 1)",
                expected: (n.max(1), y.ncols()),
                got: (y.nrows(), y.ncols()),
            });
        }
        let batch = self.config.batch_size.unwrap_or(n).min(n);
        if self.order.len() != n {
            self.order = (0..n).collect();
            self.cursor = usize::MAX;
        }
        for _ in 0..iterations {
            if batch >= n {
                self.step(x, y)?;
            } else {
                if self.cursor.saturating_add(batch) > n {
                    self.order.shuffle(&mut self.rng);
                    self.cursor = 0;
                }
                // The batch rows gathered into the workspace (no allocation after the first).
                let mut bx = std::mem::replace(&mut self.workspace.batch_x, Mat::zeros(0, 0));
                let mut by = std::mem::replace(&mut self.workspace.batch_y, Mat::zeros(0, 0));
                fit_shape(&mut bx, batch, x.ncols());
                fit_shape(&mut by, batch, y.ncols());
                for (r, &i) in self.order[self.cursor..self.cursor + batch]
                    .iter()
                    .enumerate()
                {
                    for j in 0..x.ncols() {
                        bx[(r, j)] = x[(i, j)];
                    }
                    for j in 0..y.ncols() {
                        by[(r, j)] = y[(i, j)];
                    }
                }
                self.cursor += batch;
                let stepped = self.step(bx.as_ref(), by.as_ref());
                self.workspace.batch_x = bx;
                self.workspace.batch_y = by;
                stepped?;
            }
            if callback(self).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// One Adam step on the batch `(x, y)` (B rows) of the objective
    /// `(1/B) sum_batch ell(f, y) + wd/2 ||W||^2` (bias rows not decayed; Gaussian
    /// `ell = (y - f)^2 / 2`, categorical the cross-entropy with one-hot `y`): forward,
    /// `d ell / dF` from the likelihood, backward, `dW_l = X_l^T G_l`, `dW / B + wd W`,
    /// [`Adam::step`] at the schedule's rate. Returns the mean loss `ell / B` before the step.
    /// After the first step at a batch size, a step allocates nothing (its buffers live in
    /// the network's workspace).
    pub fn step(&mut self, x: MatRef<'_, T>, y: MatRef<'_, T>) -> Result<T> {
        let flops: f64 = 2.0 * x.nrows() as f64 * self.weight_count as f64;
        let par = self.policy.par(flops);
        let mut trace = std::mem::take(&mut self.workspace.trace);
        let result = self.step_with(&mut trace, x, y, par);
        self.workspace.trace = trace;
        result
    }

    /// [`MapNet::step`] with the trace buffer taken out of the workspace.
    fn step_with(
        &mut self,
        trace: &mut Trace<T>,
        x: MatRef<'_, T>,
        y: MatRef<'_, T>,
        par: Par,
    ) -> Result<T> {
        let b = x.nrows();
        self.mlp.forward_into(&self.weights, x, trace, par)?;
        let f = trace.output();
        if y.nrows() != b || y.ncols() != f.ncols() {
            return Err(BaliError::Shape {
                what: "MAP training targets Y",
                expected: (b, f.ncols()),
                got: (y.nrows(), y.ncols()),
            });
        }
        let likelihood = self.config.likelihood;
        let value = likelihood.mean_loss(f, y);
        if !value.is_finite() {
            return Err(BaliError::NonFinite {
                what: "MAP training loss (Adam diverged)",
                layer: None,
                step: self.step,
            });
        }
        let ws = &mut self.workspace;
        fit_shape(&mut ws.seed, b, f.ncols());
        likelihood.seed_into(ws.seed.as_mut(), f, y);
        fit_layer_buffers(&mut ws.gs, &self.mlp.dims[1..], b);
        self.mlp
            .backward_into(&self.weights, trace, ws.seed.as_ref(), &mut ws.gs, par)?;
        ws.grads
            .resize_with(self.weights.len(), || Mat::zeros(0, 0));
        for (g, w) in ws.grads.iter_mut().zip(&self.weights) {
            fit_shape(g, w.nrows(), w.ncols());
        }
        self.mlp
            .weight_grads_into(trace, &ws.gs, &mut ws.grads, par)?;
        let inv_b = T::one() / T::of(b as f64);
        let wd = T::of(self.config.weight_decay);
        for (g, w) in ws.grads.iter_mut().zip(&self.weights) {
            let p = w.nrows();
            for j in 0..w.ncols() {
                for i in 0..p {
                    let decay = if i + 1 < p { wd * w[(i, j)] } else { T::zero() };
                    g[(i, j)] = g[(i, j)] * inv_b + decay;
                }
            }
        }
        self.adam.lr = T::of(self.config.schedule.rate(self.config.lr, self.step));
        self.adam.step(&mut self.weights, &ws.grads)?;
        self.step += 1;
        Ok(T::of(value))
    }

    /// Network output `f(x)` (n x d_L).
    pub fn predict(&self, x: MatRef<'_, T>) -> Result<Mat<T>> {
        let trace = self.mlp.forward(&self.weights, x, Par::Seq)?;
        Ok(trace.output().to_owned())
    }
}
