//! The fitted model: what prediction needs and what is saved, loaded and handed to other
//! frontends. The training state (statistics, curvature, batch order, rng, buffers) lives in
//! [`crate::train::Trainer`], which wraps a model.
//!
//! A [`BayesianMlp`] is the architecture ([`Mlp`]: widths and activation), the likelihood, one
//! matrix-normal posterior `MN(M_l, Lambda_l^{-1}, Sigma_l)` per layer, and, where the data were
//! standardized, the input and target standardizers and the predictive noise chosen on
//! held-out data (ALGORITHM.md section 6).

use bali_autodiff::Mlp;
use bali_kernels::Scalar;
use bali_mn::{FactorId, KronFactor, MatrixNormal};
use faer::{Mat, MatRef, Par};
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::StandardNormal;

use crate::data::Standardizer;
use crate::error::{BaliError, Result};
use crate::likelihood::Likelihood;

/// How a predictive sample is drawn (ALGORITHM.md section 6).
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

/// Predictive mean and variance per row and output, in the units of the targets.
#[derive(Clone, Debug)]
pub struct GaussianPrediction {
    /// `E[y | x]` (n x q_L).
    pub mean: Mat<f64>,
    /// `Var[y | x]` (n x q_L): the spread of the sampled network outputs plus the noise.
    pub variance: Mat<f64>,
}

/// Class probabilities of a categorical model (ALGORITHM.md section 6).
#[derive(Clone, Debug)]
pub struct CategoricalPrediction {
    /// `p(c | x) = (1/S) sum_s softmax(f_s(x))_c` (n x K; rows sum to 1).
    pub probs: Mat<f64>,
    /// `(1/S) sum_s H[softmax(f_s(x))]` per row (nats): the aleatoric part of the predictive
    /// entropy `H[p(. | x)]`; their difference is the mutual information between the label
    /// and the weights (the epistemic part).
    pub expected_entropy: Vec<f64>,
}

impl CategoricalPrediction {
    /// `H[p(. | x)] = -sum_c p_c ln p_c` per row (nats; `0 ln 0 = 0`).
    pub fn entropy(&self) -> Vec<f64> {
        (0..self.probs.nrows())
            .map(|i| row_entropy((0..self.probs.ncols()).map(|c| self.probs[(i, c)])))
            .collect()
    }

    /// Mutual information `H[p(. | x)] - E_s H[softmax(f_s(x))]` per row (>= 0 up to
    /// rounding; clamped at 0).
    pub fn mutual_information(&self) -> Vec<f64> {
        self.entropy()
            .iter()
            .zip(&self.expected_entropy)
            .map(|(h, e)| (h - e).max(0.0))
            .collect()
    }

    /// The most probable class per row (the first on ties).
    pub fn predicted_classes(&self) -> Vec<usize> {
        (0..self.probs.nrows())
            .map(|i| {
                (0..self.probs.ncols()).fold(0, |best, c| {
                    if self.probs[(i, c)] > self.probs[(i, best)] {
                        c
                    } else {
                        best
                    }
                })
            })
            .collect()
    }
}

/// `-sum p ln p` over the entries (`0 ln 0 = 0`).
fn row_entropy(p: impl Iterator<Item = f64>) -> f64 {
    p.filter(|&v| v > 0.0).map(|v| -v * v.ln()).sum()
}

/// Sampled logits of an equal mixture of `M` members: member `m` holds `S_m` draws
/// `f_{m,s}(x)` (n x K each; a MAP network holds its one deterministic output).
///
/// At temperature `T` the predictive is
/// `p_T(c | x) = (1/M) sum_m (1/S_m) sum_s softmax(f_{m,s}(x) / T)_c`
/// and the expected entropy averages `H[softmax(f_{m,s}(x) / T)]` the same way, so the mutual
/// information stays `H[p_T] - E H >= 0`. `T = 1` is the model's own predictive; a `T` chosen
/// on held-out rows is temperature scaling (Guo et al. 2017) applied to every draw
/// ([`crate::calibration::fit_temperature`]).
#[derive(Clone, Debug, Default)]
pub struct LogitSamples {
    /// Per member, its draws (n x K each).
    pub members: Vec<Vec<Mat<f64>>>,
}

impl LogitSamples {
    /// Rows `n` and classes `K` (0 x 0 without draws).
    pub fn shape(&self) -> (usize, usize) {
        self.members
            .iter()
            .flatten()
            .next()
            .map_or((0, 0), |f| (f.nrows(), f.ncols()))
    }

