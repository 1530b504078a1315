//! Options of the BALI training loop (ALGORITHM.md section 5): the one library type that
//! holds them ([`BaliConfig`]), with its validation. Frontends map their flags onto it; the
//! seed is not an option of the method but an argument of [`crate::train::Trainer::new`].

use bali_kernels::Activation;
use bali_mn::JitterPolicy;

use crate::likelihood::Likelihood;

/// Which pseudo-target formulation to run (ALGORITHM.md section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Formulation {
    /// 3.1: all layers from one forward and one backward pass, `T_l = H_l - alpha_l G_l`,
    /// prior `M_0 = 0`, `Lambda_0 = lambda I`.
    Paper,
    /// 3.2 (default): output layer first, Gauss-Newton-preconditioned hidden targets,
    /// proximal prior.
    #[default]
    Improved,
}

impl std::str::FromStr for Formulation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "paper" | "Paper" => Ok(Formulation::Paper),
            "improved" | "Improved" => Ok(Formulation::Improved),
            _ => Err(format!(
                "unknown formulation `{s}` (expected paper or improved)"
            )),
        }
    }
}

/// Hidden-layer preconditioner of the `Improved` formulation (ALGORITHM.md 3.2, step 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Preconditioner {
    /// `T_l = H_l - alpha G_l D_l^{-1}` with the damped Kronecker curvature factor `D_l`.
    #[default]
    Kfac,
    /// `T_l = H_l - alpha G_l / ((1 + gamma) tr C~_l / q_l)`.
    Scalar,
}

impl std::str::FromStr for Preconditioner {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kfac" | "Kfac" => Ok(Preconditioner::Kfac),
            "scalar" | "Scalar" => Ok(Preconditioner::Scalar),
            _ => Err(format!(
                "unknown preconditioner `{s}` (expected kfac or scalar)"
            )),
        }
    }
}

/// How the curvature factors `C_l` of the hidden layers are computed (ALGORITHM.md 3.2 step 4
/// and its classification paragraph).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fisher {
    /// The exact Gauss-Newton factor: one backward pass of the stacked (q_L B) x q_L square
    /// root of the output Fisher (or its closed form where that Fisher is the identity).
    #[default]
    Exact,
    /// Unbiased, from one label per example drawn from the model (`Fisher` in expectation):
    /// one backward pass of a B x q_L seed, `1/q_L` of the exact cost.
    Sampled,
}

impl Fisher {
    /// Name as printed and stored.
    pub fn name(self) -> &'static str {
        match self {
            Fisher::Exact => "exact",
            Fisher::Sampled => "sampled",
        }
    }
}

impl std::str::FromStr for Fisher {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "exact" | "Exact" => Ok(Fisher::Exact),
            "sampled" | "Sampled" => Ok(Fisher::Sampled),
            _ => Err(format!("unknown fisher `{s}` (expected exact or sampled)")),
        }
    }
}

/// What the weight decay `wd` of the step-5 layers is measured against (`Improved`).
///
/// With the proximal prior `Lambda_0 = lambda I + s E` (`E = diag(1, .., 1, 0)`, the bias row
/// not shrunk) and `Lambda_0 M_0 = lambda M_prev`, a layer's posterior mean is at a fixed
/// point exactly when `X^T G + (s / alpha) E M D = 0`: the gradient of the summed loss plus a
/// penalty `(s / 2 alpha) tr(E M D M^T)` weighted by the damped curvature `D` (q x q). `D`'s
/// size differs between layers, data sets and iterations, so one `s` means different things.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WdScale {
    /// `s = wd`: the penalty `(wd / 2 alpha) tr(E M D M^T)`.
    #[default]
    Absolute,
    /// `s = alpha wd / dbar` with `dbar = tr D / q = (1 + gamma) tr C~ / q + floor_abs`, set
    /// every step: the fixed point is `X^T G + wd E M (D / dbar) = 0`, a penalty
    /// `(wd / 2) tr(E M Dhat M^T)` whose curvature weight `Dhat = D / dbar` has mean
    /// eigenvalue 1 (exactly the ridge `(wd / 2) |E M|^2` under the `Scalar` preconditioner)
    /// and which does not depend on `alpha`.
    Curvature,
    /// As `Curvature`, with `wd` re-estimated online from the whole-network Laplace evidence
    /// ([`crate::evidence`]) of the current means on the training set: after step `s` for
    /// `s <= 10` and every 10th step after, `wd = tau_h sigma^2`, `tau_h` the prior precision
    /// shared by the hidden layers and `sigma^2` the noise that maximize the evidence (the
    /// fixed point `X^T G + wd E M = 0` of the unit-noise loss is the MAP point of the noise
    /// `sigma^2` and the prior `N(0, tau_h^{-1} I)`: `X^T G / sigma^2 + tau_h M = 0`). The
    /// configured `wd` holds until the first estimate. `Improved`, full-batch regression
    /// ([`crate::Trainer::fit`]) only.
    Evidence,
}

