//! The held-out protocol and the commands built on it: `bali uci` (skips without
//! ../shared/data), `bali fit --csv` (including malformed input) and the checkpoint schedule.

use bali::experiment::{
    calibrate_sigma2, calibrate_sigma2_above, checkpoints, run_split, Criterion, Method,
    ProtocolOptions, Split,
};
use bali::BaliConfig;
use bali_cli::{run, Cli};
use clap::Parser;
use faer::Mat;

fn run_cli(args: &[&str]) -> Result<String, String> {
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    run(cli, &mut out).map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).expect("utf-8 output"))
}

#[test]
fn checkpoint_schedule_is_increasing_and_ends_at_the_maximum() {
    let c = checkpoints(100);
    assert_eq!(&c[..6], &[1, 2, 3, 4, 5, 8]);
    assert_eq!(*c.last().unwrap(), 100);
    assert!(c.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(checkpoints(1), vec![1]);
}

#[test]
fn noise_search_finds_the_residual_variance_and_respects_its_floor() {
    // One predictive sample equal to y + r with mean-square residual 0.04: the held-out
    // optimum of a single Gaussian is sigma^2 = mean(r^2).
    let n = 400;
    let y = Mat::from_fn(n, 1, |i, _| (i as f64 * 0.37).sin());
    let r = |i: usize| if i.is_multiple_of(2) { 0.2 } else { -0.2 };
    let f = Mat::from_fn(n, 1, |i, _| y[(i, 0)] + r(i));
    let (s2, ll) = calibrate_sigma2(std::slice::from_ref(&f), y.as_ref());
    assert!((s2 - 0.04).abs() < 0.04 * 0.02, "sigma^2 {s2}");
    let exact = -0.5 * ((2.0 * std::f64::consts::PI * 0.04).ln() + 1.0);
    assert!((ll - exact).abs() < 1e-4, "{ll} vs {exact}");
    // A floor above the optimum binds; one below it changes nothing.
    let (above, ll_above) = calibrate_sigma2_above(std::slice::from_ref(&f), y.as_ref(), 0.1);
    assert!(
        (0.1..0.1 * 1.02).contains(&above),
        "floored sigma^2 {above}"
    );
    assert!(ll_above < ll);
    let (below, _) = calibrate_sigma2_above(std::slice::from_ref(&f), y.as_ref(), 0.01);
    assert!((below - s2).abs() < 0.04 * 0.02, "{below} vs {s2}");
}

#[test]
fn protocol_on_a_synthetic_problem_gives_calibrated_finite_figures() {
    let n = 240;
    let x = Mat::from_fn(n, 2, |i, j| ((i * (j + 3)) % 17) as f64 / 8.0 - 1.0);
    let noise = |i: usize| ((i * 7919) % 101) as f64 / 101.0 - 0.5;
    let y = Mat::from_fn(n, 1, |i, _| {
        (2.0 * x[(i, 0)]).sin() + x[(i, 1)] + 0.2 * noise(i)
    });
    let (tr, te) = (0..200, 200..n);
    let pick = |m: &Mat<f64>, r: std::ops::Range<usize>| {
        Mat::from_fn(r.len(), m.ncols(), |i, j| m[(r.start + i, j)])
    };
    let (xt, yt) = (pick(&x, tr.clone()), pick(&y, tr));
    let (xs, ys) = (pick(&x, te.clone()), pick(&y, te));
    let split = Split {
        train: (xt.as_ref(), yt.as_ref()),
        test: (xs.as_ref(), ys.as_ref()),
        y_scale: 1.0,
    };
    let options = ProtocolOptions {
        members: 2,
        samples: 40,
        max_iterations: 60,
        ..ProtocolOptions::default()
    };
    let grid = [Method::Bali(BaliConfig {
        gamma: 0.1,
        ..BaliConfig::default()
    })];
    let r = run_split(&grid, &[2, 20, 1], &split, &options, None).unwrap();
    assert!(r.test_ll.is_finite() && r.rmse.is_finite());
    // The noise is uniform on [-0.1, 0.1]: a good fit has RMSE well below the target spread.
    assert!(r.rmse < 0.3, "rmse {}", r.rmse);
    assert!(r.test_ll > -1.0, "test LL {}", r.test_ll);
    assert!(r.coverage.iter().all(|c| (0.0..=1.0).contains(c)));
    assert!(r.coverage[0] <= r.coverage[1] && r.coverage[1] <= r.coverage[2]);
    assert!(r.iterations >= 1 && r.iterations <= 60);
    assert_eq!(r.test_samples.len(), 40);
}

/// `Criterion::Evidence`: the curve holds the Laplace evidence per training row of a network
/// trained on the whole training split (recomputed here for the chosen checkpoint), the
/// predictive noise is the final network's evidence noise, and mini-batch grids are refused.
#[test]
fn selection_by_the_laplace_evidence() {
    let n = 160;
    let x = Mat::from_fn(n, 2, |i, j| ((i * (j + 3)) % 17) as f64 / 8.0 - 1.0);
    let noise = |i: usize| ((i * 7919) % 101) as f64 / 101.0 - 0.5;
    let y = Mat::from_fn(n, 1, |i, _| {
        (2.0 * x[(i, 0)]).sin() + x[(i, 1)] + 0.2 * noise(i)
    });
    let (xt, yt) = (x.subrows(0, 130).to_owned(), y.subrows(0, 130).to_owned());
    let (xs, ys) = (x.subrows(130, 30).to_owned(), y.subrows(130, 30).to_owned());
    let split = Split {
        train: (xt.as_ref(), yt.as_ref()),
        test: (xs.as_ref(), ys.as_ref()),
        y_scale: 1.0,
    };
    let options = ProtocolOptions {
        members: 1,
        samples: 20,
        max_iterations: 40,
        criterion: Criterion::Evidence,
        ..ProtocolOptions::default()
    };
    let config = BaliConfig {
        gamma: 0.1,
        ..BaliConfig::default()
    };
    let grid = [
        Method::Bali(config.clone()),
        Method::Bali(BaliConfig {
            wd: 1.0,
            ..config.clone()
        }),
    ];
    let r = run_split(&grid, &[2, 10, 1], &split, &options, None).unwrap();
    assert!(
        r.test_ll.is_finite() && r.rmse < 0.5,
        "{} {}",
        r.test_ll,
        r.rmse
    );
    let best = r
        .curve
        .iter()
        .find(|c| c.iterations == r.iterations)
        .expect("the chosen checkpoint is on the curve");
    let member = &r.ensemble.members[0];
    let e = member.laplace_evidence(xt.as_ref(), yt.as_ref()).unwrap();
    assert!(
        (e.per_row(130) - best.valid_ll).abs() < 1e-9,
        "{} vs {}",
        e.per_row(130),
        best.valid_ll
    );
    assert_eq!(r.sigma2, e.sigma2);
    assert!(r.curve.iter().all(|c| c.valid_ll <= best.valid_ll));
    let mini = [Method::Bali(BaliConfig {
        batch_size: Some(32),
        ..config
    })];
    let err = run_split(&mini, &[2, 10, 1], &split, &options, None).unwrap_err();
    assert!(err.to_string().contains("full-batch"), "{err}");
}

#[test]
fn uci_command_writes_one_json_line_per_split_and_a_summary() {
    let Some(root) = bali::data::find_uci_root() else {
        eprintln!("skipping: ../shared/data not found (set BALI_DATA to run this test)");
        return;
    };
    let root = root.display().to_string();
    let text = run_cli(&[
        "bali",
        "uci",
        "--data",
        &root,
        "--dataset",
        "yacht",
        "--splits",
        "2",
        "--members",
        "2",
        "--max-iterations",
        "20",
        "--samples",
        "20",
        "--json",
    ])
    .unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3);
    for (k, line) in lines[..2].iter().enumerate() {
        assert_eq!(line["split"], k);
        assert_eq!(line["members"], 2);
        assert!(line["test_ll"].as_f64().unwrap().is_finite());
        assert!(line["rmse"].as_f64().unwrap() > 0.0);
    }
    let s = &lines[2]["summary"];
    for key in [
        "dataset",
        "method",
        "members",
        "splits",
        "test_ll_mean",
        "test_ll_se",
        "rmse_mean",
        "rmse_se",
        "seconds",
    ] {
        assert!(!s[key].is_null(), "summary lacks {key}");
    }
    assert_eq!(s["splits"], 2);
    assert_eq!(s["method"], "bali");
}

