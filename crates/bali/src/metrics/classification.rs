//! Classification metrics of the classification protocol: accuracy, negative log-likelihood,
//! Brier score, calibration (reliability bins and ECE), predictive entropy and mutual
//! information, and out-of-distribution detection (AUROC, FPR at a TPR).
//!
//! `probs` is an `n x K` matrix of predictive class probabilities, one row per example (rows
//! are assumed to sum to 1; this is not checked), and `labels` holds the `n` true classes, each
//! `< K`. Empty inputs, a label count other than `n` and labels `>= K` are errors
//! ([`BaliError::InvalidOption`], [`BaliError::Shape`]), not panics. A NaN probability or
//! score is not checked for except where noted and propagates into the result.
//!
//! Entropies are in nats (natural log), with `0 log 0 = 0`.

use faer::MatRef;

use crate::error::{BaliError, Result};

/// Checks `probs` (`n x K`, `n > 0`) against `labels` (`n` entries, each `< K`).
fn check(probs: MatRef<'_, f64>, labels: &[usize]) -> Result<()> {
    if probs.nrows() == 0 {
        return Err(BaliError::InvalidOption {
            name: "probs",
            value: format!("0 x {}", probs.ncols()),
            reason: "a classification metric needs at least one example",
        });
    }
    if labels.len() != probs.nrows() {
        return Err(BaliError::Shape {
            what: "labels (one per row of probs)",
            expected: (probs.nrows(), 1),
            got: (labels.len(), 1),
        });
    }
    if let Some((i, &c)) = labels.iter().enumerate().find(|(_, &c)| c >= probs.ncols()) {
        return Err(BaliError::InvalidOption {
            name: "labels",
            value: format!("{c} at row {i}, with {} classes", probs.ncols()),
            reason: "labels must be below the number of columns of probs",
        });
    }
    Ok(())
}

/// Index of the largest entry of row `i` (the first on ties) and that entry.
fn argmax_row(probs: MatRef<'_, f64>, i: usize) -> (usize, f64) {
    let mut best = 0;
    for k in 1..probs.ncols() {
        if probs[(i, k)] > probs[(i, best)] {
            best = k;
        }
    }
    (best, probs[(i, best)])
}

/// Fraction of rows whose most probable class `argmax_k p_ik` (the first on ties) is the label.
pub fn accuracy(probs: MatRef<'_, f64>, labels: &[usize]) -> Result<f64> {
    check(probs, labels)?;
    let hits = (0..labels.len())
        .filter(|&i| argmax_row(probs, i).0 == labels[i])
        .count();
    Ok(hits as f64 / labels.len() as f64)
}

/// Mean negative log-likelihood `-1/n sum_i log p_{i, y_i}`.
///
/// Each `p_{i, y_i}` is clamped below at `f64::MIN_POSITIVE` (about `2.2e-308`) only so that a
/// zero probability gives the large finite `-log(MIN_POSITIVE) = 708.4` instead of `+inf`; the
/// clamp changes nothing for any probability a float can hold above that. NaN propagates.
pub fn nll(probs: MatRef<'_, f64>, labels: &[usize]) -> Result<f64> {
    check(probs, labels)?;
    let total: f64 = labels
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let p = probs[(i, c)];
            // Not `p.max(..)`, which would turn NaN into MIN_POSITIVE.
            -(if p < f64::MIN_POSITIVE {
                f64::MIN_POSITIVE
            } else {
                p
            })
            .ln()
        })
        .sum();
    Ok(total / labels.len() as f64)
}

/// Brier score `1/n sum_i sum_k (p_ik - [k = y_i])^2` (between 0 and 2).
pub fn brier(probs: MatRef<'_, f64>, labels: &[usize]) -> Result<f64> {
    check(probs, labels)?;
    let total: f64 = labels
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            (0..probs.ncols())
                .map(|k| (probs[(i, k)] - f64::from(u8::from(k == c))).powi(2))
                .sum::<f64>()
        })
        .sum();
    Ok(total / labels.len() as f64)
}

/// One confidence bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bin {
    /// Number of examples whose confidence falls in the bin.
    pub count: usize,
    /// Fraction of them classified correctly (0 for an empty bin).
    pub accuracy: f64,
    /// Their mean confidence `max_k p_ik` (0 for an empty bin).
    pub confidence: f64,
}

