//! The output-side curvature factors `C_l` of the `Improved` hidden layers (ALGORITHM.md 3.2
//! step 4) and their EMA: `C_batch,l = (1 / B) sum_k Delta_k^T Delta_k`,
//! `Delta_k = dF_k / dH_l` (B x q_l), damped as `D_l = C~_l + (gamma tr C~_l / q_l + floor) I`.

use bali_kernels::{column_sq_norms_into, syrk_ema, Scalar};
use faer::{Mat, MatMut, MatRef, Par};

/// EMA of the output-side curvature factor `C_l` (q x q, lower triangle kept), without `rho`.
///
/// With `diagonal_only` (the `Scalar` preconditioner, which reads nothing but `tr C~_l`) only
/// the diagonal of `C_hat` is kept up to date: the EMA is linear, so its diagonal is the EMA
/// of the batch diagonals, and `diag(Delta^T Delta)` costs `K B q` flops instead of the
/// `K B q^2` of the SYRK. The strict lower triangle then stays zero.
#[derive(Clone, Debug)]
pub(crate) struct CurvatureEma<T> {
    pub(crate) c_hat: Mat<T>,
    diagonal_only: bool,
    /// Batch diagonal of the `diagonal_only` update (length q; reused).
    diag_scratch: Vec<T>,
    pub(crate) step: u64,
    /// `floor * tr(C_l at step 1) / q`, frozen after the first step.
    pub(crate) floor_abs: Option<T>,
}

impl<T: Scalar> CurvatureEma<T> {
    pub(crate) fn new(q: usize, diagonal_only: bool) -> Self {
        CurvatureEma {
            c_hat: Mat::zeros(q, q),
            diagonal_only,
            diag_scratch: vec![T::zero(); if diagonal_only { q } else { 0 }],
            step: 0,
            floor_abs: None,
        }
    }

    /// `C_hat <- beta C_hat + (1 - beta) (1/B) Delta^T Delta` for stacked `Delta` (K B x q)
    /// (its diagonal only when `diagonal_only`).
    pub(crate) fn update(&mut self, delta: MatRef<'_, T>, batch: usize, beta: T, par: Par) {
        if self.diagonal_only {
            let mut diag = std::mem::take(&mut self.diag_scratch);
            column_sq_norms_into(delta, &mut diag);
            self.update_diagonal(&diag, batch, beta);
            self.diag_scratch = diag;
            return;
        }
        let c = (T::one() - beta) / T::of(batch as f64);
        syrk_ema(self.c_hat.as_mut(), delta, beta, c, par);
        self.step += 1;
    }

    /// `diag(C_hat) <- beta diag(C_hat) + (1 - beta) (1/B) diag` for the batch diagonal
    /// `diag = diag(sum_k Delta_k^T Delta_k)` (length q).
    pub(crate) fn update_diagonal(&mut self, diag: &[T], batch: usize, beta: T) {
        let c = (T::one() - beta) / T::of(batch as f64);
        for (i, &d) in diag.iter().enumerate() {
            let fresh = c * d;
            self.c_hat[(i, i)] = if beta == T::zero() {
                fresh
            } else {
                beta * self.c_hat[(i, i)] + fresh
            };
        }
        self.step += 1;
    }

    /// `C_hat <- beta C_hat + (1 - beta) (1/B) Gram` for a batch Gram matrix `sum_k Delta_k^T
    /// Delta_k` (q x q, lower triangle read) computed elsewhere (see [`output_fed_gram_into`]).
    pub(crate) fn update_from_gram(&mut self, gram: MatRef<'_, T>, batch: usize, beta: T) {
        let c = (T::one() - beta) / T::of(batch as f64);
        let q = self.c_hat.nrows();
        for j in 0..q {
            for i in j..q {
                let fresh = c * gram[(i, j)];
                self.c_hat[(i, j)] = if beta == T::zero() {
                    fresh
                } else {
                    beta * self.c_hat[(i, j)] + fresh
                };
            }
        }
        self.step += 1;
    }

