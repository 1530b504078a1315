//! SIMD dense kernels for BALI on faer and pulp, generic over `f32` and `f64`.
//!
//! - [`syrk_ema`]: fused `S <- beta S + c X^T X`, one (lower) triangle only.
//! - [`gemm_ema`]: fused `S <- beta S + c X^T T`.
//! - [`cholesky_lower_in_place`]: `A = L L^T`, errors as [`KernelError`] values.
//! - Triangular solves with a Cholesky factor from either side
//!   ([`solve_lower_in_place`], [`solve_lower_transpose_in_place`],
//!   [`solve_right_lower_in_place`], [`solve_right_lower_transpose_in_place`]), the Kronecker
//!   solve [`solve_kronecker_in_place`] (`V <- A^{-1} V B^{-1}`) and the sampling product
//!   [`right_mul_lower_transpose`] (`Y <- Y R^T`).
//! - [`Activation`]: `phi` and `phi'` with SIMD `exp`/`tanh` (a few ulp from `std`).
//! - [`softmax_rows`], [`log_softmax_rows`], [`logsumexp_rows`]: row-wise, max-shifted.
//! - [`par_for_flops`]: the parallelism policy (sequential below a flop threshold).
//!
//! Kernels take faer views, write into a caller-owned destination and take an explicit
//! [`faer::Par`]; inside rayon loops pass `Par::Seq`. Shape mismatches are programmer errors
//! (assertions); numerical failures are [`KernelError`] values.
//!
//! Single-thread f64 on the Zen 4 development machine: Cholesky 40-46 GFLOP/s at
//! `n = 512..2048` (scipy/OpenBLAS 16-26), triangular solves 43-46 GFLOP/s at `n = k = 1024`,
//! Kronecker factor + solve 44 GFLOP/s at `p = q = 1024`, SYRK-EMA 50 GFLOP/s at
//! `(B, p) = (1024, 1024)` (1.3x NumPy's `beta S + c X.T @ X`).

mod activation;
mod cholesky;
mod elementwise;
mod ema;
mod error;
mod gelu;
mod par;
mod scalar;
mod simd;
mod softmax;
mod syrk;
mod triangular;

pub use activation::Activation;
pub use cholesky::cholesky_lower_in_place;
pub use elementwise::{all_finite, column_sq_norms_into, sub_scaled_in_place, sub_scaled_into};
pub use ema::{gemm_ema, syrk_ema};
pub use error::KernelError;
pub use par::{par_for_flops, ParPolicy};
pub use scalar::Scalar;
pub use softmax::{log_softmax_rows, logsumexp_rows, logsumexp_rows_into, softmax_rows};
pub use triangular::{
    right_mul_lower_transpose, right_mul_lower_transpose_into, solve_kronecker_in_place,
    solve_lower_in_place, solve_lower_transpose_in_place, solve_right_lower_in_place,
    solve_right_lower_transpose_in_place,
};
