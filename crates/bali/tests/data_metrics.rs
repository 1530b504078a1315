//! Data loading, standardization and metrics of the `bali` crate.
//!
//! The UCI tests read `../shared/data/uci` (found by `bali::data::find_uci_root`, or
//! `$BALI_DATA`) and print "skipping: ../shared/data not found" when it is absent.

use std::path::PathBuf;

use bali::data::{
    find_uci_root, load_csv, split_rows, train_valid_carve, DataError, Standardizer, UciDataset,
    UCI_DATASETS,
};
use bali::metrics::*;
use faer::{Mat, MatRef};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// The table of `shared/data/README.md`: folder, then
/// `[rows, features, target column, splits, train rows, test rows, n_hidden, n_epochs]`.
const TABLE: [(&str, [usize; 8]); 9] = [
    ("bostonHousing", [506, 13, 13, 20, 455, 51, 50, 40]),
    ("concrete", [1030, 8, 8, 20, 927, 103, 50, 40]),
    ("energy", [768, 8, 8, 20, 691, 77, 50, 40]),
    ("kin8nm", [8192, 8, 8, 20, 7373, 819, 50, 40]),
    (
        "naval-propulsion-plant",
        [11934, 16, 16, 20, 10741, 1193, 50, 40],
    ),
    ("power-plant", [9568, 4, 4, 20, 8611, 957, 50, 40]),
    (
        "protein-tertiary-structure",
        [45730, 9, 9, 5, 41157, 4573, 100, 20],
    ),
    ("wine-quality-red", [1599, 11, 11, 20, 1439, 160, 50, 40]),
    ("yacht", [308, 6, 6, 20, 277, 31, 50, 40]),
];

