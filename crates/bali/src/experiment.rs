//! The held-out protocol shared by `bali uci` and `bali fit` (ALGORITHM.md sections 6 and 9):
//! choose options, iterations and the predictive noise on a validation carve of the training
//! split only, retrain on the whole training split, evaluate on the test split.

use std::time::Instant;

use faer::{Mat, MatRef};
use rayon::prelude::*;

use crate::error::{BaliError, Result};
use crate::method::Learner;
pub use crate::method::Method;
use crate::metrics;
use crate::predict::{Ensemble, PredictMode};

/// Progress report: phase name, iterations done, iterations planned.
pub type Progress<'a> = &'a (dyn Fn(&str, usize, usize) + Sync);

/// Options of the held-out protocol.
#[derive(Clone, Debug)]
pub struct ProtocolOptions {
    /// Ensemble size K (independently seeded members, equal mixture).
    pub members: usize,
    /// Predictive samples S of the whole mixture (S / K per member; MAP members give one).
    pub samples: usize,
    /// Largest iteration count considered.
    pub max_iterations: usize,
    /// Stop after this many checkpoints without held-out improvement.
    pub patience: usize,
    /// Fraction of the training split used for training during selection.
    pub carve: f64,
    /// Threads for training ensemble members side by side.
    pub threads: usize,
    /// Base seed (members use `seed + m`).
    pub seed: u64,
    /// What chooses the options and the iteration count.
    pub criterion: Criterion,
    /// After a grid of more than one point (carve criterion, a network with hidden layers
    /// and more than one input),
    /// also try the winner with automatic relevance determination of the inputs
    /// ([`Method::with_input_relevance`]) and keep it where its carve log-likelihood is
    /// higher by [`RELEVANCE_Z`] standard errors of the paired per-row differences. Its
    /// search checks every checkpoint up to `max_iterations` (patience ignored): pruning
    /// the irrelevant inputs takes hundreds of iterations, after a plateau that a short
    /// patience mistakes for the end.
    pub relevance_stage: bool,
    /// The grid point chosen on the carve (carve criterion, more than one point): the most
    /// regularized one (largest weight decay, [`weight_decay`]) among those whose carve
    /// log-likelihood is within `parsimony` standard errors of the best point's (the paired
    /// per-row differences, as [`significantly_better`] measures them), the best carve
    /// log-likelihood among equals: the one-standard-error rule of cross-validation
    /// (Breiman et al. 1984; Hastie, Tibshirani and Friedman, section 7.10) against the
    /// winner's curse of a small carve. 0: the best point.
    pub parsimony: f64,
}

/// What the protocol maximizes to choose a grid point and its iteration count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Criterion {
    /// The held-out log-likelihood on the validation carve (networks trained on the rest).
    #[default]
    Carve,
    /// The whole-network Laplace evidence per training row ([`crate::evidence`]) of one
    /// network trained on the whole training split, at its optimal noise and prior
    /// precisions: no rows are held out. The predictive noise is the evidence's `sigma^2`.
    /// Regression only.
    Evidence,
}

impl Criterion {
    /// The command-line spelling.
    pub fn name(self) -> &'static str {
        match self {
            Criterion::Carve => "carve",
            Criterion::Evidence => "evidence",
        }
    }
}

impl std::str::FromStr for Criterion {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "carve" => Ok(Criterion::Carve),
            "evidence" => Ok(Criterion::Evidence),
            _ => Err(format!(
                "unknown criterion {s:?}: expected carve or evidence"
            )),
        }
    }
}

impl Default for ProtocolOptions {
    fn default() -> Self {
        ProtocolOptions {
            members: 1,
            samples: 100,
            max_iterations: 1000,
            patience: 2,
            carve: 0.8,
            threads: 1,
            seed: 0,
            criterion: Criterion::Carve,
            relevance_stage: false,
            parsimony: 0.0,
        }
    }
}

impl ProtocolOptions {
    /// Checks every count against [`crate::validate`] (patience `usize::MAX` is "every
    /// checkpoint") and the carve fraction, before any work starts.
    pub fn validate(&self) -> Result<()> {
        use crate::validate as v;
        v::MEMBERS.check(self.members)?;
        v::check_samples(self.samples, self.members)?;
        v::MAX_ITERATIONS.check(self.max_iterations)?;
        if self.patience != usize::MAX {
            v::PATIENCE.check(self.patience)?;
        }
        v::THREADS.check(self.threads)?;
        v::PARSIMONY.check(self.parsimony)?;
        v::Real {
            option: "carve",
            ..v::TEST_FRACTION
        }
        .check(self.carve)?;
        Ok(())
    }
}

