//! SIMD dense kernels for BALI on faer and pulp, generic over `f32` and `f64`.
//!
//! - [`syrk_ema`]: fused `S <- beta S + c X^T X`, one (lower) triangle only.
//! - [`gemm_ema`]: fused `S <- beta S + c X^T T`.
//! - [`par_for_flops`]: the parallelism policy (sequential below a flop threshold).
//!
//! Kernels take faer views, write into a caller-owned destination and take an explicit
//! [`faer::Par`]; inside rayon loops pass `Par::Seq`.

mod activation;
mod ema;
mod par;
mod scalar;

pub use activation::Activation;
pub use ema::{gemm_ema, syrk_ema};
pub use par::{par_for_flops, ParPolicy};
pub use scalar::Scalar;
