//! Training methods and their presets: the one place that says what `bali` trains by default
//! and which options the held-out protocol searches.
//!
//! - [`Method`]: a method with all its options (BALI with a [`BaliConfig`], or the MAP
//!   network with a [`MapConfig`]); [`Method::build`] gives a [`Learner`], the trainable
//!   network behind both.
//! - [`Preset`]: the named methods of the frontends (`bali`, `bali-paper`, `map`) with their
//!   default batch sizes, iteration caps and options grids; [`Overrides`] are the options a
//!   user fixed, which are then not searched.

use bali_kernels::{Activation, Scalar};
use faer::{Mat, MatRef};
use rand::rngs::StdRng;

use crate::config::{BaliConfig, Formulation, Preconditioner, WdScale};
use crate::error::{BaliError, Result};
use crate::map::{LrSchedule, MapConfig, MapNet};
use crate::predict::{PredictMode, Predictor};
use crate::train::Trainer;

/// A training method with its options.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// BALI (either formulation).
    Bali(BaliConfig),
    /// The MAP network trained by Adam.
    Map(MapConfig),
}

impl Method {
    /// A network of widths `dims` for `n` training rows, initialised from `seed`.
    pub fn build<T: Scalar>(&self, dims: &[usize], n: usize, seed: u64) -> Result<Learner<T>> {
        Ok(match self {
            Method::Bali(c) => {
                Learner::Bali(Box::new(Trainer::new(dims.to_vec(), c.clone(), n, seed)?))
            }
            Method::Map(c) => Learner::Map(Box::new(MapNet::new(dims.to_vec(), c.clone(), seed)?)),
        })
    }

    /// The mini-batch size (`None`: full batch).
    pub fn batch_size(&self) -> Option<usize> {
        match self {
            Method::Bali(c) => c.batch_size,
            Method::Map(c) => c.batch_size,
        }
    }

    /// The same method for a training set `scale` times as large, trained for the same
    /// number of epochs: a MAP learning-rate schedule's horizon (in steps) is multiplied by
    /// `scale` (rounded), as the protocols multiply the chosen mini-batch iterations; every
    /// other option is unchanged.
    pub fn with_epochs_scaled(&self, scale: f64) -> Method {
        match self {
            Method::Map(c) => Method::Map(c.with_epochs_scaled(scale)),
            other => other.clone(),
        }
    }

    /// The same BALI options with automatic relevance determination of the inputs
    /// ([`BaliConfig::input_relevance`]), where it acts: `Improved` with a weight decay `wd >
    /// 0` and relevance not already on. `None` otherwise (MAP, `Paper`, `wd = 0`).
    pub fn with_input_relevance(&self) -> Option<Method> {
        match self {
            Method::Bali(c)
                if c.formulation == Formulation::Improved && c.wd > 0.0 && !c.input_relevance =>
            {
                Some(Method::Bali(BaliConfig {
                    input_relevance: true,
                    ..c.clone()
                }))
            }
            _ => None,
        }
    }

    /// Short description of the options (for logs and JSON).
    pub fn label(&self) -> String {
        let batch = |b: Option<usize>| b.map_or("full".to_string(), |b| b.to_string());
        match self {
            Method::Bali(c) => format!(
                "{:?}/{:?} alpha={} gamma={} wd={}{}{} batch={}",
                c.formulation,
                c.preconditioner,
                c.hidden_alpha(),
                c.gamma,
                c.wd,
                match c.wd_scale {
                    WdScale::Curvature if c.wd > 0.0 => "/curvature",
                    WdScale::Evidence => "/evidence",
                    _ => "",
                },
                if c.input_relevance { " ard" } else { "" },
                batch(c.batch_size)
            ),
            Method::Map(c) => format!(
                "Adam lr={} wd={} schedule={} batch={}",
                c.lr,
                c.weight_decay,
                c.schedule.label(),
                batch(c.batch_size)
            ),
        }
    }
}

