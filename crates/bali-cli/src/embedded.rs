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