/// Iteration checkpoints: 1, 2, 3, 5, 7, 10, 14, 20, ... (about x1.4 each) up to `max`.
pub fn checkpoints(max: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut c = 1.0f64;
    // In f64: `c.round() as usize` saturates, so a cap near usize::MAX would never be passed.
    while c.round() <= max as f64 && (c.round() as usize) <= max {
        let v = c.round() as usize;
        if out.last() != Some(&v) {
            out.push(v);
        }
        c *= 1.4;
    }
    if out.last() != Some(&max) && max > 0 {
        out.push(max);
    }
    out
}

/// Held-out quality of an ensemble at one checkpoint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Checkpoint {
    /// Training iterations done.
    pub iterations: usize,
    /// Mean held-out log-likelihood (standardized units) at the best `sigma^2`.
    pub valid_ll: f64,
    /// Held-out RMSE of the predictive mean (standardized units).
    pub valid_rmse: f64,
    /// Chosen predictive noise variance (standardized units).
    pub sigma2: f64,
}

/// Result of a selection run on the validation carve.
#[derive(Clone, Debug)]
pub struct Selection {
    /// The best checkpoint.
    pub best: Checkpoint,
    /// Every checkpoint evaluated, in order.
    pub curve: Vec<Checkpoint>,
    /// The held-out log-likelihood of every carve row at the best checkpoint and its
    /// `sigma^2` (standardized units; empty under [`Criterion::Evidence`]), for paired
    /// comparisons of two selections on the same carve.
    pub best_rows: Vec<f64>,
}

/// Whether `candidate` is better than `incumbent` on the same held-out rows by more than
/// `z` standard errors of the paired per-row differences `d_i = candidate_i - incumbent_i`:
/// `mean(d) > z sd(d) / sqrt(n)`. False for fewer than two rows or different lengths.
pub fn significantly_better(candidate: &[f64], incumbent: &[f64], z: f64) -> bool {
    let n = candidate.len();
    if n < 2 || incumbent.len() != n {
        return false;
    }
    let d = || candidate.iter().zip(incumbent).map(|(a, b)| a - b);
    let mean = d().sum::<f64>() / n as f64;
    let var = d().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
    mean > z * (var / n as f64).sqrt()
}

/// The weight decay of a grid point, the strength of its prior on the weights: BALI's `wd`
/// (the grid's axis {0, 1, 10 in units of the mean curvature} is in increasing strength:
/// `wd = 1` absolute is the curvature-weighted penalty of weight about 1 in those units at
/// `alpha = 1`), MAP's decoupled `weight_decay`.
pub fn weight_decay(method: &Method) -> f64 {
    match method {
        Method::Bali(c) => c.wd,
        Method::Map(c) => c.weight_decay,
    }
}

/// The index into `points` ((grid point, selection) pairs, at least one) that
/// [`ProtocolOptions::parsimony`] `z` chooses: the largest [`weight_decay`] among the points
/// whose per-row carve log-likelihoods the best point's do not beat by more than `z`
/// standard errors ([`significantly_better`]), the highest carve log-likelihood among those
/// of that decay. `z = 0` keeps only points level with the best (so the best wins but for
/// exact ties of every row).
pub fn parsimonious_choice(points: &[(&Method, &Selection)], z: f64) -> usize {
    let best = (0..points.len())
        .reduce(|a, b| {
            if points[b].1.best.valid_ll > points[a].1.best.valid_ll {
                b
            } else {
                a
            }
        })
        .unwrap_or(0);
    if z <= 0.0 {
        return best;
    }
    let best_rows = &points[best].1.best_rows;
    let mut chosen = best;
    for (k, (method, sel)) in points.iter().enumerate() {
        let within = !significantly_better(best_rows, &sel.best_rows, z);
        let (wd, wd_chosen) = (weight_decay(method), weight_decay(points[chosen].0));
        let better = wd > wd_chosen
            || (wd == wd_chosen && sel.best.valid_ll > points[chosen].1.best.valid_ll);
        if within && better {
            chosen = k;
        }
    }
    chosen
}

