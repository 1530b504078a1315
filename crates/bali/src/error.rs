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
    /// Reading or writing a model file.
    #[error(transparent)]
    ModelFile(#[from] crate::model_file::ModelFileError),
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
    /// An option outside its accepted range (see [`crate::validate`]).
    #[error("option --{option} = {value} is not accepted: expected {accepted}")]
    OutOfRange {
        /// Option name, as the command line spells it.
        option: &'static str,
        /// Offending value.
        value: String,
        /// The accepted range.
        accepted: String,
    },
    /// A run that needs more memory than the limit (checked before allocating).
    #[error("{what} needs about {} of memory, more than the limit of {} ({}); ask for less{}", crate::validate::human_bytes(*needed), crate::validate::human_bytes(*limit), limit_source, if limit_source.contains("ulimit") { ", or raise `ulimit -v`" } else if limit_source.contains("allocator") { "" } else { ", or set BALI_MEMORY_LIMIT if more is free" })]
    Memory {
        /// What was asked for (the network, members and samples).
        what: String,
        /// Estimated bytes.
        needed: u64,
        /// The limit in bytes.
        limit: u64,
        /// Where the limit comes from.
        limit_source: &'static str,
    },
    /// Every option set of a held-out grid failed numerically.
    #[error("training diverged for every one of the {grid} option sets on the validation carve (the last: {last}); fix the options given (step size, damping, prior) or rescale the data")]
    AllDiverged {
        /// Option sets tried.
        grid: usize,
        /// The last failure, with its options.
        last: String,
    },
    /// An environment variable with a value outside what it accepts.
    #[error("environment variable {name} = {value:?} is not accepted: expected {accepted}")]
    Environment {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it accepts.
        accepted: &'static str,
    },
    /// An output path that cannot be written (checked before any work).
    #[error("--{option} {}: {reason}", path.display())]
    OutputPath {
        /// The option that names the path.
        option: &'static str,
        /// The path.
        path: std::path::PathBuf,
        /// Why it cannot be written.
        reason: String,
    },
    /// A matrix whose shape does not fit the network (rows x columns).
    #[error("{what}: expected {} x {}, got {} x {}", expected.0, expected.1, got.0, got.1)]
    Shape {
        /// Which input.
        what: &'static str,
        /// Expected `(rows, columns)`.
        expected: (usize, usize),
        /// Actual `(rows, columns)`.
        got: (usize, usize),
    },
    /// A layer posterior whose shape does not fit the architecture.
    #[error("layer {layer}: posterior is {} x {}, the architecture needs {} x {}", got.0, got.1, expected.0, expected.1)]
    LayerShape {
        /// Layer index.
        layer: usize,
        /// `(p_l, q_l)` of the architecture.
        expected: (usize, usize),
        /// `(p, q)` given.
        got: (usize, usize),
    },
    /// A different number of layer posteriors than the architecture has layers.
    #[error("{got} layer posteriors for an architecture of {expected} layers")]
    LayerCount {
        /// Layers of the architecture.
        expected: usize,
        /// Posteriors given.
        got: usize,
    },
    /// A call that needs something the model does not have yet.
    #[error("not fitted: the model has no {what}")]
    NotFitted {
        /// What is missing.
        what: &'static str,
    },
    /// A combination of options that this version does not implement.
    #[error("{what} needs {needs}")]
    Unsupported {
        /// What was asked for.
        what: &'static str,
        /// What it needs.
        needs: &'static str,
    },
    /// The eigenvalues of a factor of the Laplace evidence ([`crate::evidence`]) did not
    /// converge (only non-finite or extreme entries do that).
    #[error("layer {layer}: the eigenvalues of the Laplace evidence's {factor} ({dim} x {dim}) did not converge; the network or the data hold non-finite or extreme values")]
    Eigen {
        /// Layer index.
        layer: usize,
        /// Which factor (`A_l = X_l^T X_l / N` or `B_l`).
        factor: &'static str,
        /// Its dimension.
        dim: usize,
    },
    /// A non-finite value appeared where it must not (divergence or bad input).
    #[error("non-finite value in {what}{}, at step {step}: training diverged (try a smaller step size, more damping or a stronger prior) or the input holds extreme values", layer.map(|l| format!(" of layer {l}")).unwrap_or_default())]
    NonFinite {
        /// What quantity.
        what: &'static str,
        /// Layer index, where one applies.
        layer: Option<usize>,
        /// Training step at which it was found.
        step: u64,
    },
}

/// Result with [`BaliError`].
pub type Result<T> = std::result::Result<T, BaliError>;
