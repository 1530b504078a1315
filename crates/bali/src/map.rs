//! The MAP baseline: the same MLP trained by Adam with weight decay on the Gaussian
//! negative log-likelihood, so that every comparison with BALI is like for like.

use std::ops::ControlFlow;

use bali_autodiff::{loss_and_seed, Adam, Loss, Mlp};
use bali_kernels::{Activation, Scalar};
use faer::{Mat, MatRef, Par};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{BaliError, Result};

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
    /// Seed of the initialisation and the batch order.
    pub seed: u64,
}

impl Default for MapConfig {
    fn default() -> Self {
        MapConfig {
            lr: 1e-2,
            weight_decay: 1e-4,
            batch_size: None,
            activation: Activation::Relu,
            seed: 0,
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
}

impl<T: Scalar> MapNet<T> {
    /// A fresh network with layer widths `dims`.
    pub fn new(dims: Vec<usize>, config: MapConfig) -> Result<Self> {
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
        let mlp = Mlp::new(dims, config.activation)?;
        let mut rng = StdRng::seed_from_u64(config.seed);
        let weights: Vec<Mat<T>> = mlp.init_weights(&mut rng);
        let shapes: Vec<(usize, usize)> =
            (0..mlp.num_layers()).map(|l| mlp.layer_shape(l)).collect();
        let adam = Adam::new(T::of(config.lr), T::zero(), &shapes);
        Ok(MapNet {
            mlp,
            config,
            weights,
            adam,
            rng,
            order: Vec::new(),
            cursor: usize::MAX,
            step: 0,
        })
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
    /// `(1/B) sum_batch (y - f)^2 / 2 + wd/2 ||W||^2` (bias rows not decayed).
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
                what: "training data (X, Y)",
                expected: "the same number (>= 1) of rows".into(),
                got: format!("{} and {} rows", x.nrows(), y.nrows()),
            });
        }
        let batch = self.config.batch_size.unwrap_or(n).min(n);
        if self.order.len() != n {
            self.order = (0..n).collect();
            self.cursor = usize::MAX;
        }
        let wd = T::of(self.config.weight_decay);
        for _ in 0..iterations {
            let batch_rows: (Mat<T>, Mat<T>);
            let (xs, ys) = if batch >= n {
                (x, y)
            } else {
                if self.cursor.saturating_add(batch) > n {
                    self.order.shuffle(&mut self.rng);
                    self.cursor = 0;
                }
                let rows = &self.order[self.cursor..self.cursor + batch];
                self.cursor += batch;
                batch_rows = (
                    Mat::from_fn(batch, x.ncols(), |r, j| x[(rows[r], j)]),
                    Mat::from_fn(batch, y.ncols(), |r, j| y[(rows[r], j)]),
                );
                (batch_rows.0.as_ref(), batch_rows.1.as_ref())
            };
            let trace = self.mlp.forward(&self.weights, xs, Par::Seq)?;
            let loss = Loss::Gaussian {
                y: ys,
                sigma2: T::one(),
            };
            let (value, seed) = loss_and_seed(&loss, trace.output())?;
            if !value.is_finite() {
                return Err(BaliError::NonFinite {
                    what: "MAP training loss (Adam diverged)",
                    layer: None,
                    step: self.step,
                });
            }
            let gs = self
                .mlp
                .backward(&self.weights, &trace, seed.as_ref(), Par::Seq)?;
            let mut grads = self.mlp.weight_grads(&trace, &gs, Par::Seq)?;
            let inv_b = T::one() / T::of(xs.nrows() as f64);
            for (g, w) in grads.iter_mut().zip(&self.weights) {
                let p = w.nrows();
                for j in 0..w.ncols() {
                    for i in 0..p {
                        let decay = if i + 1 < p { wd * w[(i, j)] } else { T::zero() };
                        g[(i, j)] = g[(i, j)] * inv_b + decay;
                    }
                }
            }
            self.adam.step(&mut self.weights, &grads)?;
            self.step += 1;
            if callback(self).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Network output `f(x)` (n x d_L).
    pub fn predict(&self, x: MatRef<'_, T>) -> Result<Mat<T>> {
        let trace = self.mlp.forward(&self.weights, x, Par::Seq)?;
        Ok(trace.output().to_owned())
    }
}