/// A network being trained by one of the [`Method`]s.
#[derive(Clone, Debug)]
pub enum Learner<T> {
    /// BALI.
    Bali(Box<Trainer<T>>),
    /// MAP by Adam.
    Map(Box<MapNet<T>>),
}

impl<T: Scalar> Learner<T> {
    /// Steps done.
    pub fn steps(&self) -> u64 {
        match self {
            Learner::Bali(m) => m.steps(),
            Learner::Map(m) => m.steps(),
        }
    }

    /// One step on the batch `(x, y)`.
    pub fn step(&mut self, x: MatRef<'_, T>, y: MatRef<'_, T>) -> Result<()> {
        match self {
            Learner::Bali(m) => m.partial_fit(x, y).map(|_| ()),
            Learner::Map(m) => m.step(x, y).map(|_| ()),
        }
    }

    /// Trains on the training set `(x, y)` until `target` steps are done.
    pub fn advance_to(&mut self, x: MatRef<'_, T>, y: MatRef<'_, T>, target: u64) -> Result<()> {
        let todo = target.saturating_sub(self.steps()) as usize;
        if todo == 0 {
            return Ok(());
        }
        let go_on = std::ops::ControlFlow::Continue;
        match self {
            Learner::Bali(m) => m.fit(x, y, todo, |_, _| go_on(())),
            Learner::Map(m) => m.fit(x, y, todo, |_| go_on(())),
        }
    }

    /// The output layer's learned noise variance `Sigma_L` (1 x 1) of a full-batch BALI
    /// network: there `Sigma_L` is the exact posterior mean given the current residuals. With
    /// mini-batches the residual scatter is an EMA over about an epoch of older means, larger
    /// than the current residuals, so it is no floor for the noise (None, as for MAP).
    pub fn learned_noise(&self) -> Option<f64> {
        match self {
            Learner::Bali(m) if m.batch_size() >= m.n_train() => {
                let out = m.mlp().num_layers() - 1;
                let sigma = &m.posterior(out).col_cov;
                (sigma.dim() == 1).then(|| sigma.diagonal()[0].to_f64())
            }
            Learner::Bali(_) | Learner::Map(_) => None,
        }
    }
}

impl Learner<f64> {
    /// The whole-network Laplace evidence ([`crate::evidence`]) of the current weights (BALI:
    /// the posterior means; MAP: its weights) on the standardized training rows `(x, y)`, at
    /// its optimal noise and per-layer prior precisions.
    pub fn laplace_evidence(
        &self,
        x: MatRef<'_, f64>,
        y: MatRef<'_, f64>,
    ) -> Result<crate::evidence::Evidence> {
        let (mlp, weights) = self.mlp_and_weights();
        Ok(
            crate::evidence::LaplaceFactors::compute(mlp, weights, x, y, faer::Par::Seq)?
                .maximize(),
        )
    }

    /// RMSE of the network output at the current weights (BALI: the posterior means) on
    /// `(x, y)` (standardized units).
    pub fn train_rmse(&self, x: MatRef<'_, f64>, y: MatRef<'_, f64>) -> Result<f64> {
        let (mlp, weights) = self.mlp_and_weights();
        let trace = mlp.forward(weights, x, faer::Par::Seq)?;
        Ok(crate::metrics::rmse(trace.output(), y))
    }

    fn mlp_and_weights(&self) -> (&bali_autodiff::Mlp, &[Mat<f64>]) {
        match self {
            Learner::Bali(m) => (m.mlp(), m.model().means()),
            Learner::Map(m) => (m.mlp(), m.weights()),
        }
    }
}

impl<T: Scalar> Predictor<T> for Learner<T> {
    /// BALI: `s` posterior samples; MAP: the network output once (a point estimate).
    fn sample_outputs(
        &self,
        x: MatRef<'_, T>,
        s: usize,
        mode: PredictMode,
        rng: &mut StdRng,
    ) -> Result<Vec<Mat<T>>> {
        match self {
            Learner::Bali(m) => m.model().predict_samples(x, s, mode, rng),
            Learner::Map(m) => Ok(vec![m.predict(x)?]),
        }
    }
}

