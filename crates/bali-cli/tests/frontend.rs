//! The frontend's own pieces: the embedded red-wine data and the PNG figures.

use std::path::PathBuf;

use bali::data::{find_uci_root, UciDataset};
use bali::metrics::calibration_levels;
use bali_cli::{embedded, plot};

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("bali-cli-{tag}-{}", std::process::id()));
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

#[test]
fn embedded_wine_equals_the_uci_wine_folder() {
    let wine = embedded::wine_quality();
    assert_eq!((wine.x.nrows(), wine.x.ncols()), (1599, 11));
    assert_eq!(wine.feature_names.len(), 11);
    let Some(root) = find_uci_root() else {
        println!("skipping: ../shared/data not found");
        return;
    };
    let uci = UciDataset::load(&root, "wine").unwrap();
    assert_eq!(uci.x, wine.x);
    assert_eq!(uci.y, wine.y);
}

// ---------------------------------------------------------------------------------------------
// Plots

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

#[test]
fn plots_write_png_files() {
    let t = TempDir::new("plot");
    let y: Vec<f64> = (0..40).map(|i| i as f64 / 4.0).collect();
    let m: Vec<f64> = y.iter().map(|v| v + (v * 3.0).sin() * 0.5).collect();
    let lo: Vec<f64> = m.iter().map(|v| v - 1.0).collect();
    let hi: Vec<f64> = m.iter().map(|v| v + 1.0).collect();
    let p1 = t.0.join("pvt.png");
    plot::predicted_vs_true(&p1, &y, &m, &lo, &hi, "toy: predicted vs true").unwrap();
    assert_eq!(png_size(&std::fs::read(&p1).unwrap()), (900, 700));

    let p2 = t.0.join("cal.png");
    let levels = calibration_levels();
    let obs: Vec<f64> = levels.iter().map(|l| l * l).collect();
    plot::calibration_plot(&p2, &levels, &obs).unwrap();
    assert_eq!(png_size(&std::fs::read(&p2).unwrap()), (700, 700));

    let p3 = t.0.join("curves.png");
    let series = vec![
        (
            "train".to_string(),
            (0..50)
                .map(|i| (i as f64, -1.0 / (1.0 + i as f64)))
                .collect(),
        ),
        (
            "test".to_string(),
            (0..50)
                .map(|i| (i as f64, -1.2 / (1.0 + 0.5 * i as f64)))
                .collect(),
        ),
    ];
    plot::curves(
        &p3,
        "log-likelihood",
        "iteration",
        "mean log-likelihood",
        &series,
    )
    .unwrap();
    let bytes = std::fs::read(&p3).unwrap();
    assert_eq!(png_size(&bytes), (900, 700));
    assert!(bytes.len() > 5_000, "a drawn figure, not a blank image");

    let bad = plot::calibration_plot(&t.0.join("x.png"), &levels, &obs[..3]);
    assert!(matches!(bad, Err(plot::PlotError::Length { .. })));
}
