//! Ensembles: an equal mixture of K independently seeded networks (ALGORITHM.md section 6).
//!
//! One type and one seeding rule for every use (the held-out protocol, `bali fit`, library
//! users): member `m` is initialised with seed `seed + m` ([`Ensemble::init_seed`]) and draws
//! its `ceil(S / K)` predictive samples from an rng seeded with `seed + 1000 m + 17`
//! ([`Ensemble::sample_seed`]).

use bali_kernels::Scalar;
use faer::{Mat, MatRef};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::Result;
pub use crate::model::PredictMode;
use crate::model::{BayesianMlp, GaussianPrediction};

/// Something that draws predictive samples of the network output (n x d_L each).
pub trait Predictor<T> {
    /// `s` samples for the inputs `x` (n x d_0) from `rng`.
    fn sample_outputs(
        &self,
        x: MatRef<'_, T>,
        s: usize,
        mode: PredictMode,
        rng: &mut StdRng,
    ) -> Result<Vec<Mat<T>>>;
}

impl<T: Scalar> Predictor<T> for BayesianMlp<T> {
    fn sample_outputs(
        &self,
        x: MatRef<'_, T>,
        s: usize,
        mode: PredictMode,
        rng: &mut StdRng,
    ) -> Result<Vec<Mat<T>>> {
        self.predict_samples(x, s, mode, rng)
    }
}

/// An equal mixture of K members.
#[derive(Clone, Debug)]
pub struct Ensemble<M> {
    /// The members, independently seeded.
    pub members: Vec<M>,
}

impl<M> Ensemble<M> {
    /// Seed of member `m`'s initialisation and batch order: `seed + m`.
    pub fn init_seed(seed: u64, m: usize) -> u64 {
        seed.wrapping_add(m as u64)
    }

    /// Seed of member `m`'s predictive samples: `seed + 1000 m + 17`.
    pub fn sample_seed(seed: u64, m: usize) -> u64 {
        seed.wrapping_add(1000 * m as u64 + 17)
    }

    /// `s` samples from the mixture: `ceil(s / K)` (at least 1) of each member, in member
    /// order, member `m` drawing from [`Ensemble::sample_seed`].
    pub fn predict_samples<T>(
        &self,
        x: MatRef<'_, T>,
        s: usize,
        mode: PredictMode,
        seed: u64,
    ) -> Result<Vec<Mat<T>>>
    where
        M: Predictor<T>,
    {
        let per = s.div_ceil(self.members.len().max(1)).max(1);
        let mut all = Vec::with_capacity(per * self.members.len());
        for (m, member) in self.members.iter().enumerate() {
            let mut rng = StdRng::seed_from_u64(Self::sample_seed(seed, m));
            all.extend(member.sample_outputs(x, per, mode, &mut rng)?);
        }
        Ok(all)
    }
}

impl Ensemble<BayesianMlp<f64>> {
    /// Predictive mean and variance of the mixture for raw inputs (see
    /// [`BayesianMlp::predict_gaussian`]): the mixture mean of the members' means, and the
    /// mixture variance `mean of (variance + mean^2) - mean^2`; member `m` draws
    /// `ceil(s / K)` samples from [`Ensemble::sample_seed`].
    pub fn predict_gaussian(
        &self,
        x: MatRef<'_, f64>,
        s: usize,
        mode: PredictMode,
        seed: u64,
    ) -> Result<GaussianPrediction> {
        let k = self.members.len().max(1);
        let per = s.div_ceil(k).max(1);
        let mut mean: Option<Mat<f64>> = None;
        let mut second: Option<Mat<f64>> = None;
        let w = 1.0 / k as f64;
        for (m, member) in self.members.iter().enumerate() {
            let mut rng = StdRng::seed_from_u64(Self::sample_seed(seed, m));
            let p = member.predict_gaussian(x, per, mode, &mut rng)?;
            let sq = Mat::from_fn(p.mean.nrows(), p.mean.ncols(), |i, j| {
                p.variance[(i, j)] + p.mean[(i, j)] * p.mean[(i, j)]
            });
            let scaled_mean = &p.mean * faer::Scale(w);
            let scaled_sq = &sq * faer::Scale(w);
            mean = Some(match mean {
                Some(acc) => acc + scaled_mean,
                None => scaled_mean,
            });
            second = Some(match second {
                Some(acc) => acc + scaled_sq,
                None => scaled_sq,
            });
        }
        let (Some(mean), Some(second)) = (mean, second) else {
            return Err(crate::BaliError::NotFitted {
                what: "ensemble members",
            });
        };
        let variance = Mat::from_fn(mean.nrows(), mean.ncols(), |i, j| {
            (second[(i, j)] - mean[(i, j)] * mean[(i, j)]).max(0.0)
        });
        Ok(GaussianPrediction { mean, variance })
    }
}
