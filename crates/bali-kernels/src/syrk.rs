//! Register-tiled SIMD SYRK for tall-skinny column-major `X` (`B x p`, small `p`).
//!
//! `S <- beta S + c X^T X` on the lower triangle of `S` (`p x p`). Entry `(i, j)` is the dot
//! product of columns `i` and `j` of `X`; the lower triangle is covered by tiles of
//! [`MI`] columns `i` by [`NJ`] columns `j` (12 vector accumulators, plus the 3 + 1 loaded
//! vectors, fit the 16 AVX2 registers), vectorised over the rows `b`. The rows are walked in
//! chunks of [`CHUNK_BYTES`] per column (outermost loop, so a chunk of all columns stays in
//! L2) so that the `j` panel stays in L1 while the `i` tiles stream past it; each tile's lanes
//! are reduced once per chunk and added, times `c`, to `S` (scaled by `beta` beforehand).
//! Diagonal tiles compute a few upper entries that are never stored.
//!
//! faer's triangular matmul runs these shapes about as slowly as the full product `X^T X`;
//! this kernel does half the work (see [`use_small_kernel`] for where it is used).

use crate::Scalar;
use faer::{MatMut, MatRef, Par};
use pulp::Simd;

/// Columns `i` per tile (rows of the tile in `S`).
const MI: usize = 4;
/// Columns `j` per tile (columns of the tile in `S`).
const NJ: usize = 3;
/// Bytes of one column per row chunk: a `NJ`-column panel plus an `MI`-column tile stay in
/// L1 (7 x 4 KiB = 28 KiB of a 32 KiB L1D).
const CHUNK_BYTES: usize = 4096;
/// Largest `p` for which the small kernel is used; beyond it faer's blocked SYRK is already
/// near peak (Zen 4, f64, `B = 1000`: kernel 47 against faer 45 GFLOP/s at `p = 200`, 46
/// against 47 at `p = 256`).
const MAX_P: usize = 200;
/// Fewest rows for which the small kernel is used (and at least `2p`): below, the per-tile
/// lane reductions dominate (f64 `B = 32, p = 50`: 21 against faer 22 GFLOP/s; `B = 64,
/// p = 50`: 31 against 23; `B = 64, p = 128`: 33 against 39).
const MIN_B: usize = 64;
/// With `Par::Rayon`, problems of at least this many flops (`B p^2`) stay on faer's parallel
/// path (the idle two-thread break-even of `crate::par`).
const MAX_SEQ_FLOPS: f64 = 2e7;

/// Rows per chunk: [`CHUNK_BYTES`] of one column.
fn chunk_rows<T>() -> usize {
    (CHUNK_BYTES / core::mem::size_of::<T>()).max(1)
}

/// Whether [`syrk_lower_tall`] should compute `S <- beta S + c X^T X` for `X` of
/// `b x p` with row stride `row_stride`: column-major `X`, `p <= MAX_P`,
/// `b >= max(MIN_B, 2p)`, and either a sequential call or a problem too small for threads to
/// pay.
pub(crate) fn use_small_kernel(b: usize, p: usize, row_stride: isize, par: Par) -> bool {
    row_stride == 1
        && p <= MAX_P
        && b >= MIN_B.max(2 * p)
        && (matches!(par, Par::Seq) || (b as f64) * (p as f64) * (p as f64) < MAX_SEQ_FLOPS)
}