#[test]
fn fit_on_a_csv_file_reports_figures_and_writes_plots() {
    let dir = std::env::temp_dir().join(format!("bali-fit-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("toy.csv");
    let mut text = String::from("a,b,target\n");
    for i in 0..120 {
        let a = (i % 13) as f64 / 6.0 - 1.0;
        let b = (i % 7) as f64 / 3.0 - 1.0;
        text.push_str(&format!("{a},{b},{}\n", a * a + 0.5 * b));
    }
    std::fs::write(&csv, text).unwrap();
    let out = run_cli(&[
        "bali",
        "fit",
        "--csv",
        csv.to_str().unwrap(),
        "--target",
        "target",
        "--members",
        "2",
        "--max-iterations",
        "30",
        "--quiet",
        "--out-dir",
        dir.to_str().unwrap(),
    ])
    .unwrap();
    assert!(out.contains("RMSE"), "{out}");
    assert!(dir.join("bali-fit-predictions.png").exists());
    assert!(dir.join("bali-fit-calibration.png").exists());

    // Malformed cell: the error names the line and the column.
    std::fs::write(&csv, "a,b,target\n1,2,3\n4,oops,6\n").unwrap();
    let err = run_cli(&[
        "bali",
        "fit",
        "--csv",
        csv.to_str().unwrap(),
        "--target",
        "target",
        "--quiet",
    ])
    .unwrap_err();
    assert!(err.contains(":3") && err.contains("b"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn training_options_reach_the_method_and_bad_combinations_are_refused() {
    let dir = std::env::temp_dir().join(format!("bali-opts-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("toy.csv");
    let mut text = String::from("a,b,target\n");
    for i in 0..80 {
        let a = (i % 11) as f64 / 5.0 - 1.0;
        let b = (i % 5) as f64 / 2.0 - 1.0;
        text.push_str(&format!("{a},{b},{}\n", a - b * b));
    }
    std::fs::write(&csv, text).unwrap();
    let path = csv.to_str().unwrap();
    let out_dir = dir.to_str().unwrap();
    // Two hidden layers and fixed options: one option set left in the grid (wd and gamma
    // fixed too), the chosen options printed.
    let out = run_cli(&[
        "bali",
        "fit",
        "--csv",
        path,
        "--target",
        "target",
        "--members",
        "1",
        "--max-iterations",
        "5",
        "--quiet",
        "--out-dir",
        out_dir,
        "--hidden",
        "6,4",
        "--alpha",
        "0.7",
        "--gamma",
        "0.3",
        "--wd",
        "0.5",
        "--preconditioner",
        "scalar",
        "--lambda",
        "2",
    ])
    .unwrap();
    assert!(out.contains("2-6-4-1"), "{out}");
    assert!(out.contains("1 option set(s)"), "{out}");
    assert!(
        out.contains("Improved/Scalar alpha=0.7 gamma=0.3 wd=0.5"),
        "{out}"
    );
    // `--formulation paper` turns `bali` into `bali-paper`.
    let out = run_cli(&[
        "bali",
        "fit",
        "--csv",
        path,
        "--target",
        "target",
        "--members",
        "1",
        "--max-iterations",
        "3",
        "--quiet",
        "--out-dir",
        out_dir,
        "--formulation",
        "paper",
        "--alpha",
        "0.2",
    ])
    .unwrap();
    assert!(
        out.contains("bali-paper") && out.contains("Paper/"),
        "{out}"
    );
    // A BALI-only option on the MAP method is an error that names it, not ignored.
    let err = run_cli(&[
        "bali", "fit", "--csv", path, "--target", "target", "--method", "map", "--alpha", "1",
        "--quiet",
    ])
    .unwrap_err();
    assert!(err.contains("alpha") && err.contains("map"), "{err}");
    // `--target` without `--csv` (and the reverse) is refused by the parser.
    assert!(run_cli(&["bali", "fit", "--target", "quality"]).is_err());
    assert!(run_cli(&["bali", "fit", "--csv", path]).is_err());
    // Out-of-range values are refused before training, naming the option.
    let err = run_cli(&[
        "bali",
        "fit",
        "--csv",
        path,
        "--target",
        "target",
        "--gamma=-1",
        "--quiet",
    ])
    .unwrap_err();
    assert!(err.contains("gamma") && err.contains("[0, "), "{err}");
    assert!(run_cli(&["bali", "fit", "--hidden", "0"]).is_err());
    assert!(run_cli(&["bali", "fit", "--preconditioner", "diag"]).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fit_save_then_predict_from_the_model_file() {
    let dir = std::env::temp_dir().join(format!("bali-save-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("toy.csv");
    let mut text = String::from("name,u,v,price\n");
    for i in 0..150 {
        let u = (i % 17) as f64 / 8.0 - 1.0;
        let v = (i % 5) as f64 / 2.0 - 1.0;
        text.push_str(&format!(
            "item{i},{u},{v},{}\n",
            100.0 + 20.0 * u - 10.0 * v * v
        ));
    }
    std::fs::write(&csv, &text).unwrap();
    let model = dir.join("m.safetensors");
    let (path, model_path, out_dir) = (
        csv.to_str().unwrap(),
        model.to_str().unwrap(),
        dir.to_str().unwrap(),
    );
    let out = run_cli(&[
        "bali",
        "fit",
        "--csv",
        path,
        "--target",
        "price",
        "--members",
        "2",
        "--max-iterations",
        "60",
        "--quiet",
        "--out-dir",
        out_dir,
        "--save",
        model_path,
    ])
    .unwrap();
    assert!(out.contains("saved 2 member(s)"), "{out}");
    let predict = |seed: &str| {
        run_cli(&[
            "bali",
            "predict",
            "--model",
            model_path,
            "--csv",
            path,
            "--samples",
            "20",
            "--seed",
            seed,
        ])
        .unwrap()
    };
    let first = predict("3");
    assert_eq!(
        first,
        predict("3"),
        "predictions are deterministic for a seed"
    );
    assert_ne!(first, predict("4"), "the seed reaches the samples");
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines[0], "mean,sd,lower,upper");
    assert_eq!(lines.len(), 151);
    let mut sse = 0.0;
    for (i, line) in lines[1..].iter().enumerate() {
        let v: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
        let (mean, sd, lo, hi) = (v[0], v[1], v[2], v[3]);
        assert!(sd > 0.0 && lo < mean && mean < hi, "row {i}: {line}");
        let u = (i % 17) as f64 / 8.0 - 1.0;
        let w = (i % 5) as f64 / 2.0 - 1.0;
        sse += (mean - (100.0 + 20.0 * u - 10.0 * w * w)).powi(2);
    }
    let rmse = (sse / 150.0).sqrt();
    assert!(rmse < 3.0, "predictions in price units: RMSE {rmse}");
    // The model's columns are found by name; a file without them is an error naming one.
    std::fs::write(&csv, "u,w\n1,2\n").unwrap();
    let err = run_cli(&["bali", "predict", "--model", model_path, "--csv", path]).unwrap_err();
    assert!(err.contains("v"), "{err}");
    // --save with the MAP method, or into a missing folder, is refused before training.
    let err = run_cli(&[
        "bali", "fit", "--method", "map", "--save", model_path, "--quiet",
    ])
    .unwrap_err();
    assert!(err.contains("save"), "{err}");
    let err = run_cli(&[
        "bali",
        "fit",
        "--save",
        "/nonexistent/dir/m.safetensors",
        "--quiet",
    ])
    .unwrap_err();
    assert!(err.contains("folder"), "{err}");
    // A damaged model file is an error naming the file.
    std::fs::write(&model, b"\x10\x00\x00\x00\x00\x00\x00\x00{").unwrap();
    let err = run_cli(&["bali", "predict", "--model", model_path, "--csv", path]).unwrap_err();
    assert!(err.contains("m.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fit_with_one_and_two_threads_saves_the_same_bits() {
    let dir = std::env::temp_dir().join(format!("bali-threads-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("wide.csv");
    // 1300 rows of 730 inputs: the first layer's S_xx on the 1040 training rows
    // (1040 x 731^2 = 5.6e8 flops) is above the threshold where the kernels take a
    // second thread.
    let (rows, d) = (1300, 730);
    let mut text: String = (0..d).map(|j| format!("x{j},")).collect();
    text.push_str("y\n");
    for i in 0..rows {
        let mut y = 0.0;
        for j in 0..d {
            let v = ((i * 31 + j * 17) % 97) as f64 / 48.0 - 1.0;
            if j < 3 {
                y += v;
            }
            text.push_str(&format!("{v},"));
        }
        text.push_str(&format!("{}\n", y.sin()));
    }
    std::fs::write(&csv, &text).unwrap();
    let fit = |threads: &str| {
        let model = dir.join(format!("t{threads}.safetensors"));
        run_cli(&[
            "bali",
            "fit",
            "--csv",
            csv.to_str().unwrap(),
            "--target",
            "y",
            "--hidden",
            "16",
            "--members",
            "1",
            "--alpha",
            "0.5",
            "--gamma",
            "0.1",
            "--wd",
            "1",
            "--preconditioner",
            "kfac",
            "--max-iterations",
            "3",
            "--samples",
            "10",
            "--threads",
            threads,
            "--quiet",
            "--out-dir",
            dir.to_str().unwrap(),
            "--save",
            model.to_str().unwrap(),
        ])
        .unwrap();
        bali::model_file::load(&model).unwrap()
    };
    let (one, two) = (fit("1"), fit("2"));
    let (a, b) = (&one.members[0], &two.members[0]);
    for (l, (pa, pb)) in a.layers().iter().zip(b.layers()).enumerate() {
        assert!(pa.mean == pb.mean, "layer {l} mean");
        assert!(
            pa.row_precision.chol() == pb.row_precision.chol(),
            "layer {l} Lambda"
        );
        assert!(pa.col_cov.chol() == pb.col_cov.chol(), "layer {l} Sigma");
    }
    assert_eq!(a.noise(), b.noise());
    assert_eq!(one.training, two.training, "training state");
    let (ca, cb) = (one.config.unwrap(), two.config.unwrap());
    assert_eq!(
        (ca.threads, cb.threads),
        (1, 2),
        "--threads reaches the options"
    );
    assert_eq!(BaliConfig { threads: 1, ..cb }, ca);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn predict_gives_class_probabilities_for_a_classifier() {
    use bali::model_file::{self, SavedModel};
    use bali::Trainer;
    let dir = std::env::temp_dir().join(format!("bali-classes-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let n = 60;
    let x = Mat::from_fn(n, 2, |i, j| ((i * (3 + j)) % 11) as f64 / 5.0 - 1.0);
    let class = |i: usize| usize::from(x[(i, 0)] > 0.0) + usize::from(x[(i, 1)] > 0.5);
    let y = Mat::from_fn(n, 3, |i, c| if class(i) == c { 1.0 } else { 0.0 });
    // wd = 100 is the setting for thousands of images; 60 rows need a weaker prior.
    let config = BaliConfig {
        wd: 1.0,
        ..BaliConfig::classification()
    };
    let mut t = Trainer::<f64>::new(vec![2, 8, 3], config.clone(), n, 1).unwrap();
    t.fit(x.as_ref(), y.as_ref(), 30, |_, _| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    let mut saved = SavedModel::of_members(vec![t.into_model()]);
    saved.config = Some(config);
    saved.input_names = Some(vec!["u".into(), "v".into()]);
    let model = dir.join("classes.safetensors");
    model_file::save(&model, &saved).unwrap();
    let csv = dir.join("in.csv");
    let mut text = String::from("v,u\n");
    for i in 0..n {
        text.push_str(&format!("{},{}\n", x[(i, 1)], x[(i, 0)]));
    }
    std::fs::write(&csv, text).unwrap();
    let out = run_cli(&[
        "bali",
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--samples",
        "10",
    ])
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "p0,p1,p2,class,entropy,mutual_information");
    assert_eq!(lines.len(), n + 1);
    let mut right = 0;
    for (i, line) in lines[1..].iter().enumerate() {
        let v: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
        let sum = v[0] + v[1] + v[2];
        assert!((sum - 1.0).abs() < 1e-12, "row {i}: {line}");
        assert!(
            v[4] >= 0.0 && v[5] >= 0.0 && v[5] <= v[4] + 1e-12,
            "row {i}: {line}"
        );
        right += usize::from(v[3] as usize == class(i));
    }
    assert!(right as f64 / n as f64 > 0.8, "{right} of {n} right");
    std::fs::remove_dir_all(&dir).ok();
}

/// `bali uci --data DIR --dataset NAME` runs the protocol on any folder in the benchmark
/// layout (here written by the test: 60 rows, 2 splits); an absent folder is named.
#[test]
fn uci_runs_on_a_folder_of_ones_own() {
    let root = std::env::temp_dir().join(format!("bali-own-uci-{}", std::process::id()));
    let dir = root.join("my-set");
    std::fs::create_dir_all(&dir).unwrap();
    let n = 60;
    let mut data = String::new();
    for i in 0..n {
        let (a, b) = ((i % 7) as f64 / 3.0 - 1.0, (i % 11) as f64 / 5.0 - 1.0);
        data += &format!("{a} {b} {}\n", a.sin() + 0.5 * b + 0.01 * (i % 3) as f64);
    }
    let w = |f: &str, s: String| std::fs::write(dir.join(f), s).unwrap();
    w("data.txt", data);
    w("index_features.txt", "0\n1\n".into());
    w("index_target.txt", "2\n".into());
    w("n_splits.txt", "2\n".into());
    w("n_hidden.txt", "8\n".into());
    w("n_epochs.txt", "40\n".into());
    for k in 0..2 {
        let test: Vec<usize> = (0..n).filter(|i| i % 10 == k).collect();
        let train: Vec<usize> = (0..n).filter(|i| i % 10 != k).collect();
        let lines = |v: &[usize]| v.iter().map(|i| format!("{i}\n")).collect::<String>();
        w(&format!("index_train_{k}.txt"), lines(&train));
        w(&format!("index_test_{k}.txt"), lines(&test));
    }
    let root_s = root.to_str().unwrap();
    let out = run_cli(&[
        "bali",
        "uci",
        "--data",
        root_s,
        "--dataset",
        "my-set",
        "--members",
        "1",
        "--max-iterations",
        "20",
        "--no-grid",
        "--samples",
        "10",
        "--json",
    ])
    .unwrap();
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["dataset"], "my-set", "{out}");
    assert_eq!(summary["summary"]["splits"], 2);
    assert!(summary["summary"]["test_ll_mean"]
        .as_f64()
        .unwrap()
        .is_finite());
    let split: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(split["train_rmse"].as_f64().unwrap() > 0.0, "{split}");
    let err = run_cli(&["bali", "uci", "--data", root_s, "--dataset", "no-such-set"]).unwrap_err();
    assert!(
        err.contains("no-such-set") && err.contains("not a folder"),
        "{err}"
    );
    let err = run_cli(&[
        "bali",
        "uci",
        "--data",
        root_s,
        "--dataset",
        "my-set",
        "--patience",
        "0",
    ])
    .unwrap_err();
    assert!(err.contains("--patience"), "{err}");
    std::fs::remove_dir_all(&root).ok();
}

/// `ProtocolOptions::relevance_stage`: on data where 2 of 16 inputs matter, the grid's
/// winner (curvature-scaled `wd = 10` against `wd = 0`) is tried with input relevance
/// determination over every checkpoint to the cap; it wins on the carve, the chosen options
/// say so, and the test fit is better than without the stage. Without it (or with a single
/// grid point) the options are the grid's.
#[test]
fn relevance_stage_prunes_irrelevant_inputs_when_the_carve_says_so() {
    use bali::config::WdScale;
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let (n, d) = (400, 16);
    let x = Mat::from_fn(n, d, |_, _| {
        rng.sample::<f64, _>(rand_distr::StandardNormal)
    });
    let y = Mat::from_fn(n, 1, |i, _| {
        (1.5 * x[(i, 0)]).sin()
            + x[(i, 0)] * x[(i, 1)]
            + 0.2 * rng.sample::<f64, _>(rand_distr::StandardNormal)
    });
    let (xt, yt) = (x.subrows(0, 320).to_owned(), y.subrows(0, 320).to_owned());
    let (xs, ys) = (x.subrows(320, 80).to_owned(), y.subrows(320, 80).to_owned());
    let split = Split {
        train: (xt.as_ref(), yt.as_ref()),
        test: (xs.as_ref(), ys.as_ref()),
        y_scale: 1.0,
    };
    let config = BaliConfig {
        alpha: 1.0,
        gamma: 1.0,
        wd: 10.0,
        wd_scale: WdScale::Curvature,
        ..BaliConfig::default()
    };
    let grid = [
        Method::Bali(config.clone()),
        Method::Bali(BaliConfig {
            wd: 0.0,
            ..config.clone()
        }),
    ];
    let options = ProtocolOptions {
        members: 1,
        samples: 20,
        max_iterations: 300,
        ..ProtocolOptions::default()
    };
    let dims = [d, 20, 1];
    let plain = run_split(&grid, &dims, &split, &options, None).unwrap();
    let staged = ProtocolOptions {
        relevance_stage: true,
        ..options.clone()
    };
    let r = run_split(&grid, &dims, &split, &staged, None).unwrap();
    eprintln!(
        "without the stage [{}] {} iterations: test LL {:.3}, rmse {:.3}; with it [{}] {}: {:.3}, {:.3}",
        plain.options, plain.iterations, plain.test_ll, plain.rmse, r.options, r.iterations, r.test_ll, r.rmse
    );
    assert!(!plain.options.contains("ard"), "{}", plain.options);
    assert!(r.options.contains("ard"), "{}", r.options);
    assert!(r.valid_ll > plain.valid_ll);
    // Every checkpoint to the cap was scored (the patience does not apply).
    assert_eq!(r.curve.last().map(|c| c.iterations), Some(300));
    assert!(
        r.test_ll > plain.test_ll + 0.1,
        "{} vs {}",
        r.test_ll,
        plain.test_ll
    );
    // A single grid point runs no stage.
    let single = run_split(&grid[..1], &dims, &split, &staged, None).unwrap();
    assert!(!single.options.contains("ard"), "{}", single.options);
}
