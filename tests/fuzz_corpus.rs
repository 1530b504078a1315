//! Replays every checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets'
//! bodies (`fuzz/src/lib.rs`, included here by path) on the stable toolchain: each input must
//! return without a panic, and in well under a second. `cargo fuzz run <target>` (nightly)
//! grows the corpora; see docs/fuzzing.md.

use std::path::Path;
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod targets;

/// Runs `target` on every file of `fuzz/corpus/<name>/`; returns how many there were.
fn replay(name: &str, target: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    for path in &files {
        let bytes = std::fs::read(path).expect("corpus file");
        let start = Instant::now();
        let outcome = std::panic::catch_unwind(|| target(&bytes));
        assert!(outcome.is_ok(), "{name}: {} panicked", path.display());
        // Not a timing benchmark: a guard against inputs that hang (debug builds are slow).
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{name}: {} took {:?}",
            path.display(),
            start.elapsed()
        );
    }
    files.len()
}

#[test]
fn csv_corpus() {
    assert!(replay("csv", targets::csv) >= 5);
}

#[test]
fn uci_folder_corpus() {
    assert!(replay("uci_folder", targets::uci_folder) >= 5);
}

#[test]
fn idx_corpus() {
    assert!(replay("idx", targets::idx) >= 4);
}

#[test]
fn npz_corpus() {
    assert!(replay("npz", targets::npz) >= 4);
}

#[test]
fn model_file_corpus() {
    assert!(replay("model_file", targets::model_file) >= 2);
}

#[test]
fn cli_options_corpus() {
    assert!(replay("cli_options", targets::cli_options) >= 5);
}

#[test]
fn posterior_corpus() {
    assert!(replay("posterior", targets::posterior) >= 4);
}
