//! `bali curves`: test log-likelihood against training iterations for BALI Improved, BALI
//! Paper and the MAP network (one network each, default options) on one UCI split, as a PNG.
//!
//! For the shape of the curves only: at every checkpoint the predictive `sigma^2` is fitted on
//! the test rows themselves (a one-parameter oracle), so the figures are not comparable with
//! the protocol's test log-likelihoods, which choose everything on a validation carve.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use bali::data::{Standardizer, UciDataset};
use bali::experiment::{select_iterations, ProtocolOptions};
use bali::{BaliError, Overrides, Preset};

use crate::options::TrainOptions;

/// `bali curves --dataset NAME --out FILE.png ...`
#[derive(Debug, Clone, Args)]
pub struct CurvesArgs {
    /// Folder holding the UCI data sets (default: ../shared/data/uci, or $BALI_DATA).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Data set (boston, concrete, energy, kin8nm, naval, power, protein, wine, yacht, or any
    /// other folder under `--data` in their layout).
    #[arg(long)]
    pub dataset: String,
    /// Split index.
    #[arg(long, default_value_t = 0)]
    pub split: usize,
    /// Iterations of BALI (the MAP network runs 5x as many).
    #[arg(long, default_value_t = 1000, value_parser = |s: &str| bali::validate::MAX_ITERATIONS.parse(s))]
    pub max_iterations: usize,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
    /// Also print the curves as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Training options: the BALI ones apply to both BALI curves; `--hidden`,
    /// `--activation` and `--batch-size` to all three (the MAP curve keeps Adam's defaults
    /// otherwise). `--formulation` is refused: both formulations are drawn.
    #[command(flatten)]
    pub options: TrainOptions,
}

impl CurvesArgs {
    /// The option checks that need neither files nor data: no `--formulation` (both are
    /// drawn), the hidden widths.
    pub fn check(&self) -> Result<(), crate::CliError> {
        if self.options.formulation.is_some() {
            return Err(BaliError::InvalidOption {
                name: "formulation",
                value: "given".into(),
                reason: "bali curves draws both formulations (BALI Improved and Paper)",
            }
            .into());
        }
        if let Some(h) = &self.options.hidden {
            bali::validate::check_hidden(h)?;
        }
        let png = self
            .out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if !png {
            return Err(crate::CliError::InvalidOption {
                name: "out",
                value: self.out.display().to_string(),
                reason: "must name a .png file (the plot is a PNG image)",
            });
        }
        Ok(())
    }
}

/// Trains the three methods and plots their curves.
pub fn run(args: &CurvesArgs, out: &mut dyn Write) -> Result<(), crate::CliError> {
    args.check()?;
    let fixed = args.options.overrides();
    // The MAP curve: the options that mean the same for Adam.
    let map_fixed = Overrides {
        activation: fixed.activation,
        batch_size: fixed.batch_size,
        threads: fixed.threads,
        ..Overrides::default()
    };
    bali::validate::check_output_file(&args.out, "out")?;
    let root = args
        .data
        .clone()
        .unwrap_or_else(bali::data::default_uci_root);
    let ds = UciDataset::load(&root, &args.dataset)?;
    let sd = ds.split_data(args.split)?;
    let what = format!("{} split {}", ds.name, args.split);
    bali::validate::check_target(sd.y_train.as_ref(), &what, "target")?;
    bali::validate::check_features(sd.x_train.as_ref(), &what, &[])?;
    bali::validate::check_test_rows(sd.y_test.nrows(), &what)?;
    let xs = Standardizer::fit(sd.x_train.as_ref());
    let ys = Standardizer::fit(sd.y_train.as_ref());
    let x_train = xs.transform(sd.x_train.as_ref());
    let y_train = ys.transform(sd.y_train.as_ref());
    let x_test = xs.transform(sd.x_test.as_ref());
    let y_test = ys.transform(sd.y_test.as_ref());
    let log_scale = ys.y_scale().ln();
    let dims = args.options.dims(ds.n_features(), ds.n_hidden);
    // The paper curve: without the options only the improved formulation reads, so that its
    // label does not claim a preconditioner it never uses.
    let paper_fixed = Overrides {
        preconditioner: None,
        gamma: None,
        wd: None,
        wd_scale: None,
        input_relevance: None,
        ..fixed.clone()
    };
    let mut series = Vec::new();
    for method in Preset::ALL {
        let batch = args.options.batch(method, x_train.nrows());
        let fixed = match method {
            Preset::Map => &map_fixed,
            Preset::BaliPaper => &paper_fixed,
            Preset::Bali => &fixed,
        };
        let max_iterations = if method == Preset::Map {
            5 * args.max_iterations
        } else {
            args.max_iterations
        };
        let Some(m) = method
            .grid(batch, false, fixed, max_iterations)
            .into_iter()
            .next()
        else {
            unreachable!("a preset without search has its default point")
        };
        let options = ProtocolOptions {
            members: 1,
            max_iterations,
            patience: usize::MAX,
            ..ProtocolOptions::default()
        };
        let sel = select_iterations(
            &m,
            &dims,
            (x_train.as_ref(), y_train.as_ref()),
            (x_test.as_ref(), y_test.as_ref()),
            &options,
            1,
            None,
        )?;
        let points: Vec<(f64, f64)> = sel
            .curve
            .iter()
            .map(|c| (c.iterations as f64, c.valid_ll - log_scale))
            .collect();
        if args.json {
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "dataset": ds.name, "split": args.split, "method": method.name(),
                    "options": m.label(),
                    "curve": points.iter().map(|&(i, ll)| [i, ll]).collect::<Vec<_>>(),
                })
            )?;
        }
        let best =
            points.iter().cloned().fold(
                (0.0, f64::NEG_INFINITY),
                |a, b| if b.1 > a.1 { b } else { a },
            );
        writeln!(
            out,
            "{} {}: best test LL {:.3} at {} iterations ({})",
            ds.name,
            method.name(),
            best.1,
            best.0,
            m.label()
        )?;
        series.push((method.name().to_string(), points));
    }
    crate::plot::curves(
        &args.out,
        &format!(
            "{} split {}: test log-likelihood (sigma^2 fitted per checkpoint)",
            ds.name, args.split
        ),
        "log10(iterations)",
        "test log-likelihood (nats/point)",
        &series
            .iter()
            .map(|(name, pts)| {
                (
                    name.clone(),
                    pts.iter().map(|&(i, ll)| (i.log10(), ll)).collect(),
                )
            })
            .collect::<Vec<_>>(),
    )?;
    if !args.json {
        writeln!(out, "wrote {}", args.out.display())?;
    }
    Ok(())
}
