//! The ops of the MLP tape, each a forward and a backward on whole matrices (no per-scalar
//! nodes), in the spirit of dfdx's `f` / `df` pairs:
//!
//! - [`linear`]: `H = X W` on a bias-augmented input `X = [A, 1]`;
//! - [`activation`]: `A = phi(H)`, recording `phi'(H)` for the backward.
//!
//! The losses live in [`crate::loss`]. Shapes are checked by the callers ([`crate::Mlp`]);
//! the ops assert them with `#[track_caller]` (programmer errors).

pub(crate) mod activation;
pub(crate) mod linear;
