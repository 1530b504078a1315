//! `bali classify`: the classification and out-of-distribution protocol
//! (`docs/classification.md`) for BALI and the MAP baselines, on the embedded 8 x 8 digits or
//! on MNIST from a data folder (`--data DIR`, the layout of `../shared/data`).

use std::io::Write;
use std::path::PathBuf;

use bali::classify::{
    finish_classification, seeded_split, select_on_carve, CarveSelection, ClassMethod,
    ClassOptions, ClassProblem, ClassResult, LabelledSet, OodSet,
};
use bali::config::{BaliConfig, Fisher, Formulation};
use bali::data::transforms::{flip_left_right, rotate, uniform_noise};
use bali::data::{
    parse_labelled_csv, read_idx_images, read_idx_labels, read_npz_images, read_text, split_rows,
    Standardizer,
};
use bali::map::{LrSchedule, MapConfig};
use bali::metrics::mean_and_stderr;
use bali::validate as v;
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::CliError;

/// Methods of `bali classify`.
const METHODS: [&str; 5] = ["bali", "bali-paper", "map", "ensemble", "laplace"];

/// `bali classify [--data DIR | --csv FILE --target COLUMN] [--method M] [--seeds K] ...`
#[derive(Debug, Clone, Args)]
pub struct ClassifyArgs {
    /// Data folder with `mnist/` (t10k images and labels, idx) and `kmnist/` (test images,
    /// npz), as `../shared/data`; default: the embedded 8 x 8 digits (1797 images).
    #[arg(long, conflicts_with = "csv")]
    pub data: Option<PathBuf>,
    /// A CSV file of your own (header line; numeric feature columns, standardized on the
    /// training rows of each seed; other text columns are left out and named).
    #[arg(long, requires = "target")]
    pub csv: Option<PathBuf>,
    /// The CSV's class-label column (name or 0-based index; integers or strings).
    #[arg(long, requires = "csv", allow_hyphen_values = true)]
    pub target: Option<String>,
    /// Fraction of the CSV's rows held out as the test set, in (0, 1).
    #[arg(long, default_value_t = 0.2, value_parser = |s: &str| v::TEST_FRACTION.parse(s))]
    pub test_fraction: f64,
    /// Methods, comma-separated: BALI (Improved or Paper), the MAP network (Adam), a deep
    /// ensemble of MAP networks, a post-hoc K-FAC Laplace approximation of the MAP network.
    /// Several give one table row each and the pictures side by side.
    #[arg(long, default_value = "bali", value_delimiter = ',',
          value_parser = PossibleValuesParser::new(METHODS))]
    pub method: Vec<String>,
    /// Seeds (splits, carves and initializations 0..K-1), for standard errors.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub seeds: u64,
    /// Members K of the final model (default 5 for `ensemble`, 1 otherwise; for every
    /// method when given).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64).map(|v| v as usize))]
    pub members: Option<usize>,
    /// Hidden widths, comma-separated (default 100,100 on the digits, 400,400 on MNIST).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true, value_parser = |s: &str| v::HIDDEN_WIDTH.parse(s))]
    pub hidden: Option<Vec<usize>>,
    /// Largest iteration count on the validation carve (default: BALI 100 on MNIST, 300 on
    /// the digits; MAP 30 epochs on MNIST, 100 on the digits).
    #[arg(long, value_parser = |s: &str| v::MAX_ITERATIONS.parse(s))]
    pub max_iterations: Option<usize>,
    /// Curvature of BALI's hidden layers: exact or sampled-label Fisher.
    #[arg(long, default_value = "exact", value_parser = PossibleValuesParser::new(["exact", "sampled"]))]
    pub fisher: String,
    /// BALI's weight decay `wd` (proximal-prior shrinkage, every layer): the values searched
    /// on the carve, comma-separated (default: 1,3,10 on the digits, 100 on MNIST,
    /// 1,3,10,30,100 on a CSV file).
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| v::WD.parse(s))]
    pub wd: Option<Vec<f64>>,
    /// Mini-batch size (default: full batch for BALI, 128 for MAP).
    #[arg(long, value_parser = |s: &str| v::BATCH_SIZE.parse(s))]
    pub batch_size: Option<usize>,
    /// Predictive samples of BALI's mixture, a multiple of the members [default: 20 rounded
    /// up to a multiple of the members].
    #[arg(long, value_parser = |s: &str| v::SAMPLES.parse(s))]
    pub samples: Option<usize>,
    /// Output temperature of every method: `validated` divides each sampled logit by the
    /// `T` that minimizes the validation-carve NLL (chosen with the iterations; temperature
    /// scaling), `none` keeps `T = 1`.
    #[arg(long, default_value = "validated", value_parser = PossibleValuesParser::new(["validated", "none"]))]
    pub temperature: String,
    /// One JSON object per seed, then a summary line.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Folder for the pictures (reliability diagram, entropy histograms, accuracy and ECE
    /// against rotation); none are drawn without it.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// Images `x` (n x rows*cols) with labels, split by a seeded permutation, with the OOD sets
