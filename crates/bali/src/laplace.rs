//! The post-hoc K-FAC Laplace baseline (Ritter et al. 2018, as laplace-torch's `KronLaplace`):
//! a Gaussian around the MAP weights whose precision per layer is the Kronecker product of
//! the input second moments and the output-gradient second moments, with labels sampled from
//! the model, plus an isotropic prior precision `tau`.
//!
//! For layer `l` with inputs `X_l` (N x p, bias column last) and pre-activation gradients
//! `g_n = d ell(f(x_n), y~_n) / d h_l,n` (rows of `G~_l`, N x q, labels `y~_n ~ p(y | x_n)`):
//!
//! `A_l = X_l^T X_l / N` (p x p),   `B_l = G~_l^T G~_l / N` (q x q),
//!
//! the GGN of the summed loss is approximately `N B_l kron A_l`, and the posterior precision
//! of `vec(W_l)` is approximated, as usual, by splitting the data count and the prior between
//! the factors: `(sqrt(N) B_l + sqrt(tau) I) kron (sqrt(N) A_l + sqrt(tau) I)`. As a
//! matrix-normal `MN(W_MAP, Lambda^{-1}, Sigma)` (`cov(vec W) = Sigma kron Lambda^{-1}`):
//!
//! `Lambda_l = sqrt(N) A_l + sqrt(tau) I_p`,   `Sigma_l = (sqrt(N) B_l + sqrt(tau) I_q)^{-1}`,
//!
//! so the predictive reuses BALI's: whole-network samples through [`BayesianMlp`].

use bali_autodiff::Mlp;
use bali_mn::{FactorId, JitterPolicy, KronFactor, MatrixNormal};
use faer::{Mat, MatRef, Par};
use rand::Rng;

use crate::error::{BaliError, Result};
use crate::likelihood::Likelihood;
use crate::model::BayesianMlp;

/// The Kronecker factors `A_l`, `B_l` of every layer at the MAP weights (see the module
/// documentation), for a training set of `n` rows.
#[derive(Clone, Debug)]
pub struct KfacFactors {
    /// `A_l = X_l^T X_l / N` (p_l x p_l).
    pub inputs: Vec<Mat<f64>>,
    /// `B_l = G~_l^T G~_l / N` (q_l x q_l), labels sampled from the model.
    pub gradients: Vec<Mat<f64>>,
    /// Training rows `N`.
    pub n: usize,
}

impl KfacFactors {
    /// The factors of the network `weights` on the training inputs `x` (N x d_0), in batches
    /// of `batch` rows, one sampled label per row drawn with `rng`.
    pub fn compute<R: Rng + ?Sized>(
        mlp: &Mlp,
        weights: &[Mat<f64>],
        likelihood: Likelihood,
        x: MatRef<'_, f64>,
        batch: usize,
        rng: &mut R,
    ) -> Result<Self> {
        let n = x.nrows();
        if n == 0 || batch == 0 {
            return Err(BaliError::InvalidOption {
                name: "rows",
                value: format!("{n} rows in batches of {batch}"),
                reason: "the Laplace factors need at least one row and a batch >= 1",
            });
        }
        let shapes = mlp.layer_shapes();
        let mut inputs: Vec<Mat<f64>> = shapes.iter().map(|&(p, _)| Mat::zeros(p, p)).collect();
        let mut gradients: Vec<Mat<f64>> = shapes.iter().map(|&(_, q)| Mat::zeros(q, q)).collect();
        let inv = 1.0 / n as f64;
        let mut start = 0;
        while start < n {
            let b = batch.min(n - start);
            let xb = x.subrows(start, b);
            let trace = mlp.forward(weights, xb, Par::Seq)?;
            let mut seed = Mat::<f64>::zeros(b, mlp.num_outputs());
            likelihood.sampled_fisher_seed_into(seed.as_mut(), trace.output(), rng);
            let gs = mlp.backward(weights, &trace, seed.as_ref(), Par::Seq)?;
            for l in 0..shapes.len() {
                let xl = &trace.inputs[l];
                inputs[l] += (xl.transpose() * xl) * faer::Scale(inv);
                gradients[l] += (gs[l].transpose() * &gs[l]) * faer::Scale(inv);
            }
            start += b;
        }
        Ok(KfacFactors {
            inputs,
            gradients,
            n,
        })
    }