/// Held-out log-likelihood at the best predictive `sigma^2` (1-D search over `log sigma^2`),
/// as `(sigma^2, mean log-likelihood)` in standardized units.
pub fn calibrate_sigma2(samples: &[Mat<f64>], y: MatRef<'_, f64>) -> (f64, f64) {
    calibrate_sigma2_above(samples, y, 1e-6)
}

/// [`calibrate_sigma2`] searching `sigma^2 >= floor` only (`floor` clamped to `[1e-6, 1]`,
/// standardized units).
pub fn calibrate_sigma2_above(samples: &[Mat<f64>], y: MatRef<'_, f64>, floor: f64) -> (f64, f64) {
    let refs: Vec<MatRef<'_, f64>> = samples.iter().map(|s| s.as_ref()).collect();
    let mut mixture = metrics::MixtureResiduals::new(&refs, y);
    let mut rows = vec![0.0; y.nrows()];
    search_sigma2(&mut mixture, floor, &mut rows)
}

/// The search of [`calibrate_sigma2_above`] on the residuals of its samples; `rows` (length
/// `n`) is scratch.
fn search_sigma2(
    mixture: &mut metrics::MixtureResiduals,
    floor: f64,
    rows: &mut [f64],
) -> (f64, f64) {
    let mean_ll = |log_s2: f64| mixture.mean_log_lik(log_s2.exp(), 1.0, rows);
    // 12-point grid over [max(1e-6, floor), 10], then golden section to 1e-3 of the range
    // (~0.016 in log sigma^2 from 1e-6): about 25 evaluations of the mixture.
    let lo = floor.clamp(1e-6, 1.0).ln();
    let (log_s2, ll) = metrics::maximize_1d(mean_ll, lo, (10.0f64).ln(), 12, 1e-3);
    (log_s2.exp(), ll)
}

