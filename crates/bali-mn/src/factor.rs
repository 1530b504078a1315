//! SPD Kronecker factors with their Cholesky factors, and the Kronecker solve.
//!
//! A [`KronFactor`] holds an SPD matrix `A` (n x n) and its lower Cholesky factor `L`,
//! `A = L L^T`. The posterior covariance of a layer, `Sigma kron Lambda_N^{-1}` (ALGORITHM.md
//! section 2), is handled through the two factors `Lambda_N` (p x p) and `Sigma` (q x q) only;
//! the pq x pq matrix is never formed.
//!
//! Accuracy bounds: see [`KronFactor`].

use crate::check;
use crate::error::{FactorId, MnError, Result};
use bali_kernels::Scalar;
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::{Mat, MatMut, MatRef, Par};

/// Bounded diagonal jitter retry for a failed Cholesky factorization.
///
/// On failure the factorization is retried on `A + j_k I`, with
/// `j_k = initial_relative * mean(|diag A|) * 10^k` for `k = 0..max_tries` (`mean(|diag A|)`
/// is replaced by 1 when it is 0). Each retry starts from the original `A` (jitter is not
/// cumulative). Every retry is reported in [`JitterReport`] and in
/// [`MnError::NotPositiveDefinite`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterPolicy {
    /// Maximum number of retries (0: fail at once).
    pub max_tries: u32,
    /// First jitter relative to the mean absolute diagonal.
    pub initial_relative: f64,
}

impl JitterPolicy {
    /// No jitter: a non-positive pivot is an error at once.
    pub const NONE: JitterPolicy = JitterPolicy {
        max_tries: 0,
        initial_relative: 0.0,
    };

    /// Up to `max_tries` retries starting at `initial_relative * mean(|diag A|)`.
    pub fn bounded(max_tries: u32, initial_relative: f64) -> Self {
        JitterPolicy {
            max_tries,
            initial_relative,
        }
    }

    fn check(&self) -> Result<()> {
        if self.max_tries > 0 {
            check::positive("jitter.initial_relative", self.initial_relative)?;
        }
        Ok(())
    }
}

impl Default for JitterPolicy {
    fn default() -> Self {
        JitterPolicy::NONE
    }
}

/// What the jitter retry did: `tries == 0` means no jitter was used; `added` is the absolute
/// amount added to the diagonal of the stored matrix.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JitterReport {
    /// Number of retries made (the last one succeeded).
    pub tries: u32,
    /// Absolute diagonal jitter in the stored matrix.
    pub added: f64,
}

/// An SPD matrix `A` (dim x dim) with its lower Cholesky factor `L`, `A = L L^T`.
///
/// # Accuracy
///
/// With `kappa(A)` the 2-norm condition number, `eps` the unit roundoff of `T` and `n` the
/// dimension, Cholesky and the triangular solves are backward stable (Higham, *Accuracy and
/// Stability of Numerical Algorithms*, 2nd ed., Thm 8.5 and 10.3-10.4): the computed result
/// is exact for some `A + dA` with `||dA|| <= c n eps ||A||`. Hence
///
/// - [`KronFactor::solve_in_place`]: `||X^ - X||_F / ||X||_F <= c n kappa(A) eps`;
/// - [`KronFactor::log_det`]: `|logdet^ - logdet| <= |tr(A^{-1} dA)| <= c n^2 kappa(A) eps`;
/// - [`kron_solve`] (`X = A^{-1} V B^{-1}`): `||X^ - X||_F / ||X||_F <= c (p + q) kappa(A)
///   kappa(B) eps`. The two solves compound (the additive `kappa(A) + kappa(B)` does not hold
///   when both factors are ill-conditioned); the dense solve of the pq x pq system has the
///   same `kappa(B kron A) = kappa(A) kappa(B)`.
///
/// The tests (`tests/matrix_normal_dense.rs`) assert the last two bounds with `c = 1` in `f64`
/// for condition numbers up to `1e10` (`kappa(A) kappa(B) <= 1e10` for the solve); the largest
/// measured ratio of error to bound over a few thousand random cases was about 0.25.
#[derive(Clone, Debug)]
pub struct KronFactor<T> {
    matrix: Mat<T>,
    chol: Mat<T>,
    id: FactorId,
    jitter: JitterReport,
}

