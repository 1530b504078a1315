//! Adam (Kingma and Ba) with bias correction and L2 weight decay, the baseline optimizer.

use crate::check::{expect_finite, expect_shape};
use crate::error::{AutodiffError, Operand, Result};
use bali_kernels::Scalar;
use faer::Mat;

/// Adam with bias correction and an L2 penalty on the non-bias rows.
///
/// One [`Adam::step`] with gradients `dW_l` (of whatever objective the caller chose, e.g. the
/// batch SUM `ell` or `ell / B`), at step `t = 1, 2, ..`:
///
/// ```text
/// g   = dW + weight_decay * Wbar          (Wbar: W with its last, bias, row zeroed)
/// m   <- beta1 m + (1 - beta1) g
/// v   <- beta2 v + (1 - beta2) g^2
/// W   <- W - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
/// ```
///
/// i.e. weight decay is the gradient of `(weight_decay / 2) ||Wbar||_F^2` added to the
/// caller's objective (L2, not decoupled AdamW); it is added as given, so the caller scales it
/// to match the scale of its gradients (for the batch sum with `rho = N / B`, a Gaussian prior
/// of precision `lambda` on the full data set corresponds to `weight_decay = lambda / rho`).
/// The bias row (the last row of every `W_l`) is never decayed.
#[derive(Clone, Debug)]
pub struct Adam<T> {
    /// Learning rate `lr > 0`.
    pub lr: T,
    /// First-moment decay `beta1` in `[0, 1)`.
    pub beta1: T,
    /// Second-moment decay `beta2` in `[0, 1)`.
    pub beta2: T,
    /// Denominator guard `eps > 0`.
    pub eps: T,
    /// L2 coefficient `>= 0` on the non-bias rows (see the type docs).
    pub weight_decay: T,
    m: Vec<Mat<T>>,
    v: Vec<Mat<T>>,
    t: u64,
}

impl<T: Scalar> Adam<T> {
    /// Adam with `beta1 = 0.9`, `beta2 = 0.999`, `eps = 1e-8` and zero moments for weights of
    /// the given `(p_l, q_l)` shapes.
    pub fn new(lr: T, weight_decay: T, shapes: &[(usize, usize)]) -> Self {
        Adam {
            lr,
            beta1: T::of(0.9),
            beta2: T::of(0.999),
            eps: T::of(1e-8),
            weight_decay,
            m: shapes.iter().map(|&(p, q)| Mat::zeros(p, q)).collect(),
            v: shapes.iter().map(|&(p, q)| Mat::zeros(p, q)).collect(),
            t: 0,
        }
    }

    /// Number of steps taken so far.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// Zeroes the moments and the step count.
    pub fn reset(&mut self) {
        for m in self.m.iter_mut().chain(self.v.iter_mut()) {
            m.fill(T::zero());
        }
        self.t = 0;
    }

