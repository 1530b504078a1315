//! `bali uci`: the UCI regression protocol of ALGORITHM.md section 9 on the standard splits.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};

use bali::config::{BaliConfig, Formulation, Preconditioner};
use bali::data::{Standardizer, UciDataset};
use bali::experiment::{run_split, Method, ProtocolOptions, Split, TestResult};
use bali::map::MapConfig;
use bali::metrics::mean_and_stderr;

/// Training method of `bali uci`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UciMethod {
    /// BALI, `Improved` formulation (default).
    Bali,
    /// BALI, `Paper` formulation.
    BaliPaper,
    /// The MAP network trained by Adam (`--members 5`: deep ensemble).
    Map,
}

impl UciMethod {
    /// Name as printed in results.
    pub fn name(self) -> &'static str {
        match self {
            UciMethod::Bali => "bali",
            UciMethod::BaliPaper => "bali-paper",
            UciMethod::Map => "map",
        }
    }
}

/// `bali uci --data DIR --dataset NAME ...`
#[derive(Debug, Clone, Args)]
pub struct UciArgs {
    /// Folder holding the UCI data sets (default: ../shared/data/uci, or $BALI_DATA).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Data set: boston, concrete, energy, kin8nm, naval, power, protein, wine, yacht.
    #[arg(long)]
    pub dataset: String,
    /// Training method.
    #[arg(long, value_enum, default_value_t = UciMethod::Bali)]
    pub method: UciMethod,
    /// Number of splits to run (default: all of the data set's splits).
    #[arg(long)]
    pub splits: Option<usize>,
    /// Ensemble members K (default 5 for BALI, 1 for MAP).
    #[arg(long)]
    pub members: Option<usize>,
    /// Predictive samples of the whole mixture.
    #[arg(long, default_value_t = 100)]
    pub samples: usize,
    /// Largest iteration count considered on the validation carve (default: BALI full batch
    /// `clamp(1.2e6 / rows, 1000, 4000)`, a fixed budget of row-iterations, since a full-batch
    /// step costs about linearly in the rows; BALI Paper 2000, mini-batch BALI 1500; MAP 5000
    /// full batch and 10000 mini-batch).
    #[arg(long)]
    pub max_iterations: Option<usize>,
    /// Training sets larger than this use mini-batches.
    #[arg(long, default_value_t = 3000)]
    pub full_batch_max: usize,
    /// Mini-batch size above `--full-batch-max` rows.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Mini-batch size of the MAP baseline (Adam) above `--full-batch-max` rows.
    #[arg(long, default_value_t = 128)]
    pub map_batch_size: usize,
    /// Only the default options (no held-out grid over options).
    #[arg(long)]
    pub no_grid: bool,
    /// Threads (ensemble members train side by side when > 1).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Base seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// One JSON object per split, then a summary line.
    #[arg(long)]
    pub json: bool,
}

/// The options grid searched on the validation carve for a method.
pub fn method_grid(method: UciMethod, batch: Option<usize>, grid: bool) -> Vec<Method> {
    match method {
        UciMethod::Bali => {
            let base = BaliConfig {
                batch_size: batch,
                ..BaliConfig::default()
            };
            if !grid {
                return vec![Method::Bali(base)];
            }
            // Hidden preconditioner (Kfac or Scalar) x alpha 0.5 (the default) or 1 (a full
            // Gauss-Newton step) x relative damping x weight decay: 16 points, one member
            // each on the carve.
            let mut out = Vec::new();
            for preconditioner in [Preconditioner::Kfac, Preconditioner::Scalar] {
                for alpha in [0.5, 1.0] {
                    for (gamma, wd) in [(0.1, 0.0), (1.0, 0.0), (0.1, 1.0), (1.0, 1.0)] {
                        out.push(Method::Bali(BaliConfig {
                            alpha,
                            gamma,
                            wd,
                            preconditioner,
                            ..base.clone()
                        }));
                    }
                }
            }
            out
        }
        UciMethod::BaliPaper => {
            let base = BaliConfig {
                formulation: Formulation::Paper,
                batch_size: batch,
                alpha: 0.1,
                ..BaliConfig::default()
            };
            if !grid {
                return vec![Method::Bali(base)];
            }
            [0.1, 0.3, 1.0]
                .into_iter()
                .map(|alpha| {
                    Method::Bali(BaliConfig {
                        alpha,
                        ..base.clone()
                    })
                })
                .collect()
        }
        UciMethod::Map => {
            let base = MapConfig {
                batch_size: batch,
                lr: if batch.is_some() { 3e-3 } else { 1e-2 },
                ..MapConfig::default()
            };
            if !grid {
                return vec![Method::Map(base)];
            }
            [1e-4, 1e-3, 1e-2]
                .into_iter()
                .map(|weight_decay| {
                    Method::Map(MapConfig {
                        weight_decay,
                        ..base.clone()
                    })
                })
                .collect()
        }
    }
}