/// In-place lower Cholesky factorization `A = L L^T` of the lower triangle of `a`; the strict
/// upper triangle is left untouched. `Err(pivot)` is the 0-based index of the first pivot that
/// is not `> 0` (NaN included).
///
/// The single place where the factorization kernel is chosen: the block-size-tuned Cholesky
/// of `bali-kernels` (on faer). A non-finite entry reports the first bad row as the pivot.
fn cholesky_lower<T: Scalar>(a: MatMut<'_, T>, par: Par) -> std::result::Result<(), usize> {
    match bali_kernels::cholesky_lower_in_place(a, par) {
        Ok(()) => Ok(()),
        Err(bali_kernels::KernelError::NotPositiveDefinite { pivot }) => Err(pivot),
        Err(bali_kernels::KernelError::NonFinite { row, col, .. }) => Err(row.min(col)),
    }
}

/// Copies `src` into `dst` and adds `shift` to the diagonal of `dst`.
fn copy_shifted<T: Scalar>(mut dst: MatMut<'_, T>, src: MatRef<'_, T>, shift: T) {
    dst.copy_from(src);
    for i in 0..dst.nrows() {
        dst[(i, i)] += shift;
    }
}

/// Copies the strict lower triangle of the square `m` onto its strict upper triangle, in
/// 32 x 32 tiles so that the transposed writes stay in cache (a plain row-by-row transpose
/// of a 2048 x 2048 matrix costs as much as its Cholesky factorization).
pub(crate) fn symmetrize_from_lower<T: Scalar>(mut m: MatMut<'_, T>) {
    const TILE: usize = 32;
    let n = m.nrows();
    for jb in (0..n).step_by(TILE) {
        for ib in (jb..n).step_by(TILE) {
            for j in jb..(jb + TILE).min(n) {
                for i in ib.max(j + 1)..(ib + TILE).min(n) {
                    let v = m[(i, j)];
                    m[(j, i)] = v;
                }
            }
        }
    }
}

impl<T: Scalar> KronFactor<T> {
    /// Factors the SPD matrix `matrix` (dim x dim): reads its lower triangle, stores the full
    /// symmetric `A` and `L` with `A = L L^T`.
    ///
    /// Errors: [`MnError::ShapeMismatch`] if not square; [`MnError::NonFinite`] for NaN/inf in
    /// the lower triangle; [`MnError::NotPositiveDefinite`] naming `id`, the dimension, the
    /// pivot and the jitter retries made under `jitter`; [`MnError::InvalidParameter`] for a
    /// policy with retries and a non-positive `initial_relative`.
    pub fn new(matrix: Mat<T>, id: FactorId, jitter: JitterPolicy, par: Par) -> Result<Self> {
        let n = matrix.nrows();
        check::shape(
            "KronFactor::new (square matrix)",
            (n, n),
            (n, matrix.ncols()),
        )?;
        check::finite_lower(matrix.as_ref(), || format!("{id} matrix"))?;
        jitter.check()?;
        let mut matrix = matrix;
        symmetrize_from_lower(matrix.as_mut());
        let mut chol = matrix.clone();
        let mut pivot = match cholesky_lower(chol.as_mut(), par) {
            Ok(()) => {
                return Ok(KronFactor {
                    matrix,
                    chol,
                    id,
                    jitter: JitterReport::default(),
                });
            }
            Err(pivot) => pivot,
        };
        let mut scale = (0..n).map(|i| matrix[(i, i)].to_f64().abs()).sum::<f64>() / n as f64;
        if scale <= 0.0 || !scale.is_finite() {
            scale = 1.0;
        }
        let mut tries = 0;
        let mut last_jitter = 0.0;
        for k in 0..jitter.max_tries {
            let jit = jitter.initial_relative * scale * 10f64.powi(k as i32);
            if !jit.is_finite() {
                break;
            }
            tries = k + 1;
            last_jitter = jit;
            copy_shifted(chol.as_mut(), matrix.as_ref(), T::of(jit));
            match cholesky_lower(chol.as_mut(), par) {
                Ok(()) => {
                    for i in 0..n {
                        matrix[(i, i)] += T::of(jit);
                    }
                    return Ok(KronFactor {
                        matrix,
                        chol,
                        id,
                        jitter: JitterReport { tries, added: jit },
                    });
                }
                Err(p) => pivot = p,
            }
        }
        Err(MnError::NotPositiveDefinite {
            factor: id,
            dim: n,
            pivot,
            jitter_tries: tries,
            last_jitter,
        })
    }

