//! Regression data: the UCI benchmark folders of `../shared/data/uci` ([`uci`]), CSV files with
//! a header line ([`csv`]), and per-split standardization and row gathering ([`standardize`]).
//!
//! Everything is `f64` in `faer::Mat<f64>`: inputs `x` are `n x d` (one row per example) and
//! targets `y` are `n x 1`.
//!
//! Errors are [`DataError`] values naming the file, the 1-based line, the column and the
//! offending text; a malformed file never panics and never produces NaNs.

pub mod csv;
pub mod standardize;
pub mod uci;

use std::path::PathBuf;

use faer::Mat;

pub use self::csv::{load_csv, parse_columns, parse_csv};
pub use self::standardize::{split_rows, train_valid_carve, Standardizer};
pub use self::uci::{default_uci_root, find_uci_root, UciDataset, UCI_DATASETS};

/// A regression data set with named columns.
///
/// `x` is `n x d`, `y` is `n x 1`; `feature_names.len() == d`.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Inputs, `n x d`, one row per example.
    pub x: Mat<f64>,
    /// Targets, `n x 1`.
    pub y: Mat<f64>,
    /// Names of the `d` feature columns, in the column order of `x`.
    pub feature_names: Vec<String>,
    /// Name of the target column.
    pub target_name: String,
    /// Columns of the source that held no number at all (text labels, ids) and were left out.
    pub skipped_columns: Vec<String>,
}

impl Dataset {
    /// Number of examples `n`.
    pub fn n_rows(&self) -> usize {
        self.x.nrows()
    }

    /// Number of features `d`.
    pub fn n_features(&self) -> usize {
        self.x.ncols()
    }
}

/// What went wrong while reading a data set, and where.
///
/// Lines and columns are 1-based as an editor shows them; `column` of a UCI file is the
/// whitespace-separated field number, of a CSV file the field number with its header name.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file that the format requires is absent.
    #[error("missing file {path}")]
    MissingFile {
        /// The path that was looked for.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A cell that should hold a number does not.
    #[error(
        "{path}:{line}: column {column}{}: cannot read {token:?} as a number",
        column_label(name)
    )]
    BadNumber {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based field number on that line.
        column: usize,
        /// Header name of the column (CSV), empty when the file has no header.
        name: String,
        /// The text of the cell.
        token: String,
    },
    /// A cell holds NaN or an infinity.
    #[error(
        "{path}:{line}: column {column}{}: value {token:?} is not finite",
        column_label(name)
    )]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based field number on that line.
        column: usize,
        /// Header name of the column (CSV), empty when the file has no header.
        name: String,
        /// The text of the cell.
        token: String,
    },
    /// A line has a different number of fields than the first line (or the header).
    #[error("{path}:{line}: expected {expected} fields, found {found}")]
    RaggedRow {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Number of fields of the first line or header.
        expected: usize,
        /// Number of fields on this line.
        found: usize,
    },
    /// An index file names a row or column outside the data matrix.
    #[error("{path}:{line}: {what} index {index} is out of range (the data has {len} {what}s)")]
    IndexOutOfRange {
        /// The index file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// `"row"` or `"column"`.
        what: &'static str,
        /// The 0-based index read.
        index: usize,
        /// Number of rows or columns of `data.txt`.
        len: usize,
    },
    /// A text file holds a value that is not what the format allows.
    #[error("{path}:{line}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0 for the file as a whole).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A row is both in the training and in the test list of a split.
    #[error("split {split} of {dataset}: row {row} is both in {train} and in {test}")]
    OverlappingSplit {
        /// The data set folder.
        dataset: String,
        /// The split number.
        split: usize,
        /// The 0-based row in both lists.
        row: usize,
        /// The training index file.
        train: PathBuf,
        /// The test index file.
        test: PathBuf,
    },
    /// The file holds no data rows.
    #[error("{path}: no data rows")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A UCI data set name that is neither a folder name nor an alias.
    #[error("unknown UCI data set {name:?}; known: {known}")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The aliases and folder names known.
        known: String,
    },
    /// A split number past `n_splits`.
    #[error("split {split} requested but {dataset} has {n_splits} splits (0..{n_splits})")]
    SplitOutOfRange {
        /// The data set folder.
        dataset: String,
        /// The split asked for.
        split: usize,
        /// Number of splits.
        n_splits: usize,
    },
    /// The target column named does not exist in the CSV header.
    #[error("{path}: no column {target:?} (by name or 0-based index); columns: {available}")]
    UnknownColumn {
        /// The file.
        path: PathBuf,
        /// The name or index asked for.
        target: String,
        /// The header names, comma separated.
        available: String,
    },
    /// The target column holds no numbers.
    #[error("{path}: target column {target:?} is not numeric")]
    NonNumericTarget {
        /// The file.
        path: PathBuf,
        /// The target column's name.
        target: String,
    },
    /// The file has a target but no numeric feature column.
    #[error("{path}: no numeric feature column besides the target {target:?}")]
    NoFeatures {
        /// The file.
        path: PathBuf,
        /// The target column's name.
        target: String,
    },
    /// A gzip stream could not be decompressed.
    #[error("{path}: cannot decompress: {source}")]
    Decompress {
        /// The compressed file.
        path: PathBuf,
        /// The decoder's error.
        source: std::io::Error,
    },
}

fn column_label(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" ({name:?})")
    }
}

/// Reads a whole text file, mapping "not found" to [`DataError::MissingFile`].
pub fn read_text(path: &std::path::Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Parses one numeric cell, rejecting text, NaN and infinities.
pub(crate) fn parse_cell(
    token: &str,
    path: &std::path::Path,
    line: usize,
    column: usize,
    name: &str,
) -> Result<f64, DataError> {
    let value: f64 = token.parse().map_err(|_| DataError::BadNumber {
        path: path.to_path_buf(),
        line,
        column,
        name: name.to_string(),
        token: token.to_string(),
    })?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(DataError::NonFinite {
            path: path.to_path_buf(),
            line,
            column,
            name: name.to_string(),
            token: token.to_string(),
        })
    }
}
