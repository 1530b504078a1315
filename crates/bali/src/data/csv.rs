//! Reader for delimited text with a header line (CSV).
//!
//! * The first non-blank line names the columns. The delimiter is the most frequent of
//!   `,`, `;` and tab outside quotes on that line (comma on a tie).
//! * Fields may be quoted with `"` (a doubled `""` inside quotes is one quote); blanks around
//!   fields, a UTF-8 byte-order mark and `\r\n` line ends are accepted; blank lines are skipped.
//! * The target column is chosen by header name (exact, then case-insensitive) or by 0-based
//!   index. Every other column that holds numbers is a feature; a column in which no cell is a
//!   number (a text label, an id) is left out and listed in [`Dataset::skipped_columns`].
//! * In a numeric column, a cell that is not a finite number is an error naming the 1-based
//!   line and the column's number and header name.

use std::path::Path;

use faer::Mat;

use super::{parse_cell, read_text, DataError, Dataset};

/// Reads a CSV file; `target` is a header name or a 0-based column index.
pub fn load_csv(path: &Path, target: &str) -> Result<Dataset, DataError> {
    let text = read_text(path)?;
    parse_csv(&text, path, target)
}

/// Parses CSV `text`; `source` is only used to name the origin in errors.
pub fn parse_csv(text: &str, source: &Path, target: &str) -> Result<Dataset, DataError> {
    let (names, rows) = read_table(text, source)?;
    let ncols = names.len();
    let target_col = target_column(&names, target, source)?;

    // A column is numeric when at least one of its cells reads as a number.
    let numeric: Vec<bool> = (0..ncols)
        .map(|j| rows.iter().any(|(_, f)| f[j].parse::<f64>().is_ok()))
        .collect();
    decimal_commas(&names, &rows, &numeric, source)?;
    if !numeric[target_col] {
        return Err(DataError::NonNumericTarget {
            path: source.to_path_buf(),
            target: names[target_col].clone(),
        });
    }
    let feature_cols: Vec<usize> = (0..ncols)
        .filter(|&j| j != target_col && numeric[j])
        .collect();
    if feature_cols.is_empty() {
        return Err(DataError::NoFeatures {
            path: source.to_path_buf(),
            target: names[target_col].clone(),
        });
    }

    let n = rows.len();
    let d = feature_cols.len();
    let mut xs = Vec::with_capacity(n * d);
    let mut ys = Vec::with_capacity(n);
    for (line_no, fields) in &rows {
        for (j, cell) in fields.iter().enumerate() {
            if !numeric[j] {
                continue;
            }
            let v = parse_cell(cell, source, *line_no, j + 1, &names[j])?;
            if j == target_col {
                ys.push(v);
            } else {
                xs.push(v);
            }
        }
    }
    Ok(Dataset {
        x: Mat::from_fn(n, d, |i, j| xs[i * d + j]),
        y: Mat::from_fn(n, 1, |i, _| ys[i]),
        feature_names: feature_cols.iter().map(|&j| names[j].clone()).collect(),
        target_name: names[target_col].clone(),
        skipped_columns: (0..ncols)
            .filter(|&j| !numeric[j])
            .map(|j| names[j].clone())
            .collect(),
    })
}

/// A classification table: numeric features and a class label per row.
#[derive(Clone, Debug)]
pub struct LabelledTable {
    /// Inputs, `n x d`.
    pub x: Mat<f64>,
    /// Class index of every row, in `0..classes.len()`.
    pub labels: Vec<usize>,
    /// The class names (the target column's distinct values: in numeric order when they are
    /// all numbers, else in text order); label `c` is `classes[c]`.
    pub classes: Vec<String>,
    /// Names of the `d` feature columns.
    pub feature_names: Vec<String>,
    /// Name of the target column.
    pub target_name: String,
    /// Columns left out (no cell is a number).
    pub skipped_columns: Vec<String>,
}