fn uci_root() -> Option<PathBuf> {
    let root = find_uci_root();
    if root.is_none() {
        println!("skipping: ../shared/data not found");
    }
    root
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("bali-dm-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// UCI

#[test]
fn every_uci_dataset_matches_the_readme_table() {
    let Some(root) = uci_root() else { return };
    for (alias, folder) in UCI_DATASETS {
        let (_, expected) = TABLE.iter().find(|r| r.0 == folder).unwrap();
        let [rows, d, target, splits, n_train, n_test, hidden, epochs] = *expected;
        let ds = UciDataset::load(&root, alias).unwrap_or_else(|e| panic!("{alias}: {e}"));
        assert_eq!(ds.name, folder);
        assert_eq!((ds.n_rows(), ds.n_features()), (rows, d), "{folder}");
        assert_eq!((ds.y.nrows(), ds.y.ncols()), (rows, 1), "{folder}");
        assert_eq!(ds.target_column, target, "{folder}");
        assert_eq!(ds.feature_columns, (0..d).collect::<Vec<_>>(), "{folder}");
        assert_eq!(
            (ds.n_splits, ds.n_hidden, ds.n_epochs),
            (splits, hidden, epochs)
        );
        for k in 0..ds.n_splits {
            let (train, test) = ds.split(k).unwrap();
            assert_eq!(
                (train.len(), test.len()),
                (n_train, n_test),
                "{folder} split {k}"
            );
            let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
            all.sort_unstable();
            all.dedup();
            assert_eq!(
                all.len(),
                rows,
                "{folder} split {k}: train and test cover all rows"
            );
        }
        assert!(matches!(
            ds.split(ds.n_splits),
            Err(DataError::SplitOutOfRange { .. })
        ));
    }
}

#[test]
fn uci_values_and_folder_names_load() {
    let Some(root) = uci_root() else { return };
    let boston = UciDataset::load(&root, "bostonHousing").unwrap();
    // First line of bostonHousing/data.txt: CRIM 0.00632 ... MEDV 24.0.
    assert_eq!(boston.x[(0, 0)], 0.00632);
    assert_eq!(boston.y[(0, 0)], 24.0);
    let y: Vec<f64> = (0..boston.n_rows()).map(|i| boston.y[(i, 0)]).collect();
    let (lo, hi) = y
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert_eq!((lo, hi), (5.0, 50.0));

    let s = boston.split_data(3).unwrap();
    let (train, test) = boston.split(3).unwrap();
    assert_eq!(s.x_train[(0, 2)], boston.x[(train[0], 2)]);
    assert_eq!(s.y_test[(5, 0)], boston.y[(test[5], 0)]);
}

#[test]
fn naval_constant_features_standardize_to_zero() {
    let Some(root) = uci_root() else { return };
    let naval = UciDataset::load(&root, "naval").unwrap();
    let (train, _) = naval.split(0).unwrap();
    let x_train = split_rows(naval.x.as_ref(), &train);
    let st = Standardizer::fit(x_train.as_ref());
    assert_eq!(st.std()[8], 1.0);
    assert_eq!(st.std()[11], 1.0);
    assert_eq!(st.mean()[8], 288.0);
    assert_eq!(st.mean()[11], 0.998);
    let z = st.transform(x_train.as_ref());
    for i in 0..z.nrows() {
        assert_eq!(z[(i, 8)], 0.0);
        assert_eq!(z[(i, 11)], 0.0);
        for j in 0..z.ncols() {
            assert!(z[(i, j)].is_finite());
        }
    }
    // Non-constant columns have zero mean and unit (population) variance on the training rows.
    for j in [0usize, 5, 15] {
        let n = z.nrows() as f64;
        let m: f64 = (0..z.nrows()).map(|i| z[(i, j)]).sum::<f64>() / n;
        let v: f64 = (0..z.nrows()).map(|i| (z[(i, j)] - m).powi(2)).sum::<f64>() / n;
        assert!(
            m.abs() < 1e-10 && (v - 1.0).abs() < 1e-10,
            "col {j}: {m} {v}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

#[test]
fn csv_file_loads_and_reports_line_and_column() {
    let t = TempDir::new("csv");
    let good = t.0.join("good.csv");
    std::fs::write(&good, "x1,x2,id,y\n1,2,a,3\n4,5,b,6\n").unwrap();
    let d = load_csv(&good, "y").unwrap();
    assert_eq!(d.feature_names, vec!["x1", "x2"]);
    assert_eq!(d.skipped_columns, vec!["id"]);
    assert_eq!(d.x[(1, 0)], 4.0);
    let d = load_csv(&good, "0").unwrap();
    assert_eq!(d.target_name, "x1");

    let bad = t.0.join("bad.csv");
    std::fs::write(&bad, "x1;x2;y\n1;2;3\n4;5;6\n7;8,5;9\n").unwrap();
    let err = load_csv(&bad, "y").unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, DataError::BadNumber { line: 4, column: 2, name, .. } if name == "x2"),
        "{msg}"
    );
    assert!(msg.contains("bad.csv:4") && msg.contains("\"x2\""), "{msg}");

    let err = load_csv(&t.0.join("absent.csv"), "y").unwrap_err();
    assert!(matches!(err, DataError::MissingFile { .. }));
    assert!(err.to_string().contains("absent.csv"));
}

// ---------------------------------------------------------------------------------------------
// Standardization

#[test]
fn standardizer_round_trips_and_carve_partitions() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let x = Mat::from_fn(50, 3, |_, j| {
        rng.random::<f64>() * (j as f64 + 1.0) * 10.0 + 3.0
    });
    let st = Standardizer::fit(x.as_ref());
    let z = st.transform(x.as_ref());
    let back = st.inverse_transform(z.as_ref());
    for i in 0..50 {
        for j in 0..3 {
            assert!((back[(i, j)] - x[(i, j)]).abs() < 1e-12);
        }
    }
    let y = Mat::from_fn(4, 1, |i, _| [1.0, 3.0, 5.0, 7.0][i]);
    let sy = Standardizer::fit(y.as_ref());
    assert_eq!(sy.mean()[0], 4.0);
    assert!((sy.y_scale() - 5f64.sqrt()).abs() < 1e-15);
    let orig = sy.inverse_transform_y(&[0.0, 1.0]);
    assert!((orig[0] - 4.0).abs() < 1e-15 && (orig[1] - (4.0 + 5f64.sqrt())).abs() < 1e-14);

    let (fit, valid) = train_valid_carve(455, 0.8, 42);
    assert_eq!((fit.len(), valid.len()), (364, 91));
    let mut all: Vec<usize> = fit.iter().chain(&valid).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..455).collect::<Vec<_>>());
    assert_eq!(train_valid_carve(455, 0.8, 42).0, fit);
}

// ---------------------------------------------------------------------------------------------
// Regression metrics