/// (KMNIST if given, uniform noise, the test images flipped) and the rotated test sets.
fn build(
    x: &faer::Mat<f64>,
    labels: &[usize],
    n_train: usize,
    side: usize,
    kmnist: Option<&faer::Mat<f64>>,
    seed: u64,
) -> ClassProblem {
    let all = LabelledSet {
        x: x.clone(),
        labels: labels.to_vec(),
    };
    let (train_idx, test_idx) = seeded_split(labels.len(), n_train, seed);
    let (train, test) = (all.rows(&train_idx), all.rows(&test_idx));
    let pixels = side * side;
    let mut ood = Vec::new();
    if let Some(k) = kmnist {
        ood.push(OodSet {
            name: "kmnist".into(),
            x: k.clone(),
        });
    }
    ood.push(OodSet {
        name: "noise".into(),
        x: uniform_noise(test.labels.len(), pixels, 1_000 + seed),
    });
    ood.push(OodSet {
        name: "flipped".into(),
        x: flip_left_right(test.x.as_ref(), side, side),
    });
    let shift = (0..=12)
        .map(|i| {
            let angle = 15.0 * i as f64;
            (
                format!("rotated {angle:.0}"),
                LabelledSet {
                    x: rotate(test.x.as_ref(), side, side, angle),
                    labels: test.labels.clone(),
                },
            )
        })
        .collect();
    ClassProblem {
        train,
        test,
        ood,
        shift,
    }
}

/// Tabular rows split by a seeded permutation, the features standardized with the training
/// rows' means and standard deviations; no OOD or shifted sets.
fn build_tabular(x: &faer::Mat<f64>, labels: &[usize], n_train: usize, seed: u64) -> ClassProblem {
    let (train_idx, test_idx) = seeded_split(labels.len(), n_train, seed);
    let scaler = Standardizer::fit(split_rows(x.as_ref(), &train_idx).as_ref());
    let rows = |idx: &[usize]| LabelledSet {
        x: scaler.transform(split_rows(x.as_ref(), idx).as_ref()),
        labels: idx.iter().map(|&i| labels[i]).collect(),
    };
    ClassProblem {
        train: rows(&train_idx),
        test: rows(&test_idx),
        ood: Vec::new(),
        shift: Vec::new(),
    }
}

