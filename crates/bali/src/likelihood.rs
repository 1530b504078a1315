//! The likelihood of the network output: the one seam between the training loop and the task
//! (ALGORITHM.md sections 1 and 3.2).
//!
//! The loop asks the likelihood for four things and nothing else:
//!
//! - the objective `ell(F, Y)` per row at the posterior means ([`Likelihood::mean_loss`]);
//! - the backward seed `d ell / dF` (B x q_L) ([`Likelihood::seed_into`]);
//! - how the output layer is updated: exact Bayesian linear regression on targets that the
//!   likelihood gives (Gaussian: `T_L = Y`) or the preconditioned step of 3.2 step 5 where no
//!   exact targets exist (categorical) ([`Likelihood::exact_output_targets`]);
//! - the square root of the output-space Fisher `S_b` (B rows of q_L x q_L), whose stacked
//!   backward pass gives the hidden curvature factors `C_l = (1/B) sum_b J_b^T S_b S_b^T J_b`
//!   ([`Likelihood::fisher_sqrt_seed_into`]).
//!
//! A new task (softmax-categorical classification) is one new variant here and its arms in
//! these methods.

use bali_kernels::{sub_scaled_into, Scalar};
use faer::reborrow::ReborrowMut;
use faer::{MatMut, MatRef};

/// Likelihood of the network output `F` (B x q_L) given the targets `Y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Likelihood {
    /// Regression, `p(y | f) = N(y; f, sigma^2 I)`. The pseudo-targets do not depend on
    /// `sigma^2` (`G_l` and `C_l` both scale as `1 / sigma^2`), so the loop works with
    /// `sigma^2 = 1`; the predictive noise is chosen on held-out data.
    #[default]
    Gaussian,
}

impl Likelihood {
    /// Name as printed and stored.
    pub fn name(self) -> &'static str {
        match self {
            Likelihood::Gaussian => "gaussian",
        }
    }

    /// `ell(F, Y) / B`: Gaussian `(1/B) sum_b ||y_b - f_b||^2 / 2` (`sigma^2 = 1`), in `f64`.
    /// Shapes: `f`, `y` B x q_L.
    pub fn mean_loss<T: Scalar>(self, f: MatRef<'_, T>, y: MatRef<'_, T>) -> f64 {
        match self {
            Likelihood::Gaussian => {
                let mut acc = 0.0;
                for j in 0..f.ncols() {
                    for i in 0..f.nrows() {
                        let r = (f[(i, j)] - y[(i, j)]).to_f64();
                        acc += 0.5 * r * r;
                    }
                }
                acc / f.nrows().max(1) as f64
            }
        }
    }

    /// `seed <- d ell / dF`: Gaussian `F - Y` (`sigma^2 = 1`). Shapes: all B x q_L.
    pub fn seed_into<T: Scalar>(self, seed: MatMut<'_, T>, f: MatRef<'_, T>, y: MatRef<'_, T>) {
        match self {
            Likelihood::Gaussian => sub_scaled_into(seed, f, T::one(), y),
        }
    }

    /// Whether the output layer has exact pseudo-targets: Gaussian `T_L = Y` (`alpha_L =
    /// sigma^2`), so the output layer is an exact Bayesian linear regression on the data.
    pub fn exact_output_targets(self) -> bool {
        match self {
            Likelihood::Gaussian => true,
        }
    }

    /// Whether the output-space Fisher is the identity (Gaussian with `sigma^2 = 1`): then the
    /// curvature of the hidden layer that feeds the output has the closed form
    /// `(W' W'^T) ⊙ (Phi'^T Phi')` and needs no backward pass.
    pub fn identity_fisher(self) -> bool {
        match self {
            Likelihood::Gaussian => true,
        }
    }

    /// The stacked seed `S` ((q_L B) x q_L) whose backward pass gives every
    /// `Delta_k = dF_k / dH_l` scaled by the Fisher's square root: block `k` (rows
    /// `k B .. (k + 1) B`) holds `sqrt(Fisher)` column `k` for every row. Gaussian: the unit
    /// vector `e_k` in every row of block `k`. `f` (B x q_L) is the output at the means.
    pub fn fisher_sqrt_seed_into<T: Scalar>(self, mut seed: MatMut<'_, T>, f: MatRef<'_, T>) {
        let (b, q) = (f.nrows(), f.ncols());
        match self {
            Likelihood::Gaussian => {
                seed.fill(T::zero());
                for k in 0..q {
                    seed.rb_mut()
                        .subrows_mut(k * b, b)
                        .col_mut(k)
                        .fill(T::one());
                }
            }
        }
    }
}

impl std::str::FromStr for Likelihood {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gaussian" | "Gaussian" => Ok(Likelihood::Gaussian),
            _ => Err(format!("unknown likelihood `{s}` (expected gaussian)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    #[test]
    fn gaussian_loss_seed_and_fisher_seed() {
        let f = Mat::<f64>::from_fn(3, 2, |i, j| i as f64 + 0.5 * j as f64);
        let y = Mat::<f64>::from_fn(3, 2, |i, j| 1.0 - i as f64 * j as f64);
        let lik = Likelihood::Gaussian;
        let mut by_hand = 0.0;
        for i in 0..3 {
            for j in 0..2 {
                by_hand += 0.5 * (f[(i, j)] - y[(i, j)]).powi(2);
            }
        }
        assert!((lik.mean_loss(f.as_ref(), y.as_ref()) - by_hand / 3.0).abs() < 1e-15);
        let mut seed = Mat::<f64>::zeros(3, 2);
        lik.seed_into(seed.as_mut(), f.as_ref(), y.as_ref());
        assert_eq!(seed, &f - &y);
        let mut s = Mat::<f64>::from_fn(6, 2, |_, _| 7.0);
        lik.fisher_sqrt_seed_into(s.as_mut(), f.as_ref());
        for r in 0..6 {
            for k in 0..2 {
                assert_eq!(s[(r, k)], if r / 3 == k { 1.0 } else { 0.0 });
            }
        }
        assert!(lik.exact_output_targets() && lik.identity_fisher());
        assert_eq!("gaussian".parse::<Likelihood>(), Ok(Likelihood::Gaussian));
        assert!("poisson".parse::<Likelihood>().is_err());
    }
}
