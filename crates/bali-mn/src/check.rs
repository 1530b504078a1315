//! Input validation shared by the public operations (private).

use crate::error::{MnError, Result};
use bali_kernels::Scalar;
use faer::{Mat, MatRef};

/// `Err(NonFinite)` naming the first NaN/inf entry of `m` (column-major scan).
pub(crate) fn finite<T: Scalar>(m: MatRef<'_, T>, what: impl FnOnce() -> String) -> Result<()> {
    // Fast vectorized scan first; the indexed scan below only runs to locate a bad entry.
    if bali_kernels::all_finite(m) {
        return Ok(());
    }
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            if !num_traits::Float::is_finite(m[(i, j)]) {
                return Err(MnError::NonFinite {
                    what: what(),
                    row: i,
                    col: j,
                });
            }
        }
    }
    Ok(())
}

/// Like [`finite`] on the lower triangle (diagonal included) only.
pub(crate) fn finite_lower<T: Scalar>(
    m: MatRef<'_, T>,
    what: impl FnOnce() -> String,
) -> Result<()> {
    let n = m.nrows();
    if (0..m.ncols().min(n)).all(|j| bali_kernels::all_finite(m.submatrix(j, j, n - j, 1))) {
        return Ok(());
    }
    for j in 0..m.ncols() {
        for i in j..m.nrows() {
            if !num_traits::Float::is_finite(m[(i, j)]) {
                return Err(MnError::NonFinite {
                    what: what(),
                    row: i,
                    col: j,
                });
            }
        }
    }
    Ok(())
}

/// `Err(ShapeMismatch)` unless `got == expected`.
pub(crate) fn shape(op: &'static str, expected: (usize, usize), got: (usize, usize)) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(MnError::ShapeMismatch { op, expected, got })
    }
}

/// `Err(InvalidParameter)` unless `value` is finite and `> 0`.
pub(crate) fn positive(name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(MnError::InvalidParameter {
            name,
            value,
            reason: "must be finite and > 0",
        })
    }
}

/// Full symmetric copy of `m` built from its lower triangle: `S_ij = m_max(i,j),min(i,j)`.
pub(crate) fn sym_from_lower<T: Scalar>(m: MatRef<'_, T>) -> Mat<T> {
    let n = m.nrows();
    Mat::from_fn(n, n, |i, j| if i >= j { m[(i, j)] } else { m[(j, i)] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_names_first_bad_entry() {
        let mut m = Mat::<f64>::zeros(3, 2);
        m[(2, 0)] = f64::INFINITY;
        m[(1, 1)] = f64::NAN;
        match finite(m.as_ref(), || "X".into()) {
            Err(MnError::NonFinite { what, row, col }) => {
                assert_eq!((what.as_str(), row, col), ("X", 2, 0))
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut u = Mat::<f64>::zeros(2, 2);
        u[(0, 1)] = f64::NAN;
        assert!(finite_lower(u.as_ref(), || "U".into()).is_ok());
        assert!(finite(u.as_ref(), || "U".into()).is_err());
    }

    #[test]
    fn positive_and_shape() {
        assert!(positive("rho", 1.0).is_ok());
        assert!(positive("rho", 0.0).is_err());
        assert!(positive("rho", f64::NAN).is_err());
        assert!(shape("op", (2, 3), (2, 3)).is_ok());
        assert!(matches!(
            shape("op", (2, 3), (3, 2)),
            Err(MnError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn sym_from_lower_mirrors() {
        let m = Mat::<f64>::from_fn(3, 3, |i, j| if i >= j { (i * 3 + j) as f64 } else { -1.0 });
        let s = sym_from_lower(m.as_ref());
        for i in 0..3 {
            for j in 0..3 {
                assert_eq!(s[(i, j)], s[(j, i)]);
                assert_eq!(s[(i.max(j), i.min(j))], m[(i.max(j), i.min(j))]);
            }
        }
    }
}
