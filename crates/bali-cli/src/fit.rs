//! `bali fit`: the main job. Trains a BALI ensemble on a regression data set (the embedded
//! red-wine-quality data by default, or a CSV file), with the held-out protocol of
//! [`bali::experiment`], and reports test RMSE, log-likelihood and interval coverage, with a
//! predicted-vs-true plot and a calibration curve.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use clap::Args;
use faer::MatRef;
use indicatif::{ProgressBar, ProgressStyle};

use crate::embedded::wine_quality;
use crate::options::TrainArgs;
use bali::data::{load_csv, split_rows, train_valid_carve, Dataset, Standardizer};
use bali::experiment::{run_split, ProtocolOptions, Split};
use bali::metrics;
use bali::model_file::{self, SavedModel};
use bali::validate as v;
use bali::{Learner, Method, Preset};

/// `bali fit [--csv FILE --target COLUMN] ...`
#[derive(Debug, Clone, Args)]
pub struct FitArgs {
    /// CSV file with a header line (default: the embedded red-wine-quality data).
    #[arg(long, requires = "target")]
    pub csv: Option<PathBuf>,
    /// Target column of the CSV file (name or 0-based index; needs `--csv`).
    #[arg(long, requires = "csv", allow_hyphen_values = true)]
    pub target: Option<String>,
    /// Method and training options (`--hidden` default: 50).
    #[command(flatten)]
    pub train: TrainArgs,
    /// Ensemble members K (default 5 for BALI, 1 for map).
    #[arg(long, value_parser = |s: &str| v::MEMBERS.parse(s))]
    pub members: Option<usize>,
    /// Fraction of the rows held out as the test set, in (0, 1).
    #[arg(long, default_value_t = 0.2, value_parser = |s: &str| v::TEST_FRACTION.parse(s))]
    pub test_fraction: f64,
    /// Largest iteration count considered on the validation carve.
    #[arg(long, default_value_t = 1000, value_parser = |s: &str| v::MAX_ITERATIONS.parse(s))]
    pub max_iterations: usize,
    /// Predictive samples of the mixture, a multiple of the members (each member draws
    /// S / K) [default: 100 rounded up to a multiple of the members].
    #[arg(long, value_parser = |s: &str| v::SAMPLES.parse(s))]
    pub samples: Option<usize>,
    /// Seed of the split, the carve and the networks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Folder for the plots `bali-fit-predictions.png` and `bali-fit-calibration.png`.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Save the fitted ensemble (BALI methods), with its standardization, predictive noise,
    /// options and column names, as a safetensors model file (for `bali predict`).
    #[arg(long)]
    pub save: Option<PathBuf>,
}

impl FitArgs {
    /// The option checks that need neither files nor data: the method with its options, the
    /// hidden widths, members and samples, `--save` with the method. Returns the method, the
    /// members and the samples.
    pub fn check(&self) -> Result<(Preset, usize, usize), crate::CliError> {
        let preset = self.train.preset()?;
        if let Some(h) = &self.train.options.hidden {
            v::check_hidden(h)?;
        }
        if let (Some(path), Preset::Map) = (&self.save, preset) {
            return Err(crate::CliError::InvalidOption {
                name: "save",
                value: path.display().to_string(),
                reason: "model files hold BALI posteriors; --method map has none",
            });
        }
        let members = self.members.unwrap_or(preset.default_members());
        let samples = crate::options::samples_for(self.samples, members, 100)?;
        Ok((preset, members, samples))
    }
}

