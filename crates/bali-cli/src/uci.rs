//! `bali uci`: the UCI regression protocol of ALGORITHM.md section 9 on the standard splits.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use bali::data::{Standardizer, UciDataset};
use bali::experiment::{run_split, Criterion, ProtocolOptions, Split, TestResult};
use bali::metrics::mean_and_stderr;
use bali::validate as v;
use bali::Preset;

use crate::options::TrainArgs;

/// `bali uci --data DIR --dataset NAME ...`
#[derive(Debug, Clone, Args)]
pub struct UciArgs {
    /// Folder holding the UCI data sets (default: ../shared/data/uci, or $BALI_DATA).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Data set: boston, concrete, energy, kin8nm, naval, power, protein, wine, yacht, or the
    /// name of any other folder under `--data` in the same layout (`data.txt`, the index files,
    /// `n_splits.txt`, `n_hidden.txt`, `n_epochs.txt`), such as those `benches/wider/make_data.py`
    /// writes.
    #[arg(long)]
    pub dataset: String,
    /// Method and training options.
    #[command(flatten)]
    pub train: TrainArgs,
    /// Number of splits to run, at most the data set's (default: all of them).
    #[arg(long, value_parser = |s: &str| v::SPLITS.parse(s))]
    pub splits: Option<usize>,
    /// Ensemble members K (default 5 for BALI, 1 for MAP).
    #[arg(long, value_parser = |s: &str| v::MEMBERS.parse(s))]
    pub members: Option<usize>,
    /// Predictive samples of the whole mixture, a multiple of the members [default: 100
    /// rounded up to a multiple of the members].
    #[arg(long, value_parser = |s: &str| v::SAMPLES.parse(s))]
    pub samples: Option<usize>,
    /// Largest iteration count considered on the validation carve (default: BALI full batch
    /// `clamp(1.2e6 / rows, 1000, 4000)`, a fixed budget of row-iterations, since a full-batch
    /// step costs about linearly in the rows; BALI Paper 2000, mini-batch BALI 1500; MAP 5000
    /// full batch and 10000 mini-batch).
    #[arg(long, value_parser = |s: &str| v::MAX_ITERATIONS.parse(s))]
    pub max_iterations: Option<usize>,
    /// Checkpoints without held-out improvement after which the carve search of a grid point
    /// stops, >= 1, or `all` (every checkpoint up to the cap; the best is taken) [default: the
    /// method's, 2 for full-batch BALI, all for mini-batch BALI and for map].
    #[arg(long, value_parser = parse_patience)]
    pub patience: Option<usize>,
    /// What chooses the options and the iteration count: `carve`, the held-out
    /// log-likelihood on a 20% validation carve, or `evidence`, the whole-network Laplace
    /// evidence of networks trained on the whole training split (full-batch data sets only;
    /// `docs/results/wider.md` compares them).
    #[arg(long, default_value = "carve")]
    pub select: Criterion,
    /// The one-standard-error rule of the grid's choice: the most regularized grid point
    /// (largest weight decay) whose carve log-likelihood is within this many standard errors
    /// of the paired per-row differences of the best point's, >= 0 (0: the best point)
    /// [default: the method's, 1 for BALI, 0 for map; `docs/results/wider.md` measures 1
    /// against 0].
    #[arg(long, value_parser = |s: &str| v::PARSIMONY.parse(s))]
    pub parsimony: Option<f64>,
    /// Only the default options (no held-out grid over options).
    #[arg(long)]
    pub no_grid: bool,
    /// Base seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// One JSON object per split, then a summary line.
    #[arg(long)]
    pub json: bool,
}