/// Parses CSV `text` for classification: the `target` column (header name or 0-based index)
/// holds class labels (integers or strings, trimmed; an empty label is an error naming the
/// line); every other column with a number in it is a feature (each of its cells a finite
/// number), the rest are left out and named. Errors also for fewer than two classes and
/// for a class of one row.
pub fn parse_labelled_csv(
    text: &str,
    source: &Path,
    target: &str,
) -> Result<LabelledTable, DataError> {
    let (names, rows) = read_table(text, source)?;
    let ncols = names.len();
    let target_col = target_column(&names, target, source)?;
    let numeric: Vec<bool> = (0..ncols)
        .map(|j| j != target_col && rows.iter().any(|(_, f)| f[j].parse::<f64>().is_ok()))
        .collect();
    let mut not_text = numeric.clone();
    not_text[target_col] = true;
    decimal_commas(&names, &rows, &not_text, source)?;
    let feature_cols: Vec<usize> = (0..ncols).filter(|&j| numeric[j]).collect();
    if feature_cols.is_empty() {
        return Err(DataError::NoFeatures {
            path: source.to_path_buf(),
            target: names[target_col].clone(),
        });
    }
    let mut raw = Vec::with_capacity(rows.len());
    for (line_no, fields) in &rows {
        let label = fields[target_col].trim();
        if label.is_empty() {
            return Err(DataError::EmptyLabel {
                path: source.to_path_buf(),
                line: *line_no,
                column: target_col + 1,
                target: names[target_col].clone(),
            });
        }
        raw.push(label.to_string());
    }
    let mut classes: Vec<String> = raw.clone();
    classes.sort();
    classes.dedup();
    if classes
        .iter()
        .all(|c| c.parse::<f64>().is_ok_and(f64::is_finite))
    {
        classes.sort_by(|a, b| {
            a.parse::<f64>()
                .unwrap_or(0.0)
                .total_cmp(&b.parse::<f64>().unwrap_or(0.0))
        });
    }
    if classes.len() < 2 {
        return Err(DataError::TooFewClasses {
            path: source.to_path_buf(),
            target: names[target_col].clone(),
            found: classes.len(),
        });
    }
    let labels: Vec<usize> = raw
        .iter()
        .map(|r| classes.iter().position(|c| c == r).unwrap_or(0))
        .collect();
    let (n, d) = (rows.len(), feature_cols.len());
    let mut x = Mat::<f64>::zeros(n, d);
    for (i, (line_no, fields)) in rows.iter().enumerate() {
        for (k, &j) in feature_cols.iter().enumerate() {
            x[(i, k)] = parse_cell(&fields[j], source, *line_no, j + 1, &names[j])?;
        }
    }
    let mut counts = vec![0usize; classes.len()];
    labels.iter().for_each(|&l| counts[l] += 1);
    if let Some(c) = counts.iter().position(|&k| k < 2) {
        return Err(DataError::Degenerate {
            what: source.display().to_string(),
            column: names[target_col].clone(),
            reason: format!(
                "class {:?} has only {} row; every class needs at least 2 (a column with a different value on most rows is a regression target: use bali fit)",
                classes[c], counts[c]
            ),
        });
    }
    Ok(LabelledTable {
        x,
        labels,
        classes,
        feature_names: feature_cols.iter().map(|&j| names[j].clone()).collect(),
        target_name: names[target_col].clone(),
        skipped_columns: (0..ncols)
            .filter(|&j| j != target_col && !numeric[j])
            .map(|j| names[j].clone())
            .collect(),
    })
}

/// The header names and the rows `(1-based line, fields)` of a delimited text, every row with
/// as many fields as the header. Errors: [`DataError::Empty`] (no header or no row),
/// [`DataError::RaggedRow`].
#[allow(clippy::type_complexity)]
fn read_table(
    text: &str,
    source: &Path,
) -> Result<(Vec<String>, Vec<(usize, Vec<String>)>), DataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(DataError::Empty {
            path: source.to_path_buf(),
        });
    };
    let delim = detect_delimiter(header);
    let names = split_fields(header, delim);
    for (j, name) in names.iter().enumerate() {
        if let Some(k) = names[..j].iter().position(|n| n == name) {
            return Err(DataError::DuplicateHeader {
                path: source.to_path_buf(),
                name: name.clone(),
                first: k + 1,
                second: j + 1,
            });
        }
    }
    let ncols = names.len();
    let mut rows: Vec<(usize, Vec<String>)> = Vec::new();
    for (line_no, line) in lines {
        let fields = split_fields(line, delim);
        if fields.len() != ncols {
            return Err(DataError::RaggedRow {
                path: source.to_path_buf(),
                line: line_no,
                expected: ncols,
                found: fields.len(),
            });
        }
        rows.push((line_no, fields));
    }
    if rows.is_empty() {
        return Err(DataError::Empty {
            path: source.to_path_buf(),
        });
    }
    Ok((names, rows))
}