/// The bin `i` with `conf` in `(i/B, (i+1)/B]`, bin edges computed as `(i+1) as f64 / B`;
/// confidence 0 (and anything below, or NaN) goes to bin 0, anything above 1 to bin `B-1`.
fn bin_index(conf: f64, bins: usize) -> usize {
    let b = bins as f64;
    let upper = |i: usize| (i + 1) as f64 / b;
    // `as usize` saturates (NaN and negatives to 0); the loops fix rounding at the edges.
    let mut i = ((conf * b).ceil() as usize).saturating_sub(1).min(bins - 1);
    while i + 1 < bins && conf > upper(i) {
        i += 1;
    }
    while i > 0 && conf <= upper(i - 1) {
        i -= 1;
    }
    i
}

/// Reliability diagram with `bins` equal-width confidence bins (15 in the protocol): example
/// `i` with confidence `c_i = max_k p_ik` falls in bin `b` with `c_i` in `(b/B, (b+1)/B]`
/// (confidence 0 in bin 0); each bin reports its count, accuracy and mean confidence.
pub fn reliability(probs: MatRef<'_, f64>, labels: &[usize], bins: usize) -> Result<Vec<Bin>> {
    check(probs, labels)?;
    if bins == 0 {
        return Err(BaliError::InvalidOption {
            name: "bins",
            value: "0".to_string(),
            reason: "calibration needs at least one bin",
        });
    }
    let mut count = vec![0usize; bins];
    let mut hits = vec![0usize; bins];
    let mut conf_sum = vec![0.0; bins];
    for (i, &label) in labels.iter().enumerate() {
        let (k, conf) = argmax_row(probs, i);
        let b = bin_index(conf, bins);
        count[b] += 1;
        hits[b] += usize::from(k == label);
        conf_sum[b] += conf;
    }
    Ok((0..bins)
        .map(|b| match count[b] {
            0 => Bin {
                count: 0,
                accuracy: 0.0,
                confidence: 0.0,
            },
            n => Bin {
                count: n,
                accuracy: hits[b] as f64 / n as f64,
                confidence: conf_sum[b] / n as f64,
            },
        })
        .collect())
}

/// Expected calibration error over the [`reliability`] bins:
/// `ECE = sum_b (n_b / n) |acc_b - conf_b|`.
pub fn ece(probs: MatRef<'_, f64>, labels: &[usize], bins: usize) -> Result<f64> {
    let n = labels.len() as f64;
    Ok(reliability(probs, labels, bins)?
        .iter()
        .map(|b| b.count as f64 / n * (b.accuracy - b.confidence).abs())
        .sum())
}

/// Entropy of each row, `H_i = -sum_k p_ik ln p_ik` (nats, `0 log 0 = 0`; entries `<= 0`
/// contribute nothing).
pub fn entropy_rows(probs: MatRef<'_, f64>) -> Vec<f64> {
    (0..probs.nrows())
        .map(|i| {
            -(0..probs.ncols())
                .map(|k| probs[(i, k)])
                .filter(|&p| p > 0.0)
                .map(|p| p * p.ln())
                .sum::<f64>()
        })
        .collect()
}