    /// `tr(C~) / q` of the bias-corrected `C~ = C_hat / (1 - beta^t)`.
    pub(crate) fn mean_diag(&self, beta: T) -> T {
        let q = self.c_hat.nrows();
        let trace = (0..q).fold(T::zero(), |a, i| a + self.c_hat[(i, i)]);
        trace * bias_correction(beta, self.step) / T::of(q as f64)
    }

    /// Writes `C~ + shift I` into the lower triangle of `d` (q x q; the strict upper triangle
    /// is not written). Needs the whole factor (not `diagonal_only`).
    pub(crate) fn damped_lower_into(&self, mut d: MatMut<'_, T>, beta: T, shift: T) {
        debug_assert!(
            !self.diagonal_only,
            "damped_lower_into of a diagonal-only curvature EMA"
        );
        let corr = bias_correction(beta, self.step);
        let q = self.c_hat.nrows();
        for j in 0..q {
            let src = &self.c_hat.col_as_slice(j)[j..];
            for (i, &c) in (j..q).zip(src) {
                d[(i, j)] = c * corr;
            }
            d[(j, j)] += shift;
        }
    }
}

/// `sum_k Delta_k^T Delta_k` (q x q, lower triangle) of the hidden layer that feeds the
/// output layer, in closed form, into `gram` (q x q; `weights_gram` q x q is scratch). There
/// `Delta_k = dF_k / dH = phi'(H) diag(w_k)` (B x q), with `w_k` column `k` of the output
/// weights `W_out` (p_out x q_L) without their bias row, so
///
/// `sum_k Delta_k^T Delta_k = (W' W'^T) ⊙ (Phi'^T Phi')`,   `W' = W_out[..q, :]`, `Phi' = phi'(H)`.
///
/// Cost `B q^2 + q_L q^2` flops (two SYRKs) instead of `q_L` backward passes and the
/// `q_L B q^2` SYRK of the stacked `Delta_k`; equal up to rounding (the sums are reordered).
pub(crate) fn output_fed_gram_into<T: Scalar>(
    mut gram: MatMut<'_, T>,
    mut weights_gram: MatMut<'_, T>,
    w_out: MatRef<'_, T>,
    deriv: MatRef<'_, T>,
    par: Par,
) {
    let q = deriv.ncols();
    syrk_ema(
        weights_gram.as_mut(),
        w_out.subrows(0, q).transpose(),
        T::zero(),
        T::one(),
        Par::Seq,
    );
    syrk_ema(gram.as_mut(), deriv, T::zero(), T::one(), par);
    for j in 0..q {
        for i in j..q {
            gram[(i, j)] *= weights_gram[(i, j)];
        }
    }
}

/// The diagonal of [`output_fed_gram_into`] alone, into `diag` (length q; `weights` length q
/// is scratch): `diag(sum_k Delta_k^T Delta_k)_i = ||W'_{i,:}||^2 ||Phi'_{:,i}||^2`
/// (`B q + q_L q` flops), all that the `Scalar` preconditioner reads.
pub(crate) fn output_fed_gram_diagonal_into<T: Scalar>(
    diag: &mut [T],
    weights: &mut [T],
    w_out: MatRef<'_, T>,
    deriv: MatRef<'_, T>,
) {
    let q = deriv.ncols();
    column_sq_norms_into(w_out.subrows(0, q).transpose(), weights);
    column_sq_norms_into(deriv, diag);
    for (d, w) in diag.iter_mut().zip(weights.iter()) {
        *d *= *w;
    }
}

