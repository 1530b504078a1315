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
    // The table: every metric and OOD set named.
    let table = run_cli(&["bali", "classify", "--max-iterations", "5", "--quiet"]).unwrap();
    for what in [
        "test accuracy",
        "test NLL",
        "test Brier",
        "test ECE",
        "OOD noise",
        "OOD flipped",
        "rotation",
    ] {
        assert!(table.contains(what), "{what} missing from\n{table}");
    }
    // Bad options are refused by name.
    let e = run_cli(&["bali", "classify", "--method", "swag"]).unwrap_err();
    assert!(e.contains("swag"), "{e}");
    let e = run_cli(&["bali", "classify", "--seeds", "0"]).unwrap_err();
    assert!(e.contains("seeds"), "{e}");
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