impl WdScale {
    /// Name as printed and stored.
    pub fn name(self) -> &'static str {
        match self {
            WdScale::Absolute => "absolute",
            WdScale::Curvature => "curvature",
            WdScale::Evidence => "evidence",
        }
    }
}

impl std::str::FromStr for WdScale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "absolute" | "Absolute" => Ok(WdScale::Absolute),
            "curvature" | "Curvature" => Ok(WdScale::Curvature),
            "evidence" | "Evidence" => Ok(WdScale::Evidence),
            _ => Err(format!(
                "unknown wd scale `{s}` (expected absolute, curvature or evidence)"
            )),
        }
    }
}

/// Column-covariance model `Sigma_l` of a layer (ALGORITHM.md section 2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SigmaSpec {
    /// `Sigma = s2 I_q`.
    Fixed { s2: f64 },
    /// Matrix-normal inverse-Wishart with `nu_0 = q + nu0_extra`, `Psi_0 = nu_0 s0_sq I_q`.
    Learned { nu0_extra: f64, s0_sq: f64 },
}

/// Every option of ALGORITHM.md section 5. `Default` gives the regression defaults of 3.2.
#[derive(Clone, Debug, PartialEq)]
pub struct BaliConfig {
    /// `Paper` or `Improved` (default).
    pub formulation: Formulation,
    /// `Kfac` (default) or `Scalar` hidden preconditioner (`Improved` only).
    pub preconditioner: Preconditioner,
    /// Step size of the output layer's pseudo-targets where they are not exact
    /// (classification); for regression the output targets are `Y`.
    pub alpha: f64,
    /// Step size `alpha` of the hidden pseudo-targets (`None`: same as `alpha`).
    pub alpha_hidden: Option<f64>,
    /// Relative damping `gamma` of the curvature factor.
    pub gamma: f64,
    /// Absolute damping floor (fraction of `tr C_l / q` at step 1, frozen); 0 disables it.
    pub floor: f64,
    /// EMA forgetting factor; `None` picks 0 for full batch and `1 - B/N` for mini-batches.
    pub beta: Option<f64>,
    /// Hidden prior precision (`Improved`: proximal strength) `lambda`.
    pub lambda: f64,
    /// Output-layer prior precision `lambda_out`.
    pub lambda_out: f64,
    /// Weight decay `wd` of the hidden prior (`Improved`; the bias row is not shrunk).
    pub wd: f64,
    /// What `wd` is measured against (see [`WdScale`]).
    pub wd_scale: WdScale,
    /// Automatic relevance determination of the inputs (`Improved`, a network with hidden
    /// layers): the first layer's shrinkage `s` is spread over its input rows as `s r_i` with
    /// MacKay's relevance `r_i = sbar / (s_i + eps sbar)`, `s_i = |M_i|^2` the squared norm
    /// of input `i`'s row of the current mean (p - 1 input rows; the bias row is not shrunk),
    /// `sbar` their mean and `eps = 0.1` (so `r_i <= 10`), set every step. See
    /// [`crate::train`]'s `prior::set_relevance_shrinkage`.
    pub input_relevance: bool,
    /// Column covariance of the hidden layers.
    pub hidden_sigma: SigmaSpec,
    /// Column covariance of the output layer.
    pub output_sigma: SigmaSpec,
    /// Mini-batch size (`None`: full batch).
    pub batch_size: Option<usize>,
    /// Hidden activation.
    pub activation: Activation,
    /// Threads available to the dense kernels (parallelism is chosen by problem size).
    pub threads: usize,
    /// Refresh the curvature of the `Improved` hidden layers every `k` steps (1: every step,
    /// the default): on a refresh step the curvature factors `C_l` enter their EMA and the
    /// damped `D_l` is refactored and inverted; in between, the pseudo-targets use the last
    /// `D_l^{-1}` and the `C_l` backward passes are skipped (K-FAC's amortization). `Lambda_N`
    /// and `Sigma_l` are refactored every step, so every layer posterior stays exact given
    /// its targets.
    pub refresh_every: usize,
    /// Jitter retry allowed when a factor is not positive definite (reported, never hidden).
    pub jitter: JitterPolicy,
    /// Likelihood of the network output.
    pub likelihood: Likelihood,
    /// Exact or sampled curvature factors of the hidden layers (`Improved`).
    pub fisher: Fisher,
}

