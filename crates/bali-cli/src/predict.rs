//! `bali predict`: predictions of a saved model (`bali fit --save`) for the rows of a CSV
//! file, as CSV on standard output: per row the predictive mean, standard deviation and the
//! bounds of the central predictive interval, in the units of the target.

use std::io::Write;
use std::path::PathBuf;

use bali::data::{parse_columns, read_text};
use bali::metrics::mixture_quantile;
use bali::model_file;
use bali::validate as v;
use bali::{BaliError, Ensemble, Likelihood, PredictMode};
use clap::Args;

use crate::CliError;

/// `bali predict --model FILE --csv FILE [--samples S] [--seed N] [--level L]`
#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// Model file written by `bali fit --save`.
    #[arg(long)]
    pub model: PathBuf,
    /// CSV file with a header line holding the model's input columns (by name; other
    /// columns are left out and named on standard error).
    #[arg(long)]
    pub csv: PathBuf,
    /// Predictive samples of the whole mixture, a multiple of the model's members K (S / K
    /// per member) [default: 100 rounded up to a multiple of K].
    #[arg(long, value_parser = |s: &str| v::SAMPLES.parse(s))]
    pub samples: Option<usize>,
    /// Seed of the predictive samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Probability of the central predictive interval, in (0, 1).
    #[arg(long, default_value_t = 0.95, value_parser = |s: &str| v::LEVEL.parse(s))]
    pub level: f64,
}

/// For a classifier: a header `p0,..,p{K-1},class,entropy,mutual_information` and per row the
/// class probabilities of the mixture, the most probable class, the predictive entropy and
/// its epistemic part (nats). For a regression model: a header `mean,sd,lower,upper` and one
/// CSV line per input row: the predictive mean
/// and standard deviation of the mixture and the bounds of its central `--level` interval
/// (its `(1 - level)/2` and `(1 + level)/2` quantiles), in the target's units.
pub fn run(args: &PredictArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let saved = model_file::load(&args.model)?;
    let samples = crate::options::samples_for(args.samples, saved.members.len(), 100)?;
    let Some(names) = saved.input_names.as_ref() else {
        return Err(BaliError::NotFitted {
            what: "input column names (save the model with `bali fit --save`)",
        }
        .into());
    };
    let text = read_text(&args.csv)?;
    let (x_raw, left_out) = parse_columns(&text, &args.csv, names)?;
    if !left_out.is_empty() {
        eprintln!(
            "bali predict: columns not used by the model: {}",
            left_out.join(", ")
        );
    }
    let outputs = saved.members[0].mlp().num_outputs();
    v::check_memory(
        format!("{samples} predictive samples of {} rows", x_raw.nrows()),
        v::protocol_bytes(0, 0, samples, x_raw.nrows(), outputs),
    )?;
    let first = &saved.members[0];
    if first.likelihood() == Likelihood::Categorical {
        // A classifier: class probabilities, the predicted class, and the predictive entropy
        // with its epistemic part (the mutual information) per row.
        let ensemble = Ensemble {
            members: saved.members,
        };
        let pred = ensemble.predict_categorical(
            x_raw.as_ref(),
            samples,
            PredictMode::Weights,
            args.seed,
        )?;
        let k = pred.probs.ncols();
        if let Some(i) =
            (0..pred.probs.nrows()).find(|&i| (0..k).any(|c| !pred.probs[(i, c)].is_finite()))
        {
            return Err(CliError::NonFinitePrediction {
                path: args.csv.clone(),
                row: i + 1,
            });
        }
        let header: Vec<String> = (0..k).map(|c| format!("p{c}")).collect();
        writeln!(out, "{},class,entropy,mutual_information", header.join(","))?;
        let (classes, entropy, mi) = (
            pred.predicted_classes(),
            pred.entropy(),
            pred.mutual_information(),
        );
        for i in 0..pred.probs.nrows() {
            let probs: Vec<String> = (0..k).map(|c| pred.probs[(i, c)].to_string()).collect();
            writeln!(
                out,
                "{},{},{},{}",
                probs.join(","),
                classes[i],
                entropy[i],
                mi[i]
            )?;
        }
        return Ok(());
    }
    if first.mlp().num_outputs() != 1 {
        return Err(BaliError::Unsupported {
            what: "bali predict",
            needs: "a model with one target column",
        }
        .into());
    }
    let sigma2 = first.predictive_noise()[0];
    let x = match first.input_scaler() {
        Some(s) => s.transform(x_raw.as_ref()),
        None => x_raw.clone(),
    };
    let (loc, scale) = match first.target_scaler() {
        Some(s) => (s.mean()[0], s.std()[0]),
        None => (0.0, 1.0),
    };
    let ensemble = Ensemble {
        members: saved.members,
    };
    let draws = ensemble.predict_samples(x.as_ref(), samples, PredictMode::Weights, args.seed)?;
    let (lo_p, hi_p) = ((1.0 - args.level) / 2.0, (1.0 + args.level) / 2.0);
    // Every row first: inputs far outside the training range can overflow the network or
    // the spread of its samples; such a row is refused, by number, before anything prints.
    let mut rows = Vec::with_capacity(x.nrows());
    let mut means = vec![0.0; draws.len()];
    for i in 0..x.nrows() {
        for (m, s) in means.iter_mut().zip(&draws) {
            *m = s[(i, 0)];
        }
        let mean = means.iter().sum::<f64>() / means.len() as f64;
        let spread = means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / means.len() as f64;
        let sd = (spread + sigma2).sqrt();
        let lower = mixture_quantile(&means, sigma2, lo_p);
        let upper = mixture_quantile(&means, sigma2, hi_p);
        let row = [
            loc + scale * mean,
            scale * sd,
            loc + scale * lower,
            loc + scale * upper,
        ];
        if !row.iter().all(|v| v.is_finite()) {
            return Err(CliError::NonFinitePrediction {
                path: args.csv.clone(),
                row: i + 1,
            });
        }
        rows.push(row);
    }
    writeln!(out, "mean,sd,lower,upper")?;
    for [mean, sd, lower, upper] in rows {
        writeln!(out, "{mean},{sd},{lower},{upper}")?;
    }
    Ok(())
}