/// Input columns for prediction: the columns named `names` (by header name, exact then
/// case-insensitive), in that order, as an `n x names.len()` matrix, and the header names of
/// the columns left out. Every cell of a chosen column must be a finite number (the error
/// names the line and column). [`DataError::UnknownColumn`] for a name the header lacks.
pub fn parse_columns(
    text: &str,
    source: &Path,
    names: &[String],
) -> Result<(Mat<f64>, Vec<String>), DataError> {
    let (header, rows) = read_table(text, source)?;
    let mut chosen = Vec::with_capacity(names.len());
    for name in names {
        let j = find_column(&header, name)
            .filter(|&j| header[j].eq_ignore_ascii_case(name))
            .ok_or_else(|| DataError::MissingInput {
                path: source.to_path_buf(),
                name: name.clone(),
                available: header.join(", "),
            })?;
        chosen.push(j);
    }
    let (n, d) = (rows.len(), chosen.len());
    let mut x = Mat::<f64>::zeros(n, d);
    for (i, (line_no, fields)) in rows.iter().enumerate() {
        for (k, &j) in chosen.iter().enumerate() {
            x[(i, k)] = parse_cell(&fields[j], source, *line_no, j + 1, &header[j])?;
        }
    }
    let left_out = (0..header.len())
        .filter(|j| !chosen.contains(j))
        .map(|j| header[j].clone())
        .collect();
    Ok((x, left_out))
}

/// [`DataError::DecimalComma`] for the first column that is not numeric (`numeric[j]`
/// false) but whose every non-empty cell is a number written with a decimal comma
/// (`-1,5`, `3,25`; at least one cell with a comma): such a column is another locale's
/// numbers, not text, and must not be left out without a word.
fn decimal_commas(
    names: &[String],
    rows: &[(usize, Vec<String>)],
    numeric: &[bool],
    source: &Path,
) -> Result<(), DataError> {
    for j in (0..names.len()).filter(|&j| !numeric[j]) {
        let mut first = None;
        let all = rows.iter().all(|(line, fields)| {
            let cell = fields[j].as_str();
            if cell.is_empty() {
                return true;
            }
            let ok = cell.contains(',') && cell.replacen(',', ".", 1).parse::<f64>().is_ok();
            if ok && first.is_none() {
                first = Some((*line, cell.to_string()));
            }
            ok || cell.parse::<f64>().is_ok()
        });
        if let (true, Some((line, token))) = (all, first) {
            return Err(DataError::DecimalComma {
                path: source.to_path_buf(),
                line,
                column: j + 1,
                name: names[j].clone(),
                token,
            });
        }
    }
    Ok(())
}

/// [`find_column`], or [`DataError::UnknownColumn`] listing the header.
fn target_column(names: &[String], target: &str, source: &Path) -> Result<usize, DataError> {
    find_column(names, target).ok_or_else(|| DataError::UnknownColumn {
        path: source.to_path_buf(),
        target: target.to_string(),
        available: names.join(", "),
    })
}

/// The column named `target` (exact, then ASCII case-insensitive), else `target` read as a
/// 0-based index.
fn find_column(names: &[String], target: &str) -> Option<usize> {
    let t = target.trim();
    names
        .iter()
        .position(|n| n == t)
        .or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(t)))
        .or_else(|| t.parse::<usize>().ok().filter(|&j| j < names.len()))
}

/// The most frequent of `,`, `;`, tab outside quotes in `header` (comma on ties or none).
fn detect_delimiter(header: &str) -> char {
    let mut counts = [(',', 0usize), (';', 0), ('\t', 0)];
    let mut in_quotes = false;
    for c in header.chars() {
        if c == '"' {
            in_quotes = !in_quotes;
        } else if !in_quotes {
            for (d, k) in counts.iter_mut() {
                if c == *d {
                    *k += 1;
                }
            }
        }
    }
    let mut best = counts[0];
    for &cand in &counts[1..] {
        if cand.1 > best.1 {
            best = cand;
        }
    }
    best.0
}