/// The methods searched on the carve for `method` (`batch` from `--batch-size`).
fn grid(
    args: &ClassifyArgs,
    method: &str,
    mnist: bool,
    n_fit: usize,
    max_iterations: usize,
) -> Vec<ClassMethod> {
    let fisher = if args.fisher == "sampled" {
        Fisher::Sampled
    } else {
        Fisher::Exact
    };
    match method {
        "bali" | "bali-paper" => {
            let formulation = if method == "bali" {
                Formulation::Improved
            } else {
                Formulation::Paper
            };
            let wds = args.wd.clone().unwrap_or(if mnist {
                vec![100.0]
            } else if args.csv.is_some() {
                vec![1.0, 3.0, 10.0, 30.0, 100.0]
            } else {
                vec![1.0, 3.0, 10.0]
            });
            wds.into_iter()
                .map(|wd| {
                    ClassMethod::Bali(BaliConfig {
                        formulation,
                        fisher,
                        wd,
                        batch_size: args.batch_size.filter(|&b| b < n_fit),
                        ..BaliConfig::classification()
                    })
                })
                .collect()
        }
        _ => {
            let batch = args.batch_size.unwrap_or(128);
            let mut out = Vec::new();
            for lr in [1e-3, 3e-3, 1e-2, 3e-2] {
                for weight_decay in [1e-5, 1e-4, 1e-3, 1e-2] {
                    let config = MapConfig {
                        lr,
                        weight_decay,
                        batch_size: Some(batch).filter(|&b| b < n_fit),
                        likelihood: bali::Likelihood::Categorical,
                        schedule: LrSchedule::Cosine {
                            horizon: max_iterations as u64,
                        },
                        ..MapConfig::default()
                    };
                    out.push(if method == "laplace" {
                        ClassMethod::Laplace(config)
                    } else {
                        ClassMethod::Map(config)
                    });
                }
            }
            out
        }
    }
}

/// The MAP options of a grid of MAP or Laplace points (the key under which their carve
/// selection is shared); `None` for a BALI grid.
fn map_grid(grid: &[ClassMethod]) -> Option<Vec<MapConfig>> {
    grid.iter()
        .map(|m| match m {
            ClassMethod::Map(c) | ClassMethod::Laplace(c) => Some(c.clone()),
            ClassMethod::Bali(_) => None,
        })
        .collect()
}

/// One JSON line of `--json`.
fn result_json(data: &str, method: &str, seed: u64, r: &ClassResult) -> serde_json::Value {
    serde_json::json!({
        "data": data,
        "method": method,
        "seed": seed,
        "options": r.method.label(),
        "iterations": r.iterations,
        "prior_precision": r.prior_precision,
        "temperature": r.temperature,
        "at_cap": r.at_cap,
        "train_seconds": r.train_seconds,
        "accuracy": r.test.accuracy,
        "nll": r.test.nll,
        "brier": r.test.brier,
        "ece": r.test.ece,
        "ood": r.ood.iter().map(|o| serde_json::json!({
            "set": o.name,
            "auroc_entropy": o.auroc_entropy,
            "auroc_mi": o.auroc_mi,
            "fpr95_entropy": o.fpr95_entropy,
            "fpr95_mi": o.fpr95_mi,
        })).collect::<Vec<_>>(),
        "shift": r.shift.iter().map(|(name, m)| serde_json::json!({
            "set": name, "accuracy": m.accuracy, "nll": m.nll, "ece": m.ece,
        })).collect::<Vec<_>>(),
    })
}

/// Every method's results over the seeds.
struct MethodRuns {
    method: String,
    runs: Vec<ClassResult>,
}

impl MethodRuns {
    /// Mean and standard error over the seeds (NaN for one seed, which has none: [`pm`]
    /// then prints the mean alone).
    fn stat(&self, f: impl Fn(&ClassResult) -> f64) -> (f64, f64) {
        let v: Vec<f64> = self.runs.iter().map(f).collect();
        let (m, se) = mean_and_stderr(&v);
        (m, if v.len() < 2 { f64::NAN } else { se })
    }
}

/// `mean ± se` with `digits` decimals (the mean alone when `se` is NaN: one seed has none).
fn pm((m, se): (f64, f64), digits: usize) -> String {
    if se.is_nan() {
        format!("{m:.digits$}")
    } else {
        format!("{m:.digits$} ± {se:.digits$}")
    }
}