/// Per-split record of `bali uci --json`.
#[derive(Debug, serde::Serialize)]
struct SplitLine<'a> {
    dataset: &'a str,
    method: &'a str,
    split: usize,
    members: usize,
    /// `carve` or `evidence` (what `valid_ll` and the curve's scores are: the held-out
    /// log-likelihood, or the Laplace evidence per training row).
    select: &'static str,
    test_ll: f64,
    rmse: f64,
    train_rmse: f64,
    coverage50: f64,
    coverage90: f64,
    coverage95: f64,
    sigma2: f64,
    iterations: usize,
    valid_ll: f64,
    options: &'a str,
    seconds: f64,
    curve: Vec<CheckpointLine>,
}

/// One held-out checkpoint of a `--json` split line (standardized units).
#[derive(Debug, serde::Serialize)]
pub struct CheckpointLine {
    iterations: usize,
    valid_ll: f64,
    valid_rmse: f64,
    sigma2: f64,
}

impl From<&bali::experiment::Checkpoint> for CheckpointLine {
    fn from(c: &bali::experiment::Checkpoint) -> Self {
        CheckpointLine {
            iterations: c.iterations,
            valid_ll: c.valid_ll,
            valid_rmse: c.valid_rmse,
            sigma2: c.sigma2,
        }
    }
}

/// Summary of all splits.
#[derive(Debug, serde::Serialize)]
pub struct UciSummary {
    /// Data set folder name.
    pub dataset: String,
    /// Method name.
    pub method: String,
    /// Ensemble size.
    pub members: usize,
    /// Splits run.
    pub splits: usize,
    /// Mean test log-likelihood (original units).
    pub test_ll_mean: f64,
    /// Its standard error over splits.
    pub test_ll_se: f64,
    /// Mean test RMSE (original units).
    pub rmse_mean: f64,
    /// Its standard error over splits.
    pub rmse_se: f64,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
}

/// `--patience`: a count >= 1, or `all` (no early stop).
pub fn parse_patience(s: &str) -> Result<usize, String> {
    if s == "all" {
        return Ok(usize::MAX);
    }
    v::PATIENCE.parse(s).map_err(|e| format!("{e}, or `all`"))
}

impl UciArgs {
    /// The option checks that need neither files nor data (see [`crate::fit::FitArgs::check`]):
    /// the method, members and samples.
    pub fn check(&self) -> Result<(Preset, usize, usize), crate::CliError> {
        let preset = self.train.preset()?;
        if let Some(h) = &self.train.options.hidden {
            v::check_hidden(h)?;
        }
        if self.dataset.trim().is_empty() {
            return Err(crate::CliError::InvalidOption {
                name: "dataset",
                value: format!("{:?}", self.dataset),
                reason: "is empty: name a data set folder",
            });
        }
        let members = self.members.unwrap_or(preset.default_members());
        let samples = crate::options::samples_for(self.samples, members, 100)?;
        Ok((preset, members, samples))
    }
}