/// Splits one line at `delim` outside quotes; unquotes and trims each field.
fn split_fields(line: &str, delim: char) -> Vec<String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
        } else if c == '"' && field.trim().is_empty() {
            field.clear();
            in_quotes = true;
        } else if c == delim {
            fields.push(field.trim().to_string());
            field.clear();
        } else {
            field.push(c);
        }
    }
    fields.push(field.trim().to_string());
    fields
}

#[cfg(test)]
mod tests {
    #[test]
    fn prediction_columns_by_name_in_the_model_order() {
        let text = "id,b,A,extra\nx1,2,1,9\nx2,4,3,9\n";
        let names = vec!["a".to_string(), "b".to_string()];
        let (x, left) = parse_columns(text, p(), &names).unwrap();
        assert_eq!(
            (x[(0, 0)], x[(0, 1)], x[(1, 0)], x[(1, 1)]),
            (1.0, 2.0, 3.0, 4.0)
        );
        assert_eq!(left, vec!["id".to_string(), "extra".to_string()]);
        let missing = vec!["c".to_string()];
        assert!(matches!(
            parse_columns(text, p(), &missing),
            Err(DataError::MissingInput { .. })
        ));
        // A text cell in a chosen column names the line and the column.
        let bad = parse_columns("a,b\n1,2\n3,x\n", p(), &names).unwrap_err();
        assert!(bad.to_string().contains(":3"), "{bad}");
    }

    use super::*;