impl ClassifyArgs {
    /// The option checks that need neither files nor data: samples against every method's
    /// members, the hidden widths, and the BALI-only options given without a BALI method.
    pub fn check(&self) -> Result<(), CliError> {
        for method in &self.method {
            let members = self
                .members
                .unwrap_or(if method == "ensemble" { 5 } else { 1 });
            crate::options::samples_for(self.samples, members, 20)?;
        }
        if let Some(h) = &self.hidden {
            v::check_hidden(h)?;
        }
        let any_bali = self.method.iter().any(|m| m.starts_with("bali"));
        let samples_read = any_bali || self.method.iter().any(|m| m == "laplace");
        if let (Some(s), false) = (self.samples, samples_read) {
            return Err(CliError::InvalidOption {
                name: "samples",
                value: s.to_string(),
                reason: "is read by the sampling methods (bali, bali-paper, laplace); map and ensemble members give one deterministic output each",
            });
        }
        if !any_bali && self.wd.is_some() {
            return Err(CliError::InvalidOption {
                name: "wd",
                value: format!("{:?}", self.wd.clone().unwrap_or_default()),
                reason: "is BALI's prior shrinkage: give it with --method bali or bali-paper (the MAP grid searches its own weight decay)",
            });
        }
        if !any_bali && self.fisher != "exact" {
            return Err(CliError::InvalidOption {
                name: "fisher",
                value: self.fisher.clone(),
                reason: "is BALI's curvature: give it with --method bali or bali-paper",
            });
        }
        Ok(())
    }
}