/// `1 / (1 - beta^t)` (1 for `beta = 0` or `t = 0`).
pub(crate) fn bias_correction<T: Scalar>(beta: T, step: u64) -> T {
    if beta == T::zero() || step == 0 {
        T::one()
    } else {
        T::one() / (T::one() - beta.powi(step.min(i32::MAX as u64) as i32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bali_autodiff::{Mlp, Trace};
    use bali_kernels::Activation;
    use faer::linalg::matmul::matmul;
    use faer::Accum;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn output_fed_gram(w_out: MatRef<'_, f64>, deriv: MatRef<'_, f64>, par: Par) -> Mat<f64> {
        let q = deriv.ncols();
        let (mut gram, mut scratch) = (Mat::zeros(q, q), Mat::zeros(q, q));
        output_fed_gram_into(gram.as_mut(), scratch.as_mut(), w_out, deriv, par);
        gram
    }

    fn output_fed_gram_diagonal(w_out: MatRef<'_, f64>, deriv: MatRef<'_, f64>) -> Vec<f64> {
        let q = deriv.ncols();
        let (mut diag, mut scratch) = (vec![0.0; q], vec![0.0; q]);
        output_fed_gram_diagonal_into(&mut diag, &mut scratch, w_out, deriv);
        diag
    }

    fn damped_lower(ema: &CurvatureEma<f64>, beta: f64, shift: f64) -> Mat<f64> {
        let q = ema.c_hat.nrows();
        let mut d = Mat::zeros(q, q);
        ema.damped_lower_into(d.as_mut(), beta, shift);
        d
    }

    fn random_net(dims: &[usize], activation: Activation, seed: u64) -> (Mlp, Vec<Mat<f64>>) {
        let mlp = Mlp::new(dims.to_vec(), activation).expect("valid widths");
        let mut rng = StdRng::seed_from_u64(seed);
        let mut weights: Vec<Mat<f64>> = mlp.init_weights(&mut rng);
        // Nonzero biases, so that ReLU units are neither all on nor all off.
        for w in &mut weights {
            let p = w.nrows();
            for j in 0..w.ncols() {
                w[(p - 1, j)] = 0.3 * (j as f64 - 1.0);
            }
        }
        (mlp, weights)
    }

    fn random_input(b: usize, d: usize, seed: u64) -> Mat<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        Mat::from_fn(b, d, |_, _| 2.0 * rand::Rng::random::<f64>(&mut rng) - 1.0)
    }

    /// `sum_k Delta_k^T Delta_k` of layer `l` from one backward pass per output unit.
    fn per_unit_gram(mlp: &Mlp, weights: &[Mat<f64>], trace: &Trace<f64>, l: usize) -> Mat<f64> {
        let q = mlp.layer_shape(l).1;
        let mut gram = Mat::<f64>::zeros(q, q);
        for k in 0..mlp.num_outputs() {
            let dk = mlp
                .output_jacobian_backward(weights, trace, k, Par::Seq)
                .expect("valid trace");
            let delta = dk[l].as_ref();
            matmul(
                gram.as_mut(),
                Accum::Add,
                delta.transpose(),
                delta,
                1.0,
                Par::Seq,
            );
        }
        gram
    }

    /// The stacked `Delta_k = dF_k / dH_0` of the first layer (q_L B x q_0), one backward pass
    /// per output unit.
    fn stacked_first_layer_deltas(mlp: &Mlp, weights: &[Mat<f64>], trace: &Trace<f64>) -> Mat<f64> {
        let b = trace.output().nrows();
        let q_out = mlp.num_outputs();
        let mut stacked = Mat::<f64>::zeros(q_out * b, mlp.layer_shape(0).1);
        for k in 0..q_out {
            let dk = mlp
                .output_jacobian_backward(weights, trace, k, Par::Seq)
                .expect("valid trace");
            stacked.as_mut().subrows_mut(k * b, b).copy_from(&dk[0]);
        }
        stacked
    }

    fn max_rel_lower(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> f64 {
        let (mut diff, mut scale) = (0.0f64, 0.0f64);
        for j in 0..b.ncols() {
            for i in j..b.nrows() {
                diff = diff.max((a[(i, j)] - b[(i, j)]).abs());
                scale = scale.max(b[(i, j)].abs());
            }
        }
        diff / scale
    }

    #[test]
    fn closed_form_curvature_of_the_layer_feeding_the_output() {
        for activation in [Activation::Relu, Activation::Tanh, Activation::Gelu] {
            for dims in [vec![3, 6, 1], vec![4, 5, 7, 3]] {
                let (mlp, weights) = random_net(&dims, activation, 11);
                let x = random_input(37, dims[0], 12);
                let trace = mlp.forward(&weights, x.as_ref(), Par::Seq).expect("finite");
                let last = dims.len() - 3;
                let fast = output_fed_gram(
                    weights[last + 1].as_ref(),
                    trace.deriv[last].as_ref(),
                    Par::Seq,
                );
                let reference = per_unit_gram(&mlp, &weights, &trace, last);
                let err = max_rel_lower(fast.as_ref(), reference.as_ref());
                assert!(err < 1e-13, "{activation:?} {dims:?}: {err:e}");
            }
        }
    }

    #[test]
    fn diagonal_only_curvature_is_the_diagonal_of_the_full_one() {
        // Deep net: the first hidden layer takes the stacked update, the last the closed form.
        let dims = [4, 6, 5, 3];
        let (mlp, weights) = random_net(&dims, Activation::Tanh, 41);
        let b = 19;
        let mut full = [
            CurvatureEma::<f64>::new(6, false),
            CurvatureEma::new(5, false),
        ];
        let mut diag = [
            CurvatureEma::<f64>::new(6, true),
            CurvatureEma::new(5, true),
        ];
        for (step, beta) in [(0u64, 0.0), (1, 0.6), (2, 0.6)] {
            let x = random_input(b, 4, 50 + step);
            let trace = mlp.forward(&weights, x.as_ref(), Par::Seq).expect("finite");
            let stacked = stacked_first_layer_deltas(&mlp, &weights, &trace);
            full[0].update(stacked.as_ref(), b, beta, Par::Seq);
            diag[0].update(stacked.as_ref(), b, beta, Par::Seq);
            let gram = output_fed_gram(weights[2].as_ref(), trace.deriv[1].as_ref(), Par::Seq);
            full[1].update_from_gram(gram.as_ref(), b, beta);
            let d = output_fed_gram_diagonal(weights[2].as_ref(), trace.deriv[1].as_ref());
            diag[1].update_diagonal(&d, b, beta);
            for (f, g) in full.iter().zip(&diag) {
                assert_eq!(f.step, g.step);
                let q = f.c_hat.nrows();
                for i in 0..q {
                    let (a, r) = (g.c_hat[(i, i)], f.c_hat[(i, i)]);
                    assert!(
                        r > 0.0 && (a - r).abs() <= 1e-13 * r,
                        "step {step} ({i}): {a} vs {r}"
                    );
                    for j in 0..i {
                        assert_eq!(g.c_hat[(i, j)], 0.0);
                    }
                }
                let (mf, mg) = (f.mean_diag(beta), g.mean_diag(beta));
                assert!((mf - mg).abs() <= 1e-13 * mf, "step {step}: {mf} vs {mg}");
            }
        }
    }

    #[test]
    fn gram_update_equals_the_stacked_syrk_update() {
        let (mlp, weights) = random_net(&[4, 6, 3], Activation::Tanh, 21);
        let b = 25;
        let (mut by_gram, mut by_syrk) = (
            CurvatureEma::<f64>::new(6, false),
            CurvatureEma::new(6, false),
        );
        for (step, beta) in [(0u64, 0.0), (1, 0.7), (2, 0.7)] {
            let x = random_input(b, 4, 30 + step);
            let trace = mlp.forward(&weights, x.as_ref(), Par::Seq).expect("finite");
            let stacked = stacked_first_layer_deltas(&mlp, &weights, &trace);
            by_syrk.update(stacked.as_ref(), b, beta, Par::Seq);
            let gram = output_fed_gram(weights[1].as_ref(), trace.deriv[0].as_ref(), Par::Seq);
            by_gram.update_from_gram(gram.as_ref(), b, beta);
            assert_eq!(by_gram.step, by_syrk.step);
            let err = max_rel_lower(by_gram.c_hat.as_ref(), by_syrk.c_hat.as_ref());
            assert!(err < 1e-13, "step {step}: {err:e}");
            let (ta, tb) = (
                damped_lower(&by_gram, beta, 0.5),
                damped_lower(&by_syrk, beta, 0.5),
            );
            assert!(max_rel_lower(ta.as_ref(), tb.as_ref()) < 1e-13);
            assert!((by_gram.mean_diag(beta) - by_syrk.mean_diag(beta)).abs() < 1e-13);
        }
    }
}
