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
//!   ([`Likelihood::fisher_sqrt_seed_into`]), or one sampled column per row at `1/q_L` of the
//!   cost ([`Likelihood::sampled_fisher_seed_into`]);
//! - where the output layer takes the step-5 form, its own Fisher
//!   `C_L = (1/B) sum_b S_b S_b^T` ([`Likelihood::output_fisher_sum_into`]).
//!
//! Two tasks: Gaussian regression and softmax-categorical classification (ALGORITHM.md 3.2,
//! last paragraph), with targets `Y` one-hot (B x K).

use bali_kernels::{sub_scaled_into, Scalar};
use faer::reborrow::ReborrowMut;
use faer::{MatMut, MatRef};
use rand::Rng;
use rand_distr::StandardNormal;

/// Likelihood of the network output `F` (B x q_L) given the targets `Y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Likelihood {
    /// Regression, `p(y | f) = N(y; f, sigma^2 I)`. The pseudo-targets do not depend on
    /// `sigma^2` (`G_l` and `C_l` both scale as `1 / sigma^2`), so the loop works with
    /// `sigma^2 = 1`; the predictive noise is chosen on held-out data.
    #[default]
    Gaussian,
    /// Classification, `p(c | f) = softmax(f)_c` over `K = q_L` classes; targets one-hot
    /// (B x K; any rows on the probability simplex work). No exact output targets exist: the
    /// output layer takes the preconditioned step of 3.2 step 5 with the categorical Fisher
    /// `C_L = (1/B) sum_b (diag p_b - p_b p_b^T)`.
    Categorical,
}

/// `p = softmax(f_b)` of row `b` of `f` into `p` (length K), max-shifted; no allocation.
fn softmax_row<T: Scalar>(f: MatRef<'_, T>, b: usize, p: &mut [T]) {
    let k = f.ncols();
    let mut m = f[(b, 0)];
    for j in 1..k {
        if f[(b, j)] > m {
            m = f[(b, j)];
        }
    }
    let mut sum = T::zero();
    for (j, pj) in p.iter_mut().enumerate().take(k) {
        *pj = (f[(b, j)] - m).exp();
        sum += *pj;
    }
    let inv = T::one() / sum;
    for pj in p.iter_mut().take(k) {
        *pj *= inv;
    }
}

/// Runs `body(b, p_b)` for every row of `f` with `p_b = softmax(f_b)`, in chunks of a stack
/// buffer (no allocation for `K <= 64`; wider outputs use one heap buffer per call).
fn for_each_softmax_row<T: Scalar>(f: MatRef<'_, T>, mut body: impl FnMut(usize, &[T])) {
    const STACK: usize = 64;
    let k = f.ncols();
    let mut stack = [T::zero(); STACK];
    let mut heap = Vec::new();
    let p: &mut [T] = if k <= STACK {
        &mut stack[..k]
    } else {
        heap.resize(k, T::zero());
        &mut heap
    };
    for b in 0..f.nrows() {
        softmax_row(f, b, p);
        body(b, p);
    }
}