/// Per-split record of `bali uci --json`.
#[derive(Debug, serde::Serialize)]
struct SplitLine<'a> {
    dataset: &'a str,
    method: &'a str,
    split: usize,
    members: usize,
    test_ll: f64,
    rmse: f64,
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

/// Iteration cap of full-batch BALI on a data set of `rows` rows: a budget of 1.2e6
/// row-iterations (a full-batch step costs about linearly in the rows), at least 1000 and at
/// most 4000. Small, smooth data sets (yacht: 308 rows, 3896 iterations) keep improving well
/// past 1000 iterations while each one is cheap.
pub fn full_batch_iterations(rows: usize) -> usize {
    (1_200_000 / rows.max(1)).clamp(1000, 4000)
}

/// Runs the protocol on every requested split and writes the results.
pub fn run(args: &UciArgs, out: &mut dyn Write) -> Result<UciSummary, crate::CliError> {
    let start = Instant::now();
    let root = args
        .data
        .clone()
        .unwrap_or_else(bali::data::default_uci_root);
    let ds = UciDataset::load(&root, &args.dataset)?;
    let members = args
        .members
        .unwrap_or(if args.method == UciMethod::Map { 1 } else { 5 });
    let n_splits = args.splits.unwrap_or(ds.n_splits).min(ds.n_splits);
    let n_train_max = ds.n_rows();
    let batch = (n_train_max > args.full_batch_max).then_some(if args.method == UciMethod::Map {
        args.map_batch_size
    } else {
        args.batch_size
    });
    // The options grid runs on the full-batch (small) data sets; mini-batch data sets use the
    // defaults of ALGORITHM.md to stay within the suite's time budget.
    let grid = method_grid(args.method, batch, !args.no_grid && batch.is_none());
    let max_iterations = args.max_iterations.unwrap_or(match (args.method, batch) {
        (UciMethod::Map, None) => 5000,
        (UciMethod::Map, Some(_)) => 10000,
        (UciMethod::BaliPaper, None) => 2000,
        (_, None) => full_batch_iterations(n_train_max),
        (_, Some(_)) => 1500,
    });
    let options = ProtocolOptions {
        members,
        samples: args.samples,
        max_iterations,
        threads: args.threads,
        seed: args.seed,
        ..ProtocolOptions::default()
    };
    let dims = vec![ds.n_features(), ds.n_hidden, 1];
    let mut results: Vec<TestResult> = Vec::new();
    for k in 0..n_splits {
        let sd = ds.split_data(k)?;
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
                method: args.method.name(),
                split: k,
                members,
                test_ll: r.test_ll,
                rmse: r.rmse,
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
        method: args.method.name().to_string(),
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

#[cfg(test)]
mod tests {
    use super::{full_batch_iterations, method_grid, UciMethod};
    use bali::config::Preconditioner;
    use bali::experiment::Method;

    #[test]
    fn full_batch_grid_searches_both_preconditioners() {
        let grid = method_grid(UciMethod::Bali, None, true);
        assert_eq!(grid.len(), 16);
        let count = |pre: Preconditioner| {
            grid.iter()
                .filter(|m| matches!(m, Method::Bali(c) if c.preconditioner == pre))
                .count()
        };
        assert_eq!(count(Preconditioner::Kfac), 8);
        assert_eq!(count(Preconditioner::Scalar), 8);
        // Mini-batch data sets and `--no-grid` run the defaults only.
        let single = method_grid(UciMethod::Bali, Some(1000), false);
        assert_eq!(single.len(), 1);
        assert!(matches!(&single[0], Method::Bali(c)
            if c.preconditioner == Preconditioner::Kfac && c.batch_size == Some(1000)));
    }

    #[test]
    fn full_batch_iteration_budget() {
        assert_eq!(full_batch_iterations(308), 3896); // yacht
        assert_eq!(full_batch_iterations(506), 2371); // boston
        assert_eq!(full_batch_iterations(1599), 1000); // wine: the floor
        assert_eq!(full_batch_iterations(10), 4000); // the ceiling
        assert_eq!(full_batch_iterations(0), 4000);
    }
}