/// The protocol's ensemble of K members of one method (seeded as [`Ensemble`] says).
fn new_ensemble(
    method: &Method,
    dims: &[usize],
    n: usize,
    k: usize,
    seed: u64,
) -> Result<Ensemble<Learner<f64>>> {
    let members = (0..k)
        .map(|m| method.build(dims, n, Ensemble::<Learner<f64>>::init_seed(seed, m)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Ensemble { members })
}

/// Trains every member until `target` steps are done (side by side when `threads > 1`).
fn advance_to(
    ens: &mut Ensemble<Learner<f64>>,
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    target: u64,
    threads: usize,
) -> Result<()> {
    if threads > 1 && ens.members.len() > 1 {
        ens.members
            .par_iter_mut()
            .map(|m| m.advance_to(x, y, target))
            .collect::<Result<Vec<()>>>()?;
    } else {
        for m in &mut ens.members {
            m.advance_to(x, y, target)?;
        }
    }
    Ok(())
}

/// Mean learned output noise `Sigma_L` over the full-batch BALI members (None otherwise).
fn learned_noise(ens: &Ensemble<Learner<f64>>) -> Option<f64> {
    let v: Vec<f64> = ens
        .members
        .iter()
        .filter_map(Learner::learned_noise)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The checkpoint search shared by both criteria: trains `ens` on `(x, y)` up to each of
/// [`checkpoints`], records `score(ens, iterations)` and stops after `options.patience`
/// checkpoints without improvement of its `valid_ll`; a run that diverges after the first
/// checkpoint ends the search with the best so far.
fn search_checkpoints(
    ens: &mut Ensemble<Learner<f64>>,
    (x, y): (MatRef<'_, f64>, MatRef<'_, f64>),
    options: &ProtocolOptions,
    phase: &str,
    progress: Option<Progress<'_>>,
    mut score: impl FnMut(&Ensemble<Learner<f64>>, usize) -> Result<(Checkpoint, Vec<f64>)>,
) -> Result<Selection> {
    let mut curve: Vec<Checkpoint> = Vec::new();
    let mut best: Option<Checkpoint> = None;
    let mut best_rows = Vec::new();
    let mut since_best = 0;
    for c in checkpoints(options.max_iterations) {
        match advance_to(ens, x, y, c as u64, options.threads) {
            Ok(()) => {}
            // A diverged run ends the search; the best checkpoint so far stands.
            Err(BaliError::NonFinite { .. }) | Err(BaliError::Algebra(_)) if best.is_some() => {
                break
            }
            Err(e) => return Err(e),
        }
        let (cp, rows) = score(ens, c)?;
        curve.push(cp);
        if let Some(report) = progress {
            report(phase, c, options.max_iterations);
        }
        if best.is_none_or(|b| cp.valid_ll > b.valid_ll) {
            best = Some(cp);
            best_rows = rows;
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= options.patience {
                break;
            }
        }
    }
    let best = best.ok_or(BaliError::InvalidOption {
        name: "max_iterations",
        value: options.max_iterations.to_string(),
        reason: "must be >= 1",
    })?;
    Ok(Selection {
        best,
        curve,
        best_rows,
    })
}

/// Trains `options.members` networks on `(x_train, y_train)` and evaluates the mixture on
/// `(x_valid, y_valid)` at [`checkpoints`], choosing `sigma^2` at each; stops after
/// `patience` checkpoints without improvement. All data standardized.
pub fn select_iterations(
    method: &Method,
    dims: &[usize],
    train: (MatRef<'_, f64>, MatRef<'_, f64>),
    valid: (MatRef<'_, f64>, MatRef<'_, f64>),
    options: &ProtocolOptions,
    members: usize,
    progress: Option<Progress<'_>>,
) -> Result<Selection> {
    let (xv, yv) = valid;
    let mut ens = new_ensemble(method, dims, train.0.nrows(), members, options.seed)?;
    let phase = "selecting on the held-out carve";
    search_checkpoints(&mut ens, train, options, phase, progress, |ens, c| {
        let samples = ens.predict_samples(
            xv,
            options.samples,
            PredictMode::Weights,
            options.seed ^ 0xA5A5,
        )?;
        // Full-batch BALI: the predictive noise is searched at or above the output layer's
        // learned Sigma_L; a held-out carve of a few dozen rows otherwise can pick a noise
        // level an order of magnitude below the network's own residual variance (yacht).
        let floor = learned_noise(ens).unwrap_or(0.0);
        let refs: Vec<MatRef<'_, f64>> = samples.iter().map(|s| s.as_ref()).collect();
        let mut mixture = metrics::MixtureResiduals::new(&refs, yv);
        let mut rows = vec![0.0; yv.nrows()];
        let (sigma2, valid_ll) = search_sigma2(&mut mixture, floor, &mut rows);
        // The per-row figures at the chosen noise, from the same residuals.
        mixture.log_lik_into(sigma2, 1.0, &mut rows);
        let mean = metrics::predictive_mean(&refs);
        let cp = Checkpoint {
            iterations: c,
            valid_ll,
            valid_rmse: metrics::rmse(mean.as_ref(), yv),
            sigma2,
        };
        Ok((cp, rows))
    })
}

/// [`select_iterations`] by the whole-network Laplace evidence: one network (the first
/// member's seed) trained on `(x, y)`, the whole training split; at each checkpoint the
/// evidence per row ([`Learner::laplace_evidence`]) is recorded in `valid_ll`, the training
/// RMSE of the means in `valid_rmse` and the evidence's noise in `sigma2`; stops after
/// `patience` checkpoints without improvement.
pub fn select_by_evidence(
    method: &Method,
    dims: &[usize],
    train: (MatRef<'_, f64>, MatRef<'_, f64>),
    options: &ProtocolOptions,
    progress: Option<Progress<'_>>,
) -> Result<Selection> {
    let (x, y) = train;
    let mut ens = new_ensemble(method, dims, x.nrows(), 1, options.seed)?;
    let phase = "selecting by the Laplace evidence";
    search_checkpoints(&mut ens, train, options, phase, progress, |ens, c| {
        let evidence = ens.members[0].laplace_evidence(x, y)?;
        let cp = Checkpoint {
            iterations: c,
            valid_ll: evidence.per_row(x.nrows()),
            valid_rmse: ens.members[0].train_rmse(x, y)?,
            sigma2: evidence.sigma2,
        };
        Ok((cp, Vec::new()))
    })
}

/// Test-split figures of one trained ensemble.
#[derive(Clone, Debug)]
pub struct TestResult {
    /// Mean test log-likelihood in original units.
    pub test_ll: f64,
    /// Test RMSE of the predictive mean in original units.
    pub rmse: f64,
    /// RMSE of the predictive mean (20 samples at most) on the training rows it was trained
    /// on, original units: against `rmse` it tells overfitting (far below the noise) from
    /// underfitting (near the test figure).
    pub train_rmse: f64,
    /// Coverage of the central 50/90/95% predictive intervals.
    pub coverage: [f64; 3],
    /// Predictive noise variance used (standardized units).
    pub sigma2: f64,
    /// Iterations trained.
    pub iterations: usize,
    /// Held-out log-likelihood of the chosen checkpoint (standardized units).
    pub valid_ll: f64,
    /// Description of the chosen options.
    pub options: String,
    /// Wall-clock seconds of selection, retraining and evaluation.
    pub seconds: f64,
    /// The held-out curve of the chosen options.
    pub curve: Vec<Checkpoint>,
    /// The predictive samples on the test inputs (standardized units, n x 1 each).
    pub test_samples: Vec<Mat<f64>>,
    /// The chosen method.
    pub method: Method,
    /// The ensemble trained on the whole training split (standardized units).
    pub ensemble: Ensemble<Learner<f64>>,
}

/// Standardized split of a regression problem (targets n x 1).
pub struct Split<'a> {
    /// Training inputs and targets, standardized with the training statistics.
    pub train: (MatRef<'a, f64>, MatRef<'a, f64>),
    /// Test inputs (standardized) and targets (standardized with the training statistics).
    pub test: (MatRef<'a, f64>, MatRef<'a, f64>),
    /// Standard deviation of the training targets (original units per standardized unit).
    pub y_scale: f64,
}

/// How many standard errors of the paired per-row carve differences the relevance stage's
/// candidate must gain over the grid's winner to replace it ([`significantly_better`]):
/// relevance determination adds a hyperparameter per input and can prune a relevant one
/// on a retrain (seen on energy's collinear inputs), so a gain within the carve's noise
/// keeps the shared shrinkage.
pub const RELEVANCE_Z: f64 = 2.0;

/// The full protocol on one split: options grid and iterations on the carve (one member per
/// grid point; with [`ProtocolOptions::relevance_stage`] the winner with relevance
/// determination as one more candidate; then the ensemble for the chosen point), retrain on
/// the whole training split, evaluate on the test split.
pub fn run_split(
    grid: &[Method],
    dims: &[usize],
    split: &Split<'_>,
    options: &ProtocolOptions,
    progress: Option<Progress<'_>>,
) -> Result<TestResult> {
    let start = Instant::now();
    let (x, y) = split.train;
    let n = x.nrows();
    options.validate()?;
    crate::validate::check_carve(n, options.carve, "the training split")?;
    crate::validate::check_test_rows(split.test.0.nrows(), "the test split")?;
    {
        let outputs = dims.last().copied().unwrap_or(1);
        let batch = grid
            .iter()
            .filter_map(|m| match m {
                Method::Bali(c) => c.batch_size,
                Method::Map(_) => None,
            })
            .max()
            .unwrap_or(n)
            .min(n);
        let trainer = crate::validate::trainer_bytes(dims, batch, 0);
        let eval_rows = split.test.0.nrows() + n - (options.carve * n as f64).round() as usize;
        crate::validate::check_memory(
            format!(
                "{} member(s) of {} with {} predictive samples of {eval_rows} rows",
                options.members,
                crate::validate::dims_label(dims),
                options.samples
            ),
            crate::validate::protocol_bytes(
                trainer,
                options.members,
                options.samples,
                eval_rows,
                outputs,
            ),
        )?;
    }
    // The carve is also cut under the evidence criterion (it is cheap); only the carve
    // criterion trains on it.
    let (fit_idx, valid_idx) = crate::data::train_valid_carve(n, options.carve, options.seed);
    let xf = crate::data::split_rows(x, &fit_idx);
    let yf = crate::data::split_rows(y, &fit_idx);
    let xv = crate::data::split_rows(x, &valid_idx);
    let yv = crate::data::split_rows(y, &valid_idx);
    let by_evidence = options.criterion == Criterion::Evidence;
    if by_evidence {
        if let Some(m) = grid.iter().find(|m| m.batch_size().is_some_and(|b| b < n)) {
            return Err(BaliError::InvalidOption {
                name: "select",
                value: format!("evidence with [{}]", m.label()),
                reason: "the Laplace evidence is evaluated on full-batch networks only; use --select carve with mini-batches",
            });
        }
    }
    let mut searched: Vec<(usize, Selection)> = Vec::new();
    let mut last_failure: Option<String> = None;
    for (g, method) in grid.iter().enumerate() {
        let members = if grid.len() == 1 { options.members } else { 1 };
        let sel = if by_evidence {
            select_by_evidence(method, dims, (x, y), options, progress)
        } else {
            select_iterations(
                method,
                dims,
                (xf.as_ref(), yf.as_ref()),
                (xv.as_ref(), yv.as_ref()),
                options,
                members,
                progress,
            )
        };
        let sel = match sel {
            Ok(s) => s,
            // One grid point failing numerically does not end the protocol.
            Err(e @ (BaliError::NonFinite { .. } | BaliError::Algebra(_))) if grid.len() > 1 => {
                last_failure = Some(format!("[{}]: {e}", method.label()));
                continue;
            }
            Err(e) => return Err(e),
        };
        searched.push((g, sel));
    }
    if searched.is_empty() {
        return Err(BaliError::AllDiverged {
            grid: grid.len(),
            last: last_failure.unwrap_or_default(),
        });
    }
    // The evidence has no per-row terms to compare: its best point.
    let z = if by_evidence { 0.0 } else { options.parsimony };
    let points: Vec<(&Method, &Selection)> = searched.iter().map(|(g, s)| (&grid[*g], s)).collect();
    let k = parsimonious_choice(&points, z);
    let (g, mut selection) = searched.swap_remove(k);
    let mut method = grid[g].clone();
    // The relevance stage: the winner with relevance determination, every checkpoint.
    let every_checkpoint = ProtocolOptions {
        patience: usize::MAX,
        ..options.clone()
    };
    let mut search_options = options;
    // A single input has nothing to spread the shrinkage over (r_1 = 1 / (1 + eps)).
    let relevance =
        options.relevance_stage && grid.len() > 1 && !by_evidence && dims.len() > 2 && dims[0] > 1;
    if let Some(ard) = method.with_input_relevance().filter(|_| relevance) {
        let carve = (xf.as_ref(), yf.as_ref());
        let valid = (xv.as_ref(), yv.as_ref());
        match select_iterations(&ard, dims, carve, valid, &every_checkpoint, 1, progress) {
            Ok(sel) if significantly_better(&sel.best_rows, &selection.best_rows, RELEVANCE_Z) => {
                (method, selection) = (ard, sel);
                search_options = &every_checkpoint;
            }
            Ok(_) | Err(BaliError::NonFinite { .. } | BaliError::Algebra(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if grid.len() > 1 && options.members > 1 && !by_evidence {
        selection = select_iterations(
            &method,
            dims,
            (xf.as_ref(), yf.as_ref()),
            (xv.as_ref(), yv.as_ref()),
            search_options,
            options.members,
            progress,
        )?;
    }
    // Mini-batch runs keep the number of epochs (and a schedule its length in epochs) when
    // the training set grows.
    let mut iterations = selection.best.iterations;
    if let Some(b) = method.batch_size() {
        if b < xf.nrows() {
            let scale = n as f64 / xf.nrows() as f64;
            iterations = ((iterations as f64) * scale).round() as usize;
            method = method.with_epochs_scaled(scale);
        }
    }
    let mut ens = new_ensemble(&method, dims, n, options.members, options.seed)?;
    for c in checkpoints(iterations) {
        advance_to(&mut ens, x, y, c as u64, options.threads)?;
        if let Some(report) = progress {
            report("training on the whole training split", c, iterations);
        }
    }
    let (xt, yt) = split.test;
    let samples = ens.predict_samples(
        xt,
        options.samples,
        PredictMode::Weights,
        options.seed ^ 0x5A5A,
    )?;
    // By the evidence: the noise of the final members' own evidence (their mean), each
    // member at its own optimum; by the carve: the carve's noise.
    let sigma2 = if by_evidence {
        let mut total = 0.0;
        for m in &ens.members {
            total += m.laplace_evidence(x, y)?.sigma2;
        }
        total / ens.members.len() as f64
    } else {
        selection.best.sigma2
    };
    let refs: Vec<MatRef<'_, f64>> = samples.iter().map(|s| s.as_ref()).collect();
    let ll = metrics::gaussian_mixture_log_lik(&refs, sigma2, yt, split.y_scale);
    let test_ll = ll.iter().sum::<f64>() / ll.len().max(1) as f64;
    let mean = metrics::predictive_mean(&refs);
    let rmse = metrics::rmse(mean.as_ref(), yt) * split.y_scale;
    let cov = metrics::interval_coverage(&refs, sigma2, yt, &[0.5, 0.9, 0.95]);
    let train_samples = ens.predict_samples(
        x,
        options.samples.min(20),
        PredictMode::Weights,
        options.seed ^ 0x3C3C,
    )?;
    let train_refs: Vec<MatRef<'_, f64>> = train_samples.iter().map(|s| s.as_ref()).collect();
    let train_rmse =
        metrics::rmse(metrics::predictive_mean(&train_refs).as_ref(), y) * split.y_scale;
    Ok(TestResult {
        test_ll,
        rmse,
        train_rmse,
        coverage: [cov[0], cov[1], cov[2]],
        sigma2,
        iterations,
        valid_ll: selection.best.valid_ll,
        options: method.label(),
        seconds: start.elapsed().as_secs_f64(),
        curve: selection.curve,
        test_samples: samples,
        method,
        ensemble: ens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paired rule against its formula: a constant gain is significant at any `z` (zero
    /// spread), a gain of 0.866 standard errors passes `z = 0.8` and fails `z = 0.9`, a loss
    /// and mismatched or too short inputs never pass.
    #[test]
    fn significance_is_the_paired_mean_over_its_standard_error() {
        let base = [0.1, -0.3, 0.5, 0.0];
        let shifted: Vec<f64> = base.iter().map(|b| b + 0.2).collect();
        assert!(significantly_better(&shifted, &base, 100.0));
        assert!(!significantly_better(&base, &shifted, 0.0));
        // d = (1, -1, 1, -1) + 0.5: mean 0.5, sd sqrt(4/3), se sqrt(1/3): 0.866 se.
        let d = [1.5, -0.5, 1.5, -0.5];
        let cand: Vec<f64> = base.iter().zip(d).map(|(b, d)| b + d).collect();
        assert!(significantly_better(&cand, &base, 0.8));
        assert!(!significantly_better(&cand, &base, 0.9));
        assert!(!significantly_better(&cand[..3], &base, 0.0));
        assert!(!significantly_better(&[1.0], &[0.0], 0.0));
    }

    /// The one-standard-error rule: a stronger decay within `z` paired standard errors of
    /// the best is chosen, one beyond it is not, the best among equal decays wins, and
    /// `z = 0` is the plain argmax.
    #[test]
    fn parsimony_takes_the_strongest_decay_within_z_standard_errors() {
        let point = |wd: f64| {
            Method::Bali(crate::BaliConfig {
                wd,
                ..crate::BaliConfig::default()
            })
        };
        let selection = |rows: Vec<f64>| Selection {
            best: Checkpoint {
                iterations: 1,
                valid_ll: rows.iter().sum::<f64>() / rows.len() as f64,
                valid_rmse: 0.0,
                sigma2: 1.0,
            },
            curve: Vec::new(),
            best_rows: rows,
        };
        let base = vec![0.1, -0.3, 0.5, 0.0];
        // Behind the best by d = 0.5 + (1, -1, 1, -1): 0.866 standard errors.
        let behind: Vec<f64> = base
            .iter()
            .zip([1.5, -0.5, 1.5, -0.5])
            .map(|(b, d)| b - d)
            .collect();
        let (m0, m1, m10) = (point(0.0), point(1.0), point(10.0));
        let (best, near) = (selection(base.clone()), selection(behind.clone()));
        let far = selection(base.iter().map(|b| b - 0.2).collect());
        let points = [(&m0, &best), (&m10, &near), (&m1, &far)];
        assert_eq!(parsimonious_choice(&points, 0.0), 0);
        assert_eq!(parsimonious_choice(&points, 0.9), 1);
        assert_eq!(parsimonious_choice(&points, 0.8), 0);
        // A constant loss has no spread: never within, whatever z.
        assert_eq!(parsimonious_choice(&[(&m0, &best), (&m1, &far)], 5.0), 0);
        // Among equal decays within z, the higher carve figure.
        let nearer = selection(behind.iter().map(|b| b + 1e-3).collect());
        let points = [(&m0, &best), (&m10, &near), (&m10, &nearer)];
        assert_eq!(parsimonious_choice(&points, 0.9), 2);
    }
}
