//! Model files: a bit-exact round trip of a fitted ensemble (posteriors, standardization,
//! noise, options, names, training state), resuming training from a file equal to never
//! stopping, and a clear error for every kind of bad file.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use bali::data::Standardizer;
use bali::model_file::{self, ModelFileError, SavedModel, FORMAT_VERSION};
use bali::{
    BaliConfig, BaliError, BayesianMlp, Ensemble, Fisher, Formulation, Preconditioner, PredictMode,
    SigmaSpec, Trainer,
};
use faer::Mat;
use rand::rngs::StdRng;
use rand::SeedableRng;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

fn data(n: usize) -> (Mat<f64>, Mat<f64>) {
    let x = Mat::from_fn(n, 3, |i, j| 5.0 + (0.7 * i as f64 + 1.3 * j as f64).sin());
    let y = Mat::from_fn(n, 1, |i, _| 10.0 * x[(i, 0)] - 3.0 * x[(i, 2)] * x[(i, 1)]);
    (x, y)
}

fn fitted_ensemble(k: usize) -> SavedModel {
    let n = 50;
    let (x_raw, y_raw) = data(n);
    let (xs, ys) = (
        Standardizer::fit(x_raw.as_ref()),
        Standardizer::fit(y_raw.as_ref()),
    );
    let (x, y) = (xs.transform(x_raw.as_ref()), ys.transform(y_raw.as_ref()));
    let config = BaliConfig {
        wd: 1.0,
        ..BaliConfig::default()
    };
    let (training, members) = (0..k)
        .map(|m| {
            let mut t = Trainer::<f64>::new(vec![3, 6, 4, 1], config.clone(), n, m as u64).unwrap();
            t.fit(x.as_ref(), y.as_ref(), 7, |_, _| ControlFlow::Continue(()))
                .unwrap();
            let state = t.state();
            let mut model = t.into_model();
            model.set_standardization(Some(xs.clone()), Some(ys.clone()));
            model.set_noise(0.037).unwrap();
            (state, model)
        })
        .unzip();
    SavedModel {
        members,
        config: Some(config),
        input_names: Some(vec!["a".into(), "b".into(), "c".into()]),
        target_name: Some("y".into()),
        training: Some(training),
    }
}