/// Runs the protocol for every method and seed and prints the table (or JSON lines).
pub fn run(args: &ClassifyArgs, out: &mut dyn Write) -> Result<(), CliError> {
    // Options and paths before any work; the data once; the split per seed.
    args.check()?;
    if let Some(dir) = &args.out_dir {
        v::check_output_dir(dir, "out-dir")?;
    }
    let csv_name;
    let mut n_classes = 10;
    let (name, x, labels, side, n_train, kmnist) = match (&args.data, &args.csv) {
        (_, Some(path)) => {
            let target = args.target.as_deref().unwrap_or_default();
            let table = parse_labelled_csv(&read_text(path)?, path, target)?;
            v::check_features(
                table.x.as_ref(),
                &path.display().to_string(),
                &table.feature_names,
            )?;
            let n = table.labels.len();
            let n_train = ((1.0 - args.test_fraction) * n as f64).round() as usize;
            // Enough rows for a carve of the training rows and a test set.
            if n_train < 10 || n_train >= n {
                return Err(CliError::InvalidOption {
                    name: "test-fraction",
                    value: format!("{} of {n} rows", args.test_fraction),
                    reason: "leaves fewer than 10 training rows or no test row",
                });
            }
            if !args.json {
                writeln!(
                    out,
                    "data: {}: {n} rows, {} features, {} classes of `{}` ({}){}",
                    path.display(),
                    table.feature_names.len(),
                    table.classes.len(),
                    table.target_name,
                    table.classes.join(", "),
                    if table.skipped_columns.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; left out (no numbers): {}",
                            table.skipped_columns.join(", ")
                        )
                    }
                )?;
            }
            n_classes = table.classes.len();
            csv_name = path.display().to_string();
            (csv_name.as_str(), table.x, table.labels, 0, n_train, None)
        }
        (None, None) => {
            let (x, labels) = crate::embedded::digits();
            ("digits 8x8 (embedded)", x, labels, 8, 1437, None)
        }
        (Some(root), None) => {
            let images_path = root.join("mnist/t10k-images-idx3-ubyte.gz");
            let labels_path = root.join("mnist/t10k-labels-idx1-ubyte.gz");
            let images = read_idx_images(&images_path)?;
            let labels = read_idx_labels(&labels_path)?;
            bali::data::check_labels(&labels, 10)?;
            if labels.len() != images.count {
                return Err(bali::data::DataError::Invalid {
                    path: labels_path,
                    line: 0,
                    reason: format!(
                        "{} labels for the {} images of {}",
                        labels.len(),
                        images.count,
                        images_path.display()
                    ),
                }
                .into());
            }
            let distinct = (0..10u8).filter(|c| labels.contains(c)).count();
            if images.count < 100 || distinct < 2 {
                return Err(bali::data::DataError::TooFewRows {
                    what: images_path.display().to_string(),
                    rows: images.count,
                    needed: format!("the 80/20 split and its carve need at least 100 images of at least 2 classes ({distinct} found)"),
                }
                .into());
            }
            let kmnist = read_npz_images(root.join("kmnist/kmnist-test-imgs.npz"))?;
            if kmnist.count == 0 {
                return Err(bali::data::DataError::TooFewRows {
                    what: root
                        .join("kmnist/kmnist-test-imgs.npz")
                        .display()
                        .to_string(),
                    rows: 0,
                    needed: "the out-of-distribution set needs at least one image".into(),
                }
                .into());
            }
            let square = images.rows == images.cols;
            if !square || (kmnist.rows, kmnist.cols) != (images.rows, images.cols) {
                return Err(bali::BaliError::Shape {
                    what: "MNIST and KMNIST images (square, of one size)",
                    expected: (images.rows, images.rows),
                    got: (kmnist.rows, kmnist.cols),
                }
                .into());
            }
            let n_train = images.count * 4 / 5;
            csv_name = format!(
                "mnist t10k ({n_train} train / {} test)",
                images.count - n_train
            );
            (
                csv_name.as_str(),
                images.to_unit_matrix(),
                labels.iter().map(|&l| l as usize).collect(),
                images.rows,
                n_train,
                Some(kmnist.to_unit_matrix()),
            )
        }
    };
    let mnist = args.data.is_some();
    let tabular = args.csv.is_some();
    let hidden = args.hidden.clone().unwrap_or(if mnist {
        vec![400, 400]
    } else if tabular {
        vec![50]
    } else {
        vec![100, 100]
    });
    let mut dims = vec![x.ncols()];
    dims.extend(&hidden);
    dims.push(n_classes);
    let dims_label = v::dims_label(&dims);
    let n_fit = (0.8 * n_train as f64).round() as usize;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(1)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:52} [{bar:30}] {pos}/{len}")
            .map_err(|e| CliError::InvalidOption {
                name: "progress template",
                value: e.to_string(),
                reason: "internal template error",
            })?
            .progress_chars("=> "),
    );
    let mut all = Vec::new();
    let mut carve_cache: Vec<(Vec<MapConfig>, u64, CarveSelection)> = Vec::new();
    for method in &args.method {
        let members = args
            .members
            .unwrap_or(if method == "ensemble" { 5 } else { 1 });
        let samples = crate::options::samples_for(args.samples, members, 20)?;
        let is_map = ["map", "ensemble", "laplace"].contains(&method.as_str());
        let max_iterations = args.max_iterations.unwrap_or(if is_map {
            let batch = args.batch_size.unwrap_or(128).min(n_fit);
            let epochs = if mnist { 30 } else { 100 };
            epochs * n_fit.div_ceil(batch)
        } else if mnist {
            100
        } else {
            300
        });
        let grid = grid(args, method, mnist, n_fit, max_iterations);
        if !args.json {
            bar.suspend(|| {
                writeln!(
                    out,
                    "{method} on {name}: {} seed(s), {members} network(s) {dims_label}, {} option set(s) and up to {max_iterations} iterations chosen on a 80/20 carve of the training rows",
                    args.seeds,
                    grid.len()
                )
            })?;
        }
        let mut runs = Vec::new();
        for seed in 0..args.seeds {
            let problem = if tabular {
                build_tabular(&x, &labels, n_train, seed)
            } else {
                build(&x, &labels, n_train, side, kmnist.as_ref(), seed)
            };
            let options = ClassOptions {
                members,
                samples,
                max_iterations,
                seed,
                temperature: args.temperature == "validated",
                ..ClassOptions::default()
            };
            let mut report = |stage: &str, done: usize, total: usize| {
                bar.set_message(format!("{method}, seed {seed}: {stage}"));
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            };
            // MAP, the MAP ensemble and the Laplace baseline search the same grid on the same
            // carve with one network per point: one selection serves all three.
            let key = map_grid(&grid);
            let cached = key.as_ref().and_then(|key| {
                carve_cache
                    .iter()
                    .find(|(g, s, _)| g == key && *s == seed)
                    .map(|(_, _, sel)| sel.clone())
            });
            let selection = match cached {
                Some(sel) => sel,
                None => {
                    let sel = select_on_carve(&grid, &dims, &problem.train, &options, &mut report)?;
                    if let Some(key) = key {
                        carve_cache.push((key, seed, sel.clone()));
                    }
                    sel
                }
            };
            let r = finish_classification(&grid, selection, &dims, &problem, &options, report)?;
            if args.json {
                bar.suspend(|| writeln!(out, "{}", result_json(name, method, seed, &r)))?;
            }
            runs.push(r);
        }
        all.push(MethodRuns {
            method: method.clone(),
            runs,
        });
    }
    bar.finish_and_clear();
    if args.json {
        for m in &all {
            let summary = serde_json::json!({
                "summary": true,
                "data": name,
                "method": m.method,
                "seeds": args.seeds,
                "accuracy": m.stat(|r| r.test.accuracy).0,
                "nll": m.stat(|r| r.test.nll).0,
                "ece": m.stat(|r| r.test.ece).0,
                "train_seconds": m.stat(|r| r.train_seconds).0,
            });
            writeln!(out, "{summary}")?;
        }
    } else {
        write_table(out, &all)?;
    }
    if let Some(dir) = &args.out_dir {
        let written = pictures(dir, name, n_classes, &all)?;
        if !args.json {
            writeln!(out, "wrote {}", written.join(", "))?;
        }
    }
    Ok(())
}