    /// The predictive at temperature `t > 0` (see the type). With `t = 1` and one member this
    /// is [`BayesianMlp::predict_categorical`] bit for bit; with several, the members'
    /// averages mixed with weight `1/M` as [`crate::Ensemble::predict_categorical`] does.
    pub fn probabilities(&self, t: f64) -> CategoricalPrediction {
        let (n, k) = self.shape();
        let w = 1.0 / self.members.len().max(1) as f64;
        let inv_t = 1.0 / t;
        let mut probs = Mat::<f64>::zeros(n, k);
        let mut expected_entropy = vec![0.0; n];
        let mut member_probs = Mat::<f64>::zeros(n, k);
        let mut member_entropy = vec![0.0; n];
        let mut scaled = Mat::<f64>::zeros(n, k);
        let mut p = Mat::<f64>::zeros(n, k);
        for draws in &self.members {
            let inv = 1.0 / draws.len().max(1) as f64;
            member_probs.fill(0.0);
            member_entropy.iter_mut().for_each(|e| *e = 0.0);
            for f in draws {
                let f = if inv_t == 1.0 {
                    f.as_ref()
                } else {
                    scaled.copy_from(f);
                    scaled *= faer::Scale(inv_t);
                    scaled.as_ref()
                };
                bali_kernels::softmax_rows(f, p.as_mut());
                for i in 0..n {
                    member_entropy[i] += inv * row_entropy((0..k).map(|c| p[(i, c)]));
                    for c in 0..k {
                        member_probs[(i, c)] += inv * p[(i, c)];
                    }
                }
            }
            if self.members.len() == 1 {
                return CategoricalPrediction {
                    probs: member_probs,
                    expected_entropy: member_entropy,
                };
            }
            probs += &member_probs * faer::Scale(w);
            for (a, e) in expected_entropy.iter_mut().zip(&member_entropy) {
                *a += w * e;
            }
        }
        CategoricalPrediction {
            probs,
            expected_entropy,
        }
    }
}

/// A Bayesian MLP: every layer's matrix-normal posterior, with what prediction needs.
#[derive(Clone, Debug)]
pub struct BayesianMlp<T> {
    mlp: Mlp,
    likelihood: Likelihood,
    layers: Vec<MatrixNormal<T>>,
    /// `M_l` again, contiguous for the forward pass at the means (kept equal to
    /// `layers[l].mean`).
    means: Vec<Mat<T>>,
    input_scaler: Option<Standardizer>,
    target_scaler: Option<Standardizer>,
    noise: Option<f64>,
}

impl<T: Scalar> BayesianMlp<T> {
    /// A model from its layer posteriors (layer `l`: `p_l x q_l`, bias last row).
    ///
    /// Errors: [`BaliError::LayerShape`] when a posterior does not fit the architecture.
    pub fn from_posteriors(
        mlp: Mlp,
        likelihood: Likelihood,
        layers: Vec<MatrixNormal<T>>,
    ) -> Result<Self> {
        if layers.len() != mlp.num_layers() {
            return Err(BaliError::LayerCount {
                expected: mlp.num_layers(),
                got: layers.len(),
            });
        }
        for (l, post) in layers.iter().enumerate() {
            let expected = mlp.layer_shape(l);
            if (post.p(), post.q()) != expected {
                return Err(BaliError::LayerShape {
                    layer: l,
                    expected,
                    got: (post.p(), post.q()),
                });
            }
        }
        let means = layers.iter().map(|post| post.mean.clone()).collect();
        Ok(BayesianMlp {
            mlp,
            likelihood,
            layers,
            means,
            input_scaler: None,
            target_scaler: None,
            noise: None,
        })
    }

    /// The prior-initialised model of the trainer: means `means[l]`, `Lambda_l = lambda_l I`,
    /// `Sigma_l = s2_l I` (`scales(l) = (lambda_l, s2_l)`).
    pub(crate) fn initial(
        mlp: Mlp,
        likelihood: Likelihood,
        means: Vec<Mat<T>>,
        scales: impl Fn(usize) -> (f64, f64),
    ) -> Result<Self> {
        let layers = means
            .into_iter()
            .enumerate()
            .map(|(l, mean)| {
                let (p, q) = mlp.layer_shape(l);
                let (lambda, s2) = scales(l);
                MatrixNormal::new(
                    mean,
                    KronFactor::try_identity_scaled(
                        p,
                        T::of(lambda),
                        FactorId::row_precision(Some(l)),
                    )?,
                    KronFactor::try_identity_scaled(q, T::of(s2), FactorId::col_cov(Some(l)))?,
                )
                .map_err(BaliError::from)
            })
            .collect::<Result<Vec<_>>>()?;
        Self::from_posteriors(mlp, likelihood, layers)
    }

