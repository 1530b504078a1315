//! Losses on the network output `F` (B x K): value of the batch objective `ell` (a SUM over
//! rows) and its seed `d ell / dF` for the backward pass.

use crate::check::{expect_finite, expect_shape};
use crate::error::{AutodiffError, Operand, Result};
use bali_kernels::Scalar;
use faer::{Mat, MatRef};

/// Negative log-likelihood of a batch, summed over rows (ALGORITHM.md section 1).
#[derive(Clone, Copy, Debug)]
pub enum Loss<'a, T> {
    /// Gaussian regression, `p(y|f) = N(y; f, sigma2 I)`:
    ///
    /// `ell = sum_n sum_k (y_nk - f_nk)^2 / (2 sigma2) + (B K / 2) log(2 pi sigma2)`,
    /// `d ell / dF = (F - Y) / sigma2`.
    ///
    /// `y` is B x K; `sigma2 > 0`.
    Gaussian {
        /// Targets `Y` (B x K).
        y: MatRef<'a, T>,
        /// Noise variance `sigma^2 > 0`.
        sigma2: T,
    },
    /// Softmax categorical: `ell = -sum_n log softmax(f_n)_{y_n}
    /// = sum_n (logsumexp(f_n) - f_{n, y_n})`, `d ell / dF = softmax(F) - onehot(y)`.
    ///
    /// One label in `0..K` per row.
    SoftmaxCrossEntropy {
        /// Class label of every row (length B).
        labels: &'a [usize],
    },
}

/// Value `ell` and seed `d ell / dF` (B x K) of `loss` at the network output `f` (B x K).
///
/// Errors: shape of `y` or number of labels differs from `f`, a label out of `0..K` (naming the
/// row), a non-finite entry of `f` or `y` (naming row and column), `sigma2` not finite and
/// positive.
pub fn loss_and_seed<T: Scalar>(loss: &Loss<'_, T>, f: MatRef<'_, T>) -> Result<(T, Mat<T>)> {
    expect_finite(f, Operand::Output)?;
    let (b, k) = (f.nrows(), f.ncols());
    match *loss {
        Loss::Gaussian { y, sigma2 } => {
            if !(sigma2.is_finite() && sigma2 > T::zero()) {
                return Err(AutodiffError::InvalidParameter {
                    name: "sigma2",
                    value: sigma2.to_f64(),
                    reason: "the Gaussian noise variance must be finite and positive",
                });
            }
            expect_shape(y, Operand::Targets, b, k)?;
            expect_finite(y, Operand::Targets)?;
            let inv = T::one() / sigma2;
            let half = T::of(0.5);
            let mut sq = T::zero();
            let seed = Mat::from_fn(b, k, |i, j| {
                let r = f[(i, j)] - y[(i, j)];
                sq += r * r;
                r * inv
            });
            let log_norm =
                T::of((b * k) as f64) * half * (T::of(2.0 * std::f64::consts::PI) * sigma2).ln();
            Ok((half * sq * inv + log_norm, seed))
        }
        Loss::SoftmaxCrossEntropy { labels } => {
            if labels.len() != b {
                return Err(AutodiffError::LabelCount {
                    expected: b,
                    got: labels.len(),
                });
            }
            if let Some((row, &label)) = labels.iter().enumerate().find(|(_, &c)| c >= k) {
                return Err(AutodiffError::LabelOutOfRange {
                    row,
                    label,
                    classes: k,
                });
            }
            let (mut seed, lse) = softmax_and_lse(f);
            let mut value = T::zero();
            for (n, &c) in labels.iter().enumerate() {
                value += lse[n] - f[(n, c)];
                seed[(n, c)] -= T::one();
            }
            Ok((value, seed))
        }
    }
}

/// Row-wise softmax `P_nk = exp(f_nk - logsumexp(f_n))` (B x K), computed stably (the row
/// maximum is subtracted before `exp`). Rows sum to one for finite input; non-finite input
/// propagates (use [`try_softmax_probs`] to have it reported).
pub fn softmax_probs<T: Scalar>(f: MatRef<'_, T>) -> Mat<T> {
    softmax_and_lse(f).0
}

/// [`softmax_probs`], with a [`AutodiffError::NonFinite`] error for a NaN or infinite entry.
pub fn try_softmax_probs<T: Scalar>(f: MatRef<'_, T>) -> Result<Mat<T>> {
    expect_finite(f, Operand::Output)?;
    Ok(softmax_probs(f))
}

/// Row-wise `logsumexp(f_n) = m_n + log sum_k exp(f_nk - m_n)`, `m_n = max_k f_nk` (length B).
pub fn log_sum_exp_rows<T: Scalar>(f: MatRef<'_, T>) -> Vec<T> {
    softmax_and_lse(f).1
}