impl Default for BaliConfig {
    fn default() -> Self {
        BaliConfig {
            formulation: Formulation::Improved,
            preconditioner: Preconditioner::Kfac,
            alpha: 0.5,
            alpha_hidden: None,
            gamma: 0.01,
            floor: 0.0,
            beta: None,
            lambda: 1.0,
            lambda_out: 1.0,
            wd: 0.0,
            wd_scale: WdScale::Absolute,
            input_relevance: false,
            hidden_sigma: SigmaSpec::Learned {
                nu0_extra: 2.0,
                s0_sq: 1e-6,
            },
            output_sigma: SigmaSpec::Learned {
                nu0_extra: 2.0,
                s0_sq: 1e-6,
            },
            batch_size: None,
            activation: Activation::Relu,
            threads: 1,
            refresh_every: 1,
            jitter: JitterPolicy::NONE,
            likelihood: Likelihood::Gaussian,
            fisher: Fisher::Exact,
        }
    }
}

impl BaliConfig {
    /// The literal formulation of 3.1 with `alpha` for the hidden targets.
    pub fn paper() -> Self {
        BaliConfig {
            formulation: Formulation::Paper,
            ..BaliConfig::default()
        }
    }

    /// Softmax-categorical classification with the settings ALGORITHM.md 3.2 reports as
    /// measured to work on MNIST (the regression defaults diverge there): output step size
    /// `alpha = 0.5`, `alpha_hidden = 0.1`, `gamma = 0.1`, damping floor 0.3 (frozen after
    /// step 1), `wd = 100` on every layer.
    pub fn classification() -> Self {
        BaliConfig {
            likelihood: Likelihood::Categorical,
            alpha: 0.5,
            alpha_hidden: Some(0.1),
            gamma: 0.1,
            floor: 0.3,
            wd: 100.0,
            ..BaliConfig::default()
        }
    }

    /// Step size of the hidden pseudo-targets.
    pub fn hidden_alpha(&self) -> f64 {
        self.alpha_hidden.unwrap_or(self.alpha)
    }

    /// Forgetting factor for `n` training rows and batch size `b`.
    pub fn beta_for(&self, n: usize, b: usize) -> f64 {
        match self.beta {
            Some(beta) => beta,
            None if b >= n => 0.0,
            None => 1.0 - b as f64 / n as f64,
        }
    }

    /// Checks ranges against [`crate::validate`]'s constants; the error names the option,
    /// the value and the accepted range.
    pub fn validate(&self) -> Result<(), crate::BaliError> {
        use crate::validate as v;
        let bad = |name: &'static str, value: f64, reason: &'static str| {
            Err(crate::BaliError::InvalidOption {
                name,
                value: value.to_string(),
                reason,
            })
        };
        let pos = |name, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                bad(name, v, "must be finite and > 0")
            }
        };
        v::ALPHA.check(self.alpha)?;
        v::Real {
            option: "alpha-hidden",
            ..v::ALPHA
        }
        .check(self.hidden_alpha())?;
        v::LAMBDA.check(self.lambda)?;
        v::Real {
            option: "lambda-out",
            ..v::LAMBDA
        }
        .check(self.lambda_out)?;
        v::GAMMA.check(self.gamma)?;
        v::FLOOR.check(self.floor)?;
        v::WD.check(self.wd)?;
        if let Some(beta) = self.beta {
            v::BETA.check(beta)?;
        }
        if let Some(b) = self.batch_size {
            v::BATCH_SIZE.check(b)?;
        }
        v::REFRESH_EVERY.check(self.refresh_every)?;
        v::THREADS.check(self.threads)?;
        for (name, s) in [
            ("hidden_sigma", self.hidden_sigma),
            ("output_sigma", self.output_sigma),
        ] {
            match s {
                SigmaSpec::Fixed { s2 } => pos(name, s2)?,
                SigmaSpec::Learned { nu0_extra, s0_sq } => {
                    if !(nu0_extra.is_finite() && nu0_extra > 1.0) {
                        return bad(name, nu0_extra, "nu0 - q must be > 1");
                    }
                    pos(name, s0_sq)?;
                }
            }
        }
        Ok(())
    }
}
