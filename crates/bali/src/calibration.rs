//! Temperature scaling chosen on held-out rows: one scalar `T > 0` dividing every sampled
//! logit, `p_T(c | x) = (1/M) sum_m (1/S_m) sum_s softmax(f_{m,s}(x) / T)_c`
//! ([`LogitSamples::probabilities`]), chosen to minimize the held-out NLL
//! `-(1/n) sum_i ln p_T(y_i | x_i)`.
//!
//! `T < 1` sharpens an underconfident predictive, `T > 1` softens an overconfident one; the
//! ranking of the classes in every draw is unchanged. For one deterministic network (a MAP
//! softmax) this is the temperature scaling of Guo et al. (2017); for sampled posteriors it
//! scales each draw, so the mutual information stays a difference of entropies of the same
//! mixture. The search always considers `T = 1`, so the chosen temperature is never worse
//! than none on the rows it was chosen on.

use crate::error::{BaliError, Result};
use crate::metrics::classification::nll;
use crate::model::LogitSamples;

/// Smallest and largest temperature searched.
pub const TEMPERATURE_RANGE: (f64, f64) = (0.05, 20.0);

/// Fewest misclassified held-out rows (at `T = 1`) for a temperature to be chosen. The NLL's
/// minimum over `T` is set by the rows the model gets wrong or nearly wrong; with a handful
/// of them it overfits: on the embedded digits (287 carve rows, 2-6 errors) the chosen `T`
/// fell to 0.14-0.24 and the test NLL doubled (BALI 0.055 -> 0.124, MAP 0.093 -> 0.161 over
/// 3 seeds), while on MNIST (1,600 carve rows, about 55 errors) it halved BALI's ECE.
pub const MIN_HELD_OUT_ERRORS: usize = 10;

/// A chosen temperature with the held-out NLL at it and at `T = 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Temperature {
    /// `T` (in [`TEMPERATURE_RANGE`]).
    pub t: f64,
    /// Held-out NLL at `t` (nats per row).
    pub nll: f64,
    /// Held-out NLL at `T = 1`.
    pub nll_untempered: f64,
}

/// The held-out NLL at temperature `t`.
pub fn nll_at(logits: &LogitSamples, labels: &[usize], t: f64) -> Result<f64> {
    nll(logits.probabilities(t).probs.as_ref(), labels)
}