    /// The Laplace posterior around `weights` with prior precision `tau > 0`, as a
    /// [`BayesianMlp`] (predictions by whole-network samples).
    pub fn posterior(
        &self,
        mlp: &Mlp,
        likelihood: Likelihood,
        weights: &[Mat<f64>],
        tau: f64,
    ) -> Result<BayesianMlp<f64>> {
        if !(tau.is_finite() && tau > 0.0) {
            return Err(BaliError::InvalidOption {
                name: "prior_precision",
                value: tau.to_string(),
                reason: "must be finite and > 0",
            });
        }
        let (root_n, root_tau) = ((self.n as f64).sqrt(), tau.sqrt());
        let shifted = |m: &Mat<f64>| {
            Mat::from_fn(m.nrows(), m.ncols(), |i, j| {
                root_n * m[(i, j)] + if i == j { root_tau } else { 0.0 }
            })
        };
        let mut layers = Vec::with_capacity(weights.len());
        for (l, w) in weights.iter().enumerate() {
            let row = KronFactor::new(
                shifted(&self.inputs[l]),
                FactorId::row_precision(Some(l)),
                JitterPolicy::NONE,
                Par::Seq,
            )?;
            let col_precision = KronFactor::new(
                shifted(&self.gradients[l]),
                FactorId::col_cov(Some(l)),
                JitterPolicy::NONE,
                Par::Seq,
            )?;
            let col = KronFactor::new(
                col_precision.inverse(Par::Seq),
                FactorId::col_cov(Some(l)),
                JitterPolicy::NONE,
                Par::Seq,
            )?;
            layers.push(MatrixNormal::new(w.clone(), row, col)?);
        }
        BayesianMlp::from_posteriors(mlp.clone(), likelihood, layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bali_kernels::Activation;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn factors_are_the_second_moments_and_the_posterior_has_them() {
        let mlp = Mlp::new(vec![3, 4, 2], Activation::Tanh).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let weights: Vec<Mat<f64>> = mlp.init_weights(&mut rng);
        let x = Mat::from_fn(10, 3, |i, j| ((i * 3 + j) as f64).sin());
        // Batches of 4 (a last batch of 2) give the same A_l as one batch of all rows.
        let f = KfacFactors::compute(
            &mlp,
            &weights,
            Likelihood::Categorical,
            x.as_ref(),
            4,
            &mut StdRng::seed_from_u64(2),
        )
        .unwrap();
        let trace = mlp.forward(&weights, x.as_ref(), Par::Seq).unwrap();
        for l in 0..2 {
            let xl = &trace.inputs[l];
            let a = (xl.transpose() * xl) * faer::Scale(0.1);
            let err = (&a - &f.inputs[l]).norm_max();
            assert!(err < 1e-14, "layer {l}: {err}");
            // B_l is symmetric positive semi-definite with a positive trace.
            let b = &f.gradients[l];
            assert!((b - b.transpose()).norm_max() < 1e-15);
            assert!((0..b.nrows()).map(|i| b[(i, i)]).sum::<f64>() > 0.0);
        }
        let tau = 4.0;
        let post = f
            .posterior(&mlp, Likelihood::Categorical, &weights, tau)
            .unwrap();
        for (l, w) in weights.iter().enumerate() {
            let layer = post.posterior(l);
            assert!(layer.mean == *w);
            // Lambda = sqrt(N) A + sqrt(tau) I.
            let want = Mat::from_fn(f.inputs[l].nrows(), f.inputs[l].ncols(), |i, j| {
                10f64.sqrt() * f.inputs[l][(i, j)] + if i == j { 2.0 } else { 0.0 }
            });
            assert!((&layer.row_precision.matrix() - &want).norm_max() < 1e-12);
            // Sigma^{-1} = sqrt(N) B + sqrt(tau) I.
            let sigma = layer.col_cov.matrix();
            let prec = Mat::from_fn(sigma.nrows(), sigma.ncols(), |i, j| {
                10f64.sqrt() * f.gradients[l][(i, j)] + if i == j { 2.0 } else { 0.0 }
            });
            let eye = &sigma * &prec;
            for i in 0..eye.nrows() {
                for j in 0..eye.ncols() {
                    let e = if i == j { 1.0 } else { 0.0 };
                    assert!(
                        (eye[(i, j)] - e).abs() < 1e-10,
                        "({i}, {j}) {}",
                        eye[(i, j)]
                    );
                }
            }
        }
        assert!(f
            .posterior(&mlp, Likelihood::Categorical, &weights, 0.0)
            .is_err());
    }
}
