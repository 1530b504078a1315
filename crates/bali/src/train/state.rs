//! What a [`Trainer`] carries from one step to the next besides the model, as a value that can
//! be saved (see [`crate::model_file`]) and resumed from: `Trainer::resume(model, config,
//! trainer.state())` continues exactly as `trainer` would have, bit for bit.
//!
//! The state of a trainer after `t` steps is, per layer `l`, the EMA statistics
//! `(S_hat_xx, S_hat_xt, S_hat_rr, n_hat, t)` (ALGORITHM.md 2.3) and, for the `Improved`
//! hidden layers, the curvature EMA `C_hat_l` with its update count and the damping floor
//! frozen at step 1; for the whole trainer, the step count, the batch sampler's permutation,
//! cursor and epoch and its ChaCha12 generator (seed, stream, word position). Everything else
//! is rebuilt from the options: the priors (the proximal prior's mean is moved to the current
//! mean before every step), `beta`, and the damped curvature `D_l` with its inverse, which is
//! a function of `C_hat_l` and its update count alone (both change on refresh steps only).

use bali_kernels::Scalar;
use faer::Mat;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use super::batches::BatchSampler;
use super::Trainer;
use crate::config::BaliConfig;
use crate::error::{BaliError, Result};
use crate::model::BayesianMlp;

/// The state of a ChaCha12 generator: enough to continue its stream exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RngState {
    /// The 32-byte key.
    pub seed: [u8; 32],
    /// The stream number.
    pub stream: u64,
    /// The position in the stream, in 32-bit words.
    pub word_pos: u128,
}

impl RngState {
    pub(crate) fn of(rng: &ChaCha12Rng) -> Self {
        RngState {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos(),
        }
    }

    pub(crate) fn rng(&self) -> ChaCha12Rng {
        let mut rng = ChaCha12Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }
}

/// The batch sampler: a permutation of `0..n_train`, the position in it and the epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerState {
    /// The current order of the training rows (a permutation of `0..n_train`).
    pub order: Vec<usize>,
    /// Rows of `order` already used in this epoch.
    pub cursor: usize,
    /// Epoch of the last batch (0-based).
    pub epoch: usize,
    /// The generator that shuffles `order`.
    pub rng: RngState,
}

/// The curvature EMA of an `Improved` hidden layer (ALGORITHM.md 3.2 step 4).
#[derive(Clone, Debug, PartialEq)]
pub struct CurvatureState<T> {
    /// `C_hat_l` (q x q; lower triangle, or the diagonal only under `Scalar`).
    pub c_hat: Mat<T>,
    /// Its update count (for the bias correction).
    pub step: u64,
    /// `floor tr(C_l at step 1) / q`, once the first step has set it.
    pub floor_abs: Option<T>,
}

/// One layer's EMA statistics and curvature.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTrainingState<T> {
    /// `S_hat_xx` (p x p, lower triangle valid).
    pub sxx: Mat<T>,
    /// `S_hat_xt` (p x q).
    pub sxt: Mat<T>,
    /// `S_hat_rr` (q x q, lower triangle valid; zero unless `Sigma_l` is learned).
    pub srr: Mat<T>,
    /// `n_hat`.
    pub n_hat: T,
    /// Statistics updates `t`.
    pub step: u64,
    /// The curvature EMA (`Improved` hidden layers only).
    pub curvature: Option<CurvatureState<T>>,
}

/// Everything a [`Trainer`] needs besides its model and options to continue training.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerState<T> {
    /// Training rows `N` (sets `rho = N / B` and `beta`).
    pub n_train: usize,
    /// Steps done.
    pub step: u64,
    /// Per layer, input side first.
    pub layers: Vec<LayerTrainingState<T>>,
    /// The batch sampler.
    pub sampler: SamplerState,
}

fn bad_state(value: String, reason: &'static str) -> BaliError {
    BaliError::InvalidOption {
        name: "training state",
        value,
        reason,
    }
}

impl<T: Scalar> Trainer<T> {
    /// The state to save for resuming (see the module documentation).
    pub fn state(&self) -> TrainerState<T> {
        TrainerState {
            n_train: self.n_train,
            step: self.step,
            layers: self
                .layers
                .iter()
                .map(|s| LayerTrainingState {
                    sxx: s.stats.sxx.clone(),
                    sxt: s.stats.sxt.clone(),
                    srr: s.stats.srr.clone(),
                    n_hat: s.stats.n,
                    step: s.stats.step,
                    curvature: s.curvature.as_ref().map(|c| CurvatureState {
                        c_hat: c.c_hat.clone(),
                        step: c.step,
                        floor_abs: c.floor_abs,
                    }),
                })
                .collect(),
            sampler: self.sampler.state(),
        }
    }