fn tmp(name: &str) -> PathBuf {
    // One folder per file: tests run in parallel and one checks its folder for leftovers.
    let dir = std::env::temp_dir().join(format!("bali-model-file-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn same_model(a: &BayesianMlp<f64>, b: &BayesianMlp<f64>) {
    assert_eq!(a.mlp().dims, b.mlp().dims);
    assert_eq!(a.mlp().activation, b.mlp().activation);
    assert_eq!(a.likelihood(), b.likelihood());
    for (pa, pb) in a.layers().iter().zip(b.layers()) {
        assert!(pa.mean == pb.mean);
        assert!(pa.row_precision.chol() == pb.row_precision.chol());
        assert_eq!(pa.row_precision.diagonal(), pb.row_precision.diagonal());
        assert!(pa.col_cov.chol() == pb.col_cov.chol());
        assert_eq!(pa.col_cov.diagonal(), pb.col_cov.diagonal());
    }
    assert_eq!(a.input_scaler(), b.input_scaler());
    assert_eq!(a.target_scaler(), b.target_scaler());
    assert_eq!(a.noise(), b.noise());
}

#[test]
fn round_trip_is_bit_exact_and_the_write_is_atomic() {
    let saved = fitted_ensemble(3);
    let path = tmp("ensemble.safetensors");
    std::fs::write(&path, b"an older file").unwrap();
    model_file::save(&path, &saved).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary file left behind");
    let loaded = model_file::load(&path).unwrap();
    assert_eq!(loaded.members.len(), 3);
    for (a, b) in saved.members.iter().zip(&loaded.members) {
        same_model(a, b);
    }
    assert_eq!(loaded.config, saved.config);
    assert_eq!(loaded.training, saved.training);
    assert_eq!(loaded.input_names, saved.input_names);
    assert_eq!(loaded.target_name.as_deref(), Some("y"));
    // Predictions equal bit for bit: samples and the mixture's moments in data units.
    let (x, _) = data(9);
    let (ea, eb) = (
        Ensemble {
            members: saved.members.clone(),
        },
        Ensemble {
            members: loaded.members.clone(),
        },
    );
    let (pa, pb) = (
        ea.predict_gaussian(x.as_ref(), 30, PredictMode::Weights, 5)
            .unwrap(),
        eb.predict_gaussian(x.as_ref(), 30, PredictMode::Weights, 5)
            .unwrap(),
    );
    assert!(pa.mean == pb.mean && pa.variance == pb.variance);
    for mode in [PredictMode::Weights, PredictMode::Local] {
        let xs = saved.members[0]
            .input_scaler()
            .unwrap()
            .transform(x.as_ref());
        let sa = saved.members[1]
            .predict_samples(xs.as_ref(), 4, mode, &mut StdRng::seed_from_u64(1))
            .unwrap();
        let sb = loaded.members[1]
            .predict_samples(xs.as_ref(), 4, mode, &mut StdRng::seed_from_u64(1))
            .unwrap();
        assert!(sa == sb, "{mode:?} samples differ after the round trip");
    }
    // Bytes are deterministic: saving the loaded model gives the same file.
    assert_eq!(
        model_file::to_bytes(&loaded).unwrap(),
        std::fs::read(&path).unwrap()
    );
    std::fs::remove_dir_all(path.parent().unwrap()).ok();
}

/// One stored tensor: name, dtype, shape and bytes.
type Stored = (String, Dtype, Vec<usize>, Vec<u8>);

/// The file's tensors and metadata, to rebuild a modified copy.
fn parts(bytes: &[u8]) -> (Vec<Stored>, String) {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    let meta = header.metadata().as_ref().unwrap()["bali"].clone();
    let mut tensors: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    (tensors, meta)
}

fn rebuild(tensors: &[Stored], meta: &str) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::tensor::serialize(
        views,
        Some(HashMap::from([("bali".to_string(), meta.to_string())])),
    )
    .unwrap()
}

fn error_of(bytes: &[u8]) -> ModelFileError {
    match model_file::from_bytes(bytes, Path::new("m.safetensors")) {
        Err(BaliError::ModelFile(e)) => e,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a bad file was accepted"),
    }
}

#[test]
fn bad_files_are_errors_that_say_what_and_where() {
    let good = model_file::to_bytes(&fitted_ensemble(1)).unwrap();
    // Truncated anywhere: the container reader refuses it.
    for cut in [0, 4, 8, 20, good.len() / 2, good.len() - 1] {
        let e = error_of(&good[..cut]);
        assert!(
            matches!(e, ModelFileError::Container { .. }),
            "cut {cut}: {e}"
        );
        assert!(e.to_string().contains("m.safetensors"), "{e}");
    }
    let (tensors, meta) = parts(&good);
    // Another format version.
    let bumped = meta.replace(
        &format!("\"version\":{FORMAT_VERSION}"),
        &format!("\"version\":{}", FORMAT_VERSION + 1),
    );
    assert_ne!(bumped, meta);
    let e = error_of(&rebuild(&tensors, &bumped));
    assert!(matches!(e, ModelFileError::Version { found, .. } if found == FORMAT_VERSION + 1));
    // Metadata that is not JSON, lacks a field, or is another format.
    for bad in [
        "{not json".to_string(),
        meta.replace("\"dims\"", "\"widths\""),
        meta.replace("bali-model", "other-model"),
        meta.replace("\"members\":1", "\"members\":2"),
    ] {
        let e = error_of(&rebuild(&tensors, &bad));
        assert!(
            matches!(
                e,
                ModelFileError::Metadata { .. } | ModelFileError::MissingTensor { .. }
            ),
            "{e}"
        );
    }
    // A tensor in f32, of the wrong shape, missing, or non-finite.
    let find = |name: &str| tensors.iter().position(|t| t.0 == name).unwrap();
    let mean = find("member0.layer1.mean");
    let mut f32_tensors = tensors.clone();
    let t = &mut f32_tensors[mean];
    t.1 = Dtype::F32;
    t.2 = vec![t.2[0], 2 * t.2[1]];
    let e = error_of(&rebuild(&f32_tensors, &meta));
    assert!(
        matches!(&e, ModelFileError::Dtype { tensor, .. } if tensor == "member0.layer1.mean"),
        "{e}"
    );
    let mut reshaped = tensors.clone();
    let t = &mut reshaped[mean];
    t.2 = vec![t.2[1], t.2[0]];
    let e = error_of(&rebuild(&reshaped, &meta));
    assert!(
        matches!(&e, ModelFileError::Shape { expected, found, .. } if expected != found),
        "{e}"
    );
    let mut missing = tensors.clone();
    missing.remove(find("member0.layer0.col_cov.diag"));
    let e = error_of(&rebuild(&missing, &meta));
    assert!(
        matches!(&e, ModelFileError::MissingTensor { tensor, .. } if tensor == "member0.layer0.col_cov.diag"),
        "{e}"
    );
    let mut nan = tensors.clone();
    nan[mean].3[..8].copy_from_slice(&f64::NAN.to_le_bytes());
    let e = error_of(&rebuild(&nan, &meta));
    assert!(matches!(e, ModelFileError::Invalid { .. }), "{e}");
    // A Cholesky factor that does not match its diagonal, or is not lower triangular.
    let mut wrong_diag = tensors.clone();
    let d = find("member0.layer0.row_precision.diag");
    let v = f64::from_le_bytes(wrong_diag[d].3[..8].try_into().unwrap());
    wrong_diag[d].3[..8].copy_from_slice(&(2.0 * v).to_le_bytes());
    let e = error_of(&rebuild(&wrong_diag, &meta));
    assert!(
        matches!(&e, ModelFileError::Invalid { tensor, .. } if tensor.contains("row_precision")),
        "{e}"
    );
    let mut upper = tensors.clone();
    let c = find("member0.layer0.col_cov.chol");
    upper[c].3[8..16].copy_from_slice(&1.0f64.to_le_bytes()); // row 0, column 1
    let e = error_of(&rebuild(&upper, &meta));
    assert!(matches!(e, ModelFileError::Invalid { .. }), "{e}");
    // A standard deviation of zero.
    let mut zero_std = tensors.clone();
    let s = find("input.std");
    zero_std[s].3[..8].copy_from_slice(&0.0f64.to_le_bytes());
    assert!(matches!(
        error_of(&rebuild(&zero_std, &meta)),
        ModelFileError::Invalid { .. }
    ));
    // The untouched parts still load.
    assert!(model_file::from_bytes(&rebuild(&tensors, &meta), Path::new("m")).is_ok());
    // A missing file and an unwritable path say which path.
    let e = model_file::load(Path::new("/nonexistent/dir/m.safetensors")).unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/dir/m.safetensors"),
        "{e}"
    );
    let e = model_file::save(
        Path::new("/nonexistent/dir/m.safetensors"),
        &fitted_ensemble(1),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/dir/m.safetensors"),
        "{e}"
    );
}