fn col(v: &[f64]) -> Mat<f64> {
    Mat::from_fn(v.len(), 1, |i, _| v[i])
}

#[test]
fn single_gaussian_log_lik_equals_closed_form_in_original_units() {
    let (mean_y, s_y) = (22.5, 9.2);
    let y_orig = [10.0, 22.0, 40.0, 22.5];
    let f_orig = [12.0, 21.0, 30.0, 80.0];
    let sigma_orig = 3.0;
    let y_std = col(&y_orig.map(|v| (v - mean_y) / s_y));
    let f_std = col(&f_orig.map(|v| (v - mean_y) / s_y));
    let sigma2_std = (sigma_orig / s_y).powi(2);
    let ll = gaussian_mixture_log_lik(&[f_std.as_ref()], sigma2_std, y_std.as_ref(), s_y);
    for i in 0..4 {
        let closed = -0.5 * (2.0 * std::f64::consts::PI * sigma_orig * sigma_orig).ln()
            - (y_orig[i] - f_orig[i]).powi(2) / (2.0 * sigma_orig * sigma_orig);
        assert!((ll[i] - closed).abs() < 1e-10, "{i}: {} vs {closed}", ll[i]);
    }
    // S identical samples give the same mixture.
    let many: Vec<MatRef<'_, f64>> = (0..7).map(|_| f_std.as_ref()).collect();
    let ll7 = gaussian_mixture_log_lik(&many, sigma2_std, y_std.as_ref(), s_y);
    for i in 0..4 {
        assert!((ll7[i] - ll[i]).abs() < 1e-12);
    }
    let mean = mean_gaussian_mixture_log_lik(&many, sigma2_std, y_std.as_ref(), s_y);
    assert!((mean - ll.iter().sum::<f64>() / 4.0).abs() < 1e-12);
}

#[test]
fn two_component_mixture_and_far_tail() {
    let y = col(&[0.3, 50.0]);
    let a = col(&[0.0, 0.0]);
    let b = col(&[1.0, 0.0]);
    let s2 = 0.25;
    let ll = gaussian_mixture_log_lik(&[a.as_ref(), b.as_ref()], s2, y.as_ref(), 1.0);
    let pdf = |y: f64, m: f64| {
        (-(y - m) * (y - m) / (2.0 * s2)).exp() / (2.0 * std::f64::consts::PI * s2).sqrt()
    };
    let direct = (0.5 * pdf(0.3, 0.0) + 0.5 * pdf(0.3, 1.0)).ln();
    assert!((ll[0] - direct).abs() < 1e-12);
    // exp underflows for the far point, log-sum-exp does not: -50^2/(2*0.25) - 0.5 log(2 pi 0.25).
    let far = -2500.0 / 0.5 - 0.5 * (2.0 * std::f64::consts::PI * s2).ln();
    assert!((ll[1] - far).abs() < 1e-9, "{}", ll[1]);
}

#[test]
fn rmse_and_predictive_mean() {
    let a = col(&[1.0, 2.0, 3.0]);
    let b = col(&[3.0, 2.0, 5.0]);
    let m = predictive_mean(&[a.as_ref(), b.as_ref()]);
    assert_eq!((m[(0, 0)], m[(1, 0)], m[(2, 0)]), (2.0, 2.0, 4.0));
    let y = col(&[2.0, 4.0, 4.0]);
    // errors 0, -2, 0 -> sqrt(4/3)
    assert!((rmse(m.as_ref(), y.as_ref()) - (4.0f64 / 3.0).sqrt()).abs() < 1e-15);
}

