//! The bodies of the fuzz targets, one function per place that reads outside bytes. Each
//! must return for any input (a value or an error), never panic, hang or abort; the
//! `fuzz_targets/` binaries hand libFuzzer's bytes to these, and the workspace test
//! `tests/fuzz_corpus.rs` replays every checked-in corpus file through the same functions
//! on the stable toolchain (this file is included there by path).
//!
//! Where a reader accepts its input, the target goes one step further and checks what a
//! caller relies on: finite values, consistent shapes, and (for the models) a prediction.

use std::path::Path;

use bali::data::{self, UciDataset};
use bali::validate;
use bali::{Ensemble, PredictMode};
use faer::Mat;

/// CSV text: the first line names the target column, the rest is the file. Every reader of
/// CSV text (regression, classification, prediction columns), then the data checks and the
/// standardizer: data they pass standardizes to finite values.
pub fn csv(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let (target, body) = text.split_once('\n').unwrap_or(("y", text));
    let source = Path::new("fuzz.csv");
    if let Ok(d) = data::parse_csv(body, source, target.trim()) {
        assert_eq!(d.x.nrows(), d.y.nrows());
        assert_eq!(d.x.ncols(), d.feature_names.len());
        let target_ok = validate::check_target(d.y.as_ref(), "fuzz", &d.target_name).is_ok();
        let features_ok = validate::check_features(d.x.as_ref(), "fuzz", &d.feature_names).is_ok();
        if target_ok && features_ok {
            for m in [&d.x, &d.y] {
                let s = data::Standardizer::fit(m.as_ref());
                let z = s.transform(m.as_ref());
                assert!(finite(&z), "standardized values not finite");
            }
        }
    }
    if let Ok(t) = data::parse_labelled_csv(body, source, target.trim()) {
        assert_eq!(t.x.nrows(), t.labels.len());
        assert!(t.classes.len() >= 2 && t.labels.iter().all(|&l| l < t.classes.len()));
    }
    let names: Vec<String> = target.split(',').map(|s| s.trim().to_string()).collect();
    if let Ok((x, _)) = data::parse_columns(body, source, &names) {
        assert_eq!(x.ncols(), names.len());
        assert!(finite(&x));
    }
}

/// A folder in the UCI layout, its files separated by NUL bytes in the order
/// `data.txt, index_features.txt, index_target.txt, n_splits.txt, n_hidden.txt,
/// n_epochs.txt, index_train_0.txt, index_test_0.txt, index_train_1.txt, ..` (a file past
/// the end is missing). A loaded set gives every split's rows without panicking.
pub fn uci_folder(bytes: &[u8]) {
    let parts: Vec<&[u8]> = bytes.split(|&b| b == 0).collect();
    let fixed = [
        "data.txt",
        "index_features.txt",
        "index_target.txt",
        "n_splits.txt",
        "n_hidden.txt",
        "n_epochs.txt",
    ];
    let mut read = |path: &Path| -> Result<String, data::DataError> {
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
        let index = fixed.iter().position(|&f| f == file).or_else(|| {
            let (kind, k) = file.strip_suffix(".txt")?.rsplit_once('_')?;
            let k: usize = k.parse().ok()?;
            let offset = match kind {
                "index_train" => 0,
                "index_test" => 1,
                _ => return None,
            };
            k.checked_mul(2)?.checked_add(6 + offset)
        });
        match index.and_then(|i| parts.get(i)) {
            Some(p) => String::from_utf8(p.to_vec()).map_err(|_| data::DataError::Invalid {
                path: path.to_path_buf(),
                line: 0,
                reason: "not UTF-8".into(),
            }),
            None => Err(data::DataError::MissingFile {
                path: path.to_path_buf(),
            }),
        }
    };
    if let Ok(ds) = UciDataset::from_files(Path::new("fuzz"), &mut read) {
        assert!(ds.n_splits >= 1 && ds.n_hidden >= 1);
        for k in 0..ds.n_splits {
            let s = ds.split_data(k).expect("a loaded split");
            assert!(s.x_train.nrows() >= 1 && s.x_test.nrows() >= 1);
            assert_eq!(s.x_train.ncols(), ds.n_features());
        }
        assert!(ds.split_data(ds.n_splits).is_err());
    }
}

/// An idx file: the first byte picks images (even) or labels (odd), the rest is the file
/// (plain or gzip). Accepted images hold exactly `count * rows * cols` pixels.
pub fn idx(bytes: &[u8]) {
    let Some((&kind, rest)) = bytes.split_first() else {
        return;
    };
    let path = Path::new("fuzz.idx");
    if kind % 2 == 0 {
        if let Ok(im) = data::parse_idx_images(rest, path) {
            assert_eq!(im.pixels_per_image() * im.count, pixels(&im));
        }
    } else if let Ok(labels) = data::parse_idx_labels(rest, path) {
        let _ = data::check_labels(&labels, 10);
    }
}