    /// A trainer that continues from `model` (the posteriors after `state.step` steps),
    /// trained with `config`, in `state`: its next steps equal those the saved trainer would
    /// have taken, bit for bit.
    ///
    /// Errors: [`BaliError::InvalidOption`] (name `training state`) when the state does not
    /// fit the model and options (layer count, statistic or curvature shapes, a curvature EMA
    /// where the options have none or the reverse, a sampler order that is not a permutation
    /// of `0..n_train`, non-finite statistics, a model whose activation or likelihood is not
    /// the options'), and what [`Trainer::new`] returns. The model keeps its standardization
    /// and noise: training data must then be given in its standardized units.
    pub fn resume(
        model: BayesianMlp<T>,
        config: BaliConfig,
        state: TrainerState<T>,
    ) -> Result<Self> {
        let dims = model.mlp().dims.clone();
        if model.mlp().activation != config.activation || model.likelihood() != config.likelihood {
            return Err(bad_state(
                format!("{:?}/{:?}", model.mlp().activation, model.likelihood()),
                "the model's activation and likelihood must be the options'",
            ));
        }
        let mut trainer = Trainer::new(dims, config, state.n_train, 0)?;
        if state.layers.len() != trainer.layers.len() {
            return Err(bad_state(
                format!("{} layers", state.layers.len()),
                "one layer state per layer of the model",
            ));
        }
        for (l, (saved, layer)) in state.layers.iter().zip(&trainer.layers).enumerate() {
            let (p, q) = (layer.stats.p(), layer.stats.q());
            let shape = |m: &Mat<T>| (m.nrows(), m.ncols());
            let fits = shape(&saved.sxx) == (p, p)
                && shape(&saved.sxt) == (p, q)
                && shape(&saved.srr) == (q, q)
                && match (&saved.curvature, &layer.curvature) {
                    (Some(s), Some(_)) => shape(&s.c_hat) == (q, q),
                    (None, None) => true,
                    _ => false,
                };
            if !fits {
                return Err(bad_state(
                    format!("layer {l}"),
                    "statistics (and curvature, Improved hidden layers only) of the layer's shapes",
                ));
            }
            let finite = [&saved.sxx, &saved.sxt, &saved.srr]
                .into_iter()
                .chain(saved.curvature.as_ref().map(|c| &c.c_hat))
                .all(|m| bali_kernels::all_finite(m.as_ref()))
                && saved.n_hat.to_f64().is_finite()
                && saved.n_hat >= T::zero();
            if !finite {
                return Err(bad_state(
                    format!("layer {l}"),
                    "statistics must be finite (and n_hat >= 0)",
                ));
            }
        }
        let n = state.n_train;
        let mut seen = vec![false; n];
        let permutation = state.sampler.order.len() == n
            && state
                .sampler
                .order
                .iter()
                .all(|&i| i < n && !std::mem::replace(&mut seen[i], true));
        if !permutation || state.sampler.cursor > n {
            return Err(bad_state(
                format!("sampler of {} rows", state.sampler.order.len()),
                "the batch order must be a permutation of 0..n_train and the cursor at most n_train",
            ));
        }
        for (saved, layer) in state.layers.into_iter().zip(trainer.layers.iter_mut()) {
            layer.stats.sxx = saved.sxx;
            layer.stats.sxt = saved.sxt;
            layer.stats.srr = saved.srr;
            layer.stats.n = saved.n_hat;
            layer.stats.step = saved.step;
            if let (Some(s), Some(c)) = (saved.curvature, layer.curvature.as_mut()) {
                c.c_hat = s.c_hat;
                c.step = s.step;
                c.floor_abs = s.floor_abs;
            }
        }
        trainer.model = model;
        trainer.step = state.step;
        trainer.sampler = BatchSampler::from_state(state.sampler);
        Ok(trainer)
    }
}

/// The generator a trainer seeded with `seed` starts with (the initial weights are drawn
/// from it, then the batch order).
pub(crate) fn trainer_rng(seed: u64) -> ChaCha12Rng {
    ChaCha12Rng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, RngCore};

    /// The trainer's generator is the stream `StdRng` gave before (rand 0.9's `StdRng` is
    /// ChaCha12 seeded the same way), so switching to the savable type changed no result.
    #[test]
    fn trainer_rng_is_the_std_rng_stream() {
        for seed in [0, 1, 42, u64::MAX] {
            let mut std = StdRng::seed_from_u64(seed);
            let mut ours = trainer_rng(seed);
            for _ in 0..257 {
                assert_eq!(std.next_u64(), ours.next_u64(), "seed {seed}");
            }
        }
    }

    #[test]
    fn rng_state_continues_the_stream() {
        let mut rng = trainer_rng(7);
        for _ in 0..13 {
            rng.random::<f64>();
        }
        let mut resumed = RngState::of(&rng).rng();
        for _ in 0..100 {
            assert_eq!(rng.next_u32(), resumed.next_u32());
        }
    }
}