    /// The architecture (widths `d_0..d_L` and activation).
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// The likelihood of the output.
    pub fn likelihood(&self) -> Likelihood {
        self.likelihood
    }

    /// Layer posteriors, input layer first.
    pub fn layers(&self) -> &[MatrixNormal<T>] {
        &self.layers
    }

    /// Posterior of layer `l`.
    ///
    /// # Panics
    /// If `l` is not a layer index.
    #[track_caller]
    pub fn posterior(&self, l: usize) -> &MatrixNormal<T> {
        &self.layers[l]
    }

    /// Posterior means `M_l` (p_l x q_l, bias last row).
    pub fn means(&self) -> &[Mat<T>] {
        &self.means
    }

    /// Layer `l`'s posterior and its forward copy of the mean, for the trainer's in-place
    /// update (which copies the new mean over with [`BayesianMlp::sync_mean`]).
    pub(crate) fn posterior_mut(&mut self, l: usize) -> &mut MatrixNormal<T> {
        &mut self.layers[l]
    }

    /// Copies `layers[l].mean` into the forward copy.
    pub(crate) fn sync_mean(&mut self, l: usize) {
        self.means[l].copy_from(&self.layers[l].mean);
    }

    /// Input and target standardizers of the training data (None: data used as given).
    pub fn set_standardization(
        &mut self,
        inputs: Option<Standardizer>,
        targets: Option<Standardizer>,
    ) {
        self.input_scaler = inputs;
        self.target_scaler = targets;
    }

    /// The input standardizer, if any.
    pub fn input_scaler(&self) -> Option<&Standardizer> {
        self.input_scaler.as_ref()
    }

    /// The target standardizer, if any.
    pub fn target_scaler(&self) -> Option<&Standardizer> {
        self.target_scaler.as_ref()
    }

    /// Sets the predictive noise variance `sigma^2` (standardized target units), as chosen on
    /// held-out data. Errors unless finite and `> 0`.
    pub fn set_noise(&mut self, sigma2: f64) -> Result<()> {
        if !(sigma2.is_finite() && sigma2 > 0.0) {
            return Err(BaliError::InvalidOption {
                name: "noise",
                value: sigma2.to_string(),
                reason: "the predictive noise variance must be finite and > 0",
            });
        }
        self.noise = Some(sigma2);
        Ok(())
    }

    /// The predictive noise variance (standardized units), if set.
    pub fn noise(&self) -> Option<f64> {
        self.noise
    }

    /// The noise variance per output that prediction adds (training units): the one set
    /// with [`BayesianMlp::set_noise`] (chosen on held-out data), else the diagonal of the
    /// output layer's column covariance `Sigma_L` (learned from the training residuals, or the
    /// fixed `s^2`; it tends to fall below the held-out optimum, ALGORITHM.md section 6).
    pub fn predictive_noise(&self) -> Vec<f64> {
        let q = self.mlp.num_outputs();
        match self.noise {
            Some(sigma2) => vec![sigma2; q],
            None => {
                let out = &self.layers[self.layers.len() - 1].col_cov;
                out.diagonal().iter().map(|&v| Scalar::to_f64(v)).collect()
            }
        }
    }

    fn check_inputs(&self, x: MatRef<'_, T>) -> Result<()> {
        let d0 = self.mlp.dims[0];
        if x.ncols() != d0 {
            return Err(BaliError::Shape {
                what: "prediction inputs",
                expected: (x.nrows(), d0),
                got: (x.nrows(), x.ncols()),
            });
        }
        Ok(())
    }

