//! Monte Carlo predictive (ALGORITHM.md section 6): whole-network weight samples or local
//! reparameterization, for one BALI posterior or an equal mixture of several.

use bali_kernels::Scalar;
use faer::{Mat, MatRef, Par};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::error::{BaliError, Result};
use crate::train::Bali;

/// How a predictive sample is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PredictMode {
    /// Sample every layer's weights `W_l = M_l + L^{-T} Z R^T`, then a deterministic forward
    /// pass (one network per sample, shared by all rows).
    #[default]
    Weights,
    /// Local reparameterization: for each row `x`, `h = x^T W ~ N(x^T M, ||L^{-1} x||^2 Sigma)`,
    /// sampled independently per row and layer.
    Local,
}

impl<T: Scalar> Bali<T> {
    /// `s` predictive samples of the network output for the inputs `x` (n x d_0), each n x d_L.
    pub fn predict_samples(
        &self,
        x: MatRef<'_, T>,
        s: usize,
        mode: PredictMode,
        rng: &mut StdRng,
    ) -> Result<Vec<Mat<T>>> {
        let d0 = self.mlp().dims[0];
        if x.ncols() != d0 {
            return Err(BaliError::Shape {
                what: "prediction inputs",
                expected: format!("n x {d0}"),
                got: format!("{} x {}", x.nrows(), x.ncols()),
            });
        }
        let mut out = Vec::with_capacity(s);
        for _ in 0..s {
            let f = match mode {
                PredictMode::Weights => {
                    let weights: Vec<Mat<T>> = self
                        .layers()
                        .iter()
                        .map(|layer| layer.posterior.sample(rng, Par::Seq))
                        .collect();
                    let trace = self.mlp().forward(&weights, x, Par::Seq)?;
                    trace.output().to_owned()
                }
                PredictMode::Local => self.local_sample(x, rng)?,
            };
            out.push(f);
        }
        Ok(out)
    }

    /// Output at the posterior means (n x d_L).
    pub fn predict_mean_network(&self, x: MatRef<'_, T>) -> Result<Mat<T>> {
        let trace = self.mlp().forward(self.means(), x, Par::Seq)?;
        Ok(trace.output().to_owned())
    }

    fn local_sample(&self, x: MatRef<'_, T>, rng: &mut StdRng) -> Result<Mat<T>> {
        let n = x.nrows();
        let n_layers = self.layers().len();
        let mut a = x.to_owned();
        for (l, layer) in self.layers().iter().enumerate() {
            let post = &layer.posterior;
            let p = post.p();
            let xb = Mat::from_fn(n, p, |i, j| if j + 1 < p { a[(i, j)] } else { T::one() });
            let (mean, scale) = post.local_moments(xb.as_ref(), Par::Seq);
            let q = post.q();
            // h_b = mean_b + sqrt(scale_b) z_b^T R^T, Sigma = R R^T (lower R).
            let r = post.col_cov.chol();
            let mut h = mean;
            for i in 0..n {
                let z: Vec<T> = (0..q)
                    .map(|_| T::of(rng.sample::<f64, _>(StandardNormal)))
                    .collect();
                let s = scale[i].max(T::zero()).sqrt();
                for j in 0..q {
                    let mut acc = T::zero();
                    for (k, zk) in z.iter().enumerate().take(j + 1) {
                        acc += r[(j, k)] * *zk;
                    }
                    h[(i, j)] += s * acc;
                }
            }
            if l + 1 < n_layers {
                let act = self.mlp().activation;
                a = Mat::zeros(n, q);
                act.apply(h.as_ref(), a.as_mut());
            } else {
                a = h;
            }
        }
        Ok(a)
    }
}

/// An equal mixture of K BALI posteriors (ALGORITHM.md section 6, ensembles).
#[derive(Clone, Debug)]
pub struct Ensemble<T> {
    /// The members, independently seeded.
    pub members: Vec<Bali<T>>,
}

impl<T: Scalar> Ensemble<T> {
    /// `s` samples from the mixture: `s / K` (rounded up) of each member, in member order.
    pub fn predict_samples(
        &self,
        x: MatRef<'_, T>,
        s: usize,
        mode: PredictMode,
        seed: u64,
    ) -> Result<Vec<Mat<T>>> {
        let k = self.members.len().max(1);
        let per = s.div_ceil(k).max(1);
        let mut all = Vec::with_capacity(per * k);
        for (m, member) in self.members.iter().enumerate() {
            let mut rng =
                StdRng::seed_from_u64(seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(m as u64 + 1)));
            all.extend(member.predict_samples(x, per, mode, &mut rng)?);
        }
        Ok(all)
    }
}