    /// `s I` (dim x dim) with `L = sqrt(s) I`.
    ///
    /// # Panics
    /// If `s` is not finite and `> 0` (use [`KronFactor::try_identity_scaled`] for user input).
    #[track_caller]
    pub fn identity_scaled(dim: usize, s: T, id: FactorId) -> Self {
        match Self::try_identity_scaled(dim, s, id) {
            Ok(f) => f,
            Err(e) => panic!("KronFactor::identity_scaled: {e}"),
        }
    }

    /// `s I` (dim x dim); [`MnError::InvalidParameter`] unless `s` is finite and `> 0`.
    pub fn try_identity_scaled(dim: usize, s: T, id: FactorId) -> Result<Self> {
        check::positive("identity scale s", s.to_f64())?;
        let mut matrix = Mat::<T>::zeros(dim, dim);
        let mut chol = Mat::<T>::zeros(dim, dim);
        let r = s.sqrt();
        for i in 0..dim {
            matrix[(i, i)] = s;
            chol[(i, i)] = r;
        }
        Ok(KronFactor {
            matrix,
            chol,
            id,
            jitter: JitterReport::default(),
        })
    }

    /// Dimension `n` of `A` (n x n).
    pub fn dim(&self) -> usize {
        self.matrix.nrows()
    }

    /// The full symmetric `A`, including any jitter added.
    pub fn matrix(&self) -> MatRef<'_, T> {
        self.matrix.as_ref()
    }

    /// The lower Cholesky factor `L` (strict upper triangle zero).
    pub fn chol(&self) -> MatRef<'_, T> {
        self.chol.as_ref()
    }

    /// The jitter used to factor `A`.
    pub fn jitter(&self) -> JitterReport {
        self.jitter
    }

    /// Which factor this is (for error messages).
    pub fn id(&self) -> FactorId {
        self.id
    }

    /// `log det A = 2 sum_i log L_ii`.
    pub fn log_det(&self) -> T {
        let mut s = T::zero();
        for i in 0..self.dim() {
            s += self.chol[(i, i)].ln();
        }
        s + s
    }

    #[track_caller]
    fn assert_rows(&self, op: &str, nrows: usize) {
        assert!(
            nrows == self.dim(),
            "{op}: {} is {} x {}, right-hand side has {nrows} rows",
            self.id,
            self.dim(),
            self.dim()
        );
    }

    /// `rhs <- A^{-1} rhs` (rhs: dim x k), two triangular solves, `2 n^2 k` flops.
    #[track_caller]
    pub fn solve_in_place(&self, rhs: MatMut<'_, T>, par: Par) {
        self.assert_rows("KronFactor::solve_in_place", rhs.nrows());
        let mut rhs = rhs;
        solve_lower_triangular_in_place(self.chol.as_ref(), rhs.as_mut(), par);
        solve_upper_triangular_in_place(self.chol.transpose(), rhs, par);
    }

    /// `rhs <- rhs A^{-1}` (rhs: k x dim).
    #[track_caller]
    pub fn solve_right_in_place(&self, rhs: MatMut<'_, T>, par: Par) {
        self.assert_rows("KronFactor::solve_right_in_place", rhs.ncols());
        self.solve_in_place(rhs.transpose_mut(), par);
    }

    /// `rhs <- L^{-1} rhs` (rhs: dim x k).
    #[track_caller]
    pub fn solve_lower_in_place(&self, rhs: MatMut<'_, T>, par: Par) {
        self.assert_rows("KronFactor::solve_lower_in_place", rhs.nrows());
        solve_lower_triangular_in_place(self.chol.as_ref(), rhs, par);
    }

    /// `rhs <- L^{-T} rhs` (rhs: dim x k).
    #[track_caller]
    pub fn solve_lower_transpose_in_place(&self, rhs: MatMut<'_, T>, par: Par) {
        self.assert_rows("KronFactor::solve_lower_transpose_in_place", rhs.nrows());
        solve_upper_triangular_in_place(self.chol.transpose(), rhs, par);
    }

    /// `A^{-1}` (dim x dim, symmetrized), from `L`: `2 n^3` flops.
    pub fn inverse(&self, par: Par) -> Mat<T> {
        let n = self.dim();
        let mut inv = Mat::<T>::identity(n, n);
        self.solve_in_place(inv.as_mut(), par);
        let half = T::of(0.5);
        for j in 0..n {
            for i in j + 1..n {
                let v = half * (inv[(i, j)] + inv[(j, i)]);
                inv[(i, j)] = v;
                inv[(j, i)] = v;
            }
        }
        inv
    }
}

