//! Fused exponential-moving-average updates of natural-parameter statistics
//! (ALGORITHM.md section 4).

use crate::Scalar;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};

/// Scales the lower triangle (diagonal included) of `s` by `beta`; `beta = 0` writes exact zeros
/// (so NaN or garbage in `s` is not propagated).
fn scale_lower<T: Scalar>(mut s: MatMut<'_, T>, beta: T) {
    let n = s.nrows();
    for j in 0..n {
        for i in j..n {
            let v = if beta == T::zero() {
                T::zero()
            } else {
                beta * s[(i, j)]
            };
            s[(i, j)] = v;
        }
    }
}

/// Fused SYRK-EMA: `S <- beta S + c X^T X`, reading and writing only the lower triangle
/// (diagonal included) of `S`. The strict upper triangle is left untouched.
///
/// Shapes: `x` is `B x p`, `s` is `p x p`. Cost `B p^2` flops (ALGORITHM.md section 7).
#[track_caller]
pub fn syrk_ema<T: Scalar>(mut s: MatMut<'_, T>, x: MatRef<'_, T>, beta: T, c: T, par: Par) {
    let p = x.ncols();
    assert!(
        s.nrows() == p && s.ncols() == p,
        "syrk_ema: S is {}x{}, X is {}x{}",
        s.nrows(),
        s.ncols(),
        x.nrows(),
        p
    );
    scale_lower(s.as_mut(), beta);
    triangular::matmul(
        s,
        BlockStructure::TriangularLower,
        Accum::Add,
        x.transpose(),
        BlockStructure::Rectangular,
        x,
        BlockStructure::Rectangular,
        c,
        par,
    );
}

/// Fused GEMM-EMA: `S <- beta S + c X^T T`.
///
/// Shapes: `x` is `B x p`, `t` is `B x q`, `s` is `p x q`. Cost `2 B p q` flops.
#[track_caller]
pub fn gemm_ema<T: Scalar>(
    mut s: MatMut<'_, T>,
    x: MatRef<'_, T>,
    t: MatRef<'_, T>,
    beta: T,
    c: T,
    par: Par,
) {
    assert!(
        x.nrows() == t.nrows() && s.nrows() == x.ncols() && s.ncols() == t.ncols(),
        "gemm_ema: S is {}x{}, X is {}x{}, T is {}x{}",
        s.nrows(),
        s.ncols(),
        x.nrows(),
        x.ncols(),
        t.nrows(),
        t.ncols()
    );
    for j in 0..s.ncols() {
        for i in 0..s.nrows() {
            let v = if beta == T::zero() {
                T::zero()
            } else {
                beta * s[(i, j)]
            };
            s[(i, j)] = v;
        }
    }
    faer::linalg::matmul::matmul(s, Accum::Add, x.transpose(), t, c, par);
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    #[test]
    fn syrk_ema_matches_loop() {
        let (b, p) = (7, 5);
        let x = Mat::<f64>::from_fn(b, p, |i, j| ((i * 3 + j * 7) % 11) as f64 - 5.0);
        let mut s = Mat::<f64>::from_fn(p, p, |i, j| (i + 2 * j) as f64);
        let s0 = s.clone();
        syrk_ema(s.as_mut(), x.as_ref(), 0.5, 2.0, Par::Seq);
        for j in 0..p {
            for i in 0..p {
                if i >= j {
                    let mut acc = 0.0;
                    for k in 0..b {
                        acc += x[(k, i)] * x[(k, j)];
                    }
                    assert!((s[(i, j)] - (0.5 * s0[(i, j)] + 2.0 * acc)).abs() < 1e-12);
                } else {
                    assert_eq!(s[(i, j)], s0[(i, j)]);
                }
            }
        }
    }
}
