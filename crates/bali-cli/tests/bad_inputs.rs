//! The `bali` binary on a table of hostile inputs (files written by the test into a
//! throw-away folder, nothing committed): for each, the exit code (2 for a command line that
//! clap refuses, 1 for an error of ours), a phrase of stderr that names the problem, and that
//! no panic message, NaN or hang (a 60 s deadline; every case is refused before training)
//! occurs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A throw-away folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!("bali-bad-inputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch folder");
        Scratch(p)
    }

    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("folder");
        }
        std::fs::write(&path, bytes).expect("write");
        path.display().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    /// A folder in the UCI layout under `uci/<name>`: 30 rows `i, i mod 7, target(i)`, one
    /// split (rows 0..24 train, 24..30 test), then `edit` replaces files.
    fn uci(&self, name: &str, edit: &[(&str, &str)]) {
        let data: String = (0..30)
            .map(|i| format!("{i} {} {}\n", i % 7, (i * i) % 11))
            .collect();
        let train: String = (0..24).map(|i| format!("{i}\n")).collect();
        let test: String = (24..30).map(|i| format!("{i}\n")).collect();
        let mut files = vec![
            ("data.txt", data),
            ("index_features.txt", "0\n1\n".into()),
            ("index_target.txt", "2\n".into()),
            ("n_splits.txt", "1\n".into()),
            ("n_hidden.txt", "4\n".into()),
            ("n_epochs.txt", "40\n".into()),
            ("index_train_0.txt", train),
            ("index_test_0.txt", test),
        ];
        for (f, text) in edit {
            match files.iter_mut().find(|(g, _)| g == f) {
                Some(entry) => entry.1 = text.to_string(),
                None => files.push((f, text.to_string())),
            }
        }
        for (f, text) in files {
            self.file(&format!("uci/{name}/{f}"), text);
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary with `args` (and `env`), with a deadline; returns (exit code, stdout,
/// stderr).
fn run(args: &[String], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bali"));
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("BALI_MEMORY_LIMIT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn bali");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().ok();
            panic!("bali {args:?} hung (killed after 60 s)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A hostile input: what it is, the arguments, the environment, the exit code and a phrase
/// stderr must hold.
type Case<'a> = (&'a str, Vec<String>, Vec<(&'a str, &'a str)>, i32, &'a str);

/// A CSV of `n` rows `a = i, b = i mod 5, y = f(i)`.
fn table(n: usize) -> String {
    let mut s = String::from("a,b,y\n");
    for i in 0..n {
        s += &format!("{i},{},{}\n", i % 5, (i * 7) % 13);
    }
    s
}

fn model_file() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus/model_file/wine_1member.safetensors")
        .display()
        .to_string()
}

#[test]
fn hostile_inputs_get_a_clear_error_and_never_a_panic_nan_or_hang() {
    let s = Scratch::new();
    let csv = s.file("ok.csv", table(60));
    let out = s.path("out");
    let file = s.file("plain-file", "x");
    let constant = s.file(
        "constant.csv",
        "a,y\n1,5\n2,5\n3,5\n4,5\n5,5\n6,5\n7,5\n8,5\n9,5\n10,5\n11,5\n",
    );
    let dup = s.file("dup.csv", "a,y,y\n1,2,3\n2,3,4\n");
    let comma = s.file("comma.csv", "a;b;y\n1,5;2;3\n2,25;3;4\n");
    let mut huge = String::from("a,y\n");
    for i in 0..30 {
        huge += &format!("{},{i}\n", if i % 2 == 0 { "1e308" } else { "-1e308" });
    }
    let huge = s.file("huge.csv", huge);
    let small = s.file("small.csv", table(12));
    let empty = s.file("empty.csv", "");
    let header_only = s.file("header.csv", "a,b,y\n");
    let ragged = s.file("ragged.csv", "a,b,y\n1,2,3\n4,5\n");
    let na = s.file("na.csv", "a,b,y\n1,2,3\nNA,5,6\n");
    let latin1 = s.file("latin1.csv", b"a,b,y\n1,\xe9,3\n".as_slice());
    let float_labels = s.file("float-labels.csv", {
        let mut t = String::from("x,label\n");
        for i in 0..40 {
            t += &format!("{i},{}\n", i as f64 * 0.37);
        }
        t
    });
    let predict_csv = s.file("predict.csv", "alcohol,pH\n10,3\n");
    let truncated = {
        let bytes = std::fs::read(model_file()).expect("model file of the fuzz corpus");
        s.file("truncated.safetensors", &bytes[..bytes.len() / 2])
    };
    let uci = s.path("uci");
    s.uci("ok", &[]);
    s.uci("huge-splits", &[("n_splits.txt", "18446744073709551615\n")]);
    s.uci("empty-test", &[("index_test_0.txt", "")]);
    s.uci("dup-rows", &[("index_train_0.txt", "0\n1\n1\n2\n")]);
    s.uci("dup-features", &[("index_features.txt", "0\n0\n")]);
    s.uci("huge-hidden", &[("n_hidden.txt", "1000000000\n")]);
    s.uci("two-rows", &[("index_train_0.txt", "0\n3\n")]);
    let constant_rows: String = (0..30).map(|i| format!("{i} {} 4\n", i % 7)).collect();
    s.uci("constant", &[("data.txt", &constant_rows)]);
    std::fs::create_dir_all(s.0.join("no-mnist")).unwrap();
    let no_mnist = s.path("no-mnist");
    let model = model_file();
    // A small model of `a, b -> y` of our own, for predictions on extreme inputs.
    let own_model = s.path("own.safetensors");
    let fit_args: Vec<String> = [
        "fit",
        "--quiet",
        "--out-dir",
        &out,
        "--csv",
        &csv,
        "--target",
        "y",
        "--hidden",
        "3",
        "--members",
        "1",
        "--max-iterations",
        "3",
        "--save",
        &own_model,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let (code, _, stderr) = run(&fit_args, &[]);
    assert_eq!(code, 0, "fitting the small model: {stderr}");
    let extreme = s.file("extreme.csv", "a,b\n1e308,1\n2,3\n");
    let under_file = format!("{file}/m.safetensors");

    let fit = |extra: &[&str]| -> Vec<String> {
        [
            "fit",
            "--quiet",
            "--out-dir",
            out.as_str(),
            "--max-iterations",
            "3",
        ]
        .iter()
        .chain(extra)
        .map(|a| a.to_string())
        .collect()
    };
    let csv_fit = |path: &str, extra: &[&str]| -> Vec<String> {
        let mut a = fit(&["--csv", path, "--target", "y"]);
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let uci_run = |name: &str, extra: &[&str]| -> Vec<String> {
        [
            "uci",
            "--data",
            uci.as_str(),
            "--dataset",
            name,
            "--max-iterations",
            "3",
            "--members",
            "1",
        ]
        .iter()
        .chain(extra)
        .map(|a| a.to_string())
        .collect()
    };
    let words = |a: &[&str]| -> Vec<String> { a.iter().map(|x| x.to_string()).collect() };

    // (what, arguments, environment, exit code, phrase of stderr)
    let mut cases: Vec<Case> = vec![
        (
            "no samples",
            fit(&["--samples", "0"]),
            vec![],
            2,
            "--samples",
        ),
        (
            "no members",
            fit(&["--members", "0"]),
            vec![],
            2,
            "--members",
        ),
        (
            "members at u64::MAX",
            fit(&["--members", "18446744073709551615"]),
            vec![],
            2,
            "1..=1000",
        ),
        (
            "cap at u64::MAX",
            fit(&["--max-iterations", "18446744073709551615"]),
            vec![],
            2,
            "--max-iterations",
        ),
        (
            "samples at u64::MAX",
            fit(&["--samples", "18446744073709551615"]),
            vec![],
            2,
            "--samples",
        ),
        (
            "samples not a multiple of members",
            fit(&["--members", "4", "--samples", "6"]),
            vec![],
            1,
            "a multiple",
        ),
        (
            "test fraction 1",
            fit(&["--test-fraction", "1"]),
            vec![],
            2,
            "--test-fraction",
        ),
        (
            "test fraction NaN",
            fit(&["--test-fraction", "nan"]),
            vec![],
            2,
            "--test-fraction",
        ),
        (
            "alpha 1e308",
            fit(&["--alpha", "1e308"]),
            vec![],
            2,
            "--alpha",
        ),
        (
            "lambda NaN",
            fit(&["--lambda", "nan"]),
            vec![],
            2,
            "--lambda",
        ),
        ("beta 1", fit(&["--beta", "1"]), vec![], 2, "--beta"),
        (
            "negative hidden width",
            fit(&["--hidden", "-1"]),
            vec![],
            2,
            "--hidden",
        ),
        (
            "65 hidden layers",
            fit(&["--hidden", &vec!["2"; 65].join(",")]),
            vec![],
            1,
            "hidden",
        ),
        (
            "a network beyond memory",
            fit(&["--hidden", "100000"]),
            vec![("BALI_MEMORY_LIMIT", "1G")],
            1,
            "memory",
        ),
        (
            "a malformed memory limit",
            fit(&["--hidden", "3"]),
            vec![("BALI_MEMORY_LIMIT", "lots")],
            1,
            "BALI_MEMORY_LIMIT",
        ),
        (
            "preconditioner with bali-paper",
            fit(&["--method", "bali-paper", "--preconditioner", "kfac"]),
            vec![],
            1,
            "preconditioner",
        ),
        (
            "wd with bali-paper",
            fit(&["--method", "bali-paper", "--wd", "1"]),
            vec![],
            1,
            "wd",
        ),
        (
            "alpha with map",
            fit(&["--method", "map", "--alpha", "0.5"]),
            vec![],
            1,
            "alpha",
        ),
        (
            "save with map",
            fit(&["--method", "map", "--save", "m.st"]),
            vec![],
            1,
            "save",
        ),
        (
            "save under a file",
            fit(&["--save", &under_file]),
            vec![],
            1,
            "--save",
        ),
        (
            "save to a folder",
            fit(&["--save", &out]),
            vec![],
            1,
            "folder",
        ),
        (
            "out-dir is a file",
            vec![
                "fit".into(),
                "--quiet".into(),
                "--out-dir".into(),
                file.clone(),
            ],
            vec![],
            1,
            "--out-dir",
        ),
        (
            "constant target",
            csv_fit(&constant, &[]),
            vec![],
            1,
            "constant",
        ),
        ("duplicate header", csv_fit(&dup, &[]), vec![], 1, "twice"),
        (
            "decimal commas",
            csv_fit(&comma, &[]),
            vec![],
            1,
            "decimal comma",
        ),
        (
            "values overflowing",
            csv_fit(&huge, &[]),
            vec![],
            1,
            "overflows",
        ),
        (
            "too few training rows",
            csv_fit(&small, &["--test-fraction", "0.5"]),
            vec![],
            1,
            "carve",
        ),
        (
            "test fraction leaving no test row",
            csv_fit(&csv, &["--test-fraction", "0.001"]),
            vec![],
            1,
            "no test row",
        ),
        (
            "empty file",
            csv_fit(&empty, &[]),
            vec![],
            1,
            "no data rows",
        ),
        (
            "header only",
            csv_fit(&header_only, &[]),
            vec![],
            1,
            "no data rows",
        ),
        (
            "ragged row",
            csv_fit(&ragged, &[]),
            vec![],
            1,
            "expected 3 fields",
        ),
        ("NA cell", csv_fit(&na, &[]), vec![], 1, "NA"),
        ("not UTF-8", csv_fit(&latin1, &[]), vec![], 1, "latin1.csv"),
        (
            "unknown target",
            fit(&["--csv", &csv, "--target", "zz"]),
            vec![],
            1,
            "no column",
        ),
        (
            "negative target index",
            fit(&["--csv", &csv, "--target", "-1"]),
            vec![],
            1,
            "no column",
        ),
        (
            "missing csv",
            fit(&["--csv", &s.path("absent.csv"), "--target", "y"]),
            vec![],
            1,
            "absent.csv",
        ),
        (
            "uci: no splits",
            uci_run("ok", &["--splits", "0"]),
            vec![],
            2,
            "--splits",
        ),
        (
            "uci: more splits than the set has",
            uci_run("ok", &["--splits", "3"]),
            vec![],
            1,
            "splits",
        ),
        (
            "uci: empty dataset name",
            uci_run("", &[]),
            vec![],
            1,
            "dataset",
        ),
        (
            "uci: a path as dataset name",
            uci_run("../uci", &[]),
            vec![],
            1,
            "no data set",
        ),
        (
            "uci: n_splits at u64::MAX",
            uci_run("huge-splits", &[]),
            vec![],
            1,
            "n_splits.txt",
        ),
        (
            "uci: empty test list",
            uci_run("empty-test", &[]),
            vec![],
            1,
            "lists no row",
        ),
        (
            "uci: duplicated rows",
            uci_run("dup-rows", &[]),
            vec![],
            1,
            "listed twice",
        ),
        (
            "uci: duplicated features",
            uci_run("dup-features", &[]),
            vec![],
            1,
            "listed twice",
        ),
        (
            "uci: huge n_hidden",
            uci_run("huge-hidden", &[]),
            vec![],
            1,
            "n_hidden.txt",
        ),
        (
            "uci: two training rows",
            uci_run("two-rows", &[]),
            vec![],
            1,
            "carve",
        ),
        (
            "uci: constant target",
            uci_run("constant", &[]),
            vec![],
            1,
            "constant",
        ),
        (
            "uci: samples below members",
            words(&[
                "uci",
                "--data",
                &uci,
                "--dataset",
                "ok",
                "--members",
                "3",
                "--samples",
                "2",
            ]),
            vec![],
            1,
            "a multiple",
        ),
        (
            "uci: patience 0",
            uci_run("ok", &["--patience", "0"]),
            vec![],
            2,
            "--patience",
        ),
        (
            "predict: level 1",
            words(&[
                "predict",
                "--model",
                &model,
                "--csv",
                &predict_csv,
                "--level",
                "1",
            ]),
            vec![],
            2,
            "--level",
        ),
        (
            "predict: missing input column",
            words(&["predict", "--model", &model, "--csv", &predict_csv]),
            vec![],
            1,
            "no column named",
        ),
        (
            "predict: truncated model",
            words(&["predict", "--model", &truncated, "--csv", &predict_csv]),
            vec![],
            1,
            "truncated.safetensors",
        ),
        (
            "predict: model is a folder",
            words(&["predict", "--model", &out, "--csv", &predict_csv]),
            vec![],
            1,
            "out",
        ),
        (
            "predict: missing model",
            words(&[
                "predict",
                "--model",
                &s.path("absent.st"),
                "--csv",
                &predict_csv,
            ]),
            vec![],
            1,
            "absent.st",
        ),
        (
            "predict: samples 0",
            words(&[
                "predict",
                "--model",
                &model,
                "--csv",
                &predict_csv,
                "--samples",
                "0",
            ]),
            vec![],
            2,
            "--samples",
        ),
        (
            "classify: samples with map only",
            words(&["classify", "--method", "map", "--samples", "10"]),
            vec![],
            1,
            "--samples",
        ),
        (
            "classify: no MNIST files",
            words(&["classify", "--data", &no_mnist]),
            vec![],
            1,
            "t10k-images",
        ),
        (
            "classify: one row per class",
            words(&["classify", "--csv", &float_labels, "--target", "label"]),
            vec![],
            1,
            "class",
        ),
        (
            "classify: zero iterations",
            words(&["classify", "--max-iterations", "0"]),
            vec![],
            2,
            "--max-iterations",
        ),
        (
            "curves: not a png",
            words(&[
                "curves",
                "--data",
                &uci,
                "--dataset",
                "ok",
                "--out",
                "c.svg",
            ]),
            vec![],
            1,
            "png",
        ),
        (
            "curves: out under a file",
            words(&[
                "curves",
                "--data",
                &uci,
                "--dataset",
                "ok",
                "--out",
                &format!("{file}/c.png"),
            ]),
            vec![],
            1,
            "--out",
        ),
        (
            "verify: too few samples",
            words(&["verify", "dense", "--samples", "2"]),
            vec![],
            1,
            "too few",
        ),
        (
            "bench: methods that run on no case",
            words(&[
                "bench",
                "train",
                "--cases",
                "uci",
                "--methods",
                "improved_kfac_sampled",
            ]),
            vec![],
            1,
            "methods",
        ),
    ];
    cases.push((
        "predict: inputs that overflow the network",
        words(&["predict", "--model", &own_model, "--csv", &extreme]),
        vec![],
        1,
        "not finite",
    ));
    let mut failures = Vec::new();
    for (what, args, env, code, phrase) in &cases {
        let (got, stdout, stderr) = run(args, env);
        let text = format!("{stdout}{stderr}");
        let ok = got == *code
            && stderr.to_lowercase().contains(&phrase.to_lowercase())
            && !text.contains("panicked")
            && !text.contains("NaN");
        if !ok {
            failures.push(format!(
                "{what}: exit {got} (expected {code}), stderr should name {phrase:?}:\n{stderr}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile inputs misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
