//! Kronecker-factored matrix-normal algebra for BALI (ALGORITHM.md sections 2, 4, 6, 7).
//!
//! A layer's posterior `W ~ MN(M_N, Lambda_N^{-1}, Sigma)`, i.e. `vec(W) ~ N(vec(M_N),
//! Sigma kron Lambda_N^{-1})`, is handled through its two factors only:
//!
//! - [`KronFactor`]: an SPD factor with its Cholesky factor, bounded jitter retry
//!   ([`JitterPolicy`], [`JitterReport`]) and solves; [`kron_solve`] for `A^{-1} V B^{-1}`.
//! - [`MatrixNormal`]: log-determinant, log-density, KL divergence, sampling and local
//!   reparameterization moments.
//! - [`Prior`], [`ColCovMode`]: the matrix-normal (inverse-Wishart) prior.
//! - [`NaturalStats`]: EMA of the natural-parameter statistics with bias correction.
//! - [`posterior_step`], [`posterior_from_stats`]: the exact posterior of one layer.
//! - [`dense`]: the dense vec-form reference used by tests and `bali verify dense`.
//!
//! Generic over `f32` and `f64` via [`bali_kernels::Scalar`]. Errors are values
//! ([`MnError`]); invalid input never panics or yields NaN.

mod check;
pub mod dense;
mod error;
mod factor;
mod matrix_normal;
mod posterior;
mod prior;
mod stats;

pub use error::{FactorId, FactorKind, MnError, Result};
pub use factor::{
    kron_solve, kron_solve_in_place, try_kron_solve, JitterPolicy, JitterReport, KronFactor,
};
pub use matrix_normal::MatrixNormal;
pub use posterior::{
    posterior_from_stats, posterior_step, posterior_step_into, PosteriorConfig, PosteriorWorkspace,
};
pub use prior::{ColCovMode, Prior};
pub use stats::NaturalStats;