    fn p() -> &'static Path {
        Path::new("toy.csv")
    }

    #[test]
    fn comma_with_quotes_and_text_column() {
        let text = "\u{feff}\"a\", b ,name,\"the y\"\r\n1, 2,x,3\r\n\r\n4,5e-1,\"y, z\",6\r\n";
        let d = parse_csv(text, p(), "the y").unwrap();
        assert_eq!(d.feature_names, vec!["a", "b"]);
        assert_eq!(d.target_name, "the y");
        assert_eq!(d.skipped_columns, vec!["name"]);
        assert_eq!((d.x.nrows(), d.x.ncols()), (2, 2));
        assert_eq!(d.x[(1, 1)], 0.5);
        assert_eq!(d.y[(1, 0)], 6.0);
    }

    #[test]
    fn semicolon_and_tab_are_detected_and_index_selects_target() {
        let d = parse_csv("a;b;c\n1;2;3\n", p(), "0").unwrap();
        assert_eq!(d.target_name, "a");
        assert_eq!(d.feature_names, vec!["b", "c"]);
        assert_eq!(d.y[(0, 0)], 1.0);
        let d = parse_csv("a\tb\n1.5\t2\n", p(), "B").unwrap();
        assert_eq!(d.target_name, "b");
        assert_eq!(d.x[(0, 0)], 1.5);
    }

    #[test]
    fn malformed_cell_reports_line_and_column_name() {
        let err = parse_csv("a,b,y\n1,2,3\n4,oops,6\n", p(), "y").unwrap_err();
        match &err {
            DataError::BadNumber {
                line,
                column,
                name,
                token,
                ..
            } => {
                assert_eq!((*line, *column), (3, 2));
                assert_eq!((name.as_str(), token.as_str()), ("b", "oops"));
            }
            other => panic!("unexpected error {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("toy.csv:3: column 2 (\"b\")"), "{msg}");
    }

    #[test]
    fn structural_errors() {
        assert!(matches!(
            parse_csv("a,b,y\n1,2\n", p(), "y"),
            Err(DataError::RaggedRow {
                line: 2,
                expected: 3,
                found: 2,
                ..
            })
        ));
        assert!(matches!(
            parse_csv("a,b\n1,2\n", p(), "zz"),
            Err(DataError::UnknownColumn { .. })
        ));
        assert!(matches!(
            parse_csv("a,y\nx,u\n", p(), "y"),
            Err(DataError::NonNumericTarget { .. })
        ));
        assert!(matches!(
            parse_csv("a,y\nx,1\n", p(), "y"),
            Err(DataError::NoFeatures { .. })
        ));
        assert!(matches!(
            parse_csv("a,y\n", p(), "y"),
            Err(DataError::Empty { .. })
        ));
        assert!(matches!(
            parse_csv("a,y\n1,inf\n", p(), "y"),
            Err(DataError::NonFinite {
                line: 2,
                column: 2,
                ..
            })
        ));
        assert!(matches!(
            parse_csv("a,y\n1,2\n3,\n", p(), "y"),
            Err(DataError::BadNumber {
                line: 3,
                column: 2,
                ..
            })
        ));
    }

    #[test]
    fn duplicate_headers_and_decimal_commas_are_refused_not_guessed() {
        let e = parse_csv("a,y,a\n1,2,3\n", p(), "a").unwrap_err();
        assert!(
            matches!(
                e,
                DataError::DuplicateHeader {
                    first: 1,
                    second: 3,
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_csv("a;b;y\n1,5;2;3\n2,25;3;4\n", p(), "y").unwrap_err();
        assert!(
            matches!(
                e,
                DataError::DecimalComma {
                    line: 2,
                    column: 1,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("1,5"), "{e}");
        let e = parse_labelled_csv("a;b;y\n1,5;2;u\n2;3;v\n", p(), "y").unwrap_err();
        assert!(matches!(e, DataError::BadNumber { .. }), "{e}");
        let e = parse_labelled_csv("a;b;y\n1,5;2;u\n2,0;3;v\n", p(), "y").unwrap_err();
        assert!(matches!(e, DataError::DecimalComma { .. }), "{e}");
        // A text column with commas inside quotes stays text and is left out.
        let d = parse_csv("name,x,y\n\"Smith, J\",1,2\n\"Doe, A\",2,3\n", p(), "y").unwrap();
        assert_eq!(d.skipped_columns, ["name"]);
    }
}

#[cfg(test)]
mod labelled_tests {
    use super::*;

    #[test]
    fn labelled_csv_maps_labels_to_classes_and_names_problems() {
        let text =
            "id,a,species,b\nx1,1.5,setosa,2\nx2,2.5,virginica,3\nx3,0.5,setosa,1\nx4,1,virginica,0\n";
        let t = parse_labelled_csv(text, Path::new("t.csv"), "species").unwrap();
        assert_eq!(t.classes, ["setosa", "virginica"]);
        assert_eq!(t.labels, [0, 1, 0, 1]);
        assert_eq!(t.feature_names, ["a", "b"]);
        assert_eq!(t.skipped_columns, ["id"]);
        assert_eq!((t.x[(1, 0)], t.x[(2, 1)]), (2.5, 1.0));
        // Integer labels sort numerically (10 after 9), by index too.
        let text = "u,label\n1,10\n2,9\n3,10\n4,9\n";
        let t = parse_labelled_csv(text, Path::new("t.csv"), "1").unwrap();
        assert_eq!(t.classes, ["9", "10"]);
        assert_eq!(t.labels, [1, 0, 1, 0]);
        // A class of one row (a continuous column taken as labels) is refused.
        let e =
            parse_labelled_csv("u,y\n1,0.5\n2,0.7\n3,0.5\n", Path::new("t.csv"), "y").unwrap_err();
        assert!(e.to_string().contains("only 1 row"), "{e}");
        // One class, an empty label, a bad feature cell: errors naming file, line, column.
        let e = parse_labelled_csv("u,y\n1,a\n2,a\n", Path::new("t.csv"), "y").unwrap_err();
        assert!(
            matches!(e, DataError::TooFewClasses { found: 1, .. }),
            "{e}"
        );
        let e = parse_labelled_csv("u,y\n1,a\n2, \n", Path::new("t.csv"), "y").unwrap_err();
        assert!(e.to_string().contains("t.csv:3"), "{e}");
        let e = parse_labelled_csv("u,y\n1,a\nzz,b\n", Path::new("t.csv"), "y").unwrap_err();
        assert!(e.to_string().contains("t.csv:3"), "{e}");
        let e = parse_labelled_csv("u,y\n1,a\n", Path::new("t.csv"), "w").unwrap_err();
        assert!(matches!(e, DataError::UnknownColumn { .. }), "{e}");
    }
}