/// Softmax probabilities and row log-sum-exp, both column-major friendly.
fn softmax_and_lse<T: Scalar>(f: MatRef<'_, T>) -> (Mat<T>, Vec<T>) {
    let (b, k) = (f.nrows(), f.ncols());
    let mut row_max = vec![T::neg_infinity(); b];
    for j in 0..k {
        for (i, m) in row_max.iter_mut().enumerate() {
            *m = m.max(f[(i, j)]);
        }
    }
    let mut p = Mat::from_fn(b, k, |i, j| (f[(i, j)] - row_max[i]).exp());
    let mut row_sum = vec![T::zero(); b];
    for j in 0..k {
        for (i, s) in row_sum.iter_mut().enumerate() {
            *s += p[(i, j)];
        }
    }
    for j in 0..k {
        for (i, &s) in row_sum.iter().enumerate() {
            p[(i, j)] /= s;
        }
    }
    let lse = row_max
        .iter()
        .zip(&row_sum)
        .map(|(&m, &s)| m + s.ln())
        .collect();
    (p, lse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_matches_formula() {
        let f = Mat::<f64>::from_fn(3, 2, |i, j| i as f64 - 0.5 * j as f64);
        let y = Mat::<f64>::from_fn(3, 2, |i, j| (i * j) as f64 * 0.3 + 0.1);
        let sigma2 = 0.7;
        let (v, seed) = loss_and_seed(
            &Loss::Gaussian {
                y: y.as_ref(),
                sigma2,
            },
            f.as_ref(),
        )
        .expect("valid loss");
        let mut expected = 0.0;
        for i in 0..3 {
            for j in 0..2 {
                let r: f64 = y[(i, j)] - f[(i, j)];
                // Gaussian negative log density, one entry at a time.
                expected += 0.5 * r * r / sigma2 + 0.5 * (2.0 * std::f64::consts::PI * sigma2).ln();
                assert!((seed[(i, j)] - (f[(i, j)] - y[(i, j)]) / sigma2).abs() < 1e-14);
            }
        }
        assert!((v - expected).abs() < 1e-12, "{v} vs {expected}");
    }

    #[test]
    fn cross_entropy_matches_log_of_softmax() {
        let f = Mat::<f64>::from_fn(4, 3, |i, j| ((i * 7 + j * 3) % 5) as f64 - 2.0);
        let labels = [0usize, 2, 1, 2];
        let (v, seed) =
            loss_and_seed(&Loss::SoftmaxCrossEntropy { labels: &labels }, f.as_ref()).unwrap();
        let mut expected = 0.0;
        for (n, &c) in labels.iter().enumerate() {
            let z: f64 = (0..3).map(|j| f[(n, j)].exp()).sum();
            expected -= (f[(n, c)].exp() / z).ln();
            for j in 0..3 {
                let p = f[(n, j)].exp() / z;
                let onehot = if j == c { 1.0 } else { 0.0 };
                assert!((seed[(n, j)] - (p - onehot)).abs() < 1e-14);
            }
        }
        assert!((v - expected).abs() < 1e-12);
    }

    #[test]
    fn softmax_is_stable_for_large_logits() {
        let f = Mat::<f32>::from_fn(2, 3, |i, j| 1000.0 * (i as f32 + 1.0) + j as f32);
        let p = try_softmax_probs(f.as_ref()).unwrap();
        for i in 0..2 {
            let s: f32 = (0..3).map(|j| p[(i, j)]).sum();
            assert!((s - 1.0).abs() < 1e-6);
            assert!(p[(i, 2)] > p[(i, 1)] && p[(i, 1)] > p[(i, 0)]);
        }
        let labels = [0usize, 1];
        let (v, _) =
            loss_and_seed(&Loss::SoftmaxCrossEntropy { labels: &labels }, f.as_ref()).unwrap();
        // -log p_0 = log(1 + e + e^2) - 0, -log p_1 = log(1 + e + e^2) - 1, per row.
        let z = (1.0f64 + 1f64.exp() + 2f64.exp()).ln();
        assert!((v as f64 - (2.0 * z - 1.0)).abs() < 1e-4, "{v}");
        let lse = log_sum_exp_rows(f.as_ref());
        assert!((lse[0] as f64 - (1000.0 + z)).abs() < 1e-3);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let f = Mat::<f64>::zeros(3, 2);
        let labels = [0usize, 2, 1];
        assert_eq!(
            loss_and_seed(&Loss::SoftmaxCrossEntropy { labels: &labels }, f.as_ref()).unwrap_err(),
            AutodiffError::LabelOutOfRange {
                row: 1,
                label: 2,
                classes: 2
            }
        );
        assert!(matches!(
            loss_and_seed(
                &Loss::SoftmaxCrossEntropy {
                    labels: &labels[..2]
                },
                f.as_ref()
            ),
            Err(AutodiffError::LabelCount {
                expected: 3,
                got: 2
            })
        ));
        let y = Mat::<f64>::zeros(3, 3);
        assert!(matches!(
            loss_and_seed(
                &Loss::Gaussian {
                    y: y.as_ref(),
                    sigma2: 1.0
                },
                f.as_ref()
            ),
            Err(AutodiffError::ShapeMismatch {
                operand: Operand::Targets,
                ..
            })
        ));
        let y = Mat::<f64>::zeros(3, 2);
        assert!(matches!(
            loss_and_seed(
                &Loss::Gaussian {
                    y: y.as_ref(),
                    sigma2: 0.0
                },
                f.as_ref()
            ),
            Err(AutodiffError::InvalidParameter { name: "sigma2", .. })
        ));
        let mut y_nan = y.clone();
        y_nan[(2, 1)] = f64::NAN;
        assert!(matches!(
            loss_and_seed(
                &Loss::Gaussian {
                    y: y_nan.as_ref(),
                    sigma2: 1.0
                },
                f.as_ref()
            ),
            Err(AutodiffError::NonFinite {
                operand: Operand::Targets,
                row: 2,
                col: 1,
                ..
            })
        ));
        let mut f_inf = f.clone();
        f_inf[(1, 0)] = f64::INFINITY;
        let err = try_softmax_probs(f_inf.as_ref()).unwrap_err();
        assert!(err.to_string().contains("row 1, column 0"), "{err}");
    }
}
