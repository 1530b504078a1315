//! Fused exponential-moving-average updates of natural-parameter statistics
//! (ALGORITHM.md section 4).
//!
//! `beta = 0` overwrites the destination (faer's `Accum::Replace`: old contents, even NaN, are
//! never read), `beta = 1` accumulates directly, any other `beta` scales the destination once
//! with SIMD and then accumulates. The matrix product is faer's GEMM / SYRK.

use crate::{simd, Scalar};
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::reborrow::ReborrowMut;
use faer::{Accum, MatMut, MatRef, Par};
use pulp::Simd;

/// `S <- beta S` on the rows `first_row(j)..` of every column `j` (the lower triangle with
/// `first_row(j) = j`, the whole matrix with 0); `beta = 0` writes exact zeros.
fn scale_columns<T: Scalar>(mut s: MatMut<'_, T>, beta: T, first_row: fn(usize) -> usize) {
    let n = s.nrows();
    if s.row_stride() == 1 {
        struct Scale<'a, T> {
            s: MatMut<'a, T>,
            beta: T,
            first_row: fn(usize) -> usize,
        }
        impl<T: Scalar> pulp::WithSimd for Scale<'_, T> {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, token: S) {
                let Scale {
                    mut s,
                    beta,
                    first_row,
                } = self;
                let n = s.nrows();
                let b = T::v_splat(token, beta);
                for j in 0..s.ncols() {
                    let i0 = first_row(j).min(n);
                    let col = s
                        .rb_mut()
                        .col_mut(j)
                        .subrows_mut(i0, n - i0)
                        .try_as_col_major_mut()
                        .expect("ema: column-major checked")
                        .as_slice_mut();
                    if beta == T::zero() {
                        col.fill(T::zero());
                    } else {
                        simd::map_in_place::<T, S>(
                            token,
                            col,
                            #[inline(always)]
                            |s, v| T::v_mul(s, v, b),
                        );
                    }
                }
            }
        }
        pulp::Arch::new().dispatch(Scale { s, beta, first_row });
    } else {
        for j in 0..s.ncols() {
            for i in first_row(j).min(n)..n {
                let v = if beta == T::zero() {
                    T::zero()
                } else {
                    beta * s[(i, j)]
                };
                s[(i, j)] = v;
            }
        }
    }
}

/// Scales `S` by `beta` unless the product can absorb it; returns the accumulation mode of
/// the product `S <- (scaled S) + c X^T Y`. Without a product (`B = 0` or `c = 0`) only the
/// scaling is applied.
fn prepare<T: Scalar>(
    s: MatMut<'_, T>,
    beta: T,
    has_product: bool,
    first_row: fn(usize) -> usize,
) -> Accum {
    if beta == T::one() {
        Accum::Add
    } else if beta == T::zero() && has_product {
        Accum::Replace
    } else {
        scale_columns(s, beta, first_row);
        Accum::Add
    }
}

fn lower(j: usize) -> usize {
    j
}

fn whole(_: usize) -> usize {
    0
}

/// Fused SYRK-EMA: `S <- beta S + c X^T X`, reading and writing only the lower triangle
/// (diagonal included) of `S`. The strict upper triangle is left untouched. With `beta = 0`
/// the old lower triangle is not read (NaN there is not propagated).
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
    let has_product = x.nrows() > 0 && c != T::zero();
    if has_product && crate::syrk::use_small_kernel(x.nrows(), p, x.row_stride(), par) {
        // Tall-skinny column-major X: register-tiled SIMD kernel (half the work of faer's
        // triangular matmul there); it applies beta itself.
        crate::syrk::syrk_lower_tall(s, x, beta, c);
        return;
    }
    let accum = prepare(s.rb_mut(), beta, has_product, lower);
    if has_product {
        triangular::matmul(
            s,
            BlockStructure::TriangularLower,
            accum,
            x.transpose(),
            BlockStructure::Rectangular,
            x,
            BlockStructure::Rectangular,
            c,
            par,
        );
    }
}

