//! The classification protocol (`docs/classification.md`): options and iteration count chosen
//! on a validation carve of the training rows only, the chosen method retrained on all of
//! them (with an output temperature chosen on the carve, [`crate::calibration`]), then test
//! accuracy, NLL, Brier score, ECE and reliability bins, out-of-distribution
//! detection by predictive entropy and by mutual information, and a distribution-shift curve.
//!
//! Every method runs the same MLP on the same rows and seeds: BALI ([`ClassMethod::Bali`],
//! `K` posteriors mixed equally) and the MAP network trained by Adam
//! ([`ClassMethod::Map`]; `K > 1` members: a deep ensemble).

use std::ops::ControlFlow;
use std::time::Instant;

use faer::{Mat, MatRef};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::calibration::{fit_temperature, nll_at, Temperature};
use crate::config::BaliConfig;
use crate::data::train_valid_carve;
use crate::error::{BaliError, Result};
use crate::experiment::checkpoints;
use crate::laplace::KfacFactors;
use crate::map::{MapConfig, MapNet};
use crate::metrics::classification::{
    accuracy, auroc, brier, ece, fpr_at_tpr, nll, reliability, Bin,
};
use crate::model::{BayesianMlp, CategoricalPrediction, LogitSamples, PredictMode};
use crate::predict::Ensemble;
use crate::train::Trainer;

/// Inputs (n x d, in the units the networks see) with a class label per row.
#[derive(Clone, Debug)]
pub struct LabelledSet {
    /// Inputs (n x d).
    pub x: Mat<f64>,
    /// Class of every row, in `0..K`.
    pub labels: Vec<usize>,
}