#[test]
fn coverage_of_exact_gaussian_predictions_is_nominal() {
    let n = 20_000;
    let sigma = 0.7;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mu: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 4.0 - 2.0).collect();
    let noise = Normal::new(0.0, sigma).unwrap();
    let y: Vec<f64> = mu.iter().map(|m| m + noise.sample(&mut rng)).collect();
    let (mu, y) = (col(&mu), col(&y));
    let levels = [0.5, 0.8, 0.9, 0.95, 0.99];
    let cov = interval_coverage(&[mu.as_ref()], sigma * sigma, y.as_ref(), &levels);
    for (l, c) in levels.iter().zip(&cov) {
        let sd = (l * (1.0 - l) / n as f64).sqrt();
        assert!((c - l).abs() < 4.0 * sd, "level {l}: coverage {c}");
    }
    // A too-narrow predictive (sigma / 2) under-covers.
    let narrow = interval_coverage(&[mu.as_ref()], sigma * sigma / 4.0, y.as_ref(), &[0.9]);
    assert!(narrow[0] < 0.6, "{}", narrow[0]);

    // Mixture of S = 200 network samples f_s ~ N(mu, tau^2): y ~ N(mu, tau^2 + sigma^2).
    let tau = 0.5;
    let n2 = 2000;
    let mu2: Vec<f64> = (0..n2).map(|i| (i as f64 / 300.0).sin()).collect();
    let total = Normal::new(0.0, (tau * tau + sigma * sigma).sqrt()).unwrap();
    let y2 = col(&mu2
        .iter()
        .map(|m| m + total.sample(&mut rng))
        .collect::<Vec<_>>());
    let draw = Normal::new(0.0, tau).unwrap();
    let samples: Vec<Mat<f64>> = (0..200)
        .map(|_| Mat::from_fn(n2, 1, |i, _| mu2[i] + draw.sample(&mut rng)))
        .collect();
    let views: Vec<MatRef<'_, f64>> = samples.iter().map(|m| m.as_ref()).collect();
    let (lv, obs) = calibration_curve(&views, sigma * sigma, y2.as_ref());
    assert_eq!(lv.len(), 19);
    assert!((lv[0] - 0.05).abs() < 1e-12 && (lv[18] - 0.95).abs() < 1e-12);
    assert!(
        obs.windows(2).all(|w| w[0] <= w[1]),
        "coverage grows with the level"
    );
    assert!(coverage_calibration_error(&lv, &obs) < 0.03, "{obs:?}");
}

#[test]
fn mean_and_stderr_uses_population_sd() {
    let (m, se) = mean_and_stderr(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(m, 2.5);
    assert!((se - 1.25f64.sqrt() / 2.0).abs() < 1e-15);
    assert_eq!(mean_and_stderr(&[7.0]), (7.0, 0.0));
}

#[test]
fn optimize_log_sigma2_finds_the_maximum() {
    // A concave function with its maximum at t = -1.3.
    let t = optimize_log_sigma2(
        |t| -(t + 1.3).powi(2) + 2.0 * (t + 1.3).powi(3).min(0.0),
        -7.0,
        5.0,
    );
    assert!((t + 1.3).abs() < 1e-4, "{t}");
    // The held-out log-likelihood of one Gaussian (f = 0) is maximized at sigma^2 = mean(r^2).
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let noise = Normal::new(0.0, 0.3).unwrap();
    let r: Vec<f64> = (0..500).map(|_| noise.sample(&mut rng)).collect();
    let mle = r.iter().map(|v| v * v).sum::<f64>() / r.len() as f64;
    let (y, zero) = (col(&r), Mat::<f64>::zeros(r.len(), 1));
    let best = optimize_log_sigma2(
        |t| mean_gaussian_mixture_log_lik(&[zero.as_ref()], t.exp(), y.as_ref(), 1.0),
        -10.0,
        3.0,
    );
    assert!((best - mle.ln()).abs() < 1e-4, "{best} vs {}", mle.ln());
}

// ---------------------------------------------------------------------------------------------
// Classification metrics

#[test]
fn mixture_quantiles_of_one_and_two_gaussians() {
    // One Gaussian: mean + sigma z_p.
    let q = mixture_quantile(&[2.0], 4.0, 0.975);
    assert!(
        (q - (2.0 + 2.0 * 1.959_963_984_540_054)).abs() < 1e-8,
        "{q}"
    );
    assert!((mixture_quantile(&[2.0], 4.0, 0.5) - 2.0).abs() < 1e-9);
    // A symmetric two-component mixture: the median is the midpoint, and the CDF at a
    // quantile is the probability.
    let means = [-1.0, 3.0];
    assert!((mixture_quantile(&means, 0.25, 0.5) - 1.0).abs() < 1e-9);
    for p in [0.025, 0.3, 0.9] {
        let v = mixture_quantile(&means, 0.25, p);
        let cdf = means.iter().map(|m| normal_cdf((v - m) / 0.5)).sum::<f64>() / 2.0;
        assert!((cdf - p).abs() < 1e-9, "p {p}: cdf {cdf}");
    }
}