/// Fused GEMM-EMA: `S <- beta S + c X^T T`. With `beta = 0` the old `S` is not read.
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
    let has_product = x.nrows() > 0 && c != T::zero();
    let accum = prepare(s.rb_mut(), beta, has_product, whole);
    if has_product {
        faer::linalg::matmul::matmul(s, accum, x.transpose(), t, c, par);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random<T: Scalar>(m: usize, n: usize, rng: &mut StdRng) -> Mat<T> {
        Mat::from_fn(m, n, |_, _| T::of(rng.random_range(-1.0..1.0)))
    }

    /// `beta S0 + c X^T Y` by a plain loop in f64 (`beta = 0` ignores `S0`).
    fn reference<T: Scalar>(s0: &Mat<T>, x: &Mat<T>, y: &Mat<T>, beta: f64, c: f64) -> Mat<f64> {
        Mat::from_fn(s0.nrows(), s0.ncols(), |i, j| {
            let acc: f64 = (0..x.nrows())
                .map(|k| x[(k, i)].to_f64() * y[(k, j)].to_f64())
                .sum();
            let old = if beta == 0.0 {
                0.0
            } else {
                beta * s0[(i, j)].to_f64()
            };
            old + c * acc
        })
    }

    fn check<T: Scalar>(b: usize, p: usize, q: usize, beta: f64, c: f64, seed: u64, tol: f64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = random::<T>(b, p, &mut rng);
        let y = random::<T>(b, q, &mut rng);
        let mut s0 = random::<T>(p, p, &mut rng);
        if beta == 0.0 && p > 0 {
            s0[(p - 1, 0)] = T::nan(); // must not be read
        }
        let mut s = s0.clone();
        syrk_ema(s.as_mut(), x.as_ref(), T::of(beta), T::of(c), Par::Seq);
        let want = reference(&s0, &x, &x, beta, c);
        for j in 0..p {
            for i in 0..p {
                if i >= j {
                    let d = (s[(i, j)].to_f64() - want[(i, j)]).abs();
                    assert!(d <= tol * (1.0 + want[(i, j)].abs()), "syrk ({i},{j}): {d}");
                } else {
                    assert_eq!(s[(i, j)], s0[(i, j)], "syrk wrote the upper triangle");
                }
            }
        }
        let mut g0 = random::<T>(p, q, &mut rng);
        if beta == 0.0 && p > 0 && q > 0 {
            g0[(0, q - 1)] = T::nan();
        }
        let mut g = g0.clone();
        gemm_ema(
            g.as_mut(),
            x.as_ref(),
            y.as_ref(),
            T::of(beta),
            T::of(c),
            Par::Seq,
        );
        let want = reference(&g0, &x, &y, beta, c);
        for j in 0..q {
            for i in 0..p {
                let d = (g[(i, j)].to_f64() - want[(i, j)]).abs();
                assert!(d <= tol * (1.0 + want[(i, j)].abs()), "gemm ({i},{j}): {d}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn ema_matches_plain_loops(
            b in 0usize..40,
            p in 0usize..40,
            q in 0usize..40,
            beta in prop_oneof![Just(0.0f64), Just(1.0), 0.0f64..1.0],
            c in prop_oneof![Just(0.0f64), -3.0f64..3.0],
            seed in any::<u64>(),
        ) {
            check::<f64>(b, p, q, beta, c, seed, 1e-12);
            check::<f32>(b, p, q, beta, c, seed, 1e-4);
        }
    }

    #[test]
    fn row_major_destination_and_parallel_path() {
        let mut rng = StdRng::seed_from_u64(5);
        let x = random::<f64>(300, 120, &mut rng);
        let s0 = random::<f64>(120, 120, &mut rng);
        let mut s_col = s0.clone();
        let mut s_row = s0.transpose().to_owned();
        syrk_ema(s_col.as_mut(), x.as_ref(), 0.9, 0.25, Par::Seq);
        syrk_ema(
            s_row.as_mut().transpose_mut(),
            x.as_ref(),
            0.9,
            0.25,
            Par::rayon(2),
        );
        let want = reference(&s0, &x, &x, 0.9, 0.25);
        for j in 0..120 {
            for i in j..120 {
                assert!((s_col[(i, j)] - want[(i, j)]).abs() < 1e-11);
                assert!((s_row[(j, i)] - want[(i, j)]).abs() < 1e-11);
            }
        }
    }
}