/// Runs the main job.
pub fn run(args: &FitArgs, out: &mut dyn Write) -> Result<(), crate::CliError> {
    // Every option, path and the data are checked before any training starts.
    let (preset, members, samples) = args.check()?;
    if let Some(path) = &args.save {
        v::check_output_file(path, "save")?;
    }
    v::check_output_dir(&args.out_dir, "out-dir")?;
    let data: Dataset = match (&args.csv, &args.target) {
        (Some(path), Some(target)) => load_csv(path, target)?,
        _ => wine_quality(),
    };
    let source = args
        .csv
        .as_ref()
        .map_or("embedded red-wine-quality data".to_string(), |p| {
            p.display().to_string()
        });
    writeln!(
        out,
        "data: {source}: {} rows, {} features, target `{}`",
        data.n_rows(),
        data.n_features(),
        data.target_name
    )?;
    if !data.skipped_columns.is_empty() {
        writeln!(
            out,
            "left out (no number in any cell): {}",
            data.skipped_columns.join(", ")
        )?;
    }
    v::check_target(data.y.as_ref(), &source, &data.target_name)?;
    let constant = v::check_features(data.x.as_ref(), &source, &data.feature_names)?;
    if !constant.is_empty() {
        writeln!(
            out,
            "constant on every row (standardized to 0, carry nothing): {}",
            constant.join(", ")
        )?;
    }
    let n = data.n_rows();
    let n_test = n - ((1.0 - args.test_fraction) * n as f64).round() as usize;
    if n_test == 0 || n_test == n {
        return Err(crate::CliError::InvalidOption {
            name: "test-fraction",
            value: format!("{} of {n} rows", args.test_fraction),
            reason: "leaves no test row or no training row",
        });
    }
    v::check_carve(
        n - n_test,
        ProtocolOptions::default().carve,
        &format!(
            "the training rows of {source} (--test-fraction {})",
            args.test_fraction
        ),
    )?;
    let (train_idx, test_idx) =
        train_valid_carve(data.n_rows(), 1.0 - args.test_fraction, args.seed ^ 0x7E57);
    let x_train_raw = split_rows(data.x.as_ref(), &train_idx);
    let y_train_raw = split_rows(data.y.as_ref(), &train_idx);
    v::check_target(
        y_train_raw.as_ref(),
        &format!("the training rows of {source}"),
        &data.target_name,
    )?;
    let xs = Standardizer::fit(x_train_raw.as_ref());
    let ys = Standardizer::fit(y_train_raw.as_ref());
    let x_train = xs.transform(x_train_raw.as_ref());
    let y_train = ys.transform(y_train_raw.as_ref());
    let x_test = xs.transform(split_rows(data.x.as_ref(), &test_idx).as_ref());
    let y_test_raw = split_rows(data.y.as_ref(), &test_idx);
    let y_test = ys.transform(y_test_raw.as_ref());
    let split = Split {
        train: (x_train.as_ref(), y_train.as_ref()),
        test: (x_test.as_ref(), y_test.as_ref()),
        y_scale: ys.y_scale(),
    };
    let batch = args.train.batch(preset, train_idx.len());
    let grid = preset.grid(
        batch,
        batch.is_none() || preset == Preset::Map,
        &args.train.overrides(),
        args.max_iterations,
    );
    let dims = args.train.dims(data.n_features(), 50);
    let options = ProtocolOptions {
        members,
        samples,
        max_iterations: args.max_iterations,
        patience: preset.patience(batch),
        seed: args.seed,
        threads: args.train.options.threads.unwrap_or(1),
        relevance_stage: preset.relevance_stage(&args.train.overrides()),
        parsimony: preset.parsimony(),
        ..ProtocolOptions::default()
    };
    writeln!(
        out,
        "training {} on {} rows ({} held out for testing): {} network(s) {}, {} option set(s) chosen on a 80/20 carve of the training rows",
        preset.name(),
        train_idx.len(),
        test_idx.len(),
        members,
        TrainArgs::dims_label(&dims),
        grid.len()
    )?;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.max_iterations as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:38} [{bar:30}] {pos}/{len} iterations")
            .map_err(|e| crate::CliError::InvalidOption {
                name: "progress template",
                value: e.to_string(),
                reason: "internal template error",
            })?
            .progress_chars("=> "),
    );
    let phase = Mutex::new(String::new());
    let report = |name: &str, done: usize, total: usize| {
        if let Ok(mut last) = phase.lock() {
            if *last != name {
                *last = name.to_string();
                bar.set_message(name.to_string());
            }
        }
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let result = run_split(&grid, &dims, &split, &options, Some(&report))?;
    bar.finish_and_clear();
    let refs: Vec<MatRef<'_, f64>> = result.test_samples.iter().map(|s| s.as_ref()).collect();
    writeln!(
        out,
        "chosen: {} iterations, predictive noise sigma^2 = {:.4} (standardized), options [{}]",
        result.iterations, result.sigma2, result.options
    )?;
    writeln!(
        out,
        "held-out test set ({} rows): RMSE {:.4}, log-likelihood {:.4} nats/point, coverage of central 50/90/95% intervals {:.2}/{:.2}/{:.2}",
        test_idx.len(),
        result.rmse,
        result.test_ll,
        result.coverage[0],
        result.coverage[1],
        result.coverage[2]
    )?;
    // Plots in original units: predictive mean and a +-1.645 sd (90% Gaussian) band, where the
    // mixture variance is the spread of the sample means plus sigma^2.
    let mean = metrics::predictive_mean(&refs);
    let (loc, scale) = (ys.mean().first().copied().unwrap_or(0.0), ys.y_scale());
    let n_test = test_idx.len();
    let mut pm = Vec::with_capacity(n_test);
    let mut lo = Vec::with_capacity(n_test);
    let mut hi = Vec::with_capacity(n_test);
    for i in 0..n_test {
        let m = mean[(i, 0)];
        let var = refs.iter().map(|s| (s[(i, 0)] - m).powi(2)).sum::<f64>() / refs.len() as f64
            + result.sigma2;
        let half = 1.645 * var.sqrt();
        pm.push(loc + scale * m);
        lo.push(loc + scale * (m - half));
        hi.push(loc + scale * (m + half));
    }
    let y_true: Vec<f64> = (0..n_test).map(|i| y_test_raw[(i, 0)]).collect();
    std::fs::create_dir_all(&args.out_dir)?;
    let pred_path = args.out_dir.join("bali-fit-predictions.png");
    let cal_path = args.out_dir.join("bali-fit-calibration.png");
    crate::plot::predicted_vs_true(
        &pred_path,
        &y_true,
        &pm,
        &lo,
        &hi,
        &format!(
            "{}: {} on the test rows (90% predictive intervals)",
            data.target_name,
            preset.name()
        ),
    )?;
    let (levels, observed) = metrics::calibration_curve(&refs, result.sigma2, y_test.as_ref());
    crate::plot::calibration_plot(&cal_path, &levels, &observed)?;
    writeln!(
        out,
        "wrote {} and {}",
        pred_path.display(),
        cal_path.display()
    )?;
    if let Some(path) = &args.save {
        let config = match &result.method {
            Method::Bali(c) => Some(c.clone()),
            Method::Map(_) => None,
        };
        let (training, members): (Vec<_>, Vec<_>) = result
            .ensemble
            .members
            .into_iter()
            .filter_map(|learner| match learner {
                Learner::Bali(trainer) => Some((trainer.state(), trainer.into_model())),
                Learner::Map(_) => None,
            })
            .unzip();
        let members = members
            .into_iter()
            .map(|mut model| {
                model.set_standardization(Some(xs.clone()), Some(ys.clone()));
                model.set_noise(result.sigma2).map(|()| model)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let saved = SavedModel {
            members,
            config,
            input_names: Some(data.feature_names.clone()),
            target_name: Some(data.target_name.clone()),
            training: Some(training),
        };
        model_file::save(path, &saved)?;
        writeln!(
            out,
            "saved {} member(s) to {}",
            saved.members.len(),
            path.display()
        )?;
    }
    Ok(())
}