/// `S <- beta S + c X^T X` on the lower triangle (diagonal included) of `S`, single-threaded.
///
/// Shapes: `x` is `B x p` with row stride 1 (columns contiguous), `s` is `p x p` (any
/// strides). The strict upper triangle of `S` is neither read nor written; with `beta = 0`
/// the old lower triangle is not read either (NaN there does not propagate), with `beta = 1`
/// the product is added. Cost `B p^2` flops (the lower triangle of `X^T X` plus a few upper
/// entries of the diagonal tiles).
#[track_caller]
pub(crate) fn syrk_lower_tall<T: Scalar>(mut s: MatMut<'_, T>, x: MatRef<'_, T>, beta: T, c: T) {
    let (b, p) = x.shape();
    assert!(
        s.nrows() == p && s.ncols() == p,
        "syrk_lower_tall: S is {}x{}, X is {b}x{p}",
        s.nrows(),
        s.ncols()
    );
    if p == 0 {
        return;
    }
    // beta first (the strict upper triangle is never touched; beta = 0 writes exact zeros).
    if beta != T::one() {
        for j in 0..p {
            for i in j..p {
                s[(i, j)] = if beta == T::zero() {
                    T::zero()
                } else {
                    beta * s[(i, j)]
                };
            }
        }
    }
    // No allocation: the column slices and the packed panel live on the stack.
    assert!(p <= MAX_P, "syrk_lower_tall: p = {p} > {MAX_P}");
    let mut cols: [&[T]; MAX_P] = [&[]; MAX_P];
    for (j, col) in cols.iter_mut().enumerate().take(p) {
        *col = x
            .col(j)
            .try_as_col_major()
            .expect("syrk_lower_tall: X must have row stride 1")
            .as_slice();
    }
    if b > 0 {
        let mut buf = PanelBuffer([0; NJ * CHUNK_BYTES]);
        let len = NJ * chunk_rows::<T>().min(b);
        assert!(len * core::mem::size_of::<T>() <= NJ * CHUNK_BYTES);
        // SAFETY: `Scalar` is sealed to f32 and f64, for which all-zero bytes are 0.0; the
        // buffer is 64-byte aligned (more than either needs) and holds `len` values (checked
        // above); it is borrowed mutably here only.
        let panel = unsafe { core::slice::from_raw_parts_mut(buf.0.as_mut_ptr().cast::<T>(), len) };
        pulp::Arch::new().dispatch(Kernel {
            cols: &cols[..p],
            stride_bytes: x.col_stride().unsigned_abs() * core::mem::size_of::<T>(),
            panel,
            s,
            c,
        });
    }
}

/// Stack storage of the packed panel: `NJ` columns of [`CHUNK_BYTES`], cache-line aligned.
#[repr(C, align(64))]
struct PanelBuffer([u8; NJ * CHUNK_BYTES]);

/// `S += c X^T X` on the lower triangle, `X` given by its columns.
struct Kernel<'a, 'x, 's, T> {
    cols: &'a [&'x [T]],
    /// Column stride of `X` in bytes.
    stride_bytes: usize,
    /// Packed copy of the current `j` panel's row chunk (`NJ x chunk`, column after column).
    panel: &'a mut [T],
    s: MatMut<'s, T>,
    c: T,
}

impl<T: Scalar> pulp::WithSimd for Kernel<'_, '_, '_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, token: S) {
        let Kernel {
            cols,
            stride_bytes,
            panel,
            mut s,
            c,
        } = self;
        let p = cols.len();
        let b = cols[0].len();
        let chunk = chunk_rows::<T>();
        // Columns whose stride is a multiple of 4 KiB (f64 with B = 512, 1024, ...; f32 with
        // B = 1024, 2048, ...) hit the same L1 sets and banks at every row: copying the
        // panel into a contiguous buffer then pays (measured f64 1024 x 64: 41 -> 46
        // GFLOP/s); otherwise the copy costs 5-20% and is skipped.
        let pack = (cols.len() > 1) && (stride_bytes % 4096 == 0);
        let mut r0 = 0;
        while r0 < b {
            let r1 = (r0 + chunk).min(b);
            let len = r1 - r0;
            let mut j0 = 0;
            while j0 < p {
                let nj = NJ.min(p - j0);
                if pack {
                    for n in 0..nj {
                        panel[n * len..(n + 1) * len].copy_from_slice(&cols[j0 + n][r0..r1]);
                    }
                }
                let mut i0 = j0;
                while i0 < p {
                    let mi = MI.min(p - i0);
                    macro_rules! run {
                        ($m:literal, $n:literal) => {{
                            let d = tile::<T, S, $m, $n>(
                                token,
                                core::array::from_fn(|m| &cols[i0 + m][r0..r1]),
                                core::array::from_fn(|n| {
                                    if pack {
                                        &panel[n * len..(n + 1) * len]
                                    } else {
                                        &cols[j0 + n][r0..r1]
                                    }
                                }),
                            );
                            for n in 0..$n {
                                for m in 0..$m {
                                    // Diagonal tiles: skip the upper entries.
                                    if i0 + m >= j0 + n {
                                        s[(i0 + m, j0 + n)] += c * d[m][n];
                                    }
                                }
                            }
                        }};
                    }
                    match (mi, nj) {
                        (4, 3) => run!(4, 3),
                        (4, 2) => run!(4, 2),
                        (4, 1) => run!(4, 1),
                        (3, 3) => run!(3, 3),
                        (3, 2) => run!(3, 2),
                        (3, 1) => run!(3, 1),
                        (2, 3) => run!(2, 3),
                        (2, 2) => run!(2, 2),
                        (2, 1) => run!(2, 1),
                        (1, 3) => run!(1, 3),
                        (1, 2) => run!(1, 2),
                        (1, 1) => run!(1, 1),
                        _ => unreachable!("tile sizes are at most MI x NJ"),
                    }
                    i0 += mi;
                }
                j0 += nj;
            }
            r0 = r1;
        }
    }
}