/// A `.npz` archive or a bare `.npy` file: the first byte picks npz images, npz labels, npy
/// images or npy labels.
pub fn npz(bytes: &[u8]) {
    let Some((&kind, rest)) = bytes.split_first() else {
        return;
    };
    let path = Path::new("fuzz.npz");
    match kind % 4 {
        0 => {
            if let Ok(im) = data::parse_npz_images(rest, path) {
                assert_eq!(im.pixels_per_image() * im.count, pixels(&im));
            }
        }
        1 => drop(data::parse_npz_labels(rest, path)),
        2 => {
            if let Ok(im) = data::parse_npy_images(rest, path) {
                assert_eq!(im.pixels_per_image() * im.count, pixels(&im));
            }
        }
        _ => drop(data::parse_npy_labels(rest, path)),
    }
}

/// A model file: a loaded model predicts two rows (inputs 0 and 1) with finite samples.
pub fn model_file(bytes: &[u8]) {
    let Ok(saved) = bali::model_file::from_bytes(bytes, Path::new("fuzz.safetensors")) else {
        return;
    };
    let first = &saved.members[0];
    let d0 = first.mlp().layer_shape(0).0 - 1;
    if d0 > 10_000 {
        return;
    }
    let x = Mat::from_fn(2, d0, |i, _| i as f64);
    let k = saved.members.len();
    let ensemble = Ensemble {
        members: saved.members,
    };
    if let Ok(samples) = ensemble.predict_samples(x.as_ref(), 2 * k, PredictMode::Weights, 0) {
        assert_eq!(samples.len(), 2 * k);
    }
}

/// A command line: arguments separated by NUL bytes (the program name is added). Parsing and
/// the option checks that run before any work ([`bali_cli::Cli::check`]) either accept or
/// give an error; no subcommand is run.
pub fn cli_options(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let argv = std::iter::once("bali").chain(text.split('\0'));
    if let Ok(cli) = <bali_cli::Cli as clap::Parser>::try_parse_from(argv) {
        let _ = cli.check();
    }
}

/// A matrix-normal posterior from arbitrary numbers: the first byte sets `p` and `q` (1..=8
/// each), then little-endian f64s fill the row precision, the column covariance (both read
/// symmetric from the lower triangle) and the mean. Construction gives a posterior or an
/// error naming the factor; an accepted posterior has a finite or -inf log-determinant, and
/// its samples and local moments at finite inputs are finite or an error.
pub fn posterior(bytes: &[u8]) {
    use bali_mn::{FactorId, JitterPolicy, KronFactor, MatrixNormal};
    let Some((&shape, rest)) = bytes.split_first() else {
        return;
    };
    let (p, q) = ((shape % 8) as usize + 1, (shape / 32) as usize + 1);
    let vals: Vec<f64> = rest
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    if vals.len() < p * p + q * q + p * q {
        return;
    }
    let sym = |off: usize, n: usize| Mat::from_fn(n, n, |i, j| vals[off + i.max(j) * n + i.min(j)]);
    let policy = JitterPolicy::bounded(3, 1e-8);
    let par = faer::Par::Seq;
    let Ok(row) = KronFactor::new(sym(0, p), FactorId::matrix(), policy, par) else {
        return;
    };
    for j in 0..p {
        for i in j..p {
            assert!(row.chol()[(i, j)].is_finite(), "non-finite Cholesky entry");
        }
    }
    assert!(row.log_det().is_finite() || row.log_det() == f64::NEG_INFINITY);
    let Ok(col) = KronFactor::new(sym(p * p, q), FactorId::matrix(), policy, par) else {
        return;
    };
    let off = p * p + q * q;
    let mean = Mat::from_fn(p, q, |i, j| vals[off + i * q + j]);
    let Ok(mn) = MatrixNormal::new(mean, row, col) else {
        return;
    };
    let x = Mat::from_fn(3, p, |i, j| (i + j) as f64 * 0.5);
    if let Ok((m, v)) = mn.try_local_moments(x.as_ref(), par) {
        assert_eq!((m.nrows(), m.ncols(), v.len()), (3, q, 3));
    }
    let _ = mn.log_density(Mat::<f64>::zeros(p, q).as_ref(), par);
}

fn finite(m: &Mat<f64>) -> bool {
    (0..m.ncols()).all(|j| (0..m.nrows()).all(|i| m[(i, j)].is_finite()))
}

fn pixels(im: &data::Images) -> usize {
    (0..im.count).map(|i| im.image(i).len()).sum()
}