/// Runs the protocol on every requested split and writes the results.
pub fn run(args: &UciArgs, out: &mut dyn Write) -> Result<UciSummary, crate::CliError> {
    let start = Instant::now();
    let root = args
        .data
        .clone()
        .unwrap_or_else(bali::data::default_uci_root);
    let (preset, members, samples) = args.check()?;
    let ds = UciDataset::load(&root, &args.dataset)?;
    let n_splits = v::check_splits(args.splits.unwrap_or(ds.n_splits), ds.n_splits)?;
    let n_rows = ds.n_rows();
    let batch = args.train.batch(preset, n_rows);
    let max_iterations = args
        .max_iterations
        .unwrap_or(preset.max_iterations(n_rows, batch));
    // The BALI options grid runs on the full-batch (small) data sets; mini-batch data sets use
    // the defaults of ALGORITHM.md to stay within the suite's time budget. The MAP grid
    // (learning rate x weight decay, cheap steps) runs everywhere.
    let grid = preset.grid(
        batch,
        !args.no_grid && (batch.is_none() || preset == Preset::Map),
        &args.train.overrides(),
        max_iterations,
    );
    let options = ProtocolOptions {
        members,
        samples,
        max_iterations,
        patience: args.patience.unwrap_or(preset.patience(batch)),
        threads: args.train.options.threads.unwrap_or(1),
        seed: args.seed,
        criterion: args.select,
        relevance_stage: preset.relevance_stage(&args.train.overrides()),
        parsimony: args.parsimony.unwrap_or(preset.parsimony()),
        ..ProtocolOptions::default()
    };
    let dims = args.train.dims(ds.n_features(), ds.n_hidden);
    let mut results: Vec<TestResult> = Vec::new();
    for k in 0..n_splits {
        let sd = ds.split_data(k)?;
        let what = format!("{} split {k}", ds.name);
        v::check_target(
            sd.y_train.as_ref(),
            &format!("{what} (training rows)"),
            "target",
        )?;
        v::check_features(sd.x_train.as_ref(), &what, &[])?;
        v::check_features(sd.x_test.as_ref(), &format!("{what} (test rows)"), &[])?;
        let xs = Standardizer::fit(sd.x_train.as_ref());
        let ys = Standardizer::fit(sd.y_train.as_ref());
        let x_train = xs.transform(sd.x_train.as_ref());
        let y_train = ys.transform(sd.y_train.as_ref());
        let x_test = xs.transform(sd.x_test.as_ref());
        let y_test = ys.transform(sd.y_test.as_ref());
        let split = Split {
            train: (x_train.as_ref(), y_train.as_ref()),
            test: (x_test.as_ref(), y_test.as_ref()),
            y_scale: ys.y_scale(),
        };
        let options = ProtocolOptions {
            seed: args.seed.wrapping_add(1_000_003 * k as u64),
            ..options.clone()
        };
        let r = run_split(&grid, &dims, &split, &options, None)?;
        if args.json {
            let line = SplitLine {
                dataset: &ds.name,
                method: preset.name(),
                split: k,
                members,
                select: args.select.name(),
                test_ll: r.test_ll,
                rmse: r.rmse,
                train_rmse: r.train_rmse,
                coverage50: r.coverage[0],
                coverage90: r.coverage[1],
                coverage95: r.coverage[2],
                sigma2: r.sigma2,
                iterations: r.iterations,
                valid_ll: r.valid_ll,
                options: &r.options,
                seconds: r.seconds,
                curve: r.curve.iter().map(CheckpointLine::from).collect(),
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        } else {
            writeln!(
                out,
                "{} split {k:2}: test LL {:8.4}  RMSE {:8.4}  cover50/90/95 {:.2}/{:.2}/{:.2}  iters {:5}  sigma2 {:.3e}  {:.1}s  [{}]",
                ds.name,
                r.test_ll,
                r.rmse,
                r.coverage[0],
                r.coverage[1],
                r.coverage[2],
                r.iterations,
                r.sigma2,
                r.seconds,
                r.options
            )?;
        }
        results.push(r);
    }
    let lls: Vec<f64> = results.iter().map(|r| r.test_ll).collect();
    let rmses: Vec<f64> = results.iter().map(|r| r.rmse).collect();
    let (test_ll_mean, test_ll_se) = mean_and_stderr(&lls);
    let (rmse_mean, rmse_se) = mean_and_stderr(&rmses);
    let summary = UciSummary {
        dataset: ds.name.clone(),
        method: preset.name().to_string(),
        members,
        splits: n_splits,
        test_ll_mean,
        test_ll_se,
        rmse_mean,
        rmse_se,
        seconds: start.elapsed().as_secs_f64(),
    };
    if args.json {
        writeln!(out, "{}", serde_json::json!({ "summary": &summary }))?;
    } else {
        writeln!(
            out,
            "{} {} (K={}): test LL {:.3} +- {:.3}, RMSE {:.3} +- {:.3} over {} splits in {:.1}s",
            summary.dataset,
            summary.method,
            members,
            test_ll_mean,
            test_ll_se,
            rmse_mean,
            rmse_se,
            n_splits,
            summary.seconds
        )?;
    }
    Ok(summary)
}