/// The results table (markdown), then per method the chosen options and iterations.
fn write_table(out: &mut dyn Write, all: &[MethodRuns]) -> Result<(), CliError> {
    let ood_names: Vec<String> = all[0].runs[0].ood.iter().map(|o| o.name.clone()).collect();
    let mut header = vec![
        "method".to_string(),
        "accuracy".into(),
        "NLL".into(),
        "Brier".into(),
        "ECE".into(),
    ];
    for o in &ood_names {
        header.push(format!("{o} AUROC H / MI"));
        header.push(format!("{o} FPR95 H / MI"));
    }
    header.push("train s".into());
    writeln!(out, "| {} |", header.join(" | "))?;
    writeln!(out, "|{}", "---|".repeat(header.len()))?;
    for m in all {
        let mut row = vec![
            m.method.clone(),
            pm(m.stat(|r| r.test.accuracy), 4),
            pm(m.stat(|r| r.test.nll), 4),
            pm(m.stat(|r| r.test.brier), 4),
            pm(m.stat(|r| r.test.ece), 4),
        ];
        for i in 0..ood_names.len() {
            row.push(format!(
                "{:.3} / {:.3}",
                m.stat(|r| r.ood[i].auroc_entropy).0,
                m.stat(|r| r.ood[i].auroc_mi).0
            ));
            row.push(format!(
                "{:.3} / {:.3}",
                m.stat(|r| r.ood[i].fpr95_entropy).0,
                m.stat(|r| r.ood[i].fpr95_mi).0
            ));
        }
        row.push(format!("{:.1}", m.stat(|r| r.train_seconds).0));
        writeln!(out, "| {} |", row.join(" | "))?;
    }
    for m in all {
        let iterations: Vec<usize> = m.runs.iter().map(|r| r.iterations).collect();
        let capped = m.runs.iter().filter(|r| r.at_cap).count();
        let temperatures: Vec<String> = m
            .runs
            .iter()
            .map(|r| format!("{:.3}", r.temperature))
            .collect();
        writeln!(
            out,
            "{}: {}; iterations {iterations:?}{}; temperature [{}]{}",
            m.method,
            m.runs[0].method.label(),
            if capped > 0 {
                format!(" (the largest checkpoint on {capped} seed(s))")
            } else {
                String::new()
            },
            temperatures.join(", "),
            match m.runs[0].prior_precision {
                Some(_) => format!(
                    "; Laplace prior precision {:?}",
                    m.runs
                        .iter()
                        .map(|r| r.prior_precision.unwrap_or(f64::NAN))
                        .collect::<Vec<_>>()
                ),
                None => String::new(),
            }
        )?;
        let shifts: Vec<String> = (0..m.runs[0].shift.len())
            .map(|i| {
                format!(
                    "{}: {:.3}",
                    m.runs[0].shift[i].0.trim_start_matches("rotated "),
                    m.stat(|r| r.shift[i].1.accuracy).0
                )
            })
            .collect();
        if !shifts.is_empty() {
            writeln!(
                out,
                "  accuracy by rotation (degrees) {}",
                shifts.join(", ")
            )?;
        }
    }
    Ok(())
}