/// Expected entropy per row over `S` sampled predictives (each `n x K`):
/// `1/S sum_s H(p^(s)_i)`, the second input of [`mutual_information`].
pub fn mean_entropy_rows(samples: &[MatRef<'_, f64>]) -> Result<Vec<f64>> {
    let Some(first) = samples.first() else {
        return Err(BaliError::InvalidOption {
            name: "samples",
            value: "0".to_string(),
            reason: "the expected entropy needs at least one sample",
        });
    };
    let mut out = vec![0.0; first.nrows()];
    for s in samples {
        if (s.nrows(), s.ncols()) != (first.nrows(), first.ncols()) {
            return Err(BaliError::Shape {
                what: "sampled class probabilities",
                expected: (first.nrows(), first.ncols()),
                got: (s.nrows(), s.ncols()),
            });
        }
        for (o, h) in out.iter_mut().zip(entropy_rows(*s)) {
            *o += h;
        }
    }
    let inv_s = 1.0 / samples.len() as f64;
    out.iter_mut().for_each(|o| *o *= inv_s);
    Ok(out)
}

/// Mutual information between the label and the model (the epistemic part of the predictive
/// entropy), per row: `MI_i = H(mean_probs_i) - expected_entropy_i`, where `mean_probs` is the
/// `n x K` mean of the sampled predictives and `expected_entropy_i = 1/S sum_s H(p^(s)_i)` (see
/// [`mean_entropy_rows`]). Non-negative in exact arithmetic (Jensen); rounding can leave values
/// of order `-1e-16` when all samples agree, which are returned as they are.
pub fn mutual_information(
    mean_probs: MatRef<'_, f64>,
    expected_entropy: &[f64],
) -> Result<Vec<f64>> {
    if expected_entropy.len() != mean_probs.nrows() {
        return Err(BaliError::Shape {
            what: "expected_entropy (one per row of mean_probs)",
            expected: (mean_probs.nrows(), 1),
            got: (expected_entropy.len(), 1),
        });
    }
    Ok(entropy_rows(mean_probs)
        .into_iter()
        .zip(expected_entropy)
        .map(|(h, e)| h - e)
        .collect())
}

/// Rejects empty score sets and NaN scores.
fn check_scores(negatives: &[f64], positives: &[f64]) -> Result<()> {
    for (name, set) in [("negatives", negatives), ("positives", positives)] {
        if set.is_empty() {
            return Err(BaliError::InvalidOption {
                name,
                value: "0 scores".to_string(),
                reason: "OOD detection metrics need at least one negative and one positive",
            });
        }
        if let Some(i) = set.iter().position(|s| s.is_nan()) {
            return Err(BaliError::InvalidOption {
                name,
                value: format!("NaN at index {i}"),
                reason: "scores must not be NaN",
            });
        }
    }
    Ok(())
}

/// Area under the ROC curve: the probability that a positive (an out-of-distribution point;
/// larger score = "more OOD", e.g. the predictive entropy) scores above a negative, ties
/// counting one half:
/// `AUROC = 1/(n m) sum_{i,j} ([pos_j > neg_i] + 1/2 [pos_j = neg_i])`.
///
/// Computed in `O((n + m) log(n + m))` as the Mann-Whitney statistic
/// `(R_pos - m (m + 1) / 2) / (n m)`, with `R_pos` the sum of the positives' ranks in the
/// pooled sorted scores and tied scores sharing their average rank (`-0.0 = 0.0`). Errors on an
/// empty set or a NaN score; infinities are ordinary scores.
pub fn auroc(negatives: &[f64], positives: &[f64]) -> Result<f64> {
    check_scores(negatives, positives)?;
    let mut all: Vec<(f64, bool)> = negatives
        .iter()
        .map(|&s| (s, false))
        .chain(positives.iter().map(|&s| (s, true)))
        .collect();
    // Without NaN, total order and `==` agree except that -0.0 sorts just below 0.0; grouping
    // adjacent equal scores with `==` merges the two.
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i + 1;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        // 1-based ranks i+1 ..= j share their average (i + 1 + j) / 2.
        let positives_here = all[i..j].iter().filter(|e| e.1).count();
        rank_sum_pos += (i + 1 + j) as f64 / 2.0 * positives_here as f64;
        i = j;
    }
    let (m, n) = (positives.len() as f64, negatives.len() as f64);
    Ok((rank_sum_pos - m * (m + 1.0) / 2.0) / (m * n))
}