/// `X = A^{-1} V B^{-1}` from the two Cholesky factors (A: p x p, V: p x q, B: q x q), i.e. the
/// solution of `(B kron A) vec(X) = vec(V)`. Cost `2 p^2 q + 2 q^2 p` flops. Relative error
/// `<= c (p + q) kappa(A) kappa(B) eps` (see [`KronFactor`], *Accuracy*).
///
/// # Panics
/// If `V` is not `a.dim() x b.dim()`.
#[track_caller]
pub fn kron_solve<T: Scalar>(
    a: &KronFactor<T>,
    b: &KronFactor<T>,
    v: MatRef<'_, T>,
    par: Par,
) -> Mat<T> {
    let mut x = v.to_owned();
    kron_solve_in_place(a, b, x.as_mut(), par);
    x
}

/// In-place [`kron_solve`]: `v <- A^{-1} v B^{-1}`.
///
/// # Panics
/// If `v` is not `a.dim() x b.dim()`.
#[track_caller]
pub fn kron_solve_in_place<T: Scalar>(
    a: &KronFactor<T>,
    b: &KronFactor<T>,
    v: MatMut<'_, T>,
    par: Par,
) {
    assert!(
        v.nrows() == a.dim() && v.ncols() == b.dim(),
        "kron_solve: V is {} x {}, factors are {} x {} and {} x {}",
        v.nrows(),
        v.ncols(),
        a.dim(),
        a.dim(),
        b.dim(),
        b.dim()
    );
    let mut v = v;
    a.solve_in_place(v.as_mut(), par);
    b.solve_right_in_place(v, par);
}