/// Histogram of `values` on `[0, hi]` in `bins` bins as `(bin centre, fraction)` points.
fn histogram(values: &[f64], hi: f64, bins: usize) -> Vec<(f64, f64)> {
    let mut counts = vec![0usize; bins];
    for &v in values.iter().filter(|v| v.is_finite()) {
        let b = ((v / hi) * bins as f64)
            .floor()
            .clamp(0.0, (bins - 1) as f64) as usize;
        counts[b] += 1;
    }
    let n = values.len().max(1) as f64;
    counts
        .iter()
        .enumerate()
        .map(|(b, &c)| ((b as f64 + 0.5) * hi / bins as f64, c as f64 / n))
        .collect()
}

/// The pictures of the first seed's runs (reliability, rotation, entropy histograms);
/// returns the file names.
fn pictures(
    dir: &std::path::Path,
    data: &str,
    n_classes: usize,
    all: &[MethodRuns],
) -> Result<Vec<String>, CliError> {
    let mut written = Vec::new();
    let mut save = |file: &str| {
        written.push(file.to_string());
        dir.join(file)
    };
    // Methods first, so each keeps its colour across the pictures; the diagonal last.
    let mut reliability = Vec::new();
    for m in all {
        let pts = m.runs[0]
            .reliability
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| (b.confidence, b.accuracy))
            .collect();
        reliability.push((m.method.clone(), pts));
    }
    reliability.push((
        "perfect calibration".to_string(),
        vec![(0.0, 0.0), (1.0, 1.0)],
    ));
    crate::plot::curves(
        &save("bali-classify-reliability.png"),
        &format!("{data}: reliability (15 bins, seed 0)"),
        "confidence",
        "accuracy",
        &reliability,
    )?;
    let rotations = if all[0].runs[0].shift.is_empty() {
        Vec::new()
    } else {
        vec![
            ("accuracy", "bali-classify-rotation-accuracy.png", 0),
            ("ECE", "bali-classify-rotation-ece.png", 1),
        ]
    };
    for (what, file, pick) in rotations {
        let series: Vec<(String, Vec<(f64, f64)>)> = all
            .iter()
            .map(|m| {
                let pts = (0..m.runs[0].shift.len())
                    .map(|i| {
                        let angle = 15.0 * i as f64;
                        let value = m.stat(|r| {
                            let s = &r.shift[i].1;
                            if pick == 0 {
                                s.accuracy
                            } else {
                                s.ece
                            }
                        });
                        (angle, value.0)
                    })
                    .collect();
                (m.method.clone(), pts)
            })
            .collect();
        crate::plot::curves(
            &save(file),
            &format!("{data}: {what} of rotated test images"),
            "rotation (degrees)",
            what,
            &series,
        )?;
    }
    let hi = (n_classes as f64).ln();
    for m in all {
        let r = &m.runs[0];
        let mut series = vec![(
            "test (in distribution)".to_string(),
            histogram(&r.test_entropy, hi, 30),
        )];
        for o in &r.ood {
            series.push((o.name.clone(), histogram(&o.entropy, hi, 30)));
        }
        crate::plot::curves(
            &save(&format!("bali-classify-entropy-{}.png", m.method)),
            &format!("{data}, {}: predictive entropy (seed 0)", m.method),
            "predictive entropy (nats)",
            "fraction of images",
            &series,
        )?;
    }
    Ok(written)
}