/// False-positive rate at a true-positive rate of at least `tpr` (0.95 in the protocol).
///
/// The threshold is the largest `t` at which `TPR(t) = #{positives >= t} / m >= tpr`, i.e. the
/// `k`-th largest positive score with `k` the smallest count with `k / m >= tpr` (thresholds
/// below it reach the TPR too but only raise the FPR); the result is
/// `FPR(t) = #{negatives >= t} / n`. Positives are OOD points, larger score = "more OOD". Errors
/// on an empty set, a NaN score, or `tpr` outside `(0, 1]`.
pub fn fpr_at_tpr(negatives: &[f64], positives: &[f64], tpr: f64) -> Result<f64> {
    check_scores(negatives, positives)?;
    if !(tpr > 0.0 && tpr <= 1.0) {
        return Err(BaliError::InvalidOption {
            name: "tpr",
            value: tpr.to_string(),
            reason: "the target true-positive rate must be in (0, 1]",
        });
    }
    let m = positives.len();
    let frac = |k: usize| k as f64 / m as f64;
    // Smallest k with k / m >= tpr, as the comparison is evaluated in floating point.
    let mut k = ((tpr * m as f64).ceil() as usize).clamp(1, m);
    while k > 1 && frac(k - 1) >= tpr {
        k -= 1;
    }
    while k < m && frac(k) < tpr {
        k += 1;
    }
    let mut sorted = positives.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let t = sorted[k - 1];
    let false_pos = negatives.iter().filter(|&&s| s >= t).count();
    Ok(false_pos as f64 / negatives.len() as f64)
}

#[cfg(test)]
mod tests {
    use faer::Mat;
    use proptest::prelude::*;

    use super::*;

    fn mat(rows: &[&[f64]]) -> Mat<f64> {
        Mat::from_fn(rows.len(), rows[0].len(), |i, j| rows[i][j])
    }