    /// `s` predictive samples of the network output for the inputs `x` (n x d_0, in the
    /// units the model was trained in), each n x d_L.
    pub fn predict_samples(
        &self,
        x: MatRef<'_, T>,
        s: usize,
        mode: PredictMode,
        rng: &mut StdRng,
    ) -> Result<Vec<Mat<T>>> {
        self.check_inputs(x)?;
        let mut out = Vec::with_capacity(s);
        for _ in 0..s {
            let f = match mode {
                PredictMode::Weights => {
                    let weights: Vec<Mat<T>> = self
                        .layers
                        .iter()
                        .map(|layer| layer.sample(rng, Par::Seq))
                        .collect();
                    let trace = self.mlp.forward(&weights, x, Par::Seq)?;
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
        self.check_inputs(x)?;
        let trace = self.mlp.forward(&self.means, x, Par::Seq)?;
        Ok(trace.output().to_owned())
    }

    fn local_sample(&self, x: MatRef<'_, T>, rng: &mut StdRng) -> Result<Mat<T>> {
        let n = x.nrows();
        let n_layers = self.layers.len();
        let mut a = x.to_owned();
        for (l, post) in self.layers.iter().enumerate() {
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
                a = Mat::zeros(n, q);
                self.mlp.activation.apply(h.as_ref(), a.as_mut());
            } else {
                a = h;
            }
        }
        Ok(a)
    }
}

impl BayesianMlp<f64> {
    /// The inputs as the model was trained on them (standardized when it has an input
    /// standardizer).
    fn model_inputs<'a>(&self, x: MatRef<'a, f64>, scaled: &'a mut Mat<f64>) -> MatRef<'a, f64> {
        match &self.input_scaler {
            Some(sc) => {
                *scaled = sc.transform(x);
                scaled.as_ref()
            }
            None => x,
        }
    }

    /// Class probabilities of a categorical model for raw inputs `x` (n x d_0), from `s`
    /// samples of the network: `p(c | x) = (1/S) sum_s softmax(f_s(x))_c`, with the mean
    /// per-sample entropy for the mutual information.
    ///
    /// Errors: [`BaliError::InvalidOption`] for `s = 0` or a model whose likelihood is not
    /// categorical; what [`BayesianMlp::predict_samples`] returns.
    pub fn predict_categorical(
        &self,
        x: MatRef<'_, f64>,
        s: usize,
        mode: PredictMode,
        rng: &mut StdRng,
    ) -> Result<CategoricalPrediction> {
        Ok(LogitSamples {
            members: vec![self.predict_logits(x, s, mode, rng)?],
        }
        .probabilities(1.0))
    }

    /// `s` sampled logits `f_s(x)` (n x K each) of a categorical model for raw inputs `x`
    /// (standardized as in training): the draws [`BayesianMlp::predict_categorical`]
    /// averages, kept for a temperature to be chosen on them ([`LogitSamples`]).
    ///
    /// Errors: as [`BayesianMlp::predict_categorical`].
    pub fn predict_logits(
        &self,
        x: MatRef<'_, f64>,
        s: usize,
        mode: PredictMode,
        rng: &mut StdRng,
    ) -> Result<Vec<Mat<f64>>> {
        if s == 0 {
            return Err(BaliError::InvalidOption {
                name: "samples",
                value: "0".into(),
                reason: "must be >= 1",
            });
        }
        if self.likelihood != Likelihood::Categorical {
            return Err(BaliError::InvalidOption {
                name: "likelihood",
                value: self.likelihood.name().into(),
                reason: "class probabilities need a categorical model",
            });
        }
        let mut scaled = Mat::zeros(0, 0);
        let x = self.model_inputs(x, &mut scaled);
        self.predict_samples(x, s, mode, rng)
    }

    /// Predictive mean and variance of a Gaussian model for raw inputs `x` (n x d_0, in the
    /// units of the data): inputs standardized as in training, `s` samples of the network,
    /// variance = spread of the sampled outputs + `sigma^2`, both mapped back to the target
    /// units. The noise is [`BayesianMlp::predictive_noise`].
    pub fn predict_gaussian(
        &self,
        x: MatRef<'_, f64>,
        s: usize,
        mode: PredictMode,
        rng: &mut StdRng,
    ) -> Result<GaussianPrediction> {
        let noise = self.predictive_noise();
        if s == 0 {
            return Err(BaliError::InvalidOption {
                name: "samples",
                value: "0".into(),
                reason: "must be >= 1",
            });
        }
        let mut scaled = Mat::zeros(0, 0);
        let x = self.model_inputs(x, &mut scaled);
        let samples = self.predict_samples(x, s, mode, rng)?;
        let (n, q) = (x.nrows(), self.mlp.num_outputs());
        let inv = 1.0 / s as f64;
        let mut mean = Mat::<f64>::zeros(n, q);
        for f in &samples {
            mean += f * faer::Scale(inv);
        }
        let mut variance = Mat::<f64>::from_fn(n, q, |_, j| noise[j]);
        for f in &samples {
            for j in 0..q {
                for i in 0..n {
                    variance[(i, j)] += inv * (f[(i, j)] - mean[(i, j)]).powi(2);
                }
            }
        }
        if let Some(sc) = &self.target_scaler {
            mean = sc.inverse_transform(mean.as_ref());
            for j in 0..q {
                let scale = sc.std()[j];
                for i in 0..n {
                    variance[(i, j)] *= scale * scale;
                }
            }
        }
        Ok(GaussianPrediction { mean, variance })
    }
}
