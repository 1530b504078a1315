//! `bali classify` end to end on the embedded digits (short runs), and on MNIST from
//! ../shared/data when present (a few iterations, to check the loaders and OOD sets).

use bali_cli::{run, Cli};
use clap::Parser;

fn run_cli(args: &[&str]) -> Result<String, String> {
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    run(cli, &mut out).map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).expect("utf-8 output"))
}

fn field(line: &serde_json::Value, name: &str) -> f64 {
    line[name]
        .as_f64()
        .unwrap_or_else(|| panic!("{name} in {line}"))
}

#[test]
fn classify_on_the_embedded_digits_reports_every_metric() {
    for method in ["bali", "bali-paper", "map", "ensemble", "laplace"] {
        let out = run_cli(&[
            "bali",
            "classify",
            "--method",
            method,
            "--max-iterations",
            "20",
            "--members",
            "2",
            "--json",
            "--quiet",
        ])
        .unwrap();
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "one seed, then the summary: {out}");
        let r = &lines[0];
        assert_eq!(r["method"], method);
        // Probabilities of 10 classes: better than chance by far even after 20 iterations.
        assert!(field(r, "accuracy") > 0.8, "{method}: {r}");
        assert!(
            field(r, "nll") > 0.0 && field(r, "nll") < 1.5,
            "{method}: {r}"
        );
        let ece = field(r, "ece");
        assert!((0.0..1.0).contains(&ece), "{method}: {r}");
        let ood = r["ood"].as_array().unwrap();
        assert_eq!(ood.len(), 2, "noise and flipped");
        for o in ood {
            for key in ["auroc_entropy", "auroc_mi", "fpr95_entropy", "fpr95_mi"] {
                assert!((0.0..=1.0).contains(&field(o, key)), "{method}: {o}");
            }
        }
        // Uniform noise is far from any digit: entropy separates it.
        assert!(
            field(&ood[0], "auroc_entropy") > 0.8,
            "{method}: {}",
            ood[0]
        );
        assert_eq!(
            r["shift"].as_array().unwrap().len(),
            13,
            "0 to 180 degrees by 15"
        );
        assert!(lines[1]["summary"].as_bool() == Some(true));
        assert_eq!(r["prior_precision"].is_f64(), method == "laplace", "{r}");
    }
    // The table: one row per method, every metric and OOD set named; the pictures.
    let dir = std::env::temp_dir().join(format!("bali-classify-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let table = run_cli(&[
        "bali",
        "classify",
        "--method",
        "bali,map",
        "--max-iterations",
        "5",
        "--quiet",
        "--out-dir",
        dir.to_str().unwrap(),
    ])
    .unwrap();
    for what in [
        "| bali |",
        "| map |",
        "NLL",
        "Brier",
        "ECE",
        "noise AUROC",
        "flipped FPR95",
        "rotation",
    ] {
        assert!(table.contains(what), "{what} missing from\n{table}");
    }
    for file in [
        "bali-classify-reliability.png",
        "bali-classify-rotation-accuracy.png",
        "bali-classify-rotation-ece.png",
        "bali-classify-entropy-bali.png",
        "bali-classify-entropy-map.png",
    ] {
        let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(&bytes[..4], b"\x89PNG", "{file}");
    }
    std::fs::remove_dir_all(&dir).ok();
    // Bad options are refused by name.
    let e = run_cli(&["bali", "classify", "--method", "swag"]).unwrap_err();
    assert!(e.contains("swag"), "{e}");
    let e = run_cli(&["bali", "classify", "--seeds", "0"]).unwrap_err();
    assert!(e.contains("seeds"), "{e}");
    // BALI's options without a BALI method are refused, not ignored.
    let e = run_cli(&["bali", "classify", "--method", "map", "--wd", "3"]).unwrap_err();
    assert!(e.contains("--wd"), "{e}");
    let e = run_cli(&[
        "bali", "classify", "--method", "ensemble", "--fisher", "sampled",
    ])
    .unwrap_err();
    assert!(e.contains("--fisher"), "{e}");
    // An --out-dir that cannot be created (its parent is a file) is refused before training.
    let file = std::env::temp_dir().join(format!("bali-classify-file-{}", std::process::id()));
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("dir");
    let e = run_cli(&["bali", "classify", "--out-dir", bad.to_str().unwrap()]).unwrap_err();
    assert!(
        e.contains("--out-dir") && e.contains(bad.to_str().unwrap()),
        "{e}"
    );
    std::fs::remove_file(&file).ok();
}

#[test]
fn classify_reads_mnist_and_kmnist_from_the_data_folder() {
    let Some(root) = bali::data::find_data_root() else {
        println!("skipping: ../shared/data not found");
        return;
    };
    let out = run_cli(&[
        "bali",
        "classify",
        "--data",
        root.to_str().unwrap(),
        "--hidden",
        "32",
        "--max-iterations",
        "3",
        "--samples",
        "4",
        "--json",
        "--quiet",
    ])
    .unwrap();
    let r: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(field(&r, "accuracy") > 0.8, "{r}");
    let sets: Vec<&str> = r["ood"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["set"].as_str().unwrap())
        .collect();
    assert_eq!(sets, ["kmnist", "noise", "flipped"]);
}

#[test]
fn classify_a_csv_file_with_string_labels() {
    let dir = std::env::temp_dir().join(format!("bali-classify-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("shapes.csv");
    let mut text = String::from("id,u,v,shape\n");
    for i in 0..150 {
        let (u, v) = (
            ((i * 7) % 13) as f64 / 6.0 - 1.0,
            ((i * 5) % 11) as f64 / 5.0 - 1.0,
        );
        let shape = if u + v > 0.3 {
            "round"
        } else if u > v {
            "square"
        } else {
            "star"
        };
        text.push_str(&format!("item{i},{u},{v},{shape}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let path = csv.to_str().unwrap();
    let out = run_cli(&[
        "bali",
        "classify",
        "--csv",
        path,
        "--target",
        "shape",
        "--method",
        "bali,map",
        "--max-iterations",
        "60",
        "--quiet",
    ])
    .unwrap();
    assert!(
        out.contains("3 classes of `shape` (round, square, star)"),
        "{out}"
    );
    assert!(out.contains("left out (no numbers): id"), "{out}");
    let row = out.lines().find(|l| l.starts_with("| bali |")).unwrap();
    let accuracy: f64 = row
        .split('|')
        .nth(2)
        .unwrap()
        .split('±')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(accuracy > 0.8, "{out}");
    // A target that is not a column, a test fraction that leaves no test row.
    let e = run_cli(&["bali", "classify", "--csv", path, "--target", "colour"]).unwrap_err();
    assert!(e.contains("colour"), "{e}");
    let e = run_cli(&[
        "bali",
        "classify",
        "--csv",
        path,
        "--target",
        "shape",
        "--test-fraction",
        "1",
    ])
    .unwrap_err();
    assert!(e.contains("test-fraction"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