    /// Three examples, three classes: row 0 right (0.7), row 1 wrong (argmax 2, p_y = 0.3),
    /// row 2 right (0.5).
    fn example() -> (Mat<f64>, Vec<usize>) {
        (
            mat(&[&[0.7, 0.2, 0.1], &[0.1, 0.3, 0.6], &[0.25, 0.5, 0.25]]),
            vec![0, 1, 1],
        )
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn accuracy_nll_brier_by_hand() {
        let (p, y) = example();
        assert!(close(accuracy(p.as_ref(), &y).unwrap(), 2.0 / 3.0));
        // -(ln 0.7 + ln 0.3 + ln 0.5) / 3
        let want = -(0.7f64.ln() + 0.3f64.ln() + 0.5f64.ln()) / 3.0;
        assert!(close(nll(p.as_ref(), &y).unwrap(), want));
        // Row 0: 0.3^2 + 0.2^2 + 0.1^2 = 0.14; row 1: 0.1^2 + 0.7^2 + 0.6^2 = 0.86;
        // row 2: 0.25^2 + 0.5^2 + 0.25^2 = 0.375; mean 1.375 / 3.
        assert!(close(brier(p.as_ref(), &y).unwrap(), 1.375 / 3.0));
        // Ties go to the first class: [0.5, 0.5] predicts 0.
        let tie = mat(&[&[0.5, 0.5]]);
        assert_eq!(accuracy(tie.as_ref(), &[0]).unwrap(), 1.0);
    }

    #[test]
    fn nll_clamps_zero_but_keeps_nan() {
        let p = mat(&[&[1.0, 0.0]]);
        let v = nll(p.as_ref(), &[1]).unwrap();
        assert!(close(v, -f64::MIN_POSITIVE.ln()), "{v}");
        assert!(v.is_finite() && v > 708.0);
        let p = mat(&[&[f64::NAN, 0.5]]);
        assert!(nll(p.as_ref(), &[0]).unwrap().is_nan());
    }

    #[test]
    fn reliability_and_ece_by_hand() {
        let (p, y) = example();
        // 5 bins with edges 0.2, 0.4, 0.6, 0.8, 1. Confidences 0.7 (right) -> bin 3;
        // 0.6 (wrong) and 0.5 (right) -> bin 2 = (0.4, 0.6], its right edge included.
        let bins = reliability(p.as_ref(), &y, 5).unwrap();
        assert_eq!(
            bins.iter().map(|b| b.count).collect::<Vec<_>>(),
            [0, 0, 2, 1, 0]
        );
        assert!(close(bins[2].accuracy, 0.5) && close(bins[2].confidence, 0.55));
        assert!(close(bins[3].accuracy, 1.0) && close(bins[3].confidence, 0.7));
        // ECE = 1/3 |1 - 0.7| + 2/3 |0.5 - 0.55| = 0.1 + 0.1/3.
        assert!(close(ece(p.as_ref(), &y, 5).unwrap(), 0.1 + 0.1 / 3.0));
    }

    #[test]
    fn bin_edges_are_right_closed() {
        assert_eq!(bin_index(0.0, 15), 0);
        assert_eq!(bin_index(-1.0, 15), 0);
        assert_eq!(bin_index(f64::NAN, 15), 0);
        assert_eq!(bin_index(1.0, 15), 14);
        assert_eq!(bin_index(1.0 + 1e-15, 15), 14);
        // 0.6 = 9/15 closes bin 8 = (8/15, 9/15]; just above it opens bin 9.
        assert_eq!(bin_index(0.6, 15), 8);
        assert_eq!(bin_index(f64::from_bits(0.6f64.to_bits() + 1), 15), 9);
        for bins in [1, 3, 7, 10, 15] {
            for i in 0..bins {
                let edge = (i + 1) as f64 / bins as f64;
                assert_eq!(bin_index(edge, bins), i, "edge of bin {i} of {bins}");
                let next = f64::from_bits(edge.to_bits() + 1);
                assert_eq!(bin_index(next, bins), (i + 1).min(bins - 1));
            }
        }
    }

    #[test]
    fn ece_of_calibrated_bins_is_zero() {
        // 10 rows at confidence 0.8 with 8 right; 5 rows at confidence 0.6 with 3 right.
        let mut rows: Vec<&[f64]> = vec![&[0.8, 0.2]; 10];
        rows.extend(vec![&[0.4, 0.6][..]; 5]);
        let p = mat(&rows);
        let mut y = vec![0, 0, 0, 0, 0, 0, 0, 0, 1, 1];
        y.extend([1, 1, 1, 0, 0]);
        let e = ece(p.as_ref(), &y, 15).unwrap();
        assert!(e.abs() < 1e-12, "{e}");
        // All wrong at confidence 1: ECE = 1.
        let p = mat(&[&[1.0, 0.0], &[0.0, 1.0]]);
        assert!(close(ece(p.as_ref(), &[1, 0], 15).unwrap(), 1.0));
    }

    #[test]
    fn entropy_and_mutual_information() {
        for k in [1usize, 2, 4, 10] {
            let u = Mat::from_fn(1, k, |_, _| 1.0 / k as f64);
            assert!(close(entropy_rows(u.as_ref())[0], (k as f64).ln()));
        }
        // 0 log 0 = 0: a one-hot row has entropy 0.
        assert_eq!(entropy_rows(mat(&[&[0.0, 1.0, 0.0]]).as_ref()), [0.0]);

        // All samples agree: MI = 0.
        let s = mat(&[&[0.1, 0.2, 0.7], &[0.5, 0.25, 0.25]]);
        let samples = [s.as_ref(); 3];
        let eh = mean_entropy_rows(&samples).unwrap();
        let mean = Mat::from_fn(2, 3, |i, j| {
            samples.iter().map(|m| m[(i, j)]).sum::<f64>() / 3.0
        });
        let mi = mutual_information(mean.as_ref(), &eh).unwrap();
        assert!(mi.iter().all(|v| v.abs() < 1e-12), "{mi:?}");
        // Two confident samples that disagree: mean [0.5, 0.5], H = ln 2, E[H] = 0, MI = ln 2.
        let (a, b) = (mat(&[&[1.0, 0.0]]), mat(&[&[0.0, 1.0]]));
        let eh = mean_entropy_rows(&[a.as_ref(), b.as_ref()]).unwrap();
        assert_eq!(eh, [0.0]);
        let mi = mutual_information(mat(&[&[0.5, 0.5]]).as_ref(), &eh).unwrap();
        assert!(close(mi[0], 2f64.ln()));
    }

    #[test]
    fn auroc_and_fpr_by_hand() {
        // Pairs (pos, neg): 0.4 beats 0.1 (1) and ties two 0.4s (1/2 + 1/2); 0.9 beats all
        // three (3). AUROC = 5 / 6.
        assert!(close(
            auroc(&[0.1, 0.4, 0.4], &[0.4, 0.9]).unwrap(),
            5.0 / 6.0
        ));
        assert_eq!(auroc(&[0.0, 1.0], &[2.0, 3.0]).unwrap(), 1.0);
        assert_eq!(auroc(&[2.0, 3.0], &[0.0, 1.0]).unwrap(), 0.0);
        assert_eq!(auroc(&[1.0; 5], &[1.0; 3]).unwrap(), 0.5);
        assert_eq!(auroc(&[-0.0], &[0.0]).unwrap(), 0.5);

        let pos = [0.9, 0.8, 0.7, 0.6, 0.1];
        let neg = [0.05, 0.3, 0.65, 0.7, 0.95];
        // TPR >= 0.8 needs 4 of 5 positives: t = 0.6; negatives >= 0.6: 0.65, 0.7, 0.95.
        assert!(close(fpr_at_tpr(&neg, &pos, 0.8).unwrap(), 0.6));
        // TPR >= 0.95 needs all 5: t = 0.1; negatives >= 0.1: 4 of 5.
        assert!(close(fpr_at_tpr(&neg, &pos, 0.95).unwrap(), 0.8));
        assert!(close(fpr_at_tpr(&neg, &pos, 1.0).unwrap(), 0.8));
        // TPR >= 0.2 needs 1: t = 0.9; only 0.95 is above.
        assert!(close(fpr_at_tpr(&neg, &pos, 0.2).unwrap(), 0.2));
        // Ties: any threshold at 0.5 takes all the tied positives and negatives.
        assert_eq!(fpr_at_tpr(&[0.5, 0.4], &[0.5; 4], 0.5).unwrap(), 0.5);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (p, y) = example();
        let short = accuracy(p.as_ref(), &y[..2]).unwrap_err();
        assert!(
            matches!(short, BaliError::Shape { got: (2, 1), .. }),
            "{short}"
        );
        let bad = nll(p.as_ref(), &[0, 3, 1]).unwrap_err();
        assert!(
            matches!(bad, BaliError::InvalidOption { name: "labels", .. }),
            "{bad}"
        );
        assert!(bad.to_string().contains("3 at row 1"), "{bad}");
        let empty = Mat::<f64>::zeros(0, 3);
        assert!(brier(empty.as_ref(), &[]).is_err());
        assert!(ece(p.as_ref(), &y, 0).is_err());
        assert!(mean_entropy_rows(&[]).is_err());
        let wide = Mat::<f64>::zeros(3, 2);
        assert!(matches!(
            mean_entropy_rows(&[p.as_ref(), wide.as_ref()]),
            Err(BaliError::Shape { .. })
        ));
        assert!(mutual_information(p.as_ref(), &[0.0]).is_err());
        assert!(auroc(&[], &[1.0]).is_err());
        assert!(auroc(&[1.0], &[f64::NAN]).is_err());
        for tpr in [0.0, -0.1, 1.5, f64::NAN] {
            assert!(fpr_at_tpr(&[0.0], &[1.0], tpr).is_err(), "{tpr}");
        }
    }

    /// Scores from a small set so that ties are common, with both signed zeros.
    fn scores() -> impl Strategy<Value = Vec<f64>> {
        proptest::collection::vec(
            prop_oneof![
                (-3i8..4).prop_map(f64::from),
                Just(-0.0),
                Just(0.0),
                (-1e3f64..1e3),
            ],
            1..40,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn auroc_matches_pair_count(neg in scores(), pos in scores()) {
            let mut wins = 0.0;
            for &p in &pos {
                for &n in &neg {
                    wins += if p > n { 1.0 } else if p == n { 0.5 } else { 0.0 };
                }
            }
            let brute = wins / (pos.len() * neg.len()) as f64;
            let fast = auroc(&neg, &pos).unwrap();
            prop_assert!((fast - brute).abs() < 1e-12, "{} vs {}", fast, brute);
        }

        #[test]
        fn fpr_matches_threshold_scan(neg in scores(), pos in scores(), tpr in 0.01f64..=1.0) {
            // Largest positive score t with #{pos >= t} / m >= tpr, by trying every one.
            let frac = |set: &[f64], t: f64| {
                set.iter().filter(|&&s| s >= t).count() as f64 / set.len() as f64
            };
            let t = pos
                .iter()
                .copied()
                .filter(|&t| frac(&pos, t) >= tpr)
                .fold(f64::NEG_INFINITY, f64::max);
            prop_assert_eq!(fpr_at_tpr(&neg, &pos, tpr).unwrap(), frac(&neg, t));
        }
    }
}
