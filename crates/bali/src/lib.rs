//! BALI: Bayesian neural networks learned by exact layerwise inference.
//!
//! Every layer of an MLP is a multivariate Bayesian linear regression on pseudo-targets; its
//! posterior is matrix-normal with a Kronecker-factored covariance (see `bali-mn`).
//!
//! - [`model::BayesianMlp`]: the fitted model (architecture, likelihood, layer posteriors,
//!   standardization, predictive noise) and its predictive ([`model::PredictMode`]); what is
//!   saved and handed to other frontends.
//! - [`train::Trainer`]: fits a model with both formulations of ALGORITHM.md section 3
//!   (`fit`, `partial_fit` on one batch; a second `fit` resumes where the first stopped).
//! - [`likelihood::Likelihood`]: the seam between the loop and the task.
//! - [`config::BaliConfig`]: every option of ALGORITHM.md section 5, in one place;
//!   [`method`]: methods, presets and their options grids.
//! - [`model_file`]: fitted models and ensembles in safetensors files (JSON metadata).
//! - [`predict::Ensemble`]: equal mixtures of K members; [`map`]: the MAP baseline (Adam);
//!   [`metrics`], [`data`] (UCI folders, CSV, standardization) and the held-out protocol
//!   ([`experiment`]).
//!
//! Frontends (the `bali` command line in `crates/bali-cli`) are built on this crate; nothing
//! here parses arguments, draws or prints.

pub mod calibration;
pub mod classify;
pub mod config;
pub mod data;
pub mod error;
pub mod evidence;
pub mod experiment;
pub mod laplace;
pub mod likelihood;
pub mod map;
pub mod method;
pub mod metrics;
pub mod model;
pub mod model_file;
pub mod predict;
pub mod train;
pub mod validate;

pub use config::{BaliConfig, Fisher, Formulation, Preconditioner, SigmaSpec, WdScale};
pub use error::{BaliError, Result};
pub use likelihood::Likelihood;
pub use method::{Learner, Method, Overrides, Preset};
pub use model::{BayesianMlp, CategoricalPrediction, LogitSamples, PredictMode};
pub use predict::Ensemble;
pub use train::{Trainer, TrainerState};