    /// One Adam step on `weights` with `grads` (same shapes as given to [`Adam::new`]).
    ///
    /// All inputs are checked before anything changes: on error the weights and the state
    /// are untouched. Errors: layer count or shapes, a non-finite gradient or weight (naming
    /// layer, row, column), hyperparameters out of range.
    pub fn step(&mut self, weights: &mut [Mat<T>], grads: &[Mat<T>]) -> Result<()> {
        self.check_hyper()?;
        let layers = self.m.len();
        for (what, got) in [("weights", weights.len()), ("gradients", grads.len())] {
            if got != layers {
                return Err(AutodiffError::LayerCount {
                    what,
                    expected: layers,
                    got,
                });
            }
        }
        for (l, (w, g)) in weights.iter().zip(grads).enumerate() {
            let (p, q) = (self.m[l].nrows(), self.m[l].ncols());
            expect_shape(w.as_ref(), Operand::Weights { layer: l }, p, q)?;
            expect_shape(g.as_ref(), Operand::Gradient { layer: l }, p, q)?;
            expect_finite(w.as_ref(), Operand::Weights { layer: l })?;
            expect_finite(g.as_ref(), Operand::Gradient { layer: l })?;
        }
        self.t += 1;
        let t = self.t as f64;
        let one = T::one();
        let c1 = one / (one - T::of(self.beta1.to_f64().powf(t)));
        let c2 = one / (one - T::of(self.beta2.to_f64().powf(t)));
        let (b1, b2) = (self.beta1, self.beta2);
        for (((w, g), m), v) in weights
            .iter_mut()
            .zip(grads)
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            let p = w.nrows();
            for j in 0..w.ncols() {
                for i in 0..p {
                    let decay = if i + 1 < p {
                        self.weight_decay * w[(i, j)]
                    } else {
                        T::zero()
                    };
                    let gi = g[(i, j)] + decay;
                    let mi = b1 * m[(i, j)] + (one - b1) * gi;
                    let vi = b2 * v[(i, j)] + (one - b2) * gi * gi;
                    m[(i, j)] = mi;
                    v[(i, j)] = vi;
                    w[(i, j)] -= self.lr * (mi * c1) / ((vi * c2).sqrt() + self.eps);
                }
            }
        }
        Ok(())
    }

    fn check_hyper(&self) -> Result<()> {
        let unit = "must lie in [0, 1)";
        let checks = [
            (
                "lr",
                self.lr,
                self.lr > T::zero(),
                "must be finite and positive",
            ),
            (
                "beta1",
                self.beta1,
                self.beta1 >= T::zero() && self.beta1 < T::one(),
                unit,
            ),
            (
                "beta2",
                self.beta2,
                self.beta2 >= T::zero() && self.beta2 < T::one(),
                unit,
            ),
            (
                "eps",
                self.eps,
                self.eps > T::zero(),
                "must be finite and positive",
            ),
            (
                "weight_decay",
                self.weight_decay,
                self.weight_decay >= T::zero(),
                "must be finite and non-negative",
            ),
        ];
        for (name, value, ok, reason) in checks {
            if !(ok && value.is_finite()) {
                return Err(AutodiffError::InvalidParameter {
                    name,
                    value: value.to_f64(),
                    reason,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, Loss, Mlp};
    use faer::Par;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Adam written out for one scalar, independently of the matrix code.
    fn reference_steps(w0: f64, grads: &[f64], decay: bool, a: &Adam<f64>) -> f64 {
        let (mut w, mut m, mut v) = (w0, 0.0, 0.0);
        for (t, &g) in grads.iter().enumerate() {
            let t = (t + 1) as i32;
            let g = g + if decay { a.weight_decay * w } else { 0.0 };
            m = a.beta1 * m + (1.0 - a.beta1) * g;
            v = a.beta2 * v + (1.0 - a.beta2) * g * g;
            let mhat = m / (1.0 - a.beta1.powi(t));
            let vhat = v / (1.0 - a.beta2.powi(t));
            w -= a.lr * mhat / (vhat.sqrt() + a.eps);
        }
        w
    }

    #[test]
    fn steps_match_hand_computation() {
        let shapes = [(3, 2), (2, 1)];
        let mut adam = Adam::new(0.05, 0.3, &shapes);
        let w0: Vec<Mat<f64>> = shapes
            .iter()
            .map(|&(p, q)| Mat::from_fn(p, q, |i, j| 0.4 * i as f64 - 0.7 * j as f64 + 0.1))
            .collect();
        let grad = |s: f64| -> Vec<Mat<f64>> {
            shapes
                .iter()
                .map(|&(p, q)| Mat::from_fn(p, q, |i, j| s * (1.0 + i as f64) - 0.5 * j as f64))
                .collect()
        };
        let (g1, g2) = (grad(1.0), grad(-2.0));
        let mut w = w0.clone();
        adam.step(&mut w, &g1).unwrap();
        // First step, by hand: m^ = g, v^ = g^2, so W1 = W0 - lr g / (|g| + eps).
        for l in 0..2 {
            let p = w0[l].nrows();
            for j in 0..w0[l].ncols() {
                for i in 0..p {
                    let g = g1[l][(i, j)] + if i + 1 < p { 0.3 * w0[l][(i, j)] } else { 0.0 };
                    let expected = w0[l][(i, j)] - 0.05 * g / (g.abs() + 1e-8);
                    assert!(
                        (w[l][(i, j)] - expected).abs() < 1e-14,
                        "layer {l} ({i},{j})"
                    );
                }
            }
        }
        adam.step(&mut w, &g2).unwrap();
        assert_eq!(adam.steps(), 2);
        for l in 0..2 {
            let p = w0[l].nrows();
            for j in 0..w0[l].ncols() {
                for i in 0..p {
                    let expected = reference_steps(
                        w0[l][(i, j)],
                        &[g1[l][(i, j)], g2[l][(i, j)]],
                        i + 1 < p,
                        &adam,
                    );
                    assert!(
                        (w[l][(i, j)] - expected).abs() < 1e-14,
                        "layer {l} ({i},{j})"
                    );
                }
            }
        }
        adam.reset();
        assert_eq!(adam.steps(), 0);
        let mut w_again = w0.clone();
        adam.step(&mut w_again, &g1).unwrap();
        let mut w_fresh = w0.clone();
        Adam::new(0.05, 0.3, &shapes)
            .step(&mut w_fresh, &g1)
            .unwrap();
        assert_eq!(w_again, w_fresh);
    }

    #[test]
    fn reduces_the_loss_of_a_small_regression() {
        let mut rng = StdRng::seed_from_u64(5);
        let n = 32;
        let x = Mat::<f64>::from_fn(n, 1, |_, _| rng.random_range(-2.0..2.0));
        let y = Mat::<f64>::from_fn(n, 1, |i, _| (2.0 * x[(i, 0)]).sin() + 0.5 * x[(i, 0)]);
        let mlp = Mlp::new(vec![1, 16, 1], Activation::Tanh).unwrap();
        let mut w: Vec<Mat<f64>> = mlp.init_weights(&mut rng);
        let loss = Loss::Gaussian {
            y: y.as_ref(),
            sigma2: 1.0,
        };
        let mut adam = Adam::new(0.02, 0.0, &mlp.layer_shapes());
        let (first, _) = mlp
            .value_and_grads(&w, x.as_ref(), &loss, Par::Seq)
            .unwrap();
        let mut last = first;
        for _ in 0..500 {
            let (v, dws) = mlp
                .value_and_grads(&w, x.as_ref(), &loss, Par::Seq)
                .unwrap();
            last = v;
            adam.step(&mut w, &dws).unwrap();
        }
        // Subtract the constant (N/2) log(2 pi) to compare the squared-error parts.
        let c = 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
        assert!(
            last - c < 0.05 * (first - c),
            "squared error {} -> {}",
            first - c,
            last - c
        );
    }

    #[test]
    fn bad_input_is_an_error_and_changes_nothing() {
        let shapes = [(3, 2)];
        let mut adam = Adam::new(0.1f32, 0.0, &shapes);
        let w0 = vec![Mat::<f32>::from_fn(3, 2, |i, j| (i + j) as f32)];
        let mut w = w0.clone();
        let mut g = vec![Mat::<f32>::ones(3, 2)];
        g[0][(2, 1)] = f32::NAN;
        assert!(matches!(
            adam.step(&mut w, &g),
            Err(AutodiffError::NonFinite {
                operand: Operand::Gradient { layer: 0 },
                row: 2,
                col: 1,
                ..
            })
        ));
        assert_eq!(w, w0);
        assert_eq!(adam.steps(), 0);
        let g_bad = vec![Mat::<f32>::ones(2, 2)];
        assert!(matches!(
            adam.step(&mut w, &g_bad),
            Err(AutodiffError::ShapeMismatch {
                operand: Operand::Gradient { layer: 0 },
                ..
            })
        ));
        assert!(matches!(
            adam.step(&mut w, &[]),
            Err(AutodiffError::LayerCount { .. })
        ));
        adam.beta2 = 1.0;
        let g_ok = vec![Mat::<f32>::ones(3, 2)];
        assert!(matches!(
            adam.step(&mut w, &g_ok),
            Err(AutodiffError::InvalidParameter { name: "beta2", .. })
        ));
        adam.beta2 = 0.999;
        adam.step(&mut w, &g_ok).unwrap();
        assert!((w[0][(0, 0)] - (w0[0][(0, 0)] - 0.1)).abs() < 1e-6);
    }
}