/// A slice split into full registers and a tail.
type Split<'a, T, S> = (&'a [<T as crate::simd::SimdReal>::V<S>], &'a [T]);

/// `sum_{b in rows} x[i0 + m][b] x[j0 + n][b]` for `m < M`, `n < N`:
/// `M x N` vector accumulators over the full registers of the row range, a zero-padded
/// partial load for its tail, one lane reduction per entry.
#[inline(always)]
fn tile<T: Scalar, S: Simd, const M: usize, const N: usize>(
    s: S,
    xi: [&[T]; M],
    xj: [&[T]; N],
) -> [[T; N]; M] {
    let xi: [Split<'_, T, S>; M] = core::array::from_fn(|m| T::v_as_simd::<S>(xi[m]));
    let xj: [Split<'_, T, S>; N] = core::array::from_fn(|n| T::v_as_simd::<S>(xj[n]));
    let nv = xj[0].0.len();
    // Equal lengths, so the loop below needs no bounds checks.
    let hi: [&[T::V<S>]; M] = core::array::from_fn(|m| &xi[m].0[..nv]);
    let hj: [&[T::V<S>]; N] = core::array::from_fn(|n| &xj[n].0[..nv]);
    let zero = T::v_splat(s, T::zero());
    let mut acc = [[zero; N]; M];
    for k in 0..nv {
        let bj: [T::V<S>; N] = core::array::from_fn(|n| hj[n][k]);
        for m in 0..M {
            let a = hi[m][k];
            for n in 0..N {
                acc[m][n] = T::v_fma(s, a, bj[n], acc[m][n]);
            }
        }
    }
    if !xj[0].1.is_empty() {
        let bj: [T::V<S>; N] = core::array::from_fn(|n| T::v_load_partial(s, xj[n].1));
        for m in 0..M {
            let a = T::v_load_partial(s, xi[m].1);
            for n in 0..N {
                acc[m][n] = T::v_fma(s, a, bj[n], acc[m][n]);
            }
        }
    }
    let mut out = [[T::zero(); N]; M];
    for m in 0..M {
        for n in 0..N {
            out[m][n] = T::v_reduce_sum(s, acc[m][n]);
        }
    }
    out
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

    /// Runs the kernel on `B x p` data and compares with a scalar triple loop in f64: lower
    /// entries within `tol * (|beta s| + |c| sum_b |x_bi x_bj|)`, upper entries bit-identical
    /// (NaN there included); with `beta = 0` a NaN in the lower triangle must not propagate.
    fn check<T: Scalar>(b: usize, p: usize, beta: f64, c: f64, seed: u64, tol: f64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = random::<T>(b, p, &mut rng);
        let mut s0 = random::<T>(p, p, &mut rng);
        if p > 1 {
            s0[(0, p - 1)] = T::nan();
        }
        if beta == 0.0 && p > 0 {
            s0[(p - 1, 0)] = T::nan();
            s0[(p / 2, p / 2)] = T::nan();
        }
        let mut s = s0.clone();
        syrk_lower_tall(s.as_mut(), x.as_ref(), T::of(beta), T::of(c));
        for j in 0..p {
            for i in 0..p {
                if i < j {
                    assert_eq!(
                        s[(i, j)].to_f64().to_bits(),
                        s0[(i, j)].to_f64().to_bits(),
                        "upper ({i},{j}) written"
                    );
                    continue;
                }
                let (mut dot, mut mag) = (0.0f64, 0.0f64);
                for r in 0..b {
                    let t = x[(r, i)].to_f64() * x[(r, j)].to_f64();
                    dot += t;
                    mag += t.abs();
                }
                let old = if beta == 0.0 {
                    0.0
                } else {
                    beta * s0[(i, j)].to_f64()
                };
                let want = old + c * dot;
                let got = s[(i, j)].to_f64();
                let scale = old.abs() + c.abs() * mag;
                assert!(
                    (got - want).abs() <= tol * scale.max(f64::MIN_POSITIVE),
                    "{} B={b} p={p} beta={beta} c={c} ({i},{j}): {got} vs {want}",
                    T::NAME
                );
            }
        }
    }

    #[test]
    fn matches_scalar_loop_on_edge_shapes() {
        let mut seed = 0;
        for &p in &[1usize, 2, 3, 5, 13, 50, 51, 101, 130] {
            for &b in &[1usize, 3, 7, 455, 1000, 1024] {
                for &beta in &[0.0, 0.3, 1.0] {
                    for &c in &[1.0, 0.7] {
                        seed += 1;
                        check::<f64>(b, p, beta, c, seed, 1e-12);
                        check::<f32>(b, p, beta, c, seed, 1e-4);
                    }
                }
            }
        }
    }

    #[test]
    fn long_columns_span_several_chunks() {
        // 4096 f64 / 8192 f32 rows: 8 chunks, plus a ragged last one.
        check::<f64>(4096 + 5, 7, 0.3, 0.7, 1, 1e-12);
        check::<f32>(8192 + 5, 7, 0.3, 0.7, 2, 1e-4);
    }

    #[test]
    fn strided_destination() {
        let mut rng = StdRng::seed_from_u64(9);
        let x = random::<f64>(300, 20, &mut rng);
        let s0 = random::<f64>(20, 20, &mut rng);
        let mut s_col = s0.clone();
        let mut s_row = s0.transpose().to_owned();
        syrk_lower_tall(s_col.as_mut(), x.as_ref(), 0.9, 0.25);
        syrk_lower_tall(s_row.as_mut().transpose_mut(), x.as_ref(), 0.9, 0.25);
        assert_eq!(s_col, s_row.transpose().to_owned());
    }

    #[test]
    fn dispatch_rule() {
        assert!(use_small_kernel(455, 50, 1, Par::Seq));
        assert!(!use_small_kernel(455, 50, 50, Par::Seq));
        assert!(!use_small_kernel(1024, 401, 1, Par::Seq));
        assert!(use_small_kernel(1000, 101, 1, Par::rayon(2)));
        assert!(!use_small_kernel(32, 50, 1, Par::Seq));
        assert!(!use_small_kernel(128, 101, 1, Par::Seq));
        assert!(!use_small_kernel(100_000, 128, 1, Par::rayon(2)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_scalar_loop(
            b in 1usize..600,
            p in 1usize..70,
            beta in prop_oneof![Just(0.0f64), Just(1.0), 0.0f64..1.0],
            c in prop_oneof![Just(1.0f64), -3.0f64..3.0],
            seed in any::<u64>(),
        ) {
            check::<f64>(b, p, beta, c, seed, 1e-12);
            check::<f32>(b, p, beta, c, seed, 1e-4);
        }
    }
}
