//! Per-column standardization, row gathering and the validation carve of a training split.

use faer::{Mat, MatRef};
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Per-column affine map `z = (x - mean) / std` fitted on training rows.
///
/// `mean_j` is the column mean, `std_j` the population standard deviation (ddof = 0, as in the
/// reference code). A constant column (all values equal) gets `mean_j` = that value and
/// `std_j = 1`, so it maps to exactly 0 instead of NaN. For targets (`1` column), `std_0` is the
/// scale `s_y` whose log is subtracted from standardized log-likelihoods.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    mean: Vec<f64>,
    std: Vec<f64>,
}

impl Standardizer {
    /// Fits mean and standard deviation of each column of `x` (`n x d`). With `n = 0` every
    /// column gets mean 0 and std 1.
    pub fn fit(x: MatRef<'_, f64>) -> Standardizer {
        let (n, d) = (x.nrows(), x.ncols());
        let mut mean = vec![0.0; d];
        let mut std = vec![1.0; d];
        if n == 0 {
            return Standardizer { mean, std };
        }
        for j in 0..d {
            let (mut lo, mut hi, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
            for i in 0..n {
                let v = x[(i, j)];
                lo = lo.min(v);
                hi = hi.max(v);
                sum += v;
            }
            if lo == hi {
                mean[j] = lo;
                std[j] = 1.0;
                continue;
            }
            let m = sum / n as f64;
            let var = (0..n).map(|i| (x[(i, j)] - m).powi(2)).sum::<f64>() / n as f64;
            let (m, sd) = if m.is_finite() && var.is_finite() && var.is_normal() {
                (m, var.sqrt())
            } else {
                // Huge or tiny values: the running mean and a variance of deviations scaled by
                // their largest magnitude, so neither the sum nor the squares over- or
                // underflow (same figures up to rounding).
                let mut m = 0.0;
                for i in 0..n {
                    m += (x[(i, j)] - m) / (i + 1) as f64;
                }
                let scale = (0..n).fold(0.0f64, |a, i| a.max((x[(i, j)] - m).abs()));
                let v = (0..n)
                    .map(|i| ((x[(i, j)] - m) / scale).powi(2))
                    .sum::<f64>()
                    / n as f64;
                (m, scale * v.sqrt())
            };
            mean[j] = m;
            std[j] = if sd > 0.0 && sd.is_finite() { sd } else { 1.0 };
        }
        Standardizer { mean, std }
    }

    /// A standardizer from stored column means and standard deviations (a model file).
    /// `None` unless both have the same length, the means are finite and the deviations
    /// finite and `> 0`.
    pub fn from_parts(mean: Vec<f64>, std: Vec<f64>) -> Option<Standardizer> {
        let valid = mean.len() == std.len()
            && mean.iter().all(|m| m.is_finite())
            && std.iter().all(|s| s.is_finite() && *s > 0.0);
        valid.then_some(Standardizer { mean, std })
    }

    /// Column means, length `d`.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Column standard deviations (1 for constant columns), length `d`.
    pub fn std(&self) -> &[f64] {
        &self.std
    }

    /// Number of columns `d` the standardizer was fitted on.
    pub fn ncols(&self) -> usize {
        self.mean.len()
    }

    /// `z_ij = (x_ij - mean_j) / std_j`; `x` is `m x d`.
    #[track_caller]
    pub fn transform(&self, x: MatRef<'_, f64>) -> Mat<f64> {
        assert_eq!(
            x.ncols(),
            self.ncols(),
            "Standardizer::transform: column count"
        );
        Mat::from_fn(x.nrows(), x.ncols(), |i, j| {
            (x[(i, j)] - self.mean[j]) / self.std[j]
        })
    }

    /// `x_ij = z_ij * std_j + mean_j`; `z` is `m x d`.
    #[track_caller]
    pub fn inverse_transform(&self, z: MatRef<'_, f64>) -> Mat<f64> {
        assert_eq!(
            z.ncols(),
            self.ncols(),
            "Standardizer::inverse_transform: column count"
        );
        Mat::from_fn(z.nrows(), z.ncols(), |i, j| {
            z[(i, j)] * self.std[j] + self.mean[j]
        })
    }

    /// For a target standardizer (`d = 1`): `y = z * s_y + mean_y` for each value of `z`.
    #[track_caller]
    pub fn inverse_transform_y(&self, z: &[f64]) -> Vec<f64> {
        assert_eq!(
            self.ncols(),
            1,
            "inverse_transform_y needs a 1-column standardizer"
        );
        z.iter().map(|v| v * self.std[0] + self.mean[0]).collect()
    }

    /// For a target standardizer (`d = 1`): the scale `s_y` (`std_0`).
    #[track_caller]
    pub fn y_scale(&self) -> f64 {
        assert_eq!(self.ncols(), 1, "y_scale needs a 1-column standardizer");
        self.std[0]
    }
}

/// Gathers rows: `out[r, :] = x[idx[r], :]`, an `idx.len() x d` matrix.
#[track_caller]
pub fn split_rows(x: MatRef<'_, f64>, idx: &[usize]) -> Mat<f64> {
    if let Some(&bad) = idx.iter().find(|&&i| i >= x.nrows()) {
        panic!("split_rows: row {bad} out of range for {} rows", x.nrows());
    }
    Mat::from_fn(idx.len(), x.ncols(), |r, j| x[(idx[r], j)])
}

/// Deterministic carve of `0..n` into (fit, validation) positions: a Fisher-Yates shuffle with
/// `StdRng::seed_from_u64(seed)`, the first `round(frac * n)` positions to fit, the rest to
/// validation. For `n >= 2` both parts are kept non-empty; `frac` is clamped to `[0, 1]`.
///
/// The positions index the caller's training list (e.g. `train[pos]` for a UCI split).
pub fn train_valid_carve(n: usize, frac: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut perm: Vec<usize> = (0..n).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    perm.shuffle(&mut rng);
    let frac = if frac.is_nan() {
        0.8
    } else {
        frac.clamp(0.0, 1.0)
    };
    let mut n_fit = (frac * n as f64).round() as usize;
    if n >= 2 {
        n_fit = n_fit.clamp(1, n - 1);
    }
    let valid = perm.split_off(n_fit.min(n));
    (perm, valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardizer_maps_to_zero_mean_unit_std_and_constant_to_zero() {
        let x = Mat::from_fn(4, 2, |i, j| if j == 0 { i as f64 } else { 0.998 });
        let s = Standardizer::fit(x.as_ref());
        assert_eq!(s.mean()[0], 1.5);
        assert!((s.std()[0] - 1.25f64.sqrt()).abs() < 1e-15);
        assert_eq!((s.mean()[1], s.std()[1]), (0.998, 1.0));
        let z = s.transform(x.as_ref());
        let m: f64 = (0..4).map(|i| z[(i, 0)]).sum::<f64>() / 4.0;
        let v: f64 = (0..4).map(|i| z[(i, 0)].powi(2)).sum::<f64>() / 4.0;
        assert!(m.abs() < 1e-15 && (v - 1.0).abs() < 1e-14);
        assert!((0..4).all(|i| z[(i, 1)] == 0.0));
        let back = s.inverse_transform(z.as_ref());
        assert!((0..4).all(|i| (back[(i, 0)] - x[(i, 0)]).abs() < 1e-14));
    }

    #[test]
    fn standardizer_neither_overflows_nor_underflows() {
        for scale in [1e-300, 1e300] {
            let x = Mat::from_fn(6, 1, |i, _| scale * i as f64);
            let s = Standardizer::fit(x.as_ref());
            let z = s.transform(x.as_ref());
            let v: f64 = (0..6).map(|i| z[(i, 0)].powi(2)).sum::<f64>() / 6.0;
            assert!((v - 1.0).abs() < 1e-12, "scale {scale}: variance {v}");
            assert!((s.std()[0] / (scale * 17.5f64.sqrt() / 6f64.sqrt()) - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn carve_is_deterministic_partition() {
        let (a, b) = train_valid_carve(10, 0.8, 7);
        assert_eq!((a.len(), b.len()), (8, 2));
        let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(train_valid_carve(10, 0.8, 7), (a.clone(), b));
        assert_ne!(train_valid_carve(10, 0.8, 8).0, a);
        assert_eq!(train_valid_carve(2, 0.99, 1).1.len(), 1);
    }

    #[test]
    fn split_rows_gathers() {
        let x = Mat::from_fn(3, 2, |i, j| (10 * i + j) as f64);
        let g = split_rows(x.as_ref(), &[2, 0, 2]);
        assert_eq!((g.nrows(), g.ncols()), (3, 2));
        assert_eq!((g[(0, 1)], g[(1, 0)], g[(2, 0)]), (21.0, 0.0, 20.0));
    }
}
