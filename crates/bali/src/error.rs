//! The error type of the top-level crate.

use bali_autodiff::AutodiffError;
use bali_mn::MnError;

/// Everything that can go wrong in training, prediction and the benchmark protocols.
#[derive(Debug, thiserror::Error)]
pub enum BaliError {
    /// Matrix-normal algebra failure (names the layer and factor).
    #[error(transparent)]
    Algebra(#[from] MnError),
    /// Forward or backward pass failure.
    #[error(transparent)]
    Autodiff(#[from] AutodiffError),
    /// Reading or parsing data.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// An option outside its valid range.
    #[error("invalid option {name} = {value}: {reason}")]
    InvalidOption {
        /// Option name.
        name: &'static str,
        /// Offending value.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// Inputs whose shapes do not fit the network.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// Expected shape.
        expected: String,
        /// Actual shape.
        got: String,
    },
    /// A non-finite value appeared where it must not (divergence or bad input).
    #[error("non-finite value in {what} (layer {layer:?}, step {step})")]
    NonFinite {
        /// What quantity.
        what: &'static str,
        /// Layer index, where one applies.
        layer: Option<usize>,
        /// Training step at which it was found.
        step: u64,
    },
    /// Output files (plots, JSON).
    #[error("{path}: {message}")]
    Output {
        /// File that could not be written.
        path: String,
        /// Why.
        message: String,
    },
}

/// Result with [`BaliError`].
pub type Result<T> = std::result::Result<T, BaliError>;