/// Options a user fixed on the command line (or through another frontend). A fixed option
/// replaces the preset's value and is not searched by the options grid. `None`: the preset
/// decides.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// Pseudo-target formulation.
    pub formulation: Option<Formulation>,
    /// Hidden preconditioner of `Improved`.
    pub preconditioner: Option<Preconditioner>,
    /// Step size `alpha` (BALI), all layers.
    pub alpha: Option<f64>,
    /// Relative damping `gamma`.
    pub gamma: Option<f64>,
    /// Weight decay `wd` of the hidden prior (BALI; for MAP the L2 weight decay).
    pub wd: Option<f64>,
    /// What BALI's `wd` is measured against.
    pub wd_scale: Option<WdScale>,
    /// BALI's automatic relevance determination of the inputs
    /// ([`BaliConfig::input_relevance`]).
    pub input_relevance: Option<bool>,
    /// Prior precision `lambda` of the hidden layers.
    pub lambda: Option<f64>,
    /// EMA forgetting factor `beta`.
    pub beta: Option<f64>,
    /// Mini-batch size.
    pub batch_size: Option<usize>,
    /// Hidden activation.
    pub activation: Option<Activation>,
    /// Threads of the kernels (BALI and MAP; results do not depend on it).
    pub threads: Option<usize>,
}

impl Overrides {
    /// The names of the fixed options that only BALI reads (a MAP run refuses them).
    pub fn bali_only(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut note = |set: bool, name| {
            if set {
                out.push(name);
            }
        };
        note(self.formulation.is_some(), "formulation");
        note(self.preconditioner.is_some(), "preconditioner");
        note(self.alpha.is_some(), "alpha");
        note(self.gamma.is_some(), "gamma");
        note(self.lambda.is_some(), "lambda");
        note(self.wd_scale.is_some(), "wd_scale");
        note(self.input_relevance.is_some(), "input_relevance");
        note(self.beta.is_some(), "beta");
        out
    }

    /// The names of the fixed options that only the `Improved` formulation reads (a
    /// `bali-paper` run refuses them rather than ignoring them).
    pub fn improved_only(&self) -> Vec<&'static str> {
        [
            (self.preconditioner.is_some(), "preconditioner"),
            (self.gamma.is_some(), "gamma"),
            (self.wd.is_some(), "wd"),
            (self.wd_scale.is_some(), "wd_scale"),
            (self.input_relevance.is_some(), "input_relevance"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }

    fn apply(&self, mut c: BaliConfig) -> BaliConfig {
        if let Some(v) = self.formulation {
            c.formulation = v;
        }
        if let Some(v) = self.preconditioner {
            c.preconditioner = v;
        }
        if let Some(v) = self.alpha {
            c.alpha = v;
        }
        if let Some(v) = self.gamma {
            c.gamma = v;
        }
        if let Some(v) = self.wd {
            c.wd = v;
        }
        if let Some(v) = self.lambda {
            c.lambda = v;
        }
        if let Some(v) = self.wd_scale {
            c.wd_scale = v;
        }
        if let Some(v) = self.input_relevance {
            c.input_relevance = v;
        }
        if self.beta.is_some() {
            c.beta = self.beta;
        }
        if let Some(v) = self.activation {
            c.activation = v;
        }
        if let Some(v) = self.threads {
            c.threads = v;
        }
        c
    }

    /// `values`, or only the fixed value when the option is fixed.
    fn axis<V: Copy>(fixed: Option<V>, values: &[V]) -> Vec<V> {
        fixed.map_or_else(|| values.to_vec(), |v| vec![v])
    }
}

/// Training sets larger than this use mini-batches in the presets.
pub const FULL_BATCH_MAX_ROWS: usize = 3000;

/// The named methods of the frontends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// BALI, `Improved` formulation (default).
    Bali,
    /// BALI, `Paper` formulation.
    BaliPaper,
    /// The MAP network trained by Adam (with several members: a deep ensemble).
    Map,
}

