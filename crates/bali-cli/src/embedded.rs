//! A small real regression data set compiled into the binary, so that `bali fit` works with no
//! data files: the red-wine-quality data (1599 wines, 11 physico-chemical features, target
//! `quality` 3-8), 23 KB gzip-compressed. Source and license: `crates/bali-cli/data/README.md`
//! (copied from the crate `linfa-datasets` 0.8.1, MIT OR Apache-2.0; data from the UCI
//! Machine Learning Repository, Cortez et al. 2009).

use std::io::Read;
use std::path::Path;

use bali::data::{parse_csv, DataError, Dataset};

const WINE_QUALITY_RED_GZ: &[u8] = include_bytes!("../data/winequality-red.csv.gz");
const WINE_SOURCE: &str = "<embedded winequality-red.csv.gz>";
const DIGITS_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");
const DIGITS_SOURCE: &str = "<embedded digits.csv.gz>";

/// The 8 x 8 handwritten digits (scikit-learn's `load_digits`, UCI optdigits): 1797 images,
/// pixels scaled from 0-16 to `[0, 1]` (`x` is `1797 x 64`, row-major pixels) and labels
/// 0-9. Cannot fail at run time (the embedded file is checked by this module's tests);
/// [`try_digits`] is the fallible form.
pub fn digits() -> (faer::Mat<f64>, Vec<usize>) {
    try_digits().expect("the embedded digits CSV is valid (checked by tests)")
}

/// Decompresses and parses the embedded digits CSV (65 integer columns, the last the label).
pub fn try_digits() -> Result<(faer::Mat<f64>, Vec<usize>), DataError> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_GZ)
        .read_to_string(&mut text)
        .map_err(|source| DataError::Decompress {
            path: DIGITS_SOURCE.into(),
            source,
        })?;
    let names: Vec<String> = (0..65).map(|j| format!("c{j}")).collect();
    let with_header = format!("{}\n{text}", names.join(","));
    let d = parse_csv(&with_header, Path::new(DIGITS_SOURCE), "c64")?;
    let labels = (0..d.y.nrows()).map(|i| d.y[(i, 0)] as usize).collect();
    let x = faer::Mat::from_fn(d.x.nrows(), d.x.ncols(), |i, j| d.x[(i, j)] / 16.0);
    Ok((x, labels))
}

/// The red-wine-quality data: `x` is `1599 x 11`, `y` (`quality`) is `1599 x 1`.
///
/// The embedded file is fixed at compile time and checked by this module's tests, so this
/// cannot fail at run time; [`try_wine_quality`] is the fallible form.
pub fn wine_quality() -> Dataset {
    try_wine_quality().expect("the embedded wine-quality CSV is valid (checked by tests)")
}

/// Decompresses and parses the embedded wine-quality CSV.
pub fn try_wine_quality() -> Result<Dataset, DataError> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(WINE_QUALITY_RED_GZ)
        .read_to_string(&mut text)
        .map_err(|source| DataError::Decompress {
            path: WINE_SOURCE.into(),
            source,
        })?;
    parse_csv(&text, Path::new(WINE_SOURCE), "quality")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_have_expected_shape_and_labels() {
        let (x, labels) = try_digits().unwrap();
        assert_eq!((x.nrows(), x.ncols(), labels.len()), (1797, 64, 1797));
        // First row: 0,0,5,13,9,1,0,0,... label 0.
        assert_eq!(
            (x[(0, 2)], x[(0, 3)], labels[0]),
            (5.0 / 16.0, 13.0 / 16.0, 0)
        );
        let mut counts = [0usize; 10];
        for &l in &labels {
            counts[l] += 1;
        }
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
        assert!((0..64).all(|j| (0..1797).all(|i| (0.0..=1.0).contains(&x[(i, j)]))));
    }

    #[test]
    fn wine_has_expected_shape_names_and_values() {
        let d = try_wine_quality().unwrap();
        assert_eq!((d.x.nrows(), d.x.ncols(), d.y.nrows()), (1599, 11, 1599));
        assert_eq!(d.target_name, "quality");
        assert_eq!(d.feature_names[0], "fixed acidity");
        assert_eq!(d.feature_names[10], "alcohol");
        assert!(d.skipped_columns.is_empty());
        // First row: 7.4,0.7,0,1.9,0.076,11,34,0.9978,3.51,0.56,9.4,5
        assert_eq!(d.x[(0, 0)], 7.4);
        assert_eq!(d.x[(0, 7)], 0.9978);
        assert_eq!(d.y[(0, 0)], 5.0);
        let (lo, hi) = (0..d.y.nrows()).fold((f64::MAX, f64::MIN), |(lo, hi), i| {
            (lo.min(d.y[(i, 0)]), hi.max(d.y[(i, 0)]))
        });
        assert_eq!((lo, hi), (3.0, 8.0));
    }
}
