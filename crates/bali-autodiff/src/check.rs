//! Validation helpers: shapes and finiteness, reported as [`AutodiffError`] values.

use crate::error::{AutodiffError, Operand, Result, Shape};
use bali_kernels::Scalar;
use faer::MatRef;

/// Shape of a view.
pub(crate) fn shape_of<T>(m: MatRef<'_, T>) -> Shape {
    Shape(m.nrows(), m.ncols())
}

/// `Ok` when `m` is `rows x cols`, else [`AutodiffError::ShapeMismatch`] naming `operand`.
pub(crate) fn expect_shape<T>(
    m: MatRef<'_, T>,
    operand: Operand,
    rows: usize,
    cols: usize,
) -> Result<()> {
    if m.nrows() == rows && m.ncols() == cols {
        Ok(())
    } else {
        Err(AutodiffError::ShapeMismatch {
            operand,
            expected: Shape(rows, cols),
            got: shape_of(m),
        })
    }
}

/// `Ok` when every entry of `m` is finite, else [`AutodiffError::NonFinite`] naming the first
/// offending entry in column-major order.
pub(crate) fn expect_finite<T: Scalar>(m: MatRef<'_, T>, operand: Operand) -> Result<()> {
    // Vectorized scan first; the indexed one below only locates the bad entry.
    if bali_kernels::all_finite(m) {
        return Ok(());
    }
    for col in 0..m.ncols() {
        for row in 0..m.nrows() {
            let v = m[(row, col)];
            if !v.is_finite() {
                return Err(AutodiffError::NonFinite {
                    operand,
                    row,
                    col,
                    value: v.to_f64(),
                });
            }
        }
    }
    Ok(())
}
