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
use crate::model::{BayesianMlp, CategoricalPrediction, GaussianPrediction, LogitSamples};

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
        let count = per.saturating_mul(self.members.len());
        let mut all = Vec::new();
        // The count comes from users: a failed reservation is an error, not an abort.
        all.try_reserve_exact(count)
            .map_err(|_| crate::BaliError::Memory {
                what: format!("{count} predictive samples"),
                needed: (count as u64).saturating_mul(std::mem::size_of::<Mat<T>>() as u64),
                limit: 0,
                limit_source: "the allocator refused",
            })?;
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
        if let [member] = &self.members[..] {
            // One member: its own prediction (bit for bit), from the rule's seed.
            let mut rng = StdRng::seed_from_u64(Self::sample_seed(seed, 0));
            return member.predict_gaussian(x, s, mode, &mut rng);
        }
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

impl Ensemble<BayesianMlp<f64>> {
    /// Class probabilities of the equal mixture of the members (see
    /// [`BayesianMlp::predict_categorical`]): member `m` draws `ceil(s / K)` samples from
    /// [`Ensemble::sample_seed`]; probabilities and expected entropies are the members'
    /// averages. One member gives its own prediction bit for bit.
    pub fn predict_categorical(
        &self,
        x: MatRef<'_, f64>,
        s: usize,
        mode: PredictMode,
        seed: u64,
    ) -> Result<CategoricalPrediction> {
        Ok(self.predict_logits(x, s, mode, seed)?.probabilities(1.0))
    }

    /// The sampled logits behind [`Ensemble::predict_categorical`] (the same draws), for a
    /// temperature chosen on them.
    pub fn predict_logits(
        &self,
        x: MatRef<'_, f64>,
        s: usize,
        mode: PredictMode,
        seed: u64,
    ) -> Result<LogitSamples> {
        let k = self.members.len();
        if k == 0 {
            return Err(crate::BaliError::NotFitted {
                what: "ensemble members",
            });
        }
        let per = if k == 1 { s } else { s.div_ceil(k).max(1) };
        let members = self
            .members
            .iter()
            .enumerate()
            .map(|(m, member)| {
                let mut rng = StdRng::seed_from_u64(Self::sample_seed(seed, m));
                member.predict_logits(x, per, mode, &mut rng)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LogitSamples { members })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BaliConfig;
    use crate::train::Trainer;

    fn fitted(seed: u64) -> BayesianMlp<f64> {
        let n = 30;
        let x = Mat::from_fn(n, 2, |i, j| ((i * (j + 2)) % 7) as f64 / 3.0 - 1.0);
        let y = Mat::from_fn(n, 1, |i, _| x[(i, 0)] - 0.5 * x[(i, 1)]);
        let mut t = Trainer::<f64>::new(vec![2, 5, 1], BaliConfig::default(), n, seed).unwrap();
        t.fit(x.as_ref(), y.as_ref(), 5, |_, _| {
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        let mut model = t.into_model();
        model.set_noise(0.05).unwrap();
        model
    }

    #[test]
    fn mixture_moments_and_the_seeding_rule() {
        let x = Mat::from_fn(4, 2, |i, j| i as f64 * 0.3 - j as f64 * 0.2);
        let (a, b) = (fitted(1), fitted(2));
        // One member: the mixture is that member, drawing from sample_seed(seed, 0).
        let one = Ensemble {
            members: vec![a.clone()],
        };
        let got = one
            .predict_gaussian(x.as_ref(), 8, PredictMode::Weights, 9)
            .unwrap();
        let mut rng = StdRng::seed_from_u64(Ensemble::<()>::sample_seed(9, 0));
        let own = a
            .predict_gaussian(x.as_ref(), 8, PredictMode::Weights, &mut rng)
            .unwrap();
        assert!(got.mean == own.mean && got.variance == own.variance);
        // Two members: mean of the means; variance = mean of (var + mean^2) - mean^2, at
        // least the larger of the noise and the spread between the members' means.
        let two = Ensemble {
            members: vec![a.clone(), b.clone()],
        };
        let mix = two
            .predict_gaussian(x.as_ref(), 8, PredictMode::Weights, 9)
            .unwrap();
        let pa = a
            .predict_gaussian(
                x.as_ref(),
                4,
                PredictMode::Weights,
                &mut StdRng::seed_from_u64(Ensemble::<()>::sample_seed(9, 0)),
            )
            .unwrap();
        let pb = b
            .predict_gaussian(
                x.as_ref(),
                4,
                PredictMode::Weights,
                &mut StdRng::seed_from_u64(Ensemble::<()>::sample_seed(9, 1)),
            )
            .unwrap();
        for i in 0..4 {
            let m = 0.5 * (pa.mean[(i, 0)] + pb.mean[(i, 0)]);
            let second = 0.5
                * (pa.variance[(i, 0)]
                    + pa.mean[(i, 0)].powi(2)
                    + pb.variance[(i, 0)]
                    + pb.mean[(i, 0)].powi(2));
            assert!((mix.mean[(i, 0)] - m).abs() < 1e-12);
            assert!((mix.variance[(i, 0)] - (second - m * m)).abs() < 1e-10);
            assert!(mix.variance[(i, 0)] >= 0.05 * (1.0 - 1e-12));
        }
        // The samples of the mixture: ceil(S / K) per member, in member order.
        let samples = two
            .predict_samples(x.as_ref(), 5, PredictMode::Weights, 3)
            .unwrap();
        assert_eq!(samples.len(), 6);
        let mut rng = StdRng::seed_from_u64(Ensemble::<()>::sample_seed(3, 1));
        let second = b
            .predict_samples(x.as_ref(), 3, PredictMode::Weights, &mut rng)
            .unwrap();
        assert!(samples[3..] == second[..]);
        assert_eq!(Ensemble::<()>::init_seed(10, 2), 12);
    }
}
