//! Errors of the dense kernels: numerical failures are values, shape mismatches assert.

/// A dense kernel could not produce a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// Cholesky `A = L L^T` failed: the Schur complement's diagonal entry at `pivot` (0-based)
    /// was not positive, so `A` is not (numerically) positive definite.
    #[error(
        "Cholesky factorization failed: the matrix is not positive definite \
         (non-positive pivot at index {pivot})"
    )]
    NotPositiveDefinite {
        /// 0-based index of the first non-positive pivot.
        pivot: usize,
    },
    /// The `dim x dim` input has a NaN or infinite entry at (`row`, `col`) of the triangle read.
    #[error("Cholesky input ({dim}x{dim}) has a non-finite entry at ({row}, {col})")]
    NonFinite {
        /// Row of the first non-finite entry found.
        row: usize,
        /// Column of the first non-finite entry found.
        col: usize,
        /// Order of the matrix.
        dim: usize,
    },
}