/// The `T` in [`TEMPERATURE_RANGE`] minimizing the NLL of `logits` on `labels`: the best of
/// 29 log-spaced points (`T = 1` among them), then a golden-section search on `ln T` between
/// its neighbours (40 steps, to a relative width of about `1e-8`); the result is the best
/// point evaluated. When the best grid point is an end of the range the NLL has no interior
/// minimum there (typically held-out rows without a single error, whose NLL falls towards 0
/// as `T -> 0`): the temperature is not identified and `T = 1` is returned; likewise with
/// fewer than [`MIN_HELD_OUT_ERRORS`] misclassified rows.
///
/// Errors: [`BaliError::InvalidOption`] without draws; a non-finite NLL at `T = 1`
/// ([`BaliError::NonFinite`]); what [`nll`] returns for labels that do not match.
pub fn fit_temperature(logits: &LogitSamples, labels: &[usize]) -> Result<Temperature> {
    if logits.shape().0 == 0 {
        return Err(BaliError::InvalidOption {
            name: "logits",
            value: "no draws or no rows".into(),
            reason: "a temperature needs held-out predictions",
        });
    }
    let untempered_prediction = logits.probabilities(1.0);
    let nll_untempered = nll(untempered_prediction.probs.as_ref(), labels)?;
    if !nll_untempered.is_finite() {
        return Err(BaliError::NonFinite {
            what: "held-out NLL at temperature 1",
            layer: None,
            step: 0,
        });
    }
    let untempered = Temperature {
        t: 1.0,
        nll: nll_untempered,
        nll_untempered,
    };
    let errors = untempered_prediction
        .predicted_classes()
        .iter()
        .zip(labels)
        .filter(|(p, y)| p != y)
        .count();
    if errors < MIN_HELD_OUT_ERRORS {
        return Ok(untempered);
    }
    let (lo, hi) = (TEMPERATURE_RANGE.0.ln(), TEMPERATURE_RANGE.1.ln());
    // 29 points with ln T = 0 exactly at index 14.
    let points = 29usize;
    let grid: Vec<f64> = (0..points)
        .map(|i| {
            let mid = points / 2;
            if i < mid {
                lo * (mid - i) as f64 / mid as f64
            } else {
                hi * (i - mid) as f64 / mid as f64
            }
        })
        .collect();
    let mut best = (0.0f64, nll_untempered);
    let mut values = Vec::with_capacity(points);
    for &u in &grid {
        let v = if u == 0.0 {
            nll_untempered
        } else {
            nll_at(logits, labels, u.exp())?
        };
        values.push(v);
        if v < best.1 {
            best = (u, v);
        }
    }
    let i = grid.iter().position(|&u| u == best.0).unwrap_or(points / 2);
    // The NLL still falling at an end of the range: the rows do not identify a temperature
    // (e.g. a carve the model classifies without an error, whose NLL goes to 0 as T -> 0),
    // so none is applied.
    if i == 0 || i == points - 1 {
        return Ok(untempered);
    }
    let (mut a, mut b) = (grid[i.saturating_sub(1)], grid[(i + 1).min(points - 1)]);
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - phi * (b - a);
    let mut d = a + phi * (b - a);
    let mut fc = nll_at(logits, labels, c.exp())?;
    let mut fd = nll_at(logits, labels, d.exp())?;
    for _ in 0..40 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - phi * (b - a);
            fc = nll_at(logits, labels, c.exp())?;
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + phi * (b - a);
            fd = nll_at(logits, labels, d.exp())?;
        }
        for (u, v) in [(c, fc), (d, fd)] {
            if v < best.1 {
                best = (u, v);
            }
        }
    }
    Ok(Temperature {
        t: best.0.exp(),
        nll: best.1,
        nll_untempered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    /// Logits `scale * z` of one deterministic member with labels drawn from
    /// `softmax(z)`: the NLL-optimal temperature is near `scale`.
    fn scaled_problem(scale: f64, n: usize) -> (LogitSamples, Vec<usize>) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let k = 4;
        let z = Mat::from_fn(n, k, |_, _| 2.0 * rng.random::<f64>() - 1.0);
        let z = &z * faer::Scale(3.0);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let e: Vec<f64> = (0..k).map(|c| z[(i, c)].exp()).collect();
            let total: f64 = e.iter().sum();
            let mut u = rng.random::<f64>() * total;
            let mut c = 0;
            while c + 1 < k && u >= e[c] {
                u -= e[c];
                c += 1;
            }
            labels.push(c);
        }
        let f = &z * faer::Scale(scale);
        (
            LogitSamples {
                members: vec![vec![f]],
            },
            labels,
        )
    }

    #[test]
    fn recovers_the_scale_of_overconfident_and_underconfident_logits() {
        for scale in [0.4, 2.5] {
            let (logits, labels) = scaled_problem(scale, 20_000);
            let fit = fit_temperature(&logits, &labels).unwrap();
            assert!(
                (fit.t / scale - 1.0).abs() < 0.06,
                "scale {scale}: chose T = {}",
                fit.t
            );
            assert!(fit.nll < fit.nll_untempered);
            // A minimum: a little either side is worse.
            for r in [0.97, 1.03] {
                assert!(nll_at(&logits, &labels, fit.t * r).unwrap() > fit.nll);
            }
        }
    }

    #[test]
    fn calibrated_logits_keep_a_temperature_near_one_and_never_lose() {
        let (logits, labels) = scaled_problem(1.0, 20_000);
        let fit = fit_temperature(&logits, &labels).unwrap();
        assert!((fit.t - 1.0).abs() < 0.05, "chose {}", fit.t);
        assert!(fit.nll <= fit.nll_untempered);
    }

    #[test]
    fn temperature_one_is_the_untempered_mixture_and_mi_stays_non_negative() {
        let f1 = Mat::from_fn(3, 3, |i, c| (i as f64 - c as f64) * 0.7);
        let f2 = Mat::from_fn(3, 3, |i, c| ((i + c) % 3) as f64);
        let logits = LogitSamples {
            members: vec![vec![f1.clone(), f2.clone()], vec![f2.clone()]],
        };
        let p = logits.probabilities(1.0);
        // Hand mixture: member 0 averages its two draws, then the members weigh 1/2 each.
        let mut s1 = Mat::<f64>::zeros(3, 3);
        let mut s2 = Mat::<f64>::zeros(3, 3);
        bali_kernels::softmax_rows(f1.as_ref(), s1.as_mut());
        bali_kernels::softmax_rows(f2.as_ref(), s2.as_mut());
        for i in 0..3 {
            for c in 0..3 {
                let want = 0.5 * (0.5 * s1[(i, c)] + 0.5 * s2[(i, c)]) + 0.5 * s2[(i, c)];
                assert!((p.probs[(i, c)] - want).abs() < 1e-15);
            }
        }
        for t in [0.1, 1.0, 7.0] {
            let p = logits.probabilities(t);
            assert!(p.mutual_information().iter().all(|&m| m >= 0.0));
            for i in 0..3 {
                let row: f64 = (0..3).map(|c| p.probs[(i, c)]).sum();
                assert!((row - 1.0).abs() < 1e-12);
            }
        }
        // A huge temperature flattens every draw to uniform.
        let flat = logits.probabilities(1e12);
        assert!((flat.probs[(0, 0)] - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn too_few_held_out_errors_identify_no_temperature() {
        // Every row's label has the largest logit: the NLL falls all the way to T -> 0.
        let f = Mat::from_fn(50, 3, |i, c| if c == i % 3 { 2.0 } else { 0.0 });
        let labels: Vec<usize> = (0..50).map(|i| i % 3).collect();
        let logits = LogitSamples {
            members: vec![vec![f]],
        };
        assert!(nll_at(&logits, &labels, 0.05).unwrap() < nll_at(&logits, &labels, 0.1).unwrap());
        let fit = fit_temperature(&logits, &labels).unwrap();
        assert_eq!((fit.t, fit.nll), (1.0, fit.nll_untempered));
        // The same logits with 9 rows labelled against them: too few errors, no temperature;
        // with 20 such rows the confident logits are overconfident and T > 1 is chosen.
        for (wrong, softened) in [(9, false), (20, true)] {
            let labels: Vec<usize> = (0..50)
                .map(|i| if i < wrong { (i + 1) % 3 } else { i % 3 })
                .collect();
            let fit = fit_temperature(&logits, &labels).unwrap();
            assert_eq!(fit.t > 1.0, softened, "{wrong} errors: T = {}", fit.t);
            if !softened {
                assert_eq!(fit.t, 1.0);
            }
        }
    }

    #[test]
    fn no_draws_is_an_error() {
        assert!(fit_temperature(&LogitSamples::default(), &[]).is_err());
    }
}