/// Like [`kron_solve`], with a shape mismatch reported as [`MnError::ShapeMismatch`].
pub fn try_kron_solve<T: Scalar>(
    a: &KronFactor<T>,
    b: &KronFactor<T>,
    v: MatRef<'_, T>,
    par: Par,
) -> Result<Mat<T>> {
    check::shape("kron_solve (V)", (a.dim(), b.dim()), (v.nrows(), v.ncols()))?;
    Ok(kron_solve(a, b, v, par))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize) -> Mat<f64> {
        use rand::SeedableRng;
        crate::dense::random_spd_dominant(n, &mut rand::rngs::StdRng::seed_from_u64(n as u64))
    }

    #[test]
    fn factor_reconstructs_and_solves() {
        let a = spd(5);
        let f =
            KronFactor::new(a.clone(), FactorId::matrix(), JitterPolicy::NONE, Par::Seq).unwrap();
        let l = f.chol();
        let llt = l * l.transpose();
        assert!((&llt - &a).norm_max() < 1e-12);
        let b = Mat::<f64>::from_fn(5, 2, |i, j| (i + j) as f64);
        let mut x = b.clone();
        f.solve_in_place(x.as_mut(), Par::Seq);
        assert!((&a * &x - &b).norm_max() < 1e-10);
        let mut y = b.transpose().to_owned();
        f.solve_right_in_place(y.as_mut(), Par::Seq);
        assert!((&y * &a - b.transpose()).norm_max() < 1e-10);
        let inv = f.inverse(Par::Seq);
        assert!((&inv * &a - Mat::<f64>::identity(5, 5)).norm_max() < 1e-10);
        let mut z = b.clone();
        f.solve_lower_in_place(z.as_mut(), Par::Seq);
        assert!((l * &z - &b).norm_max() < 1e-10);
        let mut z = b.clone();
        f.solve_lower_transpose_in_place(z.as_mut(), Par::Seq);
        assert!((l.transpose() * &z - &b).norm_max() < 1e-10);
    }

    #[test]
    fn log_det_of_diagonal() {
        let mut a = Mat::<f64>::zeros(3, 3);
        for (i, d) in [2.0, 3.0, 0.5].iter().enumerate() {
            a[(i, i)] = *d;
        }
        let f = KronFactor::new(a, FactorId::matrix(), JitterPolicy::NONE, Par::Seq).unwrap();
        assert!((f.log_det() - 3.0f64.ln()).abs() < 1e-14);
        let g = KronFactor::<f32>::identity_scaled(4, 2.0, FactorId::matrix());
        assert!((g.log_det() - 4.0 * 2.0f32.ln()).abs() < 1e-5);
        assert!(KronFactor::<f64>::try_identity_scaled(2, -1.0, FactorId::matrix()).is_err());
    }

    #[test]
    fn upper_triangle_is_ignored() {
        let mut a = spd(4);
        let f0 =
            KronFactor::new(a.clone(), FactorId::matrix(), JitterPolicy::NONE, Par::Seq).unwrap();
        a[(0, 3)] = f64::NAN;
        a[(1, 2)] = 1e9;
        let f1 = KronFactor::new(a, FactorId::matrix(), JitterPolicy::NONE, Par::Seq).unwrap();
        assert_eq!(f0.matrix(), f1.matrix());
        assert_eq!(f0.chol(), f1.chol());
    }

    #[test]
    fn indefinite_reports_pivot() {
        let mut a = Mat::<f64>::identity(4, 4);
        a[(2, 2)] = -1.0;
        match KronFactor::new(
            a,
            FactorId::curvature(Some(2)),
            JitterPolicy::NONE,
            Par::Seq,
        ) {
            Err(MnError::NotPositiveDefinite {
                factor,
                dim,
                pivot,
                jitter_tries,
                ..
            }) => {
                assert_eq!(factor, FactorId::curvature(Some(2)));
                assert_eq!((dim, pivot, jitter_tries), (4, 2, 0));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn jitter_fixes_singular() {
        // rank-one PSD: v v^T, v = (1, 2, 3)
        let a = Mat::<f64>::from_fn(3, 3, |i, j| ((i + 1) * (j + 1)) as f64);
        assert!(
            KronFactor::new(a.clone(), FactorId::matrix(), JitterPolicy::NONE, Par::Seq).is_err()
        );
        let f = KronFactor::new(
            a.clone(),
            FactorId::matrix(),
            JitterPolicy::bounded(4, 1e-8),
            Par::Seq,
        )
        .unwrap();
        let r = f.jitter();
        assert!(r.tries >= 1);
        let mean_diag = (1.0 + 4.0 + 9.0) / 3.0;
        let expect = 1e-8 * mean_diag * 10f64.powi(r.tries as i32 - 1);
        assert!((r.added - expect).abs() <= 1e-12 * expect);
        assert!((f.matrix()[(0, 0)] - (1.0 + r.added)).abs() < 1e-15);
        assert!(matches!(
            KronFactor::new(
                a,
                FactorId::matrix(),
                JitterPolicy::bounded(1, -1.0),
                Par::Seq
            ),
            Err(MnError::InvalidParameter { .. })
        ));
    }

    #[test]
    fn kron_solve_small() {
        let a = KronFactor::new(spd(3), FactorId::matrix(), JitterPolicy::NONE, Par::Seq).unwrap();
        let b = KronFactor::new(spd(2), FactorId::matrix(), JitterPolicy::NONE, Par::Seq).unwrap();
        let v = Mat::<f64>::from_fn(3, 2, |i, j| (i as f64) - 2.0 * j as f64 + 0.5);
        let x = kron_solve(&a, &b, v.as_ref(), Par::Seq);
        assert!((a.matrix() * &x * b.matrix() - &v).norm_max() < 1e-10);
        assert!(try_kron_solve(&a, &b, v.transpose(), Par::Seq).is_err());
    }
}
