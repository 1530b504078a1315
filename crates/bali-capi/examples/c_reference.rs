//! The figures the C test (`tests/c/bali_test.c`) must reproduce bit for bit, computed with
//! the Rust library on the same data, options and seeds; printed in the same
//! `key[index] hex-bits` lines (CI diffs the two outputs).

use bali::{BaliConfig, BayesianMlp, Ensemble, Likelihood, PredictMode, Trainer};
use faer::{Mat, MatRef};
use rand::rngs::StdRng;
use rand::SeedableRng;

const N: usize = 64;
const ROWS: usize = 5;
const SAMPLES: usize = 16;

fn print_bits(key: &str, values: impl IntoIterator<Item = f64>) {
    for (i, v) in values.into_iter().enumerate() {
        println!("{key}[{i}] {:016x}", v.to_bits());
    }
}

fn row_major(m: &Mat<f64>) -> Vec<f64> {
    (0..m.nrows())
        .flat_map(|i| (0..m.ncols()).map(move |j| (i, j)))
        .map(|(i, j)| m[(i, j)])
        .collect()
}

/// The predictive mean and variance of `model` for `rows` (prediction seed 3, as the C test's
/// `bali_predict` calls), as `key.mean[i]` and `key.variance[i]` lines.
fn print_prediction(
    key: &str,
    model: &BayesianMlp<f64>,
    rows: MatRef<'_, f64>,
) -> Result<(), bali::BaliError> {
    let mut rng = StdRng::seed_from_u64(Ensemble::<()>::sample_seed(3, 0));
    let pred = model.predict_gaussian(rows, SAMPLES, PredictMode::Weights, &mut rng)?;
    for i in 0..ROWS {
        println!("{key}.mean[{i}] {:016x}", pred.mean[(i, 0)].to_bits());
        println!(
            "{key}.variance[{i}] {:016x}",
            pred.variance[(i, 0)].to_bits()
        );
    }
    Ok(())
}

fn main() -> Result<(), bali::BaliError> {
    let x = Mat::from_fn(N, 3, |i, j| (0.37 * i as f64 + 1.1 * j as f64).sin());
    let y = Mat::from_fn(N, 1, |i, _| {
        x[(i, 0)] - 0.5 * x[(i, 1)] * x[(i, 2)] + 0.1 * (1.7 * i as f64).cos()
    });
    let rows = x.subrows(0, ROWS);

    let config = BaliConfig {
        wd: 1.0,
        batch_size: Some(16),
        ..BaliConfig::default()
    };
    let mut trainer = Trainer::<f64>::new(vec![3, 8, 1], config, N, 7)?;
    trainer.fit(x.as_ref(), y.as_ref(), 30, |_, _| {
        std::ops::ControlFlow::Continue(())
    })?;
    print_prediction("fit", trainer.model(), rows)?;
    let l0 = trainer.posterior(0);
    print_bits("layer0.mean", row_major(&l0.mean));
    print_bits(
        "layer0.row_precision",
        row_major(&l0.row_precision.matrix()),
    );
    print_bits("layer0.col_cov", row_major(&l0.col_cov.matrix()));
    print_bits("layer1.mean", row_major(&trainer.posterior(1).mean));
    // The C test saves, loads and fits 10 more steps: never stopping gives the same.
    trainer.fit(x.as_ref(), y.as_ref(), 10, |_, _| {
        std::ops::ControlFlow::Continue(())
    })?;
    print_prediction("resume", trainer.model(), rows)?;

    let mut stream = Trainer::<f64>::new(vec![3, 8, 1], BaliConfig::default(), N, 7)?;
    stream.partial_fit(x.subrows(0, 16), y.subrows(0, 16))?;
    stream.partial_fit(x.subrows(16, 16), y.subrows(16, 16))?;
    print_prediction("stream", stream.model(), rows)?;
    // Classification: 3 classes from the same inputs, one-hot targets.
    let class_of = |i: usize| {
        if x[(i, 0)] > 0.3 {
            2
        } else if x[(i, 1)] > 0.0 {
            1
        } else {
            0
        }
    };
    let onehot = Mat::from_fn(N, 3, |i, k| if class_of(i) == k { 1.0 } else { 0.0 });
    let config = BaliConfig {
        likelihood: Likelihood::Categorical,
        alpha_hidden: Some(0.1),
        gamma: 0.1,
        floor: 0.3,
        wd: 100.0,
        ..BaliConfig::default()
    };
    let mut classes = Trainer::<f64>::new(vec![3, 8, 3], config, N, 5)?;
    classes.fit(x.as_ref(), onehot.as_ref(), 20, |_, _| {
        std::ops::ControlFlow::Continue(())
    })?;
    let mut rng = StdRng::seed_from_u64(Ensemble::<()>::sample_seed(3, 0));
    let pred =
        classes
            .model()
            .predict_categorical(rows, SAMPLES, PredictMode::Weights, &mut rng)?;
    print_bits("classify.probs", row_major(&pred.probs));
    Ok(())
}