/// Every posterior of two trainers equal bit for bit.
fn same_posteriors(a: &Trainer<f64>, b: &Trainer<f64>, what: &str) {
    for l in 0..a.mlp().num_layers() {
        let (pa, pb) = (a.posterior(l), b.posterior(l));
        assert!(pa.mean == pb.mean, "{what}: layer {l} mean");
        assert!(
            pa.row_precision.chol() == pb.row_precision.chol(),
            "{what}: layer {l} Lambda"
        );
        assert!(
            pa.col_cov.chol() == pb.col_cov.chol(),
            "{what}: layer {l} Sigma"
        );
    }
    assert_eq!(a.steps(), b.steps(), "{what}");
    assert_eq!(a.epoch(), b.epoch(), "{what}");
}

#[test]
fn resuming_from_a_file_equals_never_stopping() {
    let n = 50;
    let (x_raw, y_raw) = data(n);
    let x = Standardizer::fit(x_raw.as_ref()).transform(x_raw.as_ref());
    let y = Standardizer::fit(y_raw.as_ref()).transform(y_raw.as_ref());
    let learned = SigmaSpec::Learned {
        nu0_extra: 2.0,
        s0_sq: 1.0,
    };
    let cases = [
        ("improved kfac, full batch", BaliConfig::default()),
        (
            "improved kfac, mini-batch, curvature every 3 steps, learned Sigma",
            BaliConfig {
                batch_size: Some(16),
                refresh_every: 3,
                hidden_sigma: learned,
                wd: 1.0,
                ..BaliConfig::default()
            },
        ),
        (
            "improved kfac, curvature-scaled weight decay, input relevance",
            BaliConfig {
                wd: 10.0,
                wd_scale: bali::config::WdScale::Curvature,
                input_relevance: true,
                ..BaliConfig::default()
            },
        ),
        (
            "improved scalar, mini-batch, damping floor",
            BaliConfig {
                batch_size: Some(20),
                floor: 0.3,
                preconditioner: Preconditioner::Scalar,
                ..BaliConfig::default()
            },
        ),
        (
            "paper, mini-batch",
            BaliConfig {
                batch_size: Some(16),
                formulation: Formulation::Paper,
                ..BaliConfig::default()
            },
        ),
    ];
    // Classification with sampled-label curvature: the labels come from the saved stream.
    let k = 3;
    let y_classes = Mat::from_fn(n, k, |i, c| if (i * 7) % k == c { 1.0 } else { 0.0 });
    let classification = (
        "categorical, sampled Fisher, mini-batch",
        BaliConfig {
            batch_size: Some(16),
            fisher: Fisher::Sampled,
            ..BaliConfig::classification()
        },
    );
    let path = tmp("resume.safetensors");
    let go = |_: &Trainer<f64>, _: &_| ControlFlow::Continue(());
    let runs = cases
        .into_iter()
        .map(|c| (c, vec![3, 6, 4, 1], &y))
        .chain([(classification, vec![3, 6, 4, k], &y_classes)]);
    for ((what, config), dims, y) in runs {
        let mut whole = Trainer::<f64>::new(dims.clone(), config.clone(), n, 11).unwrap();
        let y = y.as_ref();
        whole.fit(x.as_ref(), y, 13, go).unwrap();
        // Stop after 5 steps (mid-epoch, between curvature refreshes), save, load, resume.
        let mut first = Trainer::<f64>::new(dims, config.clone(), n, 11).unwrap();
        first.fit(x.as_ref(), y, 5, go).unwrap();
        let state = first.state();
        let mut saved = SavedModel::of_members(vec![first.into_model()]);
        saved.config = Some(config);
        saved.training = Some(vec![state]);
        model_file::save(&path, &saved).unwrap();
        let mut resumed = model_file::load(&path).unwrap().into_trainers().unwrap();
        assert_eq!(resumed.len(), 1);
        let mut resumed = resumed.pop().unwrap();
        assert_eq!(resumed.steps(), 5, "{what}");
        resumed.fit(x.as_ref(), y, 8, go).unwrap();
        same_posteriors(&whole, &resumed, what);
    }
    // A file without training state says so.
    let mut bare = fitted_ensemble(1);
    bare.training = None;
    model_file::save(&path, &bare).unwrap();
    let e = model_file::load(&path)
        .unwrap()
        .into_trainers()
        .unwrap_err();
    assert!(matches!(e, BaliError::NotFitted { .. }), "{e}");
    std::fs::remove_dir_all(path.parent().unwrap()).ok();
}

