//! Minimal reverse-mode autodiff for MLPs, as BALI needs it (ALGORITHM.md sections 1, 3, 7).
//!
//! Notation (0-based layers `l = 0..L-1`): input `X_l = [A_{l-1}, 1]` (B x p_l, bias column
//! last, so the bias is the last row of `W_l`), weights `W_l` (p_l x q_l), pre-activation
//! `H_l = X_l W_l`, `A_l = phi(H_l)` for hidden layers, output `F = H_{L-1}`. The objective
//! `ell` is a SUM over the rows of a batch, and `G_l = d ell / d H_l` (B x q_l).
//!
//! The tape is fixed by the architecture: per layer a linear op on the bias-augmented input
//! and (hidden layers) an activation op, then a loss; each op has a matrix forward and
//! backward (no per-scalar nodes). [`Mlp::forward`] records a [`Trace`] (`X_l`, `H_l`,
//! `phi'(H_l)`); [`Mlp::backward`] propagates any output seed `d ell / dF` to every `G_l`,
//! which is what BALI's pseudo-targets and curvature factor need (one backward per output
//! unit: [`Mlp::output_jacobian_backward`], or one stacked pass: [`Mlp::backward_stacked`]).
//! [`Mlp::weight_grads`] gives `dW_l = X_l^T G_l`; [`Adam`] is the baseline optimizer.
//!
//! Generic over `f32` / `f64` ([`bali_kernels::Scalar`]); matrix products are faer's, with
//! the caller's explicit [`faer::Par`].

mod adam;
mod check;
mod error;
mod loss;
mod mlp;
mod ops;

pub use adam::Adam;
pub use bali_kernels::Activation;
pub use error::{AutodiffError, Operand, Result, Shape};
pub use loss::{log_sum_exp_rows, loss_and_seed, softmax_probs, try_softmax_probs, Loss};
pub use mlp::{Mlp, Trace};