impl Likelihood {
    /// Name as printed and stored.
    pub fn name(self) -> &'static str {
        match self {
            Likelihood::Gaussian => "gaussian",
            Likelihood::Categorical => "categorical",
        }
    }

    /// `ell(F, Y) / B`: Gaussian `(1/B) sum_b ||y_b - f_b||^2 / 2` (`sigma^2 = 1`);
    /// categorical `(1/B) sum_b (lse(f_b) - y_b . f_b)` (the cross-entropy for one-hot rows,
    /// `lse` max-shifted), in `f64`. Shapes: `f`, `y` B x q_L.
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
            Likelihood::Categorical => {
                let mut acc = 0.0;
                for b in 0..f.nrows() {
                    let mut m = f64::NEG_INFINITY;
                    for j in 0..f.ncols() {
                        m = m.max(f[(b, j)].to_f64());
                    }
                    let (mut sum, mut dot, mut mass) = (0.0, 0.0, 0.0);
                    for j in 0..f.ncols() {
                        let (fj, yj) = (f[(b, j)].to_f64(), y[(b, j)].to_f64());
                        sum += (fj - m).exp();
                        dot += yj * (fj - m);
                        mass += yj;
                    }
                    acc += mass * sum.ln() - dot;
                }
                acc / f.nrows().max(1) as f64
            }
        }
    }

    /// `seed <- d ell / dF`: Gaussian `F - Y` (`sigma^2 = 1`); categorical `P - Y` with
    /// `P = softmax(F)` row-wise (one-hot `Y`). Shapes: all B x q_L.
    pub fn seed_into<T: Scalar>(self, mut seed: MatMut<'_, T>, f: MatRef<'_, T>, y: MatRef<'_, T>) {
        match self {
            Likelihood::Gaussian => sub_scaled_into(seed, f, T::one(), y),
            Likelihood::Categorical => for_each_softmax_row(f, |b, p| {
                for (j, &pj) in p.iter().enumerate() {
                    seed[(b, j)] = pj - y[(b, j)];
                }
            }),
        }
    }

    /// Whether the output layer has exact pseudo-targets: Gaussian `T_L = Y` (`alpha_L =
    /// sigma^2`), so the output layer is an exact Bayesian linear regression on the data.
    pub fn exact_output_targets(self) -> bool {
        match self {
            Likelihood::Gaussian => true,
            Likelihood::Categorical => false,
        }
    }

    /// Whether the output-space Fisher is the identity (Gaussian with `sigma^2 = 1`): then the
    /// curvature of the hidden layer that feeds the output has the closed form
    /// `(W' W'^T) ⊙ (Phi'^T Phi')` and needs no backward pass.
    pub fn identity_fisher(self) -> bool {
        match self {
            Likelihood::Gaussian => true,
            Likelihood::Categorical => false,
        }
    }

    /// The stacked seed `S` ((q_L B) x q_L) whose backward pass gives every
    /// `Delta_k = dF_k / dH_l` scaled by the Fisher's square root: block `k` (rows
    /// `k B .. (k + 1) B`) holds `sqrt(Fisher)` column `k` for every row. Gaussian: the unit
    /// vector `e_k` in every row of block `k`; categorical: `S_b = diag(sqrt p_b) - p_b
    /// sqrt(p_b)^T`, column `k` = `sqrt(p_bk) (e_k - p_b)`, so `S_b S_b^T = diag p_b - p_b
    /// p_b^T`. `f` (B x q_L) is the output at the means. No allocation for `q_L <= 64`.
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
            Likelihood::Categorical => for_each_softmax_row(f, |row, p| {
                for k in 0..q {
                    let r = p[k].sqrt();
                    for (j, &pj) in p.iter().enumerate() {
                        let e = if j == k { T::one() } else { T::zero() };
                        seed[(k * b + row, j)] = r * (e - pj);
                    }
                }
            }),
        }
    }

    /// One sampled square-root Fisher column per row into `seed` (B x q_L): row `b` is
    /// `d ell(f_b, y~_b) / df_b` for a label drawn from the model, `y~_b ~ p(y | f_b)`:
    /// Gaussian `-eps_b`, `eps_b ~ N(0, I)`; categorical `p_b - e_c`, `c ~ softmax(f_b)`.
    /// Its expectation `E[g g^T]` is the Fisher, so the backward pass of this seed gives an
    /// unbiased `C_l` at `1/q_L` of the stacked seed's cost (the sampled Fisher).
    pub fn sampled_fisher_seed_into<T: Scalar, R: Rng + ?Sized>(
        self,
        mut seed: MatMut<'_, T>,
        f: MatRef<'_, T>,
        rng: &mut R,
    ) {
        match self {
            Likelihood::Gaussian => {
                for j in 0..f.ncols() {
                    for i in 0..f.nrows() {
                        let eps: f64 = rng.sample(StandardNormal);
                        seed[(i, j)] = T::of(-eps);
                    }
                }
            }
            Likelihood::Categorical => for_each_softmax_row(f, |b, p| {
                let u = T::of(rng.random::<f64>());
                let mut cum = T::zero();
                // The class whose cumulative mass first exceeds u (the last one on rounding).
                let mut class = p.len() - 1;
                for (j, &pj) in p.iter().enumerate() {
                    cum += pj;
                    if u < cum {
                        class = j;
                        break;
                    }
                }
                for (j, &pj) in p.iter().enumerate() {
                    seed[(b, j)] = if j == class { pj - T::one() } else { pj };
                }
            }),
        }
    }

    /// The output-space Fisher summed over the batch, `sum_b S_b S_b^T` (q_L x q_L, lower
    /// triangle written), for an output layer in the step-5 form: categorical
    /// `sum_b (diag p_b - p_b p_b^T)`; Gaussian `B I`.
    pub fn output_fisher_sum_into<T: Scalar>(self, mut sum: MatMut<'_, T>, f: MatRef<'_, T>) {
        let q = f.ncols();
        sum.fill(T::zero());
        match self {
            Likelihood::Gaussian => {
                for k in 0..q {
                    sum[(k, k)] = T::of(f.nrows() as f64);
                }
            }
            Likelihood::Categorical => for_each_softmax_row(f, |_, p| {
                for j in 0..q {
                    sum[(j, j)] += p[j];
                    for i in j..q {
                        sum[(i, j)] -= p[i] * p[j];
                    }
                }
            }),
        }
    }
}

impl std::str::FromStr for Likelihood {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gaussian" | "Gaussian" => Ok(Likelihood::Gaussian),
            "categorical" | "Categorical" => Ok(Likelihood::Categorical),
            _ => Err(format!(
                "unknown likelihood `{s}` (expected gaussian or categorical)"
            )),
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
