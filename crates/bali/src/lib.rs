//! BALI: Bayesian neural networks learned by exact layerwise inference.
//!
//! Every layer of an MLP is a multivariate Bayesian linear regression on pseudo-targets; its
//! posterior is matrix-normal with a Kronecker-factored covariance (see `bali-mn`). This crate
//! holds the training loop ([`train::Bali`], both formulations of ALGORITHM.md section 3), the
//! Monte Carlo predictive ([`predict`]), the MAP baseline ([`map`]), metrics, data loading and
//! the held-out benchmark protocol ([`experiment`]). Frontends (the `bali` command line in
//! `crates/bali-cli`) are built on it; nothing here parses arguments, draws or prints.

pub mod config;
pub mod data;
pub mod error;
pub mod experiment;
pub mod map;
pub mod metrics;
pub mod predict;
pub mod train;

pub use config::{BaliConfig, Formulation, Preconditioner, SigmaSpec};
pub use error::{BaliError, Result};
pub use train::Bali;