impl Preset {
    /// Every preset, in the order of [`Preset::NAMES`].
    pub const ALL: [Preset; 3] = [Preset::Bali, Preset::BaliPaper, Preset::Map];
    /// Their names.
    pub const NAMES: [&'static str; 3] = ["bali", "bali-paper", "map"];

    /// Name as printed in results.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Bali => "bali",
            Preset::BaliPaper => "bali-paper",
            Preset::Map => "map",
        }
    }

    /// The preset after the fixed options: `bali` with a fixed `Paper` formulation is
    /// `bali-paper`. Errors for options the preset cannot take (a BALI option on `map`, the
    /// `Improved` formulation on `bali-paper`).
    pub fn resolve(self, fixed: &Overrides) -> Result<Preset> {
        match (self, fixed.formulation) {
            (Preset::Map, _) => match fixed.bali_only().first() {
                Some(&name) => Err(BaliError::InvalidOption {
                    name,
                    value: "given".into(),
                    reason: "applies to the BALI methods only, not to map",
                }),
                None => Ok(Preset::Map),
            },
            (Preset::BaliPaper, Some(Formulation::Improved)) => Err(BaliError::InvalidOption {
                name: "formulation",
                value: "improved".into(),
                reason: "contradicts the bali-paper method (use --method bali)",
            }),
            (Preset::Bali, Some(Formulation::Paper)) | (Preset::BaliPaper, _) => {
                match fixed.improved_only().first() {
                    Some(&name) => Err(BaliError::InvalidOption {
                        name,
                        value: "given".into(),
                        reason: "applies to the improved formulation only; the paper formulation (bali-paper) does not read it",
                    }),
                    None => Ok(Preset::BaliPaper),
                }
            }
            (p, _) => Ok(p),
        }
    }

    /// Default ensemble size: 5 for BALI (K independently seeded posteriors cost about one
    /// Adam run), 1 for MAP.
    pub fn default_members(self) -> usize {
        match self {
            Preset::Map => 1,
            Preset::Bali | Preset::BaliPaper => 5,
        }
    }

    /// Mini-batch size for a training set of `rows` rows: full batch up to
    /// [`FULL_BATCH_MAX_ROWS`], then 1000 for BALI and 128 for Adam.
    pub fn batch_size(self, rows: usize) -> Option<usize> {
        (rows > FULL_BATCH_MAX_ROWS).then_some(match self {
            Preset::Map => 128,
            Preset::Bali | Preset::BaliPaper => 1000,
        })
    }

    /// Whether the protocol tries relevance determination on the grid's winner
    /// ([`crate::experiment::ProtocolOptions::relevance_stage`]): BALI, unless `fixed` sets
    /// `input_relevance` either way.
    pub fn relevance_stage(self, fixed: &Overrides) -> bool {
        self == Preset::Bali && fixed.input_relevance.is_none()
    }

    /// Checkpoints without improvement after which the carve search stops (`batch`: the
    /// mini-batch size, `None` for full batch): 2 for full-batch BALI; none for mini-batch
    /// BALI, whose carve curve is noisy (the statistics are an EMA over mini-batches: with 2,
    /// single power and protein networks stopped within 30 of 1500 iterations on some splits,
    /// test log-likelihood 0.1 nats below the splits run to the cap) and which runs
    /// one option set, so every checkpoint costs at most the cap; none for MAP, whose cosine
    /// schedule runs to the cap and whose best checkpoint is taken (its validation curve
    /// improves late, as the learning rate anneals).
    pub fn patience(self, batch: Option<usize>) -> usize {
        match (self, batch) {
            (Preset::Map, _) | (_, Some(_)) => usize::MAX,
            (Preset::Bali | Preset::BaliPaper, None) => 2,
        }
    }

    /// The one-standard-error rule of the grid's choice
    /// ([`crate::experiment::ProtocolOptions::parsimony`]): 1 for BALI (the strongest weight
    /// decay whose carve log-likelihood is within one paired standard error of the best grid
    /// point's; `docs/results/wider.md` measures it against 0 on the wider benchmark), 0 for
    /// MAP (the best point of its learning-rate x weight-decay grid, the usual tuning).
    pub fn parsimony(self) -> f64 {
        match self {
            Preset::Map => 0.0,
            Preset::Bali | Preset::BaliPaper => 1.0,
        }
    }

    /// Largest iteration count searched on the validation carve: BALI full batch
    /// [`full_batch_iterations`] (`rows`: the training rows), BALI Paper 2000, mini-batch BALI
    /// 1500; MAP 5000 full batch and 10000 mini-batch.
    pub fn max_iterations(self, rows: usize, batch: Option<usize>) -> usize {
        match (self, batch) {
            (Preset::Map, None) => 5000,
            (Preset::Map, Some(_)) => 10000,
            (Preset::BaliPaper, None) => 2000,
            (Preset::Bali, None) => full_batch_iterations(rows),
            (_, Some(_)) => 1500,
        }
    }

    /// The weight decays of the BALI grid, `(wd, scale)`: none, the absolute `wd = 1` (the
    /// curvature-weighted penalty of the nine UCI sets' grid) and the ridge `wd = 10` in
    /// units of the mean curvature ([`WdScale::Curvature`], the same meaning on every data
    /// set). A fixed `wd` is the only point (at the fixed scale, absolute by default); a
    /// fixed scale keeps none and its own point.
    fn wd_axis(fixed: &Overrides) -> Vec<(f64, WdScale)> {
        match (fixed.wd, fixed.wd_scale) {
            (Some(wd), scale) => vec![(wd, scale.unwrap_or_default())],
            (None, Some(WdScale::Absolute)) => {
                vec![(0.0, WdScale::Absolute), (1.0, WdScale::Absolute)]
            }
            (None, Some(WdScale::Curvature)) => {
                vec![(0.0, WdScale::Curvature), (10.0, WdScale::Curvature)]
            }
            // Estimated online from 0 on: nothing to search.
            (None, Some(WdScale::Evidence)) => vec![(0.0, WdScale::Evidence)],
            (None, None) => vec![
                (0.0, WdScale::Absolute),
                (1.0, WdScale::Absolute),
                (10.0, WdScale::Curvature),
            ],
        }
    }

    /// The options searched on the validation carve (`search`) or the single default point,
    /// for mini-batches of `batch` rows and up to `max_iterations` steps (the horizon of the
    /// MAP cosine schedule), with the `fixed` options replacing the preset's and taken out of
    /// the search.
    ///
    /// - `bali`: hidden preconditioner {Kfac, Scalar} x alpha {0.5 (the default), 1 (a full
    ///   Gauss-Newton step)} x weight decay {0, 1, 10 in units of the mean curvature
    ///   ([`WdScale::Curvature`])} x relative damping {0.1, 1}: 24 points;
    /// - `bali-paper`: alpha {0.1, 0.3, 1};
    /// - `map`: Adam with a cosine learning-rate schedule over `max_iterations` steps (to
    ///   1/1000 of its start), learning rate {1e-3, 3e-3, 1e-2, 3e-2} x weight decay {1e-4,
    ///   1e-3, 1e-2}: 12 points; the single point is 1e-2 (3e-3 for mini-batches) and the
    ///   weight decay 1e-4.
    pub fn grid(
        self,
        batch: Option<usize>,
        search: bool,
        fixed: &Overrides,
        max_iterations: usize,
    ) -> Vec<Method> {
        match self {
            Preset::Bali => {
                let base = fixed.apply(BaliConfig {
                    batch_size: batch,
                    ..BaliConfig::default()
                });
                if !search {
                    return vec![Method::Bali(base)];
                }
                let mut out = Vec::new();
                for preconditioner in Overrides::axis(
                    fixed.preconditioner,
                    &[Preconditioner::Kfac, Preconditioner::Scalar],
                ) {
                    for alpha in Overrides::axis(fixed.alpha, &[0.5, 1.0]) {
                        for (wd, wd_scale) in Self::wd_axis(fixed) {
                            for gamma in Overrides::axis(fixed.gamma, &[0.1, 1.0]) {
                                out.push(Method::Bali(BaliConfig {
                                    alpha,
                                    gamma,
                                    wd,
                                    wd_scale,
                                    preconditioner,
                                    ..base.clone()
                                }));
                            }
                        }
                    }
                }
                out
            }
            Preset::BaliPaper => {
                let base = fixed.apply(BaliConfig {
                    formulation: Formulation::Paper,
                    batch_size: batch,
                    alpha: 0.1,
                    ..BaliConfig::default()
                });
                if !search {
                    return vec![Method::Bali(base)];
                }
                Overrides::axis(fixed.alpha, &[0.1, 0.3, 1.0])
                    .into_iter()
                    .map(|alpha| {
                        Method::Bali(BaliConfig {
                            alpha,
                            ..base.clone()
                        })
                    })
                    .collect()
            }
            Preset::Map => {
                let base = MapConfig {
                    batch_size: batch,
                    lr: if batch.is_some() { 3e-3 } else { 1e-2 },
                    activation: fixed.activation.unwrap_or(Activation::Relu),
                    weight_decay: fixed.wd.unwrap_or(MapConfig::default().weight_decay),
                    threads: fixed.threads.unwrap_or(MapConfig::default().threads),
                    schedule: LrSchedule::Cosine {
                        horizon: max_iterations as u64,
                    },
                    ..MapConfig::default()
                };
                if !search {
                    return vec![Method::Map(base)];
                }
                let mut out = Vec::new();
                for lr in [1e-3, 3e-3, 1e-2, 3e-2] {
                    for weight_decay in Overrides::axis(fixed.wd, &[1e-4, 1e-3, 1e-2]) {
                        out.push(Method::Map(MapConfig {
                            lr,
                            weight_decay,
                            ..base.clone()
                        }));
                    }
                }
                out
            }
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown method `{s}` (expected bali, bali-paper or map)"))
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Iteration cap of full-batch BALI on a data set of `rows` rows: a budget of 1.2e6
/// row-iterations (a full-batch step costs about linearly in the rows), at least 1000 and at
/// most 4000. Small, smooth data sets (yacht: 308 rows, 3896 iterations) keep improving well
/// past 1000 iterations while each one is cheap.
pub fn full_batch_iterations(rows: usize) -> usize {
    (1_200_000 / rows.max(1)).clamp(1000, 4000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_batch_grid_searches_both_preconditioners() {
        let none = Overrides::default();
        let grid = Preset::Bali.grid(None, true, &none, 1000);
        assert_eq!(grid.len(), 24);
        let count = |pre: Preconditioner| {
            grid.iter()
                .filter(|m| matches!(m, Method::Bali(c) if c.preconditioner == pre))
                .count()
        };
        assert_eq!(count(Preconditioner::Kfac), 12);
        assert_eq!(count(Preconditioner::Scalar), 12);
        // The weight decays: none, absolute 1, and the curvature-scaled ridge 10.
        let decays = |grid: &[Method]| -> Vec<(f64, WdScale)> {
            let mut v: Vec<(f64, WdScale)> = grid
                .iter()
                .filter_map(|m| match m {
                    Method::Bali(c) => Some((c.wd, c.wd_scale)),
                    Method::Map(_) => None,
                })
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v.dedup();
            v
        };
        assert_eq!(
            decays(&grid),
            [
                (0.0, WdScale::Absolute),
                (1.0, WdScale::Absolute),
                (10.0, WdScale::Curvature)
            ]
        );
        let curvature = Overrides {
            wd_scale: Some(WdScale::Curvature),
            ..Overrides::default()
        };
        assert_eq!(
            decays(&Preset::Bali.grid(None, true, &curvature, 1000)),
            [(0.0, WdScale::Curvature), (10.0, WdScale::Curvature)]
        );
        // Mini-batch data sets and `--no-grid` run the defaults only.
        let single = Preset::Bali.grid(Some(1000), false, &none, 1000);
        assert_eq!(single.len(), 1);
        assert!(matches!(&single[0], Method::Bali(c)
            if c.preconditioner == Preconditioner::Kfac && c.batch_size == Some(1000)));
    }

    #[test]
    fn a_fixed_option_is_not_searched() {
        let fixed = Overrides {
            alpha: Some(0.7),
            preconditioner: Some(Preconditioner::Scalar),
            lambda: Some(3.0),
            ..Overrides::default()
        };
        let grid = Preset::Bali.grid(None, true, &fixed, 1000);
        assert_eq!(grid.len(), 6, "only wd x gamma remain");
        for m in &grid {
            let Method::Bali(c) = m else {
                panic!("BALI grid")
            };
            assert_eq!(
                (c.alpha, c.preconditioner, c.lambda),
                (0.7, Preconditioner::Scalar, 3.0)
            );
        }
        let paper = Preset::BaliPaper.grid(None, true, &fixed, 1000);
        assert_eq!(paper.len(), 1);
        // A BALI option on the MAP preset is refused, not ignored.
        assert!(Preset::Map.resolve(&fixed).is_err());
        let paper_fixed = Overrides {
            formulation: Some(Formulation::Paper),
            ..Overrides::default()
        };
        assert_eq!(
            Preset::Bali.resolve(&paper_fixed).unwrap(),
            Preset::BaliPaper
        );
        let improved = Overrides {
            formulation: Some(Formulation::Improved),
            ..Overrides::default()
        };
        assert!(Preset::BaliPaper.resolve(&improved).is_err());
    }

    #[test]
    fn map_grid_anneals_over_the_cap_and_keeps_its_epochs_when_rescaled() {
        let none = Overrides::default();
        let grid = Preset::Map.grid(Some(128), true, &none, 10_000);
        assert_eq!(grid.len(), 12);
        for m in &grid {
            let Method::Map(c) = m else {
                panic!("MAP grid")
            };
            assert_eq!(c.schedule, LrSchedule::Cosine { horizon: 10_000 });
            let Method::Map(scaled) = m.with_epochs_scaled(1.25) else {
                panic!("MAP stays MAP")
            };
            assert_eq!(scaled.schedule, LrSchedule::Cosine { horizon: 12_500 });
            assert_eq!((scaled.lr, scaled.weight_decay), (c.lr, c.weight_decay));
        }
        let fixed = Overrides {
            wd: Some(1e-3),
            ..Overrides::default()
        };
        let grid = Preset::Map.grid(None, true, &fixed, 5000);
        assert_eq!(grid.len(), 4, "only the learning rate remains");
        assert_eq!(Preset::Map.patience(None), usize::MAX);
        assert_eq!(Preset::Bali.patience(None), 2);
        assert_eq!(Preset::Bali.patience(Some(1000)), usize::MAX);
        // A BALI method has no schedule to rescale.
        let bali = Method::Bali(BaliConfig::default());
        assert_eq!(bali.with_epochs_scaled(2.0), bali);
    }

    #[test]
    fn full_batch_iteration_budget() {
        assert_eq!(full_batch_iterations(308), 3896); // yacht
        assert_eq!(full_batch_iterations(506), 2371); // boston
        assert_eq!(full_batch_iterations(1599), 1000); // wine: the floor
        assert_eq!(full_batch_iterations(10), 4000); // the ceiling
        assert_eq!(full_batch_iterations(0), 4000);
        assert_eq!(Preset::Bali.max_iterations(455, None), 2637);
        assert_eq!(Preset::Map.max_iterations(455, Some(128)), 10000);
        assert_eq!(Preset::Bali.batch_size(7373), Some(1000));
        assert_eq!(Preset::Map.batch_size(7373), Some(128));
        assert_eq!(Preset::Bali.batch_size(3000), None);
        assert_eq!("bali-paper".parse::<Preset>(), Ok(Preset::BaliPaper));
        assert!("adam".parse::<Preset>().is_err());
    }
}
