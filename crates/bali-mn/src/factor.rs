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
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::{Accum, Mat, MatMut, MatRef, Par};

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

/// An SPD matrix `A` (dim x dim) as its lower Cholesky factor `L`, `A = L L^T`, and its
/// diagonal: one dim x dim buffer (`L`, zeros above the diagonal) and a vector, as LAPACK's
/// `potrf` leaves a matrix (no second dim x dim copy of `A`). The diagonal of `A` is kept
/// exactly (jitter included); off-diagonal entries are recomputed from `L L^T` when asked for
/// ([`KronFactor::entry`], [`KronFactor::matrix`]) and equal those of the input up to the
/// backward error of the factorization (below). [`KronFactor::refactor`] factors a new
/// matrix of the same dimension in the same buffer (no allocation).
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
    /// `L` (lower triangular, zeros above the diagonal).
    chol: Mat<T>,
    /// `diag(A)`, jitter included.
    diag: Vec<T>,
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
    /// Factors the SPD matrix `matrix` (dim x dim) in its own buffer: reads its lower
    /// triangle and keeps `L` with `A = L L^T` and `diag(A)`. A `jitter` policy with retries
    /// keeps one copy of `A` while factoring (a retry starts again from `A`).
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
        let backup = (jitter.max_tries > 0).then(|| matrix.clone());
        let mut factor = KronFactor {
            chol: matrix,
            diag: vec![T::zero(); n],
            id,
            jitter: JitterReport::default(),
        };
        let mut first = true;
        factor.factor_lower(
            &mut |mut a| {
                if !std::mem::take(&mut first) {
                    if let Some(original) = backup.as_ref() {
                        a.copy_from(original);
                    }
                }
                Ok(())
            },
            jitter,
            par,
        )?;
        Ok(factor)
    }

    /// Rebuilds the factor in place for a new matrix of the same dimension: `fill` writes the
    /// lower triangle of `A` (diagonal included) into the dim x dim buffer it is given (its
    /// strict upper triangle is ignored) or returns an error; then `A` is factored as by
    /// [`KronFactor::new`], with the same errors. `fill` runs again before each jitter retry.
    /// No allocation. After an error the factor holds no valid matrix: use it again only
    /// after a successful `refactor`.
    pub fn refactor(
        &mut self,
        mut fill: impl FnMut(MatMut<'_, T>) -> Result<()>,
        jitter: JitterPolicy,
        par: Par,
    ) -> Result<()> {
        self.factor_lower(&mut fill, jitter, par)
    }

    /// `fill`, then the factorization of the lower triangle of `chol` in place, with the
    /// bounded jitter retries of `jitter` (each after a fresh `fill`).
    fn factor_lower(
        &mut self,
        fill: &mut dyn FnMut(MatMut<'_, T>) -> Result<()>,
        jitter: JitterPolicy,
        par: Par,
    ) -> Result<()> {
        let id = self.id;
        fill(self.chol.as_mut())?;
        check::finite_lower(self.chol.as_ref(), || format!("{id} matrix"))?;
        jitter.check()?;
        let n = self.chol.nrows();
        for (i, d) in self.diag.iter_mut().enumerate() {
            *d = self.chol[(i, i)];
        }
        self.jitter = JitterReport::default();
        let mut pivot = match cholesky_lower(self.chol.as_mut(), par) {
            Ok(()) => return Ok(()),
            Err(pivot) => pivot,
        };
        let mut scale = self
            .diag
            .iter()
            .map(|d| Scalar::to_f64(*d).abs())
            .sum::<f64>()
            / n as f64;
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
            fill(self.chol.as_mut())?;
            for (i, &d) in self.diag.iter().enumerate() {
                self.chol[(i, i)] = d + T::of(jit);
            }
            match cholesky_lower(self.chol.as_mut(), par) {
                Ok(()) => {
                    for d in &mut self.diag {
                        *d += T::of(jit);
                    }
                    self.jitter = JitterReport { tries, added: jit };
                    return Ok(());
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

    /// A factor from a stored Cholesky factor `L` (dim x dim, lower triangular) and the
    /// diagonal of `A = L L^T` (length dim), as [`KronFactor::chol`] and
    /// [`KronFactor::diagonal`] give them (a model file): the same factor, bit for bit. The
    /// jitter report is empty.
    ///
    /// Errors: [`MnError::ShapeMismatch`] for a non-square `L` or a diagonal of another length;
    /// [`MnError::NonFinite`] for NaN/inf; [`MnError::InvalidParameter`] for a non-zero entry
    /// above the diagonal of `L`, a diagonal entry of `L` that is not `> 0`, or a `diag(A)`
    /// that is not `sum_k L_ik^2` to within `1e-6` relative (a corrupted pair).
    pub fn from_parts(chol: Mat<T>, diag: Vec<T>, id: FactorId) -> Result<Self> {
        let n = chol.nrows();
        check::shape("KronFactor::from_parts (L)", (n, n), (n, chol.ncols()))?;
        check::shape("KronFactor::from_parts (diag A)", (n, 1), (diag.len(), 1))?;
        check::finite(chol.as_ref(), || format!("{id} Cholesky factor"))?;
        for j in 0..n {
            for i in 0..j {
                if chol[(i, j)] != T::zero() {
                    return Err(MnError::InvalidParameter {
                        name: "Cholesky factor above the diagonal",
                        value: Scalar::to_f64(chol[(i, j)]),
                        reason: "a Cholesky factor is lower triangular",
                    });
                }
            }
        }
        for (i, &d) in diag.iter().enumerate() {
            let l_ii = Scalar::to_f64(chol[(i, i)]);
            check::positive("Cholesky factor diagonal entry", l_ii)?;
            let from_l: f64 = (0..=i).map(|k| Scalar::to_f64(chol[(i, k)]).powi(2)).sum();
            let d = Scalar::to_f64(d);
            if !(d.is_finite() && (d - from_l).abs() <= 1e-6 * from_l) {
                return Err(MnError::InvalidParameter {
                    name: "diagonal of A",
                    value: d,
                    reason: "must equal the squared row norms of its Cholesky factor",
                });
            }
        }
        Ok(KronFactor {
            chol,
            diag,
            id,
            jitter: JitterReport::default(),
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
        let mut chol = Mat::<T>::zeros(dim, dim);
        let r = s.sqrt();
        for i in 0..dim {
            chol[(i, i)] = r;
        }
        Ok(KronFactor {
            chol,
            diag: vec![s; dim],
            id,
            jitter: JitterReport::default(),
        })
    }

    /// Dimension `n` of `A` (n x n).
    pub fn dim(&self) -> usize {
        self.chol.nrows()
    }

    /// `A_ij` (either triangle): the kept diagonal, or `(L L^T)_ij` (`min(i, j) + 1` terms).
    #[track_caller]
    pub fn entry(&self, i: usize, j: usize) -> T {
        if i == j {
            return self.diag[i];
        }
        let mut acc = T::zero();
        for k in 0..=i.min(j) {
            acc += self.chol[(i, k)] * self.chol[(j, k)];
        }
        acc
    }

    /// `diag(A)` (length n), jitter included.
    pub fn diagonal(&self) -> &[T] {
        &self.diag
    }

    /// The full symmetric `A` (n x n, jitter included) as a new matrix: `L L^T` with the kept
    /// diagonal.
    pub fn matrix(&self) -> Mat<T> {
        let n = self.dim();
        let mut a = Mat::<T>::zeros(n, n);
        matmul(
            a.as_mut(),
            Accum::Replace,
            self.chol.as_ref(),
            self.chol.transpose(),
            T::one(),
            Par::Seq,
        );
        for j in 0..n {
            for i in j + 1..n {
                let v = a[(i, j)];
                a[(j, i)] = v;
            }
            a[(j, j)] = self.diag[j];
        }
        a
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
        let mut inv = Mat::<T>::zeros(n, n);
        self.inverse_into(inv.as_mut(), par);
        inv
    }

    /// `dst <- A^{-1}` (dim x dim, symmetrized), from `L`: `2 n^3` flops, no allocation.
    ///
    /// # Panics
    /// If `dst` is not dim x dim.
    #[track_caller]
    pub fn inverse_into(&self, mut dst: MatMut<'_, T>, par: Par) {
        let n = self.dim();
        assert!(
            dst.nrows() == n && dst.ncols() == n,
            "KronFactor::inverse_into: destination is {} x {}, {} is {n} x {n}",
            dst.nrows(),
            dst.ncols(),
            self.id
        );
        for j in 0..n {
            for i in 0..n {
                dst[(i, j)] = if i == j { T::one() } else { T::zero() };
            }
        }
        self.solve_in_place(dst.as_mut(), par);
        let half = T::of(0.5);
        for j in 0..n {
            for i in j + 1..n {
                let v = half * (dst[(i, j)] + dst[(j, i)]);
                dst[(i, j)] = v;
                dst[(j, i)] = v;
            }
        }
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