impl LabelledSet {
    /// The rows `idx`.
    pub fn rows(&self, idx: &[usize]) -> LabelledSet {
        LabelledSet {
            x: crate::data::split_rows(self.x.as_ref(), idx),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// One-hot targets (n x K).
    pub fn one_hot(&self, k: usize) -> Mat<f64> {
        Mat::from_fn(self.labels.len(), k, |i, c| {
            if self.labels[i] == c {
                1.0
            } else {
                0.0
            }
        })
    }
}

/// An out-of-distribution set: inputs only.
#[derive(Clone, Debug)]
pub struct OodSet {
    /// Name as reported (`kmnist`, `noise`, `flipped`).
    pub name: String,
    /// Inputs (n x d).
    pub x: Mat<f64>,
}

/// The data of one seed of the protocol.
#[derive(Clone, Debug)]
pub struct ClassProblem {
    /// Training rows (the carve is drawn from them).
    pub train: LabelledSet,
    /// Test rows.
    pub test: LabelledSet,
    /// Out-of-distribution sets.
    pub ood: Vec<OodSet>,
    /// Shifted copies of the test rows (e.g. rotated), with their names.
    pub shift: Vec<(String, LabelledSet)>,
}

/// One classification method with all its options.
#[derive(Clone, Debug, PartialEq)]
pub enum ClassMethod {
    /// BALI with the categorical likelihood.
    Bali(BaliConfig),
    /// The MAP network (Adam) with the categorical likelihood.
    Map(MapConfig),
    /// The MAP network, then a post-hoc K-FAC Laplace posterior around it
    /// ([`crate::laplace`]) whose prior precision is chosen on the validation carve.
    Laplace(MapConfig),
}

/// Prior precisions `tau` the Laplace baseline searches on the validation carve.
pub const LAPLACE_PRIOR_PRECISIONS: [f64; 12] = [
    1e-2, 1e-1, 1.0, 10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4, 1e5, 1e6,
];

impl ClassMethod {
    /// Short description for tables.
    pub fn label(&self) -> String {
        match self {
            ClassMethod::Bali(c) => format!(
                "bali {:?}/{:?} alpha={} alpha_hidden={} gamma={} floor={} wd={} fisher={} batch={}",
                c.formulation,
                c.preconditioner,
                c.alpha,
                c.hidden_alpha(),
                c.gamma,
                c.floor,
                c.wd,
                c.fisher.name(),
                c.batch_size.map_or("full".to_string(), |b| b.to_string())
            ),
            ClassMethod::Map(c) | ClassMethod::Laplace(c) => format!(
                "{} lr={} wd={} schedule={} batch={}",
                if matches!(self, ClassMethod::Map(_)) { "map" } else { "laplace (kfac) of map" },
                c.lr,
                c.weight_decay,
                c.schedule.label(),
                c.batch_size.map_or("full".to_string(), |b| b.to_string())
            ),
        }
    }
}

/// A network being trained by either method.
#[derive(Clone, Debug)]
enum ClassLearner {
    Bali(Box<Trainer<f64>>),
    Map(Box<MapNet<f64>>),
    /// A fixed posterior (the Laplace approximation of a trained MAP network).
    Posterior(Box<BayesianMlp<f64>>),
}

impl ClassLearner {
    fn new(method: &ClassMethod, dims: &[usize], n_train: usize, seed: u64) -> Result<Self> {
        Ok(match method {
            ClassMethod::Bali(c) => ClassLearner::Bali(Box::new(Trainer::new(
                dims.to_vec(),
                c.clone(),
                n_train,
                seed,
            )?)),
            ClassMethod::Map(c) | ClassMethod::Laplace(c) => {
                ClassLearner::Map(Box::new(MapNet::new(dims.to_vec(), c.clone(), seed)?))
            }
        })
    }

    fn steps(&self) -> u64 {
        match self {
            ClassLearner::Bali(t) => t.steps(),
            ClassLearner::Map(m) => m.steps(),
            ClassLearner::Posterior(_) => 0,
        }
    }

    /// Trains until `target` steps are done.
    fn advance_to(&mut self, x: MatRef<'_, f64>, y: MatRef<'_, f64>, target: u64) -> Result<()> {
        let todo = target.saturating_sub(self.steps()) as usize;
        match self {
            ClassLearner::Bali(t) => t.fit(x, y, todo, |_, _| ControlFlow::Continue(())),
            ClassLearner::Map(m) => m.fit(x, y, todo, |_| ControlFlow::Continue(())),
            ClassLearner::Posterior(_) => Err(BaliError::Unsupported {
                what: "training a fixed Laplace posterior",
                needs: "its MAP network",
            }),
        }
    }
}

/// Sampled logits of an equal mixture of members ([`LogitSamples`]): BALI members from
/// `samples` posterior samples in all (`ceil(samples / K)` each, drawn as
/// [`Ensemble::predict_logits`] draws them, so one rule seeds both); MAP members their one
/// deterministic output (a single network then has zero mutual information).
fn logits(
    members: &[ClassLearner],
    x: MatRef<'_, f64>,
    samples: usize,
    seed: u64,
) -> Result<LogitSamples> {
    let k = members.len();
    if k == 0 {
        return Err(BaliError::NotFitted { what: "members" });
    }
    let per = if k == 1 {
        samples
    } else {
        samples.div_ceil(k).max(1)
    };
    let members = members
        .iter()
        .enumerate()
        .map(|(m, learner)| {
            let mut rng = StdRng::seed_from_u64(Ensemble::<()>::sample_seed(seed, m));
            match learner {
                ClassLearner::Bali(t) => {
                    t.model()
                        .predict_logits(x, per, PredictMode::Weights, &mut rng)
                }
                ClassLearner::Posterior(p) => {
                    p.predict_logits(x, per, PredictMode::Weights, &mut rng)
                }
                ClassLearner::Map(net) => Ok(vec![net.predict(x)?]),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LogitSamples { members })
}

/// The temperature of `logits` on `labels`: chosen by [`fit_temperature`] when `validated`,
/// else 1 (with its NLL).
fn temperature_of(logits: &LogitSamples, labels: &[usize], validated: bool) -> Result<Temperature> {
    if validated {
        return fit_temperature(logits, labels);
    }
    let v = nll_at(logits, labels, 1.0)?;
    Ok(Temperature {
        t: 1.0,
        nll: v,
        nll_untempered: v,
    })
}

/// Options of the protocol.
#[derive(Clone, Debug)]
pub struct ClassOptions {
    /// Members `K` of the final model (BALI posteriors or MAP networks).
    pub members: usize,
    /// Predictive samples of BALI's mixture (S / K per member).
    pub samples: usize,
    /// Largest iteration count considered on the carve (checkpoints log-spaced to it).
    pub max_iterations: usize,
    /// Fraction of the training rows fitted during selection (the rest validates).
    pub carve: f64,
    /// Seed of the carve, the networks and the samples.
    pub seed: u64,
    /// Choose an output temperature on the carve with the iterations (and the Laplace prior
    /// precision), by validation NLL ([`crate::calibration`]); `false` keeps `T = 1`.
    pub temperature: bool,
}

impl Default for ClassOptions {
    fn default() -> Self {
        ClassOptions {
            members: 1,
            samples: 20,
            max_iterations: 200,
            carve: 0.8,
            seed: 0,
            temperature: true,
        }
    }
}

/// Validation quality at one checkpoint of one grid point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassCheckpoint {
    /// Index of the grid point.
    pub grid: usize,
    /// Training iterations done.
    pub iterations: usize,
    /// Validation NLL (nats per row) at the checkpoint's temperature.
    pub valid_nll: f64,
    /// Validation NLL at `T = 1`.
    pub valid_nll_untempered: f64,
    /// The temperature chosen on the carve at this checkpoint (1 when none is chosen).
    pub temperature: f64,
    /// Validation accuracy.
    pub valid_accuracy: f64,
}

/// OOD detection of one set: AUROC and FPR at 95% TPR, OOD points positive, scored by
/// predictive entropy and by mutual information.
#[derive(Clone, Debug, PartialEq)]
pub struct OodResult {
    /// The set's name.
    pub name: String,
    /// AUROC by predictive entropy.
    pub auroc_entropy: f64,
    /// AUROC by mutual information.
    pub auroc_mi: f64,
    /// FPR at 95% TPR by predictive entropy.
    pub fpr95_entropy: f64,
    /// FPR at 95% TPR by mutual information.
    pub fpr95_mi: f64,
    /// Predictive entropy of every OOD row (for histograms).
    pub entropy: Vec<f64>,
}

/// Test metrics of a prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassMetrics {
    /// Accuracy.
    pub accuracy: f64,
    /// Mean negative log-likelihood (nats).
    pub nll: f64,
    /// Brier score.
    pub brier: f64,
    /// Expected calibration error (15 bins).
    pub ece: f64,
}

fn metrics_of(p: &CategoricalPrediction, labels: &[usize]) -> Result<ClassMetrics> {
    let probs = p.probs.as_ref();
    Ok(ClassMetrics {
        accuracy: accuracy(probs, labels)?,
        nll: nll(probs, labels)?,
        brier: brier(probs, labels)?,
        ece: ece(probs, labels, 15)?,
    })
}

/// Everything the protocol measured on one seed.
#[derive(Clone, Debug)]
pub struct ClassResult {
    /// The chosen method (after selection).
    pub method: ClassMethod,
    /// Iterations chosen on the carve.
    pub iterations: usize,
    /// The Laplace baseline's prior precision chosen on the carve.
    pub prior_precision: Option<f64>,
    /// The output temperature chosen on the carve (1 without [`ClassOptions::temperature`]).
    pub temperature: f64,
    /// Whether the chosen checkpoint is the largest considered (the cap may bind).
    pub at_cap: bool,
    /// Every checkpoint of every grid point on the carve.
    pub curve: Vec<ClassCheckpoint>,
    /// Seconds of the final training (all members, to the chosen iteration).
    pub train_seconds: f64,
    /// Test metrics.
    pub test: ClassMetrics,
    /// Reliability bins of the test predictions (15 equal-width confidence bins).
    pub reliability: Vec<Bin>,
    /// Predictive entropy of every test row.
    pub test_entropy: Vec<f64>,
    /// OOD detection per OOD set.
    pub ood: Vec<OodResult>,
    /// Metrics on each shifted test set (e.g. rotated by an angle), in the order given.
    pub shift: Vec<(String, ClassMetrics)>,
}

/// What the validation carve chose: the best checkpoint of every grid point's curve.
#[derive(Clone, Debug, PartialEq)]
pub struct CarveSelection {
    /// The best (grid point, iterations, temperature) by validation NLL.
    pub best: ClassCheckpoint,
    /// Every checkpoint of every grid point.
    pub curve: Vec<ClassCheckpoint>,
}

/// The number of classes (the last width) and a non-empty grid, or an error.
fn classes_of(grid: &[ClassMethod], dims: &[usize]) -> Result<usize> {
    let k = *dims.last().ok_or(BaliError::LayerCount {
        expected: 1,
        got: 0,
    })?;
    if grid.is_empty() {
        return Err(BaliError::InvalidOption {
            name: "grid",
            value: "empty".into(),
            reason: "at least one method",
        });
    }
    Ok(k)
}

/// The protocol on one seed: [`select_on_carve`], then [`finish_classification`].
pub fn run_classification(
    grid: &[ClassMethod],
    dims: &[usize],
    problem: &ClassProblem,
    options: &ClassOptions,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<ClassResult> {
    let selection = select_on_carve(grid, dims, &problem.train, options, &mut progress)?;
    finish_classification(grid, selection, dims, problem, options, progress)
}

/// Every grid point trained on the carve of `train` (one member each, seeded by
/// `options.seed`) and evaluated by validation NLL at log-spaced checkpoints (at the
/// temperature chosen there, when [`ClassOptions::temperature`]). A `Laplace` grid point
/// trains and scores its MAP network here, so MAP, a MAP ensemble and the Laplace baseline
/// with the same options share one selection.
pub fn select_on_carve(
    grid: &[ClassMethod],
    dims: &[usize],
    train: &LabelledSet,
    options: &ClassOptions,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<CarveSelection> {
    let k = classes_of(grid, dims)?;
    let (fit_idx, valid_idx) = train_valid_carve(train.labels.len(), options.carve, options.seed);
    let (fit, valid) = (train.rows(&fit_idx), train.rows(&valid_idx));
    let y_fit = fit.one_hot(k);
    let stops = checkpoints(options.max_iterations);
    let mut curve = Vec::new();
    let mut last_failure: Option<String> = None;
    let mut best: Option<ClassCheckpoint> = None;
    for (g, method) in grid.iter().enumerate() {
        let mut learner = [ClassLearner::new(
            method,
            dims,
            fit_idx.len(),
            options.seed,
        )?];
        for &c in &stops {
            let step = learner[0].advance_to(fit.x.as_ref(), y_fit.as_ref(), c as u64);
            if let Err(e) = step {
                // A grid point that diverges numerically does not end the protocol.
                if grid.len() > 1
                    && matches!(e, BaliError::NonFinite { .. } | BaliError::Algebra(_))
                {
                    last_failure = Some(format!("grid point {g}: {e}"));
                    break;
                }
                return Err(e);
            }
            let f = logits(&learner, valid.x.as_ref(), options.samples, options.seed)?;
            let t = temperature_of(&f, &valid.labels, options.temperature)?;
            let point = ClassCheckpoint {
                grid: g,
                iterations: c,
                valid_nll: t.nll,
                valid_nll_untempered: t.nll_untempered,
                temperature: t.t,
                valid_accuracy: accuracy(f.probabilities(t.t).probs.as_ref(), &valid.labels)?,
            };
            curve.push(point);
            if best.is_none_or(|b| point.valid_nll < b.valid_nll) {
                best = Some(point);
            }
            progress(
                "selecting on the validation carve",
                curve.len(),
                grid.len() * stops.len(),
            );
        }
    }
    let best = best.ok_or_else(|| BaliError::AllDiverged {
        grid: grid.len(),
        last: last_failure.unwrap_or_default(),
    })?;
    Ok(CarveSelection { best, curve })
}

/// The rest of the protocol after the carve chose `selection` (from [`select_on_carve`] on
/// the same `grid`, training rows and options): the chosen point and temperature retrained
/// with `members` members on all training rows (the Laplace prior precision chosen on the
/// carve first); then the test set, the OOD sets and the shifted test sets.
pub fn finish_classification(
    grid: &[ClassMethod],
    selection: CarveSelection,
    dims: &[usize],
    problem: &ClassProblem,
    options: &ClassOptions,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<ClassResult> {
    let ClassProblem {
        train,
        test,
        ood,
        shift,
    } = problem;
    let k = classes_of(grid, dims)?;
    let CarveSelection { best, curve } = selection;
    let point = grid.get(best.grid).ok_or(BaliError::InvalidOption {
        name: "selection",
        value: best.grid.to_string(),
        reason: "names a grid point the grid does not have",
    })?;
    let (fit_idx, valid_idx) = train_valid_carve(train.labels.len(), options.carve, options.seed);
    let (fit, valid) = (train.rows(&fit_idx), train.rows(&valid_idx));
    let y_fit = fit.one_hot(k);
    let stops = checkpoints(options.max_iterations);
    let method = point.clone();
    let y = train.one_hot(k);
    let n = train.labels.len();
    // Mini-batch methods keep the number of epochs when the training set grows.
    let batch = match &method {
        ClassMethod::Bali(c) => c.batch_size,
        ClassMethod::Map(c) | ClassMethod::Laplace(c) => c.batch_size,
    };
    let scale = match batch {
        Some(b) if b < fit_idx.len() => n as f64 / fit_idx.len() as f64,
        _ => 1.0,
    };
    let iterations = ((best.iterations as f64) * scale).round() as usize;
    // The Laplace baseline: tau chosen on the carve, around the carve's MAP network at the
    // chosen iteration.
    let tau = match &method {
        ClassMethod::Laplace(c) => {
            let mut net = MapNet::new(dims.to_vec(), c.clone(), options.seed)?;
            net.fit(fit.x.as_ref(), y_fit.as_ref(), best.iterations, |_| {
                ControlFlow::Continue(())
            })?;
            let factors = laplace_factors(&net, fit.x.as_ref(), options.seed)?;
            let mut chosen: Option<(f64, Temperature)> = None;
            for (i, &tau) in LAPLACE_PRIOR_PRECISIONS.iter().enumerate() {
                let post = factors.posterior(net.mlp(), c.likelihood, net.weights(), tau)?;
                let f = logits(
                    &[ClassLearner::Posterior(Box::new(post))],
                    valid.x.as_ref(),
                    options.samples,
                    options.seed,
                )?;
                let t = temperature_of(&f, &valid.labels, options.temperature)?;
                if chosen.is_none_or(|(_, b)| t.nll < b.nll) {
                    chosen = Some((tau, t));
                }
                progress(
                    "choosing the Laplace prior precision",
                    i + 1,
                    LAPLACE_PRIOR_PRECISIONS.len(),
                );
            }
            chosen
        }
        _ => None,
    };
    let temperature = tau.map_or(best.temperature, |(_, t)| t.t);
    let tau = tau.map(|(tau, _)| tau);
    // A learning-rate schedule keeps its length in epochs too.
    let method = match method {
        ClassMethod::Map(c) => ClassMethod::Map(c.with_epochs_scaled(scale)),
        ClassMethod::Laplace(c) => ClassMethod::Laplace(c.with_epochs_scaled(scale)),
        other => other,
    };
    let start = Instant::now();
    let mut members = Vec::with_capacity(options.members);
    for m in 0..options.members.max(1) {
        let mut learner =
            ClassLearner::new(&method, dims, n, Ensemble::<()>::init_seed(options.seed, m))?;
        learner.advance_to(train.x.as_ref(), y.as_ref(), iterations as u64)?;
        if let (Some(tau), ClassLearner::Map(net)) = (tau, &learner) {
            let factors = laplace_factors(net, train.x.as_ref(), options.seed ^ m as u64)?;
            let post = factors.posterior(net.mlp(), net.config().likelihood, net.weights(), tau)?;
            learner = ClassLearner::Posterior(Box::new(post));
        }
        members.push(learner);
        progress(
            "training on all training rows",
            m + 1,
            options.members.max(1),
        );
    }
    let train_seconds = start.elapsed().as_secs_f64();
    let seed = options.seed ^ 0x5A5A;
    let predict = |x: MatRef<'_, f64>| -> Result<CategoricalPrediction> {
        Ok(logits(&members, x, options.samples, seed)?.probabilities(temperature))
    };
    let p_test = predict(test.x.as_ref())?;
    let test_metrics = metrics_of(&p_test, &test.labels)?;
    let (h_test, mi_test) = (p_test.entropy(), p_test.mutual_information());
    let mut ood_results = Vec::with_capacity(ood.len());
    for set in ood {
        let p = predict(set.x.as_ref())?;
        let (h, mi) = (p.entropy(), p.mutual_information());
        ood_results.push(OodResult {
            name: set.name.clone(),
            auroc_entropy: auroc(&h_test, &h)?,
            auroc_mi: auroc(&mi_test, &mi)?,
            fpr95_entropy: fpr_at_tpr(&h_test, &h, 0.95)?,
            fpr95_mi: fpr_at_tpr(&mi_test, &mi, 0.95)?,
            entropy: h,
        });
    }
    let mut shift_results = Vec::with_capacity(shift.len());
    for (name, set) in shift {
        let p = predict(set.x.as_ref())?;
        shift_results.push((name.clone(), metrics_of(&p, &set.labels)?));
    }
    Ok(ClassResult {
        method,
        iterations,
        prior_precision: tau,
        temperature,
        at_cap: best.iterations == *stops.last().unwrap_or(&0),
        curve,
        train_seconds,
        reliability: reliability(p_test.probs.as_ref(), &test.labels, 15)?,
        test: test_metrics,
        test_entropy: h_test,
        ood: ood_results,
        shift: shift_results,
    })
}

/// The K-FAC factors of a trained MAP network on the rows `x`, labels sampled with `seed`.
fn laplace_factors(net: &MapNet<f64>, x: MatRef<'_, f64>, seed: u64) -> Result<KfacFactors> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x01A9_1ACE);
    KfacFactors::compute(
        net.mlp(),
        net.weights(),
        net.config().likelihood,
        x,
        1024,
        &mut rng,
    )
}

/// A seeded permutation of `0..n` split into the first `n_train` rows and the rest.
pub fn seeded_split(n: usize, n_train: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let test = order.split_off(n_train.min(n));
    (order, test)
}