#[test]
fn bad_training_state_is_an_error_that_says_where() {
    let good = model_file::to_bytes(&fitted_ensemble(1)).unwrap();
    let (tensors, meta) = parts(&good);
    let find = |name: &str| tensors.iter().position(|t| t.0 == name).unwrap();
    // The sampler order with a repeated row.
    let mut repeated = tensors.clone();
    let o = find("member0.train.order");
    let first = repeated[o].3[..8].to_vec();
    repeated[o].3[8..16].copy_from_slice(&first);
    let e = error_of(&rebuild(&repeated, &meta));
    assert!(
        matches!(&e, ModelFileError::Invalid { tensor, .. } if tensor == "member0.train.order"),
        "{e}"
    );
    // The order stored as f64, statistics of the wrong shape, a missing curvature EMA.
    let mut as_f64 = tensors.clone();
    as_f64[o].1 = Dtype::F64;
    let e = error_of(&rebuild(&as_f64, &meta));
    assert!(
        matches!(
            &e,
            ModelFileError::Dtype {
                expected: "U64",
                ..
            }
        ),
        "{e}"
    );
    let mut reshaped = tensors.clone();
    let sxt = find("member0.train.layer1.sxt");
    reshaped[sxt].2.reverse();
    let e = error_of(&rebuild(&reshaped, &meta));
    assert!(
        matches!(&e, ModelFileError::Shape { tensor, .. } if tensor == "member0.train.layer1.sxt"),
        "{e}"
    );
    let mut missing = tensors.clone();
    missing.remove(find("member0.train.layer0.c_hat"));
    let e = error_of(&rebuild(&missing, &meta));
    assert!(
        matches!(&e, ModelFileError::MissingTensor { tensor, .. } if tensor == "member0.train.layer0.c_hat"),
        "{e}"
    );
    // A generator seed that is not 64 hex digits.
    let start = meta.find("\"seed\":\"").unwrap() + 8;
    let mut bad_seed = meta.clone();
    bad_seed.replace_range(start..start + 2, "zz");
    let e = error_of(&rebuild(&tensors, &bad_seed));
    assert!(e.to_string().contains("rng.seed"), "{e}");
    // A state whose curvature the options do not have is refused on resume.
    let mut saved = fitted_ensemble(1);
    saved.config.as_mut().unwrap().formulation = Formulation::Paper;
    let e = saved.into_trainers().unwrap_err();
    assert!(e.to_string().contains("layer 0"), "{e}");
}
