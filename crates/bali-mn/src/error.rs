//! The crate's error type: every variant says what failed, where (layer, factor) and why.

use std::fmt;

/// `Result` with [`MnError`].
pub type Result<T> = std::result::Result<T, MnError>;

/// Errors of the matrix-normal algebra. Numerical failure and invalid input are values, never
/// panics or NaN outputs.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MnError {
    /// A sample count too small for a Monte Carlo check to detect anything.
    #[error("{samples} samples are too few to check a {dim}-dimensional sampled covariance: its tolerance would exceed {tol} (a covariance 20% off would pass); use at least {needed}")]
    TooFewSamples {
        /// Samples asked for.
        samples: usize,
        /// The fewest that can test.
        needed: usize,
        /// Dimension `pq` of the covariance.
        dim: usize,
        /// Largest tolerance accepted.
        tol: f64,
    },
    /// Cholesky factorization of an SPD factor failed at `pivot` (0-based), after the bounded
    /// jitter retries of the [`crate::JitterPolicy`].
    ///
    /// Display: `layer 1, row precision Lambda_N (51 x 51): not positive definite at pivot 17
    /// (after 3 jitter retries, largest jitter 1.2e-6)`.
    #[error("{factor} ({dim} x {dim}): not positive definite at pivot {pivot} ({})", jitter_text(*.jitter_tries, *.last_jitter))]
    NotPositiveDefinite {
        /// Which factor.
        factor: FactorId,
        /// Its dimension.
        dim: usize,
        /// 0-based index of the first non-positive pivot (of the last attempt).
        pivot: usize,
        /// Number of jitter retries made (0: none allowed or none made).
        jitter_tries: u32,
        /// Largest (last) absolute jitter added to the diagonal; 0 without retries.
        last_jitter: f64,
    },
    /// A NaN or infinite entry in an input.
    #[error("{what}: non-finite value at row {row}, column {col}")]
    NonFinite {
        /// The input, e.g. `"layer input X"` or `"row precision Lambda_N matrix"`.
        what: String,
        /// Row of the first non-finite entry.
        row: usize,
        /// Column of the first non-finite entry.
        col: usize,
    },
    /// Operands of a public operation have incompatible shapes.
    #[error("{op}: shape mismatch, expected {} x {}, got {} x {}", .expected.0, .expected.1, .got.0, .got.1)]
    ShapeMismatch {
        /// The operation and operand, e.g. `"NaturalStats::update (T)"`.
        op: &'static str,
        /// Expected `(rows, cols)`.
        expected: (usize, usize),
        /// Actual `(rows, cols)`.
        got: (usize, usize),
    },
    /// A hyperparameter is out of its domain.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name, e.g. `"beta"`.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What is required.
        reason: &'static str,
    },
    /// The learned column covariance `Sigma = Psi_N / (nu_N - q - 1)` needs `nu_N > q + 1`.
    #[error("{factor}: learned Sigma needs nu_N > q + 1, got nu_N = {nu} with q = {q}")]
    DegreesOfFreedom {
        /// Which factor (the column covariance of a layer).
        factor: FactorId,
        /// Posterior degrees of freedom `nu_N = nu_0 + n~`.
        nu: f64,
        /// Number of columns `q`.
        q: usize,
    },
}

fn jitter_text(tries: u32, last: f64) -> String {
    if tries == 0 {
        "no jitter retries".to_string()
    } else {
        format!(
            "after {tries} jitter {}, largest jitter {last:.1e}",
            if tries == 1 { "retry" } else { "retries" }
        )
    }
}

/// What a Kronecker factor is in the math of ALGORITHM.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorKind {
    /// Posterior row precision `Lambda_N` (p x p).
    RowPrecision,
    /// Column covariance `Sigma` (q x q).
    ColCov,
    /// Damped curvature factor `D_l` (q x q) of the `Improved` formulation.
    Curvature,
    /// Prior row precision `Lambda_0` (p x p).
    PriorPrecision,
    /// Any other SPD matrix (dense reference, user input).
    Matrix,
}

impl fmt::Display for FactorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FactorKind::RowPrecision => "row precision Lambda_N",
            FactorKind::ColCov => "column covariance Sigma",
            FactorKind::Curvature => "curvature factor D",
            FactorKind::PriorPrecision => "prior precision Lambda_0",
            FactorKind::Matrix => "matrix",
        })
    }
}

/// A factor's identity for error messages: its layer (if any) and kind.
///
/// Display: `layer 2, row precision Lambda_N`, or `row precision Lambda_N` without a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorId {
    /// Layer index, `None` outside a network.
    pub layer: Option<usize>,
    /// What the factor is.
    pub kind: FactorKind,
}

impl FactorId {
    /// Posterior row precision `Lambda_N` of `layer`.
    pub fn row_precision(layer: Option<usize>) -> Self {
        FactorId {
            layer,
            kind: FactorKind::RowPrecision,
        }
    }
    /// Column covariance `Sigma` of `layer`.
    pub fn col_cov(layer: Option<usize>) -> Self {
        FactorId {
            layer,
            kind: FactorKind::ColCov,
        }
    }
    /// Curvature factor `D_l` of `layer`.
    pub fn curvature(layer: Option<usize>) -> Self {
        FactorId {
            layer,
            kind: FactorKind::Curvature,
        }
    }
    /// Prior precision `Lambda_0` of `layer`.
    pub fn prior_precision(layer: Option<usize>) -> Self {
        FactorId {
            layer,
            kind: FactorKind::PriorPrecision,
        }
    }
    /// A generic matrix, no layer.
    pub fn matrix() -> Self {
        FactorId {
            layer: None,
            kind: FactorKind::Matrix,
        }
    }
}

impl fmt::Display for FactorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.layer {
            Some(l) => write!(f, "layer {l}, {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_layer_factor_and_pivot() {
        let e = MnError::NotPositiveDefinite {
            factor: FactorId::row_precision(Some(1)),
            dim: 51,
            pivot: 17,
            jitter_tries: 3,
            last_jitter: 1.2e-6,
        };
        assert_eq!(
            e.to_string(),
            "layer 1, row precision Lambda_N (51 x 51): not positive definite at pivot 17 \
             (after 3 jitter retries, largest jitter 1.2e-6)"
        );
        let e = MnError::NotPositiveDefinite {
            factor: FactorId::col_cov(None),
            dim: 2,
            pivot: 0,
            jitter_tries: 0,
            last_jitter: 0.0,
        };
        assert_eq!(
            e.to_string(),
            "column covariance Sigma (2 x 2): not positive definite at pivot 0 (no jitter retries)"
        );
    }

    #[test]
    fn display_other_variants() {
        let e = MnError::ShapeMismatch {
            op: "kron_solve (V)",
            expected: (3, 4),
            got: (4, 3),
        };
        assert_eq!(
            e.to_string(),
            "kron_solve (V): shape mismatch, expected 3 x 4, got 4 x 3"
        );
        let e = MnError::DegreesOfFreedom {
            factor: FactorId::col_cov(Some(0)),
            nu: 3.0,
            q: 2,
        };
        assert!(e
            .to_string()
            .starts_with("layer 0, column covariance Sigma"));
        let e = MnError::NonFinite {
            what: "layer input X".into(),
            row: 4,
            col: 1,
        };
        assert_eq!(
            e.to_string(),
            "layer input X: non-finite value at row 4, column 1"
        );
    }
}
