//! The error type of this crate: every variant says what failed, where (layer, row, column)
//! and with which shapes.

use std::fmt;

/// `rows x cols` of a matrix, displayed as `"rows x cols"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape(pub usize, pub usize);

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.0, self.1)
    }
}

/// Which operand of an operation an error refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// The network input `A_0 = X_in` (B x d_0).
    Input,
    /// The weight matrix `W_l` of a layer (p_l x q_l).
    Weights {
        /// 0-based layer index.
        layer: usize,
    },
    /// An additive offset `O_l` on the pre-activation `H_l` (B x q_l).
    Offset {
        /// 0-based layer index.
        layer: usize,
    },
    /// The network output `F = H_{L-1}` handed to a loss (B x q_L).
    Output,
    /// Regression targets `Y` (B x q_L).
    Targets,
    /// A backward seed `d ell / dF` (B x q_L, or a multiple of B rows when stacked).
    Seed,
    /// A weight gradient handed to an optimizer (p_l x q_l).
    Gradient {
        /// 0-based layer index.
        layer: usize,
    },
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Input => write!(f, "input"),
            Operand::Weights { layer } => write!(f, "weights of layer {layer}"),
            Operand::Offset { layer } => write!(f, "pre-activation offset of layer {layer}"),
            Operand::Output => write!(f, "network output"),
            Operand::Targets => write!(f, "targets"),
            Operand::Seed => write!(f, "backward seed"),
            Operand::Gradient { layer } => write!(f, "gradient of layer {layer}"),
        }
    }
}

/// Errors of the MLP autodiff. Shapes are `rows x cols`; layers are 0-based.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AutodiffError {
    /// `Mlp::new` needs at least two layer widths, all positive.
    #[error("invalid layer widths {dims:?}: {reason}")]
    InvalidDims {
        /// The widths `d_0..d_L` that were given.
        dims: Vec<usize>,
        /// Why they are invalid.
        reason: &'static str,
    },
    /// A list of per-layer matrices has the wrong length.
    #[error("{what}: expected {expected} layers, got {got}")]
    LayerCount {
        /// What the list holds (`"weights"`, `"offsets"`, ...).
        what: &'static str,
        /// Number of layers of the network.
        expected: usize,
        /// Length of the list.
        got: usize,
    },
    /// A matrix has a shape that does not fit the network.
    #[error("shape mismatch in {operand}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Which matrix.
        operand: Operand,
        /// The shape the network requires.
        expected: Shape,
        /// The shape that was given.
        got: Shape,
    },
    /// A trace does not belong to this network (wrong number of layers or a layer's
    /// stored input / pre-activation / derivative has the wrong shape).
    #[error(
        "trace does not fit the network at layer {layer}: {what} is {got}, expected {expected}"
    )]
    TraceMismatch {
        /// 0-based layer index (or the number of layers when the layer count is wrong).
        layer: usize,
        /// Which stored matrix (`"input X_l"`, `"pre-activation H_l"`, `"derivative"`).
        what: &'static str,
        /// The shape the network requires.
        expected: Shape,
        /// The stored shape.
        got: Shape,
    },
    /// `forward_from` was asked to start at a layer the network does not have.
    #[error("start layer {start} out of range for a network of {layers} layers")]
    StartOutOfRange {
        /// Requested start layer.
        start: usize,
        /// Number of layers `L`.
        layers: usize,
    },
    /// An output unit index is out of range.
    #[error("output unit {unit} out of range: the network has {outputs} outputs")]
    OutputUnitOutOfRange {
        /// Requested unit `k`.
        unit: usize,
        /// Number of outputs `q_L`.
        outputs: usize,
    },
    /// The number of class labels differs from the batch size.
    #[error("labels: expected {expected} (one per row of the output), got {got}")]
    LabelCount {
        /// Batch size `B`.
        expected: usize,
        /// Number of labels.
        got: usize,
    },
    /// A class label is not in `0..classes`.
    #[error("label {label} of row {row} out of range: the output has {classes} classes")]
    LabelOutOfRange {
        /// Row of the batch.
        row: usize,
        /// The offending label.
        label: usize,
        /// Number of classes `K = q_L`.
        classes: usize,
    },
    /// A matrix entry is NaN or infinite.
    #[error("non-finite value {value} in {operand} at row {row}, column {col}")]
    NonFinite {
        /// Which matrix.
        operand: Operand,
        /// Row of the first non-finite entry (column-major scan order).
        row: usize,
        /// Column of that entry.
        col: usize,
        /// The entry, as `f64`.
        value: f64,
    },
    /// A scalar parameter is out of its domain (e.g. `sigma2 <= 0`, Adam `beta1 >= 1`).
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// Name of the parameter.
        name: &'static str,
        /// Its value as `f64`.
        value: f64,
        /// The domain it must lie in.
        reason: &'static str,
    },
}

/// `Result` with [`AutodiffError`].
pub type Result<T, E = AutodiffError> = std::result::Result<T, E>;
