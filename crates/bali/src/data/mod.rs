//! Regression data: the UCI benchmark folders of `../shared/data/uci` ([`uci`]), CSV files with
//! a header line ([`csv`]), and per-split standardization and row gathering ([`standardize`]).
//!
//! Everything is `f64` in `faer::Mat<f64>`: inputs `x` are `n x d` (one row per example) and
//! targets `y` are `n x 1`.
//!
//! Errors are [`DataError`] values naming the file, the 1-based line, the column and the
//! offending text; a malformed file never panics and never produces NaNs.

pub mod csv;
pub mod images;
pub mod standardize;
pub mod transforms;
pub mod uci;

use std::path::PathBuf;

use faer::Mat;

pub use self::csv::{load_csv, parse_columns, parse_csv, parse_labelled_csv, LabelledTable};
pub use self::images::{
    check_labels, find_data_root, parse_idx_images, parse_idx_labels, parse_npy_images,
    parse_npy_labels, parse_npz_images, parse_npz_labels, read_idx_images, read_idx_labels,
    read_npz_images, read_npz_labels, Images,
};
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
    /// A column that cannot be learned from (constant, or varying only by rounding).
    #[error("{what}: column {column:?}: {reason}")]
    Degenerate {
        /// The data (file or data set and split).
        what: String,
        /// The column's name.
        column: String,
        /// Why.
        reason: String,
    },
    /// A column whose values overflow a double when standardized.
    #[error("{what}: column {column:?}: {reason}")]
    ValueOverflow {
        /// The data (file or data set and split).
        what: String,
        /// The column's name.
        column: String,
        /// Why.
        reason: String,
    },
    /// Too few rows for the protocol asked of them.
    #[error("{what}: {rows} rows: {needed}")]
    TooFewRows {
        /// The data (file or data set and split).
        what: String,
        /// Rows present.
        rows: usize,
        /// What the protocol needs.
        needed: String,
    },
    /// Two header columns with the same name (a target or input chosen by name would be
    /// ambiguous).
    #[error("{path}: the header names {name:?} twice (columns {first} and {second}); rename one")]
    DuplicateHeader {
        /// The file.
        path: PathBuf,
        /// The repeated name.
        name: String,
        /// 1-based column of its first use.
        first: usize,
        /// 1-based column of its second use.
        second: usize,
    },
    /// A column of numbers written with decimal commas (`1,5`): in another locale's format.
    #[error("{path}:{line}: column {column} ({name:?}) holds {token:?}, a number with a decimal comma; write decimal points (1.5) or quote the column as text")]
    DecimalComma {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Header name.
        name: String,
        /// The cell.
        token: String,
    },
    /// The file holds no data rows.
    #[error("{path}: no data rows")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A data set name that is neither one of the nine benchmark sets nor a folder under the
    /// data root.
    #[error("no data set {name:?}: {dir} is not a folder (the benchmark sets are {known}; any other folder in their layout is read by its name)")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The folder looked for.
        dir: PathBuf,
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
    /// A column the model reads (by name) is absent from the CSV header.
    #[error("{path}: no column named {name:?}, which the model reads; columns: {available}")]
    MissingInput {
        /// The file.
        path: PathBuf,
        /// The model's input name.
        name: String,
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
    /// A classification target cell that is empty.
    #[error("{path}:{line}: column {column} ({target:?}): empty class label")]
    EmptyLabel {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based column number.
        column: usize,
        /// The target column's name.
        target: String,
    },
    /// A classification target column with fewer than two distinct labels.
    #[error(
        "{path}: target column {target:?} has {found} distinct label(s), need at least 2 classes"
    )]
    TooFewClasses {
        /// The file.
        path: PathBuf,
        /// The target column's name.
        target: String,
        /// Distinct labels found.
        found: usize,
    },
    /// A binary file (idx, `.npy`) ends before the header or the data it announces.
    #[error("{path}: truncated: {what} ({expected} bytes), found {found}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was expected, e.g. `header says 10000 images of 28x28`.
        what: String,
        /// Bytes that this part needs.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// A binary file goes on after the data its header announces.
    #[error(
        "{path}: trailing bytes: {what} ({expected} bytes), found {found}{}",
        if *found >= images::TRAILING_COUNT_CAP { " or more" } else { "" }
    )]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// What the header announces, e.g. `header says 10000 labels`.
        what: String,
        /// Bytes of data announced.
        expected: u64,
        /// Bytes of data present (counted up to the data plus 1 GiB).
        found: u64,
    },
    /// An idx file whose magic number is not the one of the kind of file asked for.
    #[error("{path}: idx magic {found} ({meaning}), expected {expected} ({what})")]
    IdxMagic {
        /// The file.
        path: PathBuf,
        /// The magic number read (big-endian `u32`).
        found: u32,
        /// What `found` encodes: element type and dimension count, or "not an idx file".
        meaning: String,
        /// The magic number of the kind asked for (2051 images, 2049 labels).
        expected: u32,
        /// `"images"` or `"labels"`.
        what: &'static str,
    },
    /// Sizes in a header whose product does not fit in memory addresses.
    #[error("{path}: size overflow: {what}")]
    Overflow {
        /// The file.
        path: PathBuf,
        /// The sizes, e.g. `header says 4294967295 images of 65536x65536`.
        what: String,
    },
    /// A `.npy` file that does not start with `\x93NUMPY`.
    #[error("{path}: not a .npy file: starts with \"{found}\", expected \"\\x93NUMPY\"")]
    NpyMagic {
        /// The file (or `archive.npz/member.npy`).
        path: PathBuf,
        /// The first bytes read (up to 6), escaped.
        found: String,
    },
    /// A `.npy` format version other than 1.0 and 2.0.
    #[error("{path}: .npy format version {major}.{minor}, expected 1.0 or 2.0")]
    NpyVersion {
        /// The file (or `archive.npz/member.npy`).
        path: PathBuf,
        /// Major version byte.
        major: u8,
        /// Minor version byte.
        minor: u8,
    },
    /// A `.npy` header that is not the dictionary literal the format prescribes.
    #[error("{path}: bad .npy header: {reason}")]
    NpyHeader {
        /// The file (or `archive.npz/member.npy`).
        path: PathBuf,
        /// What is wrong, with the byte offset in the header text.
        reason: String,
    },
    /// A `.npy` array whose element type is not unsigned bytes.
    #[error("{path}: .npy dtype {descr:?}, expected unsigned bytes '|u1'")]
    NpyDtype {
        /// The file (or `archive.npz/member.npy`).
        path: PathBuf,
        /// The header's `descr`.
        descr: String,
    },
    /// A `.npy` array stored in column-major (Fortran) order.
    #[error("{path}: .npy array is in Fortran order; only C (row-major) order is supported")]
    FortranOrder {
        /// The file (or `archive.npz/member.npy`).
        path: PathBuf,
    },
    /// A `.npy` array with the wrong number of dimensions.
    #[error("{path}: .npy shape {shape} has {ndim} dimensions, expected {expected} ({what})")]
    NpyShape {
        /// The file (or `archive.npz/member.npy`).
        path: PathBuf,
        /// The shape as written, e.g. `(10000, 28)`.
        shape: String,
        /// Its number of dimensions.
        ndim: usize,
        /// Dimensions required (3 for images, 1 for labels).
        expected: usize,
        /// `"images"` or `"labels"`.
        what: &'static str,
    },
    /// A ZIP archive (`.npz`) that cannot be opened or read.
    #[error("{path}: bad zip archive: {reason}")]
    Archive {
        /// The archive.
        path: PathBuf,
        /// The zip reader's message.
        reason: String,
    },
    /// A `.npz` archive that does not hold exactly one member `arr_0.npy`.
    #[error("{path}: expected a single member arr_0.npy, found {members:?}")]
    NpzMembers {
        /// The archive.
        path: PathBuf,
        /// The member names found.
        members: Vec<String>,
    },
    /// A class label outside `0..n_classes`.
    #[error("label {label} at position {index} is out of range for {n_classes} classes")]
    LabelOutOfRange {
        /// 0-based position in the label list.
        index: usize,
        /// The label.
        label: u8,
        /// Number of classes.
        n_classes: usize,
    },
}

fn column_label(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" ({name:?})")
    }
}

/// A read error of `path`: "not found" is [`DataError::MissingFile`], the rest
/// [`DataError::Io`].
pub(crate) fn read_error(path: &std::path::Path, source: std::io::Error) -> DataError {
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
}

/// Reads a whole text file, mapping "not found" to [`DataError::MissingFile`].
pub fn read_text(path: &std::path::Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|source| read_error(path, source))
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
